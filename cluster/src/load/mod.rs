//! Cluster metrics: each node's load (system CPU, load average per core, available memory) as
//! exponentially weighted moving averages, spread to every node as a replicated
//! last-writer-wins map, and the capacities an adaptive router weighs routees by.
//!
//! A [`ClusterMetrics`] node samples its machine every interval through a [`Sampler`]
//! ([`SystemSampler`] reads `/proc` on Linux), smooths each signal with an [`Ewma`] of a given
//! half-life, and writes the result under its node name into an `LWWMap<String, NodeLoad>`
//! replicated over the cluster transport (the `crdt` replicator, gossip at local
//! consistency). [`AdaptiveWeights`] turns the loads of the nodes a group router's routees live
//! on into weights for [`weir_operators::actor::Routing::weighted`]: a routee on an idle node
//! gets more messages than one on a busy node, in proportion to their capacities. Design in
//! `docs/architecture.md` ("Cluster metrics and adaptive routing").

mod sampler;
mod service;

pub use sampler::{RawLoad, Sampler, SystemSampler};
pub use service::{AdaptiveWeights, ClusterMetrics, DEFAULT_LOAD_EDGE_BASE, LOAD_KEY, LoadConfig};

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a node publishes of its load: smoothed signals in thousandths (so the replicated map
/// compares them exactly), `None` where the machine does not tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Busy share of the machine's CPU time, 0..=1000.
    pub cpu_permille: Option<u32>,
    /// One-minute load average per core, in thousandths (1000: one runnable task per core).
    pub load_per_core_permille: Option<u32>,
    /// Share of memory available, 0..=1000.
    pub mem_available_permille: Option<u32>,
    /// Cores the node's machine has.
    pub cores: u32,
    /// Samples the averages hold.
    pub samples: u64,
}

impl NodeLoad {
    /// What is left of the node, 0..=1: the mean of the capacities its signals give (1 - CPU
    /// busy share, 1 - load per core capped at 1, the available memory share); `None` when it
    /// reports none.
    pub fn capacity(&self) -> Option<f64> {
        let parts: Vec<f64> = [
            self.cpu_permille.map(|c| 1.0 - permille(c)),
            self.load_per_core_permille
                .map(|l| 1.0 - permille(l).min(1.0)),
            self.mem_available_permille.map(permille),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            return None;
        }
        Some((parts.iter().sum::<f64>() / parts.len() as f64).clamp(0.0, 1.0))
    }

    /// The node's routing weight: its capacity in hundredths, at least 1 (a saturated node
    /// still gets a trickle, so it is seen to recover), or `None` without a capacity.
    pub fn weight(&self) -> Option<u32> {
        self.capacity()
            .map(|c| ((c * 100.0).round() as u32).clamp(1, 100))
    }
}

fn permille(x: u32) -> f64 {
    f64::from(x.min(1000)) / 1000.0
}

/// `x` (0..=1, or for a load any non-negative number) in thousandths.
pub(crate) fn to_permille(x: f64) -> u32 {
    if !x.is_finite() || x <= 0.0 {
        return 0;
    }
    (x * 1000.0).round().min(f64::from(u32::MAX)) as u32
}

/// An exponentially weighted moving average whose weight of a sample halves every
/// `half_life` of samples taken every `interval`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ewma {
    alpha: f64,
    value: Option<f64>,
}

impl Ewma {
    /// An average of samples every `interval` in which a sample's weight halves after
    /// `half_life` (both positive; a zero `half_life` keeps only the last sample).
    pub fn new(half_life: Duration, interval: Duration) -> Self {
        let alpha = if half_life.is_zero() {
            1.0
        } else {
            1.0 - 0.5f64.powf(interval.as_secs_f64() / half_life.as_secs_f64())
        };
        Self {
            alpha: alpha.clamp(f64::MIN_POSITIVE, 1.0),
            value: None,
        }
    }

    /// The weight of a new sample.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Adds `x` (the first sample is the average) and returns the average.
    pub fn add(&mut self, x: f64) -> f64 {
        let v = match self.value {
            None => x,
            Some(v) => v + self.alpha * (x - v),
        };
        self.value = Some(v);
        v
    }

    /// The average, `None` before the first sample.
    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::{Ewma, NodeLoad};
    use std::time::Duration;

    #[test]
    fn an_ewma_moves_halfway_to_a_new_level_in_one_half_life() {
        let mut e = Ewma::new(Duration::from_secs(4), Duration::from_secs(1));
        assert_eq!(e.value(), None);
        assert_eq!(e.add(0.0), 0.0);
        let mut v = 0.0;
        for _ in 0..4 {
            v = e.add(1.0);
        }
        assert!((v - 0.5).abs() < 1e-12, "{v}");
        for _ in 0..4 {
            v = e.add(1.0);
        }
        assert!((v - 0.75).abs() < 1e-12, "{v}");
        let mut last = Ewma::new(Duration::ZERO, Duration::from_secs(1));
        last.add(3.0);
        assert_eq!(last.add(7.0), 7.0);
    }

    #[test]
    fn capacity_is_the_mean_of_what_the_node_reports() {
        let l = NodeLoad {
            cpu_permille: Some(800),
            load_per_core_permille: Some(1500),
            mem_available_permille: Some(600),
            cores: 4,
            samples: 3,
        };
        // (0.2 + 0.0 + 0.6) / 3
        assert!((l.capacity().unwrap() - 0.8 / 3.0).abs() < 1e-12);
        assert_eq!(l.weight(), Some(27));
        let cpu_only = NodeLoad {
            cpu_permille: Some(250),
            ..NodeLoad::default()
        };
        assert_eq!(cpu_only.weight(), Some(75));
        let saturated = NodeLoad {
            cpu_permille: Some(1000),
            ..NodeLoad::default()
        };
        assert_eq!(saturated.weight(), Some(1));
        assert_eq!(NodeLoad::default().capacity(), None);
        assert_eq!(NodeLoad::default().weight(), None);
    }
}
