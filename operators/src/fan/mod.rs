//! Junctions and linear fan operators.
use crate::Via;
/// `merge`, `zip`, `also_to` and friends.
pub trait FanOps: Via {}
impl<S: Via> FanOps for S {}
