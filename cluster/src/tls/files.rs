//! Certificates and keys as PEM files in a folder: `ca.pem`, `ca.key`, `<node>.pem`,
//! `<node>.key` (keys mode 0600; loading refuses a key others can read).

use super::{ClusterCa, NodeCert, TlsError, make_ca, make_node_cert};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Write;
use std::path::{Path, PathBuf};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    #[cfg(unix)]
    if secret {
        // The mode above applies only to a new file: tighten an existing one too.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(path))?;
    }
    f.write_all(text.as_bytes()).map_err(io_err(path))
}

/// Writes a new cluster CA and one certificate per node into `dir` (created if missing):
/// `ca.pem`, `ca.key`, and `<node>.pem` / `<node>.key` for each name in `nodes`, each node
/// certificate valid for its name, `localhost`, `127.0.0.1` and `::1`. Private keys get mode
/// 0600. Returns the paths written. This is what `weir cert` runs.
pub fn write_cluster_certs(dir: &Path, nodes: &[&str]) -> Result<Vec<PathBuf>, TlsError> {
    for n in nodes {
        super::check_name(n)?;
        if *n == "ca" {
            return Err(TlsError::BadName((*n).to_owned()));
        }
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let ca = make_ca("weir cluster CA")?;
    let mut written = Vec::new();
    let mut put = |name: String, text: &str, secret: bool| -> Result<(), TlsError> {
        let p = dir.join(name);
        write_file(&p, text, secret)?;
        written.push(p);
        Ok(())
    };
    put("ca.pem".into(), ca.cert_pem(), false)?;
    put("ca.key".into(), &ca.key_pem(), true)?;
    for n in nodes {
        let c = make_node_cert(&ca, n, &["localhost", "127.0.0.1", "::1"])?;
        put(format!("{n}.pem"), &c.cert_pem, false)?;
        put(format!("{n}.key"), &c.key_pem, true)?;
    }
    tracing::info!(dir = %dir.display(), nodes = nodes.len(), "wrote cluster certificates");
    Ok(written)
}

/// A node's TLS identity loaded from a certificate folder: its chain, key and the CA roots.
pub struct NodeIdentity {
    /// The node name.
    pub name: String,
    /// The node's certificate chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// The node's private key.
    pub key: PrivateKeyDer<'static>,
    /// The cluster CA certificates peers must be signed by.
    pub ca: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("name", &self.name)
            .finish()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    let certs = certs.map_err(|e| TlsError::Pem {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            reason: "no certificate".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(io_err(path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(TlsError::KeyPermissions {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl NodeIdentity {
    /// Loads node `name`'s identity from `dir` (`ca.pem`, `<name>.pem`, `<name>.key`).
    pub fn load(dir: &Path, name: &str) -> Result<Self, TlsError> {
        super::check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            chain: read_certs(&dir.join(format!("{name}.pem")))?,
            key: read_key(&dir.join(format!("{name}.key")))?,
            ca: read_certs(&dir.join("ca.pem"))?,
        })
    }
    /// An identity from certificates made in memory.
    pub fn from_parts(ca: &ClusterCa, node: &NodeCert) -> Self {
        let (chain, key) = node.rustls_identity();
        Self {
            name: node.name.clone(),
            chain,
            key,
            ca: vec![ca.cert_der().clone()],
        }
    }
    /// The mutual-TLS server configuration of this node.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        super::server_config(self.chain.clone(), self.key.clone_key(), &self.ca)
    }
    /// The mutual-TLS client configuration of this node.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        super::client_config(Some((self.chain.clone(), self.key.clone_key())), &self.ca)
    }
}
