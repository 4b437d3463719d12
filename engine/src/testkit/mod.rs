//! Test probes, virtual time and the stage conformance suite.
//!
//! [`TestSource::probe`] gives a source a test pushes into element by element; [`TestSink::probe`]
//! gives a sink that receives only what the test requests, so tests can drive a stage precisely.
//!
//! The probes are demand-exact (see `probes`):
//! - [`SinkProbe`]: `request(n)` (nothing is pulled before), `expect_next`, `expect_next_n`,
//!   `expect_complete`, `expect_error`, `expect_no_element(d)` (on the run's clock) and
//!   `expect_no_element_advancing(&VirtualClock, d)`, `next_event`, `try_next_event`,
//!   `collect_all`, `cancel`. Completion and failure arrive without demand; a failure also
//!   fails the run (its `wait()` returns it), as at any other sink.
//! - [`SourceProbe`]: `offer`/`offer_all` (aliases `send`/`send_all`), `complete`, `fail`,
//!   `expect_cancellation`, `is_cancelled`, `delivered` (elements downstream actually took) and
//!   `expect_delivered(n)`.
//!
//! [`ExactSink::probe`] is the same demand-exact sink for timing tests: it never waits, stamps
//! each signal with the clock time it arrived at, and fails the run with the failure it saw.
//! With a [`VirtualClock`] (which knows when the run is idle: `settle`, `run_for`) every timer
//! fires at its exact deadline.

pub(crate) mod activity;
mod conformance;
mod exact_sink;
mod probes;

pub use crate::clock::VirtualClock;
pub use conformance::{ConformanceReport, check_flow};
pub use exact_sink::{ExactProbe, ExactSink, Observed, Stamped};
pub use probes::{ProbeEvent, SinkProbe, SourceProbe, TestSink, TestSource};
