//! # weir-graph: the description of a dataflow, with no runtime in it
//!
//! A graph is data. [`Source`], [`Flow`], [`Sink`] and [`RunnableGraph`] are typed, immutable,
//! reusable blueprints; each owns an `Arc<`[`Module`]`>`: a flat list of stage [`Node`]s, the
//! [`Edge`]s between their ports, the ports left open and a [`MatExpr`] computing the
//! materialized value. Composition (`via`, `to`, [`GraphBuilder`]) appends nodes and wires ports;
//! the engine flattens the module into islands and runs it, as many times as asked.
//!
//! Operators are written against small synchronous traits ([`SourceLogic`], [`FlowLogic`],
//! [`SinkLogic`]) that handle a whole batch per call, so that fused chains cost a few nanoseconds
//! per element, or as an [`AsyncLogic`] that owns a task and typed [`Input`]/[`Output`] ports
//! (junctions, `map_async`, timers). This crate knows nothing of tokio, channels or transports.

mod async_stage;
mod attributes;
mod batch;
mod builder;
mod checkpoint;
mod clock;
mod control;
mod dsl;
mod each;
mod error;
mod failpoint;
mod gauges;
mod heap;
mod key_groups;
mod logic;
mod mat;
mod module;
mod recover;
mod router;
mod scalars;
mod services;
mod snapshot;
mod stable_hash;
mod stage_id;

pub use async_stage::{
    AsyncFn, AsyncIo, AsyncLogic, Cancelled, ErasedInput, ErasedOutput, Event, InMsg, Input,
    NoCounts, Output, Signal, StageCounts, SubMaterializer, on_demand_input, on_demand_outputs,
};
pub use attributes::{
    Attributes, DeadLetter, DeadLetterSink, Directive, Supervision, at_least, positive,
};
pub use batch::{AnyBatch, BoxBatch, Weighed, downcast_vec};
pub use builder::{GraphBuilder, Inlet, Junction, MatKey, MatValues, NodePorts, Outlet};
pub use checkpoint::{CheckpointFailed, StageCheckpoint};
pub use clock::Clock;
pub use control::{Aligner, Control};
pub use dsl::{
    BidiFlow, Flow, Keep, MatTypeMismatch, RunnableGraph, Sink, Source, async_node, router_for,
};
pub use each::{
    ElementPanic, RenderedPanic, call_rendered, consume, consume_ref, element_panic, panic_message,
    register_debug, render_any, render_element, renders, retain_guarded,
};
pub use error::{ErrorKind, GraphError, StageError};
pub use failpoint::{DiskFull, enospc, failpoint, write_fault};
pub use gauges::{Gauge, GaugeFn, GaugeKind, GaugeSample, GaugeScope, Metric, StageGauges};
pub use heap::{HeapSize, batch_bytes, register_heap_size};
pub use key_groups::{KeyGroupRange, Share};
pub use logic::{
    ErasedFlow, ErasedSink, ErasedSource, FlowLogic, SinkLogic, SourceLogic, StageCx, StageInfo,
    Step,
};
pub use mat::{Promise, SinkFuture, promise};
pub use module::{
    AsyncFactory, BoxMat, Edge, FlowFactory, MatExpr, Module, Node, NodeKind, PortRef, SinkFactory,
    SourceFactory,
};
pub use recover::{Shadow, consume_recovering, register_copy};
pub use router::{
    EdgeKind, ErasedRouter, MAX_KEY_GROUPS, RouterFactory, TypedRouterFactory, key_group,
    subtask_for_key_group,
};
pub use services::{ExecutorId, Services};
pub use snapshot::{DeferredWrite, Snapshot, SnapshotError, StateCodec, no_codec};
pub use stable_hash::{STABLE_SEED, StableHasher, stable_hash_of, stable_key_group};
pub use stage_id::StageId;
