//! `tug bench …`: benchmarks that start a real `tug server` process and print their figures.
//!
//! `tug bench api` measures durable creates per second and their latency over HTTPS with 1
//! and with many concurrent clients (each its own TLS connection, as separate programs would
//! be), watch event delivery latency with many watchers, the time from starting the server to
//! the API answering, and the server's resident memory when idle.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::Subcommand;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::pem::PemObject};

#[derive(Subcommand, Debug, Clone)]
pub enum BenchCmd {
    /// API write throughput and latency, watch latency, startup time and idle memory.
    Api {
        /// Creates for the single-client run.
        #[arg(long, default_value_t = 2000)]
        single: usize,
        /// Creates for the concurrent run.
        #[arg(long, default_value_t = 20000)]
        total: usize,
        /// Concurrent clients for the concurrent run.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Watchers for the watch latency run.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Events for the watch latency run.
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// Keep the server's data directory here instead of a temporary one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub async fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Api {
            single,
            total,
            clients,
            watchers,
            events,
            data_dir,
        } => bench_api(single, total, clients, watchers, events, data_dir).await,
    }
}

/// A `tug server` child process.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub addr: String,
    pub token: String,
    pub ca_pem: String,
    pub started_in: Duration,
    _tmp: Option<tempfile::TempDir>,
}

impl ServerProcess {
    pub async fn start(data_dir: Option<PathBuf>) -> Result<Self> {
        let (tmp, dir) = match data_dir {
            Some(d) => (None, d),
            None => {
                let t = tempfile::tempdir()?;
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        let exe = std::env::current_exe()?;
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new(exe)
            .args(["server", "--data-dir"])
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("TUG_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting tug server")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("server did not start in 60 s")??
            .ok_or_else(|| anyhow!("server exited before listening"))?;
        let addr = line
            .split("https://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .ok_or_else(|| anyhow!("unexpected server output: {line}"))?
            .to_string();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let token = std::fs::read_to_string(dir.join("admin.token"))?
            .trim()
            .to_string();
        let ca_pem = std::fs::read_to_string(dir.join("pki/ca.crt"))?;
        let mut s = ServerProcess {
            child,
            addr,
            token,
            ca_pem,
            started_in: Duration::ZERO,
            _tmp: tmp,
        };
        // Ready = the API answers an authenticated request.
        loop {
            if let Ok(mut c) = s.client().await
                && let Ok((200, _)) = c.request("GET", "/api/v1/namespaces/default", None).await
            {
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("API did not answer within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        s.started_in = t0.elapsed();
        Ok(s)
    }

    pub async fn client(&self) -> Result<Client> {
        Client::connect(&self.addr, &self.ca_pem, &self.token).await
    }

    /// Resident memory of the server process in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
    }
}

/// One HTTPS/1.1 connection with the admin token.
pub struct Client {
    send: http1::SendRequest<Full<Bytes>>,
    token: String,
    host: String,
}

fn tls_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

impl Client {
    pub async fn connect(addr: &str, ca_pem: &str, token: &str) -> Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let connector = TlsConnector::from(tls_config(ca_pem)?);
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        let tls = connector.connect(name, tcp).await?;
        let (send, conn) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Client {
            send,
            token: token.to_string(),
            host: addr.to_string(),
        })
    }

    fn build(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>> {
        Ok(Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?)
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes)> {
        let req = self.build(method, path, body)?;
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((code, bytes))
    }

    /// Start a streaming GET (a watch); lines arrive on the returned receiver.
    pub async fn stream_lines(
        mut self,
        path: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<(Instant, Vec<u8>)>> {
        let req = self.build("GET", path, None)?;
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        if resp.status() != 200 {
            bail!("watch answered {}", resp.status());
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let mut body = resp.into_body();
        tokio::spawn(async move {
            let _keep = self;
            let mut buf: Vec<u8> = vec![];
            while let Some(Ok(frame)) = body.frame().await {
                let now = Instant::now();
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        if tx.send((now, line)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn configmap(ns: &str, name: &str, sent_ns: u128) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "tug"}},
        "data": {"sent": sent_ns.to_string(), "payload": "x".repeat(64)},
    }))
    .unwrap_or_default()
}

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

async fn create_ns(c: &mut Client, ns: &str) -> Result<()> {
    let body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )?;
    let (code, b) = c.request("POST", "/api/v1/namespaces", Some(body)).await?;
    if code != 201 {
        bail!(
            "creating namespace {ns}: {code} {}",
            String::from_utf8_lossy(&b)
        );
    }
    Ok(())
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

async fn bench_api(
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
    Ok(())
}
