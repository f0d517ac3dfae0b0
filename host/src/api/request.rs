//! Request decoding: paths, query parameters, bodies and content negotiation.

use axum::body::Body;
use axum::http::HeaderMap;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;

use super::status::{ApiError, ApiResult};

/// The largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Where a resource request points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

/// What a path under `/api` or `/apis` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath {
    /// `/api` or `/apis`.
    Root {
        legacy: bool,
    },
    /// `/apis/<group>`.
    Group {
        group: String,
    },
    /// `/api/v1` or `/apis/<group>/<version>`.
    GroupVersion {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parse an API path; `None` if it is not under `/api` or `/apis`.
pub fn parse_path(path: &str) -> Option<ApiPath> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    let (group, version, rest) = match segs.first().map(String::as_str) {
        Some("api") => match segs.get(1) {
            None => return Some(ApiPath::Root { legacy: true }),
            Some(v) => (String::new(), v.clone(), &segs[2..]),
        },
        Some("apis") => match (segs.get(1), segs.get(2)) {
            (None, _) => return Some(ApiPath::Root { legacy: false }),
            (Some(g), None) => return Some(ApiPath::Group { group: g.clone() }),
            (Some(g), Some(v)) => (g.clone(), v.clone(), &segs[3..]),
        },
        _ => return None,
    };
    if rest.is_empty() {
        return Some(ApiPath::GroupVersion { group, version });
    }
    let (watch_prefix, rest) = match rest.first().map(String::as_str) {
        Some("watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let mut p = ResourcePath {
        group,
        version,
        namespace: None,
        plural: String::new(),
        name: None,
        subresource: None,
        watch_prefix,
    };
    match rest {
        [ns_kw, ns, plural, tail @ ..]
            if ns_kw == "namespaces"
                && !(tail.is_empty() && (plural == "status" || plural == "finalize")) =>
        {
            p.namespace = Some(ns.clone());
            p.plural = plural.clone();
            p.name = tail.first().cloned();
            p.subresource = tail.get(1).cloned();
            if tail.len() > 2 {
                return None;
            }
        }
        [plural, tail @ ..] => {
            p.plural = plural.clone();
            p.name = tail.first().cloned();
            p.subresource = tail.get(1).cloned();
            if tail.len() > 2 {
                return None;
            }
        }
        [] => return None,
    }
    Some(ApiPath::Resource(p))
}

/// The query parameters the API understands.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub limit: Option<String>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub watch: Option<String>,
    pub timeout_seconds: Option<String>,
    pub allow_watch_bookmarks: Option<String>,
    pub send_initial_events: Option<String>,
    pub field_manager: Option<String>,
    pub field_validation: Option<String>,
    pub dry_run: Option<String>,
    pub force: Option<String>,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<String>,
    pub orphan_dependents: Option<String>,
    pub include_object: Option<String>,
    pub container: Option<String>,
    /// `pods/log`: stream new lines as they are written.
    pub follow: Option<String>,
    /// `pods/log`: the last N lines only.
    pub tail_lines: Option<String>,
    /// `pods/log`: lines of the last N seconds only.
    pub since_seconds: Option<String>,
    /// `pods/log`: lines since this RFC 3339 time only.
    pub since_time: Option<String>,
    /// `pods/log`: prefix each line with its RFC 3339 timestamp.
    pub timestamps: Option<String>,
    /// `pods/log`: the previous (terminated) instance of the container.
    pub previous: Option<String>,
    /// `pods/log`: stop after this many bytes.
    pub limit_bytes: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1" | "True" | "TRUE"))
}

impl Query {
    pub fn parse(raw: Option<&str>) -> ApiResult<Query> {
        let raw = raw.unwrap_or("");
        serde_urlencoded::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
    }

    pub fn is_watch(&self) -> bool {
        truthy(&self.watch)
    }

    pub fn bookmarks(&self) -> bool {
        truthy(&self.allow_watch_bookmarks)
    }

    pub fn send_initial_events(&self) -> bool {
        truthy(&self.send_initial_events)
    }

    pub fn force(&self) -> bool {
        truthy(&self.force)
    }

    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.dry_run.as_deref() {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "unsupported dryRun value {other:?}: the only supported value is \"All\""
            ))),
        }
    }

    pub fn limit(&self) -> ApiResult<usize> {
        match self.limit.as_deref() {
            None | Some("") => Ok(0),
            Some(s) => s.parse::<i64>().map(|n| n.max(0) as usize).map_err(|_| {
                ApiError::bad_request(format!("invalid limit {s:?}: must be an integer"))
            }),
        }
    }

    pub fn timeout_seconds(&self) -> ApiResult<Option<u64>> {
        match self.timeout_seconds.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s.parse::<u64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid timeoutSeconds {s:?}: must be a non-negative integer"
                ))
            }),
        }
    }

    /// The resourceVersion parameter as a number (`None` when absent or empty).
    pub fn resource_version(&self) -> ApiResult<Option<u64>> {
        parse_rv(self.resource_version.as_deref())
    }

    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.field_validation.as_deref() {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation {other:?} is invalid: must be one of \"Ignore\", \"Warn\" or \"Strict\""
            ))),
        }
    }
}

/// Parse a resourceVersion string.
pub fn parse_rv(s: Option<&str>) -> ApiResult<Option<u64>> {
    match s {
        None | Some("") => Ok(None),
        Some(s) => s.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resource version {s:?}: must be an unsigned integer"
            ))
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Read a body, refusing more than [`MAX_BODY_BYTES`].
pub async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::too_large(MAX_BODY_BYTES))
            } else {
                Err(ApiError::bad_request(format!("reading request body: {e}")))
            }
        }
    }
}

/// The media type of a request, without parameters, lower-cased.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decode an object body by its content type (JSON, YAML or Kubernetes protobuf).
pub fn decode_object(ct: &str, body: &[u8]) -> ApiResult<Value> {
    let v = match ct {
        "" | "application/json" | "*/*" => decode_json(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body)?,
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("decoding protobuf body: {e}")))?,
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other:?})"
            )));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object (a Kubernetes resource)",
        ));
    }
    Ok(v)
}

pub fn decode_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    let y: serde_yaml::Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))?;
    serde_json::to_value(y).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body cannot be represented as JSON: {e}"
        ))
    })
}

/// What representation the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Object,
    Table,
    PartialMetadata,
}

pub fn accept(headers: &HeaderMap) -> Accept {
    let a = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The first acceptable alternative wins, as in content negotiation.
    for alt in a.split(',') {
        let alt = alt.replace(' ', "");
        if alt.contains("as=Table") && alt.contains("g=meta.k8s.io") {
            return Accept::Table;
        }
        if alt.contains("as=PartialObjectMetadata") {
            return Accept::PartialMetadata;
        }
        if alt.starts_with("application/json")
            || alt.starts_with("*/*")
            || alt.starts_with("application/vnd.kubernetes.protobuf")
            || alt.starts_with("application/yaml")
        {
            return Accept::Object;
        }
    }
    Accept::Object
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(path: &str) -> ResourcePath {
        match parse_path(path) {
            Some(ApiPath::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let r = rp("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.plural, "pods");
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = rp("/api/v1/namespaces/kube-system");
        assert_eq!(r.plural, "namespaces");
        assert_eq!(r.name.as_deref(), Some("kube-system"));
        let r = rp("/api/v1/namespaces/x/finalize");
        assert_eq!(
            (r.plural.as_str(), r.subresource.as_deref()),
            ("namespaces", Some("finalize"))
        );
        let r = rp("/apis/apps/v1/deployments");
        assert_eq!((r.group.as_str(), r.namespace.clone()), ("apps", None));
        let r = rp("/api/v1/watch/namespaces/default/configmaps");
        assert!(r.watch_prefix);
        assert_eq!(r.plural, "configmaps");
        assert_eq!(parse_path("/apis"), Some(ApiPath::Root { legacy: false }));
        assert_eq!(
            parse_path("/apis/apps"),
            Some(ApiPath::Group {
                group: "apps".into()
            })
        );
        assert!(parse_path("/api/v1/pods/a/b/c").is_none());
        assert!(parse_path("/version").is_none());
    }

    #[test]
    fn bodies() {
        assert!(decode_object("application/json", b"{\"a\":1}").is_ok());
        assert_eq!(
            decode_object("application/json", b"{").unwrap_err().code,
            400
        );
        assert_eq!(
            decode_object("application/json", b"[1]").unwrap_err().code,
            400
        );
        assert_eq!(decode_object("text/plain", b"{}").unwrap_err().code, 415);
        let y = decode_object("application/yaml", b"a: 1\nb: [x]\n").unwrap();
        assert_eq!(y["b"][0], "x");
    }
}
