//! The placement algorithm (see the [module docs](super)).

use super::{Assignment, JobShape, Placement, PlacementError, SubtaskId};
use crate::membership::NodeIdentity;
use std::cmp::Reverse;
use weir_graph::KeyGroupRange;

/// Places every subtask of `shape` on `members` (by name), keeping what `previous` placed on
/// nodes that are still members wherever balance allows.
pub fn place(
    shape: &JobShape,
    members: &[NodeIdentity],
    previous: Option<&Placement>,
) -> Result<Placement, PlacementError> {
    let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Err(PlacementError::NoMembers {
            subtasks: shape.subtasks(),
        });
    }
    let n = names.len();
    let mut total: Vec<usize> = vec![0; n];
    let mut out = Placement::default();
    for island in &shape.islands {
        let p = island.parallelism;
        let prev_node = |subtask: usize| {
            previous
                .and_then(|pl| {
                    pl.node_of(SubtaskId {
                        island: island.island,
                        subtask,
                    })
                })
                .and_then(|name| names.binary_search(&name).ok())
        };
        let mut prev_count = vec![0usize; n];
        for s in 0..p {
            if let Some(i) = prev_node(s) {
                prev_count[i] += 1;
            }
        }
        // Who takes one more than the base share: nodes that had the most before, then the
        // least loaded overall, then by rendezvous hash.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| {
            (
                Reverse(prev_count[i]),
                total[i],
                Reverse(hrw(island.island, usize::MAX, names[i])),
                i,
            )
        });
        let mut cap = vec![p / n; n];
        for &i in order.iter().take(p % n) {
            cap[i] += 1;
        }
        let mut count = vec![0usize; n];
        let mut node_of: Vec<Option<usize>> = vec![None; p];
        for (s, slot) in node_of.iter_mut().enumerate() {
            if let Some(i) = prev_node(s)
                && count[i] < cap[i]
            {
                count[i] += 1;
                *slot = Some(i);
            }
        }
        for (s, slot) in node_of.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let pick = (0..n).filter(|&i| count[i] < cap[i]).max_by_key(|&i| {
                (
                    cap[i] - count[i],
                    hrw(island.island, s, names[i]),
                    Reverse(i),
                )
            });
            if let Some(i) = pick {
                count[i] += 1;
                *slot = Some(i);
            }
        }
        for (s, slot) in node_of.into_iter().enumerate() {
            // Every slot is filled: the caps add up to `p`.
            let Some(i) = slot else { continue };
            total[i] += 1;
            out.assignments.insert(
                SubtaskId {
                    island: island.island,
                    subtask: s,
                },
                Assignment {
                    node: names[i].to_string(),
                    key_groups: island.keyed.then(|| KeyGroupRange::for_subtask(s, p)),
                },
            );
        }
    }
    Ok(out)
}

/// Rendezvous weight of a node for an island's subtask (FNV-1a, stable across runs).
fn hrw(island: usize, subtask: usize, node: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    let bytes = (island as u64)
        .to_le_bytes()
        .into_iter()
        .chain((subtask as u64).to_le_bytes())
        .chain(node.bytes());
    for b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}
