//! Junctions and linear fan operators, run through the engine.

use weir_engine::prelude::*;
use weir_engine::testkit::{TestSink, TestSource};
use weir_graph::{GraphBuilder, Keep, Sink, SinkLogic, Source, StageCx, StageError};
use weir_operators::fan::*;

// ---- tiny local stages (independent of the source/sink families) ----

mod support;
use support::*;

// ---- broadcast ----

#[tokio::test]
async fn broadcast_sends_everything_to_every_output() {
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(from_vec((0..5000).collect::<Vec<i32>>()));
    let bc = b.add(Broadcast::<i32>::new(3));
    b.connect(src, bc.inlet).unwrap();
    let mut keys = Vec::new();
    for o in &bc.outlets {
        let (si, k) = b.add_sink(collect::<i32>());
        b.connect(*o, si).unwrap();
        keys.push(k);
    }
    let g = b
        .build_mat(move |m| keys.iter().map(|k| m.take(*k)).collect::<Vec<_>>())
        .unwrap();
    for f in g.run().unwrap() {
        let v = f.unwrap().await.unwrap();
        assert_eq!(v, (0..5000).collect::<Vec<_>>());
    }
}

fn broadcast_probes(
    eager: bool,
) -> weir_graph::RunnableGraph<(
    weir_engine::testkit::SourceProbe<i32>,
    weir_engine::testkit::SinkProbe<i32>,
    weir_engine::testkit::SinkProbe<i32>,
)> {
    let mut b = GraphBuilder::new();
    let (src, ks) = b.add_source(TestSource::probe::<i32>());
    let bc = b.add(Broadcast::<i32>::new(2).eager_cancel(eager));
    let (a, ka) = b.add_sink(TestSink::probe::<i32>());
    let (c, kc) = b.add_sink(TestSink::probe::<i32>());
    b.connect(src, bc.inlet).unwrap();
    b.connect(bc.outlets[0], a).unwrap();
    b.connect(bc.outlets[1], c).unwrap();
    b.build_mat(move |m| {
        (
            m.take(ks).unwrap(),
            m.take(ka).unwrap(),
            m.take(kc).unwrap(),
        )
    })
    .unwrap()
}

#[tokio::test]
async fn broadcast_goes_on_when_one_branch_cancels() {
    let ((src, a, mut c), _h) = broadcast_probes(false).start().unwrap();
    a.cancel();
    c.request(10);
    src.send(1);
    assert_eq!(c.expect_next().await, 1);
    // The cancelled branch is noticed; the other still receives.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    src.send(2);
    assert_eq!(c.expect_next().await, 2);
    assert!(!src.is_cancelled());
    c.cancel();
    src.expect_cancellation().await;
}

#[tokio::test]
async fn eager_cancel_broadcast_stops_when_any_branch_cancels() {
    let ((src, a, mut c), _h) = broadcast_probes(true).start().unwrap();
    a.cancel();
    src.expect_cancellation().await;
    c.request(1);
    c.expect_complete().await;
}

#[tokio::test]
async fn broadcast_propagates_upstream_failure() {
    let ((src, mut a, mut c), _h) = broadcast_probes(false).start().unwrap();
    a.request(1);
    c.request(1);
    src.fail(StageError::user("boom"));
    assert!(a.expect_error().await.contains("boom"));
    assert!(c.expect_error().await.contains("boom"));
}

// ---- balance ----

#[tokio::test]
async fn balance_spreads_batches_and_loses_nothing() {
    let mut b = GraphBuilder::new();
    let (src, ks) = b.add_source(TestSource::probe::<i32>());
    let bal = b.add(Balance::<i32>::new(2));
    let (a, ka) = b.add_sink(collect::<i32>());
    let (c, kc) = b.add_sink(collect::<i32>());
    b.connect(src, bal.inlet).unwrap();
    b.connect(bal.outlets[0], a).unwrap();
    b.connect(bal.outlets[1], c).unwrap();
    let g = b
        .build_mat(move |m| {
            (
                m.take(ks).unwrap(),
                m.take(ka).unwrap(),
                m.take(kc).unwrap(),
            )
        })
        .unwrap();
    let (src, fa, fc) = g.run().unwrap();
    for i in 0..100 {
        src.send(i);
        tokio::task::yield_now().await;
    }
    src.complete();
    let (va, vc) = (fa.await.unwrap(), fc.await.unwrap());
    assert!(!va.is_empty() && !vc.is_empty(), "both outputs get batches");
    let mut all = va;
    all.extend(vc);
    assert_eq!(sorted(all), (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn balance_keeps_feeding_a_fast_output_when_one_is_stuck() {
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(from_vec((0..100_000).collect::<Vec<u32>>()));
    let bal = b.add(Balance::<u32>::new(2));
    let (stuck, ks) = b.add_sink(TestSink::probe::<u32>());
    let (fast, kf) = b.add_sink(collect::<u32>());
    b.connect(src, bal.inlet).unwrap();
    b.connect(bal.outlets[0], stuck).unwrap();
    b.connect(bal.outlets[1], fast).unwrap();
    let g = b
        .build_mat(move |m| (m.take(ks).unwrap(), m.take(kf).unwrap()))
        .unwrap();
    let ((mut probe, fut), _h) = g.start().unwrap();
    // The stuck output never asks: it holds at most its channel's buffer, and everything else
    // reaches `fast`, which completes while `stuck` still holds its rows.
    let fast_rows = fut.await.unwrap();
    let (stuck_rows, _) = probe.collect_all().await;
    assert_eq!(stuck_rows.len() + fast_rows.len(), 100_000);
    assert!(fast_rows.len() > stuck_rows.len());
}

// ---- partition ----

#[tokio::test]
async fn partition_routes_by_index() {
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(from_vec((0..30).collect::<Vec<u32>>()));
    let p = b.add(Partition::<u32>::new(3, |x| (*x % 3) as usize));
    b.connect(src, p.inlet).unwrap();
    let mut keys = Vec::new();
    for o in &p.outlets {
        let (si, k) = b.add_sink(collect::<u32>());
        b.connect(*o, si).unwrap();
        keys.push(k);
    }
    let g = b
        .build_mat(move |m| keys.iter().map(|k| m.take(*k)).collect::<Vec<_>>())
        .unwrap();
    for (i, f) in g.run().unwrap().into_iter().enumerate() {
        let v = f.unwrap().await.unwrap();
        assert_eq!(v, (0..30).filter(|x| x % 3 == i as u32).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn partition_out_of_range_fails_naming_element_and_stage() {
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(from_vec((0..10).collect::<Vec<u32>>()));
    let p = b.add(Partition::<u32>::new(2, |x| {
        if *x == 4 { 7 } else { (*x % 2) as usize }
    }));
    let (a, ka) = b.add_sink(collect::<u32>());
    let (c, _) = b.add_sink(collect::<u32>());
    b.connect(src, p.inlet).unwrap();
    b.connect(p.outlets[0], a).unwrap();
    b.connect(p.outlets[1], c).unwrap();
    let g = b.build_mat(move |m| m.take(ka).unwrap()).unwrap();
    let err = g.run().unwrap().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("element #4"), "{msg}");
    assert!(msg.contains("partition#"), "{msg}");
    assert_eq!(err.stage().map(|s| s.starts_with("partition#")), Some(true));
}

// ---- merges ----

fn merge_of(sources: Vec<Source<i32, ()>>, eager: bool) -> Source<i32, ()> {
    let mut b = GraphBuilder::new();
    let m = b.add(Merge::<i32>::new(sources.len()).eager_complete(eager));
    for (s, i) in sources.into_iter().zip(m.inlets.iter()) {
        let (o, _) = b.add_source(s);
        b.connect(o, *i).unwrap();
    }
    b.build_source(m.outlet, |_| ()).unwrap()
}

#[tokio::test]
async fn merge_emits_all_inputs_and_completes_when_all_complete() {
    let s = merge_of(
        vec![
            from_vec((0..3000).collect()),
            from_vec((3000..3500).collect()),
            from_vec(vec![]),
        ],
        false,
    );
    let v = run_collect(s).await.unwrap();
    assert_eq!(sorted(v.clone()), (0..3500).collect::<Vec<_>>());
    // Each input's order is kept.
    let first: Vec<_> = v.iter().copied().filter(|x| *x < 3000).collect();
    assert_eq!(first, (0..3000).collect::<Vec<_>>());
}

#[tokio::test]
async fn merge_failing_input_fails_the_run_with_the_stage_path() {
    let s = merge_of(
        vec![from_vec((0..10).collect()), failing(vec![1, 2], "kaput")],
        false,
    );
    let err = run_collect(s).await.unwrap_err();
    assert!(err.to_string().contains("kaput"), "{err}");
    let stage = err.stage().unwrap_or_default().to_owned();
    assert!(stage.starts_with("failing#"), "stage path: {stage}");
}

#[tokio::test]
async fn merge_eager_complete_completes_on_first_completion() {
    let mut b = GraphBuilder::new();
    let (s1, k1) = b.add_source(TestSource::probe::<i32>());
    let (s2, k2) = b.add_source(TestSource::probe::<i32>());
    let m = b.add(Merge::<i32>::new(2).eager_complete(true));
    let (si, ks) = b.add_sink(TestSink::probe::<i32>());
    b.connect(s1, m.inlets[0]).unwrap();
    b.connect(s2, m.inlets[1]).unwrap();
    b.connect(m.outlet, si).unwrap();
    let g = b
        .build_mat(move |m| {
            (
                m.take(k1).unwrap(),
                m.take(k2).unwrap(),
                m.take(ks).unwrap(),
            )
        })
        .unwrap();
    let ((p1, p2, mut sink), _h) = g.start().unwrap();
    sink.request(5);
    p1.send(1);
    assert_eq!(sink.expect_next().await, 1);
    p1.complete();
    sink.expect_complete().await;
    p2.expect_cancellation().await;
}

#[tokio::test]
async fn merge_non_eager_waits_for_every_input() {
    let mut b = GraphBuilder::new();
    let (s1, k1) = b.add_source(TestSource::probe::<i32>());
    let (s2, k2) = b.add_source(TestSource::probe::<i32>());
    let m = b.add(Merge::<i32>::new(2));
    let (si, ks) = b.add_sink(TestSink::probe::<i32>());
    b.connect(s1, m.inlets[0]).unwrap();
    b.connect(s2, m.inlets[1]).unwrap();
    b.connect(m.outlet, si).unwrap();
    let g = b
        .build_mat(move |m| {
            (
                m.take(k1).unwrap(),
                m.take(k2).unwrap(),
                m.take(ks).unwrap(),
            )
        })
        .unwrap();
    let ((p1, p2, mut sink), _h) = g.start().unwrap();
    sink.request(5);
    p1.complete();
    p2.send(7);
    assert_eq!(sink.expect_next().await, 7);
    p2.complete();
    sink.expect_complete().await;
}

#[tokio::test]
async fn merge_preferred_and_prioritized_emit_everything() {
    let mut b = GraphBuilder::new();
    let mp = b.add(MergePreferred::<i32>::new(2));
    let (p, _) = b.add_source(from_vec((0..100).collect::<Vec<i32>>()));
    let (s1, _) = b.add_source(from_vec((100..200).collect::<Vec<i32>>()));
    let (s2, _) = b.add_source(from_vec((200..300).collect::<Vec<i32>>()));
    b.connect(p, mp.preferred).unwrap();
    b.connect(s1, mp.inlets[0]).unwrap();
    b.connect(s2, mp.inlets[1]).unwrap();
    let src = b.build_source(mp.outlet, |_| ()).unwrap();
    assert_eq!(
        sorted(run_collect(src).await.unwrap()),
        (0..300).collect::<Vec<_>>()
    );

    let mut b = GraphBuilder::new();
    let mp = b.add(MergePrioritized::<i32>::new([3, 1]));
    let (s1, _) = b.add_source(from_vec((0..100).collect::<Vec<i32>>()));
    let (s2, _) = b.add_source(failing(vec![5], "low priority failed"));
    b.connect(s1, mp.inlets[0]).unwrap();
    b.connect(s2, mp.inlets[1]).unwrap();
    let src = b.build_source(mp.outlet, |_| ()).unwrap();
    let err = run_collect(src).await.unwrap_err();
    assert!(err.to_string().contains("low priority failed"));
}

#[tokio::test]
async fn merge_sorted_merges_sorted_inputs() {
    use weir_operators::fan::FanOps;
    let s =
        from_vec(vec![1, 3, 5, 7, 7, 10]).merge_sorted(from_vec(vec![2, 2, 4, 7, 8, 9, 11, 12]));
    assert_eq!(
        run_collect(s).await.unwrap(),
        vec![1, 2, 2, 3, 4, 5, 7, 7, 7, 8, 9, 10, 11, 12]
    );
    let big_l: Vec<u32> = (0..5000).map(|x| x * 2).collect();
    let big_r: Vec<u32> = (0..3000).map(|x| x * 2 + 1).collect();
    let v = run_collect(from_vec(big_l).merge_sorted(from_vec(big_r)))
        .await
        .unwrap();
    assert_eq!(v.len(), 8000);
    assert!(v.windows(2).all(|w| w[0] <= w[1]));
}

fn merge_sorted_by(
    l: Vec<i32>,
    r: Vec<i32>,
    cmp: impl Fn(&i32, &i32) -> Result<std::cmp::Ordering, StageError> + Send + Sync + 'static,
) -> Source<i32> {
    let mut b = GraphBuilder::new();
    let j = b.add(MergeSortedBy::new(cmp));
    let (ls, _) = b.add_source(from_vec(l));
    let (rs, _) = b.add_source(from_vec(r));
    b.connect(ls, j.left).unwrap();
    b.connect(rs, j.right).unwrap();
    b.build_source(j.outlet, |_| ()).unwrap()
}

#[tokio::test]
async fn merge_sorted_by_orders_with_the_comparator_left_first_on_ties() {
    // Descending by value, ties by parity: 4 and 2 compare equal to 8 and 6, left goes first.
    let desc = |a: &i32, b: &i32| Ok(b.cmp(a));
    let s = merge_sorted_by(vec![9, 7, 7, 1], vec![8, 7, 2], desc);
    assert_eq!(run_collect(s).await.unwrap(), vec![9, 8, 7, 7, 7, 2, 1]);
    let by_tens = |a: &i32, b: &i32| Ok((a / 10).cmp(&(b / 10)));
    let s = merge_sorted_by(vec![11, 12, 30], vec![10, 13, 20], by_tens);
    assert_eq!(run_collect(s).await.unwrap(), vec![11, 12, 10, 13, 20, 30]);
}

#[tokio::test]
async fn merge_sorted_by_fails_with_the_comparator_error_after_what_it_merged() {
    let mut b = GraphBuilder::new();
    let j = b.add(MergeSortedBy::new(|a: &i32, b: &i32| {
        if *a == 6 || *b == 6 {
            Err(StageError::user("cannot compare 6"))
        } else {
            Ok(a.cmp(b))
        }
    }));
    let (ls, _) = b.add_source(from_vec(vec![1, 4, 6]));
    let (rs, _) = b.add_source(from_vec(vec![2, 3, 7]));
    let (si, k) = b.add_sink(TestSink::probe::<i32>());
    b.connect(ls, j.left).unwrap();
    b.connect(rs, j.right).unwrap();
    b.connect(j.outlet, si).unwrap();
    let g = b.build_mat(move |m| m.take(k).unwrap()).unwrap();
    let mut probe = g.run().unwrap();
    probe.request(10);
    assert_eq!(probe.expect_next_n(4).await, vec![1, 2, 3, 4]);
    assert_eq!(
        probe.expect_error().await,
        "stage 'merge_sorted#0' failed: cannot compare 6"
    );
}

// ---- zips ----

#[tokio::test]
async fn zip_pairs_and_completes_with_the_shorter_input() {
    let mut b = GraphBuilder::new();
    let z = b.add(Zip::<i32, char>::new());
    let (l, _) = b.add_source(from_vec(vec![1, 2, 3]));
    let (r, _) = b.add_source(from_vec(vec!['a', 'b']));
    b.connect(l, z.left).unwrap();
    b.connect(r, z.right).unwrap();
    let s = b.build_source(z.outlet, |_| ()).unwrap();
    assert_eq!(run_collect(s).await.unwrap(), vec![(1, 'a'), (2, 'b')]);
}

#[tokio::test]
async fn zip_completes_when_a_drained_input_completes_and_cancels_the_other() {
    let mut b = GraphBuilder::new();
    let z = b.add(ZipWith::new(|a: i32, b: i32| a * 10 + b));
    let (l, kl) = b.add_source(TestSource::probe::<i32>());
    let (r, kr) = b.add_source(TestSource::probe::<i32>());
    let (si, ks) = b.add_sink(TestSink::probe::<i32>());
    b.connect(l, z.left).unwrap();
    b.connect(r, z.right).unwrap();
    b.connect(z.outlet, si).unwrap();
    let g = b
        .build_mat(move |m| {
            (
                m.take(kl).unwrap(),
                m.take(kr).unwrap(),
                m.take(ks).unwrap(),
            )
        })
        .unwrap();
    let ((pl, pr, mut sink), _h) = g.start().unwrap();
    sink.request(10);
    pl.send(1);
    pl.send(2);
    pl.complete();
    pr.send(5);
    assert_eq!(sink.expect_next().await, 15);
    pr.send(6);
    assert_eq!(sink.expect_next().await, 26);
    sink.expect_complete().await;
    pr.expect_cancellation().await;
}

#[tokio::test]
async fn zip_fails_when_an_input_fails() {
    use weir_operators::fan::FanOps;
    let s = from_vec(vec![1, 2, 3]).zip(failing(vec![1], "right broke"));
    let err = run_collect(s).await.unwrap_err();
    assert!(err.to_string().contains("right broke"));
}

#[tokio::test]
async fn zip_latest_pairs_with_the_latest_of_the_other_side() {
    let mut b = GraphBuilder::new();
    let z = b.add(ZipLatest::<i32, char>::new());
    let (l, kl) = b.add_source(TestSource::probe::<i32>());
    let (r, kr) = b.add_source(TestSource::probe::<char>());
    let (si, ks) = b.add_sink(TestSink::probe::<(i32, char)>());
    b.connect(l, z.left).unwrap();
    b.connect(r, z.right).unwrap();
    b.connect(z.outlet, si).unwrap();
    let g = b
        .build_mat(move |m| {
            (
                m.take(kl).unwrap(),
                m.take(kr).unwrap(),
                m.take(ks).unwrap(),
            )
        })
        .unwrap();
    let ((pl, pr, mut sink), _h) = g.start().unwrap();
    sink.request(10);
    pl.send(1);
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    pr.send('a');
    assert_eq!(sink.expect_next().await, (1, 'a'));
    pl.send(2);
    assert_eq!(sink.expect_next().await, (2, 'a'));
    pr.send('b');
    assert_eq!(sink.expect_next().await, (2, 'b'));
    pr.complete();
    sink.expect_complete().await;
    pl.expect_cancellation().await;
}

#[tokio::test]
async fn unzip_splits_pairs() {
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(from_vec(vec![(1, 'a'), (2, 'b'), (3, 'c')]));
    let u = b.add(Unzip::<i32, char>::new());
    let (a, ka) = b.add_sink(collect::<i32>());
    let (c, kc) = b.add_sink(collect::<char>());
    b.connect(src, u.inlet).unwrap();
    b.connect(u.left, a).unwrap();
    b.connect(u.right, c).unwrap();
    let g = b
        .build_mat(move |m| (m.take(ka).unwrap(), m.take(kc).unwrap()))
        .unwrap();
    let (fa, fc) = g.run().unwrap();
    assert_eq!(fa.await.unwrap(), vec![1, 2, 3]);
    assert_eq!(fc.await.unwrap(), vec!['a', 'b', 'c']);
}

// ---- concat and interleave ----

#[tokio::test]
async fn concat_drains_inputs_in_order() {
    let mut b = GraphBuilder::new();
    let c = b.add(Concat::<i32>::new(3));
    for (i, v) in [vec![1, 2], vec![], vec![3, 4, 5]].into_iter().enumerate() {
        let (o, _) = b.add_source(from_vec(v));
        b.connect(o, c.inlets[i]).unwrap();
    }
    let s = b.build_source(c.outlet, |_| ()).unwrap();
    assert_eq!(run_collect(s).await.unwrap(), vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn concat_waits_for_the_first_input_before_the_second() {
    let mut b = GraphBuilder::new();
    let c = b.add(Concat::<i32>::new(2));
    let (l, kl) = b.add_source(TestSource::probe::<i32>());
    let (r, kr) = b.add_source(TestSource::probe::<i32>());
    let (si, ks) = b.add_sink(TestSink::probe::<i32>());
    b.connect(l, c.inlets[0]).unwrap();
    b.connect(r, c.inlets[1]).unwrap();
    b.connect(c.outlet, si).unwrap();
    let g = b
        .build_mat(move |m| {
            (
                m.take(kl).unwrap(),
                m.take(kr).unwrap(),
                m.take(ks).unwrap(),
            )
        })
        .unwrap();
    let ((pl, pr, mut sink), _h) = g.start().unwrap();
    sink.request(10);
    pr.send(100);
    pl.send(1);
    assert_eq!(sink.expect_next().await, 1);
    pl.send(2);
    assert_eq!(sink.expect_next().await, 2);
    pl.complete();
    assert_eq!(sink.expect_next().await, 100);
    pr.complete();
    sink.expect_complete().await;
}

#[tokio::test]
async fn interleave_takes_segments_in_turn() {
    let mut b = GraphBuilder::new();
    let j = b.add(Interleave::<i32>::new(2, 2));
    let (l, _) = b.add_source(from_vec(vec![1, 2, 3, 4, 5]));
    let (r, _) = b.add_source(from_vec(vec![10, 20, 30]));
    b.connect(l, j.inlets[0]).unwrap();
    b.connect(r, j.inlets[1]).unwrap();
    let s = b.build_source(j.outlet, |_| ()).unwrap();
    assert_eq!(
        run_collect(s).await.unwrap(),
        vec![1, 2, 10, 20, 3, 4, 30, 5]
    );
}

// ---- linear conveniences ----

#[tokio::test]
async fn fan_ops_merge_zip_concat_interleave() {
    let v = run_collect(from_vec(vec![1, 2, 3]).merge(from_vec(vec![4, 5])))
        .await
        .unwrap();
    assert_eq!(sorted(v), vec![1, 2, 3, 4, 5]);
    let v = run_collect(from_vec(vec![1, 2, 3]).zip(from_vec(vec!["x", "y", "z", "w"]))).await;
    assert_eq!(v.unwrap(), vec![(1, "x"), (2, "y"), (3, "z")]);
    let v = run_collect(from_vec(vec![1, 2]).zip_with(from_vec(vec![10, 20]), |a, b| a + b)).await;
    assert_eq!(v.unwrap(), vec![11, 22]);
    let v = run_collect(from_vec(vec![1, 2]).concat(from_vec(vec![3])))
        .await
        .unwrap();
    assert_eq!(v, vec![1, 2, 3]);
    let v = run_collect(from_vec(vec![1, 2, 3]).interleave(from_vec(vec![7, 8, 9]), 1)).await;
    assert_eq!(v.unwrap(), vec![1, 7, 2, 8, 3, 9]);
}

/// A sink with no materialized value that hands what it collected to `tx` when it completes.
fn collect_to<T: Send + 'static>(tx: tokio::sync::mpsc::UnboundedSender<Vec<T>>) -> Sink<T, ()> {
    struct To<T>(Vec<T>, tokio::sync::mpsc::UnboundedSender<Vec<T>>);
    impl<T: Send + 'static> SinkLogic<T> for To<T> {
        fn on_batch(
            &mut self,
            input: &mut Vec<T>,
            _scx: &mut StageCx<'_>,
        ) -> Result<(), StageError> {
            self.0.append(input);
            Ok(())
        }
        fn on_finish(&mut self, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
            let _ = self.1.send(std::mem::take(&mut self.0));
            Ok(())
        }
        fn on_error(&mut self, _error: &StageError) {}
    }
    Sink::from_logic("collect_to", move |_| Ok((To(Vec::new(), tx.clone()), ())))
}

#[tokio::test]
async fn also_to_sends_everything_to_both() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let main = run_collect(from_vec((0..3000).collect::<Vec<i32>>()).also_to(collect_to(tx)));
    assert_eq!(main.await.unwrap(), (0..3000).collect::<Vec<_>>());
    assert_eq!(rx.recv().await.unwrap(), (0..3000).collect::<Vec<_>>());
}

#[tokio::test]
async fn divert_to_sends_matching_elements_to_the_side() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let g = from_vec((0..20).collect::<Vec<i32>>())
        .divert_to(collect_to(tx), |x| *x % 5 == 0)
        .to_mat(collect::<i32>(), Keep::right);
    let v = g.run().unwrap().await.unwrap();
    assert_eq!(v, (0..20).filter(|x| x % 5 != 0).collect::<Vec<_>>());
    assert_eq!(rx.recv().await.unwrap(), vec![0, 5, 10, 15]);
}

#[tokio::test]
async fn wire_tap_never_backpressures_the_main_path() {
    // The tap never requests anything: its channel fills, later copies are dropped.
    let tap = TestSink::probe::<u32>().map_materialized_value(|p| {
        // Keep the probe alive (and silent) for the whole test.
        std::mem::forget(p);
    });
    let n = 200_000u32;
    let main = run_collect(from_vec((0..n).collect::<Vec<u32>>()).wire_tap(tap))
        .await
        .unwrap();
    assert_eq!(main, (0..n).collect::<Vec<_>>());
}

#[test]
fn junction_ports_have_the_requested_arity() {
    let mut b = GraphBuilder::new();
    assert_eq!(b.add(Broadcast::<u8>::new(4)).outlets.len(), 4);
    assert_eq!(b.add(Balance::<u8>::new(3)).outlets.len(), 3);
    assert_eq!(b.add(Merge::<u8>::new(5)).inlets.len(), 5);
    assert_eq!(b.add(MergePreferred::<u8>::new(2)).inlets.len(), 2);
    assert_eq!(
        b.add(MergePrioritized::<u8>::new([1, 2, 3])).inlets.len(),
        3
    );
    assert_eq!(b.add(Concat::<u8>::new(2)).inlets.len(), 2);
    assert_eq!(b.add(Interleave::<u8>::new(6, 1)).inlets.len(), 6);
    assert_eq!(b.add(Partition::<u8>::new(2, |_| 0)).outlets.len(), 2);
}
