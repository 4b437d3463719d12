//! Stable stage ids: what a checkpoint keys a stage's state by. A stage's id is the hash of its
//! explicit `uid` attribute when it has one, else it is derived from the operator kind and the
//! stage's upstream topology, so renaming a stage, or inserting a stage that is not upstream of
//! it, keeps its id.

use crate::{GraphError, Module, NodeKind};
use std::collections::HashMap;
use std::fmt;
use xxhash_rust::xxh3::Xxh3;

/// A stable identifier of a stage (xxh3, the same in every process and build).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageId(pub u64);

impl StageId {
    /// The id of a stage outside a blueprint, from its name and position (test harnesses).
    pub fn derive(name: &str, index: usize) -> Self {
        let mut h = Xxh3::new();
        h.update(b"stage\0");
        h.update(name.as_bytes());
        h.update(&(index as u64).to_le_bytes());
        Self(h.digest())
    }

    /// The id of a stage with the explicit uid `uid`.
    pub fn of_uid(uid: &str) -> Self {
        let mut h = Xxh3::new();
        h.update(b"uid\0");
        h.update(uid.as_bytes());
        Self(h.digest())
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StageId({self})")
    }
}

fn kind_tag(k: &NodeKind) -> &'static [u8] {
    match k {
        NodeKind::Source(_) => b"source",
        NodeKind::Flow(_) => b"flow",
        NodeKind::Sink(_) => b"sink",
        NodeKind::Async(_) => b"async",
    }
}

impl Module {
    /// The stable id of every node, by node index (see the module docs). Identical stages with
    /// identical upstreams (two equal sources into one merge) are told apart by their order in
    /// the blueprint, which inserting another stage does not change.
    pub fn stage_ids(&self) -> Vec<StageId> {
        let n = self.nodes.len();
        // Upstream of each input port: (node, output port).
        let mut ups: Vec<Vec<Option<(usize, usize)>>> =
            self.nodes.iter().map(|nd| vec![None; nd.inputs]).collect();
        for e in &self.edges {
            if let Some(slot) = ups.get_mut(e.to.node).and_then(|v| v.get_mut(e.to.port)) {
                *slot = Some((e.from.node, e.from.port));
            }
        }
        let g = self.to_petgraph();
        // A cycle is reported by validation; ids then follow node order.
        let order: Vec<usize> = petgraph::algo::toposort(&g, None)
            .map(|v| v.into_iter().map(|i| i.index()).collect())
            .unwrap_or_else(|_| (0..n).collect());
        let mut ids = vec![StageId(0); n];
        let mut base = vec![0u64; n];
        for &i in &order {
            let node = &self.nodes[i];
            let mut h = Xxh3::new();
            h.update(b"derived\0");
            h.update(kind_tag(&node.kind));
            h.update(b"\0");
            h.update(node.name.as_bytes());
            h.update(&(node.inputs as u64).to_le_bytes());
            h.update(&(node.outputs.len() as u64).to_le_bytes());
            for up in &ups[i] {
                match up {
                    Some((from, port)) => {
                        h.update(&ids[*from].0.to_le_bytes());
                        h.update(&(*port as u64).to_le_bytes());
                    }
                    None => h.update(b"open"),
                }
            }
            base[i] = h.digest();
            ids[i] = match &node.attrs.uid {
                Some(uid) => StageId::of_uid(uid),
                None => StageId(base[i]),
            };
        }
        // Equal derived ids: the k-th in blueprint order gets `k` mixed in.
        let mut seen: HashMap<u64, u64> = HashMap::new();
        for i in 0..n {
            if self.nodes[i].attrs.uid.is_some() {
                continue;
            }
            let k = seen.entry(base[i]).or_insert(0);
            if *k > 0 {
                let mut h = Xxh3::new();
                h.update(&base[i].to_le_bytes());
                h.update(&k.to_le_bytes());
                ids[i] = StageId(h.digest());
            }
            *k += 1;
        }
        ids
    }

    /// Reports two stages given the same uid.
    pub fn validate_uids(&self) -> Result<(), GraphError> {
        let mut by_uid: HashMap<&str, usize> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(uid) = node.attrs.uid.as_deref() else {
                continue;
            };
            if let Some(&first) = by_uid.get(uid) {
                return Err(GraphError::DuplicateUid {
                    uid: uid.to_owned(),
                    first: self.node_path(first),
                    second: self.node_path(i),
                });
            }
            by_uid.insert(uid, i);
        }
        Ok(())
    }
}
