//! Tests of the container runtime. The ones marked "root" need root and runc (CI has
//! both); elsewhere they print why and pass without doing anything.
//!
//! The shim runs as a separate process: this very test binary, restricted to the
//! [`shim_entry`] test (see `RuntimeConfig::shim`), which calls `shim::main` when
//! `TUG_SHIM_DIR` is set — or, with `TUG_TEST_SHIM=<path of a built tug>`, the real
//! `tug shim`. Every root test registers its pods in an [`Env`] whose `Drop`
//! removes them with `remove_sandbox` (from a fresh `Runtime`, as after a restart), so
//! nothing is left behind even when an assertion fails.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;

/// Entry point of the shim when this test binary is used as the shim program.
#[test]
fn shim_entry() {
    if std::env::var_os(shim::SHIM_DIR_ENV).is_none() {
        return;
    }
    let code = match shim::main(shim::ShimArgs::default()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tug shim: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn can_run_containers() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let runc = find_in_path(Path::new("runc")).is_some();
    let busybox = Path::new("/usr/bin/busybox").exists();
    if !(root && runc && busybox) {
        eprintln!("skipping: needs root ({root}), runc ({runc}) and /usr/bin/busybox ({busybox})");
    }
    root && runc && busybox
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        state::now_nanos() % 1_000_000
    )
}

/// A runtime over a temporary state dir; removes its pods on drop.
struct Env {
    tmp: tempfile::TempDir,
    cfg: RuntimeConfig,
    rt: Arc<Runtime>,
    pods: Mutex<Vec<String>>,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("tug-ctr-test")
            .tempdir()
            .unwrap();
        let mut cfg =
            RuntimeConfig::new(tmp.path().join("state"), tmp.path().join("logs")).unwrap();
        if let Some(tug) = std::env::var_os("TUG_TEST_SHIM") {
            // The real thing: `TUG_TEST_SHIM=…/tug` runs `tug shim`.
            cfg.shim = PathBuf::from(tug);
            cfg.shim_args = vec!["shim".to_string()];
        } else {
            cfg.shim = std::env::current_exe().unwrap();
            cfg.shim_args = [
                "--exact",
                "runtime::container::tests::shim_entry",
                "--nocapture",
                "--test-threads=1",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
        }
        let rt = Runtime::new(cfg.clone()).unwrap();
        Env {
            tmp,
            cfg,
            rt,
            pods: Mutex::new(Vec::new()),
        }
    }

    /// A busybox root filesystem of its own.
    fn rootfs(&self) -> PathBuf {
        let root = self.tmp.path().join(unique("rootfs"));
        for d in ["bin", "proc", "dev", "sys", "etc", "tmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "sleep", "echo", "cat", "ls", "true", "false", "dd", "hostname", "id", "wc",
            "head", "yes",
        ] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        root
    }

    fn sandbox(&self) -> (SandboxSpec, Sandbox) {
        let spec = SandboxSpec {
            pod_uid: unique("pod"),
            namespace: "default".into(),
            name: "test".into(),
            hostname: "test-host".into(),
        };
        self.pods.lock().push(spec.pod_uid.clone());
        let sb = self.rt.create_sandbox(&spec).unwrap();
        (spec, sb)
    }

    fn container(&self, pod: &SandboxSpec, name: &str, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            id: format!("{}-{name}-0", pod.pod_uid),
            pod_uid: pod.pod_uid.clone(),
            name: name.into(),
            rootfs: self.rootfs(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log_path: self.rt.log_path(pod, name, 0),
            hostname: pod.hostname.clone(),
            ..Default::default()
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let pods = std::mem::take(&mut *self.pods.lock());
        if pods.is_empty() {
            return;
        }
        // A fresh runtime, as after a restart: it must find everything again.
        match Runtime::new(self.cfg.clone()) {
            Ok(rt) => {
                for p in pods {
                    if let Err(e) = rt.remove_sandbox(&p) {
                        eprintln!("cleanup of {p}: {e:#}");
                    }
                }
            }
            Err(e) => eprintln!("cleanup: {e:#}"),
        }
    }
}

async fn wait_exited(rt: &Runtime, id: &str, within: Duration) -> ContainerStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        let st = rt.status(id).expect("status");
        if st.state == ContainerState::Exited || std::time::Instant::now() > deadline {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ns_of(pid: i32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .display()
        .to_string()
}

/// The `ns:[inode]` identity of a pinned namespace file.
fn pin_identity(pin: &Path, kind: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{kind}:[{}]", std::fs::metadata(pin).unwrap().ino())
}

/// Asserts that nothing of the pod is left: mounts, cgroups, processes, state.
fn assert_pod_gone(env: &Env, uid: &str, pids: &[i32]) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(uid),
        "a mount of pod {uid} is left:\n{mountinfo}"
    );
    for d in env.rt.cgroups.dirs(&env.rt.cgroup_parent(uid)) {
        assert!(!d.exists(), "cgroup {} is left", d.display());
    }
    for pid in pids {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "process {pid} is left");
    }
    assert!(!env.rt.pod_dir(uid).exists(), "pod state dir is left");
    let containers = std::fs::read_dir(env.cfg.state_dir.join("containers")).unwrap();
    for c in containers.flatten() {
        assert!(
            !c.file_name().to_string_lossy().starts_with(uid),
            "container state {} is left",
            c.path().display()
        );
    }
}

// ---------- unit tests (no root) ----------

#[test]
fn parses_hybrid_and_v2_mountinfo() {
    let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    let c = Cgroups::parse(hybrid);
    assert_eq!(c.mode, cgroups::CgroupMode::Hybrid);
    assert_eq!(c.hierarchies.len(), 4);
    assert_eq!(
        c.memory_dir("/tugboat/podx/c"),
        Some((PathBuf::from("/sys/fs/cgroup/memory/tugboat/podx/c"), false))
    );
    assert!(
        c.dirs("/tugboat/podx")
            .contains(&PathBuf::from("/sys/fs/cgroup/unified/tugboat/podx"))
    );
    let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    let c = Cgroups::parse(v2);
    assert_eq!(c.mode, cgroups::CgroupMode::V2);
    assert_eq!(
        c.memory_dir("/tugboat/p/c"),
        Some((PathBuf::from("/sys/fs/cgroup/tugboat/p/c"), true))
    );
    let v1 = "32 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    assert_eq!(Cgroups::parse(v1).mode, cgroups::CgroupMode::V1);
    assert_eq!(cgroups::unescape_mount("/a\\040b"), "/a b");
}

fn sample_sandbox() -> Sandbox {
    Sandbox {
        pod_uid: "u1".into(),
        netns: "/run/t/pods/u1/ns/net".into(),
        ipcns: "/run/t/pods/u1/ns/ipc".into(),
        utsns: "/run/t/pods/u1/ns/uts".into(),
        cgroup_parent: "/tugboat/podu1".into(),
    }
}

#[test]
fn spec_is_hardened_and_valid_oci() {
    let sb = sample_sandbox();
    let spec = ContainerSpec {
        id: "u1-app-0".into(),
        pod_uid: "u1".into(),
        name: "app".into(),
        rootfs: "/r".into(),
        args: vec!["sh".into()],
        uid: 1000,
        gid: 1000,
        memory_limit: Some(64 << 20),
        pids_limit: Some(100),
        cpu_shares: Some(512),
        cap_add: vec!["NET_ADMIN".into()],
        cap_drop: vec!["cap_kill".into()],
        mounts: vec![Mount {
            destination: "/data".into(),
            source: "/var/x".into(),
            read_only: true,
            kind: MountKind::Bind,
        }],
        ..Default::default()
    };
    let ctx = spec::SpecContext {
        sandbox: &sb,
        pod_files: Path::new("/run/t/pods/u1/etc"),
        cgroup_mode: cgroups::CgroupMode::Hybrid,
        cgroups_path: "/tugboat/podu1/u1-app-0",
        shared_pid_ns: None,
    };
    let v = spec::build(&spec, &ctx);
    // It parses as an OCI runtime spec.
    let parsed: oci_spec::runtime::Spec = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(parsed.root().as_ref().unwrap().path(), Path::new("/r"));
    let caps: Vec<&str> = v["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(caps.contains(&"CAP_NET_ADMIN"));
    assert!(!caps.contains(&"CAP_KILL"));
    assert!(!caps.contains(&"CAP_SYS_ADMIN"));
    assert_eq!(caps.len(), spec::DEFAULT_CAPS.len());
    assert_eq!(
        v["process"]["capabilities"]["ambient"],
        serde_json::json!([])
    );
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["process"]["user"]["uid"], 1000);
    let denied = v["linux"]["seccomp"]["syscalls"][0]["names"]
        .as_array()
        .unwrap();
    assert!(denied.iter().any(|n| n == "mount"));
    assert!(denied.iter().any(|n| n == "kexec_load"));
    assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    assert!(
        v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore")
    );
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(
        ns.iter()
            .any(|n| n["type"] == "network" && n["path"] == "/run/t/pods/u1/ns/net")
    );
    assert!(
        ns.iter()
            .any(|n| n["type"] == "pid" && n.get("path").is_none())
    );
    assert!(
        !ns.iter().any(|n| n["type"] == "cgroup"),
        "no cgroup ns on hybrid"
    );
    assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
    assert_eq!(v["linux"]["resources"]["pids"]["limit"], 100);
    assert_eq!(v["linux"]["cgroupsPath"], "/tugboat/podu1/u1-app-0");
    let mounts = v["mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["destination"] == "/etc/hosts" && m["source"] == "/run/t/pods/u1/etc/hosts")
    );
    assert!(mounts.iter().any(|m| m["destination"] == "/data"
        && m["options"].as_array().unwrap().iter().any(|o| o == "ro")));
    assert!(mounts.iter().any(|m| m["destination"] == "/sys"
        && m["options"].as_array().unwrap().iter().any(|o| o == "ro")));

    // Privileged: everything lifted; v2: a cgroup namespace.
    let privileged = ContainerSpec {
        privileged: true,
        ..spec.clone()
    };
    let ctx2 = spec::SpecContext {
        cgroup_mode: cgroups::CgroupMode::V2,
        ..ctx
    };
    let v = spec::build(&privileged, &ctx2);
    assert!(v["linux"].get("seccomp").is_none());
    assert!(v["linux"].get("maskedPaths").is_none());
    assert_eq!(v["process"]["noNewPrivileges"], false);
    assert_eq!(
        v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        spec::ALL_CAPS.len()
    );
    assert!(
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "cgroup")
    );
    // SYS_ADMIN lifts the mount-family denials.
    let admin = ContainerSpec {
        cap_add: vec!["SYS_ADMIN".into()],
        ..spec
    };
    let v = spec::build(&admin, &ctx2);
    let denied = v["linux"]["seccomp"]["syscalls"][0]["names"]
        .as_array()
        .unwrap();
    assert!(!denied.iter().any(|n| n == "mount"));
    assert!(denied.iter().any(|n| n == "kexec_load"));
}

#[test]
fn cri_log_lines_partial_and_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("c/0.log");
    let mut w = logs::LogWriter::open(&path, 0, 3).unwrap();
    w.write(logs::Stream::Stdout, b"hello\nwor");
    w.write(logs::Stream::Stderr, b"oops\n");
    w.write(logs::Stream::Stdout, b"ld\n");
    w.write(logs::Stream::Stdout, &vec![b'x'; logs::MAX_LINE + 10]);
    w.flush();
    drop(w);
    let text = std::fs::read(&path).unwrap();
    let recs: Vec<logs::LogRecord> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| logs::parse_line(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0].text, b"hello");
    assert_eq!(recs[0].stream, logs::Stream::Stdout);
    assert!(recs[0].full);
    assert_eq!(recs[1].text, b"oops");
    assert_eq!(recs[1].stream, logs::Stream::Stderr);
    assert_eq!(recs[2].text, b"world");
    assert!(!recs[3].full, "a long line is split into a partial record");
    assert_eq!(recs[3].text.len(), logs::MAX_LINE);
    assert!(recs[4].full);
    assert_eq!(recs[4].text.len(), 10);
    // 2026-11-27T12:00:00.123456789Z
    let ts = &recs[0].timestamp;
    assert_eq!(ts.len(), 30, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.');
    let _: jiff::Timestamp = ts.parse().unwrap();

    // Rotation: a small size limit keeps <log> plus at most 3 rotated files.
    let path = tmp.path().join("r/0.log");
    let mut w = logs::LogWriter::open(&path, 200, 3).unwrap();
    for i in 0..100 {
        w.write(logs::Stream::Stdout, format!("line {i}\n").as_bytes());
    }
    drop(w);
    assert!(std::fs::metadata(&path).unwrap().len() <= 200);
    for n in 1..=3 {
        let p = tmp.path().join(format!("r/0.log.{n}"));
        assert!(p.exists(), "{} missing", p.display());
        assert!(std::fs::metadata(&p).unwrap().len() <= 200);
    }
    assert!(!tmp.path().join("r/0.log.4").exists());
    let last = std::fs::read_to_string(&path).unwrap();
    assert!(last.trim_end().ends_with("line 99"), "{last}");
}

#[test]
fn names_are_validated() {
    assert!(valid_name("0f9c-1a_b.c"));
    assert!(!valid_name("../x"));
    assert!(!valid_name("a/b"));
    assert!(!valid_name(""));
    assert!(!valid_name(".hidden"));
}

// ---------- root tests (real runc) ----------

/// root: a container that prints and exits 3; its CRI log, its status.
#[tokio::test]
async fn exit_code_and_cri_logs() {
    if !can_run_containers() {
        return;
    }
    let env = Env::new();
    let (pod, sb) = env.sandbox();
    let spec = env.container(
        &pod,
        "exits",
        &[
            "sh",
            "-c",
            "echo hello out; echo hello err >&2; hostname; exit 3",
        ],
    );
    env.rt.start_container(&sb, &spec).unwrap();
    let st = wait_exited(&env.rt, &spec.id, Duration::from_secs(10)).await;
    assert_eq!(st.state, ContainerState::Exited, "{st:?}");
    assert_eq!(st.exit_code, Some(3));
    assert_eq!(st.reason.as_deref(), Some("Error"));
    assert!(!st.oom_killed);
    assert!(st.started_at.is_some() && st.finished_at >= st.started_at);
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    let recs: Vec<logs::LogRecord> = log
        .lines()
        .map(|l| logs::parse_line(l.as_bytes()).unwrap())
        .collect();
    assert!(
        recs.iter()
            .any(|r| r.stream == logs::Stream::Stdout && r.text == b"hello out")
    );
    assert!(
        recs.iter()
            .any(|r| r.stream == logs::Stream::Stderr && r.text == b"hello err")
    );
    assert!(
        recs.iter().any(|r| r.text == b"test-host"),
        "hostname: {log}"
    );
    // list() reports it; removal keeps the log until the pod goes.
    assert_eq!(env.rt.list(&pod.pod_uid).len(), 1);
    env.rt.remove_container(&spec.id).unwrap();
    assert!(env.rt.status(&spec.id).is_none());
    assert!(spec.log_path.exists());
    env.rt.remove_sandbox(&pod.pod_uid).unwrap();
    assert!(!spec.log_path.exists());
    assert_pod_gone(&env, &pod.pod_uid, &[]);
}

/// root: a start failure is reported with runc's error and leaves the pod clean.
#[tokio::test]
async fn start_failure_is_reported() {
    if !can_run_containers() {
        return;
    }
    let env = Env::new();
    let (pod, sb) = env.sandbox();
    let spec = env.container(&pod, "missing", &["/no/such/binary"]);
    let err = env.rt.start_container(&sb, &spec).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("no/such/binary") || msg.contains("no such file"),
        "{msg}"
    );
    let st = env.rt.status(&spec.id).unwrap();
    assert_eq!(st.state, ContainerState::Exited);
    assert_eq!(st.reason.as_deref(), Some("StartError"));
    env.rt.remove_sandbox(&pod.pod_uid).unwrap();
    assert_pod_gone(&env, &pod.pod_uid, &[]);
}

/// root: namespaces, cgroup and memory limit of a running container; exec_sync;
/// remove_sandbox leaves nothing.
#[tokio::test]
async fn sleep_container_namespaces_cgroup_exec_and_cleanup() {
    if !can_run_containers() {
        return;
    }
    let env = Env::new();
    let (pod, sb) = env.sandbox();
    let mut spec = env.container(&pod, "sleeper", &["sleep", "1000"]);
    spec.memory_limit = Some(32 << 20);
    spec.pids_limit = Some(50);
    env.rt.start_container(&sb, &spec).unwrap();
    let st = env.rt.status(&spec.id).unwrap();
    assert_eq!(st.state, ContainerState::Running);
    let pid = env.rt.pid(&spec.id).unwrap();
    assert_eq!(st.pid, Some(pid));
    assert_eq!(ns_of(pid, "net"), pin_identity(&sb.netns, "net"));
    assert_eq!(ns_of(pid, "ipc"), pin_identity(&sb.ipcns, "ipc"));
    assert_eq!(ns_of(pid, "uts"), pin_identity(&sb.utsns, "uts"));
    let me = std::process::id() as i32;
    assert_ne!(ns_of(pid, "pid"), ns_of(me, "pid"));
    assert_ne!(ns_of(pid, "mnt"), ns_of(me, "mnt"));
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("/tugboat/pod{}/{}", pod.pod_uid, spec.id);
    assert!(cg.lines().any(|l| l.ends_with(&want)), "{cg}");
    let (memdir, v2) = env.rt.cgroups.memory_dir(&want).unwrap();
    let file = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let limit = std::fs::read_to_string(memdir.join(file)).unwrap();
    assert_eq!(limit.trim(), (32u64 << 20).to_string());

    // exec_sync: output and exit code; inside the same namespaces.
    let (code, out) = env
        .rt
        .exec_sync(
            &spec.id,
            &[
                "sh".into(),
                "-c".into(),
                "hostname; echo err >&2; exit 7".into(),
            ],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(code, 7);
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("test-host") && out.contains("err"), "{out}");
    // …its timeout kills the command.
    let t0 = std::time::Instant::now();
    let r = env
        .rt
        .exec_sync(
            &spec.id,
            &["sleep".into(), "100".into()],
            Duration::from_millis(300),
        )
        .await;
    assert!(r.is_err() && t0.elapsed() < Duration::from_secs(5), "{r:?}");
    // Interactive exec without a terminal.
    let mut sess = env
        .rt
        .exec(&spec.id, &["cat".into()], false, true)
        .await
        .unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut w = sess.stdin.take().unwrap();
        w.write_all(b"ping\n").await.unwrap();
        drop(w);
        let mut s = String::new();
        sess.stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .await
            .unwrap();
        assert_eq!(s, "ping\n");
    }
    assert_eq!(sess.wait().await.unwrap(), 0);
    // With a terminal.
    let mut sess = env
        .rt
        .exec(
            &spec.id,
            &[
                "sh".into(),
                "-c".into(),
                "test -t 1 && echo tty; exit 5".into(),
            ],
            true,
            false,
        )
        .await
        .unwrap();
    sess.resize(100, 40).unwrap();
    let mut s = String::new();
    {
        use tokio::io::AsyncReadExt;
        sess.stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .await
            .unwrap();
    }
    assert!(s.contains("tty"), "{s:?}");
    assert_eq!(sess.wait().await.unwrap(), 5);

    let started = env.rt.started(&spec.id).unwrap();
    env.rt.remove_sandbox(&pod.pod_uid).unwrap();
    assert_pod_gone(&env, &pod.pod_uid, &[pid, started.shim_pid]);
    // Idempotent.
    env.rt.remove_sandbox(&pod.pod_uid).unwrap();
}

/// root: a memory hog is OOM-killed and reported so.
#[tokio::test]
async fn oom_killed_is_reported() {
    if !can_run_containers() {
        return;
    }
    let env = Env::new();
    let (pod, sb) = env.sandbox();
    let mut spec = env.container(
        &pod,
        "hog",
        &["sh", "-c", "x=0123456789; while :; do x=$x$x; done"],
    );
    spec.memory_limit = Some(16 << 20);
    env.rt.start_container(&sb, &spec).unwrap();
    let st = wait_exited(&env.rt, &spec.id, Duration::from_secs(30)).await;
    assert_eq!(st.state, ContainerState::Exited, "{st:?}");
    assert!(st.oom_killed, "{st:?}");
    assert_eq!(st.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(st.signal, Some(libc::SIGKILL));
    assert_eq!(st.exit_code, Some(137));
    env.rt.remove_sandbox(&pod.pod_uid).unwrap();
    assert_pod_gone(&env, &pod.pod_uid, &[]);
}

/// root: SIGTERM ignored → SIGKILL after the grace period; a cooperative one stops at
/// SIGTERM.
#[tokio::test]
async fn stop_with_grace() {
    if !can_run_containers() {
        return;
    }
    let env = Env::new();
    let (pod, sb) = env.sandbox();
    let stubborn = env.container(
        &pod,
        "stubborn",
        &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    );
    let polite = env.container(
        &pod,
        "polite",
        &[
            "sh",
            "-c",
            "trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done",
        ],
    );
    env.rt.start_container(&sb, &stubborn).unwrap();
    env.rt.start_container(&sb, &polite).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let t0 = std::time::Instant::now();
    env.rt
        .stop_container(&polite.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    let st = env.rt.status(&polite.id).unwrap();
    assert_eq!(
        (st.state, st.exit_code),
        (ContainerState::Exited, Some(0)),
        "{st:?}"
    );
    assert!(
        std::fs::read_to_string(&polite.log_path)
            .unwrap()
            .contains(" F bye")
    );

    let t0 = std::time::Instant::now();
    env.rt
        .stop_container(&stubborn.id, Duration::from_millis(700))
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let st = env.rt.status(&stubborn.id).unwrap();
    assert_eq!(st.state, ContainerState::Exited);
    assert_eq!(st.signal, Some(libc::SIGKILL), "{st:?}");
    assert!(!st.oom_killed);
    env.rt.remove_sandbox(&pod.pod_uid).unwrap();
    assert_pod_gone(&env, &pod.pod_uid, &[]);
}

/// root: after a simulated restart (a new `Runtime`), the running container is found
/// again, its sandbox too, and it can be stopped; the shim kept logging meanwhile.
#[tokio::test]
async fn adoption_after_restart() {
    if !can_run_containers() {
        return;
    }
    let env = Env::new();
    let (pod, sb) = env.sandbox();
    let spec = env.container(
        &pod,
        "ticker",
        &["sh", "-c", "while :; do echo tick; sleep 0.05; done"],
    );
    env.rt.start_container(&sb, &spec).unwrap();
    let pid = env.rt.pid(&spec.id).unwrap();

    let rt2 = Runtime::new(env.cfg.clone()).unwrap();
    assert_eq!(rt2.sandbox(&pod.pod_uid), Some(sb.clone()));
    let list = rt2.list(&pod.pod_uid);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, ContainerState::Running);
    assert_eq!(list[0].pid, Some(pid));
    assert_eq!(list[0].name, "ticker");
    tokio::time::sleep(Duration::from_millis(200)).await;
    rt2.stop_container(&spec.id, Duration::from_secs(1))
        .await
        .unwrap();
    let st = rt2.status(&spec.id).unwrap();
    assert_eq!(st.state, ContainerState::Exited);
    let ticks = std::fs::read_to_string(&spec.log_path)
        .unwrap()
        .matches("tick")
        .count();
    assert!(ticks >= 3, "{ticks}");
    // The old runtime sees the same.
    assert_eq!(
        env.rt.status(&spec.id).unwrap().state,
        ContainerState::Exited
    );
    rt2.remove_sandbox(&pod.pod_uid).unwrap();
    assert_pod_gone(&env, &pod.pod_uid, &[pid]);
}

/// root: a terminal container's output is logged as stdout; shareProcessNamespace.
#[tokio::test]
async fn tty_and_shared_pid_namespace() {
    if !can_run_containers() {
        return;
    }
    let env = Env::new();
    let (pod, sb) = env.sandbox();
    let mut first = env.container(
        &pod,
        "first",
        &["sh", "-c", "test -t 1 && echo on-a-tty; sleep 1000"],
    );
    first.tty = true;
    env.rt.start_container(&sb, &first).unwrap();
    let mut second = env.container(&pod, "second", &["sleep", "1000"]);
    second.share_pid_with = Some(first.id.clone());
    env.rt.start_container(&sb, &second).unwrap();
    let (p1, p2) = (
        env.rt.pid(&first.id).unwrap(),
        env.rt.pid(&second.id).unwrap(),
    );
    assert_eq!(ns_of(p1, "pid"), ns_of(p2, "pid"));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(&first.log_path).unwrap_or_default();
        if log.contains("stdout F on-a-tty") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "log: {log:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.rt.remove_sandbox(&pod.pod_uid).unwrap();
    assert_pod_gone(&env, &pod.pod_uid, &[p1, p2]);
}
