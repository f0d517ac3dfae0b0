//! Kubernetes-style Events (`core/v1`), as client-go's event recorder writes them.

use std::cell::Cell;

use tugboat_plugin_sdk::cluster;
use tugboat_plugin_sdk::host::{self, LogLevel};
use tugboat_plugin_sdk::objects;
use tugboat_plugin_sdk::{Value, json};

thread_local! {
    /// Whether Events are recorded (config `events`, default true); set by `init`, once
    /// per instance (an instance is single-threaded).
    static ENABLED: Cell<bool> = const { Cell::new(true) };
    static SEQ: Cell<u64> = const { Cell::new(0) };
}

/// Turns Event recording on or off for this instance.
pub fn enable(on: bool) {
    ENABLED.with(|e| e.set(on));
}

/// Records an Event about `object` (of `api_version`/`kind`): named
/// `<object>.<hex nanoseconds>`, from `component`, count 1. Best effort: a failure is
/// logged, never returned.
pub fn record(
    component: &str,
    api_version: &str,
    kind: &str,
    object: &Value,
    type_: &str,
    reason: &str,
    message: &str,
) {
    if !ENABLED.with(Cell::get) {
        return;
    }
    let now = cluster::now_millis();
    let seq = SEQ.with(|s| {
        let v = s.get().wrapping_add(1);
        s.set(v);
        v
    });
    // Nanoseconds from the millisecond clock, made unique within the instance.
    let nanos = u128::from(now) * 1_000_000 + u128::from(seq % 1_000_000);
    let stamp = cluster::rfc3339(now);
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{nanos:x}", objects::name(object)),
            "namespace": objects::namespace(object).unwrap_or("default"),
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
            LogLevel::Warn,
            &format!(
                "recording event {reason} for {kind} {}: {e}",
                objects::name(object)
            ),
        );
    }
}
