//! Batches: the unit that crosses island boundaries, weighed in rows and bytes.

use std::any::Any;

/// A payload that knows its weight, so credits can count rows and bytes rather than messages.
pub trait Weighed {
    /// Number of rows (elements) in the payload.
    fn rows(&self) -> usize;
    /// Approximate size in bytes: inline size plus reported heap bytes ([`crate::batch_bytes`]).
    fn bytes(&self) -> usize;
}

/// A type-erased batch travelling between islands (a `Vec<T>` under the hood).
pub trait AnyBatch: Weighed + Send + 'static {
    /// The batch as `&mut dyn Any` (downcast to `Vec<T>`).
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The batch as `Box<dyn Any>` (downcast to `Vec<T>`).
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<T: Send + 'static> Weighed for Vec<T> {
    fn rows(&self) -> usize {
        self.len()
    }
    fn bytes(&self) -> usize {
        crate::batch_bytes(self)
    }
}

impl<T: Send + 'static> AnyBatch for Vec<T> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// A boxed type-erased batch.
pub type BoxBatch = Box<dyn AnyBatch>;

/// Downcasts an erased batch buffer to `Vec<T>`, naming the stage on mismatch.
pub fn downcast_vec<'a, T: 'static>(
    any: &'a mut dyn Any,
    stage: &str,
) -> Result<&'a mut Vec<T>, crate::StageError> {
    any.downcast_mut::<Vec<T>>().ok_or_else(|| {
        crate::StageError::internal(format!(
            "type mismatch at stage '{stage}': expected a batch of {}",
            std::any::type_name::<T>()
        ))
    })
}
