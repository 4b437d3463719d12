//! Parking (`Ctx::park`): an actor hands work to another thread and waits for its wake-up
//! without blocking the stage; what arrives meanwhile waits in order, replies reach the
//! senders of the parked messages, and the stage completes only once the work is back.

use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::Keep;
use weir_operators::actor::{Actor, Ctx, MailboxConfig, Props, SenderSlot};
use weir_operators::prelude::*;

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

enum Msg {
    Work(i64),
    Done(i64, SenderSlot),
}

/// Computes `x * 10` on another thread (slower for some `x`) while parked, then emits and
/// answers it.
struct Offloader {
    parks: usize,
}

impl Actor for Offloader {
    type Msg = Msg;
    type Out = String;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Msg) -> Result<(), StageError> {
        match msg {
            Msg::Work(x) => {
                assert!(!ctx.is_parked(), "a parked actor is handed only notices");
                let slot = ctx.take_sender();
                let wake = ctx.park();
                self.parks += 1;
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis((x % 3) as u64));
                    wake.wake(Msg::Done(x * 10, slot));
                });
            }
            Msg::Done(y, slot) => {
                assert!(ctx.is_parked());
                ctx.unpark();
                let asked = slot.is_some();
                ctx.restore_sender(slot);
                if asked {
                    ctx.reply(y);
                }
                ctx.emit(format!("{y} after {} parks", self.parks));
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_parked_actor_handles_its_stream_in_order_and_the_stage_waits_for_the_work() {
    for batch in [1, 7, 64] {
        let m = Materializer::new().with_batch_size(batch);
        let run = Source::from_iter(0..40i64)
            .map(Msg::Work)
            .via(Flow::actor(Props::new(|| Offloader { parks: 0 })))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes");
        let got = timed(run).await.expect("runs");
        let want: Vec<String> = (0..40i64)
            .map(|x| format!("{} after {} parks", x * 10, x + 1))
            .collect();
        assert_eq!(got, want, "batch {batch}");
    }
}

#[tokio::test]
async fn asks_to_a_parked_actor_wait_in_order_and_are_answered_by_the_wake_up() {
    let m = Materializer::new();
    let props = Props::new(|| Offloader { parks: 0 }).with_mailbox(MailboxConfig::bounded(2));
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let ((r, done), _h) = m.materialize(&g).expect("materializes");
    let asks: Vec<_> = (1..=6i64)
        .map(|x| {
            let r = r.clone();
            tokio::spawn(async move { r.ask::<i64>(Msg::Work(x), Duration::from_secs(10)).await })
        })
        .collect();
    let mut answers = Vec::new();
    for a in asks {
        answers.push(timed(a).await.expect("joins").expect("answered"));
    }
    assert_eq!(answers, vec![10, 20, 30, 40, 50, 60]);
    drop(r);
    let out = timed(done).await.expect("completes");
    // The asks raced each other into the mailbox: each was handled in its own park.
    let mut got: Vec<(i64, usize)> = out
        .iter()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            (
                w[0].parse().expect("a number"),
                w[2].parse().expect("a count"),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![10, 20, 30, 40, 50, 60]
    );
    let mut parks: Vec<usize> = got.iter().map(|g| g.1).collect();
    parks.sort();
    assert_eq!(parks, vec![1, 2, 3, 4, 5, 6]);
}
