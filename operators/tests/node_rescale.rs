//! Keyed state of a job spread over nodes, restored onto another node count: each run plays
//! one node (its own checkpoint directory, fed the keys that node owns), and the runs of the
//! new node count restore every old node's checkpoint as one (`restore_from_nodes`), each
//! keeping exactly the key groups it owns now. The union of their output is the model's.

mod ck;

use ck::{Gate, SECOND, Store, checkpoint, dir, mat, same, two_phase, until};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use weir_engine::CheckpointConfig;
use weir_engine::prelude::*;
use weir_graph::{stable_key_group, subtask_for_key_group};
use weir_operators::prelude::*;

const N: u64 = 400;

/// Whether node `node` of `nodes` owns key `k` (as a cluster exchange routes it).
fn owns(k: u64, node: usize, nodes: usize) -> bool {
    subtask_for_key_group(stable_key_group(&k), nodes) == node
}

/// Per key (`x % 10`) sum and count of the events, over those whose key the node owns.
fn model(from: u64, node: usize, nodes: usize) -> Vec<(u64, u64, u64)> {
    let mut m: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for x in from..N {
        if owns(x % 10, node, nodes) {
            let e = m.entry(x % 10).or_default();
            e.0 += x;
            e.1 += 1;
        }
    }
    m.into_iter().map(|(k, (s, n))| (k, s, n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_state_of_two_nodes_restores_onto_three_each_keeping_the_key_groups_it_owns() {
    // Two nodes checkpoint after the first 150 events and stop.
    let mut parts = Vec::new();
    for node in 0..2 {
        let d = dir(&format!("nodes-{node}-of-2"));
        let gate = Arc::new(Gate::default());
        let store = Store::new();
        let g = ck::counting("events", N, &gate)
            .filter(move |x: &u64| owns(x % 10, node, 2))
            .key_by(|x: &u64| x % 10)
            .checkpointed()
            .fold((0u64, 0u64), |(s, n), x| (s + x, n + 1))
            .uid("sums")
            .map(|(k, (s, n))| (k, s, n))
            .to(two_phase(&store));
        let (m, clock) = mat(&d);
        let ((), h) = m.materialize(&g).unwrap();
        gate.open(150);
        until("150 events", || gate.emitted.load(Ordering::Acquire) == 150).await;
        checkpoint(&h, &clock, 1).await;
        h.cancel();
        assert!(h.wait().await.is_err());
        // The sums are emitted at the end only.
        assert_eq!(store.sorted(), Vec::<(u64, u64, u64)>::new());
        parts.push(weir_engine::checkpoint::store::checkpoint_dir(&d, 1));
    }
    assert!(
        (0..10).any(|k| owns(k, 0, 2)) && (0..10).any(|k| owns(k, 1, 2)),
        "both old nodes hold keys"
    );

    // Three nodes restore both checkpoints and read the rest of their keys' events.
    let mut got = Vec::new();
    for node in 0..3 {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&out);
        let g = Source::from_iter(150..N)
            .filter(move |x: &u64| owns(x % 10, node, 3))
            .key_by(|x: &u64| x % 10)
            .checkpointed()
            .fold((0u64, 0u64), |(s, n), x| (s + x, n + 1))
            .uid("sums")
            .map(|(k, (s, n))| (k, s, n))
            .to_mat(
                Sink::for_each(move |r| sink.lock().unwrap().push(r)),
                Keep::right,
            );
        let d = dir(&format!("nodes-{node}-of-3"));
        // The old sources and sinks are not in this graph.
        let cfg = CheckpointConfig::new(SECOND, &d)
            .restore_from_nodes(parts.clone(), node, 3)
            .allow_unmatched();
        let (done, h) = Materializer::new()
            .with_checkpoints(cfg)
            .materialize(&g)
            .unwrap();
        assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
        done.await.unwrap();
        h.wait().await.unwrap();
        let mine = std::mem::take(&mut *out.lock().unwrap());
        // Its keys only, each with the old nodes' sums of the first 150 events in it.
        let mut sorted = mine.clone();
        sorted.sort();
        let mut want: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for (k, s, n) in model(0, node, 3) {
            want.insert(k, (s, n));
        }
        same(
            &sorted,
            &want
                .into_iter()
                .map(|(k, (s, n))| (k, s, n))
                .collect::<Vec<_>>(),
        );
        got.extend(mine);
        let _ = std::fs::remove_dir_all(&d);
    }
    got.sort();
    same(&got, &model(0, 0, 1));
    for p in &parts {
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}
