//! The OCI runtime spec (`config.json`) of a container, hardened by default.
//!
//! Defaults follow runc's `runc spec` and containerd's CRI plugin:
//!
//! - capabilities: Docker/containerd's default set only ([`DEFAULT_CAPS`]), ± the
//!   container's `add`/`drop` (`ALL` understood), in the bounding, effective and
//!   permitted sets; the inheritable and ambient sets empty;
//! - `noNewPrivileges` unless `allowPrivilegeEscalation`;
//! - the default seccomp profile of [`seccomp_profile`]: default action *allow*, and a
//!   deny-list (`SCMP_ACT_ERRNO`, `EPERM`) of the syscalls Docker's default profile only
//!   permits with extra capabilities (module loading, kexec, reboot, clock setting, mount
//!   and namespace manipulation, ptrace, BPF, perf, keyrings, userfaultfd, io_uring, …);
//!   a syscall comes off the list when the container has the capability that guards it;
//! - masked and read-only paths as `runc spec`; /proc, /dev, /dev/pts, /dev/shm,
//!   /dev/mqueue, /sys (read-only), /sys/fs/cgroup (read-only) mounted as there;
//! - /etc/hosts, /etc/hostname, /etc/resolv.conf bound from the pod's files;
//! - `RLIMIT_NOFILE` 1048576 (or the host's hard limit if lower); devices: deny all (runc adds its default allow-list);
//! - namespaces: pid (new, or the shared one), mount (new), network/ipc/uts (the
//!   sandbox's pins), cgroup (new on v2-only hosts);
//! - `privileged` lifts all of it: every capability, no seccomp, no masked paths, /sys
//!   writable, all devices allowed.

use std::path::Path;

use serde_json::{Value, json};

use super::cgroups::CgroupMode;
use super::{ContainerSpec, MountKind, Sandbox};

/// Docker/containerd's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel defines (what `privileged` and `add: [ALL]` give).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `NET_ADMIN` / `cap_net_admin` / `CAP_NET_ADMIN` → `CAP_NET_ADMIN`.
pub fn normalize_cap(name: &str) -> String {
    let up = name.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capability set of a container: defaults (or all when privileged) ± add/drop.
pub fn capabilities(spec: &ContainerSpec) -> Vec<String> {
    if spec.privileged {
        return ALL_CAPS.iter().map(|c| c.to_string()).collect();
    }
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    let drops: Vec<String> = spec.cap_drop.iter().map(|c| normalize_cap(c)).collect();
    if drops.iter().any(|c| c == "CAP_ALL") {
        caps.clear();
    } else {
        caps.retain(|c| !drops.contains(c));
    }
    for add in &spec.cap_add {
        let add = normalize_cap(add);
        if add == "CAP_ALL" {
            for c in ALL_CAPS {
                if !caps.iter().any(|x| x == c) {
                    caps.push(c.to_string());
                }
            }
        } else if !caps.contains(&add) {
            caps.push(add);
        }
    }
    caps
}

/// Syscalls denied by default, each with the capability that lifts the denial.
const DENIED_SYSCALLS: &[(&str, &str)] = &[
    ("acct", "CAP_SYS_PACCT"),
    ("add_key", ""),
    ("bpf", "CAP_SYS_ADMIN"),
    ("clock_adjtime", "CAP_SYS_TIME"),
    ("clock_adjtime64", "CAP_SYS_TIME"),
    ("clock_settime", "CAP_SYS_TIME"),
    ("clock_settime64", "CAP_SYS_TIME"),
    ("create_module", "CAP_SYS_MODULE"),
    ("delete_module", "CAP_SYS_MODULE"),
    ("finit_module", "CAP_SYS_MODULE"),
    ("fsconfig", "CAP_SYS_ADMIN"),
    ("fsmount", "CAP_SYS_ADMIN"),
    ("fsopen", "CAP_SYS_ADMIN"),
    ("fspick", "CAP_SYS_ADMIN"),
    ("get_kernel_syms", "CAP_SYS_MODULE"),
    ("get_mempolicy", "CAP_SYS_NICE"),
    ("init_module", "CAP_SYS_MODULE"),
    ("io_uring_enter", ""),
    ("io_uring_register", ""),
    ("io_uring_setup", ""),
    ("ioperm", "CAP_SYS_RAWIO"),
    ("iopl", "CAP_SYS_RAWIO"),
    ("kcmp", "CAP_SYS_PTRACE"),
    ("kexec_file_load", "CAP_SYS_BOOT"),
    ("kexec_load", "CAP_SYS_BOOT"),
    ("keyctl", ""),
    ("lookup_dcookie", "CAP_SYS_ADMIN"),
    ("mbind", "CAP_SYS_NICE"),
    ("mount", "CAP_SYS_ADMIN"),
    ("mount_setattr", "CAP_SYS_ADMIN"),
    ("move_mount", "CAP_SYS_ADMIN"),
    ("move_pages", "CAP_SYS_NICE"),
    ("name_to_handle_at", "CAP_DAC_READ_SEARCH"),
    ("nfsservctl", "CAP_SYS_ADMIN"),
    ("open_by_handle_at", "CAP_DAC_READ_SEARCH"),
    ("open_tree", "CAP_SYS_ADMIN"),
    ("perf_event_open", "CAP_PERFMON"),
    ("pivot_root", "CAP_SYS_ADMIN"),
    ("process_vm_readv", "CAP_SYS_PTRACE"),
    ("process_vm_writev", "CAP_SYS_PTRACE"),
    ("ptrace", "CAP_SYS_PTRACE"),
    ("query_module", "CAP_SYS_MODULE"),
    ("quotactl", "CAP_SYS_ADMIN"),
    ("reboot", "CAP_SYS_BOOT"),
    ("request_key", ""),
    ("set_mempolicy", "CAP_SYS_NICE"),
    ("setns", "CAP_SYS_ADMIN"),
    ("settimeofday", "CAP_SYS_TIME"),
    ("stime", "CAP_SYS_TIME"),
    ("swapoff", "CAP_SYS_ADMIN"),
    ("swapon", "CAP_SYS_ADMIN"),
    ("syslog", "CAP_SYSLOG"),
    ("sysfs", ""),
    ("_sysctl", ""),
    ("umount", "CAP_SYS_ADMIN"),
    ("umount2", "CAP_SYS_ADMIN"),
    ("unshare", "CAP_SYS_ADMIN"),
    ("uselib", ""),
    ("userfaultfd", "CAP_SYS_PTRACE"),
    ("ustat", ""),
    ("vm86", "CAP_SYS_ADMIN"),
    ("vm86old", "CAP_SYS_ADMIN"),
];

/// The default seccomp profile for a container with capabilities `caps` (see the module
/// documentation): allow by default, `EPERM` for the denied syscalls whose guarding
/// capability the container lacks.
pub fn seccomp_profile(caps: &[String]) -> Value {
    let denied: Vec<&str> = DENIED_SYSCALLS
        .iter()
        .filter(|(_, cap)| cap.is_empty() || !caps.iter().any(|c| c == cap))
        .map(|(name, _)| *name)
        .collect();
    let architectures: &[&str] = if cfg!(target_arch = "x86_64") {
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        &[]
    };
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures,
        "syscalls": [{ "names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM }],
    })
}

/// Paths masked in /proc and /sys (runc's `spec` defaults).
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only (runc's `spec` defaults).
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `RLIMIT_NOFILE` of containers: 1048576, or our own hard limit when lower (raising it
/// would need `CAP_SYS_RESOURCE`, which we may lack).
fn nofile_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit};
    let hard = getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(1_048_576);
    hard.min(1_048_576)
}

/// Inputs of [`build`] besides the container spec.
pub struct SpecContext<'a> {
    /// The pod's sandbox.
    pub sandbox: &'a Sandbox,
    /// Directory holding the pod's `hosts`, `hostname` and `resolv.conf`.
    pub pod_files: &'a Path,
    /// Host cgroup layout.
    pub cgroup_mode: CgroupMode,
    /// `cgroupsPath` (absolute, cgroupfs driver).
    pub cgroups_path: &'a str,
    /// `/proc/<pid>/ns/pid` of the container whose PID namespace to join, if any.
    pub shared_pid_ns: Option<&'a Path>,
}

/// The `config.json` of a container.
pub fn build(spec: &ContainerSpec, ctx: &SpecContext<'_>) -> Value {
    let caps = capabilities(spec);
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        );
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) && !spec.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", spec.hostname));
    }
    if spec.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_string());
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    let nofile = nofile_limit();
    let mut process = json!({
        "terminal": spec.tty,
        "user": { "uid": spec.uid, "gid": spec.gid, "additionalGids": spec.additional_gids },
        "args": spec.args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
            "inheritable": [], "ambient": [],
        },
        "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile }],
        "noNewPrivileges": !spec.allow_privilege_escalation && !spec.privileged,
    });
    if spec.additional_gids.is_empty()
        && let Some(user) = process["user"].as_object_mut()
    {
        user.remove("additionalGids");
    }

    let sys_opts: &[&str] = if spec.privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let user_dests: Vec<&str> = spec.mounts.iter().map(|m| m.destination.as_str()).collect();
    for (dest, file) in [
        ("/etc/hosts", "hosts"),
        ("/etc/hostname", "hostname"),
        ("/etc/resolv.conf", "resolv.conf"),
    ] {
        if !user_dests.contains(&dest) {
            mounts.push(json!({"destination": dest, "type": "bind",
                "source": ctx.pod_files.join(file), "options": ["rbind", "rprivate", "ro"]}));
        }
    }
    for m in &spec.mounts {
        match &m.kind {
            MountKind::Bind => {
                let mut options = vec!["rbind", "rprivate"];
                if m.read_only {
                    options.push("ro");
                }
                mounts.push(json!({"destination": m.destination, "type": "bind",
                    "source": m.source, "options": options}));
            }
            MountKind::Tmpfs { size } => {
                let mut options = vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    "mode=1777".to_string(),
                ];
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                if m.read_only {
                    options.push("ro".to_string());
                }
                mounts.push(json!({"destination": m.destination, "type": "tmpfs",
                    "source": "tmpfs", "options": options}));
            }
        }
    }

    let sb = ctx.sandbox;
    let mut namespaces = vec![
        match ctx.shared_pid_ns {
            Some(p) => json!({"type": "pid", "path": p}),
            None => json!({"type": "pid"}),
        },
        json!({"type": "mount"}),
        json!({"type": "network", "path": sb.netns}),
        json!({"type": "ipc", "path": sb.ipcns}),
        json!({"type": "uts", "path": sb.utsns}),
    ];
    if ctx.cgroup_mode == CgroupMode::V2 {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut resources = json!({});
    let devices = if spec.privileged {
        json!([{"allow": true, "access": "rwm"}])
    } else {
        json!([{"allow": false, "access": "rwm"}])
    };
    resources["devices"] = devices;
    if let Some(limit) = spec.memory_limit {
        // swap == limit: no swap on top of the limit (as the kubelet does).
        resources["memory"] = json!({"limit": limit, "swap": limit});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = spec.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(q) = spec.cpu_quota {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = spec.cpu_period {
        cpu.insert("period".into(), json!(p));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = spec.pids_limit {
        resources["pids"] = json!({"limit": p});
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": ctx.cgroups_path,
        "resources": resources,
    });
    if !spec.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        linux["seccomp"] = seccomp_profile(&caps);
    }

    json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": { "path": spec.rootfs, "readonly": spec.read_only_rootfs },
        "mounts": mounts,
        "linux": linux,
    })
}
