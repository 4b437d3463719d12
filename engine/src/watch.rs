//! Where each island is: the stage it is calling and the thread that polls it, so a run that
//! cannot stop after cancellation names the stuck stage and thread instead of waiting forever.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

/// One island subtask as seen from outside: its stages, the one it is in, and its thread.
#[derive(Debug)]
pub(crate) struct IslandProbe {
    /// Task name (`island-3#0`).
    pub(crate) name: String,
    /// Paths of its stages, head first.
    pub(crate) stages: Vec<String>,
    /// Index into `stages` of the stage being called (chains update it per call).
    stage: AtomicUsize,
    /// Number (see [`thread_no`]) of the thread that polled the island last; 0 before any poll.
    thread: AtomicU64,
    /// Whether the island's task has ended.
    done: AtomicBool,
}

impl IslandProbe {
    /// A probe for island `name` running `stages`.
    pub(crate) fn new(name: String, stages: Vec<String>) -> Self {
        Self {
            name,
            stages,
            stage: AtomicUsize::new(0),
            thread: AtomicU64::new(0),
            done: AtomicBool::new(false),
        }
    }

    /// Records that the island is calling its `i`-th stage.
    #[inline]
    pub(crate) fn at(&self, i: usize) {
        self.stage.store(i, Ordering::Relaxed);
    }

    /// Whether the island's task has ended.
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// The path of the stage the island is in.
    pub(crate) fn stage(&self) -> &str {
        let i = self.stage.load(Ordering::Relaxed);
        self.stages
            .get(i)
            .or(self.stages.last())
            .map_or("?", String::as_str)
    }

    /// The name of the thread that polled the island last.
    pub(crate) fn thread(&self) -> String {
        let n = self.thread.load(Ordering::Relaxed);
        thread_names()
            .lock()
            .ok()
            .and_then(|m| m.get(&n).cloned())
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

fn thread_names() -> &'static Mutex<HashMap<u64, String>> {
    static NAMES: OnceLock<Mutex<HashMap<u64, String>>> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new(HashMap::new()))
}

thread_local! {
    static THREAD_NO: u64 = register_thread();
    static CURRENT: RefCell<Option<Arc<IslandProbe>>> = const { RefCell::new(None) };
}

fn register_thread() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::thread::current();
    let name = format!("{} ({:?})", t.name().unwrap_or("unnamed"), t.id());
    if let Ok(mut m) = thread_names().lock() {
        m.insert(n, name);
    }
    n
}

/// The path of the stage the island being polled on this thread is in, if any (lets work handed
/// to other threads, such as Python jobs, say which stage it belongs to).
pub fn current_stage() -> Option<String> {
    CURRENT.with(|c| c.borrow().as_ref().map(|p| p.stage().to_owned()))
}

/// Called once when a watched island ends.
type OnEnd = Box<dyn FnOnce() + Send>;

/// An island's future that keeps its probe current: the polling thread, and "ended".
pub(crate) struct Watched<F> {
    fut: Pin<Box<F>>,
    probe: Arc<IslandProbe>,
    on_end: Option<OnEnd>,
}

impl<F> Watched<F> {
    /// Watches `fut` through `probe`.
    pub(crate) fn new(fut: F, probe: Arc<IslandProbe>) -> Self {
        Self {
            fut: Box::pin(fut),
            probe,
            on_end: None,
        }
    }

    /// Calls `f` once when the island ends (completes, or its task is dropped).
    pub(crate) fn on_end(mut self, f: OnEnd) -> Self {
        self.on_end = Some(f);
        self
    }

    fn ended(&mut self) {
        self.probe.done.store(true, Ordering::Release);
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}

impl<F: Future<Output = ()>> Future for Watched<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let n = THREAD_NO.with(|n| *n);
        this.probe.thread.store(n, Ordering::Relaxed);
        let prev = CURRENT.with(|c| c.replace(Some(Arc::clone(&this.probe))));
        let r = this.fut.as_mut().poll(cx);
        CURRENT.with(|c| *c.borrow_mut() = prev);
        if r.is_ready() {
            this.ended();
        }
        r
    }
}

impl<F> Drop for Watched<F> {
    fn drop(&mut self) {
        self.ended();
    }
}
