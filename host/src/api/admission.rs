//! Admission by Wasm plugins: the `Plugin` resource (`tugboat.dev/v1alpha1`, cluster-scoped),
//! the loop that loads, upgrades and unloads the components it names, the chain of hooks in
//! the write path (mutating hooks in order, then validating hooks), the host API the plugins
//! call back into, and the content-addressed blob store components are uploaded to.
//!
//! A `Plugin` is applied like any object; the loop reacts to it: it fetches the component
//! (today from the blob store, `spec.source.blob: sha256:…`), compiles it (cached), probes it
//! (`init(config)`), and only then swaps it in — a version that fails to compile, does not
//! fit its world or fails its first call is not activated, the previous one keeps serving and
//! the status says why. Deleting the `Plugin` unloads it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Api;
use super::client::{
    ApiClient, ApiResource, ClientError, DeleteParams, ListParams, LocalClient, Patch, PatchParams,
    Preconditions, PropagationPolicy,
};
use super::handlers::Target;
use super::object::{decode_at, decode_stored, meta_str};
use super::request::Query;
use super::status::{ApiError, ApiResult};
use crate::plugin::scheduler::SchedulerPlugin;
use crate::plugin::{
    AdmissionPlugin, AdmissionRequest, ApiResourceInfo, Capability, ControllerPlugin, DeleteOpts,
    Gvk, Gvr, HostApi, HostError, Limits, LogLine, Operation, PatchKind, PluginKind,
    PluginManifest, PluginRuntime, PluginSlot, PluginStats, ResourceRef, RuntimeConfig, UserInfo,
};
use crate::store::EventKind;

pub const PLUGIN_GROUP: &str = "tugboat.dev";
pub const PLUGIN_VERSION: &str = "v1alpha1";
const PLUGIN_PREFIX: &str = "/registry/tugboat.dev/plugins/";

/// The largest component the blob store takes (a Python component carries its interpreter).
pub const MAX_BLOB_BYTES: usize = 256 * 1024 * 1024;

/// The CRD of `Plugin`, installed at start-up.
pub fn plugin_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "plugins.tugboat.dev"},
        "spec": {
            "group": PLUGIN_GROUP,
            "scope": "Cluster",
            "names": {"plural": "plugins", "singular": "plugin", "kind": "Plugin", "listKind": "PluginList", "shortNames": ["plg"], "categories": ["tugboat"]},
            "versions": [{
                "name": PLUGIN_VERSION, "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Kind", "type": "string", "jsonPath": ".spec.kind"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Digest", "type": "string", "jsonPath": ".status.digest", "priority": 1},
                    {"name": "Calls", "type": "integer", "jsonPath": ".status.calls"},
                    {"name": "Errors", "type": "integer", "jsonPath": ".status.errors"},
                    {"name": "Last Error", "type": "string", "jsonPath": ".status.lastError", "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["kind", "source"],
                            "properties": {
                                "kind": {"type": "string", "enum": ["admission", "controller", "scheduler", "network", "storage"]},
                                "source": {"type": "object", "properties": {
                                    "blob": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                                    "oci": {"type": "string"},
                                    "builtin": {"type": "string"},
                                }},
                                "config": {"x-kubernetes-preserve-unknown-fields": true},
                                "permissions": {"type": "array", "items": {"type": "object", "properties": {
                                    "apiGroups": {"type": "array", "items": {"type": "string"}},
                                    "resources": {"type": "array", "items": {"type": "string"}},
                                    "verbs": {"type": "array", "items": {"type": "string"}},
                                }}},
                                "limits": {"type": "object", "properties": {
                                    "memoryBytes": {"type": "integer", "minimum": 1048576},
                                    "timeoutMs": {"type": "integer", "minimum": 1, "maximum": 60000},
                                    "initTimeoutMs": {"type": "integer", "minimum": 1, "maximum": 600000},
                                    "maxCallsPerInstance": {"type": "integer", "minimum": 1},
                                    "maxIdleInstances": {"type": "integer", "minimum": 0},
                                    "degradeAfterFailures": {"type": "integer", "minimum": 1},
                                    "backoffInitialMs": {"type": "integer", "minimum": 1},
                                    "backoffMaxMs": {"type": "integer", "minimum": 1},
                                }},
                                "admission": {"type": "object", "properties": {
                                    "mutating": {"type": "boolean"},
                                    "failurePolicy": {"type": "string", "enum": ["Fail", "Ignore"]},
                                    "rules": {"type": "array", "items": {"type": "object", "properties": {
                                        "operations": {"type": "array", "items": {"type": "string", "enum": ["CREATE", "UPDATE", "DELETE", "*"]}},
                                        "apiGroups": {"type": "array", "items": {"type": "string"}},
                                        "resources": {"type": "array", "items": {"type": "string"}},
                                        "namespaces": {"type": "array", "items": {"type": "string"}},
                                    }}},
                                }},
                            },
                        },
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    })
}

/// One rule of `spec.admission.rules` ("*" or absent matches everything).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Rule {
    operations: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    namespaces: Vec<String>,
}

fn any_or(list: &[String], v: &str) -> bool {
    list.is_empty() || list.iter().any(|x| x == "*" || x == v)
}

impl Rule {
    fn matches(&self, op: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
        any_or(&self.operations, op)
            && any_or(&self.api_groups, group)
            && any_or(&self.resources, resource)
            && (self.namespaces.is_empty()
                || namespace.is_some_and(|ns| any_or(&self.namespaces, ns)))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct AdmissionSpec {
    mutating: bool,
    failure_policy: Option<String>,
    rules: Vec<Rule>,
}

/// A loaded version waiting to be activated.
enum Candidate {
    Admission(AdmissionPlugin),
    Controller(ControllerPlugin),
    Scheduler(SchedulerPlugin),
}

/// An active hook of the chain.
struct Hook {
    name: String,
    /// A built-in plugin (its denials read like the Kubernetes plugin it stands for).
    builtin: bool,
    spec: AdmissionSpec,
    slot: Arc<PluginSlot>,
}

/// Runs controller plugins: implemented by the reconcile engine (`crate::engine`) and
/// registered with [`Admission::set_controller_runner`] at start-up, so that the API layer
/// does not depend on the engine.
#[async_trait::async_trait]
pub trait ControllerRunner: Send + Sync + 'static {
    /// The host API controller `name`'s calls are served by (reads from the engine's
    /// caches, writes through the API server).
    fn host_api(&self, name: &str) -> Arc<dyn HostApi>;

    /// Starts controller `name`, or swaps in a new version of it: reconciles in flight
    /// finish on the old version, queued keys go to the new one. Fails (and keeps the old
    /// version running) when the new version's `init` fails.
    async fn run(&self, name: &str, plugin: Arc<ControllerPlugin>) -> Result<(), String>;

    /// Stops controller `name` (its queue is dropped).
    async fn stop(&self, name: &str);

    /// Controller `name`'s engine metrics for its Plugin's status (queue depth, reconciles,
    /// errors, latency), if it runs.
    async fn metrics(&self, name: &str) -> Option<Value>;
}

/// Runs scheduler plugins: implemented by the scheduler (`crate::scheduler`) and
/// registered with [`Admission::set_scheduler_runner`] at start-up. A scheduler Plugin
/// serves the pods whose `spec.schedulerName` is the Plugin's name.
#[async_trait::async_trait]
pub trait SchedulerRunner: Send + Sync + 'static {
    /// Starts profile `name` with `plugin`, or swaps in a new version: the new version is
    /// started (`init`) and fed the cluster before it decides; a failing start keeps the old
    /// version.
    async fn run(&self, name: &str, plugin: Arc<SchedulerPlugin>) -> Result<(), String>;

    /// Stops profile `name` (its pending pods wait for a scheduler of that name).
    async fn stop(&self, name: &str);

    /// Profile `name`'s metrics for its Plugin's status, if it runs.
    async fn metrics(&self, name: &str) -> Option<Value>;
}

/// What the loop last did with one `Plugin`.
#[derive(Default)]
struct Loaded {
    /// Digest of the component plus its manifest: what decides a reload.
    key: String,
    digest: String,
    /// An admission plugin's slot (hot-swapped in place).
    slot: Option<Arc<PluginSlot>>,
    /// A controller plugin's running version.
    controller: Option<Arc<ControllerPlugin>>,
    /// A scheduler plugin's running version.
    scheduler: Option<Arc<SchedulerPlugin>>,
    /// Why the latest version is not running (if it is not).
    error: Option<String>,
    generation: i64,
}

/// The admission side of the API server.
pub struct Admission {
    runtime: Mutex<Option<Arc<PluginRuntime>>>,
    cache_dir: Option<PathBuf>,
    blob_dir: Option<PathBuf>,
    hooks: RwLock<Arc<Vec<Arc<Hook>>>>,
    loaded: tokio::sync::Mutex<HashMap<String, Loaded>>,
    runner: RwLock<Option<Arc<dyn ControllerRunner>>>,
    scheduler_runner: RwLock<Option<Arc<dyn SchedulerRunner>>>,
}

impl Admission {
    pub fn new(data_dir: Option<&Path>) -> Self {
        Admission {
            runtime: Mutex::new(None),
            // TUG_PLUGIN_CACHE shares compiled components between servers (tests start
            // many); entries are content-addressed and written atomically.
            cache_dir: std::env::var_os("TUG_PLUGIN_CACHE")
                .map(PathBuf::from)
                .or_else(|| data_dir.map(|d| d.join("plugin-cache"))),
            blob_dir: data_dir.map(|d| d.join("blobs").join("sha256")),
            hooks: RwLock::new(Arc::new(vec![])),
            loaded: tokio::sync::Mutex::new(HashMap::new()),
            runner: RwLock::new(None),
            scheduler_runner: RwLock::new(None),
        }
    }

    /// Registers what runs controller plugins (before the plugin loop starts).
    pub fn set_controller_runner(&self, runner: Arc<dyn ControllerRunner>) {
        *self.runner.write() = Some(runner);
    }

    fn runner(&self) -> Option<Arc<dyn ControllerRunner>> {
        self.runner.read().clone()
    }

    /// Registers what runs scheduler plugins (before the plugin loop starts).
    pub fn set_scheduler_runner(&self, runner: Arc<dyn SchedulerRunner>) {
        *self.scheduler_runner.write() = Some(runner);
    }

    fn scheduler_runner(&self) -> Option<Arc<dyn SchedulerRunner>> {
        self.scheduler_runner.read().clone()
    }

    /// The recent log lines of the running plugin `name` (`None` if none runs).
    pub async fn plugin_logs(&self, name: &str) -> Option<Vec<LogLine>> {
        let loaded = self.loaded.lock().await;
        let l = loaded.get(name)?;
        if let Some(c) = &l.controller {
            return Some(c.logs());
        }
        if let Some(s) = &l.scheduler {
            return Some(s.logs());
        }
        l.slot.as_ref()?.current().map(|p| p.logs())
    }

    /// The wasmtime engine, created on first use (a server without plugins pays nothing).
    fn runtime(&self) -> Result<Arc<PluginRuntime>, String> {
        let mut rt = self.runtime.lock();
        if let Some(r) = rt.as_ref() {
            return Ok(r.clone());
        }
        let cfg = RuntimeConfig {
            cache_dir: self.cache_dir.clone(),
            ..Default::default()
        };
        let r =
            PluginRuntime::new(cfg).map_err(|e| format!("starting the plugin runtime: {e:#}"))?;
        *rt = Some(r.clone());
        Ok(r)
    }

    /// Store a component; returns its digest (`sha256:<hex>`).
    pub fn put_blob(&self, bytes: &[u8]) -> ApiResult<String> {
        let dir = self
            .blob_dir
            .as_ref()
            .ok_or_else(|| ApiError::internal("this server has no blob store"))?;
        let hex = hex::encode(Sha256::digest(bytes));
        let path = dir.join(&hex);
        if !path.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ApiError::internal(format!("creating the blob store: {e}")))?;
            let tmp = dir.join(format!(".{hex}.{}", uuid::Uuid::new_v4()));
            std::fs::write(&tmp, bytes)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    ApiError::internal(format!("writing blob {hex}: {e}"))
                })?;
        }
        Ok(format!("sha256:{hex}"))
    }

    /// Read a component by digest, checking it.
    fn get_blob(&self, digest: &str) -> Result<Vec<u8>, String> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                format!("blob digest {digest:?} is not of the form sha256:<64 hex digits>")
            })?;
        let dir = self
            .blob_dir
            .as_ref()
            .ok_or("this server has no blob store")?;
        let bytes = std::fs::read(dir.join(hex)).map_err(|e| {
            format!("blob {digest} is not in the server's blob store ({e}); upload it with `kubectl replace --raw /tugboat/v1/blobs -f FILE.wasm`")
        })?;
        if hex::encode(Sha256::digest(&bytes)) != hex {
            return Err(format!(
                "blob {digest} is corrupt: its content does not match its digest"
            ));
        }
        Ok(bytes)
    }

    fn hooks(&self) -> Arc<Vec<Arc<Hook>>> {
        self.hooks.read().clone()
    }
}

/// What one write is, for the chain.
pub struct Attributes<'a> {
    pub operation: Operation,
    pub target: &'a Target,
    pub name: &'a str,
    pub old: Option<&'a Value>,
    pub dry_run: bool,
}

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

impl Api {
    /// Run the admission chain over a write: mutating hooks in order (their patches applied
    /// to `obj`), then validating hooks. Returns the hooks' warnings.
    pub async fn admit(
        &self,
        attrs: Attributes<'_>,
        obj: &mut Option<Value>,
    ) -> ApiResult<Vec<String>> {
        let hooks = self.admission.hooks();
        if hooks.is_empty() {
            return Ok(vec![]);
        }
        let t = attrs.target;
        let rt = &t.rt;
        // Plugins never judge the Plugin resource itself (no lock-out).
        if rt.group == PLUGIN_GROUP {
            return Ok(vec![]);
        }
        let op = op_name(attrs.operation);
        let resource = match &t.subresource {
            Some(s) => format!("{}/{s}", rt.plural),
            None => rt.plural.clone(),
        };
        let mut warnings = vec![];
        for pass_mutating in [true, false] {
            for hook in hooks.iter().filter(|h| h.spec.mutating == pass_mutating) {
                if !hook.spec.rules.is_empty()
                    && !hook
                        .spec
                        .rules
                        .iter()
                        .any(|r| r.matches(op, &rt.group, &resource, t.namespace.as_deref()))
                {
                    continue;
                }
                let req = AdmissionRequest {
                    uid: uuid::Uuid::new_v4().to_string(),
                    operation: attrs.operation,
                    kind: Gvk {
                        group: rt.group.clone(),
                        version: rt.version.clone(),
                        kind: rt.kind.clone(),
                    },
                    resource: Gvr {
                        group: rt.group.clone(),
                        version: rt.version.clone(),
                        resource: rt.plural.clone(),
                    },
                    sub_resource: t.subresource.clone(),
                    namespace: t.namespace.clone(),
                    name: attrs.name.to_string(),
                    object: obj.clone(),
                    old_object: attrs.old.cloned(),
                    user: UserInfo {
                        username: "admin".into(),
                        uid: String::new(),
                        groups: vec!["system:masters".into(), "system:authenticated".into()],
                    },
                    dry_run: attrs.dry_run,
                };
                let ignore = hook.spec.failure_policy.as_deref() == Some("Ignore");
                match hook.slot.admit(&req).await {
                    Ok(resp) => {
                        warnings.extend(resp.warnings.iter().cloned());
                        if !resp.allowed {
                            let msg = resp.message.clone().unwrap_or_else(|| "denied".into());
                            let code = resp.status_code();
                            let reason: &'static str = match code {
                                400 => "BadRequest",
                                404 => "NotFound",
                                409 => "Conflict",
                                422 => "Invalid",
                                429 => "TooManyRequests",
                                _ if code >= 500 => "InternalError",
                                _ => "Forbidden",
                            };
                            let message = if !hook.builtin {
                                format!(
                                    "admission plugin \"{}\" denied the request: {msg}",
                                    hook.name
                                )
                            } else if code == 403 {
                                // As Kubernetes' in-tree plugins word it (NewForbidden).
                                format!("{resource} \"{}\" is forbidden: {msg}", attrs.name)
                            } else {
                                msg.clone()
                            };
                            return Err(ApiError::new(code, reason, message)
                            .with_details(json!({"name": attrs.name, "group": rt.group, "kind": rt.plural,
                                "causes": [{"reason": resp.reason.clone().unwrap_or_else(|| reason.to_string()), "message": msg}]})));
                        }
                        if let (Some(patch), Some(o)) = (&resp.patch, obj.as_mut()) {
                            if !pass_mutating {
                                return Err(ApiError::internal(format!(
                                    "admission plugin \"{}\" is validating but returned a patch",
                                    hook.name
                                )));
                            }
                            let mut patched = o.clone();
                            json_patch::patch(&mut patched, patch).map_err(|e| {
                                ApiError::internal(format!("admission plugin \"{}\" returned a patch that does not apply: {e}", hook.name))
                            })?;
                            *o = patched;
                        }
                    }
                    Err(e) if ignore => {
                        tracing::warn!(plugin = %hook.name, error = %e, "admission plugin failed; failurePolicy Ignore");
                        warnings.push(format!(
                            "admission plugin \"{}\" failed and was ignored: {e}",
                            hook.name
                        ));
                    }
                    Err(e) => {
                        return Err(ApiError::internal(format!(
                            "failed calling admission plugin \"{}\": {e}",
                            hook.name
                        )));
                    }
                }
            }
        }
        Ok(warnings)
    }

    /// Install the `Plugin` CRD if it is missing.
    pub async fn ensure_plugin_crd(&self) -> anyhow::Result<()> {
        let key = "/registry/apiextensions.k8s.io/customresourcedefinitions/plugins.tugboat.dev";
        if self.store.get(key).await?.is_some() {
            return Ok(());
        }
        let Some(rt) = self.registry.snapshot().lookup(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
        ) else {
            anyhow::bail!("CRDs are not served");
        };
        let t = Target {
            rt,
            namespace: None,
            name: None,
            subresource: None,
        };
        let q = Query {
            field_manager: Some("tugboat".into()),
            ..Default::default()
        };
        match self
            .create(&t, plugin_crd(), &q, &axum::http::HeaderMap::new())
            .await
        {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => anyhow::bail!("installing the Plugin CRD: {e}"),
        }
        self.reload_crds().await
    }

    /// Run the plugin loop until the process ends.
    pub fn spawn_plugin_loop(self: &Arc<Self>) {
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = api.plugin_loop().await {
                    tracing::warn!(error = %e, "plugin loop stopped; restarting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn plugin_loop(self: &Arc<Self>) -> anyhow::Result<()> {
        let page = self.store.list(PLUGIN_PREFIX, None, 0).await?;
        let mut seen = vec![];
        for kv in &page.items {
            let p = decode_stored(kv)?;
            seen.push(meta_str(&p, "name").to_string());
            self.reconcile_plugin(&p).await;
        }
        // Unload what is no longer there.
        let gone: Vec<String> = self
            .admission
            .loaded
            .lock()
            .await
            .keys()
            .filter(|k| !seen.contains(k))
            .cloned()
            .collect();
        for name in gone {
            self.unload_plugin(&name).await;
        }
        let mut w = self.store.watch(PLUGIN_PREFIX, page.revision)?;
        let mut status_tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                ev = w.next() => {
                    let Some(ev) = ev else { return Ok(()) };
                    let ev = ev?;
                    let p = decode_at(&ev.value, ev.revision)?;
                    if ev.kind == EventKind::Delete {
                        let name = meta_str(&p, "name").to_string();
                        self.unload_plugin(&name).await;
                        // Deleting a built-in's Plugin (or the Plugin that replaced it)
                        // restores the built-in.
                        if crate::builtin::component(&name).is_some()
                            && let Err(e) = self.ensure_builtin_plugin(&name).await
                        {
                            tracing::warn!(plugin = %name, error = %e, "restoring the built-in plugin");
                        }
                    } else {
                        self.reconcile_plugin(&p).await;
                    }
                }
                _ = status_tick.tick() => self.sync_plugin_statuses().await,
            }
        }
    }

    async fn unload_plugin(&self, name: &str) {
        let removed = self.admission.loaded.lock().await.remove(name);
        self.set_hooks_without(name, None);
        let Some(removed) = removed else { return };
        if let Some(slot) = removed.slot {
            slot.unload();
            tracing::info!(plugin = %name, "plugin unloaded");
        }
        if removed.controller.is_some()
            && let Some(runner) = self.admission.runner()
        {
            runner.stop(name).await;
            tracing::info!(plugin = %name, "controller plugin stopped");
        }
        if removed.scheduler.is_some()
            && let Some(runner) = self.admission.scheduler_runner()
        {
            runner.stop(name).await;
            tracing::info!(plugin = %name, "scheduler plugin stopped");
        }
    }

    /// Replace (or remove, with `None`) the hook named `name` in the chain.
    fn set_hooks_without(&self, name: &str, add: Option<Arc<Hook>>) {
        let mut hooks = self.admission.hooks.write();
        let mut v: Vec<Arc<Hook>> = hooks.iter().filter(|h| h.name != name).cloned().collect();
        if let Some(h) = add {
            v.push(h);
        }
        v.sort_by(|a, b| a.name.cmp(&b.name));
        *hooks = Arc::new(v);
    }

    /// Bring one `Plugin` to its declared state.
    async fn reconcile_plugin(self: &Arc<Self>, p: &Value) {
        let name = meta_str(p, "name").to_string();
        let generation = p
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        // Status writes (ours, every few seconds) do not change the generation: a running
        // version has nothing to load again (a failed one is retried).
        if generation > 0
            && self
                .admission
                .loaded
                .lock()
                .await
                .get(&name)
                .is_some_and(|l| l.generation == generation && l.error.is_none())
        {
            return;
        }
        let spec = p.get("spec").cloned().unwrap_or(Value::Null);
        if spec.get("kind").and_then(Value::as_str) == Some("network") {
            // Network plugins run in the node agents (`network::pod`), not here; one that
            // was another kind before stops.
            self.unload_plugin(&name).await;
            return;
        }
        let adm: AdmissionSpec =
            serde_json::from_value(spec.get("admission").cloned().unwrap_or(json!({})))
                .unwrap_or_default();
        let builtin = spec
            .pointer("/source/builtin")
            .is_some_and(Value::is_string);
        let outcome = self.load_plugin(&name, &spec).await;
        let mut loaded = self.admission.loaded.lock().await;
        let entry = loaded.entry(name.clone()).or_default();
        entry.generation = generation;
        match outcome {
            Ok(None) => {
                // Same component and manifest: only the rules may have changed.
                if let Some(slot) = entry.slot.clone() {
                    self.set_hooks_without(
                        &name,
                        Some(Arc::new(Hook {
                            name: name.clone(),
                            builtin,
                            spec: adm,
                            slot,
                        })),
                    );
                }
            }
            Ok(Some((key, digest, Candidate::Admission(plugin)))) => {
                // A plugin that changed kind stops being a controller or a scheduler.
                self.stop_other_kinds(&name, entry, PluginKind::Admission)
                    .await;
                let slot = entry
                    .slot
                    .clone()
                    .unwrap_or_else(|| Arc::new(PluginSlot::new(&name)));
                match slot.swap(plugin).await {
                    Ok(_) => {
                        entry.key = key;
                        entry.digest = digest;
                        entry.error = None;
                        entry.slot = Some(slot.clone());
                        self.set_hooks_without(
                            &name,
                            Some(Arc::new(Hook {
                                name: name.clone(),
                                builtin,
                                spec: adm,
                                slot,
                            })),
                        );
                    }
                    Err(e) => {
                        entry.key = key;
                        entry.error = Some(format!(
                            "version {digest} was not activated: its first call failed: {e}"
                        ));
                    }
                }
            }
            Ok(Some((key, digest, Candidate::Controller(plugin)))) => {
                self.stop_other_kinds(&name, entry, PluginKind::Controller)
                    .await;
                let plugin = Arc::new(plugin);
                let outcome = match self.admission.runner() {
                    Some(runner) => runner.run(&name, plugin.clone()).await,
                    None => Err("this server runs no controller engine".to_string()),
                };
                entry.key = key;
                match outcome {
                    Ok(()) => {
                        entry.digest = digest;
                        entry.error = None;
                        entry.controller = Some(plugin);
                    }
                    Err(e) => {
                        tracing::warn!(plugin = %name, %digest, error = %e, "controller plugin version not activated");
                        entry.error = Some(format!("version {digest} was not activated: {e}"));
                    }
                }
            }
            Ok(Some((key, digest, Candidate::Scheduler(plugin)))) => {
                self.stop_other_kinds(&name, entry, PluginKind::Scheduler)
                    .await;
                let plugin = Arc::new(plugin);
                let outcome = match self.admission.scheduler_runner() {
                    Some(runner) => runner.run(&name, plugin.clone()).await,
                    None => Err("this server runs no scheduler".to_string()),
                };
                entry.key = key;
                match outcome {
                    Ok(()) => {
                        entry.digest = digest;
                        entry.error = None;
                        entry.scheduler = Some(plugin);
                    }
                    Err(e) => {
                        tracing::warn!(plugin = %name, %digest, error = %e, "scheduler plugin version not activated");
                        entry.error = Some(format!("version {digest} was not activated: {e}"));
                    }
                }
            }
            Err(e) => {
                entry.error = Some(e);
            }
        }
        drop(loaded);
        self.sync_plugin_statuses().await;
    }

    /// A Plugin that changed kind stops running as the kinds it no longer is.
    async fn stop_other_kinds(&self, name: &str, entry: &mut Loaded, now: PluginKind) {
        if now != PluginKind::Admission
            && let Some(slot) = entry.slot.take()
        {
            slot.unload();
            self.set_hooks_without(name, None);
        }
        if now != PluginKind::Controller
            && entry.controller.take().is_some()
            && let Some(runner) = self.admission.runner()
        {
            runner.stop(name).await;
        }
        if now != PluginKind::Scheduler
            && entry.scheduler.take().is_some()
            && let Some(runner) = self.admission.scheduler_runner()
        {
            runner.stop(name).await;
        }
    }

    /// Fetch and compile the component a spec names. `Ok(None)` when it is what already runs.
    async fn load_plugin(
        self: &Arc<Self>,
        name: &str,
        spec: &Value,
    ) -> Result<Option<(String, String, Candidate)>, String> {
        let kind = match spec.get("kind").and_then(Value::as_str).unwrap_or("") {
            "admission" => PluginKind::Admission,
            "controller" => PluginKind::Controller,
            "scheduler" => PluginKind::Scheduler,
            other => {
                return Err(format!(
                    "plugins of kind {other:?} cannot be loaded yet: \"admission\", \"controller\" and \"scheduler\" plugins run in this version"
                ));
            }
        };
        let source = spec.get("source").cloned().unwrap_or(Value::Null);
        let bytes = if let Some(d) = source.get("blob").and_then(Value::as_str) {
            self.admission.get_blob(d)?
        } else if let Some(r) = source.get("oci").and_then(Value::as_str) {
            // Pinned by digest (the pull refuses tags), verified, size-capped.
            let (bytes, _digest) = crate::plugin::oci::pull(r, &Default::default())
                .await
                .map_err(|e| format!("pulling {r}: {e:#}"))?;
            bytes
        } else if let Some(b) = source.get("builtin").and_then(Value::as_str) {
            crate::builtin::component(b)
                .ok_or_else(|| {
                    format!(
                        "there is no built-in plugin called {b:?} (built-ins: {})",
                        crate::builtin::names().collect::<Vec<_>>().join(", ")
                    )
                })?
                .to_vec()
        } else {
            return Err(
                "spec.source names no component: set source.blob (sha256:…), source.oci or source.builtin"
                    .into(),
            );
        };
        let limits: Limits = match spec.get("limits") {
            Some(l) => {
                serde_json::from_value(l.clone()).map_err(|e| format!("spec.limits: {e}"))?
            }
            None => Limits::default(),
        };
        let capabilities: Vec<Capability> = match spec.get("permissions") {
            Some(p) => {
                serde_json::from_value(p.clone()).map_err(|e| format!("spec.permissions: {e}"))?
            }
            None => vec![],
        };
        let manifest = PluginManifest {
            kind,
            limits,
            capabilities,
            config: spec.get("config").cloned().unwrap_or(Value::Null),
        };
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let key = format!(
            "{digest}/{}",
            serde_json::to_string(&manifest).unwrap_or_default()
        );
        {
            let loaded = self.admission.loaded.lock().await;
            if loaded.get(name).is_some_and(|l| l.key == key) {
                return Ok(None);
            }
        }
        let runtime = self.admission.runtime()?;
        let loaded = runtime
            .load_async(name, Arc::from(bytes), manifest)
            .await
            .map_err(|e| format!("version {digest} was not activated: {e}"))?;
        Ok(Some((key, digest, self.candidate(name, kind, loaded)?)))
    }

    fn candidate(
        self: &Arc<Self>,
        name: &str,
        kind: PluginKind,
        loaded: crate::plugin::LoadedPlugin,
    ) -> Result<Candidate, String> {
        Ok(match kind {
            PluginKind::Controller => {
                let runner = self
                    .admission
                    .runner()
                    .ok_or("this server runs no controller engine")?;
                Candidate::Controller(ControllerPlugin::new(loaded, runner.host_api(name)))
            }
            PluginKind::Scheduler => {
                if self.admission.scheduler_runner().is_none() {
                    return Err("this server runs no scheduler".into());
                }
                let host: Arc<dyn HostApi> = Arc::new(ApiHost::new(self));
                Candidate::Scheduler(SchedulerPlugin::new(loaded, host))
            }
            _ => {
                let host: Arc<dyn HostApi> = Arc::new(ApiHost::new(self));
                Candidate::Admission(AdmissionPlugin::new(loaded, host))
            }
        })
    }

    /// Creates the `Plugin` object of every built-in plugin that has none (a Plugin of the
    /// same name replaces a built-in).
    pub async fn ensure_builtin_plugins(&self) -> anyhow::Result<()> {
        for name in crate::builtin::names() {
            self.ensure_builtin_plugin(name).await?;
        }
        Ok(())
    }

    async fn ensure_builtin_plugin(&self, name: &str) -> anyhow::Result<()> {
        let Some(rt) = self
            .registry
            .snapshot()
            .lookup(PLUGIN_GROUP, PLUGIN_VERSION, "plugins")
        else {
            anyhow::bail!("the Plugin resource is not served");
        };
        if self
            .store
            .get(&format!("{PLUGIN_PREFIX}{name}"))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let object = crate::builtin::plugin_object(name).map_err(anyhow::Error::msg)?;
        let t = Target {
            rt,
            namespace: None,
            name: None,
            subresource: None,
        };
        let q = Query {
            field_manager: Some("tugboat".into()),
            ..Default::default()
        };
        match self
            .create(&t, object, &q, &axum::http::HeaderMap::new())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "AlreadyExists" => Ok(()),
            Err(e) => anyhow::bail!("creating the built-in plugin {name}: {e}"),
        }
    }

    /// Write each Plugin's status (phase, digest, counters, last error) where it changed.
    async fn sync_plugin_statuses(&self) {
        let Some(rt) = self
            .registry
            .snapshot()
            .lookup(PLUGIN_GROUP, PLUGIN_VERSION, "plugins")
        else {
            return;
        };
        let snapshot: Vec<(String, Value)> = {
            let loaded = self.admission.loaded.lock().await;
            loaded
                .iter()
                .map(|(name, l)| {
                    let stats: Option<PluginStats> = match (&l.controller, &l.scheduler) {
                        (Some(c), _) => Some(c.stats()),
                        (None, Some(s)) => Some(s.stats()),
                        (None, None) => {
                            l.slot.as_ref().and_then(|s| s.current()).map(|c| c.stats())
                        }
                    };
                    let current = stats.as_ref().map(|_| ());
                    let phase = match (&current, &stats, &l.error) {
                        (None, _, Some(_)) => "Failed",
                        (None, _, None) => "Pending",
                        (Some(_), Some(s), _)
                            if s.state == crate::plugin::HealthState::Degraded =>
                        {
                            "Degraded"
                        }
                        _ => "Ready",
                    };
                    let mut st = json!({"phase": phase, "observedGeneration": l.generation});
                    if current.is_some() {
                        st["digest"] = json!(l.digest);
                    }
                    if let Some(s) = &stats {
                        st["calls"] = json!(s.calls);
                        st["errors"] = json!(s.errors);
                        st["capabilityViolations"] = json!(s.capability_violations);
                        if let Some(e) = &s.last_error {
                            st["lastError"] = json!(e);
                        }
                    }
                    if let Some(e) = &l.error {
                        st["message"] = json!(e);
                        if current.is_none() {
                            st["lastError"] = json!(e);
                        }
                    }
                    (name.clone(), st)
                })
                .collect()
        };
        let runner = self.admission.runner();
        let scheduler = self.admission.scheduler_runner();
        for (name, mut status) in snapshot {
            if let Some(runner) = &runner
                && let Some(m) = runner.metrics(&name).await
            {
                status["controller"] = m;
            }
            if let Some(runner) = &scheduler
                && let Some(m) = runner.metrics(&name).await
            {
                status["scheduler"] = m;
            }
            let t = Target {
                rt: rt.clone(),
                namespace: None,
                name: Some(name.clone()),
                subresource: Some("status".into()),
            };
            let Ok(mut obj) = self.get_object(&t).await else {
                continue;
            };
            if obj.get("status") == Some(&status) {
                continue;
            }
            obj["status"] = status;
            super::object::remove_meta(&mut obj, "resourceVersion");
            let q = Query {
                field_manager: Some("tugboat-plugins".into()),
                ..Default::default()
            };
            if let Err(e) = self
                .update(&t, obj, &q, &axum::http::HeaderMap::new())
                .await
                && e.code != 409
                && e.code != 404
            {
                tracing::warn!(plugin = %name, error = %e, "writing plugin status");
            }
        }
    }
}

/// The host API plugins call, served by the API server through its in-process client
/// ([`LocalClient`]: the same write path as any client, so admission, validation and
/// optimistic concurrency apply to plugins too; writes are recorded under the field manager
/// `plugin:<name>`).
pub struct ApiHost {
    api: Weak<Api>,
}

impl ApiHost {
    /// A host API over `api` (held weakly: it fails with 503 once the server is gone).
    pub fn new(api: &Arc<Api>) -> Self {
        ApiHost {
            api: Arc::downgrade(api),
        }
    }

    fn api(&self) -> Result<Arc<Api>, HostError> {
        self.api.upgrade().ok_or_else(|| {
            HostError::new(503, "ServiceUnavailable", "the API server is shutting down")
        })
    }

    /// The in-process client acting for `plugin`.
    fn client(&self, plugin: &str) -> Result<LocalClient, HostError> {
        Ok(LocalClient::new(self.api()?, format!("plugin:{plugin}")))
    }
}

/// How a host call names a resource to the client: `group/version` and the plural.
fn client_resource(r: &ResourceRef) -> ApiResource {
    let api_version = if r.group.is_empty() {
        r.version.clone()
    } else {
        format!("{}/{}", r.group, r.version)
    };
    ApiResource::new(api_version, r.resource.clone())
}

fn host_err(e: ClientError) -> HostError {
    match e {
        ClientError::Gone(message) => HostError::new(410, "Expired", message),
        ClientError::Api {
            code,
            reason,
            message,
        } => HostError::new(code, &reason, message),
    }
}

#[async_trait::async_trait]
impl HostApi for ApiHost {
    fn resolve(&self, api_version: &str, kind_or_resource: &str) -> Result<ResourceRef, HostError> {
        let api = self.api()?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let catalog = api.registry.snapshot();
        let rt = catalog
            .lookup(group, version, kind_or_resource)
            .or_else(|| catalog.by_kind(group, version, kind_or_resource))
            .ok_or_else(|| {
                HostError::new(
                    404,
                    "NotFound",
                    format!("no resource {kind_or_resource:?} in {api_version}"),
                )
            })?;
        Ok(ResourceRef {
            group: rt.group.clone(),
            version: rt.version.clone(),
            resource: rt.plural.clone(),
        })
    }

    async fn get(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError> {
        self.client(plugin)?
            .get(&client_resource(r), namespace, name)
            .await
            .map_err(host_err)
    }

    async fn list(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        let params = ListParams {
            label_selector: label_selector.map(str::to_string),
            ..Default::default()
        };
        self.client(plugin)?
            .list(&client_resource(r), namespace, &params)
            .await
            .map(|l| l.items)
            .map_err(host_err)
    }

    async fn create(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError> {
        self.client(plugin)?
            .create(&client_resource(r), namespace, object)
            .await
            .map_err(host_err)
    }

    async fn update(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError> {
        self.client(plugin)?
            .update(&client_resource(r), namespace, object)
            .await
            .map_err(host_err)
    }

    async fn delete(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError> {
        self.delete_with(plugin, r, namespace, name, &DeleteOpts::default())
            .await
    }

    fn api_resources(&self) -> Vec<ApiResourceInfo> {
        let Ok(api) = self.api() else {
            return vec![];
        };
        api.registry
            .snapshot()
            .all()
            .map(|rt| ApiResourceInfo {
                api_version: rt.api_version(),
                kind: rt.kind.clone(),
                resource: rt.plural.clone(),
                namespaced: rt.namespaced,
            })
            .collect()
    }

    async fn patch(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: Value,
        subresource: Option<&str>,
    ) -> Result<Value, HostError> {
        let patch = match kind {
            PatchKind::Json => Patch::Json(patch),
            PatchKind::Merge => Patch::Merge(patch),
            PatchKind::Strategic => Patch::Strategic(patch),
            PatchKind::Apply => Patch::Apply(patch),
        };
        let params = PatchParams {
            subresource: subresource.map(str::to_string),
            force: kind == PatchKind::Apply,
            field_manager: None,
        };
        self.client(plugin)?
            .patch(&client_resource(r), namespace, name, &patch, &params)
            .await
            .map_err(host_err)
    }

    async fn update_status(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, HostError> {
        self.client(plugin)?
            .update_status(&client_resource(r), namespace, object)
            .await
            .map_err(host_err)
    }

    async fn delete_with(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOpts,
    ) -> Result<(), HostError> {
        let params = DeleteParams {
            propagation_policy: options.propagation.map(|p| match p {
                "Foreground" => PropagationPolicy::Foreground,
                "Orphan" => PropagationPolicy::Orphan,
                _ => PropagationPolicy::Background,
            }),
            preconditions: (options.uid.is_some() || options.resource_version.is_some()).then(
                || Preconditions {
                    uid: options.uid.clone(),
                    resource_version: options.resource_version.clone(),
                },
            ),
            grace_period_seconds: options.grace_period_seconds,
        };
        self.client(plugin)?
            .delete(&client_resource(r), namespace, name, &params)
            .await
            .map(|_| ())
            .map_err(host_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_like_webhook_rules() {
        let r = Rule {
            operations: vec!["CREATE".into()],
            api_groups: vec!["".into()],
            resources: vec!["pods".into()],
            namespaces: vec![],
        };
        assert!(r.matches("CREATE", "", "pods", Some("default")));
        assert!(!r.matches("UPDATE", "", "pods", Some("default")));
        assert!(!r.matches("CREATE", "apps", "deployments", Some("default")));
        let any = Rule::default();
        assert!(any.matches("DELETE", "apps", "deployments", None));
        let ns = Rule {
            namespaces: vec!["team-a".into()],
            ..Default::default()
        };
        assert!(ns.matches("CREATE", "", "pods", Some("team-a")));
        assert!(!ns.matches("CREATE", "", "pods", Some("team-b")));
        assert!(!ns.matches("CREATE", "", "nodes", None));
    }

    #[test]
    fn blobs_are_content_addressed_and_checked() {
        let d = tempfile::tempdir().unwrap();
        let a = Admission::new(Some(d.path()));
        let digest = a.put_blob(b"component").unwrap();
        assert_eq!(
            digest,
            format!("sha256:{}", hex::encode(Sha256::digest(b"component")))
        );
        assert_eq!(a.get_blob(&digest).unwrap(), b"component");
        assert!(a.get_blob("sha256:nothex").is_err());
        let missing = format!("sha256:{}", "0".repeat(64));
        assert!(
            a.get_blob(&missing)
                .unwrap_err()
                .contains("/tugboat/v1/blobs")
        );
        // Tampered content is refused.
        std::fs::write(
            d.path()
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
            b"evil",
        )
        .unwrap();
        assert!(a.get_blob(&digest).unwrap_err().contains("corrupt"));
    }
}
