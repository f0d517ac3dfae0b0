//! Server-side apply and `metadata.managedFields`, after Kubernetes' structured-merge-diff
//! v4 (`sigs.k8s.io/structured-merge-diff/v4`) and the apiserver's field manager.
//!
//! Ownership is tracked as [`FieldSet`]s: tries of path elements in the `FieldsV1`
//! encoding (`f:<field>`, `k:<compact JSON of the key fields>` for items of associative
//! lists, `v:<compact JSON value>` for items of sets, `.` for "the node itself").
//!
//! * [`apply`] merges an apply configuration into the live object, detects conflicts with
//!   the other managers, removes what the applier applied before but dropped from its
//!   configuration (unless someone else owns it), and records the applier's `Apply` entry.
//! * [`update_managed_fields`] records the fields an ordinary write (`Update`) changed.
//!
//! The shape of values comes from the OpenAPI schema (see [`SchemaNode`]):
//! `x-kubernetes-list-type` (`atomic`, `set`, `map` with `x-kubernetes-list-map-keys`),
//! `x-kubernetes-map-type` (`atomic`, `granular`), and for lists without a list type
//! `x-kubernetes-patch-merge-key` (a map list keyed by it) or
//! `x-kubernetes-patch-strategy: merge` without a key (a set). Without a schema maps are
//! granular and lists atomic.
//!
//! Never owned: `apiVersion`, `kind` and `metadata.{name, namespace, uid, resourceVersion,
//! generation, creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds,
//! managedFields, selfLink}`. `status` is owned only by writes to the `status`
//! subresource, which own nothing else. `managedFields` entries whose `fieldsV1` does not
//! decode are dropped (never a panic).
//!
//! Approximations (differences from Kubernetes):
//! * no version conversion: entries keep the `apiVersion` they were written with, and field
//!   paths are compared as they are;
//! * the `using <apiVersion>` of conflict messages is the request's version, and is printed
//!   for `Apply` owners as well (Kubernetes prints it only for `Update` owners);
//! * paths are ordered by their encoded text (Kubernetes compares key values typed);
//! * an `Update` that adds a map, set or associative list owns it as a whole (`.`), as in
//!   Kubernetes; a struct (object schema with `properties`) it adds is never owned as a
//!   whole (Kubernetes owns pointer structs such as `securityContext`, which the schema
//!   cannot tell apart), and on a create neither are `required` maps and lists (which the
//!   Go zero value Kubernetes compares with already holds);
//! * without a schema, the top-level fields and those of `metadata` are taken as declared
//!   struct fields; everything below is a map whose entries are owned themselves;
//! * `apply` has no subresource argument: a configuration whose only non-ignored top-level
//!   field is `status` is treated as an apply to the `status` subresource;
//! * the number of `Update` entries is not capped (Kubernetes folds old ones into
//!   `ancient-changes`), and removed fields are dropped from every manager's set.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::api::schema::SchemaNode;

/// The `metadata` fields nobody owns.
const IGNORED_METADATA: &[&str] = &[
    "f:name",
    "f:namespace",
    "f:uid",
    "f:resourceVersion",
    "f:generation",
    "f:creationTimestamp",
    "f:deletionTimestamp",
    "f:deletionGracePeriodSeconds",
    "f:managedFields",
    "f:selfLink",
];

/// The manager owning the fields of an object that had no managed fields when first applied.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Deepest `fieldsV1` nesting accepted by [`FieldSet::from_json`].
const MAX_FIELDS_DEPTH: usize = 256;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A field another manager owns with a different value than the apply configuration's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The manager owning the field.
    pub manager: String,
    /// The field, as Kubernetes prints paths: `.spec.replicas`,
    /// `.spec.containers[name="nginx"].image`, `.metadata.finalizers[="x"]`.
    pub field: String,
}

impl Conflict {
    fn owner(&self, api_version: &str) -> String {
        format!("{} using {api_version}", quote(&self.manager))
    }

    /// The `StatusCause` Kubernetes reports for this conflict.
    pub fn to_cause(&self, api_version: &str) -> Value {
        json!({
            "reason": "FieldManagerConflict",
            "message": format!("conflict with {}", self.owner(api_version)),
            "field": self.field,
        })
    }
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Fields of the configuration are owned by other managers with other values
    /// (retry with `force=true` to take them).
    #[error("{}", conflicts_text(.0, None))]
    Conflicts(Vec<Conflict>),
    /// The configuration cannot be applied (not an object, an associative list item without
    /// its key, duplicate keys, `metadata.managedFields` set).
    #[error("{0}")]
    Invalid(String),
}

/// The message of the `409 Conflict` for `conflicts`, as the Kubernetes apiserver words it:
/// `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`, or for
/// several `Apply failed with 2 conflicts: conflicts with "m" using apps/v1:\n- .spec.a\n- .spec.b`
/// (managers sorted by name, each followed by its paths).
pub fn conflict_message(conflicts: &[Conflict], api_version: &str) -> String {
    conflicts_text(conflicts, Some(api_version))
}

fn conflicts_text(conflicts: &[Conflict], api_version: Option<&str>) -> String {
    let owner = |c: &Conflict| match api_version {
        Some(v) => c.owner(v),
        None => quote(&c.manager),
    };
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            owner(c),
            c.field
        );
    }
    let mut by_manager: BTreeMap<&str, Vec<&Conflict>> = BTreeMap::new();
    for c in conflicts {
        by_manager.entry(c.manager.as_str()).or_default().push(c);
    }
    let mut lines = Vec::new();
    for group in by_manager.values() {
        lines.push(format!("conflicts with {}:", owner(group[0])));
        lines.extend(group.iter().map(|c| format!("- {}", c.field)));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// A string quoted the way Go's `%q` does for ordinary text.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

// ---------------------------------------------------------------------------------------
// Field sets
// ---------------------------------------------------------------------------------------

/// A set of field paths, stored as a trie of encoded path elements (`f:spec`,
/// `k:{"name":"nginx"}`, `v:"x"`, `i:0`). Children are never empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Add `path` (encoded elements; the empty path is the root).
    pub fn insert<S: AsRef<str>>(&mut self, path: &[S]) {
        match path.split_first() {
            None => self.member = true,
            Some((head, rest)) => self
                .children
                .entry(head.as_ref().to_string())
                .or_default()
                .insert(rest),
        }
    }

    /// Whether `path` is in the set.
    pub fn contains<S: AsRef<str>>(&self, path: &[S]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((head, rest)) => self
                .children
                .get(head.as_ref())
                .is_some_and(|c| c.contains(rest)),
        }
    }

    /// The subtree under one element, if any path goes through it.
    fn child(&self, element: &str) -> Option<&FieldSet> {
        self.children.get(element)
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (k, c) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    /// Paths of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let rest = match other.children.get(k) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(k.clone(), rest);
            }
        }
        out
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let both = c.intersection(o);
                if !both.is_empty() {
                    out.children.insert(k.clone(), both);
                }
            }
        }
        out
    }

    /// Every path of the set (encoded elements), a node before its children.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            prefix.push(k.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Every path of the set printed as Kubernetes prints paths
    /// (`.spec.containers[name="nginx"].image`).
    pub fn leaf_paths(&self) -> Vec<String> {
        self.paths().iter().map(|p| path_string(p)).collect()
    }

    /// The `fieldsV1` JSON of the set.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }

    /// Parse `fieldsV1` JSON. Keys of `k:` and `v:` elements are re-encoded canonically
    /// (compact, key fields sorted by name). Malformed input is an error.
    pub fn from_json(v: &Value) -> Result<FieldSet, String> {
        let mut set = Self::parse_node(v, 0)?;
        set.member = false;
        Ok(set)
    }

    fn parse_node(v: &Value, depth: usize) -> Result<FieldSet, String> {
        if depth > MAX_FIELDS_DEPTH {
            return Err("fieldsV1 is nested too deeply".to_string());
        }
        let Value::Object(m) = v else {
            return Err(format!("expected an object in fieldsV1, found {v}"));
        };
        let mut out = FieldSet::new();
        if m.is_empty() {
            out.member = true;
            return Ok(out);
        }
        for (k, c) in m {
            if k == "." {
                if !c.is_object() {
                    return Err(format!(
                        "expected an object for \".\" in fieldsV1, found {c}"
                    ));
                }
                out.member = true;
                continue;
            }
            let element = canonical_element(k)?;
            let child = Self::parse_node(c, depth + 1)?;
            let merged = match out.children.remove(&element) {
                Some(prev) => prev.union(&child),
                None => child,
            };
            out.children.insert(element, merged);
        }
        Ok(out)
    }

    /// The fields set in `obj` (what Kubernetes' `ToFieldSet` returns): scalars, atomic
    /// lists and maps, items of sets and associative lists, and entries of maps (keys that
    /// are not declared properties, whatever their value); structs and non-atomic lists
    /// only through their contents. Nothing is ignored here (see [`apply`] for what is).
    /// Errors on associative list items without a key, and on duplicate items.
    pub fn from_object(obj: &Value, schema: Option<SchemaNode<'_>>) -> Result<FieldSet, String> {
        let flat = flatten(obj, &Ty::root(schema), true)?;
        let mut set = FieldSet::new();
        for (p, node) in &flat {
            if node.owned {
                set.insert(p);
            }
        }
        Ok(set)
    }
}

/// Validate and re-encode one `fieldsV1` key.
fn canonical_element(k: &str) -> Result<String, String> {
    if let Some(name) = k.strip_prefix("f:") {
        return Ok(format!("f:{name}"));
    }
    if let Some(key) = k.strip_prefix("k:") {
        let parsed: Value =
            serde_json::from_str(key).map_err(|e| format!("invalid key {k:?} in fieldsV1: {e}"))?;
        let Value::Object(fields) = parsed else {
            return Err(format!("invalid key {k:?} in fieldsV1: not an object"));
        };
        let sorted: BTreeMap<String, Value> = fields.into_iter().collect();
        return Ok(format!("k:{}", Value::Object(sorted.into_iter().collect())));
    }
    if let Some(value) = k.strip_prefix("v:") {
        let parsed: Value = serde_json::from_str(value)
            .map_err(|e| format!("invalid value {k:?} in fieldsV1: {e}"))?;
        return Ok(format!("v:{parsed}"));
    }
    if let Some(index) = k.strip_prefix("i:") {
        let i: u64 = index
            .parse()
            .map_err(|_| format!("invalid index {k:?} in fieldsV1"))?;
        return Ok(format!("i:{i}"));
    }
    Err(format!("invalid path element {k:?} in fieldsV1"))
}

/// A path printed as Kubernetes prints it: `.spec.containers[name="nginx"].ports[containerPort=80,protocol="TCP"]`.
pub fn path_string<S: AsRef<str>>(path: &[S]) -> String {
    let mut out = String::new();
    for e in path {
        let e = e.as_ref();
        if let Some(name) = e.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = e.strip_prefix("k:") {
            match serde_json::from_str::<Value>(key) {
                Ok(Value::Object(fields)) => {
                    let parts: Vec<String> =
                        fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out.push('[');
                    out.push_str(&parts.join(","));
                    out.push(']');
                }
                _ => out.push_str(&format!("[{key}]")),
            }
        } else if let Some(value) = e.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = e.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        } else {
            out.push_str(e);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Types from the schema
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum ListKind<'a> {
    Atomic,
    Set,
    Map(Vec<&'a str>),
}

/// How a value at some position is treated.
#[derive(Clone, Debug)]
struct Ty<'a> {
    schema: Option<SchemaNode<'a>>,
    list: ListKind<'a>,
    atomic_map: bool,
}

impl<'a> Ty<'a> {
    fn untyped() -> Self {
        Ty {
            schema: None,
            list: ListKind::Atomic,
            atomic_map: false,
        }
    }

    fn root(schema: Option<SchemaNode<'a>>) -> Self {
        Ty {
            schema,
            list: ListKind::Atomic,
            atomic_map: schema.and_then(|s| s.str_field("x-kubernetes-map-type")) == Some("atomic"),
        }
    }

    /// An object with declared properties: its fields are owned, never the object itself.
    fn is_struct(&self) -> bool {
        self.schema
            .and_then(|s| s.properties())
            .is_some_and(|p| !p.is_empty())
    }

    /// Whether a `null` here is a set field: it is for scalars, atomic values and untyped
    /// positions, not for granular maps, structs and non-atomic lists.
    fn null_is_owned(&self) -> bool {
        let Some(s) = self.schema else {
            return true;
        };
        let object = s.type_name() == Some("object")
            || s.properties().is_some()
            || s.additional_properties().is_some();
        let array = s.type_name() == Some("array") || s.json().get("items").is_some();
        let granular_object = object && !self.atomic_map;
        let granular_list = array && !matches!(self.list, ListKind::Atomic);
        !granular_object && !granular_list
    }

    /// The type of field `name` of this object.
    fn field(&self, name: &str) -> Ty<'a> {
        let Some(s) = self.schema else {
            return Ty::untyped();
        };
        let Some(child) = s.property(name) else {
            return Ty::untyped();
        };
        Ty {
            schema: Some(child),
            list: list_kind(
                s.list_type(name),
                s.list_map_keys(name),
                s.patch_merge_key(name),
                &s.patch_strategies(name),
            ),
            atomic_map: s.map_type(name) == Some("atomic"),
        }
    }

    /// The type of the items of this list.
    fn item(&self) -> Ty<'a> {
        let Some(items) = self.schema.and_then(|s| s.items()) else {
            return Ty::untyped();
        };
        let keys = items
            .json()
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let strategies: Vec<&str> = items
            .str_field("x-kubernetes-patch-strategy")
            .map(|s| s.split(',').map(str::trim).collect())
            .unwrap_or_default();
        Ty {
            schema: Some(items),
            list: list_kind(
                items.str_field("x-kubernetes-list-type"),
                keys,
                items.str_field("x-kubernetes-patch-merge-key"),
                &strategies,
            ),
            atomic_map: items.str_field("x-kubernetes-map-type") == Some("atomic"),
        }
    }

    /// The path element of `item`, an item of this list (whose items are typed `item_ty`).
    fn element(&self, item: &Value, item_ty: &Ty<'_>) -> Option<Result<String, String>> {
        match &self.list {
            ListKind::Atomic => None,
            ListKind::Set => Some(Ok(format!("v:{item}"))),
            ListKind::Map(keys) => Some(key_element(item, keys, item_ty)),
        }
    }
}

fn list_kind<'a>(
    list_type: Option<&'a str>,
    keys: Vec<&'a str>,
    merge_key: Option<&'a str>,
    strategies: &[&str],
) -> ListKind<'a> {
    match list_type {
        Some("atomic") => ListKind::Atomic,
        Some("set") => ListKind::Set,
        Some("map") if !keys.is_empty() => ListKind::Map(keys),
        Some("map") => match merge_key {
            Some(k) => ListKind::Map(vec![k]),
            None => ListKind::Atomic,
        },
        _ => match merge_key {
            Some(k) => ListKind::Map(vec![k]),
            None if strategies.contains(&"merge") => ListKind::Set,
            None => ListKind::Atomic,
        },
    }
}

/// The `k:` element of an associative list item: its key fields (a missing one taken from
/// the schema's `default`), sorted by name, as compact JSON.
fn key_element(item: &Value, keys: &[&str], item_ty: &Ty<'_>) -> Result<String, String> {
    let Value::Object(m) = item else {
        return Err(format!(
            "associative list with keys has an element that is not a map: {item}"
        ));
    };
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut key = Map::new();
    for k in sorted {
        let v = m.get(k).filter(|v| !v.is_null()).cloned().or_else(|| {
            item_ty
                .schema
                .and_then(|s| s.property(k))
                .and_then(|p| p.json().get("default").cloned())
        });
        match v {
            Some(v) => {
                key.insert(k.to_string(), v);
            }
            None => {
                return Err(format!(
                    "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                    quote(k)
                ));
            }
        }
    }
    Ok(format!("k:{}", Value::Object(key)))
}

// ---------------------------------------------------------------------------------------
// Flattening objects into paths
// ---------------------------------------------------------------------------------------

/// What sits at a path of an object.
#[derive(Clone, Copy, Debug)]
enum Kind<'v> {
    /// A scalar, `null`, an atomic list or map, or an empty map or list.
    Leaf(&'v Value),
    /// An item of a set or an associative list.
    Item,
    /// A non-empty granular map or struct, set or associative list.
    Inner,
}

/// One path of an object.
#[derive(Clone, Copy, Debug)]
struct Node<'v> {
    kind: Kind<'v>,
    /// In the set of fields the object sets (Kubernetes' `ToFieldSet`): scalars, atomic
    /// values, list items, and the entries of maps (keys that are not declared properties).
    owned: bool,
    /// A struct (an object with declared properties): not owned as a whole by the write
    /// that adds it.
    structure: bool,
    /// A required property: present (if only as `null`) in Kubernetes' zero value of the
    /// type, so not owned as a whole by a create.
    required: bool,
}

type Flat<'v> = BTreeMap<Vec<String>, Node<'v>>;

/// How a value is placed in its parent.
#[derive(Clone, Copy, Debug)]
struct Pos {
    /// A declared property of a struct (not a map entry).
    declared: bool,
    /// Listed in the parent's `required`.
    required: bool,
    /// Taken as a struct whatever the schema says (`metadata` and the top-level fields of
    /// an object without schema).
    structure: bool,
}

/// Every path of `v`. `strict`: malformed sets and associative lists are errors;
/// otherwise they are taken as atomic.
fn flatten<'v>(v: &'v Value, ty: &Ty<'_>, strict: bool) -> Result<Flat<'v>, String> {
    let mut out = BTreeMap::new();
    let mut path = Vec::new();
    let pos = Pos {
        declared: true,
        required: false,
        structure: true,
    };
    walk(v, ty, strict, pos, &mut path, &mut out)?;
    Ok(out)
}

fn walk<'v>(
    v: &'v Value,
    ty: &Ty<'_>,
    strict: bool,
    pos: Pos,
    path: &mut Vec<String>,
    out: &mut Flat<'v>,
) -> Result<(), String> {
    let mut put = |kind: Kind<'v>, owned: bool, path: &[String]| {
        if !path.is_empty() {
            let node = Node {
                kind,
                owned,
                structure: pos.structure || ty.is_struct(),
                required: pos.required,
            };
            out.insert(path.to_vec(), node);
        }
    };
    let entry = !pos.declared;
    match v {
        Value::Object(m) if !ty.atomic_map && !m.is_empty() => {
            put(Kind::Inner, entry, path);
            walk_fields(m, ty, strict, path, out)
        }
        Value::Array(items) if !matches!(ty.list, ListKind::Atomic) && !items.is_empty() => {
            let item_ty = ty.item();
            let mut elements = Vec::with_capacity(items.len());
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let element = match ty.element(item, &item_ty) {
                    Some(Ok(e)) => e,
                    Some(Err(msg)) if strict => {
                        return Err(format!("{}: element {i}: {msg}", path_string(path)));
                    }
                    _ => {
                        put(Kind::Leaf(v), true, path);
                        return Ok(());
                    }
                };
                if !seen.insert(element.clone()) {
                    if strict {
                        let shown = path_string(std::slice::from_ref(&element));
                        return Err(format!(
                            "{}: duplicate entries for key {shown}",
                            path_string(path)
                        ));
                    }
                    put(Kind::Leaf(v), true, path);
                    return Ok(());
                }
                elements.push(element);
            }
            put(Kind::Inner, entry, path);
            for (element, item) in elements.into_iter().zip(items) {
                path.push(element);
                let node = Node {
                    kind: Kind::Item,
                    owned: true,
                    structure: false,
                    required: false,
                };
                out.insert(path.clone(), node);
                let mut r = Ok(());
                if let (ListKind::Map(_), Value::Object(m)) = (&ty.list, item)
                    && !item_ty.atomic_map
                {
                    r = walk_fields(m, &item_ty, strict, path, out);
                }
                path.pop();
                r?;
            }
            Ok(())
        }
        _ => {
            let owned = entry
                || match v {
                    Value::Object(_) => ty.atomic_map,
                    Value::Array(_) => matches!(ty.list, ListKind::Atomic),
                    Value::Null => ty.null_is_owned(),
                    _ => true,
                };
            put(Kind::Leaf(v), owned, path);
            Ok(())
        }
    }
}

fn walk_fields<'v>(
    m: &'v Map<String, Value>,
    ty: &Ty<'_>,
    strict: bool,
    path: &mut Vec<String>,
    out: &mut Flat<'v>,
) -> Result<(), String> {
    // The top level and `metadata` are structs even without a schema.
    let top = path.is_empty() || path.as_slice() == ["f:metadata"];
    let required: Vec<&str> = ty
        .schema
        .and_then(|s| s.json().get("required"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (k, cv) in m {
        let declared_top = top && !ty.is_struct();
        let pos = Pos {
            declared: declared_top || ty.schema.is_some_and(|s| s.declares_property(k)),
            required: required.contains(&k.as_str()),
            structure: declared_top,
        };
        path.push(format!("f:{k}"));
        let r = walk(cv, &ty.field(k), strict, pos, path, out);
        path.pop();
        r?;
    }
    Ok(())
}

/// Which part of the object a write may own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Everything but `status` (and the ignored fields).
    Main,
    /// Only `status`.
    Status,
}

impl Scope {
    fn of(subresource: Option<&str>) -> Self {
        if subresource == Some("status") {
            Scope::Status
        } else {
            Scope::Main
        }
    }

    fn subresource(self) -> Option<&'static str> {
        match self {
            Scope::Main => None,
            Scope::Status => Some("status"),
        }
    }

    /// Whether `path` is never owned in this scope.
    fn ignores<S: AsRef<str>>(self, path: &[S]) -> bool {
        let Some(first) = path.first() else {
            return true;
        };
        match first.as_ref() {
            "f:apiVersion" | "f:kind" => true,
            "f:status" => self == Scope::Main,
            "f:metadata" => {
                self == Scope::Status
                    || path
                        .get(1)
                        .is_none_or(|f| IGNORED_METADATA.contains(&f.as_ref()))
            }
            _ => self == Scope::Status,
        }
    }
}

/// The fields of `flat` that count in `scope` (what an apply configuration owns).
fn owned_set(flat: &Flat<'_>, scope: Scope) -> FieldSet {
    let mut set = FieldSet::new();
    for (p, node) in flat {
        if node.owned && !scope.ignores(p) {
            set.insert(p);
        }
    }
    set
}

/// What changed from `old` to `new`, within `scope`.
struct Diff {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

/// Compare as Kubernetes does: leaves whose value changed are modified; paths only in
/// `new` are added (structs excepted, and on a create, `required` maps and lists);
/// paths only in `old` are removed.
fn compare(old: &Flat<'_>, new: &Flat<'_>, scope: Scope, create: bool) -> Diff {
    let mut diff = Diff {
        added: FieldSet::new(),
        modified: FieldSet::new(),
        removed: FieldSet::new(),
    };
    for (p, n) in new {
        if scope.ignores(p) {
            continue;
        }
        match old.get(p) {
            None => {
                let tracked = match n.kind {
                    Kind::Leaf(_) | Kind::Item => true,
                    Kind::Inner => !(n.structure || create && n.required),
                };
                if tracked {
                    diff.added.insert(p);
                }
            }
            Some(o) => {
                let differs = match (o.kind, n.kind) {
                    (Kind::Leaf(a), Kind::Leaf(b)) => a != b,
                    (Kind::Item, Kind::Item) | (Kind::Inner, Kind::Inner) => false,
                    // `null`, `{}` or `[]` to contents or back: only the contents change.
                    (Kind::Leaf(a), Kind::Inner) | (Kind::Inner, Kind::Leaf(a)) => !is_void(a),
                    _ => true,
                };
                if differs {
                    diff.modified.insert(p);
                }
            }
        }
    }
    for p in old.keys() {
        if !scope.ignores(p) && !new.contains_key(p) {
            diff.removed.insert(p);
        }
    }
    diff
}

/// `null`, `{}` or `[]`.
fn is_void(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// managedFields entries
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn from_json(v: &Value) -> Result<Entry, String> {
        let Value::Object(m) = v else {
            return Err("a managedFields entry is not an object".to_string());
        };
        let text = |k: &str| -> Result<Option<String>, String> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("managedFields {k} is not a string: {other}")),
            }
        };
        if let Some(t) = text("fieldsType")?
            && t != "FieldsV1"
        {
            return Err(format!("unsupported managedFields fieldsType {t:?}"));
        }
        let fields = match m.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(f) => FieldSet::from_json(f)?,
        };
        Ok(Entry {
            manager: text("manager")?.unwrap_or_default(),
            operation: text("operation")?.unwrap_or_default(),
            api_version: text("apiVersion")?.unwrap_or_default(),
            time: text("time")?,
            subresource: text("subresource")?.filter(|s| !s.is_empty()),
            fields,
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_json());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }

    /// Whether this is the entry a write by `manager` with `operation` records into
    /// (`Apply` entries are per manager and subresource, `Update` ones also per version).
    fn is_slot(
        &self,
        manager: &str,
        operation: &str,
        api_version: &str,
        sub: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == sub
            && (operation == "Apply" || self.api_version == api_version)
    }
}

/// The entries of `obj`'s `metadata.managedFields`; malformed entries are dropped.
fn read_entries(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| Entry::from_json(e).ok()).collect())
        .unwrap_or_default()
}

/// Kubernetes' order: `Apply` before `Update`, then by time, manager, version, subresource.
fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| p.time.cmp(&q.time))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
}

/// Write `entries` to `obj.metadata.managedFields`, removing the key when there are none.
fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let Value::Object(o) = obj else { return };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = o.get_mut("metadata") {
            meta.shift_remove("managedFields");
        }
        return;
    }
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert(
            "managedFields".to_string(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Apply
// ---------------------------------------------------------------------------------------

/// Server-side apply of `config` by `manager` onto `live` (`None`: the object does not
/// exist yet and is created from `config`). Returns the new object with
/// `metadata.managedFields` recorded; `now` is the entries' time.
///
/// The result is `live` merged with `config` (granular maps merged, atomic ones replaced,
/// associative lists merged by key, sets unioned, atomic lists and scalars replaced), minus
/// what `manager` applied before and no longer applies when nobody else owns it. Fields of
/// `config` whose value differs from the live one and that another manager owns are
/// conflicts, unless `force` (then `manager` takes them over). A live object without
/// managed fields is first taken as owned by [`BEFORE_FIRST_APPLY`] (an `Update` entry).
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    schema: Option<SchemaNode<'_>>,
    api_version: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::Invalid(
            "the apply configuration must be an object".to_string(),
        ));
    }
    if live.is_some_and(|l| !l.is_object()) {
        return Err(ApplyError::Invalid(
            "the live object is not an object".to_string(),
        ));
    }
    match config.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => {
            return Err(ApplyError::Invalid(
                "metadata.managedFields must be nil".to_string(),
            ));
        }
    }
    let root = Ty::root(schema);
    let scope = apply_scope(config);
    let sub = scope.subresource();
    let config_flat = flatten(config, &root, true).map_err(ApplyError::Invalid)?;
    let config_set = owned_set(&config_flat, scope);

    let mut entries = read_entries(live);
    let live_flat = match live {
        Some(l) => flatten(l, &root, false).map_err(ApplyError::Invalid)?,
        None => Flat::new(),
    };
    if entries.is_empty() && live.is_some() {
        // As Kubernetes does: an object nobody manages yet is owned by
        // `before-first-apply`, so that the first apply conflicts with what is there.
        let existing = compare(&Flat::new(), &live_flat, Scope::Main, true).added;
        if !existing.is_empty() {
            entries.push(Entry {
                manager: BEFORE_FIRST_APPLY.to_string(),
                operation: "Update".to_string(),
                api_version: api_version.to_string(),
                time: Some(now.to_string()),
                subresource: None,
                fields: existing,
            });
        }
    }
    let mut merged = match live {
        Some(l) => merge(l, config, &root),
        None => config.clone(),
    };

    // Conflicts: what the merge changes that someone else owns.
    let changed = {
        let merged_flat = flatten(&merged, &root, false).map_err(ApplyError::Invalid)?;
        let diff = compare(&live_flat, &merged_flat, scope, live.is_none());
        diff.added.union(&diff.modified)
    };
    let mine = entries
        .iter()
        .position(|e| e.is_slot(manager, "Apply", api_version, sub));
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == mine {
            continue;
        }
        for p in e.fields.intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                field: path_string(&p),
            });
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(ApplyError::Conflicts(conflicts));
        }
        for (i, e) in entries.iter_mut().enumerate() {
            if Some(i) != mine {
                e.fields = e.fields.difference(&changed);
            }
        }
    }

    // Remove what this manager applied before and dropped, unless someone else owns it.
    let last_set = mine.map(|i| entries[i].fields.clone()).unwrap_or_default();
    let others = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != mine)
        .fold(FieldSet::new(), |acc, (_, e)| acc.union(&e.fields));
    let dropped = last_set.difference(&config_set).difference(&others);
    if !dropped.is_empty() {
        remove_items(&mut merged, &root, &dropped, Some(&others));
    }

    let entry = Entry {
        manager: manager.to_string(),
        operation: "Apply".to_string(),
        api_version: api_version.to_string(),
        time: Some(now.to_string()),
        subresource: sub.map(str::to_string),
        fields: config_set,
    };
    match mine {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    entries.retain(|e| !e.fields.is_empty() || e.is_slot(manager, "Apply", api_version, sub));
    sort_entries(&mut entries);
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// [`Scope::Status`] when the configuration sets nothing but `status` (besides
/// `apiVersion`, `kind` and `metadata`).
fn apply_scope(config: &Value) -> Scope {
    let Some(m) = config.as_object() else {
        return Scope::Main;
    };
    let mut fields = m
        .keys()
        .filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
        .peekable();
    if fields.peek().is_some() && fields.all(|k| k == "status") {
        Scope::Status
    } else {
        Scope::Main
    }
}

/// `live` merged with `config` (config wins).
fn merge(live: &Value, config: &Value, ty: &Ty<'_>) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !ty.atomic_map => {
            let mut out = l.clone();
            for (k, cv) in c {
                let v = match l.get(k) {
                    Some(lv) => merge(lv, cv, &ty.field(k)),
                    None => cv.clone(),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) if !matches!(ty.list, ListKind::Atomic) => {
            merge_list(l, c, ty).map_or_else(|| config.clone(), Value::Array)
        }
        _ => config.clone(),
    }
}

/// Merge two sets or associative lists: items of both merged, in the live order where the
/// configuration keeps it, new items where the configuration puts them. `None` when an
/// item has no element (the configuration then replaces the list).
fn merge_list(live: &[Value], config: &[Value], ty: &Ty<'_>) -> Option<Vec<Value>> {
    let item_ty = ty.item();
    let elements = |items: &[Value]| -> Option<Vec<String>> {
        items
            .iter()
            .map(|i| ty.element(i, &item_ty).and_then(Result::ok))
            .collect()
    };
    let lk = elements(live)?;
    let ck = elements(config)?;
    if lk.iter().collect::<BTreeSet<_>>().len() != lk.len() {
        // Duplicates in the live list: let the configuration replace it.
        return None;
    }
    let l_index: BTreeMap<&str, usize> = lk
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let c_index: BTreeMap<&str, usize> = ck
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let merge_item = |li: usize, ci: usize| -> Value {
        match ty.list {
            ListKind::Map(_) => merge(&live[li], &config[ci], &item_ty),
            _ => live[li].clone(),
        }
    };
    let mut used = vec![false; live.len()];
    let mut out = Vec::with_capacity(live.len() + config.len());
    let (mut l, mut c) = (0, 0);
    loop {
        while l < live.len() && used[l] {
            l += 1;
        }
        match (l < live.len(), c < config.len()) {
            (true, true) => {
                if lk[l] == ck[c] {
                    out.push(merge_item(l, c));
                    used[l] = true;
                    l += 1;
                    c += 1;
                } else if !c_index.contains_key(lk[l].as_str()) {
                    out.push(live[l].clone());
                    used[l] = true;
                    l += 1;
                } else {
                    match l_index.get(ck[c].as_str()) {
                        Some(&li) if !used[li] => {
                            out.push(merge_item(li, c));
                            used[li] = true;
                        }
                        Some(_) => {}
                        None => out.push(config[c].clone()),
                    }
                    c += 1;
                }
            }
            (true, false) => {
                out.push(live[l].clone());
                used[l] = true;
                l += 1;
            }
            (false, true) => {
                match l_index.get(ck[c].as_str()) {
                    Some(&li) if !used[li] => {
                        out.push(merge_item(li, c));
                        used[li] = true;
                    }
                    Some(_) => {}
                    None => out.push(config[c].clone()),
                }
                c += 1;
            }
            (false, false) => break,
        }
    }
    Some(out)
}

/// Remove the paths of `set` from `v`, except where `keep` (what others own) has paths at
/// or under them: such list items stay with their key fields. Maps and lists the removal
/// empties are removed as well.
fn remove_items(v: &mut Value, ty: &Ty<'_>, set: &FieldSet, keep: Option<&FieldSet>) {
    match v {
        Value::Object(m) if !ty.atomic_map => remove_fields(m, ty, set, keep, &[]),
        Value::Array(items) => {
            let item_ty = ty.item();
            let key_fields: Vec<&str> = match &ty.list {
                ListKind::Map(keys) => keys.clone(),
                _ => Vec::new(),
            };
            let mut i = 0;
            while i < items.len() {
                let Some(Ok(element)) = ty.element(&items[i], &item_ty) else {
                    i += 1;
                    continue;
                };
                if let Some(sub) = set.child(&element) {
                    let kept = keep.and_then(|k| k.child(&element));
                    if sub.member && kept.is_none_or(FieldSet::is_empty) {
                        items.remove(i);
                        continue;
                    }
                    if let Value::Object(m) = &mut items[i]
                        && !item_ty.atomic_map
                    {
                        remove_fields(m, &item_ty, sub, kept, &key_fields);
                    }
                }
                i += 1;
            }
        }
        _ => {}
    }
}

fn remove_fields(
    m: &mut Map<String, Value>,
    ty: &Ty<'_>,
    set: &FieldSet,
    keep: Option<&FieldSet>,
    protected: &[&str],
) {
    for (element, sub) in &set.children {
        let Some(name) = element.strip_prefix("f:") else {
            continue;
        };
        if protected.contains(&name) {
            continue;
        }
        let kept = keep.and_then(|k| k.child(element));
        if sub.member && kept.is_none_or(FieldSet::is_empty) {
            m.shift_remove(name);
        } else if let Some(child) = m.get_mut(name) {
            let was_void = is_void(child);
            remove_items(child, &ty.field(name), sub, kept);
            // A map or list emptied by the removal goes too (Kubernetes leaves `null`,
            // which decoding into the Go types drops).
            if !was_void && is_void(child) {
                m.shift_remove(name);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------------

/// Record in `new.metadata.managedFields` the fields an ordinary write (`operation`, in
/// practice `Update`) by `manager` changed from `old` (`None`: a create, which sets every
/// field of `new`).
///
/// * When the client sent `managedFields` that differ from `old`'s (or sent any on create)
///   and they decode, they are kept exactly as sent (nothing is recorded for this write).
///   Sending `[{}]` (entries without manager and fields) clears them: the object is left
///   without `managedFields`. An empty list, or entries that do not decode, count as not
///   sent: `old`'s are used.
/// * Otherwise the changed fields are added to `manager`'s entry for (`operation`,
///   `api_version`, `subresource`) — created if needed, its time set to `now` — and taken
///   from every other entry; removed fields leave every entry; empty entries are dropped,
///   and the key is omitted when no entry remains.
///
/// With `subresource` `Some("status")` only `status` counts; otherwise `status` and the
/// always-ignored fields (`apiVersion`, `kind`, `metadata.name`, `.uid`, ...) do not.
#[allow(clippy::too_many_arguments)]
pub fn update_managed_fields(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    operation: &str,
    subresource: Option<&str>,
    schema: Option<SchemaNode<'_>>,
    api_version: &str,
    now: &str,
) {
    if !new.is_object() {
        return;
    }
    let sent = new.pointer("/metadata/managedFields").cloned();
    let old_fields = old.and_then(|o| o.pointer("/metadata/managedFields"));
    if let Some(Value::Array(sent_entries)) = &sent
        && !sent_entries.is_empty()
    {
        if sent_entries.iter().all(is_reset_entry) {
            write_entries(new, &[]);
            return;
        }
        let explicit = old.is_none() || old_fields != sent.as_ref();
        let decodes = sent_entries.iter().all(|e| Entry::from_json(e).is_ok());
        if explicit && decodes {
            return;
        }
    }

    let mut entries = read_entries(old);
    let scope = Scope::of(subresource);
    let root = Ty::root(schema);
    let empty = Value::Object(Map::new());
    let old_flat = flatten(old.unwrap_or(&empty), &root, false).unwrap_or_default();
    let new_flat = flatten(new, &root, false).unwrap_or_default();
    let diff = compare(&old_flat, &new_flat, scope, old.is_none());
    let changed = diff.added.union(&diff.modified);
    let taken = changed.union(&diff.removed);

    let mut mine = None;
    for (i, e) in entries.iter_mut().enumerate() {
        if mine.is_none() && e.is_slot(manager, operation, api_version, subresource) {
            mine = Some(i);
            e.fields = e.fields.difference(&diff.removed).union(&changed);
            if !changed.is_empty() {
                e.time = Some(now.to_string());
            }
        } else {
            e.fields = e.fields.difference(&taken);
        }
    }
    if mine.is_none() && !changed.is_empty() {
        entries.push(Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            time: Some(now.to_string()),
            subresource: subresource.map(str::to_string),
            fields: changed,
        });
    }
    entries.retain(|e| !e.fields.is_empty());
    sort_entries(&mut entries);
    write_entries(new, &entries);
}

/// `{}` (or an entry with neither manager nor fields): the way to clear managedFields.
fn is_reset_entry(e: &Value) -> bool {
    match e {
        Value::Object(m) => {
            m.get("manager")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
                && m.get("fieldsV1")
                    .is_none_or(|f| f.is_null() || f.as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Value {
        json!({
            "Deployment": {"type": "object", "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"$ref": "#/components/schemas/ObjectMeta"},
                "spec": {"$ref": "#/components/schemas/DeploymentSpec"},
                "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
            }},
            "ObjectMeta": {"type": "object", "properties": {
                "name": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "finalizers": {"type": "array", "items": {"type": "string"},
                    "x-kubernetes-patch-strategy": "merge"},
                "managedFields": {"type": "array", "items": {"type": "object"}}
            }},
            "DeploymentSpec": {"type": "object", "properties": {
                "replicas": {"type": "integer"},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "args": {"type": "array", "items": {"type": "string"}},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "template": {"type": "object", "properties": {
                    "spec": {"$ref": "#/components/schemas/PodSpec"}
                }}
            }},
            "PodSpec": {"type": "object", "required": ["containers"], "properties": {
                "containers": {"type": "array", "items": {"$ref": "#/components/schemas/Container"},
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}
            }},
            "Container": {"type": "object", "properties": {
                "name": {"type": "string"},
                "image": {"type": "string"},
                "ports": {"type": "array", "items": {"$ref": "#/components/schemas/ContainerPort"},
                    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["containerPort", "protocol"]}
            }},
            "ContainerPort": {"type": "object", "properties": {
                "containerPort": {"type": "integer"},
                "protocol": {"type": "string", "default": "TCP"}
            }}
        })
    }

    const AV: &str = "apps/v1";
    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-01T00:01:00Z";
    const A: &str = "kubectl-client-side-apply";
    const B: &str = "b-applier";

    fn with_schema<R>(f: impl FnOnce(Option<SchemaNode<'_>>) -> R) -> R {
        let d = defs();
        let defs = d.as_object().unwrap();
        f(SchemaNode::definition(defs, "Deployment"))
    }

    fn deployment(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1"}
            ]}}}
        })
    }

    /// A Deployment created by A with an Update.
    fn created() -> Value {
        let mut obj = deployment(3);
        with_schema(|s| update_managed_fields(None, &mut obj, A, "Update", None, s, AV, T0));
        obj
    }

    fn entry<'a>(obj: &'a Value, manager: &str, op: &str) -> Option<&'a Value> {
        obj["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == op)
    }

    fn owns(obj: &Value, manager: &str, op: &str, path: &[&str]) -> bool {
        entry(obj, manager, op)
            .map(|e| FieldSet::from_json(&e["fieldsV1"]).unwrap().contains(path))
            .unwrap_or(false)
    }

    fn cfg(body: Value) -> Value {
        let mut c =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        for (k, v) in body.as_object().unwrap() {
            if k == "metadata" {
                for (mk, mv) in v.as_object().unwrap() {
                    c["metadata"][mk] = mv.clone();
                }
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn do_apply(
        live: &Value,
        config: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApplyError> {
        with_schema(|s| apply(Some(live), config, manager, force, s, AV, T1))
    }

    #[test]
    fn create_records_update_entry() {
        let obj = created();
        let e = entry(&obj, A, "Update").unwrap();
        assert_eq!(e["time"], T0);
        assert_eq!(e["apiVersion"], AV);
        assert_eq!(
            e["fieldsV1"].to_string(),
            r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
        );
        assert!(e.get("subresource").is_none());
    }

    #[test]
    fn conflict_then_force() {
        let live = created();
        let config = cfg(json!({"spec": {"replicas": 5}}));
        let err = do_apply(&live, &config, B, false).unwrap_err();
        let ApplyError::Conflicts(conflicts) = &err else {
            panic!("expected conflicts, got {err:?}");
        };
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].manager, A);
        assert_eq!(conflicts[0].field, ".spec.replicas");
        assert_eq!(
            conflict_message(conflicts, AV),
            r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
        );
        assert_eq!(
            conflicts[0].to_cause(AV),
            json!({"reason": "FieldManagerConflict", "message": "conflict with \"kubectl-client-side-apply\" using apps/v1", "field": ".spec.replicas"})
        );

        let out = do_apply(&live, &config, B, true).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert!(owns(&out, B, "Apply", &["f:spec", "f:replicas"]));
        assert!(!owns(&out, A, "Update", &["f:spec", "f:replicas"]));
        assert!(owns(
            &out,
            A,
            "Update",
            &["f:metadata", "f:labels", "f:app"]
        ));
        // Apply entries sort before Update entries.
        assert_eq!(out["metadata"]["managedFields"][0]["operation"], "Apply");
        assert_eq!(out["metadata"]["managedFields"][0]["time"], T1);
    }

    #[test]
    fn same_value_is_shared_not_a_conflict() {
        let live = created();
        let out = do_apply(&live, &cfg(json!({"spec": {"replicas": 3}})), B, false).unwrap();
        assert!(owns(&out, B, "Apply", &["f:spec", "f:replicas"]));
        assert!(owns(&out, A, "Update", &["f:spec", "f:replicas"]));
    }

    #[test]
    fn several_conflicts_message() {
        let live = created();
        let config = cfg(json!({"metadata": {"labels": {"app": "x"}}, "spec": {"replicas": 5}}));
        let Err(ApplyError::Conflicts(c)) = do_apply(&live, &config, B, false) else {
            panic!("expected conflicts");
        };
        assert_eq!(
            conflict_message(&c, AV),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .metadata.labels.app\n- .spec.replicas"
        );
        let e = ApplyError::Conflicts(c);
        assert!(e.to_string().starts_with("Apply failed with 2 conflicts"));
    }

    #[test]
    fn dropped_field_is_removed() {
        let live = created();
        let c1 = cfg(json!({"metadata": {"labels": {"tier": "fe"}}, "spec": {"replicas": 3}}));
        let o1 = do_apply(&live, &c1, B, false).unwrap();
        assert_eq!(
            o1["metadata"]["labels"],
            json!({"app": "web", "tier": "fe"})
        );
        let c2 = cfg(json!({"spec": {"replicas": 3}}));
        let o2 = do_apply(&o1, &c2, B, false).unwrap();
        assert_eq!(o2["metadata"]["labels"], json!({"app": "web"}));
        assert!(!owns(
            &o2,
            B,
            "Apply",
            &["f:metadata", "f:labels", "f:tier"]
        ));
        // replicas is still applied by B and owned by A too: stays.
        assert_eq!(o2["spec"]["replicas"], 3);
    }

    #[test]
    fn co_owned_field_survives_when_one_applier_drops_it() {
        let c = cfg(json!({"metadata": {"labels": {"shared": "yes"}}}));
        let o1 = with_schema(|s| apply(None, &c, "one", false, s, AV, T0)).unwrap();
        let o2 = do_apply(&o1, &c, "two", false).unwrap();
        let o3 = do_apply(&o2, &cfg(json!({})), "one", false).unwrap();
        assert_eq!(o3["metadata"]["labels"]["shared"], "yes");
        assert!(owns(
            &o3,
            "two",
            "Apply",
            &["f:metadata", "f:labels", "f:shared"]
        ));
        assert!(!owns(
            &o3,
            "one",
            "Apply",
            &["f:metadata", "f:labels", "f:shared"]
        ));
        let o4 = do_apply(&o3, &cfg(json!({})), "two", false).unwrap();
        assert!(o4["metadata"]["labels"].get("shared").is_none());
    }

    #[test]
    fn containers_merge_by_name() {
        let live = created();
        let c = cfg(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "image": "envoy", "ports": [{"containerPort": 80}]}
        ]}}}}));
        let out = do_apply(&live, &c, B, false).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers,
            &json!([{"name": "nginx", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy", "ports": [{"containerPort": 80}]}])
        );
        let b = &entry(&out, B, "Apply").unwrap()["fieldsV1"];
        assert_eq!(
            b.to_string(),
            r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"sidecar\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
        );
        // Changing nginx's image conflicts with A, naming the item path.
        let c2 = cfg(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}}),
        );
        let Err(ApplyError::Conflicts(cs)) = do_apply(&out, &c2, "c", false) else {
            panic!("expected conflicts");
        };
        assert_eq!(
            cs[0].field,
            r#".spec.template.spec.containers[name="nginx"].image"#
        );
        // B drops the sidecar: the item goes away.
        let out2 = do_apply(&out, &cfg(json!({})), B, false).unwrap();
        assert_eq!(
            out2["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx:1"}])
        );
        assert!(entry(&out2, B, "Apply").is_some());
    }

    #[test]
    fn dropped_item_stays_while_another_manager_owns_part_of_it() {
        let c = cfg(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "side", "image": "envoy:1", "ports": [{"containerPort": 80}]}
        ]}}}}));
        let o1 = do_apply(&created(), &c, B, false).unwrap();
        let mut o2 = o1.clone();
        o2["spec"]["template"]["spec"]["containers"][1]["image"] = json!("envoy:2");
        with_schema(|s| update_managed_fields(Some(&o1), &mut o2, "u", "Update", None, s, AV, T1));
        let o3 = do_apply(&o2, &cfg(json!({})), B, false).unwrap();
        assert_eq!(
            o3["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx:1"}, {"name": "side", "image": "envoy:2"}])
        );
    }

    #[test]
    fn set_lists_union_and_prune() {
        let c1 = cfg(json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"tags": ["x", "y"]}}));
        let o1 = with_schema(|s| apply(None, &c1, "one", false, s, AV, T0)).unwrap();
        let c2 = cfg(json!({"spec": {"tags": ["z", "y"]}}));
        let o2 = do_apply(&o1, &c2, "two", false).unwrap();
        // Live-only items keep their place, the others follow the configuration's order.
        assert_eq!(o2["spec"]["tags"], json!(["x", "z", "y"]));
        let two = &entry(&o2, "two", "Apply").unwrap()["fieldsV1"];
        assert_eq!(
            two.to_string(),
            r#"{"f:spec":{"f:tags":{"v:\"y\"":{},"v:\"z\"":{}}}}"#
        );
        let o3 = do_apply(
            &o2,
            &cfg(json!({"metadata": {"finalizers": ["a"]}})),
            "one",
            false,
        )
        .unwrap();
        assert_eq!(o3["metadata"]["finalizers"], json!(["a"]));
        // "x" was only one's; "y" stays because two applies it too.
        assert_eq!(o3["spec"]["tags"], json!(["z", "y"]));
        // A set item with the same value is shared, never a conflict.
        assert!(do_apply(&o3, &cfg(json!({"spec": {"tags": ["y"]}})), "three", false).is_ok());
    }

    #[test]
    fn atomic_lists_and_maps_are_leaves() {
        let c =
            cfg(json!({"spec": {"args": ["a", "b"], "selector": {"matchLabels": {"app": "web"}}}}));
        let o = with_schema(|s| apply(None, &c, "one", false, s, AV, T0)).unwrap();
        assert_eq!(
            entry(&o, "one", "Apply").unwrap()["fieldsV1"].to_string(),
            r#"{"f:spec":{"f:args":{},"f:selector":{}}}"#
        );
        let Err(ApplyError::Conflicts(cs)) =
            do_apply(&o, &cfg(json!({"spec": {"args": ["a"]}})), "two", false)
        else {
            panic!("expected conflict");
        };
        assert_eq!(cs[0].field, ".spec.args");
    }

    #[test]
    fn managed_fields_literal_shape() {
        let c = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
        });
        let d = defs();
        let defs = d.as_object().unwrap();
        let pod_defs = json!({"type": "object", "properties": {
            "metadata": {"$ref": "#/components/schemas/ObjectMeta"},
            "spec": {"$ref": "#/components/schemas/PodSpec"}
        }});
        let out = apply(
            None,
            &c,
            "kubectl",
            false,
            Some(SchemaNode::new(defs, &pod_defs)),
            "v1",
            T0,
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["managedFields"].to_string(),
            r#"[{"manager":"kubectl","operation":"Apply","apiVersion":"v1","time":"2024-01-01T00:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}]"#
        );
        assert_eq!(out["spec"], c["spec"]);
    }

    #[test]
    fn invalid_configs() {
        let live = created();
        let c = cfg(json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}));
        let Err(ApplyError::Invalid(msg)) = do_apply(&live, &c, B, false) else {
            panic!("expected invalid");
        };
        assert!(
            msg.contains(
                r#"associative list with keys has an element that omits key field "name""#
            ),
            "{msg}"
        );
        let c = cfg(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}),
        );
        let Err(ApplyError::Invalid(msg)) = do_apply(&live, &c, B, false) else {
            panic!("expected invalid");
        };
        assert!(
            msg.contains(r#"duplicate entries for key [name="a"]"#),
            "{msg}"
        );
        assert!(matches!(
            do_apply(&live, &json!([1]), B, false),
            Err(ApplyError::Invalid(_))
        ));
        let c = cfg(json!({"metadata": {"managedFields": [{"manager": "x"}]}}));
        assert!(matches!(
            do_apply(&live, &c, B, false),
            Err(ApplyError::Invalid(_))
        ));
    }

    #[test]
    fn malformed_fields_v1_does_not_panic() {
        for bad in [
            json!([]),
            json!("x"),
            json!({"f:a": 1}),
            json!({"q:a": {}}),
            json!({"k:notjson": {}}),
            json!({"k:[1]": {}}),
            json!({"v:{": {}}),
            json!({"i:x": {}}),
            json!({".": 3}),
            json!({"f:a": {"f:b": [1]}}),
        ] {
            assert!(FieldSet::from_json(&bad).is_err(), "{bad}");
        }
        let mut deep = json!({});
        for _ in 0..400 {
            deep = json!({ "f:a": deep });
        }
        assert!(FieldSet::from_json(&deep).is_err());
        // Malformed entries in a live object are dropped rather than failing.
        let mut live = created();
        live["metadata"]["managedFields"] = json!([{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"bogus": 1}}]);
        // (the object then counts as unmanaged: its fields are before-first-apply's).
        let out = do_apply(&live, &cfg(json!({"spec": {"replicas": 9}})), B, true).unwrap();
        assert_eq!(out["spec"]["replicas"], 9);
        assert!(owns(&out, B, "Apply", &["f:spec", "f:replicas"]));
        assert!(entry(&out, "m", "Update").is_none());
        // And the same on update.
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(4);
        with_schema(|s| update_managed_fields(Some(&live), &mut new, A, "Update", None, s, AV, T1));
        assert!(owns(&new, A, "Update", &["f:spec", "f:replicas"]));
    }

    #[test]
    fn field_set_round_trip_and_ops() {
        let text = r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        let s = FieldSet::from_json(&v).unwrap();
        assert_eq!(s.to_json().to_string(), text);
        assert_eq!(
            s.leaf_paths(),
            vec![
                ".metadata.labels",
                ".metadata.labels.app",
                r#".spec.containers[name="nginx"]"#,
                r#".spec.containers[name="nginx"].image"#,
                r#".spec.containers[name="nginx"].name"#,
            ]
        );
        let mut t = FieldSet::new();
        t.insert(&["f:metadata", "f:labels", "f:app"]);
        let d = s.difference(&t);
        assert!(!d.contains(&["f:metadata", "f:labels", "f:app"]));
        assert!(d.contains(&["f:metadata", "f:labels"]));
        assert_eq!(d.union(&t), s);
        assert_eq!(s.intersection(&t), t);
        assert!(FieldSet::new().to_json() == json!({}));
        // Keys are re-encoded canonically.
        let loose = FieldSet::from_json(&json!({"k:{ \"b\": 1, \"a\": 2 }": {}})).unwrap();
        assert!(loose.contains(&[r#"k:{"a":2,"b":1}"#]));
    }

    #[test]
    fn update_moves_ownership_and_records_status_separately() {
        let live = do_apply(&created(), &cfg(json!({"spec": {"replicas": 3}})), B, false).unwrap();
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(7);
        new["status"] = json!({"replicas": 7});
        with_schema(|s| {
            update_managed_fields(Some(&live), &mut new, "hpa", "Update", None, s, AV, T1)
        });
        assert!(owns(&new, "hpa", "Update", &["f:spec", "f:replicas"]));
        assert!(!owns(&new, "hpa", "Update", &["f:status", "f:replicas"]));
        assert!(!owns(&new, B, "Apply", &["f:spec", "f:replicas"]));
        assert!(!owns(&new, A, "Update", &["f:spec", "f:replicas"]));
        let mut st = new.clone();
        st["status"] = json!({"replicas": 8});
        st["spec"]["replicas"] = json!(1);
        with_schema(|s| {
            update_managed_fields(
                Some(&new),
                &mut st,
                "ctrl",
                "Update",
                Some("status"),
                s,
                AV,
                T1,
            )
        });
        let e = entry(&st, "ctrl", "Update").unwrap();
        assert_eq!(e["subresource"], "status");
        assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
        // Nothing changed: no entry, no new time.
        let mut same = st.clone();
        with_schema(|s| {
            update_managed_fields(Some(&st), &mut same, "idle", "Update", None, s, AV, "later")
        });
        assert_eq!(same, st);
    }

    #[test]
    fn update_keeps_explicit_managed_fields_and_reset() {
        let live = created();
        let mut new = live.clone();
        let custom = json!([{"manager": "x", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        new["metadata"]["managedFields"] = custom.clone();
        new["spec"]["replicas"] = json!(4);
        with_schema(|s| update_managed_fields(Some(&live), &mut new, A, "Update", None, s, AV, T1));
        assert_eq!(new["metadata"]["managedFields"], custom);

        let mut reset = live.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        with_schema(|s| {
            update_managed_fields(Some(&live), &mut reset, A, "Update", None, s, AV, T1)
        });
        assert!(reset["metadata"].get("managedFields").is_none());

        // An empty list is "not sent": the old entries carry on.
        let mut cleared = live.clone();
        cleared["metadata"]["managedFields"] = json!([]);
        with_schema(|s| {
            update_managed_fields(Some(&live), &mut cleared, A, "Update", None, s, AV, T1)
        });
        assert_eq!(
            cleared["metadata"]["managedFields"],
            live["metadata"]["managedFields"]
        );

        // Removing everything a manager owned drops its entry and the key.
        let mut bare = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        update_managed_fields(None, &mut bare, "m", "Update", None, None, "v1", T0);
        assert!(bare["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn no_schema_maps_granular_lists_atomic() {
        let c = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"a": {"b": 1}, "l": [1, 2]}});
        let o = apply(None, &c, "m", false, None, "x/v1", T0).unwrap();
        // Untyped map entries are owned themselves too (".") as in Kubernetes' ToFieldSet.
        assert_eq!(
            entry(&o, "m", "Apply").unwrap()["fieldsV1"],
            json!({"f:spec": {"f:a": {".": {}, "f:b": {}}, "f:l": {}}})
        );
        let c2 = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"a": {"c": 2}, "l": [3]}});
        let o2 = apply(Some(&o), &c2, "m", false, None, "x/v1", T1).unwrap();
        assert_eq!(o2["spec"], json!({"a": {"c": 2}, "l": [3]}));
        // Another manager adds spec.a.d; when m drops spec.a, only d survives.
        let mut o3 = o2.clone();
        o3["spec"]["a"]["d"] = json!(4);
        update_managed_fields(Some(&o2), &mut o3, "u", "Update", None, None, "x/v1", T1);
        let c4 = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"l": [3]}});
        let o4 = apply(Some(&o3), &c4, "m", false, None, "x/v1", T1).unwrap();
        assert_eq!(o4["spec"], json!({"a": {"d": 4}, "l": [3]}));
    }

    #[test]
    fn update_marks_new_maps_and_lists() {
        let live = created();
        let mut new = live.clone();
        new["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 80, "protocol": "TCP"}]);
        new["metadata"]["labels"] = json!({});
        with_schema(|s| {
            update_managed_fields(Some(&live), &mut new, "u", "Update", None, s, AV, T1)
        });
        assert_eq!(
            entry(&new, "u", "Update").unwrap()["fieldsV1"].to_string(),
            r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:ports":{".":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}}}}}}}}"#
        );
        // Emptying the labels removed A's label ownership but owns nothing new.
        assert!(!owns(
            &new,
            A,
            "Update",
            &["f:metadata", "f:labels", "f:app"]
        ));
        assert!(!owns(&new, "u", "Update", &["f:metadata", "f:labels"]));
    }

    #[test]
    fn unmanaged_object_is_owned_before_first_apply() {
        let live = deployment(3);
        let Err(ApplyError::Conflicts(cs)) =
            do_apply(&live, &cfg(json!({"spec": {"replicas": 4}})), B, false)
        else {
            panic!("expected a conflict");
        };
        assert_eq!(cs[0].manager, BEFORE_FIRST_APPLY);
        let out = do_apply(&live, &cfg(json!({"spec": {"replicas": 3}})), B, false).unwrap();
        assert!(owns(
            &out,
            BEFORE_FIRST_APPLY,
            "Update",
            &["f:spec", "f:replicas"]
        ));
        assert!(owns(&out, B, "Apply", &["f:spec", "f:replicas"]));
    }

    #[test]
    fn status_apply_scope() {
        let live = created();
        let c = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {"replicas": 2}});
        let out = do_apply(&live, &c, "ctrl", false).unwrap();
        let e = entry(&out, "ctrl", "Apply").unwrap();
        assert_eq!(e["subresource"], "status");
        assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    }
}
