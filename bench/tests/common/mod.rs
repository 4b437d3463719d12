//! What the tests that run the `weir-bench` binary share: fresh directories, running it, reading
//! its JSON lines, and a crash harness run whose counts must all be 0.

#![allow(dead_code, reason = "each test file uses a subset")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_weir-bench");

/// The counts of a crash harness's line that must all be 0 for an exact run.
pub const EXACT: [&str; 8] = [
    "lost",
    "duplicates",
    "reordered",
    "corrupt",
    "state_mismatches",
    "late",
    "leftover_tmp",
    "parts_out_of_order",
];

/// A fresh directory under the system's temporary directory, named after the test file's
/// `prefix` and `name`.
pub fn dir(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-{prefix}-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the binary with `args`.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// The fields of a JSON line of numbers, strings and nulls, by name (values as written).
pub fn counts(line: &str) -> BTreeMap<String, String> {
    line.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(",\"")
        .filter_map(|kv| {
            let (k, v) = kv.split_once("\":")?;
            Some((k.trim_matches('"').to_owned(), v.to_owned()))
        })
        .collect()
}

/// Runs a crash harness (`args`, whose work directory is `d`), asserts each of `zero` is 0 in its
/// line, that every requested kill landed, no run failed on its own and it exited 0; its fields.
pub fn crash_is_exact(d: &PathBuf, args: &[&str], zero: &[&str]) -> BTreeMap<String, String> {
    let mut all = args.to_vec();
    all.extend(["--workdir", d.to_str().unwrap()]);
    let out = run(&all);
    let line = String::from_utf8(out.stdout).unwrap();
    let c = counts(&line);
    for k in zero {
        assert_eq!(c.get(*k).map(String::as_str), Some("0"), "{k} in {line}");
    }
    assert_eq!(c["job_error"], "null", "{line}");
    assert!(
        out.status.success(),
        "{line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(d);
    c
}
