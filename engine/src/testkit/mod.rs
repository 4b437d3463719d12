//! Test probes, virtual time and the stage conformance suite.
//!
//! [`TestSource::probe`] gives a source a test pushes into element by element; [`TestSink::probe`]
//! gives a sink that receives only what the test requests, so tests can drive a stage precisely.
//! [`ExactSink::probe`] reads its input only on demand and stamps each signal with the clock
//! time; with a [`VirtualClock`] (which knows when the run is idle) timing tests are exact.

pub(crate) mod activity;
mod conformance;
mod exact_sink;
mod probes;

pub use crate::clock::VirtualClock;
pub use conformance::{ConformanceReport, check_flow};
pub use exact_sink::{ExactProbe, ExactSink, Observed, Stamped};
pub use probes::{ProbeEvent, SinkProbe, SourceProbe, TestSink, TestSource};
