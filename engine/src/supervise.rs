//! Supervision applied by the engine around every call into stage logic: panics are caught,
//! the stage's decider picks Stop / Resume / Restart, and Restart recreates the logic.

use crate::metrics::StageMetrics;
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use weir_graph::{
    Clock, Directive, ErasedFlow, ErasedSink, ErasedSource, FlowFactory, SourceFactory, StageCx,
    StageError, StageInfo, Supervision,
};

/// Turns a panic payload into an internal error.
pub(crate) fn panic_error(p: Box<dyn Any + Send>) -> StageError {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    StageError::internal(format!("panicked: {msg}"))
}

/// Runs `f`, turning a panic into an error.
pub(crate) fn guarded<R>(f: impl FnOnce() -> Result<R, StageError>) -> Result<R, StageError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(panic_error(p)),
    }
}

/// What every running stage instance carries besides its logic.
pub(crate) struct StageCommon {
    pub(crate) info: StageInfo,
    pub(crate) sup: Option<Supervision>,
    pub(crate) batch: usize,
    pub(crate) m: Arc<StageMetrics>,
}

impl StageCommon {
    pub(crate) fn cx<'a>(&'a self, clock: &'a dyn Clock) -> StageCx<'a> {
        StageCx::new(&self.info, clock, self.sup.as_ref(), self.batch)
    }

    /// Records a failure and returns what to do about it.
    pub(crate) fn decide(&self, err: &StageError) -> Directive {
        StageMetrics::add(&self.m.failures, 1);
        let d = self.sup.as_ref().map_or(Directive::Stop, |s| s.decide(err));
        if d != Directive::Stop {
            tracing::warn!(stage = %self.info.path, error = %err, directive = ?d, "stage failure supervised");
        }
        d
    }

    pub(crate) fn stopped(&self) {
        StageMetrics::add(&self.m.stopped, 1);
    }

    /// Runs a logic's stop hook (a panic in it is caught) and counts the stage as stopped.
    pub(crate) fn stop_with(&self, post_stop: impl FnOnce()) {
        let _ = guarded(|| {
            post_stop();
            Ok(())
        });
        self.stopped();
    }
}

/// A running flow with its factory (for Restart).
pub(crate) struct FlowSlot {
    pub(crate) logic: Box<dyn ErasedFlow>,
    pub(crate) factory: FlowFactory,
    pub(crate) c: StageCommon,
}

impl FlowSlot {
    /// Feeds `input` through the logic under supervision until it is consumed.
    pub(crate) fn on_batch(
        &mut self,
        input: &mut dyn Any,
        clock: &dyn Clock,
    ) -> Result<(), StageError> {
        let rows = self.logic.input_len(input) as u64;
        StageMetrics::add(&self.c.m.elements_in, rows);
        StageMetrics::add(&self.c.m.batches_in, 1);
        let before_out = self.logic.output_len();
        loop {
            let before = self.logic.input_len(input);
            let r = {
                let mut scx = self.c.cx(clock);
                let logic = &mut self.logic;
                guarded(|| logic.on_batch(input, &mut scx))
            };
            let err = match r {
                Ok(()) => break,
                Err(e) => e.with_stage(&self.c.info.path),
            };
            match self.c.decide(&err) {
                Directive::Stop => return Err(err),
                Directive::Resume => {}
                Directive::Restart => self.restart()?,
            }
            let after = self.logic.input_len(input);
            if after == 0 {
                break;
            }
            if after >= before {
                // The logic failed without consuming anything: skip the rest to guarantee progress.
                self.logic.clear_input(input);
                break;
            }
        }
        let out = self.logic.output_len().saturating_sub(before_out) as u64;
        StageMetrics::add(&self.c.m.elements_out, out);
        Ok(())
    }

    pub(crate) fn on_finish(&mut self, clock: &dyn Clock) -> Result<(), StageError> {
        let before_out = self.logic.output_len();
        let r = {
            let mut scx = self.c.cx(clock);
            let logic = &mut self.logic;
            guarded(|| logic.on_finish(&mut scx))
        };
        let out = self.logic.output_len().saturating_sub(before_out) as u64;
        StageMetrics::add(&self.c.m.elements_out, out);
        r.map_err(|e| e.with_stage(&self.c.info.path))
    }

    pub(crate) fn on_upstream_error(
        &mut self,
        e: StageError,
        clock: &dyn Clock,
    ) -> Result<(), StageError> {
        let mut scx = self.c.cx(clock);
        let logic = &mut self.logic;
        guarded(|| logic.on_upstream_error(e, &mut scx))
    }

    fn restart(&mut self) -> Result<(), StageError> {
        let (mut fresh, _mat) = (self.factory)(&self.c.info)?;
        fresh.adopt_output(self.logic.output());
        let mut old = std::mem::replace(&mut self.logic, fresh);
        old.post_stop();
        StageMetrics::add(&self.c.m.restarts, 1);
        Ok(())
    }

    pub(crate) fn post_stop(&mut self) {
        let logic = &mut self.logic;
        self.c.stop_with(|| logic.post_stop());
    }
}

/// A running source with its factory (for Restart).
pub(crate) struct SourceSlot {
    pub(crate) logic: Box<dyn ErasedSource>,
    pub(crate) factory: SourceFactory,
    pub(crate) c: StageCommon,
}

impl SourceSlot {
    pub(crate) fn restart(&mut self) -> Result<(), StageError> {
        let (fresh, _mat) = (self.factory)(&self.c.info)?;
        let mut old = std::mem::replace(&mut self.logic, fresh);
        old.post_stop();
        StageMetrics::add(&self.c.m.restarts, 1);
        Ok(())
    }

    pub(crate) fn post_stop(&mut self) {
        let logic = &mut self.logic;
        self.c.stop_with(|| logic.post_stop());
    }
}

/// A running sink (Restart acts as Resume: its materialized value stays with the user).
pub(crate) struct SinkSlot {
    pub(crate) logic: Box<dyn ErasedSink>,
    pub(crate) c: StageCommon,
}

impl SinkSlot {
    pub(crate) fn on_batch(
        &mut self,
        input: &mut dyn Any,
        clock: &dyn Clock,
    ) -> Result<(), StageError> {
        let rows = self.logic.input_len(input) as u64;
        StageMetrics::add(&self.c.m.elements_in, rows);
        StageMetrics::add(&self.c.m.batches_in, 1);
        loop {
            let before = self.logic.input_len(input);
            let r = {
                let mut scx = self.c.cx(clock);
                let logic = &mut self.logic;
                guarded(|| logic.on_batch(input, &mut scx))
            };
            let err = match r {
                Ok(()) => return Ok(()),
                Err(e) => e.with_stage(&self.c.info.path),
            };
            if self.c.decide(&err) == Directive::Stop {
                return Err(err);
            }
            let after = self.logic.input_len(input);
            if after == 0 {
                return Ok(());
            }
            if after >= before {
                self.logic.clear_input(input);
                return Ok(());
            }
        }
    }

    pub(crate) fn on_finish(&mut self, clock: &dyn Clock) -> Result<(), StageError> {
        let mut scx = self.c.cx(clock);
        let logic = &mut self.logic;
        guarded(|| logic.on_finish(&mut scx)).map_err(|e| e.with_stage(&self.c.info.path))
    }

    pub(crate) fn on_error(&mut self, e: &StageError) {
        let logic = &mut self.logic;
        let _ = guarded(|| {
            logic.on_error(e);
            Ok(())
        });
    }

    pub(crate) fn post_stop(&mut self) {
        let logic = &mut self.logic;
        self.c.stop_with(|| logic.post_stop());
    }
}
