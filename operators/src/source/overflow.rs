//! [`OverflowStrategy`]: what a bounded buffer does when an element arrives and it is full.
//! Shared by `Source::queue` and the time family's `buffer`.

/// What a full bounded buffer does with a new element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OverflowStrategy {
    /// Wait (backpressure the producer) until there is room. The default.
    #[default]
    Backpressure,
    /// Drop the oldest buffered element to make room for the new one.
    DropHead,
    /// Drop the youngest buffered element to make room for the new one.
    DropTail,
    /// Drop every buffered element to make room for the new one.
    DropBuffer,
    /// Drop the new element.
    DropNew,
    /// Fail the stream with a [`BufferOverflow`] error.
    Fail,
}

/// The error raised by [`OverflowStrategy::Fail`] when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer overflow: capacity {capacity} exceeded")]
pub struct BufferOverflow {
    /// Capacity of the buffer that overflowed.
    pub capacity: usize,
}

impl BufferOverflow {
    /// The overflow as a `StageError` (kind `External`, downcastable to [`BufferOverflow`]).
    pub fn into_stage_error(self) -> weir_graph::StageError {
        weir_graph::StageError::from_boxed(weir_graph::ErrorKind::External, Box::new(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_backpressure_and_overflow_is_typed() {
        assert_eq!(OverflowStrategy::default(), OverflowStrategy::Backpressure);
        let e = BufferOverflow { capacity: 3 }.into_stage_error();
        assert_eq!(
            e.downcast_cause::<BufferOverflow>().map(|b| b.capacity),
            Some(3)
        );
    }
}
