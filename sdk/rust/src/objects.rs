//! Helpers for Kubernetes objects as JSON, shared by controllers: metadata access, owner
//! references, label selectors, pod conditions, and the hashes Kubernetes uses in names.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// `metadata.name` (empty when missing).
pub fn name(o: &Value) -> &str {
    str_at(o, "/metadata/name")
}

/// `metadata.namespace`, `None` for cluster-scoped objects.
pub fn namespace(o: &Value) -> Option<&str> {
    o.pointer("/metadata/namespace").and_then(Value::as_str)
}

/// `metadata.uid` (empty when missing).
pub fn uid(o: &Value) -> &str {
    str_at(o, "/metadata/uid")
}

/// The string at a JSON pointer, empty when missing or not a string.
pub fn str_at<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer.
pub fn i64_at(o: &Value, pointer: &str) -> Option<i64> {
    o.pointer(pointer).and_then(Value::as_i64)
}

/// `metadata.labels` as a map (empty when none).
pub fn labels(o: &Value) -> BTreeMap<String, String> {
    string_map(o.pointer("/metadata/labels"))
}

/// A JSON object of strings as a map.
pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// `metadata.generation` (0 when missing).
pub fn generation(o: &Value) -> i64 {
    i64_at(o, "/metadata/generation").unwrap_or(0)
}

/// An owner reference to `owner` (which must carry apiVersion, kind, name and uid);
/// `controller` and `blockOwnerDeletion` set as Kubernetes' controllers set them.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": str_at(owner, "/apiVersion"),
        "kind": str_at(owner, "/kind"),
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The object's owner references (empty when none).
pub fn owner_refs(o: &Value) -> &[Value] {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(o: &Value) -> Option<&Value> {
    owner_refs(o)
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// Whether `o` is controlled by the object with this uid.
pub fn is_controlled_by(o: &Value, owner_uid: &str) -> bool {
    controller_of(o).is_some_and(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
}

/// Whether a `LabelSelector` (`matchLabels` and `matchExpressions` with `In`, `NotIn`,
/// `Exists`, `DoesNotExist`) selects `labels`. An empty selector selects everything; a
/// missing (null) one selects nothing, as in Kubernetes.
pub fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = selector.as_object() else {
        return false;
    };
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if labels.get(k).map(String::as_str) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = str_at(e, "/key");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = labels.get(key).map(String::as_str);
            let ok = match str_at(e, "/operator") {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// A plain label map (like `Service.spec.selector`) as a selector: every pair must match;
/// an empty or missing map selects nothing (as Services do).
pub fn map_selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(m) = selector.as_object().filter(|m| !m.is_empty()) else {
        return false;
    };
    m.iter()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
}

/// A `LabelSelector` in the string syntax of list calls (`a=b,c in (d,e),!f`).
pub fn selector_string(selector: &Value) -> String {
    let mut terms = Vec::new();
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            terms.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = str_at(e, "/key");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match str_at(e, "/operator") {
                "In" => terms.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => terms.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => terms.push(key.to_string()),
                "DoesNotExist" => terms.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    terms.join(",")
}

/// The condition of `type` in `status.conditions`, if present.
pub fn condition<'a>(o: &'a Value, kind: &str) -> Option<&'a Value> {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// Whether the condition of `type` has status `True`.
pub fn condition_true(o: &Value, kind: &str) -> bool {
    condition(o, kind).is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

/// Sets (or replaces) a condition in `status.conditions`, keeping `lastTransitionTime`
/// when the status does not change. `now` is an RFC 3339 timestamp.
pub fn set_condition(
    o: &mut Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    if !o.get("status").is_some_and(Value::is_object) {
        o["status"] = Value::Object(Map::new());
    }
    let status_obj = &mut o["status"];
    if !status_obj.get("conditions").is_some_and(Value::is_array) {
        status_obj["conditions"] = json!([]);
    }
    let Some(conds) = status_obj["conditions"].as_array_mut() else {
        return;
    };
    let mut cond = json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    });
    if let Some(existing) = conds
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    {
        if existing.get("status").and_then(Value::as_str) == Some(status)
            && let Some(t) = existing.get("lastTransitionTime")
        {
            cond["lastTransitionTime"] = t.clone();
        }
        *existing = cond;
    } else {
        conds.push(cond);
    }
}

/// Whether a pod is in phase Succeeded or Failed.
pub fn pod_is_terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// Whether a pod counts for its controller: not terminal and not being deleted.
pub fn pod_is_active(pod: &Value) -> bool {
    !pod_is_terminal(pod) && !is_deleting(pod)
}

/// Whether a pod's `Ready` condition is `True`.
pub fn pod_is_ready(pod: &Value) -> bool {
    condition_true(pod, "Ready")
}

/// Whether a pod has been ready for at least `min_ready_seconds` at `now_millis`
/// (Kubernetes' "available").
pub fn pod_is_available(pod: &Value, min_ready_seconds: i64, now_millis: u64) -> bool {
    if !pod_is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let Some(since) = condition(pod, "Ready")
        .and_then(|c| c.get("lastTransitionTime"))
        .and_then(Value::as_str)
        .and_then(crate::cluster::parse_rfc3339)
    else {
        return false;
    };
    now_millis >= since + (min_ready_seconds as u64) * 1000
}

/// 32-bit FNV-1a, the hash Kubernetes uses for pod-template hashes.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Kubernetes' `rand.SafeEncodeString`: maps a decimal string to the alphabet
/// `bcdfghjklmnpqrstvwxz2456789` (no vowels, so no words), as used in
/// `pod-template-hash` labels and generated names.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// The `pod-template-hash` of a pod template (with an optional collision count): FNV-1a
/// of the template's JSON, safe-encoded — stable for equal templates, different for
/// changed ones (not byte-identical to Kubernetes', which hashes Go's struct dump).
pub fn pod_template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut bytes = canonical_json(template).into_bytes();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(c.to_string().as_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// JSON with object keys sorted, so that equal objects hash equally.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert!(selector_matches(&sel, &l(&[("app", "web"), ("tier", "a")])));
        assert!(!selector_matches(
            &sel,
            &l(&[("app", "web"), ("tier", "c")])
        ));
        assert!(!selector_matches(
            &sel,
            &l(&[("app", "web"), ("tier", "a"), ("canary", "1")])
        ));
        assert!(selector_matches(&json!({}), &l(&[])));
        assert!(!selector_matches(&Value::Null, &l(&[])));
        assert_eq!(selector_string(&sel), "app=web,tier in (a,b),!canary");
        assert!(map_selects(&json!({"app": "web"}), &l(&[("app", "web")])));
        assert!(!map_selects(&json!({}), &l(&[("app", "web")])));
    }

    #[test]
    fn hashes_are_stable_and_safe() {
        let t = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}, "metadata": {"labels": {"b": "1", "a": "2"}}});
        let t2 = json!({"metadata": {"labels": {"a": "2", "b": "1"}}, "spec": {"containers": [{"image": "x", "name": "a"}]}});
        assert_eq!(pod_template_hash(&t, None), pod_template_hash(&t2, None));
        assert_ne!(pod_template_hash(&t, None), pod_template_hash(&t, Some(1)));
        let h = pod_template_hash(&t, None);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
    }

    #[test]
    fn conditions_keep_transition_times() {
        let mut d = json!({});
        set_condition(
            &mut d,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "ok",
            "t1",
        );
        set_condition(
            &mut d,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "ok",
            "t2",
        );
        let c = condition(&d, "Available").unwrap();
        assert_eq!(c["lastTransitionTime"], "t1");
        assert_eq!(c["lastUpdateTime"], "t2");
        set_condition(&mut d, "Available", "False", "X", "no", "t3");
        assert_eq!(
            condition(&d, "Available").unwrap()["lastTransitionTime"],
            "t3"
        );
        assert!(!condition_true(&d, "Available"));
    }

    #[test]
    fn availability() {
        let pod = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        let t0 = crate::cluster::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert!(pod_is_available(&pod, 0, t0));
        assert!(!pod_is_available(&pod, 10, t0 + 5_000));
        assert!(pod_is_available(&pod, 10, t0 + 10_000));
        assert!(pod_is_active(&pod));
    }
}
