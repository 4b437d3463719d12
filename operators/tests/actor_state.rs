//! Actor state: checkpointed actor trees (killed and restored, exactly the unfailed output; a
//! stage that is not checkpointed refuses), the run's actor registry, and hot swap of a
//! versioned actor's logic with rollback.

mod ck;

use ck::{Gate, SECOND, Store, counting, dir, mat, mat_in, same, two_phase, until};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{Keep, RunnableGraph, SinkFuture, SnapshotError};
use weir_operators::actor::{
    Actor, ActorRef, ActorRegistry, Ctx, Props, RegistryError, SwapError, SwapHandle, Version,
    Versioned,
};
use weir_operators::prelude::*;

const N: u64 = 400;

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

// ---------------------------------------------------------------------------------------------
// Checkpointed actors

/// `(0, x, running sum)` from the root, `(1, x, evens so far)` from its child.
type Row = (u8, u64, u64);

/// Sums what it handles; from an `x` ending in 3 to the next ending in 7 it stashes the
/// messages between (handled after the 7); tells every even `x` to its child.
#[derive(Default, Serialize, Deserialize)]
struct Ledger {
    sum: u64,
    waiting: bool,
    /// Spawned again by `pre_start` on a restored instance.
    #[serde(skip)]
    evens: Option<ActorRef<u64>>,
}

impl Actor for Ledger {
    type Msg = u64;
    type Out = Row;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        let child = Props::<Evens>::default_of()
            .with_name("evens")
            .checkpointed();
        self.evens = Some(ctx.spawn(child)?);
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        if self.waiting && x % 10 != 7 {
            return ctx.stash(x);
        }
        self.sum += x;
        ctx.emit((0, x, self.sum));
        match x % 10 {
            3 => self.waiting = true,
            7 => {
                self.waiting = false;
                ctx.unstash_all();
            }
            _ => {}
        }
        if x.is_multiple_of(2)
            && let Some(evens) = &self.evens
        {
            let evens = evens.clone();
            ctx.tell(&evens, x)
                .map_err(|e| StageError::user(e.to_string()))?;
        }
        Ok(())
    }
}

/// Counts the even numbers it is told.
#[derive(Default, Serialize, Deserialize)]
struct Evens {
    count: u64,
}

impl Actor for Evens {
    type Msg = u64;
    type Out = Row;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        self.count += 1;
        ctx.emit((1, x, self.count));
        Ok(())
    }
}

/// What `Ledger` and `Evens` emit for `0..N`, sorted.
fn model() -> Vec<Row> {
    let mut rows = Vec::new();
    let (mut sum, mut count) = (0, 0);
    for d in 0..N / 10 {
        for k in [0, 1, 2, 3, 7, 4, 5, 6, 8, 9] {
            let x = d * 10 + k;
            sum += x;
            rows.push((0, x, sum));
            if x.is_multiple_of(2) {
                count += 1;
                rows.push((1, x, count));
            }
        }
    }
    rows.sort();
    rows
}

fn ledger_job(gate: &Arc<Gate>, store: &Arc<Store<Row>>) -> RunnableGraph<()> {
    counting("numbers", N, gate)
        .via(Flow::actor(
            Props::<Ledger>::default_of()
                .with_name("ledger")
                .checkpointed(),
        ))
        .to(two_phase(store))
}

/// A job over a gate and a store.
type Job = fn(&Arc<Gate>, &Arc<Store<Row>>) -> RunnableGraph<()>;

fn emitted(gate: &Gate) -> u64 {
    gate.emitted.load(std::sync::atomic::Ordering::Acquire)
}

/// The output of `job` run to its end without checkpoints, sorted.
async fn unfailed(job: Job) -> Vec<Row> {
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat_in(None);
    let ((), h) = m.materialize(&job(&gate, &store)).unwrap();
    gate.open(N);
    timed(h.wait()).await.unwrap();
    store.sorted()
}

/// Runs `job` on `d` (restored when `d` holds a checkpoint): lets its source go to `ck_at`,
/// waits for a checkpoint there, lets the source go on to `kill_at` and kills the run.
async fn checkpoint_and_kill(
    d: &Path,
    store: &Arc<Store<Row>>,
    job: Job,
    ck_at: u64,
    kill_at: u64,
) {
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(d);
    let ((), h) = m.materialize(&job(&gate, store)).unwrap();
    let ck = h.checkpoints().expect("the run checkpoints");
    let before = ck.latest_completed();
    gate.open(ck_at);
    until("the checkpoint's position", || emitted(&gate) == ck_at).await;
    clock.run_for(SECOND).await;
    until("a checkpoint", || {
        ck.latest_completed().is_some_and(|id| Some(id) != before)
    })
    .await;
    gate.open(kill_at);
    until("the kill's position", || emitted(&gate) == kill_at).await;
    h.cancel();
    assert!(timed(h.wait()).await.is_err());
}

/// Runs `job` restored from `d` to its end.
async fn resume(d: &Path, store: &Arc<Store<Row>>, job: Job) {
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(d);
    let ((), h) = m.materialize(&job(&gate, store)).unwrap();
    assert!(h.checkpoints().unwrap().restored().is_some());
    gate.open(N);
    timed(h.wait()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpointed_actor_tree_resumes_with_exactly_the_unfailed_output() {
    let want = model();
    same(&unfailed(ledger_job).await, &want);
    // A checkpoint after 146 numbers (143 opened a stash: 144 and 145 are in it), killed at
    // 290, restored on the same directory: the rest, exactly once.
    let d = dir("actor-ledger");
    let store = Store::new();
    checkpoint_and_kill(&d, &store, ledger_job, 146, 290).await;
    assert!(
        !store.output().is_empty(),
        "rows were committed before the crash"
    );
    resume(&d, &store, ledger_job).await;
    let _ = std::fs::remove_dir_all(&d);
    same(&store.sorted(), &want);
}

/// Sums what it handles; its state is not serde (saved by `checkpointed_with` as 8 bytes).
struct Raw {
    sum: u64,
}

impl Actor for Raw {
    type Msg = u64;
    type Out = Row;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        self.sum += x;
        ctx.emit((0, x, self.sum));
        Ok(())
    }
}

fn raw_job(gate: &Arc<Gate>, store: &Arc<Store<Row>>) -> RunnableGraph<()> {
    let props = Props::new(|| Raw { sum: 0 })
        .with_name("raw")
        .checkpointed_with(
            |a: &Raw| Ok(a.sum.to_le_bytes().to_vec()),
            |b: &[u8]| {
                let sum = <[u8; 8]>::try_from(b).map_err(|e| SnapshotError::Decode {
                    ty: "Raw",
                    reason: e.to_string(),
                })?;
                Ok(Raw {
                    sum: u64::from_le_bytes(sum),
                })
            },
        );
    counting("numbers", N, gate)
        .via(Flow::actor(props))
        .to(two_phase(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_checkpointed_by_its_own_codec_resumes_with_exactly_the_unfailed_output() {
    let mut sum = 0;
    let want: Vec<Row> = (0..N)
        .map(|x| {
            sum += x;
            (0, x, sum)
        })
        .collect();
    same(&unfailed(raw_job).await, &want);
    let d = dir("actor-raw");
    let store = Store::new();
    checkpoint_and_kill(&d, &store, raw_job, 146, 290).await;
    resume(&d, &store, raw_job).await;
    let _ = std::fs::remove_dir_all(&d);
    same(&store.sorted(), &want);
}

/// Counts what it handles; tells the numbers below 100 and from 260 on to a child it spawns
/// when it first needs it (so a restored run between 100 and 260 has not spawned it yet).
#[derive(Default, Serialize, Deserialize)]
struct Lazy {
    n: u64,
    #[serde(skip)]
    child: Option<ActorRef<u64>>,
}

impl Actor for Lazy {
    type Msg = u64;
    type Out = Row;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        self.n += 1;
        ctx.emit((0, x, self.n));
        if !(100..260).contains(&x) {
            let child = match &self.child {
                Some(c) => c.clone(),
                None => {
                    let props = Props::<Evens>::default_of()
                        .with_name("late")
                        .checkpointed();
                    let c = ctx.spawn(props)?;
                    self.child = Some(c.clone());
                    c
                }
            };
            ctx.tell(&child, x)
                .map_err(|e| StageError::user(e.to_string()))?;
        }
        Ok(())
    }
}

fn lazy_job(gate: &Arc<Gate>, store: &Arc<Store<Row>>) -> RunnableGraph<()> {
    counting("numbers", N, gate)
        .via(Flow::actor(Props::<Lazy>::default_of().checkpointed()))
        .to(two_phase(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_child_not_spawned_again_keeps_its_state_through_the_next_checkpoint() {
    let mut want: Vec<Row> = (0..N).map(|x| (0, x, x + 1)).collect();
    let told = (0..100).chain(260..N);
    want.extend(told.zip(1..).map(|(x, count)| (1, x, count)));
    want.sort();
    same(&unfailed(lazy_job).await, &want);
    // Checkpoint 1 holds the child; the run restored from it checkpoints at 200 before it
    // spawned the child again, so checkpoint 2 carries the child's saved state on.
    let d = dir("actor-lazy");
    let store = Store::new();
    checkpoint_and_kill(&d, &store, lazy_job, 146, 180).await;
    checkpoint_and_kill(&d, &store, lazy_job, 200, 230).await;
    resume(&d, &store, lazy_job).await;
    let _ = std::fs::remove_dir_all(&d);
    same(&store.sorted(), &want);
}

/// Another state under the `Ledger`'s path: its saved bytes do not decode as this.
#[derive(Default, Serialize, Deserialize)]
struct Wider {
    words: [u64; 32],
}

impl Actor for Wider {
    type Msg = u64;
    type Out = Row;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _x: u64) -> Result<(), StageError> {
        Ok(())
    }
}

fn wider_job(gate: &Arc<Gate>, store: &Arc<Store<Row>>) -> RunnableGraph<()> {
    counting("numbers", N, gate)
        .via(Flow::actor(
            Props::<Wider>::default_of()
                .with_name("ledger")
                .checkpointed(),
        ))
        .to(two_phase(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_state_that_does_not_load_fails_the_restore_instead_of_starting_empty() {
    let d = dir("actor-wider");
    let store = Store::new();
    checkpoint_and_kill(&d, &store, ledger_job, 146, 290).await;
    let committed = store.output();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let err = m
        .materialize(&wider_job(&gate, &store))
        .map(|_| ())
        .expect_err("refused");
    let _ = std::fs::remove_dir_all(&d);
    let err = err.to_string();
    let (stage, why) = err
        .split_once(" subtask 0 from checkpoint 1: ")
        .expect("names the checkpoint");
    assert!(stage.starts_with("restoring stage "), "{err}");
    assert_eq!(
        why,
        "actor#1: actor 'actor#1/ledger': cannot restore its saved state: cannot decode the \
         stage state as actor_state::Wider: Hit the end of buffer, expected more data"
    );
    assert_eq!(store.output(), committed, "nothing more was committed");
}

/// Saved like a `Ledger`, but its child at the `Evens` path is a `Wider`.
#[derive(Default, Serialize, Deserialize)]
struct WideParent {
    sum: u64,
    waiting: bool,
}

impl Actor for WideParent {
    type Msg = u64;
    type Out = Row;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        let child = Props::<WiderChild>::default_of()
            .with_name("evens")
            .checkpointed();
        ctx.spawn(child)?;
        Ok(())
    }
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _x: u64) -> Result<(), StageError> {
        Ok(())
    }
}

#[derive(Default, Serialize, Deserialize)]
struct WiderChild {
    words: [u64; 32],
}

impl Actor for WiderChild {
    type Msg = u64;
    type Out = Row;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _x: u64) -> Result<(), StageError> {
        Ok(())
    }
}

fn wide_parent_job(gate: &Arc<Gate>, store: &Arc<Store<Row>>) -> RunnableGraph<()> {
    counting("numbers", N, gate)
        .via(Flow::actor(
            Props::<WideParent>::default_of()
                .with_name("ledger")
                .checkpointed(),
        ))
        .to(two_phase(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_whose_saved_state_does_not_load_fails_the_stage() {
    let d = dir("actor-wide-child");
    let store = Store::new();
    checkpoint_and_kill(&d, &store, ledger_job, 146, 290).await;
    let committed = store.output();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&wide_parent_job(&gate, &store)).unwrap();
    gate.open(N);
    let err = timed(h.wait()).await.expect_err("fails");
    let _ = std::fs::remove_dir_all(&d);
    assert_eq!(
        err.to_string(),
        "stage 'actor#1' failed: actor 'actor#1/ledger/evens': cannot restore its saved state: \
         cannot decode the stage state as actor_state::WiderChild: Hit the end of buffer, \
         expected more data"
    );
    assert_eq!(store.output(), committed, "nothing more was committed");
}

/// The sums the [`Tally`] sinks reported when they stopped.
static TALLIES: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

/// Sums what it handles; reports the sum when it stops.
#[derive(Default, Serialize, Deserialize)]
struct Tally {
    sum: u64,
}

impl Actor for Tally {
    type Msg = u64;
    type Out = ();
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        self.sum += x;
        Ok(())
    }
    fn post_stop(&mut self, _ctx: &mut Ctx<'_, Self>) {
        TALLIES.lock().unwrap().push(self.sum);
    }
}

fn tally_job(gate: &Arc<Gate>, _store: &Arc<Store<Row>>) -> RunnableGraph<()> {
    counting("numbers", N, gate).to_mat(
        Sink::actor(Props::<Tally>::default_of().checkpointed()),
        Keep::left,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpointed_actor_sink_resumes_with_its_state() {
    let d = dir("actor-tally");
    let store = Store::new();
    checkpoint_and_kill(&d, &store, tally_job, 146, 290).await;
    resume(&d, &store, tally_job).await;
    let _ = std::fs::remove_dir_all(&d);
    // The killed run stopped no actor (its stage was dropped); the resumed one saw 0..146
    // through its restored state and 146..N itself.
    assert_eq!(*TALLIES.lock().unwrap(), vec![(0..N).sum::<u64>()]);
}

/// Counts what it handles (its state is not serde).
#[derive(Default)]
struct Plain {
    n: u64,
}

impl Actor for Plain {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _x: u64) -> Result<(), StageError> {
        self.n += 1;
        ctx.emit(self.n);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_that_is_not_checkpointed_refuses_a_checkpointed_run_naming_the_stage() {
    let d = dir("actor-plain");
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let g = counting("numbers", N, &gate)
        .via(Flow::actor(Props::<Plain>::default_of().with_name("plain")))
        .to(two_phase(&store));
    let ((), h) = m.materialize(&g).unwrap();
    gate.open(N);
    let err = timed(h.wait()).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "stage 'actor#1' failed: actor 'actor#1/plain' is not checkpointed, so a checkpoint would \
         lose its state: build its props with `Props::checkpointed()` (its state and messages \
         serde; from Python, `checkpointed=True`)"
    );
    assert!(store.output().is_empty(), "nothing was committed");

    // Without checkpoints the same graph runs.
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat_in(None);
    let g = counting("numbers", 5, &gate)
        .via(Flow::actor(Props::<Plain>::default_of()))
        .to(two_phase(&store));
    let ((), h) = m.materialize(&g).unwrap();
    gate.open(5);
    timed(h.wait()).await.unwrap();
    assert_eq!(store.output(), vec![1, 2, 3, 4, 5]);
    let _ = std::fs::remove_dir_all(&d);
}

/// A checkpointed root with two children of the same name.
#[derive(Default, Serialize, Deserialize)]
struct Twins;

impl Actor for Twins {
    type Msg = u64;
    type Out = u64;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        for _ in 0..2 {
            ctx.spawn(
                Props::<Twins2>::default_of()
                    .with_name("twin")
                    .checkpointed(),
            )?;
        }
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        ctx.emit(x);
        Ok(())
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Twins2;

impl Actor for Twins2 {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _x: u64) -> Result<(), StageError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_refuses_two_actors_on_one_path() {
    let d = dir("actor-twins");
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let g = counting("numbers", N, &gate)
        .via(Flow::actor(Props::<Twins>::default_of().checkpointed()))
        .to(two_phase(&store));
    let ((), h) = m.materialize(&g).unwrap();
    gate.open(10);
    until("10 numbers", || {
        gate.emitted.load(std::sync::atomic::Ordering::Acquire) == 10
    })
    .await;
    clock.run_for(SECOND).await;
    let err = timed(h.wait()).await.expect_err("refused");
    assert_eq!(
        err.to_string(),
        "stage 'actor#1' failed: two actors have the path 'actor#1/Twins/twin', so a checkpoint \
         cannot tell them apart: give children distinct names with `Props::with_name`"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_source_actor_refuses_to_be_checkpointed_at_materialization() {
    let g = Source::actor(Props::<Ledger>::default_of().checkpointed())
        .to_mat(Sink::ignore(), Keep::left);
    let err = Materializer::new().materialize(&g).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "stage 'actor-source#0' failed: actor 'Ledger': a `Source::actor` is not checkpointed \
         (what is told to its ref is not replayable): feed a checkpointed actor through \
         `Flow::actor` from a replayable source"
    );
}

// ---------------------------------------------------------------------------------------------
// The registry

/// Messages of the payment actors.
#[derive(Debug)]
enum Pay {
    Add(u64),
    /// Spawns a child registered under the path.
    Spawn(&'static str),
    /// Registers itself under the path too.
    Alias(&'static str),
    StopChild,
    Stop,
}

#[derive(Default)]
struct Payments {
    total: u64,
    child: Option<weir_operators::actor::ActorId>,
}

impl Actor for Payments {
    type Msg = Pay;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Pay) -> Result<(), StageError> {
        match msg {
            Pay::Add(x) => {
                self.total += x;
                ctx.emit(format!("{} {}", ctx.path(), self.total));
            }
            Pay::Spawn(path) => {
                let r = ctx.spawn(
                    Props::<Payments>::default_of()
                        .with_name("one")
                        .register_as(path),
                )?;
                self.child = Some(r.id());
            }
            Pay::Alias(path) => ctx.register(path)?,
            Pay::StopChild => {
                if let Some(c) = self.child.take() {
                    ctx.stop_child(c);
                }
            }
            Pay::Stop => ctx.stop(),
        }
        Ok(())
    }
}

type Running<M, O> = (ActorRef<M>, SinkFuture<Vec<O>>, RunHandle);

fn payments(
    m: &Materializer,
    props: Props<Payments>,
) -> Result<Running<Pay, String>, weir_engine::EngineError> {
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    m.materialize(&g).map(|((r, done), h)| (r, done, h))
}

#[tokio::test]
async fn registered_actors_are_looked_up_by_path_and_type_and_leave_when_they_stop() {
    let registry = Arc::new(ActorRegistry::new());
    let m = Materializer::new().with_service(Arc::clone(&registry));
    let (root, done, _h) = payments(
        &m,
        Props::<Payments>::default_of()
            .with_name("payments")
            .register_as("/svc/payments"),
    )
    .expect("materializes");
    assert_eq!(registry.paths(), vec!["/svc/payments".to_owned()]);

    let found = registry
        .lookup::<Pay>("/svc/payments")
        .expect("right type")
        .expect("registered");
    assert_eq!(found.path(), root.path());
    found.tell(Pay::Add(5)).await.expect("told");
    assert_eq!(
        registry.lookup::<u64>("/svc/payments").map(|r| r.is_some()),
        Err(RegistryError::WrongType {
            path: "/svc/payments".into(),
            actor: "actor-source#0/payments".into(),
            expected: "u64",
            actual: std::any::type_name::<Pay>(),
        })
    );
    assert_eq!(
        registry
            .lookup::<Pay>("/svc/nobody")
            .unwrap()
            .map(|r| r.id()),
        None
    );

    // A child registered by its props, an alias registered by the handler.
    root.tell(Pay::Spawn("/svc/payments/one")).await.unwrap();
    root.tell(Pay::Alias("/svc/alias")).await.unwrap();
    timed(until("the child registered", || {
        registry.paths().len() == 3
    }))
    .await;
    assert_eq!(
        registry.paths(),
        vec!["/svc/alias", "/svc/payments", "/svc/payments/one"]
    );
    let one = registry
        .lookup::<Pay>("/svc/payments/one")
        .unwrap()
        .expect("registered");
    assert_eq!(one.path(), "actor-source#0/payments/one");
    one.tell(Pay::Add(7)).await.unwrap();
    // Registering a path that is taken fails the handler (the root: the stage fails later).
    assert_eq!(
        registry.register("/svc/payments/one", &root),
        Err(RegistryError::Taken {
            path: "/svc/payments/one".into(),
            actor: "actor-source#0/payments/one".into(),
        })
    );
    assert_eq!(
        registry.register("/svc/payments", &root),
        Ok(()),
        "same actor"
    );

    // The child stops: its entry is gone and its path free again.
    root.tell(Pay::StopChild).await.unwrap();
    timed(until("the child stopped", || one.is_stopped())).await;
    assert_eq!(
        registry
            .lookup::<Pay>("/svc/payments/one")
            .unwrap()
            .map(|r| r.id()),
        None
    );
    assert_eq!(registry.paths(), vec!["/svc/alias", "/svc/payments"]);
    drop(one);

    root.tell(Pay::Add(1)).await.unwrap();
    root.tell(Pay::Stop).await.unwrap();
    drop(found);
    assert_eq!(
        timed(done).await.expect("completes"),
        vec![
            "actor-source#0/payments 5".to_owned(),
            "actor-source#0/payments/one 7".to_owned(),
            "actor-source#0/payments 6".to_owned(),
        ]
    );
    assert!(registry.paths().is_empty(), "{:?}", registry.paths());
    assert_eq!(
        registry
            .lookup::<Pay>("/svc/payments")
            .unwrap()
            .map(|r| r.id()),
        None
    );
    drop(root);
}

#[tokio::test]
async fn a_taken_path_a_bad_path_and_a_run_without_registry_are_errors() {
    let registry = Arc::new(ActorRegistry::new());
    let m = Materializer::new().with_service(Arc::clone(&registry));
    let props = Props::<Payments>::default_of()
        .with_name("payments")
        .register_as("/svc/payments");
    let (first, _done, _h) = payments(&m, props.clone()).expect("materializes");
    let err = payments(&m, props.clone()).expect_err("taken");
    assert_eq!(
        err.to_string(),
        "stage 'actor-source#0' failed: actor 'actor-source#0/payments': registry path \
         '/svc/payments' is taken by actor 'actor-source#0/payments'"
    );
    let err =
        payments(&m, Props::<Payments>::default_of().register_as("svc/x")).expect_err("bad path");
    assert_eq!(
        err.to_string(),
        "stage 'actor-source#0' failed: actor 'actor-source#0/Payments': 'svc/x' is not a registry \
         path: it starts with '/' and has non-empty segments"
    );
    let err = payments(&Materializer::new(), props).expect_err("no registry");
    assert_eq!(
        err.to_string(),
        "stage 'actor-source#0' failed: actor 'actor-source#0/payments' registers as \
         '/svc/payments', but the run has no ActorRegistry: add one with \
         `Materializer::with_service(Arc::new(ActorRegistry::new()))`"
    );
    assert_eq!(registry.paths(), vec!["/svc/payments".to_owned()]);
    drop(first);
}

// ---------------------------------------------------------------------------------------------
// Hot swap

/// Messages of the versioned counter.
#[derive(Debug)]
enum Count {
    Add(u64),
    /// Replies with the running version's view of its state.
    Show,
    /// Fails the handler.
    Fail,
}

/// Version 1: counts messages.
struct CountV1 {
    n: u64,
}

impl Version for CountV1 {
    type Msg = Count;
    type Out = String;
    fn handle(
        &mut self,
        ctx: &mut Ctx<'_, Versioned<Count, String>>,
        msg: Count,
    ) -> Result<(), StageError> {
        match msg {
            Count::Add(_) => {
                self.n += 1;
                ctx.emit(format!("v1 n={}", self.n));
            }
            Count::Show => {
                ctx.reply(format!("v1 n={}", self.n));
            }
            Count::Fail => return Err(StageError::user("v1 failed")),
        }
        Ok(())
    }
}

/// Version 2: counts messages and sums them.
struct CountV2 {
    n: u64,
    sum: u64,
}

impl Version for CountV2 {
    type Msg = Count;
    type Out = String;
    fn handle(
        &mut self,
        ctx: &mut Ctx<'_, Versioned<Count, String>>,
        msg: Count,
    ) -> Result<(), StageError> {
        match msg {
            Count::Add(x) => {
                self.n += 1;
                self.sum += x;
                ctx.emit(format!("v2 n={} sum={}", self.n, self.sum));
            }
            Count::Show => {
                ctx.reply(format!("v2 n={} sum={}", self.n, self.sum));
            }
            Count::Fail => return Err(StageError::user("v2 failed")),
        }
        Ok(())
    }
}

async fn show(r: &ActorRef<Count>) -> String {
    timed(r.ask::<String>(Count::Show, Duration::from_secs(10)))
        .await
        .expect("answered")
}

fn versioned() -> (Running<Count, String>, SwapHandle<Count, String>) {
    let (props, swap) = Props::versioned(|| CountV1 { n: 0 });
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let ((r, done), h) = Materializer::new().materialize(&g).expect("materializes");
    ((r, done, h), swap)
}

#[tokio::test]
async fn a_swapped_version_handles_the_next_message_with_the_migrated_state_and_rolls_back() {
    let ((r, done, _h), swap) = versioned();
    for x in [10, 20, 30] {
        r.tell(Count::Add(x)).await.unwrap();
    }
    assert_eq!(show(&r).await, "v1 n=3");
    assert_eq!(swap.version(), 1);

    // The next message is the first the new version sees, with the migrated state.
    let swapped = swap.swap(|v1: &CountV1| CountV2 { n: v1.n, sum: 0 });
    r.tell(Count::Add(4)).await.unwrap();
    assert_eq!(timed(swapped).await, Ok(2));
    assert_eq!(swap.version(), 2);
    r.tell(Count::Add(5)).await.unwrap();
    assert_eq!(show(&r).await, "v2 n=5 sum=9");

    // A migration from a version that is not running changes nothing.
    let wrong = swap.swap(|v1: &CountV1| CountV2 { n: v1.n, sum: 0 });
    assert_eq!(show(&r).await, "v2 n=5 sum=9");
    assert_eq!(
        timed(wrong).await,
        Err(SwapError::WrongVersion {
            actor: r.path().to_owned(),
            expected: std::any::type_name::<CountV1>(),
            running: std::any::type_name::<CountV2>(),
        })
    );

    // Rollback: version 1 with its state at the swap (n=3), what version 2 did is gone.
    let back = swap.rollback();
    r.tell(Count::Add(6)).await.unwrap();
    assert_eq!(timed(back).await, Ok(1));
    assert_eq!(show(&r).await, "v1 n=4");
    let again = swap.rollback();
    assert_eq!(show(&r).await, "v1 n=4");
    assert_eq!(
        timed(again).await,
        Err(SwapError::NothingToRollBack {
            actor: r.path().to_owned()
        })
    );
    assert_eq!(swap.version(), 1);

    drop(r);
    assert_eq!(
        timed(done).await.expect("completes"),
        vec![
            "v1 n=1",
            "v1 n=2",
            "v1 n=3",
            "v2 n=4 sum=4",
            "v2 n=5 sum=9",
            "v1 n=4"
        ]
    );
    // The actor is gone: a request resolves at once with `Stopped`.
    assert_eq!(timed(swap.rollback()).await, Err(SwapError::Stopped));
}

#[tokio::test]
async fn a_restart_makes_the_first_version_again() {
    let (props, swap) = Props::versioned(|| CountV1 { n: 0 });
    let g = Source::actor(props)
        .with_supervision(weir_graph::Supervision::restart())
        .to_mat(Sink::collect(), Keep::both);
    let ((r, done), _h) = Materializer::new().materialize(&g).expect("materializes");
    r.tell(Count::Add(1)).await.unwrap();
    assert_eq!(show(&r).await, "v1 n=1");
    let swapped = swap.swap(|v1: &CountV1| CountV2 { n: v1.n, sum: 0 });
    r.tell(Count::Add(2)).await.unwrap();
    assert_eq!(timed(swapped).await, Ok(2));
    r.tell(Count::Fail).await.unwrap();
    assert_eq!(show(&r).await, "v1 n=0");
    assert_eq!(swap.version(), 1);
    let back = swap.rollback();
    r.tell(Count::Add(3)).await.unwrap();
    assert_eq!(
        timed(back).await,
        Err(SwapError::NothingToRollBack {
            actor: r.path().to_owned()
        })
    );
    drop(r);
    assert_eq!(
        timed(done).await.expect("completes"),
        vec!["v1 n=1", "v2 n=2 sum=2", "v1 n=1"]
    );
}

// ---------------------------------------------------------------------------------------------
// A parked actor at a checkpoint

#[derive(Serialize, Deserialize)]
enum Work {
    Add(u64),
    Done(u64),
}

/// While set, the work of parked actors waits (a checkpoint comes in meanwhile).
static HOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sums what it is told, each addition computed on another thread while the actor is parked
/// (as a Python actor in an interpreter pool is): a checkpoint waits for the work in flight.
#[derive(Default, Serialize, Deserialize)]
struct Offsum {
    sum: u64,
}

impl Actor for Offsum {
    type Msg = Work;
    type Out = Row;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Work) -> Result<(), StageError> {
        match msg {
            Work::Add(x) => {
                let wake = ctx.park();
                std::thread::spawn(move || {
                    while HOLD.load(std::sync::atomic::Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    wake.wake(Work::Done(x));
                });
            }
            Work::Done(x) => {
                ctx.unpark();
                self.sum += x;
                ctx.emit((0, x, self.sum));
            }
        }
        Ok(())
    }
}

/// Tells every number to its `Offsum` child.
#[derive(Default, Serialize, Deserialize)]
struct Forward {
    #[serde(skip)]
    child: Option<ActorRef<Work>>,
}

impl Actor for Forward {
    type Msg = u64;
    type Out = Row;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        let child = Props::<Offsum>::default_of()
            .with_name("offsum")
            .checkpointed();
        self.child = Some(ctx.spawn(child)?);
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        if let Some(c) = self.child.clone() {
            ctx.tell(&c, Work::Add(x))
                .map_err(|e| StageError::user(e.to_string()))?;
        }
        Ok(())
    }
}

fn offsum_job(gate: &Arc<Gate>, store: &Arc<Store<Row>>) -> RunnableGraph<()> {
    counting("numbers", N, gate)
        .via(Flow::actor(
            Props::<Forward>::default_of()
                .with_name("forward")
                .checkpointed(),
        ))
        .to(two_phase(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_waits_for_the_work_of_a_parked_actor_and_restores_exactly_once() {
    let mut sum = 0;
    let want: Vec<Row> = (0..N)
        .map(|x| {
            sum += x;
            (0, x, sum)
        })
        .collect();
    same(&unfailed(offsum_job).await, &want);
    let d = dir("actor-offsum");
    let store = Store::new();
    // The child is parked on 0 (its work held) when the checkpoint's barrier reaches the stage.
    HOLD.store(true, std::sync::atomic::Ordering::Release);
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&offsum_job(&gate, &store)).unwrap();
    let ck = h.checkpoints().expect("the run checkpoints");
    gate.open(5);
    until("the checkpoint's position", || emitted(&gate) == 5).await;
    clock.advance(SECOND);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        ck.latest_completed(),
        None,
        "the checkpoint waits for the parked work"
    );
    HOLD.store(false, std::sync::atomic::Ordering::Release);
    timed(ck.wait_completed(1)).await;
    gate.open(290);
    until("the kill's position", || emitted(&gate) == 290).await;
    h.cancel();
    assert!(timed(h.wait()).await.is_err());
    resume(&d, &store, offsum_job).await;
    let _ = std::fs::remove_dir_all(&d);
    same(&store.sorted(), &want);
}
