//! The StatefulSet controller (`apps/v1` StatefulSet, owning Pods and creating their
//! PersistentVolumeClaims), as kube-controller-manager's `statefulset` controller
//! (`pkg/controller/statefulset`, Kubernetes v1.33 with its default feature gates).
//!
//! What it does, as Kubernetes does:
//! - pods `<set>-<ordinal>` for the ordinals `start..start+replicas` (`spec.ordinals.start`,
//!   default 0), labelled `statefulset.kubernetes.io/pod-name`,
//!   `apps.kubernetes.io/pod-index` and `controller-revision-hash`, with `hostname` the pod
//!   name and `subdomain` the `serviceName`, controlled by the StatefulSet;
//! - `volumeClaimTemplates`: before its pod, each claim `<template>-<set>-<ordinal>` is
//!   created (labels: the template's plus the selector's `matchLabels`; controlled by the
//!   StatefulSet when `persistentVolumeClaimRetentionPolicy.whenDeleted` is `Delete`) and
//!   the pod gets a volume of the template's name bound to it;
//! - `OrderedReady`: pods are created one at a time in ordinal order, each only when every
//!   lower ordinal is Running and Ready (and available for `minReadySeconds`); scaling
//!   down deletes the highest ordinal first, one at a time, waiting for it to terminate,
//!   and only while the lower ones are healthy; `Parallel`: all at once, no waiting;
//! - failed (or succeeded) pods are deleted and recreated with the same name;
//! - `RollingUpdate`: from the highest ordinal down to `partition`, one pod at a time: a
//!   pod not at the update revision is deleted, recreated at the update revision, and the
//!   next waits until it is Running and Ready; pods below `partition` are (re)created at
//!   the current revision; `OnDelete`: pods are replaced only when deleted;
//! - `status`: `observedGeneration`, `replicas`, `readyReplicas`, `availableReplicas`,
//!   `currentReplicas`, `updatedReplicas`, `currentRevision`, `updateRevision`,
//!   `collisionCount`; when every pod is updated and ready the update revision becomes the
//!   current one — what `kubectl rollout status statefulset` reads;
//! - events `SuccessfulCreate`/`SuccessfulDelete`/`FailedCreate`/`FailedDelete` with
//!   Kubernetes' messages (`create Pod web-0 in StatefulSet web successful`).
//!
//! Different from Kubernetes:
//! - no ControllerRevisions (`apps/v1` ControllerRevision is not served): a revision is
//!   named `<set>-<hash of the pod template and collisionCount>`; the template of the
//!   current revision, needed to recreate a pod below the `partition` during an update, is
//!   taken from a live pod of that revision (else the update revision is used), and
//!   `kubectl rollout history/undo` have nothing to show;
//! - `persistentVolumeClaimRetentionPolicy.whenScaled: Delete` is not applied (claims of
//!   removed ordinals are kept); existing claims are not checked for being stale;
//! - `updateStrategy.rollingUpdate.maxUnavailable` (alpha `MaxUnavailableStatefulSet`,
//!   off in v1.33) is ignored: one pod at a time;
//! - no adoption of orphan pods matching the selector.

use std::time::Duration;

use tugboat_plugin_sdk::cluster;
use tugboat_plugin_sdk::controller::{Action, Controller, ControllerSpec, ObjectKey};
use tugboat_plugin_sdk::{Value, export_controller, host, json, objects};

use workload_common as util;

#[cfg(test)]
use workload_common::testkit;
#[cfg(test)]
mod tests;

const API_VERSION: &str = "apps/v1";
const KIND: &str = "StatefulSet";
const COMPONENT: &str = "statefulset-controller";
/// The label with the pod's name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label with the pod's revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The StatefulSet controller.
pub struct StatefulSetController;

export_controller!(StatefulSetController);

impl Controller for StatefulSetController {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        util::configure(config)?;
        Ok(ControllerSpec::new(API_VERSION, KIND).owns("v1", "Pod"))
    }

    fn reconcile(_key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        match object {
            None => Ok(Action::Done),
            Some(set) => sync(set),
        }
    }
}

fn event(set: &Value, type_: &str, reason: &str, message: &str) {
    util::record_event(COMPONENT, API_VERSION, KIND, set, type_, reason, message);
}

/// `getParentNameAndOrdinal`: `web-3` → (`web`, 3).
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i64)> {
    let (parent, ordinal) = name.rsplit_once('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ordinal.parse().ok()?))
}

fn is_created(pod: &Value) -> bool {
    !objects::str_at(pod, "/status/phase").is_empty()
}

fn is_terminating(pod: &Value) -> bool {
    objects::is_deleting(pod)
}

fn is_running_and_ready(pod: &Value) -> bool {
    objects::str_at(pod, "/status/phase") == "Running" && objects::pod_is_ready(pod)
}

fn revision_of(pod: &Value) -> String {
    objects::labels(pod)
        .remove(REVISION_LABEL)
        .unwrap_or_default()
}

/// What a call works with.
struct Ctx<'a> {
    set: &'a Value,
    name: String,
    namespace: String,
    min_ready_seconds: i64,
    now: u64,
    current_revision: String,
    update_revision: String,
    /// The pod template of the current revision.
    current_template: Value,
    monotonic: bool,
    /// Whether a pod was created, deleted or updated.
    changed: bool,
}

impl Ctx<'_> {
    fn is_available(&self, pod: &Value) -> bool {
        is_running_and_ready(pod)
            && objects::pod_is_available(pod, self.min_ready_seconds, self.now)
    }

    /// `isUnavailable`.
    fn is_unavailable(&self, pod: &Value) -> bool {
        !is_created(pod) || is_terminating(pod) || !self.is_available(pod)
    }

    fn claim_templates(&self) -> &[Value] {
        self.set["spec"]["volumeClaimTemplates"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn claim_name(&self, template: &Value, ordinal: i64) -> String {
        format!("{}-{}-{ordinal}", objects::name(template), self.name)
    }
}

fn sync(set: &Value) -> Result<Action, String> {
    let namespace = objects::namespace(set)
        .ok_or("the StatefulSet has no namespace")?
        .to_string();
    let name = objects::name(set).to_string();
    let template = &set["spec"]["template"];
    let collision_count = objects::i64_at(set, "/status/collisionCount").unwrap_or(0);
    let update_revision = format!(
        "{name}-{}",
        objects::pod_template_hash(template, Some(collision_count))
    );
    let current_revision = match objects::str_at(set, "/status/currentRevision") {
        "" => update_revision.clone(),
        r => r.to_string(),
    };
    let pods: Vec<Value> = util::owned("v1", "Pod", Some(&namespace), objects::uid(set))?
        .into_iter()
        .filter(|p| parent_and_ordinal(objects::name(p)).is_some_and(|(parent, _)| parent == name))
        .collect();
    let current_template = if current_revision == update_revision {
        template.clone()
    } else {
        template_from_pod(&pods, &current_revision).unwrap_or_else(|| template.clone())
    };
    let mut ctx = Ctx {
        set,
        name,
        namespace,
        min_ready_seconds: util::int_or(set, "/spec/minReadySeconds", 0),
        now: cluster::now_millis(),
        current_revision,
        update_revision,
        current_template,
        monotonic: objects::str_at(set, "/spec/podManagementPolicy") != "Parallel",
        changed: false,
    };

    let result = if objects::is_deleting(set) {
        Ok(())
    } else {
        update_pods(&mut ctx, &pods)
    };

    let pods = if ctx.changed {
        util::owned("v1", "Pod", Some(&ctx.namespace), objects::uid(set))?
            .into_iter()
            .filter(|p| {
                parent_and_ordinal(objects::name(p)).is_some_and(|(parent, _)| parent == ctx.name)
            })
            .collect()
    } else {
        pods
    };
    let requeue = update_status(&ctx, &pods, collision_count)?;
    result?;
    Ok(match requeue {
        Some(d) => Action::RequeueAfter(d),
        None => Action::Done,
    })
}

/// The template of a revision rebuilt from a pod of that revision (there are no
/// ControllerRevisions): its labels, annotations and spec without what is per pod.
fn template_from_pod(pods: &[Value], revision: &str) -> Option<Value> {
    let pod = pods.iter().find(|p| revision_of(p) == revision)?;
    let mut labels = pod
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(m) = labels.as_object_mut() {
        for k in [POD_NAME_LABEL, POD_INDEX_LABEL, REVISION_LABEL] {
            m.remove(k);
        }
    }
    let mut spec = pod.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(m) = spec.as_object_mut() {
        for k in ["nodeName", "hostname", "subdomain"] {
            m.remove(k);
        }
    }
    let mut metadata = json!({"labels": labels});
    if let Some(a) = pod.pointer("/metadata/annotations") {
        metadata["annotations"] = a.clone();
    }
    Some(json!({"metadata": metadata, "spec": spec}))
}

/// `newStatefulSetPod` + `setPodRevision`: the pod of an ordinal from a template.
fn new_pod(ctx: &Ctx, template: &Value, revision: &str, ordinal: i64) -> Value {
    let controller = util::owner_ref(API_VERSION, KIND, ctx.set);
    let mut pod = util::pod_from_template(template, &ctx.namespace, &controller);
    let name = format!("{}-{ordinal}", ctx.name);
    pod["metadata"]["name"] = json!(name);
    util::set_meta_entry(&mut pod, "labels", POD_NAME_LABEL, &name);
    util::set_meta_entry(&mut pod, "labels", POD_INDEX_LABEL, &ordinal.to_string());
    util::set_meta_entry(&mut pod, "labels", REVISION_LABEL, revision);
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    pod["spec"]["hostname"] = json!(name);
    match ctx.set["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        Some(service) => pod["spec"]["subdomain"] = json!(service),
        None => {
            if let Some(m) = pod["spec"].as_object_mut() {
                m.remove("subdomain");
            }
        }
    }
    // `updateStorage`: a volume per claim template, then the template's other volumes.
    let templates = ctx.claim_templates();
    let mut volumes: Vec<Value> = templates
        .iter()
        .map(|t| {
            json!({"name": objects::name(t), "persistentVolumeClaim": {"claimName": ctx.claim_name(t, ordinal)}})
        })
        .collect();
    if let Some(existing) = pod["spec"]["volumes"].as_array() {
        volumes.extend(
            existing
                .iter()
                .filter(|v| {
                    !templates
                        .iter()
                        .any(|t| objects::name(t) == v["name"].as_str().unwrap_or(""))
                })
                .cloned(),
        );
    }
    if !volumes.is_empty() {
        pod["spec"]["volumes"] = json!(volumes);
    }
    pod
}

/// `newVersionedStatefulSetPod`: below the partition, the current revision; else the
/// update revision.
fn new_versioned_pod(ctx: &Ctx, ordinal: i64) -> Value {
    let spec = &ctx.set["spec"];
    let rolling = spec["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let rolling_update = &spec["updateStrategy"]["rollingUpdate"];
    let use_current = if rolling_update.is_null() {
        rolling && ordinal < objects::i64_at(ctx.set, "/status/currentReplicas").unwrap_or(0)
    } else {
        ordinal < rolling_update["partition"].as_i64().unwrap_or(0)
    };
    if use_current {
        new_pod(ctx, &ctx.current_template, &ctx.current_revision, ordinal)
    } else {
        new_pod(ctx, &spec["template"], &ctx.update_revision, ordinal)
    }
}

/// `createPersistentVolumeClaims`: the claims of an ordinal that do not exist yet.
fn create_claims(ctx: &Ctx, pod_name: &str, ordinal: i64) -> Result<(), String> {
    let match_labels = ctx.set.pointer("/spec/selector/matchLabels").cloned();
    let delete_with_set = ctx
        .set
        .pointer("/spec/persistentVolumeClaimRetentionPolicy/whenDeleted")
        .and_then(Value::as_str)
        == Some("Delete");
    for t in ctx.claim_templates() {
        let claim_name = ctx.claim_name(t, ordinal);
        let mut labels = t
            .pointer("/metadata/labels")
            .cloned()
            .filter(Value::is_object);
        if let Some(ml) = match_labels.as_ref().and_then(Value::as_object) {
            let l = labels.get_or_insert_with(|| json!({}));
            for (k, v) in ml {
                l[k] = v.clone();
            }
        }
        let mut metadata = json!({"name": claim_name, "namespace": ctx.namespace});
        if let Some(l) = labels {
            metadata["labels"] = l;
        }
        if let Some(a) = t.pointer("/metadata/annotations").filter(|a| a.is_object()) {
            metadata["annotations"] = a.clone();
        }
        if delete_with_set {
            metadata["ownerReferences"] = json!([util::owner_ref(API_VERSION, KIND, ctx.set)]);
        }
        let claim = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": metadata,
            "spec": t.get("spec").cloned().unwrap_or_else(|| json!({})),
        });
        match host::create(&claim) {
            Ok(_) => event(
                ctx.set,
                "Normal",
                "SuccessfulCreate",
                &format!(
                    "create Claim {claim_name} Pod {pod_name} in StatefulSet {} success",
                    ctx.name
                ),
            ),
            Err(e) if util::already_exists(&e) => {}
            Err(e) => {
                event(
                    ctx.set,
                    "Warning",
                    "FailedCreate",
                    &format!(
                        "create Claim {claim_name} for Pod {pod_name} in StatefulSet {} failed error: {}",
                        ctx.name, e.message
                    ),
                );
                return Err(util::fail(format_args!("creating claim {claim_name}"), e));
            }
        }
    }
    Ok(())
}

fn create_pod(ctx: &mut Ctx, pod: &Value, ordinal: i64) -> Result<(), String> {
    let pod_name = objects::name(pod).to_string();
    create_claims(ctx, &pod_name, ordinal)?;
    ctx.changed = true;
    match host::create(pod) {
        Ok(_) => {
            event(
                ctx.set,
                "Normal",
                "SuccessfulCreate",
                &format!(
                    "create Pod {pod_name} in StatefulSet {} successful",
                    ctx.name
                ),
            );
            Ok(())
        }
        // Someone else's pod has the name: retried, without an event (as Kubernetes).
        Err(e) if util::already_exists(&e) => {
            Err(util::fail(format_args!("creating pod {pod_name}"), e))
        }
        Err(e) => {
            event(
                ctx.set,
                "Warning",
                "FailedCreate",
                &format!(
                    "create Pod {pod_name} in StatefulSet {} failed error: {}",
                    ctx.name, e.message
                ),
            );
            Err(util::fail(format_args!("creating pod {pod_name}"), e))
        }
    }
}

fn delete_pod(ctx: &mut Ctx, pod: &Value) -> Result<(), String> {
    let pod_name = objects::name(pod).to_string();
    ctx.changed = true;
    match host::delete("v1", "Pod", Some(&ctx.namespace), &pod_name) {
        Ok(()) => {
            event(
                ctx.set,
                "Normal",
                "SuccessfulDelete",
                &format!(
                    "delete Pod {pod_name} in StatefulSet {} successful",
                    ctx.name
                ),
            );
            Ok(())
        }
        Err(e) if util::not_found(&e) => Ok(()),
        Err(e) => {
            event(
                ctx.set,
                "Warning",
                "FailedDelete",
                &format!(
                    "delete Pod {pod_name} in StatefulSet {} failed error: {}",
                    ctx.name, e.message
                ),
            );
            Err(util::fail(format_args!("deleting pod {pod_name}"), e))
        }
    }
}

/// `identityMatches` and `storageMatches`.
fn identity_and_storage_match(ctx: &Ctx, pod: &Value, ordinal: i64) -> bool {
    let labels = objects::labels(pod);
    let name = objects::name(pod);
    let identity = labels.get(POD_NAME_LABEL).map(String::as_str) == Some(name)
        && labels.get(POD_INDEX_LABEL) == Some(&ordinal.to_string());
    let volumes = pod["spec"]["volumes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let storage = ctx.claim_templates().iter().all(|t| {
        volumes.iter().any(|v| {
            v["name"].as_str() == Some(objects::name(t))
                && v.pointer("/persistentVolumeClaim/claimName")
                    .and_then(Value::as_str)
                    == Some(ctx.claim_name(t, ordinal).as_str())
        })
    });
    identity && storage
}

/// One replica slot: a pod that exists, or the one to create.
enum Slot<'a> {
    Live(&'a Value),
    Missing(Value),
}

impl Slot<'_> {
    fn pod(&self) -> &Value {
        match self {
            Slot::Live(p) => p,
            Slot::Missing(p) => p,
        }
    }
}

/// `updateStatefulSet`: creates, deletes and updates pods toward the spec.
fn update_pods(ctx: &mut Ctx, pods: &[Value]) -> Result<(), String> {
    let replica_count = util::int_or(ctx.set, "/spec/replicas", 1).max(0);
    let start = util::int_or(ctx.set, "/spec/ordinals/start", 0).max(0);
    let end = start + replica_count; // exclusive

    let mut live: Vec<Option<&Value>> = vec![None; replica_count as usize];
    let mut condemned: Vec<(i64, &Value)> = Vec::new();
    for p in pods {
        let Some((_, ordinal)) = parent_and_ordinal(objects::name(p)) else {
            continue;
        };
        if (start..end).contains(&ordinal) {
            live[(ordinal - start) as usize] = Some(p);
        } else {
            condemned.push((ordinal, p));
        }
    }
    let replicas: Vec<Slot> = live
        .into_iter()
        .enumerate()
        .map(|(i, p)| match p {
            Some(p) => Slot::Live(p),
            None => Slot::Missing(new_versioned_pod(ctx, start + i as i64)),
        })
        .collect();
    condemned.sort_by_key(|(ordinal, _)| std::cmp::Reverse(*ordinal));

    // The first unhealthy pod, replicas in order, then condemned from the lowest ordinal.
    let first_unhealthy: Option<String> = replicas
        .iter()
        .map(Slot::pod)
        .chain(condemned.iter().rev().map(|(_, p)| *p))
        .find(|p| ctx.is_unavailable(p))
        .map(|p| objects::name(p).to_string());

    let monotonic = ctx.monotonic;
    let mut first_error: Option<String> = None;

    // The replicas, in ordinal order.
    for (i, slot) in replicas.iter().enumerate() {
        let ordinal = start + i as i64;
        let pod = slot.pod();
        match slot {
            Slot::Live(p) if objects::pod_is_terminal(p) => {
                // A failed (or succeeded) pod is recreated under the same name.
                if !is_terminating(p)
                    && let Err(e) = delete_pod(ctx, p)
                {
                    if monotonic {
                        return Err(e);
                    }
                    first_error.get_or_insert(e);
                }
                if monotonic {
                    return Ok(());
                }
                continue;
            }
            Slot::Missing(p) => {
                if let Err(e) = create_pod(ctx, p, ordinal) {
                    if monotonic {
                        return Err(e);
                    }
                    first_error.get_or_insert(e);
                    // Slow start: no more creations after a failure.
                    break;
                }
                if monotonic {
                    return Ok(());
                }
                continue;
            }
            Slot::Live(_) => {}
        }
        if monotonic
            && (is_terminating(pod) || !is_running_and_ready(pod) || !ctx.is_available(pod))
        {
            return Ok(());
        }
        if !identity_and_storage_match(ctx, pod, ordinal) {
            if let Err(e) = create_claims(ctx, objects::name(pod), ordinal) {
                if monotonic {
                    return Err(e);
                }
                first_error.get_or_insert(e);
                continue;
            }
            let mut fixed = pod.clone();
            util::set_meta_entry(&mut fixed, "labels", POD_NAME_LABEL, objects::name(pod));
            util::set_meta_entry(&mut fixed, "labels", POD_INDEX_LABEL, &ordinal.to_string());
            ctx.changed = true;
            if let Err(e) = host::update(&fixed) {
                let e = util::fail(format_args!("updating pod {}", objects::name(pod)), e);
                if monotonic {
                    return Err(e);
                }
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    // Scale down: the highest ordinal first.
    for (_, p) in &condemned {
        if is_terminating(p) {
            if monotonic {
                return Ok(());
            }
            continue;
        }
        let is_first_unhealthy = first_unhealthy.as_deref() == Some(objects::name(p));
        if monotonic && !is_first_unhealthy && (!is_running_and_ready(p) || !ctx.is_available(p)) {
            return Ok(());
        }
        let deleted = delete_pod(ctx, p);
        if monotonic {
            return deleted;
        }
        if let Err(e) = deleted {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    if ctx
        .set
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("OnDelete")
    {
        return Ok(());
    }
    // Rolling update: from the highest ordinal down to the partition, one at a time.
    let partition =
        objects::i64_at(ctx.set, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    for target in (0..replicas.len()).rev() {
        if (target as i64) < partition {
            break;
        }
        let pod = replicas[target].pod();
        if revision_of(pod) != ctx.update_revision && !is_terminating(pod) {
            return delete_pod(ctx, pod);
        }
        if ctx.is_unavailable(pod) {
            return Ok(());
        }
    }
    Ok(())
}

/// Computes and writes the status; returns when to call again for pods still becoming
/// available.
fn update_status(
    ctx: &Ctx,
    pods: &[Value],
    collision_count: i64,
) -> Result<Option<Duration>, String> {
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for p in pods {
        if is_created(p) {
            replicas += 1;
        }
        if is_running_and_ready(p) {
            ready += 1;
            if ctx.is_available(p) {
                available += 1;
            }
        }
        if is_created(p) && !is_terminating(p) {
            let revision = revision_of(p);
            if revision == ctx.current_revision {
                current += 1;
            }
            if revision == ctx.update_revision {
                updated += 1;
            }
        }
    }
    let mut current_revision = ctx.current_revision.clone();
    // `completeRollingUpdate`.
    let rolling = ctx
        .set
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        != Some("OnDelete");
    if rolling && updated == replicas && ready == replicas {
        current = updated;
        current_revision = ctx.update_revision.clone();
    }

    let old = &ctx.set["status"];
    let mut status = if old.is_object() {
        old.clone()
    } else {
        json!({})
    };
    status["observedGeneration"] = json!(objects::generation(ctx.set));
    status["replicas"] = json!(replicas);
    for (field, n) in [
        ("readyReplicas", ready),
        ("currentReplicas", current),
        ("updatedReplicas", updated),
    ] {
        if n > 0 {
            status[field] = json!(n);
        } else if let Some(m) = status.as_object_mut() {
            m.remove(field);
        }
    }
    status["availableReplicas"] = json!(available);
    status["currentRevision"] = json!(current_revision);
    status["updateRevision"] = json!(ctx.update_revision);
    status["collisionCount"] = json!(collision_count);
    if status != *old {
        let mut set = ctx.set.clone();
        set["apiVersion"] = json!(API_VERSION);
        set["kind"] = json!(KIND);
        set["status"] = status;
        cluster::update_status(&set)
            .map_err(|e| util::fail("updating the StatefulSet status", e))?;
    }
    Ok((ctx.min_ready_seconds > 0 && ready != available)
        .then(|| Duration::from_secs(ctx.min_ready_seconds as u64)))
}
