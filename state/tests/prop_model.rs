//! Random operations on value, map and list state with TTL against a reference model, with
//! clock advances and snapshot/restore round trips in between.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_graph::StageId;
use weir_state::*;

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

struct Real {
    clock: Arc<VirtualClock>,
    backend: Arc<InMemoryBackend>,
    base: Duration,
}

impl Real {
    fn service(&self) -> StateService {
        StateService::new(self.backend.clone(), self.clock.clone()).with_time_base(self.base)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn state_kinds_follow_the_model(ops in prop::collection::vec(op(), 1..80)) {
        let ttl = Some(Ttl::after_write(Duration::from_millis(TTL_MS)));
        let mut real = Real {
            clock: Arc::new(VirtualClock::new()),
            backend: Arc::new(InMemoryBackend::new()),
            base: Duration::ZERO,
        };
        let mut m = Model::default();
        for op in ops {
            let s = real.service();
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
                Op::Get(k) => prop_assert_eq!(value.get(&k).unwrap(), m.live(m.values.get(&k))),
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
                    real.clock.advance(Duration::from_millis(ms));
                    m.now += ms;
                }
                Op::RoundTrip => {
                    let snap = real.backend.snapshot(KeyGroupRange::ALL).unwrap().into_bytes().unwrap();
                    let base = s.state_time();
                    real = Real {
                        clock: Arc::new(VirtualClock::new()),
                        backend: Arc::new(InMemoryBackend::new()),
                        base,
                    };
                    real.backend.restore(&snap).unwrap();
                }
            }
        }
    }
}
