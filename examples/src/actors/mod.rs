//! Actor examples: each is a stage of the streams DSL (`Flow::actor`, `Source::actor`) and
//! returns exactly what it emitted.

pub mod bank;
pub mod counter;
pub mod pool;
pub mod supervised_backoff;
pub mod tree;
