//! Netlink connections and child processes in a given network namespace.
//!
//! A netlink socket belongs to the netns of the thread that created it, whatever thread
//! uses it later. So a connection into another netns is opened on a dedicated thread that
//! has joined that netns (`setns(CLONE_NEWNET)`) and runs the connection there; the
//! [`rtnetlink::Handle`] it returns is used from any tokio task. The thread ends when the
//! last handle is dropped. Child processes (`nft`, CNI plugins) join the netns between
//! `fork` and `exec`.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

/// Whether `path` is a live network namespace (a bind-mounted nsfs file). A sandbox's
/// netns path that was unmounted (or never mounted) is not, even if the file is there.
pub(crate) fn is_netns(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Opens a netlink route connection in the netns at `netns` (`None`: the netns of the
/// process, i.e. of the tokio runtime's threads).
pub(crate) async fn connect(netns: Option<&Path>) -> Result<rtnetlink::Handle> {
    let Some(path) = netns else {
        let (conn, handle, _) =
            rtnetlink::new_connection().context("opening a netlink route socket")?;
        tokio::spawn(conn);
        return Ok(handle);
    };
    let file = File::open(path).with_context(|| format!("opening netns {}", path.display()))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let shown: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("tug-netlink".into())
        .spawn(move || {
            let prepared = (|| -> Result<tokio::runtime::Runtime> {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("joining netns {}", shown.display()))?;
                drop(file);
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the netlink thread's runtime")
            })();
            let rt = match prepared {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async {
                match rtnetlink::new_connection() {
                    Err(e) => {
                        let _ = tx.send(Err(
                            anyhow::Error::from(e).context("opening a netlink route socket")
                        ));
                    }
                    Ok((conn, handle, _)) => {
                        if tx.send(Ok(handle)).is_ok() {
                            // Ends when every handle is dropped.
                            conn.await;
                        }
                    }
                }
            });
        })
        .context("starting a netlink thread")?;
    match rx.await {
        Ok(r) => r,
        Err(_) => Err(anyhow!(
            "could not open a netlink socket in netns {}",
            path.display()
        )),
    }
}

/// Makes `cmd` run in the netns at `netns` (`None`: leaves it as is). The returned fd must
/// outlive the spawn.
pub(crate) fn command_in(
    cmd: &mut tokio::process::Command,
    netns: Option<&Path>,
) -> Result<Option<OwnedFd>> {
    let Some(path) = netns else {
        return Ok(None);
    };
    let file = File::open(path).with_context(|| format!("opening netns {}", path.display()))?;
    let fd: OwnedFd = file.into();
    let raw = fd.as_raw_fd();
    // SAFETY: between fork and exec only the async-signal-safe `setns` syscall runs.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(Some(fd))
}

/// Runs `f` on a thread of its own that joined the netns at `netns` (`None`: on a thread
/// of the process's netns), e.g. to write a per-netns sysctl.
pub(crate) async fn run_in<T: Send + 'static>(
    netns: Option<&Path>,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let file = match netns {
        Some(p) => Some(File::open(p).with_context(|| format!("opening netns {}", p.display()))?),
        None => None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("tug-netns".into())
        .spawn(move || {
            let r = (|| {
                if let Some(file) = file {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .context("joining the netns")?;
                }
                f()
            })();
            let _ = tx.send(r);
        })
        .context("starting a netns thread")?;
    rx.await
        .map_err(|_| anyhow!("the netns thread ended without an answer"))?
}
