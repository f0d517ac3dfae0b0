//! Test helpers (not part of the API): a real `docker-registry` on loopback and a tiny
//! busybox image built on the fly from the host's static `/usr/bin/busybox` (Debian's
//! `busybox-static`), pushed with `oci-client`. Used by this module's tests and by the
//! host's integration tests in `host/tests/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OCI_IMAGE_MEDIA_TYPE;
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::{Client, Reference};

use super::sha256_digest;

/// The busybox applets the test image links to `/bin/busybox`.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ash",
    "httpd",
    "sleep",
    "cat",
    "echo",
    "wget",
    "ls",
    "ps",
    "kill",
    "true",
    "false",
    "env",
    "id",
    "mkdir",
    "rm",
    "touch",
    "dd",
    "head",
    "tail",
    "grep",
    "sed",
    "hostname",
    "nc",
    "printf",
    "test",
    "[",
    "yes",
    "date",
    "pwd",
    "stat",
    "mount",
    "uname",
    "whoami",
    "seq",
    "sync",
    "wc",
    "cut",
    "tr",
    "sort",
    "uniq",
    "tee",
    "chmod",
    "chown",
    "cp",
    "mv",
    "ln",
    "readlink",
    "realpath",
    "find",
    "xargs",
    "du",
    "df",
    "free",
    "top",
    "vi",
    "ip",
    "ifconfig",
    "ping",
    "netstat",
    "nslookup",
    "timeout",
    "trap",
    "expr",
    "basename",
    "dirname",
    "md5sum",
    "sha256sum",
];

/// The static busybox binary (`TUG_BUSYBOX` overrides `/usr/bin/busybox`).
pub fn busybox_binary() -> Result<PathBuf> {
    let path = std::env::var_os("TUG_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/busybox"));
    if !path.is_file() {
        bail!(
            "{} is missing: run scripts/setup.sh (it installs Debian's busybox-static)",
            path.display()
        );
    }
    Ok(path)
}

/// A small image, built in memory.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The layer tar (uncompressed).
    pub layer_tar: Vec<u8>,
    /// The layer tar, gzip-compressed (what is pushed).
    pub layer_gz: Vec<u8>,
    /// The image config JSON.
    pub config: Vec<u8>,
    /// The OCI image manifest JSON (config + the gzip layer).
    pub manifest: Vec<u8>,
}

impl BuiltImage {
    /// `sha256:` digest of the manifest.
    pub fn digest(&self) -> String {
        sha256_digest(&self.manifest)
    }

    /// `sha256:` digest of the config (the image id).
    pub fn id(&self) -> String {
        sha256_digest(&self.config)
    }

    /// Writes an OCI image layout tarball naming the image `name` (a full reference).
    pub fn write_oci_layout(&self, path: &Path, name: &str) -> Result<()> {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "digest": self.digest(),
                "size": self.manifest.len(),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap_or("latest"),
                }
            }]
        });
        let mut tar = tar::Builder::new(Vec::new());
        append_file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        append_file(&mut tar, "index.json", &serde_json::to_vec(&index)?)?;
        for blob in [&self.manifest, &self.config, &self.layer_gz] {
            let hex = sha256_digest(blob)["sha256:".len()..].to_string();
            append_file(&mut tar, &format!("blobs/sha256/{hex}"), blob)?;
        }
        std::fs::write(path, tar.into_inner()?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Writes a `docker save`-style archive (uncompressed layer) tagged `repo_tag`.
    pub fn write_docker_archive(&self, path: &Path, repo_tag: &str) -> Result<()> {
        let config_hex = &sha256_digest(&self.config)["sha256:".len()..];
        let layer_hex = &sha256_digest(&self.layer_tar)["sha256:".len()..];
        let manifest = serde_json::json!([{
            "Config": format!("{config_hex}.json"),
            "RepoTags": [repo_tag],
            "Layers": [format!("{layer_hex}/layer.tar")],
        }]);
        let mut tar = tar::Builder::new(Vec::new());
        append_file(&mut tar, "manifest.json", &serde_json::to_vec(&manifest)?)?;
        append_file(&mut tar, &format!("{config_hex}.json"), &self.config)?;
        append_file(&mut tar, &format!("{layer_hex}/layer.tar"), &self.layer_tar)?;
        std::fs::write(path, tar.into_inner()?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

fn append_file(tar: &mut tar::Builder<Vec<u8>>, path: &str, body: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(body.len() as u64);
    h.set_mtime(1_700_000_000);
    tar.append_data(&mut h, path, body)?;
    Ok(())
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_size(0);
    h.set_mtime(1_700_000_000);
    tar.append_data(&mut h, path, std::io::empty())?;
    Ok(())
}

/// The busybox image: `/bin/busybox` plus applet symlinks, `/etc/passwd`, `/etc/group`,
/// `/tmp`; `Cmd ["sh"]`.
pub fn busybox_image() -> Result<BuiltImage> {
    let binary = std::fs::read(busybox_binary()?).context("reading busybox")?;
    let mut tar = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("var/", 0o755),
        ("var/www/", 0o755),
        ("root/", 0o700),
    ] {
        append_dir(&mut tar, dir, mode)?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_size(binary.len() as u64);
    h.set_mtime(1_700_000_000);
    tar.append_data(&mut h, "bin/busybox", binary.as_slice())?;
    for applet in BUSYBOX_APPLETS {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    append_file(
        &mut tar,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    append_file(&mut tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")?;
    append_file(&mut tar, "var/www/index.html", b"hello from tugboat\n")?;
    let layer_tar = tar.into_inner()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer_tar)?;
    let layer_gz = gz.finish()?;
    let (arch, variant) = super::pull::host_platform();
    let mut config = serde_json::json!({
        "created": "2023-11-14T22:13:20Z",
        "architecture": arch,
        "os": "linux",
        "config": {
            "Cmd": ["sh"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer_tar)]},
        "history": [{"created_by": "tugboat testutil"}],
    });
    if let Some(v) = variant {
        config["variant"] = v.into();
    }
    let config = serde_json::to_vec(&config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256_digest(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha256_digest(&layer_gz),
            "size": layer_gz.len(),
        }],
    }))?;
    Ok(BuiltImage {
        layer_tar,
        layer_gz,
        config,
        manifest,
    })
}

/// A plain-HTTP client for a loopback test registry.
fn test_client() -> Result<Client> {
    Client::try_from(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    })
    .context("creating the OCI client")
}

/// Pushes `image` to `registry/repo:tag` (plain HTTP; a loopback test registry) and returns
/// the manifest digest.
pub async fn push_image(
    registry: &str,
    repo: &str,
    tag: &str,
    image: &BuiltImage,
) -> Result<String> {
    let reference: Reference = format!("{registry}/{repo}:{tag}")
        .parse()
        .map_err(|e| anyhow!("invalid reference {registry}/{repo}:{tag}: {e}"))?;
    let client = test_client()?;
    client
        .store_auth_if_needed(reference.resolve_registry(), &OciAuth::Anonymous)
        .await;
    client
        .push_blob(
            &reference,
            image.layer_gz.clone(),
            &sha256_digest(&image.layer_gz),
        )
        .await
        .context("pushing the layer")?;
    client
        .push_blob(
            &reference,
            image.config.clone(),
            &sha256_digest(&image.config),
        )
        .await
        .context("pushing the config")?;
    client
        .push_manifest_raw(
            &reference,
            image.manifest.clone(),
            hyper::http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .context("pushing the manifest")?;
    Ok(image.digest())
}

/// Builds the busybox image and pushes it to `registry/repo:tag` (e.g. `127.0.0.1:5000`,
/// `busybox`, `1`); returns the manifest digest.
pub async fn push_busybox_image(registry: &str, repo: &str, tag: &str) -> Result<String> {
    let image = tokio::task::spawn_blocking(busybox_image).await??;
    push_image(registry, repo, tag, &image).await
}

/// The registry binary of Debian's `docker-registry` package (`TUG_DOCKER_REGISTRY`
/// overrides it).
pub fn registry_binary() -> Result<PathBuf> {
    let path = std::env::var_os("TUG_DOCKER_REGISTRY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"));
    if !path.exists() {
        bail!(
            "{} is missing: run scripts/setup.sh (it installs Debian's docker-registry)",
            path.display()
        );
    }
    Ok(path)
}

/// A `docker-registry serve` process on a free loopback port with its own storage; the
/// process is killed and the directory removed on drop.
pub struct TestRegistry {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("addr", &self.addr)
            .finish()
    }
}

impl TestRegistry {
    /// Starts one (retrying if the free port found was taken in between).
    pub fn start() -> Result<TestRegistry> {
        let mut last = anyhow!("not started");
        for _ in 0..5 {
            match TestRegistry::try_start() {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last.context("could not start docker-registry"))
    }

    fn try_start() -> Result<TestRegistry> {
        let dir = tempfile::Builder::new().prefix("tug-registry-").tempdir()?;
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let storage = dir.path().join("storage");
        let config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n\
             health:\n  storagedriver:\n    enabled: false\n",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let binary = registry_binary()?;
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let mut registry = TestRegistry {
            addr,
            child: Some(child),
            dir,
        };
        registry.wait_ready()?;
        Ok(registry)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Waits until `GET /v2/` answers 200.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("it exited with {status}: {}", self.log());
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
                    && answer.starts_with("HTTP/1.1 200")
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("not ready after 20s: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The file the registry keeps a blob in (to corrupt it in tests).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(hex.get(..2).unwrap_or(hex))
            .join(hex)
            .join("data")
    }

    /// Stops the registry now (to test an unreachable registry).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- docker-registry log ---\n{}", self.log());
        }
    }
}
