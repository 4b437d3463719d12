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
    let wc = run_bin(env!("CARGO_BIN_EXE_word_count"), &["2"]);
    assert_eq!(wc.lines().count(), 10);
}
