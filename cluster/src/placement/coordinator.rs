//! The coordinator role: the oldest live member, with failover under a new epoch.

use crate::epoch::Epoch;
use crate::membership::NodeIdentity;

/// Who coordinates, under which job epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorSeat {
    /// The coordinator.
    pub node: NodeIdentity,
    /// The job attempt epoch it runs the job under.
    pub epoch: Epoch,
}

/// Tracks the coordinator across membership changes: the oldest live member takes the seat;
/// it keeps it while it lives; when it is lost the next oldest takes over with epoch + 1.
#[derive(Debug, Clone, Default)]
pub struct CoordinatorRole {
    seat: Option<CoordinatorSeat>,
    last_epoch: Epoch,
}

impl CoordinatorRole {
    /// No coordinator yet; the first one gets [`Epoch::FIRST`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The current seat.
    pub fn seat(&self) -> Option<&CoordinatorSeat> {
        self.seat.as_ref()
    }

    /// Updates the seat for the live members; returns the new seat when the coordinator
    /// changed (a failover, or the first choice), `None` when it stayed (or no member is left).
    pub fn observe(&mut self, members: &[NodeIdentity]) -> Option<&CoordinatorSeat> {
        if let Some(seat) = &self.seat
            && members.contains(&seat.node)
        {
            return None;
        }
        let Some(oldest) = members.iter().min_by(|a, b| a.age_cmp(b)) else {
            if let Some(lost) = self.seat.take() {
                tracing::warn!(coordinator = %lost.node, "coordinator lost, no member left");
            }
            return None;
        };
        let epoch = self.last_epoch.next();
        self.last_epoch = epoch;
        if let Some(lost) = &self.seat {
            tracing::info!(lost = %lost.node, next = %oldest, epoch = epoch.0, "coordinator failover");
        }
        self.seat = Some(CoordinatorSeat {
            node: oldest.clone(),
            epoch,
        });
        self.seat.as_ref()
    }
}
