//! Named failpoints for crash tests: with the `failpoints` feature, a point named by the
//! `WEIR_FAILPOINT` environment variable (`name`, or `name:n` for its `n`-th hit) aborts the
//! process there; without the feature a failpoint is an empty inline function.

/// Aborts the process if the failpoint `name` is armed (`WEIR_FAILPOINT`) and this is the hit
/// it waits for; nothing at all without the `failpoints` feature.
#[inline(always)]
pub fn failpoint(name: &str) {
    #[cfg(feature = "failpoints")]
    armed::hit(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Armed {
        name: String,
        at: u64,
        hits: AtomicU64,
    }

    fn armed() -> Option<&'static Armed> {
        static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
        ARMED
            .get_or_init(|| {
                let v = std::env::var("WEIR_FAILPOINT").ok()?;
                let (name, at) = match v.rsplit_once(':') {
                    Some((n, c)) => (n.to_owned(), c.parse().ok()?),
                    None => (v, 1),
                };
                Some(Armed {
                    name,
                    at,
                    hits: AtomicU64::new(0),
                })
            })
            .as_ref()
    }

    pub(super) fn hit(name: &str) {
        let Some(a) = armed() else { return };
        if a.name == name && a.hits.fetch_add(1, Ordering::AcqRel) + 1 == a.at {
            tracing::error!(failpoint = name, "failpoint reached: aborting");
            std::process::abort();
        }
    }
}
