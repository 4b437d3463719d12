//! `weir-bench persistence`: event-sourced throughput and recovery on the RocksDB journal.
//! Variants (one JSON line each, all in one run): `persist` sends `--n` commands round robin
//! over `--entities` account entities, each persisting one event (the events of every batch are
//! one atomic append); `persist_snapshots` the same with a snapshot every 100 events per
//! entity; `recover` times the recovery of one entity holding `--recover-events` events (a
//! command to a fresh stage replays them all); `baseline_loop` appends the same events to the
//! same journal in batches of 1,024 by hand.
//!
//! `cargo run --release -p weir-bench -- persistence --n 1e6 --entities 1e4`

use crate::entities::job::{Accounts, Command, Event};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use weir::operators::persistence::{EventSourcedSettings, event_sourced};
use weir::prelude::*;
use weir::state::journal::{AtomicWrite, Journal, NewEvent};
use weir_state_rocksdb::RocksJournal;

/// Command line of `weir-bench persistence`.
#[derive(clap::Args)]
#[command(
    about = "event-sourced entities on the RocksDB journal: persisted events per second and recovery time"
)]
pub struct Args {
    /// Commands (one event each); accepts `1e6`.
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::parse_count)]
    n: u64,
    /// Entities the commands go to; accepts `1e4`.
    #[arg(long, default_value_t = 10_000, value_parser = crate::parse_count)]
    entities: u64,
    /// Events of the entity whose recovery is timed; accepts `1e6`.
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::parse_count)]
    recover_events: u64,
    /// Where the journals go (default: a fresh directory under the temporary directory,
    /// removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn journal(dir: &Path, name: &str) -> Result<Arc<dyn Journal>, String> {
    let p = dir.join(name);
    let _ = std::fs::remove_dir_all(&p);
    Ok(Arc::new(RocksJournal::open(&p).map_err(|e| e.to_string())?))
}

fn line(variant: &str, events: u64, secs: f64, extra: &str) {
    println!(
        "{{\"workload\":\"persistence\",\"variant\":\"{variant}\",\"events\":{events},\"seconds\":{secs:.6},\"events_per_s\":{:.4e},\"peak_rss_mb\":{:.1}{extra}}}",
        events as f64 / secs,
        crate::peak_rss_mb()
    );
}

/// Commands `0..n` round robin over `entities`.
fn commands(n: u64, entities: u64) -> impl Iterator<Item = Command> + Clone + Send + Sync {
    (0..n).map(move |i| Command {
        entity: (i % entities.max(1)) as u32,
        amount: 1,
        pos: i,
    })
}

fn persist(
    rt: &weir::engine::Runtime,
    journal: Arc<dyn Journal>,
    cmds: Vec<Command>,
    settings: EventSourcedSettings<Command>,
) -> Result<(f64, u64), String> {
    let g = Source::from_iter(cmds)
        .via(event_sourced(Accounts, journal, settings))
        .to_mat(Sink::fold(0u64, |n, _| n + 1), Keep::right);
    crate::reset_peak_rss();
    let t = Instant::now();
    let replies = rt.block_on(async {
        let (done, h) = Materializer::new()
            .materialize(&g)
            .map_err(|e| e.to_string())?;
        let r = done.await.map_err(|e| e.to_string())?;
        h.wait().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(r)
    })?;
    Ok((t.elapsed().as_secs_f64(), replies))
}

fn run(args: &Args, dir: &Path) -> Result<(), String> {
    let rt = weir::engine::Runtime::new().map_err(|e| e.to_string())?;
    let cmds: Vec<Command> = commands(args.n, args.entities).collect();
    let extra = format!(",\"entities\":{}", args.entities);

    let (secs, n) = persist(
        &rt,
        journal(dir, "persist")?,
        cmds.clone(),
        EventSourcedSettings::default(),
    )?;
    line("persist", n, secs, &extra);
    let (secs, n) = persist(
        &rt,
        journal(dir, "persist-snapshots")?,
        cmds.clone(),
        EventSourcedSettings::default().snapshot_every(100),
    )?;
    line("persist_snapshots", n, secs, &extra);

    // The same events appended by hand, 1,024 per atomic batch.
    let j = journal(dir, "loop")?;
    let mut seqs = vec![0u64; args.entities.max(1) as usize];
    crate::reset_peak_rss();
    let t = Instant::now();
    for chunk in cmds.chunks(1024) {
        let writes: Vec<AtomicWrite> = chunk
            .iter()
            .map(|c| {
                let e = c.entity as usize;
                let w = AtomicWrite {
                    pid: crate::entities::job::pid(c.entity),
                    expected_seq: seqs[e],
                    events: vec![NewEvent::new(
                        postcard::to_allocvec(&Event::Deposited(c.amount)).unwrap_or_default(),
                    )],
                    applied: Some(c.pos),
                };
                seqs[e] += 1;
                w
            })
            .collect();
        j.append(&writes).map_err(|e| e.to_string())?;
    }
    line("baseline_loop", args.n, t.elapsed().as_secs_f64(), &extra);

    // Recovery of one entity with many events.
    let j = journal(dir, "recover")?;
    let ev = postcard::to_allocvec(&Event::Deposited(1)).map_err(|e| e.to_string())?;
    let mut seq = 0;
    while seq < args.recover_events {
        let k = (args.recover_events - seq).min(4096);
        j.append(&[AtomicWrite {
            pid: crate::entities::job::pid(0),
            expected_seq: seq,
            events: (0..k).map(|_| NewEvent::new(ev.clone())).collect(),
            applied: None,
        }])
        .map_err(|e| e.to_string())?;
        seq += k;
    }
    let one = vec![Command {
        entity: 0,
        amount: 1,
        pos: 0,
    }];
    let (secs, _) = persist(&rt, j, one, EventSourcedSettings::default())?;
    line("recover", args.recover_events, secs, "");
    Ok(())
}

/// Runs the measurement; the process's exit code.
pub fn main(args: Args) -> i32 {
    let (dir, temporary) = crate::work_dir(args.dir.as_deref(), "persistence");
    let r = run(&args, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("persistence: {e}");
            1
        }
    }
}
