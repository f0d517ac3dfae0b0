//! A loaded network plugin (the `network` world): a pool of warm instances, each call
//! bound to its sandbox's scope (see [`super::host`]) under the plugin's limits, the way
//! admission plugins are called.

use std::sync::Arc;
use std::time::Instant;

use crate::plugin::bindings::network::Network;
use crate::plugin::bindings::network::exports::tugboat::plugin::network_plugin as wit;
use crate::plugin::health::PluginStats;
use crate::plugin::logs::{LogLine, truncate};
use crate::plugin::sandbox::{Instance, MAX_MESSAGE_BYTES, Sandbox, begin_call};
use crate::plugin::{HostApi, LoadedPlugin, PluginError};

use super::SandboxNet;
use super::host::{CallScope, NodeScope};

pub(crate) use wit::{PodNetwork as WitPodNetwork, PodSandbox as WitPodSandbox};

/// Which export to call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    Setup,
    Teardown,
    Check,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Setup => "setup",
            Op::Teardown => "teardown",
            Op::Check => "check",
        }
    }
}

/// A network plugin version with its node scope.
pub(crate) struct NetworkPlugin {
    sb: Sandbox<Network>,
    scope: Arc<NodeScope>,
}

impl NetworkPlugin {
    pub fn new(loaded: LoadedPlugin, api: Arc<dyn HostApi>, scope: Arc<NodeScope>) -> Self {
        NetworkPlugin {
            sb: Sandbox::new(loaded, api),
            scope,
        }
    }

    pub fn name(&self) -> &str {
        &self.sb.name
    }

    pub fn digest(&self) -> &str {
        &self.sb.digest
    }

    pub fn stats(&self) -> PluginStats {
        self.sb.health.stats()
    }

    pub fn logs(&self) -> Vec<LogLine> {
        self.sb.logs.snapshot()
    }

    /// Instantiates and `init`s one instance (kept warm): the check before use.
    pub async fn probe(&self) -> Result<(), PluginError> {
        let permit = self.sb.health.begin()?;
        let result = self.instantiate().await;
        let result = result.map(|i| self.sb.release(i));
        self.sb.record(permit, "init", &result);
        result
    }

    /// Calls `op` for `sandbox`. The outer error is a fault of the plugin (trap, timeout,
    /// …); the inner one what the plugin reported.
    pub async fn call(
        &self,
        op: Op,
        sandbox: &SandboxNet,
        record: &WitPodSandbox,
    ) -> Result<Result<Option<WitPodNetwork>, String>, PluginError> {
        let permit = self.sb.health.begin()?;
        let result = self.call_inner(op, sandbox, record).await;
        self.sb.record(permit, op.name(), &result);
        result
    }

    async fn call_inner(
        &self,
        op: Op,
        sandbox: &SandboxNet,
        record: &WitPodSandbox,
    ) -> Result<Result<Option<WitPodNetwork>, String>, PluginError> {
        let mut instance = match self.sb.take_idle() {
            Some(i) => i,
            None => self.instantiate().await?,
        };
        let timeout = self.sb.manifest.limits.timeout();
        begin_call(&mut instance.store, timeout);
        instance.store.data_mut().network.call =
            Some(CallScope::new(sandbox.clone(), Instant::now() + timeout));
        let exports = instance.bindings.tugboat_plugin_network_plugin();
        let result = match op {
            Op::Setup => exports
                .call_setup(&mut instance.store, record)
                .await
                .map(|r| r.map(Some)),
            Op::Teardown => exports
                .call_teardown(&mut instance.store, record)
                .await
                .map(|r| r.map(|()| None)),
            Op::Check => exports
                .call_check(&mut instance.store, record)
                .await
                .map(|r| r.map(|()| None)),
        };
        // Drops the call's netlink connections.
        instance.store.data_mut().network.call = None;
        let stderr = self.sb.drain_stdio(&instance.store);
        instance.calls += 1;
        match result {
            Ok(r) => {
                self.sb.release(instance);
                Ok(r.map_err(|m| truncate(&m, MAX_MESSAGE_BYTES).to_string()))
            }
            Err(e) => Err(self.sb.classify(e, &instance.store, &stderr, timeout)),
        }
    }

    async fn instantiate(&self) -> Result<Instance<Network>, PluginError> {
        let mut store = self.sb.new_store();
        store.data_mut().network.node = Some(self.scope.clone());
        let timeout = self.sb.manifest.limits.init_timeout();
        begin_call(&mut store, timeout);
        self.sb.health.count_instance();
        let pre = self.sb.loaded.network_pre()?;
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(self.sb.instantiation_failed(e, &store, timeout)),
        };
        let result = bindings
            .tugboat_plugin_network_plugin()
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
