//! `BidiFlow` through the engine: composition order of `atop`, `join` and `reversed`,
//! materialized values, completion, failure and cancellation.

use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::TestSource;
use weir_graph::{BidiFlow, Flow, Keep, Sink, Source};
use weir_operators::lifecycle::{Termination, watch_termination};
use weir_operators::prelude::*;

mod support;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

fn tag(t: &'static str) -> Flow<String, String> {
    Flow::<String, String, ()>::identity().map(move |s: String| s + t)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

async fn run_flow(flow: Flow<String, String>, input: &[&str]) -> Vec<String> {
    let f = Source::from_iter(strings(input))
        .via(flow)
        .run_with(Sink::collect())
        .expect("starts");
    within(f).await.expect("completes")
}

#[tokio::test]
async fn join_runs_top_then_the_flow_then_bottom() {
    let bidi = BidiFlow::from_flows(tag("T"), tag("B"));
    let got = run_flow(bidi.join(tag("|")), &["x", "y"]).await;
    assert_eq!(got, strings(&["xT|B", "yT|B"]));
}

#[tokio::test]
async fn atop_stacks_outer_then_inner_on_the_way_out_and_back() {
    let outer = BidiFlow::from_flows(tag("a"), tag("A"));
    let inner = BidiFlow::from_flows(tag("b"), tag("B"));
    let third = BidiFlow::from_flows(tag("c"), tag("C"));
    let got = run_flow(outer.atop(inner).atop(third).join(tag("|")), &["x"]).await;
    assert_eq!(got, strings(&["xabc|CBA"]));
}

#[tokio::test]
async fn reversed_swaps_the_directions() {
    let bidi = BidiFlow::from_flows(tag("T"), tag("B")).reversed();
    let got = run_flow(bidi.join(tag("|")), &["x"]).await;
    assert_eq!(got, strings(&["xB|T"]));
    let twice = BidiFlow::from_flows(tag("T"), tag("B"))
        .reversed()
        .reversed();
    assert_eq!(
        run_flow(twice.join(tag("|")), &["x"]).await,
        strings(&["xT|B"])
    );
}

#[tokio::test]
async fn from_functions_changes_types_both_ways() {
    // Top: u32 -> String (encode), bottom: String -> usize (decode).
    let codec = BidiFlow::from_functions(|x: u32| format!("<{x}>"), |s: String| s.len());
    let f = Source::from_iter(vec![1u32, 22, 333])
        .via(codec.join(Flow::<String, String, ()>::identity().map(|s: String| s + "!")))
        .run_with(Sink::collect())
        .expect("starts");
    assert_eq!(within(f).await.expect("completes"), vec![4, 5, 6]);
}

#[tokio::test]
async fn materialized_values_combine_like_other_dsl_types() {
    let top = watch_termination::<String>();
    let bottom = watch_termination::<String>();
    let bidi = BidiFlow::from_flows_mat(top, bottom, Keep::both);
    let other = BidiFlow::from_flows(tag("b"), tag("B")).map_materialized_value(|()| 7u8);
    let stacked = bidi.atop_mat(other, Keep::both);
    let joined = stacked.join_mat(watch_termination::<String>(), Keep::both);
    let g = Source::from_iter(strings(&["x"]))
        .via_mat(joined, Keep::right)
        .to_mat(Sink::collect(), Keep::both);
    let ((((t, b), seven), mid), out) = g.run().expect("starts");
    assert_eq!(within(out).await.expect("completes"), strings(&["xbB"]));
    assert_eq!(seven, 7);
    for fut in [t, b, mid] {
        assert_eq!(within(fut).await.expect("watched"), Termination::Completed);
    }
    // Keep::left / right pick one side.
    let left = BidiFlow::from_flows(tag("T"), tag("B"))
        .map_materialized_value(|()| 1u8)
        .join_mat(tag("|").map_materialized_value(|()| 2u8), Keep::right);
    let g = Source::from_iter(strings(&["x"]))
        .via_mat(left, Keep::right)
        .to_mat(Sink::collect(), Keep::both);
    let (two, out) = g.run().expect("starts");
    assert_eq!(two, 2);
    assert_eq!(within(out).await.expect("completes"), strings(&["xT|B"]));
}

#[tokio::test]
async fn a_failure_in_the_top_flow_fails_the_stream_after_earlier_elements() {
    let top = Flow::<u32, u32, ()>::identity().try_map(|x: &u32| {
        if *x == 3 {
            Err("three is not allowed")
        } else {
            Ok(*x * 10)
        }
    });
    let bidi = BidiFlow::from_flows(top, Flow::<u32, u32, ()>::identity().map(|x: u32| x + 1));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = std::sync::Arc::clone(&seen);
    let done = Source::from_iter(vec![1u32, 2, 3, 4])
        .via(bidi.join(Flow::identity()))
        .run_with(Sink::for_each(move |x| s2.lock().expect("lock").push(x)))
        .expect("starts");
    let e = within(done).await.expect_err("fails");
    assert_eq!(e.stage(), Some("try_map#2"));
    assert_eq!(e.message(), "three is not allowed");
    assert_eq!(*seen.lock().expect("lock"), vec![11, 21]);
}

#[tokio::test]
async fn cancellation_downstream_of_a_joined_bidi_reaches_the_source() {
    let bidi = BidiFlow::from_flows(tag("T"), tag("B"));
    let g = TestSource::probe::<String>()
        .via(bidi.join(tag("|")))
        .to_mat(Sink::head(), Keep::both);
    let (probe, head) = g.run().expect("starts");
    probe.send_all(strings(&["p", "q"]));
    assert_eq!(within(head).await.expect("head"), "pT|B");
    within(probe.expect_cancellation()).await;
}

#[tokio::test]
async fn upstream_failure_travels_through_both_directions() {
    let bidi = BidiFlow::from_flows(tag("T"), tag("B"));
    let f = support::failing(strings(&["x"]), "boom")
        .via(bidi.join(tag("|")))
        .run_with(Sink::collect())
        .expect("starts");
    let e = within(f).await.expect_err("fails");
    assert_eq!(e.message(), "boom");
}

#[test]
fn joined_blueprint_validates_and_renders() {
    let bidi = BidiFlow::from_flows(tag("T"), tag("B"));
    let g = Source::from_iter(strings(&["x"]))
        .via(bidi.join(tag("|")))
        .to(Sink::ignore());
    assert!(g.validate().is_ok());
    // source, three tags of identity + map each, sink
    assert_eq!(g.module().nodes.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_bidi_passes_the_stage_conformance_suite() {
    weir_engine::testkit::check_flow(
        "bidi_join",
        || {
            BidiFlow::from_functions(|x: i64| x * 2, |x: i64| x + 1)
                .join(Flow::<i64, i64, ()>::identity().map(|x: i64| -x))
        },
        0,
    )
    .await;
}
