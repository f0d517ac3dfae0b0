//! Per-controller metrics: queue depth, reconciles, errors, requeues and a latency
//! histogram (Prometheus-style buckets, quantiles estimated as `histogram_quantile` does).
//! Kept in memory now; `/metrics` will expose them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// The upper bounds of the latency buckets, in seconds (an implicit `+Inf` follows).
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A cumulative-free latency histogram over [`LATENCY_BUCKETS`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (the last one is `+Inf`).
    pub counts: [u64; LATENCY_BUCKETS.len() + 1],
    pub count: u64,
    pub sum: Duration,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i] += 1;
        self.count += 1;
        self.sum += d;
    }

    /// The `q`-quantile (0..=1), interpolated linearly inside its bucket; `None` without
    /// observations. Beyond the last finite bucket it is that bucket's bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut cumulative = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            let before = cumulative;
            cumulative += n;
            if n > 0 && cumulative as f64 >= rank {
                let Some(&upper) = LATENCY_BUCKETS.get(i) else {
                    return Some(Duration::from_secs_f64(LATENCY_BUCKETS[i - 1]));
                };
                let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
                let within = ((rank - before as f64) / n as f64).clamp(0.0, 1.0);
                return Some(Duration::from_secs_f64(lower + (upper - lower) * within));
            }
        }
        Some(Duration::from_secs_f64(
            LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1],
        ))
    }
}

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `Ok(Action::Done)`.
    Done,
    /// `Ok(Action::RequeueAfter(_))`.
    Requeued,
    /// An error (requeued with backoff).
    Failed,
}

/// The live counters of one controller (shared by its workers).
#[derive(Debug, Default)]
pub struct ControllerMetrics {
    reconciles: AtomicU64,
    errors: AtomicU64,
    requeues: AtomicU64,
    latency: Mutex<Histogram>,
}

impl ControllerMetrics {
    /// One reconcile finished after `took`.
    pub fn record(&self, took: Duration, outcome: Outcome) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Requeued => {
                self.requeues.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Done => {}
            Outcome::Failed => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency.lock().observe(took);
    }

    /// The counters now, with the queue's depths.
    pub fn snapshot(
        &self,
        controller: &str,
        queue_depth: usize,
        waiting: usize,
        active: bool,
    ) -> ControllerMetricsSnapshot {
        let latency = self.latency.lock().clone();
        ControllerMetricsSnapshot {
            controller: controller.to_string(),
            active,
            queue_depth,
            waiting,
            reconciles: self.reconciles.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            requeues: self.requeues.load(Ordering::Relaxed),
            latency_p50: latency.quantile(0.5),
            latency_p99: latency.quantile(0.99),
            latency,
        }
    }
}

/// What one controller's metrics read at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerMetricsSnapshot {
    /// The controller's name.
    pub controller: String,
    /// Whether its workers run (this engine leads).
    pub active: bool,
    /// Keys ready to be reconciled.
    pub queue_depth: usize,
    /// Keys waiting for a requeue delay or backoff.
    pub waiting: usize,
    /// Reconciles finished (successes and errors).
    pub reconciles: u64,
    /// Reconciles that failed (requeued with backoff).
    pub errors: u64,
    /// Reconciles that asked to be requeued after a delay.
    pub requeues: u64,
    /// Latency of reconciles.
    pub latency: Histogram,
    pub latency_p50: Option<Duration>,
    pub latency_p99: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..50 {
            h.observe(Duration::from_micros(500)); // ≤ 1 ms
        }
        for _ in 0..50 {
            h.observe(Duration::from_millis(40)); // 25..50 ms
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!(p50 <= Duration::from_millis(1), "{p50:?}");
        let p99 = h.quantile(0.99).unwrap();
        assert!(
            p99 > Duration::from_millis(25) && p99 <= Duration::from_millis(50),
            "{p99:?}"
        );
        h.observe(Duration::from_secs(3600));
        assert_eq!(h.quantile(1.0), Some(Duration::from_secs(60)));
        assert_eq!(h.count, 101);
    }

    #[test]
    fn counters_snapshot() {
        let m = ControllerMetrics::default();
        m.record(Duration::from_millis(2), Outcome::Done);
        m.record(Duration::from_millis(2), Outcome::Requeued);
        m.record(Duration::from_millis(2), Outcome::Failed);
        let s = m.snapshot("c", 4, 1, true);
        assert_eq!((s.reconciles, s.errors, s.requeues), (3, 1, 1));
        assert_eq!((s.queue_depth, s.waiting), (4, 1));
        assert!(s.latency_p50.is_some());
    }
}
