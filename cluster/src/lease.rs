//! Leases: at most one owner of a named lease at a time, across processes and machines, for as
//! long as it keeps renewing; what a cluster singleton (and any leader-only work) holds before
//! it acts, so two sides of a partition that both believe they should act cannot both do so.
//!
//! [`StoreLease`] keeps the lease in an object store every node reaches (a local folder on one
//! machine, S3/GCS/Azure in production) with nothing but create-if-absent writes
//! (`PutMode::Create`, which the local file system, the in-memory store and the cloud stores
//! all honour): the lease is a sequence of records `PREFIX/SEQ`, the newest one says who owns
//! it, and every change (take, renew, release) creates the next record, so of two contenders
//! for one change exactly one succeeds. No clocks are compared across machines:
//!
//! - A contender takes a lease owned by another only after it saw the same newest record for a
//!   whole `ttl` on its own clock (the owner stopped renewing), or at once when it is free.
//! - The owner counts itself the owner until `ttl * (1 - margin)` after it *started* the write
//!   that succeeded, which ends before any contender, who started counting only after that
//!   record existed, may take over.
//! - The owner renews every `ttl / 3`; a renewal that finds another record newer than its own
//!   has lost the lease.

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why a lease operation failed (the store could not be read or written).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The object store failed.
    #[error("lease {name}: {source}")]
    Store {
        /// The lease.
        name: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A record of the lease does not decode.
    #[error("lease {name}: record {record} is not a lease record: {reason}")]
    Corrupt {
        /// The lease.
        name: String,
        /// The record's path.
        record: String,
        /// The decoder's reason.
        reason: String,
    },
}

/// A lease one node competes for (each node holds its own value, naming itself).
pub trait Lease: Send + Sync {
    /// Takes the lease, or renews it when this node owns it: whether this node owns it now.
    fn acquire(&self) -> BoxFuture<'_, Result<bool, LeaseError>>;
    /// Gives the lease up (others may take it at once); nothing when this node does not own it.
    fn release(&self) -> BoxFuture<'_, Result<(), LeaseError>>;
    /// Whether this node owns the lease now (its last take or renewal is still valid).
    fn holding(&self) -> bool;
    /// How often an owner renews.
    fn renew_every(&self) -> Duration;
}

/// One record of a lease: its owner, or `None` once released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    owner: Option<String>,
}

/// What a node remembers of a lease.
#[derive(Debug, Default)]
struct Local {
    /// The record this node wrote last and until when it owns the lease by it.
    mine: Option<(u64, Instant)>,
    /// The newest record seen owned by another, and when this node first saw it.
    seen: Option<(u64, Instant)>,
}

/// A lease kept as create-if-absent records in an object store (see the module docs).
pub struct StoreLease {
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    name: String,
    owner: String,
    ttl: Duration,
    margin: f64,
    keep: u64,
    local: Mutex<Local>,
}

impl std::fmt::Debug for StoreLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLease")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl StoreLease {
    /// The lease `name` (records under `leases/NAME/` in `store`) as node `owner` competes for
    /// it: owned for `ttl` after each take or renewal (a tenth of it kept as a margin for
    /// clock drift).
    pub fn new(store: Arc<dyn ObjectStore>, name: &str, owner: &str, ttl: Duration) -> Self {
        Self {
            store,
            prefix: ObjPath::from("leases").join(name),
            name: name.to_owned(),
            owner: owner.to_owned(),
            ttl,
            margin: 0.1,
            keep: 4,
            local: Mutex::new(Local::default()),
        }
    }

    /// The node that owned the lease at the newest record, `None` when free or never taken.
    pub async fn owner(&self) -> Result<Option<String>, LeaseError> {
        Ok(self.newest().await?.and_then(|(_, r)| r.owner))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn store_err(&self, source: object_store::Error) -> LeaseError {
        LeaseError::Store {
            name: self.name.clone(),
            source,
        }
    }

    fn record_path(&self, seq: u64) -> ObjPath {
        self.prefix.clone().join(format!("{seq:020}"))
    }

    /// The newest record and its sequence number.
    async fn newest(&self) -> Result<Option<(u64, Record)>, LeaseError> {
        let mut list = self.store.list(Some(&self.prefix));
        let mut max: Option<u64> = None;
        while let Some(meta) = list.next().await {
            let meta = meta.map_err(|e| self.store_err(e))?;
            if let Some(seq) = meta.location.filename().and_then(|f| f.parse::<u64>().ok()) {
                max = Some(max.map_or(seq, |m| m.max(seq)));
            }
        }
        let Some(seq) = max else { return Ok(None) };
        let path = self.record_path(seq);
        let bytes = match self.store.get(&path).await {
            Ok(g) => g.bytes().await.map_err(|e| self.store_err(e))?,
            // Removed since the listing (an older record being cleaned up cannot be the newest).
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.store_err(e)),
        };
        let rec: Record = serde_json::from_slice(&bytes).map_err(|e| LeaseError::Corrupt {
            name: self.name.clone(),
            record: path.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some((seq, rec)))
    }

    /// Creates record `seq`: `false` when another node created it first.
    async fn create(&self, seq: u64, rec: &Record) -> Result<bool, LeaseError> {
        let body = serde_json::to_vec(rec).map_err(|e| LeaseError::Corrupt {
            name: self.name.clone(),
            record: self.record_path(seq).to_string(),
            reason: e.to_string(),
        })?;
        let opts = PutOptions::from(PutMode::Create);
        match self
            .store
            .put_opts(
                &self.record_path(seq),
                PutPayload::from(Bytes::from(body)),
                opts,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.store_err(e)),
        }
    }

    /// Removes records older than the last `keep` before `seq` (best effort).
    async fn clean(&self, seq: u64) {
        let Some(below) = seq.checked_sub(self.keep) else {
            return;
        };
        let mut list = self.store.list(Some(&self.prefix));
        let mut old = Vec::new();
        while let Some(Ok(meta)) = list.next().await {
            if meta
                .location
                .filename()
                .and_then(|f| f.parse::<u64>().ok())
                .is_some_and(|s| s < below)
            {
                old.push(meta.location);
            }
        }
        for p in old {
            if let Err(e) = self.store.delete(&p).await {
                tracing::debug!(lease = %self.name, record = %p, error = %e, "old lease record not removed");
            }
        }
    }

    async fn try_acquire(&self) -> Result<bool, LeaseError> {
        let started = Instant::now();
        let newest = self.newest().await?;
        let next = newest.as_ref().map_or(0, |(s, _)| s + 1);
        let may = match &newest {
            None => true,
            Some((seq, rec)) => {
                let mut l = self.lock();
                let mine = l.mine.is_some_and(|(m, _)| m == *seq);
                if mine || rec.owner.is_none() {
                    l.seen = None;
                    true
                } else {
                    // Another's (or an earlier incarnation of this node's) record: taken only
                    // once it stayed the newest for a whole ttl.
                    match l.seen {
                        Some((s, since)) if s == *seq => started.duration_since(since) >= self.ttl,
                        _ => {
                            l.seen = Some((*seq, started));
                            l.mine = None;
                            false
                        }
                    }
                }
            }
        };
        if !may {
            self.lock().mine = None;
            return Ok(false);
        }
        let rec = Record {
            owner: Some(self.owner.clone()),
        };
        if self.create(next, &rec).await? {
            let valid = self.ttl.mul_f64(1.0 - self.margin);
            {
                let mut l = self.lock();
                l.mine = Some((next, started + valid));
                l.seen = None;
            }
            self.clean(next).await;
            Ok(true)
        } else {
            let mut l = self.lock();
            l.mine = None;
            l.seen = None;
            Ok(false)
        }
    }

    async fn give_up(&self) -> Result<(), LeaseError> {
        let Some((seq, _)) = self.lock().mine.take() else {
            return Ok(());
        };
        // Free only if nobody wrote after this node's record (else it is not ours to free).
        let _ = self.create(seq + 1, &Record { owner: None }).await?;
        Ok(())
    }
}

impl Lease for StoreLease {
    fn acquire(&self) -> BoxFuture<'_, Result<bool, LeaseError>> {
        Box::pin(self.try_acquire())
    }

    fn release(&self) -> BoxFuture<'_, Result<(), LeaseError>> {
        Box::pin(self.give_up())
    }

    fn holding(&self) -> bool {
        self.lock()
            .mine
            .is_some_and(|(_, until)| Instant::now() < until)
    }

    fn renew_every(&self) -> Duration {
        self.ttl / 3
    }
}
