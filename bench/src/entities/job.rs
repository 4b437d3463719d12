//! `weir-bench entities-job`: `entity_id,amount` lines (a CSV file source, replayable by byte
//! offset) numbered by `zip_with_index` (the command's position, checkpointed with the source),
//! throttled by `--rate`, into [`event_sourced`] account entities, sharded by persistence id
//! over `--parallelism` subtasks (2 by default), on a RocksDB journal in
//! `STATE_DIR/journal` (each command persists `Deposited(amount)`; a command at or below its
//! entity's applied position is skipped, so a restart that replays commands applies each once).
//! When the input is consumed, every entity's state is read back from the journal and written
//! as `entity_id,balance,events` lines, sorted by id, to the output file (a temporary file
//! renamed into place).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::engine::CheckpointConfig;
use weir::operators::file::{CsvOptions, CsvRecord, FileSource, Files};
use weir::operators::persistence::{Effect, EventSourced, EventSourcedSettings, event_sourced};
use weir::prelude::*;
use weir::state::journal::Journal;
use weir_state_rocksdb::RocksJournal;

/// One command: the entity, the amount, and its position in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// The entity.
    pub entity: u32,
    /// What it deposits (negative: withdraws).
    pub amount: i64,
    /// Its line number in the input (0-based).
    pub pos: u64,
}

/// The one event of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An amount deposited (negative: withdrawn).
    Deposited(i64),
}

/// An account's state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The sum of the deposits.
    pub balance: i64,
    /// How many events it persisted.
    pub events: u64,
}

impl Account {
    /// Folds one event in.
    pub fn apply(&mut self, e: &Event) {
        let Event::Deposited(x) = e;
        self.balance += x;
        self.events += 1;
    }
}

/// Whether a command was applied now or already before a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Persisted by this run.
    Applied,
    /// Applied by an earlier run (replayed after a restart).
    Duplicate,
}

/// The account entities.
pub struct Accounts;

/// The persistence id of entity `id`.
pub fn pid(id: u32) -> String {
    format!("account-{id}")
}

impl EventSourced for Accounts {
    type Command = Command;
    type Event = Event;
    type State = Account;
    type Reply = Outcome;
    fn persistence_id(&self, c: &Command) -> Result<String, StageError> {
        Ok(pid(c.entity))
    }
    fn command(&self, _s: &Account, c: Command) -> Result<Effect<Event, Outcome>, StageError> {
        Ok(Effect::persist(Event::Deposited(c.amount)).then_reply(Outcome::Applied))
    }
    fn apply(&self, s: &mut Account, e: &Event) -> Result<(), StageError> {
        s.apply(e);
        Ok(())
    }
    fn on_duplicate(&self, _s: &Account, _c: &Command) -> Option<Outcome> {
        Some(Outcome::Duplicate)
    }
}

/// Decodes one `entity_id,amount` record.
pub fn decode(r: CsvRecord<'_>) -> Result<(u32, i64), String> {
    if r.len() != 2 {
        return Err(format!(
            "expected 2 fields entity_id,amount, got {}",
            r.len()
        ));
    }
    let f = |e: weir::operators::file::CsvFieldError| e.to_string();
    Ok((r.int(0).map_err(f)?, r.int(1).map_err(f)?))
}

/// The settings of one `entities-job` run.
#[derive(Debug, Clone)]
pub struct JobArgs {
    /// The command file.
    pub input: PathBuf,
    /// The output file.
    pub output: PathBuf,
    /// The journal's and the checkpoints' directory.
    pub state_dir: PathBuf,
    /// Commands per second the source is throttled to.
    pub rate: Option<u64>,
    /// Time between checkpoints; 0: none.
    pub checkpoint_interval_ms: u64,
    /// Subtasks of the sharded entities.
    pub parallelism: usize,
}

/// What a completed run reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobReport {
    /// Commands persisted by this run.
    pub applied: u64,
    /// Commands replayed and skipped (applied by an earlier run).
    pub duplicates: u64,
    /// Entities written to the output.
    pub entities: usize,
}

/// The state of `id` read back from the journal (snapshot, then the later events).
pub fn account_of(journal: &dyn Journal, id: u32) -> Result<Account, String> {
    let p = pid(id);
    let (mut state, mut from) = match journal.load_snapshot(&p).map_err(|e| e.to_string())? {
        Some(s) => (
            postcard::from_bytes::<Account>(&s.state).map_err(|e| format!("{p}: snapshot: {e}"))?,
            s.seq + 1,
        ),
        None => (Account::default(), 1),
    };
    loop {
        let chunk = journal.read(&p, from, 4096).map_err(|e| e.to_string())?;
        let Some(last) = chunk.last() else { break };
        from = last.seq + 1;
        for e in &chunk {
            let ev: Event =
                postcard::from_bytes(&e.payload).map_err(|err| format!("{p} #{}: {err}", e.seq))?;
            state.apply(&ev);
        }
    }
    Ok(state)
}

/// The entity ids of the input file.
fn entity_ids(input: &Path) -> Result<BTreeSet<u32>, String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect())
}

/// Writes every entity's `entity_id,balance,events` line to `output` atomically.
fn write_output(journal: &dyn Journal, ids: &BTreeSet<u32>, output: &Path) -> Result<(), String> {
    let mut text = String::new();
    for &id in ids {
        let a = account_of(journal, id)?;
        text.push_str(&format!("{id},{},{}\n", a.balance, a.events));
    }
    let tmp = output.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, output).map_err(|e| format!("{}: {e}", output.display()))
}

/// Runs the job to its end on `rt`.
pub fn run(rt: &weir::engine::Runtime, args: &JobArgs) -> Result<JobReport, String> {
    if !args.input.is_file() {
        return Err(format!("--input {}: no such file", args.input.display()));
    }
    std::fs::create_dir_all(&args.state_dir)
        .map_err(|e| format!("--state-dir {}: {e}", args.state_dir.display()))?;
    let journal: Arc<dyn Journal> =
        Arc::new(RocksJournal::open(args.state_dir.join("journal")).map_err(|e| e.to_string())?);
    let mut m = Materializer::new();
    if let Some(r) = args.rate {
        m = m.with_batch_size(usize::try_from(r / 100).unwrap_or(1024).clamp(1, 1024));
    }
    if args.checkpoint_interval_ms > 0 {
        m = m.with_checkpoints(CheckpointConfig::new(
            Duration::from_millis(args.checkpoint_interval_ms),
            args.state_dir.join("checkpoints"),
        ));
    }
    let src = FileSource::new(Files::path(&args.input))
        .csv(CsvOptions::default(), decode)
        .uid("entities-source")
        .zip_with_index()
        .uid("entities-positions");
    let src = match args.rate {
        Some(r) => src
            .throttle(
                usize::try_from(r).unwrap_or(usize::MAX),
                Duration::from_secs(1),
                usize::try_from(r / 100).unwrap_or(usize::MAX).max(1),
            )
            .uid("entities-throttle"),
        None => src,
    };
    let settings = EventSourcedSettings::default()
        .command_position(|c: &Command| Some(c.pos))
        .snapshot_every(64)
        .parallelism(args.parallelism);
    let g = src
        .map(|((entity, amount), pos)| Command {
            entity,
            amount,
            pos,
        })
        .via(event_sourced(Accounts, Arc::clone(&journal), settings).uid("entities"))
        .to_mat(
            Sink::fold((0u64, 0u64), |(a, d), o: Outcome| match o {
                Outcome::Applied => (a + 1, d),
                Outcome::Duplicate => (a, d + 1),
            }),
            Keep::right,
        );
    let (applied, duplicates) = rt.block_on(async {
        let (done, h) = m.materialize(&g).map_err(|e| e.to_string())?;
        let r = done.await.map_err(|e| e.to_string())?;
        h.wait().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(r)
    })?;
    let ids = entity_ids(&args.input)?;
    write_output(&*journal, &ids, &args.output)?;
    Ok(JobReport {
        applied,
        duplicates,
        entities: ids.len(),
    })
}

/// `entities-job`: runs the job, prints its JSON line; exit code 1 with the error on stderr.
pub fn main(args: &JobArgs) -> i32 {
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("entities-job: runtime: {e}");
            return 1;
        }
    };
    let t = Instant::now();
    match run(&rt, args) {
        Ok(r) => {
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{{\"workload\":\"entities_job\",\"applied\":{},\"duplicates\":{},\"entities\":{},\"seconds\":{secs:.6},\"commands_per_s\":{:.4e}}}",
                r.applied,
                r.duplicates,
                r.entities,
                (r.applied + r.duplicates) as f64 / secs
            );
            0
        }
        Err(e) => {
            eprintln!("entities-job failed: {e}");
            1
        }
    }
}
