//! The node lifecycle controller: node health from heartbeats, the taints that follow from
//! it, and the eviction of pods from nodes with `NoExecute` taints — kube-controller-manager's
//! `pkg/controller/nodelifecycle` and `pkg/controller/tainteviction`, written as one
//! reconcile per Node (Leases in `kube-node-lease` map to the Node of the same name, Pods to
//! the Node named by `spec.nodeName`).
//!
//! Implemented, as Kubernetes does:
//!
//! - **Health.** A node's last heartbeat is the later of its `Ready` condition's
//!   `lastHeartbeatTime` and its Lease's `renewTime`. When that is older than
//!   `nodeMonitorGracePeriodSeconds` (40), or, for a node that never posted a `Ready`
//!   condition, when its creation is older than `nodeStartupGracePeriodSeconds` (60), its
//!   `Ready`, `MemoryPressure`, `DiskPressure` and `PIDPressure` conditions become `Unknown`
//!   (reason `NodeStatusUnknown`, "Kubelet stopped posting node status."; conditions never
//!   posted are added with `NodeStatusNeverUpdated`). `NetworkUnavailable` is left alone.
//! - **Condition taints** (`doNoScheduleTaintingPass`), with `timeAdded`: `NoSchedule`
//!   `node.kubernetes.io/not-ready` (Ready=False), `unreachable` (Ready=Unknown),
//!   `memory-pressure`, `disk-pressure`, `pid-pressure`, `network-unavailable` (condition
//!   True) and `unschedulable` (`spec.unschedulable`); removed when the condition clears.
//! - **NoExecute taints** (`processTaintBaseEviction`): `not-ready:NoExecute` for Ready=False,
//!   `unreachable:NoExecute` for Ready=Unknown (each replacing the other), both removed when
//!   the node is Ready. When no node of the cluster is ready (every node not ready, nodes
//!   labelled `node.kubernetes.io/exclude-disruption` aside), these taints are removed instead
//!   and nothing is evicted for them: the controller is more likely cut off than every node
//!   dead (Kubernetes' "master disruption mode").
//! - **Pods of an unreachable node** are marked not ready (`MarkPodsNotReady`): their `Ready`
//!   condition becomes False, so that Services stop sending them traffic.
//! - **Taint eviction** (`tainteviction`): a pod on a node with `NoExecute` taints it does not
//!   all tolerate is deleted at once; one tolerating them with `tolerationSeconds` is deleted
//!   that long after the taint's `timeAdded` (the controller asks to be called again then); one
//!   tolerating them forever stays. Before the delete, the pod gets the `DisruptionTarget`
//!   condition (reason `DeletionByTaintManager`). Pods already being deleted are skipped.
//! - The beta `beta.kubernetes.io/os` and `arch` labels follow the stable ones
//!   (`reconcileNodeLabels`).
//!
//! Differences, because a plugin keeps no memory between calls: Kubernetes times heartbeats
//! with its own clock when it observes them; here the timestamps themselves are compared with
//! the host's clock. Kubernetes starts a tolerating pod's eviction timer when it first sees the
//! taint; here each taint's `timeAdded` starts it (a `NoExecute` taint without `timeAdded`, e.g.
//! from `kubectl taint`, gets one stamped). Pods are marked not ready while their node is
//! `Unknown` (not on every transition to `False`, when the kubelet, still alive, owns their
//! status), and only those that became ready before the node stopped being ready.
//!
//! Not implemented: the eviction rate limits and zone disruption states (partial disruption,
//! per-zone limits; taints are added at once), the extra grace when leaving full disruption,
//! events and metrics.

use std::cell::Cell;
use std::time::Duration;

use tugboat_plugin_sdk::cluster::{self, DeleteOptions, Query};
use tugboat_plugin_sdk::prelude::*;

/// Where kubelets keep their heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Nodes with this label do not count when deciding whether the whole cluster is down.
pub const LABEL_EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";

const NO_SCHEDULE: &str = "NoSchedule";
const NO_EXECUTE: &str = "NoExecute";

/// The condition taints and the conditions (type, status) that call for them.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    ("MemoryPressure", "True", TAINT_MEMORY_PRESSURE),
    ("DiskPressure", "True", TAINT_DISK_PRESSURE),
    ("NetworkUnavailable", "True", TAINT_NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", TAINT_PID_PRESSURE),
];

/// The conditions that become Unknown when the kubelet stops posting status.
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The beta labels kept equal to the stable ones (stable, beta).
const MIRRORED_LABELS: [(&str, &str); 2] = [
    ("kubernetes.io/os", "beta.kubernetes.io/os"),
    ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
];

/// The controller's settings (`plugin.json` config, in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `nodeMonitorGracePeriodSeconds`: heartbeats older than this make a node Unknown.
    pub grace_ms: u64,
    /// `nodeStartupGracePeriodSeconds`: the same for a node that never posted `Ready`.
    pub startup_grace_ms: u64,
    /// `nodeMonitorPeriodSeconds`: how often a node that is not ready is looked at again.
    pub monitor_period_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grace_ms: 40_000,
            startup_grace_ms: 60_000,
            monitor_period_ms: 5_000,
        }
    }
}

impl Config {
    fn parse(config: &Value) -> Result<Config, String> {
        let millis = |field: &str, default_ms: u64| -> Result<u64, String> {
            match config.get(field) {
                None | Some(Value::Null) => Ok(default_ms),
                Some(v) => v
                    .as_u64()
                    .filter(|s| *s > 0)
                    .map(|s| s * 1000)
                    .ok_or_else(|| {
                        format!("{field} must be a positive number of seconds, not {v}")
                    }),
            }
        };
        let d = Config::default();
        Ok(Config {
            grace_ms: millis("nodeMonitorGracePeriodSeconds", d.grace_ms)?,
            startup_grace_ms: millis("nodeStartupGracePeriodSeconds", d.startup_grace_ms)?,
            monitor_period_ms: millis("nodeMonitorPeriodSeconds", d.monitor_period_ms)?,
        })
    }
}

thread_local! {
    /// The config `init` parsed (each instance is initialised before it reconciles).
    static CONFIG: Cell<Config> = Cell::new(Config::default());
}

/// The controller.
pub struct NodeLifecycleController;

impl Controller for NodeLifecycleController {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        let config = Config::parse(config)?;
        CONFIG.with(|c| c.set(config));
        Ok(ControllerSpec::new("v1", "Node")
            .watch("coordination.k8s.io/v1", "Lease", MapRule::SameName)
            .watch("v1", "Pod", MapRule::Field("/spec/nodeName".into()))
            // Eviction looks at a pod's node, tolerations and deletion, not its status.
            .changes(tugboat_plugin_sdk::controller::Changes::SpecAndMetadata))
    }

    fn reconcile(_key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        match object {
            Some(node) => sync_node(node, CONFIG.with(Cell::get)),
            None => Ok(Action::Done),
        }
    }
}

export_controller!(NodeLifecycleController);

fn millis(o: &Value, pointer: &str) -> Option<u64> {
    cluster::parse_rfc3339(objects::str_at(o, pointer))
}

/// When a node was last heard from, and until when that counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Health {
    /// The last heartbeat (or the creation of a node that never posted `Ready`).
    probe_ms: u64,
    /// `probe_ms` plus the grace period that applies.
    deadline_ms: u64,
}

impl Health {
    fn stale(&self, now: u64) -> bool {
        now > self.deadline_ms
    }
}

fn health(node: &Value, lease: Option<&Value>, config: &Config) -> Health {
    let created = millis(node, "/metadata/creationTimestamp").unwrap_or(0);
    let (mut probe, grace) = match objects::condition(node, "Ready") {
        None => (created, config.startup_grace_ms),
        Some(c) => (
            millis(c, "/lastHeartbeatTime")
                .or_else(|| millis(c, "/lastTransitionTime"))
                .unwrap_or(created),
            config.grace_ms,
        ),
    };
    if let Some(renewed) = lease.and_then(|l| millis(l, "/spec/renewTime")) {
        probe = probe.max(renewed);
    }
    Health {
        probe_ms: probe,
        deadline_ms: probe.saturating_add(grace),
    }
}

fn lease_of(node: &str) -> Result<Option<Value>, String> {
    host::get(
        "coordination.k8s.io/v1",
        "Lease",
        Some(LEASE_NAMESPACE),
        node,
    )
    .map_err(|e| format!("reading Lease {LEASE_NAMESPACE}/{node}: {e}"))
}

/// A copy of a core (`v1`) object with its `apiVersion` and `kind` set, as writes need them
/// (cached objects may come without).
fn typed(object: &Value, kind: &str) -> Value {
    let mut object = object.clone();
    object["apiVersion"] = json!("v1");
    object["kind"] = json!(kind);
    object
}

/// The status of the node's `Ready` condition, if it has one.
fn ready_status(node: &Value) -> Option<&str> {
    objects::condition(node, "Ready").map(|c| objects::str_at(c, "/status"))
}

fn sync_node(node: &Value, config: Config) -> Result<Action, String> {
    let now = cluster::now_millis();
    let name = objects::name(node).to_string();
    let lease = lease_of(&name)?;
    let health = health(node, lease.as_ref(), &config);
    let stale = health.stale(now);
    let mut node = typed(node, "Node");

    // 1. A node not heard from for the grace period becomes Unknown.
    if stale {
        let mut updated = node.clone();
        if mark_unknown(&mut updated, now) {
            host::log(
                LogLevel::Info,
                &format!("node {name}: kubelet stopped posting node status, marking it Unknown"),
            );
            node = cluster::update_status(&updated)
                .map_err(|e| format!("updating the status of node {name}: {e}"))?;
        }
    }
    let ready = ready_status(&node).map(str::to_string);

    // 2. Labels and taints.
    let disrupted = match ready.as_deref() {
        Some("True") | None => false,
        Some(_) => cluster_fully_disrupted(&node, now, &config)?,
    };
    let mut updated = node.clone();
    let labels_changed = mirror_labels(&mut updated);
    let taints_changed = reconcile_taints(&mut updated, disrupted, now);
    if labels_changed || taints_changed {
        node = host::update(&updated).map_err(|e| format!("updating node {name}: {e}"))?;
    }

    // 3. Its pods — only when something is to be done to them: a healthy node without
    // NoExecute taints (the usual case, reconciled on every change of its pods) costs no
    // list.
    let has_no_execute = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.get("effect").and_then(Value::as_str) == Some("NoExecute"))
        });
    let pods = if ready.as_deref() == Some("Unknown") || has_no_execute {
        cluster::select(&Query::new("v1", "Pod").fields(&format!("spec.nodeName={name}")))
            .map_err(|e| format!("listing the pods of node {name}: {e}"))?
    } else {
        Vec::new()
    };
    let mut errors = Vec::new();
    if ready.as_deref() == Some("Unknown") {
        mark_pods_not_ready(&node, &pods, now, &mut errors);
    }
    let next_eviction = evict_pods(&node, &pods, now, &mut errors);
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }

    // 4. Look again when the heartbeat would turn stale, while the node is not ready, and
    // when a tolerated taint runs out.
    let mut after = if stale {
        config.monitor_period_ms
    } else {
        health.deadline_ms - now + 1000
    };
    if matches!(ready.as_deref(), Some(s) if s != "True") {
        after = after.min(config.monitor_period_ms);
    }
    if let Some(at) = next_eviction {
        after = after.min(at.saturating_sub(now).max(1));
    }
    Ok(Action::RequeueAfter(Duration::from_millis(after)))
}

/// Sets the kubelet's conditions to Unknown (`tryUpdateNodeHealth`); whether any changed.
fn mark_unknown(node: &mut Value, now: u64) -> bool {
    let now = cluster::rfc3339(now);
    let created = objects::str_at(node, "/metadata/creationTimestamp").to_string();
    if !node.get("status").is_some_and(Value::is_object) {
        node["status"] = json!({});
    }
    if !node["status"]
        .get("conditions")
        .is_some_and(Value::is_array)
    {
        node["status"]["conditions"] = json!([]);
    }
    let Some(conditions) = node["status"]["conditions"].as_array_mut() else {
        return false;
    };
    let mut changed = false;
    for kind in KUBELET_CONDITIONS {
        match conditions
            .iter_mut()
            .find(|c| objects::str_at(c, "/type") == kind)
        {
            None => {
                conditions.push(json!({
                    "type": kind,
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": created,
                    "lastTransitionTime": now,
                }));
                changed = true;
            }
            Some(c) if objects::str_at(c, "/status") != "Unknown" => {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(now);
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed
}

/// Whether no node of the cluster is ready (this one is not): then NoExecute taints for
/// readiness are withheld. Nodes labelled [`LABEL_EXCLUDE_DISRUPTION`] do not count.
fn cluster_fully_disrupted(this: &Value, now: u64, config: &Config) -> Result<bool, String> {
    let excluded = |n: &Value| objects::labels(n).contains_key(LABEL_EXCLUDE_DISRUPTION);
    let mut counted = usize::from(!excluded(this));
    let nodes = host::list("v1", "Node", None, None).map_err(|e| format!("listing nodes: {e}"))?;
    for other in &nodes {
        if objects::name(other) == objects::name(this) || excluded(other) {
            continue;
        }
        counted += 1;
        if ready_status(other) == Some("True") {
            let lease = lease_of(objects::name(other))?;
            if !health(other, lease.as_ref(), config).stale(now) {
                return Ok(false);
            }
        }
    }
    Ok(counted > 0)
}

/// Keeps the beta os/arch labels equal to the stable ones; whether any changed.
fn mirror_labels(node: &mut Value) -> bool {
    let labels = objects::labels(node);
    let mut changed = false;
    for (stable, beta) in MIRRORED_LABELS {
        if let Some(value) = labels.get(stable)
            && labels.get(beta) != Some(value)
        {
            node["metadata"]["labels"][beta] = json!(value);
            changed = true;
        }
    }
    changed
}

fn is_taint(t: &Value, key: &str, effect: &str) -> bool {
    objects::str_at(t, "/key") == key && objects::str_at(t, "/effect") == effect
}

/// Brings the condition and readiness taints up to date; whether any changed.
fn reconcile_taints(node: &mut Value, disrupted: bool, now: u64) -> bool {
    let current: Vec<Value> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();

    // NoSchedule taints from conditions and spec.unschedulable.
    let mut no_schedule: Vec<&str> = Vec::new();
    for c in node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (kind, status) = (objects::str_at(c, "/type"), objects::str_at(c, "/status"));
        for (k, s, taint) in CONDITION_TAINTS {
            if k == kind && s == status && !no_schedule.contains(&taint) {
                no_schedule.push(taint);
            }
        }
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        no_schedule.push(TAINT_UNSCHEDULABLE);
    }
    let managed_no_schedule = |key: &str| {
        key == TAINT_UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, t)| *t == key)
    };

    // The NoExecute taint for readiness; `None` inside: neither. Without a Ready condition
    // they are left as they are.
    let no_execute: Option<Option<&str>> = match ready_status(node) {
        None => None,
        Some(_) if disrupted => Some(None),
        Some("False") => Some(Some(TAINT_NOT_READY)),
        Some("Unknown") => Some(Some(TAINT_UNREACHABLE)),
        Some(_) => Some(None),
    };

    let stamp = cluster::rfc3339(now);
    let mut taints: Vec<Value> = Vec::new();
    for t in &current {
        let key = objects::str_at(t, "/key");
        let effect = objects::str_at(t, "/effect");
        let wanted = match effect {
            NO_SCHEDULE if managed_no_schedule(key) => no_schedule.contains(&key),
            NO_EXECUTE if key == TAINT_NOT_READY || key == TAINT_UNREACHABLE => {
                no_execute.is_none_or(|want| want == Some(key))
            }
            _ => true,
        };
        if wanted && !taints.iter().any(|kept| is_taint(kept, key, effect)) {
            taints.push(t.clone());
        }
    }
    let missing: Vec<(&str, &str)> = no_schedule
        .iter()
        .map(|k| (*k, NO_SCHEDULE))
        .chain(no_execute.flatten().map(|k| (k, NO_EXECUTE)))
        .collect();
    for (key, effect) in missing {
        if !taints.iter().any(|t| is_taint(t, key, effect)) {
            taints.push(json!({"key": key, "effect": effect, "timeAdded": stamp}));
        }
    }
    // A NoExecute taint's time is when its tolerations start counting.
    for t in &mut taints {
        if objects::str_at(t, "/effect") == NO_EXECUTE
            && t.get("timeAdded").is_none_or(Value::is_null)
        {
            t["timeAdded"] = json!(stamp);
        }
    }

    if taints == current {
        return false;
    }
    if !node.get("spec").is_some_and(Value::is_object) {
        node["spec"] = json!({});
    }
    if let Some(spec) = node["spec"].as_object_mut() {
        if taints.is_empty() {
            spec.remove("taints");
        } else {
            spec.insert("taints".into(), Value::Array(taints));
        }
    }
    true
}

/// `MarkPodsNotReady`: the node is unreachable, so its pods are not ready — those that became
/// ready before the node stopped being ready.
fn mark_pods_not_ready(node: &Value, pods: &[Value], now: u64, errors: &mut Vec<String>) {
    let since = objects::condition(node, "Ready")
        .and_then(|c| millis(c, "/lastTransitionTime"))
        .unwrap_or(u64::MAX);
    let stamp = cluster::rfc3339(now);
    for pod in pods {
        let Some(ready) = objects::condition(pod, "Ready") else {
            continue;
        };
        if objects::str_at(ready, "/status") != "True"
            || millis(ready, "/lastTransitionTime").unwrap_or(0) > since
        {
            continue;
        }
        let mut updated = typed(pod, "Pod");
        if let Some(c) = updated
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
            .and_then(|cs| {
                cs.iter_mut()
                    .find(|c| objects::str_at(c, "/type") == "Ready")
            })
        {
            c["status"] = json!("False");
            c["lastTransitionTime"] = json!(stamp);
        }
        match cluster::update_status(&updated) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => errors.push(format!(
                "marking pod {}/{} not ready: {e}",
                objects::namespace(pod).unwrap_or_default(),
                objects::name(pod)
            )),
        }
    }
}

/// A `NoExecute` taint of the node.
#[derive(Debug, Clone)]
struct Taint {
    key: String,
    value: String,
    effect: String,
    added_ms: Option<u64>,
}

/// The node's `NoExecute` taints.
fn no_execute_taints(node: &Value) -> Vec<Taint> {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| objects::str_at(t, "/effect") == NO_EXECUTE)
        .map(|t| Taint {
            key: objects::str_at(t, "/key").to_string(),
            value: objects::str_at(t, "/value").to_string(),
            effect: NO_EXECUTE.to_string(),
            added_ms: millis(t, "/timeAdded"),
        })
        .collect()
}

/// `Toleration.ToleratesTaint`.
fn tolerates(toleration: &Value, taint: &Taint) -> bool {
    let effect = objects::str_at(toleration, "/effect");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = objects::str_at(toleration, "/key");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match objects::str_at(toleration, "/operator") {
        "" | "Equal" => objects::str_at(toleration, "/value") == taint.value,
        "Exists" => true,
        _ => false,
    }
}

/// When a pod must leave a node with these `NoExecute` taints: `now` when it does not
/// tolerate them all, else the earliest `timeAdded + tolerationSeconds` of the tolerations
/// used (`GetMatchingTolerations`: the first that tolerates each taint), or `None` when it
/// tolerates them all forever.
fn eviction_time(taints: &[Taint], tolerations: &[Value], now: u64) -> Option<u64> {
    let mut at: Option<u64> = None;
    for taint in taints {
        let Some(toleration) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Some(now);
        };
        let Some(seconds) = toleration.get("tolerationSeconds").and_then(Value::as_i64) else {
            continue;
        };
        let start = taint.added_ms.unwrap_or(now);
        let deadline = start.saturating_add(seconds.max(0).unsigned_abs() * 1000);
        at = Some(at.map_or(deadline, |a| a.min(deadline)));
    }
    at
}

/// Deletes the pods that must leave the node now; the next time one must.
fn evict_pods(node: &Value, pods: &[Value], now: u64, errors: &mut Vec<String>) -> Option<u64> {
    let taints = no_execute_taints(node);
    if taints.is_empty() {
        return None;
    }
    let mut next: Option<u64> = None;
    for pod in pods {
        if objects::is_deleting(pod) {
            continue;
        }
        let tolerations: Vec<Value> = pod
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let at = eviction_time(&taints, &tolerations, now);
        match at {
            None => {}
            Some(at) if at <= now => {
                if let Err(e) = evict(pod, objects::name(node), now) {
                    errors.push(e);
                }
            }
            Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
        }
    }
    next
}

/// `addConditionAndDeletePod`.
fn evict(pod: &Value, node: &str, now: u64) -> Result<(), String> {
    let namespace = objects::namespace(pod).unwrap_or_default();
    let name = objects::name(pod);
    host::log(
        LogLevel::Info,
        &format!(
            "evicting pod {namespace}/{name} from node {node}: it does not tolerate (any longer) the node's NoExecute taints"
        ),
    );
    let mut updated = typed(pod, "Pod");
    if set_pod_condition(
        &mut updated,
        "DisruptionTarget",
        "True",
        "DeletionByTaintManager",
        "Taint manager: deleting due to NoExecute taint",
        now,
    ) {
        match cluster::update_status(&updated) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(format!("marking pod {namespace}/{name} for eviction: {e}")),
        }
    }
    let uid = objects::uid(pod);
    let options = DeleteOptions {
        uid: (!uid.is_empty()).then(|| uid.to_string()),
        ..Default::default()
    };
    match cluster::delete_with("v1", "Pod", Some(namespace), name, &options) {
        Ok(()) => Ok(()),
        // Gone already, or replaced by another pod of that name.
        Err(e) if e.is_not_found() || e.code == 409 => Ok(()),
        Err(e) => Err(format!("evicting pod {namespace}/{name}: {e}")),
    }
}

/// `UpdatePodCondition`: sets a pod condition; whether it changed (the transition time moves
/// only with the status).
fn set_pod_condition(
    pod: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: u64,
) -> bool {
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    if !pod["status"].get("conditions").is_some_and(Value::is_array) {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(conditions) = pod["status"]["conditions"].as_array_mut() else {
        return false;
    };
    let mut condition = json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": cluster::rfc3339(now),
    });
    match conditions
        .iter_mut()
        .find(|c| objects::str_at(c, "/type") == kind)
    {
        None => {
            conditions.push(condition);
            true
        }
        Some(existing) => {
            if objects::str_at(existing, "/status") == status {
                if objects::str_at(existing, "/reason") == reason
                    && objects::str_at(existing, "/message") == message
                {
                    return false;
                }
                if let Some(t) = existing.get("lastTransitionTime") {
                    condition["lastTransitionTime"] = t.clone();
                }
            }
            *existing = condition;
            true
        }
    }
}

#[cfg(test)]
mod tests;
