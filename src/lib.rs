//! # weir: a stream-centric dataflow engine
//!
//! Build a graph with the typed DSL (`Source -> Flow -> Sink`, junctions through
//! [`GraphBuilder`](graph::GraphBuilder)), then run it: fused chains of synchronous stages share one
//! task, async boundaries are bounded channels carrying batches, and backpressure holds end to end.
//!
//! ```
//! use weir::prelude::*;
//!
//! # weir::engine::Runtime::new().unwrap().block_on(async {
//! let total = Source::range(0u64, 1_000)
//!     .map(|x| x * 2)
//!     .filter(|x| x % 3 == 0)
//!     .run_with(Sink::fold(0u64, |acc, x| acc + x))
//!     .unwrap()
//!     .await
//!     .unwrap();
//! assert_eq!(total, (0..1_000u64).map(|x| x * 2).filter(|x| x % 3 == 0).sum::<u64>());
//! # });
//! ```

pub mod cli;
pub mod demo;
pub use weir_ops::viz;

pub use weir_cluster as cluster;
pub use weir_connectors as connectors;
pub use weir_engine as engine;
pub use weir_graph as graph;
pub use weir_operators as operators;
pub use weir_state as state;

/// Everything a pipeline needs: DSL types, operator extension traits, running and testkit entry points.
pub mod prelude {
    pub use weir_engine::prelude::*;
    pub use weir_graph::{DeadLetter, DeadLetterSink, ErrorKind, GraphError};
    pub use weir_operators::prelude::*;
}

/// The README's example, compiled and run as a doc test so it never rots.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
