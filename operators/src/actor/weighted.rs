//! Smooth weighted round robin (the way nginx balances upstreams): over any `sum(weights)`
//! consecutive picks with unchanged weights, index `i` is picked exactly `weights[i]` times,
//! interleaved rather than in runs. What [`super::Routing::weighted`] routes by.

use std::sync::Arc;

/// Where a weighted router reads its routees' weights: the weight of every routee, and a
/// generation that changes whenever the weights may have (the router reads them again then).
pub trait RouteeWeights: Send + Sync {
    /// Changes whenever [`RouteeWeights::weights`] may return something new.
    fn generation(&self) -> u64;
    /// The weight of each of `routees` routees (by position; missing entries weigh 0).
    fn weights(&self, routees: usize) -> Vec<u32>;
}

/// Fixed weights (generation 0).
impl RouteeWeights for Vec<u32> {
    fn generation(&self) -> u64 {
        0
    }
    fn weights(&self, routees: usize) -> Vec<u32> {
        (0..routees)
            .map(|i| self.get(i).copied().unwrap_or(0))
            .collect()
    }
}

/// Picks indices in proportion to integer weights; a zero weight is never picked unless every
/// weight is zero, when all are picked in turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    weights: Vec<u32>,
    current: Vec<i64>,
    total: i64,
}

impl WeightedRoundRobin {
    /// A picker over `weights` (one per index).
    pub fn new(weights: &[u32]) -> Self {
        let mut w = Self::default();
        w.set_weights(weights);
        w
    }

    /// Replaces the weights and starts a new cycle.
    pub fn set_weights(&mut self, weights: &[u32]) {
        // Every weight zero: all equal instead (nothing is left without a routee).
        let all_zero = weights.iter().all(|w| *w == 0);
        self.weights = weights
            .iter()
            .map(|w| if all_zero { 1 } else { *w })
            .collect();
        self.current = vec![0; weights.len()];
        self.total = self.weights.iter().map(|w| i64::from(*w)).sum();
    }

    /// The weights in use.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// The next index, or `None` without any.
    pub fn pick(&mut self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, w) in self.weights.iter().enumerate() {
            self.current[i] += i64::from(*w);
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b] -= self.total;
        Some(b)
    }
}

/// A router's weighted picker: the weights it read and the generation they came from.
#[derive(Clone)]
pub(super) struct WeightedPick {
    source: Arc<dyn RouteeWeights>,
    generation: Option<(u64, usize)>,
    rr: WeightedRoundRobin,
}

impl WeightedPick {
    pub(super) fn new(source: Arc<dyn RouteeWeights>) -> Self {
        Self {
            source,
            generation: None,
            rr: WeightedRoundRobin::default(),
        }
    }

    /// The routee of the next message among `n`, reading the weights again when their
    /// generation or the number of routees changed.
    pub(super) fn pick(&mut self, n: usize) -> usize {
        let g = (self.source.generation(), n);
        if self.generation != Some(g) {
            self.rr.set_weights(&self.source.weights(n));
            self.generation = Some(g);
        }
        self.rr.pick().unwrap_or(0).min(n.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::WeightedRoundRobin;
    use proptest::prelude::*;

    #[test]
    fn picks_interleave_in_proportion() {
        let mut w = WeightedRoundRobin::new(&[5, 1, 1]);
        let got: Vec<usize> = (0..7).filter_map(|_| w.pick()).collect();
        assert_eq!(got, vec![0, 0, 1, 0, 2, 0, 0]);
        let mut none = WeightedRoundRobin::new(&[]);
        assert_eq!(none.pick(), None);
        let mut zeros = WeightedRoundRobin::new(&[0, 0]);
        assert_eq!(
            (0..4).filter_map(|_| zeros.pick()).collect::<Vec<_>>(),
            vec![0, 1, 0, 1]
        );
        let mut one_zero = WeightedRoundRobin::new(&[0, 3]);
        assert_eq!(
            (0..3).filter_map(|_| one_zero.pick()).collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
    }

    proptest! {
        #[test]
        fn every_cycle_picks_each_index_its_weight(
            weights in proptest::collection::vec(0u32..20, 1..8),
            cycles in 1usize..4,
        ) {
            let mut w = WeightedRoundRobin::new(&weights);
            let used: Vec<u32> = w.weights().to_vec();
            let total: u32 = used.iter().sum();
            for _ in 0..cycles {
                let mut counts = vec![0u32; weights.len()];
                for _ in 0..total {
                    counts[w.pick().unwrap()] += 1;
                }
                prop_assert_eq!(&counts, &used);
            }
        }
    }
}
