//! The cluster DNS server (CoreDNS's `kubernetes` plugin and `forward`, in process).
//!
//! [`ClusterDns`] answers over UDP and TCP (hickory-server) from the engine's shared
//! Service and EndpointSlice informer caches, read at query time (so an answer reflects
//! the cache at that moment; no state of its own):
//!
//! - `SVC.NS.svc.DOMAIN` A/AAAA: the Service's cluster IPs; for a headless Service the
//!   ready endpoints' addresses; for an ExternalName Service a CNAME to its external name.
//! - `_PORT._PROTO.SVC.NS.svc.DOMAIN` SRV for a named port: target `SVC.NS.svc.DOMAIN`
//!   (headless: one per ready endpoint, target `HOST.SVC.NS.svc.DOMAIN` where HOST is the
//!   endpoint's hostname or its dashed IP), with the A records in the additional section.
//! - `HOST.SVC.NS.svc.DOMAIN` A: one endpoint of a headless Service.
//! - `A-B-C-D.NS.pod.DOMAIN` A: `A.B.C.D` (CoreDNS's `pods insecure`).
//! - Other names in the cluster domain: NXDOMAIN (NODATA for names that exist with
//!   other types), with the zone's SOA in the authority section for negative caching.
//! - Names outside the cluster domain are forwarded as they came to the upstream servers
//!   in turn (UDP, then TCP when the answer is truncated or the client used TCP);
//!   SERVFAIL when none answers.
//!
//! Sockets are bound in the network namespace the calling thread is in; the addresses
//! must exist (the node's cluster DNS IP on the bridge or a dummy link).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol as DnsProtocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::proxy::{SERVICE_NAME_LABEL, cluster_ips};
use crate::engine::Engine;
use crate::engine::informer::Informer;

/// How the DNS server runs.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Addresses to serve on, UDP and TCP (port 0: one free port, the same for both).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain.
    pub domain: String,
    /// Upstream servers for other names; `None`: the nameservers of `/etc/resolv.conf`.
    pub upstream: Option<Vec<SocketAddr>>,
    /// TTL of the answers (CoreDNS: 5 s).
    pub ttl: u32,
    /// How long to wait for one upstream server.
    pub upstream_timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: vec![SocketAddr::from(([10, 43, 0, 10], 53))],
            domain: "cluster.local".into(),
            upstream: None,
            ttl: 5,
            upstream_timeout: Duration::from_secs(2),
        }
    }
}

/// The nameservers of a resolv.conf (port 53).
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("nameserver"))
                .then(|| it.next())
                .flatten()
        })
        // Zone ids (fe80::1%eth0) are not supported by SocketAddr: drop them.
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The running DNS server.
pub struct ClusterDns {
    server: tokio::sync::Mutex<Option<Server<Handler>>>,
    addrs: Vec<SocketAddr>,
    upstream: Vec<SocketAddr>,
}

impl ClusterDns {
    /// Serve on `config.listen` from the engine's shared Service and EndpointSlice
    /// informers.
    pub async fn start(engine: &Engine, config: DnsConfig) -> Result<ClusterDns> {
        let services = engine.informer("v1", "Service");
        let slices = engine.informer("discovery.k8s.io/v1", "EndpointSlice");
        Self::start_with(services, slices, config).await
    }

    /// [`ClusterDns::start`] with the informers given.
    pub async fn start_with(
        services: Arc<Informer>,
        slices: Arc<Informer>,
        config: DnsConfig,
    ) -> Result<ClusterDns> {
        let domain = Name::from_ascii(config.domain.trim_end_matches('.'))
            .with_context(|| format!("cluster domain {:?}", config.domain))?
            .to_lowercase();
        let mut domain = domain;
        domain.set_fqdn(true);
        let mut sockets = Vec::new();
        for addr in &config.listen {
            sockets.push(bind_pair(*addr).await?);
        }
        let addrs: Vec<SocketAddr> = sockets.iter().map(|(_, _, a)| *a).collect();
        let upstream: Vec<SocketAddr> = match &config.upstream {
            Some(u) => u.clone(),
            None => {
                parse_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
            }
        }
        .into_iter()
        // Never forward to ourselves.
        .filter(|u| !addrs.contains(u) && !config.listen.contains(u))
        .collect();
        let soa = Record::from_rdata(
            domain.clone(),
            config.ttl,
            RData::SOA(SOA::new(
                Name::from_ascii("ns.dns")?.append_domain(&domain)?,
                Name::from_ascii("hostmaster")?.append_domain(&domain)?,
                1,
                7200,
                1800,
                86400,
                config.ttl,
            )),
        );
        let handler = Handler {
            domain,
            services,
            slices,
            upstream: upstream.clone(),
            ttl: config.ttl,
            timeout: config.upstream_timeout,
            soa,
        };
        let mut server = Server::new(handler);
        for (udp, tcp, _) in sockets {
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(10), 64);
        }
        tracing::info!(listen = ?addrs, upstream = ?upstream, "cluster DNS serving");
        Ok(ClusterDns {
            server: tokio::sync::Mutex::new(Some(server)),
            addrs,
            upstream,
        })
    }

    /// Where it serves (the ports chosen for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The upstream servers in use.
    pub fn upstream(&self) -> &[SocketAddr] {
        &self.upstream
    }

    /// Stop serving (waits for the sockets' tasks to end).
    pub async fn shutdown(&self) -> Result<()> {
        if let Some(mut s) = self.server.lock().await.take() {
            s.shutdown_gracefully()
                .await
                .map_err(|e| anyhow!("stopping the DNS server: {e}"))?;
        }
        Ok(())
    }
}

/// A UDP socket and a TCP listener on the same address (for port 0, the same free port).
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr)> {
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("binding UDP {addr}"))?;
        let local = udp.local_addr()?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp, local)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e).with_context(|| format!("binding TCP {addr}")),
        }
    }
    Err(anyhow!("binding TCP {addr}: {last:?}"))
}

struct Handler {
    /// Lower case, fully qualified.
    domain: Name,
    services: Arc<Informer>,
    slices: Arc<Informer>,
    upstream: Vec<SocketAddr>,
    ttl: u32,
    timeout: Duration,
    soa: Record,
}

/// What a cluster-domain lookup found.
#[derive(Default)]
struct Answer {
    code: ResponseCode,
    answers: Vec<Record>,
    additionals: Vec<Record>,
}

impl Answer {
    fn nxdomain() -> Answer {
        Answer {
            code: ResponseCode::NXDomain,
            ..Answer::default()
        }
    }
    fn nodata() -> Answer {
        Answer::default()
    }
}

fn dashed(ip: &IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// A ready endpoint of a headless Service: its addresses and DNS label.
struct Endpoint {
    label: String,
    addrs: Vec<IpAddr>,
}

impl Handler {
    fn service(&self, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.services.get(Some(ns), name)
    }

    fn slices_of(&self, ns: &str, svc: &str) -> Vec<Arc<Value>> {
        self.slices
            .list(Some(ns), Some(&format!("{SERVICE_NAME_LABEL}={svc}")), None)
            .unwrap_or_default()
    }

    fn endpoints(&self, ns: &str, svc: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = Vec::new();
        for slice in self.slices_of(ns, svc) {
            for ep in slice
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if ep.pointer("/conditions/ready").and_then(Value::as_bool) == Some(false) {
                    continue;
                }
                let addrs: Vec<IpAddr> = ep
                    .get("addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter_map(|a| a.parse().ok())
                    .collect();
                let Some(first) = addrs.first() else { continue };
                let label = ep
                    .get("hostname")
                    .and_then(Value::as_str)
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| dashed(first));
                if out.iter().any(|e| e.addrs == addrs) {
                    continue;
                }
                out.push(Endpoint { label, addrs });
            }
        }
        out
    }

    /// The port of `port_name`/`protocol` in the Service's slices (headless SRV).
    fn slice_port(&self, ns: &str, svc: &str, port_name: &str, protocol: &str) -> Option<u16> {
        self.slices_of(ns, svc).iter().find_map(|s| {
            s.get("ports")
                .and_then(Value::as_array)?
                .iter()
                .find(|p| {
                    p.get("name").and_then(Value::as_str).unwrap_or("") == port_name
                        && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == protocol
                })
                .and_then(|p| p.get("port")?.as_u64())
                .and_then(|p| u16::try_from(p).ok())
        })
    }

    fn addr_records(&self, name: &Name, addrs: &[IpAddr], qtype: RecordType) -> Vec<Record> {
        addrs
            .iter()
            .filter_map(|ip| match (ip, qtype) {
                (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => {
                    Some(Record::from_rdata(name.clone(), self.ttl, RData::A(A(*v4))))
                }
                (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => Some(Record::from_rdata(
                    name.clone(),
                    self.ttl,
                    RData::AAAA(AAAA(*v6)),
                )),
                _ => None,
            })
            .collect()
    }

    fn service_addrs(&self, svc: &Value, ns: &str, name: &str) -> Vec<IpAddr> {
        let v4 = cluster_ips(svc);
        if !v4.is_empty() {
            return v4.into_iter().map(IpAddr::V4).collect();
        }
        // IPv6 cluster IPs, or headless.
        let v6: Vec<IpAddr> = svc
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|s| s.parse().ok())
            .collect();
        if !v6.is_empty() {
            return v6;
        }
        self.endpoints(ns, name)
            .into_iter()
            .flat_map(|e| e.addrs)
            .collect()
    }

    /// Answer `qname` (inside the cluster domain; `rel` = its labels before the domain,
    /// lower case).
    fn lookup(&self, qname: &Name, rel: &[String], qtype: RecordType) -> Result<Answer> {
        let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
        Ok(match rel.as_slice() {
            [] => {
                if qtype == RecordType::SOA {
                    Answer {
                        answers: vec![self.soa.clone()],
                        ..Answer::default()
                    }
                } else {
                    Answer::nodata()
                }
            }
            ["svc"] | ["pod"] => Answer::nodata(),
            [ns, "svc"] => {
                if self.services.list(Some(ns), None, None)?.is_empty() {
                    Answer::nxdomain()
                } else {
                    Answer::nodata()
                }
            }
            [name, ns, "svc"] => {
                let Some(svc) = self.service(ns, name) else {
                    return Ok(Answer::nxdomain());
                };
                if svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
                    let Some(target) = svc
                        .pointer("/spec/externalName")
                        .and_then(Value::as_str)
                        .and_then(|t| Name::from_ascii(t.trim_end_matches('.')).ok())
                    else {
                        return Ok(Answer::nodata());
                    };
                    let mut target = target;
                    target.set_fqdn(true);
                    return Ok(Answer {
                        answers: vec![Record::from_rdata(
                            qname.clone(),
                            self.ttl,
                            RData::CNAME(CNAME(target)),
                        )],
                        ..Answer::default()
                    });
                }
                Answer {
                    answers: self.addr_records(qname, &self.service_addrs(&svc, ns, name), qtype),
                    ..Answer::default()
                }
            }
            [port, proto, name, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                let (port_name, protocol) = (&port[1..], proto[1..].to_ascii_uppercase());
                let Some(svc) = self.service(ns, name) else {
                    return Ok(Answer::nxdomain());
                };
                let Some(svc_port) = svc
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|p| {
                        p.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.eq_ignore_ascii_case(port_name))
                            && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                                == protocol
                    })
                else {
                    return Ok(Answer::nxdomain());
                };
                if !matches!(qtype, RecordType::SRV | RecordType::ANY) {
                    return Ok(Answer::nodata());
                }
                let svc_name =
                    Name::from_ascii(format!("{name}.{ns}.svc"))?.append_domain(&self.domain)?;
                let real_name = svc_port
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(port_name);
                let mut answer = Answer::default();
                if cluster_ips(&svc).is_empty() {
                    // Headless: one SRV per endpoint.
                    let Some(target_port) = self.slice_port(ns, name, real_name, &protocol) else {
                        return Ok(answer);
                    };
                    for ep in self.endpoints(ns, name) {
                        let target = Name::from_ascii(&ep.label)?.append_domain(&svc_name)?;
                        answer.answers.push(Record::from_rdata(
                            qname.clone(),
                            self.ttl,
                            RData::SRV(SRV::new(0, 100, target_port, target.clone())),
                        ));
                        answer.additionals.extend(self.addr_records(
                            &target,
                            &ep.addrs,
                            RecordType::ANY,
                        ));
                    }
                } else {
                    let Some(port) = svc_port
                        .get("port")
                        .and_then(Value::as_u64)
                        .and_then(|p| u16::try_from(p).ok())
                    else {
                        return Ok(answer);
                    };
                    answer.answers.push(Record::from_rdata(
                        qname.clone(),
                        self.ttl,
                        RData::SRV(SRV::new(0, 100, port, svc_name.clone())),
                    ));
                    answer.additionals = self.addr_records(
                        &svc_name,
                        &self.service_addrs(&svc, ns, name),
                        RecordType::ANY,
                    );
                }
                answer
            }
            [host, name, ns, "svc"] => {
                let Some(svc) = self.service(ns, name) else {
                    return Ok(Answer::nxdomain());
                };
                if !cluster_ips(&svc).is_empty() {
                    return Ok(Answer::nxdomain());
                }
                match self
                    .endpoints(ns, name)
                    .into_iter()
                    .find(|e| e.label == *host)
                {
                    Some(ep) => Answer {
                        answers: self.addr_records(qname, &ep.addrs, qtype),
                        ..Answer::default()
                    },
                    None => Answer::nxdomain(),
                }
            }
            [ip, _ns, "pod"] => match ip.replace('-', ".").parse::<Ipv4Addr>() {
                Ok(v4) => Answer {
                    answers: self.addr_records(qname, &[IpAddr::V4(v4)], qtype),
                    ..Answer::default()
                },
                Err(_) => Answer::nxdomain(),
            },
            _ => Answer::nxdomain(),
        })
    }

    /// The labels of `name` before the cluster domain, or `None` outside it.
    fn relative(&self, name: &Name) -> Option<Vec<String>> {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        if !self.domain.zone_of(&name) {
            return None;
        }
        let n = usize::from(name.num_labels()) - usize::from(self.domain.num_labels());
        Some(
            name.iter()
                .take(n)
                .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
                .collect(),
        )
    }

    async fn forward(&self, request: &Request) -> Result<Message> {
        let raw = request.as_slice();
        let tcp_first = request.protocol() == DnsProtocol::Tcp;
        let mut last = anyhow!("no upstream DNS server");
        for up in &self.upstream {
            let attempt = async {
                if !tcp_first {
                    let m = forward_udp(*up, raw).await?;
                    if !m.metadata.truncation {
                        return Ok(m);
                    }
                }
                forward_tcp(*up, raw).await
            };
            match tokio::time::timeout(self.timeout, attempt).await {
                Ok(Ok(m)) if m.metadata.id == request.metadata.id => return Ok(m),
                Ok(Ok(_)) => last = anyhow!("{up} answered another query id"),
                Ok(Err(e)) => last = e.context(format!("forwarding to {up}")),
                Err(_) => last = anyhow!("{up} did not answer in {:?}", self.timeout),
            }
        }
        Err(last)
    }

    async fn respond<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
    ) -> Result<ResponseInfo> {
        let resp_edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e.set_version(0);
            e
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &resp_edns {
            builder.edns(e);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            metadata.response_code = ResponseCode::NotImp;
            return Ok(handle
                .send_response(builder.build_no_records(metadata))
                .await?);
        }
        let queries = request.queries.queries();
        let [query] = queries else {
            metadata.response_code = ResponseCode::FormErr;
            return Ok(handle
                .send_response(builder.build_no_records(metadata))
                .await?);
        };
        let qname: Name = query.original().name().clone();
        let qtype = query.query_type();
        match self.relative(&qname) {
            Some(rel) => {
                let answer = if !self.services.has_synced() || !self.slices.has_synced() {
                    Answer {
                        code: ResponseCode::ServFail,
                        ..Answer::default()
                    }
                } else {
                    self.lookup(&qname, &rel, qtype)?
                };
                metadata.authoritative = true;
                metadata.response_code = answer.code;
                let soa: Vec<&Record> =
                    if answer.answers.is_empty() && answer.code != ResponseCode::ServFail {
                        vec![&self.soa]
                    } else {
                        vec![]
                    };
                Ok(handle
                    .send_response(builder.build(
                        metadata,
                        answer.answers.iter(),
                        std::iter::empty(),
                        soa,
                        answer.additionals.iter(),
                    ))
                    .await?)
            }
            None => match self.forward(request).await {
                Ok(m) => {
                    let mut md = m.metadata;
                    md.id = request.metadata.id;
                    Ok(handle
                        .send_response(builder.build(
                            md,
                            m.answers.iter(),
                            m.authorities.iter(),
                            std::iter::empty(),
                            m.additionals.iter(),
                        ))
                        .await?)
                }
                Err(e) => {
                    tracing::debug!(name = %qname, error = %format!("{e:#}"), "DNS forward failed");
                    metadata.response_code = ResponseCode::ServFail;
                    Ok(handle
                        .send_response(builder.build_no_records(metadata))
                        .await?)
                }
            },
        }
    }
}

async fn forward_udp(up: SocketAddr, raw: &[u8]) -> Result<Message> {
    let bind: SocketAddr = if up.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(up).await?;
    sock.send(raw).await?;
    let mut buf = vec![0u8; 65535];
    let n = sock.recv(&mut buf).await?;
    Ok(Message::from_vec(&buf[..n])?)
}

async fn forward_tcp(up: SocketAddr, raw: &[u8]) -> Result<Message> {
    let mut s = TcpStream::connect(up).await?;
    let len = u16::try_from(raw.len()).map_err(|_| anyhow!("query too long"))?;
    let mut out = Vec::with_capacity(raw.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(raw);
    s.write_all(&out).await?;
    let n = s.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await?;
    let m = Message::from_vec(&buf)?;
    if m.metadata.message_type != MessageType::Response {
        bail!("not a response");
    }
    Ok(m)
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        match self.respond(request, response_handle.clone()).await {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "DNS request failed");
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                let mut handle = response_handle;
                let builder = MessageResponseBuilder::from_message_request(request);
                match handle
                    .send_response(builder.build_no_records(metadata))
                    .await
                {
                    Ok(info) => info,
                    Err(_) => ResponseInfo::from(Header {
                        metadata,
                        counts: HeaderCounts::default(),
                    }),
                }
            }
        }
    }
}
