//! Job attempt epochs and fencing: a node from an old attempt cannot commit.
//!
//! The coordinator numbers every attempt of a job (start, restart after a node loss,
//! coordinator failover) with an [`Epoch`] one higher than the last. Every node of an attempt
//! commits (checkpoint manifest writes, sink commits) through a [`Fence`] carrying that epoch.
//! The storage side keeps the highest epoch it has seen in an [`EpochStore`] and admits a
//! commit only when its epoch is at least that high, so once an attempt has written, every
//! older attempt's writes are refused with [`FenceError::Stale`]. The check and the write run
//! under one lock ([`Fence::commit`]), so no newer epoch can slip between them.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The attempt number of a job (0 before the first attempt).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch of the first attempt.
    pub const FIRST: Epoch = Epoch(1);

    /// The next attempt's epoch.
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// Why a fenced commit was refused.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// A newer attempt has already committed to this storage.
    #[error("{what}: write from {attempt} refused, storage has seen {highest}")]
    Stale {
        /// What was being committed.
        what: String,
        /// The writer's epoch.
        attempt: Epoch,
        /// The highest epoch the storage has seen.
        highest: Epoch,
    },
    /// The epoch record could not be read or written.
    #[error("epoch record {path}: {source}")]
    Io {
        /// The record file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The epoch record holds something else than a number.
    #[error("epoch record {path} is corrupt: {content:?}")]
    Corrupt {
        /// The record file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
    /// The commit itself failed (after the epoch was admitted).
    #[error("{what}: {message}")]
    Commit {
        /// What was being committed.
        what: String,
        /// The failure.
        message: String,
    },
}

/// Storage's record of the highest epoch that wrote to it.
pub trait EpochStore: Send + Sync {
    /// The highest epoch seen.
    fn highest(&self) -> Result<Epoch, FenceError>;
    /// Records `epoch` as the highest seen (called only with an epoch at least as high).
    fn record(&self, epoch: Epoch) -> Result<(), FenceError>;
}

/// An epoch record in memory (one process).
#[derive(Debug, Default)]
pub struct MemoryEpochStore {
    highest: Mutex<Epoch>,
}

impl MemoryEpochStore {
    /// A record that has seen no epoch.
    pub fn new() -> Self {
        Self::default()
    }
}

impl EpochStore for MemoryEpochStore {
    fn highest(&self) -> Result<Epoch, FenceError> {
        Ok(*self.highest.lock().unwrap_or_else(|p| p.into_inner()))
    }
    fn record(&self, epoch: Epoch) -> Result<(), FenceError> {
        let mut h = self.highest.lock().unwrap_or_else(|p| p.into_inner());
        *h = (*h).max(epoch);
        Ok(())
    }
}

/// An epoch record in a file beside the storage it guards (a checkpoint folder, a sink's
/// output folder), replaced atomically (write to a temporary file, rename). Processes sharing
/// the folder see each other's epochs; the check-and-write is atomic within one process.
#[derive(Debug)]
pub struct FileEpochStore {
    path: PathBuf,
}

impl FileEpochStore {
    /// The record `EPOCH` in folder `dir` (created when missing).
    pub fn in_dir(dir: impl AsRef<Path>) -> Result<Self, FenceError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|source| FenceError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: dir.join("EPOCH"),
        })
    }

    fn io(&self, source: std::io::Error) -> FenceError {
        FenceError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl EpochStore for FileEpochStore {
    fn highest(&self) -> Result<Epoch, FenceError> {
        match fs::read_to_string(&self.path) {
            Ok(s) => s
                .trim()
                .parse::<u64>()
                .map(Epoch)
                .map_err(|_| FenceError::Corrupt {
                    path: self.path.clone(),
                    content: s.chars().take(64).collect(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Epoch::default()),
            Err(e) => Err(self.io(e)),
        }
    }
    fn record(&self, epoch: Epoch) -> Result<(), FenceError> {
        // A temporary file of this writer's own: processes sharing the folder record at once.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .path
            .with_extension(format!("{}.{n}.tmp", std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(|e| self.io(e))?;
        writeln!(f, "{}", epoch.0).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }
}

/// The guard one attempt commits through: admits a commit only if no newer epoch has
/// written to the storage.
#[derive(Clone)]
pub struct Fence {
    epoch: Epoch,
    store: Arc<dyn EpochStore>,
    lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence").field("epoch", &self.epoch).finish()
    }
}

/// The storage side of fencing: hands out [`Fence`]s that share one record and one lock.
#[derive(Clone)]
pub struct FencedStorage {
    store: Arc<dyn EpochStore>,
    lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for FencedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencedStorage").finish()
    }
}

impl FencedStorage {
    /// Storage guarded by this epoch record.
    pub fn new(store: Arc<dyn EpochStore>) -> Self {
        Self {
            store,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The fence an attempt with `epoch` commits through.
    pub fn fence(&self, epoch: Epoch) -> Fence {
        Fence {
            epoch,
            store: Arc::clone(&self.store),
            lock: Arc::clone(&self.lock),
        }
    }

    /// Starts attempt `epoch`: records it as the highest seen at once, so every older
    /// attempt's commits are refused from now on, and returns its fence. Refused when a newer
    /// attempt already started.
    pub fn begin(&self, epoch: Epoch) -> Result<Fence, FenceError> {
        let fence = self.fence(epoch);
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        fence.admit("attempt start")?;
        self.store.record(epoch)?;
        Ok(fence)
    }

    /// The highest epoch that started or committed.
    pub fn highest(&self) -> Result<Epoch, FenceError> {
        self.store.highest()
    }
}

impl Fence {
    /// This attempt's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Fails with [`FenceError::Stale`] if a newer attempt has committed.
    pub fn check(&self, what: &str) -> Result<(), FenceError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.admit(what)
    }

    /// Runs `write` only if no newer attempt has committed, and records this epoch as the
    /// highest seen first (so any older attempt is refused from then on).
    pub fn commit<T, E: std::fmt::Display>(
        &self,
        what: &str,
        write: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, FenceError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.admit(what)?;
        self.store.record(self.epoch)?;
        write().map_err(|e| FenceError::Commit {
            what: what.to_string(),
            message: e.to_string(),
        })
    }

    fn admit(&self, what: &str) -> Result<(), FenceError> {
        let highest = self.store.highest()?;
        if self.epoch < highest {
            tracing::warn!(
                what,
                attempt = self.epoch.0,
                highest = highest.0,
                "stale write refused"
            );
            return Err(FenceError::Stale {
                what: what.to_string(),
                attempt: self.epoch,
                highest,
            });
        }
        Ok(())
    }
}
