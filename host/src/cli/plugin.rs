//! `tug plugin …`: what a plugin author needs between `cargo new` and a `Plugin` object.
//!
//! - `tug plugin build DIR` — builds a Rust plugin crate for `wasm32-wasip2` (release) and
//!   prints the component's path and digest.
//! - `tug plugin inspect FILE.wasm` — its digest, size, whether it fits the admission world,
//!   and its imports and exports (from wasmtime's component type introspection).
//! - `tug plugin push FILE.wasm REF` — pushes it to an OCI registry as a Wasm artifact and
//!   prints the pinned reference `REF@sha256:…` (what a `Plugin`'s source names).
//! - `tug plugin pull REF -o FILE` — pulls a component by its pinned reference, verified.
//!
//! Results go to stdout (one line each, for scripts); progress and diagnostics to stderr.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};

use crate::plugin::oci::{self, OciOptions, Protocol};
use crate::plugin::{PluginError, PluginManifest, PluginRuntime, RuntimeConfig};

#[derive(Subcommand, Debug)]
pub enum PluginCmd {
    /// Build a Rust plugin crate as a wasm32-wasip2 component (release profile); prints the
    /// component's path and sha256 digest.
    Build {
        /// The plugin crate's directory (where its Cargo.toml is).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Cargo's target directory (default: cargo's own choice).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Parallel compile jobs.
        #[arg(short, long)]
        jobs: Option<u32>,
    },
    /// The cluster's plugins: kind, phase, source, calls, errors, last error.
    List {
        /// The kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// A running plugin's recent log: what it printed, what it logged through the host API,
    /// and the runtime's notes on failed calls and capability violations.
    Logs {
        /// The Plugin's name.
        name: String,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        /// The kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Upload a component to the cluster's blob store; prints its digest (`sha256:…`), what
    /// a Plugin's `spec.source.blob` names.
    Upload {
        /// The component (.wasm).
        file: PathBuf,
        /// The kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Show a component's digest, size, whether it fits the admission world, and its
    /// imports and exports.
    Inspect {
        /// The component (.wasm).
        file: PathBuf,
    },
    /// Push a component to an OCI registry as a Wasm artifact; prints the pinned reference
    /// REF@sha256:… to use as a Plugin's source.
    Push {
        /// The component (.wasm).
        file: PathBuf,
        /// Where to push it: REGISTRY/REPOSITORY[:TAG] (the tag defaults to `latest`).
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Pull a component from an OCI registry, verified against its digests.
    Pull {
        /// REGISTRY/REPOSITORY@sha256:… (a tag only with --allow-tag).
        reference: String,
        /// Where to write the component.
        #[arg(short, long)]
        output: PathBuf,
        /// Accept a reference that is not pinned by digest.
        #[arg(long)]
        allow_tag: bool,
        /// The largest component accepted, in bytes.
        #[arg(long, default_value_t = oci::DEFAULT_MAX_LAYER_BYTES)]
        max_bytes: u64,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// How to reach and authenticate to the registry.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// User name for HTTP basic authentication; the password comes from
    /// TUG_REGISTRY_PASSWORD or, with --password-stdin, from standard input.
    #[arg(long, env = "TUG_REGISTRY_USERNAME")]
    pub username: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Speak plain HTTP to the registry (the default only for registries on loopback).
    #[arg(long, conflicts_with = "https")]
    pub plain_http: bool,
    /// Speak HTTPS even to a registry on loopback.
    #[arg(long)]
    pub https: bool,
    /// An extra trusted CA certificate (PEM), e.g. a private registry's; repeatable.
    #[arg(long = "ca-file")]
    pub ca_files: Vec<PathBuf>,
}

impl RegistryArgs {
    fn options(&self) -> Result<OciOptions> {
        let basic_auth = match &self.username {
            None => None,
            Some(user) => {
                let password = if self.password_stdin {
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("reading the registry password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                } else {
                    std::env::var("TUG_REGISTRY_PASSWORD").context(
                        "--username needs a password: set TUG_REGISTRY_PASSWORD or pass \
                         --password-stdin",
                    )?
                };
                Some((user.clone(), password))
            }
        };
        let protocol = match (self.plain_http, self.https) {
            (true, _) => Protocol::Http,
            (false, true) => Protocol::Https,
            (false, false) => Protocol::Auto,
        };
        let extra_root_certificates_pem = self
            .ca_files
            .iter()
            .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
            .collect::<Result<_>>()?;
        Ok(OciOptions {
            protocol,
            basic_auth,
            extra_root_certificates_pem,
            ..OciOptions::default()
        })
    }
}

/// Runs one `tug plugin` subcommand.
pub async fn run(cmd: PluginCmd) -> Result<()> {
    match cmd {
        PluginCmd::Build {
            dir,
            target_dir,
            jobs,
        } => {
            let (path, digest) =
                tokio::task::spawn_blocking(move || build(&dir, target_dir.as_deref(), jobs))
                    .await
                    .context("the build task failed")??;
            println!("{} {digest}", path.display());
            Ok(())
        }
        PluginCmd::List { kubeconfig } => {
            let body = get("/apis/tugboat.dev/v1alpha1/plugins", kubeconfig).await?;
            let list: serde_json::Value =
                serde_json::from_slice(&body).context("the server sent no JSON plugin list")?;
            print!("{}", plugin_table(&list));
            Ok(())
        }
        PluginCmd::Logs {
            name,
            tail,
            kubeconfig,
        } => {
            let mut path = format!("/tugboat/v1/plugins/{name}/logs");
            if let Some(n) = tail {
                path.push_str(&format!("?tail={n}"));
            }
            let body = get(&path, kubeconfig).await?;
            print!("{}", String::from_utf8_lossy(&body));
            Ok(())
        }
        PluginCmd::Upload { file, kubeconfig } => {
            let bytes = read_component(&file).await?;
            let digest = upload(&bytes, kubeconfig).await?;
            println!("{digest}");
            Ok(())
        }
        PluginCmd::Inspect { file } => {
            let bytes = read_component(&file).await?;
            let report = tokio::task::spawn_blocking(move || inspect(&file, &bytes))
                .await
                .context("the inspect task failed")??;
            print!("{report}");
            Ok(())
        }
        PluginCmd::Push {
            file,
            reference,
            registry,
        } => {
            let opts = registry.options()?;
            let bytes = read_component(&file).await?;
            let digest = oci::push(&reference, &bytes, &opts)
                .await
                .with_context(|| format!("pushing {} to {reference}", file.display()))?;
            println!("{}@{digest}", strip_digest(&reference));
            Ok(())
        }
        PluginCmd::Pull {
            reference,
            output,
            allow_tag,
            max_bytes,
            registry,
        } => {
            let opts = OciOptions {
                allow_tags: allow_tag,
                max_layer_bytes: max_bytes,
                ..registry.options()?
            };
            let pulled = oci::pull_artifact(&reference, &opts)
                .await
                .with_context(|| format!("pulling {reference}"))?;
            write_atomically(&output, &pulled.bytes).await?;
            eprintln!(
                "wrote {} ({} bytes) from {}",
                output.display(),
                pulled.bytes.len(),
                pulled.pinned_reference
            );
            println!("{}", pulled.digest);
            Ok(())
        }
    }
}

/// `REF` without a trailing `@digest` (a push target never has one; be lenient in printing).
fn strip_digest(reference: &str) -> &str {
    let reference = reference.trim();
    reference.split_once('@').map_or(reference, |(r, _)| r)
}

async fn read_component(file: &Path) -> Result<Vec<u8>> {
    let meta = tokio::fs::metadata(file)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    if meta.len() > oci::DEFAULT_MAX_LAYER_BYTES {
        bail!(
            "{} is {} bytes, over the limit of {} bytes",
            file.display(),
            meta.len(),
            oci::DEFAULT_MAX_LAYER_BYTES
        );
    }
    tokio::fs::read(file)
        .await
        .with_context(|| format!("reading {}", file.display()))
}

/// Writes next to the destination, then renames: a failed pull never leaves half a file.
async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let path = path.to_path_buf();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        tmp.write_all(&bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .with_context(|| format!("writing {}", tmp.path().display()))?;
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })
    .await
    .context("the write task failed")?
}

/// Builds the crate in `dir` for `wasm32-wasip2` (release) and returns the component it
/// produced and its digest.
pub fn build(
    dir: &Path,
    target_dir: Option<&Path>,
    jobs: Option<u32>,
) -> Result<(PathBuf, String)> {
    let manifest = dir.join("Cargo.toml");
    let manifest = manifest
        .canonicalize()
        .with_context(|| format!("{} is not a Rust crate", dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--target",
        "wasm32-wasip2",
        "--release",
        "--message-format=json-render-diagnostics",
        "--manifest-path",
    ])
    .arg(&manifest);
    if let Some(t) = target_dir {
        cmd.arg("--target-dir").arg(t);
    }
    if let Some(j) = jobs {
        cmd.arg("--jobs").arg(j.to_string());
    }
    let out = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", Path::new(&cargo).display()))?;
    if !out.status.success() {
        bail!(
            "cargo build --target wasm32-wasip2 --release failed in {} ({})",
            dir.display(),
            out.status
        );
    }
    let mut wasm = None;
    for line in out.stdout.split(|&b| b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let same_crate = msg["manifest_path"]
            .as_str()
            .and_then(|p| Path::new(p).canonicalize().ok())
            .is_some_and(|p| p == manifest);
        if !same_crate {
            continue;
        }
        if let Some(files) = msg["filenames"].as_array() {
            for f in files.iter().filter_map(|f| f.as_str()) {
                if f.ends_with(".wasm") {
                    wasm = Some(PathBuf::from(f));
                }
            }
        }
    }
    let Some(wasm) = wasm else {
        bail!(
            "cargo produced no .wasm for {}: a plugin crate has `crate-type = [\"cdylib\"]`",
            manifest.display()
        );
    };
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    if !wasmparser::Parser::is_component(&bytes) {
        bail!(
            "{} is a core module, not a component: build with a Rust toolchain that has the \
             wasm32-wasip2 target",
            wasm.display()
        );
    }
    eprintln!("built {} ({} bytes)", wasm.display(), bytes.len());
    Ok((wasm, oci::sha256_digest(&bytes)))
}

/// The report of `tug plugin inspect`: digest, size, fit with the admission world, imports
/// and exports. Compiles the component (call from a blocking context).
pub fn inspect(file: &Path, bytes: &[u8]) -> Result<String> {
    use std::fmt::Write as _;

    let cache = tempfile::tempdir().context("creating a scratch directory")?;
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        max_instances: 1,
        ..RuntimeConfig::default()
    })?;
    let name = file
        .file_stem()
        .map_or_else(|| "plugin".into(), |s| s.to_string_lossy());
    let (component, _, _) = runtime
        .compile(&name, bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a valid component", file.display()))?;
    let engine = runtime.engine();
    let ty = component.component_type();

    let mut out = String::new();
    let _ = writeln!(out, "file:    {}", file.display());
    let _ = writeln!(out, "digest:  {}", oci::sha256_digest(bytes));
    let _ = writeln!(out, "size:    {} bytes", bytes.len());
    // Loading hits the cache the compile just filled.
    let fit = match runtime.load(&name, bytes, PluginManifest::default()) {
        Ok(_) => "fits tugboat:plugin/admission@0.1.0".to_string(),
        Err(PluginError::Incompatible { message, .. }) => {
            format!("does not fit tugboat:plugin/admission@0.1.0: {message}")
        }
        Err(e) => format!("not loadable as an admission plugin: {e}"),
    };
    let _ = writeln!(out, "world:   {fit}");
    let _ = writeln!(out, "imports:");
    for (name, item) in ty.imports(engine) {
        render_item(&mut out, engine, name, &item.ty, 1);
    }
    let _ = writeln!(out, "exports:");
    for (name, item) in ty.exports(engine) {
        render_item(&mut out, engine, name, &item.ty, 1);
    }
    Ok(out)
}

fn render_item(
    out: &mut String,
    engine: &wasmtime::Engine,
    name: &str,
    item: &ComponentItem,
    indent: usize,
) {
    use std::fmt::Write as _;
    let pad = "  ".repeat(indent);
    let _ = match item {
        ComponentItem::ComponentFunc(f) => writeln!(out, "{pad}{name}: {}", render_func(f)),
        ComponentItem::ComponentInstance(i) => {
            let _ = writeln!(out, "{pad}{name}: interface");
            for (n, e) in i.exports(engine) {
                render_item(out, engine, n, &e.ty, indent + 1);
            }
            Ok(())
        }
        ComponentItem::Component(_) => writeln!(out, "{pad}{name}: component"),
        ComponentItem::Module(_) => writeln!(out, "{pad}{name}: core module"),
        ComponentItem::CoreFunc(_) => writeln!(out, "{pad}{name}: core func"),
        ComponentItem::Resource(_) => writeln!(out, "{pad}{name}: resource"),
        ComponentItem::Type(t) => writeln!(out, "{pad}{name}: type {}", render_type(t, 0)),
    };
}

fn render_func(f: &ComponentFunc) -> String {
    let params: Vec<String> = f
        .params()
        .map(|(n, t)| format!("{n}: {}", render_type(&t, 1)))
        .collect();
    let results: Vec<String> = f.results().map(|t| render_type(&t, 1)).collect();
    let prefix = if f.async_() { "async func" } else { "func" };
    match results.as_slice() {
        [] => format!("{prefix}({})", params.join(", ")),
        [one] => format!("{prefix}({}) -> {one}", params.join(", ")),
        many => format!("{prefix}({}) -> ({})", params.join(", "), many.join(", ")),
    }
}

/// A WIT-like rendering of a type; aggregates deeper than two levels are abbreviated (the
/// component model's types are structural, so records have no names to print).
fn render_type(ty: &Type, depth: usize) -> String {
    const MAX_DEPTH: usize = 2;
    let inner = |t: &Type| render_type(t, depth + 1);
    let list = |items: Vec<String>| items.join(", ");
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
        Type::List(l) => format!("list<{}>", inner(&l.ty())),
        Type::FixedLengthList(l) => format!("list<{}, {}>", inner(&l.ty()), l.len()),
        Type::Map(m) => format!("map<{}, {}>", inner(&m.key()), inner(&m.value())),
        Type::Option(o) => format!("option<{}>", inner(&o.ty())),
        Type::Result(r) => match (r.ok(), r.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", inner(&ok)),
            (None, Some(err)) => format!("result<_, {}>", inner(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", inner(&ok), inner(&err)),
        },
        Type::Tuple(t) => format!("tuple<{}>", list(t.types().map(|t| inner(&t)).collect())),
        Type::Record(r) if depth >= MAX_DEPTH => {
            format!("record {{ {} fields }}", r.fields().len())
        }
        Type::Record(r) => format!(
            "record {{ {} }}",
            list(
                r.fields()
                    .map(|f| format!("{}: {}", f.name, inner(&f.ty)))
                    .collect()
            )
        ),
        Type::Variant(v) if depth >= MAX_DEPTH => {
            format!("variant {{ {} cases }}", v.cases().len())
        }
        Type::Variant(v) => format!(
            "variant {{ {} }}",
            list(
                v.cases()
                    .map(|c| match &c.ty {
                        Some(t) => format!("{}({})", c.name, inner(t)),
                        None => c.name.to_string(),
                    })
                    .collect()
            )
        ),
        Type::Enum(e) => format!("enum {{ {} }}", list(e.names().map(String::from).collect())),
        Type::Flags(f) => format!(
            "flags {{ {} }}",
            list(f.names().map(String::from).collect())
        ),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(f) => match f.ty() {
            Some(t) => format!("future<{}>", inner(&t)),
            None => "future".into(),
        },
        Type::Stream(s) => match s.ty() {
            Some(t) => format!("stream<{}>", inner(&t)),
            None => "stream".into(),
        },
    }
}

/// The server, CA and token of the current context of a kubeconfig.
fn cluster_from_kubeconfig(path: Option<PathBuf>) -> Result<(String, String, String)> {
    use base64::Engine;
    let path = path
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
        .context("no kubeconfig: pass --kubeconfig or set KUBECONFIG")?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let kc: serde_json::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let current = kc["current-context"].as_str().unwrap_or("");
    let named = |list: &str, name: &str| {
        kc[list]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"].as_str() == Some(name)).cloned())
            .unwrap_or(serde_json::Value::Null)
    };
    let ctx = named("contexts", current);
    let cluster = named("clusters", ctx["context"]["cluster"].as_str().unwrap_or(""));
    let user = named("users", ctx["context"]["user"].as_str().unwrap_or(""));
    let server = cluster["cluster"]["server"]
        .as_str()
        .context("the kubeconfig names no server")?;
    let addr = server
        .strip_prefix("https://")
        .context("only https servers are supported")?
        .trim_end_matches('/')
        .to_string();
    let ca = cluster["cluster"]["certificate-authority-data"]
        .as_str()
        .context("the kubeconfig has no certificate-authority-data")?;
    let ca = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(ca.trim())?)?;
    let token = user["user"]["token"]
        .as_str()
        .context("the kubeconfig's user has no token")?;
    Ok((addr, ca, token.to_string()))
}

/// GET a path of the cluster; the body of a 200, else the Status message as an error.
async fn get(path: &str, kubeconfig: Option<PathBuf>) -> Result<Vec<u8>> {
    let (addr, ca, token) = cluster_from_kubeconfig(kubeconfig)?;
    let mut client = crate::bench::Client::connect(&addr, &ca, &token)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (code, body) = client.request("GET", path, None).await?;
    if code != 200 {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        anyhow::bail!(
            "{}",
            v["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("the server answered {code}"))
        );
    }
    Ok(body.to_vec())
}

/// `tug plugin list`'s table.
fn plugin_table(list: &serde_json::Value) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "KIND".into(),
        "PHASE".into(),
        "SOURCE".into(),
        "CALLS".into(),
        "ERRORS".into(),
        "LAST ERROR".into(),
    ]];
    for p in list["items"].as_array().into_iter().flatten() {
        let s = |ptr: &str| {
            p.pointer(ptr)
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default()
        };
        let source = if let Some(b) = p.pointer("/spec/source/builtin").and_then(|v| v.as_str()) {
            format!("builtin:{b}")
        } else if let Some(o) = p.pointer("/spec/source/oci").and_then(|v| v.as_str()) {
            o.to_string()
        } else {
            s("/spec/source/blob")
        };
        let mut last = s("/status/lastError").replace('\n', " ");
        if last.chars().count() > 60 {
            last = last.chars().take(57).collect::<String>() + "...";
        }
        rows.push([
            s("/metadata/name"),
            s("/spec/kind"),
            s("/status/phase"),
            source,
            s("/status/calls"),
            s("/status/errors"),
            last,
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// PUT a component to the server's blob store.
async fn upload(bytes: &[u8], kubeconfig: Option<PathBuf>) -> Result<String> {
    let (addr, ca, token) = cluster_from_kubeconfig(kubeconfig)?;
    let mut client = crate::bench::Client::connect(&addr, &ca, &token)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (code, body) = client
        .request("PUT", "/tugboat/v1/blobs", Some(bytes.to_vec()))
        .await?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    if code != 201 {
        anyhow::bail!(
            "the server refused the upload ({code}): {}",
            v["message"].as_str().unwrap_or("no message")
        );
    }
    v["digest"]
        .as_str()
        .map(str::to_string)
        .context("the server answered no digest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_table_shows_source_and_status() {
        let list = serde_json::json!({"items": [
            {"metadata": {"name": "ns-life"}, "spec": {"kind": "admission", "source": {"builtin": "namespace-lifecycle"}},
             "status": {"phase": "Ready", "calls": 12, "errors": 0}},
            {"metadata": {"name": "mine"}, "spec": {"kind": "controller", "source": {"blob": "sha256:ab"}},
             "status": {"phase": "Degraded", "calls": 3, "errors": 3, "lastError": "plugin mine trapped"}},
        ]});
        let t = plugin_table(&list);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].contains("builtin:namespace-lifecycle") && lines[1].contains("Ready"));
        assert!(lines[2].contains("Degraded") && lines[2].ends_with("plugin mine trapped"));
    }

    #[test]
    fn strip_digest_keeps_the_repository_and_tag() {
        assert_eq!(strip_digest("r:5000/p:v1"), "r:5000/p:v1");
        assert_eq!(strip_digest(" r:5000/p:v1@sha256:ab "), "r:5000/p:v1");
    }

    #[test]
    fn a_password_is_required_with_a_user_name() {
        let args = RegistryArgs {
            username: Some("u".into()),
            ..RegistryArgs::default()
        };
        if std::env::var_os("TUG_REGISTRY_PASSWORD").is_none() {
            let err = args.options().unwrap_err().to_string();
            assert!(err.contains("TUG_REGISTRY_PASSWORD"), "{err}");
        }
        let opts = RegistryArgs {
            plain_http: true,
            ..RegistryArgs::default()
        }
        .options()
        .unwrap();
        assert_eq!(opts.protocol, Protocol::Http);
        assert!(opts.basic_auth.is_none() && !opts.allow_tags);
    }
}
