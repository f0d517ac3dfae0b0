//! Denies pods that run a privileged container.
use tugboat_plugin_sdk::prelude::*;

pub struct DenyPrivileged;

impl AdmissionPolicy for DenyPrivileged {
    fn admit(req: &AdmissionRequest) -> AdmissionResponse {
        let Some(pod) = req.object.as_ref().filter(|_| req.is_kind("", "Pod")) else {
            return AdmissionResponse::allow();
        };
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in pod["spec"][list].as_array().into_iter().flatten() {
                if c["securityContext"]["privileged"] == true {
                    let name = c["name"].as_str().unwrap_or("<unnamed>");
                    return AdmissionResponse::deny(format!(
                        "privileged containers are not allowed: container {name}"
                    ));
                }
            }
        }
        AdmissionResponse::allow()
    }
}

export_admission!(DenyPrivileged);

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(privileged: bool) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [
                {"name": "app", "image": "nginx"},
                {"name": "sidecar", "image": "busybox", "securityContext": {"privileged": privileged}}
            ]}
        })
    }

    #[test]
    fn denies_privileged_containers() {
        let r = DenyPrivileged::admit(&AdmissionRequest::create(pod(true)));
        assert!(!r.allowed);
        assert_eq!(
            r.message.as_deref(),
            Some("privileged containers are not allowed: container sidecar")
        );
    }

    #[test]
    fn allows_ordinary_pods_and_other_kinds() {
        assert!(DenyPrivileged::admit(&AdmissionRequest::create(pod(false))).allowed);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(DenyPrivileged::admit(&AdmissionRequest::create(cm)).allowed);
    }
}
