//! The on-disk state of a container, shared by the runtime and its shim.
//!
//! Every container has a directory `<state_dir>/containers/<id>/` that is also its OCI
//! bundle (`config.json`; the root filesystem path in it is absolute). In it:
//!
//! - `meta.json` ([`Meta`]), written by the runtime before the shim starts: what the shim
//!   needs (runc, log path, rotation, memory cgroup) and what `list` reports (pod, name);
//! - `started.json` ([`Started`]), written by the shim once `runc run` succeeded: the
//!   shim's and the container's pids (with their start times, so a recycled pid is never
//!   mistaken for them) and the start time;
//! - `exit.json` ([`Exit`]), written by the shim once the container's init exited and
//!   `runc delete` ran (or when the container could not start);
//! - `shim.log` (the shim's own stderr), `runc.log` (runc's JSON log), `init.pid`.
//!
//! All files are written atomically (temporary file + rename), so readers never see a
//! half-written one; nothing in them depends on `tug` running.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Static facts about a container (`meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// Container id (also the runc id).
    pub id: String,
    /// Pod it belongs to.
    pub pod_uid: String,
    /// Container name in the pod.
    pub name: String,
    /// Restart count it was started with.
    pub restart_count: u32,
    /// CRI log file.
    pub log_path: PathBuf,
    /// Rotate the log when it grows past this many bytes (0: never).
    pub log_max_size: u64,
    /// Rotated files kept besides the live one (`<log>.1` … `<log>.N`).
    pub log_max_files: u32,
    /// The runc binary.
    pub runc: PathBuf,
    /// runc's `--root`.
    pub runc_root: PathBuf,
    /// The container's memory cgroup directory and whether it is v2 (for OOM detection).
    pub memory_cgroup: Option<(PathBuf, bool)>,
    /// The container's cgroup path (relative to each hierarchy's root).
    pub cgroup_path: String,
    /// Whether the container has a terminal (its output is one stream, "stdout").
    pub tty: bool,
    /// When the runtime asked for it (unix nanoseconds).
    pub created_at: u64,
}

/// What the shim records once the container runs (`started.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Started {
    /// The shim's pid and start time (clock ticks since boot, `/proc/<pid>/stat` field 22).
    pub shim_pid: i32,
    /// See `shim_pid`.
    pub shim_start: u64,
    /// The container's init process (host pid) and its start time.
    pub pid: i32,
    /// See `pid`.
    pub pid_start: u64,
    /// Unix nanoseconds.
    pub started_at: u64,
}

/// How the container ended (`exit.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exit {
    /// Exit code (128 + signal when killed by a signal; 128 when it could not start).
    pub exit_code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Whether the kernel OOM killer killed a process in its cgroup.
    pub oom_killed: bool,
    /// Unix nanoseconds.
    pub finished_at: u64,
    /// "Completed", "Error", "OOMKilled", "StartError" or "Unknown".
    pub reason: String,
    /// Details (runc's error for a start failure).
    pub message: Option<String>,
}

/// Writes `value` as JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let data = serde_json::to_vec(value)?;
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Reads a JSON file; `None` when absent or unreadable.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let data = std::fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Now as unix nanoseconds.
pub fn now_nanos() -> u64 {
    to_nanos(SystemTime::now())
}

/// A `SystemTime` as unix nanoseconds (0 before the epoch).
pub fn to_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Unix nanoseconds as a `SystemTime`.
pub fn from_nanos(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n)
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), if it exists and
/// is not a zombie.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state).
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether process `pid` still is the one that started at `start`.
pub fn alive(pid: i32, start: u64) -> bool {
    proc_start_time(pid) == Some(start)
}

/// Sends `signal` to `pid` if it still is the process that started at `start`.
/// Returns whether it was signalled.
pub fn signal_checked(pid: i32, start: u64, signal: i32) -> bool {
    if !alive(pid, start) {
        return false;
    }
    // SAFETY: kill(2) on a pid whose identity was just checked.
    unsafe { libc::kill(pid, signal) == 0 }
}
