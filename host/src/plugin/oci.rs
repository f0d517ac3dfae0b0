//! Plugins distributed as OCI artifacts: a Wasm component pushed to and pulled from any
//! OCI registry, in the layout of the CNCF TAG Runtime "Wasm OCI Artifact" guide (the one
//! `wkg` and the `oci-wasm` crate use):
//!
//! - an image manifest (`application/vnd.oci.image.manifest.v1+json`) with no
//!   `artifactType` (the config media type identifies the artifact);
//! - a config blob of media type [`WASM_CONFIG_MEDIA_TYPE`]: `created`, `architecture:
//!   "wasm"`, `os: "wasip2"`, `layerDigests` and `component: {imports, exports}` (the
//!   component's top-level import and export names);
//! - exactly one layer of media type [`WASM_LAYER_MEDIA_TYPE`]: the component's bytes.
//!
//! [`pull`] trusts nothing the registry says: the reference must be pinned by digest (unless
//! [`OciOptions::allow_tags`]), the manifest must hash to that digest, its one layer must be
//! a Wasm layer no larger than [`OciOptions::max_layer_bytes`], and the layer is streamed into
//! memory under that cap and hashed; any mismatch refuses the pull. Foreign `urls` in layer
//! descriptors are never followed.
//!
//! Registries on loopback (`127.0.0.0/8`, `[::1]`, `localhost`) are spoken to over plain
//! HTTP by default, as Docker does; every other registry over HTTPS (rustls, the system's
//! roots plus [`OciOptions::extra_root_certificates_pem`]). [`Protocol`] overrides that.
//!
//! ```no_run
//! # async fn demo(wasm: Vec<u8>) -> anyhow::Result<()> {
//! use tugboat::plugin::oci::{self, OciOptions};
//! let opts = OciOptions::default();
//! let digest = oci::push("127.0.0.1:5000/plugins/deny-privileged:v1", &wasm, &opts).await?;
//! let pinned = format!("127.0.0.1:5000/plugins/deny-privileged@{digest}");
//! let (bytes, component_digest) = oci::pull(&pinned, &opts).await?;
//! assert_eq!(bytes, wasm);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures::StreamExt;
use oci_client::client::{
    Certificate, CertificateEncoding, ClientConfig, ClientProtocol, Config, ImageLayer,
};
use oci_client::manifest::{IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor};
use oci_client::manifest::{OCI_IMAGE_INDEX_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The config media type of a Wasm OCI artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the layer holding the component.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// Default cap on the size of a pulled (or pushed) component: 256 MiB. A Python component
/// carrying its interpreter is tens of MB.
pub const DEFAULT_MAX_LAYER_BYTES: u64 = 256 << 20;
/// Registries refuse manifests over 4 MiB; so do we.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
const USER_AGENT: &str = concat!("tugboat/", env!("CARGO_PKG_VERSION"));

/// How to reach the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Plain HTTP for registries on loopback (`127.0.0.0/8`, `[::1]`, `localhost`), HTTPS
    /// for every other registry.
    #[default]
    Auto,
    /// HTTPS always.
    Https,
    /// Plain HTTP always (a registry on a trusted network without TLS).
    Http,
}

/// Options of [`push`] and [`pull`].
#[derive(Clone)]
pub struct OciOptions {
    /// Accept a reference that is not pinned by digest (`registry/repo:tag`). Off by
    /// default: what runs in the cluster must be exactly what was reviewed.
    pub allow_tags: bool,
    pub protocol: Protocol,
    /// HTTP basic credentials (username, password). `None`: anonymous (with the registry's
    /// anonymous token flow when it asks for one).
    pub basic_auth: Option<(String, String)>,
    /// The largest component accepted, in bytes.
    pub max_layer_bytes: u64,
    /// Extra trusted root certificates (PEM), e.g. the CA of a private registry.
    pub extra_root_certificates_pem: Vec<Vec<u8>>,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
}

impl Default for OciOptions {
    fn default() -> Self {
        OciOptions {
            allow_tags: false,
            protocol: Protocol::Auto,
            basic_auth: None,
            max_layer_bytes: DEFAULT_MAX_LAYER_BYTES,
            extra_root_certificates_pem: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for OciOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciOptions")
            .field("allow_tags", &self.allow_tags)
            .field("protocol", &self.protocol)
            .field("username", &self.basic_auth.as_ref().map(|(u, _)| u))
            .field("max_layer_bytes", &self.max_layer_bytes)
            .field(
                "extra_root_certificates",
                &self.extra_root_certificates_pem.len(),
            )
            .finish_non_exhaustive()
    }
}

/// The config blob of a Wasm OCI artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// RFC 3339 time of the push.
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip2` for a component.
    pub os: String,
    /// The digests of the manifest's layers, in order.
    pub layer_digests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
}

/// The top-level import and export names of a component (interfaces such as
/// `tugboat:plugin/admission@0.1.0`, and bare functions).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentInfo {
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// What [`pull_artifact`] fetched.
#[derive(Debug, Clone)]
pub struct PulledComponent {
    /// The component's bytes (verified against the layer digest).
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the component's bytes (the layer digest).
    pub digest: String,
    /// `sha256:<hex>` of the manifest: what the reference is pinned to.
    pub manifest_digest: String,
    /// The reference pinned by the manifest digest (`registry/repo@sha256:…`).
    pub pinned_reference: String,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Reads a component's top-level imports and exports without compiling it. Fails on
/// anything that is not a well-formed component binary (a core module included).
pub fn component_info(wasm: &[u8]) -> Result<ComponentInfo> {
    use wasmparser::{ComponentExternalKind, ComponentTypeRef, Parser, Payload};

    ensure!(
        Parser::is_component(wasm),
        "not a WebAssembly component (a core module, or not Wasm at all); build it for \
         wasm32-wasip2 or wrap it with `wasm-tools component new`"
    );
    let mut info = ComponentInfo::default();
    // Nested modules and components come inline; only depth 0 is the component's own shape.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.context("malformed WebAssembly component")? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.context("malformed component import section")?;
                    if matches!(
                        import.ty,
                        ComponentTypeRef::Instance(_) | ComponentTypeRef::Func(_)
                    ) {
                        info.imports.push(import.name.name.to_string());
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.context("malformed component export section")?;
                    if matches!(
                        export.kind,
                        ComponentExternalKind::Instance | ComponentExternalKind::Func
                    ) {
                        info.exports.push(export.name.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

/// Pushes a Wasm component to `reference` (`registry/repo[:tag]`; the tag defaults to
/// `latest`) and returns the digest of the manifest (`sha256:<hex>`), which pins it:
/// `registry/repo@<digest>`.
pub async fn push(reference: &str, wasm: &[u8], opts: &OciOptions) -> Result<String> {
    let image = parse_reference(reference)?;
    if image.digest().is_some() {
        bail!("cannot push to {reference:?}: a push names a tag, not a digest");
    }
    let size = u64::try_from(wasm.len()).unwrap_or(u64::MAX);
    ensure!(
        size <= opts.max_layer_bytes,
        "the component is {size} bytes, over the limit of {} bytes",
        opts.max_layer_bytes
    );
    let info = component_info(wasm).context("refusing to push")?;
    let layer_digest = sha256_digest(wasm);

    let created = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string();
    let config = WasmConfig {
        created: created.clone(),
        author: None,
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer_digest.clone()],
        component: Some(info),
    };
    let config = Config::new(
        serde_json::to_vec(&config).context("encoding the artifact config")?,
        WASM_CONFIG_MEDIA_TYPE.to_string(),
        None,
    );
    let layer = ImageLayer::new(
        bytes::Bytes::copy_from_slice(wasm),
        WASM_LAYER_MEDIA_TYPE.to_string(),
        None,
    );
    let annotations = BTreeMap::from([("org.opencontainers.image.created".to_string(), created)]);
    let mut manifest =
        OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(annotations));
    manifest.media_type = Some(OCI_IMAGE_MEDIA_TYPE.to_string());
    manifest.artifact_type = None;
    let manifest_body = serde_json::to_vec(&manifest).context("encoding the manifest")?;
    let manifest_digest = sha256_digest(&manifest_body);

    let client = client(&image, opts)?;
    let target = image.whole();
    client
        .store_auth_if_needed(image.resolve_registry(), &auth(opts))
        .await;
    client
        .push_blob(&image, layer.data.clone(), &layer_digest)
        .await
        .with_context(|| format!("pushing the component layer to {target}"))?;
    client
        .push_blob(&image, config.data.clone(), &manifest.config.digest)
        .await
        .with_context(|| format!("pushing the artifact config to {target}"))?;
    let content_type = hyper::http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
    client
        .push_manifest_raw(&image, manifest_body, content_type)
        .await
        .with_context(|| format!("pushing the manifest to {target}"))?;
    tracing::info!(reference = %target, digest = %manifest_digest, component = %layer_digest, bytes = wasm.len(), "pushed plugin component");
    Ok(manifest_digest)
}

/// Pulls the component at `reference` (`registry/repo@sha256:…`, or a tag when
/// [`OciOptions::allow_tags`]) and returns its bytes with their digest (`sha256:<hex>`).
pub async fn pull(reference: &str, opts: &OciOptions) -> Result<(Vec<u8>, String)> {
    let pulled = pull_artifact(reference, opts).await?;
    Ok((pulled.bytes, pulled.digest))
}

/// [`pull`], also returning the manifest digest and the pinned reference.
pub async fn pull_artifact(reference: &str, opts: &OciOptions) -> Result<PulledComponent> {
    let image = parse_reference(reference)?;
    match image.digest() {
        Some(digest) => {
            check_sha256(digest)
                .with_context(|| format!("the digest of reference {reference:?}"))?;
        }
        None if opts.allow_tags => {}
        None => bail!(
            "reference {reference:?} is not pinned by digest: use REGISTRY/REPO@sha256:<digest> \
             (`tug plugin push` prints it), or allow tags explicitly"
        ),
    }
    let target = image.whole();
    let client = client(&image, opts)?;

    // The manifest: oci-client checks it against the reference's digest (and the registry's
    // Docker-Content-Digest header); we check again, then check its shape.
    let (body, manifest_digest) = client
        .pull_manifest_raw(
            &image,
            &auth(opts),
            &[OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE],
        )
        .await
        .with_context(|| format!("fetching the manifest of {target}"))?;
    ensure!(
        body.len() <= MAX_MANIFEST_BYTES,
        "the manifest of {target} is {} bytes, over the limit of {MAX_MANIFEST_BYTES}",
        body.len()
    );
    let computed = sha256_digest(&body);
    if let Some(pinned) = image.digest() {
        ensure!(
            computed == pinned,
            "the manifest of {target} does not match its digest: got {computed}"
        );
    } else {
        ensure!(
            computed == manifest_digest,
            "the manifest of {target} does not match the digest the registry gave ({manifest_digest})"
        );
    }
    let layer = wasm_layer(&body, opts.max_layer_bytes)
        .with_context(|| format!("{target} is not a Wasm component artifact"))?;

    // The layer: streamed into memory under the cap, hashed, compared.
    let expected = u64::try_from(layer.size).unwrap_or(u64::MAX);
    let descriptor = OciDescriptor {
        media_type: layer.media_type.clone(),
        digest: layer.digest.clone(),
        size: layer.size,
        urls: None,
        annotations: None,
        artifact_type: None,
    };
    let mut stream = client
        .pull_blob_stream(&image, &descriptor)
        .await
        .with_context(|| format!("fetching layer {} of {target}", layer.digest))?;
    if let Some(len) = stream.content_length {
        ensure!(
            len == expected,
            "the registry sends {len} bytes for layer {} of {target}, the manifest says {expected}",
            layer.digest
        );
    }
    // `expected` is at most the cap (checked by `wasm_layer`), but it comes from the registry:
    // reserve no more than 16 MiB up front.
    let mut bytes = Vec::with_capacity(usize::try_from(expected.min(16 << 20)).unwrap_or(0));
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.stream.next().await {
        let chunk = chunk.with_context(|| {
            format!(
                "reading layer {} of {target} (or it failed verification)",
                layer.digest
            )
        })?;
        let total = u64::try_from(bytes.len() + chunk.len()).unwrap_or(u64::MAX);
        ensure!(
            total <= expected && total <= opts.max_layer_bytes,
            "layer {} of {target} is longer than the {expected} bytes its manifest declares",
            layer.digest
        );
        hasher.update(&chunk);
        bytes.extend_from_slice(&chunk);
    }
    ensure!(
        u64::try_from(bytes.len()).unwrap_or(u64::MAX) == expected,
        "layer {} of {target} ended after {} of its {expected} bytes",
        layer.digest,
        bytes.len()
    );
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    ensure!(
        digest == layer.digest,
        "layer of {target} does not match its digest: the manifest says {}, the bytes hash to {digest}",
        layer.digest
    );
    ensure!(
        wasmparser::Parser::is_component(&bytes),
        "the layer of {target} is not a WebAssembly component"
    );
    let pinned_reference = format!("{}@{computed}", repository_of(&image));
    tracing::info!(reference = %target, %digest, bytes = bytes.len(), "pulled plugin component");
    Ok(PulledComponent {
        bytes,
        digest,
        manifest_digest: computed,
        pinned_reference,
    })
}

/// Checks a manifest's shape (one `application/wasm` layer under the cap, the Wasm config
/// media type) and returns its layer.
fn wasm_layer(body: &[u8], max_layer_bytes: u64) -> Result<OciDescriptor> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Versioned {
        schema_version: u32,
        #[serde(default)]
        media_type: Option<String>,
    }
    let versioned: Versioned = serde_json::from_slice(body).context("malformed manifest")?;
    ensure!(
        versioned.schema_version == 2,
        "unsupported manifest schema version {}",
        versioned.schema_version
    );
    match versioned.media_type.as_deref() {
        None | Some(OCI_IMAGE_MEDIA_TYPE) | Some(IMAGE_MANIFEST_MEDIA_TYPE) => {}
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE) => {
            bail!("it is an image index (a multi-platform image), not a single artifact")
        }
        Some(other) => bail!("unsupported manifest media type {other:?}"),
    }
    let manifest: OciImageManifest = serde_json::from_slice(body).context("malformed manifest")?;
    ensure!(
        manifest.config.media_type == WASM_CONFIG_MEDIA_TYPE,
        "its config media type is {:?}, not {WASM_CONFIG_MEDIA_TYPE:?}",
        manifest.config.media_type
    );
    let [layer] = manifest.layers.as_slice() else {
        bail!(
            "it has {} layers; a Wasm component artifact has exactly one",
            manifest.layers.len()
        );
    };
    ensure!(
        layer.media_type == WASM_LAYER_MEDIA_TYPE,
        "its layer media type is {:?}, not {WASM_LAYER_MEDIA_TYPE:?}",
        layer.media_type
    );
    check_sha256(&layer.digest).context("its layer digest")?;
    let size = u64::try_from(layer.size)
        .map_err(|_| anyhow!("its layer has a negative size {}", layer.size))?;
    ensure!(
        size <= max_layer_bytes,
        "its layer is {size} bytes, over the limit of {max_layer_bytes} bytes"
    );
    Ok(layer.clone())
}

/// Accepts exactly `sha256:` followed by 64 lowercase hex digits.
fn check_sha256(digest: &str) -> Result<()> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| anyhow!("{digest:?} is not a sha256 digest (sha256:<64 hex digits>)"))?;
    ensure!(
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{digest:?} is not a sha256 digest (sha256:<64 lowercase hex digits>)"
    );
    Ok(())
}

/// Parses an image reference, accepting a bracketed IPv6 registry (`[::1]:5000/repo:tag`),
/// which the Docker reference grammar has no room for.
pub fn parse_reference(reference: &str) -> Result<Reference> {
    let reference = reference.trim();
    let bad = |e: &dyn std::fmt::Display| anyhow!("invalid image reference {reference:?}: {e}");
    let Some(rest) = reference.strip_prefix('[') else {
        return reference.parse::<Reference>().map_err(|e| bad(&e));
    };
    let (host, after) = rest
        .split_once(']')
        .ok_or_else(|| bad(&"unclosed '[' in the registry"))?;
    host.parse::<Ipv6Addr>().map_err(|e| bad(&e))?;
    let (port, path) = after
        .split_once('/')
        .ok_or_else(|| bad(&"no repository after the registry"))?;
    if !port.is_empty() {
        let digits = port
            .strip_prefix(':')
            .ok_or_else(|| bad(&"expected ':PORT' after ']'"))?;
        digits.parse::<u16>().map_err(|e| bad(&e))?;
    }
    let placeholder: Reference = format!("ipv6.invalid{port}/{path}")
        .parse()
        .map_err(|e| bad(&e))?;
    let registry = format!("[{host}]{port}");
    let repository = placeholder.repository().to_string();
    Ok(match (placeholder.tag(), placeholder.digest()) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag.into(), digest.into())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.into()),
        (tag, None) => {
            Reference::with_tag(registry, repository, tag.unwrap_or("latest").to_string())
        }
    })
}

/// `registry/repository` of a reference, without tag or digest.
fn repository_of(image: &Reference) -> String {
    format!("{}/{}", image.registry(), image.repository())
}

/// Whether a registry (`host[:port]`) is on loopback: `localhost`, `127.0.0.0/8`, `[::1]`.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn auth(opts: &OciOptions) -> RegistryAuth {
    match &opts.basic_auth {
        Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        None => RegistryAuth::Anonymous,
    }
}

fn client(image: &Reference, opts: &OciOptions) -> Result<Client> {
    let registry = image.resolve_registry().to_string();
    let protocol = match opts.protocol {
        Protocol::Https => ClientProtocol::Https,
        Protocol::Http => ClientProtocol::Http,
        Protocol::Auto if is_loopback_registry(&registry) => {
            ClientProtocol::HttpsExcept(vec![registry])
        }
        Protocol::Auto => ClientProtocol::Https,
    };
    let config = ClientConfig {
        protocol,
        extra_root_certificates: opts
            .extra_root_certificates_pem
            .iter()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.clone(),
            })
            .collect(),
        // A Wasm artifact is never a multi-platform index: refuse one rather than pick.
        platform_resolver: None,
        max_concurrent_upload: 1,
        max_concurrent_download: 1,
        connect_timeout: Some(opts.connect_timeout),
        read_timeout: Some(opts.read_timeout),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    };
    Client::try_from(config).context("creating the OCI registry client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for r in [
            "localhost",
            "localhost:5000",
            "LOCALHOST:1",
            "127.0.0.1:5000",
            "127.8.9.10",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback_registry(r), "{r}");
        }
        for r in [
            "ghcr.io",
            "registry.example:5000",
            "10.0.0.1:5000",
            "localhost.example.com",
            "128.0.0.1",
            "[::2]:5000",
        ] {
            assert!(!is_loopback_registry(r), "{r}");
        }
    }

    #[test]
    fn references() {
        let r = parse_reference("127.0.0.1:5000/plugins/deny:v1").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag(), r.digest()),
            ("127.0.0.1:5000", "plugins/deny", Some("v1"), None)
        );
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = parse_reference(&format!("[::1]:5000/plugins/deny@{d}")).unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag(), r.digest()),
            ("[::1]:5000", "plugins/deny", None, Some(d.as_str()))
        );
        let r = parse_reference("[::1]/p").unwrap();
        assert_eq!((r.registry(), r.tag()), ("[::1]", Some("latest")));
        for bad in [
            "",
            "[::1",
            "[::1]:x/p",
            "[nope]:5000/p",
            "[::1]:5000",
            "r.example/x@sha256:12",
            "r.example/a b",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests() {
        assert!(check_sha256(&format!("sha256:{}", "0f".repeat(32))).is_ok());
        for bad in [
            "sha256:abc".to_string(),
            format!("sha512:{}", "0f".repeat(64)),
            format!("sha256:{}", "0F".repeat(32)),
            format!("sha256:{}/..", "0f".repeat(31)),
        ] {
            assert!(check_sha256(&bad).is_err(), "{bad}");
        }
    }

    fn manifest(config_type: &str, layers: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": {"mediaType": config_type, "digest": format!("sha256:{}", "1".repeat(64)), "size": 2},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn manifest_shape() {
        let d = format!("sha256:{}", "2".repeat(64));
        let layer =
            |t: &str, size: i64| serde_json::json!({"mediaType": t, "digest": d, "size": size});
        let ok = manifest(
            WASM_CONFIG_MEDIA_TYPE,
            serde_json::json!([layer(WASM_LAYER_MEDIA_TYPE, 10)]),
        );
        assert_eq!(wasm_layer(&ok, 10).unwrap().size, 10);
        let err = wasm_layer(&ok, 9).unwrap_err().to_string();
        assert!(err.contains("over the limit"), "{err}");
        let cases = [
            manifest(
                "application/vnd.oci.image.config.v1+json",
                serde_json::json!([layer(WASM_LAYER_MEDIA_TYPE, 1)]),
            ),
            manifest(WASM_CONFIG_MEDIA_TYPE, serde_json::json!([])),
            manifest(
                WASM_CONFIG_MEDIA_TYPE,
                serde_json::json!([layer(WASM_LAYER_MEDIA_TYPE, 1), layer(WASM_LAYER_MEDIA_TYPE, 1)]),
            ),
            manifest(
                WASM_CONFIG_MEDIA_TYPE,
                serde_json::json!([layer("application/vnd.oci.image.layer.v1.tar", 1)]),
            ),
            manifest(
                WASM_CONFIG_MEDIA_TYPE,
                serde_json::json!([layer(WASM_LAYER_MEDIA_TYPE, -1)]),
            ),
            br#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}"#.to_vec(),
            b"not json".to_vec(),
        ];
        for case in cases {
            assert!(
                wasm_layer(&case, 100).is_err(),
                "{}",
                String::from_utf8_lossy(&case)
            );
        }
    }

    #[test]
    fn component_info_refuses_non_components() {
        // A core module header, and garbage.
        assert!(component_info(b"\0asm\x01\0\0\0").is_err());
        assert!(component_info(b"hello").is_err());
        // An empty component: no imports or exports.
        let info = component_info(b"\0asm\x0d\0\x01\0").unwrap();
        assert!(info.imports.is_empty() && info.exports.is_empty());
    }
}
