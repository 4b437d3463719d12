//! The web UI in a real browser: headless Chromium loads the job page of a running job twice,
//! the graph shows every stage of the plan and the displayed counts and rates change between
//! the loads; screenshots land under `$CARGO_TARGET_TMPDIR/ui/`. Chromium comes from
//! `WEIR_CHROMIUM`, the PATH, or `scripts/chromium-env.sh` (Debian's package); the test skips,
//! saying so, only when none can be installed. A second test drives a page over the DevTools
//! protocol (`cdp`): it clicks Savepoint and Cancel without and then with the token pasted in
//! the header, and checks the savepoint directory and the run's state through the API.

mod cdp;
mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir_engine::CheckpointConfig;
use weir_engine::prelude::*;
use weir_operators::prelude::*;
use weir_operators::simple;
use weir_ops::{OpsConfig, Registry, RegistryConfig};

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WEIR_CHROMIUM").map(PathBuf::from)
        && p.is_file()
    {
        return Some(p);
    }
    let on_path = |name: &str| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    };
    if let Some(p) = on_path("chromium").or_else(|| on_path("chromium-browser")) {
        return Some(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/chromium-env.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .ok()?;
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!printed.is_empty())
        .then(|| PathBuf::from(printed))
        .filter(|p| p.is_file())
}

/// Runs headless Chromium on `url` with `args`; returns its stdout. A Chromium that exits
/// with an error before printing anything (it sometimes does on a loaded machine) is started
/// again, twice at most; what it printed is never retried, so the page is judged once.
async fn chromium(bin: &Path, profile: &Path, url: &str, args: &[String]) -> String {
    let mut last = String::new();
    for _ in 0..3 {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1400,1000",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("chromium finished within 120 s")
            .expect("chromium started");
        if out.status.success() || !out.stdout.is_empty() {
            assert!(
                out.status.success(),
                "chromium failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    panic!("chromium failed three times: {last}");
}

/// The attributes of the graph node of stage `path` in a dumped DOM.
fn stage_attr(dom: &str, path: &str, attr: &str) -> Option<String> {
    let at = dom.find(&format!("data-path=\"{path}\""))?;
    let start = dom[..at].rfind('<')?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_shows_every_stage_and_live_rates_in_chromium() {
    let Some(bin) = find_chromium() else {
        eprintln!(
            "SKIPPED: no chromium (set WEIR_CHROMIUM or run scripts/chromium-env.sh; \
             Debian's chromium package could not be installed here)"
        );
        return;
    };
    let reg = Registry::new(RegistryConfig::default());
    reg.observe();
    let srv = weir_ops::start(OpsConfig {
        job_files: false,
        registry: Some(reg),
        sample_interval: Duration::from_millis(250),
        ..OpsConfig::default()
    })
    .unwrap();
    // A source ticking every 20 ms; tick k becomes k elements, so the rate keeps rising.
    let g = Source::tick(Duration::ZERO, Duration::from_millis(20), ())
        .via(simple::zip_with_index())
        .via(simple::map_concat(|((), k): ((), u64)| 0..k))
        .via(simple::map(|x: u64| x * 2).async_boundary())
        .via(simple::filter(|x: &u64| x.is_multiple_of(3)))
        .to(Sink::ignore());
    let (tick, handle) = Materializer::new()
        .with_name("browser-ramp")
        .materialize(&g)
        .unwrap();
    let view = srv.registry().find("browser-ramp").unwrap();
    let plan = view.plan().unwrap();
    let paths: Vec<String> = (0..plan.module.nodes.len())
        .map(|n| plan.module.node_path(n))
        .collect();
    assert_eq!(paths.len(), 6);
    let map_path = paths
        .iter()
        .find(|p| p.starts_with("map#"))
        .unwrap()
        .clone();
    let id = view.id();
    let samples = |reg: &Registry| {
        reg.history(id)
            .iter()
            .find(|h| h.path == map_path)
            .map_or(0, |h| h.samples.len())
    };
    until("two samples", || samples(srv.registry()) >= 2).await;

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&out_dir).unwrap();
    let profile = dir("chromium-profile");
    let page = format!("{}/#/jobs/browser-ramp", srv.url());
    let load = |n: usize| {
        let (bin, profile, page, out_dir) =
            (bin.clone(), profile.clone(), page.clone(), out_dir.clone());
        async move {
            let dom = chromium(&bin, &profile, &page, &["--dump-dom".into()]).await;
            std::fs::write(out_dir.join(format!("job-{n}.html")), &dom).unwrap();
            dom
        }
    };
    let shot = |name: &str| format!("--screenshot={}", out_dir.join(name).display());
    let dom1 = load(1).await;
    assert!(
        dom1.contains("data-ready=\"1\""),
        "the graph rendered:\n{dom1}"
    );
    assert!(dom1.contains("id=\"job-name\">browser-ramp</span>"));
    for p in &paths {
        assert!(
            stage_attr(&dom1, p, "class").is_some_and(|c| c.starts_with("stage")),
            "stage {p} is in the graph:\n{dom1}"
        );
        assert!(stage_attr(&dom1, p, "data-out").is_some(), "{p} has counts");
    }
    let islands = dom1.matches("class=\"island\"").count();
    assert_eq!(islands, plan.islands.len());
    let out1: u64 = stage_attr(&dom1, &map_path, "data-out")
        .unwrap()
        .parse()
        .unwrap();
    let rate1: f64 = stage_attr(&dom1, &map_path, "data-rate")
        .unwrap()
        .parse()
        .unwrap();
    assert!(out1 > 0 && rate1 > 0.0, "{out1} {rate1}");

    // The server's rate of the stage moves on (ramping); the second load shows the new one.
    until("the map's rate rising", || {
        srv.registry()
            .latest(id)
            .get(&(map_path.clone(), 0))
            .is_some_and(|s| s.out_rate > rate1 * 1.2 && s.elements_out > out1)
    })
    .await;
    let dom2 = load(2).await;
    let out2: u64 = stage_attr(&dom2, &map_path, "data-out")
        .unwrap()
        .parse()
        .unwrap();
    let rate2: f64 = stage_attr(&dom2, &map_path, "data-rate")
        .unwrap()
        .parse()
        .unwrap();
    assert!(out2 > out1, "counts grew: {out1} then {out2}");
    assert_ne!(rate1, rate2, "the displayed rate changed");
    assert!(rate2 > rate1, "the ramp's rate rose: {rate1} then {rate2}");

    // A checkpointing job: the checkpoints section lists them; the job list shows both jobs.
    let ckdir = dir("browser-ck");
    let gate = Arc::new(Gate::default());
    let ((), ck_handle) = Materializer::new()
        .with_name("browser-ck")
        .with_checkpoints(CheckpointConfig::new(Duration::from_millis(300), &ckdir))
        .materialize(
            &counting("numbers", &gate)
                .via(simple::map(|x: u64| x + 1))
                .to(Sink::ignore()),
        )
        .unwrap();
    gate.open(1000);
    let ck_view = srv.registry().find("browser-ck").unwrap();
    let checkpoints = ck_view.checkpoints().unwrap();
    until("two checkpoints", || {
        checkpoints.latest_completed().is_some_and(|c| c >= 2)
    })
    .await;
    let ck_dom = chromium(
        &bin,
        &profile,
        &format!("{}/#/jobs/browser-ck", srv.url()),
        &["--dump-dom".into(), shot("ui-checkpoints.png")],
    )
    .await;
    std::fs::write(out_dir.join("checkpoints.html"), &ck_dom).unwrap();
    assert!(ck_dom.contains("<table id=\"checkpoints\">"), "{ck_dom}");
    let latest: u64 = ck_dom
        .split("latest completed: <b>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the latest checkpoint is shown:\n{ck_dom}"));
    assert!(latest >= 2, "{latest}");
    assert!(ck_dom.matches(">completed<").count() >= 2, "{ck_dom}");
    let list = chromium(
        &bin,
        &profile,
        &format!("{}/#/", srv.url()),
        &["--dump-dom".into()],
    )
    .await;
    for v in [&view, &ck_view] {
        let row = format!(
            "<tr data-job=\"{0}\"><td class=\"num\">{0}</td>\n    <td><a href=\"#/jobs/{0}\">{1}</a></td>",
            v.id(),
            v.name()
        );
        assert!(list.contains(&row), "{row} in\n{list}");
    }
    ck_handle.cancel();
    assert!(ck_handle.wait().await.is_err());
    let _ = std::fs::remove_dir_all(&ckdir);

    // Screenshots: the graph with the map's detail and chart selected, and the job list.
    let detail = format!(
        "{}/?stage={}#/jobs/browser-ramp",
        srv.url(),
        map_path.replace('#', "%23")
    );
    chromium(&bin, &profile, &detail, &[shot("ui-graph.png")]).await;
    chromium(
        &bin,
        &profile,
        &format!("{}/#/", srv.url()),
        &[shot("ui-jobs.png")],
    )
    .await;
    for f in ["ui-graph.png", "ui-jobs.png", "ui-checkpoints.png"] {
        let len = std::fs::metadata(out_dir.join(f)).map_or(0, |m| m.len());
        assert!(len > 10_000, "{f} is a real screenshot ({len} bytes)");
    }
    eprintln!("screenshots in {}", out_dir.display());

    let _ = tick.cancel();
    handle.wait().await.unwrap();
    assert_eq!(
        http(srv.addr(), "GET", "/api/v1/jobs/browser-ramp", None, None)
            .await
            .json()["state"],
        "finished"
    );
    let _ = std::fs::remove_dir_all(&profile);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_savepoint_and_cancel_buttons_act_only_with_the_token() {
    let Some(bin) = find_chromium() else {
        eprintln!(
            "SKIPPED: no chromium (set WEIR_CHROMIUM or run scripts/chromium-env.sh; \
             Debian's chromium package could not be installed here)"
        );
        return;
    };
    let reg = Registry::new(RegistryConfig::default());
    reg.observe();
    let srv = weir_ops::start(OpsConfig {
        job_files: false,
        registry: Some(reg),
        sample_interval: Duration::from_millis(250),
        ..OpsConfig::default()
    })
    .unwrap();
    let ckdir = dir("buttons-ck");
    let spdir = dir("buttons-sp");
    let gate = Arc::new(Gate::default());
    let ((), handle) = Materializer::new()
        .with_name("browser-buttons")
        .with_checkpoints(CheckpointConfig::new(Duration::from_secs(3600), &ckdir))
        .materialize(
            &counting("numbers", &gate)
                .via(simple::map(|x: u64| x + 1))
                .to(Sink::ignore()),
        )
        .unwrap();
    gate.open(100);
    let id = handle.view().id();
    let api_state = || async {
        http(
            srv.addr(),
            "GET",
            "/api/v1/jobs/browser-buttons",
            None,
            None,
        )
        .await
        .json()["state"]
            .clone()
    };

    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&out_dir).unwrap();
    let profile = dir("chromium-buttons-profile");
    let mut b = cdp::Browser::launch(&bin, &profile).await;
    let page = b
        .open(&format!("{}/#/jobs/browser-buttons", srv.url()))
        .await;
    b.wait_for(&page, "document.getElementById('savepoint')")
        .await;
    let msg = "document.getElementById('action-msg')";
    let clear = format!("{msg}.textContent = ''");

    // Without the token both buttons are refused: the page says why, nothing happens.
    b.click(&page, "#sp-dir").await;
    b.type_text(&page, &spdir.display().to_string()).await;
    for button in ["#savepoint", "#cancel"] {
        b.eval(&page, &clear).await;
        b.click(&page, button).await;
        b.wait_for(&page, &format!("{msg}.textContent")).await;
        assert_eq!(
            b.eval(&page, &format!("[{msg}.textContent, {msg}.className]"))
                .await,
            json!([
                "this call needs `Authorization: Bearer <token>` with the job's token",
                "msg error"
            ]),
            "{button}"
        );
    }
    assert!(!spdir.exists(), "no savepoint without the token");
    assert_eq!(api_state().await, "running");

    // The token pasted in the header: the savepoint is written where the field says.
    b.click(&page, "#token").await;
    b.type_text(&page, srv.token()).await;
    b.click(&page, "#sp-dir").await;
    b.eval(&page, &clear).await;
    b.click(&page, "#savepoint").await;
    b.wait_for(&page, &format!("{msg}.textContent")).await;
    assert_eq!(
        b.eval(&page, &format!("[{msg}.textContent, {msg}.className]"))
            .await,
        json!([format!("savepoint written to {}", spdir.display()), "msg"])
    );
    assert!(spdir.is_dir(), "the savepoint directory exists");
    assert!(spdir.join("MANIFEST").is_file(), "with its manifest");
    assert_eq!(api_state().await, "running");
    std::fs::write(out_dir.join("ui-savepoint.png"), b.screenshot(&page).await).unwrap();

    // Cancel: the page says so, the run ends cancelled, and the page's badge follows.
    b.eval(&page, &clear).await;
    b.click(&page, "#cancel").await;
    b.wait_for(&page, &format!("{msg}.textContent")).await;
    assert_eq!(
        b.eval(&page, &format!("{msg}.textContent")).await,
        json!(format!("job {id}: cancelling"))
    );
    assert!(
        handle.wait().await.is_err(),
        "a cancelled run ends in error"
    );
    assert_eq!(api_state().await, "cancelled");
    b.wait_for(
        &page,
        "document.querySelector('#job-state .state').textContent === 'cancelled'",
    )
    .await;
    std::fs::write(out_dir.join("ui-cancelled.png"), b.screenshot(&page).await).unwrap();
    b.close().await;
    for d in [ckdir, spdir, profile] {
        let _ = std::fs::remove_dir_all(d);
    }
}
