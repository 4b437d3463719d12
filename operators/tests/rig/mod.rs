//! A probe rig for the timing tests: probe source -> flow -> exact probe sink on a virtual
//! clock, and signals as the tests compare them (with the virtual ms each arrived at).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{
    ExactProbe, ExactSink, Observed, SourceProbe, TestSource, VirtualClock,
};
use weir_graph::{Clock as _, ErrorKind, Flow, Keep, StageError};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A signal as a test compares it: the element, completion, or the error's kind and message.
#[derive(Debug, Clone, PartialEq)]
pub enum Sig<T> {
    N(T),
    Complete,
    Failed(ErrorKind, String),
}
pub use Sig::{Complete, N};

/// Probe source -> `flow` -> exact probe sink on a virtual clock.
pub struct Rig<I, O> {
    pub src: SourceProbe<I>,
    pub sink: ExactProbe<O>,
    pub clock: VirtualClock,
    pub handle: RunHandle,
}

pub fn rig<I: Send + 'static, O: Send + 'static>(flow: Flow<I, O>) -> Rig<I, O> {
    let clock = VirtualClock::new();
    let g = TestSource::probe::<I>()
        .via(flow)
        .to_mat(ExactSink::probe::<O>(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((src, sink), handle) = m.materialize(&g).expect("materializes");
    Rig {
        src,
        sink,
        clock,
        handle,
    }
}

impl<I: Send + 'static, O: Send + Clone + 'static> Rig<I, O> {
    /// Runs the virtual clock to `t` ms after the start.
    pub async fn at(&self, t: u64) {
        let now = self.clock.now();
        self.clock.run_for(ms(t).saturating_sub(now)).await;
    }
    /// The run's outcome (a real-time bound only as a safety net).
    pub async fn outcome(self) -> Result<(), StageError> {
        let r = tokio::time::timeout(Duration::from_secs(10), self.handle.wait()).await;
        r.expect("the run ends")
    }
    /// Asserts that the run ends successfully.
    pub async fn completes(self) {
        self.outcome().await.expect("the run completes");
    }
    /// Asserts that the run ends with a failure of `kind`.
    pub async fn fails(self, kind: ErrorKind) {
        let e = self.outcome().await.expect_err("the run fails");
        assert_eq!(e.kind(), kind, "{e}");
    }
    /// Everything the sink received so far, with the ms it arrived at.
    pub fn timeline(&self) -> Vec<(u64, Sig<O>)> {
        timeline(&self.sink)
    }
}

/// Everything `sink` received so far, with the ms it arrived at.
pub fn timeline<O: Send + 'static>(sink: &ExactProbe<O>) -> Vec<(u64, Sig<O>)> {
    sink.drain()
        .into_iter()
        .map(|(t, o)| {
            let s = match o {
                Observed::Next(x) => N(x),
                Observed::Complete => Complete,
                Observed::Error(e) => Sig::Failed(e.kind(), e.message().to_string()),
            };
            (t.as_millis() as u64, s)
        })
        .collect()
}
