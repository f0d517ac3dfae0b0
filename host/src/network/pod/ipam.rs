//! The `ipam-store` of a network plugin: a small key-value map persisted as one JSON file
//! per plugin under the node agent's data directory (`<data_dir>/network/<plugin>.json`),
//! rewritten atomically (temp file, fsync, rename) on every change, so allocations survive
//! restarts and a crash leaves either the old or the new map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use parking_lot::Mutex;

/// Bounds on what a plugin may store.
pub(crate) const MAX_KEY_BYTES: usize = 512;
pub(crate) const MAX_VALUE_BYTES: usize = 64 << 10;
pub(crate) const MAX_ENTRIES: usize = 65_536;

/// One plugin's persistent map.
pub struct IpamStore {
    path: PathBuf,
    map: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for IpamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpamStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl IpamStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let map = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading the IPAM store {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading the IPAM store {}", path.display()));
            }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(IpamStore {
            path: path.to_path_buf(),
            map: Mutex::new(map),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the map to a temporary file and renames it over the store: the file is always
    /// whole. No fsync: the store must survive a restart of `tug`, which the page cache
    /// does; a crash of the machine loses only allocations of sandboxes that died with it
    /// (no pod survives a reboot), and an fsync under the store's lock made 100 pods
    /// started at once wait ~5 s for each other's allocations.
    fn persist(&self, map: &BTreeMap<String, String>) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(map).context("encoding the IPAM store")?;
        std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(())
    }

    /// Applies `f` to a copy of the map and persists the result if `f` says it changed;
    /// the map in memory changes only once the file does.
    fn update<T>(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> (bool, T)) -> Result<T> {
        let mut map = self.map.lock();
        let mut next = map.clone();
        let (changed, out) = f(&mut next);
        if changed {
            if next.len() > MAX_ENTRIES {
                anyhow::bail!("the store holds at most {MAX_ENTRIES} entries");
            }
            self.persist(&next)?;
            *map = next;
        }
        Ok(out)
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.map.lock().get(key).cloned()
    }

    pub fn set(&self, key: &str, value: &str) -> Result<()> {
        self.update(|m| {
            let changed = m.get(key).map(String::as_str) != Some(value);
            m.insert(key.to_string(), value.to_string());
            (changed, ())
        })
    }

    pub fn delete(&self, key: &str) -> Result<bool> {
        self.update(|m| {
            let had = m.remove(key).is_some();
            (had, had)
        })
    }

    pub fn list_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.map
            .lock()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
    ) -> Result<bool> {
        self.update(|m| {
            if m.get(key).map(String::as_str) != expected {
                return (false, false);
            }
            match value {
                Some(v) => {
                    m.insert(key.to_string(), v.to_string());
                }
                None => {
                    m.remove(key);
                }
            }
            (true, true)
        })
    }

    /// Every entry (for tests and diagnostics).
    pub fn entries(&self) -> Vec<(String, String)> {
        self.list_prefix("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_compares() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("network/bridge.json");
        let s = IpamStore::open(&path).unwrap();
        assert!(s.compare_and_set("ip/10.0.0.2", None, Some("a")).unwrap());
        assert!(!s.compare_and_set("ip/10.0.0.2", None, Some("b")).unwrap());
        s.set("sandbox/a", "10.0.0.2").unwrap();
        s.set("other", "x").unwrap();
        assert_eq!(
            s.list_prefix("ip/"),
            vec![("ip/10.0.0.2".to_string(), "a".to_string())]
        );
        drop(s);
        let s = IpamStore::open(&path).unwrap();
        assert_eq!(s.get("sandbox/a").as_deref(), Some("10.0.0.2"));
        assert!(s.compare_and_set("ip/10.0.0.2", Some("a"), None).unwrap());
        assert!(s.delete("sandbox/a").unwrap());
        assert!(!s.delete("sandbox/a").unwrap());
        assert_eq!(s.entries(), vec![("other".to_string(), "x".to_string())]);
        assert!(!path.with_extension("json.tmp").exists());
    }
}
