//! Concurrency tests of the credit channel under shuttle: a producer and a consumer on their own
//! threads race sends, receives, credit, close, sender drops and waker registration; shuttle
//! explores their interleavings (random and PCT schedules) and fails on a lost wake-up
//! (deadlock), a panic or a wrong result. Every test checks the whole sequence received.

use super::*;
use futures::future::poll_fn;
use shuttle::future::block_on;
use shuttle::thread;
use std::task::Poll;

/// Schedules per test: PCT (depth 3) finds ordering bugs with few runs; random covers the rest.
const ITERATIONS: usize = 1000;

fn check(f: impl Fn() + Send + Sync + 'static) {
    let f = Arc::new(f);
    let g = Arc::clone(&f);
    shuttle::check_random(move || f(), ITERATIONS);
    shuttle::check_pct(move || g(), ITERATIONS, 3);
}

fn batch(v: Vec<u32>) -> Msg {
    Msg::Data(Box::new(v))
}

fn unbatch(b: BoxBatch) -> Vec<u32> {
    match b.into_any().downcast::<Vec<u32>>() {
        Ok(v) => *v,
        Err(_) => panic!("not a batch of u32"),
    }
}

/// What a consumer saw: every data row in order, then how the stream ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    End,
    Error(String),
    /// Every sender vanished without end-of-stream.
    Vanished,
}

/// Receives until the stream ends, waiting on the channel's waker.
fn drain(rx: &Receiver) -> (Vec<u32>, Ending) {
    let mut rows = Vec::new();
    loop {
        match block_on(poll_fn(|cx| rx.poll_recv(cx))) {
            Some(Msg::Data(b)) => rows.extend(unbatch(b)),
            Some(Msg::End) => return (rows, Ending::End),
            Some(Msg::Error(e)) => return (rows, Ending::Error(e.to_string())),
            // These scenarios send no control.
            Some(Msg::Control(_)) => {}
            None => return (rows, Ending::Vanished),
        }
    }
}

/// Sends `n` batches of `per` rows, waiting for credit before each; `Err` once the consumer left.
fn produce(tx: &Sender, n: u32, per: u32) -> Result<(), Closed> {
    for k in 0..n {
        let rows: Vec<u32> = (k * per..(k + 1) * per).collect();
        let bytes = rows.len() * 4;
        block_on(poll_fn(|cx| tx.poll_ready(cx, rows.len(), bytes)))?;
        tx.push(batch(rows))?;
    }
    Ok(())
}

#[test]
fn credit_bounded_transfer_delivers_every_row_in_order_then_end() {
    check(|| {
        // Room for two batches of two rows: the producer waits for credit most of the time.
        let (tx, rx) = channel(4, usize::MAX);
        let shared = Arc::clone(rx.shared());
        let p = thread::spawn(move || {
            produce(&tx, 6, 2).unwrap();
            tx.push(Msg::End).unwrap();
        });
        let (rows, end) = drain(&rx);
        p.join().unwrap();
        assert_eq!(rows, (0..12).collect::<Vec<_>>());
        assert_eq!(end, Ending::End);
        assert!(shared.peak() <= 4, "peak {} rows", shared.peak());
        assert_eq!(shared.depth(), 0);
    });
}

#[test]
fn the_byte_bound_holds_under_concurrent_receives() {
    check(|| {
        // Rows are no limit; a batch is two u32 rows (8 bytes), so 24 bytes hold three.
        let (tx, rx) = channel(usize::MAX, 24);
        let shared = Arc::clone(rx.shared());
        let p = thread::spawn(move || {
            produce(&tx, 8, 2).unwrap();
            tx.push(Msg::End).unwrap();
        });
        let (rows, end) = drain(&rx);
        p.join().unwrap();
        assert_eq!(rows, (0..16).collect::<Vec<_>>());
        assert_eq!(end, Ending::End);
        assert!(
            shared.peak_bytes() <= 24,
            "peak {} bytes",
            shared.peak_bytes()
        );
    });
}

#[test]
fn an_error_arrives_after_the_data_sent_before_it() {
    check(|| {
        let (tx, rx) = channel(2, usize::MAX);
        let p = thread::spawn(move || {
            produce(&tx, 3, 1).unwrap();
            tx.push(Msg::Error(StageError::user("boom"))).unwrap();
            // Nothing after a terminal message is delivered.
            tx.push(batch(vec![99])).unwrap();
        });
        let (rows, end) = drain(&rx);
        p.join().unwrap();
        assert_eq!(rows, vec![0, 1, 2]);
        assert_eq!(end, Ending::Error(StageError::user("boom").to_string()));
    });
}

#[test]
fn a_consumer_leaving_mid_stream_stops_a_waiting_producer() {
    check(|| {
        let (tx, rx) = channel(1, usize::MAX);
        let p = thread::spawn(move || {
            // Blocks on credit after the first batch until the consumer goes.
            let r = produce(&tx, 100, 1);
            (r, tx.is_closed())
        });
        let first = block_on(poll_fn(|cx| rx.poll_recv(cx)));
        assert!(matches!(first, Some(Msg::Data(_))));
        drop(rx);
        let (r, closed) = p.join().unwrap();
        assert_eq!(r, Err(Closed));
        assert!(closed);
    });
}

#[test]
fn an_idle_producer_sees_the_consumer_go() {
    check(|| {
        let (tx, rx) = channel(8, usize::MAX);
        let p = thread::spawn(move || {
            block_on(poll_fn(|cx| tx.poll_closed(cx)));
            tx.push(batch(vec![1]))
        });
        drop(rx);
        assert_eq!(p.join().unwrap(), Err(Closed));
    });
}

#[test]
fn senders_vanishing_without_end_wake_the_consumer_once_all_are_gone() {
    check(|| {
        let (tx, rx) = channel(8, usize::MAX);
        let control = tx.control();
        let a = thread::spawn(move || {
            tx.push(batch(vec![1])).unwrap();
        });
        let b = thread::spawn(move || drop(control));
        let (rows, end) = drain(&rx);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(rows, vec![1]);
        assert_eq!(end, Ending::Vanished);
    });
}

#[test]
fn a_control_handle_ends_the_stream_while_the_producer_waits_for_credit() {
    check(|| {
        let (tx, rx) = channel(1, usize::MAX);
        let control = tx.control();
        let p = thread::spawn(move || {
            // Ends by the consumer leaving after it saw the control handle's end.
            let _ = produce(&tx, 50, 1);
        });
        let c = thread::spawn(move || {
            control.push(Msg::End).unwrap();
        });
        let (rows, end) = drain(&rx);
        c.join().unwrap();
        assert_eq!(end, Ending::End);
        // What arrived before the end is a prefix of the producer's rows.
        assert_eq!(rows, (0..rows.len() as u32).collect::<Vec<_>>());
        drop(rx);
        p.join().unwrap();
    });
}

#[test]
fn a_demand_channel_carries_exactly_what_the_consumer_asks_for() {
    check(|| {
        let (tx, rx) = channel_on_demand(3);
        let shared = Arc::clone(rx.shared());
        let p = thread::spawn(move || {
            let mut next = 0u32;
            while next < 10 {
                let Ok(granted) = block_on(poll_fn(|cx| tx.poll_demand(cx))) else {
                    return;
                };
                let n = (granted as u32).min(10 - next);
                tx.push(batch((next..next + n).collect())).unwrap();
                next += n;
            }
            tx.push(Msg::End).unwrap();
        });
        let mut rows = Vec::new();
        let mut asks = [1usize, 2, 3].into_iter().cycle();
        let end = loop {
            let want = asks.next().unwrap_or(1);
            match block_on(poll_fn(|cx| rx.poll_recv_up_to(cx, want))) {
                Some(Msg::Data(b)) => {
                    let b = unbatch(b);
                    assert!(b.len() <= 3, "a grant is at most the grant size: {b:?}");
                    rows.extend(b);
                }
                Some(Msg::End) => break Ending::End,
                other => panic!("unexpected {:?}", other.is_some()),
            }
        };
        p.join().unwrap();
        assert_eq!(rows, (0..10).collect::<Vec<_>>());
        assert_eq!(end, Ending::End);
        assert!(shared.peak() <= 3, "peak {}", shared.peak());
    });
}

#[test]
fn the_terminal_peek_waits_behind_data_and_sees_the_end() {
    check(|| {
        let (tx, rx) = channel_on_demand(4);
        let p = thread::spawn(move || {
            tx.push(Msg::End).unwrap();
        });
        let seen = block_on(poll_fn(|cx| match rx.poll_terminal(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|r| r.is_ok())),
            Poll::Pending => Poll::Pending,
        }));
        p.join().unwrap();
        assert_eq!(seen, Some(true));
    });
}
