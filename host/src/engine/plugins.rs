//! Controller plugins on the engine: the bridge between Wasm controllers
//! ([`ControllerPlugin`]) and the engine's queues and caches.
//!
//! [`PluginControllers`] implements the API layer's [`ControllerRunner`]: the plugin loop
//! hands it each loaded version of a controller plugin; it asks the version what it is for
//! (`init`), and runs it as an engine controller. A new version with the same declaration
//! is swapped in place — reconciles in flight finish on the old version, queued keys go to
//! the new one, nothing is lost; a changed declaration restarts the controller (its first
//! pass enqueues every primary object, so again nothing is lost).
//!
//! A controller's host calls are served by [`ControllerHost`]: reads of the kinds it
//! declared come from the engine's informer caches, with read-your-writes (a read waits
//! until the cache has caught up with the controller's own earlier writes of that kind);
//! reads of other kinds and all writes go through the API server ([`ApiHost`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::Value;

use super::Engine;
use super::controller::{
    Action, ControllerHandle, ControllerSpec, MapRule, ObjectKey, Reconciler, WatchSpec,
};
use super::informer::Informer;
use crate::api::Api;
use crate::api::admission::{ApiHost, ControllerRunner};
use crate::plugin::{
    self, ApiResourceInfo, ControllerDecl, ControllerPlugin, DeleteOpts, HostApi, HostError,
    PatchKind, PluginError, Query, ReconcileKey, Reconciled, ResourceRef,
};

/// How long a read waits for the cache to catch up with the controller's own writes
/// before it reads from the API server instead.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// Runs controller plugins on an [`Engine`].
pub struct PluginControllers {
    engine: Arc<Engine>,
    api: Arc<Api>,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    /// One host per controller name, shared by its versions.
    hosts: Mutex<HashMap<String, Arc<ControllerHost>>>,
}

struct Running {
    decl: ControllerDecl,
    reconciler: Arc<PluginReconciler>,
    /// Dropping it stops the controller.
    _handle: ControllerHandle,
}

impl PluginControllers {
    pub fn new(engine: Arc<Engine>, api: Arc<Api>) -> Arc<Self> {
        Arc::new(PluginControllers {
            engine,
            api,
            running: tokio::sync::Mutex::new(HashMap::new()),
            hosts: Mutex::new(HashMap::new()),
        })
    }

    fn host(&self, name: &str) -> Arc<ControllerHost> {
        self.hosts
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(ControllerHost {
                    name: name.to_string(),
                    engine: self.engine.clone(),
                    api: self.api.clone(),
                    writes: ApiHost::new(&self.api),
                    cached: Mutex::new(HashSet::new()),
                    pending: Mutex::new(HashMap::new()),
                    events: Arc::new(tokio::sync::Semaphore::new(EVENTS_IN_FLIGHT)),
                })
            })
            .clone()
    }

    /// The engine the controllers run on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

#[async_trait]
impl ControllerRunner for PluginControllers {
    fn host_api(&self, name: &str) -> Arc<dyn HostApi> {
        self.host(name)
    }

    async fn run(&self, name: &str, plugin: Arc<ControllerPlugin>) -> Result<(), String> {
        let decl = plugin.declare().await.map_err(|e| e.to_string())?;
        let spec = self.spec(name, &decl)?;
        let mut running = self.running.lock().await;
        if let Some(r) = running.get(name)
            && r.decl == decl
        {
            r.reconciler.current.store(plugin);
            tracing::info!(controller = %name, "controller plugin swapped in place");
            return Ok(());
        }
        // The controller's host reads these kinds from the cache.
        self.host(name).set_cached(&spec);
        let reconciler = Arc::new(PluginReconciler {
            current: ArcSwap::from(plugin),
        });
        let handle = self.engine.run_controller(spec, reconciler.clone());
        // Replacing the entry drops (stops) the previous controller, if any.
        running.insert(
            name.to_string(),
            Running {
                decl,
                reconciler,
                _handle: handle,
            },
        );
        tracing::info!(controller = %name, "controller plugin started");
        Ok(())
    }

    async fn metrics(&self, name: &str) -> Option<Value> {
        let running = self.running.lock().await;
        let m = running.get(name)?._handle.metrics();
        let ms = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1e5).round() / 100.0);
        Some(serde_json::json!({
            "active": m.active,
            "queueDepth": m.queue_depth,
            "waiting": m.waiting,
            "reconciles": m.reconciles,
            "errors": m.errors,
            "requeues": m.requeues,
            "latencyP50Ms": ms(m.latency_p50),
            "latencyP99Ms": ms(m.latency_p99),
        }))
    }

    async fn stop(&self, name: &str) {
        let removed = self.running.lock().await.remove(name);
        if let Some(r) = removed {
            r._handle.shutdown().await;
        }
        self.hosts.lock().remove(name);
    }
}

impl PluginControllers {
    /// The engine's spec of a declared controller.
    fn spec(&self, name: &str, decl: &ControllerDecl) -> Result<ControllerSpec, String> {
        let Some(first) = decl.kinds.first() else {
            return Err("the controller declared no kind".into());
        };
        let mut spec = ControllerSpec::new(name, &first.api_version, &first.kind);
        for extra in &decl.kinds[1..] {
            spec = spec.also_for(&extra.api_version, &extra.kind);
        }
        for w in &decl.watches {
            let map = match &w.map {
                plugin::MapRule::None => MapRule::None,
                plugin::MapRule::Owner => MapRule::Owner,
                plugin::MapRule::SameName => MapRule::SameName,
                plugin::MapRule::Selector(p) => MapRule::Selector { path: p.clone() },
                plugin::MapRule::Field(p) => MapRule::Field { path: p.clone() },
                plugin::MapRule::All => MapRule::All,
                plugin::MapRule::Dependents => MapRule::Dependents,
            };
            let mut watch = WatchSpec::new(&w.api_version, &w.kind, map);
            watch.changes = w.changes;
            spec = spec.watch(watch);
        }
        spec.primary_changes = decl.primary_changes;
        Ok(spec.workers(decl.workers as usize))
    }
}

/// Calls the current version of a controller plugin.
struct PluginReconciler {
    current: ArcSwap<ControllerPlugin>,
}

#[async_trait]
impl Reconciler for PluginReconciler {
    async fn reconcile(
        &self,
        key: &ObjectKey,
        object: Option<Arc<Value>>,
    ) -> Result<Action, String> {
        // A swap never affects this call: it holds its own reference.
        let plugin = self.current.load_full();
        let key = ReconcileKey {
            api_version: key.api_version.clone(),
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        };
        match plugin.reconcile(&key, object.as_deref()).await {
            Ok(Reconciled::Done) => Ok(Action::Done),
            Ok(Reconciled::RequeueAfter(d)) => Ok(Action::RequeueAfter(d)),
            Err(PluginError::Reconcile { message, .. }) => Err(message),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A write whose effect the cache must show before the controller reads that kind again.
#[derive(Debug, Clone)]
enum Pending {
    /// The object is at least at this resourceVersion.
    Written {
        namespace: Option<String>,
        name: String,
        rv: u64,
    },
    /// The object (at this resourceVersion, or any when 0) is gone or being deleted.
    Deleted {
        namespace: Option<String>,
        name: String,
        rv: u64,
    },
}

/// The host API of one controller plugin.
pub struct ControllerHost {
    name: String,
    engine: Arc<Engine>,
    api: Arc<Api>,
    writes: ApiHost,
    /// The kinds (`apiVersion`, `kind`) read from the cache: the ones the controller
    /// declared.
    cached: Mutex<HashSet<(String, String)>>,
    /// Per kind: writes not yet seen by its informer.
    pending: Mutex<HashMap<(String, String), Vec<Pending>>>,
    /// Event writes in flight.
    events: Arc<tokio::sync::Semaphore>,
}

/// Events a controller may have in flight before further ones are dropped (client-go's
/// broadcaster queues 1,000 and drops beyond that, too).
const EVENTS_IN_FLIGHT: usize = 1000;

impl ControllerHost {
    /// Events are recorded as Kubernetes' event recorder does: asynchronously and
    /// best-effort, so that a reconcile does not wait for them (the capability check has
    /// been done; the write still takes the full API path). The plugin gets its object back
    /// at once, without a resourceVersion.
    fn record_event(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError> {
        let Ok(permit) = self.events.clone().try_acquire_owned() else {
            tracing::debug!(controller = %self.name, "too many events in flight: dropping one");
            return Ok(object);
        };
        let writer = ApiHost::new(&self.api);
        let (plugin, r, namespace) = (plugin.to_string(), r.clone(), namespace.map(str::to_string));
        let event = object.clone();
        tokio::spawn(async move {
            if let Err(e) = writer
                .create(&plugin, &r, namespace.as_deref(), event)
                .await
            {
                tracing::debug!(plugin = %plugin, error = %e, "recording an event failed");
            }
            drop(permit);
        });
        Ok(object)
    }
}

fn rv_of(v: &Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn meta<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

impl ControllerHost {
    fn set_cached(&self, spec: &ControllerSpec) {
        let mut cached = self.cached.lock();
        cached.clear();
        for (av, k) in spec.primary_kinds() {
            cached.insert((av.to_string(), k.to_string()));
        }
        for w in &spec.watches {
            cached.insert((w.api_version.clone(), w.kind.clone()));
        }
    }

    /// `(apiVersion, kind)` of a resolved resource.
    fn kind_of(&self, r: &ResourceRef) -> Option<(String, String)> {
        let rt = self
            .api
            .registry
            .snapshot()
            .lookup(&r.group, &r.version, &r.resource)?;
        Some((rt.api_version(), rt.kind.clone()))
    }

    /// The informer of `r`, caught up with this controller's writes, if `r` is a kind
    /// the controller declared (else `None`: read from the API server).
    async fn informer(&self, r: &ResourceRef) -> Option<Arc<Informer>> {
        let kind = self.kind_of(r)?;
        if !self.cached.lock().contains(&kind) {
            return None;
        }
        let informer = self.engine.informer(&kind.0, &kind.1);
        if !informer.has_synced() {
            return None;
        }
        let pending = self.pending.lock().get(&kind).cloned().unwrap_or_default();
        if pending.is_empty() {
            return Some(informer);
        }
        let deadline = Instant::now() + READ_YOUR_WRITES_WAIT;
        loop {
            let left: Vec<Pending> = pending
                .iter()
                .filter(|p| !seen(&informer, p))
                .cloned()
                .collect();
            if left.is_empty() {
                // Forget what the cache now shows (new writes may have been added).
                if let Some(list) = self.pending.lock().get_mut(&kind) {
                    list.retain(|p| !seen(&informer, p));
                }
                return Some(informer);
            }
            if Instant::now() >= deadline {
                tracing::debug!(controller = %self.name, kind = %kind.1, "cache did not catch up with the controller's writes: reading from the API server");
                return None;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    fn note(&self, r: &ResourceRef, p: Pending) {
        if let Some(kind) = self.kind_of(r)
            && self.cached.lock().contains(&kind)
        {
            let mut pending = self.pending.lock();
            let list = pending.entry(kind).or_default();
            // Bounded: a controller that never reads a kind it writes keeps few entries.
            if list.len() >= 4096 {
                list.drain(..2048);
            }
            list.push(p);
        }
    }

    fn note_written(&self, r: &ResourceRef, stored: &Value) {
        self.note(
            r,
            Pending::Written {
                namespace: meta(stored, "namespace").map(str::to_string),
                name: meta(stored, "name").unwrap_or_default().to_string(),
                rv: rv_of(stored),
            },
        );
    }
}

/// Whether the informer shows the effect of a pending write.
fn seen(informer: &Informer, p: &Pending) -> bool {
    match p {
        Pending::Written {
            namespace,
            name,
            rv,
        } => {
            let cache_rv: u64 = informer.resource_version().parse().unwrap_or(0);
            cache_rv >= *rv
                || informer
                    .get(namespace.as_deref(), name)
                    .is_some_and(|o| rv_of(&o) >= *rv)
        }
        Pending::Deleted {
            namespace,
            name,
            rv,
        } => match informer.get(namespace.as_deref(), name) {
            None => true,
            Some(o) => {
                o.pointer("/metadata/deletionTimestamp")
                    .is_some_and(|t| !t.is_null())
                    || (*rv != 0 && rv_of(&o) > *rv)
            }
        },
    }
}

#[async_trait]
impl HostApi for ControllerHost {
    fn resolve(&self, api_version: &str, kind_or_resource: &str) -> Result<ResourceRef, HostError> {
        self.writes.resolve(api_version, kind_or_resource)
    }

    fn api_resources(&self) -> Vec<ApiResourceInfo> {
        self.writes.api_resources()
    }

    async fn get(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError> {
        match self.informer(r).await {
            Some(i) => Ok(i.get(namespace, name).map(|o| (*o).clone())),
            None => self.writes.get(plugin, r, namespace, name).await,
        }
    }

    async fn list(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        match self.informer(r).await {
            Some(i) => i
                .list(namespace, label_selector, None)
                .map(|items| items.iter().map(|o| (**o).clone()).collect())
                .map_err(|e| HostError::bad_request(e.to_string())),
            None => self.writes.list(plugin, r, namespace, label_selector).await,
        }
    }

    async fn select(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        query: &Query,
    ) -> Result<Vec<Value>, HostError> {
        let Some(i) = self.informer(r).await else {
            let items = self
                .writes
                .list(plugin, r, namespace, query.label_selector.as_deref())
                .await?;
            return Ok(items
                .into_iter()
                .filter(|o| plugin::query_matches_fields(o, query))
                .collect());
        };
        let items: Vec<Arc<Value>> = match &query.owner_uid {
            // The owner index first: the usual "my pods" query.
            Some(uid) => i
                .by_owner(uid)
                .into_iter()
                .filter(|o| namespace.is_none() || meta(o, "namespace") == namespace)
                .collect(),
            None => i
                .list(
                    namespace,
                    query.label_selector.as_deref(),
                    query.field_selector.as_deref(),
                )
                .map_err(|e| HostError::bad_request(e.to_string()))?,
        };
        let label = match (&query.owner_uid, &query.label_selector) {
            (Some(_), Some(sel)) => Some(
                crate::api::selectors::LabelSelector::parse(sel)
                    .map_err(|e| HostError::bad_request(e.to_string()))?,
            ),
            _ => None,
        };
        Ok(items
            .into_iter()
            .filter(|o| label.as_ref().is_none_or(|l| l.matches_object(o)))
            .filter(|o| query.owner_uid.is_none() || plugin::query_matches_fields(o, query))
            .map(|o| (*o).clone())
            .collect())
    }

    async fn create(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError> {
        if r.resource == "events" && (r.group.is_empty() || r.group == "events.k8s.io") {
            return self.record_event(plugin, r, namespace, object);
        }
        let stored = self.writes.create(plugin, r, namespace, object).await?;
        self.note_written(r, &stored);
        Ok(stored)
    }

    async fn create_all(
        &self,
        plugin: &str,
        objects: Vec<(ResourceRef, Option<String>, Value)>,
    ) -> Vec<Result<Value, HostError>> {
        // Concurrently: the store's group commit makes them one durable write.
        futures::future::join_all(
            objects
                .into_iter()
                .map(|(r, ns, o)| async move { self.create(plugin, &r, ns.as_deref(), o).await }),
        )
        .await
    }

    async fn update(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError> {
        let stored = self.writes.update(plugin, r, namespace, object).await?;
        self.note_written(r, &stored);
        Ok(stored)
    }

    async fn update_status(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError> {
        let stored = self
            .writes
            .update_status(plugin, r, namespace, object)
            .await?;
        self.note_written(r, &stored);
        Ok(stored)
    }

    async fn patch(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: Value,
        subresource: Option<&str>,
    ) -> Result<Value, HostError> {
        let stored = self
            .writes
            .patch(plugin, r, namespace, name, kind, patch, subresource)
            .await?;
        self.note_written(r, &stored);
        Ok(stored)
    }

    async fn delete(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError> {
        self.delete_with(plugin, r, namespace, name, &DeleteOpts::default())
            .await
    }

    async fn delete_with(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOpts,
    ) -> Result<(), HostError> {
        self.writes
            .delete_with(plugin, r, namespace, name, options)
            .await?;
        let rv = options
            .resource_version
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        self.note(
            r,
            Pending::Deleted {
                namespace: namespace.map(str::to_string),
                name: name.to_string(),
                rv,
            },
        );
        Ok(())
    }
}
