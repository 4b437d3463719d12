//! The coordinator over the memory transport: node agents join, a submitted job runs
//! restart-all over them (an epoch per attempt), a lost node is replaced by a spare one, a
//! cancel stops every node, and a job without enough nodes or that keeps failing fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir_cluster::coord::{
    AgentConfig, Client, ClientError, Coordinator, CoordinatorConfig, JobEnd, JobSpec, run_agent,
};
use weir_cluster::transport::{MemoryNetwork, Transport};

struct Dir(PathBuf);

impl Dir {
    fn new(what: &str) -> Self {
        let d = std::env::temp_dir().join(format!("weir-coord-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Cluster {
    net: Arc<MemoryNetwork>,
    coordinator: Option<Coordinator>,
    cfg: CoordinatorConfig,
    agents: Vec<(String, tokio::task::JoinHandle<()>)>,
    dir: PathBuf,
}

impl Cluster {
    fn new(dir: &Path, wait_nodes: Duration) -> Self {
        let net = MemoryNetwork::new(64);
        let mut cfg = CoordinatorConfig::new("coordinator", dir.join("coordinator"));
        cfg.wait_nodes = wait_nodes;
        let coordinator =
            Coordinator::serve(net.node("coordinator") as Arc<dyn Transport>, cfg.clone());
        Self {
            net,
            coordinator: Some(coordinator),
            cfg,
            agents: Vec::new(),
            dir: dir.to_path_buf(),
        }
    }
    /// Stops the coordinator and starts another on the same directory (a restarted pod).
    async fn restart_coordinator(&mut self) {
        // The old one stops first: its sessions end, so the nodes lose it and join again.
        if let Some(c) = self.coordinator.take() {
            c.shutdown().await;
        }
        let t = self.net.node("coordinator") as Arc<dyn Transport>;
        self.coordinator = Some(Coordinator::serve(t, self.cfg.clone()));
    }
    fn coordinator(&self) -> &Coordinator {
        self.coordinator.as_ref().unwrap()
    }
    fn work(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    fn join(&mut self, name: &str, port: u16) {
        let cfg = AgentConfig {
            name: name.into(),
            coordinator: "coordinator".into(),
            data: ([127, 0, 0, 1], port).into(),
            certs: self.dir.join("certs"),
            work: self.work(name),
            max_backoff: Duration::from_millis(200),
        };
        let t = self.net.node(name) as Arc<dyn Transport>;
        let task = tokio::spawn(async move {
            let _ = run_agent(t, cfg).await;
        });
        self.agents.push((name.to_owned(), task));
    }
    /// Stops node `name`'s agent (its program is killed with it).
    fn lose(&mut self, name: &str) {
        let i = self.agents.iter().position(|(n, _)| n == name).unwrap();
        self.agents.remove(i).1.abort();
    }
    fn client(&self) -> Client {
        Client::new(self.net.node("client") as Arc<dyn Transport>, "coordinator")
    }
    async fn wait_joined(&self, n: usize) {
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.coordinator().status().nodes.len() < n {
            assert!(
                tokio::time::Instant::now() < until,
                "{:?}",
                self.coordinator().status()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    fn log(&self, node: &str, job: &str, epoch: u64, what: &str) -> String {
        std::fs::read_to_string(
            self.work(node)
                .join(format!("logs/{job}-e{epoch:04}.{what}")),
        )
        .unwrap_or_default()
    }
}

fn spec(name: &str, nodes: usize, script: &str, max_restarts: u32) -> JobSpec {
    JobSpec {
        name: name.into(),
        nodes,
        program: vec!["sh".into(), "-c".into(), script.into()],
        max_restarts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_restart_all_over_the_joined_nodes_with_their_places_in_its_environment() {
    let d = Dir::new("restart");
    let mut c = Cluster::new(&d.0, Duration::from_secs(10));
    for (i, n) in ["node-c", "node-a", "node-b"].iter().enumerate() {
        c.join(n, 7000 + i as u16);
    }
    c.wait_joined(3).await;
    // Node 1 fails in the first attempt; every node runs again in the second.
    let script = r#"echo "$WEIR_NODE/$WEIR_NODES e$WEIR_EPOCH {name} {node} $WEIR_PEERS $WEIR_CERTS $WEIR_CLUSTER_DIR"; if [ "$WEIR_EPOCH" = 1 ] && [ "$WEIR_NODE" = 1 ]; then echo boom >&2; exit 3; fi"#;
    let mut progress = Vec::new();
    let end = c
        .client()
        .run(spec("wc", 3, script, 5), |p| progress.push(p.to_owned()))
        .await
        .unwrap();
    assert_eq!(
        end,
        JobEnd::Finished {
            epoch: 2,
            restarts: 1
        }
    );
    assert_eq!(
        progress,
        [
            "job wc accepted",
            "attempt 1 started on node-a, node-b, node-c",
            "attempt 1 failed: node 1 (node-b) exited 3: boom; restarting every node",
            "attempt 2 started on node-a, node-b, node-c",
            "every node finished in attempt 2 (1 restarts)",
        ]
    );
    let job_dir = d.0.join("coordinator/jobs/wc");
    let peers = "node-a=127.0.0.1:7001,node-b=127.0.0.1:7002,node-c=127.0.0.1:7000";
    let certs = d.0.join("certs");
    for (i, n) in ["node-a", "node-b", "node-c"].iter().enumerate() {
        assert_eq!(
            c.log(n, "wc", 2, "stdout"),
            format!(
                "{i}/3 e2 {n} {i} {peers} {} {}\n",
                certs.display(),
                job_dir.display()
            )
        );
    }
    // Each attempt began a new epoch in the job's fence; the job's state is recorded.
    assert_eq!(
        std::fs::read_to_string(job_dir.join("fence/EPOCH"))
            .unwrap()
            .trim(),
        "2"
    );
    assert_eq!(
        std::fs::read_to_string(job_dir.join("state")).unwrap(),
        "finished 2 1\n"
    );
    let s = c.client().status().await.unwrap();
    assert_eq!(s.coordinator, "coordinator");
    assert_eq!(s.jobs.len(), 1);
    let j = &s.jobs[0];
    assert_eq!(
        (j.state.as_str(), j.epoch, j.restarts, j.nodes.clone()),
        (
            "finished",
            2,
            1,
            vec!["node-a".into(), "node-b".into(), "node-c".into()]
        )
    );
    assert!(s.nodes.iter().all(|n| n.running.is_none()), "{s:?}");
    // The same name again once it ended: a new run, in the same directory's next epoch.
    let end = c
        .client()
        .run(spec("wc", 2, "true", 0), |_| {})
        .await
        .unwrap();
    assert_eq!(
        end,
        JobEnd::Finished {
            epoch: 3,
            restarts: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_is_replaced_by_a_spare_and_the_others_keep_their_index() {
    let d = Dir::new("spare");
    let mut c = Cluster::new(&d.0, Duration::from_secs(10));
    for (i, n) in ["node-a", "node-b", "node-c"].iter().enumerate() {
        c.join(n, 7100 + i as u16);
    }
    c.wait_joined(3).await;
    // Attempt 1 runs until a node is lost; attempt 2 ends at once.
    let script = r#"if [ "$WEIR_EPOCH" = 1 ]; then sleep 60; fi; echo "{name} {node}""#;
    let client = c.client();
    let job = tokio::spawn(async move {
        let mut progress = Vec::new();
        let end = client
            .run(spec("spare", 2, script, 5), |p| progress.push(p.to_owned()))
            .await;
        (end, progress)
    });
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = c.coordinator().status();
        if s.jobs.first().is_some_and(|j| j.state == "running") {
            assert_eq!(s.jobs[0].nodes, ["node-a", "node-b"]);
            break;
        }
        assert!(tokio::time::Instant::now() < until, "{s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.lose("node-a");
    let (end, progress) = job.await.unwrap();
    assert_eq!(
        end.unwrap(),
        JobEnd::Finished {
            epoch: 2,
            restarts: 1
        }
    );
    assert_eq!(
        progress,
        [
            "job spare accepted",
            "attempt 1 started on node-a, node-b",
            "attempt 1 failed: node 0 (node-a) left the coordinator; restarting every node",
            "attempt 2 started on node-c, node-b",
            "every node finished in attempt 2 (1 restarts)",
        ]
    );
    assert_eq!(c.log("node-c", "spare", 2, "stdout"), "node-c 0\n");
    assert_eq!(c.log("node-b", "spare", 2, "stdout"), "node-b 1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_every_node_and_a_second_cancel_is_refused() {
    let d = Dir::new("cancel");
    let mut c = Cluster::new(&d.0, Duration::from_secs(10));
    c.join("node-a", 7200);
    c.join("node-b", 7201);
    c.wait_joined(2).await;
    let job = c
        .client()
        .submit(spec("long", 2, "echo started; exec sleep 60", 0))
        .await
        .unwrap();
    assert_eq!(job, "long");
    // Both programs started.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while ["node-a", "node-b"]
        .iter()
        .any(|n| c.log(n, "long", 1, "stdout") != "started\n")
    {
        assert!(tokio::time::Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A job of the same name cannot start while it runs.
    assert_eq!(
        c.client()
            .submit(spec("long", 1, "true", 0))
            .await
            .unwrap_err()
            .to_string(),
        "the coordinator refused: job \"long\" is running already"
    );
    let end = c.client().cancel(None).await.unwrap();
    assert_eq!(end, ("long".to_owned(), JobEnd::Cancelled { epoch: 1 }));
    let s = c.client().status().await.unwrap();
    assert_eq!(s.jobs[0].state, "cancelled");
    assert!(s.nodes.iter().all(|n| n.running.is_none()), "{s:?}");
    match c.client().cancel(Some("long".into())).await {
        Err(ClientError::Refused(r)) => assert_eq!(r, "job \"long\" is cancelled, not running"),
        other => panic!("{other:?}"),
    }
    match c.client().cancel(None).await {
        Err(ClientError::Refused(r)) => assert_eq!(r, "no job is running"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_nodes_or_too_many_failures_fail_the_job() {
    let d = Dir::new("fail");
    let mut c = Cluster::new(&d.0, Duration::from_millis(300));
    c.join("node-a", 7300);
    c.wait_joined(1).await;
    let mut progress = Vec::new();
    let end = c
        .client()
        .run(spec("big", 2, "true", 0), |p| progress.push(p.to_owned()))
        .await
        .unwrap();
    assert_eq!(
        end,
        JobEnd::Failed {
            epoch: 0,
            restarts: 0,
            reason: "only 1 of the 2 nodes the job needs joined and are free after 300ms".into()
        }
    );
    assert_eq!(
        progress,
        ["job big accepted", "waiting for nodes: 1 of 2 free"]
    );
    let end = c
        .client()
        .run(spec("bad", 1, "echo no >&2; exit 1", 2), |_| {})
        .await
        .unwrap();
    assert_eq!(
        end,
        JobEnd::Failed {
            epoch: 3,
            restarts: 3,
            reason: "gave up after 3 restarts; the last: node 0 (node-a) exited 1: no".into()
        }
    );
    // Refused at once: no program, no nodes, a bad name.
    for (s, why) in [
        (spec("x", 1, "", 0), None),
        (spec("x", 0, "true", 0), Some("a job needs at least 1 node")),
        (
            spec("a/b", 1, "true", 0),
            Some("job name \"a/b\": 1 to 64 letters, digits, '-' or '_'"),
        ),
    ] {
        let mut s = s;
        if why.is_none() {
            s.program.clear();
        }
        match c.client().run(s, |_| {}).await {
            Err(ClientError::Refused(r)) => {
                assert_eq!(r, why.unwrap_or("a job needs a program"));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn each_index_owns_the_key_groups_the_exchange_routes_to_it() {
    use weir_cluster::coord::proto::key_group_range;
    for n in 1..=12 {
        let mut covered = 0;
        for i in 0..n {
            let (lo, hi) = key_group_range(i, n);
            assert_eq!(lo, covered, "{i} of {n}");
            for g in lo..hi {
                assert_eq!(
                    weir_graph::subtask_for_key_group(g, n),
                    i,
                    "group {g}, {n} nodes"
                );
            }
            covered = hi;
        }
        assert_eq!(covered, weir_graph::MAX_KEY_GROUPS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_resumes_its_running_jobs_on_the_same_nodes() {
    let d = Dir::new("resume");
    let mut c = Cluster::new(&d.0, Duration::from_secs(10));
    c.join("node-b", 7400);
    c.join("node-a", 7401);
    c.wait_joined(2).await;
    let script =
        r#"if [ "$WEIR_EPOCH" = 1 ]; then exec sleep 60; fi; echo "{name} {node} $WEIR_EPOCH""#;
    c.client()
        .submit(spec("resume", 2, script, 5))
        .await
        .unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while ["node-a", "node-b"]
        .iter()
        .any(|n| !c.work(n).join("logs/resume-e0001.stdout").exists())
    {
        assert!(tokio::time::Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Neither the new coordinator's start nor its status come from memory: they are read back
    // from the job's directory.
    c.restart_coordinator().await;
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    let job = loop {
        let s = c.client().status().await.unwrap();
        if let Some(j) = s.jobs.first()
            && j.state == "finished"
        {
            break j.clone();
        }
        assert!(tokio::time::Instant::now() < until, "{s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        (job.epoch, job.restarts, job.nodes.clone()),
        (2, 1, vec!["node-a".to_owned(), "node-b".to_owned()])
    );
    assert_eq!(c.log("node-a", "resume", 2, "stdout"), "node-a 0 2\n");
    assert_eq!(c.log("node-b", "resume", 2, "stdout"), "node-b 1 2\n");
    // Once more: an ended job is listed as it ended and not run again.
    c.restart_coordinator().await;
    let s = c.client().status().await.unwrap();
    assert_eq!(s.jobs.len(), 1);
    assert_eq!(
        (
            s.jobs[0].state.as_str(),
            s.jobs[0].epoch,
            s.jobs[0].restarts
        ),
        ("finished", 2, 1)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!c.work("node-a").join("logs/resume-e0003.stdout").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_script_runs_with_the_nodes_interpreter() {
    let d = Dir::new("python");
    let mut c = Cluster::new(&d.0, Duration::from_secs(10));
    c.join("node-a", 7500);
    c.wait_joined(1).await;
    let script = d.0.join("job.py");
    std::fs::write(
        &script,
        "import os, sys\nprint(os.environ['WEIR_NODE'], os.environ['WEIR_PEERS'], sys.argv[1:])\n",
    )
    .unwrap();
    let spec = JobSpec {
        name: "py".into(),
        nodes: 1,
        program: vec![script.display().to_string(), "{name}".into()],
        max_restarts: 0,
    };
    let end = c.client().run(spec, |_| {}).await.unwrap();
    assert_eq!(
        end,
        JobEnd::Finished {
            epoch: 1,
            restarts: 0
        }
    );
    assert_eq!(
        c.log("node-a", "py", 1, "stdout"),
        "0 node-a=127.0.0.1:7500 ['node-a']\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_submissions_of_one_name_at_once_one_runs_and_the_other_is_refused() {
    let d = Dir::new("race");
    let mut c = Cluster::new(&d.0, Duration::from_secs(10));
    c.join("node-a", 7600);
    c.wait_joined(1).await;
    let (a, b) = (c.client(), c.client());
    let (ra, rb) = tokio::join!(
        a.submit(spec("twice", 1, "exec sleep 60", 0)),
        b.submit(spec("twice", 1, "exec sleep 60", 0))
    );
    let mut results = [ra.map_err(|e| e.to_string()), rb.map_err(|e| e.to_string())];
    results.sort();
    assert_eq!(
        results,
        [
            Ok("twice".to_owned()),
            Err("the coordinator refused: job \"twice\" is running already".to_owned())
        ]
    );
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.coordinator().status().jobs[0].state != "running" {
        assert!(tokio::time::Instant::now() < until);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (job, end) = c.client().cancel(None).await.unwrap();
    assert_eq!(
        (job.as_str(), end),
        ("twice", JobEnd::Cancelled { epoch: 1 })
    );
}
