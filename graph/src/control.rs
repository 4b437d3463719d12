//! Control messages: what travels in band beside data, end and error (markers today; watermarks
//! and checkpoint barriers later), and the alignment rule a stage with several inputs applies so
//! that it forwards each control once.

use serde::{Deserialize, Serialize};

/// A control message carried in band, in order with the data, through every channel and stage.
///
/// Stages forward control unchanged by default and opt in to handle it
/// ([`crate::FlowLogic::on_control`], [`crate::SinkLogic::on_control`],
/// [`crate::AsyncLogic::handles_control`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Control {
    /// A marker injected at the sources by a coordinator (checkpoint barriers build on it); a
    /// stage with several inputs forwards it once every open input delivered the same `id`.
    Marker {
        /// Identifies the marker (e.g. the checkpoint number).
        id: u64,
    },
}

impl Control {
    /// A marker with `id`.
    pub fn marker(id: u64) -> Self {
        Self::Marker { id }
    }
}

/// Alignment of control messages over the inputs of one stage (or the channels of one input):
/// a control is released once every input still open delivered an equal control; an input that
/// ends counts as having delivered every control still pending.
///
/// The engine applies it at every input port (over the channels from upstream subtasks, blocking
/// a channel that delivered a control until the others deliver it too) and across the ports of
/// an asynchronous stage that does not handle control itself; a stage that opts in can use it to
/// align its own inputs.
#[derive(Debug, Clone)]
pub struct Aligner {
    open: Vec<bool>,
    /// Controls seen on some input and not yet released, in arrival order, with the inputs that
    /// delivered them.
    pending: Vec<(Control, Vec<bool>)>,
}

impl Aligner {
    /// Alignment over `inputs` inputs, all open.
    pub fn new(inputs: usize) -> Self {
        Self {
            open: vec![true; inputs],
            pending: Vec::new(),
        }
    }

    /// Whether input `i` delivered a control that is not released yet (a blocking aligner stops
    /// reading it until then).
    pub fn is_waiting(&self, i: usize) -> bool {
        self.pending
            .iter()
            .any(|(_, seen)| seen.get(i).copied().unwrap_or(false))
    }

    /// Whether any control waits for alignment.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Input `i` delivered `control`: returns the controls this completes (it, and any later
    /// ones that waited behind it), in arrival order.
    pub fn arrive(&mut self, i: usize, control: Control) -> Vec<Control> {
        let n = self.open.len();
        let at = match self.pending.iter().position(|(c, _)| *c == control) {
            Some(at) => at,
            None => {
                self.pending.push((control, vec![false; n]));
                self.pending.len() - 1
            }
        };
        if let Some(s) = self.pending[at].1.get_mut(i) {
            *s = true;
        }
        self.release()
    }

    /// Input `i` ended: returns the controls this completes, in arrival order.
    pub fn end(&mut self, i: usize) -> Vec<Control> {
        if let Some(o) = self.open.get_mut(i) {
            *o = false;
        }
        self.release()
    }

    fn release(&mut self) -> Vec<Control> {
        let open = &self.open;
        let mut out = Vec::new();
        // Controls are released in arrival order: a later one never overtakes an earlier one.
        while let Some((_, seen)) = self.pending.first() {
            let complete = open.iter().zip(seen).all(|(o, s)| !*o || *s);
            if !complete {
                break;
            }
            out.push(self.pending.remove(0).0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_is_released_once_every_open_input_delivered_it() {
        let mut a = Aligner::new(3);
        assert_eq!(a.arrive(0, Control::marker(1)), vec![]);
        assert!(a.is_waiting(0));
        assert!(!a.is_waiting(1));
        assert_eq!(a.arrive(2, Control::marker(1)), vec![]);
        assert_eq!(a.arrive(1, Control::marker(1)), vec![Control::marker(1)]);
        assert!(!a.has_pending());
        assert!(!a.is_waiting(0));
    }

    #[test]
    fn an_ended_input_releases_what_waited_for_it_in_arrival_order() {
        let mut a = Aligner::new(2);
        assert_eq!(a.arrive(0, Control::marker(1)), vec![]);
        assert_eq!(a.arrive(0, Control::marker(2)), vec![]);
        assert_eq!(a.end(1), vec![Control::marker(1), Control::marker(2)]);
        // Only input 0 is left: it aligns with itself.
        assert_eq!(a.arrive(0, Control::marker(3)), vec![Control::marker(3)]);
    }

    #[test]
    fn a_later_control_waits_behind_an_earlier_one() {
        let mut a = Aligner::new(2);
        assert_eq!(a.arrive(0, Control::marker(1)), vec![]);
        assert_eq!(a.arrive(0, Control::marker(2)), vec![]);
        assert_eq!(a.arrive(1, Control::marker(1)), vec![Control::marker(1)]);
        assert_eq!(a.arrive(1, Control::marker(2)), vec![Control::marker(2)]);
    }
}
