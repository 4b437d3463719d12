//! The clock stages read time from; the engine supplies a real or a virtual one.

use futures::future::BoxFuture;
use std::time::Duration;

/// A monotonic clock with timers; `now` is the time since the clock started.
pub trait Clock: Send + Sync + 'static {
    /// Time since the clock's epoch.
    fn now(&self) -> Duration;
    /// A future that completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: Duration) -> BoxFuture<'static, ()>;
    /// A future that completes after `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        self.sleep_until(self.now() + d)
    }
    /// Whether the engine should hand every task of a run to [`Clock::track`] (a virtual clock
    /// that needs to know when the run is idle); real clocks say no and cost nothing.
    fn tracks_tasks(&self) -> bool {
        false
    }
    /// Wraps a task of the run so the clock can observe when it runs and when it waits.
    fn track(&self, task: BoxFuture<'static, ()>) -> BoxFuture<'static, ()> {
        task
    }
    /// Marks work a stage runs outside the run's tasks (on a thread of its own) as going on
    /// until the guard drops, so a clock that tracks tasks does not take the run for idle
    /// while a task waits for that work; real clocks return `None`.
    fn busy(&self) -> Option<Box<dyn Send + Sync>> {
        None
    }
}
