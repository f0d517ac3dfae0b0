//! The Wasm components the tests load: the plugins of the `plugins/` workspace, built once
//! per test binary by `scripts/build-plugins.sh` (set `TUG_PLUGIN_WASM_DIR` to use prebuilt
//! ones), and the JavaScript and Python policies built by
//! `scripts/build-polyglot-plugins.sh` (or taken from `TUG_POLYGLOT_WASM_DIR`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// The directory `script` (relative to the repository root) builds into — it prints it as
/// the last line of its stdout — or the directory the environment variable `env` names,
/// without building anything.
pub fn build_dir(env: &str, script: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(env) {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(root.join(script))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(out.status.success(), "{script} failed");
    eprintln!("{script}: {:?}", started.elapsed());
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(
        stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("{script} printed no directory"))
            .trim(),
    )
}

/// Where the plugins of the `plugins/` workspace are built (`faulty.wasm`,
/// `deny_privileged.wasm`, ...).
pub fn wasm_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_dir("TUG_PLUGIN_WASM_DIR", "scripts/build-plugins.sh"))
}

/// Where the JavaScript and Python example policies are built.
pub fn polyglot_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_dir("TUG_POLYGLOT_WASM_DIR", "scripts/build-polyglot-plugins.sh"))
}

/// The path of plugin `name` (`faulty` → `.../faulty.wasm`).
pub fn wasm_path(name: &str) -> PathBuf {
    wasm_dir().join(format!("{name}.wasm"))
}

/// The bytes of plugin `name`.
pub fn wasm(name: &str) -> Vec<u8> {
    let path = wasm_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
