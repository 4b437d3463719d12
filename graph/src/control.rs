//! Control messages: what travels in band beside data, end and error (markers, event-time
//! watermarks and idleness, checkpoint barriers), and the rule a stage with several inputs
//! applies to them: markers and barriers are aligned (forwarded once every input delivered
//! them; the engine blocks an input that delivered a barrier meanwhile), watermarks combine as
//! the minimum over the inputs.

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
    /// Event time has reached `ms`: no element with a timestamp `<= ms` follows on this input.
    /// A stage with several inputs forwards the minimum over its open, active inputs, each time
    /// that minimum advances.
    Watermark {
        /// Event time in milliseconds.
        ms: i64,
    },
    /// A checkpoint barrier injected by the run's checkpoint coordinator: aligned like a
    /// marker; every stage it passes snapshots its state for checkpoint `id` first.
    Barrier {
        /// The checkpoint number.
        id: u64,
    },
    /// The input carries no watermarks for now (an idle source): a stage with several inputs
    /// leaves it out of the minimum until its next watermark, and passes `Idle` on once every
    /// open input is idle.
    Idle,
}

impl Control {
    /// A marker with `id`.
    pub fn marker(id: u64) -> Self {
        Self::Marker { id }
    }

    /// A checkpoint barrier for checkpoint `id`.
    pub fn barrier(id: u64) -> Self {
        Self::Barrier { id }
    }

    /// A watermark at event time `ms`.
    pub fn watermark(ms: i64) -> Self {
        Self::Watermark { ms }
    }
}

/// The watermark of one input as the [`Aligner`] tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputTime {
    /// No watermark yet: holds the minimum back.
    None,
    /// The input's latest watermark.
    At(i64),
    /// Idle (left out of the minimum); keeps its latest watermark.
    Idle(Option<i64>),
}

/// Alignment of control messages over the inputs of one stage (or the channels of one input):
/// a marker is released once every input still open delivered an equal marker; an input that
/// ends counts as having delivered every marker still pending. Watermarks are never held: each
/// one that advances the minimum over the open, non-idle inputs releases that minimum at once
/// (so released watermarks only increase), and `Idle` is released once every open input is idle.
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
    /// Each input's event time (watermarks).
    times: Vec<InputTime>,
    /// The last watermark released.
    released: Option<i64>,
    /// Whether `Idle` was released and no watermark since.
    idle_out: bool,
}

impl Aligner {
    /// Alignment over `inputs` inputs, all open.
    pub fn new(inputs: usize) -> Self {
        Self {
            open: vec![true; inputs],
            pending: Vec::new(),
            times: vec![InputTime::None; inputs],
            released: None,
            idle_out: false,
        }
    }

    /// Whether input `i` delivered a control that is not released yet (a blocking aligner stops
    /// reading it until then).
    pub fn is_waiting(&self, i: usize) -> bool {
        self.pending
            .iter()
            .any(|(_, seen)| seen.get(i).copied().unwrap_or(false))
    }

    /// The checkpoint barriers input `i` delivered that are not released yet (a junction
    /// blocks the input while one of them aligns).
    pub fn waiting_barriers(&self, i: usize) -> impl Iterator<Item = u64> + '_ {
        self.pending.iter().filter_map(move |(c, seen)| match c {
            Control::Barrier { id } if seen.get(i).copied().unwrap_or(false) => Some(*id),
            _ => None,
        })
    }

    /// Whether input `i` is still open.
    pub fn is_open(&self, i: usize) -> bool {
        self.open.get(i).copied().unwrap_or(false)
    }

    /// Whether any control waits for alignment.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Input `i` delivered `control`: returns the controls this completes (it, and any later
    /// ones that waited behind it), in arrival order.
    pub fn arrive(&mut self, i: usize, control: Control) -> Vec<Control> {
        match control {
            Control::Watermark { ms } => {
                if let Some(t) = self.times.get_mut(i) {
                    let prev = match *t {
                        InputTime::None | InputTime::Idle(None) => None,
                        InputTime::At(p) | InputTime::Idle(Some(p)) => Some(p),
                    };
                    *t = InputTime::At(prev.map_or(ms, |p| p.max(ms)));
                }
                return self.combine();
            }
            Control::Idle => {
                if let Some(t) = self.times.get_mut(i) {
                    *t = match *t {
                        InputTime::None => InputTime::Idle(None),
                        InputTime::At(p) => InputTime::Idle(Some(p)),
                        idle => idle,
                    };
                }
                return self.combine();
            }
            _ => {}
        }
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
        let mut out = self.release();
        out.extend(self.combine());
        out
    }

    /// The watermark (or `Idle`) the inputs' event times release now, if any.
    fn combine(&mut self) -> Vec<Control> {
        let mut min: Option<i64> = None;
        let mut active = false;
        let mut any_open = false;
        for (t, open) in self.times.iter().zip(&self.open) {
            if !*open {
                continue;
            }
            any_open = true;
            match *t {
                InputTime::None => return Vec::new(),
                InputTime::At(ms) => {
                    active = true;
                    min = Some(min.map_or(ms, |m| m.min(ms)));
                }
                InputTime::Idle(_) => {}
            }
        }
        if !active {
            if any_open && !self.idle_out {
                self.idle_out = true;
                return vec![Control::Idle];
            }
            return Vec::new();
        }
        match min {
            Some(ms) if self.released.is_none_or(|r| ms > r) => {
                self.released = Some(ms);
                self.idle_out = false;
                vec![Control::Watermark { ms }]
            }
            Some(_) if self.idle_out => {
                // Active again without advancing: downstream learns it is no longer idle
                // through the released watermark (repeated).
                self.idle_out = false;
                self.released
                    .map(|ms| vec![Control::Watermark { ms }])
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        }
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
    fn watermarks_release_the_minimum_over_the_inputs_each_time_it_advances() {
        let mut a = Aligner::new(2);
        assert_eq!(a.arrive(0, Control::watermark(10)), vec![]);
        assert_eq!(
            a.arrive(1, Control::watermark(5)),
            vec![Control::watermark(5)]
        );
        assert_eq!(
            a.arrive(1, Control::watermark(8)),
            vec![Control::watermark(8)]
        );
        assert_eq!(
            a.arrive(1, Control::watermark(20)),
            vec![Control::watermark(10)]
        );
        // A watermark going back on one input changes nothing.
        assert_eq!(a.arrive(0, Control::watermark(3)), vec![]);
        assert_eq!(
            a.arrive(0, Control::watermark(15)),
            vec![Control::watermark(15)]
        );
        // The input that ends leaves the minimum.
        assert_eq!(a.end(0), vec![Control::watermark(20)]);
        assert_eq!(a.end(1), vec![]);
    }

    #[test]
    fn watermarks_pass_pending_markers_and_markers_stay_aligned() {
        let mut a = Aligner::new(2);
        assert_eq!(a.arrive(0, Control::marker(1)), vec![]);
        assert_eq!(a.arrive(0, Control::watermark(4)), vec![]);
        assert_eq!(
            a.arrive(1, Control::watermark(6)),
            vec![Control::watermark(4)]
        );
        assert!(a.is_waiting(0));
        assert_eq!(a.arrive(1, Control::marker(1)), vec![Control::marker(1)]);
    }

    #[test]
    fn an_idle_input_leaves_the_minimum_until_its_next_watermark() {
        let mut a = Aligner::new(2);
        assert_eq!(a.arrive(0, Control::watermark(10)), vec![]);
        assert_eq!(a.arrive(1, Control::Idle), vec![Control::watermark(10)]);
        assert_eq!(
            a.arrive(0, Control::watermark(30)),
            vec![Control::watermark(30)]
        );
        // Input 1 comes back behind: the released watermark never goes back.
        assert_eq!(a.arrive(1, Control::watermark(20)), vec![]);
        assert_eq!(a.arrive(0, Control::watermark(40)), vec![]);
        assert_eq!(
            a.arrive(1, Control::watermark(35)),
            vec![Control::watermark(35)]
        );
        // Both idle: idleness passes on once; a watermark makes the stage active again.
        assert_eq!(a.arrive(0, Control::Idle), vec![]);
        assert_eq!(a.arrive(1, Control::Idle), vec![Control::Idle]);
        assert_eq!(a.arrive(1, Control::Idle), vec![]);
        assert_eq!(
            a.arrive(1, Control::watermark(36)),
            vec![Control::watermark(36)]
        );
    }

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
    fn barriers_align_like_markers_and_watermarks_pass_them() {
        let mut a = Aligner::new(2);
        assert_eq!(a.arrive(0, Control::barrier(1)), vec![]);
        assert!(a.is_waiting(0));
        assert_eq!(a.arrive(0, Control::watermark(3)), vec![]);
        assert_eq!(
            a.arrive(1, Control::watermark(5)),
            vec![Control::watermark(3)]
        );
        // A marker with the same number is another control.
        assert_eq!(a.arrive(1, Control::marker(1)), vec![]);
        assert_eq!(a.arrive(1, Control::barrier(1)), vec![Control::barrier(1)]);
        // Input 0 ends: the marker no longer waits for it, and its watermark leaves the minimum.
        assert_eq!(a.end(0), vec![Control::marker(1), Control::watermark(5)]);
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
