//! A standalone runtime for programs that do not bring their own tokio runtime.

use std::future::Future;

/// A multi-threaded tokio runtime sized to the machine, for running graphs standalone.
#[derive(Debug)]
pub struct Runtime {
    rt: tokio::runtime::Runtime,
}

impl Runtime {
    /// A runtime with one worker thread per available core.
    pub fn new() -> std::io::Result<Self> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_threads(n)
    }

    /// A runtime with `threads` worker threads.
    pub fn with_threads(threads: usize) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("weir-worker")
            // Timers always; the I/O driver too when a crate of the build (the TCP
            // connectors) enables tokio's networking.
            .enable_all()
            .build()?;
        Ok(Self { rt })
    }

    /// Runs a future to completion on this runtime (graphs started inside run here).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A handle to spawn or materialize onto this runtime.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }
}
