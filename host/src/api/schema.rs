//! Walking OpenAPI v3 schemas (as JSON) the way patching, validation and pruning need to.
//!
//! The schemas are the `components.schemas` of the OpenAPI documents the server publishes:
//! definitions keyed by name (`io.k8s.api.core.v1.PodSpec`), linked with
//! `$ref: "#/components/schemas/<name>"` (a `$ref` may also sit inside `allOf: [{...}]`),
//! carrying the Kubernetes extensions `x-kubernetes-patch-merge-key`,
//! `x-kubernetes-patch-strategy`, `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-int-or-string` and `x-kubernetes-embedded-resource`.

use serde_json::{Map, Value};

/// The prefix of a reference to a definition.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// A position in a schema: one node and the definitions its `$ref`s point into.
#[derive(Clone, Copy, Debug)]
pub struct SchemaNode<'a> {
    defs: &'a Map<String, Value>,
    node: &'a Value,
}

impl<'a> SchemaNode<'a> {
    /// A node over `node`, resolving references against `defs`.
    pub fn new(defs: &'a Map<String, Value>, node: &'a Value) -> Self {
        SchemaNode { defs, node }.resolved()
    }

    /// The node of the definition called `name`, if there is one.
    pub fn definition(defs: &'a Map<String, Value>, name: &str) -> Option<Self> {
        defs.get(name).map(|node| Self::new(defs, node))
    }

    /// The raw JSON of this node (after following references).
    pub fn json(&self) -> &'a Value {
        self.node
    }

    /// The name of the definition this node is (after following references), if it is one.
    pub fn definition_name(&self) -> Option<&'a str> {
        self.defs
            .iter()
            .find(|(_, v)| std::ptr::eq(*v, self.node))
            .map(|(k, _)| k.as_str())
    }

    /// Whether this object schema declares property `name` in `properties` (unlike
    /// [`SchemaNode::property`], `additionalProperties` does not count).
    pub fn declares_property(&self, name: &str) -> bool {
        self.properties().is_some_and(|p| p.contains_key(name))
    }

    /// Follow `$ref` (directly or as the single element of `allOf`), keeping extensions
    /// that sit beside the reference (they override the target's).
    fn resolved(self) -> Self {
        let mut cur = self;
        for _ in 0..32 {
            let target = cur
                .node
                .get("$ref")
                .and_then(Value::as_str)
                .or_else(|| {
                    cur.node
                        .get("allOf")
                        .and_then(Value::as_array)
                        .filter(|all| all.len() == 1)
                        .and_then(|all| all[0].get("$ref"))
                        .and_then(Value::as_str)
                })
                .and_then(|r| r.strip_prefix(REF_PREFIX))
                .and_then(|name| cur.defs.get(name));
            match target {
                Some(node) => {
                    cur = SchemaNode {
                        defs: cur.defs,
                        node,
                    }
                }
                None => break,
            }
        }
        cur
    }

    fn lookup_ext(&self, outer: Option<&'a Value>, name: &str) -> Option<&'a Value> {
        outer
            .and_then(|o| o.get(name))
            .or_else(|| self.node.get(name))
    }

    /// The schema of property `name` of an object schema, or of `additionalProperties`.
    pub fn property(&self, name: &str) -> Option<SchemaNode<'a>> {
        if let Some(p) = self.node.get("properties").and_then(|p| p.get(name)) {
            return Some(Self::new(self.defs, p));
        }
        self.additional_properties()
    }

    /// The declared properties of an object schema.
    pub fn properties(&self) -> Option<&'a Map<String, Value>> {
        self.node.get("properties").and_then(Value::as_object)
    }

    /// The schema of the values of a map (`additionalProperties` as a schema).
    pub fn additional_properties(&self) -> Option<SchemaNode<'a>> {
        match self.node.get("additionalProperties") {
            Some(v @ Value::Object(_)) => Some(Self::new(self.defs, v)),
            _ => None,
        }
    }

    /// The schema of the items of an array schema.
    pub fn items(&self) -> Option<SchemaNode<'a>> {
        self.node.get("items").map(|i| Self::new(self.defs, i))
    }

    /// The raw property schema (before resolving), so that extensions placed beside a
    /// `$ref` on the property can be read.
    pub fn raw_property(&self, name: &str) -> Option<&'a Value> {
        self.node.get("properties").and_then(|p| p.get(name))
    }

    /// `type`, if declared.
    pub fn type_name(&self) -> Option<&'a str> {
        self.node.get("type").and_then(Value::as_str)
    }

    /// A string extension or keyword of this node.
    pub fn str_field(&self, name: &str) -> Option<&'a str> {
        self.node.get(name).and_then(Value::as_str)
    }

    /// A boolean extension or keyword of this node (absent = false).
    pub fn flag(&self, name: &str) -> bool {
        self.node
            .get(name)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The extensions of property `name` of this object as seen from here: those on the
    /// property itself override those of the definition it references.
    pub fn property_ext(&self, name: &str, ext: &str) -> Option<&'a Value> {
        let target = self.property(name)?;
        target.lookup_ext(self.raw_property(name), ext)
    }

    /// `x-kubernetes-patch-merge-key` of property `name`.
    pub fn patch_merge_key(&self, name: &str) -> Option<&'a str> {
        self.property_ext(name, "x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
    }

    /// `x-kubernetes-patch-strategy` of property `name`, split on commas
    /// (`"merge"`, `"retainKeys"`, `"merge,retainKeys"`, `"replace"`).
    pub fn patch_strategies(&self, name: &str) -> Vec<&'a str> {
        self.property_ext(name, "x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `x-kubernetes-list-type` of property `name` (`atomic`, `set`, `map`).
    pub fn list_type(&self, name: &str) -> Option<&'a str> {
        self.property_ext(name, "x-kubernetes-list-type")
            .and_then(Value::as_str)
    }

    /// `x-kubernetes-list-map-keys` of property `name`.
    pub fn list_map_keys(&self, name: &str) -> Vec<&'a str> {
        self.property_ext(name, "x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// `x-kubernetes-map-type` of property `name` (`atomic`, `granular`).
    pub fn map_type(&self, name: &str) -> Option<&'a str> {
        self.property_ext(name, "x-kubernetes-map-type")
            .and_then(Value::as_str)
    }

    /// Whether this node keeps fields it does not declare.
    pub fn preserves_unknown_fields(&self) -> bool {
        self.flag("x-kubernetes-preserve-unknown-fields")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn follows_refs_and_reads_extensions() {
        let defs = json!({
            "Pod": {"type": "object", "properties": {"spec": {"$ref": "#/components/schemas/PodSpec"}}},
            "PodSpec": {"type": "object", "properties": {
                "containers": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/Container"}]},
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge",
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
            }},
            "Container": {"type": "object", "properties": {"name": {"type": "string"}}}
        });
        let defs = defs.as_object().unwrap();
        let pod = SchemaNode::definition(defs, "Pod").unwrap();
        let spec = pod.property("spec").unwrap();
        assert_eq!(spec.patch_merge_key("containers"), Some("name"));
        assert_eq!(spec.patch_strategies("containers"), vec!["merge"]);
        assert_eq!(spec.list_map_keys("containers"), vec!["name"]);
        let c = spec.property("containers").unwrap().items().unwrap();
        assert_eq!(c.property("name").unwrap().type_name(), Some("string"));
        assert!(c.property("nope").is_none());
        assert_eq!(c.definition_name(), Some("Container"));
        assert_eq!(spec.definition_name(), Some("PodSpec"));
        assert!(c.declares_property("name"));
        assert!(!c.declares_property("nope"));
    }
}
