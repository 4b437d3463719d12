//! Sinks.
/// Sink constructors, called as `Sink::collect()`.
pub trait SinkCtors {}
