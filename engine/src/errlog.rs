//! The run's recent errors: a bounded ring of supervised failures and dead letters, recorded
//! only on the failure path (never per element), read by [`crate::RunView::recent_errors`].

use crate::metrics::StageMetrics;
use crate::observe::ErrorRecord;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use weir_graph::{Directive, StageError, Supervision};

/// How many errors a run keeps (the newest).
pub const ERRORS_KEPT: usize = 256;

/// A bounded ring of the run's newest errors.
#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    ring: Mutex<VecDeque<ErrorRecord>>,
}

/// Unix time in milliseconds now.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ErrorLog {
    /// Records `err` of stage `stage` subtask `subtask`; `dead_letter`: the element was dropped.
    pub(crate) fn record(&self, stage: &str, subtask: usize, err: &StageError, dead_letter: bool) {
        let rec = ErrorRecord {
            stage: stage.to_owned(),
            subtask,
            error: err.to_string(),
            element: err.element().map(str::to_owned),
            at_ms: unix_ms(SystemTime::now()),
            dead_letter,
        };
        let mut r = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if r.len() == ERRORS_KEPT {
            r.pop_front();
        }
        r.push_back(rec);
    }

    /// The errors kept, oldest first.
    pub(crate) fn records(&self) -> Vec<ErrorRecord> {
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// The supervision a stage's own code sees (`StageCx::decide`, `element_failed`, async
/// stages' `decide`): the stage's policy, with every decision that drops an element (Resume
/// or Restart) counted as a dead letter of the stage and recorded in the run's log. The
/// engine's own decisions use the policy itself (see `StageCommon::decide`).
pub(crate) fn observed(
    sup: Option<&Supervision>,
    log: &Arc<ErrorLog>,
    m: &Arc<StageMetrics>,
    path: &str,
    subtask: usize,
) -> Option<Supervision> {
    let inner = sup?.clone();
    let (log, m, path) = (Arc::clone(log), Arc::clone(m), path.to_owned());
    let policy = inner.clone();
    let wrapped = Supervision::new(move |e| {
        let d = policy.decide(e);
        if d != Directive::Stop {
            StageMetrics::add(&m.dead_letters, 1);
            log.record(&path, subtask, e, true);
        }
        d
    });
    Some(match inner.dead_letters() {
        Some(dl) => wrapped.with_dead_letters(dl.clone()),
        None => wrapped,
    })
}
