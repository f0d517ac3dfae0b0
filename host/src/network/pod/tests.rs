//! Real-kernel tests of the pod network: a network namespace made by the test plays the
//! node (bridge, veths, nftables table all live there), more namespaces play the pod
//! sandboxes, and the real plugin components run in the real sandbox. Everything is
//! removed by Drop guards, also when a test fails. They need root (and `nft`, `ip` for
//! creating the namespaces); without it they print why and pass.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use serde_json::{Value, json};

use super::*;
use crate::plugin::{PluginRuntime, RuntimeConfig};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Whether the test can run; prints why not.
fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: pod network tests need root");
        return false;
    }
    for tool in [["nft", "--version"], ["ip", "-V"]] {
        if Command::new(tool[0]).arg(tool[1]).output().is_err() {
            eprintln!("skipping: {} is not installed", tool[0]);
            return false;
        }
    }
    true
}

/// A named network namespace (`ip netns add`), deleted on drop with all it holds.
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Netns {
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("running ip netns add");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Runs a test command inside the netns; returns stdout.
    fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("running ip netns exec");
        assert!(
            out.status.success(),
            "{args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` on a thread inside the netns at `path`.
fn in_netns<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(path).expect("opening the netns");
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("the netns thread panicked")
}

/// The names of the links of a netns.
async fn link_names(path: &Path) -> Vec<String> {
    let h = netns::connect(Some(path)).await.expect("netlink");
    let mut names = Vec::new();
    let mut s = h.link().get().execute();
    while let Some(m) = s.try_next().await.expect("listing links") {
        for a in m.attributes {
            if let LinkAttribute::IfName(n) = a {
                names.push(n);
            }
        }
    }
    names
}

fn runtime() -> Arc<PluginRuntime> {
    PluginRuntime::new(RuntimeConfig {
        max_instances: 16,
        max_memory_bytes: 64 << 20,
        ..RuntimeConfig::default()
    })
    .expect("plugin runtime")
}

fn sandbox(pod: &Netns, id: &str) -> SandboxNet {
    SandboxNet {
        pod_uid: format!("uid-{id}"),
        namespace: "default".into(),
        name: format!("pod-{id}"),
        sandbox_id: format!("sandbox-{id}"),
        netns: pod.path(),
        ifname: "eth0".into(),
    }
}

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => panic!("{a} is not IPv4"),
    }
}

/// Accepts one connection on a listener created in `server_ns` at `addr`, connects from
/// `client_ns`; returns what the client read and the peer address the server saw.
fn tcp_roundtrip(server_ns: &Path, addr: Ipv4Addr, client_ns: &Path) -> (String, SocketAddr) {
    let listener = in_netns(server_ns, move || TcpListener::bind((addr, 0)))
        .expect("listening in the server netns");
    let port = listener.local_addr().expect("local addr").port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().expect("accept");
        s.write_all(b"hello from the other side").expect("write");
        peer
    });
    let target = SocketAddr::from((addr, port));
    let got = in_netns(client_ns, move || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
    .unwrap_or_else(|e| panic!("connecting to {target}: {e}"));
    let peer = server.join().expect("server thread");
    (got, peer)
}

fn ipam_allocations(net: &PodNetwork) -> Vec<(String, String)> {
    net.ipam()
        .entries()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("last/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_plugin_connects_two_sandboxes_and_teardown_leaves_nothing() {
    if !can_run() {
        return;
    }
    let id = unique();
    let node = Netns::create(format!("tugpn-{id}-node"));
    let pod_a = Netns::create(format!("tugpn-{id}-a"));
    let pod_b = Netns::create(format!("tugpn-{id}-b"));
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = NetworkConfig::new("node-1", vec!["10.42.7.0/24".into()], data.path().into());
    config.node_netns = Some(node.path());
    let net = PodNetwork::start(&runtime(), config)
        .await
        .expect("starting the bridge plugin");

    let a = sandbox(&pod_a, "a");
    let b = sandbox(&pod_b, "b");
    let addr_a = net.setup(&a).await.expect("setup a");
    let addr_b = net.setup(&b).await.expect("setup b");
    let (ip_a, ip_b) = (v4(addr_a.ips[0]), v4(addr_b.ips[0]));
    let pod_cidr: Cidr = "10.42.7.0/24".parse().expect("cidr");
    for ip in [ip_a, ip_b] {
        assert!(
            pod_cidr.contains(IpAddr::V4(ip)),
            "{ip} outside the pod CIDR"
        );
        let last = ip.octets()[3];
        assert!(last != 0 && last != 1 && last != 255, "{ip} is reserved");
    }
    assert_ne!(ip_a, ip_b);
    assert_eq!(
        addr_a.gateway,
        Some(IpAddr::V4(Ipv4Addr::new(10, 42, 7, 1)))
    );
    assert_eq!(addr_a.addresses[0].prefix, 24);

    // Pod to pod, both ways, without NAT; pod to the gateway (a listener on the node).
    let (text, peer) = tcp_roundtrip(&pod_b.path(), ip_b, &pod_a.path());
    assert_eq!(text, "hello from the other side");
    assert_eq!(peer.ip(), IpAddr::V4(ip_a), "pod traffic must not be NATed");
    let (_, peer) = tcp_roundtrip(&pod_a.path(), ip_a, &pod_b.path());
    assert_eq!(peer.ip(), IpAddr::V4(ip_b));
    let (text, _) = tcp_roundtrip(&node.path(), Ipv4Addr::new(10, 42, 7, 1), &pod_a.path());
    assert_eq!(text, "hello from the other side");
    // The pod's routes: default via the gateway; lo is up.
    let routes = pod_a.exec(&["ip", "-4", "route"]);
    assert!(
        routes.contains("default via 10.42.7.1 dev eth0"),
        "{routes}"
    );
    let lo = pod_a.exec(&["ip", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");

    // The node: bridge tug0 with the gateway, two veths on it, the masquerade table.
    let bridge = node.exec(&["ip", "-4", "addr", "show", "tug0"]);
    assert!(bridge.contains("10.42.7.1/24"), "{bridge}");
    let veths: Vec<String> = link_names(&node.path())
        .await
        .into_iter()
        .filter(|n| n.starts_with("tugv"))
        .collect();
    assert_eq!(veths.len(), 2, "{veths:?}");
    for v in &veths {
        let port = node.exec(&["ip", "-d", "link", "show", v]);
        assert!(
            port.contains("master tug0") && port.contains("hairpin on"),
            "{port}"
        );
    }
    let masq = net
        .scope
        .masquerade
        .list()
        .await
        .expect("listing nft")
        .expect("the masquerade table exists");
    let text = masq.to_string();
    assert!(
        text.contains("masquerade") && text.contains("10.42.7.0"),
        "{text}"
    );
    let forward = in_netns(&node.path(), || {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
    })
    .expect("ip_forward");
    assert_eq!(forward.trim(), "1");

    // Setup is idempotent; check passes.
    let again = net.setup(&a).await.expect("setup a again");
    assert_eq!(again.ips, addr_a.ips);
    net.check(&a).await.expect("check a");
    assert_eq!(
        ipam_allocations(&net).len(),
        4,
        "{:?}",
        net.ipam().entries()
    );

    // Teardown (twice: idempotent) leaves no veth, no pod link, no allocation.
    net.teardown(&a).await.expect("teardown a");
    net.teardown(&a).await.expect("teardown a again");
    net.teardown(&b).await.expect("teardown b");
    assert!(
        net.check(&a).await.is_err(),
        "check after teardown must fail"
    );
    let left: Vec<String> = link_names(&node.path())
        .await
        .into_iter()
        .filter(|n| n.starts_with("tugv") || n.starts_with("tugt"))
        .collect();
    assert!(left.is_empty(), "veths left: {left:?}");
    for pod in [&pod_a, &pod_b] {
        let names = link_names(&pod.path()).await;
        assert_eq!(names, vec!["lo".to_string()], "links left in {}", pod.name);
    }
    assert!(
        ipam_allocations(&net).is_empty(),
        "{:?}",
        net.ipam().entries()
    );

    // The node reset removes the bridge and the table.
    net.cleanup_node().await.expect("cleanup");
    let names = link_names(&node.path()).await;
    assert_eq!(names, vec!["lo".to_string()], "links left on the node");
    assert!(!net.scope.masquerade.exists().await.expect("nft"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_after_a_restart_works_from_persisted_state() {
    if !can_run() {
        return;
    }
    let id = unique();
    let node = Netns::create(format!("tugpn-{id}-node"));
    let pod = Netns::create(format!("tugpn-{id}-p"));
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = NetworkConfig::new("node-1", vec!["10.42.9.0/24".into()], data.path().into());
    config.node_netns = Some(node.path());
    let rt = runtime();
    let s = sandbox(&pod, "p");
    let first = {
        let net = PodNetwork::start(&rt, config.clone()).await.expect("start");
        net.setup(&s).await.expect("setup")
    };
    // A new agent: same data dir, nothing in memory.
    let net = PodNetwork::start(&rt, config).await.expect("restart");
    let again = net.setup(&s).await.expect("setup after restart");
    assert_eq!(again.ips, first.ips, "the sandbox keeps its address");
    // A second sandbox gets another address (the allocation survived the restart).
    let other = Netns::create(format!("tugpn-{id}-q"));
    let s2 = sandbox(&other, "q");
    let second = net.setup(&s2).await.expect("setup q");
    assert_ne!(second.ips, first.ips);
    // The pod's netns disappears before the teardown (the sandbox is gone), and its path
    // may even name a leftover plain file.
    drop(other);
    net.teardown(&s2).await.expect("teardown without its netns");
    let leftover = data.path().join("stale-netns");
    std::fs::write(&leftover, b"").expect("leftover file");
    let stale = SandboxNet {
        netns: leftover,
        ..s2.clone()
    };
    net.teardown(&stale)
        .await
        .expect("teardown with a stale netns path");
    net.teardown(&s).await.expect("teardown");
    assert!(
        ipam_allocations(&net).is_empty(),
        "{:?}",
        net.ipam().entries()
    );
    let left: Vec<String> = link_names(&node.path())
        .await
        .into_iter()
        .filter(|n| n.starts_with("tugv"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn cni_conflist(name: &str, data_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "$podCIDR"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": data_dir.display().to_string(),
            }
        }]
    })
}

fn cni_spec(conflist: Value, with_cni: bool) -> Value {
    let mut permissions = vec![
        json!({"apiGroups": [CAPABILITY_GROUP], "resources": ["ipam"], "verbs": ["get", "update", "delete"]}),
        json!({"apiGroups": [CAPABILITY_GROUP], "resources": ["netlink"], "verbs": ["update"]}),
    ];
    if with_cni {
        permissions.push(
            json!({"apiGroups": [CAPABILITY_GROUP], "resources": ["cni"], "verbs": ["create"]}),
        );
    }
    json!({
        "kind": "network",
        "source": {"builtin": "cni-adapter"},
        "permissions": permissions,
        "limits": {"timeoutMs": 30000},
        "config": conflist,
    })
}

fn cni_available() -> bool {
    let ok = ["bridge", "host-local"]
        .iter()
        .all(|p| Path::new("/usr/lib/cni").join(p).exists());
    if !ok {
        eprintln!("skipping: Debian's CNI plugins (/usr/lib/cni) are not installed");
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cni_adapter_runs_debian_bridge_and_host_local() {
    if !can_run() || !cni_available() {
        return;
    }
    let id = unique();
    let node = Netns::create(format!("tugpn-{id}-node"));
    let pod_a = Netns::create(format!("tugpn-{id}-a"));
    let pod_b = Netns::create(format!("tugpn-{id}-b"));
    let data = tempfile::tempdir().expect("tempdir");
    let cni_data = data.path().join("cni");
    let network = format!("tugtest-{id}");
    let mut config = NetworkConfig::new(
        "node-1",
        vec!["10.88.3.0/24".into()],
        data.path().join("agent"),
    );
    config.plugin = "cni-adapter".into();
    config.node_netns = Some(node.path());
    config.cni_bin_dirs = vec![PathBuf::from("/usr/lib/cni")];
    config.spec = Some(cni_spec(cni_conflist(&network, &cni_data), true));
    let net = PodNetwork::start(&runtime(), config)
        .await
        .expect("starting the cni adapter");

    let a = sandbox(&pod_a, "a");
    let b = sandbox(&pod_b, "b");
    let addr_a = net.setup(&a).await.expect("setup a");
    let addr_b = net.setup(&b).await.expect("setup b");
    let (ip_a, ip_b) = (v4(addr_a.ips[0]), v4(addr_b.ips[0]));
    let cidr: Cidr = "10.88.3.0/24".parse().expect("cidr");
    assert!(cidr.contains(addr_a.ips[0]) && cidr.contains(addr_b.ips[0]));
    assert_ne!(ip_a, ip_b);
    assert_eq!(
        addr_a.gateway,
        Some(IpAddr::V4(Ipv4Addr::new(10, 88, 3, 1)))
    );

    let (text, peer) = tcp_roundtrip(&pod_b.path(), ip_b, &pod_a.path());
    assert_eq!(text, "hello from the other side");
    assert_eq!(peer.ip(), IpAddr::V4(ip_a));
    let (_, _) = tcp_roundtrip(&node.path(), Ipv4Addr::new(10, 88, 3, 1), &pod_b.path());
    // host-local's own state: one file per allocated address.
    let allocated = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let state = cni_data.join(&network);
    assert_eq!(
        allocated(&state).len(),
        2,
        "host-local state in {}",
        state.display()
    );

    // Idempotent setup from the cached result; CHECK passes.
    assert_eq!(net.setup(&a).await.expect("setup again").ips, addr_a.ips);
    net.check(&a).await.expect("check a");
    assert_eq!(net.ipam().list_prefix("result/").len(), 2);

    net.teardown(&a).await.expect("teardown a");
    net.teardown(&b).await.expect("teardown b");
    net.teardown(&b).await.expect("teardown b again");
    assert!(
        allocated(&state).is_empty(),
        "host-local still holds addresses"
    );
    assert!(
        net.ipam().entries().is_empty(),
        "{:?}",
        net.ipam().entries()
    );
    let veths: Vec<String> = link_names(&node.path())
        .await
        .into_iter()
        .filter(|n| n.starts_with("veth"))
        .collect();
    assert!(veths.is_empty(), "{veths:?}");
    for pod in [&pod_a, &pod_b] {
        assert_eq!(link_names(&pod.path()).await, vec!["lo".to_string()]);
    }
    assert!(
        !Path::new("/var/lib/cni/networks").join(&network).exists(),
        "host-local wrote outside its dataDir"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_outside_their_scope_are_refused() {
    if !can_run() {
        return;
    }
    let id = unique();
    let node = Netns::create(format!("tugpn-{id}-node"));
    let pod = Netns::create(format!("tugpn-{id}-p"));
    // A link of the node that is not the plugin's: it must survive everything below.
    node.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "uplink0",
    ]);
    let data = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let s = sandbox(&pod, "p");
    let base = |data: &Path| {
        let mut c = NetworkConfig::new("node-1", vec!["10.42.5.0/24".into()], data.into());
        c.node_netns = Some(node.path());
        c
    };
    let bridge_spec = |config: Value| {
        let mut spec = crate::builtin::plugin_object("bridge").expect("builtin")["spec"].clone();
        spec["config"] = config;
        spec
    };

    // The bridge plugin configured to use the node's eth0 as its bridge.
    let mut c = base(&data.path().join("1"));
    c.spec = Some(bridge_spec(json!({"bridge": "eth0"})));
    let net = PodNetwork::start(&rt, c).await.expect("start");
    let e = format!(
        "{:#}",
        net.setup(&s)
            .await
            .expect_err("eth0 is not the node's bridge")
    );
    assert!(e.contains("Forbidden") && e.contains("tug0"), "{e}");

    // … naming its veths so that they could clash with the node's links.
    let mut c = base(&data.path().join("2"));
    c.spec = Some(bridge_spec(json!({"vethPrefix": "eth"})));
    let net = PodNetwork::start(&rt, c).await.expect("start");
    let e = format!(
        "{:#}",
        net.setup(&s).await.expect_err("veths must start with tugv")
    );
    assert!(e.contains("Forbidden"), "{e}");
    // Its teardown would delete `eth<hash>`: refused before anything is touched.
    let e = format!(
        "{:#}",
        net.teardown(&s)
            .await
            .expect_err("delete outside the prefix")
    );
    assert!(e.contains("Forbidden"), "{e}");

    // The bridge plugin without its netlink capability.
    let mut c = base(&data.path().join("3"));
    let mut spec = bridge_spec(json!({}));
    spec["permissions"] =
        json!([{"apiGroups": [CAPABILITY_GROUP], "resources": ["ipam"], "verbs": ["*"]}]);
    c.spec = Some(spec);
    let net = PodNetwork::start(&rt, c).await.expect("start");
    let e = format!(
        "{:#}",
        net.setup(&s).await.expect_err("no netlink capability")
    );
    assert!(e.contains("Forbidden") && e.contains("netlink"), "{e}");

    // The CNI adapter without the `cni` capability cannot run binaries.
    if cni_available() {
        let mut c = base(&data.path().join("4"));
        c.plugin = "cni-adapter".into();
        c.cni_bin_dirs = vec![PathBuf::from("/usr/lib/cni")];
        let cni_data = data.path().join("cni");
        c.spec = Some(cni_spec(
            cni_conflist(&format!("tugtest-{id}"), &cni_data),
            false,
        ));
        let net = PodNetwork::start(&rt, c).await.expect("start");
        let e = format!("{:#}", net.setup(&s).await.expect_err("no cni capability"));
        assert!(e.contains("Forbidden") && e.contains("cni"), "{e}");
        // … and with it, only file names of the CNI directories.
        let mut c = base(&data.path().join("5"));
        c.plugin = "cni-adapter".into();
        c.cni_bin_dirs = vec![PathBuf::from("/usr/lib/cni")];
        c.spec = Some(cni_spec(
            json!({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "../../bin/sh"}]}),
            true,
        ));
        let net = PodNetwork::start(&rt, c).await.expect("start");
        let e = format!(
            "{:#}",
            net.setup(&s).await.expect_err("a path is not a plugin")
        );
        assert!(e.contains("Forbidden"), "{e}");
    }

    // Nothing outside the scope was touched: the node's eth0 is there and no other
    // `eth*` link was made; the pod holds only lo.
    let names = link_names(&node.path()).await;
    assert!(names.contains(&"eth0".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("eth") && n != "eth0"),
        "{names:?}"
    );
    let eth0 = node.exec(&["ip", "-d", "link", "show", "eth0"]);
    assert!(eth0.contains("veth") && !eth0.contains("master"), "{eth0}");
    assert_eq!(link_names(&pod.path()).await, vec!["lo".to_string()]);
}

#[tokio::test]
async fn host_calls_check_the_scope_of_the_call() {
    // Without a node scope or outside a call, every network host call is refused.
    use crate::plugin::bindings::network::tugboat::plugin::{ipam_store, netlink};
    let mut ctx = host::NetworkCtx::default();
    let e = netlink::Host::delete_link(&mut ctx, "tugv1".into())
        .await
        .expect_err("no scope");
    assert_eq!(e.code, 403);
    let e = ipam_store::Host::get(&mut ctx, "k".into())
        .await
        .expect_err("no scope");
    assert_eq!(e.code, 403);
}

#[test]
fn manifests_come_from_plugin_specs() {
    let spec = crate::builtin::plugin_object("bridge").expect("builtin")["spec"].clone();
    let m = manifest_from_spec(&spec, "br-test").expect("manifest");
    assert_eq!(m.kind, PluginKind::Network);
    assert_eq!(m.config["bridge"], "br-test");
    assert!(
        m.capabilities
            .iter()
            .any(|c| c.allows(CAPABILITY_GROUP, "netlink", "update"))
    );
    assert!(
        !m.capabilities
            .iter()
            .any(|c| c.allows(CAPABILITY_GROUP, "cni", "create"))
    );
    let cni = crate::builtin::plugin_object("cni-adapter").expect("builtin")["spec"].clone();
    let m = manifest_from_spec(&cni, "tug0").expect("manifest");
    assert!(
        m.capabilities
            .iter()
            .any(|c| c.allows(CAPABILITY_GROUP, "cni", "create"))
    );
    assert!(manifest_from_spec(&json!({"kind": "admission"}), "tug0").is_err());
}
