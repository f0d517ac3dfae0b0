//! The netlink operations behind the `netlink` host interface, each on a connection into
//! one netns (see [`super::netns`]).

use std::net::IpAddr;
use std::os::fd::RawFd;

use anyhow::{Context, Result, anyhow, bail};
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo as NlLinkInfo};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::cidr::Cidr;

/// What the host needs to know of a link.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, … (`None` for links without a kind, e.g. `lo`).
    pub kind: Option<String>,
    /// The index of the bridge it is attached to.
    pub controller: Option<u32>,
    pub mtu: u32,
    pub mac: Vec<u8>,
}

/// The errno of a netlink error, if it is one.
pub(crate) fn errno(e: &anyhow::Error) -> Option<i32> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<rtnetlink::Error>() {
            Some(rtnetlink::Error::NetlinkError(m)) => m.code.map(|c| -c.get()),
            _ => None,
        })
}

/// `aa:bb:…` of a hardware address.
pub(crate) fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The link called `name`, if any.
pub(crate) async fn get(h: &Handle, name: &str) -> Result<Option<Link>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    let msg = match links.try_next().await {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(None),
        Err(e) => {
            let e = anyhow::Error::from(e);
            if errno(&e) == Some(libc::ENODEV) {
                return Ok(None);
            }
            return Err(e.context(format!("looking up link {name}")));
        }
    };
    let mut link = Link {
        index: msg.header.index,
        name: name.to_string(),
        kind: None,
        controller: None,
        mtu: 0,
        mac: Vec::new(),
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Controller(i) => link.controller = Some(i),
            LinkAttribute::Mtu(m) => link.mtu = m,
            LinkAttribute::Address(a) => link.mac = a,
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(link))
}

async fn must_get(h: &Handle, name: &str) -> Result<Link> {
    get(h, name)
        .await?
        .ok_or_else(|| anyhow!("link {name} does not exist"))
}

/// Brings a link up.
pub(crate) async fn set_up(h: &Handle, index: u32) -> Result<()> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .context("setting the link up")
}

/// Creates the bridge `name` if missing (an existing link of that name must be a bridge),
/// sets its MTU (0: leaves it), adds `gateway` and brings it up.
pub(crate) async fn ensure_bridge(h: &Handle, name: &str, gateway: Cidr, mtu: u32) -> Result<Link> {
    let link = match get(h, name).await? {
        Some(l) => {
            if l.kind.as_deref() != Some("bridge") {
                bail!(
                    "link {name} exists and is not a bridge (kind {})",
                    l.kind.as_deref().unwrap_or("none")
                );
            }
            l
        }
        None => {
            let mut b = LinkBridge::new(name);
            if mtu > 0 {
                b = b.mtu(mtu);
            }
            match h.link().add(b.build()).execute().await {
                Ok(()) => {}
                Err(e) => {
                    let e = anyhow::Error::from(e);
                    // Another call created it meanwhile.
                    if errno(&e) != Some(libc::EEXIST) {
                        return Err(e.context(format!("creating bridge {name}")));
                    }
                }
            }
            must_get(h, name).await?
        }
    };
    if mtu > 0 && link.mtu != mtu {
        h.link()
            .set(LinkUnspec::new_with_index(link.index).mtu(mtu).build())
            .execute()
            .await
            .with_context(|| format!("setting the MTU of {name}"))?;
    }
    add_address(h, link.index, gateway)
        .await
        .with_context(|| format!("adding {gateway} to {name}"))?;
    set_up(h, link.index)
        .await
        .with_context(|| format!("bringing {name} up"))?;
    Ok(link)
}

/// Removes `cidr` from link `index` (nothing if it does not have it).
pub(crate) async fn remove_address(h: &Handle, index: u32, cidr: Cidr) -> Result<()> {
    let mut stream = h.address().get().set_link_index_filter(index).execute();
    let mut found = None;
    while let Some(msg) = stream.try_next().await.context("listing addresses")? {
        if msg.header.index == index && message_cidr(&msg) == Some(cidr) {
            found = Some(msg);
            break;
        }
    }
    drop(stream);
    if let Some(msg) = found {
        h.address()
            .del(msg)
            .execute()
            .await
            .with_context(|| format!("removing address {cidr}"))?;
    }
    Ok(())
}

/// The addresses of link `index`.
pub(crate) async fn addresses(h: &Handle, index: u32) -> Result<Vec<Cidr>> {
    let mut out = Vec::new();
    let mut stream = h.address().get().set_link_index_filter(index).execute();
    while let Some(msg) = stream.try_next().await.context("listing addresses")? {
        if msg.header.index != index {
            continue;
        }
        out.extend(message_cidr(&msg));
    }
    Ok(out)
}

/// The address of an address message (its local address, else its peer's) with its prefix.
fn message_cidr(msg: &rtnetlink::packet_route::address::AddressMessage) -> Option<Cidr> {
    let mut addr = None;
    for a in &msg.attributes {
        match a {
            AddressAttribute::Local(ip) => addr = Some(*ip),
            AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
            _ => {}
        }
    }
    Some(Cidr {
        addr: addr?,
        prefix: msg.header.prefix_len,
    })
}

/// Adds an address to link `index` (no error when it has it).
pub(crate) async fn add_address(h: &Handle, index: u32, cidr: Cidr) -> Result<()> {
    match h
        .address()
        .add(index, cidr.addr, cidr.prefix)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = anyhow::Error::from(e);
            if errno(&e) == Some(libc::EEXIST) {
                Ok(())
            } else {
                Err(e.context(format!("adding address {cidr}")))
            }
        }
    }
}

/// Adds a route (no error when it exists).
pub(crate) async fn add_route(
    h: &Handle,
    destination: Cidr,
    gateway: Option<IpAddr>,
    index: u32,
) -> Result<()> {
    let dest = destination.network();
    let msg = match (dest.addr, gateway) {
        (IpAddr::V4(d), gw) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(d, dest.prefix)
                .output_interface(index);
            match gw {
                Some(IpAddr::V4(g)) => b = b.gateway(g),
                Some(IpAddr::V6(_)) => bail!("an IPv4 route cannot go via an IPv6 gateway"),
                None => b = b.scope(RouteScope::Link),
            }
            b.build()
        }
        (IpAddr::V6(d), gw) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(d, dest.prefix)
                .output_interface(index);
            match gw {
                Some(IpAddr::V6(g)) => b = b.gateway(g),
                Some(IpAddr::V4(_)) => bail!("an IPv6 route cannot go via an IPv4 gateway"),
                None => b = b.scope(RouteScope::Link),
            }
            b.build()
        }
    };
    match h.route().add(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = anyhow::Error::from(e);
            if errno(&e) == Some(libc::EEXIST) {
                Ok(())
            } else {
                Err(e.context(format!("adding route to {dest}")))
            }
        }
    }
}

/// Deletes link `index`.
pub(crate) async fn delete(h: &Handle, index: u32) -> Result<()> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = anyhow::Error::from(e);
            if errno(&e) == Some(libc::ENODEV) {
                Ok(())
            } else {
                Err(e.context("deleting the link"))
            }
        }
    }
}

/// Creates a veth pair in the node netns (`node`): `host_ifname` attached to the bridge
/// `bridge_index` and up; its peer is created as `tmp_peer`, moved into the pod netns
/// (`pod_netns_fd`), renamed `pod_ifname`, given `mtu` and brought up there (through
/// `pod`). The host end is in hairpin mode. Returns the pod end. On failure, the host end is removed again.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn create_veth(
    node: &Handle,
    pod: &Handle,
    host_ifname: &str,
    tmp_peer: &str,
    pod_ifname: &str,
    bridge_index: u32,
    mtu: u32,
    pod_netns_fd: RawFd,
) -> Result<Link> {
    let mut b = LinkVeth::new(host_ifname, tmp_peer);
    if mtu > 0 {
        b = b.mtu(mtu);
    }
    node.link()
        .add(b.build())
        .execute()
        .await
        .with_context(|| format!("creating veth {host_ifname}"))?;
    let result = async {
        let host = must_get(node, host_ifname).await?;
        let peer = must_get(node, tmp_peer).await?;
        node.link()
            .set(
                LinkUnspec::new_with_index(host.index)
                    .controller(bridge_index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .with_context(|| format!("attaching {host_ifname} to the bridge"))?;
        // Hairpin: a pod reaching itself through a Service (DNAT back to its own address)
        // gets the frame back out of its own port, as with kubenet's `hairpin-veth`.
        node.link()
            .set_port(LinkBridgePort::new(host.index).hairpin(true).build())
            .execute()
            .await
            .with_context(|| format!("setting hairpin mode on {host_ifname}"))?;
        node.link()
            .set(
                LinkUnspec::new_with_index(peer.index)
                    .setns_by_fd(pod_netns_fd)
                    .build(),
            )
            .execute()
            .await
            .context("moving the veth's peer into the pod netns")?;
        let moved = must_get(pod, tmp_peer).await?;
        let mut set = LinkUnspec::new_with_index(moved.index).name(pod_ifname.to_string());
        if mtu > 0 {
            set = set.mtu(mtu);
        }
        pod.link()
            .set(set.build())
            .execute()
            .await
            .with_context(|| format!("renaming the veth's peer to {pod_ifname}"))?;
        set_up(pod, moved.index).await?;
        must_get(pod, pod_ifname).await
    }
    .await;
    if result.is_err()
        && let Ok(Some(l)) = get(node, host_ifname).await
    {
        let _ = delete(node, l.index).await;
    }
    result
}

/// Whether a link kind is a veth.
pub(crate) fn is_veth(link: &Link) -> bool {
    link.kind.as_deref() == Some(InfoKind::Veth.to_string().as_str())
}
