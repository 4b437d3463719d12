//! The restart count, its window and the exponential delay of the restart wrappers.

use super::RestartSettings;
use std::time::Duration;

/// Restart bookkeeping of one wrapper stage (times are the run clock's).
#[derive(Debug)]
pub(crate) struct Backoff {
    settings: RestartSettings,
    count: usize,
    reset_deadline: Duration,
    random: ahash::RandomState,
    draws: u64,
}

impl Backoff {
    /// Starts counting at `now` (the first incarnation starts then).
    pub(crate) fn new(settings: RestartSettings, now: Duration) -> Self {
        let reset_deadline = now + settings.max_restarts_within;
        Self {
            settings,
            count: 0,
            reset_deadline,
            random: ahash::RandomState::new(),
            draws: 0,
        }
    }

    /// Whether no restart is left (resetting the count first when the last incarnation
    /// started more than the window ago).
    pub(crate) fn exhausted(&mut self, now: Duration) -> bool {
        if now > self.reset_deadline {
            self.count = 0;
        }
        self.settings.max_restarts == Some(self.count)
    }

    /// The delay before the next restart; counts the restart.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let s = &self.settings;
        let exp = u32::try_from(self.count)
            .ok()
            .and_then(|k| 2u32.checked_pow(k))
            .and_then(|f| s.min_backoff.checked_mul(f))
            .map_or(s.max_backoff, |d| d.min(s.max_backoff));
        self.count += 1;
        if s.random_factor == 0.0 {
            return exp;
        }
        self.draws += 1;
        let r = (self.random.hash_one(self.draws) >> 11) as f64 / (1u64 << 53) as f64;
        Duration::try_from_secs_f64(exp.as_secs_f64() * (1.0 + r * s.random_factor))
            .unwrap_or(s.max_backoff)
    }

    /// A new incarnation started at `now`.
    pub(crate) fn started(&mut self, now: Duration) {
        self.reset_deadline = now + self.settings.max_restarts_within;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let s = RestartSettings::new(ms(100), ms(500), 0.0).unwrap();
        let mut b = Backoff::new(s, Duration::ZERO);
        let d: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(d, vec![ms(100), ms(200), ms(400), ms(500), ms(500)]);
    }

    #[test]
    fn random_factor_stretches_within_bounds() {
        let s = RestartSettings::new(ms(100), ms(100), 0.5).unwrap();
        let mut b = Backoff::new(s, Duration::ZERO);
        for _ in 0..50 {
            let d = b.next_delay();
            assert!(d >= ms(100) && d < ms(150), "{d:?}");
        }
    }

    #[test]
    fn count_resets_after_the_window() {
        let s = RestartSettings::new(ms(10), ms(10), 0.0)
            .unwrap()
            .with_max_restarts(1, ms(1000));
        let mut b = Backoff::new(s, Duration::ZERO);
        assert!(!b.exhausted(ms(5)));
        b.next_delay();
        b.started(ms(15));
        assert!(b.exhausted(ms(20)), "one restart used within the window");
        assert!(
            !b.exhausted(ms(1016)),
            "the incarnation outlived the window"
        );
    }

    #[test]
    fn bad_settings_are_rejected() {
        let e = RestartSettings::new(ms(10), ms(5), 0.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid stage 'restart': min_backoff 10ms is greater than max_backoff 5ms"
        );
        assert!(RestartSettings::new(ms(1), ms(5), -1.0).is_err());
        assert!(RestartSettings::new(ms(1), ms(5), f64::NAN).is_err());
    }
}
