//! The job HTTP API against running jobs: every endpoint with its exact JSON, tokens, unknown
//! jobs, cancel, savepoint and restore, the job file and the default listener, the errors of a
//! supervised run and the stall of a blocked one.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::{CheckpointConfig, RunView, VirtualClock};
use weir_graph::{Directive, Keep, RunnableGraph, StageError, StateCodec, Supervision};
use weir_operators::prelude::*;
use weir_operators::simple;
use weir_ops::{OpsConfig, OpsServer, Registry, RegistryConfig};

fn server(home: Option<std::path::PathBuf>, metrics_port: Option<u16>) -> OpsServer {
    let reg = Registry::new(RegistryConfig::default());
    reg.observe();
    weir_ops::start(OpsConfig {
        job_files: home.is_some(),
        weir_home: home,
        metrics_port,
        registry: Some(reg),
        sample_interval: Duration::from_millis(50),
        ..OpsConfig::default()
    })
    .unwrap()
}

/// counting → double (map) → multiples of 3 (filter) → a sink collecting into `out`.
fn job(gate: &Arc<Gate>, out: &Arc<Mutex<Vec<u64>>>) -> RunnableGraph<()> {
    let out = Arc::clone(out);
    counting("numbers", gate)
        .via(simple::map(|x: u64| 2 * x))
        .via(simple::filter(|x: &u64| x.is_multiple_of(3)))
        .to(Sink::for_each(move |x| out.lock().unwrap().push(x)))
}

fn obj_keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn keys(ks: &[&str]) -> BTreeSet<String> {
    ks.iter().map(|s| s.to_string()).collect()
}

fn view_of(s: &OpsServer, name: &str) -> RunView {
    s.registry().find(name).expect("the run is registered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_serves_a_running_job_and_cancel_ends_it() {
    let home = dir("api-home");
    let srv = server(Some(home.clone()), None);
    let addr = srv.addr();
    assert_eq!(
        addr.ip(),
        std::net::Ipv4Addr::LOCALHOST,
        "127.0.0.1 by default"
    );
    assert_ne!(addr.port(), 0);
    assert_eq!(srv.url(), format!("http://{addr}"));
    assert_eq!(
        srv.ui_url(),
        format!("http://{addr}/#token={}", srv.token())
    );

    // The job file: 0600, the url, token and pid.
    let jf = srv.job_file().unwrap().to_path_buf();
    assert_eq!(
        jf,
        home.join("jobs")
            .join(format!("{}.json", std::process::id()))
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&jf).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let listed = weir_ops::jobfile::list_in(&home).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].pid, std::process::id());
    assert_eq!(listed[0].url, srv.url());
    assert_eq!(listed[0].token, srv.token());

    let gate = Arc::new(Gate::default());
    let out = Arc::new(Mutex::new(Vec::new()));
    let ((), handle) = Materializer::new()
        .with_name("api-job")
        .materialize(&job(&gate, &out))
        .unwrap();
    gate.open(30);
    until("30 numbers", || out.lock().unwrap().len() == 10).await;
    assert_eq!(
        *out.lock().unwrap(),
        (0..30u64)
            .map(|x| 2 * x)
            .filter(|x| x.is_multiple_of(3))
            .collect::<Vec<_>>()
    );
    let view = view_of(&srv, "api-job");
    let id = view.id();
    let started = weir_ops_started_ms(&view);

    // The list.
    let r = http(addr, "GET", "/api/v1/jobs", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json");
    let list = r.json();
    let mine: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["id"] == json!(id))
        .collect();
    assert_eq!(
        mine,
        vec![&json!({"id": id, "name": "api-job", "state": "running",
                     "started_at_ms": started, "pid": std::process::id()})]
    );

    // The detail, by number and by name.
    until("a sample with every count", || {
        let latest = srv.registry().latest(id);
        latest.len() == 4 && latest.values().any(|s| s.elements_out == 30)
    })
    .await;
    let by_id = http(addr, "GET", &format!("/api/v1/jobs/{id}"), None, None)
        .await
        .json();
    let by_name = http(addr, "GET", "/api/v1/jobs/api-job", None, None)
        .await
        .json();
    assert_eq!(by_id["id"], by_name["id"]);
    assert_eq!(
        obj_keys(&by_id),
        keys(&[
            "id",
            "name",
            "state",
            "started_at_ms",
            "pid",
            "error",
            "uptime_ms",
            "ended_at_ms",
            "live_tasks",
            "stages",
            "checkpoints",
            "watermark_lag_ms",
            "stall"
        ])
    );
    assert_eq!(by_id["state"], "running");
    assert_eq!(by_id["error"], Value::Null);
    assert_eq!(by_id["ended_at_ms"], Value::Null);
    assert_eq!(by_id["checkpoints"], Value::Null);
    assert_eq!(by_id["stall"], Value::Null);
    assert!(by_id["uptime_ms"].as_u64().unwrap() > 0);
    let stages = by_id["stages"].as_array().unwrap();
    let counts: Vec<(String, u64, u64, u64)> = stages
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["subtask"].as_u64().unwrap(),
                s["elements_in"].as_u64().unwrap(),
                s["elements_out"].as_u64().unwrap(),
            )
        })
        .collect();
    let paths: Vec<String> = counts.iter().map(|c| c.0.clone()).collect();
    let find = |prefix: &str| {
        counts
            .iter()
            .find(|c| c.0.starts_with(prefix))
            .cloned()
            .unwrap_or_else(|| panic!("no stage {prefix} in {paths:?}"))
    };
    assert_eq!(stages.len(), 4);
    assert_eq!(find("numbers").3, 30);
    assert_eq!((find("map").2, find("map").3), (30, 30));
    assert_eq!((find("filter").2, find("filter").3), (30, 10));
    assert_eq!(find("for_each").2, 10);
    let stage_keys = keys(&[
        "path",
        "stage_id",
        "subtask",
        "island",
        "elements_in",
        "elements_out",
        "batches_in",
        "batches_out",
        "queue_depth",
        "queue_peak",
        "queue_peak_bytes",
        "queue_capacity",
        "bytes_in",
        "bytes_out",
        "busy_ns",
        "backpressured_ns",
        "idle_ns",
        "restarts",
        "failures",
        "dead_letters",
        "watermark_ms",
        "in_rate",
        "out_rate",
        "busy",
        "backpressured",
        "idle",
    ]);
    for s in stages {
        assert_eq!(obj_keys(s), stage_keys);
        assert_eq!(s["stage_id"].as_str().unwrap().len(), 16);
        for r in ["busy", "backpressured", "idle"] {
            let x = s[r].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{r} {x}");
        }
    }
    // With the history: the samples of each subtask, newest last.
    let h = http(
        addr,
        "GET",
        &format!("/api/v1/jobs/{id}?history=true"),
        None,
        None,
    )
    .await
    .json();
    for s in h["stages"].as_array().unwrap() {
        let samples = s["history"].as_array().unwrap();
        assert!(!samples.is_empty());
        assert_eq!(
            obj_keys(&samples[0]),
            keys(&[
                "at_ms",
                "interval_ms",
                "elements_in",
                "elements_out",
                "in_rate",
                "out_rate",
                "busy",
                "backpressured",
                "idle"
            ])
        );
    }
    let bad = http(
        addr,
        "GET",
        "/api/v1/jobs/api-job?history=maybe",
        None,
        None,
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("history"));

    // The plan: every stage in an island, the engine's renderings.
    let plan = http(addr, "GET", &format!("/api/v1/jobs/{id}/plan"), None, None)
        .await
        .json();
    assert_eq!(
        obj_keys(&plan),
        keys(&["id", "islands", "edges", "mermaid", "dot"])
    );
    let p = view.plan().unwrap();
    assert_eq!(plan["mermaid"], json!(p.to_mermaid()));
    let dot = plan["dot"].as_str().unwrap();
    assert!(dot.starts_with("digraph weir {\n"), "{dot}");
    let mut plan_paths: Vec<String> = plan["islands"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["stages"].as_array().unwrap().clone())
        .map(|s| s["path"].as_str().unwrap().to_owned())
        .collect();
    plan_paths.sort();
    let mut metric_paths = paths.clone();
    metric_paths.sort();
    assert_eq!(plan_paths, metric_paths);
    assert_eq!(plan["islands"].as_array().unwrap().len(), p.islands.len());
    for isl in plan["islands"].as_array().unwrap() {
        assert_eq!(
            obj_keys(isl),
            keys(&["id", "kind", "parallelism", "executor", "stages"])
        );
        for s in isl["stages"].as_array().unwrap() {
            assert_eq!(
                obj_keys(s),
                keys(&["node", "name", "path", "uid", "parallelism"])
            );
        }
    }
    assert_eq!(plan["edges"].as_array().unwrap().len(), p.edges.len());
    for e in plan["edges"].as_array().unwrap() {
        assert_eq!(
            obj_keys(e),
            keys(&[
                "from",
                "to",
                "from_stage",
                "to_stage",
                "kind",
                "buffer_rows",
                "on_demand"
            ])
        );
    }

    // Checkpoints and errors of a run without checkpoints.
    let ck = http(
        addr,
        "GET",
        &format!("/api/v1/jobs/{id}/checkpoints"),
        None,
        None,
    )
    .await;
    assert_eq!(ck.status, 200);
    assert_eq!(
        ck.json(),
        json!({"id": id, "enabled": false, "latest_completed": null, "restored": null,
               "totals": {"completed": 0, "failed": 0, "skipped": 0}, "history": [],
               "completed": [], "failed": [], "skipped": [], "started_empty": []})
    );
    let errs = http(
        addr,
        "GET",
        &format!("/api/v1/jobs/{id}/errors"),
        None,
        None,
    )
    .await;
    assert_eq!(errs.status, 200);
    assert_eq!(errs.json(), json!({"id": id, "errors": []}));

    // Metrics, UI assets, unknown paths and jobs.
    let m = http(addr, "GET", "/metrics", None, None).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.content_type, weir_ops::server::METRICS_CONTENT_TYPE);
    assert!(m.body.contains("api-job"), "{}", m.body);
    assert!(m.body.ends_with("# EOF\n"));
    let ui = http(addr, "GET", "/", None, None).await;
    assert_eq!(
        (ui.status, ui.content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(ui.body.contains("<script src=\"/app.js\"></script>"));
    let js = http(addr, "GET", "/app.js", None, None).await;
    assert_eq!(
        (js.status, js.content_type.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    let css = http(addr, "GET", "/style.css", None, None).await;
    assert_eq!(
        (css.status, css.content_type.as_str()),
        (200, "text/css; charset=utf-8")
    );
    let nf = http(addr, "GET", "/api/v1/nothing", None, None).await;
    assert_eq!(
        (nf.status, nf.json()),
        (404, json!({"error": "no such endpoint"}))
    );
    let wrong = http(
        addr,
        "GET",
        &format!("/api/v1/jobs/{id}/cancel"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.json()),
        (
            405,
            json!({"error": "method not allowed (see docs/ops-api.md)"})
        )
    );
    for path in ["", "/plan", "/checkpoints", "/errors"] {
        let r = http(addr, "GET", &format!("/api/v1/jobs/nope{path}"), None, None).await;
        assert_eq!(
            (r.status, r.json()),
            (404, json!({"error": "no job \"nope\""})),
            "{path}"
        );
    }

    // Mutating calls: 401 without or with a wrong token (before looking the job up), 404 for
    // an unknown job, 409 for a savepoint without checkpoints, 400 for a bad body.
    let cancel = format!("/api/v1/jobs/{id}/cancel");
    let sp = format!("/api/v1/jobs/{id}/savepoint");
    let body = r#"{"dir": "/tmp/never-written"}"#;
    for (path, token) in [
        (cancel.as_str(), None),
        (cancel.as_str(), Some("wrong")),
        (sp.as_str(), None),
        (sp.as_str(), Some("wrong")),
        ("/api/v1/jobs/nope/cancel", None),
    ] {
        let r = http(addr, "POST", path, token, Some(body)).await;
        assert_eq!(r.status, 401, "{path} {token:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("Bearer"));
    }
    let tok = Some(srv.token());
    let r = http(addr, "POST", "/api/v1/jobs/nope/cancel", tok, None).await;
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"error": "no job \"nope\""}))
    );
    let r = http(addr, "POST", &sp, tok, Some(body)).await;
    assert_eq!(
        (r.status, r.json()),
        (
            409,
            json!({"error": format!(
                "job \"{id}\" runs without checkpoints: it cannot take a savepoint"
            )})
        )
    );
    for bad in [
        r#"{"dir": "relative/dir"}"#,
        r#"{"path": "/x"}"#,
        "not json",
    ] {
        let r = http(addr, "POST", &sp, tok, Some(bad)).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].as_str().is_some());
    }
    assert!(
        !std::path::Path::new("/tmp/never-written").exists(),
        "nothing was written"
    );

    // Cancel ends the run.
    let r = http(addr, "POST", &cancel, tok, None).await;
    assert_eq!(
        (r.status, r.json()),
        (202, json!({"id": id, "state": "cancelling"}))
    );
    assert!(
        handle.wait().await.is_err(),
        "a cancelled run ends in error"
    );
    let after = http(addr, "GET", "/api/v1/jobs/api-job", None, None)
        .await
        .json();
    assert_eq!(after["state"], "cancelled");
    let r = http(addr, "POST", &cancel, tok, None).await;
    assert_eq!(
        (r.status, r.json()),
        (
            409,
            json!({"error": format!("job \"{id}\" has already ended (cancelled)")})
        )
    );
    until("the sampler saw the end", || {
        srv.registry().ended_at(id).is_some()
    })
    .await;
    let ended = http(addr, "GET", "/api/v1/jobs/api-job", None, None)
        .await
        .json();
    assert!(ended["ended_at_ms"].as_u64().unwrap() >= started);
    assert_eq!(ended["live_tasks"], 0);

    // Shutdown removes the job file and closes the listener.
    srv.shutdown();
    assert!(!jf.exists());
    assert_eq!(weir_ops::jobfile::list_in(&home).unwrap(), vec![]);
    until("the listener closed", || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
    })
    .await;
    let _ = std::fs::remove_dir_all(&home);
}

fn weir_ops_started_ms(v: &RunView) -> u64 {
    u64::try_from(
        v.started_at()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// counting (uid `numbers`) → running sums (uid `sums`) → a sink collecting into `out`.
fn summing(gate: &Arc<Gate>, out: &Arc<Mutex<Vec<u64>>>) -> RunnableGraph<()> {
    let out = Arc::clone(out);
    counting("numbers", gate)
        .uid("numbers")
        .via(simple::scan_with_codec(0u64, |a, x: u64| a + x, StateCodec::serde()).uid("sums"))
        .to(Sink::for_each(move |x| out.lock().unwrap().push(x)).uid("out"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_taken_over_the_api_restores_in_a_new_run() {
    let srv = server(None, None);
    assert!(srv.job_file().is_none());
    let addr = srv.addr();
    let ckdir = dir("api-ck");
    let spdir = dir("api-sp");
    let gate = Arc::new(Gate::default());
    let out = Arc::new(Mutex::new(Vec::new()));
    let ((), handle) = Materializer::new()
        .with_name("api-sums")
        .with_checkpoints(CheckpointConfig::new(Duration::from_secs(3600), &ckdir))
        .materialize(&summing(&gate, &out))
        .unwrap();
    gate.open(40);
    until("40 sums", || out.lock().unwrap().len() == 41).await;
    let before = http(addr, "GET", "/api/v1/jobs/api-sums/checkpoints", None, None)
        .await
        .json();
    assert_eq!(before["enabled"], true);
    assert_eq!(before["latest_completed"], Value::Null);
    assert_eq!(before["completed"], json!([]));

    let body = json!({"dir": spdir}).to_string();
    let r = http(
        addr,
        "POST",
        "/api/v1/jobs/api-sums/savepoint",
        Some(srv.token()),
        Some(&body),
    )
    .await;
    let id = handle.view().id();
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"id": id, "path": spdir.display().to_string()}))
    );
    assert!(spdir.join("MANIFEST").exists());
    let detail = http(addr, "GET", "/api/v1/jobs/api-sums", None, None)
        .await
        .json();
    assert_eq!(
        obj_keys(&detail["checkpoints"]),
        keys(&[
            "latest_completed",
            "restored",
            "completed",
            "failed",
            "skipped",
            "last_duration_ms",
            "last_size_bytes"
        ])
    );
    assert_eq!(detail["checkpoints"]["restored"], Value::Null);
    assert_eq!(detail["checkpoints"]["failed"], 0);

    let r = http(
        addr,
        "POST",
        "/api/v1/jobs/api-sums/cancel",
        Some(srv.token()),
        None,
    )
    .await;
    assert_eq!(r.status, 202);
    assert!(handle.wait().await.is_err());
    assert_eq!(
        http(addr, "GET", "/api/v1/jobs/api-sums", None, None)
            .await
            .json()["state"],
        "cancelled"
    );
    let r = http(
        addr,
        "POST",
        "/api/v1/jobs/api-sums/savepoint",
        Some(srv.token()),
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 409, "an ended run takes no savepoint");

    // A new run restores the savepoint: the source goes on at 40, the sums at 780.
    let ckdir2 = dir("api-ck2");
    let gate2 = Arc::new(Gate::default());
    let out2 = Arc::new(Mutex::new(Vec::new()));
    let ((), h2) = Materializer::new()
        .with_name("api-sums")
        .with_checkpoints(
            CheckpointConfig::new(Duration::from_secs(3600), &ckdir2).restore_from(&spdir),
        )
        .materialize(&summing(&gate2, &out2))
        .unwrap();
    gate2.open(45);
    until("5 more sums", || out2.lock().unwrap().len() == 5).await;
    assert_eq!(*out2.lock().unwrap(), vec![820, 861, 903, 946, 990]);
    // The name now finds the newest run, which restored the savepoint's checkpoint.
    let ck = http(addr, "GET", "/api/v1/jobs/api-sums/checkpoints", None, None)
        .await
        .json();
    assert_eq!(ck["id"], json!(h2.view().id()));
    assert_eq!(
        ck["restored"],
        h2.checkpoints()
            .unwrap()
            .restored()
            .map_or(Value::Null, |r| json!(r))
    );
    assert_ne!(ck["restored"], Value::Null);
    h2.cancel();
    assert!(h2.wait().await.is_err());
    for d in [ckdir, ckdir2, spdir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_listener_serves_only_metrics_and_a_configured_token_is_used() {
    let reg = Registry::new(RegistryConfig::default());
    let srv = weir_ops::start(OpsConfig {
        job_files: false,
        metrics_port: Some(0),
        token: Some("s3cret".into()),
        registry: Some(reg),
        ..OpsConfig::default()
    })
    .unwrap();
    assert_eq!(srv.token(), "s3cret");
    let maddr = srv.metrics_addr().unwrap();
    assert_eq!(maddr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(maddr.port(), srv.addr().port());
    let m = http(maddr, "GET", "/metrics", None, None).await;
    assert_eq!(
        (m.status, m.content_type.as_str()),
        (200, weir_ops::server::METRICS_CONTENT_TYPE)
    );
    assert!(m.body.ends_with("# EOF\n"));
    let r = http(maddr, "GET", "/api/v1/jobs", None, None).await;
    assert_eq!(r.status, 404);
    let r = http(srv.addr(), "GET", "/api/v1/jobs", None, None).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!([])),
        "an unobserved registry is empty"
    );
    let r = http(
        srv.addr(),
        "POST",
        "/api/v1/jobs/x/cancel",
        Some("s3cret"),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(matches!(
        weir_ops::start(OpsConfig {
            token: Some("has space".into()),
            ..OpsConfig::default()
        }),
        Err(weir_ops::OpsError::BadToken)
    ));
    // On the caller's runtime: served there, closed at shutdown.
    let here = weir_ops::start(OpsConfig {
        job_files: false,
        registry: Some(Registry::new(RegistryConfig::default())),
        runtime: Some(tokio::runtime::Handle::current()),
        ..OpsConfig::default()
    })
    .unwrap();
    let haddr = here.addr();
    let r = http(haddr, "GET", "/api/v1/jobs", None, None).await;
    assert_eq!((r.status, r.json()), (200, json!([])));
    drop(here);
    until("the listener closed", || {
        std::net::TcpStream::connect_timeout(&haddr, Duration::from_millis(200)).is_err()
    })
    .await;
    let taken = srv.addr().port();
    let e = weir_ops::start(OpsConfig {
        port: taken,
        job_files: false,
        ..OpsConfig::default()
    })
    .unwrap_err();
    assert!(matches!(e, weir_ops::OpsError::Bind { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_reports_its_error_naming_the_stage() {
    let srv = server(None, None);
    let g = Source::from_iter(0..5u64)
        .via(simple::try_map(|x: &u64| {
            if *x == 3 {
                Err(std::io::Error::other("three is bad"))
            } else {
                Ok(*x)
            }
        }))
        .to(Sink::ignore());
    let ((), h) = Materializer::new()
        .with_name("api-failing")
        .materialize(&g)
        .unwrap();
    let err = h.wait().await.unwrap_err().to_string();
    let view = view_of(&srv, "api-failing");
    let weir_engine::RunState::Failed(e) = view.state() else {
        panic!("the run failed: {:?}", view.state());
    };
    let text = e.to_string();
    assert!(
        text.contains("try_map") && text.contains("three is bad"),
        "{text}"
    );
    assert!(err.contains("three is bad"), "{err}");
    let d = http(srv.addr(), "GET", "/api/v1/jobs/api-failing", None, None)
        .await
        .json();
    assert_eq!(d["state"], "failed");
    assert_eq!(d["error"], json!(text));
    let r = http(
        srv.addr(),
        "POST",
        "/api/v1/jobs/api-failing/cancel",
        Some(srv.token()),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            409,
            json!({"error": "job \"api-failing\" has already ended (failed)"})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_lists_each_failed_element_of_a_resumed_stage_and_the_one_that_stopped_it() {
    let srv = server(None, None);
    let resume_odd = Supervision::new(|e| {
        if e.message().contains("odd") {
            Directive::Resume
        } else {
            Directive::Stop
        }
    });
    let g = Source::from_iter(0..8u64)
        .via(
            simple::try_map(|x: &u64| {
                if x % 2 == 1 {
                    Err(StageError::user(format!("odd {x}")))
                } else {
                    Ok(*x)
                }
            })
            .with_supervision(resume_odd),
        )
        .via(simple::try_map(|x: &u64| {
            if *x == 6 {
                Err(StageError::user("six"))
            } else {
                Ok(*x)
            }
        }))
        .to(Sink::ignore());
    let ((), h) = Materializer::new()
        .with_name("api-errors")
        .with_batch_size(1)
        .materialize(&g)
        .unwrap();
    assert!(h.wait().await.is_err(), "six stops the run");
    let view = view_of(&srv, "api-errors");
    let id = view.id();
    let mut paths: Vec<String> = view
        .metrics()
        .iter()
        .filter(|m| m.path.starts_with("try_map"))
        .map(|m| m.path.clone())
        .collect();
    paths.sort();
    let [odd, six] = <[String; 2]>::try_from(paths).unwrap();

    let r = http(
        srv.addr(),
        "GET",
        &format!("/api/v1/jobs/{id}/errors"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/json")
    );
    let mut got = r.json();
    let before_ms = weir_ops_started_ms(&view);
    for e in got["errors"].as_array_mut().unwrap() {
        let at = e["at_ms"].as_u64().unwrap();
        assert!(
            at >= before_ms && at < before_ms + 60_000,
            "{at} is not now"
        );
        e["at_ms"] = json!(0);
    }
    let rec = |stage: &str, msg: &str, element: &str, dead_letter: bool| {
        json!({
            "stage": stage,
            "subtask": 0,
            "error": StageError::user(msg)
                .with_stage(stage)
                .with_element(element)
                .to_string(),
            "element": element,
            "at_ms": 0,
            "dead_letter": dead_letter,
        })
    };
    // Oldest first: the odd elements resumed past (dead letters), then the one that stopped
    // the run (one element per batch through one chain: 7 is never read).
    assert_eq!(
        got,
        json!({"id": id, "errors": [
            rec(&odd, "odd 1", "1", true),
            rec(&odd, "odd 3", "3", true),
            rec(&odd, "odd 5", "5", true),
            rec(&six, "six", "6", false),
        ]})
    );
    // The job's stages count the same.
    let d = http(srv.addr(), "GET", "/api/v1/jobs/api-errors", None, None)
        .await
        .json();
    let counts: Vec<(String, u64, u64)> = d["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["path"].as_str().unwrap().starts_with("try_map"))
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["dead_letters"].as_u64().unwrap(),
                s["failures"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, vec![(odd, 3, 0), (six, 0, 1)]);
}

/// A flow that blocks its thread on the first element until the gate opens.
#[derive(Default)]
struct Block {
    open: Mutex<bool>,
    cv: std::sync::Condvar,
    entered: std::sync::atomic::AtomicBool,
}

impl Block {
    fn wait(&self) {
        self.entered
            .store(true, std::sync::atomic::Ordering::Release);
        let mut g = self.open.lock().unwrap();
        while !*g {
            g = self.cv.wait(g).unwrap();
        }
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// Opens the block when dropped: a failing assertion never leaves a worker blocked.
struct OpenOnDrop(Arc<Block>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_names_the_stage_that_holds_the_run_up() {
    let srv = server(None, None);
    let clock = VirtualClock::new();
    let block = Arc::new(Block::default());
    let _opens = OpenOnDrop(Arc::clone(&block));
    let b2 = Arc::clone(&block);
    let g = Source::from_iter(0..50u64)
        .async_boundary()
        .via(simple::map(move |x: u64| {
            if x == 0 {
                b2.wait();
            }
            x + 1
        }))
        .to_mat(Sink::collect(), Keep::right);
    let (fut, h) = Materializer::new()
        .with_name("api-stall")
        .with_clock(Arc::new(clock.clone()))
        .with_batch_size(10)
        .with_buffer_rows(100)
        .with_stall_threshold(Duration::from_secs(10))
        .materialize(&g)
        .unwrap();
    let view = view_of(&srv, "api-stall");
    let map_path = view
        .metrics()
        .iter()
        .find(|m| m.path.starts_with("map"))
        .map(|m| m.path.clone())
        .unwrap();
    // The map holds its first batch; the rest of the source waits in front of it.
    until("the rest queued in front of the map", || {
        block.entered.load(std::sync::atomic::Ordering::Acquire)
            && view
                .metrics()
                .iter()
                .any(|m| m.path == map_path && m.queue_depth == 40)
    })
    .await;
    let stall = || async {
        http(srv.addr(), "GET", "/api/v1/jobs/api-stall", None, None)
            .await
            .json()["stall"]
            .clone()
    };
    assert_eq!(
        stall().await,
        Value::Null,
        "the first look starts the watch"
    );
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(
        stall().await,
        Value::Null,
        "not stalled for the threshold yet"
    );
    clock.advance(Duration::from_millis(1));
    let since = weir_ops_started_ms(&view);
    let want = json!({"stage": map_path, "subtask": 0, "since_ms": since});
    assert_eq!(stall().await, want);
    clock.advance(Duration::from_secs(5));
    assert_eq!(stall().await, want, "the same stall, since the same time");

    block.open();
    assert_eq!(fut.await.unwrap(), (1..=50).collect::<Vec<_>>());
    h.wait().await.unwrap();
    assert_eq!(stall().await, Value::Null, "cleared once it moved");
}

/// A coordinator's view with fixed contents.
struct FixedView(Value);

impl weir_ops::ClusterView for FixedView {
    fn view(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Value> + Send>> {
        let v = self.0.clone();
        Box::pin(async move { v })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_endpoint_serves_the_coordinators_view_and_is_absent_elsewhere() {
    let plain = server(None, None);
    let r = http(plain.addr(), "GET", "/api/v1/cluster", None, None).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "this process coordinates no cluster"})
    );
    let view = serde_json::json!({"coordinator": "c", "nodes": [], "jobs": []});
    let srv = weir_ops::start(OpsConfig {
        job_files: false,
        registry: Some(Registry::new(RegistryConfig::default())),
        cluster: Some(Arc::new(FixedView(view.clone()))),
        ..OpsConfig::default()
    })
    .unwrap();
    let r = http(srv.addr(), "GET", "/api/v1/cluster", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), view);
    let r = http(srv.addr(), "POST", "/api/v1/cluster", None, None).await;
    assert_eq!(r.status, 405);
}
