//! The host side of the `netlink`, `ipam-store` and `cni` interfaces of the `network`
//! world: every call is checked against the plugin's capabilities (API group
//! `network.tugboat.dev`, resources `netlink`, `ipam`, `cni`) and the scope of the current
//! call (its sandbox's netns, the node's bridge, veths with the node's prefix, the node's
//! pod CIDRs) before it touches anything; a refused call returns 403 and is logged.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rtnetlink::Handle;

use super::SandboxNet;
use super::cidr::Cidr;
use super::cni::{self, CniFailure};
use super::ipam::{IpamStore, MAX_KEY_BYTES, MAX_VALUE_BYTES};
use super::links;
use super::nat::Masquerade;
use super::netns;
use crate::plugin::Capability;
use crate::plugin::bindings::network::tugboat::plugin::{
    cni as wit_cni, ipam_store as wit_ipam, netlink as wit_netlink,
};
use crate::plugin::bindings::tugboat::plugin::types as wit_types;

/// The API group of the network capabilities.
pub const CAPABILITY_GROUP: &str = "network.tugboat.dev";

/// What a network plugin may touch on this node (shared by all its instances).
pub(crate) struct NodeScope {
    pub plugin: Arc<str>,
    pub capabilities: Arc<[Capability]>,
    pub bridge: String,
    pub veth_prefix: String,
    pub pod_cidrs: Vec<Cidr>,
    pub node_netns: Option<PathBuf>,
    pub masquerade: Arc<Masquerade>,
    pub ipam: Arc<IpamStore>,
    pub cni_bin_dirs: Vec<PathBuf>,
}

/// The current plugin call: its sandbox and deadline, and netlink connections opened on
/// first use.
pub(crate) struct CallScope {
    pub sandbox: SandboxNet,
    pub deadline: Instant,
    node: Option<Handle>,
    pod: Option<Handle>,
}

impl CallScope {
    pub fn new(sandbox: SandboxNet, deadline: Instant) -> Self {
        CallScope {
            sandbox,
            deadline,
            node: None,
            pod: None,
        }
    }
}

/// The network part of a plugin store's data: empty outside network plugins (every call
/// refused) and between calls.
#[derive(Default)]
pub struct NetworkCtx {
    pub(crate) node: Option<Arc<NodeScope>>,
    pub(crate) call: Option<CallScope>,
}

type WitError = wit_types::Error;

fn err(code: u16, reason: &str, message: impl Into<String>) -> WitError {
    WitError {
        code,
        reason: reason.to_string(),
        message: message.into(),
    }
}

fn forbidden(message: impl Into<String>) -> WitError {
    err(403, "Forbidden", message)
}

fn bad_request(message: impl Into<String>) -> WitError {
    err(400, "BadRequest", message)
}

fn internal(e: anyhow::Error) -> WitError {
    err(500, "InternalError", format!("{e:#}"))
}

/// A valid interface name (as the kernel's `dev_valid_name`).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

fn parse_cidr(s: &str) -> Result<Cidr, WitError> {
    s.parse::<Cidr>().map_err(bad_request)
}

impl NetworkCtx {
    /// The scope, after checking the capability for `verb` on `resource`.
    fn scope(&self, resource: &str, verb: &str) -> Result<Arc<NodeScope>, WitError> {
        let Some(node) = &self.node else {
            return Err(forbidden("network host calls are for network plugins only"));
        };
        if self.call.is_none() {
            return Err(forbidden(
                "network host calls are allowed only during a plugin call",
            ));
        }
        if !node
            .capabilities
            .iter()
            .any(|c| c.allows(CAPABILITY_GROUP, resource, verb))
        {
            return Err(self.refuse(
                node,
                format!(
                    "the plugin lacks the capability {verb} {resource} (apiGroup {CAPABILITY_GROUP})"
                ),
            ));
        }
        Ok(node.clone())
    }

    fn refuse(&self, node: &NodeScope, message: String) -> WitError {
        tracing::warn!(plugin = %node.plugin, "network host call refused: {message}");
        forbidden(message)
    }

    fn call(&mut self) -> Result<&mut CallScope, WitError> {
        self.call
            .as_mut()
            .ok_or_else(|| forbidden("network host calls are allowed only during a plugin call"))
    }

    fn deadline(&self) -> Instant {
        self.call
            .as_ref()
            .map(|c| c.deadline)
            .unwrap_or_else(Instant::now)
    }

    /// Runs `f` within the call's deadline (504 past it).
    async fn bounded<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> Result<T, WitError> {
        match tokio::time::timeout_at(self.deadline().into(), f).await {
            Ok(r) => r.map_err(|e| internal(e.context(what.to_string()))),
            Err(_) => Err(err(
                504,
                "Timeout",
                format!("{what}: the plugin call's deadline passed"),
            )),
        }
    }

    async fn node_handle(&mut self, node: &NodeScope) -> Result<Handle, WitError> {
        if let Some(h) = &self.call()?.node {
            return Ok(h.clone());
        }
        let netns = node.node_netns.clone();
        let h = self
            .bounded("connecting to the node netns", async {
                netns::connect(netns.as_deref()).await
            })
            .await?;
        self.call()?.node = Some(h.clone());
        Ok(h)
    }

    /// A connection into the sandbox's netns; `None` when the netns is gone.
    async fn pod_handle(&mut self) -> Result<Option<Handle>, WitError> {
        let call = self.call()?;
        if let Some(h) = &call.pod {
            return Ok(Some(h.clone()));
        }
        let path = call.sandbox.netns.clone();
        if !netns::is_netns(&path) {
            return Ok(None);
        }
        let h = self
            .bounded("connecting to the sandbox netns", async {
                netns::connect(Some(&path)).await
            })
            .await?;
        self.call()?.pod = Some(h.clone());
        Ok(Some(h))
    }

    async fn must_pod_handle(&mut self) -> Result<Handle, WitError> {
        self.pod_handle().await?.ok_or_else(|| {
            err(
                404,
                "NotFound",
                "the sandbox's network namespace does not exist",
            )
        })
    }

    async fn pod_link(&mut self, ifname: &str) -> Result<links::Link, WitError> {
        if !valid_ifname(ifname) {
            return Err(bad_request(format!("{ifname:?} is not an interface name")));
        }
        let h = self.must_pod_handle().await?;
        self.bounded("looking up the pod's link", async {
            links::get(&h, ifname).await
        })
        .await?
        .ok_or_else(|| err(404, "NotFound", format!("the sandbox has no link {ifname}")))
    }
}

impl wit_netlink::Host for NetworkCtx {
    async fn ensure_bridge(
        &mut self,
        name: String,
        gateway: String,
        mtu: u32,
    ) -> Result<(), WitError> {
        let node = self.scope("netlink", "update")?;
        if name != node.bridge {
            return Err(self.refuse(
                &node,
                format!(
                    "ensure-bridge {name:?}: the node's bridge is {:?}",
                    node.bridge
                ),
            ));
        }
        let gw = parse_cidr(&gateway)?;
        if !node.pod_cidrs.iter().any(|c| c.contains_net(&gw.network())) {
            return Err(self.refuse(
                &node,
                format!("ensure-bridge: the gateway {gateway} is outside the node's pod CIDRs"),
            ));
        }
        if mtu > 65_535 {
            return Err(bad_request(format!("MTU {mtu} is out of range")));
        }
        let h = self.node_handle(&node).await?;
        self.bounded("ensure-bridge", async {
            links::ensure_bridge(&h, &name, gw, mtu).await.map(|_| ())
        })
        .await
    }

    async fn create_veth(
        &mut self,
        host_ifname: String,
        pod_ifname: String,
        mtu: u32,
    ) -> Result<wit_netlink::Veth, WitError> {
        let node = self.scope("netlink", "update")?;
        if !valid_ifname(&host_ifname) || !host_ifname.starts_with(&node.veth_prefix) {
            return Err(self.refuse(
                &node,
                format!(
                    "create-veth: the host end {host_ifname:?} must be an interface name starting with {:?}",
                    node.veth_prefix
                ),
            ));
        }
        if !valid_ifname(&pod_ifname) {
            return Err(bad_request(format!(
                "{pod_ifname:?} is not an interface name"
            )));
        }
        if mtu > 65_535 {
            return Err(bad_request(format!("MTU {mtu} is out of range")));
        }
        let nh = self.node_handle(&node).await?;
        let ph = self.must_pod_handle().await?;
        let netns_path = self.call()?.sandbox.netns.clone();
        let bridge_name = node.bridge.clone();
        let bridge = self
            .bounded("looking up the bridge", async {
                links::get(&nh, &bridge_name).await
            })
            .await?
            .filter(|l| l.kind.as_deref() == Some("bridge"))
            .ok_or_else(|| {
                err(
                    409,
                    "Conflict",
                    format!(
                        "the bridge {} does not exist (ensure-bridge first)",
                        node.bridge
                    ),
                )
            })?;
        let exists = self
            .bounded("looking up the host end", async {
                links::get(&nh, &host_ifname).await
            })
            .await?;
        if exists.is_some() {
            return Err(err(
                409,
                "AlreadyExists",
                format!("link {host_ifname} exists"),
            ));
        }
        let in_pod = self
            .bounded("looking up the pod end", async {
                links::get(&ph, &pod_ifname).await
            })
            .await?;
        if in_pod.is_some() {
            return Err(err(
                409,
                "AlreadyExists",
                format!("the sandbox already has a link {pod_ifname}"),
            ));
        }
        let tmp = format!("tugt{:08x}", rand::random::<u32>());
        let mtu = if mtu == 0 { bridge.mtu } else { mtu };
        let pod_end = self
            .bounded("create-veth", async {
                let file = std::fs::File::open(&netns_path)?;
                use std::os::fd::AsRawFd;
                links::create_veth(
                    &nh,
                    &ph,
                    &host_ifname,
                    &tmp,
                    &pod_ifname,
                    bridge.index,
                    mtu,
                    file.as_raw_fd(),
                )
                .await
            })
            .await?;
        Ok(wit_netlink::Veth {
            host_ifname,
            pod_mac: links::format_mac(&pod_end.mac),
        })
    }

    async fn delete_link(&mut self, host_ifname: String) -> Result<bool, WitError> {
        let node = self.scope("netlink", "update")?;
        if !valid_ifname(&host_ifname) || !host_ifname.starts_with(&node.veth_prefix) {
            return Err(self.refuse(
                &node,
                format!(
                    "delete-link {host_ifname:?}: only host-side veths starting with {:?} may be deleted",
                    node.veth_prefix
                ),
            ));
        }
        let h = self.node_handle(&node).await?;
        let link = self
            .bounded("looking up the link", async {
                links::get(&h, &host_ifname).await
            })
            .await?;
        let Some(link) = link else {
            return Ok(false);
        };
        if !links::is_veth(&link) {
            return Err(self.refuse(&node, format!("delete-link {host_ifname:?}: not a veth")));
        }
        self.bounded("delete-link", async { links::delete(&h, link.index).await })
            .await?;
        Ok(true)
    }

    async fn pod_link_addresses(
        &mut self,
        ifname: String,
    ) -> Result<Option<Vec<String>>, WitError> {
        self.scope("netlink", "get")?;
        if !valid_ifname(&ifname) {
            return Err(bad_request(format!("{ifname:?} is not an interface name")));
        }
        let Some(h) = self.pod_handle().await? else {
            return Ok(None);
        };
        let link = self
            .bounded("looking up the pod's link", async {
                links::get(&h, &ifname).await
            })
            .await?;
        let Some(link) = link else {
            return Ok(None);
        };
        let addrs = self
            .bounded("listing addresses", async {
                links::addresses(&h, link.index).await
            })
            .await?;
        Ok(Some(addrs.iter().map(Cidr::to_string).collect()))
    }

    async fn pod_add_address(&mut self, ifname: String, address: String) -> Result<(), WitError> {
        self.scope("netlink", "update")?;
        let cidr = parse_cidr(&address)?;
        let link = self.pod_link(&ifname).await?;
        let h = self.must_pod_handle().await?;
        self.bounded("pod-add-address", async {
            links::add_address(&h, link.index, cidr).await
        })
        .await
    }

    async fn pod_link_up(&mut self, ifname: String) -> Result<(), WitError> {
        self.scope("netlink", "update")?;
        let link = self.pod_link(&ifname).await?;
        let h = self.must_pod_handle().await?;
        self.bounded("pod-link-up", async { links::set_up(&h, link.index).await })
            .await
    }

    async fn pod_add_route(
        &mut self,
        destination: String,
        gateway: Option<String>,
        ifname: String,
    ) -> Result<(), WitError> {
        self.scope("netlink", "update")?;
        let dest = parse_cidr(&destination)?;
        let gw = match gateway {
            Some(g) => Some(
                g.parse::<IpAddr>()
                    .map_err(|_| bad_request(format!("{g:?} is not an IP address")))?,
            ),
            None => None,
        };
        let link = self.pod_link(&ifname).await?;
        let h = self.must_pod_handle().await?;
        self.bounded("pod-add-route", async {
            links::add_route(&h, dest, gw, link.index).await
        })
        .await
    }

    async fn pod_delete_link(&mut self, ifname: String) -> Result<bool, WitError> {
        self.scope("netlink", "update")?;
        if !valid_ifname(&ifname) {
            return Err(bad_request(format!("{ifname:?} is not an interface name")));
        }
        let Some(h) = self.pod_handle().await? else {
            return Ok(false);
        };
        let link = self
            .bounded("looking up the pod's link", async {
                links::get(&h, &ifname).await
            })
            .await?;
        let Some(link) = link else {
            return Ok(false);
        };
        self.bounded("pod-delete-link", async {
            links::delete(&h, link.index).await
        })
        .await?;
        Ok(true)
    }

    async fn ensure_masquerade(
        &mut self,
        source: String,
        exclude: Vec<String>,
    ) -> Result<(), WitError> {
        let node = self.scope("netlink", "update")?;
        let src = parse_cidr(&source)?.network();
        if !node.pod_cidrs.iter().any(|c| c.contains_net(&src)) {
            return Err(self.refuse(
                &node,
                format!("ensure-masquerade: {source} is outside the node's pod CIDRs"),
            ));
        }
        if exclude.len() > 64 {
            return Err(bad_request("at most 64 excluded CIDRs"));
        }
        let exclude = exclude
            .iter()
            .map(|e| parse_cidr(e).map(|c| c.network()))
            .collect::<Result<Vec<_>, _>>()?;
        let masq = node.masquerade.clone();
        self.bounded("ensure-masquerade", async move {
            masq.ensure(src, exclude).await
        })
        .await
    }
}

fn check_key(key: &str) -> Result<(), WitError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(bad_request(format!(
            "keys are at most {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), WitError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(bad_request(format!(
            "values are at most {MAX_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

impl wit_ipam::Host for NetworkCtx {
    async fn get(&mut self, key: String) -> Result<Option<String>, WitError> {
        let node = self.scope("ipam", "get")?;
        check_key(&key)?;
        Ok(node.ipam.get(&key))
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), WitError> {
        let node = self.scope("ipam", "update")?;
        check_key(&key)?;
        check_value(&value)?;
        node.ipam.set(&key, &value).map_err(internal)
    }

    async fn delete(&mut self, key: String) -> Result<bool, WitError> {
        let node = self.scope("ipam", "delete")?;
        check_key(&key)?;
        node.ipam.delete(&key).map_err(internal)
    }

    async fn list_prefix(&mut self, prefix: String) -> Result<Vec<(String, String)>, WitError> {
        let node = self.scope("ipam", "get")?;
        check_key(&prefix)?;
        Ok(node.ipam.list_prefix(&prefix))
    }

    async fn compare_and_set(
        &mut self,
        key: String,
        expected: Option<String>,
        value: Option<String>,
    ) -> Result<bool, WitError> {
        let node = self.scope("ipam", "update")?;
        check_key(&key)?;
        if let Some(v) = &value {
            check_value(v)?;
        }
        node.ipam
            .compare_and_set(&key, expected.as_deref(), value.as_deref())
            .map_err(internal)
    }
}

impl wit_cni::Host for NetworkCtx {
    async fn exec(
        &mut self,
        plugin_type: String,
        command: String,
        config: String,
    ) -> Result<String, wit_cni::ExecError> {
        let node = self
            .scope("cni", "create")
            .map_err(wit_cni::ExecError::Host)?;
        let call = self.call().map_err(wit_cni::ExecError::Host)?;
        let s = &call.sandbox;
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            s.namespace, s.name, s.sandbox_id, s.pod_uid
        );
        let timeout = call.deadline.saturating_duration_since(Instant::now());
        let result = cni::exec(cni::CniCall {
            bin_dirs: &node.cni_bin_dirs,
            node_netns: node.node_netns.as_deref(),
            plugin_type: &plugin_type,
            command: &command,
            container_id: &s.sandbox_id,
            netns: &s.netns,
            ifname: &s.ifname,
            args,
            config: &config,
            timeout,
        })
        .await;
        result.map_err(|f| match f {
            CniFailure::Host { code, message } => {
                if code == 403 {
                    tracing::warn!(plugin = %node.plugin, "network host call refused: {message}");
                }
                let reason = match code {
                    400 => "BadRequest",
                    403 => "Forbidden",
                    404 => "NotFound",
                    504 => "Timeout",
                    _ => "InternalError",
                };
                wit_cni::ExecError::Host(err(code, reason, message))
            }
            CniFailure::Plugin { code, msg, details } => {
                wit_cni::ExecError::Plugin(wit_cni::CniError { code, msg, details })
            }
        })
    }
}
