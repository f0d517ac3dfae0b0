//! The DaemonSet controller (`apps/v1` DaemonSet, owning Pods, watching Nodes), as
//! kube-controller-manager's `daemon` controller (`pkg/controller/daemon`, Kubernetes
//! v1.33).
//!
//! What it does, as Kubernetes does:
//! - one pod per eligible node: a node is eligible when the template's `nodeName` (if any)
//!   names it, its labels satisfy the template's `nodeSelector` and required node affinity
//!   (`nodeSelectorTerms` with `matchExpressions` `In`/`NotIn`/`Exists`/`DoesNotExist`/
//!   `Gt`/`Lt` and `matchFields` on `metadata.name`), and every `NoSchedule`/`NoExecute`
//!   taint is tolerated — daemon pods always tolerate `not-ready`, `unreachable`
//!   (NoExecute), `disk-pressure`, `memory-pressure`, `pid-pressure`, `unschedulable`
//!   (NoSchedule) and, with `hostNetwork`, `network-unavailable`; a pod on a node whose
//!   new `NoSchedule` taint it does not tolerate keeps running, one with an untolerated
//!   `NoExecute` taint is deleted; every Node change re-evaluates every DaemonSet;
//! - pods are created from the template with `generateName: <ds>-`, the daemon
//!   tolerations, the labels `controller-revision-hash` and `pod-template-generation`, and
//!   a required node affinity `metadata.name In [<node>]` (replacing the template's
//!   required terms, as Kubernetes does since 1.12);
//! - failed and succeeded daemon pods are deleted (and recreated on the next call), extra
//!   pods on a node are deleted keeping the oldest;
//! - `RollingUpdate`: with `maxSurge: 0`, old pods are deleted while at most
//!   `maxUnavailable` (number or percentage of the desired pods, rounded up; at least 1)
//!   are unavailable, unavailable old pods first, and the new pod is created when the old
//!   one is gone; with `maxSurge` > 0, up to `maxSurge` new pods start beside the old ones,
//!   which are deleted once the new one is available; `OnDelete`: pods are replaced only
//!   when deleted;
//! - `status`: `desiredNumberScheduled`, `currentNumberScheduled`, `numberMisscheduled`,
//!   `numberReady`, `numberAvailable` (ready for `minReadySeconds`, requeued until then),
//!   `numberUnavailable`, `updatedNumberScheduled`, `observedGeneration` — what
//!   `kubectl rollout status daemonset` reads;
//! - events `SuccessfulCreate`, `SuccessfulDelete`, `FailedDaemonPod`,
//!   `SucceededDaemonPod`, `FailedCreate`, `FailedDelete`.
//!
//! Different from Kubernetes:
//! - the pods also get `spec.nodeName` set directly: there is no scheduler yet to bind
//!   them (Kubernetes leaves binding to the scheduler, which reads the affinity);
//! - pods whose node no longer exists are deleted here (Kubernetes' pod GC deletes bound
//!   ones; this controller only deletes unscheduled ones);
//! - no ControllerRevisions (`apps/v1` ControllerRevision is not served): the
//!   `controller-revision-hash` is a hash of the pod template (and `collisionCount`), so
//!   `kubectl rollout history/undo` have nothing to show; `pod-template-generation` is the
//!   `deprecated.daemonset.template.generation` annotation when present, else
//!   `metadata.generation`;
//! - failed pods are deleted without Kubernetes' per-node exponential backoff;
//! - no adoption of orphan pods matching the selector.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tugboat_plugin_sdk::cluster;
use tugboat_plugin_sdk::controller::{Action, Controller, ControllerSpec, MapRule, ObjectKey};
use tugboat_plugin_sdk::{Value, export_controller, host, json, objects};

pub mod nodes;
use workload_common as util;

#[cfg(test)]
use workload_common::testkit;
#[cfg(test)]
mod tests;

const API_VERSION: &str = "apps/v1";
const KIND: &str = "DaemonSet";
const COMPONENT: &str = "daemonset-controller";
/// The label with the template hash.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The label with the template generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Where Kubernetes keeps a DaemonSet's template generation.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// Pod creations (and deletions) per call (Kubernetes' `burstReplicas`: 250).
pub const BURST: usize = 50;

/// The DaemonSet controller.
pub struct DaemonSetController;

export_controller!(DaemonSetController);

impl Controller for DaemonSetController {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        util::configure(config)?;
        Ok(ControllerSpec::new(API_VERSION, KIND)
            .owns("v1", "Pod")
            .watch("v1", "Node", MapRule::All))
    }

    fn reconcile(_key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        match object {
            None => Ok(Action::Done),
            Some(ds) => sync(ds),
        }
    }
}

fn event(ds: &Value, type_: &str, reason: &str, message: &str) {
    util::record_event(COMPONENT, API_VERSION, KIND, ds, type_, reason, message);
}

/// What a call works with.
struct Ctx<'a> {
    ds: &'a Value,
    namespace: String,
    hash: String,
    generation: Option<i64>,
    /// The template's spec with the daemon tolerations (for the node predicates).
    predicate_spec: Value,
    min_ready_seconds: i64,
    now: u64,
}

impl Ctx<'_> {
    /// `IsPodUpdated`: the pod has the current template hash or template generation.
    fn is_updated(&self, pod: &Value) -> bool {
        let labels = objects::labels(pod);
        let hash_matches = labels.get(REVISION_HASH_LABEL) == Some(&self.hash);
        let generation_matches = self
            .generation
            .is_some_and(|g| labels.get(TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()));
        hash_matches || generation_matches
    }

    fn is_available(&self, pod: &Value) -> bool {
        objects::pod_is_available(pod, self.min_ready_seconds, self.now)
    }
}

/// `GetTemplateGeneration`: the annotation, else (no ControllerRevisions here)
/// `metadata.generation`.
fn template_generation(ds: &Value) -> Option<i64> {
    match ds
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .and_then(Value::as_str)
    {
        Some(text) => text.parse().ok(),
        None => objects::i64_at(ds, "/metadata/generation"),
    }
}

fn sync(ds: &Value) -> Result<Action, String> {
    if objects::is_deleting(ds) {
        return Ok(Action::Done);
    }
    let namespace = objects::namespace(ds)
        .ok_or("the DaemonSet has no namespace")?
        .to_string();
    let template = &ds["spec"]["template"];
    let mut predicate_spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    nodes::add_daemon_tolerations(&mut predicate_spec);
    let ctx = Ctx {
        ds,
        namespace,
        hash: objects::pod_template_hash(template, objects::i64_at(ds, "/status/collisionCount")),
        generation: template_generation(ds),
        predicate_spec,
        min_ready_seconds: util::int_or(ds, "/spec/minReadySeconds", 0),
        now: cluster::now_millis(),
    };
    let node_list =
        host::list("v1", "Node", None, None).map_err(|e| util::fail("listing nodes", e))?;

    let pods = util::owned("v1", "Pod", Some(&ctx.namespace), objects::uid(ds))?;
    let (to_delete, to_create) = manage(&ctx, &node_list, &pods);
    let mut changed = !to_delete.is_empty() || !to_create.is_empty();
    let mut errors = sync_nodes(&ctx, &to_delete, &to_create);
    if !changed
        && ds
            .pointer("/spec/updateStrategy/type")
            .and_then(Value::as_str)
            != Some("OnDelete")
    {
        match rolling_update(&ctx, &node_list, &pods) {
            Ok((del, create)) => {
                changed = !del.is_empty() || !create.is_empty();
                errors.extend(sync_nodes(&ctx, &del, &create));
            }
            Err(e) => errors.push(e),
        }
    }

    let pods = if changed {
        util::owned("v1", "Pod", Some(&ctx.namespace), objects::uid(ds))?
    } else {
        pods
    };
    let requeue = update_status(&ctx, &node_list, &pods)?;
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    Ok(match requeue {
        Some(d) => Action::RequeueAfter(d),
        None => Action::Done,
    })
}

/// `getNodesToDaemonPods`: the pods by target node, without those deleted and terminated.
fn pods_by_node(pods: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for p in pods {
        if objects::is_deleting(p) && objects::pod_is_terminal(p) {
            continue;
        }
        if let Some(node) = nodes::target_node(p) {
            map.entry(node).or_default().push(p);
        }
    }
    map
}

/// `podByCreationTimestampAndPhase`: scheduled first, then oldest, then by name.
fn oldest_first(a: &&Value, b: &&Value) -> std::cmp::Ordering {
    let unscheduled = |p: &Value| objects::str_at(p, "/spec/nodeName").is_empty();
    unscheduled(a)
        .cmp(&unscheduled(b))
        .then(util::created_millis(a).cmp(&util::created_millis(b)))
        .then(objects::name(a).cmp(objects::name(b)))
}

/// Whether surge is allowed (`util.AllowsSurge`: `maxSurge` resolved against 1).
fn allows_surge(ds: &Value) -> bool {
    ds.pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        != Some("OnDelete")
        && ds
            .pointer("/spec/updateStrategy/rollingUpdate/maxSurge")
            .is_some_and(|v| util::int_or_percent(v, 1, true).is_ok_and(|n| n != 0))
}

/// `manage` (`podsShouldBeOnNode` for every node): the pods to delete and the nodes that
/// need a pod.
fn manage<'a>(ctx: &Ctx, node_list: &[Value], pods: &'a [Value]) -> (Vec<&'a Value>, Vec<String>) {
    let by_node = pods_by_node(pods);
    let surge = allows_surge(ctx.ds);
    let (mut to_delete, mut to_create) = (Vec::new(), Vec::new());
    let mut node_names = BTreeSet::new();
    for node in node_list {
        let name = objects::name(node).to_string();
        node_names.insert(name.clone());
        let (should_run, should_continue) = nodes::should_run(&ctx.predicate_spec, node);
        let daemon_pods = by_node.get(&name).cloned().unwrap_or_default();
        if should_run && daemon_pods.is_empty() {
            to_create.push(name);
        } else if should_continue {
            let mut running: Vec<&Value> = Vec::new();
            for p in daemon_pods {
                if objects::is_deleting(p) {
                    continue;
                }
                match objects::str_at(p, "/status/phase") {
                    "Failed" => {
                        event(
                            ctx.ds,
                            "Warning",
                            "FailedDaemonPod",
                            &format!(
                                "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                                ctx.namespace,
                                objects::name(p)
                            ),
                        );
                        to_delete.push(p);
                    }
                    "Succeeded" => {
                        event(
                            ctx.ds,
                            "Normal",
                            "SucceededDaemonPod",
                            &format!(
                                "Found succeeded daemon pod {}/{} on node {name}, will try to delete it",
                                ctx.namespace,
                                objects::name(p)
                            ),
                        );
                        to_delete.push(p);
                    }
                    _ => running.push(p),
                }
            }
            running.sort_by(oldest_first);
            if !surge {
                to_delete.extend(running.iter().skip(1));
                continue;
            }
            if running.len() <= 1 {
                if running.is_empty() && should_run {
                    to_create.push(name);
                }
                continue;
            }
            // Surge: keep the oldest new and the oldest old pod while the new one is not
            // available and the old one is ready.
            let (mut oldest_new, mut oldest_old) = (None, None);
            for p in running {
                let slot = if objects::labels(p).get(REVISION_HASH_LABEL) == Some(&ctx.hash) {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(p);
                } else {
                    to_delete.push(p);
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old)
                && (!objects::pod_is_ready(old) || ctx.is_available(new))
            {
                to_delete.push(old);
            }
        } else {
            to_delete.extend(daemon_pods.into_iter().filter(|p| !objects::is_deleting(p)));
        }
    }
    // Pods for nodes that do not exist (any more).
    for (node, daemon_pods) in &by_node {
        if !node_names.contains(node) {
            to_delete.extend(daemon_pods.iter().filter(|p| !objects::is_deleting(p)));
        }
    }
    (to_delete, to_create)
}

/// `rollingUpdate`: the old pods to delete now (and, with surge, the nodes to start a new
/// pod on beside the old one).
fn rolling_update<'a>(
    ctx: &Ctx,
    node_list: &[Value],
    pods: &'a [Value],
) -> Result<(Vec<&'a Value>, Vec<String>), String> {
    let mut by_node = pods_by_node(pods);
    let mut desired = 0i64;
    for node in node_list {
        if nodes::should_run(&ctx.predicate_spec, node).0 {
            desired += 1;
            by_node.entry(objects::name(node).to_string()).or_default();
        }
    }
    let rolling = ctx
        .ds
        .pointer("/spec/updateStrategy/rollingUpdate")
        .cloned()
        .unwrap_or(Value::Null);
    let max_unavailable_value = rolling.get("maxUnavailable").cloned().unwrap_or(json!(1));
    let mut max_unavailable = util::int_or_percent(&max_unavailable_value, desired, true)?;
    let max_surge = match rolling.get("maxSurge") {
        Some(v) if allows_surge(ctx.ds) => util::int_or_percent(v, desired, true)?,
        _ => 0,
    };
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }

    // `findUpdatedPodsOnNode`: at most one new and one old pod (not being deleted).
    let split = |daemon_pods: &[&'a Value]| -> Option<(Option<&'a Value>, Option<&'a Value>)> {
        let (mut new, mut old) = (None, None);
        for p in daemon_pods
            .iter()
            .copied()
            .filter(|p| !objects::is_deleting(p))
        {
            let slot = if ctx.is_updated(p) {
                &mut new
            } else {
                &mut old
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(p);
        }
        Some((new, old))
    };

    if max_surge == 0 {
        let mut unavailable = 0i64;
        let mut allowed_replacements: Vec<&Value> = Vec::new();
        let mut candidates: Vec<&Value> = Vec::new();
        for daemon_pods in by_node.values() {
            let Some((new, old)) = split(daemon_pods) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !ctx.is_available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !ctx.is_available(old) {
                        allowed_replacements.push(old);
                    } else if unavailable < max_unavailable {
                        candidates.push(old);
                    }
                }
            }
        }
        let remaining = (max_unavailable - unavailable).clamp(0, candidates.len() as i64);
        allowed_replacements.extend(candidates.into_iter().take(remaining as usize));
        return Ok((allowed_replacements, Vec::new()));
    }

    let mut surging = 0i64;
    let mut allowed_new: Vec<String> = Vec::new();
    let mut candidate_new: Vec<String> = Vec::new();
    let mut old_to_delete: Vec<&Value> = Vec::new();
    for (node, daemon_pods) in &by_node {
        let Some((new, old)) = split(daemon_pods) else {
            surging += 1;
            continue;
        };
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !ctx.is_available(old) {
                    allowed_new.push(node.clone());
                } else if surging < max_surge {
                    candidate_new.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if ctx.is_available(new) {
                    old_to_delete.push(old);
                } else {
                    surging += 1;
                }
            }
        }
    }
    let remaining = (max_surge - surging).clamp(0, candidate_new.len() as i64);
    allowed_new.extend(candidate_new.into_iter().take(remaining as usize));
    Ok((old_to_delete, allowed_new))
}

/// `syncNodes`: creates pods on the nodes (slow start: stops at the first failure), then
/// deletes the pods. Returns the errors.
fn sync_nodes(ctx: &Ctx, to_delete: &[&Value], to_create: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    if !to_create.is_empty() {
        let controller = util::owner_ref(API_VERSION, KIND, ctx.ds);
        let mut template = ctx.ds["spec"]["template"].clone();
        util::set_meta_entry(&mut template, "labels", REVISION_HASH_LABEL, &ctx.hash);
        if let Some(g) = ctx.generation {
            util::set_meta_entry(
                &mut template,
                "labels",
                TEMPLATE_GENERATION_LABEL,
                &g.to_string(),
            );
        }
        if !template["spec"].is_object() {
            template["spec"] = json!({});
        }
        nodes::add_daemon_tolerations(&mut template["spec"]);
        for node in to_create.iter().take(BURST) {
            let mut pod = util::pod_from_template(&template, &ctx.namespace, &controller);
            pod["metadata"]["generateName"] = json!(format!("{}-", objects::name(ctx.ds)));
            nodes::pin_to_node(&mut pod["spec"], node);
            // No scheduler binds daemon pods yet: bind them here.
            pod["spec"]["nodeName"] = json!(node);
            match host::create(&pod) {
                Ok(created) => event(
                    ctx.ds,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", objects::name(&created)),
                ),
                Err(e) => {
                    event(
                        ctx.ds,
                        "Warning",
                        "FailedCreate",
                        &format!("Error creating: {}", e.message),
                    );
                    errors.push(util::fail(format_args!("creating a pod on node {node}"), e));
                    break;
                }
            }
        }
    }
    for pod in to_delete.iter().take(BURST) {
        let name = objects::name(pod);
        match host::delete("v1", "Pod", Some(&ctx.namespace), name) {
            Ok(()) => event(
                ctx.ds,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {name}"),
            ),
            Err(e) if util::not_found(&e) => {}
            Err(e) => {
                event(
                    ctx.ds,
                    "Warning",
                    "FailedDelete",
                    &format!("Error deleting: {}", e.message),
                );
                errors.push(util::fail(format_args!("deleting pod {name}"), e));
            }
        }
    }
    errors
}

/// `updateDaemonSetStatus`; returns when to call again for pods still becoming available.
fn update_status(
    ctx: &Ctx,
    node_list: &[Value],
    pods: &[Value],
) -> Result<Option<Duration>, String> {
    let by_node = pods_by_node(pods);
    let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) =
        (0, 0, 0, 0, 0, 0);
    for node in node_list {
        let (should_run, _) = nodes::should_run(&ctx.predicate_spec, node);
        let daemon_pods = by_node
            .get(objects::name(node))
            .cloned()
            .unwrap_or_default();
        let scheduled = !daemon_pods.is_empty();
        if should_run {
            desired += 1;
            let Some(pod) = daemon_pods.into_iter().min_by(oldest_first) else {
                continue;
            };
            current += 1;
            if objects::pod_is_ready(pod) {
                ready += 1;
                if ctx.is_available(pod) {
                    available += 1;
                }
            }
            if ctx.is_updated(pod) {
                updated += 1;
            }
        } else if scheduled {
            misscheduled += 1;
        }
    }
    let unavailable = desired - available;

    let old = &ctx.ds["status"];
    let mut status = if old.is_object() {
        old.clone()
    } else {
        json!({})
    };
    status["desiredNumberScheduled"] = json!(desired);
    status["currentNumberScheduled"] = json!(current);
    status["numberMisscheduled"] = json!(misscheduled);
    status["numberReady"] = json!(ready);
    for (field, n) in [
        ("updatedNumberScheduled", updated),
        ("numberAvailable", available),
        ("numberUnavailable", unavailable),
    ] {
        if n > 0 {
            status[field] = json!(n);
        } else if let Some(m) = status.as_object_mut() {
            m.remove(field);
        }
    }
    let generation = objects::generation(ctx.ds);
    if generation > 0 {
        status["observedGeneration"] = json!(generation);
    }
    if status != *old {
        let mut updated_ds = ctx.ds.clone();
        updated_ds["apiVersion"] = json!(API_VERSION);
        updated_ds["kind"] = json!(KIND);
        updated_ds["status"] = status;
        cluster::update_status(&updated_ds)
            .map_err(|e| util::fail("updating the DaemonSet status", e))?;
    }
    Ok((ctx.min_ready_seconds > 0 && ready != available)
        .then(|| Duration::from_secs(ctx.min_ready_seconds as u64)))
}
