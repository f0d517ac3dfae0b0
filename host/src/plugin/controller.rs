//! Controller plugins: calling a component's `init` (what the controller is for) and
//! `reconcile` under its limits, with the same fault containment, instance reuse and
//! health accounting as admission hooks. The engine (`crate::engine`) owns the queues and
//! caches and calls [`ControllerPlugin::reconcile`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bindings::controller::Controller;
use super::bindings::controller::exports::tugboat::plugin::controller_plugin as wit;
use super::error::PluginError;
use super::health::PluginStats;
use super::host_api::HostApi;
use super::logs::{LogLine, truncate};
use super::manifest::PluginManifest;
use super::runtime::LoadedPlugin;
use super::sandbox::{Instance, MAX_MESSAGE_BYTES, Sandbox, begin_call};

/// How a change to a watched kind maps to keys of the primary kind (see `wit/controller.wit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapRule {
    None,
    Owner,
    SameName,
    /// JSON pointer to a label selector (or label map) in the primary object.
    Selector(String),
    /// JSON pointer to a field of the watched object naming a primary object.
    Field(String),
    All,
    /// The objects (of a primary kind) that name the changed object as an owner.
    Dependents,
}

/// A kind (`apps/v1`, `Deployment`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KindRef {
    pub api_version: String,
    pub kind: String,
}

/// Which changes of an object count (see `wit/controller.wit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeFilter {
    #[default]
    All,
    SpecAndMetadata,
    Metadata,
}

impl From<wit::ChangeFilter> for ChangeFilter {
    fn from(c: wit::ChangeFilter) -> Self {
        match c {
            wit::ChangeFilter::All => ChangeFilter::All,
            wit::ChangeFilter::SpecAndMetadata => ChangeFilter::SpecAndMetadata,
            wit::ChangeFilter::Metadata => ChangeFilter::Metadata,
        }
    }
}

/// One further kind a controller reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchDecl {
    pub api_version: String,
    pub kind: String,
    pub map: MapRule,
    pub changes: ChangeFilter,
}

/// What a controller plugin is for, as its `init` returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerDecl {
    /// The primary kinds (at least one).
    pub kinds: Vec<KindRef>,
    /// Which changes of primary objects count.
    pub primary_changes: ChangeFilter,
    pub watches: Vec<WatchDecl>,
    /// 0: the host's default.
    pub workers: u32,
}

/// The key of the object to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReconcileKey {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// A successful reconcile's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    Done,
    RequeueAfter(Duration),
}

/// A loaded controller plugin version. [`ControllerPlugin::reconcile`] may be called
/// concurrently (one warm instance per concurrent call).
pub struct ControllerPlugin {
    sb: Sandbox<Controller>,
}

impl std::fmt::Debug for ControllerPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerPlugin")
            .field("name", &self.sb.name)
            .field("digest", &self.sb.digest)
            .finish_non_exhaustive()
    }
}

impl ControllerPlugin {
    /// Wraps a loaded component (loaded with `kind: controller`). Host calls are
    /// capability-checked, then served by `api` (for controllers: reads from the engine's
    /// caches, writes through the API server).
    pub fn new(loaded: LoadedPlugin, api: Arc<dyn HostApi>) -> Self {
        ControllerPlugin {
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

    pub fn logs(&self) -> Vec<LogLine> {
        self.sb.logs.snapshot()
    }

    /// Instantiates the plugin and runs `init(config)`: what the controller is for. The
    /// instance stays warm. This is also the first-call check before a version is
    /// activated.
    pub async fn declare(&self) -> Result<ControllerDecl, PluginError> {
        let (instance, decl) = self.instantiate().await?;
        self.sb.release(instance);
        Ok(decl)
    }

    /// Reconciles one object. Fails fast with [`PluginError::Degraded`] while the plugin
    /// backs off; a plugin's `failed(message)` is [`PluginError::Reconcile`].
    pub async fn reconcile(
        &self,
        key: &ReconcileKey,
        object: Option<&Value>,
    ) -> Result<Reconciled, PluginError> {
        let permit = self.sb.health.begin()?;
        let result = self.call_reconcile(key, object).await;
        // A controller's own `failed` is not a fault of the sandbox: it does not count
        // towards Degraded, but it is logged.
        match &result {
            Err(PluginError::Reconcile { .. }) => {
                self.sb.record::<()>(permit, "reconcile", &Ok(()));
                if let Err(e) = &result {
                    self.sb
                        .logs
                        .push(super::logs::LogSource::Runtime, &format!("{e}"));
                }
            }
            _ => self.sb.record(permit, "reconcile", &result),
        }
        result
    }

    async fn call_reconcile(
        &self,
        key: &ReconcileKey,
        object: Option<&Value>,
    ) -> Result<Reconciled, PluginError> {
        let mut instance = match self.sb.take_idle() {
            Some(i) => i,
            None => self.instantiate().await?.0,
        };
        let wit_key = wit::ObjectKey {
            api_version: key.api_version.clone(),
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        };
        let object = object.map(Value::to_string);
        let timeout = self.sb.manifest.limits.timeout();
        begin_call(&mut instance.store, timeout);
        let result = instance
            .bindings
            .tugboat_plugin_controller_plugin()
            .call_reconcile(&mut instance.store, &wit_key, object.as_ref())
            .await;
        let stderr = self.sb.drain_stdio(&instance.store);
        instance.calls += 1;
        match result {
            Ok(outcome) => {
                self.sb.release(instance);
                match outcome {
                    wit::ReconcileResult::Done => Ok(Reconciled::Done),
                    wit::ReconcileResult::RequeueAfter(ms) => Ok(Reconciled::RequeueAfter(
                        Duration::from_millis(u64::from(ms)),
                    )),
                    wit::ReconcileResult::Failed(message) => Err(PluginError::Reconcile {
                        plugin: self.sb.name.clone(),
                        message: truncate(&message, MAX_MESSAGE_BYTES).to_string(),
                    }),
                }
            }
            Err(e) => Err(self.sb.classify(e, &instance.store, &stderr, timeout)),
        }
    }

    async fn instantiate(&self) -> Result<(Instance<Controller>, ControllerDecl), PluginError> {
        let mut store = self.sb.new_store();
        let timeout = self.sb.manifest.limits.init_timeout();
        begin_call(&mut store, timeout);
        self.sb.health.count_instance();
        let pre = self.sb.loaded.controller_pre()?;
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(self.sb.instantiation_failed(e, &store, timeout)),
        };
        let result = bindings
            .tugboat_plugin_controller_plugin()
            .call_init(&mut store, &self.sb.config_json)
            .await;
        let stderr = self.sb.drain_stdio(&store);
        match result {
            Ok(Ok(spec)) => Ok((
                Instance {
                    store,
                    bindings,
                    calls: 0,
                },
                self.validate_spec(spec)?,
            )),
            Ok(Err(message)) => Err(PluginError::Init {
                plugin: self.sb.name.clone(),
                message: truncate(&message, MAX_MESSAGE_BYTES).to_string(),
            }),
            Err(e) => Err(self.sb.classify(e, &store, &stderr, timeout)),
        }
    }

    fn validate_spec(&self, spec: wit::ControllerSpec) -> Result<ControllerDecl, PluginError> {
        let invalid = |message: String| PluginError::InvalidResponse {
            plugin: self.sb.name.clone(),
            message,
        };
        if spec.kinds.is_empty() || spec.kinds.len() > 64 {
            return Err(invalid(
                "init must return between 1 and 64 primary kinds".into(),
            ));
        }
        if spec
            .kinds
            .iter()
            .any(|k| k.api_version.is_empty() || k.kind.is_empty())
        {
            return Err(invalid("a primary kind without apiVersion or kind".into()));
        }
        if spec.watches.len() > 64 {
            return Err(invalid("init returned more than 64 watches".into()));
        }
        let pointer = |p: String| -> Result<String, PluginError> {
            if p.starts_with('/') && p.len() < 256 {
                Ok(p)
            } else {
                Err(invalid(format!("{p:?} is not a JSON pointer")))
            }
        };
        let mut watches = Vec::with_capacity(spec.watches.len());
        for w in spec.watches {
            if w.api_version.is_empty() || w.kind.is_empty() {
                return Err(invalid("a watch without apiVersion or kind".into()));
            }
            let map = match w.map {
                wit::MapRule::None => MapRule::None,
                wit::MapRule::Owner => MapRule::Owner,
                wit::MapRule::SameName => MapRule::SameName,
                wit::MapRule::Selector(p) => MapRule::Selector(pointer(p)?),
                wit::MapRule::Field(p) => MapRule::Field(pointer(p)?),
                wit::MapRule::All => MapRule::All,
                wit::MapRule::Dependents => MapRule::Dependents,
            };
            watches.push(WatchDecl {
                api_version: w.api_version,
                kind: w.kind,
                map,
                changes: w.changes.into(),
            });
        }
        Ok(ControllerDecl {
            kinds: spec
                .kinds
                .into_iter()
                .map(|k| KindRef {
                    api_version: k.api_version,
                    kind: k.kind,
                })
                .collect(),
            primary_changes: spec.primary_changes.into(),
            watches,
            workers: spec.workers.min(64),
        })
    }
}
