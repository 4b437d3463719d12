//! Error types: [`StageError`] for running stages, [`GraphError`] for building graphs.

use std::fmt;
use std::sync::Arc;

/// Where an error comes from, so callers can decide whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Raised by user code (a closure, a lambda, a decider).
    User,
    /// Raised by an external system (I/O, a remote peer).
    External,
    /// A bug inside weir or an operator (type mismatch, panic in engine code).
    Internal,
    /// The run or the stage was cancelled.
    Cancelled,
    /// A timeout fired (idle, completion).
    Timeout,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    stage: Option<String>,
    element: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// A failure of a running stage: cheap to clone, carries its kind, message, stage path and cause.
#[derive(Clone)]
pub struct StageError(Arc<Inner>);

impl StageError {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Arc::new(Inner {
            kind,
            message: message.into(),
            stage: None,
            element: None,
            source: None,
        }))
    }

    /// An error raised by user code.
    pub fn user(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, message)
    }

    /// An internal error (a bug).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The error seen when a run or stage is cancelled.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cancelled, message)
    }

    /// A timeout error.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// Wraps a foreign error as a user error keeping it as the source.
    pub fn from_error<E: std::error::Error + Send + Sync + 'static>(err: E) -> Self {
        Self::from_boxed(ErrorKind::User, Box::new(err))
    }

    /// Wraps a boxed error of the given kind keeping it as the source.
    pub fn from_boxed(kind: ErrorKind, err: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self(Arc::new(Inner {
            kind,
            message: err.to_string(),
            stage: None,
            element: None,
            source: Some(Arc::from(err)),
        }))
    }

    /// Attaches the stage path unless one is already set (the first stage to see an error owns it).
    pub fn with_stage(self, stage: &str) -> Self {
        if self.0.stage.is_some() {
            return self;
        }
        let mut inner = Inner::clone(&self.0);
        inner.stage = Some(stage.to_owned());
        Self(Arc::new(inner))
    }

    /// Attaches a rendering of the element the stage failed on, unless one is already set
    /// (long renderings are cut to [`StageError::ELEMENT_CHARS`] characters).
    pub fn with_element(self, element: &str) -> Self {
        if self.0.element.is_some() {
            return self;
        }
        let mut inner = Inner::clone(&self.0);
        inner.element = Some(match element.char_indices().nth(Self::ELEMENT_CHARS) {
            Some((cut, _)) => format!("{}...", &element[..cut]),
            None => element.to_owned(),
        });
        Self(Arc::new(inner))
    }

    /// How many characters of an element's rendering an error keeps.
    pub const ELEMENT_CHARS: usize = 200;

    /// The rendering of the element the stage failed on, when known.
    pub fn element(&self) -> Option<&str> {
        self.0.element.as_deref()
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message without the stage prefix.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The path of the stage that failed, once attached.
    pub fn stage(&self) -> Option<&str> {
        self.0.stage.as_deref()
    }

    /// The original error, if this wraps one.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.0.source.as_deref()
    }

    /// The original error downcast to `E`.
    pub fn downcast_cause<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.cause().and_then(|c| c.downcast_ref::<E>())
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.stage, &self.0.element) {
            (Some(stage), Some(el)) => {
                write!(
                    f,
                    "stage '{stage}' failed on element {el}: {}",
                    self.0.message
                )
            }
            (Some(stage), None) => write!(f, "stage '{stage}' failed: {}", self.0.message),
            (None, Some(el)) => write!(f, "{} (element {el})", self.0.message),
            (None, None) => f.write_str(&self.0.message),
        }
    }
}

impl fmt::Debug for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageError")
            .field("kind", &self.0.kind)
            .field("stage", &self.0.stage)
            .field("element", &self.0.element)
            .field("message", &self.0.message)
            .finish()
    }
}

impl std::error::Error for StageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0.source {
            Some(s) => Some(s.as_ref()),
            None => None,
        }
    }
}

/// An error found while building or validating a graph blueprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// A port of a node was never connected.
    #[error("{direction} port {port} of node '{node}' is not connected")]
    PortNotConnected {
        /// Node name with its index.
        node: String,
        /// "input" or "output".
        direction: &'static str,
        /// Port index.
        port: usize,
    },
    /// A port was connected more than once.
    #[error("{direction} port {port} of node '{node}' is wired twice")]
    PortWiredTwice {
        /// Node name with its index.
        node: String,
        /// "input" or "output".
        direction: &'static str,
        /// Port index.
        port: usize,
    },
    /// A port handle refers to a node this builder does not know.
    #[error("unknown node: {0}")]
    UnknownNode(String),
    /// The graph contains a cycle.
    #[error("graph has a cycle through node '{0}'")]
    Cycle(String),
    /// An attribute or shape is not valid for the stage.
    #[error("invalid stage '{node}': {reason}")]
    InvalidStage {
        /// Node name with its index.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// Two stages were given the same explicit uid.
    #[error("uid '{uid}' is given to both stage '{first}' and stage '{second}'")]
    DuplicateUid {
        /// The uid.
        uid: String,
        /// The first stage with it (name with its index).
        first: String,
        /// The second stage with it.
        second: String,
    },
    /// A parameter of a stage (a size, a count, an attribute) is out of range.
    #[error("invalid parameter of stage '{node}': {reason}")]
    InvalidParameter {
        /// Node name with its index.
        node: String,
        /// Which parameter, the rule and the value given.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_rendering_is_kept_once_and_cut() {
        let e = StageError::user("boom")
            .with_stage("map#0")
            .with_element("7");
        assert_eq!(e.to_string(), "stage 'map#0' failed on element 7: boom");
        assert_eq!(e.clone().with_element("8").element(), Some("7"));
        let long = "x".repeat(1000);
        let e = StageError::user("boom").with_element(&long);
        let el = e.element().unwrap_or_default();
        assert_eq!(el.len(), StageError::ELEMENT_CHARS + 3);
        assert!(el.ends_with("..."));
        assert!(e.to_string().starts_with("boom (element xxx"));
    }
}
