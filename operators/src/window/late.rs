//! `late_to(sink)`: splits the late elements of a window stage off to a sink of their own.

use super::{Window, WindowOutput};
use crate::Via;
use crate::fan::FanOps;
use crate::simple::SimpleOps;
use crate::time::Timestamped;
use weir_graph::{Flow, Keep, Sink};

/// Sends the late elements to `sink` (as `(key, element)`) and passes the fired results on as
/// `(key, window, value)`.
///
/// - **emits when** a window result arrives
/// - **backpressures when** downstream or `sink` backpressures
/// - **completes when** upstream completes
/// - **cancels when** downstream or `sink` cancels
/// - **fails when** upstream or `sink` fails
pub fn late_to<K, R, T, M>(
    sink: Sink<(K, Timestamped<T>), M>,
) -> Flow<WindowOutput<K, R, T>, (K, Window, R)>
where
    K: Send + 'static,
    R: Send + 'static,
    T: Send + 'static,
    M: Send + 'static,
{
    let late = Flow::<WindowOutput<K, R, T>, WindowOutput<K, R, T>>::identity()
        .filter_map(WindowOutput::late)
        .to_mat(sink, Keep::right);
    Flow::<WindowOutput<K, R, T>, WindowOutput<K, R, T>>::identity()
        .divert_to(late, |o| matches!(o, WindowOutput::Late { .. }))
        .filter_map(WindowOutput::fired)
}

/// `late_to` on every stream of [`WindowOutput`]s.
pub trait LateOps: Via {
    /// Late elements to `sink`, results on (see [`late_to()`]).
    fn late_to<K, R, T, M>(self, sink: Sink<(K, Timestamped<T>), M>) -> Self::Next<(K, Window, R)>
    where
        Self: Via<Out = WindowOutput<K, R, T>>,
        K: Send + 'static,
        R: Send + 'static,
        T: Send + 'static,
        M: Send + 'static,
    {
        self.via_flow(late_to(sink))
    }
}

impl<S: Via> LateOps for S {}
