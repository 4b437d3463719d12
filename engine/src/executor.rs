//! Executors other than the tokio workers that islands can run on.

use futures::future::BoxFuture;

/// Runs island tasks on threads of its own (the Python dispatcher runs them on the thread that
/// serves the run, holding the GIL while it polls). Registered on the
/// [`Materializer`](crate::Materializer) under an [`ExecutorId`](weir_graph::ExecutorId).
///
/// A task is polled until it completes; its waker may be called from any thread. Tasks that
/// use tokio timers are polled with the run's runtime entered by the executor's thread.
pub trait IslandExecutor: Send + Sync + 'static {
    /// Starts `task` (the island named `name`); it must eventually be polled to completion or
    /// dropped when the executor shuts down.
    fn spawn(&self, name: &str, task: BoxFuture<'static, ()>);
}
