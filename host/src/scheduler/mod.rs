//! The scheduler: the host's scheduling framework. Every policy is a plugin (the
//! `scheduler` world, `wit/scheduler.wit`); the host owns what is the same for all of them:
//!
//! - the **cluster feed**: one task follows the engine's Node and Pod informers, turns
//!   objects into compact records ([`records`]) and hands each profile the *changes*
//!   (node set/removed, placed pod set/removed) — a policy keeps its own node table and is
//!   never re-sent the cluster per pod;
//! - **profiles**: one per `schedulerName`, each a scheduler Plugin of that name with its
//!   own [queue](queue) (active, backoff, unschedulable). `default-scheduler` is built in;
//!   pods naming a scheduler that does not run stay Pending with an Event saying so;
//! - the **cycle**: pop a batch, one `schedule` call decides it (the plugin assumes each
//!   placed pod so the next one sees it), bind concurrently through `pods/binding`, take an
//!   assumption back when its binding fails, record `Scheduled` / `FailedScheduling`
//!   Events (`0/3 nodes are available: 2 Insufficient cpu, …`) and the `PodScheduled`
//!   condition;
//! - **faults and swaps**: a failed plugin call drops its instance; the next cycle starts
//!   a fresh one and sends it the whole cluster again (also after a new version is
//!   swapped in), so decisions never rest on lost state.
//!
//! It runs on the leader only (the engine's lease), like kube-scheduler with leader
//! election on.

pub mod queue;
pub mod records;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::api::admission::SchedulerRunner;
use crate::api::client::{ApiClient, ApiResource, Patch, PatchParams};
use crate::api::object::{is_deleting, now_rfc3339};
use crate::engine::{Change, Engine, Informer};
use crate::plugin::PluginError;
use crate::plugin::scheduler::{ClusterChange, Decision, NodeInfo, PodInfo, SchedulerPlugin};
use queue::{PodKey, SchedulingQueue};

/// The scheduler pods get when they name none.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// A scheduling policy as the framework calls it: a Wasm plugin ([`SchedulerPlugin`]), or
/// native code (the benchmark's baseline).
#[async_trait::async_trait]
pub trait Policy: Send + Sync + 'static {
    /// Whether an instance with state runs.
    async fn is_started(&self) -> bool;
    /// A fresh instance with no state.
    async fn start(&self) -> Result<(), PluginError>;
    /// Changes of the cluster, in order.
    async fn update(&self, changes: &[ClusterChange]) -> Result<(), PluginError>;
    /// One decision per pod.
    async fn schedule(&self, pods: &[PodInfo]) -> Result<Vec<Decision>, PluginError>;
}

#[async_trait::async_trait]
impl Policy for SchedulerPlugin {
    async fn is_started(&self) -> bool {
        SchedulerPlugin::is_started(self).await
    }
    async fn start(&self) -> Result<(), PluginError> {
        SchedulerPlugin::start(self).await
    }
    async fn update(&self, changes: &[ClusterChange]) -> Result<(), PluginError> {
        SchedulerPlugin::update(self, changes).await
    }
    async fn schedule(&self, pods: &[PodInfo]) -> Result<Vec<Decision>, PluginError> {
        SchedulerPlugin::schedule(self, pods).await
    }
}

/// Tunables.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Pods decided per plugin call.
    pub batch: usize,
    /// Bindings in flight per profile.
    pub bind_concurrency: usize,
    /// Record `Scheduled` events (best-effort, like every event).
    pub scheduled_events: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            batch: 256,
            bind_concurrency: 512,
            scheduled_events: true,
        }
    }
}

/// Events in flight before further ones are dropped (client-go's broadcaster drops too).
const EVENTS_IN_FLIGHT: usize = 1000;

/// The cluster as the policies see it: the source of full syncs.
#[derive(Default)]
struct ClusterState {
    nodes: BTreeMap<String, NodeInfo>,
    /// Placed pods (bound, not finished) by uid.
    placed: HashMap<String, PodInfo>,
    /// Pending pods whose scheduler does not run: uid → (schedulerName, key, priority).
    orphans: HashMap<String, (String, PodKey, i32)>,
    /// Orphans told so by an Event.
    orphans_told: HashSet<String>,
}

/// Latency samples kept for the metrics (a ring).
const SAMPLES: usize = 4096;

#[derive(Default)]
struct ProfileMetrics {
    scheduled: AtomicU64,
    unschedulable: AtomicU64,
    errors: AtomicU64,
    bind_failures: AtomicU64,
    /// Queue → bound, in µs.
    latency: Mutex<Vec<u64>>,
    next: AtomicU64,
}

impl ProfileMetrics {
    fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = usize::try_from(self.next.fetch_add(1, Ordering::Relaxed)).unwrap_or(0) % SAMPLES;
        let mut l = self.latency.lock();
        if l.len() < SAMPLES {
            l.push(us);
        } else {
            l[i] = us;
        }
    }

    fn quantile(&self, q: f64) -> Option<u64> {
        let mut v = self.latency.lock().clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let idx = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(idx).copied()
    }
}

/// One `schedulerName` with its policy and queue.
struct Profile {
    name: String,
    policy: RwLock<Arc<dyn Policy>>,
    /// Bumped by every swap: the next cycle starts the new policy and syncs it.
    generation: AtomicU64,
    queue: Mutex<SchedulingQueue>,
    /// Changes not yet sent to the policy (appended under the cluster state's lock).
    changes: Mutex<Vec<ClusterChange>>,
    /// Pods this profile's policy placed whose binding is not confirmed, by uid.
    assumed: Mutex<HashMap<String, PodInfo>>,
    /// When each queued pod was first seen (for latency).
    first_seen: Mutex<HashMap<String, Instant>>,
    notify: Notify,
    stopped: AtomicBool,
    /// Queue but do not decide (see [`Scheduler::set_paused`]).
    paused: AtomicBool,
    binds: Arc<Semaphore>,
    metrics: ProfileMetrics,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    engine: Arc<Engine>,
    client: Arc<dyn ApiClient>,
    config: SchedulerConfig,
    state: Mutex<ClusterState>,
    profiles: RwLock<HashMap<String, Arc<Profile>>>,
    events: Arc<Semaphore>,
    /// The feed has loaded the informers' first lists.
    synced: tokio::sync::watch::Sender<bool>,
    pods: Arc<Informer>,
    /// The last `FailedScheduling` message recorded per pending pod (uid): a repeat of the
    /// same message is not recorded again (client-go's recorder would only bump a count).
    failures_told: Mutex<HashMap<String, String>>,
}

/// The scheduler (see the [module](self) docs). Register it with the API's plugin loop
/// ([`crate::api::admission::Admission::set_scheduler_runner`]) so that scheduler Plugins
/// become its profiles.
pub struct Scheduler {
    shared: Arc<Shared>,
    feed: Mutex<Option<JoinHandle<()>>>,
}

fn pods_resource() -> ApiResource {
    ApiResource::new("v1", "pods")
}

fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn scheduler_name(pod: &Value) -> &str {
    let n = str_at(pod, "/spec/schedulerName");
    if n.is_empty() { DEFAULT_SCHEDULER } else { n }
}

fn pod_key(pod: &Value) -> PodKey {
    PodKey {
        namespace: str_at(pod, "/metadata/namespace").to_string(),
        name: str_at(pod, "/metadata/name").to_string(),
        uid: str_at(pod, "/metadata/uid").to_string(),
    }
}

fn priority(pod: &Value) -> i32 {
    pod.pointer("/spec/priority")
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or(0)
}

impl Scheduler {
    /// A scheduler over the engine's informers, writing through `client` (bindings, events,
    /// conditions). Starts its feed at once; profiles come from [`Scheduler::run_profile`].
    pub fn start(
        engine: Arc<Engine>,
        client: Arc<dyn ApiClient>,
        config: SchedulerConfig,
    ) -> Arc<Self> {
        let pods = engine.informer("v1", "Pod");
        let nodes = engine.informer("v1", "Node");
        let shared = Arc::new(Shared {
            engine,
            client,
            config,
            state: Mutex::new(ClusterState::default()),
            profiles: RwLock::new(HashMap::new()),
            events: Arc::new(Semaphore::new(EVENTS_IN_FLIGHT)),
            synced: tokio::sync::watch::Sender::new(false),
            pods: pods.clone(),
            failures_told: Mutex::new(HashMap::new()),
        });
        let feed = tokio::spawn(feed(shared.clone(), nodes, pods));
        Arc::new(Scheduler {
            shared,
            feed: Mutex::new(Some(feed)),
        })
    }

    /// Starts profile `name` with `policy`, or swaps its policy. The new policy is started
    /// and synced by the profile's next cycle.
    pub fn run_profile(&self, name: &str, policy: Arc<dyn Policy>) {
        let existing = self.shared.profiles.read().get(name).cloned();
        if let Some(p) = existing {
            *p.policy.write() = policy;
            p.generation.fetch_add(1, Ordering::SeqCst);
            p.notify.notify_one();
            tracing::info!(profile = %name, "scheduler policy swapped");
            return;
        }
        let profile = Arc::new(Profile {
            name: name.to_string(),
            policy: RwLock::new(policy),
            generation: AtomicU64::new(1),
            queue: Mutex::new(SchedulingQueue::default()),
            changes: Mutex::new(Vec::new()),
            assumed: Mutex::new(HashMap::new()),
            first_seen: Mutex::new(HashMap::new()),
            notify: Notify::new(),
            stopped: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            binds: Arc::new(Semaphore::new(self.shared.config.bind_concurrency)),
            metrics: ProfileMetrics::default(),
            task: Mutex::new(None),
        });
        {
            // Under the state lock, so that the feed's next changes go to it.
            let mut state = self.shared.state.lock();
            self.shared
                .profiles
                .write()
                .insert(name.to_string(), profile.clone());
            let now = Instant::now();
            let adopted: Vec<String> = state
                .orphans
                .iter()
                .filter(|(_, (s, _, _))| s == name)
                .map(|(u, _)| u.clone())
                .collect();
            let mut q = profile.queue.lock();
            for uid in adopted {
                if let Some((_, key, prio)) = state.orphans.remove(&uid) {
                    state.orphans_told.remove(&uid);
                    profile.first_seen.lock().insert(uid, now);
                    q.add(key, prio, now);
                }
            }
        }
        let task = tokio::spawn(cycle(self.shared.clone(), profile.clone()));
        *profile.task.lock() = Some(task);
        tracing::info!(profile = %name, "scheduler profile started");
    }

    /// Stops profile `name`; its pending pods wait for a scheduler of that name.
    pub fn stop_profile(&self, name: &str) {
        let mut state = self.shared.state.lock();
        let Some(p) = self.shared.profiles.write().remove(name) else {
            return;
        };
        p.stopped.store(true, Ordering::SeqCst);
        p.notify.notify_one();
        if let Some(t) = p.task.lock().take() {
            t.abort();
        }
        // Its pending pods become orphans (told so at the next change of each).
        for obj in self.shared.pods.all() {
            if str_at(&obj, "/spec/nodeName").is_empty()
                && scheduler_name(&obj) == name
                && !is_terminal(&obj)
            {
                let key = pod_key(&obj);
                state
                    .orphans
                    .insert(key.uid.clone(), (name.to_string(), key, priority(&obj)));
            }
        }
        tracing::info!(profile = %name, "scheduler profile stopped");
    }

    /// Pauses (or resumes) profile `name`: pods keep being queued but none is decided.
    /// Returns whether the profile exists.
    pub fn set_paused(&self, name: &str, paused: bool) -> bool {
        let Some(p) = self.shared.profiles.read().get(name).cloned() else {
            return false;
        };
        p.paused.store(paused, Ordering::SeqCst);
        p.notify.notify_one();
        true
    }

    /// The names of the running profiles.
    pub fn profiles(&self) -> Vec<String> {
        let mut v: Vec<String> = self.shared.profiles.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Profile `name`'s metrics: pods scheduled, unschedulable attempts, errors, the queue,
    /// and queue-to-bound latency.
    pub fn metrics(&self, name: &str) -> Option<Value> {
        let p = self.shared.profiles.read().get(name).cloned()?;
        let (active, backoff, unschedulable, in_flight) = p.queue.lock().counts();
        let m = &p.metrics;
        let ms = |us: Option<u64>| us.map(|u| u as f64 / 1000.0);
        Some(json!({
            "scheduled": m.scheduled.load(Ordering::Relaxed),
            "unschedulableAttempts": m.unschedulable.load(Ordering::Relaxed),
            "errors": m.errors.load(Ordering::Relaxed),
            "bindFailures": m.bind_failures.load(Ordering::Relaxed),
            "queue": {"active": active, "backoff": backoff, "unschedulable": unschedulable, "inFlight": in_flight},
            "latencyP50Ms": ms(m.quantile(0.5)),
            "latencyP99Ms": ms(m.quantile(0.99)),
        }))
    }

    /// Waits until the feed has loaded the nodes and pods.
    pub async fn wait_synced(&self) {
        let mut rx = self.shared.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Stops the feed and every profile.
    pub fn shutdown(&self) {
        if let Some(t) = self.feed.lock().take() {
            t.abort();
        }
        let names = self.profiles();
        for n in names {
            self.stop_profile(&n);
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// [`SchedulerRunner`] for the API's plugin loop: a scheduler Plugin becomes the profile of
/// its name.
pub struct PluginSchedulers {
    scheduler: Arc<Scheduler>,
}

impl PluginSchedulers {
    pub fn new(scheduler: Arc<Scheduler>) -> Arc<Self> {
        Arc::new(PluginSchedulers { scheduler })
    }
}

#[async_trait::async_trait]
impl SchedulerRunner for PluginSchedulers {
    async fn run(&self, name: &str, plugin: Arc<SchedulerPlugin>) -> Result<(), String> {
        // The first-call check: a version whose init fails is not activated.
        plugin.start().await.map_err(|e| e.to_string())?;
        plugin.reset().await;
        self.scheduler.run_profile(name, plugin);
        Ok(())
    }

    async fn stop(&self, name: &str) {
        self.scheduler.stop_profile(name);
    }

    async fn metrics(&self, name: &str) -> Option<Value> {
        self.scheduler.metrics(name)
    }
}

// ---------------------------------------------------------------------------------------
// The cluster feed.

async fn feed(shared: Arc<Shared>, nodes: Arc<Informer>, pods: Arc<Informer>) {
    let mut node_rx = nodes.subscribe();
    let mut pod_rx = pods.subscribe();
    nodes.wait_synced().await;
    pods.wait_synced().await;
    // The caches as they are now; the subscriptions then bring what changed since (the
    // handling is idempotent: a change already seen changes nothing).
    {
        let mut batch = Batch::default();
        for n in nodes.all() {
            on_node(&shared, &mut batch, None, Some(&n));
        }
        for p in pods.all() {
            on_pod(&shared, &mut batch, Some(&p));
        }
        batch.finish(&shared);
    }
    shared.synced.send_replace(true);
    tracing::info!(
        nodes = nodes.len(),
        pods = pods.len(),
        "scheduler: cluster state loaded"
    );
    loop {
        let mut batch = Batch::default();
        tokio::select! {
            c = node_rx.recv() => {
                let Some(c) = c else { return };
                node_change(&shared, &mut batch, c);
            }
            c = pod_rx.recv() => {
                let Some(c) = c else { return };
                pod_change(&shared, &mut batch, c);
            }
        }
        // Drain what else is there, so that a burst is handled under one wake-up.
        for _ in 0..4096 {
            let mut any = false;
            if let Ok(c) = node_rx.try_recv() {
                node_change(&shared, &mut batch, c);
                any = true;
            }
            if let Ok(c) = pod_rx.try_recv() {
                pod_change(&shared, &mut batch, c);
                any = true;
            }
            if !any {
                break;
            }
        }
        batch.finish(&shared);
    }
}

/// What one round of the feed did, applied to the profiles at its end.
#[derive(Default)]
struct Batch {
    /// Something happened that may make unschedulable pods fit.
    moved: bool,
    /// Profiles with new pods or changes.
    wake: HashSet<String>,
    wake_all: bool,
    /// Orphans to tell.
    tell: Vec<(PodKey, String)>,
}

impl Batch {
    fn finish(self, shared: &Arc<Shared>) {
        let profiles: Vec<Arc<Profile>> = shared.profiles.read().values().cloned().collect();
        let now = Instant::now();
        for p in &profiles {
            if self.moved {
                p.queue.lock().move_all(now);
            }
            if self.wake_all || self.moved || self.wake.contains(&p.name) {
                p.notify.notify_one();
            }
        }
        for (key, scheduler) in self.tell {
            let message = format!(
                "no scheduler named {scheduler:?} runs in this cluster: the pod stays Pending until a Plugin of kind scheduler named {scheduler:?} is loaded"
            );
            record_event(shared, &key, "Warning", "FailedScheduling", &message);
        }
    }
}

fn node_change(shared: &Arc<Shared>, batch: &mut Batch, c: Change) {
    on_node(shared, batch, c.old.as_deref(), c.new.as_deref());
}

fn on_node(shared: &Arc<Shared>, batch: &mut Batch, old: Option<&Value>, new: Option<&Value>) {
    let profiles: Vec<Arc<Profile>> = shared.profiles.read().values().cloned().collect();
    let mut state = shared.state.lock();
    match new {
        Some(n) => {
            let info = records::node_info(n);
            if info.name.is_empty() {
                return;
            }
            if state
                .nodes
                .get(&info.name)
                .is_some_and(|o| !records::node_differs(o, &info))
            {
                return;
            }
            state.nodes.insert(info.name.clone(), info.clone());
            for p in &profiles {
                p.changes.lock().push(ClusterChange::NodeSet(info.clone()));
            }
            batch.moved = true;
        }
        None => {
            let name = old.map(|o| str_at(o, "/metadata/name")).unwrap_or("");
            if state.nodes.remove(name).is_some() {
                for p in &profiles {
                    p.changes
                        .lock()
                        .push(ClusterChange::NodeRemoved(name.to_string()));
                }
                batch.wake_all = true;
            }
        }
    }
}

fn pod_change(shared: &Arc<Shared>, batch: &mut Batch, c: Change) {
    match (&c.new, &c.old) {
        (Some(new), old) => {
            // An update that changes nothing a policy sees (status, managed fields, the
            // scheduler's own condition) does not retry an unschedulable pod, as
            // kube-scheduler's `isPodUpdated` does not.
            if let Some(old) = old
                && str_at(new, "/spec/nodeName").is_empty()
                && !is_terminal(new)
                && !is_deleting(new)
                && old.get("spec") == new.get("spec")
                && old.pointer("/metadata/labels") == new.pointer("/metadata/labels")
                && old.pointer("/metadata/annotations") == new.pointer("/metadata/annotations")
            {
                return;
            }
            on_pod(shared, batch, Some(new))
        }
        (None, Some(old)) => {
            let uid = str_at(old, "/metadata/uid").to_string();
            pod_gone(shared, batch, &uid);
        }
        (None, None) => {}
    }
}

/// A pod is gone (deleted): forget it everywhere.
fn pod_gone(shared: &Arc<Shared>, batch: &mut Batch, uid: &str) {
    let profiles: Vec<Arc<Profile>> = shared.profiles.read().values().cloned().collect();
    shared.failures_told.lock().remove(uid);
    let mut state = shared.state.lock();
    state.orphans.remove(uid);
    state.orphans_told.remove(uid);
    let was_placed = state.placed.remove(uid).is_some();
    for p in &profiles {
        p.queue.lock().remove(uid);
        p.first_seen.lock().remove(uid);
        let assumed = p.assumed.lock().remove(uid).is_some();
        if was_placed || assumed {
            p.changes
                .lock()
                .push(ClusterChange::PodRemoved(uid.to_string()));
        }
    }
    if was_placed {
        batch.moved = true;
    }
}

fn on_pod(shared: &Arc<Shared>, batch: &mut Batch, pod: Option<&Value>) {
    let Some(pod) = pod else { return };
    let uid = str_at(pod, "/metadata/uid");
    if uid.is_empty() {
        return;
    }
    let node = str_at(pod, "/spec/nodeName");
    if is_terminal(pod) {
        // A finished pod frees its node.
        pod_gone(shared, batch, uid);
        return;
    }
    if !node.is_empty() {
        shared.failures_told.lock().remove(uid);
        let info = records::pod_info(pod, false);
        let profiles: Vec<Arc<Profile>> = shared.profiles.read().values().cloned().collect();
        let mut state = shared.state.lock();
        state.orphans.remove(uid);
        state.orphans_told.remove(uid);
        let changed = state
            .placed
            .get(uid)
            .is_none_or(|o| records::placed_differs(o, &info));
        if changed {
            state.placed.insert(uid.to_string(), info.clone());
        }
        for p in &profiles {
            p.queue.lock().done(uid);
            p.first_seen.lock().remove(uid);
            p.assumed.lock().remove(uid);
            if changed {
                p.changes.lock().push(ClusterChange::PodSet(info.clone()));
            }
        }
        return;
    }
    // Pending.
    let key = pod_key(pod);
    let deleting = is_deleting(pod);
    let scheduler = scheduler_name(pod);
    let profile = shared.profiles.read().get(scheduler).cloned();
    if deleting {
        pod_gone(shared, batch, uid);
        return;
    }
    match profile {
        Some(p) => {
            let now = Instant::now();
            p.first_seen.lock().entry(uid.to_string()).or_insert(now);
            p.queue.lock().add(key, priority(pod), now);
            batch.wake.insert(p.name.clone());
        }
        None => {
            let mut state = shared.state.lock();
            let first = !state.orphans_told.contains(uid);
            state.orphans.insert(
                uid.to_string(),
                (scheduler.to_string(), key.clone(), priority(pod)),
            );
            if first {
                state.orphans_told.insert(uid.to_string());
                batch.tell.push((key, scheduler.to_string()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The scheduling cycle of one profile.

async fn cycle(shared: Arc<Shared>, profile: Arc<Profile>) {
    let mut synced_generation = 0;
    let mut leadership = shared.engine.leadership();
    let mut synced = shared.synced.subscribe();
    let _ = synced.wait_for(|s| *s).await;
    let mut failures: u32 = 0;
    loop {
        if profile.stopped.load(Ordering::SeqCst) {
            return;
        }
        if profile.paused.load(Ordering::SeqCst) {
            profile.notify.notified().await;
            continue;
        }
        if !*leadership.borrow_and_update() {
            let _ = leadership.changed().await;
            continue;
        }
        let generation = profile.generation.load(Ordering::SeqCst);
        let policy = profile.policy.read().clone();
        if generation != synced_generation || !policy.is_started().await {
            match start_and_sync(&shared, &profile, &policy).await {
                Ok(()) => {
                    synced_generation = generation;
                    failures = 0;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = Duration::from_millis(100u64 << failures.min(9));
                    tracing::warn!(profile = %profile.name, error = %e, ?wait, "starting the scheduler policy failed");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
        }
        let changes = std::mem::take(&mut *profile.changes.lock());
        if !changes.is_empty()
            && let Err(e) = policy.update(&changes).await
        {
            tracing::warn!(profile = %profile.name, error = %e, "the scheduler policy failed on an update; restarting it");
            continue;
        }
        let (keys, next_backoff) = {
            let mut q = profile.queue.lock();
            let next = q.flush(Instant::now());
            (q.pop(shared.config.batch), next)
        };
        if keys.is_empty() {
            let wait = next_backoff
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(5))
                .clamp(Duration::from_millis(1), Duration::from_secs(5));
            tokio::select! {
                _ = profile.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = leadership.changed() => {}
            }
            continue;
        }
        schedule_batch(&shared, &profile, &policy, keys).await;
    }
}

/// Starts the policy afresh and sends it the whole cluster (and the pods it assumed
/// whose binding is not confirmed yet).
async fn start_and_sync(
    shared: &Arc<Shared>,
    profile: &Arc<Profile>,
    policy: &Arc<dyn Policy>,
) -> Result<(), PluginError> {
    policy.start().await?;
    let full: Vec<ClusterChange> = {
        let state = shared.state.lock();
        let mut changes = profile.changes.lock();
        changes.clear();
        let assumed = profile.assumed.lock();
        let mut full = Vec::with_capacity(state.nodes.len() + state.placed.len() + assumed.len());
        full.extend(state.nodes.values().cloned().map(ClusterChange::NodeSet));
        full.extend(state.placed.values().cloned().map(ClusterChange::PodSet));
        full.extend(
            assumed
                .iter()
                .filter(|(uid, _)| !state.placed.contains_key(*uid))
                .map(|(_, p)| ClusterChange::PodSet(p.clone())),
        );
        full
    };
    let started = Instant::now();
    // In chunks, so that one call stays well within the plugin's deadline.
    for chunk in full.chunks(8192) {
        policy.update(chunk).await?;
    }
    tracing::info!(profile = %profile.name, records = full.len(), took = ?started.elapsed(), "scheduler policy synced");
    Ok(())
}

async fn schedule_batch(
    shared: &Arc<Shared>,
    profile: &Arc<Profile>,
    policy: &Arc<dyn Policy>,
    keys: Vec<PodKey>,
) {
    // The pods as the cache has them now: still pending, still the same pod.
    let mut pods = Vec::with_capacity(keys.len());
    {
        let mut gone = vec![];
        for k in keys {
            match shared.pods.get(Some(&k.namespace), &k.name) {
                Some(p)
                    if str_at(&p, "/metadata/uid") == k.uid
                        && str_at(&p, "/spec/nodeName").is_empty()
                        && !is_deleting(&p)
                        && !is_terminal(&p) =>
                {
                    pods.push((k, records::pod_info(&p, true)));
                }
                _ => gone.push(k.uid),
            }
        }
        if !gone.is_empty() {
            let mut q = profile.queue.lock();
            for uid in gone {
                q.done(&uid);
            }
        }
    }
    if pods.is_empty() {
        return;
    }
    let infos: Vec<PodInfo> = pods.iter().map(|(_, i)| i.clone()).collect();
    let decisions = match policy.schedule(&infos).await {
        Ok(d) => d,
        Err(e) => {
            profile
                .metrics
                .errors
                .fetch_add(pods.len() as u64, Ordering::Relaxed);
            tracing::warn!(profile = %profile.name, error = %e, pods = pods.len(), "the scheduler policy failed; its pods are retried, each alone");
            let now = Instant::now();
            let mut q = profile.queue.lock();
            for (k, _) in &pods {
                if pods.len() > 1 {
                    q.retry_alone(&k.uid, now);
                } else {
                    q.retry(&k.uid, now);
                }
            }
            drop(q);
            if pods.len() == 1 {
                let message = format!(
                    "the scheduler plugin {:?} failed on this pod: {e}",
                    profile.name
                );
                mark_unschedulable(shared, &pods[0].0, &message);
            }
            return;
        }
    };
    let nodes = shared.state.lock().nodes.len();
    let now = Instant::now();
    for ((key, mut info), decision) in pods.into_iter().zip(decisions) {
        match decision {
            Decision::Node(node) => {
                info.node_name = Some(node.clone());
                profile.assumed.lock().insert(key.uid.clone(), info);
                spawn_bind(shared, profile, key, node);
            }
            Decision::Unschedulable(reasons) => {
                profile
                    .metrics
                    .unschedulable
                    .fetch_add(1, Ordering::Relaxed);
                profile.queue.lock().unschedulable(&key.uid, now);
                let reasons: Vec<(String, u32)> =
                    reasons.into_iter().map(|r| (r.reason, r.nodes)).collect();
                let message = records::fit_error(nodes, &reasons);
                mark_unschedulable(shared, &key, &message);
            }
            Decision::Error(message) => {
                profile.metrics.errors.fetch_add(1, Ordering::Relaxed);
                profile.queue.lock().retry(&key.uid, now);
                let message = format!(
                    "the scheduler plugin {:?} failed for this pod: {message}",
                    profile.name
                );
                mark_unschedulable(shared, &key, &message);
            }
        }
    }
}

fn spawn_bind(shared: &Arc<Shared>, profile: &Arc<Profile>, key: PodKey, node: String) {
    let (shared, profile) = (shared.clone(), profile.clone());
    tokio::spawn(async move {
        let Ok(_permit) = profile.binds.clone().acquire_owned().await else {
            return;
        };
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": key.name, "namespace": key.namespace, "uid": key.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let result = shared
            .client
            .create_subresource(
                &pods_resource(),
                Some(&key.namespace),
                &key.name,
                "binding",
                binding,
            )
            .await;
        match result {
            Ok(_) => {
                let first = profile.first_seen.lock().remove(&key.uid);
                profile.queue.lock().done(&key.uid);
                profile.metrics.scheduled.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = first {
                    profile.metrics.observe(t.elapsed());
                }
                if shared.config.scheduled_events {
                    let message = format!(
                        "Successfully assigned {}/{} to {node}",
                        key.namespace, key.name
                    );
                    record_event(&shared, &key, "Normal", "Scheduled", &message);
                }
            }
            Err(e) => {
                profile
                    .metrics
                    .bind_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(pod = %key.name, %node, error = %e, "binding failed");
                // Take the assumption back, unless the feed has seen the pod placed (then
                // its record already replaced the assumption).
                {
                    let state = shared.state.lock();
                    let assumed = profile.assumed.lock().remove(&key.uid).is_some();
                    if assumed && !state.placed.contains_key(&key.uid) {
                        profile
                            .changes
                            .lock()
                            .push(ClusterChange::PodRemoved(key.uid.clone()));
                    }
                }
                let mut q = profile.queue.lock();
                if e.is_not_found() {
                    q.done(&key.uid);
                } else {
                    q.retry(&key.uid, Instant::now());
                }
                drop(q);
                profile.notify.notify_one();
            }
        }
    });
}

/// Records `FailedScheduling` and sets the pod's `PodScheduled` condition to False with the
/// message (once per distinct message).
fn mark_unschedulable(shared: &Arc<Shared>, key: &PodKey, message: &str) {
    let current = shared.pods.get(Some(&key.namespace), &key.name);
    let same = current.as_ref().is_some_and(|p| {
        p.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some("PodScheduled")
                        && c.get("status").and_then(Value::as_str) == Some("False")
                        && c.get("message").and_then(Value::as_str) == Some(message)
                })
            })
    });
    let repeat = shared
        .failures_told
        .lock()
        .insert(key.uid.clone(), message.to_string())
        .is_some_and(|m| m == message);
    if !repeat {
        record_event(shared, key, "Warning", "FailedScheduling", message);
    }
    if same {
        return;
    }
    let client = shared.client.clone();
    let key = key.clone();
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": now_rfc3339(),
    }]}});
    tokio::spawn(async move {
        let params = PatchParams {
            subresource: Some("status".into()),
            ..Default::default()
        };
        if let Err(e) = client
            .patch(
                &pods_resource(),
                Some(&key.namespace),
                &key.name,
                &Patch::Strategic(patch),
                &params,
            )
            .await
        {
            tracing::debug!(pod = %key.name, error = %e, "setting PodScheduled=False failed");
        }
    });
}

/// An Event about a pod, recorded asynchronously and best-effort.
fn record_event(shared: &Arc<Shared>, key: &PodKey, kind: &str, reason: &str, message: &str) {
    let Ok(permit) = shared.events.clone().try_acquire_owned() else {
        tracing::debug!(pod = %key.name, "too many events in flight: dropping one");
        return;
    };
    let ts = now_rfc3339();
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{:x}", key.name, nanos),
            "namespace": key.namespace,
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": key.namespace,
            "name": key.name,
            "uid": key.uid,
        },
        "type": kind,
        "reason": reason,
        "message": message,
        "source": {"component": DEFAULT_SCHEDULER},
        "reportingComponent": DEFAULT_SCHEDULER,
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    });
    let client = shared.client.clone();
    let namespace = key.namespace.clone();
    tokio::spawn(async move {
        if let Err(e) = client
            .create(&ApiResource::new("v1", "events"), Some(&namespace), event)
            .await
        {
            tracing::debug!(error = %e, "recording a scheduler event failed");
        }
        drop(permit);
    });
}

#[cfg(test)]
mod tests;
