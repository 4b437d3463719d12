//! Snapshot tests of physical plans rendered as Mermaid: a change to the fusion rules shows up as a
//! readable diff. Set `WEIR_UPDATE_SNAPSHOTS=1` to rewrite them.

mod common;
use common::*;
use futures::FutureExt;
use weir_engine::Materializer;
use weir_graph::{
    AsyncFn, Event, GraphBuilder, Inlet, Junction, Keep, Node, NodePorts, Outlet, async_node,
    router_for,
};

fn check(name: &str, actual: &str) {
    // The directory at run time: a test binary reused from another checkout of the same
    // workspace (shared target directory) must not read that checkout's files.
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = format!("{dir}/tests/snapshots/{name}.mmd");
    if std::env::var_os("WEIR_UPDATE_SNAPSHOTS").is_some() || !std::path::Path::new(&path).exists()
    {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        expected, actual,
        "plan snapshot {name} changed (WEIR_UPDATE_SNAPSHOTS=1 to accept)"
    );
}

#[test]
fn linear_chain_fuses_into_one_island() {
    let g = range(0, 10)
        .via(map(|x| x))
        .via(take(3))
        .to_mat(collect(), Keep::right);
    let p = Materializer::new().plan(&g).unwrap();
    assert_eq!(p.islands.len(), 1);
    check("linear_fused", &p.to_mermaid());
}

#[test]
fn async_boundary_splits_islands() {
    let g = range(0, 10)
        .via(map(|x| x))
        .async_boundary()
        .via(take(3))
        .to_mat(collect(), Keep::right);
    let p = Materializer::new().plan(&g).unwrap();
    assert_eq!(p.islands.len(), 2);
    check("boundary", &p.to_mermaid());
}

#[test]
fn channels_hold_eight_batches_unless_sized() {
    let g = |b: Option<usize>| {
        let src = range(0, 10).via(map(|x| x)).async_boundary();
        let src = match b {
            Some(b) => src.batch_size(b),
            None => src,
        };
        src.via(take(3)).to_mat(collect(), Keep::right)
    };
    let rows = |m: Materializer, b| m.plan(&g(b)).unwrap().edges[0].buffer_rows;
    // The run's batch size, or the larger batch size of the two stages, times eight.
    assert_eq!(rows(Materializer::new(), None), 8 * 1024);
    assert_eq!(rows(Materializer::new().with_batch_size(16), None), 8 * 16);
    assert_eq!(
        rows(Materializer::new().with_batch_size(16), Some(4)),
        8 * 16
    );
    assert_eq!(rows(Materializer::new(), Some(4096)), 8 * 4096);
    // An explicit run-wide capacity wins.
    assert_eq!(
        rows(Materializer::new().with_buffer_rows(100), Some(4)),
        100
    );
    // A stage's own capacity wins over both.
    let sized = range(0, 10)
        .async_boundary()
        .via(take(3).buffer_rows(7))
        .to_mat(collect(), Keep::right);
    let p = Materializer::new()
        .with_buffer_rows(100)
        .plan(&sized)
        .unwrap();
    assert_eq!(p.edges[0].buffer_rows, 7);
}

#[test]
fn parallel_keyed_stage_gets_hash_edges() {
    let g = range(0, 10)
        .via(map(|x| x).parallelism(2))
        .partition_by_hash(|x| *x)
        .via(map(|x| x).parallelism(4))
        .to_mat(collect(), Keep::right);
    let p = Materializer::new().plan(&g).unwrap();
    assert_eq!(p.islands.len(), 4);
    check("parallel_hash", &p.to_mermaid());
}

struct Merge2;
struct Merge2Ports {
    a: Inlet<u64>,
    b: Inlet<u64>,
    out: Outlet<u64>,
}
impl Junction for Merge2 {
    type Ports = Merge2Ports;
    fn node(self) -> Node {
        async_node("merge", 2, vec![router_for::<u64>()], |_| {
            Ok((
                AsyncFn(|mut io: weir_graph::AsyncIo| {
                    async move {
                        let mut out = io.output::<u64>(0)?;
                        for mut i in io.all_inputs::<u64>()? {
                            while let Event::Batch(b) = i.recv().await {
                                if out.send(b).await.is_err() {
                                    return Ok(());
                                }
                            }
                        }
                        Ok(())
                    }
                    .boxed()
                }),
                (),
            ))
        })
    }
    fn ports(p: NodePorts) -> Merge2Ports {
        Merge2Ports {
            a: p.inlet(0),
            b: p.inlet(1),
            out: p.outlet(0),
        }
    }
}

#[tokio::test]
async fn junction_graph_plans_and_runs() {
    let mut b = GraphBuilder::new();
    let (s1, _) = b.add_source(range(0, 5));
    let (s2, _) = b.add_source(range(100, 103).via(map(|x| x)));
    let m = b.add(Merge2);
    let (k, key) = b.add_sink(collect());
    b.connect(s1, m.a).unwrap();
    b.connect(s2, m.b).unwrap();
    b.connect(m.out, k).unwrap();
    let g = b.build_mat(move |v| v.take(key)).unwrap();
    let p = Materializer::new().plan(&g).unwrap();
    check("junction", &p.to_mermaid());
    let (fut, handle) = weir_engine::Materializer::new().materialize(&g).unwrap();
    let mut v = fut.unwrap().await.unwrap();
    handle.wait().await.unwrap();
    v.sort_unstable();
    assert_eq!(v, vec![0, 1, 2, 3, 4, 100, 101, 102]);
}

#[test]
fn builder_reports_open_and_double_wired_ports() {
    let mut b = GraphBuilder::new();
    let (s1, _) = b.add_source(range(0, 5));
    let m = b.add(Merge2);
    b.connect(s1, m.a).unwrap();
    let err = b.connect(s1, m.b).unwrap_err();
    assert!(err.to_string().contains("range#0"), "{err}");
    assert!(err.to_string().contains("wired twice"), "{err}");
    let (k, _) = b.add_sink(collect());
    b.connect(m.out, k).unwrap();
    let err = b.build().unwrap_err();
    assert!(err.to_string().contains("merge#1"), "{err}");
    assert!(err.to_string().contains("not connected"), "{err}");
    let mut other = GraphBuilder::new();
    let (s, _) = other.add_source(range(0, 1));
    let mut b2 = GraphBuilder::new();
    let (k2, _) = b2.add_sink(collect());
    assert!(b2.connect(s, k2).is_err());
}

#[test]
fn blueprint_renders_to_mermaid_and_dot() {
    let g = range(0, 10)
        .via(map(|x| x).named("double"))
        .async_boundary()
        .to_mat(collect(), Keep::right);
    let m = g.to_mermaid();
    assert!(m.contains("double") && m.contains("-.->"), "{m}");
    assert!(g.to_dot().contains("digraph"));
}

#[test]
fn ten_thousand_stage_chain_composes_and_plans() {
    let mut s = range(0, 10);
    for _ in 0..10_000 {
        s = s.via(map(|x| x + 1));
    }
    let g = s.to_mat(collect(), Keep::right);
    let p = Materializer::new().plan(&g).unwrap();
    assert_eq!(p.islands.len(), 1);
    assert_eq!(p.islands[0].nodes.len(), 10_002);
}

/// A source that may run as several subtasks (each counts the whole range).
fn par_range(end: u64) -> weir_graph::Source<u64, ()> {
    range(0, end).parallel_by_default()
}

#[test]
fn equal_parallelism_stages_fuse_into_parallel_chains() {
    let g = par_range(10)
        .parallelism(2)
        .via(map(|x| x).parallelism(2))
        .via(map(|x| x + 1).parallelism(2))
        .to_mat(collect(), Keep::right);
    let p = Materializer::new().plan(&g).unwrap();
    // Two subtasks of one chain (range -> map -> map), then one channel into the sink.
    assert_eq!(p.islands.len(), 2);
    assert_eq!(p.islands[0].nodes, vec![0, 1, 2]);
    assert_eq!(p.islands[0].parallelism, 2);
    check("parallel_chain", &p.to_mermaid());
}

#[test]
fn redistribution_and_boundaries_split_parallel_chains() {
    let g = par_range(10)
        .parallelism(2)
        .via(map(|x| x).parallelism(2))
        .rebalance()
        .via(map(|x| x).parallelism(2))
        .partition_by_hash(|x| *x)
        .via(map(|x| x).parallelism(2))
        .async_boundary()
        .via(map(|x| x).parallelism(2))
        .via(map(|x| x).parallelism(3))
        .to_mat(collect(), Keep::right);
    let p = Materializer::new().plan(&g).unwrap();
    let nodes: Vec<Vec<usize>> = p.islands.iter().map(|i| i.nodes.clone()).collect();
    assert_eq!(
        nodes,
        vec![vec![0, 1], vec![2], vec![3], vec![4], vec![5], vec![6]]
    );
    check("parallel_splits", &p.to_mermaid());
}

#[test]
fn run_parallelism_reaches_only_stages_that_inherit_it() {
    let g = par_range(10)
        .via(map(|x| x).parallel_by_default())
        .via(map(|x| x).parallel_by_default().parallelism(2))
        .via(take(3))
        .to_mat(collect(), Keep::right);
    let p = Materializer::new().with_parallelism(3).plan(&g).unwrap();
    // range and the first map take 3; the explicit 2 wins; take and the sink keep 1.
    assert_eq!(p.parallelism, vec![3, 3, 2, 1, 1]);
    check("run_parallelism", &p.to_mermaid());
    // Without a run setting every stage runs once and the whole graph is one chain.
    let p = Materializer::new().plan(&g).unwrap();
    assert_eq!(p.parallelism, vec![1, 1, 2, 1, 1]);
    assert_eq!(
        Materializer::new()
            .with_parallelism(1)
            .plan(&g)
            .unwrap()
            .islands
            .len(),
        3
    );
}

#[test]
fn run_parallelism_out_of_range_is_a_setting_error() {
    let g = range(0, 3).to_mat(collect(), Keep::right);
    for (n, msg) in [
        (0, "parallelism must be at least 1, got 0"),
        (
            129,
            "parallelism must be at most 128 (the key groups), got 129",
        ),
    ] {
        let err = Materializer::new()
            .with_parallelism(n)
            .plan(&g)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid materializer setting: {msg}")
        );
    }
}
