//! Time and rate operators.
use crate::Via;
/// time operators.
pub trait TimeOps: Via {}
impl<S: Via> TimeOps for S {}
