//! Snapshot and restore hooks of stateful operators: a stage restored from a snapshot taken
//! part way goes on exactly as the uninterrupted stage would.

use std::task::{Context, Poll, Waker};
use weir_engine::SystemClock;
use weir_graph::{
    ErasedFlow, ErasedSource, Flow, NodeKind, Snapshot, Source, StageCx, StageError, StageInfo,
    StateCodec, Step,
};
use weir_operators::prelude::SourceCtors;
use weir_operators::simple;

/// A fresh instance of the single flow stage of `flow`.
fn flow_logic<I: Send + 'static, O: Send + 'static>(flow: &Flow<I, O>) -> Box<dyn ErasedFlow> {
    let NodeKind::Flow(f) = &flow.module().nodes[0].kind else {
        panic!("not a flow stage");
    };
    f(&StageInfo::new("stage", 0)).unwrap().0
}

/// Feeds `batches` to `logic`, then finishes it when `finish`; returns everything it emitted.
fn feed<I: Send + 'static, O: Send + 'static>(
    logic: &mut dyn ErasedFlow,
    batches: Vec<Vec<I>>,
    finish: bool,
) -> Vec<O> {
    let clock = SystemClock::new();
    let info = StageInfo::new("stage", 0);
    let mut scx = StageCx::new(&info, &clock, None, 64);
    for mut b in batches {
        logic.on_batch(&mut b, &mut scx).unwrap();
    }
    if finish {
        logic.on_finish(&mut scx).unwrap();
    }
    std::mem::take(logic.output().downcast_mut::<Vec<O>>().unwrap())
}

/// Runs `flow` over `before` and `after` in one instance, and again with a snapshot taken
/// between them restored into a fresh instance: both give the same output after the cut.
fn resumes<I: Send + Clone + 'static, O: Send + PartialEq + std::fmt::Debug + 'static>(
    flow: &Flow<I, O>,
    before: Vec<Vec<I>>,
    after: Vec<Vec<I>>,
    want_after: Vec<O>,
) -> Snapshot {
    let mut whole = flow_logic(flow);
    let _ = feed::<I, O>(whole.as_mut(), before.clone(), false);
    assert_eq!(
        feed::<I, O>(whole.as_mut(), after.clone(), true),
        want_after
    );

    let mut first = flow_logic(flow);
    let _ = feed::<I, O>(first.as_mut(), before, false);
    let snap = first
        .snapshot()
        .unwrap()
        .expect("a stateful stage has a snapshot");
    let mut second = flow_logic(flow);
    second.restore(&snap).unwrap();
    assert_eq!(feed::<I, O>(second.as_mut(), after, true), want_after);
    snap
}

#[test]
fn fold_with_a_codec_resumes_from_its_accumulator() {
    let flow = simple::fold_with_codec(0u64, |a, x: u64| a + x, StateCodec::serde());
    let snap = resumes(&flow, vec![vec![1, 2], vec![3]], vec![vec![4]], vec![10]);
    assert_eq!(snap.decode::<Option<u64>>().unwrap(), Some(6));
}

#[test]
fn scan_with_a_codec_resumes_without_emitting_its_seed_again() {
    let flow = simple::scan_with_codec(0u64, |a, x: u64| a + x, StateCodec::serde());
    let snap = resumes(&flow, vec![vec![1, 2]], vec![vec![3, 4]], vec![6, 10]);
    assert_eq!(snap.decode::<(u64, bool)>().unwrap(), (3, true));
}

#[test]
fn take_and_drop_resume_their_counters() {
    let take = simple::take::<u32>(5);
    resumes(&take, vec![vec![1, 2, 3]], vec![vec![4, 5, 6]], vec![4, 5]);
    let drop = simple::drop::<u32>(4);
    resumes(&drop, vec![vec![1, 2, 3]], vec![vec![4, 5, 6]], vec![5, 6]);
}

#[test]
fn a_generic_fold_without_a_codec_refuses_to_snapshot_and_stateless_stages_have_nothing() {
    let fold = simple::fold(0u64, |a, x: u64| a + x);
    let e = flow_logic(&fold).snapshot().unwrap_err();
    assert!(
        e.to_string()
            .contains("fold keeps a u64 it cannot snapshot"),
        "{e}"
    );
    let map = simple::map(|x: u64| x + 1);
    let mut logic = flow_logic(&map);
    assert_eq!(logic.snapshot().unwrap(), None);
    let e = logic.restore(&Snapshot::encode(&1u8).unwrap()).unwrap_err();
    assert!(e.to_string().contains("keeps no state"), "{e}");
}

#[test]
fn a_snapshot_of_the_wrong_type_is_a_typed_error_naming_the_type() {
    let flow = simple::fold_with_codec(0u64, |a, x: u64| a + x, StateCodec::serde());
    let e = flow_logic(&flow)
        .restore(&Snapshot::from_bytes(vec![7, 7, 7]))
        .unwrap_err();
    assert!(
        e.to_string().contains("cannot decode the stage state as"),
        "{e}"
    );
}

/// A fresh instance of the source stage of `src`.
fn source_logic<T: Send + 'static>(src: &Source<T>) -> Box<dyn ErasedSource> {
    let NodeKind::Source(f) = &src.module().nodes[0].kind else {
        panic!("not a source stage");
    };
    f(&StageInfo::new("src", 0)).unwrap().0
}

/// Polls `logic` once with batches of `batch` rows; returns what it emitted and its step.
fn poll_once(logic: &mut dyn ErasedSource, batch: usize) -> (Vec<u32>, Step) {
    let clock = SystemClock::new();
    let info = StageInfo::new("src", 0);
    let mut scx = StageCx::new(&info, &clock, None, batch);
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(step)) = logic.poll_next(&mut cx, &mut scx) else {
        panic!("from_iter is always ready");
    };
    let out = std::mem::take(logic.buffer().downcast_mut::<Vec<u32>>().unwrap());
    (out, step)
}

#[test]
fn from_iter_restores_its_position_and_goes_on_from_there() -> Result<(), StageError> {
    let src = Source::from_iter((0u32..10).collect::<Vec<_>>());
    let mut first = source_logic(&src);
    assert_eq!(poll_once(first.as_mut(), 4), (vec![0, 1, 2, 3], Step::More));
    let snap = first.snapshot()?.expect("from_iter has a position");
    assert_eq!(snap.decode::<u64>().unwrap(), 4);
    let mut second = source_logic(&src);
    second.restore(&snap)?;
    assert_eq!(
        poll_once(second.as_mut(), 4),
        (vec![4, 5, 6, 7], Step::More)
    );
    assert_eq!(poll_once(second.as_mut(), 4), (vec![8, 9], Step::Done));
    assert_eq!(second.snapshot()?.unwrap().decode::<u64>().unwrap(), 10);
    // A position past the end of the items is an error, never a silent restart.
    let mut third = source_logic(&Source::from_iter(vec![1u32, 2]));
    let e = third.restore(&snap).unwrap_err();
    assert!(
        e.to_string()
            .contains("the iterator ended after 2 items, before the restored position 4"),
        "{e}"
    );
    Ok(())
}
