//! Starting a real `tug server` process for the `kube` client tests.
//!
//! Each [`TugServer`] is a child process on a free loopback port with its own data
//! directory. It is killed (SIGKILL) when dropped, so nothing is left behind when a test
//! panics; its stderr goes to `DATA/server.log`, whose tail is printed if the test panicked.

#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server may take to print its "listening" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `tug server` child process.
pub struct TugServer {
    child: Option<Child>,
    /// `127.0.0.1:PORT` of the API.
    pub addr: String,
    /// The data directory (store, credentials, kubeconfig).
    pub data_dir: PathBuf,
    log_path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// rustls needs one process-wide crypto provider; the workspace builds rustls with `ring`.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl TugServer {
    /// A server on a fresh temporary data directory.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// A server on a fresh temporary data directory with extra `tug server` arguments.
    pub fn start_with_args(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("creating a temporary data directory");
        let mut s = Self::start_in(tmp.path(), extra);
        s._tmp = Some(tmp);
        s
    }

    /// A server on `dir` (which outlives it, e.g. for restarts).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Self {
        std::fs::create_dir_all(dir).expect("creating the data directory");
        let log_path = dir.join("server.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("opening the server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tug"))
            .arg("server")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env(
                "TUG_LOG",
                std::env::var("TUG_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning `tug server`");
        let stdout = child.stdout.take().expect("the server's stdout");
        let (tx, rx) = mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut server = TugServer {
            child: Some(child),
            addr: String::new(),
            data_dir: dir.to_path_buf(),
            log_path,
            _tmp: None,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "`tug server` exited before listening; log:\n{}",
                server.log_tail()
            ),
            Err(_) => panic!(
                "`tug server` did not report listening within {START_TIMEOUT:?}; log:\n{}",
                server.log_tail()
            ),
        };
        server.addr = line
            .split("https://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected `tug server` output: {line:?}"))
            .to_string();
        server
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL the server and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The admin bearer token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("reading admin.token")
            .trim()
            .to_string()
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("pki/ca.crt")).expect("reading pki/ca.crt")
    }

    /// A `kube::Client` built from `DATA/kubeconfig`, the way a user's program would.
    pub async fn client(&self) -> kube::Client {
        install_crypto_provider();
        let kc = kube::config::Kubeconfig::read_from(self.data_dir.join("kubeconfig"))
            .expect("reading the kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("a kube::Config from the kubeconfig");
        kube::Client::try_from(config).expect("a kube::Client")
    }

    /// The last lines of the server's stderr.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for TugServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let tail = self.log_tail();
            if !tail.is_empty() {
                eprintln!("--- tail of {} ---\n{tail}", self.log_path.display());
            }
        }
    }
}

/// The `Status` of an API error, or a panic naming what was expected.
pub fn api_status(
    res: Result<impl std::fmt::Debug, kube::Error>,
    what: &str,
) -> kube::core::Status {
    match res {
        Err(kube::Error::Api(s)) => *s,
        Err(other) => panic!("{what}: expected an API error, got {other:?}"),
        Ok(v) => panic!("{what}: expected an API error, got success: {v:?}"),
    }
}
