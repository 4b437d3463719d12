//! Keyed state moves between backends by key-group range when parallelism changes: every entry
//! ends in exactly the backend of the subtask that owns its key group, nothing lost or doubled.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_engine::VirtualClock;
use weir_graph::{StageId, subtask_for_key_group};
use weir_state::*;

/// One backend per subtask of `parallelism`, each holding that subtask's key groups.
fn subtasks(parallelism: usize) -> Vec<(Arc<InMemoryBackend>, StateService)> {
    (0..parallelism)
        .map(|i| {
            let b = Arc::new(InMemoryBackend::for_key_groups(KeyGroupRange::for_subtask(
                i,
                parallelism,
            )));
            let s = StateService::new(b.clone(), Arc::new(VirtualClock::new()));
            (b, s)
        })
        .collect()
}

fn values(s: &StateService) -> ValueState<String, u64> {
    s.scope_of(StageId::of_uid("counts"), 0)
        .value("count", None)
}

fn maps(s: &StateService) -> MapState<String, u8, u64> {
    s.scope_of(StageId::of_uid("counts"), 0)
        .map("by_digit", None)
}

fn lists(s: &StateService) -> ListState<String, u64> {
    s.scope_of(StageId::of_uid("counts"), 0).list("seen", None)
}

/// The subtask of parallelism `p` that owns `key`.
fn owner(key: &str, p: usize) -> usize {
    subtask_for_key_group(key_group_of(&postcard::to_allocvec(key).unwrap()), p)
}

/// Writes `model` into the subtasks of `old`, snapshots each, imports every snapshot into every
/// subtask of `new`, and returns the new subtasks.
fn rescale(
    model: &BTreeMap<String, u64>,
    old: usize,
    new: usize,
) -> Vec<(Arc<InMemoryBackend>, StateService)> {
    let before = subtasks(old);
    for (k, v) in model {
        let (_, s) = &before[owner(k, old)];
        values(s).set(k, v).unwrap();
        lists(s).add(k, v).unwrap();
        lists(s).add(k, &(v + 1)).unwrap();
        maps(s).insert(k, &((v % 10) as u8), v).unwrap();
        maps(s).insert(k, &10, &0).unwrap();
    }
    let snaps: Vec<Vec<u8>> = before
        .iter()
        .map(|(b, _)| b.snapshot(b.key_groups()).unwrap().into_bytes().unwrap())
        .collect();
    let after = subtasks(new);
    for (b, _) in &after {
        let taken: usize = snaps.iter().map(|s| b.import(s).unwrap()).sum();
        let expect = 4 * model
            .keys()
            .filter(|k| {
                b.key_groups()
                    .contains(key_group_of(&postcard::to_allocvec(k.as_str()).unwrap()))
            })
            .count();
        assert_eq!(taken, expect);
    }
    after
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn rescaling_moves_every_key_to_its_new_owner_once(
        model in prop::collection::btree_map("[a-z]{0,6}", any::<u64>(), 0..200),
        old in 1usize..=8,
        new in 1usize..=8,
    ) {
        let after = rescale(&model, old, new);
        let mut seen = BTreeMap::new();
        for (i, (b, s)) in after.iter().enumerate() {
            for kg in b.key_groups().iter() {
                for (k, v) in values(s).entries_in(kg).unwrap() {
                    prop_assert_eq!(owner(&k, new), i);
                    prop_assert!(seen.insert(k, v).is_none(), "a key is in two subtasks");
                }
            }
        }
        prop_assert_eq!(&seen, &model);
        for (k, v) in &model {
            let (_, s) = &after[owner(k, new)];
            prop_assert_eq!(values(s).get(k).unwrap(), Some(*v));
            prop_assert_eq!(lists(s).get(k).unwrap(), vec![*v, v + 1]);
            prop_assert_eq!(maps(s).entries(k).unwrap(), vec![((v % 10) as u8, *v), (10, 0)]);
        }
    }
}

#[test]
fn rescaling_2_to_3_and_back_to_1_keeps_all_keys() {
    let model: BTreeMap<String, u64> = (0..1000u64).map(|i| (format!("k{i}"), i)).collect();
    let three = rescale(&model, 2, 3);
    assert!(three.iter().all(|(b, s)| {
        b.key_groups()
            .iter()
            .any(|kg| !values(s).entries_in(kg).unwrap().is_empty())
    }));
    let one = Arc::new(InMemoryBackend::new());
    for (b, _) in &three {
        one.import(
            &b.snapshot(KeyGroupRange::ALL)
                .unwrap()
                .into_bytes()
                .unwrap(),
        )
        .unwrap();
    }
    let s = StateService::new(one, Arc::new(VirtualClock::new()));
    let mut all: Vec<(String, u64)> = (0..MAX_KEY_GROUPS)
        .flat_map(|kg| values(&s).entries_in(kg).unwrap())
        .collect();
    all.sort();
    assert_eq!(all, model.into_iter().collect::<Vec<_>>());
}

#[test]
fn clearing_key_groups_removes_only_them() {
    let b = Arc::new(InMemoryBackend::new());
    let s = StateService::new(b.clone(), Arc::new(VirtualClock::new()));
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    for k in &keys {
        values(&s).set(k, &1).unwrap();
    }
    b.clear_key_groups(KeyGroupRange::new(0, 64)).unwrap();
    for k in &keys {
        let kg = key_group_of(&postcard::to_allocvec(k.as_str()).unwrap());
        assert_eq!(values(&s).get(k).unwrap(), (kg >= 64).then_some(1), "{k}");
    }
}
