//! Helpers of the ops tests: a gated replayable source, a minimal HTTP/1.1 client and polling.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use weir_graph::{Snapshot, Source, SourceLogic, StageCx, StageError, Step};

/// How far a [`counting`] source may go (it emits `0..limit`, then waits).
#[derive(Default)]
pub struct Gate {
    pub limit: AtomicU64,
    pub waker: Mutex<Option<Waker>>,
}

impl Gate {
    pub fn open(&self, to: u64) {
        self.limit.store(to, Ordering::Release);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

struct Counting {
    next: u64,
    gate: Arc<Gate>,
}

impl SourceLogic<u64> for Counting {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<u64>,
    ) -> Poll<Result<Step, StageError>> {
        *self.gate.waker.lock().unwrap() = Some(cx.waker().clone());
        let limit = self.gate.limit.load(Ordering::Acquire);
        if self.next >= limit {
            return Poll::Pending;
        }
        let end = limit.min(self.next + scx.batch_size() as u64);
        out.extend(self.next..end);
        self.next = end;
        Poll::Ready(Ok(Step::More))
    }
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(Some(Snapshot::encode(&self.next)?))
    }
    fn restore(&mut self, s: &Snapshot) -> Result<(), StageError> {
        self.next = s.decode()?;
        Ok(())
    }
}

/// Emits `0, 1, 2, ...` as far as `gate` allows and never completes; its position is its
/// snapshot.
pub fn counting(name: &str, gate: &Arc<Gate>) -> Source<u64, ()> {
    let gate = Arc::clone(gate);
    Source::from_logic(name, move |_| {
        Ok((
            Counting {
                next: 0,
                gate: Arc::clone(&gate),
            },
            (),
        ))
    })
}

/// A fresh directory under the system's temp dir.
pub fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-ops-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Polls `cond` every 10 ms until it holds; fails after 20 s.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A response: status, content type and body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one HTTP/1.1 request to `addr` and reads the whole response.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let mut content_type = String::new();
    let mut chunked = false;
    for l in lines {
        let (k, v) = l.split_once(':').unwrap_or((l, ""));
        match k.to_ascii_lowercase().as_str() {
            "content-type" => content_type = v.trim().to_owned(),
            "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Resp {
        status,
        content_type,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
