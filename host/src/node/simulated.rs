//! Hollow nodes: the kubelet's API-side behaviour without containers.
//!
//! A simulated node is any `Node` labelled `tugboat.dev/simulated=true`: the agent registers
//! `count` of them at start (`sim-0` … `sim-{count-1}`), and adopts ones created later (a
//! test can `kubectl apply` a Node with that label to have a node "join"). For each it:
//! - renews the `Lease` `kube-node-lease/<node>` every `lease_renew` and keeps the node's
//!   `Ready` condition `True` (the heartbeat);
//! - turns every pod bound to it (`spec.nodeName`) Running and Ready at once, with a pod IP
//!   from the node's range `10.244.<i>.0/24`;
//! - runs pods that say how long they run (annotation `tugboat.dev/simulated-run-seconds`;
//!   pods owned by a Job default to 1 s) to completion: phase Succeeded, or Failed when the
//!   annotation `tugboat.dev/simulated-exit-code` is not 0 (with `restartPolicy: Always` a
//!   pod never completes);
//! - confirms graceful deletions (deletes with grace period 0, as the kubelet does once the
//!   containers have stopped).
//!
//! A node annotated `tugboat.dev/simulated-heartbeat=stop` stops renewing its lease and
//! updating its pods (a node that died), for node-lifecycle tests.
//!
//! Nodes registered at start are spread over `zones` zones (label
//! `topology.kubernetes.io/zone=zone-<i mod zones>`). Each node offers 8 CPUs, 32 GiB, 110
//! pods and 100 GiB of ephemeral storage, unless its annotation
//! `tugboat.dev/simulated-allocatable` (a JSON resource list, e.g. `{"cpu": "2"}`) says
//! otherwise. The scheduler (`crate::scheduler`) places the pods; the agent only runs them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::api::client::{
    ApiClient, ApiResource, ClientError, DeleteParams, ListParams, Patch, PatchParams, WatchEvent,
    WatchParams,
};
use crate::api::object::now_rfc3339;

/// The label that makes a Node simulated.
pub const SIMULATED_LABEL: &str = "tugboat.dev/simulated";
/// Pod annotation: seconds the pod "runs" before it completes.
pub const RUN_SECONDS_ANNOTATION: &str = "tugboat.dev/simulated-run-seconds";
/// Pod annotation: the exit code of a completing pod (default 0).
pub const EXIT_CODE_ANNOTATION: &str = "tugboat.dev/simulated-exit-code";
/// Node annotation: `stop` makes the node stop heartbeating.
pub const HEARTBEAT_ANNOTATION: &str = "tugboat.dev/simulated-heartbeat";
/// Node annotation: a JSON resource list overriding the node's default capacity.
pub const ALLOCATABLE_ANNOTATION: &str = "tugboat.dev/simulated-allocatable";

/// Settings of the simulated nodes.
#[derive(Debug, Clone)]
pub struct SimulatedConfig {
    /// Nodes registered at start.
    pub count: usize,
    /// How often leases are renewed (Kubernetes' kubelet: 10 s).
    pub lease_renew: Duration,
    /// Zones the nodes registered at start are spread over (0: no zone label).
    pub zones: usize,
    /// Pod status writes in flight at once.
    pub concurrency: usize,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig {
            count: 0,
            lease_renew: Duration::from_secs(10),
            zones: 3,
            concurrency: 32,
        }
    }
}

fn nodes() -> ApiResource {
    ApiResource::new("v1", "Node")
}

fn pods() -> ApiResource {
    ApiResource::new("v1", "Pod")
}

fn leases() -> ApiResource {
    ApiResource::new("coordination.k8s.io/v1", "Lease")
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

#[derive(Default)]
struct NodeState {
    /// The node's index in the pod IP plan (10.244.<index>.x).
    index: usize,
    stopped: bool,
    next_ip: u32,
    pods: usize,
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, NodeState>,
    /// Pods this agent already started or is completing (namespace/name → uid).
    started: HashMap<String, String>,
    completing: HashSet<String>,
    next_index: usize,
}

/// The hollow nodes; dropped, they stop.
pub struct SimulatedNodes {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SimulatedNodes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Agent {
    client: Arc<dyn ApiClient>,
    config: SimulatedConfig,
    state: Mutex<State>,
    writes: Semaphore,
}

impl SimulatedNodes {
    /// Registers the nodes and starts their loops.
    pub async fn start(
        client: Arc<dyn ApiClient>,
        config: SimulatedConfig,
    ) -> Result<Self, ClientError> {
        let agent = Arc::new(Agent {
            writes: Semaphore::new(config.concurrency.max(1)),
            client,
            config,
            state: Mutex::new(State::default()),
        });
        for i in 0..agent.config.count {
            agent.register(&format!("sim-{i}")).await?;
        }
        let mut tasks = Vec::new();
        let a = agent.clone();
        tasks.push(tokio::spawn(async move { a.node_loop().await }));
        let a = agent.clone();
        tasks.push(tokio::spawn(async move { a.pod_loop().await }));
        let a = agent.clone();
        tasks.push(tokio::spawn(async move { a.heartbeat_loop().await }));
        Ok(SimulatedNodes { tasks })
    }
}

impl Agent {
    /// Creates the Node (if missing).
    async fn register(&self, name: &str) -> Result<(), ClientError> {
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    SIMULATED_LABEL: "true",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "spec": {},
        });
        let mut node = node;
        if self.config.zones > 0 {
            let i: usize = name
                .rsplit('-')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            node["metadata"]["labels"]["topology.kubernetes.io/zone"] =
                json!(format!("zone-{}", i % self.config.zones));
        }
        match self.client.create(&nodes(), None, node).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Follows simulated Nodes: adopts new ones (status, lease), notes stopped ones.
    async fn node_loop(self: Arc<Self>) {
        let params = ListParams {
            label_selector: Some(format!("{SIMULATED_LABEL}=true")),
            ..Default::default()
        };
        loop {
            let list = match self.client.list(&nodes(), None, &params).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "simulated nodes: listing nodes");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for n in &list.items {
                self.node_seen(n).await;
            }
            let wp = WatchParams {
                resource_version: list.resource_version,
                label_selector: params.label_selector.clone(),
                ..Default::default()
            };
            let mut stream = match self.client.watch(&nodes(), None, &wp).await {
                Ok(s) => s,
                Err(_) => continue,
            };
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(WatchEvent::Added(n)) | Ok(WatchEvent::Modified(n)) => {
                        self.node_seen(&n).await
                    }
                    Ok(WatchEvent::Deleted(n)) => {
                        self.state.lock().nodes.remove(str_at(&n, "/metadata/name"));
                    }
                    Ok(WatchEvent::Bookmark { .. }) => {}
                    Err(_) => break,
                }
            }
        }
    }

    async fn node_seen(&self, node: &Value) {
        let name = str_at(node, "/metadata/name").to_string();
        let stopped = str_at(
            node,
            &format!(
                "/metadata/annotations/{}",
                HEARTBEAT_ANNOTATION.replace('/', "~1")
            ),
        ) == "stop";
        let (is_new, resumed) = {
            let mut st = self.state.lock();
            let next = st.next_index;
            let is_new = !st.nodes.contains_key(&name);
            let entry = st.nodes.entry(name.clone()).or_insert_with(|| NodeState {
                index: next,
                ..Default::default()
            });
            let resumed = entry.stopped && !stopped;
            entry.stopped = stopped;
            if is_new {
                st.next_index += 1;
            }
            (is_new, resumed)
        };
        // A new node, or one that comes back: what happened to its pods meanwhile (binds,
        // deletions) was not acted on.
        if is_new || resumed {
            if let Err(e) = self.heartbeat(&name).await {
                tracing::warn!(node = %name, error = %e, "simulated node: first heartbeat");
            }
            // Pods may have been bound to it before it was seen.
            self.resync_node_pods(&name).await;
        }
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.lease_renew);
        loop {
            tick.tick().await;
            let live: Vec<String> = self
                .state
                .lock()
                .nodes
                .iter()
                .filter(|(_, n)| !n.stopped)
                .map(|(k, _)| k.clone())
                .collect();
            for name in live {
                if let Err(e) = self.heartbeat(&name).await {
                    tracing::debug!(node = %name, error = %e, "simulated node heartbeat");
                }
            }
        }
    }

    /// Renews the node's Lease and reports it Ready.
    async fn heartbeat(&self, name: &str) -> Result<(), ClientError> {
        let now = now_micro();
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
        });
        let patched = self
            .client
            .patch(
                &leases(),
                Some("kube-node-lease"),
                name,
                &Patch::Merge(json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}})),
                &PatchParams::default(),
            )
            .await;
        match patched {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                match self
                    .client
                    .create(&leases(), Some("kube-node-lease"), lease)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_already_exists() => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        let index = self.state.lock().nodes.get(name).map_or(0, |n| n.index);
        let ts = now_rfc3339();
        // Keep the Ready condition's transition time when it stays True.
        let current = self.client.get(&nodes(), None, name).await?;
        let mut capacity =
            json!({"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"});
        if let Some(extra) = current
            .as_ref()
            .and_then(|c| c.pointer("/metadata/annotations"))
            .and_then(|a| a.get(ALLOCATABLE_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<serde_json::Map<String, Value>>(s).ok())
        {
            for (k, v) in extra {
                capacity[k] = v;
            }
        }
        let status = json!({"status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "simulated kubelet is posting ready status",
                 "lastHeartbeatTime": ts, "lastTransitionTime": ts},
            ],
            "addresses": [
                {"type": "InternalIP", "address": format!("10.99.{}.{}", index / 250, index % 250 + 1)},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": crate::api::KUBE_VERSION, "kubeProxyVersion": crate::api::KUBE_VERSION,
                "operatingSystem": "linux", "architecture": "amd64",
                "containerRuntimeVersion": "tugboat-simulated://0.1", "osImage": "simulated",
                "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
            },
        }});
        let mut status = status;
        if let Some(cur) = &current
            && let Some(conds) = cur.pointer("/status/conditions").and_then(Value::as_array)
            && let Some(ready) = conds
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
            && ready.get("status").and_then(Value::as_str) == Some("True")
            && let Some(t) = ready.get("lastTransitionTime")
        {
            status["status"]["conditions"][0]["lastTransitionTime"] = t.clone();
        }
        self.client
            .patch(
                &nodes(),
                None,
                name,
                &Patch::Merge(status),
                &PatchParams {
                    subresource: Some("status".into()),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }

    async fn resync_node_pods(&self, node: &str) {
        let params = ListParams {
            field_selector: Some(format!("spec.nodeName={node}")),
            ..Default::default()
        };
        if let Ok(list) = self.client.list(&pods(), None, &params).await {
            for p in list.items {
                self.pod_changed(Arc::new(p)).await;
            }
        }
    }

    /// Follows every pod.
    async fn pod_loop(self: Arc<Self>) {
        loop {
            let list = match self
                .client
                .list(&pods(), None, &ListParams::default())
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "simulated nodes: listing pods");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for p in list.items {
                self.clone().spawn_pod(p);
            }
            let wp = WatchParams {
                resource_version: list.resource_version,
                ..Default::default()
            };
            let mut stream = match self.client.watch(&pods(), None, &wp).await {
                Ok(s) => s,
                Err(_) => continue,
            };
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(WatchEvent::Added(p)) | Ok(WatchEvent::Modified(p)) => {
                        self.clone().spawn_pod(p)
                    }
                    Ok(WatchEvent::Deleted(p)) => {
                        let key = pod_key(&p);
                        let mut st = self.state.lock();
                        if st.started.remove(&key).is_some() {
                            let node = str_at(&p, "/spec/nodeName");
                            if let Some(n) = st.nodes.get_mut(node) {
                                n.pods = n.pods.saturating_sub(1);
                            }
                        }
                        st.completing.remove(&key);
                    }
                    Ok(WatchEvent::Bookmark { .. }) => {}
                    Err(_) => break,
                }
            }
        }
    }

    fn spawn_pod(self: Arc<Self>, pod: Value) {
        tokio::spawn(async move { self.pod_changed(Arc::new(pod)).await });
    }

    async fn pod_changed(&self, pod: Arc<Value>) {
        let node = str_at(&pod, "/spec/nodeName").to_string();
        if node.is_empty() {
            return;
        }
        let key = pod_key(&pod);
        let uid = str_at(&pod, "/metadata/uid").to_string();
        let stopped = match self.state.lock().nodes.get(&node) {
            None => return, // not a simulated node
            Some(n) => n.stopped,
        };
        if stopped {
            return;
        }
        if is_deleting(&pod) {
            let _permit = self.writes.acquire().await;
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(crate::api::client::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let ns = str_at(&pod, "/metadata/namespace").to_string();
            let name = str_at(&pod, "/metadata/name").to_string();
            if let Err(e) = self.client.delete(&pods(), Some(&ns), &name, &params).await
                && !e.is_not_found()
                && !e.is_conflict()
            {
                tracing::debug!(pod = %key, error = %e, "simulated node: confirming deletion");
            }
            return;
        }
        let phase = str_at(&pod, "/status/phase");
        if matches!(phase, "Succeeded" | "Failed") {
            return;
        }
        if phase != "Running" {
            {
                let mut st = self.state.lock();
                if st.started.get(&key) == Some(&uid) {
                    return; // our write is on its way
                }
                st.started.insert(key.clone(), uid.clone());
            }
            if !self.start_pod(&pod, &node).await {
                self.state.lock().started.remove(&key);
                return;
            }
        }
        if let Some(secs) = run_seconds(&pod) {
            let first = self.state.lock().completing.insert(key.clone());
            if first {
                tokio::time::sleep(Duration::from_millis((secs * 1000.0) as u64)).await;
                self.complete_pod(&pod).await;
                self.state.lock().completing.remove(&key);
            }
        }
    }

    /// Marks a pod Running and Ready; false if the write failed.
    async fn start_pod(&self, pod: &Value, node: &str) -> bool {
        let (index, ip_n, host_ip) = {
            let mut st = self.state.lock();
            let Some(n) = st.nodes.get_mut(node) else {
                return false;
            };
            n.next_ip = n.next_ip % 65_000 + 1;
            n.pods += 1;
            (
                n.index,
                n.next_ip,
                format!("10.99.{}.{}", n.index / 250, n.index % 250 + 1),
            )
        };
        let pod_ip = format!(
            "10.{}.{}.{}",
            244 + index / 256,
            index % 256,
            ip_n % 254 + 1
        );
        let now = now_rfc3339();
        let containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| {
                json!({
                    "name": c.get("name").cloned().unwrap_or(Value::Null),
                    "image": c.get("image").cloned().unwrap_or(Value::Null),
                    "imageID": "",
                    "containerID": format!("simulated://{}", uuid::Uuid::new_v4().simple()),
                    "ready": true, "started": true, "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                })
            })
            .collect();
        let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "lastProbeTime": null});
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "qosClass": "BestEffort",
            "containerStatuses": statuses,
        }});
        self.write_status(pod, status).await
    }

    async fn complete_pod(&self, pod: &Value) {
        let code = str_at(
            pod,
            &format!(
                "/metadata/annotations/{}",
                EXIT_CODE_ANNOTATION.replace('/', "~1")
            ),
        )
        .parse::<i32>()
        .unwrap_or(0);
        let now = now_rfc3339();
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        let reason = if code == 0 { "Completed" } else { "Error" };
        let containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| {
                json!({
                    "name": c.get("name").cloned().unwrap_or(Value::Null),
                    "image": c.get("image").cloned().unwrap_or(Value::Null),
                    "imageID": "", "ready": false, "started": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": code, "reason": reason, "finishedAt": now}},
                })
            })
            .collect();
        let cond = |t: &str, s: &str| json!({"type": t, "status": s, "lastTransitionTime": now, "lastProbeTime": null, "reason": if s == "False" { "PodCompleted" } else { "" }});
        let status = json!({"status": {
            "phase": phase,
            "conditions": [cond("Initialized", "True"), cond("Ready", "False"), cond("ContainersReady", "False"), cond("PodScheduled", "True")],
            "containerStatuses": statuses,
        }});
        self.write_status(pod, status).await;
    }

    async fn write_status(&self, pod: &Value, status: Value) -> bool {
        let _permit = self.writes.acquire().await;
        let ns = str_at(pod, "/metadata/namespace");
        let name = str_at(pod, "/metadata/name");
        match self
            .client
            .patch(
                &pods(),
                Some(ns),
                name,
                &Patch::Merge(status),
                &PatchParams {
                    subresource: Some("status".into()),
                    ..Default::default()
                },
            )
            .await
        {
            Ok(_) => true,
            Err(e) => {
                if !e.is_not_found() {
                    tracing::debug!(pod = %name, error = %e, "simulated node: pod status");
                }
                false
            }
        }
    }
}

fn is_deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn pod_key(p: &Value) -> String {
    format!(
        "{}/{}",
        str_at(p, "/metadata/namespace"),
        str_at(p, "/metadata/name")
    )
}

/// How long the pod runs before it completes, if it ever does.
fn run_seconds(pod: &Value) -> Option<f64> {
    if str_at(pod, "/spec/restartPolicy") == "Always" {
        return None;
    }
    let annotation = str_at(
        pod,
        &format!(
            "/metadata/annotations/{}",
            RUN_SECONDS_ANNOTATION.replace('/', "~1")
        ),
    );
    if !annotation.is_empty() {
        return annotation.parse::<f64>().ok().filter(|s| *s >= 0.0);
    }
    let owned_by_job = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|r| {
            r.iter()
                .any(|o| o.get("kind").and_then(Value::as_str) == Some("Job"))
        });
    owned_by_job.then_some(1.0)
}

/// RFC 3339 with microseconds (a Lease's `renewTime` is a MicroTime).
fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_seconds_follow_restart_policy_annotation_and_jobs() {
        let mut pod = json!({"spec": {"restartPolicy": "Never"}, "metadata": {}});
        assert_eq!(run_seconds(&pod), None);
        pod["metadata"]["ownerReferences"] = json!([{"kind": "Job", "name": "j"}]);
        assert_eq!(run_seconds(&pod), Some(1.0));
        pod["metadata"]["annotations"] = json!({RUN_SECONDS_ANNOTATION: "2.5"});
        assert_eq!(run_seconds(&pod), Some(2.5));
        pod["spec"]["restartPolicy"] = json!("Always");
        assert_eq!(run_seconds(&pod), None);
    }
}
