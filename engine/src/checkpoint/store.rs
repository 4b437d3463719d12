//! The checkpoint store: one directory per checkpoint under the run's checkpoint directory,
//! holding one file per stage subtask and a manifest (written last, renamed into place) that
//! lists every file with its length and xxh3 checksum; loading verifies all of it and falls back
//! to the previous complete checkpoint. A stage that keeps its state incrementally has a base
//! and increments in the shared directory beside the checkpoints, which a checkpoint's manifest
//! lists in order; retention removes the shared files no retained checkpoint lists.

use super::manifest::{self, Entry, Manifest, Part};
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use weir_graph::{Snapshot, StageId};
use xxhash_rust::xxh3::xxh3_64;

/// The manifest's name inside a checkpoint directory.
pub const MANIFEST: &str = "MANIFEST";
/// The directory, beside the checkpoint directories, holding the bases and increments of
/// incremental states (each checkpoint's manifest names the ones it uses).
pub const SHARED: &str = "shared";
/// Increments on one base at most: the next checkpoint writes a new base.
pub const MAX_INCREMENTS: usize = 32;
/// Increments may grow to this many times their base's size before the next checkpoint
/// writes a new base (a restore then reads at most `1 + INCREMENTS_PER_BASE` times the base).
pub const INCREMENTS_PER_BASE: u64 = 2;
/// A restored state in one file up to this size is read into memory; larger ones (and bases
/// with increments) are handed to the stage as files, read in blocks.
const INLINE: u64 = 4 << 20;

/// A checkpoint that could not be written or restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Writing or reading a file failed.
    #[error("checkpoint file {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The job's commit log did not complete a checkpoint this run wrote.
    #[error("checkpoint {id} was not completed by every participant: {reason}")]
    Commit {
        /// The checkpoint.
        id: u64,
        /// Why (a participant failed, or the wait timed out).
        reason: String,
    },
    /// A manifest is malformed.
    #[error("checkpoint manifest {path} is corrupt: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A stage file does not match its manifest entry.
    #[error("checkpoint file {path} is corrupt: {reason}")]
    Corrupt {
        /// The stage file.
        path: PathBuf,
        /// What is wrong (missing, length, checksum).
        reason: String,
    },
    /// Restoring a stage from its snapshot failed.
    #[error("restoring stage {stage} subtask {subtask} from checkpoint {id}: {reason}")]
    Restore {
        /// The checkpoint.
        id: u64,
        /// The stage's stable id.
        stage: StageId,
        /// The subtask.
        subtask: usize,
        /// What the stage said.
        reason: String,
    },
    /// The restored savepoint holds state of stages the graph no longer has.
    #[error(
        "savepoint {path} holds state of stages not in the graph: {stages} (allow_unmatched() ignores them)"
    )]
    Unmatched {
        /// The savepoint.
        path: PathBuf,
        /// The stable ids of the stages, with their subtasks.
        stages: String,
    },
    /// A savepoint could not be taken.
    #[error("savepoint {id}: {reason}")]
    Savepoint {
        /// The checkpoint id of the savepoint.
        id: u64,
        /// What went wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
    move |e| CheckpointError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// What one completed checkpoint holds: every acknowledged stage subtask, with its state when
/// it has some.
pub type StageStates = std::collections::BTreeMap<(StageId, usize), Option<Snapshot>>;

/// A checkpoint loaded from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The checkpoint's id.
    pub id: u64,
    /// The state of each stage subtask that had some.
    pub states: HashMap<(StageId, usize), Snapshot>,
    /// Every stage subtask the checkpoint holds, with state or without.
    pub stages: std::collections::BTreeSet<(StageId, usize)>,
    /// How many subtasks each stage ran (every subtask has a manifest line, with state or not).
    pub parallelism: HashMap<StageId, usize>,
    /// Newer checkpoints with a manifest that were skipped as corrupt, each with its error.
    pub skipped: Vec<String>,
}

/// The directory of checkpoint `id`.
pub fn checkpoint_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("chk-{id:020}"))
}

fn file_name(stage: StageId, subtask: usize) -> String {
    format!("{stage}-{subtask}.state")
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}

/// Where the checkpoints of a run directory build on each other: the run directory and the
/// newest complete checkpoint before the one being written.
struct Chains<'a> {
    root: &'a Path,
    prev: Option<Manifest>,
}

/// Writes checkpoint `id` under `root` (stage files, then the manifest renamed into place),
/// then removes all but the newest `retain` complete checkpoints and the shared files none of
/// them references. A stage that keeps its state incrementally has its base and increments in
/// the run directory's `shared/` ([`SHARED`]): an increment when the previous complete
/// checkpoint holds the snapshot it applies to, else a new base. A write that fails (a full
/// disk) removes the checkpoint's partial directory and the shared files it wrote, and leaves
/// the older ones as they are.
pub fn write(
    root: &Path,
    id: u64,
    states: &StageStates,
    retain: usize,
) -> Result<PathBuf, CheckpointError> {
    write_sized(root, id, states, retain).map(|(p, _)| p)
}

/// [`write`], also returning how many bytes it wrote (stage files, increments and manifest;
/// shared files an older checkpoint wrote are not counted again).
pub fn write_sized(
    root: &Path,
    id: u64,
    states: &StageStates,
    retain: usize,
) -> Result<(PathBuf, u64), CheckpointError> {
    let dir = checkpoint_dir(root, id);
    let chains = Chains {
        root,
        prev: previous(root, id),
    };
    let mut shared = Vec::new();
    let mut bytes = 0;
    if let Err(e) = write_into(&dir, id, states, Some(&chains), &mut shared, &mut bytes) {
        // A disk full (or any write error) fails this checkpoint only: its partial directory
        // goes (it is never restored, and its space is freed), the older ones stay.
        discard(&dir);
        for f in shared {
            let _ = fs::remove_file(f);
        }
        return Err(e);
    }
    weir_graph::failpoint("checkpoint.manifest_written");
    // The checkpoint is complete: a retention failure only delays the removal of older ones
    // (the next checkpoint's retention removes them).
    if let Err(e) = prune(root, retain) {
        tracing::warn!(checkpoint = id, error = %e, "checkpoint retention failed");
    }
    Ok((dir, bytes))
}

/// The manifest of the newest complete checkpoint under `root` older than `id` (`None` when
/// there is none or it cannot be parsed: the next snapshots are then bases).
fn previous(root: &Path, id: u64) -> Option<Manifest> {
    let (_, dir) = list(root)
        .ok()?
        .into_iter()
        .find(|(c, d)| *c < id && d.join(MANIFEST).exists())?;
    Manifest::read(&dir.join(MANIFEST)).ok()
}

/// Removes the directory of a checkpoint that could not be written completely (best effort:
/// one left behind has no manifest, or an unverifiable one, and is never restored).
pub(crate) fn discard(dir: &Path) {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a partial checkpoint")
        }
    }
}

/// A writer that counts and hashes (xxh3, as the manifest records) what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: xxhash_rust::xxh3::Xxh3,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Streams `write` into the file `path` (synced); returns its length and xxh3.
fn write_stream(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<u64, weir_graph::SnapshotError>,
) -> Result<(u64, u64), CheckpointError> {
    let file = fs::File::create(path)
        .and_then(|f| weir_graph::write_fault("checkpoint.write", path).map(|()| f))
        .map_err(io(path))?;
    let mut out = Hashing {
        inner: std::io::BufWriter::with_capacity(1 << 16, file),
        hasher: xxhash_rust::xxh3::Xxh3::new(),
        len: 0,
    };
    write(&mut out).map_err(|e| CheckpointError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let (len, sum) = (out.len, out.hasher.digest());
    out.inner
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(io(path))?;
    Ok((len, sum))
}

/// Writes one stage file (a deferred snapshot is encoded now, streamed into the file, and
/// records the file for later checkpoints); returns its length and xxh3.
fn write_state(path: &Path, s: &Snapshot) -> Result<(u64, u64), CheckpointError> {
    if !s.is_deferred() {
        let bytes = s.as_bytes();
        fs::File::create(path)
            .and_then(|mut f| {
                weir_graph::write_fault("checkpoint.write", path)?;
                f.write_all(bytes)?;
                f.sync_all()
            })
            .map_err(io(path))?;
        return Ok((bytes.len() as u64, xxh3_64(bytes)));
    }
    let written = write_stream(path, |out| s.write_to(out))?;
    s.written_to(path.to_owned());
    Ok(written)
}

/// Writes checkpoint `id` into `dir` itself (a savepoint: self-contained, never pruned).
pub fn write_dir(dir: &Path, id: u64, states: &StageStates) -> Result<(), CheckpointError> {
    write_into(dir, id, states, None, &mut Vec::new(), &mut 0)
}

/// Whether the state a checkpoint keeps in `parts` takes one more increment: a base and
/// increments in the shared directory, fewer than [`MAX_INCREMENTS`], smaller together than
/// [`INCREMENTS_PER_BASE`] times the base.
fn extendable(parts: &[Part]) -> bool {
    let shared = format!("../{SHARED}/");
    let Some((base, increments)) = parts.split_first() else {
        return false;
    };
    parts.iter().all(|p| p.name.starts_with(&shared))
        && increments.len() < MAX_INCREMENTS
        && increments.iter().map(|p| p.len).sum::<u64>() < INCREMENTS_PER_BASE * base.len
}

/// The files of an incremental stage subtask's state in checkpoint `id`: the previous
/// checkpoint's with the snapshot's delta appended when it builds on them, else a new base.
/// Every shared file written is added to `written`.
fn write_incremental(
    chains: &Chains<'_>,
    id: u64,
    (stage, sub): (StageId, usize),
    s: &Snapshot,
    written: &mut Vec<PathBuf>,
    bytes: &mut u64,
) -> Result<Vec<Part>, CheckpointError> {
    let shared = chains.root.join(SHARED);
    fs::create_dir_all(&shared).map_err(io(&shared))?;
    let prev = chains
        .prev
        .as_ref()
        .filter(|p| s.delta_since() == Some(p.id))
        .and_then(|p| p.entries.iter().find(|e| e.stage == stage && e.sub == sub))
        .filter(|e| extendable(&e.parts));
    if let Some(prev) = prev {
        let name = format!("{stage}-{sub}-{id}.delta");
        let path = shared.join(&name);
        written.push(path.clone());
        let (len, sum) = write_stream(&path, |out| s.write_delta_to(out))?;
        *bytes += len;
        let mut parts = prev.parts.clone();
        parts.push(Part {
            name: format!("../{SHARED}/{name}"),
            len,
            sum,
        });
        return Ok(parts);
    }
    let name = format!("{stage}-{sub}-{id}.base");
    let path = shared.join(&name);
    written.push(path.clone());
    let (len, sum) = write_state(&path, s)?;
    *bytes += len;
    Ok(vec![Part {
        name: format!("../{SHARED}/{name}"),
        len,
        sum,
    }])
}

/// Writes the stage files and the manifest of checkpoint `id` into `dir`; incremental states
/// go to the shared directory of `chains` (a savepoint, without, holds whole states only).
fn write_into(
    dir: &Path,
    id: u64,
    states: &StageStates,
    chains: Option<&Chains<'_>>,
    written: &mut Vec<PathBuf>,
    bytes: &mut u64,
) -> Result<(), CheckpointError> {
    let dir = dir.to_owned();
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut entries = Vec::with_capacity(states.len());
    for ((stage, sub), snap) in states {
        let parts = match (snap, chains) {
            (None, _) => Vec::new(),
            (Some(s), Some(c)) if s.is_incremental() => {
                write_incremental(c, id, (*stage, *sub), s, written, bytes)?
            }
            (Some(s), _) => {
                let name = file_name(*stage, *sub);
                let (len, sum) = write_state(&dir.join(&name), s)?;
                *bytes += len;
                vec![Part { name, len, sum }]
            }
        };
        entries.push(Entry {
            stage: *stage,
            sub: *sub,
            parts,
        });
    }
    if !written.is_empty()
        && let Some(c) = chains
    {
        sync_dir(&c.root.join(SHARED))?;
    }
    weir_graph::failpoint("checkpoint.files_written");
    let manifest = Manifest { id, entries }.render();
    let tmp = dir.join(".MANIFEST.tmp");
    fs::File::create(&tmp)
        .and_then(|mut f| {
            weir_graph::write_fault("checkpoint.write", &tmp)?;
            f.write_all(manifest.as_bytes())?;
            f.sync_all()
        })
        .map_err(io(&tmp))?;
    *bytes += manifest.len() as u64;
    let path = dir.join(MANIFEST);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(&dir)
}

/// Checkpoint directories under `root`, newest first.
fn list(root: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(root)(e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io(root))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("chk-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((id, entry.path()));
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    Ok(out)
}

/// Removes every checkpoint older than the newest `retain` complete ones (and incomplete ones
/// older than the newest complete one), then every shared file no remaining checkpoint
/// references.
fn prune(root: &Path, retain: usize) -> Result<(), CheckpointError> {
    let mut complete = 0;
    let mut kept = Vec::new();
    for (_, dir) in list(root)? {
        let has_manifest = dir.join(MANIFEST).exists();
        if complete >= retain.max(1) || (complete > 0 && !has_manifest) {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
            weir_graph::failpoint("checkpoint.pruned_one");
        } else if has_manifest {
            complete += 1;
            kept.push(dir);
        }
    }
    prune_shared(root, &kept)
}

/// Removes the files of `root`'s shared directory that none of the checkpoints in `kept`
/// references (a checkpoint whose manifest cannot be parsed is never restored, so its files
/// do not count).
fn prune_shared(root: &Path, kept: &[PathBuf]) -> Result<(), CheckpointError> {
    let shared = root.join(SHARED);
    let rd = match fs::read_dir(&shared) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&shared)(e)),
    };
    let prefix = format!("../{SHARED}/");
    let mut referenced = std::collections::HashSet::new();
    for dir in kept {
        if let Ok(m) = Manifest::read(&dir.join(MANIFEST)) {
            for e in m.entries {
                for p in e.parts {
                    if let Some(name) = p.name.strip_prefix(&prefix) {
                        referenced.insert(name.to_owned());
                    }
                }
            }
        }
    }
    for entry in rd {
        let entry = entry.map_err(io(&shared))?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| referenced.contains(n)) {
            let path = entry.path();
            fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Removes every checkpoint directory under `root` newer than `id` (complete or not): a job
/// spread over processes restarts from the checkpoint all of them completed.
pub fn discard_newer(root: &Path, id: u64) -> Result<usize, CheckpointError> {
    let newer: Vec<PathBuf> = list(root)?
        .into_iter()
        .filter(|(c, _)| *c > id)
        .map(|(_, p)| p)
        .collect();
    for p in &newer {
        tracing::info!(dir = %p.display(), "discarding a checkpoint the job did not complete");
        discard(p);
    }
    Ok(newer.len())
}

/// The newest id of any checkpoint directory under `root` (complete or not), so a new run
/// numbers its checkpoints after it.
pub fn newest_id(root: &Path) -> Result<Option<u64>, CheckpointError> {
    Ok(list(root)?.first().map(|(id, _)| *id))
}

/// Checks the file of `part` against its manifest line, reading it in blocks; a small single
/// file comes back as its bytes.
pub(crate) fn verify(
    path: &Path,
    part: &Part,
    keep: bool,
) -> Result<Option<Vec<u8>>, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let mismatch = |found: u64| corrupt(format!("{found} bytes, the manifest says {}", part.len));
    if keep {
        let bytes = fs::read(path).map_err(|e| corrupt(e.to_string()))?;
        if bytes.len() as u64 != part.len {
            return Err(mismatch(bytes.len() as u64));
        }
        if xxh3_64(&bytes) != part.sum {
            return Err(corrupt("checksum mismatch".into()));
        }
        return Ok(Some(bytes));
    }
    let mut f = fs::File::open(path).map_err(|e| corrupt(e.to_string()))?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| corrupt(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    if len != part.len {
        return Err(mismatch(len));
    }
    if hasher.digest() != part.sum {
        return Err(corrupt("checksum mismatch".into()));
    }
    Ok(None)
}

/// Reads and verifies the checkpoint in `dir`: every file every stage line names (read in
/// blocks); a stage's state is its bytes when it is one small file, else its files.
pub fn read(dir: &Path) -> Result<Restored, CheckpointError> {
    let m = Manifest::read(&dir.join(MANIFEST))?;
    let mut states = HashMap::new();
    let mut stages = std::collections::BTreeSet::new();
    let mut parallelism = HashMap::<StageId, usize>::new();
    for e in m.entries {
        stages.insert((e.stage, e.sub));
        let p = parallelism.entry(e.stage).or_default();
        *p = (*p).max(e.sub + 1);
        if e.parts.is_empty() {
            continue;
        }
        let inline = e.parts.len() == 1 && e.parts[0].len <= INLINE;
        let mut paths = Vec::with_capacity(e.parts.len());
        let mut bytes = None;
        for part in &e.parts {
            let path = manifest::path_of(dir, part);
            bytes = verify(&path, part, inline)?;
            paths.push(path);
        }
        let snap = match bytes {
            Some(b) => Snapshot::from_bytes(b),
            None => Snapshot::from_files(paths),
        };
        states.insert((e.stage, e.sub), snap);
    }
    Ok(Restored {
        id: m.id,
        states,
        stages,
        parallelism,
        skipped: Vec::new(),
    })
}

/// Reads the checkpoints `parts` (one of every node of a job, in node order) as one: the
/// subtasks of each stage numbered node by node (node 0's first). An error when a part does
/// not verify or the parts are of different ids.
pub fn read_nodes(parts: &[PathBuf]) -> Result<Restored, CheckpointError> {
    let mut all = Restored {
        id: 0,
        states: HashMap::new(),
        stages: std::collections::BTreeSet::new(),
        parallelism: HashMap::new(),
        skipped: Vec::new(),
    };
    for (n, dir) in parts.iter().enumerate() {
        let r = read(dir)?;
        if n == 0 {
            all.id = r.id;
        } else if r.id != all.id {
            return Err(CheckpointError::Corrupt {
                path: dir.clone(),
                reason: format!(
                    "checkpoint {} of node {n}, but node 0's is {}: the parts of one restore are of one checkpoint",
                    r.id, all.id
                ),
            });
        }
        for (stage, p) in &r.parallelism {
            let offset = all.parallelism.get(stage).copied().unwrap_or(0);
            for sub in 0..*p {
                if r.stages.contains(&(*stage, sub)) {
                    all.stages.insert((*stage, offset + sub));
                }
                if let Some(s) = r.states.get(&(*stage, sub)) {
                    all.states.insert((*stage, offset + sub), s.clone());
                }
            }
            all.parallelism.insert(*stage, offset + p);
        }
    }
    Ok(all)
}

/// The newest complete checkpoint under `root` that verifies: a directory without a manifest
/// (a checkpoint being written when the run stopped) is skipped, a corrupt one is skipped with
/// a warning; `Ok(None)` when there is none at all, an error naming the file when every
/// checkpoint with a manifest is corrupt.
pub fn latest(root: &Path) -> Result<Option<Restored>, CheckpointError> {
    let mut first_error = None;
    let mut skipped = Vec::new();
    for (id, dir) in list(root)? {
        if !dir.join(MANIFEST).exists() {
            tracing::warn!(checkpoint = id, dir = %dir.display(), "incomplete checkpoint skipped");
            continue;
        }
        match read(&dir) {
            Ok(mut r) => {
                if let Some(e) = &first_error {
                    tracing::warn!(checkpoint = r.id, skipped = %e, "restoring an older checkpoint");
                }
                r.skipped = skipped;
                return Ok(Some(r));
            }
            Err(e) => {
                tracing::warn!(checkpoint = id, error = %e, "corrupt checkpoint skipped");
                skipped.push(e.to_string());
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "store_full_tests.rs"]
mod full_tests;

#[cfg(test)]
#[path = "store_incremental_tests.rs"]
mod incremental_tests;
