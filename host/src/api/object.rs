//! Small helpers over objects held as JSON.

use serde_json::{Map, Value, json};

use super::status::{ApiError, ApiResult};
use crate::store::KeyValue;

/// `metadata.<field>` as a string, or "".
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata`, created if missing (and replaced if not an object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Some(o) = obj.as_object_mut() else {
        unreachable!("made an object above")
    };
    let m = o.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    match m.as_object_mut() {
        Some(m) => m,
        None => unreachable!("made an object above"),
    }
}

pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    meta_mut(obj).insert(field.to_string(), value);
}

pub fn remove_meta(obj: &mut Value, field: &str) -> Option<Value> {
    meta_mut(obj).remove(field)
}

/// The labels of an object (empty if none).
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// RFC 3339 of now plus `secs`.
pub fn rfc3339_in(secs: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Decode a stored object and stamp its resourceVersion from the store's revision.
pub fn decode_stored(kv: &KeyValue) -> ApiResult<Value> {
    decode_at(&kv.value, kv.mod_revision)
}

/// Decode stored bytes and stamp `rev` as the resourceVersion.
pub fn decode_at(bytes: &[u8], rev: u64) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("stored object is not valid JSON: {e}")))?;
    set_meta(&mut v, "resourceVersion", Value::String(rev.to_string()));
    Ok(v)
}

/// Encode an object for the store (the resourceVersion is not stored: the store's
/// revision is the truth).
pub fn encode_for_store(obj: &Value) -> ApiResult<Vec<u8>> {
    let mut o = obj.clone();
    remove_meta(&mut o, "resourceVersion");
    serde_json::to_vec(&o).map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

/// The object with `metadata` and (optionally) `status` removed: what `generation` tracks.
pub fn spec_part(obj: &Value, ignore_status: bool) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if ignore_status {
            m.remove("status");
        }
    }
    o
}

/// The string form of a `metav1.LabelSelector` (as `Scale.status.selector` carries it).
pub fn label_selector_string(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = vec![];
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    if let Some(me) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in me {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let mut values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort();
            let s = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            };
            reqs.push((key.to_string(), s));
        }
    }
    reqs.sort();
    reqs.into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_string() {
        let s = json!({"matchLabels": {"app": "web", "tier": "fe"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]});
        assert_eq!(
            label_selector_string(&s),
            "app=web,env in (dev,prod),tier=fe"
        );
    }

    #[test]
    fn stored_rv_is_stamped() {
        let v = decode_at(br#"{"metadata":{"name":"a"}}"#, 42).unwrap();
        assert_eq!(meta_str(&v, "resourceVersion"), "42");
        assert!(decode_at(b"{", 1).is_err());
    }
}
