//! `throttle`: shapes the stream to a rate with a token bucket (delays, never drops).

use super::util::{race, recv_or_closed, send_rows};
use futures::future::Either;
use futures::future::{BoxFuture, FutureExt};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, StageError};

/// Limits the stream to `elements` per `per`, allowing bursts of up to `burst` elements (a token
/// bucket that starts full; `burst` of 0 counts as 1). Elements are delayed, never dropped.
///
/// - **emits when** a token is available and downstream has room
/// - **backpressures when** no token is available or downstream backpressures
/// - **completes when** upstream completes and every held element has been emitted
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails, or at start when `elements` or `per` is zero
pub fn throttle<T: Send + 'static>(elements: usize, per: Duration, burst: usize) -> Flow<T, T> {
    Flow::from_async("throttle", move |_| {
        Ok((
            Throttle::<T> {
                elements,
                per,
                burst: burst.max(1),
                _t: PhantomData,
            },
            (),
        ))
    })
}

struct Throttle<T> {
    elements: usize,
    per: Duration,
    burst: usize,
    _t: PhantomData<fn() -> T>,
}

/// A token bucket in exact integer units: one token is `per_ns` units, refilled at `elements`
/// units per nanosecond, so no rounding drift accumulates.
#[derive(Debug)]
struct Bucket {
    per_ns: u128,
    rate: u128,
    cap: u128,
    level: u128,
    last_ns: u128,
}

impl Bucket {
    fn new(elements: usize, per: Duration, burst: usize, now: Duration) -> Self {
        let per_ns = per.as_nanos();
        let cap = per_ns.saturating_mul(burst as u128);
        Self {
            per_ns,
            rate: elements as u128,
            cap,
            level: cap,
            last_ns: now.as_nanos(),
        }
    }

    fn refill(&mut self, now: Duration) {
        let now_ns = now.as_nanos();
        if now_ns > self.last_ns {
            let added = (now_ns - self.last_ns).saturating_mul(self.rate);
            self.level = self.level.saturating_add(added).min(self.cap);
            self.last_ns = now_ns;
        }
    }

    fn tokens(&self) -> u128 {
        self.level / self.per_ns
    }

    fn take(&mut self, n: usize) {
        self.level = self
            .level
            .saturating_sub(self.per_ns.saturating_mul(n as u128));
    }

    /// When the next whole token will be available.
    fn next_token_at(&self) -> Duration {
        let missing = self.per_ns.saturating_sub(self.level);
        let wait = missing.div_ceil(self.rate);
        Duration::from_nanos(u64::try_from(self.last_ns.saturating_add(wait)).unwrap_or(u64::MAX))
    }
}

impl<T: Send + 'static> AsyncLogic for Throttle<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            if self.elements == 0 || self.per.is_zero() {
                return Err(StageError::user(
                    "throttle: `elements` and `per` must both be greater than zero",
                ));
            }
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<T>(0)?;
            let clock = io.clock;
            let max_rows = io.batch_size.max(1);
            let mut bucket = Bucket::new(self.elements, self.per, self.burst, clock.now());
            let mut held: VecDeque<T> = VecDeque::new();
            loop {
                while !held.is_empty() {
                    bucket.refill(clock.now());
                    let k = bucket.tokens().min(held.len().min(max_rows) as u128) as usize;
                    if k == 0 {
                        let sleep = clock.sleep_until(bucket.next_token_at());
                        if let Either::Right(()) = race(sleep, output.closed()).await {
                            return Ok(());
                        }
                        continue;
                    }
                    bucket.take(k);
                    let rows: Vec<T> = held.drain(..k).collect();
                    if send_rows(&mut output, rows).await.is_err() {
                        return Ok(());
                    }
                }
                match recv_or_closed(&mut input, &mut output).await {
                    Some(Event::Batch(b)) => held.extend(b),
                    Some(Event::End) | None => return Ok(()),
                    Some(Event::Error(e)) => return Err(e),
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_exactly() {
        let ms = Duration::from_millis;
        let mut b = Bucket::new(3, ms(1000), 2, ms(0));
        assert_eq!(b.tokens(), 2);
        b.take(2);
        assert_eq!(b.tokens(), 0);
        assert_eq!(b.next_token_at(), Duration::from_nanos(333_333_334));
        b.refill(ms(333));
        assert_eq!(b.tokens(), 0);
        b.refill(ms(334));
        assert_eq!(b.tokens(), 1);
        b.refill(ms(10_000));
        assert_eq!(b.tokens(), 2);
    }
}
