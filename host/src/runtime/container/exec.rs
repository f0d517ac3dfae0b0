//! `runc exec` in a running container: collected output (probes, hooks) or an
//! interactive session (`kubectl exec`).
//!
//! The exec'd process inherits the container's user, environment, working directory,
//! capabilities, `no_new_privs` and seccomp profile (runc takes them from the bundle).
//! With a terminal, runc runs with a pseudoterminal of ours as its controlling terminal:
//! it puts it in raw mode, relays between it and the container-side terminal it creates,
//! and propagates our window size (we set it with `TIOCSWINSZ`; the kernel's SIGWINCH
//! makes runc copy it inside).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::shim::runc_error;

/// What an exec needs to know about its container.
pub(crate) struct ExecCtx {
    pub runc: PathBuf,
    pub runc_root: PathBuf,
    pub id: String,
    pub dir: PathBuf,
}

/// Per-exec files (`--pid-file`, `--log`) in the container directory, removed on drop.
struct ExecFiles {
    pid_file: PathBuf,
    log_file: PathBuf,
}

impl ExecFiles {
    fn new(dir: &std::path::Path) -> ExecFiles {
        static N: AtomicU64 = AtomicU64::new(0);
        let tag = format!(
            "exec-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        ExecFiles {
            pid_file: dir.join(format!("{tag}.pid")),
            log_file: dir.join(format!("{tag}.log")),
        }
    }

    /// The exec'd process (host pid), once runc wrote it.
    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn kill(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) of the process runc reported for this exec.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Drop for ExecFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pid_file);
        let _ = std::fs::remove_file(&self.log_file);
    }
}

fn runc_exec(ctx: &ExecCtx, files: &ExecFiles, tty: bool) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(&ctx.runc);
    c.arg("--root")
        .arg(&ctx.runc_root)
        .arg("--log")
        .arg(&files.log_file)
        .arg("--log-format")
        .arg("json")
        .arg("exec")
        .arg("--pid-file")
        .arg(&files.pid_file);
    if tty {
        c.arg("--tty");
    }
    c.arg(&ctx.id);
    c.kill_on_drop(true);
    c
}

fn exit_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

/// See [`super::Runtime::exec_sync`].
pub(crate) async fn exec_sync(
    ctx: ExecCtx,
    cmd: &[String],
    timeout: Duration,
) -> Result<(i32, Vec<u8>)> {
    if cmd.is_empty() {
        bail!("exec: no command");
    }
    let files = ExecFiles::new(&ctx.dir);
    // One pipe for both streams, so the output keeps its order.
    let (reader, writer) = std::io::pipe().context("pipe")?;
    let writer2 = writer.try_clone()?;
    let mut command = runc_exec(&ctx, &files, false);
    // Everything after the container id is the command (runc stops parsing flags there).
    command
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2));
    let mut child = command.spawn().context("spawning runc exec")?;
    drop(command);
    let mut rx = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
    let mut out = Vec::new();
    let res = tokio::time::timeout(timeout, async {
        rx.read_to_end(&mut out).await?;
        child.wait().await
    })
    .await;
    match res {
        Ok(Ok(st)) => {
            if let Some(err) = runc_error(&files.log_file) {
                bail!("exec in {}: {err}", ctx.id);
            }
            Ok((exit_code(st), out))
        }
        Ok(Err(e)) => Err(e).context("waiting for runc exec"),
        Err(_) => {
            files.kill();
            let _ = child.kill().await;
            bail!("exec in {} timed out after {timeout:?}", ctx.id)
        }
    }
}

/// An interactive exec: its streams, window size and exit code.
pub struct ExecSession {
    /// Writes to the process's stdin (or terminal) when stdin was requested.
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The process's stdout (with a terminal: everything it prints).
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The process's stderr (none with a terminal).
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    child: tokio::process::Child,
    master: Option<OwnedFd>,
    files: ExecFiles,
    id: String,
    waited: bool,
}

impl ExecSession {
    /// Sets the terminal's size (no-op without a terminal).
    pub fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        let Some(m) = &self.master else {
            return Ok(());
        };
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a valid winsize on our terminal master.
        if unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(std::io::Error::last_os_error()).context("TIOCSWINSZ");
        }
        Ok(())
    }

    /// Waits for the process to exit; its exit code (128 + signal when killed).
    pub async fn wait(mut self) -> Result<i32> {
        self.stdin = None;
        let st = self.child.wait().await.context("waiting for runc exec")?;
        self.waited = true;
        if let Some(err) = runc_error(&self.files.log_file) {
            bail!("exec in {}: {err}", self.id);
        }
        Ok(exit_code(st))
    }

    /// Kills the exec'd process (e.g. the client went away).
    pub fn kill(&self) {
        self.files.kill();
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        if !self.waited {
            self.files.kill();
        }
    }
}

/// See [`super::Runtime::exec`].
pub(crate) async fn exec(
    ctx: ExecCtx,
    cmd: &[String],
    tty: bool,
    stdin: bool,
) -> Result<ExecSession> {
    if cmd.is_empty() {
        bail!("exec: no command");
    }
    let files = ExecFiles::new(&ctx.dir);
    let mut command = runc_exec(&ctx, &files, tty);
    command.args(cmd);
    if tty {
        let pty = nix::pty::openpty(None, None).context("openpty")?;
        let master = pty.master;
        let slave = pty.slave;
        command
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().context("spawning runc exec")?;
        drop(command);
        let reader = PtyIo::new(master.try_clone()?)?;
        let writer = PtyIo::new(master.try_clone()?)?;
        Ok(ExecSession {
            stdin: stdin.then(|| Box::new(writer) as Box<dyn AsyncWrite + Send + Unpin>),
            stdout: Some(Box::new(reader)),
            stderr: None,
            child,
            master: Some(master),
            files,
            id: ctx.id,
            waited: false,
        })
    } else {
        command
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("spawning runc exec")?;
        drop(command);
        let stdin_w = child
            .stdin
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>);
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
        Ok(ExecSession {
            stdin: stdin_w,
            stdout,
            stderr,
            child,
            master: None,
            files,
            id: ctx.id,
            waited: false,
        })
    }
}

/// Nonblocking async I/O on a terminal master (EIO — the other side closed — reads as
/// end of file).
struct PtyIo {
    fd: AsyncFd<OwnedFd>,
}

impl PtyIo {
    fn new(fd: OwnedFd) -> Result<PtyIo> {
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        // SAFETY: an OwnedFd's descriptor stays valid and the same while it is owned.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(PtyIo { fd })
    }
}

impl AsyncRead for PtyIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let res = guard.try_io(|inner| {
                // SAFETY: read into the caller's initialized buffer.
                let n = unsafe {
                    libc::read(
                        inner.as_raw_fd(),
                        unfilled.as_mut_ptr().cast(),
                        unfilled.len(),
                    )
                };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let res = guard.try_io(|inner| {
                // SAFETY: write from the caller's buffer.
                let n = unsafe { libc::write(inner.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
