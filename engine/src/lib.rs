//! # weir-engine: runs blueprints
//!
//! Materialization happens in phases, each testable on its own:
//! 1. **plan** ([`plan::plan`]): validate the module, give every stage its parallelism, fuse
//!    adjacent synchronous stages with forward edges into chains, make every asynchronous stage an
//!    island of its own, and derive each remaining edge's kind (forward, rebalance, hash, broadcast);
//! 2. **wire**: one credit channel per (producer subtask, consumer subtask) pair of every edge,
//!    bounded in rows and bytes;
//! 3. **create**: call every stage factory (once per subtask); the materialized value comes from
//!    subtask 0 and the module's [`weir_graph::MatExpr`];
//! 4. **spawn**: one tokio task per island subtask, tracked by the run's [`RunHandle`].
//!
//! A chain island (module `chain`) pulls a batch from its source or input channels, calls each fused
//! stage directly, and routes the result to its output channels; it flushes a partial batch only
//! when its input has nothing more ready. End-of-stream and errors travel in band, in order, on the
//! same channels; cancellation travels upstream by dropping receivers. Supervision wraps every
//! call into stage logic (panics included).

mod async_island;
mod async_restore;
mod chain;
mod channel;
pub mod checkpoint;
pub mod clock;
mod control;
mod defaults;
mod errlog;
mod error;
mod executor;
mod kill_switch;
mod launch;
mod metrics;
pub mod observe;
pub mod plan;
mod ports;
mod run;
mod runtime;
mod shared;
mod stall;
mod supervise;
pub mod testkit;
mod watch;

pub use checkpoint::{CheckpointConfig, Checkpoints, NodesRestore};
pub use clock::{SystemClock, VirtualClock};
pub use defaults::{
    DEFAULT_BATCH_SIZE, DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_ROWS, DEFAULT_CANCEL_GRACE,
};
pub use error::EngineError;
pub use executor::IslandExecutor;
pub use kill_switch::{KillSwitches, SharedKillSwitch, UniqueKillSwitch};
pub use metrics::StageMetricsSnapshot;
pub use observe::{RunObserver, RunState, RunView};
pub use run::{Materializer, RunHandle, RunnableExt, SourceRunExt};
pub use runtime::Runtime;
pub use watch::current_stage;

/// The engine's entry points in one import.
pub mod prelude {
    pub use crate::{
        EngineError, KillSwitches, Materializer, RunHandle, RunnableExt, SharedKillSwitch,
        SourceRunExt, UniqueKillSwitch, VirtualClock,
    };
}
