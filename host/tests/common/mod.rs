//! Shared harness for end-to-end tests: runs a real `tug server` process on a
//! fresh data directory and drives it with the real `kubectl`.
//!
//! Every [`Cluster`] owns its server process and its temporary directory; both
//! are cleaned up on drop, also when the test panics (then the tail of the
//! server's log is printed, so a failure can be diagnosed from the test output).
//!
//! [`wasm`] locates the built Wasm components (also for the tests that need no server).

// Each integration test binary compiles this module and uses only part of it.
#![allow(dead_code, unused_macros)]

pub mod node;
pub mod wasm;

use std::cell::RefCell;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the server may take to print its "listening" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to answer `kubectl get ns default` after that.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a single kubectl invocation may run before the test fails.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(90);
/// Lines of the server log shown when a test fails.
const LOG_TAIL_LINES: usize = 80;

// ---------------------------------------------------------------- soft checks
//
// `check!`, `check_eq!`, `check_contains` and `kubectl_err` record a failure
// and let the test go on, so that one run shows every step that disagrees
// with Kubernetes; the test still fails, when its `Cluster` is dropped.
// Steps whose output the next steps need (`kubectl_ok`, waits) fail at once.

thread_local! {
    static FAILURES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Record a failed check of the current test.
#[track_caller]
pub fn fail(msg: String) {
    let loc = std::panic::Location::caller();
    let msg = format!("{}:{}: {msg}", loc.file(), loc.line());
    eprintln!("CHECK FAILED at {msg}\n");
    FAILURES.with(|f| f.borrow_mut().push(msg));
}

/// Take the failures recorded so far by this thread.
pub fn take_failures() -> Vec<String> {
    FAILURES.with(|f| std::mem::take(&mut *f.borrow_mut()))
}

/// Like `assert!`, but records the failure and goes on.
macro_rules! check {
    ($cond:expr $(,)?) => {
        if !$cond {
            $crate::common::fail(format!("check failed: {}", stringify!($cond)));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::common::fail(format!("check failed: {}: {}", stringify!($cond), format!($($arg)+)));
        }
    };
}

/// Like `assert_eq!`, but records the failure and goes on.
macro_rules! check_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    $crate::common::fail(format!(
                        "check failed: {} == {}\n  left: {:?}\n right: {:?}",
                        stringify!($left),
                        stringify!($right),
                        l,
                        r
                    ));
                }
            }
        }
    };
    ($left:expr, $right:expr, $($arg:tt)+) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    $crate::common::fail(format!(
                        "check failed: {} == {}\n  left: {:?}\n right: {:?}\n{}",
                        stringify!($left),
                        stringify!($right),
                        l,
                        r,
                        format!($($arg)+)
                    ));
                }
            }
        }
    };
}

/// The compiled-plugin cache the test servers share: `$TUG_PLUGIN_CACHE`, else beside the
/// target directory.
pub fn plugin_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TUG_PLUGIN_CACHE") {
        return PathBuf::from(d);
    }
    // CARGO_BIN_EXE_tug is <target>/<profile>/tug.
    Path::new(env!("CARGO_BIN_EXE_tug"))
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("tugboat-plugin-cache"))
        .unwrap_or_else(|| std::env::temp_dir().join("tugboat-plugin-cache"))
}

/// A running `tug server` on its own data directory.
pub struct Cluster {
    dir: tempfile::TempDir,
    child: Option<Child>,
    addr: SocketAddr,
    starts: u32,
    /// Further `tug server` arguments (kept across restarts).
    args: Vec<String>,
    /// The network namespace (`ip netns` name) the server and kubectl run in, if not the
    /// test's own.
    netns: Option<String>,
}

impl Cluster {
    /// Start a server on a fresh data dir and an OS-chosen port, and wait
    /// until kubectl can talk to it.
    pub fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// [`Cluster::start`] with further `tug server` arguments, e.g.
    /// `["--simulated-nodes", "3"]`.
    pub fn start_with(args: &[&str]) -> Cluster {
        Cluster::start_in(None, args)
    }

    /// [`Cluster::start_with`] with the server (and every kubectl of this cluster) running
    /// in the network namespace `netns` (made with `ip netns add`).
    pub fn start_in_netns(netns: &str, args: &[&str]) -> Cluster {
        Cluster::start_in(Some(netns), args)
    }

    fn start_in(netns: Option<&str>, args: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("tug-e2e-")
            .tempdir()
            .expect("creating a temporary data dir");
        let mut cluster = Cluster {
            dir,
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            starts: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
            netns: netns.map(str::to_string),
        };
        let addr = cluster
            .spawn_server("127.0.0.1:0".parse().unwrap())
            .unwrap_or_else(|e| panic!("starting tug server: {e}"));
        cluster.addr = addr;
        cluster.wait_ready();
        cluster
    }

    /// The data dir of the server.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The server's log file (its stderr, across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Where kubectl keeps its discovery cache for this cluster (per cluster,
    /// so that caches of other servers that once used the same port never leak in).
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("kubectl-cache")
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The admin bearer token.
    pub fn token(&self) -> String {
        fs::read_to_string(self.dir.path().join("admin.token"))
            .expect("reading admin.token")
            .trim()
            .to_string()
    }

    /// Start the server process listening on `listen`; return the address it
    /// printed once listening.
    fn spawn_server(&mut self, listen: SocketAddr) -> Result<SocketAddr, String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("opening the server log: {e}"))?;
        self.starts += 1;
        let mut cmd = self.command(env!("CARGO_BIN_EXE_tug"));
        cmd.arg("server")
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--listen")
            .arg(listen.to_string())
            .args(&self.args)
            // Compiled plugins are shared by every test server (content-addressed), so
            // that each start does not compile the built-in plugins again.
            .env("TUG_PLUGIN_CACHE", plugin_cache_dir())
            .env(
                "TUG_LOG",
                std::env::var("TUG_LOG").unwrap_or_else(|_| "info".into()),
            )
            // The log goes to a file: no colour codes.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        kill_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", env!("CARGO_BIN_EXE_tug")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        // Forward the first line, then keep draining stdout so that the server
        // never blocks on a full pipe.
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !sent && line.starts_with("tug server:") {
                            sent = true;
                            let _ = tx.send(line.trim_end().to_string());
                        }
                    }
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => return parse_listen_line(&line, self.dir.path()),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                        self.child = None;
                        return Err(format!(
                            "tug server exited with {status} before listening; log:\n{}",
                            self.log_tail()
                        ));
                    }
                    if Instant::now() > deadline {
                        self.kill();
                        return Err(format!(
                            "tug server did not print its listening line within {START_TIMEOUT:?}; log:\n{}",
                            self.log_tail()
                        ));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().unwrap().wait().ok();
                    self.child = None;
                    return Err(format!(
                        "tug server closed stdout without the listening line (exit: {status:?}); log:\n{}",
                        self.log_tail()
                    ));
                }
            }
        }
    }

    /// Wait until `kubectl get ns default` succeeds.
    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = self.kubectl(&["get", "ns", "default", "--request-timeout=5s"]);
            if out.status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the server at {} did not become ready within {READY_TIMEOUT:?}; last kubectl error:\n{}",
                    self.addr,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL the server (no graceful shutdown) and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL the server and start it again on the same data dir, on the same
    /// port if it can be had, else on a new one (the server rewrites the kubeconfig).
    pub fn restart(&mut self) {
        self.kill();
        let same = self.addr;
        let addr = match self.spawn_server(same) {
            Ok(addr) => addr,
            Err(first) => {
                eprintln!("restart on {same} failed ({first}); trying a new port");
                self.spawn_server("127.0.0.1:0".parse().unwrap())
                    .unwrap_or_else(|e| panic!("restarting tug server: {e}"))
            }
        };
        self.addr = addr;
        self.wait_ready();
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = fs::read(self.log_path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[from..].join("\n")
    }

    /// A command for `program` in the cluster's network namespace (if it has one).
    pub fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                // nsenter changes only the network namespace (`ip netns exec` also makes a
                // mount namespace with a fresh /sys, which hides the cgroup mounts).
                let mut cmd = Command::new("nsenter");
                cmd.arg(format!("--net=/run/netns/{ns}")).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// A kubectl command for this cluster (kubeconfig and cache dir set).
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.command("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .args(args)
            .env_remove("KUBECONFIG")
            .env("KUBECTL_INTERACTIVE_DELETE", "false");
        cmd
    }

    /// Run kubectl with another kubeconfig (e.g. one with a bad token).
    pub fn kubectl_with_kubeconfig(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let mut cmd = self.command("kubectl");
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .args(args)
            .env_remove("KUBECONFIG");
        run_with_timeout(cmd, None, KUBECTL_TIMEOUT, &display_args(args))
    }

    /// Run kubectl with `args` and return what it did.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        run_with_timeout(
            self.kubectl_cmd(args),
            None,
            KUBECTL_TIMEOUT,
            &display_args(args),
        )
    }

    /// Run kubectl with `input` on its stdin (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        run_with_timeout(
            self.kubectl_cmd(args),
            Some(input),
            KUBECTL_TIMEOUT,
            &display_args(args),
        )
    }

    /// Run kubectl, assert that it succeeded, return its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        expect_ok(self.kubectl(args), args)
    }

    /// Like [`Cluster::kubectl_ok`] with `input` on stdin.
    pub fn kubectl_stdin_ok(&self, args: &[&str], input: &str) -> String {
        expect_ok(self.kubectl_stdin(args, input), args)
    }

    /// Run kubectl, check that it failed, return its stderr.
    #[track_caller]
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        expect_err(self.kubectl(args), args)
    }

    /// Like [`Cluster::kubectl_err`] with `input` on stdin.
    #[track_caller]
    pub fn kubectl_stdin_err(&self, args: &[&str], input: &str) -> String {
        expect_err(self.kubectl_stdin(args, input), args)
    }

    /// Start a long-running kubectl (e.g. `get -w`) whose stdout lines can be
    /// read as they come. The child is killed when the handle is dropped.
    pub fn kubectl_spawn(&self, args: &[&str]) -> Spawned {
        let mut cmd = self.kubectl_cmd(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        kill_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("spawning kubectl");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr_reader = thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Spawned {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr: Some(stderr_reader),
            what: display_args(args),
        }
    }

    /// Poll `f` until it returns `Some`, for at most `timeout`.
    pub fn eventually<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failures = take_failures();
        let panicking = thread::panicking();
        if panicking || !failures.is_empty() {
            eprintln!(
                "---- tug server log (last {LOG_TAIL_LINES} lines of {}; server at {}) ----\n{}\n---- end of server log ----",
                self.log_path().display(),
                self.addr,
                self.log_tail()
            );
            if std::env::var_os("TUG_E2E_KEEP").is_some() {
                let path = self.dir.path().to_path_buf();
                eprintln!("TUG_E2E_KEEP set: keeping {}", path.display());
                self.kill();
                // Leak the directory on purpose.
                if let Ok(fresh) = tempfile::tempdir() {
                    let _ = std::mem::replace(&mut self.dir, fresh).keep();
                }
            }
        }
        self.kill();
        // The TempDir removes the directory when dropped right after this.
        if !failures.is_empty() {
            let report = format!(
                "{} check(s) failed:\n\n{}",
                failures.len(),
                failures.join("\n\n")
            );
            if panicking {
                eprintln!("{report}");
            } else {
                panic!("{report}");
            }
        }
    }
}

/// A kubectl running in the background (see [`Cluster::kubectl_spawn`]).
pub struct Spawned {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<thread::JoinHandle<String>>,
    what: String,
}

impl Spawned {
    /// Wait until a line satisfying `pred` is printed (lines already seen count
    /// too); return it. Panics after `timeout`, showing everything printed.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let stderr = self.finish();
                    panic!(
                        "`{}` ended before printing {what}; its stdout:\n{}\nits stderr:\n{stderr}",
                        self.what,
                        self.seen.join("\n")
                    );
                }
            }
            if Instant::now() >= deadline {
                let stderr = self.finish();
                panic!(
                    "`{}` did not print {what} within {timeout:?}; its stdout so far:\n{}\nits stderr:\n{stderr}",
                    self.what,
                    self.seen.join("\n")
                );
            }
        }
    }

    /// Everything printed so far (after draining what is pending).
    pub fn output(&mut self) -> Vec<String> {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.clone()
    }

    /// Kill the child and return its stderr.
    pub fn finish(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    /// Wait for the child to exit by itself, for at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parse `tug server: API at https://127.0.0.1:PORT — kubeconfig: DIR/kubeconfig`.
fn parse_listen_line(line: &str, dir: &Path) -> Result<SocketAddr, String> {
    let rest = line
        .split_once("https://")
        .map(|(_, r)| r)
        .ok_or_else(|| format!("unexpected server line (no https://): {line:?}"))?;
    let addr_text = rest.split_whitespace().next().unwrap_or_default();
    let addr: SocketAddr = addr_text
        .parse()
        .map_err(|e| format!("unexpected address {addr_text:?} in server line {line:?}: {e}"))?;
    let expected_kubeconfig = dir.join("kubeconfig");
    if !line.ends_with(&format!("kubeconfig: {}", expected_kubeconfig.display())) {
        return Err(format!(
            "server line {line:?} does not name the kubeconfig {}",
            expected_kubeconfig.display()
        ));
    }
    Ok(addr)
}

/// On Linux, have the kernel SIGKILL the child if the thread that spawned it
/// dies, so that no server outlives a test binary that was itself killed.
fn kill_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        unsafe extern "C" {
            fn prctl(option: i32, ...) -> i32;
        }
        const PR_SET_PDEATHSIG: i32 = 1;
        const SIGKILL: u64 = 9;
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

fn display_args(args: &[&str]) -> String {
    let mut s = String::from("kubectl");
    for a in args {
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"(){}[]$!*".contains(c)) {
            s.push('\'');
            s.push_str(a);
            s.push('\'');
        } else {
            s.push_str(a);
        }
    }
    s
}

/// Run `cmd` to completion, feeding `input` to stdin; kill it after `timeout`.
pub fn run_with_timeout(
    mut cmd: Command,
    input: Option<&str>,
    timeout: Duration,
    what: &str,
) -> Output {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    kill_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning `{what}`: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_string();
        thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for kubectl") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = out_reader.join().unwrap_or_default();
            let err = err_reader.join().unwrap_or_default();
            panic!(
                "`{what}` did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn expect_ok(out: Output, args: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "`{}` failed ({}):\nstderr:\n{stderr}\nstdout:\n{stdout}",
        display_args(args),
        out.status
    );
    stdout
}

/// Returns stderr; if the command succeeded, records a failure and returns "".
#[track_caller]
fn expect_err(out: Output, args: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        fail(format!(
            "`{}` succeeded but was expected to fail:\nstdout:\n{stdout}\nstderr:\n{stderr}",
            display_args(args),
        ));
        return String::new();
    }
    stderr
}

/// The lines of a kubectl table, each split on whitespace.
pub fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The header of a kubectl table, split on runs of 2+ spaces (so that headers
/// with a space, such as `NOMINATED NODE`, stay whole).
pub fn header_columns(out: &str) -> Vec<String> {
    let first = out.lines().next().unwrap_or_default();
    first
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The row of a table whose first column is `name`.
pub fn row<'a>(t: &'a [Vec<String>], name: &str) -> &'a [String] {
    t.iter()
        .find(|r| r.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row {name:?} in table {t:?}"))
}

/// Check that `haystack` contains `needle` (a soft check).
#[track_caller]
pub fn check_contains(haystack: &str, needle: &str) {
    if !haystack.contains(needle) {
        fail(format!("expected to find {needle:?} in:\n{haystack}"));
    }
}

/// Check that `haystack` does not contain `needle` (a soft check).
#[track_caller]
pub fn check_not_contains(haystack: &str, needle: &str) {
    if haystack.contains(needle) {
        fail(format!("did not expect {needle:?} in:\n{haystack}"));
    }
}

/// The lines of `out`, trimmed of trailing whitespace, without empty ones.
pub fn lines(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A name unique to this process and call, for namespaces and objects.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id() % 100_000)
}
