//! Actor supervision conformance: what a restart keeps and resets, backoff with reset and
//! random factor, the restart budget's window, escalation through two levels, failures in
//! `pre_start` and `post_stop`, watching actors of another stage, quotas (handler time limit,
//! max actors), and a cancelled run leaving no actor, timer, ask, sender or task behind.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::{Keep, SinkFuture, Supervision};
use weir_operators::actor::{
    Actor, ActorDirective, ActorId, ActorRef, AskError, Backoff, Ctx, MailboxConfig, Props,
    SupervisorStrategy, TellError,
};
use weir_operators::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

/// Lifecycle events in the order they happened.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        if let Ok(mut v) = self.0.lock() {
            v.push(s.into());
        }
    }
    fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

fn now_ms<A: Actor>(ctx: &Ctx<'_, A>) -> u128 {
    ctx.now().as_millis()
}

/// A root that spawns one child from `child`, watches it, and forwards every message to it.
struct Sup<C: Actor<Out = String>> {
    child: Props<C>,
    strategy: SupervisorStrategy,
    log: Log,
    kid: Option<ActorRef<C::Msg>>,
}

impl<C: Actor<Out = String>> Sup<C> {
    fn props(child: Props<C>, strategy: SupervisorStrategy, log: &Log) -> Props<Self> {
        let log = log.clone();
        Props::new(move || Sup {
            child: child.clone(),
            strategy: strategy.clone(),
            log: log.clone(),
            kid: None,
        })
        .with_name("sup")
    }
}

impl<C: Actor<Out = String>> Actor for Sup<C> {
    type Msg = C::Msg;
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        let r = ctx.spawn(self.child.clone())?;
        ctx.watch(r.id());
        self.kid = Some(r);
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: C::Msg) -> Result<(), StageError> {
        if let Some(k) = &self.kid {
            let _ = ctx.tell(k, msg);
        }
        Ok(())
    }
    fn on_terminated(&mut self, ctx: &mut Ctx<'_, Self>, _who: ActorId) -> Result<(), StageError> {
        self.log
            .push(format!("sup: child terminated@{}", now_ms(ctx)));
        Ok(())
    }
    fn pre_restart(&mut self, _ctx: &mut Ctx<'_, Self>, error: &StageError) {
        self.log
            .push(format!("sup restart after {}", error.message()));
    }
    fn post_stop(&mut self, _ctx: &mut Ctx<'_, Self>) {
        self.log.push("sup stop");
    }
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        self.strategy.clone()
    }
}

fn source_on<A: Actor>(
    props: Props<A>,
    clock: &VirtualClock,
) -> (ActorRef<A::Msg>, SinkFuture<Vec<A::Out>>, RunHandle) {
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((r, done), h) = m.materialize(&g).expect("materializes");
    (r, done, h)
}

// ---------------------------------------------------------------------------------------------
// What a restart keeps and resets.

#[derive(Debug, Clone)]
enum W {
    StartTicks,
    Tick,
    Add(i64),
    Hold,
    Fail,
}

/// State `n`, a grandchild made in `pre_start`, a periodic timer on demand, a stashing mode.
struct Worker {
    n: i64,
    log: Log,
}

struct Grandchild {
    log: Log,
}

impl Actor for Grandchild {
    type Msg = ();
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.log.push(format!("g start@{}", now_ms(ctx)));
        Ok(())
    }
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) -> Result<(), StageError> {
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.log.push(format!("g stop@{}", now_ms(ctx)));
    }
}

impl Actor for Worker {
    type Msg = W;
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.log.push(format!("w start@{}", now_ms(ctx)));
        let log = self.log.clone();
        ctx.spawn(Props::new(move || Grandchild { log: log.clone() }).with_name("g"))?;
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: W) -> Result<(), StageError> {
        match msg {
            W::StartTicks => ctx.schedule_periodically("tick", ms(100), W::Tick),
            W::Tick => ctx.emit(format!("tick@{}", now_ms(ctx))),
            W::Add(x) => {
                self.n += x;
                ctx.emit(format!("w {}", self.n));
            }
            W::Hold => ctx.become_(|_w: &mut Worker, ctx, msg| match msg {
                W::Fail => Err(StageError::user("boom")),
                other => ctx.stash(other),
            }),
            W::Fail => return Err(StageError::user("boom")),
        }
        Ok(())
    }
    fn pre_restart(&mut self, ctx: &mut Ctx<'_, Self>, error: &StageError) {
        self.log.push(format!(
            "w restart after {} (n {}, stashed {}, tick active {})",
            error.message(),
            self.n,
            ctx.stashed(),
            ctx.is_timer_active("tick")
        ));
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.log
            .push(format!("w stop@{} (n {})", now_ms(ctx), self.n));
    }
}

#[tokio::test]
async fn restart_makes_a_fresh_instance_keeps_mailbox_and_stash_and_cancels_timers_and_children() {
    let clock = VirtualClock::new();
    let log = Log::default();
    let l = log.clone();
    let worker = Props::new(move || Worker {
        n: 0,
        log: l.clone(),
    })
    .with_name("w");
    let (r, done, _h) = source_on(
        Sup::props(worker, SupervisorStrategy::one_for_one(), &log),
        &clock,
    );
    r.tell(W::StartTicks).await.expect("told");
    clock.run_for(ms(250)).await;
    r.tell(W::Add(1)).await.expect("told");
    for m in [W::Hold, W::Add(10), W::Add(20), W::Fail, W::Add(5)] {
        r.tell(m).await.expect("told");
    }
    // No tick after the restart: its timer was cancelled.
    clock.run_for(ms(500)).await;
    drop(r);
    clock.run_for(ms(1)).await;
    assert_eq!(
        timed(done).await.expect("completes"),
        vec![
            "tick@100", "tick@200", "w 1",
            // The fresh instance starts from 0 and first gets the stashed messages, in order,
            // then the rest of its mailbox.
            "w 10", "w 30", "w 35",
        ]
    );
    assert_eq!(
        log.take(),
        vec![
            "w start@0",
            "g start@0",
            // Children stop first, then pre_restart on the failed instance (its state and
            // stash still there), then pre_start on a fresh one, which re-creates the child.
            "g stop@250",
            "w restart after boom (n 1, stashed 2, tick active true)",
            "w start@250",
            "g start@250",
            // The run ends: children before parents.
            "g stop@750",
            "w stop@750 (n 35)",
            "sup stop",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Backoff, reset and budget.

/// Logs its starts and stops with the run's time; fails on every message.
struct Flaky {
    log: Log,
}

impl Actor for Flaky {
    type Msg = &'static str;
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.log.push(format!("start@{:?}", ctx.now()));
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: &'static str) -> Result<(), StageError> {
        ctx.emit(format!("{msg}@{}", now_ms(ctx)));
        Err(StageError::user(msg))
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.log.push(format!("stop@{:?}", ctx.now()));
    }
}

fn flaky(log: &Log) -> Props<Flaky> {
    let log = log.clone();
    Props::new(move || Flaky { log: log.clone() }).with_name("flaky")
}

/// Tells `fail` at each of `at` (ms, ascending), then runs to `end` ms; the log and the output.
async fn fail_at(strategy: SupervisorStrategy, at: &[u64], end: u64) -> (Vec<String>, Vec<String>) {
    let clock = VirtualClock::new();
    let log = Log::default();
    let (r, done, _h) = source_on(Sup::props(flaky(&log), strategy, &log), &clock);
    let mut t = 0;
    for &a in at {
        clock.run_for(ms(a - t)).await;
        t = a;
        r.tell("fail").await.expect("told");
    }
    clock.run_for(ms(end - t)).await;
    drop(r);
    clock.run_for(ms(1)).await;
    let out = timed(done).await.expect("completes");
    let mut ev = log.take();
    // The run's end.
    assert_eq!(ev.pop().as_deref(), Some("sup stop"));
    (ev, out)
}

#[tokio::test]
async fn backoff_doubles_and_resets_after_the_child_ran_long_enough() {
    let backoff = SupervisorStrategy::one_for_one().with_backoff(ms(100), ms(1000), 0.0);
    // Failures at 0 (restart at 100), 150 (attempt 1: 200 ms, restart at 350), and 1650, after
    // 1.3 s of running: with reset_after 1 s the attempts start over (100 ms).
    let (ev, out) = fail_at(
        backoff.clone().with_reset_after(Duration::from_secs(1)),
        &[0, 150, 1650],
        2000,
    )
    .await;
    assert_eq!(
        ev,
        vec![
            "start@0ns",
            "start@100ms",
            "start@350ms",
            "start@1.75s",
            "stop@2s"
        ]
    );
    assert_eq!(out, vec!["fail@0", "fail@150", "fail@1650"]);
    // Without reset_after the third delay is 400 ms.
    let (ev, _) = fail_at(backoff, &[0, 150, 1650], 2100).await;
    assert_eq!(
        ev,
        vec![
            "start@0ns",
            "start@100ms",
            "start@350ms",
            "start@2.05s",
            "stop@2.1s"
        ]
    );
}

#[tokio::test]
async fn backoff_random_factor_stretches_each_delay_deterministically() {
    let b = Backoff {
        min: ms(100),
        max: ms(1000),
        random_factor: 0.5,
    };
    let strategy = SupervisorStrategy::one_for_one().with_backoff(b.min, b.max, b.random_factor);
    // The child is the stage's second actor (slot 1): its delays use seed 1.
    let d0 = b.delay(0, 1);
    let d1 = b.delay(1, 1);
    assert!(d0 > ms(100) && d0 <= ms(150), "{d0:?}");
    assert!(d1 > ms(200) && d1 <= ms(300), "{d1:?}");
    let first = ms(200);
    let (ev, _) = fail_at(strategy.clone(), &[0, 200], 1000).await;
    assert_eq!(
        ev,
        vec![
            "start@0ns".to_owned(),
            format!("start@{d0:?}"),
            format!("start@{:?}", first + d1),
            "stop@1s".to_owned(),
        ]
    );
    let (again, _) = fail_at(strategy, &[0, 200], 1000).await;
    assert_eq!(again, ev, "the same delays on every run");
}

#[tokio::test]
async fn restart_budget_counts_restarts_within_a_sliding_window() {
    let budget = SupervisorStrategy::one_for_one().with_restart_budget(2, Duration::from_secs(1));
    // The third failure within 1 s stops the child; the parent hears of it.
    let (ev, out) = fail_at(budget.clone(), &[0, 400, 800, 900], 1000).await;
    assert_eq!(
        ev,
        vec![
            "start@0ns",
            "start@0ns",
            "start@400ms",
            "stop@800ms",
            "sup: child terminated@800"
        ]
    );
    // The message after the stop goes to dead letters, not to a restarted child.
    assert_eq!(out, vec!["fail@0", "fail@400", "fail@800"]);
    // The first restart left the window at 1.1 s: the third restart is allowed, the fourth
    // (two within the window already) is not.
    let (ev, _) = fail_at(budget, &[0, 400, 1100, 1300], 1500).await;
    assert_eq!(
        ev,
        vec![
            "start@0ns",
            "start@0ns",
            "start@400ms",
            "start@1.1s",
            "stop@1.3s",
            "sup: child terminated@1300"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Escalation through two levels.

/// Spawns a leaf and forwards to it; escalates the leaf's failures.
struct Mid {
    log: Log,
    leaf: Option<ActorRef<i64>>,
}

struct Leaf {
    n: i64,
    log: Log,
}

impl Actor for Leaf {
    type Msg = i64;
    type Out = String;
    fn pre_start(&mut self, _ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.log.push("leaf start");
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        if x < 0 {
            return Err(StageError::user("leaf boom"));
        }
        self.n += x;
        ctx.emit(format!("leaf {}", self.n));
        Ok(())
    }
    fn post_stop(&mut self, _ctx: &mut Ctx<'_, Self>) {
        self.log.push("leaf stop");
    }
}

impl Actor for Mid {
    type Msg = i64;
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.log.push("mid start");
        let log = self.log.clone();
        let leaf = ctx.spawn(
            Props::new(move || Leaf {
                n: 0,
                log: log.clone(),
            })
            .with_name("leaf"),
        )?;
        self.leaf = Some(leaf);
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        if let Some(l) = &self.leaf {
            let _ = ctx.tell(l, x);
        }
        Ok(())
    }
    fn pre_restart(&mut self, _ctx: &mut Ctx<'_, Self>, error: &StageError) {
        self.log
            .push(format!("mid restart after {}", error.message()));
    }
    fn post_stop(&mut self, _ctx: &mut Ctx<'_, Self>) {
        self.log.push("mid stop");
    }
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::one_for_one().with_directive(ActorDirective::Escalate)
    }
}

fn mid(log: &Log) -> Props<Mid> {
    let log = log.clone();
    Props::new(move || Mid {
        log: log.clone(),
        leaf: None,
    })
    .with_name("mid")
}

#[tokio::test]
async fn escalation_goes_up_two_levels_to_the_first_parent_that_restarts() {
    let clock = VirtualClock::new();
    let log = Log::default();
    let (r, done, _h) = source_on(
        Sup::props(mid(&log), SupervisorStrategy::one_for_one(), &log),
        &clock,
    );
    let leaf_path = format!("{}/mid/leaf", r.path());
    r.tell(1).await.expect("told");
    r.tell(2).await.expect("told");
    r.tell(-1).await.expect("told");
    clock.run_for(ms(1)).await;
    r.tell(5).await.expect("told");
    clock.run_for(ms(1)).await;
    drop(r);
    clock.run_for(ms(1)).await;
    // The new leaf starts from 0.
    assert_eq!(
        timed(done).await.expect("completes"),
        vec!["leaf 1", "leaf 3", "leaf 5"]
    );
    assert_eq!(
        log.take(),
        vec![
            "mid start".to_owned(),
            "leaf start".to_owned(),
            // The leaf's failure escalated by mid; sup restarts mid (and so its leaf).
            "leaf stop".to_owned(),
            format!(
                "mid restart after escalated from child: stage '{leaf_path}' failed: leaf boom"
            ),
            "mid start".to_owned(),
            "leaf start".to_owned(),
            "leaf stop".to_owned(),
            "mid stop".to_owned(),
            "sup stop".to_owned(),
        ]
    );
}

#[tokio::test]
async fn escalation_past_the_root_fails_the_stage_with_the_whole_chain() {
    let clock = VirtualClock::new();
    let log = Log::default();
    let escalate = SupervisorStrategy::one_for_one().with_directive(ActorDirective::Escalate);
    let (r, done, _h) = source_on(Sup::props(mid(&log), escalate, &log), &clock);
    let leaf_path = format!("{}/mid/leaf", r.path());
    r.tell(1).await.expect("told");
    r.tell(-1).await.expect("told");
    clock.run_for(ms(1)).await;
    let err = timed(done).await.expect_err("the stage fails");
    assert!(
        err.to_string().contains(&format!(
            "escalated from child: escalated from child: stage '{leaf_path}' failed: leaf boom"
        )),
        "{err}"
    );
    assert_eq!(log.take(), vec!["mid start", "leaf start"]);
}

// ---------------------------------------------------------------------------------------------
// Failures in pre_start and post_stop.

/// Fails its `pre_start` while `fails` is above zero (counting it down).
struct Fragile {
    fails: Arc<AtomicUsize>,
    log: Log,
}

impl Actor for Fragile {
    type Msg = i64;
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.log.push(format!("start@{}", now_ms(ctx)));
        let left = self.fails.load(Ordering::SeqCst);
        if left > 0 {
            self.fails.store(left - 1, Ordering::SeqCst);
            return Err(StageError::user("not ready"));
        }
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        ctx.emit(format!("got {x}"));
        Ok(())
    }
    fn pre_restart(&mut self, _ctx: &mut Ctx<'_, Self>, error: &StageError) {
        self.log.push(format!("restart after {}", error.message()));
    }
    fn post_stop(&mut self, _ctx: &mut Ctx<'_, Self>) {
        self.log.push("stop");
    }
}

async fn fragile(strategy: SupervisorStrategy, fails: usize) -> (Vec<String>, Vec<String>) {
    let clock = VirtualClock::new();
    let log = Log::default();
    let counter = Arc::new(AtomicUsize::new(fails));
    let l = log.clone();
    let props = Props::new(move || Fragile {
        fails: Arc::clone(&counter),
        log: l.clone(),
    });
    let (r, done, _h) = source_on(Sup::props(props, strategy, &log), &clock);
    clock.run_for(ms(10)).await;
    r.tell(7).await.expect("told");
    clock.run_for(ms(10)).await;
    drop(r);
    clock.run_for(ms(1)).await;
    (log.take(), timed(done).await.expect("completes"))
}

#[tokio::test]
async fn a_failed_pre_start_stops_the_child_by_default_and_restarts_when_asked() {
    // Default: stop (the decider, which says restart, is not asked).
    let (ev, out) = fragile(SupervisorStrategy::one_for_one(), 1).await;
    assert_eq!(
        ev,
        vec!["start@0", "stop", "sup: child terminated@0", "sup stop"]
    );
    assert!(out.is_empty(), "{out:?}");
    // Restart on start failures: retried (not recursively) until pre_start succeeds.
    let strategy = SupervisorStrategy::one_for_one().on_start_failure(ActorDirective::Restart);
    let (ev, out) = fragile(strategy.clone(), 3).await;
    assert_eq!(
        ev,
        vec![
            "start@0",
            "restart after pre_start failed: not ready",
            "start@0",
            "restart after pre_start failed: not ready",
            "start@0",
            "restart after pre_start failed: not ready",
            "start@0",
            "stop",
            "sup stop"
        ]
    );
    assert_eq!(out, vec!["got 7"]);
    // ... within the restart budget.
    let (ev, out) = fragile(
        strategy.with_restart_budget(2, Duration::from_secs(60)),
        100,
    )
    .await;
    assert_eq!(
        ev,
        vec![
            "start@0",
            "restart after pre_start failed: not ready",
            "start@0",
            "restart after pre_start failed: not ready",
            "start@0",
            "stop",
            "sup: child terminated@0",
            "sup stop"
        ]
    );
    assert!(out.is_empty(), "{out:?}");
}

/// Panics in `post_stop`.
struct Grumpy;

impl Actor for Grumpy {
    type Msg = i64;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        if x < 0 {
            return Err(StageError::user("bad"));
        }
        ctx.emit(format!("grumpy {x}"));
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit("grumpy post_stop".to_owned());
        panic!("post_stop fails");
    }
}

#[tokio::test]
async fn a_failing_post_stop_is_logged_and_the_actor_still_terminates() {
    let clock = VirtualClock::new();
    let log = Log::default();
    let stop = SupervisorStrategy::one_for_one().with_directive(ActorDirective::Stop);
    let (r, done, _h) = source_on(Sup::props(Props::new(|| Grumpy), stop, &log), &clock);
    r.tell(1).await.expect("told");
    r.tell(-1).await.expect("told");
    clock.run_for(ms(5)).await;
    // Forwarded to the stopped child: dead letters; the stage runs on.
    r.tell(2).await.expect("told");
    clock.run_for(ms(5)).await;
    drop(r);
    clock.run_for(ms(1)).await;
    assert_eq!(
        timed(done).await.expect("completes"),
        vec!["grumpy 1", "grumpy post_stop"]
    );
    assert_eq!(log.take(), vec!["sup: child terminated@0", "sup stop"]);
}

// ---------------------------------------------------------------------------------------------
// Watching actors of another stage.

struct Target;

impl Actor for Target {
    type Msg = ();
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _msg: ()) -> Result<(), StageError> {
        ctx.stop();
        Ok(())
    }
}

enum WatchMsg {
    Watch(ActorRef<()>, &'static str),
    Gone(&'static str),
    Report,
}

/// Watches refs it is given; emits and remembers the notices.
#[derive(Default)]
struct Watcher {
    gone: Vec<&'static str>,
}

impl Actor for Watcher {
    type Msg = WatchMsg;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: WatchMsg) -> Result<(), StageError> {
        match msg {
            WatchMsg::Watch(r, name) => ctx.watch_with(&r, WatchMsg::Gone(name)),
            WatchMsg::Gone(name) => {
                self.gone.push(name);
                ctx.emit(format!("gone {name}"));
            }
            WatchMsg::Report => {
                ctx.reply(self.gone.clone());
            }
        }
        Ok(())
    }
}

/// Asks `w` until it reports `n` notices.
async fn wait_gone(w: &ActorRef<WatchMsg>, n: usize) -> Vec<&'static str> {
    timed(async {
        loop {
            let gone: Vec<&'static str> = w
                .ask(WatchMsg::Report, Duration::from_secs(5))
                .await
                .expect("reports");
            if gone.len() >= n {
                return gone;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[tokio::test]
async fn watch_with_tells_of_actors_in_other_stages_stopping_or_their_run_ending() {
    let m = Materializer::new();
    let run = |props| {
        m.materialize(&Source::actor(props).to_mat(Sink::collect(), Keep::both))
            .expect("materializes")
    };
    let ((w, done), _hw) = run(Props::<Watcher>::default_of());
    let g = Source::actor(Props::new(|| Target)).to_mat(Sink::ignore(), Keep::left);
    let (t1, _h1) = m.materialize(&g).expect("materializes");
    let (t2, h2) = m.materialize(&g).expect("materializes");
    w.tell(WatchMsg::Watch(t1.clone(), "t1"))
        .await
        .expect("told");
    w.tell(WatchMsg::Watch(t2.clone(), "t2"))
        .await
        .expect("told");
    assert!(wait_gone(&w, 0).await.is_empty());
    // t1 stops itself.
    t1.tell(()).await.expect("told");
    assert_eq!(wait_gone(&w, 1).await, vec!["t1"]);
    // t2's run is cancelled.
    h2.cancel();
    assert_eq!(wait_gone(&w, 2).await, vec!["t1", "t2"]);
    // Watching a stopped actor tells at once.
    w.tell(WatchMsg::Watch(t1.clone(), "t1 again"))
        .await
        .expect("told");
    assert_eq!(wait_gone(&w, 3).await, vec!["t1", "t2", "t1 again"]);
    drop(w);
    assert_eq!(
        timed(done).await.expect("completes"),
        vec!["gone t1", "gone t2", "gone t1 again"]
    );
}

// ---------------------------------------------------------------------------------------------
// Quotas.

/// Sleeps (wall time) for `x` ms on message `x`, emitting it first.
struct Sleepy;

impl Actor for Sleepy {
    type Msg = u64;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        ctx.emit(format!("sleepy {x}"));
        std::thread::sleep(ms(x));
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_over_its_time_limit_is_a_supervised_failure_whose_effects_stand() {
    let limited = || Props::new(|| Sleepy).with_handler_time_limit(ms(20));
    // The root under the stage's resume: the slow call's emit stands, the next ones run.
    let m = Materializer::new().with_batch_size(1);
    let out = timed(
        Source::from_iter(vec![0u64, 60, 0])
            .via(Flow::actor(limited()).with_supervision(Supervision::resume()))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(out, vec!["sleepy 0", "sleepy 60", "sleepy 0"]);
    // Under stop, the stage fails with an error naming the actor and the limit.
    let err = timed(
        Source::from_iter(vec![0u64, 60, 0])
            .via(Flow::actor(limited().with_name("slowpoke")))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
    .expect_err("fails");
    let text = err.to_string();
    assert!(text.contains("/slowpoke': handler took"), "{text}");
    assert!(text.ends_with("over its time limit of 20ms"), "{text}");
    // A child over its limit: the parent's decider sees the error and stops it.
    let clock = VirtualClock::new();
    let log = Log::default();
    let l = log.clone();
    let strategy = SupervisorStrategy::one_for_one().with_decider(move |e| {
        l.push(format!(
            "decided on a timeout {} of '{}'",
            e.kind() == weir_graph::ErrorKind::Timeout,
            e.message().split("': ").next().unwrap_or_default()
        ));
        ActorDirective::Stop
    });
    let (r, done, _h) = source_on(
        Sup::props(limited().with_name("kid"), strategy, &log),
        &clock,
    );
    let kid = format!("{}/kid", r.path());
    r.tell(0).await.expect("told");
    r.tell(40).await.expect("told");
    r.tell(1).await.expect("told");
    clock.run_for(ms(1)).await;
    drop(r);
    clock.run_for(ms(1)).await;
    assert_eq!(
        timed(done).await.expect("completes"),
        vec!["sleepy 0", "sleepy 40"]
    );
    assert_eq!(
        log.take(),
        vec![
            format!("decided on a timeout true of 'actor '{kid}'"),
            "sup: child terminated@0".to_owned(),
            "sup stop".to_owned()
        ]
    );
}

/// Spawns a child per `true`, stops its oldest child per `false`; emits what happened.
#[derive(Default)]
struct Spawner {
    kids: Vec<ActorId>,
}

struct Idle;

impl Actor for Idle {
    type Msg = ();
    type Out = String;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) -> Result<(), StageError> {
        Ok(())
    }
}

impl Actor for Spawner {
    type Msg = bool;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, spawn: bool) -> Result<(), StageError> {
        if spawn {
            match ctx.spawn(Props::new(|| Idle).with_name("idle")) {
                Ok(r) => {
                    self.kids.push(r.id());
                    ctx.emit(format!("spawned {}", self.kids.len()));
                }
                Err(e) => ctx.emit(e.message().to_owned()),
            }
        } else if !self.kids.is_empty() {
            let id = self.kids.remove(0);
            ctx.stop_child(id);
            ctx.emit("stopped one".to_owned());
        }
        Ok(())
    }
}

#[tokio::test]
async fn max_actors_per_stage_refuses_spawns_beyond_it_until_one_stops() {
    let m = Materializer::new().with_batch_size(1);
    let props = Props::<Spawner>::default_of()
        .with_name("spawner")
        .with_max_actors(3);
    let g = Source::from_iter(vec![true, true, true, false, true, true])
        .via_mat(Flow::actor(props), Keep::right)
        .to_mat(Sink::collect(), Keep::both);
    let ((r, done), _h) = m.materialize(&g).expect("materializes");
    let out = timed(done).await.expect("runs");
    let refused = format!(
        "actor '{}': cannot spawn 'idle': the stage holds its maximum of 3 actors",
        r.path()
    );
    assert_eq!(
        out,
        vec![
            "spawned 1".to_owned(),
            "spawned 2".to_owned(),
            refused.clone(),
            "stopped one".to_owned(),
            "spawned 2".to_owned(),
            refused,
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// No zombies.

#[derive(Clone, Debug)]
enum BeeMsg {
    Buzz,
    Hold,
}

/// Buzzes on a periodic timer; stashes `Hold` (an ask it never answers).
struct Bee {
    buzzes: Arc<AtomicUsize>,
}

impl Actor for Bee {
    type Msg = BeeMsg;
    type Out = ();
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        ctx.schedule_periodically("buzz", ms(10), BeeMsg::Buzz);
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: BeeMsg) -> Result<(), StageError> {
        match msg {
            BeeMsg::Buzz => {
                self.buzzes.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            hold @ BeeMsg::Hold => ctx.stash(hold),
        }
    }
}

/// Fails on its first message (its parent's backoff then keeps it suspended).
struct Sleeper;

impl Actor for Sleeper {
    type Msg = u8;
    type Out = ();
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: u8) -> Result<(), StageError> {
        Err(StageError::user("sleep"))
    }
}

enum HiveMsg {
    Bees,
    Sleeper,
    Hold,
}

/// 100 bees and a sleeper; replies with their refs; stashes `Hold`.
struct Hive {
    buzzes: Arc<AtomicUsize>,
    bees: Vec<ActorRef<BeeMsg>>,
    sleeper: Option<ActorRef<u8>>,
}

impl Actor for Hive {
    type Msg = HiveMsg;
    type Out = ();
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        for _ in 0..100 {
            let buzzes = Arc::clone(&self.buzzes);
            let bee = ctx.spawn(Props::new(move || Bee {
                buzzes: Arc::clone(&buzzes),
            }))?;
            self.bees.push(bee);
        }
        let sleeper = ctx.spawn(Props::new(|| Sleeper).with_mailbox(MailboxConfig::bounded(2)))?;
        self.sleeper = Some(sleeper);
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: HiveMsg) -> Result<(), StageError> {
        match msg {
            HiveMsg::Bees => {
                ctx.reply(self.bees.clone());
                Ok(())
            }
            HiveMsg::Sleeper => {
                ctx.reply(self.sleeper.clone());
                Ok(())
            }
            hold @ HiveMsg::Hold => ctx.stash(hold),
        }
    }
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        let hour = Duration::from_secs(3600);
        SupervisorStrategy::one_for_one().with_backoff(hour, hour, 0.0)
    }
}

#[tokio::test]
async fn cancelling_a_run_leaves_no_actor_timer_ask_sender_or_task_behind() {
    let clock = VirtualClock::new();
    let buzzes = Arc::new(AtomicUsize::new(0));
    let b = Arc::clone(&buzzes);
    let props = Props::new(move || Hive {
        buzzes: Arc::clone(&b),
        bees: Vec::new(),
        sleeper: None,
    })
    .with_name("hive");
    let (hive, done, h) = source_on(props, &clock);
    let long = Duration::from_secs(3600);
    let bees: Vec<ActorRef<BeeMsg>> = timed(hive.ask(HiveMsg::Bees, long)).await.expect("bees");
    let sleeper: Option<ActorRef<u8>> = timed(hive.ask(HiveMsg::Sleeper, long))
        .await
        .expect("sleeper");
    let sleeper = sleeper.expect("a sleeper");
    assert_eq!(bees.len(), 100);
    clock.run_for(ms(35)).await;
    assert_eq!(
        buzzes.load(Ordering::SeqCst),
        300,
        "every bee buzzed 3 times"
    );
    // Asks nobody answers: to the hive and to every tenth bee.
    let mut asks = Vec::new();
    for _ in 0..5 {
        let hive = hive.clone();
        asks.push((
            hive.path().to_owned(),
            tokio::spawn(async move { hive.ask::<()>(HiveMsg::Hold, long).await }),
        ));
    }
    for bee in bees.iter().step_by(10) {
        let bee = bee.clone();
        asks.push((
            bee.path().to_owned(),
            tokio::spawn(async move { bee.ask::<()>(BeeMsg::Hold, long).await }),
        ));
    }
    // The sleeper fails and waits an hour for its restart; its mailbox fills, senders wait.
    sleeper.tell(0).await.expect("told");
    clock.run_for(ms(1)).await;
    sleeper.tell(1).await.expect("told");
    sleeper.tell(2).await.expect("told");
    let mut blocked = Vec::new();
    for i in 3..6 {
        let s = sleeper.clone();
        blocked.push(tokio::spawn(async move { s.tell(i).await }));
    }
    clock.run_for(ms(1)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(asks.iter().all(|(_, a)| !a.is_finished()), "asks pending");
    assert!(blocked.iter().all(|t| !t.is_finished()), "senders blocked");
    assert_eq!(sleeper.len(), 2);
    // The stage's next buzz and the asks' timeouts wait on the clock.
    assert!(
        clock.pending_timers() > asks.len(),
        "{}",
        clock.pending_timers()
    );

    h.cancel();
    let _ = timed(done).await;
    timed(async {
        while h.live_tasks() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(h.live_tasks(), 0);
    assert!(hive.is_stopped());
    assert!(sleeper.is_stopped());
    assert!(bees.iter().all(ActorRef::is_stopped));
    for (path, ask) in asks {
        assert_eq!(
            timed(ask).await.expect("joins"),
            Err(AskError::NoReply { actor: path })
        );
    }
    for t in blocked {
        assert_eq!(
            timed(t).await.expect("joins"),
            Err(TellError::Stopped {
                actor: sleeper.path().to_owned()
            })
        );
    }
    // No timer of the run is left on the clock (stage sleeps, ask timeouts), and none fires.
    assert_eq!(clock.pending_timers(), 0);
    clock.run_for(ms(100)).await;
    assert_eq!(buzzes.load(Ordering::SeqCst), 300);
}

/// Fails every `pre_start`; counts the attempts.
struct Doomed {
    starts: Arc<AtomicUsize>,
}

impl Actor for Doomed {
    type Msg = ();
    type Out = String;
    fn pre_start(&mut self, _ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        Err(StageError::user("never ready"))
    }
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) -> Result<(), StageError> {
        Ok(())
    }
}

/// Spawns a `Doomed` child; answers asks with `n + 1`.
struct DoomedParent {
    starts: Arc<AtomicUsize>,
}

impl Actor for DoomedParent {
    type Msg = u64;
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        let starts = Arc::clone(&self.starts);
        ctx.spawn(Props::new(move || Doomed {
            starts: Arc::clone(&starts),
        }))?;
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, n: u64) -> Result<(), StageError> {
        ctx.reply(n + 1);
        Ok(())
    }
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::one_for_one().on_start_failure(ActorDirective::Restart)
    }
}

#[tokio::test]
async fn a_pre_start_that_always_fails_restarts_without_recursion_and_the_stage_stays_live() {
    let starts = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&starts);
    let props = Props::new(move || DoomedParent {
        starts: Arc::clone(&s),
    });
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let ((r, done), h) = Materializer::new().materialize(&g).expect("materializes");
    // Far deeper than a recursive restart could go on a test thread's stack.
    timed(async {
        while starts.load(Ordering::SeqCst) < 50_000 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // The parent still answers between the child's restarts.
    let n: u64 = timed(r.ask(41, Duration::from_secs(5)))
        .await
        .expect("answers");
    assert_eq!(n, 42);
    h.cancel();
    let _ = timed(done).await;
    timed(async {
        while h.live_tasks() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(r.is_stopped());
}
