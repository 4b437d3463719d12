//! Substreams: flat_map_merge, group_by, split_when.
use crate::Via;
/// substream operators.
pub trait SubstreamOps: Via {}
impl<S: Via> SubstreamOps for S {}
