//! Replicators wired through an in-test network that loses, duplicates, delays and reorders
//! messages and can cut the nodes in two: they converge, majority writes survive the loss of a
//! minority, majority reads see the latest majority write, and writes and reads time out
//! without enough replicas.

use std::collections::{BTreeMap, BTreeSet};
use weir_cluster::crdt::{
    Consistency, Crdt, CrdtError, Envelope, LWWMap, Message, PNCounter, Read, ReadStatus,
    ReplicaId, ReplicatedData, Replicator, Write, WriteStatus, from_bytes, to_bytes,
};

/// The milliseconds one round of the network advances the clock.
const ROUND_MS: u64 = 10;

/// The network: every message is encoded and decoded (it must travel as bytes), then lost,
/// duplicated or held back a round as the seeded generator says.
struct Net<D> {
    nodes: Vec<Replicator<D>>,
    flight: Vec<Envelope<D>>,
    rng: u64,
    /// Percent of messages lost.
    loss: u64,
    /// Percent of messages duplicated.
    dup: u64,
    /// Nodes that neither send nor receive.
    down: BTreeSet<ReplicaId>,
    /// One side of a partition: messages between it and the rest are lost.
    cut: Option<BTreeSet<ReplicaId>>,
    /// Drops gossip (digests and unacknowledged deltas): only the quorum protocol delivers.
    quorum_only: bool,
    now: u64,
}

impl<D: Crdt + Clone> Net<D> {
    fn new(n: u64, seed: u64) -> Self {
        let ids: Vec<ReplicaId> = (0..n).map(ReplicaId).collect();
        Self {
            nodes: ids
                .iter()
                .map(|&me| Replicator::new(me, ids.iter().copied()))
                .collect(),
            flight: Vec::new(),
            rng: seed | 1,
            loss: 0,
            dup: 0,
            down: BTreeSet::new(),
            cut: None,
            quorum_only: false,
            now: 0,
        }
    }
    fn rnd(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
    fn blocked(&self, e: &Envelope<D>) -> bool {
        let split = self
            .cut
            .as_ref()
            .is_some_and(|side| side.contains(&e.from) != side.contains(&e.to));
        let gossip = matches!(
            e.msg,
            Message::Digest { .. } | Message::Deltas { ack: None, .. }
        );
        split
            || self.down.contains(&e.from)
            || self.down.contains(&e.to)
            || (self.quorum_only && gossip)
    }
    /// Moves every node's outgoing messages into the network.
    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(e) = self.nodes[i].poll_transmit() {
                let msg: Message<D> =
                    from_bytes(&to_bytes(&e.msg, "message").unwrap(), "message").unwrap();
                let e = Envelope { msg, ..e };
                if self.blocked(&e) || self.rnd() % 100 < self.loss {
                    continue;
                }
                if self.rnd() % 100 < self.dup {
                    self.flight.push(e.clone());
                }
                self.flight.push(e);
            }
        }
    }
    /// One round: every live node ticks, then the messages in flight arrive in a random order,
    /// a fifth of them a round late.
    fn round(&mut self) {
        self.now += ROUND_MS;
        for i in 0..self.nodes.len() {
            if !self.down.contains(&ReplicaId(i as u64)) {
                self.nodes[i].tick(self.now);
            }
        }
        self.collect();
        let mut flight = std::mem::take(&mut self.flight);
        for i in (1..flight.len()).rev() {
            let j = (self.rnd() % (i as u64 + 1)) as usize;
            flight.swap(i, j);
        }
        for e in flight {
            if self.rnd() % 100 < 20 {
                self.flight.push(e);
            } else if !self.blocked(&e) {
                self.nodes[e.to.0 as usize].handle(e.from, e.msg);
            }
        }
        self.collect();
    }
    fn converged(&self) -> bool {
        let live: Vec<&Replicator<D>> = self
            .nodes
            .iter()
            .filter(|r| !self.down.contains(&r.id()))
            .collect();
        let first: Vec<(&str, &D)> = live[0].entries().collect();
        live.iter()
            .all(|r| r.entries().collect::<Vec<_>>() == first)
    }
    /// Rounds until write `w` of node `n` is no longer pending (at most `max`).
    fn drive_write(&mut self, n: usize, w: Write, max: usize) -> WriteStatus {
        let Write::Pending(id) = w else {
            return WriteStatus::Done;
        };
        for _ in 0..max {
            match self.nodes[n].poll_write(id).unwrap() {
                WriteStatus::Pending => self.round(),
                done => return done,
            }
        }
        self.nodes[n].poll_write(id).unwrap()
    }
    /// Rounds until read `r` of node `n` is no longer pending (at most `max`).
    fn drive_read(&mut self, n: usize, r: Read<D>, max: usize) -> ReadStatus<D> {
        let id = match r {
            Read::Done(v) => return ReadStatus::Done(v),
            Read::Pending(id) => id,
        };
        for _ in 0..max {
            match self.nodes[n].poll_read(id).unwrap() {
                ReadStatus::Pending => self.round(),
                done => return done,
            }
        }
        self.nodes[n].poll_read(id).unwrap()
    }
}

fn add(
    c: i64,
) -> impl FnOnce(&mut ReplicatedData, weir_cluster::crdt::Writer) -> Result<ReplicatedData, CrdtError>
{
    move |d, w| {
        Ok(ReplicatedData::PNCounter(
            d.pncounter_mut("hits")?.add(w.replica, c)?,
        ))
    }
}

#[test]
fn all_converge_under_loss_duplication_reordering_and_a_partition() {
    for seed in [1u64, 7, 42, 1234] {
        let mut net: Net<ReplicatedData> = Net::new(5, seed);
        net.loss = 20;
        net.dup = 10;
        net.cut = Some(BTreeSet::from([ReplicaId(0), ReplicaId(1)]));
        let mut total = 0i128;
        let mut set = BTreeSet::new();
        let mut map = BTreeMap::new();
        for round in 0..30u64 {
            for n in 0..5usize {
                let c = (n as i64 + 1) * if round % 4 == 3 { -1 } else { 2 };
                total += i128::from(c);
                let now = net.now;
                let r = &mut net.nodes[n];
                let w = r
                    .update("hits", Consistency::Local, 0, now, add(c))
                    .unwrap();
                assert_eq!(w, Write::Done);
                let x = (n as u64 * 1000 + round).to_le_bytes().to_vec();
                r.update("seen", Consistency::Local, 0, now, |d, w| {
                    Ok(ReplicatedData::ORSet(
                        d.orset_mut("seen")?.add(w.replica, x),
                    ))
                })
                .unwrap();
                set.insert(n as u64 * 1000 + round);
                if round % 3 == 2 {
                    // Removes its own element of two rounds before.
                    let old = (n as u64 * 1000 + round - 2).to_le_bytes().to_vec();
                    r.update("seen", Consistency::Local, 0, now, |d, _| {
                        Ok(ReplicatedData::ORSet(d.orset_mut("seen")?.remove(&old)))
                    })
                    .unwrap();
                    set.remove(&(n as u64 * 1000 + round - 2));
                }
                let (k, v) = (vec![n as u8], round.to_le_bytes().to_vec());
                r.update("last", Consistency::Local, 0, now, |d, w| {
                    Ok(ReplicatedData::LWWMap(d.lwwmap_mut("last")?.put(w, k, v)))
                })
                .unwrap();
                map.insert(n as u8, round);
            }
            net.round();
        }
        // The two sides cannot have converged across the cut.
        assert!(!net.converged(), "seed {seed}");
        net.cut = None;
        let mut rounds = 0;
        while !net.converged() {
            net.round();
            rounds += 1;
            assert!(
                rounds < 400,
                "seed {seed}: no convergence after {rounds} rounds"
            );
        }
        for r in &net.nodes {
            let hits = r.get("hits").and_then(ReplicatedData::pncounter).unwrap();
            assert_eq!(hits.value(), total, "seed {seed}");
            let seen = r.get("seen").and_then(ReplicatedData::orset).unwrap();
            let got: BTreeSet<u64> = seen
                .iter()
                .map(|b| u64::from_le_bytes(b.as_slice().try_into().unwrap()))
                .collect();
            assert_eq!(got, set, "seed {seed}");
            let last = r.get("last").and_then(ReplicatedData::lwwmap).unwrap();
            let got: BTreeMap<u8, u64> = last
                .iter()
                .map(|(k, v)| (k[0], u64::from_le_bytes(v.as_slice().try_into().unwrap())))
                .collect();
            assert_eq!(got, map, "seed {seed}");
        }
    }
}

fn incr(
    n: u64,
) -> impl FnOnce(&mut PNCounter, weir_cluster::crdt::Writer) -> Result<PNCounter, CrdtError> {
    move |c, w| c.increment(w.replica, n)
}

#[test]
fn majority_writes_survive_the_loss_of_a_minority() {
    for seed in [3u64, 99, 2024] {
        let mut net: Net<PNCounter> = Net::new(5, seed);
        net.loss = 30;
        net.dup = 10;
        net.quorum_only = true;
        for i in 1..=5u64 {
            let now = net.now;
            let w = net.nodes[0]
                .update("c", Consistency::Majority, 10_000, now, incr(i))
                .unwrap();
            assert!(matches!(w, Write::Pending(_)));
            assert_eq!(net.drive_write(0, w, 500), WriteStatus::Done, "seed {seed}");
        }
        // The writer and one more replica are lost for good.
        net.down = BTreeSet::from([ReplicaId(0), ReplicaId(1)]);
        let now = net.now;
        let r = net.nodes[4].read("c", Consistency::Majority, 10_000, now);
        let ReadStatus::Done(Some(c)) = net.drive_read(4, r, 500) else {
            panic!("seed {seed}: the majority read did not complete");
        };
        assert_eq!(c.value(), 15, "seed {seed}");
        // The read repaired the reader's own copy.
        assert_eq!(net.nodes[4].get("c").map(PNCounter::value), Some(15));
    }
}

#[test]
fn majority_reads_see_the_latest_majority_write() {
    let mut net: Net<LWWMap<String, u64>> = Net::new(5, 11);
    net.loss = 30;
    net.dup = 10;
    net.quorum_only = true;
    for i in 0..12u64 {
        let writer = (i % 5) as usize;
        let reader = ((i + 2) % 5) as usize;
        // The reader and one more replica miss the write: a majority holds it without them.
        net.down = BTreeSet::from([ReplicaId(reader as u64), ReplicaId((i + 3) % 5)]);
        let now = net.now;
        let w = net.nodes[writer]
            .update("m", Consistency::Majority, 10_000, now, |m, w| {
                Ok(m.put(w, "k".to_owned(), i))
            })
            .unwrap();
        assert_eq!(
            net.drive_write(writer, w, 500),
            WriteStatus::Done,
            "write {i}"
        );
        net.down.clear();
        let now = net.now;
        let Read::Done(stale) = net.nodes[reader].read("m", Consistency::Local, 0, now) else {
            panic!("a local read is done at once")
        };
        assert_ne!(stale.and_then(|m| m.get(&"k".to_owned()).copied()), Some(i));
        let r = net.nodes[reader].read("m", Consistency::Majority, 10_000, now);
        let ReadStatus::Done(Some(m)) = net.drive_read(reader, r, 500) else {
            panic!("read {i} did not complete");
        };
        assert_eq!(m.get(&"k".to_owned()), Some(&i), "read {i}");
    }
}

#[test]
fn writes_and_reads_time_out_without_enough_replicas() {
    let mut net: Net<PNCounter> = Net::new(5, 5);
    net.down = BTreeSet::from([ReplicaId(4)]);
    let w = net.nodes[0]
        .update("c", Consistency::All, 100, 0, incr(2))
        .unwrap();
    let Write::Pending(id) = w else {
        panic!("an All write with peers waits for acks")
    };
    assert_eq!(
        net.drive_write(0, w, 50),
        WriteStatus::TimedOut { acks: 4, needed: 5 }
    );
    // Reported once, then forgotten.
    assert_eq!(
        net.nodes[0].poll_write(id),
        Err(CrdtError::UnknownRequest {
            what: "write",
            id: id.0
        })
    );
    // The write stays merged where it arrived.
    for n in 0..4 {
        assert_eq!(net.nodes[n].get("c").map(PNCounter::value), Some(2));
    }
    let now = net.now;
    let r = net.nodes[1].read("c", Consistency::All, 100, now);
    assert_eq!(
        net.drive_read(1, r, 50),
        ReadStatus::TimedOut {
            replies: 4,
            needed: 5
        }
    );
    // A majority needs three of five: with three down it cannot complete.
    net.down = BTreeSet::from([ReplicaId(2), ReplicaId(3), ReplicaId(4)]);
    let now = net.now;
    let w = net.nodes[0]
        .update("c", Consistency::Majority, 100, now, incr(1))
        .unwrap();
    assert_eq!(
        net.drive_write(0, w, 50),
        WriteStatus::TimedOut { acks: 2, needed: 3 }
    );
    let now = net.now;
    let w = net.nodes[0]
        .update("c", Consistency::Local, 100, now, incr(1))
        .unwrap();
    assert_eq!(w, Write::Done);
}

#[test]
fn a_local_replicator_completes_every_level_at_once() {
    let mut r: Replicator<PNCounter> = Replicator::local();
    assert_eq!(r.replicas(), 1);
    for level in [Consistency::Local, Consistency::Majority, Consistency::All] {
        assert_eq!(r.update("c", level, 0, 0, incr(3)).unwrap(), Write::Done);
        let Read::Done(Some(c)) = r.read("c", level, 0, 0) else {
            panic!("a local read is done at once")
        };
        assert_eq!(c.value(), 3 * (level as i128 + 1));
    }
    assert_eq!(r.read("absent", Consistency::All, 0, 0), Read::Done(None));
    r.tick(10);
    assert_eq!(r.poll_transmit(), None);
    let e = r
        .update("c", Consistency::Local, 0, 0, |_, _| {
            Err(CrdtError::Update {
                key: "c".to_owned(),
                reason: "refused".to_owned(),
            })
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "update of key 'c' failed: refused");
    assert_eq!(r.get("c").map(PNCounter::value), Some(9));
}

#[test]
fn a_key_of_one_kind_refuses_an_update_as_another() {
    let mut r: Replicator<ReplicatedData> = Replicator::local();
    r.update("k", Consistency::Local, 0, 0, add(1)).unwrap();
    let e = r
        .update("k", Consistency::Local, 0, 0, |d, w| {
            Ok(ReplicatedData::ORSet(
                d.orset_mut("k")?.add(w.replica, vec![1]),
            ))
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "key 'k' holds a PNCounter, not an ORSet");
    assert_eq!(
        r.get("k")
            .and_then(ReplicatedData::pncounter)
            .map(PNCounter::value),
        Some(1)
    );
}
