//! `throttle`: limits the rate with Akka's token bucket, shaping (delays) or enforcing (fails).

use super::util::{race, recv_up_to_or_closed, send_rows};
use futures::future::Either;
use futures::future::{BoxFuture, FutureExt};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use weir_graph::{AsyncIo, AsyncLogic, ErrorKind, Event, Flow, Module, StageError, async_node};

/// What `throttle` does with an element that arrives before its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleMode {
    /// Holds the element until its token arrives.
    Shaping,
    /// Fails the stream with [`RateExceeded`].
    Enforcing,
}

/// The failure of an enforcing `throttle` whose upstream is faster than the rate.
#[derive(Debug, Error)]
#[error("throttle: maximum throughput exceeded ({elements} per {per:?}, burst {burst})")]
pub struct RateExceeded {
    /// Elements per `per`.
    pub elements: usize,
    /// The period.
    pub per: Duration,
    /// The bucket's capacity.
    pub burst: usize,
}

/// Shapes the stream to `elements` per `per` with a token bucket of capacity `burst` that starts
/// full (Akka's `throttle(elements, per, maximumBurst, Shaping)`): one token arrives every
/// `per / elements` (integer nanoseconds, at exact multiples of that period), each element takes
/// one, and an element without a token is held until it arrives. With `burst` 0 every element
/// waits for its own token (the first one `per / elements` after the start).
///
/// - **emits when** the element's token has arrived and downstream has room
/// - **backpressures when** the element waits for its token or downstream backpressures
/// - **completes when** upstream completes and every held element has been emitted
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails, or at start when `per / elements` is under a nanosecond
///
/// `elements` 0 and a zero `per` are reported as invalid parameters when the graph is validated.
pub fn throttle<T: Send + 'static>(elements: usize, per: Duration, burst: usize) -> Flow<T, T> {
    throttle_with_mode(elements, per, burst, ThrottleMode::Shaping)
}

/// Like [`throttle`] in the given mode: [`ThrottleMode::Enforcing`] fails the stream with
/// [`RateExceeded`] when an element arrives without a token (the elements before it are emitted
/// first), as Akka's `ThrottleMode.Enforcing`.
///
/// - **emits when** the element's token has arrived (enforcing: on arrival) and downstream has room
/// - **backpressures when** the element waits for its token (shaping) or downstream backpressures
/// - **completes when** upstream completes and every held element has been emitted
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails, an element arrives without a token (enforcing), or at start
///   when `per / elements` is under a nanosecond
///
/// The output is demand-driven: an element is offered to the bucket only once the consumer asked
/// for it (as Akka pulls on demand), so tokens are never spent on elements that would wait
/// downstream. The input is demand-driven too: the stage asks upstream only for the elements its
/// tokens pay for now (at least one), so a checkpoint barrier behind a large backlog passes
/// within one token period instead of waiting behind the whole backlog.
pub fn throttle_with_mode<T: Send + 'static>(
    elements: usize,
    per: Duration,
    burst: usize,
    mode: ThrottleMode,
) -> Flow<T, T> {
    let node = async_node(
        "throttle",
        1,
        vec![weir_graph::router_for::<T>()],
        move |_| {
            Ok((
                Throttle::<T> {
                    elements,
                    per,
                    burst,
                    mode,
                    _t: PhantomData,
                },
                (),
            ))
        },
    )
    .with_parallelizable(true)
    .with_demand_outputs()
    .with_demand_input();
    Flow::from_module(Arc::new(Module::single(node))).reject(
        weir_graph::at_least("throttle: elements", elements, 1)
            .or_else(|| weir_graph::positive("throttle: per", per)),
    )
}

struct Throttle<T> {
    elements: usize,
    per: Duration,
    burst: usize,
    mode: ThrottleMode,
    _t: PhantomData<fn() -> T>,
}

/// Akka's token bucket in nanoseconds: tokens arrive at exact multiples of `between` after the
/// last registered arrival, up to `capacity`; a cost it cannot pay is paid by the next arrivals
/// and the caller waits the returned delay.
#[derive(Debug)]
struct TokenBucket {
    capacity: i128,
    between: i128,
    tokens: i128,
    last: i128,
}

impl TokenBucket {
    fn new(capacity: usize, between: u128, now: Duration) -> Self {
        Self {
            capacity: capacity as i128,
            between: between as i128,
            tokens: capacity as i128,
            last: now.as_nanos() as i128,
        }
    }

    /// The tokens in the bucket at `now`, without taking any.
    fn available(&self, now: Duration) -> i128 {
        let elapsed = now.as_nanos() as i128 - self.last;
        let arrived = if elapsed >= self.between {
            elapsed / self.between
        } else {
            0
        };
        (self.tokens + arrived).min(self.capacity)
    }

    /// Takes `cost` tokens at `now`; the delay until they are paid for (zero: at once).
    fn offer(&mut self, cost: i128, now: Duration) -> Duration {
        let now = now.as_nanos() as i128;
        let elapsed = now - self.last;
        let arrived = if elapsed >= self.between {
            let n = elapsed / self.between;
            self.last += n * self.between;
            n
        } else {
            0
        };
        self.tokens = (self.tokens + arrived).min(self.capacity);
        if cost <= self.tokens {
            self.tokens -= cost;
            return Duration::ZERO;
        }
        let remaining = cost - self.tokens;
        let delay = remaining * self.between - (now - self.last);
        self.tokens = 0;
        self.last = now + delay;
        Duration::from_nanos(u64::try_from(delay.max(0)).unwrap_or(u64::MAX))
    }
}

impl<T> Throttle<T> {
    fn rate_exceeded(&self) -> StageError {
        StageError::from_boxed(
            ErrorKind::User,
            Box::new(RateExceeded {
                elements: self.elements,
                per: self.per,
                burst: self.burst,
            }),
        )
    }
}

impl<T: Send + 'static> AsyncLogic for Throttle<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let between = match self.per.as_nanos().checked_div(self.elements as u128) {
                Some(b) if b > 0 => b,
                _ => {
                    return Err(StageError::user(format!(
                        "throttle: {} elements per {:?} is not a rate (`elements` and `per` must be \
                         positive, at most one element per nanosecond)",
                        self.elements, self.per
                    )));
                }
            };
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<T>(0)?;
            let clock = io.clock;
            let max_rows = io.batch_size.max(1);
            let mut bucket = TokenBucket::new(self.burst, between, clock.now());
            let mut held: VecDeque<T> = VecDeque::new();
            loop {
                let mut rows = Vec::new();
                // Elements the consumer asked for and has not been sent yet.
                let mut asked = 0usize;
                while let Some(x) = held.pop_front() {
                    if asked == 0 {
                        if send_rows(&mut output, std::mem::take(&mut rows))
                            .await
                            .is_err()
                        {
                            return Ok(());
                        }
                        let Ok(d) = output.demand().await else {
                            return Ok(());
                        };
                        asked = d.clamp(1, max_rows);
                    }
                    asked -= 1;
                    let wait = bucket.offer(1, clock.now());
                    if !wait.is_zero() {
                        if self.mode == ThrottleMode::Enforcing {
                            let _ = send_rows(&mut output, rows).await;
                            return Err(self.rate_exceeded());
                        }
                        if send_rows(&mut output, std::mem::take(&mut rows))
                            .await
                            .is_err()
                        {
                            return Ok(());
                        }
                        let at = clock.now().saturating_add(wait);
                        if let Either::Right(()) =
                            race(clock.sleep_until(at), output.closed()).await
                        {
                            return Ok(());
                        }
                    }
                    rows.push(x);
                }
                if send_rows(&mut output, rows).await.is_err() {
                    return Ok(());
                }
                // Only what the bucket pays for now (at least one element, held until its
                // token): rows and a barrier behind them stay upstream meanwhile.
                let paid = bucket.available(clock.now()).max(1);
                let want = usize::try_from(paid).unwrap_or(usize::MAX).min(max_rows);
                match recv_up_to_or_closed(&mut input, &mut output, want).await {
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

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn bucket_follows_akka() {
        // 2 per second: a token every 500 ms; capacity 1, full at start.
        let mut b = TokenBucket::new(1, 500_000_000, Duration::ZERO);
        assert_eq!(b.offer(1, Duration::ZERO), Duration::ZERO);
        assert_eq!(b.offer(1, Duration::ZERO), 500 * MS);
        // The next token after the one paid for arrives at 1000 ms.
        assert_eq!(b.offer(1, 500 * MS), 500 * MS);
        // Idle until 3000 ms: the bucket refills to its capacity, not beyond.
        assert_eq!(b.offer(1, 3000 * MS), Duration::ZERO);
        assert_eq!(b.offer(1, 3000 * MS), 500 * MS);
    }

    #[test]
    fn an_empty_bucket_delays_even_the_first_element() {
        let mut b = TokenBucket::new(0, 100_000_000, Duration::ZERO);
        assert_eq!(b.offer(1, Duration::ZERO), 100 * MS);
        assert_eq!(b.offer(1, 100 * MS), 100 * MS);
        // Arriving late, 50 ms after the last token: only the rest of the period is waited.
        assert_eq!(b.offer(1, 250 * MS), 50 * MS);
    }

    #[test]
    fn available_counts_refilled_tokens_without_taking_them() {
        let mut b = TokenBucket::new(3, 100_000_000, Duration::ZERO);
        assert_eq!(b.available(Duration::ZERO), 3);
        assert_eq!(b.offer(3, Duration::ZERO), Duration::ZERO);
        assert_eq!(b.available(99 * MS), 0);
        assert_eq!(b.available(250 * MS), 2);
        // Never beyond the capacity, and looking takes nothing.
        assert_eq!(b.available(10_000 * MS), 3);
        assert_eq!(b.available(10_000 * MS), 3);
        assert_eq!(b.offer(3, 10_000 * MS), Duration::ZERO);
        assert_eq!(b.available(10_000 * MS), 0);
    }
}
