//! The on-disk cache of compiled components: `<dir>/<sha256 of the component>-<engine
//! fingerprint>.cwasm`, written atomically (temporary file + rename), so a restart loads
//! plugins by deserializing (about a millisecond) instead of compiling them again.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components for one engine configuration.
#[derive(Debug)]
pub struct ComponentCache {
    dir: PathBuf,
    fingerprint: String,
}

impl ComponentCache {
    /// Opens (creating, mode 0700) the cache directory. Artifacts in it are loaded as
    /// native code: the directory must be writable by the host only.
    pub fn open(dir: &Path, engine: &Engine) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating plugin cache {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting plugin cache {}", dir.display()))?;
        }
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(ComponentCache {
            dir: dir.to_path_buf(),
            fingerprint: format!("{:016x}", h.finish()),
        })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm", self.fingerprint))
    }

    /// The cached component for `digest` (hex sha256 of the component's bytes), if any.
    /// A corrupt or incompatible artifact is removed and reported as a miss.
    pub fn get(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `put` below from `Component::serialize` of the same
        // engine configuration (the fingerprint is in its name), atomically via rename, into
        // a directory only the host may write (0700). Wasmtime additionally checks the
        // artifact's header and engine compatibility before using it.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached plugin artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component; failures are logged, never fatal (the cache is an
    /// optimisation).
    pub fn put(&self, digest: &str, component: &Component) {
        if let Err(e) = self.try_put(digest, component) {
            tracing::warn!(dir = %self.dir.display(), error = %format!("{e:#}"), "could not cache a compiled plugin");
        }
    }

    fn try_put(&self, digest: &str, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize().map_err(anyhow::Error::from)?;
        let path = self.path(digest);
        let tmp =
            tempfile::NamedTempFile::new_in(&self.dir).context("creating a temporary file")?;
        tmp.as_file()
            .write_all(&bytes)
            .context("writing the artifact")?;
        tmp.as_file().sync_all().context("syncing the artifact")?;
        tmp.persist(&path)
            .context("renaming the artifact into place")?;
        Ok(())
    }
}
