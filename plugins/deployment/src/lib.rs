//! The Deployment controller: rolls `apps/v1` Deployments out through ReplicaSets, as
//! kube-controller-manager's `pkg/controller/deployment` does.
//!
//! Each reconcile of a Deployment (`syncDeployment`):
//!
//! 1. **claims** ReplicaSets (`ClaimReplicaSets`): of those its selector selects or that
//!    name it as owner, it adopts matching orphans (a strategic-merge patch adding a
//!    controller `ownerReference` with `blockOwnerDeletion`) and releases owned ones that
//!    no longer match; a Deployment being deleted only recomputes its status, and one whose
//!    selector is empty selects nothing (a `SelectingAll` warning, and only
//!    `observedGeneration` is written);
//! 2. records the **pause** state in the `Progressing` condition (`DeploymentPaused`,
//!    `DeploymentResumed`), then, when paused or on a **scaling event** (an active
//!    ReplicaSet's `desired-replicas` annotation differs from `spec.replicas`), **scales**
//!    (`sync`): the only active ReplicaSet takes all replicas; a saturated new ReplicaSet
//!    scales the old ones to 0; otherwise, for rolling updates, replicas are added or
//!    removed proportionally to the ReplicaSets' `max-replicas` annotations (larger first,
//!    newer first when adding, older first when removing, leftovers to the first). A
//!    paused Deployment makes no rollout progress but scales, and cleans up old
//!    ReplicaSets;
//! 3. otherwise **rolls out** with its strategy:
//!    - `RollingUpdate` (`rolloutRolling`): the new ReplicaSet (`<name>-<pod-template-hash>`,
//!      the hash label added to its selector, labels and template, `collisionCount` bumped
//!      on a name collision) grows while the total stays within `replicas + maxSurge`
//!      (percentages rounded up); old ReplicaSets shrink, unhealthy replicas first,
//!      while at least `replicas - maxUnavailable` (percentages rounded down; 1 when both
//!      resolve to 0) stay available, counting the new ReplicaSet's unavailable Pods;
//!    - `Recreate` (`rolloutRecreate`): old ReplicaSets go to 0, the new one is created and
//!      scaled up only once no old Pod is left (Pods being deleted count, finished ones do
//!      not); while only terminating Pods remain, the Deployment is looked at again every
//!      second (Pods are read from the cache, their changes enqueue nothing);
//! 4. keeps **revisions**: the new ReplicaSet gets `deployment.kubernetes.io/revision` =
//!    highest old revision + 1 (a rollback to an old template reuses that ReplicaSet and
//!    raises its revision, keeping the old ones in `revision-history`), the Deployment's
//!    annotations (e.g. `kubernetes.io/change-cause`, not `last-applied-configuration`) are
//!    copied to it, `desired-replicas`/`max-replicas` record each scaling, and the
//!    Deployment's own `revision` annotation follows its new ReplicaSet. When the rollout
//!    is complete (or while paused) old ReplicaSets beyond `revisionHistoryLimit`, oldest
//!    revision first, are deleted if they have no replicas;
//! 5. writes **status** once, when it changed (`updateStatus`, so a concurrent spec change
//!    is a conflict and the key is retried): `observedGeneration`, `replicas`,
//!    `updatedReplicas`, `readyReplicas`, `availableReplicas` and `unavailableReplicas`
//!    summed from the ReplicaSets' status (availability, `minReadySeconds` included, is
//!    the ReplicaSet controller's business, as in Kubernetes), `collisionCount`, and the
//!    conditions `Available` (`MinimumReplicasAvailable`/`MinimumReplicasUnavailable`),
//!    `Progressing` (`NewReplicaSetCreated`, `FoundNewReplicaSet`, `ReplicaSetUpdated`,
//!    `NewReplicaSetAvailable`, `ReplicaSetCreateError`, `ProgressDeadlineExceeded`) and
//!    `ReplicaFailure` copied from a ReplicaSet. A rollout without progress is looked at
//!    again (`RequeueAfter`) when `progressDeadlineSeconds` since the last progress expire,
//!    so `ProgressDeadlineExceeded` appears without any other change.
//!
//! `kubectl rollout status` reads `generation`/`observedGeneration`, `updatedReplicas`,
//! `replicas`, `availableReplicas` and the `Progressing` reason; `kubectl rollout
//! history|undo` find the ReplicaSets by the Deployment's selector and controller
//! reference and read their `revision` and `change-cause` annotations; `undo` patches an
//! old ReplicaSet's template (and annotations) back into the Deployment, which this
//! controller sees as a template change; `rollout restart` changes a template annotation;
//! `pause`/`resume` set `spec.paused`.
//!
//! Writes to ReplicaSets are merge patches (scaling with its annotations in one patch),
//! so they do not conflict with the ReplicaSet controller's status writes. Reads go to the
//! host's cache through indexed queries only (ReplicaSets by the Deployment's selector and
//! by owner uid; Pods by selector only for `Recreate`).
//!
//! Watches: the primary kind `apps/v1` Deployment; `apps/v1` ReplicaSets with
//! [`MapRule::Owner`]; `v1` Pods with [`MapRule::None`] (read for `Recreate` only). With the
//! config `{"adoptOrphansOnReplicaSetEvents": true}` ReplicaSets are also watched with
//! `MapRule::Selector("/spec/selector")` so that an orphan enqueues the Deployments
//! selecting it at once; otherwise orphans are adopted at the Deployment's next reconcile.
//! `{"workers": N}` sets the number of concurrent reconciles.
//!
//! Events like Kubernetes' (`ScalingReplicaSet` "Scaled up replica set web-5d4f to 3 from
//! 1", `ReplicaSetCreateError`, `SelectingAll`) are recorded unless the config says
//! `{"events": false}`.
//!
//! Not implemented: the deprecated `deprecated.deployment.rollback.to` server-side
//! rollback (kubectl rolls back client-side), `status.terminatingReplicas` (alpha),
//! in-place updates, metrics, and the fresh (uncached) re-read before adopting.

use std::time::Duration;

use tugboat_plugin_sdk::cluster::{self, DeleteOptions, PatchType, Query};
use tugboat_plugin_sdk::controller::{Action, Controller, ControllerSpec, MapRule, ObjectKey};
use tugboat_plugin_sdk::host::{self, HostError, LogLevel};
use tugboat_plugin_sdk::objects;
use tugboat_plugin_sdk::{Value, export_controller, json};

pub use workload_common::events;
pub mod util;

#[cfg(test)]
mod tests;

use util::*;

/// The plugin's configuration (`spec.config` of its Plugin object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Also watch ReplicaSets with `MapRule::Selector("/spec/selector")`.
    pub adopt_orphans_on_replica_set_events: bool,
    /// Concurrent reconciles (0: the host's default).
    pub workers: u32,
    /// Record Events (`ScalingReplicaSet`, `ReplicaSetCreateError`, `SelectingAll`);
    /// default true.
    pub events: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            adopt_orphans_on_replica_set_events: false,
            workers: 0,
            events: true,
        }
    }
}

impl Config {
    /// Reads `{"adoptOrphansOnReplicaSetEvents": bool, "workers": n, "events": bool}`;
    /// `null` is the default.
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
                "adoptOrphansOnReplicaSetEvents" => {
                    out.adopt_orphans_on_replica_set_events = v
                        .as_bool()
                        .ok_or("config.adoptOrphansOnReplicaSetEvents must be a boolean")?;
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
pub struct DeploymentController;

impl Controller for DeploymentController {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        let config = Config::parse(config)?;
        events::enable(config.events);
        // Its own status writes do not wake it (its ReplicaSets' changes do).
        let mut spec = ControllerSpec::new("apps/v1", "Deployment")
            .primary_changes(tugboat_plugin_sdk::controller::Changes::SpecAndMetadata)
            .owns("apps/v1", "ReplicaSet")
            .watch("v1", "Pod", MapRule::None);
        if config.adopt_orphans_on_replica_set_events {
            spec = spec.watch(
                "apps/v1",
                "ReplicaSet",
                MapRule::Selector("/spec/selector".into()),
            );
        }
        Ok(spec.workers(config.workers))
    }

    fn reconcile(_key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        match object {
            Some(d) => sync_deployment(d),
            None => Ok(Action::Done),
        }
    }
}

export_controller!(DeploymentController);

/// How often a `Recreate` rollout looks again while old Pods are terminating.
pub const RECREATE_POLL: Duration = Duration::from_secs(1);

/// The `source.component` of the Events this controller records.
pub const COMPONENT: &str = "deployment-controller";

fn event(d: &Value, type_: &str, reason: &str, message: &str) {
    events::record(
        COMPONENT,
        "apps/v1",
        "Deployment",
        d,
        type_,
        reason,
        message,
    );
}

/// The owner reference a Deployment puts on its ReplicaSets.
pub fn deployment_ref(d: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": objects::name(d),
        "uid": objects::uid(d),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether a `LabelSelector` is empty (selects everything).
fn selects_everything(selector: &Value) -> bool {
    let empty = |k: &str| match selector.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    empty("matchLabels") && empty("matchExpressions")
}

fn namespace_terminating(e: &HostError) -> bool {
    e.message.contains("because it is being terminated")
}

fn sync_deployment(d: &Value) -> Result<Action, String> {
    let mut run = Run::new(d)?;
    match run.sync() {
        Ok(()) => {
            run.flush()?;
            Ok(run.requeue.map_or(Action::Done, Action::RequeueAfter))
        }
        Err(e) => {
            // Kubernetes writes revisions, collision counts and conditions as it goes:
            // keep what was decided before the failure.
            if let Err(flush) = run.flush() {
                host::log(
                    LogLevel::Warn,
                    &format!("writing the status of {}: {flush}", run.describe()),
                );
            }
            Err(e)
        }
    }
}

/// One reconcile of one Deployment.
struct Run {
    /// The Deployment as stored (its `resourceVersion` guards the status write).
    stored: Value,
    /// The working copy: annotations are edited here.
    d: Value,
    /// The working status.
    status: Status,
    spec: Spec,
    ns: String,
    generation: i64,
    /// The claimed ReplicaSets, oldest first (a new one is appended).
    rss: Vec<Value>,
    now: u64,
    requeue: Option<Duration>,
}

impl Run {
    fn new(d: &Value) -> Result<Run, String> {
        let ns = objects::namespace(d)
            .ok_or_else(|| format!("Deployment {} has no namespace", objects::name(d)))?
            .to_string();
        let spec =
            Spec::parse(d).map_err(|e| format!("Deployment {ns}/{}: {e}", objects::name(d)))?;
        Ok(Run {
            stored: d.clone(),
            d: d.clone(),
            status: Status::parse(d),
            spec,
            ns,
            generation: objects::generation(d),
            rss: Vec::new(),
            now: cluster::now_millis(),
            requeue: None,
        })
    }

    fn describe(&self) -> String {
        format!("Deployment {}/{}", self.ns, self.name())
    }

    fn name(&self) -> &str {
        objects::name(&self.stored)
    }

    fn now_str(&self) -> String {
        cluster::rfc3339(self.now)
    }

    fn condition(&self, kind: &str, status: &str, reason: &str, message: String) -> Condition {
        Condition::new(kind, status, reason, &message, &self.now_str())
    }

    /// Writes the status and annotations if they changed.
    fn flush(&mut self) -> Result<(), String> {
        if self.status == Status::parse(&self.stored)
            && annotations(&self.d) == annotations(&self.stored)
        {
            return Ok(());
        }
        let mut obj = self.stored.clone();
        // The host finds the resource by these (a cached object may lack them).
        obj["apiVersion"] = json!("apps/v1");
        obj["kind"] = json!("Deployment");
        obj["status"] = self.status.to_json();
        match self.d.pointer("/metadata/annotations") {
            Some(a) => obj["metadata"]["annotations"] = a.clone(),
            None => {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove("annotations");
                }
            }
        }
        let stored = cluster::update_status(&obj)
            .map_err(|e| format!("updating the status of {}: {e}", self.describe()))?;
        self.stored = stored;
        Ok(())
    }

    /// `syncDeployment`.
    fn sync(&mut self) -> Result<(), String> {
        let selector = self
            .d
            .pointer("/spec/selector")
            .filter(|s| s.is_object())
            .cloned()
            .ok_or_else(|| format!("{} has no spec.selector", self.describe()))?;
        if selects_everything(&selector) {
            event(
                &self.stored,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            if self.status.observed_generation < self.generation {
                self.status.observed_generation = self.generation;
            }
            return Ok(());
        }
        self.rss = self.claim_replica_sets(&selector)?;
        if objects::is_deleting(&self.d) {
            return self.sync_status_only();
        }
        self.check_paused_conditions();
        if self.spec.paused {
            return self.sync_scale();
        }
        if self.is_scaling_event()? {
            return self.sync_scale();
        }
        match self.spec.strategy {
            Strategy::Recreate => self.rollout_recreate(),
            Strategy::RollingUpdate { .. } => self.rollout_rolling(),
        }
    }

    /// `getReplicaSetsForDeployment`: the ReplicaSets this Deployment controls, adopting
    /// matching orphans and releasing owned ones that no longer match.
    fn claim_replica_sets(&self, selector: &Value) -> Result<Vec<Value>, String> {
        let uid = objects::uid(&self.d).to_string();
        let by_labels = cluster::select(
            &Query::new("apps/v1", "ReplicaSet")
                .namespace(Some(&self.ns))
                .labels(&objects::selector_string(selector)),
        )
        .map_err(|e| format!("listing ReplicaSets: {e}"))?;
        let owned = if uid.is_empty() {
            Vec::new()
        } else {
            cluster::select(
                &Query::new("apps/v1", "ReplicaSet")
                    .namespace(Some(&self.ns))
                    .owner(&uid),
            )
            .map_err(|e| format!("listing ReplicaSets: {e}"))?
        };
        let mut seen = std::collections::BTreeSet::new();
        let deleting = objects::is_deleting(&self.d);
        let mut claimed = Vec::new();
        let mut errors = Vec::new();
        for rs in by_labels.into_iter().chain(owned) {
            if !seen.insert(objects::uid(&rs).to_string()) {
                continue;
            }
            let matches = objects::selector_matches(selector, &objects::labels(&rs));
            match objects::controller_of(&rs) {
                Some(r) => {
                    if r.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
                        continue;
                    }
                    if matches {
                        claimed.push(rs);
                    } else if !deleting {
                        let patch = json!({"metadata": {
                            "ownerReferences": [{"$patch": "delete", "uid": uid}],
                            "uid": objects::uid(&rs),
                        }});
                        if let Err(e) = self.patch_rs(&rs, PatchType::Strategic, &patch)
                            && !e.is_not_found()
                        {
                            errors
                                .push(format!("releasing ReplicaSet {}: {e}", objects::name(&rs)));
                        }
                    }
                }
                None => {
                    if deleting || !matches || objects::is_deleting(&rs) {
                        continue;
                    }
                    let patch = json!({"metadata": {
                        "ownerReferences": [deployment_ref(&self.d)],
                        "uid": objects::uid(&rs),
                    }});
                    match self.patch_rs(&rs, PatchType::Strategic, &patch) {
                        Ok(adopted) => claimed.push(adopted),
                        Err(e) if e.is_not_found() => {}
                        Err(e) => {
                            errors.push(format!("adopting ReplicaSet {}: {e}", objects::name(&rs)))
                        }
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        claimed.sort_by(by_creation);
        Ok(claimed)
    }

    fn patch_rs(&self, rs: &Value, kind: PatchType, patch: &Value) -> Result<Value, HostError> {
        cluster::patch(
            "apps/v1",
            "ReplicaSet",
            Some(&self.ns),
            objects::name(rs),
            kind,
            patch,
            None,
        )
    }

    /// `checkPausedConditions`.
    fn check_paused_conditions(&mut self) {
        if !self.spec.has_progress_deadline() {
            return;
        }
        let reason = self.status.condition(PROGRESSING).map(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT) {
            return;
        }
        let paused_exists = reason.as_deref() == Some(PAUSED);
        if self.spec.paused && !paused_exists {
            let c = self.condition(
                PROGRESSING,
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
            );
            self.status.set_condition(c);
        } else if !self.spec.paused && paused_exists {
            let c = self.condition(
                PROGRESSING,
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
            );
            self.status.set_condition(c);
        }
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template is the Deployment's.
    fn find_new(&self) -> Option<usize> {
        let template = self.d.pointer("/spec/template").unwrap_or(&Value::Null);
        self.rss.iter().position(|rs| {
            equal_ignore_hash(
                rs.pointer("/spec/template").unwrap_or(&Value::Null),
                template,
            )
        })
    }

    fn others(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rss.len()).filter(|&i| Some(i) != new).collect()
    }

    fn active(&self, idx: impl IntoIterator<Item = usize>) -> Vec<usize> {
        idx.into_iter()
            .filter(|&i| rs_replicas(&self.rss[i]) > 0)
            .collect()
    }

    fn with_new(old: &[usize], new: Option<usize>) -> Vec<usize> {
        old.iter().copied().chain(new).collect()
    }

    fn sum(&self, idx: &[usize], f: impl Fn(&Value) -> i64) -> i64 {
        idx.iter().map(|&i| f(&self.rss[i])).sum()
    }

    /// `SetDeploymentRevision` (on the working copy).
    fn set_deployment_revision(&mut self, revision: &str) -> bool {
        if annotation(&self.d, REVISION) == Some(revision) {
            return false;
        }
        set_annotation(&mut self.d, REVISION, revision);
        true
    }

    /// `getAllReplicaSetsAndSyncRevision`/`getNewReplicaSet`: the new ReplicaSet (created
    /// when `create` and missing) with its annotations and revision synced, and the
    /// Deployment's revision following it. Returns (new, old).
    fn new_and_old(&mut self, create: bool) -> Result<(Option<usize>, Vec<usize>), String> {
        let existing = self.find_new();
        let old = self.others(existing);
        let new_revision = (max_revision(old.iter().map(|&i| &self.rss[i])) + 1).to_string();

        if let Some(i) = existing {
            let mut rs = self.rss[i].clone();
            let annotations_updated =
                set_new_rs_annotations(&self.d, &self.spec, &mut rs, &new_revision, true);
            let min_ready = objects::i64_at(&rs, "/spec/minReadySeconds").unwrap_or(0);
            if annotations_updated || min_ready != self.spec.min_ready_seconds {
                let mut patch = json!({"spec": {"minReadySeconds": self.spec.min_ready_seconds}});
                // Annotations are only ever added or changed here: merging them is exact.
                if let Some(a) = rs
                    .pointer("/metadata/annotations")
                    .filter(|a| a.is_object())
                {
                    patch["metadata"] = json!({ "annotations": a });
                }
                self.rss[i] = self
                    .patch_rs(&rs, PatchType::Merge, &patch)
                    .map_err(|e| format!("updating ReplicaSet {}: {e}", objects::name(&rs)))?;
            }
            let revision = annotation(&self.rss[i], REVISION).unwrap_or("").to_string();
            self.set_deployment_revision(&revision);
            if self.spec.has_progress_deadline() && self.status.condition(PROGRESSING).is_none() {
                let msg = format!("Found new replica set {:?}", objects::name(&self.rss[i]));
                let c = self.condition(PROGRESSING, "True", FOUND_NEW_RS, msg);
                self.status.set_condition(c);
            }
            return Ok((Some(i), old));
        }
        if !create {
            return Ok((None, old));
        }

        // Create the new ReplicaSet.
        let template = self
            .d
            .pointer("/spec/template")
            .cloned()
            .ok_or_else(|| format!("{} has no spec.template", self.describe()))?;
        let hash = objects::pod_template_hash(&template, self.status.collision_count);
        let mut rs_template = template;
        if !rs_template["metadata"].is_object() {
            rs_template["metadata"] = json!({});
        }
        if !rs_template["metadata"]["labels"].is_object() {
            rs_template["metadata"]["labels"] = json!({});
        }
        rs_template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
        let mut selector = self.d["spec"]["selector"].clone();
        if !selector["matchLabels"].is_object() {
            selector["matchLabels"] = json!({});
        }
        selector["matchLabels"][POD_TEMPLATE_HASH] = json!(hash);
        let rs_name = format!("{}-{hash}", self.name());
        let all_replicas = self.sum(&old, rs_replicas);
        let replicas = self.spec.new_rs_new_replicas(all_replicas, 0);
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": self.ns,
                "ownerReferences": [deployment_ref(&self.d)],
                "labels": rs_template["metadata"]["labels"],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": self.spec.min_ready_seconds,
                "selector": selector,
                "template": rs_template,
            },
        });
        set_new_rs_annotations(&self.d, &self.spec, &mut rs, &new_revision, false);

        let mut already_exists = false;
        let idx = match host::create(&rs) {
            Ok(created) => {
                self.rss.push(created);
                self.rss.len() - 1
            }
            Err(e) if e.code == 409 && e.reason == "AlreadyExists" => {
                let found = host::get("apps/v1", "ReplicaSet", Some(&self.ns), &rs_name)
                    .map_err(|e| format!("reading ReplicaSet {rs_name}: {e}"))?;
                match found {
                    Some(found)
                        if objects::is_controlled_by(&found, objects::uid(&self.d))
                            && equal_ignore_hash(
                                &self.d["spec"]["template"],
                                &found["spec"]["template"],
                            ) =>
                    {
                        already_exists = true;
                        match self
                            .rss
                            .iter()
                            .position(|r| objects::uid(r) == objects::uid(&found))
                        {
                            Some(i) => i,
                            None => {
                                self.rss.push(found);
                                self.rss.len() - 1
                            }
                        }
                    }
                    _ => {
                        // A hash collision: another template hashed to the same name.
                        let count = self.status.collision_count.unwrap_or(0) + 1;
                        self.status.collision_count = Some(count);
                        return Err(format!(
                            "found a hash collision for {} (ReplicaSet {rs_name} exists): collisionCount is now {count}",
                            self.describe()
                        ));
                    }
                }
            }
            Err(e) if namespace_terminating(&e) => {
                return Err(format!("creating ReplicaSet {rs_name}: {e}"));
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set {rs_name:?}: {}",
                    e.message
                );
                if self.spec.has_progress_deadline() {
                    let c = self.condition(PROGRESSING, "False", FAILED_RS_CREATE, msg.clone());
                    self.status.set_condition(c);
                }
                event(&self.stored, "Warning", FAILED_RS_CREATE, &msg);
                return Err(msg);
            }
        };
        if !already_exists && replicas > 0 {
            let msg = format!("Scaled up replica set {rs_name} to {replicas}");
            event(&self.stored, "Normal", "ScalingReplicaSet", &msg);
        }
        self.set_deployment_revision(&new_revision);
        if !already_exists && self.spec.has_progress_deadline() {
            let msg = format!("Created new replica set {rs_name:?}");
            let c = self.condition(PROGRESSING, "True", NEW_REPLICA_SET, msg);
            self.status.set_condition(c);
        }
        let old = self.others(Some(idx));
        Ok((Some(idx), old))
    }

    /// `scaleReplicaSet`: sets `spec.replicas` and the replicas annotations in one patch.
    /// Whether the size changed.
    fn scale_rs(&mut self, i: usize, to: i64) -> Result<bool, String> {
        let rs = &self.rss[i];
        let size_changes = rs_replicas(rs) != to;
        let max = self.spec.replicas + self.spec.max_surge();
        if !size_changes && !replicas_annotations_need_update(rs, self.spec.replicas, max) {
            return Ok(false);
        }
        let patch = json!({
            "metadata": {"annotations": {
                DESIRED_REPLICAS: self.spec.replicas.to_string(),
                MAX_REPLICAS: max.to_string(),
            }},
            "spec": {"replicas": to},
        });
        let name = objects::name(rs).to_string();
        let from = rs_replicas(rs);
        self.rss[i] = self
            .patch_rs(&self.rss[i], PatchType::Merge, &patch)
            .map_err(|e| format!("scaling ReplicaSet {name} to {to}: {e}"))?;
        if size_changes {
            let op = if to > from { "up" } else { "down" };
            let msg = format!("Scaled {op} replica set {name} to {to} from {from}");
            event(&self.stored, "Normal", "ScalingReplicaSet", &msg);
        }
        Ok(size_changes)
    }

    /// `isScalingEvent`.
    fn is_scaling_event(&mut self) -> Result<bool, String> {
        let (new, old) = self.new_and_old(false)?;
        let all = self.active(Self::with_new(&old, new));
        Ok(all.iter().any(|&i| {
            annotation(&self.rss[i], DESIRED_REPLICAS)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|desired| desired != self.spec.replicas)
        }))
    }

    /// `sync`: scaling (and, when paused, cleanup) without rollout progress.
    fn sync_scale(&mut self) -> Result<(), String> {
        let (new, old) = self.new_and_old(false)?;
        self.scale(new, &old)?;
        if self.spec.paused {
            self.cleanup(&old)?;
        }
        let all = Self::with_new(&old, new);
        self.status = self.calculate_status(&all, new);
        Ok(())
    }

    /// `syncStatusOnly`.
    fn sync_status_only(&mut self) -> Result<(), String> {
        let (new, old) = self.new_and_old(false)?;
        let all = Self::with_new(&old, new);
        self.status = self.calculate_status(&all, new);
        Ok(())
    }

    /// `FindActiveOrLatest`.
    fn find_active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        if new.is_none() && old.is_empty() {
            return None;
        }
        let mut old_sorted = old.to_vec();
        old_sorted.sort_by(|&a, &b| by_creation(&self.rss[b], &self.rss[a]));
        let active = self.active(Self::with_new(&old_sorted, new));
        match active.len() {
            0 => new.or_else(|| old_sorted.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `scale`: proportional scaling on scaling events and while paused.
    fn scale(&mut self, new: Option<usize>, old: &[usize]) -> Result<(), String> {
        if let Some(i) = self.find_active_or_latest(new, old) {
            if rs_replicas(&self.rss[i]) != self.spec.replicas {
                self.scale_rs(i, self.spec.replicas)?;
            }
            return Ok(());
        }
        if new.is_some_and(|i| is_saturated(&self.spec, &self.rss[i])) {
            for i in self.active(old.iter().copied()) {
                self.scale_rs(i, 0)?;
            }
            return Ok(());
        }
        if !self.spec.is_rolling_update() {
            return Ok(());
        }
        let mut all = self.active(Self::with_new(old, new));
        let all_replicas = self.sum(&all, rs_replicas);
        let allowed = if self.spec.replicas > 0 {
            self.spec.replicas + self.spec.max_surge()
        } else {
            0
        };
        let to_add = allowed - all_replicas;
        if to_add > 0 {
            all.sort_by(|&a, &b| by_size_newer(&self.rss[a], &self.rss[b]));
        } else if to_add < 0 {
            all.sort_by(|&a, &b| by_size_older(&self.rss[a], &self.rss[b]));
        }
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for &i in &all {
            let rs = &self.rss[i];
            if to_add != 0 {
                let p = proportion(&self.spec, self.status.replicas, rs, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        for (k, &i) in all.iter().enumerate() {
            if k == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_rs(i, sizes[k])?;
        }
        Ok(())
    }

    /// `cleanupDeployment`: deletes the oldest ReplicaSets beyond `revisionHistoryLimit`
    /// that have no replicas.
    fn cleanup(&mut self, old: &[usize]) -> Result<(), String> {
        let Some(limit) = self
            .spec
            .revision_history_limit
            .filter(|_| self.spec.has_revision_history_limit())
        else {
            return Ok(());
        };
        let mut cleanable: Vec<usize> = old
            .iter()
            .copied()
            .filter(|&i| !objects::is_deleting(&self.rss[i]))
            .collect();
        let diff = cleanable.len() as i64 - limit;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|&a, &b| by_revision(&self.rss[a], &self.rss[b]));
        for &i in cleanable.iter().take(usize::try_from(diff).unwrap_or(0)) {
            let rs = &self.rss[i];
            if rs_status(rs, "replicas") != 0
                || rs_replicas(rs) != 0
                || objects::generation(rs) > rs_status(rs, "observedGeneration")
                || objects::is_deleting(rs)
            {
                continue;
            }
            let options = DeleteOptions {
                uid: Some(objects::uid(rs).to_string()).filter(|u| !u.is_empty()),
                ..Default::default()
            };
            match cluster::delete_with(
                "apps/v1",
                "ReplicaSet",
                Some(&self.ns),
                objects::name(rs),
                &options,
            ) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(format!("deleting ReplicaSet {}: {e}", objects::name(rs))),
            }
        }
        Ok(())
    }

    /// `calculateStatus`.
    fn calculate_status(&self, all: &[usize], new: Option<usize>) -> Status {
        let available = self.sum(all, |rs| rs_status(rs, "availableReplicas"));
        let total = self.sum(all, rs_replicas);
        let mut status = Status {
            observed_generation: self.generation,
            replicas: self.sum(all, |rs| rs_status(rs, "replicas")),
            updated_replicas: new.map_or(0, |i| rs_status(&self.rss[i], "replicas")),
            ready_replicas: self.sum(all, |rs| rs_status(rs, "readyReplicas")),
            available_replicas: available,
            unavailable_replicas: (total - available).max(0),
            collision_count: self.status.collision_count,
            conditions: self.status.conditions.clone(),
        };
        if available >= self.spec.replicas - self.spec.max_unavailable() {
            status.set_condition(self.condition(
                AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".into(),
            ));
        } else {
            status.set_condition(self.condition(
                AVAILABLE,
                "False",
                MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
            ));
        }
        status
    }

    /// `syncRolloutStatus`: the status with the `Progressing` condition estimated, and a
    /// requeue for the progress deadline.
    fn sync_rollout_status(&mut self, all: &[usize], new: Option<usize>) {
        let mut status = self.calculate_status(all, new);
        let has_deadline = self.spec.has_progress_deadline();
        if !has_deadline {
            status.remove_condition(PROGRESSING);
        }
        let current = self.status.condition(PROGRESSING).cloned();
        let complete_already = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason == NEW_RS_AVAILABLE);
        let new_name = new.map(|i| objects::name(&self.rss[i]).to_string());
        if has_deadline && !complete_already {
            if deployment_complete(&self.spec, self.generation, &status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
                    None => format!("Deployment {:?} has successfully progressed.", self.name()),
                };
                status.set_condition(self.condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg));
            } else if deployment_progressing(&self.status, &status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet {n:?} is progressing."),
                    None => format!("Deployment {:?} is progressing.", self.name()),
                };
                let mut c = self.condition(PROGRESSING, "True", REPLICA_SET_UPDATED, msg);
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    status.remove_condition(PROGRESSING);
                }
                status.set_condition(c);
            } else if deployment_timed_out(&self.spec, &status, self.now) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                    None => format!("Deployment {:?} has timed out progressing.", self.name()),
                };
                status.set_condition(self.condition(PROGRESSING, "False", TIMED_OUT, msg));
            }
        }
        match self.replica_failure(all, new) {
            Some(c) => status.set_condition(c),
            None => status.remove_condition(REPLICA_FAILURE),
        }
        self.requeue_stuck(&status);
        self.status = status;
    }

    /// `getReplicaFailures`: the new ReplicaSet's `ReplicaFailure` condition, else the
    /// first old one's.
    fn replica_failure(&self, all: &[usize], new: Option<usize>) -> Option<Condition> {
        let failure = |rs: &Value| {
            rs.pointer("/status/conditions")
                .and_then(Value::as_array)?
                .iter()
                .find(|c| objects::str_at(c, "/type") == REPLICA_FAILURE)
                .map(|c| {
                    let t = objects::str_at(c, "/lastTransitionTime").to_string();
                    Condition {
                        kind: REPLICA_FAILURE.into(),
                        status: objects::str_at(c, "/status").into(),
                        reason: objects::str_at(c, "/reason").into(),
                        message: objects::str_at(c, "/message").into(),
                        last_update_time: t.clone(),
                        last_transition_time: t,
                    }
                })
        };
        new.and_then(|i| failure(&self.rss[i]))
            .or_else(|| all.iter().find_map(|&i| failure(&self.rss[i])))
    }

    /// `requeueStuckDeployment`: look again when the progress deadline expires.
    fn requeue_stuck(&mut self, status: &Status) {
        if !self.spec.has_progress_deadline() {
            return;
        }
        let Some(cond) = status.condition(PROGRESSING) else {
            return;
        };
        if deployment_complete(&self.spec, self.generation, status)
            || cond.reason == TIMED_OUT
            || cond.reason == NEW_RS_AVAILABLE
        {
            return;
        }
        let Some(from) = cluster::parse_rfc3339(&cond.last_update_time) else {
            return;
        };
        let deadline = self.spec.progress_deadline_seconds.unwrap_or(0).max(0) as u64;
        let at = from + deadline * 1000;
        let after = Duration::from_millis(at.saturating_sub(self.now) + 1000);
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    /// `rolloutRolling`.
    fn rollout_rolling(&mut self) -> Result<(), String> {
        let (new, old) = self.new_and_old(true)?;
        let new = new.ok_or_else(|| format!("{}: no new ReplicaSet", self.describe()))?;
        let all = Self::with_new(&old, Some(new));

        if self.reconcile_new_replica_set(&all, new)? {
            self.sync_rollout_status(&all, Some(new));
            return Ok(());
        }
        let old_active = self.active(old.iter().copied());
        if self.reconcile_old_replica_sets(&all, &old_active, new) {
            self.sync_rollout_status(&all, Some(new));
            return Ok(());
        }
        if deployment_complete(&self.spec, self.generation, &self.status) {
            self.cleanup(&old)?;
        }
        self.sync_rollout_status(&all, Some(new));
        Ok(())
    }

    /// `reconcileNewReplicaSet`: scale the new ReplicaSet up within `maxSurge`.
    fn reconcile_new_replica_set(&mut self, all: &[usize], new: usize) -> Result<bool, String> {
        let replicas = rs_replicas(&self.rss[new]);
        if replicas == self.spec.replicas {
            return Ok(false);
        }
        if replicas > self.spec.replicas {
            return self.scale_rs(new, self.spec.replicas);
        }
        let count = self
            .spec
            .new_rs_new_replicas(self.sum(all, rs_replicas), replicas);
        self.scale_rs(new, count)
    }

    /// `reconcileOldReplicaSets`: scale old ReplicaSets down within `maxUnavailable`.
    /// Failures are logged and end the step, as in Kubernetes.
    fn reconcile_old_replica_sets(&mut self, all: &[usize], old: &[usize], new: usize) -> bool {
        if self.sum(old, rs_replicas) == 0 {
            return false;
        }
        let all_pods = self.sum(all, rs_replicas);
        let min_available = self.spec.replicas - self.spec.max_unavailable();
        let new_unavailable =
            rs_replicas(&self.rss[new]) - rs_status(&self.rss[new], "availableReplicas");
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = match self.cleanup_unhealthy_replicas(old, max_scaled_down) {
            Ok(n) => n,
            Err(e) => {
                host::log(LogLevel::Warn, &format!("{}: {e}", self.describe()));
                return false;
            }
        };
        let all: Vec<usize> = Self::with_new(old, Some(new));
        let scaled = match self.scale_down_old_for_rolling(&all, old) {
            Ok(n) => n,
            Err(e) => {
                host::log(LogLevel::Warn, &format!("{}: {e}", self.describe()));
                return false;
            }
        };
        cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: scale old ReplicaSets down by their unavailable
    /// replicas first (oldest first), at most `max` in all.
    fn cleanup_unhealthy_replicas(&mut self, old: &[usize], max: i64) -> Result<i64, String> {
        let mut old = old.to_vec();
        old.sort_by(|&a, &b| by_creation(&self.rss[a], &self.rss[b]));
        let mut total = 0;
        for i in old {
            if total >= max {
                break;
            }
            let replicas = rs_replicas(&self.rss[i]);
            let available = rs_status(&self.rss[i], "availableReplicas");
            if replicas == 0 || replicas == available {
                continue;
            }
            let n = (max - total).min(replicas - available);
            let to = replicas - n;
            if to > replicas {
                return Err(format!(
                    "when cleaning up unhealthy replicas, got invalid request to scale down {} {replicas} -> {to}",
                    objects::name(&self.rss[i])
                ));
            }
            self.scale_rs(i, to)?;
            total += n;
        }
        Ok(total)
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: scale old ReplicaSets down (oldest first)
    /// while more than `replicas - maxUnavailable` are available.
    fn scale_down_old_for_rolling(&mut self, all: &[usize], old: &[usize]) -> Result<i64, String> {
        let min_available = self.spec.replicas - self.spec.max_unavailable();
        let available = self.sum(all, |rs| rs_status(rs, "availableReplicas"));
        if available <= min_available {
            return Ok(0);
        }
        let mut old = old.to_vec();
        old.sort_by(|&a, &b| by_creation(&self.rss[a], &self.rss[b]));
        let to_scale = available - min_available;
        let mut total = 0;
        for i in old {
            if total >= to_scale {
                break;
            }
            let replicas = rs_replicas(&self.rss[i]);
            if replicas == 0 {
                continue;
            }
            let n = replicas.min(to_scale - total);
            self.scale_rs(i, replicas - n)?;
            total += n;
        }
        Ok(total)
    }

    /// `rolloutRecreate`.
    fn rollout_recreate(&mut self) -> Result<(), String> {
        let (mut new, mut old) = self.new_and_old(false)?;
        let mut all = Self::with_new(&old, new);
        let mut scaled_down = false;
        for i in self.active(old.iter().copied()) {
            if self.scale_rs(i, 0)? {
                scaled_down = true;
            }
        }
        if scaled_down {
            self.sync_rollout_status(&all, new);
            return Ok(());
        }
        if self.old_pods_running(new, &old)? {
            self.sync_rollout_status(&all, new);
            return Ok(());
        }
        if new.is_none() {
            (new, old) = self.new_and_old(true)?;
            all = Self::with_new(&old, new);
        }
        if let Some(i) = new {
            self.scale_rs(i, self.spec.replicas)?;
        }
        if deployment_complete(&self.spec, self.generation, &self.status) {
            self.cleanup(&old)?;
        }
        self.sync_rollout_status(&all, new);
        Ok(())
    }

    /// `oldPodsRunning`: whether an old ReplicaSet reports Pods or an unfinished Pod of an
    /// old ReplicaSet still exists (being deleted or not). In the second case the
    /// Deployment is looked at again after [`RECREATE_POLL`]: Pod changes enqueue nothing.
    fn old_pods_running(&mut self, new: Option<usize>, old: &[usize]) -> Result<bool, String> {
        if self.sum(old, |rs| rs_status(rs, "replicas")) > 0 {
            return Ok(true);
        }
        if old.is_empty() {
            return Ok(false);
        }
        let selector = &self.d["spec"]["selector"];
        let pods = cluster::select(
            &Query::new("v1", "Pod")
                .namespace(Some(&self.ns))
                .labels(&objects::selector_string(selector)),
        )
        .map_err(|e| format!("listing Pods: {e}"))?;
        let old_uids: Vec<&str> = old.iter().map(|&i| objects::uid(&self.rss[i])).collect();
        let new_uid = new.map(|i| objects::uid(&self.rss[i]));
        let running = pods.iter().any(|p| {
            let Some(owner) = objects::controller_of(p)
                .and_then(|r| r.get("uid"))
                .and_then(Value::as_str)
            else {
                return false;
            };
            Some(owner) != new_uid && old_uids.contains(&owner) && !objects::pod_is_terminal(p)
        });
        if running {
            self.requeue = Some(self.requeue.map_or(RECREATE_POLL, |r| r.min(RECREATE_POLL)));
        }
        Ok(running)
    }
}
