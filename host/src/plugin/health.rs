//! Call accounting and the `Degraded` state.
//!
//! After `degrade_after_failures` consecutive failed calls a plugin is `Degraded`: calls
//! fail fast with [`PluginError::Degraded`] (the admission layer then applies the hook's
//! `failurePolicy`) for a back-off that starts at `backoff_initial` and doubles up to
//! `backoff_max`. When it has passed, one call goes through as a probe: success makes the
//! plugin `Healthy` again, failure starts the next, longer back-off.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;

use super::error::PluginError;
use super::manifest::Limits;

/// The health of a loaded plugin version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthState {
    Healthy,
    Degraded,
}

/// A snapshot of a plugin version's counters (for a `Plugin`'s status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginStats {
    pub state: HealthState,
    /// Calls that ran (fast failures while degraded not included).
    pub calls: u64,
    /// Calls that failed (the plugin's fault: timeouts, traps, panics, bad responses, ...).
    pub errors: u64,
    pub consecutive_failures: u32,
    /// Calls refused without running because the plugin was degraded.
    pub fast_failures: u64,
    /// Host API calls refused for lack of a capability.
    pub capability_violations: u64,
    /// Instances created (each runs `init`).
    pub instances_created: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    /// While degraded: how long until the next probe call.
    pub retry_in: Option<Duration>,
}

#[derive(Debug)]
struct Inner {
    calls: u64,
    errors: u64,
    consecutive_failures: u32,
    fast_failures: u64,
    capability_violations: u64,
    instances_created: u64,
    last_error: Option<String>,
    last_error_at: Option<SystemTime>,
    /// `Some` while degraded: when the next probe may run, and the current back-off.
    degraded: Option<(Instant, Duration)>,
    probe_in_flight: bool,
}

/// The counters and state machine of one plugin version.
#[derive(Debug)]
pub struct Health {
    plugin: Arc<str>,
    threshold: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    inner: Mutex<Inner>,
}

/// Permission to make one call; report its outcome with [`Health::record`]. Dropping it
/// unreported (a cancelled call) releases a probe slot without counting anything.
#[must_use]
pub struct CallPermit<'a> {
    health: &'a Health,
    probe: bool,
    done: bool,
}

impl Drop for CallPermit<'_> {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.health.inner.lock().probe_in_flight = false;
        }
    }
}

impl Health {
    pub fn new(plugin: Arc<str>, limits: &Limits) -> Self {
        Health {
            plugin,
            threshold: limits.degrade_after_failures.max(1),
            backoff_initial: limits.backoff_initial(),
            backoff_max: limits.backoff_max(),
            inner: Mutex::new(Inner {
                calls: 0,
                errors: 0,
                consecutive_failures: 0,
                fast_failures: 0,
                capability_violations: 0,
                instances_created: 0,
                last_error: None,
                last_error_at: None,
                degraded: None,
                probe_in_flight: false,
            }),
        }
    }

    /// Admits a call, or fails fast while degraded (letting one probe through once the
    /// back-off has passed).
    pub fn begin(&self) -> Result<CallPermit<'_>, PluginError> {
        let mut inner = self.inner.lock();
        let mut probe = false;
        if let Some((until, _)) = inner.degraded {
            let now = Instant::now();
            if now < until || inner.probe_in_flight {
                inner.fast_failures += 1;
                return Err(PluginError::Degraded {
                    plugin: self.plugin.clone(),
                    failures: inner.consecutive_failures,
                    retry_after: until.saturating_duration_since(now),
                    last_error: inner.last_error.clone().unwrap_or_default(),
                });
            }
            inner.probe_in_flight = true;
            probe = true;
        }
        Ok(CallPermit {
            health: self,
            probe,
            done: false,
        })
    }

    /// Records the outcome of a call admitted by [`Health::begin`].
    pub fn record(&self, mut permit: CallPermit<'_>, outcome: Result<(), &PluginError>) {
        permit.done = true;
        let mut inner = self.inner.lock();
        if permit.probe {
            inner.probe_in_flight = false;
        }
        inner.calls += 1;
        match outcome {
            Ok(()) => {
                inner.consecutive_failures = 0;
                if inner.degraded.take().is_some() {
                    tracing::info!(plugin = %self.plugin, "plugin recovered: probe call succeeded");
                }
            }
            Err(e) => {
                inner.errors += 1;
                inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
                inner.last_error = Some(e.to_string());
                inner.last_error_at = Some(SystemTime::now());
                let now = Instant::now();
                match inner.degraded {
                    Some((_, backoff)) => {
                        let backoff = (backoff * 2).min(self.backoff_max);
                        inner.degraded = Some((now + backoff, backoff));
                        tracing::warn!(plugin = %self.plugin, error = %e, ?backoff, "plugin still failing; backing off");
                    }
                    None if inner.consecutive_failures >= self.threshold => {
                        inner.degraded = Some((now + self.backoff_initial, self.backoff_initial));
                        tracing::warn!(
                            plugin = %self.plugin,
                            failures = inner.consecutive_failures,
                            error = %e,
                            backoff = ?self.backoff_initial,
                            "plugin degraded: calls fail fast until a probe succeeds"
                        );
                    }
                    None => {}
                }
            }
        }
    }

    pub fn count_instance(&self) {
        self.inner.lock().instances_created += 1;
    }

    pub fn count_capability_violation(&self) {
        self.inner.lock().capability_violations += 1;
    }

    pub fn stats(&self) -> PluginStats {
        let inner = self.inner.lock();
        PluginStats {
            state: if inner.degraded.is_some() {
                HealthState::Degraded
            } else {
                HealthState::Healthy
            },
            calls: inner.calls,
            errors: inner.errors,
            consecutive_failures: inner.consecutive_failures,
            fast_failures: inner.fast_failures,
            capability_violations: inner.capability_violations,
            instances_created: inner.instances_created,
            last_error: inner.last_error.clone(),
            last_error_at: inner.last_error_at,
            retry_in: inner
                .degraded
                .map(|(until, _)| until.saturating_duration_since(Instant::now())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> PluginError {
        PluginError::Trap {
            plugin: "p".into(),
            message: "boom".into(),
        }
    }

    #[test]
    fn degrades_backs_off_and_recovers() {
        let limits = Limits {
            degrade_after_failures: 2,
            backoff_initial_ms: 20,
            backoff_max_ms: 40,
            ..Limits::default()
        };
        let h = Health::new("p".into(), &limits);
        for _ in 0..2 {
            let p = h.begin().unwrap();
            h.record(p, Err(&err()));
        }
        assert_eq!(h.stats().state, HealthState::Degraded);
        assert!(matches!(h.begin(), Err(PluginError::Degraded { .. })));
        std::thread::sleep(Duration::from_millis(25));
        let probe = h.begin().unwrap();
        // Only one probe at a time.
        assert!(h.begin().is_err());
        h.record(probe, Err(&err()));
        let s = h.stats();
        assert_eq!(s.state, HealthState::Degraded);
        assert!(s.retry_in.unwrap() > Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(45));
        let probe = h.begin().unwrap();
        h.record(probe, Ok(()));
        let s = h.stats();
        assert_eq!(s.state, HealthState::Healthy);
        assert_eq!((s.calls, s.errors, s.fast_failures), (4, 3, 2));
    }
}
