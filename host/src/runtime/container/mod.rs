//! Pod sandboxes and containers (see [`crate::runtime`]).
//!
//! Containers are OCI bundles run by `runc` (cgroupfs driver, so v1, hybrid and v2 hosts
//! all work) under one [`shim`] process each. Layout under `state_dir` (a tmpfs such as
//! `/run/tugboat`: live state only):
//!
//! - `runc/` — runc's `--root`;
//! - `pods/<uid>/` — `sandbox.json`, `ns/{net,ipc,uts}` (namespace pins, see
//!   [`sandbox`]), `etc/{hosts,hostname,resolv.conf}`, `logs` (the log files of the
//!   pod's containers, removed with the pod);
//! - `containers/<id>/` — the bundle and the container's state (see [`state`]).
//!
//! Every fact `list`/`status` report is read from those files, so a `Runtime` created
//! after `tug` restarted adopts the running containers; the shims never depend on `tug`.
//!
//! The shim program is configurable ([`RuntimeConfig::shim`], [`RuntimeConfig::shim_args`]):
//! `tug` runs itself (`current_exe() shim`); the unit tests run their own test binary,
//! restricted to the `shim_entry` test which calls [`shim::main`] — so they exercise the
//! real shim code in a separate process without needing a built `tug` binary.

pub mod cgroups;
mod console;
mod exec;
pub mod logs;
mod sandbox;
pub mod shim;
pub mod spec;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use exec::ExecSession;
pub use sandbox::hosts_file;

use cgroups::Cgroups;
use state::{Exit, Meta, Started};

/// Configuration of the container runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Live state (a tmpfs such as `/run/tugboat`).
    pub state_dir: PathBuf,
    /// Where container logs live by default (`<data-dir>/logs`); see
    /// [`Runtime::log_path`].
    pub log_dir: PathBuf,
    /// The runc binary (a bare name is looked up in `PATH`).
    pub runc: PathBuf,
    /// Top cgroup of all pods ("tugboat": pods go to `/tugboat/pod<uid>`).
    pub cgroup_root: String,
    /// The program that runs the shim, with [`RuntimeConfig::shim_args`]; the container
    /// directory is passed in the `TUG_SHIM_DIR` environment variable. `tug` runs itself
    /// with `["shim"]` ([`RuntimeConfig::new`]).
    pub shim: PathBuf,
    /// See [`RuntimeConfig::shim`].
    pub shim_args: Vec<String>,
    /// Rotate a container log past this size (bytes; 0: never).
    pub log_max_size: u64,
    /// Rotated log files kept per container.
    pub log_max_files: u32,
}

impl RuntimeConfig {
    /// Defaults: runc from `PATH`, cgroup root "tugboat", the shim is this executable's
    /// `shim` subcommand, logs rotated at 10 MiB keeping 5 files.
    pub fn new(state_dir: impl Into<PathBuf>, log_dir: impl Into<PathBuf>) -> Result<Self> {
        Ok(RuntimeConfig {
            state_dir: state_dir.into(),
            log_dir: log_dir.into(),
            runc: PathBuf::from("runc"),
            cgroup_root: "tugboat".to_string(),
            shim: std::env::current_exe().context("locating the tug executable")?,
            shim_args: vec!["shim".to_string()],
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 5,
        })
    }
}

/// What a pod sandbox is created from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The pod's uid.
    pub pod_uid: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// Hostname set in the pod's UTS namespace.
    pub hostname: String,
}

/// A pod sandbox: its pinned namespaces and cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// The pod's uid.
    pub pod_uid: String,
    /// The pinned network namespace (for the network plugin too).
    pub netns: PathBuf,
    /// The pinned IPC namespace.
    pub ipcns: PathBuf,
    /// The pinned UTS namespace.
    pub utsns: PathBuf,
    /// The pod's cgroup (`/<cgroup_root>/pod<uid>`), parent of its containers'.
    pub cgroup_parent: String,
}

/// A volume or tmpfs mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Path inside the container.
    pub destination: String,
    /// Host path (binds).
    pub source: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
    /// Bind or tmpfs.
    pub kind: MountKind,
}

/// Kinds of [`Mount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A recursive private bind mount of `source`.
    Bind,
    /// A tmpfs of at most `size` bytes.
    Tmpfs {
        /// Size limit in bytes.
        size: Option<u64>,
    },
}

/// Everything needed to start a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Unique: "<pod-uid>-<container name>-<restart count>".
    pub id: String,
    /// The pod.
    pub pod_uid: String,
    /// Container name.
    pub name: String,
    /// Restart count.
    pub restart_count: u32,
    /// Root filesystem, already mounted.
    pub rootfs: PathBuf,
    /// The command line (entrypoint + args resolved).
    pub args: Vec<String>,
    /// `NAME=value`.
    pub env: Vec<String>,
    /// Working directory ("" = "/").
    pub cwd: String,
    /// User.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Volumes.
    pub mounts: Vec<Mount>,
    /// cgroup cpu shares.
    pub cpu_shares: Option<u64>,
    /// CFS quota (µs per period).
    pub cpu_quota: Option<i64>,
    /// CFS period (µs).
    pub cpu_period: Option<u64>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// Max processes.
    pub pids_limit: Option<i64>,
    /// Privileged container.
    pub privileged: bool,
    /// Capabilities added (`NET_ADMIN` or `CAP_NET_ADMIN`, `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities dropped.
    pub cap_drop: Vec<String>,
    /// Read-only root filesystem.
    pub read_only_rootfs: bool,
    /// Allow setuid binaries etc. to gain privileges (no `no_new_privs`).
    pub allow_privilege_escalation: bool,
    /// Container id whose PID namespace to join (shareProcessNamespace).
    pub share_pid_with: Option<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open (not supported for the main process yet: /dev/null).
    pub stdin: bool,
    /// CRI log file.
    pub log_path: PathBuf,
    /// The pod's hostname (`HOSTNAME` in the environment).
    pub hostname: String,
}

/// Lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Being started.
    Created,
    /// Its process runs.
    Running,
    /// It ended (or never started).
    Exited,
}

/// What the runtime knows about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Restart count.
    pub restart_count: u32,
    /// State.
    pub state: ContainerState,
    /// Host pid of its init while running.
    pub pid: Option<i32>,
    /// When its process started.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// Exit code (128 + signal for a signal).
    pub exit_code: Option<i32>,
    /// Killing signal.
    pub signal: Option<i32>,
    /// OOM-killed.
    pub oom_killed: bool,
    /// "Completed", "Error", "OOMKilled", "StartError", "Unknown".
    pub reason: Option<String>,
    /// Details.
    pub message: Option<String>,
}

/// The container runtime (shared through an `Arc`).
pub struct Runtime {
    cfg: RuntimeConfig,
    cgroups: Cgroups,
    runc_root: PathBuf,
    /// Container id → its meta (mirrors `containers/*/meta.json`).
    index: Mutex<HashMap<String, Meta>>,
}

/// Whether `s` is safe as a directory name and runc id.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
}

fn find_in_path(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 || name.is_absolute() {
        return Some(name.to_path_buf());
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Runtime {
    /// Checks runc, detects the cgroup layout, creates the state directories and loads
    /// the containers already there (adoption after a restart).
    pub fn new(mut cfg: RuntimeConfig) -> Result<Arc<Runtime>> {
        cfg.runc = find_in_path(&cfg.runc)
            .with_context(|| format!("runc ({}) not found in PATH", cfg.runc.display()))?;
        let out = Command::new(&cfg.runc)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", cfg.runc.display()))?;
        if !out.status.success() {
            bail!("{} --version failed", cfg.runc.display());
        }
        if !valid_name(&cfg.cgroup_root) {
            bail!("invalid cgroup root {:?}", cfg.cgroup_root);
        }
        let cgroups = Cgroups::detect()?;
        let runc_root = cfg.state_dir.join("runc");
        for d in [
            &runc_root,
            &cfg.state_dir.join("pods"),
            &cfg.state_dir.join("containers"),
        ] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let mut index = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(cfg.state_dir.join("containers")) {
            for e in entries.flatten() {
                if let Some(meta) = state::read_json::<Meta>(&e.path().join("meta.json")) {
                    index.insert(meta.id.clone(), meta);
                }
            }
        }
        tracing::debug!(
            "container runtime: runc {}, cgroups {:?}, {} containers adopted",
            cfg.runc.display(),
            cgroups.mode,
            index.len()
        );
        Ok(Arc::new(Runtime {
            cfg,
            cgroups,
            runc_root,
            index: Mutex::new(index),
        }))
    }

    /// The host's cgroup layout.
    pub fn cgroup_mode(&self) -> cgroups::CgroupMode {
        self.cgroups.mode
    }

    /// The conventional log file of a container: `<log_dir>/<namespace>_<name>_<uid>/
    /// <container>/<restart>.log` (the kubelet's layout).
    pub fn log_path(&self, pod: &SandboxSpec, container: &str, restart_count: u32) -> PathBuf {
        self.cfg
            .log_dir
            .join(format!("{}_{}_{}", pod.namespace, pod.name, pod.pod_uid))
            .join(container)
            .join(format!("{restart_count}.log"))
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.state_dir.join("pods").join(uid)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.cfg.state_dir.join("containers").join(id)
    }

    fn cgroup_parent(&self, uid: &str) -> String {
        format!("/{}/pod{}", self.cfg.cgroup_root, uid)
    }

    /// Creates the pod's sandbox (or returns the existing one): pinned network, IPC and
    /// UTS namespaces, hostname set, loopback up, the pod's /etc files.
    pub fn create_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox> {
        if !valid_name(&spec.pod_uid) {
            bail!("invalid pod uid {:?}", spec.pod_uid);
        }
        if let Some(sb) = self.sandbox(&spec.pod_uid) {
            return Ok(sb);
        }
        let dir = self.pod_dir(&spec.pod_uid);
        let pins = sandbox::pins(&dir);
        let result = (|| -> Result<Sandbox> {
            std::fs::create_dir_all(dir.join("ns"))?;
            let mut hostname: String = if spec.hostname.is_empty() {
                spec.name.clone()
            } else {
                spec.hostname.clone()
            };
            hostname.truncate(63);
            sandbox::write_etc_files(&dir.join("etc"), &hostname)?;
            sandbox::create_namespaces(&pins, &hostname)?;
            let [netns, ipcns, utsns] = pins.clone();
            let sb = Sandbox {
                pod_uid: spec.pod_uid.clone(),
                netns,
                ipcns,
                utsns,
                cgroup_parent: self.cgroup_parent(&spec.pod_uid),
            };
            state::write_json(&dir.join("sandbox.json"), &(spec, &sb))?;
            Ok(sb)
        })();
        if result.is_err() {
            let _ = sandbox::remove_namespaces(&pins);
            let _ = std::fs::remove_dir_all(&dir);
        }
        result.with_context(|| format!("creating the sandbox of pod {}", spec.pod_uid))
    }

    /// Replaces one of the pod's `/etc` files (`hosts`, `hostname`, `resolv.conf`) that its
    /// containers mount; written in place, so mounts of it see the new content.
    pub fn write_pod_etc(&self, pod_uid: &str, name: &str, contents: &[u8]) -> Result<()> {
        if !valid_name(pod_uid) || !matches!(name, "hosts" | "hostname" | "resolv.conf") {
            bail!("invalid pod file {pod_uid}/{name}");
        }
        let path = self.pod_dir(pod_uid).join("etc").join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    }

    /// Where the pod's network namespace is pinned (whether or not it still is).
    pub fn sandbox_netns_path(&self, pod_uid: &str) -> PathBuf {
        sandbox::pins(&self.pod_dir(pod_uid))[0].clone()
    }

    /// The pod's sandbox if it exists (its namespaces are pinned).
    pub fn sandbox(&self, pod_uid: &str) -> Option<Sandbox> {
        if !valid_name(pod_uid) {
            return None;
        }
        let dir = self.pod_dir(pod_uid);
        let (_, sb): (SandboxSpec, Sandbox) = state::read_json(&dir.join("sandbox.json"))?;
        sandbox::pins(&dir)
            .iter()
            .all(|p| sandbox::is_pinned(p))
            .then_some(sb)
    }

    /// Kills and removes every container of the pod, unmounts the namespace pins,
    /// removes the pod's cgroups in every hierarchy, its state directory and its
    /// containers' logs. Idempotent.
    pub fn remove_sandbox(&self, pod_uid: &str) -> Result<()> {
        if !valid_name(pod_uid) {
            bail!("invalid pod uid {pod_uid:?}");
        }
        let mut errors: Vec<String> = Vec::new();
        let ids: Vec<String> = self
            .index
            .lock()
            .values()
            .filter(|m| m.pod_uid == pod_uid)
            .map(|m| m.id.clone())
            .collect();
        for id in ids {
            if let Err(e) = self.remove_container(&id) {
                errors.push(format!("{e:#}"));
            }
        }
        let dir = self.pod_dir(pod_uid);
        if let Err(e) = sandbox::remove_namespaces(&sandbox::pins(&dir)) {
            errors.push(format!("{e:#}"));
        }
        if let Err(e) = self.cgroups.remove_tree(&self.cgroup_parent(pod_uid)) {
            errors.push(format!("{e:#}"));
        }
        if let Ok(list) = std::fs::read_to_string(dir.join("logs")) {
            for log in list.lines().filter(|l| !l.is_empty()) {
                self.remove_log(Path::new(log));
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                errors.push(format!("removing {}: {e}", dir.display()));
            }
            _ => {}
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("removing pod {pod_uid}: {}", errors.join("; "))
        }
    }

    /// Removes a log file, its rotated siblings and the directories it leaves empty
    /// (up to `log_dir`).
    fn remove_log(&self, log: &Path) {
        let _ = std::fs::remove_file(log);
        for n in 1..=self.cfg.log_max_files.max(1) {
            let mut p = log.as_os_str().to_owned();
            p.push(format!(".{n}"));
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
        let mut dir = log.parent();
        while let Some(d) = dir {
            if !d.starts_with(&self.cfg.log_dir) || d == self.cfg.log_dir {
                break;
            }
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Starts a container in the sandbox (see the module documentation); returns once
    /// its process runs, or runc's error.
    pub fn start_container(&self, sandbox: &Sandbox, spec: &ContainerSpec) -> Result<()> {
        if !valid_name(&spec.id) {
            bail!("invalid container id {:?}", spec.id);
        }
        if spec.pod_uid != sandbox.pod_uid {
            bail!(
                "container {} belongs to pod {}, not to sandbox {}",
                spec.id,
                spec.pod_uid,
                sandbox.pod_uid
            );
        }
        if spec.args.is_empty() {
            bail!("container {}: no command", spec.id);
        }
        let pod_dir = self.pod_dir(&sandbox.pod_uid);
        if !pod_dir.join("sandbox.json").exists() {
            bail!("pod {} has no sandbox", sandbox.pod_uid);
        }
        let dir = self.container_dir(&spec.id);
        std::fs::create_dir(&dir).with_context(|| {
            format!(
                "creating {} (does container {} exist already?)",
                dir.display(),
                spec.id
            )
        })?;
        let result = self.start_in(&dir, &pod_dir, sandbox, spec);
        if result.is_err() && !dir.join("exit.json").exists() {
            // Nothing ran: leave no trace.
            let _ = std::fs::remove_dir_all(&dir);
            self.index.lock().remove(&spec.id);
        }
        result.with_context(|| format!("starting container {}", spec.id))
    }

    fn start_in(
        &self,
        dir: &Path,
        pod_dir: &Path,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<()> {
        let shared_pid_ns = match &spec.share_pid_with {
            Some(other) => {
                let pid = self.pid(other).with_context(|| {
                    format!("container {other} (to share its PID namespace) is not running")
                })?;
                Some(PathBuf::from(format!("/proc/{pid}/ns/pid")))
            }
            None => None,
        };
        let cgroup_path = format!("{}/{}", sandbox.cgroup_parent, spec.id);
        let config = spec::build(
            spec,
            &spec::SpecContext {
                sandbox,
                pod_files: &pod_dir.join("etc"),
                cgroup_mode: self.cgroups.mode,
                cgroups_path: &cgroup_path,
                shared_pid_ns: shared_pid_ns.as_deref(),
            },
        );
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
        if let Some(parent) = spec.log_path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        // Remember the log for the pod's removal.
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(pod_dir.join("logs"))?;
            writeln!(f, "{}", spec.log_path.display())?;
        }
        let meta = Meta {
            id: spec.id.clone(),
            pod_uid: spec.pod_uid.clone(),
            name: spec.name.clone(),
            restart_count: spec.restart_count,
            log_path: spec.log_path.clone(),
            log_max_size: self.cfg.log_max_size,
            log_max_files: self.cfg.log_max_files,
            runc: self.cfg.runc.clone(),
            runc_root: self.runc_root.clone(),
            memory_cgroup: self.cgroups.memory_dir(&cgroup_path),
            cgroup_path: cgroup_path.clone(),
            tty: spec.tty,
            created_at: state::now_nanos(),
        };
        state::write_json(&dir.join("meta.json"), &meta)?;
        self.index.lock().insert(spec.id.clone(), meta);

        let t_shim = Instant::now();
        let shim_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("shim.log"))?;
        let mut child = Command::new(&self.cfg.shim)
            .args(&self.cfg.shim_args)
            .env(shim::SHIM_DIR_ENV, dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(shim_log))
            .spawn()
            .with_context(|| format!("spawning the shim {}", self.cfg.shim.display()))?;
        let stdout = child.stdout.take().context("shim stdout")?;
        let mut report = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Anywhere in the line: a test harness acting as the shim may have printed
            // an unterminated line before.
            if let Some(pos) = line.find(shim::REPORT_PREFIX) {
                report = Some(line[pos + shim::REPORT_PREFIX.len()..].to_string());
                break;
            }
        }
        let _ = child.wait();
        tracing::debug!(
            container = %spec.id,
            elapsed_ms = t_shim.elapsed().as_secs_f64() * 1000.0,
            "the shim reported (its shim.log says how long runc took)"
        );
        match report {
            Some(r) if r.starts_with("ok ") => Ok(()),
            Some(r) => bail!("{}", r.strip_prefix("error ").unwrap_or(&r)),
            None => {
                let log = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
                bail!("the shim exited without reporting: {}", log.trim())
            }
        }
    }

    fn started(&self, id: &str) -> Option<Started> {
        state::read_json(&self.container_dir(id).join("started.json"))
    }

    fn exit(&self, id: &str) -> Option<Exit> {
        state::read_json(&self.container_dir(id).join("exit.json"))
    }

    /// The container's status, read from its state directory.
    pub fn status(&self, id: &str) -> Option<ContainerStatus> {
        let meta = self.index.lock().get(id).cloned()?;
        Some(self.status_of(&meta))
    }

    fn status_of(&self, meta: &Meta) -> ContainerStatus {
        let started = self.started(&meta.id);
        let exit = self.exit(&meta.id).or_else(|| {
            // Both the shim and the container gone without an exit record (the shim
            // was killed): the end is unknown.
            let s = started.as_ref()?;
            (!state::alive(s.pid, s.pid_start) && !state::alive(s.shim_pid, s.shim_start)).then(
                || Exit {
                    exit_code: 255,
                    signal: None,
                    oom_killed: false,
                    finished_at: state::now_nanos(),
                    reason: "Unknown".to_string(),
                    message: Some("the container's supervisor disappeared".to_string()),
                },
            )
        });
        let mut st = ContainerStatus {
            id: meta.id.clone(),
            name: meta.name.clone(),
            restart_count: meta.restart_count,
            state: ContainerState::Created,
            pid: None,
            started_at: started.as_ref().map(|s| state::from_nanos(s.started_at)),
            finished_at: None,
            exit_code: None,
            signal: None,
            oom_killed: false,
            reason: None,
            message: None,
        };
        if let Some(e) = exit {
            st.state = ContainerState::Exited;
            st.finished_at = Some(state::from_nanos(e.finished_at));
            st.exit_code = Some(e.exit_code);
            st.signal = e.signal;
            st.oom_killed = e.oom_killed;
            st.reason = Some(e.reason);
            st.message = e.message;
        } else if let Some(s) = started {
            st.state = ContainerState::Running;
            st.pid = state::alive(s.pid, s.pid_start).then_some(s.pid);
        }
        st
    }

    /// The pod's containers (running and exited), sorted by name and restart count.
    pub fn list(&self, pod_uid: &str) -> Vec<ContainerStatus> {
        let metas: Vec<Meta> = self
            .index
            .lock()
            .values()
            .filter(|m| m.pod_uid == pod_uid)
            .cloned()
            .collect();
        let mut out: Vec<ContainerStatus> = metas.iter().map(|m| self.status_of(m)).collect();
        out.sort_by(|a, b| (&a.name, a.restart_count).cmp(&(&b.name, b.restart_count)));
        out
    }

    /// Host pid of the container's init while it runs.
    pub fn pid(&self, id: &str) -> Option<i32> {
        if self.container_dir(id).join("exit.json").exists() {
            return None;
        }
        let s = self.started(id)?;
        state::alive(s.pid, s.pid_start).then_some(s.pid)
    }

    /// Whether the container's end is recorded or certain.
    fn has_exited(&self, id: &str) -> bool {
        if self.container_dir(id).join("exit.json").exists() {
            return true;
        }
        match self.started(id) {
            Some(s) => !state::alive(s.pid, s.pid_start) && !state::alive(s.shim_pid, s.shim_start),
            None => true,
        }
    }

    /// Sends `signal` to the init and, for SIGKILL, to every process of its cgroup.
    fn signal(&self, id: &str, signal: i32) {
        if let Some(s) = self.started(id) {
            state::signal_checked(s.pid, s.pid_start, signal);
        }
        if signal == libc::SIGKILL
            && let Some(meta) = self.index.lock().get(id).cloned()
        {
            for d in self.cgroups.dirs(&meta.cgroup_path) {
                cgroups::kill_tree(&d, libc::SIGKILL);
            }
        }
    }

    /// SIGTERM, up to `grace` for the container to exit, then SIGKILL; waits for the exit
    /// to be recorded.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        if !self.index.lock().contains_key(id) {
            bail!("no container {id}");
        }
        if self.has_exited(id) {
            return Ok(());
        }
        self.signal(id, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.has_exited(id) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.signal(id, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.has_exited(id) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("container {id} did not exit after SIGKILL")
    }

    /// Removes a container: kills it if it still runs, `runc delete`, its state
    /// directory gone (its log stays until the pod goes). Idempotent.
    pub fn remove_container(&self, id: &str) -> Result<()> {
        if !valid_name(id) {
            bail!("invalid container id {id:?}");
        }
        let dir = self.container_dir(id);
        if !self.has_exited(id) {
            self.signal(id, libc::SIGKILL);
        }
        // Wait for the shim to record the exit and go away.
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some(s) = self.started(id) {
            while state::alive(s.shim_pid, s.shim_start) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if state::signal_checked(s.shim_pid, s.shim_start, libc::SIGKILL) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let out = Command::new(&self.cfg.runc)
            .arg("--root")
            .arg(&self.runc_root)
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .output();
        if let Ok(out) = &out
            && !out.status.success()
        {
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.contains("does not exist") && !err.contains("not exist") {
                tracing::warn!("runc delete {id}: {}", err.trim());
            }
        }
        let meta = self.index.lock().remove(id);
        if let Some(meta) = meta {
            // runc delete removes it; make sure after a crashed shim too.
            let _ = self.cgroups.remove_tree(&meta.cgroup_path);
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// Runs `cmd` in the container (see [`ExecSession`]).
    pub async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<ExecSession> {
        if self.pid(id).is_none() {
            bail!("container {id} is not running");
        }
        exec::exec(self.exec_ctx(id), cmd, tty, stdin).await
    }

    /// Runs `cmd` in the container and collects its output (stdout and stderr
    /// interleaved) and exit code; killed after `timeout`.
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>)> {
        if self.pid(id).is_none() {
            bail!("container {id} is not running");
        }
        exec::exec_sync(self.exec_ctx(id), cmd, timeout).await
    }

    fn exec_ctx(&self, id: &str) -> exec::ExecCtx {
        exec::ExecCtx {
            runc: self.cfg.runc.clone(),
            runc_root: self.runc_root.clone(),
            id: id.to_string(),
            dir: self.container_dir(id),
        }
    }
}
