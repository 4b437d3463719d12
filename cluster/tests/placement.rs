//! Placement (balance, determinism, minimal movement), coordinator failover, epoch fencing and
//! the split-brain resolver's timing.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use weir_cluster::epoch::{Epoch, FenceError, FencedStorage, FileEpochStore, MemoryEpochStore};
use weir_cluster::membership::{MembershipView, NodeIdentity};
use weir_cluster::placement::{
    CoordinatorRole, IslandSpec, JobShape, Placement, PlacementError, SubtaskId, place,
};
use weir_cluster::split_brain::{Decision, SplitBrainResolver, Strategy as Sbr};
use weir_engine::Materializer;
use weir_graph::{
    Flow, FlowLogic, Keep, KeyGroupRange, Sink, SinkLogic, Source, SourceLogic, StageCx,
    StageError, Step,
};

fn member(name: &str, started_ms: u64) -> NodeIdentity {
    let addr: SocketAddr = format!("10.0.0.{}:7946", started_ms % 250).parse().unwrap();
    NodeIdentity::new(name, addr, started_ms)
}

fn members(names: &[&str]) -> Vec<NodeIdentity> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| member(n, 100 + i as u64))
        .collect()
}

fn shape(pars: &[usize]) -> JobShape {
    JobShape {
        islands: pars
            .iter()
            .enumerate()
            .map(|(i, p)| IslandSpec {
                island: i,
                parallelism: *p,
                keyed: i % 2 == 1,
            })
            .collect(),
    }
}

fn per_island(p: &Placement, island: usize) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (s, a) in p.iter() {
        if s.island == island {
            *m.entry(a.node.clone()).or_insert(0) += 1;
        }
    }
    m
}

/// Every subtask placed once on a member, each island spread within one.
fn assert_balanced(shape: &JobShape, ms: &[NodeIdentity], p: &Placement) {
    assert_eq!(p.len(), shape.subtasks());
    for island in &shape.islands {
        let counts = per_island(p, island.island);
        let n = ms.len();
        let lo = island.parallelism / n;
        let hi = island.parallelism.div_ceil(n);
        for m in ms {
            let c = counts.get(&m.name).copied().unwrap_or(0);
            assert!(lo <= c && c <= hi, "island {island:?}: {counts:?}");
        }
        for s in 0..island.parallelism {
            let a = p
                .get(SubtaskId {
                    island: island.island,
                    subtask: s,
                })
                .expect("placed");
            assert!(ms.iter().any(|m| m.name == a.node));
            let kg = island
                .keyed
                .then(|| KeyGroupRange::for_subtask(s, island.parallelism));
            assert_eq!(a.key_groups, kg);
        }
    }
}

#[test]
fn a_fresh_placement_spreads_each_island_and_the_totals() {
    let ms = members(&["a", "b", "c"]);
    let sh = shape(&[1, 4, 3, 1, 2]);
    let p = place(&sh, &ms, None).unwrap();
    assert_balanced(&sh, &ms, &p);
    let load: Vec<usize> = p.load().values().copied().collect();
    assert_eq!(load.iter().sum::<usize>(), 11);
    assert!(
        load.iter().max().unwrap() - load.iter().min().unwrap() <= 1,
        "{load:?}"
    );
    assert_eq!(
        place(&sh, &[], None),
        Err(PlacementError::NoMembers { subtasks: 11 })
    );
}

#[test]
fn when_a_node_leaves_only_its_subtasks_move_and_a_joiner_takes_only_its_share() {
    let sh = shape(&[6, 6, 1]);
    let three = members(&["a", "b", "c"]);
    let before = place(&sh, &three, None).unwrap();
    let on_c = before.on_node("c");
    let two: Vec<NodeIdentity> = three[..2].to_vec();
    let after = place(&sh, &two, Some(&before)).unwrap();
    assert_balanced(&sh, &two, &after);
    assert_eq!(after.moved_since(&before), on_c);
    let back = place(&sh, &three, Some(&after)).unwrap();
    assert_balanced(&sh, &three, &back);
    let moved = back.moved_since(&after);
    assert_eq!(
        moved,
        back.on_node("c"),
        "every moved subtask went to the joiner"
    );
    assert_eq!(
        moved.len(),
        4,
        "two of each six-way island; the single one stays"
    );
}

fn island_pars() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..12, 1..6)
}

fn node_count() -> impl Strategy<Value = usize> {
    1usize..7
}

fn named(n: usize) -> Vec<NodeIdentity> {
    (0..n)
        .map(|i| member(&format!("node-{i:02}"), 100 + i as u64))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn placement_is_balanced_and_deterministic(pars in island_pars(), n in node_count(), rot in 0usize..7) {
        let sh = shape(&pars);
        let ms = named(n);
        let p = place(&sh, &ms, None).unwrap();
        assert_balanced(&sh, &ms, &p);
        let mut shuffled = ms.clone();
        shuffled.rotate_left(rot % n);
        shuffled.reverse();
        prop_assert_eq!(&place(&sh, &shuffled, None).unwrap(), &p);
        let load: Vec<usize> = (0..n).map(|i| p.on_node(&ms[i].name).len()).collect();
        prop_assert!(load.iter().max().unwrap() - load.iter().min().unwrap() <= 1, "{:?}", load);
    }

    #[test]
    fn a_leave_moves_exactly_the_leavers_subtasks(pars in island_pars(), n in 2usize..7, gone in 0usize..7) {
        let sh = shape(&pars);
        let ms = named(n);
        let gone = gone % n;
        let before = place(&sh, &ms, None).unwrap();
        let rest: Vec<NodeIdentity> = ms.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, m)| m.clone()).collect();
        let after = place(&sh, &rest, Some(&before)).unwrap();
        assert_balanced(&sh, &rest, &after);
        prop_assert_eq!(after.moved_since(&before), before.on_node(&ms[gone].name));
    }

    #[test]
    fn a_join_moves_only_what_the_joiner_takes(pars in island_pars(), n in 1usize..6, steps in 1usize..4) {
        let sh = shape(&pars);
        let all = named(n + steps);
        let mut current = place(&sh, &all[..n], None).unwrap();
        for k in n..n + steps {
            let ms = &all[..=k];
            let next = place(&sh, ms, Some(&current)).unwrap();
            assert_balanced(&sh, ms, &next);
            let moved = next.moved_since(&current);
            prop_assert_eq!(&moved, &next.on_node(&all[k].name));
            current = next;
        }
    }
}

struct Numbers(u64);
impl SourceLogic<u64> for Numbers {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        _scx: &mut StageCx<'_>,
        out: &mut Vec<u64>,
    ) -> Poll<Result<Step, StageError>> {
        out.push(self.0);
        Poll::Ready(Ok(Step::Done))
    }
}

struct Same;
impl FlowLogic<u64, u64> for Same {
    fn on_batch(
        &mut self,
        input: &mut Vec<u64>,
        out: &mut Vec<u64>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.append(input);
        Ok(())
    }
}

struct Ignore;
impl SinkLogic<u64> for Ignore {
    fn on_batch(&mut self, input: &mut Vec<u64>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        input.clear();
        Ok(())
    }
    fn on_finish(&mut self, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        Ok(())
    }
    fn on_error(&mut self, _error: &StageError) {}
}

#[test]
fn a_physical_plan_is_placed_with_key_groups_on_the_keyed_island() {
    let g = Source::from_logic("numbers", |_| Ok((Numbers(1), ())))
        .partition_by_hash(|x| *x)
        .via(Flow::from_logic("same", |_| Ok((Same, ()))).parallelism(4))
        .to_mat(Sink::from_logic("ignore", |_| Ok((Ignore, ()))), Keep::left);
    let plan = Materializer::new().plan(&g).unwrap();
    let sh = JobShape::from_plan(&plan);
    let keyed: Vec<(usize, bool)> = sh
        .islands
        .iter()
        .map(|i| (i.parallelism, i.keyed))
        .collect();
    assert_eq!(keyed, vec![(1, false), (4, true), (1, false)]);
    let ms = members(&["a", "b"]);
    let p = place(&sh, &ms, None).unwrap();
    assert_balanced(&sh, &ms, &p);
    let keyed_island = sh.islands[1].island;
    let mut groups: Vec<(String, KeyGroupRange)> = (0..4)
        .map(|s| {
            let a = p
                .get(SubtaskId {
                    island: keyed_island,
                    subtask: s,
                })
                .unwrap();
            (a.node.clone(), a.key_groups.unwrap())
        })
        .collect();
    groups.sort_by_key(|(_, r)| r.start());
    let starts: Vec<usize> = groups.iter().map(|(_, r)| r.start()).collect();
    let max = weir_graph::MAX_KEY_GROUPS;
    assert_eq!(
        starts,
        (0..4).map(|i| (i * max).div_ceil(4)).collect::<Vec<_>>()
    );
    assert_eq!(groups.last().unwrap().1.end(), max);
}

#[test]
fn the_oldest_member_coordinates_and_the_next_oldest_takes_over_with_a_new_epoch() {
    let a = member("a", 10);
    let b = member("b", 20);
    let c = member("c", 30);
    let d = member("d", 5);
    let mut role = CoordinatorRole::new();
    let seat = role
        .observe(&[c.clone(), b.clone(), a.clone()])
        .cloned()
        .unwrap();
    assert_eq!((seat.node.name.as_str(), seat.epoch), ("a", Epoch(1)));
    assert_eq!(
        role.observe(&[a.clone(), b.clone(), c.clone(), d.clone()]),
        None,
        "a joiner never takes the seat"
    );
    let seat = role
        .observe(&[b.clone(), c.clone(), d.clone()])
        .cloned()
        .unwrap();
    assert_eq!((seat.node.name.as_str(), seat.epoch), ("d", Epoch(2)));
    let seat = role.observe(&[b.clone(), c.clone()]).cloned().unwrap();
    assert_eq!((seat.node.name.as_str(), seat.epoch), ("b", Epoch(3)));
    assert_eq!(role.observe(&[]), None);
    assert_eq!(role.seat(), None);
    let seat = role.observe(std::slice::from_ref(&c)).cloned().unwrap();
    assert_eq!(
        (seat.node.name.as_str(), seat.epoch),
        ("c", Epoch(4)),
        "epochs never go back"
    );
}

#[test]
fn a_stale_attempts_commit_is_refused_after_a_newer_attempt_started() {
    let storage = FencedStorage::new(Arc::new(MemoryEpochStore::new()));
    let mut committed: Vec<&str> = Vec::new();
    let old = storage.begin(Epoch(1)).unwrap();
    old.commit("manifest 1", || {
        committed.push("e1 chk1");
        Ok::<_, String>(())
    })
    .unwrap();
    let new = storage.begin(Epoch(2)).unwrap();
    let err = old
        .commit("manifest 2", || {
            committed.push("e1 chk2");
            Ok::<_, String>(())
        })
        .unwrap_err();
    assert!(
        matches!(err, FenceError::Stale { attempt: Epoch(1), highest: Epoch(2), ref what } if what == "manifest 2"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "manifest 2: write from epoch 1 refused, storage has seen epoch 2"
    );
    assert!(old.check("sink commit").is_err());
    new.commit("manifest 2", || {
        committed.push("e2 chk2");
        Ok::<_, String>(())
    })
    .unwrap();
    assert_eq!(committed, vec!["e1 chk1", "e2 chk2"]);
    assert!(matches!(
        storage.begin(Epoch(1)),
        Err(FenceError::Stale { .. })
    ));
    assert_eq!(storage.highest().unwrap(), Epoch(2));
    let failing = new.commit("sink", || Err::<(), _>("disk full"));
    assert_eq!(failing.unwrap_err().to_string(), "sink: disk full");
}

#[test]
fn the_file_epoch_record_fences_across_handles_and_rejects_garbage() {
    let dir = std::env::temp_dir().join(format!("weir-epoch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = FencedStorage::new(Arc::new(FileEpochStore::in_dir(&dir).unwrap()));
    let stale = first.begin(Epoch(3)).unwrap();
    // Another process (a new attempt) opens the same folder.
    let second = FencedStorage::new(Arc::new(FileEpochStore::in_dir(&dir).unwrap()));
    assert_eq!(second.highest().unwrap(), Epoch(3));
    let fresh = second.begin(Epoch(4)).unwrap();
    assert!(matches!(
        stale.commit("chk", || Ok::<_, String>(())),
        Err(FenceError::Stale {
            attempt: Epoch(3),
            highest: Epoch(4),
            ..
        })
    ));
    fresh.commit("chk", || Ok::<_, String>(())).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("EPOCH")).unwrap(), "4\n");
    std::fs::write(dir.join("EPOCH"), "garbage").unwrap();
    assert!(matches!(
        fresh.check("chk"),
        Err(FenceError::Corrupt { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn view(me: &NodeIdentity, up: &[&NodeIdentity], down: &[&NodeIdentity]) -> MembershipView {
    MembershipView {
        me: me.clone(),
        up: up.iter().map(|m| (*m).clone()).collect(),
        down: down.iter().map(|m| (*m).clone()).collect(),
    }
}

#[test]
fn the_resolver_decides_only_after_the_view_is_stable_for_the_delay() {
    let (a, b, c) = (member("a", 1), member("b", 2), member("c", 3));
    let ms = Duration::from_millis;
    let mut r = SplitBrainResolver::new(Sbr::KeepMajority, ms(1000));
    assert_eq!(
        r.observe(ms(0), &view(&a, &[&a, &b, &c], &[])),
        Decision::Undecided
    );
    let lost_c = view(&a, &[&a, &b], &[&c]);
    assert_eq!(r.observe(ms(100), &lost_c), Decision::Undecided);
    assert_eq!(r.observe(ms(1099), &lost_c), Decision::Undecided);
    // c flaps back and is lost again: the delay starts over.
    assert_eq!(
        r.observe(ms(1099), &view(&a, &[&a, &b, &c], &[])),
        Decision::Undecided
    );
    assert_eq!(r.observe(ms(1500), &lost_c), Decision::Undecided);
    assert_eq!(r.observe(ms(2499), &lost_c), Decision::Undecided);
    assert_eq!(
        r.observe(ms(2500), &lost_c),
        Decision::Keep {
            downed: vec![c.clone()]
        }
    );
    assert!(!r.downed_self());

    let mut r = SplitBrainResolver::new(Sbr::KeepMajority, ms(1000));
    let alone = view(&c, &[&c], &[&a, &b]);
    assert_eq!(r.observe(ms(0), &alone), Decision::Undecided);
    assert_eq!(r.observe(ms(1000), &alone), Decision::DownSelf);
    assert_eq!(
        r.observe(ms(5000), &view(&c, &[&a, &b, &c], &[])),
        Decision::DownSelf,
        "final"
    );
    assert!(r.downed_self());
}
