//! Pod sandboxes: network, IPC and UTS namespaces pinned by bind mounts, and the pod's
//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
//!
//! The namespaces are created on a dedicated short-lived `std::thread` (never a tokio
//! worker): it `unshare`s them (which only affects the calling thread), sets the
//! hostname, brings the loopback interface up and bind-mounts
//! `/proc/thread-self/ns/{net,ipc,uts}` onto files of the pod directory; the namespaces
//! then live as long as those mounts, whatever happens to the thread or to `tug`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;

/// The namespace pins of a pod directory, in order net, ipc, uts.
pub fn pins(pod_dir: &Path) -> [PathBuf; 3] {
    let ns = pod_dir.join("ns");
    [ns.join("net"), ns.join("ipc"), ns.join("uts")]
}

/// Whether `pin` is a mounted namespace file (its device differs from its directory's).
pub fn is_pinned(pin: &Path) -> bool {
    let (Ok(f), Some(Ok(d))) = (std::fs::metadata(pin), pin.parent().map(std::fs::metadata)) else {
        return false;
    };
    f.dev() != d.dev()
}

/// Creates the namespaces and pins them at `pins` (files created here).
pub fn create_namespaces(pins: &[PathBuf; 3], hostname: &str) -> Result<()> {
    for p in pins {
        std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
    }
    let pins = pins.clone();
    let hostname = hostname.to_string();
    std::thread::Builder::new()
        .name("tug-sandbox".into())
        .spawn(move || -> Result<()> {
            nix::sched::unshare(
                CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS,
            )
            .context("unshare(net, ipc, uts)")?;
            nix::unistd::sethostname(&hostname).context("sethostname")?;
            loopback_up().context("bringing lo up")?;
            for (pin, ns) in pins.iter().zip(["net", "ipc", "uts"]) {
                let src = format!("/proc/thread-self/ns/{ns}");
                mount(
                    Some(src.as_str()),
                    pin,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .with_context(|| format!("bind-mounting {src} on {}", pin.display()))?;
            }
            Ok(())
        })
        .context("spawning the sandbox thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the sandbox thread panicked"))?
}

/// Unmounts the pins (idempotent) and removes their files.
pub fn remove_namespaces(pins: &[PathBuf; 3]) -> Result<()> {
    for pin in pins {
        // Several stacked mounts are possible after a crash mid-way: unmount them all.
        for _ in 0..8 {
            if !is_pinned(pin) {
                break;
            }
            umount2(pin, MntFlags::MNT_DETACH)
                .with_context(|| format!("unmounting {}", pin.display()))?;
        }
        match std::fs::remove_file(pin) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", pin.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `ip link set lo up` in the calling thread's network namespace.
fn loopback_up() -> Result<()> {
    // SAFETY: socket/ioctl with a zeroed, properly filled ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let _guard = OwnedFd::from_raw_fd(fd);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// A pod's `/etc/hosts` as the kubelet writes it: localhost and the IPv6 names, then
/// `entry` (the pod's own address and names) if any.
pub fn hosts_file(entry: Option<&str>) -> String {
    let mut hosts = String::from(
        "# Kubernetes-managed hosts file (tugboat).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if let Some(e) = entry {
        hosts.push_str(e);
        hosts.push('\n');
    }
    hosts
}

/// Writes the pod's `hosts`, `hostname` and `resolv.conf` into `dir`.
pub fn write_etc_files(dir: &Path, hostname: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("hosts"),
        hosts_file(Some(&format!("127.0.1.1\t{hostname}"))),
    )?;
    std::fs::write(dir.join("hostname"), format!("{hostname}\n"))?;
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(dir.join("resolv.conf"), resolv)?;
    Ok(())
}
