//! The resource verbs: get, list, create, update, patch, delete, deletecollection, and the
//! subresources (status, scale, binding, finalize). Watches live in [`super::watch`].

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};

use super::object::{
    decode_stored, encode_for_store, finalizers, is_deleting, label_selector_string, meta_str,
    now_rfc3339, remove_meta, set_meta, spec_part,
};
use super::request::{self, Accept, FieldValidation, Query, ResourcePath};
use super::resources::{ResourceType, Source};
use super::schema::SchemaNode;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult, Subject, success_status};
use super::{Api, patch, table, validation};
use crate::store::{StoreError, WriteOp};

/// A resolved request target.
#[derive(Clone)]
pub struct Target {
    pub rt: Arc<ResourceType>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    pub fn subject<'a>(&'a self, name: &'a str) -> Subject<'a> {
        Subject {
            group: &self.rt.group,
            resource: &self.rt.plural,
            kind: &self.rt.kind,
            name,
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn key(&self) -> String {
        self.rt.key(self.namespace.as_deref(), self.name())
    }
}

/// A response body with optional warnings.
pub struct Reply {
    pub code: StatusCode,
    pub body: Value,
    pub warnings: Vec<String>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Reply {
            code: StatusCode::OK,
            body,
            warnings: vec![],
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut resp = (self.code, bytes).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for w in self.warnings {
            if let Ok(v) = HeaderValue::from_bytes(warning_header(&w).as_bytes()) {
                h.append(header::WARNING, v);
            }
        }
        resp
    }
}

/// A `Warning` header value as Kubernetes' `NewWarningHeader` writes it: code 299, agent
/// `-`, the text as an HTTP quoted string (control characters become spaces; only `"` and
/// `\` are escaped; UTF-8 is kept).
pub fn warning_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str("299 - \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const GENERATE_NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generate_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| GENERATE_NAME_CHARS[rng.random_range(0..GENERATE_NAME_CHARS.len())] as char)
        .collect()
}

impl Api {
    /// Resolve a resource path against the live catalog.
    pub fn resolve(&self, p: &ResourcePath) -> ApiResult<Target> {
        let catalog = self.registry.snapshot();
        let rt = catalog
            .lookup(&p.group, &p.version, &p.plural)
            .ok_or_else(|| {
                let gv = if p.group.is_empty() {
                    p.version.clone()
                } else {
                    format!("{}/{}", p.group, p.version)
                };
                ApiError::no_route(format!(
                    "the server could not find the requested resource: {} is not served under {gv}",
                    p.plural
                ))
            })?;
        if p.namespace.is_some() && !rt.namespaced {
            return Err(ApiError::no_route(format!(
                "{} is cluster-scoped: it has no namespaced path",
                rt.plural
            )));
        }
        if let Some(sub) = &p.subresource
            && !rt.has_subresource(sub)
        {
            return Err(ApiError::no_route(format!(
                "the server could not find the requested resource: {}/{} has no subresource {sub:?}",
                rt.plural,
                p.name.as_deref().unwrap_or("")
            )));
        }
        Ok(Target {
            rt,
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            subresource: p.subresource.clone(),
        })
    }

    /// The root schema node of a type (built-in definition or CRD schema).
    pub fn with_schema<R>(
        &self,
        rt: &ResourceType,
        f: impl FnOnce(Option<SchemaNode<'_>>) -> R,
    ) -> R {
        match &rt.source {
            Source::Builtin { schema_name, .. } => {
                let defs = self.openapi.definitions();
                f(SchemaNode::definition(&defs, schema_name))
            }
            Source::Custom { schema, .. } => {
                let empty = Map::new();
                f(Some(SchemaNode::new(&empty, schema)))
            }
        }
    }

    /// Dispatch one resource request.
    pub async fn handle_resource(
        self: &Arc<Self>,
        method: Method,
        path: ResourcePath,
        query: Query,
        headers: HeaderMap,
        body: Body,
    ) -> ApiResult<Response> {
        let t = self.resolve(&path)?;
        // Malformed parameters are errors whatever the verb.
        query.timeout_seconds()?;
        query.limit()?;
        query.resource_version()?;
        query.field_validation()?;
        query.dry_run()?;
        let accept = request::accept(&headers);
        if path.watch_prefix || (method == Method::GET && query.is_watch()) {
            if t.subresource.is_some() {
                return Err(ApiError::method_not_allowed(
                    "watch is not supported on subresources",
                ));
            }
            return self.watch(t, query, accept).await;
        }
        let ct = request::content_type(&headers);
        let reply = match (method, t.name.is_some(), t.subresource.as_deref()) {
            (Method::GET, false, _) => self.list(&t, &query, accept).await?,
            (Method::GET, true, None | Some("status")) => {
                let obj = self.get_object(&t).await?;
                self.render_one(&t, obj, accept, &query)?
            }
            (Method::GET, true, Some("scale")) => Reply::ok(self.get_scale(&t).await?),
            (Method::GET, true, Some("log")) => return self.pod_log(&t, &query).await,
            (Method::POST, false, None) => {
                let body = request::read_body(body).await?;
                let obj = request::decode_object(&ct, &body)?;
                self.create(&t, obj, &query, &headers).await?
            }
            (Method::POST, true, Some("binding")) => {
                let body = request::read_body(body).await?;
                let obj = request::decode_object(&ct, &body)?;
                self.bind(&t, obj, &query).await?
            }
            (Method::PUT, true, sub) => {
                let body = request::read_body(body).await?;
                let obj = request::decode_object(&ct, &body)?;
                match sub {
                    Some("scale") => Reply::ok(
                        self.update_scale(&t, obj, &Self::manager(&query, &headers))
                            .await?,
                    ),
                    _ => self.update(&t, obj, &query, &headers).await?,
                }
            }
            (Method::PATCH, true, sub) => {
                let body = request::read_body(body).await?;
                match sub {
                    Some("scale") => Reply::ok(
                        self.patch_scale(&t, &ct, &body, &Self::manager(&query, &headers))
                            .await?,
                    ),
                    _ => self.patch(&t, &ct, &body, &query, &headers).await?,
                }
            }
            (Method::DELETE, true, None) => {
                let body = request::read_body(body).await?;
                self.delete(&t, &body, &query).await?
            }
            (Method::DELETE, false, None) => {
                let body = request::read_body(body).await?;
                self.delete_collection(&t, &body, &query).await?
            }
            (m, _, _) => {
                return Err(ApiError::method_not_allowed(format!(
                    "the server does not allow method {m} on this resource path"
                )));
            }
        };
        Ok(reply.into_response())
    }

    // ---- reads ----

    pub async fn get_object(&self, t: &Target) -> ApiResult<Value> {
        let kv = self
            .store
            .get(&t.key())
            .await
            .map_err(|e| ApiError::from_store(e, &t.subject(t.name())))?
            .ok_or_else(|| ApiError::not_found(&t.subject(t.name())))?;
        decode_stored(&kv)
    }

    fn render_one(
        &self,
        t: &Target,
        obj: Value,
        accept: Accept,
        query: &Query,
    ) -> ApiResult<Reply> {
        match accept {
            Accept::Object => Ok(Reply::ok(obj)),
            Accept::PartialMetadata => Ok(Reply::ok(table::partial_object_metadata(&obj))),
            Accept::Table => {
                let rv = meta_str(&obj, "resourceVersion").to_string();
                let (cols, rows) = self.table_rows(&t.rt, vec![obj], query, true);
                Ok(Reply::ok(table::build_table(cols, rows, &rv, None, None)))
            }
        }
    }

    /// Columns and rows of a Table for `objs`.
    pub fn table_rows(
        &self,
        rt: &ResourceType,
        objs: Vec<Value>,
        query: &Query,
        with_columns: bool,
    ) -> (Vec<Value>, Vec<(Vec<Value>, Value)>) {
        let now = jiff::Timestamp::now();
        let include = query.include_object.as_deref().unwrap_or("Metadata");
        let (cols, printer) = match &rt.source {
            Source::Custom {
                printer_columns, ..
            } => (
                table::crd_column_definitions(printer_columns),
                Some(printer_columns.clone()),
            ),
            Source::Builtin { .. } => (table::column_definitions(&rt.group, &rt.kind), None),
        };
        let rows = objs
            .into_iter()
            .map(|o| {
                let cells = match &printer {
                    Some(pc) => table::crd_row_cells(pc, &o, now),
                    None => table::row_cells(&rt.group, &rt.kind, &o, now),
                };
                let object = match include {
                    "None" => Value::Null,
                    "Object" => o,
                    _ => table::partial_object_metadata(&o),
                };
                (cells, object)
            })
            .collect();
        (if with_columns { cols } else { vec![] }, rows)
    }

    pub fn parse_selectors(
        &self,
        t: &Target,
        query: &Query,
    ) -> ApiResult<(LabelSelector, FieldSelector)> {
        let ls = LabelSelector::parse(query.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fs = FieldSelector::parse(query.field_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        if !t.rt.is_custom() {
            fs.validate(&t.rt.api_version(), &t.rt.kind)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        } else {
            // Checks the fields (the object is irrelevant).
            fs.matches_custom(&Value::Null, t.rt.namespaced, &[])
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        Ok((ls, fs))
    }

    /// Whether `obj` passes the selectors.
    pub fn selected(
        rt: &ResourceType,
        ls: &LabelSelector,
        fs: &FieldSelector,
        obj: &Value,
    ) -> bool {
        if !ls.matches_object(obj) {
            return false;
        }
        if fs.is_empty() {
            return true;
        }
        let r = if rt.is_custom() {
            fs.matches_custom(obj, rt.namespaced, &[])
        } else {
            fs.matches_gvk(obj, &rt.api_version(), &rt.kind)
        };
        r.unwrap_or(false)
    }

    /// Read the matching objects, honouring limit/continue. Returns the items, the list's
    /// resourceVersion, the continue token and the remaining count (when known).
    pub async fn list_objects(
        &self,
        t: &Target,
        query: &Query,
    ) -> ApiResult<(Vec<Value>, u64, Option<String>, Option<i64>)> {
        let (ls, fs) = self.parse_selectors(t, query)?;
        let limit = query.limit()?;
        let prefix = t.rt.key_prefix(t.namespace.as_deref());
        let mut start_after: Option<String> = None;
        let mut list_rv: Option<u64> = None;
        if let Some(tok) = query.continue_token.as_deref().filter(|s| !s.is_empty()) {
            let (rv, start) = decode_continue(tok)?;
            if !start.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "the continue token is not for this list",
                ));
            }
            list_rv = Some(rv);
            start_after = Some(start);
        }
        let filtering = !ls.is_empty() || !fs.is_empty();
        let mut items = vec![];
        let mut revision = 0;
        let mut last_key: Option<String> = None;
        let mut more;
        loop {
            let want = if limit == 0 {
                0
            } else {
                (limit - items.len()).max(if filtering { 256 } else { 0 })
            };
            let page = self
                .store
                .list(&prefix, start_after.as_deref(), want)
                .await
                .map_err(|e| ApiError::from_store(e, &t.subject("")))?;
            if revision == 0 {
                revision = page.revision;
            }
            more = page.more;
            for kv in &page.items {
                if limit > 0 && items.len() == limit {
                    more = true;
                    break;
                }
                let obj = decode_stored(kv)?;
                last_key = Some(kv.key.clone());
                if Self::selected(&t.rt, &ls, &fs, &obj) {
                    items.push(obj);
                }
            }
            start_after = last_key.clone();
            if limit == 0 || items.len() >= limit || !page.more {
                break;
            }
        }
        let list_rv = list_rv.unwrap_or(revision);
        let continue_token = if more && limit > 0 {
            last_key.as_deref().map(|k| encode_continue(list_rv, k))
        } else {
            None
        };
        let remaining = match (&continue_token, &last_key) {
            (Some(_), Some(last)) if !filtering => {
                let left = self
                    .store
                    .count(&prefix, Some(last))
                    .await
                    .map_err(|e| ApiError::from_store(e, &t.subject("")))?;
                Some(left as i64)
            }
            _ => None,
        };
        Ok((items, list_rv, continue_token, remaining))
    }

    async fn list(&self, t: &Target, query: &Query, accept: Accept) -> ApiResult<Reply> {
        if let (Some("Exact"), Some(rv)) = (
            query.resource_version_match.as_deref(),
            query.resource_version()?,
        ) {
            let current = self.store.current_revision();
            if rv != current {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rv} ({current}): this server serves lists at the latest revision only"
                )));
            }
        }
        let (items, rv, cont, remaining) = self.list_objects(t, query).await?;
        let rv_s = rv.to_string();
        match accept {
            Accept::Table => {
                let (cols, rows) = self.table_rows(&t.rt, items, query, true);
                Ok(Reply::ok(table::build_table(
                    cols,
                    rows,
                    &rv_s,
                    cont.as_deref(),
                    remaining,
                )))
            }
            Accept::PartialMetadata | Accept::Object => {
                let items: Vec<Value> = if accept == Accept::PartialMetadata {
                    items.iter().map(table::partial_object_metadata).collect()
                } else {
                    items
                };
                let mut meta = json!({"resourceVersion": rv_s});
                if let Some(c) = cont {
                    meta["continue"] = json!(c);
                }
                if let Some(r) = remaining {
                    meta["remainingItemCount"] = json!(r);
                }
                let (api_version, kind) = if accept == Accept::PartialMetadata {
                    (
                        "meta.k8s.io/v1".to_string(),
                        "PartialObjectMetadataList".to_string(),
                    )
                } else {
                    (t.rt.api_version(), t.rt.list_kind.clone())
                };
                Ok(Reply::ok(json!({
                    "kind": kind,
                    "apiVersion": api_version,
                    "metadata": meta,
                    "items": items,
                })))
            }
        }
    }

    // ---- the write path ----

    /// Check unknown fields (per `fieldValidation`) and normalise the object through its
    /// type. Returns warnings for `Warn`.
    fn check_and_normalize(
        &self,
        rt: &ResourceType,
        obj: Value,
        fv: FieldValidation,
        name: &str,
    ) -> ApiResult<(Value, Vec<String>)> {
        let mut warnings = vec![];
        if fv != FieldValidation::Ignore {
            let unknown = self.unknown_fields(rt, &obj);
            if !unknown.is_empty() {
                let msgs: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                if fv == FieldValidation::Strict {
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        msgs.join(", ")
                    )));
                }
                warnings = msgs;
            }
        }
        let obj = match &rt.source {
            Source::Builtin { normalize, .. } => {
                let mut obj = normalize(obj).map_err(|e| {
                    ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: {e}",
                        rt.kind, rt.version, rt.kind
                    ))
                })?;
                super::defaults::apply_defaults(&rt.group, &rt.kind, &mut obj);
                obj
            }
            Source::Custom { schema, .. } => {
                let mut obj = obj;
                validation::prune(&mut obj, schema);
                let errors = validation::validate_against_schema(&obj, schema);
                if !errors.is_empty() {
                    let causes = errors.iter().map(|e| e.to_cause()).collect();
                    return Err(ApiError::invalid(
                        &Subject {
                            group: &rt.group,
                            resource: &rt.plural,
                            kind: &rt.kind,
                            name,
                        },
                        causes,
                    ));
                }
                obj
            }
        };
        Ok((obj, warnings))
    }

    fn unknown_fields(&self, rt: &ResourceType, obj: &Value) -> Vec<String> {
        match &rt.source {
            Source::Builtin { .. } => self.with_schema(rt, |s| match s {
                Some(s) => validation::unknown_fields(obj, s),
                None => vec![],
            }),
            Source::Custom { schema, .. } => validation::unknown_fields_crd(obj, schema),
        }
    }

    /// Check apiVersion/kind of a body against the endpoint, filling them in if absent.
    fn check_type(&self, t: &Target, obj: &mut Value) -> ApiResult<()> {
        let av = t.rt.api_version();
        let got_av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let got_kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !got_av.is_empty() && got_av != av {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({got_av}) does not match the expected API version ({av})"
            )));
        }
        if !got_kind.is_empty() && got_kind != t.rt.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({got_kind}) does not match the expected kind ({}) for {}",
                t.rt.kind, t.rt.plural
            )));
        }
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), json!(av));
            o.insert("kind".into(), json!(t.rt.kind));
        }
        Ok(())
    }

    /// Namespace and name checks shared by all writes.
    fn check_meta(&self, t: &Target, obj: &mut Value) -> ApiResult<()> {
        let ns = meta_str(obj, "namespace").to_string();
        match (&t.namespace, t.rt.namespaced) {
            (Some(req_ns), true) => {
                if ns.is_empty() {
                    set_meta(obj, "namespace", json!(req_ns));
                } else if &ns != req_ns {
                    return Err(ApiError::bad_request(format!(
                        "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({req_ns})"
                    )));
                }
            }
            (None, true) => {
                return Err(ApiError::bad_request(format!(
                    "{} is namespaced: use /namespaces/<namespace>/{} to write it",
                    t.rt.plural, t.rt.plural
                )));
            }
            (_, false) => {
                if !ns.is_empty() {
                    remove_meta(obj, "namespace");
                }
            }
        }
        if let Some(url_name) = &t.name {
            let name = meta_str(obj, "name");
            if name.is_empty() {
                set_meta(obj, "name", json!(url_name));
            } else if name != url_name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL ({url_name})"
                )));
            }
        }
        let name = meta_str(obj, "name").to_string();
        let rule = match (t.rt.is_custom(), t.rt.kind.as_str()) {
            (false, "Namespace") => validation::NameRule::Dns1123Label,
            (false, "Service") => validation::NameRule::Dns1035Label,
            _ => validation::NameRule::Dns1123Subdomain,
        };
        let errors = validation::validate_object_meta(
            obj.get("metadata").unwrap_or(&Value::Null),
            t.rt.namespaced,
            rule,
        );
        if !errors.is_empty() {
            let causes = errors.iter().map(|e| e.to_cause()).collect();
            return Err(ApiError::invalid(&t.subject(&name), causes));
        }
        Ok(())
    }

    /// Refuses objects in a namespace that does not exist (an integrity check of the store;
    /// refusing new content in a namespace being deleted is policy: the built-in
    /// `namespace-lifecycle` admission plugin).
    async fn require_namespace(&self, t: &Target) -> ApiResult<()> {
        let Some(ns) = t.namespace.as_deref().filter(|_| t.rt.namespaced) else {
            return Ok(());
        };
        let key = format!("/registry/core/namespaces/{ns}");
        let exists = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .is_some();
        if !exists {
            return Err(ApiError::not_found(&Subject {
                group: "",
                resource: "namespaces",
                kind: "Namespace",
                name: ns,
            }));
        }
        Ok(())
    }

    fn manager(query: &Query, headers: &HeaderMap) -> String {
        if let Some(m) = query.field_manager.as_deref().filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        // As Kubernetes does: the user agent up to the first '/'.
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .chars()
            .take(128)
            .collect()
    }

    /// Record `manager`'s ownership of what this write changed; `None` when server-side
    /// apply already computed the managed fields.
    fn record_fields(
        &self,
        rt: &ResourceType,
        old: Option<&Value>,
        new: &mut Value,
        manager: Option<&str>,
        subresource: Option<&str>,
    ) {
        let Some(manager) = manager else { return };
        let now = now_rfc3339();
        let av = rt.api_version();
        self.with_schema(rt, |s| {
            patch::ssa::update_managed_fields(
                old,
                new,
                manager,
                "Update",
                subresource,
                s,
                &av,
                &now,
            )
        });
    }

    /// The type-specific validation of a built-in object (422 with field causes).
    fn validate_kind(&self, t: &Target, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
        let errors = super::kinds::validate(&t.rt.group, &t.rt.kind, obj, old);
        if errors.is_empty() {
            return Ok(());
        }
        let causes = errors.iter().map(|e| e.to_cause()).collect();
        Err(ApiError::invalid(&t.subject(meta_str(obj, "name")), causes))
    }

    /// Kind-specific changes on create (what Kubernetes' strategies do in PrepareForCreate).
    fn prepare_create(&self, rt: &ResourceType, obj: &mut Value) {
        let keep_status = matches!(rt.kind.as_str(), "Node" | "Event") && !rt.is_custom();
        if rt.has_status()
            && !keep_status
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        if rt.is_custom() || !rt.group.is_empty() && rt.group != "apiextensions.k8s.io" {
            return;
        }
        match rt.kind.as_str() {
            "Namespace" => {
                obj["status"] = json!({"phase": "Active"});
                namespace_name_label(obj);
                let fins = obj
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !fins.iter().any(|f| f == "kubernetes") {
                    let mut f = fins;
                    f.push(json!("kubernetes"));
                    obj["spec"] = json!({"finalizers": f});
                }
            }
            "Pod" => {
                obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(obj)});
            }
            "PersistentVolume" | "PersistentVolumeClaim" => {
                obj["status"] = json!({"phase": "Pending"});
            }
            "Secret" => fold_string_data(obj),
            "CustomResourceDefinition" => {
                crd_status(obj);
                // Deleting a CRD deletes its objects first (see lifecycle.rs).
                let mut fins = finalizers(obj);
                if !fins
                    .iter()
                    .any(|f| f == super::lifecycle::CRD_CLEANUP_FINALIZER)
                {
                    fins.push(super::lifecycle::CRD_CLEANUP_FINALIZER.to_string());
                    set_meta(obj, "finalizers", json!(fins));
                }
            }
            _ => {}
        }
    }

    /// Build the stored form of a new object: identity, timestamps, generation.
    fn stamp_new(&self, rt: &ResourceType, obj: &mut Value) {
        set_meta(obj, "uid", json!(uuid::Uuid::new_v4().to_string()));
        set_meta(obj, "creationTimestamp", json!(now_rfc3339()));
        remove_meta(obj, "resourceVersion");
        remove_meta(obj, "deletionTimestamp");
        remove_meta(obj, "deletionGracePeriodSeconds");
        remove_meta(obj, "selfLink");
        if tracks_generation(rt, obj) {
            set_meta(obj, "generation", json!(1));
        } else {
            remove_meta(obj, "generation");
        }
    }

    pub async fn create(
        &self,
        t: &Target,
        obj: Value,
        query: &Query,
        headers: &HeaderMap,
    ) -> ApiResult<Reply> {
        let manager = Self::manager(query, headers);
        self.create_inner(t, obj, query, Some(&manager)).await
    }

    async fn create_inner(
        &self,
        t: &Target,
        mut obj: Value,
        query: &Query,
        manager: Option<&str>,
    ) -> ApiResult<Reply> {
        check_metadata_shape(&obj)?;
        self.check_type(t, &mut obj)?;
        if meta_str(&obj, "name").is_empty() {
            let gen_name = meta_str(&obj, "generateName").to_string();
            if !gen_name.is_empty() {
                let base: String = gen_name.chars().take(58).collect();
                set_meta(
                    &mut obj,
                    "name",
                    json!(format!("{base}{}", generate_suffix())),
                );
            }
        }
        let fv = query.field_validation()?;
        let name0 = meta_str(&obj, "name").to_string();
        let (mut obj, warnings) = self.check_and_normalize(&t.rt, obj, fv, &name0)?;
        self.check_meta(t, &mut obj)?;
        let name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            return Err(ApiError::invalid(
                &t.subject(""),
                vec![
                    json!({"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}),
                ],
            ));
        }
        self.require_namespace(&Target {
            rt: t.rt.clone(),
            namespace: t.namespace.clone(),
            name: Some(name.clone()),
            subresource: None,
        })
        .await?;
        self.prepare_create(&t.rt, &mut obj);
        self.stamp_new(&t.rt, &mut obj);
        if !t.rt.is_custom() {
            if t.rt.kind == "Job" && t.rt.group == "batch" {
                super::defaults::job_prepare_for_create(&mut obj);
            }
            self.validate_kind(t, &obj, None)?;
        }
        let dry_run = query.dry_run()?;
        let mut warnings = warnings;
        let mut admitted = Some(obj);
        let attrs = super::admission::Attributes {
            operation: crate::plugin::Operation::Create,
            target: t,
            name: &name,
            old: None,
            dry_run,
        };
        warnings.extend(self.admit(attrs, &mut admitted).await?);
        let mut obj = admitted.unwrap_or_default();
        if !t.rt.is_custom() {
            self.validate_kind(t, &obj, None)?;
        }
        self.record_fields(&t.rt, None, &mut obj, manager, None);
        let key = t.rt.key(t.namespace.as_deref(), &name);
        let subject = t.subject(&name);
        if query.dry_run()? {
            return Ok(Reply {
                code: StatusCode::CREATED,
                body: obj,
                warnings,
            });
        }
        let allocation = match (t.rt.kind.as_str(), t.rt.group.as_str(), t.rt.is_custom()) {
            ("Service", "", false) => self.allocate_service(&mut obj).await?,
            ("Node", "", false) => self.allocate_node_cidr(&mut obj).await?,
            _ => Default::default(),
        };
        let written = match encode_for_store(&obj) {
            Ok(value) => self
                .store
                .write(WriteOp::Create { key, value })
                .await
                .map_err(|e| ApiError::from_store(e, &subject)),
            Err(e) => Err(e),
        };
        let res = match written {
            Ok(res) => res,
            Err(e) => {
                self.release(&allocation).await;
                return Err(e);
            }
        };
        set_meta(&mut obj, "resourceVersion", json!(res.revision.to_string()));
        self.after_write(&t.rt);
        Ok(Reply {
            code: StatusCode::CREATED,
            body: obj,
            warnings,
        })
    }

    /// Hooks after a successful write of `rt` (CRDs change the catalog).
    fn after_write(&self, rt: &ResourceType) {
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            self.crds_changed.notify_one();
        }
    }

    /// Hooks after an object is gone: a Service gives back its IP and ports.
    async fn after_delete(&self, rt: &ResourceType, obj: &Value) {
        self.after_write(rt);
        if rt.kind == "Service" && !rt.is_custom() {
            self.release(&Api::allocation_of(obj)).await;
        }
        if rt.kind == "Node" && rt.group.is_empty() && !rt.is_custom() {
            self.release(&Api::node_allocation_of(obj)).await;
        }
    }

    /// Merge a replacement object over the current one, as PUT does (status and identity
    /// rules), and store it with optimistic concurrency.
    async fn replace(
        &self,
        t: &Target,
        (current, current_rev): (Value, u64),
        mut new: Value,
        fv: FieldValidation,
        manager: Option<&str>,
        dry_run: bool,
    ) -> ApiResult<Reply> {
        let name = t.name().to_string();
        let subject = t.subject(&name);
        check_metadata_shape(&new)?;
        self.check_type(t, &mut new)?;
        let (mut new, warnings) = self.check_and_normalize(&t.rt, new, fv, &name)?;
        self.check_meta(t, &mut new)?;
        let sub = t.subresource.as_deref();
        // resourceVersion precondition
        if let Some(rv) = request::parse_rv(Some(meta_str(&new, "resourceVersion")))?
            && rv != current_rev
        {
            return Err(ApiError::stale(&subject));
        }
        match sub {
            Some("status") => {
                // Only status changes through the status subresource.
                let status = new.get("status").cloned();
                let mut merged = current.clone();
                match status {
                    Some(s) => merged["status"] = s,
                    None => {
                        if let Some(o) = merged.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                // Labels/annotations may change along with status, as Kubernetes allows.
                for f in ["labels", "annotations"] {
                    match new.pointer(&format!("/metadata/{f}")) {
                        Some(v) => set_meta(&mut merged, f, v.clone()),
                        None => {
                            remove_meta(&mut merged, f);
                        }
                    }
                }
                if let Some(mf) = new.pointer("/metadata/managedFields") {
                    set_meta(&mut merged, "managedFields", mf.clone());
                }
                new = merged;
            }
            Some("finalize") => {
                let mut merged = current.clone();
                merged["spec"] = new.get("spec").cloned().unwrap_or(json!({}));
                new = merged;
            }
            _ => {
                if t.rt.has_status() {
                    match current.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(o) = new.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                }
                if t.rt.kind == "Secret" && !t.rt.is_custom() {
                    fold_string_data(&mut new);
                }
                if t.rt.kind == "CustomResourceDefinition" && !t.rt.is_custom() {
                    crd_status(&mut new);
                }
                if t.rt.kind == "Service" && !t.rt.is_custom() {
                    // The allocated addresses stay unless the client names them.
                    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                        if new.pointer(&format!("/spec/{f}")).is_none()
                            && let (Some(v), Some(spec)) = (
                                current.pointer(&format!("/spec/{f}")).cloned(),
                                new.get_mut("spec").and_then(Value::as_object_mut),
                            )
                        {
                            spec.insert(f.to_string(), v);
                        }
                    }
                }
            }
        }
        // Identity and system fields come from the stored object.
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match current.pointer(&format!("/metadata/{f}")) {
                Some(v) => set_meta(&mut new, f, v.clone()),
                None => {
                    remove_meta(&mut new, f);
                }
            }
        }
        if t.rt.kind == "Namespace" && !t.rt.is_custom() {
            namespace_name_label(&mut new);
        }
        if t.rt.kind == "Namespace" && !t.rt.is_custom() && sub.is_none() {
            // spec.finalizers of a namespace only change through /finalize.
            if let Some(s) = current.get("spec") {
                new["spec"] = s.clone();
            }
        }
        if sub.is_none() && !t.rt.is_custom() {
            self.validate_kind(t, &new, Some(&current))?;
        }
        if tracks_generation(&t.rt, &new) {
            let ignore_status = true;
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let changed = spec_part(&current, ignore_status) != spec_part(&new, ignore_status);
            set_meta(
                &mut new,
                "generation",
                json!(if changed { generation + 1 } else { generation }),
            );
        }
        // A deleting object may only lose finalizers, not gain them.
        if is_deleting(&current) {
            let before = finalizers(&current);
            if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(ApiError::forbidden(format!(
                    "{} \"{name}\" is forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]",
                    t.rt.plural
                )));
            }
        }
        let mut warnings = warnings;
        let mut admitted = Some(new);
        let attrs = super::admission::Attributes {
            operation: crate::plugin::Operation::Update,
            target: t,
            name: &name,
            old: Some(&current),
            dry_run,
        };
        warnings.extend(self.admit(attrs, &mut admitted).await?);
        let mut new = admitted.unwrap_or_default();
        if sub.is_none() && !t.rt.is_custom() {
            self.validate_kind(t, &new, Some(&current))?;
        }
        self.record_fields(&t.rt, Some(&current), &mut new, manager, sub);
        remove_meta(&mut new, "resourceVersion");
        if dry_run {
            set_meta(&mut new, "resourceVersion", json!(current_rev.to_string()));
            return Ok(Reply {
                code: StatusCode::OK,
                body: new,
                warnings,
            });
        }
        // Unchanged: no write, same resourceVersion (as Kubernetes does).
        let mut cur_cmp = current.clone();
        remove_meta(&mut cur_cmp, "resourceVersion");
        if cur_cmp == new {
            set_meta(&mut new, "resourceVersion", json!(current_rev.to_string()));
            return Ok(Reply {
                code: StatusCode::OK,
                body: new,
                warnings,
            });
        }
        let key = t.key();
        // A namespace also waits for its spec.finalizers (the `kubernetes` finalizer the
        // namespace controller removes through `finalize` once the namespace is empty).
        let spec_finalizers_left = t.rt.group.is_empty()
            && t.rt.plural == "namespaces"
            && new
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        if is_deleting(&new) && finalizers(&new).is_empty() && !spec_finalizers_left {
            // The last finalizer went: the object goes.
            let res = self
                .store
                .write(WriteOp::Delete {
                    key,
                    expected_revision: Some(current_rev),
                })
                .await
                .map_err(|e| ApiError::from_store(e, &subject))?;
            set_meta(&mut new, "resourceVersion", json!(res.revision.to_string()));
            self.after_delete(&t.rt, &new).await;
            return Ok(Reply {
                code: StatusCode::OK,
                body: new,
                warnings,
            });
        }
        let value = encode_for_store(&new)?;
        let res = self
            .store
            .write(WriteOp::Update {
                key,
                value,
                expected_revision: Some(current_rev),
            })
            .await
            .map_err(|e| ApiError::from_store(e, &subject))?;
        set_meta(&mut new, "resourceVersion", json!(res.revision.to_string()));
        self.after_write(&t.rt);
        Ok(Reply {
            code: StatusCode::OK,
            body: new,
            warnings,
        })
    }

    async fn current(&self, t: &Target) -> ApiResult<(Value, u64)> {
        let kv = self
            .store
            .get(&t.key())
            .await
            .map_err(|e| ApiError::from_store(e, &t.subject(t.name())))?
            .ok_or_else(|| ApiError::not_found(&t.subject(t.name())))?;
        Ok((decode_stored(&kv)?, kv.mod_revision))
    }

    pub async fn update(
        &self,
        t: &Target,
        obj: Value,
        query: &Query,
        headers: &HeaderMap,
    ) -> ApiResult<Reply> {
        let (current, rev) = self.current(t).await?;
        let manager = Self::manager(query, headers);
        self.replace(
            t,
            (current, rev),
            obj,
            query.field_validation()?,
            Some(&manager),
            query.dry_run()?,
        )
        .await
    }

    pub async fn patch(
        &self,
        t: &Target,
        ct: &str,
        body: &[u8],
        query: &Query,
        headers: &HeaderMap,
    ) -> ApiResult<Reply> {
        let manager = Self::manager(query, headers);
        let fv = query.field_validation()?;
        let dry_run = query.dry_run()?;
        let patch_doc = match ct {
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                request::decode_yaml(body)?
            }
            _ => request::decode_json(body)?,
        };
        let is_apply = ct == "application/apply-patch+yaml";
        if is_apply {
            if !patch_doc.is_object() {
                return Err(ApiError::bad_request(
                    "an apply patch must be a YAML or JSON object",
                ));
            }
            check_metadata_shape(&patch_doc)?;
        }
        if is_apply && query.field_manager.as_deref().unwrap_or("").is_empty() {
            return Err(ApiError::bad_request(
                "PATCH with application/apply-patch+yaml requires the fieldManager parameter",
            ));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let existing = match self.current(t).await {
                Ok(c) => Some(c),
                Err(e) if e.code == 404 && is_apply && t.subresource.is_none() => None,
                Err(e) => return Err(e),
            };
            let result = match existing {
                None => {
                    // Server-side apply creates a missing object.
                    let mut cfg = patch_doc.clone();
                    self.check_type(t, &mut cfg)?;
                    let av = t.rt.api_version();
                    let now = now_rfc3339();
                    let applied = self
                        .with_schema(&t.rt, |s| {
                            patch::ssa::apply(None, &cfg, &manager, query.force(), s, &av, &now)
                        })
                        .map_err(|e| apply_error(t, e))?;
                    let ct_target = Target {
                        rt: t.rt.clone(),
                        namespace: t.namespace.clone(),
                        name: None,
                        subresource: None,
                    };
                    let mut applied = applied;
                    if meta_str(&applied, "name").is_empty() {
                        set_meta(&mut applied, "name", json!(t.name()));
                    }
                    // ssa::apply recorded the Apply entry: no Update bookkeeping.
                    let mut reply = self.create_inner(&ct_target, applied, query, None).await;
                    if let Err(e) = &reply
                        && e.reason == "AlreadyExists"
                        && attempt < 5
                    {
                        continue;
                    }
                    if let Ok(r) = &mut reply {
                        r.code = StatusCode::CREATED;
                    }
                    return reply;
                }
                Some((current, rev)) => {
                    let base = current.clone();
                    let patched = match ct {
                        "application/json-patch+json" => {
                            let mut doc = base;
                            apply_json_patch(&mut doc, &patch_doc)?;
                            doc
                        }
                        "application/merge-patch+json" => {
                            let mut doc = base;
                            json_patch::merge(&mut doc, &patch_doc);
                            doc
                        }
                        "application/strategic-merge-patch+json" => {
                            if t.rt.is_custom() {
                                return Err(ApiError::unsupported_media_type(
                                    "strategic merge patch is not supported for custom resources: use a JSON merge patch (--type merge) or a JSON patch (--type json)",
                                ));
                            }
                            self.with_schema(&t.rt, |s| {
                                patch::smp::strategic_merge_patch(&base, &patch_doc, s)
                            })
                            .map_err(|e| {
                                ApiError::bad_request(format!(
                                    "the strategic merge patch could not be applied: {e}"
                                ))
                            })?
                        }
                        "application/apply-patch+yaml" => {
                            let mut cfg = patch_doc.clone();
                            self.check_type(t, &mut cfg)?;
                            let av = t.rt.api_version();
                            let now = now_rfc3339();

                            self.with_schema(&t.rt, |s| {
                                patch::ssa::apply(
                                    Some(&base),
                                    &cfg,
                                    &manager,
                                    query.force(),
                                    s,
                                    &av,
                                    &now,
                                )
                            })
                            .map_err(|e| apply_error(t, e))?
                        }
                        other => {
                            return Err(ApiError::unsupported_media_type(format!(
                                "the patch type {other:?} is not supported: use application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml"
                            )));
                        }
                    };
                    if !patched.is_object() {
                        return Err(ApiError::bad_request("the patch did not produce an object"));
                    }
                    check_metadata_shape(&patched)?;
                    // A patch without a resourceVersion must not fail on a concurrent write.
                    let mut patched = patched;
                    let client_rv = patch_doc
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    match &client_rv {
                        Some(rv) => set_meta(&mut patched, "resourceVersion", json!(rv)),
                        None => set_meta(&mut patched, "resourceVersion", json!(rev.to_string())),
                    }
                    let r = if is_apply {
                        self.replace_applied(t, current, rev, patched, fv, dry_run)
                            .await
                    } else {
                        self.replace(t, (current, rev), patched, fv, Some(&manager), dry_run)
                            .await
                    };
                    match r {
                        Err(e) if e.reason == "Conflict" && client_rv.is_none() && attempt < 5 => {
                            continue;
                        }
                        r => r,
                    }
                }
            };
            return result;
        }
    }

    /// Store an object server-side apply produced (its managed fields are already right).
    async fn replace_applied(
        &self,
        t: &Target,
        current: Value,
        rev: u64,
        patched: Value,
        fv: FieldValidation,
        dry_run: bool,
    ) -> ApiResult<Reply> {
        self.replace(t, (current, rev), patched, fv, None, dry_run)
            .await
    }

    pub async fn delete(&self, t: &Target, body: &[u8], query: &Query) -> ApiResult<Reply> {
        let opts = decode_delete_options(body)?;
        let name = t.name().to_string();
        let subject = t.subject(&name);
        let body_dry_run = match opts.dry_run.as_deref() {
            None | Some([]) => false,
            Some(v) if v.iter().all(|d| d == "All") => true,
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported dryRun value {v:?}: the only supported value is \"All\""
                )));
            }
        };
        let dry_run = query.dry_run()? || body_dry_run;
        let policy = query
            .propagation_policy
            .clone()
            .or_else(|| opts.propagation_policy.clone());
        let orphan = query.orphan_dependents.as_deref() == Some("true")
            || opts.orphan_dependents == Some(true);
        let grace = match query.grace_period_seconds.as_deref() {
            Some(s) => Some(s.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid gracePeriodSeconds {s:?}: must be an integer"
                ))
            })?),
            None => opts.grace_period_seconds,
        };
        if grace.is_some_and(|g| g < 0) {
            return Err(ApiError::bad_request(
                "gracePeriodSeconds must not be negative",
            ));
        }
        let policy_finalizer = match policy.as_deref() {
            Some("Foreground") => Some("foregroundDeletion"),
            Some("Orphan") => Some("orphan"),
            None if orphan => Some("orphan"),
            Some("Background") | None => None,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy {other:?} is not supported: use Foreground, Background or Orphan"
                )));
            }
        };
        if t.rt.kind == "Namespace"
            && !t.rt.is_custom()
            && IMMORTAL_NAMESPACES.contains(&name.as_str())
        {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            ))
            .with_details(json!({"name": name, "kind": "namespaces"})));
        }
        for _ in 0..5 {
            let (current, rev) = self.current(t).await?;
            if let Some(pre) = &opts.preconditions {
                if let Some(uid) = pre.uid.as_deref()
                    && uid != meta_str(&current, "uid")
                {
                    return Err(ApiError::conflict(
                        &subject,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            meta_str(&current, "uid")
                        ),
                    ));
                }
                if let Some(prv) = pre.resource_version.as_deref()
                    && prv != rev.to_string()
                {
                    return Err(ApiError::conflict(
                        &subject,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {prv}, ResourceVersion in object meta: {rev}"
                        ),
                    ));
                }
            }
            let attrs = super::admission::Attributes {
                operation: crate::plugin::Operation::Delete,
                target: t,
                name: &name,
                old: Some(&current),
                dry_run,
            };
            self.admit(attrs, &mut None).await?;
            let mut fins = finalizers(&current);
            if let Some(pf) = policy_finalizer
                && !fins.iter().any(|f| f == pf)
            {
                fins.push(pf.to_string());
            }
            let graceful_pod = t.rt.kind == "Pod"
                && !t.rt.is_custom()
                && !current
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                && grace.unwrap_or_else(|| {
                    current
                        .pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                        .unwrap_or(30)
                }) > 0
                && current
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .is_none_or(|p| p != "Succeeded" && p != "Failed");
            // A namespace waits for its content to go (spec.finalizers: ["kubernetes"]).
            let namespace_pending = t.rt.kind == "Namespace"
                && !t.rt.is_custom()
                && current
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
            if !fins.is_empty() || graceful_pod || namespace_pending {
                if is_deleting(&current) && finalizers(&current) == fins && !graceful_pod {
                    return Ok(Reply::ok(current));
                }
                let mut obj = current.clone();
                if namespace_pending {
                    obj["status"] = json!({"phase": "Terminating"});
                }
                if !is_deleting(&obj) {
                    let g = if graceful_pod {
                        grace.unwrap_or_else(|| {
                            current
                                .pointer("/spec/terminationGracePeriodSeconds")
                                .and_then(Value::as_i64)
                                .unwrap_or(30)
                        })
                    } else {
                        0
                    };
                    set_meta(
                        &mut obj,
                        "deletionTimestamp",
                        json!(super::object::rfc3339_in(g)),
                    );
                    set_meta(&mut obj, "deletionGracePeriodSeconds", json!(g));
                } else if graceful_pod {
                    return Ok(Reply::ok(current));
                }
                set_meta(&mut obj, "finalizers", json!(fins));
                if fins.is_empty() {
                    remove_meta(&mut obj, "finalizers");
                }
                if dry_run {
                    return Ok(Reply::ok(obj));
                }
                remove_meta(&mut obj, "resourceVersion");
                let value = encode_for_store(&obj)?;
                match self
                    .store
                    .write(WriteOp::Update {
                        key: t.key(),
                        value,
                        expected_revision: Some(rev),
                    })
                    .await
                {
                    Ok(res) => {
                        set_meta(&mut obj, "resourceVersion", json!(res.revision.to_string()));
                        self.after_write(&t.rt);
                        return Ok(Reply::ok(obj));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(e, &subject)),
                }
            }
            if dry_run {
                return Ok(Reply::ok(success_status(
                    &subject,
                    Some(meta_str(&current, "uid")),
                )));
            }
            match self
                .store
                .write(WriteOp::Delete {
                    key: t.key(),
                    expected_revision: Some(rev),
                })
                .await
            {
                Ok(_) => {
                    self.after_delete(&t.rt, &current).await;
                    if t.rt.kind == "Pod" || t.rt.kind == "Namespace" || t.rt.is_custom() {
                        return Ok(Reply::ok(current));
                    }
                    return Ok(Reply::ok(success_status(
                        &subject,
                        Some(meta_str(&current, "uid")),
                    )));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, &subject)),
            }
        }
        Err(ApiError::stale(&subject))
    }

    async fn delete_collection(&self, t: &Target, body: &[u8], query: &Query) -> ApiResult<Reply> {
        let (items, rv, _, _) = self
            .list_objects(
                t,
                &Query {
                    label_selector: query.label_selector.clone(),
                    field_selector: query.field_selector.clone(),
                    ..Default::default()
                },
            )
            .await?;
        let mut deleted = vec![];
        for item in items {
            let name = meta_str(&item, "name").to_string();
            let ns = meta_str(&item, "namespace");
            let one = Target {
                rt: t.rt.clone(),
                namespace: if ns.is_empty() {
                    None
                } else {
                    Some(ns.to_string())
                },
                name: Some(name),
                subresource: None,
            };
            match self.delete(&one, body, query).await {
                Ok(_) => deleted.push(item),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Reply::ok(json!({
            "kind": t.rt.list_kind,
            "apiVersion": t.rt.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": deleted,
        })))
    }

    // ---- subresources ----

    pub async fn bind(&self, t: &Target, binding: Value, query: &Query) -> ApiResult<Reply> {
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = t.name().to_string();
        let subject = t.subject(&name);
        if node.is_empty() {
            return Err(ApiError::invalid(
                &subject,
                vec![
                    json!({"reason": "FieldValueRequired", "message": "Required value", "field": "target.name"}),
                ],
            ));
        }
        for _ in 0..5 {
            let (mut pod, rev) = self.current(t).await?;
            if is_deleting(&pod) {
                return Err(ApiError::conflict(
                    &subject,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            let existing = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !existing.is_empty() {
                return Err(ApiError::conflict(
                    &subject,
                    &format!("pod {name} is already assigned to node \"{existing}\""),
                ));
            }
            pod["spec"]["nodeName"] = json!(node);
            let now = now_rfc3339();
            let conds = pod.pointer_mut("/status/conditions");
            let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
            match conds.and_then(Value::as_array_mut) {
                Some(a) => {
                    a.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                    a.push(cond);
                }
                None => pod["status"]["conditions"] = json!([cond]),
            }
            if query.dry_run()? {
                return Ok(Reply {
                    code: StatusCode::CREATED,
                    body: success_status(&subject, None),
                    warnings: vec![],
                });
            }
            remove_meta(&mut pod, "resourceVersion");
            let value = encode_for_store(&pod)?;
            match self
                .store
                .write(WriteOp::Update {
                    key: t.key(),
                    value,
                    expected_revision: Some(rev),
                })
                .await
            {
                Ok(_) => {
                    let mut s = success_status(&subject, None);
                    s["code"] = json!(201);
                    return Ok(Reply {
                        code: StatusCode::CREATED,
                        body: s,
                        warnings: vec![],
                    });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, &subject)),
            }
        }
        Err(ApiError::stale(&subject))
    }

    fn scale_of(&self, t: &Target, obj: &Value) -> ApiResult<Value> {
        let paths =
            t.rt.scale
                .as_ref()
                .ok_or_else(|| ApiError::no_route("no scale subresource"))?;
        let spec = obj
            .pointer(&paths.spec_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(if t.rt.is_custom() { 0 } else { 1 });
        let status = obj
            .pointer(&paths.status_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let selector = paths
            .label_selector
            .as_deref()
            .and_then(|p| obj.pointer(p))
            .map(|s| match s {
                Value::String(s) => s.clone(),
                other => label_selector_string(other),
            })
            .unwrap_or_default();
        let mut meta = json!({
            "name": meta_str(obj, "name"),
            "uid": meta_str(obj, "uid"),
            "resourceVersion": meta_str(obj, "resourceVersion"),
            "creationTimestamp": meta_str(obj, "creationTimestamp"),
        });
        if t.rt.namespaced {
            meta["namespace"] = json!(meta_str(obj, "namespace"));
        }
        let mut st = json!({"replicas": status});
        if !selector.is_empty() {
            st["selector"] = json!(selector);
        }
        Ok(json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": meta,
            "spec": {"replicas": spec},
            "status": st,
        }))
    }

    async fn get_scale(&self, t: &Target) -> ApiResult<Value> {
        let obj = self.get_object(t).await?;
        self.scale_of(t, &obj)
    }

    async fn set_replicas(
        &self,
        t: &Target,
        replicas: i64,
        rv: Option<u64>,
        manager: &str,
    ) -> ApiResult<Value> {
        let name = t.name().to_string();
        let paths =
            t.rt.scale
                .clone()
                .ok_or_else(|| ApiError::no_route("no scale subresource"))?;
        if replicas < 0 {
            return Err(ApiError::invalid(
                &Subject {
                    group: "autoscaling",
                    resource: "scale",
                    kind: "Scale",
                    name: &name,
                },
                vec![
                    json!({"reason": "FieldValueInvalid", "message": format!("Invalid value: {replicas}: must be greater than or equal to 0"), "field": "spec.replicas"}),
                ],
            ));
        }
        for _ in 0..5 {
            let (current, rev) = self.current(t).await?;
            if let Some(want) = rv
                && want != rev
            {
                return Err(ApiError::stale(&t.subject(&name)));
            }
            let mut new = current.clone();
            set_pointer(&mut new, &paths.spec_replicas, json!(replicas));
            let main = Target {
                rt: t.rt.clone(),
                namespace: t.namespace.clone(),
                name: t.name.clone(),
                subresource: None,
            };
            match self
                .replace(
                    &main,
                    (current, rev),
                    new,
                    FieldValidation::Ignore,
                    Some(manager),
                    false,
                )
                .await
            {
                Ok(r) => return self.scale_of(t, &r.body),
                Err(e) if e.reason == "Conflict" && rv.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::stale(&t.subject(&name)))
    }

    async fn update_scale(&self, t: &Target, scale: Value, manager: &str) -> ApiResult<Value> {
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let rv = request::parse_rv(
            scale
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str),
        )?;
        self.set_replicas(t, replicas, rv, manager).await
    }

    async fn patch_scale(
        &self,
        t: &Target,
        ct: &str,
        body: &[u8],
        manager: &str,
    ) -> ApiResult<Value> {
        let scale = self.get_scale(t).await?;
        let doc = request::decode_json(body)?;
        let patched = match ct {
            "application/json-patch+json" => {
                let mut s = scale;
                apply_json_patch(&mut s, &doc)?;
                s
            }
            _ => {
                let mut s = scale;
                json_patch::merge(&mut s, &doc);
                s
            }
        };
        let replicas = patched
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        self.set_replicas(t, replicas, None, manager).await
    }
}

fn apply_error(t: &Target, e: patch::ssa::ApplyError) -> ApiError {
    match e {
        patch::ssa::ApplyError::Conflicts(conflicts) => {
            let msg = patch::ssa::conflict_message(&conflicts, &t.rt.api_version());
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| c.to_cause(&t.rt.api_version()))
                .collect();
            ApiError::new(409, "Conflict", msg).with_details(json!({
                "name": t.name(),
                "group": t.rt.group,
                "kind": t.rt.plural,
                "causes": causes,
            }))
        }
        other => ApiError::bad_request(format!("server-side apply failed: {other}")),
    }
}

/// `metadata`, when present, must be an object (never silently replaced).
fn check_metadata_shape(obj: &Value) -> ApiResult<()> {
    match obj.get("metadata") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "metadata must be an object, not {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "a list",
                Value::Object(_) => "an object",
            }
        ))),
    }
}

/// Decode a DELETE body (`DeleteOptions`), strictly: a malformed one is a bad request, never
/// a delete with options silently dropped.
fn decode_delete_options(
    body: &[u8],
) -> ApiResult<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    let v = request::decode_json(body)?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of a DELETE must be a DeleteOptions object",
        ));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid DeleteOptions: {}: {}",
            e.path(),
            e.inner()
        ))
    })
}

/// Apply an RFC 6902 JSON patch. A body that is not a list of operations is a bad request;
/// operations that cannot be applied make the request invalid (422), as in Kubernetes.
fn apply_json_patch(doc: &mut Value, patch: &Value) -> ApiResult<()> {
    if !patch.is_array() {
        return Err(ApiError::bad_request(
            "the JSON patch must be a JSON array of operations ({\"op\": ..., \"path\": ...})",
        ));
    }
    let p: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::new(422, "Invalid", format!("the JSON patch is invalid: {e}")))?;
    json_patch::patch(doc, &p).map_err(|e| {
        ApiError::new(
            422,
            "Invalid",
            format!("the JSON patch could not be applied: {e}"),
        )
    })
}

/// Whether `metadata.generation` is maintained for this object.
fn tracks_generation(rt: &ResourceType, obj: &Value) -> bool {
    rt.is_custom()
        || obj.get("spec").is_some()
            && !matches!(
                rt.kind.as_str(),
                "Node"
                    | "Namespace"
                    | "Service"
                    | "PersistentVolume"
                    | "PersistentVolumeClaim"
                    | "Lease"
            )
}

fn set_pointer(obj: &mut Value, ptr: &str, v: Value) {
    let parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    let mut cur = obj;
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(o) = cur.as_object_mut() else { return };
        if i + 1 == parts.len() {
            o.insert(p.to_string(), v);
            return;
        }
        cur = o.entry(p.to_string()).or_insert_with(|| json!({}));
    }
}

/// Namespaces carry their name as the label `kubernetes.io/metadata.name`, always.
fn namespace_name_label(obj: &mut Value) {
    let name = meta_str(obj, "name").to_string();
    let meta = super::object::meta_mut(obj);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["kubernetes.io/metadata.name"] = json!(name);
}

/// Namespaces that may never be deleted.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Secret `stringData` is folded into `data` (base64) on write.
fn fold_string_data(obj: &mut Value) {
    let Some(sd) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let Some(sd) = sd.as_object() else { return };
    let data = obj
        .as_object_mut()
        .map(|o| o.entry("data").or_insert_with(|| json!({})));
    if let Some(Value::Object(data)) = data {
        for (k, v) in sd {
            let s = v.as_str().unwrap_or("");
            data.insert(
                k.clone(),
                json!(base64::engine::general_purpose::STANDARD.encode(s)),
            );
        }
    }
}

/// The QoS class of a pod, as Kubernetes computes it.
fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let rq = req.and_then(|m| m.get(r));
            let lm = lim.and_then(|m| m.get(r));
            if rq.is_some() || lm.is_some() {
                any = true;
            }
            match (rq, lm) {
                (_, None) => guaranteed = false,
                (Some(a), Some(b)) if a != b => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A CRD is accepted and established as soon as it is stored (names are checked on write).
fn crd_status(obj: &mut Value) {
    let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let now = now_rfc3339();
    let stored: Vec<Value> = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    obj["status"] = json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored,
    });
}

fn encode_continue(rv: u64, key: &str) -> String {
    let v = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": key});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_continue(tok: &str) -> ApiResult<(u64, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: the token is malformed; start the list again without continue",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, start.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn warning_headers_are_quoted_strings_like_kubernetes_writes_them() {
        assert_eq!(
            super::warning_header("a \"b\" c\\d\nnext\tline é"),
            "299 - \"a \\\"b\\\" c\\\\d next line é\""
        );
        assert!(axum::http::HeaderValue::from_bytes(super::warning_header("é").as_bytes()).is_ok());
    }

    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "/registry/core/pods/default/a");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "/registry/core/pods/default/a".to_string())
        );
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{"name": "a"}]}})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(
                &json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]}})
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(
                &json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}})
            ),
            "Burstable"
        );
    }

    #[test]
    fn string_data_is_folded() {
        let mut s = json!({"stringData": {"a": "hi"}, "data": {"b": "eA=="}});
        fold_string_data(&mut s);
        assert_eq!(s, json!({"data": {"b": "eA==", "a": "aGk="}}));
    }
}
