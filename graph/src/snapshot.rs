//! Snapshots: the saved state of one running stage instance, as bytes a state backend can
//! persist (serde + postcard), taken and restored through the logic traits' hooks.
//!
//! A snapshot is either bytes (encoded on the stage's path) or deferred: a writer the stage
//! hands over at its barrier (e.g. a frozen state-backend snapshot) that the checkpoint store
//! runs off the stage's path, streaming the state into the stage's file. A deferred snapshot
//! may also offer the changes since the stage's snapshot at an earlier checkpoint
//! ([`Snapshot::with_delta`]): the store writes those instead when it holds that checkpoint. A
//! restored snapshot is bytes, or files (a large state, or a base and its increments) that the
//! stage reads in blocks ([`Snapshot::parts`]).

use crate::StageError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

/// The writer of a deferred snapshot: streams the state into `out`, returns the bytes written.
pub type DeferredWrite = Box<dyn FnOnce(&mut dyn Write) -> Result<u64, SnapshotError> + Send>;

/// The state of one stage instance, encoded; stateless stages have none.
#[derive(Clone)]
pub struct Snapshot(Repr);

#[derive(Clone)]
enum Repr {
    Bytes(Vec<u8>),
    /// Shared by the clones (a finished stage's state stands in for it in later checkpoints),
    /// with the changes since an earlier checkpoint when the stage offers them.
    Deferred(Arc<Mutex<Deferred>>, Option<Arc<Delta>>),
    /// Restored from verified files: a base, then increments to apply in order.
    Files(Arc<Files>),
}

/// The changes since the stage's snapshot at checkpoint `since`, not written yet (`None`:
/// the stage keeps its state incrementally but has no delta this time).
struct Delta {
    since: Option<(u64, Mutex<Option<DeferredWrite>>)>,
}

/// The files of a restored snapshot, and the bytes of a single one once asked for.
struct Files {
    parts: Vec<PathBuf>,
    loaded: std::sync::OnceLock<Result<Vec<u8>, String>>,
}

/// Where a deferred snapshot is: not written yet, written to a file (later writes copy it),
/// or failed.
enum Deferred {
    Pending(DeferredWrite),
    Written(PathBuf),
    Failed(String),
}

impl PartialEq for Snapshot {
    /// Bytes compare by content, deferred snapshots by identity.
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Bytes(a), Repr::Bytes(b)) => a == b,
            (Repr::Deferred(a, _), Repr::Deferred(b, _)) => Arc::ptr_eq(a, b),
            (Repr::Files(a), Repr::Files(b)) => a.parts == b.parts,
            _ => false,
        }
    }
}

impl Eq for Snapshot {}

impl std::hash::Hash for Snapshot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match &self.0 {
            Repr::Bytes(b) => b.hash(state),
            Repr::Deferred(d, _) => (Arc::as_ptr(d) as usize).hash(state),
            Repr::Files(f) => f.parts.hash(state),
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Repr::Bytes(b) => f.debug_tuple("Snapshot").field(b).finish(),
            Repr::Deferred(..) => f.write_str("Snapshot(deferred)"),
            Repr::Files(files) => f.debug_tuple("Snapshot").field(&files.parts).finish(),
        }
    }
}

/// A snapshot that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The state could not be encoded.
    #[error("cannot encode the stage state: {0}")]
    Encode(String),
    /// The bytes do not hold a state of the expected type.
    #[error("cannot decode the stage state as {ty}: {reason}")]
    Decode {
        /// The type the stage expected.
        ty: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A deferred snapshot could not be written.
    #[error("cannot write the stage state: {0}")]
    Write(String),
}

impl From<std::io::Error> for SnapshotError {
    fn from(e: std::io::Error) -> Self {
        SnapshotError::Write(e.to_string())
    }
}

impl From<SnapshotError> for StageError {
    fn from(e: SnapshotError) -> Self {
        StageError::internal(e.to_string())
    }
}

impl Snapshot {
    /// Encodes `state`.
    pub fn encode<S: Serialize + ?Sized>(state: &S) -> Result<Self, SnapshotError> {
        postcard::to_allocvec(state)
            .map(Self::from_bytes)
            .map_err(|e| SnapshotError::Encode(e.to_string()))
    }
    /// Decodes the state as an `S`; the whole snapshot must be used.
    pub fn decode<S: DeserializeOwned>(&self) -> Result<S, SnapshotError> {
        let err = |reason: String| SnapshotError::Decode {
            ty: std::any::type_name::<S>(),
            reason,
        };
        let bytes = match &self.0 {
            Repr::Bytes(b) => b.as_slice(),
            Repr::Files(f) if f.parts.len() == 1 => self.load(f).map_err(err)?,
            Repr::Files(_) => {
                return Err(err(
                    "the state is a base and increments: read it with Snapshot::parts".into(),
                ));
            }
            Repr::Deferred(..) => {
                return Err(err(
                    "a deferred snapshot is decoded once written and read back".into(),
                ));
            }
        };
        match postcard::take_from_bytes::<S>(bytes) {
            Ok((s, [])) => Ok(s),
            Ok((_, rest)) => Err(err(format!("{} bytes left over", rest.len()))),
            Err(e) => Err(err(e.to_string())),
        }
    }
    /// A snapshot from bytes a backend stored.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Repr::Bytes(bytes))
    }
    /// A snapshot whose encoding `write` does later, off the stage's path, when the checkpoint
    /// store writes the stage's file (the stage pays only for freezing its state).
    pub fn deferred(
        write: impl FnOnce(&mut dyn Write) -> Result<u64, SnapshotError> + Send + 'static,
    ) -> Self {
        Self(Repr::Deferred(
            Arc::new(Mutex::new(Deferred::Pending(Box::new(write)))),
            None,
        ))
    }
    /// A deferred snapshot that can also be written as `delta`: the changes since the stage's
    /// snapshot at checkpoint `since`, applied on top of what the store kept of that one (the
    /// store picks; a snapshot that is not deferred is returned as it is).
    pub fn with_delta(
        self,
        since: u64,
        delta: impl FnOnce(&mut dyn Write) -> Result<u64, SnapshotError> + Send + 'static,
    ) -> Self {
        let write: DeferredWrite = Box::new(delta);
        self.with(Some((since, Mutex::new(Some(write)))))
    }
    /// A deferred snapshot of a stage that keeps its state incrementally, without a delta
    /// this time (its first, or after a change its deltas do not record): the store keeps it
    /// where later deltas can build on it (a snapshot that is not deferred is returned as it is).
    pub fn incremental(self) -> Self {
        self.with(None)
    }
    fn with(self, since: Option<(u64, Mutex<Option<DeferredWrite>>)>) -> Self {
        match self.0 {
            Repr::Deferred(d, _) => Self(Repr::Deferred(d, Some(Arc::new(Delta { since })))),
            other => Self(other),
        }
    }
    /// Whether the stage keeps this state incrementally ([`Snapshot::incremental`],
    /// [`Snapshot::with_delta`]).
    pub fn is_incremental(&self) -> bool {
        matches!(self.0, Repr::Deferred(_, Some(_)))
    }
    /// The checkpoint whose snapshot of the stage the delta applies to, if it offers one.
    pub fn delta_since(&self) -> Option<u64> {
        match &self.0 {
            Repr::Deferred(_, Some(d)) => d.since.as_ref().map(|(id, _)| *id),
            _ => None,
        }
    }
    /// Writes the delta ([`Snapshot::with_delta`]) to `out` instead of the whole state;
    /// returns the bytes written. Only once; an error when the snapshot offers none.
    pub fn write_delta_to(&self, out: &mut dyn Write) -> Result<u64, SnapshotError> {
        let Repr::Deferred(_, Some(d)) = &self.0 else {
            return Err(SnapshotError::Write("the snapshot offers no delta".into()));
        };
        let Some((_, w)) = &d.since else {
            return Err(SnapshotError::Write("the snapshot offers no delta".into()));
        };
        let write = w
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| SnapshotError::Write("the delta was written already".into()))?;
        write(out)
    }
    /// A restored snapshot in verified files: a base, then increments applied in order
    /// (read in blocks by the stage, [`Snapshot::parts`]; one file is also read whole by
    /// [`Snapshot::as_bytes`] and [`Snapshot::decode`] when asked).
    pub fn from_files(parts: Vec<PathBuf>) -> Self {
        Self(Repr::Files(Arc::new(Files {
            parts,
            loaded: std::sync::OnceLock::new(),
        })))
    }
    /// The files of a restored snapshot ([`Snapshot::from_files`]), base first; `None` for
    /// bytes and deferred snapshots.
    pub fn parts(&self) -> Option<&[PathBuf]> {
        match &self.0 {
            Repr::Files(f) => Some(&f.parts),
            _ => None,
        }
    }
    /// Whether the snapshot is deferred (its bytes exist only once written).
    pub fn is_deferred(&self) -> bool {
        matches!(self.0, Repr::Deferred(..))
    }
    /// The encoded bytes; empty for a deferred snapshot (see [`Snapshot::write_to`]) and for
    /// a base with increments (see [`Snapshot::parts`]); a single file is read on first use
    /// (empty when it cannot be read; [`Snapshot::decode`] returns the error).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Bytes(b) => b,
            Repr::Deferred(..) => &[],
            Repr::Files(f) if f.parts.len() == 1 => self.load(f).unwrap_or_default(),
            Repr::Files(_) => &[],
        }
    }
    /// The bytes of the single file of `f`, read once (a read error is kept and returned).
    fn load<'a>(&self, f: &'a Files) -> Result<&'a [u8], String> {
        f.loaded
            .get_or_init(|| {
                let path = &f.parts[0];
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
            })
            .as_deref()
            .map_err(Clone::clone)
    }
    /// Writes the snapshot to `out`, returning the bytes written. A deferred snapshot runs its
    /// writer the first time and, once [`Snapshot::written_to`] recorded the file, copies that
    /// file afterwards; a writer that failed fails every later write.
    pub fn write_to(&self, out: &mut dyn Write) -> Result<u64, SnapshotError> {
        let cell = match &self.0 {
            Repr::Bytes(b) => {
                out.write_all(b)?;
                return Ok(b.len() as u64);
            }
            Repr::Files(f) => {
                let [path] = f.parts.as_slice() else {
                    return Err(SnapshotError::Write(
                        "a base with increments cannot be written as one snapshot".into(),
                    ));
                };
                return std::fs::File::open(path)
                    .and_then(|mut file| std::io::copy(&mut file, out))
                    .map_err(|e| SnapshotError::Write(format!("copying {}: {e}", path.display())));
            }
            Repr::Deferred(d, _) => d,
        };
        let mut d = cell.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *d, Deferred::Failed("being written".into())) {
            Deferred::Pending(write) => match write(out) {
                Ok(n) => {
                    *d = Deferred::Written(PathBuf::new());
                    Ok(n)
                }
                Err(e) => {
                    *d = Deferred::Failed(e.to_string());
                    Err(e)
                }
            },
            Deferred::Written(path) => {
                let copied = std::fs::File::open(&path)
                    .and_then(|mut f| std::io::copy(&mut f, out))
                    .map_err(|e| SnapshotError::Write(format!("copying {}: {e}", path.display())));
                *d = Deferred::Written(path);
                copied
            }
            Deferred::Failed(reason) => {
                *d = Deferred::Failed(reason.clone());
                Err(SnapshotError::Write(format!(
                    "an earlier write failed: {reason}"
                )))
            }
        }
    }
    /// Records that the deferred snapshot now lives in the file `path` (later writes copy it);
    /// nothing for bytes.
    pub fn written_to(&self, path: PathBuf) {
        if let Repr::Deferred(d, _) = &self.0 {
            let mut d = d.lock().unwrap_or_else(PoisonError::into_inner);
            if matches!(*d, Deferred::Written(_)) {
                *d = Deferred::Written(path);
            }
        }
    }
}

/// How a stage whose state type is generic encodes it: present when the type is serde-capable
/// (built with [`StateCodec::serde`]), so a generic operator snapshots only where it can.
pub struct StateCodec<S> {
    encode: fn(&S) -> Result<Snapshot, SnapshotError>,
    decode: fn(&Snapshot) -> Result<S, SnapshotError>,
}

impl<S> Clone for StateCodec<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for StateCodec<S> {}

impl<S> std::fmt::Debug for StateCodec<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateCodec<{}>", std::any::type_name::<S>())
    }
}

impl<S: Serialize + DeserializeOwned> StateCodec<S> {
    /// The serde + postcard codec of `S`.
    pub fn serde() -> Self {
        Self {
            encode: |s| Snapshot::encode(s),
            decode: |b| b.decode(),
        }
    }
}

impl<S> StateCodec<S> {
    /// Encodes a state.
    pub fn encode(&self, state: &S) -> Result<Snapshot, SnapshotError> {
        (self.encode)(state)
    }
    /// Decodes a state.
    pub fn decode(&self, snapshot: &Snapshot) -> Result<S, SnapshotError> {
        (self.decode)(snapshot)
    }
}

/// The error a stateful stage without a codec for its state type returns when asked for a
/// snapshot: checkpointing it would lose its state.
pub fn no_codec<S>(operator: &str) -> StageError {
    StageError::internal(format!(
        "{operator} keeps a {} it cannot snapshot: build it with a state codec",
        std::any::type_name::<S>()
    ))
}

/// The error a stage whose state is not keyed returns when its parallelism changed since the
/// checkpoint (it cannot split its state over the new subtasks).
pub(crate) fn not_rescalable() -> StageError {
    StageError::internal(
        "its state is not keyed, so it cannot be restored at a parallelism other than the \
         checkpoint's: run it at the checkpoint's parallelism",
    )
}

/// The error a stage that keeps no state returns when offered a snapshot.
pub(crate) fn stateless() -> StageError {
    StageError::internal("the stage keeps no state, but a snapshot was offered to it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_a_wrong_type_is_a_typed_error() {
        let s = Snapshot::encode(&(7u64, String::from("ab"))).unwrap();
        assert_eq!(s.decode::<(u64, String)>().unwrap(), (7, "ab".to_owned()));
        let e = Snapshot::from_bytes(vec![0xff])
            .decode::<u64>()
            .unwrap_err();
        assert!(matches!(e, SnapshotError::Decode { ty: "u64", .. }), "{e}");
        let e = Snapshot::encode(&(1u8, 2u8))
            .unwrap()
            .decode::<u8>()
            .unwrap_err();
        assert_eq!(
            e,
            SnapshotError::Decode {
                ty: "u8",
                reason: "1 bytes left over".into()
            }
        );
    }

    #[test]
    fn a_deferred_snapshot_writes_once_then_copies_its_file() {
        let s = Snapshot::deferred(|out| {
            out.write_all(b"state")?;
            Ok(5)
        });
        assert!(s.is_deferred());
        assert_eq!(s.as_bytes(), b"");
        assert!(matches!(
            s.decode::<u8>(),
            Err(SnapshotError::Decode { ty: "u8", .. })
        ));
        let copy = s.clone();
        assert_eq!(copy, s);
        let mut first = Vec::new();
        assert_eq!(s.write_to(&mut first).unwrap(), 5);
        assert_eq!(first, b"state");
        let dir = std::env::temp_dir().join(format!("weir-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s");
        std::fs::write(&file, &first).unwrap();
        copy.written_to(file);
        let mut second = Vec::new();
        assert_eq!(copy.write_to(&mut second).unwrap(), 5);
        assert_eq!(second, b"state");
        std::fs::remove_dir_all(&dir).unwrap();
        let mut third = Vec::new();
        assert!(matches!(
            s.write_to(&mut third),
            Err(SnapshotError::Write(_))
        ));
    }

    #[test]
    fn a_failed_deferred_snapshot_fails_every_write() {
        let s = Snapshot::deferred(|_| Err(SnapshotError::Write("disk full".into())));
        let mut out = Vec::new();
        assert_eq!(
            s.write_to(&mut out).unwrap_err(),
            SnapshotError::Write("disk full".into())
        );
        let e = s.write_to(&mut out).unwrap_err();
        assert_eq!(
            e,
            SnapshotError::Write(
                "an earlier write failed: cannot write the stage state: disk full".into()
            )
        );
        assert_eq!(Snapshot::from_bytes(vec![1]).write_to(&mut out).unwrap(), 1);
        assert_eq!(out, [1]);
    }

    #[test]
    fn a_delta_is_offered_once_beside_the_whole_state() {
        let s = Snapshot::deferred(|out| {
            out.write_all(b"whole")?;
            Ok(5)
        })
        .with_delta(7, |out| {
            out.write_all(b"d")?;
            Ok(1)
        });
        assert_eq!(s.delta_since(), Some(7));
        let mut d = Vec::new();
        assert_eq!(s.clone().write_delta_to(&mut d).unwrap(), 1);
        assert_eq!(d, b"d");
        assert_eq!(
            s.write_delta_to(&mut d).unwrap_err(),
            SnapshotError::Write("the delta was written already".into())
        );
        let mut whole = Vec::new();
        assert_eq!(s.write_to(&mut whole).unwrap(), 5);
        assert_eq!(whole, b"whole");
        let bytes = Snapshot::from_bytes(vec![1]).with_delta(3, |_| Ok(0));
        assert_eq!(bytes.delta_since(), None);
        assert!(!bytes.is_incremental() && s.is_incremental());
        let base = Snapshot::deferred(|_| Ok(0)).incremental();
        assert!(base.is_incremental());
        assert_eq!(base.delta_since(), None);
        assert!(base.write_delta_to(&mut d).is_err());
        assert_eq!(bytes, Snapshot::from_bytes(vec![1]));
    }

    #[test]
    fn a_restored_file_reads_on_demand_and_a_chain_only_by_parts() {
        let dir = std::env::temp_dir().join(format!("weir-snap-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, postcard::to_allocvec(&42u64).unwrap()).unwrap();
        std::fs::write(&b, b"x").unwrap();
        let one = Snapshot::from_files(vec![a.clone()]);
        assert_eq!(one.decode::<u64>().unwrap(), 42);
        assert_eq!(one.as_bytes(), [42]);
        assert_eq!(one.parts(), Some(&[a.clone()][..]));
        let mut copy = Vec::new();
        assert_eq!(one.write_to(&mut copy).unwrap(), 1);
        let chain = Snapshot::from_files(vec![a.clone(), b.clone()]);
        assert_eq!(chain.as_bytes(), b"");
        assert!(matches!(
            chain.decode::<u64>(),
            Err(SnapshotError::Decode { .. })
        ));
        assert!(chain.write_to(&mut copy).is_err());
        assert_eq!(chain.parts().map(<[PathBuf]>::len), Some(2));
        let gone = Snapshot::from_files(vec![dir.join("missing")]);
        assert_eq!(gone.as_bytes(), b"");
        assert!(matches!(
            gone.decode::<u64>(),
            Err(SnapshotError::Decode { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
