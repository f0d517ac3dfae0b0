//! Type-specific validation of built-in kinds, as kube-apiserver's strategies do it.
//!
//! [`validate`] is the part of `Validate`/`ValidateUpdate` that is particular to a kind
//! (`pkg/apis/*/validation/validation.go`): pod specs and templates, workload selectors,
//! Job and CronJob rules, Services, Secrets, ConfigMaps, Leases, claims. The object
//! metadata checks common to every kind are done by the caller
//! ([`crate::api::validation::validate_object_meta`]).
//!
//! It expects objects that went through [`crate::api::defaults::apply_defaults`] (and,
//! for a new Job, [`crate::api::defaults::job_prepare_for_create`]), as Kubernetes
//! validates after defaulting. Paths and messages are Kubernetes **v1.33**'s, including
//! the way Go prints bad values that are not plain strings or numbers
//! (`map[string]string{"app":"x"}`, `v1.LabelSelector{...}`); errors come in the order
//! Kubernetes finds them, map keys in sorted order. Nothing here panics on odd input.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde_json::{Map, Value};

use crate::api::defaults::{
    JOB_CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_JOB_CONTROLLER_UID_LABEL,
    LEGACY_JOB_NAME_LABEL, Quantity,
};
use crate::api::selectors::LabelSelector;
use crate::api::validation::{
    FieldError, FieldErrorKind, IS_NEGATIVE_ERROR_MSG, go_quote, is_dns1123_label,
    is_dns1123_subdomain, is_qualified_name, is_valid_label_value, max_len_error, regex_error,
    validate_annotations, validate_label_selector, validate_labels,
};

/// `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";
/// `core.MaxSecretSize`: the largest total size of a Secret's or ConfigMap's data.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// The type-specific validation errors of `obj` (a `group`/`kind` built-in, `group` empty
/// for the core group); `old` is the stored object on update. Kinds without such rules
/// give none.
pub fn validate(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match (group, kind) {
        ("", "Pod") => pod(obj, old, &mut errs),
        ("", "Service") => service(obj, old, &mut errs),
        ("", "Secret") => secret(obj, old, &mut errs),
        ("", "ConfigMap") => config_map(obj, old, &mut errs),
        ("", "PersistentVolumeClaim") if old.is_none() => pvc(obj, &mut errs),
        ("apps", "Deployment") => deployment(obj, old, &mut errs),
        ("apps", "ReplicaSet") => replica_set(obj, old, &mut errs),
        ("apps", "DaemonSet") => daemon_set(obj, old, &mut errs),
        ("apps", "StatefulSet") => stateful_set(obj, old, &mut errs),
        ("batch", "Job") => job(obj, old, &mut errs),
        ("batch", "CronJob") => cron_job(obj, old, &mut errs),
        ("coordination.k8s.io", "Lease") => lease(obj, &mut errs),
        _ => {}
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

type Errs = Vec<FieldError>;

static NULL: Value = Value::Null;

/// The field `key` of `v` (null when absent or `v` is not an object).
fn at<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&NULL)
}

fn is_set(v: &Value, key: &str) -> bool {
    !at(v, key).is_null()
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    at(v, key).as_str().unwrap_or("")
}

fn int_at(v: &Value, key: &str) -> Option<i64> {
    at(v, key).as_i64()
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    at(v, key).as_array().map(Vec::as_slice).unwrap_or_default()
}

fn object_at<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    at(v, key).as_object()
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn keyed(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// A field error whose bad value Go prints with `%#v` (already rendered): the value goes
/// into the message so the text is exactly Kubernetes'.
fn raw(path: impl Into<String>, kind: FieldErrorKind, rendered: &str, detail: &str) -> FieldError {
    let message = if detail.is_empty() {
        rendered.to_string()
    } else {
        format!("{rendered}: {detail}")
    };
    FieldError::new(path, kind, None, message)
}

fn invalid_raw(path: impl Into<String>, rendered: &str, detail: &str) -> FieldError {
    raw(path, FieldErrorKind::Invalid, rendered, detail)
}

/// `field.NotSupported` of a string value.
fn not_supported(path: impl Into<String>, value: &str, valid: &[&str]) -> FieldError {
    FieldError::not_supported(path, value, valid)
}

/// `ValidateNonnegativeField`.
fn nonnegative(v: &Value, key: &str, path: &str, errs: &mut Errs) {
    if let Some(n) = int_at(v, key)
        && n < 0
    {
        errs.push(FieldError::invalid(
            child(path, key),
            n,
            IS_NEGATIVE_ERROR_MSG,
        ));
    }
}

/// How Go's `%v` shows a pointer that may be nil (`"null"` for nil, as `field.Error`
/// prints it).
fn or_null(v: &Value) -> Value {
    if v.is_null() {
        Value::from("null")
    } else {
        v.clone()
    }
}

/// Go's `%#v` of a string for a value of another JSON type.
fn go_string_of(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        other => go_quote(&other.to_string()),
    }
}

/// Go's `%#v` of a `map[string]string`.
fn go_map(v: &Value) -> String {
    match v.as_object() {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let entries: BTreeMap<&String, &Value> = m.iter().collect();
            let body: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_string_of(v)))
                .collect();
            format!("map[string]string{{{}}}", body.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string`.
fn go_strings(v: &Value) -> String {
    match v.as_array() {
        None => "[]string(nil)".to_string(),
        Some(items) => {
            let body: Vec<String> = items.iter().map(go_string_of).collect();
            format!("[]string{{{}}}", body.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector` (a nil pointer prints as `"null"`).
fn go_label_selector(v: &Value) -> String {
    if v.is_null() {
        return go_quote("null");
    }
    let exprs = match at(v, "matchExpressions").as_array() {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(exprs) => {
            let body: Vec<String> = exprs
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(str_at(e, "key")),
                        go_quote(str_at(e, "operator")),
                        go_strings(at(e, "values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", body.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        go_map(at(v, "matchLabels")),
        exprs
    )
}

/// Go's `%#v` of an `intstr.IntOrString`.
fn go_int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            go_quote(s)
        ),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

/// `apiequality.Semantic.DeepEqual` on JSON: zero values (null, "", 0, false, empty
/// lists and maps) are the same as absent.
fn semantic_eq(a: &Value, b: &Value) -> bool {
    fn prune(v: &Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Bool(false) => None,
            Value::String(s) if s.is_empty() => None,
            Value::Number(n) if n.as_f64() == Some(0.0) => None,
            Value::Array(items) if items.is_empty() => None,
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|i| prune(i).unwrap_or(Value::Null))
                    .collect(),
            )),
            Value::Object(m) => {
                let kept: Map<String, Value> = m
                    .iter()
                    .filter_map(|(k, v)| prune(v).map(|v| (k.clone(), v)))
                    .collect();
                (!kept.is_empty()).then_some(Value::Object(kept))
            }
            other => Some(other.clone()),
        }
    }
    prune(a) == prune(b)
}

/// `ValidateImmutableField` for a value Go prints plainly (strings, numbers, JSON).
fn immutable(new: &Value, old: &Value, path: &str, errs: &mut Errs) {
    if !semantic_eq(new, old) {
        errs.push(FieldError::invalid(
            path,
            or_null(new),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
}

/// `ValidateImmutableField` for a label selector.
fn immutable_selector(new: &Value, old: &Value, path: &str, errs: &mut Errs) {
    if !semantic_eq(new, old) {
        errs.push(invalid_raw(
            path,
            &go_label_selector(new),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
}

/// `InclusiveRangeError`.
fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// `IsValidPortNum`.
fn port_num_errors(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        vec![]
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// `IsValidPortName` (IANA service names).
fn port_name_errors(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// `IsConfigMapKey`: keys of ConfigMaps and Secrets.
fn config_map_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push(max_len_error(253));
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if key == "." {
        errs.push("must not be '.'".into());
    } else if key == ".." {
        errs.push("must not be '..'".into());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".into());
    }
    errs
}

/// Validate a name-like string and push `Invalid` errors for each message.
fn push_name_errors(path: &str, value: &str, check: fn(&str) -> Vec<String>, errs: &mut Errs) {
    for msg in check(value) {
        errs.push(FieldError::invalid(path, value, msg));
    }
}

/// The labels of an object's `metadata` (empty when none).
fn labels_of(obj: &Value) -> Map<String, Value> {
    object_at(at(obj, "metadata"), "labels")
        .cloned()
        .unwrap_or_default()
}

/// The label selector at `spec.selector` as a matcher (`LabelSelectorAsSelector`).
fn selector_of(selector: &Value) -> Result<LabelSelector, String> {
    LabelSelector::from_label_selector_json(selector).map_err(|e| e.0)
}

// ---------------------------------------------------------------------------------------
// Resources and quantities
// ---------------------------------------------------------------------------------------

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `IsOvercommitAllowed`: requests may be below limits.
fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepages(name)
}

/// `validateContainerResourceName`.
fn container_resource_name(name: &str, path: &str, errs: &mut Errs) {
    let qualified = is_qualified_name(name);
    if !qualified.is_empty() {
        for msg in qualified {
            errs.push(FieldError::invalid(path, name, msg));
        }
    } else if !name.contains('/')
        && !STANDARD_RESOURCES.contains(&name)
        && !is_hugepages(name)
        && !name.starts_with("requests.hugepages-")
    {
        errs.push(FieldError::invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        ));
    }
    if !name.contains('/') {
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !is_hugepages(name) {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name)
        && (name.starts_with("requests.")
            || !is_qualified_name(&format!("requests.{name}")).is_empty())
    {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// `ValidateResourceRequirements` for a container (and `overhead`).
fn resource_requirements(res: &Value, path: &str, errs: &mut Errs) {
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let sorted = |key: &str| -> BTreeMap<String, Value> {
        object_at(res, key)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let limits = sorted("limits");
    let requests = sorted("requests");
    let mut parsed_limits = BTreeMap::new();
    for (name, value) in &limits {
        let p = keyed(&lim_path, name);
        container_resource_name(name, &p, errs);
        if let Some(q) = Quantity::from_value(value) {
            if q.is_negative() {
                errs.push(FieldError::invalid(
                    &p,
                    q.to_string(),
                    IS_NEGATIVE_ERROR_MSG,
                ));
            }
            parsed_limits.insert(name.clone(), q);
        }
    }
    for (name, value) in &requests {
        let p = keyed(&req_path, name);
        container_resource_name(name, &p, errs);
        let Some(q) = Quantity::from_value(value) else {
            continue;
        };
        if q.is_negative() {
            errs.push(FieldError::invalid(
                &p,
                q.to_string(),
                IS_NEGATIVE_ERROR_MSG,
            ));
        }
        match parsed_limits.get(name) {
            Some(limit) => {
                let ord = q.cmp_value(limit);
                if ord != std::cmp::Ordering::Equal && !overcommit_allowed(name) {
                    errs.push(FieldError::invalid(
                        &req_path,
                        q.to_string(),
                        format!("must be equal to {name} limit of {limit}"),
                    ));
                } else if ord == std::cmp::Ordering::Greater {
                    errs.push(FieldError::invalid(
                        &req_path,
                        q.to_string(),
                        format!("must be less than or equal to {name} limit of {limit}"),
                    ));
                }
            }
            None if !overcommit_allowed(name) && !limits.contains_key(name) => {
                errs.push(FieldError::required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pod specs
// ---------------------------------------------------------------------------------------

/// The volume sources, in the order of Go's `VolumeSource` fields.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

const FILE_MODE_ERROR_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

fn file_mode(v: &Value, key: &str, path: &str, errs: &mut Errs) {
    if let Some(mode) = int_at(v, key)
        && !(0..=0o777).contains(&mode)
    {
        errs.push(FieldError::invalid(
            child(path, key),
            mode,
            FILE_MODE_ERROR_MSG,
        ));
    }
}

/// `ValidateVolumes`: the names of the valid volumes.
fn volumes(spec: &Value, path: &str, errs: &mut Errs) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, vol) in items(spec, "volumes").iter().enumerate() {
        let p = index(path, i);
        let mut el = Vec::new();
        let mut count = 0;
        for source in VOLUME_SOURCES {
            let src = at(vol, source);
            if src.is_null() {
                continue;
            }
            if count > 0 {
                el.push(FieldError::forbidden(
                    child(&p, source),
                    "may not specify more than 1 volume type",
                ));
                continue;
            }
            count += 1;
            let sp = child(&p, source);
            match *source {
                "hostPath" if str_at(src, "path").is_empty() => {
                    el.push(FieldError::required(child(&sp, "path"), ""));
                }
                "secret" => {
                    if str_at(src, "secretName").is_empty() {
                        el.push(FieldError::required(child(&sp, "secretName"), ""));
                    }
                    file_mode(src, "defaultMode", &sp, &mut el);
                }
                "configMap" => {
                    if str_at(src, "name").is_empty() {
                        el.push(FieldError::required(child(&sp, "name"), ""));
                    }
                    file_mode(src, "defaultMode", &sp, &mut el);
                }
                "persistentVolumeClaim" if str_at(src, "claimName").is_empty() => {
                    el.push(FieldError::required(child(&sp, "claimName"), ""));
                }
                "downwardAPI" | "projected" => file_mode(src, "defaultMode", &sp, &mut el),
                _ => {}
            }
        }
        if count == 0 {
            el.push(FieldError::required(&p, "must specify a volume type"));
        }
        let name = str_at(vol, "name");
        let name_path = child(&p, "name");
        if name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            push_name_errors(&name_path, name, is_dns1123_label, &mut el);
        }
        if names.contains(name) {
            el.push(FieldError::duplicate(&name_path, name));
        }
        if el.is_empty() {
            names.insert(name.to_string());
        } else {
            errs.extend(el);
        }
    }
    names
}

/// `ValidateVolumeMounts`.
fn volume_mounts(c: &Value, path: &str, volumes: &BTreeSet<String>, errs: &mut Errs) {
    let mut mount_points = BTreeSet::new();
    for (i, m) in items(c, "volumeMounts").iter().enumerate() {
        let p = index(path, i);
        let name = str_at(m, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        }
        if !volumes.contains(name) {
            errs.push(FieldError::not_found(child(&p, "name"), name));
        }
        let mount_path = str_at(m, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(child(&p, "mountPath"), ""));
        }
        if !mount_points.insert(mount_path.to_string()) {
            errs.push(FieldError::invalid(
                child(&p, "mountPath"),
                mount_path,
                "must be unique",
            ));
        }
    }
}

/// `validateContainerPorts`.
fn container_ports(c: &Value, path: &str, errs: &mut Errs) {
    let mut names = BTreeSet::new();
    for (i, port) in items(c, "ports").iter().enumerate() {
        let p = index(path, i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            let msgs = port_name_errors(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(child(&p, "name"), name, msg));
                }
            } else if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&p, "name"), name));
            }
        }
        match int_at(port, "containerPort").unwrap_or(0) {
            0 => errs.push(FieldError::required(child(&p, "containerPort"), "")),
            n => {
                for msg in port_num_errors(n) {
                    errs.push(FieldError::invalid(child(&p, "containerPort"), n, msg));
                }
            }
        }
        if let Some(host_port) = int_at(port, "hostPort").filter(|n| *n != 0) {
            for msg in port_num_errors(host_port) {
                errs.push(FieldError::invalid(child(&p, "hostPort"), host_port, msg));
            }
        }
        protocol(port, &p, errs);
    }
}

fn protocol(port: &Value, path: &str, errs: &mut Errs) {
    match str_at(port, "protocol") {
        "" => errs.push(FieldError::required(child(path, "protocol"), "")),
        "TCP" | "UDP" | "SCTP" => {}
        other => errs.push(not_supported(
            child(path, "protocol"),
            other,
            &["SCTP", "TCP", "UDP"],
        )),
    }
}

/// `ValidateEnv` (names checked the relaxed way, on by default in 1.33).
fn env(c: &Value, path: &str, errs: &mut Errs) {
    for (i, e) in items(c, "env").iter().enumerate() {
        let p = index(path, i);
        let name = str_at(e, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if name
            .chars()
            .any(|c| !c.is_ascii() || c.is_ascii_control() || c == '=')
        {
            errs.push(FieldError::invalid(
                child(&p, "name"),
                name,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        let value_from = at(e, "valueFrom");
        if value_from.is_null() {
            continue;
        }
        let vp = child(&p, "valueFrom");
        let mut sources = 0;
        for source in [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ] {
            let s = at(value_from, source);
            if s.is_null() {
                continue;
            }
            sources += 1;
            let sp = child(&vp, source);
            match source {
                "fieldRef" => {
                    if str_at(s, "fieldPath").is_empty() {
                        errs.push(FieldError::required(child(&sp, "fieldPath"), ""));
                    }
                }
                "resourceFieldRef" => {
                    if str_at(s, "resource").is_empty() {
                        errs.push(FieldError::required(child(&sp, "resource"), ""));
                    }
                }
                _ => {
                    if str_at(s, "name").is_empty() {
                        errs.push(FieldError::required(child(&sp, "name"), ""));
                    }
                    let key = str_at(s, "key");
                    if key.is_empty() {
                        errs.push(FieldError::required(child(&sp, "key"), ""));
                    } else {
                        push_name_errors(&child(&sp, "key"), key, config_map_key_errors, errs);
                    }
                }
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !str_at(e, "value").is_empty() {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// `validateContainerCommon`: what every kind of container must satisfy.
fn container_common(c: &Value, path: &str, volumes: &BTreeSet<String>, errs: &mut Errs) {
    let name = str_at(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(child(path, "name"), ""));
    } else {
        push_name_errors(&child(path, "name"), name, is_dns1123_label, errs);
    }
    if str_at(c, "image").is_empty() {
        errs.push(FieldError::required(child(path, "image"), ""));
    }
    match str_at(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(
            child(path, "terminationMessagePolicy"),
            "",
        )),
        other => errs.push(not_supported(
            child(path, "terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    volume_mounts(c, &child(path, "volumeMounts"), volumes, errs);
    container_ports(c, &child(path, "ports"), errs);
    env(c, &child(path, "env"), errs);
    match str_at(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(child(path, "imagePullPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    resource_requirements(at(c, "resources"), &child(path, "resources"), errs);
}

/// `validateHandler`: exactly one handler, and its basic fields.
fn handler(h: &Value, path: &str, errs: &mut Errs) {
    let mut count = 0;
    for kind in ["exec", "httpGet", "tcpSocket", "grpc", "sleep"] {
        let a = at(h, kind);
        if a.is_null() {
            continue;
        }
        let p = child(path, kind);
        if count > 0 {
            errs.push(FieldError::forbidden(
                &p,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        count += 1;
        match kind {
            "exec" if items(a, "command").is_empty() => {
                errs.push(FieldError::required(child(&p, "command"), ""));
            }
            "httpGet" | "tcpSocket" => {
                if kind == "httpGet" {
                    if str_at(a, "path").is_empty() {
                        errs.push(FieldError::required(child(&p, "path"), ""));
                    }
                    match str_at(a, "scheme") {
                        "HTTP" | "HTTPS" => {}
                        other => errs.push(not_supported(
                            child(&p, "scheme"),
                            other,
                            &["HTTP", "HTTPS"],
                        )),
                    }
                }
                port_num_or_name(at(a, "port"), &child(&p, "port"), errs);
            }
            "grpc" => {
                let port = int_at(a, "port").unwrap_or(0);
                for msg in port_num_errors(port) {
                    errs.push(FieldError::invalid(child(&p, "port"), port, msg));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

/// `ValidatePortNumOrName`.
fn port_num_or_name(port: &Value, path: &str, errs: &mut Errs) {
    match port {
        Value::String(name) => {
            for msg in port_name_errors(name) {
                errs.push(FieldError::invalid(path, name.as_str(), msg));
            }
        }
        other => {
            let n = other.as_i64().unwrap_or(0);
            for msg in port_num_errors(n) {
                errs.push(FieldError::invalid(path, n, msg));
            }
        }
    }
}

/// `validateProbe` (and the liveness/startup rule that success takes one try).
fn probe(c: &Value, name: &str, path: &str, errs: &mut Errs) {
    let p = at(c, name);
    if p.is_null() {
        return;
    }
    let path = child(path, name);
    handler(p, &path, errs);
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonnegative(p, field, &path, errs);
    }
    if let Some(grace) = int_at(p, "terminationGracePeriodSeconds")
        && grace <= 0
    {
        errs.push(FieldError::invalid(
            child(&path, "terminationGracePeriodSeconds"),
            grace,
            "must be greater than 0",
        ));
    }
    if name != "readinessProbe" {
        let success = int_at(p, "successThreshold").unwrap_or(0);
        if success != 1 {
            errs.push(FieldError::invalid(
                child(&path, "successThreshold"),
                success,
                "must be 1",
            ));
        }
    }
}

fn lifecycle(c: &Value, path: &str, errs: &mut Errs) {
    let l = at(c, "lifecycle");
    for hook in ["postStart", "preStop"] {
        let h = at(l, hook);
        if !h.is_null() {
            handler(h, &child(&child(path, "lifecycle"), hook), errs);
        }
    }
}

/// `ValidatePodSpec`: the rules shared by pods and pod templates. `for_pod` adds what
/// `validateContainersOnlyForPod` checks.
fn pod_spec(spec: &Value, path: &str, for_pod: bool, errs: &mut Errs) {
    let vols = volumes(spec, &child(path, "volumes"), errs);

    // Regular containers.
    let containers = items(spec, "containers");
    let cpath = child(path, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(&cpath, ""));
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = index(&cpath, i);
        container_common(c, &p, &vols, errs);
        let name = str_at(c, "name");
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(child(&p, "name"), name));
        }
        lifecycle(c, &p, errs);
        for probe_name in ["livenessProbe", "readinessProbe", "startupProbe"] {
            probe(c, probe_name, &p, errs);
        }
        if is_set(c, "restartPolicy") {
            errs.push(FieldError::forbidden(
                child(&p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }

    // Init containers: unique among regular and init containers.
    let ipath = child(path, "initContainers");
    for (i, c) in items(spec, "initContainers").iter().enumerate() {
        let p = index(&ipath, i);
        container_common(c, &p, &vols, errs);
        let restart = at(c, "restartPolicy");
        let always = restart.as_str() == Some("Always");
        if !restart.is_null() && !always {
            errs.push(FieldError::not_supported(
                child(&p, "restartPolicy"),
                or_null(restart),
                &["Always"],
            ));
        }
        let name = str_at(c, "name");
        if names.contains(name) {
            errs.push(FieldError::duplicate(child(&p, "name"), name));
        } else if !name.is_empty() {
            names.insert(name.to_string());
        }
        if always {
            lifecycle(c, &p, errs);
            for probe_name in ["livenessProbe", "readinessProbe", "startupProbe"] {
                probe(c, probe_name, &p, errs);
            }
        } else {
            for (field, msg) in [
                (
                    "lifecycle",
                    "may not be set for init containers without restartPolicy=Always",
                ),
                (
                    "livenessProbe",
                    "may not be set for init containers without restartPolicy=Always",
                ),
                ("readinessProbe", "may not be set for init containers"),
                (
                    "startupProbe",
                    "may not be set for init containers without restartPolicy=Always",
                ),
            ] {
                if is_set(c, field) {
                    errs.push(FieldError::forbidden(child(&p, field), msg));
                }
            }
        }
    }

    // Ephemeral containers: unique among all containers.
    let epath = child(path, "ephemeralContainers");
    let mut ephemeral_names = BTreeSet::new();
    for (i, c) in items(spec, "ephemeralContainers").iter().enumerate() {
        let p = index(&epath, i);
        container_common(c, &p, &vols, errs);
        image_whitespace(c, &p, errs);
        let name = str_at(c, "name");
        if names.contains(name) {
            errs.push(FieldError::invalid(
                child(&p, "name"),
                name,
                "must be unique among all containers, init containers and ephemeral containers",
            ));
        } else if !ephemeral_names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(child(&p, "name"), name));
        }
    }

    if for_pod {
        for (list, lpath) in [("containers", &cpath), ("initContainers", &ipath)] {
            for (i, c) in items(spec, list).iter().enumerate() {
                image_whitespace(c, &index(lpath, i), errs);
            }
        }
    }

    match str_at(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(child(path, "restartPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns_policy = str_at(spec, "dnsPolicy");
    match dns_policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(child(path, "dnsPolicy"), "")),
        other => errs.push(not_supported(
            child(path, "dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    if dns_policy == "None" {
        let config = at(spec, "dnsConfig");
        if config.is_null() {
            errs.push(FieldError::required(
                child(path, "dnsConfig"),
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
        } else if items(config, "nameservers").is_empty() {
            errs.push(FieldError::required(
                child(&child(path, "dnsConfig"), "nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
        }
    }
    errs.extend(validate_labels(
        at(spec, "nodeSelector"),
        &child(path, "nodeSelector"),
    ));
    let sa = str_at(spec, "serviceAccountName");
    if !sa.is_empty() {
        push_name_errors(
            &child(path, "serviceAccountName"),
            sa,
            is_dns1123_subdomain,
            errs,
        );
    }
    let node_name = str_at(spec, "nodeName");
    if !node_name.is_empty() {
        push_name_errors(
            &child(path, "nodeName"),
            node_name,
            is_dns1123_subdomain,
            errs,
        );
    }
    if let Some(deadline) = int_at(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.push(FieldError::invalid(
            child(path, "activeDeadlineSeconds"),
            deadline,
            inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for field in ["hostname", "subdomain"] {
        let value = str_at(spec, field);
        if !value.is_empty() {
            push_name_errors(&child(path, field), value, is_dns1123_label, errs);
        }
    }
    tolerations(
        items(spec, "tolerations"),
        &child(path, "tolerations"),
        errs,
    );
    resource_requirements(
        &serde_json::json!({"limits": at(spec, "overhead")}),
        &child(path, "overhead"),
        errs,
    );
}

fn image_whitespace(c: &Value, path: &str, errs: &mut Errs) {
    let image = str_at(c, "image");
    if image.trim() != image {
        errs.push(FieldError::invalid(
            child(path, "image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
}

/// Go's `%#v` of a `core.Toleration`.
fn go_toleration(t: &Value) -> String {
    let seconds = match int_at(t, "tolerationSeconds") {
        Some(_) => "(*int64)(0xc000000000)".to_string(),
        None => "(*int64)(nil)".to_string(),
    };
    format!(
        "core.Toleration{{Key:{}, Operator:{}, Value:{}, Effect:{}, TolerationSeconds:{}}}",
        go_quote(str_at(t, "key")),
        go_quote(str_at(t, "operator")),
        go_quote(str_at(t, "value")),
        go_quote(str_at(t, "effect")),
        seconds
    )
}

/// `ValidateTolerations`.
fn tolerations(list: &[Value], path: &str, errs: &mut Errs) {
    for (i, t) in list.iter().enumerate() {
        let p = index(path, i);
        let key = str_at(t, "key");
        let operator = str_at(t, "operator");
        let effect = str_at(t, "effect");
        if !key.is_empty() {
            push_name_errors(&child(&p, "key"), key, is_qualified_name, errs);
        }
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                child(&p, "operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if is_set(t, "tolerationSeconds") && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "Equal" | "" => {
                let value = str_at(t, "value");
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        value,
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !str_at(t, "value").is_empty() {
                    errs.push(invalid_raw(
                        child(&p, "operator"),
                        &go_toleration(t),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(
                child(&p, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errs.push(not_supported(
                child(&p, "effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

/// `ValidatePodTemplateSpec` at `path` (`spec.template`).
fn pod_template(template: &Value, path: &str, errs: &mut Errs) {
    let meta = at(template, "metadata");
    errs.extend(validate_labels(at(meta, "labels"), &child(path, "labels")));
    errs.extend(validate_annotations(
        at(meta, "annotations"),
        &child(path, "annotations"),
    ));
    let spec_path = child(path, "spec");
    pod_spec(at(template, "spec"), &spec_path, false, errs);
    if !items(at(template, "spec"), "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            child(&spec_path, "ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Pod
// ---------------------------------------------------------------------------------------

const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn pod(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = at(obj, "spec");
    pod_spec(spec, "spec", true, errs);
    let Some(old) = old else {
        if !items(spec, "ephemeralContainers").is_empty() {
            errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                "cannot be set on create",
            ));
        }
        if !str_at(spec, "nodeName").is_empty() && !items(spec, "schedulingGates").is_empty() {
            errs.push(FieldError::forbidden(
                "spec.nodeName",
                "cannot be set until all schedulingGates have been cleared",
            ));
        }
        return;
    };
    pod_update(spec, at(old, "spec"), errs);
}

/// `ValidatePodUpdate`: only images, a shorter deadline, added tolerations, removed
/// scheduling gates and a negative grace period set to 1 may change.
fn pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    for list in ["containers", "initContainers"] {
        let path = child("spec", list);
        let (n, o) = (items(new, list), items(old, list));
        if n.len() != o.len() {
            errs.push(FieldError::forbidden(
                path,
                "pod updates may not add or remove containers",
            ));
            return;
        }
        for (i, c) in n.iter().enumerate() {
            let p = index(&path, i);
            if str_at(c, "image").is_empty() {
                errs.push(FieldError::required(child(&p, "image"), ""));
            }
            image_whitespace(c, &p, errs);
        }
    }
    let new_deadline = at(new, "activeDeadlineSeconds");
    let old_deadline = at(old, "activeDeadlineSeconds");
    if let Some(n) = new_deadline.as_i64() {
        if !(0..=i64::from(i32::MAX)).contains(&n) {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                n,
                inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return;
        }
        if let Some(o) = old_deadline.as_i64()
            && o < n
        {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                n,
                "must be less than or equal to previous value",
            ));
            return;
        }
    } else if !old_deadline.is_null() {
        errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            "null",
            "must not update from a positive integer to nil value",
        ));
    }

    let mut munged = new.clone();
    if let Some(m) = munged.as_object_mut() {
        for list in ["containers", "initContainers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for (i, c) in cs.iter_mut().enumerate() {
                    let old_image = items(old, list).get(i).map(|o| at(o, "image").clone());
                    if let (Some(c), Some(image)) = (c.as_object_mut(), old_image) {
                        c.insert("image".into(), image);
                    }
                }
            }
        }
        for field in ["activeDeadlineSeconds", "tolerations"] {
            m.insert(field.into(), at(old, field).clone());
        }
        let old_grace = int_at(old, "terminationGracePeriodSeconds");
        if old_grace.is_some_and(|g| g < 0)
            && int_at(new, "terminationGracePeriodSeconds") == Some(1)
        {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                at(old, "terminationGracePeriodSeconds").clone(),
            );
        }
        let old_gates: BTreeSet<&str> = items(old, "schedulingGates")
            .iter()
            .map(|g| str_at(g, "name"))
            .collect();
        for (i, gate) in items(new, "schedulingGates").iter().enumerate() {
            let name = str_at(gate, "name");
            if !old_gates.contains(name) {
                errs.push(FieldError::forbidden(
                    index("spec.schedulingGates", i),
                    format!("only deletion is allowed, but found new scheduling gate '{name}'"),
                ));
            }
        }
        m.insert("schedulingGates".into(), at(old, "schedulingGates").clone());
    }
    if !semantic_eq(&munged, old) {
        errs.push(FieldError::forbidden(
            "spec",
            format!("pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}"),
        ));
    }

    // validateOnlyAddedTolerations
    let new_tolerations = items(new, "tolerations");
    for o in items(old, "tolerations") {
        let found = new_tolerations.iter().any(|n| {
            let mut o = o.clone();
            if let Some(m) = o.as_object_mut() {
                m.insert(
                    "tolerationSeconds".into(),
                    at(n, "tolerationSeconds").clone(),
                );
            }
            semantic_eq(&o, n)
        });
        if !found {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// apps/v1
// ---------------------------------------------------------------------------------------

/// `ValidateDeploymentSpec`/`ValidateReplicaSetSpec`'s selector part: required,
/// well-formed, not empty; returns the matcher when it converts.
fn required_selector(spec: &Value, kind_word: &str, errs: &mut Errs) -> Option<LabelSelector> {
    let selector = at(spec, "selector");
    if selector.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        errs.extend(validate_label_selector(selector, "spec.selector"));
        let count = object_at(selector, "matchLabels").map_or(0, Map::len)
            + items(selector, "matchExpressions").len();
        if count == 0 {
            errs.push(invalid_raw(
                "spec.selector",
                &go_label_selector(selector),
                &format!("empty selector is invalid for {kind_word}"),
            ));
        }
    }
    selector_of(selector).ok()
}

/// `ValidatePodTemplateSpecForReplicaSet` (Deployments and ReplicaSets).
fn replica_set_template(spec: &Value, selector: &LabelSelector, kind: &str, errs: &mut Errs) {
    let template = at(spec, "template");
    template_selector_match(template, selector, errs);
    pod_template(template, "spec.template", errs);
    workload_restart_policy(template, kind, errs);
}

fn template_selector_match(template: &Value, selector: &LabelSelector, errs: &mut Errs) {
    if selector.is_empty() {
        return;
    }
    let labels = labels_of(template);
    if !selector.matches(&labels) {
        errs.push(invalid_raw(
            "spec.template.metadata.labels",
            &go_map(at(at(template, "metadata"), "labels")),
            "`selector` does not match template `labels`",
        ));
    }
}

/// Workload pods always restart, and have no deadline.
fn workload_restart_policy(template: &Value, kind: &str, errs: &mut Errs) {
    let tspec = at(template, "spec");
    let policy = str_at(tspec, "restartPolicy");
    if policy != "Always" {
        errs.push(not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    if is_set(tspec, "activeDeadlineSeconds") {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// `ValidatePositiveIntOrPercent`.
fn positive_int_or_percent(v: &Value, path: &str, errs: &mut Errs) {
    match v {
        Value::String(s) => {
            if !is_percent(s) {
                errs.push(invalid_raw(
                    path,
                    &go_int_or_string(v),
                    &regex_error(
                        "a valid percent string must be a numeric string followed by an ending '%'",
                        "[0-9]+%",
                        &["1%", "93%"],
                    ),
                ));
            }
        }
        other => {
            if let Some(n) = other.as_i64()
                && n < 0
            {
                errs.push(FieldError::invalid(path, n, IS_NEGATIVE_ERROR_MSG));
            }
        }
    }
}

fn is_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

/// `getIntOrPercentValue`.
fn int_or_percent_value(v: &Value) -> i64 {
    match v {
        Value::String(s) if is_percent(s) => s[..s.len() - 1].parse().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        other => other.as_i64().unwrap_or(0),
    }
}

/// `IsNotMoreThan100Percent`.
fn not_more_than_100_percent(v: &Value, path: &str, errs: &mut Errs) {
    if let Value::String(s) = v
        && is_percent(s)
        && int_or_percent_value(v) > 100
    {
        errs.push(invalid_raw(
            path,
            &go_int_or_string(v),
            "must not be greater than 100%",
        ));
    }
}

fn deployment(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = at(obj, "spec");
    nonnegative(spec, "replicas", "spec", errs);
    let selector = required_selector(spec, "deployment", errs);
    match &selector {
        Some(selector) => replica_set_template(spec, selector, "ReplicaSet", errs),
        None => errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(at(spec, "selector")),
            "invalid label selector",
        )),
    }
    let strategy = at(spec, "strategy");
    let sp = "spec.strategy";
    let rolling = at(strategy, "rollingUpdate");
    match str_at(strategy, "type") {
        "Recreate" => {
            if !rolling.is_null() {
                errs.push(FieldError::forbidden(
                    child(sp, "rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            if rolling.is_null() {
                errs.push(FieldError::required(
                    child(sp, "rollingUpdate"),
                    "this should be defaulted and never be nil",
                ));
            } else {
                let rp = child(sp, "rollingUpdate");
                let unavailable = at(rolling, "maxUnavailable");
                let surge = at(rolling, "maxSurge");
                positive_int_or_percent(unavailable, &child(&rp, "maxUnavailable"), errs);
                positive_int_or_percent(surge, &child(&rp, "maxSurge"), errs);
                if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
                    errs.push(invalid_raw(
                        child(&rp, "maxUnavailable"),
                        &go_int_or_string(unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(unavailable, &child(&rp, "maxUnavailable"), errs);
            }
        }
        other => {
            let rendered = format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{}}}",
                go_quote(other),
                if rolling.is_null() {
                    "(*apps.RollingUpdateDeployment)(nil)"
                } else {
                    "(*apps.RollingUpdateDeployment)(0xc000000000)"
                }
            );
            errs.push(raw(
                sp,
                FieldErrorKind::NotSupported,
                &rendered,
                "supported values: \"Recreate\", \"RollingUpdate\"",
            ));
        }
    }
    nonnegative(spec, "minReadySeconds", "spec", errs);
    nonnegative(spec, "revisionHistoryLimit", "spec", errs);
    if let Some(deadline) = int_at(spec, "progressDeadlineSeconds") {
        nonnegative(spec, "progressDeadlineSeconds", "spec", errs);
        if deadline <= int_at(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    if let Some(old) = old {
        immutable_selector(
            at(spec, "selector"),
            at(at(old, "spec"), "selector"),
            "spec.selector",
            errs,
        );
    }
}

fn replica_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = at(obj, "spec");
    nonnegative(spec, "replicas", "spec", errs);
    nonnegative(spec, "minReadySeconds", "spec", errs);
    // Kubernetes says "deployment" here too.
    let selector = required_selector(spec, "deployment", errs);
    match &selector {
        Some(selector) => replica_set_template(spec, selector, "ReplicaSet", errs),
        None => errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(at(spec, "selector")),
            "invalid label selector",
        )),
    }
    if let Some(old) = old {
        immutable_selector(
            at(spec, "selector"),
            at(at(old, "spec"), "selector"),
            "spec.selector",
            errs,
        );
    }
}

fn daemon_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = at(obj, "spec");
    let selector = at(spec, "selector");
    errs.extend(validate_label_selector(selector, "spec.selector"));
    let template = at(spec, "template");
    if let Ok(matcher) = selector_of(selector)
        && !matcher.matches(&labels_of(template))
    {
        errs.push(invalid_raw(
            "spec.template.metadata.labels",
            &go_map(at(at(template, "metadata"), "labels")),
            "`selector` does not match template `labels`",
        ));
    }
    if !selector.is_null()
        && object_at(selector, "matchLabels").map_or(0, Map::len)
            + items(selector, "matchExpressions").len()
            == 0
    {
        errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(selector),
            "empty selector is invalid for daemonset",
        ));
    }
    pod_template(template, "spec.template", errs);
    workload_restart_policy(template, "DaemonSet", errs);
    nonnegative(spec, "minReadySeconds", "spec", errs);
    nonnegative(spec, "templateGeneration", "spec", errs);
    let strategy = at(spec, "updateStrategy");
    let sp = "spec.updateStrategy";
    let rolling = at(strategy, "rollingUpdate");
    match str_at(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            if rolling.is_null() {
                errs.push(FieldError::required(child(sp, "rollingUpdate"), ""));
            } else {
                let rp = child(sp, "rollingUpdate");
                let unavailable = at(rolling, "maxUnavailable");
                let surge = at(rolling, "maxSurge");
                positive_int_or_percent(unavailable, &child(&rp, "maxUnavailable"), errs);
                positive_int_or_percent(surge, &child(&rp, "maxSurge"), errs);
                not_more_than_100_percent(unavailable, &child(&rp, "maxUnavailable"), errs);
                not_more_than_100_percent(surge, &child(&rp, "maxSurge"), errs);
                let has_unavailable = int_or_percent_value(unavailable) != 0;
                let has_surge = int_or_percent_value(surge) != 0;
                if has_unavailable && has_surge {
                    errs.push(invalid_raw(
                        child(&rp, "maxSurge"),
                        &go_int_or_string(surge),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !has_unavailable && !has_surge {
                    errs.push(FieldError::required(
                        child(&rp, "maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    ));
                }
            }
        }
        other => {
            let rendered = format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}",
                go_quote(other),
                if rolling.is_null() {
                    "(*apps.RollingUpdateDaemonSet)(nil)"
                } else {
                    "(*apps.RollingUpdateDaemonSet)(0xc000000000)"
                }
            );
            errs.push(raw(
                sp,
                FieldErrorKind::NotSupported,
                &rendered,
                "supported values: \"RollingUpdate\", \"OnDelete\"",
            ));
        }
    }
    nonnegative(spec, "revisionHistoryLimit", "spec", errs);
    if let Some(old) = old {
        immutable_selector(
            selector,
            at(at(old, "spec"), "selector"),
            "spec.selector",
            errs,
        );
    }
}

fn stateful_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = at(obj, "spec");
    if old.is_none() {
        // ValidateStatefulSetName is NameIsDNSLabel; the caller checked the subdomain
        // rule, so only what a label adds is reported here.
        let name = str_at(at(obj, "metadata"), "name");
        if !name.is_empty() && is_dns1123_subdomain(name).is_empty() {
            push_name_errors("metadata.name", name, is_dns1123_label, errs);
        }
    }
    match str_at(spec, "podManagementPolicy") {
        "OrderedReady" | "Parallel" => {}
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = at(spec, "updateStrategy");
    let rolling = at(strategy, "rollingUpdate");
    match str_at(strategy, "type") {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if !rolling.is_null() {
                errs.push(invalid_raw(
                    "spec.updateStrategy.rollingUpdate",
                    &format!(
                        "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:(*intstr.IntOrString)(nil)}}",
                        int_at(rolling, "partition").unwrap_or(0)
                    ),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if !rolling.is_null() {
                nonnegative(
                    rolling,
                    "partition",
                    "spec.updateStrategy.rollingUpdate",
                    errs,
                );
            }
        }
        other => errs.push(invalid_raw(
            "spec.updateStrategy",
            &format!(
                "apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}",
                go_quote(other),
                if rolling.is_null() {
                    "(*apps.RollingUpdateStatefulSetStrategy)(nil)"
                } else {
                    "(*apps.RollingUpdateStatefulSetStrategy)(0xc000000000)"
                }
            ),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    let retention = at(spec, "persistentVolumeClaimRetentionPolicy");
    if !retention.is_null() {
        for field in ["whenDeleted", "whenScaled"] {
            let value = str_at(retention, field);
            if !matches!(value, "Retain" | "Delete") {
                errs.push(not_supported(
                    child("spec.persistentVolumeClaimRetentionPolicy", field),
                    value,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    nonnegative(spec, "replicas", "spec", errs);
    nonnegative(spec, "minReadySeconds", "spec", errs);
    if let Some(start) = int_at(at(spec, "ordinals"), "start")
        && start < 0
    {
        errs.push(FieldError::invalid(
            "spec.ordinals.start",
            start,
            IS_NEGATIVE_ERROR_MSG,
        ));
    }
    let selector = at(spec, "selector");
    if selector.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        errs.extend(validate_label_selector(selector, "spec.selector"));
        if object_at(selector, "matchLabels").map_or(0, Map::len)
            + items(selector, "matchExpressions").len()
            == 0
        {
            errs.push(invalid_raw(
                "spec.selector",
                &go_label_selector(selector),
                "empty selector is invalid for statefulset",
            ));
        }
    }
    let template = at(spec, "template");
    match selector_of(selector) {
        Ok(matcher) => {
            // ValidatePodTemplateSpecForStatefulSet: the pod spec itself is not
            // validated for StatefulSets, only labels and annotations.
            template_selector_match(template, &matcher, errs);
            let meta = at(template, "metadata");
            errs.extend(validate_labels(at(meta, "labels"), "spec.template.labels"));
            errs.extend(validate_annotations(
                at(meta, "annotations"),
                "spec.template.annotations",
            ));
        }
        Err(_) => errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(selector),
            "",
        )),
    }
    workload_restart_policy(template, "StatefulSet", errs);

    if let Some(old) = old {
        let old_spec = at(old, "spec");
        let mut clone = spec.clone();
        if let Some(m) = clone.as_object_mut() {
            for field in [
                "replicas",
                "template",
                "updateStrategy",
                "minReadySeconds",
                "ordinals",
                "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy",
            ] {
                m.insert(field.into(), at(old_spec, field).clone());
            }
        }
        if !semantic_eq(&clone, old_spec) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// batch/v1
// ---------------------------------------------------------------------------------------

/// `validateJobSpec`: the rules shared by Jobs and CronJob job templates.
fn job_spec(spec: &Value, path: &str, errs: &mut Errs) {
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(spec, field, path, errs);
    }
    if is_set(spec, "maxFailedIndexes") && !is_set(spec, "backoffLimitPerIndex") {
        errs.push(FieldError::required(
            child(path, "backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    let mode = at(spec, "completionMode");
    let indexed = mode.as_str() == Some("Indexed");
    if let Some(mode) = mode.as_str() {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(not_supported(
                child(path, "completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if indexed {
            if !is_set(spec, "completions") {
                errs.push(FieldError::required(
                    child(path, "completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = int_at(spec, "parallelism")
                && p > 100_000
            {
                errs.push(FieldError::invalid(
                    child(path, "parallelism"),
                    p,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
            if let (Some(c), Some(m)) = (
                int_at(spec, "completions"),
                int_at(spec, "maxFailedIndexes"),
            ) && m > c
            {
                errs.push(FieldError::invalid(
                    child(path, "maxFailedIndexes"),
                    m,
                    "must be less than or equal to completions",
                ));
            }
        }
    }
    if !indexed {
        for field in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(n) = int_at(spec, field) {
                errs.push(FieldError::invalid(
                    child(path, field),
                    n,
                    "requires indexed completion mode",
                ));
            }
        }
    }
    let has_failure_policy = is_set(spec, "podFailurePolicy");
    if let Some(policy) = at(spec, "podReplacementPolicy").as_str() {
        let p = child(path, "podReplacementPolicy");
        if has_failure_policy {
            if policy != "Failed" {
                errs.push(not_supported(p, policy, &["Failed"]));
            }
        } else if !matches!(policy, "Failed" | "TerminatingOrFailed") {
            errs.push(not_supported(p, policy, &["Failed", "TerminatingOrFailed"]));
        }
    }
    let template = at(spec, "template");
    let tpath = child(path, "template");
    pod_template(template, &tpath, errs);
    let restart_path = child(&child(&tpath, "spec"), "restartPolicy");
    match str_at(at(template, "spec"), "restartPolicy") {
        "Always" | "" => errs.push(FieldError::required(
            restart_path,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" if has_failure_policy => errs.push(FieldError::invalid(
            restart_path,
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        "OnFailure" | "Never" => {}
        other => errs.push(not_supported(restart_path, other, &["OnFailure", "Never"])),
    }
}

/// `validateGeneratedSelector`: the selector and template labels the Job strategy
/// generated are all there.
fn generated_selector(obj: &Value, batch_labels: bool, errs: &mut Errs) {
    let spec = at(obj, "spec");
    if at(spec, "manualSelector").as_bool() == Some(true) {
        return;
    }
    let selector = at(spec, "selector");
    if selector.is_null() {
        return;
    }
    let meta = at(obj, "metadata");
    let uid = str_at(meta, "uid");
    let name = str_at(meta, "name");
    if uid.is_empty() {
        errs.push(FieldError::required("metadata.uid", ""));
    }
    let template_labels = at(at(at(spec, "template"), "metadata"), "labels");
    let mut has_label = |key: &str, expected: &str| {
        let path = keyed("spec.template.metadata.labels", key);
        match at(template_labels, key).as_str() {
            None if template_labels.get(key).is_none() => {
                errs.push(FieldError::required(path, format!("must be '{expected}'")))
            }
            Some(v) if v == expected => {}
            _ => errs.push(invalid_raw(
                path,
                &go_map(template_labels),
                &format!("must be '{expected}'"),
            )),
        }
    };
    has_label(LEGACY_JOB_CONTROLLER_UID_LABEL, uid);
    has_label(LEGACY_JOB_NAME_LABEL, name);
    let mut expected: Map<String, Value> = Map::new();
    if batch_labels {
        has_label(JOB_CONTROLLER_UID_LABEL, uid);
        has_label(JOB_NAME_LABEL, name);
        expected.insert(JOB_CONTROLLER_UID_LABEL.into(), Value::from(uid));
        expected.insert(JOB_NAME_LABEL.into(), Value::from(name));
    }
    expected.insert(LEGACY_JOB_CONTROLLER_UID_LABEL.into(), Value::from(uid));
    expected.insert(LEGACY_JOB_NAME_LABEL.into(), Value::from(name));
    if let Ok(matcher) = selector_of(selector)
        && !matcher.matches(&expected)
    {
        errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(selector),
            "`selector` not auto-generated",
        ));
    }
}

fn job(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = at(obj, "spec");
    let old_spec = old.map(|o| at(o, "spec"));
    // New Jobs must carry the prefixed labels; old ones only if they had them.
    let batch_labels = old_spec.is_none_or(|o| {
        at(at(at(o, "template"), "metadata"), "labels")
            .get(JOB_CONTROLLER_UID_LABEL)
            .is_some()
    });
    generated_selector(obj, batch_labels, errs);
    job_spec(spec, "spec", errs);
    let selector = at(spec, "selector");
    if selector.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        errs.extend(validate_label_selector(selector, "spec.selector"));
    }
    let template = at(spec, "template");
    if let Ok(matcher) = selector_of(selector)
        && !matcher.matches(&labels_of(template))
    {
        errs.push(invalid_raw(
            "spec.template.metadata.labels",
            &go_map(at(at(template, "metadata"), "labels")),
            "`selector` does not match template `labels`",
        ));
    }
    if str_at(spec, "completionMode") == "Indexed"
        && let Some(completions) = int_at(spec, "completions").filter(|c| *c > 0)
    {
        let name = str_at(at(obj, "metadata"), "name");
        let hostname = format!("{name}-{}", completions - 1);
        if !is_dns1123_label(&hostname).is_empty() {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
    let (Some(old), Some(old_spec)) = (old, old_spec) else {
        return;
    };

    // validateCompletions (elastic Indexed Jobs are GA).
    let completions = at(spec, "completions");
    let old_completions = at(old_spec, "completions");
    if str_at(spec, "completionMode") != "Indexed" {
        immutable(completions, old_completions, "spec.completions", errs);
    } else if !semantic_eq(completions, old_completions)
        && let Some(c) = completions.as_i64()
        && Some(c) != int_at(spec, "parallelism")
    {
        errs.push(FieldError::invalid(
            "spec.completions",
            c,
            "can only be modified in tandem with spec.parallelism",
        ));
    }
    immutable_selector(selector, at(old_spec, "selector"), "spec.selector", errs);

    // validatePodTemplateUpdate: a suspended Job that never started may change where
    // its pods run.
    let suspended = at(old_spec, "suspend").as_bool() == Some(true);
    let never_started = at(at(old, "status"), "startTime").is_null();
    let mut old_template = at(old_spec, "template").clone();
    if suspended
        && never_started
        && let Some(t) = old_template.as_object_mut()
    {
        let new_meta = at(template, "metadata");
        if let Some(meta) = t
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            meta.insert("labels".into(), at(new_meta, "labels").clone());
            meta.insert("annotations".into(), at(new_meta, "annotations").clone());
        }
        let new_tspec = at(template, "spec");
        if let Some(tspec) = t
            .entry("spec")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
        {
            for field in ["nodeSelector", "tolerations", "schedulingGates"] {
                tspec.insert(field.into(), at(new_tspec, field).clone());
            }
            let new_affinity = at(new_tspec, "affinity");
            let mut affinity = tspec.get("affinity").cloned().unwrap_or(Value::Null);
            if let Some(a) = affinity.as_object_mut() {
                a.insert(
                    "nodeAffinity".into(),
                    at(new_affinity, "nodeAffinity").clone(),
                );
            } else if !new_affinity.is_null() {
                affinity = serde_json::json!({"nodeAffinity": at(new_affinity, "nodeAffinity")});
            }
            tspec.insert("affinity".into(), affinity);
        }
    }
    immutable(template, &old_template, "spec.template", errs);
    for field in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        immutable(
            at(spec, field),
            at(old_spec, field),
            &child("spec", field),
            errs,
        );
    }
}

fn cron_job(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = at(obj, "spec");
    let old_spec = old.map(|o| at(o, "spec"));
    let schedule = str_at(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        let allow_tz = old_spec.is_some_and(|o| str_at(o, "schedule").contains("TZ"));
        if let Err(msg) = parse_cron_schedule(schedule) {
            errs.push(FieldError::invalid("spec.schedule", schedule, msg));
        }
        if allow_tz && schedule.contains("TZ") && is_set(spec, "timeZone") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonnegative(spec, "startingDeadlineSeconds", "spec", errs);
    let time_zone = at(spec, "timeZone");
    if old_spec.is_none_or(|o| at(o, "timeZone") != time_zone) {
        validate_time_zone(time_zone, "spec.timeZone", errs);
    }
    match str_at(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errs.push(not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let job_spec_value = at(at(spec, "jobTemplate"), "spec");
    job_spec(job_spec_value, "spec.jobTemplate.spec", errs);
    let selector = at(job_spec_value, "selector");
    if !selector.is_null() {
        errs.push(invalid_raw(
            "spec.jobTemplate.spec.selector",
            &go_label_selector(selector),
            "`selector` will be auto-generated",
        ));
    }
    if at(job_spec_value, "manualSelector").as_bool() == Some(true) {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            true,
            &["nil", "false"],
        ));
    }
    nonnegative(spec, "successfulJobsHistoryLimit", "spec", errs);
    nonnegative(spec, "failedJobsHistoryLimit", "spec", errs);
    if old.is_none() {
        let name = str_at(at(obj, "metadata"), "name");
        if name.len() > 52 {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be no more than 52 characters",
            ));
        }
    }
}

/// `validateTimeZone`.
fn validate_time_zone(tz: &Value, path: &str, errs: &mut Errs) {
    let Some(tz) = tz.as_str() else {
        return;
    };
    if tz.is_empty() {
        errs.push(FieldError::invalid(
            path,
            "",
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    for part in tz.split('/') {
        let valid_chars = (1..=14).contains(&part.len())
            && part
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'));
        if part == "." || part == ".." || part.starts_with('-') || !valid_chars {
            errs.push(FieldError::invalid(
                path,
                tz,
                format!("unknown time zone {tz}"),
            ));
            return;
        }
    }
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(FieldError::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    if !time_zone_exists(tz) {
        errs.push(FieldError::invalid(
            path,
            tz,
            format!("unknown time zone {tz}"),
        ));
    }
}

/// Whether Go's `time.LoadLocation` knows the zone (names are case-sensitive there).
fn time_zone_exists(name: &str) -> bool {
    if name == "UTC" || name == "Local" {
        return true;
    }
    let db = jiff::tz::db();
    if db.is_definitively_empty() {
        // No zone database here: accept rather than refuse every zone.
        return true;
    }
    db.get(name)
        .is_ok_and(|tz| tz.iana_name().is_none_or(|n| n == name))
}

// ---------------------------------------------------------------------------------------
// Cron schedules (robfig/cron v3 `ParseStandard`)
// ---------------------------------------------------------------------------------------

/// Check a schedule the way `cron.ParseStandard` does: five fields (minute, hour, day of
/// month, month, day of week) or a descriptor (`@hourly`, `@every 1h30m`, ...), with an
/// optional `TZ=`/`CRON_TZ=` prefix. The error is robfig/cron's message.
pub fn parse_cron_schedule(schedule: &str) -> Result<(), String> {
    if schedule.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = schedule;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let Some(space) = spec.find(' ') else {
            let loc = &spec[eq + 1..];
            return Err(format!(
                "provided bad location {loc}: unknown time zone {loc}"
            ));
        };
        let loc = spec.get(eq + 1..space).unwrap_or("");
        if !time_zone_exists(loc) && !loc.is_empty() {
            return Err(format!(
                "provided bad location {loc}: unknown time zone {loc}"
            ));
        }
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        return parse_descriptor(spec);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u64, u64, &[&str], u64); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, first)) in fields.iter().zip(bounds) {
        for expr in field.split(',').filter(|e| !e.is_empty()) {
            cron_range(expr, min, max, names, first)?;
        }
    }
    Ok(())
}

fn parse_descriptor(descriptor: &str) -> Result<(), String> {
    match descriptor {
        "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly" => {
            Ok(())
        }
        _ => match descriptor.strip_prefix("@every ") {
            Some(duration) => go_parse_duration(duration)
                .map_err(|e| format!("failed to parse duration {descriptor}: {e}")),
            None => Err(format!("unrecognized descriptor: {descriptor}")),
        },
    }
}

/// robfig/cron `getRange`.
fn cron_range(expr: &str, min: u64, max: u64, names: &[&str], first: u64) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (min, max)
    } else {
        let start = cron_int_or_name(low_and_high[0], names, first)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => cron_int_or_name(low_and_high[1], names, first)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = cron_int(range_and_step[1])?;
            if single {
                end = max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

fn cron_int_or_name(expr: &str, names: &[&str], first: u64) -> Result<u64, String> {
    let lower = expr.to_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(first + i as u64);
    }
    cron_int(expr)
}

/// robfig/cron `mustParseInt` (with Go's `strconv.Atoi` errors).
fn cron_int(expr: &str) -> Result<u64, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {}: invalid syntax",
            go_quote(expr)
        ));
    }
    let n: i64 = expr.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {}: value out of range",
            go_quote(expr)
        )
    })?;
    u64::try_from(n).map_err(|_| format!("negative number ({n}) not allowed: {expr}"))
}

/// Go's `time.ParseDuration`, for its errors only.
fn go_parse_duration(orig: &str) -> Result<(), String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig.strip_prefix(['-', '+']).unwrap_or(orig);
    if s == "0" {
        return Ok(());
    }
    if s.is_empty() {
        return Err(invalid());
    }
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        if int_len > 0 && s[..int_len].parse::<u64>().is_ok_and(|n| n > 1 << 63) {
            return Err(invalid());
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            post = frac_len > 0;
            s = &rest[frac_len..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .position(|c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let unit = &s[..unit_len];
        if !matches!(unit, "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h") {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                go_quote(unit),
                go_quote(orig)
            ));
        }
        s = &s[unit_len..];
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// core/v1: Service, Secret, ConfigMap, PersistentVolumeClaim
// ---------------------------------------------------------------------------------------

fn is_headless(spec: &Value) -> bool {
    str_at(spec, "clusterIP") == "None"
        || items(spec, "clusterIPs").first().and_then(Value::as_str) == Some("None")
}

/// Go's `%#v` of the `core.ServicePort` key of the duplicate-port check.
fn go_service_port_key(port: &Value) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(str_at(port, "protocol")),
        int_at(port, "port").unwrap_or(0)
    )
}

fn service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = at(obj, "spec");
    let service_type = str_at(spec, "type");
    let headless = service_type == "ClusterIP" && is_headless(spec);
    let ports = items(spec, "ports");
    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    if service_type == "ExternalName" {
        let cname = str_at(spec, "externalName");
        let cname = cname.strip_suffix('.').unwrap_or(cname);
        if cname.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            push_name_errors("spec.externalName", cname, is_dns1123_subdomain, errs);
        }
    }
    let mut names = BTreeSet::new();
    let many = ports.len() > 1;
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = str_at(port, "name");
        if many && name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !name.is_empty() {
            push_name_errors(&child(&p, "name"), name, is_dns1123_label, errs);
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&p, "name"), name));
            }
        }
        let number = int_at(port, "port").unwrap_or(0);
        for msg in port_num_errors(number) {
            errs.push(FieldError::invalid(child(&p, "port"), number, msg));
        }
        protocol(port, &p, errs);
        port_num_or_name(at(port, "targetPort"), &child(&p, "targetPort"), errs);
        if let Some(app_protocol) = at(port, "appProtocol").as_str() {
            push_name_errors(
                &child(&p, "appProtocol"),
                app_protocol,
                is_qualified_name,
                errs,
            );
        }
    }
    errs.extend(validate_labels(at(spec, "selector"), "spec.selector"));
    match str_at(spec, "sessionAffinity") {
        "ClientIP" | "None" => {}
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        other => errs.push(not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    match service_type {
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        "" => errs.push(FieldError::required("spec.type", "")),
        other => errs.push(not_supported(
            "spec.type",
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if service_type == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_at(port, "nodePort").is_some_and(|n| n != 0) {
                errs.push(FieldError::forbidden(
                    child(&index("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let key = (
            str_at(port, "protocol").to_string(),
            int_at(port, "port").unwrap_or(0),
        );
        if !seen.insert(key) {
            errs.push(raw(
                index("spec.ports", i),
                FieldErrorKind::Duplicate,
                &go_service_port_key(port),
                "",
            ));
        }
    }
    for (field, valid) in [
        ("externalTrafficPolicy", &["Cluster", "Local"][..]),
        ("internalTrafficPolicy", &["Cluster", "Local"][..]),
        (
            "ipFamilyPolicy",
            &["PreferDualStack", "RequireDualStack", "SingleStack"][..],
        ),
    ] {
        if let Some(value) = at(spec, field).as_str()
            && !value.is_empty()
            && !valid.contains(&value)
        {
            errs.push(not_supported(child("spec", field), value, valid));
        }
    }
    if let Some(old) = old {
        cluster_ips_update(spec, at(old, "spec"), errs);
    }
}

/// `validateUpgradeDowngradeClusterIPs`. Omitted cluster IPs count as the old ones, as
/// the Service registry fills them in before validating.
fn cluster_ips_update(new: &Value, old: &Value, errs: &mut Errs) {
    if str_at(new, "type") == "ExternalName" || str_at(old, "type") == "ExternalName" {
        return;
    }
    let ips = |spec: &Value| -> Vec<String> {
        let list: Vec<String> = items(spec, "clusterIPs")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        if list.is_empty() && !str_at(spec, "clusterIP").is_empty() {
            vec![str_at(spec, "clusterIP").to_string()]
        } else {
            list
        }
    };
    let old_ips = ips(old);
    let mut new_ips = ips(new);
    if new_ips.is_empty() {
        new_ips = old_ips.clone();
    }
    let old_headless = old_ips.first().map(String::as_str) == Some("None");
    let new_headless = new_ips.first().map(String::as_str) == Some("None");
    if old_headless && new_headless {
        return;
    }
    let rendered = go_strings(&Value::from(new_ips.clone()));
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if new_ips.get(i) != Some(ip) {
                errs.push(invalid_raw(
                    index("spec.clusterIPs", i),
                    &rendered,
                    "may not change once set",
                ));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if !old_ips.is_empty() && new_ips.first() != old_ips.first() {
            errs.push(invalid_raw(
                "spec.clusterIPs[0]",
                &rendered,
                "may not change once set",
            ));
        }
        if new_ips.len() == 1 && str_at(new, "ipFamilyPolicy") != "SingleStack" {
            errs.push(invalid_raw(
                "spec.clusterIPs[0]",
                &rendered,
                "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips.first() != old_ips.first() {
        errs.push(invalid_raw(
            "spec.clusterIPs[0]",
            &rendered,
            "may not change once set",
        ));
    }
}

/// The size in bytes of a base64 value (its text length if it is not base64).
fn decoded_len(v: &Value) -> usize {
    let s = v.as_str().unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_or(s.len(), |b| b.len())
}

fn secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let data = object_at(obj, "data").cloned().unwrap_or_default();
    let string_data = object_at(obj, "stringData").cloned().unwrap_or_default();
    let mut keys: BTreeSet<&String> = data.keys().collect();
    keys.extend(string_data.keys());
    let mut total = 0;
    for key in keys {
        for msg in config_map_key_errors(key) {
            errs.push(FieldError::invalid(keyed("data", key), key.as_str(), msg));
        }
        total += match string_data.get(key) {
            Some(v) => v.as_str().map_or(0, str::len),
            None => data.get(key).map_or(0, decoded_len),
        };
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE as i64));
    }
    let has = |k: &str| data.contains_key(k) || string_data.contains_key(k);
    let data_value = |k: &str| -> Vec<u8> {
        match string_data.get(k) {
            Some(v) => v.as_str().unwrap_or("").as_bytes().to_vec(),
            None => data
                .get(k)
                .and_then(Value::as_str)
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .unwrap_or_default(),
        }
    };
    match str_at(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let annotations = at(at(obj, "metadata"), "annotations");
            if str_at(annotations, "kubernetes.io/service-account.name").is_empty() {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if str_at(obj, "type") == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            if !has(key) {
                errs.push(FieldError::required(keyed("data", key), ""));
            } else if let Err(e) = serde_json::from_slice::<Map<String, Value>>(&data_value(key)) {
                errs.push(FieldError::invalid(
                    keyed("data", key),
                    "<secret contents redacted>",
                    e.to_string(),
                ));
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required("data[username]", ""));
            errs.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if data_value("ssh-privatekey").is_empty() => {
            errs.push(FieldError::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(FieldError::required(keyed("data", key), ""));
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        let (new_type, old_type) = (at(obj, "type"), at(old, "type"));
        if new_type != old_type {
            errs.push(FieldError::invalid(
                "type",
                or_null(new_type),
                FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
        immutable_data(obj, old, &["data"], errs);
    }
}

/// Objects marked `immutable` keep their data and the mark.
fn immutable_data(obj: &Value, old: &Value, fields: &[&str], errs: &mut Errs) {
    if at(old, "immutable").as_bool() != Some(true) {
        return;
    }
    let msg = "field is immutable when `immutable` is set";
    if at(obj, "immutable").as_bool() != Some(true) {
        errs.push(FieldError::forbidden("immutable", msg));
    }
    for field in fields {
        if !semantic_eq(at(obj, field), at(old, field)) {
            errs.push(FieldError::forbidden(*field, msg));
        }
    }
}

fn config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let data: BTreeMap<&String, &Value> = object_at(obj, "data")
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    let binary: BTreeMap<&String, &Value> = object_at(obj, "binaryData")
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    let mut total = 0;
    for (key, value) in &data {
        for msg in config_map_key_errors(key) {
            errs.push(FieldError::invalid(keyed("data", key), key.as_str(), msg));
        }
        if binary.contains_key(key) {
            errs.push(FieldError::invalid(
                keyed("data", key),
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.as_str().map_or(0, str::len);
    }
    for (key, value) in &binary {
        for msg in config_map_key_errors(key) {
            errs.push(FieldError::invalid(
                keyed("binaryData", key),
                key.as_str(),
                msg,
            ));
        }
        total += decoded_len(value);
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE as i64));
    }
    if let Some(old) = old {
        immutable_data(obj, old, &["data", "binaryData"], errs);
    }
}

/// `ValidatePersistentVolumeClaimSpec`'s essentials, on create.
fn pvc(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    let modes = items(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for mode in modes {
        let mode = mode.as_str().unwrap_or("");
        if !matches!(
            mode,
            "ReadWriteOnce" | "ReadOnlyMany" | "ReadWriteMany" | "ReadWriteOncePod"
        ) {
            errs.push(not_supported(
                "spec.accessModes",
                mode,
                &[
                    "ReadOnlyMany",
                    "ReadWriteMany",
                    "ReadWriteOnce",
                    "ReadWriteOncePod",
                ],
            ));
        }
    }
    let requests = at(at(spec, "resources"), "requests");
    match Quantity::from_value(at(requests, "storage")) {
        None => errs.push(FieldError::required("spec.resources[storage]", "")),
        Some(q) if q.is_negative() || q.is_zero() => errs.push(FieldError::invalid(
            "spec.resources[storage]",
            q.to_string(),
            "must be greater than zero",
        )),
        Some(_) => {}
    }
    if let Some(mode) = at(spec, "volumeMode").as_str()
        && !matches!(mode, "Block" | "Filesystem")
    {
        errs.push(not_supported(
            "spec.volumeMode",
            mode,
            &["Block", "Filesystem"],
        ));
    }
}

// ---------------------------------------------------------------------------------------
// coordination.k8s.io/v1
// ---------------------------------------------------------------------------------------

fn lease(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    if let Some(d) = int_at(spec, "leaseDurationSeconds")
        && d <= 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = int_at(spec, "leaseTransitions")
        && t < 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            t,
            "must be greater than or equal to 0",
        ));
    }
    let strategy = str_at(spec, "strategy");
    if !strategy.is_empty() {
        if strategy.contains('/') {
            push_name_errors("spec.strategy", strategy, is_qualified_name, errs);
        } else if strategy != "OldestEmulationVersion" {
            errs.push(not_supported(
                "spec.strategy",
                strategy,
                &["OldestEmulationVersion"],
            ));
        }
    }
    if !str_at(spec, "preferredHolder").is_empty() && strategy.is_empty() {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::defaults::{apply_defaults, job_prepare_for_create};
    use crate::api::validation::invalid_status;
    use proptest::prelude::*;
    use serde_json::json;

    /// Default `obj` as the server does, then validate it; the errors as Kubernetes
    /// prints them (`field: body`).
    fn check(group: &str, kind: &str, obj: Value) -> Vec<String> {
        let mut obj = obj;
        apply_defaults(group, kind, &mut obj);
        if kind == "Job" {
            job_prepare_for_create(&mut obj);
        }
        validate(group, kind, &obj, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn check_update(group: &str, kind: &str, old: Value, new: Value) -> Vec<String> {
        let (mut old, mut new) = (old, new);
        apply_defaults(group, kind, &mut old);
        apply_defaults(group, kind, &mut new);
        validate(group, kind, &new, Some(&old))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn deploy(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "default"}, "spec": spec})
    }

    fn nginx_deployment() -> Value {
        deploy(json!({
            "replicas": 1,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
            },
            "strategy": {}
        }))
    }

    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    // ----- Pods -------------------------------------------------------------------------

    #[test]
    fn valid_pods_pass() {
        assert_eq!(
            check(
                "",
                "Pod",
                pod(json!({"containers": [{"name": "p", "image": "nginx"}]}))
            ),
            Vec::<String>::new()
        );
        let full = pod(json!({
            "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]},
                               {"name": "side", "image": "envoy", "restartPolicy": "Always",
                                "readinessProbe": {"tcpSocket": {"port": 9901}}}],
            "containers": [{
                "name": "app", "image": "registry.example:5000/app:v1",
                "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}],
                "env": [{"name": "A", "value": "1"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                "resources": {"limits": {"cpu": "1", "memory": "256Mi", "example.com/gpu": "1"},
                              "requests": {"cpu": "250m", "memory": "128Mi"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/cfg"}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                "readinessProbe": {"exec": {"command": ["cat", "/ready"]}, "successThreshold": 2},
                "startupProbe": {"grpc": {"port": 9000}},
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}
            }],
            "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "cfg"}}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "serviceAccountName": "builder",
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"},
                            {"operator": "Exists"}],
            "hostname": "h", "subdomain": "s",
            "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}
        }));
        assert_eq!(check("", "Pod", full), Vec::<String>::new());
    }

    #[test]
    fn pod_container_rules() {
        assert_eq!(
            check("", "Pod", pod(json!({}))),
            ["spec.containers: Required value"]
        );
        assert_eq!(
            check(
                "",
                "Pod",
                pod(
                    json!({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]})
                )
            ),
            [r#"spec.containers[1].name: Duplicate value: "a""#]
        );
        assert_eq!(
            check("", "Pod", pod(json!({"containers": [{"name": "a"}]}))),
            ["spec.containers[0].image: Required value"]
        );
        assert_eq!(
            check("", "Pod", pod(json!({"containers": [{"image": "x"}]}))),
            ["spec.containers[0].name: Required value"]
        );
        assert_eq!(
            check(
                "",
                "Pod",
                pod(json!({"containers": [{"name": "Web_1", "image": "x"}]}))
            ),
            [format!(
                r#"spec.containers[0].name: Invalid value: "Web_1": {LABEL_MSG}"#
            )]
        );
        assert_eq!(
            check(
                "",
                "Pod",
                pod(
                    json!({"initContainers": [{"name": "a", "image": "x"}], "containers": [{"name": "a", "image": "y"}]})
                )
            ),
            [r#"spec.initContainers[0].name: Duplicate value: "a""#]
        );
        assert_eq!(
            check(
                "",
                "Pod",
                pod(json!({"containers": [{"name": "a", "image": " nginx"}]}))
            ),
            [
                r#"spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace"#
            ]
        );
        assert_eq!(
            check(
                "",
                "Pod",
                pod(
                    json!({"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Sometimes", "terminationMessagePolicy": "Log"}]})
                )
            ),
            [
                r#"spec.containers[0].terminationMessagePolicy: Unsupported value: "Log": supported values: "File", "FallbackToLogsOnError""#,
                r#"spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never""#,
            ]
        );
    }

    #[test]
    fn pod_policies() {
        let c = json!([{"name": "a", "image": "x"}]);
        assert_eq!(
            check(
                "",
                "Pod",
                pod(json!({"containers": c, "restartPolicy": "Sometimes", "dnsPolicy": "Public"}))
            ),
            [
                r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#,
                r#"spec.dnsPolicy: Unsupported value: "Public": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None""#,
            ]
        );
        assert_eq!(
            check(
                "",
                "Pod",
                pod(json!({"containers": c, "dnsPolicy": "None"}))
            ),
            ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
        );
        assert_eq!(
            check(
                "",
                "Pod",
                pod(
                    json!({"containers": c, "activeDeadlineSeconds": 0, "nodeSelector": {"a b": "c"}})
                )
            ),
            [
                r#"spec.nodeSelector: Invalid value: "a b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#,
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            ]
        );
        assert_eq!(
            check(
                "",
                "Pod",
                pod(
                    json!({"containers": c, "tolerations": [{"operator": "Equal", "value": "x"}, {"key": "k", "operator": "Maybe"}]})
                )
            ),
            [
                r#"spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means "match all values and all keys""#,
                r#"spec.tolerations[1].operator: Unsupported value: "Maybe": supported values: "Equal", "Exists""#,
            ]
        );
        assert_eq!(
            check(
                "",
                "Pod",
                pod(
                    json!({"containers": [{"name": "a", "image": "x"}], "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]})
                )
            ),
            ["spec.ephemeralContainers: Forbidden: cannot be set on create"]
        );
    }

    #[test]
    fn pod_ports_env_and_mounts() {
        let errs = check(
            "",
            "Pod",
            pod(json!({"containers": [{"name": "a", "image": "x",
                "ports": [{"containerPort": 70000, "hostPort": -1}, {"containerPort": 80, "name": "Web"},
                          {"containerPort": 81, "name": "web"}, {"containerPort": 82, "name": "web"},
                          {"name": "p"}, {"containerPort": 1, "protocol": "ICMP"}],
                "env": [{"name": ""}, {"name": "A=B"}, {"name": "C", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}, {"name": "D", "valueFrom": {}}],
                "volumeMounts": [{"name": "data", "mountPath": "/d"}, {"name": "", "mountPath": "/d"}]}]})),
        );
        assert_eq!(
            errs,
            [
                r#"spec.containers[0].volumeMounts[0].name: Not found: "data""#,
                "spec.containers[0].volumeMounts[1].name: Required value",
                r#"spec.containers[0].volumeMounts[1].name: Not found: """#,
                r#"spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/d": must be unique"#,
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[0].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
                r#"spec.containers[0].ports[1].name: Invalid value: "Web": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#,
                r#"spec.containers[0].ports[3].name: Duplicate value: "web""#,
                "spec.containers[0].ports[4].containerPort: Required value",
                r#"spec.containers[0].ports[5].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP""#,
                "spec.containers[0].env[0].name: Required value",
                r#"spec.containers[0].env[1].name: Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters other than '='"#,
                r#"spec.containers[0].env[2].valueFrom: Invalid value: "": may not be specified when `value` is not empty"#,
                r#"spec.containers[0].env[3].valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"#,
            ]
        );
    }

    #[test]
    fn pod_resources() {
        let res = |r: Value| {
            check(
                "",
                "Pod",
                pod(json!({"containers": [{"name": "a", "image": "x", "resources": r}]})),
            )
        };
        assert_eq!(
            res(json!({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}})),
            [
                r#"spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1"#
            ]
        );
        assert_eq!(
            res(json!({"limits": {"memory": "1Gi"}, "requests": {"memory": "1025Mi"}})),
            [
                r#"spec.containers[0].resources.requests: Invalid value: "1025Mi": must be less than or equal to memory limit of 1Gi"#
            ]
        );
        assert_eq!(
            res(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "512Mi"}})
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            res(json!({"requests": {"cpu": "-1"}})),
            [
                r#"spec.containers[0].resources.requests[cpu]: Invalid value: "-1": must be greater than or equal to 0"#
            ]
        );
        assert_eq!(
            res(json!({"requests": {"foo": "1"}})),
            [
                r#"spec.containers[0].resources.requests[foo]: Invalid value: "foo": must be a standard resource type or fully qualified"#,
                r#"spec.containers[0].resources.requests[foo]: Invalid value: "foo": must be a standard resource for containers"#,
            ]
        );
        assert_eq!(
            res(json!({"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1"}})),
            [
                r#"spec.containers[0].resources.requests: Invalid value: "1": must be equal to example.com/gpu limit of 2"#
            ]
        );
        assert_eq!(
            res(json!({"requests": {"example.com/gpu": "1"}})),
            [
                "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"
            ]
        );
    }

    #[test]
    fn pod_probes_and_volumes() {
        let errs = check(
            "",
            "Pod",
            pod(json!({"containers": [{"name": "a", "image": "x",
                "livenessProbe": {"successThreshold": 2, "exec": {"command": ["x"]}},
                "readinessProbe": {"exec": {"command": ["x"]}, "httpGet": {"port": 80}, "initialDelaySeconds": -1},
                "startupProbe": {}}],
                "volumes": [{"name": "a", "secret": {}}, {"name": "a"}, {"name": "a"}, {"name": "B"},
                            {"name": "c", "emptyDir": {}, "hostPath": {"path": "/x"}},
                            {"name": "d", "configMap": {"name": "x", "defaultMode": 1000}}]})),
        );
        assert_eq!(
            errs,
            [
                "spec.volumes[0].secret.secretName: Required value",
                // Only valid volumes claim their name.
                r#"spec.volumes[2].name: Duplicate value: "a""#,
                format!(r#"spec.volumes[3].name: Invalid value: "B": {LABEL_MSG}"#).as_str(),
                "spec.volumes[4].emptyDir: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[5].configMap.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].readinessProbe.httpGet: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].readinessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.containers[0].startupProbe: Required value: must specify a handler type",
            ]
        );
    }

    #[test]
    fn pod_updates() {
        let old = pod(
            json!({"containers": [{"name": "a", "image": "nginx:1"}], "activeDeadlineSeconds": 100,
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]}),
        );
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("nginx:2");
        image["spec"]["activeDeadlineSeconds"] = json!(50);
        image["spec"]["tolerations"] = json!([
            {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10},
            {"key": "new", "operator": "Exists"}
        ]);
        assert_eq!(
            check_update("", "Pod", old.clone(), image),
            Vec::<String>::new()
        );

        let mut env = old.clone();
        env["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
        assert_eq!(
            check_update("", "Pod", old.clone(), env),
            [
                "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
            ]
        );

        let mut added = old.clone();
        added["spec"]["containers"] =
            json!([{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "x"}]);
        assert_eq!(
            check_update("", "Pod", old.clone(), added),
            ["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );

        let mut longer = old.clone();
        longer["spec"]["activeDeadlineSeconds"] = json!(200);
        assert_eq!(
            check_update("", "Pod", old.clone(), longer),
            [
                "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"
            ]
        );

        let mut dropped = old.clone();
        dropped["spec"]["tolerations"] = json!([]);
        assert_eq!(
            check_update("", "Pod", old, dropped),
            [
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
            ]
        );
    }

    // ----- Workloads ----------------------------------------------------------------------

    #[test]
    fn kubectl_deployment_is_valid() {
        assert_eq!(
            check("apps", "Deployment", nginx_deployment()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn deployment_selector_rules() {
        let mut no_selector = nginx_deployment();
        no_selector["spec"]
            .as_object_mut()
            .map(|s| s.remove("selector"));
        let errs = check("apps", "Deployment", no_selector.clone());
        assert_eq!(
            errs,
            [
                "spec.selector: Required value",
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`"#,
            ]
        );
        // The message kubectl shows.
        let mut obj = no_selector;
        apply_defaults("apps", "Deployment", &mut obj);
        let status = invalid_status(
            "apps",
            "Deployment",
            "x",
            &validate("apps", "Deployment", &obj, None),
        );
        assert_eq!(
            status["message"],
            r#"Deployment.apps "x" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`]"#
        );
        assert_eq!(status["details"]["causes"][0]["field"], "spec.selector");

        let mut mismatch = nginx_deployment();
        mismatch["spec"]["template"]["metadata"]["labels"] = json!({"app": "y", "tier": "web"});
        assert_eq!(
            check("apps", "Deployment", mismatch),
            [
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"y", "tier":"web"}: `selector` does not match template `labels`"#
            ]
        );

        let mut empty = nginx_deployment();
        empty["spec"]["selector"] = json!({});
        assert_eq!(
            check("apps", "Deployment", empty),
            [
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
            ]
        );

        let mut expr = nginx_deployment();
        expr["spec"]["selector"] =
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["x", "z"]}]});
        assert_eq!(check("apps", "Deployment", expr), Vec::<String>::new());

        let mut no_template_labels = nginx_deployment();
        no_template_labels["spec"]["template"]["metadata"] = json!({});
        assert_eq!(
            check("apps", "Deployment", no_template_labels),
            [
                "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template `labels`"
            ]
        );
    }

    #[test]
    fn deployment_numbers_template_and_strategy() {
        let mut d = nginx_deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .map(|c| c.remove("image"));
        d["spec"]["strategy"] =
            json!({"rollingUpdate": {"maxUnavailable": "200%", "maxSurge": -1}});
        d["spec"]["minReadySeconds"] = json!(700);
        assert_eq!(
            check("apps", "Deployment", d),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.containers[0].image: Required value",
                r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#,
                "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0",
                r#"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"200%"}: must not be greater than 100%"#,
                "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
            ]
        );
        let mut zero = nginx_deployment();
        zero["spec"]["strategy"] =
            json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}});
        assert_eq!(
            check("apps", "Deployment", zero),
            [
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0"
            ]
        );
        let mut recreate = nginx_deployment();
        recreate["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}});
        assert_eq!(
            check("apps", "Deployment", recreate),
            [
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
            ]
        );
        let mut unknown = nginx_deployment();
        unknown["spec"]["strategy"] = json!({"type": "BlueGreen"});
        assert_eq!(
            check("apps", "Deployment", unknown),
            [
                r#"spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", "RollingUpdate""#
            ]
        );
        let mut labels = nginx_deployment();
        labels["spec"]["template"]["metadata"]["labels"]["bad key!"] = json!("v");
        labels["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
        assert_eq!(
            check("apps", "Deployment", labels),
            [
                r#"spec.template.labels: Invalid value: "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"#
            ]
        );
    }

    #[test]
    fn workload_selectors_are_immutable() {
        let old = nginx_deployment();
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        assert_eq!(
            check_update("apps", "Deployment", old.clone(), scaled),
            Vec::<String>::new()
        );
        let mut moved = old.clone();
        moved["spec"]["selector"] = json!({"matchLabels": {"app": "y"}});
        moved["spec"]["template"]["metadata"]["labels"] = json!({"app": "y"});
        assert_eq!(
            check_update("apps", "Deployment", old.clone(), moved.clone()),
            [
                r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"y"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#
            ]
        );
        for kind in ["ReplicaSet", "DaemonSet"] {
            let mut o = old.clone();
            let mut n = moved.clone();
            o["kind"] = json!(kind);
            n["kind"] = json!(kind);
            assert_eq!(
                check_update("apps", kind, o, n),
                [
                    r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"y"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#
                ],
                "{kind}"
            );
        }
    }

    #[test]
    fn replica_sets_and_daemon_sets() {
        let rs = json!({"metadata": {"name": "r"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        assert_eq!(
            check("apps", "ReplicaSet", rs.clone()),
            Vec::<String>::new()
        );
        let mut rs_empty = rs.clone();
        rs_empty["spec"]["selector"] = json!({"matchLabels": {}});
        assert_eq!(
            check("apps", "ReplicaSet", rs_empty),
            [
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
            ]
        );
        let mut rs_deadline = rs.clone();
        rs_deadline["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
        assert_eq!(
            check("apps", "ReplicaSet", rs_deadline),
            [
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"
            ]
        );

        assert_eq!(check("apps", "DaemonSet", rs.clone()), Vec::<String>::new());
        let mut ds = rs.clone();
        ds["spec"].as_object_mut().map(|s| s.remove("selector"));
        // No "Required" for DaemonSets: a nil selector just matches nothing.
        assert_eq!(
            check("apps", "DaemonSet", ds),
            [
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"a":"b"}: `selector` does not match template `labels`"#
            ]
        );
        let mut both = rs.clone();
        both["spec"]["updateStrategy"] =
            json!({"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}});
        assert_eq!(
            check("apps", "DaemonSet", both),
            [
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}: may not be set when maxUnavailable is non-zero"
            ]
        );
        let mut none = rs;
        none["spec"]["updateStrategy"] =
            json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
        assert_eq!(
            check("apps", "DaemonSet", none),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
            ]
        );
    }

    #[test]
    fn stateful_sets() {
        let sts = json!({"metadata": {"name": "web"}, "spec": {"serviceName": "web", "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
        assert_eq!(
            check("apps", "StatefulSet", sts.clone()),
            Vec::<String>::new()
        );
        // The pod spec of a StatefulSet template is not validated by Kubernetes.
        let mut no_image = sts.clone();
        no_image["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .map(|c| c.remove("image"));
        assert_eq!(check("apps", "StatefulSet", no_image), Vec::<String>::new());

        let mut bad = sts.clone();
        bad["metadata"]["name"] = json!("web.v1");
        bad["spec"]["podManagementPolicy"] = json!("Random");
        bad["spec"]["replicas"] = json!(-2);
        bad["spec"]["persistentVolumeClaimRetentionPolicy"] = json!({"whenDeleted": "Keep"});
        assert_eq!(
            check("apps", "StatefulSet", bad),
            [
                r#"metadata.name: Invalid value: "web.v1": must not contain dots"#,
                r#"spec.podManagementPolicy: Invalid value: "Random": must be 'OrderedReady' or 'Parallel'"#,
                r#"spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Keep": supported values: "Retain", "Delete""#,
                "spec.replicas: Invalid value: -2: must be greater than or equal to 0",
            ]
        );

        let mut scaled = sts.clone();
        scaled["spec"]["replicas"] = json!(3);
        scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("y");
        scaled["spec"]["revisionHistoryLimit"] = json!(2);
        assert_eq!(
            check_update("apps", "StatefulSet", sts.clone(), scaled),
            Vec::<String>::new()
        );
        let mut storage = sts.clone();
        storage["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
            json!("2Gi");
        assert_eq!(
            check_update("apps", "StatefulSet", sts, storage),
            [
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            ]
        );
    }

    // ----- Jobs and CronJobs --------------------------------------------------------------

    fn kubectl_job() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "default", "uid": "6b0c3f5e-0000-4000-8000-000000000001"},
            "spec": {"template": {"spec": {"containers": [{"name": "j", "image": "busybox"}], "restartPolicy": "Never"}}}})
    }

    #[test]
    fn kubectl_job_is_valid() {
        assert_eq!(check("batch", "Job", kubectl_job()), Vec::<String>::new());
    }

    #[test]
    fn job_rules() {
        let mut always = kubectl_job();
        always["spec"]["template"]["spec"]
            .as_object_mut()
            .map(|s| s.remove("restartPolicy"));
        always["spec"]["parallelism"] = json!(-1);
        always["spec"]["backoffLimit"] = json!(-2);
        assert_eq!(
            check("batch", "Job", always),
            [
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
                r#"spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#,
            ]
        );
        let mut mode = kubectl_job();
        mode["spec"]["completionMode"] = json!("Sometimes");
        mode["spec"]["podReplacementPolicy"] = json!("Never");
        mode["spec"]["template"]["spec"]["restartPolicy"] = json!("Always2");
        assert_eq!(
            check("batch", "Job", mode),
            [
                r#"spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed""#,
                r#"spec.podReplacementPolicy: Unsupported value: "Never": supported values: "Failed", "TerminatingOrFailed""#,
                // The pod template check and the Job check both report it, as in Kubernetes.
                r#"spec.template.spec.restartPolicy: Unsupported value: "Always2": supported values: "Always", "OnFailure", "Never""#,
                r#"spec.template.spec.restartPolicy: Unsupported value: "Always2": supported values: "OnFailure", "Never""#,
            ]
        );
        let mut manual = kubectl_job();
        manual["spec"]["manualSelector"] = json!(true);
        manual["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        manual["spec"]["template"]["metadata"] = json!({"labels": {"a": "c"}});
        assert_eq!(
            check("batch", "Job", manual),
            [
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"a":"c"}: `selector` does not match template `labels`"#
            ]
        );
        let mut tampered = kubectl_job();
        tampered["spec"]["template"]["metadata"] = json!({"labels": {"job-name": "other"}});
        assert_eq!(
            check("batch", "Job", tampered),
            [
                r#"spec.template.metadata.labels[job-name]: Invalid value: map[string]string{"batch.kubernetes.io/controller-uid":"6b0c3f5e-0000-4000-8000-000000000001", "batch.kubernetes.io/job-name":"j", "controller-uid":"6b0c3f5e-0000-4000-8000-000000000001", "job-name":"other"}: must be 'j'"#
            ]
        );
        let mut no_uid = kubectl_job();
        no_uid["metadata"].as_object_mut().map(|m| m.remove("uid"));
        assert_eq!(
            check("batch", "Job", no_uid),
            ["metadata.uid: Required value"]
        );
        let mut indexed = kubectl_job();
        indexed["metadata"]["name"] = json!("a".repeat(60));
        indexed["spec"]["completionMode"] = json!("Indexed");
        indexed["spec"]["completions"] = json!(1000);
        let errs = check("batch", "Job", indexed);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].ends_with(&format!(
                "will not able to create pod with invalid DNS label: {}-999",
                "a".repeat(60)
            )),
            "{errs:?}"
        );
    }

    #[test]
    fn job_updates() {
        let mut old = kubectl_job();
        apply_defaults("batch", "Job", &mut old);
        job_prepare_for_create(&mut old);
        let mut suspend = old.clone();
        suspend["spec"]["suspend"] = json!(true);
        suspend["spec"]["parallelism"] = json!(3);
        assert_eq!(
            validate("batch", "Job", &suspend, Some(&old)),
            Vec::<FieldError>::new()
        );
        let mut completions = old.clone();
        completions["spec"]["completions"] = json!(3);
        let errs: Vec<String> = validate("batch", "Job", &completions, Some(&old))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            ["spec.completions: Invalid value: 3: field is immutable"]
        );
        let mut image = old.clone();
        image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("alpine");
        let errs = validate("batch", "Job", &image, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template");
        assert!(errs[0].to_string().ends_with(": field is immutable"));

        // A suspended Job that never ran may move its pods.
        let mut suspended = old.clone();
        suspended["spec"]["suspend"] = json!(true);
        let mut placed = suspended.clone();
        placed["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
        assert_eq!(
            validate("batch", "Job", &placed, Some(&suspended)),
            Vec::<FieldError>::new()
        );
    }

    fn cron(schedule: &str) -> Value {
        json!({"metadata": {"name": "c"}, "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}}}}}})
    }

    #[test]
    fn cron_jobs() {
        for ok in [
            "* * * * *",
            "*/5 * * * *",
            "0 0 * * 0",
            "0 9-17 * JAN-MAR mon-fri",
            "15,45 */2 1,15 * ?",
            "@hourly",
            "@every 1h30m",
            "0 0 31 12 6",
            "30 2 * * 1-5/2",
        ] {
            assert_eq!(
                check("batch", "CronJob", cron(ok)),
                Vec::<String>::new(),
                "{ok}"
            );
        }
        let bad = |s: &str| {
            let errs = check("batch", "CronJob", cron(s));
            assert_eq!(errs.len(), 1, "{s}: {errs:?}");
            errs[0].clone()
        };
        assert_eq!(
            bad("* * *"),
            r#"spec.schedule: Invalid value: "* * *": expected exactly 5 fields, found 3: [* * *]"#
        );
        assert_eq!(
            bad("61 * * * *"),
            r#"spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#
        );
        assert_eq!(
            bad("0 0 0 * *"),
            r#"spec.schedule: Invalid value: "0 0 0 * *": beginning of range (0) below minimum (1): 0"#
        );
        assert_eq!(
            bad("5-2 * * * *"),
            r#"spec.schedule: Invalid value: "5-2 * * * *": beginning of range (5) beyond end of range (2): 5-2"#
        );
        assert_eq!(
            bad("*/0 * * * *"),
            r#"spec.schedule: Invalid value: "*/0 * * * *": step of range should be a positive number: */0"#
        );
        assert_eq!(
            bad("a * * * *"),
            r#"spec.schedule: Invalid value: "a * * * *": failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax"#
        );
        assert_eq!(
            bad("1-2-3 * * * *"),
            r#"spec.schedule: Invalid value: "1-2-3 * * * *": too many hyphens: 1-2-3"#
        );
        assert_eq!(
            bad("@fortnightly"),
            r#"spec.schedule: Invalid value: "@fortnightly": unrecognized descriptor: @fortnightly"#
        );
        assert_eq!(
            bad("@every 5x"),
            r#"spec.schedule: Invalid value: "@every 5x": failed to parse duration @every 5x: time: unknown unit "x" in duration "5x""#
        );
        assert_eq!(
            bad("CRON_TZ=UTC 0 * * * *"),
            r#"spec.schedule: Invalid value: "CRON_TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"#
        );
        let mut no_schedule = cron("x");
        no_schedule["spec"]
            .as_object_mut()
            .map(|s| s.remove("schedule"));
        assert_eq!(
            check("batch", "CronJob", no_schedule),
            ["spec.schedule: Required value"]
        );

        let mut zone = cron("0 * * * *");
        zone["spec"]["timeZone"] = json!("America/New_York");
        assert_eq!(
            check("batch", "CronJob", zone.clone()),
            Vec::<String>::new()
        );
        zone["spec"]["timeZone"] = json!("Mars/Olympus_Mons");
        assert_eq!(
            check("batch", "CronJob", zone.clone()),
            [
                r#"spec.timeZone: Invalid value: "Mars/Olympus_Mons": unknown time zone Mars/Olympus_Mons"#
            ]
        );
        zone["spec"]["timeZone"] = json!("Local");
        assert_eq!(
            check("batch", "CronJob", zone),
            [
                r#"spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"#
            ]
        );

        let mut rest = cron("0 * * * *");
        rest["metadata"]["name"] = json!("c".repeat(53));
        rest["spec"]["concurrencyPolicy"] = json!("Sometimes");
        rest["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        rest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        rest["spec"]["failedJobsHistoryLimit"] = json!(-1);
        assert_eq!(
            check("batch", "CronJob", rest),
            [
                r#"spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace""#,
                r#"spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#,
                r#"spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"a":"b"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated"#,
                "spec.failedJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                &format!(
                    r#"metadata.name: Invalid value: "{}": must be no more than 52 characters"#,
                    "c".repeat(53)
                ),
            ]
        );
    }

    #[test]
    fn cron_parser_details() {
        assert_eq!(
            parse_cron_schedule(""),
            Err("empty spec string".to_string())
        );
        assert_eq!(
            parse_cron_schedule("1 2 3 4 5 6"),
            Err("expected exactly 5 fields, found 6: [1 2 3 4 5 6]".to_string())
        );
        assert_eq!(
            parse_cron_schedule("-1 * * * *"),
            Err(
                r#"failed to parse int from : strconv.Atoi: parsing "": invalid syntax"#
                    .to_string()
            )
        );
        assert_eq!(
            parse_cron_schedule("1/2/3 * * * *"),
            Err("too many slashes: 1/2/3".to_string())
        );
        assert_eq!(
            parse_cron_schedule("* * * * 7"),
            Err("end of range (7) above maximum (6): 7".to_string())
        );
        assert_eq!(
            parse_cron_schedule("@every 10"),
            Err(
                r#"failed to parse duration @every 10: time: missing unit in duration "10""#
                    .to_string()
            )
        );
        assert_eq!(
            parse_cron_schedule("@every x"),
            Err(r#"failed to parse duration @every x: time: invalid duration "x""#.to_string())
        );
        assert_eq!(
            parse_cron_schedule("TZ=Nowhere/City 0 * * * *"),
            Err("provided bad location Nowhere/City: unknown time zone Nowhere/City".to_string())
        );
        assert_eq!(parse_cron_schedule("TZ=UTC 0 * * * *"), Ok(()));
        assert_eq!(parse_cron_schedule("0 0 1 dec SUN"), Ok(()));
        assert_eq!(parse_cron_schedule("@every 1.5h"), Ok(()));
    }

    // ----- Services -------------------------------------------------------------------------

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "s"}, "spec": spec})
    }

    #[test]
    fn services() {
        // `kubectl create service clusterip s --tcp=80:8080`
        assert_eq!(
            check(
                "",
                "Service",
                svc(
                    json!({"ports": [{"name": "80-8080", "port": 80, "targetPort": 8080}], "selector": {"app": "s"}})
                )
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check("", "Service", svc(json!({}))),
            ["spec.ports: Required value"]
        );
        assert_eq!(
            check("", "Service", svc(json!({"clusterIP": "None"}))),
            Vec::<String>::new()
        );
        assert_eq!(
            check("", "Service", svc(json!({"type": "ExternalName"}))),
            ["spec.externalName: Required value"]
        );
        assert_eq!(
            check(
                "",
                "Service",
                svc(json!({"type": "ExternalName", "externalName": "db.example.com."}))
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                "",
                "Service",
                svc(
                    json!({"ports": [{"port": 0}, {"port": 80, "targetPort": 70000}, {"name": "a", "port": 81, "targetPort": "Http"}], "type": "Internal"})
                )
            ),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[1].name: Required value",
                "spec.ports[1].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                r#"spec.ports[2].targetPort: Invalid value: "Http": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#,
                r#"spec.type: Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#,
            ]
        );
        assert_eq!(
            check(
                "",
                "Service",
                svc(
                    json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 80, "nodePort": 30080}]})
                )
            ),
            [
                r#"spec.ports[1].name: Duplicate value: "a""#,
                "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                r#"spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#,
            ]
        );
        assert_eq!(
            check(
                "",
                "Service",
                svc(
                    json!({"ports": [{"port": 80}], "sessionAffinity": "Cookie", "selector": {"app": "-x"}})
                )
            ),
            [
                r#"spec.selector: Invalid value: "-x": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#,
                r#"spec.sessionAffinity: Unsupported value: "Cookie": supported values: "ClientIP", "None""#,
            ]
        );
    }

    #[test]
    fn service_cluster_ip_is_immutable() {
        let old = svc(
            json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"]}),
        );
        // Omitted: the allocated address is kept.
        assert_eq!(
            check_update(
                "",
                "Service",
                old.clone(),
                svc(json!({"ports": [{"port": 81}]}))
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check_update("", "Service", old.clone(), old.clone()),
            Vec::<String>::new()
        );
        assert_eq!(
            check_update(
                "",
                "Service",
                old.clone(),
                svc(
                    json!({"ports": [{"port": 80}], "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"]})
                )
            ),
            [
                r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.9"}: may not change once set"#
            ]
        );
        assert_eq!(
            check_update(
                "",
                "Service",
                old,
                svc(json!({"type": "ExternalName", "externalName": "a.b"}))
            ),
            Vec::<String>::new()
        );
    }

    // ----- Secrets, ConfigMaps, claims, leases ----------------------------------------------

    const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

    #[test]
    fn secrets() {
        assert_eq!(
            check("", "Secret", json!({"data": {"a.b_C-1": "eA=="}})),
            Vec::<String>::new()
        );
        assert_eq!(
            check("", "Secret", json!({"data": {"a b": "eA==", "..x": ""}})),
            [
                r#"data[..x]: Invalid value: "..x": must not start with '..'"#.to_string(),
                format!(r#"data[a b]: Invalid value: "a b": {KEY_MSG}"#),
            ]
        );
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_SECRET_SIZE]);
        assert_eq!(
            check("", "Secret", json!({"data": {"a": big, "b": "eA=="}})),
            ["data: Too long: may not be more than 1048576 bytes"]
        );
        assert_eq!(
            check("", "Secret", json!({"data": {"a": big}})),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                "",
                "Secret",
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": ""}})
            ),
            ["data[tls.key]: Required value"]
        );
        assert_eq!(
            check(
                "",
                "Secret",
                json!({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{}"}})
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check_update(
                "",
                "Secret",
                json!({"data": {"a": "eA=="}, "immutable": true}),
                json!({"data": {"a": "eQ=="}, "immutable": true, "type": "kubernetes.io/tls"})
            ),
            [
                "data[tls.crt]: Required value",
                "data[tls.key]: Required value",
                r#"type: Invalid value: "kubernetes.io/tls": field is immutable"#,
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
    }

    #[test]
    fn config_maps() {
        assert_eq!(
            check(
                "",
                "ConfigMap",
                json!({"data": {"k": "v"}, "binaryData": {"b": "AAE="}})
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                "",
                "ConfigMap",
                json!({"data": {"k": "v", "x/y": "1"}, "binaryData": {"k": "AAE="}})
            ),
            [
                r#"data[k]: Invalid value: "k": duplicate of key present in binaryData"#
                    .to_string(),
                format!(r#"data[x/y]: Invalid value: "x/y": {KEY_MSG}"#),
            ]
        );
        let big = "x".repeat(MAX_SECRET_SIZE + 1);
        assert_eq!(
            check("", "ConfigMap", json!({"data": {"k": big}})),
            [": Too long: may not be more than 1048576 bytes"]
        );
        assert_eq!(
            check_update(
                "",
                "ConfigMap",
                json!({"data": {"k": "v"}, "immutable": true}),
                json!({"data": {"k": "v"}})
            ),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
    }

    #[test]
    fn claims_and_leases() {
        assert_eq!(
            check(
                "",
                "PersistentVolumeClaim",
                json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                "",
                "PersistentVolumeClaim",
                json!({"spec": {"accessModes": ["ReadWriteSome"]}})
            ),
            [
                r#"spec.accessModes: Unsupported value: "ReadWriteSome": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod""#,
                "spec.resources[storage]: Required value",
            ]
        );
        assert_eq!(
            check(
                "coordination.k8s.io",
                "Lease",
                json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                "coordination.k8s.io",
                "Lease",
                json!({"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "b"}})
            ),
            [
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
                "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
            ]
        );
        for kind in ["Namespace", "ServiceAccount", "Event", "Node", "Endpoints"] {
            assert_eq!(
                check("", kind, json!({"spec": {"x": 1}})),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn go_rendering() {
        assert_eq!(go_map(&Value::Null), "map[string]string(nil)");
        assert_eq!(
            go_map(&json!({"b": "2", "a": "1"})),
            r#"map[string]string{"a":"1", "b":"2"}"#
        );
        assert_eq!(go_strings(&json!(["x", "y"])), r#"[]string{"x", "y"}"#);
        assert_eq!(
            go_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Exists"}]})),
            r#"v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"a", Operator:"Exists", Values:[]string(nil)}}}"#
        );
        assert_eq!(go_label_selector(&Value::Null), r#""null""#);
        assert!(semantic_eq(
            &json!({"a": [], "b": null, "c": ""}),
            &json!({})
        ));
        assert!(!semantic_eq(&json!({"a": 1}), &json!({})));
    }

    proptest! {
        #[test]
        fn validation_never_panics(obj in arb_json(), old in arb_json()) {
            for (group, kind) in [
                ("", "Pod"), ("", "Service"), ("", "Secret"), ("", "ConfigMap"), ("", "PersistentVolumeClaim"),
                ("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "DaemonSet"), ("apps", "StatefulSet"),
                ("batch", "Job"), ("batch", "CronJob"), ("coordination.k8s.io", "Lease"),
            ] {
                let wrapped = json!({"metadata": obj.clone(), "spec": obj.clone(), "data": obj.clone(), "type": obj.clone()});
                let old_wrapped = json!({"spec": old.clone(), "status": old.clone()});
                let _ = validate(group, kind, &wrapped, None);
                let _ = validate(group, kind, &wrapped, Some(&old_wrapped));
                let mut defaulted = wrapped.clone();
                apply_defaults(group, kind, &mut defaulted);
                let _ = validate(group, kind, &defaulted, Some(&old_wrapped));
            }
        }

        #[test]
        fn cron_parser_never_panics(s in "[-0-9*/,?@ a-zA-Z=_.]{0,24}") {
            let _ = parse_cron_schedule(&s);
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..70000).prop_map(Value::from),
            proptest::sample::select(vec![
                "",
                "None",
                "x",
                "1Gi",
                "-1",
                "Indexed",
                "*/5 * * * *",
                "TZ=",
                "ExternalName",
                "Always",
                "Exists"
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let keys = proptest::sample::select(vec![
                "containers",
                "initContainers",
                "template",
                "spec",
                "ports",
                "volumes",
                "resources",
                "limits",
                "requests",
                "selector",
                "matchLabels",
                "matchExpressions",
                "labels",
                "metadata",
                "name",
                "image",
                "strategy",
                "rollingUpdate",
                "maxSurge",
                "clusterIPs",
                "clusterIP",
                "type",
                "completions",
                "completionMode",
                "schedule",
                "jobTemplate",
                "tolerations",
                "operator",
                "port",
                "targetPort",
                "volumeMounts",
                "livenessProbe",
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
