//! The reconcile engine: the host-side machinery every controller runs on. The host owns
//! the caches, queues, retries and leader election; a controller's logic is a
//! [`Reconciler`] (a Wasm component, through the plugin bridge).
//!
//! Layering: `engine` → [`crate::api::client::ApiClient`] → `api` → `store`. Controllers
//! read through the [informers](informer)' caches (no store round trip) and write through
//! the client, i.e. through the API's handlers, so admission, validation and optimistic
//! concurrency apply to them as to any client.
//!
//! - [`informer`] — one shared list+watch per resource type, an indexed cache, resync on
//!   410 without losing events, change subscriptions;
//! - [`queue`] — the work queue (dedupe, one worker per key, delays, per-key backoff);
//! - [`controller`] — the runner: specs, mapping of watched changes to primary keys,
//!   workers;
//! - [`leader`] — leader election over a `coordination.k8s.io/v1` Lease: two servers
//!   sharing a store never run the same controller at once;
//! - [`metrics`] — queue depth, reconciles, errors, requeues and latency per controller.
//!
//! ```no_run
//! # async fn demo(api: std::sync::Arc<tugboat::api::Api>, r: std::sync::Arc<dyn tugboat::engine::Reconciler>) {
//! use std::sync::Arc;
//! use tugboat::api::client::LocalClient;
//! use tugboat::engine::{ControllerSpec, Engine, EngineConfig, MapRule, WatchSpec};
//! let engine = Engine::new(
//!     Arc::new(LocalClient::new(api, "tugboat-controller-manager")),
//!     EngineConfig::default(),
//! );
//! let spec = ControllerSpec::new("replicaset", "apps/v1", "ReplicaSet")
//!     .watch(WatchSpec::new("v1", "Pod", MapRule::Owner));
//! let handle = engine.run_controller(spec, r);
//! // … later
//! handle.shutdown().await;
//! engine.shutdown().await;
//! # }
//! ```

pub mod controller;
pub mod informer;
pub mod leader;
pub mod metrics;
pub mod plugins;
pub mod queue;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use controller::{
    Action, ControllerHandle, ControllerSpec, MapRule, ObjectKey, Reconciler, WatchSpec,
};
pub use informer::{Change, ChangeKind, Informer, InformerConfig};
pub use leader::{LeaderConfig, LeaderElector};
pub use metrics::ControllerMetricsSnapshot;
pub use queue::{Backoff, WorkQueue};

use crate::api::client::{ApiClient, ApiResource};
use controller::{ControllerShared, Runner, Watched};

/// Tunables of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The lease, this engine's identity in it, and the election's timings.
    pub leader: LeaderConfig,
    /// Workers of a controller whose spec says 0.
    pub default_workers: usize,
    /// Per-key backoff of failed reconciles.
    pub backoff: Backoff,
    /// Retry timing of the informers' list/watch.
    pub informer: InformerConfig,
}

impl Default for EngineConfig {
    /// client-go's defaults, an identity unique to this process, 2 workers.
    fn default() -> Self {
        EngineConfig {
            leader: LeaderConfig::new(default_identity()),
            default_workers: 2,
            backoff: Backoff::default(),
            informer: InformerConfig::default(),
        }
    }
}

/// `<hostname>_<uuid>`: unique per process, readable in the Lease.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tugboat".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// The engine of one server: shared informers, controllers, the leader elector.
pub struct Engine {
    client: Arc<dyn ApiClient>,
    config: EngineConfig,
    informers: Mutex<HashMap<ApiResource, Arc<Informer>>>,
    controllers: Mutex<Vec<Arc<ControllerShared>>>,
    leader: Arc<LeaderElector>,
    elector_task: Mutex<Option<JoinHandle<()>>>,
}

impl Engine {
    /// An engine over `client`; it starts campaigning for the lease at once. Needs a tokio
    /// runtime.
    pub fn new(client: Arc<dyn ApiClient>, config: EngineConfig) -> Engine {
        let leader = LeaderElector::new(client.clone(), config.leader.clone());
        let task = tokio::spawn({
            let leader = leader.clone();
            async move { leader.run().await }
        });
        Engine {
            client,
            config,
            informers: Mutex::new(HashMap::new()),
            controllers: Mutex::new(Vec::new()),
            leader,
            elector_task: Mutex::new(Some(task)),
        }
    }

    /// This engine's identity in the lease.
    pub fn identity(&self) -> &str {
        self.leader.identity()
    }

    /// The client controllers write through.
    pub fn client(&self) -> &Arc<dyn ApiClient> {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The leader elector.
    pub fn leader(&self) -> &Arc<LeaderElector> {
        &self.leader
    }

    /// Whether this engine leads (its controllers' workers run).
    pub fn is_leader(&self) -> bool {
        self.leader.is_leader()
    }

    /// Leadership changes.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    /// The shared informer of `api_version`/`kind` (started on first use; the same one
    /// every time). Name the kind as the API does (`Pod`, not `pods`).
    pub fn informer(&self, api_version: &str, kind: &str) -> Arc<Informer> {
        let resource = ApiResource::new(api_version, kind);
        let informer = self
            .informers
            .lock()
            .entry(resource.clone())
            .or_insert_with(|| Informer::new(self.client.clone(), resource, self.config.informer))
            .clone();
        informer.start();
        informer
    }

    /// Run a controller: its workers run while this engine leads, until the handle is
    /// stopped or dropped. An invalid spec is logged and the controller does nothing.
    pub fn run_controller(
        &self,
        spec: ControllerSpec,
        reconciler: Arc<dyn Reconciler>,
    ) -> ControllerHandle {
        let shared = Arc::new(ControllerShared {
            name: spec.name.clone(),
            queue: Arc::new(WorkQueue::new(self.config.backoff)),
            metrics: Default::default(),
            active: AtomicBool::new(false),
            stop: watch::Sender::new(false),
            finished: watch::Sender::new(false),
        });
        {
            let mut controllers = self.controllers.lock();
            controllers.retain(|c| !c.is_finished());
            controllers.push(shared.clone());
        }
        if let Err(e) = spec.validate() {
            tracing::error!(controller = %spec.name, error = %e, "invalid controller spec: not running it");
            shared.queue.shutdown();
            shared.finished.send_replace(true);
            return ControllerHandle { shared, task: None };
        }
        let primaries = spec
            .primary_kinds()
            .map(|(av, kind)| self.informer(av, kind))
            .collect();
        let watched = spec
            .watches
            .iter()
            .map(|w| Watched {
                spec: w.clone(),
                informer: self.informer(&w.api_version, &w.kind),
            })
            .collect();
        let workers = if spec.workers == 0 {
            self.config.default_workers
        } else {
            spec.workers
        };
        let runner = Runner {
            spec,
            shared: shared.clone(),
            primaries,
            watched,
            reconciler,
            leader: self.leader.subscribe(),
            workers,
        };
        let task = tokio::spawn(runner.run());
        ControllerHandle {
            shared,
            task: Some(task),
        }
    }

    /// The metrics of every running controller, by name.
    pub fn metrics(&self) -> Vec<ControllerMetricsSnapshot> {
        let mut controllers = self.controllers.lock();
        controllers.retain(|c| !c.is_finished());
        let mut out: Vec<_> = controllers.iter().map(|c| c.snapshot()).collect();
        out.sort_by(|a, b| a.controller.cmp(&b.controller));
        out
    }

    /// Stop everything: the controllers (waiting for their workers), then the election
    /// (giving up the lease, so another server takes over at once), then the informers.
    pub async fn shutdown(&self) {
        let controllers: Vec<_> = self.controllers.lock().drain(..).collect();
        for c in &controllers {
            c.stop.send_replace(true);
        }
        for c in &controllers {
            c.wait_finished().await;
        }
        let task = self.elector_task.lock().take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
        if let Err(e) = self.leader.release().await {
            tracing::warn!(error = %e, "releasing the leader lease");
        }
        self.leader.close();
        for inf in self.informers.lock().values() {
            inf.stop();
        }
    }
}

impl Drop for Engine {
    /// Like a crash for the others: workers stop, the lease is not released (it expires).
    fn drop(&mut self) {
        if let Some(t) = self.elector_task.lock().take() {
            t.abort();
        }
        self.leader.close();
        for c in self.controllers.lock().iter() {
            c.stop.send_replace(true);
        }
        for inf in self.informers.lock().values() {
            inf.stop();
        }
    }
}
