//! Exact behaviour of every state kind, and TTL expiry on the virtual clock.

use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_graph::StageId;
use weir_state::*;

fn service() -> (StateService, Arc<VirtualClock>, Arc<InMemoryBackend>) {
    let clock = Arc::new(VirtualClock::new());
    let backend = Arc::new(InMemoryBackend::new());
    let s = StateService::new(backend.clone(), clock.clone());
    (s, clock, backend)
}

fn scope(s: &StateService) -> StateScope {
    s.scope_of(StageId::of_uid("stage"), 0)
}

#[test]
fn value_state_sets_gets_and_clears_per_key() {
    let (s, _, _) = service();
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
    let kg = key_group_of(&postcard::to_allocvec("b").unwrap());
    assert_eq!(v.entries_in(kg).unwrap(), vec![("b".to_string(), 2)]);
}

#[test]
fn states_of_other_names_and_stages_are_separate() {
    let (s, _, _) = service();
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

#[test]
fn map_state_keeps_one_map_per_key_in_user_key_order() {
    let (s, _, _) = service();
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

#[test]
fn map_keys_that_prefix_each_other_stay_apart() {
    // Encoded key "a" is a byte prefix of "ab": the length prefix keeps their maps separate.
    let (s, _, _) = service();
    let m = scope(&s).map::<String, u8, u8>("m", None);
    m.insert("a", &1, &1).unwrap();
    m.insert("ab", &1, &2).unwrap();
    m.clear("a").unwrap();
    assert_eq!(m.entries("a").unwrap(), vec![]);
    assert_eq!(m.entries("ab").unwrap(), vec![(1, 2)]);
}

#[test]
fn list_state_appends_in_order_and_replaces() {
    let (s, _, _) = service();
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

#[test]
fn operator_list_state_is_per_subtask_and_unions_in_subtask_order() {
    let (s, _, _) = service();
    let stage = StageId::of_uid("src");
    let s0 = s.scope_of(stage, 0).operator_list::<u64>("offsets");
    let s1 = s.scope_of(stage, 1).operator_list::<u64>("offsets");
    assert_eq!(s0.get().unwrap(), Vec::<u64>::new());
    s1.update(&[7, 8]).unwrap();
    s0.add(1).unwrap();
    s0.add(2).unwrap();
    assert_eq!(s0.get().unwrap(), vec![1, 2]);
    assert_eq!(s1.get().unwrap(), vec![7, 8]);
    assert_eq!(s0.union().unwrap(), vec![1, 2, 7, 8]);
}

#[test]
fn a_changed_value_type_is_a_decode_error_naming_the_state() {
    let (s, _, _) = service();
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

#[test]
fn value_ttl_expires_on_the_virtual_clock_and_restarts_on_write() {
    let (s, clock, backend) = service();
    let v = scope(&s).value::<u32, u32>("v", Some(Ttl::after_write(Duration::from_secs(10))));
    v.set(&1, &1).unwrap();
    clock.advance(Duration::from_secs(6));
    v.set(&2, &2).unwrap();
    assert_eq!(v.get(&1).unwrap(), Some(1));
    clock.advance(Duration::from_secs(4));
    // 10 s after its write: expired, and removed from the backend on read.
    assert_eq!(v.get(&1).unwrap(), None);
    let kg1 = key_group_of(&postcard::to_allocvec(&1u32).unwrap());
    assert_eq!(v.entries_in(kg1).unwrap(), vec![]);
    let id = StateId::new(StageId::of_uid("stage"), "v");
    assert_eq!(
        backend
            .get(kg1, id, &postcard::to_allocvec(&1u32).unwrap())
            .unwrap(),
        None
    );
    assert_eq!(v.get(&2).unwrap(), Some(2));
    v.set(&2, &3).unwrap();
    clock.advance(Duration::from_secs(9));
    assert_eq!(v.get(&2).unwrap(), Some(3));
    clock.advance(Duration::from_secs(1));
    assert_eq!(v.get(&2).unwrap(), None);
}

#[test]
fn ttl_after_access_restarts_on_read() {
    let (s, clock, _) = service();
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

#[test]
fn map_and_list_ttl_expire_per_entry() {
    let (s, clock, _) = service();
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

#[test]
fn a_backend_for_some_key_groups_rejects_others() {
    let b = InMemoryBackend::for_key_groups(KeyGroupRange::new(0, 64));
    let id = StateId(1);
    b.put(63, id, b"k", b"v").unwrap();
    let e = b.put(64, id, b"k", b"v").unwrap_err();
    assert_eq!(e.to_string(), "key group 64 is outside key groups 0..64");
}

#[test]
fn a_time_base_carries_ttls_across_a_restore_into_a_new_clock() {
    let (s, clock, backend) = service();
    let ttl = Some(Ttl::after_write(Duration::from_secs(60)));
    scope(&s).value::<u32, u32>("v", ttl).set(&1, &1).unwrap();
    clock.advance(Duration::from_secs(50));
    let at = s.state_time();
    assert_eq!(at, Duration::from_secs(50));
    let snap = backend
        .snapshot(KeyGroupRange::ALL)
        .unwrap()
        .into_bytes()
        .unwrap();

    let clock2 = Arc::new(VirtualClock::new());
    let restored = Arc::new(InMemoryBackend::new());
    restored.restore(&snap).unwrap();
    let s2 = StateService::new(restored, clock2.clone()).with_time_base(at);
    let v = scope(&s2).value::<u32, u32>("v", ttl);
    clock2.advance(Duration::from_secs(9));
    assert_eq!(s2.state_time(), Duration::from_secs(59));
    assert_eq!(v.get(&1).unwrap(), Some(1));
    clock2.advance(Duration::from_secs(1));
    assert_eq!(v.get(&1).unwrap(), None);
}

#[test]
fn string_keys_may_be_passed_as_str() {
    let (s, _, _) = service();
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
