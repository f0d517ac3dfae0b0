//! What the tests of real nodes share: a `tug server --node-agent` guard that leaves
//! nothing behind, and probes of the host (processes, cgroups, mounts of a pod).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::Cluster;

/// A `tug server --node-agent` that, when dropped, is stopped and then `tug node reset`
/// for its data dir removes every container, sandbox, mount and cgroup it left.
pub struct Node {
    cluster: Option<Cluster>,
    data_dir: PathBuf,
}

impl Node {
    /// A node without a pod network (pods get only `lo`).
    pub fn start() -> Node {
        Node::start_with(&["--node-agent", "--pod-network", "none"])
    }

    /// A server with these arguments (they should include `--node-agent`).
    pub fn start_with(args: &[&str]) -> Node {
        let cluster = Cluster::start_with(args);
        let data_dir = cluster.data_dir().to_path_buf();
        Node {
            cluster: Some(cluster),
            data_dir,
        }
    }

    pub fn c(&self) -> &Cluster {
        self.cluster.as_ref().expect("the cluster runs")
    }

    pub fn c_mut(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("the cluster runs")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Stop the server first (its agent must not restart what the reset stops), then
        // remove what its containers left; the cluster (which reports failed checks) last.
        if let Some(mut c) = self.cluster.take() {
            c.kill();
            reset(&self.data_dir);
            drop(c);
        }
    }
}

/// `tug node reset --data-dir DIR` (errors are printed: this runs in guards).
pub fn reset(data_dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_tug"))
        .args(["node", "reset", "--data-dir"])
        .arg(data_dir)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "tug node reset failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("tug node reset: {e}"),
    }
}

/// `kubectl get ARGS -o json`, parsed.
pub fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = c.kubectl_ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{out}"))
}

/// The host pids whose cgroup is one of pod `uid`'s, sorted.
pub fn pod_pids(uid: &str) -> Vec<i32> {
    let needle = format!("pod{uid}");
    let mut pids = vec![];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains(&needle))
            {
                pids.push(pid);
            }
        }
    }
    pids.sort();
    pids
}

/// Cgroup directories of pod `uid` in any hierarchy (v1 controllers or the unified one).
pub fn pod_cgroups(uid: &str) -> Vec<String> {
    let needle = format!("pod{uid}");
    let mut found = vec![];
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if p.to_string_lossy().contains(&needle) {
                    found.push(p.display().to_string());
                } else if p.components().count() < 8 {
                    stack.push(p);
                }
            }
        }
    }
    found
}

/// The lines of this process's mountinfo that mention `s`.
pub fn mounts_mentioning(s: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(s))
        .map(str::to_string)
        .collect()
}
