//! The transactional file sink: records go into hidden temporary part files; a commit closes
//! them and renames each atomically to a committed part file whose name sorts in commit order.
//! Without checkpoints a commit happens at a `Control` marker and at the end of the stream.
//! With checkpoints it is two-phase: at barrier `id` the sink pre-commits (closes and syncs the
//! open part and stages every closed one under a committed name, recorded in its snapshot), and
//! renames them only once checkpoint `id` (or a newer one) is complete; restored, it finishes
//! the renames its snapshot staged and removes every other uncommitted part (their rows are
//! replayed). File IO runs on a writer thread of the sink's own, never on the runtime's workers.

use super::error::FileError;
use super::part::PartFormat;
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use weir_graph::{
    AsyncIo, AsyncLogic, Control, Event, KeyGroupRange, Promise, Share, Signal, Snapshot,
    StageError, failpoint,
};

/// Digits of a committed part file's sequence number (zero-padded, so names sort in order).
const SEQ_DIGITS: usize = 20;

/// Where and how a file sink writes.
#[derive(Clone, Debug)]
pub(crate) struct WriteConfig {
    pub(crate) dir: PathBuf,
    pub(crate) prefix: String,
    pub(crate) suffix: String,
    pub(crate) max_part_bytes: u64,
    /// Rolls a part once it has been open this long on the run's clock.
    pub(crate) max_part_age: Option<std::time::Duration>,
}

impl WriteConfig {
    fn committed_name(&self, seq: u64) -> String {
        format!("{}-{seq:0w$}{}", self.prefix, self.suffix, w = SEQ_DIGITS)
    }
    /// The sequence number of a committed part file named `name`, if it is one.
    pub(crate) fn committed_seq(&self, name: &str) -> Option<u64> {
        let digits = name
            .strip_prefix(&self.prefix)?
            .strip_prefix('-')?
            .strip_suffix(self.suffix.as_str())?;
        if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
    fn temp_prefix(&self) -> String {
        format!(".{}-", self.prefix)
    }
}

/// One piece of an encoded batch.
pub(crate) enum Piece<D> {
    /// Data for the open part file (bytes, or a record batch).
    Data(D),
    /// Close the open part file (it waits for the next commit).
    Roll,
}

enum Cmd<D> {
    Write(Vec<Piece<D>>),
    /// Commits every closed part (no checkpoints: a marker or the end).
    Commit,
    /// Closes the open part and stages every closed one under checkpoint `id`.
    PreCommit(u64),
    /// Commits the parts staged under checkpoints up to `id`.
    CommitThrough(u64),
}

type Reply = oneshot::Sender<Result<SinkState, FileError>>;

/// The sink's snapshot: the parts staged (temporary name, committed sequence number) under each
/// checkpoint not yet committed, and the next sequence number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SinkState {
    pub(crate) next_seq: u64,
    pub(crate) staged: Vec<(u64, Vec<(String, u64)>)>,
    /// The directory the parts are in (which sink a redistributed state belongs to).
    pub(crate) dir: String,
}

/// The sink's snapshot before it recorded its directory.
#[derive(Deserialize)]
struct SinkStateV1 {
    next_seq: u64,
    staged: Vec<(u64, Vec<(String, u64)>)>,
}

impl SinkState {
    /// The state in `snapshot`, also of the earlier form without the directory.
    fn decode(snapshot: &Snapshot) -> Result<Self, StageError> {
        if let Ok(s) = snapshot.decode::<SinkState>() {
            return Ok(s);
        }
        let old: SinkStateV1 = snapshot
            .decode()
            .map_err(|e| StageError::from(FileError::BadSnapshot(e.to_string())))?;
        Ok(Self {
            next_seq: old.next_seq,
            staged: old.staged,
            dir: String::new(),
        })
    }
}

/// Finishes the renames `state` staged in `dir` (its checkpoint is complete; some may be done).
fn finish_staged(config: &WriteConfig, dir: &Path, state: &SinkState) -> Result<(), FileError> {
    for (id, parts) in &state.staged {
        for (name, seq) in parts {
            let tmp = dir.join(name);
            let to = dir.join(config.committed_name(*seq));
            if tmp.exists() {
                std::fs::rename(&tmp, &to).map_err(|e| FileError::io("cannot rename", &tmp, e))?;
                failpoint("sink.restore_renamed_one");
            } else if !to.exists() {
                return Err(FileError::StagedPartMissing {
                    path: tmp,
                    committed: to,
                    checkpoint: *id,
                });
            }
        }
    }
    sync_dir(dir)
}

/// The writer thread's state: the open temporary part, those closed and not yet committed.
struct Parts<P: PartFormat> {
    config: WriteConfig,
    format: Arc<P>,
    next_seq: u64,
    /// This sink instance among those of the process (temporary names never collide).
    instance: u64,
    temp_count: u64,
    open: Option<(P::Writer, PathBuf)>,
    closed: Vec<PathBuf>,
    /// Pre-committed parts by checkpoint, with their committed sequence numbers.
    staged: Vec<(u64, Vec<(PathBuf, u64)>)>,
    committed: Vec<PathBuf>,
}

impl<P: PartFormat> Parts<P> {
    /// Opens the directory: removes temporary parts left by an earlier run that stopped before
    /// committing them, and continues the committed sequence.
    /// `skipped` names the newer checkpoints the run skipped as corrupt (for the error when the
    /// directory holds what they committed).
    /// `foreign` are redistributed states of sinks that wrote into other directories (no
    /// sink's now): their staged renames are finished there, and nothing else is touched.
    fn open(
        config: WriteConfig,
        format: Arc<P>,
        restored: Option<&SinkState>,
        foreign: &[SinkState],
        skipped: &[String],
    ) -> Result<Self, FileError> {
        let dir = &config.dir;
        std::fs::create_dir_all(dir).map_err(|e| FileError::io("cannot create", dir, e))?;
        for f in foreign {
            let d = PathBuf::from(&f.dir);
            tracing::info!(dir = %d.display(), "file sink: finishing the commits of a redistributed sink's state");
            finish_staged(&config, &d, f)?;
        }
        let mut next_seq = 0;
        if let Some(r) = restored {
            finish_staged(&config, dir, r)?;
            next_seq = r.next_seq;
        }
        let temp = config.temp_prefix();
        let restored_next = restored.map(|r| r.next_seq);
        let mut newer: Option<(u64, PathBuf)> = None;
        let rd = std::fs::read_dir(dir).map_err(|e| FileError::io("cannot list", dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| FileError::io("cannot list", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(&temp) && name.ends_with(".inprogress") {
                let p = entry.path();
                tracing::debug!(path = %p.display(), "file sink: removing an uncommitted part");
                match std::fs::remove_file(&p) {
                    // Gone meanwhile (a stopping instance of the same run removing its own).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    r => r.map_err(|e| FileError::io("cannot remove", &p, e))?,
                }
            } else if let Some(seq) = config.committed_seq(name) {
                next_seq = next_seq.max(seq + 1);
                if restored_next.is_some_and(|n| seq >= n)
                    && newer.as_ref().is_none_or(|(s, _)| seq < *s)
                {
                    newer = Some((seq, entry.path()));
                }
            }
        }
        // A part committed after the restored checkpoint belongs to a newer one that completed
        // (and is now unreadable or gone): replaying from here would commit its rows twice.
        if let (Some((_, path)), Some(next_seq)) = (newer, restored_next) {
            let skipped = if skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped as corrupt: {}", skipped.join("; "))
            };
            return Err(FileError::CommittedAfterRestore {
                path,
                next_seq,
                skipped,
            });
        }
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        Ok(Self {
            config,
            format,
            next_seq,
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            temp_count: 0,
            open: None,
            closed: Vec::new(),
            staged: Vec::new(),
            committed: Vec::new(),
        })
    }

    /// The snapshot of what is staged now.
    fn state(&self) -> SinkState {
        let name = |p: &PathBuf| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        SinkState {
            dir: self.config.dir.to_string_lossy().into_owned(),
            next_seq: self.next_seq,
            staged: self
                .staged
                .iter()
                .map(|(id, parts)| (*id, parts.iter().map(|(p, s)| (name(p), *s)).collect()))
                .collect(),
        }
    }

    /// Pre-commit for checkpoint `id`: the open part is closed (flushed and synced) and every
    /// closed part is staged under the next committed names.
    fn pre_commit(&mut self, id: u64) -> Result<(), FileError> {
        self.roll()?;
        let parts: Vec<(PathBuf, u64)> = std::mem::take(&mut self.closed)
            .into_iter()
            .map(|p| {
                let seq = self.next_seq;
                self.next_seq += 1;
                (p, seq)
            })
            .collect();
        if !parts.is_empty() {
            self.staged.push((id, parts));
        }
        failpoint("sink.pre_commit");
        Ok(())
    }

    /// Renames the parts staged under checkpoints up to `id`, in order.
    fn commit_through(&mut self, id: u64) -> Result<(), FileError> {
        let n = self.staged.iter().take_while(|(s, _)| *s <= id).count();
        if n == 0 {
            return Ok(());
        }
        let done: Vec<_> = self.staged.drain(..n).collect();
        for (_, parts) in done {
            for (tmp, seq) in parts {
                let to = self.config.dir.join(self.config.committed_name(seq));
                std::fs::rename(&tmp, &to).map_err(|e| FileError::io("cannot rename", &tmp, e))?;
                failpoint("sink.commit_renamed_one");
                self.committed.push(to);
            }
        }
        sync_dir(&self.config.dir)
    }

    fn write(&mut self, data: &P::Data) -> Result<(), FileError> {
        let Some((w, path)) = &mut self.open else {
            let name = format!(
                "{}{}-{}-{}.inprogress",
                self.config.temp_prefix(),
                std::process::id(),
                self.instance,
                self.temp_count
            );
            self.temp_count += 1;
            let path = self.config.dir.join(name);
            let f = File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| FileError::io("cannot create", &path, e))?;
            let w = weir_graph::write_fault("sink.write", &path)
                .map_err(|e| FileError::io("cannot write", path.clone(), e))
                .and_then(|()| self.format.create(f, &path, data));
            let w = match w {
                Ok(w) => w,
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            };
            self.open = Some((w, path));
            return Ok(());
        };
        weir_graph::write_fault("sink.write", path)
            .map_err(|e| FileError::io("cannot write", path.clone(), e))?;
        self.format.write(w, data, path)
    }

    /// Closes the open part (flushed and synced); it is committed with the next commit.
    fn roll(&mut self) -> Result<(), FileError> {
        if let Some((w, path)) = self.open.take() {
            if let Err(e) = weir_graph::write_fault("sink.write", &path) {
                // Still the open part: the writer's abort removes it.
                self.open = Some((w, path.clone()));
                return Err(FileError::io("cannot write", path, e));
            }
            let f = match self.format.finish(w, &path) {
                Ok(f) => f,
                Err(e) => {
                    // No longer open: removed here, as the writer's abort would.
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            };
            f.sync_all()
                .map_err(|e| FileError::io("cannot sync", &path, e))?;
            self.closed.push(path);
        }
        Ok(())
    }

    /// Renames every closed part (and the open one) to the next committed names, in order.
    fn commit(&mut self) -> Result<(), FileError> {
        self.roll()?;
        if self.closed.is_empty() {
            return Ok(());
        }
        for tmp in std::mem::take(&mut self.closed) {
            let to = self
                .config
                .dir
                .join(self.config.committed_name(self.next_seq));
            std::fs::rename(&tmp, &to).map_err(|e| FileError::io("cannot rename", &tmp, e))?;
            self.next_seq += 1;
            self.committed.push(to);
        }
        sync_dir(&self.config.dir)
    }

    /// Removes every uncommitted part that no checkpoint staged (a staged one belongs to a
    /// checkpoint that may complete: a restored run commits it).
    fn abort(&mut self) {
        let open = self.open.take().map(|(_, p)| p);
        for p in std::mem::take(&mut self.closed).into_iter().chain(open) {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "file sink: cannot remove an uncommitted part");
            }
        }
    }
}

fn sync_dir(dir: &std::path::Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FileError::io("cannot sync", dir, e))
}

/// The sink's handle on its writer thread.
struct Writer<D> {
    tx: Option<mpsc::Sender<(Cmd<D>, Reply)>>,
    done: Option<std::thread::JoinHandle<Vec<PathBuf>>>,
    dir: PathBuf,
    /// The run's clock, told that the stage is busy while the thread works for it.
    clock: std::sync::Arc<dyn weir_graph::Clock>,
}

impl<D: Send + 'static> Writer<D> {
    fn start<P: PartFormat<Data = D>>(
        config: WriteConfig,
        format: Arc<P>,
        restored: Option<SinkState>,
        foreign: Vec<SinkState>,
        skipped: Vec<String>,
        clock: std::sync::Arc<dyn weir_graph::Clock>,
    ) -> Result<Self, FileError> {
        let dir = config.dir.clone();
        let (tx, rx) = mpsc::channel::<(Cmd<D>, Reply)>();
        let done = std::thread::Builder::new()
            .name("weir-file-sink".to_owned())
            .spawn(move || writer_thread(config, format, restored, foreign, skipped, rx))
            .map_err(|e| FileError::io("cannot start the writer thread for", &dir, e))?;
        Ok(Self {
            tx: Some(tx),
            done: Some(done),
            dir,
            clock,
        })
    }

    async fn call(&self, cmd: Cmd<D>) -> Result<SinkState, FileError> {
        let gone = || FileError::WriterGone {
            dir: self.dir.clone(),
        };
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(gone)?;
        let _busy = self.clock.busy();
        tx.send((cmd, reply)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Ends the writer (after a final commit) and returns the files it committed.
    async fn close(mut self) -> Vec<PathBuf> {
        self.tx = None;
        let Some(done) = self.done.take() else {
            return Vec::new();
        };
        let (tx, rx) = oneshot::channel();
        // Joined off the runtime: the thread has only its last commands to finish.
        let joiner = std::thread::Builder::new()
            .name("weir-file-sink-join".to_owned())
            .spawn(move || {
                let _ = tx.send(done.join().unwrap_or_default());
            });
        let _busy = self.clock.busy();
        match joiner {
            Ok(_) => rx.await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }
}

/// Runs the commands; on a failure or when the sink is gone, removes what was not committed.
fn writer_thread<P: PartFormat>(
    config: WriteConfig,
    format: Arc<P>,
    restored: Option<SinkState>,
    foreign: Vec<SinkState>,
    skipped: Vec<String>,
    rx: mpsc::Receiver<(Cmd<P::Data>, Reply)>,
) -> Vec<PathBuf> {
    let mut parts = match Parts::open(config, format, restored.as_ref(), &foreign, &skipped) {
        Ok(p) => p,
        Err(e) => {
            if let Ok((_, reply)) = rx.recv() {
                let _ = reply.send(Err(e));
            }
            return Vec::new();
        }
    };
    for (cmd, reply) in rx {
        let r = match cmd {
            Cmd::Write(pieces) => pieces.iter().try_for_each(|p| match p {
                Piece::Data(d) => parts.write(d),
                Piece::Roll => parts.roll(),
            }),
            Cmd::Commit => parts.commit(),
            Cmd::PreCommit(id) => parts.pre_commit(id),
            Cmd::CommitThrough(id) => parts.commit_through(id),
        };
        let failed = r.is_err();
        let _ = reply.send(r.map(|()| parts.state()));
        if failed {
            break;
        }
    }
    // Reached when the sink dropped its sender: after its final commit, or without one (the
    // stream failed, or the run was cancelled): what is not committed goes.
    parts.abort();
    parts.committed
}

/// Encodes one element as one record (without the line terminator).
pub(crate) type Encode<T> = dyn Fn(&T, &mut Vec<u8>) + Send + Sync;

/// Turns a batch of elements into the pieces of the part files (`max`: the part size limit;
/// the size of the open part is kept in the last argument).
pub(crate) type EncodeBatch<T, D> = dyn Fn(&[T], u64, &mut u64) -> Vec<Piece<D>> + Send + Sync;

/// The sink's asynchronous logic.
pub(crate) struct FileSinkLogic<T: 'static, P: PartFormat> {
    pub(crate) config: WriteConfig,
    pub(crate) format: Arc<P>,
    pub(crate) encode: Arc<EncodeBatch<T, P::Data>>,
    pub(crate) promise: Promise<Vec<PathBuf>>,
    pub(crate) path: String,
    /// The snapshot restored into this instance.
    pub(crate) restored: Option<SinkState>,
    /// Redistributed states of sinks that wrote into other directories.
    pub(crate) foreign: Vec<SinkState>,
}

/// Encodes `batch` into pieces, rolling before a record that would take the open part past
/// `max` bytes (a part holds at least one record).
pub(crate) fn encode_batch<T>(
    batch: &[T],
    encode: &Encode<T>,
    max: u64,
    part_bytes: &mut u64,
) -> Vec<Piece<Vec<u8>>> {
    let mut pieces = Vec::new();
    let mut buf = Vec::new();
    for x in batch {
        let start = buf.len();
        encode(x, &mut buf);
        buf.push(b'\n');
        let len = (buf.len() - start) as u64;
        if *part_bytes > 0 && *part_bytes + len > max {
            let rest = buf.split_off(start);
            if !buf.is_empty() {
                pieces.push(Piece::Data(std::mem::replace(&mut buf, rest)));
            } else {
                buf = rest;
            }
            pieces.push(Piece::Roll);
            *part_bytes = 0;
        }
        *part_bytes += len;
    }
    if !buf.is_empty() {
        pieces.push(Piece::Data(buf));
    }
    pieces
}

/// Whether `pieces` write nothing.
fn batch_is_empty<D>(pieces: &[Piece<D>]) -> bool {
    !pieces.iter().any(|p| matches!(p, Piece::Data(_)))
}

/// What the sink's loop woke for.
enum Woke<T> {
    Input(Signal<T>),
    Completed(Result<(), weir_graph::CheckpointFailed>),
    /// The open part reached its maximum age.
    Aged,
}

/// When the open part was started on the run's clock, for rolling by age.
struct Age {
    max: Option<std::time::Duration>,
    clock: std::sync::Arc<dyn weir_graph::Clock>,
    opened: Option<std::time::Duration>,
    timer: Option<BoxFuture<'static, ()>>,
}

impl Age {
    /// Whether the open part is past its age now.
    fn due(&self) -> bool {
        matches!((self.max, self.opened), (Some(max), Some(t)) if self.clock.now() >= t + max)
    }
    /// A new part was started now (none is open when `open` is false).
    fn reset(&mut self, open: bool) {
        self.timer = None;
        self.opened = if open && self.max.is_some() {
            Some(self.clock.now())
        } else {
            None
        };
    }
    /// Records that records went into the open part (`rolled`: a new part was started).
    fn wrote(&mut self, rolled: bool) {
        if rolled || self.opened.is_none() {
            self.reset(true);
        }
    }
    /// Polls the open part's age timer.
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let (Some(max), Some(t)) = (self.max, self.opened) else {
            return std::task::Poll::Pending;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| self.clock.sleep_until(t + max));
        timer.poll_unpin(cx)
    }
}

impl<T: Send + 'static, P: PartFormat> FileSinkLogic<T, P> {
    async fn drive(
        &mut self,
        io: &mut AsyncIo,
        writer: &Writer<P::Data>,
    ) -> Result<(), StageError> {
        let mut input = io.input::<T>(0)?;
        let ck = io.checkpoint.clone();
        let named = |e: FileError| StageError::from(e).with_stage(&self.path);
        let mut part_bytes = 0u64;
        let mut age = Age {
            max: self.config.max_part_age,
            clock: io.clock.clone(),
            opened: None,
            timer: None,
        };
        // Checkpoints pre-committed and not known complete yet, oldest first.
        let mut waiting: VecDeque<u64> = VecDeque::new();
        let mut notice = None;
        loop {
            if notice.is_none()
                && let (Some(ck), Some(id)) = (&ck, waiting.front())
            {
                notice = Some(ck.wait_completed(*id));
            }
            let woke = std::future::poll_fn(|cx| {
                if let Some(n) = notice.as_mut()
                    && let std::task::Poll::Ready(r) = n.poll_unpin(cx)
                {
                    return std::task::Poll::Ready(Woke::Completed(r));
                }
                if age.poll(cx).is_ready() {
                    return std::task::Poll::Ready(Woke::Aged);
                }
                input.poll_signal(cx).map(Woke::Input)
            })
            .await;
            match woke {
                Woke::Completed(r) => {
                    notice = None;
                    let Some(ck) = &ck else { continue };
                    if let Err(e) = r {
                        // Its parts stay staged: the next complete checkpoint commits them.
                        tracing::debug!(stage = %self.path, error = %e, "file sink: checkpoint failed");
                        waiting.retain(|id| *id != e.id);
                        continue;
                    }
                    if let Some(done) = ck.latest_completed() {
                        writer.call(Cmd::CommitThrough(done)).await.map_err(named)?;
                        waiting.retain(|id| *id > done);
                    }
                }
                Woke::Aged => {
                    writer
                        .call(Cmd::Write(vec![Piece::Roll]))
                        .await
                        .map_err(named)?;
                    part_bytes = 0;
                    age.reset(false);
                }
                Woke::Input(Signal::Event(Event::Batch(batch))) => {
                    let mut pieces = Vec::new();
                    if age.due() {
                        pieces.push(Piece::Roll);
                        part_bytes = 0;
                        age.reset(false);
                    }
                    pieces.extend((self.encode)(
                        &batch,
                        self.config.max_part_bytes,
                        &mut part_bytes,
                    ));
                    drop(batch);
                    let rolled = pieces.iter().skip(1).any(|p| matches!(p, Piece::Roll));
                    if !batch_is_empty(&pieces) {
                        age.wrote(rolled);
                    }
                    writer.call(Cmd::Write(pieces)).await.map_err(named)?;
                }
                Woke::Input(Signal::Control(Control::Barrier { id })) => {
                    let Some(ck) = &ck else { continue };
                    let state = writer.call(Cmd::PreCommit(id)).await.map_err(named)?;
                    part_bytes = 0;
                    age.reset(false);
                    let snap = Snapshot::encode(&state).map_err(StageError::from)?;
                    ck.ack(id, Some(snap));
                    waiting.push_back(id);
                }
                Woke::Input(Signal::Control(Control::Marker { .. })) if ck.is_none() => {
                    writer.call(Cmd::Commit).await.map_err(named)?;
                    part_bytes = 0;
                    age.reset(false);
                }
                Woke::Input(Signal::Control(_)) => {}
                Woke::Input(Signal::Event(Event::End)) => {
                    let Some(ck) = &ck else {
                        return writer.call(Cmd::Commit).await.map(|_| ()).map_err(named);
                    };
                    // The end is two-phase too: the last parts are staged, the stage's final
                    // state goes into the run's final checkpoint, and they are committed once
                    // that is written (a crash in between replays nothing twice).
                    let state = writer.call(Cmd::PreCommit(u64::MAX)).await.map_err(named)?;
                    let snap = Snapshot::encode(&state).map_err(StageError::from)?;
                    drop(notice.take());
                    let cover = ck.finish(Some(snap));
                    if let Err(e) = ck.wait_completed(cover).await {
                        tracing::warn!(stage = %self.path, error = %e, "file sink: the final checkpoint failed; committing the last parts anyway");
                    }
                    return writer
                        .call(Cmd::CommitThrough(u64::MAX))
                        .await
                        .map(|_| ())
                        .map_err(named);
                }
                Woke::Input(Signal::Event(Event::Error(e))) => return Err(e),
            }
        }
    }
}

impl<T: Send + 'static, P: PartFormat> AsyncLogic for FileSinkLogic<T, P> {
    fn run(mut self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let skipped = io
                .checkpoint
                .as_ref()
                .map(|ck| ck.skipped())
                .unwrap_or_default();
            let writer = match Writer::start(
                self.config.clone(),
                Arc::clone(&self.format),
                self.restored.take(),
                std::mem::take(&mut self.foreign),
                skipped,
                io.clock.clone(),
            ) {
                Ok(w) => w,
                Err(e) => {
                    let e = StageError::from(e).with_stage(&self.path);
                    self.promise.complete(Err(e.clone()));
                    return Err(e);
                }
            };
            let r = self.drive(&mut io, &writer).await;
            let committed = writer.close().await;
            match r {
                Ok(()) => {
                    self.promise.complete(Ok(committed));
                    Ok(())
                }
                Err(e) => {
                    self.promise.complete(Err(e.clone()));
                    Err(e)
                }
            }
        }
        .boxed()
    }

    fn handles_control(&self) -> bool {
        true
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.restored = Some(SinkState::decode(snapshot)?);
        Ok(())
    }

    /// Takes the old sinks' states dealt to `share` (each old state to the share of its
    /// position): the one of this sink's own directory is restored as its own, the others'
    /// staged parts are committed in their directories. The state of this sink's directory
    /// must fall to it (each node writes into its own directory, as it did).
    fn restore_redistributed(
        &mut self,
        snapshots: &[Snapshot],
        _key_groups: KeyGroupRange,
        share: Share,
    ) -> Result<(), StageError> {
        let bad = |e: String| StageError::from(FileError::BadSnapshot(e));
        let own = self.config.dir.to_string_lossy().into_owned();
        for (i, snap) in snapshots.iter().enumerate() {
            let state = SinkState::decode(snap)?;
            let mine = share.owns(i);
            if state.dir == own {
                if !mine {
                    return Err(bad(format!(
                        "the state of {own} is old sink {i}'s, which falls to share {} of {}, \
                         not to this sink ({share}): give each node's sink its own directory, \
                         as before the rescale",
                        i % share.count,
                        share.count
                    )));
                }
                self.restored = Some(state);
            } else if mine {
                self.foreign.push(state);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::part::LineParts;

    #[test]
    fn committed_names_sort_in_sequence_order() {
        let c = WriteConfig {
            dir: PathBuf::new(),
            prefix: "part".into(),
            suffix: ".csv".into(),
            max_part_bytes: 10,
            max_part_age: None,
        };
        assert_eq!(c.committed_name(7), "part-00000000000000000007.csv");
        assert_eq!(c.committed_seq("part-00000000000000000007.csv"), Some(7));
        assert_eq!(c.committed_seq("part-7.csv"), None);
        assert_eq!(c.committed_seq(".part-1-0.inprogress"), None);
        assert!(c.committed_name(9) < c.committed_name(10));
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weir-sink-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn listing(d: &std::path::Path) -> Vec<(String, String)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_restored_commit_finishes_the_renames_a_crash_interrupted_and_drops_the_rest() {
        let d = temp_dir("restore");
        let c = WriteConfig {
            dir: d.clone(),
            prefix: "part".into(),
            suffix: String::new(),
            max_part_bytes: 10,
            max_part_age: None,
        };
        // Checkpoint 4 staged parts 2 and 3, checkpoint 5 part 4; the crash came after part 2
        // was renamed. A part staged by no checkpoint (its rows are replayed) is left over.
        std::fs::write(d.join(c.committed_name(0)), "a\n").unwrap();
        std::fs::write(d.join(c.committed_name(1)), "b\n").unwrap();
        std::fs::write(d.join(c.committed_name(2)), "c\n").unwrap();
        std::fs::write(d.join(".part-9-0-1.inprogress"), "d\n").unwrap();
        std::fs::write(d.join(".part-9-0-2.inprogress"), "e\n").unwrap();
        std::fs::write(d.join(".part-9-0-3.inprogress"), "replayed\n").unwrap();
        let state = SinkState {
            dir: String::new(),
            next_seq: 5,
            staged: vec![
                (
                    4,
                    vec![
                        (".part-9-0-0.inprogress".into(), 2),
                        (".part-9-0-1.inprogress".into(), 3),
                    ],
                ),
                (5, vec![(".part-9-0-2.inprogress".into(), 4)]),
            ],
        };
        let parts = Parts::open(c.clone(), Arc::new(LineParts), Some(&state), &[], &[]).unwrap();
        assert_eq!(parts.next_seq, 5);
        let expect: Vec<(String, String)> = ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, x)| (c.committed_name(i as u64), format!("{x}\n")))
            .collect();
        assert_eq!(listing(&d), expect);
        // Restoring the same snapshot again (a crash during the restore) changes nothing.
        let parts = Parts::open(c.clone(), Arc::new(LineParts), Some(&state), &[], &[]).unwrap();
        assert_eq!(parts.next_seq, 5);
        assert_eq!(listing(&d), expect);
        // A staged part that is neither uncommitted nor committed is an error naming it.
        let lost = SinkState {
            dir: String::new(),
            next_seq: 6,
            staged: vec![(6, vec![(".part-9-0-7.inprogress".into(), 5)])],
        };
        let e = Parts::open(c, Arc::new(LineParts), Some(&lost), &[], &[])
            .err()
            .unwrap();
        assert!(
            matches!(&e, FileError::StagedPartMissing { checkpoint: 6, path, .. } if path.ends_with(".part-9-0-7.inprogress")),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_part_committed_after_the_restored_checkpoint_fails_the_restore_naming_it() {
        let d = temp_dir("newer");
        let c = WriteConfig {
            dir: d.clone(),
            prefix: "part".into(),
            suffix: String::new(),
            max_part_bytes: 10,
            max_part_age: None,
        };
        // Checkpoint 3 staged up to sequence 2; parts 2 and 3 were committed by checkpoint 4,
        // which is now corrupt: restoring 3 would write their rows again.
        for i in 0..4 {
            std::fs::write(d.join(c.committed_name(i)), format!("{i}\n")).unwrap();
        }
        let state = SinkState {
            dir: String::new(),
            next_seq: 2,
            staged: Vec::new(),
        };
        let skipped = vec!["chk-00000000000000000004/MANIFEST: checksum mismatch".to_owned()];
        let e = Parts::open(c.clone(), Arc::new(LineParts), Some(&state), &[], &skipped)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "{} was committed after the checkpoint being restored (it staged parts up to \
                 sequence 2), so restoring it would write that part's rows again; skipped as \
                 corrupt: chk-00000000000000000004/MANIFEST: checksum mismatch; restore the \
                 newer checkpoint, or remove the parts from sequence 2 on to replay them",
                d.join(c.committed_name(2)).display()
            )
        );
        // Nothing was removed; without those parts the restore goes ahead.
        assert_eq!(listing(&d).len(), 4);
        std::fs::remove_file(d.join(c.committed_name(2))).unwrap();
        std::fs::remove_file(d.join(c.committed_name(3))).unwrap();
        let parts = Parts::open(c, Arc::new(LineParts), Some(&state), &[], &[]).unwrap();
        assert_eq!(parts.next_seq, 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn batches_roll_before_a_record_that_would_overflow_the_part() {
        let enc: &Encode<&str> = &|s: &&str, b: &mut Vec<u8>| b.extend_from_slice(s.as_bytes());
        let mut part = 0;
        let pieces = encode_batch(&["aaa", "bb", "c", "dddd"], enc, 7, &mut part);
        let shown: Vec<String> = pieces
            .iter()
            .map(|p| match p {
                Piece::Data(b) => String::from_utf8(b.clone()).unwrap(),
                Piece::Roll => "|".to_owned(),
            })
            .collect();
        // 4 + 3 fill the first part; "c\n" would pass 7; 2 + 5 fit the second.
        assert_eq!(shown, ["aaa\nbb\n", "|", "c\ndddd\n"]);
        assert_eq!(part, 7);
        // The open part carries over to the next batch.
        let pieces = encode_batch(&["e"], enc, 7, &mut part);
        assert!(matches!(pieces[..], [Piece::Roll, Piece::Data(ref b)] if b == b"e\n"));
        assert_eq!(part, 2);
    }

    #[test]
    fn a_redistributed_sink_restores_its_own_directory_and_commits_the_staged_parts_of_others() {
        let root = temp_dir("redistribute");
        let dirs: Vec<PathBuf> = (0..3).map(|i| root.join(format!("node-{i}"))).collect();
        let config = |d: &PathBuf| WriteConfig {
            dir: d.clone(),
            prefix: "part".into(),
            suffix: String::new(),
            max_part_bytes: 10,
            max_part_age: None,
        };
        // Three old sinks, each with part 0 committed and part 1 staged under checkpoint 7,
        // and a part written after it (its rows are replayed).
        let mut snaps = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join(config(d).committed_name(0)), format!("{i}a\n")).unwrap();
            std::fs::write(d.join(".part-1-0-0.inprogress"), format!("{i}b\n")).unwrap();
            std::fs::write(d.join(".part-1-0-1.inprogress"), "replayed\n").unwrap();
            let state = SinkState {
                dir: d.to_string_lossy().into_owned(),
                next_seq: 2,
                staged: vec![(7, vec![(".part-1-0-0.inprogress".into(), 1)])],
            };
            snaps.push(Snapshot::encode(&state).unwrap());
        }
        let logic = |d: &PathBuf| {
            let (promise, _future) = weir_graph::promise();
            FileSinkLogic::<u8, LineParts> {
                config: config(d),
                format: Arc::new(LineParts),
                encode: Arc::new(|_: &[u8], _: u64, _: &mut u64| Vec::new()),
                promise,
                path: "file_sink#0".into(),
                restored: None,
                foreign: Vec::new(),
            }
        };
        // Onto two nodes: old states 0 and 2 fall to node 0 (its own, and node 2's, whose
        // directory no node writes to now), old state 1 to node 1.
        let mut n0 = logic(&dirs[0]);
        n0.restore_redistributed(&snaps, KeyGroupRange::ALL, Share { index: 0, count: 2 })
            .unwrap();
        assert_eq!(
            n0.restored.as_ref().map(|s| s.dir.clone()),
            Some(dirs[0].to_string_lossy().into_owned())
        );
        assert_eq!(n0.foreign.len(), 1);
        let mut n1 = logic(&dirs[1]);
        n1.restore_redistributed(&snaps, KeyGroupRange::ALL, Share { index: 1, count: 2 })
            .unwrap();
        assert!(n1.foreign.is_empty());
        for n in [&mut n0, &mut n1] {
            let p = Parts::open(
                n.config.clone(),
                Arc::new(LineParts),
                n.restored.as_ref(),
                &n.foreign,
                &[],
            )
            .unwrap();
            assert_eq!(p.next_seq, 2);
        }
        let c = config(&dirs[0]);
        for (i, d) in dirs.iter().enumerate() {
            let mut want = vec![
                (c.committed_name(0), format!("{i}a\n")),
                (c.committed_name(1), format!("{i}b\n")),
            ];
            // Only a directory a sink writes to now is cleared of what no checkpoint staged.
            if i == 2 {
                want.insert(0, (".part-1-0-1.inprogress".into(), "replayed\n".into()));
            }
            assert_eq!(listing(d), want, "node-{i}");
        }
        // A sink whose own directory's state falls to another share is refused.
        let mut wrong = logic(&dirs[1]);
        let e = wrong
            .restore_redistributed(&snaps, KeyGroupRange::ALL, Share { index: 0, count: 2 })
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("falls to share 1 of 2, not to this sink (share 0 of 2)"),
            "{e}"
        );
        // A snapshot of the earlier form (no directory) still restores.
        #[derive(Serialize)]
        struct V1 {
            next_seq: u64,
            staged: Vec<(u64, Vec<(String, u64)>)>,
        }
        let old = Snapshot::encode(&V1 {
            next_seq: 3,
            staged: Vec::new(),
        })
        .unwrap();
        let state = SinkState::decode(&old).unwrap();
        assert_eq!((state.next_seq, state.dir.as_str()), (3, ""));
        let _ = std::fs::remove_dir_all(&root);
    }
}
