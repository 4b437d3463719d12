//! Actor mailboxes: every overflow policy's exact behaviour (handled messages, dead letters,
//! `try_tell` results), backpressure of `tell` and of a slow `Flow::actor`, spilling to disk,
//! priority order, introspection, outside scheduling on the virtual clock, `Flow::ask`, and the
//! dead-letter stream's reasons.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::{ErrorKind, Keep, Supervision};
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
        r, mut q, letters, _h
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
    assert_eq!(drain(&mut q).await, (fillers_then(b, &[1, 2, 3, 4]), Ok(())));
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
        r, mut q, letters, _h
    } = rig("do", MailboxConfig::bounded(5).overflow(Overflow::DropOld));
    let b = block(&r).await;
    let told: Vec<_> = (1..=7).map(|x| r.try_tell(x)).collect();
    assert_eq!(told, vec![Ok(()); 7]);
    assert_eq!(r.len(), 5);
    let path = r.path().to_owned();
    drop(r);
    // The queued BLOCK was the oldest: it went first (its fillers are not emitted).
    assert_eq!(drain(&mut q).await, (fillers_then(b - 1, &[3, 4, 5, 6, 7]), Ok(())));
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
        r, mut q, letters, _h
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
        r, mut q, letters, _h
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
    assert_eq!(drain(&mut spare_q).await, (fillers_then(sb, &[4, 5]), Ok(())));
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
    } = rig("spiller", MailboxConfig::bounded(3).spill::<u32>(&dir, 1 << 20));
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
    assert_eq!(files_in(&dir), 0, "the spill file is removed when the stage stops");
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
