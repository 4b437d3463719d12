//! The messages of a topic link: one per data-frame row, postcard-encoded.

use serde::{Deserialize, Serialize};

/// A message on the stream between a subscribing node (which opens it) and a publishing node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Wire {
    /// Subscriber to publisher: send `topic`'s elements (of type `ty`) as subscription `sub`,
    /// `credit` rows to begin with.
    Subscribe {
        /// The topic's name.
        topic: String,
        /// The element type the subscriber decodes.
        ty: String,
        /// The subscription's number; data of another number is stale.
        sub: u64,
        /// Rows the subscriber has room for.
        credit: u64,
    },
    /// Subscriber to publisher: stop sending subscription `sub`.
    Unsubscribe {
        /// The topic's name.
        topic: String,
        /// The subscription's number.
        sub: u64,
    },
    /// Subscriber to publisher: room for `rows` more rows of subscription `sub`.
    Credit {
        /// The topic's name.
        topic: String,
        /// The subscription's number.
        sub: u64,
        /// Rows granted.
        rows: u64,
    },
    /// Publisher to subscriber: `rows` elements of subscription `sub`, a postcard `Vec<T>`.
    Data {
        /// The topic's name.
        topic: String,
        /// The subscription's number.
        sub: u64,
        /// Elements in `payload`.
        rows: u32,
        /// The postcard bytes of the elements.
        payload: Vec<u8>,
    },
    /// Publisher to subscriber: subscription `sub` was refused (its element type differs).
    Refused {
        /// The topic's name.
        topic: String,
        /// The subscription's number.
        sub: u64,
        /// Why.
        reason: String,
    },
}
