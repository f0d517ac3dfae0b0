//! `tug bench scheduler`: scheduling throughput in the spirit of Kubernetes'
//! `scheduler_perf` (`SchedulingBasic`): N nodes (4 CPUs, 32 GiB, 110 pods each, spread
//! over zones), some pods already placed, then many pods created at once and scheduled.
//! Everything runs in this process, as in `scheduler_perf` (an in-process API server over a
//! real store, no kubelets): the pods are created through the API's full write path and
//! bound through `pods/binding`.
//!
//! Reported per policy: pods/s (the measured pods over the time from the first create to
//! the last binding seen by a watch) and the latency from a pod's create to its binding
//! (p50, p99). The same policy runs as the built-in Wasm component and compiled natively
//! (the `default-scheduler` crate linked into this binary), and the ratio is printed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tugboat_plugin_sdk::scheduler as sdk;
use tugboat_plugin_sdk::scheduler::SchedulerPolicy;

use crate::api::client::{ApiClient, ApiResource, LocalClient};
use crate::api::{Api, ApiConfig};
use crate::engine::{Engine, EngineConfig};
use crate::plugin::PluginError;
use crate::plugin::scheduler::{
    ClusterChange, Decision, HostPort, Label, NodeInfo, PodInfo, ReasonCount, Resources,
    SchedulerPlugin, Taint, TaintEffect, Toleration,
};
use crate::scheduler::{DEFAULT_SCHEDULER, Policy, Scheduler, SchedulerConfig};
use crate::store::redb::{RedbStore, RedbStoreConfig};

#[derive(Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// Nodes.
    #[arg(long, default_value_t = 5000)]
    pub nodes: usize,
    /// Pods placed before the measurement.
    #[arg(long, default_value_t = 1000)]
    pub init_pods: usize,
    /// Pods created and scheduled during the measurement.
    #[arg(long, default_value_t = 10000)]
    pub pods: usize,
    /// Concurrent creators.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Zones the nodes are spread over.
    #[arg(long, default_value_t = 10)]
    pub zones: usize,
    /// Which policy builds to run.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    pub policy: Which,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Wasm,
    Native,
    Both,
}

struct Figures {
    pods_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    elapsed: Duration,
    server_p99_ms: Option<f64>,
    /// Pods per node at the end: (min, max).
    spread: (usize, usize),
    /// A backlog of pods created first, then scheduled: pods/s.
    backlog_pods_per_sec: f64,
}

pub async fn bench_scheduler(args: SchedulerArgs) -> Result<()> {
    println!(
        "scheduler benchmark: {} nodes, {} pods placed first, then {} pods created by {} clients and scheduled",
        args.nodes, args.init_pods, args.pods, args.clients
    );
    let mut wasm = None;
    let mut native = None;
    if args.policy != Which::Native {
        let f = run_one(&args, Which::Wasm).await?;
        report("wasm (built-in default-scheduler component)", &f);
        wasm = Some(f);
    }
    if args.policy != Which::Wasm {
        let f = run_one(&args, Which::Native).await?;
        report("native (the same crate compiled into tug)", &f);
        native = Some(f);
    }
    if let (Some(w), Some(n)) = (&wasm, &native) {
        println!(
            "  ratio wasm/native: {:.2} created and scheduled together, {:.2} for a backlog (target >= 0.5)",
            w.pods_per_sec / n.pods_per_sec,
            w.backlog_pods_per_sec / n.backlog_pods_per_sec,
        );
    }
    if let Some(w) = &wasm {
        println!(
            "  wasm target >= 2000 pods/s: {}",
            if w.pods_per_sec >= 2000.0 && w.backlog_pods_per_sec >= 2000.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    Ok(())
}

fn report(what: &str, f: &Figures) {
    println!(
        "  {what}:\n    created and scheduled together: {:.0} pods/s ({:.2} s for the measured pods), create→bound p50 {:.1} ms, p99 {:.1} ms; queue→bound p99 {} ms\n    a backlog created first, then scheduled: {:.0} pods/s\n    pods per node at the end: min {}, max {}",
        f.pods_per_sec,
        f.elapsed.as_secs_f64(),
        f.p50_ms,
        f.p99_ms,
        f.server_p99_ms
            .map_or("-".to_string(), |v| format!("{v:.1}")),
        f.backlog_pods_per_sec,
        f.spread.0,
        f.spread.1,
    );
}

fn pods() -> ApiResource {
    ApiResource::new("v1", "pods")
}

async fn run_one(args: &SchedulerArgs, which: Which) -> Result<Figures> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let store = RedbStore::open(&dir.path().join("store.redb"), RedbStoreConfig::default())
        .context("opening the store")?;
    let api = Api::new(store, ApiConfig::default());
    api.ensure_default_namespaces().await?;
    let client = Arc::new(LocalClient::new(api.clone(), "bench"));
    let engine = Arc::new(Engine::new(client.clone(), EngineConfig::default()));
    let scheduler = Scheduler::start(
        engine.clone(),
        Arc::new(LocalClient::new(api.clone(), DEFAULT_SCHEDULER)),
        SchedulerConfig::default(),
    );
    let policy: Arc<dyn Policy> = match which {
        Which::Wasm => {
            let started = Instant::now();
            let p = wasm_policy(dir.path()).await?;
            println!(
                "  (wasm policy compiled in {:.0} ms)",
                started.elapsed().as_secs_f64() * 1000.0
            );
            p
        }
        _ => Arc::new(NativePolicy::default()),
    };

    // Nodes.
    let started = Instant::now();
    let zones = args.zones.max(1);
    let node_client = client.clone();
    parallel(args.clients, args.nodes, move |i| {
        let client = node_client.clone();
        async move {
            let name = format!("node-{i}");
            client
                .create(
                    &ApiResource::new("v1", "nodes"),
                    None,
                    json!({"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": name, "labels": {
                            "kubernetes.io/hostname": name,
                            "topology.kubernetes.io/zone": format!("zone-{}", i % zones)}},
                        "status": {"allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                                   "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"}}}),
                )
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
        }
    })
    .await?;
    println!(
        "  {} nodes created in {:.1} s",
        args.nodes,
        started.elapsed().as_secs_f64()
    );
    scheduler.wait_synced().await;
    scheduler.run_profile(DEFAULT_SCHEDULER, policy);

    // Bindings as a watch sees them.
    let informer = engine.informer("v1", "Pod");
    informer.start();
    informer.wait_synced().await;
    let mut changes = informer.subscribe();
    let bound: Bound = Arc::default();
    let done = Arc::new(tokio::sync::Notify::new());
    let watcher = {
        let bound = bound.clone();
        let done = done.clone();
        tokio::spawn(async move {
            while let Some(c) = changes.recv().await {
                let Some(new) = &c.new else { continue };
                let has_node = |v: &Value| {
                    v.pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .is_some_and(|n| !n.is_empty())
                };
                if has_node(new) && !c.old.as_deref().is_some_and(has_node) {
                    let name = new
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let node = new
                        .pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    bound.lock().insert(name, (Instant::now(), node));
                    done.notify_one();
                }
            }
        })
    };

    // Pods placed first.
    create_pods(
        &client,
        args.clients,
        "init",
        args.init_pods,
        &Default::default(),
    )
    .await?;
    wait_bound(
        &bound,
        &done,
        "init",
        args.init_pods,
        Duration::from_secs(300),
    )
    .await?;

    // The measured pods.
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let t0 = Instant::now();
    create_pods(&client, args.clients, "pod", args.pods, &created).await?;
    let created_in = t0.elapsed();
    wait_bound(&bound, &done, "pod", args.pods, Duration::from_secs(600)).await?;
    let mut last = t0;
    let mut lat: Vec<f64> = Vec::with_capacity(args.pods);
    {
        let bound = bound.lock();
        let created = created.lock();
        for (name, c) in created.iter() {
            if let Some((b, _)) = bound.get(name) {
                last = last.max(*b);
                lat.push(b.saturating_duration_since(*c).as_secs_f64() * 1000.0);
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let elapsed = last.duration_since(t0);
    let server_p99_ms = scheduler
        .metrics(DEFAULT_SCHEDULER)
        .and_then(|m| m["latencyP99Ms"].as_f64());
    println!(
        "  ({} pods created in {:.2} s)",
        args.pods,
        created_in.as_secs_f64()
    );
    // A backlog: the profile paused while the pods are created, then resumed.
    scheduler.set_paused(DEFAULT_SCHEDULER, true);
    create_pods(
        &client,
        args.clients,
        "backlog",
        args.pods,
        &Default::default(),
    )
    .await?;
    let t1 = Instant::now();
    scheduler.set_paused(DEFAULT_SCHEDULER, false);
    wait_bound(
        &bound,
        &done,
        "backlog",
        args.pods,
        Duration::from_secs(600),
    )
    .await?;
    let backlog_elapsed = bound
        .lock()
        .iter()
        .filter(|(k, _)| k.starts_with("backlog-"))
        .map(|(_, (t, _))| t.saturating_duration_since(t1))
        .max()
        .unwrap_or_default();
    watcher.abort();
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for (_, node) in bound.lock().values() {
        *per_node.entry(node.clone()).or_default() += 1;
    }
    let spread = (
        if per_node.len() < args.nodes {
            0
        } else {
            per_node.values().copied().min().unwrap_or(0)
        },
        per_node.values().copied().max().unwrap_or(0),
    );
    scheduler.shutdown();
    engine.shutdown().await;
    Ok(Figures {
        pods_per_sec: args.pods as f64 / elapsed.as_secs_f64(),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        elapsed,
        server_p99_ms,
        spread,
        backlog_pods_per_sec: args.pods as f64 / backlog_elapsed.as_secs_f64().max(1e-9),
    })
}

/// Runs `f(0..n)` on `workers` concurrent tasks.
async fn parallel<F, Fut>(workers: usize, n: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                f(i).await?;
            }
        }));
    }
    for t in tasks {
        t.await.context("a worker panicked")??;
    }
    Ok(())
}

/// Pods as `scheduler_perf`'s default template: one container requesting 100m CPU and
/// 500 MiB.
async fn create_pods(
    client: &Arc<LocalClient>,
    workers: usize,
    prefix: &'static str,
    n: usize,
    created: &Arc<Mutex<HashMap<String, Instant>>>,
) -> Result<()> {
    let client = client.clone();
    let created = created.clone();
    parallel(workers, n, move |i| {
        let client = client.clone();
        let created = created.clone();
        async move {
            let name = format!("{prefix}-{i}");
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]}});
            let t = Instant::now();
            client.create(&pods(), Some("default"), pod).await?;
            created.lock().insert(name, t);
            Ok(())
        }
    })
    .await
}

/// Pod name → when a watch saw it bound, and to which node.
type Bound = Arc<Mutex<HashMap<String, (Instant, String)>>>;

async fn wait_bound(
    bound: &Bound,
    done: &Arc<tokio::sync::Notify>,
    prefix: &str,
    n: usize,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let p = format!("{prefix}-");
    loop {
        let count = bound.lock().keys().filter(|k| k.starts_with(&p)).count();
        if count >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {count} of {n} {prefix} pods were scheduled within {timeout:?}");
        }
        tokio::select! {
            _ = done.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

async fn wasm_policy(dir: &std::path::Path) -> Result<Arc<dyn Policy>> {
    let bytes = crate::builtin::component(DEFAULT_SCHEDULER)
        .context("the default-scheduler built-in is not embedded")?;
    let object = crate::builtin::plugin_object(DEFAULT_SCHEDULER).map_err(anyhow::Error::msg)?;
    let spec = &object["spec"];
    let manifest = crate::plugin::PluginManifest {
        kind: crate::plugin::PluginKind::Scheduler,
        limits: serde_json::from_value(spec["limits"].clone()).context("limits")?,
        capabilities: vec![],
        config: spec.get("config").cloned().unwrap_or(Value::Null),
    };
    let runtime = crate::plugin::PluginRuntime::new(crate::plugin::RuntimeConfig {
        cache_dir: Some(dir.join("plugin-cache")),
        ..Default::default()
    })?;
    let loaded = runtime
        .load_async(DEFAULT_SCHEDULER, Arc::from(bytes), manifest)
        .await?;
    Ok(Arc::new(SchedulerPlugin::new(
        loaded,
        Arc::new(crate::plugin::NoHostApi),
    )))
}

// ---------------------------------------------------------------------------------------
// The same policy, compiled natively: the host's records converted to the SDK's.

/// The `default-scheduler` crate as a native [`Policy`].
#[derive(Default)]
pub struct NativePolicy {
    state: Mutex<Option<default_scheduler::DefaultScheduler>>,
}

fn not_started() -> PluginError {
    PluginError::Internal {
        plugin: "native".into(),
        message: "not started".into(),
    }
}

#[async_trait::async_trait]
impl Policy for NativePolicy {
    async fn is_started(&self) -> bool {
        self.state.lock().is_some()
    }
    async fn start(&self) -> Result<(), PluginError> {
        let p = default_scheduler::DefaultScheduler::new(&json!({})).map_err(|message| {
            PluginError::Init {
                plugin: "native".into(),
                message,
            }
        })?;
        *self.state.lock() = Some(p);
        Ok(())
    }
    async fn update(&self, changes: &[ClusterChange]) -> Result<(), PluginError> {
        let changes: Vec<sdk::ClusterChange> = changes.iter().map(to_sdk_change).collect();
        self.state
            .lock()
            .as_mut()
            .ok_or_else(not_started)?
            .update(changes);
        Ok(())
    }
    async fn schedule(&self, pods: &[PodInfo]) -> Result<Vec<Decision>, PluginError> {
        let pods: Vec<sdk::PodInfo> = pods.iter().map(to_sdk_pod).collect();
        let out = self
            .state
            .lock()
            .as_mut()
            .ok_or_else(not_started)?
            .schedule(pods);
        Ok(out.into_iter().map(from_sdk_decision).collect())
    }
}

fn to_sdk_labels(l: &[Label]) -> Vec<sdk::Label> {
    l.iter()
        .map(|l| sdk::Label {
            key: l.key.clone(),
            value: l.value.clone(),
        })
        .collect()
}

fn to_sdk_resources(r: &Resources) -> sdk::Resources {
    sdk::Resources {
        milli_cpu: r.milli_cpu,
        memory: r.memory,
        ephemeral_storage: r.ephemeral_storage,
        pods: r.pods,
        scalar: r.scalar.clone(),
    }
}

fn to_sdk_effect(e: TaintEffect) -> sdk::TaintEffect {
    match e {
        TaintEffect::NoSchedule => sdk::TaintEffect::NoSchedule,
        TaintEffect::PreferNoSchedule => sdk::TaintEffect::PreferNoSchedule,
        TaintEffect::NoExecute => sdk::TaintEffect::NoExecute,
    }
}

fn to_sdk_taint(t: &Taint) -> sdk::Taint {
    sdk::Taint {
        key: t.key.clone(),
        value: t.value.clone(),
        effect: to_sdk_effect(t.effect),
    }
}

fn to_sdk_toleration(t: &Toleration) -> sdk::Toleration {
    sdk::Toleration {
        key: t.key.clone(),
        exists: t.exists,
        value: t.value.clone(),
        effect: t.effect.map(to_sdk_effect),
    }
}

fn to_sdk_port(p: &HostPort) -> sdk::HostPort {
    sdk::HostPort {
        port: p.port,
        protocol: p.protocol.clone(),
        host_ip: p.host_ip.clone(),
    }
}

fn to_sdk_node(n: &NodeInfo) -> sdk::NodeInfo {
    sdk::NodeInfo {
        name: n.name.clone(),
        labels: to_sdk_labels(&n.labels),
        allocatable: to_sdk_resources(&n.allocatable),
        taints: n.taints.iter().map(to_sdk_taint).collect(),
        unschedulable: n.unschedulable,
    }
}

fn to_sdk_pod(p: &PodInfo) -> sdk::PodInfo {
    sdk::PodInfo {
        uid: p.uid.clone(),
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        labels: to_sdk_labels(&p.labels),
        requests: to_sdk_resources(&p.requests),
        score_requests: to_sdk_resources(&p.score_requests),
        host_ports: p.host_ports.iter().map(to_sdk_port).collect(),
        owner_uid: p.owner_uid.clone(),
        node_name: p.node_name.clone(),
        node_selector: to_sdk_labels(&p.node_selector),
        tolerations: p.tolerations.iter().map(to_sdk_toleration).collect(),
        affinity: p.affinity.clone(),
        topology_spread_constraints: p.topology_spread_constraints.clone(),
        priority: p.priority,
    }
}

fn to_sdk_change(c: &ClusterChange) -> sdk::ClusterChange {
    match c {
        ClusterChange::NodeSet(n) => sdk::ClusterChange::NodeSet(to_sdk_node(n)),
        ClusterChange::NodeRemoved(n) => sdk::ClusterChange::NodeRemoved(n.clone()),
        ClusterChange::PodSet(p) => sdk::ClusterChange::PodSet(to_sdk_pod(p)),
        ClusterChange::PodRemoved(u) => sdk::ClusterChange::PodRemoved(u.clone()),
    }
}

fn from_sdk_decision(d: sdk::Decision) -> Decision {
    match d {
        sdk::Decision::Node(n) => Decision::Node(n),
        sdk::Decision::Unschedulable(r) => Decision::Unschedulable(
            r.into_iter()
                .map(|r| ReasonCount {
                    reason: r.reason,
                    nodes: r.nodes,
                })
                .collect(),
        ),
        sdk::Decision::Error(m) => Decision::Error(m),
    }
}
