//! What can go wrong loading or calling a plugin.

use std::sync::Arc;
use std::time::Duration;

/// A plugin failure. Every variant names the plugin; the `Display` text is meant for a
/// `Plugin`'s status and for users (e.g. in an admission error when `failurePolicy: Fail`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// The manifest is invalid (limits out of range, unknown kind, ...).
    #[error("plugin {plugin}: invalid manifest: {message}")]
    Manifest { plugin: Arc<str>, message: String },

    /// The bytes are not a valid WebAssembly component (or compiling it failed).
    #[error("plugin {plugin}: not a loadable WebAssembly component: {message}")]
    Compile { plugin: Arc<str>, message: String },

    /// The component does not fit the plugin kind's world (missing exports, imports the
    /// host does not provide, wrong types).
    #[error("plugin {plugin} does not implement the `{world}` world: {message}")]
    Incompatible {
        plugin: Arc<str>,
        world: &'static str,
        message: String,
    },

    /// `init` rejected the configuration.
    #[error("plugin {plugin}: init rejected its configuration: {message}")]
    Init { plugin: Arc<str>, message: String },

    /// A controller's reconcile reported a failure of its own (the host retries).
    #[error("plugin {plugin}: reconcile failed: {message}")]
    Reconcile { plugin: Arc<str>, message: String },

    /// The call ran past its wall-clock deadline and was stopped.
    #[error("plugin {plugin} did not answer within its deadline of {deadline:?}")]
    Timeout {
        plugin: Arc<str>,
        deadline: Duration,
    },

    /// The plugin tried to grow its memory past its cap.
    #[error("plugin {plugin} exceeded its memory limit of {limit} bytes{detail}")]
    MemoryLimit {
        plugin: Arc<str>,
        limit: u64,
        /// `": <what the plugin printed>"` or empty.
        detail: String,
    },

    /// The plugin panicked; `message` is its panic message.
    #[error("plugin {plugin} panicked: {message}")]
    Panic { plugin: Arc<str>, message: String },

    /// The plugin trapped (`unreachable`, out-of-bounds access, exit, ...).
    #[error("plugin {plugin} crashed: {message}")]
    Trap { plugin: Arc<str>, message: String },

    /// The plugin answered with something malformed (a patch that is not an RFC 6902 JSON
    /// Patch, an invalid status code, a value the canonical ABI rejects, ...).
    #[error("plugin {plugin} returned an invalid response: {message}")]
    InvalidResponse { plugin: Arc<str>, message: String },

    /// Calls fail fast: the plugin failed too often in a row and is backing off.
    #[error(
        "plugin {plugin} is degraded after {failures} consecutive failures (next try in {retry_after:?}); last error: {last_error}"
    )]
    Degraded {
        plugin: Arc<str>,
        failures: u32,
        retry_after: Duration,
        last_error: String,
    },

    /// No version of the plugin is active (a [`super::PluginSlot`] that is empty).
    #[error("plugin {plugin} is not loaded")]
    NotLoaded { plugin: Arc<str> },

    /// A failure on the host's side (instance pool exhausted, cache I/O, ...).
    #[error("plugin {plugin}: {message}")]
    Internal { plugin: Arc<str>, message: String },
}

impl PluginError {
    /// A short machine-readable name of the variant (`Timeout`, `Panic`, ...), e.g. for
    /// metrics and a status `reason`.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Manifest { .. } => "InvalidManifest",
            PluginError::Compile { .. } => "CompileError",
            PluginError::Incompatible { .. } => "Incompatible",
            PluginError::Init { .. } => "InitFailed",
            PluginError::Reconcile { .. } => "ReconcileFailed",
            PluginError::Timeout { .. } => "Timeout",
            PluginError::MemoryLimit { .. } => "MemoryLimit",
            PluginError::Panic { .. } => "Panic",
            PluginError::Trap { .. } => "Trap",
            PluginError::InvalidResponse { .. } => "InvalidResponse",
            PluginError::Degraded { .. } => "Degraded",
            PluginError::NotLoaded { .. } => "NotLoaded",
            PluginError::Internal { .. } => "Internal",
        }
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        match self {
            PluginError::Manifest { plugin, .. }
            | PluginError::Compile { plugin, .. }
            | PluginError::Incompatible { plugin, .. }
            | PluginError::Init { plugin, .. }
            | PluginError::Reconcile { plugin, .. }
            | PluginError::Timeout { plugin, .. }
            | PluginError::MemoryLimit { plugin, .. }
            | PluginError::Panic { plugin, .. }
            | PluginError::Trap { plugin, .. }
            | PluginError::InvalidResponse { plugin, .. }
            | PluginError::Degraded { plugin, .. }
            | PluginError::NotLoaded { plugin }
            | PluginError::Internal { plugin, .. } => plugin,
        }
    }
}
