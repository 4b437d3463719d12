//! Actor mailboxes: every overflow policy's exact behaviour (handled messages, dead letters,
//! `try_tell` results), backpressure of `tell` and of a slow `Flow::actor`, spilling to disk,
//! priority order, introspection, outside scheduling on the virtual clock, `Flow::ask`, and the
//! dead-letter stream's reasons.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::{Clock, ErrorKind, Keep, Supervision};
use weir_operators::actor::{
    Actor, ActorRef, Ctx, DeadLetters, MailboxConfig, Overflow, Pressure, Props, TellError,
    Undelivered, reason,
};
use weir_operators::prelude::*;
use weir_operators::sink::SinkQueue;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

async fn yields(n: usize) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

/// The message that makes [`Echo`] emit [`FILLERS`] fillers: told until the channels behind
/// the actor are full, its stage then waits for downstream and handles nothing meanwhile.
const BLOCK: u32 = 0;
const FILL: u32 = u32::MAX;
const FILLERS: usize = 16;

/// Emits every message it handles ([`BLOCK`] as [`FILLERS`] fillers).
struct Echo;

impl Actor for Echo {
    type Msg = u32;
    type Out = u32;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: u32) -> Result<(), StageError> {
        if msg == BLOCK {
            ctx.emit_all(std::iter::repeat_n(FILL, FILLERS));
        } else {
            ctx.emit(msg);
        }
        Ok(())
    }
}

/// A `Source::actor` whose downstream is pulled only by the test, with a dead-letter stream.
struct Rig {
    r: ActorRef<u32>,
    q: SinkQueue<u32>,
    letters: DeadLetters,
    _h: RunHandle,
}

fn rig(name: &str, mailbox: MailboxConfig) -> Rig {
    rig_on(name, mailbox, Materializer::new())
}

fn rig_on(name: &str, mailbox: MailboxConfig, m: Materializer) -> Rig {
    let letters = DeadLetters::new(1000);
    let props = Props::new(|| Echo).with_name(name).with_mailbox(mailbox);
    let g = Source::actor(props).to_mat(Sink::queue(1), Keep::both);
    let m = m.with_buffer_rows(4).with_service(letters.service());
    let ((r, q), h) = m.materialize(&g).expect("materializes");
    Rig {
        r,
        q,
        letters,
        _h: h,
    }
}

/// Tells [`BLOCK`] until one stays in the mailbox: the stage then waits for downstream and
/// handles nothing until the test pulls. Returns how many were told (one is still queued).
async fn block(r: &ActorRef<u32>) -> usize {
    timed(async {
        for n in 1.. {
            r.tell(BLOCK).await.expect("told");
            yields(50).await;
            if r.len() == 1 {
                return n;
            }
        }
        0
    })
    .await
}

/// Pulls everything the stage emits until it ends; the elements and how it ended.
async fn drain(q: &mut SinkQueue<u32>) -> (Vec<u32>, Result<(), String>) {
    let mut out = Vec::new();
    loop {
        match timed(q.pull()).await {
            Ok(Some(x)) => out.push(x),
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e.to_string())),
        }
    }
}

/// What `blocks` [`BLOCK`] messages and then `xs` make the actor emit.
fn fillers_then(blocks: usize, xs: &[u32]) -> Vec<u32> {
    let mut v = vec![FILL; FILLERS * blocks];
    v.extend_from_slice(xs);
    v
}

/// (actor path, reason, rendering) of every dead letter recorded, once the buffer is closed.
async fn letters_of(letters: &DeadLetters) -> Vec<(String, String, Option<String>)> {
    letters.close();
    let out: Vec<Undelivered> = timed(
        letters
            .source()
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("runs");
    out.into_iter()
        .map(|u| (u.actor, u.reason, u.repr))
        .collect()
}

fn letter(actor: &str, why: &str, repr: &str) -> (String, String, Option<String>) {
    (actor.to_owned(), why.to_owned(), Some(repr.to_owned()))
}

fn full(r: &ActorRef<u32>) -> TellError {
    TellError::Full {
        actor: r.path().to_owned(),
    }
}

#[tokio::test]
async fn drop_new_refuses_what_does_not_fit_and_dead_letters_it() {
    let Rig {
        r,
        mut q,
        letters,
        _h,
    } = rig("dn", MailboxConfig::bounded(5));
    let b = block(&r).await;
    let told: Vec<_> = (1..=6).map(|x| r.try_tell(x)).collect();
    assert_eq!(
        told,
        vec![Ok(()), Ok(()), Ok(()), Ok(()), Err(full(&r)), Err(full(&r))]
    );
    assert_eq!(r.len(), 5);
    let path = r.path().to_owned();
    drop(r);
    assert_eq!(
        drain(&mut q).await,
        (fillers_then(b, &[1, 2, 3, 4]), Ok(()))
    );
    assert_eq!(
        letters_of(&letters).await,
        vec![
            letter(&path, reason::MAILBOX_FULL, "5"),
            letter(&path, reason::MAILBOX_FULL, "6"),
        ]
    );
}

#[tokio::test]
async fn drop_old_makes_room_by_dead_lettering_the_oldest() {
    let Rig {
        r,
        mut q,
        letters,
        _h,
    } = rig("do", MailboxConfig::bounded(5).overflow(Overflow::DropOld));
    let b = block(&r).await;
    let told: Vec<_> = (1..=7).map(|x| r.try_tell(x)).collect();
    assert_eq!(told, vec![Ok(()); 7]);
    assert_eq!(r.len(), 5);
    let path = r.path().to_owned();
    drop(r);
    // The queued BLOCK was the oldest: it went first (its fillers are not emitted).
    assert_eq!(
        drain(&mut q).await,
        (fillers_then(b - 1, &[3, 4, 5, 6, 7]), Ok(()))
    );
    assert_eq!(
        letters_of(&letters).await,
        vec![
            letter(&path, reason::DROPPED_OLDEST, "0"),
            letter(&path, reason::DROPPED_OLDEST, "1"),
            letter(&path, reason::DROPPED_OLDEST, "2"),
        ]
    );
}

#[tokio::test]
async fn fail_handles_what_it_accepted_then_fails_the_stage_naming_the_actor() {
    let Rig {
        r,
        mut q,
        letters,
        _h,
    } = rig("strict", MailboxConfig::bounded(4).overflow(Overflow::Fail));
    let b = block(&r).await;
    let told: Vec<_> = (1..=4).map(|x| r.try_tell(x)).collect();
    let overflowed = TellError::Overflowed {
        actor: r.path().to_owned(),
    };
    assert_eq!(told, vec![Ok(()), Ok(()), Ok(()), Err(overflowed.clone())]);
    let path = r.path().to_owned();
    let (out, end) = drain(&mut q).await;
    assert_eq!(out, fillers_then(b, &[1, 2, 3]));
    let err = end.expect_err("the overflow fails the stage");
    assert!(err.ends_with(&overflowed.to_string()), "{err}");
    assert!(err.contains(&format!("mailbox of actor '{path}'")), "{err}");
    assert!(path.ends_with("/strict"), "{path}");
    assert_eq!(
        r.try_tell(9),
        Err(TellError::Stopped {
            actor: path.clone()
        })
    );
    assert_eq!(
        letters_of(&letters).await,
        vec![
            letter(&path, reason::OVERFLOWED, "4"),
            letter(&path, reason::STOPPED, "9"),
        ]
    );
}

#[tokio::test]
async fn redirect_sends_what_does_not_fit_to_the_other_actor() {
    let Rig {
        r: spare,
        q: mut spare_q,
        letters: spare_letters,
        _h: _spare_h,
    } = rig("spare", MailboxConfig::bounded(3));
    let sb = block(&spare).await;
    let Rig {
        r,
        mut q,
        letters,
        _h,
    } = rig(
        "main",
        MailboxConfig::bounded(4).overflow(Overflow::redirect(spare.clone())),
    );
    let b = block(&r).await;
    let told: Vec<_> = (1..=7).map(|x| r.try_tell(x)).collect();
    // 4 and 5 fit into the spare's mailbox; 6 and 7 overflow it too (its policy: drop new).
    assert_eq!(
        told,
        vec![
            Ok(()),
            Ok(()),
            Ok(()),
            Ok(()),
            Ok(()),
            Err(full(&spare)),
            Err(full(&spare))
        ]
    );
    assert_eq!((r.len(), spare.len()), (4, 3));
    let spare_path = spare.path().to_owned();
    drop(r);
    drop(spare);
    assert_eq!(drain(&mut q).await, (fillers_then(b, &[1, 2, 3]), Ok(())));
    assert_eq!(
        drain(&mut spare_q).await,
        (fillers_then(sb, &[4, 5]), Ok(()))
    );
    assert_eq!(letters_of(&letters).await, vec![]);
    assert_eq!(
        letters_of(&spare_letters).await,
        vec![
            letter(&spare_path, reason::MAILBOX_FULL, "6"),
            letter(&spare_path, reason::MAILBOX_FULL, "7"),
        ]
    );
}

#[tokio::test]
async fn a_redirect_target_of_another_message_type_is_refused_naming_the_actor() {
    let Rig { r: other, _h, .. } = rig("other", MailboxConfig::bounded(2));
    let props = Props::new(|| Relabel)
        .with_name("typed")
        .with_mailbox(MailboxConfig::bounded(2).overflow(Overflow::redirect(other)));
    let g = Source::actor(props).to_mat(Sink::ignore(), Keep::left);
    let err = Materializer::new()
        .materialize(&g)
        .map(|_| ())
        .expect_err("refused at materialization");
    assert!(err.to_string().contains("/typed"), "{err}");
    assert!(err.to_string().contains("redirect target"), "{err}");
}

/// An actor of another message type than [`Echo`].
struct Relabel;

impl Actor for Relabel {
    type Msg = String;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: String) -> Result<(), StageError> {
        ctx.emit(msg);
        Ok(())
    }
}

#[tokio::test]
async fn tell_waits_while_the_mailbox_is_full_and_goes_on_when_it_drains() {
    let Rig { r, mut q, _h, .. } = rig("bp", MailboxConfig::bounded(5));
    let b = block(&r).await;
    let sent = Arc::new(AtomicU64::new(0));
    let sender = tokio::spawn({
        let (r, sent) = (r.clone(), Arc::clone(&sent));
        async move {
            for x in 1..=10 {
                r.tell(x).await?;
                sent.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, TellError>(())
        }
    });
    yields(200).await;
    // Four fit; the fifth tell stays pending while the actor handles nothing.
    assert_eq!(sent.load(Ordering::SeqCst), 4);
    assert_eq!(r.len(), 5);
    assert!(!sender.is_finished());
    drop(r);
    let (out, end) = drain(&mut q).await;
    assert_eq!(end, Ok(()));
    assert_eq!(out, fillers_then(b, &(1..=10).collect::<Vec<_>>()));
    timed(sender)
        .await
        .expect("joins")
        .expect("every tell delivered");
    assert_eq!(sent.load(Ordering::SeqCst), 10);
}

/// Emits what it handles and counts it.
struct Tally(Arc<AtomicU64>);

impl Actor for Tally {
    type Msg = u32;
    type Out = u32;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: u32) -> Result<(), StageError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        ctx.emit(msg);
        Ok(())
    }
}

#[tokio::test]
async fn a_slow_actor_flow_slows_its_source() {
    let emitted = Arc::new(AtomicU64::new(0));
    let handled = Arc::new(AtomicU64::new(0));
    let h2 = Arc::clone(&handled);
    let e2 = Arc::clone(&emitted);
    let g = Source::from_iter(1..=10_000u32)
        .map(move |x| {
            e2.fetch_add(1, Ordering::SeqCst);
            x
        })
        .via(Flow::actor(Props::new(move || Tally(Arc::clone(&h2)))))
        .to_mat(Sink::queue(1), Keep::right);
    let m = Materializer::new().with_buffer_rows(4).with_batch_size(2);
    let (mut q, _h) = m.materialize(&g).expect("materializes");
    yields(500).await;
    let stalled = (
        emitted.load(Ordering::SeqCst),
        handled.load(Ordering::SeqCst),
    );
    yields(500).await;
    assert_eq!(
        (
            emitted.load(Ordering::SeqCst),
            handled.load(Ordering::SeqCst)
        ),
        stalled,
        "nothing moves while downstream does not pull"
    );
    // Bounded: 8 handled elements fill the channel behind the actor and the queue; 6 more are
    // in flight between the source and the actor (its input channel's 4 rows and a batch of 2);
    // the source emitted nothing else.
    assert_eq!(stalled, (14, 8));
    let mut out = Vec::new();
    while let Some(x) = timed(q.pull()).await.expect("runs") {
        out.push(x);
    }
    assert_eq!(out, (1..=10_000).collect::<Vec<u32>>());
    assert_eq!(handled.load(Ordering::SeqCst), 10_000);
}

/// A fresh folder for spill files.
fn spill_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("weir-spill-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn files_in(d: &std::path::Path) -> usize {
    std::fs::read_dir(d).map_or(0, |it| it.count())
}

#[tokio::test]
async fn spill_writes_what_does_not_fit_to_disk_and_reads_it_back_in_order() {
    let dir = spill_dir("order");
    // A u32 below 128 is one byte of postcard behind a 4-byte length: 6 fit into 30 bytes.
    // Batches of 2 make the stage flush (and the mailbox refill from disk) several times.
    let Rig {
        r,
        mut q,
        letters,
        _h,
    } = rig_on(
        "spiller",
        MailboxConfig::bounded(5).spill::<u32>(&dir, 30),
        Materializer::new().with_batch_size(2),
    );
    let b = block(&r).await;
    let told: Vec<_> = (1..=12).map(|x| r.try_tell(x)).collect();
    let mut expect = vec![Ok(()); 10];
    expect.extend([Err(full(&r)), Err(full(&r))]);
    assert_eq!(told, expect);
    assert_eq!((r.len(), r.spilled(), r.spilled_total()), (11, 6, 6));
    assert_eq!(files_in(&dir), 1);
    let path = r.path().to_owned();
    drop(r);
    assert_eq!(
        drain(&mut q).await,
        (fillers_then(b, &(1..=10).collect::<Vec<_>>()), Ok(()))
    );
    assert_eq!(files_in(&dir), 0, "the drained spill file is removed");
    assert_eq!(
        letters_of(&letters).await,
        vec![
            letter(&path, reason::SPILL_FULL, "11"),
            letter(&path, reason::SPILL_FULL, "12"),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stopping_stage_dead_letters_its_spilled_messages_in_order_and_removes_the_file() {
    let dir = spill_dir("stop");
    let Rig {
        r,
        q: _q,
        letters,
        _h,
    } = rig(
        "spiller",
        MailboxConfig::bounded(3).spill::<u32>(&dir, 1 << 20),
    );
    block(&r).await;
    for x in 1..=20 {
        r.try_tell(x).expect("spilled");
    }
    assert_eq!((r.len(), r.spilled(), r.spilled_total()), (21, 18, 18));
    assert_eq!(files_in(&dir), 1);
    let path = r.path().to_owned();
    drop(_h);
    timed(async {
        while !r.is_stopped() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        files_in(&dir),
        0,
        "the spill file is removed when the stage stops"
    );
    assert_eq!((r.len(), r.spilled()), (0, 0));
    let expect: Vec<_> = (0..=20)
        .map(|x| letter(&path, reason::STOPPED, &x.to_string()))
        .collect();
    assert_eq!(letters_of(&letters).await, expect);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_priority_mailbox_hands_out_higher_priorities_first_fifo_within_one() {
    let Rig {
        r,
        mut q,
        letters,
        _h,
    } = rig(
        "prio",
        MailboxConfig::bounded(16).priority(|m: &u32| (m % 3) as u8),
    );
    let b = block(&r).await;
    for x in 1..=8 {
        r.try_tell(x).expect("fits");
    }
    drop(r);
    // Priority 2 (2, 5, 8), then 1 (1, 4, 7), then 0 (the queued BLOCK, 3, 6).
    let mut expect = fillers_then(b - 1, &[2, 5, 8, 1, 4, 7]);
    expect.extend(fillers_then(1, &[3, 6]));
    assert_eq!(drain(&mut q).await, (expect, Ok(())));
    assert_eq!(letters_of(&letters).await, vec![]);
}

#[tokio::test]
async fn drop_old_in_a_priority_mailbox_drops_the_oldest_of_the_lowest_priority() {
    let Rig {
        r,
        mut q,
        letters,
        _h,
    } = rig(
        "prio-drop",
        MailboxConfig::bounded(4)
            .priority(|m: &u32| (m % 3) as u8)
            .overflow(Overflow::DropOld),
    );
    let b = block(&r).await;
    // Queued: BLOCK (0); then 1 (1), 2 (2), 4 (1): full; 5 (2) drops BLOCK, 7 (1) drops 1.
    for x in [1, 2, 4, 5, 7] {
        r.try_tell(x).expect("queued");
    }
    let path = r.path().to_owned();
    drop(r);
    assert_eq!(
        drain(&mut q).await,
        (fillers_then(b - 1, &[2, 5, 4, 7]), Ok(()))
    );
    assert_eq!(
        letters_of(&letters).await,
        vec![
            letter(&path, reason::DROPPED_OLDEST, "0"),
            letter(&path, reason::DROPPED_OLDEST, "1"),
        ]
    );
}

#[tokio::test]
async fn len_and_pressure_follow_the_mailbox_fill() {
    let Rig { r, q: _q, _h, .. } = rig("gauge", MailboxConfig::bounded(10));
    block(&r).await;
    let mut seen = vec![(r.len(), r.pressure())];
    for x in 1..=9 {
        r.try_tell(x).expect("fits");
        seen.push((r.len(), r.pressure()));
    }
    use Pressure::{Critical, High, Normal};
    assert_eq!(
        seen,
        vec![
            (1, Normal),
            (2, Normal),
            (3, Normal),
            (4, Normal),
            (5, High),
            (6, High),
            (7, High),
            (8, High),
            (9, Critical),
            (10, Critical),
        ]
    );
    assert_eq!((r.capacity(), r.is_empty()), (10, false));
}

/// Replies `10 x` to `x`; holds odd ones back (stashed, with their sender) until a timer 10 ms
/// after the last one held, so replies complete out of order.
#[derive(Default)]
struct Shuffler {
    held: std::collections::HashSet<u64>,
}

const RELEASE: u64 = u64::MAX;

impl Actor for Shuffler {
    type Msg = u64;
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        if x == RELEASE {
            ctx.unstash_all();
        } else if x % 2 == 1 && self.held.insert(x) {
            ctx.stash(x)?;
            ctx.schedule_once("release", ms(10), RELEASE);
        } else {
            self.held.remove(&x);
            ctx.reply(x * 10);
        }
        Ok(())
    }
}

/// Drives `clock` until `task` is done.
async fn drive<T: Send + 'static>(clock: &VirtualClock, task: tokio::task::JoinHandle<T>) -> T {
    for _ in 0..10_000 {
        if task.is_finished() {
            break;
        }
        clock.run_for(ms(10)).await;
    }
    timed(task).await.expect("joins")
}

fn virtual_run(clock: &VirtualClock) -> Materializer {
    Materializer::new().with_clock(Arc::new(clock.clone()))
}

#[tokio::test]
async fn ask_emits_replies_in_input_order_at_every_parallelism() {
    let clock = VirtualClock::new();
    let m = virtual_run(&clock);
    let g = Source::actor(Props::<Shuffler>::default_of()).to_mat(Sink::ignore(), Keep::left);
    let (r, _h) = m.materialize(&g).expect("materializes");
    let mut took = Vec::new();
    for p in [1, 4, 16] {
        let start = clock.now();
        let run = Source::from_iter(0..64u64)
            .ask::<u64>(r.clone(), p, Duration::from_secs(5))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes");
        let out = drive(&clock, tokio::spawn(run)).await.expect("runs");
        assert_eq!(out, (0..64).map(|x| x * 10).collect::<Vec<u64>>(), "p={p}");
        took.push(clock.now() - start);
    }
    // With p asks in flight, p/2 odd numbers are held at a time and released together 10 ms
    // later (one at a time: 32 waits of 10 ms).
    assert_eq!(took, vec![ms(320), ms(160), ms(40)]);
}

/// Replies `10 x`, except to 3 (kept in its stash: never answered).
struct Sulker;

impl Actor for Sulker {
    type Msg = u32;
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u32) -> Result<(), StageError> {
        if x == 3 {
            return ctx.stash(x);
        }
        ctx.reply(x * 10);
        Ok(())
    }
}

#[tokio::test]
async fn an_ask_timeout_fails_its_element_naming_actor_and_message() {
    let clock = VirtualClock::new();
    let m = virtual_run(&clock);
    let g =
        Source::actor(Props::new(|| Sulker).with_name("sulker")).to_mat(Sink::ignore(), Keep::left);
    let (r, _h) = m.materialize(&g).expect("materializes");
    let g = Source::from_iter(1..=5u32)
        .ask::<u32>(r.clone(), 1, ms(500))
        .to_mat(Sink::queue(8), Keep::right);
    let (mut q, _h2) = m.materialize(&g).expect("materializes");
    let pulled = tokio::spawn(async move {
        let mut out = Vec::new();
        loop {
            match q.pull().await {
                Ok(Some(x)) => out.push(x),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    });
    let (out, err) = drive(&clock, pulled).await;
    assert_eq!(out, vec![10, 20]);
    let err = err.expect("the timeout fails the stage");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(
        err.message(),
        format!("ask of actor '{}' timed out after 500ms", r.path())
    );
    assert_eq!(err.element(), Some("3"));
    assert!(r.path().ends_with("/sulker"), "{}", r.path());
}

#[tokio::test]
async fn a_resumed_ask_timeout_drops_the_element_to_dead_letters() {
    let clock = VirtualClock::new();
    let m = virtual_run(&clock);
    let g =
        Source::actor(Props::new(|| Sulker).with_name("sulker")).to_mat(Sink::ignore(), Keep::left);
    let (r, _h) = m.materialize(&g).expect("materializes");
    let letters = DeadLetters::new(16);
    let ask = weir_operators::actor::ask_flow::<u32, u32>(r.clone(), 4, ms(500))
        .with_supervision(Supervision::resume().with_dead_letters(letters.sink()));
    let run = Source::from_iter(1..=5u32)
        .via(ask)
        .run_with_on(Sink::collect(), &m)
        .expect("materializes");
    let start = clock.now();
    let out = drive(&clock, tokio::spawn(run)).await.expect("runs");
    assert_eq!(out, vec![10, 20, 40, 50]);
    assert!(clock.now() - start >= ms(500));
    letters.close();
    let dead: Vec<Undelivered> = timed(
        letters
            .source()
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("runs");
    let dead: Vec<_> = dead
        .into_iter()
        .map(|u| (u.stage.starts_with("ask"), u.reason, u.repr))
        .collect();
    assert_eq!(
        dead,
        vec![(
            true,
            format!("ask of actor '{}' timed out after 500ms", r.path()),
            Some("3".to_owned())
        )]
    );
}

/// Replies `10 x` as a `u32`, except to 2 (a `String`); stops itself on 0.
struct Picky;

impl Actor for Picky {
    type Msg = u32;
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u32) -> Result<(), StageError> {
        match x {
            0 => ctx.stop(),
            2 => {
                ctx.reply("two".to_owned());
            }
            x => {
                ctx.reply(x * 10);
            }
        }
        Ok(())
    }
}

/// Runs `.ask` over `xs` under resume; the output and the dead letters' (reason, element).
async fn ask_resumed(
    m: &Materializer,
    r: &ActorRef<u32>,
    xs: Vec<u32>,
    parallelism: usize,
) -> (Vec<u32>, Vec<(String, Option<String>)>) {
    let letters = DeadLetters::new(16);
    let flow = weir_operators::actor::ask_flow::<u32, u32>(r.clone(), parallelism, ms(5_000))
        .with_supervision(Supervision::resume().with_dead_letters(letters.sink()));
    let run = Source::from_iter(xs)
        .via(flow)
        .run_with_on(Sink::collect(), m)
        .expect("materializes");
    let out = timed(run).await.expect("runs");
    let dead = letters_of(&letters).await;
    (out, dead.into_iter().map(|(_, r, x)| (r, x)).collect())
}

#[tokio::test]
async fn asks_answered_with_another_type_or_left_unanswered_fail_only_their_elements() {
    let m = Materializer::new();
    let g =
        Source::actor(Props::new(|| Picky).with_name("picky")).to_mat(Sink::ignore(), Keep::left);
    let (r, _h) = m.materialize(&g).expect("materializes");
    let path = r.path().to_owned();
    for p in [1, 3, 16] {
        let (out, dead) = ask_resumed(&m, &r, vec![1, 2, 3, 2, 4], p).await;
        assert_eq!(out, vec![10, 30, 40], "p={p}");
        let wrong = format!("actor '{path}' replied with another type than u32");
        assert_eq!(
            dead,
            vec![
                (wrong.clone(), Some("2".to_owned())),
                (wrong, Some("2".to_owned()))
            ],
            "p={p}"
        );
    }
    // 0 stops the actor without a reply; what is asked after goes nowhere and says so.
    let (out, dead) = ask_resumed(&m, &r, vec![0], 1).await;
    assert_eq!(out, Vec::<u32>::new());
    assert_eq!(
        dead,
        vec![(
            format!("actor '{path}' did not reply"),
            Some("0".to_owned())
        )]
    );
    for _ in 0..1_000 {
        if r.is_stopped() {
            break;
        }
        tokio::time::sleep(ms(1)).await;
    }
    assert!(r.is_stopped());
    let (out, dead) = ask_resumed(&m, &r, vec![5, 6, 7], 2).await;
    assert_eq!(out, Vec::<u32>::new());
    let stopped = format!("actor '{path}' is stopped");
    assert_eq!(
        dead,
        ["5", "6", "7"]
            .map(|x| (stopped.clone(), Some(x.to_owned())))
            .to_vec()
    );
}

/// Emits `(time in ms, message)` for every message.
struct Stamp;

impl Actor for Stamp {
    type Msg = u32;
    type Out = (u64, u32);
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u32) -> Result<(), StageError> {
        let now = ctx.now().as_millis() as u64;
        ctx.emit((now, x));
        Ok(())
    }
}

#[tokio::test]
async fn send_after_and_send_interval_deliver_on_the_run_clock_and_cancel() {
    let clock = VirtualClock::new();
    let g = Source::actor(Props::new(|| Stamp)).to_mat(Sink::collect(), Keep::both);
    let ((r, done), _h) = virtual_run(&clock).materialize(&g).expect("materializes");
    let done = tokio::spawn(done);
    let a = r.send_after(1, ms(100));
    r.send_after(2, ms(50));
    let c = r.send_after(3, ms(70));
    assert!(c.cancel());
    assert!(!c.cancel());
    assert!((c.is_active(), c.is_cancelled()) == (false, true));
    let mut n = 9;
    let iv = r.send_interval(
        move || {
            n += 1;
            n
        },
        ms(30),
    );
    clock.run_for(ms(100)).await;
    assert!(!a.is_active() && !a.is_cancelled(), "delivered");
    assert!(iv.is_active());
    assert!(iv.cancel());
    clock.run_for(ms(100)).await;
    // A pending delivery keeps the source running after its last ref is gone.
    r.send_after(4, ms(1000));
    drop(r);
    clock.run_for(ms(999)).await;
    assert!(!done.is_finished());
    clock.run_for(ms(1)).await;
    assert_eq!(
        timed(done).await.expect("joins").expect("completes"),
        vec![(30, 10), (50, 2), (60, 11), (90, 12), (100, 1), (1200, 4)]
    );
}

#[tokio::test]
async fn scheduled_deliveries_are_cancelled_when_the_stage_stops() {
    let clock = VirtualClock::new();
    let letters = DeadLetters::new(16);
    let g =
        Source::actor(Props::new(|| Stamp).with_name("stamp")).to_mat(Sink::collect(), Keep::both);
    let m = virtual_run(&clock).with_service(letters.service());
    let ((r, done), h) = m.materialize(&g).expect("materializes");
    let iv = r.send_interval(|| 7, ms(10));
    let once = r.send_after(8, ms(500));
    clock.run_for(ms(25)).await;
    h.cancel();
    let _ = timed(done).await;
    timed(async {
        while !r.is_stopped() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(iv.is_cancelled() && once.is_cancelled());
    // Scheduling on a stopped actor: the message goes to dead letters at once.
    let late = r.send_after(9, ms(10));
    assert!(late.is_cancelled());
    assert!(r.send_interval(|| 10, ms(10)).is_cancelled());
    let path = r.path().to_owned();
    assert_eq!(
        letters_of(&letters).await,
        vec![letter(&path, reason::STOPPED, "9")]
    );
}

/// Replies to 1 although nobody asked; stashes 10 and up (a stash of one); emits the rest.
struct Clerk;

impl Actor for Clerk {
    type Msg = u32;
    type Out = u32;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u32) -> Result<(), StageError> {
        match x {
            1 => {
                assert!(!ctx.reply(100u32));
            }
            10.. => return ctx.stash(x),
            _ => ctx.emit(x),
        }
        Ok(())
    }
}

#[tokio::test]
async fn dead_letters_carry_their_reason_and_message() {
    let letters = DeadLetters::new(16);
    let m = Materializer::new().with_service(letters.service());
    let flow = Flow::actor(
        Props::new(|| Clerk)
            .with_name("clerk")
            .with_stash_capacity(1),
    )
    .with_supervision(Supervision::resume());
    let g = Source::from_iter(vec![1u32, 2, 10, 11, 3])
        .via_mat(flow, Keep::right)
        .to_mat(Sink::collect(), Keep::both);
    let ((r, done), _h) = m.materialize(&g).expect("materializes");
    assert_eq!(timed(done).await.expect("runs"), vec![2, 3]);
    assert_eq!(
        r.try_tell(7),
        Err(TellError::Stopped {
            actor: r.path().to_owned()
        })
    );
    let path = r.path().to_owned();
    assert!(path.ends_with("/clerk"), "{path}");
    let recorded: Vec<Undelivered> = {
        letters.close();
        timed(
            letters
                .source()
                .run_with(Sink::collect())
                .expect("materializes"),
        )
        .await
        .expect("runs")
    };
    assert!(recorded.iter().all(|u| path.starts_with(&u.stage)));
    assert_eq!(recorded[0].message_as::<u32>(), Some(&100));
    let got: Vec<_> = recorded
        .into_iter()
        .map(|u| (u.actor, u.reason, u.repr))
        .collect();
    assert_eq!(
        got,
        vec![
            letter(&path, reason::NO_SENDER, "100"),
            letter(&path, reason::STASH_FULL, "11"),
            // The stash is dead-lettered when the actor stops at the end of the stream.
            letter(&path, reason::STOPPED, "10"),
            letter(&path, reason::STOPPED, "7"),
        ]
    );
    assert_eq!(letters.dropped(), 0);
}

#[tokio::test]
async fn dead_letters_before_the_stage_starts_are_recorded_and_a_full_buffer_counts_drops() {
    let letters = DeadLetters::new(2);
    let props = Props::new(|| Echo)
        .with_name("early")
        .with_mailbox(MailboxConfig::bounded(2));
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let m = Materializer::new().with_service(letters.service());
    let ((r, done), _h) = m.materialize(&g).expect("materializes");
    // The stage has not run yet: two fit, three are refused.
    let told: Vec<_> = (1..=5).map(|x| r.try_tell(x)).collect();
    assert_eq!(
        told,
        vec![Ok(()), Ok(()), Err(full(&r)), Err(full(&r)), Err(full(&r))]
    );
    let path = r.path().to_owned();
    drop(r);
    assert_eq!(timed(done).await.expect("completes"), vec![1, 2]);
    assert_eq!(letters.dropped(), 1, "the buffer holds two");
    assert_eq!(
        letters_of(&letters).await,
        vec![
            letter(&path, reason::MAILBOX_FULL, "3"),
            letter(&path, reason::MAILBOX_FULL, "4"),
        ]
    );
}

#[tokio::test]
async fn source_dead_letters_reads_the_run_service_and_needs_one() {
    let letters = DeadLetters::new(16);
    let m = Materializer::new().with_service(letters.service());
    let (stream, _h) = m
        .materialize(&Source::dead_letters().to_mat(Sink::collect(), Keep::right))
        .expect("materializes");
    let props = Props::new(|| Echo).with_name("gone");
    let g = Source::actor(props).to_mat(Sink::ignore(), Keep::left);
    let (r, h) = m.materialize(&g).expect("materializes");
    h.cancel();
    timed(async {
        while !r.is_stopped() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        r.try_tell(5),
        Err(TellError::Stopped {
            actor: r.path().to_owned()
        })
    );
    letters.close();
    let got: Vec<_> = timed(stream)
        .await
        .expect("completes once closed")
        .into_iter()
        .map(|u| (u.actor, u.reason, u.repr))
        .collect();
    assert_eq!(got, vec![letter(r.path(), reason::STOPPED, "5")]);
    let err = Materializer::new()
        .materialize(&Source::dead_letters().to_mat(Sink::ignore(), Keep::left))
        .map(|_| ())
        .expect_err("no service");
    assert!(err.to_string().contains("DeadLetters service"), "{err}");
}

#[tokio::test]
async fn a_stage_mailbox_budget_bounds_the_bytes_queued_before_the_capacity() {
    let per = ActorRef::<u32>::message_bytes();
    assert!(per >= std::mem::size_of::<u32>());
    let letters = DeadLetters::new(16);
    let props = Props::new(|| Echo)
        .with_name("budgeted")
        .with_mailbox(MailboxConfig::bounded(100))
        .with_mailbox_budget(4 * per);
    let g = Source::actor(props).to_mat(Sink::queue(1), Keep::both);
    let m = Materializer::new()
        .with_buffer_rows(4)
        .with_service(letters.service());
    let ((r, mut q), _h) = m.materialize(&g).expect("materializes");
    let b = block(&r).await;
    assert_eq!(r.stage_mailbox_bytes(), per, "the queued BLOCK");
    let told: Vec<_> = (1..=5).map(|x| r.try_tell(x)).collect();
    assert_eq!(
        told,
        vec![Ok(()), Ok(()), Ok(()), Err(full(&r)), Err(full(&r))]
    );
    assert_eq!((r.len(), r.stage_mailbox_bytes()), (4, 4 * per));
    // A tell waits for the budget, and goes on once the actor drained its mailbox.
    let late = tokio::spawn({
        let r = r.clone();
        async move { r.tell(6).await }
    });
    yields(100).await;
    assert!(!late.is_finished());
    let path = r.path().to_owned();
    drop(r);
    let mut out = Vec::new();
    while out.len() < FILLERS * b + 3 {
        out.push(timed(q.pull()).await.expect("runs").expect("more"));
    }
    timed(late)
        .await
        .expect("joins")
        .expect("told once there was room");
    let (rest, end) = drain(&mut q).await;
    out.extend(rest);
    assert_eq!((out, end), (fillers_then(b, &[1, 2, 3, 6]), Ok(())));
    assert_eq!(
        letters_of(&letters).await,
        vec![
            letter(&path, reason::MAILBOX_FULL, "4"),
            letter(&path, reason::MAILBOX_FULL, "5"),
        ]
    );
}

#[tokio::test]
async fn a_spilling_source_reads_back_only_as_fast_as_downstream_takes() {
    let dir = spill_dir("pace");
    let Rig {
        r,
        mut q,
        letters,
        _h,
    } = rig_on(
        "pacer",
        MailboxConfig::bounded(3).spill::<u32>(&dir, 1 << 20),
        Materializer::new().with_batch_size(2),
    );
    let b = block(&r).await;
    for x in 1..=40 {
        r.try_tell(x).expect("spilled");
    }
    assert_eq!((r.len(), r.spilled()), (41, 38));
    let mut out = Vec::new();
    while out.len() < FILLERS * b + 4 {
        out.push(timed(q.pull()).await.expect("runs").expect("more"));
    }
    yields(100).await;
    // With 4 taken, the stage handled 15 (BLOCK and 1..=14: what the channels, the queue and one
    // round of output hold) and read back only what that made room for: 23 stay on disk.
    assert_eq!((r.len(), r.spilled()), (26, 23));
    drop(r);
    let (rest, end) = drain(&mut q).await;
    out.extend(rest);
    assert_eq!(
        (out, end),
        (fillers_then(b, &(1..=40).collect::<Vec<_>>()), Ok(()))
    );
    assert_eq!(files_in(&dir), 0);
    assert_eq!(letters_of(&letters).await, vec![]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The mailbox pressure gauges of the run: name to value (one actor stage, subtask 0).
fn pressure(h: &RunHandle) -> Vec<(String, i64)> {
    h.stage_gauges()
        .into_iter()
        .filter(|g| g.name.starts_with("weir_actor_mailbox"))
        .map(|g| {
            assert_eq!(g.subtask, 0);
            (g.name, g.value)
        })
        .collect()
}

fn gauges(queued: i64, waits: i64, overflows: i64) -> Vec<(String, i64)> {
    // One mailbox of capacity 5: high from 3 messages, critical at 5.
    let (high, critical) = match queued {
        5.. => (0, 1),
        3..=4 => (1, 0),
        _ => (0, 0),
    };
    vec![
        ("weir_actor_mailbox_messages".to_owned(), queued),
        ("weir_actor_mailbox_waits".to_owned(), waits),
        ("weir_actor_mailbox_overflows".to_owned(), overflows),
        ("weir_actor_mailboxes_high".to_owned(), high),
        ("weir_actor_mailboxes_critical".to_owned(), critical),
    ]
}

#[tokio::test]
async fn mailbox_pressure_is_published_as_stage_gauges() {
    let Rig { r, mut q, _h, .. } = rig("pressure", MailboxConfig::bounded(5));
    // Published once the stage started.
    yields(50).await;
    assert_eq!(pressure(&_h), gauges(0, 0, 0));
    let b = block(&r).await;
    assert_eq!(pressure(&_h), gauges(1, 0, 0));
    r.try_tell(1).expect("room");
    r.try_tell(2).expect("room");
    assert_eq!(pressure(&_h), gauges(3, 0, 0));
    let told: Vec<_> = (3..=6).map(|x| r.try_tell(x)).collect();
    assert_eq!(told.iter().filter(|t| t.is_err()).count(), 2);
    assert_eq!(pressure(&_h), gauges(5, 0, 2));
    let waiting = tokio::spawn({
        let r = r.clone();
        async move { r.tell(7).await }
    });
    yields(200).await;
    assert!(!waiting.is_finished());
    assert_eq!(pressure(&_h), gauges(5, 1, 2));
    drop(r);
    let (out, end) = drain(&mut q).await;
    assert_eq!(end, Ok(()));
    assert_eq!(out, fillers_then(b, &[1, 2, 3, 4, 7]));
    timed(waiting).await.expect("joins").expect("delivered");
    assert_eq!(pressure(&_h), gauges(0, 1, 2));
}

#[tokio::test]
async fn a_control_aware_mailbox_hands_out_control_messages_first_in_arrival_order() {
    let control = MailboxConfig::bounded(10).control_aware(|m: &u32| (100..FILL).contains(m));
    let Rig { r, mut q, _h, .. } = rig("control", control);
    let b = block(&r).await;
    for x in [1, 2, 100, 3, 101] {
        r.try_tell(x).expect("room");
    }
    drop(r);
    let (out, end) = drain(&mut q).await;
    assert_eq!(end, Ok(()));
    // The BLOCK still queued when the others came is an ordinary message too.
    let mut want = fillers_then(b - 1, &[100, 101]);
    want.extend(fillers_then(1, &[1, 2, 3]));
    assert_eq!(out, want);
}
