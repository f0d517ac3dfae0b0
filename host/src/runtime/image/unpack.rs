//! Unpacking one layer (a tar, plain or gzip- or zstd-compressed) into a directory that
//! overlayfs can use as a `lowerdir`.
//!
//! - OCI whiteouts become overlayfs ones: `.wh.NAME` → a character device 0:0 named `NAME`;
//!   `.wh..wh..opq` → the xattr `trusted.overlay.opaque=y` on its directory;
//! - no entry may escape the layer directory: paths with `..` are rejected, parent
//!   directories are never followed through symlinks (an entry below a symlink is rejected),
//!   hard-link targets must be inside the layer; symlinks are created verbatim (they are
//!   resolved inside the container's root, never by us);
//! - ownership, modes (setuid/setgid/sticky included), modification times, device nodes,
//!   FIFOs and `SCHILY.xattr.*` extended attributes are preserved.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use tar::EntryType;

/// Unpacks a layer read from `reader` into `dir` (an existing, normally empty directory).
/// Compression (gzip, zstd or none) is detected from the first bytes.
pub fn unpack_layer(reader: impl Read, dir: &Path) -> Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let head = reader.fill_buf().context("reading the layer")?;
    if head.starts_with(&[0x1f, 0x8b]) {
        unpack_tar(flate2::read::MultiGzDecoder::new(reader), dir)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = zstd::stream::read::Decoder::with_buffer(reader)
            .context("starting zstd decompression")?;
        unpack_tar(decoder, dir)
    } else {
        unpack_tar(reader, dir)
    }
}

fn unpack_tar(reader: impl Read, dir: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    // Directory times are set last: creating entries inside changes them.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries().context("reading the layer tar")? {
        let mut entry = entry.context("reading the layer tar")?;
        let raw_path = entry.path().context("an entry's path")?.into_owned();
        let rel = relative(&raw_path)
            .with_context(|| format!("entry {:?}", raw_path.display().to_string()))?;
        let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
            continue; // the root itself ("./")
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = walk_dirs(dir, parent_rel, true)
            .with_context(|| format!("entry {:?}", rel.display().to_string()))?;
        let target = parent.join(&name);
        let name_bytes = name.as_bytes();

        // Whiteouts.
        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            if hidden == b".wh..opq" {
                set_xattr(&parent, "trusted.overlay.opaque", b"y")
                    .with_context(|| format!("marking {} opaque", parent.display()))?;
            } else if hidden.starts_with(b".wh.") || hidden.is_empty() {
                // AUFS metadata (`.wh..wh.plnk`, …): not part of the file system.
            } else {
                let whiteout = parent.join(std::ffi::OsStr::from_bytes(hidden));
                remove_any(&whiteout)?;
                mknod(&whiteout, libc::S_IFCHR, 0, 0)
                    .with_context(|| format!("creating the whiteout {}", whiteout.display()))?;
            }
            continue;
        }

        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let mtime = header.mtime().unwrap_or(0);
        let uid = u32::try_from(uid).map_err(|_| anyhow!("uid {uid} out of range"))?;
        let gid = u32::try_from(gid).map_err(|_| anyhow!("gid {gid} out of range"))?;
        let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(extensions) = entry.pax_extensions().context("reading pax headers")? {
            for ext in extensions {
                let ext = ext.context("reading pax headers")?;
                if let Ok(key) = ext.key()
                    && let Some(name) = key.strip_prefix("SCHILY.xattr.")
                {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }

        let what = || format!("unpacking {}", rel.display());
        match header.entry_type() {
            EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_any(&target)?;
                        fs::create_dir(&target).with_context(what)?;
                    }
                    Err(_) => fs::create_dir(&target).with_context(what)?,
                }
                std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).with_context(what)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .with_context(what)?;
                dir_times.push((target.clone(), mtime));
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .context("a symlink's target")?
                    .ok_or_else(|| anyhow!("symlink {} without a target", rel.display()))?
                    .into_owned();
                remove_any(&target)?;
                std::os::unix::fs::symlink(&link, &target).with_context(what)?;
                std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).with_context(what)?;
                set_mtime(&target, mtime);
            }
            EntryType::Link => {
                let link = entry
                    .link_name()
                    .context("a hard link's target")?
                    .ok_or_else(|| anyhow!("hard link {} without a target", rel.display()))?
                    .into_owned();
                let link_rel = relative(&link).with_context(|| {
                    format!("hard link {} to {}", rel.display(), link.display())
                })?;
                let link_parent = walk_dirs(dir, link_rel.parent().unwrap_or(Path::new("")), false)
                    .with_context(|| format!("hard link target {}", link.display()))?;
                let source = match link_rel.file_name() {
                    Some(n) => link_parent.join(n),
                    None => bail!("hard link {} to the layer's root", rel.display()),
                };
                fs::symlink_metadata(&source).with_context(|| {
                    format!("hard link {} to missing {}", rel.display(), link.display())
                })?;
                if source != target {
                    remove_any(&target)?;
                    fs::hard_link(&source, &target).with_context(what)?;
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let kind = match header.entry_type() {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                remove_any(&target)?;
                mknod(&target, kind | mode, major, minor).with_context(what)?;
                std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).with_context(what)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .with_context(what)?;
                set_mtime(&target, mtime);
            }
            EntryType::XGlobalHeader | EntryType::XHeader => continue,
            EntryType::GNULongName | EntryType::GNULongLink => continue,
            // Regular files, and (as POSIX says) any type we do not know.
            _ => {
                remove_any(&target)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .with_context(what)?;
                io::copy(&mut entry, &mut file).with_context(what)?;
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).with_context(what)?;
                // After chown, which clears setuid/setgid.
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .with_context(what)?;
                drop(file);
                set_mtime(&target, mtime);
            }
        }
        for (name, value) in xattrs {
            if let Err(e) = set_xattr(&target, &name, &value) {
                tracing::warn!(path = %target.display(), xattr = %name, "cannot set xattr: {e:#}");
            }
        }
    }
    for (path, mtime) in dir_times.into_iter().rev() {
        set_mtime(&path, mtime);
    }
    Ok(())
}

/// The path of an entry relative to the layer root: leading `/` and `.` dropped, `..`
/// rejected.
fn relative(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => bail!("path {:?} contains '..'", path.display().to_string()),
            Component::Normal(part) => out.push(part),
        }
    }
    Ok(out)
}

/// `root/rel`, checking that every component of `rel` is a real directory (never a symlink);
/// missing ones are created (mode 0755) when `create`.
fn walk_dirs(root: &Path, rel: &Path, create: bool) -> Result<PathBuf> {
    let mut current = root.to_path_buf();
    for component in rel.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                bail!(
                    "{} goes through the symlink {}",
                    rel.display(),
                    current.display()
                )
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("{} is not a directory", current.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&current)
                    .with_context(|| format!("creating {}", current.display()))?;
                fs::set_permissions(&current, fs::Permissions::from_mode(0o755))?;
            }
            Err(e) => return Err(e).with_context(|| format!("{}", current.display())),
        }
    }
    Ok(current)
}

/// Removes whatever `path` is (a directory recursively); absent is fine.
fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))
        }
        Ok(_) => fs::remove_file(path).with_context(|| format!("removing {}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}", path.display())),
    }
}

fn cstring(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| anyhow!("{} contains a NUL byte", path.display()))
}

fn mknod(path: &Path, mode: libc::mode_t, major: u32, minor: u32) -> Result<()> {
    let c = cstring(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("mknod");
    }
    Ok(())
}

/// `lsetxattr`: sets an extended attribute without following a symlink.
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    let c = cstring(path)?;
    let n = CString::new(name).map_err(|_| anyhow!("xattr name {name:?} contains NUL"))?;
    // SAFETY: valid C strings and a valid buffer of `value.len()` bytes.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("lsetxattr");
    }
    Ok(())
}

/// Sets access and modification times (without following a symlink); best effort.
fn set_mtime(path: &Path, mtime: u64) {
    let Ok(c) = cstring(path) else { return };
    // SAFETY: an all-zero timespec is valid.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    ts.tv_sec = libc::time_t::try_from(mtime).unwrap_or(0);
    let times = [ts, ts];
    // SAFETY: valid path and a two-element timespec array.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
}

/// Bytes a directory tree occupies on disk (symlinks not followed).
pub(super) fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for entry in entries.flatten() {
            total += disk_usage(&entry.path());
        }
    }
    total
}

/// Reads a file for tests and helpers: whether it is an overlay whiteout (char device 0:0).
#[cfg(test)]
pub(super) fn is_whiteout(path: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

/// Reads an xattr (tests).
#[cfg(test)]
pub(super) fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c = cstring(path).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of `buf.len()` bytes.
    let rc = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(rc).ok()?;
    buf.truncate(len);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;

    /// A tar builder with helpers for the entry kinds the tests need.
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Tar {
            Tar(tar::Builder::new(Vec::new()))
        }
        fn header(kind: EntryType, mode: u32, size: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h
        }
        fn dir(mut self, path: &str) -> Tar {
            let mut h = Tar::header(EntryType::Directory, 0o755, 0);
            self.0.append_data(&mut h, path, io::empty()).unwrap();
            self
        }
        fn file(mut self, path: &str, body: &[u8], mode: u32, uid: u64) -> Tar {
            let mut h = Tar::header(EntryType::Regular, mode, body.len() as u64);
            h.set_uid(uid);
            h.set_gid(uid + 1);
            self.0.append_data(&mut h, path, body).unwrap();
            self
        }
        fn symlink(mut self, path: &str, target: &str) -> Tar {
            let mut h = Tar::header(EntryType::Symlink, 0o777, 0);
            self.0.append_link(&mut h, path, target).unwrap();
            self
        }
        fn hardlink(mut self, path: &str, target: &str) -> Tar {
            let mut h = Tar::header(EntryType::Link, 0o644, 0);
            self.0.append_link(&mut h, path, target).unwrap();
            self
        }
        /// An entry whose name is written raw (the builder refuses `..`).
        fn raw(mut self, path: &[u8], kind: EntryType, link: Option<&[u8]>) -> Tar {
            let mut h = Tar::header(kind, 0o644, 0);
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..path.len()].copy_from_slice(path);
            if let Some(link) = link {
                gnu.linkname[..link.len()].copy_from_slice(link);
            }
            h.set_cksum();
            self.0.append(&h, io::empty()).unwrap();
            self
        }
        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<()>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack_layer(bytes, dir.path());
        (dir, result)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        Tar::new()
            .dir("etc/")
            .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644, 0)
            .file("bin/tool", b"#!/bin/sh\n", 0o4755, 1000)
            .symlink("bin/sh", "/bin/busybox")
            .hardlink("bin/tool2", "bin/tool")
            .bytes()
    }

    fn check_sample(root: &Path) {
        assert_eq!(
            fs::read(root.join("etc/passwd")).unwrap(),
            b"root:x:0:0::/root:/bin/sh\n"
        );
        let tool = fs::metadata(root.join("bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid kept");
        assert_eq!((tool.uid(), tool.gid()), (1000, 1001), "ownership kept");
        assert_eq!(tool.mtime(), 1_700_000_000);
        assert_eq!(
            fs::read_link(root.join("bin/sh")).unwrap(),
            PathBuf::from("/bin/busybox")
        );
        let tool2 = fs::metadata(root.join("bin/tool2")).unwrap();
        assert_eq!(tool2.ino(), tool.ino(), "a hard link");
        assert_eq!(
            fs::metadata(root.join("etc")).unwrap().mtime(),
            1_700_000_000
        );
    }

    #[test]
    fn plain_gzip_and_zstd() {
        let tar = sample();
        let (dir, r) = unpack(&tar);
        r.unwrap();
        check_sample(dir.path());

        let (dir, r) = unpack(&gzip(&tar));
        r.unwrap();
        check_sample(dir.path());

        let zst = zstd::encode_all(tar.as_slice(), 3).unwrap();
        let (dir, r) = unpack(&zst);
        r.unwrap();
        check_sample(dir.path());
    }

    #[test]
    fn whiteouts_and_opaque_dirs() {
        let tar = Tar::new()
            .dir("etc/")
            .file("etc/.wh.passwd", b"", 0o644, 0)
            .file("var/cache/.wh..wh..opq", b"", 0o644, 0)
            .file("var/cache/new", b"kept", 0o644, 0)
            .file(".wh.tmp", b"", 0o644, 0)
            .file("x/.wh..wh.plnk", b"", 0o644, 0)
            .bytes();
        let (dir, r) = unpack(&gzip(&tar));
        r.unwrap();
        let root = dir.path();
        assert!(is_whiteout(&root.join("etc/passwd")));
        assert!(is_whiteout(&root.join("tmp")));
        assert!(!root.join("etc/.wh.passwd").exists());
        assert_eq!(
            get_xattr(&root.join("var/cache"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(get_xattr(&root.join("var"), "trusted.overlay.opaque"), None);
        assert_eq!(fs::read(root.join("var/cache/new")).unwrap(), b"kept");
        assert!(!root.join("x/.wh..wh.plnk").exists());
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one() {
        let tar = Tar::new()
            .file("a", b"one", 0o644, 0)
            .file("a", b"two", 0o600, 0)
            .file("d/f", b"", 0o644, 0)
            .symlink("d", "/elsewhere")
            .bytes();
        let (dir, r) = unpack(&tar);
        r.unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"two");
        assert_eq!(
            fs::read_link(dir.path().join("d")).unwrap(),
            PathBuf::from("/elsewhere")
        );
    }

    #[test]
    fn path_traversal_is_rejected() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");

        // `..` in a name.
        let (_d, r) = unpack(
            &Tar::new()
                .raw(b"../../escape", EntryType::Regular, None)
                .bytes(),
        );
        assert!(format!("{:#}", r.unwrap_err()).contains(".."));

        // A file written through a symlink planted earlier in the layer.
        let tar = Tar::new()
            .symlink("evil", outside.path().to_str().unwrap())
            .file("evil/victim", b"pwned", 0o644, 0)
            .bytes();
        let (_d, r) = unpack(&tar);
        assert!(format!("{:#}", r.unwrap_err()).contains("symlink"));
        assert!(!victim.exists());

        // A hard link to a file outside the layer.
        fs::write(&victim, b"secret").unwrap();
        let tar = Tar::new()
            .raw(
                b"h",
                EntryType::Link,
                Some(b"../../../../../../../../etc/passwd"),
            )
            .bytes();
        let (_d, r) = unpack(&tar);
        assert!(r.is_err());
        let tar = Tar::new()
            .symlink("evil", outside.path().to_str().unwrap())
            .hardlink("h", "evil/victim")
            .bytes();
        let (d, r) = unpack(&tar);
        assert!(r.is_err());
        assert!(!d.path().join("h").exists());
        // An absolute hard-link target means inside the layer.
        let tar = Tar::new()
            .file("etc/passwd", b"inside", 0o644, 0)
            .raw(b"h", EntryType::Link, Some(b"/etc/passwd"))
            .bytes();
        let (d, r) = unpack(&tar);
        r.unwrap();
        assert_eq!(fs::read(d.path().join("h")).unwrap(), b"inside");
        assert_eq!(fs::read(&victim).unwrap(), b"secret");
    }

    #[test]
    fn garbage_is_an_error() {
        let (_d, r) = unpack(&gzip(&[b'x'; 2000]));
        assert!(r.is_err());
    }
}
