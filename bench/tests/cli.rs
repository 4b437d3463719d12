//! `weir-bench`'s command line: unknown commands and flags are usage errors (exit code 2) with a
//! suggestion, and the existing command lines still parse.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_weir-bench");

/// Exit code and stderr of `weir-bench <args>`.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("weir-bench runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_workload_is_a_usage_error_with_a_suggestion() {
    let (code, out, err) = run(&["w4"]);
    assert_eq!(code, Some(2));
    assert_eq!(out, "");
    assert!(
        err.starts_with("error: unrecognized subcommand 'w4'"),
        "{err}"
    );
    let (code, _, err) = run(&["crash-entitys", "--kills", "1"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(
            "tip: some similar subcommands exist: 'crash-cluster', 'crash', 'crash-entities'"
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_flag_is_a_usage_error_with_a_suggestion() {
    for (args, tip) in [
        (&["w1", "--nn", "3"][..], "'--n'"),
        (&["crash", "--kill", "3"][..], "'--kills'"),
        (&["state-keys", "--key", "3"][..], "'--keys'"),
        (
            &["ckpt-backpressure", "--sink-rat", "3"][..],
            "'--sink-rate'",
        ),
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert_eq!(out, "", "{args:?}");
        assert!(
            err.contains(&format!("tip: a similar argument exists: {tip}")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn workload_flags_parse_before_and_after_the_workload() {
    for args in [&["w1", "--n", "300"][..], &["--n", "300", "w1"][..]] {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        for (l, variant) in lines.iter().zip(["baseline_loop", "fused", "boundary"]) {
            assert!(
                l.starts_with(&format!(
                    "{{\"workload\":\"w1\",\"variant\":\"{variant}\",\"n\":300,\"parallelism\":1,"
                )),
                "{l}"
            );
            assert!(l.ends_with(",\"checksum\":\"29700\"}"), "{l}");
        }
    }
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "w1",
        "w2",
        "chain",
        "latency",
        "actors",
        "all",
        "w3-gen",
        "w3-job",
        "w3-node",
        "crash",
        "crash-cluster",
        "w3",
        "entities-job",
        "crash-entities",
        "ckpt-backpressure",
        "persistence",
        "regions",
        "state-keys",
        "w2-job",
        "w2-node",
        "cluster-backpressure",
        "cluster-backpressure-node",
        "fuzz-frames",
        "columnar-files",
    ] {
        let (code, out, _) = run(&[cmd, "--help"]);
        assert_eq!(code, Some(0), "{cmd}");
        assert!(
            out.contains(&format!("Usage: weir-bench {cmd}")),
            "{cmd}: {out}"
        );
    }
}

#[test]
fn columnar_files_prints_one_json_line_per_variant_with_agreeing_checksums() {
    let (code, out, err) = run(&["columnar-files", "--n", "5e4", "--repeat", "2"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let variants: Vec<&str> = lines
        .iter()
        .map(|l| l["variant"].as_str().unwrap())
        .collect();
    let mut want = Vec::new();
    for f in ["parquet", "ipc"] {
        want.push(format!("{f}_write"));
        want.push(format!("{f}_write_direct"));
        for _ in 0..2 {
            want.push(format!("{f}_read"));
            want.push(format!("{f}_read_direct"));
        }
    }
    assert_eq!(variants, want);
    // The value column of 5e4 W3 events sums to the same on every read.
    for l in lines
        .iter()
        .filter(|l| l["variant"].as_str().unwrap().contains("read"))
    {
        assert_eq!(l["checksum"], "2525000", "{l}");
        assert_eq!(l["n"], 50_000);
    }
}
