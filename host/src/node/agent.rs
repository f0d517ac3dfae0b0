//! The node agent (the kubelet's part): registers this machine as a Node, renews its Lease,
//! and converges the pods bound to it through the native runtime (`crate::runtime`):
//! a sandbox per pod, images pulled, containers started in order (init containers first),
//! restarted per `restartPolicy` with CrashLoopBackOff, stopped gracefully on deletion, and
//! the pod's status reported (phase, conditions, container states, restart counts) with
//! Events (Pulling, Pulled, Created, Started, Killing, BackOff, Failed).
//!
//! One worker task per pod (as the kubelet's pod workers): it wakes on every change of the
//! pod and every second, compares what runs with what is declared, and acts. Everything the
//! runtime starts survives a restart of `tug` (the containers run under their own
//! supervisors); on start the agent finds the sandboxes and containers again and adopts
//! them instead of starting them anew.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use super::pod;
use super::probe::{Action, ProbeSpec, ProbeState, network_probe};
use crate::api::client::{
    ApiClient, ApiResource, DeleteParams, ListParams, Patch, PatchParams, Preconditions,
    WatchEvent, WatchParams,
};
use crate::api::object::now_rfc3339;
use crate::network::pod::{PodNetwork, SandboxNet};
use crate::runtime::container::{
    ContainerSpec, ContainerState, ContainerStatus, Mount, MountKind, Runtime, Sandbox, SandboxSpec,
};
use crate::runtime::image::{Image, ImageError, ImageStore, PullPolicy, PullProgress};

/// Settings of the agent.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The Node's name (default: the host name).
    pub node_name: String,
    /// Where pod volumes, container directories and logs live.
    pub data_dir: PathBuf,
    /// How often the Lease is renewed and the Node's status posted.
    pub heartbeat: Duration,
    /// Pods this node takes.
    pub max_pods: u32,
    /// The Node's InternalIP (default: the machine's first non-loopback IPv4 address).
    pub node_ip: Option<String>,
    /// The port of this node's logs/exec endpoint (`status.daemonEndpoints.kubeletEndpoint`),
    /// when it serves one (`tug agent`).
    pub kubelet_port: Option<u16>,
    /// The pod network (`None`: pods get a network namespace with only `lo`).
    pub network: Option<PodNetworkSettings>,
}

/// How the node's pods are networked.
#[derive(Clone, Debug)]
pub struct PodNetworkSettings {
    /// The network Plugin: the built-in `bridge` (the default) or `cni-adapter`, or a
    /// Plugin object of kind `network` with a built-in source whose `spec.config` (e.g. a
    /// CNI conflist) is used.
    pub plugin: String,
    /// The plugin's configuration instead of its Plugin's `spec.config` (e.g. a CNI
    /// conflist for `cni-adapter`; `tug server --pod-network-config FILE`).
    pub config: Option<Value>,
    /// The cluster's pod range (the nodes' `spec.podCIDR`s are blocks of it).
    pub cluster_cidr: String,
    /// The cluster DNS address pods are given in their `resolv.conf` (the kubelet's
    /// `--cluster-dns`) and the node's DNS server answers on, with the cluster domain.
    pub dns: Option<(std::net::IpAddr, String)>,
}

impl Default for PodNetworkSettings {
    fn default() -> Self {
        PodNetworkSettings {
            plugin: "bridge".into(),
            config: None,
            cluster_cidr: crate::network::pod::DEFAULT_CLUSTER_CIDR.into(),
            dns: Some((
                std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 43, 0, 10)),
                "cluster.local".into(),
            )),
        }
    }
}

impl AgentConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        AgentConfig {
            node_name: hostname(),
            data_dir,
            heartbeat: Duration::from_secs(10),
            max_pods: 110,
            node_ip: None,
            kubelet_port: None,
            network: None,
        }
    }
}

/// Reads a `--pod-network-config` file (JSON, e.g. a CNI conflist).
pub fn read_network_config(path: Option<&std::path::Path>) -> anyhow::Result<Option<Value>> {
    let Some(path) = path else { return Ok(None) };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON (a CNI conflist is)", path.display()))?;
    Ok(Some(v))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tugboat-node".into())
}

fn pods_res() -> ApiResource {
    ApiResource::new("v1", "pods")
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| now_rfc3339())
}

/// CrashLoopBackOff: 10 s doubling to 5 min, reset after 10 min of running.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    until: Instant,
    delay: Duration,
}

const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The running agent; dropping it stops its loops (containers keep running).
pub struct NodeAgent {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    agent: Arc<Agent>,
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for (_, w) in self.agent.worker_tasks.lock().drain() {
            w.abort();
        }
    }
}

struct Agent {
    client: Arc<dyn ApiClient>,
    images: Arc<ImageStore>,
    runtime: Arc<Runtime>,
    cfg: AgentConfig,
    workers: Mutex<HashMap<String, watch::Sender<Option<Arc<Value>>>>>,
    /// The pod workers' tasks (stopped with the agent; the containers keep running).
    worker_tasks: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Per `(pod uid, container)`: restart back-off.
    backoff: Mutex<HashMap<(String, String), Backoff>>,
    /// Per `(pod uid, container)`: when the image may be pulled again after a failure
    /// (Kubernetes' image back-off: 10 s doubling to 5 min).
    pull_backoff: Mutex<HashMap<(String, String), Backoff>>,
    /// Per `(pod uid, container, probe field)`: the probe's tally for the running instance.
    probes: Mutex<HashMap<(String, String, &'static str), ProbeState>>,
    /// Per `(pod uid, container)`: the previous instance, once removed (`lastState`).
    last_state: Mutex<HashMap<(String, String), ContainerStatus>>,
    /// Per `(pod uid, container)`: why it is waiting (reason, message).
    waiting: Mutex<HashMap<(String, String), (String, String)>>,
    /// Per `(pod uid, container)`: the image it runs (for imageID).
    images_of: Mutex<HashMap<(String, String), Image>>,
    /// When each pod was first seen by this agent.
    started: Mutex<HashMap<String, String>>,
    events: Arc<Semaphore>,
    host_ip: String,
    /// How long each stage of starting pods took (milliseconds; the latest
    /// [`TIMING_SAMPLES`] per stage), for `tug bench pods` and diagnosis.
    timings: Mutex<HashMap<&'static str, std::collections::VecDeque<f64>>>,
    /// Per pod uid: when its projected volumes were last refreshed.
    volumes_refreshed: Mutex<HashMap<String, Instant>>,
    /// The pod network, once started (after the Node is registered with its pod CIDR).
    network: std::sync::OnceLock<Arc<PodNetwork>>,
    /// The Service proxy and the cluster DNS server of the node (with the pod network).
    services: std::sync::OnceLock<NodeServices>,
}

/// What the node runs for Services: the nftables proxy (kube-proxy) and the cluster DNS
/// server, both fed by one pair of Service and EndpointSlice informers.
struct NodeServices {
    proxy: Arc<crate::network::service::ServiceProxy>,
    dns: Option<crate::network::service::ClusterDns>,
    informers: Vec<Arc<crate::engine::Informer>>,
}

/// The nftables table of the node's Service proxy.
pub const PROXY_TABLE: &str = "tugboat-proxy";

const TIMING_SAMPLES: usize = 10_000;

/// How often configMap, secret and downward API volumes are brought up to date.
const VOLUME_REFRESH: Duration = Duration::from_secs(5);

/// One stage's timing summary ([`NodeAgent::stage_timings`]).
#[derive(Clone, Debug)]
pub struct StageTiming {
    pub stage: &'static str,
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl NodeAgent {
    /// p50/p99 of each stage of starting pods so far (sandbox, network, image, rootfs,
    /// spec, start, report, and `first-sync`: from the pod reaching the agent to its first status report).
    pub fn stage_timings(&self) -> Vec<StageTiming> {
        let t = self.agent.timings.lock();
        let mut out: Vec<StageTiming> = t
            .iter()
            .map(|(stage, v)| {
                let mut v: Vec<f64> = v.iter().copied().collect();
                v.sort_by(f64::total_cmp);
                let q = |p: f64| {
                    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
                        .copied()
                        .unwrap_or(f64::NAN)
                };
                StageTiming {
                    stage,
                    count: v.len(),
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                }
            })
            .collect();
        out.sort_by_key(|s| s.stage);
        out
    }

    /// Stops the node's Service proxy (its nftables table goes) and DNS server. The pods
    /// keep running; `tug node reset` removes them and the pod network.
    pub async fn shutdown(&self) {
        if let Some(s) = self.agent.services.get() {
            if let Err(e) = s.proxy.shutdown().await {
                tracing::warn!(error = %e, "stopping the Service proxy");
            }
            if let Some(dns) = &s.dns
                && let Err(e) = dns.shutdown().await
            {
                tracing::warn!(error = %e, "stopping the cluster DNS");
            }
            for i in &s.informers {
                i.stop();
            }
        }
    }

    /// Forgets the stage timings gathered so far.
    pub fn clear_stage_timings(&self) {
        self.agent.timings.lock().clear();
    }

    /// Registers the Node and starts the agent's loops.
    pub async fn start(
        client: Arc<dyn ApiClient>,
        images: Arc<ImageStore>,
        runtime: Arc<Runtime>,
        cfg: AgentConfig,
    ) -> anyhow::Result<NodeAgent> {
        let agent = Arc::new(Agent {
            client,
            images,
            runtime,
            host_ip: cfg.node_ip.clone().unwrap_or_else(host_ip),
            cfg,
            workers: Mutex::new(HashMap::new()),
            worker_tasks: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            pull_backoff: Mutex::new(HashMap::new()),
            last_state: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            images_of: Mutex::new(HashMap::new()),
            started: Mutex::new(HashMap::new()),
            events: Arc::new(Semaphore::new(256)),
            timings: Mutex::new(HashMap::new()),
            volumes_refreshed: Mutex::new(HashMap::new()),
            network: std::sync::OnceLock::new(),
            services: std::sync::OnceLock::new(),
        });
        agent.register().await?;
        if let Some(settings) = agent.cfg.network.clone() {
            let net = agent
                .start_network(&settings)
                .await
                .context("starting the pod network")?;
            let services = agent
                .start_services(&settings, &net)
                .await
                .context("starting the Service proxy and the cluster DNS")?;
            let _ = agent.network.set(net);
            let _ = agent.services.set(services);
        }
        agent.heartbeat().await?;
        let mut tasks = Vec::new();
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(a.cfg.heartbeat);
            loop {
                tick.tick().await;
                if let Err(e) = a.heartbeat().await {
                    tracing::warn!(error = %e, "node heartbeat");
                }
            }
        }));
        let a = agent.clone();
        tasks.push(tokio::spawn(async move { a.pod_loop().await }));
        let a = agent.clone();
        tasks.push(tokio::spawn(async move {
            // As the kubelet's image GC (imageGCHighThresholdPercent 85): when the disk of
            // the data dir is 85% full, the images no container uses are removed.
            let mut tick = tokio::time::interval(Duration::from_secs(300));
            tick.tick().await;
            loop {
                tick.tick().await;
                let full = nix::sys::statvfs::statvfs(&a.cfg.data_dir)
                    .ok()
                    .is_some_and(|s| {
                        s.blocks() > 0
                            && (s.blocks() - s.blocks_available()) * 100 >= s.blocks() * 85
                    });
                if !full {
                    continue;
                }
                let in_use: std::collections::HashSet<String> = a
                    .images_of
                    .lock()
                    .values()
                    .flat_map(|i| [i.id.clone(), i.digest.clone(), i.reference.clone()])
                    .collect();
                let images = a.images.clone();
                match tokio::task::spawn_blocking(move || images.gc(&in_use)).await {
                    Ok(Ok(report)) => tracing::debug!(?report, "image garbage collection"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "image garbage collection"),
                    Err(e) => tracing::warn!(error = %e, "image garbage collection panicked"),
                }
            }
        }));
        tracing::info!(node = %agent.cfg.node_name, "node agent started");
        Ok(NodeAgent { tasks, agent })
    }
}

/// The first non-loopback IPv4 address of the machine (the Node's InternalIP), else
/// 127.0.0.1.
pub(crate) fn host_ip() -> String {
    // Connecting a UDP socket sends nothing; it picks the outgoing address.
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("10.255.255.255:1")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .ok()
        .filter(|ip| ip != "0.0.0.0")
        .unwrap_or_else(|| "127.0.0.1".into())
}

fn machine_capacity(data_dir: &std::path::Path, max_pods: u32) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let disk = nix::sys::statvfs::statvfs(data_dir)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0);
    json!({
        "cpu": cpus.to_string(),
        "memory": format!("{mem_kib}Ki"),
        "pods": max_pods.to_string(),
        "ephemeral-storage": disk.to_string(),
    })
}

/// Hard eviction thresholds, as conditions: memory.available < 100Mi and pid.available <
/// 5% of pid_max (the kubelet's defaults), nodefs.available < 1Gi (the kubelet's default is
/// 10%, which small machines with large shared disks are below all the time).
#[derive(Debug, Default, Clone, Copy)]
struct Pressure {
    memory: bool,
    disk: bool,
    pid: bool,
}

impl Pressure {
    fn now(data_dir: &std::path::Path) -> Pressure {
        let mem_available_kib: Option<u64> =
            std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemAvailable:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            });
        let pid_max: Option<u64> = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let pids = std::fs::read_dir("/proc").map_or(0, |d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        });
        Pressure {
            memory: mem_available_kib.is_some_and(|k| k < 100 * 1024),
            disk: nix::sys::statvfs::statvfs(data_dir)
                .ok()
                .is_some_and(|s| s.blocks_available().saturating_mul(s.fragment_size()) < 1 << 30),
            pid: pid_max.is_some_and(|m| m > 0 && (m - pids.min(m)) * 20 < m),
        }
    }
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

impl Agent {
    /// Loads the node's network plugin for the Node's `spec.podCIDRs` (allocated by the
    /// API server when the Node was created) and records the choice in
    /// `<data-dir>/network/active.json`, so that `tug node reset` can undo it.
    async fn start_network(
        &self,
        settings: &PodNetworkSettings,
    ) -> anyhow::Result<Arc<PodNetwork>> {
        let node = self
            .client
            .get(&ApiResource::new("v1", "nodes"), None, &self.cfg.node_name)
            .await
            .map_err(|e| anyhow::anyhow!("reading Node {}: {e}", self.cfg.node_name))?
            .with_context(|| format!("Node {} is gone", self.cfg.node_name))?;
        let mut pod_cidrs: Vec<String> = node
            .pointer("/spec/podCIDRs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        if pod_cidrs.is_empty() && !str_at(&node, "/spec/podCIDR").is_empty() {
            pod_cidrs.push(str_at(&node, "/spec/podCIDR").to_string());
        }
        if pod_cidrs.is_empty() {
            anyhow::bail!(
                "Node {} has no spec.podCIDR (the API server gives one to each new Node from the cluster CIDR; delete the Node to have it registered again, or run without a pod network)",
                self.cfg.node_name
            );
        }
        // A Plugin object of that name (built-in source) brings its own config, e.g. a
        // CNI conflist for `cni-adapter`.
        let spec = self
            .client
            .get(
                &ApiResource::new(
                    format!(
                        "{}/{}",
                        crate::api::admission::PLUGIN_GROUP,
                        crate::api::admission::PLUGIN_VERSION
                    ),
                    "plugins",
                ),
                None,
                &settings.plugin,
            )
            .await
            .ok()
            .flatten()
            .and_then(|p| p.get("spec").cloned());
        let spec = match (&settings.config, spec) {
            (Some(config), spec) => {
                let mut spec = match spec {
                    Some(s) => s,
                    None => crate::builtin::plugin_object(&settings.plugin)
                        .map_err(|e| anyhow::anyhow!(e))?
                        .get("spec")
                        .cloned()
                        .unwrap_or_else(|| json!({})),
                };
                spec["config"] = config.clone();
                Some(spec)
            }
            (None, spec) => spec,
        };
        if let Some(sp) = &spec
            && sp.pointer("/source/builtin").is_none()
        {
            anyhow::bail!(
                "network plugin {}: node agents load network plugins with a built-in source only (set spec.source.builtin and spec.config)",
                settings.plugin
            );
        }
        let mut config = crate::network::pod::NetworkConfig::new(
            &self.cfg.node_name,
            pod_cidrs.clone(),
            self.cfg.data_dir.clone(),
        );
        config.plugin = settings.plugin.clone();
        config.spec = spec.clone();
        config.cluster_cidr = settings.cluster_cidr.clone();
        let runtime = crate::plugin::PluginRuntime::new(crate::plugin::RuntimeConfig {
            cache_dir: Some(
                std::env::var_os("TUG_PLUGIN_CACHE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| self.cfg.data_dir.join("plugin-cache")),
            ),
            ..Default::default()
        })
        .context("starting the plugin runtime")?;
        let dir = self.cfg.data_dir.join("network");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let active = json!({"plugin": settings.plugin, "spec": spec, "nodeName": self.cfg.node_name,
            "podCIDRs": pod_cidrs, "clusterCIDR": settings.cluster_cidr,
            "dnsAddress": settings.dns.as_ref().map(|(ip, _)| ip.to_string())});
        std::fs::write(dir.join("active.json"), serde_json::to_vec_pretty(&active)?)
            .with_context(|| format!("writing {}/active.json", dir.display()))?;
        let net = PodNetwork::start(&runtime, config).await?;
        if let Some((ip, _)) = &settings.dns {
            crate::network::pod::ensure_node_address(None, *ip)
                .await
                .with_context(|| format!("giving the node the cluster DNS address {ip}"))?;
        }
        Ok(net)
    }

    /// The Service proxy (ClusterIPs and NodePorts to ready endpoints, in nftables) and the
    /// cluster DNS server on the DNS address.
    async fn start_services(
        &self,
        settings: &PodNetworkSettings,
        net: &PodNetwork,
    ) -> anyhow::Result<NodeServices> {
        use crate::network::service::{ClusterDns, DnsConfig, ProxyConfig, ServiceProxy};
        let informer = |api_version: &str, kind: &str| {
            let i = crate::engine::Informer::new(
                self.client.clone(),
                ApiResource::new(api_version, kind),
                crate::engine::InformerConfig::default(),
            );
            i.start();
            i
        };
        let services = informer("v1", "Service");
        let slices = informer("discovery.k8s.io/v1", "EndpointSlice");
        // The bridge the pods hang on: DNATed traffic through it is masqueraded, so that
        // a backend's reply to a pod on the same bridge comes back through the node.
        let bridge = match &net.config().spec {
            Some(spec) if settings.plugin != "bridge" => spec
                .pointer("/config/plugins")
                .and_then(Value::as_array)
                .and_then(|ps| ps.iter().find_map(|p| p.get("bridge")?.as_str()))
                .map(str::to_string),
            _ => Some(net.config().bridge.clone()),
        };
        let proxy = ServiceProxy::start_with(
            services.clone(),
            slices.clone(),
            ProxyConfig {
                table: PROXY_TABLE.into(),
                cluster_cidr: settings.cluster_cidr.parse().ok(),
                bridge,
                ..Default::default()
            },
        )?;
        let dns = match &settings.dns {
            Some((ip, domain)) => Some(
                ClusterDns::start_with(
                    services.clone(),
                    slices.clone(),
                    DnsConfig {
                        listen: vec![std::net::SocketAddr::new(*ip, 53)],
                        domain: domain.clone(),
                        ..Default::default()
                    },
                )
                .await?,
            ),
            None => None,
        };
        Ok(NodeServices {
            proxy,
            dns,
            informers: vec![services, slices],
        })
    }

    /// The pod's sandbox as the network sees it.
    fn sandbox_net(&self, uid: &str, ns: &str, name: &str, netns: PathBuf) -> SandboxNet {
        SandboxNet {
            pod_uid: uid.to_string(),
            namespace: ns.to_string(),
            name: name.to_string(),
            sandbox_id: uid.to_string(),
            netns,
            ifname: "eth0".into(),
        }
    }

    /// Attaches a new sandbox to the pod network (once: `network.json` records it) and
    /// writes the pod's `hosts` and `resolv.conf`.
    async fn attach_network(&self, pod: &Value, sandbox: &Sandbox) -> anyhow::Result<()> {
        let uid = str_at(pod, "/metadata/uid");
        let ns = str_at(pod, "/metadata/namespace");
        let name = str_at(pod, "/metadata/name");
        let record = self.pod_dir(uid).join("network.json");
        if record.exists() {
            return Ok(());
        }
        let host_network = pod
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let (ips, gateway) = match self.network.get() {
            Some(net) if !host_network => {
                let sb = self.sandbox_net(uid, ns, name, sandbox.netns.clone());
                let t = Instant::now();
                let a = net.setup(&sb).await?;
                self.timed("network", t);
                (
                    a.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                    a.gateway.map(|g| g.to_string()),
                )
            }
            Some(_) => (vec![self.host_ip.clone()], None),
            None => return Ok(()),
        };
        let hostname = match str_at(pod, "/spec/hostname") {
            "" => name.to_string(),
            h => h.to_string(),
        };
        let entry = ips.first().map(|ip| {
            let sub = str_at(pod, "/spec/subdomain");
            let fqdn = match (&self.cfg.network, sub) {
                (
                    Some(PodNetworkSettings {
                        dns: Some((_, domain)),
                        ..
                    }),
                    s,
                ) if !s.is_empty() => {
                    format!("{hostname}.{s}.{ns}.svc.{domain}\t")
                }
                _ => String::new(),
            };
            format!("{ip}\t{fqdn}{hostname}")
        });
        let hosts = crate::runtime::container::hosts_file(entry.as_deref());
        let resolv = self.resolv_conf(pod);
        blocking(&self.runtime, {
            let uid = uid.to_string();
            move |r| {
                r.write_pod_etc(&uid, "hosts", hosts.as_bytes())?;
                if let Some(resolv) = resolv {
                    r.write_pod_etc(&uid, "resolv.conf", resolv.as_bytes())?;
                }
                Ok(())
            }
        })
        .await?;
        std::fs::create_dir_all(self.pod_dir(uid))?;
        std::fs::write(
            &record,
            serde_json::to_vec(&json!({"ips": ips, "gateway": gateway}))?,
        )?;
        Ok(())
    }

    /// The pod's `resolv.conf` by its `dnsPolicy` and `dnsConfig` (`None`: the node's,
    /// already in place).
    fn resolv_conf(&self, pod: &Value) -> Option<String> {
        let ns = str_at(pod, "/metadata/namespace");
        let host_network = pod
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let policy = match str_at(pod, "/spec/dnsPolicy") {
            "" => "ClusterFirst",
            p => p,
        };
        let cluster = self.cfg.network.as_ref().and_then(|n| n.dns.clone());
        let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) =
            match (policy, &cluster) {
                ("None", _) => (vec![], vec![], vec![]),
                ("ClusterFirst", Some((ip, domain)))
                | ("ClusterFirstWithHostNet", Some((ip, domain)))
                    if policy == "ClusterFirstWithHostNet" || !host_network =>
                {
                    (
                        vec![ip.to_string()],
                        vec![
                            format!("{ns}.svc.{domain}"),
                            format!("svc.{domain}"),
                            domain.clone(),
                        ],
                        vec!["ndots:5".into()],
                    )
                }
                _ => {
                    // Default (and ClusterFirst without cluster DNS): the node's.
                    pod.pointer("/spec/dnsConfig")?;
                    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                    let (mut s, mut q, mut o) = (vec![], vec![], vec![]);
                    for l in host.lines() {
                        let mut w = l.split_whitespace();
                        match w.next() {
                            Some("nameserver") => s.extend(w.map(str::to_string)),
                            Some("search") => q.extend(w.map(str::to_string)),
                            Some("options") => o.extend(w.map(str::to_string)),
                            _ => {}
                        }
                    }
                    (s, q, o)
                }
            };
        let list = |p: &str| -> Vec<String> {
            pod.pointer(p)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        servers.extend(list("/spec/dnsConfig/nameservers"));
        searches.extend(list("/spec/dnsConfig/searches"));
        for o in pod
            .pointer("/spec/dnsConfig/options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = str_at(o, "/name");
            let opt = match o.get("value").and_then(Value::as_str) {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            };
            let key = name.to_string();
            options.retain(|x| x.split(':').next() != Some(key.as_str()));
            options.push(opt);
        }
        let mut out = String::new();
        if !searches.is_empty() {
            out.push_str(&format!("search {}\n", searches.join(" ")));
        }
        for s in servers.iter().take(3) {
            out.push_str(&format!("nameserver {s}\n"));
        }
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        Some(out)
    }

    async fn register(&self) -> anyhow::Result<()> {
        let name = &self.cfg.node_name;
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            }},
            "spec": {}});
        match self
            .client
            .create(&ApiResource::new("v1", "nodes"), None, node)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => Err(anyhow::anyhow!("registering node {name}: {e}")),
        }
    }

    async fn heartbeat(&self) -> anyhow::Result<()> {
        let name = &self.cfg.node_name;
        let now = now_rfc3339();
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}});
        let leases = ApiResource::new("coordination.k8s.io/v1", "leases");
        match self
            .client
            .patch(
                &leases,
                Some("kube-node-lease"),
                name,
                &Patch::Merge(json!({"spec": {"holderIdentity": name, "renewTime": now}})),
                &PatchParams::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                match self
                    .client
                    .create(&leases, Some("kube-node-lease"), lease)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_already_exists() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
        let capacity = machine_capacity(&self.cfg.data_dir, self.cfg.max_pods);
        let pressure = Pressure::now(&self.cfg.data_dir);
        let uts = nix::sys::utsname::uname().ok();
        let kernel = uts
            .as_ref()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let cond = |t: &str, status: &str, reason: &str, message: &str| {
            json!({"type": t, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        let mut status = json!({"status": {
            "capacity": capacity, "allocatable": capacity,
            "conditions": [
                if pressure.memory {
                    cond("MemoryPressure", "True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
                } else {
                    cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available")
                },
                if pressure.disk {
                    cond("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure")
                } else {
                    cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
                },
                if pressure.pid {
                    cond("PIDPressure", "True", "KubeletHasInsufficientPID", "kubelet has insufficient PID available")
                } else {
                    cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available")
                },
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": self.host_ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "kubeletVersion": crate::api::KUBE_VERSION, "kubeProxyVersion": crate::api::KUBE_VERSION,
                "operatingSystem": "linux", "architecture": std::env::consts::ARCH.replace("x86_64", "amd64"),
                "containerRuntimeVersion": format!("tugboat://{}", env!("CARGO_PKG_VERSION")),
                "osImage": os_image(), "kernelVersion": kernel,
                "machineID": std::fs::read_to_string("/etc/machine-id").unwrap_or_default().trim(),
                "systemUUID": "", "bootID": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim(),
            },
        }});
        // Keep transition times of conditions that did not change.
        if let Ok(Some(cur)) = self
            .client
            .get(&ApiResource::new("v1", "nodes"), None, name)
            .await
            && let Some(conds) = cur.pointer("/status/conditions").and_then(Value::as_array)
            && let Some(new) = status
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
        {
            for n in new.iter_mut() {
                if let Some(old) = conds.iter().find(|c| c["type"] == n["type"])
                    && old["status"] == n["status"]
                {
                    n["lastTransitionTime"] = old["lastTransitionTime"].clone();
                }
            }
        }
        if let Some(port) = self.cfg.kubelet_port {
            status["status"]["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": port}});
        }
        self.client
            .patch(
                &ApiResource::new("v1", "nodes"),
                None,
                name,
                &Patch::Merge(status),
                &PatchParams {
                    subresource: Some("status".into()),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }

    /// Lists and watches the pods bound to this node and hands each to its worker.
    async fn pod_loop(self: Arc<Self>) {
        let selector = format!("spec.nodeName={}", self.cfg.node_name);
        let mut first = true;
        loop {
            let params = ListParams {
                field_selector: Some(selector.clone()),
                ..Default::default()
            };
            let list = match self.client.list(&pods_res(), None, &params).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "node agent: listing pods");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let live: std::collections::HashSet<String> = list
                .items
                .iter()
                .map(|p| str_at(p, "/metadata/uid").to_string())
                .collect();
            for p in list.items {
                self.dispatch(Arc::new(p));
            }
            // Pods deleted while no watch ran (e.g. after a 410): their workers tear down.
            for (uid, tx) in self.workers.lock().iter() {
                if !live.contains(uid) {
                    tx.send_replace(None);
                }
            }
            if first {
                first = false;
                self.clean_orphans(&live).await;
            }
            let wp = WatchParams {
                resource_version: list.resource_version,
                field_selector: Some(selector.clone()),
                ..Default::default()
            };
            let Ok(mut stream) = self.client.watch(&pods_res(), None, &wp).await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(WatchEvent::Added(p)) | Ok(WatchEvent::Modified(p)) => {
                        self.dispatch(Arc::new(p))
                    }
                    Ok(WatchEvent::Deleted(p)) => {
                        let uid = str_at(&p, "/metadata/uid").to_string();
                        if let Some(tx) = self.workers.lock().get(&uid) {
                            tx.send_replace(None);
                        }
                    }
                    Ok(WatchEvent::Bookmark { .. }) => {}
                    Err(_) => break,
                }
            }
        }
    }

    /// Sandboxes of pods that no longer exist (deleted while the agent was down) go.
    async fn clean_orphans(&self, live: &std::collections::HashSet<String>) {
        let dir = self.cfg.data_dir.join("pods");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if !live.contains(&uid) {
                tracing::info!(pod_uid = %uid, "removing the sandbox of a pod that is gone");
                self.teardown(&uid).await;
            }
        }
    }

    fn dispatch(self: &Arc<Self>, pod: Arc<Value>) {
        let uid = str_at(&pod, "/metadata/uid").to_string();
        if uid.is_empty() {
            return;
        }
        let mut workers = self.workers.lock();
        if let Some(tx) = workers.get(&uid) {
            tx.send_replace(Some(pod));
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(uid.clone(), tx);
        let me = self.clone();
        let task = tokio::spawn({
            let uid = uid.clone();
            async move { me.pod_worker(uid, rx).await }
        });
        self.worker_tasks.lock().insert(uid, task.abort_handle());
    }

    async fn pod_worker(self: Arc<Self>, uid: String, mut rx: watch::Receiver<Option<Arc<Value>>>) {
        loop {
            let pod = rx.borrow_and_update().clone();
            let done = match pod {
                None => {
                    self.teardown(&uid).await;
                    true
                }
                Some(p) => self.sync_pod(&p).await,
            };
            if done {
                self.workers.lock().remove(&uid);
                self.worker_tasks.lock().remove(&uid);
                self.forget(&uid);
                return;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn forget(&self, uid: &str) {
        self.backoff.lock().retain(|(u, _), _| u != uid);
        self.pull_backoff.lock().retain(|(u, _), _| u != uid);
        self.last_state.lock().retain(|(u, _), _| u != uid);
        self.probes.lock().retain(|(u, _, _), _| u != uid);
        self.waiting.lock().retain(|(u, _), _| u != uid);
        self.images_of.lock().retain(|(u, _), _| u != uid);
        self.started.lock().remove(uid);
        self.volumes_refreshed.lock().remove(uid);
    }

    fn timed(&self, stage: &'static str, since: Instant) {
        let ms = since.elapsed().as_secs_f64() * 1000.0;
        let mut t = self.timings.lock();
        let v = t.entry(stage).or_default();
        if v.len() >= TIMING_SAMPLES {
            v.pop_front();
        }
        v.push_back(ms);
    }

    /// The pod's IPs on the pod network, once its sandbox is attached (`network.json` in
    /// its directory, written by [`Agent::attach_network`]); empty before.
    fn pod_ips(&self, uid: &str) -> Vec<String> {
        std::fs::read_to_string(self.pod_dir(uid).join("network.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("ips").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.data_dir.join("pods").join(uid)
    }

    /// Stops everything of a pod and removes what the agent made for it.
    async fn teardown(&self, uid: &str) {
        teardown(
            &self.runtime,
            &self.images,
            self.network.get().map(|n| n.as_ref()),
            &self.cfg.data_dir,
            uid,
            Duration::from_secs(2),
        )
        .await;
    }

    /// Converges one pod; `true` when the pod is finished with (deleted and confirmed).
    async fn sync_pod(&self, pod: &Value) -> bool {
        let uid = str_at(pod, "/metadata/uid").to_string();
        let ns = str_at(pod, "/metadata/namespace").to_string();
        let name = str_at(pod, "/metadata/name").to_string();
        if pod
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            let grace = pod
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(30);
            // All containers at once, each with the whole grace period (as the kubelet).
            let running: Vec<ContainerStatus> = self
                .runtime
                .list(&uid)
                .into_iter()
                .filter(|c| c.state == ContainerState::Running)
                .collect();
            futures::future::join_all(running.iter().map(|c| {
                self.event(
                    pod,
                    "Normal",
                    "Killing",
                    &format!("Stopping container {}", c.name),
                );
                self.stop_gracefully(pod, c, Duration::from_secs(grace))
            }))
            .await;
            self.teardown(&uid).await;
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match self
                .client
                .delete(&pods_res(), Some(&ns), &name, &params)
                .await
            {
                Ok(_) => return true,
                Err(e) if e.is_not_found() || e.is_conflict() => return true,
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "confirming a pod's deletion");
                    return false;
                }
            }
        }
        let phase = str_at(pod, "/status/phase");
        if phase == "Succeeded" || phase == "Failed" {
            // Finished: its containers are gone; keep the record.
            return false;
        }
        self.started
            .lock()
            .entry(uid.clone())
            .or_insert_with(now_rfc3339);
        let sync_start = Instant::now();
        let mut fresh = false;
        let sandbox = match self.runtime.sandbox(&uid) {
            Some(s) => s,
            None => {
                fresh = true;
                let hostname = match str_at(pod, "/spec/hostname") {
                    "" => name.clone(),
                    h => h.to_string(),
                };
                let spec = SandboxSpec {
                    pod_uid: uid.clone(),
                    namespace: ns.clone(),
                    name: name.clone(),
                    hostname,
                };
                let t = Instant::now();
                match blocking(&self.runtime, move |r| r.create_sandbox(&spec)).await {
                    Ok(s) => {
                        self.timed("sandbox", t);
                        s
                    }
                    Err(e) => {
                        self.event(
                            pod,
                            "Warning",
                            "FailedCreatePodSandBox",
                            &format!("Failed to create pod sandbox: {e:#}"),
                        );
                        return false;
                    }
                }
            }
        };
        if let Err(e) = self.attach_network(pod, &sandbox).await {
            self.event(
                pod,
                "Warning",
                "FailedCreatePodSandBox",
                &format!("Failed to create pod sandbox: {e:#}"),
            );
            // Start over on the next sync: nothing half-made stays.
            if self.runtime.list(&uid).is_empty() {
                self.teardown(&uid).await;
            }
            return false;
        }
        let statuses = self.runtime.list(&uid);
        let latest = |cname: &str| -> Option<ContainerStatus> {
            statuses
                .iter()
                .filter(|s| s.name == cname)
                .max_by_key(|s| s.restart_count)
                .cloned()
        };
        // Init containers, in order, each to completion.
        let inits = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut initialized = true;
        for c in &inits {
            let cname = str_at(c, "/name");
            match latest(cname) {
                None => {
                    self.start(pod, &sandbox, c, 0).await;
                    initialized = false;
                    break;
                }
                Some(s) if s.state != ContainerState::Exited => {
                    initialized = false;
                    break;
                }
                Some(s) if s.exit_code == Some(0) => continue,
                Some(s) => {
                    initialized = false;
                    if pod::should_restart(pod, s.exit_code.unwrap_or(1)) {
                        self.restart(pod, &sandbox, c, &s).await;
                    }
                    break;
                }
            }
        }
        if initialized {
            let containers = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for c in &containers {
                let cname = str_at(c, "/name");
                match latest(cname) {
                    None => self.start(pod, &sandbox, c, 0).await,
                    Some(s) if s.state == ContainerState::Exited => {
                        if pod::should_restart(pod, s.exit_code.unwrap_or(1)) {
                            self.restart(pod, &sandbox, c, &s).await;
                        }
                    }
                    Some(s) => self.run_probes(pod, &sandbox, c, &s).await,
                }
            }
        }
        // configMap, secret and downward API volumes follow their sources.
        let due = {
            let mut refreshed = self.volumes_refreshed.lock();
            let last = refreshed.entry(uid.clone()).or_insert_with(Instant::now);
            if last.elapsed() >= VOLUME_REFRESH {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        if due {
            self.refresh_volumes(pod).await;
        }
        let t = Instant::now();
        self.report(pod, initialized).await;
        self.timed("report", t);
        if fresh {
            self.timed("first-sync", sync_start);
        }
        false
    }

    /// Stops a running container as the kubelet does: its `lifecycle.preStop` exec hook
    /// (within the grace period; a failure is an Event, not a reason to wait), then SIGTERM,
    /// then SIGKILL when what is left of the grace period has passed.
    async fn stop_gracefully(&self, pod: &Value, st: &ContainerStatus, grace: Duration) {
        let started = Instant::now();
        let hook: Vec<String> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| str_at(c, "/name") == st.name))
            .and_then(|c| c.pointer("/lifecycle/preStop/exec/command"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !hook.is_empty() && !grace.is_zero() {
            match self.runtime.exec_sync(&st.id, &hook, grace).await {
                Ok((0, _)) => {}
                Ok((code, out)) => self.event(
                    pod,
                    "Warning",
                    "FailedPreStopHook",
                    &format!(
                        "PreStopHook failed: command {hook:?} exited with {code}: {}",
                        String::from_utf8_lossy(&out).trim()
                    ),
                ),
                Err(e) => self.event(
                    pod,
                    "Warning",
                    "FailedPreStopHook",
                    &format!("PreStopHook failed: {e:#}"),
                ),
            }
        }
        let left = grace.saturating_sub(started.elapsed());
        if let Err(e) = self.runtime.stop_container(&st.id, left).await {
            tracing::warn!(container = %st.id, error = %e, "stopping a container");
        }
    }

    /// Runs the probes of a running container that are due; a failed liveness (or startup)
    /// probe stops the container, so that its restart policy applies.
    async fn run_probes(&self, pod: &Value, sandbox: &Sandbox, c: &Value, st: &ContainerStatus) {
        let uid = str_at(pod, "/metadata/uid").to_string();
        let cname = str_at(c, "/name").to_string();
        let started = st
            .started_at
            .and_then(|t| t.elapsed().ok())
            .map(|age| Instant::now().checked_sub(age).unwrap_or_else(Instant::now))
            .unwrap_or_else(Instant::now);
        let startup_done = |me: &Self| {
            ProbeSpec::of(c, "startupProbe").is_none()
                || me
                    .probes
                    .lock()
                    .get(&(uid.clone(), cname.clone(), "startupProbe"))
                    .is_some_and(|p| p.instance == st.id && p.ok == Some(true))
        };
        for field in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let Some(spec) = ProbeSpec::of(c, field) else {
                continue;
            };
            if field != "startupProbe" && !startup_done(self) {
                continue;
            }
            if field == "startupProbe" && startup_done(self) {
                continue;
            }
            let key = (uid.clone(), cname.clone(), field);
            let now = Instant::now();
            let due = {
                let mut probes = self.probes.lock();
                let state = probes
                    .entry(key.clone())
                    .or_insert_with(|| ProbeState::new(&st.id, &spec, started));
                if state.instance != st.id {
                    *state = ProbeState::new(&st.id, &spec, started);
                }
                now >= state.next
            };
            if !due {
                continue;
            }
            let outcome = match &spec.action {
                Action::Exec(cmd) => {
                    match self.runtime.exec_sync(&st.id, cmd, spec.timeout).await {
                        Ok((0, _)) => Ok(()),
                        Ok((code, out)) => Err(format!(
                            "command {cmd:?} exited with {code}: {}",
                            String::from_utf8_lossy(&out).trim()
                        )),
                        Err(e) => Err(format!("{e:#}")),
                    }
                }
                net => network_probe(&sandbox.netns, net, spec.timeout).await,
            };
            let verdict = self
                .probes
                .lock()
                .get_mut(&key)
                .and_then(|s| s.record(&spec, outcome.is_ok(), Instant::now()));
            let kind = match field {
                "livenessProbe" => "Liveness",
                "readinessProbe" => "Readiness",
                _ => "Startup",
            };
            if let Err(message) = &outcome {
                self.event(
                    pod,
                    "Warning",
                    "Unhealthy",
                    &format!("{kind} probe failed: {message}"),
                );
            }
            if verdict == Some(false) && field != "readinessProbe" {
                self.event(
                    pod,
                    "Normal",
                    "Killing",
                    &format!(
                        "Container {cname} failed {} probe, will be restarted",
                        kind.to_lowercase()
                    ),
                );
                let grace = pod
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(30);
                self.stop_gracefully(pod, st, Duration::from_secs(grace))
                    .await;
                return;
            }
        }
    }

    /// Whether a running instance passes its readiness (and startup) probes.
    fn probes_ready(&self, uid: &str, c: &Value, instance: &str) -> (bool, bool) {
        let cname = str_at(c, "/name").to_string();
        let verdict = |field: &'static str| {
            self.probes
                .lock()
                .get(&(uid.to_string(), cname.clone(), field))
                .filter(|p| p.instance == instance)
                .and_then(|p| p.ok)
        };
        let started =
            ProbeSpec::of(c, "startupProbe").is_none() || verdict("startupProbe") == Some(true);
        let ready = started
            && (ProbeSpec::of(c, "readinessProbe").is_none()
                || verdict("readinessProbe") == Some(true));
        (started, ready)
    }

    async fn restart(&self, pod: &Value, sandbox: &Sandbox, c: &Value, last: &ContainerStatus) {
        let uid = str_at(pod, "/metadata/uid").to_string();
        let cname = str_at(c, "/name").to_string();
        let key = (uid, cname.clone());
        let now = Instant::now();
        // Ran long enough: the back-off starts over.
        let ran = match (last.started_at, last.finished_at) {
            (Some(s), Some(f)) => f.duration_since(s).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        // `Some(left)`: still backing off.
        let wait: Option<Duration> = {
            let mut backoff = self.backoff.lock();
            let b = backoff.entry(key.clone()).or_insert(Backoff {
                until: now,
                delay: Duration::ZERO,
            });
            if ran > Duration::from_secs(600) {
                b.delay = Duration::ZERO;
            }
            if b.delay.is_zero() {
                // The first restart is immediate; the next waits 10 s.
                b.delay = BACKOFF_INITIAL;
                b.until = now;
            }
            if now < b.until {
                Some(b.until - now)
            } else {
                b.until = now + b.delay;
                b.delay = (b.delay * 2).min(BACKOFF_MAX);
                None
            }
        };
        if let Some(left) = wait {
            if !self.waiting.lock().contains_key(&key) {
                self.event(
                    pod,
                    "Warning",
                    "BackOff",
                    &format!(
                        "Back-off restarting failed container {cname} in pod {}",
                        str_at(pod, "/metadata/name")
                    ),
                );
            }
            self.waiting.lock().insert(
                key,
                (
                    "CrashLoopBackOff".into(),
                    format!(
                        "back-off {}s restarting failed container={cname} pod={}_{}({})",
                        b_secs(left),
                        str_at(pod, "/metadata/name"),
                        str_at(pod, "/metadata/namespace"),
                        str_at(pod, "/metadata/uid"),
                    ),
                ),
            );
            return;
        }
        self.last_state.lock().insert(key.clone(), last.clone());
        if let Err(e) = blocking(&self.runtime, {
            let id = last.id.clone();
            move |r| r.remove_container(&id)
        })
        .await
        {
            tracing::debug!(container = %last.id, error = %e, "removing the exited instance");
        }
        let dir = self
            .pod_dir(&key.0)
            .join("containers")
            .join(format!("{cname}-{}", last.restart_count));
        let _ = self.images.unmount_rootfs(&dir);
        self.start(pod, sandbox, c, last.restart_count + 1).await;
    }

    /// Pulls the image and starts one instance of a container.
    async fn start(&self, pod: &Value, sandbox: &Sandbox, c: &Value, restart_count: u32) {
        let uid = str_at(pod, "/metadata/uid").to_string();
        let cname = str_at(c, "/name").to_string();
        let key = (uid.clone(), cname.clone());
        let image_ref = str_at(c, "/image").to_string();
        let policy = match pod::pull_policy(c) {
            "Always" => PullPolicy::Always,
            "Never" => PullPolicy::Never,
            _ => PullPolicy::IfNotPresent,
        };
        let pulling = Arc::new(Mutex::new(false));
        let progress = {
            let pulling = pulling.clone();
            move |p: PullProgress| {
                if let PullProgress::Pulling { .. } = p {
                    *pulling.lock() = true;
                }
            }
        };
        if let Some(b) = self.pull_backoff.lock().get(&key)
            && Instant::now() < b.until
        {
            // Still backing off after a failed pull.
            if let Some(w) = self.waiting.lock().get_mut(&key) {
                w.0 = "ImagePullBackOff".into();
            }
            return;
        }
        if policy != PullPolicy::Never && self.images.get(&image_ref).is_none() {
            self.event(
                pod,
                "Normal",
                "Pulling",
                &format!("Pulling image \"{image_ref}\""),
            );
        }
        let started_pull = Instant::now();
        let auth = self.pull_secrets(pod).await;
        let t_image = Instant::now();
        let image = match self
            .images
            .ensure(&image_ref, policy, &auth, &progress)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                let (reason, message) = match &e {
                    ImageError::NeverPull(_) => ("ErrImageNeverPull", e.to_string()),
                    _ => ("ErrImagePull", e.to_string()),
                };
                let already = self
                    .waiting
                    .lock()
                    .get(&key)
                    .is_some_and(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff");
                let reason = if already { "ImagePullBackOff" } else { reason };
                self.event(
                    pod,
                    "Warning",
                    "Failed",
                    &format!("Failed to pull image \"{image_ref}\": {message}"),
                );
                {
                    let now = Instant::now();
                    let mut pb = self.pull_backoff.lock();
                    let b = pb.entry(key.clone()).or_insert(Backoff {
                        until: now,
                        delay: BACKOFF_INITIAL,
                    });
                    b.until = now + b.delay;
                    b.delay = (b.delay * 2).min(BACKOFF_MAX);
                }
                self.waiting.lock().insert(
                    key,
                    (
                        reason.to_string(),
                        format!("Back-off pulling image \"{image_ref}\": {message}"),
                    ),
                );
                return;
            }
        };
        if *pulling.lock() {
            self.event(
                pod,
                "Normal",
                "Pulled",
                &format!(
                    "Successfully pulled image \"{image_ref}\" in {:.3}s. Image size: {} bytes.",
                    started_pull.elapsed().as_secs_f64(),
                    image.size
                ),
            );
        } else {
            self.event(
                pod,
                "Normal",
                "Pulled",
                &format!("Container image \"{image_ref}\" already present on machine"),
            );
        }
        self.timed("image", t_image);
        self.pull_backoff.lock().remove(&key);
        self.images_of.lock().insert(key.clone(), image.clone());
        let t = Instant::now();
        let dir = self
            .pod_dir(&uid)
            .join("containers")
            .join(format!("{cname}-{restart_count}"));
        let rootfs = match self.images.mount_rootfs(&image, &dir) {
            Ok(r) => r,
            Err(e) => {
                self.fail_start(pod, &key, "CreateContainerError", &format!("{e:#}"));
                return;
            }
        };
        self.timed("rootfs", t);
        let t = Instant::now();
        let spec = match self
            .container_spec(pod, c, &image, rootfs, restart_count)
            .await
        {
            Ok(s) => {
                self.timed("spec", t);
                s
            }
            Err(e) => {
                let _ = self.images.unmount_rootfs(&dir);
                self.fail_start(pod, &key, "CreateContainerConfigError", &format!("{e:#}"));
                return;
            }
        };
        self.event(
            pod,
            "Normal",
            "Created",
            &format!("Created container {cname}"),
        );
        let t = Instant::now();
        let started = blocking(&self.runtime, {
            let (sandbox, spec) = (sandbox.clone(), spec.clone());
            move |r| r.start_container(&sandbox, &spec)
        })
        .await;
        match started {
            Ok(()) => {
                self.timed("start", t);
                self.waiting.lock().remove(&key);
                self.event(
                    pod,
                    "Normal",
                    "Started",
                    &format!("Started container {cname}"),
                );
            }
            Err(e) => {
                let _ = self.runtime.remove_container(&spec.id);
                let _ = self.images.unmount_rootfs(&dir);
                self.fail_start(pod, &key, "RunContainerError", &format!("{e:#}"));
            }
        }
    }

    /// Registry credentials from the pod's `imagePullSecrets` (`.dockerconfigjson` or
    /// `.dockercfg` secrets of its namespace); missing secrets are skipped, as the kubelet does.
    async fn pull_secrets(&self, pod: &Value) -> Vec<crate::runtime::image::RegistryAuth> {
        let ns = str_at(pod, "/metadata/namespace");
        let mut auth = Vec::new();
        for r in pod
            .pointer("/spec/imagePullSecrets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let name = str_at(&r, "/name");
            let Ok(Some(secret)) = self
                .client
                .get(&ApiResource::new("v1", "secrets"), Some(ns), name)
                .await
            else {
                tracing::debug!(secret = %name, "imagePullSecret not found");
                continue;
            };
            for key in [".dockerconfigjson", ".dockercfg"] {
                if let Some(data) = secret
                    .pointer(&format!(
                        "/data/{}",
                        key.replace('~', "~0").replace('/', "~1")
                    ))
                    .and_then(Value::as_str)
                {
                    use base64::Engine;
                    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) {
                        auth.extend(
                            crate::runtime::image::RegistryAuth::from_docker_config_json(&bytes),
                        );
                    }
                }
            }
        }
        auth
    }

    fn fail_start(&self, pod: &Value, key: &(String, String), reason: &str, message: &str) {
        self.event(pod, "Warning", "Failed", &format!("Error: {message}"));
        self.waiting
            .lock()
            .insert(key.clone(), (reason.to_string(), message.to_string()));
    }

    /// The value of a downward API `fieldRef` (env or volume): metadata fields, single
    /// labels and annotations, node name, service account, host and pod IPs; for a volume,
    /// also all labels or annotations as `key="value"` lines.
    fn field_value(&self, pod: &Value, path: &str) -> String {
        match path {
            "metadata.name" => str_at(pod, "/metadata/name").to_string(),
            "metadata.namespace" => str_at(pod, "/metadata/namespace").to_string(),
            "metadata.uid" => str_at(pod, "/metadata/uid").to_string(),
            "spec.nodeName" => self.cfg.node_name.clone(),
            "spec.serviceAccountName" => str_at(pod, "/spec/serviceAccountName").to_string(),
            "status.hostIP" => self.host_ip.clone(),
            "status.podIP" => self
                .pod_ips(str_at(pod, "/metadata/uid"))
                .into_iter()
                .next()
                .unwrap_or_else(|| str_at(pod, "/status/podIP").to_string()),
            "metadata.labels" | "metadata.annotations" => {
                let field = path.trim_start_matches("metadata.");
                let mut lines: Vec<String> = pod
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        format!("{k}={}", serde_json::Value::from(v.as_str().unwrap_or("")))
                    })
                    .collect();
                lines.sort();
                lines.join("\n")
            }
            other => {
                let key = other
                    .strip_prefix("metadata.labels['")
                    .or_else(|| other.strip_prefix("metadata.annotations['"))
                    .and_then(|s| s.strip_suffix("']"));
                let field = if other.starts_with("metadata.labels") {
                    "labels"
                } else {
                    "annotations"
                };
                key.and_then(|k| {
                    pod.pointer(&format!(
                        "/metadata/{field}/{}",
                        k.replace('~', "~0").replace('/', "~1")
                    ))
                })
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
            }
        }
    }

    /// The files of a configMap, secret, downwardAPI or projected volume (path, content,
    /// mode); `None` for another kind of volume. A missing optional source gives no files;
    /// a missing required one is an error.
    async fn volume_files(
        &self,
        pod: &Value,
        v: &Value,
    ) -> anyhow::Result<Option<Vec<VolumeFile>>> {
        let ns = str_at(pod, "/metadata/namespace");
        let default_mode = |src: &Value| {
            src.get("defaultMode")
                .and_then(Value::as_u64)
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(0o644)
        };
        let sources: Vec<(Value, u32)> = if let Some(p) = v.get("projected") {
            let mode = default_mode(p);
            p.get("sources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s, mode))
                .collect()
        } else if let Some(src) = v.get("configMap") {
            vec![(json!({"configMap": src}), default_mode(src))]
        } else if let Some(src) = v.get("secret") {
            let mut src = src.clone();
            if let Some(o) = src.as_object_mut() {
                let name = o.get("secretName").cloned().unwrap_or(Value::Null);
                o.insert("name".into(), name);
            }
            let mode = default_mode(&src);
            vec![(json!({"secret": src}), mode)]
        } else if let Some(src) = v.get("downwardAPI") {
            vec![(json!({"downwardAPI": src}), default_mode(src))]
        } else {
            return Ok(None);
        };
        let mut files = Vec::new();
        for (source, mode) in sources {
            if let Some(d) = source.get("downwardAPI") {
                for it in d
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let mode = it
                        .get("mode")
                        .and_then(Value::as_u64)
                        .and_then(|m| u32::try_from(m).ok())
                        .unwrap_or(mode);
                    let value = if let Some(f) =
                        it.pointer("/fieldRef/fieldPath").and_then(Value::as_str)
                    {
                        self.field_value(pod, f)
                    } else if let Some(r) = it.get("resourceFieldRef") {
                        pod::resource_field(pod, r).unwrap_or_default()
                    } else {
                        continue;
                    };
                    files.push(VolumeFile {
                        path: str_at(it, "/path").to_string(),
                        data: value.into_bytes(),
                        mode,
                    });
                }
                continue;
            }
            let (res, src, secret) = if let Some(src) = source.get("configMap") {
                ("configmaps", src, false)
            } else if let Some(src) = source.get("secret") {
                ("secrets", src, true)
            } else {
                // serviceAccountToken and clusterTrustBundle sources are not served.
                continue;
            };
            let name = str_at(src, "/name");
            let obj = self
                .client
                .get(&ApiResource::new("v1", res), Some(ns), name)
                .await?;
            let optional = src
                .get("optional")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            match obj {
                Some(obj) => files.extend(projected_files(&obj, src, secret, mode)),
                None if optional => {}
                None => anyhow::bail!("{} {name:?} not found", res.trim_end_matches('s')),
            }
        }
        Ok(Some(files))
    }

    /// Rewrites the files of the pod's configMap, secret, downwardAPI and projected volumes
    /// when their sources changed (the kubelet's volume refresh).
    async fn refresh_volumes(&self, pod: &Value) {
        let uid = str_at(pod, "/metadata/uid");
        for v in pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let vdir = self.pod_dir(uid).join("volumes").join(str_at(v, "/name"));
            if !vdir.is_dir() {
                continue;
            }
            match self.volume_files(pod, v).await {
                Ok(Some(files)) => {
                    if let Err(e) = write_volume_files(&vdir, &files) {
                        tracing::warn!(pod_uid = %uid, volume = %str_at(v, "/name"), error = %e, "refreshing a volume");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(pod_uid = %uid, volume = %str_at(v, "/name"), error = %e, "refreshing a volume")
                }
            }
        }
    }

    async fn container_spec(
        &self,
        pod: &Value,
        c: &Value,
        image: &Image,
        rootfs: PathBuf,
        restart_count: u32,
    ) -> anyhow::Result<ContainerSpec> {
        let uid = str_at(pod, "/metadata/uid");
        let ns = str_at(pod, "/metadata/namespace");
        let pname = str_at(pod, "/metadata/name");
        let cname = str_at(c, "/name");
        // Environment: the image's, then the container's (later wins), with $(VAR) references.
        let mut env: Vec<(String, String)> = image
            .config
            .env
            .iter()
            .filter_map(|e| {
                e.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        env.push(("HOSTNAME".into(), pname.to_string()));
        for from in c
            .get("envFrom")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let prefix = str_at(&from, "/prefix").to_string();
            let (res, name, data_is_b64) = if let Some(cm) = from.get("configMapRef") {
                ("configmaps", str_at(cm, "/name").to_string(), false)
            } else if let Some(s) = from.get("secretRef") {
                ("secrets", str_at(s, "/name").to_string(), true)
            } else {
                continue;
            };
            if let Some(obj) = self
                .client
                .get(&ApiResource::new("v1", res), Some(ns), &name)
                .await?
                && let Some(data) = obj.get("data").and_then(Value::as_object)
            {
                for (k, v) in data {
                    let v = v.as_str().unwrap_or("");
                    let v = if data_is_b64 {
                        decode_b64(v)
                    } else {
                        v.to_string()
                    };
                    env.push((format!("{prefix}{k}"), v));
                }
            }
        }
        for e in c
            .get("env")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let k = str_at(&e, "/name").to_string();
            let v = if let Some(v) = e.get("value").and_then(Value::as_str) {
                pod::expand(v, &env)
            } else if let Some(f) = e
                .pointer("/valueFrom/fieldRef/fieldPath")
                .and_then(Value::as_str)
            {
                self.field_value(pod, f)
            } else if let Some((r, secret)) = e
                .pointer("/valueFrom/configMapKeyRef")
                .map(|r| (r, false))
                .or_else(|| e.pointer("/valueFrom/secretKeyRef").map(|r| (r, true)))
            {
                let (name, key) = (str_at(r, "/name"), str_at(r, "/key"));
                let (resource, what) = if secret {
                    ("secrets", "secret")
                } else {
                    ("configmaps", "configmap")
                };
                let obj = self
                    .client
                    .get(&ApiResource::new("v1", resource), Some(ns), name)
                    .await?;
                obj.as_ref()
                    .and_then(|o| o.pointer(&format!("/data/{key}")))
                    .and_then(Value::as_str)
                    .map(|v| if secret { decode_b64(v) } else { v.to_string() })
                    .ok_or_else(|| anyhow::anyhow!("{what} {name:?} has no key {key:?}"))?
            } else {
                String::new()
            };
            env.push((k, v));
        }
        // Later entries win.
        let mut seen = std::collections::HashSet::new();
        let mut env_final: Vec<String> = Vec::new();
        for (k, v) in env.iter().rev() {
            if seen.insert(k.clone()) {
                env_final.push(format!("{k}={v}"));
            }
        }
        env_final.reverse();
        let args: Vec<String> = pod::argv(c, &image.config)
            .iter()
            .map(|a| pod::expand(a, &env))
            .collect();
        if args.is_empty() {
            anyhow::bail!(
                "no command: the container sets none and the image has no entrypoint or cmd"
            );
        }
        let (uid_n, gid_n) = pod::user(c, pod, &image.config);
        let (cpu_shares, cpu_quota, cpu_period, memory_limit) = pod::cgroup_resources(c);
        let mounts = self.volume_mounts(pod, c).await?;
        let sc = c.get("securityContext").cloned().unwrap_or(Value::Null);
        let caps = |field: &str| -> Vec<String> {
            sc.pointer(&format!("/capabilities/{field}"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let log_path = self
            .cfg
            .data_dir
            .join("logs")
            .join(format!("{ns}_{pname}_{uid}"))
            .join(cname)
            .join(format!("{restart_count}.log"));
        Ok(ContainerSpec {
            id: format!("{uid}-{cname}-{restart_count}"),
            pod_uid: uid.to_string(),
            name: cname.to_string(),
            restart_count,
            rootfs,
            args,
            env: env_final,
            cwd: match str_at(c, "/workingDir") {
                "" if image.config.working_dir.is_empty() => "/".into(),
                "" => image.config.working_dir.clone(),
                w => w.to_string(),
            },
            uid: uid_n,
            gid: gid_n,
            additional_gids: pod::supplemental_groups(pod),
            mounts,
            cpu_shares,
            cpu_quota,
            cpu_period,
            memory_limit,
            pids_limit: Some(32768),
            privileged: sc
                .get("privileged")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            cap_add: caps("add"),
            cap_drop: caps("drop"),
            read_only_rootfs: sc
                .get("readOnlyRootFilesystem")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            allow_privilege_escalation: sc
                .get("allowPrivilegeEscalation")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            share_pid_with: None,
            tty: c.get("tty").and_then(Value::as_bool).unwrap_or(false),
            stdin: c.get("stdin").and_then(Value::as_bool).unwrap_or(false),
            log_path,
            hostname: sandbox_hostname(pod),
        })
    }

    /// The container's volume mounts: emptyDir (a directory of the pod, or tmpfs for
    /// `medium: Memory`), hostPath, configMap and secret (files written into the pod's
    /// directory).
    async fn volume_mounts(&self, pod: &Value, c: &Value) -> anyhow::Result<Vec<Mount>> {
        let uid = str_at(pod, "/metadata/uid");
        let volumes = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for vm in c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let vname = str_at(&vm, "/name");
            let Some(v) = volumes.iter().find(|v| str_at(v, "/name") == vname) else {
                anyhow::bail!("volumeMount {vname:?} names no volume of the pod");
            };
            let read_only = vm.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
            let destination = str_at(&vm, "/mountPath").to_string();
            let vdir = self.pod_dir(uid).join("volumes").join(vname);
            let (source, kind) = if let Some(ed) = v.get("emptyDir") {
                if str_at(ed, "/medium") == "Memory" {
                    (vdir, MountKind::Tmpfs { size: None })
                } else {
                    std::fs::create_dir_all(&vdir)?;
                    (vdir, MountKind::Bind)
                }
            } else if let Some(hp) = v.get("hostPath") {
                let p = PathBuf::from(str_at(hp, "/path"));
                match str_at(hp, "/type") {
                    "DirectoryOrCreate" => std::fs::create_dir_all(&p)?,
                    "Directory" if !p.is_dir() => {
                        anyhow::bail!("hostPath {} is not a directory", p.display())
                    }
                    _ => {}
                }
                (p, MountKind::Bind)
            } else if let Some(files) = self.volume_files(pod, v).await? {
                write_volume_files(&vdir, &files)?;
                (vdir, MountKind::Bind)
            } else {
                anyhow::bail!(
                    "volume {vname:?}: only emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes are supported"
                );
            };
            out.push(Mount {
                destination,
                source,
                read_only,
                kind,
            });
        }
        Ok(out)
    }

    /// Writes the pod's status where it changed.
    async fn report(&self, pod: &Value, initialized: bool) {
        let uid = str_at(pod, "/metadata/uid").to_string();
        let statuses = self.runtime.list(&uid);
        let now = now_rfc3339();
        let spec_containers = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let spec_inits = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let old_statuses = |field: &str, name: &str| -> Option<Value> {
            pod.pointer(&format!("/status/{field}"))
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
        };
        let status_of = |c: &Value, field: &str| -> (Value, bool, bool, Option<i32>) {
            let cname = str_at(c, "/name");
            let mut instances: Vec<&ContainerStatus> =
                statuses.iter().filter(|s| s.name == cname).collect();
            instances.sort_by_key(|s| s.restart_count);
            let cur = instances.last().copied();
            let remembered = self
                .last_state
                .lock()
                .get(&(uid.clone(), cname.to_string()))
                .cloned();
            let prev = instances
                .iter()
                .rev()
                .nth(1)
                .copied()
                .or(remembered.as_ref());
            let key = (uid.clone(), cname.to_string());
            let image = self.images_of.lock().get(&key).cloned();
            let waiting = self.waiting.lock().get(&key).cloned();
            let term = |s: &ContainerStatus| {
                let code = s
                    .exit_code
                    .unwrap_or(if s.signal.is_some() { 137 } else { 0 });
                let reason = if s.oom_killed {
                    "OOMKilled"
                } else if code == 0 {
                    "Completed"
                } else {
                    "Error"
                };
                let mut t = json!({"exitCode": code, "reason": reason,
                    "containerID": format!("tugboat://{}", s.id)});
                if let Some(sig) = s.signal {
                    t["signal"] = json!(sig);
                }
                if let Some(st) = s.started_at {
                    t["startedAt"] = json!(rfc3339(st));
                }
                if let Some(f) = s.finished_at {
                    t["finishedAt"] = json!(rfc3339(f));
                }
                json!({"terminated": t})
            };
            let (state, running, exit) = match (cur, &waiting) {
                (Some(s), _) if s.state == ContainerState::Running => (
                    json!({"running": {"startedAt": s.started_at.map(rfc3339).unwrap_or_else(|| now.clone())}}),
                    true,
                    None,
                ),
                (_, Some((reason, message))) => (
                    json!({"waiting": {"reason": reason, "message": message}}),
                    false,
                    None,
                ),
                (Some(s), None) if s.state == ContainerState::Exited => {
                    (term(s), false, Some(s.exit_code.unwrap_or(137)))
                }
                _ => (
                    json!({"waiting": {"reason": "ContainerCreating"}}),
                    false,
                    None,
                ),
            };
            let (started, ready) = match cur {
                Some(s) if running => self.probes_ready(&uid, c, &s.id),
                _ => (false, false),
            };
            let mut st = json!({
                "name": cname,
                "image": str_at(c, "/image"),
                "imageID": image.as_ref().map(|i| i.digest.clone()).unwrap_or_default(),
                "ready": ready,
                "started": started,
                "restartCount": cur.map_or(0, |s| s.restart_count),
                "state": state,
                "lastState": prev.map(term).unwrap_or_else(|| json!({})),
            });
            if let Some(s) = cur {
                st["containerID"] = json!(format!("tugboat://{}", s.id));
            }
            let _ = old_statuses(field, cname);
            (st, ready, running, exit)
        };
        let mut cs = Vec::new();
        let mut all_ready = true;
        let mut any_running = false;
        let mut all_exited = !spec_containers.is_empty();
        let mut any_failed = false;
        for c in &spec_containers {
            let (st, ready, running, exit) = status_of(c, "containerStatuses");
            all_ready &= ready;
            any_running |= running;
            match exit {
                Some(code) => any_failed |= code != 0,
                None => all_exited = false,
            }
            cs.push(st);
        }
        let mut ics = Vec::new();
        for c in &spec_inits {
            ics.push(status_of(c, "initContainerStatuses").0);
        }
        let restart_never = str_at(pod, "/spec/restartPolicy") == "Never";
        let restart_on_failure = str_at(pod, "/spec/restartPolicy") == "OnFailure";
        let phase = if all_exited
            && initialized
            && (restart_never || (restart_on_failure && !any_failed))
        {
            if any_failed { "Failed" } else { "Succeeded" }
        } else if initialized && (any_running || all_exited) {
            "Running"
        } else {
            "Pending"
        };
        let old_cond = |t: &str| -> Option<Value> {
            pod.pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|c| c["type"] == t).cloned())
        };
        let cond = |t: &str, ok: bool, reason: Option<&str>| {
            let status = if ok { "True" } else { "False" };
            let since = old_cond(t)
                .filter(|c| c["status"] == status)
                .and_then(|c| c.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(now));
            let mut c = json!({"type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
            if let Some(r) = reason.filter(|_| !ok) {
                c["reason"] = json!(r);
            }
            c
        };
        let ready = all_ready && initialized && phase == "Running";
        let mut conditions = vec![
            cond("Initialized", initialized, Some("ContainersNotInitialized")),
            cond("Ready", ready, Some("ContainersNotReady")),
            cond("ContainersReady", ready, Some("ContainersNotReady")),
        ];
        if let Some(s) = old_cond("PodScheduled") {
            conditions.push(s);
        }
        let start_time = pod
            .pointer("/status/startTime")
            .cloned()
            .or_else(|| self.started.lock().get(&uid).map(|s| json!(s)))
            .unwrap_or_else(|| json!(now));
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "startTime": start_time,
            "containerStatuses": cs,
            "qosClass": pod.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort")),
        });
        if !ics.is_empty() {
            status["initContainerStatuses"] = json!(ics);
        }
        let ips = self.pod_ips(&uid);
        if let Some(ip) = ips.first() {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!(ips.iter().map(|i| json!({"ip": i})).collect::<Vec<_>>());
        } else {
            if let Some(ip) = pod.pointer("/status/podIP") {
                status["podIP"] = ip.clone();
            }
            if let Some(ips) = pod.pointer("/status/podIPs") {
                status["podIPs"] = ips.clone();
            }
        }
        // Nothing changed (timestamps of unchanged conditions are kept): no write.
        let current = pod.get("status").cloned().unwrap_or(Value::Null);
        let same = [
            "phase",
            "conditions",
            "containerStatuses",
            "initContainerStatuses",
            "hostIP",
            "podIP",
            "startTime",
        ]
        .iter()
        .all(|k| current.get(*k) == status.get(*k));
        if same {
            return;
        }
        let params = PatchParams {
            subresource: Some("status".into()),
            ..Default::default()
        };
        if let Err(e) = self
            .client
            .patch(
                &pods_res(),
                Some(str_at(pod, "/metadata/namespace")),
                str_at(pod, "/metadata/name"),
                &Patch::Merge(json!({"status": status})),
                &params,
            )
            .await
            && !e.is_not_found()
        {
            tracing::debug!(pod = %str_at(pod, "/metadata/name"), error = %e, "writing pod status");
        }
    }

    /// An Event about a pod, asynchronously and best-effort.
    fn event(&self, pod: &Value, kind: &str, reason: &str, message: &str) {
        let Ok(permit) = self.events.clone().try_acquire_owned() else {
            return;
        };
        let ns = str_at(pod, "/metadata/namespace").to_string();
        let name = str_at(pod, "/metadata/name");
        let ts = now_rfc3339();
        let event = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{name}.{:x}", jiff::Timestamp::now().as_nanosecond()), "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name,
                "uid": str_at(pod, "/metadata/uid")},
            "type": kind, "reason": reason, "message": message,
            "source": {"component": "kubelet", "host": self.cfg.node_name},
            "reportingComponent": "kubelet", "reportingInstance": self.cfg.node_name,
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1});
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client
                .create(&ApiResource::new("v1", "events"), Some(&ns), event)
                .await
            {
                tracing::debug!(error = %e, "recording a node event");
            }
            drop(permit);
        });
    }
}

/// Stops every container of pod `uid` (SIGTERM, then SIGKILL after `grace`), removes its
/// sandbox, unmounts its root filesystems and removes its directory.
async fn teardown(
    runtime: &Arc<Runtime>,
    images: &ImageStore,
    network: Option<&PodNetwork>,
    data_dir: &std::path::Path,
    uid: &str,
    grace: Duration,
) {
    for c in runtime.list(uid) {
        if c.state == ContainerState::Running
            && let Err(e) = runtime.stop_container(&c.id, grace).await
        {
            tracing::warn!(container = %c.id, error = %e, "stopping a container");
        }
        if let Err(e) = blocking(runtime, {
            let id = c.id.clone();
            move |r| r.remove_container(&id)
        })
        .await
        {
            tracing::warn!(container = %c.id, error = %e, "removing a container");
        }
    }
    // Detached from the pod network while its namespace still exists.
    if let Some(net) = network
        && data_dir
            .join("pods")
            .join(uid)
            .join("network.json")
            .exists()
    {
        let netns = runtime
            .sandbox(uid)
            .map(|s| s.netns)
            .unwrap_or_else(|| runtime.sandbox_netns_path(uid));
        let sb = SandboxNet {
            pod_uid: uid.to_string(),
            namespace: String::new(),
            name: String::new(),
            sandbox_id: uid.to_string(),
            netns,
            ifname: "eth0".into(),
        };
        if let Err(e) = net.teardown(&sb).await {
            tracing::warn!(pod_uid = %uid, error = %e, "detaching a pod from the network");
        }
    }
    if let Err(e) = blocking(runtime, {
        let uid = uid.to_string();
        move |r| r.remove_sandbox(&uid)
    })
    .await
    {
        tracing::warn!(pod_uid = %uid, error = %e, "removing the sandbox");
    }
    let dir = data_dir.join("pods").join(uid);
    if let Ok(entries) = std::fs::read_dir(dir.join("containers")) {
        for e in entries.flatten() {
            if let Err(err) = images.unmount_rootfs(&e.path()) {
                tracing::warn!(dir = %e.path().display(), error = %err, "unmounting a root filesystem");
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "removing the pod directory");
    }
}

/// The runtime configuration of the node agent of `data_dir`: live state on tmpfs in
/// `/run/tugboat-<hash of the data dir>` (several servers may share a machine, e.g. in
/// tests), logs in `<data-dir>/logs`.
pub fn runtime_config(
    data_dir: &std::path::Path,
) -> anyhow::Result<crate::runtime::container::RuntimeConfig> {
    use sha2::Digest;
    let tag = hex::encode(&sha2::Sha256::digest(data_dir.to_string_lossy().as_bytes())[..6]);
    crate::runtime::container::RuntimeConfig::new(
        PathBuf::from(format!("/run/tugboat-{tag}")),
        data_dir.join("logs"),
    )
}

/// `tug node reset`: stops and removes every pod of the node agent of `data_dir` (their
/// containers, sandboxes, mounts, cgroups and directories), as `kubeadm reset` does. For a
/// node that is taken out of service, and for tests that must leave nothing behind.
pub async fn reset(data_dir: &std::path::Path) -> anyhow::Result<usize> {
    let cfg = runtime_config(data_dir)?;
    let state_pods = cfg.state_dir.join("pods");
    let runtime = Runtime::new(cfg)?;
    let images = ImageStore::open(
        &data_dir.join("images"),
        crate::runtime::image::RegistriesConfig::default(),
    )?;
    let mut uids = std::collections::BTreeSet::new();
    for dir in [data_dir.join("pods"), state_pods] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                uids.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    // A reset kills at once (no grace), 16 pods at a time.
    let network = reset_network(data_dir).await;
    futures::stream::iter(uids.iter())
        .for_each_concurrent(16, |uid| {
            teardown(
                &runtime,
                &images,
                network.as_deref(),
                data_dir,
                uid,
                Duration::ZERO,
            )
        })
        .await;
    if let Some(net) = &network
        && let Err(e) = net.cleanup_node().await
    {
        tracing::warn!(error = %e, "removing the node's pod network");
    }
    let net_dir = data_dir.join("network");
    if net_dir.join("active.json").exists() {
        // The Service proxy's table (the proxy is not running: `nft` directly).
        match std::process::Command::new("nft")
            .args(["delete", "table", "ip", PROXY_TABLE])
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) if String::from_utf8_lossy(&o.stderr).contains("No such file") => {}
            Ok(o) => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&o.stderr).trim(), "deleting the Service proxy's nftables table")
            }
            Err(e) => tracing::warn!(error = %e, "running nft"),
        }
    }
    if let Ok(text) = std::fs::read_to_string(net_dir.join("active.json"))
        && let Ok(active) = serde_json::from_str::<Value>(&text)
        && let Some(ip) = active
            .get("dnsAddress")
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
        && let Err(e) = crate::network::pod::remove_node_address(None, ip).await
    {
        tracing::warn!(error = %e, "removing the node's DNS address");
    }
    if let Err(e) = std::fs::remove_dir_all(&net_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %net_dir.display(), error = %e, "removing the network state");
    }
    drop(runtime);
    // The runtime's own directory, and the shared cgroup parent once no pod of any server
    // uses it (rmdir fails on a cgroup that still has children: that is fine).
    let state_dir = runtime_config(data_dir)?.state_dir;
    if let Err(e) = std::fs::remove_dir_all(&state_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %state_dir.display(), error = %e, "removing the runtime's state");
    }
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir(e.path().join("tugboat"));
        }
    }
    let _ = std::fs::remove_dir("/sys/fs/cgroup/tugboat");
    Ok(uids.len())
}

/// The pod network the agent of `data_dir` ran (`network/active.json`), loaded again to
/// detach its pods; `None` when it ran none or it cannot be loaded (then only the pods'
/// namespaces go, and the IPAM state with the network directory).
async fn reset_network(data_dir: &std::path::Path) -> Option<Arc<PodNetwork>> {
    let text = std::fs::read_to_string(data_dir.join("network").join("active.json")).ok()?;
    let active: Value = serde_json::from_str(&text).ok()?;
    let strings = |p: &str| -> Vec<String> {
        active
            .pointer(p)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mut config = crate::network::pod::NetworkConfig::new(
        str_at(&active, "/nodeName"),
        strings("/podCIDRs"),
        data_dir.to_path_buf(),
    );
    config.plugin = str_at(&active, "/plugin").to_string();
    config.spec = active.get("spec").filter(|s| !s.is_null()).cloned();
    config.cluster_cidr = str_at(&active, "/clusterCIDR").to_string();
    let runtime = crate::plugin::PluginRuntime::new(crate::plugin::RuntimeConfig {
        cache_dir: Some(data_dir.join("plugin-cache")),
        ..Default::default()
    })
    .ok()?;
    match PodNetwork::start(&runtime, config).await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "loading the pod network to detach the pods");
            None
        }
    }
}

/// Runs a blocking runtime call (runc, mounts, waits of tens of milliseconds to seconds)
/// off the async workers.
async fn blocking<T: Send + 'static>(
    runtime: &Arc<Runtime>,
    f: impl FnOnce(&Runtime) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let r = runtime.clone();
    tokio::task::spawn_blocking(move || f(&r))
        .await
        .map_err(|e| anyhow::anyhow!("a runtime call panicked: {e}"))?
}

fn b_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

fn sandbox_hostname(pod: &Value) -> String {
    match str_at(pod, "/spec/hostname") {
        "" => str_at(pod, "/metadata/name").to_string(),
        h => h.to_string(),
    }
}

fn decode_b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// One file of a configMap, secret, downwardAPI or projected volume.
struct VolumeFile {
    path: String,
    data: Vec<u8>,
    mode: u32,
}

/// A configMap's or secret's keys (or the listed `items`) as files, `mode` by default.
fn projected_files(obj: &Value, src: &Value, secret: bool, mode: u32) -> Vec<VolumeFile> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    let value_of = |k: &str| -> Option<Vec<u8>> {
        let data = obj.pointer(&format!("/data/{k}")).and_then(Value::as_str);
        if secret {
            data.and_then(b64)
        } else {
            data.map(|s| s.as_bytes().to_vec()).or_else(|| {
                obj.pointer(&format!("/binaryData/{k}"))
                    .and_then(Value::as_str)
                    .and_then(b64)
            })
        }
    };
    let mut files = Vec::new();
    match src.get("items").and_then(Value::as_array) {
        Some(items) => {
            for it in items {
                let mode = it
                    .get("mode")
                    .and_then(Value::as_u64)
                    .and_then(|m| u32::try_from(m).ok())
                    .unwrap_or(mode);
                if let Some(data) = value_of(str_at(it, "/key")) {
                    files.push(VolumeFile {
                        path: str_at(it, "/path").to_string(),
                        data,
                        mode,
                    });
                }
            }
        }
        None => {
            for field in ["data", "binaryData"] {
                for k in obj
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    if let Some(data) = value_of(k) {
                        files.push(VolumeFile {
                            path: k.clone(),
                            data,
                            mode,
                        });
                    }
                }
            }
        }
    }
    files
}

/// Writes a volume's files into `dir` (each replaced atomically, unchanged ones left alone)
/// and removes the files and directories that are no longer part of it.
fn write_volume_files(dir: &std::path::Path, files: &[VolumeFile]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let mut keep = std::collections::HashSet::new();
    for f in files {
        if f.path.is_empty()
            || f.path.starts_with('/')
            || f.path.split('/').any(|p| p == ".." || p.is_empty())
        {
            anyhow::bail!("refusing the path {:?} in a volume", f.path);
        }
        keep.insert(f.path.split('/').next().unwrap_or_default().to_string());
        let target = dir.join(&f.path);
        let same = std::fs::read(&target).is_ok_and(|d| d == f.data)
            && std::fs::metadata(&target).is_ok_and(|m| m.permissions().mode() & 0o7777 == f.mode);
        if same {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = target.with_extension("tugboat-tmp");
        std::fs::write(&tmp, &f.data)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(f.mode))?;
        std::fs::rename(&tmp, &target)?;
    }
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let path = e.path();
        let r = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(err) = r {
            tracing::warn!(path = %path.display(), error = %err, "removing a stale volume file");
        }
    }
    Ok(())
}
