//! A plugin's manifest: its kind, limits, capabilities and configuration.
//!
//! The manifest is what a `Plugin` object's spec carries besides the component itself; its
//! JSON form (camelCase) is meant to be embedded there:
//!
//! ```json
//! {
//!   "kind": "admission",
//!   "limits": {"memoryBytes": 67108864, "timeoutMs": 100},
//!   "capabilities": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
//!   "config": {"key": "team", "value": "infra"}
//! }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kind of a plugin: which WIT world its component implements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// `tugboat:plugin/admission` — an admission hook (validating or mutating).
    #[default]
    Admission,
    /// Draft worlds, not loadable yet (later issues).
    Controller,
    Scheduler,
    Network,
    Storage,
}

impl PluginKind {
    /// The WIT world's name.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Admission => "admission",
            PluginKind::Controller => "controller",
            PluginKind::Scheduler => "scheduler",
            PluginKind::Network => "network",
            PluginKind::Storage => "storage",
        }
    }
}

/// Everything about a plugin except its code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginManifest {
    #[serde(default)]
    pub kind: PluginKind,
    #[serde(default)]
    pub limits: Limits,
    /// What the plugin may do through the host API (nothing when empty).
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Handed to the plugin's `init` as JSON (`null` when unset).
    #[serde(default)]
    pub config: Value,
}

/// Resource limits and the health policy. Every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Limits {
    /// The cap on the plugin's linear memory (default 64 MiB).
    pub memory_bytes: u64,
    /// Wall-clock deadline of one call, host API calls included (default 100 ms).
    pub timeout_ms: u64,
    /// Deadline of instantiating a fresh instance and running its `init` (default 1 s;
    /// interpreters in a component can take a while to start).
    pub init_timeout_ms: u64,
    /// How many calls one instance serves before it is replaced by a fresh one (default
    /// 10,000; 1 gives every call a fresh instance).
    pub max_calls_per_instance: u32,
    /// How many warm instances are kept for reuse (default 4).
    pub max_idle_instances: u32,
    /// Consecutive failures after which the plugin is `Degraded` and calls fail fast
    /// (default 5).
    pub degrade_after_failures: u32,
    /// The first back-off while degraded (default 1 s); it doubles after every failed probe.
    pub backoff_initial_ms: u64,
    /// The longest back-off (default 60 s).
    pub backoff_max_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            timeout_ms: 100,
            init_timeout_ms: 1000,
            max_calls_per_instance: 10_000,
            max_idle_instances: 4,
            degrade_after_failures: 5,
            backoff_initial_ms: 1000,
            backoff_max_ms: 60_000,
        }
    }
}

impl Limits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn init_timeout(&self) -> Duration {
        Duration::from_millis(self.init_timeout_ms)
    }

    pub fn backoff_initial(&self) -> Duration {
        Duration::from_millis(self.backoff_initial_ms)
    }

    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
    }
}

/// One rule of what a plugin may do, like an RBAC `PolicyRule`: the plugin may use any of
/// `verbs` on any of `resources` in any of `api_groups`. `"*"` matches everything; the core
/// group is `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capability {
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
}

/// The verbs of the host API.
pub const VERBS: &[&str] = &["get", "list", "create", "update", "patch", "delete"];

fn matches(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

impl Capability {
    /// Whether this rule allows `verb` on `resource` in `group`.
    pub fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        matches(&self.api_groups, group)
            && matches(&self.resources, resource)
            && matches(&self.verbs, verb)
    }
}

/// Whether any of `capabilities` allows `verb` on `resource` in `group`.
pub fn allowed(capabilities: &[Capability], group: &str, resource: &str, verb: &str) -> bool {
    capabilities.iter().any(|c| c.allows(group, resource, verb))
}

impl PluginManifest {
    /// Checks the limits and capabilities; the error says what is wrong.
    pub fn validate(&self, max_memory_bytes: u64) -> Result<(), String> {
        let l = &self.limits;
        if l.memory_bytes < (1 << 20) || l.memory_bytes > max_memory_bytes {
            return Err(format!(
                "limits.memoryBytes must be between 1 MiB and {max_memory_bytes}, not {}",
                l.memory_bytes
            ));
        }
        if !(1..=60_000).contains(&l.timeout_ms) {
            return Err(format!(
                "limits.timeoutMs must be between 1 and 60000, not {}",
                l.timeout_ms
            ));
        }
        if !(1..=600_000).contains(&l.init_timeout_ms) {
            return Err(format!(
                "limits.initTimeoutMs must be between 1 and 600000, not {}",
                l.init_timeout_ms
            ));
        }
        if l.max_calls_per_instance == 0 {
            return Err("limits.maxCallsPerInstance must be at least 1".to_string());
        }
        if l.degrade_after_failures == 0 {
            return Err("limits.degradeAfterFailures must be at least 1".to_string());
        }
        if l.backoff_initial_ms == 0 || l.backoff_max_ms < l.backoff_initial_ms {
            return Err(
                "limits.backoffInitialMs must be at least 1 and at most limits.backoffMaxMs"
                    .to_string(),
            );
        }
        for (i, c) in self.capabilities.iter().enumerate() {
            if c.api_groups.is_empty() || c.resources.is_empty() || c.verbs.is_empty() {
                return Err(format!(
                    "capabilities[{i}] needs apiGroups, resources and verbs"
                ));
            }
            if let Some(v) = c
                .verbs
                .iter()
                .find(|v| *v != "*" && !VERBS.contains(&v.as_str()))
            {
                return Err(format!(
                    "capabilities[{i}]: unknown verb {v:?} (known: {})",
                    VERBS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_documented_form_with_defaults() {
        let m: PluginManifest = serde_json::from_value(json!({
            "limits": {"timeoutMs": 50},
            "capabilities": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            "config": {"a": 1}
        }))
        .unwrap();
        assert_eq!(m.kind, PluginKind::Admission);
        assert_eq!(m.limits.timeout_ms, 50);
        assert_eq!(m.limits.memory_bytes, 64 << 20);
        assert!(m.validate(1 << 30).is_ok());
        assert!(allowed(&m.capabilities, "", "configmaps", "get"));
        assert!(!allowed(&m.capabilities, "", "configmaps", "list"));
        assert!(!allowed(&m.capabilities, "", "secrets", "get"));
        assert!(!allowed(&m.capabilities, "apps", "configmaps", "get"));
    }

    #[test]
    fn wildcards_and_validation() {
        let c = Capability {
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            verbs: vec!["get".into()],
        };
        assert!(c.allows("apps", "deployments", "get"));
        assert!(!c.allows("apps", "deployments", "delete"));
        let mut m = PluginManifest::default();
        m.limits.timeout_ms = 0;
        assert!(m.validate(1 << 30).is_err());
        let mut m = PluginManifest::default();
        m.capabilities.push(Capability {
            api_groups: vec!["".into()],
            resources: vec!["pods".into()],
            verbs: vec!["escalate".into()],
        });
        assert!(m.validate(1 << 30).unwrap_err().contains("unknown verb"));
    }
}
