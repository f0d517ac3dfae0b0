//! Leader election over a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`
//! does it, so that of several servers sharing one store exactly one runs the controllers.
//!
//! - A candidate reads the Lease. If nobody holds it (missing, or `holderIdentity` empty
//!   after a release), or its holder has not renewed it within `leaseDurationSeconds` **as
//!   observed locally** (the time this candidate last saw the record change: no clock skew
//!   between servers matters), the candidate writes itself in as holder (`acquireTime`,
//!   `renewTime`, `leaseTransitions + 1`) with optimistic concurrency on the Lease's
//!   resourceVersion: of two candidates, one wins and the other gets a conflict.
//! - The leader renews (`renewTime`) every retry period. If it has not renewed for
//!   `renew_deadline` (shorter than the lease duration), or it sees another holder, it steps
//!   down at once — so it stops before anyone else can take over.
//! - [`LeaderElector::release`] clears `holderIdentity` on shutdown so that a successor need
//!   not wait for the lease to expire.
//!
//! Leadership is published on a `watch` channel ([`LeaderElector::subscribe`]); the engine
//! runs controller workers only while it says `true`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::client::{ApiClient, ApiResource, ClientError};

/// Where the lease is and how it is held.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// The Lease's namespace (`kube-system`).
    pub namespace: String,
    /// The Lease's name (`tugboat-controller-manager`).
    pub name: String,
    /// This candidate (unique per process).
    pub identity: String,
    /// How long a lease holds without renewal (client-go default 15 s; written to the Lease
    /// in whole seconds, rounded up).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down (10 s).
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews (2 s).
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// client-go's defaults (15 s / 10 s / 2 s) for the controller manager's lease.
    pub fn new(identity: impl Into<String>) -> Self {
        LeaderConfig {
            namespace: "kube-system".into(),
            name: "tugboat-controller-manager".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn lease_seconds(&self) -> i64 {
        let ms = self.lease_duration.as_millis().max(1);
        i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX)
    }
}

/// The fields of `Lease.spec` the election uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    pub holder_identity: String,
    pub lease_duration_seconds: i64,
    pub acquire_time: String,
    pub renew_time: String,
    pub lease_transitions: i64,
}

impl LeaseRecord {
    /// The record of a Lease object.
    pub fn of(lease: &Value) -> Self {
        let s = |f: &str| {
            lease
                .pointer(&format!("/spec/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let i = |f: &str| {
            lease
                .pointer(&format!("/spec/{f}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        LeaseRecord {
            holder_identity: s("holderIdentity"),
            lease_duration_seconds: i("leaseDurationSeconds"),
            acquire_time: s("acquireTime"),
            renew_time: s("renewTime"),
            lease_transitions: i("leaseTransitions"),
        }
    }

    fn to_spec(&self) -> Value {
        let mut spec = json!({
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.lease_transitions,
        });
        if !self.holder_identity.is_empty() {
            spec["holderIdentity"] = json!(self.holder_identity);
        }
        spec
    }
}

/// A Lease timestamp (`MicroTime`) for now.
fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn leases() -> ApiResource {
    ApiResource::new("coordination.k8s.io/v1", "Lease")
}

/// What this candidate last saw of the lease, and when.
struct Observed {
    record: Option<LeaseRecord>,
    at: Instant,
}

/// Why an attempt did not make (or keep) this candidate the leader.
#[derive(Debug)]
enum Attempt {
    /// Someone else holds a valid lease.
    HeldBy(String),
    /// The API failed (or another candidate won the race: a conflict).
    Failed(ClientError),
}

/// One candidate in the election (see the [module](self) docs).
pub struct LeaderElector {
    client: Arc<dyn ApiClient>,
    config: LeaderConfig,
    leading: watch::Sender<bool>,
    observed: Mutex<Observed>,
    /// Once set, this candidate never leads again.
    closed: AtomicBool,
}

impl LeaderElector {
    /// A candidate (not yet running: see [`LeaderElector::run`]).
    pub fn new(client: Arc<dyn ApiClient>, config: LeaderConfig) -> Arc<Self> {
        Arc::new(LeaderElector {
            client,
            config,
            leading: watch::Sender::new(false),
            observed: Mutex::new(Observed {
                record: None,
                at: Instant::now(),
            }),
            closed: AtomicBool::new(false),
        })
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// The configuration.
    pub fn config(&self) -> &LeaderConfig {
        &self.config
    }

    /// Whether this candidate leads now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Leadership changes (`true` while leading).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// The holder this candidate last saw (its own identity while leading).
    pub fn observed_holder(&self) -> Option<String> {
        self.observed
            .lock()
            .record
            .as_ref()
            .map(|r| r.holder_identity.clone())
    }

    fn set_leading(&self, leading: bool) {
        if leading && self.closed.load(Ordering::SeqCst) {
            return;
        }
        self.leading.send_if_modified(|l| {
            let changed = *l != leading;
            *l = leading;
            changed
        });
    }

    /// Stop leading now (workers stop), without touching the lease.
    pub fn step_down(&self) {
        self.set_leading(false);
    }

    /// Step down for good: this candidate never leads again (even if its loop is still
    /// running). The lease is not touched.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.set_leading(false);
    }

    /// client-go's `tryAcquireOrRenew`: one read and at most one write of the lease.
    async fn try_acquire_or_renew(&self) -> Result<(), Attempt> {
        let cfg = &self.config;
        let now = now_micro();
        let current = self
            .client
            .get(&leases(), Some(&cfg.namespace), &cfg.name)
            .await
            .map_err(Attempt::Failed)?;
        let Some(lease) = current else {
            let record = LeaseRecord {
                holder_identity: cfg.identity.clone(),
                lease_duration_seconds: cfg.lease_seconds(),
                acquire_time: now.clone(),
                renew_time: now,
                lease_transitions: 0,
            };
            let obj = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": record.to_spec(),
            });
            self.client
                .create(&leases(), Some(&cfg.namespace), obj)
                .await
                .map_err(Attempt::Failed)?;
            self.observe(record);
            return Ok(());
        };
        let old = LeaseRecord::of(&lease);
        let observed_at = self.observe(old.clone());
        let held_by_other = !old.holder_identity.is_empty() && old.holder_identity != cfg.identity;
        let valid_for = Duration::from_secs(u64::try_from(old.lease_duration_seconds).unwrap_or(0));
        if held_by_other && observed_at + valid_for > Instant::now() {
            return Err(Attempt::HeldBy(old.holder_identity));
        }
        let mut record = LeaseRecord {
            holder_identity: cfg.identity.clone(),
            lease_duration_seconds: cfg.lease_seconds(),
            acquire_time: old.acquire_time.clone(),
            renew_time: now.clone(),
            lease_transitions: old.lease_transitions,
        };
        if old.holder_identity != cfg.identity {
            record.acquire_time = now;
            record.lease_transitions = old.lease_transitions + 1;
        }
        let mut obj = lease;
        obj["spec"] = record.to_spec();
        // The resourceVersion read above is the precondition: a concurrent writer wins.
        self.client
            .update(&leases(), Some(&cfg.namespace), obj)
            .await
            .map_err(Attempt::Failed)?;
        self.observe(record);
        Ok(())
    }

    /// Note a record; returns when it was first seen as it is.
    fn observe(&self, record: LeaseRecord) -> Instant {
        let mut o = self.observed.lock();
        if o.record.as_ref() != Some(&record) {
            o.record = Some(record);
            o.at = Instant::now();
        }
        o.at
    }

    fn jittered(&self, d: Duration) -> Duration {
        use rand::Rng;
        d.mul_f64(1.0 + rand::rng().random_range(0.0..0.2))
    }

    /// Campaign, lead, and campaign again after losing the lease — until the task is
    /// aborted. Run it in a task of its own.
    pub async fn run(&self) {
        let cfg = &self.config;
        loop {
            // Acquire.
            loop {
                match self.try_acquire_or_renew().await {
                    Ok(()) => break,
                    Err(Attempt::HeldBy(holder)) => {
                        tracing::trace!(lease = %cfg.name, %holder, "leader election: lease held");
                    }
                    Err(Attempt::Failed(e)) => {
                        tracing::debug!(lease = %cfg.name, error = %e, "leader election: acquire failed");
                    }
                }
                tokio::time::sleep(self.jittered(cfg.retry_period)).await;
            }
            tracing::info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), identity = %cfg.identity, "became leader");
            self.set_leading(true);
            // Renew until the deadline passes without a renewal.
            let mut renewed = Instant::now();
            loop {
                tokio::time::sleep(cfg.retry_period).await;
                let deadline = renewed + cfg.renew_deadline;
                let attempt = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await;
                match attempt {
                    Ok(Ok(())) => renewed = Instant::now(),
                    Ok(Err(Attempt::HeldBy(holder))) => {
                        tracing::warn!(lease = %cfg.name, %holder, "leader election: the lease was taken over; stepping down");
                        break;
                    }
                    Ok(Err(Attempt::Failed(e))) => {
                        tracing::warn!(lease = %cfg.name, error = %e, "leader election: renewing failed");
                    }
                    Err(_) => {
                        tracing::warn!(lease = %cfg.name, "leader election: renewing timed out");
                    }
                }
                if Instant::now() >= renewed + cfg.renew_deadline {
                    tracing::warn!(lease = %cfg.name, deadline = ?cfg.renew_deadline, "leader election: failed to renew the lease in time; stepping down");
                    break;
                }
            }
            self.set_leading(false);
        }
    }

    /// Step down and, if this candidate holds the lease, give it up (clear
    /// `holderIdentity`) so that another takes over without waiting for it to expire.
    /// Stop the loop ([`LeaderElector::run`]) first.
    pub async fn release(&self) -> Result<(), ClientError> {
        let was_leading = self.is_leader();
        self.set_leading(false);
        if !was_leading {
            return Ok(());
        }
        let cfg = &self.config;
        let Some(mut lease) = self
            .client
            .get(&leases(), Some(&cfg.namespace), &cfg.name)
            .await?
        else {
            return Ok(());
        };
        let old = LeaseRecord::of(&lease);
        if old.holder_identity != cfg.identity {
            return Ok(());
        }
        let record = LeaseRecord {
            holder_identity: String::new(),
            lease_duration_seconds: 1,
            renew_time: now_micro(),
            ..old
        };
        lease["spec"] = record.to_spec();
        self.client
            .update(&leases(), Some(&cfg.namespace), lease)
            .await?;
        self.observe(record);
        tracing::info!(lease = %cfg.name, identity = %cfg.identity, "released the lease");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client::LocalClient;
    use crate::api::client::tests::{GatedClient, test_api};
    use crate::store::redb::RedbStoreConfig;

    fn fast(identity: &str) -> LeaderConfig {
        LeaderConfig {
            lease_duration: Duration::from_secs(1),
            renew_deadline: Duration::from_millis(600),
            retry_period: Duration::from_millis(100),
            ..LeaderConfig::new(identity)
        }
    }

    #[tokio::test]
    async fn one_leader_at_a_time_and_takeover_after_expiry_or_release() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let client: Arc<dyn ApiClient> = Arc::new(LocalClient::new(api, "leader-test"));
        let a = LeaderElector::new(client.clone(), fast("a"));
        let b = LeaderElector::new(client.clone(), fast("b"));
        let ta = tokio::spawn({
            let a = a.clone();
            async move { a.run().await }
        });
        let tb = tokio::spawn({
            let b = b.clone();
            async move { b.run().await }
        });
        let wait_leader = |e: Arc<LeaderElector>| async move {
            let mut rx = e.subscribe();
            tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| *l))
                .await
                .expect("became leader")
                .expect("elector alive");
        };
        // Exactly one wins, and keeps it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..20 {
            assert!(a.is_leader() ^ b.is_leader(), "one leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (leader, leader_task, other, other_task) = if a.is_leader() {
            (a.clone(), ta, b.clone(), tb)
        } else {
            (b.clone(), tb, a.clone(), ta)
        };
        let lease = client
            .get(&leases(), Some("kube-system"), "tugboat-controller-manager")
            .await
            .unwrap()
            .unwrap();
        let rec = LeaseRecord::of(&lease);
        assert_eq!(rec.holder_identity, leader.identity());
        assert_eq!(rec.lease_duration_seconds, 1);
        assert!(rec.renew_time.ends_with('Z') && rec.renew_time.contains('.'));
        let transitions = rec.lease_transitions;

        // The leader dies without releasing: the other takes over once the lease expires.
        leader_task.abort();
        leader.step_down();
        let t = Instant::now();
        wait_leader(other.clone()).await;
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        let rec = LeaseRecord::of(
            &client
                .get(&leases(), Some("kube-system"), "tugboat-controller-manager")
                .await
                .unwrap()
                .unwrap(),
        );
        assert_eq!(rec.holder_identity, other.identity());
        assert_eq!(rec.lease_transitions, transitions + 1);

        // A new candidate; the leader releases on shutdown: the takeover is quick.
        let c = LeaderElector::new(client.clone(), fast("c"));
        let tc = tokio::spawn({
            let c = c.clone();
            async move { c.run().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!c.is_leader());
        other_task.abort();
        other.release().await.unwrap();
        assert!(!other.is_leader());
        let t = Instant::now();
        wait_leader(c.clone()).await;
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
        tc.abort();
    }

    #[tokio::test]
    async fn a_leader_steps_down_when_another_holds_the_lease() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let client: Arc<dyn ApiClient> = Arc::new(LocalClient::new(api, "leader-test"));
        let a = LeaderElector::new(client.clone(), fast("a"));
        let ta = tokio::spawn({
            let a = a.clone();
            async move { a.run().await }
        });
        let mut rx = a.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| *l))
            .await
            .unwrap()
            .unwrap();
        // Someone else overwrites the lease (as another server would after a partition).
        let mut lease = client
            .get(&leases(), Some("kube-system"), "tugboat-controller-manager")
            .await
            .unwrap()
            .unwrap();
        lease["spec"]["holderIdentity"] = json!("intruder");
        lease["spec"]["renewTime"] = json!(now_micro());
        client
            .update(&leases(), Some("kube-system"), lease)
            .await
            .unwrap();
        let t = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| !*l))
            .await
            .unwrap()
            .unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(a.observed_holder().as_deref(), Some("intruder"));
        ta.abort();
    }

    #[tokio::test]
    async fn a_leader_that_cannot_renew_steps_down_at_the_renew_deadline() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let gated = GatedClient::new(LocalClient::new(api, "leader-test"));
        let a = LeaderElector::new(gated.clone(), fast("a"));
        let ta = tokio::spawn({
            let a = a.clone();
            async move { a.run().await }
        });
        let mut rx = a.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| *l))
            .await
            .unwrap()
            .unwrap();
        // The API becomes unreachable: the leader keeps trying until the renew deadline
        // (600 ms after its last renewal), then steps down — before the 1 s lease expires.
        tokio::time::sleep(Duration::from_millis(150)).await;
        gated.failing.store(true, Ordering::SeqCst);
        let t = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| !*l))
            .await
            .unwrap()
            .unwrap();
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1000),
            "{took:?}"
        );
        // Reachable again: it campaigns and (the lease still being its own) leads again.
        gated.failing.store(false, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| *l))
            .await
            .unwrap()
            .unwrap();
        ta.abort();
    }
}
