//! Building RFC 6902 JSON Patches for mutating hooks.
//!
//! ```
//! use tugboat_plugin_sdk::prelude::*;
//!
//! let patch = JsonPatch::new()
//!     .add_label(&json!({"metadata": {}}), "team", "infra")
//!     .replace("/spec/replicas", json!(3));
//! let response = AdmissionResponse::patch(patch);
//! assert!(response.allowed);
//! ```

use serde_json::{Value, json};

/// An RFC 6902 JSON Patch under construction (a list of operations).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonPatch {
    ops: Vec<Value>,
}

impl JsonPatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// `{"op": "add", "path": path, "value": value}`.
    pub fn add(mut self, path: impl Into<String>, value: Value) -> Self {
        self.ops
            .push(json!({"op": "add", "path": path.into(), "value": value}));
        self
    }

    /// `{"op": "replace", "path": path, "value": value}`.
    pub fn replace(mut self, path: impl Into<String>, value: Value) -> Self {
        self.ops
            .push(json!({"op": "replace", "path": path.into(), "value": value}));
        self
    }

    /// `{"op": "remove", "path": path}`.
    pub fn remove(mut self, path: impl Into<String>) -> Self {
        self.ops.push(json!({"op": "remove", "path": path.into()}));
        self
    }

    /// Sets label `key` to `value` on `object`, creating `metadata.labels` when the object
    /// has none (an `add` to a missing parent would fail).
    pub fn add_label(self, object: &Value, key: &str, value: &str) -> Self {
        self.add_to_map(object, "labels", key, value)
    }

    /// Sets annotation `key` to `value` on `object` (like [`JsonPatch::add_label`]).
    pub fn add_annotation(self, object: &Value, key: &str, value: &str) -> Self {
        self.add_to_map(object, "annotations", key, value)
    }

    fn add_to_map(self, object: &Value, map: &str, key: &str, value: &str) -> Self {
        if object
            .pointer(&format!("/metadata/{map}"))
            .is_some_and(Value::is_object)
        {
            self.add(format!("/metadata/{map}/{}", escape(key)), json!(value))
        } else {
            self.add(format!("/metadata/{map}"), json!({ key: value }))
        }
    }

    /// Whether no operation was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl From<JsonPatch> for Value {
    fn from(p: JsonPatch) -> Value {
        Value::Array(p.ops)
    }
}

/// Escapes one JSON Pointer segment (RFC 6901): `~` → `~0`, `/` → `~1`, so that a label
/// key like `app.kubernetes.io/name` can be used in a path.
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_label_creates_the_map_when_missing() {
        let p: Value = JsonPatch::new()
            .add_label(&json!({"metadata": {}}), "a/b", "c")
            .into();
        assert_eq!(
            p,
            json!([{"op": "add", "path": "/metadata/labels", "value": {"a/b": "c"}}])
        );
        let p: Value = JsonPatch::new()
            .add_label(&json!({"metadata": {"labels": {}}}), "a/b", "c")
            .into();
        assert_eq!(
            p,
            json!([{"op": "add", "path": "/metadata/labels/a~1b", "value": "c"}])
        );
    }
}
