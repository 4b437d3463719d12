//! `weir-bench actors` on small counts: every variant prints one JSON line with the checksum of
//! its closed-form sum, in order, and `--only` picks variants.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_weir-bench");

/// The `variant` and `checksum` of every line `weir-bench actors <args>` printed.
fn run(args: &[&str]) -> Vec<(String, Option<String>)> {
    let out = Command::new(BIN).arg("actors").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "weir-bench actors failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no failure reported"
    );
    let field = |line: &str, name: &str| {
        let key = format!("\"{name}\":\"");
        line.find(&key).map(|i| {
            let rest = &line[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
    };
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| (field(l, "variant").unwrap(), field(l, "checksum")))
        .collect()
}

fn sum_below(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

#[test]
fn every_variant_reports_its_exact_checksum() {
    let n = 4000;
    let asks = n / 4;
    let got = run(&["--n", "4000", "--actors", "200"]);
    let want: Vec<(String, Option<String>)> = [
        ("idle_actors", Some(200)),
        ("flow_count", Some(sum_below(n))),
        ("flow_emit", Some(sum_below(n) + n)),
        ("ractor_cast_loop", Some(sum_below(n))),
        ("ref_tell_loop", Some(sum_below(n))),
        ("ask_p16", Some(sum_below(asks) + asks)),
        ("ask_map_async_p16", Some(sum_below(asks) + asks)),
        ("ratio", None),
    ]
    .into_iter()
    .map(|(v, c)| (v.to_owned(), c.map(|c| c.to_string())))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn only_runs_the_named_variants() {
    let got = run(&["--n", "1000", "--only", "ask_p16,flow_emit"]);
    assert_eq!(
        got,
        vec![
            (
                "flow_emit".to_owned(),
                Some((sum_below(1000) + 1000).to_string())
            ),
            (
                "ask_p16".to_owned(),
                Some((sum_below(250) + 250).to_string())
            ),
        ]
    );
}
