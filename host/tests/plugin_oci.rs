//! Plugins distributed as OCI artifacts, against a real registry: Debian's `docker-registry`
//! (the CNCF distribution registry, installed by `scripts/setup.sh`), one process per test on
//! a free loopback port with its own storage directory, killed on drop. The components are
//! the example policies built by `scripts/build-plugins.sh` (set `TUG_PLUGIN_WASM_DIR` to use
//! prebuilt ones; see `common/wasm.rs`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::wasm::{wasm, wasm_dir, wasm_path};
use serde_json::{Value, json};
use tugboat::plugin::oci::{self, OciOptions, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
use tugboat::plugin::{
    AdmissionPlugin, AdmissionRequest, Gvk, Gvr, NoHostApi, Operation, PluginManifest,
    PluginRuntime, RuntimeConfig, UserInfo,
};

// -------------------------------------------------------------------- registry

/// The registry binary of Debian's `docker-registry` package (`TUG_DOCKER_REGISTRY`
/// overrides it).
fn registry_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TUG_DOCKER_REGISTRY") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from("/usr/bin/docker-registry");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh (it installs Debian's docker-registry)",
        p.display()
    );
    p
}

/// A `docker-registry serve` process on a free loopback port with its own storage.
struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        Registry::start_with(None)
    }

    /// `htpasswd`: a line `user:bcrypt-hash` to require HTTP basic authentication.
    fn start_with(htpasswd: Option<&str>) -> Registry {
        let mut last_error = String::new();
        // The port is found free, then bound by the registry: retry if another process
        // took it in between.
        for _ in 0..5 {
            match Registry::try_start(htpasswd) {
                Ok(r) => return r,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start docker-registry: {last_error}");
    }

    fn try_start(htpasswd: Option<&str>) -> Result<Registry, String> {
        let dir = tempfile::Builder::new()
            .prefix("tug-registry-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?;
        let storage = dir.path().join("storage");
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n\
             health:\n  storagedriver:\n    enabled: false\n",
            storage.display()
        );
        if let Some(line) = htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{line}\n")).map_err(|e| e.to_string())?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tugboat-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(dir.path().join("registry.log")).map_err(|e| e.to_string())?;
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", registry_binary().display()))?;
        let mut registry = Registry { child, addr, dir };
        registry.wait_ready()?;
        Ok(registry)
    }

    /// Waits until `GET /v2/` answers (200, or 401 with authentication on).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited with {status}: {}", self.log()));
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let request = format!(
                    "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut answer = String::new();
                if s.write_all(request.as_bytes()).is_ok()
                    && s.read_to_string(&mut answer).is_ok()
                    && (answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 401"))
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 20s: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT/<repo>`.
    fn reference(&self, repo: &str) -> String {
        format!("{}/{repo}", self.addr)
    }

    /// The file the registry keeps a blob in.
    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- docker-registry log ---\n{}", self.log());
        }
    }
}

// -------------------------------------------------------------- admission bits

fn pod(name: &str, privileged: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [
            {"name": "app", "image": "registry.example/app:1",
             "securityContext": {"privileged": privileged}}
        ]}
    })
}

fn create(object: Value) -> AdmissionRequest {
    AdmissionRequest {
        uid: uuid::Uuid::new_v4().to_string(),
        operation: Operation::Create,
        resource: Gvr {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
        },
        kind: Gvk {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
        },
        sub_resource: None,
        namespace: Some("default".into()),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        object: Some(object),
        old_object: None,
        user: UserInfo {
            username: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
        },
        dry_run: false,
    }
}

fn sha256(bytes: &[u8]) -> String {
    oci::sha256_digest(bytes)
}

/// The error with its causes, lower-cased.
fn chain(e: &anyhow::Error) -> String {
    format!("{e:#}").to_lowercase()
}

// ----------------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_by_digest_round_trips_and_the_pulled_component_denies_privileged_pods() {
    let registry = Registry::start();
    let bytes = wasm("deny_privileged");
    let opts = OciOptions::default();
    let target = registry.reference("plugins/deny-privileged:v1");

    let manifest_digest = oci::push(&target, &bytes, &opts).await.expect("push");
    assert!(manifest_digest.starts_with("sha256:") && manifest_digest.len() == 71);

    let pinned = format!(
        "{}@{manifest_digest}",
        registry.reference("plugins/deny-privileged")
    );
    let (pulled, digest) = oci::pull(&pinned, &opts).await.expect("pull by digest");
    assert!(
        pulled == bytes,
        "the pulled component differs from the pushed one"
    );
    assert_eq!(digest, sha256(&bytes));
    // Pinned by tag and digest: the digest wins.
    let (again, _) = oci::pull(&format!("{target}@{manifest_digest}"), &opts)
        .await
        .expect("pull by tag@digest");
    assert!(again == bytes);

    // The artifact has the Wasm OCI layout, as other tools (wkg, oci-wasm) read it.
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let image: oci_client::Reference = pinned.parse().unwrap();
    let (manifest, read_digest, config) = client
        .pull_manifest_and_config(&image, &oci_client::secrets::RegistryAuth::Anonymous)
        .await
        .expect("reading the manifest back");
    assert_eq!(read_digest, manifest_digest);
    assert_eq!(
        manifest.media_type.as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(manifest.config.media_type, WASM_CONFIG_MEDIA_TYPE);
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, WASM_LAYER_MEDIA_TYPE);
    assert_eq!(manifest.layers[0].digest, sha256(&bytes));
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"], json!([sha256(&bytes)]));
    let exports = config["component"]["exports"].as_array().unwrap();
    assert!(
        exports.contains(&json!("tugboat:plugin/admission-plugin@0.1.0")),
        "{config}"
    );
    assert!(config["created"].as_str().is_some_and(|c| c.ends_with('Z')));

    // What came out of the registry loads in the sandbox and judges.
    let runtime = PluginRuntime::new(RuntimeConfig::default()).unwrap();
    let loaded = runtime
        .load("deny-privileged", &pulled, PluginManifest::default())
        .expect("loading the pulled component");
    assert_eq!(format!("sha256:{}", loaded.digest), digest);
    let plugin = AdmissionPlugin::new(loaded, Arc::new(NoHostApi));
    let denied = plugin.admit(&create(pod("bad", true))).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.status_code(), 403);
    assert_eq!(
        denied.message.as_deref(),
        Some("privileged containers are not allowed: container app")
    );
    let allowed = plugin.admit(&create(pod("good", false))).await.unwrap();
    assert!(allowed.allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_only_reference_is_refused_unless_tags_are_allowed() {
    let registry = Registry::start();
    let bytes = wasm("deny_privileged");
    let target = registry.reference("plugins/deny:v1");
    let manifest_digest = oci::push(&target, &bytes, &OciOptions::default())
        .await
        .unwrap();

    for reference in [target.clone(), registry.reference("plugins/deny")] {
        let err = oci::pull(&reference, &OciOptions::default())
            .await
            .unwrap_err();
        assert!(chain(&err).contains("not pinned by digest"), "{err:#}");
    }

    let opts = OciOptions {
        allow_tags: true,
        ..OciOptions::default()
    };
    let pulled = oci::pull_artifact(&target, &opts)
        .await
        .expect("pull by tag");
    assert!(pulled.bytes == bytes);
    assert_eq!(pulled.manifest_digest, manifest_digest);
    assert_eq!(
        pulled.pinned_reference,
        format!("{}@{manifest_digest}", registry.reference("plugins/deny"))
    );
    // An unknown tag is an error, not an empty component.
    let err = oci::pull(&registry.reference("plugins/deny:nope"), &opts)
        .await
        .unwrap_err();
    assert!(chain(&err).contains("manifest"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_digest_is_refused() {
    let registry = Registry::start();
    let bytes = wasm("deny_privileged");
    let repo = registry.reference("plugins/deny");
    let manifest_digest = oci::push(&format!("{repo}:v1"), &bytes, &OciOptions::default())
        .await
        .unwrap();
    let opts = OciOptions::default();

    // A digest the registry does not have.
    let wrong = sha256(b"some other manifest");
    let err = oci::pull(&format!("{repo}@{wrong}"), &opts)
        .await
        .unwrap_err();
    assert!(chain(&err).contains("manifest"), "{err:#}");
    // The component's own digest is not the manifest's.
    let err = oci::pull(&format!("{repo}@{}", sha256(&bytes)), &opts)
        .await
        .unwrap_err();
    assert!(chain(&err).contains("manifest"), "{err:#}");
    // The right digest in another repository.
    let err = oci::pull(
        &format!("{}@{manifest_digest}", registry.reference("plugins/other")),
        &opts,
    )
    .await
    .unwrap_err();
    assert!(chain(&err).contains("manifest"), "{err:#}");
    // Malformed digests never reach the registry.
    for bad in [
        format!("{repo}@sha256:1234"),
        format!("{repo}@sha512:{}", "ab".repeat(64)),
        format!("{repo}@{}", manifest_digest.to_uppercase()),
    ] {
        assert!(oci::pull(&bad, &opts).await.is_err(), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_tampered_with_in_the_registry_is_refused() {
    let registry = Registry::start();
    let bytes = wasm("add_label");
    let repo = registry.reference("plugins/add-label");
    let manifest_digest = oci::push(&format!("{repo}:v1"), &bytes, &OciOptions::default())
        .await
        .unwrap();
    let pinned = format!("{repo}@{manifest_digest}");
    assert!(oci::pull(&pinned, &OciOptions::default()).await.is_ok());

    // Flip one byte of the stored blob (same size): the registry serves it as it is.
    let blob = registry.blob_path(&sha256(&bytes));
    let mut stored = std::fs::read(&blob).expect("the stored layer blob");
    assert!(stored == bytes);
    let middle = stored.len() / 2;
    stored[middle] ^= 0xff;
    std::fs::write(&blob, &stored).unwrap();

    let err = oci::pull(&pinned, &OciOptions::default())
        .await
        .unwrap_err();
    assert!(chain(&err).contains("digest"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_over_the_size_cap_are_refused() {
    let registry = Registry::start();
    let bytes = wasm("deny_privileged");
    let repo = registry.reference("plugins/deny");
    let manifest_digest = oci::push(&format!("{repo}:v1"), &bytes, &OciOptions::default())
        .await
        .unwrap();
    let small = OciOptions {
        max_layer_bytes: (bytes.len() - 1) as u64,
        ..OciOptions::default()
    };
    let err = oci::pull(&format!("{repo}@{manifest_digest}"), &small)
        .await
        .unwrap_err();
    assert!(chain(&err).contains("over the limit"), "{err:#}");
    let err = oci::push(&format!("{repo}:v2"), &bytes, &small)
        .await
        .unwrap_err();
    assert!(chain(&err).contains("over the limit"), "{err:#}");
    // Exactly at the cap is fine.
    let exact = OciOptions {
        max_layer_bytes: bytes.len() as u64,
        ..OciOptions::default()
    };
    assert!(
        oci::pull(&format!("{repo}@{manifest_digest}"), &exact)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_component_is_not_pushed() {
    let registry = Registry::start();
    let repo = registry.reference("plugins/junk:v1");
    for junk in [&b"\0asm\x01\0\0\0"[..], b"not wasm at all", b""] {
        let err = oci::push(&repo, junk, &OciOptions::default())
            .await
            .unwrap_err();
        assert!(chain(&err).contains("component"), "{err:#}");
    }
    let err = oci::push(
        &format!("{}@{}", registry.reference("plugins/x"), sha256(b"x")),
        &wasm("deny_privileged"),
        &OciOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(chain(&err).contains("names a tag"), "{err:#}");
}

/// `user:s3cret`, bcrypt (the registry's htpasswd accepts only bcrypt).
const HTPASSWD: &str = "user:$2b$12$mgxzBjKJaT2oSlrNAUTQiu3vlzP1hjm/uy9Al8sRU90p0S/yj/ugm";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    let registry = Registry::start_with(Some(HTPASSWD));
    let bytes = wasm("deny_privileged");
    let target = registry.reference("plugins/deny:v1");
    let err = oci::push(&target, &bytes, &OciOptions::default())
        .await
        .unwrap_err();
    assert!(
        chain(&err).contains("401") || chain(&err).contains("unauthorized"),
        "{err:#}"
    );
    let wrong = OciOptions {
        basic_auth: Some(("user".into(), "wrong".into())),
        ..OciOptions::default()
    };
    assert!(oci::push(&target, &bytes, &wrong).await.is_err());

    let opts = OciOptions {
        basic_auth: Some(("user".into(), "s3cret".into())),
        ..OciOptions::default()
    };
    let digest = oci::push(&target, &bytes, &opts)
        .await
        .expect("authenticated push");
    let pinned = format!("{}@{digest}", registry.reference("plugins/deny"));
    assert!(oci::pull(&pinned, &OciOptions::default()).await.is_err());
    let (pulled, _) = oci::pull(&pinned, &opts).await.expect("authenticated pull");
    assert!(pulled == bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_when_asked_even_on_loopback_with_no_fallback_to_http() {
    // HTTPS asked of a plain-HTTP registry on loopback fails: no fallback to HTTP.
    let registry = Registry::start();
    let opts = OciOptions {
        protocol: oci::Protocol::Https,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        ..OciOptions::default()
    };
    let err = oci::push(
        &registry.reference("plugins/deny:v1"),
        &wasm("deny_privileged"),
        &opts,
    )
    .await
    .unwrap_err();
    // The TLS handshake fails (the client was built: rustls has a crypto provider).
    let https_url = format!("https://{}/v2/", registry.addr);
    assert!(chain(&err).contains(&https_url), "{err:#}");
    assert!(oci::is_loopback_registry(&registry.addr.to_string()));
    assert!(!oci::is_loopback_registry("ghcr.io"));
}

// ------------------------------------------------------------------------- CLI

fn tug(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tug"))
        .args(args)
        .env("TUG_LOG", "warn")
        .env_remove("TUG_REGISTRY_USERNAME")
        .env_remove("TUG_REGISTRY_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .expect("running tug")
}

fn tug_ok(args: &[&str]) -> String {
    let out = tug(args);
    assert!(
        out.status.success(),
        "tug {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn cli_push_then_pull() {
    let registry = Registry::start();
    let file = wasm_path("deny_privileged");
    let file = file.to_str().unwrap();
    let bytes = wasm("deny_privileged");
    let target = registry.reference("plugins/deny-privileged:v1");

    let pinned = tug_ok(&["plugin", "push", file, &target]);
    let pinned = pinned.trim();
    let prefix = format!("{target}@sha256:");
    assert!(
        pinned.starts_with(&prefix) && pinned.len() == prefix.len() + 64,
        "{pinned}"
    );
    assert_eq!(pinned.lines().count(), 1, "only the reference on stdout");

    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("pulled.wasm");
    let printed = tug_ok(&["plugin", "pull", pinned, "-o", out.to_str().unwrap()]);
    assert_eq!(printed.trim(), sha256(&bytes));
    assert!(std::fs::read(&out).unwrap() == bytes);

    // A tag alone is refused, and nothing is written.
    let refused = out_dir.path().join("refused.wasm");
    let failed = tug(&["plugin", "pull", &target, "-o", refused.to_str().unwrap()]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("not pinned by digest"), "{stderr}");
    assert!(!refused.exists());
    // … unless asked for.
    tug_ok(&[
        "plugin",
        "pull",
        &target,
        "--allow-tag",
        "-o",
        refused.to_str().unwrap(),
    ]);
    assert!(std::fs::read(&refused).unwrap() == bytes);
}

#[test]
fn cli_inspect_shows_digest_size_and_world() {
    let file = wasm_path("deny_privileged");
    let bytes = wasm("deny_privileged");
    let report = tug_ok(&["plugin", "inspect", file.to_str().unwrap()]);
    assert!(
        report.contains(&format!("digest:  {}", sha256(&bytes))),
        "{report}"
    );
    assert!(
        report.contains(&format!("size:    {} bytes", bytes.len())),
        "{report}"
    );
    assert!(
        report.contains("world:   fits tugboat:plugin/admission@0.1.0"),
        "{report}"
    );
    let exports = report.split("exports:").nth(1).expect("an exports section");
    assert!(
        exports.contains("tugboat:plugin/admission-plugin@0.1.0: interface"),
        "{report}"
    );
    assert!(exports.contains("admit: func("), "{report}");

    // A component of another world is reported as such, not as an error.
    let wrong = wasm_path("wrong_world");
    let report = tug_ok(&["plugin", "inspect", wrong.to_str().unwrap()]);
    assert!(report.contains("world:   does not fit"), "{report}");

    // Not a component at all: an error.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0").unwrap();
    assert!(
        !tug(&["plugin", "inspect", junk.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn cli_build_prints_the_component_and_its_digest() {
    // Built into a target directory of its own beside the one of scripts/build-plugins.sh
    // (kept between runs, so it is quick when up to date): building one crate alone
    // resolves features differently from the whole plugins workspace, and writing its
    // output over the shared .wasm files would change them under the other tests.
    let scratch = tempfile::tempdir().unwrap();
    let target_dir = if wasm_dir().ends_with("wasm32-wasip2/release") {
        let shared = wasm_dir()
            .parent()
            .and_then(Path::parent)
            .expect("<target>/wasm32-wasip2/release");
        let mut own = shared.as_os_str().to_owned();
        own.push("-cli-build");
        std::path::PathBuf::from(own)
    } else {
        scratch.path().to_path_buf()
    };
    let krate =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins/rust/deny-privileged");
    let out = tug_ok(&[
        "plugin",
        "build",
        krate.to_str().unwrap(),
        "--target-dir",
        target_dir.to_str().unwrap(),
        "-j",
        "2",
    ]);
    let (path, digest) = out.trim().split_once(' ').expect("PATH DIGEST");
    assert!(
        path.ends_with("wasm32-wasip2/release/deny_privileged.wasm"),
        "{out}"
    );
    let built = std::fs::read(path).unwrap();
    assert_eq!(digest, sha256(&built));
}

#[test]
fn cli_basic_auth_from_the_environment_or_stdin() {
    let registry = Registry::start_with(Some(HTPASSWD));
    let file = wasm_path("deny_privileged");
    let target = registry.reference("plugins/deny:v1");
    let run = |args: &[&str], password_env: Option<&str>, stdin: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tug"));
        cmd.args(args)
            .env("TUG_LOG", "warn")
            .env_remove("TUG_REGISTRY_USERNAME")
            .env_remove("TUG_REGISTRY_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = password_env {
            cmd.env("TUG_REGISTRY_PASSWORD", p);
        }
        let mut child = cmd.spawn().expect("running tug");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    };
    let file = file.to_str().unwrap();

    let anonymous = run(&["plugin", "push", file, &target], None, None);
    assert!(!anonymous.status.success());
    let no_password = run(
        &["plugin", "push", file, &target, "--username", "user"],
        None,
        None,
    );
    assert!(!no_password.status.success());
    let stderr = String::from_utf8_lossy(&no_password.stderr);
    assert!(stderr.contains("TUG_REGISTRY_PASSWORD"), "{stderr}");

    let pushed = run(
        &["plugin", "push", file, &target, "--username", "user"],
        Some("s3cret"),
        None,
    );
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let pinned = String::from_utf8(pushed.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.wasm");
    let pulled = run(
        &[
            "plugin",
            "pull",
            pinned.trim(),
            "-o",
            out.to_str().unwrap(),
            "--username",
            "user",
            "--password-stdin",
        ],
        None,
        Some("s3cret\n"),
    );
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert!(std::fs::read(&out).unwrap() == wasm("deny_privileged"));
}
