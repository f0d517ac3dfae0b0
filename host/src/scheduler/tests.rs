//! The framework with a native first-fit policy over a real in-process API: the feed, the
//! queue, assume-then-bind, Events, conditions, orphans, faults and swaps. (The Wasm
//! policies are tested end to end in `tests/scheduler_e2e.rs`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::api::client::tests::test_api;
use crate::api::client::{ListParams, LocalClient};
use crate::engine::EngineConfig;
use crate::plugin::scheduler::ReasonCount;
use crate::store::redb::RedbStoreConfig;

/// First fit by CPU, nodes in name order; counts what it places.
#[derive(Default)]
struct FirstFit {
    state: parking_lot::Mutex<Option<FitState>>,
    /// The next `schedule` fails (a fault) once.
    fail_next: AtomicBool,
    starts: AtomicUsize,
    /// Recorded for assertions: node → pods it was told are placed there.
    tag: &'static str,
}

#[derive(Default)]
struct FitState {
    nodes: std::collections::BTreeMap<String, i64>,
    placed: HashMap<String, (String, i64)>,
}

impl FitState {
    fn used(&self, node: &str) -> i64 {
        self.placed
            .values()
            .filter(|(n, _)| n == node)
            .map(|(_, c)| *c)
            .sum()
    }
}

#[async_trait::async_trait]
impl Policy for FirstFit {
    async fn is_started(&self) -> bool {
        self.state.lock().is_some()
    }
    async fn start(&self) -> Result<(), PluginError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        *self.state.lock() = Some(FitState::default());
        Ok(())
    }
    async fn update(&self, changes: &[ClusterChange]) -> Result<(), PluginError> {
        let mut g = self.state.lock();
        let s = g.as_mut().ok_or_else(|| PluginError::Internal {
            plugin: "first-fit".into(),
            message: "not started".into(),
        })?;
        for c in changes {
            match c {
                ClusterChange::NodeSet(n) => {
                    s.nodes.insert(n.name.clone(), n.allocatable.milli_cpu);
                }
                ClusterChange::NodeRemoved(n) => {
                    s.nodes.remove(n);
                }
                ClusterChange::PodSet(p) => {
                    let node = p.node_name.clone().unwrap_or_default();
                    s.placed.insert(p.uid.clone(), (node, p.requests.milli_cpu));
                }
                ClusterChange::PodRemoved(uid) => {
                    s.placed.remove(uid);
                }
            }
        }
        Ok(())
    }
    async fn schedule(&self, pods: &[PodInfo]) -> Result<Vec<Decision>, PluginError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            *self.state.lock() = None;
            return Err(PluginError::Trap {
                plugin: self.tag.into(),
                message: "wasm trap: unreachable".into(),
            });
        }
        let mut g = self.state.lock();
        let s = g.as_mut().ok_or_else(|| PluginError::Internal {
            plugin: "first-fit".into(),
            message: "not started".into(),
        })?;
        let mut out = vec![];
        for p in pods {
            let fit = s
                .nodes
                .iter()
                .find(|(n, cap)| s.used(n) + p.requests.milli_cpu <= **cap)
                .map(|(n, _)| n.clone());
            match fit {
                Some(n) => {
                    s.placed
                        .insert(p.uid.clone(), (n.clone(), p.requests.milli_cpu));
                    out.push(Decision::Node(n));
                }
                None => out.push(Decision::Unschedulable(vec![ReasonCount {
                    reason: "Insufficient cpu".into(),
                    nodes: u32::try_from(s.nodes.len()).unwrap_or(0),
                }])),
            }
        }
        Ok(out)
    }
}

struct Env {
    client: Arc<LocalClient>,
    scheduler: Arc<Scheduler>,
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let (api, dir) = test_api(RedbStoreConfig::default()).await;
    let client = Arc::new(LocalClient::new(api, "test"));
    let mut cfg = EngineConfig::default();
    cfg.leader.lease_duration = Duration::from_secs(2);
    let engine = Arc::new(Engine::new(client.clone(), cfg));
    let scheduler = Scheduler::start(
        engine.clone(),
        client.clone(),
        SchedulerConfig {
            batch: 4,
            ..Default::default()
        },
    );
    Env {
        client,
        scheduler,
        engine,
        _dir: dir,
    }
}

async fn node(c: &LocalClient, name: &str, cpu: &str) {
    c.create(
        &ApiResource::new("v1", "nodes"),
        None,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
               "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}}),
    )
    .await
    .expect("create node");
}

async fn pod(c: &LocalClient, name: &str, cpu: &str, scheduler: Option<&str>) {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu}}}]}});
    if let Some(s) = scheduler {
        p["spec"]["schedulerName"] = json!(s);
    }
    c.create(&pods_resource(), Some("default"), p)
        .await
        .expect("create pod");
}

async fn node_of(c: &LocalClient, name: &str) -> Option<String> {
    c.get(&pods_resource(), Some("default"), name)
        .await
        .ok()
        .flatten()
        .and_then(|p| {
            p.pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

async fn wait_node(c: &LocalClient, name: &str) -> String {
    for _ in 0..200 {
        if let Some(n) = node_of(c, name).await {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("pod {name} was not scheduled within 5 s");
}

async fn events(c: &LocalClient, pod: &str) -> Vec<(String, String)> {
    let list = c
        .list(
            &ApiResource::new("v1", "events"),
            Some("default"),
            &ListParams::default(),
        )
        .await
        .expect("list events");
    list.items
        .iter()
        .filter(|e| e.pointer("/involvedObject/name").and_then(Value::as_str) == Some(pod))
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The first `reason` event of `pod` whose message contains `contains`. (Nodes and pods
/// come through separate informers: a pod may be decided before a node created just before
/// it is seen, as in Kubernetes, so tests wait for the message they expect.)
async fn wait_event(c: &LocalClient, pod: &str, reason: &str, contains: &str) -> String {
    for _ in 0..200 {
        if let Some((_, m)) = events(c, pod)
            .await
            .into_iter()
            .find(|(r, m)| r == reason && m.contains(contains))
        {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {reason} event for {pod}: {:?}", events(c, pod).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_bound_first_fit_and_assumed_pods_count_within_a_batch() {
    let e = env().await;
    node(&e.client, "a", "1").await;
    node(&e.client, "b", "1").await;
    e.scheduler
        .run_profile(DEFAULT_SCHEDULER, Arc::new(FirstFit::default()));
    // Six pods of 300m: three fit on "a" (900m), three on "b" — only if each decision
    // sees the ones before it (they are decided in batches of 4).
    for i in 0..6 {
        pod(&e.client, &format!("p{i}"), "300m", None).await;
    }
    let mut on = HashMap::<String, usize>::new();
    for i in 0..6 {
        *on.entry(wait_node(&e.client, &format!("p{i}")).await)
            .or_default() += 1;
    }
    assert_eq!(on.get("a"), Some(&3));
    assert_eq!(on.get("b"), Some(&3));
    let m = wait_event(&e.client, "p0", "Scheduled", "").await;
    assert!(m.starts_with("Successfully assigned default/p0 to "), "{m}");
    let metrics = e.scheduler.metrics(DEFAULT_SCHEDULER).expect("metrics");
    assert_eq!(metrics["scheduled"], json!(6));
    e.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unschedulable_pod_is_explained_and_placed_when_a_node_fits() {
    let e = env().await;
    node(&e.client, "small", "500m").await;
    e.scheduler
        .run_profile(DEFAULT_SCHEDULER, Arc::new(FirstFit::default()));
    pod(&e.client, "big", "2", None).await;
    let m = wait_event(&e.client, "big", "FailedScheduling", "0/1").await;
    assert_eq!(m, "0/1 nodes are available: 1 Insufficient cpu.");
    // The condition says so too.
    let mut cond = Value::Null;
    for _ in 0..100 {
        let p = e
            .client
            .get(&pods_resource(), Some("default"), "big")
            .await
            .expect("get")
            .expect("pod");
        if let Some(c) = p
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned())
        {
            cond = c;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(node_of(&e.client, "big").await, None);
    // A node that fits appears: the pod is retried (after its 1 s backoff) and placed.
    node(&e.client, "large", "4").await;
    assert_eq!(wait_node(&e.client, "big").await, "large");
    e.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_naming_no_running_scheduler_waits_for_one() {
    let e = env().await;
    node(&e.client, "a", "4").await;
    e.scheduler
        .run_profile(DEFAULT_SCHEDULER, Arc::new(FirstFit::default()));
    pod(&e.client, "odd", "100m", Some("bin-packing")).await;
    let m = wait_event(&e.client, "odd", "FailedScheduling", "").await;
    assert!(m.contains("no scheduler named \"bin-packing\""), "{m}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(node_of(&e.client, "odd").await, None);
    e.scheduler
        .run_profile("bin-packing", Arc::new(FirstFit::default()));
    assert_eq!(wait_node(&e.client, "odd").await, "a");
    // Stopping a profile leaves its later pods pending.
    e.scheduler.stop_profile("bin-packing");
    pod(&e.client, "odd2", "100m", Some("bin-packing")).await;
    wait_event(&e.client, "odd2", "FailedScheduling", "").await;
    assert_eq!(node_of(&e.client, "odd2").await, None);
    e.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_policy_is_restarted_with_the_whole_cluster() {
    let e = env().await;
    node(&e.client, "a", "1").await;
    let policy = Arc::new(FirstFit {
        tag: "faulty",
        ..Default::default()
    });
    e.scheduler.run_profile(DEFAULT_SCHEDULER, policy.clone());
    pod(&e.client, "p0", "600m", None).await;
    assert_eq!(wait_node(&e.client, "p0").await, "a");
    let starts = policy.starts.load(Ordering::SeqCst);
    policy.fail_next.store(true, Ordering::SeqCst);
    // The failed attempt is retried on a fresh instance that knows p0 is on "a": p1 (600m)
    // no longer fits there, and a second node takes it.
    pod(&e.client, "p1", "600m", None).await;
    node(&e.client, "b", "1").await;
    assert_eq!(wait_node(&e.client, "p1").await, "b");
    assert!(policy.starts.load(Ordering::SeqCst) > starts, "restarted");
    assert!(
        e.scheduler.metrics(DEFAULT_SCHEDULER).expect("metrics")["errors"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    e.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_policy_gets_the_cluster_and_decides_from_then_on() {
    let e = env().await;
    node(&e.client, "a", "1").await;
    node(&e.client, "b", "1").await;
    e.scheduler
        .run_profile(DEFAULT_SCHEDULER, Arc::new(FirstFit::default()));
    pod(&e.client, "p0", "800m", None).await;
    assert_eq!(wait_node(&e.client, "p0").await, "a");
    let second = Arc::new(FirstFit::default());
    e.scheduler.run_profile(DEFAULT_SCHEDULER, second.clone());
    pod(&e.client, "p1", "800m", None).await;
    // The new policy knows p0 fills "a".
    assert_eq!(wait_node(&e.client, "p1").await, "b");
    assert_eq!(second.starts.load(Ordering::SeqCst), 1);
    e.engine.shutdown().await;
}
