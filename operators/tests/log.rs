//! `log` / `log_at` through `tracing`: elements, completion and failure are logged, elements
//! pass unchanged, each line inside its run's span. One test per process: it installs the
//! global subscriber (and the run ids count from 1).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{Sink, Source};
use weir_operators::prelude::*;

mod support;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn take(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().expect("lock"));
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn log_at_logs_elements_completion_and_failure_at_their_levels() {
    let buf = Buf::default();
    let w = buf.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .without_time()
        .with_writer(move || w.clone())
        .init();

    let f = Source::from_iter(vec![1u32, 2])
        .log_at("nums", tracing::Level::INFO)
        .run_with(Sink::collect())
        .expect("starts");
    assert_eq!(within(f).await.expect("completes"), vec![1, 2]);
    assert_eq!(
        buf.take(),
        vec![
            " INFO run{id=1 job=run-1}: weir::log: element: 1 name=nums stage=log#1",
            " INFO run{id=1 job=run-1}: weir::log: element: 2 name=nums stage=log#1",
            " INFO run{id=1 job=run-1}: weir::log: upstream finished name=nums stage=log#1",
        ]
    );

    // Below the subscriber's level: nothing is logged, elements still pass.
    let f = Source::from_iter(vec![3u32])
        .log("quiet")
        .run_with(Sink::collect())
        .expect("starts");
    assert_eq!(within(f).await.expect("completes"), vec![3]);
    assert_eq!(buf.take(), Vec::<String>::new());

    // A failure is logged at ERROR whatever the element level.
    let f = support::failing(vec![5u32], "wire cut")
        .log("fails")
        .run_with(Sink::collect())
        .expect("starts");
    assert_eq!(within(f).await.expect_err("fails").message(), "wire cut");
    assert_eq!(
        buf.take(),
        vec![
            "ERROR run{id=3 job=run-3}: weir::log: upstream failed: stage 'failing#0' failed: wire cut name=fails stage=log#1"
        ]
    );
}
