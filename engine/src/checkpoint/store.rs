//! The checkpoint store: one directory per checkpoint under the run's checkpoint directory,
//! holding one file per stage subtask and a manifest (written last, renamed into place) that
//! lists every file with its length and xxh3 checksum; loading verifies all of it and falls back
//! to the previous complete checkpoint.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use weir_graph::{Snapshot, StageId};
use xxhash_rust::xxh3::xxh3_64;

/// The manifest's name inside a checkpoint directory.
pub const MANIFEST: &str = "MANIFEST";
const HEADER: &str = "weir-checkpoint 1";

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

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}

/// Writes checkpoint `id` under `root` (stage files, then the manifest renamed into place),
/// then removes all but the newest `retain` complete checkpoints; a write that fails (a full
/// disk) removes the checkpoint's partial directory and leaves the older ones as they are.
pub fn write(
    root: &Path,
    id: u64,
    states: &StageStates,
    retain: usize,
) -> Result<PathBuf, CheckpointError> {
    let dir = checkpoint_dir(root, id);
    if let Err(e) = write_dir(&dir, id, states) {
        // A disk full (or any write error) fails this checkpoint only: its partial directory
        // goes (it is never restored, and its space is freed), the older ones stay.
        discard(&dir);
        return Err(e);
    }
    weir_graph::failpoint("checkpoint.manifest_written");
    // The checkpoint is complete: a retention failure only delays the removal of older ones
    // (the next checkpoint's retention removes them).
    if let Err(e) = prune(root, retain) {
        tracing::warn!(checkpoint = id, error = %e, "checkpoint retention failed");
    }
    Ok(dir)
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
    let file = fs::File::create(path)
        .and_then(|f| weir_graph::write_fault("checkpoint.write", path).map(|()| f))
        .map_err(io(path))?;
    let mut out = Hashing {
        inner: std::io::BufWriter::with_capacity(1 << 16, file),
        hasher: xxhash_rust::xxh3::Xxh3::new(),
        len: 0,
    };
    s.write_to(&mut out).map_err(|e| CheckpointError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let (len, sum) = (out.len, out.hasher.digest());
    out.inner
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .map_err(io(path))?;
    s.written_to(path.to_owned());
    Ok((len, sum))
}

/// Writes checkpoint `id` into `dir` itself (a savepoint: self-contained, never pruned).
pub fn write_dir(dir: &Path, id: u64, states: &StageStates) -> Result<(), CheckpointError> {
    let dir = dir.to_owned();
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut manifest = format!("{HEADER}\nid {id}\n");
    for ((stage, sub), snap) in states {
        match snap {
            None => manifest.push_str(&format!("stage {stage} {sub} -\n")),
            Some(s) => {
                let name = file_name(*stage, *sub);
                let path = dir.join(&name);
                let (len, sum) = write_state(&path, s)?;
                manifest.push_str(&format!("stage {stage} {sub} {name} {len} {sum:016x}\n"));
            }
        }
    }
    weir_graph::failpoint("checkpoint.files_written");
    manifest.push_str(&format!("end {:016x}\n", xxh3_64(manifest.as_bytes())));
    let tmp = dir.join(".MANIFEST.tmp");
    fs::File::create(&tmp)
        .and_then(|mut f| {
            weir_graph::write_fault("checkpoint.write", &tmp)?;
            f.write_all(manifest.as_bytes())?;
            f.sync_all()
        })
        .map_err(io(&tmp))?;
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
/// older than the newest complete one).
fn prune(root: &Path, retain: usize) -> Result<(), CheckpointError> {
    let mut complete = 0;
    for (_, dir) in list(root)? {
        let has_manifest = dir.join(MANIFEST).exists();
        if complete >= retain.max(1) || (complete > 0 && !has_manifest) {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
            weir_graph::failpoint("checkpoint.pruned_one");
        } else if has_manifest {
            complete += 1;
        }
    }
    Ok(())
}

/// The newest id of any checkpoint directory under `root` (complete or not), so a new run
/// numbers its checkpoints after it.
pub fn newest_id(root: &Path) -> Result<Option<u64>, CheckpointError> {
    Ok(list(root)?.first().map(|(id, _)| *id))
}

/// Reads and verifies the checkpoint in `dir`.
pub fn read(dir: &Path) -> Result<Restored, CheckpointError> {
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    let bad = |reason: &str| CheckpointError::Manifest {
        path: path.clone(),
        reason: reason.to_owned(),
    };
    let body_len = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or_else(|| bad("too short"))?;
    let (body, end) = text.split_at(body_len);
    let sum = end
        .trim_end()
        .strip_prefix("end ")
        .ok_or_else(|| bad("no end line"))?;
    if sum != format!("{:016x}", xxh3_64(body.as_bytes())) {
        return Err(bad("checksum mismatch"));
    }
    let mut lines = body.lines();
    if lines.next() != Some(HEADER) {
        return Err(bad("unknown header"));
    }
    let id = lines
        .next()
        .and_then(|l| l.strip_prefix("id "))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| bad("no id line"))?;
    let mut states = HashMap::new();
    let mut stages = std::collections::BTreeSet::new();
    let mut parallelism = HashMap::<StageId, usize>::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        let (stage, sub) = match f.as_slice() {
            ["stage", stage, sub, ..] => (
                u64::from_str_radix(stage, 16).map_err(|_| bad("bad stage id"))?,
                sub.parse::<usize>().map_err(|_| bad("bad subtask"))?,
            ),
            _ => return Err(bad("unknown line")),
        };
        stages.insert((StageId(stage), sub));
        let p = parallelism.entry(StageId(stage)).or_default();
        *p = (*p).max(sub + 1);
        match f.as_slice() {
            [_, _, _, "-"] => {}
            [_, _, _, name, len, sum] => {
                let file = dir.join(name);
                let corrupt = |reason: String| CheckpointError::Corrupt {
                    path: file.clone(),
                    reason,
                };
                let bytes = fs::read(&file).map_err(|e| corrupt(e.to_string()))?;
                if len.parse::<usize>().ok() != Some(bytes.len()) {
                    return Err(corrupt(format!(
                        "{} bytes, the manifest says {len}",
                        bytes.len()
                    )));
                }
                if *sum != format!("{:016x}", xxh3_64(&bytes)) {
                    return Err(corrupt("checksum mismatch".into()));
                }
                states.insert((StageId(stage), sub), Snapshot::from_bytes(bytes));
            }
            _ => return Err(bad("malformed stage line")),
        }
    }
    Ok(Restored {
        id,
        states,
        stages,
        parallelism,
        skipped: Vec::new(),
    })
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
