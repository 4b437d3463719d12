//! `weir-bench actors`: the actor layer on one worker thread, each variant one JSON line.
//!
//! - `flow_count`: `Source::from_iter(0..n).via(Flow::actor(counter))`: the counter sums what it
//!   is sent and emits the sum when it stops (messages per second through an actor stage).
//! - `flow_emit`: the same with an actor emitting `x + 1` for every message.
//! - `ractor_cast_loop`: a tell loop (`cast`, yielding every 1,024 messages so the unbounded
//!   mailbox drains) into a ractor actor summing what it is sent, closed by a `call` for the sum
//!   (the established crate, in the same process).
//! - `ref_tell_loop`: a tell loop (`ActorRef::tell().await`) from outside the graph into a
//!   `Source::actor` counter.
//! - `ask_p16`: the ask stage, `.ask(echo, 16, timeout)`, against a `Source::actor` answering
//!   `x + 1`; `ask_map_async_p16`: the same asks as `map_async(16, |x| echo.ask(x))` (one
//!   future, oneshot wait and timer per ask), in the same run.
//! - `idle_actors`: a root spawns `--actors` idle children in one stage; the RSS it added
//!   (`/proc/self/statm`) divided by the actors (`bytes_per_actor`). Measured first, before the
//!   other variants leave freed memory behind for the allocator to reuse.
//!
//! Every variant checks its checksum against the closed form of the same sum.

use std::hint::black_box;
use std::time::{Duration, Instant};
use weir::engine::Runtime;
use weir::operators::actor::{Actor, ActorRef, Ctx, Props};
use weir::prelude::*;

/// The asks and ractor calls are given this long before they count as lost.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// Sums the messages it handles; emits the sum when it stops.
#[derive(Default)]
struct Counter {
    sum: u64,
}

impl Actor for Counter {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        self.sum = self.sum.wrapping_add(x);
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit(self.sum);
    }
}

/// Emits `x + 1` for every message `x`.
#[derive(Default)]
struct PlusOne;

impl Actor for PlusOne {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        ctx.emit(x + 1);
        Ok(())
    }
}

/// Answers every message `x` with `x + 1`.
#[derive(Default)]
struct Echo;

impl Actor for Echo {
    type Msg = u64;
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        ctx.reply(x + 1);
        Ok(())
    }
}

/// An actor that does nothing: what an idle actor costs.
#[derive(Default)]
struct Idle {
    seen: u64,
}

impl Actor for Idle {
    type Msg = u64;
    type Out = ();
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        self.seen = self.seen.wrapping_add(x);
        Ok(())
    }
}

/// What the parent of the idle actors is told.
enum ParentMsg {
    /// Spawns this many idle children and replies with the number of children.
    Spawn(usize),
    /// Replies with the number of children (after the spawned ones started).
    Count,
}

/// Spawns idle children and keeps their refs.
#[derive(Default)]
struct Parent {
    kids: Vec<ActorRef<u64>>,
}

impl Actor for Parent {
    type Msg = ParentMsg;
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: ParentMsg) -> Result<(), StageError> {
        match msg {
            ParentMsg::Spawn(k) => {
                let props = Props::<Idle>::default_of().with_name("idle");
                self.kids.reserve(k);
                for _ in 0..k {
                    self.kids.push(ctx.spawn(props.clone())?);
                }
                ctx.reply(ctx.children().len());
            }
            ParentMsg::Count => {
                ctx.reply(ctx.children().len());
            }
        }
        Ok(())
    }
}

/// The ractor counterpart of [`Counter`]: sums what it is cast, answers `Get` with the sum.
struct RactorCounter;

/// Messages of [`RactorCounter`].
enum RactorMsg {
    Add(u64),
    Get(ractor::RpcReplyPort<u64>),
}

impl ractor::Actor for RactorCounter {
    type Msg = RactorMsg;
    type State = u64;
    type Arguments = ();
    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<RactorMsg>,
        _args: (),
    ) -> Result<u64, ractor::ActorProcessingErr> {
        Ok(0)
    }
    async fn handle(
        &self,
        _myself: ractor::ActorRef<RactorMsg>,
        msg: RactorMsg,
        sum: &mut u64,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match msg {
            RactorMsg::Add(x) => *sum = sum.wrapping_add(x),
            RactorMsg::Get(reply) => {
                // The caller may have given up; nothing else to do then.
                let _ = reply.send(*sum);
            }
        }
        Ok(())
    }
}

/// The resident set size of this process in bytes (`/proc/self/statm`).
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages * 4096
}

/// The sum of `0..n`.
fn sum_below(n: u64) -> u64 {
    (0..n).fold(0u64, u64::wrapping_add)
}

/// Runs `f` as a task on `rt` (so it shares the runtime's one worker with the stages) and
/// returns the seconds it took with its result.
fn on_worker<T: Send + 'static>(
    rt: &Runtime,
    f: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
) -> (f64, Result<T, String>) {
    crate::reset_peak_rss();
    let t = Instant::now();
    let task = rt.handle().spawn(f);
    let r = match rt.block_on(task) {
        Ok(r) => r,
        Err(e) => Err(format!("task: {e}")),
    };
    (t.elapsed().as_secs_f64(), r)
}

/// Reports one variant, or its failure on stderr.
fn report(variant: &str, n: u64, r: (f64, Result<u64, String>), want: u64, extra: &str) -> f64 {
    match r {
        (secs, Ok(got)) if got == want => {
            crate::emit("actors", variant, n, 1, secs, &got.to_string(), extra);
            n as f64 / secs
        }
        (_, Ok(got)) => {
            eprintln!("actors {variant}: checksum {got}, expected {want}");
            0.0
        }
        (_, Err(e)) => {
            eprintln!("actors {variant} failed: {e}");
            0.0
        }
    }
}

fn materializer(batch: Option<usize>) -> Materializer {
    let m = Materializer::new();
    match batch {
        Some(b) => m.with_batch_size(b),
        None => m,
    }
}

/// `flow_count` / `flow_emit`: a stream through an actor flow.
async fn flow<A>(n: u64, batch: Option<usize>, props: Props<A>) -> Result<u64, String>
where
    A: Actor<Msg = u64, Out = u64>,
{
    Source::from_iter(0..n)
        .via(Flow::actor(props))
        .run_with_on(
            Sink::fold(0u64, |a, x| a.wrapping_add(x)),
            &materializer(batch),
        )
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())
}

/// `ractor_cast_loop`: casts `0..n` and calls for the sum.
async fn ractor_loop(n: u64) -> Result<u64, String> {
    let (r, join) = ractor::Actor::spawn(None, RactorCounter, ())
        .await
        .map_err(|e| e.to_string())?;
    for x in 0..black_box(n) {
        r.cast(RactorMsg::Add(x)).map_err(|e| e.to_string())?;
        // Its mailbox is unbounded: let the actor drain it now and then, as a bounded
        // mailbox would (and as `tell().await` does), instead of queueing all of `n`.
        if x % 1024 == 1023 {
            tokio::task::yield_now().await;
        }
    }
    let sum = r
        .call(RactorMsg::Get, Some(ASK_TIMEOUT))
        .await
        .map_err(|e| e.to_string())?
        .success_or(ractor::RactorErr::<RactorMsg>::Timeout)
        .map_err(|e| e.to_string())?;
    r.stop(None);
    join.await.map_err(|e| e.to_string())?;
    Ok(sum)
}

/// `ref_tell_loop`: tells `0..n` to a `Source::actor` counter, drops the ref, awaits the sum.
async fn tell_loop(n: u64, batch: Option<usize>) -> Result<u64, String> {
    let g = Source::actor(Props::<Counter>::default_of())
        .to_mat(Sink::fold(0u64, |a, x| a.wrapping_add(x)), Keep::both);
    let ((r, done), handle) = materializer(batch)
        .materialize(&g)
        .map_err(|e| e.to_string())?;
    for x in 0..black_box(n) {
        r.tell(x).await.map_err(|e| e.to_string())?;
    }
    drop(r);
    let sum = done.await.map_err(|e| e.to_string())?;
    handle.wait().await.map_err(|e| e.to_string())?;
    Ok(sum)
}

/// `ask_p16` (`stage`) and `ask_map_async_p16`: `n` asks of an echo actor, `parallelism` at
/// a time, in order.
async fn ask_loop(
    n: u64,
    parallelism: usize,
    batch: Option<usize>,
    stage: bool,
) -> Result<u64, String> {
    let m = materializer(batch);
    let echo = Source::actor(Props::<Echo>::default_of()).to_mat(Sink::ignore(), Keep::left);
    let (r, echo_handle) = m.materialize(&echo).map_err(|e| e.to_string())?;
    let sum = Sink::fold(0u64, |a: u64, x: u64| a.wrapping_add(x));
    let sum = if stage {
        Source::from_iter(0..n)
            .ask::<u64>(r.clone(), parallelism, ASK_TIMEOUT)
            .run_with_on(sum, &m)
    } else {
        let r = r.clone();
        Source::from_iter(0..n)
            .map_async(parallelism, move |x| {
                let r = r.clone();
                async move { r.ask::<u64>(x, ASK_TIMEOUT).await }
            })
            .run_with_on(sum, &m)
    }
    .map_err(|e| e.to_string())?
    .await
    .map_err(|e| e.to_string())?;
    drop(r);
    echo_handle.wait().await.map_err(|e| e.to_string())?;
    Ok(sum)
}

/// `idle_actors`: the RSS `actors` idle children add to a stage, in bytes per actor.
async fn idle(actors: usize) -> Result<Idled, String> {
    let g = Source::actor(Props::<Parent>::default_of()).to_mat(Sink::ignore(), Keep::left);
    let (r, handle) = Materializer::new()
        .materialize(&g)
        .map_err(|e| e.to_string())?;
    let ask = |m| r.ask::<usize>(m, ASK_TIMEOUT);
    ask(ParentMsg::Count).await.map_err(|e| e.to_string())?;
    let before = rss_bytes();
    let t = Instant::now();
    ask(ParentMsg::Spawn(actors))
        .await
        .map_err(|e| e.to_string())?;
    let got = ask(ParentMsg::Count).await.map_err(|e| e.to_string())?;
    let spawned = t.elapsed().as_secs_f64();
    let after = rss_bytes();
    if got != actors {
        return Err(format!("{got} children, expected {actors}"));
    }
    let t = Instant::now();
    drop(r);
    handle.wait().await.map_err(|e| e.to_string())?;
    Ok(Idled {
        rss_added: after.saturating_sub(before),
        actors: got as u64,
        spawn_s: spawned,
        stop_s: t.elapsed().as_secs_f64(),
    })
}

/// What `idle_actors` measured.
struct Idled {
    /// RSS the idle actors added.
    rss_added: u64,
    /// Actors spawned.
    actors: u64,
    /// Seconds to spawn and start them.
    spawn_s: f64,
    /// Seconds to stop the stage with all of them.
    stop_s: f64,
}

/// Runs the actor variants named in `only` (every one when empty) with `n` messages (`n / 4`
/// asks) and `actors` idle actors.
pub(crate) fn run(n: u64, actors: usize, batch: Option<usize>, only: &[String]) {
    let on = |v: &str| only.is_empty() || only.iter().any(|o| o == v);
    let rt = match Runtime::with_threads(1) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return;
        }
    };
    if on("idle_actors") {
        match on_worker(&rt, idle(actors)) {
            (secs, Ok(m)) => crate::emit(
                "actors",
                "idle_actors",
                m.actors,
                1,
                secs,
                &m.actors.to_string(),
                &format!(
                    ",\"rss_added_bytes\":{},\"bytes_per_actor\":{:.1},\"spawn_s\":{:.3},\"stop_s\":{:.3}",
                    m.rss_added,
                    m.rss_added as f64 / m.actors.max(1) as f64,
                    m.spawn_s,
                    m.stop_s
                ),
            ),
            (_, Err(e)) => eprintln!("actors idle_actors failed: {e}"),
        }
    }
    let want = sum_below(n);
    let mut count = 0.0;
    if on("flow_count") {
        let r = on_worker(&rt, flow(n, batch, Props::<Counter>::default_of()));
        count = report("flow_count", n, r, want, "");
    }
    if on("flow_emit") {
        let r = on_worker(&rt, flow(n, batch, Props::<PlusOne>::default_of()));
        report("flow_emit", n, r, want.wrapping_add(n), "");
    }
    let mut ractor = 0.0;
    if on("ractor_cast_loop") {
        ractor = report(
            "ractor_cast_loop",
            n,
            on_worker(&rt, ractor_loop(n)),
            want,
            "",
        );
    }
    if on("ref_tell_loop") {
        report(
            "ref_tell_loop",
            n,
            on_worker(&rt, tell_loop(n, batch)),
            want,
            "",
        );
    }
    let asks = n / 4;
    let want_asks = sum_below(asks).wrapping_add(asks);
    for (variant, stage) in [("ask_p16", true), ("ask_map_async_p16", false)] {
        if on(variant) {
            let r = on_worker(&rt, ask_loop(asks, 16, batch, stage));
            report(variant, asks, r, want_asks, ",\"ask_parallelism\":16");
        }
    }
    if count > 0.0 && ractor > 0.0 {
        println!(
            "{{\"workload\":\"actors\",\"variant\":\"ratio\",\"flow_count_over_ractor_cast_loop\":{:.2}}}",
            count / ractor
        );
    }
}
