//! Python stages: asynchronous weir stages whose user code runs on the run's Python dispatcher,
//! one job per batch.
//!
//! Layout: [`core`] (the `PyOp` trait, supervision environment, job pipeline and the generic
//! flow stage), [`convert`] (ops made of one function per element), [`element`] (fusable element-wise ops and other per-batch transformations),
//! [`keyed`] (`key_by` and per-key aggregates), [`source`] (`from_iter` over iterators, pulled on a thread of their own), [`sinks`] and
//! [`external`] (asyncio / interpreter pools), [`fused`] (`from_iter` + ops + a Python sink as one
//! stage).
//!
//! # Adding a new Python-calling stage
//!
//! * A per-batch transformation: implement [`PyOp`] (in a new file under `stages/` or
//!   `ops/`) — `on_batch` runs on the dispatcher with the GIL held; report per-element failures
//!   with [`element_failed`] so supervision applies; keep state in the op (`reset` for Restart,
//!   `on_start`/`on_finish` for emitted state). Wrap it with [`py_flow`] and an [`OpFactory`]
//!   (called once per materialization). Never block on the GIL or call Python from tokio code:
//!   only inside dispatcher jobs (`Dispatcher::submit`/`call`/`post`).
//! * A stateless element-wise op can be fused into the preceding group by adding it to the
//!   `ChainOp` built in `dsl` (see how `map`/`filter` are chained).
//! * A stage needing its own driving loop: implement `AsyncLogic`, take `RunCtx::of(info)` in
//!   the factory for the dispatcher, keep at most [`PIPELINE_DEPTH`] jobs queued (see
//!   `core::next_step`) and map errors with `user_error` / `StageError::with_stage`.

mod cloop;
pub mod convert;
pub mod core;
pub mod element;
pub mod external;
pub mod iter;
pub mod keyed;
pub mod sinks;
pub mod source;

pub use self::core::{
    Batch, OpFactory, PIPELINE_DEPTH, PyOp, StageEnv, element_failed, py_flow, run_op, unit_mat,
};
pub use convert::{Convert, EachFallible, convert, each_fallible};
pub use element::{ChainOp, FoldOp, GroupedOp, ListOp, MapBatchesOp, ScanOp};
pub use external::{Completion, external_flow};
pub use iter::{container_source, is_container};
pub use keyed::{CountAgg, FoldAgg, KeyCountOp, KeyOp, KeyTable};
pub use sinks::{SinkKind, py_sink};
pub use source::iter_source;
