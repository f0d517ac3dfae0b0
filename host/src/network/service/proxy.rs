//! The Service proxy: kube-proxy's job done with one nftables table.
//!
//! [`ServiceProxy`] follows Services and EndpointSlices through the engine's shared
//! informers and programs one table of its own (family `ip`, name [`ProxyConfig::table`])
//! through the `nft` binary's JSON interface (the `nftables` crate's schema), each sync
//! one atomic `nft -j -f -` transaction. The first sync (and the first after a failure)
//! replaces the whole table (`add table; delete table; add table …`), so nothing of an
//! older ruleset survives; later syncs rewrite only the chains of the Service ports that
//! changed and the two lookup chains ([`build_update`]), which keeps a sync at 1,000
//! Services to milliseconds instead of the ~0.4 s the kernel takes to replace a table of
//! 3,000 chains. With no Service left to program, the table is deleted.
//!
//! The table (`T` = the table name, `K` = a Service port's key `ns/name/proto/port`):
//!
//! ```text
//! chain nat-prerouting  { type nat hook prerouting priority dstnat;  jump services }
//! chain nat-output      { type nat hook output priority dstnat;      jump services }
//! chain nat-postrouting { type nat hook postrouting priority srcnat;
//!                         meta mark & 0x4000 != 0  mark ^= 0x4000  masquerade fully-random
//!                         [bridge] ct status dnat iifname B oifname B masquerade }
//! chain filter-input/-forward/-output { type filter … priority -110;
//!                         ct state new jump no-endpoints }
//! chain services        { ip daddr . meta l4proto . th dport vmap { CIP . tcp . 80 : goto svc-K, … }
//!                         ip daddr != 127.0.0.0/8 fib daddr type local
//!                           meta l4proto . th dport vmap { tcp . 30080 : goto ext-K, … } }
//! chain no-endpoints    { the same two lookups for Service ports without a ready
//!                         endpoint, each going to reject-chain }
//! chain reject-chain    { meta l4proto tcp reject with tcp reset; reject }
//! chain ext-K           { mark 0x4000 (masquerade NodePort traffic); goto svc-K }
//! chain svc-K           { [ip saddr != CLUSTER_CIDR mark 0x4000]
//!                         numgen random mod N vmap { 0 : goto ep-K-0, … } }
//! chain ep-K-i          { ip saddr EP mark 0x4000 (hairpin); meta l4proto tcp dnat to EP:PORT }
//! ```
//!
//! - ClusterIP: a random ready endpoint per new connection, for traffic from pods
//!   (prerouting) and from the node itself (output).
//! - NodePort (and LoadBalancer's node ports): on every local address of the node
//!   (`fib daddr type local`) except loopback (127.0.0.0/8 would need `route_localnet`).
//! - No ready endpoint: new connections are rejected (TCP reset, ICMP port unreachable
//!   otherwise) in filter chains that run before NAT, so clients fail at once instead of
//!   timing out.
//! - Masquerade: NodePort traffic; a pod reaching itself through its Service (hairpin);
//!   ClusterIP traffic from outside [`ProxyConfig::cluster_cidr`] (when set); and DNATed
//!   traffic entering and leaving through [`ProxyConfig::bridge`] (pods on one bridge
//!   would otherwise answer each other directly, past the node's un-DNAT, unless
//!   `br_netfilter` is loaded).
//! - Skipped: headless Services (`clusterIP: None`), ExternalName, Services annotated
//!   `tugboat.dev/node-local-dns: "true"` (the node's DNS server answers their IP itself),
//!   IPv6 addresses. Not implemented: sessionAffinity, externalIPs, load balancer IPs,
//!   `externalTrafficPolicy`/`internalTrafficPolicy: Local` (treated as Cluster), and the
//!   cleanup of UDP conntrack entries of removed endpoints.
//!
//! Syncs are rate limited: the first change after a quiet period is applied after
//! [`ProxyConfig::coalesce`] (a few ms, so a Service and its EndpointSlice created together
//! land in one sync); later ones wait until [`ProxyConfig::min_sync_interval`] has passed
//! since the previous sync. A ruleset identical to the one applied is not applied again.
//!
//! **Network namespace.** The `nft` child process and the sysctl writes happen on a
//! dedicated thread, in [`ProxyConfig::netns`] when set (tests and the benchmark use it),
//! otherwise in the namespace the process is in. At start the proxy sets
//! `net.ipv4.ip_forward=1` there when [`ProxyConfig::set_sysctls`] is on (pods' traffic to
//! Services is forwarded).
//!
//! **Routing.** A connection from the node itself to a ClusterIP needs a route for the
//! Service CIDR before the output hook runs (connect() fails with ENETUNREACH otherwise):
//! the node needs one, e.g. `10.43.0.0/16 dev tug0` (or a default route).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nftables::batch::Batch;
use nftables::expr::{
    BinaryOperation, CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression,
    NgMode, Numgen, Payload, PayloadField, Prefix, SetItem, Verdict,
};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{
    JumpTarget, Mangle, Match, NAT, NATFlag, Operator, Reject, RejectType, Statement, VerdictMap,
};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::engine::informer::Informer;

/// The annotation that makes the proxy skip a Service (the node-local cluster DNS).
pub const NODE_LOCAL_DNS_ANNOTATION: &str = "tugboat.dev/node-local-dns";
/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The packet mark bit asking for masquerade (kube-proxy's).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// An IPv4 prefix (`10.42.0.0/16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        };
        Ipv4Addr::from(u32::from(self.addr) & mask)
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let c = Ipv4Cidr {
            addr: ip,
            prefix: self.prefix,
        };
        c.network() == self.network()
    }
}

impl FromStr for Ipv4Cidr {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| anyhow!("{s:?} is not an IPv4 CIDR (a.b.c.d/n)"))?;
        let addr: Ipv4Addr = a.parse().with_context(|| format!("address of {s:?}"))?;
        let prefix: u8 = p.parse().with_context(|| format!("prefix of {s:?}"))?;
        if prefix > 32 {
            bail!("prefix of {s:?} is over 32");
        }
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// How the proxy runs (see the [module](self) docs).
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The nftables table (family `ip`) the proxy owns.
    pub table: String,
    /// Program this network namespace (a path such as `/run/netns/NAME`) instead of the
    /// one the process is in.
    pub netns: Option<PathBuf>,
    /// The `nft` binary.
    pub nft: PathBuf,
    /// The pods' CIDR: ClusterIP traffic from outside it is masqueraded.
    pub cluster_cidr: Option<Ipv4Cidr>,
    /// The node's pod bridge: DNATed traffic in and out through it is masqueraded.
    pub bridge: Option<String>,
    /// Delay before the first sync after a quiet period (to batch related changes).
    pub coalesce: Duration,
    /// Least time between two syncs.
    pub min_sync_interval: Duration,
    /// Delay before retrying a failed sync.
    pub retry: Duration,
    /// Set `net.ipv4.ip_forward=1` at start.
    pub set_sysctls: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            table: "tugboat-proxy".into(),
            netns: None,
            nft: "nft".into(),
            cluster_cidr: None,
            bridge: None,
            coalesce: Duration::from_millis(5),
            min_sync_interval: Duration::from_millis(100),
            retry: Duration::from_secs(1),
            set_sysctls: true,
        }
    }
}

/// What the proxy has done (see [`ServiceProxy::subscribe`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyStatus {
    /// Rulesets applied (also the generation of what is in the kernel).
    pub syncs: u64,
    /// Of which whole-table replacements (the others rewrote only what changed).
    pub full_syncs: u64,
    /// Failed applies.
    pub failures: u64,
    /// How long the last apply took (building the ruleset and running `nft`).
    pub last_sync: Option<Duration>,
    /// Service ports programmed.
    pub service_ports: usize,
    /// Endpoints (Service port × ready endpoint) programmed.
    pub endpoints: usize,
    /// The Services informer's revision the kernel's rules reflect (the rules include
    /// every Service change up to it).
    pub services_revision: u64,
    /// The same for the EndpointSlices informer.
    pub endpoint_slices_revision: u64,
    /// The last apply's error, until an apply succeeds.
    pub last_error: Option<String>,
}

/// The L4 protocol of a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// nft's name.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One Service port as the proxy programs it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServicePort {
    /// `ns/name/proto/port-name-or-number`: unique, used in chain names.
    pub key: String,
    pub protocol: Protocol,
    pub cluster_ips: Vec<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Ready endpoints, sorted, without duplicates.
    pub endpoints: Vec<SocketAddrV4>,
}

fn skip_service(svc: &Value) -> bool {
    let annotated = svc
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(NODE_LOCAL_DNS_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true");
    let ty = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    annotated || ty == "ExternalName"
}

/// The cluster IPs (IPv4) of a Service; empty for a headless one.
pub fn cluster_ips(svc: &Value) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .filter(|a| !a.is_empty())
        .or_else(|| {
            svc.pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .map(|s| vec![s])
        })
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    ips.dedup();
    ips
}

fn name_ns(obj: &Value) -> (&str, &str) {
    (
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
}

/// The ready endpoints of one Service port named `port_name` (`""`: unnamed), from the
/// Service's EndpointSlices (IPv4 only; an endpoint's first address, as kube-proxy).
pub fn ready_endpoints(
    slices: &[&Value],
    port_name: &str,
    protocol: Protocol,
) -> Vec<SocketAddrV4> {
    let mut out = BTreeSet::new();
    for slice in slices {
        if slice.get("addressType").and_then(Value::as_str) != Some("IPv4") {
            continue;
        }
        let Some(port) = slice
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| {
                p.get("name").and_then(Value::as_str).unwrap_or("") == port_name
                    && Protocol::parse(p.get("protocol").and_then(Value::as_str)) == Some(protocol)
            })
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in slice
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // Kubernetes: a missing `ready` means ready.
            if ep.pointer("/conditions/ready").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            if let Some(ip) = ep
                .get("addresses")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<Ipv4Addr>().ok())
            {
                out.insert(SocketAddrV4::new(ip, port));
            }
        }
    }
    out.into_iter().collect()
}

/// What the proxy programs for these Services and EndpointSlices, sorted by key.
pub fn desired_ports(services: &[Arc<Value>], slices: &[Arc<Value>]) -> Vec<ServicePort> {
    let mut by_service: HashMap<(&str, &str), Vec<&Value>> = HashMap::new();
    for s in slices {
        let ns = name_ns(s).0;
        if let Some(svc) = s
            .pointer("/metadata/labels")
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .and_then(Value::as_str)
        {
            by_service.entry((ns, svc)).or_default().push(s);
        }
    }
    let mut out = Vec::new();
    for svc in services {
        if skip_service(svc) {
            continue;
        }
        let ips = cluster_ips(svc);
        if ips.is_empty() {
            continue; // headless (or not yet allocated)
        }
        let (ns, name) = name_ns(svc);
        let svc_slices = by_service.get(&(ns, name)).cloned().unwrap_or_default();
        for p in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(protocol) = Protocol::parse(p.get("protocol").and_then(Value::as_str)) else {
                continue;
            };
            let Some(port) = p
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|v| u16::try_from(v).ok())
            else {
                continue;
            };
            let port_name = p.get("name").and_then(Value::as_str).unwrap_or("");
            let node_port = p
                .get("nodePort")
                .and_then(Value::as_u64)
                .and_then(|v| u16::try_from(v).ok())
                .filter(|v| *v != 0);
            let key = format!(
                "{ns}/{name}/{}/{}",
                protocol.nft(),
                if port_name.is_empty() {
                    port.to_string()
                } else {
                    port_name.to_string()
                }
            );
            out.push(ServicePort {
                key,
                protocol,
                cluster_ips: ips.clone(),
                port,
                node_port,
                endpoints: ready_endpoints(&svc_slices, port_name, protocol),
            });
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.key == b.key);
    out
}

// ---- the nftables ruleset ----

fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(v.into().into())
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn concat(v: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(v))
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn goto(chain: &str) -> Statement<'static> {
    Statement::Goto(JumpTarget {
        target: chain.to_string().into(),
    })
}

fn jump(chain: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: chain.to_string().into(),
    })
}

fn vmap(key: Expression<'static>, items: Vec<(Expression<'static>, String)>) -> Statement<'static> {
    Statement::VerdictMap(VerdictMap {
        key,
        data: Expression::Named(NamedExpression::Set(
            items
                .into_iter()
                .map(|(k, chain)| {
                    SetItem::Mapping(
                        k,
                        Expression::Verdict(Verdict::Goto(JumpTarget {
                            target: chain.into(),
                        })),
                    )
                })
                .collect(),
        )),
    })
}

fn set_mark() -> Statement<'static> {
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
            meta(MetaKey::Mark),
            Expression::Number(MASQUERADE_MARK),
        ]))),
    })
}

fn fib_daddr_local() -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([FibFlag::Daddr]),
        })),
        Operator::EQ,
        s("local"),
    )
}

fn not_loopback() -> Statement<'static> {
    matches(
        payload("ip", "daddr"),
        Operator::NEQ,
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(s("127.0.0.0")),
            len: 8,
        })),
    )
}

fn ct_state_new() -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::CT(CT {
            key: "state".into(),
            family: None,
            dir: None,
        })),
        Operator::IN,
        s("new"),
    )
}

fn port_expr(p: u16) -> Expression<'static> {
    Expression::Number(u32::from(p))
}

/// The `ip daddr . l4proto . dport` and `l4proto . dport` (node port) lookups of `ports`,
/// each to the chain `target(port)`.
fn lookups(
    ports: &[&ServicePort],
    cluster_target: impl Fn(&ServicePort) -> String,
    node_target: impl Fn(&ServicePort) -> String,
) -> Vec<Vec<Statement<'static>>> {
    let mut rules = Vec::new();
    let mut by_ip = Vec::new();
    let mut by_node_port = Vec::new();
    for p in ports {
        for ip in &p.cluster_ips {
            by_ip.push((
                concat(vec![
                    s(ip.to_string()),
                    s(p.protocol.nft()),
                    port_expr(p.port),
                ]),
                cluster_target(p),
            ));
        }
        if let Some(np) = p.node_port {
            by_node_port.push((
                concat(vec![s(p.protocol.nft()), port_expr(np)]),
                node_target(p),
            ));
        }
    }
    if !by_ip.is_empty() {
        rules.push(vec![vmap(
            concat(vec![
                payload("ip", "daddr"),
                meta(MetaKey::L4proto),
                payload("th", "dport"),
            ]),
            by_ip,
        )]);
    }
    if !by_node_port.is_empty() {
        rules.push(vec![
            not_loopback(),
            fib_daddr_local(),
            vmap(
                concat(vec![meta(MetaKey::L4proto), payload("th", "dport")]),
                by_node_port,
            ),
        ]);
    }
    rules
}

type Rules = Vec<Vec<Statement<'static>>>;

/// The chains of one Service port with their rules, in creation order (the endpoint
/// chains before the chains that go to them).
fn port_chains(config: &ProxyConfig, p: &ServicePort) -> Vec<(String, Rules)> {
    if p.endpoints.is_empty() {
        return Vec::new(); // the no-endpoints lookup sends it to the reject chain
    }
    let mut out = Vec::new();
    let svc = format!("svc-{}", p.key);
    let mut targets = Vec::new();
    for (i, ep) in p.endpoints.iter().enumerate() {
        let epc = format!("ep-{}/{}", p.key, ep);
        out.push((
            epc.clone(),
            vec![
                // Hairpin: a pod reaching itself through the Service.
                vec![
                    matches(payload("ip", "saddr"), Operator::EQ, s(ep.ip().to_string())),
                    set_mark(),
                ],
                vec![
                    matches(meta(MetaKey::L4proto), Operator::EQ, s(p.protocol.nft())),
                    Statement::DNAT(Some(NAT {
                        addr: Some(s(ep.ip().to_string())),
                        family: None,
                        port: Some(port_expr(ep.port())),
                        flags: None,
                    })),
                ],
            ],
        ));
        targets.push((
            Expression::Number(u32::try_from(i).unwrap_or(u32::MAX)),
            epc,
        ));
    }
    let mut svc_rules: Rules = Vec::new();
    if let Some(cidr) = config.cluster_cidr {
        svc_rules.push(vec![
            matches(
                payload("ip", "saddr"),
                Operator::NEQ,
                Expression::Named(NamedExpression::Prefix(Prefix {
                    addr: Box::new(s(cidr.network().to_string())),
                    len: u32::from(cidr.prefix),
                })),
            ),
            set_mark(),
        ]);
    }
    if targets.len() == 1 {
        svc_rules.push(vec![goto(&targets[0].1)]);
    } else {
        let n = u32::try_from(targets.len()).unwrap_or(u32::MAX);
        svc_rules.push(vec![vmap(
            Expression::Named(NamedExpression::Numgen(Numgen {
                mode: NgMode::Random,
                ng_mod: n,
                offset: None,
            })),
            targets,
        )]);
    }
    out.push((svc.clone(), svc_rules));
    if p.node_port.is_some() {
        // NodePort traffic is masqueraded (the endpoint may answer through another node).
        out.push((format!("ext-{}", p.key), vec![vec![set_mark(), goto(&svc)]]));
    }
    out
}

/// The rules of the `services` and `no-endpoints` chains.
fn lookup_chains(ports: &[ServicePort]) -> (Rules, Rules) {
    let (with, without): (Vec<&ServicePort>, Vec<&ServicePort>) =
        ports.iter().partition(|p| !p.endpoints.is_empty());
    (
        lookups(
            &with,
            |p| format!("svc-{}", p.key),
            |p| format!("ext-{}", p.key),
        ),
        lookups(&without, |_| REJECT_CHAIN.into(), |_| REJECT_CHAIN.into()),
    )
}

const REJECT_CHAIN: &str = "reject-chain";

/// Builds one nft transaction on the proxy's table.
struct Tx {
    table: String,
    batch: Batch<'static>,
}

impl Tx {
    fn new(config: &ProxyConfig) -> Tx {
        Tx {
            table: config.table.clone(),
            batch: Batch::new(),
        }
    }

    fn table(&self) -> Table<'static> {
        Table {
            family: NfFamily::IP,
            name: self.table.clone().into(),
            handle: None,
        }
    }

    fn chain(&self, name: &str) -> Chain<'static> {
        Chain {
            family: NfFamily::IP,
            table: self.table.clone().into(),
            name: name.to_string().into(),
            ..Chain::default()
        }
    }

    fn add_chain(&mut self, name: &str) {
        let c = self.chain(name);
        self.batch.add(NfListObject::Chain(c));
    }

    fn add_base_chain(&mut self, name: &str, ty: NfChainType, hook: NfHook, prio: i32) {
        let c = Chain {
            _type: Some(ty),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(NfChainPolicy::Accept),
            ..self.chain(name)
        };
        self.batch.add(NfListObject::Chain(c));
    }

    fn flush_chain(&mut self, name: &str) {
        let c = self.chain(name);
        self.batch.add_cmd(NfCmd::Flush(FlushObject::Chain(c)));
    }

    fn delete_chain(&mut self, name: &str) {
        let c = self.chain(name);
        self.batch.delete(NfListObject::Chain(c));
    }

    fn add_rule(&mut self, chain: &str, expr: Vec<Statement<'static>>) {
        self.batch.add(NfListObject::Rule(Rule {
            family: NfFamily::IP,
            table: self.table.clone().into(),
            chain: chain.to_string().into(),
            expr: expr.into(),
            handle: None,
            index: None,
            comment: None,
        }));
    }

    fn add_rules(&mut self, chain: &str, rules: Rules) {
        for r in rules {
            self.add_rule(chain, r);
        }
    }

    fn done(self) -> Nftables<'static> {
        self.batch.to_nftables()
    }
}

/// The whole table for `ports` as one transaction that replaces whatever table of that
/// name exists (or only deletes it when `ports` is empty).
pub fn build_ruleset(config: &ProxyConfig, ports: &[ServicePort]) -> Nftables<'static> {
    let mut tx = Tx::new(config);
    let t = tx.table();
    tx.batch.add(NfListObject::Table(t.clone()));
    tx.batch.delete(NfListObject::Table(t.clone()));
    if ports.is_empty() {
        return tx.done();
    }
    tx.batch.add(NfListObject::Table(t));

    // Regular chains first (the base chains' rules refer to them).
    for name in ["services", "no-endpoints", REJECT_CHAIN] {
        tx.add_chain(name);
    }
    tx.add_rule(
        REJECT_CHAIN,
        vec![
            matches(meta(MetaKey::L4proto), Operator::EQ, s("tcp")),
            Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
        ],
    );
    tx.add_rule(REJECT_CHAIN, vec![Statement::Reject(None)]);
    for p in ports {
        let chains = port_chains(config, p);
        for (name, _) in &chains {
            tx.add_chain(name);
        }
        for (name, rules) in chains {
            tx.add_rules(&name, rules);
        }
    }
    let (services, no_endpoints) = lookup_chains(ports);
    tx.add_rules("services", services);
    tx.add_rules("no-endpoints", no_endpoints);

    // Base chains.
    for (name, ty, hook, prio) in [
        ("nat-prerouting", NfChainType::NAT, NfHook::Prerouting, -100),
        ("nat-output", NfChainType::NAT, NfHook::Output, -100),
        (
            "nat-postrouting",
            NfChainType::NAT,
            NfHook::Postrouting,
            100,
        ),
        ("filter-input", NfChainType::Filter, NfHook::Input, -110),
        ("filter-forward", NfChainType::Filter, NfHook::Forward, -110),
        ("filter-output", NfChainType::Filter, NfHook::Output, -110),
    ] {
        tx.add_base_chain(name, ty, hook, prio);
    }
    tx.add_rule("nat-prerouting", vec![jump("services")]);
    tx.add_rule("nat-output", vec![jump("services")]);
    for f in ["filter-input", "filter-forward", "filter-output"] {
        tx.add_rule(f, vec![ct_state_new(), jump("no-endpoints")]);
    }
    let masquerade = || {
        Statement::Masquerade(Some(NAT {
            addr: None,
            family: None,
            port: None,
            flags: Some(HashSet::from([NATFlag::FullyRandom])),
        }))
    };
    tx.add_rule(
        "nat-postrouting",
        vec![
            matches(
                Expression::BinaryOperation(Box::new(BinaryOperation::AND(
                    meta(MetaKey::Mark),
                    Expression::Number(MASQUERADE_MARK),
                ))),
                Operator::NEQ,
                Expression::Number(0),
            ),
            Statement::Mangle(Mangle {
                key: meta(MetaKey::Mark),
                value: Expression::BinaryOperation(Box::new(BinaryOperation::XOR(
                    meta(MetaKey::Mark),
                    Expression::Number(MASQUERADE_MARK),
                ))),
            }),
            masquerade(),
        ],
    );
    if let Some(bridge) = &config.bridge {
        tx.add_rule(
            "nat-postrouting",
            vec![
                matches(
                    Expression::Named(NamedExpression::CT(CT {
                        key: "status".into(),
                        family: None,
                        dir: None,
                    })),
                    Operator::IN,
                    s("dnat"),
                ),
                matches(meta(MetaKey::Iifname), Operator::EQ, s(bridge.clone())),
                matches(meta(MetaKey::Oifname), Operator::EQ, s(bridge.clone())),
                masquerade(),
            ],
        );
    }
    tx.done()
}

/// One transaction taking a table built for `old` (by [`build_ruleset`] or this) to
/// `new`: only the chains of Service ports that changed are rewritten, and the two
/// lookup chains. `None` when there is nothing to change. `new` must not be empty (the
/// table is then deleted by [`build_ruleset`]).
pub fn build_update(
    config: &ProxyConfig,
    old: &[ServicePort],
    new: &[ServicePort],
) -> Option<Nftables<'static>> {
    if old == new {
        return None;
    }
    let old_by_key: HashMap<&str, &ServicePort> = old.iter().map(|p| (p.key.as_str(), p)).collect();
    let new_by_key: HashMap<&str, &ServicePort> = new.iter().map(|p| (p.key.as_str(), p)).collect();
    let mut tx = Tx::new(config);
    // The lookups go to the svc/ext chains: empty them first.
    tx.flush_chain("services");
    tx.flush_chain("no-endpoints");
    let mut stale: Vec<String> = Vec::new();
    let mut fresh: Vec<(String, Rules)> = Vec::new();
    let mut keys: BTreeSet<&str> = old_by_key.keys().copied().collect();
    keys.extend(new_by_key.keys().copied());
    for key in keys {
        let (o, n) = (old_by_key.get(key), new_by_key.get(key));
        if o == n {
            continue;
        }
        let old_chains: Vec<String> = o
            .map(|p| port_chains(config, p).into_iter().map(|(c, _)| c).collect())
            .unwrap_or_default();
        let new_chains = n.map(|p| port_chains(config, p)).unwrap_or_default();
        let new_names: HashSet<&str> = new_chains.iter().map(|(c, _)| c.as_str()).collect();
        // Empty every old chain (they refer to each other), then delete the ones gone.
        for c in &old_chains {
            tx.flush_chain(c);
        }
        stale.extend(
            old_chains
                .into_iter()
                .filter(|c| !new_names.contains(c.as_str())),
        );
        fresh.extend(new_chains);
    }
    for c in &stale {
        tx.delete_chain(c);
    }
    for (c, _) in &fresh {
        tx.add_chain(c);
    }
    for (c, rules) in fresh {
        tx.add_rules(&c, rules);
    }
    let (services, no_endpoints) = lookup_chains(new);
    tx.add_rules("services", services);
    tx.add_rules("no-endpoints", no_endpoints);
    Some(tx.done())
}

// ---- the thread that runs `nft` (in the right network namespace) ----

enum Job {
    Apply {
        payload: String,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// Runs `nft` and writes sysctls on one thread that has entered the target netns. The
/// thread ends when the `Applier` is dropped (its channel closes).
struct Applier {
    jobs: std::sync::mpsc::Sender<Job>,
}

/// Enter the network namespace at `path` on this thread.
pub(crate) fn enter_netns(path: &std::path::Path) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering the network namespace {}", path.display()))?;
    Ok(())
}

fn run_nft(nft: &std::path::Path, payload: &str) -> Result<()> {
    let mut child = Command::new(nft)
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", nft.display()))?;
    {
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("no stdin for {}", nft.display()))?;
        stdin
            .write_all(payload.as_bytes())
            .with_context(|| format!("writing the ruleset to {}", nft.display()))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for {}", nft.display()))?;
    if !out.status.success() {
        bail!(
            "{} -j -f - failed ({}): {}",
            nft.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Applier {
    fn start(config: &ProxyConfig) -> Result<Applier> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let netns = config.netns.clone();
        let nft = config.nft.clone();
        let sysctls = config.set_sysctls;
        let thread = std::thread::Builder::new()
            .name("tug-proxy-nft".into())
            .spawn(move || {
                let setup = (|| -> Result<()> {
                    if let Some(ns) = &netns {
                        enter_netns(ns)?;
                    }
                    if sysctls {
                        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                            .context("setting net.ipv4.ip_forward=1")?;
                    }
                    Ok(())
                })();
                let ok = setup.is_ok();
                let _ = ready_tx.send(setup);
                if !ok {
                    return;
                }
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Apply { payload, reply } => {
                            let _ = reply.send(run_nft(&nft, &payload));
                        }
                    }
                }
            })
            .context("starting the nft thread")?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("the nft thread exited"))??;
        drop(thread);
        Ok(Applier { jobs: tx })
    }

    async fn apply(&self, ruleset: &Nftables<'_>) -> Result<()> {
        let payload = serde_json::to_string(ruleset).context("encoding the ruleset")?;
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job::Apply { payload, reply })
            .map_err(|_| anyhow!("the nft thread is gone"))?;
        rx.await.map_err(|_| anyhow!("the nft thread is gone"))?
    }
}

// ---- the proxy ----

/// The running Service proxy (see the [module](self) docs).
pub struct ServiceProxy {
    config: ProxyConfig,
    applier: Arc<Applier>,
    status: watch::Sender<ProxyStatus>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn revision(inf: &Informer) -> u64 {
    inf.resource_version().parse().unwrap_or(0)
}

impl ServiceProxy {
    /// Start the proxy on the engine's shared Service and EndpointSlice informers. Fails
    /// if the netns cannot be entered or a sysctl cannot be set; `nft` failures are
    /// retried (see [`ProxyStatus::last_error`]).
    pub fn start(engine: &Engine, config: ProxyConfig) -> Result<Arc<ServiceProxy>> {
        let services = engine.informer("v1", "Service");
        let slices = engine.informer("discovery.k8s.io/v1", "EndpointSlice");
        Self::start_with(services, slices, config)
    }

    /// [`ServiceProxy::start`] with the informers given.
    pub fn start_with(
        services: Arc<Informer>,
        slices: Arc<Informer>,
        config: ProxyConfig,
    ) -> Result<Arc<ServiceProxy>> {
        let applier = Arc::new(Applier::start(&config)?);
        let proxy = Arc::new(ServiceProxy {
            config,
            applier,
            status: watch::Sender::new(ProxyStatus::default()),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(proxy.clone().run(services, slices));
        *proxy.task.lock() = Some(task);
        Ok(proxy)
    }

    /// The configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// What the proxy has done so far.
    pub fn status(&self) -> ProxyStatus {
        self.status.borrow().clone()
    }

    /// Follow the status (it changes after every sync, applied or not).
    pub fn subscribe(&self) -> watch::Receiver<ProxyStatus> {
        self.status.subscribe()
    }

    /// Wait until the kernel's rules reflect every EndpointSlice change up to `revision`
    /// (the resourceVersion the API returned for a write) and every Service change up to
    /// `services_revision`.
    pub async fn wait_for_revisions(
        &self,
        services_revision: u64,
        endpoint_slices_revision: u64,
        timeout: Duration,
    ) -> Result<ProxyStatus> {
        let mut rx = self.status.subscribe();
        let s = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| {
                s.services_revision >= services_revision
                    && s.endpoint_slices_revision >= endpoint_slices_revision
                    && s.last_error.is_none()
            }),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "the proxy did not reach revisions {services_revision}/{endpoint_slices_revision} in {timeout:?}: {:?}",
                self.status()
            )
        })?
        .map_err(|_| anyhow!("the proxy stopped"))?;
        Ok(s.clone())
    }

    /// Stop following changes and delete the table.
    pub async fn shutdown(&self) -> Result<()> {
        self.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        self.applier
            .apply(&build_ruleset(&self.config, &[]))
            .await
            .with_context(|| format!("deleting the nftables table {}", self.config.table))
    }

    async fn run(self: Arc<Self>, services: Arc<Informer>, slices: Arc<Informer>) {
        let mut stop = self.stop.subscribe();
        let mut svc_changes = services.subscribe();
        let mut slice_changes = slices.subscribe();
        tokio::select! {
            _ = async { services.wait_synced().await; slices.wait_synced().await } => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut applied: Option<Vec<ServicePort>> = None;
        loop {
            // Drain what is queued: this sync reads the caches, which hold all of it.
            while svc_changes.try_recv().is_ok() {}
            while slice_changes.try_recv().is_ok() {}
            let ok = self.sync(&services, &slices, &mut applied).await;
            let last_sync = Instant::now();
            let retry = if ok {
                None
            } else {
                Some(tokio::time::sleep(self.config.retry))
            };
            tokio::select! {
                c = svc_changes.recv() => if c.is_none() { return },
                c = slice_changes.recv() => if c.is_none() { return },
                _ = async { match retry { Some(r) => r.await, None => std::future::pending().await } } => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let since = last_sync.elapsed();
            let wait = self
                .config
                .coalesce
                .max(self.config.min_sync_interval.saturating_sub(since));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One sync; false if applying failed.
    async fn sync(
        &self,
        services: &Informer,
        slices: &Informer,
        applied: &mut Option<Vec<ServicePort>>,
    ) -> bool {
        // Revisions first: the caches read after them hold at least as much.
        let svc_rev = revision(services);
        let slice_rev = revision(slices);
        let ports = desired_ports(&services.all(), &slices.all());
        if applied.as_ref() == Some(&ports) {
            self.status.send_modify(|s| {
                s.services_revision = s.services_revision.max(svc_rev);
                s.endpoint_slices_revision = s.endpoint_slices_revision.max(slice_rev);
            });
            return true;
        }
        let started = Instant::now();
        // A whole new table at first, after a failure, and to delete it; otherwise only
        // what changed.
        let (ruleset, full) = match applied.as_deref() {
            Some(old) if !old.is_empty() && !ports.is_empty() => {
                match build_update(&self.config, old, &ports) {
                    Some(r) => (r, false),
                    None => (build_ruleset(&self.config, &ports), true),
                }
            }
            _ => (build_ruleset(&self.config, &ports), true),
        };
        match self.applier.apply(&ruleset).await {
            Ok(()) => {
                let took = started.elapsed();
                tracing::debug!(
                    table = %self.config.table,
                    service_ports = ports.len(),
                    took_ms = took.as_secs_f64() * 1000.0,
                    "service proxy rules applied"
                );
                self.status.send_modify(|s| {
                    s.syncs += 1;
                    if full {
                        s.full_syncs += 1;
                    }
                    s.last_sync = Some(took);
                    s.service_ports = ports.len();
                    s.endpoints = ports.iter().map(|p| p.endpoints.len()).sum();
                    s.services_revision = s.services_revision.max(svc_rev);
                    s.endpoint_slices_revision = s.endpoint_slices_revision.max(slice_rev);
                    s.last_error = None;
                });
                *applied = Some(ports);
                true
            }
            Err(e) => {
                // Start over from a whole table next time.
                *applied = None;
                tracing::warn!(table = %self.config.table, error = %format!("{e:#}"), "applying the service proxy rules");
                self.status.send_modify(|s| {
                    s.failures += 1;
                    s.last_error = Some(format!("{e:#}"));
                });
                false
            }
        }
    }
}
