//! The generic controller runner: a [`Reconciler`] (a Wasm component through the bridge, or
//! Rust) plus a [`ControllerSpec`] saying what it reconciles and which changes concern it.
//!
//! [`crate::engine::Engine::run_controller`] wires one up:
//!
//! 1. it subscribes to the shared informers of the primary kind and of every
//!    [`WatchSpec`]; the primary kind's changes enqueue their own key, the watched kinds'
//!    changes enqueue what their [`MapRule`] maps them to;
//! 2. once the informers have synced, and whenever this engine becomes the leader, it
//!    enqueues every existing primary object and starts `workers` workers;
//! 3. a worker takes a key from the [`WorkQueue`] (never one another worker holds), reads
//!    the object from the cache and calls the reconciler: `Ok(Done)` forgets the key's
//!    backoff, `Ok(RequeueAfter(d))` queues it again after `d`, an error (or a panic)
//!    queues it again with per-key exponential backoff;
//! 4. when leadership is lost (or the controller is stopped) the workers stop at once — a
//!    reconcile in flight is cancelled and its key queued again for the next term.

use std::collections::BTreeSet;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::FutureExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::informer::{Change, Informer, Subscription};
use super::metrics::{ControllerMetrics, ControllerMetricsSnapshot, Outcome};
use super::queue::WorkQueue;
use crate::api::selectors::LabelSelector;

/// The key of a primary object: what workers reconcile.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What a reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Converged: reconcile again only when something changes.
    Done,
    /// Reconcile again after this long (and on changes before then).
    RequeueAfter(Duration),
}

/// A controller's logic.
#[async_trait::async_trait]
pub trait Reconciler: Send + Sync + 'static {
    /// Drive the world toward `object`'s desired state. `object` is the cached current
    /// state, `None` if it no longer exists. An `Err` is logged and the key is retried
    /// with exponential backoff.
    async fn reconcile(
        &self,
        key: &ObjectKey,
        object: Option<Arc<Value>>,
    ) -> Result<Action, String>;
}

/// What a controller reconciles and watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerSpec {
    /// Unique per engine; names the controller in logs and metrics.
    pub name: String,
    pub api_version: String,
    /// The primary kind: its objects are the keys reconciled.
    pub kind: String,
    /// Further primary kinds (`apiVersion`, `kind`), e.g. for the garbage collector. Map
    /// rules other than `Owner` and `Dependents` produce keys of the first.
    pub also: Vec<(String, String)>,
    /// Which changes of primary objects enqueue them.
    pub primary_changes: ChangeFilter,
    /// Other kinds whose changes enqueue primary keys.
    pub watches: Vec<WatchSpec>,
    /// Concurrent workers (0: the engine's default, 2).
    pub workers: usize,
}

impl ControllerSpec {
    /// A controller of `api_version`/`kind` with no other watches and default workers.
    pub fn new(
        name: impl Into<String>,
        api_version: impl Into<String>,
        kind: impl Into<String>,
    ) -> Self {
        ControllerSpec {
            name: name.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            also: vec![],
            primary_changes: ChangeFilter::All,
            watches: vec![],
            workers: 0,
        }
    }

    /// Also reconcile objects of `api_version`/`kind`.
    pub fn also_for(mut self, api_version: &str, kind: &str) -> Self {
        self.also.push((api_version.to_string(), kind.to_string()));
        self
    }

    /// Every primary kind, the first one first.
    pub fn primary_kinds(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once((self.api_version.as_str(), self.kind.as_str()))
            .chain(self.also.iter().map(|(av, k)| (av.as_str(), k.as_str())))
    }

    /// Add a watch.
    pub fn watch(mut self, w: WatchSpec) -> Self {
        self.watches.push(w);
        self
    }

    /// Set the number of workers.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Check what can be checked without the server: names present, selectors and JSON
    /// pointers well formed.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a controller needs a name".into());
        }
        if self
            .primary_kinds()
            .any(|(av, k)| av.is_empty() || k.is_empty())
        {
            return Err(format!(
                "controller {}: the primary apiVersion and kind are required",
                self.name
            ));
        }
        for (i, w) in self.watches.iter().enumerate() {
            let at = format!(
                "controller {}: watches[{i}] ({} {})",
                self.name, w.api_version, w.kind
            );
            if w.api_version.is_empty() || w.kind.is_empty() {
                return Err(format!("{at}: apiVersion and kind are required"));
            }
            if let Some(sel) = &w.label_selector {
                LabelSelector::parse(sel)
                    .map_err(|e| format!("{at}: invalid labelSelector {sel:?}: {e}"))?;
            }
            match &w.map {
                MapRule::Selector { path } | MapRule::Field { path }
                    if !path.is_empty() && !path.starts_with('/') =>
                {
                    return Err(format!(
                        "{at}: {path:?} is not a JSON pointer (it must start with '/')"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A kind whose changes concern a controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    pub api_version: String,
    pub kind: String,
    /// Only changes in this namespace count.
    pub namespace: Option<String>,
    /// Only changes of objects these labels select (before or after) count.
    pub label_selector: Option<String>,
    /// Which primary objects a change enqueues.
    pub map: MapRule,
    /// Which changes count at all.
    pub changes: ChangeFilter,
}

impl WatchSpec {
    /// Watch `api_version`/`kind` everywhere, mapping changes with `map`.
    pub fn new(api_version: impl Into<String>, kind: impl Into<String>, map: MapRule) -> Self {
        WatchSpec {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: None,
            label_selector: None,
            map,
            changes: ChangeFilter::All,
        }
    }
}

pub use crate::plugin::ChangeFilter;

/// Whether a change passes a [`ChangeFilter`]: creations and deletions always do; an update
/// does if what the filter looks at differs (`resourceVersion` and `managedFields` never
/// count).
pub fn change_counts(filter: ChangeFilter, change: &Change) -> bool {
    let (Some(old), Some(new)) = (&change.old, &change.new) else {
        return true;
    };
    let metadata_differs = || {
        !same_fields_except(
            old.get("metadata"),
            new.get("metadata"),
            &["resourceVersion", "managedFields"],
        )
    };
    match filter {
        ChangeFilter::All => true,
        ChangeFilter::Metadata => metadata_differs(),
        ChangeFilter::SpecAndMetadata => {
            metadata_differs() || !same_fields_except(Some(old), Some(new), &["status", "metadata"])
        }
    }
}

/// Whether two JSON objects have the same fields apart from `skip` (compared in place: this
/// runs for every change of every watched object).
fn same_fields_except(a: Option<&Value>, b: Option<&Value>, skip: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.and_then(Value::as_object), b.and_then(Value::as_object)) else {
        return a == b;
    };
    let kept = |m: &'_ serde_json::Map<String, Value>| {
        m.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .count()
    };
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// Whether an owner's change concerns its dependents (the `Dependents` rule): it is gone,
/// being deleted, or its finalizers changed.
fn owner_change_counts(change: &Change) -> bool {
    let (Some(old), Some(new)) = (&change.old, &change.new) else {
        return true;
    };
    let deleting = |o: &Value| {
        o.pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
    };
    let finalizers = |o: &Value| o.pointer("/metadata/finalizers").cloned();
    deleting(new) != deleting(old) || finalizers(old) != finalizers(new) || deleting(new)
}

/// How a change of a watched object maps to primary keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapRule {
    /// Cached (readable) only; changes enqueue nothing.
    None,
    /// The controller owner (`ownerReferences` with `controller: true`), if it is of the
    /// primary kind.
    Owner,
    /// The primary object with the same namespace/name (Endpoints for a Service).
    SameName,
    /// Every primary object in the same namespace whose field at JSON pointer `path` (a
    /// `LabelSelector` `{matchLabels, matchExpressions}`, or a plain map like
    /// `Service.spec.selector`) selects the object's labels, before or after the change.
    Selector { path: String },
    /// The primary object the changed object's field at JSON pointer `path` names
    /// (`/spec/nodeName` → the Node), cluster-scoped or in the same namespace.
    Field { path: String },
    /// Every primary object (a DaemonSet on Node changes).
    All,
    /// The primary objects (of any primary kind) that name the changed object's uid in
    /// their `ownerReferences` (the garbage collector).
    Dependents,
}

/// A controller's state the engine and its tasks share.
pub(crate) struct ControllerShared {
    pub(crate) name: String,
    pub(crate) queue: Arc<WorkQueue<ObjectKey>>,
    pub(crate) metrics: ControllerMetrics,
    pub(crate) active: AtomicBool,
    /// `true` asks the controller to stop.
    pub(crate) stop: watch::Sender<bool>,
    /// `true` once it has stopped.
    pub(crate) finished: watch::Sender<bool>,
}

impl ControllerShared {
    pub(crate) fn snapshot(&self) -> ControllerMetricsSnapshot {
        self.metrics.snapshot(
            &self.name,
            self.queue.len(),
            self.queue.waiting_len(),
            self.active.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn is_finished(&self) -> bool {
        *self.finished.borrow()
    }

    pub(crate) async fn wait_finished(&self) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|f| *f).await;
    }
}

/// A running controller. Dropping it stops the controller.
pub struct ControllerHandle {
    pub(crate) shared: Arc<ControllerShared>,
    pub(crate) task: Option<JoinHandle<()>>,
}

impl ControllerHandle {
    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Ask the controller to stop (workers stop at once; in-flight reconciles are
    /// cancelled).
    pub fn stop(&self) {
        self.shared.stop.send_replace(true);
    }

    /// Stop and wait until it has stopped.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Whether its workers run now (the engine leads).
    pub fn is_active(&self) -> bool {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// Its metrics now.
    pub fn metrics(&self) -> ControllerMetricsSnapshot {
        self.shared.snapshot()
    }

    /// Queue a key by hand.
    pub fn enqueue(&self, key: ObjectKey) {
        self.shared.queue.add(key);
    }

    /// Its work queue.
    pub fn queue(&self) -> &Arc<WorkQueue<ObjectKey>> {
        &self.shared.queue
    }
}

impl Drop for ControllerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A watched kind, ready to map changes.
pub(crate) struct Watched {
    pub(crate) spec: WatchSpec,
    pub(crate) informer: Arc<Informer>,
}

/// Everything a controller's tasks need.
pub(crate) struct Runner {
    pub(crate) spec: ControllerSpec,
    pub(crate) shared: Arc<ControllerShared>,
    /// The informers of the primary kinds, the first one first.
    pub(crate) primaries: Vec<Arc<Informer>>,
    pub(crate) watched: Vec<Watched>,
    pub(crate) reconciler: Arc<dyn Reconciler>,
    pub(crate) leader: watch::Receiver<bool>,
    pub(crate) workers: usize,
}

/// Maps changes to primary keys.
struct Mapper {
    api_version: String,
    kind: String,
    group: String,
    primary: Arc<Informer>,
    primary_namespaced: bool,
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A selector held at a field of a primary object: a `LabelSelector` or a plain map.
fn selector_at(obj: &Value, path: &str) -> Option<LabelSelector> {
    let v = obj.pointer(path)?;
    let map = v.as_object()?;
    if map.contains_key("matchLabels") || map.contains_key("matchExpressions") {
        return LabelSelector::from_label_selector_json(v).ok();
    }
    let pairs: Option<Vec<(&str, &str)>> = map
        .iter()
        .map(|(k, v)| Some((k.as_str(), v.as_str()?)))
        .collect();
    Some(LabelSelector::from_set(pairs?))
}

impl Mapper {
    fn key(&self, namespace: &str, name: &str) -> Option<ObjectKey> {
        if name.is_empty() {
            return None;
        }
        Some(ObjectKey {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: (self.primary_namespaced && !namespace.is_empty())
                .then(|| namespace.to_string()),
            name: name.to_string(),
        })
    }

    fn key_of(&self, obj: &Value) -> Option<ObjectKey> {
        self.key(meta(obj, "namespace"), meta(obj, "name"))
    }

    fn map(&self, rule: &MapRule, change: &Change, out: &mut BTreeSet<ObjectKey>) {
        let states = change.old.iter().chain(change.new.iter());
        match rule {
            MapRule::None => {}
            MapRule::Owner => {
                for obj in states {
                    let refs = obj
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array);
                    for r in refs.into_iter().flatten() {
                        let controller = r.get("controller").and_then(Value::as_bool) == Some(true);
                        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
                        let av = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
                        if controller && kind == self.kind && group_of(av) == self.group {
                            let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                            out.extend(self.key(meta(obj, "namespace"), name));
                        }
                    }
                }
            }
            MapRule::SameName => {
                for obj in states {
                    out.extend(self.key_of(obj));
                }
            }
            MapRule::Field { path } => {
                for obj in states {
                    if let Some(name) = obj.pointer(path).and_then(Value::as_str) {
                        out.extend(self.key(meta(obj, "namespace"), name));
                    }
                }
            }
            MapRule::Selector { path } => {
                let states: Vec<&Arc<Value>> = states.collect();
                let Some(first) = states.first() else {
                    return;
                };
                let ns = meta(first, "namespace");
                let candidates = if ns.is_empty() {
                    self.primary.all()
                } else {
                    self.primary.list(Some(ns), None, None).unwrap_or_default()
                };
                for p in candidates {
                    let Some(sel) = selector_at(&p, path) else {
                        continue;
                    };
                    if states.iter().any(|o| sel.matches_object(o)) {
                        out.extend(self.key_of(&p));
                    }
                }
            }
            MapRule::All => {
                for p in self.primary.all() {
                    out.extend(self.key_of(&p));
                }
            }
            // Served by `Mappers`, across every primary kind.
            MapRule::Dependents => {}
        }
    }
}

/// The mappers of every primary kind.
struct Mappers {
    all: Vec<Arc<Mapper>>,
}

impl Mappers {
    fn first(&self) -> &Mapper {
        &self.all[0]
    }

    fn map(&self, rule: &MapRule, change: &Change, out: &mut BTreeSet<ObjectKey>) {
        match rule {
            MapRule::Owner => {
                for m in &self.all {
                    m.map(rule, change, out);
                }
            }
            MapRule::Dependents => {
                if !owner_change_counts(change) {
                    return;
                }
                let uids: BTreeSet<&str> = change
                    .old
                    .iter()
                    .chain(change.new.iter())
                    .map(|o| meta(o, "uid"))
                    .filter(|u| !u.is_empty())
                    .collect();
                for m in &self.all {
                    for uid in &uids {
                        for dependent in m.primary.by_owner(uid) {
                            out.extend(m.key_of(&dependent));
                        }
                    }
                }
            }
            _ => self.first().map(rule, change, out),
        }
    }

    /// The mapper (and so the informer) of a key's kind.
    fn of(&self, key: &ObjectKey) -> Option<&Arc<Mapper>> {
        self.all
            .iter()
            .find(|m| m.kind == key.kind && m.api_version == key.api_version)
    }
}

/// Whether a change passes a watch's namespace and label filters.
fn passes(namespace: Option<&str>, selector: Option<&LabelSelector>, change: &Change) -> bool {
    let states = || change.old.iter().chain(change.new.iter());
    if let Some(ns) = namespace
        && !states().any(|o| meta(o, "namespace") == ns)
    {
        return false;
    }
    match selector {
        Some(sel) => states().any(|o| sel.matches_object(o)),
        None => true,
    }
}

/// Feed one subscription's changes to the queue until it ends.
#[allow(clippy::too_many_arguments)]
async fn feed(
    mut sub: Subscription,
    mapper: Arc<Mappers>,
    rule: MapRule,
    changes: ChangeFilter,
    namespace: Option<String>,
    selector: Option<LabelSelector>,
    queue: Arc<WorkQueue<ObjectKey>>,
) {
    while let Some(change) = sub.recv().await {
        if !passes(namespace.as_deref(), selector.as_ref(), &change)
            || !change_counts(changes, &change)
        {
            continue;
        }
        let mut keys = BTreeSet::new();
        mapper.map(&rule, &change, &mut keys);
        for k in keys {
            queue.add(k);
        }
    }
}

impl Runner {
    /// The controller's life: map changes, and run workers while leading, until stopped.
    pub(crate) async fn run(self) {
        let name = self.spec.name.clone();
        let mut stop = self.shared.stop.subscribe();
        // Subscribe before waiting for the sync, so no change falls in between.
        let primary_subs: Vec<Subscription> =
            self.primaries.iter().map(|p| p.subscribe()).collect();
        let subs: Vec<Subscription> = self
            .watched
            .iter()
            .map(|w| w.informer.subscribe())
            .collect();
        let synced = async {
            for p in &self.primaries {
                p.wait_synced().await;
            }
            for w in &self.watched {
                w.informer.wait_synced().await;
            }
        };
        tokio::select! {
            _ = synced => {}
            _ = stop.wait_for(|s| *s) => {
                self.finish();
                return;
            }
        }
        let mappers: Vec<Arc<Mapper>> = self
            .spec
            .primary_kinds()
            .zip(&self.primaries)
            .map(|((av, kind), informer)| {
                Arc::new(Mapper {
                    api_version: av.to_string(),
                    kind: kind.to_string(),
                    group: group_of(av).to_string(),
                    primary: informer.clone(),
                    primary_namespaced: informer.info().is_none_or(|i| i.namespaced),
                })
            })
            .collect();
        let mut feeders = JoinSet::new();
        for (mapper, sub) in mappers.iter().zip(primary_subs) {
            feeders.spawn(feed(
                sub,
                Arc::new(Mappers {
                    all: vec![mapper.clone()],
                }),
                MapRule::SameName,
                self.spec.primary_changes,
                None,
                None,
                self.shared.queue.clone(),
            ));
        }
        let mappers = Arc::new(Mappers { all: mappers });
        for (w, sub) in self.watched.iter().zip(subs) {
            let selector = w.spec.label_selector.as_deref().map(|s| {
                LabelSelector::parse(s).unwrap_or_else(|e| {
                    tracing::error!(controller = %name, watch = %w.spec.kind, selector = %s, error = %e,
                        "invalid label selector in a watch: it matches nothing");
                    LabelSelector::nothing()
                })
            });
            feeders.spawn(feed(
                sub,
                mappers.clone(),
                w.spec.map.clone(),
                w.spec.changes,
                w.spec.namespace.clone(),
                selector,
                self.shared.queue.clone(),
            ));
        }
        tracing::debug!(controller = %name, "controller synced");
        let mut leader = self.leader.clone();
        loop {
            tokio::select! {
                r = leader.wait_for(|l| *l) => if r.is_err() { break },
                _ = stop.wait_for(|s| *s) => break,
            }
            // A new term: everything is looked at again.
            for m in &mappers.all {
                for obj in m.primary.all() {
                    if let Some(k) = m.key_of(&obj) {
                        self.shared.queue.add(k);
                    }
                }
            }
            self.shared.active.store(true, Ordering::Relaxed);
            tracing::info!(controller = %name, workers = self.workers, "controller started");
            let (term_tx, term_rx) = watch::channel(false);
            let mut workers = JoinSet::new();
            for _ in 0..self.workers.max(1) {
                workers.spawn(worker(
                    self.shared.clone(),
                    mappers.clone(),
                    self.reconciler.clone(),
                    term_rx.clone(),
                ));
            }
            let stopping = tokio::select! {
                _ = leader.wait_for(|l| !*l) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            term_tx.send_replace(true);
            while workers.join_next().await.is_some() {}
            self.shared.active.store(false, Ordering::Relaxed);
            tracing::info!(controller = %name, "controller workers stopped");
            if stopping {
                break;
            }
        }
        feeders.abort_all();
        self.finish();
    }

    fn finish(&self) {
        self.shared.active.store(false, Ordering::Relaxed);
        self.shared.queue.shutdown();
        self.shared.finished.send_replace(true);
    }
}

/// One worker: reconcile keys until the term ends.
async fn worker(
    shared: Arc<ControllerShared>,
    mappers: Arc<Mappers>,
    reconciler: Arc<dyn Reconciler>,
    mut term: watch::Receiver<bool>,
) {
    let queue = &shared.queue;
    loop {
        let key = tokio::select! {
            k = queue.get() => match k {
                Some(k) => k,
                None => return,
            },
            _ = term.wait_for(|t| *t) => return,
        };
        let object = mappers
            .of(&key)
            .and_then(|m| m.primary.get(key.namespace.as_deref(), &key.name));
        let start = Instant::now();
        let call = AssertUnwindSafe(reconciler.reconcile(&key, object)).catch_unwind();
        let result = tokio::select! {
            r = call => Some(r),
            _ = term.wait_for(|t| *t) => None,
        };
        let Some(result) = result else {
            // Leadership lost (or stopping) mid-reconcile: the next term does it again.
            queue.done(&key);
            queue.add(key);
            return;
        };
        let took = start.elapsed();
        let outcome = match result {
            Ok(Ok(Action::Done)) => {
                queue.forget(&key);
                Outcome::Done
            }
            Ok(Ok(Action::RequeueAfter(d))) => {
                queue.forget(&key);
                queue.add_after(key.clone(), d);
                Outcome::Requeued
            }
            Ok(Err(e)) => {
                // A stale read meeting optimistic concurrency is routine: the retry reads
                // the newer object.
                if e.contains("Conflict (409)") {
                    tracing::debug!(controller = %shared.name, key = %key, error = %e,
                        "reconcile met a conflict; retrying");
                } else {
                    tracing::warn!(controller = %shared.name, key = %key, error = %e,
                        retries = queue.num_requeues(&key), "reconcile failed; retrying with backoff");
                }
                queue.add_rate_limited(key.clone());
                Outcome::Failed
            }
            Err(_) => {
                tracing::error!(controller = %shared.name, key = %key, "reconciler panicked; retrying with backoff");
                queue.add_rate_limited(key.clone());
                Outcome::Failed
            }
        };
        shared.metrics.record(took, outcome);
        queue.done(&key);
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn change_filters_ignore_what_they_should() {
        let obj = |labels: Value, spec: Value, status: Value, rv: &str| {
            Some(Arc::new(
                json!({"metadata": {"name": "x", "labels": labels, "resourceVersion": rv},
                "spec": spec, "status": status}),
            ))
        };
        let status_only = Change {
            old: obj(json!({"a": "1"}), json!({"r": 1}), json!({"s": 1}), "1"),
            new: obj(json!({"a": "1"}), json!({"r": 1}), json!({"s": 2}), "2"),
        };
        assert!(change_counts(ChangeFilter::All, &status_only));
        assert!(!change_counts(ChangeFilter::SpecAndMetadata, &status_only));
        assert!(!change_counts(ChangeFilter::Metadata, &status_only));
        let spec = Change {
            old: obj(json!({"a": "1"}), json!({"r": 1}), json!({}), "1"),
            new: obj(json!({"a": "1"}), json!({"r": 2}), json!({}), "2"),
        };
        assert!(change_counts(ChangeFilter::SpecAndMetadata, &spec));
        assert!(!change_counts(ChangeFilter::Metadata, &spec));
        let labels = Change {
            old: obj(json!({"a": "1"}), json!({}), json!({}), "1"),
            new: obj(json!({"a": "2"}), json!({}), json!({}), "2"),
        };
        assert!(change_counts(ChangeFilter::Metadata, &labels));
        let created = Change {
            old: None,
            new: obj(json!({}), json!({}), json!({}), "1"),
        };
        assert!(change_counts(ChangeFilter::Metadata, &created));
        // Owners matter to dependents only when they go (or start going).
        assert!(!owner_change_counts(&status_only));
        let deleting = Change {
            old: obj(json!({}), json!({}), json!({}), "1"),
            new: Some(Arc::new(
                json!({"metadata": {"name": "x", "deletionTimestamp": "t"}}),
            )),
        };
        assert!(owner_change_counts(&deleting));
        assert!(owner_change_counts(&Change {
            old: obj(json!({}), json!({}), json!({}), "1"),
            new: None
        }));
    }
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    use parking_lot::Mutex;
    use serde_json::json;

    use super::*;
    use crate::api::client::tests::test_api;
    use crate::api::client::{
        ApiClient, ApiResource, DeleteParams, LocalClient, Patch, PatchParams,
    };
    use crate::engine::{Engine, EngineConfig, InformerConfig, LeaderConfig};
    use crate::store::redb::RedbStoreConfig;

    fn cms() -> ApiResource {
        ApiResource::new("v1", "ConfigMap")
    }

    fn config(identity: &str) -> EngineConfig {
        EngineConfig {
            leader: LeaderConfig {
                lease_duration: Duration::from_secs(1),
                renew_deadline: Duration::from_millis(600),
                retry_period: Duration::from_millis(100),
                ..LeaderConfig::new(identity)
            },
            informer: InformerConfig {
                retry_min: Duration::from_millis(10),
                retry_max: Duration::from_millis(100),
            },
            ..Default::default()
        }
    }

    async fn eventually<F, Fut>(what: &str, f: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..1000 {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    async fn annotation(c: &dyn ApiClient, name: &str, key: &str) -> Option<String> {
        let o = c.get(&cms(), Some("default"), name).await.ok()??;
        o.pointer(&format!("/metadata/annotations/{key}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Writes a ConfigMap's data into its `mirror` annotation; fails the first times it
    /// sees the keys of `fail_first`.
    struct Mirror {
        client: Arc<dyn ApiClient>,
        fail_first: Mutex<HashMap<String, usize>>,
    }

    #[async_trait::async_trait]
    impl Reconciler for Mirror {
        async fn reconcile(
            &self,
            key: &ObjectKey,
            object: Option<Arc<Value>>,
        ) -> Result<Action, String> {
            let Some(obj) = object else {
                return Ok(Action::Done);
            };
            if let Some(n) = self.fail_first.lock().get_mut(&key.name)
                && *n > 0
            {
                *n -= 1;
                return Err("injected failure".into());
            }
            let data = serde_json::to_string(obj.get("data").unwrap_or(&Value::Null))
                .map_err(|e| e.to_string())?;
            if obj
                .pointer("/metadata/annotations/mirror")
                .and_then(Value::as_str)
                == Some(data.as_str())
            {
                return Ok(Action::Done);
            }
            self.client
                .patch(
                    &cms(),
                    key.namespace.as_deref(),
                    &key.name,
                    &Patch::Merge(json!({"metadata": {"annotations": {"mirror": data}}})),
                    &PatchParams::default(),
                )
                .await
                .map_err(|e| format!("patching {key}: {e}"))?;
            Ok(Action::Done)
        }
    }

    #[tokio::test]
    async fn a_toy_controller_converges_and_retries_with_backoff() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let client: Arc<dyn ApiClient> = Arc::new(LocalClient::new(api, "controller:mirror"));
        let cm = |name: &str, data: Value| json!({"metadata": {"name": name}, "data": data});
        client
            .create(&cms(), Some("default"), cm("before", json!({"a": "1"})))
            .await
            .unwrap();
        let engine = Engine::new(client.clone(), config("solo"));
        let handle = engine.run_controller(
            ControllerSpec::new("mirror", "v1", "ConfigMap").workers(3),
            Arc::new(Mirror {
                client: client.clone(),
                fail_first: Mutex::new(HashMap::from([("flaky".to_string(), 3)])),
            }),
        );
        client
            .create(&cms(), Some("default"), cm("after", json!({"b": "2"})))
            .await
            .unwrap();
        client
            .create(&cms(), Some("default"), cm("flaky", json!({"c": "3"})))
            .await
            .unwrap();
        let c = client.as_ref();
        for (name, want) in [
            ("before", r#"{"a":"1"}"#),
            ("after", r#"{"b":"2"}"#),
            ("flaky", r#"{"c":"3"}"#),
        ] {
            eventually(name, || async move {
                annotation(c, name, "mirror").await.as_deref() == Some(want)
            })
            .await;
        }
        // A change is picked up.
        client
            .patch(
                &cms(),
                Some("default"),
                "before",
                &Patch::Merge(json!({"data": {"a": "9"}})),
                &PatchParams::default(),
            )
            .await
            .unwrap();
        eventually("before updated", || async move {
            annotation(c, "before", "mirror").await.as_deref() == Some(r#"{"a":"9"}"#)
        })
        .await;
        // The controller's writes went through the API: its field manager owns the field.
        let before = client
            .get(&cms(), Some("default"), "before")
            .await
            .unwrap()
            .unwrap();
        let managers: Vec<&str> = before["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains(&"controller:mirror"), "{managers:?}");

        eventually("queue drained", || async {
            let m = handle.metrics();
            m.queue_depth == 0 && m.waiting == 0
        })
        .await;
        let m = handle.metrics();
        assert_eq!(m.errors, 3, "{m:?}");
        assert!(m.reconciles >= 7, "{m:?}");
        assert!(m.active && m.latency_p50.is_some());
        assert_eq!(
            handle.queue().num_requeues(&ObjectKey {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("default".into()),
                name: "flaky".into(),
            }),
            0
        );
        assert_eq!(engine.metrics().len(), 1);
        handle.shutdown().await;
        assert!(engine.metrics().is_empty());
        engine.shutdown().await;
    }

    /// Counts a ConfigMap's Secrets (by owner uid) into its `children` annotation.
    struct CountChildren {
        client: Arc<dyn ApiClient>,
        secrets: Arc<Informer>,
        reconciled: Mutex<Vec<ObjectKey>>,
    }

    #[async_trait::async_trait]
    impl Reconciler for CountChildren {
        async fn reconcile(
            &self,
            key: &ObjectKey,
            object: Option<Arc<Value>>,
        ) -> Result<Action, String> {
            self.reconciled.lock().push(key.clone());
            let Some(obj) = object else {
                return Ok(Action::Done);
            };
            let n = self.secrets.by_owner(meta(&obj, "uid")).len().to_string();
            if obj
                .pointer("/metadata/annotations/children")
                .and_then(Value::as_str)
                == Some(n.as_str())
            {
                return Ok(Action::Done);
            }
            self.client
                .patch(
                    &cms(),
                    key.namespace.as_deref(),
                    &key.name,
                    &Patch::Merge(json!({"metadata": {"annotations": {"children": n}}})),
                    &PatchParams::default(),
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(Action::Done)
        }
    }

    #[tokio::test]
    async fn a_child_change_enqueues_its_owner() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let client: Arc<dyn ApiClient> = Arc::new(LocalClient::new(api, "controller:children"));
        let engine = Engine::new(client.clone(), config("solo"));
        let secrets = engine.informer("v1", "Secret");
        let reconciler = Arc::new(CountChildren {
            client: client.clone(),
            secrets: secrets.clone(),
            reconciled: Mutex::new(vec![]),
        });
        let spec = ControllerSpec::new("children", "v1", "ConfigMap").watch(WatchSpec::new(
            "v1",
            "Secret",
            MapRule::Owner,
        ));
        let handle = engine.run_controller(spec, reconciler.clone());
        assert!(Arc::ptr_eq(&secrets, &engine.informer("v1", "Secret")));
        let parent = client
            .create(
                &cms(),
                Some("default"),
                json!({"metadata": {"name": "parent"}}),
            )
            .await
            .unwrap();
        let c = client.as_ref();
        eventually("0 children", || async move {
            annotation(c, "parent", "children").await.as_deref() == Some("0")
        })
        .await;
        let secret = |name: &str, controller: bool| {
            json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                "name": "parent", "uid": meta(&parent, "uid"), "controller": controller}]}})
        };
        let secret_res = ApiResource::new("v1", "Secret");
        client
            .create(&secret_res, Some("default"), secret("child", true))
            .await
            .unwrap();
        eventually("1 child", || async move {
            annotation(c, "parent", "children").await.as_deref() == Some("1")
        })
        .await;
        client
            .delete(
                &secret_res,
                Some("default"),
                "child",
                &DeleteParams::default(),
            )
            .await
            .unwrap();
        eventually("0 children again", || async move {
            annotation(c, "parent", "children").await.as_deref() == Some("0")
        })
        .await;
        // Only the owner was ever reconciled (the Secrets are not primary objects).
        assert!(
            reconciler
                .reconciled
                .lock()
                .iter()
                .all(|k| k.kind == "ConfigMap" && k.name == "parent")
        );
        handle.shutdown().await;
        engine.shutdown().await;
    }

    fn loaded(
        client: Arc<dyn ApiClient>,
        api_version: &str,
        kind: &str,
        items: Vec<Value>,
    ) -> Arc<Informer> {
        let inf = Informer::new(
            client,
            ApiResource::new(api_version, kind),
            InformerConfig::default(),
        );
        inf.replace(items, "1".into());
        inf
    }

    fn change(old: Option<Value>, new: Option<Value>) -> Change {
        Change {
            old: old.map(Arc::new),
            new: new.map(Arc::new),
        }
    }

    fn mapped(m: &Mapper, rule: MapRule, c: &Change) -> Vec<String> {
        let mut out = BTreeSet::new();
        m.map(&rule, c, &mut out);
        out.into_iter()
            .map(|k| format!("{}/{}", k.namespace.unwrap_or_default(), k.name))
            .collect()
    }

    #[tokio::test]
    async fn map_rules_find_the_primary_objects() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let client: Arc<dyn ApiClient> = Arc::new(LocalClient::new(api, "test"));
        let rs = |ns: &str, name: &str, selector: Value| json!({"metadata": {"namespace": ns, "name": name}, "spec": {"selector": selector}});
        let primary = loaded(
            client.clone(),
            "apps/v1",
            "ReplicaSet",
            vec![
                rs("default", "web", json!({"matchLabels": {"app": "web"}})),
                rs(
                    "default",
                    "db",
                    json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}),
                ),
                rs("other", "web", json!({"matchLabels": {"app": "web"}})),
                rs("default", "plain", json!({"app": "web", "tier": "x"})),
                json!({"metadata": {"namespace": "default", "name": "none"}, "spec": {}}),
            ],
        );
        let m = Mapper {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            group: "apps".into(),
            primary,
            primary_namespaced: true,
        };
        let pod = |labels: Value| {
            json!({"metadata": {"namespace": "default", "name": "p", "labels": labels,
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1", "controller": true},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "db", "uid": "u2"},
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u3", "controller": true}]},
                "spec": {"nodeName": "n1"}})
        };
        let web = change(None, Some(pod(json!({"app": "web", "tier": "x"}))));
        assert_eq!(mapped(&m, MapRule::Owner, &web), ["default/web"]);
        assert_eq!(mapped(&m, MapRule::SameName, &web), ["default/p"]);
        assert_eq!(
            mapped(
                &m,
                MapRule::Selector {
                    path: "/spec/selector".into()
                },
                &web
            ),
            ["default/plain", "default/web"]
        );
        // Old and new labels both count.
        let relabel = change(
            Some(pod(json!({"app": "db"}))),
            Some(pod(json!({"app": "web"}))),
        );
        assert_eq!(
            mapped(
                &m,
                MapRule::Selector {
                    path: "/spec/selector".into()
                },
                &relabel
            ),
            ["default/db", "default/web"]
        );
        let deleted = change(Some(pod(json!({"app": "db"}))), None);
        assert_eq!(
            mapped(
                &m,
                MapRule::Selector {
                    path: "/spec/selector".into()
                },
                &deleted
            ),
            ["default/db"]
        );
        assert_eq!(
            mapped(&m, MapRule::All, &web),
            [
                "default/db",
                "default/none",
                "default/plain",
                "default/web",
                "other/web"
            ]
        );
        assert!(mapped(&m, MapRule::None, &web).is_empty());

        // Field: a pod's node names a (cluster-scoped) Node.
        let nodes = Mapper {
            api_version: "v1".into(),
            kind: "Node".into(),
            group: String::new(),
            primary: loaded(client.clone(), "v1", "Node", vec![]),
            primary_namespaced: false,
        };
        let moved = change(
            Some(pod(json!({}))),
            Some({
                let mut p = pod(json!({}));
                p["spec"]["nodeName"] = json!("n2");
                p
            }),
        );
        assert_eq!(
            mapped(
                &nodes,
                MapRule::Field {
                    path: "/spec/nodeName".into()
                },
                &moved
            ),
            ["/n1", "/n2"]
        );
        assert!(mapped(&nodes, MapRule::Owner, &web).is_empty());

        // Watch filters: namespace and labels (before or after).
        let sel = LabelSelector::parse("app=web").unwrap();
        assert!(passes(Some("default"), Some(&sel), &relabel));
        assert!(!passes(Some("other"), None, &relabel));
        assert!(!passes(None, Some(&sel), &deleted));
    }

    #[test]
    fn specs_are_validated() {
        assert!(
            ControllerSpec::new("x", "v1", "ConfigMap")
                .validate()
                .is_ok()
        );
        assert!(
            ControllerSpec::new("", "v1", "ConfigMap")
                .validate()
                .is_err()
        );
        let bad_sel = ControllerSpec::new("x", "v1", "ConfigMap").watch(WatchSpec {
            label_selector: Some("=x".into()),
            ..WatchSpec::new("v1", "Pod", MapRule::Owner)
        });
        assert!(bad_sel.validate().is_err());
        let bad_path = ControllerSpec::new("x", "v1", "Node").watch(WatchSpec::new(
            "v1",
            "Pod",
            MapRule::Field {
                path: "spec.nodeName".into(),
            },
        ));
        assert!(bad_path.validate().unwrap_err().contains("JSON pointer"));
    }

    /// Counts reconciles in flight per engine; notes any overlap between engines.
    struct Exclusive {
        me: usize,
        in_flight: Arc<[AtomicUsize; 3]>,
        counts: Arc<[AtomicUsize; 3]>,
        overlap: Arc<AtomicBool>,
    }

    struct InFlight<'a>(&'a AtomicUsize);

    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[async_trait::async_trait]
    impl Reconciler for Exclusive {
        async fn reconcile(
            &self,
            _key: &ObjectKey,
            _object: Option<Arc<Value>>,
        ) -> Result<Action, String> {
            self.in_flight[self.me].fetch_add(1, Ordering::SeqCst);
            let _guard = InFlight(&self.in_flight[self.me]);
            let others = (0..3)
                .filter(|&i| i != self.me)
                .any(|i| self.in_flight[i].load(Ordering::SeqCst) > 0);
            if others {
                self.overlap.store(true, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.counts[self.me].fetch_add(1, Ordering::SeqCst);
            Ok(Action::RequeueAfter(Duration::from_millis(20)))
        }
    }

    #[tokio::test]
    async fn two_engines_never_run_a_controller_at_once_and_fail_over() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let client: Arc<dyn ApiClient> = Arc::new(LocalClient::new(api, "controller:exclusive"));
        for i in 0..5 {
            client
                .create(
                    &cms(),
                    Some("default"),
                    json!({"metadata": {"name": format!("cm{i}")}}),
                )
                .await
                .unwrap();
        }
        let in_flight = Arc::new([
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        ]);
        let counts = Arc::new([
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        ]);
        let overlap = Arc::new(AtomicBool::new(false));
        let start = |me: usize| {
            let engine = Engine::new(client.clone(), config(&format!("engine-{me}")));
            let handle = engine.run_controller(
                ControllerSpec::new("exclusive", "v1", "ConfigMap").workers(2),
                Arc::new(Exclusive {
                    me,
                    in_flight: in_flight.clone(),
                    counts: counts.clone(),
                    overlap: overlap.clone(),
                }),
            );
            (engine, handle)
        };
        let count = |i: usize| counts[i].load(Ordering::SeqCst);
        let mut engines = vec![Some(start(0)), Some(start(1))];
        eventually("reconciles", || async { count(0) + count(1) > 50 }).await;
        let leader = usize::from(count(1) > 0);
        let follower = 1 - leader;
        assert_eq!(count(follower), 0, "only the leader reconciles");
        assert!(engines[leader].as_ref().unwrap().0.is_leader());
        assert!(!engines[follower].as_ref().unwrap().0.is_leader());
        let m = engines[follower].as_ref().unwrap().1.metrics();
        assert!(!m.active && m.reconciles == 0);

        // The leader crashes (no release): the follower takes over once the lease expires.
        drop(engines[leader].take());
        let t = Instant::now();
        eventually("failover", || async { count(follower) > 20 }).await;
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        let before = count(leader);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(count(leader), before, "the old leader stopped");

        // A third engine joins; the leader shuts down cleanly: a quick handover.
        engines.push(Some(start(2)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count(2), 0);
        let (engine, handle) = engines[follower].take().unwrap();
        let t = Instant::now();
        handle.shutdown().await;
        engine.shutdown().await;
        let third = engines[2].as_ref().unwrap().0.leadership();
        eventually("handover", || {
            let third = third.clone();
            async move { *third.borrow() }
        })
        .await;
        // Released, not expired (that would take a second from the last renewal).
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
        eventually("reconciles after the handover", || async { count(2) > 20 }).await;
        assert!(
            !overlap.load(Ordering::SeqCst),
            "two engines reconciled at once"
        );
        let (engine, handle) = engines[2].take().unwrap();
        handle.shutdown().await;
        engine.shutdown().await;
    }
}
