//! A "node" network namespace with "pod" namespaces on a bridge, for the Service tests and
//! `tug bench services`. Harness only: it builds the topology with the `ip` command (the
//! product's pod network uses netlink), and removes every namespace it created when
//! dropped (which takes their links, addresses, routes and nft tables with them).
//!
//! ```text
//!  node netns:  br0 10.42.0.1/24, route 10.43.0.0/16 dev br0, veth0..N on br0
//!  pod i netns: eth0 10.42.0.(i+2)/24, default via 10.42.0.1, a TCP server answering
//!               its name
//! ```

use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::proxy::enter_netns;

/// The node's bridge in a testbed.
pub(crate) const BRIDGE: &str = "br0";
/// The node's address on the bridge.
pub(crate) const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 1);

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A unique short id: pid and a counter.
pub(crate) fn unique_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}x{n}", std::process::id())
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub(crate) struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(name: String) -> Result<Netns> {
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("removing netns {}: {e:#}", self.name);
        }
    }
}

/// A thread inside a namespace that runs closures sent to it (many connections from one
/// place without a thread each).
pub(crate) struct NsWorker {
    tx: Option<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsWorker {
    pub fn start(ns: &Netns) -> Result<NsWorker> {
        let path = ns.path();
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let r = enter_netns(&path);
            let ok = r.is_ok();
            let _ = ready_tx.send(r);
            if ok {
                while let Ok(job) = rx.recv() {
                    job();
                }
            }
        });
        ready_rx
            .recv()
            .map_err(|_| anyhow!("netns worker died"))??;
        Ok(NsWorker {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Run `f` on the worker and wait for its result (without blocking the runtime).
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .as_ref()
            .ok_or_else(|| anyhow!("worker stopped"))?
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| anyhow!("netns worker is gone"))?;
        rx.await
            .map_err(|_| anyhow!("netns worker dropped the job"))
    }
}

impl Drop for NsWorker {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP server in a namespace that writes `name\n` to every connection.
pub(crate) struct NameServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NameServer {
    pub fn start(ns: &Netns, port: u16, name: String) -> Result<NameServer> {
        let path = ns.path();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let listener = (|| -> Result<TcpListener> {
                    enter_netns(&path)?;
                    let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
                    l.set_nonblocking(true)?;
                    Ok(l)
                })();
                let listener = match listener {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let reply = format!("{name}\n");
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            // Write the name, then wait for the client to close first, so
                            // TIME_WAIT stays with the client (a pod keeping TIME_WAIT
                            // for ports that the next connections through a NAT reuse
                            // would stall them).
                            let _ = s.set_nonblocking(false);
                            let _ = s.write_all(reply.as_bytes());
                            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                            let mut sink = [0u8; 64];
                            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        };
        ready_rx
            .recv()
            .map_err(|_| anyhow!("server thread died"))??;
        Ok(NameServer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect to `addr`, read the line the server says and close (from the calling
/// thread's netns).
pub(crate) fn fetch(addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    let mut out = String::new();
    std::io::BufReader::new(s).read_line(&mut out)?;
    Ok(out.trim().to_string())
}

/// One pod of a testbed.
pub(crate) struct Pod {
    pub ip: Ipv4Addr,
    /// Before `netns`: it stops before the namespace goes.
    pub server: Option<NameServer>,
    pub netns: Netns,
}

/// The node and its pods (see the [module](self) docs). Field order is drop order:
/// servers stop before their namespaces go.
pub(crate) struct Testbed {
    pub pods: Vec<Pod>,
    pub node: Netns,
}

impl Testbed {
    /// A node with `pods` pods, each serving its name (`pod0`, `pod1`, …) on `port`.
    pub fn new(pods: usize, port: u16) -> Result<Testbed> {
        let id = unique_id();
        let node = Netns::create(format!("tug-svc-{id}-node"))?;
        let n = node.name.clone();
        ip(&["-n", &n, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&[
            "-n",
            &n,
            "addr",
            "add",
            &format!("{GATEWAY}/24"),
            "dev",
            BRIDGE,
        ])?;
        ip(&["-n", &n, "link", "set", BRIDGE, "up"])?;
        ip(&["-n", &n, "route", "add", "10.43.0.0/16", "dev", BRIDGE])?;
        let mut bed = Testbed {
            pods: Vec::new(),
            node,
        };
        for i in 0..pods {
            let pns = Netns::create(format!("tug-svc-{id}-pod{i}"))?;
            let p = pns.name.clone();
            let host_if = format!("veth{i}");
            let ip_addr = Ipv4Addr::new(10, 42, 0, u8::try_from(i + 2)?);
            ip(&[
                "-n", &n, "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns",
                &p,
            ])?;
            ip(&["-n", &n, "link", "set", &host_if, "master", BRIDGE, "up"])?;
            // A pod reaching itself through a Service: with br_netfilter loaded the DNATed
            // frame is bridged back out the port it came in by (the CNI bridge plugin's
            // hairpinMode).
            ip(&[
                "-n",
                &n,
                "link",
                "set",
                &host_if,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ])?;
            ip(&[
                "-n",
                &p,
                "addr",
                "add",
                &format!("{ip_addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &p, "link", "set", "eth0", "up"])?;
            ip(&[
                "-n",
                &p,
                "route",
                "add",
                "default",
                "via",
                &GATEWAY.to_string(),
            ])?;
            let name = format!("pod{i}");
            bed.pods.push(Pod {
                ip: ip_addr,
                server: None,
                netns: pns,
            });
            let server = NameServer::start(&bed.pods[i].netns, port, name)?;
            bed.pods[i].server = Some(server);
        }
        Ok(bed)
    }

    #[cfg(test)]
    /// Whether the node's namespace holds the nftables table `ip <table>`.
    pub fn has_table(&self, table: &str) -> Result<bool> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.node.name,
                "nft",
                "list",
                "table",
                "ip",
                table,
            ])
            .output()
            .context("running nft list table")?;
        Ok(out.status.success())
    }
}
