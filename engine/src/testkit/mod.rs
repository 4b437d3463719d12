//! Test probes and the stage conformance suite.
//!
//! [`TestSource::probe`] gives a source a test pushes into element by element; [`TestSink::probe`]
//! gives a sink that receives only what the test requests, so tests can drive a stage precisely.

mod conformance;
mod probes;

pub use crate::clock::VirtualClock;
pub use conformance::{ConformanceReport, check_flow};
pub use probes::{ProbeEvent, SinkProbe, SourceProbe, TestSink, TestSource};
