//! Running CNI 1.0 plugin binaries (the `cni` host interface): only files of the node's
//! configured CNI directories, in the node netns, with the CNI environment of the current
//! call's sandbox, the network configuration on stdin and a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::netns;

/// The largest output read from a CNI plugin.
const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// What one execution needs.
pub(crate) struct CniCall<'a> {
    pub bin_dirs: &'a [PathBuf],
    pub node_netns: Option<&'a Path>,
    pub plugin_type: &'a str,
    pub command: &'a str,
    pub container_id: &'a str,
    /// The sandbox netns (may be gone on `DEL`: then `CNI_NETNS` is empty).
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `CNI_ARGS`.
    pub args: String,
    pub config: &'a str,
    pub timeout: Duration,
}

/// Why an execution failed.
#[derive(Debug)]
pub(crate) enum CniFailure {
    /// Refused (403), not found (404), timed out (504) or could not run (500).
    Host { code: u16, message: String },
    /// The plugin reported an error.
    Plugin {
        code: u32,
        msg: String,
        details: String,
    },
}

#[derive(Deserialize)]
struct CniErrorJson {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

fn host(code: u16, message: impl Into<String>) -> CniFailure {
    CniFailure::Host {
        code,
        message: message.into(),
    }
}

/// Finds `plugin_type` in the CNI directories: a plain file name (no path), an executable
/// regular file.
pub(crate) fn find_plugin(bin_dirs: &[PathBuf], plugin_type: &str) -> Result<PathBuf, CniFailure> {
    let valid = !plugin_type.is_empty()
        && plugin_type.len() <= 64
        && !plugin_type.starts_with('.')
        && plugin_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid {
        return Err(host(
            403,
            format!(
                "{plugin_type:?} is not a CNI plugin name (a file name of the CNI directories)"
            ),
        ));
    }
    for dir in bin_dirs {
        let path = dir.join(plugin_type);
        if let Ok(meta) = std::fs::metadata(&path) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(path);
            }
        }
    }
    Err(host(
        404,
        format!(
            "no CNI plugin {plugin_type:?} in {}",
            bin_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// Runs one CNI plugin; returns its stdout.
pub(crate) async fn exec(call: CniCall<'_>) -> Result<String, CniFailure> {
    if !matches!(
        call.command,
        "ADD" | "DEL" | "CHECK" | "VERSION" | "GC" | "STATUS"
    ) {
        return Err(host(
            400,
            format!("{:?} is not a CNI command", call.command),
        ));
    }
    let binary = find_plugin(call.bin_dirs, call.plugin_type)?;
    let cni_path =
        std::env::join_paths(call.bin_dirs).map_err(|e| host(500, format!("CNI_PATH: {e}")))?;
    let netns = if netns::is_netns(call.netns) {
        call.netns.display().to_string()
    } else {
        String::new()
    };
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_ARGS", &call.args)
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let _fd =
        netns::command_in(&mut cmd, call.node_netns).map_err(|e| host(500, format!("{e:#}")))?;
    let mut child = cmd
        .spawn()
        .map_err(|e| host(500, format!("running {}: {e}", binary.display())))?;
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin that does not read its input fails on its own; ignore EPIPE here.
        let _ = pipe.write_all(call.config.as_bytes()).await;
        drop(pipe);
    }
    let out = match tokio::time::timeout(call.timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(host(500, format!("waiting for {}: {e}", binary.display()))),
        Err(_) => {
            return Err(host(
                504,
                format!(
                    "CNI plugin {} {} did not finish within {:?}",
                    call.plugin_type, call.command, call.timeout
                ),
            ));
        }
    };
    let mut stdout = out.stdout;
    stdout.truncate(MAX_OUTPUT_BYTES);
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    if out.status.success() {
        tracing::debug!(
            plugin = call.plugin_type,
            command = call.command,
            container = call.container_id,
            "CNI plugin succeeded"
        );
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match serde_json::from_str::<CniErrorJson>(&stdout) {
        Ok(e) => Err(CniFailure::Plugin {
            code: e.code,
            msg: e.msg,
            details: if e.details.is_empty() {
                stderr
            } else {
                e.details
            },
        }),
        Err(_) => Err(CniFailure::Plugin {
            code: 999,
            msg: format!(
                "CNI plugin {} {} failed ({})",
                call.plugin_type, call.command, out.status
            ),
            details: format!("stdout: {} stderr: {stderr}", stdout.trim()),
        }),
    }
}
