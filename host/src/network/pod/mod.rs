//! The pod network (see the parent module): the host side of the `network` plugin world
//! and [`PodNetwork`], what the node agent calls to attach and detach pod sandboxes.
//!
//! The active plugin (default: the built-in `bridge`; `cni-adapter` runs a CNI conflist)
//! decides addresses and routes inside its Wasm sandbox; the host performs the privileged
//! operations it asks for — netlink in the sandbox's netns and on the node's bridge, a
//! masquerade table in nftables, a persistent key-value store for IPAM, CNI binaries from
//! the configured directories — each checked against the plugin's capabilities and the
//! scope of the current call ([`host`]).
//!
//! ```no_run
//! # async fn demo(runtime: std::sync::Arc<tugboat::plugin::PluginRuntime>) -> anyhow::Result<()> {
//! use tugboat::network::pod::{NetworkConfig, PodNetwork, SandboxNet};
//!
//! let config = NetworkConfig::new("node-1", vec!["10.42.0.0/24".into()], "/var/lib/tugboat".into());
//! let net = PodNetwork::start(&runtime, config).await?;
//! let sandbox = SandboxNet {
//!     pod_uid: "uid".into(),
//!     namespace: "default".into(),
//!     name: "web-0".into(),
//!     sandbox_id: "0123abcd".into(),
//!     netns: "/run/tugboat/netns/0123abcd".into(),
//!     ifname: "eth0".into(),
//! };
//! let addrs = net.setup(&sandbox).await?; // status.podIPs
//! net.teardown(&sandbox).await?;
//! # Ok(()) }
//! ```

mod cidr;
mod cni;
pub(crate) mod host;
mod ipam;
mod links;
mod nat;
mod netns;
mod plugin;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

pub use cidr::Cidr;
pub use host::CAPABILITY_GROUP;
pub use ipam::IpamStore;

use crate::plugin::{
    Capability, Limits, LogLine, NoHostApi, PluginKind, PluginManifest, PluginRuntime, PluginStats,
};
use host::NodeScope;
use nat::Masquerade;
use plugin::{NetworkPlugin, Op, WitPodSandbox};

/// The default bridge of the node.
pub const DEFAULT_BRIDGE: &str = "tug0";
/// The prefix of the host ends of pod veths.
pub const DEFAULT_VETH_PREFIX: &str = "tugv";
/// The node agent's nftables table (family `ip`) for masquerading.
pub const DEFAULT_NAT_TABLE: &str = "tugboat-nat";
/// The default cluster pod CIDR.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
/// Where CNI plugin binaries are looked for, in order.
pub const DEFAULT_CNI_BIN_DIRS: &[&str] = &["/opt/cni/bin", "/usr/lib/cni"];

/// How the node's pod network is set up.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The Plugin's name (the built-in `bridge` or `cni-adapter`, or a Plugin object's).
    pub plugin: String,
    /// The Plugin's `spec` (`kind: network`, `limits`, `permissions`, `config`, `source`);
    /// `None`: the built-in's default spec (its `plugin.json`).
    pub spec: Option<Value>,
    /// The component; `None`: the built-in named by `spec.source.builtin` (or `plugin`).
    pub component: Option<Arc<[u8]>>,
    /// The node agent's data directory (the IPAM store lives in `<data_dir>/network/`).
    pub data_dir: PathBuf,
    pub node_name: String,
    /// The node's `spec.podCIDRs`.
    pub pod_cidrs: Vec<String>,
    pub cluster_cidr: String,
    /// The node's bridge (the only bridge a plugin may create or attach to).
    pub bridge: String,
    /// The prefix of host-side veths (the only host links a plugin may delete).
    pub veth_prefix: String,
    /// The nftables table (family `ip`) of the masquerade rules.
    pub nat_table: String,
    /// The node's netns (`None`: the process's). Tests point it at a netns of their own.
    pub node_netns: Option<PathBuf>,
    /// Where CNI binaries may be run from.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The pods' MTU (0: the plugin's default).
    pub mtu: u32,
}

impl NetworkConfig {
    /// The defaults: the built-in `bridge` plugin on `tug0`, in the process's netns.
    pub fn new(node_name: &str, pod_cidrs: Vec<String>, data_dir: PathBuf) -> Self {
        NetworkConfig {
            plugin: "bridge".into(),
            spec: None,
            component: None,
            data_dir,
            node_name: node_name.into(),
            pod_cidrs,
            cluster_cidr: DEFAULT_CLUSTER_CIDR.into(),
            bridge: DEFAULT_BRIDGE.into(),
            veth_prefix: DEFAULT_VETH_PREFIX.into(),
            nat_table: DEFAULT_NAT_TABLE.into(),
            node_netns: None,
            cni_bin_dirs: DEFAULT_CNI_BIN_DIRS.iter().map(PathBuf::from).collect(),
            mtu: 0,
        }
    }
}

/// Gives the node the address `address` (as a /32 or /128 on its loopback interface) in
/// `node_netns` (`None`: the process's): where node-local services such as the cluster DNS
/// server listen; pods reach it through their default route to the node. (A dummy link
/// would do too, but not every kernel has the dummy driver.) Idempotent.
pub async fn ensure_node_address(
    node_netns: Option<&std::path::Path>,
    address: std::net::IpAddr,
) -> Result<()> {
    let h = netns::connect(node_netns).await?;
    let lo = links::get(&h, "lo").await?.context("the node has no lo")?;
    links::add_address(&h, lo.index, host_cidr(address)?).await
}

/// Removes what [`ensure_node_address`] added (nothing if it is not there).
pub async fn remove_node_address(
    node_netns: Option<&std::path::Path>,
    address: std::net::IpAddr,
) -> Result<()> {
    let h = netns::connect(node_netns).await?;
    let lo = links::get(&h, "lo").await?.context("the node has no lo")?;
    links::remove_address(&h, lo.index, host_cidr(address)?).await
}

fn host_cidr(address: std::net::IpAddr) -> Result<Cidr> {
    let prefix = if address.is_ipv4() { 32 } else { 128 };
    format!("{address}/{prefix}")
        .parse()
        .map_err(|e| anyhow!("{e}"))
}

/// A pod sandbox as the network sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNet {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    /// The sandbox id (stable for the sandbox's life; what allocations are keyed by).
    pub sandbox_id: String,
    /// The pinned netns of the sandbox.
    pub netns: PathBuf,
    /// Usually `eth0`.
    pub ifname: String,
}

/// What a pod got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAddresses {
    /// The pod's IPs (`status.podIPs`), in the plugin's order.
    pub ips: Vec<IpAddr>,
    /// The same with their prefix lengths.
    pub addresses: Vec<Cidr>,
    pub gateway: Option<IpAddr>,
}

/// The node's pod network: one network plugin bound to the node's scope.
pub struct PodNetwork {
    config: NetworkConfig,
    plugin: NetworkPlugin,
    scope: Arc<NodeScope>,
}

impl std::fmt::Debug for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNetwork")
            .field("plugin", &self.config.plugin)
            .field("bridge", &self.config.bridge)
            .finish_non_exhaustive()
    }
}

/// The manifest of a Plugin `spec` of kind `network` (`permissions` are the
/// capabilities); a missing `bridge` in an object `config` is filled in with `bridge`.
pub fn manifest_from_spec(spec: &Value, bridge: &str) -> Result<PluginManifest> {
    match spec.get("kind").and_then(Value::as_str) {
        Some("network") => {}
        other => bail!("the plugin is of kind {other:?}, not \"network\""),
    }
    let limits: Limits = match spec.get("limits") {
        Some(l) => serde_json::from_value(l.clone()).context("spec.limits")?,
        None => Limits::default(),
    };
    let capabilities: Vec<Capability> =
        match spec.get("permissions").or_else(|| spec.get("capabilities")) {
            Some(p) => serde_json::from_value(p.clone()).context("spec.permissions")?,
            None => vec![],
        };
    let mut config = spec.get("config").cloned().unwrap_or(Value::Null);
    if config.is_null() {
        config = Value::Object(Default::default());
    }
    if let Some(obj) = config.as_object_mut()
        && !obj.contains_key("bridge")
    {
        obj.insert("bridge".into(), Value::String(bridge.into()));
    }
    Ok(PluginManifest {
        kind: PluginKind::Network,
        limits,
        capabilities,
        config,
    })
}

impl PodNetwork {
    /// Loads the plugin (compiling it on `runtime`), opens its IPAM store and checks that
    /// an instance starts (`init` accepts the config).
    pub async fn start(runtime: &Arc<PluginRuntime>, config: NetworkConfig) -> Result<Arc<Self>> {
        let spec = match &config.spec {
            Some(s) => s.clone(),
            None => crate::builtin::plugin_object(&config.plugin)
                .map_err(|e| anyhow!(e))?
                .get("spec")
                .cloned()
                .unwrap_or(Value::Null),
        };
        let manifest = manifest_from_spec(&spec, &config.bridge)
            .with_context(|| format!("plugin {}", config.plugin))?;
        let component: Arc<[u8]> = match &config.component {
            Some(c) => c.clone(),
            None => {
                let name = spec
                    .pointer("/source/builtin")
                    .and_then(Value::as_str)
                    .unwrap_or(&config.plugin);
                Arc::from(crate::builtin::component(name).ok_or_else(|| {
                    anyhow!("there is no built-in plugin {name:?}; pass the component")
                })?)
            }
        };
        let pod_cidrs = config
            .pod_cidrs
            .iter()
            .map(|c| {
                c.parse::<Cidr>()
                    .map(|c| c.network())
                    .map_err(|e| anyhow!(e))
            })
            .collect::<Result<Vec<_>>>()
            .context("the node's pod CIDRs")?;
        if pod_cidrs.is_empty() {
            bail!("the node has no pod CIDR");
        }
        config
            .cluster_cidr
            .parse::<Cidr>()
            .map_err(|e| anyhow!(e))
            .context("the cluster CIDR")?;
        if config.plugin.is_empty()
            || !config
                .plugin
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            bail!("{:?} is not a plugin name", config.plugin);
        }
        let ipam = IpamStore::open(
            &config
                .data_dir
                .join("network")
                .join(format!("{}.json", config.plugin)),
        )?;
        let loaded = runtime
            .load_async(&config.plugin, component, manifest)
            .await
            .map_err(|e| anyhow!(e))?;
        let scope = Arc::new(NodeScope {
            plugin: config.plugin.as_str().into(),
            capabilities: loaded.manifest.capabilities.clone().into(),
            bridge: config.bridge.clone(),
            veth_prefix: config.veth_prefix.clone(),
            pod_cidrs,
            node_netns: config.node_netns.clone(),
            masquerade: Arc::new(Masquerade::new(
                config.nat_table.clone(),
                config.node_netns.clone(),
            )),
            ipam: Arc::new(ipam),
            cni_bin_dirs: config.cni_bin_dirs.clone(),
        });
        let plugin = NetworkPlugin::new(loaded, Arc::new(NoHostApi), scope.clone());
        plugin.probe().await.map_err(|e| anyhow!(e))?;
        tracing::info!(plugin = %config.plugin, digest = plugin.digest(), bridge = %config.bridge, "pod network plugin started");
        Ok(Arc::new(PodNetwork {
            config,
            plugin,
            scope,
        }))
    }

    fn record(&self, s: &SandboxNet) -> WitPodSandbox {
        WitPodSandbox {
            uid: s.pod_uid.clone(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            sandbox_id: s.sandbox_id.clone(),
            netns: s.netns.display().to_string(),
            ifname: s.ifname.clone(),
            node_name: self.config.node_name.clone(),
            pod_cidrs: self.config.pod_cidrs.clone(),
            cluster_cidr: self.config.cluster_cidr.clone(),
            mtu: self.config.mtu,
        }
    }

    async fn call(&self, op: Op, s: &SandboxNet) -> Result<Option<plugin::WitPodNetwork>> {
        let what = match op {
            Op::Setup => "setting up",
            Op::Teardown => "tearing down",
            Op::Check => "checking",
        };
        self.plugin
            .call(op, s, &self.record(s))
            .await
            .map_err(|e| anyhow!(e))?
            .map_err(|m| {
                anyhow!(
                    "network plugin {}: {what} the network of pod {}/{} (sandbox {}): {m}",
                    self.plugin.name(),
                    s.namespace,
                    s.name,
                    s.sandbox_id
                )
            })
    }

    /// Attaches a sandbox; idempotent (the same addresses again for an attached sandbox).
    pub async fn setup(&self, s: &SandboxNet) -> Result<PodAddresses> {
        let net = self
            .call(Op::Setup, s)
            .await?
            .ok_or_else(|| anyhow!("the plugin's setup returned nothing"))?;
        let addresses = net
            .addresses
            .iter()
            .map(|a| a.parse::<Cidr>().map_err(|e| anyhow!(e)))
            .collect::<Result<Vec<_>>>()
            .context("the plugin returned an invalid address")?;
        if addresses.is_empty() {
            bail!(
                "network plugin {} assigned no address to pod {}/{}",
                self.plugin.name(),
                s.namespace,
                s.name
            );
        }
        let gateway = match &net.gateway {
            Some(g) => Some(
                g.parse::<IpAddr>()
                    .with_context(|| format!("the plugin returned an invalid gateway {g:?}"))?,
            ),
            None => None,
        };
        Ok(PodAddresses {
            ips: addresses.iter().map(|c| c.addr).collect(),
            addresses,
            gateway,
        })
    }

    /// Detaches a sandbox and releases its addresses; idempotent, works after a restart
    /// and when the netns is already gone.
    pub async fn teardown(&self, s: &SandboxNet) -> Result<()> {
        self.call(Op::Teardown, s).await.map(|_| ())
    }

    /// Checks an attached sandbox's network.
    pub async fn check(&self, s: &SandboxNet) -> Result<()> {
        self.call(Op::Check, s).await.map(|_| ())
    }

    /// Removes what the node holds for the pod network: the bridge and the masquerade
    /// table (for `tug node reset`, after every pod is gone). IPAM state stays in the data
    /// directory.
    pub async fn cleanup_node(&self) -> Result<()> {
        let h = netns::connect(self.config.node_netns.as_deref()).await?;
        if let Some(link) = links::get(&h, &self.config.bridge).await?
            && link.kind.as_deref() == Some("bridge")
        {
            links::delete(&h, link.index)
                .await
                .with_context(|| format!("deleting bridge {}", self.config.bridge))?;
        }
        self.scope.masquerade.remove().await
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    pub fn plugin_name(&self) -> &str {
        self.plugin.name()
    }

    pub fn stats(&self) -> PluginStats {
        self.plugin.stats()
    }

    pub fn logs(&self) -> Vec<LogLine> {
        self.plugin.logs()
    }

    /// The plugin's IPAM store (diagnostics, tests).
    pub fn ipam(&self) -> &IpamStore {
        &self.scope.ipam
    }
}
