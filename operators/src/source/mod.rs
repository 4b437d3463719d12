//! Sources.
/// Source constructors, called as `Source::from_iter(..)`.
pub trait SourceCtors {}
