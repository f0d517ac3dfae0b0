//! Built-in admission plugin `namespace-lifecycle` (Kubernetes' `NamespaceLifecycle`,
//! on by default): no new content in a namespace that is being deleted.
//!
//! A create of a namespaced object whose namespace has a `deletionTimestamp` is refused with
//! 403 Forbidden and Kubernetes' message ("unable to create new content in namespace X
//! because it is being terminated"), so that the namespace controller can empty it. The API
//! server itself refuses objects in namespaces that do not exist (an integrity check of the
//! store, not a policy), and keeps `default`, `kube-system` and `kube-public` from deletion.
use tugboat_plugin_sdk::prelude::*;

pub struct NamespaceLifecycle;

impl AdmissionPolicy for NamespaceLifecycle {
    fn admit(req: &AdmissionRequest) -> AdmissionResponse {
        let Some(ns) = req.namespace.as_deref() else {
            return AdmissionResponse::allow();
        };
        if req.operation != Operation::Create || req.is_kind("", "Namespace") {
            return AdmissionResponse::allow();
        }
        match host::get("v1", "namespaces", None, ns) {
            Ok(Some(namespace))
                if namespace
                    .pointer("/metadata/deletionTimestamp")
                    .is_some_and(|t| !t.is_null()) =>
            {
                AdmissionResponse::deny_with(
                    403,
                    "Forbidden",
                    format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                )
            }
            // A missing namespace is refused by the API server itself (404).
            Ok(_) => AdmissionResponse::allow(),
            Err(e) => AdmissionResponse::deny_with(
                500,
                "InternalError",
                format!("reading namespace {ns}: {e}"),
            ),
        }
    }
}

export_admission!(NamespaceLifecycle);

#[cfg(test)]
mod tests {
    use super::*;
    use tugboat_plugin_sdk::testing::{FakeCluster, set_mock_host};

    fn cm(ns: &str) -> AdmissionRequest {
        let mut r = AdmissionRequest::create(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": ns}
        }));
        r.namespace = Some(ns.into());
        r
    }

    #[test]
    fn terminating_namespaces_take_no_new_content() {
        let cluster = FakeCluster::new()
            .with_object(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "live"}}),
            )
            .with_object(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "dying", "deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        let _g = set_mock_host(cluster);
        assert!(NamespaceLifecycle::admit(&cm("live")).allowed);
        let r = NamespaceLifecycle::admit(&cm("dying"));
        assert!(!r.allowed);
        assert_eq!(r.code, Some(403));
        assert!(
            r.message
                .unwrap()
                .contains("because it is being terminated")
        );
        // Updates and deletes of existing content go on (the controller deletes it).
        let mut update = cm("dying");
        update.operation = Operation::Update;
        assert!(NamespaceLifecycle::admit(&update).allowed);
    }

    #[test]
    fn host_failures_fail_closed() {
        // No mock host: every call fails.
        let r = NamespaceLifecycle::admit(&cm("x"));
        assert!(!r.allowed);
        assert_eq!(r.code, Some(500));
    }
}
