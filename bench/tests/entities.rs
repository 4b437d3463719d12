//! The event-sourced account job and its crash harness, run as the binary the checks use: the
//! job's output equals a plain model of its input, a second run on the same state applies
//! nothing again, a bad line fails it naming the line, and 20 SIGKILLs (with checkpoints, and
//! without, replaying every command) lose and double no event.

mod common;

use common::{counts, run};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    common::dir("entities", name)
}

/// `entity_id,balance,events` of a plain fold over the input.
fn model(input: &Path) -> String {
    let mut m: BTreeMap<u32, (i64, u64)> = BTreeMap::new();
    for l in std::fs::read_to_string(input).unwrap().lines() {
        let (e, a) = l.split_once(',').unwrap();
        let acct = m.entry(e.parse().unwrap()).or_default();
        acct.0 += a.parse::<i64>().unwrap();
        acct.1 += 1;
    }
    m.iter()
        .map(|(e, (b, n))| format!("{e},{b},{n}\n"))
        .collect()
}

fn job(d: &Path, input: &Path, output: &Path) -> BTreeMap<String, String> {
    let out = run(&[
        "entities-job",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--state-dir",
        d.join("state").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    counts(&String::from_utf8(out.stdout).unwrap())
}

#[test]
fn the_job_matches_the_model_and_a_rerun_applies_nothing_again() {
    let d = dir("model");
    let input = d.join("commands.csv");
    let lines: String = (0..3000u64)
        .map(|i| format!("{},{}\n", (i * 7919) % 250, (i % 201) as i64 - 100))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let first = job(&d, &input, &d.join("out1.csv"));
    assert_eq!(
        (first["applied"].as_str(), first["entities"].as_str()),
        ("3000", "250")
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out1.csv")).unwrap(),
        model(&input)
    );
    let second = job(&d, &input, &d.join("out2.csv"));
    assert_eq!(second["applied"], "0", "{second:?}");
    assert_eq!(
        std::fs::read_to_string(d.join("out2.csv")).unwrap(),
        model(&input)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_bad_line_fails_the_job_naming_the_line() {
    let d = dir("bad");
    let input = d.join("commands.csv");
    std::fs::write(&input, "1,5\n2,x\n3,4\n").unwrap();
    let out = run(&[
        "entities-job",
        "--input",
        input.to_str().unwrap(),
        "--output",
        d.join("out.csv").to_str().unwrap(),
        "--state-dir",
        d.join("state").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("commands.csv:2 (byte offset 4)"), "{err}");
    assert!(err.contains("\"2,x\""), "{err}");
    assert!(!d.join("out.csv").exists());
    let _ = std::fs::remove_dir_all(&d);
}

fn crash_is_exact(name: &str, args: &[&str]) -> BTreeMap<String, String> {
    let mut all = vec!["crash-entities", "--seed", "5"];
    all.extend(args);
    let zero = ["lost_events", "duplicate_events", "state_mismatches"];
    let c = common::crash_is_exact(&dir(name), &all, &zero);
    assert_eq!(c["kills"], c["kills_requested"], "{c:?}");
    c
}

#[test]
fn twenty_kills_lose_and_double_no_event() {
    let c = crash_is_exact(
        "kills",
        &[
            "--kills",
            "20",
            "--entities",
            "500",
            "--rate",
            "10000",
            "--max-delay-ms",
            "400",
        ],
    );
    assert_eq!(c["runs"], "21");
}

#[test]
fn twenty_kills_without_checkpoints_replay_every_command_once() {
    let c = crash_is_exact(
        "kills-nockpt",
        &[
            "--kills",
            "20",
            "--entities",
            "500",
            "--rate",
            "10000",
            "--commands",
            "20000",
            "--max-delay-ms",
            "300",
            "--checkpoint-interval-ms",
            "0",
        ],
    );
    assert_eq!(c["runs"], "21");
}
