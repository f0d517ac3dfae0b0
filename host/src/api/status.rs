//! Errors as Kubernetes `Status` objects: the right code, reason and a message a person can
//! act on.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::StoreError;

/// An API error, rendered as a `meta/v1 Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// The group/resource and name an error is about, as `Status.details` reports them.
pub struct Subject<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

impl Subject<'_> {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        let mut d = json!({"name": self.name, "kind": self.resource});
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn not_found(s: &Subject<'_>) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", s.qualified(), s.name),
        )
        .with_details(s.details())
    }

    /// A path or resource type the server does not serve.
    pub fn no_route(message: impl Into<String>) -> Self {
        Self::new(404, "NotFound", message)
    }

    pub fn already_exists(s: &Subject<'_>) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", s.qualified(), s.name),
        )
        .with_details(s.details())
    }

    /// A stale resourceVersion or other precondition failure.
    pub fn conflict(s: &Subject<'_>, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                s.qualified(),
                s.name,
                why
            ),
        )
        .with_details(s.details())
    }

    pub fn stale(s: &Subject<'_>) -> Self {
        Self::conflict(
            s,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per field error.
    pub fn invalid(s: &Subject<'_>, causes: Vec<Value>) -> Self {
        let msgs: Vec<String> = causes
            .iter()
            .map(|c| {
                let field = c.get("field").and_then(Value::as_str).unwrap_or("");
                let msg = c.get("message").and_then(Value::as_str).unwrap_or("");
                if field.is_empty() {
                    msg.to_string()
                } else {
                    format!("{field}: {msg}")
                }
            })
            .collect();
        let body = if msgs.len() == 1 {
            msgs[0].clone()
        } else {
            format!("[{}]", msgs.join(", "))
        };
        let mut details = json!({"name": s.name, "kind": s.kind, "causes": causes});
        if !s.group.is_empty() {
            details["group"] = json!(s.group);
        }
        Self::new(
            422,
            "Invalid",
            format!("{} \"{}\" is invalid: {}", s.kind, s.name, body),
        )
        .with_details(details)
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Gone", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// Map a store error about `s` to the API error a client expects.
    pub fn from_store(err: StoreError, s: &Subject<'_>) -> Self {
        match err {
            StoreError::NotFound(_) => Self::not_found(s),
            StoreError::AlreadyExists(_) => Self::already_exists(s),
            StoreError::Conflict { .. } => Self::stale(s),
            StoreError::Compacted { requested, oldest } => {
                Self::expired(format!("too old resource version: {requested} ({oldest})"))
            }
            StoreError::FutureRevision { requested, current } => Self::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            StoreError::Closed | StoreError::Internal(_) => {
                tracing::error!(error = %err, "store error");
                Self::internal(format!("storage error: {err}"))
            }
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// A `Status` of success (what a delete of an object that is gone returns).
pub fn success_status(s: &Subject<'_>, uid: Option<&str>) -> Value {
    let mut details = s.details();
    if let Some(uid) = uid {
        details["uid"] = json!(uid);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
