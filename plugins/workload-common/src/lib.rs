//! Helpers shared by the workload controllers (job, cronjob, daemonset, statefulset): owner
//! references, owned objects, pods from templates, events, small JSON accessors. A plain
//! library (no component exports), linked into each controller; `testkit` (feature) is their
//! unit tests' support.

pub mod events;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::cell::Cell;

use tugboat_plugin_sdk::cluster::{self, Query};
use tugboat_plugin_sdk::host::{self, HostError, LogLevel};
use tugboat_plugin_sdk::objects;
use tugboat_plugin_sdk::{Value, json};

/// A host error as the `Err` of a reconcile, with what was being done.
pub fn fail(what: impl std::fmt::Display, e: HostError) -> String {
    format!("{what}: {e}")
}

/// The controller owner reference to `owner`, of the given kind (cached objects may lack
/// `apiVersion`/`kind`, so they are not read from it).
pub fn owner_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": objects::name(owner),
        "uid": objects::uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The objects of a kind in `namespace` whose controller is the object with `uid`.
pub fn owned(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    uid: &str,
) -> Result<Vec<Value>, String> {
    if uid.is_empty() {
        return Err("the owner has no uid".into());
    }
    let items = cluster::select(
        &Query::new(api_version, kind)
            .namespace(namespace)
            .owner(uid),
    )
    .map_err(|e| fail(format_args!("listing {kind}s"), e))?;
    Ok(items
        .into_iter()
        .filter(|o| objects::is_controlled_by(o, uid))
        .collect())
}

/// A pod from a pod template (Kubernetes' `GetPodFromTemplate`): the template's labels,
/// annotations, finalizers and spec, the owner's controller reference, in `namespace`.
/// The caller names it (`name`) or lets the API server do it (`generateName`).
pub fn pod_from_template(template: &Value, namespace: &str, controller: &Value) -> Value {
    let mut metadata = json!({
        "namespace": namespace,
        "ownerReferences": [controller],
    });
    let tmeta = &template["metadata"];
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = tmeta.get(field).filter(|v| !v.is_null()) {
            metadata[field] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Sets `metadata.<map>.<key>` (labels or annotations), creating the map when missing.
pub fn set_meta_entry(o: &mut Value, map: &str, key: &str, value: &str) {
    if !o["metadata"].is_object() {
        o["metadata"] = json!({});
    }
    if !o["metadata"][map].is_object() {
        o["metadata"][map] = json!({});
    }
    o["metadata"][map][key] = Value::from(value);
}

/// An integer field, with a default when missing or null.
pub fn int_or(o: &Value, pointer: &str, default: i64) -> i64 {
    objects::i64_at(o, pointer).unwrap_or(default)
}

/// The creation timestamp in milliseconds (0 when missing).
pub fn created_millis(o: &Value) -> u64 {
    cluster::parse_rfc3339(objects::str_at(o, "/metadata/creationTimestamp")).unwrap_or(0)
}

/// Resolves an `IntOrString` (`3` or `"25%"`) against `total`, rounding percentages up
/// or down (`intstr.GetScaledValueFromIntOrPercent`).
pub fn int_or_percent(v: &Value, total: i64, round_up: bool) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("invalid value {n}: must be an integer")),
        Value::String(s) => {
            let Some(p) = s.strip_suffix('%') else {
                return Err(format!(
                    "invalid value for IntOrString: invalid value {s:?}"
                ));
            };
            let p: i64 = p
                .parse()
                .map_err(|_| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = p * total;
            Ok(if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            })
        }
        Value::Null => Ok(0),
        other => Err(format!("invalid value for IntOrString: {other}")),
    }
}

/// Pods in removal order (Kubernetes' `controller.ActivePods`): unassigned before
/// assigned, pending before unknown before running, not ready before ready, more restarts
/// first, newer before older.
pub fn removal_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    fn phase_rank(p: &Value) -> u8 {
        match objects::str_at(p, "/status/phase") {
            "Pending" | "" => 0,
            "Unknown" => 1,
            _ => 2,
        }
    }
    fn restarts(p: &Value) -> i64 {
        p.pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }
    let assigned = |p: &Value| !objects::str_at(p, "/spec/nodeName").is_empty();
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(objects::pod_is_ready(a).cmp(&objects::pod_is_ready(b)))
        .then(restarts(b).cmp(&restarts(a)))
        .then(created_millis(b).cmp(&created_millis(a)))
        .then(objects::name(a).cmp(objects::name(b)))
}

thread_local! {
    /// Whether events are recorded (config `events`, default true); set by `init`, once
    /// per instance (a component instance is single-threaded).
    static EVENTS: Cell<bool> = const { Cell::new(true) };
}

/// Reads the controller's config: `null`, or `{"events": bool}` (record Kubernetes-style
/// events, default true; false saves one write per pod created or deleted).
pub fn configure(config: &Value) -> Result<(), String> {
    let mut events = true;
    match config {
        Value::Null => {}
        Value::Object(fields) => {
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("events", Value::Bool(b)) => events = *b,
                    ("events", other) => {
                        return Err(format!("config.events must be a boolean, not {other}"));
                    }
                    (other, _) => return Err(format!("unknown config field {other:?}")),
                }
            }
        }
        other => return Err(format!("the config must be an object, not {other}")),
    }
    EVENTS.with(|e| e.set(events));
    Ok(())
}

thread_local! {
    static EVENT_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// Records a core/v1 Event about `object` (of `api_version`/`kind`), as client-go's
/// recorder does (`<name>.<hex timestamp>`, source component, count 1). Best effort: a
/// failure is logged, never returned.
pub fn record_event(
    component: &str,
    api_version: &str,
    kind: &str,
    object: &Value,
    type_: &str,
    reason: &str,
    message: &str,
) {
    if !EVENTS.with(Cell::get) {
        return;
    }
    let now = cluster::now_millis();
    let seq = EVENT_SEQ.with(|s| {
        let v = s.get().wrapping_add(1);
        s.set(v);
        v
    });
    // Nanoseconds from the millisecond clock, made unique within the instance.
    let nanos = u128::from(now) * 1_000_000 + u128::from(seq % 1_000_000);
    let stamp = cluster::rfc3339(now);
    let namespace = objects::namespace(object).unwrap_or("default");
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{nanos:x}", objects::name(object)),
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": api_version,
            "kind": kind,
            "name": objects::name(object),
            "namespace": objects::namespace(object),
            "uid": objects::uid(object),
            "resourceVersion": objects::str_at(object, "/metadata/resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    });
    if let Err(e) = host::create(&event) {
        host::log(
            LogLevel::Debug,
            &format!(
                "could not record event {reason} for {kind} {namespace}/{}: {e}",
                objects::name(object)
            ),
        );
    }
}

/// Whether a host error is a 404.
pub fn not_found(e: &HostError) -> bool {
    e.code == 404
}

/// Whether a host error is a 409 AlreadyExists (not a Conflict on update).
pub fn already_exists(e: &HostError) -> bool {
    e.code == 409 && e.reason == "AlreadyExists"
}
