//! Window assigners: which event-time windows an element belongs to.

use std::time::Duration;

/// An event-time window `[start, end)` in milliseconds; it fires once the watermark reaches
/// `end - 1` (its last timestamp).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Window {
    /// First timestamp in the window.
    pub start: i64,
    /// First timestamp after the window.
    pub end: i64,
}

impl Window {
    /// The window `[start, end)`.
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }

    /// The last timestamp in the window.
    pub fn max_ts(&self) -> i64 {
        self.end.saturating_sub(1)
    }

    /// Whether the windows overlap or touch (sessions that merge).
    pub(crate) fn touches(&self, other: &Window) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub(crate) fn cover(&self, other: &Window) -> Window {
        Window::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// How elements are assigned to event-time windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Fixed, non-overlapping windows of `size` ms aligned to the epoch.
    Tumbling { size: i64 },
    /// Windows of `size` ms starting every `slide` ms.
    Sliding { size: i64, slide: i64 },
    /// Per key, elements less than `gap` ms apart share a window.
    Session { gap: i64 },
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Windows {
    /// Tumbling windows of `size` (whole milliseconds), aligned to the epoch.
    pub fn tumbling(size: Duration) -> Self {
        Self {
            kind: Kind::Tumbling { size: millis(size) },
        }
    }

    /// Sliding windows of `size` starting every `slide` (whole milliseconds).
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        Self {
            kind: Kind::Sliding {
                size: millis(size),
                slide: millis(slide),
            },
        }
    }

    /// Session windows per key: a session ends after `gap` without an element of its key.
    pub fn session(gap: Duration) -> Self {
        Self {
            kind: Kind::Session { gap: millis(gap) },
        }
    }

    /// Why these windows are invalid, if they are (checked when the graph is validated).
    pub(crate) fn invalid(&self) -> Option<String> {
        match self.kind {
            Kind::Tumbling { size } if size <= 0 => {
                Some("tumbling window: size must be at least 1 ms".into())
            }
            Kind::Sliding { size, slide } if size <= 0 || slide <= 0 || slide > size => Some(
                "sliding window: size and slide must be at least 1 ms, slide at most size".into(),
            ),
            Kind::Session { gap } if gap <= 0 => {
                Some("session window: gap must be at least 1 ms".into())
            }
            _ => None,
        }
    }

    /// Appends the windows of an element at `ts` to `out`, by ascending start (for sessions,
    /// the element's own window before merging).
    pub(crate) fn assign(&self, ts: i64, out: &mut Vec<Window>) {
        match self.kind {
            Kind::Tumbling { size } => {
                let start = ts - ts.rem_euclid(size);
                out.push(Window::new(start, start.saturating_add(size)));
            }
            Kind::Sliding { size, slide } => {
                let last = ts - ts.rem_euclid(slide);
                let first_out = out.len();
                let mut start = last;
                while start > ts.saturating_sub(size) {
                    out.push(Window::new(start, start.saturating_add(size)));
                    start = start.saturating_sub(slide);
                }
                out[first_out..].reverse();
            }
            Kind::Session { gap } => out.push(Window::new(ts, ts.saturating_add(gap))),
        }
    }

    /// Whether windows merge (sessions).
    pub(crate) fn merging(&self) -> bool {
        matches!(self.kind, Kind::Session { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(w: Windows, ts: i64) -> Vec<(i64, i64)> {
        let mut v = Vec::new();
        w.assign(ts, &mut v);
        v.into_iter().map(|w| (w.start, w.end)).collect()
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch_also_before_it() {
        let t = Windows::tumbling(Duration::from_millis(10));
        assert_eq!(windows(t, 0), vec![(0, 10)]);
        assert_eq!(windows(t, 9), vec![(0, 10)]);
        assert_eq!(windows(t, 10), vec![(10, 20)]);
        assert_eq!(windows(t, -1), vec![(-10, 0)]);
    }

    #[test]
    fn sliding_windows_cover_every_start_within_size() {
        let s = Windows::sliding(Duration::from_millis(10), Duration::from_millis(5));
        assert_eq!(windows(s, 7), vec![(0, 10), (5, 15)]);
        assert_eq!(windows(s, 10), vec![(5, 15), (10, 20)]);
        let s = Windows::sliding(Duration::from_millis(10), Duration::from_millis(3));
        assert_eq!(windows(s, 9), vec![(0, 10), (3, 13), (6, 16), (9, 19)]);
    }

    #[test]
    fn non_positive_sizes_are_invalid() {
        assert!(Windows::tumbling(Duration::ZERO).invalid().is_some());
        assert!(
            Windows::sliding(Duration::from_millis(5), Duration::ZERO)
                .invalid()
                .is_some()
        );
        let gaps = Windows::sliding(Duration::from_millis(5), Duration::from_millis(6));
        assert!(gaps.invalid().is_some());
        assert!(
            Windows::session(Duration::from_micros(10))
                .invalid()
                .is_some()
        );
        assert_eq!(Windows::session(Duration::from_millis(1)).invalid(), None);
    }
}
