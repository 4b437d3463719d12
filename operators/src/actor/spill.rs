//! Spilling a full mailbox to disk: messages that find the in-memory queue full are encoded
//! (postcard) into an append-only file, read back in order as the queue drains, and the file is
//! removed once every spilled message was read back (or when the mailbox closes).

use super::mailbox::{Envelope, ReplyTo};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where and how much a mailbox spills: made by [`MailboxConfig::spill`], which captures the
/// message type's codec.
///
/// [`MailboxConfig::spill`]: super::MailboxConfig::spill
#[derive(Clone)]
pub struct Spill {
    /// The folder the spill file is created in.
    pub dir: PathBuf,
    /// Most bytes the spill file may hold; a message beyond it goes to dead letters
    /// ("spill full").
    pub max_bytes: u64,
    pub(crate) codec: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for Spill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spill")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// Encodes and decodes the messages of type `M`.
pub(crate) struct Codec<M> {
    encode: fn(&M) -> postcard::Result<Vec<u8>>,
    decode: fn(&[u8]) -> postcard::Result<M>,
}

impl Spill {
    /// Spilling messages of type `M` under `dir`, at most `max_bytes` on disk.
    pub(crate) fn of<M: Serialize + DeserializeOwned + Send + 'static>(
        dir: PathBuf,
        max_bytes: u64,
    ) -> Self {
        let codec: Codec<M> = Codec {
            encode: |m| postcard::to_allocvec(m),
            decode: |b| postcard::from_bytes(b),
        };
        Self {
            dir,
            max_bytes,
            codec: Arc::new(codec),
        }
    }
}

/// Why a message could not be spilled or read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpillError {
    /// The file would grow past `max_bytes`.
    #[error("spill full ({max_bytes} bytes)")]
    Full { max_bytes: u64 },
    /// The message did not encode or decode.
    #[error("spill codec: {0}")]
    Codec(#[from] postcard::Error),
    /// The file could not be written or read.
    #[error("spill file {path}: {error}")]
    Io { path: String, error: std::io::Error },
}

static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

/// The spill file of one mailbox and the reply addresses of its messages (kept in memory).
pub(crate) struct SpillFile<M> {
    codec: Arc<Codec<M>>,
    dir: PathBuf,
    max_bytes: u64,
    path: Option<PathBuf>,
    writer: Option<BufWriter<File>>,
    reader: Option<BufReader<File>>,
    /// Bytes in the file (read or not: the file is append-only until removed).
    bytes: u64,
    /// Reply addresses of the messages not read back, in order.
    replies: VecDeque<Option<ReplyTo>>,
}

impl<M: 'static> SpillFile<M> {
    /// The spill of `config`; `None` when its codec is for another message type.
    pub(crate) fn new(config: &Spill) -> Option<Self> {
        let codec = Arc::clone(&config.codec).downcast::<Codec<M>>().ok()?;
        Some(Self {
            codec,
            dir: config.dir.clone(),
            max_bytes: config.max_bytes,
            path: None,
            writer: None,
            reader: None,
            bytes: 0,
            replies: VecDeque::new(),
        })
    }

    /// Messages on disk not read back yet.
    pub(crate) fn len(&self) -> usize {
        self.replies.len()
    }

    fn io(&self, error: std::io::Error) -> SpillError {
        SpillError::Io {
            path: self
                .path
                .as_ref()
                .unwrap_or(&self.dir)
                .display()
                .to_string(),
            error,
        }
    }

    /// Appends `env`'s message; gives it back with the reason when it cannot.
    pub(crate) fn push(&mut self, env: Envelope<M>) -> Result<(), (Envelope<M>, SpillError)> {
        let bytes = match (self.codec.encode)(&env.msg) {
            Ok(b) => b,
            Err(e) => return Err((env, e.into())),
        };
        let record = 4 + bytes.len() as u64;
        if self.bytes + record > self.max_bytes {
            let max_bytes = self.max_bytes;
            return Err((env, SpillError::Full { max_bytes }));
        }
        if let Err(e) = self.write(&bytes) {
            return Err((env, e));
        }
        self.bytes += record;
        self.replies.push_back(env.reply);
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SpillError> {
        if self.writer.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
            let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
            let path = self
                .dir
                .join(format!("mailbox-{}-{n}.spill", std::process::id()));
            self.path = Some(path.clone());
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| self.io(e))?;
            self.writer = Some(BufWriter::new(file));
        }
        let len = u32::try_from(bytes.len()).map_err(|_| {
            self.io(std::io::Error::other(format!(
                "message of {} bytes is too large to spill",
                bytes.len()
            )))
        })?;
        let r = match self.writer.as_mut() {
            Some(w) => w
                .write_all(&len.to_le_bytes())
                .and_then(|()| w.write_all(bytes)),
            None => Ok(()),
        };
        r.map_err(|e| self.io(e))
    }

    /// Reads the oldest spilled message back; `None` when nothing is on disk.
    pub(crate) fn pop(&mut self) -> Option<Result<Envelope<M>, SpillError>> {
        let reply = self.replies.pop_front()?;
        let r = self.read().map(|msg| Envelope { msg, reply });
        if self.replies.is_empty() {
            self.remove();
        }
        Some(r)
    }

    fn read(&mut self) -> Result<M, SpillError> {
        let flushed = match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        };
        flushed.map_err(|e| self.io(e))?;
        if self.reader.is_none() {
            let Some(path) = self.path.as_ref() else {
                return Err(self.io(std::io::Error::other("no spill file")));
            };
            let file = File::open(path).map_err(|e| self.io(e))?;
            self.reader = Some(BufReader::new(file));
        }
        let mut len = [0u8; 4];
        let mut buf = Vec::new();
        let r = match self.reader.as_mut() {
            Some(r) => r.read_exact(&mut len).and_then(|()| {
                buf.resize(u32::from_le_bytes(len) as usize, 0);
                r.read_exact(&mut buf)
            }),
            None => Ok(()),
        };
        r.map_err(|e| self.io(e))?;
        Ok((self.codec.decode)(&buf)?)
    }

    /// Removes the file (the messages not read back are lost: the caller took them first).
    pub(crate) fn remove(&mut self) {
        self.writer = None;
        self.reader = None;
        self.bytes = 0;
        if let Some(path) = self.path.take()
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a mailbox spill file");
        }
    }
}

impl<M> Drop for SpillFile<M> {
    fn drop(&mut self) {
        self.writer = None;
        self.reader = None;
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
