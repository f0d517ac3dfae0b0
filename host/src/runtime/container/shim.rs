//! `tug shim`: the per-container supervisor process.
//!
//! The runtime starts one shim per container (`<shim program> <shim args…>` with
//! `TUG_SHIM_DIR=<container dir>` in its environment; by default the program is the `tug`
//! binary itself and the argument `shim`). The shim:
//!
//! 1. forks at once; the parent exits, so the runtime reaps it immediately and the
//!    child is re-parented to init: the shim outlives `tug` and never depends on it;
//! 2. calls `setsid` and becomes a child subreaper, ignores SIGHUP/SIGINT/SIGTERM;
//! 3. runs `runc run --detach` (container stdout/stderr are pipes it reads, or a terminal
//!    received over runc's console socket; one runc invocation rather than `create` +
//!    `start`, which costs a second runc start-up per container); after runc exits the
//!    container's init is re-parented to the shim, which therefore reaps it and sees its
//!    real wait status (exit code or signal);
//! 4. reports `tug-shim: ok <pid>` (or `tug-shim: error <message>`) on the stdout it was
//!    started with, which the runtime reads, and closes it;
//! 5. copies the output into the CRI log ([`super::logs`]), rotating it by size;
//! 6. when the init exits: drains the output, reads the memory cgroup's OOM-kill
//!    counter, runs `runc delete --force` (cgroup and runc state gone) and writes
//!    `exit.json`; then exits.
//!
//! It is single-threaded and runs before any async runtime exists (see `main.rs`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use super::console::ConsoleSocket;
use super::logs::{LogWriter, Stream};
use super::state::{self, Exit, Meta, Started};

/// Environment variable carrying the container directory to the shim.
pub const SHIM_DIR_ENV: &str = "TUG_SHIM_DIR";

/// Prefix of the shim's report line on its stdout.
pub const REPORT_PREFIX: &str = "tug-shim: ";

/// Arguments of `tug shim` (started by the runtime, not by people).
#[derive(Args, Debug, Clone, Default)]
pub struct ShimArgs {
    /// The container's state directory (default: `$TUG_SHIM_DIR`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// Runs the shim. Called before any async runtime or thread exists.
pub fn main(args: ShimArgs) -> Result<()> {
    let dir = args
        .state_dir
        .or_else(|| std::env::var_os(SHIM_DIR_ENV).map(PathBuf::from))
        .context("tug shim: no state dir (--state-dir or TUG_SHIM_DIR)")?;
    // Keep the report channel (our stdout) on a close-on-exec descriptor of its own.
    // SAFETY: fcntl on fd 1.
    let report_fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if report_fd < 0 {
        return Err(std::io::Error::last_os_error()).context("dup of stdout");
    }
    // SAFETY: fork; the parent only calls _exit.
    match unsafe { libc::fork() } {
        -1 => return Err(std::io::Error::last_os_error()).context("fork"),
        0 => {}
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: plain syscalls on our own process.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    redirect_stdio(&dir);
    // SAFETY: report_fd was just created by us and is owned here.
    let mut report = Some(unsafe { File::from_raw_fd(report_fd) });
    let result = run(&dir, &mut report);
    if let Err(e) = &result {
        eprintln!("tug shim: {e:#}");
        if let Some(mut r) = report.take() {
            let msg = format!("{e:#}").replace('\n', " ");
            let _ = writeln!(r, "\n{REPORT_PREFIX}error {msg}");
        }
    }
    result
}

/// stdin/stdout → /dev/null, stderr → `<dir>/shim.log`.
fn redirect_stdio(dir: &Path) {
    let null = OpenOptions::new().read(true).write(true).open("/dev/null");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shim.log"));
    // SAFETY: dup2 onto the standard descriptors.
    unsafe {
        if let Ok(null) = &null {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
        if let Ok(log) = &log {
            libc::dup2(log.as_raw_fd(), 2);
        }
    }
}

fn report_ok(report: &mut Option<File>, pid: i32) {
    if let Some(mut r) = report.take() {
        let _ = writeln!(r, "\n{REPORT_PREFIX}ok {pid}");
    }
}

/// `runc --root … --log … --log-format json <args>`.
fn runc(meta: &Meta, dir: &Path) -> Command {
    let mut c = Command::new(&meta.runc);
    c.arg("--root")
        .arg(&meta.runc_root)
        .arg("--log")
        .arg(dir.join("runc.log"))
        .arg("--log-format")
        .arg("json");
    c
}

/// The last error runc logged (its `--log` file, JSON lines).
pub(crate) fn runc_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .and_then(|v| v["msg"].as_str().map(str::to_string))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two fds that we take ownership of.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: freshly created descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn fail_start(meta: &Meta, dir: &Path, message: String) -> anyhow::Error {
    let _ = runc(meta, dir)
        .args(["delete", "--force", &meta.id])
        .stdout(Stdio::null())
        .status();
    let _ = state::write_json(
        &dir.join("exit.json"),
        &Exit {
            exit_code: 128,
            signal: None,
            oom_killed: false,
            finished_at: state::now_nanos(),
            reason: "StartError".to_string(),
            message: Some(message.clone()),
        },
    );
    anyhow::anyhow!("{message}")
}

fn run(dir: &Path, report: &mut Option<File>) -> Result<()> {
    let meta: Meta = state::read_json(&dir.join("meta.json"))
        .with_context(|| format!("reading {}/meta.json", dir.display()))?;

    // SIGCHLD through a signalfd (blocked first, so none is lost).
    // SAFETY: signal mask manipulation and signalfd on our own single thread.
    let sfd = unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("signalfd");
        }
        OwnedFd::from_raw_fd(fd)
    };

    let pid_file = dir.join("init.pid");
    let t_runc = Instant::now();
    let mut outputs: Vec<(OwnedFd, Stream)> = Vec::new();
    let created = if meta.tty {
        let sock = ConsoleSocket::bind()?;
        let mut child = runc(&meta, dir)
            .args(["run", "--detach"])
            .arg("--bundle")
            .arg(dir)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--console-socket")
            .arg(sock.runc_arg())
            .arg(&meta.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("spawning runc run")?;
        let master = sock.accept(|| matches!(child.try_wait(), Ok(None)));
        let status = child.wait().context("waiting for runc run")?;
        if let Ok(m) = master {
            outputs.push((m, Stream::Stdout));
        }
        status.success()
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let status = runc(&meta, dir)
            .args(["run", "--detach"])
            .arg("--bundle")
            .arg(dir)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(&meta.id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w))
            .status()
            .context("running runc run")?;
        if !status.success() {
            let mut err = String::new();
            drain_nonblocking(&err_r, &mut err);
            let msg = runc_error(&dir.join("runc.log")).unwrap_or(err);
            return Err(fail_start(&meta, dir, format!("runc run: {}", msg.trim())));
        }
        outputs.push((out_r, Stream::Stdout));
        outputs.push((err_r, Stream::Stderr));
        true
    };
    if !created {
        let msg = runc_error(&dir.join("runc.log")).unwrap_or_else(|| "failed".into());
        return Err(fail_start(&meta, dir, format!("runc run: {msg}")));
    }
    if meta.tty && outputs.is_empty() {
        return Err(fail_start(
            &meta,
            dir,
            "runc run: no terminal received".into(),
        ));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| fail_start(&meta, dir, "runc run wrote no pid".into()))?;
    let pid_start = state::proc_start_time(pid).unwrap_or(0);

    let mut log =
        LogWriter::open(&meta.log_path, meta.log_max_size, meta.log_max_files).map_err(|e| {
            fail_start(
                &meta,
                dir,
                format!("opening log {}: {e}", meta.log_path.display()),
            )
        })?;

    let my_pid = std::process::id() as i32;
    state::write_json(
        &dir.join("started.json"),
        &Started {
            shim_pid: my_pid,
            shim_start: state::proc_start_time(my_pid).unwrap_or(0),
            pid,
            pid_start,
            started_at: state::now_nanos(),
        },
    )?;
    eprintln!(
        "tug-shim: runc run took {:.1} ms",
        t_runc.elapsed().as_secs_f64() * 1000.0
    );
    report_ok(report, pid);

    let status = supervise(pid, &sfd, &mut outputs, &mut log);
    log.flush();
    drop(outputs);

    let oom_killed = meta
        .memory_cgroup
        .as_ref()
        .is_some_and(|(d, v2)| super::cgroups::oom_killed(d, *v2));
    let _ = runc(&meta, dir)
        .args(["delete", "--force", &meta.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    let (exit_code, signal) = if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(status), None)
    };
    let reason = if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    state::write_json(
        &dir.join("exit.json"),
        &Exit {
            exit_code,
            signal,
            oom_killed,
            finished_at: state::now_nanos(),
            reason: reason.to_string(),
            message: None,
        },
    )?;
    Ok(())
}

/// Reads what is available on a pipe without blocking.
fn drain_nonblocking(fd: &OwnedFd, out: &mut String) {
    // SAFETY: fcntl/read on a descriptor we own.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            out.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
        }
    }
}

/// Copies output into the log until the init (`pid`) exited and the output ended (or
/// stayed open for 2 s more, held by some other process); returns the wait status.
fn supervise(
    pid: i32,
    sfd: &OwnedFd,
    outputs: &mut Vec<(OwnedFd, Stream)>,
    log: &mut LogWriter,
) -> i32 {
    let mut exit_status: Option<i32> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Reap every child (we are a subreaper: orphans land here too).
        loop {
            let mut st = 0;
            // SAFETY: waitpid with WNOHANG.
            let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if r <= 0 {
                break;
            }
            if r == pid {
                exit_status = Some(st);
                drain_deadline = Some(Instant::now() + Duration::from_secs(2));
            }
        }
        if let Some(st) = exit_status {
            let expired = drain_deadline.is_some_and(|d| Instant::now() >= d);
            if outputs.is_empty() || expired {
                return st;
            }
        }
        let mut fds: Vec<libc::pollfd> = outputs
            .iter()
            .map(|(fd, _)| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        fds.push(libc::pollfd {
            fd: sfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let timeout = match drain_deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(1000) as i32,
            None => 1000,
        };
        // SAFETY: poll on a properly sized array of pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            continue;
        }
        let sig = fds.pop();
        if sig.is_some_and(|s| s.revents != 0) {
            let mut info = [0u8; 128];
            // SAFETY: draining the nonblocking signalfd.
            while unsafe { libc::read(sfd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) } > 0 {
            }
        }
        let mut closed = Vec::new();
        for (i, p) in fds.iter().enumerate() {
            if p.revents == 0 {
                continue;
            }
            let (fd, stream) = &outputs[i];
            // SAFETY: read into our buffer from a descriptor we own.
            let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                log.write(*stream, &buf[..r as usize]);
            } else if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
            {
                // EOF, or EIO from a terminal whose other end closed.
                closed.push(i);
            }
        }
        for i in closed.into_iter().rev() {
            outputs.remove(i);
        }
    }
}
