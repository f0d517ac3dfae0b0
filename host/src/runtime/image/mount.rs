//! overlayfs root filesystems for containers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags};

use super::Image;

/// The kernel takes at most a page of mount options.
const MAX_OPTIONS: usize = 4000;

/// Whether `path` is a mount point (per `/proc/self/mountinfo`).
pub(super) fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = escape(path);
    info.lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

/// `/proc/self/mountinfo` escapes space, tab, newline and backslash as octal.
fn escape(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn mount_rootfs(store_root: &Path, image: &Image, dir: &Path) -> Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    let upper = dir.join("upper");
    let work = dir.join("work");
    for d in [&rootfs, &upper, &work] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if is_mounted(&rootfs) {
        return Ok(rootfs);
    }
    // overlayfs wants at least one lower layer: an image without layers gets an empty one.
    let mut lowers: Vec<PathBuf> = image.layers.iter().rev().cloned().collect();
    if lowers.is_empty() {
        let empty = store_root.join("empty-layer");
        std::fs::create_dir_all(&empty).with_context(|| format!("creating {}", empty.display()))?;
        lowers.push(empty);
    }
    for layer in &lowers {
        if !layer.is_dir() {
            bail!(
                "layer {} of {} is missing (removed by garbage collection?)",
                layer.display(),
                image.reference
            );
        }
        let s = layer.to_string_lossy();
        if s.contains([',', ':']) {
            bail!("layer path {s:?} cannot be given to overlayfs");
        }
    }
    let lowerdir = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let options = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if options.len() > MAX_OPTIONS {
        bail!(
            "{} has too many layers ({}) for one overlayfs mount",
            image.reference,
            lowers.len()
        );
    }
    nix::mount::mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .with_context(|| {
        format!(
            "mounting the overlay root filesystem at {}",
            rootfs.display()
        )
    })?;
    Ok(rootfs)
}

pub(super) fn unmount_rootfs(dir: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    // Unmount until nothing is mounted there (a mount may have been stacked twice).
    for _ in 0..16 {
        if !is_mounted(&rootfs) {
            break;
        }
        match nix::mount::umount2(&rootfs, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::errno::Errno::EBUSY) => {
                // Still used (a process holds it): detach it; it goes once released.
                nix::mount::umount2(&rootfs, MntFlags::MNT_DETACH)
                    .with_context(|| format!("detaching {}", rootfs.display()))?;
            }
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => break,
            Err(e) => {
                return Err(e).with_context(|| format!("unmounting {}", rootfs.display()));
            }
        }
    }
    if is_mounted(&rootfs) {
        bail!("{} is still mounted", rootfs.display());
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escaping() {
        assert_eq!(escape(Path::new("/a b\\c")), "/a\\040b\\134c");
        assert!(is_mounted(Path::new("/proc")));
        assert!(!is_mounted(Path::new("/proc/self")));
    }
}
