//! Supervision applied by the engine around every call into stage logic: panics are caught,
//! the stage's decider picks Stop / Resume / Restart, and Restart recreates the logic.

use crate::errlog::ErrorLog;
use crate::metrics::StageMetrics;
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use weir_graph::{
    Clock, Control, DeadLetter, Directive, ElementPanic, ErasedFlow, ErasedSink, ErasedSource,
    FlowFactory, RenderedPanic, SourceFactory, StageCx, StageError, StageInfo, Supervision,
    panic_message,
};

/// Turns a panic payload into an internal error.
pub(crate) fn panic_error(p: Box<dyn Any + Send>) -> StageError {
    StageError::internal(format!("panicked: {}", panic_message(&*p)))
}

/// Runs `f`, turning a panic into an error.
pub(crate) fn guarded<R>(f: impl FnOnce() -> Result<R, StageError>) -> Result<R, StageError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(panic_error(p)),
    }
}

/// A failed call into a logic's `on_batch`.
struct Failure {
    err: StageError,
    /// For a panic: the element (when the logic kept it) and its rendering, for the dead letter.
    letter: Option<(Option<Box<dyn Any + Send>>, Option<String>)>,
}

/// Calls `f` (a logic's `on_batch`). A panic becomes an error naming the element: its rendering
/// when the logic handed it over (an [`ElementPanic`]); otherwise the panic message comes back
/// too, for [`Failure::placed`] to name the element by its position once the rows left are known.
fn call_batch(
    path: &str,
    f: impl FnOnce() -> Result<(), StageError>,
) -> Result<(), (Failure, Option<String>)> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((
            Failure {
                err: e.with_stage(path),
                letter: None,
            },
            None,
        )),
        Err(p) => {
            let (element, repr, msg) = match p.downcast::<ElementPanic>() {
                Ok(ep) => (Some(ep.element), ep.repr, ep.message),
                Err(p) => match p.downcast::<RenderedPanic>() {
                    // User code consumed the element: only its rendering is left.
                    Ok(rp) => (None, Some(rp.repr), rp.message),
                    Err(p) => (None, None, panic_message(&*p)),
                },
            };
            let err = StageError::internal(format!("panicked: {msg}"));
            let (err, unplaced) = match &repr {
                Some(r) => (err.with_element(r), None),
                None => (err, Some(msg)),
            };
            Err((
                Failure {
                    err: err.with_stage(path),
                    letter: Some((element, repr)),
                },
                unplaced,
            ))
        }
    }
}

impl Failure {
    /// A panic on an element that could not be rendered: say where it was in the input.
    fn placed(mut self, unplaced: Option<String>, path: &str, at: impl FnOnce() -> u64) -> Self {
        if let Some(msg) = unplaced {
            self.err =
                StageError::internal(format!("panicked on element {} of its input: {msg}", at()))
                    .with_stage(path);
        }
        self
    }
}

/// What every running stage instance carries besides its logic.
pub(crate) struct StageCommon {
    pub(crate) info: StageInfo,
    /// The supervision the stage's own code sees: its policy, counting the elements it drops
    /// ([`crate::errlog::observed`]).
    pub(crate) sup: Option<Supervision>,
    /// The stage's policy itself, for the engine's decisions.
    pub(crate) policy: Option<Supervision>,
    pub(crate) batch: usize,
    pub(crate) m: Arc<StageMetrics>,
    /// The run's recent errors.
    pub(crate) log: Arc<ErrorLog>,
}

impl StageCommon {
    pub(crate) fn cx<'a>(&'a self, clock: &'a dyn Clock) -> StageCx<'a> {
        StageCx::new(&self.info, clock, self.sup.as_ref(), self.batch)
    }

    /// Records a failure and returns what to do about it.
    pub(crate) fn decide(&self, err: &StageError) -> Directive {
        self.decide_dropping(err, false)
    }

    /// Records a failure (`drops`: a Resume or Restart drops its element, a dead letter) and
    /// returns what to do about it.
    fn decide_dropping(&self, err: &StageError, drops: bool) -> Directive {
        StageMetrics::add(&self.m.failures, 1);
        let d = self
            .policy
            .as_ref()
            .map_or(Directive::Stop, |s| s.decide(err));
        let dead = drops && d != Directive::Stop;
        if dead {
            StageMetrics::add(&self.m.dead_letters, 1);
        }
        self.log
            .record(&self.info.path, self.info.subtask, err, dead);
        if d != Directive::Stop {
            tracing::warn!(stage = %self.info.path, error = %err, directive = ?d, "stage failure supervised");
        }
        d
    }

    /// Records a failure of one batch call and returns what to do about it; a panic that
    /// supervision gets past sends its element to the dead-letter sink.
    fn decide_failure(&self, f: Failure) -> (StageError, Directive) {
        let d = self.decide_dropping(&f.err, f.letter.is_some());
        if d != Directive::Stop
            && let Some((element, repr)) = f.letter
            && let Some(dl) = self.policy.as_ref().and_then(|s| s.dead_letters())
        {
            dl.send(DeadLetter {
                stage: self.info.path.clone(),
                error: f.err.clone(),
                element,
                repr,
            });
        }
        (f.err, d)
    }

    /// Position (in this instance's input) of the element a batch call failed on, given the
    /// batch's row count and the rows it left.
    fn failed_at(&self, rows: usize, left: usize) -> u64 {
        let seen = self
            .m
            .elements_in
            .load(std::sync::atomic::Ordering::Relaxed);
        (seen.saturating_sub(rows as u64) + rows.saturating_sub(left) as u64).saturating_sub(1)
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
        let mut before = rows as usize;
        loop {
            let r = {
                let mut scx = self.c.cx(clock);
                let logic = &mut self.logic;
                call_batch(&self.c.info.path, || logic.on_batch(input, &mut scx))
            };
            let Err((f, unplaced)) = r else { break };
            let after = self.logic.input_len(input);
            let f = f.placed(unplaced, &self.c.info.path, || {
                self.c.failed_at(rows as usize, after)
            });
            let (err, d) = self.c.decide_failure(f);
            match d {
                Directive::Stop => return Err(err),
                Directive::Resume => {}
                Directive::Restart => self.restart()?,
            }
            if after == 0 {
                break;
            }
            if after >= before {
                // The logic failed without consuming anything: skip the rest to guarantee progress.
                self.logic.clear_input(input);
                break;
            }
            before = after;
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

    /// Hands a control message to the logic (a panic is a failure of the stage).
    pub(crate) fn on_control(
        &mut self,
        control: Control,
        clock: &dyn Clock,
    ) -> Result<Option<Control>, StageError> {
        self.c.m.saw_control(&control);
        let before_out = self.logic.output_len();
        let r = {
            let mut scx = self.c.cx(clock);
            let logic = &mut self.logic;
            guarded(|| logic.on_control(control, &mut scx))
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
        let mut before = rows as usize;
        loop {
            let r = {
                let mut scx = self.c.cx(clock);
                let logic = &mut self.logic;
                call_batch(&self.c.info.path, || logic.on_batch(input, &mut scx))
            };
            let Err((f, unplaced)) = r else {
                return Ok(());
            };
            let after = self.logic.input_len(input);
            let f = f.placed(unplaced, &self.c.info.path, || {
                self.c.failed_at(rows as usize, after)
            });
            let (err, d) = self.c.decide_failure(f);
            if d == Directive::Stop {
                return Err(err);
            }
            if after == 0 {
                return Ok(());
            }
            if after >= before {
                self.logic.clear_input(input);
                return Ok(());
            }
            before = after;
        }
    }

    pub(crate) fn on_finish(&mut self, clock: &dyn Clock) -> Result<(), StageError> {
        let mut scx = self.c.cx(clock);
        let logic = &mut self.logic;
        guarded(|| logic.on_finish(&mut scx)).map_err(|e| e.with_stage(&self.c.info.path))
    }

    /// Hands a control message to the sink (a panic is a failure of the stage).
    pub(crate) fn on_control(
        &mut self,
        control: Control,
        clock: &dyn Clock,
    ) -> Result<(), StageError> {
        self.c.m.saw_control(&control);
        let mut scx = self.c.cx(clock);
        let logic = &mut self.logic;
        guarded(|| logic.on_control(control, &mut scx)).map_err(|e| e.with_stage(&self.c.info.path))
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
