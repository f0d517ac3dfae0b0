//! The namespace controller: finishing a namespace's deletion, as a controller plugin
//! (kube-controller-manager's `pkg/controller/namespace`).
//!
//! Deleting a namespace makes the API server set its `deletionTimestamp` and
//! `status.phase: Terminating` and keep it while `spec.finalizers` holds `kubernetes`.
//! For such a namespace this controller does what Kubernetes' `namespacedResourcesDeleter`
//! does:
//!
//! 1. for every namespaced resource type the server serves (`cluster.api-resources`:
//!    built-in kinds and custom resources alike; subresources are not listed), list the
//!    objects in the namespace and delete each one with `propagationPolicy: Background`
//!    (objects already being deleted are left to finish);
//! 2. list again: what had no finalizers is gone; what remains (objects with finalizers,
//!    pods terminating gracefully) is waited for — the namespace is looked at again
//!    every second (`RequeueAfter`);
//! 3. once nothing remains, remove `kubernetes` from `spec.finalizers` through the
//!    `finalize` subresource (a merge patch guarded by the resourceVersion); the API
//!    server then deletes the namespace, and `kubectl delete namespace` returns.
//!
//! Differences from Kubernetes:
//!
//! - Kubernetes uses `deletecollection` per resource type where it can; the host API has
//!   no collection delete, so objects are deleted one by one. A namespace with many
//!   objects is emptied in slices of about [`WORK_BUDGET_MS`] per call.
//! - Types whose list or delete the server refuses with 404 or 405 are skipped, as
//!   Kubernetes skips types without those verbs.
//! - The namespace's status conditions (`NamespaceDeletionDiscoveryFailure`,
//!   `NamespaceDeletionContentFailure`, `NamespaceContentRemaining`,
//!   `NamespaceFinalizersRemaining`, ...) are not written, and the phase is left to the
//!   API server (which sets `Terminating` when the deletion starts). What remains is
//!   logged instead.
//! - Kubernetes waits `estimate/2 + 1` seconds (from the pods' grace periods) before
//!   looking again; this controller looks again every second.
//!
//! Config (optional): `gracePeriodSeconds` — passed on every delete (unset: each
//! object's own grace applies, as in Kubernetes; `0` removes pods at once, for clusters
//! without a node agent to finish graceful deletions). When set, pods already
//! terminating are deleted again with it.

use std::cell::RefCell;
use std::time::Duration;

use tugboat_plugin_sdk::cluster::{self, DeleteOptions, PatchType, Propagation};
use tugboat_plugin_sdk::prelude::*;

/// The finalizer this controller owns in a namespace's `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";
/// How long one call keeps deleting before it hands back and asks to be called again.
pub const WORK_BUDGET_MS: u64 = 1_500;
/// How often a namespace whose content is still going is looked at again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The controller.
pub struct NamespaceController;

/// The parsed `config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub grace_period_seconds: Option<i64>,
}

impl Config {
    /// Parses the manifest's config (`null` gives the defaults).
    pub fn parse(config: &Value) -> Result<Config, String> {
        let mut out = Config::default();
        if config.is_null() {
            return Ok(out);
        }
        let Some(map) = config.as_object() else {
            return Err("config must be an object".into());
        };
        for key in map.keys() {
            if key != "gracePeriodSeconds" {
                return Err(format!(
                    "unknown config field {key:?} (known: gracePeriodSeconds)"
                ));
            }
        }
        if let Some(g) = map.get("gracePeriodSeconds").filter(|v| !v.is_null()) {
            let g = g
                .as_i64()
                .filter(|g| *g >= 0)
                .ok_or("config.gracePeriodSeconds must be a non-negative integer")?;
            out.grace_period_seconds = Some(g);
        }
        Ok(out)
    }
}

thread_local! {
    /// The config `init` parsed for this instance (rebuilt by every instance's `init`).
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

fn config() -> Config {
    CONFIG.with(|c| c.borrow().clone()).unwrap_or_default()
}

impl Controller for NamespaceController {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        let parsed = Config::parse(config)?;
        CONFIG.with(|c| *c.borrow_mut() = Some(parsed));
        Ok(ControllerSpec::new("v1", "Namespace"))
    }

    fn reconcile(_key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        let Some(ns) = object else {
            return Ok(Action::Done);
        };
        if !objects::is_deleting(ns) || !spec_finalizers(ns).contains(&FINALIZER) {
            return Ok(Action::Done);
        }
        let cfg = config();
        let name = objects::name(ns);
        if name.is_empty() {
            return Err("the namespace has no name".into());
        }
        let pass = delete_content(&cfg, name)?;
        if pass.out_of_time {
            return Ok(Action::RequeueAfter(Duration::from_millis(1)));
        }
        if !pass.remaining.is_empty() {
            host::log(
                LogLevel::Debug,
                &format!(
                    "namespace {name}: waiting for {} to go",
                    pass.remaining.join(", ")
                ),
            );
            return Ok(Action::RequeueAfter(RECHECK));
        }
        finalize(ns)?;
        Ok(Action::Done)
    }
}

export_controller!(NamespaceController);

/// The namespace's `spec.finalizers`.
fn spec_finalizers(ns: &Value) -> Vec<&str> {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// What one pass over the namespace's content found.
#[derive(Debug, Default)]
struct Pass {
    /// `"3 Pod (v1)"` for every type with objects left, with the finalizers holding them.
    remaining: Vec<String>,
    /// The work budget ran out before every type was done.
    out_of_time: bool,
}

/// Whether an error means the type cannot be listed or deleted (Kubernetes skips those).
fn unsupported(e: &HostError) -> bool {
    e.code == 404 || e.code == 405
}

/// Deletes what is in the namespace, type by type; reports what is left.
fn delete_content(cfg: &Config, namespace: &str) -> Result<Pass, String> {
    let started = cluster::now_millis();
    let over_budget = || cluster::now_millis().saturating_sub(started) > WORK_BUDGET_MS;
    let mut pass = Pass::default();
    let mut errors = Vec::new();
    for r in cluster::api_resources()
        .into_iter()
        .filter(|r| r.namespaced)
    {
        if pass.out_of_time {
            break;
        }
        let items = match host::list(&r.api_version, &r.kind, Some(namespace), None) {
            Ok(items) => items,
            Err(e) if unsupported(&e) => continue,
            Err(e) => {
                errors.push(format!("listing {} ({}): {e}", r.kind, r.api_version));
                continue;
            }
        };
        if items.is_empty() {
            continue;
        }
        let mut deleted_any = false;
        for item in &items {
            // Terminating objects finish on their own, unless a grace period overrides.
            if objects::is_deleting(item) && cfg.grace_period_seconds.is_none() {
                continue;
            }
            if over_budget() {
                pass.out_of_time = true;
                break;
            }
            let options = DeleteOptions {
                propagation: Some(Propagation::Background),
                grace_period_seconds: cfg.grace_period_seconds,
                ..Default::default()
            };
            let name = objects::name(item);
            match cluster::delete_with(&r.api_version, &r.kind, Some(namespace), name, &options) {
                Ok(()) => deleted_any = true,
                Err(e) if unsupported(&e) => {}
                Err(e) => errors.push(format!("deleting {} {namespace}/{name}: {e}", r.kind)),
            }
        }
        if pass.out_of_time {
            break;
        }
        // What had no finalizers is gone now (reads see our own writes).
        let left = if deleted_any {
            match host::list(&r.api_version, &r.kind, Some(namespace), None) {
                Ok(left) => left,
                Err(e) if unsupported(&e) => Vec::new(),
                Err(e) => {
                    errors.push(format!("listing {} ({}): {e}", r.kind, r.api_version));
                    continue;
                }
            }
        } else {
            items
        };
        if !left.is_empty() {
            pass.remaining
                .push(describe(&r.kind, &r.api_version, &left));
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "deleting the content of namespace {namespace}: {}",
            errors.join("; ")
        ));
    }
    Ok(pass)
}

/// `"2 Pod (v1), held by finalizers example.com/x"`.
fn describe(kind: &str, api_version: &str, left: &[Value]) -> String {
    let mut finalizers: Vec<&str> = left
        .iter()
        .flat_map(|o| {
            o.pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    finalizers.sort_unstable();
    finalizers.dedup();
    let mut s = format!("{} {kind} ({api_version})", left.len());
    if !finalizers.is_empty() {
        s.push_str(&format!(" held by finalizers {}", finalizers.join(" ")));
    }
    s
}

/// Removes `kubernetes` from the namespace's `spec.finalizers` (the `finalize`
/// subresource), keeping any other finalizer.
fn finalize(ns: &Value) -> Result<(), String> {
    let name = objects::name(ns);
    let rest: Vec<&str> = spec_finalizers(ns)
        .into_iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let mut patch = json!({"spec": {"finalizers": rest}});
    let rv = objects::str_at(ns, "/metadata/resourceVersion");
    if !rv.is_empty() {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    match cluster::patch(
        "v1",
        "Namespace",
        None,
        name,
        PatchType::Merge,
        &patch,
        Some("finalize"),
    ) {
        Ok(_) => {
            host::log(
                LogLevel::Info,
                &format!("namespace {name}: content deleted, finalized"),
            );
            Ok(())
        }
        // Finalized already (by another worker, or a previous call).
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(format!("finalizing namespace {name}: {e}")),
    }
}

#[cfg(test)]
mod tests;
