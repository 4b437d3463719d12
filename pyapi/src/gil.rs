//! Taking the GIL from Rust: only ever on the Python dispatcher (or a Python thread), never on
//! a tokio worker, which would stall every island scheduled there behind Python.

use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many times the GIL was taken on a tokio worker thread (an invariant violation, checked
/// by the test suite through `_native._gil_on_workers()`).
static ON_WORKERS: AtomicU64 = AtomicU64::new(0);

/// Runs `f` with the GIL; records (and warns about) a call from a tokio worker thread.
pub fn with<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    if on_worker() {
        ON_WORKERS.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("the GIL was taken on a tokio worker thread");
    }
    Python::attach(f)
}

thread_local! {
    /// Whether this thread is a worker of the weir runtime (a thread's name never changes, so
    /// it is looked up once per thread: `with` runs per element in keyed state).
    static ON_WORKER: bool = std::thread::current()
        .name()
        .is_some_and(|n| n == crate::run::WORKER_THREAD);
}

/// Whether the calling thread is a worker of the weir runtime.
fn on_worker() -> bool {
    ON_WORKER.with(|w| *w)
}

/// How many times the GIL was taken on a tokio worker thread since the module was loaded.
#[pyfunction]
pub fn _gil_on_workers() -> u64 {
    ON_WORKERS.load(Ordering::Relaxed)
}
