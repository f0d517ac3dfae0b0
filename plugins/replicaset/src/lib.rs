//! The ReplicaSet controller: keeps `spec.replicas` Pods running for every `apps/v1`
//! ReplicaSet, as kube-controller-manager's `pkg/controller/replicaset` does.
//!
//! Each reconcile of a ReplicaSet:
//!
//! 1. **claims** Pods (`ControllerRefManager.ClaimPods`): of the active Pods (not
//!    `Succeeded`/`Failed`, not being deleted) that its selector selects or that name it as
//!    owner, it adopts matching orphans (a strategic-merge patch adding a controller
//!    `ownerReference` with `blockOwnerDeletion`, guarded by the Pod's uid) and releases
//!    owned Pods whose labels no longer match (a patch deleting its `ownerReference`).
//!    Pods controlled by another owner are left alone; a ReplicaSet being deleted adopts and
//!    releases nothing;
//! 2. **manages replicas** (`manageReplicas`), unless the ReplicaSet is being deleted:
//!    creates missing Pods from `spec.template` (`generateName: <replicaset>-`, the
//!    template's labels, annotations and finalizers, a controller owner reference) in
//!    slow-start batches of 1, 2, 4, … that stop at the first batch with a failure, at most
//!    500 (`burstReplicas`) and for at most a second per reconcile; or deletes surplus Pods
//!    (with the same limits), choosing them like `getPodsToDelete`/`ActivePodsWithRanks`:
//!    unassigned before assigned,
//!    `Pending` before `Unknown` before `Running`, not ready before ready, lower
//!    `controller.kubernetes.io/pod-deletion-cost` first, Pods doubled up on a node with
//!    Pods of sibling ReplicaSets (same controller) first, ready for less time first (in
//!    logarithmic buckets, as with `LogarithmicScaleDown`), more container restarts first,
//!    newer first (logarithmic buckets again, then uid);
//! 3. **writes status** when it changed (a merge patch of the `status` subresource, so it
//!    never conflicts with spec writes of the Deployment controller): `replicas`,
//!    `fullyLabeledReplicas`, `readyReplicas`, `availableReplicas` (ready for
//!    `minReadySeconds`), `observedGeneration`, and the `ReplicaFailure` condition
//!    (`FailedCreate`/`FailedDelete`, removed once managing succeeds again). The counts
//!    include the Pods created and exclude the Pods deleted by this very reconcile, which
//!    saves a status write per scaling step;
//! 4. asks to be called again (`RequeueAfter`) when a ready Pod becomes available later
//!    because of `minReadySeconds`; a failure to create or delete is returned as an error
//!    (the host retries with backoff), after the status recorded it.
//!
//! Reads go to the host's cache through indexed queries only: the Pods selected by the
//! ReplicaSet's selector and the Pods it owns (by owner uid), plus, when Pods must be
//! deleted, the sibling ReplicaSets and their Pods for the doubled-up ranking. The cache is
//! read-your-writes, so no "expectations" are kept.
//!
//! Watches: the primary kind `apps/v1` ReplicaSet; `v1` Pods with [`MapRule::Owner`] (a
//! change to a Pod enqueues its controller). With the config
//! `{"adoptOrphansOnPodEvents": true}` Pods are also watched with
//! `MapRule::Selector("/spec/selector")`, so that a new orphan Pod enqueues the ReplicaSets
//! selecting it at once, as in Kubernetes; it is off by default because the host evaluates
//! that rule against every ReplicaSet of the namespace on every Pod change. Without it,
//! orphans are adopted at the ReplicaSet's next reconcile (any change to it or its Pods).
//! `{"workers": N}` sets the number of concurrent reconciles.
//!
//! Events like Kubernetes' (`SuccessfulCreate` "Created pod: …", `SuccessfulDelete`,
//! `FailedCreate` "Error creating: …", `FailedDelete`) are recorded unless the config says
//! `{"events": false}` (one write less per Pod created or deleted).
//!
//! Not implemented: the `status.terminatingReplicas` field (alpha
//! `DeploymentReplicaSetTerminatingReplicas`), the fresh (uncached) re-read of the
//! ReplicaSet before adopting (`RecheckDeletionTimestamp` reads the cache here), metrics,
//! and ReplicationControllers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tugboat_plugin_sdk::cluster::{self, DeleteOptions, PatchType, Query};
use tugboat_plugin_sdk::controller::{Action, Controller, ControllerSpec, MapRule, ObjectKey};
use tugboat_plugin_sdk::host::{self, HostError, LogLevel};
use tugboat_plugin_sdk::objects;
use tugboat_plugin_sdk::{Value, export_controller, json};

pub use workload_common::events;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

#[cfg(test)]
mod tests;

/// How many Pods one reconcile creates or deletes at most (`burstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// How long one reconcile keeps creating or deleting Pods (the plugin's deadline is 2 s);
/// the events of the Pods created or deleted bring the ReplicaSet back for the rest.
pub const TIME_BUDGET_MS: u64 = 1000;

/// The annotation giving a Pod's cost of deletion (lower is deleted first).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The condition type recording failures to create or delete Pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The `source.component` of the Events this controller records.
pub const COMPONENT: &str = "replicaset-controller";

/// The plugin's configuration (`spec.config` of its Plugin object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Also watch Pods with `MapRule::Selector("/spec/selector")`.
    pub adopt_orphans_on_pod_events: bool,
    /// Concurrent reconciles (0: the host's default).
    pub workers: u32,
    /// Record Events (`SuccessfulCreate`, `SuccessfulDelete`, `FailedCreate`,
    /// `FailedDelete`); default true, false saves one write per Pod created or deleted.
    pub events: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            adopt_orphans_on_pod_events: false,
            workers: 0,
            events: true,
        }
    }
}

impl Config {
    /// Reads `{"adoptOrphansOnPodEvents": bool, "workers": n, "events": bool}`; `null` is
    /// the default.
    pub fn parse(config: &Value) -> Result<Config, String> {
        let mut out = Config::default();
        let Some(map) = config.as_object() else {
            return if config.is_null() {
                Ok(out)
            } else {
                Err("the config must be an object".into())
            };
        };
        for (k, v) in map {
            match k.as_str() {
                "adoptOrphansOnPodEvents" => {
                    out.adopt_orphans_on_pod_events = v
                        .as_bool()
                        .ok_or("config.adoptOrphansOnPodEvents must be a boolean")?;
                }
                "workers" => {
                    out.workers = v
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or("config.workers must be a non-negative integer")?;
                }
                "events" => {
                    out.events = v.as_bool().ok_or("config.events must be a boolean")?;
                }
                other => return Err(format!("unknown config field {other:?}")),
            }
        }
        Ok(out)
    }
}

/// The controller.
pub struct ReplicaSetController;

impl Controller for ReplicaSetController {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        let config = Config::parse(config)?;
        events::enable(config.events);
        // Its own status writes do not wake it (its pods' changes do).
        let mut spec = ControllerSpec::new("apps/v1", "ReplicaSet")
            .primary_changes(tugboat_plugin_sdk::controller::Changes::SpecAndMetadata)
            .owns("v1", "Pod");
        if config.adopt_orphans_on_pod_events {
            spec = spec.watch("v1", "Pod", MapRule::Selector("/spec/selector".into()));
        }
        Ok(spec.workers(config.workers))
    }

    fn reconcile(_key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        match object {
            Some(rs) => sync_replica_set(rs),
            None => Ok(Action::Done),
        }
    }
}

export_controller!(ReplicaSetController);

fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}

fn event(rs: &Value, type_: &str, reason: &str, message: &str) {
    events::record(
        COMPONENT,
        "apps/v1",
        "ReplicaSet",
        rs,
        type_,
        reason,
        message,
    );
}

/// `spec.replicas` (defaulted to 1 like the API server does).
pub fn spec_replicas(rs: &Value) -> i64 {
    objects::i64_at(rs, "/spec/replicas").unwrap_or(1)
}

/// Whether a `LabelSelector` selects nothing useful: missing, not an object, or empty (the
/// API server rejects empty selectors on apps/v1 ReplicaSets).
fn usable_selector(rs: &Value) -> Option<&Value> {
    let sel = rs.pointer("/spec/selector")?.as_object()?;
    let has_labels = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty());
    let has_exprs = sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    (has_labels || has_exprs).then(|| &rs["spec"]["selector"])
}

/// The owner reference a ReplicaSet puts on its Pods.
pub fn replica_set_ref(rs: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": objects::name(rs),
        "uid": objects::uid(rs),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn sync_replica_set(rs: &Value) -> Result<Action, String> {
    let name = objects::name(rs);
    let Some(ns) = objects::namespace(rs) else {
        return Err(format!("ReplicaSet {name} has no namespace"));
    };
    let Some(selector) = usable_selector(rs) else {
        // Kubernetes logs an invalid selector and drops the key: nothing can match it.
        log(
            LogLevel::Warn,
            &format!("ReplicaSet {ns}/{name} has an empty or invalid selector; ignoring it"),
        );
        return Ok(Action::Done);
    };
    let now = cluster::now_millis();
    let mut pods = claim_pods(rs, ns, selector)?;

    let desired = spec_replicas(rs);
    let diff_before = pods.len() as i64 - desired;
    let manage_err = if objects::is_deleting(rs) {
        None
    } else {
        manage_replicas(rs, ns, &mut pods, now).err()
    };

    let current = RsStatus::parse(rs);
    let failure = manage_err.as_ref().map(|e| e.message.as_str());
    let wanted = calculate_status(rs, &current, &pods, failure, diff_before, now);
    if wanted != current || objects::generation(rs) != current.observed_generation {
        let mut wanted = wanted;
        wanted.observed_generation = objects::generation(rs);
        cluster::patch(
            "apps/v1",
            "ReplicaSet",
            Some(ns),
            name,
            PatchType::Merge,
            &json!({ "status": wanted.to_json() }),
            Some("status"),
        )
        .map_err(|e| format!("updating the status of ReplicaSet {ns}/{name}: {e}"))?;
    }
    if let Some(e) = manage_err {
        return Err(format!("ReplicaSet {ns}/{name}: {}", e.detail));
    }
    let min_ready = objects::i64_at(rs, "/spec/minReadySeconds").unwrap_or(0);
    Ok(match next_availability(&pods, min_ready, now) {
        Some(after) => Action::RequeueAfter(after),
        None => Action::Done,
    })
}

/// How long until the first ready Pod that is not yet available (because of
/// `minReadySeconds`) becomes available.
pub fn next_availability(pods: &[Value], min_ready_seconds: i64, now: u64) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.iter()
        .filter(|p| {
            objects::pod_is_ready(p) && !objects::pod_is_available(p, min_ready_seconds, now)
        })
        .filter_map(ready_since)
        .map(|since| since + (min_ready_seconds as u64) * 1000)
        .min()
        .map(|at| Duration::from_millis(at.saturating_sub(now).max(1) + 10))
}

/// The Pods this ReplicaSet claims, adopting and releasing as needed.
fn claim_pods(rs: &Value, ns: &str, selector: &Value) -> Result<Vec<Value>, String> {
    let rs_uid = objects::uid(rs);
    let by_labels = cluster::select(
        &Query::new("v1", "Pod")
            .namespace(Some(ns))
            .labels(&objects::selector_string(selector)),
    )
    .map_err(|e| format!("listing Pods: {e}"))?;
    let owned = if rs_uid.is_empty() {
        Vec::new()
    } else {
        cluster::select(&Query::new("v1", "Pod").namespace(Some(ns)).owner(rs_uid))
            .map_err(|e| format!("listing Pods: {e}"))?
    };
    let mut seen = BTreeSet::new();
    let candidates = by_labels
        .into_iter()
        .chain(owned)
        .filter(|p| seen.insert(objects::uid(p).to_string()) && objects::pod_is_active(p));

    let deleting = objects::is_deleting(rs);
    let mut claimed = Vec::new();
    let mut errors = Vec::new();
    for pod in candidates {
        let matches = objects::selector_matches(selector, &objects::labels(&pod));
        match objects::controller_of(&pod) {
            Some(r) => {
                if r.get("uid").and_then(Value::as_str) != Some(rs_uid) {
                    continue;
                }
                if matches {
                    claimed.push(pod);
                } else if !deleting
                    && let Err(e) = release(&pod, rs_uid)
                    && !e.is_not_found()
                {
                    errors.push(format!("releasing Pod {}: {e}", objects::name(&pod)));
                }
            }
            None => {
                if deleting || !matches || objects::is_deleting(&pod) {
                    continue;
                }
                if objects::namespace(&pod) != Some(ns) {
                    continue;
                }
                match adopt(&pod, rs) {
                    Ok(p) => claimed.push(p),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => errors.push(format!("adopting Pod {}: {e}", objects::name(&pod))),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(claimed)
    } else {
        Err(errors.join("; "))
    }
}

/// Adds the ReplicaSet as controller of an orphan Pod (Kubernetes'
/// `ownerRefControllerPatch`: a strategic-merge patch guarded by the Pod's uid).
fn adopt(pod: &Value, rs: &Value) -> Result<Value, HostError> {
    let patch = json!({"metadata": {
        "ownerReferences": [replica_set_ref(rs)],
        "uid": objects::uid(pod),
    }});
    cluster::patch(
        "v1",
        "Pod",
        objects::namespace(pod),
        objects::name(pod),
        PatchType::Strategic,
        &patch,
        None,
    )
}

/// Removes the ReplicaSet's owner reference from a Pod it no longer selects.
fn release(pod: &Value, rs_uid: &str) -> Result<Value, HostError> {
    let patch = json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": rs_uid}],
        "uid": objects::uid(pod),
    }});
    cluster::patch(
        "v1",
        "Pod",
        objects::namespace(pod),
        objects::name(pod),
        PatchType::Strategic,
        &patch,
        None,
    )
}

/// The Pod the ReplicaSet creates (Kubernetes' `GetPodFromTemplate`).
pub fn pod_from_template(rs: &Value) -> Result<Value, String> {
    let template = rs
        .pointer("/spec/template")
        .filter(|t| t.is_object())
        .ok_or("the ReplicaSet has no spec.template")?;
    let labels = template
        .pointer("/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .ok_or("unable to create pods, no labels")?;
    let mut metadata = json!({
        "generateName": format!("{}-", objects::name(rs)),
        "namespace": objects::namespace(rs),
        "labels": labels,
        "ownerReferences": [replica_set_ref(rs)],
    });
    for field in ["annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{field}"))
            && !v.is_null()
        {
            metadata[field] = v.clone();
        }
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    }))
}

/// Whether a create failed because the namespace is being deleted (Kubernetes ignores
/// those: every later create would fail the same way).
fn namespace_terminating(e: &HostError) -> bool {
    e.message.contains("because it is being terminated")
}

/// Why managing replicas failed.
#[derive(Debug)]
struct ManageError {
    /// For the `ReplicaFailure` condition: the API's message, as Kubernetes records it.
    message: String,
    /// For the log: with the object and what was skipped.
    detail: String,
}

impl ManageError {
    fn new(message: impl Into<String>, detail: impl Into<String>) -> Self {
        ManageError {
            message: message.into(),
            detail: detail.into(),
        }
    }
}

/// Creates or deletes Pods so that `pods` (the active, claimed ones) reaches
/// `spec.replicas`; `pods` is updated with what was created and deleted.
fn manage_replicas(
    rs: &Value,
    ns: &str,
    pods: &mut Vec<Value>,
    now: u64,
) -> Result<(), ManageError> {
    let desired = usize::try_from(spec_replicas(rs).max(0)).unwrap_or(0);
    if pods.len() < desired {
        let want = (desired - pods.len()).min(BURST_REPLICAS);
        let pod = pod_from_template(rs).map_err(|e| ManageError::new(e.clone(), e))?;
        let mut remaining = want;
        let mut batch = 1;
        let started = cluster::now_millis();
        'batches: while remaining > 0 {
            let n = batch.min(remaining);
            let mut failure = None;
            if cluster::now_millis().saturating_sub(started) > TIME_BUDGET_MS {
                break 'batches;
            }
            // A slow-start batch is created concurrently (as Kubernetes does).
            for outcome in cluster::create_all(&vec![pod.clone(); n]) {
                match outcome {
                    Ok(created) => {
                        let msg = format!("Created pod: {}", objects::name(&created));
                        event(rs, "Normal", "SuccessfulCreate", &msg);
                        pods.push(created);
                    }
                    Err(e) if namespace_terminating(&e) => {}
                    Err(e) => {
                        event(
                            rs,
                            "Warning",
                            "FailedCreate",
                            &format!("Error creating: {}", e.message),
                        );
                        failure.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failure {
                let skipped = remaining - n;
                let more = if skipped > 0 {
                    format!(" ({skipped} more skipped)")
                } else {
                    String::new()
                };
                return Err(ManageError::new(
                    e.message.clone(),
                    format!("creating Pods: {e}{more}"),
                ));
            }
            remaining -= n;
            batch *= 2;
        }
    } else if pods.len() > desired {
        let n = (pods.len() - desired).min(BURST_REPLICAS);
        let related = if n < pods.len() {
            related_pods(rs, ns).map_err(|e| ManageError::new(e.clone(), e))?
        } else {
            Vec::new()
        };
        let victims: BTreeSet<usize> = pods_to_delete(pods, &related, n, now).into_iter().collect();
        let mut errors: Vec<HostError> = Vec::new();
        let mut gone = BTreeSet::new();
        let started = cluster::now_millis();
        for &i in &victims {
            if cluster::now_millis().saturating_sub(started) > TIME_BUDGET_MS {
                break;
            }
            let pod = &pods[i];
            let options = DeleteOptions {
                uid: Some(objects::uid(pod).to_string()).filter(|u| !u.is_empty()),
                ..Default::default()
            };
            match cluster::delete_with("v1", "Pod", Some(ns), objects::name(pod), &options) {
                Ok(()) => {
                    let msg = format!("Deleted pod: {}", objects::name(pod));
                    event(rs, "Normal", "SuccessfulDelete", &msg);
                    gone.insert(i);
                }
                // Gone already, or replaced by another Pod of the same name.
                Err(e) if e.is_not_found() || e.code == 409 => {
                    gone.insert(i);
                }
                Err(e) => {
                    event(
                        rs,
                        "Warning",
                        "FailedDelete",
                        &format!("Error deleting: {}", e.message),
                    );
                    errors.push(e);
                }
            }
        }
        let mut i = 0;
        pods.retain(|_| {
            let keep = !gone.contains(&i);
            i += 1;
            keep
        });
        if let Some(first) = errors.first() {
            let all: Vec<String> = errors.iter().map(HostError::to_string).collect();
            return Err(ManageError::new(
                first.message.clone(),
                format!("deleting Pods: {}", all.join("; ")),
            ));
        }
    }
    Ok(())
}

/// The active Pods of the ReplicaSets controlled by the same controller as `rs`
/// (`getIndirectlyRelatedPods`); empty when `rs` has no controller.
fn related_pods(rs: &Value, ns: &str) -> Result<Vec<Value>, String> {
    let Some(owner_uid) = objects::controller_of(rs)
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
    else {
        return Ok(Vec::new());
    };
    let siblings = cluster::select(
        &Query::new("apps/v1", "ReplicaSet")
            .namespace(Some(ns))
            .owner(owner_uid),
    )
    .map_err(|e| format!("listing ReplicaSets: {e}"))?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for sibling in siblings
        .iter()
        .filter(|s| objects::is_controlled_by(s, owner_uid))
    {
        let Some(selector) = usable_selector(sibling) else {
            continue;
        };
        let pods = cluster::select(
            &Query::new("v1", "Pod")
                .namespace(Some(ns))
                .labels(&objects::selector_string(selector)),
        )
        .map_err(|e| format!("listing Pods: {e}"))?;
        for pod in pods {
            if objects::selector_matches(selector, &objects::labels(&pod))
                && seen.insert(objects::uid(&pod).to_string())
            {
                out.push(pod);
            }
        }
    }
    Ok(out)
}

/// The indices of the `n` Pods to delete first (`getPodsToDelete`).
pub fn pods_to_delete(pods: &[Value], related: &[Value], n: usize, now: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pods.len()).collect();
    if n < pods.len() {
        let mut on_node: BTreeMap<&str, i64> = BTreeMap::new();
        for p in related.iter().filter(|p| objects::pod_is_active(p)) {
            *on_node
                .entry(objects::str_at(p, "/spec/nodeName"))
                .or_default() += 1;
        }
        let ranks: Vec<i64> = pods
            .iter()
            .map(|p| {
                on_node
                    .get(objects::str_at(p, "/spec/nodeName"))
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        order.sort_by(|&a, &b| {
            if delete_before(&pods[a], ranks[a], &pods[b], ranks[b], now) {
                std::cmp::Ordering::Less
            } else if delete_before(&pods[b], ranks[b], &pods[a], ranks[a], now) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
    }
    order.truncate(n);
    order
}

fn phase_ordinal(pod: &Value) -> i32 {
    match objects::str_at(pod, "/status/phase") {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Value) -> i64 {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(Value::as_str)
        .and_then(|s| s.trim().parse::<i32>().ok())
        .map(i64::from)
        .unwrap_or(0)
}

/// When the Pod's `Ready` condition last turned `True`, if it is ready.
fn ready_since(pod: &Value) -> Option<u64> {
    if !objects::pod_is_ready(pod) {
        return None;
    }
    objects::condition(pod, "Ready")
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
        .and_then(cluster::parse_rfc3339)
}

fn created_at(pod: &Value) -> Option<u64> {
    cluster::parse_rfc3339(objects::str_at(pod, "/metadata/creationTimestamp"))
}

/// The highest restart count of the regular containers and of the sidecars (init
/// containers with `restartPolicy: Always`).
fn max_restarts(pod: &Value) -> (i64, i64) {
    let restarts = |list: &str, only: Option<&BTreeSet<&str>>| {
        pod.pointer(&format!("/status/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| only.is_none_or(|names| names.contains(objects::str_at(c, "/name"))))
            .filter_map(|c| objects::i64_at(c, "/restartCount"))
            .max()
            .unwrap_or(0)
    };
    let sidecars: BTreeSet<&str> = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| objects::str_at(c, "/restartPolicy") == "Always")
        .map(|c| objects::str_at(c, "/name"))
        .collect();
    (
        restarts("containerStatuses", None),
        restarts("initContainerStatuses", Some(&sidecars)),
    )
}

/// Kubernetes' `afterOrZero`: a missing time first, then the later time.
fn after_or_zero(t1: Option<u64>, t2: Option<u64>) -> bool {
    match (t1, t2) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a > b,
    }
}

/// `logarithmicRankDiff`: compares the ages' binary logarithms (in nanoseconds).
fn log_rank_diff(t1: u64, t2: u64, now: u64) -> i64 {
    let rank = |t: u64| {
        if now > t {
            let nanos = (now - t) as f64 * 1e6;
            nanos.log2().floor() as i64
        } else {
            -1
        }
    };
    rank(t1) - rank(t2)
}

/// Compares two times like `ActivePodsWithRanks` does with `LogarithmicScaleDown`: a
/// missing time first, then the younger bucket, then the lower uid. `None` when equal.
fn log_time_less(a: &Value, t1: Option<u64>, b: &Value, t2: Option<u64>, now: u64) -> Option<bool> {
    if t1 == t2 {
        return None;
    }
    match (t1, t2) {
        (Some(x), Some(y)) => {
            let diff = log_rank_diff(x, y, now);
            Some(if diff == 0 {
                objects::uid(a) < objects::uid(b)
            } else {
                diff < 0
            })
        }
        _ => Some(after_or_zero(t1, t2)),
    }
}

/// `ActivePodsWithRanks.Less`: whether Pod `a` (with `rank_a` related Pods on its node)
/// should be deleted before Pod `b`.
pub fn delete_before(a: &Value, rank_a: i64, b: &Value, rank_b: i64, now: u64) -> bool {
    // 1. Unassigned < assigned.
    let (na, nb) = (
        objects::str_at(a, "/spec/nodeName"),
        objects::str_at(b, "/spec/nodeName"),
    );
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    // 2. Pending < Unknown < Running.
    let (pa, pb) = (phase_ordinal(a), phase_ordinal(b));
    if pa != pb {
        return pa < pb;
    }
    // 3. Not ready < ready.
    let (ra, rb) = (objects::pod_is_ready(a), objects::pod_is_ready(b));
    if ra != rb {
        return !ra;
    }
    // 4. Lower pod-deletion-cost < higher.
    let (ca, cb) = (deletion_cost(a), deletion_cost(b));
    if ca != cb {
        return ca < cb;
    }
    // 5. Doubled up < not doubled up.
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    // 6. Ready for less time < more time.
    if ra
        && rb
        && let Some(less) = log_time_less(a, ready_since(a), b, ready_since(b), now)
    {
        return less;
    }
    // 7. More restarts < fewer restarts.
    let (ma, mb) = (max_restarts(a), max_restarts(b));
    if ma.0 != mb.0 {
        return ma.0 > mb.0;
    }
    if ma.1 != mb.1 {
        return ma.1 > mb.1;
    }
    // 8. Newer < older.
    log_time_less(a, created_at(a), b, created_at(b), now).unwrap_or(false)
}

/// A ReplicaSet condition (no `lastUpdateTime`, unlike Deployment conditions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsCondition {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

impl RsCondition {
    fn parse(v: &Value) -> RsCondition {
        RsCondition {
            kind: objects::str_at(v, "/type").into(),
            status: objects::str_at(v, "/status").into(),
            reason: objects::str_at(v, "/reason").into(),
            message: objects::str_at(v, "/message").into(),
            last_transition_time: objects::str_at(v, "/lastTransitionTime").into(),
        }
    }

    fn to_json(&self) -> Value {
        let mut c = json!({"type": self.kind, "status": self.status});
        for (k, v) in [
            ("lastTransitionTime", &self.last_transition_time),
            ("reason", &self.reason),
            ("message", &self.message),
        ] {
            if !v.is_empty() {
                c[k] = json!(v);
            }
        }
        c
    }
}

/// A ReplicaSet's status, compared semantically (missing counts are 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RsStatus {
    pub replicas: i64,
    pub fully_labeled_replicas: i64,
    pub ready_replicas: i64,
    pub available_replicas: i64,
    pub observed_generation: i64,
    pub conditions: Vec<RsCondition>,
}

impl RsStatus {
    pub fn parse(rs: &Value) -> RsStatus {
        let n = |f: &str| objects::i64_at(rs, &format!("/status/{f}")).unwrap_or(0);
        RsStatus {
            replicas: n("replicas"),
            fully_labeled_replicas: n("fullyLabeledReplicas"),
            ready_replicas: n("readyReplicas"),
            available_replicas: n("availableReplicas"),
            observed_generation: n("observedGeneration"),
            conditions: rs
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(RsCondition::parse)
                .collect(),
        }
    }

    /// The status as written: every count explicit, no `conditions` key when there are
    /// none (`null` removes it in the merge patch).
    pub fn to_json(&self) -> Value {
        json!({
            "replicas": self.replicas,
            "fullyLabeledReplicas": self.fully_labeled_replicas,
            "readyReplicas": self.ready_replicas,
            "availableReplicas": self.available_replicas,
            "observedGeneration": self.observed_generation,
            "conditions": if self.conditions.is_empty() {
                Value::Null
            } else {
                Value::Array(self.conditions.iter().map(RsCondition::to_json).collect())
            },
        })
    }
}

/// `calculateStatus`: the counts over the claimed active Pods, and the `ReplicaFailure`
/// condition set when managing failed (kept as is while it keeps failing) and removed when
/// it succeeds. `observed_generation` is carried over; the caller sets it when writing.
fn calculate_status(
    rs: &Value,
    current: &RsStatus,
    pods: &[Value],
    manage_err: Option<&str>,
    diff_before: i64,
    now: u64,
) -> RsStatus {
    let min_ready = objects::i64_at(rs, "/spec/minReadySeconds").unwrap_or(0);
    let template_labels = objects::string_map(rs.pointer("/spec/template/metadata/labels"));
    let mut status = current.clone();
    status.replicas = pods.len() as i64;
    status.fully_labeled_replicas = pods
        .iter()
        .filter(|p| {
            let labels = objects::labels(p);
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count() as i64;
    status.ready_replicas = pods.iter().filter(|p| objects::pod_is_ready(p)).count() as i64;
    status.available_replicas = pods
        .iter()
        .filter(|p| objects::pod_is_available(p, min_ready, now))
        .count() as i64;
    let has_failure = status.conditions.iter().any(|c| c.kind == REPLICA_FAILURE);
    match manage_err {
        Some(message) if !has_failure => {
            let reason = match diff_before.signum() {
                -1 => "FailedCreate",
                1 => "FailedDelete",
                _ => "",
            };
            status.conditions.push(RsCondition {
                kind: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: reason.into(),
                message: message.into(),
                last_transition_time: cluster::rfc3339(now),
            });
        }
        None if has_failure => status.conditions.retain(|c| c.kind != REPLICA_FAILURE),
        _ => {}
    }
    status
}
