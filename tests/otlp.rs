//! OTLP trace export end to end: a `weir run` job with checkpoints, pointed at a collector on
//! loopback by `OTEL_EXPORTER_OTLP_ENDPOINT`, delivers its `run` span and one `checkpoint` span
//! per completed checkpoint (ids 1, 2, ... as children of the run) under the service name it
//! was given, flushed when the job ends on SIGTERM; without the variable nothing is sent.
#![cfg(feature = "otlp")]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_weir");

/// A collector on loopback keeping every export request it receives.
struct Collector {
    url: String,
    got: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    _rt: tokio::runtime::Runtime,
}

fn collector() -> Collector {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let g = Arc::clone(&g);
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("an OTLP request");
                g.lock().unwrap().push(req);
                ""
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    Collector { url, got, _rt: rt }
}

fn attr(s: &Span, key: &str) -> Option<Value> {
    s.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.clone())
}

/// Runs the ticker with checkpoints every 100 ms until `checkpoints` are complete, then
/// SIGTERM; returns the exit code.
fn ticker(home: &std::path::Path, env: &[(&str, &str)], checkpoints: usize) -> Option<i32> {
    let state = home.join("state");
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--example", "ticker", "--state-dir"])
        .arg(&state)
        .args(["--checkpoint-interval", "100ms"])
        .env("WEIR_HOME", home)
        // The log filter quiets stderr; the export still gets the `info` spans.
        .env("WEIR_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let complete = |d: &std::path::Path| {
        std::fs::read_dir(d).map_or(0, |rd| {
            rd.filter(|e| e.as_ref().is_ok_and(|e| e.path().join("MANIFEST").exists()))
                .count()
        })
    };
    while complete(&state) < checkpoints {
        assert!(Instant::now() < deadline, "no checkpoints");
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait().unwrap().code()
}

fn fresh(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("weir-otlp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_job_exports_its_run_and_checkpoint_spans_to_the_collector_and_flushes_them_at_exit() {
    let c = collector();
    let home = fresh("export");
    let code = ticker(
        &home,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", c.url.as_str()),
            ("OTEL_SERVICE_NAME", "ticker-job"),
        ],
        3,
    );
    assert_eq!(code, Some(130), "cancelled by the signal");
    let got = c.got.lock().unwrap();
    assert!(!got.is_empty(), "nothing exported");
    let mut spans: Vec<Span> = Vec::new();
    for req in got.iter() {
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref()?.value.clone());
            assert_eq!(service, Some(Value::StringValue("ticker-job".into())));
            for ss in &rs.scope_spans {
                spans.extend(ss.spans.iter().cloned());
            }
        }
    }
    let runs: Vec<&Span> = spans.iter().filter(|s| s.name == "run").collect();
    assert_eq!(
        runs.len(),
        1,
        "one run span: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let run = runs[0];
    assert_eq!(attr(run, "job"), Some(Value::StringValue("ticker".into())));
    let mut ids: Vec<i64> = spans
        .iter()
        .filter(|s| s.name == "checkpoint")
        .map(|s| {
            assert_eq!(
                s.parent_span_id, run.span_id,
                "a checkpoint is a child of its run"
            );
            assert_eq!(s.trace_id, run.trace_id);
            match attr(s, "id") {
                Some(Value::IntValue(i)) => i,
                // A u64 field goes out as its decimal string.
                Some(Value::StringValue(i)) => i.parse().unwrap(),
                other => panic!("checkpoint id {other:?}"),
            }
        })
        .collect();
    ids.sort_unstable();
    assert!(ids.len() >= 3, "{ids:?}");
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn without_an_endpoint_nothing_is_sent() {
    let c = collector();
    let home = fresh("none");
    // The collector's address is known to the test only: nothing may reach it.
    let code = ticker(&home, &[("OTEL_SERVICE_NAME", "ticker-job")], 1);
    assert_eq!(code, Some(130));
    std::thread::sleep(Duration::from_millis(200));
    assert!(c.got.lock().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&home);
}
