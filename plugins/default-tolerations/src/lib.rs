//! Built-in admission plugin `default-tolerations` (Kubernetes' `DefaultTolerationSeconds`,
//! on by default): every new Pod tolerates `node.kubernetes.io/not-ready` and
//! `node.kubernetes.io/unreachable` (effect `NoExecute`) for 300 s unless it already
//! tolerates them, so that the node lifecycle controller evicts pods from a lost node after
//! five minutes. The seconds come from the config (`defaultNotReadyTolerationSeconds`,
//! `defaultUnreachableTolerationSeconds`).
use std::sync::atomic::{AtomicI64, Ordering};

use tugboat_plugin_sdk::prelude::*;

static NOT_READY_SECONDS: AtomicI64 = AtomicI64::new(300);
static UNREACHABLE_SECONDS: AtomicI64 = AtomicI64::new(300);

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

pub struct DefaultTolerations;

fn seconds(config: &Value, key: &str) -> Result<Option<i64>, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|s| *s >= 0)
            .map(Some)
            .ok_or_else(|| format!("config.{key} must be a non-negative integer, not {v}")),
    }
}

/// Whether `tolerations` already tolerate `key` with effect NoExecute (or every effect).
fn tolerates(tolerations: &[Value], key: &str) -> bool {
    tolerations.iter().any(|t| {
        let k = t.get("key").and_then(Value::as_str).unwrap_or("");
        let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
        let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
        (k == key || (k.is_empty() && op == "Exists"))
            && (effect.is_empty() || effect == "NoExecute")
    })
}

impl AdmissionPolicy for DefaultTolerations {
    fn init(config: &Value) -> Result<(), String> {
        if let Some(s) = seconds(config, "defaultNotReadyTolerationSeconds")? {
            NOT_READY_SECONDS.store(s, Ordering::Relaxed);
        }
        if let Some(s) = seconds(config, "defaultUnreachableTolerationSeconds")? {
            UNREACHABLE_SECONDS.store(s, Ordering::Relaxed);
        }
        Ok(())
    }

    fn admit(req: &AdmissionRequest) -> AdmissionResponse {
        let Some(pod) = req.object.as_ref().filter(|_| req.is_kind("", "Pod")) else {
            return AdmissionResponse::allow();
        };
        if req.operation != Operation::Create || req.sub_resource.is_some() {
            return AdmissionResponse::allow();
        }
        let existing = pod
            .pointer("/spec/tolerations")
            .and_then(Value::as_array)
            .cloned();
        let have = existing.clone().unwrap_or_default();
        let mut add = Vec::new();
        for (key, secs) in [
            (NOT_READY, NOT_READY_SECONDS.load(Ordering::Relaxed)),
            (UNREACHABLE, UNREACHABLE_SECONDS.load(Ordering::Relaxed)),
        ] {
            if !tolerates(&have, key) {
                add.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}));
            }
        }
        if add.is_empty() {
            return AdmissionResponse::allow();
        }
        let ops: Vec<Value> = if existing.is_some() {
            add.into_iter()
                .map(|t| json!({"op": "add", "path": "/spec/tolerations/-", "value": t}))
                .collect()
        } else {
            vec![json!({"op": "add", "path": "/spec/tolerations", "value": add})]
        };
        AdmissionResponse::patch(Value::Array(ops))
    }
}

export_admission!(DefaultTolerations);

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(tolerations: Option<Value>) -> AdmissionRequest {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "a", "image": "x"}]}});
        if let Some(t) = tolerations {
            p["spec"]["tolerations"] = t;
        }
        AdmissionRequest::create(p)
    }

    fn patched(req: &AdmissionRequest) -> Value {
        let r = DefaultTolerations::admit(req);
        assert!(r.allowed);
        let mut obj = req.object.clone().unwrap();
        // The patches here only `add` at /spec/tolerations or append to it.
        for op in r.patch.iter().flat_map(|p| p.as_array().unwrap().clone()) {
            assert_eq!(op["op"], "add");
            match op["path"].as_str().unwrap() {
                "/spec/tolerations" => obj["spec"]["tolerations"] = op["value"].clone(),
                "/spec/tolerations/-" => obj["spec"]["tolerations"]
                    .as_array_mut()
                    .unwrap()
                    .push(op["value"].clone()),
                other => panic!("unexpected path {other}"),
            }
        }
        obj
    }

    #[test]
    fn adds_both_tolerations_to_a_plain_pod() {
        let obj = patched(&pod(None));
        let t = obj["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["key"], NOT_READY);
        assert_eq!(t[1]["key"], UNREACHABLE);
        assert_eq!(t[1]["tolerationSeconds"], 300);
        assert_eq!(t[1]["effect"], "NoExecute");
    }

    #[test]
    fn keeps_what_the_pod_says() {
        let obj = patched(&pod(Some(json!([
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
            {"key": "gpu", "operator": "Exists"}
        ]))));
        let t = obj["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0]["tolerationSeconds"], 5);
        assert_eq!(t[2]["key"], NOT_READY);
        // A pod tolerating everything gets nothing.
        let r = DefaultTolerations::admit(&pod(Some(json!([{"operator": "Exists"}]))));
        assert!(r.patch.is_none());
    }

    #[test]
    fn config_is_checked() {
        assert!(
            DefaultTolerations::init(&json!({"defaultNotReadyTolerationSeconds": -1})).is_err()
        );
        assert!(
            DefaultTolerations::init(&json!({"defaultNotReadyTolerationSeconds": "x"})).is_err()
        );
    }
}
