//! Asynchronous per-element work: `map_async` (ordered) and `map_async_unordered`.
use crate::Via;
/// `map_async` and friends.
pub trait AsyncOps: Via {}
impl<S: Via> AsyncOps for S {}
