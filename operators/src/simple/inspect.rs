//! Pass-through observers and decorators: `inspect`, `log`, `zip_with_index`.

use std::fmt::Debug;
use weir_graph::{Flow, FlowLogic, StageCx, StageError, retain_guarded};

struct InspectLogic<F> {
    f: F,
}

impl<T, F> FlowLogic<T, T> for InspectLogic<F>
where
    T: Send + 'static,
    F: FnMut(&T) + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = &mut self.f;
        retain_guarded(input, out, |x| {
            f(x);
            true
        });
        super::pass(input, out);
        Ok(())
    }
}

/// Flow form of [`SimpleOps::inspect`](super::SimpleOps::inspect).
pub fn inspect<T, F>(f: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(&T) + Clone + Send + Sync + 'static,
{
    Flow::from_logic("inspect", move |_| Ok((InspectLogic { f: f.clone() }, ())))
}

struct LogLogic {
    name: String,
    level: tracing::Level,
}

/// Emits a `tracing` event at a level chosen at run time (the macros want a constant).
macro_rules! event_at {
    ($level:expr, $($arg:tt)+) => {
        match $level {
            tracing::Level::ERROR => tracing::event!(target: "weir::log", tracing::Level::ERROR, $($arg)+),
            tracing::Level::WARN => tracing::event!(target: "weir::log", tracing::Level::WARN, $($arg)+),
            tracing::Level::INFO => tracing::event!(target: "weir::log", tracing::Level::INFO, $($arg)+),
            tracing::Level::DEBUG => tracing::event!(target: "weir::log", tracing::Level::DEBUG, $($arg)+),
            _ => tracing::event!(target: "weir::log", tracing::Level::TRACE, $($arg)+),
        }
    };
}

fn level_enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::ERROR => tracing::enabled!(target: "weir::log", tracing::Level::ERROR),
        tracing::Level::WARN => tracing::enabled!(target: "weir::log", tracing::Level::WARN),
        tracing::Level::INFO => tracing::enabled!(target: "weir::log", tracing::Level::INFO),
        tracing::Level::DEBUG => tracing::enabled!(target: "weir::log", tracing::Level::DEBUG),
        _ => tracing::enabled!(target: "weir::log", tracing::Level::TRACE),
    }
}

impl<T: Debug + Send + 'static> FlowLogic<T, T> for LogLogic {
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if level_enabled(self.level) {
            let stage = &scx.info().path;
            for x in input.iter() {
                event_at!(self.level, name = %self.name, stage = %stage, "element: {x:?}");
            }
        }
        super::pass(input, out);
        Ok(())
    }

    fn on_finish(&mut self, _out: &mut Vec<T>, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let stage = &scx.info().path;
        event_at!(self.level, name = %self.name, stage = %stage, "upstream finished");
        Ok(())
    }

    fn on_upstream_error(
        &mut self,
        error: StageError,
        _out: &mut Vec<T>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let stage = &scx.info().path;
        tracing::error!(target: "weir::log", name = %self.name, stage = %stage, "upstream failed: {error}");
        Err(error)
    }
}

/// Flow form of [`SimpleOps::log`](super::SimpleOps::log).
pub fn log<T: Debug + Send + 'static>(name: impl Into<String>) -> Flow<T, T> {
    log_at(name, tracing::Level::DEBUG)
}

/// Flow form of [`SimpleOps::log_at`](super::SimpleOps::log_at).
pub fn log_at<T: Debug + Send + 'static>(
    name: impl Into<String>,
    level: tracing::Level,
) -> Flow<T, T> {
    let name = name.into();
    Flow::from_logic("log", move |_| {
        Ok((
            LogLogic {
                name: name.clone(),
                level,
            },
            (),
        ))
    })
}

struct ZipWithIndexLogic {
    next: u64,
}

impl<T: Send + 'static> FlowLogic<T, (T, u64)> for ZipWithIndexLogic {
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<(T, u64)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let base = self.next;
        self.next = base.wrapping_add(input.len() as u64);
        out.extend(input.drain(..).zip(base..));
        Ok(())
    }
    /// The next index is state: a restored run goes on counting where the checkpoint was.
    fn snapshot(&self) -> Result<Option<weir_graph::Snapshot>, StageError> {
        weir_graph::Snapshot::encode(&self.next)
            .map(Some)
            .map_err(StageError::from_error)
    }
    fn restore(&mut self, snapshot: &weir_graph::Snapshot) -> Result<(), StageError> {
        self.next = snapshot.decode().map_err(StageError::from_error)?;
        Ok(())
    }
}

/// Flow form of [`SimpleOps::zip_with_index`](super::SimpleOps::zip_with_index).
pub fn zip_with_index<T: Send + 'static>() -> Flow<T, (T, u64)> {
    Flow::from_logic("zip_with_index", |_| {
        Ok((ZipWithIndexLogic { next: 0 }, ()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::testkit::{batches, run};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn zip_with_index_restores_its_next_index() {
        let mut a = ZipWithIndexLogic { next: 0 };
        let mut out = Vec::new();
        let info = weir_graph::StageInfo::new("zip_with_index", 0);
        let clock = crate::simple::testkit::TestClock;
        let mut scx = StageCx::new(&info, &clock, None, 16);
        FlowLogic::<u8, _>::on_batch(&mut a, &mut vec![7, 8, 9], &mut out, &mut scx).ok();
        let snap = FlowLogic::<u8, (u8, u64)>::snapshot(&a)
            .ok()
            .flatten()
            .expect("stateful");
        let mut b = ZipWithIndexLogic { next: 0 };
        FlowLogic::<u8, (u8, u64)>::restore(&mut b, &snap).expect("restores");
        let mut out = Vec::new();
        FlowLogic::<u8, _>::on_batch(&mut b, &mut vec![1], &mut out, &mut scx).ok();
        assert_eq!(out, vec![(1, 3)]);
    }

    #[test]
    fn inspect_sees_every_element_and_passes_through() {
        let seen = Arc::new(AtomicUsize::new(0));
        let s2 = Arc::clone(&seen);
        let f = inspect(move |x: &usize| {
            s2.fetch_add(*x, Ordering::Relaxed);
        });
        let v: Vec<usize> = (0..10).collect();
        assert_eq!(run(&f, batches(&v, 3)).ok(), Some(v.clone()));
        assert_eq!(seen.load(Ordering::Relaxed), 45);
        assert_eq!(run(&log::<usize>("nums"), batches(&v, 4)).ok(), Some(v));
    }

    #[test]
    fn zip_with_index_counts_across_batches() {
        let v = ['a', 'b', 'c', 'd', 'e'];
        let want: Vec<(char, u64)> = v.iter().copied().zip(0..).collect();
        assert_eq!(run(&zip_with_index(), batches(&v, 2)).ok(), Some(want));
    }
}
