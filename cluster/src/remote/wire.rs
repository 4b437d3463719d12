//! The messages of a remote-actor stream: one per data-frame row, postcard-encoded.

use crate::transport::FrameTx;
use serde::{Deserialize, Serialize};

/// A message on the stream between a sending node (which opens it) and a receiving node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Wire {
    /// Sender to receiver: channel `chan` carries messages of type `msg_ty` to the actor at
    /// `path` (answered with `reply_ty` when given); `window` messages may be in flight.
    Open {
        /// The channel's number on this stream.
        chan: u64,
        /// The registry path of the target actor.
        path: String,
        /// The message type the sender encodes.
        msg_ty: String,
        /// The reply type the sender decodes (`None`: tells only).
        reply_ty: Option<String>,
        /// Whether the channel redelivers after a broken stream (the receiver dedups).
        reliable: bool,
        /// Random per channel: a channel number reused by a restarted sender starts afresh.
        incarnation: u64,
        /// Messages the sender may have unacknowledged.
        window: u64,
    },
    /// Sender to receiver: message `seq` (1, 2, ... per channel) of `chan`, a postcard `M`;
    /// `reply` names the reply slot on the sender.
    Msg {
        /// The channel.
        chan: u64,
        /// The message's sequence number.
        seq: u64,
        /// The reply slot waiting for the answer, if any.
        reply: Option<u64>,
        /// The postcard bytes of the message.
        payload: Vec<u8>,
    },
    /// Sender to receiver: the channel is done (its last ref is gone).
    Close {
        /// The channel.
        chan: u64,
    },
    /// Receiver to sender: every message of `chan` up to `seq` is in the actor's mailbox (or
    /// in dead letters); their credit returns.
    Ack {
        /// The channel.
        chan: u64,
        /// The highest sequence number delivered.
        seq: u64,
    },
    /// Receiver to sender: the answer to reply slot `id` (`None`: the actor handled the
    /// message without replying, or it was not delivered).
    Reply {
        /// The channel.
        chan: u64,
        /// The reply slot.
        id: u64,
        /// The postcard bytes of the reply.
        payload: Option<Vec<u8>>,
    },
    /// Receiver to sender: the channel was refused (the path is exposed with other types).
    Refused {
        /// The channel.
        chan: u64,
        /// Why.
        reason: String,
    },
}

impl Wire {
    /// About the bytes it takes encoded (to cut frames).
    fn size(&self) -> usize {
        32 + match self {
            Wire::Open {
                path,
                msg_ty,
                reply_ty,
                ..
            } => path.len() + msg_ty.len() + reply_ty.as_ref().map_or(0, String::len),
            Wire::Msg { payload, .. } => payload.len(),
            Wire::Reply { payload, .. } => payload.as_ref().map_or(0, Vec::len),
            Wire::Refused { reason, .. } => reason.len(),
            Wire::Close { .. } | Wire::Ack { .. } => 0,
        }
    }
}

/// Stages `msgs` as data frames of about `frame_bytes` each (at least one message a frame);
/// a frame that does not encode is staged again a message a frame, and a message that still
/// does not is dropped and logged. Returns the messages dropped.
pub(super) fn stage(tx: &mut FrameTx, msgs: &[Wire], frame_bytes: usize) -> usize {
    let mut dropped = 0;
    let mut flush = |tx: &mut FrameTx, group: &[Wire]| {
        if group.is_empty() || tx.stage_data(group).is_ok() {
            return;
        }
        for m in group {
            if let Err(e) = tx.stage_data(std::slice::from_ref(m)) {
                tracing::warn!(error = %e, "remote-actor message not encoded: dropped");
                dropped += 1;
            }
        }
    };
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in msgs.iter().enumerate() {
        let n = m.size();
        if i > start && bytes + n > frame_bytes {
            flush(tx, &msgs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    flush(tx, &msgs[start..]);
    dropped
}
