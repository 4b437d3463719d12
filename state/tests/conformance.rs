//! The backend conformance suite (`suite/mod.rs`) on the in-memory backend.

use std::sync::Arc;
use weir_state::{InMemoryBackend, KeyGroupRange};

#[macro_use]
mod suite;

fn memory(range: KeyGroupRange) -> suite::Fixture {
    suite::Fixture {
        backend: Arc::new(InMemoryBackend::for_key_groups(range)),
        keep: None,
    }
}

conformance!(memory);
