//! Restart wrappers: re-materialize a source, flow or sink after it completes or fails, with
//! exponentially growing delays on the run's clock.
//!
//! [`RestartSource`], [`RestartFlow`] and [`RestartSink`] start the wrapped blueprint inside the
//! running graph (through the stage's sub-materializer) and start a fresh copy after a backoff
//! when it ends; `with_backoff` restarts after completion and failure, `on_failures_with_backoff`
//! after failure only. The delay before restart `k` (from 0) is
//! `min(max_backoff, min_backoff * 2^k) * (1 + r * random_factor)` with `r` uniform in `[0, 1)`;
//! the restart count resets when an incarnation ran longer than `max_restarts_within`. Once
//! `max_restarts` restarts happened within that window the wrapper completes (the wrapped stage
//! completed) or fails with the wrapped stage's error. Elements in flight inside an incarnation
//! that ends are lost, as in Akka.

mod backoff;
mod driver;
mod flow;
mod sink;
mod source;

pub use flow::RestartFlow;
pub use sink::RestartSink;
pub use source::RestartSource;

pub(crate) use backoff::Backoff;

use std::time::Duration;
use weir_graph::GraphError;

/// Backoff parameters of the restart wrappers.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartSettings {
    /// Delay before the first restart.
    pub min_backoff: Duration,
    /// Upper bound of the exponential delay (before the random factor).
    pub max_backoff: Duration,
    /// Each delay is multiplied by `1 + r * random_factor`, `r` uniform in `[0, 1)`.
    pub random_factor: f64,
    /// Restarts allowed within `max_restarts_within`; `None` restarts forever.
    pub max_restarts: Option<usize>,
    /// The window of `max_restarts`: an incarnation that ran longer resets the count.
    pub max_restarts_within: Duration,
}

impl RestartSettings {
    /// Settings with unlimited restarts (the window defaults to `min_backoff`, as in Akka);
    /// rejects `min_backoff > max_backoff` and a negative or non-finite `random_factor`.
    pub fn new(
        min_backoff: Duration,
        max_backoff: Duration,
        random_factor: f64,
    ) -> Result<Self, GraphError> {
        let bad = |reason: String| GraphError::InvalidStage {
            node: "restart".to_owned(),
            reason,
        };
        if min_backoff > max_backoff {
            return Err(bad(format!(
                "min_backoff {min_backoff:?} is greater than max_backoff {max_backoff:?}"
            )));
        }
        if !random_factor.is_finite() || random_factor < 0.0 {
            return Err(bad(format!(
                "random_factor must be a finite number >= 0, got {random_factor}"
            )));
        }
        Ok(Self {
            min_backoff,
            max_backoff,
            random_factor,
            max_restarts: None,
            max_restarts_within: min_backoff,
        })
    }

    /// Allows at most `count` restarts within `within`.
    pub fn with_max_restarts(mut self, count: usize, within: Duration) -> Self {
        self.max_restarts = Some(count);
        self.max_restarts_within = within;
        self
    }
}

/// Which ends of the wrapped stage are followed by a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartOn {
    /// Completion and failure.
    Always,
    /// Failure only; completion completes the wrapper.
    Failures,
}

/// Waits `delay` on `clock`; false when `closed` became ready first (the wrapper must stop).
pub(crate) async fn wait_backoff(
    clock: &dyn weir_graph::Clock,
    delay: Duration,
    mut closed: impl FnMut(&mut std::task::Context<'_>) -> std::task::Poll<()>,
) -> bool {
    let mut sleep = clock.sleep(delay);
    std::future::poll_fn(|cx| {
        if closed(cx).is_ready() {
            return std::task::Poll::Ready(false);
        }
        sleep.as_mut().poll(cx).map(|()| true)
    })
    .await
}
