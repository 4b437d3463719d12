//! How a parent decides about a failed child: one-for-one or all-for-one, a decider from the
//! error to a directive, a restart budget within a window, and an optional restart backoff.
//!
//! Semantics (Akka's classic supervision):
//! - A failure is an `Err` or a panic from a handler (or `on_terminated`), or a handler call
//!   over the actor's `Props::with_handler_time_limit` (a `Timeout` error naming the actor; the
//!   call's effects stand). The failing message is not retried.
//! - **Resume** keeps the instance and its state. **Stop** stops it (children first, then its
//!   `post_stop`; what is queued goes to dead letters; watchers are told). **Escalate** fails the
//!   parent with `escalated from child: <error>`, which its own parent decides about (past the
//!   root, the stage's `Supervision`).
//! - **Restart** makes a fresh instance from the props: the children stop (their `post_stop`
//!   runs), then `pre_restart` runs on the failed instance (state and stash still there), then
//!   `pre_start` on the new one, which re-creates children. Kept: the mailbox and what is queued,
//!   and the stashed messages, which go back in front of the queue in stash order. Reset: the
//!   state, behaviours (`become_`) and timers. `post_stop` is not called on a restart.
//! - The **budget** (`with_restart_budget(max, within)`) counts one child's restarts within a
//!   sliding window; the restart beyond it stops the child instead.
//! - The **backoff** (`with_backoff(min, max, random_factor)`) suspends the child (its messages
//!   wait, its children stop) for `min * 2^attempt` (at most `max`), stretched by up to
//!   `random_factor` (deterministic per actor slot); `with_reset_after(d)` starts the attempts
//!   over once the child ran `d` since its last restart.
//! - A failure in `pre_start` gets [`SupervisorStrategy::on_start_failure`] (default stop), not
//!   the decider; a restart from it runs on the stage's next loop (or after the backoff) and is
//!   counted by the budget. A panic in `post_stop` or `pre_restart` is logged; the stop or
//!   restart goes on.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use weir_graph::StageError;

/// What a parent does with a child that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorDirective {
    /// Keep the actor and its state; the failing message is dropped (to dead letters).
    Resume,
    /// Replace the actor with a fresh instance from its props (its children stop first).
    Restart,
    /// Stop the actor (and its children); watchers get a terminated notice.
    Stop,
    /// Fail the parent with the child's error (its own parent decides).
    Escalate,
}

/// Which children a directive applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the child that failed.
    OneForOne,
    /// Every child of the parent.
    AllForOne,
}

/// Restart delays growing from `min` by doubling up to `max`, each stretched by up to
/// `random_factor` (0.2 = up to 20% longer), so restarts of many actors spread out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first restart.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Up to this fraction of the delay is added at random.
    pub random_factor: f64,
}

impl Backoff {
    /// The delay before restart number `attempt` (0-based); `seed` picks the random part.
    pub fn delay(&self, attempt: u32, seed: u64) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32 << attempt.min(30))
            .min(self.max.max(self.min));
        let f = self.random_factor.clamp(0.0, 1.0);
        if f == 0.0 {
            return base;
        }
        let h = weir_graph::stable_hash_of(&(seed, attempt));
        let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(1.0 + f * unit)
    }
}

type Decider = Arc<dyn Fn(&StageError) -> ActorDirective + Send + Sync>;

/// A parent's supervision of its children.
#[derive(Clone)]
pub struct SupervisorStrategy {
    pub(crate) scope: Scope,
    decider: Decider,
    /// At most this many restarts of one child within the window; beyond it the child stops.
    pub(crate) budget: Option<(u32, Duration)>,
    pub(crate) backoff: Option<Backoff>,
    /// A child that ran this long since its last restart without failing starts its
    /// backoff over (its attempt count resets).
    pub(crate) reset_after: Option<Duration>,
    /// What a failure in a child's `pre_start` gets (the decider is not asked).
    pub(crate) start_failure: ActorDirective,
}

impl fmt::Debug for SupervisorStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorStrategy")
            .field("scope", &self.scope)
            .field("budget", &self.budget)
            .field("backoff", &self.backoff)
            .field("reset_after", &self.reset_after)
            .field("start_failure", &self.start_failure)
            .finish()
    }
}

impl Default for SupervisorStrategy {
    fn default() -> Self {
        Self::one_for_one()
    }
}

impl SupervisorStrategy {
    /// Restarts only the failed child, without limit (Akka's default).
    pub fn one_for_one() -> Self {
        Self {
            scope: Scope::OneForOne,
            decider: Arc::new(|_| ActorDirective::Restart),
            budget: None,
            backoff: None,
            reset_after: None,
            start_failure: ActorDirective::Stop,
        }
    }
    /// Applies the directive to every child when one fails.
    pub fn all_for_one() -> Self {
        Self {
            scope: Scope::AllForOne,
            ..Self::one_for_one()
        }
    }
    /// Always `directive`.
    pub fn with_directive(self, directive: ActorDirective) -> Self {
        self.with_decider(move |_| directive)
    }
    /// Decides with `decider`.
    pub fn with_decider(
        mut self,
        decider: impl Fn(&StageError) -> ActorDirective + Send + Sync + 'static,
    ) -> Self {
        self.decider = Arc::new(decider);
        self
    }
    /// At most `max` restarts of a child within `within`; the next failure stops it.
    pub fn with_restart_budget(mut self, max: u32, within: Duration) -> Self {
        self.budget = Some((max, within));
        self
    }
    /// Restarts after a growing delay; messages wait in the mailbox meanwhile.
    pub fn with_backoff(mut self, min: Duration, max: Duration, random_factor: f64) -> Self {
        self.backoff = Some(Backoff {
            min,
            max,
            random_factor,
        });
        self
    }
    /// Starts the backoff over (attempt 0, the `min` delay) for a child that ran `d` since its
    /// last restart without failing.
    pub fn with_reset_after(mut self, d: Duration) -> Self {
        self.reset_after = Some(d);
        self
    }
    /// What a failure in a child's `pre_start` gets (default `Stop`, as an initialization
    /// failure rarely heals by itself); a `Restart` here is counted by the budget and runs
    /// after the backoff delay (or at once on the next loop of the stage, never recursively).
    pub fn on_start_failure(mut self, directive: ActorDirective) -> Self {
        self.start_failure = directive;
        self
    }
    /// The directive for `error`.
    pub fn decide(&self, error: &StageError) -> ActorDirective {
        (self.decider)(error)
    }
}

/// The restarts of one actor, for its parent's budget and backoff.
#[derive(Debug, Default, Clone)]
pub(crate) struct RestartLog {
    at: VecDeque<Duration>,
    /// Restarts in a row (for the backoff), reset after a quiet `reset_after`.
    pub(crate) attempts: u32,
    /// When the actor last (re)started, on the run's clock.
    pub(crate) running_since: Duration,
}

impl RestartLog {
    /// Forgets the attempts in a row when the actor ran `reset_after` since its last start.
    pub(crate) fn reset_if_quiet(&mut self, now: Duration, reset_after: Option<Duration>) {
        if let Some(d) = reset_after
            && now.saturating_sub(self.running_since) >= d
        {
            self.attempts = 0;
        }
    }

    /// Records a restart at `now`; `false` when it exceeds `budget`.
    pub(crate) fn allow(&mut self, now: Duration, budget: Option<(u32, Duration)>) -> bool {
        self.attempts = self.attempts.saturating_add(1);
        let Some((max, within)) = budget else {
            return true;
        };
        while self
            .at
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > within)
        {
            self.at.pop_front();
        }
        if self.at.len() >= max as usize {
            return false;
        }
        self.at.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_restarts_within_the_window() {
        let mut log = RestartLog::default();
        let b = Some((2, Duration::from_secs(10)));
        let s = Duration::from_secs;
        assert!(log.allow(s(0), b));
        assert!(log.allow(s(1), b));
        assert!(!log.allow(s(2), b));
        // The first restart left the window.
        assert!(log.allow(s(11), b));
        assert!(!log.allow(s(11), b));
        assert!(RestartLog::default().allow(s(0), None));
    }

    #[test]
    fn attempts_reset_after_a_quiet_period() {
        let s = Duration::from_secs;
        let mut log = RestartLog::default();
        assert!(log.allow(s(0), None));
        assert!(log.allow(s(1), None));
        assert_eq!(log.attempts, 2);
        log.running_since = s(1);
        log.reset_if_quiet(s(5), Some(s(5)));
        assert_eq!(log.attempts, 2, "ran 4 s, less than 5 s");
        log.reset_if_quiet(s(6), Some(s(5)));
        assert_eq!(log.attempts, 0);
        log.attempts = 3;
        log.reset_if_quiet(s(100), None);
        assert_eq!(log.attempts, 3, "no reset without reset_after");
    }

    #[test]
    fn backoff_doubles_up_to_max_with_bounded_jitter() {
        let ms = Duration::from_millis;
        let b = Backoff {
            min: ms(100),
            max: ms(1000),
            random_factor: 0.0,
        };
        let delays: Vec<_> = (0..6).map(|a| b.delay(a, 7)).collect();
        assert_eq!(
            delays,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        let j = Backoff {
            random_factor: 0.5,
            ..b
        };
        for a in 0..6 {
            let d = j.delay(a, 42);
            assert!(
                d >= delays[a as usize] && d <= delays[a as usize].mul_f64(1.5),
                "{d:?}"
            );
            assert_eq!(d, j.delay(a, 42), "deterministic for one seed");
        }
    }
}
