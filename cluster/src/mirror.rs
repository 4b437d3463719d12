//! The durable copy of a node's checkpoints on the job's object store (see "Checkpoint copies
//! on the job's store" in `docs/architecture.md`).
//!
//! A node writes its checkpoints to a local directory (fast, and the first place a restart
//! looks); [`CheckpointMirror::upload`] copies a complete one to the store before the node
//! records it in the commit log ([`Mirrored`] does both as the engine's commit hook), and
//! [`CheckpointMirror::ensure`] brings the restore point back into the local directory when it
//! is missing or corrupt there (a node restarted on another machine). Layout under the node's
//! prefix: `chk-ID/NAME` and `chk-ID/MANIFEST` (uploaded last), `shared/SUM-LEN-NAME` (bases and
//! increments, named by content).

use crate::commit::CommitLog;
use futures::StreamExt;
use futures::future::BoxFuture;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_engine::checkpoint::CheckpointCommit;
use weir_engine::checkpoint::files::{self, CheckpointFile};
use weir_engine::checkpoint::store::{self, CheckpointError, MANIFEST};

/// Files up to this size go to the store in one put; larger ones in parts of this size.
const PART: usize = 8 << 20;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Why a checkpoint could not be copied to or from the store.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The object store failed.
    #[error("checkpoint store {key}: {reason}")]
    Store {
        /// The object.
        key: String,
        /// What the store said.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("checkpoint file {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The local checkpoint, or a copy from the store, does not verify.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint is in neither place.
    #[error("checkpoint {id} is neither in {dir} nor on the store ({reason})")]
    Missing {
        /// The checkpoint.
        id: u64,
        /// The local checkpoint directory.
        dir: PathBuf,
        /// Why the local copy is not usable and what the store said.
        reason: String,
    },
}

fn store_err(key: &ObjPath) -> impl Fn(object_store::Error) -> MirrorError + '_ {
    move |e| MirrorError::Store {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> MirrorError + '_ {
    move |e| MirrorError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CheckpointError> + Send + 'static,
) -> Result<T, MirrorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MirrorError::Io {
            path: PathBuf::new(),
            reason: format!("the checkpoint file task failed: {e}"),
        })?
        .map_err(MirrorError::from)
}

/// The folder of checkpoint `id` under `prefix`.
fn chk_under(prefix: &ObjPath, id: u64) -> ObjPath {
    let dir = store::checkpoint_dir(Path::new(""), id);
    prefix.clone().join(dir.to_string_lossy().as_ref())
}

/// The object of file `f` of checkpoint `id` under `prefix` (shared files named by content).
fn key_under(prefix: &ObjPath, id: u64, f: &CheckpointFile) -> ObjPath {
    if f.shared {
        prefix
            .clone()
            .join("shared")
            .join(format!("{:016x}-{}-{}", f.sum, f.len, f.name()))
    } else {
        chk_under(prefix, id).join(f.name())
    }
}

/// The prefix of node `node`'s checkpoints on the job's store.
pub fn node_prefix(node: usize) -> ObjPath {
    ObjPath::from(format!("checkpoints/n{node:04}"))
}

/// What one upload or download moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Files copied (the manifest included).
    pub files: usize,
    /// Bytes copied.
    pub bytes: u64,
    /// Shared files already on the store, not copied again.
    pub reused: usize,
}

/// Where [`CheckpointMirror::ensure`] found the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// It was complete and verified in the local directory.
    Local,
    /// It was downloaded (the local copy was missing or did not verify, for this reason).
    Downloaded {
        /// What was copied.
        transfer: Transfer,
        /// Why the local copy could not be used.
        local: String,
    },
}

/// One node's checkpoints, local directory and copies on the store.
pub struct CheckpointMirror {
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    root: PathBuf,
    /// Shared files known to be on the store (by key).
    known: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for CheckpointMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointMirror")
            .field("prefix", &self.prefix.to_string())
            .field("root", &self.root)
            .finish()
    }
}

impl CheckpointMirror {
    /// Copies of the checkpoints in local directory `root`, under `prefix` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjPath, root: impl Into<PathBuf>) -> Self {
        Self {
            store,
            prefix,
            root: root.into(),
            known: Mutex::new(HashSet::new()),
        }
    }

    fn chk(&self, id: u64) -> ObjPath {
        chk_under(&self.prefix, id)
    }

    fn key(&self, id: u64, f: &CheckpointFile) -> ObjPath {
        key_under(&self.prefix, id, f)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies complete checkpoint `id` from the local directory to the store, its manifest
    /// last (an earlier copy's manifest of the same id is deleted first); shared files already
    /// there are not copied again.
    pub async fn upload(&self, id: u64) -> Result<Transfer, MirrorError> {
        let root = self.root.clone();
        let (text, list) = blocking(move || files::checkpoint_files(&root, id)).await?;
        let manifest = self.chk(id).join(MANIFEST);
        match self.store.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_err(&manifest)(e)),
        }
        let mut t = Transfer::default();
        for f in &list {
            let key = self.key(id, f);
            if f.shared && self.on_store(&key, f.len).await? {
                t.reused += 1;
                continue;
            }
            self.put_file(&files::local_path(&self.root, f), &key, f.len)
                .await?;
            if f.shared {
                self.known().insert(key.to_string());
            }
            t.files += 1;
            t.bytes += f.len;
        }
        self.store
            .put(&manifest, PutPayload::from(text.clone().into_bytes()))
            .await
            .map_err(store_err(&manifest))?;
        t.files += 1;
        t.bytes += text.len() as u64;
        tracing::debug!(checkpoint = id, files = t.files, bytes = t.bytes, reused = t.reused, prefix = %self.prefix, "checkpoint copied to the store");
        Ok(t)
    }

    /// Whether the shared file `key` of `len` bytes is on the store already.
    async fn on_store(&self, key: &ObjPath, len: u64) -> Result<bool, MirrorError> {
        if self.known().contains(key.as_ref()) {
            return Ok(true);
        }
        match self.store.head(key).await {
            Ok(meta) if meta.size == len => {
                self.known().insert(key.to_string());
                Ok(true)
            }
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_err(key)(e)),
        }
    }

    async fn put_file(&self, path: &Path, key: &ObjPath, len: u64) -> Result<(), MirrorError> {
        let f = tokio::fs::File::open(path).await.map_err(io_err(path))?;
        let path = path.to_path_buf();
        // The file's `len` bytes in chunks of one part at most, read as the upload asks for
        // them (a small file takes a buffer of its own size, not a part's).
        let chunks = futures::stream::try_unfold((f, len), move |(mut f, left)| {
            let path = path.clone();
            async move {
                let cap = usize::try_from(left).map_or(PART, |l| l.min(PART));
                if cap == 0 {
                    return Ok(None);
                }
                let mut buf = vec![0u8; cap];
                let n = read_full(&mut f, &mut buf).await.map_err(io_err(&path))?;
                buf.truncate(n);
                Ok((n > 0).then(|| (bytes::Bytes::from(buf), (f, left - n as u64))))
            }
        });
        put_chunks(&self.store, key, len, chunks).await
    }

    /// Copies checkpoint `id` from the store into the local directory: every file to a
    /// temporary name, verified against the manifest, renamed; the manifest last.
    pub async fn download(&self, id: u64) -> Result<Transfer, MirrorError> {
        let (text, list) = self.remote_manifest(id).await?;
        let mut t = Transfer::default();
        for f in &list {
            let to = files::local_path(&self.root, f);
            if f.shared && files::verify_file(&to, f).is_ok() {
                t.reused += 1;
                continue;
            }
            self.get_file(&self.key(id, f), &to, f).await?;
            t.files += 1;
            t.bytes += f.len;
        }
        let root = self.root.clone();
        let body = text.clone();
        blocking(move || files::install_manifest(&root, id, &body)).await?;
        t.files += 1;
        t.bytes += text.len() as u64;
        tracing::info!(checkpoint = id, files = t.files, bytes = t.bytes, prefix = %self.prefix, "checkpoint copied from the store");
        Ok(t)
    }

    /// The manifest text of checkpoint `id` on the store and the files it lists.
    async fn remote_manifest(&self, id: u64) -> Result<(String, Vec<CheckpointFile>), MirrorError> {
        let manifest = self.chk(id).join(MANIFEST);
        let bytes = self
            .store
            .get(&manifest)
            .await
            .map_err(store_err(&manifest))?
            .bytes()
            .await
            .map_err(store_err(&manifest))?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| MirrorError::Store {
            key: manifest.to_string(),
            reason: "the manifest is not text".into(),
        })?;
        let list = files::manifest_files(&self.root, id, &text)?;
        Ok((text, list))
    }

    /// Copies checkpoint `id` from this mirror's store to `prefix` in `to` (the same layout;
    /// a savepoint), its manifest last; a file missing on this side (a newer checkpoint's
    /// retention deleted it meanwhile) is a `Store` error naming it.
    pub async fn copy_checkpoint(
        &self,
        id: u64,
        to: &Arc<dyn ObjectStore>,
        prefix: &ObjPath,
    ) -> Result<Transfer, MirrorError> {
        let (text, list) = self.remote_manifest(id).await?;
        let mut t = Transfer::default();
        for f in &list {
            let (from, dest) = (self.key(id, f), key_under(prefix, id, f));
            copy_object(&self.store, &from, to, &dest, f.len).await?;
            t.files += 1;
            t.bytes += f.len;
        }
        let dest = chk_under(prefix, id).join(MANIFEST);
        to.put(&dest, PutPayload::from(text.clone().into_bytes()))
            .await
            .map_err(store_err(&dest))?;
        t.files += 1;
        t.bytes += text.len() as u64;
        Ok(t)
    }

    async fn get_file(
        &self,
        key: &ObjPath,
        to: &Path,
        f: &CheckpointFile,
    ) -> Result<(), MirrorError> {
        let dir = to.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io_err(&dir))?;
        let tmp = dir.join(format!(".{}.download", f.name()));
        let got = self.store.get(key).await.map_err(store_err(key))?;
        let mut stream = got.into_stream();
        let mut out = tokio::fs::File::create(&tmp).await.map_err(io_err(&tmp))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(store_err(key))?;
            out.write_all(&chunk).await.map_err(io_err(&tmp))?;
        }
        out.sync_all().await.map_err(io_err(&tmp))?;
        drop(out);
        let (check, file) = (tmp.clone(), f.clone());
        if let Err(e) = blocking(move || files::verify_file(&check, &file)).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(MirrorError::Store {
                key: key.to_string(),
                reason: format!("the copy does not match its manifest: {e}"),
            });
        }
        tokio::fs::rename(&tmp, to).await.map_err(io_err(to))?;
        Ok(())
    }

    /// Makes sure checkpoint `id` is complete and verifies in the local directory, downloading
    /// it when it is not; an error when it is on neither side.
    pub async fn ensure(&self, id: u64) -> Result<Ensured, MirrorError> {
        let root = self.root.clone();
        let local = match blocking(move || files::check(&root, id)).await {
            Ok(()) => return Ok(Ensured::Local),
            Err(e) => e.to_string(),
        };
        tracing::warn!(checkpoint = id, dir = %self.root.display(), reason = %local, "the restore point is not usable locally: copying it from the store");
        // A corrupt local copy goes first, so the restore never falls back to an older one.
        let dir = store::checkpoint_dir(&self.root, id);
        let _ = tokio::fs::remove_file(dir.join(MANIFEST)).await;
        match self.download(id).await {
            Ok(transfer) => Ok(Ensured::Downloaded { transfer, local }),
            Err(e) => Err(MirrorError::Missing {
                id,
                dir: self.root.clone(),
                reason: format!("locally: {local}; the store: {e}"),
            }),
        }
    }

    /// The ids of the checkpoints on the store with a manifest, ascending.
    pub async fn stored(&self) -> Result<Vec<u64>, MirrorError> {
        Ok(self
            .objects()
            .await?
            .0
            .into_iter()
            .filter(|(_, keys)| keys.iter().any(|k| k.filename() == Some(MANIFEST)))
            .map(|(id, _)| id)
            .collect())
    }

    /// The store's objects under the prefix: each checkpoint's, and the shared ones.
    async fn objects(&self) -> Result<(BTreeMap<u64, Vec<ObjPath>>, Vec<ObjPath>), MirrorError> {
        let mut chks: BTreeMap<u64, Vec<ObjPath>> = BTreeMap::new();
        let mut shared = Vec::new();
        let depth = self.prefix.parts().count();
        let mut list = self.store.list(Some(&self.prefix));
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(store_err(&self.prefix))?;
            let parts: Vec<String> = meta
                .location
                .parts()
                .skip(depth)
                .map(|p| p.as_ref().to_owned())
                .collect();
            match parts.first().map(String::as_str) {
                Some("shared") => shared.push(meta.location),
                Some(dir) => {
                    if let Some(id) = dir.strip_prefix("chk-").and_then(|n| n.parse().ok()) {
                        chks.entry(id).or_default().push(meta.location);
                    }
                }
                None => {}
            }
        }
        Ok((chks, shared))
    }

    /// Deletes the copies of every checkpoint older than `id` and the shared files no newer
    /// manifest lists (once `id` is complete for the job, no restore point is older); how many
    /// objects went.
    pub async fn retain_from(&self, id: u64) -> Result<usize, MirrorError> {
        let (chks, shared) = self.objects().await?;
        let mut deleted = 0;
        let mut referenced = HashSet::new();
        for (cid, keys) in &chks {
            if *cid < id {
                for k in keys {
                    self.delete(k).await?;
                    deleted += 1;
                }
                continue;
            }
            let manifest = self.chk(*cid).join(MANIFEST);
            if !keys.contains(&manifest) {
                continue;
            }
            let (_, list) = self.remote_manifest(*cid).await?;
            for f in list.iter().filter(|f| f.shared) {
                referenced.insert(self.key(*cid, f).to_string());
            }
        }
        for k in shared {
            if !referenced.contains(k.as_ref()) {
                self.delete(&k).await?;
                self.known().remove(k.as_ref());
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn delete(&self, key: &ObjPath) -> Result<(), MirrorError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(key)(e)),
        }
    }
}

/// Copies object `from` of `src` to `to` in `dst`, in parts when larger than one.
async fn copy_object(
    src: &Arc<dyn ObjectStore>,
    from: &ObjPath,
    dst: &Arc<dyn ObjectStore>,
    to: &ObjPath,
    len: u64,
) -> Result<(), MirrorError> {
    let stream = src.get(from).await.map_err(store_err(from))?.into_stream();
    let chunks = stream.map(|c| c.map_err(store_err(from)));
    put_chunks(dst, to, len, chunks).await
}

/// Writes the `len` bytes of `chunks` to `to` in `dst`: in one put when they fit in a part,
/// else as a multipart upload of parts of [`PART`] bytes, [`PARTS_IN_FLIGHT`] at once
/// (aborted when a chunk or a part fails), never whole in memory.
async fn put_chunks(
    dst: &Arc<dyn ObjectStore>,
    to: &ObjPath,
    len: u64,
    chunks: impl futures::Stream<Item = Result<bytes::Bytes, MirrorError>>,
) -> Result<(), MirrorError> {
    let mut chunks = std::pin::pin!(chunks);
    if len <= PART as u64 {
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        while let Some(chunk) = chunks.next().await {
            buf.extend_from_slice(&chunk?);
        }
        dst.put(to, PutPayload::from(buf))
            .await
            .map_err(store_err(to))?;
        return Ok(());
    }
    let upload = dst.put_multipart(to).await.map_err(store_err(to))?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
    while let Some(chunk) = chunks.next().await {
        let ready = match chunk {
            Ok(c) => w
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map(|()| c)
                .map_err(store_err(to)),
            Err(e) => Err(e),
        };
        match ready {
            Ok(c) => w.put(c),
            Err(e) => {
                let _ = w.abort().await;
                return Err(e);
            }
        }
    }
    w.finish().await.map_err(store_err(to))?;
    Ok(())
}

async fn read_full(f: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = f.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// The commit hook of a node whose checkpoints are copied to the job's store: uploads each
/// checkpoint before recording it in the commit log, and once the job completed it deletes the
/// copies no restore can need.
pub struct Mirrored {
    mirror: Arc<CheckpointMirror>,
    log: Arc<CommitLog>,
    /// A directory removed once this node's first checkpoint is written (a rescale's copies).
    after_first: Arc<std::sync::Mutex<Option<std::path::PathBuf>>>,
}

impl std::fmt::Debug for Mirrored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirrored")
            .field("mirror", &self.mirror)
            .field("log", &self.log)
            .finish()
    }
}

impl Mirrored {
    /// `log`'s records, each made once `mirror` copied the checkpoint.
    pub fn new(mirror: Arc<CheckpointMirror>, log: CommitLog) -> Self {
        Self {
            mirror,
            log: Arc::new(log),
            after_first: Arc::default(),
        }
    }

    /// Also removes `dir` once this node's first checkpoint is copied and recorded: the copies
    /// of a savepoint's parts a rescaled run restored from, no longer read (a restart before
    /// the job's first complete checkpoint copies them again).
    pub fn removing_after_first(self, dir: std::path::PathBuf) -> Self {
        *self
            .after_first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dir);
        self
    }
}

impl CheckpointCommit for Mirrored {
    fn prepared(&self, id: u64, last: bool) -> BoxFuture<'static, Result<(), String>> {
        let (mirror, log) = (Arc::clone(&self.mirror), Arc::clone(&self.log));
        let after_first = Arc::clone(&self.after_first);
        Box::pin(async move {
            // A failed copy fails the checkpoint here; the coordinator records the abort.
            if let Err(e) = mirror.upload(id).await {
                return Err(format!("copying it to the store failed: {e}"));
            }
            log.prepared(id, last).await?;
            let done = after_first
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(dir) = done {
                match tokio::fs::remove_dir_all(&dir).await {
                    Ok(()) => {
                        tracing::info!(checkpoint = id, dir = %dir.display(), "removed the rescale copies")
                    }
                    Err(e) => {
                        tracing::warn!(checkpoint = id, dir = %dir.display(), error = %e, "cannot remove the rescale copies")
                    }
                }
            }
            if let Err(e) = mirror.retain_from(id).await {
                tracing::warn!(checkpoint = id, error = %e, "cannot delete older checkpoint copies");
            }
            Ok(())
        })
    }

    fn aborted(&self, id: u64) -> BoxFuture<'static, ()> {
        self.log.aborted(id)
    }
}
