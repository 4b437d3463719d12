//! Reading a machine's load: [`SystemSampler`] reads `/proc/stat`, `/proc/loadavg` and
//! `/proc/meminfo` on Linux (elsewhere it reports only the core count); tests and embedders
//! give any [`Sampler`] (a closure returning [`RawLoad`] is one).

/// One reading of a machine's load, not smoothed; `None` where it cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RawLoad {
    /// Busy share of the CPU time since the previous reading, 0..=1.
    pub cpu: Option<f64>,
    /// One-minute load average divided by the core count.
    pub load_per_core: Option<f64>,
    /// Available memory over total memory, 0..=1.
    pub mem_available: Option<f64>,
    /// The machine's cores.
    pub cores: u32,
}

/// Where a [`super::ClusterMetrics`] node reads its load each interval.
pub trait Sampler: Send + 'static {
    /// Reads the load now.
    fn sample(&mut self) -> RawLoad;
}

impl<F: FnMut() -> RawLoad + Send + 'static> Sampler for F {
    fn sample(&mut self) -> RawLoad {
        self()
    }
}

/// The machine's own load from `/proc` (Linux): system CPU busy share between readings, the
/// one-minute load average per core and `MemAvailable / MemTotal`.
#[derive(Debug, Default)]
pub struct SystemSampler {
    /// `(busy, total)` CPU ticks at the previous reading.
    last: Option<(u64, u64)>,
}

impl SystemSampler {
    /// A sampler with no previous reading (its first CPU share is `None`).
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sampler for SystemSampler {
    fn sample(&mut self) -> RawLoad {
        let cores = std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX));
        let ticks = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| cpu_ticks(&s));
        let cpu = match (self.last, ticks) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        if ticks.is_some() {
            self.last = ticks;
        }
        let load_per_core = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| load_average(&s))
            .map(|l| l / f64::from(cores.max(1)));
        let mem_available = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| mem_available(&s));
        RawLoad {
            cpu: cpu.map(|c| c.clamp(0.0, 1.0)),
            load_per_core,
            mem_available,
            cores,
        }
    }
}

/// `(busy, total)` ticks of the aggregate `cpu` line of `/proc/stat` (busy: all but idle and
/// iowait; guest time is already in user time).
fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The one-minute load average, the first field of `/proc/loadavg`.
fn load_average(s: &str) -> Option<f64> {
    s.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|l| l.is_finite() && *l >= 0.0)
}

/// `MemAvailable / MemTotal` from `/proc/meminfo`.
fn mem_available(s: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        s.lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
    };
    let total = field("MemTotal:")?;
    let avail = field("MemAvailable:")?;
    (total > 0.0).then(|| (avail / total).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::{Sampler, SystemSampler, cpu_ticks, load_average, mem_available};

    #[test]
    fn proc_files_are_read_as_the_kernel_writes_them() {
        let stat = "cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 50 2 25 400 20 0 0 0 0 0\nintr 1\n";
        assert_eq!(cpu_ticks(stat), Some((155, 1000)));
        assert_eq!(cpu_ticks("cpu0 1 2 3 4\n"), None);
        assert_eq!(cpu_ticks("cpu  x 1 2 3\n"), None);
        assert_eq!(load_average("1.50 0.80 0.40 2/345 6789\n"), Some(1.5));
        assert_eq!(load_average(""), None);
        let mem = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(mem_available(mem), Some(0.25));
        assert_eq!(mem_available("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), None);
    }

    #[test]
    fn the_system_sampler_reads_this_machine() {
        let mut s = SystemSampler::new();
        let first = s.sample();
        assert!(first.cores >= 1);
        assert_eq!(first.cpu, None, "no share before a second reading");
        if cfg!(target_os = "linux") {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let second = s.sample();
            let cpu = second.cpu.expect("a share between two readings");
            assert!((0.0..=1.0).contains(&cpu), "{cpu}");
            assert!(second.load_per_core.is_some_and(|l| l >= 0.0));
            assert!(second.mem_available.is_some_and(|m| m > 0.0 && m <= 1.0));
        }
    }
}
