//! The manifest of a checkpoint directory: one line per stage subtask naming the files of its
//! state (a file, or a base and its increments in the shared directory) with their lengths and
//! xxh3 checksums, and a last line with the checksum of the lines before it.

use super::store::CheckpointError;
use std::path::{Path, PathBuf};
use weir_graph::StageId;
use xxhash_rust::xxh3::xxh3_64;

/// The first line this build writes.
const HEADER: &str = "weir-checkpoint 2";
/// The first lines this build reads (1: one file per stage subtask).
const READS: [&str; 2] = ["weir-checkpoint 1", HEADER];

/// One file of a stage subtask's state: its name relative to the checkpoint directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) name: String,
    pub(crate) len: u64,
    pub(crate) sum: u64,
}

/// A stage subtask and the files of its state, base first (none: it has no state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) stage: StageId,
    pub(crate) sub: usize,
    pub(crate) parts: Vec<Part>,
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) id: u64,
    pub(crate) entries: Vec<Entry>,
}

impl Manifest {
    /// The manifest's text, with its end line.
    pub(crate) fn render(&self) -> String {
        let mut m = format!("{HEADER}\nid {}\n", self.id);
        for e in &self.entries {
            m.push_str(&format!("stage {} {}", e.stage, e.sub));
            if e.parts.is_empty() {
                m.push_str(" -");
            }
            for p in &e.parts {
                m.push_str(&format!(" {} {} {:016x}", p.name, p.len, p.sum));
            }
            m.push('\n');
        }
        m.push_str(&format!("end {:016x}\n", xxh3_64(m.as_bytes())));
        m
    }

    /// Parses the manifest file at `path` (its checksum verified; the files it names are not
    /// read).
    pub(crate) fn read(path: &Path) -> Result<Self, CheckpointError> {
        let text = std::fs::read_to_string(path).map_err(|e| CheckpointError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses a manifest's text (its checksum verified); `path` names it in errors.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, CheckpointError> {
        let bad = |reason: &str| CheckpointError::Manifest {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let body_len = text
            .trim_end_matches('\n')
            .rfind('\n')
            .map(|i| i + 1)
            .ok_or_else(|| bad("too short"))?;
        let (body, end) = text.split_at(body_len);
        let sum = end
            .trim_end()
            .strip_prefix("end ")
            .ok_or_else(|| bad("no end line"))?;
        if sum != format!("{:016x}", xxh3_64(body.as_bytes())) {
            return Err(bad("checksum mismatch"));
        }
        let mut lines = body.lines();
        if !lines.next().is_some_and(|h| READS.contains(&h)) {
            return Err(bad("unknown header"));
        }
        let id = lines
            .next()
            .and_then(|l| l.strip_prefix("id "))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad("no id line"))?;
        let mut entries = Vec::new();
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            let (stage, sub, rest) = match f.as_slice() {
                ["stage", stage, sub, rest @ ..] => (
                    u64::from_str_radix(stage, 16).map_err(|_| bad("bad stage id"))?,
                    sub.parse::<usize>().map_err(|_| bad("bad subtask"))?,
                    rest,
                ),
                _ => return Err(bad("unknown line")),
            };
            let parts = match rest {
                ["-"] => Vec::new(),
                _ if !rest.is_empty() && rest.len() % 3 == 0 => rest
                    .chunks(3)
                    .map(|p| {
                        Ok(Part {
                            name: p[0].to_owned(),
                            len: p[1].parse().map_err(|_| bad("bad file length"))?,
                            sum: u64::from_str_radix(p[2], 16)
                                .map_err(|_| bad("bad file checksum"))?,
                        })
                    })
                    .collect::<Result<_, CheckpointError>>()?,
                _ => return Err(bad("malformed stage line")),
            };
            entries.push(Entry {
                stage: StageId(stage),
                sub,
                parts,
            });
        }
        Ok(Self { id, entries })
    }
}

/// The path of `part` of the checkpoint in `dir` (`../` names a file beside `dir`).
pub(crate) fn path_of(dir: &Path, part: &Part) -> PathBuf {
    match (part.name.strip_prefix("../"), dir.parent()) {
        (Some(rest), Some(parent)) => parent.join(rest),
        _ => dir.join(&part.name),
    }
}
