//! Kubernetes' `pkg/controller/deployment/util`: the spec as read by the controller,
//! `maxSurge`/`maxUnavailable`, revisions and the annotations copied to ReplicaSets,
//! status and conditions, and the orderings of ReplicaSets. Pure functions over JSON.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use tugboat_plugin_sdk::cluster;
use tugboat_plugin_sdk::objects;
use tugboat_plugin_sdk::{Value, json};

/// The revision of a ReplicaSet (and of its Deployment): its rollout sequence number.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The revisions a ReplicaSet served before (it is reused by rollbacks).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when it last scaled the ReplicaSet.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the Deployment when it last scaled the ReplicaSet.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label (and name suffix) telling the ReplicaSets of a Deployment apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The longest `revision-history` annotation kept.
pub const MAX_REV_HISTORY_CHARS: usize = 2000;

/// Annotations never copied from a Deployment to its ReplicaSets (nor back by rollbacks).
pub const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

// Condition types and reasons.
pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const NEW_REPLICA_SET: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// An `IntOrString` of `maxSurge`/`maxUnavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    /// Reads an `IntOrString`; a missing (or null) value is `default`.
    pub fn parse(v: Option<&Value>, default: IntOrPercent) -> Result<IntOrPercent, String> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(IntOrPercent::Int)
                .ok_or_else(|| format!("invalid value for IntOrString: {n}")),
            Some(Value::String(s)) => s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .map(IntOrPercent::Percent)
                .ok_or_else(|| {
                    format!("invalid value for IntOrString: invalid type: string is not a percentage: {s:?}")
                }),
            Some(other) => Err(format!("invalid value for IntOrString: {other}")),
        }
    }

    /// `GetScaledValueFromIntOrPercent`: a percentage of `total`, rounded up or down.
    pub fn scaled(self, total: i64, round_up: bool) -> i64 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let x = total * p;
                if round_up {
                    x.div_euclid(100) + i64::from(x.rem_euclid(100) != 0)
                } else {
                    x.div_euclid(100)
                }
            }
        }
    }
}

/// `spec.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Recreate,
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
}

/// What the controller reads of a Deployment's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub replicas: i64,
    pub strategy: Strategy,
    pub min_ready_seconds: i64,
    pub revision_history_limit: Option<i64>,
    pub progress_deadline_seconds: Option<i64>,
    pub paused: bool,
}

impl Spec {
    pub fn parse(d: &Value) -> Result<Spec, String> {
        let strategy = match objects::str_at(d, "/spec/strategy/type") {
            "Recreate" => Strategy::Recreate,
            "RollingUpdate" | "" => {
                let ru = d.pointer("/spec/strategy/rollingUpdate");
                let zero = IntOrPercent::Int(0);
                Strategy::RollingUpdate {
                    max_surge: IntOrPercent::parse(ru.and_then(|r| r.get("maxSurge")), zero)
                        .map_err(|e| format!("spec.strategy.rollingUpdate.maxSurge: {e}"))?,
                    max_unavailable: IntOrPercent::parse(
                        ru.and_then(|r| r.get("maxUnavailable")),
                        zero,
                    )
                    .map_err(|e| format!("spec.strategy.rollingUpdate.maxUnavailable: {e}"))?,
                }
            }
            other => {
                return Err(format!(
                    "deployment strategy type {other:?} isn't supported"
                ));
            }
        };
        Ok(Spec {
            replicas: objects::i64_at(d, "/spec/replicas").unwrap_or(1),
            strategy,
            min_ready_seconds: objects::i64_at(d, "/spec/minReadySeconds").unwrap_or(0),
            revision_history_limit: objects::i64_at(d, "/spec/revisionHistoryLimit"),
            progress_deadline_seconds: objects::i64_at(d, "/spec/progressDeadlineSeconds"),
            paused: d
                .pointer("/spec/paused")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    pub fn is_rolling_update(&self) -> bool {
        matches!(self.strategy, Strategy::RollingUpdate { .. })
    }

    /// `ResolveFenceposts`: (maxSurge rounded up, maxUnavailable rounded down), with
    /// maxUnavailable 1 when both resolve to 0.
    pub fn fenceposts(&self) -> (i64, i64) {
        let Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } = self.strategy
        else {
            return (0, 0);
        };
        let surge = max_surge.scaled(self.replicas, true);
        let mut unavailable = max_unavailable.scaled(self.replicas, false);
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        (surge, unavailable)
    }

    /// `MaxSurge`: 0 unless rolling.
    pub fn max_surge(&self) -> i64 {
        if !self.is_rolling_update() {
            return 0;
        }
        self.fenceposts().0
    }

    /// `MaxUnavailable`: 0 unless rolling or when scaled to 0; at most `replicas`.
    pub fn max_unavailable(&self) -> i64 {
        if !self.is_rolling_update() || self.replicas == 0 {
            return 0;
        }
        self.fenceposts().1.min(self.replicas)
    }

    /// `HasProgressDeadline`: set and not `MaxInt32`.
    pub fn has_progress_deadline(&self) -> bool {
        self.progress_deadline_seconds
            .is_some_and(|s| s != i64::from(i32::MAX))
    }

    /// `HasRevisionHistoryLimit`: set and not `MaxInt32`.
    pub fn has_revision_history_limit(&self) -> bool {
        self.revision_history_limit
            .is_some_and(|s| s != i64::from(i32::MAX))
    }

    /// `NewRSNewReplicas`: how many replicas the new ReplicaSet should have, given the sum
    /// of `spec.replicas` over all ReplicaSets and its own.
    pub fn new_rs_new_replicas(&self, all_replicas: i64, new_replicas: i64) -> i64 {
        match self.strategy {
            Strategy::RollingUpdate { max_surge, .. } => {
                let max_total = self.replicas + max_surge.scaled(self.replicas, true);
                if all_replicas >= max_total {
                    return new_replicas;
                }
                let up = (max_total - all_replicas).min(self.replicas - new_replicas);
                new_replicas + up
            }
            Strategy::Recreate => self.replicas,
        }
    }
}

/// `spec.replicas` of a ReplicaSet (the API server defaults it to 1).
pub fn rs_replicas(rs: &Value) -> i64 {
    objects::i64_at(rs, "/spec/replicas").unwrap_or(1)
}

/// A count in a ReplicaSet's status (0 when missing).
pub fn rs_status(rs: &Value, field: &str) -> i64 {
    objects::i64_at(rs, &format!("/status/{field}")).unwrap_or(0)
}

/// The annotations of an object.
pub fn annotations(o: &Value) -> BTreeMap<String, String> {
    objects::string_map(o.pointer("/metadata/annotations"))
}

/// One annotation.
pub fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Sets one annotation, creating `metadata.annotations` when needed.
pub fn set_annotation(o: &mut Value, key: &str, value: &str) {
    if !o["metadata"].is_object() {
        o["metadata"] = json!({});
    }
    if !o["metadata"]["annotations"].is_object() {
        o["metadata"]["annotations"] = json!({});
    }
    o["metadata"]["annotations"][key] = json!(value);
}

/// `Revision`: the revision annotation (0 when missing), an error when unparsable.
pub fn revision(o: &Value) -> Result<i64, String> {
    match annotation(o, REVISION) {
        None => Ok(0),
        Some(v) => v
            .parse::<i64>()
            .map_err(|e| format!("invalid revision {v:?}: {e}")),
    }
}

/// `MaxRevision`: the highest parsable revision.
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a Value>) -> i64 {
    rss.into_iter()
        .filter_map(|rs| revision(rs).ok())
        .max()
        .unwrap_or(0)
        .max(0)
}

/// `copyDeploymentAnnotationsToReplicaSet`.
pub fn copy_deployment_annotations(d: &Value, rs: &mut Value) -> bool {
    let have = annotations(rs);
    let mut changed = false;
    for (k, v) in annotations(d) {
        if ANNOTATIONS_TO_SKIP.contains(&k.as_str()) || have.get(&k) == Some(&v) {
            continue;
        }
        set_annotation(rs, &k, &v);
        changed = true;
    }
    changed
}

/// `SetReplicasAnnotations`.
pub fn set_replicas_annotations(rs: &mut Value, desired: i64, max: i64) -> bool {
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if annotation(rs, k) != Some(v.as_str()) {
            set_annotation(rs, k, &v);
            changed = true;
        }
    }
    changed
}

/// `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &Value, desired: i64, max: i64) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, raises the
/// revision to `new_revision` (recording the old one in `revision-history`), and for a
/// ReplicaSet about to be created sets the replicas annotations. Whether anything changed.
pub fn set_new_rs_annotations(
    d: &Value,
    spec: &Spec,
    rs: &mut Value,
    new_revision: &str,
    exists: bool,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let old_revision = annotation(rs, REVISION).map(str::to_string);
    let old_int = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    let Ok(new_int) = new_revision.parse::<i64>() else {
        return false;
    };
    if old_int < new_int {
        set_annotation(rs, REVISION, new_revision);
        changed = true;
    }
    if let Some(old_revision) = old_revision
        && old_int < new_int
    {
        let history = annotation(rs, REVISION_HISTORY).unwrap_or("").to_string();
        let old_revisions: Vec<&str> = history.split(',').collect();
        if old_revisions[0].is_empty() {
            set_annotation(rs, REVISION_HISTORY, &old_revision);
        } else {
            let mut total = history.len() + old_revision.len() + 1;
            let mut start = 0;
            while total > MAX_REV_HISTORY_CHARS && start < old_revisions.len() {
                total -= old_revisions[start].len() + 1;
                start += 1;
            }
            if total <= MAX_REV_HISTORY_CHARS {
                let mut kept: Vec<&str> = old_revisions[start..].to_vec();
                kept.push(&old_revision);
                let joined = kept.join(",");
                set_annotation(rs, REVISION_HISTORY, &joined);
            }
        }
    }
    if !exists && set_replicas_annotations(rs, spec.replicas, spec.replicas + spec.max_surge()) {
        changed = true;
    }
    changed
}

/// JSON with nulls, empty maps and empty lists dropped from objects, so that equal
/// templates compare equal however their empty fields were written (Kubernetes'
/// semantic equality treats nil and empty alike).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter_map(|(k, v)| {
                    let n = normalized(v);
                    let empty = match &n {
                        Value::Null => true,
                        Value::Object(o) => o.is_empty(),
                        Value::Array(a) => a.is_empty(),
                        _ => false,
                    };
                    (!empty).then(|| (k.clone(), n))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// `EqualIgnoreHash`: whether two Pod templates are equal but for the
/// `pod-template-hash` label.
pub fn equal_ignore_hash(t1: &Value, t2: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(labels) = t
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove(POD_TEMPLATE_HASH);
        }
        normalized(&t)
    };
    strip(t1) == strip(t2)
}

/// `ReplicaSetsByCreationTimestamp`: older first, then by name.
pub fn by_creation(a: &Value, b: &Value) -> Ordering {
    let t = |o: &Value| cluster::parse_rfc3339(objects::str_at(o, "/metadata/creationTimestamp"));
    t(a).cmp(&t(b))
        .then_with(|| objects::name(a).cmp(objects::name(b)))
}

/// `ReplicaSetsBySizeNewer`: larger first, newer first among equals.
pub fn by_size_newer(a: &Value, b: &Value) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// `ReplicaSetsBySizeOlder`: larger first, older first among equals.
pub fn by_size_older(a: &Value, b: &Value) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// `ReplicaSetsByRevision`: lower revision first, by creation when equal or unparsable.
pub fn by_revision(a: &Value, b: &Value) -> Ordering {
    match (revision(a), revision(b)) {
        (Ok(x), Ok(y)) if x != y => x.cmp(&y),
        _ => by_creation(a, b),
    }
}

/// A Deployment condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_update_time: String,
    pub last_transition_time: String,
}

impl Condition {
    /// `NewDeploymentCondition` at `now` (RFC 3339).
    pub fn new(kind: &str, status: &str, reason: &str, message: &str, now: &str) -> Condition {
        Condition {
            kind: kind.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_update_time: now.into(),
            last_transition_time: now.into(),
        }
    }

    fn parse(v: &Value) -> Condition {
        let s = |p: &str| objects::str_at(v, p).to_string();
        Condition {
            kind: s("/type"),
            status: s("/status"),
            reason: s("/reason"),
            message: s("/message"),
            last_update_time: s("/lastUpdateTime"),
            last_transition_time: s("/lastTransitionTime"),
        }
    }

    fn to_json(&self) -> Value {
        let mut c = json!({"type": self.kind, "status": self.status});
        for (k, v) in [
            ("lastUpdateTime", &self.last_update_time),
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

/// A Deployment's status, compared semantically (missing counts are 0).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub observed_generation: i64,
    pub replicas: i64,
    pub updated_replicas: i64,
    pub ready_replicas: i64,
    pub available_replicas: i64,
    pub unavailable_replicas: i64,
    pub collision_count: Option<i64>,
    pub conditions: Vec<Condition>,
}

impl Status {
    pub fn parse(d: &Value) -> Status {
        let n = |f: &str| objects::i64_at(d, &format!("/status/{f}")).unwrap_or(0);
        Status {
            observed_generation: n("observedGeneration"),
            replicas: n("replicas"),
            updated_replicas: n("updatedReplicas"),
            ready_replicas: n("readyReplicas"),
            available_replicas: n("availableReplicas"),
            unavailable_replicas: n("unavailableReplicas"),
            collision_count: objects::i64_at(d, "/status/collisionCount"),
            conditions: d
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(Condition::parse)
                .collect(),
        }
    }

    /// The status as Kubernetes writes it (zero counts omitted).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("observedGeneration", self.observed_generation),
            ("replicas", self.replicas),
            ("updatedReplicas", self.updated_replicas),
            ("readyReplicas", self.ready_replicas),
            ("availableReplicas", self.available_replicas),
            ("unavailableReplicas", self.unavailable_replicas),
        ] {
            if v != 0 {
                m.insert(k.into(), json!(v));
            }
        }
        if !self.conditions.is_empty() {
            m.insert(
                "conditions".into(),
                Value::Array(self.conditions.iter().map(Condition::to_json).collect()),
            );
        }
        if let Some(c) = self.collision_count {
            m.insert("collisionCount".into(), json!(c));
        }
        Value::Object(m)
    }

    /// `GetDeploymentCondition`.
    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// `SetDeploymentCondition`: nothing changes when a condition of the same status and
    /// reason exists; `lastTransitionTime` is kept when the status stays; the condition
    /// moves to the end.
    pub fn set_condition(&mut self, mut cond: Condition) {
        if let Some(current) = self.condition(&cond.kind) {
            if current.status == cond.status && current.reason == cond.reason {
                return;
            }
            if current.status == cond.status {
                cond.last_transition_time = current.last_transition_time.clone();
            }
        }
        self.remove_condition(&cond.kind.clone());
        self.conditions.push(cond);
    }

    /// `RemoveDeploymentCondition`.
    pub fn remove_condition(&mut self, kind: &str) {
        self.conditions.retain(|c| c.kind != kind);
    }
}

/// `DeploymentComplete`: every desired replica updated and available, no old ones, and
/// the latest generation observed.
pub fn deployment_complete(spec: &Spec, generation: i64, status: &Status) -> bool {
    status.updated_replicas == spec.replicas
        && status.replicas == spec.replicas
        && status.available_replicas == spec.replicas
        && status.observed_generation >= generation
}

/// `DeploymentProgressing`: more updated, ready or available replicas, or fewer old ones.
pub fn deployment_progressing(old: &Status, new: &Status) -> bool {
    let old_old = old.replicas - old.updated_replicas;
    let new_old = new.replicas - new.updated_replicas;
    new.updated_replicas > old.updated_replicas
        || new_old < old_old
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

/// `DeploymentTimedOut`: the `Progressing` condition of `status` was last updated more
/// than `progressDeadlineSeconds` before `now` (or already says so).
pub fn deployment_timed_out(spec: &Spec, status: &Status, now: u64) -> bool {
    let Some(deadline) = spec
        .progress_deadline_seconds
        .filter(|_| spec.has_progress_deadline())
    else {
        return false;
    };
    let Some(cond) = status.condition(PROGRESSING) else {
        return false;
    };
    match cond.reason.as_str() {
        NEW_RS_AVAILABLE => false,
        TIMED_OUT => true,
        _ => match cluster::parse_rfc3339(&cond.last_update_time) {
            Some(from) => (from as i64) + deadline * 1000 < now as i64,
            None => false,
        },
    }
}

/// `IsSaturated`: the ReplicaSet has, wants and makes available all desired replicas.
pub fn is_saturated(spec: &Spec, rs: &Value) -> bool {
    let Some(desired) = annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse::<i64>().ok()) else {
        return false;
    };
    rs_replicas(rs) == spec.replicas
        && desired == spec.replicas
        && rs_status(rs, "availableReplicas") == spec.replicas
}

/// `getReplicaSetFraction`: the change of size that keeps this ReplicaSet's proportion
/// of the Deployment after a scaling event.
pub fn replica_set_fraction(spec: &Spec, status_replicas: i64, rs: &Value) -> i64 {
    let replicas = rs_replicas(rs);
    if spec.replicas == 0 {
        return -replicas;
    }
    let deployment_replicas = spec.replicas + spec.max_surge();
    let annotated = annotation(rs, MAX_REPLICAS)
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(status_replicas);
    if annotated == 0 {
        return 0;
    }
    let size = (replicas * deployment_replicas) as f64 / annotated as f64;
    size.round() as i64 - replicas
}

/// `GetProportion`: this ReplicaSet's share of `to_add`, of which `added` is already
/// handed out.
pub fn proportion(spec: &Spec, status_replicas: i64, rs: &Value, to_add: i64, added: i64) -> i64 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(spec, status_replicas, rs);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}
