//! Keyed aggregation: `key_by(..).fold/reduce/count`.
use crate::Via;
/// `key_by`.
pub trait KeyedOps: Via {}
impl<S: Via> KeyedOps for S {}
