//! The garbage collector: Kubernetes' `ownerReferences` cascade, as a controller plugin
//! (kube-controller-manager's `pkg/controller/garbagecollector`).
//!
//! The controller is for many kinds at once (`config.kinds`, by default Pod, ReplicaSet,
//! Deployment, DaemonSet, StatefulSet, ControllerRevision, Job, CronJob, Endpoints,
//! EndpointSlice, ConfigMap, Secret, Service and PersistentVolumeClaim) and watches the same
//! kinds with the `dependents` map rule, so a change to an owner (its deletion, or its
//! `deletionTimestamp` being set) enqueues the objects that name it in their
//! `ownerReferences`. Reconciling one object does what Kubernetes' `attemptToDeleteItem`
//! and `attemptToOrphanWorker` do:
//!
//! - **An object with owners** (not being deleted): each owner is looked up by apiVersion,
//!   kind and name — in the object's namespace, or cluster-scoped — and compared by `uid`
//!   (an owner with the same name but another uid counts as gone). Owners are *solid*,
//!   *dangling* (gone) or *waiting* (being deleted with the `foregroundDeletion`
//!   finalizer). With at least one solid owner, the dangling and waiting references are
//!   removed (a strategic merge patch deleting them by uid; a JSON merge patch of the
//!   whole list with a resourceVersion precondition for custom resources). With none, the
//!   object is deleted: with `propagationPolicy: Foreground` if an owner is waiting and
//!   the object has dependents of its own (after making its own references non-blocking
//!   when one of those dependents is itself deleting in the foreground, Kubernetes' cycle
//!   breaker), otherwise with the policy its own finalizers ask for (Orphan, Foreground,
//!   else Background). Deletes carry the uid and resourceVersion of the object as read,
//!   so a recreated or changed object is never deleted on stale information.
//! - **Foreground deletion** (`deletionTimestamp` and the `foregroundDeletion` finalizer):
//!   the dependents were enqueued by the `dependents` rule and delete themselves as above;
//!   the owner removes its finalizer once no dependent with `blockOwnerDeletion: true`
//!   remains (the API server then deletes it), and checks again every second until then.
//! - **Orphan deletion** (`deletionTimestamp` and the `orphan` finalizer): the owner's
//!   reference is removed from every dependent, then the `orphan` finalizer.
//! - **Background deletion** needs nothing from the owner: the API server deletes it at
//!   once and its dependents, enqueued by the `dependents` rule, find it gone.
//!
//! A reconcile of an object whose owners all exist costs one cache read per owner (no
//! lists); an object without owners costs nothing.
//!
//! Differences from Kubernetes:
//!
//! - Kubernetes' collector watches every deletable resource type and keeps a graph of all
//!   objects; this one knows the dependents among `config.kinds` only (add a kind there,
//!   and capabilities for it, to collect its objects or to cascade from it). Owners of any
//!   kind are looked up (the plugin may `get` everything).
//! - Kubernetes confirms an owner's absence with a live read from the API server; reads
//!   here come from the informer cache, which may lag. So an owner absent from the cache
//!   (or found with another uid) is trusted only once the dependent is at least
//!   [`ABSENT_OWNER_GRACE_MS`] old; a younger dependent is looked at again when it is.
//! - Owner references to kinds the server does not serve are retried with backoff, as
//!   Kubernetes does (its `restMappingError`); a cluster-scoped object naming a namespaced
//!   owner is left alone (logged), as in Kubernetes.
//! - No events are recorded (`OwnerRefInvalidNamespace`), and there is no
//!   `absentOwnerCache` (the cache makes lookups cheap).
//! - Orphaning many dependents is done in slices of about [`WORK_BUDGET_MS`] per call.
//!
//! Config (all optional): `kinds` (a list of `{"apiVersion", "kind"}` objects or
//! `"group/version/Kind"` strings), `workers` (keys reconciled at once; 0 lets the host
//! choose), `gracePeriodSeconds` (passed on every delete the collector makes; unset, each
//! object's own grace applies, as in Kubernetes).

use std::cell::RefCell;
use std::time::Duration;

use tugboat_plugin_sdk::cluster::{self, DeleteOptions, PatchType, Propagation, Query};
use tugboat_plugin_sdk::controller::KindRef;
use tugboat_plugin_sdk::prelude::*;

/// The finalizer of an object whose dependents are deleted first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer of an object whose dependents are orphaned.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// How old a dependent must be before an owner missing from the cache counts as gone.
pub const ABSENT_OWNER_GRACE_MS: u64 = 3_000;
/// How long one call keeps writing before it hands back and asks to be called again.
pub const WORK_BUDGET_MS: u64 = 1_500;
/// How often an owner waiting for its blocking dependents looks again.
pub const FOREGROUND_RECHECK: Duration = Duration::from_secs(1);

/// The kinds collected when `config.kinds` is not set.
pub const DEFAULT_KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "ControllerRevision"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Endpoints"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
];

/// The controller.
pub struct GarbageCollector;

/// The parsed `config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub kinds: Vec<KindRef>,
    pub workers: u32,
    pub grace_period_seconds: Option<i64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kinds: DEFAULT_KINDS
                .iter()
                .map(|(a, k)| KindRef {
                    api_version: (*a).to_string(),
                    kind: (*k).to_string(),
                })
                .collect(),
            workers: 0,
            grace_period_seconds: None,
        }
    }
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
            if !matches!(key.as_str(), "kinds" | "workers" | "gracePeriodSeconds") {
                return Err(format!(
                    "unknown config field {key:?} (known: kinds, workers, gracePeriodSeconds)"
                ));
            }
        }
        if let Some(kinds) = map.get("kinds").filter(|v| !v.is_null()) {
            let Some(list) = kinds.as_array() else {
                return Err("config.kinds must be a list".into());
            };
            out.kinds = list.iter().map(parse_kind).collect::<Result<Vec<_>, _>>()?;
            if out.kinds.is_empty() {
                return Err("config.kinds must name at least one kind".into());
            }
        }
        if let Some(w) = map.get("workers").filter(|v| !v.is_null()) {
            out.workers = w
                .as_u64()
                .and_then(|w| u32::try_from(w).ok())
                .ok_or("config.workers must be a non-negative integer")?;
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

    /// The controller's spec: every kind is primary and watched with `dependents`.
    pub fn spec(&self) -> Result<ControllerSpec, String> {
        let Some(first) = self.kinds.first() else {
            return Err("no kinds to collect".into());
        };
        let mut spec = ControllerSpec::new(&first.api_version, &first.kind);
        for k in &self.kinds[1..] {
            spec = spec.and_for(&k.api_version, &k.kind);
        }
        for k in &self.kinds {
            spec = spec.watch(&k.api_version, &k.kind, MapRule::Dependents);
        }
        // Only metadata matters to the collector (owners, finalizers, deletion): a
        // status update does not wake it.
        Ok(spec
            .primary_changes(tugboat_plugin_sdk::controller::Changes::Metadata)
            .workers(self.workers))
    }
}

/// `{"apiVersion": "apps/v1", "kind": "ReplicaSet"}` or `"apps/v1/ReplicaSet"` (`"v1/Pod"`).
fn parse_kind(v: &Value) -> Result<KindRef, String> {
    let (api_version, kind) = match v {
        Value::String(s) => match s.rsplit_once('/') {
            Some((av, kind)) => (av.to_string(), kind.to_string()),
            None => return Err(format!("config.kinds: {s:?} is not \"group/version/Kind\"")),
        },
        Value::Object(_) => (
            objects::str_at(v, "/apiVersion").to_string(),
            objects::str_at(v, "/kind").to_string(),
        ),
        other => return Err(format!("config.kinds: {other} is not a kind")),
    };
    if api_version.is_empty() || kind.is_empty() || api_version.split('/').count() > 2 {
        return Err(format!("config.kinds: {v} needs an apiVersion and a kind"));
    }
    Ok(KindRef { api_version, kind })
}

thread_local! {
    /// The config `init` parsed for this instance (rebuilt by every instance's `init`).
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

fn config() -> Config {
    CONFIG.with(|c| c.borrow().clone()).unwrap_or_default()
}

impl Controller for GarbageCollector {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        let parsed = Config::parse(config)?;
        let spec = parsed.spec()?;
        CONFIG.with(|c| *c.borrow_mut() = Some(parsed));
        Ok(spec)
    }

    fn reconcile(key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        // A deleted object's dependents were enqueued by the `dependents` rule.
        let Some(obj) = object else {
            return Ok(Action::Done);
        };
        let cfg = config();
        let item = Item::new(key, obj);
        if objects::is_deleting(obj) {
            if has_finalizer(obj, FOREGROUND_FINALIZER) {
                return process_deleting_dependents(&cfg, &item);
            }
            if has_finalizer(obj, ORPHAN_FINALIZER) {
                return orphan_dependents(&cfg, &item);
            }
            // Being deleted is a one-way trip: its dependents are looked at once it is gone.
            return Ok(Action::Done);
        }
        if objects::owner_refs(obj).is_empty() {
            return Ok(Action::Done);
        }
        attempt_to_delete(&cfg, &item)
    }
}

export_controller!(GarbageCollector);

/// The object being reconciled (or a dependent), with what the API calls need.
struct Item<'a> {
    api_version: &'a str,
    kind: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
    obj: &'a Value,
}

impl<'a> Item<'a> {
    fn new(key: &'a ObjectKey, obj: &'a Value) -> Self {
        Item {
            api_version: &key.api_version,
            kind: &key.kind,
            namespace: key.namespace.as_deref(),
            name: &key.name,
            obj,
        }
    }

    /// A dependent found by a query (its own apiVersion, kind and metadata say where).
    fn of(obj: &'a Value) -> Self {
        Item {
            api_version: objects::str_at(obj, "/apiVersion"),
            kind: objects::str_at(obj, "/kind"),
            namespace: objects::namespace(obj),
            name: objects::name(obj),
            obj,
        }
    }

    fn uid(&self) -> &'a str {
        objects::uid(self.obj)
    }

    fn resource_version(&self) -> Option<String> {
        Some(objects::str_at(self.obj, "/metadata/resourceVersion"))
            .filter(|rv| !rv.is_empty())
            .map(str::to_string)
    }
}

impl std::fmt::Display for Item<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

fn finalizers(o: &Value) -> Vec<&str> {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has_finalizer(o: &Value, finalizer: &str) -> bool {
    finalizers(o).contains(&finalizer)
}

fn ref_uid(r: &Value) -> &str {
    objects::str_at(r, "/uid")
}

fn ref_blocks(r: &Value) -> bool {
    r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
}

/// What one owner reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    /// The owner exists and is not waiting for its dependents.
    Solid,
    /// The owner is gone (or was replaced by another object of the same name).
    Dangling,
    /// The owner is being deleted in the foreground.
    Waiting,
    /// The owner looks gone but the dependent is too young to trust the cache: look
    /// again after this many milliseconds.
    Unsure(u64),
}

/// Why an object's owners cannot be judged.
enum Unjudgeable {
    /// Will not resolve by retrying (logged, the object is left alone).
    Permanent(String),
    /// Retried with backoff.
    Transient(String),
}

/// The group of an `apiVersion` (`""` for the core group).
fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Whether a built-in kind is namespaced, without asking the host (the common case must
/// cost nothing beyond the owner's read). `None` for kinds not known here.
pub fn builtin_namespaced(group: &str, kind: &str) -> Option<bool> {
    let namespaced = match (group, kind) {
        (
            "",
            "Pod"
            | "Service"
            | "Endpoints"
            | "ConfigMap"
            | "Secret"
            | "Event"
            | "ServiceAccount"
            | "PersistentVolumeClaim"
            | "ReplicationController"
            | "PodTemplate"
            | "LimitRange"
            | "ResourceQuota",
        )
        | (
            "apps",
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "ControllerRevision",
        )
        | ("batch", "Job" | "CronJob")
        | ("discovery.k8s.io", "EndpointSlice")
        | ("coordination.k8s.io", "Lease")
        | ("events.k8s.io", "Event")
        | ("networking.k8s.io", "NetworkPolicy" | "Ingress")
        | ("policy", "PodDisruptionBudget")
        | ("autoscaling", "HorizontalPodAutoscaler")
        | ("rbac.authorization.k8s.io", "Role" | "RoleBinding")
        | ("storage.k8s.io", "CSIStorageCapacity") => true,
        ("", "Namespace" | "Node" | "PersistentVolume")
        | ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding")
        | ("storage.k8s.io", "StorageClass" | "VolumeAttachment" | "CSIDriver" | "CSINode")
        | ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("scheduling.k8s.io", "PriorityClass")
        | ("node.k8s.io", "RuntimeClass")
        | ("networking.k8s.io", "IngressClass")
        | ("certificates.k8s.io", "CertificateSigningRequest")
        | (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => false,
        _ => return None,
    };
    Some(namespaced)
}

/// Whether `kind` in `api_version` is namespaced: the built-in table, else the server's
/// resource types (custom resources). `None` when the server does not serve it.
fn is_namespaced(api_version: &str, kind: &str) -> Option<bool> {
    if let Some(n) = builtin_namespaced(group_of(api_version), kind) {
        return Some(n);
    }
    cluster::api_resources()
        .into_iter()
        .find(|r| r.api_version == api_version && r.kind == kind)
        .map(|r| r.namespaced)
}

/// Looks up one owner reference of `item` (Kubernetes' `isDangling` and
/// `classifyReferences`).
fn classify(item: &Item, r: &Value, now: &mut Option<u64>) -> Result<OwnerState, Unjudgeable> {
    let (api_version, kind, name, uid) = (
        objects::str_at(r, "/apiVersion"),
        objects::str_at(r, "/kind"),
        objects::str_at(r, "/name"),
        ref_uid(r),
    );
    if api_version.is_empty() || kind.is_empty() || name.is_empty() || uid.is_empty() {
        // The API server refuses such references; never delete anything because of one.
        return Ok(OwnerState::Solid);
    }
    let Some(namespaced) = is_namespaced(api_version, kind) else {
        return Err(Unjudgeable::Transient(format!(
            "{item}: its owner's kind {kind} in {api_version} is not served"
        )));
    };
    if namespaced && item.namespace.is_none() {
        return Err(Unjudgeable::Permanent(format!(
            "{item} is cluster-scoped but names a namespaced owner ({kind} {name}): such a reference is invalid and ignored"
        )));
    }
    let owner_ns = if namespaced { item.namespace } else { None };
    let owner = host::get(api_version, kind, owner_ns, name).map_err(|e| {
        Unjudgeable::Transient(format!(
            "{item}: reading its owner {kind} {name} ({api_version}): {e}"
        ))
    })?;
    match owner {
        Some(o) if objects::uid(&o) == uid => {
            if objects::is_deleting(&o) && has_finalizer(&o, FOREGROUND_FINALIZER) {
                Ok(OwnerState::Waiting)
            } else {
                Ok(OwnerState::Solid)
            }
        }
        _ => {
            // Absent from the cache, or another object of the same name.
            let created = objects::str_at(item.obj, "/metadata/creationTimestamp");
            let Some(created) = cluster::parse_rfc3339(created) else {
                return Ok(OwnerState::Dangling);
            };
            let now = *now.get_or_insert_with(cluster::now_millis);
            let trusted_from = created.saturating_add(ABSENT_OWNER_GRACE_MS);
            if now >= trusted_from {
                Ok(OwnerState::Dangling)
            } else {
                Ok(OwnerState::Unsure(trusted_from - now))
            }
        }
    }
}

/// An object with owners, not being deleted: keep it, trim its references, or delete it
/// (Kubernetes' `attemptToDeleteItem`).
fn attempt_to_delete(cfg: &Config, item: &Item) -> Result<Action, String> {
    let mut solid = Vec::new();
    let mut dangling = Vec::new();
    let mut waiting = Vec::new();
    let mut unsure: Option<u64> = None;
    let mut now = None;
    for r in objects::owner_refs(item.obj) {
        match classify(item, r, &mut now) {
            Ok(OwnerState::Solid) => solid.push(ref_uid(r)),
            Ok(OwnerState::Dangling) => dangling.push(ref_uid(r)),
            Ok(OwnerState::Waiting) => waiting.push(ref_uid(r)),
            Ok(OwnerState::Unsure(ms)) => unsure = Some(unsure.unwrap_or(0).max(ms)),
            Err(Unjudgeable::Permanent(message)) => {
                host::log(LogLevel::Warn, &message);
                return Ok(Action::Done);
            }
            Err(Unjudgeable::Transient(message)) => return Err(message),
        }
    }
    if let Some(ms) = unsure {
        return Ok(Action::RequeueAfter(Duration::from_millis(ms)));
    }
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return Ok(Action::Done);
        }
        // Waiting references go too, or their owners would wait for this object forever.
        let gone: Vec<&str> = dangling.iter().chain(&waiting).copied().collect();
        host::log(
            LogLevel::Debug,
            &format!("{item}: removing references to owners that are gone or waiting: {gone:?}"),
        );
        remove_owner_refs(item, &gone)?;
        return Ok(Action::Done);
    }
    if !waiting.is_empty() {
        let deps = dependents_of(cfg, item)?;
        if !deps.is_empty() {
            let mut rv = item.resource_version();
            if deps
                .iter()
                .any(|d| objects::is_deleting(d) && has_finalizer(d, FOREGROUND_FINALIZER))
            {
                // A dependent waits for its own dependents: make this object's references
                // non-blocking so that a cycle cannot keep every owner forever.
                if let Some(patched) = unblock_owner_refs(item)? {
                    rv = Some(objects::str_at(&patched, "/metadata/resourceVersion"))
                        .filter(|v| !v.is_empty())
                        .map(str::to_string);
                }
            }
            host::log(
                LogLevel::Debug,
                &format!(
                    "{item}: an owner is deleting in the foreground and it has dependents: deleting it in the foreground"
                ),
            );
            return delete(cfg, item, Propagation::Foreground, rv);
        }
    }
    let policy = if has_finalizer(item.obj, ORPHAN_FINALIZER) {
        Propagation::Orphan
    } else if has_finalizer(item.obj, FOREGROUND_FINALIZER) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    host::log(
        LogLevel::Debug,
        &format!("{item}: no owner remains: deleting it ({policy:?})"),
    );
    delete(cfg, item, policy, item.resource_version())
}

/// Deletes `item` if it is still the object that was judged (same uid, and the
/// resourceVersion it was read at, or that our own last write gave it).
fn delete(
    cfg: &Config,
    item: &Item,
    policy: Propagation,
    resource_version: Option<String>,
) -> Result<Action, String> {
    let options = DeleteOptions {
        propagation: Some(policy),
        uid: Some(item.uid().to_string()).filter(|u| !u.is_empty()),
        resource_version,
        grace_period_seconds: cfg.grace_period_seconds,
    };
    match cluster::delete_with(
        item.api_version,
        item.kind,
        item.namespace,
        item.name,
        &options,
    ) {
        Ok(()) => Ok(Action::Done),
        Err(e) if e.is_not_found() => Ok(Action::Done),
        // A changed object is enqueued again by its change; retrying shows the new state.
        Err(e) => Err(format!("deleting {item}: {e}")),
    }
}

/// The dependents of `owner` among the collected kinds: in its namespace, or anywhere for
/// a cluster-scoped owner.
fn dependents_of(cfg: &Config, owner: &Item) -> Result<Vec<Value>, String> {
    let uid = owner.uid();
    if uid.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for k in &cfg.kinds {
        let q = Query::new(&k.api_version, &k.kind)
            .namespace(owner.namespace)
            .owner(uid);
        match cluster::select(&q) {
            Ok(items) => out.extend(items),
            // A kind the server does not serve (yet) has no objects.
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                return Err(format!(
                    "listing the dependents of {owner} among {}: {e}",
                    k.kind
                ));
            }
        }
    }
    // The object itself is never its own dependent.
    out.retain(|d| objects::uid(d) != uid);
    Ok(out)
}

/// The reference to `owner_uid` in `dependent`, if any.
fn ref_to<'a>(dependent: &'a Value, owner_uid: &str) -> Option<&'a Value> {
    objects::owner_refs(dependent)
        .iter()
        .find(|r| ref_uid(r) == owner_uid)
}

/// An owner being deleted in the foreground: once no dependent blocks it, drop the
/// finalizer (Kubernetes' `processDeletingDependentsItem`).
fn process_deleting_dependents(cfg: &Config, item: &Item) -> Result<Action, String> {
    let deps = dependents_of(cfg, item)?;
    let blocking = deps
        .iter()
        .filter(|d| ref_to(d, item.uid()).is_some_and(ref_blocks))
        .count();
    if blocking == 0 {
        host::log(
            LogLevel::Info,
            &format!(
                "{item}: no dependent blocks its deletion any more: removing the {FOREGROUND_FINALIZER} finalizer"
            ),
        );
        remove_finalizer(item, FOREGROUND_FINALIZER)?;
        return Ok(Action::Done);
    }
    // The dependents were enqueued when this object started deleting; they delete
    // themselves. Their disappearance does not enqueue this object: look again soon.
    let wait = if blocking >= 1000 {
        FOREGROUND_RECHECK * 5
    } else {
        FOREGROUND_RECHECK
    };
    Ok(Action::RequeueAfter(wait))
}

/// An owner being deleted with the `orphan` finalizer: remove its reference from every
/// dependent, then the finalizer (Kubernetes' `attemptToOrphanWorker`).
fn orphan_dependents(cfg: &Config, item: &Item) -> Result<Action, String> {
    let owner_uid = item.uid();
    let deps = dependents_of(cfg, item)?;
    let started = cluster::now_millis();
    let mut errors = Vec::new();
    for (i, d) in deps.iter().enumerate() {
        if i > 0 && cluster::now_millis().saturating_sub(started) > WORK_BUDGET_MS {
            // The rest in the next call (the ones done no longer show up).
            return Ok(Action::RequeueAfter(Duration::from_millis(1)));
        }
        let dep = Item::of(d);
        if let Err(e) = remove_owner_refs(&dep, &[owner_uid]) {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(format!(
            "orphaning the dependents of {item}: {}",
            errors.join("; ")
        ));
    }
    host::log(
        LogLevel::Info,
        &format!(
            "{item}: orphaned {} dependent(s): removing the {ORPHAN_FINALIZER} finalizer",
            deps.len()
        ),
    );
    remove_finalizer(item, ORPHAN_FINALIZER)?;
    Ok(Action::Done)
}

/// Patches `item` so that its references to `owner_uids` are gone: a strategic merge
/// patch deleting them by uid (it cannot conflict, and is a no-op once done), or for
/// custom resources (no strategic merge) a JSON merge patch of the remaining list with
/// the resourceVersion as precondition.
fn remove_owner_refs(item: &Item, owner_uids: &[&str]) -> Result<Option<Value>, String> {
    let deletes: Vec<Value> = owner_uids
        .iter()
        .map(|u| json!({"$patch": "delete", "uid": u}))
        .collect();
    let strategic = json!({"metadata": {"ownerReferences": deletes, "uid": item.uid()}});
    let kept: Vec<Value> = objects::owner_refs(item.obj)
        .iter()
        .filter(|r| !owner_uids.contains(&ref_uid(r)))
        .cloned()
        .collect();
    patch_owner_refs(item, &strategic, kept)
}

/// Patches `item` so that none of its references blocks its owner's deletion; returns the
/// patched object (`None` when there was nothing to patch or it is gone).
fn unblock_owner_refs(item: &Item) -> Result<Option<Value>, String> {
    let refs = objects::owner_refs(item.obj);
    let unblocked: Vec<Value> = refs
        .iter()
        .filter(|r| ref_blocks(r))
        .map(|r| {
            let mut r = r.clone();
            r["blockOwnerDeletion"] = json!(false);
            r
        })
        .collect();
    if unblocked.is_empty() {
        return Ok(None);
    }
    let strategic = json!({"metadata": {"ownerReferences": unblocked, "uid": item.uid()}});
    let all: Vec<Value> = refs
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if ref_blocks(&r) {
                r["blockOwnerDeletion"] = json!(false);
            }
            r
        })
        .collect();
    patch_owner_refs(item, &strategic, all)
}

/// Sends `strategic`; if the kind takes no strategic merge patch (415: a custom
/// resource), replaces the whole list with `refs` by a merge patch guarded by the
/// resourceVersion.
fn patch_owner_refs(
    item: &Item,
    strategic: &Value,
    refs: Vec<Value>,
) -> Result<Option<Value>, String> {
    let r = cluster::patch(
        item.api_version,
        item.kind,
        item.namespace,
        item.name,
        PatchType::Strategic,
        strategic,
        None,
    );
    match r {
        Ok(patched) => Ok(Some(patched)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) if e.code == 415 => {
            let refs = if refs.is_empty() {
                Value::Null
            } else {
                Value::Array(refs)
            };
            let merge = json!({"metadata": {
                "ownerReferences": refs,
                "resourceVersion": item.resource_version(),
            }});
            match cluster::patch(
                item.api_version,
                item.kind,
                item.namespace,
                item.name,
                PatchType::Merge,
                &merge,
                None,
            ) {
                Ok(patched) => Ok(Some(patched)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(format!("patching the owner references of {item}: {e}")),
            }
        }
        Err(e) => Err(format!("patching the owner references of {item}: {e}")),
    }
}

/// Removes `finalizer` from `item` with a merge patch guarded by its resourceVersion; on a
/// conflict, reads it again and tries once more (Kubernetes' `removeFinalizer`).
fn remove_finalizer(item: &Item, finalizer: &str) -> Result<(), String> {
    let mut current = item.obj.clone();
    for attempt in 0..2 {
        let fins = finalizers(&current);
        if !fins.contains(&finalizer) {
            return Ok(());
        }
        let rest: Vec<&str> = fins.into_iter().filter(|f| *f != finalizer).collect();
        let rest = if rest.is_empty() {
            Value::Null
        } else {
            json!(rest)
        };
        let rv = objects::str_at(&current, "/metadata/resourceVersion");
        let mut meta = json!({"finalizers": rest});
        if !rv.is_empty() {
            meta["resourceVersion"] = json!(rv);
        }
        match cluster::patch(
            item.api_version,
            item.kind,
            item.namespace,
            item.name,
            PatchType::Merge,
            &json!({ "metadata": meta }),
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if e.code == 409 && attempt == 0 => {
                match host::get(item.api_version, item.kind, item.namespace, item.name) {
                    Ok(Some(o)) if objects::uid(&o) == item.uid() => current = o,
                    // Gone, or another object now: nothing of ours to remove.
                    Ok(_) => return Ok(()),
                    Err(e) => return Err(format!("reading {item} again: {e}")),
                }
            }
            Err(e) => return Err(format!("removing the {finalizer} finalizer of {item}: {e}")),
        }
    }
    Err(format!(
        "removing the {finalizer} finalizer of {item}: it keeps changing (conflict)"
    ))
}

#[cfg(test)]
mod tests;
