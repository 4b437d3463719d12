//! Lifecycle operators: `watch_termination`, `Source::maybe` / `never`, `Source::lazy` /
//! `Sink::lazy` (with their `lazy_future` forms). Called through [`LifecycleOps`],
//! [`LifecycleSources`] and [`LifecycleSinks`].

mod lazy;
mod maybe;
mod watch;

pub use maybe::MaybeHandle;
pub use watch::{Termination, watch_termination, watch_termination_as};

use crate::Via;
use std::future::Future;
use weir_graph::{Keep, Sink, SinkFuture, Source, StageError};

/// Lifecycle operators on every [`Via`] (`Source` and `Flow`).
pub trait LifecycleOps: Via {
    /// Passes elements through unchanged; materializes `(this value, a future of how the stream
    /// ended)`: `Completed` when upstream completes, `Cancelled` when the stage is stopped first
    /// (downstream cancelled), the error when upstream fails.
    /// Emits when: an element arrives.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn watch_termination(self) -> Self::NextMat<Self::Out, (Self::Mat, SinkFuture<Termination>)> {
        self.via_flow_mat(watch_termination(), Keep::both)
    }
    /// [`LifecycleOps::watch_termination`], combining materialized values with `f`.
    /// Emits when: an element arrives.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn watch_termination_mat<M: Send + 'static>(
        self,
        f: impl Fn(Self::Mat, SinkFuture<Termination>) -> M + Send + Sync + 'static,
    ) -> Self::NextMat<Self::Out, M> {
        self.via_flow_mat(watch_termination(), f)
    }
}

impl<V: Via> LifecycleOps for V {}

/// Lifecycle sources, called as `Source::maybe()`.
pub trait LifecycleSources<T: Send + 'static>: Sized {
    /// At most one element, given through the materialized [`MaybeHandle`].
    /// Emits when: the handle is completed with an element.
    /// Backpressures when: never.
    /// Completes when: after that element, or when the handle completes empty or is dropped.
    /// Cancels when: downstream cancels (the handle then reports `is_stopped`).
    /// Fails when: the handle is failed.
    fn maybe() -> Source<T, MaybeHandle<T>>;

    /// No element, ever.
    /// Emits when: never.
    /// Backpressures when: never.
    /// Completes when: never.
    /// Cancels when: downstream cancels.
    /// Fails when: never.
    fn never() -> Source<T>;

    /// The source `f()` builds on the first downstream demand (its output is demand-driven, so
    /// that is the consumer's first pull; never when downstream cancels first), materialized
    /// inside the run; materializes a future of its materialized value.
    /// Emits when: the inner source emits.
    /// Backpressures when: downstream backpressures.
    /// Completes when: the inner source completes.
    /// Cancels when: downstream cancels (the inner source is cancelled; before it was built,
    /// the future fails as cancelled and `f` is never called).
    /// Fails when: the inner source fails, or it cannot be materialized (the future fails too).
    fn lazy<M: Send + 'static>(
        f: impl Fn() -> Source<T, M> + Send + Sync + 'static,
    ) -> Source<T, SinkFuture<M>>;

    /// [`LifecycleSources::lazy`] with a fallible, asynchronous factory: `f` is called when the
    /// stage is materialized (so it may capture context of the materializing thread) and the
    /// future it returns runs on the first downstream demand.
    /// Emits when: the inner source emits.
    /// Backpressures when: downstream backpressures.
    /// Completes when: the inner source completes.
    /// Cancels when: downstream cancels.
    /// Fails when: the factory fails, or the inner source fails.
    fn lazy_future<M, F, Fut>(f: F) -> Source<T, SinkFuture<M>>
    where
        M: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Source<T, M>, StageError>> + Send + 'static;
}

impl<T: Send + 'static> LifecycleSources<T> for Source<T> {
    fn maybe() -> Source<T, MaybeHandle<T>> {
        maybe::maybe()
    }
    fn never() -> Source<T> {
        maybe::never()
    }
    fn lazy<M: Send + 'static>(
        f: impl Fn() -> Source<T, M> + Send + Sync + 'static,
    ) -> Source<T, SinkFuture<M>> {
        let f = std::sync::Arc::new(f);
        lazy::lazy_source(move || {
            let f = std::sync::Arc::clone(&f);
            async move { Ok(f()) }
        })
    }
    fn lazy_future<M, F, Fut>(f: F) -> Source<T, SinkFuture<M>>
    where
        M: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Source<T, M>, StageError>> + Send + 'static,
    {
        lazy::lazy_source(f)
    }
}

/// Lifecycle sinks, called as `Sink::lazy(..)`.
pub trait LifecycleSinks<T: Send + 'static>: Sized {
    /// The sink `f()` builds when the first element arrives, materialized inside the run;
    /// materializes a future of its materialized value.
    /// Consumes when: the inner sink consumes.
    /// Completes when: upstream completes (the inner sink completes); without any element the
    /// future fails ("never materialized") and `f` is never called.
    /// Cancels when: the inner sink cancels.
    /// Fails when: upstream fails, or the inner sink cannot be materialized.
    fn lazy<M: Send + 'static>(
        f: impl Fn() -> Sink<T, M> + Send + Sync + 'static,
    ) -> Sink<T, SinkFuture<M>>;

    /// [`LifecycleSinks::lazy`] with a fallible, asynchronous factory: `f` is called when the
    /// stage is materialized and the future it returns runs when the first element arrives.
    /// Consumes when: the inner sink consumes.
    /// Completes when: upstream completes.
    /// Cancels when: the inner sink cancels.
    /// Fails when: the factory fails, or upstream fails.
    fn lazy_future<M, F, Fut>(f: F) -> Sink<T, SinkFuture<M>>
    where
        M: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Sink<T, M>, StageError>> + Send + 'static;
}

impl<T: Send + 'static> LifecycleSinks<T> for Sink<T> {
    fn lazy<M: Send + 'static>(
        f: impl Fn() -> Sink<T, M> + Send + Sync + 'static,
    ) -> Sink<T, SinkFuture<M>> {
        let f = std::sync::Arc::new(f);
        lazy::lazy_sink(move || {
            let f = std::sync::Arc::clone(&f);
            async move { Ok(f()) }
        })
    }
    fn lazy_future<M, F, Fut>(f: F) -> Sink<T, SinkFuture<M>>
    where
        M: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Sink<T, M>, StageError>> + Send + 'static,
    {
        lazy::lazy_sink(f)
    }
}
