//! Named failpoints for crash tests: with the `failpoints` feature, a point named by the
//! `WEIR_FAILPOINT` environment variable (`name`, or `name:n` for its `n`-th hit) aborts the
//! process there; without the feature a failpoint is an empty inline function.
//!
//! Write points ([`write_fault`]) simulate a full disk instead: they return `ENOSPC` for a write
//! under a directory a [`DiskFull`] guard names (always compiled: one atomic load per checked
//! write while none is armed), and, with the feature, when `WEIR_FAILPOINT` is
//! `name:enospc` (every hit) or `name:enospc:n` (from the `n`-th hit on).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Aborts the process if the failpoint `name` is armed (`WEIR_FAILPOINT`) and this is the hit
/// it waits for; nothing at all without the `failpoints` feature.
#[inline(always)]
pub fn failpoint(name: &str) {
    #[cfg(feature = "failpoints")]
    armed::hit(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// How many [`DiskFull`] guards are alive (the fast path reads only this).
static FULL_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The directories simulated full, one entry per live guard.
static FULL_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The error a write to a full disk gets (`ENOSPC`, "No space left on device").
pub fn enospc() -> std::io::Error {
    #[cfg(unix)]
    return std::io::Error::from_raw_os_error(28);
    #[cfg(not(unix))]
    return std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device");
}

/// `Err(ENOSPC)` when a write to `path` at write point `name` is to fail as on a full disk
/// (a [`DiskFull`] guard over a directory above `path`, or `WEIR_FAILPOINT=name:enospc`).
#[inline]
pub fn write_fault(name: &str, path: &Path) -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    if armed::enospc(name) {
        tracing::warn!(failpoint = name, path = %path.display(), "failpoint: simulated disk full");
        return Err(enospc());
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
    if FULL_COUNT.load(Ordering::Acquire) == 0 {
        return Ok(());
    }
    let full = FULL_DIRS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .any(|d| path.starts_with(d));
    if full { Err(enospc()) } else { Ok(()) }
}

/// A simulated full disk: while the guard lives, every checked write (checkpoint files, file
/// sink parts) under its directory fails with `ENOSPC`; dropping it frees the space.
#[derive(Debug)]
#[must_use = "the disk is full only while the guard lives"]
pub struct DiskFull {
    dir: PathBuf,
}

impl DiskFull {
    /// Makes the disk under `dir` full until the guard is dropped.
    pub fn fill(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        FULL_DIRS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(dir.clone());
        FULL_COUNT.fetch_add(1, Ordering::AcqRel);
        Self { dir }
    }

    /// Frees the space (the same as dropping the guard).
    pub fn free(self) {}
}

impl Drop for DiskFull {
    fn drop(&mut self) {
        let mut dirs = FULL_DIRS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = dirs.iter().position(|d| *d == self.dir) {
            dirs.swap_remove(i);
            FULL_COUNT.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// What an armed point does.
    #[derive(PartialEq, Eq)]
    enum Kind {
        /// Aborts the process at the `at`-th hit.
        Abort,
        /// Fails a write with `ENOSPC` from the `at`-th hit on.
        Enospc,
    }

    struct Armed {
        name: String,
        kind: Kind,
        at: u64,
        hits: AtomicU64,
    }

    fn armed() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let v = std::env::var("WEIR_FAILPOINT").ok()?;
                let (rest, at) = match v.rsplit_once(':') {
                    Some((n, c)) if c.bytes().all(|b| b.is_ascii_digit()) => {
                        (n.to_owned(), c.parse().ok()?)
                    }
                    _ => (v, 1),
                };
                let (name, kind) = match rest.strip_suffix(":enospc") {
                    Some(n) => (n.to_owned(), Kind::Enospc),
                    None => (rest, Kind::Abort),
                };
                Some(Armed {
                    name,
                    kind,
                    at,
                    hits: AtomicU64::new(0),
                })
            })
            .as_ref()
    }

    pub(super) fn hit(name: &str) {
        let Some(a) = armed() else { return };
        if a.kind == Kind::Abort
            && a.name == name
            && a.hits.fetch_add(1, Ordering::AcqRel) + 1 == a.at
        {
            tracing::error!(failpoint = name, "failpoint reached: aborting");
            std::process::abort();
        }
    }

    /// Whether this hit of write point `name` fails with `ENOSPC`.
    pub(super) fn enospc(name: &str) -> bool {
        let Some(a) = armed() else { return false };
        a.kind == Kind::Enospc
            && a.name == name
            && a.hits.fetch_add(1, Ordering::AcqRel) + 1 >= a.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_full_guard_fails_writes_under_its_directory_until_dropped() {
        let dir = std::env::temp_dir().join(format!("weir-fp-unit-{}", std::process::id()));
        let inside = dir.join("chk-1").join("a.state");
        let beside = dir.with_extension("other").join("a.state");
        assert!(write_fault("checkpoint.write", &inside).is_ok());
        let full = DiskFull::fill(&dir);
        let e = write_fault("checkpoint.write", &inside).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28));
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        assert!(write_fault("checkpoint.write", &beside).is_ok());
        // Two guards on one directory: it stays full until both are gone.
        let again = DiskFull::fill(&dir);
        full.free();
        assert!(write_fault("sink.write", &inside).is_err());
        drop(again);
        assert!(write_fault("checkpoint.write", &inside).is_ok());
    }
}
