//! OCI images (see [`crate::runtime`]): a content-addressed store shared by all pods.
//!
//! Layout under the store's root (e.g. `<data-dir>/images`):
//!
//! - `blobs/sha256/<hex>` — manifests, configs and layer blobs exactly as pulled (or
//!   imported), each verified against its digest before it was renamed into place;
//! - `layers/<hex>/` — a layer blob (`<hex>` is the blob's digest) unpacked once, OCI
//!   whiteouts turned into overlayfs ones, ready to be a `lowerdir`;
//! - `catalog.json` — the images (keyed by manifest digest) and the references naming them;
//! - `tmp/` — downloads and unpacks in progress (emptied when the store opens).
//!
//! [`ImageStore::ensure`] pulls with `oci-client` (multi-arch index → the host's platform,
//! blobs streamed to disk while hashed, never a whole layer in memory), honouring a
//! [`PullPolicy`], pull secrets ([`RegistryAuth`]) and a k3s-like [`RegistriesConfig`]
//! (mirrors, plain-HTTP endpoints, credentials). [`ImageStore::mount_rootfs`] gives each
//! container an overlayfs root over the unpacked layers.

pub mod cli;
mod import;
mod mount;
mod pull;
mod reference;
mod registries;
#[doc(hidden)]
pub mod testutil;
mod unpack;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use reference::normalize_reference;
pub use registries::{RegistriesConfig, RegistryAuth};
pub use unpack::unpack_layer;

/// When [`ImageStore::ensure`] contacts the registry (a Pod's `imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always resolve the reference at the registry (blobs already present are not fetched
    /// again).
    Always,
    /// Pull only when the image is not in the store.
    IfNotPresent,
    /// Never pull: fail with [`ImageError::NeverPull`] when the image is absent.
    Never,
}

/// The parts of an image's config a container runtime needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`, as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir` (empty: `/`).
    pub working_dir: String,
    /// `User` (`uid`, `uid:gid`, `name`…; empty: root).
    pub user: String,
}

/// An image present in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The (normalised) reference it was asked for, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    /// The config digest (`sha256:…`): the image id.
    pub id: String,
    /// The manifest digest (`sha256:…`), for a Pod's `imageID` (`repo@sha256:…`).
    pub digest: String,
    /// Entrypoint, command, environment, working directory and user.
    pub config: ImageConfig,
    /// The unpacked layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// Bytes of its blobs (compressed layers and config), as pulled.
    pub size: u64,
}

impl Image {
    /// `registry/repository@sha256:…`: what a Pod's `containerStatuses[].imageID` shows.
    pub fn image_id(&self) -> String {
        let repo = reference::repository_of(&self.reference);
        if repo.is_empty() {
            self.digest.clone()
        } else {
            format!("{repo}@{}", self.digest)
        }
    }
}

/// One line of `tug image ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// The references naming it (may be empty for an image kept only by digest).
    pub references: Vec<String>,
    /// The config digest.
    pub id: String,
    /// The manifest digest.
    pub digest: String,
    /// Bytes of its blobs.
    pub size: u64,
    /// When it was pulled or imported (RFC 3339).
    pub created: String,
}

/// What [`ImageStore::ensure`] reports while it works (the agent turns it into Events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    /// Asking the registry for the manifest.
    Resolving,
    /// The manifest is known: this many layers.
    Pulling {
        /// Layers of the image.
        layers: usize,
    },
    /// A layer is on disk (fetched now, or already present).
    Layer {
        /// The layer blob's digest.
        digest: String,
        /// Its size.
        bytes: u64,
    },
    /// The image is ready.
    Done {
        /// Bytes of the image's blobs.
        bytes: u64,
        /// Time spent in `ensure`.
        elapsed: Duration,
        /// True when nothing was pulled (present and the policy allowed using it).
        cached: bool,
    },
}

/// Why an image could not be made present.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Unknown repository, tag or manifest ("manifest unknown").
    #[error("image not found: {0}")]
    NotFound(String),
    /// The registry refused the credentials (or wants some).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Content did not hash to the digest it was asked for.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The registry cannot be reached (connection refused, timeout, DNS).
    #[error("registry unreachable: {0}")]
    Unreachable(String),
    /// `imagePullPolicy: Never` and the image is not present.
    #[error("image {0} is not present and the pull policy is Never")]
    NeverPull(String),
    /// A malformed reference, manifest, config, layer or tarball.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A local file system error.
    #[error("i/o error: {0}")]
    Io(String),
}

impl ImageError {
    /// The short reason Kubernetes shows for this error in a waiting container state.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::NeverPull(_) => "ErrImageNeverPull",
            ImageError::Invalid(_) => "InvalidImageName",
            _ => "ErrImagePull",
        }
    }

    fn io(context: impl std::fmt::Display, e: impl std::fmt::Display) -> ImageError {
        ImageError::Io(format!("{context}: {e}"))
    }
}

/// What [`ImageStore::gc`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Manifest digests of the images removed.
    pub images: Vec<String>,
    /// Blobs deleted.
    pub blobs: usize,
    /// Unpacked layers deleted.
    pub layers: usize,
    /// Bytes freed (blobs and unpacked layers).
    pub bytes: u64,
}

/// One image in the catalog (keyed by manifest digest).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageRecord {
    digest: String,
    id: String,
    config: ImageConfig,
    /// Layer blob digests, bottom first.
    layers: Vec<String>,
    size: u64,
    created: String,
}

/// `catalog.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Catalog {
    /// Manifest digest → image.
    images: BTreeMap<String, ImageRecord>,
    /// Normalised reference (`registry/repo:tag` or `registry/repo@sha256:…`) → manifest digest.
    refs: BTreeMap<String, String>,
}

/// The node's image store. Shared through an `Arc`; every method takes `&self` and may be
/// called concurrently.
pub struct ImageStore {
    root: PathBuf,
    registries: RegistriesConfig,
    /// The catalog as last read or written, with the stamp of `catalog.json` it matches.
    catalog: Mutex<Cached>,
    /// One lock per normalised reference: concurrent `ensure`s of one image pull once.
    pulling: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Digests of blobs being pulled or imported (with a count): `gc` leaves them alone.
    in_flight: Mutex<HashMap<String, usize>>,
    /// See [`ImageStore::set_gc_grace`].
    gc_grace: Mutex<Duration>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Blobs pinned against `gc` while a pull or import works; unpinned on drop.
struct InFlight<'a> {
    store: &'a ImageStore,
    digests: Vec<String>,
}

impl InFlight<'_> {
    fn add(&mut self, digest: &str) {
        *self
            .store
            .in_flight
            .lock()
            .entry(digest.to_string())
            .or_default() += 1;
        self.digests.push(digest.to_string());
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.store.in_flight.lock();
        for d in &self.digests {
            if let Some(n) = map.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    map.remove(d);
                }
            }
        }
    }
}

impl ImageStore {
    /// Opens (creating) the store at `root`, e.g. `<data-dir>/images`.
    pub fn open(root: &Path, registries: RegistriesConfig) -> anyhow::Result<Arc<ImageStore>> {
        for sub in ["blobs/sha256", "layers", "tmp"] {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        // Leftovers of downloads and unpacks interrupted by a crash (old ones only: another
        // process, e.g. `tug image import` next to a running node, may be working there).
        if let Ok(entries) = std::fs::read_dir(root.join("tmp")) {
            for entry in entries.flatten() {
                let path = entry.path();
                if !older_than(&path, TMP_GRACE) {
                    continue;
                }
                let _ = if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
        let cached = Cached::load(&root.join("catalog.json"))?;
        Ok(Arc::new(ImageStore {
            root: root.to_path_buf(),
            registries,
            catalog: Mutex::new(cached),
            pulling: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            gc_grace: Mutex::new(GC_GRACE),
        }))
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The registries configuration the store pulls with.
    pub fn registries(&self) -> &RegistriesConfig {
        &self.registries
    }

    /// Makes `reference` (e.g. `127.0.0.1:5000/busybox:1`, `busybox` →
    /// `docker.io/library/busybox:latest`, or `…@sha256:…`) present per `policy`, pulling
    /// it if needed, and reports progress through `progress`.
    pub async fn ensure(
        &self,
        reference: &str,
        policy: PullPolicy,
        auth: &[RegistryAuth],
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<Image, ImageError> {
        let started = Instant::now();
        let parsed = reference::parse(reference)?;
        let normalized = parsed.whole();
        match policy {
            PullPolicy::Never => {
                return self
                    .get(&normalized)
                    .map(|image| report_cached(image, started, progress))
                    .ok_or(ImageError::NeverPull(normalized));
            }
            PullPolicy::IfNotPresent => {
                if let Some(image) = self.get(&normalized) {
                    return Ok(report_cached(image, started, progress));
                }
            }
            PullPolicy::Always => {}
        }
        let lock = self
            .pulling
            .lock()
            .entry(normalized.clone())
            .or_default()
            .clone();
        let guard = lock.lock().await;
        // Someone else may have pulled it while we waited.
        if policy == PullPolicy::IfNotPresent
            && let Some(image) = self.get(&normalized)
        {
            return Ok(report_cached(image, started, progress));
        }
        let result = pull::pull(self, &parsed, auth, progress).await;
        drop(guard);
        {
            let mut pulling = self.pulling.lock();
            // Only this map and our clone hold it: nobody else waits.
            if Arc::strong_count(&lock) == 2 {
                pulling.remove(&normalized);
            }
        }
        let image = result?;
        progress(PullProgress::Done {
            bytes: image.size,
            elapsed: started.elapsed(),
            cached: false,
        });
        Ok(image)
    }

    /// The image `reference` names (a reference, `repo@sha256:…`, a manifest digest or an
    /// image id), when present locally.
    pub fn get(&self, reference: &str) -> Option<Image> {
        let cached = self.read_catalog();
        let catalog = &cached.catalog;
        let (key, digest) = self.lookup(catalog, reference)?;
        let record = catalog.images.get(&digest)?;
        Some(self.image_of(&key, record))
    }

    /// Finds the catalog entry for a reference or digest: `(reference to report, manifest digest)`.
    fn lookup(&self, catalog: &Catalog, reference: &str) -> Option<(String, String)> {
        let reference = reference.trim();
        if let Some(digest) = reference::bare_digest(reference) {
            if catalog.images.contains_key(&digest) {
                let name = catalog
                    .refs
                    .iter()
                    .find(|(_, d)| **d == digest)
                    .map_or_else(|| digest.clone(), |(r, _)| r.clone());
                return Some((name, digest));
            }
            let (d, record) = catalog.images.iter().find(|(_, r)| r.id == digest)?;
            let name = catalog
                .refs
                .iter()
                .find(|(_, m)| *m == d)
                .map_or_else(|| record.digest.clone(), |(r, _)| r.clone());
            return Some((name, d.clone()));
        }
        let parsed = reference::parse(reference).ok()?;
        let normalized = parsed.whole();
        if let Some(digest) = catalog.refs.get(&normalized) {
            return Some((normalized, digest.clone()));
        }
        // `repo@sha256:…` is present when that manifest is, whatever it was pulled as.
        let digest = parsed.digest()?;
        catalog
            .images
            .contains_key(digest)
            .then(|| (normalized, digest.to_string()))
    }

    fn image_of(&self, reference: &str, record: &ImageRecord) -> Image {
        Image {
            reference: reference.to_string(),
            id: record.id.clone(),
            digest: record.digest.clone(),
            config: record.config.clone(),
            layers: record.layers.iter().map(|d| self.layer_dir(d)).collect(),
            size: record.size,
        }
    }

    /// Every image in the store, for `tug image ls`.
    pub fn list(&self) -> Vec<ImageSummary> {
        let cached = self.read_catalog();
        let catalog = &cached.catalog;
        catalog
            .images
            .values()
            .map(|record| ImageSummary {
                references: catalog
                    .refs
                    .iter()
                    .filter(|(_, d)| **d == record.digest)
                    .map(|(r, _)| r.clone())
                    .collect(),
                id: record.id.clone(),
                digest: record.digest.clone(),
                size: record.size,
                created: record.created.clone(),
            })
            .collect()
    }

    /// Removes a reference; by digest (or image id), the image and every reference naming
    /// it. The blobs and layers go at the next [`ImageStore::gc`].
    pub fn remove(&self, reference_or_digest: &str) -> Result<(), ImageError> {
        let mut cached = self.catalog.lock();
        let lock = self
            .lock_catalog(&mut cached)
            .map_err(|e| ImageError::Io(format!("{e:#}")))?;
        let catalog = &mut cached.catalog;
        let Some((key, digest)) = self.lookup(catalog, reference_or_digest) else {
            return Err(ImageError::NotFound(reference_or_digest.to_string()));
        };
        if reference::bare_digest(reference_or_digest.trim()).is_some()
            || !catalog.refs.contains_key(&key)
        {
            catalog.images.remove(&digest);
            catalog.refs.retain(|_, d| *d != digest);
        } else {
            catalog.refs.remove(&key);
            if !catalog.refs.values().any(|d| *d == digest) {
                catalog.images.remove(&digest);
            }
        }
        self.save(&mut cached, lock)
            .map_err(|e| ImageError::Io(format!("{e:#}")))
    }

    /// Imports an OCI image layout or a `docker save` archive (optionally gzip- or
    /// zstd-compressed): every image in it is added with the references it names.
    pub async fn import(&self, tarball: &Path) -> Result<Vec<Image>, ImageError> {
        import::import(self, tarball).await
    }

    /// Deletes the images not referenced by `in_use` (image ids, manifest digests,
    /// `repo@digest`s or references), then every blob and unpacked layer no remaining image
    /// uses. Blobs of pulls or imports in progress are kept.
    pub fn gc(&self, in_use: &HashSet<String>) -> anyhow::Result<GcReport> {
        let mut report = GcReport::default();
        let mut cached = self.catalog.lock();
        let lock = self.lock_catalog(&mut cached)?;
        let catalog = &mut cached.catalog;
        let mut keep: HashSet<String> = HashSet::new();
        for used in in_use {
            if let Some((_, digest)) = self.lookup(catalog, used) {
                keep.insert(digest);
            }
        }
        let doomed: Vec<String> = catalog
            .images
            .keys()
            .filter(|d| !keep.contains(*d))
            .cloned()
            .collect();
        for digest in &doomed {
            catalog.images.remove(digest);
        }
        catalog.refs.retain(|_, d| !doomed.contains(d));
        report.images = doomed;
        let mut live: HashSet<String> = self.in_flight.lock().keys().cloned().collect();
        for record in catalog.images.values() {
            live.insert(record.digest.clone());
            live.insert(record.id.clone());
            live.extend(record.layers.iter().cloned());
        }
        // Sweep while holding the catalog lock: no image can be recorded meanwhile.
        let swept = self.sweep(&live, &mut report);
        self.save(&mut cached, lock)?;
        swept?;
        Ok(report)
    }

    /// Deletes blobs and layers not in `live` (nor too young: they may belong to a pull in
    /// another process).
    fn sweep(&self, live: &HashSet<String>, report: &mut GcReport) -> anyhow::Result<()> {
        let grace = *self.gc_grace.lock();
        for entry in std::fs::read_dir(self.root.join("blobs/sha256"))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if live.contains(&format!("sha256:{name}")) || !older_than(&entry.path(), grace) {
                continue;
            }
            report.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            report.blobs += 1;
        }
        for entry in std::fs::read_dir(self.root.join("layers"))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if live.contains(&format!("sha256:{name}")) || !older_than(&entry.path(), grace) {
                continue;
            }
            report.bytes += unpack::disk_usage(&entry.path());
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            report.layers += 1;
        }
        Ok(())
    }

    /// Mounts an overlayfs root filesystem for one container: the image's unpacked layers
    /// as `lowerdir` (top first), `dir/upper` and `dir/work`, at `dir/rootfs`, which it
    /// returns. Mounting again what is already mounted returns the same path.
    pub fn mount_rootfs(&self, image: &Image, dir: &Path) -> anyhow::Result<PathBuf> {
        mount::mount_rootfs(&self.root, image, dir)
    }

    /// Unmounts `dir/rootfs` and removes `dir`; idempotent.
    pub fn unmount_rootfs(&self, dir: &Path) -> anyhow::Result<()> {
        mount::unmount_rootfs(dir)
    }

    // ---------------------------------------------------------------- internals

    /// `blobs/sha256/<hex>`.
    fn blob_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap_or(digest))
    }

    /// `layers/<hex>`.
    fn layer_dir(&self, digest: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(digest.strip_prefix("sha256:").unwrap_or(digest))
    }

    fn pin(&self) -> InFlight<'_> {
        InFlight {
            store: self,
            digests: Vec::new(),
        }
    }

    /// A fresh path under `tmp/`.
    fn temp_path(&self, what: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{what}-{}", uuid::Uuid::new_v4().simple()))
    }

    /// Unpacks the layer blob `digest` into `layers/<hex>` unless it already is.
    async fn ensure_unpacked(&self, digest: &str) -> Result<PathBuf, ImageError> {
        let dir = self.layer_dir(digest);
        if dir.is_dir() {
            return Ok(dir);
        }
        let blob = self.blob_path(digest);
        let temp = self.temp_path("layer");
        let target = dir.clone();
        let digest = digest.to_string();
        tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
            let result = (|| {
                let file = std::fs::File::open(&blob)
                    .map_err(|e| ImageError::io(format!("opening {}", blob.display()), e))?;
                std::fs::create_dir(&temp)
                    .map_err(|e| ImageError::io(format!("creating {}", temp.display()), e))?;
                unpack_layer(std::io::BufReader::new(file), &temp)
                    .map_err(|e| ImageError::Invalid(format!("layer {digest}: {e:#}")))?;
                match std::fs::rename(&temp, &target) {
                    Ok(()) => Ok(()),
                    // Unpacked concurrently by another pull: keep theirs.
                    Err(_) if target.is_dir() => Ok(()),
                    Err(e) => Err(ImageError::io(
                        format!("renaming to {}", target.display()),
                        e,
                    )),
                }
            })();
            if temp.exists() {
                let _ = std::fs::remove_dir_all(&temp);
            }
            result
        })
        .await
        .map_err(|e| ImageError::Io(format!("unpacking task: {e}")))??;
        Ok(dir)
    }

    /// Adds an image to the catalog under `references` (normalised) and returns it as the
    /// first reference names it.
    fn record(&self, record: ImageRecord, references: &[String]) -> Result<Image, ImageError> {
        let mut cached = self.catalog.lock();
        let lock = self
            .lock_catalog(&mut cached)
            .map_err(|e| ImageError::Io(format!("{e:#}")))?;
        let catalog = &mut cached.catalog;
        for r in references {
            catalog.refs.insert(r.clone(), record.digest.clone());
        }
        let name = references
            .first()
            .cloned()
            .unwrap_or_else(|| record.digest.clone());
        let image = self.image_of(&name, &record);
        catalog.images.insert(record.digest.clone(), record);
        self.save(&mut cached, lock)
            .map_err(|e| ImageError::Io(format!("{e:#}")))?;
        Ok(image)
    }

    /// The catalog, re-read first if another process changed `catalog.json`.
    fn read_catalog(&self) -> parking_lot::MutexGuard<'_, Cached> {
        let mut cached = self.catalog.lock();
        let path = self.root.join("catalog.json");
        if stamp(&path) != cached.stamp {
            match Cached::load(&path) {
                Ok(fresh) => *cached = fresh,
                Err(e) => tracing::warn!("{e:#}"),
            }
        }
        cached
    }

    /// Takes the cross-process catalog lock (`catalog.lock`, flock) and re-reads the
    /// catalog, before a change.
    fn lock_catalog(&self, cached: &mut Cached) -> anyhow::Result<std::fs::File> {
        let path = self.root.join("catalog.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", path.display()));
        }
        *cached = Cached::load(&self.root.join("catalog.json"))?;
        Ok(file)
    }

    /// Writes `catalog.json` atomically, then releases the lock from [`Self::lock_catalog`].
    fn save(&self, cached: &mut Cached, lock: std::fs::File) -> anyhow::Result<()> {
        let path = self.root.join("catalog.json");
        let temp = self.temp_path("catalog");
        let body = serde_json::to_vec_pretty(&cached.catalog).context("encoding the catalog")?;
        let mut file =
            std::fs::File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
        file.write_all(&body)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", temp.display()))?;
        std::fs::rename(&temp, &path).with_context(|| format!("writing {}", path.display()))?;
        cached.stamp = stamp(&path);
        drop(lock);
        Ok(())
    }

    /// Unreferenced blobs and layers younger than this are kept by [`ImageStore::gc`]
    /// (they may belong to a pull or import in another process); default 10 minutes.
    pub fn set_gc_grace(&self, grace: Duration) {
        *self.gc_grace.lock() = grace;
    }
}

/// How long `tmp/` entries are left alone when a store opens.
const TMP_GRACE: Duration = Duration::from_secs(3600);

/// The default of [`ImageStore::set_gc_grace`].
const GC_GRACE: Duration = Duration::from_secs(600);

/// Whether `path` was last modified more than `age` ago (or cannot be read).
fn older_than(path: &Path, age: Duration) -> bool {
    if age.is_zero() {
        return true;
    }
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|elapsed| elapsed > age)
}

/// The identity of a version of `catalog.json` (always replaced by a rename): inode,
/// modification time and length.
type Stamp = (u64, std::time::SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.modified().ok()?, m.len()))
}

/// The catalog with the stamp of the file it was read from.
#[derive(Debug, Default)]
struct Cached {
    catalog: Catalog,
    stamp: Option<Stamp>,
}

impl Cached {
    fn load(path: &Path) -> anyhow::Result<Cached> {
        let stamp = stamp(path);
        match std::fs::read(path) {
            Ok(bytes) => Ok(Cached {
                catalog: serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", path.display()))?,
                stamp,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cached::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

/// Reports an image found present and returns it.
fn report_cached(
    image: Image,
    started: Instant,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Image {
    progress(PullProgress::Done {
        bytes: image.size,
        elapsed: started.elapsed(),
        cached: true,
    });
    image
}

/// `sha256:<hex>` of some bytes.
fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// RFC 3339 "now".
fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// The image config JSON (the parts we use).
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    config: Option<ConfigSection>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigSection {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

impl ConfigFile {
    fn parse(bytes: &[u8]) -> Result<ConfigFile, ImageError> {
        serde_json::from_slice(bytes)
            .map_err(|e| ImageError::Invalid(format!("malformed image config: {e}")))
    }

    fn image_config(&self) -> ImageConfig {
        let c = self.config.as_ref();
        ImageConfig {
            entrypoint: c.and_then(|c| c.entrypoint.clone()).unwrap_or_default(),
            cmd: c.and_then(|c| c.cmd.clone()).unwrap_or_default(),
            env: c.and_then(|c| c.env.clone()).unwrap_or_default(),
            working_dir: c.and_then(|c| c.working_dir.clone()).unwrap_or_default(),
            user: c.and_then(|c| c.user.clone()).unwrap_or_default(),
        }
    }
}
