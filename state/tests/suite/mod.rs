//! The behaviour every `StateBackend` must have: exact behaviour of every state kind, TTL on the
//! virtual clock, snapshot round trips and corruption detection, and random operations against
//! reference models. A backend's test file includes this module
//! (`#[macro_use] #[path = ".../state/tests/suite/mod.rs"] mod suite;`) and instantiates it with
//! `conformance!(make)`, where `make(range)` returns a [`Fixture`] holding an empty backend of
//! those key groups.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_graph::StageId;
use weir_state::*;

/// An empty backend, and whatever must live as long as it (a temporary directory).
pub struct Fixture {
    /// The backend under test.
    pub backend: Arc<dyn StateBackend>,
    /// Dropped after the backend.
    pub keep: Option<Box<dyn std::any::Any>>,
}

/// Makes an empty backend holding the key groups of a range.
pub type Make = fn(KeyGroupRange) -> Fixture;

/// Instantiates every test of the suite for the backend `make` builds.
#[allow(unused_macros)]
macro_rules! conformance {
    ($make:expr) => {
        conformance!(@tests $make;
            value_state_sets_gets_and_clears_per_key,
            states_of_other_names_and_stages_are_separate,
            map_state_keeps_one_map_per_key_in_user_key_order,
            map_keys_that_prefix_each_other_stay_apart,
            list_state_appends_in_order_and_replaces,
            operator_list_state_is_per_subtask_and_unions_in_subtask_order,
            a_changed_value_type_is_a_decode_error_naming_the_state,
            value_ttl_expires_on_the_virtual_clock_and_restarts_on_write,
            ttl_after_access_restarts_on_read,
            map_and_list_ttl_expire_per_entry,
            a_backend_for_some_key_groups_rejects_others,
            a_time_base_carries_ttls_across_a_restore_into_a_new_clock,
            string_keys_may_be_passed_as_str,
            a_snapshot_restores_everything_and_replaces_what_was_there,
            a_snapshot_is_frozen_when_taken,
            an_empty_backend_round_trips_as_empty,
            corrupt_snapshots_are_typed_errors_and_change_nothing,
            every_single_flipped_bit_is_detected,
            a_range_snapshot_and_import_take_only_their_key_groups,
            a_state_snapshot_holds_only_that_state_and_imports_by_key_group,
            a_snapshot_file_imports_as_its_bytes_do_and_a_damaged_one_changes_nothing,
            clear_key_groups_removes_only_that_range,
            state_kinds_follow_the_model,
            raw_operations_follow_a_btreemap
        );
    };
    (@tests $make:expr; $($t:ident),* $(,)?) => {
        $(
            #[test]
            fn $t() {
                suite::$t($make)
            }
        )*
    };
}

fn all(make: Make) -> Fixture {
    make(KeyGroupRange::ALL)
}

fn service(make: Make) -> (Fixture, StateService, Arc<VirtualClock>) {
    let f = all(make);
    let clock = Arc::new(VirtualClock::new());
    let s = StateService::new(f.backend.clone(), clock.clone());
    (f, s, clock)
}

fn scope(s: &StateService) -> StateScope {
    s.scope_of(StageId::of_uid("stage"), 0)
}

fn enc<T: serde::Serialize + ?Sized>(t: &T) -> Vec<u8> {
    postcard::to_allocvec(t).unwrap()
}

pub fn value_state_sets_gets_and_clears_per_key(make: Make) {
    let (_f, s, _) = service(make);
    let v = scope(&s).value::<String, u64>("v", None);
    assert_eq!(v.get("a").unwrap(), None);
    v.set("a", &1).unwrap();
    v.set("b", &2).unwrap();
    v.set("a", &3).unwrap();
    assert_eq!(v.get("a").unwrap(), Some(3));
    assert_eq!(v.get("b").unwrap(), Some(2));
    v.clear("a").unwrap();
    assert_eq!(v.get("a").unwrap(), None);
    assert_eq!(v.get("b").unwrap(), Some(2));
    let kg = key_group_of(&enc("b"));
    assert_eq!(v.entries_in(kg).unwrap(), vec![("b".to_string(), 2)]);
}

pub fn states_of_other_names_and_stages_are_separate(make: Make) {
    let (_f, s, _) = service(make);
    let a = scope(&s).value::<u32, u32>("a", None);
    let b = scope(&s).value::<u32, u32>("b", None);
    let other = s
        .scope_of(StageId::of_uid("other"), 0)
        .value::<u32, u32>("a", None);
    a.set(&1, &10).unwrap();
    assert_eq!(b.get(&1).unwrap(), None);
    assert_eq!(other.get(&1).unwrap(), None);
    // The same stage and name reach the same state through a new handle.
    assert_eq!(
        scope(&s).value::<u32, u32>("a", None).get(&1).unwrap(),
        Some(10)
    );
}

pub fn map_state_keeps_one_map_per_key_in_user_key_order(make: Make) {
    let (_f, s, _) = service(make);
    let m = scope(&s).map::<u32, u8, String>("m", None);
    m.insert(&1, &3, &"c".into()).unwrap();
    m.insert(&1, &1, &"a".into()).unwrap();
    m.insert(&2, &1, &"x".into()).unwrap();
    m.insert(&1, &2, &"b".into()).unwrap();
    m.insert(&1, &1, &"A".into()).unwrap();
    assert_eq!(
        m.entries(&1).unwrap(),
        vec![(1, "A".into()), (2, "b".into()), (3, "c".into())]
    );
    assert_eq!(m.get(&1, &2).unwrap(), Some("b".into()));
    assert_eq!(m.get(&1, &9).unwrap(), None);
    m.remove(&1, &2).unwrap();
    assert_eq!(
        m.entries(&1).unwrap(),
        vec![(1, "A".into()), (3, "c".into())]
    );
    m.clear(&1).unwrap();
    assert_eq!(m.entries(&1).unwrap(), vec![]);
    assert_eq!(m.entries(&2).unwrap(), vec![(1, "x".into())]);
}

pub fn map_keys_that_prefix_each_other_stay_apart(make: Make) {
    // Encoded key "a" is a byte prefix of "ab": the length prefix keeps their maps separate.
    let (_f, s, _) = service(make);
    let m = scope(&s).map::<String, u8, u8>("m", None);
    m.insert("a", &1, &1).unwrap();
    m.insert("ab", &1, &2).unwrap();
    m.clear("a").unwrap();
    assert_eq!(m.entries("a").unwrap(), vec![]);
    assert_eq!(m.entries("ab").unwrap(), vec![(1, 2)]);
}

pub fn list_state_appends_in_order_and_replaces(make: Make) {
    let (_f, s, _) = service(make);
    let l = scope(&s).list::<u32, String>("l", None);
    assert_eq!(l.get(&1).unwrap(), Vec::<String>::new());
    l.add(&1, &"x".into()).unwrap();
    l.add(&1, &"y".into()).unwrap();
    l.add(&2, &"z".into()).unwrap();
    assert_eq!(l.get(&1).unwrap(), vec!["x".to_string(), "y".into()]);
    l.update(&1, &["p".into(), "q".into(), "r".into()]).unwrap();
    assert_eq!(
        l.get(&1).unwrap(),
        vec!["p".to_string(), "q".into(), "r".into()]
    );
    l.update(&1, &[]).unwrap();
    assert_eq!(l.get(&1).unwrap(), Vec::<String>::new());
    assert_eq!(l.get(&2).unwrap(), vec!["z".to_string()]);
    l.clear(&2).unwrap();
    assert_eq!(l.get(&2).unwrap(), Vec::<String>::new());
}

pub fn operator_list_state_is_per_subtask_and_unions_in_subtask_order(make: Make) {
    let (_f, s, _) = service(make);
    let stage = StageId::of_uid("src");
    let s0 = s.scope_of(stage, 0).operator_list::<u64>("offsets");
    let s1 = s.scope_of(stage, 1).operator_list::<u64>("offsets");
    let other = s.scope_of(stage, 0).operator_list::<u64>("other");
    assert_eq!(s0.get().unwrap(), Vec::<u64>::new());
    s1.update(&[7, 8]).unwrap();
    s0.add(1).unwrap();
    s0.add(2).unwrap();
    other.add(99).unwrap();
    assert_eq!(s0.get().unwrap(), vec![1, 2]);
    assert_eq!(s1.get().unwrap(), vec![7, 8]);
    assert_eq!(s0.union().unwrap(), vec![1, 2, 7, 8]);
    assert_eq!(other.union().unwrap(), vec![99]);
}

pub fn a_changed_value_type_is_a_decode_error_naming_the_state(make: Make) {
    let (_f, s, _) = service(make);
    scope(&s)
        .value::<u32, String>("v", None)
        .set(&1, &"abc".into())
        .unwrap();
    let e = scope(&s).value::<u32, u64>("v", None).get(&1).unwrap_err();
    assert!(
        matches!(&e, StateError::Decode { state, what: "value", .. } if state.ends_with("/v")),
        "{e}"
    );
}

pub fn value_ttl_expires_on_the_virtual_clock_and_restarts_on_write(make: Make) {
    let (f, s, clock) = service(make);
    let v = scope(&s).value::<u32, u32>("v", Some(Ttl::after_write(Duration::from_secs(10))));
    v.set(&1, &1).unwrap();
    clock.advance(Duration::from_secs(6));
    v.set(&2, &2).unwrap();
    assert_eq!(v.get(&1).unwrap(), Some(1));
    clock.advance(Duration::from_secs(4));
    // 10 s after its write: expired, and removed from the backend on read.
    assert_eq!(v.get(&1).unwrap(), None);
    let kg1 = key_group_of(&enc(&1u32));
    assert_eq!(v.entries_in(kg1).unwrap(), vec![]);
    let id = StateId::new(StageId::of_uid("stage"), "v");
    assert_eq!(f.backend.get(kg1, id, &enc(&1u32)).unwrap(), None);
    assert_eq!(v.get(&2).unwrap(), Some(2));
    v.set(&2, &3).unwrap();
    clock.advance(Duration::from_secs(9));
    assert_eq!(v.get(&2).unwrap(), Some(3));
    clock.advance(Duration::from_secs(1));
    assert_eq!(v.get(&2).unwrap(), None);
}

pub fn ttl_after_access_restarts_on_read(make: Make) {
    let (_f, s, clock) = service(make);
    let v = scope(&s).value::<u32, u32>("v", Some(Ttl::after_access(Duration::from_secs(10))));
    let w = scope(&s).value::<u32, u32>("w", Some(Ttl::after_write(Duration::from_secs(10))));
    v.set(&1, &1).unwrap();
    w.set(&1, &1).unwrap();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(8));
        assert_eq!(v.get(&1).unwrap(), Some(1));
    }
    assert_eq!(w.get(&1).unwrap(), None);
    clock.advance(Duration::from_secs(10));
    assert_eq!(v.get(&1).unwrap(), None);
}

pub fn map_and_list_ttl_expire_per_entry(make: Make) {
    let (_f, s, clock) = service(make);
    let ttl = Some(Ttl::after_write(Duration::from_millis(100)));
    let m = scope(&s).map::<u32, u32, u32>("m", ttl);
    let l = scope(&s).list::<u32, u32>("l", ttl);
    m.insert(&1, &1, &10).unwrap();
    l.add(&1, &10).unwrap();
    clock.advance(Duration::from_millis(50));
    m.insert(&1, &2, &20).unwrap();
    l.add(&1, &20).unwrap();
    assert_eq!(m.entries(&1).unwrap(), vec![(1, 10), (2, 20)]);
    assert_eq!(l.get(&1).unwrap(), vec![10, 20]);
    clock.advance(Duration::from_millis(50));
    assert_eq!(m.get(&1, &1).unwrap(), None);
    assert_eq!(m.entries(&1).unwrap(), vec![(2, 20)]);
    assert_eq!(l.get(&1).unwrap(), vec![20]);
    l.add(&1, &30).unwrap();
    clock.advance(Duration::from_millis(50));
    assert_eq!(m.entries(&1).unwrap(), vec![]);
    assert_eq!(l.get(&1).unwrap(), vec![30]);
    clock.advance(Duration::from_millis(50));
    assert_eq!(l.get(&1).unwrap(), Vec::<u32>::new());
}

pub fn a_backend_for_some_key_groups_rejects_others(make: Make) {
    let f = make(KeyGroupRange::new(0, 64));
    let b = &f.backend;
    assert_eq!(b.key_groups(), KeyGroupRange::new(0, 64));
    let id = StateId(1);
    b.put(63, id, b"k", b"v").unwrap();
    let e = b.put(64, id, b"k", b"v").unwrap_err();
    assert_eq!(e.to_string(), "key group 64 is outside key groups 0..64");
    for e in [
        b.get(64, id, b"k").unwrap_err(),
        b.append(64, id, b"k", b"v").unwrap_err(),
        b.delete(100, id, b"k").unwrap_err(),
        b.scan(64, id, b"", &mut |_, _| ()).unwrap_err(),
        b.delete_prefix(127, id, b"").unwrap_err(),
    ] {
        assert!(matches!(e, StateError::KeyGroupOutOfRange { .. }), "{e}");
    }
    assert_eq!(b.get(63, id, b"k").unwrap(), Some(b"v".to_vec()));
}

pub fn a_time_base_carries_ttls_across_a_restore_into_a_new_clock(make: Make) {
    let (f, s, clock) = service(make);
    let ttl = Some(Ttl::after_write(Duration::from_secs(60)));
    scope(&s).value::<u32, u32>("v", ttl).set(&1, &1).unwrap();
    clock.advance(Duration::from_secs(50));
    let at = s.state_time();
    assert_eq!(at, Duration::from_secs(50));
    let snap = f
        .backend
        .snapshot(KeyGroupRange::ALL)
        .unwrap()
        .into_bytes()
        .unwrap();

    let clock2 = Arc::new(VirtualClock::new());
    let restored = all(make);
    restored.backend.restore(&snap).unwrap();
    let s2 = StateService::new(restored.backend.clone(), clock2.clone()).with_time_base(at);
    let v = scope(&s2).value::<u32, u32>("v", ttl);
    clock2.advance(Duration::from_secs(9));
    assert_eq!(s2.state_time(), Duration::from_secs(59));
    assert_eq!(v.get(&1).unwrap(), Some(1));
    clock2.advance(Duration::from_secs(1));
    assert_eq!(v.get(&1).unwrap(), None);
}

pub fn string_keys_may_be_passed_as_str(make: Make) {
    let (_f, s, _) = service(make);
    let v = scope(&s).value::<String, u64>("v", None);
    let l = scope(&s).list::<String, u64>("l", None);
    let m = scope(&s).map::<String, u8, u64>("m", None);
    v.set("a", &1).unwrap();
    l.add("a", &2).unwrap();
    m.insert("a", &0, &3).unwrap();
    assert_eq!(v.get(&"a".to_string()).unwrap(), Some(1));
    assert_eq!(l.get(&"a".to_string()).unwrap(), vec![2]);
    assert_eq!(m.entries(&"a".to_string()).unwrap(), vec![(0, 3)]);
    assert_eq!(v.get("a").unwrap(), Some(1));
}

/// A backend holding a value, a map, a list and an operator state.
pub fn filled(make: Make) -> (Fixture, StateService) {
    let f = all(make);
    let s = StateService::new(f.backend.clone(), Arc::new(VirtualClock::new()));
    fill(&s);
    (f, s)
}

/// Writes the contents [`check_filled`] expects.
pub fn fill(s: &StateService) {
    let sc = s.scope_of(StageId::of_uid("op"), 0);
    let v = sc.value::<String, u64>("v", None);
    for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
        v.set(&k.to_string(), &(i as u64)).unwrap();
    }
    sc.map::<u32, u32, String>("m", None)
        .insert(&1, &2, &"x".into())
        .unwrap();
    sc.list::<u32, i32>("l", None).add(&5, &-1).unwrap();
    sc.list::<u32, i32>("l", None).add(&5, &-2).unwrap();
    sc.operator_list::<u64>("o").update(&[42]).unwrap();
}

/// Asserts the state holds exactly what [`fill`] wrote.
pub fn check_filled(s: &StateService) {
    let sc = s.scope_of(StageId::of_uid("op"), 0);
    let v = sc.value::<String, u64>("v", None);
    for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
        assert_eq!(v.get(&k.to_string()).unwrap(), Some(i as u64));
    }
    let all: usize = (0..MAX_KEY_GROUPS)
        .map(|kg| v.entries_in(kg).unwrap().len())
        .sum();
    assert_eq!(all, 4);
    assert_eq!(
        sc.map::<u32, u32, String>("m", None).entries(&1).unwrap(),
        vec![(2, "x".to_string())]
    );
    assert_eq!(
        sc.list::<u32, i32>("l", None).get(&5).unwrap(),
        vec![-1, -2]
    );
    assert_eq!(sc.operator_list::<u64>("o").get().unwrap(), vec![42]);
}

/// A snapshot of all of `b`.
pub fn snap(b: &dyn StateBackend) -> Vec<u8> {
    b.snapshot(KeyGroupRange::ALL)
        .unwrap()
        .into_bytes()
        .unwrap()
}

pub fn a_snapshot_restores_everything_and_replaces_what_was_there(make: Make) {
    let (src, _s0) = filled(make);
    let bytes = snap(&*src.backend);
    let dst = all(make);
    let s = StateService::new(dst.backend.clone(), Arc::new(VirtualClock::new()));
    let stray = s
        .scope_of(StageId::of_uid("op"), 0)
        .value::<String, u64>("v", None);
    stray.set("zzz", &9).unwrap();
    s.scope_of(StageId::of_uid("op"), 3)
        .operator_list::<u64>("o")
        .update(&[1])
        .unwrap();
    // Four values, one map entry, one list (operator state is not counted).
    assert_eq!(dst.backend.restore(&bytes).unwrap(), 6);
    check_filled(&s);
    assert_eq!(stray.get("zzz").unwrap(), None);
    assert_eq!(
        s.scope_of(StageId::of_uid("op"), 0)
            .operator_list::<u64>("o")
            .union()
            .unwrap(),
        vec![42]
    );
    // A snapshot of the restored backend is byte for byte the original.
    assert_eq!(snap(&*dst.backend), bytes);
}

pub fn a_snapshot_is_frozen_when_taken(make: Make) {
    let (src, s) = filled(make);
    let w = src.backend.snapshot(KeyGroupRange::ALL).unwrap();
    let sc = s.scope_of(StageId::of_uid("op"), 0);
    let v = sc.value::<String, u64>("v", None);
    v.set("a", &100).unwrap();
    v.set("new", &1).unwrap();
    v.clear("b").unwrap();
    sc.list::<u32, i32>("l", None).add(&5, &-3).unwrap();
    sc.operator_list::<u64>("o").update(&[7]).unwrap();
    let mut out = Vec::new();
    let n = w.write_to(&mut out).unwrap();
    assert_eq!(n as usize, out.len());
    let dst = all(make);
    dst.backend.restore(&out).unwrap();
    check_filled(&StateService::new(
        dst.backend.clone(),
        Arc::new(VirtualClock::new()),
    ));
}

pub fn an_empty_backend_round_trips_as_empty(make: Make) {
    let b = all(make);
    let bytes = snap(&*b.backend);
    let (dst, s) = filled(make);
    assert_eq!(dst.backend.restore(&bytes).unwrap(), 0);
    let sc = s.scope_of(StageId::of_uid("op"), 0);
    assert_eq!(sc.value::<String, u64>("v", None).get("a").unwrap(), None);
    assert_eq!(
        sc.operator_list::<u64>("o").get().unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(snap(&*dst.backend), bytes);
}

/// Restoring or importing `bytes` fails with `want`, and the target keeps its contents.
fn rejects(make: Make, bytes: &[u8], want: SnapshotError) {
    let (dst, s) = filled(make);
    match dst.backend.restore(bytes) {
        Err(StateError::Snapshot(e)) => assert_eq!(e, want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
    match dst.backend.import(bytes) {
        Err(StateError::Snapshot(e)) => assert_eq!(e, want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
    check_filled(&s);
}

pub fn corrupt_snapshots_are_typed_errors_and_change_nothing(make: Make) {
    let (src, _s) = filled(make);
    let good = snap(&*src.backend);
    let payload = (good.len() - 28) as u64;

    rejects(
        make,
        &good[..10],
        SnapshotError::TooShort { len: 10, need: 28 },
    );
    rejects(make, &[], SnapshotError::TooShort { len: 0, need: 28 });

    let mut bad = good.clone();
    bad[0] = b'X';
    rejects(
        make,
        &bad,
        SnapshotError::BadMagic {
            found: *b"XEIRSNAP",
        },
    );

    let mut bad = good.clone();
    bad[8] = 2;
    rejects(
        make,
        &bad,
        SnapshotError::UnsupportedVersion {
            found: 2,
            supported: 1,
        },
    );

    rejects(
        make,
        &good[..good.len() - 3],
        SnapshotError::Truncated {
            expected: payload,
            found: payload - 3,
        },
    );

    let mut bad = good.clone();
    bad.extend_from_slice(b"xy");
    rejects(make, &bad, SnapshotError::TrailingBytes { extra: 2 });

    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    let mut h = [0u8; 8];
    h.copy_from_slice(&good[20..28]);
    let expected = u64::from_le_bytes(h);
    let actual = stable_hash(&bad[28..]);
    assert_ne!(expected, actual);
    rejects(
        make,
        &bad,
        SnapshotError::ChecksumMismatch { expected, actual },
    );
}

pub fn every_single_flipped_bit_is_detected(make: Make) {
    let (src, _s) = filled(make);
    let good = snap(&*src.backend);
    let (dst, s) = filled(make);
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            assert!(
                matches!(dst.backend.restore(&bad), Err(StateError::Snapshot(_))),
                "flip of bit {bit} of byte {i} went unnoticed"
            );
        }
    }
    check_filled(&s);
}

/// A backend with the value `key -> key` for 200 keys; returns the keys by key group.
fn keys_everywhere(make: Make) -> (Fixture, BTreeMap<usize, Vec<u32>>) {
    let f = all(make);
    let s = StateService::new(f.backend.clone(), Arc::new(VirtualClock::new()));
    let v = scope(&s).value::<u32, u32>("v", None);
    let mut by_group: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for k in 0..200u32 {
        v.set(&k, &k).unwrap();
        by_group.entry(key_group_of(&enc(&k))).or_default().push(k);
    }
    (f, by_group)
}

/// Every `(key, value)` of the value state "v" in `b`, by key.
fn values_in(b: &Arc<dyn StateBackend>) -> BTreeMap<u32, u32> {
    let s = StateService::new(b.clone(), Arc::new(VirtualClock::new()));
    let v = scope(&s).value::<u32, u32>("v", None);
    b.key_groups()
        .iter()
        .flat_map(|kg| v.entries_in(kg).unwrap())
        .collect()
}

pub fn a_range_snapshot_and_import_take_only_their_key_groups(make: Make) {
    let (src, by_group) = keys_everywhere(make);
    let half = KeyGroupRange::new(32, 96);
    let bytes = src.backend.snapshot(half).unwrap().into_bytes().unwrap();
    let want_half: BTreeMap<u32, u32> = by_group
        .range(32..96)
        .flat_map(|(_, ks)| ks.iter().map(|k| (*k, *k)))
        .collect();

    // Into a backend of every key group: exactly the range's keys.
    let every = all(make);
    assert_eq!(every.backend.import(&bytes).unwrap(), want_half.len());
    assert_eq!(values_in(&every.backend), want_half);

    // Into a backend of 64..128: only the overlap 64..96, next to what it held.
    let upper = make(KeyGroupRange::new(64, 128));
    let s = StateService::new(upper.backend.clone(), Arc::new(VirtualClock::new()));
    let mine = by_group.range(100..).next().map(|(_, ks)| ks[0]).unwrap();
    scope(&s)
        .value::<u32, u32>("v", None)
        .set(&mine, &7)
        .unwrap();
    let want_overlap: BTreeMap<u32, u32> = by_group
        .range(64..96)
        .flat_map(|(_, ks)| ks.iter().map(|k| (*k, *k)))
        .chain([(mine, 7)])
        .collect();
    assert_eq!(
        upper.backend.import(&bytes).unwrap(),
        want_overlap.len() - 1
    );
    assert_eq!(values_in(&upper.backend), want_overlap);
}

pub fn a_state_snapshot_holds_only_that_state_and_imports_by_key_group(make: Make) {
    let (src, by_group) = keys_everywhere(make);
    let s = StateService::new(src.backend.clone(), Arc::new(VirtualClock::new()));
    // Another state of the same stage, another stage's state and operator state stay out.
    let other = scope(&s).value::<u32, u32>("w", None);
    let stranger = s
        .scope_of(StageId::of_uid("other"), 0)
        .value::<u32, u32>("v", None);
    for k in 0..200u32 {
        other.set(&k, &(k + 1000)).unwrap();
        stranger.set(&k, &(k + 2000)).unwrap();
    }
    scope(&s).operator_list::<u32>("op").update(&[5]).unwrap();
    let id = StateId::new(StageId::of_uid("stage"), "v");
    let bytes = src
        .backend
        .snapshot_state(KeyGroupRange::new(20, 100), id)
        .unwrap()
        .into_bytes()
        .unwrap();
    let want = |lo: usize, hi: usize| -> BTreeMap<u32, u32> {
        by_group
            .range(lo..hi)
            .flat_map(|(_, ks)| ks.iter().map(|k| (*k, *k)))
            .collect()
    };

    // Imported by key group 50..128 into a backend of 0..64: the overlap 50..64 only, and
    // what it held before stays.
    let dst = make(KeyGroupRange::new(0, 64));
    let ds = StateService::new(dst.backend.clone(), Arc::new(VirtualClock::new()));
    let keep = by_group.range(..20).next().map(|(_, ks)| ks[0]).unwrap();
    scope(&ds)
        .value::<u32, u32>("v", None)
        .set(&keep, &9)
        .unwrap();
    let taken = dst
        .backend
        .import_key_groups(&bytes, KeyGroupRange::new(50, 128))
        .unwrap();
    let mut expect = want(50, 64);
    assert_eq!(taken, expect.len());
    expect.insert(keep, 9);
    assert_eq!(values_in(&dst.backend), expect);
    let w = scope(&ds).value::<u32, u32>("w", None);
    let ws: Vec<_> = (0..64).flat_map(|kg| w.entries_in(kg).unwrap()).collect();
    assert_eq!(ws, vec![]);
    assert_eq!(
        scope(&ds).operator_list::<u32>("op").get().unwrap(),
        Vec::<u32>::new()
    );

    // The whole snapshot into an empty backend: exactly the range's entries of that state.
    let every = all(make);
    assert_eq!(
        every
            .backend
            .import_key_groups(&bytes, KeyGroupRange::ALL)
            .unwrap(),
        want(20, 100).len()
    );
    assert_eq!(values_in(&every.backend), want(20, 100));

    // A corrupt snapshot changes nothing.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        every.backend.import_key_groups(&bad, KeyGroupRange::ALL),
        Err(StateError::Snapshot(_))
    ));
    assert_eq!(values_in(&every.backend), want(20, 100));
}

pub fn a_snapshot_file_imports_as_its_bytes_do_and_a_damaged_one_changes_nothing(make: Make) {
    let (src, by_group) = keys_everywhere(make);
    let id = StateId::new(StageId::of_uid("stage"), "v");
    let bytes = src
        .backend
        .snapshot_state(KeyGroupRange::ALL, id)
        .unwrap()
        .into_bytes()
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "weir-suite-file-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("snapshot");
    std::fs::write(&file, &bytes).unwrap();
    let want: BTreeMap<u32, u32> = by_group
        .range(30..90)
        .flat_map(|(_, ks)| ks.iter().map(|k| (*k, *k)))
        .collect();
    let dst = all(make);
    let taken = dst
        .backend
        .import_key_groups_file(&file, KeyGroupRange::new(30, 90))
        .unwrap();
    assert_eq!(taken, want.len());
    assert_eq!(values_in(&dst.backend), want);

    // A flipped bit, a truncated file, a missing file: typed errors, nothing applied.
    let fresh = all(make);
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 4;
    std::fs::write(&file, &bad).unwrap();
    assert!(matches!(
        fresh
            .backend
            .import_key_groups_file(&file, KeyGroupRange::ALL),
        Err(StateError::Snapshot(_))
    ));
    std::fs::write(&file, &bytes[..bytes.len() - 3]).unwrap();
    assert!(matches!(
        fresh
            .backend
            .import_key_groups_file(&file, KeyGroupRange::ALL),
        Err(StateError::Snapshot(SnapshotError::Truncated { .. }))
    ));
    std::fs::write(&file, &bytes[..10]).unwrap();
    assert!(matches!(
        fresh
            .backend
            .import_key_groups_file(&file, KeyGroupRange::ALL),
        Err(StateError::Snapshot(SnapshotError::TooShort {
            len: 10,
            ..
        }))
    ));
    assert!(matches!(
        fresh
            .backend
            .import_key_groups_file(&dir.join("missing"), KeyGroupRange::ALL),
        Err(StateError::Io(_))
    ));
    assert_eq!(values_in(&fresh.backend), BTreeMap::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

pub fn clear_key_groups_removes_only_that_range(make: Make) {
    let (f, by_group) = keys_everywhere(make);
    f.backend
        .clear_key_groups(KeyGroupRange::new(10, 120))
        .unwrap();
    let want: BTreeMap<u32, u32> = by_group
        .iter()
        .filter(|(kg, _)| !(10..120).contains(*kg))
        .flat_map(|(_, ks)| ks.iter().map(|k| (*k, *k)))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(values_in(&f.backend), want);
}

const TTL_MS: u64 = 100;

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u16),
    Clear(u8),
    Get(u8),
    MapInsert(u8, u8, u16),
    MapRemove(u8, u8),
    MapEntries(u8),
    ListAdd(u8, u16),
    ListUpdate(u8, Vec<u16>),
    ListGet(u8),
    Advance(u64),
    RoundTrip,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..6;
    prop_oneof![
        (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::Set(k, v)),
        k.clone().prop_map(Op::Clear),
        k.clone().prop_map(Op::Get),
        (k.clone(), 0u8..4, any::<u16>()).prop_map(|(k, u, v)| Op::MapInsert(k, u, v)),
        (k.clone(), 0u8..4).prop_map(|(k, u)| Op::MapRemove(k, u)),
        k.clone().prop_map(Op::MapEntries),
        (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::ListAdd(k, v)),
        (k.clone(), prop::collection::vec(any::<u16>(), 0..3))
            .prop_map(|(k, v)| Op::ListUpdate(k, v)),
        k.prop_map(Op::ListGet),
        (0u64..=TTL_MS).prop_map(Op::Advance),
        Just(Op::RoundTrip),
    ]
}

/// What the state should hold: values with their expiry (ms of state time).
#[derive(Default)]
struct Model {
    now: u64,
    values: BTreeMap<u8, (u16, u64)>,
    maps: BTreeMap<(u8, u8), (u16, u64)>,
    lists: BTreeMap<u8, Vec<(u16, u64)>>,
}

impl Model {
    fn live<T: Copy>(&self, e: Option<&(T, u64)>) -> Option<T> {
        e.filter(|(_, exp)| self.now < *exp).map(|(v, _)| *v)
    }
}

/// Random operations on value, map and list state with TTL against a reference model, with
/// clock advances and snapshot/restore round trips (into a new backend) in between.
pub fn state_kinds_follow_the_model(make: Make) {
    let mut runner = TestRunner::new(Config::with_cases(64));
    let ttl = Some(Ttl::after_write(Duration::from_millis(TTL_MS)));
    runner
        .run(&prop::collection::vec(op(), 1..80), |ops| {
            let mut fixture = all(make);
            let mut clock = Arc::new(VirtualClock::new());
            let mut base = Duration::ZERO;
            let mut m = Model::default();
            for op in ops {
                let s =
                    StateService::new(fixture.backend.clone(), clock.clone()).with_time_base(base);
                let sc = s.scope_of(StageId::of_uid("model"), 0);
                let value = sc.value::<u8, u16>("value", ttl);
                let map = sc.map::<u8, u8, u16>("map", ttl);
                let list = sc.list::<u8, u16>("list", ttl);
                let exp = m.now + TTL_MS;
                match op {
                    Op::Set(k, v) => {
                        value.set(&k, &v).unwrap();
                        m.values.insert(k, (v, exp));
                    }
                    Op::Clear(k) => {
                        value.clear(&k).unwrap();
                        m.values.remove(&k);
                    }
                    Op::Get(k) => {
                        prop_assert_eq!(value.get(&k).unwrap(), m.live(m.values.get(&k)))
                    }
                    Op::MapInsert(k, u, v) => {
                        map.insert(&k, &u, &v).unwrap();
                        m.maps.insert((k, u), (v, exp));
                    }
                    Op::MapRemove(k, u) => {
                        map.remove(&k, &u).unwrap();
                        m.maps.remove(&(k, u));
                    }
                    Op::MapEntries(k) => {
                        let want: Vec<(u8, u16)> = m
                            .maps
                            .range((k, 0)..=(k, u8::MAX))
                            .filter_map(|((_, u), e)| m.live(Some(e)).map(|v| (*u, v)))
                            .collect();
                        prop_assert_eq!(map.entries(&k).unwrap(), want);
                    }
                    Op::ListAdd(k, v) => {
                        list.add(&k, &v).unwrap();
                        m.lists.entry(k).or_default().push((v, exp));
                    }
                    Op::ListUpdate(k, vs) => {
                        list.update(&k, &vs).unwrap();
                        m.lists.insert(k, vs.iter().map(|v| (*v, exp)).collect());
                    }
                    Op::ListGet(k) => {
                        let want: Vec<u16> = m
                            .lists
                            .get(&k)
                            .map(|l| l.iter().filter_map(|e| m.live(Some(e))).collect())
                            .unwrap_or_default();
                        prop_assert_eq!(list.get(&k).unwrap(), want);
                    }
                    Op::Advance(ms) => {
                        clock.advance(Duration::from_millis(ms));
                        m.now += ms;
                    }
                    Op::RoundTrip => {
                        let bytes = snap(&*fixture.backend);
                        base = s.state_time();
                        clock = Arc::new(VirtualClock::new());
                        drop((value, map, list, sc, s));
                        fixture = all(make);
                        fixture.backend.restore(&bytes).unwrap();
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

#[derive(Debug, Clone)]
enum Raw {
    Put(usize, u64, Vec<u8>, Vec<u8>),
    Append(usize, u64, Vec<u8>, Vec<u8>),
    Delete(usize, u64, Vec<u8>),
    Get(usize, u64, Vec<u8>),
    Scan(usize, u64, Vec<u8>),
    DeletePrefix(usize, u64, Vec<u8>),
}

fn raw() -> impl Strategy<Value = Raw> {
    // Few key groups, states and short keys over a small alphabet (with 0x00 and 0xff) so
    // that keys collide, prefix each other and sit on range boundaries.
    let kg = prop_oneof![Just(0usize), Just(1), Just(127)];
    let st = prop_oneof![Just(0u64), Just(1), Just(u64::MAX)];
    let bytes = || prop::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xff)], 0..3);
    prop_oneof![
        3 => (kg.clone(), st.clone(), bytes(), bytes()).prop_map(|(g, s, k, v)| Raw::Put(g, s, k, v)),
        2 => (kg.clone(), st.clone(), bytes(), bytes()).prop_map(|(g, s, k, v)| Raw::Append(g, s, k, v)),
        1 => (kg.clone(), st.clone(), bytes()).prop_map(|(g, s, k)| Raw::Delete(g, s, k)),
        2 => (kg.clone(), st.clone(), bytes()).prop_map(|(g, s, k)| Raw::Get(g, s, k)),
        2 => (kg.clone(), st.clone(), bytes()).prop_map(|(g, s, k)| Raw::Scan(g, s, k)),
        1 => (kg, st, bytes()).prop_map(|(g, s, k)| Raw::DeletePrefix(g, s, k)),
    ]
}

/// Random put/get/append/delete/scan/delete_prefix sequences on the raw backend against a
/// `BTreeMap` of `(key group, state, key)`, then a snapshot that restores to the same contents.
pub fn raw_operations_follow_a_btreemap(make: Make) {
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&prop::collection::vec(raw(), 1..60), |ops| {
            let f = all(make);
            let b = &f.backend;
            let mut m: BTreeMap<(usize, u64, Vec<u8>), Vec<u8>> = BTreeMap::new();
            for op in ops {
                match op {
                    Raw::Put(g, s, k, v) => {
                        b.put(g, StateId(s), &k, &v).unwrap();
                        m.insert((g, s, k), v);
                    }
                    Raw::Append(g, s, k, v) => {
                        b.append(g, StateId(s), &k, &v).unwrap();
                        m.entry((g, s, k)).or_default().extend_from_slice(&v);
                    }
                    Raw::Delete(g, s, k) => {
                        b.delete(g, StateId(s), &k).unwrap();
                        m.remove(&(g, s, k));
                    }
                    Raw::Get(g, s, k) => {
                        prop_assert_eq!(
                            b.get(g, StateId(s), &k).unwrap(),
                            m.get(&(g, s, k)).cloned()
                        );
                    }
                    Raw::Scan(g, s, p) => {
                        let mut got = Vec::new();
                        b.scan(g, StateId(s), &p, &mut |k, v| {
                            got.push((k.to_vec(), v.to_vec()))
                        })
                        .unwrap();
                        let want: Vec<(Vec<u8>, Vec<u8>)> = m
                            .iter()
                            .filter(|((mg, ms, k), _)| *mg == g && *ms == s && k.starts_with(&p))
                            .map(|((_, _, k), v)| (k.clone(), v.clone()))
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                    Raw::DeletePrefix(g, s, p) => {
                        b.delete_prefix(g, StateId(s), &p).unwrap();
                        m.retain(|(mg, ms, k), _| !(*mg == g && *ms == s && k.starts_with(&p)));
                    }
                }
            }
            let bytes = snap(&**b);
            let back = all(make);
            prop_assert_eq!(back.backend.restore(&bytes).unwrap(), m.len());
            for ((g, s, k), v) in &m {
                prop_assert_eq!(
                    back.backend.get(*g, StateId(*s), k).unwrap(),
                    Some(v.clone())
                );
            }
            prop_assert_eq!(snap(&*back.backend), bytes);
            Ok(())
        })
        .unwrap();
}
