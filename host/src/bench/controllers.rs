//! `tug bench controllers`: the controllers at scale. Starts a real `tug server` with
//! simulated nodes, creates `deployments` Deployments of `replicas` replicas each through
//! the API (several connections), and measures the time until every Deployment reports all
//! its replicas available, the server's CPU time over the run, and each controller's
//! reconcile count and latency (from the Plugins' status).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use super::{Client, ServerProcess};

#[derive(Args, Debug, Clone)]
pub struct ControllersArgs {
    /// Deployments to create.
    #[arg(long, default_value_t = 1000)]
    pub deployments: usize,
    /// Replicas of each.
    #[arg(long, default_value_t = 10)]
    pub replicas: usize,
    /// Simulated nodes. Each takes 110 pods (the kubelet's default), and the scheduler
    /// respects that: 10,000 pods need at least 91 nodes.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Connections creating Deployments.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // /proc reports clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    Some(ticks / 100.0)
}

fn deployment(i: usize, replicas: usize) -> Vec<u8> {
    let name = format!("bench-{i}");
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]},
            },
        },
    })
    .to_string()
    .into_bytes()
}

async fn get_json(c: &mut Client, path: &str) -> Result<Value> {
    let (code, body) = c.request("GET", path, None).await?;
    if code != 200 {
        bail!("GET {path}: {code}: {}", String::from_utf8_lossy(&body));
    }
    serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
}

pub async fn bench_controllers(args: ControllersArgs) -> Result<()> {
    let nodes = args.nodes.to_string();
    let server = ServerProcess::start_with(None, &["--simulated-nodes", &nodes]).await?;
    let pid = server.child.id().context("the server has no pid")?;
    let mut c = server.client().await?;
    // Wait for the built-in controllers to be running.
    let t_ready = Instant::now();
    loop {
        let plugins = get_json(&mut c, "/apis/tugboat.dev/v1alpha1/plugins").await?;
        let items = plugins["items"].as_array().cloned().unwrap_or_default();
        let ready = items
            .iter()
            .filter(|p| p["spec"]["kind"] == "controller")
            .all(|p| p["status"]["phase"] == "Ready");
        if ready && !items.is_empty() {
            break;
        }
        if t_ready.elapsed() > Duration::from_secs(120) {
            bail!("the built-in controllers did not become Ready in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ns = "bench";
    let (code, body) = c
        .request(
            "POST",
            "/api/v1/namespaces",
            Some(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await?;
    if code != 201 {
        bail!(
            "creating the namespace: {code} {}",
            String::from_utf8_lossy(&body)
        );
    }
    println!(
        "controllers bench: {} Deployments × {} replicas = {} pods on {} simulated nodes (release build: {})",
        args.deployments,
        args.replicas,
        args.deployments * args.replicas,
        args.nodes,
        !cfg!(debug_assertions)
    );
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..args.clients.max(1) {
        let mut client = server.client().await?;
        let (n, clients, replicas) = (args.deployments, args.clients.max(1), args.replicas);
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while i < n {
                let (code, body) = client
                    .request(
                        "POST",
                        "/apis/apps/v1/namespaces/bench/deployments",
                        Some(deployment(i, replicas)),
                    )
                    .await?;
                if code != 201 {
                    bail!(
                        "creating deployment {i}: {code} {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                i += clients;
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.context("a creating task failed")??;
    }
    let created = t0.elapsed();
    println!(
        "  created {} Deployments in {:.2} s",
        args.deployments,
        created.as_secs_f64()
    );
    let want = args.deployments * args.replicas;
    let mut last_report = Instant::now();
    let converged = loop {
        let list = get_json(&mut c, "/apis/apps/v1/namespaces/bench/deployments").await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let available: usize = items
            .iter()
            .filter(|d| {
                d["status"]["availableReplicas"].as_u64() == Some(args.replicas as u64)
                    && d["status"]["updatedReplicas"].as_u64() == Some(args.replicas as u64)
            })
            .count();
        let pods_available: u64 = items
            .iter()
            .filter_map(|d| d["status"]["availableReplicas"].as_u64())
            .sum();
        if available == args.deployments {
            break t0.elapsed();
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            println!(
                "  … {:.0} s: {available}/{} Deployments available, {pods_available}/{want} pods available",
                t0.elapsed().as_secs_f64(),
                args.deployments
            );
            last_report = Instant::now();
        }
        if t0.elapsed() > Duration::from_secs(args.timeout) {
            bail!(
                "not converged after {} s: {available}/{} Deployments available",
                args.timeout,
                args.deployments
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    println!(
        "  converged: all {} Deployments Available ({want} pods Running and Ready) {:.2} s after the first create ({:.0} pods/s)",
        args.deployments,
        converged.as_secs_f64(),
        want as f64 / converged.as_secs_f64()
    );
    println!(
        "  server CPU time: {cpu:.1} s ({:.2} ms per pod; {:.0}% of one core over the run); RSS {} MiB",
        cpu * 1000.0 / want as f64,
        cpu * 100.0 / converged.as_secs_f64(),
        server.rss_kib().unwrap_or(0) / 1024
    );
    // Let the status sync publish the final counters.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let plugins = get_json(&mut c, "/apis/tugboat.dev/v1alpha1/plugins").await?;
    println!(
        "  {:<22} {:>8} {:>8} {:>10} {:>10}",
        "plugin", "calls", "errors", "p50 ms", "p99 ms"
    );
    for p in plugins["items"].as_array().into_iter().flatten() {
        let calls = p["status"]["calls"].as_u64().unwrap_or(0);
        if calls == 0 {
            continue;
        }
        let m = &p["status"]["controller"];
        let f = |v: &Value| {
            v.as_f64()
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "  {:<22} {:>8} {:>8} {:>10} {:>10}",
            p["metadata"]["name"].as_str().unwrap_or(""),
            calls,
            p["status"]["errors"].as_u64().unwrap_or(0),
            f(&m["latencyP50Ms"]),
            f(&m["latencyP99Ms"]),
        );
    }
    let target = 20.0;
    println!(
        "  target: {want} pods converged in ≤ {target:.0} s on the 2-core machine → {} ({:.1} s)",
        if converged.as_secs_f64() <= target {
            "met"
        } else {
            "NOT met"
        },
        converged.as_secs_f64()
    );
    server.stop().await?;
    Ok(())
}
