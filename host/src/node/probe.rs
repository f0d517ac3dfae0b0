//! Container probes (liveness, readiness, startup) as the kubelet runs them: `exec` in the
//! container, `httpGet` and `tcpSocket` against the pod. The pod has no address on the
//! node's network yet (pod networking is a network plugin's job), so HTTP and TCP probes
//! connect to `127.0.0.1:PORT` from inside the pod's network namespace, on a thread of
//! their own that joins it (never a pooled thread: its namespace would leak to other work).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A probe's settings, with Kubernetes' defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSpec {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Exec(Vec<String>),
    Http { port: u16, path: String },
    Tcp { port: u16 },
}

fn secs(v: &Value, field: &str, default: u64) -> Duration {
    Duration::from_secs(v.get(field).and_then(Value::as_u64).unwrap_or(default))
}

/// A port given as a number or as the name of one of the container's ports.
fn port_of(p: Option<&Value>, container: &Value) -> Option<u16> {
    match p? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(name) => container
            .get("ports")
            .and_then(Value::as_array)?
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
            .and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
}

impl ProbeSpec {
    /// The probe `field` (`livenessProbe`, `readinessProbe`, `startupProbe`) of a container.
    pub fn of(container: &Value, field: &str) -> Option<ProbeSpec> {
        let p = container.get(field)?;
        let action = if let Some(cmd) = p.pointer("/exec/command").and_then(Value::as_array) {
            Action::Exec(
                cmd.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
            )
        } else if let Some(h) = p.get("httpGet") {
            Action::Http {
                port: port_of(h.get("port"), container)?,
                path: h
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string(),
            }
        } else if let Some(t) = p.get("tcpSocket") {
            Action::Tcp {
                port: port_of(t.get("port"), container)?,
            }
        } else {
            return None;
        };
        Some(ProbeSpec {
            action,
            initial_delay: secs(p, "initialDelaySeconds", 0),
            period: secs(p, "periodSeconds", 10).max(Duration::from_secs(1)),
            timeout: secs(p, "timeoutSeconds", 1).max(Duration::from_secs(1)),
            success_threshold: p
                .get("successThreshold")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(1)
                .max(1),
            failure_threshold: p
                .get("failureThreshold")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(3)
                .max(1),
        })
    }
}

/// The running tally of one probe of one container instance.
#[derive(Clone, Debug)]
pub struct ProbeState {
    pub instance: String,
    pub next: Instant,
    pub successes: u32,
    pub failures: u32,
    /// The verdict after the thresholds (`None`: not decided yet).
    pub ok: Option<bool>,
}

impl ProbeState {
    pub fn new(instance: &str, spec: &ProbeSpec, started: Instant) -> Self {
        ProbeState {
            instance: instance.to_string(),
            next: started + spec.initial_delay,
            successes: 0,
            failures: 0,
            ok: None,
        }
    }

    /// Counts one result; returns the verdict when it changes.
    pub fn record(&mut self, spec: &ProbeSpec, success: bool, now: Instant) -> Option<bool> {
        self.next = now + spec.period;
        if success {
            self.successes += 1;
            self.failures = 0;
            if self.successes >= spec.success_threshold && self.ok != Some(true) {
                self.ok = Some(true);
                return Some(true);
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.failures >= spec.failure_threshold && self.ok != Some(false) {
                self.ok = Some(false);
                return Some(false);
            }
        }
        None
    }
}

/// Runs an HTTP or TCP probe inside the network namespace `netns`; `Ok(())` on success,
/// else why it failed (the kubelet's wording where it has one).
pub async fn network_probe(netns: &Path, action: &Action, timeout: Duration) -> Result<(), String> {
    let netns: PathBuf = netns.to_path_buf();
    let action = action.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tug-probe".into())
        .spawn(move || {
            let _ = tx.send(probe_thread(&netns, &action, timeout));
        })
        .map_err(|e| format!("starting the probe: {e}"))?;
    rx.await
        .unwrap_or_else(|_| Err("the probe thread failed".into()))
}

fn probe_thread(netns: &Path, action: &Action, timeout: Duration) -> Result<(), String> {
    let f = std::fs::File::open(netns).map_err(|e| format!("opening {}: {e}", netns.display()))?;
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering the pod's network namespace: {e}"))?;
    let (port, path) = match action {
        Action::Http { port, path } => (*port, Some(path.as_str())),
        Action::Tcp { port } => (*port, None),
        Action::Exec(_) => return Err("not a network probe".into()),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("dial tcp {addr}: connect: {e}"))?;
    let Some(path) = path else {
        return Ok(());
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("Get \"http://127.0.0.1:{port}{path}\": {e}"))?;
    let mut head = [0u8; 64];
    let n = s
        .read(&mut head)
        .map_err(|e| format!("Get \"http://127.0.0.1:{port}{path}\": {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"http://127.0.0.1:{port}{path}\": malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_parse_with_kubernetes_defaults() {
        let c = json!({"ports": [{"name": "web", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"port": "web", "path": "/ok"}, "periodSeconds": 2},
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "failureThreshold": 1},
            "startupProbe": {"tcpSocket": {"port": 9000}}});
        let r = ProbeSpec::of(&c, "readinessProbe").unwrap();
        assert_eq!(
            r.action,
            Action::Http {
                port: 8080,
                path: "/ok".into()
            }
        );
        assert_eq!(
            (r.period, r.timeout, r.failure_threshold),
            (Duration::from_secs(2), Duration::from_secs(1), 3)
        );
        let l = ProbeSpec::of(&c, "livenessProbe").unwrap();
        assert_eq!(
            l.action,
            Action::Exec(vec!["cat".into(), "/tmp/alive".into()])
        );
        assert_eq!(l.failure_threshold, 1);
        assert_eq!(
            ProbeSpec::of(&c, "startupProbe").unwrap().action,
            Action::Tcp { port: 9000 }
        );
        assert!(ProbeSpec::of(&json!({}), "readinessProbe").is_none());
    }

    #[test]
    fn thresholds_decide_the_verdict() {
        let spec = ProbeSpec {
            action: Action::Tcp { port: 1 },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: 2,
            failure_threshold: 2,
        };
        let now = Instant::now();
        let mut s = ProbeState::new("c", &spec, now);
        assert_eq!(s.record(&spec, true, now), None);
        assert_eq!(s.record(&spec, true, now), Some(true));
        assert_eq!(s.record(&spec, false, now), None);
        assert_eq!(s.record(&spec, false, now), Some(false));
        assert_eq!(s.record(&spec, false, now), None, "no change, no verdict");
    }
}
