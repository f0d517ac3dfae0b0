//! Built-in background duties of the API server: keeping the catalog in step with the
//! stored CRDs, creating the default namespaces and the `kubernetes` Service. (Emptying a
//! deleted namespace is the `namespace` controller plugin's: `plugins/namespace`.)

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Api;
use super::handlers::Target;
use super::object::{decode_stored, is_deleting, meta_str};
use super::request::Query;
use crate::store::WriteOp;

/// The finalizer that makes a CRD's deletion wait until its objects are gone.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Namespaces every cluster has from the first start.
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

impl Api {
    /// Create the default namespaces that are missing.
    pub async fn ensure_default_namespaces(&self) -> anyhow::Result<()> {
        for ns in DEFAULT_NAMESPACES {
            let key = format!("/registry/core/namespaces/{ns}");
            if self.store.get(&key).await?.is_some() {
                continue;
            }
            let obj = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": super::object::now_rfc3339(),
                    "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            let value = serde_json::to_vec(&obj)?;
            match self.store.write(WriteOp::Create { key, value }).await {
                Ok(_) | Err(crate::store::StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The `kubernetes` Service in `default` (the first address of the service range), and
    /// its Endpoints pointing at this API server, as every cluster has.
    pub async fn ensure_kubernetes_service(&self) -> anyhow::Result<()> {
        let (host, port) = self
            .config
            .advertise_address
            .rsplit_once(':')
            .map(|(h, p)| {
                (
                    h.trim_matches(['[', ']']).to_string(),
                    p.parse::<u16>().unwrap_or(6443),
                )
            })
            .unwrap_or_else(|| ("127.0.0.1".to_string(), 6443));
        self.ensure_system_object(
            "services",
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": self.kubernetes_service_ip().to_string(),
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                    "sessionAffinity": "None"},
            }),
        )
        .await?;
        self.ensure_system_object(
            "endpoints",
            json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": host}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
            }),
        )
        .await
    }

    /// The `kube-dns` Service in `kube-system` at [`Api::cluster_dns_ip`] (the tenth address
    /// of the service range, as kubeadm and k3s place it), with the DNS ports. It has no
    /// selector: each node answers it with its own DNS server (`network::service::dns`), so
    /// it is annotated `tugboat.dev/node-local-dns` and the Service proxy leaves it alone.
    pub async fn ensure_dns_service(&self) -> anyhow::Result<()> {
        self.ensure_system_object(
            "services",
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system",
                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
                    "annotations": {"tugboat.dev/node-local-dns": "true"}},
                "spec": {"type": "ClusterIP", "clusterIP": self.cluster_dns_ip().to_string(),
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}],
                    "sessionAffinity": "None"},
            }),
        )
        .await
    }

    /// Creates `body`, a namespaced core/v1 object of `resource` that the API server keeps
    /// for itself (field manager `kube-apiserver`), unless it exists.
    async fn ensure_system_object(&self, resource: &str, body: Value) -> anyhow::Result<()> {
        let catalog = self.registry.snapshot();
        let rt = catalog
            .lookup("", "v1", resource)
            .ok_or_else(|| anyhow::anyhow!("{resource} are not served"))?;
        let ns = body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if self.store.get(&rt.key(Some(&ns), &name)).await?.is_some() {
            return Ok(());
        }
        let q = Query {
            field_manager: Some("kube-apiserver".into()),
            ..Default::default()
        };
        let target = Target {
            rt,
            namespace: Some(ns.clone()),
            name: None,
            subresource: None,
        };
        match self
            .create(&target, body, &q, &axum::http::HeaderMap::new())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "AlreadyExists" => Ok(()),
            Err(e) => anyhow::bail!("creating {resource} {ns}/{name}: {e}"),
        }
    }

    /// Rebuild the catalog from the stored CRDs.
    pub async fn reload_crds(&self) -> anyhow::Result<()> {
        let page = self
            .store
            .list(
                "/registry/apiextensions.k8s.io/customresourcedefinitions/",
                None,
                0,
            )
            .await?;
        let crds: Vec<Value> = page
            .items
            .iter()
            .filter_map(|kv| decode_stored(kv).ok())
            .collect();
        // A CRD being deleted no longer serves its resource.
        let live: Vec<Value> = crds.iter().filter(|c| !is_deleting(c)).cloned().collect();
        self.registry.set_crds(&live);
        for crd in crds.iter().filter(|c| is_deleting(c)) {
            self.finalize_crd(crd).await;
        }
        Ok(())
    }

    /// Delete every object of a CRD that is being deleted, then release the CRD.
    async fn finalize_crd(&self, crd: &Value) {
        let name = meta_str(crd, "name").to_string();
        if !super::object::finalizers(crd)
            .iter()
            .any(|f| f == CRD_CLEANUP_FINALIZER)
        {
            return;
        }
        // Every version of a CRD stores under the same prefix.
        if let Some(t) = super::resources::crd_types(crd).into_iter().next() {
            let prefix = t.key_prefix(None);
            let Ok(page) = self.store.list(&prefix, None, 0).await else {
                return;
            };
            for kv in page.items {
                let op = WriteOp::Delete {
                    key: kv.key.clone(),
                    expected_revision: None,
                };
                match self.store.write(op).await {
                    Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::warn!(crd = %name, key = %kv.key, error = %e, "deleting a custom resource");
                        return;
                    }
                }
            }
        }
        let Some(rt) = self.registry.snapshot().lookup(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
        ) else {
            return;
        };
        let mut updated = crd.clone();
        let rest: Vec<String> = super::object::finalizers(crd)
            .into_iter()
            .filter(|f| f != CRD_CLEANUP_FINALIZER)
            .collect();
        super::object::set_meta(&mut updated, "finalizers", json!(rest));
        let t = Target {
            rt,
            namespace: None,
            name: Some(name.clone()),
            subresource: None,
        };
        let q = Query {
            field_manager: Some("apiextensions-controller".into()),
            ..Default::default()
        };
        if let Err(e) = self
            .update(&t, updated, &q, &axum::http::HeaderMap::new())
            .await
            && e.code != 404
            && e.code != 409
        {
            tracing::warn!(crd = %name, error = %e, "releasing a deleted CRD");
        }
    }

    /// Run the background duties until the process ends.
    pub fn spawn_lifecycle(self: &Arc<Self>) {
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = api.reload_crds().await {
                    tracing::warn!(error = %e, "reloading CRDs");
                }
                tokio::select! {
                    _ = api.crds_changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                }
            }
        });
    }
}
