//! Hot swap: the active version of a plugin behind an atomically swappable pointer.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::admission::{AdmissionPlugin, AdmissionRequest, AdmissionResponse};
use super::error::PluginError;

/// The active version of one admission plugin. A call takes the version active when it
/// starts and finishes on it; [`PluginSlot::swap`] switches new calls to a new version
/// only after that version passed its first call (instantiate + `init`), so no call fails
/// because of a swap and a broken version never serves.
pub struct PluginSlot {
    name: Arc<str>,
    current: ArcSwapOption<AdmissionPlugin>,
    /// Serialises activations (probing is async; two concurrent activations must not
    /// interleave their swaps out of order).
    activation: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PluginSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSlot")
            .field("name", &self.name)
            .field(
                "current",
                &self.current.load().as_ref().map(|p| p.digest().to_string()),
            )
            .finish()
    }
}

impl PluginSlot {
    /// An empty slot (calls fail with [`PluginError::NotLoaded`] until a version is
    /// activated).
    pub fn new(name: &str) -> Self {
        PluginSlot {
            name: name.into(),
            current: ArcSwapOption::empty(),
            activation: tokio::sync::Mutex::new(()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The active version.
    pub fn current(&self) -> Option<Arc<AdmissionPlugin>> {
        self.current.load_full()
    }

    /// Probes `new` (instantiate + `init(config)`) and, if that succeeds, makes it the
    /// active version; returns the previous one (whose in-flight calls finish on it). On
    /// failure nothing changes: the old version keeps serving and the error says why.
    pub async fn swap(
        &self,
        new: AdmissionPlugin,
    ) -> Result<Option<Arc<AdmissionPlugin>>, PluginError> {
        let _serial = self.activation.lock().await;
        if let Err(e) = new.probe().await {
            tracing::warn!(
                plugin = %self.name,
                digest = new.digest(),
                error = %e,
                "new plugin version rejected; the previous version keeps serving"
            );
            return Err(e);
        }
        let new = Arc::new(new);
        let old = self.current.swap(Some(new.clone()));
        tracing::info!(
            plugin = %self.name,
            digest = new.digest(),
            previous = old.as_ref().map(|o| o.digest()).unwrap_or("none"),
            "plugin version activated"
        );
        Ok(old)
    }

    /// Deactivates the plugin; returns the version that was active.
    pub fn unload(&self) -> Option<Arc<AdmissionPlugin>> {
        self.current.swap(None)
    }

    /// Judges `request` with the active version.
    pub async fn admit(
        &self,
        request: &AdmissionRequest,
    ) -> Result<AdmissionResponse, PluginError> {
        let Some(plugin) = self.current.load_full() else {
            return Err(PluginError::NotLoaded {
                plugin: self.name.clone(),
            });
        };
        plugin.admit(request).await
    }
}
