//! W3 on a local cluster of node processes (RELIABILITY S18): `w3-job --nodes 3` commits
//! exactly the windows the single-process job commits, and `crash-cluster` SIGKILLs random
//! nodes ten times and finds the union of the nodes' committed output exact.

mod common;

use common::run;
use std::path::Path;

/// Every committed `key,window_start,sum` line under `dirs`, sorted; any other file is a stray.
fn windows(dirs: &[&Path]) -> Vec<(u32, i64, u64)> {
    committed(dirs, false)
}

/// The committed lines under `dirs`, sorted; `in_progress` allows the uncommitted parts a
/// stopped job leaves (the next run from its checkpoint removes them).
fn committed(dirs: &[&Path], in_progress: bool) -> Vec<(u32, i64, u64)> {
    let mut rows = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if in_progress && name.starts_with(".part-") && name.ends_with(".inprogress") {
                continue;
            }
            assert!(name.starts_with("part-"), "stray file {}", p.display());
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                let f: Vec<&str> = line.split(',').collect();
                assert_eq!(f.len(), 3, "{name}: {line}");
                rows.push((
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                ));
            }
        }
    }
    rows.sort();
    rows
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn three_node_processes_commit_exactly_the_single_process_windows() {
    let d = common::dir("cluster", "equal");
    let input = d.join("events.csv");
    let input_s = input.to_str().unwrap();
    ok(&run(&[
        "w3-gen", "--events", "40000", "--output", input_s, "--seed", "5",
    ]));
    let job = |output: &Path, state: &Path, nodes: Option<&str>| {
        let mut args = vec![
            "w3-job",
            "--input",
            input_s,
            "--output",
            output.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--checkpoint-interval-ms",
            "50",
            "--rate",
            "40000",
        ];
        if let Some(n) = nodes {
            args.extend(["--nodes", n]);
        }
        ok(&run(&args))
    };
    let single = d.join("single");
    job(&single, &d.join("single-state"), None);
    let line = job(&d.join("cluster"), &d.join("cluster-state"), Some("3"));
    let c = common::counts(&line);
    assert_eq!(c["nodes"], "3", "{line}");
    assert_eq!(c["events"], "40000", "{line}");
    assert_eq!(c["restarts"], "0", "{line}");
    let nodes: Vec<_> = (0..3)
        .map(|i| d.join("cluster").join(format!("node-{i}")))
        .collect();
    let refs: Vec<&Path> = nodes.iter().map(|p| p.as_path()).collect();
    let want = windows(&[&single]);
    assert!(want.len() > 1000, "{}", want.len());
    assert_eq!(windows(&refs), want);
    // Each key's windows are on the one node that owns the key.
    for (i, n) in refs.iter().enumerate() {
        let keys: std::collections::BTreeSet<u32> = windows(&[n]).iter().map(|w| w.0).collect();
        for (j, m) in refs.iter().enumerate().filter(|(j, _)| *j != i) {
            assert!(
                windows(&[m]).iter().all(|w| !keys.contains(&w.0)),
                "nodes {i} and {j} share a key"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ten_random_node_kills_leave_the_committed_output_exact() {
    let d = common::dir("cluster", "crash");
    let c = common::crash_is_exact(
        &d,
        &[
            "crash-cluster",
            "--nodes",
            "3",
            "--kills",
            "10",
            "--seed",
            "3",
            "--min-delay-ms",
            "200",
            "--max-delay-ms",
            "600",
        ],
        &common::EXACT,
    );
    assert_eq!(c["kills"], "10", "{c:?}");
    assert_eq!(c["records"], c["windows"], "{c:?}");
    assert_eq!(c["attempts"], "11", "{c:?}");
    assert_eq!(c["ok"], "true", "{c:?}");
}

#[test]
fn killed_nodes_restarted_on_empty_disks_restore_from_the_store_and_stay_exact() {
    let d = common::dir("cluster", "crash-fresh-disk");
    let c = common::crash_is_exact(
        &d,
        &[
            "crash-cluster",
            "--nodes",
            "3",
            "--kills",
            "4",
            "--seed",
            "5",
            "--min-delay-ms",
            "500",
            "--max-delay-ms",
            "900",
            "--fresh-disk",
        ],
        &common::EXACT,
    );
    assert_eq!(c["kills"], "4", "{c:?}");
    assert_eq!(c["attempts"], "5", "{c:?}");
    // Every restart gave the dead node an empty disk.
    assert_eq!(c["fresh_disks"], "4", "{c:?}");
    // A kill 500 ms or more into an attempt checkpointing every 100 ms lands after the
    // attempt's first checkpoint: the replaced node's restore point came from the store.
    let from_store: u32 = c["restores_from_store"].parse().unwrap();
    assert!(from_store >= 3, "{c:?}");
    assert_eq!(c["records"], c["windows"], "{c:?}");
    assert_eq!(c["ok"], "true", "{c:?}");
}

#[test]
fn w2_over_three_node_processes_counts_exactly_the_single_process_words() {
    let d = common::dir("cluster", "w2");
    let line = ok(&run(&[
        "w2-job",
        "--nodes",
        "3",
        "--words",
        "200000",
        "--dir",
        d.to_str().unwrap(),
    ]));
    let c = common::counts(&line);
    assert_eq!(c["workload"], "\"w2_job\"", "{line}");
    assert_eq!(c["nodes"], "3", "{line}");
    assert_eq!(c["words"], "200000", "{line}");
    assert_eq!(c["attempts"], "1", "{line}");
    assert_eq!(c["checksum"], c["expected"], "{line}");
    assert_eq!(c["single_checksum"], c["expected"], "{line}");
    assert_eq!(c["ok"], "true", "{line}");
    // Every node counted some words, and no word on two nodes (checked by w2-job).
    for i in 0..3 {
        let p = d.join("out").join(format!("node-{i}.tsv"));
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.lines().count() > 100, "{}", p.display());
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_slow_sink_on_one_node_holds_every_nodes_source_back() {
    let (seconds, rate) = (3u64, 5000u64);
    let line = ok(&run(&[
        "cluster-backpressure",
        "--nodes",
        "3",
        "--seconds",
        &seconds.to_string(),
        "--slow-rate",
        &rate.to_string(),
    ]));
    let c = common::counts(&line);
    assert_eq!(c["nodes"], "3", "{line}");
    let rows: Vec<u64> = c["rows"]
        .trim_matches(['[', ']'])
        .split(',')
        .map(|r| r.parse().unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{line}");
    // Node 0's sink took its rate while the sources ran, then what was in flight when they
    // stopped: at most the edges' windows (8192 rows each) and the stages' buffers. The others
    // received about as much (the keys spread evenly). Unthrottled, each source makes hundreds
    // of thousands of rows a second.
    assert!(
        rows[0] > 0 && rows[0] <= rate * (seconds + 1) + 100_000,
        "{line}"
    );
    for r in &rows[1..] {
        assert!(*r <= rows[0] + 150_000, "{line}");
    }
}

#[test]
fn a_stopped_cluster_savepoint_resumes_exactly_on_a_new_cluster_and_rescales_onto_two_and_four_nodes()
 {
    use weir_cluster::control;
    let d = common::dir("cluster", "savepoint");
    let input = d.join("events.csv");
    let input_s = input.to_str().unwrap();
    ok(&run(&[
        "w3-gen", "--events", "60000", "--output", input_s, "--seed", "6",
    ]));
    let args = |output: &Path, state: &Path, nodes: &'static str, rate: &'static str| {
        vec![
            "w3-job".to_owned(),
            "--input".into(),
            input_s.into(),
            "--output".into(),
            output.to_str().unwrap().into(),
            "--state-dir".into(),
            state.to_str().unwrap().into(),
            "--checkpoint-interval-ms".into(),
            "50".into(),
            "--rate".into(),
            rate.into(),
            "--nodes".into(),
            nodes.into(),
            "--splits".into(),
            "12".into(),
        ]
    };
    let single = d.join("single");
    let mut one = args(&single, &d.join("single-state"), "1", "60000");
    one.truncate(one.len() - 4);
    ok(&run(&one.iter().map(String::as_str).collect::<Vec<_>>()));
    let want = windows(&[&single]);

    // The first cluster, throttled to 3 s, saved once it committed windows, then cancelled.
    let (out1, st1, sp) = (d.join("out1"), d.join("st1"), d.join("savepoint"));
    let mut first = std::process::Command::new(common::BIN)
        .args(args(&out1, &st1, "3", "20000"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cluster1 = st1.join("cluster");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Some windows are committed: the savepoint's checkpoint covers them.
    let some_committed = || {
        (0..3).any(|i| {
            std::fs::read_dir(out1.join(format!("node-{i}"))).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("part-")))
            })
        })
    };
    loop {
        let s = rt.block_on(control::status(&cluster1));
        if s.as_ref().is_ok_and(|s| s.latest_complete >= Some(4)) && some_committed() {
            break;
        }
        assert!(std::time::Instant::now() < until, "no checkpoints: {s:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A savepoint of the running job: the newest checkpoint all nodes completed.
    let live = d.join("savepoint-live");
    let running = rt.block_on(control::savepoint(&cluster1, &live)).unwrap();
    assert!(running.checkpoint >= 4, "{running:?}");
    assert_eq!(running.nodes, 3);
    assert_eq!(
        control::read_savepoint(&live).unwrap(),
        Some((running.checkpoint, 3))
    );
    // Stopped, then saved: the savepoint is the checkpoint whose output the job committed
    // last, so a resume into the same output continues it exactly.
    control::request_cancel(&cluster1).unwrap();
    let ended = first.wait().unwrap();
    assert!(!ended.success());
    assert_eq!(
        control::wait_stopped(&cluster1, std::time::Duration::from_secs(5)).unwrap(),
        "cancelled"
    );
    let saved = rt.block_on(control::savepoint(&cluster1, &sp)).unwrap();
    assert!(saved.checkpoint >= running.checkpoint, "{saved:?}");
    // A second savepoint into the same folder is refused.
    let again = rt.block_on(control::savepoint(&cluster1, &sp)).unwrap_err();
    assert!(
        again.to_string().contains("holds a savepoint already"),
        "{again}"
    );
    let outputs = |out: &Path| -> Vec<std::path::PathBuf> {
        (0..3).map(|i| out.join(format!("node-{i}"))).collect()
    };
    // A cancel leaves the parts written after the last commit uncommitted.
    let stopped = committed(
        &outputs(&out1)
            .iter()
            .map(|p| p.as_path())
            .collect::<Vec<_>>(),
        true,
    );
    assert!(
        !stopped.is_empty() && stopped.len() < want.len(),
        "{}",
        stopped.len()
    );
    // The stopped job's output as it is now, for the rescaled resumes below.
    let copy = |to: &Path| {
        for i in 0..3 {
            let (from, to) = (out1.join(format!("node-{i}")), to.join(format!("node-{i}")));
            std::fs::create_dir_all(&to).unwrap();
            for e in std::fs::read_dir(&from).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    };
    let (out2, out4) = (d.join("out2"), d.join("out4"));
    copy(&out2);
    copy(&out4);

    // A new cluster (its own cluster and state directories) starts from the savepoint, into
    // the same output, and runs to the end: the output is exactly the single process's.
    let mut resume = args(&out1, &d.join("st2"), "3", "60000");
    resume.extend([
        "--from-savepoint".to_owned(),
        sp.to_str().unwrap().to_owned(),
    ]);
    let line = ok(&run(&resume.iter().map(String::as_str).collect::<Vec<_>>()));
    let c = common::counts(&line);
    assert_eq!(c["restarts"], "0", "{line}");
    assert_eq!(c["restored_from"], saved.checkpoint.to_string(), "{line}");
    assert_eq!(
        windows(
            &outputs(&out1)
                .iter()
                .map(|p| p.as_path())
                .collect::<Vec<_>>()
        ),
        want
    );

    // Rescaled: the same savepoint onto 2 nodes, and onto 4, each into its copy of the stopped
    // output. Node i takes the key groups it owns now and the input splits at positions
    // j % N == i with the positions the old nodes saved; the old nodes' staged parts are
    // committed by the new node their state falls to (node 2's, onto 2 nodes, by node 0, in
    // node 2's directory, which no node writes to any more).
    for (out, nodes) in [(&out2, "2"), (&out4, "4")] {
        let mut resume = args(out, &d.join(format!("st-{nodes}")), nodes, "60000");
        resume.extend([
            "--from-savepoint".to_owned(),
            sp.to_str().unwrap().to_owned(),
            "--max-restarts".to_owned(),
            "0".to_owned(),
        ]);
        let line = ok(&run(&resume.iter().map(String::as_str).collect::<Vec<_>>()));
        let c = common::counts(&line);
        assert_eq!(c["restarts"], "0", "{line}");
        assert_eq!(c["restored_from"], saved.checkpoint.to_string(), "{line}");
        let n: usize = nodes.parse().unwrap();
        let mut rows = Vec::new();
        for i in 0..n.max(3) {
            let dir = out.join(format!("node-{i}"));
            // A directory no node owns now keeps the hidden parts written after the
            // savepoint (never read: a file source skips hidden files).
            rows.extend(committed(&[dir.as_path()], i >= n));
        }
        rows.sort();
        assert_eq!(rows.len(), want.len(), "onto {nodes} nodes");
        assert_eq!(rows, want, "onto {nodes} nodes");
        // The copies of the old nodes' parts are gone once each node wrote a checkpoint.
        let left = find_dirs(&d.join(format!("st-{nodes}")), "rescale-");
        assert!(left.is_empty(), "onto {nodes} nodes: {left:?}");
    }

    // A job whose sources do not read shares of one input cannot be rescaled: its nodes say
    // how to make it one that can.
    let (out3, st3) = (d.join("out3"), d.join("st3"));
    let mut two = args(&out3, &st3, "2", "60000");
    two.truncate(two.len() - 2);
    two.extend([
        "--from-savepoint".to_owned(),
        live.to_str().unwrap().to_owned(),
        "--max-restarts".to_owned(),
        "0".to_owned(),
    ]);
    let o = run(&two.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success());
    // Both nodes refuse; the first to fail ends the attempt, so either may have said it.
    let log: String = (0..2)
        .map(|i| {
            std::fs::read_to_string(st3.join(format!("cluster/logs/e0001-node-{i}.stderr")))
                .unwrap_or_default()
        })
        .collect();
    assert!(log.contains("give it `.share(node, nodes)`"), "{log}");
    if std::env::var_os("KEEPD").is_none() {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// A free UDP port on loopback (a node agent's data address).
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn w3_submitted_to_a_coordinator_over_quic_survives_a_lost_node_and_a_coordinator_restart_exactly()
{
    use std::sync::Arc;
    use std::time::Duration;
    use weir_cluster::coord::{
        AgentConfig, Client, Coordinator, CoordinatorConfig, JobSpec, run_agent,
    };
    use weir_cluster::tls::NodeIdentity;
    use weir_cluster::transport::{QuicConfig, QuicTransport, Transport};

    let d = common::dir("cluster", "coordinator");
    let input = d.join("events.csv");
    let input_s = input.to_str().unwrap();
    ok(&run(&[
        "w3-gen", "--events", "60000", "--output", input_s, "--seed", "7",
    ]));
    let single = d.join("single");
    ok(&run(&[
        "w3-job",
        "--input",
        input_s,
        "--output",
        single.to_str().unwrap(),
        "--state-dir",
        d.join("single-state").to_str().unwrap(),
        "--checkpoint-interval-ms",
        "50",
    ]));
    let want = windows(&[&single]);
    // Line i of the events goes to node i % 3, as `w3-job --nodes 3` splits them.
    let parts = d.join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let mut split = vec![String::new(); 3];
    for (i, line) in std::fs::read_to_string(&input).unwrap().lines().enumerate() {
        split[i % 3].push_str(line);
        split[i % 3].push('\n');
    }
    for (i, s) in split.iter().enumerate() {
        std::fs::write(parts.join(format!("input-{i}.csv")), s).unwrap();
    }

    let certs = d.join("certs");
    let names = [
        "coordinator",
        "node-a",
        "node-b",
        "node-c",
        "node-d",
        "client",
    ];
    weir_cluster::tls::write_cluster_certs(&certs, &names).unwrap();
    let endpoint = |name: &str| -> Arc<QuicTransport> {
        let id = NodeIdentity::load(&certs, name).unwrap();
        QuicTransport::bind(QuicConfig::new(id, ([127, 0, 0, 1], 0).into())).unwrap()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let cq = endpoint("coordinator");
    let at = cq.local_addr().unwrap();
    let coordinator = Coordinator::serve(
        cq as Arc<dyn Transport>,
        CoordinatorConfig::new("coordinator", d.join("coordinator")),
    );
    // Four nodes join; the job takes three (in name order), node-d is the spare.
    let mut agents = std::collections::BTreeMap::new();
    for n in &names[1..5] {
        let q = endpoint(n);
        q.add_peer("coordinator", at);
        let cfg = AgentConfig {
            name: (*n).into(),
            coordinator: "coordinator".into(),
            data: ([127, 0, 0, 1], free_port()).into(),
            certs: certs.clone(),
            work: d.join(n),
            max_backoff: Duration::from_millis(500),
        };
        agents.insert(
            *n,
            rt.spawn(async move { run_agent(q as Arc<dyn Transport>, cfg).await }),
        );
    }
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while coordinator.status().nodes.len() < 4 {
        assert!(
            std::time::Instant::now() < until,
            "{:?}",
            coordinator.status()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let cl = endpoint("client");
    cl.add_peer("coordinator", at);
    let client = Arc::new(Client::new(cl as Arc<dyn Transport>, "coordinator"));
    let out = d.join("out");
    let arg = |p: &Path| p.to_str().unwrap().to_owned();
    let spec = JobSpec {
        name: "w3".into(),
        nodes: 3,
        program: vec![
            common::BIN.into(),
            "w3-node".into(),
            "--input".into(),
            arg(&parts.join("input-{node}.csv")),
            "--output".into(),
            arg(&out.join("node-{node}")),
            // Each machine its own disk: a spare that takes an index has none of its state.
            "--state-dir".into(),
            arg(&d.join("disks/{name}")),
            "--checkpoint-interval-ms".into(),
            "50".into(),
            "--rate".into(),
            "4000".into(),
        ],
        max_restarts: 5,
    };
    assert_eq!(rt.block_on(client.submit(spec)).unwrap(), "w3");
    // Polls the coordinator's status until `done` holds for the job.
    let wait = |what: &str, done: &dyn Fn(&weir_cluster::coord::JobInfo) -> bool| {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let s = rt.block_on(client.status());
            if let Some(j) = s.as_ref().ok().and_then(|s| s.jobs.first())
                && done(j)
            {
                return j.clone();
            }
            assert!(std::time::Instant::now() < until, "{what}: {s:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Once some checkpoints completed, node-a is lost (its agent and program are gone).
    let first = wait("checkpoints of attempt 1", &|j| {
        j.latest_complete >= Some(3)
    });
    assert_eq!(first.epoch, 1);
    assert_eq!(first.nodes, ["node-a", "node-b", "node-c"]);
    agents.remove("node-a").unwrap().abort();
    // The spare takes its index; once attempt 2 completed checkpoints of its own, the
    // coordinator itself restarts (a new process on the same address and directory).
    let second = wait("checkpoints of attempt 2", &|j| {
        j.epoch == 2 && j.latest_complete >= first.latest_complete.map(|c| c + 3)
    });
    assert_eq!(second.nodes, ["node-d", "node-b", "node-c"]);
    assert_eq!(second.restarts, 1);
    rt.block_on(coordinator.shutdown());
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let cq = loop {
        let id = NodeIdentity::load(&certs, "coordinator").unwrap();
        match QuicTransport::bind(QuicConfig::new(id, at)) {
            Ok(q) => break q,
            Err(e) => assert!(std::time::Instant::now() < until, "{at}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let coordinator = Coordinator::serve(
        cq as Arc<dyn Transport>,
        CoordinatorConfig::new("coordinator", d.join("coordinator")),
    );
    let end = wait("the end after the coordinator's restart", &|j| {
        j.state != "running" && j.state != "waiting" && j.epoch >= 3
    });
    assert_eq!(
        (end.state.as_str(), end.epoch, end.restarts),
        ("finished", 3, 2)
    );
    assert_eq!(end.nodes, ["node-d", "node-b", "node-c"]);
    // The spare restored index 0's checkpoint from the job's store onto its empty disk.
    let log = std::fs::read_to_string(d.join("node-d/logs/w3-e0002.stderr")).unwrap();
    assert!(log.contains(w3_copied()), "{log}");
    let got = windows(
        &(0..3)
            .map(|i| out.join(format!("node-{i}")))
            .collect::<Vec<_>>()
            .iter()
            .map(|p| p.as_path())
            .collect::<Vec<_>>(),
    );
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    drop(coordinator);
    for (_, a) in agents {
        a.abort();
    }
    drop(rt);
    let _ = std::fs::remove_dir_all(&d);
}

/// What a w3 node prints when its restore point came from the job's store.
fn w3_copied() -> &'static str {
    "copied from the job's store"
}

/// Directories under `root` (at any depth) whose names start with `prefix`.
fn find_dirs(root: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    found.push(e.path());
                } else {
                    todo.push(e.path());
                }
            }
        }
    }
    found
}
