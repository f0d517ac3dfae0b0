//! The host API: logging and the cluster's API objects.
//!
//! Every call that touches objects is checked by the host against the capabilities in the
//! plugin's manifest; a call beyond them returns a [`HostError`] with code 403
//! (`Forbidden`). Calls count against the deadline of the plugin call that makes them.
//!
//! `api_version` is `group/version` (`apps/v1`) or `version` for the core group (`v1`);
//! `kind_or_resource` is a kind (`Pod`) or a resource (`pods`); `namespace` is `None` for
//! cluster-scoped objects (and, for [`list`], all namespaces).
//!
//! On `wasm32` these functions call the host. On any other target (native unit tests) they
//! call the [`MockHost`](crate::testing::MockHost) installed with
//! [`testing::set_mock_host`](crate::testing::set_mock_host); without one they fail with
//! code 501 and [`log`] prints to stderr.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error from a host call, shaped like a Kubernetes `Status` failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostError {
    /// HTTP status: 403 (no capability), 404, 409, 504 (deadline), ...
    pub code: u16,
    /// Machine-readable reason: `Forbidden`, `NotFound`, `Conflict`, ...
    pub reason: String,
    pub message: String,
}

impl HostError {
    pub fn new(code: u16, reason: impl Into<String>, message: impl Into<String>) -> Self {
        HostError {
            code,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Whether the host refused the call for lack of a capability.
    pub fn is_forbidden(&self) -> bool {
        self.code == 403
    }

    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for HostError {}

/// The severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes a line to the plugin's log (`tug plugin logs`). Never fails.
pub fn log(level: LogLevel, message: &str) {
    imp::log(level, message)
}

/// Reads one object; `Ok(None)` when it does not exist. Capability verb: `get`.
pub fn get(
    api_version: &str,
    kind_or_resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, HostError> {
    imp::get(api_version, kind_or_resource, namespace, name)
}

/// Lists objects, optionally filtered by a label selector (`app=web,tier!=db`).
/// Capability verb: `list`.
pub fn list(
    api_version: &str,
    kind_or_resource: &str,
    namespace: Option<&str>,
    label_selector: Option<&str>,
) -> Result<Vec<Value>, HostError> {
    imp::list(api_version, kind_or_resource, namespace, label_selector)
}

/// Creates an object (its `apiVersion`, `kind` and `metadata.namespace` say where) and
/// returns it as stored. Capability verb: `create`.
pub fn create(object: &Value) -> Result<Value, HostError> {
    imp::create(object)
}

/// Replaces an object and returns it as stored. Capability verb: `update`.
pub fn update(object: &Value) -> Result<Value, HostError> {
    imp::update(object)
}

/// Deletes an object. Capability verb: `delete`.
pub fn delete(
    api_version: &str,
    kind_or_resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), HostError> {
    imp::delete(api_version, kind_or_resource, namespace, name)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{HostError, LogLevel};
    use crate::bindings::admission::tugboat::plugin::host as wit;
    use crate::bindings::admission::tugboat::plugin::types as wit_types;
    use serde_json::Value;

    fn err(e: wit_types::Error) -> HostError {
        HostError {
            code: e.code,
            reason: e.reason,
            message: e.message,
        }
    }

    fn parse(text: &str) -> Result<Value, HostError> {
        serde_json::from_str(text).map_err(|e| {
            HostError::new(
                500,
                "InternalError",
                format!("the host sent unreadable JSON: {e}"),
            )
        })
    }

    pub fn log(level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Trace => wit_types::LogLevel::Trace,
            LogLevel::Debug => wit_types::LogLevel::Debug,
            LogLevel::Info => wit_types::LogLevel::Info,
            LogLevel::Warn => wit_types::LogLevel::Warn,
            LogLevel::Error => wit_types::LogLevel::Error,
        };
        wit::log(level, message)
    }

    pub fn get(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError> {
        match wit::get(api_version, kind, namespace, name).map_err(err)? {
            Some(text) => parse(&text).map(Some),
            None => Ok(None),
        }
    }

    pub fn list(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        wit::list(api_version, kind, namespace, label_selector)
            .map_err(err)?
            .iter()
            .map(|t| parse(t))
            .collect()
    }

    pub fn create(object: &Value) -> Result<Value, HostError> {
        parse(&wit::create(&object.to_string()).map_err(err)?)
    }

    pub fn update(object: &Value) -> Result<Value, HostError> {
        parse(&wit::update(&object.to_string()).map_err(err)?)
    }

    pub fn delete(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError> {
        wit::delete(api_version, kind, namespace, name).map_err(err)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{HostError, LogLevel};
    use crate::testing::with_mock_host;
    use serde_json::Value;

    pub fn log(level: LogLevel, message: &str) {
        with_mock_host(|h| h.log(level, message))
    }

    pub fn get(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError> {
        with_mock_host(|h| h.get(api_version, kind, namespace, name))
    }

    pub fn list(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        with_mock_host(|h| h.list(api_version, kind, namespace, label_selector))
    }

    pub fn create(object: &Value) -> Result<Value, HostError> {
        with_mock_host(|h| h.create(object))
    }

    pub fn update(object: &Value) -> Result<Value, HostError> {
        with_mock_host(|h| h.update(object))
    }

    pub fn delete(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError> {
        with_mock_host(|h| h.delete(api_version, kind, namespace, name))
    }
}
