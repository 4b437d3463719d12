//! Property tests of substreams: whatever the parallelism, batch sizes, async boundaries and key
//! sets inside `group_by(..).merge_substreams_via(..)` and `flat_map_merge`, nothing is lost or
//! doubled (outputs compared as multisets, and per key in order where no stage of the substream
//! runs in parallel); a substream whose entry or exit stage asks for parallelism is rejected
//! with an error naming the stage (when the graph starts for `group_by`, whose flow is known
//! then; when the first substream starts for `flat_map_merge`).

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::Flow;
use weir_operators::prelude::*;
use weir_operators::simple;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
    })
}

/// One stage of a substream's flow: multiply-add, its parallelism, and a boundary after it.
#[derive(Debug, Clone)]
struct Stage {
    mul: i64,
    par: usize,
    boundary: bool,
}

fn stage() -> impl Strategy<Value = Stage> {
    (
        1i64..4,
        prop_oneof![3 => Just(1usize), 1 => 2usize..4],
        any::<bool>(),
    )
        .prop_map(|(mul, par, boundary)| Stage { mul, par, boundary })
}

/// The stages as a flow over `(key, value)` pairs (values transformed, keys kept).
fn sub_flow(stages: &[Stage]) -> Flow<(i64, i64), (i64, i64)> {
    let mut f: Flow<(i64, i64), (i64, i64)> = simple::map(|p: (i64, i64)| p);
    for (i, s) in stages.iter().enumerate() {
        if i == 0 {
            // The first stage is the entry: no identity stage in front of it.
            let mul = s.mul;
            f = simple::map(move |(k, v): (i64, i64)| (k, v * mul + 1));
            if s.par > 1 {
                f = f.parallelism(s.par);
            }
            if s.boundary {
                f = f.async_boundary();
            }
            continue;
        }
        let mul = s.mul;
        f = f.via(simple::map(move |(k, v): (i64, i64)| (k, v * mul + 1)));
        if s.par > 1 {
            f = f.parallelism(s.par);
        }
        if s.boundary {
            f = f.async_boundary();
        }
    }
    f
}

fn model(stages: &[Stage], v: i64) -> i64 {
    stages.iter().fold(v, |v, s| v * s.mul + 1)
}

/// Whether the substream's first or last stage runs in parallel: those stages are connected to
/// the outer stream through single ports.
fn edge_parallel(stages: &[Stage]) -> bool {
    stages.first().is_some_and(|s| s.par > 1) || stages.last().is_some_and(|s| s.par > 1)
}

/// Whether the last stage runs in parallel (a source's substream has no entry port).
fn exit_parallel(stages: &[Stage]) -> bool {
    stages.last().is_some_and(|s| s.par > 1)
}

enum Run<T> {
    Done(Vec<T>),
    Rejected(String),
    Failed(String),
    Hung,
}

fn run<T: Send + 'static>(src: Source<T>, bs: usize) -> Run<T> {
    let m = Materializer::new().with_batch_size(bs);
    runtime().block_on(async move {
        let fut = match src.run_with_on(Sink::collect(), &m) {
            Ok(f) => f,
            Err(e) => return Run::Rejected(e.to_string()),
        };
        match tokio::time::timeout(Duration::from_secs(20), fut).await {
            Ok(Ok(v)) => Run::Done(v),
            Ok(Err(e)) => Run::Failed(e.to_string()),
            Err(_) => Run::Hung,
        }
    })
}

fn per_key(v: &[(i64, i64)]) -> BTreeMap<i64, Vec<i64>> {
    let mut m: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (k, x) in v {
        m.entry(*k).or_default().push(*x);
    }
    m
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn group_by_substreams_lose_and_double_nothing(
        input in prop::collection::vec(0i64..1000, 0..300),
        keys in 1i64..12,
        stages in prop::collection::vec(stage(), 1..4),
        head_boundary in any::<bool>(),
        bs in prop_oneof![Just(1usize), 2usize..8, Just(64), Just(1024)],
    ) {
        let pairs: Vec<(i64, i64)> = input.iter().map(|x| (x % keys, *x)).collect();
        let mut src = Source::from_iter(pairs.clone());
        if head_boundary {
            src = src.async_boundary();
        }
        let src = src
            .group_by(keys as usize, |p: &(i64, i64)| p.0)
            .merge_substreams_via(sub_flow(&stages));
        let want: Vec<(i64, i64)> = pairs.iter().map(|(k, v)| (*k, model(&stages, *v))).collect();
        match run(src, bs) {
            Run::Rejected(e) => {
                prop_assert!(edge_parallel(&stages), "rejected without cause: {e}");
                prop_assert!(e.contains("parallelism"), "{e}");
            }
            Run::Done(got) => {
                prop_assert!(!edge_parallel(&stages), "should have been rejected");
                if stages.iter().all(|s| s.par == 1) {
                    prop_assert_eq!(per_key(&got), per_key(&want));
                }
                prop_assert_eq!(sorted(got), sorted(want));
            }
            Run::Failed(e) => prop_assert!(false, "failed: {e}"),
            Run::Hung => prop_assert!(false, "hung"),
        }
    }

    #[test]
    fn flat_map_merge_substreams_lose_and_double_nothing(
        input in prop::collection::vec(0i64..40, 0..40),
        breadth in 1usize..6,
        stages in prop::collection::vec(stage(), 1..4),
        bs in prop_oneof![Just(1usize), 2usize..8, Just(1024)],
    ) {
        let st = stages.clone();
        let src = Source::from_iter(input.clone()).flat_map_merge(breadth, move |x: i64| {
            let items: Vec<(i64, i64)> = (0..x % 7).map(|i| (x, i)).collect();
            Source::from_iter(items).via(sub_flow(&st))
        });
        let want: Vec<(i64, i64)> = input
            .iter()
            .flat_map(|x| (0..x % 7).map(move |i| (*x, i)))
            .map(|(k, v)| (k, model(&stages, v)))
            .collect();
        match run(src, bs) {
            Run::Done(got) => {
                // Nothing is rejected while no substream starts.
                prop_assert!(!exit_parallel(&stages) || want.is_empty(), "should have failed");
                prop_assert_eq!(sorted(got), sorted(want));
            }
            Run::Failed(e) => {
                // Substreams start at run time: the rejection fails the stream.
                prop_assert!(exit_parallel(&stages) && e.contains("parallelism"), "{e}");
            }
            Run::Rejected(e) => prop_assert!(false, "rejected: {e}"),
            Run::Hung => prop_assert!(false, "hung"),
        }
    }
}
