//! The host API a plugin may call (`tugboat:plugin/host`), checked against the plugin's
//! capabilities before anything reaches the [`HostApi`] implementation.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bindings::controller::tugboat::plugin::cluster as wit_cluster;
use super::bindings::tugboat::plugin::{host as wit_host, types as wit_types};
use super::health::Health;
use super::logs::{LogSource, PluginLogs, truncate};
use super::manifest::{Capability, allowed};

/// An error of the host API, delivered to the plugin as `tugboat:plugin/types.error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct HostError {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

impl HostError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        HostError {
            code,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NotFound", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }
}

/// A resource a host API call addresses, resolved from the plugin's
/// `(api-version, kind-or-resource)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceRef {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    /// The lower-case plural (`pods`), as in capabilities and URLs.
    pub resource: String,
}

/// A resource type the API server serves (`cluster.api-resources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResourceInfo {
    pub api_version: String,
    pub kind: String,
    pub resource: String,
    pub namespaced: bool,
}

/// A cache query of `cluster.select`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub label_selector: Option<String>,
    /// e.g. `spec.nodeName=node-1`.
    pub field_selector: Option<String>,
    /// Only objects with an owner reference of this uid.
    pub owner_uid: Option<String>,
}

/// The kinds of patch a plugin may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    /// The request content type of the patch.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchKind::Json => "application/json-patch+json",
            PatchKind::Merge => "application/merge-patch+json",
            PatchKind::Strategic => "application/strategic-merge-patch+json",
            PatchKind::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Options of `cluster.delete-with` (Kubernetes' `DeleteOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOpts {
    /// `Background`, `Foreground` or `Orphan`.
    pub propagation: Option<&'static str>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub grace_period_seconds: Option<i64>,
}

/// What a plugin's host calls are served by — implemented by the API server. The runtime
/// has already checked the plugin's capabilities for the verb and resource when a method
/// is called; `plugin` names the caller (for audit and attribution). Calls run under the
/// plugin call's deadline: a slow call is abandoned (its future dropped) and the plugin
/// gets a 504.
#[async_trait]
pub trait HostApi: Send + Sync + 'static {
    /// Maps `(api_version, kind_or_resource)` to a resource. The default accepts a resource
    /// name as is and turns a kind into its naive lower-case plural (`NetworkPolicy` →
    /// `networkpolicies`); the API server should answer from its catalog (and 404 for
    /// unknown types).
    fn resolve(&self, api_version: &str, kind_or_resource: &str) -> Result<ResourceRef, HostError> {
        naive_resolve(api_version, kind_or_resource)
    }

    async fn get(
        &self,
        plugin: &str,
        resource: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError>;

    async fn list(
        &self,
        plugin: &str,
        resource: &ResourceRef,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError>;

    async fn create(
        &self,
        plugin: &str,
        resource: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError>;

    async fn update(
        &self,
        plugin: &str,
        resource: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError>;

    async fn delete(
        &self,
        plugin: &str,
        resource: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError>;

    /// `cluster.api-resources`: the resource types served (none by default).
    fn api_resources(&self) -> Vec<ApiResourceInfo> {
        Vec::new()
    }

    /// `cluster.select`: objects matching `query` (for controllers: from the cache). The
    /// default serves the label selector through [`HostApi::list`] and filters the rest.
    async fn select(
        &self,
        plugin: &str,
        resource: &ResourceRef,
        namespace: Option<&str>,
        query: &Query,
    ) -> Result<Vec<Value>, HostError> {
        let items = self
            .list(plugin, resource, namespace, query.label_selector.as_deref())
            .await?;
        Ok(items
            .into_iter()
            .filter(|o| query_matches_fields(o, query))
            .collect())
    }

    /// `cluster.patch`.
    #[allow(clippy::too_many_arguments)]
    async fn patch(
        &self,
        plugin: &str,
        resource: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: Value,
        subresource: Option<&str>,
    ) -> Result<Value, HostError> {
        let _ = (plugin, resource, namespace, name, kind, patch, subresource);
        Err(HostError::new(
            501,
            "NotImplemented",
            "patch is not served here",
        ))
    }

    /// `cluster.create-all`: each object created as by [`HostApi::create`]; the default
    /// does them one after the other.
    async fn create_all(
        &self,
        plugin: &str,
        objects: Vec<(ResourceRef, Option<String>, Value)>,
    ) -> Vec<Result<Value, HostError>> {
        let mut out = Vec::with_capacity(objects.len());
        for (r, ns, o) in objects {
            out.push(self.create(plugin, &r, ns.as_deref(), o).await);
        }
        out
    }

    /// `cluster.update-status`.
    async fn update_status(
        &self,
        plugin: &str,
        resource: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError> {
        let _ = (plugin, resource, namespace, object);
        Err(HostError::new(
            501,
            "NotImplemented",
            "update-status is not served here",
        ))
    }

    /// `cluster.delete-with`. The default ignores the options.
    async fn delete_with(
        &self,
        plugin: &str,
        resource: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOpts,
    ) -> Result<(), HostError> {
        let _ = options;
        self.delete(plugin, resource, namespace, name).await
    }
}

/// Whether `object` passes the field-selector and owner parts of `query` (`path=value`,
/// `path==value`, `path!=value` terms on dotted paths such as `spec.nodeName`).
pub fn query_matches_fields(object: &Value, query: &Query) -> bool {
    if let Some(uid) = &query.owner_uid {
        let owned = object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid.as_str()))
            });
        if !owned {
            return false;
        }
    }
    let Some(fs) = &query.field_selector else {
        return true;
    };
    fs.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            let (path, want, negate) = match term.split_once("!=") {
                Some((p, v)) => (p, v, true),
                None => match term.split_once('=') {
                    Some((p, v)) => (p, v.trim_start_matches('='), false),
                    None => return false,
                },
            };
            let pointer = format!("/{}", path.trim().replace('.', "/"));
            let have = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            (have == want.trim()) != negate
        })
}

/// The default [`HostApi::resolve`].
pub fn naive_resolve(api_version: &str, kind_or_resource: &str) -> Result<ResourceRef, HostError> {
    if api_version.is_empty() || kind_or_resource.is_empty() {
        return Err(HostError::bad_request("apiVersion and kind are required"));
    }
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let resource = if kind_or_resource.starts_with(|c: char| c.is_ascii_uppercase()) {
        naive_plural(kind_or_resource)
    } else {
        kind_or_resource.to_string()
    };
    Ok(ResourceRef {
        group: group.to_string(),
        version: version.to_string(),
        resource,
    })
}

fn naive_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

/// A [`HostApi`] that serves nothing: every object call (that passed the capability check)
/// fails with 503. For plugins that need no cluster access, and for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHostApi;

fn no_api() -> HostError {
    HostError::unavailable("no API server is attached to this plugin runtime")
}

#[async_trait]
impl HostApi for NoHostApi {
    async fn get(
        &self,
        _: &str,
        _: &ResourceRef,
        _: Option<&str>,
        _: &str,
    ) -> Result<Option<Value>, HostError> {
        Err(no_api())
    }

    async fn list(
        &self,
        _: &str,
        _: &ResourceRef,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        Err(no_api())
    }

    async fn create(
        &self,
        _: &str,
        _: &ResourceRef,
        _: Option<&str>,
        _: Value,
    ) -> Result<Value, HostError> {
        Err(no_api())
    }

    async fn update(
        &self,
        _: &str,
        _: &ResourceRef,
        _: Option<&str>,
        _: Value,
    ) -> Result<Value, HostError> {
        Err(no_api())
    }

    async fn delete(
        &self,
        _: &str,
        _: &ResourceRef,
        _: Option<&str>,
        _: &str,
    ) -> Result<(), HostError> {
        Err(no_api())
    }
}

/// The longest object JSON a plugin may send to `create`/`update` (the API's body limit).
const MAX_OBJECT_BYTES: usize = 3 << 20;

/// The per-store state of the host interface.
pub(crate) struct HostCtx {
    pub plugin: Arc<str>,
    pub capabilities: Arc<[Capability]>,
    pub api: Arc<dyn HostApi>,
    pub logs: Arc<PluginLogs>,
    pub health: Arc<Health>,
    /// The current call's deadline (host calls are cut off there too).
    pub deadline: Instant,
}

impl HostCtx {
    /// Resolves and capability-checks one call.
    fn check(
        &self,
        verb: &str,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
    ) -> Result<ResourceRef, HostError> {
        self.check_sub(verb, api_version, kind_or_resource, None, namespace)
    }

    /// Resolves and capability-checks one call, on a subresource (`pods/status`: granted
    /// like RBAC, by naming `<resource>/<subresource>` in the capability) if given.
    fn check_sub(
        &self,
        verb: &str,
        api_version: &str,
        kind_or_resource: &str,
        subresource: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<ResourceRef, HostError> {
        let mut r = self.api.resolve(api_version, kind_or_resource)?;
        let checked = match subresource {
            Some(sub) => format!("{}/{sub}", r.resource),
            None => r.resource.clone(),
        };
        if allowed(&self.capabilities, &r.group, &checked, verb) {
            return Ok(r);
        }
        r.resource = checked;
        let group = if r.group.is_empty() { "core" } else { &r.group };
        let message = format!(
            "plugin {:?} may not {verb} {:?} in API group {group:?}{}: not granted by its capabilities",
            &*self.plugin,
            r.resource,
            namespace
                .map(|n| format!(" (namespace {n:?})"))
                .unwrap_or_default(),
        );
        tracing::warn!(
            plugin = %self.plugin,
            verb,
            group = %r.group,
            resource = %r.resource,
            namespace = namespace.unwrap_or(""),
            "capability violation: host call refused"
        );
        self.health.count_capability_violation();
        self.logs.push(
            LogSource::Runtime,
            &format!("capability violation: {message}"),
        );
        Err(HostError::forbidden(message))
    }

    /// Runs a host call under the plugin call's deadline.
    async fn within_deadline<T>(
        &self,
        verb: &str,
        call: impl Future<Output = Result<T, HostError>>,
    ) -> Result<T, HostError> {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(HostError::timeout(format!(
                "host call {verb} did not finish before the plugin call's deadline"
            ))),
        }
    }

    fn parse_object(
        &self,
        verb: &str,
        json: &str,
    ) -> Result<(ResourceRef, Option<String>, Value), HostError> {
        self.parse_object_sub(verb, None, json)
    }

    fn parse_object_sub(
        &self,
        verb: &str,
        subresource: Option<&str>,
        json: &str,
    ) -> Result<(ResourceRef, Option<String>, Value), HostError> {
        if json.len() > MAX_OBJECT_BYTES {
            return Err(HostError::new(
                413,
                "RequestEntityTooLarge",
                "the object is larger than 3 MiB",
            ));
        }
        let object: Value = serde_json::from_str(json)
            .map_err(|e| HostError::bad_request(format!("the object is not valid JSON: {e}")))?;
        let field = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (Some(api_version), Some(kind)) = (field("/apiVersion"), field("/kind")) else {
            return Err(HostError::bad_request(
                "the object needs apiVersion and kind",
            ));
        };
        let namespace = field("/metadata/namespace");
        let r = self.check_sub(verb, &api_version, &kind, subresource, namespace.as_deref())?;
        Ok((r, namespace, object))
    }
}

fn wit_err(e: HostError) -> wit_types::Error {
    wit_types::Error {
        code: e.code,
        reason: e.reason,
        message: e.message,
    }
}

impl wit_types::Host for HostCtx {}

impl wit_host::Host for HostCtx {
    async fn log(&mut self, level: wit_types::LogLevel, message: String) {
        let message = truncate(&message, super::logs::MAX_LINE_BYTES);
        let plugin = &*self.plugin;
        let source = match level {
            wit_types::LogLevel::Trace => {
                tracing::trace!(plugin, "{message}");
                LogSource::Trace
            }
            wit_types::LogLevel::Debug => {
                tracing::debug!(plugin, "{message}");
                LogSource::Debug
            }
            wit_types::LogLevel::Info => {
                tracing::info!(plugin, "{message}");
                LogSource::Info
            }
            wit_types::LogLevel::Warn => {
                tracing::warn!(plugin, "{message}");
                LogSource::Warn
            }
            wit_types::LogLevel::Error => {
                tracing::error!(plugin, "{message}");
                LogSource::Error
            }
        };
        self.logs.push(source, message);
    }

    async fn get(
        &mut self,
        api_version: String,
        kind_or_resource: String,
        namespace: Option<String>,
        name: String,
    ) -> Result<Option<String>, wit_types::Error> {
        let r = self
            .check("get", &api_version, &kind_or_resource, namespace.as_deref())
            .map_err(wit_err)?;
        let api = self.api.clone();
        let found = self
            .within_deadline(
                "get",
                api.get(&self.plugin, &r, namespace.as_deref(), &name),
            )
            .await
            .map_err(wit_err)?;
        Ok(found.map(|v| v.to_string()))
    }

    async fn list(
        &mut self,
        api_version: String,
        kind_or_resource: String,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> Result<Vec<String>, wit_types::Error> {
        let r = self
            .check(
                "list",
                &api_version,
                &kind_or_resource,
                namespace.as_deref(),
            )
            .map_err(wit_err)?;
        let api = self.api.clone();
        let items = self
            .within_deadline(
                "list",
                api.list(
                    &self.plugin,
                    &r,
                    namespace.as_deref(),
                    label_selector.as_deref(),
                ),
            )
            .await
            .map_err(wit_err)?;
        Ok(items.iter().map(Value::to_string).collect())
    }

    async fn create(&mut self, object: String) -> Result<String, wit_types::Error> {
        let (r, namespace, object) = self.parse_object("create", &object).map_err(wit_err)?;
        let api = self.api.clone();
        let stored = self
            .within_deadline(
                "create",
                api.create(&self.plugin, &r, namespace.as_deref(), object),
            )
            .await
            .map_err(wit_err)?;
        Ok(stored.to_string())
    }

    async fn update(&mut self, object: String) -> Result<String, wit_types::Error> {
        let (r, namespace, object) = self.parse_object("update", &object).map_err(wit_err)?;
        let api = self.api.clone();
        let stored = self
            .within_deadline(
                "update",
                api.update(&self.plugin, &r, namespace.as_deref(), object),
            )
            .await
            .map_err(wit_err)?;
        Ok(stored.to_string())
    }

    async fn delete(
        &mut self,
        api_version: String,
        kind_or_resource: String,
        namespace: Option<String>,
        name: String,
    ) -> Result<(), wit_types::Error> {
        let r = self
            .check(
                "delete",
                &api_version,
                &kind_or_resource,
                namespace.as_deref(),
            )
            .map_err(wit_err)?;
        let api = self.api.clone();
        self.within_deadline(
            "delete",
            api.delete(&self.plugin, &r, namespace.as_deref(), &name),
        )
        .await
        .map_err(wit_err)
    }
}

impl wit_cluster::Host for HostCtx {
    async fn api_resources(&mut self) -> Vec<wit_cluster::ApiResource> {
        self.api
            .api_resources()
            .into_iter()
            .map(|r| wit_cluster::ApiResource {
                api_version: r.api_version,
                kind: r.kind,
                resource: r.resource,
                namespaced: r.namespaced,
            })
            .collect()
    }

    async fn now_millis(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default()
    }

    async fn select(&mut self, q: wit_cluster::Query) -> Result<Vec<String>, wit_types::Error> {
        let r = self
            .check(
                "list",
                &q.api_version,
                &q.kind_or_resource,
                q.namespace.as_deref(),
            )
            .map_err(wit_err)?;
        let query = Query {
            label_selector: q.label_selector,
            field_selector: q.field_selector,
            owner_uid: q.owner_uid,
        };
        let api = self.api.clone();
        let items = self
            .within_deadline(
                "select",
                api.select(&self.plugin, &r, q.namespace.as_deref(), &query),
            )
            .await
            .map_err(wit_err)?;
        Ok(items.iter().map(Value::to_string).collect())
    }

    async fn patch(
        &mut self,
        api_version: String,
        kind_or_resource: String,
        namespace: Option<String>,
        name: String,
        patch_type: wit_cluster::PatchType,
        patch: String,
        subresource: Option<String>,
    ) -> Result<String, wit_types::Error> {
        let r = self
            .check_sub(
                "patch",
                &api_version,
                &kind_or_resource,
                subresource.as_deref(),
                namespace.as_deref(),
            )
            .map_err(wit_err)?;
        if patch.len() > MAX_OBJECT_BYTES {
            return Err(wit_err(HostError::new(
                413,
                "RequestEntityTooLarge",
                "the patch is larger than 3 MiB",
            )));
        }
        let patch: Value = serde_json::from_str(&patch).map_err(|e| {
            wit_err(HostError::bad_request(format!(
                "the patch is not valid JSON: {e}"
            )))
        })?;
        let kind = match patch_type {
            wit_cluster::PatchType::Json => PatchKind::Json,
            wit_cluster::PatchType::Merge => PatchKind::Merge,
            wit_cluster::PatchType::Strategic => PatchKind::Strategic,
            wit_cluster::PatchType::Apply => PatchKind::Apply,
        };
        let api = self.api.clone();
        let stored = self
            .within_deadline(
                "patch",
                api.patch(
                    &self.plugin,
                    &r,
                    namespace.as_deref(),
                    &name,
                    kind,
                    patch,
                    subresource.as_deref(),
                ),
            )
            .await
            .map_err(wit_err)?;
        Ok(stored.to_string())
    }

    async fn create_all(&mut self, objects: Vec<String>) -> Vec<Result<String, wit_types::Error>> {
        if objects.len() > 1000 {
            return objects
                .iter()
                .map(|_| {
                    Err(wit_err(HostError::bad_request(
                        "create-all takes at most 1000 objects",
                    )))
                })
                .collect();
        }
        // Check every object first; the valid ones go to the API together.
        let mut outcomes: Vec<Option<Result<String, wit_types::Error>>> = Vec::new();
        let mut valid = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            match self.parse_object("create", o) {
                Ok((r, ns, obj)) => {
                    outcomes.push(None);
                    valid.push((i, (r, ns, obj)));
                }
                Err(e) => outcomes.push(Some(Err(wit_err(e)))),
            }
        }
        let (index, batch): (Vec<usize>, Vec<_>) = valid.into_iter().unzip();
        let api = self.api.clone();
        let n = batch.len();
        let results = self
            .within_deadline("create-all", async {
                Ok(api.create_all(&self.plugin, batch).await)
            })
            .await
            .unwrap_or_else(|e| vec![Err(e); n]);
        for (i, r) in index.into_iter().zip(results) {
            outcomes[i] = Some(r.map(|v| v.to_string()).map_err(wit_err));
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(wit_err(HostError::internal("no outcome")))))
            .collect()
    }

    async fn update_status(&mut self, object: String) -> Result<String, wit_types::Error> {
        let (r, namespace, object) = self
            .parse_object_sub("update", Some("status"), &object)
            .map_err(wit_err)?;
        let api = self.api.clone();
        let stored = self
            .within_deadline(
                "update-status",
                api.update_status(&self.plugin, &r, namespace.as_deref(), object),
            )
            .await
            .map_err(wit_err)?;
        Ok(stored.to_string())
    }

    async fn delete_with(
        &mut self,
        api_version: String,
        kind_or_resource: String,
        namespace: Option<String>,
        name: String,
        options: wit_cluster::DeleteOptions,
    ) -> Result<(), wit_types::Error> {
        let r = self
            .check(
                "delete",
                &api_version,
                &kind_or_resource,
                namespace.as_deref(),
            )
            .map_err(wit_err)?;
        let opts = DeleteOpts {
            propagation: options.propagation.map(|p| match p {
                wit_cluster::Propagation::Background => "Background",
                wit_cluster::Propagation::Foreground => "Foreground",
                wit_cluster::Propagation::Orphan => "Orphan",
            }),
            uid: options.uid,
            resource_version: options.resource_version,
            grace_period_seconds: options.grace_period_seconds,
        };
        let api = self.api.clone();
        self.within_deadline(
            "delete",
            api.delete_with(&self.plugin, &r, namespace.as_deref(), &name, &opts),
        )
        .await
        .map_err(wit_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_resolution() {
        let r = naive_resolve("apps/v1", "Deployment").unwrap();
        assert_eq!(
            (r.group.as_str(), r.version.as_str(), r.resource.as_str()),
            ("apps", "v1", "deployments")
        );
        assert_eq!(naive_resolve("v1", "pods").unwrap().resource, "pods");
        assert_eq!(
            naive_resolve("networking.k8s.io/v1", "NetworkPolicy")
                .unwrap()
                .resource,
            "networkpolicies"
        );
        assert_eq!(
            naive_resolve("networking.k8s.io/v1", "Ingress")
                .unwrap()
                .resource,
            "ingresses"
        );
        assert!(naive_resolve("", "Pod").is_err());
    }
}
