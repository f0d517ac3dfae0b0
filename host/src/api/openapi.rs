//! The OpenAPI documents (`/openapi/v2`, `/openapi/v3`, `/openapi/v3/<gv>`), generated from
//! `k8s-openapi`'s schemas plus the Kubernetes patch extensions, and from CRD schemas.
//!
//! kubectl reads them to decide that the server validates fields itself (a PATCH operation
//! with a `fieldValidation` parameter for the kind), to compute strategic merge patches
//! (`x-kubernetes-patch-merge-key`) and for `kubectl explain`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::resources::{Catalog, ResourceType, Source, builtin_schemas};
use super::schema::REF_PREFIX;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The rendered documents for one catalog.
pub struct Docs {
    /// `/openapi/v3`: the index of group-versions.
    pub v3_index: Vec<u8>,
    /// `api/v1`, `apis/apps/v1` → (hash, document).
    pub v3: BTreeMap<String, (String, Vec<u8>)>,
    pub v2: Vec<u8>,
}

pub struct OpenApi {
    defs: Arc<Map<String, Value>>,
    cache: Mutex<Option<(usize, Arc<Docs>)>>,
    version: String,
}

impl OpenApi {
    pub fn new(version: &str) -> Self {
        let mut g = schemars::generate::SchemaSettings::openapi3().into_generator();
        let roots = builtin_schemas(&mut g);
        let mut defs = g.take_definitions(true);
        drop(roots);
        super::patch::merge_keys::inject(&mut defs);
        OpenApi {
            defs: Arc::new(defs),
            cache: Mutex::new(None),
            version: version.to_string(),
        }
    }

    /// The definitions of the built-in types, with the Kubernetes extensions.
    pub fn definitions(&self) -> Arc<Map<String, Value>> {
        self.defs.clone()
    }

    /// The documents for `catalog` (rendered once per catalog).
    pub fn docs(&self, catalog: &Arc<Catalog>) -> Arc<Docs> {
        let id = Arc::as_ptr(catalog) as usize;
        let mut cache = self.cache.lock();
        if let Some((cid, docs)) = cache.as_ref()
            && *cid == id
        {
            return docs.clone();
        }
        let docs = Arc::new(self.render(catalog));
        *cache = Some((id, docs.clone()));
        docs
    }

    fn render(&self, catalog: &Catalog) -> Docs {
        let mut v3 = BTreeMap::new();
        let mut all_paths = Map::new();
        let mut all_defs = Map::new();
        for (group, versions) in catalog.groups() {
            for version in versions {
                let types = catalog.in_group_version(group, version);
                let mut defs = Map::new();
                let mut paths = Map::new();
                for rt in &types {
                    let def_name = self.add_type_defs(rt, &mut defs);
                    add_paths(rt, &def_name, &mut paths);
                }
                for (k, v) in &paths {
                    all_paths.insert(k.clone(), v.clone());
                }
                for (k, v) in &defs {
                    all_defs.insert(k.clone(), v.clone());
                }
                let doc = json!({
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes", "version": self.version},
                    "paths": paths,
                    "components": {"schemas": defs},
                });
                let bytes = serde_json::to_vec(&doc).unwrap_or_default();
                let hash = hex::encode_upper(Sha256::digest(&bytes));
                let key = if group.is_empty() {
                    format!("api/{version}")
                } else {
                    format!("apis/{group}/{version}")
                };
                v3.insert(key, (hash, bytes));
            }
        }
        let index_paths: Map<String, Value> = v3
            .iter()
            .map(|(k, (hash, _))| {
                (
                    k.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={hash}")}),
                )
            })
            .collect();
        let v3_index = serde_json::to_vec(&json!({"paths": index_paths})).unwrap_or_default();
        let v2_doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": self.version},
            "paths": v2_paths(&all_paths),
            "definitions": all_defs,
        });
        let v2 = serde_json::to_vec(&v2_doc)
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace("#/components/schemas/", "#/definitions/")
                    .into_bytes()
            })
            .unwrap_or_default();
        Docs { v3_index, v3, v2 }
    }

    /// Put the definitions `rt` needs into `out`; return its root definition name.
    fn add_type_defs(&self, rt: &ResourceType, out: &mut Map<String, Value>) -> String {
        let gvk = json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]);
        match &rt.source {
            Source::Builtin { schema_name, .. } => {
                self.closure(schema_name, out);
                if let Some(Value::Object(d)) = out.get_mut(schema_name) {
                    d.insert("x-kubernetes-group-version-kind".into(), gvk);
                }
                schema_name.clone()
            }
            Source::Custom { schema, .. } => {
                let rev_group: Vec<&str> = rt.group.split('.').rev().collect();
                let name = format!("{}.{}.{}", rev_group.join("."), rt.version, rt.kind);
                let mut s = (**schema).clone();
                if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
                    props.insert(
                        "metadata".into(),
                        json!({"allOf": [{"$ref": format!("{REF_PREFIX}{OBJECT_META}")}]}),
                    );
                }
                if let Some(o) = s.as_object_mut() {
                    o.insert("x-kubernetes-group-version-kind".into(), gvk);
                }
                out.insert(name.clone(), s);
                self.closure(OBJECT_META, out);
                name
            }
        }
    }

    /// Copy definition `name` and everything it references into `out`.
    fn closure(&self, name: &str, out: &mut Map<String, Value>) {
        let mut todo = vec![name.to_string()];
        let mut seen: BTreeSet<String> = out.keys().cloned().collect();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) && out.contains_key(&n) {
                continue;
            }
            let Some(def) = self.defs.get(&n) else {
                continue;
            };
            collect_refs(def, &mut todo);
            out.insert(n, def.clone());
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str)
                && let Some(n) = r.strip_prefix(REF_PREFIX)
            {
                out.push(n.to_string());
            }
            for v in m.values() {
                collect_refs(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn param(name: &str, kind: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": kind, "uniqueItems": true}})
}

fn op(rt: &ResourceType, action: &str, def: &str, body: bool, extra: &[&str]) -> Value {
    let schema = json!({"$ref": format!("{REF_PREFIX}{def}")});
    let mut params: Vec<Value> = vec![];
    if body {
        params.push(param("dryRun", "string"));
        params.push(param("fieldManager", "string"));
        params.push(param("fieldValidation", "string"));
    }
    for e in extra {
        params.push(param(e, if *e == "force" { "boolean" } else { "string" }));
    }
    let mut o = json!({
        "operationId": format!("{action}{}", rt.kind),
        "tags": [rt.api_version()],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}},
    });
    if body {
        let ct = if action == "patch" {
            let mut ct = json!({
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/apply-patch+yaml": {"schema": {"type": "object"}},
            });
            // kubectl sends strategic merge patches only where the operation accepts them;
            // custom resources do not (as in Kubernetes), so it falls back to merge patch.
            if !rt.is_custom() {
                ct["application/strategic-merge-patch+json"] =
                    json!({"schema": {"type": "object"}});
            }
            ct
        } else {
            json!({"application/json": {"schema": schema}})
        };
        o["requestBody"] = json!({"content": ct, "required": true});
    }
    o
}

fn add_paths(rt: &ResourceType, def: &str, paths: &mut Map<String, Value>) {
    let base = if rt.group.is_empty() {
        format!("/api/{}", rt.version)
    } else {
        format!("/apis/{}/{}", rt.group, rt.version)
    };
    let coll = if rt.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{base}/{}", rt.plural)
    };
    let list_ops = json!({
        "get": op(rt, "list", def, false, &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
        "post": op(rt, "post", def, true, &[]),
        "delete": op(rt, "deletecollection", def, false, &["labelSelector", "fieldSelector"]),
    });
    paths.insert(coll.clone(), list_ops);
    let item = json!({
        "get": op(rt, "get", def, false, &[]),
        "put": op(rt, "put", def, true, &[]),
        "patch": op(rt, "patch", def, true, &["force"]),
        "delete": op(rt, "delete", def, false, &["gracePeriodSeconds", "propagationPolicy"]),
    });
    paths.insert(format!("{coll}/{{name}}"), item);
    for sub in &rt.subresources {
        if sub == "status" {
            paths.insert(
                format!("{coll}/{{name}}/status"),
                json!({
                    "get": op(rt, "get", def, false, &[]),
                    "put": op(rt, "put", def, true, &[]),
                    "patch": op(rt, "patch", def, true, &["force"]),
                }),
            );
        }
    }
    if rt.namespaced {
        paths.insert(
            format!("{base}/{}", rt.plural),
            json!({"get": op(rt, "list", def, false, &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"])}),
        );
    }
}

/// Swagger 2.0 paths from the v3 ones (parameters move, bodies become `in: body`).
fn v2_paths(v3: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (path, ops) in v3 {
        let mut o2 = Map::new();
        if let Some(ops) = ops.as_object() {
            for (method, op) in ops {
                let schema = op
                    .pointer("/responses/200/content/application~1json/schema")
                    .cloned();
                let mut op = op.clone();
                if let Some(o) = op.as_object_mut() {
                    let mut params: Vec<Value> = o
                        .get("parameters")
                        .and_then(Value::as_array)
                        .map(|ps| {
                            ps.iter()
                                .map(|p| {
                                    let t = p.pointer("/schema/type").cloned().unwrap_or(json!("string"));
                                    json!({"name": p["name"], "in": "query", "type": t, "uniqueItems": true})
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    if o.remove("requestBody").is_some() {
                        params.push(json!({"name": "body", "in": "body", "required": true, "schema": {"type": "object"}}));
                    }
                    o.insert("parameters".into(), Value::Array(params));
                    o.insert(
                        "responses".into(),
                        json!({"200": {"description": "OK", "schema": schema}}),
                    );
                    o.insert("consumes".into(), json!(["application/json"]));
                    o.insert("produces".into(), json!(["application/json"]));
                }
                o2.insert(method.clone(), op);
            }
        }
        out.insert(path.clone(), Value::Object(o2));
    }
    Value::Object(out)
}
