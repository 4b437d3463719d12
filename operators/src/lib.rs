//! # weir-operators: the vocabulary users call
//!
//! Every operator is built on the stage-authoring traits of `weir-graph` and never on the engine.
//! Families live in their own modules, one file per operator (or per small family):
//!
//! | module | what |
//! |---|---|
//! | [`source`] | sources: `from_iter`, `range`, `tick`, `queue`, ... ([`SourceCtors`](source::SourceCtors)) |
//! | [`sink`] | sinks: `collect`, `fold`, `for_each`, `head`, `queue`, ... ([`SinkCtors`](sink::SinkCtors)) |
//! | [`simple`] | synchronous one-to-one flows: `map`, `filter`, `scan`, `take`, ... ([`SimpleOps`](simple::SimpleOps)) |
//! | [`keyed`] | `key_by(..).fold/reduce/count` ([`KeyedOps`](keyed::KeyedOps)) |
//! | [`actor`] | actors as stages: `Flow::actor`, `Sink::actor`, `Source::actor`, `ActorRef` tell/ask, supervision trees, timers |
//! | [`async_ops`] | `map_async`, `map_async_unordered` ([`AsyncOps`](async_ops::AsyncOps)) |
//! | [`time`] | rate and time: `throttle`, `delay`, `grouped_within`, `conflate`, `buffer`, timeouts ([`TimeOps`](time::TimeOps)) |
//! | [`window`] | keyed event-time windows: tumbling, sliding, session ([`WindowOps`](window::WindowOps)); processing-time windows ([`ProcessingWindowOps`](window::ProcessingWindowOps)) |
//! | [`process`] | `key_by(..).process(f)`: keyed process functions with value state and event/processing-time timers |
//! | [`join`] | window and interval joins of two keyed event-time streams ([`JoinOps`](join::JoinOps)) |
//! | [`fan`] | junctions (`Broadcast`, `Merge`, `Zip`, ...) and linear fan ops ([`FanOps`](fan::FanOps)) |
//! | [`lifecycle`] | `watch_termination`, `Source::maybe`/`never`, `Source::lazy`/`Sink::lazy` ([`LifecycleOps`](lifecycle::LifecycleOps)) |
//! | [`file`](mod@file) | file connectors: line/CSV/JSON-lines sources replayable by byte offset, a transactional part-file sink |
//! | [`framing`] | byte framing: delimiter, length field, JSON objects, framing protocols as `BidiFlow`s |
//! | [`bidi`] | `BidiFlow::from_functions` ([`BidiCtors`](bidi::BidiCtors)) |
//! | [`hub`] | `MergeHub`, `BroadcastHub`, `PartitionHub`: connect running graphs |
//! | [`persistence`] | event-sourced entities (`event_sourced`) over the journal, `events_by_persistence_id` / `events_by_tag` sources |
//! | [`restart`] | `RestartSource`, `RestartFlow`, `RestartSink` with exponential backoff |
//! | [`substream`] | `flat_map_merge`, `flat_map_concat`, `group_by`, `split_when` ([`SubstreamOps`](substream::SubstreamOps)) |
//!
//! Chaining methods are extension traits over [`Via`], which both `Source` and `Flow` implement,
//! so every flow operator is written once and works on both.

pub mod actor;
pub mod async_ops;
pub mod bidi;
pub mod fan;
pub mod file;
pub mod framing;
pub mod hub;
pub mod join;
pub mod keyed;
pub mod lifecycle;
pub mod persistence;
pub mod process;
pub mod restart;
pub mod simple;
pub mod sink;
pub mod source;
pub mod substream;
pub mod time;
pub mod window;

pub mod prelude;

use weir_graph::{Flow, Source};

/// Something a flow can be attached to: a [`Source`] or a [`Flow`].
pub trait Via: Sized {
    /// Element type of the open output.
    type Out: Send + 'static;
    /// Materialized value kept when attaching with `via`.
    type Mat: Send + 'static;
    /// The result of attaching a flow producing `O2`, keeping `Mat`.
    type Next<O2: Send + 'static>: Via<Out = O2, Mat = Self::Mat>;
    /// The result of attaching a flow producing `O2` with materialized value `M`.
    type NextMat<O2: Send + 'static, M: Send + 'static>: Via<Out = O2, Mat = M>;

    /// Attaches `flow`, keeping this value's materialized value.
    fn via_flow<O2: Send + 'static, M2: Send + 'static>(
        self,
        flow: Flow<Self::Out, O2, M2>,
    ) -> Self::Next<O2>;

    /// Attaches `flow`, combining materialized values with `f`.
    fn via_flow_mat<O2: Send + 'static, M2: Send + 'static, M3: Send + 'static>(
        self,
        flow: Flow<Self::Out, O2, M2>,
        f: impl Fn(Self::Mat, M2) -> M3 + Send + Sync + 'static,
    ) -> Self::NextMat<O2, M3>;
}

impl<Out: Send + 'static, Mat: Send + 'static> Via for Source<Out, Mat> {
    type Out = Out;
    type Mat = Mat;
    type Next<O2: Send + 'static> = Source<O2, Mat>;
    type NextMat<O2: Send + 'static, M: Send + 'static> = Source<O2, M>;

    fn via_flow<O2: Send + 'static, M2: Send + 'static>(
        self,
        flow: Flow<Out, O2, M2>,
    ) -> Source<O2, Mat> {
        self.via(flow)
    }

    fn via_flow_mat<O2: Send + 'static, M2: Send + 'static, M3: Send + 'static>(
        self,
        flow: Flow<Out, O2, M2>,
        f: impl Fn(Mat, M2) -> M3 + Send + Sync + 'static,
    ) -> Source<O2, M3> {
        self.via_mat(flow, f)
    }
}

impl<In: Send + 'static, Out: Send + 'static, Mat: Send + 'static> Via for Flow<In, Out, Mat> {
    type Out = Out;
    type Mat = Mat;
    type Next<O2: Send + 'static> = Flow<In, O2, Mat>;
    type NextMat<O2: Send + 'static, M: Send + 'static> = Flow<In, O2, M>;

    fn via_flow<O2: Send + 'static, M2: Send + 'static>(
        self,
        flow: Flow<Out, O2, M2>,
    ) -> Flow<In, O2, Mat> {
        self.via(flow)
    }

    fn via_flow_mat<O2: Send + 'static, M2: Send + 'static, M3: Send + 'static>(
        self,
        flow: Flow<Out, O2, M2>,
        f: impl Fn(Mat, M2) -> M3 + Send + Sync + 'static,
    ) -> Flow<In, O2, M3> {
        self.via_mat(flow, f)
    }
}
