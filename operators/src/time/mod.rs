//! Time and rate operators: `throttle`, `delay`, `grouped_within`, `batch`/`conflate`, `expand`,
//! `buffer`, `keep_alive`, `initial_delay` and the timeouts. All run as asynchronous stages and read time from the run's clock
//! (virtual in tests). Event time: `assign_timestamps` and watermark strategies ([`EventTimeOps`]).

mod buffer;
mod conflate;
mod delay;
mod event_time;
mod expand;
mod grouped_within;
pub(crate) mod held;
mod initial_delay;
mod keep_alive;
mod throttle;
mod timeouts;
pub(crate) mod util;

pub use buffer::buffer;
pub use conflate::{batch, conflate, conflate_with_seed};
pub use delay::{DEFAULT_DELAY_CAPACITY, delay, delay_with_capacity};
pub use event_time::{
    BoundedOutOfOrderness, EventTimeOps, Timestamped, WatermarkGenerator, WatermarkStrategy,
    assign_timestamps,
};
pub use expand::expand;
pub use grouped_within::grouped_within;
pub use initial_delay::initial_delay;
pub use keep_alive::keep_alive;
pub use throttle::{RateExceeded, ThrottleMode, throttle, throttle_with_mode};
pub use timeouts::{completion_timeout, idle_timeout, initial_timeout};

use crate::Via;
use crate::source::OverflowStrategy;
use std::time::Duration;

/// Time and rate operators on every [`Source`](weir_graph::Source) and [`Flow`](weir_graph::Flow).
pub trait TimeOps: Via {
    /// Groups of up to `n` elements, emitted early after `within` (see [`grouped_within()`]).
    fn grouped_within(self, n: usize, within: Duration) -> Self::Next<Vec<Self::Out>> {
        self.via_flow(grouped_within(n, within))
    }

    /// Aggregates up to `max` elements while downstream is backpressured (see [`batch()`]).
    fn batch<S, Seed, Agg>(self, max: usize, seed: Seed, aggregate: Agg) -> Self::Next<S>
    where
        S: Send + 'static,
        Seed: FnMut(Self::Out) -> S + Clone + Send + Sync + 'static,
        Agg: FnMut(S, Self::Out) -> S + Clone + Send + Sync + 'static,
    {
        self.via_flow(batch(max, seed, aggregate))
    }

    /// Combines elements while downstream is backpressured (see [`conflate()`]).
    fn conflate<F>(self, f: F) -> Self::Next<Self::Out>
    where
        F: FnMut(Self::Out, Self::Out) -> Self::Out + Clone + Send + Sync + 'static,
    {
        self.via_flow(conflate(f))
    }

    /// Aggregates into a seeded value while downstream is backpressured (see [`conflate_with_seed()`]).
    fn conflate_with_seed<S, Seed, Agg>(self, seed: Seed, aggregate: Agg) -> Self::Next<S>
    where
        S: Send + 'static,
        Seed: FnMut(Self::Out) -> S + Clone + Send + Sync + 'static,
        Agg: FnMut(S, Self::Out) -> S + Clone + Send + Sync + 'static,
    {
        self.via_flow(conflate_with_seed(seed, aggregate))
    }

    /// Extrapolates from the last element while downstream is faster (see [`expand()`]).
    fn expand<U, I, F>(self, f: F) -> Self::Next<U>
    where
        U: Send + 'static,
        I: Iterator<Item = U> + Send + 'static,
        F: FnMut(Self::Out) -> I + Clone + Send + Sync + 'static,
    {
        self.via_flow(expand(f))
    }

    /// A bounded buffer with an overflow strategy (see [`buffer()`]).
    fn buffer(self, size: usize, strategy: OverflowStrategy) -> Self::Next<Self::Out> {
        self.via_flow(buffer(size, strategy))
    }

    /// Limits the rate to `elements` per `per` with bursts of `burst` (see [`throttle()`]).
    fn throttle(self, elements: usize, per: Duration, burst: usize) -> Self::Next<Self::Out> {
        self.via_flow(throttle(elements, per, burst))
    }

    /// Like [`TimeOps::throttle`] in the given mode (see [`throttle_with_mode()`]).
    fn throttle_with_mode(
        self,
        elements: usize,
        per: Duration,
        burst: usize,
        mode: ThrottleMode,
    ) -> Self::Next<Self::Out> {
        self.via_flow(throttle_with_mode(elements, per, burst, mode))
    }

    /// Injects `inject()` after `max_idle` without an element (see [`keep_alive()`]).
    fn keep_alive<F>(self, max_idle: Duration, inject: F) -> Self::Next<Self::Out>
    where
        F: FnMut() -> Self::Out + Clone + Send + Sync + 'static,
    {
        self.via_flow(keep_alive(max_idle, inject))
    }

    /// Emits nothing before `delay` after the start (see [`initial_delay()`]).
    fn initial_delay(self, delay: Duration) -> Self::Next<Self::Out> {
        self.via_flow(initial_delay(delay))
    }

    /// Emits every element `by` after it arrived (see [`delay()`]).
    fn delay(self, by: Duration) -> Self::Next<Self::Out> {
        self.via_flow(delay(by))
    }

    /// Like [`TimeOps::delay`] holding at most `capacity` elements (see [`delay_with_capacity()`]).
    fn delay_with_capacity(self, by: Duration, capacity: usize) -> Self::Next<Self::Out> {
        self.via_flow(delay_with_capacity(by, capacity))
    }

    /// Fails when no element passes for `timeout` (see [`idle_timeout()`]).
    fn idle_timeout(self, timeout: Duration) -> Self::Next<Self::Out> {
        self.via_flow(idle_timeout(timeout))
    }

    /// Fails when the stream has not completed within `timeout` (see [`completion_timeout()`]).
    fn completion_timeout(self, timeout: Duration) -> Self::Next<Self::Out> {
        self.via_flow(completion_timeout(timeout))
    }

    /// Fails when the first element has not arrived within `timeout` (see [`initial_timeout()`]).
    fn initial_timeout(self, timeout: Duration) -> Self::Next<Self::Out> {
        self.via_flow(initial_timeout(timeout))
    }
}

impl<S: Via> TimeOps for S {}
