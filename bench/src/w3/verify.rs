//! The verifier of the crash harness: it reads only committed output, the files of the output
//! directory that `FileSink::committed` lists (today `part-<20 digits>`), in file-name order
//! (the sink names them so that this is commit order), each line in order, and compares it
//! with the reference windows. It counts:
//! - `records`: committed lines.
//! - `lost`: reference windows `(key, window_start)` that no committed line holds.
//! - `duplicates`: committed lines for a window an earlier committed line already held.
//! - `reordered`: first occurrences of a window whose start is before that of an earlier
//!   committed window of the same key (the job fires each key's windows in window order).
//! - `corrupt`: committed lines that are not `key,window_start_ms,sum` with a window-aligned
//!   start (a last line without its newline included), plus files in the output directory that
//!   are neither committed parts nor hidden (the sink's temporary parts are).
//! - `state_mismatches`: first occurrences whose sum differs from the reference's, or whose
//!   window the reference does not have.
//! - `late`: `late,...` lines (the job's late elements; W3 input has none).
//! - `leftover_tmp`: hidden files (the sink's temporary parts) still there after the last run
//!   ended.
//! - `parts_out_of_order`: committed parts whose place in file-name order differs from the
//!   sink's commit order, or whose rename (their status-change time) came before that of a
//!   part whose name sorts before theirs.

use super::events::{self, Windows};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir::operators::file::FileSink;

/// What the verifier found in the committed output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Committed lines.
    pub records: u64,
    /// Reference windows missing.
    pub lost: u64,
    /// Windows committed again.
    pub duplicates: u64,
    /// Windows of a key committed out of window order.
    pub reordered: u64,
    /// Unparsable lines and stray files.
    pub corrupt: u64,
    /// Windows whose sum differs from the reference (or that it does not have).
    pub state_mismatches: u64,
    /// Late-element lines.
    pub late: u64,
    /// Temporary part files left behind.
    pub leftover_tmp: u64,
    /// Committed parts renamed into place before the part whose name sorts before theirs.
    pub parts_out_of_order: u64,
}

impl Verdict {
    /// Whether the output is exactly the reference, once each, in order.
    pub fn exact(&self) -> bool {
        [
            self.lost,
            self.duplicates,
            self.reordered,
            self.corrupt,
            self.state_mismatches,
            self.late,
            self.leftover_tmp,
            self.parts_out_of_order,
        ]
        .iter()
        .all(|&c| c == 0)
    }
}

/// Parses a committed `key,window_start_ms,sum` line.
fn parse_window(line: &[u8]) -> Option<(u32, i64, u64)> {
    let mut it = line.split(|&b| b == b',');
    let mut next = || std::str::from_utf8(it.next()?).ok();
    let key = next()?.parse().ok()?;
    let start: i64 = next()?.parse().ok()?;
    let sum = next()?.parse().ok()?;
    (next().is_none() && start.rem_euclid(events::WINDOW_MS) == 0).then_some((key, start, sum))
}

/// Checks the committed output in `dir` against `reference` (see the module docs).
pub fn verify(dir: &Path, reference: &Windows) -> std::io::Result<Verdict> {
    verify_all(&[dir.to_path_buf()], reference)
}

/// Checks the committed output of a job spread over nodes, one output directory each (each
/// key's windows in one of them), against `reference`: as [`verify`], over their union.
pub fn verify_all(dirs: &[PathBuf], reference: &Windows) -> std::io::Result<Verdict> {
    let mut v = Verdict::default();
    let mut seen: HashMap<(u32, i64), u64> = HashMap::new();
    let mut last_start: HashMap<u32, i64> = HashMap::new();
    for dir in dirs {
        verify_dir(dir, reference, &mut v, &mut seen, &mut last_start)?;
    }
    v.lost = reference.keys().filter(|w| !seen.contains_key(w)).count() as u64;
    Ok(v)
}

/// Adds what `dir` holds to `v`.
fn verify_dir(
    dir: &Path,
    reference: &Windows,
    v: &mut Verdict,
    seen: &mut HashMap<(u32, i64), u64>,
    last_start: &mut HashMap<u32, i64>,
) -> std::io::Result<()> {
    // Which files are committed parts, in commit order, is the sink's own rule.
    let committed = FileSink::new(dir)
        .committed()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let names: HashSet<OsString> = committed
        .iter()
        .filter_map(|p| p.file_name().map(OsString::from))
        .collect();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if names.contains(&name) {
            continue;
        }
        if name.to_string_lossy().starts_with('.') {
            // The sink's temporary (hidden) parts.
            v.leftover_tmp += 1;
        } else {
            v.corrupt += 1;
        }
    }
    // Read in file-name order, which must be the commit order.
    let mut parts: Vec<(OsString, PathBuf)> = committed
        .iter()
        .map(|p| {
            (
                p.file_name().map(OsString::from).unwrap_or_default(),
                p.clone(),
            )
        })
        .collect();
    parts.sort();
    v.parts_out_of_order += parts
        .iter()
        .zip(&committed)
        .filter(|((_, by_name), by_commit)| by_name != *by_commit)
        .count() as u64;
    // A part's rename sets its status-change time: in name order they must not go back.
    let mut prev: Option<std::time::SystemTime> = None;
    for (_, path) in &parts {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        let changed = std::time::UNIX_EPOCH
            + Duration::new(
                u64::try_from(m.ctime()).unwrap_or(0),
                u32::try_from(m.ctime_nsec()).unwrap_or(0),
            );
        if prev.is_some_and(|p| changed < p) {
            v.parts_out_of_order += 1;
        }
        prev = Some(prev.map_or(changed, |p| p.max(changed)));
    }
    for (_, path) in parts {
        let text = std::fs::read(&path)?;
        // An empty part, or one whose last line lacks its newline, is corrupt.
        if !text.ends_with(b"\n") {
            v.corrupt += 1;
            if text.is_empty() {
                continue;
            }
        }
        let body = text.strip_suffix(b"\n").unwrap_or(&text);
        for line in body.split(|&b| b == b'\n') {
            v.records += 1;
            if line.starts_with(b"late,") {
                v.late += 1;
                continue;
            }
            let Some((key, start, sum)) = parse_window(line) else {
                v.corrupt += 1;
                continue;
            };
            if seen.insert((key, start), sum).is_some() {
                v.duplicates += 1;
                continue;
            }
            let last = last_start.entry(key).or_insert(start);
            if start < *last {
                v.reordered += 1;
            }
            *last = (*last).max(start);
            if reference.get(&(key, start)) != Some(&sum) {
                v.state_mismatches += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weir-verify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn reference() -> Windows {
        [((1, 0), 10), ((1, 1000), 11), ((2, 0), 20), ((3, 0), 30)]
            .into_iter()
            .collect()
    }

    fn part(d: &Path, seq: u64, text: &str) {
        std::fs::write(d.join(format!("part-{seq:020}")), text).unwrap();
    }

    #[test]
    fn exact_output_verifies_clean() {
        let d = dir("exact");
        part(&d, 0, "1,0,10\n2,0,20\n");
        part(&d, 1, "3,0,30\n1,1000,11\n");
        let v = verify(&d, &reference()).unwrap();
        assert_eq!(
            v,
            Verdict {
                records: 4,
                ..Verdict::default()
            }
        );
        assert!(v.exact());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn each_kind_of_fault_is_counted_apart() {
        let d = dir("faults");
        // Part 2 sorts after part 10 only if names did not sort numerically: they do.
        part(&d, 2, "1,1000,11\n2,0,21\n");
        part(&d, 10, "1,0,10\n1,1000,11\nlate,3,5,7\n");
        part(&d, 11, "x,0,1\n4,5,6\n9,0,9");
        std::fs::write(d.join(".part-7-0-0.inprogress"), "3,0,30\n").unwrap();
        std::fs::write(d.join("part-3"), "3,0,30\n").unwrap();
        let v = verify(&d, &reference()).unwrap();
        assert_eq!(
            v,
            Verdict {
                // 2 + 3 + 3 lines in the committed parts.
                records: 8,
                // (3, 0): only in a temporary and a stray file.
                lost: 1,
                // (1, 1000) again in part 10.
                duplicates: 1,
                // (1, 0) after (1, 1000).
                reordered: 1,
                // "x,0,1", "4,5,6" (start not window-aligned), the last line without its
                // newline, the stray `part-3`.
                corrupt: 4,
                // (2, 0) summed 21, and (9, 0) that the reference does not have.
                state_mismatches: 2,
                late: 1,
                leftover_tmp: 1,
                parts_out_of_order: 0,
            }
        );
        assert!(!v.exact());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn parts_renamed_out_of_name_order_are_counted() {
        let d = dir("order");
        let reference: Windows = [((1, 0), 10), ((2, 0), 20)].into_iter().collect();
        std::fs::write(d.join("tmp-b"), "2,0,20\n").unwrap();
        std::fs::write(d.join("tmp-a"), "1,0,10\n").unwrap();
        // Part 1 is renamed into place first; file times are coarse (a clock tick), so the
        // second rename waits past one.
        std::fs::rename(d.join("tmp-b"), d.join(format!("part-{:020}", 1))).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        std::fs::rename(d.join("tmp-a"), d.join(format!("part-{:020}", 0))).unwrap();
        let v = verify(&d, &reference).unwrap();
        assert_eq!(
            v,
            Verdict {
                records: 2,
                parts_out_of_order: 1,
                ..Verdict::default()
            }
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
