//! Snapshot round trip and corruption detection: a corrupt snapshot is a typed error and the
//! backend it was meant for keeps its contents.

use std::sync::Arc;
use weir_engine::VirtualClock;
use weir_graph::StageId;
use weir_state::*;

/// A backend holding a value, a map, a list and an operator state.
fn filled() -> (Arc<InMemoryBackend>, StateService) {
    let backend = Arc::new(InMemoryBackend::new());
    let s = StateService::new(backend.clone(), Arc::new(VirtualClock::new()));
    let sc = s.scope_of(StageId::of_uid("op"), 0);
    let v = sc.value::<String, u64>("v", None);
    for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
        v.set(&k.to_string(), &(i as u64)).unwrap();
    }
    sc.map::<u32, u32, String>("m", None)
        .insert(&1, &2, &"x".into())
        .unwrap();
    sc.list::<u32, i32>("l", None).add(&5, &-1).unwrap();
    sc.operator_list::<u64>("o").update(&[42]).unwrap();
    (backend, s)
}

fn check_filled(s: &StateService) {
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
    assert_eq!(sc.list::<u32, i32>("l", None).get(&5).unwrap(), vec![-1]);
    assert_eq!(sc.operator_list::<u64>("o").get().unwrap(), vec![42]);
}

fn snap(b: &InMemoryBackend) -> Vec<u8> {
    b.snapshot(KeyGroupRange::ALL)
        .unwrap()
        .into_bytes()
        .unwrap()
}

#[test]
fn a_snapshot_restores_everything_and_replaces_what_was_there() {
    let (src, _) = filled();
    let bytes = snap(&src);
    let dst = Arc::new(InMemoryBackend::new());
    let s = StateService::new(dst.clone(), Arc::new(VirtualClock::new()));
    let stray = s
        .scope_of(StageId::of_uid("op"), 0)
        .value::<String, u64>("v", None);
    stray.set("zzz", &9).unwrap();
    // Four values, one map entry, one list (operator state is not counted).
    assert_eq!(dst.restore(&bytes).unwrap(), 6);
    check_filled(&s);
    assert_eq!(stray.get("zzz").unwrap(), None);
    // A snapshot of the restored backend is byte for byte the original.
    assert_eq!(snap(&dst), bytes);
}

#[test]
fn a_snapshot_is_frozen_when_taken() {
    let (src, s) = filled();
    let w = src.snapshot(KeyGroupRange::ALL).unwrap();
    let v = s
        .scope_of(StageId::of_uid("op"), 0)
        .value::<String, u64>("v", None);
    v.set("a", &100).unwrap();
    v.set("new", &1).unwrap();
    let mut out = Vec::new();
    let n = w.write_to(&mut out).unwrap();
    assert_eq!(n as usize, out.len());
    let dst = Arc::new(InMemoryBackend::new());
    dst.restore(&out).unwrap();
    check_filled(&StateService::new(dst, Arc::new(VirtualClock::new())));
}

#[test]
fn an_empty_backend_round_trips_as_empty() {
    let b = InMemoryBackend::new();
    let bytes = snap(&b);
    let (dst, s) = filled();
    assert_eq!(dst.restore(&bytes).unwrap(), 0);
    let sc = s.scope_of(StageId::of_uid("op"), 0);
    assert_eq!(sc.value::<String, u64>("v", None).get("a").unwrap(), None);
    assert_eq!(
        sc.operator_list::<u64>("o").get().unwrap(),
        Vec::<u64>::new()
    );
}

/// Restoring `bytes` fails with `want`, and the target keeps its contents.
fn rejects(bytes: &[u8], want: SnapshotError) {
    let (dst, s) = filled();
    match dst.restore(bytes) {
        Err(StateError::Snapshot(e)) => assert_eq!(e, want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
    match dst.import(bytes) {
        Err(StateError::Snapshot(e)) => assert_eq!(e, want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
    check_filled(&s);
}

#[test]
fn corrupt_snapshots_are_typed_errors_and_change_nothing() {
    let (src, _) = filled();
    let good = snap(&src);
    let payload = (good.len() - 28) as u64;

    rejects(&good[..10], SnapshotError::TooShort { len: 10, need: 28 });
    rejects(&[], SnapshotError::TooShort { len: 0, need: 28 });

    let mut bad = good.clone();
    bad[0] = b'X';
    rejects(
        &bad,
        SnapshotError::BadMagic {
            found: *b"XEIRSNAP",
        },
    );

    let mut bad = good.clone();
    bad[8] = 2;
    rejects(
        &bad,
        SnapshotError::UnsupportedVersion {
            found: 2,
            supported: 1,
        },
    );

    rejects(
        &good[..good.len() - 3],
        SnapshotError::Truncated {
            expected: payload,
            found: payload - 3,
        },
    );

    let mut bad = good.clone();
    bad.extend_from_slice(b"xy");
    rejects(&bad, SnapshotError::TrailingBytes { extra: 2 });

    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    let mut h = [0u8; 8];
    h.copy_from_slice(&good[20..28]);
    let expected = u64::from_le_bytes(h);
    let actual = stable_hash(&bad[28..]);
    rejects(&bad, SnapshotError::ChecksumMismatch { expected, actual });
    assert_ne!(expected, actual);
}

#[test]
fn every_single_flipped_bit_is_detected() {
    let (src, _) = filled();
    let good = snap(&src);
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            let b = InMemoryBackend::new();
            assert!(
                matches!(b.restore(&bad), Err(StateError::Snapshot(_))),
                "flip of bit {bit} of byte {i} went unnoticed"
            );
        }
    }
}
