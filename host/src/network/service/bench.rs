//! `tug bench services`: what the Service proxy costs and how fast it follows changes.
//!
//! In network namespaces of its own (a "node" with two "pods" on a bridge, see
//! [`super::testbed`]; needs root), with a real in-process API server, engine informers
//! and the proxy programming nftables in the node's namespace:
//!
//! - **programming latency**: an EndpointSlice update moves the only ready endpoint of a
//!   Service from one pod to the other; the time from the API write returning until a
//!   connection from the node to the ClusterIP reaches the new pod (p50/p99 over
//!   `changes` changes), with `services` other Services (2 endpoints each) in the table;
//!   also the proxy's own apply time (building the ruleset and running `nft`);
//! - **connection rate**: sequential TCP connections (connect, read a line, close) from
//!   the node through the ClusterIP against directly to the pod's IP, and their ratio.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::proxy::{ProxyConfig, ServiceProxy};
use super::testbed::{BRIDGE, NsWorker, Testbed, fetch, unique_id};
use crate::api::client::{ApiClient, ApiResource, LocalClient};
use crate::api::{Api, ApiConfig};
use crate::engine::{Engine, EngineConfig};
use crate::store::redb::{RedbStore, RedbStoreConfig};

/// The benchmark's knobs.
#[derive(clap::Args, Debug, Clone)]
pub struct ServicesArgs {
    /// Endpoint changes timed for the programming latency.
    #[arg(long, default_value_t = 100)]
    pub changes: usize,
    /// Other Services in the table while timing (2 endpoints each).
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// Connections for each connection-rate run.
    #[arg(long, default_value_t = 2000)]
    pub connections: usize,
}

impl Default for ServicesArgs {
    fn default() -> Self {
        ServicesArgs {
            changes: 100,
            services: 1000,
            connections: 2000,
        }
    }
}

/// The figures.
#[derive(Clone, Debug)]
pub struct Report {
    pub services: usize,
    pub changes: usize,
    /// EndpointSlice write → traffic reaches the new endpoint.
    pub programming_p50: Duration,
    pub programming_p99: Duration,
    pub programming_max: Duration,
    /// The proxy's apply time (ruleset + `nft`) for the last sync, median over changes.
    pub apply_p50: Duration,
    /// Connections per second through the ClusterIP.
    pub cluster_ip_per_sec: f64,
    /// Connections per second directly to the pod IP.
    pub direct_per_sec: f64,
}

impl Report {
    /// ClusterIP rate / direct rate.
    pub fn ratio(&self) -> f64 {
        if self.direct_per_sec > 0.0 {
            self.cluster_ip_per_sec / self.direct_per_sec
        } else {
            0.0
        }
    }

    /// Print the figures.
    pub fn print(&self) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "  programming latency (slice write → traffic at the new endpoint), {} changes, {} other services:\n    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; proxy apply (ruleset + nft) p50 {:.1} ms",
            self.changes,
            self.services,
            ms(self.programming_p50),
            ms(self.programming_p99),
            ms(self.programming_max),
            ms(self.apply_p50),
        );
        println!(
            "  connection rate (sequential connect+read+close from the node): via ClusterIP {:.0}/s, direct to the pod {:.0}/s, ratio {:.2}",
            self.cluster_ip_per_sec,
            self.direct_per_sec,
            self.ratio()
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn rv(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn slice_for(name: &str, service: &str, eps: &[(Ipv4Addr, bool)]) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps.iter().map(|(ip, ready)| json!({
            "addresses": [ip.to_string()], "conditions": {"ready": ready}
        })).collect::<Vec<_>>(),
    })
}

/// Sequential connections to `addr` from the worker's namespace: connections per second.
async fn rate(node: &NsWorker, addr: SocketAddr, n: usize) -> Result<f64> {
    node.run(move || -> Result<f64> {
        for _ in 0..20.min(n) {
            fetch(addr, Duration::from_secs(2)).with_context(|| format!("warm-up to {addr}"))?;
        }
        let t = Instant::now();
        for _ in 0..n {
            fetch(addr, Duration::from_secs(2)).with_context(|| format!("connecting to {addr}"))?;
        }
        Ok(n as f64 / t.elapsed().as_secs_f64())
    })
    .await?
}

/// Run the benchmark and print its figures (needs root).
pub async fn run(args: &ServicesArgs) -> Result<Report> {
    if !nix::unistd::geteuid().is_root() {
        bail!("tug bench services needs root (network namespaces and nftables)");
    }
    let bed = Testbed::new(2, 8080).context("building the test network")?;
    let node = NsWorker::start(&bed.node)?;

    let dir = tempfile::tempdir().context("temp dir")?;
    let store = RedbStore::open(&dir.path().join("store.redb"), RedbStoreConfig::default())
        .context("opening the store")?;
    let api = Api::new(store, ApiConfig::default());
    api.ensure_default_namespaces().await?;
    let client: Arc<dyn ApiClient> = Arc::new(LocalClient::new(api, "bench"));
    let engine = Engine::new(client.clone(), EngineConfig::default());
    let result = measure(args, &bed, &node, &client, &engine).await;
    engine.shutdown().await;
    let report = result?;
    report.print();
    Ok(report)
}

async fn measure(
    args: &ServicesArgs,
    bed: &Testbed,
    node: &NsWorker,
    client: &Arc<dyn ApiClient>,
    engine: &Engine,
) -> Result<Report> {
    let services = ApiResource::new("v1", "services");
    let slices = ApiResource::new("discovery.k8s.io/v1", "endpointslices");

    // Filler Services, created before the proxy starts (its first sync takes them all).
    let started = Instant::now();
    for i in 0..args.services {
        let name = format!("filler-{i}");
        client
            .create(
                &services,
                Some("default"),
                json!({"metadata": {"name": name}, "spec": {
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
            )
            .await?;
        let a = Ipv4Addr::new(10, 44, (i / 250) as u8, (i % 250) as u8 + 1);
        let b = Ipv4Addr::new(10, 45, (i / 250) as u8, (i % 250) as u8 + 1);
        client
            .create(
                &slices,
                Some("default"),
                slice_for(&format!("{name}-1"), &name, &[(a, true), (b, true)]),
            )
            .await?;
    }
    println!(
        "  {} filler services created in {:.1} s",
        args.services,
        started.elapsed().as_secs_f64()
    );

    let proxy = ServiceProxy::start(
        engine,
        ProxyConfig {
            table: format!("tug-bench-{}", unique_id()),
            netns: Some(bed.node.path()),
            cluster_cidr: Some("10.42.0.0/16".parse()?),
            bridge: Some(BRIDGE.into()),
            ..ProxyConfig::default()
        },
    )?;
    let result = measure_with_proxy(args, bed, node, client, &proxy).await;
    if let Err(e) = proxy.shutdown().await {
        tracing::warn!(error = %format!("{e:#}"), "removing the bench's nft table");
    }
    result
}

async fn measure_with_proxy(
    args: &ServicesArgs,
    bed: &Testbed,
    node: &NsWorker,
    client: &Arc<dyn ApiClient>,
    proxy: &ServiceProxy,
) -> Result<Report> {
    let services = ApiResource::new("v1", "services");
    let slices = ApiResource::new("discovery.k8s.io/v1", "endpointslices");
    let svc = client
        .create(
            &services,
            Some("default"),
            json!({"metadata": {"name": "bench"}, "spec": {
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        )
        .await?;
    let cip: Ipv4Addr = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .context("the Service got no clusterIP")?;
    let cluster = SocketAddr::from((cip, 80));
    let (ip0, ip1) = (bed.pods[0].ip, bed.pods[1].ip);
    let mut slice = client
        .create(
            &slices,
            Some("default"),
            slice_for("bench-1", "bench", &[(ip0, true), (ip1, false)]),
        )
        .await?;
    proxy
        .wait_for_revisions(rv(&svc), rv(&slice), Duration::from_secs(30))
        .await?;
    let st = proxy.status();
    println!(
        "  rules for {} service ports, {} endpoints; the sync adding the bench Service took {:.1} ms ({} of {} syncs replaced the whole table)",
        st.service_ports,
        st.endpoints,
        st.last_sync.unwrap_or_default().as_secs_f64() * 1000.0,
        st.full_syncs,
        st.syncs,
    );

    // Connection rate first, on a fresh conntrack table: the polling below leaves
    // thousands of entries whose reply tuples new DNATed connections from the same client
    // address can clash with (the SYN dropped, resent a second later). The Service's one
    // ready endpoint is pod0: through the ClusterIP, then directly.
    let cluster_ip_per_sec = rate(node, cluster, args.connections).await?;
    let direct_per_sec = rate(node, SocketAddr::from((ip0, 8080)), args.connections).await?;

    // Programming latency.
    let mut latencies = Vec::with_capacity(args.changes);
    let mut applies = Vec::with_capacity(args.changes);
    for i in 0..args.changes {
        let target = (i + 1) % 2;
        let want = format!("pod{target}");
        slice["endpoints"][0]["conditions"]["ready"] = json!(target == 0);
        slice["endpoints"][1]["conditions"]["ready"] = json!(target == 1);
        slice = client
            .update(&slices, Some("default"), slice.clone())
            .await?;
        let t0 = Instant::now();
        let reached = node
            .run(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if let Ok(name) = fetch(cluster, Duration::from_millis(500))
                        && name == want
                    {
                        return true;
                    }
                    // About 1,000 connections a second: the ephemeral ports (held in
                    // TIME_WAIT for a minute) last the whole run.
                    std::thread::sleep(Duration::from_millis(1));
                }
                false
            })
            .await?;
        let took = t0.elapsed();
        if !reached {
            bail!("change {i}: traffic did not reach pod{target} within 10 s");
        }
        latencies.push(took);
        // The apply that carried this change.
        let st = proxy
            .wait_for_revisions(0, rv(&slice), Duration::from_secs(10))
            .await?;
        applies.push(st.last_sync.unwrap_or_default());
    }
    latencies.sort();
    applies.sort();

    Ok(Report {
        services: args.services,
        changes: args.changes,
        programming_p50: percentile(&latencies, 0.5),
        programming_p99: percentile(&latencies, 0.99),
        programming_max: latencies.last().copied().unwrap_or_default(),
        apply_p50: percentile(&applies, 0.5),
        cluster_ip_per_sec,
        direct_per_sec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark end to end at a small size (root only).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_runs_small() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (network namespaces and nft)");
            return;
        }
        let r = run(&ServicesArgs {
            changes: 5,
            services: 20,
            connections: 50,
        })
        .await
        .expect("bench");
        assert_eq!(r.changes, 5);
        assert!(r.programming_p50 > Duration::ZERO);
        assert!(r.programming_max < Duration::from_secs(2), "{r:?}");
        assert!(r.cluster_ip_per_sec > 0.0 && r.direct_per_sec > 0.0);
    }

    /// The benchmark at its default size: `cargo test -p tugboat --lib
    /// network::service::bench -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a benchmark (about a minute)"]
    async fn bench_default_size() {
        run(&ServicesArgs::default()).await.expect("bench");
    }
}
