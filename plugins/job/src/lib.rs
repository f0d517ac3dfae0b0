//! The Job controller (`batch/v1` Job, owning Pods), and the TTL-after-finished controller
//! for Jobs, as kube-controller-manager runs them (`pkg/controller/job`,
//! `pkg/controller/ttlafterfinished`, Kubernetes v1.33 with its default feature gates).
//!
//! What it does, as Kubernetes does:
//! - creates pods from `spec.template` named by the API server from `generateName: <job>-`
//!   (Indexed: `<job>-<index>-`), controlled by the Job; keeps `active ≤ parallelism` and
//!   `active ≤ completions − succeeded`, deleting the surplus in `controller.ActivePods`
//!   order; at most 50 creations per call (the pods' events bring the Job back);
//! - counts pods into `status`: `active`, `ready`, `terminating`, `succeeded`, `failed`,
//!   `startTime` (not while suspended; reset on resume), `completionTime`;
//! - `completions` unset: complete when a pod succeeded and none is active; set: complete
//!   at `completions` successes; first the interim condition `SuccessCriteriaMet`
//!   (`CompletionsReached`), then `Complete` once no pod is terminating;
//! - failure: more failed pods than `backoffLimit` (with `restartPolicy: OnFailure`, the
//!   containers' restart count reaching it) → `BackoffLimitExceeded`; running longer than
//!   `activeDeadlineSeconds` → `DeadlineExceeded`: active pods are deleted (and counted as
//!   failed), `FailureTarget` is set, then `Failed` once no pod is terminating;
//! - a failed pod delays its replacement by the pod-failure backoff (10 s doubling up to
//!   6 min, per failure since the last success, from the failure time);
//! - `podReplacementPolicy: Failed` (or a `podFailurePolicy`) waits for terminating pods
//!   to end before replacing them; `TerminatingOrFailed` replaces them at once;
//! - `suspend`: active pods are deleted, condition `Suspended` (`JobSuspended`), and
//!   `JobResumed` on resume;
//! - `completionMode: Indexed`: each index `0..completions` gets a pod with the
//!   `batch.kubernetes.io/job-completion-index` annotation and label, the
//!   `JOB_COMPLETION_INDEX` environment variable, hostname `<job>-<index>`; duplicate and
//!   out-of-range indexes are removed; `status.completedIndexes` (`"0-2,5"`) records the
//!   succeeded indexes;
//! - `spec.managedBy` other than `kubernetes.io/job-controller`: the Job is left alone;
//! - TTL after finished: a finished Job with `ttlSecondsAfterFinished` is deleted (with
//!   `Background` propagation — Kubernetes uses `Foreground`, which needs the garbage
//!   collector's foreground deletion — and a uid precondition) once the TTL has passed since
//!   its `Complete`/`Failed` condition's transition; until then the key is requeued;
//! - events like Kubernetes' (`SuccessfulCreate`, `SuccessfulDelete`, `Completed`,
//!   `BackoffLimitExceeded`, `DeadlineExceeded`, `Suspended`, `Resumed`).
//!
//! What it does not do:
//! - the pod tracking finalizer `batch.kubernetes.io/job-tracking` and
//!   `status.uncountedTerminatedPods`: pods are counted while they exist. `succeeded` and
//!   `failed` never decrease, so a pod removed after it was counted stays counted, but a
//!   terminated pod removed before the controller saw it is missed; a running pod deleted
//!   by a user is replaced but counts as failed only if it reaches phase `Failed`;
//! - `podFailurePolicy` rules, `backoffLimitPerIndex`/`maxFailedIndexes`,
//!   `successPolicy` (the fields are accepted; their rules are not applied);
//! - adoption of orphan pods matching the selector (only pods the Job controls count).

use std::collections::BTreeSet;
use std::time::Duration;

use tugboat_plugin_sdk::cluster::{self, DeleteOptions, Propagation};
use tugboat_plugin_sdk::controller::{Action, Controller, ControllerSpec, ObjectKey};
use tugboat_plugin_sdk::{Value, export_controller, host, json, objects};

pub mod indexes;
use workload_common as util;

#[cfg(test)]
use workload_common::testkit;
#[cfg(test)]
mod tests;

use indexes::Indexes;

const API_VERSION: &str = "batch/v1";
const KIND: &str = "Job";
const COMPONENT: &str = "job-controller";
/// `batch.JobControllerName`: the value of `spec.managedBy` this controller serves.
pub const JOB_CONTROLLER_NAME: &str = "kubernetes.io/job-controller";
/// The annotation (and label) with a pod's completion index.
pub const COMPLETION_INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable with the completion index.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Pod creations per call (Kubernetes: 500 per sync; smaller here to stay in the call's
/// deadline — the created pods' events bring the Job back).
pub const MAX_CREATE_PER_SYNC: i64 = 50;
/// `DefaultJobPodFailureBackOff`.
pub const POD_FAILURE_BACKOFF_MS: u64 = 10_000;
/// `MaxJobPodFailureBackOff`.
pub const MAX_POD_FAILURE_BACKOFF_MS: u64 = 360_000;

/// The Job controller.
pub struct JobController;

export_controller!(JobController);

impl Controller for JobController {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        util::configure(config)?;
        Ok(ControllerSpec::new(API_VERSION, KIND).owns("v1", "Pod"))
    }

    fn reconcile(_key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        match object {
            // A deleted Job's pods are the garbage collector's.
            None => Ok(Action::Done),
            Some(job) => sync_job(job),
        }
    }
}

/// A condition the Job is heading for.
#[derive(Debug, Clone, PartialEq)]
struct Finish {
    success: bool,
    reason: String,
    message: String,
}

/// Whether the Job has a `Complete` or `Failed` condition that is `True`.
pub fn is_finished(job: &Value) -> bool {
    objects::condition_true(job, "Complete") || objects::condition_true(job, "Failed")
}

fn event(job: &Value, type_: &str, reason: &str, message: &str) {
    util::record_event(COMPONENT, API_VERSION, KIND, job, type_, reason, message);
}

fn sync_job(job: &Value) -> Result<Action, String> {
    let now = cluster::now_millis();
    if let Some(managed_by) = job.pointer("/spec/managedBy").and_then(Value::as_str)
        && managed_by != JOB_CONTROLLER_NAME
    {
        return Ok(Action::Done);
    }
    if is_finished(job) {
        return ttl_after_finished(job, now);
    }
    let spec = &job["spec"];
    let indexed = match spec["completionMode"].as_str().unwrap_or("NonIndexed") {
        "NonIndexed" => false,
        "Indexed" => true,
        _ => {
            event(
                job,
                "Warning",
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown",
            );
            return Ok(Action::Done);
        }
    };
    let namespace = objects::namespace(job)
        .ok_or("the Job has no namespace")?
        .to_string();
    let completions = spec["completions"].as_i64();
    if indexed && completions.is_none() {
        return Err("an Indexed Job needs spec.completions".into());
    }
    let parallelism = spec["parallelism"].as_i64().unwrap_or(1).max(0);
    let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
    let suspended = spec["suspend"].as_bool() == Some(true);
    let only_replace_failed = spec["podReplacementPolicy"].as_str() == Some("Failed")
        || !spec["podFailurePolicy"].is_null();

    let pods = util::owned("v1", "Pod", Some(&namespace), objects::uid(job))?;
    let active_pods: Vec<&Value> = pods.iter().filter(|p| objects::pod_is_active(p)).collect();
    let mut ctx = Ctx {
        job,
        namespace,
        completions,
        indexed,
        active: active_pods.len() as i64,
        ready: active_pods
            .iter()
            .filter(|p| objects::pod_is_ready(p))
            .count() as i64,
        terminating: pods
            .iter()
            .filter(|p| objects::is_deleting(p) && !objects::pod_is_terminal(p))
            .count() as i64,
        succeeded: 0,
        failed: 0,
        succeeded_indexes: Indexes::default(),
        requeue: None,
    };

    let old = &job["status"];
    let phase_count = |phase: &str| {
        pods.iter()
            .filter(|p| objects::str_at(p, "/status/phase") == phase)
            .count() as i64
    };
    if let Some(c) = completions.filter(|_| indexed) {
        let mut done = Indexes::parse(old["completedIndexes"].as_str().unwrap_or(""), c);
        for p in &pods {
            if objects::str_at(p, "/status/phase") == "Succeeded"
                && let Some(ix) = completion_index(p).filter(|ix| *ix < c)
            {
                done.insert(ix);
            }
        }
        ctx.succeeded = done.len() as i64;
        ctx.succeeded_indexes = done;
    } else {
        ctx.succeeded = old["succeeded"]
            .as_i64()
            .unwrap_or(0)
            .max(phase_count("Succeeded"));
    }
    ctx.failed = old["failed"]
        .as_i64()
        .unwrap_or(0)
        .max(phase_count("Failed"));

    let mut status = if old.is_object() {
        old.clone()
    } else {
        json!({})
    };
    if status["startTime"].is_null() && !suspended {
        status["startTime"] = json!(cluster::rfc3339(now));
    }
    let start = status["startTime"]
        .as_str()
        .and_then(cluster::parse_rfc3339);

    // The condition the Job is heading for, if any.
    let mut finish = if let Some(c) = true_condition(job, "SuccessCriteriaMet") {
        Some(Finish {
            success: true,
            reason: objects::str_at(c, "/reason").into(),
            message: objects::str_at(c, "/message").into(),
        })
    } else if let Some(c) = true_condition(job, "FailureTarget") {
        Some(Finish {
            success: false,
            reason: objects::str_at(c, "/reason").into(),
            message: objects::str_at(c, "/message").into(),
        })
    } else if ctx.failed > backoff_limit || past_backoff_limit_on_failure(job, &pods, backoff_limit)
    {
        Some(Finish {
            success: false,
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
        })
    } else if let Some(deadline) = spec["activeDeadlineSeconds"]
        .as_i64()
        .filter(|_| !suspended)
        && let Some(start) = start
    {
        let end = start.saturating_add(deadline.max(0) as u64 * 1000);
        if now >= end {
            Some(Finish {
                success: false,
                reason: "DeadlineExceeded".into(),
                message: "Job was active longer than specified deadline".into(),
            })
        } else {
            ctx.requeue_in(end - now);
            None
        }
    } else {
        None
    };

    let mut manage_err = None;
    if let Some(f) = finish.clone() {
        // The Job is done: no pod should run any longer.
        let (deleted, deleted_ready, err) = delete_pods(&ctx, &active_pods);
        if deleted as usize != active_pods.len() {
            // Not every pod could be deleted: declare nothing yet.
            finish = None;
        }
        ctx.active -= deleted;
        ctx.terminating += deleted;
        ctx.ready -= deleted_ready;
        if !f.success {
            // When the Job fails, its remaining pods are failures.
            ctx.failed += deleted;
        }
        manage_err = err;
    } else {
        let mut manage_called = false;
        if !objects::is_deleting(job) {
            manage_err = manage_job(
                &mut ctx,
                &pods,
                &active_pods,
                suspended,
                parallelism,
                only_replace_failed,
                now,
            );
            manage_called = true;
        }
        let complete = match completions {
            None => ctx.succeeded > 0 && ctx.active == 0,
            Some(c) => ctx.succeeded >= c && ctx.active == 0,
        };
        if complete {
            finish = Some(Finish {
                success: true,
                reason: "CompletionsReached".into(),
                message: "Reached expected number of succeeded pods".into(),
            });
        } else if manage_called {
            if suspended {
                if ensure_condition(
                    &mut status,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                ) {
                    event(job, "Normal", "Suspended", "Job suspended");
                }
            } else if ensure_condition(
                &mut status,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            ) {
                event(job, "Normal", "Resumed", "Job resumed");
                // activeDeadlineSeconds counts from the resume.
                status["startTime"] = json!(cluster::rfc3339(now));
            }
        }
    }

    // Counters.
    set_count(&mut status, "active", ctx.active);
    set_count(&mut status, "succeeded", ctx.succeeded);
    set_count(&mut status, "failed", ctx.failed);
    status["ready"] = json!(ctx.ready.max(0));
    status["terminating"] = json!(ctx.terminating.max(0));
    if indexed {
        let text = ctx.succeeded_indexes.to_string();
        if text.is_empty() {
            if let Some(m) = status.as_object_mut() {
                m.remove("completedIndexes");
            }
        } else {
            status["completedIndexes"] = json!(text);
        }
    }

    // The interim condition first, the terminal one when no pod is terminating any more.
    let mut finished_now = None;
    if let Some(f) = &finish {
        let interim = if f.success {
            "SuccessCriteriaMet"
        } else {
            "FailureTarget"
        };
        ensure_condition(&mut status, interim, "True", &f.reason, &f.message, now);
        if ctx.terminating <= 0 {
            let terminal = if f.success { "Complete" } else { "Failed" };
            ensure_condition(&mut status, terminal, "True", &f.reason, &f.message, now);
            if f.success {
                status["completionTime"] = json!(cluster::rfc3339(now));
            }
            finished_now = Some(f.clone());
        }
    }

    if status != *old {
        let mut updated = job.clone();
        updated["apiVersion"] = json!(API_VERSION);
        updated["kind"] = json!(KIND);
        updated["status"] = status;
        let stored = cluster::update_status(&updated)
            .map_err(|e| util::fail("updating the Job status", e))?;
        if let Some(f) = &finished_now {
            if f.success {
                if let Some(c) = completions
                    && ctx.succeeded > c
                {
                    event(
                        &stored,
                        "Warning",
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached",
                    );
                }
                event(&stored, "Normal", "Completed", "Job completed");
            } else {
                event(&stored, "Warning", &f.reason, &f.message);
            }
            if let Some(e) = manage_err {
                return Err(e);
            }
            return ttl_after_finished(&stored, now);
        }
    }
    if let Some(e) = manage_err {
        return Err(e);
    }
    Ok(match ctx.requeue {
        Some(ms) => Action::RequeueAfter(Duration::from_millis(ms)),
        None => Action::Done,
    })
}

/// What one sync works with.
struct Ctx<'a> {
    job: &'a Value,
    namespace: String,
    completions: Option<i64>,
    indexed: bool,
    active: i64,
    ready: i64,
    terminating: i64,
    succeeded: i64,
    failed: i64,
    succeeded_indexes: Indexes,
    /// Call again after this many milliseconds (the soonest of the reasons).
    requeue: Option<u64>,
}

impl Ctx<'_> {
    fn requeue_in(&mut self, ms: u64) {
        self.requeue = Some(self.requeue.map_or(ms, |r| r.min(ms)));
    }
}

/// `manageJob`: deletes surplus pods or creates missing ones (never both in one call).
/// Returns the first error, after doing what could be done.
fn manage_job(
    ctx: &mut Ctx,
    pods: &[Value],
    active_pods: &[&Value],
    suspended: bool,
    parallelism: i64,
    only_replace_failed: bool,
    now: u64,
) -> Option<String> {
    if suspended {
        let mut doomed: Vec<&Value> = active_pods.to_vec();
        doomed.sort_by(|a, b| util::removal_order(a, b));
        let (removed, removed_ready, err) = delete_pods(ctx, &doomed);
        ctx.active -= removed;
        ctx.terminating += removed;
        ctx.ready -= removed_ready;
        return err;
    }
    let active = ctx.active;
    let want_active = match ctx.completions {
        // Without completions, once a pod succeeded the others are left to finish.
        None if ctx.succeeded > 0 => active,
        None => parallelism,
        Some(c) => (c - ctx.succeeded).min(parallelism).max(0),
    };
    let rm_at_least = (active - want_active).max(0);
    let doomed = pods_for_removal(ctx, active_pods, rm_at_least as usize);
    if !doomed.is_empty() {
        let (removed, removed_ready, err) = delete_pods(ctx, &doomed);
        ctx.active -= removed;
        ctx.terminating += removed;
        ctx.ready -= removed_ready;
        return err;
    }
    let terminating = if only_replace_failed {
        ctx.terminating
    } else {
        0
    };
    let mut diff = want_active - terminating - active;
    if diff <= 0 {
        return None;
    }
    let remaining = backoff_remaining(pods, now);
    if remaining > 0 {
        ctx.requeue_in(remaining);
        return None;
    }
    diff = diff.min(MAX_CREATE_PER_SYNC);
    let mut template = ctx.job["spec"]["template"].clone();
    let mut to_create: Vec<Option<i64>> = vec![None; diff as usize];
    if ctx.indexed {
        add_completion_index_env(&mut template);
        let completions = ctx.completions.unwrap_or(0);
        let busy: BTreeSet<i64> = active_pods
            .iter()
            .filter_map(|p| completion_index(p))
            .collect();
        to_create = (0..completions)
            .filter(|ix| !ctx.succeeded_indexes.contains(*ix) && !busy.contains(ix))
            .take(diff as usize)
            .map(Some)
            .collect();
    }
    let controller = util::owner_ref(API_VERSION, KIND, ctx.job);
    let name = objects::name(ctx.job);
    for index in to_create {
        let mut pod = util::pod_from_template(&template, &ctx.namespace, &controller);
        match index {
            Some(ix) => {
                util::set_meta_entry(
                    &mut pod,
                    "annotations",
                    COMPLETION_INDEX_KEY,
                    &ix.to_string(),
                );
                util::set_meta_entry(&mut pod, "labels", COMPLETION_INDEX_KEY, &ix.to_string());
                pod["spec"]["hostname"] = json!(format!("{name}-{ix}"));
                pod["metadata"]["generateName"] = json!(format!("{name}-{ix}-"));
            }
            None => pod["metadata"]["generateName"] = json!(format!("{name}-")),
        }
        match host::create(&pod) {
            Ok(created) => {
                ctx.active += 1;
                event(
                    ctx.job,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", objects::name(&created)),
                );
            }
            Err(e) => {
                event(
                    ctx.job,
                    "Warning",
                    "FailedCreate",
                    &format!("Error creating: {}", e.message),
                );
                // Slow start: stop at the first failure.
                return Some(util::fail("creating a pod", e));
            }
        }
    }
    None
}

/// The pods to delete: for Indexed Jobs, those with a duplicate, missing or out-of-range
/// index first; then the surplus in `controller.ActivePods` order.
fn pods_for_removal<'a>(
    ctx: &Ctx,
    active_pods: &[&'a Value],
    rm_at_least: usize,
) -> Vec<&'a Value> {
    let mut rm: Vec<&Value> = Vec::new();
    let mut left: Vec<&Value> = Vec::new();
    if ctx.indexed {
        let completions = ctx.completions.unwrap_or(0);
        let mut by_index: std::collections::BTreeMap<i64, Vec<&Value>> = Default::default();
        for p in active_pods {
            match completion_index(p).filter(|ix| *ix < completions) {
                Some(ix) => by_index.entry(ix).or_default().push(p),
                None => rm.push(p),
            }
        }
        for (_, mut group) in by_index {
            group.sort_by(|a, b| util::removal_order(a, b));
            if let Some(keep) = group.pop() {
                rm.extend(group);
                left.push(keep);
            }
        }
    } else {
        left = active_pods.to_vec();
    }
    if rm.len() < rm_at_least {
        left.sort_by(|a, b| util::removal_order(a, b));
        let more = (rm_at_least - rm.len()).min(left.len());
        rm.extend(left.into_iter().take(more));
    }
    rm.truncate(MAX_CREATE_PER_SYNC as usize);
    rm
}

/// Deletes pods (a 404 counts as deleted). Returns (deleted, deleted that were ready,
/// the first error).
fn delete_pods(ctx: &Ctx, pods: &[&Value]) -> (i64, i64, Option<String>) {
    let (mut deleted, mut deleted_ready, mut err) = (0, 0, None);
    for p in pods {
        match host::delete("v1", "Pod", Some(&ctx.namespace), objects::name(p)) {
            Ok(()) => {
                event(
                    ctx.job,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {}", objects::name(p)),
                );
            }
            Err(e) if util::not_found(&e) => {}
            Err(e) => {
                event(
                    ctx.job,
                    "Warning",
                    "FailedDelete",
                    &format!("Error deleting: {}", e.message),
                );
                err.get_or_insert(util::fail(
                    format_args!("deleting pod {}", objects::name(p)),
                    e,
                ));
                continue;
            }
        }
        deleted += 1;
        if objects::pod_is_ready(p) {
            deleted_ready += 1;
        }
    }
    (deleted, deleted_ready, err)
}

/// `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure`, whether the restarts of
/// the running and pending pods' containers reached the backoff limit.
fn past_backoff_limit_on_failure(job: &Value, pods: &[Value], backoff_limit: i64) -> bool {
    if objects::str_at(job, "/spec/template/spec/restartPolicy") != "OnFailure" {
        return false;
    }
    let restarts: i64 = pods
        .iter()
        .filter(|p| matches!(objects::str_at(p, "/status/phase"), "Running" | "Pending"))
        .flat_map(|p| {
            ["initContainerStatuses", "containerStatuses"]
                .into_iter()
                .flat_map(move |f| p["status"][f].as_array().into_iter().flatten())
        })
        .filter_map(|c| c["restartCount"].as_i64())
        .sum();
    if backoff_limit == 0 {
        restarts > 0
    } else {
        restarts >= backoff_limit
    }
}

/// When a pod terminated: the latest `finishedAt` of its containers, else the latest
/// transition of its conditions.
fn finish_time(pod: &Value) -> Option<u64> {
    let containers = ["initContainerStatuses", "containerStatuses"]
        .into_iter()
        .flat_map(|f| pod["status"][f].as_array().into_iter().flatten())
        .filter_map(|c| {
            c.pointer("/state/terminated/finishedAt")
                .and_then(Value::as_str)
        })
        .filter_map(cluster::parse_rfc3339)
        .max();
    containers.or_else(|| {
        pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["lastTransitionTime"].as_str())
            .filter_map(cluster::parse_rfc3339)
            .max()
    })
}

/// The pod-failure backoff still to wait before creating pods: 10 s doubling per failure
/// since the last success (at most 6 min), counted from the last failure.
fn backoff_remaining(pods: &[Value], now: u64) -> u64 {
    let last_success = pods
        .iter()
        .filter(|p| objects::str_at(p, "/status/phase") == "Succeeded")
        .filter_map(finish_time)
        .max();
    let failures: Vec<Option<u64>> = pods
        .iter()
        .filter(|p| objects::str_at(p, "/status/phase") == "Failed")
        .map(finish_time)
        .filter(|t| match (t, last_success) {
            (Some(t), Some(s)) => *t > s,
            _ => true,
        })
        .collect();
    let Some(last_failure) = failures.iter().flatten().max().copied() else {
        return 0;
    };
    let n = failures.len() as u32;
    let delay = POD_FAILURE_BACKOFF_MS
        .saturating_mul(1u64 << (n - 1).min(20))
        .min(MAX_POD_FAILURE_BACKOFF_MS);
    (last_failure + delay).saturating_sub(now)
}

/// `addCompletionIndexEnvVariables`: every container gets `JOB_COMPLETION_INDEX` from the
/// pod's annotation, unless it sets it itself.
fn add_completion_index_env(template: &mut Value) {
    for list in ["initContainers", "containers"] {
        let Some(containers) = template["spec"][list].as_array_mut() else {
            continue;
        };
        for c in containers {
            let has = c["env"]
                .as_array()
                .is_some_and(|env| env.iter().any(|e| e["name"] == COMPLETION_INDEX_ENV));
            if has {
                continue;
            }
            if !c["env"].is_array() {
                c["env"] = json!([]);
            }
            if let Some(env) = c["env"].as_array_mut() {
                env.push(json!({
                    "name": COMPLETION_INDEX_ENV,
                    "valueFrom": {"fieldRef": {
                        "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX_KEY}']"),
                    }},
                }));
            }
        }
    }
}

/// A pod's completion index (annotation, else label), if valid.
pub fn completion_index(pod: &Value) -> Option<i64> {
    let text = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(COMPLETION_INDEX_KEY))
        .or_else(|| {
            pod.pointer("/metadata/labels")
                .and_then(|l| l.get(COMPLETION_INDEX_KEY))
        })
        .and_then(Value::as_str)?;
    text.parse::<i64>().ok().filter(|ix| *ix >= 0)
}

fn true_condition<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    objects::condition(job, kind).filter(|c| c["status"] == "True")
}

/// `ensureJobConditionStatus`: sets a condition when its status, reason or message
/// changes (never adds a `False` one). Returns whether it changed.
fn ensure_condition(
    status: &mut Value,
    kind: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: u64,
) -> bool {
    let stamp = cluster::rfc3339(now);
    let cond = json!({
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    });
    if !status["conditions"].is_array() {
        if value == "False" {
            return false;
        }
        status["conditions"] = json!([]);
    }
    let Some(conds) = status["conditions"].as_array_mut() else {
        return false;
    };
    if let Some(existing) = conds.iter_mut().find(|c| c["type"] == kind) {
        if existing["status"] == value
            && existing["reason"] == reason
            && existing["message"] == message
        {
            return false;
        }
        *existing = cond;
        return true;
    }
    if value == "False" {
        return false;
    }
    conds.push(cond);
    true
}

/// Sets an `omitempty` counter: absent when 0.
fn set_count(status: &mut Value, field: &str, n: i64) {
    if n > 0 {
        status[field] = json!(n);
    } else if let Some(m) = status.as_object_mut() {
        m.remove(field);
    }
}

/// The TTL-after-finished controller: deletes a finished Job once
/// `ttlSecondsAfterFinished` has passed since it finished; requeues until then.
fn ttl_after_finished(job: &Value, now: u64) -> Result<Action, String> {
    if objects::is_deleting(job) {
        return Ok(Action::Done);
    }
    let Some(ttl) = job
        .pointer("/spec/ttlSecondsAfterFinished")
        .and_then(Value::as_i64)
    else {
        return Ok(Action::Done);
    };
    let finished_at = ["Complete", "Failed"]
        .into_iter()
        .filter_map(|k| true_condition(job, k))
        .find_map(|c| {
            c["lastTransitionTime"]
                .as_str()
                .and_then(cluster::parse_rfc3339)
        })
        .ok_or_else(|| {
            format!(
                "unable to find the time when the Job {}/{} finished",
                objects::namespace(job).unwrap_or(""),
                objects::name(job)
            )
        })?;
    let expire = finished_at.saturating_add(ttl.max(0) as u64 * 1000);
    if now < expire {
        return Ok(Action::RequeueAfter(Duration::from_millis(expire - now)));
    }
    let options = DeleteOptions {
        propagation: Some(Propagation::Background),
        uid: Some(objects::uid(job).to_string()),
        ..Default::default()
    };
    match cluster::delete_with(
        API_VERSION,
        KIND,
        objects::namespace(job),
        objects::name(job),
        &options,
    ) {
        Ok(()) => Ok(Action::Done),
        Err(e) if util::not_found(&e) => Ok(Action::Done),
        Err(e) => Err(util::fail("deleting the expired Job", e)),
    }
}
