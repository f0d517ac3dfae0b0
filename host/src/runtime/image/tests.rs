//! Integration tests of the store against a real `docker-registry` on loopback, overlayfs
//! mounts (root) and imports.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::testutil::{self, BuiltImage, TestRegistry};
use super::*;

/// Unmounts (and removes) a rootfs dir on drop, even when the test fails.
struct Mounted<'a> {
    store: &'a ImageStore,
    dir: PathBuf,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = self.store.unmount_rootfs(&self.dir);
    }
}

fn open_store() -> (tempfile::TempDir, Arc<ImageStore>) {
    let dir = tempfile::Builder::new()
        .prefix("tug-images-")
        .tempdir()
        .unwrap();
    let store = ImageStore::open(&dir.path().join("images"), RegistriesConfig::default()).unwrap();
    store.set_gc_grace(Duration::ZERO);
    (dir, store)
}

/// Collects progress reports.
#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<PullProgress>>>);

impl Events {
    fn sink(&self) -> impl Fn(PullProgress) + Send + Sync + use<> {
        let events = self.0.clone();
        move |p| events.lock().unwrap().push(p)
    }
    fn take(&self) -> Vec<PullProgress> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn mounted_at(path: &Path) -> bool {
    mount::is_mounted(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_mount_and_unmount() {
    let registry = TestRegistry::start().unwrap();
    let digest = testutil::push_busybox_image(&registry.host(), "tugtest/busybox", "1")
        .await
        .unwrap();
    let (dir, store) = open_store();
    let reference = format!("{}/tugtest/busybox:1", registry.host());
    let events = Events::default();
    let sink = events.sink();

    let image = store
        .ensure(&reference, PullPolicy::IfNotPresent, &[], &sink)
        .await
        .unwrap();
    assert_eq!(image.digest, digest);
    assert_eq!(image.reference, reference);
    assert_eq!(image.config.cmd, vec!["sh".to_string()]);
    assert!(image.config.env.iter().any(|e| e.starts_with("PATH=")));
    assert_eq!(image.layers.len(), 1);
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert_eq!(
        image.image_id(),
        format!("{}/tugtest/busybox@{digest}", registry.host())
    );
    let seen = events.take();
    assert_eq!(seen[0], PullProgress::Resolving);
    assert_eq!(seen[1], PullProgress::Pulling { layers: 1 });
    assert!(matches!(&seen[2], PullProgress::Layer { bytes, .. } if *bytes > 100_000));
    assert!(
        matches!(&seen[3], PullProgress::Done { cached: false, bytes, .. } if *bytes == image.size)
    );
    // The blobs are stored under their digests, verified.
    let blob = store.blob_path(&image.id);
    assert_eq!(sha256_digest(&std::fs::read(blob).unwrap()), image.id);
    assert!(
        std::fs::read_dir(dir.path().join("images/tmp"))
            .unwrap()
            .next()
            .is_none()
    );

    // Present: no registry traffic, cached; also found by digest, id and repo@digest.
    let again = store
        .ensure(&reference, PullPolicy::IfNotPresent, &[], &sink)
        .await
        .unwrap();
    assert_eq!(again, image);
    assert!(matches!(
        events.take().as_slice(),
        [PullProgress::Done { cached: true, .. }]
    ));
    assert_eq!(store.get(&digest).unwrap().digest, digest);
    assert_eq!(store.get(&image.id).unwrap().digest, digest);
    assert_eq!(store.get(&image.image_id()).unwrap().digest, digest);
    assert!(
        store
            .get(&format!("{}/tugtest/busybox:2", registry.host()))
            .is_none()
    );

    // The overlay root filesystem.
    let container_dir = dir.path().join("containers/c1");
    let guard = Mounted {
        store: &store,
        dir: container_dir.clone(),
    };
    let rootfs = store.mount_rootfs(&image, &container_dir).unwrap();
    assert_eq!(rootfs, container_dir.join("rootfs"));
    assert!(mounted_at(&rootfs));
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
        PathBuf::from("busybox")
    );
    // Mounting again is harmless.
    assert_eq!(store.mount_rootfs(&image, &container_dir).unwrap(), rootfs);
    // Writes go to the container's upper dir, never to the shared layer.
    std::fs::write(rootfs.join("tmp/hello"), b"hi").unwrap();
    std::fs::remove_file(rootfs.join("bin/cat")).unwrap();
    assert!(container_dir.join("upper/tmp/hello").is_file());
    assert!(image.layers[0].join("bin/cat").is_symlink());
    assert!(!image.layers[0].join("tmp/hello").exists());

    store.unmount_rootfs(&container_dir).unwrap();
    assert!(!mounted_at(&rootfs));
    assert!(!container_dir.exists());
    store.unmount_rootfs(&container_dir).unwrap(); // idempotent
    drop(guard);

    // Reopening the store finds the image.
    drop(store);
    let store = ImageStore::open(&dir.path().join("images"), RegistriesConfig::default()).unwrap();
    assert_eq!(store.get(&reference).unwrap(), image);
    assert_eq!(store.list().len(), 1);
    assert_eq!(store.list()[0].references, vec![reference.clone()]);
}

/// `ensure` can run in a spawned task (its future is `Send + 'static` given owned inputs).
#[allow(dead_code)]
fn ensure_is_spawnable(store: Arc<ImageStore>) {
    tokio::spawn(async move {
        let progress = |_: PullProgress| {};
        let _ = store
            .ensure("busybox", PullPolicy::IfNotPresent, &[], &progress)
            .await;
        let _ = store.import(Path::new("x")).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ensures_pull_once() {
    let registry = TestRegistry::start().unwrap();
    testutil::push_busybox_image(&registry.host(), "tugtest/conc", "x")
        .await
        .unwrap();
    let (_dir, store) = open_store();
    let reference = format!("{}/tugtest/conc:x", registry.host());
    let events = Events::default();
    let sink = events.sink();
    let pulls = (0..4).map(|_| store.ensure(&reference, PullPolicy::IfNotPresent, &[], &sink));
    let images = futures::future::join_all(pulls).await;
    let first = images[0].as_ref().unwrap().clone();
    for image in &images {
        assert_eq!(image.as_ref().unwrap(), &first);
    }
    let seen = events.take();
    let resolving = seen
        .iter()
        .filter(|p| **p == PullProgress::Resolving)
        .count();
    let fresh = seen
        .iter()
        .filter(|p| matches!(p, PullProgress::Done { cached: false, .. }))
        .count();
    assert_eq!((resolving, fresh), (1, 1), "{seen:?}");

    // Always asks the registry again but fetches no blob.
    store
        .ensure(&reference, PullPolicy::Always, &[], &sink)
        .await
        .unwrap();
    let seen = events.take();
    assert_eq!(seen[0], PullProgress::Resolving);
    assert!(matches!(
        seen.last(),
        Some(PullProgress::Done { cached: false, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_errors_are_classified_and_recover() {
    let mut registry = TestRegistry::start().unwrap();
    let (_dir, store) = open_store();
    let host = registry.host();
    let noop = |_: PullProgress| {};

    // Unknown repository / tag.
    let missing = format!("{host}/tugtest/later:1");
    let err = store
        .ensure(&missing, PullPolicy::IfNotPresent, &[], &noop)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImageError::NotFound(m) if m.contains("tugtest/later")),
        "{err:?}"
    );
    assert_eq!(err.reason(), "ErrImagePull");

    // Never: absent is an error without contacting anyone.
    let err = store
        .ensure(&missing, PullPolicy::Never, &[], &noop)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NeverPull(_)), "{err:?}");
    assert_eq!(err.reason(), "ErrImageNeverPull");

    // The image appears: the next attempt succeeds.
    let digest = testutil::push_busybox_image(&host, "tugtest/later", "1")
        .await
        .unwrap();
    store
        .ensure(&missing, PullPolicy::IfNotPresent, &[], &noop)
        .await
        .unwrap();

    // A digest the repository does not have.
    let wrong = format!("{host}/tugtest/later@sha256:{}", "0".repeat(64));
    let err = store
        .ensure(&wrong, PullPolicy::IfNotPresent, &[], &noop)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NotFound(_)), "{err:?}");

    // Pinned by the right digest: found.
    let pinned = format!("{host}/tugtest/later@{digest}");
    assert_eq!(
        store
            .ensure(&pinned, PullPolicy::Always, &[], &noop)
            .await
            .unwrap()
            .digest,
        digest
    );

    // A registry serving corrupted layer bytes: the pull fails with a digest mismatch and
    // leaves nothing behind.
    let built = testutil::busybox_image().unwrap();
    let layer = sha256_digest(&built.layer_gz);
    let mut corrupted = built.layer_gz.clone();
    let mid = corrupted.len() / 2;
    corrupted[mid] ^= 0xff;
    std::fs::write(registry.blob_path(&layer), &corrupted).unwrap();
    let (dir2, fresh) = open_store();
    let err = fresh
        .ensure(&missing, PullPolicy::IfNotPresent, &[], &noop)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImageError::DigestMismatch { expected, .. } if *expected == layer),
        "{err:?}"
    );
    assert!(!fresh.blob_path(&layer).exists());
    assert!(fresh.get(&missing).is_none());
    assert!(
        std::fs::read_dir(dir2.path().join("images/tmp"))
            .unwrap()
            .next()
            .is_none()
    );

    // Registry down.
    registry.kill();
    let err = store
        .ensure(&missing, PullPolicy::Always, &[], &noop)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImageError::Unreachable(m) if m.contains(&host)),
        "{err:?}"
    );
    // …but a present image is still usable with IfNotPresent.
    store
        .ensure(&missing, PullPolicy::IfNotPresent, &[], &noop)
        .await
        .unwrap();

    // Invalid references.
    let err = store
        .ensure("Not A Reference", PullPolicy::IfNotPresent, &[], &noop)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Invalid(_)), "{err:?}");
}

/// A second layer on top of busybox: deletes `bin/cat` (whiteout), makes `var/www`
/// opaque with a new file, adds `etc/motd`.
fn layered_image() -> (BuiltImage, Vec<u8>) {
    let base = testutil::busybox_image().unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(body.len() as u64);
        tar.append_data(&mut h, path, body).unwrap();
    };
    add("bin/.wh.cat", b"");
    add("var/www/.wh..wh..opq", b"");
    add("var/www/new.html", b"new");
    add("etc/motd", b"welcome");
    let top = tar.into_inner().unwrap();
    let top_zst = zstd::encode_all(top.as_slice(), 3).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&base.config).unwrap();
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(sha256_digest(&top).into());
    config["config"]["Entrypoint"] = serde_json::json!(["/bin/sh", "-c"]);
    config["config"]["User"] = "65534".into();
    let config = serde_json::to_vec(&config).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&base.manifest).unwrap();
    manifest["config"]["digest"] = sha256_digest(&config).into();
    manifest["config"]["size"] = config.len().into();
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
            "digest": sha256_digest(&top_zst),
            "size": top_zst.len(),
        }));
    let manifest = serde_json::to_vec(&manifest).unwrap();
    (
        BuiltImage {
            config,
            manifest,
            ..base
        },
        top_zst,
    )
}

/// An OCI layout tarball with the busybox layer and `extra` layer blobs.
fn write_layout(image: &BuiltImage, extra: &[&[u8]], path: &Path, name: &str) {
    image.write_oci_layout(path, name).unwrap();
    let mut existing = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = tar::Builder::new(Vec::new());
    for entry in existing.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut h = entry.header().clone();
        let p = entry.path().unwrap().into_owned();
        out.append_data(&mut h, p, &mut entry).unwrap();
    }
    for blob in extra {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(blob.len() as u64);
        let hex = &sha256_digest(blob)[7..];
        out.append_data(&mut h, format!("blobs/sha256/{hex}"), *blob)
            .unwrap();
    }
    std::fs::write(path, out.into_inner().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whiteouts_and_opaque_dirs_in_the_overlay() {
    let (dir, store) = open_store();
    let (image, top) = layered_image();
    let tarball = dir.path().join("layered.tar");
    write_layout(&image, &[&top], &tarball, "example.com/tug/layered:2");
    let imported = store.import(&tarball).await.unwrap();
    assert_eq!(imported.len(), 1);
    let image = &imported[0];
    assert_eq!(image.reference, "example.com/tug/layered:2");
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.config.entrypoint, vec!["/bin/sh", "-c"]);
    assert_eq!(image.config.user, "65534");

    let container_dir = dir.path().join("containers/layered");
    let _guard = Mounted {
        store: &store,
        dir: container_dir.clone(),
    };
    let rootfs = store.mount_rootfs(image, &container_dir).unwrap();
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(rootfs.join("bin/echo").is_symlink());
    assert!(!rootfs.join("bin/cat").exists() && !rootfs.join("bin/cat").is_symlink());
    assert!(
        !rootfs.join("var/www/index.html").exists(),
        "hidden by the opaque dir"
    );
    assert_eq!(
        std::fs::read(rootfs.join("var/www/new.html")).unwrap(),
        b"new"
    );
    assert_eq!(std::fs::read(rootfs.join("etc/motd")).unwrap(), b"welcome");
    assert!(rootfs.join("etc/passwd").is_file());
    store.unmount_rootfs(&container_dir).unwrap();
    assert!(!mounted_at(&rootfs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_remove_and_gc() {
    let (dir, store) = open_store();
    let built = testutil::busybox_image().unwrap();
    let docker = dir.path().join("docker.tar");
    built
        .write_docker_archive(&docker, "busybox:imported")
        .unwrap();
    let oci = dir.path().join("oci.tar.gz");
    let plain = dir.path().join("oci.tar");
    built
        .write_oci_layout(&plain, "registry.local/tug/bb:1")
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &std::fs::read(&plain).unwrap()).unwrap();
    std::fs::write(&oci, gz.finish().unwrap()).unwrap();

    let from_docker = store.import(&docker).await.unwrap();
    assert_eq!(from_docker.len(), 1);
    assert_eq!(
        from_docker[0].reference,
        "docker.io/library/busybox:imported"
    );
    assert_eq!(from_docker[0].id, built.id());
    let from_oci = store.import(&oci).await.unwrap();
    assert_eq!(from_oci[0].reference, "registry.local/tug/bb:1");
    assert_eq!(from_oci[0].digest, built.digest());
    assert_eq!(from_oci[0].id, built.id());
    // The same config, two layer blobs (uncompressed and gzip): both unpacked.
    assert!(from_docker[0].layers[0].join("bin/busybox").is_file());
    assert!(from_oci[0].layers[0].join("bin/busybox").is_file());
    assert_eq!(store.list().len(), 2);
    // Another process (e.g. `tug image import` next to a running node) sees the same
    // catalog, and its changes are seen here.
    let other_process = ImageStore::open(store.root(), RegistriesConfig::default()).unwrap();
    assert_eq!(other_process.list().len(), 2);
    other_process.remove("busybox:imported").unwrap();
    assert!(store.get("busybox:imported").is_none());
    assert_eq!(store.import(&docker).await.unwrap().len(), 1);
    assert!(other_process.get("busybox:imported").is_some());
    // Usable with imagePullPolicy Never.
    let noop = |_: PullProgress| {};
    store
        .ensure("busybox:imported", PullPolicy::Never, &[], &noop)
        .await
        .unwrap();

    // A layout whose layer blob does not match its name is refused (by a store that does
    // not have the layer yet) and leaves nothing behind.
    let bad = dir.path().join("bad.tar");
    let layer_hex = sha256_digest(&built.layer_gz)[7..].to_string();
    let mut out = tar::Builder::new(Vec::new());
    let mut good = tar::Archive::new(std::fs::File::open(&plain).unwrap());
    for entry in good.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut body).unwrap();
        if path.ends_with(&layer_hex) {
            body[10] ^= 1;
        }
        let mut h = entry.header().clone();
        out.append_data(&mut h, path, body.as_slice()).unwrap();
    }
    std::fs::write(&bad, out.into_inner().unwrap()).unwrap();
    let (dir2, other) = open_store();
    let err = other.import(&bad).await.unwrap_err();
    assert!(
        matches!(&err, ImageError::DigestMismatch { expected, .. } if expected[7..] == layer_hex),
        "{err:?}"
    );
    assert!(other.list().is_empty());
    assert!(
        std::fs::read_dir(dir2.path().join("images/tmp"))
            .unwrap()
            .next()
            .is_none()
    );
    let err = store
        .import(&dir.path().join("missing.tar"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Io(_)), "{err:?}");

    // gc keeps what is in use (by reference here) and deletes the rest.
    let keep: HashSet<String> = ["registry.local/tug/bb:1".to_string()].into();
    let report = store.gc(&keep).unwrap();
    assert_eq!(report.images, vec![from_docker[0].digest.clone()]);
    assert!(report.blobs >= 2, "{report:?}"); // the docker manifest and the plain layer
    assert_eq!(report.layers, 1);
    assert!(report.bytes > 1_000_000);
    assert!(!from_docker[0].layers[0].exists());
    assert!(from_oci[0].layers[0].is_dir());
    assert!(
        store.blob_path(&built.id()).is_file(),
        "the shared config is kept"
    );
    assert!(store.get("busybox:imported").is_none());

    // rm by reference, then gc with nothing in use empties the store.
    store.remove("registry.local/tug/bb:1").unwrap();
    assert!(matches!(
        store.remove("registry.local/tug/bb:1"),
        Err(ImageError::NotFound(_))
    ));
    assert!(store.list().is_empty());
    let report = store.gc(&HashSet::new()).unwrap();
    assert_eq!(report.layers, 1);
    let blobs = std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count();
    let layers = std::fs::read_dir(store.root().join("layers"))
        .unwrap()
        .count();
    assert_eq!((blobs, layers), (0, 0));
}
