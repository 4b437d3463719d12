//! The Python dispatcher: the one place where Python stages run user code.
//!
//! Every island of a Python run is polled on the run's dispatcher (`ExecutorId::PYTHON`): a
//! Python thread, the caller of `run()` (or a dedicated thread for `start()` / `run_async()`),
//! which polls the island tasks that are ready back to back while holding the GIL and releases
//! it only while none is. Stages find the dispatcher through the run's [`RunCtx`]
//! service (`StageInfo::services`); the GIL is never taken on a tokio worker.

use futures::future::BoxFuture;
use pyo3::prelude::*;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};
use weir_graph::{StageError, StageInfo};

/// A message to the dispatcher.
pub enum Msg {
    /// Poll this island task (it was spawned here or woken).
    Poll(Arc<Task>),
    /// The run is over: stop serving.
    Stop,
}

/// An island task of the run, polled on the serving thread with the GIL held.
pub struct Task {
    fut: Mutex<Option<BoxFuture<'static, ()>>>,
    queued: AtomicBool,
    tx: Sender<Msg>,
    name: Arc<str>,
    busy: Busy,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Msg::Poll(Arc::clone(self)));
        }
    }
}

impl Task {
    /// Polls the task once (on the serving thread); a finished task drops its future.
    fn poll(self: Arc<Self>) {
        self.queued.store(false, Ordering::Release);
        let Ok(mut slot) = self.fut.lock() else {
            return;
        };
        let Some(fut) = slot.as_mut() else { return };
        let waker = Waker::from(Arc::clone(&self));
        let mut cx = Context::from_waker(&waker);
        // While polled, the island is what the serving thread is busy with (a run that cannot
        // stop names it).
        if let Ok(mut b) = self.busy.lock() {
            *b = Some((Arc::clone(&self.name), Instant::now(), current_thread()));
        }
        if fut.as_mut().poll(&mut cx).is_ready() {
            *slot = None;
        }
        if let Ok(mut b) = self.busy.lock() {
            *b = None;
        }
    }
}

/// Handles one message on the serving thread (which holds the GIL: `_py` proves it); `false`
/// on `Stop`.
fn handle(_py: Python<'_>, msg: Msg) -> bool {
    match msg {
        Msg::Poll(task) => ON_DISPATCHER.with(|d| {
            let was = d.replace(true);
            task.poll();
            d.set(was);
        }),
        Msg::Stop => return false,
    }
    true
}

/// Whether the calling thread is polling island tasks of a Python run right now (it holds the
/// GIL). The GIL is never taken on a tokio worker: code reaching Python from an island checks
/// this (see [`crate::gil`]).
pub fn on_dispatcher() -> bool {
    ON_DISPATCHER.with(|d| d.get())
}

impl weir_engine::IslandExecutor for Dispatcher {
    fn spawn(&self, name: &str, task: BoxFuture<'static, ()>) {
        let t = Arc::new(Task {
            fut: Mutex::new(Some(task)),
            queued: AtomicBool::new(true),
            tx: self.tx.clone(),
            name: Arc::from(name),
            busy: Arc::clone(&self.busy),
        });
        let _ = self.tx.send(Msg::Poll(t));
    }
}

/// The island the serving thread is polling: its name, since when, and the thread.
pub type Busy = Arc<Mutex<Option<(Arc<str>, Instant, Arc<str>)>>>;

/// The sending side of a run's dispatcher, shared by every Python stage of the run.
pub struct Dispatcher {
    tx: Sender<Msg>,
    busy: Busy,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dispatcher")
    }
}

/// How long the serving thread sleeps between signal checks when idle.
const POLL: Duration = Duration::from_millis(20);

impl Dispatcher {
    /// A new dispatcher and the queue its serving thread reads.
    pub fn new() -> (Arc<Self>, Receiver<Msg>) {
        let (tx, rx) = channel();
        let busy = Arc::new(Mutex::new(None));
        (Arc::new(Self { tx, busy }), rx)
    }

    /// The island the serving thread is polling, for how long, and the thread's name (a run
    /// that cannot stop names the stage stuck in user code).
    pub fn busy(&self) -> Option<(String, Duration, String)> {
        let b = self.busy.lock().ok()?;
        b.as_ref()
            .map(|(s, t, th)| (s.to_string(), t.elapsed(), th.to_string()))
    }

    /// Tells the serving thread that the run is over.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

/// The queue of a run, served by exactly one thread at a time.
pub struct Queue {
    rx: Mutex<Option<Receiver<Msg>>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queue")
    }
}

impl Queue {
    /// Wraps the receiving side.
    pub fn new(rx: Receiver<Msg>) -> Self {
        Self {
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Runs the jobs queued right now on this thread (for a test that drives a run on a virtual
    /// clock instead of serving it); returns how many ran. Nothing runs while another thread
    /// serves the queue.
    pub fn run_ready(&self, py: Python<'_>) -> usize {
        let rt = crate::run::runtime().ok().map(|r| r.handle());
        let _rt = rt.as_ref().map(|h| h.enter());
        let Ok(guard) = self.rx.lock() else { return 0 };
        let Some(rx) = guard.as_ref() else { return 0 };
        let mut n = 0;
        while let Ok(msg) = rx.try_recv() {
            if !matches!(msg, Msg::Stop) {
                handle(py, msg);
                n += 1;
            }
        }
        n
    }

    /// Serves jobs until the run stops. `on_interrupt` is called once when a signal handler raises
    /// (Ctrl-C): it should cancel the run; serving goes on until the run has wound down and the
    /// exception is then returned. Returns at once if another thread already served the queue.
    pub fn serve(&self, py: Python<'_>, on_interrupt: &dyn Fn()) -> PyResult<()> {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut g| g.take()) else {
            return Ok(());
        };
        serving_thread(py);
        // Island tasks polled here use the run's timers.
        let rt = crate::run::runtime().ok().map(|r| r.handle());
        let _rt = rt.as_ref().map(|h| h.enter());
        let mut interrupted: Option<PyErr> = None;
        let mut last_check = Instant::now();
        loop {
            let msg = match rx.try_recv() {
                Ok(m) => Some(m),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let (r, back) = py.detach(move || (rx.recv_timeout(POLL), rx));
                    rx = back;
                    match r {
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            if let Some(msg) = msg {
                if !handle(py, msg) {
                    break;
                }
                if let Some(e) = take_interrupt()
                    && interrupted.is_none()
                {
                    interrupted = Some(e);
                    on_interrupt();
                }
            }
            if interrupted.is_none() && last_check.elapsed() >= POLL {
                last_check = Instant::now();
                if let Err(e) = py.check_signals() {
                    interrupted = Some(e);
                    on_interrupt();
                }
            }
        }
        // Drop whatever is left (objects inside jobs) while the GIL is held.
        while rx.try_recv().is_ok() {}
        match interrupted {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Records a `KeyboardInterrupt` raised inside user code on this (serving) thread.
pub fn note_interrupt(err: PyErr) {
    INTERRUPT.with(|i| {
        let mut i = i.borrow_mut();
        if i.is_none() {
            *i = Some(err);
        }
    });
}

/// The calling thread's name as [`serving_thread`] recorded it (without the GIL), else its id.
fn current_thread() -> Arc<str> {
    SERVING_THREAD.with(|c| {
        c.get()
            .map(Arc::clone)
            .unwrap_or_else(|| Arc::from(format!("{:?}", std::thread::current().id()).as_str()))
    })
}

/// The calling thread's Python name and id, looked up once per thread.
fn serving_thread(py: Python<'_>) -> Arc<str> {
    SERVING_THREAD.with(|c| {
        Arc::clone(c.get_or_init(|| {
            let name = py
                .import("threading")
                .and_then(|t| t.call_method0("current_thread"))
                .and_then(|t| t.getattr("name"))
                .and_then(|n| n.extract::<String>())
                .unwrap_or_else(|_| "unnamed".to_owned());
            Arc::from(format!("'{name}' ({:?})", std::thread::current().id()).as_str())
        }))
    })
}

fn take_interrupt() -> Option<PyErr> {
    INTERRUPT.with(|i| i.borrow_mut().take())
}

/// What Python stages need from the run that materializes them, registered as a service of
/// the run (`StageInfo::services`).
pub struct RunCtx {
    /// The run's dispatcher.
    pub dispatcher: Arc<Dispatcher>,
    /// The asyncio event loop that runs `async def` functions of the run.
    pub aio_loop: Option<Arc<Py<PyAny>>>,
}

thread_local! {
    /// This thread's Python name, as errors about a call stuck on it report it.
    static SERVING_THREAD: std::cell::OnceCell<Arc<str>> = const { std::cell::OnceCell::new() };
    static INTERRUPT: RefCell<Option<PyErr>> = const { RefCell::new(None) };
    static ON_DISPATCHER: Cell<bool> = const { Cell::new(false) };
}

impl RunCtx {
    /// The context of the Python run materializing the stage `info` describes (a run-scoped
    /// service of the run and of every sub-graph it starts).
    pub fn of(info: &StageInfo) -> Result<Arc<RunCtx>, StageError> {
        info.services.get::<RunCtx>().ok_or_else(|| {
            StageError::internal(format!(
                "the Python stage '{}' can only run inside a weir Python run",
                info.path
            ))
        })
    }
}
