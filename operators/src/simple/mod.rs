//! Synchronous one-to-one flows.
use crate::Via;
/// `map`, `filter` and friends.
pub trait SimpleOps: Via {}
impl<S: Via> SimpleOps for S {}
