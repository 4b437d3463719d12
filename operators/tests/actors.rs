//! Actor stages: the counter flow, tell/ask from outside, become/stash, timers on the virtual
//! clock, supervision trees (one-for-one, all-for-one, budget, backoff, escalate, watch), the
//! root under the stage's supervision, and cancellation closing every mailbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::{Keep, SinkFuture, Supervision};
use weir_operators::actor::{
    Actor, ActorDirective, ActorId, ActorRef, AskError, Ctx, Props, SupervisorStrategy, TellError,
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

/// Emits the running count of the messages it handled.
#[derive(Default)]
struct Counter {
    n: u64,
}

impl Actor for Counter {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, _msg: u64) -> Result<(), StageError> {
        self.n += 1;
        ctx.emit(self.n);
        Ok(())
    }
}

#[tokio::test]
async fn counter_flow_emits_a_running_count_for_every_element() {
    for bs in [1, 7, 1024] {
        let m = Materializer::new().with_batch_size(bs);
        let out = timed(
            Source::from_iter(0..2000u64)
                .via(Flow::actor(Props::<Counter>::default_of()))
                .run_with_on(Sink::collect(), &m)
                .expect("materializes"),
        )
        .await
        .expect("runs");
        assert_eq!(out, (1..=2000).collect::<Vec<u64>>(), "batch size {bs}");
    }
}

/// Sums what it is told, replies with the sum to asks, emits the final sum when it stops.
#[derive(Default)]
struct Summer {
    sum: i64,
    log: Vec<&'static str>,
}

enum SumMsg {
    Add(i64),
    Get,
    Stop,
}

impl Actor for Summer {
    type Msg = SumMsg;
    type Out = i64;
    fn pre_start(&mut self, _ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.log.push("pre_start");
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: SumMsg) -> Result<(), StageError> {
        match msg {
            SumMsg::Add(x) => self.sum += x,
            SumMsg::Get => {
                ctx.reply(self.sum);
            }
            SumMsg::Stop => ctx.stop(),
        }
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit(self.sum);
    }
}

fn source_of<A: Actor>(props: Props<A>) -> (ActorRef<A::Msg>, SinkFuture<Vec<A::Out>>, RunHandle) {
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let ((r, done), handle) = Materializer::new().materialize(&g).expect("materializes");
    (r, done, handle)
}

#[tokio::test]
async fn source_actor_handles_tells_and_asks_and_completes_when_it_stops() {
    let (r, done, _h) = source_of(Props::<Summer>::default_of());
    for x in [1, 2, 3] {
        r.tell(SumMsg::Add(x)).await.expect("told");
    }
    let sum: i64 = timed(r.ask(SumMsg::Get, Duration::from_secs(5)))
        .await
        .expect("answered");
    assert_eq!(sum, 6);
    assert_eq!(
        timed(r.ask::<String>(SumMsg::Get, Duration::from_secs(5))).await,
        Err(AskError::ReplyType {
            actor: r.path().to_owned(),
            expected: std::any::type_name::<String>(),
        })
    );
    r.tell(SumMsg::Add(10)).await.expect("told");
    r.tell(SumMsg::Stop).await.expect("told");
    assert_eq!(timed(done).await.expect("completes"), vec![16]);
    assert!(r.is_stopped());
    assert_eq!(
        r.tell(SumMsg::Add(1)).await,
        Err(TellError::Stopped {
            actor: r.path().to_owned()
        })
    );
}

#[tokio::test]
async fn source_actor_completes_when_the_last_outside_ref_is_dropped() {
    let (r, done, _h) = source_of(Props::<Summer>::default_of());
    r.tell(SumMsg::Add(5)).await.expect("told");
    let r2 = r.clone();
    drop(r);
    r2.tell(SumMsg::Add(6)).await.expect("told");
    drop(r2);
    assert_eq!(timed(done).await.expect("completes"), vec![11]);
}

/// Never replies to `Get`: it stashes it.
struct Hoarder;

impl Actor for Hoarder {
    type Msg = u8;
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: u8) -> Result<(), StageError> {
        ctx.stash(msg)
    }
}

#[tokio::test]
async fn ask_times_out_on_the_run_clock_and_names_the_actor() {
    let clock = VirtualClock::new();
    let g = Source::actor(Props::new(|| Hoarder).with_name("hoarder"))
        .to_mat(Sink::ignore(), Keep::left);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let (r, _h) = m.materialize(&g).expect("materializes");
    let ask = tokio::spawn({
        let r = r.clone();
        async move { r.ask::<u8>(1, ms(500)).await }
    });
    clock.run_for(ms(499)).await;
    assert!(!ask.is_finished());
    clock.run_for(ms(1)).await;
    let err = timed(ask).await.expect("joins").expect_err("times out");
    assert_eq!(
        err,
        AskError::Timeout {
            actor: r.path().to_owned(),
            timeout: ms(500)
        }
    );
    assert!(r.path().ends_with("/hoarder"), "{}", r.path());
    assert!(err.to_string().contains("hoarder"), "{err}");
}

/// A bank account: while a transfer is pending it stashes deposits, then replays them.
#[derive(Default)]
struct Account {
    balance: i64,
}

#[derive(Debug, Clone)]
enum Bank {
    Deposit(i64),
    Hold,
    Release,
}

impl Actor for Account {
    type Msg = Bank;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Bank) -> Result<(), StageError> {
        match msg {
            Bank::Deposit(x) => {
                self.balance += x;
                ctx.emit(format!("balance {}", self.balance));
            }
            Bank::Hold => {
                ctx.emit("held".to_owned());
                ctx.become_(|_a: &mut Account, ctx, msg| match msg {
                    Bank::Release => {
                        ctx.emit("released".to_owned());
                        ctx.unbecome();
                        ctx.unstash_all();
                        Ok(())
                    }
                    other => ctx.stash(other),
                });
            }
            Bank::Release => ctx.emit("nothing held".to_owned()),
        }
        Ok(())
    }
}

#[tokio::test]
async fn become_and_stash_replay_messages_in_order() {
    let msgs = vec![
        Bank::Deposit(10),
        Bank::Hold,
        Bank::Deposit(1),
        Bank::Deposit(2),
        Bank::Hold,
        Bank::Release,
        Bank::Deposit(3),
        Bank::Release,
    ];
    for bs in [1, 3, 64] {
        let m = Materializer::new().with_batch_size(bs);
        let out = timed(
            Source::from_iter(msgs.clone())
                .via(Flow::actor(Props::<Account>::default_of()))
                .run_with_on(Sink::collect(), &m)
                .expect("materializes"),
        )
        .await
        .expect("runs");
        assert_eq!(
            out,
            vec![
                "balance 10",
                "held",
                "released",
                "balance 11",
                "balance 13",
                // The stashed Hold holds again, and the second Release releases it.
                "held",
                "released",
                "balance 16",
            ],
            "batch size {bs}"
        );
    }
}

#[tokio::test]
async fn a_full_stash_fails_the_handler_under_supervision() {
    let out = timed(
        Source::from_iter(vec![
            Bank::Hold,
            Bank::Deposit(1),
            Bank::Deposit(2),
            Bank::Deposit(3),
        ])
        .via(Flow::actor(
            Props::<Account>::default_of().with_stash_capacity(2),
        ))
        .run_with(Sink::collect())
        .expect("materializes"),
    )
    .await;
    let err = out.expect_err("stash overflow stops the stage");
    assert!(err.to_string().contains("stash full (2 messages)"), "{err}");
}

/// Ticks on timers: a periodic tick emitting the time, a one-shot that cancels it.
struct Ticker;

#[derive(Clone, Debug)]
enum Timer {
    Start,
    Tick,
    Cancel,
}

impl Actor for Ticker {
    type Msg = Timer;
    type Out = (u64, &'static str);
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Timer) -> Result<(), StageError> {
        let now = ctx.now().as_millis() as u64;
        match msg {
            Timer::Start => {
                ctx.schedule_periodically("tick", ms(100), Timer::Tick);
                ctx.schedule_once("cancel", ms(350), Timer::Cancel);
                ctx.emit((now, "start"));
            }
            Timer::Tick => ctx.emit((now, "tick")),
            Timer::Cancel => {
                assert!(ctx.cancel_timer("tick"));
                assert!(!ctx.is_timer_active("tick"));
                ctx.emit((now, "cancel"));
                ctx.stop();
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn timers_fire_on_the_virtual_clock_and_cancel() {
    let clock = VirtualClock::new();
    let g = Source::actor(Props::new(|| Ticker)).to_mat(Sink::collect(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((r, done), _h) = m.materialize(&g).expect("materializes");
    r.tell(Timer::Start).await.expect("told");
    clock.run_for(ms(1000)).await;
    assert_eq!(
        timed(done).await.expect("completes"),
        vec![
            (0, "start"),
            (100, "tick"),
            (200, "tick"),
            (300, "tick"),
            (350, "cancel")
        ]
    );
}

/// A parent that routes `(child, x)` to children which fail on negative numbers.
struct Parent {
    strategy: SupervisorStrategy,
    children: Vec<ActorRef<i64>>,
    kids: usize,
    events: Arc<Mutex<Vec<String>>>,
}

struct Child {
    name: usize,
    seen: i64,
    events: Arc<Mutex<Vec<String>>>,
}

impl Child {
    fn log(&self, what: &str) {
        if let Ok(mut v) = self.events.lock() {
            v.push(format!("c{} {what}", self.name));
        }
    }
}

impl Actor for Child {
    type Msg = i64;
    type Out = String;
    fn pre_start(&mut self, _ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.log("start");
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        if x < 0 {
            return Err(StageError::user(format!("negative {x}")));
        }
        self.seen += x;
        ctx.emit(format!("c{} {}", self.name, self.seen));
        Ok(())
    }
    fn post_stop(&mut self, _ctx: &mut Ctx<'_, Self>) {
        self.log("stop");
    }
    fn pre_restart(&mut self, _ctx: &mut Ctx<'_, Self>, e: &StageError) {
        self.log(&format!("restart after {}", e.message()));
    }
}

impl Actor for Parent {
    type Msg = (usize, i64);
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        for name in 0..self.kids {
            let ev = Arc::clone(&self.events);
            let props = Props::new(move || Child {
                name,
                seen: 0,
                events: Arc::clone(&ev),
            })
            .with_name(&format!("c{name}"));
            let r = ctx.spawn(props)?;
            ctx.watch(r.id());
            self.children.push(r);
        }
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, (to, x): (usize, i64)) -> Result<(), StageError> {
        if let Some(c) = self.children.get(to) {
            let _ = ctx.tell(c, x);
        }
        Ok(())
    }
    fn on_terminated(&mut self, ctx: &mut Ctx<'_, Self>, who: ActorId) -> Result<(), StageError> {
        let i = self.children.iter().position(|c| c.id() == who);
        ctx.emit(format!("terminated c{}", i.map_or(99, |i| i)));
        Ok(())
    }
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        self.strategy.clone()
    }
}

/// Runs a parent with `kids` children over `msgs` (one message per batch); the output and the
/// children's lifecycle events.
async fn tree(
    strategy: SupervisorStrategy,
    kids: usize,
    msgs: Vec<(usize, i64)>,
) -> (Vec<String>, Vec<String>) {
    let events: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let ev = Arc::clone(&events);
    let props = Props::new(move || Parent {
        strategy: strategy.clone(),
        children: Vec::new(),
        kids,
        events: Arc::clone(&ev),
    });
    let m = Materializer::new().with_batch_size(1);
    let out = timed(
        Source::from_iter(msgs)
            .via(Flow::actor(props))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
    .expect("runs");
    let ev = events.lock().map(|v| v.clone()).unwrap_or_default();
    (out, ev)
}

#[tokio::test]
async fn one_for_one_restart_resets_only_the_failed_child() {
    let (out, ev) = tree(
        SupervisorStrategy::one_for_one(),
        2,
        vec![(0, 1), (1, 10), (0, -1), (0, 2), (1, 20)],
    )
    .await;
    assert_eq!(out, vec!["c0 1", "c1 10", "c0 2", "c1 30"]);
    assert_eq!(
        ev,
        vec![
            "c0 start",
            "c1 start",
            "c0 restart after negative -1",
            "c0 start",
            "c0 stop",
            "c1 stop"
        ]
    );
}

#[tokio::test]
async fn resume_keeps_the_child_state() {
    let (out, _) = tree(
        SupervisorStrategy::one_for_one().with_directive(ActorDirective::Resume),
        1,
        vec![(0, 1), (0, -1), (0, 2)],
    )
    .await;
    assert_eq!(out, vec!["c0 1", "c0 3"]);
}

#[tokio::test]
async fn all_for_one_restarts_every_child() {
    let (out, ev) = tree(
        SupervisorStrategy::all_for_one(),
        2,
        vec![(0, 1), (1, 10), (1, -1), (0, 2), (1, 20)],
    )
    .await;
    assert_eq!(out, vec!["c0 1", "c1 10", "c0 2", "c1 20"]);
    assert_eq!(
        ev,
        vec![
            "c0 start",
            "c1 start",
            "c0 restart after negative -1",
            "c0 start",
            "c1 restart after negative -1",
            "c1 start",
            "c0 stop",
            "c1 stop"
        ]
    );
}

#[tokio::test]
async fn stop_directive_and_an_exceeded_budget_stop_the_child_and_tell_its_watcher() {
    let (out, ev) = tree(
        SupervisorStrategy::one_for_one().with_directive(ActorDirective::Stop),
        2,
        vec![(0, 1), (0, -1), (0, 2), (1, 5)],
    )
    .await;
    assert_eq!(out, vec!["c0 1", "terminated c0", "c1 5"]);
    assert_eq!(ev, vec!["c0 start", "c1 start", "c0 stop", "c1 stop"]);
    let (out, _) = tree(
        SupervisorStrategy::one_for_one().with_restart_budget(2, Duration::from_secs(60)),
        1,
        vec![(0, -1), (0, 1), (0, -2), (0, 2), (0, -3), (0, 3)],
    )
    .await;
    assert_eq!(out, vec!["c0 1", "c0 2", "terminated c0"]);
}

#[tokio::test]
async fn escalate_fails_the_root_and_the_stage() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let strategy = SupervisorStrategy::one_for_one().with_directive(ActorDirective::Escalate);
    let props = Props::new(move || Parent {
        strategy: strategy.clone(),
        children: Vec::new(),
        kids: 1,
        events: Arc::clone(&events),
    })
    .with_name("parent");
    let m = Materializer::new().with_batch_size(1);
    let err = timed(
        Source::from_iter(vec![(0, 1), (0, -7), (0, 2)])
            .via(Flow::actor(props))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
    .expect_err("escalated to the stage");
    assert!(err.to_string().contains("escalated from child"), "{err}");
    assert!(err.to_string().contains("negative -7"), "{err}");
}

#[tokio::test]
async fn backoff_delays_the_restart_and_keeps_the_messages_queued() {
    let clock = VirtualClock::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let strategy = SupervisorStrategy::one_for_one().with_backoff(ms(100), ms(1000), 0.0);
    let ev = Arc::clone(&events);
    let props = Props::new(move || Parent {
        strategy: strategy.clone(),
        children: Vec::new(),
        kids: 1,
        events: Arc::clone(&ev),
    });
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((r, done), _h) = m.materialize(&g).expect("materializes");
    r.tell((0, 1)).await.expect("told");
    r.tell((0, -1)).await.expect("told");
    clock.run_for(ms(10)).await;
    r.tell((0, 2)).await.expect("told");
    clock.run_for(ms(50)).await;
    let n = |e: &Arc<Mutex<Vec<String>>>| e.lock().map(|v| v.len()).unwrap_or(0);
    assert_eq!(n(&events), 1, "not restarted before the backoff");
    clock.run_for(ms(100)).await;
    assert_eq!(n(&events), 3, "restarted after 100 ms");
    r.tell((0, -2)).await.expect("told");
    r.tell((0, 3)).await.expect("told");
    clock.run_for(ms(150)).await;
    assert_eq!(n(&events), 3, "the second backoff is 200 ms");
    clock.run_for(ms(100)).await;
    assert_eq!(n(&events), 5);
    drop(r);
    clock.run_for(ms(10)).await;
    assert_eq!(
        timed(done).await.expect("completes"),
        vec!["c0 1", "c0 2", "c0 3"]
    );
    let ev = events.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(
        ev,
        vec![
            "c0 start",
            "c0 restart after negative -1",
            "c0 start",
            "c0 restart after negative -2",
            "c0 start",
            "c0 stop"
        ]
    );
}

/// Fails on odd numbers; counts the rest.
#[derive(Default)]
struct Picky {
    n: u64,
}

impl Actor for Picky {
    type Msg = u64;
    type Out = (u64, u64);
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        if x % 3 == 2 {
            panic!("bad {x}");
        }
        self.n += 1;
        ctx.emit((x, self.n));
        Ok(())
    }
}

#[tokio::test]
async fn the_root_follows_the_stage_supervision_without_losing_elements() {
    let run = |s: Option<Supervision>, bs: usize| async move {
        let mut flow = Flow::actor(Props::<Picky>::default_of());
        if let Some(s) = s {
            flow = flow.with_supervision(s);
        }
        let m = Materializer::new().with_batch_size(bs);
        timed(
            Source::from_iter(0..7u64)
                .via(flow)
                .run_with_on(Sink::collect(), &m)
                .expect("materializes"),
        )
        .await
    };
    for bs in [1, 4, 64] {
        assert_eq!(
            run(Some(Supervision::resume()), bs).await.expect("runs"),
            vec![(0, 1), (1, 2), (3, 3), (4, 4), (6, 5)],
            "resume, batch size {bs}"
        );
        assert_eq!(
            run(Some(Supervision::restart()), bs).await.expect("runs"),
            vec![(0, 1), (1, 2), (3, 1), (4, 2), (6, 1)],
            "restart, batch size {bs}"
        );
        let err = run(None, bs).await.expect_err("stop fails the stage");
        assert!(err.to_string().contains("panicked: bad 2"), "{err}");
        assert!(err.to_string().contains("Picky"), "{err}");
    }
}

#[tokio::test]
async fn cancelling_the_run_closes_every_mailbox() {
    let (r, done, h) = source_of(Props::<Summer>::default_of());
    r.tell(SumMsg::Add(1)).await.expect("told");
    h.cancel();
    let _ = timed(done).await;
    timed(async {
        while !r.is_stopped() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        r.tell(SumMsg::Add(1)).await,
        Err(TellError::Stopped {
            actor: r.path().to_owned()
        })
    );
}

/// Two actors telling each other forever: the stage still flushes, yields and cancels.
#[derive(Default)]
struct Pinger {
    pong: Option<ActorRef<u64>>,
}
struct Ponger;

impl Actor for Ponger {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, n: u64) -> Result<(), StageError> {
        ctx.reply(n + 1);
        Ok(())
    }
}

impl Actor for Pinger {
    type Msg = u64;
    type Out = u64;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        let pong = ctx.spawn(Props::new(|| Ponger))?;
        let _ = ctx.tell(&pong, 0);
        self.pong = Some(pong);
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, n: u64) -> Result<(), StageError> {
        ctx.emit(n);
        if let Some(pong) = &self.pong {
            let _ = ctx.tell(pong, n + 1);
        }
        Ok(())
    }
}

#[tokio::test]
async fn actors_telling_each_other_forever_still_emit_and_end_with_take() {
    let out = timed(
        Source::actor(Props::<Pinger>::default_of())
            .take(1000)
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(out, (0..1000).map(|i| 2 * i + 1).collect::<Vec<u64>>());
}

/// Handles even numbers; sends odd ones to dead letters with a reason.
#[derive(Default)]
struct EvensOnly;

impl Actor for EvensOnly {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        if x % 2 == 1 {
            ctx.dead_letter(x, "odd numbers are not handled");
        } else {
            ctx.emit(x);
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_sends_a_message_to_dead_letters_naming_the_actor_and_the_reason() {
    let letters = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&letters);
    let sink = weir_graph::DeadLetterSink::new(move |d: weir_graph::DeadLetter| {
        let x = d.element.and_then(|e| e.downcast::<u64>().ok()).map(|b| *b);
        l.lock().expect("lock").push((x, d.error.to_string()));
    });
    let flow = Flow::actor(Props::<EvensOnly>::default_of().with_name("evens"))
        .with_supervision(Supervision::stop().with_dead_letters(sink));
    let out = timed(
        Source::from_iter(0..5u64)
            .via(flow)
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(out, vec![0, 2, 4]);
    let letters = letters.lock().expect("lock").clone();
    assert_eq!(letters.len(), 2, "{letters:?}");
    for ((x, e), want) in letters.iter().zip([1u64, 3]) {
        assert_eq!(*x, Some(want));
        assert!(e.contains("/evens': odd numbers are not handled"), "{e}");
    }
}

/// Handles whole batches (recording their sizes) as `x * 10`; message 5 installs a behaviour
/// that emits `x` itself and leaves again at 7, and 12 stops the actor.
#[derive(Default)]
struct Batcher {
    sizes: Arc<Mutex<Vec<usize>>>,
}

impl Actor for Batcher {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        ctx.emit(x * 10);
        Ok(())
    }
    fn handle_batch(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        msgs: &mut std::vec::IntoIter<u64>,
    ) -> Result<(), StageError> {
        self.sizes.lock().expect("lock").push(msgs.len());
        for x in msgs.by_ref() {
            ctx.emit(x * 10);
            if x == 5 {
                ctx.become_(|_: &mut Batcher, ctx: &mut Ctx<'_, Batcher>, x: u64| {
                    ctx.emit(x);
                    if x == 7 {
                        ctx.unbecome();
                    }
                    Ok(())
                });
            }
            if x == 12 {
                ctx.stop();
            }
            if ctx.batch_interrupted() {
                break;
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn handle_batch_takes_whole_batches_until_a_behaviour_or_a_stop_interrupts_it() {
    for bs in [1, 4, 64] {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&sizes);
        let props = Props::new(move || Batcher {
            sizes: Arc::clone(&s),
        });
        let m = Materializer::new().with_batch_size(bs);
        let out = timed(
            Source::from_iter(0..20u64)
                .via(Flow::actor(props))
                .run_with_on(Sink::collect(), &m)
                .expect("materializes"),
        )
        .await
        .expect("runs");
        assert_eq!(
            out,
            vec![0, 10, 20, 30, 40, 50, 6, 7, 80, 90, 100, 110, 120],
            "batch size {bs}"
        );
        let sizes = sizes.lock().expect("lock").clone();
        // Every element reached `handle_batch` except the two the behaviour handled.
        assert_eq!(sizes.first(), Some(&bs.min(20)), "batch size {bs}");
        if bs == 64 {
            // One batch: 0..=5 in it, then 8.. after the behaviour left.
            assert_eq!(sizes, vec![20, 12], "{sizes:?}");
        }
    }
}
