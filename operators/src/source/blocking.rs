//! `from_blocking_iter`: an iterator that may block (a file, a socket reader, a generator of an
//! embedded interpreter) pulled on a thread of its own, its items handed over to the stage as
//! they arrive.
//!
//! The pulling thread calls `next()` and appends each item to a bounded hand-off; the stage takes
//! whatever has arrived whenever it is polled (at most a batch) and is pending only while nothing
//! has. So a partial batch goes out as soon as the iterator has nothing more ready (an iterator
//! that waits between items never holds back the items before), and backpressure holds: the
//! thread stops pulling while the hand-off holds a full batch the stage has not taken. Once the
//! stage is gone the thread stops after the call it is in returns (a call blocked for good is left
//! behind: the run does not wait for it). A failure of the iterator comes after the items it
//! yielded before.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};

/// What surrounds the pulling thread's work: an embedding runtime takes its lock for the whole
/// pull loop and releases it while the thread waits for room (the Python API holds the GIL).
pub trait PullThread: Send + Sync + 'static {
    /// Runs the whole pull loop `pull` (the default runs it as it is).
    fn run(&self, pull: &mut dyn FnMut()) {
        pull()
    }
    /// Runs `wait`, which blocks until the stage took items, from inside the pull loop (the
    /// default runs it as it is).
    fn wait(&self, wait: &mut (dyn FnMut() + Send)) {
        wait()
    }
}

/// A pull thread needing nothing around its work.
pub(crate) struct Plain;

impl PullThread for Plain {}

/// How the iterator ended.
enum End {
    Exhausted,
    Failed(StageError),
}

struct State<T> {
    items: Vec<T>,
    end: Option<End>,
    /// The stage is gone: stop pulling.
    closed: bool,
    /// The thread waits for room (the next take wakes it).
    full: bool,
    /// The stage's waker, set while nothing is there to take.
    waker: Option<Waker>,
}

/// The bounded hand-off between the pulling thread and the stage.
struct Handoff<T> {
    state: Mutex<State<T>>,
    /// Wakes the pulling thread once the stage took items (or closed the hand-off).
    room: Condvar,
    /// Items the thread pulls ahead of the stage: one batch.
    capacity: usize,
}

impl<T> Handoff<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A poisoned lock only means a thread panicked while holding it: the items are intact.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records how the iterator ended and wakes the stage.
    fn finish(&self, end: End) {
        let waker = {
            let mut st = self.lock();
            st.end = Some(end);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Stops the pulling thread (after the call it is in).
    fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        let items = std::mem::take(&mut st.items);
        drop(st);
        self.room.notify_one();
        // Dropped outside the lock: dropping an item may run code that waits for the puller.
        drop(items);
    }
}

impl<T: Send> Handoff<T> {
    /// The pulling thread: `next()` until the iterator ends or the stage is gone.
    fn pull<I: Iterator<Item = Result<T, StageError>>>(&self, it: &mut I, thread: &dyn PullThread) {
        loop {
            let next = it.next();
            let mut st = self.lock();
            if st.closed {
                return;
            }
            let item = match next {
                Some(Ok(x)) => x,
                Some(Err(e)) => {
                    drop(st);
                    return self.finish(End::Failed(e));
                }
                None => {
                    drop(st);
                    return self.finish(End::Exhausted);
                }
            };
            st.items.push(item);
            let waker = st.waker.take();
            let full = st.items.len() >= self.capacity;
            st.full = full;
            drop(st);
            if let Some(w) = waker {
                w.wake();
            }
            if full && self.wait_for_room(thread) {
                return;
            }
        }
    }

    /// Blocks until the stage took items; `true` once the stage is gone.
    fn wait_for_room(&self, thread: &dyn PullThread) -> bool {
        let mut closed = false;
        thread.wait(&mut || {
            let st = self.lock();
            let st = self
                .room
                .wait_while(st, |s| s.full && !s.closed)
                .unwrap_or_else(|p| p.into_inner());
            closed = st.closed;
        });
        closed
    }
}

/// Makes the iterator on the pulling thread.
type Make<I> = Box<dyn FnOnce() -> Result<I, StageError> + Send>;

/// The stage's side: starts the pulling thread on its first poll, then takes what has arrived.
pub struct BlockingIterLogic<T, I> {
    make: Option<(Make<I>, Arc<dyn PullThread>)>,
    handoff: Option<Arc<Handoff<T>>>,
    /// A failure held back until the items before it are out.
    failed: Option<StageError>,
}

impl<T, I> BlockingIterLogic<T, I>
where
    T: Send + 'static,
    I: Iterator<Item = Result<T, StageError>> + 'static,
{
    /// The logic pulling the iterator `make()` builds on a thread of its own, inside `thread`.
    pub fn new(
        thread: Arc<dyn PullThread>,
        make: impl FnOnce() -> Result<I, StageError> + Send + 'static,
    ) -> Self {
        Self {
            make: Some((Box::new(make), thread)),
            handoff: None,
            failed: None,
        }
    }

    /// Spawns the pulling thread, at most `batch` items ahead of the stage.
    fn start(&mut self, batch: usize) -> Result<Arc<Handoff<T>>, StageError> {
        let h = Arc::new(Handoff {
            state: Mutex::new(State {
                items: Vec::new(),
                end: None,
                closed: false,
                full: false,
                waker: None,
            }),
            room: Condvar::new(),
            capacity: batch.max(1),
        });
        let Some((make, thread)) = self.make.take() else {
            return Err(StageError::internal(
                "the blocking iterator was started twice",
            ));
        };
        let pulling = Arc::clone(&h);
        std::thread::Builder::new()
            .name("weir-blocking-iter".to_owned())
            .spawn(move || {
                let t = Arc::clone(&thread);
                let mut make = Some(make);
                thread.run(&mut || match make.take().map(|m| m()) {
                    Some(Ok(mut it)) => pulling.pull(&mut it, &*t),
                    Some(Err(e)) => pulling.finish(End::Failed(e)),
                    None => {}
                });
                // Dropping `make` or the iterator ran inside `run` (e.g. under the GIL).
            })
            .map_err(|e| {
                StageError::internal(format!("cannot start the iterator's thread: {e}"))
            })?;
        self.handoff = Some(Arc::clone(&h));
        Ok(h)
    }
}

impl<T, I> SourceLogic<T> for BlockingIterLogic<T, I>
where
    T: Send + 'static,
    I: Iterator<Item = Result<T, StageError>> + 'static,
{
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let path = &scx.info().path;
        let named = |e: StageError| match e.stage() {
            Some(_) => e,
            None => e.with_stage(path),
        };
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(named(e)));
        }
        let max = scx.batch_size().max(1);
        let h = match &self.handoff {
            Some(h) => Arc::clone(h),
            None => match self.start(max) {
                Ok(h) => h,
                Err(e) => return Poll::Ready(Err(named(e))),
            },
        };
        let mut st = h.lock();
        if st.items.is_empty() {
            return match st.end.take() {
                None => {
                    st.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                Some(End::Exhausted) => Poll::Ready(Ok(Step::Done)),
                Some(End::Failed(e)) => Poll::Ready(Err(named(e))),
            };
        }
        let n = st.items.len().min(max);
        out.extend(st.items.drain(..n));
        let end = if st.items.is_empty() {
            st.end.take()
        } else {
            None
        };
        let room = std::mem::take(&mut st.full);
        drop(st);
        if room {
            h.room.notify_one();
        }
        Poll::Ready(Ok(match end {
            Some(End::Exhausted) => Step::Done,
            Some(End::Failed(e)) => {
                self.failed = Some(e);
                Step::More
            }
            None => Step::More,
        }))
    }

    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.failed.is_some() {
            return Poll::Ready(());
        }
        let Some(h) = &self.handoff else {
            return Poll::Pending;
        };
        let mut st = h.lock();
        if st.items.is_empty() && st.end.is_some() {
            return Poll::Ready(());
        }
        if st.items.is_empty() {
            st.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn post_stop(&mut self) {
        if let Some(h) = self.handoff.take() {
            h.close();
        }
    }
}

impl<T, I> Drop for BlockingIterLogic<T, I> {
    fn drop(&mut self) {
        if let Some(h) = self.handoff.take() {
            h.close();
        }
    }
}

pub(crate) fn from_blocking_iter<T, I, F>(make: F) -> Source<T>
where
    T: Send + 'static,
    I: Iterator<Item = Result<T, StageError>> + 'static,
    F: Fn() -> I + Send + Sync + 'static,
{
    let make = Arc::new(make);
    Source::from_logic("from_blocking_iter", move |_| {
        let make = Arc::clone(&make);
        let logic = BlockingIterLogic::new(Arc::new(Plain), move || Ok(make()));
        Ok((logic, ()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceCtors;
    use crate::source::test_support::source;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Generous real-time bound: every wait below normally ends within milliseconds.
    const BOUND: Duration = Duration::from_secs(10);

    /// Polls until the source is ready (the pulling thread runs on its own).
    fn next<T: Send + 'static>(
        h: &mut crate::source::test_support::SourceHarness<T>,
    ) -> Result<(Vec<T>, Step), StageError> {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(r) = h.poll() {
                return r;
            }
            while !h.flag.take() {
                assert!(Instant::now() < deadline, "the source was never woken");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// An iterator over what a channel receives: it blocks until the test sends the next item.
    fn fed() -> (mpsc::Sender<Result<u32, StageError>>, Source<u32>) {
        let (tx, rx) = mpsc::channel::<Result<u32, StageError>>();
        let rx = Arc::new(Mutex::new(Some(rx)));
        let src = Source::from_blocking_iter(move || {
            let rx = rx.lock().unwrap().take();
            rx.into_iter().flat_map(|r| r.into_iter())
        });
        (tx, src)
    }

    #[test]
    fn each_item_goes_out_as_soon_as_nothing_more_is_ready() {
        let (tx, src) = fed();
        let (mut h, ()) = source(&src, 1024);
        assert!(h.poll().is_none(), "nothing sent yet");
        tx.send(Ok(1)).unwrap();
        assert_eq!(next(&mut h).unwrap(), (vec![1], Step::More));
        tx.send(Ok(2)).unwrap();
        tx.send(Ok(3)).unwrap();
        // Both may have arrived by the time the stage looks, or one after the other.
        let mut got = next(&mut h).unwrap().0;
        if got.len() < 2 {
            got.extend(next(&mut h).unwrap().0);
        }
        assert_eq!(got, vec![2, 3]);
        drop(tx);
        assert_eq!(next(&mut h).unwrap(), (vec![], Step::Done));
    }

    #[test]
    fn a_failure_comes_after_the_items_before_it() {
        let src = Source::<u32>::from_blocking_iter(|| {
            vec![Ok(1), Ok(2), Err(StageError::user("reader broke"))].into_iter()
        });
        let (mut h, ()) = source(&src, 8);
        let mut got = Vec::new();
        let err = loop {
            match next(&mut h) {
                Ok((v, step)) => {
                    assert_eq!(step, Step::More);
                    got.extend(v);
                }
                Err(e) => break e,
            }
        };
        assert_eq!(got, vec![1, 2]);
        assert_eq!(err.to_string(), "stage 'test#0' failed: reader broke");
        assert_eq!(err.stage(), Some("test#0"));
    }

    #[test]
    fn the_thread_pulls_at_most_a_batch_ahead() {
        let pulled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let p = Arc::clone(&pulled);
        let src = Source::<usize>::from_blocking_iter(move || {
            let p = Arc::clone(&p);
            (0..).map(move |i| {
                p.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(i)
            })
        });
        let (mut h, ()) = source(&src, 4);
        let first = next(&mut h).unwrap();
        assert_eq!(first.1, Step::More);
        // The thread fills one batch more and waits for room.
        let ahead = first.0.len() + 4;
        let deadline = Instant::now() + BOUND;
        while pulled.load(std::sync::atomic::Ordering::SeqCst) < ahead {
            assert!(
                Instant::now() < deadline,
                "the thread stopped short of a batch"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Give it time to overrun if it were going to.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), ahead);
        let mut all = first.0;
        while all.len() < 20 {
            let (v, step) = next(&mut h).unwrap();
            assert_eq!(step, Step::More);
            assert!(v.len() <= 4, "batch overfilled");
            all.extend(v);
        }
        assert_eq!(all[..20], (0..20).collect::<Vec<_>>()[..]);
        h.post_stop();
    }

    #[test]
    fn dropping_the_stage_ends_it_while_the_iterator_blocks() {
        let (tx, src) = fed();
        let (mut h, ()) = source(&src, 16);
        tx.send(Ok(7)).unwrap();
        assert_eq!(next(&mut h).unwrap(), (vec![7], Step::More));
        assert!(h.poll().is_none(), "the iterator blocks");
        // The stage stops (cancellation) although the thread is still blocked in `next()`.
        h.post_stop();
        drop(h);
        // The thread returns from the blocked call and stops, dropping the iterator.
        tx.send(Ok(8)).unwrap();
        let deadline = Instant::now() + BOUND;
        while tx.send(Ok(9)).is_ok() {
            assert!(Instant::now() < deadline, "the thread went on pulling");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_end_needs_no_demand() {
        let src = Source::<u8>::from_blocking_iter(std::iter::empty);
        let (mut h, ()) = source(&src, 4);
        assert_eq!(next(&mut h).unwrap(), (vec![], Step::Done));
    }

    /// A pull thread that records what it wraps.
    #[derive(Default)]
    struct Counting {
        runs: std::sync::atomic::AtomicUsize,
        waits: std::sync::atomic::AtomicUsize,
    }

    impl PullThread for Counting {
        fn run(&self, pull: &mut dyn FnMut()) {
            self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            pull()
        }
        fn wait(&self, wait: &mut (dyn FnMut() + Send)) {
            self.waits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            wait()
        }
    }

    #[test]
    fn the_pull_loop_runs_inside_its_thread_context() {
        let ctx = Arc::new(Counting::default());
        let src = Source::<u32>::from_logic("custom", {
            let ctx = Arc::clone(&ctx);
            move |_| {
                let t: Arc<dyn PullThread> = Arc::clone(&ctx) as Arc<dyn PullThread>;
                Ok((BlockingIterLogic::new(t, || Ok((0..10).map(Ok))), ()))
            }
        });
        let (mut h, ()) = source(&src, 4);
        let mut all = Vec::new();
        loop {
            let (v, step) = next(&mut h).unwrap();
            all.extend(v);
            if step == Step::Done {
                break;
            }
        }
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(ctx.runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(ctx.waits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    }
}
