//! Builds the built-in plugins (`plugins/<name>/` crates with a `plugin.json`) for
//! `wasm32-wasip2` and generates the table that embeds them in the binary
//! (`crate::builtin`).
//!
//! The components are built by a nested cargo in a target directory of their own
//! (`${CARGO_TARGET_DIR:-<repo>/target}-plugins`, the same one `scripts/build-plugins.sh`
//! uses, so that an up-to-date build costs nothing). Set `TUG_BUILTIN_PLUGINS_DIR` to a
//! directory of prebuilt `.wasm` files to skip the nested build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: building the built-in plugins: {e}");
        std::process::exit(1);
    }
}

struct Builtin {
    name: String,
    package: String,
    dir: PathBuf,
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or("the host crate has no parent directory")?
        .to_path_buf();
    let plugins = root.join("plugins");
    for watched in ["plugins", "sdk/rust", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=TUG_BUILTIN_PLUGINS_DIR");

    let mut builtins = Vec::new();
    let entries = std::fs::read_dir(&plugins).map_err(|e| format!("{}: {e}", plugins.display()))?;
    for entry in entries {
        let dir = entry.map_err(|e| e.to_string())?.path();
        if !dir.join("plugin.json").is_file() || !dir.join("Cargo.toml").is_file() {
            continue;
        }
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("a plugin directory name is not UTF-8")?
            .to_string();
        let cargo_toml =
            std::fs::read_to_string(dir.join("Cargo.toml")).map_err(|e| e.to_string())?;
        let package = cargo_toml
            .lines()
            .find_map(|l| {
                let l = l.trim();
                let v = l.strip_prefix("name")?.trim_start().strip_prefix('=')?;
                Some(v.trim().trim_matches('"').to_string())
            })
            .ok_or_else(|| format!("{}: no package name", dir.display()))?;
        builtins.push(Builtin { name, package, dir });
    }
    builtins.sort_by(|a, b| a.name.cmp(&b.name));

    let wasm_dir = match std::env::var_os("TUG_BUILTIN_PLUGINS_DIR") {
        Some(d) => PathBuf::from(d),
        None => build(&root, &plugins, &builtins)?,
    };

    let mut table = String::from(
        "/// The built-in plugins: (name, component, default spec as JSON).\n\
         pub static BUILTINS: &[(&str, &[u8], &str)] = &[\n",
    );
    for b in &builtins {
        let wasm = wasm_dir.join(format!("{}.wasm", b.package.replace('-', "_")));
        if !wasm.is_file() {
            return Err(format!("{} was not built", wasm.display()));
        }
        table.push_str(&format!(
            "    ({:?}, include_bytes!({:?}), include_str!({:?})),\n",
            b.name,
            wasm.display().to_string(),
            b.dir.join("plugin.json").display().to_string(),
        ));
    }
    table.push_str("];\n");
    let out = PathBuf::from(env("OUT_DIR")?).join("builtin_plugins.rs");
    std::fs::write(&out, table).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}

fn env(key: &str) -> Result<String, String> {
    std::env::var(key).map_err(|_| format!("{key} is not set"))
}

/// Runs the nested cargo; returns the directory of the `.wasm` files.
fn build(root: &Path, plugins: &Path, builtins: &[Builtin]) -> Result<PathBuf, String> {
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => root.join("target"),
    };
    let mut target_dir = target_dir.into_os_string();
    target_dir.push("-plugins");
    let target_dir = PathBuf::from(target_dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for b in builtins {
        cmd.args(["-p", &b.package]);
    }
    // What the outer cargo set for the host build must not leak into the Wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_PROFILE_RELEASE_OPT_LEVEL",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("running cargo for the plugins: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build of the plugins failed ({status}); is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)"
        ));
    }
    Ok(target_dir.join("wasm32-wasip2").join("release"))
}
