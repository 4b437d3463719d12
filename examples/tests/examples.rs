//! Runs every example and checks its output against a plain Rust model.

use std::collections::BTreeMap;

#[tokio::test]
async fn hello() {
    let out = weir_examples::hello::run().await.unwrap();
    assert_eq!(out, vec![6, 12, 18]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_fan_in() {
    let out = weir_examples::fan_out_fan_in::run().await.unwrap();
    assert_eq!(out, vec![0, 10, 20, 30, 40, 100, 101, 102, 103, 104]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_matches_a_hash_map_model() {
    let lines = weir::demo::zipf_corpus(2_000, 10, 500, 7);
    let mut model: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        for w in l.split_whitespace() {
            *model.entry(w.to_owned()).or_default() += 1;
        }
    }
    for p in [1, 3] {
        let got = weir_examples::word_count::run(lines.clone(), p)
            .await
            .unwrap();
        assert_eq!(
            got,
            model.clone().into_iter().collect::<Vec<_>>(),
            "parallelism {p}"
        );
    }
}

/// A directory of its own, removed when the test ends.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("weir-examples-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes two CSV inputs (one bad line) and returns the `key,value` lines the ETL must keep.
fn etl_input(dir: &std::path::Path) -> Vec<String> {
    let mut want = Vec::new();
    for (f, range) in [("a.csv", 0..300u64), ("b.csv", 300..700)] {
        let mut body = String::from("key,value,ts_ms\n");
        for i in range {
            let (k, v) = (i % 13, i % 100 + 1);
            body.push_str(&format!("{k},{v},{i}\n"));
            if v >= 50 {
                want.push(format!("{k},{v}"));
            }
            if i == 400 {
                body.push_str("7,oops,401\n");
            }
        }
        std::fs::write(dir.join(f), body).unwrap();
    }
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_etl_converts_every_good_event_and_sums_them_from_two_columns() {
    let d = TempDir::new("parquet-etl");
    let (input, output) = (d.0.join("in"), d.0.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    etl_input(&input);
    let report = weir_examples::parquet_etl::convert(&input, &output, 64, 4096)
        .await
        .unwrap();
    assert!(report.parts.len() > 1, "rolled by size: {:?}", report.parts);
    assert_eq!(report.bad_lines.len(), 1);
    assert!(report.bad_lines[0].contains("b.csv:103 (byte offset 938)"));
    let mut want = std::collections::BTreeMap::<u32, i64>::new();
    for i in 0..700u64 {
        *want.entry((i % 13) as u32).or_default() += (i % 100 + 1) as i64;
    }
    let got = weir_examples::parquet_etl::sums(&output).await.unwrap();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_etl_commits_the_kept_events_in_order() {
    let d = TempDir::new("file-etl");
    let (input, output) = (d.0.join("in"), d.0.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let want = etl_input(&input);
    let report = weir_examples::file_etl::run(&input, &output, 50, 1024)
        .await
        .unwrap();
    assert!(report.parts.len() > 1, "rolled by size");
    let mut got = Vec::new();
    for p in &report.parts {
        got.extend(
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_owned),
        );
    }
    assert_eq!(got, want);
    assert_eq!(
        report.bad_lines,
        [format!(
            "{}:103 (byte offset 938): field 1 (\"oops\") is not a valid u64: invalid digit \
             found in string",
            input.join("b.csv").display()
        )]
    );
}

fn run_bin(path: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn example_binaries_run() {
    assert_eq!(
        run_bin(env!("CARGO_BIN_EXE_hello"), &[]).trim(),
        "[6, 12, 18]"
    );
    assert_eq!(
        run_bin(env!("CARGO_BIN_EXE_fan_out_fan_in"), &[]).trim(),
        "[0, 10, 20, 30, 40, 100, 101, 102, 103, 104]"
    );
    let d = TempDir::new("file-etl-bin");
    let (input, output) = (d.0.join("in"), d.0.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let want = etl_input(&input);
    let parts = run_bin(
        env!("CARGO_BIN_EXE_file_etl"),
        &[input.to_str().unwrap(), output.to_str().unwrap()],
    );
    let got: Vec<String> = parts
        .lines()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(got, want);
    let wc = run_bin(env!("CARGO_BIN_EXE_word_count"), &["2"]);
    assert_eq!(wc.lines().count(), 10);
}

#[tokio::test]
async fn persistent_account_recovers_from_its_journal() {
    let (first, second) = weir_examples::persistent_account::run().await.unwrap();
    assert_eq!(
        first,
        vec![
            "alice +100 = 100",
            "bob +20 = 20",
            "alice -30 = 70",
            "bob -50 rejected (balance 20)"
        ]
    );
    assert_eq!(
        second,
        vec![
            "bob recovered with 20 after 1 events",
            "bob +5 = 25",
            "alice recovered with 70 after 2 events",
            "alice -70 = 0"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_counter_counts_each_word_with_its_own_entity() {
    let text = "a b a c b a d";
    let (counts, made) = weir_examples::sharded_counter::run(text).await.unwrap();
    let want: BTreeMap<String, u64> = [("a", 3), ("b", 2), ("c", 1), ("d", 1)]
        .map(|(w, n)| (w.to_owned(), n))
        .into();
    assert_eq!((counts, made), (want, 4));
}

/// Three nodes of one job in this process, each joining the others over QUIC with mutual
/// TLS through the cluster directory: the union of their counts is the word count, and each
/// word is counted on exactly one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_word_count_over_three_nodes_matches_the_model() {
    use weir::cluster::epoch::{Epoch, FencedStorage, FileEpochStore};
    use weir::cluster::job::{JobNode, LocalCluster, NodeSettings};
    let lines = weir::demo::zipf_corpus(2_000, 10, 500, 7);
    let mut model: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        for w in l.split_whitespace() {
            *model.entry(w.to_owned()).or_default() += 1;
        }
    }
    let dir = TempDir::new("cluster-word-count");
    let cluster = dir.0.join("cluster");
    LocalCluster::new(3, &cluster).prepare().unwrap();
    FencedStorage::new(std::sync::Arc::new(
        FileEpochStore::in_dir(cluster.join("fence")).unwrap(),
    ))
    .begin(Epoch(1))
    .unwrap();
    let mut tasks = Vec::new();
    for node in 0..3 {
        let s = NodeSettings::local(node, 3, &cluster, 1);
        let lines = lines.clone();
        tasks.push(tokio::spawn(async move {
            let n = JobNode::start(&s).await.unwrap();
            let counts = weir_examples::cluster_word_count::run_node(&lines, &n)
                .await
                .unwrap();
            n.finish().await.unwrap();
            counts
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let counts = t.await.unwrap();
        assert!(!counts.is_empty());
        all.extend(counts);
    }
    all.sort();
    assert_eq!(all, model.into_iter().collect::<Vec<_>>());
}

/// A ledger actor on node 0 of three node processes' job, told by every node through remote
/// refs over QUIC with mutual TLS: every node sees the total of all nodes' amounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ledger_over_three_nodes_sums_every_nodes_amounts() {
    use weir::cluster::epoch::{Epoch, FencedStorage, FileEpochStore};
    use weir::cluster::job::{JobNode, LocalCluster, NodeSettings};
    let dir = TempDir::new("cluster-ledger");
    let cluster = dir.0.join("cluster");
    LocalCluster::new(3, &cluster).prepare().unwrap();
    FencedStorage::new(std::sync::Arc::new(
        FileEpochStore::in_dir(cluster.join("fence")).unwrap(),
    ))
    .begin(Epoch(1))
    .unwrap();
    let mut tasks = Vec::new();
    for node in 0..3 {
        let s = NodeSettings::local(node, 3, &cluster, 1);
        tasks.push(tokio::spawn(async move {
            let n = JobNode::start(&s).await.unwrap();
            let total = weir_examples::cluster_ledger::run_node(&n, 200)
                .await
                .unwrap();
            n.finish().await.unwrap();
            total
        }));
    }
    let want: u64 = (0..3)
        .flat_map(|i| weir_examples::cluster_ledger::amounts(i, 200))
        .sum();
    assert_eq!(want, 600 * 601 / 2);
    for t in tasks {
        assert_eq!(t.await.unwrap(), want);
    }
}

/// The ledger example's binary over two node processes it starts as a local cluster.
#[test]
fn cluster_ledger_binary_prints_every_nodes_total() {
    let out = run_bin(env!("CARGO_BIN_EXE_cluster_ledger"), &["--nodes", "2"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "node 0: ledger total 2001000",
            "node 1: ledger total 2001000"
        ]
    );
}
