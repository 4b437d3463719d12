//! Any of the four CRDTs under one key space (what a replicator shared by many stages holds;
//! sets and maps of encoded bytes, e.g. Python values in the codec's encoding).

use super::{Crdt, CrdtError, GCounter, LWWMap, ORSet, PNCounter};
use serde::{Deserialize, Serialize};

/// Which CRDT a [`ReplicatedData`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataKind {
    /// No data yet.
    Empty,
    /// A [`GCounter`].
    GCounter,
    /// A [`PNCounter`].
    PNCounter,
    /// An [`ORSet`].
    ORSet,
    /// An [`LWWMap`].
    LWWMap,
}

impl DataKind {
    /// The kind with its article ("a GCounter", "an ORSet"), for messages.
    pub fn a(self) -> &'static str {
        match self {
            Self::Empty => "nothing",
            Self::GCounter => "a GCounter",
            Self::PNCounter => "a PNCounter",
            Self::ORSet => "an ORSet",
            Self::LWWMap => "an LWWMap",
        }
    }
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Empty => "nothing",
            Self::GCounter => "GCounter",
            Self::PNCounter => "PNCounter",
            Self::ORSet => "ORSet",
            Self::LWWMap => "LWWMap",
        })
    }
}

/// One of the four CRDTs, or nothing yet. Merging two kinds keeps the later kind in
/// [`DataKind`] order (a lattice: the ordinal sum of the four), which only a key written as
/// two kinds on two replicas ever does; the replicated APIs refuse such writes locally.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicatedData {
    /// No data yet (the bottom).
    #[default]
    Empty,
    /// A grow-only counter.
    GCounter(GCounter),
    /// An up-down counter.
    PNCounter(PNCounter),
    /// A set of encoded elements.
    ORSet(ORSet<Vec<u8>>),
    /// A map of encoded keys to encoded values.
    LWWMap(LWWMap<Vec<u8>, Vec<u8>>),
}

/// The typed accessors of one kind: `$get` reads it, `$mut` makes an empty value that kind and
/// refuses another kind, naming `key`.
macro_rules! accessors {
    ($variant:ident, $ty:ty, $get:ident, $mutf:ident) => {
        #[doc = concat!("The ", stringify!($variant), ", if this is one.")]
        pub fn $get(&self) -> Option<&$ty> {
            match self {
                Self::$variant(x) => Some(x),
                _ => None,
            }
        }
        #[doc = concat!("The ", stringify!($variant), " (made from nothing), or an error naming `key` when this is another kind.")]
        pub fn $mutf(&mut self, key: &str) -> Result<&mut $ty, CrdtError> {
            if let Self::Empty = self {
                *self = Self::$variant(Default::default());
            }
            match self {
                Self::$variant(x) => Ok(x),
                other => Err(CrdtError::WrongKind {
                    key: key.to_owned(),
                    found: other.kind(),
                    expected: DataKind::$variant,
                }),
            }
        }
    };
}

impl ReplicatedData {
    accessors!(GCounter, GCounter, gcounter, gcounter_mut);
    accessors!(PNCounter, PNCounter, pncounter, pncounter_mut);
    accessors!(ORSet, ORSet<Vec<u8>>, orset, orset_mut);
    accessors!(LWWMap, LWWMap<Vec<u8>, Vec<u8>>, lwwmap, lwwmap_mut);

    /// Which CRDT this is.
    pub fn kind(&self) -> DataKind {
        match self {
            Self::Empty => DataKind::Empty,
            Self::GCounter(_) => DataKind::GCounter,
            Self::PNCounter(_) => DataKind::PNCounter,
            Self::ORSet(_) => DataKind::ORSet,
            Self::LWWMap(_) => DataKind::LWWMap,
        }
    }
}

impl Crdt for ReplicatedData {
    fn merge(&mut self, other: &Self) {
        match (&mut *self, other) {
            (_, Self::Empty) => {}
            (Self::GCounter(a), Self::GCounter(b)) => a.merge(b),
            (Self::PNCounter(a), Self::PNCounter(b)) => a.merge(b),
            (Self::ORSet(a), Self::ORSet(b)) => a.merge(b),
            (Self::LWWMap(a), Self::LWWMap(b)) => a.merge(b),
            (a, b) => {
                if b.kind() > a.kind() {
                    if a.kind() != DataKind::Empty {
                        tracing::warn!(
                            "a key written as a {} and as a {}: the {} wins",
                            a.kind(),
                            b.kind(),
                            b.kind()
                        );
                    }
                    *a = b.clone();
                }
            }
        }
    }
    fn is_bottom(&self) -> bool {
        matches!(self, Self::Empty)
    }
}
