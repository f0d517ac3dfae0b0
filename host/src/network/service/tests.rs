//! Tests of the Service proxy and the cluster DNS server against a real in-process API
//! server and engine, real `nft`, and network namespaces created here (root only).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::{Value, json};

use super::dns::{ClusterDns, DnsConfig, parse_resolv_conf};
use super::proxy::{ProxyConfig, ServiceProxy, build_ruleset, desired_ports};
use super::testbed::{GATEWAY, NsWorker, Testbed, fetch, unique_id};
use crate::api::client::tests::test_api;
use crate::api::client::{ApiClient, ApiResource, LocalClient};
use crate::engine::{Engine, EngineConfig};
use crate::store::redb::RedbStoreConfig;

fn services() -> ApiResource {
    ApiResource::new("v1", "services")
}

fn slices() -> ApiResource {
    ApiResource::new("discovery.k8s.io/v1", "endpointslices")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root (network namespaces and nft)");
            return;
        }
    };
}

struct Env {
    client: Arc<LocalClient>,
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let (api, dir) = test_api(RedbStoreConfig::default()).await;
    let client = Arc::new(LocalClient::new(api, "test"));
    let engine = Arc::new(Engine::new(client.clone(), EngineConfig::default()));
    Env {
        client,
        engine,
        _dir: dir,
    }
}

fn rv(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .expect("resourceVersion")
}

fn slice(name: &str, service: &str, port_name: &str, port: u16, eps: &[(Ipv4Addr, bool)]) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": eps.iter().map(|(ip, ready)| json!({
            "addresses": [ip.to_string()], "conditions": {"ready": ready}
        })).collect::<Vec<_>>(),
    })
}

// ---- the model (no root needed) ----

#[test]
fn desired_ports_skip_headless_external_name_and_node_local_dns() {
    let svc = |name: &str, extra: Value| {
        let mut s = json!({"metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}});
        json_patch::merge(&mut s, &extra);
        Arc::new(s)
    };
    let services = vec![
        svc("web", json!({})),
        svc(
            "headless",
            json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}}),
        ),
        svc(
            "ext",
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
        ),
        svc(
            "kube-dns",
            json!({"metadata": {"annotations": {"tugboat.dev/node-local-dns": "true"}}}),
        ),
    ];
    let mut sl = slice(
        "web-1",
        "web",
        "http",
        8080,
        &[
            (Ipv4Addr::new(10, 42, 0, 3), true),
            (Ipv4Addr::new(10, 42, 0, 2), true),
            (Ipv4Addr::new(10, 42, 0, 4), false),
        ],
    );
    sl["metadata"]["namespace"] = json!("default");
    // An endpoint without conditions is ready; another slice repeating one is merged.
    let mut sl2 = slice("web-2", "web", "http", 8080, &[]);
    sl2["metadata"]["namespace"] = json!("default");
    sl2["endpoints"] = json!([{"addresses": ["10.42.0.9"]}, {"addresses": ["10.42.0.2"]}]);
    let ports = desired_ports(&services, &[Arc::new(sl), Arc::new(sl2)]);
    assert_eq!(ports.len(), 1, "{ports:?}");
    let p = &ports[0];
    assert_eq!(p.key, "default/web/tcp/http");
    assert_eq!(p.port, 80);
    assert_eq!(
        p.endpoints,
        vec![
            SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 2), 8080),
            SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 3), 8080),
            SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 9), 8080),
        ]
    );
    // The ruleset replaces the table in one transaction; without ports it only deletes.
    let cfg = ProxyConfig::default();
    let doc = serde_json::to_value(build_ruleset(&cfg, &ports)).expect("json");
    let cmds = doc["nftables"].as_array().expect("array");
    assert!(cmds[0]["add"]["table"].is_object());
    assert!(cmds[1]["delete"]["table"].is_object());
    assert!(cmds[2]["add"]["table"].is_object());
    let text = doc.to_string();
    assert!(text.contains("\"numgen\""), "{text}");
    assert!(text.contains("10.42.0.9"));
    let empty = serde_json::to_value(build_ruleset(&cfg, &[])).expect("json");
    assert_eq!(empty["nftables"].as_array().map(Vec::len), Some(2));
}

// ---- the proxy in network namespaces ----

/// Connect `n` times to `addr` from the worker's namespace; the names that answered (or
/// the first error).
async fn names(w: &NsWorker, addr: SocketAddr, n: usize) -> Result<BTreeSet<String>, String> {
    w.run(move || {
        let mut seen = BTreeSet::new();
        for i in 0..n {
            match fetch(addr, Duration::from_secs(2)) {
                Ok(name) => {
                    seen.insert(name);
                }
                Err(e) => return Err(format!("{addr}: {e} (attempt {i}, seen {seen:?})")),
            }
        }
        Ok(seen)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_balances_cluster_ip_and_node_port_and_rejects_without_endpoints() {
    require_root!();
    let bed = Testbed::new(2, 8080).expect("testbed");
    let node = NsWorker::start(&bed.node).expect("node worker");
    let pod0 = NsWorker::start(&bed.pods[0].netns).expect("pod worker");
    let e = env().await;
    let table = format!("tug-test-{}", unique_id());
    let proxy = ServiceProxy::start(
        &e.engine,
        ProxyConfig {
            table: table.clone(),
            netns: Some(bed.node.path()),
            cluster_cidr: Some("10.42.0.0/16".parse().expect("cidr")),
            bridge: Some(super::testbed::BRIDGE.into()),
            ..ProxyConfig::default()
        },
    )
    .expect("proxy");

    let svc = e
        .client
        .create(
            &services(),
            Some("default"),
            json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        )
        .await
        .expect("service");
    let cip: Ipv4Addr = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .expect("clusterIP");
    let node_port = svc
        .pointer("/spec/ports/0/nodePort")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .expect("nodePort");
    let (ip0, ip1) = (bed.pods[0].ip, bed.pods[1].ip);
    let s = e
        .client
        .create(
            &slices(),
            Some("default"),
            slice("web-1", "web", "http", 8080, &[(ip0, true), (ip1, true)]),
        )
        .await
        .expect("slice");
    proxy
        .wait_for_revisions(rv(&svc), rv(&s), Duration::from_secs(5))
        .await
        .expect("programmed");
    assert!(bed.has_table(&table).expect("nft"), "table {table} exists");

    let cluster = SocketAddr::from((cip, 80));
    let both = set(&["pod0", "pod1"]);
    // The pods answer directly.
    assert_eq!(
        names(&node, SocketAddr::from((ip0, 8080)), 3).await,
        Ok(set(&["pod0"]))
    );
    assert_eq!(
        names(&node, SocketAddr::from((ip1, 8080)), 3).await,
        Ok(set(&["pod1"]))
    );
    // ClusterIP from the node: random over both endpoints.
    assert_eq!(names(&node, cluster, 40).await, Ok(both.clone()));
    // NodePort on the node's address.
    let np = SocketAddr::from((GATEWAY, node_port));
    assert_eq!(names(&node, np, 40).await, Ok(both.clone()));
    // From a pod, including back to itself (hairpin).
    assert_eq!(names(&pod0, cluster, 40).await, Ok(both.clone()));
    assert_eq!(names(&pod0, np, 20).await, Ok(both.clone()));

    // pod1 not ready: within a second only pod0 answers.
    let changed = Instant::now();
    let mut s1 = s.clone();
    s1["endpoints"][1]["conditions"]["ready"] = json!(false);
    let s1 = e
        .client
        .update(&slices(), Some("default"), s1)
        .await
        .expect("update slice");
    proxy
        .wait_for_revisions(rv(&svc), rv(&s1), Duration::from_secs(1))
        .await
        .expect("programmed within a second");
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(1), "update took {took:?}");
    assert_eq!(names(&node, cluster, 20).await, Ok(set(&["pod0"])));

    // No ready endpoint: connections are refused at once (not a timeout).
    let mut s2 = s1.clone();
    s2["endpoints"][0]["conditions"]["ready"] = json!(false);
    let s2 = e
        .client
        .update(&slices(), Some("default"), s2)
        .await
        .expect("update slice");
    proxy
        .wait_for_revisions(rv(&svc), rv(&s2), Duration::from_secs(1))
        .await
        .expect("programmed");
    for target in [cluster, np] {
        let (kind, elapsed) = node
            .run(move || {
                let t = Instant::now();
                let r = fetch(target, Duration::from_secs(3));
                (r.map_err(|e| e.kind()), t.elapsed())
            })
            .await
            .expect("worker");
        assert_eq!(kind, Err(std::io::ErrorKind::ConnectionRefused), "{target}");
        assert!(
            elapsed < Duration::from_millis(500),
            "{target}: {elapsed:?}"
        );
    }
    // From a pod too (forwarded traffic).
    let kind = pod0
        .run(move || fetch(cluster, Duration::from_secs(3)).map_err(|e| e.kind()))
        .await
        .expect("worker");
    assert_eq!(kind, Err(std::io::ErrorKind::ConnectionRefused));

    // Ready again, then the Service deleted: nothing left, the table goes.
    let mut s3 = s2.clone();
    s3["endpoints"][0]["conditions"]["ready"] = json!(true);
    let s3 = e
        .client
        .update(&slices(), Some("default"), s3)
        .await
        .expect("update slice");
    proxy
        .wait_for_revisions(rv(&svc), rv(&s3), Duration::from_secs(1))
        .await
        .expect("programmed");
    assert_eq!(names(&node, cluster, 5).await, Ok(set(&["pod0"])));
    e.client
        .delete(&services(), Some("default"), "web", &Default::default())
        .await
        .expect("delete");
    let mut rx = proxy.subscribe();
    let st = tokio::time::timeout(
        Duration::from_secs(2),
        rx.wait_for(|s| s.service_ports == 0),
    )
    .await
    .expect("synced within 2 s")
    .expect("proxy running")
    .clone();
    assert_eq!(st.service_ports, 0, "{st:?}");
    assert!(
        !bed.has_table(&table).expect("nft"),
        "table removed when empty"
    );

    // Shutdown removes the table.
    let svc2 = e
        .client
        .create(
            &services(),
            Some("default"),
            json!({"metadata": {"name": "web2"}, "spec": {
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        )
        .await
        .expect("service");
    proxy
        .wait_for_revisions(rv(&svc2), 0, Duration::from_secs(2))
        .await
        .expect("programmed");
    assert!(bed.has_table(&table).expect("nft"));
    proxy.shutdown().await.expect("shutdown");
    assert!(
        !bed.has_table(&table).expect("nft"),
        "table removed at shutdown"
    );
    let status = proxy.status();
    assert!(status.syncs >= 5, "{status:?}");
    assert!(status.last_sync.is_some());
    e.engine.shutdown().await;
}

// ---- DNS ----

fn fake_answer(query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut r = Message::response(q.metadata.id, OpCode::Query);
    r.metadata.recursion_available = true;
    for query in &q.queries {
        r.add_query(query.clone());
        r.add_answer(Record::from_rdata(
            query.name().clone(),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
    }
    r.to_vec().ok()
}

/// A fake upstream DNS server on loopback (UDP and TCP) answering every query with an A
/// record 192.0.2.1.
async fn fake_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = sock.local_addr().expect("addr");
    let tcp = tokio::net::TcpListener::bind(addr).await.expect("bind tcp");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = tcp.accept().await {
            let Ok(n) = s.read_u16().await else { continue };
            let mut buf = vec![0u8; usize::from(n)];
            if s.read_exact(&mut buf).await.is_err() {
                continue;
            }
            if let Some(bytes) = fake_answer(&buf) {
                let len = u16::try_from(bytes.len()).unwrap_or(0).to_be_bytes();
                let _ = s.write_all(&len).await;
                let _ = s.write_all(&bytes).await;
            }
        }
    });
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            if let Some(bytes) = fake_answer(&buf[..n]) {
                let _ = sock.send_to(&bytes, from).await;
            }
        }
    });
    (addr, task)
}

async fn query_udp(server: SocketAddr, name: &str, ty: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), ty));
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    sock.send_to(&m.to_vec().expect("encode"), server)
        .await
        .expect("send");
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("answer in time")
        .expect("recv");
    let r = Message::from_vec(&buf[..n]).expect("decode");
    assert_eq!(r.metadata.id, m.metadata.id);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    r
}

async fn query_tcp(server: SocketAddr, name: &str, ty: RecordType) -> std::io::Result<Message> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), ty));
    let bytes = m.to_vec().expect("encode");
    let mut s = tokio::net::TcpStream::connect(server).await?;
    let len = u16::try_from(bytes.len()).expect("short");
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(&bytes).await?;
    let n = s.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await?;
    Ok(Message::from_vec(&buf).expect("decode"))
}

fn ips(records: &[Record]) -> BTreeSet<IpAddr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_services_srv_pods_nxdomain_and_forwards() {
    let e = env().await;
    let web = e
        .client
        .create(
            &services(),
            Some("default"),
            json!({"metadata": {"name": "web"}, "spec": {
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        )
        .await
        .expect("service");
    let web_ip: IpAddr = web
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .expect("clusterIP");
    e.client
        .create(
            &services(),
            Some("default"),
            json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None",
                "ports": [{"name": "pg", "port": 5432}]}}),
        )
        .await
        .expect("headless service");
    let mut db_slice = slice(
        "db-1",
        "db",
        "pg",
        5432,
        &[
            (Ipv4Addr::new(10, 42, 0, 7), true),
            (Ipv4Addr::new(10, 42, 0, 8), true),
            (Ipv4Addr::new(10, 42, 0, 9), false),
        ],
    );
    db_slice["endpoints"][0]["hostname"] = json!("db-0");
    e.client
        .create(&slices(), Some("default"), db_slice)
        .await
        .expect("slice");
    e.client
        .create(
            &services(),
            Some("default"),
            json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName",
                "externalName": "example.org"}}),
        )
        .await
        .expect("external name service");

    let (upstream, up_task) = fake_upstream().await;
    let svc_inf = e.engine.informer("v1", "Service");
    let slice_inf = e.engine.informer("discovery.k8s.io/v1", "EndpointSlice");
    svc_inf.wait_synced().await;
    slice_inf.wait_synced().await;
    // The caches must hold what was created before the server answers from them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (svc_inf.get(Some("default"), "ext").is_none() || slice_inf.is_empty())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dns = ClusterDns::start(
        &e.engine,
        DnsConfig {
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            upstream: Some(vec![upstream]),
            ..DnsConfig::default()
        },
    )
    .await
    .expect("dns");
    let server = dns.local_addrs()[0];
    assert_ne!(server.port(), 0);

    // A for a ClusterIP Service (case-insensitive, as resolvers may randomise case).
    let r = query_udp(server, "Web.Default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert_eq!(ips(&r.answers), BTreeSet::from([web_ip]));

    // SRV for a named port, with the target's address in the additional section.
    let r = query_udp(
        server,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let srv: Vec<_> = r
        .answers
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::SRV(s) => Some((s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect();
    assert_eq!(
        srv,
        vec![(80, "web.default.svc.cluster.local.".to_string())]
    );
    assert_eq!(ips(&r.additionals), BTreeSet::from([web_ip]));

    // Headless: the ready endpoints; one by hostname; SRV per endpoint.
    let r = query_udp(server, "db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        ips(&r.answers),
        BTreeSet::from([IpAddr::from([10, 42, 0, 7]), IpAddr::from([10, 42, 0, 8])])
    );
    let r = query_udp(server, "db-0.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        ips(&r.answers),
        BTreeSet::from([IpAddr::from([10, 42, 0, 7])])
    );
    let r = query_udp(
        server,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    let mut targets: Vec<_> = r
        .answers
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::SRV(s) => Some((s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        vec![
            (5432, "10-42-0-8.db.default.svc.cluster.local.".to_string()),
            (5432, "db-0.db.default.svc.cluster.local.".to_string()),
        ]
    );

    // ExternalName: a CNAME.
    let r = query_udp(server, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert!(
        r.answers
            .iter()
            .any(|rec| matches!(&rec.data, RData::CNAME(c) if c.0.to_ascii() == "example.org.")),
        "{r:?}"
    );

    // Pod names.
    let r = query_udp(
        server,
        "10-42-0-9.default.pod.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        ips(&r.answers),
        BTreeSet::from([IpAddr::from([10, 42, 0, 9])])
    );

    // Unknown names in the cluster domain: NXDOMAIN with the SOA; a known name with
    // another type: NODATA.
    for name in [
        "nope.default.svc.cluster.local.",
        "web.other.svc.cluster.local.",
        "_nope._tcp.web.default.svc.cluster.local.",
        "example.com.default.svc.cluster.local.",
    ] {
        let r = query_udp(server, name, RecordType::A).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(r.answers.is_empty());
        assert!(
            r.authorities
                .iter()
                .any(|rec| rec.record_type() == RecordType::SOA),
            "{name}: {r:?}"
        );
    }
    let r = query_udp(server, "web.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.answers.is_empty());

    // Everything else goes to the upstream.
    let r = query_udp(server, "example.com.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        ips(&r.answers),
        BTreeSet::from([IpAddr::from([192, 0, 2, 1])])
    );

    // TCP clients are served too, and forwarded over TCP.
    let r = query_tcp(server, "web.default.svc.cluster.local.", RecordType::A)
        .await
        .expect("tcp query");
    assert_eq!(ips(&r.answers), BTreeSet::from([web_ip]));
    let r = query_tcp(server, "example.net.", RecordType::A)
        .await
        .expect("tcp query");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        ips(&r.answers),
        BTreeSet::from([IpAddr::from([192, 0, 2, 1])])
    );

    // A new Service is answered at once (read from the informer cache at query time).
    let api = e
        .client
        .create(
            &services(),
            Some("default"),
            json!({"metadata": {"name": "api"}, "spec": {"ports": [{"port": 443}]}}),
        )
        .await
        .expect("service");
    let api_ip: IpAddr = api
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .expect("clusterIP");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let r = query_udp(server, "api.default.svc.cluster.local.", RecordType::A).await;
        if ips(&r.answers) == BTreeSet::from([api_ip]) {
            break;
        }
        assert!(Instant::now() < deadline, "new service not answered: {r:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Stop: the TCP port no longer answers.
    dns.shutdown().await.expect("shutdown");
    let after = tokio::time::timeout(
        Duration::from_secs(2),
        query_tcp(server, "web.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert!(
        !matches!(after, Ok(Ok(_))),
        "still answering after shutdown"
    );
    up_task.abort();
    e.engine.shutdown().await;
}

#[tokio::test]
async fn dns_without_upstream_answers_servfail_for_outside_names() {
    let e = env().await;
    let dns = ClusterDns::start(
        &e.engine,
        DnsConfig {
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            upstream: Some(vec![]),
            ..DnsConfig::default()
        },
    )
    .await
    .expect("dns");
    let server = dns.local_addrs()[0];
    let r = query_udp(server, "example.com.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    dns.shutdown().await.expect("shutdown");
    e.engine.shutdown().await;
}

#[test]
fn resolv_conf_nameservers() {
    let got = parse_resolv_conf(
        "# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver ::1\noptions ndots:5\nnameserver fe80::1%eth0\n",
    );
    assert_eq!(
        got,
        vec![
            "192.0.2.53:53".parse::<SocketAddr>().expect("addr"),
            "[::1]:53".parse().expect("addr"),
        ]
    );
}

/// The table as `nft -j list` shows it, as chain name → rules (handles dropped).
fn table_state(ns: &str, table: &str) -> std::collections::BTreeMap<String, Vec<Value>> {
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "table", "ip", table,
        ])
        .output()
        .expect("nft list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut state: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for o in doc["nftables"].as_array().expect("array") {
        if let Some(c) = o.get("chain") {
            let name = c["name"].as_str().expect("name").to_string();
            state.entry(name).or_default();
        }
        if let Some(r) = o.get("rule") {
            let name = r["chain"].as_str().expect("chain").to_string();
            state.entry(name).or_default().push(r["expr"].clone());
        }
    }
    state
}

fn nft_apply(ns: &str, doc: &nftables::schema::Nftables<'_>) {
    use std::io::Write;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-j", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(doc).expect("json").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn incremental_update_gives_the_same_table_as_a_full_replace() {
    require_root!();
    use super::proxy::{Protocol, ServicePort, build_update};
    let ns = super::testbed::Netns::create(format!("tug-svc-{}-nft", unique_id())).expect("netns");
    let ep = |a: u8, port: u16| SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, a), port);
    let port = |name: &str, cip: u8, node_port: Option<u16>, eps: Vec<SocketAddrV4>| ServicePort {
        key: format!("default/{name}/tcp/http"),
        protocol: Protocol::Tcp,
        cluster_ips: vec![Ipv4Addr::new(10, 43, 0, cip)],
        port: 80,
        node_port,
        endpoints: eps,
    };
    let before = vec![
        port("a", 1, Some(30001), vec![ep(2, 8080), ep(3, 8080)]),
        port("b", 2, None, vec![ep(4, 8080)]),
        port("c", 3, Some(30003), vec![]),
        port("d", 4, None, vec![ep(5, 8080)]),
    ];
    let after = vec![
        port(
            "a",
            1,
            Some(30001),
            vec![ep(2, 8080), ep(6, 8080), ep(7, 8080)],
        ),
        port("c", 3, Some(30003), vec![ep(8, 9090)]),
        port("d", 4, None, vec![ep(5, 8080)]),
        port("e", 5, Some(30005), vec![]),
    ];
    let inc = ProxyConfig {
        table: "inc".into(),
        cluster_cidr: Some("10.42.0.0/16".parse().expect("cidr")),
        bridge: Some("br0".into()),
        ..ProxyConfig::default()
    };
    let full = ProxyConfig {
        table: "full".into(),
        ..inc.clone()
    };
    nft_apply(&ns.name, &build_ruleset(&inc, &before));
    nft_apply(
        &ns.name,
        &build_update(&inc, &before, &after).expect("a change"),
    );
    nft_apply(&ns.name, &build_ruleset(&full, &after));
    let (got, want) = (table_state(&ns.name, "inc"), table_state(&ns.name, "full"));
    assert_eq!(got, want);
    assert!(got.contains_key("ep-default/a/tcp/http/10.42.0.7:8080"));
    assert!(!got.contains_key("svc-default/b/tcp/http"));
    assert!(build_update(&inc, &after, &after).is_none());
    // And back.
    nft_apply(
        &ns.name,
        &build_update(&inc, &after, &before).expect("a change"),
    );
    nft_apply(&ns.name, &build_ruleset(&full, &before));
    assert_eq!(table_state(&ns.name, "inc"), table_state(&ns.name, "full"));
}
