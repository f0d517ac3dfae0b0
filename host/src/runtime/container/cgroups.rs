//! The host's cgroup layout (v1, hybrid or v2) and the runtime's own cgroup chores:
//! finding a container's memory cgroup, reading OOM kills, killing what is left in a
//! cgroup tree and removing it in every hierarchy.
//!
//! `runc` (cgroupfs driver) creates and configures the containers' cgroups; this module
//! only reads them and removes the pods' trees afterwards, looking at every mounted
//! hierarchy (each v1 controller and the unified one), so it works on all three layouts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupMode {
    /// Only v1 hierarchies.
    V1,
    /// v1 controllers plus a unified (v2) hierarchy without controllers (e.g. systemd's
    /// "hybrid" mode, `/sys/fs/cgroup/unified`).
    Hybrid,
    /// The unified hierarchy only (mounted at `/sys/fs/cgroup`).
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Where it is mounted.
    pub mount: PathBuf,
    /// Whether it is the unified (v2) hierarchy.
    pub v2: bool,
    /// v1 controllers attached to it (`memory`, `cpu`, `name=systemd`, …); empty for v2.
    pub controllers: Vec<String>,
}

/// The cgroup hierarchies of this host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroups {
    /// v1, hybrid or v2.
    pub mode: CgroupMode,
    /// Every mounted hierarchy.
    pub hierarchies: Vec<Hierarchy>,
}

impl Cgroups {
    /// Reads `/proc/self/mountinfo` to find every cgroup/cgroup2 mount.
    pub fn detect() -> Result<Cgroups> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .context("reading /proc/self/mountinfo")?;
        Ok(Self::parse(&text))
    }

    /// Parses mountinfo text (separate for tests).
    pub fn parse(mountinfo: &str) -> Cgroups {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let rfields: Vec<&str> = right.split(' ').collect();
            let (Some(mount), Some(fstype)) = (fields.get(4), rfields.first()) else {
                continue;
            };
            let mount = PathBuf::from(unescape_mount(mount));
            if hierarchies.iter().any(|h| h.mount == mount) {
                continue;
            }
            match *fstype {
                "cgroup2" => hierarchies.push(Hierarchy {
                    mount,
                    v2: true,
                    controllers: Vec::new(),
                }),
                "cgroup" => {
                    let opts = rfields.get(2).copied().unwrap_or("");
                    let controllers = opts
                        .split(',')
                        .filter(|o| {
                            !matches!(
                                *o,
                                "rw" | "ro"
                                    | "relatime"
                                    | "noatime"
                                    | "nosuid"
                                    | "nodev"
                                    | "noexec"
                                    | "clone_children"
                                    | "xattr"
                            ) && !o.starts_with("release_agent=")
                        })
                        .map(str::to_string)
                        .collect();
                    hierarchies.push(Hierarchy {
                        mount,
                        v2: false,
                        controllers,
                    });
                }
                _ => {}
            }
        }
        let has_v1 = hierarchies.iter().any(|h| !h.v2);
        let has_v2 = hierarchies.iter().any(|h| h.v2);
        let mode = match (has_v1, has_v2) {
            (true, true) => CgroupMode::Hybrid,
            (false, true) => CgroupMode::V2,
            _ => CgroupMode::V1,
        };
        Cgroups { mode, hierarchies }
    }

    /// The directory of cgroup `rel` (e.g. `/tugboat/pod…/id`) in the hierarchy that
    /// holds the memory controller, and whether that hierarchy is v2.
    pub fn memory_dir(&self, rel: &str) -> Option<(PathBuf, bool)> {
        let rel = rel.trim_start_matches('/');
        if let Some(h) = self
            .hierarchies
            .iter()
            .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "memory"))
        {
            return Some((h.mount.join(rel), false));
        }
        if self.mode == CgroupMode::V2 {
            return self
                .hierarchies
                .iter()
                .find(|h| h.v2)
                .map(|h| (h.mount.join(rel), true));
        }
        None
    }

    /// `rel` in every hierarchy.
    pub fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        let rel = rel.trim_start_matches('/');
        self.hierarchies.iter().map(|h| h.mount.join(rel)).collect()
    }

    /// Kills every process left in cgroup `rel` (any hierarchy) and removes the cgroup
    /// tree in every hierarchy. Idempotent.
    pub fn remove_tree(&self, rel: &str) -> Result<()> {
        let mut errors = Vec::new();
        for dir in self.dirs(rel) {
            if let Err(e) = remove_dir_tree(&dir) {
                errors.push(format!("{}: {e:#}", dir.display()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("removing cgroups: {}", errors.join("; "))
        }
    }
}

/// Octal escapes (`\040` for a space) in mountinfo paths.
pub(crate) fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Pids listed in `dir/cgroup.procs` (empty if the cgroup does not exist).
pub fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Sends `signal` to every process of cgroup `dir` and its descendants.
pub fn kill_tree(dir: &Path, signal: i32) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                kill_tree(&e.path(), signal);
            }
        }
    }
    for pid in procs(dir) {
        // SAFETY: plain kill(2) on a pid read from the cgroup.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Kills the processes of a cgroup tree, then removes its directories deepest first,
/// retrying while the kernel is still tearing the processes down.
fn remove_dir_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        kill_tree(dir, libc::SIGKILL);
        match rmdir_depth_first(dir) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("cgroup {} not removable yet: {e}", dir.display());
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).with_context(|| format!("rmdir {}", dir.display())),
        }
    }
}

fn rmdir_depth_first(dir: &Path) -> std::io::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rmdir_depth_first(&e.path())?;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Whether the kernel OOM-killed a process of the memory cgroup `dir` (v1:
/// `memory.oom_control`'s `oom_kill`; v2: `memory.events`' `oom_kill`).
pub fn oom_killed(dir: &Path, v2: bool) -> bool {
    let file = if v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    std::fs::read_to_string(dir.join(file))
        .map(|t| {
            t.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
        .unwrap_or(false)
}
