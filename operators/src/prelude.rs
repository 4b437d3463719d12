//! Everything a pipeline author needs in scope: the DSL types and every operator extension trait.

pub use crate::Via;
pub use crate::actor::ActorRouters;
pub use crate::actor::{ActorFlows, ActorSinks, ActorSources, AskOps, DeadLetterSources};
pub use crate::async_ops::AsyncOps;
pub use crate::bidi::BidiCtors;
pub use crate::fan::FanOps;
pub use crate::hub::{BroadcastHub, MergeHub, PartitionHub};
pub use crate::join::JoinOps;
pub use crate::keyed::KeyedOps;
pub use crate::lifecycle::{LifecycleOps, LifecycleSinks, LifecycleSources};
pub use crate::restart::{RestartFlow, RestartSettings, RestartSink, RestartSource};
pub use crate::simple::SimpleOps;
pub use crate::sink::SinkCtors;
pub use crate::source::SourceCtors;
pub use crate::substream::SubstreamOps;
pub use crate::time::{EventTimeOps, TimeOps};
pub use crate::window::{ProcessingWindowOps, WindowOps};
pub use weir_graph::{
    BidiFlow, Directive, Flow, GraphBuilder, Keep, RunnableGraph, Sink, SinkFuture, Source,
    StageError, Supervision,
};
