//! `kubectl exec` end to end: the real kubectl (WebSocket, `v5.channel.k8s.io`) against
//! `tug server --node-agent`, whose pod runs in a real container (runc) from a real
//! `docker-registry` on loopback serving an image built here from Debian's busybox-static.
//!
//! Whatever happens, the guard runs `tug node reset` for the server's data directory before
//! the server is dropped, so no container, mount or cgroup is left behind.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::node::{Node, get_json};
use common::{Cluster, check_contains, unique};
use serde_json::json;
use tugboat::runtime::image::testutil::{TestRegistry, push_busybox_image};

const SETTLE: Duration = Duration::from_secs(90);

/// A single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs kubectl `args` under `script` (kubectl needs a terminal for `-t`), typing `input`
/// into that terminal; returns what the terminal showed and script's exit code (kubectl's,
/// with `-e`).
fn kubectl_in_terminal(c: &Cluster, args: &[&str], input: &str) -> (String, Option<i32>) {
    let kubectl = c.kubectl_cmd(args);
    let mut line = quote(&kubectl.get_program().to_string_lossy());
    for a in kubectl.get_args() {
        line.push(' ');
        line.push_str(&quote(&a.to_string_lossy()));
    }
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("KUBECONFIG")
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning script");
    // Keep the input open until the command ends (an end of file would end the session).
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("typing the input");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for script") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    let out = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    check!(
        status.is_some(),
        "`{line}` timed out; it printed:\n{out}{err}"
    );
    (out, status.and_then(|s| s.code()))
}

#[test]
fn kubectl_exec_runs_commands_in_a_pods_container() {
    let registry = TestRegistry::start().expect("docker-registry starts");
    let host = registry.host();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(push_busybox_image(&host, "busybox", "1"))
        .expect("pushing the busybox image");
    let node = Node::start();
    let c = node.c();
    let ns = unique("exec");
    c.kubectl_ok(&["create", "namespace", &ns]);
    let pod = unique("shell");
    let manifest = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
        "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": format!("{host}/busybox:1"),
                "command": ["sleep", "3600"]}]}});
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &manifest.to_string());
    c.eventually(SETTLE, "the pod to run", || {
        let p = get_json(c, &["pod", "-n", &ns, &pod]);
        p["status"]["containerStatuses"][0]["state"]["running"]
            .is_object()
            .then_some(())
    });

    // Output on both streams, and the remote exit code as kubectl's own.
    let out = c.kubectl(&[
        "exec",
        "-n",
        &ns,
        &pod,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    check_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    // (kubectl adds its own note of the exit code.)
    check_eq!(
        String::from_utf8_lossy(&out.stderr),
        "err\ncommand terminated with exit code 3\n"
    );
    check_eq!(out.status.code(), Some(3));

    // The command runs inside the pod's container (its UTS namespace and files).
    let hostname = c.kubectl_ok(&["exec", "-n", &ns, &pod, "--", "cat", "/etc/hostname"]);
    check_eq!(hostname.trim(), pod.as_str());
    let uts = c.kubectl_ok(&["exec", "-n", &ns, &pod, "-c", "main", "--", "hostname"]);
    check_eq!(uts.trim(), pod.as_str());

    // Stdin reaches the process, and its end closes the process's stdin (`cat` ends).
    let echoed = c.kubectl_stdin_ok(&["exec", "-i", "-n", &ns, &pod, "--", "cat"], "hello");
    check_eq!(echoed, "hello");
    let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let counted = c.kubectl_stdin_ok(
        &[
            "exec",
            "-i",
            "-n",
            &ns,
            &pod,
            "--",
            "sh",
            "-c",
            "cat | tail -n 1",
        ],
        &big,
    );
    check_eq!(counted, "line 19999\n");

    // A command that cannot start: the runtime's error, and a failure.
    let out = c.kubectl(&["exec", "-n", &ns, &pod, "--", "no-such-command"]);
    check!(!out.status.success(), "running a missing command fails");
    check_contains(
        &String::from_utf8_lossy(&out.stderr),
        "error executing command in container",
    );

    // An unknown container: kubectl shows our Status.
    let err = c.kubectl_err(&["exec", "-n", &ns, &pod, "-c", "nope", "--", "true"]);
    check_contains(&err, &format!("container nope is not valid for pod {pod}"));
    // An unknown pod.
    let err = c.kubectl_err(&["exec", "-n", &ns, "missing", "--", "true"]);
    check_contains(&err, "\"missing\" not found");

    // With a terminal: the process gets one, and what is typed reaches it.
    let (out, code) = kubectl_in_terminal(
        c,
        &[
            "exec",
            "-it",
            "-n",
            &ns,
            &pod,
            "--",
            "sh",
            "-c",
            "tty; exit 4",
        ],
        "",
    );
    check_contains(&out, "/dev/pts/");
    check_eq!(code, Some(4));
    let (out, code) = kubectl_in_terminal(
        c,
        &["exec", "-it", "-n", &ns, &pod, "--", "sh"],
        "echo typed-$((6*7))\nexit 5\n",
    );
    check_contains(&out, "typed-42");
    check_eq!(code, Some(5));

    // No exec process is left in the container.
    let ps = c.kubectl_ok(&["exec", "-n", &ns, &pod, "--", "ps", "-o", "pid,args"]);
    let others: Vec<&str> = ps
        .lines()
        .skip(1)
        .filter(|l| !l.contains("sleep 3600") && !l.contains("ps -o"))
        .collect();
    check!(others.is_empty(), "leftover processes: {others:?}");
    drop(registry);
}
