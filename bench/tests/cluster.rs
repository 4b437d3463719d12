//! W3 on a local cluster of node processes (RELIABILITY S18): `w3-job --nodes 3` commits
//! exactly the windows the single-process job commits, and `crash-cluster` SIGKILLs random
//! nodes ten times and finds the union of the nodes' committed output exact.

mod common;

use common::run;
use std::path::Path;

/// Every committed `key,window_start,sum` line under `dirs`, sorted.
fn windows(dirs: &[&Path]) -> Vec<(u32, i64, u64)> {
    let mut rows = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
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
    let zero = [
        "lost",
        "duplicates",
        "reordered",
        "corrupt",
        "state_mismatches",
        "late",
        "leftover_tmp",
        "parts_out_of_order",
    ];
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
        &zero,
    );
    assert_eq!(c["kills"], "10", "{c:?}");
    assert_eq!(c["records"], c["windows"], "{c:?}");
    assert_eq!(c["attempts"], "11", "{c:?}");
    assert_eq!(c["ok"], "true", "{c:?}");
}

#[test]
fn killed_nodes_restarted_on_empty_disks_restore_from_the_store_and_stay_exact() {
    let d = common::dir("cluster", "crash-fresh-disk");
    let zero = [
        "lost",
        "duplicates",
        "reordered",
        "corrupt",
        "state_mismatches",
        "late",
        "leftover_tmp",
        "parts_out_of_order",
    ];
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
        &zero,
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
