//! Engine errors.

use weir_graph::{GraphError, StageError};

/// An error materializing or running a graph.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The blueprint is invalid.
    #[error("invalid graph: {0}")]
    Graph(#[from] GraphError),
    /// A stage failed while starting or running.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// No tokio runtime is available to run on.
    #[error("no tokio runtime: call from inside a runtime or use weir_engine::Runtime")]
    NoRuntime,
    /// A materializer setting is out of range (`with_batch_size(0)`, `with_buffer_rows(0)`).
    #[error("invalid materializer setting: {0}")]
    InvalidSetting(String),
    /// The checkpoint directory holds no checkpoint that can be restored, or a stage refused
    /// its restored state.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
}
