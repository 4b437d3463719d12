//! A checkpointed region's root state: the ids of its live entities (when it remembers them),
//! the messages its shard buffers held, and its own queued stream elements (postcard).

use super::shards::Parked;
use super::{EntityId, EntityProps, Region, RegionMsg, RegionSettings};
use crate::actor::checkpoint::{CellCodec, Saved};
use crate::actor::mailbox::Envelope;
use crate::actor::props::Actor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use weir_graph::SnapshotError;

/// What a region's root saves: remembered ids, buffered messages, queued stream elements.
type Encoded<K, M> = (Vec<K>, Vec<M>, Vec<M>);

/// The messages of the root's queue that are for entities (its notices are made again).
fn deliveries<'a, M>(q: &'a [&'a RegionMsg<M>]) -> impl Iterator<Item = &'a M> {
    q.iter().filter_map(|m| match m {
        RegionMsg::Deliver(m) => Some(m),
        RegionMsg::Passivate | RegionMsg::Room(_) => None,
    })
}

/// The codec of a region's root made from `entity`, `id_of` and `settings`.
pub(super) fn codec<E, K>(
    entity: EntityProps<K, E>,
    id_of: EntityId<K, E::Msg>,
    settings: RegionSettings,
) -> CellCodec<Region<E, K>>
where
    E: Actor,
    E::Msg: Serialize + DeserializeOwned,
    K: Hash + Eq + Clone + Debug + Send + Serialize + DeserializeOwned + 'static,
{
    let save =
        move |r: &Region<E, K>, local: &[&RegionMsg<E::Msg>], stash: &[&RegionMsg<E::Msg>]| {
            let ids: Vec<&K> = if r.settings.remember_entities {
                r.entities.keys().chain(r.remembered.iter()).collect()
            } else {
                Vec::new()
            };
            let buffered: Vec<&E::Msg> = r.shards.iter().map(|p| &p.env.msg).collect();
            let queued: Vec<&E::Msg> = deliveries(local).chain(deliveries(stash)).collect();
            postcard::to_allocvec(&(ids, buffered, queued))
                .map_err(|e| SnapshotError::Encode(e.to_string()))
        };
    let load = move |bytes: &[u8]| -> Result<Saved<Region<E, K>>, SnapshotError> {
        let (ids, buffered, queued): Encoded<K, E::Msg> =
            postcard::from_bytes(bytes).map_err(|e| SnapshotError::Decode {
                ty: "shard region",
                reason: e.to_string(),
            })?;
        let mut region = Region::new(Arc::clone(&entity), Arc::clone(&id_of), settings.clone());
        region.remembered = ids;
        for msg in buffered {
            let key = (id_of)(&msg).map_err(|e| SnapshotError::Decode {
                ty: "shard region",
                reason: format!("a buffered message has no entity id: {e}"),
            })?;
            let shard = weir_graph::stable_key_group(&key);
            region.shards.hold(Parked {
                shard,
                key,
                env: Envelope::plain(msg),
            });
        }
        Ok(Saved {
            actor: region,
            local: queued.into_iter().map(RegionMsg::Deliver).collect(),
            stash: Vec::new(),
        })
    };
    CellCodec {
        save: Arc::new(save),
        load: Arc::new(load),
    }
}
