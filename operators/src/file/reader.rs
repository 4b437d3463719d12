//! The blocking side of the file sources: which files a [`Files`] names (listed on the reading
//! thread), and the iterator that reads them block by block, from a resume position.

use super::error::FileError;
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The files a source reads: one file, every file of a directory, or the files of a directory
/// whose names match a pattern; always in path order, hidden files (a leading `.`, e.g. a file
/// sink's uncommitted parts) left out unless the pattern starts with a dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Files {
    /// A file, or a directory (its regular, non-hidden files).
    Path(PathBuf),
    /// `dir/pattern`: the files of `dir` whose names match `pattern` (`*` any run of bytes,
    /// `?` one byte; only the last component may hold them).
    Glob(PathBuf),
}

impl Files {
    /// A file or a directory.
    pub fn path(p: impl Into<PathBuf>) -> Self {
        Self::Path(p.into())
    }
    /// The files matching `pattern` (e.g. `"in/*.csv"`).
    pub fn glob(pattern: impl Into<PathBuf>) -> Self {
        Self::Glob(pattern.into())
    }

    /// The files, sorted by path.
    pub(crate) fn list(&self) -> Result<Vec<PathBuf>, FileError> {
        let (dir, pattern) = match self {
            Self::Path(p) => {
                let meta = std::fs::metadata(p).map_err(|e| FileError::io("cannot read", p, e))?;
                if !meta.is_dir() {
                    return Ok(vec![p.clone()]);
                }
                (p.as_path(), None)
            }
            Self::Glob(p) => {
                let name = p.file_name().map(|n| n.as_encoded_bytes().to_vec());
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                (dir, name)
            }
        };
        let rd = std::fs::read_dir(dir).map_err(|e| FileError::io("cannot list", dir, e))?;
        let mut files = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| FileError::io("cannot list", dir, e))?;
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            // Hidden files only match a pattern that starts with a dot (as in a shell).
            let wanted = match &pattern {
                Some(p) => glob_match(p, name) && (p.starts_with(b".") || !name.starts_with(b".")),
                None => !name.starts_with(b"."),
            };
            if !wanted {
                continue;
            }
            let path = entry.path();
            let meta =
                std::fs::metadata(&path).map_err(|e| FileError::io("cannot read", &path, e))?;
            if meta.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }
}

/// Whether `name` matches `pattern` (`*`: any run of bytes, `?`: one byte).
pub(crate) fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Where reading resumes: the file, the byte offset of its next line and that line's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resume {
    pub(crate) path: PathBuf,
    pub(crate) offset: u64,
    pub(crate) line: u64,
}

/// Where a reader starts: its share of the listing, the resume position, and (after a
/// redistribution over another number of readers) the files after it that start part-way or
/// were read already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Start {
    /// The listing positions this reader takes: those `i` with `i % count == index`.
    pub(crate) share: (usize, usize),
    /// The file to resume (the share's files sorting before it are done).
    pub(crate) resume: Option<Resume>,
    /// Files after the resume point that begin at a saved position.
    pub(crate) starts: HashMap<PathBuf, Resume>,
    /// Files after the resume point that were read to their end.
    pub(crate) done: HashSet<PathBuf>,
}

/// The files of `spec` at the listing positions of `share` (`(index, count)`), in path order.
pub(crate) fn list_share(spec: &Files, share: (usize, usize)) -> Result<Vec<PathBuf>, FileError> {
    let (index, count) = (share.0, share.1.max(1));
    Ok(spec
        .list()?
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % count == index)
        .map(|(_, p)| p)
        .collect())
}

/// What the reading thread hands to the source, in order.
pub(crate) enum Block {
    /// A file starts, at `offset` (line number `line`).
    Open {
        file: Arc<Path>,
        offset: u64,
        line: u64,
    },
    /// The next bytes of the open file.
    Data(Bytes),
    /// The open file ended.
    Eof,
}

/// Watching for new files once the listed ones are read: the listing is repeated every
/// `interval` (real time, on the reading thread) until `stop` is set.
#[derive(Debug, Clone)]
pub(crate) struct Follow {
    pub(crate) interval: Duration,
    pub(crate) stop: Arc<AtomicBool>,
}

/// The walk over a reader's files: its share of the listing from the resume point on, the
/// files that begin part-way or are done (after a redistribution), and new files when
/// following. Each format's reader opens the files it hands out.
pub(crate) struct FileWalk {
    files: VecDeque<PathBuf>,
    resume: Option<Resume>,
    /// Files that begin part-way, and files to skip (after a redistribution).
    starts: HashMap<PathBuf, Resume>,
    done: HashSet<PathBuf>,
    share: (usize, usize),
    /// What to list again when following new files.
    spec: Files,
    follow: Option<Follow>,
    /// The last file handed out (new files must sort after it).
    last: Option<PathBuf>,
}

impl FileWalk {
    /// The walk over `files` from `start` (files of its share sorting before the resume point
    /// are done).
    pub(crate) fn new(
        files: &Files,
        start: Start,
        follow: Option<Follow>,
    ) -> Result<Self, FileError> {
        if let (Some(_), Files::Path(p)) = (&follow, files)
            && std::fs::metadata(p).is_ok_and(|m| m.is_file())
        {
            return Err(FileError::FollowFile { path: p.clone() });
        }
        let Start {
            share,
            resume,
            starts,
            done,
        } = start;
        let mut list = list_share(files, share)?;
        if let Some(r) = &resume {
            let Some(at) = list.iter().position(|p| p == &r.path) else {
                return Err(FileError::ResumeFileGone {
                    path: r.path.clone(),
                    offset: r.offset,
                });
            };
            list.drain(..at);
        }
        Ok(Self {
            files: list.into(),
            resume,
            starts,
            done,
            share,
            spec: files.clone(),
            follow,
            last: None,
        })
    }

    /// The next file to read with where to resume in it (`None`: from its start); `None` when
    /// no file is left (when following: once the source stopped).
    pub(crate) fn next_file(&mut self) -> Option<Result<(PathBuf, Option<Resume>), FileError>> {
        loop {
            if self.files.is_empty()
                && let Err(e) = self.wait_for_new_files()
            {
                return Some(Err(e));
            }
            let path = self.files.pop_front()?;
            self.last = Some(path.clone());
            if self.done.remove(&path) {
                continue;
            }
            let resume = match self.resume.take().filter(|r| r.path == path) {
                Some(r) => Some(r),
                None => self.starts.remove(&path),
            };
            return Some(Ok((path, resume)));
        }
    }

    /// Ends the walk (after a read error: nothing more is handed out).
    pub(crate) fn clear(&mut self) {
        self.files.clear();
        self.follow = None;
    }

    /// When following: lists the files again every interval until some sort after the last one
    /// read (those are queued) or the source stopped (nothing is queued).
    fn wait_for_new_files(&mut self) -> Result<(), FileError> {
        let Some(follow) = &self.follow else {
            return Ok(());
        };
        loop {
            let until = Instant::now() + follow.interval;
            loop {
                if follow.stop.load(Ordering::Acquire) {
                    return Ok(());
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(20)));
            }
            let last = self.last.as_ref();
            let new: VecDeque<PathBuf> = list_share(&self.spec, self.share)?
                .into_iter()
                .filter(|p| last.is_none_or(|l| p > l))
                .collect();
            if !new.is_empty() {
                self.files = new;
                return Ok(());
            }
        }
    }
}

/// Reads the files in order, `block` bytes at a time.
pub(crate) struct BlockReader {
    walk: FileWalk,
    open: Option<(File, PathBuf)>,
    block: usize,
}

impl BlockReader {
    /// A reader of `files` from `start` (files of its share sorting before the resume
    /// point are done).
    pub(crate) fn new(
        files: &Files,
        start: Start,
        block: usize,
        follow: Option<Follow>,
    ) -> Result<Self, FileError> {
        Ok(Self {
            walk: FileWalk::new(files, start, follow)?,
            open: None,
            block: block.max(1),
        })
    }

    fn open_next(&mut self) -> Option<Result<Block, FileError>> {
        Some(
            self.walk
                .next_file()?
                .and_then(|(path, resume)| self.open_at(path, resume)),
        )
    }

    fn open_at(&mut self, path: PathBuf, resume: Option<Resume>) -> Result<Block, FileError> {
        let mut f = File::open(&path).map_err(|e| FileError::io("cannot open", &path, e))?;
        let (offset, line) = match resume {
            Some(r) => {
                let len = f
                    .metadata()
                    .map_err(|e| FileError::io("cannot read", &path, e))?
                    .len();
                if r.offset > len {
                    return Err(FileError::ResumeBeyondEnd {
                        path,
                        offset: r.offset,
                        len,
                    });
                }
                f.seek(SeekFrom::Start(r.offset))
                    .map_err(|e| FileError::io("cannot seek in", &path, e))?;
                (r.offset, r.line)
            }
            None => (0, 1),
        };
        self.open = Some((f, path.clone()));
        Ok(Block::Open {
            file: Arc::from(path),
            offset,
            line,
        })
    }
}

impl Iterator for BlockReader {
    type Item = Result<Block, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some((f, path)) = &mut self.open else {
            return self.open_next();
        };
        let mut buf = BytesMut::zeroed(self.block);
        loop {
            match f.read(&mut buf) {
                Ok(0) => {
                    self.open = None;
                    return Some(Ok(Block::Eof));
                }
                Ok(n) => {
                    buf.truncate(n);
                    return Some(Ok(Block::Data(buf.freeze())));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let err = FileError::io("cannot read", path.clone(), e);
                    self.open = None;
                    self.walk.clear();
                    return Some(Err(err));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_patterns() {
        assert!(glob_match(b"*.csv", b"a.csv"));
        assert!(glob_match(b"*.csv", b".csv"));
        assert!(!glob_match(b"*.csv", b"a.csv.tmp"));
        assert!(glob_match(b"part-??.txt", b"part-01.txt"));
        assert!(!glob_match(b"part-??.txt", b"part-1.txt"));
        assert!(glob_match(b"a*b*c", b"aXXbYYbc"));
        assert!(glob_match(b"*", b"anything"));
        assert!(!glob_match(b"abc", b"abd"));
    }
}
