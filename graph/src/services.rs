//! Where islands run and the run-scoped services stages reach through their [`StageInfo`].
//!
//! [`StageInfo`]: crate::StageInfo

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Names the executor an island runs on: the tokio workers (the default) or one the run
/// registers (the Python dispatcher of a Python run; later interpreter pools).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ExecutorId(pub &'static str);

impl ExecutorId {
    /// The tokio worker threads of the run's runtime.
    pub const TOKIO: ExecutorId = ExecutorId("tokio");
    /// The Python dispatcher of a Python run (its serving thread holds the GIL while it polls).
    pub const PYTHON: ExecutorId = ExecutorId("python");
}

impl fmt::Display for ExecutorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Run-scoped services by type (state backend, checkpoint coordinator, transport, the Python
/// dispatcher): set on the materializer, read by stage factories from their `StageInfo`.
#[derive(Clone, Default)]
pub struct Services(Option<Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>);

impl Services {
    /// No services.
    pub fn new() -> Self {
        Self(None)
    }
    /// These services plus `value` (replacing one of the same type).
    pub fn with<T: Any + Send + Sync>(mut self, value: Arc<T>) -> Self {
        let mut map = self.0.take().map(|m| (*m).clone()).unwrap_or_default();
        map.insert(TypeId::of::<T>(), value as Arc<dyn Any + Send + Sync>);
        Self(Some(Arc::new(map)))
    }
    /// The service of type `T`, if the run provides one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let v = self.0.as_ref()?.get(&TypeId::of::<T>())?;
        Arc::clone(v).downcast::<T>().ok()
    }
}

/// Services never distinguish stage identities: any two compare equal.
impl PartialEq for Services {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Services {}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_ref().map_or(0, |m| m.len());
        write!(f, "Services({n})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_found_by_type_and_replaced() {
        let s = Services::new().with(Arc::new(3u32)).with(Arc::new("a"));
        assert_eq!(s.get::<u32>().as_deref(), Some(&3));
        assert_eq!(s.get::<&str>().as_deref(), Some(&"a"));
        assert!(s.get::<u64>().is_none());
        let t = s.clone().with(Arc::new(4u32));
        assert_eq!(t.get::<u32>().as_deref(), Some(&4));
        assert_eq!(s.get::<u32>().as_deref(), Some(&3));
    }
}
