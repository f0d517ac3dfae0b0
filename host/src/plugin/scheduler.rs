//! Scheduler plugins: one long-lived instance per plugin version that keeps the cluster
//! state the host feeds it (`update`) and decides batches of pods (`schedule`), under the
//! plugin's limits. Unlike admission and controller plugins the instance is stateful, so
//! it is not pooled: a failed call drops it, and the host's scheduler
//! (`crate::scheduler`) starts a fresh one and sends it the whole cluster again.

use std::sync::Arc;

use super::bindings::scheduler::Scheduler;
use super::error::PluginError;
use super::health::PluginStats;
use super::host_api::HostApi;
use super::logs::{LogLine, truncate};
use super::manifest::PluginManifest;
use super::runtime::LoadedPlugin;
use super::sandbox::{Instance, MAX_MESSAGE_BYTES, Sandbox, begin_call};

pub use super::bindings::scheduler::exports::tugboat::plugin::scheduler_plugin::{
    ClusterChange, Decision, HostPort, Label, NodeInfo, PodInfo, ReasonCount, Resources, Taint,
    TaintEffect, Toleration,
};

/// A loaded scheduler plugin version with its one instance (see the [module](self) docs).
/// Calls are serialized: a scheduling profile makes one call at a time.
pub struct SchedulerPlugin {
    sb: Sandbox<Scheduler>,
    instance: tokio::sync::Mutex<Option<Instance<Scheduler>>>,
}

impl std::fmt::Debug for SchedulerPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerPlugin")
            .field("name", &self.sb.name)
            .field("digest", &self.sb.digest)
            .finish_non_exhaustive()
    }
}

impl SchedulerPlugin {
    /// Wraps a component loaded with `kind: scheduler`. Its host calls (logging; reads
    /// only with permissions) are served by `api`.
    pub fn new(loaded: LoadedPlugin, api: Arc<dyn HostApi>) -> Self {
        SchedulerPlugin {
            sb: Sandbox::new(loaded, api),
            instance: tokio::sync::Mutex::new(None),
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

    /// Whether an instance runs (it holds state the host has fed it).
    pub async fn is_started(&self) -> bool {
        self.instance.lock().await.is_some()
    }

    /// Starts a fresh instance (`init` with the Plugin's config), dropping any earlier one
    /// and its state: the caller sends the whole cluster next. Also the probe before a
    /// version is activated.
    pub async fn start(&self) -> Result<(), PluginError> {
        let mut slot = self.instance.lock().await;
        *slot = None;
        let permit = self.sb.health.begin()?;
        let result = self.instantiate().await;
        let result = result.map(|i| {
            *slot = Some(i);
        });
        self.sb.record(permit, "init", &result);
        result
    }

    /// Drops the instance (and the plugin's state).
    pub async fn reset(&self) {
        *self.instance.lock().await = None;
    }

    /// Feeds changes of the cluster to the instance. On failure the instance is gone.
    pub async fn update(&self, changes: &[ClusterChange]) -> Result<(), PluginError> {
        let mut slot = self.instance.lock().await;
        let permit = self.sb.health.begin()?;
        let result = match slot.as_mut() {
            None => Err(self.not_started()),
            Some(instance) => {
                let timeout = self.sb.manifest.limits.timeout();
                begin_call(&mut instance.store, timeout);
                let r = instance
                    .bindings
                    .tugboat_plugin_scheduler_plugin()
                    .call_update(&mut instance.store, changes)
                    .await;
                let stderr = self.sb.drain_stdio(&instance.store);
                r.map_err(|e| self.sb.classify(e, &instance.store, &stderr, timeout))
            }
        };
        if result.is_err() {
            *slot = None;
        }
        self.sb.record(permit, "update", &result);
        result
    }

    /// Decides a batch of pods: one decision per pod, in order. On failure the instance is
    /// gone (and with it the pods it assumed).
    pub async fn schedule(&self, pods: &[PodInfo]) -> Result<Vec<Decision>, PluginError> {
        let mut slot = self.instance.lock().await;
        let permit = self.sb.health.begin()?;
        let result = match slot.as_mut() {
            None => Err(self.not_started()),
            Some(instance) => {
                let timeout = self.sb.manifest.limits.timeout();
                begin_call(&mut instance.store, timeout);
                let r = instance
                    .bindings
                    .tugboat_plugin_scheduler_plugin()
                    .call_schedule(&mut instance.store, pods)
                    .await;
                let stderr = self.sb.drain_stdio(&instance.store);
                match r {
                    Ok(d) if d.len() == pods.len() => Ok(d.into_iter().map(bounded).collect()),
                    Ok(d) => Err(PluginError::InvalidResponse {
                        plugin: self.sb.name.clone(),
                        message: format!(
                            "schedule returned {} decisions for {} pods",
                            d.len(),
                            pods.len()
                        ),
                    }),
                    Err(e) => Err(self.sb.classify(e, &instance.store, &stderr, timeout)),
                }
            }
        };
        if result.is_err() {
            *slot = None;
        }
        self.sb.record(permit, "schedule", &result);
        result
    }

    fn not_started(&self) -> PluginError {
        PluginError::Internal {
            plugin: self.sb.name.clone(),
            message: "the scheduler plugin has no running instance (start it first)".into(),
        }
    }

    async fn instantiate(&self) -> Result<Instance<Scheduler>, PluginError> {
        let mut store = self.sb.new_store();
        let timeout = self.sb.manifest.limits.init_timeout();
        begin_call(&mut store, timeout);
        self.sb.health.count_instance();
        let pre = self.sb.loaded.scheduler_pre()?;
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(self.sb.instantiation_failed(e, &store, timeout)),
        };
        let result = bindings
            .tugboat_plugin_scheduler_plugin()
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
}

/// Caps the texts a plugin returns (they end up in Events).
fn bounded(d: Decision) -> Decision {
    match d {
        Decision::Node(n) => Decision::Node(n),
        Decision::Error(m) => Decision::Error(truncate(&m, MAX_MESSAGE_BYTES).to_string()),
        Decision::Unschedulable(mut reasons) => {
            reasons.truncate(64);
            for r in &mut reasons {
                if r.reason.len() > 256 {
                    r.reason = truncate(&r.reason, 256).to_string();
                }
            }
            Decision::Unschedulable(reasons)
        }
    }
}
