//! `tug agent` end to end (issue 6): a `tug server` without a node agent of its own and a
//! separate `tug agent` process (its own data dir and node name) joined with the server's
//! node token, both on loopback; a real `docker-registry` on loopback serving an image built
//! here from Debian's busybox-static; the real kubectl. `kubectl logs` (also `-f`) and
//! `kubectl exec` reach the agent's pod through the API server's relay to the agent's
//! endpoint; the agent survives SIGKILL and adopts its running container.
//!
//! Whatever happens, the guard kills the agent and runs `tug node reset` for its data dir
//! (and the cluster guard kills the server), so no container, mount or cgroup is left.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::node::{get_json, mounts_mentioning, pod_cgroups, pod_pids, reset};
use common::{Cluster, check_contains, unique};
use serde_json::{Value, json};
use tugboat::runtime::image::testutil::{TestRegistry, push_busybox_image};

const SETTLE: Duration = Duration::from_secs(90);

/// A `tug agent` process on its own data dir; on drop it is killed and its node reset.
struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
    node: String,
    server: String,
    token: String,
    /// `https://127.0.0.1:PORT` of its endpoint (the latest start).
    endpoint: String,
}

impl Agent {
    fn start(server: &str, token: &str, node: &str) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("tug-agent-e2e-")
            .tempdir()
            .expect("creating the agent's data dir");
        let mut a = Agent {
            child: None,
            dir,
            node: node.to_string(),
            server: server.to_string(),
            token: token.to_string(),
            endpoint: String::new(),
        };
        a.spawn()
            .unwrap_or_else(|e| panic!("starting tug agent: {e}"));
        a
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read(self.log_path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Starts the process and waits for its "joined" line.
    fn spawn(&mut self) -> Result<(), String> {
        let mut child = agent_cmd(
            &self.server,
            &self.token,
            self.dir.path(),
            &self.node,
            &self.log_path(),
        )
        .spawn()
        .map_err(|e| format!("spawning tug agent: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                if l.starts_with("tug agent:") {
                    let _ = tx.send(l);
                }
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let endpoint = line
                    .split_once("endpoint ")
                    .map(|(_, e)| e.trim().to_string())
                    .ok_or_else(|| format!("unexpected agent line {line:?}"))?;
                self.endpoint = endpoint;
                Ok(())
            }
            Err(_) => {
                self.kill();
                Err(format!(
                    "tug agent did not join within 60 s; log:\n{}",
                    self.log_tail()
                ))
            }
        }
    }

    /// SIGKILL (no graceful shutdown: the containers must keep running).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- tug agent log ({}) ----\n{}\n---- end of agent log ----",
                self.log_path().display(),
                self.log_tail()
            );
        }
        self.kill();
        reset(self.dir.path());
    }
}

/// `tug agent` for `node` on loopback (endpoint on a free port).
fn agent_cmd(server: &str, token: &str, dir: &Path, node: &str, log: &Path) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("opening the agent log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tug"));
    cmd.args([
        "agent",
        "--pod-network",
        "none",
        "--server",
        server,
        "--token",
        token,
        "--data-dir",
    ])
    .arg(dir)
    .args([
        "--node-name",
        node,
        "--node-ip",
        "127.0.0.1",
        "--kubelet-port",
        "0",
    ])
    .env("NO_COLOR", "1")
    .env(
        "TUG_LOG",
        std::env::var("TUG_LOG").unwrap_or_else(|_| "info".into()),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::from(log));
    kill_with_parent(&mut cmd);
    cmd
}

/// The kernel SIGKILLs the child when the spawning thread dies (a killed test binary
/// leaves no agent behind).
fn kill_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    unsafe extern "C" {
        fn prctl(option: i32, ...) -> i32;
    }
    const PR_SET_PDEATHSIG: i32 = 1;
    const SIGKILL: u64 = 9;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            Ok(())
        });
    }
}

fn node_token(c: &Cluster) -> String {
    std::fs::read_to_string(c.data_dir().join("node-token"))
        .expect("the server wrote node-token")
        .trim()
        .to_string()
}

/// The HTTP status `curl` gets for `url` with `token` (certificate checks off: this is
/// about authentication).
fn http_code(url: &str, token: &str) -> String {
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .expect("running curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_node_ready(c: &Cluster, node: &str) -> Value {
    c.eventually(SETTLE, "the agent's node to be Ready", || {
        let out = c.kubectl(&["get", "node", node, "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        let n: Value = serde_json::from_slice(&out.stdout).ok()?;
        n["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .then_some(n)
    })
}

#[test]
fn a_wrong_join_token_is_refused() {
    let c = Cluster::start();
    let token = node_token(&c);
    check!(token.starts_with("K10"), "{token}");
    let (hash, secret) = token
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::node:"))
        .expect("K10<hash>::node:<secret>");
    // The secret is a bearer credential of the API; a wrong one is 401, and the admin
    // token still works.
    let url = format!("{}/api/v1/nodes", c.url());
    check_eq!(http_code(&url, secret), "200");
    check_eq!(http_code(&url, &c.token()), "200");
    check_eq!(http_code(&url, "not-the-secret"), "401");
    // The CA is public; a joining agent checks it against the token's hash.
    check_eq!(http_code(&format!("{}/cacerts", c.url()), ""), "200");
    let dir = tempfile::tempdir().expect("a temp dir");
    let log = dir.path().join("agent.log");
    let node = unique("refused");
    // The right CA but a wrong secret: the server refuses it (401).
    let wrong_secret = format!("K10{hash}::node:0123456789abcdef");
    let out = agent_cmd(&c.url(), &wrong_secret, dir.path(), &node, &log)
        .output()
        .expect("running tug agent");
    check!(
        !out.status.success(),
        "tug agent joined with a wrong secret"
    );
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    check_contains(&err, "refused the join token");
    check_contains(&err, "401");
    // A token naming another CA: the agent refuses the server.
    let wrong_ca = format!("K10{}::node:{secret}", "0".repeat(64));
    let out = agent_cmd(&c.url(), &wrong_ca, dir.path(), &node, &log)
        .output()
        .expect("running tug agent");
    check!(
        !out.status.success(),
        "tug agent trusted a CA its token does not name"
    );
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    check_contains(&err, "is not the one the join token names");
    // Neither registered a Node.
    let nodes = get_json(&c, &["nodes"]);
    check_eq!(nodes["items"].as_array().map(Vec::len), Some(0));
}

#[test]
fn an_agent_runs_pods_and_serves_logs_and_exec_through_the_api_server() {
    let registry = TestRegistry::start().expect("docker-registry starts");
    let host = registry.host();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(push_busybox_image(&host, "busybox", "1"))
        .expect("pushing the busybox image");
    let c = Cluster::start();
    let token = node_token(&c);
    let node = unique("agent");
    let mut agent = Agent::start(&c.url(), &token, &node);
    let n = wait_node_ready(&c, &node);
    let port = n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64();
    check_eq!(
        Some(agent.endpoint.clone()),
        port.map(|p| format!("https://127.0.0.1:{p}"))
    );
    check_eq!(n["status"]["addresses"][0]["address"], "127.0.0.1");
    // The node's endpoint wants the join secret too.
    check_eq!(http_code(&format!("{}/healthz", agent.endpoint), ""), "200");
    check_eq!(
        http_code(
            &format!("{}/containerLogs/default/p/u/c/0", agent.endpoint),
            "wrong"
        ),
        "401"
    );

    let ns = unique("agent");
    c.kubectl_ok(&["create", "namespace", &ns]);
    let image = format!("{host}/busybox:1");
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "ticker"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "ticker"}},
            "template": {"metadata": {"labels": {"app": "ticker"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [{"name": "main", "image": image,
                        "command": ["sh", "-c", "echo hello-from-agent; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]}]}}}});
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &deploy.to_string());
    c.kubectl_ok(&[
        "rollout",
        "status",
        "-n",
        &ns,
        "deployment/ticker",
        "--timeout=80s",
    ]);
    let pods = get_json(&c, &["pods", "-n", &ns, "-l", "app=ticker"]);
    let pod = pods["items"][0].clone();
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    check_eq!(pod["spec"]["nodeName"], node.as_str());
    check_eq!(pod["status"]["containerStatuses"][0]["ready"], true);
    check_eq!(pod["status"]["hostIP"], "127.0.0.1");
    // The container's main process (its `sleep`s come and go).
    let shell = |uid: &str| -> Vec<i32> {
        pod_pids(uid)
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"sh\0-c\0"))
            })
            .collect()
    };
    let pids = shell(&uid);
    check_eq!(pids.len(), 1);
    // Its logs are in the agent's data dir, not the server's.
    let log_dir = format!("{ns}_{name}_{uid}");
    check!(
        agent.data_dir().join("logs").join(&log_dir).is_dir(),
        "logs under the agent's data dir"
    );
    check!(
        !c.data_dir().join("logs").join(&log_dir).exists(),
        "no logs under the server's data dir"
    );

    // kubectl logs, through the API server to the agent's endpoint.
    let logs = c.kubectl_ok(&["logs", "-n", &ns, &name]);
    check_contains(&logs, "hello-from-agent");
    let tail = c.kubectl_ok(&["logs", "-n", &ns, &name, "--tail=1"]);
    check_eq!(tail.lines().count(), 1);
    check!(tail.starts_with("tick "), "{tail}");
    // -f streams the lines written after it started.
    let last: u64 = c
        .kubectl_ok(&["logs", "-n", &ns, &name, "--tail=1"])
        .trim()
        .trim_start_matches("tick ")
        .parse()
        .unwrap_or(0);
    let mut follow = c.kubectl_spawn(&["logs", "-f", "-n", &ns, &name, "--tail=1"]);
    follow.wait_line(Duration::from_secs(30), "a later tick", |l| {
        l.strip_prefix("tick ")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= last + 3)
    });
    drop(follow);

    // kubectl exec: output, exit code, stdin.
    let out = c.kubectl(&[
        "exec",
        "-n",
        &ns,
        &name,
        "--",
        "sh",
        "-c",
        "echo out-$((6*7)); echo err >&2; exit 3",
    ]);
    check_eq!(out.status.code(), Some(3));
    check_eq!(String::from_utf8_lossy(&out.stdout).trim(), "out-42");
    check_contains(&String::from_utf8_lossy(&out.stderr), "err");
    let echoed = c.kubectl_stdin_ok(&["exec", "-i", "-n", &ns, &name, "--", "cat"], "ping\n");
    check_eq!(echoed, "ping\n");

    // The agent killed: its container keeps running; a new agent adopts it.
    agent.kill();
    std::thread::sleep(Duration::from_secs(1));
    check_eq!(shell(&uid), pids);
    agent
        .spawn()
        .unwrap_or_else(|e| panic!("restarting tug agent: {e}"));
    let new_port = agent
        .endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u64>().ok());
    c.eventually(SETTLE, "the node to announce the new endpoint", || {
        let n = get_json(&c, &["node", &node]);
        (n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64() == new_port)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    check_eq!(shell(&uid), pids);
    let st = get_json(&c, &["pod", "-n", &ns, &name])["status"].clone();
    check_eq!(st["phase"], "Running");
    check_eq!(st["containerStatuses"][0]["restartCount"], 0);
    check_eq!(st["containerStatuses"][0]["ready"], true);
    let out = c.kubectl(&["exec", "-n", &ns, &name, "--", "sh", "-c", "exit 5"]);
    check_eq!(out.status.code(), Some(5));
    check_contains(
        &c.kubectl_ok(&["logs", "-n", &ns, &name]),
        "hello-from-agent",
    );

    // Deleting the Deployment leaves nothing behind on the agent's node.
    c.kubectl_ok(&["delete", "deployment", "-n", &ns, "ticker"]);
    c.eventually(SETTLE, "the pods to be gone", || {
        get_json(&c, &["pods", "-n", &ns])["items"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    });
    c.eventually(
        Duration::from_secs(20),
        "the pod's processes to be gone",
        || pod_pids(&uid).is_empty().then_some(()),
    );
    check_eq!(pod_cgroups(&uid), Vec::<String>::new());
    check_eq!(mounts_mentioning(&uid), Vec::<String>::new());
}
