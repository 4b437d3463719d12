//! Where a file source stands, whatever its format: its share of the listing, the file and
//! position of its next record, and (after a redistribution) the files that begin part-way or
//! are done; what it snapshots, and how a restored or redistributed source takes it back. A
//! position is a byte offset and line number for the line formats, a row (and 0) for the
//! columnar ones.

use super::reader::{Files, Resume, Start};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use weir_graph::{Share, Snapshot, StageError};

/// What the source saves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    /// The source's share of the listing: the positions `i` with `i % count == index`.
    share: (u64, u64),
    /// The file, the byte offset of its next line and that line's number (`None` before the
    /// first file was opened): the share's files sorting before it are done.
    at: Option<(String, u64, u64)>,
    /// Files after `at` that begin part-way (after a redistribution), with their positions.
    starts: Vec<(String, u64, u64)>,
    /// Files after `at` that were read to their end (after a redistribution).
    done: Vec<String>,
}

/// The tag a snapshot of [`Saved`] starts with (a snapshot of the earlier form, the bare
/// position, starts with 0 or 1: `None` or `Some`).
const SAVED_V2: u8 = 2;

impl Saved {
    fn encode(&self) -> Result<Snapshot, StageError> {
        Ok(Snapshot::encode(&(SAVED_V2, self))?)
    }

    /// The saved state, also from a snapshot of the earlier form (the position of a source
    /// reading every file).
    fn decode(snapshot: &Snapshot) -> Result<Self, StageError> {
        if let Ok((SAVED_V2, saved)) = snapshot.decode::<(u8, Saved)>() {
            return Ok(saved);
        }
        let at: Option<(String, u64, u64)> = snapshot.decode()?;
        Ok(Self {
            share: (0, 1),
            at,
            ..Self::default()
        })
    }
}

/// Where one file of the listing stands in an old source's saved state.
enum Progress {
    Fresh,
    Done,
    At(u64, u64),
}

impl Saved {
    fn progress(&self, path: &Path) -> Progress {
        if let Some((at, offset, line)) = &self.at {
            match path.cmp(Path::new(at)) {
                std::cmp::Ordering::Less => return Progress::Done,
                std::cmp::Ordering::Equal => return Progress::At(*offset, *line),
                std::cmp::Ordering::Greater => {}
            }
        }
        if self.done.iter().any(|d| Path::new(d) == path) {
            return Progress::Done;
        }
        match self.starts.iter().find(|(p, _, _)| Path::new(p) == path) {
            Some((_, offset, line)) => Progress::At(*offset, *line),
            None => Progress::Fresh,
        }
    }
}

fn utf8(p: &Path) -> Result<String, StageError> {
    p.to_str().map(str::to_owned).ok_or_else(|| {
        StageError::internal(format!(
            "file source: cannot snapshot a position in {}: the path is not UTF-8",
            p.display()
        ))
    })
}

/// A source's share and saved positions (those restored, dropped from snapshots once reading
/// passed them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Positions {
    /// Where to start (set by a restore before the first poll, taken by [`Positions::start`]).
    resume: Option<Resume>,
    /// The listing positions this subtask reads (`(index, count)`).
    pub(crate) share: (usize, usize),
    /// Files after the resume point that begin part-way, and those read already.
    starts: Vec<Resume>,
    done: Vec<PathBuf>,
}

impl Positions {
    /// The positions of a fresh source reading share `share` of the listing.
    pub(crate) fn new(share: (usize, usize)) -> Self {
        Self {
            share,
            ..Self::default()
        }
    }

    /// Where the reading thread starts (the resume point is handed over once).
    pub(crate) fn start(&mut self) -> Start {
        Start {
            share: self.share,
            resume: self.resume.take(),
            starts: self
                .starts
                .iter()
                .map(|r| (r.path.clone(), r.clone()))
                .collect(),
            done: self.done.iter().cloned().collect(),
        }
    }

    /// The snapshot with the source at `at` (its open file and position), or where it was to
    /// resume when it has opened no file yet.
    pub(crate) fn snapshot(&self, at: Option<(&Path, u64, u64)>) -> Result<Snapshot, StageError> {
        let at = match (at, &self.resume) {
            (Some((f, offset, line)), _) => Some((utf8(f)?, offset, line)),
            (None, Some(r)) => Some((utf8(&r.path)?, r.offset, r.line)),
            (None, None) => None,
        };
        let after = |p: &Path| at.as_ref().is_none_or(|(a, _, _)| p > Path::new(a));
        let saved = Saved {
            share: (self.share.0 as u64, self.share.1 as u64),
            starts: self
                .starts
                .iter()
                .filter(|r| after(&r.path))
                .map(|r| Ok((utf8(&r.path)?, r.offset, r.line)))
                .collect::<Result<_, StageError>>()?,
            done: self
                .done
                .iter()
                .filter(|p| after(p))
                .map(|p| utf8(p))
                .collect::<Result<_, StageError>>()?,
            at,
        };
        saved.encode()
    }

    /// Takes back a snapshot of a source reading the same share.
    pub(crate) fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let saved = Saved::decode(snapshot)?;
        let share = (saved.share.0 as usize, saved.share.1 as usize);
        if share != self.share {
            return Err(StageError::internal(format!(
                "file source: the checkpoint read share {} of {} of the files and this source \
                 reads share {} of {}: restore it where it reads the same share",
                share.0, share.1, self.share.0, self.share.1
            )));
        }
        let resume = |(path, offset, line): (String, u64, u64)| Resume {
            path: PathBuf::from(path),
            offset,
            line,
        };
        self.resume = saved.at.map(resume);
        self.starts = saved.starts.into_iter().map(resume).collect();
        self.done = saved.done.into_iter().map(PathBuf::from).collect();
        Ok(())
    }

    /// Takes the files of `share` with where each old source left it: a file sorting before
    /// an old source's position is done, the one at it resumes there, the others start fresh.
    /// The listing must be the one the old sources read (a file's position in it says which
    /// old source read it).
    pub(crate) fn restore_redistributed(
        &mut self,
        files: &Files,
        snapshots: &[Snapshot],
        share: Share,
    ) -> Result<(), StageError> {
        if (share.index, share.count) != self.share {
            return Err(StageError::internal(format!(
                "file source: it reads share {} of {} of the files but runs as {share} of the \
                 job: give it `.share(node, nodes)` of the job's nodes",
                self.share.0, self.share.1
            )));
        }
        let olds: Vec<Saved> = snapshots
            .iter()
            .map(Saved::decode)
            .collect::<Result<_, _>>()?;
        let Some(count) = olds.first().map(|o| o.share.1) else {
            return Ok(());
        };
        if olds
            .iter()
            .any(|o| o.share.1 != count || o.share.0 >= count)
        {
            return Err(StageError::internal(
                "file source: the old sources' shares are not of one split of the files",
            ));
        }
        let by_share: std::collections::HashMap<u64, &Saved> =
            olds.iter().map(|o| (o.share.0, o)).collect();
        let listing = files.list().map_err(StageError::from)?;
        self.resume = None;
        self.starts.clear();
        self.done.clear();
        for (i, path) in listing.into_iter().enumerate() {
            if i % self.share.1 != self.share.0 {
                continue;
            }
            let old = by_share.get(&((i as u64) % count));
            match old.map_or(Progress::Fresh, |o| o.progress(&path)) {
                Progress::Fresh => {}
                Progress::Done => self.done.push(path),
                Progress::At(offset, line) => self.starts.push(Resume { path, offset, line }),
            }
        }
        tracing::info!(
            share = %share,
            from = count,
            resumed = self.starts.len(),
            done = self.done.len(),
            "file source: took its files of the old sources' positions"
        );
        Ok(())
    }
}
