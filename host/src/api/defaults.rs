//! Defaulting of built-in objects, the way kube-apiserver does it when it decodes them.
//!
//! Kubernetes fills unset fields when an object is decoded (on create, update and patch,
//! and again whenever a stored object is read): the `SetDefaults_*` functions of
//! `pkg/apis/*/v1/defaults.go`, called through the generated `zz_generated.defaults.go`
//! for every nested type, plus the declarative `+default` markers. [`apply_defaults`] does
//! the same on the JSON form the server keeps (after normalisation through
//! `k8s-openapi`), for the kinds the server serves.
//!
//! Behaviour follows Kubernetes **v1.33** with its default feature gates (so
//! `JobPodReplacementPolicy` and `StatefulSetAutoDeletePVC` are on; `PodLevelResources`,
//! `ImageVolume` and `MaxUnavailableStatefulSet` are off). Sources: `pkg/apis/core/v1`,
//! `pkg/apis/apps/v1`, `pkg/apis/batch/v1` and `pkg/apis/discovery/v1` `defaults.go`.
//!
//! Rules kept throughout:
//! * A value that is set is never replaced; what "unset" means follows the Go type (an
//!   empty string is unset for plain `string` fields, only `nil` for pointers, `0` for the
//!   probe numbers). The few places where Kubernetes itself overwrites are documented
//!   (`kubernetes.io/metadata.name` on namespaces, `sessionAffinityConfig` with
//!   `sessionAffinity: None`).
//! * A field of an unexpected JSON type is left alone, and nothing here panics.
//! * Applying the defaults twice gives the same object as applying them once.
//!
//! Besides defaulting proper, two things Go's serialisation always shows are added, so
//! objects read back like Kubernetes': `resources: {}` on every container (a struct that
//! is never omitted) and quantities in canonical form (`0.5` → `500m`, `1024Mi` → `1Gi`),
//! with resource lists rounded up to milli-units as `SetDefaults_ResourceList` does.
//!
//! [`job_prepare_for_create`] is the Job strategy's selector generation
//! (`pkg/registry/batch/job/strategy.go`), which runs on create only.

use std::cmp::Ordering;
use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value, json};

/// The label Kubernetes puts on every namespace, with the namespace's name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The Job label with the Job's uid (selector generation).
pub const JOB_CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The Job label with the Job's name.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The legacy Job uid label, still added.
pub const LEGACY_JOB_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// The legacy Job name label, still added.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";

/// Fill the defaults Kubernetes gives an object of `group`/`kind` (`group` empty for the
/// core group). Kinds without defaults, and objects that are not JSON objects, are left
/// as they are.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    match (group, kind) {
        ("", "Namespace") => namespace(o),
        ("", "Pod") => pod(o),
        ("", "Node") => node(o),
        ("", "Service") => service(o),
        ("", "Endpoints") => endpoints(o),
        ("", "Secret") => secret(o),
        ("", "PersistentVolume") => persistent_volume(o),
        ("", "PersistentVolumeClaim") => persistent_volume_claim(o),
        ("apps", "Deployment") => deployment(o),
        ("apps", "ReplicaSet") => replica_set(o),
        ("apps", "DaemonSet") => daemon_set(o),
        ("apps", "StatefulSet") => stateful_set(o),
        ("batch", "Job") => job(o),
        ("batch", "CronJob") => cron_job(o),
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice(o),
        // ConfigMap (its `data` default is an empty map, which is never serialised),
        // Event, ServiceAccount and Lease have no defaults.
        _ => {}
    }
}

/// The Job strategy's `PrepareForCreate` selector generation: unless
/// `spec.manualSelector` is true, label the pod template with
/// `batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name`,
/// `controller-uid` and `job-name` (labels already there are kept, validation then
/// rejects wrong ones) and select on `batch.kubernetes.io/controller-uid`.
///
/// The uid is `metadata.uid`, which the caller sets first. Call it after
/// [`apply_defaults`] and before validation. As Kubernetes' decoding of the stored Job
/// does, the Job's own labels then default to the template's if the Job has none.
pub fn job_prepare_for_create(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let meta_str = |o: &Map<String, Value>, field: &str| {
        o.get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let uid = meta_str(o, "uid");
    let name = meta_str(o, "name");
    let Some(spec) = ensure_object(o, "spec") else {
        return;
    };
    if spec.get("manualSelector") == Some(&Value::Bool(true)) {
        return;
    }
    {
        let Some(template) = ensure_object(spec, "template") else {
            return;
        };
        let Some(tmeta) = ensure_object(template, "metadata") else {
            return;
        };
        let Some(labels) = ensure_object(tmeta, "labels") else {
            return;
        };
        for (key, value) in [
            (LEGACY_JOB_NAME_LABEL, &name),
            (JOB_NAME_LABEL, &name),
            (LEGACY_JOB_CONTROLLER_UID_LABEL, &uid),
            (JOB_CONTROLLER_UID_LABEL, &uid),
        ] {
            if !labels.contains_key(key) {
                labels.insert(key.to_string(), Value::from(value.as_str()));
            }
        }
    }
    if let Some(selector) = ensure_object(spec, "selector")
        && let Some(match_labels) = ensure_object(selector, "matchLabels")
        && !match_labels.contains_key(JOB_CONTROLLER_UID_LABEL)
    {
        match_labels.insert(JOB_CONTROLLER_UID_LABEL.to_string(), Value::from(uid));
    }
    job_labels_from_template(o);
}

// ---------------------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------------------

/// Set `key` to `value` when it is absent or null (a Go pointer field).
fn default_value(m: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    if matches!(m.get(key), None | Some(Value::Null)) {
        m.insert(key.to_string(), value.into());
    }
}

/// Set `key` to `value` when it is absent, null or empty (a plain Go `string` field).
fn default_string(m: &mut Map<String, Value>, key: &str, value: &str) {
    let unset = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if unset {
        m.insert(key.to_string(), Value::from(value));
    }
}

/// Set `key` to `value` when it is absent, null or zero (a plain Go integer field).
fn default_nonzero(m: &mut Map<String, Value>, key: &str, value: i64) {
    let unset = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(_) => false,
    };
    if unset {
        m.insert(key.to_string(), Value::from(value));
    }
}

/// The object at `key`, if there is one.
fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The object at `key`, created empty when absent or null (a Go struct that is not a
/// pointer); `None` when something else is there.
fn ensure_object<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let slot = m.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// Run `f` on each object in the array at `key`.
fn each_object(m: &mut Map<String, Value>, key: &str, mut f: impl FnMut(&mut Map<String, Value>)) {
    if let Some(items) = m.get_mut(key).and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            f(item);
        }
    }
}

fn is_nonempty_object(v: Option<&Value>) -> bool {
    v.and_then(Value::as_object).is_some_and(|m| !m.is_empty())
}

// ---------------------------------------------------------------------------------------
// core/v1
// ---------------------------------------------------------------------------------------

/// `SetDefaults_Namespace` (the name label, set even over another value) and
/// `SetDefaults_NamespaceStatus`.
fn namespace(o: &mut Map<String, Value>) {
    let name = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty()
        && let Some(meta) = ensure_object(o, "metadata")
        && let Some(labels) = ensure_object(meta, "labels")
    {
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), Value::from(name));
    }
    if let Some(status) = ensure_object(o, "status") {
        default_string(status, "phase", "Active");
    }
}

/// `SetObjectDefaults_Pod`: `SetDefaults_Pod` (requests from limits, service links,
/// host-network ports) and everything a pod spec gets.
fn pod(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_object(o, "spec") else {
        return;
    };
    for list in ["containers", "initContainers"] {
        each_object(spec, list, requests_from_limits);
    }
    default_value(spec, "enableServiceLinks", true);
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        for list in ["containers", "initContainers"] {
            each_object(spec, list, |c| {
                each_object(c, "ports", |p| {
                    let unset = match p.get("hostPort") {
                        None | Some(Value::Null) => true,
                        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
                        Some(_) => false,
                    };
                    if unset && let Some(port) = p.get("containerPort").cloned() {
                        p.insert("hostPort".into(), port);
                    }
                });
            });
        }
    }
    pod_spec(spec);
}

/// A container's requests default to its limits, resource by resource (pods only, not
/// templates).
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(res) = child(c, "resources") else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    let Some(requests) = ensure_object(res, "requests") else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

/// `SetDefaults_PodSpec` and the defaults of everything in a pod spec (volumes,
/// containers, probes, ...). Used for pods and for the templates of workloads.
fn pod_spec(spec: &mut Map<String, Value>) {
    default_string(spec, "dnsPolicy", "ClusterFirst");
    default_string(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(spec, "terminationGracePeriodSeconds", 30);
    default_string(spec, "schedulerName", "default-scheduler");
    each_object(spec, "volumes", volume);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        each_object(spec, list, container);
    }
    resource_list(spec, "overhead");
}

/// `SetDefaults_Volume` and the defaults of the volume sources.
fn volume(v: &mut Map<String, Value>) {
    let has_source = v.iter().any(|(k, val)| k != "name" && !val.is_null());
    if !has_source {
        v.insert("emptyDir".into(), json!({}));
    }
    if let Some(empty_dir) = child(v, "emptyDir") {
        canonical_quantity_at(empty_dir, "sizeLimit", false);
    }
    if let Some(host_path) = child(v, "hostPath") {
        default_value(host_path, "type", "");
    }
    for source in ["secret", "configMap"] {
        if let Some(s) = child(v, source) {
            default_value(s, "defaultMode", 420);
        }
    }
    if let Some(d) = child(v, "downwardAPI") {
        default_value(d, "defaultMode", 420);
        downward_api_items(d);
    }
    if let Some(p) = child(v, "projected") {
        default_value(p, "defaultMode", 420);
        each_object(p, "sources", |s| {
            if let Some(d) = child(s, "downwardAPI") {
                downward_api_items(d);
            }
            if let Some(t) = child(s, "serviceAccountToken") {
                default_value(t, "expirationSeconds", 3600);
            }
        });
    }
    legacy_volume_sources(v);
    if let Some(ephemeral) = child(v, "ephemeral")
        && let Some(template) = child(ephemeral, "volumeClaimTemplate")
        && let Some(spec) = ensure_object(template, "spec")
    {
        pvc_spec(spec);
    }
}

/// The defaults of the in-tree volume plugins kept in the API (iSCSI, RBD, Azure Disk,
/// ScaleIO), shared by pod volumes and persistent volumes.
fn legacy_volume_sources(v: &mut Map<String, Value>) {
    if let Some(iscsi) = child(v, "iscsi") {
        default_string(iscsi, "iscsiInterface", "default");
    }
    if let Some(rbd) = child(v, "rbd") {
        default_string(rbd, "pool", "rbd");
        default_string(rbd, "user", "admin");
        default_string(rbd, "keyring", "/etc/ceph/keyring");
    }
    if let Some(azure) = child(v, "azureDisk") {
        default_value(azure, "cachingMode", "ReadWrite");
        default_value(azure, "kind", "Shared");
        default_value(azure, "fsType", "ext4");
        default_value(azure, "readOnly", false);
    }
    if let Some(scale_io) = child(v, "scaleIO") {
        default_string(scale_io, "storageMode", "ThinProvisioned");
        default_string(scale_io, "fsType", "xfs");
    }
}

/// `fieldRef.apiVersion` of downward API items.
fn downward_api_items(d: &mut Map<String, Value>) {
    each_object(d, "items", |item| {
        if let Some(field_ref) = child(item, "fieldRef") {
            default_string(field_ref, "apiVersion", "v1");
        }
    });
}

/// `SetDefaults_Container` and the defaults of a container's ports, env, resources,
/// probes and lifecycle hooks.
fn container(c: &mut Map<String, Value>) {
    let pull_unset = match c.get("imagePullPolicy") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if pull_unset {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image).as_deref() == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".into(), Value::from(policy));
    }
    default_string(c, "terminationMessagePath", "/dev/termination-log");
    default_string(c, "terminationMessagePolicy", "File");
    each_object(c, "ports", |p| default_string(p, "protocol", "TCP"));
    each_object(c, "env", |e| {
        if let Some(value_from) = child(e, "valueFrom")
            && let Some(field_ref) = child(value_from, "fieldRef")
        {
            default_string(field_ref, "apiVersion", "v1");
        }
    });
    if let Some(res) = ensure_object(c, "resources") {
        resource_list(res, "limits");
        resource_list(res, "requests");
    }
    for name in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, name) {
            probe(p);
        }
    }
    if let Some(lifecycle) = child(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = child(lifecycle, hook)
                && let Some(get) = child(h, "httpGet")
            {
                http_get(get);
            }
        }
    }
}

/// `SetDefaults_Probe`, `SetDefaults_HTTPGetAction` and the gRPC `service` default.
fn probe(p: &mut Map<String, Value>) {
    default_nonzero(p, "timeoutSeconds", 1);
    default_nonzero(p, "periodSeconds", 10);
    default_nonzero(p, "successThreshold", 1);
    default_nonzero(p, "failureThreshold", 3);
    if let Some(get) = child(p, "httpGet") {
        http_get(get);
    }
    if let Some(grpc) = child(p, "grpc") {
        default_value(grpc, "service", "");
    }
}

fn http_get(get: &mut Map<String, Value>) {
    default_string(get, "path", "/");
    default_string(get, "scheme", "HTTP");
}

/// `SetDefaults_Service`.
fn service(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_object(o, "spec") else {
        return;
    };
    default_string(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        // Kubernetes drops a config that has no meaning without ClientIP affinity.
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            if let Some(config) = ensure_object(spec, "sessionAffinityConfig")
                && let Some(client_ip) = ensure_object(config, "clientIP")
            {
                default_value(client_ip, "timeoutSeconds", 10800);
            }
        }
        _ => {}
    }
    default_string(spec, "type", "ClusterIP");
    each_object(spec, "ports", |p| {
        default_string(p, "protocol", "TCP");
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_f64() == Some(0.0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        let port = match p.get("port") {
            None | Some(Value::Null) => Some(Value::from(0)),
            Some(n @ Value::Number(_)) => Some(n.clone()),
            Some(_) => None,
        };
        if unset && let Some(port) = port {
            p.insert("targetPort".into(), port);
        }
    });
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.is_empty());
    let externally_accessible = service_type == "LoadBalancer"
        || service_type == "NodePort"
        || (service_type == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default_string(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(
        service_type.as_str(),
        "NodePort" | "LoadBalancer" | "ClusterIP"
    ) {
        default_value(spec, "internalTrafficPolicy", "Cluster");
    }
    if service_type == "LoadBalancer" {
        default_value(spec, "allocateLoadBalancerNodePorts", true);
        if let Some(status) = child(o, "status")
            && let Some(lb) = child(status, "loadBalancer")
        {
            each_object(lb, "ingress", |ingress| {
                let has_ip = ingress
                    .get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| !ip.is_empty());
                if has_ip {
                    default_value(ingress, "ipMode", "VIP");
                }
            });
        }
    }
}

/// `SetDefaults_Endpoints`: ports are TCP unless said otherwise.
fn endpoints(o: &mut Map<String, Value>) {
    each_object(o, "subsets", |subset| {
        each_object(subset, "ports", |p| default_string(p, "protocol", "TCP"));
    });
}

/// `SetDefaults_Secret`.
fn secret(o: &mut Map<String, Value>) {
    default_string(o, "type", "Opaque");
}

/// `SetDefaults_NodeStatus` (allocatable from capacity) and canonical quantities.
fn node(o: &mut Map<String, Value>) {
    let Some(status) = child(o, "status") else {
        return;
    };
    if matches!(status.get("allocatable"), None | Some(Value::Null))
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".into(), capacity);
    }
    resource_list(status, "capacity");
    resource_list(status, "allocatable");
}

/// `SetDefaults_PersistentVolume`.
fn persistent_volume(o: &mut Map<String, Value>) {
    if let Some(spec) = ensure_object(o, "spec") {
        default_string(spec, "persistentVolumeReclaimPolicy", "Retain");
        default_value(spec, "volumeMode", "Filesystem");
        resource_list(spec, "capacity");
        if let Some(host_path) = child(spec, "hostPath") {
            default_value(host_path, "type", "");
        }
        legacy_volume_sources(spec);
    }
    if let Some(status) = ensure_object(o, "status") {
        default_string(status, "phase", "Pending");
    }
}

/// `SetDefaults_PersistentVolumeClaim` and `SetDefaults_PersistentVolumeClaimSpec`.
fn persistent_volume_claim(o: &mut Map<String, Value>) {
    if let Some(spec) = ensure_object(o, "spec") {
        pvc_spec(spec);
    }
    if let Some(status) = ensure_object(o, "status") {
        default_string(status, "phase", "Pending");
        resource_list(status, "capacity");
        resource_list(status, "allocatedResources");
    }
}

fn pvc_spec(spec: &mut Map<String, Value>) {
    default_value(spec, "volumeMode", "Filesystem");
    if let Some(res) = child(spec, "resources") {
        resource_list(res, "limits");
        resource_list(res, "requests");
    }
}

// ---------------------------------------------------------------------------------------
// apps/v1
// ---------------------------------------------------------------------------------------

/// The pod template of a workload gets `SetDefaults_PodSpec` and the nested defaults
/// (not `SetDefaults_Pod`: no `enableServiceLinks`, no requests from limits).
fn template_spec(spec: &mut Map<String, Value>) {
    if let Some(template) = ensure_object(spec, "template")
        && let Some(pod) = ensure_object(template, "spec")
    {
        pod_spec(pod);
    }
}

/// `SetDefaults_Deployment`.
fn deployment(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_object(o, "spec") else {
        return;
    };
    default_value(spec, "replicas", 1);
    if let Some(strategy) = ensure_object(spec, "strategy") {
        default_string(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = ensure_object(strategy, "rollingUpdate")
        {
            default_value(rolling, "maxUnavailable", "25%");
            default_value(rolling, "maxSurge", "25%");
        }
    }
    default_value(spec, "revisionHistoryLimit", 10);
    default_value(spec, "progressDeadlineSeconds", 600);
    template_spec(spec);
}

/// `SetDefaults_ReplicaSet`.
fn replica_set(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_object(o, "spec") else {
        return;
    };
    default_value(spec, "replicas", 1);
    template_spec(spec);
}

/// `SetDefaults_DaemonSet`.
fn daemon_set(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_object(o, "spec") else {
        return;
    };
    if let Some(strategy) = ensure_object(spec, "updateStrategy") {
        default_string(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = ensure_object(strategy, "rollingUpdate")
        {
            default_value(rolling, "maxUnavailable", 1);
            default_value(rolling, "maxSurge", 0);
        }
    }
    default_value(spec, "revisionHistoryLimit", 10);
    template_spec(spec);
}

/// `SetDefaults_StatefulSet`, and the claim templates' PVC defaults.
fn stateful_set(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_object(o, "spec") else {
        return;
    };
    default_string(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = ensure_object(spec, "updateStrategy") {
        let type_unset = match strategy.get("type") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if type_unset {
            strategy.insert("type".into(), Value::from("RollingUpdate"));
            default_value(strategy, "rollingUpdate", json!({}));
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            default_value(rolling, "partition", 0);
        }
    }
    if let Some(policy) = ensure_object(spec, "persistentVolumeClaimRetentionPolicy") {
        default_string(policy, "whenDeleted", "Retain");
        default_string(policy, "whenScaled", "Retain");
    }
    default_value(spec, "replicas", 1);
    default_value(spec, "revisionHistoryLimit", 10);
    template_spec(spec);
    each_object(spec, "volumeClaimTemplates", persistent_volume_claim);
}

// ---------------------------------------------------------------------------------------
// batch/v1
// ---------------------------------------------------------------------------------------

/// `SetDefaults_Job`.
fn job(o: &mut Map<String, Value>) {
    {
        let Some(spec) = ensure_object(o, "spec") else {
            return;
        };
        let unset = |m: &Map<String, Value>, k: &str| matches!(m.get(k), None | Some(Value::Null));
        if unset(spec, "completions") && unset(spec, "parallelism") {
            spec.insert("completions".into(), Value::from(1));
            spec.insert("parallelism".into(), Value::from(1));
        }
        default_value(spec, "parallelism", 1);
        if unset(spec, "backoffLimit") {
            let limit = if unset(spec, "backoffLimitPerIndex") {
                6
            } else {
                i64::from(i32::MAX)
            };
            spec.insert("backoffLimit".into(), Value::from(limit));
        }
        default_value(spec, "completionMode", "NonIndexed");
        default_value(spec, "suspend", false);
        pod_failure_policy(spec);
        if unset(spec, "podReplacementPolicy") {
            let policy = if unset(spec, "podFailurePolicy") {
                "TerminatingOrFailed"
            } else {
                "Failed"
            };
            spec.insert("podReplacementPolicy".into(), Value::from(policy));
        }
        default_value(spec, "manualSelector", false);
        template_spec(spec);
    }
    job_labels_from_template(o);
}

/// The Job's labels default to its template's when it has none.
fn job_labels_from_template(o: &mut Map<String, Value>) {
    let template_labels = o
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| is_nonempty_object(Some(l)))
        .cloned();
    let Some(template_labels) = template_labels else {
        return;
    };
    let Some(meta) = ensure_object(o, "metadata") else {
        return;
    };
    let empty = match meta.get("labels") {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    };
    if empty {
        meta.insert("labels".into(), template_labels);
    }
}

/// `SetDefaults_PodFailurePolicyOnPodConditionsPattern`: a pattern's status is `True`.
fn pod_failure_policy(spec: &mut Map<String, Value>) {
    if let Some(policy) = child(spec, "podFailurePolicy") {
        each_object(policy, "rules", |rule| {
            each_object(rule, "onPodConditions", |pattern| {
                default_string(pattern, "status", "True");
            });
        });
    }
}

/// `SetDefaults_CronJob`; the job template gets the pod template defaults only.
fn cron_job(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_object(o, "spec") else {
        return;
    };
    default_string(spec, "concurrencyPolicy", "Allow");
    default_value(spec, "suspend", false);
    default_value(spec, "successfulJobsHistoryLimit", 3);
    default_value(spec, "failedJobsHistoryLimit", 1);
    if let Some(job_template) = ensure_object(spec, "jobTemplate")
        && let Some(job_spec) = ensure_object(job_template, "spec")
    {
        pod_failure_policy(job_spec);
        template_spec(job_spec);
    }
}

// ---------------------------------------------------------------------------------------
// discovery.k8s.io/v1
// ---------------------------------------------------------------------------------------

/// `SetDefaults_EndpointPort`: an empty name and TCP.
fn endpoint_slice(o: &mut Map<String, Value>) {
    each_object(o, "ports", |p| {
        default_value(p, "name", "");
        default_value(p, "protocol", "TCP");
    });
}

// ---------------------------------------------------------------------------------------
// Image references (for imagePullPolicy)
// ---------------------------------------------------------------------------------------

fn reference_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        let alnum = "[a-z0-9]+";
        let separator = "(?:[._]|__|[-]+)";
        let path_component = format!("{alnum}(?:{separator}{alnum})*");
        let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
        let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
        let domain_and_port = format!("(?:{domain_name}|{ipv6})(?::[0-9]+)?");
        let name = format!("(?:{domain_and_port}/)?{path_component}(?:/{path_component})*");
        let tag = "[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
        let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
        Regex::new(&format!("^({name})(?::({tag}))?(?:@({digest}))?$")).ok()
    })
    .as_ref()
}

/// The tag `parsers.ParseImageName` finds in an image reference (docker's
/// `ParseNormalizedNamed`): the explicit tag, `latest` when there is neither tag nor
/// digest, nothing with a digest only; `None` when the reference does not parse.
pub fn image_tag(image: &str) -> Option<String> {
    let b = image.as_bytes();
    if b.len() == 64
        && b.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    {
        return None;
    }
    // splitDockerDomain
    let (mut domain, mut remainder) = match image.find('/') {
        Some(i)
            if image[..i].contains(['.', ':'])
                || &image[..i] == "localhost"
                || image[..i].to_lowercase() != image[..i] =>
        {
            (image[..i].to_string(), image[i + 1..].to_string())
        }
        _ => ("docker.io".to_string(), image.to_string()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".to_string();
    }
    if domain == "docker.io" && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    let remote_name = remainder.split(':').next().unwrap_or("");
    if remote_name.to_lowercase() != remote_name {
        return None;
    }
    let full = format!("{domain}/{remainder}");
    let caps = reference_regex()?.captures(&full)?;
    if caps.get(1).map_or(0, |m| m.as_str().len()) > 255 {
        return None;
    }
    let digest = caps.get(3).map(|m| m.as_str());
    if let Some(digest) = digest {
        let (algorithm, encoded) = digest.split_once(':')?;
        let len = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return None,
        };
        let hex_ok = encoded
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if encoded.len() != len || !hex_ok {
            return None;
        }
    }
    match caps.get(2) {
        Some(tag) => Some(tag.as_str().to_string()),
        None if digest.is_none() => Some("latest".to_string()),
        None => Some(String::new()),
    }
}

// ---------------------------------------------------------------------------------------
// Quantities
// ---------------------------------------------------------------------------------------

/// How a quantity was written, which decides how it is printed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantityFormat {
    /// `1Ki`, `1Mi`, ...
    BinarySI,
    /// `1e3`.
    DecimalExponent,
    /// `1k`, `500m`, plain numbers.
    DecimalSI,
}

/// A `resource.Quantity`: an exact decimal value with the format it was written in. Its
/// [`Display`](fmt::Display) is Kubernetes' `String()`: the canonical form, or the text
/// it was parsed from when that already was canonical.
#[derive(Clone, Debug)]
pub struct Quantity {
    /// The value is `mantissa × 10^scale`.
    mantissa: i128,
    scale: i32,
    format: QuantityFormat,
    /// The parsed text, kept when Kubernetes keeps it (already canonical).
    cached: Option<String>,
}

/// `parseQuantityString`: sign, integer digits (leading zeros stripped), fraction
/// digits, suffix.
fn split_quantity(s: &str) -> Option<(bool, &str, &str, &str)> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    if let Some(&c) = b.first() {
        if c == b'-' {
            positive = false;
            pos += 1;
        } else if c == b'+' {
            pos += 1;
        }
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some((positive, "0", "", ""));
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let mut num = &s[num_start..pos];
    if num.is_empty() {
        num = "0";
    }
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return None;
    }
    Some((positive, num, denom, &s[suffix_start..]))
}

/// `suffixHandler.interpret`: base, exponent and format of a suffix.
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, QuantityFormat)> {
    let decimal = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = decimal {
        return Some((10, e, QuantityFormat::DecimalSI));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(e) = binary {
        return Some((2, e, QuantityFormat::BinarySI));
    }
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))?;
    if rest.is_empty() {
        return None;
    }
    let e: i64 = rest.parse().ok()?;
    Some((10, i32::try_from(e).ok()?, QuantityFormat::DecimalExponent))
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Quantity {
    /// `resource.ParseQuantity`; `None` where Kubernetes refuses the text (or the value
    /// is beyond what this implementation holds, about 10^38).
    pub fn parse(s: &str) -> Option<Quantity> {
        if s.is_empty() {
            return None;
        }
        if s == "0" {
            return Some(Quantity {
                mantissa: 0,
                scale: 0,
                format: QuantityFormat::DecimalSI,
                cached: Some(s.to_string()),
            });
        }
        let (positive, num, denom, suffix) = split_quantity(s)?;
        let (base, exponent, mut format) = interpret_suffix(suffix)?;
        let digits = format!("{num}{denom}");
        let digits_value: i128 = digits.parse().ok()?;
        let denom_len = i32::try_from(denom.len()).ok()?;
        let (mut mantissa, mut scale) = if base == 10 {
            (digits_value, exponent.checked_sub(denom_len)?)
        } else {
            let factor = 1i128.checked_shl(u32::try_from(exponent).ok()?)?;
            (digits_value.checked_mul(factor)?, -denom_len)
        };
        if !positive {
            mantissa = -mantissa;
        }

        // The fast path of ParseQuantity decides whether the text is kept.
        let num_len = i32::try_from(num.len()).ok()?;
        let precision = match format {
            QuantityFormat::BinarySI if exponent >= 0 && denom.is_empty() => {
                15 - num_len - exponent * 3 / 10 - 1
            }
            QuantityFormat::BinarySI => -1,
            _ => 18 - (num_len + denom_len),
        };
        let fast_scale = if base == 10 { exponent } else { 0 } - denom_len;
        let mut cached = None;
        let mut fast = false;
        if precision >= 0 && fast_scale >= -9 {
            let value: i64 = digits.parse().ok()?;
            let multiplier = if base == 2 {
                1i64.checked_shl(u32::try_from(exponent).ok()?).unwrap_or(0)
            } else {
                1
            };
            if value.checked_mul(multiplier).is_some() {
                fast = true;
                let keep = match format {
                    QuantityFormat::BinarySI => exponent % 10 == 0 && value & 0x07 != 0,
                    _ => {
                        fast_scale % 3 == 0 && !digits.ends_with("000") && !digits.starts_with('0')
                    }
                };
                if keep {
                    cached = Some(s.to_string());
                }
            }
        }
        if !fast {
            // inf.Dec path: round away from zero to nano units, cap binary values.
            if scale < -9 {
                let divisor = pow10(u32::try_from(-9 - scale).ok()?)?;
                let (q, r) = (mantissa / divisor, mantissa % divisor);
                mantissa = if r != 0 { q + mantissa.signum() } else { q };
                scale = -9;
            }
            if format == QuantityFormat::BinarySI {
                let max = Quantity::from_int(i128::from(i64::MAX));
                let abs = Quantity {
                    mantissa: mantissa.abs(),
                    scale,
                    format,
                    cached: None,
                };
                if abs.cmp_value(&max) == Ordering::Greater {
                    mantissa = i128::from(i64::MAX) * mantissa.signum();
                    scale = 0;
                }
                let one = Quantity::from_int(1);
                let abs = Quantity {
                    mantissa: mantissa.abs(),
                    scale,
                    format,
                    cached: None,
                };
                if mantissa != 0 && abs.cmp_value(&one) == Ordering::Less {
                    format = QuantityFormat::DecimalSI;
                }
            }
        }
        Some(Quantity {
            mantissa,
            scale,
            format,
            cached,
        })
    }

    /// A quantity from its JSON form (a string, as Kubernetes writes it, or a number,
    /// which it also accepts).
    pub fn from_value(v: &Value) -> Option<Quantity> {
        match v {
            Value::String(s) => Quantity::parse(s.trim()),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => None,
        }
    }

    fn from_int(v: i128) -> Quantity {
        Quantity {
            mantissa: v,
            scale: 0,
            format: QuantityFormat::DecimalSI,
            cached: None,
        }
    }

    /// `RoundUp(-3)`: values finer than a milli-unit go up (away from zero) to the next
    /// milli-unit.
    pub fn round_up_milli(&mut self) {
        if self.scale >= -3 {
            return;
        }
        self.cached = None;
        let Some(divisor) = u32::try_from(-3 - self.scale).ok().and_then(pow10) else {
            self.mantissa = self.mantissa.signum();
            self.scale = -3;
            return;
        };
        let (q, r) = (self.mantissa / divisor, self.mantissa % divisor);
        self.mantissa = if r != 0 {
            q + self.mantissa.signum()
        } else {
            q
        };
        self.scale = -3;
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Compare the values (formats aside).
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        let scale = self.scale.min(other.scale);
        let widen = |q: &Quantity| {
            u32::try_from(q.scale - scale)
                .ok()
                .and_then(pow10)
                .and_then(|f| q.mantissa.checked_mul(f))
        };
        match (widen(self), widen(other)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => {
                let f = |q: &Quantity| q.mantissa as f64 * 10f64.powi(q.scale);
                f(self).partial_cmp(&f(other)).unwrap_or(Ordering::Equal)
            }
        }
    }

    /// The value as a whole number, if it is one.
    fn as_integer(&self) -> Option<i128> {
        if self.scale >= 0 {
            pow10(u32::try_from(self.scale).ok()?).and_then(|f| self.mantissa.checked_mul(f))
        } else {
            let f = pow10(u32::try_from(-self.scale).ok()?)?;
            (self.mantissa % f == 0).then(|| self.mantissa / f)
        }
    }

    /// The value in whole units, rounded up (`Value`).
    pub fn value_rounded_up(&self) -> Option<i128> {
        let m = self.milli_value()?;
        Some(m.div_euclid(1000) + i128::from(m.rem_euclid(1000) != 0))
    }

    /// The value in thousandths, rounded up (`MilliValue`).
    pub fn milli_value(&self) -> Option<i128> {
        let mut q = self.clone();
        q.round_up_milli();
        let shift = q.scale + 3;
        if shift >= 0 {
            pow10(u32::try_from(shift).ok()?).and_then(|f| q.mantissa.checked_mul(f))
        } else {
            Some(q.mantissa)
        }
    }

    /// `AsCanonicalBytes`: digits and a decimal exponent that is a multiple of three.
    fn canonical_decimal(&self) -> (i128, i32) {
        let mut m = self.mantissa;
        let mut e = self.scale;
        while m != 0 && m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        match e.rem_euclid(3) {
            1 => {
                m = m.saturating_mul(10);
                e -= 1;
            }
            2 => {
                m = m.saturating_mul(100);
                e -= 2;
            }
            _ => {}
        }
        (m, e)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = &self.cached {
            return f.write_str(text);
        }
        if self.mantissa == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        let mut integer = None;
        if format == QuantityFormat::BinarySI {
            let small = self.cmp_value(&Quantity::from_int(-1024)) == Ordering::Greater
                && self.cmp_value(&Quantity::from_int(1024)) == Ordering::Less;
            integer = self.as_integer();
            if small || integer.is_none() {
                format = QuantityFormat::DecimalSI;
            }
        }
        match (format, integer) {
            (QuantityFormat::BinarySI, Some(mut v)) => {
                let mut e = 0;
                while v != 0 && v % 1024 == 0 {
                    v /= 1024;
                    e += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                    .get(e)
                    .copied()
                    .unwrap_or("");
                write!(f, "{v}{suffix}")
            }
            (QuantityFormat::DecimalExponent, _) => {
                let (m, e) = self.canonical_decimal();
                if e == 0 {
                    write!(f, "{m}")
                } else {
                    write!(f, "{m}e{e}")
                }
            }
            _ => {
                let (m, e) = self.canonical_decimal();
                let suffix = match e {
                    -9 => "n",
                    -6 => "u",
                    -3 => "m",
                    3 => "k",
                    6 => "M",
                    9 => "G",
                    12 => "T",
                    15 => "P",
                    18 => "E",
                    // Kubernetes has no suffix beyond these and prints none.
                    _ => "",
                };
                write!(f, "{m}{suffix}")
            }
        }
    }
}

/// Rewrite the quantity at `key` in canonical form (rounded up to milli-units for
/// resource lists); values that do not parse are left alone.
fn canonical_quantity_at(m: &mut Map<String, Value>, key: &str, round_milli: bool) {
    if let Some(v) = m.get_mut(key) {
        canonicalize(v, round_milli);
    }
}

fn canonicalize(v: &mut Value, round_milli: bool) {
    if let Some(mut q) = Quantity::from_value(v) {
        if round_milli {
            q.round_up_milli();
        }
        *v = Value::from(q.to_string());
    }
}

/// `SetDefaults_ResourceList` on the map at `key`, and canonical quantities.
fn resource_list(m: &mut Map<String, Value>, key: &str) {
    if let Some(list) = child(m, key) {
        for v in list.values_mut() {
            canonicalize(v, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the API server does before defaulting: decode into the typed object and
    /// encode again.
    fn normalize<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) -> Value {
        let typed: T = serde_json::from_value(v).expect("decodes");
        serde_json::to_value(typed).expect("encodes")
    }

    fn defaulted(group: &str, kind: &str, v: Value) -> Value {
        let mut v = v;
        apply_defaults(group, kind, &mut v);
        v
    }

    /// Defaulting twice changes nothing more, and the result still decodes into the
    /// Kubernetes type and encodes back unchanged.
    fn check_stable<T: serde::de::DeserializeOwned + serde::Serialize>(
        group: &str,
        kind: &str,
        v: &Value,
    ) {
        let once = defaulted(group, kind, v.clone());
        let twice = defaulted(group, kind, once.clone());
        assert_eq!(once, twice, "{kind} defaulting is not idempotent");
        // The typed object may add what it always writes (apiVersion, kind, required
        // empties) but must keep every defaulted value as it is.
        let typed = normalize::<T>(once.clone());
        assert_contained(&once, &typed, kind);
    }

    fn assert_contained(part: &Value, whole: &Value, path: &str) {
        match (part, whole) {
            (Value::Object(p), Value::Object(w)) => {
                for (k, v) in p {
                    let Some(wv) = w.get(k) else {
                        panic!("{path}.{k} lost in the typed round trip");
                    };
                    assert_contained(v, wv, &format!("{path}.{k}"));
                }
            }
            (Value::Array(p), Value::Array(w)) => {
                assert_eq!(p.len(), w.len(), "{path} length changed");
                for (i, (a, b)) in p.iter().zip(w).enumerate() {
                    assert_contained(a, b, &format!("{path}[{i}]"));
                }
            }
            _ => assert_eq!(part, whole, "{path} changed in the typed round trip"),
        }
    }

    fn q(s: &str) -> String {
        Quantity::parse(s).expect("parses").to_string()
    }

    fn q_rounded(s: &str) -> String {
        let mut q = Quantity::parse(s).expect("parses");
        q.round_up_milli();
        q.to_string()
    }

    #[test]
    fn kubectl_create_deployment_gets_exactly_kubernetes_defaults() {
        // `kubectl create deployment x --image=nginx` sends this.
        let sent = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "x", "creationTimestamp": null, "labels": {"app": "x"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "x"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "x"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
                },
                "strategy": {}
            },
            "status": {}
        });
        let obj = normalize::<k8s_openapi::api::apps::v1::Deployment>(sent);
        let obj = defaulted("apps", "Deployment", obj);
        // What `--dry-run=server -o json` shows for the spec on Kubernetes 1.33.
        let expected = json!({
            "progressDeadlineSeconds": 600,
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "x"}},
            "strategy": {
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                "type": "RollingUpdate"
            },
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "containers": [{
                        "image": "nginx",
                        "imagePullPolicy": "Always",
                        "name": "nginx",
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30
                }
            }
        });
        assert_eq!(obj["spec"], expected);
        assert_eq!(obj["metadata"]["labels"], json!({"app": "x"}));
        check_stable::<k8s_openapi::api::apps::v1::Deployment>("apps", "Deployment", &obj);
    }

    #[test]
    fn kubectl_run_pod_defaults() {
        let sent = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"run": "p"}},
            "spec": {"containers": [{"name": "p", "image": "nginx:1.27", "resources": {}}],
                     "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}
        });
        let obj = defaulted(
            "",
            "Pod",
            normalize::<k8s_openapi::api::core::v1::Pod>(sent),
        );
        assert_eq!(
            obj["spec"],
            json!({
                "containers": [{
                    "image": "nginx:1.27",
                    "imagePullPolicy": "IfNotPresent",
                    "name": "p",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File"
                }],
                "dnsPolicy": "ClusterFirst",
                "enableServiceLinks": true,
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30
            })
        );
        check_stable::<k8s_openapi::api::core::v1::Pod>("", "Pod", &obj);
    }

    #[test]
    fn set_values_are_kept() {
        let obj = defaulted(
            "",
            "Pod",
            json!({"spec": {
                "restartPolicy": "Never", "dnsPolicy": "Default", "schedulerName": "mine",
                "terminationGracePeriodSeconds": 0, "enableServiceLinks": false,
                "securityContext": {"runAsUser": 1000},
                "containers": [{"name": "a", "image": "nginx", "imagePullPolicy": "Never",
                    "terminationMessagePath": "/tmp/x", "terminationMessagePolicy": "FallbackToLogsOnError",
                    "ports": [{"containerPort": 53, "protocol": "UDP"}]}]
            }}),
        );
        let spec = &obj["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["dnsPolicy"], "Default");
        assert_eq!(spec["schedulerName"], "mine");
        assert_eq!(spec["terminationGracePeriodSeconds"], 0);
        assert_eq!(spec["enableServiceLinks"], false);
        assert_eq!(spec["securityContext"], json!({"runAsUser": 1000}));
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Never");
        assert_eq!(c["terminationMessagePath"], "/tmp/x");
        assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
        assert_eq!(c["ports"][0]["protocol"], "UDP");
    }

    #[test]
    fn empty_strings_are_unset_for_plain_string_fields() {
        let obj = defaulted(
            "",
            "Pod",
            json!({"spec": {"restartPolicy": "", "containers": [{"name": "a", "image": "x:1", "imagePullPolicy": ""}]}}),
        );
        assert_eq!(obj["spec"]["restartPolicy"], "Always");
        assert_eq!(
            obj["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        let policy = |image: &str| {
            let obj = defaulted(
                "",
                "Pod",
                json!({"spec": {"containers": [{"name": "a", "image": image}]}}),
            );
            obj["spec"]["containers"][0]["imagePullPolicy"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(policy("nginx"), "Always");
        assert_eq!(policy("nginx:latest"), "Always");
        assert_eq!(policy("library/nginx"), "Always");
        assert_eq!(policy("registry.k8s.io/pause"), "Always");
        assert_eq!(policy("localhost:5000/app"), "Always");
        assert_eq!(policy("localhost:5000/app:latest"), "Always");
        assert_eq!(policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(policy("localhost:5000/app:v2"), "IfNotPresent");
        let digest = "a".repeat(64);
        assert_eq!(policy(&format!("nginx@sha256:{digest}")), "IfNotPresent");
        assert_eq!(policy(&format!("nginx:latest@sha256:{digest}")), "Always");
        // Unparsable references are IfNotPresent.
        assert_eq!(policy(""), "IfNotPresent");
        assert_eq!(policy("Nginx"), "IfNotPresent");
        assert_eq!(policy("nginx@sha256:abc"), "IfNotPresent");
        assert_eq!(policy(&digest), "IfNotPresent");
        assert_eq!(policy("nginx:"), "IfNotPresent");
    }

    #[test]
    fn image_tag_parsing() {
        assert_eq!(image_tag("busybox").as_deref(), Some("latest"));
        assert_eq!(image_tag("busybox:1.36").as_deref(), Some("1.36"));
        assert_eq!(
            image_tag("Registry.Example/app:tag").as_deref(),
            Some("tag")
        );
        assert_eq!(image_tag("[::1]:5000/app").as_deref(), Some("latest"));
        assert_eq!(image_tag("a/B"), None);
    }

    #[test]
    fn probes_volumes_env_and_lifecycle() {
        let obj = defaulted(
            "",
            "Pod",
            json!({"spec": {
                "containers": [{
                    "name": "a", "image": "x:1",
                    "livenessProbe": {"httpGet": {"port": 80}},
                    "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
                    "startupProbe": {"tcpSocket": {"port": 80}, "timeoutSeconds": 0},
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "lifecycle": {"preStop": {"httpGet": {"port": 8080}}},
                    "ports": [{"containerPort": 80}]
                }],
                "volumes": [
                    {"name": "a"},
                    {"name": "b", "configMap": {"name": "cm"}},
                    {"name": "c", "secret": {"secretName": "s", "defaultMode": 256}},
                    {"name": "d", "hostPath": {"path": "/x"}},
                    {"name": "e", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
                    ]}},
                    {"name": "f", "downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "g", "emptyDir": {"sizeLimit": "1024Mi"}}
                ]
            }}),
        );
        let c = &obj["spec"]["containers"][0];
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                   "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            c["readinessProbe"]["grpc"],
            json!({"port": 9000, "service": ""})
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        assert_eq!(c["startupProbe"]["timeoutSeconds"], 1);
        assert_eq!(
            c["env"][0]["valueFrom"]["fieldRef"],
            json!({"fieldPath": "metadata.name", "apiVersion": "v1"})
        );
        assert_eq!(
            c["lifecycle"]["preStop"]["httpGet"],
            json!({"port": 8080, "path": "/", "scheme": "HTTP"})
        );
        assert_eq!(
            c["ports"][0],
            json!({"containerPort": 80, "protocol": "TCP"})
        );
        let v = &obj["spec"]["volumes"];
        assert_eq!(v[0], json!({"name": "a", "emptyDir": {}}));
        assert_eq!(v[1]["configMap"], json!({"name": "cm", "defaultMode": 420}));
        assert_eq!(
            v[2]["secret"],
            json!({"secretName": "s", "defaultMode": 256})
        );
        assert_eq!(v[3]["hostPath"], json!({"path": "/x", "type": ""}));
        assert_eq!(v[4]["projected"]["defaultMode"], 420);
        assert_eq!(
            v[4]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3600
        );
        assert_eq!(
            v[4]["projected"]["sources"][1]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(v[5]["downwardAPI"]["defaultMode"], 420);
        assert_eq!(
            v[5]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(v[6]["emptyDir"]["sizeLimit"], "1Gi");
        check_stable::<k8s_openapi::api::core::v1::Pod>("", "Pod", &obj);
    }

    #[test]
    fn pod_requests_default_to_limits_but_templates_do_not() {
        let spec = json!({"containers": [{"name": "a", "image": "x:1",
            "resources": {"limits": {"cpu": "0.5", "memory": "128Mi"}, "requests": {"memory": "64Mi"}}}]});
        let pod = defaulted("", "Pod", json!({"spec": spec.clone()}));
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"memory": "64Mi", "cpu": "500m"}})
        );
        let rs = defaulted(
            "apps",
            "ReplicaSet",
            json!({"spec": {"template": {"spec": spec}}}),
        );
        let tspec = &rs["spec"]["template"]["spec"];
        assert_eq!(
            tspec["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"memory": "64Mi"}})
        );
        assert!(tspec.get("enableServiceLinks").is_none());
    }

    #[test]
    fn host_network_pods_get_host_ports() {
        let obj = defaulted(
            "",
            "Pod",
            json!({"spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "x:1",
                "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 9000}]}]}}),
        );
        let ports = &obj["spec"]["containers"][0]["ports"];
        assert_eq!(ports[0]["hostPort"], 80);
        assert_eq!(ports[1]["hostPort"], 9000);
    }

    #[test]
    fn service_defaults() {
        let sent = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"selector": {"app": "s"}, "ports": [{"port": 80}, {"name": "b", "port": 81, "targetPort": "http"}]}});
        let obj = defaulted(
            "",
            "Service",
            normalize::<k8s_openapi::api::core::v1::Service>(sent),
        );
        assert_eq!(
            obj["spec"],
            json!({
                "selector": {"app": "s"},
                "ports": [
                    {"port": 80, "protocol": "TCP", "targetPort": 80},
                    {"name": "b", "port": 81, "protocol": "TCP", "targetPort": "http"}
                ],
                "sessionAffinity": "None",
                "type": "ClusterIP",
                "internalTrafficPolicy": "Cluster"
            })
        );
        check_stable::<k8s_openapi::api::core::v1::Service>("", "Service", &obj);

        let lb = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 443}]},
                   "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "lb"}]}}}),
        );
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            lb["spec"]["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        assert_eq!(lb["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
        assert!(
            lb["status"]["loadBalancer"]["ingress"][1]
                .get("ipMode")
                .is_none()
        );
        check_stable::<k8s_openapi::api::core::v1::Service>("", "Service", &lb);

        let external = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "a.example",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}}),
        );
        assert!(external["spec"].get("internalTrafficPolicy").is_none());
        assert!(external["spec"].get("externalTrafficPolicy").is_none());
        // None affinity drops the config, as Kubernetes does.
        assert!(external["spec"].get("sessionAffinityConfig").is_none());

        let with_ips = defaulted(
            "",
            "Service",
            json!({"spec": {"externalIPs": ["1.1.1.1"], "ports": [{"port": 1}]}}),
        );
        assert_eq!(with_ips["spec"]["externalTrafficPolicy"], "Cluster");
    }

    #[test]
    fn workload_defaults() {
        let ds = defaulted("apps", "DaemonSet", json!({"spec": {"template": {}}}));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(ds["spec"]["template"]["spec"]["restartPolicy"], "Always");

        let on_delete = defaulted(
            "apps",
            "DaemonSet",
            json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
        );
        assert_eq!(
            on_delete["spec"]["updateStrategy"],
            json!({"type": "OnDelete"})
        );

        let recreate = defaulted(
            "apps",
            "Deployment",
            json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}}),
        );
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(recreate["spec"]["replicas"], 0);

        let rs = defaulted("apps", "ReplicaSet", json!({"spec": {}}));
        assert_eq!(rs["spec"]["replicas"], 1);
        assert!(rs["spec"].get("revisionHistoryLimit").is_none());

        let sts = defaulted(
            "apps",
            "StatefulSet",
            json!({"spec": {"serviceName": "web",
                "volumeClaimTemplates": [{"metadata": {"name": "www"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        );
        let spec = &sts["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert!(spec.get("serviceName").is_some());
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["status"],
            json!({"phase": "Pending"})
        );
        check_stable::<k8s_openapi::api::apps::v1::StatefulSet>("apps", "StatefulSet", &sts);

        // A RollingUpdate type given without parameters gets no partition.
        let typed = defaulted(
            "apps",
            "StatefulSet",
            json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}}),
        );
        assert_eq!(
            typed["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate"})
        );
    }

    #[test]
    fn job_defaults_and_selector_generation() {
        // `kubectl create job j --image=busybox` sends this.
        let sent = json!({"kind": "Job", "apiVersion": "batch/v1",
            "metadata": {"name": "j", "creationTimestamp": null},
            "spec": {"template": {"metadata": {"creationTimestamp": null},
                "spec": {"containers": [{"name": "j", "image": "busybox", "resources": {}}],
                         "restartPolicy": "Never"}}},
            "status": {}});
        let mut obj = defaulted(
            "batch",
            "Job",
            normalize::<k8s_openapi::api::batch::v1::Job>(sent),
        );
        obj["metadata"]["uid"] = json!("0b1c");
        job_prepare_for_create(&mut obj);
        let labels = json!({
            "batch.kubernetes.io/controller-uid": "0b1c",
            "batch.kubernetes.io/job-name": "j",
            "controller-uid": "0b1c",
            "job-name": "j"
        });
        assert_eq!(obj["metadata"]["labels"], labels);
        let spec = &obj["spec"];
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "0b1c"}})
        );
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        check_stable::<k8s_openapi::api::batch::v1::Job>("batch", "Job", &obj);
        let mut again = obj.clone();
        job_prepare_for_create(&mut again);
        assert_eq!(again, obj);
    }

    #[test]
    fn job_parallel_and_manual_selector() {
        let parallel = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
        assert!(parallel["spec"].get("completions").is_none());
        let completions = defaulted("batch", "Job", json!({"spec": {"completions": 5}}));
        assert_eq!(completions["spec"]["parallelism"], 1);
        let per_index = defaulted(
            "batch",
            "Job",
            json!({"spec": {"backoffLimitPerIndex": 1, "completionMode": "Indexed", "completions": 2,
                "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}),
        );
        assert_eq!(per_index["spec"]["backoffLimit"], 2147483647);
        assert_eq!(per_index["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(
            per_index["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
            "True"
        );

        let mut manual = defaulted(
            "batch",
            "Job",
            json!({"metadata": {"name": "m", "uid": "u", "labels": {"own": "1"}},
                   "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}},
                            "template": {"metadata": {"labels": {"a": "b"}}}}}),
        );
        let before = manual.clone();
        job_prepare_for_create(&mut manual);
        assert_eq!(manual, before);
        assert_eq!(manual["metadata"]["labels"], json!({"own": "1"}));

        // Labels a user put on the template are kept (validation judges them).
        let mut own = json!({"metadata": {"name": "o", "uid": "u"},
            "spec": {"template": {"metadata": {"labels": {"job-name": "other", "app": "x"}}}}});
        apply_defaults("batch", "Job", &mut own);
        assert_eq!(
            own["metadata"]["labels"],
            json!({"job-name": "other", "app": "x"})
        );
        job_prepare_for_create(&mut own);
        assert_eq!(
            own["spec"]["template"]["metadata"]["labels"]["job-name"],
            "other"
        );
        assert_eq!(
            own["metadata"]["labels"],
            json!({"job-name": "other", "app": "x"})
        );
    }

    #[test]
    fn cron_job_defaults() {
        let obj = defaulted(
            "batch",
            "CronJob",
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}}}}}}),
        );
        let spec = &obj["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        let job_spec = &spec["jobTemplate"]["spec"];
        // The job template gets no Job defaults, only pod template ones.
        assert!(job_spec.get("backoffLimit").is_none());
        assert_eq!(job_spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(job_spec["template"]["spec"]["restartPolicy"], "OnFailure");
        check_stable::<k8s_openapi::api::batch::v1::CronJob>("batch", "CronJob", &obj);
    }

    #[test]
    fn core_kinds() {
        let ns = defaulted(
            "",
            "Namespace",
            json!({"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "x"}}}),
        );
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "dev"
        );
        assert_eq!(ns["status"]["phase"], "Active");
        let generated = defaulted("", "Namespace", json!({"metadata": {"generateName": "a-"}}));
        assert!(generated["metadata"].get("labels").is_none());

        let secret = defaulted("", "Secret", json!({"data": {}}));
        assert_eq!(secret["type"], "Opaque");
        let tls = defaulted("", "Secret", json!({"type": "kubernetes.io/tls"}));
        assert_eq!(tls["type"], "kubernetes.io/tls");

        let pvc = defaulted(
            "",
            "PersistentVolumeClaim",
            json!({"spec": {"resources": {"requests": {"storage": "1000Mi"}}}}),
        );
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1000Mi");
        assert_eq!(pvc["status"]["phase"], "Pending");

        let pv = defaulted(
            "",
            "PersistentVolume",
            json!({"spec": {"capacity": {"storage": "1024Mi"}, "hostPath": {"path": "/d"}}}),
        );
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pv["spec"]["capacity"]["storage"], "1Gi");
        assert_eq!(pv["spec"]["hostPath"]["type"], "");
        assert_eq!(pv["status"]["phase"], "Pending");
        check_stable::<k8s_openapi::api::core::v1::PersistentVolume>("", "PersistentVolume", &pv);

        let node = defaulted(
            "",
            "Node",
            json!({"status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
        );
        assert_eq!(node["status"]["allocatable"], node["status"]["capacity"]);

        let ep = defaulted(
            "",
            "Endpoints",
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
        );
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");

        let slice = defaulted(
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"addressType": "IPv4", "endpoints": [], "ports": [{"port": 80}]}),
        );
        assert_eq!(
            slice["ports"][0],
            json!({"port": 80, "name": "", "protocol": "TCP"})
        );

        for kind in ["ConfigMap", "ServiceAccount", "Event"] {
            let v = json!({"metadata": {"name": "x"}});
            assert_eq!(defaulted("", kind, v.clone()), v);
        }
        let lease = json!({"spec": {"holderIdentity": "a"}});
        assert_eq!(
            defaulted("coordination.k8s.io", "Lease", lease.clone()),
            lease
        );
    }

    #[test]
    fn odd_input_is_left_alone() {
        for v in [
            json!(null),
            json!(3),
            json!("x"),
            json!([1, 2]),
            json!({"spec": 5}),
            json!({"spec": {"containers": "x", "volumes": [1, null, "a"]}}),
            json!({"spec": {"template": "x"}}),
            json!({"spec": {"template": {"spec": []}}}),
            json!({"spec": {"strategy": 1, "updateStrategy": [], "ports": {"a": 1}}}),
            json!({"spec": {"containers": [{"image": 5, "ports": [3], "resources": "x", "imagePullPolicy": 1}]}}),
            json!({"metadata": {"name": 1, "labels": "x"}, "spec": {"selector": 7, "template": {"metadata": {"labels": 3}}}}),
        ] {
            for (group, kind) in [
                ("", "Pod"),
                ("", "Service"),
                ("", "Namespace"),
                ("", "Node"),
                ("", "PersistentVolume"),
                ("", "PersistentVolumeClaim"),
                ("", "Endpoints"),
                ("", "Secret"),
                ("apps", "Deployment"),
                ("apps", "DaemonSet"),
                ("apps", "StatefulSet"),
                ("apps", "ReplicaSet"),
                ("batch", "Job"),
                ("batch", "CronJob"),
                ("discovery.k8s.io", "EndpointSlice"),
            ] {
                let once = defaulted(group, kind, v.clone());
                assert_eq!(defaulted(group, kind, once.clone()), once, "{kind} {v}");
                let mut job = once.clone();
                job_prepare_for_create(&mut job);
            }
        }
        // Wrong types in place of defaulted fields are not replaced.
        let obj = defaulted(
            "",
            "Pod",
            json!({"spec": {"restartPolicy": 3, "securityContext": "x", "containers": [{"name": "a", "image": "x", "imagePullPolicy": 1, "resources": 7}]}}),
        );
        assert_eq!(obj["spec"]["restartPolicy"], 3);
        assert_eq!(obj["spec"]["securityContext"], "x");
        assert_eq!(obj["spec"]["containers"][0]["imagePullPolicy"], 1);
        assert_eq!(obj["spec"]["containers"][0]["resources"], 7);
    }

    #[test]
    fn quantities_print_like_kubernetes() {
        for (input, out) in [
            ("0", "0"),
            ("0m", "0"),
            ("00", "0"),
            ("0.0", "0"),
            ("1", "1"),
            ("+1", "+1"),
            ("100m", "100m"),
            ("0.5", "500m"),
            ("0.1", "100m"),
            (".5", "500m"),
            ("1.5", "1500m"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1.5k", "1500"),
            ("2000m", "2"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("12e3", "12e3"),
            ("1E3", "1E3"),
            ("1Ki", "1Ki"),
            ("1024", "1024"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("0.1Ki", "102400m"),
            ("8Gi", "8Gi"),
            ("100Mi", "100Mi"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("129M", "129M"),
            ("123Mi", "123Mi"),
            ("-1", "-1"),
            ("-0.5", "-500m"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("5.", "5."),
            ("1000E", "1"),
        ] {
            assert_eq!(q(input), out, "{input}");
            assert_eq!(q(&q(input)), q(input), "{input} canonical form is stable");
        }
        for bad in ["", "x", "1x", "1.2.3", "1 Mi", "1e", "--1", "1Gi1", "1e3.5"] {
            assert!(Quantity::parse(bad).is_none(), "{bad} should not parse");
        }
    }

    #[test]
    fn resource_lists_round_up_to_milli() {
        assert_eq!(q_rounded("100u"), "1m");
        assert_eq!(q_rounded("1500u"), "2m");
        assert_eq!(q_rounded("1000u"), "1m");
        assert_eq!(q_rounded("1n"), "1m");
        assert_eq!(q_rounded("-1n"), "-1m");
        assert_eq!(q_rounded("0.0001"), "1m");
        assert_eq!(q_rounded("250m"), "250m");
        assert_eq!(q_rounded("1Gi"), "1Gi");
        let pod = defaulted(
            "",
            "Pod",
            json!({"spec": {"containers": [{"name": "a", "image": "x:1",
                "resources": {"requests": {"cpu": 0.25, "memory": "1000Ki"}, "limits": {"cpu": "1000m"}}}]}}),
        );
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "250m", "memory": "1000Ki"}, "limits": {"cpu": "1"}})
        );
    }

    #[test]
    fn quantity_comparison() {
        let p = |s: &str| Quantity::parse(s).expect("parses");
        assert_eq!(p("1").cmp_value(&p("1000m")), Ordering::Equal);
        assert_eq!(p("1Ki").cmp_value(&p("1k")), Ordering::Greater);
        assert_eq!(p("500m").cmp_value(&p("0.6")), Ordering::Less);
        assert_eq!(p("1E").cmp_value(&p("1n")), Ordering::Greater);
        assert!(p("-1").is_negative());
        assert_eq!(p("1.5").milli_value(), Some(1500));
        assert_eq!(p("1u").milli_value(), Some(1));
    }

    proptest! {
        #[test]
        fn quantity_canonical_form_is_a_fixed_point(
            int in 0u64..100_000,
            frac in proptest::option::of(0u32..1000),
            suffix in proptest::sample::select(vec!["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "u", "n", "e3", "e-2", "P"]),
            negative in any::<bool>(),
        ) {
            let text = match frac {
                Some(f) => format!("{}{int}.{f}{suffix}", if negative { "-" } else { "" }),
                None => format!("{}{int}{suffix}", if negative { "-" } else { "" }),
            };
            let parsed = Quantity::parse(&text).expect("valid quantity");
            let canonical = parsed.to_string();
            let reparsed = Quantity::parse(&canonical).expect("canonical form parses");
            prop_assert_eq!(reparsed.cmp_value(&parsed), Ordering::Equal, "{} -> {}", text, canonical);
            prop_assert_eq!(reparsed.to_string(), canonical);
        }

        #[test]
        fn defaulting_arbitrary_json_never_panics_and_is_idempotent(v in arb_json()) {
            for (group, kind) in [("", "Pod"), ("", "Service"), ("apps", "Deployment"), ("apps", "StatefulSet"), ("batch", "Job"), ("batch", "CronJob"), ("", "PersistentVolume")] {
                let wrapped = json!({"spec": v.clone(), "status": v.clone(), "metadata": v.clone()});
                let once = defaulted(group, kind, wrapped);
                let twice = defaulted(group, kind, once.clone());
                prop_assert_eq!(&once, &twice);
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            proptest::sample::select(vec!["", "Always", "x", "0.5", "1Gi", "nginx"])
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let keys = proptest::sample::select(vec![
                "containers",
                "template",
                "spec",
                "ports",
                "volumes",
                "resources",
                "limits",
                "requests",
                "type",
                "strategy",
                "rollingUpdate",
                "image",
                "selector",
                "labels",
                "metadata",
                "updateStrategy",
                "livenessProbe",
                "httpGet",
                "port",
                "targetPort",
                "jobTemplate",
                "hostNetwork",
                "sessionAffinity",
                "capacity",
                "name",
            ]);
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((keys, inner), 0..5).prop_map(|kvs| {
                    Value::Object(kvs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                }),
            ]
        })
    }
}
