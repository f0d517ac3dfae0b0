//! `tug bench api`: durable creates per second and their latency with 1 and many clients,
//! watch fan-out latency, start-up time and idle memory, against a real `tug server`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{ServerProcess, create_ns, ms, percentile, wall_ns};

fn configmap(ns: &str, name: &str, sent_ns: u128) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "tug"}},
        "data": {"sent": sent_ns.to_string(), "payload": "x".repeat(64)},
    }))
    .unwrap_or_default()
}

/// Run `total` creates over `clients` connections; returns (elapsed, latencies).
async fn create_run(
    server: &ServerProcess,
    ns: &str,
    clients: usize,
    total: usize,
) -> Result<(Duration, Vec<Duration>)> {
    let mut conns = vec![];
    for _ in 0..clients {
        conns.push(server.client().await?);
    }
    let per = total / clients;
    let start = Instant::now();
    let mut tasks = vec![];
    for (ci, mut c) in conns.into_iter().enumerate() {
        let ns = ns.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let body = configmap(&ns, &format!("c{ci}-{i}"), wall_ns());
                let t = Instant::now();
                let (code, b) = c
                    .request(
                        "POST",
                        &format!("/api/v1/namespaces/{ns}/configmaps"),
                        Some(body),
                    )
                    .await?;
                lat.push(t.elapsed());
                if code != 201 {
                    bail!("create answered {code}: {}", String::from_utf8_lossy(&b));
                }
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((start.elapsed(), all))
}

fn report_creates(label: &str, elapsed: Duration, mut lat: Vec<Duration>) {
    lat.sort();
    let n = lat.len();
    println!(
        "creates[{label}]: {n} durable creates in {:.2} s = {:.0} creates/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
    );
}

pub(crate) async fn bench_api(
    single: usize,
    total: usize,
    clients: usize,
    watchers: usize,
    events: usize,
    data_dir: Option<PathBuf>,
) -> Result<()> {
    let server = ServerProcess::start(data_dir).await?;
    println!(
        "startup: `tug server` to API answering in {:.1} ms",
        ms(server.started_in)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(kib) = server.rss_kib() {
        println!(
            "memory: idle server resident set {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    let mut admin = server.client().await?;
    create_ns(&mut admin, "bench-1").await?;
    create_ns(&mut admin, "bench-n").await?;
    create_ns(&mut admin, "bench-w").await?;

    let (el, lat) = create_run(&server, "bench-1", 1, single).await?;
    report_creates("1 client", el, lat);
    let (el, lat) = create_run(&server, "bench-n", clients, total).await?;
    report_creates(&format!("{clients} clients"), el, lat);

    // Watch delivery latency: `watchers` watches on one namespace, then `events` creates
    // spaced out; latency = receipt time − the send time stamped into the object.
    let (_, list) = admin
        .request("GET", "/api/v1/namespaces/bench-w/configmaps?limit=1", None)
        .await?;
    let rv = serde_json::from_slice::<Value>(&list)?
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_string();
    let mut rxs = vec![];
    for _ in 0..watchers {
        let c = server.client().await?;
        rxs.push(
            c.stream_lines(&format!(
                "/api/v1/namespaces/bench-w/configmaps?watch=true&resourceVersion={rv}"
            ))
            .await?,
        );
    }
    let collectors: Vec<_> = rxs
        .into_iter()
        .map(|mut rx| {
            tokio::spawn(async move {
                let mut lat = vec![];
                while let Some((_, line)) = rx.recv().await {
                    let recv = wall_ns();
                    let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    if ev["type"] != "ADDED" {
                        continue;
                    }
                    let sent: u128 = ev
                        .pointer("/object/data/sent")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    lat.push(Duration::from_nanos(recv.saturating_sub(sent) as u64));
                    if ev.pointer("/object/metadata/name").and_then(Value::as_str) == Some("last") {
                        break;
                    }
                }
                lat
            })
        })
        .collect();
    for i in 0..events {
        let name = if i + 1 == events {
            "last".to_string()
        } else {
            format!("w{i}")
        };
        let (code, b) = admin
            .request(
                "POST",
                "/api/v1/namespaces/bench-w/configmaps",
                Some(configmap("bench-w", &name, wall_ns())),
            )
            .await?;
        if code != 201 {
            bail!("create answered {code}: {}", String::from_utf8_lossy(&b));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut all = vec![];
    for c in collectors {
        match tokio::time::timeout(Duration::from_secs(60), c).await {
            Ok(Ok(l)) => all.extend(l),
            _ => bail!("a watcher did not receive every event within 60 s"),
        }
    }
    all.sort();
    println!(
        "watch: {} deliveries to {watchers} watchers ({events} events): latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
    );
    if all.len() != watchers * events {
        bail!(
            "expected {} deliveries, got {}",
            watchers * events,
            all.len()
        );
    }
    if let Some(kib) = server.rss_kib() {
        println!(
            "memory: server resident set after the run {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    server.stop().await
}
