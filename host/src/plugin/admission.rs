//! Admission hooks: calling a plugin's `admit` under its limits, with fault containment,
//! instance reuse and health accounting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::Admission;
use super::bindings::exports::tugboat::plugin::admission_plugin as wit;
use super::bindings::tugboat::plugin::types as wit_types;
use super::error::PluginError;
use super::health::{Health, PluginStats};
use super::host_api::{HostApi, HostCtx};
use super::logs::{CaptureStream, LogLine, LogSource, PluginLogs, panic_message, truncate};
use super::manifest::{Capability, PluginManifest};
use super::runtime::{DeadlineExceeded, LoadedPlugin, MemoryLimiter, StoreState};

/// What a plugin may print per call; the rest is dropped.
const STDIO_CAPTURE_BYTES: usize = 16 << 10;
/// Lines kept in a plugin's log.
const LOG_LINES: usize = 1000;
/// Bounds on what a plugin may answer (longer text is truncated).
const MAX_MESSAGE_BYTES: usize = 4096;
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

/// One instance of the plugin with its store.
struct Instance {
    store: Store<StoreState>,
    bindings: Admission,
    calls: u32,
}

/// A loaded admission plugin version: call [`AdmissionPlugin::admit`] concurrently from
/// async code (inside a tokio runtime). Each call runs on a warm instance from a small
/// pool (or a fresh one), on the calling task: the guest runs on a fiber and yields to the
/// executor at every epoch tick (1 ms), so it never blocks a worker thread for longer, and
/// it is stopped at its deadline.
pub struct AdmissionPlugin {
    name: Arc<str>,
    digest: String,
    manifest: PluginManifest,
    config_json: String,
    loaded: LoadedPlugin,
    capabilities: Arc<[Capability]>,
    api: Arc<dyn HostApi>,
    logs: Arc<PluginLogs>,
    health: Arc<Health>,
    idle: Mutex<Vec<Instance>>,
}

impl std::fmt::Debug for AdmissionPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionPlugin")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl AdmissionPlugin {
    /// Wraps a loaded component; no instance is created yet (see
    /// [`AdmissionPlugin::probe`]). Host API calls are capability-checked and then served
    /// by `api`.
    pub fn new(loaded: LoadedPlugin, api: Arc<dyn HostApi>) -> Self {
        let manifest = loaded.manifest.clone();
        let name = loaded.name.clone();
        AdmissionPlugin {
            digest: loaded.digest.clone(),
            config_json: manifest.config.to_string(),
            capabilities: manifest.capabilities.clone().into(),
            health: Arc::new(Health::new(name.clone(), &manifest.limits)),
            logs: Arc::new(PluginLogs::new(LOG_LINES)),
            idle: Mutex::new(Vec::new()),
            api,
            loaded,
            manifest,
            name,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hex sha256 of the component.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    pub fn stats(&self) -> PluginStats {
        self.health.stats()
    }

    /// The plugin's recent log lines (stdout, stderr, `host.log`, runtime events).
    pub fn logs(&self) -> Vec<LogLine> {
        self.logs.snapshot()
    }

    /// Creates an instance and runs `init(config)` on it, keeping it warm for the next
    /// call. Fails if the component cannot be instantiated or `init` fails. This is the
    /// first-call check before a version is activated.
    pub async fn probe(&self) -> Result<(), PluginError> {
        let instance = self.instantiate().await?;
        self.release(instance);
        Ok(())
    }

    /// Judges one request. Fails fast with [`PluginError::Degraded`] while the plugin is
    /// backing off; every other error is this call's failure (the host applies the hook's
    /// failure policy). Never panics and never blocks past the deadline (plus one epoch).
    pub async fn admit(
        &self,
        request: &AdmissionRequest,
    ) -> Result<AdmissionResponse, PluginError> {
        let permit = self.health.begin()?;
        let result = self.call_admit(request).await;
        self.health.record(permit, result.as_ref().map(|_| ()));
        if let Err(e) = &result {
            tracing::debug!(plugin = %self.name, uid = %request.uid, error = %e, "admission plugin call failed");
            self.logs
                .push(LogSource::Runtime, &format!("call failed: {e}"));
        }
        result
    }

    async fn call_admit(
        &self,
        request: &AdmissionRequest,
    ) -> Result<AdmissionResponse, PluginError> {
        let idle = self.idle.lock().pop();
        let mut instance = match idle {
            Some(i) => i,
            None => self.instantiate().await?,
        };
        let wit_request = to_wit(request);
        let timeout = self.manifest.limits.timeout();
        begin_call(&mut instance.store, timeout);
        let result = instance
            .bindings
            .tugboat_plugin_admission_plugin()
            .call_admit(&mut instance.store, &wit_request)
            .await;
        let stderr = self.drain_stdio(&instance.store);
        instance.calls += 1;
        match result {
            Ok(response) => {
                let response = self.validate(response)?;
                self.release(instance);
                Ok(response)
            }
            Err(e) => Err(self.classify(e, &instance.store, &stderr, timeout)),
        }
    }

    /// A fresh instance with `init(config)` done.
    async fn instantiate(&self) -> Result<Instance, PluginError> {
        let mut store = self.new_store();
        let timeout = self.manifest.limits.init_timeout();
        begin_call(&mut store, timeout);
        self.health.count_instance();
        let bindings = match self.loaded.admission.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => {
                let stderr = self.drain_stdio(&store);
                return Err(match self.classify(e, &store, &stderr, timeout) {
                    PluginError::Trap { plugin, message }
                    | PluginError::InvalidResponse { plugin, message } => PluginError::Internal {
                        plugin,
                        message: format!("instantiation failed: {message}"),
                    },
                    other => other,
                });
            }
        };
        let result = bindings
            .tugboat_plugin_admission_plugin()
            .call_init(&mut store, &self.config_json)
            .await;
        let stderr = self.drain_stdio(&store);
        match result {
            Ok(Ok(())) => Ok(Instance {
                store,
                bindings,
                calls: 0,
            }),
            Ok(Err(message)) => Err(PluginError::Init {
                plugin: self.name.clone(),
                message: truncate(&message, MAX_MESSAGE_BYTES).to_string(),
            }),
            Err(e) => Err(self.classify(e, &store, &stderr, timeout)),
        }
    }

    fn new_store(&self) -> Store<StoreState> {
        let stdout = CaptureStream::new(STDIO_CAPTURE_BYTES);
        let stderr = CaptureStream::new(STDIO_CAPTURE_BYTES);
        // Nothing is granted: no preopened directories, no environment or arguments, no
        // sockets or name lookups; stdin is closed; stdout/stderr go to the plugin's log.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = StoreState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                cap: usize::try_from(self.manifest.limits.memory_bytes).unwrap_or(usize::MAX),
                hit: false,
                peak: 0,
            },
            host: HostCtx {
                plugin: self.name.clone(),
                capabilities: self.capabilities.clone(),
                api: self.api.clone(),
                logs: self.logs.clone(),
                health: self.health.clone(),
                deadline: Instant::now(),
            },
            stdout,
            stderr,
        };
        let mut store = Store::new(&self.loaded.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().host.deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                // Let other tasks run on this thread, then keep going.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Returns a healthy instance to the pool (or drops it when the pool is full, it has
    /// served its calls, or its memory grew past half the cap).
    fn release(&self, instance: Instance) {
        let limits = &self.manifest.limits;
        let limiter = &instance.store.data().limiter;
        if instance.calls >= limits.max_calls_per_instance || limiter.peak > limiter.cap / 2 {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < limits.max_idle_instances as usize {
            idle.push(instance);
        }
    }

    /// Moves what the plugin printed into its log; returns stderr (for panic messages).
    fn drain_stdio(&self, store: &Store<StoreState>) -> String {
        let data = store.data();
        let stdout = data.stdout.take();
        let stderr = String::from_utf8_lossy(&data.stderr.take()).into_owned();
        for line in String::from_utf8_lossy(&stdout).lines() {
            self.logs.push(LogSource::Stdout, line);
        }
        for line in stderr.lines() {
            self.logs.push(LogSource::Stderr, line);
        }
        stderr
    }

    fn classify(
        &self,
        e: wasmtime::Error,
        store: &Store<StoreState>,
        stderr: &str,
        deadline: Duration,
    ) -> PluginError {
        let plugin = self.name.clone();
        if e.is::<DeadlineExceeded>() || e.chain().any(|c| c.is::<DeadlineExceeded>()) {
            return PluginError::Timeout { plugin, deadline };
        }
        if store.data().limiter.hit {
            let printed = stderr.trim();
            return PluginError::MemoryLimit {
                plugin,
                limit: self.manifest.limits.memory_bytes,
                detail: if printed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", truncate(printed, MAX_MESSAGE_BYTES))
                },
            };
        }
        if let Some(message) = panic_message(stderr) {
            return PluginError::Panic { plugin, message };
        }
        if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return PluginError::Trap {
                plugin,
                message: format!("the plugin exited with status {}", exit.0),
            };
        }
        let mut message = format!("{e:#}");
        let printed = stderr.trim();
        if !printed.is_empty() {
            message = format!(
                "{message}; stderr: {}",
                truncate(printed, MAX_MESSAGE_BYTES)
            );
        }
        if e.downcast_ref::<wasmtime::Trap>().is_some() {
            PluginError::Trap { plugin, message }
        } else {
            // Not a trap: the canonical ABI rejected what the plugin returned, or the call
            // could not run at all.
            PluginError::InvalidResponse { plugin, message }
        }
    }

    fn validate(&self, r: wit::AdmissionResponse) -> Result<AdmissionResponse, PluginError> {
        let invalid = |message: String| PluginError::InvalidResponse {
            plugin: self.name.clone(),
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

/// Arms the deadline for the next call on `store`.
fn begin_call(store: &mut Store<StoreState>, timeout: Duration) {
    store.data_mut().host.deadline = Instant::now() + timeout;
    store.set_epoch_deadline(1);
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
