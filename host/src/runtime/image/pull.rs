//! Pulling an image from a registry with `oci-client`: manifests (a multi-arch index
//! resolved to the host's platform), then the config and layer blobs, each streamed to a
//! temporary file while hashed, verified and renamed into the store, then unpacked once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor,
};
use oci_client::secrets::RegistryAuth as OciAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::reference::check_sha256;
use super::registries::{Endpoint, registry_host};
use super::{
    ConfigFile, Image, ImageError, ImageRecord, ImageStore, PullProgress, RegistryAuth,
    now_rfc3339, sha256_digest,
};

/// Manifests larger than this are refused (real ones are a few KiB).
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Image configs larger than this are refused.
const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Layers fetched at the same time.
const PARALLEL_LAYERS: usize = 3;
const USER_AGENT: &str = concat!("tugboat/", env!("CARGO_PKG_VERSION"));
const ACCEPTED: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// Pulls `reference` from its endpoints (mirrors first, then the registry itself).
pub(super) async fn pull(
    store: &ImageStore,
    reference: &Reference,
    auth: &[RegistryAuth],
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<Image, ImageError> {
    let endpoints = store.registries.endpoints(reference.registry());
    let mut last = None;
    for endpoint in &endpoints {
        match pull_from(store, reference, endpoint, auth, progress).await {
            Ok(image) => return Ok(image),
            // A mirror that is down or lacks the image: try the next endpoint.
            Err(e @ (ImageError::Unreachable(_) | ImageError::NotFound(_))) if endpoint.mirror => {
                tracing::info!(endpoint = %endpoint.host, reference = %reference, "mirror failed: {e}");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        ImageError::Unreachable(format!("no endpoint to pull {reference} from"))
    }))
}

/// The credentials for `endpoint`: a pull secret for its host (or, for the registry's own
/// endpoint, for the registry), else the registries file's.
fn credentials(reference: &Reference, endpoint: &Endpoint, auth: &[RegistryAuth]) -> OciAuth {
    let host = registry_host(&endpoint.host);
    let registry = registry_host(reference.registry());
    let secret = auth
        .iter()
        .find(|a| registry_host(&a.registry) == host)
        .or_else(|| {
            (!endpoint.mirror)
                .then(|| auth.iter().find(|a| registry_host(&a.registry) == registry))
                .flatten()
        });
    match (secret, &endpoint.auth) {
        (Some(a), _) => OciAuth::Basic(a.username.clone(), a.password.clone()),
        (None, Some((u, p))) => OciAuth::Basic(u.clone(), p.clone()),
        (None, None) => OciAuth::Anonymous,
    }
}

fn client(endpoint: &Endpoint) -> Result<Client, ImageError> {
    let mut certs = Vec::new();
    for file in &endpoint.ca_files {
        let data = std::fs::read(file)
            .map_err(|e| ImageError::io(format!("reading CA file {}", file.display()), e))?;
        certs.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        });
    }
    let config = ClientConfig {
        protocol: if endpoint.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        extra_root_certificates: certs,
        accept_invalid_certificates: endpoint.insecure_skip_verify,
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    };
    Client::try_from(config)
        .map_err(|e| ImageError::Invalid(format!("creating the registry client: {e}")))
}

async fn pull_from(
    store: &ImageStore,
    reference: &Reference,
    endpoint: &Endpoint,
    auth: &[RegistryAuth],
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<Image, ImageError> {
    let client = client(endpoint)?;
    let mut image_ref = reference.clone();
    if endpoint.mirror {
        image_ref.set_mirror_registry(endpoint.host.clone());
    }
    let oci_auth = credentials(reference, endpoint, auth);
    let name = reference.whole();
    progress(PullProgress::Resolving);

    // The manifest (through an index if the image is multi-platform).
    let (body, _) = client
        .pull_manifest_raw(&image_ref, &oci_auth, ACCEPTED)
        .await
        .map_err(|e| map_error(e, &name))?;
    let top_digest = verified_manifest(&body, reference.digest(), &name)?;
    let mut pin = store.pin();
    pin.add(&top_digest);
    store.write_small_blob(&top_digest, &body)?;
    let mut manifest_body = body;
    let mut manifest_digest = top_digest.clone();
    for _ in 0..2 {
        let Some(child) = select_platform(&manifest_body, &name)? else {
            break;
        };
        let child_ref = image_ref.clone_with_digest(child.clone());
        let (body, _) = client
            .pull_manifest_raw(&child_ref, &oci_auth, ACCEPTED)
            .await
            .map_err(|e| map_error(e, &name))?;
        verified_manifest(&body, Some(&child), &name)?;
        pin.add(&child);
        store.write_small_blob(&child, &body)?;
        manifest_body = body;
        manifest_digest = child;
    }
    let manifest = parse_manifest(&manifest_body, &name)?;
    tracing::debug!(reference = %name, manifest = %manifest_digest, layers = manifest.layers.len(), "resolved");

    // The config.
    pin.add(&manifest.config.digest);
    let config_size = descriptor_size(&manifest.config, &name)?;
    if config_size > MAX_CONFIG_BYTES {
        return Err(ImageError::Invalid(format!(
            "the config of {name} is {config_size} bytes, over the limit of {MAX_CONFIG_BYTES}"
        )));
    }
    let config_path = store.blob_path(&manifest.config.digest);
    if !config_path.is_file() {
        download(store, &client, &image_ref, &manifest.config, &name).await?;
    }
    let config_bytes = std::fs::read(&config_path)
        .map_err(|e| ImageError::io(format!("reading {}", config_path.display()), e))?;
    let config = ConfigFile::parse(&config_bytes)?;
    if !config.os.is_empty() && config.os != "linux" {
        return Err(ImageError::Invalid(format!(
            "{name} is an image for {}/{}, not linux",
            config.os, config.architecture
        )));
    }
    if let Some(rootfs) = &config.rootfs
        && !rootfs.diff_ids.is_empty()
        && rootfs.diff_ids.len() != manifest.layers.len()
    {
        return Err(ImageError::Invalid(format!(
            "{name}: the manifest has {} layers, the config {} diff ids",
            manifest.layers.len(),
            rootfs.diff_ids.len()
        )));
    }

    // The layers, a few at a time.
    progress(PullProgress::Pulling {
        layers: manifest.layers.len(),
    });
    let mut size = config_size;
    for layer in &manifest.layers {
        pin.add(&layer.digest);
        size += descriptor_size(layer, &name)?;
    }
    // (A hand-rolled loop rather than stream combinators over closures: those make the
    // future fail the `Send` check under `tokio::spawn` on current compilers.)
    let mut pending = manifest.layers.iter();
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        while running.len() < PARALLEL_LAYERS {
            let Some(layer) = pending.next() else { break };
            running.push(fetch_layer(
                store, &client, &image_ref, layer, &name, progress,
            ));
        }
        match running.next().await {
            Some(result) => result?,
            None => break,
        }
    }

    let record = ImageRecord {
        digest: top_digest,
        id: manifest.config.digest.clone(),
        config: config.image_config(),
        layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        size,
        created: now_rfc3339(),
    };
    let image = store.record(record, std::slice::from_ref(&name))?;
    tracing::info!(reference = %name, digest = %image.digest, bytes = size, "pulled image");
    Ok(image)
}

/// Makes one layer present: downloaded (unless its blob is there) and unpacked.
async fn fetch_layer(
    store: &ImageStore,
    client: &Client,
    image_ref: &Reference,
    layer: &OciDescriptor,
    name: &str,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<(), ImageError> {
    if !store.layer_dir(&layer.digest).is_dir() {
        if !store.blob_path(&layer.digest).is_file() {
            download(store, client, image_ref, layer, name).await?;
        }
        store.ensure_unpacked(&layer.digest).await?;
    }
    progress(PullProgress::Layer {
        digest: layer.digest.clone(),
        bytes: u64::try_from(layer.size).unwrap_or(0),
    });
    Ok(())
}

/// Checks a manifest's size and (when pinned) digest; returns its digest.
fn verified_manifest(body: &[u8], pinned: Option<&str>, name: &str) -> Result<String, ImageError> {
    if body.len() > MAX_MANIFEST_BYTES {
        return Err(ImageError::Invalid(format!(
            "the manifest of {name} is {} bytes, over the limit of {MAX_MANIFEST_BYTES}",
            body.len()
        )));
    }
    let digest = sha256_digest(body);
    if let Some(expected) = pinned
        && expected != digest
    {
        return Err(ImageError::DigestMismatch {
            expected: expected.to_string(),
            actual: digest,
        });
    }
    Ok(digest)
}

/// The host's platform as an image index names it: (architecture, variant).
pub(super) fn host_platform() -> (&'static str, Option<&'static str>) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" => ("ppc64le", None),
        other => (other, None),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Versioned {
    #[serde(default)]
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

/// When `body` is an index (or a Docker manifest list), the digest of the manifest for the
/// host's platform; `None` for an image manifest.
pub(super) fn select_platform(body: &[u8], name: &str) -> Result<Option<String>, ImageError> {
    let v: Versioned = serde_json::from_slice(body)
        .map_err(|e| ImageError::Invalid(format!("malformed manifest of {name}: {e}")))?;
    let is_index = matches!(
        v.media_type.as_deref(),
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE)
    ) || (v.media_type.is_none() && v.manifests.is_some());
    if !is_index {
        return Ok(None);
    }
    if v.schema_version != 2 {
        return Err(ImageError::Invalid(format!(
            "unsupported index schema version {} of {name}",
            v.schema_version
        )));
    }
    let (arch, variant) = host_platform();
    let entries = v.manifests.unwrap_or_default();
    let candidates: Vec<&IndexEntry> = entries
        .iter()
        .filter(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .collect();
    let chosen = candidates
        .iter()
        .find(|e| {
            e.platform.as_ref().and_then(|p| p.variant.as_deref()) == variant || variant.is_none()
        })
        .or_else(|| candidates.first());
    match chosen {
        Some(e) => {
            check_sha256(&e.digest).map_err(ImageError::Invalid)?;
            Ok(Some(e.digest.clone()))
        }
        None => {
            let offered: Vec<String> = entries
                .iter()
                .filter_map(|e| e.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            Err(ImageError::NotFound(format!(
                "{name} has no linux/{arch} image (it has: {})",
                offered.join(", ")
            )))
        }
    }
}

/// An image manifest (OCI or Docker v2 schema 2).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Manifest {
    #[serde(default)]
    pub schema_version: u32,
    pub config: OciDescriptor,
    #[serde(default)]
    pub layers: Vec<OciDescriptor>,
}

pub(super) fn parse_manifest(body: &[u8], name: &str) -> Result<Manifest, ImageError> {
    let m: Manifest = serde_json::from_slice(body)
        .map_err(|e| ImageError::Invalid(format!("malformed manifest of {name}: {e}")))?;
    if m.schema_version != 2 {
        return Err(ImageError::Invalid(format!(
            "unsupported manifest schema version {} of {name}",
            m.schema_version
        )));
    }
    check_sha256(&m.config.digest)
        .map_err(|e| ImageError::Invalid(format!("config of {name}: {e}")))?;
    for layer in &m.layers {
        check_sha256(&layer.digest)
            .map_err(|e| ImageError::Invalid(format!("layer of {name}: {e}")))?;
        if layer.media_type.contains("nondistributable") || layer.media_type.contains("foreign") {
            if layer.urls.as_ref().is_some_and(|u| !u.is_empty()) {
                return Err(ImageError::Invalid(format!(
                    "{name} has a foreign layer {} (only pullable from its URLs)",
                    layer.digest
                )));
            }
        } else if !is_layer_media_type(&layer.media_type) {
            return Err(ImageError::Invalid(format!(
                "{name}: unsupported layer media type {:?}",
                layer.media_type
            )));
        }
    }
    Ok(m)
}

fn is_layer_media_type(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.v1.tar")
        || media_type.starts_with("application/vnd.docker.image.rootfs.diff.tar")
}

fn descriptor_size(d: &OciDescriptor, name: &str) -> Result<u64, ImageError> {
    u64::try_from(d.size)
        .map_err(|_| ImageError::Invalid(format!("{name}: blob {} has a negative size", d.digest)))
}

/// Removes a temporary file on drop unless disarmed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Streams one blob to a temporary file while hashing it, checks size and digest, and
/// renames it to `blobs/sha256/<hex>`.
async fn download(
    store: &ImageStore,
    client: &Client,
    image_ref: &Reference,
    desc: &OciDescriptor,
    name: &str,
) -> Result<(), ImageError> {
    let expected = descriptor_size(desc, name)?;
    let temp = store.temp_path("blob");
    let guard = TempFile(Some(temp.clone()));
    let mut stream = client
        .pull_blob_stream(image_ref, desc)
        .await
        .map_err(|e| map_error(e, name))?;
    let mut file = tokio::fs::File::create(&temp)
        .await
        .map_err(|e| ImageError::io(format!("creating {}", temp.display()), e))?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| map_io_error(e, name))?;
        received += chunk.len() as u64;
        if received > expected {
            return Err(ImageError::Invalid(format!(
                "blob {} of {name} is longer than the {expected} bytes its manifest declares",
                desc.digest
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| ImageError::io(format!("writing {}", temp.display()), e))?;
    }
    file.sync_all()
        .await
        .map_err(|e| ImageError::io(format!("writing {}", temp.display()), e))?;
    drop(file);
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != desc.digest {
        return Err(ImageError::DigestMismatch {
            expected: desc.digest.clone(),
            actual,
        });
    }
    if received != expected {
        return Err(ImageError::Invalid(format!(
            "blob {} of {name} is {received} bytes, its manifest says {expected}",
            desc.digest
        )));
    }
    let target = store.blob_path(&desc.digest);
    tokio::fs::rename(&temp, &target)
        .await
        .map_err(|e| ImageError::io(format!("renaming to {}", target.display()), e))?;
    std::mem::forget(guard);
    Ok(())
}

impl ImageStore {
    /// Writes a small blob (a manifest) whose digest was already checked.
    pub(super) fn write_small_blob(&self, digest: &str, body: &[u8]) -> Result<(), ImageError> {
        let target = self.blob_path(digest);
        if target.is_file() {
            return Ok(());
        }
        let temp = self.temp_path("blob");
        std::fs::write(&temp, body)
            .and_then(|()| std::fs::rename(&temp, &target))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                ImageError::io(format!("writing {}", target.display()), e)
            })
    }

    /// Moves a file whose digest is `digest` (already verified) into the blobs.
    pub(super) fn adopt_blob(&self, digest: &str, file: &Path) -> Result<(), ImageError> {
        let target = self.blob_path(digest);
        if target.is_file() {
            let _ = std::fs::remove_file(file);
            return Ok(());
        }
        std::fs::rename(file, &target)
            .map_err(|e| ImageError::io(format!("renaming to {}", target.display()), e))
    }
}

/// `error: cause: cause…`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

fn map_io_error(e: std::io::Error, name: &str) -> ImageError {
    if let Some(inner) = e.get_ref()
        && let Some(oci_client::errors::DigestError::VerificationError { expected, actual }) =
            inner.downcast_ref::<oci_client::errors::DigestError>()
    {
        return ImageError::DigestMismatch {
            expected: expected.clone(),
            actual: actual.clone(),
        };
    }
    ImageError::Unreachable(format!("{name}: reading from the registry: {}", chain(&e)))
}

/// Maps an `oci-client` error to an [`ImageError`] with a readable message.
fn map_error(e: OciDistributionError, name: &str) -> ImageError {
    use OciDistributionError as E;
    match e {
        E::RegistryError { envelope, .. } => {
            let messages: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| {
                    if e.message.is_empty() {
                        format!("{:?}", e.code)
                    } else {
                        e.message.clone()
                    }
                })
                .collect();
            let message = format!("{name}: {}", messages.join("; "));
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::ManifestBlobUnknown
                )
            }) {
                ImageError::NotFound(message)
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                ImageError::Unauthorized(message)
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::NameInvalid
                        | OciErrorCode::TagInvalid
                        | OciErrorCode::DigestInvalid
                        | OciErrorCode::ManifestInvalid
                )
            }) {
                ImageError::Invalid(message)
            } else {
                ImageError::Unreachable(message)
            }
        }
        E::ImageManifestNotFoundError(m) => ImageError::NotFound(format!("{name}: {m}")),
        E::AuthenticationFailure(m) => ImageError::Unauthorized(format!("{name}: {m}")),
        E::UnauthorizedError { url } => {
            ImageError::Unauthorized(format!("{name}: not authorized ({url})"))
        }
        E::ServerError { code, message, .. } => match code {
            404 => ImageError::NotFound(format!("{name}: {message}")),
            401 | 403 => ImageError::Unauthorized(format!("{name}: {message}")),
            _ => ImageError::Unreachable(format!("{name}: HTTP {code}: {message}")),
        },
        E::DigestError(oci_client::errors::DigestError::VerificationError { expected, actual }) => {
            ImageError::DigestMismatch { expected, actual }
        }
        E::RequestError(e) => ImageError::Unreachable(format!("{name}: {}", chain(&e))),
        E::IoError(e) => map_io_error(e, name),
        other => ImageError::Invalid(format!("{name}: {}", chain(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
            "manifests": entries,
        }))
        .unwrap()
    }

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn platform_selection() {
        let (arch, _) = host_platform();
        let body = index(serde_json::json!([
            {"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": d('a'), "size": 1,
             "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": d('b'), "size": 1,
             "platform": {"os": "windows", "architecture": arch}},
            {"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": d('c'), "size": 1,
             "platform": {"os": "linux", "architecture": arch}},
            {"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": d('e'), "size": 1,
             "platform": {"os": "unknown", "architecture": "unknown"}},
        ]));
        assert_eq!(select_platform(&body, "x").unwrap(), Some(d('c')));

        let none = index(serde_json::json!([
            {"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": d('a'), "size": 1,
             "platform": {"os": "linux", "architecture": "s390x"}},
        ]));
        let err = select_platform(&none, "x").unwrap_err();
        assert!(
            matches!(&err, ImageError::NotFound(m) if m.contains("linux/s390x")),
            "{err}"
        );

        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d('f'), "size": 2},
            "layers": []
        }))
        .unwrap();
        assert_eq!(select_platform(&manifest, "x").unwrap(), None);
        assert_eq!(
            parse_manifest(&manifest, "x").unwrap().config.digest,
            d('f')
        );
    }

    #[test]
    fn manifest_checks() {
        let bad_layer = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d('f'), "size": 2},
            "layers": [{"mediaType": "application/vnd.wasm.content.layer.v1+wasm", "digest": d('a'), "size": 3}]
        }))
        .unwrap();
        assert!(matches!(
            parse_manifest(&bad_layer, "x"),
            Err(ImageError::Invalid(_))
        ));
        let body = b"{}";
        let err = verified_manifest(body, Some(&d('a')), "x").unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }));
        assert_eq!(
            verified_manifest(body, None, "x").unwrap(),
            sha256_digest(body)
        );
    }
}
