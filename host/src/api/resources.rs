//! The resource types the API serves: the built-in kinds (typed by `k8s-openapi`) and the
//! custom resources that CustomResourceDefinitions add at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::{apps, batch, coordination, core, discovery};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How the objects of a type are checked and normalised.
#[derive(Clone)]
pub enum Source {
    /// A built-in kind: decoded into its `k8s-openapi` type (which rejects wrong types and
    /// drops unknown fields) and encoded again.
    Builtin {
        /// The OpenAPI definition name, e.g. `io.k8s.api.core.v1.Pod`.
        schema_name: String,
        normalize: fn(Value) -> Result<Value, String>,
    },
    /// A custom resource, validated and pruned against the CRD's structural schema.
    Custom {
        /// `openAPIV3Schema` of this version.
        schema: Arc<Value>,
        /// `additionalPrinterColumns` of this version.
        printer_columns: Arc<Vec<Value>>,
    },
}

/// Where the scale subresource reads and writes replicas.
#[derive(Clone, Debug)]
pub struct ScalePaths {
    /// JSON pointer, e.g. `/spec/replicas`.
    pub spec_replicas: String,
    pub status_replicas: String,
    /// JSON pointer to the label selector (a string for CRDs, a LabelSelector for built-ins).
    pub label_selector: Option<String>,
}

/// One servable resource type (one group/version/resource).
#[derive(Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Served subresources: `status`, `scale`, `binding`, `log`, `finalize`.
    pub subresources: Vec<String>,
    pub scale: Option<ScalePaths>,
    pub source: Source,
}

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether `status` is a subresource (and so main-resource writes leave status alone).
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s == name)
    }

    pub fn is_custom(&self) -> bool {
        matches!(self.source, Source::Custom { .. })
    }

    fn group_segment(&self) -> &str {
        if self.group.is_empty() {
            "core"
        } else {
            &self.group
        }
    }

    /// The store key prefix of all objects of this type (in `namespace` if given).
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                format!("/registry/{}/{}/{}/", self.group_segment(), self.plural, ns)
            }
            _ => format!("/registry/{}/{}/", self.group_segment(), self.plural),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{}", self.key_prefix(namespace), name)
    }

    /// The verbs discovery lists.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

fn normalize<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = go_style_message(&e.inner().to_string());
        if path == "." || path.is_empty() {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Word decoding errors the way Kubernetes (Go) does where clients look for the words.
fn go_style_message(msg: &str) -> String {
    // The base64 crate says "Invalid symbol 33, offset 0."; Go says
    // "illegal base64 data at input byte 0".
    if let Some(rest) = msg.split("offset ").nth(1).filter(|_| {
        msg.starts_with("Invalid symbol")
            || msg.starts_with("Invalid last symbol")
            || msg.starts_with("Invalid byte")
    }) {
        let offset: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return format!("illegal base64 data at input byte {offset}");
    }
    msg.to_string()
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    schema_name: fn() -> String,
    normalize: fn(Value) -> Result<Value, String>,
}

macro_rules! builtin {
    ($ty:ty, $group:expr, $version:expr, $kind:expr, $plural:expr, $ns:expr, [$($short:expr),*], [$($cat:expr),*], [$($sub:expr),*]) => {
        Builtin {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: "",
            namespaced: $ns,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            schema_name: || <$ty as schemars::JsonSchema>::schema_name().into_owned(),
            normalize: normalize::<$ty>,
        }
    };
}

/// Each built-in type's Rust type, for the OpenAPI generator.
pub fn builtin_schemas(g: &mut schemars::SchemaGenerator) -> Vec<(String, Value)> {
    macro_rules! s {
        ($($ty:ty),* $(,)?) => {
            vec![$((
                <$ty as schemars::JsonSchema>::schema_name().into_owned(),
                serde_json::to_value(g.subschema_for::<$ty>()).unwrap_or(Value::Null),
            )),*]
        };
    }
    s![
        core::v1::Namespace,
        core::v1::Pod,
        core::v1::Node,
        core::v1::Service,
        core::v1::Endpoints,
        core::v1::ConfigMap,
        core::v1::Secret,
        core::v1::Event,
        core::v1::ServiceAccount,
        core::v1::PersistentVolume,
        core::v1::PersistentVolumeClaim,
        core::v1::Binding,
        apps::v1::Deployment,
        apps::v1::ReplicaSet,
        apps::v1::DaemonSet,
        apps::v1::StatefulSet,
        batch::v1::Job,
        batch::v1::CronJob,
        coordination::v1::Lease,
        discovery::v1::EndpointSlice,
        apiext::CustomResourceDefinition,
        k8s_openapi::api::autoscaling::v1::Scale,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Status,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions,
    ]
}

fn builtins() -> Vec<Builtin> {
    vec![
        builtin!(
            core::v1::Namespace,
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            ["ns"],
            [],
            ["status", "finalize"]
        ),
        builtin!(
            core::v1::Pod,
            "",
            "v1",
            "Pod",
            "pods",
            true,
            ["po"],
            ["all"],
            ["status", "binding", "log"]
        ),
        builtin!(
            core::v1::Node,
            "",
            "v1",
            "Node",
            "nodes",
            false,
            ["no"],
            [],
            ["status"]
        ),
        builtin!(
            core::v1::Service,
            "",
            "v1",
            "Service",
            "services",
            true,
            ["svc"],
            ["all"],
            ["status"]
        ),
        builtin!(
            core::v1::Endpoints,
            "",
            "v1",
            "Endpoints",
            "endpoints",
            true,
            ["ep"],
            [],
            []
        ),
        builtin!(
            core::v1::ConfigMap,
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            ["cm"],
            [],
            []
        ),
        builtin!(
            core::v1::Secret,
            "",
            "v1",
            "Secret",
            "secrets",
            true,
            [],
            [],
            []
        ),
        builtin!(
            core::v1::Event,
            "",
            "v1",
            "Event",
            "events",
            true,
            ["ev"],
            [],
            []
        ),
        builtin!(
            core::v1::ServiceAccount,
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            ["sa"],
            [],
            []
        ),
        builtin!(
            core::v1::PersistentVolume,
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            false,
            ["pv"],
            [],
            ["status"]
        ),
        builtin!(
            core::v1::PersistentVolumeClaim,
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            ["pvc"],
            [],
            ["status"]
        ),
        builtin!(
            apps::v1::Deployment,
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            ["deploy"],
            ["all"],
            ["status", "scale"]
        ),
        builtin!(
            apps::v1::ReplicaSet,
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            ["rs"],
            ["all"],
            ["status", "scale"]
        ),
        builtin!(
            apps::v1::DaemonSet,
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            ["ds"],
            ["all"],
            ["status"]
        ),
        builtin!(
            apps::v1::StatefulSet,
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            ["sts"],
            ["all"],
            ["status", "scale"]
        ),
        builtin!(
            batch::v1::Job,
            "batch",
            "v1",
            "Job",
            "jobs",
            true,
            [],
            ["all"],
            ["status"]
        ),
        builtin!(
            batch::v1::CronJob,
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            true,
            ["cj"],
            ["all"],
            ["status"]
        ),
        builtin!(
            coordination::v1::Lease,
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            [],
            [],
            []
        ),
        builtin!(
            discovery::v1::EndpointSlice,
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            [],
            [],
            []
        ),
        builtin!(
            apiext::CustomResourceDefinition,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            ["crd", "crds"],
            ["api-extensions"],
            ["status"]
        ),
    ]
}

fn builtin_type(b: &Builtin) -> ResourceType {
    let scale = b.subresources.contains(&"scale").then(|| ScalePaths {
        spec_replicas: "/spec/replicas".into(),
        status_replicas: "/status/replicas".into(),
        label_selector: Some("/spec/selector".into()),
    });
    ResourceType {
        group: b.group.into(),
        version: b.version.into(),
        kind: b.kind.into(),
        list_kind: format!("{}List", b.kind),
        plural: b.plural.into(),
        singular: if b.singular.is_empty() {
            b.kind.to_lowercase()
        } else {
            b.singular.into()
        },
        namespaced: b.namespaced,
        short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
        categories: b.categories.iter().map(|s| s.to_string()).collect(),
        subresources: b.subresources.iter().map(|s| s.to_string()).collect(),
        scale,
        source: Source::Builtin {
            schema_name: (b.schema_name)(),
            normalize: b.normalize,
        },
    }
}

/// A snapshot of everything served, keyed by (group, version, plural).
#[derive(Clone, Default)]
pub struct Catalog {
    types: BTreeMap<(String, String, String), Arc<ResourceType>>,
    /// Group → preferred version, in the order groups are listed.
    group_order: Vec<(String, Vec<String>)>,
}

impl Catalog {
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Find the type of `kind` in `group` (any version), e.g. to interpret a CRD object.
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .values()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// The groups with their versions (preferred first), core ("") first.
    pub fn groups(&self) -> &[(String, Vec<String>)] {
        &self.group_order
    }

    /// The types of one group/version, in plural order.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .values()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }

    fn insert(&mut self, t: ResourceType) {
        let key = (t.group.clone(), t.version.clone(), t.plural.clone());
        match self.group_order.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) => {
                if !versions.contains(&t.version) {
                    versions.push(t.version.clone());
                }
            }
            None => self
                .group_order
                .push((t.group.clone(), vec![t.version.clone()])),
        }
        self.types.insert(key, Arc::new(t));
    }
}

/// The live catalog, swapped whole when CRDs change.
pub struct Registry {
    current: RwLock<Arc<Catalog>>,
    builtin: Catalog,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        let mut c = Catalog::default();
        for b in builtins() {
            c.insert(builtin_type(&b));
        }
        Registry {
            current: RwLock::new(Arc::new(c.clone())),
            builtin: c,
        }
    }

    pub fn snapshot(&self) -> Arc<Catalog> {
        self.current.read().clone()
    }

    /// Rebuild the catalog from the built-ins plus the given (established) CRDs.
    pub fn set_crds(&self, crds: &[Value]) {
        let mut c = self.builtin.clone();
        for crd in crds {
            for t in crd_types(crd) {
                // A CRD may not shadow a built-in.
                if self
                    .builtin
                    .lookup(&t.group, &t.version, &t.plural)
                    .is_none()
                {
                    c.insert(t);
                }
            }
        }
        *self.current.write() = Arc::new(c);
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn strings_at(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The resource types one CRD object defines (one per served version).
pub fn crd_types(crd: &Value) -> Vec<ResourceType> {
    let group = str_at(crd, "/spec/group");
    let names = crd.pointer("/spec/names").cloned().unwrap_or(Value::Null);
    let kind = str_at(&names, "/kind");
    let plural = str_at(&names, "/plural");
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return vec![];
    }
    let list_kind = match str_at(&names, "/listKind") {
        "" => format!("{kind}List"),
        lk => lk.to_string(),
    };
    let singular = match str_at(&names, "/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let namespaced = str_at(crd, "/spec/scope") != "Cluster";
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|v| {
            let version = v.get("name").and_then(Value::as_str)?;
            let mut subresources = vec![];
            if v.pointer("/subresources/status").is_some() {
                subresources.push("status".to_string());
            }
            let scale = v.pointer("/subresources/scale").map(|s| {
                subresources.push("scale".to_string());
                let path = |p: &str| {
                    format!("/{}", str_at(s, p).trim_start_matches('.').replace('.', "/"))
                };
                ScalePaths {
                    spec_replicas: path("/specReplicasPath"),
                    status_replicas: path("/statusReplicasPath"),
                    label_selector: s
                        .get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(|_| path("/labelSelectorPath")),
                }
            });
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
            let printer_columns = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Some(ResourceType {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                list_kind: list_kind.clone(),
                plural: plural.to_string(),
                singular: singular.clone(),
                namespaced,
                short_names: strings_at(&names, "/shortNames"),
                categories: strings_at(&names, "/categories"),
                subresources,
                scale,
                source: Source::Custom {
                    schema: Arc::new(schema),
                    printer_columns: Arc::new(printer_columns),
                },
            })
        })
        .collect()
}
