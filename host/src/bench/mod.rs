//! `tug bench …`: benchmarks that start a real `tug server` process and print their figures.
//!
//! - `tug bench api` ([`api`]) measures durable creates per second and their latency over
//!   HTTPS with 1 and with many concurrent clients (each its own TLS connection, as separate
//!   programs would be), watch event delivery latency with many watchers, the time from
//!   starting the server to the API answering, and the server's resident memory when idle.
//! - `tug bench admission` ([`admission`]) measures what a Wasm admission hook costs: the
//!   Rust example policy in process (compile, cache load, instantiate+decide, warm decide,
//!   against the same check in native Rust) and the latency a hook adds to pod creates
//!   through the API.
//! - `tug bench controllers` ([`controllers`]) times Deployments to Available on simulated
//!   nodes.
//! - `tug bench scheduler` ([`scheduler`]) measures pods scheduled per second on thousands
//!   of nodes, with the default policy as Wasm and compiled natively.
//!
//! [`ServerProcess`] and [`Client`] are shared with the tests and `tug plugin upload`.

mod admission;
mod api;
mod controllers;
mod pods;
mod scheduler;

pub use admission::AdmissionArgs;
pub use scheduler::{NativePolicy, SchedulerArgs};

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
use serde_json::json;
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
    /// What a Wasm admission hook costs: the Rust example policy in process (compile, cache
    /// load, instantiate+decide, warm decide, against native Rust) and the latency it adds
    /// to pod creates through the API, with 0, 1 and several hooks.
    Admission(AdmissionArgs),
    /// The controllers at scale: create Deployments on simulated nodes and time until every
    /// one is Available; the server's CPU time and the controllers' reconcile counts.
    Controllers(controllers::ControllersArgs),
    /// Scheduling throughput as Kubernetes' scheduler_perf measures it: thousands of nodes,
    /// pods placed, then many pods created and scheduled; the default policy as Wasm and
    /// compiled natively.
    Scheduler(scheduler::SchedulerArgs),
    /// Pod startup latency on a real node (create → Ready for pods whose image is
    /// present), side by side with a bare `runc run` of the same image.
    Pods(pods::PodsArgs),
    /// Service programming latency (an EndpointSlice write → traffic reaches the new
    /// endpoint through the ClusterIP) with many other Services in the table, and the
    /// connection rate through a ClusterIP against directly to the pod; real nftables in
    /// network namespaces made for the run (root).
    Services(crate::network::service::bench::ServicesArgs),
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
        } => api::bench_api(single, total, clients, watchers, events, data_dir).await,
        BenchCmd::Admission(args) => admission::bench_admission(args).await,
        BenchCmd::Controllers(args) => controllers::bench_controllers(args).await,
        BenchCmd::Scheduler(args) => scheduler::bench_scheduler(args).await,
        BenchCmd::Pods(args) => pods::bench_pods(args).await,
        BenchCmd::Services(args) => {
            println!(
                "Service benchmark: nftables proxy, {} other Services, {} endpoint changes",
                args.services, args.changes
            );
            crate::network::service::bench::run(&args).await?;
            Ok(())
        }
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
        Self::start_with(data_dir, &[]).await
    }

    /// [`ServerProcess::start`] with further `tug server` arguments.
    pub async fn start_with(data_dir: Option<PathBuf>, extra: &[&str]) -> Result<Self> {
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
            .args(extra)
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

    /// Kills the server and waits for it to exit; its temporary data directory is removed
    /// when `self` drops, after the process is gone. (Dropping a `ServerProcess` without
    /// calling this also kills the process, without waiting.)
    pub async fn stop(mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child.start_kill().context("killing tug server")?;
            self.child.wait().await.context("waiting for tug server")?;
        }
        Ok(())
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

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub(crate) async fn create_ns(c: &mut Client, ns: &str) -> Result<()> {
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
