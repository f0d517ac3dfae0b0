//! Admission hooks: calling a plugin's `admit` under its limits, with fault containment,
//! instance reuse and health accounting.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bindings::Admission;
use super::bindings::exports::tugboat::plugin::admission_plugin as wit;
use super::bindings::tugboat::plugin::types as wit_types;
use super::error::PluginError;
use super::health::PluginStats;
use super::host_api::HostApi;
use super::logs::{LogLine, truncate};
use super::manifest::PluginManifest;
use super::runtime::LoadedPlugin;
use super::sandbox::{Instance, MAX_MESSAGE_BYTES, Sandbox, begin_call};

/// Bounds on what a plugin may answer (longer text is truncated).
const MAX_WARNINGS: usize = 32;
const MAX_PATCH_BYTES: usize = 3 << 20;

/// The operation of an admission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// Group/version/kind (core group `""`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// Group/version/resource (`resource` is the plural, e.g. `pods`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Gvr {
    pub group: String,
    pub version: String,
    pub resource: String,
}

/// The requesting user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// A write to judge (what the API server hands to each matching hook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub operation: Operation,
    pub kind: Gvk,
    pub resource: Gvr,
    pub sub_resource: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    /// The object to be stored (after earlier mutating hooks); `None` on delete.
    pub object: Option<Value>,
    /// The stored object; `None` on create.
    pub old_object: Option<Value>,
    pub user: UserInfo,
    pub dry_run: bool,
}

/// A plugin's verdict, validated: `patch` is a well-formed RFC 6902 patch (only ever set
/// when `allowed`), `code` (if set) is a 4xx/5xx status, texts are bounded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdmissionResponse {
    pub allowed: bool,
    /// For a denial: the HTTP status the plugin asked for (403 when `None`).
    pub code: Option<u16>,
    /// For a denial: the reason the plugin gave (`Forbidden` when `None`).
    pub reason: Option<String>,
    pub message: Option<String>,
    pub patch: Option<json_patch::Patch>,
    pub warnings: Vec<String>,
}

impl AdmissionResponse {
    /// The HTTP status of a denial (the plugin's, or 403).
    pub fn status_code(&self) -> u16 {
        self.code.unwrap_or(403)
    }
}

/// A loaded admission plugin version: call [`AdmissionPlugin::admit`] concurrently from
/// async code (inside a tokio runtime). Each call runs on a warm instance from a small
/// pool (or a fresh one), on the calling task: the guest runs on a fiber and yields to the
/// executor at every epoch tick (1 ms), so it never blocks a worker thread for longer, and
/// it is stopped at its deadline.
pub struct AdmissionPlugin {
    sb: Sandbox<Admission>,
}

impl std::fmt::Debug for AdmissionPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionPlugin")
            .field("name", &self.sb.name)
            .field("digest", &self.sb.digest)
            .finish_non_exhaustive()
    }
}

impl AdmissionPlugin {
    /// Wraps a loaded component; no instance is created yet (see
    /// [`AdmissionPlugin::probe`]). Host API calls are capability-checked and then served
    /// by `api`.
    pub fn new(loaded: LoadedPlugin, api: Arc<dyn HostApi>) -> Self {
        AdmissionPlugin {
            sb: Sandbox::new(loaded, api),
        }
    }

    pub fn name(&self) -> &str {
        &self.sb.name
    }

    /// Hex sha256 of the component.
    pub fn digest(&self) -> &str {
        &self.sb.digest
    }

    pub fn manifest(&self) -> &PluginManifest {
        &self.sb.manifest
    }

    pub fn stats(&self) -> PluginStats {
        self.sb.health.stats()
    }

    /// The plugin's recent log lines (stdout, stderr, `host.log`, runtime events).
    pub fn logs(&self) -> Vec<LogLine> {
        self.sb.logs.snapshot()
    }

    /// Creates an instance and runs `init(config)` on it, keeping it warm for the next
    /// call. Fails if the component cannot be instantiated or `init` fails. This is the
    /// first-call check before a version is activated.
    pub async fn probe(&self) -> Result<(), PluginError> {
        let instance = self.instantiate().await?;
        self.sb.release(instance);
        Ok(())
    }

    /// Judges one request. Fails fast with [`PluginError::Degraded`] while the plugin is
    /// backing off; every other error is this call's failure (the host applies the hook's
    /// failure policy). Never panics and never blocks past the deadline (plus one epoch).
    pub async fn admit(
        &self,
        request: &AdmissionRequest,
    ) -> Result<AdmissionResponse, PluginError> {
        let permit = self.sb.health.begin()?;
        let result = self.call_admit(request).await;
        self.sb.record(permit, "call", &result);
        result
    }

    async fn call_admit(
        &self,
        request: &AdmissionRequest,
    ) -> Result<AdmissionResponse, PluginError> {
        let mut instance = match self.sb.take_idle() {
            Some(i) => i,
            None => self.instantiate().await?,
        };
        let wit_request = to_wit(request);
        let timeout = self.sb.manifest.limits.timeout();
        begin_call(&mut instance.store, timeout);
        let result = instance
            .bindings
            .tugboat_plugin_admission_plugin()
            .call_admit(&mut instance.store, &wit_request)
            .await;
        let stderr = self.sb.drain_stdio(&instance.store);
        instance.calls += 1;
        match result {
            Ok(response) => {
                let response = self.validate(response)?;
                self.sb.release(instance);
                Ok(response)
            }
            Err(e) => Err(self.sb.classify(e, &instance.store, &stderr, timeout)),
        }
    }

    /// A fresh instance with `init(config)` done.
    async fn instantiate(&self) -> Result<Instance<Admission>, PluginError> {
        let mut store = self.sb.new_store();
        let timeout = self.sb.manifest.limits.init_timeout();
        begin_call(&mut store, timeout);
        self.sb.health.count_instance();
        let pre = self.sb.loaded.admission_pre()?;
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(self.sb.instantiation_failed(e, &store, timeout)),
        };
        let result = bindings
            .tugboat_plugin_admission_plugin()
            .call_init(&mut store, &self.sb.config_json)
            .await;
        let stderr = self.sb.drain_stdio(&store);
        match result {
            Ok(Ok(())) => Ok(Instance {
                store,
                bindings,
                calls: 0,
            }),
            Ok(Err(message)) => Err(PluginError::Init {
                plugin: self.sb.name.clone(),
                message: truncate(&message, MAX_MESSAGE_BYTES).to_string(),
            }),
            Err(e) => Err(self.sb.classify(e, &store, &stderr, timeout)),
        }
    }

    fn validate(&self, r: wit::AdmissionResponse) -> Result<AdmissionResponse, PluginError> {
        let invalid = |message: String| PluginError::InvalidResponse {
            plugin: self.sb.name.clone(),
            message,
        };
        if let Some(code) = r.code
            && !(400..=599).contains(&code)
        {
            return Err(invalid(format!(
                "status code {code} is not a 4xx or 5xx error status"
            )));
        }
        let patch = match (&r.patch, r.allowed) {
            (Some(text), true) => {
                if text.len() > MAX_PATCH_BYTES {
                    return Err(invalid("the patch is larger than 3 MiB".to_string()));
                }
                let patch: json_patch::Patch = serde_json::from_str(text).map_err(|e| {
                    invalid(format!(
                        "the patch is not an RFC 6902 JSON Patch ({e}): {}",
                        truncate(text, 200)
                    ))
                })?;
                Some(patch)
            }
            _ => None,
        };
        let bounded = |s: Option<String>| s.map(|s| truncate(&s, MAX_MESSAGE_BYTES).to_string());
        Ok(AdmissionResponse {
            allowed: r.allowed,
            code: r.code,
            reason: bounded(r.reason),
            message: bounded(r.message),
            patch,
            warnings: r
                .warnings
                .into_iter()
                .take(MAX_WARNINGS)
                .map(|w| truncate(&w, MAX_MESSAGE_BYTES).to_string())
                .collect(),
        })
    }
}

fn to_wit(r: &AdmissionRequest) -> wit::AdmissionRequest {
    wit::AdmissionRequest {
        uid: r.uid.clone(),
        operation: match r.operation {
            Operation::Create => wit_types::Operation::Create,
            Operation::Update => wit_types::Operation::Update,
            Operation::Delete => wit_types::Operation::Delete,
            Operation::Connect => wit_types::Operation::Connect,
        },
        kind: wit_types::Gvk {
            group: r.kind.group.clone(),
            version: r.kind.version.clone(),
            kind: r.kind.kind.clone(),
        },
        resource: wit_types::Gvr {
            group: r.resource.group.clone(),
            version: r.resource.version.clone(),
            resource: r.resource.resource.clone(),
        },
        sub_resource: r.sub_resource.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        object: r.object.as_ref().map(Value::to_string),
        old_object: r.old_object.as_ref().map(Value::to_string),
        user: wit::UserInfo {
            username: r.user.username.clone(),
            uid: r.user.uid.clone(),
            groups: r.user.groups.clone(),
        },
        dry_run: r.dry_run,
    }
}
