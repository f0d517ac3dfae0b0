//! Admission hooks: judge (and optionally mutate) a write before it is stored.
//!
//! Implement [`AdmissionPolicy`] and export it with [`export_admission!`](crate::export_admission).
//! The host calls [`AdmissionPolicy::init`] once per instance with the manifest's `config`,
//! then [`AdmissionPolicy::admit`] per request. An instance may serve many requests or just
//! one: keep configuration (set in `init`) in a `static`, but do not depend on state carried
//! from one `admit` to the next.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bindings::admission::exports::tugboat::plugin::admission_plugin as wit;
use crate::bindings::admission::tugboat::plugin::types as wit_types;

/// An admission policy. Both functions are plain Rust, so a policy can be unit-tested
/// natively by calling them (see [`crate::testing`]).
pub trait AdmissionPolicy {
    /// Called once per instance with the plugin's `config` (JSON `null` when none is set).
    /// Return `Err` to reject the configuration: the plugin (version) is then not activated.
    fn init(config: &Value) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Judges one request.
    fn admit(req: &AdmissionRequest) -> AdmissionResponse;
}

/// The operation a request is judged for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// A group/version/kind; the core group is `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// A group/version/resource (`resource` is the lower-case plural, e.g. `pods`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Gvr {
    pub group: String,
    pub version: String,
    pub resource: String,
}

/// Who made the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// One write to judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub operation: Operation,
    /// The kind of `object`.
    pub kind: Gvk,
    /// The resource written.
    pub resource: Gvr,
    /// `status`, `scale`, ... for a subresource write.
    pub sub_resource: Option<String>,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Empty on a create with `metadata.generateName`.
    pub name: String,
    /// The object as it will be stored; `None` on delete.
    pub object: Option<Value>,
    /// The stored object before the write; `None` on create.
    pub old_object: Option<Value>,
    pub user: UserInfo,
    /// A dry run: the policy must have no side effects.
    pub dry_run: bool,
}

impl AdmissionRequest {
    /// A request for `operation` on `object`, with kind, resource, namespace and name taken
    /// from the object itself (the resource is the naive plural of the kind). Meant for
    /// tests; set the other fields directly.
    pub fn for_object(operation: Operation, object: Value) -> Self {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("v1");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let str_at = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        AdmissionRequest {
            uid: "00000000-0000-0000-0000-000000000000".to_string(),
            operation,
            resource: Gvr {
                group: group.clone(),
                version: version.clone(),
                resource: naive_plural(&kind),
            },
            kind: Gvk {
                group,
                version,
                kind,
            },
            sub_resource: None,
            namespace: str_at("/metadata/namespace"),
            name: str_at("/metadata/name").unwrap_or_default(),
            object: Some(object),
            old_object: None,
            user: UserInfo {
                username: "tester".to_string(),
                ..UserInfo::default()
            },
            dry_run: false,
        }
    }

    /// A create of `object` (see [`AdmissionRequest::for_object`]).
    pub fn create(object: Value) -> Self {
        Self::for_object(Operation::Create, object)
    }

    /// Decodes `object` into a typed value, e.g. a `k8s_openapi` `Pod` (feature `k8s`).
    /// `Ok(None)` when there is no object (a delete).
    pub fn object_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.object.as_ref().map(|o| T::deserialize(o)).transpose()
    }

    /// Decodes `old_object` like [`AdmissionRequest::object_as`].
    pub fn old_object_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.old_object
            .as_ref()
            .map(|o| T::deserialize(o))
            .transpose()
    }

    /// Whether the request is for `kind` in `group` (`""` is the core group).
    pub fn is_kind(&self, group: &str, kind: &str) -> bool {
        self.kind.group == group && self.kind.kind == kind
    }
}

/// The verdict on a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdmissionResponse {
    pub allowed: bool,
    /// For a denial: the HTTP status (the host uses 403 when unset).
    pub code: Option<u16>,
    /// For a denial: the machine-readable reason (the host uses `Forbidden` when unset).
    pub reason: Option<String>,
    /// For a denial: the message the user sees.
    pub message: Option<String>,
    /// For a mutating hook: an RFC 6902 JSON Patch (a JSON array) applied to the object.
    pub patch: Option<Value>,
    /// Warnings returned to the client.
    pub warnings: Vec<String>,
}

impl AdmissionResponse {
    /// Allows the request unchanged.
    pub fn allow() -> Self {
        AdmissionResponse {
            allowed: true,
            ..Self::default()
        }
    }

    /// Denies the request with `message` (HTTP 403 Forbidden).
    pub fn deny(message: impl Into<String>) -> Self {
        AdmissionResponse {
            allowed: false,
            message: Some(message.into()),
            ..Self::default()
        }
    }

    /// Denies the request with an explicit HTTP status and reason, e.g.
    /// `deny_with(422, "Invalid", "...")`.
    pub fn deny_with(code: u16, reason: impl Into<String>, message: impl Into<String>) -> Self {
        AdmissionResponse {
            allowed: false,
            code: Some(code),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..Self::default()
        }
    }

    /// Allows the request with an RFC 6902 JSON Patch (a JSON array of operations, or a
    /// [`JsonPatch`](crate::patch::JsonPatch) converted with `.into()`).
    pub fn patch(json_patch: impl Into<Value>) -> Self {
        AdmissionResponse {
            allowed: true,
            patch: Some(json_patch.into()),
            ..Self::default()
        }
    }

    /// Adds a warning for the client.
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

/// `Pod` → `pods`, `Ingress` → `ingresses`, `NetworkPolicy` → `networkpolicies`.
pub(crate) fn naive_plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.is_empty() {
        return lower;
    }
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

impl From<wit_types::Operation> for Operation {
    fn from(op: wit_types::Operation) -> Self {
        match op {
            wit_types::Operation::Create => Operation::Create,
            wit_types::Operation::Update => Operation::Update,
            wit_types::Operation::Delete => Operation::Delete,
            wit_types::Operation::Connect => Operation::Connect,
        }
    }
}

fn parse_json(what: &str, text: Option<String>) -> Result<Option<Value>, String> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| format!("the host sent an unreadable {what}: {e}"))
    })
    .transpose()
}

impl TryFrom<wit::AdmissionRequest> for AdmissionRequest {
    type Error = String;

    fn try_from(r: wit::AdmissionRequest) -> Result<Self, String> {
        Ok(AdmissionRequest {
            uid: r.uid,
            operation: r.operation.into(),
            kind: Gvk {
                group: r.kind.group,
                version: r.kind.version,
                kind: r.kind.kind,
            },
            resource: Gvr {
                group: r.resource.group,
                version: r.resource.version,
                resource: r.resource.resource,
            },
            sub_resource: r.sub_resource,
            namespace: r.namespace,
            name: r.name,
            object: parse_json("object", r.object)?,
            old_object: parse_json("old object", r.old_object)?,
            user: UserInfo {
                username: r.user.username,
                uid: r.user.uid,
                groups: r.user.groups,
            },
            dry_run: r.dry_run,
        })
    }
}

impl From<AdmissionResponse> for wit::AdmissionResponse {
    fn from(r: AdmissionResponse) -> Self {
        wit::AdmissionResponse {
            allowed: r.allowed,
            code: r.code,
            reason: r.reason,
            message: r.message,
            patch: r.patch.map(|p| p.to_string()),
            warnings: r.warnings,
        }
    }
}

/// The glue [`export_admission!`](crate::export_admission) expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use crate::bindings::admission::exports::tugboat::plugin::admission_plugin::{
        AdmissionRequest as WitRequest, AdmissionResponse as WitResponse, Guest,
    };

    pub fn init<P: AdmissionPolicy>(config: String) -> Result<(), String> {
        let config = if config.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&config).map_err(|e| format!("config is not valid JSON: {e}"))?
        };
        P::init(&config)
    }

    pub fn admit<P: AdmissionPolicy>(request: WitRequest) -> WitResponse {
        match AdmissionRequest::try_from(request) {
            Ok(request) => P::admit(&request).into(),
            Err(message) => AdmissionResponse::deny_with(400, "BadRequest", message).into(),
        }
    }
}

/// Exports a type implementing [`AdmissionPolicy`] as the component's `admission`
/// interface. Use it once per plugin crate (a `cdylib`). On a native target (unit tests)
/// it expands to nothing.
///
/// ```ignore
/// struct MyPolicy;
/// impl AdmissionPolicy for MyPolicy { /* ... */ }
/// export_admission!(MyPolicy);
/// ```
#[macro_export]
macro_rules! export_admission {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __TugboatAdmissionExport;

            impl $crate::admission::__private::Guest for __TugboatAdmissionExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::admission::__private::init::<$policy>(config)
                }

                fn admit(
                    request: $crate::admission::__private::WitRequest,
                ) -> $crate::admission::__private::WitResponse {
                    $crate::admission::__private::admit::<$policy>(request)
                }
            }

            $crate::bindings::admission::__tugboat_export_admission_world!(
                __TugboatAdmissionExport with_types_in $crate::bindings::admission
            );
        };
    };
}
