//! Checkpointed shard regions: entity state and remembered entities across a kill and a
//! restore (the restored region makes the remembered entities before any message), and a
//! region that does not remember them making entities only on their messages.

mod ck;

use ck::{Gate, SECOND, Store, counting, dir, mat, mat_in, same, until};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weir_graph::RunnableGraph;
use weir_operators::actor::{Actor, Ctx, Props, RegionSettings, RegionStats, sharded_checkpointed};
use weir_operators::prelude::*;

const N: u64 = 200;
const ENTITIES: u64 = 5;

/// `(entity, its running count, the value)`.
type Row = (u32, u64, u64);

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

/// Counts its messages; its count is its checkpointed state.
#[derive(Serialize, Deserialize)]
struct Tally {
    id: u32,
    n: u64,
}

impl Actor for Tally {
    type Msg = (u32, u64);
    type Out = Row;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, (_, x): (u32, u64)) -> Result<(), StageError> {
        self.n += 1;
        ctx.emit((self.id, self.n, x));
        Ok(())
    }
}

fn job(gate: &Arc<Gate>, store: &Arc<Store<Row>>, settings: RegionSettings) -> RunnableGraph<()> {
    counting("numbers", N, gate)
        .map(|x| ((x % ENTITIES) as u32, x))
        .via(sharded_checkpointed(
            |id: &u32| {
                let id = *id;
                Props::new(move || Tally { id, n: 0 }).checkpointed()
            },
            |m: &(u32, u64)| m.0,
            settings,
        ))
        .to(ck::two_phase(store))
}

fn model() -> Vec<Row> {
    let mut counts = [0u64; ENTITIES as usize];
    let mut rows: Vec<Row> = (0..N)
        .map(|x| {
            let e = (x % ENTITIES) as usize;
            counts[e] += 1;
            (e as u32, counts[e], x)
        })
        .collect();
    rows.sort();
    rows
}

fn emitted(gate: &Gate) -> u64 {
    gate.emitted.load(std::sync::atomic::Ordering::Acquire)
}

/// Runs the job on `d` up to 20 numbers, checkpoints there, goes on to 30 and kills the run.
async fn checkpoint_and_kill(d: &Path, store: &Arc<Store<Row>>, remember: bool) {
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(d);
    let settings = RegionSettings::default().remember_entities(remember);
    let ((), h) = m.materialize(&job(&gate, store, settings)).unwrap();
    let ck = h.checkpoints().expect("the run checkpoints");
    gate.open(20);
    until("the checkpoint's position", || emitted(&gate) == 20).await;
    clock.run_for(SECOND).await;
    until("a checkpoint", || ck.latest_completed().is_some()).await;
    gate.open(30);
    until("the kill's position", || emitted(&gate) == 30).await;
    h.cancel();
    assert!(timed(h.wait()).await.is_err());
}

/// Restores the job from `d`: the region's counters before any message, and after one.
async fn restore(d: &Path, store: &Arc<Store<Row>>, remember: bool) -> [(u64, u64, u64); 2] {
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(d);
    let settings = RegionSettings::default().remember_entities(remember);
    let stats = settings.stats();
    let ((), h) = m.materialize(&job(&gate, store, settings)).unwrap();
    assert!(h.checkpoints().unwrap().restored().is_some());
    let counters = |s: &RegionStats| (s.created(), s.alive(), s.messages());
    // The source restored at 20: nothing flows until the gate passes it.
    if remember {
        until("the remembered entities", || stats.created() == ENTITIES).await;
    }
    let before = counters(&stats);
    gate.open(21);
    until("the first message", || stats.messages() == 1).await;
    let after = counters(&stats);
    gate.open(N);
    timed(h.wait()).await.unwrap();
    [before, after]
}

async fn unfailed() -> Vec<Row> {
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat_in(None);
    let settings = RegionSettings::default().remember_entities(true);
    let ((), h) = m.materialize(&job(&gate, &store, settings)).unwrap();
    gate.open(N);
    timed(h.wait()).await.unwrap();
    store.sorted()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_region_makes_its_remembered_entities_before_any_message() {
    let want = model();
    same(&unfailed().await, &want);
    let d = dir("region-remember");
    let store = Store::new();
    checkpoint_and_kill(&d, &store, true).await;
    let counters = restore(&d, &store, true).await;
    let _ = std::fs::remove_dir_all(&d);
    // Five entities made at start with no message; the first message (20, entity 0) goes to
    // one of them.
    assert_eq!(counters, [(ENTITIES, ENTITIES, 0), (ENTITIES, ENTITIES, 1)]);
    // Each entity's count went on from its checkpointed state: exactly the unfailed output.
    same(&store.sorted(), &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_that_does_not_remember_makes_entities_on_their_messages() {
    let d = dir("region-forget");
    let store = Store::new();
    checkpoint_and_kill(&d, &store, false).await;
    let counters = restore(&d, &store, false).await;
    let _ = std::fs::remove_dir_all(&d);
    assert_eq!(counters, [(0, 0, 0), (1, 1, 1)]);
    // Entity state is checkpointed either way: a recreated entity takes its saved count.
    same(&store.sorted(), &model());
}
