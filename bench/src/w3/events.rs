//! W3 events and the reference windows: a deterministic generator (a pure function of the seed
//! and the event's index, so the in-memory source, the file writer and the reference agree),
//! the `key,value,ts_ms` line format, and the tumbling sums computed in a plain loop.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use weir::operators::window::{Num, Numeric};

/// Keys are `0..KEYS`.
pub const KEYS: u64 = 1000;
/// Events per millisecond of event time.
pub const PER_MS: u64 = 10;
/// The most an event's timestamp lags behind event time (so 100 ms out-of-orderness is enough).
pub const MAX_LATE_MS: u64 = 99;
/// The windows' length.
pub const WINDOW_MS: i64 = 1000;

/// One W3 event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// `0..1000`.
    pub key: u32,
    /// `1..=100`.
    pub value: u32,
    /// Event time in milliseconds.
    pub ts: i64,
}

impl Numeric for Event {
    fn num(&self) -> Num {
        Num::Int(i128::from(self.value))
    }
}

/// SplitMix64's finalizer: a well-mixed 64-bit hash of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Event `i` of the stream seeded by `seed`: 10 per event-time ms, up to 99 ms late (never
/// before 0).
#[inline]
pub fn event(seed: u64, i: u64) -> Event {
    let h = mix(seed.wrapping_mul(0xd6e8_feb8_6659_fd93) ^ i);
    let late = (h >> 40) % (MAX_LATE_MS + 1);
    Event {
        key: (h % KEYS) as u32,
        value: ((h >> 20) % 100 + 1) as u32,
        ts: (i / PER_MS).saturating_sub(late) as i64,
    }
}

/// Appends the decimal digits of `v` to `out` (no allocation, no formatter).
#[inline]
pub fn push_int(out: &mut Vec<u8>, v: i128) {
    if v < 0 {
        out.push(b'-');
    }
    let mut u = v.unsigned_abs();
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes events `0..n` of `seed` to `path` as `key,value,ts_ms` lines; returns the file size.
pub fn write_file(path: &Path, seed: u64, n: u64) -> std::io::Result<u64> {
    let mut f = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(path)?);
    let mut line = Vec::with_capacity(32);
    let mut size = 0u64;
    for i in 0..n {
        let e = event(seed, i);
        line.clear();
        push_int(&mut line, i128::from(e.key));
        line.push(b',');
        push_int(&mut line, i128::from(e.value));
        line.push(b',');
        push_int(&mut line, i128::from(e.ts));
        line.push(b'\n');
        f.write_all(&line)?;
        size += line.len() as u64;
    }
    f.flush()?;
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(size)
}

/// The start of the tumbling window holding `ts`.
#[inline]
pub fn window_start(ts: i64) -> i64 {
    ts.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// The windows of a run: `(key, window_start_ms) -> sum`.
pub type Windows = BTreeMap<(u32, i64), u64>;

/// The reference: each key's sum per 1 s tumbling window, in a plain loop (no engine). Exact for
/// W3 input, in which no event is later than the 100 ms bound.
pub fn reference(events: impl IntoIterator<Item = Event>) -> Windows {
    let mut w = Windows::new();
    for e in events {
        *w.entry((e.key, window_start(e.ts))).or_default() += u64::from(e.value);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_w3_shaped_and_deterministic() {
        let n = 200_000;
        let events: Vec<Event> = (0..n).map(|i| event(7, i)).collect();
        assert_eq!(events, (0..n).map(|i| event(7, i)).collect::<Vec<_>>());
        assert_ne!(
            events[..100],
            (0..100).map(|i| event(8, i)).collect::<Vec<_>>()[..]
        );
        let mut keys = std::collections::HashSet::new();
        let mut max_late = 0;
        for (i, e) in events.iter().enumerate() {
            assert!(e.key < 1000 && (1..=100).contains(&e.value), "{e:?}");
            let now = (i as u64 / PER_MS) as i64;
            assert!(
                e.ts <= now && now - e.ts <= MAX_LATE_MS as i64,
                "{i}: {e:?}"
            );
            max_late = max_late.max(now - e.ts);
            keys.insert(e.key);
        }
        assert_eq!(keys.len(), 1000);
        assert_eq!(max_late, 99);
    }

    #[test]
    fn the_file_holds_one_line_per_event() {
        let dir = std::env::temp_dir().join(format!("weir-w3-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.csv");
        let size = write_file(&path, 3, 5000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(size, text.len() as u64);
        let want: String = (0..5000)
            .map(|i| {
                let e = event(3, i);
                format!("{},{},{}\n", e.key, e.value, e.ts)
            })
            .collect();
        assert_eq!(text, want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ints_print_as_decimal() {
        for v in [0i128, 7, 10, 999, -1, -1000, i128::from(u64::MAX)] {
            let mut b = Vec::new();
            push_int(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
        assert_eq!(window_start(-1), -1000);
        assert_eq!(window_start(1999), 1000);
    }
}
