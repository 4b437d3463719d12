//! Every flow operator passes the engine's stage conformance suite: bounded buffering without
//! demand, exactly one terminal signal, completion / failure / cancellation propagation and stop
//! hooks that run exactly once.
//!
//! Then the table-driven suite: every case of `conformance/cases/*.json` (shared with the Python
//! API's `pyapi/tests/test_conformance.py`) is built from its operator's name and parameters and
//! run with probe sources and sinks; a case marked `pending` must fail (it documents behaviour
//! not met yet) and is reported, and one that passes fails the suite until its mark is removed.

mod conformance {
    pub mod build;
    pub mod json;
    pub mod run;
}

use std::time::Duration;
use weir_engine::testkit::check_flow;
use weir_graph::{Flow, StageError};
use weir_operators::async_ops::{map_async, map_async_unordered};
use weir_operators::keyed::{count_by_key, fold_by_key};
use weir_operators::simple::*;
use weir_operators::source::OverflowStrategy;
use weir_operators::time::*;

macro_rules! conformance {
    ($($name:ident => ($make:expr, $bound:expr);)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            check_flow(stringify!($name), || -> Flow<i64, _, ()> { $make }, $bound).await;
        }
    )*};
}

fn ok(x: &i64) -> Result<i64, StageError> {
    Ok(*x + 1)
}

conformance! {
    map_ => (map(|x: i64| x * 2), 0);
    filter_ => (filter(|x: &i64| x % 2 == 0), 0);
    filter_map_ => (filter_map(|x: i64| (x % 3 != 0).then_some(x)), 0);
    flat_map_ => (flat_map(|x: i64| vec![x, x]), 0);
    try_map_ => (try_map(ok), 0);
    scan_ => (scan(0i64, |a: &i64, x: i64| a + x), 0);
    // Aggregators consume without emitting until completion; they hold one accumulator (per key),
    // not the elements, so the number of elements they accept is not a buffer.
    fold_ => (fold(0i64, |a: i64, x: i64| a + x), u64::MAX / 4);
    reduce_ => (reduce(|a: i64, x: i64| a.max(x)), u64::MAX / 4);
    take_ => (take(7), 0);
    take_while_ => (take_while(|x: &i64| *x < 15), 0);
    drop_ => (drop(3), 0);
    drop_while_ => (drop_while(|x: &i64| *x < 3), 0);
    // Grouping stages emit one row per group, so the rows buffered downstream stand for several
    // inputs each: their bound scales with the group size.
    grouped_ => (grouped(5), 5 * 64);
    sliding_ => (sliding(4, 2), 2 * 64 + 4);
    intersperse_ => (intersperse(-1), 0);
    zip_with_index_ => (zip_with_index(), 0);
    inspect_ => (inspect(|_x: &i64| {}), 0);
    recover_ => (recover(|_e: &StageError| Some(-1)), 0);
    buffer_backpressure => (buffer(8, OverflowStrategy::Backpressure), 16);
    buffer_drop_head => (buffer(8, OverflowStrategy::DropHead), u64::MAX / 4);
    conflate_ => (conflate(|a: i64, x: i64| a + x), u64::MAX / 4);
    batch_ => (batch(10, |x: i64| vec![x], |mut v: Vec<i64>, x: i64| { v.push(x); v }), 10 * 64);
    expand_ => (expand(|x: i64| std::iter::once(x)), 0);
    delay_ => (delay_with_capacity(Duration::from_millis(1), 16), 16);
    grouped_within_ => (grouped_within(5, Duration::from_millis(5)), 5 * 64);
    throttle_ => (throttle(1_000_000, Duration::from_secs(1), 1000), 0);
    idle_timeout_ => (idle_timeout(Duration::from_secs(60)), 0);
    completion_timeout_ => (completion_timeout(Duration::from_secs(60)), 0);
    initial_timeout_ => (initial_timeout(Duration::from_secs(60)), 0);
    map_async_ => (map_async(4, |x: i64| async move { Ok::<_, StageError>(x + 1) }), 4);
    map_async_unordered_ => (map_async_unordered(4, |x: i64| async move { Ok::<_, StageError>(x + 1) }), 4);
    count_by_key_ => (count_by_key(|x: &i64| x % 5), u64::MAX / 4);
    fold_by_key_ => (fold_by_key(|x: &i64| x % 5, 0i64, |a: i64, x: i64| a + x), u64::MAX / 4);
}

fn cases_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/cases")
}

/// Runs every case of `file`, each in its own task (a panic or a hang fails that case only).
async fn run_file(file: &str) {
    use conformance::run::Case;
    let path = cases_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc = conformance::json::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let list = doc
        .get("cases")
        .and_then(|c| c.as_arr())
        .unwrap_or_else(|| panic!("{file}: no \"cases\" array"));
    let mut failed = Vec::new();
    let (mut passed, mut pending, mut skipped) = (0, 0, 0);
    for j in list {
        let case = Case::parse(j).unwrap_or_else(|e| panic!("{file}: {e}"));
        if case.only_py {
            skipped += 1;
            continue;
        }
        let case = std::sync::Arc::new(case);
        let c = std::sync::Arc::clone(&case);
        let outcome = match tokio::time::timeout(
            Duration::from_secs(30),
            tokio::spawn(async move { c.run().await }),
        )
        .await
        {
            Err(_) => Err("hung".to_owned()),
            Ok(Err(join)) => Err(format!("panicked: {join}")),
            Ok(Ok(r)) => r,
        };
        match (&case.pending, outcome) {
            (None, Ok(())) => passed += 1,
            (None, Err(e)) => failed.push(format!("FAIL {}: {e}", case.id)),
            (Some(why), Err(e)) => {
                pending += 1;
                eprintln!("pending {} ({why}): {e}", case.id);
            }
            (Some(why), Ok(())) => failed.push(format!(
                "PASSES {} though marked pending ({why}): remove the mark",
                case.id
            )),
        }
    }
    eprintln!(
        "{file}: {passed} passed, {pending} pending, {} wrong, {skipped} Python-only",
        failed.len()
    );
    assert!(failed.is_empty(), "{file}:\n{}", failed.join("\n"));
}

macro_rules! case_files {
    ($($name:ident => $file:literal;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run_file($file).await;
            }
        )*

        #[test]
        fn every_case_file_is_run() {
            let mut listed = vec![$($file),*];
            listed.sort_unstable();
            let mut found: Vec<String> = std::fs::read_dir(cases_dir())
                .expect("conformance/cases")
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect();
            found.sort_unstable();
            assert_eq!(found, listed, "add new case files to case_files!");
        }
    };
}

case_files! {
    cases_simple => "simple.json";
    cases_fan => "fan.json";
    cases_rate => "rate.json";
    cases_source => "source.json";
    cases_params => "params.json";
}
