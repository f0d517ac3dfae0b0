//! Built-in network plugin `bridge`: the node's pods on one Linux bridge (default `tug0`),
//! like the CNI `bridge` + `host-local` pair.
//!
//! - The bridge carries the gateway, the first address of the node's pod CIDR
//!   (`10.42.0.1/24` for `10.42.0.0/24`).
//! - Each pod gets a veth: the host end `tugv<8 hex of a hash of the sandbox id>` on the
//!   bridge, the pod end `eth0` with the pod's address, and a default route via the
//!   gateway; `lo` is brought up.
//! - Addresses are allocated host-local style in the host's `ipam-store`: the next free
//!   address after the last one handed out, skipping the network, the gateway and the
//!   broadcast address; claims are compare-and-set, so concurrent calls never share one.
//!   Keys: `ip/<addr>` → sandbox id, `sandbox/<id>` → address, `last/<cidr>`.
//! - Traffic from the pod CIDR to outside the cluster CIDR is masqueraded (config
//!   `masquerade`, default true).
//! - `setup` is idempotent (a sandbox that already has its address and link gets them
//!   back); `teardown` needs only the sandbox id (works after restarts and when the netns
//!   is gone).
//!
//! Config (all optional): `bridge` (filled in by the host), `vethPrefix` (default
//! `tugv`), `mtu` (default 1500, or the sandbox's MTU hint), `masquerade` (default true).

use std::net::Ipv4Addr;

use serde_json::Value;

wit_bindgen::generate!({
    world: "network",
    path: "../../wit",
});

use exports::tugboat::plugin::network_plugin::{Guest, PodNetwork, PodSandbox};
use tugboat::plugin::types::Error as HostError;
use tugboat::plugin::{ipam_store as ipam, netlink};

/// The configuration, parsed once per instance in `init`.
#[derive(Debug, Clone)]
struct Config {
    bridge: String,
    veth_prefix: String,
    mtu: u32,
    masquerade: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bridge: "tug0".into(),
            veth_prefix: "tugv".into(),
            mtu: 1500,
            masquerade: true,
        }
    }
}

thread_local! {
    static CONFIG: std::cell::RefCell<Config> = std::cell::RefCell::new(Config::default());
}

fn config() -> Config {
    CONFIG.with(|c| c.borrow().clone())
}

fn host_err(what: &str, e: HostError) -> String {
    format!("{what}: {} ({}): {}", e.reason, e.code, e.message)
}

/// An IPv4 network.
#[derive(Debug, Clone, Copy)]
struct Net4 {
    addr: u32,
    prefix: u8,
}

impl Net4 {
    fn parse(s: &str) -> Result<Net4, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR notation"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{s:?}: not an IPv4 address (this plugin is IPv4 only)"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 30)
            .ok_or_else(|| format!("{s:?}: the prefix must be at most /30"))?;
        let mask = Self::mask_of(prefix);
        Ok(Net4 {
            addr: u32::from(addr) & mask,
            prefix,
        })
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    fn broadcast(&self) -> u32 {
        self.addr | !Self::mask_of(self.prefix)
    }

    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr + 1)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask_of(self.prefix) == self.addr
    }

    fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

/// FNV-1a, for short stable link names.
fn fnv32(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn host_ifname(cfg: &Config, sandbox_id: &str) -> String {
    format!("{}{:08x}", cfg.veth_prefix, fnv32(sandbox_id))
}

fn pod_net(s: &PodSandbox) -> Result<Net4, String> {
    let first = s
        .pod_cidrs
        .iter()
        .find(|c| !c.contains(':'))
        .ok_or("the node has no IPv4 pod CIDR")?;
    Net4::parse(first)
}

/// The address allocated to the sandbox, if any.
fn allocated(sandbox_id: &str) -> Result<Option<Ipv4Addr>, String> {
    let v = ipam::get(&format!("sandbox/{sandbox_id}")).map_err(|e| host_err("ipam get", e))?;
    Ok(v.and_then(|v| v.parse().ok()))
}

/// Claims the next free address of `net` for the sandbox.
fn allocate(net: &Net4, sandbox_id: &str) -> Result<Ipv4Addr, String> {
    let used: std::collections::HashSet<String> = ipam::list_prefix("ip/")
        .map_err(|e| host_err("ipam list", e))?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let last_key = format!("last/{}", net.cidr());
    let last: Option<u32> = ipam::get(&last_key)
        .map_err(|e| host_err("ipam get", e))?
        .and_then(|v| v.parse::<Ipv4Addr>().ok())
        .map(u32::from);
    // Usable: network+2 (after the gateway) ..= broadcast-1.
    let first = net.addr + 2;
    let end = net.broadcast() - 1;
    if first > end {
        return Err(format!("the pod CIDR {} has no usable address", net.cidr()));
    }
    let count = end - first + 1;
    let start = match last {
        Some(l) if l >= first && l < end => l + 1,
        _ => first,
    };
    for i in 0..count {
        let ip = Ipv4Addr::from(first + (start - first + i) % count);
        let key = format!("ip/{ip}");
        if used.contains(&key) {
            continue;
        }
        let claimed = ipam::compare_and_set(&key, None, Some(sandbox_id))
            .map_err(|e| host_err("ipam claim", e))?;
        if !claimed {
            continue;
        }
        ipam::set(&format!("sandbox/{sandbox_id}"), &ip.to_string())
            .map_err(|e| host_err("ipam set", e))?;
        ipam::set(&last_key, &ip.to_string()).map_err(|e| host_err("ipam set", e))?;
        return Ok(ip);
    }
    Err(format!("the pod CIDR {} is exhausted", net.cidr()))
}

/// Releases the sandbox's address (no error when it has none).
fn release(sandbox_id: &str) -> Result<(), String> {
    if let Some(ip) = allocated(sandbox_id)? {
        ipam::compare_and_set(&format!("ip/{ip}"), Some(sandbox_id), None)
            .map_err(|e| host_err("ipam release", e))?;
    }
    ipam::delete(&format!("sandbox/{sandbox_id}")).map_err(|e| host_err("ipam delete", e))?;
    Ok(())
}

struct Bridge;

impl Bridge {
    fn attach(
        cfg: &Config,
        s: &PodSandbox,
        net: &Net4,
        ip: Ipv4Addr,
    ) -> Result<PodNetwork, String> {
        let gw = net.gateway();
        let address = format!("{ip}/{}", net.prefix);
        let mtu = if s.mtu > 0 { s.mtu } else { cfg.mtu };
        let answer = PodNetwork {
            addresses: vec![address.clone()],
            gateway: Some(gw.to_string()),
            routes: vec!["0.0.0.0/0".into()],
        };
        let present = netlink::pod_link_addresses(&s.ifname)
            .map_err(|e| host_err("reading the pod's link", e))?;
        let host_if = host_ifname(cfg, &s.sandbox_id);
        match present {
            Some(addrs) if addrs.contains(&address) => {}
            other => {
                if other.is_some() {
                    netlink::pod_delete_link(&s.ifname)
                        .map_err(|e| host_err("removing a stale pod link", e))?;
                }
                netlink::delete_link(&host_if).map_err(|e| host_err("removing a stale veth", e))?;
                netlink::create_veth(&host_if, &s.ifname, mtu)
                    .map_err(|e| host_err("creating the veth", e))?;
                netlink::pod_add_address(&s.ifname, &address)
                    .map_err(|e| host_err("adding the pod's address", e))?;
            }
        }
        netlink::pod_link_up(&s.ifname).map_err(|e| host_err("bringing the pod's link up", e))?;
        netlink::pod_link_up("lo").map_err(|e| host_err("bringing lo up", e))?;
        netlink::pod_add_route("0.0.0.0/0", Some(&gw.to_string()), &s.ifname)
            .map_err(|e| host_err("adding the default route", e))?;
        Ok(answer)
    }
}

impl Guest for Bridge {
    fn init(config: String) -> Result<(), String> {
        let v: Value = serde_json::from_str(&config).map_err(|e| format!("config: {e}"))?;
        let mut cfg = self::config();
        if let Some(b) = v.get("bridge").and_then(Value::as_str) {
            cfg.bridge = b.to_string();
        }
        if let Some(p) = v.get("vethPrefix").and_then(Value::as_str) {
            if p.is_empty() || p.len() > 6 {
                return Err("config.vethPrefix must be 1 to 6 characters".into());
            }
            cfg.veth_prefix = p.to_string();
        }
        if let Some(m) = v.get("mtu").and_then(Value::as_u64) {
            cfg.mtu = u32::try_from(m)
                .ok()
                .filter(|m| (576..=65535).contains(m))
                .ok_or("config.mtu must be between 576 and 65535")?;
        }
        if let Some(m) = v.get("masquerade").and_then(Value::as_bool) {
            cfg.masquerade = m;
        }
        CONFIG.with(|c| *c.borrow_mut() = cfg);
        Ok(())
    }

    fn setup(s: PodSandbox) -> Result<PodNetwork, String> {
        let cfg = config();
        let net = pod_net(&s)?;
        let gw = format!("{}/{}", net.gateway(), net.prefix);
        let mtu = if s.mtu > 0 { s.mtu } else { cfg.mtu };
        netlink::ensure_bridge(&cfg.bridge, &gw, mtu).map_err(|e| host_err("ensure-bridge", e))?;
        if cfg.masquerade {
            netlink::ensure_masquerade(&net.cidr(), std::slice::from_ref(&s.cluster_cidr))
                .map_err(|e| host_err("ensure-masquerade", e))?;
        }
        let (ip, fresh) = match allocated(&s.sandbox_id)? {
            Some(ip) if net.contains(ip) => (ip, false),
            Some(_) => {
                // The node's CIDR changed: start over.
                release(&s.sandbox_id)?;
                (allocate(&net, &s.sandbox_id)?, true)
            }
            None => (allocate(&net, &s.sandbox_id)?, true),
        };
        match Self::attach(&cfg, &s, &net, ip) {
            Ok(n) => Ok(n),
            Err(e) => {
                if fresh {
                    let _ = netlink::delete_link(&host_ifname(&cfg, &s.sandbox_id));
                    let _ = release(&s.sandbox_id);
                }
                Err(e)
            }
        }
    }

    fn teardown(s: PodSandbox) -> Result<(), String> {
        let cfg = config();
        netlink::delete_link(&host_ifname(&cfg, &s.sandbox_id))
            .map_err(|e| host_err("deleting the veth", e))?;
        // The pod end went with the host end; a leftover (e.g. a half-done setup) goes now.
        netlink::pod_delete_link(&s.ifname).map_err(|e| host_err("deleting the pod's link", e))?;
        release(&s.sandbox_id)
    }

    fn check(s: PodSandbox) -> Result<(), String> {
        let net = pod_net(&s)?;
        let ip = allocated(&s.sandbox_id)?.ok_or("the sandbox has no address allocated")?;
        let address = format!("{ip}/{}", net.prefix);
        match netlink::pod_link_addresses(&s.ifname)
            .map_err(|e| host_err("reading the pod's link", e))?
        {
            Some(addrs) if addrs.contains(&address) => Ok(()),
            Some(addrs) => Err(format!("{} has {addrs:?}, not {address}", s.ifname)),
            None => Err(format!("the sandbox has no link {}", s.ifname)),
        }
    }
}

// The exports exist only in the component (a native build is for unit tests).
#[cfg(target_arch = "wasm32")]
export!(Bridge);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let n = Net4::parse("10.42.3.0/24").unwrap();
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 42, 3, 1));
        assert_eq!(Ipv4Addr::from(n.broadcast()), Ipv4Addr::new(10, 42, 3, 255));
        assert!(n.contains(Ipv4Addr::new(10, 42, 3, 7)));
        assert!(!n.contains(Ipv4Addr::new(10, 42, 4, 7)));
        assert_eq!(Net4::parse("10.42.3.9/24").unwrap().cidr(), "10.42.3.0/24");
        assert!(Net4::parse("10.0.0.0/31").is_err());
        assert!(Net4::parse("fd00::/64").is_err());
        let cfg = config();
        let a = host_ifname(&cfg, "abc");
        assert!(a.starts_with("tugv") && a.len() == 12);
        assert_ne!(a, host_ifname(&cfg, "abd"));
    }
}
