//! Strategic merge patch (`application/strategic-merge-patch+json`), applied the way
//! apimachinery's `strategicpatch.StrategicMergePatch` applies it on the API server.
//!
//! The patch strategies and merge keys come from the OpenAPI schema of the resource
//! (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`, see
//! [`super::merge_keys`]). What a patch does, field by field:
//!
//! * maps are merged key by key; `null` removes a key; a key the object does not have yet
//!   takes the patch value (with its `null`s and directives taken out);
//! * lists whose strategy is `merge` are merged: lists of objects by their merge key (an
//!   item whose key is not in the object yet is added), lists of scalars as ordered sets;
//!   every other list is replaced by the patch's;
//! * a map under a field with strategy `replace` is replaced;
//! * directives: `$patch: replace` / `$patch: delete` in a map; `{"<mergeKey>": …,
//!   "$patch": "delete"}` and `{"$patch": "replace"}` as items of a merged list;
//!   `$retainKeys` (keys of the map to keep); `$setElementOrder/<field>` (the order of a
//!   merged list); `$deleteFromPrimitiveList/<field>` (scalars to remove from a merged list).
//!   `$patch: merge` and any other `$` key the schema does not declare are errors.
//!
//! Order of merged lists, as apimachinery does it: `$setElementOrder` wins; without it the
//! patch's items keep the patch's order and the object's other items keep theirs, the two
//! interleaved by the object's order, so an item the object did not have comes before the
//! object's items that follow it (a new item in a one-item patch lands first).
//!
//! Where this departs from apimachinery, on purpose: values taken whole from the patch never
//! keep directive keys or `null`s (apimachinery leaves them to the typed decoding that
//! follows it on a real API server, which drops them); `$deleteFromPrimitiveList` on a list
//! without the merge strategy removes the items instead of replacing the list by the items
//! to remove; lists holding `null` or mixed item types are errors instead of panics; a patch
//! or object nested deeper than [`MAX_NESTING`] levels is refused.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::api::schema::SchemaNode;

/// The deepest nesting of objects and lists accepted in an object or a patch.
pub const MAX_NESTING: usize = 200;

const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a strategic merge patch could not be applied. The messages follow apimachinery's and
/// end with the path of the field concerned (`.spec.containers[name="app"].env`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The object or the patch is not a JSON object.
    #[error("invalid JSON document: {0}")]
    InvalidDocument(&'static str),
    /// A field the schema does not know, where the patch has to descend into it.
    #[error(
        "unable to find api field in struct {definition} for the json field {field:?} (at {path})"
    )]
    UnknownField {
        definition: String,
        field: String,
        path: String,
    },
    /// An item of a merged list without the list's merge key.
    #[error("map: {item} does not contain declared merge key: {key} (at {path})")]
    MissingMergeKey {
        item: String,
        key: String,
        path: String,
    },
    /// A `$patch` directive other than `replace` or `delete`.
    #[error("unknown patch type: {directive} in map: {map} (at {path})")]
    UnknownPatchType {
        directive: String,
        map: String,
        path: String,
    },
    /// `$patch: merge` as an item of a list.
    #[error("merging lists cannot yet be specified in the patch (at {path})")]
    MergeDirectiveInList { path: String },
    /// A list of objects with the merge strategy but no merge key in the schema.
    #[error("cannot merge lists without merge key (at {path})")]
    NoMergeKey { path: String },
    /// A `$` key that is neither a directive nor a field of the schema.
    #[error("unknown directive {key:?} in patch (at {path})")]
    UnknownDirective { key: String, path: String },
    /// A malformed `$deleteFromPrimitiveList/<field>` key or value.
    #[error("invalid patch format of primitive list: {reason} (at {path})")]
    BadPrimitiveList { reason: String, path: String },
    /// A malformed `$retainKeys` directive, or a patch field it does not retain.
    #[error("invalid patch format of retainKeys: {reason} (at {path})")]
    BadRetainKeys { reason: String, path: String },
    /// A malformed `$setElementOrder/<field>` directive.
    #[error("invalid patch format of setElementOrder list: {reason} (at {path})")]
    BadSetElementOrder { reason: String, path: String },
    /// The patch list's items are not in the order `$setElementOrder` gives.
    #[error(
        "the order in patch list {patch} doesn't match $setElementOrder list {order} (at {path})"
    )]
    OrderMismatch {
        patch: String,
        order: String,
        path: String,
    },
    /// A list whose items are lists.
    #[error("lists of lists are not supported (at {path})")]
    ListOfLists { path: String },
    /// A list whose items are not all of one JSON type, or hold `null`.
    #[error("list element types are not identical: {detail} (at {path})")]
    MixedListElements { detail: String, path: String },
    /// `$setElementOrder` over a list that is empty in both the object and the patch.
    #[error("no elements in any of the given slices (at {path})")]
    NoElements { path: String },
    /// A value of the wrong JSON type where the patch format requires one.
    #[error("expected {expected}, but received {actual} (at {path})")]
    WrongType {
        expected: &'static str,
        actual: &'static str,
        path: String,
    },
    /// An `x-kubernetes-patch-strategy` that cannot be used.
    #[error("unexpected patch strategy {strategy:?} (at {path})")]
    BadStrategy { strategy: String, path: String },
    /// Nesting deeper than [`MAX_NESTING`].
    #[error(
        "the object or the patch is nested more than {} levels deep",
        MAX_NESTING
    )]
    TooDeep,
}

/// Apply the strategic merge patch `patch` to `original`.
///
/// `schema` is the root definition of the resource (e.g. `io.k8s.api.apps.v1.Deployment`);
/// `None` merges without patch strategies (maps merged, lists replaced, as in a JSON merge
/// patch) while still honouring the directives. `original` may be `null` (an empty object);
/// a `null` patch changes nothing.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: Option<SchemaNode<'_>>,
) -> Result<Value, PatchError> {
    if nesting_exceeds(original, MAX_NESTING) || nesting_exceeds(patch, MAX_NESTING) {
        return Err(PatchError::TooDeep);
    }
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => {
            return Err(PatchError::InvalidDocument(
                "the object is not a JSON object",
            ));
        }
    };
    let patch = match patch {
        Value::Object(m) => m.clone(),
        Value::Null => return Ok(Value::Object(original)),
        _ => {
            return Err(PatchError::InvalidDocument(
                "the patch is not a JSON object",
            ));
        }
    };
    merge_map(original, patch, schema, &Path::ROOT, 0).map(Value::Object)
}

/// Whether `v` nests objects and lists more than `limit` levels deep (iteratively, so any
/// depth is safe to check).
fn nesting_exceeds(v: &Value, limit: usize) -> bool {
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Object(m) => {
                if depth >= limit {
                    return true;
                }
                stack.extend(m.values().map(|c| (c, depth + 1)));
            }
            Value::Array(a) => {
                if depth >= limit {
                    return true;
                }
                stack.extend(a.iter().map(|c| (c, depth + 1)));
            }
            _ => {}
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// Paths, for error messages.

#[derive(Clone, Copy)]
enum Seg<'p> {
    Root,
    Field(&'p str),
    Index(usize),
    Keyed(&'p str, &'p Value),
}

#[derive(Clone, Copy)]
struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    seg: Seg<'p>,
}

impl<'p> Path<'p> {
    const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    fn field(&'p self, name: &'p str) -> Path<'p> {
        Path {
            parent: Some(self),
            seg: Seg::Field(name),
        }
    }

    fn index(&'p self, i: usize) -> Path<'p> {
        Path {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }

    fn keyed(&'p self, key: &'p str, value: &'p Value) -> Path<'p> {
        Path {
            parent: Some(self),
            seg: Seg::Keyed(key, value),
        }
    }

    fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Field(name) => {
                    let plain = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if plain {
                        out.push('.');
                        out.push_str(name);
                    } else {
                        out.push('[');
                        out.push_str(&Value::String((*name).to_string()).to_string());
                        out.push(']');
                    }
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
                Seg::Keyed(key, value) => out.push_str(&format!("[{key}={}]", brief(value))),
            }
        }
        if out.is_empty() {
            out.push('.');
        }
        out
    }
}

/// Compact JSON of `v`, cut short for error messages.
fn brief(v: &Value) -> String {
    const LIMIT: usize = 200;
    let s = v.to_string();
    if s.len() <= LIMIT {
        return s;
    }
    let mut end = LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn brief_map(m: &Map<String, Value>) -> String {
    brief(&Value::Object(m.clone()))
}

fn brief_list(l: &[Value]) -> String {
    brief(&Value::Array(l.to_vec()))
}

// ---------------------------------------------------------------------------------------
// JSON kinds and value identity (Go compares decoded JSON with `==`; all numbers are float64).

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

fn kind_name(v: &Value) -> &'static str {
    match kind(v) {
        Kind::Null => "null",
        Kind::Bool => "a boolean",
        Kind::Number => "a number",
        Kind::String => "a string",
        Kind::Array => "a list",
        Kind::Object => "an object",
    }
}

/// A hashable identity of a JSON value: equal keys for values Go's `==` finds equal.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Key {
    Null,
    Bool(bool),
    Number(u64),
    String(String),
    Composite(String),
}

fn key_of(v: &Value) -> Key {
    match v {
        Value::Null => Key::Null,
        Value::Bool(b) => Key::Bool(*b),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // -0.0 == 0.0 in Go.
            let f = if f == 0.0 { 0.0 } else { f };
            Key::Number(f.to_bits())
        }
        Value::String(s) => Key::String(s.clone()),
        _ => Key::Composite(v.to_string()),
    }
}

/// What an item is ordered by: its merge key value, or itself for scalars.
type OrderFn<'a> = dyn Fn(&Value) -> Option<Key> + 'a;

/// The position of the first occurrence of each key.
fn positions(keys: &[Key]) -> HashMap<&Key, usize> {
    let mut pos = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        pos.entry(k).or_insert(i);
    }
    pos
}

// ---------------------------------------------------------------------------------------
// Schema lookups.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Strategy {
    Default,
    Merge,
    Replace,
}

#[derive(Clone, Copy)]
struct FieldMeta<'s> {
    /// The schema of the field's value (of its items, for a list).
    schema: Option<SchemaNode<'s>>,
    strategy: Strategy,
    merge_key: Option<&'s str>,
}

const NO_META: FieldMeta<'static> = FieldMeta {
    schema: None,
    strategy: Strategy::Default,
    merge_key: None,
};

/// apimachinery's `extractRetainKeysPatchStrategy`: `retainKeys` may come with one other
/// strategy; it only matters when patches are computed, so it is dropped here.
fn parse_strategy(strategies: &[&str], path: &Path<'_>) -> Result<Strategy, PatchError> {
    let other = match strategies {
        [] => return Ok(Strategy::Default),
        [one] => *one,
        ["retainKeys", other] | [other, "retainKeys"] => *other,
        _ => {
            return Err(PatchError::BadStrategy {
                strategy: strategies.join(","),
                path: path.render(),
            });
        }
    };
    Ok(match other {
        "merge" => Strategy::Merge,
        "replace" => Strategy::Replace,
        _ => Strategy::Default,
    })
}

/// Whether `node` accepts fields it does not declare.
fn is_open(node: SchemaNode<'_>) -> bool {
    node.preserves_unknown_fields() || node.properties().is_none_or(|p| p.is_empty())
}

/// The patch metadata of field `key` of an object described by `schema`, for descending into
/// it (apimachinery's `LookupPatchMetadataForStruct` / `…ForSlice`): unknown fields of a
/// closed object are an error.
fn lookup<'s>(
    schema: Option<SchemaNode<'s>>,
    key: &str,
    list: bool,
    path: &Path<'_>,
) -> Result<FieldMeta<'s>, PatchError> {
    let Some(node) = schema else {
        return Ok(NO_META);
    };
    if node.declares_property(key) {
        let prop = node.property(key);
        let strategy = parse_strategy(&node.patch_strategies(key), path)?;
        return Ok(FieldMeta {
            schema: if list {
                prop.and_then(|p| p.items())
            } else {
                prop
            },
            strategy,
            merge_key: node.patch_merge_key(key),
        });
    }
    if let Some(values) = node.additional_properties() {
        return Ok(FieldMeta {
            schema: if list { values.items() } else { Some(values) },
            ..NO_META
        });
    }
    if is_open(node) {
        return Ok(NO_META);
    }
    let definition = node
        .definition_name()
        .map(|n| n.rsplit('.').next().unwrap_or(n).to_string())
        .unwrap_or_else(|| "object".to_string());
    Err(PatchError::UnknownField {
        definition,
        field: key.to_string(),
        path: path.render(),
    })
}

/// The schema of field `key`'s value, if the schema says; never an error.
fn child<'s>(schema: Option<SchemaNode<'s>>, key: &str) -> Option<SchemaNode<'s>> {
    let node = schema?;
    if node.declares_property(key) {
        node.property(key)
    } else {
        node.additional_properties()
    }
}

fn declares(schema: Option<SchemaNode<'_>>, key: &str) -> bool {
    schema.is_some_and(|s| s.declares_property(key))
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE_MARKER
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// `"<prefix>/<field>"` → `field`.
fn extract_key<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let (head, field) = key.split_once('/')?;
    (head == prefix).then_some(field)
}

/// Put `value` at `key`, in place if the key is there already.
fn put(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key, value);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Values taken whole from the patch.

/// A patch value that replaces (or creates) a field: `null`s of maps are dropped, maps with
/// `$patch: delete` vanish, `$patch: replace` and the other directives are taken out.
/// `None` when nothing is left of it.
fn sanitize(
    v: Value,
    schema: Option<SchemaNode<'_>>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Option<Value>, PatchError> {
    if depth > MAX_NESTING {
        return Err(PatchError::TooDeep);
    }
    match v {
        Value::Object(m) => {
            if let Some(directive) = m.get(DIRECTIVE_MARKER) {
                match directive.as_str() {
                    Some("delete") => return Ok(None),
                    Some("replace") => {}
                    _ => {
                        return Err(PatchError::UnknownPatchType {
                            directive: brief(directive),
                            map: brief_map(&m),
                            path: path.render(),
                        });
                    }
                }
            }
            Ok(Some(Value::Object(sanitize_map(m, schema, path, depth)?)))
        }
        Value::Array(items) => Ok(Some(Value::Array(sanitize_list(
            items,
            schema.and_then(|s| s.items()),
            path,
            depth,
        )?))),
        scalar => Ok(Some(scalar)),
    }
}

fn sanitize_map(
    m: Map<String, Value>,
    schema: Option<SchemaNode<'_>>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Map<String, Value>, PatchError> {
    let mut out = Map::new();
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        if k.starts_with('$') && !declares(schema, &k) {
            if is_directive_key(&k) {
                continue;
            }
            return Err(PatchError::UnknownDirective {
                key: k,
                path: path.render(),
            });
        }
        let sub = child(schema, &k);
        if let Some(v) = sanitize(v, sub, &path.field(&k), depth + 1)? {
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// Items of a list taken whole; `items` is the schema of one item.
fn sanitize_list(
    list: Vec<Value>,
    items: Option<SchemaNode<'_>>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.into_iter().enumerate() {
        let item_path = path.index(i);
        if let Value::Object(m) = &item
            && let Some(directive) = m.get(DIRECTIVE_MARKER)
        {
            match directive.as_str() {
                Some("delete" | "replace") => continue,
                Some("merge") => {
                    return Err(PatchError::MergeDirectiveInList {
                        path: item_path.render(),
                    });
                }
                _ => {
                    return Err(PatchError::UnknownPatchType {
                        directive: brief(directive),
                        map: brief_map(m),
                        path: item_path.render(),
                    });
                }
            }
        }
        if let Some(v) = sanitize(item, items, &item_path, depth + 1)? {
            out.push(v);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Maps.

/// apimachinery's `mergeMap`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Option<SchemaNode<'_>>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Map<String, Value>, PatchError> {
    if depth > MAX_NESTING {
        return Err(PatchError::TooDeep);
    }
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(DIRECTIVE_MARKER);
                sanitize_map(patch, schema, path, depth)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::UnknownPatchType {
                directive: brief(directive),
                map: brief_map(&patch),
                path: path.render(),
            }),
        };
    }

    apply_retain_keys(&mut original, &mut patch, path)?;
    apply_set_element_order(&mut original, &mut patch, schema, path, depth)?;

    // Deletions from primitive lists before the rest, so that a value both deleted and
    // added by one patch stays.
    let mut entries: Vec<(String, Value)> = patch.into_iter().collect();
    entries.sort_by_key(|(k, _)| !k.starts_with(DELETE_FROM_PRIMITIVE_LIST));

    for (raw_key, patch_value) in entries {
        let (key, is_delete_list) = if raw_key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            match extract_key(&raw_key, DELETE_FROM_PRIMITIVE_LIST) {
                Some(field) => (field.to_string(), true),
                None => {
                    return Err(PatchError::BadPrimitiveList {
                        reason: format!("malformed directive key {raw_key:?}"),
                        path: path.render(),
                    });
                }
            }
        } else {
            if raw_key.starts_with('$') && !declares(schema, &raw_key) {
                return Err(PatchError::UnknownDirective {
                    key: raw_key,
                    path: path.render(),
                });
            }
            (raw_key, false)
        };
        let field_path = path.field(&key);

        if is_delete_list && !patch_value.is_array() {
            return Err(PatchError::BadPrimitiveList {
                reason: format!(
                    "the value of \"$deleteFromPrimitiveList/{key}\" must be a list of values to delete"
                ),
                path: path.render(),
            });
        }

        if patch_value.is_null() {
            original.shift_remove(&key);
            continue;
        }

        let same_kind = original
            .get(&key)
            .is_some_and(|ov| kind(ov) == kind(&patch_value));
        if !same_kind {
            if !is_delete_list {
                match sanitize(patch_value, child(schema, &key), &field_path, depth + 1)? {
                    Some(v) => put(&mut original, key, v),
                    None => {
                        original.shift_remove(&key);
                    }
                }
            }
            continue;
        }

        let Some(slot) = original.get_mut(&key) else {
            continue;
        };
        match (slot, patch_value) {
            (Value::Object(om), Value::Object(pm)) => {
                let meta = lookup(schema, &key, false, &field_path)?;
                let merged =
                    if meta.strategy == Strategy::Replace && !pm.contains_key(DIRECTIVE_MARKER) {
                        sanitize_map(pm, meta.schema, &field_path, depth + 1)?
                    } else {
                        merge_map(std::mem::take(om), pm, meta.schema, &field_path, depth + 1)?
                    };
                *om = merged;
            }
            (Value::Array(ol), Value::Array(pl)) => {
                let meta = lookup(schema, &key, true, &field_path)?;
                let merged = merge_list_field(
                    std::mem::take(ol),
                    pl,
                    &meta,
                    is_delete_list,
                    &field_path,
                    depth + 1,
                )?;
                *ol = merged;
            }
            (slot, scalar) => *slot = scalar,
        }
    }
    Ok(original)
}

/// apimachinery's `applyRetainKeysDirective`: drop the keys of `original` that
/// `$retainKeys` does not list; every field the patch sets must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &Path<'_>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = retain else {
        return Err(PatchError::BadRetainKeys {
            reason: format!("expected a list, received {}", kind_name(&retain)),
            path: path.render(),
        });
    };
    let keep: HashSet<&str> = list.iter().filter_map(Value::as_str).collect();
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !keep.contains(k.as_str()) {
            return Err(PatchError::BadRetainKeys {
                reason: format!("the patch sets {k:?}, which $retainKeys does not list"),
                path: path.render(),
            });
        }
    }
    original.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Lists.

/// apimachinery's `mergeSliceHandler`, for a field whose object and patch values are lists.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: &FieldMeta<'_>,
    is_delete_list: bool,
    path: &Path<'_>,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    if meta.strategy == Strategy::Merge {
        merge_list(
            original,
            patch,
            meta.schema,
            meta.merge_key,
            is_delete_list,
            path,
            depth,
        )
    } else if is_delete_list {
        Ok(delete_from_list(original, &patch))
    } else {
        sanitize_list(patch, meta.schema, path, depth)
    }
}

/// The kind shared by the items of `lists` (apimachinery's `sliceElementType`).
fn element_kind(lists: &[&[Value]], path: &Path<'_>) -> Result<Kind, PatchError> {
    let mut first: Option<Kind> = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = kind(v);
        match first {
            None => {
                if k == Kind::Array {
                    return Err(PatchError::ListOfLists {
                        path: path.render(),
                    });
                }
                if k == Kind::Null {
                    return Err(PatchError::MixedListElements {
                        detail: "the list holds null".to_string(),
                        path: path.render(),
                    });
                }
                first = Some(k);
            }
            Some(f) if f != k => {
                return Err(PatchError::MixedListElements {
                    detail: format!("{f:?} and {k:?} items"),
                    path: path.render(),
                });
            }
            Some(_) => {}
        }
    }
    first.ok_or_else(|| PatchError::NoElements {
        path: path.render(),
    })
}

/// The merge key value of a list item.
fn item_key<'v>(
    item: &'v Value,
    merge_key: &str,
    path: &Path<'_>,
) -> Result<&'v Value, PatchError> {
    match item {
        Value::Object(m) => m.get(merge_key).ok_or_else(|| PatchError::MissingMergeKey {
            item: brief_map(m),
            key: merge_key.to_string(),
            path: path.render(),
        }),
        other => Err(PatchError::WrongType {
            expected: "an object",
            actual: kind_name(other),
            path: path.render(),
        }),
    }
}

fn is_delete_item(v: &Value) -> bool {
    v.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some("delete")
}

fn has_directive(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
}

/// apimachinery's `mergeSlice`.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Option<SchemaNode<'_>>,
    merge_key: Option<&str>,
    is_delete_list: bool,
    path: &Path<'_>,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&[&original, &patch], path)?;

    if kind != Kind::Object {
        if is_delete_list {
            return Ok(delete_from_list(original, &patch));
        }
        if merge_key.is_some() {
            // apimachinery partitions by merge key when the schema gives one, whatever the
            // items are; scalars then fail as not being maps.
            return Err(PatchError::WrongType {
                expected: "an object",
                actual: kind_name(original.first().or(patch.first()).unwrap_or(&Value::Null)),
                path: path.render(),
            });
        }
        let server_keys: Vec<Key> = original.iter().map(key_of).collect();
        let patch_keys: Vec<Key> = patch.iter().map(key_of).collect();
        let mut seen = HashSet::new();
        let merged: Vec<Value> = original
            .into_iter()
            .chain(patch)
            .filter(|v| seen.insert(key_of(v)))
            .collect();
        let in_patch: HashSet<&Key> = patch_keys.iter().collect();
        let (patch_items, server_only): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|v| in_patch.contains(&key_of(v)));
        let order_of = |v: &Value| Some(key_of(v));
        return Ok(normalize_order(
            patch_items,
            server_only,
            &patch_keys,
            &server_keys,
            &order_of,
        ));
    }

    let Some(merge_key) = merge_key else {
        return Err(PatchError::NoMergeKey {
            path: path.render(),
        });
    };
    let (original, patch) = apply_list_directives(original, patch, merge_key, path)?;

    let server_keys = original
        .iter()
        .map(|v| item_key(v, merge_key, path).map(key_of))
        .collect::<Result<Vec<_>, _>>()?;
    let patch_keys = patch
        .iter()
        .map(|v| item_key(v, merge_key, path).map(key_of))
        .collect::<Result<Vec<_>, _>>()?;

    // apimachinery's `mergeSliceWithoutSpecialElements`.
    let mut merged = original;
    let mut index: HashMap<Key, usize> = HashMap::new();
    for (i, k) in server_keys.iter().enumerate() {
        index.entry(k.clone()).or_insert(i);
    }
    for (item, key) in patch.into_iter().zip(patch_keys.iter()) {
        let Value::Object(pm) = item else {
            continue;
        };
        let key_value = pm.get(merge_key).cloned().unwrap_or(Value::Null);
        let item_path = path.keyed(merge_key, &key_value);
        match index
            .get(key)
            .and_then(|&i| merged.get_mut(i).map(|slot| (i, slot)))
        {
            Some((_, slot)) => {
                let om = match std::mem::take(slot) {
                    Value::Object(om) => om,
                    _ => Map::new(),
                };
                *slot = Value::Object(merge_map(om, pm, items, &item_path, depth + 1)?);
            }
            None => {
                if let Some(v) = sanitize(Value::Object(pm), items, &item_path, depth + 1)? {
                    index.insert(key.clone(), merged.len());
                    merged.push(v);
                }
            }
        }
    }

    let in_patch: HashSet<&Key> = patch_keys.iter().collect();
    let mut patch_items = Vec::new();
    let mut server_only = Vec::new();
    for item in merged {
        let key = key_of(item_key(&item, merge_key, path)?);
        if in_patch.contains(&key) {
            patch_items.push(item);
        } else {
            server_only.push(item);
        }
    }
    let order_of = |v: &Value| v.get(merge_key).map(key_of);
    Ok(normalize_order(
        patch_items,
        server_only,
        &patch_keys,
        &server_keys,
        &order_of,
    ))
}

/// apimachinery's `mergeSliceWithSpecialElements`: apply the `$patch` items of a merged list
/// of objects. Returns the object's list after deletions (or the patch's, for `replace`) and
/// the patch without its directive items.
fn apply_list_directives(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    path: &Path<'_>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut deleted: HashSet<Key> = HashSet::new();
    let mut replace = false;
    for (i, item) in patch.into_iter().enumerate() {
        let Some(directive) = item.get(DIRECTIVE_MARKER) else {
            plain.push(item);
            continue;
        };
        let item_path = path.index(i);
        match directive.as_str() {
            Some("delete") => {
                deleted.insert(key_of(item_key(&item, merge_key, &item_path)?));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::MergeDirectiveInList {
                    path: item_path.render(),
                });
            }
            _ => {
                return Err(PatchError::UnknownPatchType {
                    directive: brief(directive),
                    map: brief(&item),
                    path: item_path.render(),
                });
            }
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    let original = if deleted.is_empty() {
        original
    } else {
        original
            .into_iter()
            .filter(|v| {
                v.get(merge_key)
                    .is_none_or(|k| !deleted.contains(&key_of(k)))
            })
            .collect()
    };
    Ok((original, plain))
}

/// apimachinery's `deleteFromSlice`.
fn delete_from_list(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    let gone: HashSet<Key> = to_delete.iter().map(key_of).collect();
    current
        .into_iter()
        .filter(|v| !gone.contains(&key_of(v)))
        .collect()
}

/// apimachinery's `normalizeElementOrder`: the patch's items sorted by `patch_order`, the
/// object's other items by `server_order`, then interleaved by `server_order`.
fn normalize_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Key],
    server_order: &[Key],
    order_of: &OrderFn<'_>,
) -> Vec<Value> {
    let patch_items = sort_by_order(patch_items, patch_order, order_of);
    let server_pos = positions(server_order);
    let server_only = sort_by_order(server_only, server_order, order_of);

    // apimachinery's `mergeSortedSlice`, with the object's items as `left`.
    let pos = |v: &Value| order_of(v).and_then(|k| server_pos.get(&k).copied());
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!((pos(l), pos(r)), (Some(li), Some(ri)) if li < ri),
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(v) = next {
            out.push(v);
        }
    }
    out
}

/// apimachinery's `normalizeSliceOrder`: a stable sort by position in `order` (items it does
/// not have last), with `$patch: delete` items moved to the end.
fn sort_by_order(items: Vec<Value>, order: &[Key], order_of: &OrderFn<'_>) -> Vec<Value> {
    let pos = positions(order);
    let (mut keep, deletes): (Vec<Value>, Vec<Value>) =
        items.into_iter().partition(|v| !is_delete_item(v));
    keep.sort_by_cached_key(|v| {
        order_of(v)
            .and_then(|k| pos.get(&k).copied())
            .unwrap_or(usize::MAX)
    });
    keep.extend(deletes);
    keep
}

// ---------------------------------------------------------------------------------------
// $setElementOrder.

/// apimachinery's `validatePatchWithSetOrderList`: the patch list's items (without deletions)
/// must appear in `order`, in the same relative order.
fn validate_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
    path: &Path<'_>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = match merge_key {
        Some(_) => {
            for item in patch_list {
                if !item.is_object() {
                    return Err(PatchError::WrongType {
                        expected: "an object",
                        actual: kind_name(item),
                        path: path.render(),
                    });
                }
            }
            patch_list.iter().filter(|v| !is_delete_item(v)).collect()
        }
        None => patch_list.iter().collect(),
    };
    let same = |a: &Value, b: &Value| -> Result<bool, PatchError> {
        match merge_key {
            None => Ok(key_of(a) == key_of(b)),
            Some(mk) => Ok(key_of(item_key(a, mk, path)?) == key_of(item_key(b, mk, path)?)),
        }
    };
    let (mut pi, mut si) = (0, 0);
    while let (Some(p), Some(s)) = (non_delete.get(pi), order.get(si)) {
        if has_directive(p) {
            pi += 1;
            continue;
        }
        if same(p, s)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= order.len() {
        return Err(PatchError::OrderMismatch {
            patch: brief_list(patch_list),
            order: brief_list(order),
            path: path.render(),
        });
    }
    Ok(())
}

/// apimachinery's `mergePatchIntoOriginal`: merge each list that has a
/// `$setElementOrder/<field>` directive and put its items in that order.
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Option<SchemaNode<'_>>,
    path: &Path<'_>,
    depth: usize,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order) = patch.shift_remove(&directive) else {
            continue;
        };
        let Some(field) = extract_key(&directive, SET_ELEMENT_ORDER).map(str::to_string) else {
            return Err(PatchError::BadSetElementOrder {
                reason: format!("malformed directive key {directive:?}"),
                path: path.render(),
            });
        };
        let field_path = path.field(&field);
        let Value::Array(order) = order else {
            return Err(PatchError::WrongType {
                expected: "a list",
                actual: kind_name(&order),
                path: field_path.render(),
            });
        };
        let original_list = match original.get_mut(&field) {
            None => None,
            Some(Value::Array(l)) => Some(std::mem::take(l)),
            Some(other) => {
                return Err(PatchError::WrongType {
                    expected: "a list",
                    actual: kind_name(other),
                    path: field_path.render(),
                });
            }
        };
        let patch_list = match patch.shift_remove(&field) {
            None => None,
            Some(Value::Array(l)) => Some(l),
            Some(other) => {
                return Err(PatchError::WrongType {
                    expected: "a list",
                    actual: kind_name(&other),
                    path: field_path.render(),
                });
            }
        };
        let meta = lookup(schema, &field, true, &field_path)?;
        validate_order(
            patch_list.as_deref().unwrap_or(&[]),
            &order,
            meta.merge_key,
            &field_path,
        )?;
        let kind = element_kind(
            &[
                original_list.as_deref().unwrap_or(&[]),
                patch_list.as_deref().unwrap_or(&[]),
            ],
            &field_path,
        );
        if original_list.is_none() && patch_list.is_none() {
            continue;
        }
        // The object's list, as the order of the items the patch does not order.
        let server_list = original_list.as_deref().unwrap_or(&[]);
        let server_keys: Vec<Key> = match meta.merge_key {
            Some(mk) => server_list
                .iter()
                .map(|v| item_key(v, mk, &field_path).map(key_of))
                .collect::<Result<_, _>>()?,
            None => server_list.iter().map(key_of).collect(),
        };
        let (merged, from_patch) = match (original_list, patch_list) {
            (Some(o), None) => (o, false),
            (None, Some(p)) => (p, true),
            (Some(o), Some(p)) => (
                merge_list_field(o, p, &meta, false, &field_path, depth + 1)?,
                false,
            ),
            (None, None) => continue,
        };
        let kind = kind?;
        let order_of: Box<OrderFn<'_>> = match (kind, meta.merge_key) {
            (Kind::Object, Some(mk)) => Box::new(move |v: &Value| v.get(mk).map(key_of)),
            (Kind::Object, None) => {
                return Err(PatchError::NoMergeKey {
                    path: field_path.render(),
                });
            }
            _ => Box::new(|v: &Value| Some(key_of(v))),
        };

        // Partition by presence in the order list.
        let order_keys: Vec<Key> = match meta.merge_key {
            Some(mk) => order
                .iter()
                .map(|v| item_key(v, mk, &field_path).map(key_of))
                .collect::<Result<_, _>>()?,
            None => order.iter().map(key_of).collect(),
        };
        let in_order: HashSet<&Key> = order_keys.iter().collect();
        let mut patch_items = Vec::new();
        let mut server_only = Vec::new();
        for item in merged {
            let key = match meta.merge_key {
                Some(mk) => key_of(item_key(&item, mk, &field_path)?),
                None => key_of(&item),
            };
            if in_order.contains(&key) {
                patch_items.push(item);
            } else {
                server_only.push(item);
            }
        }
        let mut both = normalize_order(
            patch_items,
            server_only,
            &order_keys,
            &server_keys,
            order_of.as_ref(),
        );
        if from_patch {
            let items = child(schema, &field).and_then(|s| s.items());
            both = sanitize_list(both, items, &field_path, depth + 1)?;
        }
        put(original, field, Value::Array(both));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::patch::merge_keys;
    use serde_json::json;

    fn r(name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    fn described_ref(name: &str) -> Value {
        json!({ "description": "a reference", "allOf": [r(name)] })
    }

    fn array_of(item: Value) -> Value {
        json!({ "type": "array", "items": item })
    }

    fn string_map() -> Value {
        json!({ "type": "object", "additionalProperties": { "type": "string" } })
    }

    fn obj(props: Value) -> Value {
        json!({ "type": "object", "properties": props })
    }

    /// A few definitions shaped like the published ones, with the extensions of the real
    /// table injected.
    fn defs() -> Map<String, Value> {
        const CORE: &str = "io.k8s.api.core.v1.";
        const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";
        let s = json!({ "type": "string" });
        let i = json!({ "type": "integer" });
        let mut d = Map::new();
        let mut def = |name: String, v: Value| {
            d.insert(name, v);
        };
        def(
            format!("{META}ObjectMeta"),
            obj(json!({
                "name": s, "namespace": s, "uid": s,
                "labels": string_map(), "annotations": string_map(),
                "finalizers": array_of(s.clone()),
                "ownerReferences": array_of(r(&format!("{META}OwnerReference"))),
            })),
        );
        def(
            format!("{META}OwnerReference"),
            obj(json!({
                "apiVersion": s, "kind": s, "name": s, "uid": s, "controller": { "type": "boolean" },
            })),
        );
        def(
            format!("{META}LabelSelector"),
            obj(json!({
                "matchLabels": string_map(),
                "matchExpressions": array_of(obj(json!({ "key": s, "operator": s, "values": array_of(s.clone()) }))),
            })),
        );
        def(
            format!("{CORE}Pod"),
            obj(json!({
                "apiVersion": s, "kind": s,
                "metadata": described_ref(&format!("{META}ObjectMeta")),
                "spec": described_ref(&format!("{CORE}PodSpec")),
                "status": described_ref(&format!("{CORE}PodStatus")),
            })),
        );
        def(
            format!("{CORE}PodSpec"),
            obj(json!({
                "containers": array_of(r(&format!("{CORE}Container"))),
                "initContainers": array_of(r(&format!("{CORE}Container"))),
                "volumes": array_of(r(&format!("{CORE}Volume"))),
                "tolerations": array_of(r(&format!("{CORE}Toleration"))),
                "nodeSelector": string_map(),
                "affinity": described_ref(&format!("{CORE}Affinity")),
                "restartPolicy": s,
                "hostAliases": array_of(obj(json!({ "ip": s, "hostnames": array_of(s.clone()) }))),
            })),
        );
        def(
            format!("{CORE}Affinity"),
            obj(json!({
                "nodeAffinity": { "type": "object", "properties": { "x": s } },
                "podAffinity": { "type": "object", "properties": { "a": s, "b": s } },
            })),
        );
        def(
            format!("{CORE}Container"),
            obj(json!({
                "name": s, "image": s, "args": array_of(s.clone()),
                "env": array_of(r(&format!("{CORE}EnvVar"))),
                "ports": array_of(r(&format!("{CORE}ContainerPort"))),
                "volumeMounts": array_of(r(&format!("{CORE}VolumeMount"))),
                "resources": obj(json!({ "limits": string_map(), "requests": string_map() })),
            })),
        );
        def(
            format!("{CORE}EnvVar"),
            obj(json!({
                "name": s, "value": s, "valueFrom": { "type": "object" },
            })),
        );
        def(
            format!("{CORE}ContainerPort"),
            obj(json!({
                "containerPort": i, "protocol": s, "name": s,
            })),
        );
        def(
            format!("{CORE}VolumeMount"),
            obj(json!({ "name": s, "mountPath": s })),
        );
        def(
            format!("{CORE}Volume"),
            obj(json!({
                "name": s,
                "emptyDir": obj(json!({ "medium": s })),
                "configMap": obj(json!({ "name": s })),
                "secret": obj(json!({ "secretName": s })),
            })),
        );
        def(
            format!("{CORE}Toleration"),
            obj(json!({
                "key": s, "operator": s, "value": s, "effect": s,
            })),
        );
        def(
            format!("{CORE}PodStatus"),
            obj(json!({
                "phase": s,
                "conditions": array_of(obj(json!({ "type": s, "status": s }))),
                "podIPs": array_of(obj(json!({ "ip": s }))),
            })),
        );
        def(
            format!("{CORE}Service"),
            obj(json!({
                "metadata": described_ref(&format!("{META}ObjectMeta")),
                "spec": described_ref(&format!("{CORE}ServiceSpec")),
            })),
        );
        def(
            format!("{CORE}ServiceSpec"),
            obj(json!({
                "ports": array_of(obj(json!({ "port": i, "name": s, "protocol": s, "targetPort": { "x-kubernetes-int-or-string": true } }))),
                "selector": string_map(),
            })),
        );
        def(
            "io.k8s.api.apps.v1.Deployment".into(),
            obj(json!({
                "metadata": described_ref(&format!("{META}ObjectMeta")),
                "spec": described_ref("io.k8s.api.apps.v1.DeploymentSpec"),
            })),
        );
        def(
            "io.k8s.api.apps.v1.DeploymentSpec".into(),
            obj(json!({
                "replicas": i,
                "selector": described_ref(&format!("{META}LabelSelector")),
                "template": described_ref(&format!("{CORE}PodTemplateSpec")),
                "strategy": described_ref("io.k8s.api.apps.v1.DeploymentStrategy"),
            })),
        );
        def(
            "io.k8s.api.apps.v1.DeploymentStrategy".into(),
            obj(json!({
                "type": s,
                "rollingUpdate": obj(json!({ "maxSurge": s, "maxUnavailable": s })),
            })),
        );
        def(
            format!("{CORE}PodTemplateSpec"),
            obj(json!({
                "metadata": described_ref(&format!("{META}ObjectMeta")),
                "spec": described_ref(&format!("{CORE}PodSpec")),
            })),
        );
        def(
            "io.k8s.api.policy.v1.PodDisruptionBudget".into(),
            obj(json!({
                "spec": described_ref("io.k8s.api.policy.v1.PodDisruptionBudgetSpec"),
            })),
        );
        def(
            "io.k8s.api.policy.v1.PodDisruptionBudgetSpec".into(),
            obj(json!({
                "minAvailable": s,
                "selector": described_ref(&format!("{META}LabelSelector")),
            })),
        );
        let props = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
        def(
            props.into(),
            obj(json!({
                "$ref": s, "type": s, "description": s,
                "properties": { "type": "object", "additionalProperties": r(props) },
            })),
        );
        merge_keys::inject(&mut d);
        d
    }

    fn apply(def: &str, original: Value, patch: Value) -> Result<Value, PatchError> {
        let defs = defs();
        let schema = SchemaNode::definition(&defs, def).expect("definition");
        strategic_merge_patch(&original, &patch, Some(schema))
    }

    const POD: &str = "io.k8s.api.core.v1.Pod";
    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

    fn pod(spec: Value) -> Value {
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" }, "spec": spec })
    }

    fn containers(v: &Value) -> Vec<&str> {
        v["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| c["name"].as_str().expect("name"))
            .collect()
    }

    #[test]
    fn containers_merge_by_name() {
        let original = pod(json!({ "containers": [
            { "name": "a", "image": "a:1" },
            { "name": "b", "image": "b:1", "args": ["x"] },
        ]}));
        let out = apply(
            POD,
            original,
            json!({ "spec": { "containers": [
                { "name": "b", "image": "b:2" },
            ]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([
                { "name": "a", "image": "a:1" },
                { "name": "b", "image": "b:2", "args": ["x"] },
            ])
        );
        assert_eq!(out["metadata"], json!({ "name": "p" }));
    }

    #[test]
    fn env_merges_by_name_inside_a_container() {
        let original = pod(json!({ "containers": [{ "name": "a", "env": [
            { "name": "X", "value": "1" },
            { "name": "Y", "value": "y" },
        ]}]}));
        let out = apply(POD, original, json!({ "spec": { "containers": [
            { "name": "a", "env": [{ "name": "X", "value": "2" }, { "name": "Z", "value": "z" }] },
        ]}}))
        .unwrap();
        // Patch items keep the patch's order; Y (object only) follows the items before it.
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([
                { "name": "X", "value": "2" },
                { "name": "Z", "value": "z" },
                { "name": "Y", "value": "y" },
            ])
        );
    }

    #[test]
    fn new_items_come_before_the_objects_items_as_in_apimachinery() {
        let original = pod(json!({ "containers": [{ "name": "a" }, { "name": "b" }] }));
        let out = apply(
            POD,
            original,
            json!({ "spec": { "containers": [{ "name": "c" }] } }),
        )
        .unwrap();
        assert_eq!(containers(&out), ["c", "a", "b"]);
    }

    #[test]
    fn delete_directive_removes_an_item() {
        let original = pod(json!({ "containers": [{ "name": "a" }, { "name": "b" }] }));
        let out = apply(
            POD,
            original,
            json!({ "spec": { "containers": [
                { "name": "a", "$patch": "delete" },
                { "name": "zzz", "$patch": "delete" },
            ]}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["containers"], json!([{ "name": "b" }]));
    }

    #[test]
    fn replace_directive_in_a_list_replaces_it() {
        let original = pod(json!({ "containers": [{ "name": "a" }, { "name": "b" }] }));
        let out = apply(
            POD,
            original,
            json!({ "spec": { "containers": [
                { "name": "z", "image": "z" },
                { "$patch": "replace" },
            ]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{ "name": "z", "image": "z" }])
        );
    }

    #[test]
    fn replace_directive_on_a_map_replaces_it() {
        let original = json!({ "metadata": { "labels": { "a": "1", "b": "2" } } });
        let out = apply(
            POD,
            original,
            json!({ "metadata": { "labels": {
                "$patch": "replace", "only": "1", "gone": null,
            }}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({ "only": "1" }));
    }

    #[test]
    fn delete_directive_on_a_map_empties_it() {
        // apimachinery leaves the field as an empty object.
        let original = pod(json!({ "affinity": { "nodeAffinity": { "x": "y" } } }));
        let out = apply(
            POD,
            original,
            json!({ "spec": { "affinity": { "$patch": "delete" } } }),
        )
        .unwrap();
        assert_eq!(out["spec"]["affinity"], json!({}));
        // At the top level the whole object goes.
        let out = apply(POD, pod(json!({})), json!({ "$patch": "delete" })).unwrap();
        assert_eq!(out, json!({}));
    }

    #[test]
    fn set_element_order_orders_the_merged_list() {
        let original = pod(json!({ "containers": [{ "name": "a" }, { "name": "b" }] }));
        let out = apply(
            POD,
            original,
            json!({ "spec": {
                "$setElementOrder/containers": [{ "name": "b" }, { "name": "a" }, { "name": "c" }],
                "containers": [{ "name": "c", "image": "c" }],
            }}),
        )
        .unwrap();
        assert_eq!(containers(&out), ["b", "a", "c"]);
        assert_eq!(out["spec"]["containers"][2]["image"], "c");
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn set_element_order_without_the_list_in_the_patch_reorders() {
        let original = pod(json!({ "containers": [{ "name": "a" }, { "name": "b" }] }));
        let out = apply(
            POD,
            original,
            json!({ "spec": {
                "$setElementOrder/containers": [{ "name": "b" }, { "name": "a" }],
            }}),
        )
        .unwrap();
        assert_eq!(containers(&out), ["b", "a"]);
    }

    #[test]
    fn set_element_order_mismatch_is_an_error() {
        let original = pod(json!({ "containers": [{ "name": "a" }, { "name": "b" }] }));
        let err = apply(
            POD,
            original,
            json!({ "spec": {
                "$setElementOrder/containers": [{ "name": "a" }, { "name": "b" }],
                "containers": [{ "name": "b" }, { "name": "a" }],
            }}),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::OrderMismatch { .. }), "{err}");
        assert!(err.to_string().contains(".spec.containers"), "{err}");
    }

    #[test]
    fn kubectl_edit_two_way_patch() {
        let original = pod(json!({ "containers": [
            { "name": "a", "image": "nginx:1" },
            { "name": "b", "image": "nginx:1" },
        ]}));
        let out = apply(
            POD,
            original,
            json!({ "spec": {
                "$setElementOrder/containers": [{ "name": "a" }, { "name": "b" }],
                "containers": [{ "image": "nginx:2", "name": "b" }],
            }}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{ "name": "a", "image": "nginx:1" }, { "name": "b", "image": "nginx:2" }])
        );
    }

    #[test]
    fn kubectl_apply_three_way_patch_dropping_a_field() {
        let original = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "d", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{old}",
                "other": "kept",
            }},
            "spec": { "replicas": 2, "template": {
                "metadata": { "labels": { "app": "d" } },
                "spec": { "containers": [{
                    "name": "a", "image": "nginx",
                    "ports": [{ "containerPort": 80, "protocol": "TCP" }],
                }]},
            }},
        });
        let patch = json!({
            "metadata": { "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{new}",
            }},
            "spec": { "template": { "spec": {
                "$setElementOrder/containers": [{ "name": "a" }],
                "containers": [{ "name": "a", "ports": null }],
            }}},
        });
        let out = apply(DEPLOYMENT, original, patch).unwrap();
        assert_eq!(
            out["metadata"]["annotations"],
            json!({ "kubectl.kubernetes.io/last-applied-configuration": "{new}", "other": "kept" })
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{ "name": "a", "image": "nginx" }])
        );
        assert_eq!(out["spec"]["replicas"], 2);
    }

    #[test]
    fn retain_keys_drops_rolling_update_when_strategy_becomes_recreate() {
        let original = json!({ "spec": { "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" },
        }}});
        let out = apply(
            DEPLOYMENT,
            original.clone(),
            json!({ "spec": { "strategy": {
                "$retainKeys": ["type"], "type": "Recreate",
            }}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["strategy"], json!({ "type": "Recreate" }));
        // As kubectl apply sends it, with the dropped field nulled.
        let out = apply(
            DEPLOYMENT,
            original,
            json!({ "spec": { "strategy": {
                "$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate",
            }}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["strategy"], json!({ "type": "Recreate" }));
    }

    #[test]
    fn retain_keys_must_list_every_patched_field() {
        let original = json!({ "spec": { "strategy": { "type": "RollingUpdate" } } });
        let err = apply(
            DEPLOYMENT,
            original,
            json!({ "spec": { "strategy": {
                "$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": { "maxSurge": "1" },
            }}}),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::BadRetainKeys { .. }), "{err}");
        let err = apply(
            DEPLOYMENT,
            json!({ "spec": { "strategy": {} } }),
            json!({ "spec": {
                "strategy": { "$retainKeys": "type" },
            }}),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::BadRetainKeys { .. }), "{err}");
    }

    #[test]
    fn volume_source_change_with_retain_keys() {
        let original = pod(json!({ "volumes": [
            { "name": "v", "emptyDir": {} },
            { "name": "w", "secret": { "secretName": "s" } },
        ]}));
        let out = apply(POD, original, json!({ "spec": {
            "$setElementOrder/volumes": [{ "name": "v" }, { "name": "w" }],
            "volumes": [{ "$retainKeys": ["configMap", "name"], "name": "v", "configMap": { "name": "cm" } }],
        }}))
        .unwrap();
        assert_eq!(
            out["spec"]["volumes"],
            json!([
                { "name": "v", "configMap": { "name": "cm" } },
                { "name": "w", "secret": { "secretName": "s" } },
            ])
        );
    }

    #[test]
    fn finalizers_merge_as_an_ordered_set() {
        let original = json!({ "metadata": { "finalizers": ["a", "b"] } });
        let out = apply(
            POD,
            original.clone(),
            json!({ "metadata": { "finalizers": ["c"] } }),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
        let out = apply(
            POD,
            original.clone(),
            json!({ "metadata": { "finalizers": ["b", "c"] } }),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = apply(
            POD,
            original,
            json!({ "metadata": { "finalizers": ["b", "b"] } }),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
    }

    #[test]
    fn delete_from_primitive_list_needs_a_list() {
        let orig = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": 5}});
        assert!(strategic_merge_patch(&orig, &patch, None).is_err());
    }

    #[test]
    fn delete_from_primitive_list() {
        let original = json!({ "metadata": { "finalizers": ["a", "b", "c"] } });
        let out = apply(
            POD,
            original.clone(),
            json!({ "metadata": {
                "$deleteFromPrimitiveList/finalizers": ["b", "x"],
            }}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
        // With the order kubectl sends alongside.
        let out = apply(
            POD,
            original.clone(),
            json!({ "metadata": {
                "$setElementOrder/finalizers": ["c", "a"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
            }}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a"]));
        // Deleting and adding in one patch.
        let out = apply(
            POD,
            original,
            json!({ "metadata": {
                "$deleteFromPrimitiveList/finalizers": ["a"],
                "finalizers": ["d"],
            }}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["d", "b", "c"]));
        // Nothing to delete from: nothing appears.
        let out = apply(
            POD,
            json!({ "metadata": {} }),
            json!({ "metadata": {
                "$deleteFromPrimitiveList/finalizers": ["a"],
            }}),
        )
        .unwrap();
        assert_eq!(out["metadata"], json!({}));
    }

    #[test]
    fn nulls_delete_and_are_dropped_from_new_values() {
        let original = json!({ "metadata": { "labels": { "x": "1", "y": "2" } } });
        let out = apply(POD, original, json!({
            "metadata": { "labels": { "x": null, "never": null } },
            "spec": { "affinity": { "nodeAffinity": null, "podAffinity": { "a": null, "b": "1" } } },
        }))
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({ "y": "2" }));
        assert_eq!(
            out["spec"],
            json!({ "affinity": { "podAffinity": { "b": "1" } } })
        );
    }

    #[test]
    fn lists_without_merge_strategy_are_replaced() {
        let original = pod(json!({
            "tolerations": [{ "key": "a" }, { "key": "b" }],
            "containers": [{ "name": "c", "args": ["1", "2"] }],
        }));
        let out = apply(
            POD,
            original,
            json!({ "spec": {
                "tolerations": [{ "key": "z" }],
                "containers": [{ "name": "c", "args": ["3"] }],
            }}),
        )
        .unwrap();
        assert_eq!(out["spec"]["tolerations"], json!([{ "key": "z" }]));
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["3"]));
    }

    #[test]
    fn ports_merge_by_container_port_and_service_port() {
        let original = pod(json!({ "containers": [{ "name": "c", "ports": [
            { "containerPort": 80, "name": "http" },
            { "containerPort": 443, "name": "https" },
        ]}]}));
        let out = apply(
            POD,
            original,
            json!({ "spec": { "containers": [{ "name": "c", "ports": [
                { "containerPort": 443.0, "protocol": "TCP" },
            ]}]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["ports"],
            json!([
                { "containerPort": 80, "name": "http" },
                { "containerPort": 443.0, "name": "https", "protocol": "TCP" },
            ])
        );
        let svc = json!({ "spec": { "ports": [{ "port": 80, "name": "a" }, { "port": 81, "name": "b" }] } });
        let out = apply(
            "io.k8s.api.core.v1.Service",
            svc,
            json!({ "spec": {
                "ports": [{ "port": 81, "targetPort": 8081 }],
            }}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{ "port": 80, "name": "a" }, { "port": 81, "name": "b", "targetPort": 8081 }])
        );
    }

    #[test]
    fn status_conditions_and_owner_references_merge() {
        let original = json!({
            "metadata": { "ownerReferences": [{ "uid": "1", "name": "a" }] },
            "status": { "conditions": [
                { "type": "Ready", "status": "False" },
                { "type": "Initialized", "status": "True" },
            ]},
        });
        let out = apply(
            POD,
            original,
            json!({
                "metadata": { "ownerReferences": [{ "uid": "1", "controller": true }] },
                "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
            }),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{ "uid": "1", "name": "a", "controller": true }])
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{ "type": "Ready", "status": "True" }, { "type": "Initialized", "status": "True" }])
        );
    }

    #[test]
    fn replace_strategy_replaces_a_map() {
        let original = json!({ "spec": { "selector": {
            "matchLabels": { "a": "1" },
            "matchExpressions": [{ "key": "k", "operator": "Exists" }],
        }}});
        let out = apply(
            "io.k8s.api.policy.v1.PodDisruptionBudget",
            original,
            json!({
                "spec": { "selector": { "matchLabels": { "b": "2" } } },
            }),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["selector"],
            json!({ "matchLabels": { "b": "2" } })
        );
    }

    #[test]
    fn type_changes_take_the_patch_value() {
        let original = json!({ "spec": { "replicas": 1, "template": { "metadata": { "labels": { "a": "b" } } } } });
        let out = apply(
            DEPLOYMENT,
            original,
            json!({ "spec": {
                "replicas": "two",
                "template": { "metadata": { "labels": ["x"] } },
            }}),
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], "two");
        assert_eq!(out["spec"]["template"]["metadata"]["labels"], json!(["x"]));
    }

    #[test]
    fn new_values_lose_their_directives() {
        let original = pod(json!({ "containers": [{ "name": "a" }] }));
        let out = apply(POD, original, json!({ "spec": {
            "initContainers": [
                {
                    "name": "i",
                    "$setElementOrder/env": [{ "name": "E" }],
                    "$retainKeys": ["name", "env"],
                    "env": [{ "name": "E", "value": null }, { "name": "F", "$patch": "delete" }],
                },
                { "name": "gone", "$patch": "delete" },
                { "$patch": "replace" },
            ],
            "affinity": { "$patch": "replace", "podAffinity": { "a": "1" } },
            "nodeSelector": { "$patch": "delete" },
        }}))
        .unwrap();
        assert_eq!(
            out["spec"]["initContainers"],
            json!([{ "name": "i", "env": [{ "name": "E" }] }])
        );
        assert_eq!(
            out["spec"]["affinity"],
            json!({ "podAffinity": { "a": "1" } })
        );
        assert!(out["spec"].get("nodeSelector").is_none());
        // A new item appended to a merged list is cleaned the same way.
        let out = apply(
            POD,
            out,
            json!({ "spec": { "containers": [
                { "name": "b", "env": [{ "name": "E", "value": null }], "image": null },
            ]}}),
        )
        .unwrap();
        assert_eq!(
            out["spec"]["containers"][0],
            json!({ "name": "b", "env": [{ "name": "E" }] })
        );
    }

    #[test]
    fn unknown_fields_are_an_error_only_where_the_patch_descends() {
        let original = pod(json!({ "bogus": { "a": 1 } }));
        let err = apply(
            POD,
            original.clone(),
            json!({ "spec": { "bogus": { "b": 2 } } }),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find api field in struct PodSpec for the json field \"bogus\" (at .spec.bogus)"
        );
        // apimachinery only looks fields up when it has to merge into them.
        let out = apply(POD, original, json!({ "spec": { "other": "x" } })).unwrap();
        assert_eq!(out["spec"]["other"], "x");
        // Unknown fields inside maps without a closed schema are fine.
        let out = apply(POD, pod(json!({ "containers": [{ "name": "a", "env": [{ "name": "E", "valueFrom": { "q": { "r": 1 } } }] }] })),
            json!({ "spec": { "containers": [{ "name": "a", "env": [{ "name": "E", "valueFrom": { "q": { "s": 2 } } }] }] } }))
            .unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["env"][0]["valueFrom"],
            json!({ "q": { "r": 1, "s": 2 } })
        );
    }

    #[test]
    fn missing_merge_key_is_an_error() {
        let original = pod(json!({ "containers": [{ "name": "a" }] }));
        let err = apply(
            POD,
            original.clone(),
            json!({ "spec": { "containers": [{ "image": "x" }] } }),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::MissingMergeKey { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("does not contain declared merge key: name"),
            "{err}"
        );
        let err = apply(
            POD,
            original,
            json!({ "spec": { "containers": [{ "$patch": "delete" }] } }),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::MissingMergeKey { .. }), "{err}");
    }

    #[test]
    fn bad_directives_are_errors() {
        let original = pod(json!({ "containers": [{ "name": "a" }] }));
        let cases = [
            json!({ "spec": { "containers": [{ "name": "a", "$patch": "merge" }] } }),
            json!({ "spec": { "containers": [{ "name": "a", "$patch": "frobnicate" }] } }),
            json!({ "spec": { "$patch": "merge" } }),
            json!({ "spec": { "$patch": 1 } }),
            json!({ "spec": { "$frob": 1 } }),
            json!({ "spec": { "initContainers": [{ "name": "a", "$frob": 1 }] } }),
            json!({ "spec": { "$setElementOrder": [] } }),
            json!({ "spec": { "$setElementOrder/containers": "a" } }),
            json!({ "spec": { "$deleteFromPrimitiveListX/containers": [] } }),
            json!({ "spec": { "$setElementOrder/bogus": [] } }),
        ];
        for patch in cases {
            let result = apply(POD, original.clone(), patch.clone());
            assert!(result.is_err(), "{patch} gave {result:?}");
        }
        let err = apply(
            POD,
            original,
            json!({ "spec": { "containers": [{ "name": "a", "$patch": "merge" }] } }),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "merging lists cannot yet be specified in the patch (at .spec.containers[0])"
        );
    }

    #[test]
    fn declared_dollar_fields_are_fields() {
        let props = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
        let original = json!({ "type": "object", "properties": { "a": { "type": "string" } } });
        let out = apply(
            props,
            original,
            json!({
                "properties": { "b": { "$ref": "#/x" }, "a": { "$ref": "#/y" } },
            }),
        )
        .unwrap();
        assert_eq!(
            out["properties"],
            json!({ "a": { "type": "string", "$ref": "#/y" }, "b": { "$ref": "#/x" } })
        );
    }

    #[test]
    fn mixed_list_items_are_an_error() {
        let original = json!({ "metadata": { "finalizers": ["a", 1] } });
        let err = apply(
            POD,
            original,
            json!({ "metadata": { "finalizers": ["b"] } }),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::MixedListElements { .. }), "{err}");
        let original = json!({ "metadata": { "finalizers": [["a"]] } });
        let err = apply(
            POD,
            original,
            json!({ "metadata": { "finalizers": [["b"]] } }),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::ListOfLists { .. }), "{err}");
        let original = json!({ "metadata": { "finalizers": [null] } });
        let err = apply(
            POD,
            original,
            json!({ "metadata": { "finalizers": ["b"] } }),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::MixedListElements { .. }), "{err}");
    }

    #[test]
    fn without_a_schema_it_is_a_merge_patch_that_honours_directives() {
        let original = json!({
            "a": { "b": 1, "c": 2 },
            "list": [1, 2, 3],
            "objs": [{ "name": "x" }, { "name": "y" }],
            "keep": { "x": 1, "y": 2 },
            "gone": { "x": 1 },
            "f": ["a", "b"],
        });
        let out = strategic_merge_patch(
            &original,
            &json!({
                "a": { "b": null, "d": 4 },
                "list": [9],
                "objs": [{ "name": "y" }],
                "keep": { "$retainKeys": ["y"], "y": 3 },
                "gone": { "$patch": "delete" },
                "f": ["c"],
                "$deleteFromPrimitiveList/f": ["a"],
            }),
            None,
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "a": { "c": 2, "d": 4 },
                "list": [9],
                "objs": [{ "name": "y" }],
                "keep": { "y": 3 },
                "gone": {},
                "f": ["c"],
            })
        );
    }

    #[test]
    fn documents_that_are_not_objects() {
        assert_eq!(
            strategic_merge_patch(&json!({ "a": 1 }), &Value::Null, None).unwrap(),
            json!({ "a": 1 })
        );
        assert_eq!(
            strategic_merge_patch(&Value::Null, &json!({ "a": { "b": null, "c": 1 } }), None)
                .unwrap(),
            json!({ "a": { "c": 1 } })
        );
        assert!(matches!(
            strategic_merge_patch(&json!([1]), &json!({}), None),
            Err(PatchError::InvalidDocument(_))
        ));
        assert!(matches!(
            strategic_merge_patch(&json!({}), &json!("x"), None),
            Err(PatchError::InvalidDocument(_))
        ));
    }

    fn nested(depth: usize) -> Value {
        let mut v = json!(1);
        for i in 0..depth {
            v = if i % 2 == 0 {
                json!({ "k": v })
            } else {
                json!([v])
            };
        }
        v
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = nested(MAX_NESTING + 50);
        assert_eq!(
            strategic_merge_patch(&json!({}), &json!({ "a": deep.clone() }), None),
            Err(PatchError::TooDeep)
        );
        assert_eq!(
            strategic_merge_patch(&json!({ "a": deep }), &json!({}), None),
            Err(PatchError::TooDeep)
        );
        let fine = nested(MAX_NESTING - 2);
        let out = strategic_merge_patch(
            &json!({ "a": fine.clone() }),
            &json!({ "a": fine.clone() }),
            None,
        )
        .unwrap();
        assert_eq!(out["a"], fine);
    }

    /// xorshift64*, for a deterministic stream of random-ish inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }
    }

    const KEYS: &[&str] = &[
        "spec",
        "metadata",
        "containers",
        "initContainers",
        "name",
        "image",
        "env",
        "value",
        "ports",
        "containerPort",
        "protocol",
        "finalizers",
        "labels",
        "volumes",
        "emptyDir",
        "configMap",
        "tolerations",
        "key",
        "args",
        "status",
        "conditions",
        "type",
        "affinity",
        "strategy",
        "rollingUpdate",
        "template",
        "selector",
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$setElementOrder/finalizers",
        "$setElementOrder/env",
        "$deleteFromPrimitiveList/finalizers",
        "$deleteFromPrimitiveList/args",
        "$setElementOrder",
        "$deleteFromPrimitiveList",
        "$frob",
        "x",
        "",
    ];
    const WORDS: &[&str] = &[
        "a", "b", "c", "delete", "replace", "merge", "name", "type", "x",
    ];

    fn random_value(rng: &mut Rng, depth: u32) -> Value {
        let choice = if depth == 0 {
            rng.below(5)
        } else {
            rng.below(9)
        };
        match choice {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => json!(rng.below(4)),
            3 => json!(rng.below(4) as f64 + 0.5),
            4 => Value::String(rng.pick(WORDS).to_string()),
            5 | 6 => {
                let n = rng.below(4);
                let mut m = Map::new();
                for _ in 0..n {
                    m.insert(rng.pick(KEYS).to_string(), random_value(rng, depth - 1));
                }
                Value::Object(m)
            }
            _ => {
                let n = rng.below(4);
                (0..n).map(|_| random_value(rng, depth - 1)).collect()
            }
        }
    }

    fn has_directive_keys(v: &Value) -> bool {
        match v {
            Value::Object(m) => m
                .iter()
                .any(|(k, v)| k.starts_with('$') || has_directive_keys(v)),
            Value::Array(a) => a.iter().any(has_directive_keys),
            _ => false,
        }
    }

    fn realistic_pod(rng: &mut Rng) -> Value {
        let mut p = pod(json!({
            "containers": [
                { "name": "a", "env": [{ "name": "b", "value": "x" }], "ports": [{ "containerPort": 1 }] },
                { "name": "b", "args": ["a", "b"] },
            ],
            "volumes": [{ "name": "a", "emptyDir": {} }],
        }));
        p["metadata"]["finalizers"] = json!(["a", "b"]);
        if rng.below(2) == 0 {
            p["spec"]["affinity"] = random_value(rng, 3);
        }
        p
    }

    #[test]
    fn random_inputs_never_panic() {
        let defs = defs();
        let schemas = [
            SchemaNode::definition(&defs, POD),
            SchemaNode::definition(&defs, DEPLOYMENT),
            None,
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut applied = 0;
        for round in 0..6000 {
            let original = match round % 3 {
                0 => realistic_pod(&mut rng),
                1 => random_value(&mut rng, 5),
                _ => json!({}),
            };
            let mut patch = random_value(&mut rng, 6);
            if rng.below(3) == 0 {
                patch = json!({ "spec": { "containers": [patch, random_value(&mut rng, 3)] } });
            }
            let schema = schemas[round % schemas.len()];
            if let Ok(out) = strategic_merge_patch(&original, &patch, schema) {
                applied += 1;
                assert!(out.is_object(), "{original} + {patch} = {out}");
                if !has_directive_keys(&original) {
                    assert!(
                        !has_directive_keys(&out),
                        "directives leaked: {original} + {patch} = {out}"
                    );
                }
            }
        }
        assert!(applied > 1000, "only {applied} patches applied");
    }
}
