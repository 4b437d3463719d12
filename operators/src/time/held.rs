//! Controls held behind rows: an asynchronous stage that keeps rows across a control (a
//! checkpoint barrier, a watermark) forwards the control only once every row that arrived before
//! it left (or was dropped by the stage's own rule), so no barrier overtakes a held row.
//!
//! Rows are counted in arrival order: a control arriving after `n` rows is released once the
//! stage reports that its first `n` rows are done. Nothing is counted per element: stages add
//! a batch's length and report progress per send.

use std::collections::VecDeque;
use weir_graph::{Control, Output};

/// The controls a stage holds, each with the number of rows that arrived before it.
#[derive(Debug, Default)]
pub(crate) struct HeldControls {
    held: VecDeque<(u64, Control)>,
    barriers: usize,
}

impl HeldControls {
    /// A control arrived behind the first `at` rows.
    pub(crate) fn arrive(&mut self, at: u64, control: Control) {
        if matches!(control, Control::Barrier { .. }) {
            self.barriers += 1;
        }
        self.held.push_back((at, control));
    }

    /// Whether a checkpoint barrier is held (a stage that would otherwise let rows behind it
    /// leave first stops reading until it is released).
    pub(crate) fn barrier_held(&self) -> bool {
        self.barriers > 0
    }

    /// The number of rows the oldest held control waits for, if any.
    pub(crate) fn next_at(&self) -> Option<u64> {
        self.held.front().map(|(at, _)| *at)
    }

    /// Forwards on `output`, in arrival order, every control whose rows are done (the first
    /// `done` rows left or were dropped).
    pub(crate) fn release<T: Send + 'static>(&mut self, done: u64, output: &mut Output<T>) {
        while let Some(&(at, _)) = self.held.front() {
            if at > done {
                break;
            }
            if let Some((_, c)) = self.held.pop_front() {
                if matches!(c, Control::Barrier { .. }) {
                    self.barriers -= 1;
                }
                output.control(c);
            }
        }
    }
}
