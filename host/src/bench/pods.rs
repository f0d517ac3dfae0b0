//! `tug bench pods`: pod startup latency on a real node. A `docker-registry` on loopback
//! serves a busybox image built here; an in-process `tug server --node-agent` (scheduler and
//! node agent, no controllers) runs the pods in real containers. The image is pulled once
//! first; then N pods (`sleep`) are created one after another (each once the previous is
//! Ready), deleted, and N pods are created at once; for both, the time from each create to
//! its `Ready` condition (seen through a watch) is reported, p50 and p99, with the node
//! agent's per-stage timings and the number of pods running at once. Side by side, in the same run: `runc run --detach` of a bundle of the
//! same image (its rootfs mounted by the image store, `runc spec`'s default config running
//! `sleep`), N times, timed from the call to runc's return.
//!
//! Everything is removed at the end (`tug node reset` for the data dir, runc containers
//! deleted, mounts undone).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::api::client::{
    ApiClient, ApiResource, ListParams, LocalClient, WatchEvent, WatchParams,
};
use crate::runtime::image::testutil::{TestRegistry, push_busybox_image};

#[derive(Args, Debug, Clone)]
pub struct PodsArgs {
    /// Pods created at once.
    #[arg(long, default_value_t = 100)]
    pub pods: usize,
    /// Concurrent creators.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// The node's pod network plugin (`bridge`, `cni-adapter`) or `none`. With a network
    /// the node makes its bridge, nftables tables and DNS address in the network
    /// namespace the benchmark runs in: run it in one of its own
    /// (`nsenter --net=/run/netns/NAME tug bench pods --pod-network bridge`).
    #[arg(long, default_value = "none")]
    pub pod_network: String,
}

fn q(v: &[f64], p: f64) -> f64 {
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

pub async fn bench_pods(args: PodsArgs) -> Result<()> {
    println!(
        "pod startup benchmark: {} pods (busybox `sleep`, image present) on one real node, pod network: {}",
        args.pods, args.pod_network
    );
    let registry = TestRegistry::start()?;
    let host = registry.host();
    push_busybox_image(&host, "busybox", "1").await?;
    let image = format!("{host}/busybox:1");
    let dir = tempfile::Builder::new()
        .prefix("tug-bench-pods-")
        .tempdir_in("/var/tmp")
        .context("a data dir")?;
    let result = run(&args, &image, dir.path()).await;
    if let Err(e) = &result {
        eprintln!("the pod run failed: {e:#}");
    }
    // Whatever happened: nothing left behind.
    if let Err(e) = crate::node::agent::reset(dir.path()).await {
        eprintln!("cleaning up the node: {e:#}");
    }
    let runc = runc_baseline(&args, &image, dir.path()).await;
    let r = result?;
    let runc_lat = runc?;
    println!(
        "  tugboat pods one after another (each created once the previous is Ready), create → Ready (watch): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (targets: p50 <= 100 ms, p99 <= 300 ms)",
        q(&r.sequential, 0.5),
        q(&r.sequential, 0.99),
        r.sequential.last().copied().unwrap_or(f64::NAN),
    );
    print_stages(&r.sequential_stages);
    println!(
        "  tugboat pods, all {} created at once, create → Ready (watch): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} pods running at once",
        args.pods,
        q(&r.burst, 0.5),
        q(&r.burst, 0.99),
        r.burst.last().copied().unwrap_or(f64::NAN),
        r.running
    );
    print_stages(&r.burst_stages);
    println!(
        "  bare runc run --detach of the same image: p50 {:.1} ms, p99 {:.1} ms",
        q(&runc_lat, 0.5),
        q(&runc_lat, 0.99)
    );
    Ok(())
}

fn print_stages(stages: &[crate::node::agent::StageTiming]) {
    let text: Vec<String> = stages
        .iter()
        .map(|s| format!("{} {:.1}/{:.1}", s.stage, s.p50_ms, s.p99_ms))
        .collect();
    println!("    node agent stages, p50/p99 ms: {}", text.join(", "));
}

struct PodRun {
    sequential: Vec<f64>,
    sequential_stages: Vec<crate::node::agent::StageTiming>,
    burst: Vec<f64>,
    burst_stages: Vec<crate::node::agent::StageTiming>,
    running: usize,
}

async fn run(args: &PodsArgs, image: &str, data_dir: &std::path::Path) -> Result<PodRun> {
    let mut opts = crate::serve::ServerOptions::new(
        data_dir.to_path_buf(),
        "127.0.0.1:0".parse().context("address")?,
    );
    opts.controllers = false;
    opts.node_agent = true;
    opts.pod_network = (args.pod_network != "none").then(|| args.pod_network.clone());
    let running = crate::serve::start(opts).await?;
    let client: Arc<LocalClient> = Arc::new(LocalClient::new(running.api.clone(), "bench"));
    let pods = ApiResource::new("v1", "pods");
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "main", "image": image,
                "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}})
    };
    let is_ready = |p: &Value| {
        p.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    };
    // Warm-up: the node registers, the image is pulled.
    let deadline = Instant::now() + Duration::from_secs(120);
    client.create(&pods, Some("default"), pod("warm")).await?;
    loop {
        if let Some(p) = client.get(&pods, Some("default"), "warm").await?
            && is_ready(&p)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the warm-up pod did not become Ready within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = client
        .list(&pods, Some("default"), &ListParams::default())
        .await?;
    let mut stream = client
        .watch(
            &pods,
            Some("default"),
            &WatchParams {
                resource_version: list.resource_version,
                ..Default::default()
            },
        )
        .await?;
    let ready_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watcher = {
        let ready_at = ready_at.clone();
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                if let Ok(WatchEvent::Modified(p)) | Ok(WatchEvent::Added(p)) = ev
                    && is_ready(&p)
                {
                    let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
                    ready_at.lock().entry(name).or_insert_with(Instant::now);
                }
            }
        })
    };
    let agent = running
        .agent
        .as_ref()
        .context("the server runs no node agent")?;
    // Phase 1: one pod at a time, each created once the previous one is Ready (what a bare
    // `runc run` is timed as, below).
    agent.clear_stage_timings();
    let mut sequential = Vec::with_capacity(args.pods);
    for i in 0..args.pods {
        let name = format!("s-{i}");
        let t = Instant::now();
        client.create(&pods, Some("default"), pod(&name)).await?;
        let deadline = t + Duration::from_secs(60);
        loop {
            if let Some(r) = ready_at.lock().get(&name) {
                sequential.push(r.saturating_duration_since(t).as_secs_f64() * 1000.0);
                break;
            }
            if Instant::now() > deadline {
                bail!("pod {name} did not become Ready within a minute");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    sequential.sort_by(f64::total_cmp);
    let sequential_stages = agent.stage_timings();
    // They go (at once: grace 0), and the node is empty again before the burst.
    for i in 0..args.pods {
        let params = crate::api::client::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        client
            .delete(&pods, Some("default"), &format!("s-{i}"), &params)
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while client
        .list(&pods, Some("default"), &ListParams::default())
        .await?
        .items
        .len()
        > 1
    {
        if Instant::now() > deadline {
            bail!("the sequential pods were not gone within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.clear_stage_timings();
    // Phase 2: all at once.
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![];
    for _ in 0..args.clients.max(1) {
        let (client, created, next) = (client.clone(), created.clone(), next.clone());
        let pods = pods.clone();
        let n = args.pods;
        let image = image.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let name = format!("p-{i}");
                let body = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "main", "image": image,
                        "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}});
                let t = Instant::now();
                client.create(&pods, Some("default"), body).await?;
                created.lock().insert(name, t);
            }
        }));
    }
    for t in tasks {
        t.await.context("a creator panicked")??;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready_at
        .lock()
        .keys()
        .filter(|k| k.starts_with("p-"))
        .count()
        < args.pods
    {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} pods became Ready within 5 minutes",
                ready_at.lock().len(),
                args.pods
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    let running_now = client
        .list(&pods, Some("default"), &ListParams::default())
        .await?
        .items
        .iter()
        .filter(|p| p.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
        .count();
    let mut lat: Vec<f64> = {
        let ready = ready_at.lock();
        created
            .lock()
            .iter()
            .filter_map(|(n, c)| {
                ready
                    .get(n)
                    .map(|r| r.saturating_duration_since(*c).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    lat.sort_by(f64::total_cmp);
    let burst_stages = agent.stage_timings();
    drop(running);
    Ok(PodRun {
        sequential,
        sequential_stages,
        burst: lat,
        burst_stages,
        running: running_now,
    })
}

/// `runc run --detach` of a bundle of the same image, `n` times.
async fn runc_baseline(
    args: &PodsArgs,
    image: &str,
    data_dir: &std::path::Path,
) -> Result<Vec<f64>> {
    let images = crate::runtime::image::ImageStore::open(
        &data_dir.join("images"),
        crate::runtime::image::RegistriesConfig::default(),
    )?;
    let img = images
        .ensure(
            image,
            crate::runtime::image::PullPolicy::IfNotPresent,
            &[],
            &|_| {},
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bundle = data_dir.join("runc-bundle");
    std::fs::create_dir_all(&bundle)?;
    let rootfs = images.mount_rootfs(&img, &bundle)?;
    let root = data_dir.join("runc-root");
    let result = (|| -> Result<Vec<f64>> {
        let out = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .output()
            .context("running runc spec")?;
        if !out.status.success() {
            bail!("runc spec: {}", String::from_utf8_lossy(&out.stderr));
        }
        let path = bundle.join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(["sleep", "3600"]);
        spec["root"]["path"] = json!(rootfs.to_string_lossy());
        spec["root"]["readonly"] = json!(true);
        std::fs::write(&path, serde_json::to_vec(&spec)?)?;
        let mut lat = Vec::with_capacity(args.pods);
        let mut ids = Vec::new();
        let mut err = None;
        for i in 0..args.pods {
            let id = format!("tug-bench-{}-{i}", std::process::id());
            // A detached container keeps runc's stdio: a file, not a pipe (a pipe would
            // stay open until the container exits).
            let errors = data_dir.join("runc-stderr");
            let stderr = std::fs::File::create(&errors)?;
            let t = Instant::now();
            let out = Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["run", "--detach", "--bundle"])
                .arg(&bundle)
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .status();
            match out {
                Ok(s) if s.success() => {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    ids.push(id);
                }
                Ok(_) => {
                    let text = std::fs::read_to_string(&errors).unwrap_or_default();
                    err = Some(anyhow::anyhow!("runc run: {text}"));
                    break;
                }
                Err(e) => {
                    err = Some(e.into());
                    break;
                }
            }
        }
        for id in &ids {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", id])
                .output();
        }
        if let Some(e) = err {
            return Err(e);
        }
        lat.sort_by(f64::total_cmp);
        Ok(lat)
    })();
    let _ = images.unmount_rootfs(&bundle);
    let _ = std::fs::remove_dir_all(&root);
    result
}
