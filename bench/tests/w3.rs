//! The W3 job and its crash harness, run as the binary the checks use: a job without kills
//! commits exactly the windows a plain model computes from the input file (checkpoints off and
//! on), a bad line fails it naming the file and line, and the crash harness (RELIABILITY S1:
//! 20 random SIGKILLs; S3: kills during recovery; and kills of a job without checkpoints,
//! which replays from the start) finds the committed output exact; S5: a corrupt latest
//! checkpoint is skipped or named.

mod common;

use common::{counts, run};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    common::dir("w3", name)
}

fn generate(d: &Path, events: u64) -> PathBuf {
    let input = d.join("events.csv");
    let out = run(&[
        "w3-gen",
        "--events",
        &events.to_string(),
        "--output",
        input.to_str().unwrap(),
        "--seed",
        "11",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    input
}

/// The model: each key's sum per 1 s tumbling window, from the events file.
fn model(input: &Path) -> BTreeMap<(u32, i64), u64> {
    let mut m = BTreeMap::new();
    for line in std::fs::read_to_string(input).unwrap().lines() {
        let f: Vec<i64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(f.len(), 3, "{line}");
        *m.entry((f[0] as u32, f[2].div_euclid(1000) * 1000))
            .or_default() += f[1] as u64;
    }
    m
}

/// The committed windows in file-name order, and the names of every file in `output` (none
/// when the sink never created it).
fn committed(output: &Path) -> (Vec<(u32, i64, u64)>, Vec<String>) {
    let mut names: Vec<String> = match std::fs::read_dir(output) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", output.display()),
    };
    names.sort();
    let mut rows = Vec::new();
    for n in &names {
        for line in std::fs::read_to_string(output.join(n)).unwrap().lines() {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 3, "{n}: {line}");
            rows.push((
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            ));
        }
    }
    (rows, names)
}

/// Runs `w3-job` once to its end and checks its output against the model.
fn job_matches_the_model(name: &str, interval_ms: &str, rate: Option<&str>) -> String {
    let d = dir(name);
    let input = generate(&d, 30_000);
    let (output, state) = (d.join("out"), d.join("state"));
    let mut args = vec![
        "w3-job",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--checkpoint-interval-ms",
        interval_ms,
    ];
    if let Some(r) = rate {
        args.extend(["--rate", r]);
    }
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with("{\"workload\":\"w3_job\",\"events\":30000,\"seconds\":"),
        "{line}"
    );
    let (rows, names) = committed(&output);
    assert!(names.iter().all(|n| n.starts_with("part-")), "{names:?}");
    let got: BTreeMap<(u32, i64), u64> = rows.iter().map(|&(k, s, v)| ((k, s), v)).collect();
    assert_eq!(got.len(), rows.len(), "each window is committed once");
    assert_eq!(got, model(&input));
    // Each key's windows are committed in window order.
    let mut last: BTreeMap<u32, i64> = BTreeMap::new();
    for &(k, s, _) in &rows {
        assert!(last.insert(k, s).is_none_or(|p| p < s), "key {k}: {s}");
    }
    let _ = std::fs::remove_dir_all(&d);
    line
}

#[test]
fn a_job_without_checkpoints_commits_exactly_the_model_windows() {
    let line = job_matches_the_model("nockpt", "0", None);
    assert!(
        line.contains("\"checkpoints_completed\":0,\"last_checkpoint\":null,\"restored_from\":null,\"start_ms\":"),
        "{line}"
    );
    assert!(line.ends_with(",\"committed_parts\":1}\n"), "{line}");
}

#[test]
fn a_checkpointed_job_without_kills_commits_exactly_the_model_windows() {
    // 30,000 events at 20,000/s: 1.5 s, so checkpoints every 50 ms complete on the way.
    let line = job_matches_the_model("ckpt", "50", Some("20000"));
    assert!(line.contains("\"restored_from\":null"), "{line}");
    assert!(!line.contains("\"checkpoints_completed\":0,"), "{line}");
}

#[test]
fn a_bad_line_fails_the_job_naming_file_and_line_and_commits_nothing() {
    let d = dir("bad");
    let input = d.join("events.csv");
    std::fs::write(&input, "1,5,0\n2,6,1\n3,x,2\n4,7,3\n").unwrap();
    let output = d.join("out");
    let out = run(&[
        "w3-job",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--state-dir",
        d.join("state").to_str().unwrap(),
        "--checkpoint-interval-ms",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("w3-job failed: "), "{err}");
    // File, line and byte offset, the line and the field.
    let at = format!("{}:3 (byte offset 12)", input.display());
    assert!(err.contains(&at) && err.contains("\"3,x,2\""), "{err}");
    assert!(err.contains("field 1 (\"x\")"), "{err}");
    assert_eq!(committed(&output).1, Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&d);
}

/// The counts of the harness's JSON line, by name.
/// Runs `crash` and asserts every count of its line is 0 and it exits 0.
fn crash_is_exact(name: &str, args: &[&str], kills: u32) -> BTreeMap<String, String> {
    let mut all = vec!["crash", "--seed", "3"];
    all.extend(args);
    let c = common::crash_is_exact(&dir(name), &all, &common::EXACT);
    assert_eq!(c["kills"], kills.to_string(), "{c:?}");
    assert_eq!(c["records"], c["windows_expected"], "{c:?}");
    c
}

#[test]
fn the_harness_without_kills_or_checkpoints_finds_the_output_exact() {
    let c = crash_is_exact(
        "harness",
        &[
            "--kills",
            "0",
            "--checkpoint-interval-ms",
            "0",
            "--events",
            "40000",
            "--rate",
            "100000",
        ],
        0,
    );
    assert_eq!(c["runs"], "1");
    // 4 s of event time, 1,000 keys: two (key, window) pairs of seed 3 have no event.
    assert_eq!(c["windows_expected"], "3998");
}

#[test]
fn twenty_kills_without_checkpoints_replay_from_the_start_and_commit_once() {
    // Each run lives 100-300 ms of the 2 s the input takes, so every kill lands mid-run; with
    // no checkpoint each restart reads from the start, and the sink, which commits only at
    // the end, removes the parts the killed runs left.
    let c = crash_is_exact(
        "nockpt-kills",
        &[
            "--kills",
            "20",
            "--checkpoint-interval-ms",
            "0",
            "--events",
            "20000",
            "--max-delay-ms",
            "300",
        ],
        20,
    );
    assert_eq!(c["runs"], "21");
    assert_eq!(c["restored_from"], "null");
    assert_eq!(c["checkpoint_dirs"], "0");
}

#[test]
fn twenty_random_kills_lose_and_duplicate_nothing() {
    // S1: 20 kills, each run living 100-500 ms, checkpoints every 100 ms, 10,000 events/s.
    let c = crash_is_exact("s1", &["--kills", "20"], 20);
    assert_eq!(c["runs"], "21");
    assert_ne!(c["restored_from"], "null");
}

#[test]
fn five_kills_during_recovery_lose_and_duplicate_nothing() {
    // S3: one kill mid-run (after 1.5-2.5 s, so windows fired and checkpoints completed), then
    // five runs killed within 50 ms of their start, before a checkpoint of their own
    // completes; the seventh finishes.
    let c = crash_is_exact(
        "s3",
        &[
            "--kills",
            "1",
            "--min-delay-ms",
            "1500",
            "--max-delay-ms",
            "2500",
            "--recovery-kills",
            "5",
        ],
        6,
    );
    assert_ne!(c["restored_from"], "null");
    assert_eq!(c["recovery_kills"], "5");
    assert_eq!(c["recovery_kills_before_checkpoint"], "5");
    assert_eq!(c["runs"], "7");
    // Retention keeps 3 complete checkpoints; at most one more, incomplete, may be left.
    let dirs: u32 = c["checkpoint_dirs"].parse().unwrap();
    assert!((1..=4).contains(&dirs), "{dirs} checkpoint directories");
}

#[test]
fn a_corrupt_latest_checkpoint_falls_back_or_fails_naming_it() {
    // S5: after a kill 1.5-2.5 s in (windows fired, checkpoints completed), damage the newest
    // complete checkpoint three ways (root reads a chmod 000 manifest, so that fourth kind
    // needs another user). Falling back is right only if the sink did not commit what the
    // damaged checkpoint covered: the output must then still be exact.
    for how in ["flip-byte", "truncate-manifest", "delete-file"] {
        let d = dir(&format!("s5-{how}"));
        let out = run(&[
            "crash",
            "--workdir",
            d.to_str().unwrap(),
            "--kills",
            "1",
            "--min-delay-ms",
            "1500",
            "--max-delay-ms",
            "2500",
            "--corrupt",
            how,
        ]);
        let line = String::from_utf8(out.stdout).unwrap();
        let c = counts(&line);
        assert_eq!(c["corruption"], format!("\"{how}\""), "{line}");
        assert!(
            ["\"fallback\"", "\"clear_error\""].contains(&c["corruption_outcome"].as_str()),
            "{line}"
        );
        assert_eq!(c["older_checkpoint_files_changed"], "0", "{line}");
        if c["corruption_outcome"] == "\"fallback\"" {
            for k in ["lost", "duplicates", "state_mismatches", "leftover_tmp"] {
                assert_eq!(c[k], "0", "{k} in {line}");
            }
        }
        assert!(out.status.success(), "{line}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
