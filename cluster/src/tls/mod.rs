//! Certificates of a cluster and the rustls configurations built from them: a cluster CA
//! ([`make_ca`]), node certificates it signs ([`make_node_cert`]), PEM files in a folder
//! (private keys mode 0600, [`write_cluster_certs`] for `weir cert`), and mutual-TLS server
//! and client configurations that only accept peers holding a certificate of the same CA, with
//! ALPN [`ALPN`].

mod files;

pub use files::{NodeIdentity, write_cluster_certs};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

/// The application protocol both sides of a cluster connection must speak.
pub const ALPN: &[u8] = b"weir/1";

/// A certificate or configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating or signing a certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// Building a rustls configuration failed.
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
    /// Building the peer verifier failed.
    #[error("peer verifier: {0}")]
    Verifier(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A private key file is readable by others than its owner.
    #[error("{path}: private key has mode {mode:o}, expected 600")]
    KeyPermissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A validity day that is not a calendar day (years 1..=9999), or that ends before it starts.
    #[error("invalid certificate validity: {0}")]
    BadValidity(String),
    /// A node name cannot be a certificate name or a file name.
    #[error("invalid node name '{0}' (a DNS name of letters, digits, '-', '_', '.')")]
    BadName(String),
}

/// A cluster certificate authority: its certificate and signing key.
pub struct ClusterCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterCa")
    }
}

impl ClusterCa {
    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }
    /// The CA private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }
}

/// A node's certificate (signed by the cluster CA) and private key.
#[derive(Debug)]
pub struct NodeCert {
    /// The node name (the certificate's common name and first DNS name).
    pub name: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The private key, DER (PKCS#8).
    pub key_der: Vec<u8>,
}

/// Checks `name` can name a node: letters, digits, `-`, `_` and `.`, at most 63 bytes, and a
/// DNS name (no empty label, no label starting or ending with `-`, not all digits), since an
/// accepting node reads the peer's name from the certificate's DNS name.
pub(crate) fn check_name(name: &str) -> Result<(), TlsError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && rustls_pki_types::DnsName::try_from(name).is_ok();
    if ok {
        Ok(())
    } else {
        Err(TlsError::BadName(name.to_owned()))
    }
}

/// Checks `(year, month, day)` is a calendar day rcgen accepts (it panics on others).
fn check_day((y, m, d): (i32, u8, u8)) -> Result<(), TlsError> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if (1..=9999).contains(&y) && d >= 1 && d <= days {
        Ok(())
    } else {
        Err(TlsError::BadValidity(format!(
            "{y:04}-{m:02}-{d:02} is not a day"
        )))
    }
}

/// Makes a self-signed cluster CA named `name` (ECDSA P-256).
pub fn make_ca(name: &str) -> Result<ClusterCa, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(ClusterCa {
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    })
}

/// Makes the certificate of node `node_name`, signed by `ca`, valid for the node name and the
/// extra DNS names or IP addresses in `sans`, usable as a TLS server and client.
pub fn make_node_cert(
    ca: &ClusterCa,
    node_name: &str,
    sans: &[&str],
) -> Result<NodeCert, TlsError> {
    make_node_cert_valid(ca, node_name, sans, None)
}

/// The days (UTC, `(year, month, day)`) a certificate is valid between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The first day it is valid.
    pub not_before: (i32, u8, u8),
    /// The day it expires.
    pub not_after: (i32, u8, u8),
}

/// [`make_node_cert`] with an explicit validity (`None`: rcgen's default, 1975 to 4096), e.g.
/// to rotate certificates, or to test that an expired one is refused.
pub fn make_node_cert_valid(
    ca: &ClusterCa,
    node_name: &str,
    sans: &[&str],
    validity: Option<Validity>,
) -> Result<NodeCert, TlsError> {
    check_name(node_name)?;
    let mut names = vec![node_name.to_owned()];
    names.extend(sans.iter().map(|s| (*s).to_owned()));
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, node_name);
    params.is_ca = IsCa::ExplicitNoCa;
    if let Some(v) = validity {
        check_day(v.not_before)?;
        check_day(v.not_after)?;
        if v.not_after < v.not_before {
            return Err(TlsError::BadValidity(format!(
                "not_after {:?} is before not_before {:?}",
                v.not_after, v.not_before
            )));
        }
        let (y, m, d) = v.not_before;
        params.not_before = rcgen::date_time_ymd(y, m, d);
        let (y, m, d) = v.not_after;
        params.not_after = rcgen::date_time_ymd(y, m, d);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok(NodeCert {
        name: node_name.to_owned(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().clone(),
        key_der: key.serialize_der(),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &[CertificateDer<'static>]) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for c in ca {
        store.add(c.clone())?;
    }
    Ok(Arc::new(store))
}

/// A TLS 1.3 server configuration presenting `chain`/`key` that requires every client to
/// present a certificate signed by one of `ca`, with ALPN [`ALPN`].
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: &[CertificateDer<'static>],
) -> Result<rustls::ServerConfig, TlsError> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// A TLS 1.3 client configuration that verifies servers against `ca` and presents
/// `chain`/`key` (or no certificate with `None`, which cluster servers refuse), with ALPN
/// [`ALPN`].
pub fn client_config(
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ca: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca)?);
    let mut cfg = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

impl NodeCert {
    /// The certificate chain and key as rustls types.
    pub fn rustls_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
        )
    }
}
