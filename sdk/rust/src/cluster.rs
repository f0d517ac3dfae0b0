//! What the host offers controllers beyond [`host`](crate::host): the clock, indexed cache
//! queries, patches, status writes and deletes with options (`tugboat:plugin/cluster`).
//!
//! Like [`host`](crate::host), every object call is checked against the plugin's
//! capabilities. On a native target the calls go to the installed
//! [`MockHost`](crate::testing::MockHost).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::HostError;

/// A cache query (see [`select`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    pub api_version: String,
    /// A kind (`Pod`) or resource (`pods`).
    pub kind_or_resource: String,
    /// `None`: every namespace.
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    /// e.g. `spec.nodeName=node-1`.
    pub field_selector: Option<String>,
    /// Only objects with an owner reference of this uid.
    pub owner_uid: Option<String>,
}

impl Query {
    pub fn new(api_version: &str, kind_or_resource: &str) -> Self {
        Query {
            api_version: api_version.into(),
            kind_or_resource: kind_or_resource.into(),
            ..Default::default()
        }
    }

    pub fn namespace(mut self, namespace: Option<&str>) -> Self {
        self.namespace = namespace.map(str::to_string);
        self
    }

    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.into());
        self
    }

    pub fn owner(mut self, uid: &str) -> Self {
        self.owner_uid = Some(uid.into());
        self
    }
}

/// The kinds of patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// How dependents are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// Options of [`delete_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    /// Only if the object still has this uid.
    pub uid: Option<String>,
    /// Only if the object still has this resourceVersion.
    pub resource_version: Option<String>,
    pub grace_period_seconds: Option<i64>,
}

/// A resource type the API server serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiResource {
    pub api_version: String,
    pub kind: String,
    /// The lower-case plural.
    pub resource: String,
    pub namespaced: bool,
}

/// Every resource type the API server serves now (built-ins and custom resources).
pub fn api_resources() -> Vec<ApiResource> {
    imp::api_resources()
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    imp::now_millis()
}

/// The current time as RFC 3339 with seconds (`2026-11-27T09:44:48Z`), as Kubernetes
/// writes timestamps.
pub fn now_rfc3339() -> String {
    rfc3339(now_millis())
}

/// Formats milliseconds since the epoch as RFC 3339 (UTC, whole seconds).
pub fn rfc3339(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Parses an RFC 3339 timestamp (`2026-11-27T09:44:48Z`, optional fraction and offset) to
/// milliseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        rest = &frac[digits.len()..];
        let padded = format!("{digits:0<3}");
        millis = padded.get(..3)?.parse().ok()?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset;
    u64::try_from(secs * 1000 + millis).ok()
}

/// Lists the cached objects matching `query`. Capability verb: `list`.
pub fn select(query: &Query) -> Result<Vec<Value>, HostError> {
    imp::select(query)
}

/// Patches an object (or its `status`/`scale` subresource). Capability verb: `patch`.
pub fn patch(
    api_version: &str,
    kind_or_resource: &str,
    namespace: Option<&str>,
    name: &str,
    patch_type: PatchType,
    patch: &Value,
    subresource: Option<&str>,
) -> Result<Value, HostError> {
    imp::patch(
        api_version,
        kind_or_resource,
        namespace,
        name,
        patch_type,
        patch,
        subresource,
    )
}

/// Creates the objects concurrently (each as [`host::create`](crate::host::create) would)
/// and returns each one's outcome, in order. Capability verb: `create`.
pub fn create_all(objects: &[Value]) -> Vec<Result<Value, HostError>> {
    imp::create_all(objects)
}

/// Replaces an object's status. Capability verb: `update` (on `<resource>/status`).
pub fn update_status(object: &Value) -> Result<Value, HostError> {
    imp::update_status(object)
}

/// Deletes an object with options. Capability verb: `delete`.
pub fn delete_with(
    api_version: &str,
    kind_or_resource: &str,
    namespace: Option<&str>,
    name: &str,
    options: &DeleteOptions,
) -> Result<(), HostError> {
    imp::delete_with(api_version, kind_or_resource, namespace, name, options)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::bindings::admission::tugboat::plugin::types as wit_types;
    use crate::bindings::controller::tugboat::plugin::cluster as wit;

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

    pub fn now_millis() -> u64 {
        wit::now_millis()
    }

    pub fn api_resources() -> Vec<ApiResource> {
        wit::api_resources()
            .into_iter()
            .map(|r| ApiResource {
                api_version: r.api_version,
                kind: r.kind,
                resource: r.resource,
                namespaced: r.namespaced,
            })
            .collect()
    }

    pub fn select(q: &Query) -> Result<Vec<Value>, HostError> {
        let q = wit::Query {
            api_version: q.api_version.clone(),
            kind_or_resource: q.kind_or_resource.clone(),
            namespace: q.namespace.clone(),
            label_selector: q.label_selector.clone(),
            field_selector: q.field_selector.clone(),
            owner_uid: q.owner_uid.clone(),
        };
        wit::select(&q)
            .map_err(err)?
            .iter()
            .map(|t| parse(t))
            .collect()
    }

    pub fn patch(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        subresource: Option<&str>,
    ) -> Result<Value, HostError> {
        let pt = match patch_type {
            PatchType::Json => wit::PatchType::Json,
            PatchType::Merge => wit::PatchType::Merge,
            PatchType::Strategic => wit::PatchType::Strategic,
            PatchType::Apply => wit::PatchType::Apply,
        };
        parse(
            &wit::patch(
                api_version,
                kind,
                namespace,
                name,
                pt,
                &patch.to_string(),
                subresource,
            )
            .map_err(err)?,
        )
    }

    pub fn update_status(object: &Value) -> Result<Value, HostError> {
        parse(&wit::update_status(&object.to_string()).map_err(err)?)
    }

    pub fn create_all(objects: &[Value]) -> Vec<Result<Value, HostError>> {
        let texts: Vec<String> = objects.iter().map(Value::to_string).collect();
        wit::create_all(&texts)
            .into_iter()
            .map(|r| r.map_err(err).and_then(|t| parse(&t)))
            .collect()
    }

    pub fn delete_with(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        o: &DeleteOptions,
    ) -> Result<(), HostError> {
        let options = wit::DeleteOptions {
            propagation: o.propagation.map(|p| match p {
                Propagation::Background => wit::Propagation::Background,
                Propagation::Foreground => wit::Propagation::Foreground,
                Propagation::Orphan => wit::Propagation::Orphan,
            }),
            uid: o.uid.clone(),
            resource_version: o.resource_version.clone(),
            grace_period_seconds: o.grace_period_seconds,
        };
        wit::delete_with(api_version, kind, namespace, name, &options).map_err(err)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;
    use crate::testing::with_mock_host;

    pub fn now_millis() -> u64 {
        with_mock_host(|h| h.now_millis())
    }

    pub fn api_resources() -> Vec<ApiResource> {
        with_mock_host(|h| h.api_resources())
    }

    pub fn select(q: &Query) -> Result<Vec<Value>, HostError> {
        with_mock_host(|h| h.select(q))
    }

    pub fn patch(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        subresource: Option<&str>,
    ) -> Result<Value, HostError> {
        with_mock_host(|h| {
            h.patch(
                api_version,
                kind,
                namespace,
                name,
                patch_type,
                patch,
                subresource,
            )
        })
    }

    pub fn update_status(object: &Value) -> Result<Value, HostError> {
        with_mock_host(|h| h.update_status(object))
    }

    pub fn create_all(objects: &[Value]) -> Vec<Result<Value, HostError>> {
        with_mock_host(|h| objects.iter().map(|o| h.create(o)).collect())
    }

    pub fn delete_with(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<(), HostError> {
        with_mock_host(|h| h.delete_with(api_version, kind, namespace, name, options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        let t = parse_rfc3339("2026-11-27T09:44:48Z").unwrap();
        assert_eq!(rfc3339(t), "2026-11-27T09:44:48Z");
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59.5Z").unwrap() % 1000, 500);
        assert_eq!(
            parse_rfc3339("2026-11-27T10:44:48+01:00"),
            parse_rfc3339("2026-11-27T09:44:48Z")
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
