//! Pod networking, Services and cluster DNS end to end (issue 7), with real parts only: the
//! real kubectl, real containers (runc), real veths and bridges (netlink), real nftables
//! rules and the real DNS server, all inside network namespaces the test makes.
//!
//! Each test builds two "hosts" as network namespaces: a node, where the whole `tug server
//! --node-agent` runs (so its bridge, veths, nftables tables and DNS address live there and
//! nowhere else), and a client outside the cluster, joined to the node by a veth pair
//! (192.168.200.2 → node 192.168.200.1), from which NodePorts are tried. The image is
//! imported into the node's data dir (`tug image import`), so no registry is needed.
//!
//! Whatever happens, the guard kills the server, runs `tug node reset` inside the node's
//! namespace and deletes both namespaces.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::node::get_json;
use common::{Cluster, unique};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(120);
const IMAGE: &str = "tugboat.test/busybox:1";
const NODE_IP: &str = "192.168.200.1";

fn run(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} {args:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// A node namespace running `tug server --node-agent`, and a client namespace beside it.
struct Testbed {
    node_ns: String,
    client_ns: String,
    cluster: Option<Cluster>,
    data_dir: Option<PathBuf>,
}

impl Testbed {
    fn start(args: &[&str]) -> Testbed {
        let id = unique("tn");
        let mut tb = Testbed {
            node_ns: format!("{id}-node"),
            client_ns: format!("{id}-client"),
            cluster: None,
            data_dir: None,
        };
        run("ip", &["netns", "add", &tb.node_ns]);
        run("ip", &["netns", "add", &tb.client_ns]);
        for ns in [&tb.node_ns, &tb.client_ns] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        run(
            "ip",
            &[
                "-n",
                &tb.node_ns,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &tb.client_ns,
            ],
        );
        for (ns, addr) in [
            (&tb.node_ns, "192.168.200.1/24"),
            (&tb.client_ns, "192.168.200.2/24"),
        ] {
            run("ip", &["-n", ns, "addr", "add", addr, "dev", "eth0"]);
            run("ip", &["-n", ns, "link", "set", "eth0", "up"]);
        }
        // The node's default gateway is the client side, as a node's router would be (the
        // node then has a route for Service addresses, which its proxy rewrites).
        run(
            "ip",
            &[
                "-n",
                &tb.node_ns,
                "route",
                "add",
                "default",
                "via",
                "192.168.200.2",
            ],
        );
        let mut all = vec!["--node-agent"];
        all.extend_from_slice(args);
        let cluster = Cluster::start_in_netns(&tb.node_ns, &all);
        tb.data_dir = Some(cluster.data_dir().to_path_buf());
        tb.cluster = Some(cluster);
        tb.import_image();
        tb
    }

    fn c(&self) -> &Cluster {
        self.cluster.as_ref().expect("the cluster runs")
    }

    fn data_dir(&self) -> &Path {
        self.data_dir.as_deref().expect("the data dir")
    }

    /// The busybox image, built here from Debian's busybox-static, into the node's store.
    fn import_image(&self) {
        let image = tugboat::runtime::image::testutil::busybox_image().expect("building busybox");
        let archive = self.data_dir().join("busybox.tar");
        image
            .write_docker_archive(&archive, IMAGE)
            .expect("writing the image archive");
        let tug = env!("CARGO_BIN_EXE_tug");
        let data = self.data_dir().display().to_string();
        let file = archive.display().to_string();
        run(tug, &["image", "import", "--data-dir", &data, &file]);
    }

    /// Runs a command in the node's network namespace (as a program on the node would).
    fn on_node(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["netns", "exec", &self.node_ns];
        all.extend_from_slice(args);
        Command::new("ip")
            .args(&all)
            .output()
            .expect("ip netns exec")
    }

    /// Runs a command in the client's network namespace.
    fn on_client(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["netns", "exec", &self.client_ns];
        all.extend_from_slice(args);
        Command::new("ip")
            .args(&all)
            .output()
            .expect("ip netns exec")
    }
}

impl Testbed {
    fn delete_namespaces(&self) {
        for ns in [&self.node_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(mut c) = self.cluster.take() {
            c.kill();
            if let Some(dir) = &self.data_dir {
                let out = Command::new("nsenter")
                    .arg(format!("--net=/run/netns/{}", self.node_ns))
                    .arg(env!("CARGO_BIN_EXE_tug"))
                    .args(["node", "reset", "--data-dir"])
                    .arg(dir)
                    .output();
                if let Ok(o) = out
                    && !o.status.success()
                {
                    eprintln!(
                        "tug node reset failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
            self.delete_namespaces();
            // Last: it reports (and panics on) the failed checks.
            drop(c);
        }
        self.delete_namespaces();
    }
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// An httpd pod answering its own name on :8080.
fn httpd(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "httpd", "image": IMAGE,
            "imagePullPolicy": "Never",
            "command": ["sh", "-c", "mkdir -p /www && echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www"],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}})
}

fn wait_pods_ready(c: &Cluster, ns: &str, names: &[&str]) -> Vec<String> {
    c.eventually(SETTLE, "the pods to be Ready with IPs", || {
        let mut ips = vec![];
        for n in names {
            let p = get_json(c, &["pod", "-n", ns, n]);
            let ip = p["status"]["podIP"].as_str()?.to_string();
            if !is_ready(&p) {
                return None;
            }
            ips.push(ip);
        }
        Some(ips)
    })
}

fn exec(c: &Cluster, ns: &str, pod: &str, cmd: &str) -> std::process::Output {
    c.kubectl(&["exec", "-n", ns, pod, "--", "sh", "-c", cmd])
}

fn exec_ok(c: &Cluster, ns: &str, pod: &str, cmd: &str) -> String {
    let out = exec(c, ns, pod, cmd);
    if !out.status.success() {
        panic!(
            "kubectl exec {pod} -- {cmd} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (Some((net, len)), Ok(ip)) = (cidr.split_once('/'), ip.parse::<std::net::Ipv4Addr>())
    else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<std::net::Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Veth links left in the node's namespace (its own `eth0` to the client excluded).
fn node_veths(tb: &Testbed) -> Vec<String> {
    let out = tb.on_node(&["ip", "-j", "link", "show", "type", "veth"]);
    let links: Value = serde_json::from_slice(&out.stdout).unwrap_or(json!([]));
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .filter(|n| n != "eth0")
        .collect()
}

// Debian's busybox 1.35 `wget` crashes (SIGSEGV) when given `-T`: timeouts come from
// `timeout` here.

/// The scenario of the proof: pod to pod, a Service over a 2-replica Deployment
/// (ClusterIP balancing, DNS, NodePort from the node and from outside, fail-fast with no
/// endpoints), then nothing of theirs left behind.
fn scenario(tb: &Testbed, ipam_empty: &dyn Fn(&Testbed) -> Result<(), String>) {
    let c = tb.c();
    let node = c.eventually(SETTLE, "the node to be Ready", || {
        let nodes = get_json(c, &["nodes"]);
        nodes["items"]
            .as_array()
            .and_then(|a| a.first().cloned())
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
    });
    let pod_cidr = node["spec"]["podCIDR"]
        .as_str()
        .expect("the node has a pod CIDR")
        .to_string();
    check!(
        in_cidr(
            pod_cidr.split('/').next().unwrap_or_default(),
            "10.42.0.0/16"
        ),
        "pod CIDR {pod_cidr}"
    );
    let ns = unique("net");
    c.kubectl_ok(&["create", "namespace", &ns]);

    // 1. Two pods reach each other by pod IP (ping and HTTP), without NAT.
    let mut client = httpd("client", json!({"role": "client"}));
    client["spec"]["containers"][0]["command"] = json!(["sleep", "3600"]);
    client["spec"]["containers"][0]
        .as_object_mut()
        .expect("container")
        .remove("readinessProbe");
    for p in [
        httpd("a", json!({"role": "peer"})),
        httpd("b", json!({"role": "peer"})),
        client,
    ] {
        c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &p.to_string());
    }
    let ips = wait_pods_ready(c, &ns, &["a", "b", "client"]);
    let (ip_a, ip_b) = (&ips[0], &ips[1]);
    for ip in &ips {
        check!(in_cidr(ip, &pod_cidr), "pod IP {ip} in {pod_cidr}");
    }
    check!(
        ips.iter().collect::<BTreeSet<_>>().len() == 3,
        "distinct pod IPs {ips:?}"
    );
    exec_ok(c, &ns, "a", &format!("ping -c 1 -W 3 {ip_b}"));
    exec_ok(c, &ns, "b", &format!("ping -c 1 -W 3 {ip_a}"));
    check_eq!(
        exec_ok(
            c,
            &ns,
            "a",
            &format!("timeout 5 wget -q -O - http://{ip_b}:8080/")
        )
        .trim(),
        "b"
    );
    check_eq!(
        exec_ok(
            c,
            &ns,
            "b",
            &format!("timeout 5 wget -q -O - http://{ip_a}:8080/")
        )
        .trim(),
        "a"
    );
    // The pod sees its own address on eth0 and a default route.
    let addr = exec_ok(c, &ns, "a", "ip -o -4 addr show dev eth0");
    check!(addr.contains(ip_a.as_str()), "eth0 of a: {addr}");

    // 2. A Service over a 2-replica Deployment.
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": httpd("x", json!({"app": "web"}))}});
    let mut deploy = deploy;
    deploy["spec"]["template"]
        .as_object_mut()
        .expect("template")
        .remove("apiVersion");
    deploy["spec"]["template"]
        .as_object_mut()
        .expect("template")
        .remove("kind");
    deploy["spec"]["template"]["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("name");
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &deploy.to_string());
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}});
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &svc.to_string());
    let svc = get_json(c, &["service", "-n", &ns, "web"]);
    let cluster_ip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("a cluster IP")
        .to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port");
    let backends: BTreeSet<String> = c.eventually(SETTLE, "2 ready web endpoints", || {
        let pods = get_json(c, &["pods", "-n", &ns, "-l", "app=web"]);
        let names: BTreeSet<String> = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| is_ready(p))
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let slices = get_json(
            c,
            &[
                "endpointslices",
                "-n",
                &ns,
                "-l",
                "kubernetes.io/service-name=web",
            ],
        );
        let ready = slices["items"]
            .as_array()?
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .count();
        (names.len() == 2 && ready == 2).then_some(names)
    });
    // Repeated requests to the ClusterIP from a third pod reach both backends.
    let seen: BTreeSet<String> =
        c.eventually(SETTLE, "the ClusterIP to reach both backends", || {
            let out = exec(
                c,
                &ns,
                "client",
                &format!(
                    "for i in $(seq 30); do timeout 3 wget -q -O - http://{cluster_ip}/; done"
                ),
            );
            let seen: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            (seen == backends).then_some(seen)
        });
    check_eq!(seen, backends);
    // The DNS name resolves from a pod, through the search path too.
    let fqdn = format!("web.{ns}.svc.cluster.local");
    let looked_up = exec_ok(c, &ns, "client", &format!("nslookup {fqdn}"));
    check!(
        looked_up.contains(&cluster_ip),
        "nslookup {fqdn} gave:\n{looked_up}"
    );
    let by_name = exec_ok(c, &ns, "client", "timeout 5 wget -q -O - http://web/");
    check!(
        backends.contains(by_name.trim()),
        "http://web/ answered {by_name:?}"
    );
    let resolv = exec_ok(c, &ns, "client", "cat /etc/resolv.conf");
    check!(
        resolv.contains("nameserver 10.43.0.10")
            && resolv.contains(&format!("search {ns}.svc.cluster.local svc.cluster.local")),
        "resolv.conf:\n{resolv}"
    );
    // A NodePort answers from the node itself and from outside the cluster, and the
    // ClusterIP from the node.
    let url = format!("http://{NODE_IP}:{node_port}/");
    for (who, out) in [
        (
            "node",
            tb.on_node(&["timeout", "5", "busybox", "wget", "-q", "-O", "-", &url]),
        ),
        (
            "client",
            tb.on_client(&["timeout", "5", "busybox", "wget", "-q", "-O", "-", &url]),
        ),
        (
            "node (ClusterIP)",
            tb.on_node(&[
                "timeout",
                "5",
                "busybox",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{cluster_ip}/"),
            ]),
        ),
    ] {
        let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
        check!(
            out.status.success() && backends.contains(&body),
            "{url} from the {who}: {body:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No ready endpoints: connections fail fast (refused), not after a timeout.
    c.kubectl_ok(&["scale", "-n", &ns, "deployment/web", "--replicas=0"]);
    c.eventually(SETTLE, "no ready web endpoints", || {
        let slices = get_json(
            c,
            &[
                "endpointslices",
                "-n",
                &ns,
                "-l",
                "kubernetes.io/service-name=web",
            ],
        );
        let ready = slices["items"]
            .as_array()?
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .count();
        (ready == 0).then_some(())
    });
    let failed_fast = c.eventually(Duration::from_secs(10), "a fast failure", || {
        let t = Instant::now();
        let out = exec(
            c,
            &ns,
            "client",
            &format!("timeout 20 wget -q -O - http://{cluster_ip}/"),
        );
        let took = t.elapsed();
        (!out.status.success() && took < Duration::from_secs(5)).then_some(took)
    });
    eprintln!("a ClusterIP without endpoints failed in {failed_fast:?} (kubectl exec included)");

    // 4. Everything deleted: no veth, no nftables rule and no IPAM entry of theirs remains.
    c.kubectl_ok(&["delete", "namespace", &ns, "--wait=true", "--timeout=120s"]);
    c.eventually(SETTLE, "the pods' veths to be gone", || {
        node_veths(tb).is_empty().then_some(())
    });
    let rules =
        String::from_utf8_lossy(&tb.on_node(&["nft", "list", "ruleset"]).stdout).into_owned();
    check!(
        !rules.contains(&cluster_ip) && !rules.contains(&node_port.to_string()),
        "rules of the deleted Service remain:\n{rules}"
    );
    for ip in &ips {
        check!(
            !rules.contains(ip.as_str()),
            "rules mention pod {ip}:\n{rules}"
        );
    }
    c.eventually(SETTLE, "the IPAM entries to be released", || {
        ipam_empty(tb).ok()
    });
    if let Err(e) = ipam_empty(tb) {
        common::fail(e);
    }
}

#[test]
fn bridge_plugin_pods_services_and_dns() {
    let tb = Testbed::start(&["--pod-network", "bridge"]);
    scenario(&tb, &|tb| {
        let path = tb.data_dir().join("network").join("bridge.json");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let entries: Value = serde_json::from_str(&text).unwrap_or(json!({}));
        let left: Vec<String> = entries
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .filter(|k| k.starts_with("ip/") || k.starts_with("sandbox/"))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("IPAM entries left in {}: {left:?}", path.display()))
        }
    });
}

#[test]
fn cni_adapter_with_debian_bridge_and_host_local() {
    let dir = tempfile::Builder::new()
        .prefix("tug-cni-")
        .tempdir()
        .expect("a temp dir");
    let ipam_dir = dir.path().join("host-local");
    let name = unique("tugcni");
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "ipMasq": false,
            "ipam": {"type": "host-local", "dataDir": ipam_dir.display().to_string(),
                "ranges": [[{"subnet": "$podCIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}
        }]
    });
    let conf = dir.path().join("10-tugboat.conflist");
    std::fs::write(&conf, conflist.to_string()).expect("writing the conflist");
    let conf_arg = conf.display().to_string();
    let tb = Testbed::start(&[
        "--pod-network",
        "cni-adapter",
        "--pod-network-config",
        &conf_arg,
    ]);
    let net_dir = ipam_dir.join(&name);
    scenario(&tb, &|_| {
        // host-local keeps one file per allocated address (plus its lock and the last
        // reserved address).
        let left: Vec<String> = std::fs::read_dir(&net_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("host-local still holds {left:?}"))
        }
    });
    // The bridge of the CNI plugin is the conflist's, not tug0.
    let links = String::from_utf8_lossy(&tb.on_node(&["ip", "-o", "link"]).stdout).into_owned();
    check!(links.contains("cni0"), "links on the node:\n{links}");
    drop(tb);
}
