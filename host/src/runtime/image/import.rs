//! `tug image import`: OCI image layouts and `docker save` archives (optionally gzip- or
//! zstd-compressed), for air-gapped nodes. Every blob is hashed and checked against the
//! digest that names it before it enters the store.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::pull::{parse_manifest, select_platform};
use super::reference::{self, check_sha256};
use super::{ConfigFile, Image, ImageError, ImageRecord, ImageStore, now_rfc3339, sha256_digest};

/// Removes a directory tree on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) async fn import(store: &ImageStore, tarball: &Path) -> Result<Vec<Image>, ImageError> {
    let dir = TempDir(store.temp_path("import"));
    let (src, dst) = (tarball.to_path_buf(), dir.0.clone());
    tokio::task::spawn_blocking(move || extract(&src, &dst))
        .await
        .map_err(|e| ImageError::Io(format!("import task: {e}")))??;
    let root = dir.0.clone();
    if root.join("manifest.json").is_file() {
        import_docker(store, &root).await
    } else if root.join("index.json").is_file() {
        import_oci(store, &root).await
    } else {
        Err(ImageError::Invalid(format!(
            "{} is neither an OCI image layout (index.json) nor a docker-archive (manifest.json)",
            tarball.display()
        )))
    }
}

/// Unpacks the (possibly compressed) tarball as plain files.
fn extract(tarball: &Path, dir: &Path) -> Result<(), ImageError> {
    let file = std::fs::File::open(tarball)
        .map_err(|e| ImageError::io(format!("opening {}", tarball.display()), e))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| ImageError::io(format!("creating {}", dir.display()), e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let head = reader
        .fill_buf()
        .map_err(|e| ImageError::io(format!("reading {}", tarball.display()), e))?;
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| ImageError::io("starting zstd decompression", e))?,
        )
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    archive
        .unpack(dir)
        .map_err(|e| ImageError::Invalid(format!("unpacking {}: {e}", tarball.display())))
}

/// sha256 and size of a file, streamed.
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}

async fn hash(path: &Path) -> Result<(String, u64), ImageError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || hash_file(&p))
        .await
        .map_err(|e| ImageError::Io(format!("hashing task: {e}")))?
        .map_err(|e| ImageError::io(format!("reading {}", path.display()), e))
}

/// A path inside the extracted archive (no `..`, no absolute path).
fn inside(root: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ImageError::Invalid(format!(
            "path {rel:?} escapes the archive"
        )));
    }
    Ok(root.join(p))
}

// ------------------------------------------------------------------ docker-archive

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

async fn import_docker(store: &ImageStore, root: &Path) -> Result<Vec<Image>, ImageError> {
    let body = std::fs::read(root.join("manifest.json"))
        .map_err(|e| ImageError::io("reading manifest.json", e))?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&body)
        .map_err(|e| ImageError::Invalid(format!("malformed manifest.json: {e}")))?;
    let mut pin = store.pin();
    let mut hashed: HashMap<String, (String, u64)> = HashMap::new();
    let mut images = Vec::new();
    for entry in entries {
        let config_path = inside(root, &entry.config)?;
        let config_bytes = std::fs::read(&config_path)
            .map_err(|e| ImageError::io(format!("reading {}", entry.config), e))?;
        let config_digest = sha256_digest(&config_bytes);
        pin.add(&config_digest);
        let config = ConfigFile::parse(&config_bytes)?;
        store.write_small_blob(&config_digest, &config_bytes)?;

        let mut layers = Vec::new();
        let mut descriptors = Vec::new();
        let mut size = config_bytes.len() as u64;
        for layer in &entry.layers {
            let path = inside(root, layer)?;
            let (digest, layer_size) = match hashed.get(layer) {
                Some(h) => h.clone(),
                None => {
                    let h = hash(&path).await?;
                    hashed.insert(layer.clone(), h.clone());
                    h
                }
            };
            pin.add(&digest);
            let gzip = is_gzip(&path);
            store.adopt_blob(&digest, &path)?;
            store.ensure_unpacked(&digest).await?;
            size += layer_size;
            layers.push(digest.clone());
            descriptors.push(serde_json::json!({
                "mediaType": if gzip {
                    "application/vnd.docker.image.rootfs.diff.tar.gzip"
                } else {
                    "application/vnd.docker.image.rootfs.diff.tar"
                },
                "digest": digest,
                "size": layer_size,
            }));
        }
        // A registry-style manifest, so that the image has a manifest digest like any other.
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": config_digest,
                "size": config_bytes.len(),
            },
            "layers": descriptors,
        });
        let manifest_body = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::Invalid(format!("encoding a manifest: {e}")))?;
        let digest = sha256_digest(&manifest_body);
        pin.add(&digest);
        store.write_small_blob(&digest, &manifest_body)?;
        let mut names = Vec::new();
        for tag in entry.repo_tags.unwrap_or_default() {
            names.push(reference::normalize_reference(&tag)?);
        }
        let record = ImageRecord {
            digest,
            id: config_digest,
            config: config.image_config(),
            layers,
            size,
            created: now_rfc3339(),
        };
        images.push(store.record(record, &names)?);
    }
    Ok(images)
}

fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x1f, 0x8b]
}

// --------------------------------------------------------------- OCI image layout

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<OciIndexEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciIndexEntry {
    digest: String,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
}

async fn import_oci(store: &ImageStore, root: &Path) -> Result<Vec<Image>, ImageError> {
    let body = std::fs::read(root.join("index.json"))
        .map_err(|e| ImageError::io("reading index.json", e))?;
    let index: OciIndex = serde_json::from_slice(&body)
        .map_err(|e| ImageError::Invalid(format!("malformed index.json: {e}")))?;
    let mut pin = store.pin();
    let mut images = Vec::new();
    for entry in index.manifests {
        let annotations = entry.annotations.unwrap_or_default();
        let name = annotations
            .get("io.containerd.image.name")
            .or_else(|| annotations.get("org.opencontainers.image.ref.name"))
            .filter(|n| n.contains('/') || n.contains(':'))
            .map(|n| reference::normalize_reference(n))
            .transpose()?;
        let label = name.clone().unwrap_or_else(|| entry.digest.clone());
        let top = read_blob(root, &entry.digest)?;
        pin.add(&entry.digest);
        store.write_small_blob(&entry.digest, &top)?;
        let mut body = top;
        for _ in 0..2 {
            let Some(child) = select_platform(&body, &label)? else {
                break;
            };
            body = read_blob(root, &child)?;
            pin.add(&child);
            store.write_small_blob(&child, &body)?;
        }
        let manifest = parse_manifest(&body, &label)?;
        let config_bytes = read_blob(root, &manifest.config.digest)?;
        pin.add(&manifest.config.digest);
        store.write_small_blob(&manifest.config.digest, &config_bytes)?;
        let config = ConfigFile::parse(&config_bytes)?;
        let mut size = config_bytes.len() as u64;
        for layer in &manifest.layers {
            pin.add(&layer.digest);
            if !store.blob_path(&layer.digest).is_file() {
                let path = blob_path(root, &layer.digest)?;
                let (actual, layer_size) = hash(&path).await?;
                if actual != layer.digest {
                    return Err(ImageError::DigestMismatch {
                        expected: layer.digest.clone(),
                        actual,
                    });
                }
                size += layer_size;
                store.adopt_blob(&layer.digest, &path)?;
            } else {
                size += u64::try_from(layer.size).unwrap_or(0);
            }
            store.ensure_unpacked(&layer.digest).await?;
        }
        let record = ImageRecord {
            digest: entry.digest.clone(),
            id: manifest.config.digest.clone(),
            config: config.image_config(),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            size,
            created: now_rfc3339(),
        };
        let names: Vec<String> = name.into_iter().collect();
        images.push(store.record(record, &names)?);
    }
    Ok(images)
}

fn blob_path(root: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    check_sha256(digest).map_err(ImageError::Invalid)?;
    Ok(root
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:")))
}

/// Reads a small blob of the layout and checks its digest.
fn read_blob(root: &Path, digest: &str) -> Result<Vec<u8>, ImageError> {
    let path = blob_path(root, digest)?;
    let body =
        std::fs::read(&path).map_err(|e| ImageError::io(format!("reading blob {digest}"), e))?;
    let actual = sha256_digest(&body);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(body)
}
