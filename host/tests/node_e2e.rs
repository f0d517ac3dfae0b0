//! The node agent and the native runtime end to end (issue 6), with real parts only: a real
//! `docker-registry` on loopback serving an image built here from Debian's busybox-static,
//! `tug server --node-agent` running real containers with runc, and the real kubectl.
//!
//! Each test makes sure nothing is left behind: after the pods are deleted no process,
//! mount, cgroup or namespace pin of theirs remains; and whatever happens, the guard runs
//! `tug node reset` for the server's data directory before the server is dropped.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::node::{Node, get_json, mounts_mentioning, pod_cgroups, pod_pids};
use common::{Cluster, check_contains, unique};
use serde_json::{Value, json};
use tugboat::runtime::image::testutil::{TestRegistry, push_busybox_image};

const SETTLE: Duration = Duration::from_secs(90);

fn ns_of(pid: i32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The memory limit of the cgroup a pid is in (v1 memory controller or v2).
fn memory_limit(pid: i32) -> Option<u64> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let ctrls = parts.next()?;
        let path = parts.next()?;
        let file = if ctrls.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else if ctrls.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else {
            continue;
        };
        if let Ok(v) = std::fs::read_to_string(&file) {
            return v.trim().parse().ok();
        }
    }
    None
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn a_deployment_runs_in_real_containers_and_leaves_nothing_behind() {
    let (_registry, host, node) = setup();
    let c = node.c();
    let ns = unique("node");
    c.kubectl_ok(&["create", "namespace", &ns]);
    let image = format!("{host}/busybox:1");
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [{"name": "httpd", "image": image,
                    "command": ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www"],
                    "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                    "readinessProbe": {"httpGet": {"port": 8080, "path": "/index.html"}, "periodSeconds": 1}}]}}}});
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &deploy.to_string());
    c.kubectl_ok(&[
        "rollout",
        "status",
        "-n",
        &ns,
        "deployment/web",
        "--timeout=80s",
    ]);
    let pods = get_json(c, &["pods", "-n", &ns, "-l", "app=web"]);
    let pods = pods["items"].as_array().cloned().unwrap_or_default();
    check_eq!(pods.len(), 3);
    let host_net = ns_of(std::process::id() as i32, "net");
    let host_pid = ns_of(std::process::id() as i32, "pid");
    let mut uids = vec![];
    for p in &pods {
        let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let name = p["metadata"]["name"].as_str().unwrap_or("");
        check_eq!(p["status"]["phase"], "Running");
        check_eq!(p["status"]["containerStatuses"][0]["ready"], true);
        check!(
            p["status"]["containerStatuses"][0]["state"]["running"].is_object(),
            "{}",
            p["status"]
        );
        // The container's processes: in the pod's cgroup, in their own namespaces.
        let pids = pod_pids(&uid);
        let httpd = pids.iter().copied().find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("httpd"))
        });
        check!(
            httpd.is_some(),
            "httpd runs in pod {name}'s cgroup: {pids:?}"
        );
        if let Some(pid) = httpd {
            check!(ns_of(pid, "net") != host_net, "own network namespace");
            check!(ns_of(pid, "pid") != host_pid, "own PID namespace");
            check_eq!(memory_limit(pid), Some(64 << 20));
        }
        let logs = c.kubectl_ok(&["logs", "-n", &ns, name]);
        check_contains(&logs, "serving");
        uids.push(uid);
    }
    // Deleting the Deployment stops and removes everything.
    c.kubectl_ok(&["delete", "deployment", "-n", &ns, "web"]);
    c.eventually(SETTLE, "the pods to be gone", || {
        let pods = get_json(c, &["pods", "-n", &ns]);
        pods["items"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    });
    for uid in &uids {
        c.eventually(
            Duration::from_secs(20),
            "the pod's processes to be gone",
            || pod_pids(uid).is_empty().then_some(()),
        );
        check_eq!(pod_cgroups(uid), Vec::<String>::new());
        check_eq!(mounts_mentioning(uid), Vec::<String>::new());
    }
}

/// A registry with the busybox image and a `--node-agent` cluster whose node is Ready.
fn setup() -> (TestRegistry, String, Node) {
    let registry = TestRegistry::start().expect("docker-registry starts");
    let host = registry.host();
    rt().block_on(push_busybox_image(&host, "busybox", "1"))
        .expect("pushing the busybox image");
    let node = Node::start();
    node.c().eventually(SETTLE, "the node to be Ready", || {
        let nodes = get_json(node.c(), &["nodes"]);
        nodes["items"]
            .as_array()
            .and_then(|a| a.first().cloned())
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
    });
    (registry, host, node)
}

fn bare_pod(name: &str, image: &str, command: &str, extra: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image, "command": ["sh", "-c", command]}]}});
    if let Some(m) = extra.as_object() {
        for (k, v) in m {
            if k == "resources" {
                p["spec"]["containers"][0]["resources"] = v.clone();
            } else {
                p["spec"][k] = v.clone();
            }
        }
    }
    p
}

fn container_status(c: &Cluster, ns: &str, pod: &str) -> Value {
    get_json(c, &["pod", "-n", ns, pod])["status"]["containerStatuses"][0].clone()
}

#[test]
fn containers_restart_back_off_and_report_oom_kills() {
    let (_registry, host, node) = setup();
    let c = node.c();
    let ns = unique("restart");
    c.kubectl_ok(&["create", "namespace", &ns]);
    let image = format!("{host}/busybox:1");
    for p in [
        bare_pod("crash", &image, "echo boom; exit 2", json!({})),
        bare_pod("victim", &image, "exec sleep 3600", json!({})),
        bare_pod(
            "hog",
            &image,
            "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
            json!({"restartPolicy": "Never", "resources": {"limits": {"memory": "16Mi"}}}),
        ),
    ] {
        c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &p.to_string());
    }
    // A crashing container is restarted, then backs off.
    let st = c.eventually(SETTLE, "crash to back off", || {
        let st = container_status(c, &ns, "crash");
        (st["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(st)
    });
    check!(st["restartCount"].as_u64().unwrap_or(0) >= 1, "{st}");
    check_eq!(st["lastState"]["terminated"]["exitCode"], 2);
    check_eq!(st["lastState"]["terminated"]["reason"], "Error");
    check_contains(
        &c.kubectl_ok(&["logs", "-n", &ns, "crash", "--previous"]),
        "boom",
    );
    let describe = c.kubectl_ok(&["describe", "pod", "-n", &ns, "crash"]);
    check_contains(&describe, "BackOff");
    // A container killed from outside is restarted; restartCount goes up.
    let uid = get_json(c, &["pod", "-n", &ns, "victim"])["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let pid = c.eventually(SETTLE, "victim's sleep to run", || {
        pod_pids(&uid).into_iter().find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("sleep"))
        })
    });
    nix_kill(pid);
    let st = c.eventually(SETTLE, "victim to be restarted", || {
        let st = container_status(c, &ns, "victim");
        (st["restartCount"] == 1 && st["state"]["running"].is_object()).then_some(st)
    });
    check_eq!(st["lastState"]["terminated"]["exitCode"], 137);
    // Past its memory limit, a container is OOM-killed and reported so.
    let st = c.eventually(SETTLE, "hog to be OOM-killed", || {
        let st = container_status(c, &ns, "hog");
        st["state"]["terminated"].is_object().then_some(st)
    });
    check_eq!(st["state"]["terminated"]["reason"], "OOMKilled");
    check_eq!(
        get_json(c, &["pod", "-n", &ns, "hog"])["status"]["phase"],
        "Failed"
    );
    c.kubectl_ok(&["delete", "namespace", &ns, "--wait=false"]);
}

fn nix_kill(pid: i32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid}");
}

#[test]
fn a_killed_server_comes_back_and_adopts_its_running_pods() {
    let (_registry, host, mut node) = setup();
    let ns = unique("adopt");
    node.c().kubectl_ok(&["create", "namespace", &ns]);
    let image = format!("{host}/busybox:1");
    let p = bare_pod("steady", &image, "echo up; exec sleep 3600", json!({}));
    node.c()
        .kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &p.to_string());
    let uid = node.c().eventually(SETTLE, "steady to run", || {
        let p = get_json(node.c(), &["pod", "-n", &ns, "steady"]);
        (p["status"]["phase"] == "Running")
            .then(|| p["metadata"]["uid"].as_str().unwrap_or("").to_string())
    });
    let pids = pod_pids(&uid);
    check!(!pids.is_empty(), "the pod's processes are found");
    // SIGKILL: the containers run on under their own supervisors.
    node.c_mut().restart();
    for pid in &pids {
        check!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived the server"
        );
    }
    let c = node.c();
    // Adopted, not restarted: same processes, restartCount 0, still Running and Ready.
    c.eventually(SETTLE, "the node to be Ready again", || {
        let n = get_json(c, &["nodes"]);
        n["items"].as_array().and_then(|a| a.first().cloned())
    });
    std::thread::sleep(Duration::from_secs(3));
    let st = container_status(c, &ns, "steady");
    check_eq!(st["restartCount"], 0);
    check!(st["state"]["running"].is_object(), "{st}");
    check_eq!(pod_pids(&uid), pids);
    check_contains(&c.kubectl_ok(&["logs", "-n", &ns, "steady"]), "up");
    c.kubectl_ok(&["delete", "pod", "-n", &ns, "steady"]);
    c.eventually(SETTLE, "the processes to be gone", || {
        pod_pids(&uid).is_empty().then_some(())
    });
}

#[test]
fn image_pull_errors_are_reported_and_recover() {
    let (_registry, host, node) = setup();
    let c = node.c();
    let ns = unique("pull");
    c.kubectl_ok(&["create", "namespace", &ns]);
    let image = format!("{host}/later:1");
    let p = bare_pod("waits", &image, "echo finally; exec sleep 3600", json!({}));
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &p.to_string());
    let st = c.eventually(SETTLE, "an image pull error", || {
        let st = container_status(c, &ns, "waits");
        let r = st["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (r == "ErrImagePull" || r == "ImagePullBackOff").then_some(st)
    });
    let message = st["state"]["waiting"]["message"].as_str().unwrap_or("");
    check!(
        message.contains("later") && message.contains(&host),
        "the message names the image: {message}"
    );
    check_contains(
        &c.kubectl_ok(&["describe", "pod", "-n", &ns, "waits"]),
        "Failed to pull image",
    );
    // The image appears: the pod starts (after the back-off).
    rt().block_on(push_busybox_image(&host, "later", "1"))
        .expect("pushing the image");
    c.eventually(Duration::from_secs(120), "the pod to run", || {
        let p = get_json(c, &["pod", "-n", &ns, "waits"]);
        (p["status"]["phase"] == "Running").then_some(())
    });
    // A digest the registry does not have is an error naming it.
    let wrong = format!("{host}/busybox@sha256:{}", "0".repeat(64));
    let p = bare_pod("pinned", &wrong, "true", json!({}));
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &p.to_string());
    let st = c.eventually(SETTLE, "a pull error for the wrong digest", || {
        let st = container_status(c, &ns, "pinned");
        st["state"]["waiting"]["reason"]
            .as_str()
            .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
            .then_some(st)
    });
    let message = st["state"]["waiting"]["message"].as_str().unwrap_or("");
    check!(
        message.contains("sha256:0000"),
        "the message names the digest: {message}"
    );
    // A registry that is down is an error too.
    let gone = bare_pod("nowhere", "127.0.0.1:1/busybox:1", "true", json!({}));
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &gone.to_string());
    c.eventually(SETTLE, "a pull error for the registry that is down", || {
        let st = container_status(c, &ns, "nowhere");
        st["state"]["waiting"]["reason"]
            .as_str()
            .is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
            .then_some(())
    });
    c.kubectl_ok(&["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
fn probes_drive_readiness_and_restart_unhealthy_containers() {
    let (_registry, host, node) = setup();
    let c = node.c();
    let ns = unique("probe");
    c.kubectl_ok(&["create", "namespace", &ns]);
    let image = format!("{host}/busybox:1");
    let mut p = bare_pod(
        "probed",
        &image,
        "touch /tmp/alive; exec sleep 3600",
        json!({}),
    );
    p["spec"]["containers"][0]["readinessProbe"] =
        json!({"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1});
    p["spec"]["containers"][0]["livenessProbe"] = json!({"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2});
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &p.to_string());
    let pod = c.eventually(SETTLE, "the pod to run", || {
        let p = get_json(c, &["pod", "-n", &ns, "probed"]);
        (p["status"]["phase"] == "Running").then_some(p)
    });
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let ready = |want: bool| {
        c.eventually(SETTLE, &format!("Ready={want}"), || {
            let p = get_json(c, &["pod", "-n", &ns, "probed"]);
            let cond = p["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
                .unwrap_or(Value::Null);
            (cond["status"] == if want { "True" } else { "False" }).then_some(())
        })
    };
    ready(false);
    // The container's /tmp, through its root filesystem on the host.
    let tmp = node
        .c()
        .data_dir()
        .join("pods")
        .join(&uid)
        .join("containers/main-0/rootfs/tmp");
    std::fs::write(tmp.join("ready"), "").expect("writing /tmp/ready");
    ready(true);
    std::fs::remove_file(tmp.join("ready")).expect("removing /tmp/ready");
    ready(false);
    // Liveness fails: the container is killed and restarted.
    std::fs::remove_file(tmp.join("alive")).expect("removing /tmp/alive");
    c.eventually(SETTLE, "a restart after the liveness probe failed", || {
        let st = container_status(c, &ns, "probed");
        (st["restartCount"].as_u64().unwrap_or(0) >= 1).then_some(())
    });
    let describe = c.kubectl_ok(&["describe", "pod", "-n", &ns, "probed"]);
    check_contains(&describe, "Liveness probe failed");
    check_contains(&describe, "failed liveness probe, will be restarted");
    c.kubectl_ok(&["delete", "namespace", &ns, "--wait=false"]);
}

#[test]
fn volumes_environment_and_streamed_logs() {
    let (_registry, host, node) = setup();
    let c = node.c();
    let ns = unique("vol");
    c.kubectl_ok(&["create", "namespace", &ns]);
    c.kubectl_ok(&[
        "create",
        "configmap",
        "-n",
        &ns,
        "cfg",
        "--from-literal=greeting=hello from a configmap",
    ]);
    c.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "-n",
        &ns,
        "sec",
        "--from-literal=token=s3cr3t",
    ]);
    let image = format!("{host}/busybox:1");
    let mut p = bare_pod(
        "reader",
        &image,
        "cat /cfg/greeting; echo; echo token=$TOKEN pod=$POD_NAME; echo scratch > /scratch/f && cat /scratch/f; \
         i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done",
        json!({}),
    );
    p["metadata"]["labels"] = json!({"tier": "backend"});
    // A preStop hook runs before the container is stopped (it writes to a host dir).
    let host_dir = tempfile::tempdir().expect("a host dir");
    p["spec"]["terminationGracePeriodSeconds"] = json!(5);
    p["spec"]["containers"][0]["lifecycle"] = json!({"preStop": {"exec": {"command": ["sh", "-c", "echo stopped-gracefully > /host/prestop"]}}});
    p["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "64Mi"}});
    p["spec"]["volumes"] = json!([
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory", "divisor": "1Mi"}}]}},
        {"name": "all", "projected": {"sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "greeting", "path": "cfg/greeting"}]}},
            {"secret": {"name": "sec"}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "host", "hostPath": {"path": host_dir.path().display().to_string(), "type": "Directory"}},
    ]);
    p["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "cfg", "mountPath": "/cfg", "readOnly": true},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "info", "mountPath": "/info", "readOnly": true},
        {"name": "all", "mountPath": "/all", "readOnly": true},
        {"name": "host", "mountPath": "/host"},
    ]);
    p["spec"]["containers"][0]["env"] = json!([
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]);
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &p.to_string());
    c.eventually(SETTLE, "the pod to run", || {
        let p = get_json(c, &["pod", "-n", &ns, "reader"]);
        (p["status"]["phase"] == "Running").then_some(())
    });
    let logs = c.eventually(SETTLE, "the first lines", || {
        let l = c.kubectl_ok(&["logs", "-n", &ns, "reader"]);
        l.contains("tick-0").then_some(l)
    });
    check_contains(&logs, "hello from a configmap");
    check_contains(&logs, "token=s3cr3t pod=reader");
    check_contains(&logs, "scratch");
    // Downward API and projected volumes.
    let files = c.kubectl_ok(&[
        "exec", "-n", &ns, "reader", "--", "sh", "-c",
        "cat /info/name; echo; cat /info/labels; echo; cat /info/mem; echo; cat /all/cfg/greeting; echo; cat /all/token; echo; cat /all/ns",
    ]);
    let lines: Vec<&str> = files.lines().collect();
    check_eq!(
        lines,
        vec![
            "reader",
            "tier=\"backend\"",
            "64",
            "hello from a configmap",
            "s3cr3t",
            ns.as_str()
        ]
    );
    // A changed configMap and label reach the running container's files (the kubelet
    // refreshes them; here within seconds), a removed key goes.
    c.kubectl_stdin_ok(
        &["apply", "-n", &ns, "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
            "data": {"greeting": "updated", "extra": "new"}})
        .to_string(),
    );
    c.kubectl_ok(&[
        "label",
        "-n",
        &ns,
        "pod",
        "reader",
        "tier=frontend",
        "--overwrite",
    ]);
    c.eventually(Duration::from_secs(60), "the volumes to follow their sources", || {
        let out = c.kubectl(&[
            "exec", "-n", &ns, "reader", "--", "sh", "-c",
            "cat /cfg/greeting; echo; cat /cfg/extra; echo; cat /all/cfg/greeting; echo; cat /info/labels",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.lines().collect::<Vec<_>>() == vec!["updated", "new", "updated", "tier=\"frontend\""])
            .then_some(())
    });
    // `--tail` and `-f`: the last line, then new ones as they are written.
    let tail = c.kubectl_ok(&["logs", "-n", &ns, "reader", "--tail=1"]);
    check_eq!(tail.lines().count(), 1, "{tail}");
    let mut follow = c.kubectl_spawn(&["logs", "-n", &ns, "reader", "-f", "--tail=1"]);
    let first = follow.wait_line(Duration::from_secs(20), "a first line", |l| {
        l.starts_with("tick-")
    });
    let n: u64 = first
        .trim_start_matches("tick-")
        .trim()
        .parse()
        .unwrap_or(0);
    let later = format!("tick-{}", n + 5);
    follow.wait_line(Duration::from_secs(20), "later lines streamed", |l| {
        l.trim() == later
    });
    let ts = c.kubectl_ok(&["logs", "-n", &ns, "reader", "--tail=1", "--timestamps"]);
    check!(
        ts.split_whitespace()
            .next()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "a timestamp first: {ts}"
    );
    c.kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        &ns,
        "reader",
        "--wait=true",
        "--timeout=60s",
    ]);
    check_eq!(
        std::fs::read_to_string(host_dir.path().join("prestop"))
            .unwrap_or_default()
            .trim(),
        "stopped-gracefully"
    );
    c.kubectl_ok(&["delete", "namespace", &ns, "--wait=false"]);
}
