//! Connecting with retries and exponential backoff.

use crate::error::ConnectorError;
use std::time::Duration;
use tokio::net::TcpStream;

/// How often and how long apart a failed connect is tried again: `attempts` in all, waiting
/// `initial` after the first failure and twice as long after each next one, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait after the first failed attempt.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
}

impl Retry {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self {
            attempts: 1,
            initial: Duration::ZERO,
            max: Duration::ZERO,
        }
    }
    /// `attempts` in all, starting `initial` apart and doubling up to `max`.
    pub fn backoff(attempts: u32, initial: Duration, max: Duration) -> Self {
        Self {
            attempts,
            initial,
            max,
        }
    }
}

/// Connects to `addr` as `retry` allows.
pub(crate) async fn connect(addr: &str, retry: &Retry) -> Result<TcpStream, ConnectorError> {
    let mut wait = retry.initial;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(source) if attempt >= retry.attempts.max(1) => {
                return Err(ConnectorError::Connect {
                    addr: addr.to_owned(),
                    attempts: attempt,
                    source,
                });
            }
            Err(e) => {
                tracing::debug!(%addr, attempt, error = %e, "connect failed, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(retry.max);
            }
        }
    }
}
