//! Unit-testing plugins natively, without a host.
//!
//! A policy's trait functions are plain Rust: call them from `#[test]`s. Host API calls
//! ([`crate::host`]) go, on a native target, to the [`MockHost`] installed on the current
//! thread with [`set_mock_host`] — for example a [`FakeCluster`] holding a few objects:
//!
//! ```
//! use tugboat_plugin_sdk::prelude::*;
//! use tugboat_plugin_sdk::testing::{FakeCluster, set_mock_host};
//!
//! let cluster = FakeCluster::new().with_object(json!({
//!     "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}
//! }));
//! let _guard = set_mock_host(cluster.clone());
//! let ns = host::get("v1", "Namespace", None, "prod").unwrap();
//! assert!(ns.is_some());
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::admission::naive_plural;
use crate::cluster::{ApiResource, DeleteOptions, PatchType, Query};
use crate::host::{HostError, LogLevel};

/// What answers host API calls in native tests. Every method has a default: `log` prints
/// to stderr, the object calls fail with 501 `NotImplemented`.
pub trait MockHost {
    fn log(&self, level: LogLevel, message: &str) {
        eprintln!("[plugin {level:?}] {message}");
    }

    fn get(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError> {
        let _ = (api_version, kind_or_resource, namespace, name);
        Err(not_implemented("get"))
    }

    fn list(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        let _ = (api_version, kind_or_resource, namespace, label_selector);
        Err(not_implemented("list"))
    }

    fn create(&self, object: &Value) -> Result<Value, HostError> {
        let _ = object;
        Err(not_implemented("create"))
    }

    fn update(&self, object: &Value) -> Result<Value, HostError> {
        let _ = object;
        Err(not_implemented("update"))
    }

    fn delete(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError> {
        let _ = (api_version, kind_or_resource, namespace, name);
        Err(not_implemented("delete"))
    }

    /// The clock of [`cluster::now_millis`](crate::cluster::now_millis): the real one by
    /// default.
    fn now_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    }

    /// The resource types of [`cluster::api_resources`](crate::cluster::api_resources):
    /// none by default.
    fn api_resources(&self) -> Vec<ApiResource> {
        Vec::new()
    }

    fn select(&self, query: &Query) -> Result<Vec<Value>, HostError> {
        let _ = query;
        Err(not_implemented("select"))
    }

    #[allow(clippy::too_many_arguments)]
    fn patch(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        subresource: Option<&str>,
    ) -> Result<Value, HostError> {
        let _ = (
            api_version,
            kind_or_resource,
            namespace,
            name,
            patch_type,
            patch,
            subresource,
        );
        Err(not_implemented("patch"))
    }

    fn update_status(&self, object: &Value) -> Result<Value, HostError> {
        let _ = object;
        Err(not_implemented("update-status"))
    }

    fn delete_with(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<(), HostError> {
        let _ = options;
        self.delete(api_version, kind_or_resource, namespace, name)
    }
}

fn not_implemented(verb: &str) -> HostError {
    HostError::new(
        501,
        "NotImplemented",
        format!("no mock host answers `{verb}`: install one with testing::set_mock_host"),
    )
}

/// The default mock: logs to stderr, fails every object call.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
struct NoHost;

impl MockHost for NoHost {}

thread_local! {
    static MOCK_HOST: RefCell<Option<Rc<dyn MockHost>>> = const { RefCell::new(None) };
}

/// Restores the previous mock host when dropped.
#[must_use = "the mock host is uninstalled when the guard is dropped"]
pub struct MockHostGuard {
    previous: Option<Rc<dyn MockHost>>,
}

impl Drop for MockHostGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        MOCK_HOST.with(|h| *h.borrow_mut() = previous);
    }
}

/// Installs `host` for host API calls made on the current thread until the guard drops.
pub fn set_mock_host(host: impl MockHost + 'static) -> MockHostGuard {
    let host: Rc<dyn MockHost> = Rc::new(host);
    let previous = MOCK_HOST.with(|h| h.borrow_mut().replace(host));
    MockHostGuard { previous }
}

/// Runs `f` with the current thread's mock host (a default one when none is installed).
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn with_mock_host<R>(f: impl FnOnce(&dyn MockHost) -> R) -> R {
    let host = MOCK_HOST.with(|h| h.borrow().clone());
    match host {
        Some(h) => f(h.as_ref()),
        None => f(&NoHost),
    }
}

/// An in-memory cluster for tests: objects are matched by apiVersion, kind (or its naive
/// plural), namespace and name; label selectors support `k=v`, `k!=v`, `k` and `!k`.
/// Clones share the same objects and log.
#[derive(Clone, Default)]
pub struct FakeCluster {
    inner: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    objects: Vec<Value>,
    logs: Vec<(LogLevel, String)>,
    now_millis: Option<u64>,
}

impl FakeCluster {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an object (builder style).
    pub fn with_object(self, object: Value) -> Self {
        self.lock().objects.push(object);
        self
    }

    /// Sets the clock [`cluster::now_millis`](crate::cluster::now_millis) reads.
    pub fn set_time(&self, millis: u64) {
        self.lock().now_millis = Some(millis);
    }

    /// The objects now stored.
    pub fn objects(&self) -> Vec<Value> {
        self.lock().objects.clone()
    }

    /// The lines the plugin logged.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.lock().logs.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn matches_type(object: &Value, api_version: &str, kind_or_resource: &str) -> bool {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    object.get("apiVersion").and_then(Value::as_str) == Some(api_version)
        && (kind == kind_or_resource || naive_plural(kind) == kind_or_resource)
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn key_of(object: &Value) -> (Option<&str>, Option<&str>, Option<&str>, Option<&str>) {
    (
        str_at(object, "/apiVersion"),
        str_at(object, "/kind"),
        str_at(object, "/metadata/namespace"),
        str_at(object, "/metadata/name"),
    )
}

/// RFC 7386 merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Some(t) = target.as_object_mut() {
        for (k, v) in fields {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn selector_matches(object: &Value, selector: &str) -> bool {
    let label = |k: &str| {
        object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
    };
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                label(k.trim()) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                label(k.trim().trim_end_matches('=')) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                label(k.trim()).is_none()
            } else {
                label(term).is_some()
            }
        })
}

impl MockHost for FakeCluster {
    fn log(&self, level: LogLevel, message: &str) {
        self.lock().logs.push((level, message.to_string()));
    }

    fn get(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError> {
        Ok(self
            .lock()
            .objects
            .iter()
            .find(|o| {
                matches_type(o, api_version, kind_or_resource)
                    && str_at(o, "/metadata/namespace") == namespace
                    && str_at(o, "/metadata/name") == Some(name)
            })
            .cloned())
    }

    fn list(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        Ok(self
            .lock()
            .objects
            .iter()
            .filter(|o| {
                matches_type(o, api_version, kind_or_resource)
                    && (namespace.is_none() || str_at(o, "/metadata/namespace") == namespace)
                    && label_selector.is_none_or(|s| selector_matches(o, s))
            })
            .cloned()
            .collect())
    }

    fn create(&self, object: &Value) -> Result<Value, HostError> {
        let mut state = self.lock();
        if state.objects.iter().any(|o| key_of(o) == key_of(object)) {
            return Err(HostError::new(
                409,
                "AlreadyExists",
                "the object already exists",
            ));
        }
        state.objects.push(object.clone());
        Ok(object.clone())
    }

    fn update(&self, object: &Value) -> Result<Value, HostError> {
        let mut state = self.lock();
        match state
            .objects
            .iter_mut()
            .find(|o| key_of(o) == key_of(object))
        {
            Some(slot) => {
                *slot = object.clone();
                Ok(object.clone())
            }
            None => Err(HostError::new(404, "NotFound", "the object does not exist")),
        }
    }

    fn delete(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError> {
        let mut state = self.lock();
        let before = state.objects.len();
        state.objects.retain(|o| {
            !(matches_type(o, api_version, kind_or_resource)
                && str_at(o, "/metadata/namespace") == namespace
                && str_at(o, "/metadata/name") == Some(name))
        });
        if state.objects.len() == before {
            return Err(HostError::new(404, "NotFound", "the object does not exist"));
        }
        Ok(())
    }

    fn now_millis(&self) -> u64 {
        let fixed = self.lock().now_millis;
        fixed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default()
        })
    }

    fn api_resources(&self) -> Vec<ApiResource> {
        let mut out: Vec<ApiResource> = Vec::new();
        for o in &self.lock().objects {
            let (Some(api_version), Some(kind)) = (str_at(o, "/apiVersion"), str_at(o, "/kind"))
            else {
                continue;
            };
            if out
                .iter()
                .any(|r| r.api_version == api_version && r.kind == kind)
            {
                continue;
            }
            out.push(ApiResource {
                api_version: api_version.into(),
                kind: kind.into(),
                resource: naive_plural(kind),
                namespaced: str_at(o, "/metadata/namespace").is_some(),
            });
        }
        out
    }

    fn select(&self, q: &Query) -> Result<Vec<Value>, HostError> {
        let items = self.list(
            &q.api_version,
            &q.kind_or_resource,
            q.namespace.as_deref(),
            q.label_selector.as_deref(),
        )?;
        Ok(items
            .into_iter()
            .filter(|o| {
                q.owner_uid.as_deref().is_none_or(|uid| {
                    o.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            refs.iter()
                                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                        })
                })
            })
            .filter(|o| {
                q.field_selector.as_deref().is_none_or(|fs| {
                    fs.split(',').filter(|t| !t.is_empty()).all(|term| {
                        let (path, want, negate) = match term.split_once("!=") {
                            Some((p, v)) => (p, v, true),
                            None => match term.split_once('=') {
                                Some((p, v)) => (p.trim_end_matches('='), v, false),
                                None => return false,
                            },
                        };
                        let pointer = format!("/{}", path.trim().replace('.', "/"));
                        let have = str_at(o, &pointer).unwrap_or_default();
                        (have == want.trim()) != negate
                    })
                })
            })
            .collect())
    }

    fn patch(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        _subresource: Option<&str>,
    ) -> Result<Value, HostError> {
        if !matches!(patch_type, PatchType::Merge | PatchType::Strategic) {
            return Err(not_implemented(
                "patch (the fake applies merge patches only)",
            ));
        }
        let Some(mut object) = self.get(api_version, kind_or_resource, namespace, name)? else {
            return Err(HostError::new(404, "NotFound", "the object does not exist"));
        };
        merge_patch(&mut object, patch);
        self.update(&object)
    }

    fn update_status(&self, object: &Value) -> Result<Value, HostError> {
        let mut state = self.lock();
        match state
            .objects
            .iter_mut()
            .find(|o| key_of(o) == key_of(object))
        {
            Some(slot) => {
                match object.get("status") {
                    Some(status) => slot["status"] = status.clone(),
                    None => {
                        if let Some(m) = slot.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                Ok(slot.clone())
            }
            None => Err(HostError::new(404, "NotFound", "the object does not exist")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host;
    use serde_json::json;

    #[test]
    fn without_a_mock_object_calls_fail_with_501() {
        let err = host::get("v1", "Pod", Some("default"), "x").unwrap_err();
        assert_eq!(err.code, 501);
    }

    #[test]
    fn fake_cluster_answers_host_calls() {
        let cluster = FakeCluster::new().with_object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "namespace": "default", "labels": {"app": "web"}}
        }));
        let _guard = set_mock_host(cluster.clone());
        assert!(
            host::get("v1", "pods", Some("default"), "a")
                .unwrap()
                .is_some()
        );
        assert!(
            host::get("v1", "Pod", Some("other"), "a")
                .unwrap()
                .is_none()
        );
        assert_eq!(
            host::list("v1", "Pod", None, Some("app=web"))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            host::list("v1", "Pod", None, Some("app!=web"))
                .unwrap()
                .len(),
            0
        );
        host::log(LogLevel::Info, "hello");
        assert_eq!(cluster.logs(), vec![(LogLevel::Info, "hello".to_string())]);
        host::delete("v1", "Pod", Some("default"), "a").unwrap();
        assert!(cluster.objects().is_empty());
    }
}
