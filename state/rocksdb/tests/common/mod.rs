//! Temporary directories for RocksDB backends under test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use weir_state::KeyGroupRange;
use weir_state_rocksdb::{RocksDbBackend, RocksDbOptions};

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory named after `tag`, this process and a counter.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("weir-rocks-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small memory budget: tests open many databases at once.
pub fn small(range: KeyGroupRange) -> RocksDbOptions {
    RocksDbOptions {
        block_cache_bytes: 1 << 20,
        write_buffer_bytes: 1 << 20,
        background_jobs: 1,
        ..RocksDbOptions::for_key_groups(range)
    }
}

/// A RocksDB backend of `range` in a fresh temporary directory.
pub fn open(range: KeyGroupRange) -> (Arc<RocksDbBackend>, TempDir) {
    let dir = TempDir::new("t");
    let b = RocksDbBackend::open_with(dir.path().join("db"), small(range)).unwrap();
    (Arc::new(b), dir)
}
