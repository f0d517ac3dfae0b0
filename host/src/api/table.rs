//! Server-side `meta.k8s.io/v1` Table rendering: what `kubectl get` prints.
//!
//! `kubectl get` asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints
//! the `columnDefinitions` and row `cells` the server sends. This module reproduces the
//! columns and cell values of the real kube-apiserver:
//!
//! * built-in kinds: the printers of kubernetes `pkg/printers/internalversion/printers.go`,
//!   as the apiserver runs them (always with `Wide: true`; kubectl hides the columns with
//!   `priority > 0` unless `-o wide`);
//! * kinds without a printer: the apiserver's default table convertor
//!   (`apiserver/pkg/registry/rest/table.go`: `Name`, `Created At` as RFC 3339 in UTC), which
//!   is also what CustomResourceDefinitions themselves get;
//! * custom resources: the apiextensions-apiserver table convertor over the version's
//!   `additionalPrinterColumns` (`Name` first, then one column per printer column; a single
//!   `Age` column of `.metadata.creationTimestamp` when the CRD declares none).
//!
//! Everything here is a pure function over `serde_json::Value` objects, robust to missing
//! or wrong-typed fields (a field of the wrong type counts as absent). Where the stored object
//! may lack a field that Kubernetes' defaulting always fills in (for instance
//! `spec.replicas`, `spec.type` of a Service, a port's `protocol`, a Secret's `type`), the
//! cell shows the API default, which is what a user of a real cluster sees.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use self::docs::*;

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

/// The `columnDefinitions` of a Table of objects of `group`/`kind` (`group` is `""` for the
/// core group), in the order [`row_cells`] fills the cells.
pub fn column_definitions(group: &str, kind: &str) -> Vec<Value> {
    printer_for(group, kind)
        .columns()
        .iter()
        .copied()
        .map(Col::to_json)
        .collect()
}

/// The cells of one Table row for the object `obj` of `group`/`kind`, as of `now`.
pub fn row_cells(group: &str, kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    match printer_for(group, kind) {
        Printer::Pod => pod_cells(obj, now),
        Printer::PodTemplate => pod_template_cells(obj),
        Printer::ReplicationController => replication_controller_cells(obj, now),
        Printer::Service => service_cells(obj, now),
        Printer::Endpoints => endpoints_cells(obj, now),
        Printer::Node => node_cells(obj, now),
        Printer::Event => event_cells(obj, now),
        Printer::Namespace => namespace_cells(obj, now),
        Printer::Secret => secret_cells(obj, now),
        Printer::ConfigMap => config_map_cells(obj, now),
        Printer::ServiceAccount => service_account_cells(obj, now),
        Printer::PersistentVolume => persistent_volume_cells(obj, now),
        Printer::PersistentVolumeClaim => persistent_volume_claim_cells(obj, now),
        Printer::ResourceQuota => resource_quota_cells(obj, now),
        Printer::Deployment => deployment_cells(obj, now),
        Printer::ReplicaSet => replica_set_cells(obj, now),
        Printer::DaemonSet => daemon_set_cells(obj, now),
        Printer::StatefulSet => stateful_set_cells(obj, now),
        Printer::ControllerRevision => controller_revision_cells(obj, now),
        Printer::Job => job_cells(obj, now),
        Printer::CronJob => cron_job_cells(obj, now),
        Printer::Lease => lease_cells(obj, now),
        Printer::EndpointSlice => endpoint_slice_cells(obj, now),
        Printer::Default => default_cells(obj),
    }
}

/// The row `conditions` the apiserver attaches to a row (`[]` for none): a Pod that has
/// `Succeeded` or `Failed` carries `{type: Completed, status: "True", ...}`.
pub fn row_conditions(group: &str, kind: &str, obj: &Value) -> Vec<Value> {
    if printer_for(group, kind) != Printer::Pod {
        return Vec::new();
    }
    let (reason, message) = match str_at(obj, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![json!({"type": "Completed", "status": "True", "reason": reason, "message": message})]
}

/// apimachinery's `duration.HumanDuration`: a succinct duration with about 2-3 significant
/// figures ("59s", "2m3s", "15m", "3h5m", "30h", "5d4h", "45d", "2y45d", "9y").
pub fn human_duration(d: Duration) -> String {
    human_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// [`human_duration`] of a signed duration: like Go, a duration up to 2s in the past
/// (clock skew) prints "0s", anything more negative "<invalid>".
pub fn human_duration_signed(d: SignedDuration) -> String {
    human_secs(d.as_secs())
}

/// apimachinery's `duration.ShortHumanDuration` ("59s", "15m", "3h", "5d", "2y").
pub fn short_human_duration(d: Duration) -> String {
    let seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if seconds < 60 {
        format!("{seconds}s")
    } else if seconds < 60 * 60 {
        format!("{}m", seconds / 60)
    } else if seconds < 60 * 60 * 24 {
        format!("{}h", seconds / 3600)
    } else if seconds < 60 * 60 * 24 * 365 {
        format!("{}d", seconds / 86400)
    } else {
        format!("{}y", seconds / 86400 / 365)
    }
}

/// The `columnDefinitions` of a custom resource's Table for the served version's
/// `additionalPrinterColumns` (`[]` when the CRD declares none: the apiserver then serves
/// a single `Age` column).
pub fn crd_column_definitions(printer_columns: &[Value]) -> Vec<Value> {
    let mut columns = vec![NAME.to_json()];
    for column in crd_columns(printer_columns) {
        let description = if column.description.is_empty() {
            format!(
                "Custom resource definition column (in JSONPath format): {}",
                column.json_path
            )
        } else {
            column.description
        };
        columns.push(json!({
            "name": column.name,
            "type": column.ty,
            "format": column.format,
            "description": description,
            "priority": column.priority,
        }));
    }
    columns
}

/// The cells of one custom resource's row: the name, then one cell per printer column.
///
/// Like the apiserver, a column takes the first value its JSONPath finds; `string` columns
/// print it as kubectl's JSONPath printer does (maps and lists as compact JSON), `integer`,
/// `number` and `boolean` columns carry a JSON value of that type, and `date` columns the
/// age ("5m"); a column that finds nothing, or a value of the wrong type, is `null`
/// (kubectl shows `<none>`).
pub fn crd_row_cells(printer_columns: &[Value], obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![Value::from(str_at(obj, &["metadata", "name"]))];
    for column in crd_columns(printer_columns) {
        let cell = match jsonpath::first(&column.json_path, obj) {
            Some(value) => crd_cell(&column.ty, value, now),
            None => Value::Null,
        };
        cells.push(cell);
    }
    cells
}

/// A complete `meta.k8s.io/v1` Table. Each row is its cells and the row's `object` (the
/// object, its [`partial_object_metadata`], or `null` for `includeObject=None`).
pub fn build_table(
    columns: Vec<Value>,
    rows: Vec<(Vec<Value>, Value)>,
    resource_version: &str,
    continue_token: Option<&str>,
    remaining: Option<i64>,
) -> Value {
    let rows = rows
        .into_iter()
        .map(|(cells, object)| table_row(cells, Vec::new(), object))
        .collect();
    build_table_from_rows(columns, rows, resource_version, continue_token, remaining)
}

/// A `meta.k8s.io/v1` TableRow: `{cells, conditions (omitted when empty), object}`.
pub fn table_row(cells: Vec<Value>, conditions: Vec<Value>, object: Value) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(cells));
    if !conditions.is_empty() {
        row.insert("conditions".into(), Value::Array(conditions));
    }
    row.insert("object".into(), object);
    Value::Object(row)
}

/// Like [`build_table`], over rows already made with [`table_row`].
pub fn build_table_from_rows(
    columns: Vec<Value>,
    rows: Vec<Value>,
    resource_version: &str,
    continue_token: Option<&str>,
    remaining: Option<i64>,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".into(), token.into());
    }
    if let Some(remaining) = remaining {
        metadata.insert("remainingItemCount".into(), remaining.into());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The `meta.k8s.io/v1` PartialObjectMetadata of `obj` (its whole `metadata`), the row
/// object for `includeObject=Metadata`, the default.
pub fn partial_object_metadata(obj: &Value) -> Value {
    let metadata = obj
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

// ---------------------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------------------

/// One `TableColumnDefinition`.
#[derive(Clone, Copy, Debug)]
struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

impl Col {
    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 1,
    }
}

const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    description: OBJECT_META_NAME,
    priority: 0,
};
const AGE: Col = col("Age", "string", OBJECT_META_CREATION_TIMESTAMP);
const CONTAINERS: Col = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Col = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

const POD_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", POD_STATUS_POD_IP),
    wide("Node", "string", POD_SPEC_NODE_NAME),
    wide("Nominated Node", "string", POD_STATUS_NOMINATED_NODE_NAME),
    wide("Readiness Gates", "string", POD_SPEC_READINESS_GATES),
];

const POD_TEMPLATE_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    col("Pod Labels", "string", "The labels for the pod template."),
];

const REPLICATION_CONTROLLER_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", RC_SPEC_REPLICAS),
    col("Current", "integer", RC_STATUS_REPLICAS),
    col("Ready", "integer", RC_STATUS_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", RC_SPEC_SELECTOR),
];

const SERVICE_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", SERVICE_SPEC_TYPE),
    col("Cluster-IP", "string", SERVICE_SPEC_CLUSTER_IP),
    col("External-IP", "string", SERVICE_SPEC_EXTERNAL_IPS),
    col("Port(s)", "string", SERVICE_SPEC_PORTS),
    AGE,
    wide("Selector", "string", SERVICE_SPEC_SELECTOR),
];

const ENDPOINTS_COLUMNS: &[Col] = &[NAME, col("Endpoints", "string", ENDPOINTS_SUBSETS), AGE];

const NODE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", NODE_INFO_KUBELET_VERSION),
    wide("Internal-IP", "string", NODE_STATUS_ADDRESSES),
    wide("External-IP", "string", NODE_STATUS_ADDRESSES),
    wide("OS-Image", "string", NODE_INFO_OS_IMAGE),
    wide("Kernel-Version", "string", NODE_INFO_KERNEL_VERSION),
    wide("Container-Runtime", "string", NODE_INFO_CONTAINER_RUNTIME),
];

const EVENT_COLUMNS: &[Col] = &[
    col("Last Seen", "string", EVENT_LAST_TIMESTAMP),
    col("Type", "string", EVENT_TYPE),
    col("Reason", "string", EVENT_REASON),
    col("Object", "string", EVENT_INVOLVED_OBJECT),
    wide("Subobject", "string", OBJECT_REFERENCE_FIELD_PATH),
    wide("Source", "string", EVENT_SOURCE),
    col("Message", "string", EVENT_MESSAGE),
    wide("First Seen", "string", EVENT_FIRST_TIMESTAMP),
    wide("Count", "string", EVENT_COUNT),
    Col {
        priority: 1,
        ..NAME
    },
];

const NAMESPACE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

const SECRET_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", SECRET_TYPE),
    col("Data", "string", SECRET_DATA),
    AGE,
];

const CONFIG_MAP_COLUMNS: &[Col] = &[NAME, col("Data", "string", CONFIG_MAP_DATA), AGE];

const SERVICE_ACCOUNT_COLUMNS: &[Col] =
    &[NAME, col("Secrets", "string", SERVICE_ACCOUNT_SECRETS), AGE];

const PERSISTENT_VOLUME_COLUMNS: &[Col] = &[
    NAME,
    col("Capacity", "string", PV_SPEC_CAPACITY),
    col("Access Modes", "string", PV_SPEC_ACCESS_MODES),
    col("Reclaim Policy", "string", PV_SPEC_RECLAIM_POLICY),
    col("Status", "string", PV_STATUS_PHASE),
    col("Claim", "string", PV_SPEC_CLAIM_REF),
    col("StorageClass", "string", "StorageClass of the pv"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    col("Reason", "string", PV_STATUS_REASON),
    AGE,
    wide("VolumeMode", "string", PV_SPEC_VOLUME_MODE),
];

const PERSISTENT_VOLUME_CLAIM_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", PVC_STATUS_PHASE),
    col("Volume", "string", PVC_SPEC_VOLUME_NAME),
    col("Capacity", "string", PVC_STATUS_CAPACITY),
    col("Access Modes", "string", PVC_STATUS_ACCESS_MODES),
    col("StorageClass", "string", "StorageClass of the pvc"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    wide("VolumeMode", "string", PVC_SPEC_VOLUME_MODE),
];

const RESOURCE_QUOTA_COLUMNS: &[Col] = &[
    NAME,
    AGE,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
];

const DEPLOYMENT_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", DEPLOY_STATUS_UPDATED),
    col("Available", "string", DEPLOY_STATUS_AVAILABLE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", DEPLOY_SPEC_SELECTOR),
];

const REPLICA_SET_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", RS_SPEC_REPLICAS),
    col("Current", "integer", RS_STATUS_REPLICAS),
    col("Ready", "integer", RS_STATUS_READY_REPLICAS),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", RS_SPEC_SELECTOR),
];

const DAEMON_SET_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", DS_STATUS_DESIRED),
    col("Current", "integer", DS_STATUS_CURRENT),
    col("Ready", "integer", DS_STATUS_READY),
    col("Up-to-date", "integer", DS_STATUS_UPDATED),
    col("Available", "integer", DS_STATUS_AVAILABLE),
    col("Node Selector", "string", POD_SPEC_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", DS_SPEC_SELECTOR),
];

const STATEFUL_SET_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

const CONTROLLER_REVISION_COLUMNS: &[Col] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col("Revision", "string", CONTROLLER_REVISION_REVISION),
    AGE,
];

const JOB_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", JOB_STATUS_SUCCEEDED),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", JOB_SPEC_SELECTOR),
];

const CRON_JOB_COLUMNS: &[Col] = &[
    NAME,
    col("Schedule", "string", CRONJOB_SPEC_SCHEDULE),
    col("Timezone", "string", CRONJOB_SPEC_TIME_ZONE),
    col("Suspend", "boolean", CRONJOB_SPEC_SUSPEND),
    col("Active", "integer", CRONJOB_STATUS_ACTIVE),
    col("Last Schedule", "string", CRONJOB_STATUS_LAST_SCHEDULE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", JOB_SPEC_SELECTOR),
];

const LEASE_COLUMNS: &[Col] = &[
    NAME,
    col("Holder", "string", LEASE_SPEC_HOLDER_IDENTITY),
    AGE,
];

const ENDPOINT_SLICE_COLUMNS: &[Col] = &[
    NAME,
    col("AddressType", "string", ENDPOINT_SLICE_ADDRESS_TYPE),
    col("Ports", "string", ENDPOINT_SLICE_PORTS),
    col("Endpoints", "string", ENDPOINT_SLICE_ENDPOINTS),
    AGE,
];

/// The default table convertor's columns (kinds without a printer, CRDs themselves).
const DEFAULT_COLUMNS: &[Col] = &[
    NAME,
    col("Created At", "date", OBJECT_META_CREATION_TIMESTAMP),
];

/// Which printer renders a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Printer {
    Pod,
    PodTemplate,
    ReplicationController,
    Service,
    Endpoints,
    Node,
    Event,
    Namespace,
    Secret,
    ConfigMap,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    ResourceQuota,
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
    ControllerRevision,
    Job,
    CronJob,
    Lease,
    EndpointSlice,
    Default,
}

fn printer_for(group: &str, kind: &str) -> Printer {
    match (group, kind) {
        ("", "Pod") => Printer::Pod,
        ("", "PodTemplate") => Printer::PodTemplate,
        ("", "ReplicationController") => Printer::ReplicationController,
        ("", "Service") => Printer::Service,
        ("", "Endpoints") => Printer::Endpoints,
        ("", "Node") => Printer::Node,
        ("", "Event") => Printer::Event,
        ("", "Namespace") => Printer::Namespace,
        ("", "Secret") => Printer::Secret,
        ("", "ConfigMap") => Printer::ConfigMap,
        ("", "ServiceAccount") => Printer::ServiceAccount,
        ("", "PersistentVolume") => Printer::PersistentVolume,
        ("", "PersistentVolumeClaim") => Printer::PersistentVolumeClaim,
        ("", "ResourceQuota") => Printer::ResourceQuota,
        ("apps", "Deployment") => Printer::Deployment,
        ("apps", "ReplicaSet") => Printer::ReplicaSet,
        ("apps", "DaemonSet") => Printer::DaemonSet,
        ("apps", "StatefulSet") => Printer::StatefulSet,
        ("apps", "ControllerRevision") => Printer::ControllerRevision,
        ("batch", "Job") => Printer::Job,
        ("batch", "CronJob") => Printer::CronJob,
        ("coordination.k8s.io", "Lease") => Printer::Lease,
        ("discovery.k8s.io", "EndpointSlice") => Printer::EndpointSlice,
        // CustomResourceDefinitions, LimitRanges, Roles, ...: the default convertor.
        _ => Printer::Default,
    }
}

impl Printer {
    fn columns(self) -> &'static [Col] {
        match self {
            Printer::Pod => POD_COLUMNS,
            Printer::PodTemplate => POD_TEMPLATE_COLUMNS,
            Printer::ReplicationController => REPLICATION_CONTROLLER_COLUMNS,
            Printer::Service => SERVICE_COLUMNS,
            Printer::Endpoints => ENDPOINTS_COLUMNS,
            Printer::Node => NODE_COLUMNS,
            Printer::Event => EVENT_COLUMNS,
            Printer::Namespace => NAMESPACE_COLUMNS,
            Printer::Secret => SECRET_COLUMNS,
            Printer::ConfigMap => CONFIG_MAP_COLUMNS,
            Printer::ServiceAccount => SERVICE_ACCOUNT_COLUMNS,
            Printer::PersistentVolume => PERSISTENT_VOLUME_COLUMNS,
            Printer::PersistentVolumeClaim => PERSISTENT_VOLUME_CLAIM_COLUMNS,
            Printer::ResourceQuota => RESOURCE_QUOTA_COLUMNS,
            Printer::Deployment => DEPLOYMENT_COLUMNS,
            Printer::ReplicaSet => REPLICA_SET_COLUMNS,
            Printer::DaemonSet => DAEMON_SET_COLUMNS,
            Printer::StatefulSet => STATEFUL_SET_COLUMNS,
            Printer::ControllerRevision => CONTROLLER_REVISION_COLUMNS,
            Printer::Job => JOB_COLUMNS,
            Printer::CronJob => CRON_JOB_COLUMNS,
            Printer::Lease => LEASE_COLUMNS,
            Printer::EndpointSlice => ENDPOINT_SLICE_COLUMNS,
            Printer::Default => DEFAULT_COLUMNS,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading objects
// ---------------------------------------------------------------------------------------

/// The value at `path`; JSON `null` counts as absent (as it does for Go's pointers).
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// The string at `path`, `""` when absent or not a string.
fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path`, or `default` when absent, empty or not a string.
fn str_or<'a>(v: &'a Value, path: &[&str], default: &'a str) -> &'a str {
    match str_at(v, path) {
        "" => default,
        s => s,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        // Saturating truncation, like Go's conversion of a float to an integer field.
        .or_else(|| v.as_f64().map(|f| f as i64))
}

fn opt_int_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(as_int)
}

/// The integer at `path`, 0 when absent or not a number.
fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int_at(v, path).unwrap_or(0)
}

fn bool_at(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

/// The list at `path`, empty when absent or not a list.
fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The number of entries of the map at `path`, 0 when absent or not a map.
fn map_len(v: &Value, path: &[&str]) -> usize {
    at(v, path).and_then(Value::as_object).map_or(0, Map::len)
}

/// A Kubernetes quantity (`"10Gi"`, or a bare number) as text; Go's zero quantity, "0",
/// when absent.
fn quantity_at(v: &Value, path: &[&str]) -> String {
    match at(v, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}

/// Seconds from 0001-01-01T00:00:00Z (Go's zero `time.Time`) to the Unix epoch.
const GO_ZERO_TIME_UNIX_SECONDS: i64 = -62_135_596_800;

/// The timestamp at `path`; `None` when absent, unparsable or Go's zero time.
fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    parse_time(at(v, path)?.as_str()?)
}

fn parse_time(s: &str) -> Option<Timestamp> {
    let t: Timestamp = s.parse().ok()?;
    let zero = t.as_second() == GO_ZERO_TIME_UNIX_SECONDS && t.subsec_nanosecond() == 0;
    (!zero).then_some(t)
}

/// printers.go `translateTimestampSince`: the age of a timestamp, `<unknown>` without one.
fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_duration_signed(now.duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

/// The AGE cell: the age of `metadata.creationTimestamp`.
fn age(obj: &Value, now: Timestamp) -> Value {
    since(time_at(obj, &["metadata", "creationTimestamp"]), now).into()
}

fn name(obj: &Value) -> Value {
    str_at(obj, &["metadata", "name"]).into()
}

fn deleting(obj: &Value) -> bool {
    at(obj, &["metadata", "deletionTimestamp"]).is_some()
}

fn human_secs(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{h}h", hours / 24)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{dy}d", hours / 24 / 365)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// labels.FormatLabels: `k=v` pairs sorted by key, joined by ","; `<none>` when empty.
fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",")
}

/// metav1.LabelSelectorAsSelector(...).String(): `""` for a missing or empty selector,
/// `Err` for one Kubernetes would reject.
fn label_selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let selector = selector.as_object().ok_or(())?;
    let match_labels = match selector.get("matchLabels") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_object().ok_or(())?),
    };
    let match_expressions = match selector.get("matchExpressions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_array().ok_or(())?),
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    for (key, value) in match_labels.into_iter().flatten() {
        let value = value.as_str().ok_or(())?;
        requirements.push((key.clone(), format!("{key}={value}")));
    }
    for expression in match_expressions.into_iter().flatten() {
        let key = expression.get("key").and_then(Value::as_str).ok_or(())?;
        let values = match expression.get("values") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => v
                .as_array()
                .ok_or(())?
                .iter()
                .map(|s| s.as_str().ok_or(()))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let operator = expression.get("operator").and_then(Value::as_str);
        let text = match operator {
            Some(op @ ("In" | "NotIn")) => {
                if values.is_empty() {
                    return Err(());
                }
                let mut sorted = values.clone();
                sorted.sort_unstable();
                let word = if op == "In" { "in" } else { "notin" };
                format!("{key} {word} ({})", sorted.join(","))
            }
            Some("Exists") if values.is_empty() => key.to_string(),
            Some("DoesNotExist") if values.is_empty() => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key.to_string(), text));
    }
    // Selector.Add sorts the requirements by key.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(","))
}

/// metav1.FormatLabelSelector: `<none>` for an empty selector, `<error>` for an invalid one.
fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

/// printers.go `layoutContainerCells`: container names and images, each joined by ",".
fn container_cells(containers: &[Value]) -> [Value; 2] {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    [names.join(",").into(), images.join(",").into()]
}

/// printers.go `GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| short)
    .collect::<Vec<_>>()
    .join(",")
}

/// `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// printers.go `listWithMoreString`.
fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count.saturating_sub(max))
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

// ---------------------------------------------------------------------------------------
// Printers (pkg/printers/internalversion/printers.go)
// ---------------------------------------------------------------------------------------

/// The later of `latest` and the `finishedAt` of a container status' last termination
/// (Go's `lastRestartDate.Before(&terminatedDate)` bookkeeping).
fn note_last_termination(latest: &mut Option<Timestamp>, status: &Value) {
    if at(status, &["lastState", "terminated"]).is_none() {
        return;
    }
    let finished = time_at(status, &["lastState", "terminated", "finishedAt"]);
    if let Some(finished) = finished
        && latest.is_none_or(|l| l < finished)
    {
        *latest = Some(finished);
    }
}

fn condition_status<'a>(obj: &'a Value, kind: &str) -> Option<&'a str> {
    list_at(obj, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == kind)
        .map(|c| str_at(c, &["status"]))
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let containers = list_at(pod, &["spec", "containers"]);
    let init_containers = list_at(pod, &["spec", "initContainers"]);
    let is_restartable = |c: &&Value| str_at(c, &["restartPolicy"]) == "Always";
    let restartable: BTreeSet<&str> = init_containers
        .iter()
        .filter(is_restartable)
        .map(|c| str_at(c, &["name"]))
        .collect();
    let total = containers.len() + init_containers.iter().filter(is_restartable).count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut restartable_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_restart: Option<Timestamp> = None;

    // The registry sets the phase when a pod is created.
    let phase = str_or(pod, &["status", "phase"], "Pending");
    let status_reason = str_at(pod, &["status", "reason"]);
    let mut reason = if status_reason.is_empty() {
        phase.to_string()
    } else {
        status_reason.to_string()
    };
    for condition in list_at(pod, &["status", "conditions"]) {
        if str_at(condition, &["type"]) == "PodScheduled"
            && str_at(condition, &["reason"]) == "SchedulingGated"
        {
            reason = "SchedulingGated".to_string();
        }
    }

    let mut initializing = false;
    for (i, status) in list_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = int_at(status, &["restartCount"]);
        restarts += count;
        note_last_termination(&mut last_restart, status);
        let restartable = restartable.contains(str_at(status, &["name"]));
        if restartable {
            restartable_restarts += count;
            note_last_termination(&mut last_restartable_restart, status);
        }
        let terminated = at(status, &["state", "terminated"]);
        let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if restartable && bool_at(status, &["started"]) == Some(true) {
            if bool_at(status, &["ready"]) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(terminated) = terminated {
            match str_at(terminated, &["reason"]) {
                "" => match int_at(terminated, &["signal"]) {
                    0 => format!("Init:ExitCode:{}", int_at(terminated, &["exitCode"])),
                    signal => format!("Init:Signal:{signal}"),
                },
                r => format!("Init:{r}"),
            }
        } else if at(status, &["state", "waiting"]).is_some()
            && !waiting_reason.is_empty()
            && waiting_reason != "PodInitializing"
        {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_containers.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_status(pod, "Initialized") == Some("True") {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for status in list_at(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int_at(status, &["restartCount"]);
            note_last_termination(&mut last_restart, status);
            let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
            let terminated = at(status, &["state", "terminated"]);
            if at(status, &["state", "waiting"]).is_some() && !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(terminated) = terminated {
                reason = match str_at(terminated, &["reason"]) {
                    "" => match int_at(terminated, &["signal"]) {
                        0 => format!("ExitCode:{}", int_at(terminated, &["exitCode"])),
                        signal => format!("Signal:{signal}"),
                    },
                    r => r.to_string(),
                };
            } else if bool_at(status, &["ready"]) == Some(true)
                && at(status, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but another still runs is not "Completed".
        if reason == "Completed" && has_running {
            reason = if condition_status(pod, "Ready") == Some("True") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if deleting(pod) && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting(pod) && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts = match last_restart {
        Some(last) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(last), now)),
        _ => restarts.to_string(),
    };

    // Converting a v1 Pod fills podIPs from podIP when only podIP is set.
    let pod_ip = match list_at(pod, &["status", "podIPs"]).first() {
        Some(ip) => str_at(ip, &["ip"]),
        None => str_at(pod, &["status", "podIP"]),
    };
    let readiness_gates = list_at(pod, &["spec", "readinessGates"]);
    let gates = if readiness_gates.is_empty() {
        "<none>".to_string()
    } else {
        let passing = readiness_gates
            .iter()
            .filter(|gate| condition_status(pod, str_at(gate, &["conditionType"])) == Some("True"))
            .count();
        format!("{passing}/{}", readiness_gates.len())
    };
    vec![
        name(pod),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts.into(),
        age(pod, now),
        if pod_ip.is_empty() { "<none>" } else { pod_ip }.into(),
        str_or(pod, &["spec", "nodeName"], "<none>").into(),
        str_or(pod, &["status", "nominatedNodeName"], "<none>").into(),
        gates.into(),
    ]
}

fn pod_template_cells(obj: &Value) -> Vec<Value> {
    let [names, images] = container_cells(list_at(obj, &["template", "spec", "containers"]));
    vec![
        name(obj),
        names,
        images,
        format_labels(at(obj, &["template", "metadata", "labels"])).into(),
    ]
}

/// `spec.replicas`, or the API default of 1 when the object lacks it.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int_at(obj, &["spec", "replicas"]).unwrap_or(1)
}

fn replication_controller_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] =
        container_cells(list_at(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        desired_replicas(obj).into(),
        int_at(obj, &["status", "replicas"]).into(),
        int_at(obj, &["status", "readyReplicas"]).into(),
        age(obj, now),
        names,
        images,
        format_labels(at(obj, &["spec", "selector"])).into(),
    ]
}

fn service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service_type = str_or(obj, &["spec", "type"], "ClusterIP");
    // Defaulting fills clusterIPs from clusterIP.
    let cluster_ip = match list_at(obj, &["spec", "clusterIPs"]).first() {
        Some(ip) => ip.as_str().unwrap_or(""),
        None => str_or(obj, &["spec", "clusterIP"], "<none>"),
    };
    let external_ips: Vec<&str> = list_at(obj, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external_ip = match service_type {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = list_at(obj, &["status", "loadBalancer", "ingress"])
                .iter()
                .map(|i| str_or(i, &["ip"], str_at(i, &["hostname"])))
                .filter(|s| !s.is_empty())
                .collect();
            let mut all: Vec<&str> = ingress.into_iter().collect();
            all.extend(external_ips);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(obj, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = list_at(obj, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = str_or(p, &["protocol"], "TCP");
            match int_at(p, &["nodePort"]) {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name(obj),
        service_type.into(),
        cluster_ip.into(),
        external_ip.into(),
        ports.into(),
        age(obj, now),
        format_labels(at(obj, &["spec", "selector"])).into(),
    ]
}

/// printers.go `formatEndpoints` (all ports).
fn format_endpoints(obj: &Value) -> String {
    let subsets = list_at(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list_at(subset, &["addresses"]);
        let ports = list_at(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(address, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    str_at(address, &["ip"]),
                    int_at(port, &["port"]),
                ));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count.saturating_sub(MAX))
    } else {
        joined
    }
}

fn endpoints_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), format_endpoints(obj).into(), age(obj, now)]
}

const NODE_ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

fn node_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // A later condition of the same type wins, as in the printer's map.
    let ready = list_at(obj, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(obj, &["spec", "unschedulable"]) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: BTreeSet<&str> = BTreeSet::new();
    if let Some(labels) = at(obj, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix(NODE_ROLE_LABEL_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if key == NODE_ROLE_LABEL
                && let Some(role) = value.as_str().filter(|r| !r.is_empty())
            {
                roles.insert(role);
            }
        }
    }
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |kind: &str| {
        list_at(obj, &["status", "addresses"])
            .iter()
            .find(|a| str_at(a, &["type"]) == kind)
            .map_or("<none>", |a| str_at(a, &["address"]))
    };
    let info = |field: &str| str_or(obj, &["status", "nodeInfo", field], "<unknown>");
    vec![
        name(obj),
        status.join(",").into(),
        roles.into(),
        age(obj, now),
        str_at(obj, &["status", "nodeInfo", "kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

fn event_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let first_seen = match time_at(obj, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(obj, &["eventTime"]), now),
    };
    let mut last_seen = match time_at(obj, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = int_at(obj, &["count"]);
    if let Some(series) = at(obj, &["series"]) {
        last_seen = since(time_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        // Singleton events of the events.k8s.io API have no count.
        count = 1;
    }
    let kind = str_at(obj, &["involvedObject", "kind"]).to_lowercase();
    let target = match str_at(obj, &["involvedObject", "name"]) {
        "" => kind,
        involved => format!("{kind}/{involved}"),
    };
    let component = str_or(
        obj,
        &["source", "component"],
        str_at(obj, &["reportingComponent"]),
    );
    let host = str_or(
        obj,
        &["source", "host"],
        str_at(obj, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        last_seen.into(),
        str_at(obj, &["type"]).into(),
        str_at(obj, &["reason"]).into(),
        target.into(),
        str_at(obj, &["involvedObject", "fieldPath"]).into(),
        source.into(),
        str_at(obj, &["message"]).trim().into(),
        first_seen.into(),
        count.into(),
        name(obj),
    ]
}

fn namespace_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        str_or(obj, &["status", "phase"], "Active").into(),
        age(obj, now),
    ]
}

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        str_or(obj, &["type"], "Opaque").into(),
        map_len(obj, &["data"]).into(),
        age(obj, now),
    ]
}

fn config_map_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let entries = map_len(obj, &["data"]) + map_len(obj, &["binaryData"]);
    vec![name(obj), entries.into(), age(obj, now)]
}

fn service_account_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        list_at(obj, &["secrets"]).len().into(),
        age(obj, now),
    ]
}

const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// helper.GetPersistentVolume(Claim)Class: the beta annotation wins over the field.
fn storage_class(obj: &Value) -> &str {
    match at(
        obj,
        &["metadata", "annotations", BETA_STORAGE_CLASS_ANNOTATION],
    ) {
        Some(class) => class.as_str().unwrap_or(""),
        None => str_at(obj, &["spec", "storageClassName"]),
    }
}

fn persistent_volume_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match at(obj, &["spec", "claimRef"]) {
        Some(claim) => format!(
            "{}/{}",
            str_at(claim, &["namespace"]),
            str_at(claim, &["name"])
        ),
        None => String::new(),
    };
    let phase = if deleting(obj) {
        "Terminating"
    } else {
        str_or(obj, &["status", "phase"], "Pending")
    };
    vec![
        name(obj),
        quantity_at(obj, &["spec", "capacity", "storage"]).into(),
        access_modes(list_at(obj, &["spec", "accessModes"])).into(),
        str_or(obj, &["spec", "persistentVolumeReclaimPolicy"], "Retain").into(),
        phase.into(),
        claim.into(),
        storage_class(obj).into(),
        str_or(obj, &["spec", "volumeAttributesClassName"], "<unset>").into(),
        str_at(obj, &["status", "reason"]).into(),
        age(obj, now),
        str_or(obj, &["spec", "volumeMode"], "Filesystem").into(),
    ]
}

fn persistent_volume_claim_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if deleting(obj) {
        "Terminating"
    } else {
        str_or(obj, &["status", "phase"], "Pending")
    };
    let volume = str_at(obj, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity_at(obj, &["status", "capacity", "storage"]),
            access_modes(list_at(obj, &["status", "accessModes"])),
        )
    };
    vec![
        name(obj),
        phase.into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        storage_class(obj).into(),
        str_or(obj, &["spec", "volumeAttributesClassName"], "<unset>").into(),
        age(obj, now),
        str_or(obj, &["spec", "volumeMode"], "Filesystem").into(),
    ]
}

fn resource_quota_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> = at(obj, &["status", "hard"])
        .and_then(Value::as_object)
        .map(|hard| hard.keys().collect())
        .unwrap_or_default();
    resources.sort();
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    for resource in resources {
        let used = quantity_at(obj, &["status", "used", resource]);
        let hard = quantity_at(obj, &["status", "hard", resource]);
        let text = format!("{resource}: {used}/{hard}");
        let mut pieces = resource.split('.');
        if pieces.next() == Some("limits") && pieces.next().is_some() {
            limits.push(text);
        } else {
            requests.push(text);
        }
    }
    vec![
        name(obj),
        age(obj, now),
        requests.join(", ").into(),
        limits.join(", ").into(),
    ]
}

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] =
        container_cells(list_at(obj, &["spec", "template", "spec", "containers"]));
    let selector = label_selector_string(at(obj, &["spec", "selector"]))
        .unwrap_or_else(|()| "<invalid>".to_string());
    vec![
        name(obj),
        format!(
            "{}/{}",
            int_at(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )
        .into(),
        int_at(obj, &["status", "updatedReplicas"]).into(),
        int_at(obj, &["status", "availableReplicas"]).into(),
        age(obj, now),
        names,
        images,
        selector.into(),
    ]
}

fn replica_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] =
        container_cells(list_at(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        desired_replicas(obj).into(),
        int_at(obj, &["status", "replicas"]).into(),
        int_at(obj, &["status", "readyReplicas"]).into(),
        age(obj, now),
        names,
        images,
        format_label_selector(at(obj, &["spec", "selector"])).into(),
    ]
}

fn daemon_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] =
        container_cells(list_at(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        int_at(obj, &["status", "desiredNumberScheduled"]).into(),
        int_at(obj, &["status", "currentNumberScheduled"]).into(),
        int_at(obj, &["status", "numberReady"]).into(),
        int_at(obj, &["status", "updatedNumberScheduled"]).into(),
        int_at(obj, &["status", "numberAvailable"]).into(),
        format_labels(at(obj, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(obj, now),
        names,
        images,
        format_label_selector(at(obj, &["spec", "selector"])).into(),
    ]
}

fn stateful_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] =
        container_cells(list_at(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        format!(
            "{}/{}",
            int_at(obj, &["status", "readyReplicas"]),
            desired_replicas(obj)
        )
        .into(),
        age(obj, now),
        names,
        images,
    ]
}

fn controller_revision_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = list_at(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| bool_at(r, &["controller"]) == Some(true))
        .map_or_else(
            || "<none>".to_string(),
            |r| {
                let api_version = str_at(r, &["apiVersion"]);
                let group = api_version.split_once('/').map_or("", |(g, _)| g);
                let kind = str_at(r, &["kind"]);
                let name = str_at(r, &["name"]);
                match (group, kind) {
                    ("", "") => name.to_string(),
                    ("", kind) => format!("{}/{name}", kind.to_lowercase()),
                    (group, kind) => format!("{}/{name}", format!("{kind}.{group}").to_lowercase()),
                }
            },
        );
    vec![
        name(obj),
        controller.into(),
        int_at(obj, &["revision"]).into(),
        age(obj, now),
    ]
}

fn job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(obj, &["status", "succeeded"]);
    let completions = match opt_int_at(obj, &["spec", "completions"]) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match int_at(obj, &["spec", "parallelism"]) {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = time_at(obj, &["status", "startTime"]);
    let completion = time_at(obj, &["status", "completionTime"]);
    let duration = match (start, completion) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration_signed(now.duration_since(start)),
        (Some(start), Some(completion)) => human_duration_signed(completion.duration_since(start)),
    };
    let condition = |kind: &str| condition_status(obj, kind) == Some("True");
    let status = if condition("Complete") {
        "Complete"
    } else if condition("Failed") {
        "Failed"
    } else if deleting(obj) {
        "Terminating"
    } else if condition("Suspended") {
        "Suspended"
    } else if condition("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [names, images] =
        container_cells(list_at(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        status.into(),
        completions.into(),
        duration.into(),
        age(obj, now),
        names,
        images,
        format_label_selector(at(obj, &["spec", "selector"])).into(),
    ]
}

fn cron_job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match at(obj, &["status", "lastScheduleTime"]) {
        Some(_) => since(time_at(obj, &["status", "lastScheduleTime"]), now),
        None => "<none>".to_string(),
    };
    // printBoolPtr over a field defaulting fills in with false.
    let suspend = match bool_at(obj, &["spec", "suspend"]) {
        Some(true) => "True",
        _ => "False",
    };
    let job_spec = at(obj, &["spec", "jobTemplate", "spec"]).unwrap_or(&Value::Null);
    let [names, images] = container_cells(list_at(job_spec, &["template", "spec", "containers"]));
    vec![
        name(obj),
        str_at(obj, &["spec", "schedule"]).into(),
        str_or(obj, &["spec", "timeZone"], "<none>").into(),
        suspend.into(),
        list_at(obj, &["status", "active"]).len().into(),
        last_schedule.into(),
        age(obj, now),
        names,
        images,
        format_label_selector(at(job_spec, &["selector"])).into(),
    ]
}

fn lease_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        str_at(obj, &["spec", "holderIdentity"]).into(),
        age(obj, now),
    ]
}

fn endpoint_slice_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let ports_list = list_at(obj, &["ports"]);
    let ports: Vec<String> = ports_list
        .iter()
        .take(MAX)
        .map(
            |port| match (opt_int_at(port, &["port"]), at(port, &["name"])) {
                (Some(number), _) => number.to_string(),
                (None, Some(name)) => name.as_str().unwrap_or("").to_string(),
                (None, None) => "*".to_string(),
            },
        )
        .collect();
    let ports = list_with_more(&ports, ports_list.len() > MAX, ports_list.len(), MAX);
    let addresses: Vec<&str> = list_at(obj, &["endpoints"])
        .iter()
        .flat_map(|e| list_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or(""))
        .collect();
    let shown: Vec<String> = addresses.iter().take(MAX).map(|a| a.to_string()).collect();
    let endpoints = list_with_more(&shown, addresses.len() > MAX, addresses.len(), MAX);
    vec![
        name(obj),
        str_at(obj, &["addressType"]).into(),
        ports.into(),
        endpoints.into(),
        age(obj, now),
    ]
}

/// The default table convertor: name, creation time as RFC 3339 in UTC.
fn default_cells(obj: &Value) -> Vec<Value> {
    let created = time_at(obj, &["metadata", "creationTimestamp"]).map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    vec![name(obj), created.into()]
}

// ---------------------------------------------------------------------------------------
// Custom resources (apiextensions-apiserver registry/customresource/tableconvertor)
// ---------------------------------------------------------------------------------------

/// One `additionalPrinterColumns` entry.
struct PrinterColumn {
    name: String,
    ty: String,
    format: String,
    description: String,
    priority: i64,
    json_path: String,
}

/// The printer columns, or the apiserver's default when there are none.
fn crd_columns(printer_columns: &[Value]) -> Vec<PrinterColumn> {
    if printer_columns.is_empty() {
        return vec![PrinterColumn {
            name: "Age".to_string(),
            ty: "date".to_string(),
            format: String::new(),
            description: OBJECT_META_CREATION_TIMESTAMP.to_string(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".to_string(),
        }];
    }
    printer_columns
        .iter()
        .map(|c| PrinterColumn {
            name: str_at(c, &["name"]).to_string(),
            ty: str_at(c, &["type"]).to_string(),
            format: str_at(c, &["format"]).to_string(),
            description: str_at(c, &["description"]).to_string(),
            priority: int_at(c, &["priority"]),
            json_path: str_at(c, &["jsonPath"]).to_string(),
        })
        .collect()
}

/// tableconvertor `cellForJSONValue` (and the JSONPath printer for `string` columns).
fn crd_cell(ty: &str, value: &Value, now: Timestamp) -> Value {
    match ty {
        "string" => Value::String(jsonpath_text(value)),
        _ if value.is_null() => Value::Null,
        "integer" => match value {
            Value::Number(_) => as_int(value).map_or(Value::Null, Value::from),
            _ => Value::Null,
        },
        "number" => value.as_f64().map_or(Value::Null, Value::from),
        "boolean" => value.as_bool().map_or(Value::Null, Value::from),
        "date" => match value.as_str() {
            Some("" | "null") => "<unknown>".into(),
            Some(s) => match s.parse::<Timestamp>() {
                // Go's zero time, like no time, is "<unknown>".
                Ok(_) => since(parse_time(s), now).into(),
                Err(_) => "<invalid>".into(),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// What kubectl's JSONPath printer writes for one value: maps and lists as compact JSON
/// (Go's `encoding/json`), strings as they are, numbers and booleans as Go's `fmt` does.
fn jsonpath_text(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => go_format_float(n.as_f64().unwrap_or(0.0)),
        },
        Value::Array(_) | Value::Object(_) => {
            let mut out = String::new();
            go_json(value, &mut out);
            out
        }
    }
}

/// The shortest decimal digits that round-trip `f` and the decimal exponent of the first
/// digit (`f = 0.d1d2... × 10^(exp + 1)`), as Go's `strconv` with precision -1 finds them.
fn shortest_digits(f: f64) -> (String, i32) {
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse().unwrap_or(0))
}

fn go_exponent_form(digits: &str, exp: i32, pad_negative: bool) -> String {
    let (first, rest) = digits.split_at_checked(1).unwrap_or(("0", ""));
    let mut out = first.to_string();
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    let sign = if exp < 0 { '-' } else { '+' };
    if exp < 0 && !pad_negative {
        let _ = write!(out, "e{sign}{}", exp.unsigned_abs());
    } else {
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    }
    out
}

fn go_decimal_form(digits: &str, exp: i32) -> String {
    let point = i64::from(exp) + 1;
    let len = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    if point <= 0 {
        let zeros = usize::try_from(-point).unwrap_or(0);
        format!("0.{}{digits}", "0".repeat(zeros))
    } else if point >= len {
        let zeros = usize::try_from(point - len).unwrap_or(0);
        format!("{digits}{}", "0".repeat(zeros))
    } else {
        let split = usize::try_from(point).unwrap_or(0);
        let (whole, fraction) = digits.split_at_checked(split).unwrap_or((digits, ""));
        format!("{whole}.{fraction}")
    }
}

/// Go's text for NaN and infinities (which JSON cannot carry, so never met in practice).
fn go_non_finite(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f > 0.0 {
        "+Inf".to_string()
    } else {
        "-Inf".to_string()
    }
}

/// Go's `fmt.Sprint(float64)` (`%v`: the shortest `%g`, in exponent form below 1e-4 and
/// from 1e6 on).
fn go_format_float(f: f64) -> String {
    if !f.is_finite() {
        return go_non_finite(f);
    }
    let (digits, exp) = shortest_digits(f);
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let body = if !(-4..6).contains(&exp) {
        go_exponent_form(&digits, exp, true)
    } else {
        go_decimal_form(&digits, exp)
    };
    format!("{sign}{body}")
}

/// Go's `encoding/json` form of a float64.
fn go_json_float(f: f64) -> String {
    if !f.is_finite() {
        return go_non_finite(f);
    }
    let (digits, exp) = shortest_digits(f);
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let abs = f.abs();
    let body = if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        go_exponent_form(&digits, exp, false)
    } else {
        go_decimal_form(&digits, exp)
    };
    format!("{sign}{body}")
}

/// Go's `json.Marshal` of decoded JSON: keys sorted, no spaces, HTML-safe escaping.
fn go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => out.push_str(&go_json_float(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(key, out);
                out.push(':');
                go_json(item, out);
            }
            out.push('}');
        }
    }
}

fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The subset of Kubernetes' JSONPath (`k8s.io/client-go/util/jsonpath`) that printer
/// columns use, evaluated with missing keys allowed: `.a.b`, `.a\.b` (escaped dot),
/// `['a']` (re-read as `.a`, so dots in it still split, as in Kubernetes), `[0]`, `[-1]`,
/// `[1:3]`, `[*]`, `.*`, `[0,2]`, `..name`, and filters `[?(@.type=="Ready")]` with
/// `== != < > <= >=` or bare `[?(@.x)]` (exists).
mod jsonpath {
    use serde_json::Value;

    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Step {
        Field(String),
        Wildcard,
        Recursive,
        Slice {
            start: Option<i64>,
            end: Option<i64>,
            end_derived: bool,
            step: Option<i64>,
        },
        Union(Vec<Vec<Step>>),
        Filter {
            left: Operand,
            op: String,
            right: Option<Operand>,
        },
    }

    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Operand {
        Path(Vec<Step>),
        Literal(Value),
    }

    /// The first value `path` finds in `root`; `None` when it finds none, or is invalid.
    pub(super) fn first<'a>(path: &str, root: &'a Value) -> Option<&'a Value> {
        let steps = parse(path).ok()?;
        let found = eval(&steps, vec![root]).ok()?;
        found.into_iter().next()
    }

    fn is_terminator(c: char) -> bool {
        c.is_whitespace() || matches!(c, '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}')
    }

    pub(super) fn parse(path: &str) -> Result<Vec<Step>, ()> {
        let chars: Vec<char> = path.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let rest = &chars[i..];
            if rest.starts_with(&['[', '?', '(']) {
                i = parse_filter(&chars, i, &mut steps)?;
            } else if rest.starts_with(&['.', '.']) {
                if steps.last() == Some(&Step::Recursive) {
                    return Err(());
                }
                steps.push(Step::Recursive);
                i += 2;
                if chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    i = parse_field(&chars, i, &mut steps);
                }
            } else {
                match rest[0] {
                    c if c.is_whitespace() => i += 1,
                    '@' | '$' => i += 1,
                    '.' => i = parse_field(&chars, i + 1, &mut steps),
                    '[' => i = parse_array(&chars, i, &mut steps)?,
                    _ => return Err(()),
                }
            }
        }
        Ok(steps)
    }

    /// A field name up to the next unescaped terminator; backslashes are dropped.
    fn parse_field(chars: &[char], mut i: usize, steps: &mut Vec<Step>) -> usize {
        let mut raw = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                raw.push(c);
                if let Some(next) = chars.get(i + 1) {
                    raw.push(*next);
                }
                i += 2;
                continue;
            }
            if is_terminator(c) {
                break;
            }
            raw.push(c);
            i += 1;
        }
        let field = raw.replace('\\', "");
        steps.push(if field == "*" {
            Step::Wildcard
        } else {
            Step::Field(field)
        });
        i
    }

    fn parse_array(chars: &[char], start: usize, steps: &mut Vec<Step>) -> Result<usize, ()> {
        let close = (start..chars.len()).find(|&j| chars[j] == ']').ok_or(())?;
        let mut text: String = chars[start + 1..close].iter().collect();
        if text == "*" {
            text = ":".to_string();
        }
        let parts: Vec<&str> = text.split(',').collect();
        if parts.len() > 1 {
            let union = parts
                .iter()
                .map(|part| parse(&format!("[{}]", part.trim_matches(' '))))
                .collect::<Result<Vec<_>, _>>()?;
            steps.push(Step::Union(union));
            return Ok(close + 1);
        }
        let quoted = |q: char| {
            text.strip_prefix(q)
                .and_then(|t| t.strip_suffix(q))
                .filter(|t| !t.contains(q))
        };
        if let Some(key) = quoted('\'').or_else(|| quoted('"')) {
            steps.extend(parse(&format!(".{key}"))?);
            return Ok(close + 1);
        }
        steps.push(parse_slice(&text)?);
        Ok(close + 1)
    }

    /// `^(-?\d*)(:-?\d*)?(:-?\d*)?$`, with the Kubernetes meaning of each part.
    fn parse_slice(text: &str) -> Result<Step, ()> {
        let mut parts = text.splitn(3, ':');
        let number = |s: &str| -> Result<Option<i64>, ()> {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(());
            }
            if digits.is_empty() {
                return if s.is_empty() { Ok(None) } else { Err(()) };
            }
            s.parse().map(Some).map_err(|_| ())
        };
        let start = number(parts.next().unwrap_or(""))?;
        let (end, end_derived) = match parts.next() {
            Some(end) => (number(end)?, false),
            None => (Some(start.unwrap_or(0).saturating_add(1)), true),
        };
        let step = match parts.next() {
            Some(step) => number(step)?,
            None => None,
        };
        Ok(Step::Slice {
            start,
            end,
            end_derived,
            step,
        })
    }

    fn parse_filter(chars: &[char], start: usize, steps: &mut Vec<Step>) -> Result<usize, ()> {
        let body_start = start + 3;
        let mut i = body_start;
        let mut begin = false;
        let mut end = false;
        let mut pair = '"';
        loop {
            let c = *chars.get(i).ok_or(())?;
            i += 1;
            match c {
                '\n' => return Err(()),
                '"' | '\'' if !begin => {
                    begin = true;
                    pair = c;
                }
                '"' | '\'' if c == pair && chars.get(i.wrapping_sub(2)) != Some(&'\\') => {
                    end = true;
                }
                ')' if begin == end => break,
                _ => {}
            }
        }
        if chars.get(i) != Some(&']') {
            return Err(());
        }
        let text: String = chars[body_start..i - 1].iter().collect();
        let op_start = text.find(['!', '<', '>', '=']);
        let step = match op_start {
            Some(op_start) if op_start > 0 => {
                let op_len = text[op_start..]
                    .find(|c: char| !matches!(c, '!' | '<' | '>' | '='))
                    .ok_or(())?;
                let op = &text[op_start..op_start + op_len];
                let right = &text[op_start + op_len..];
                Step::Filter {
                    left: parse_operand(&text[..op_start])?,
                    op: op.to_string(),
                    right: Some(parse_operand(right)?),
                }
            }
            _ => Step::Filter {
                left: parse_operand(&text)?,
                op: "exists".to_string(),
                right: None,
            },
        };
        steps.push(step);
        Ok(i + 1)
    }

    fn parse_operand(text: &str) -> Result<Operand, ()> {
        let text = text.trim();
        if let Some(quote) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let inner = text
                .strip_prefix(quote)
                .and_then(|t| t.strip_suffix(quote))
                .ok_or(())?;
            let unescaped = inner.replace(&format!("\\{quote}"), &quote.to_string());
            return Ok(Operand::Literal(Value::String(
                unescaped.replace("\\\\", "\\"),
            )));
        }
        match text {
            "true" => return Ok(Operand::Literal(Value::Bool(true))),
            "false" => return Ok(Operand::Literal(Value::Bool(false))),
            _ => {}
        }
        if text.starts_with(|c: char| c == '-' || c == '+' || c.is_ascii_digit()) {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Operand::Literal(Value::from(i)));
            }
            let f: f64 = text.parse().map_err(|_| ())?;
            return Ok(Operand::Literal(Value::from(f)));
        }
        Ok(Operand::Path(parse(text)?))
    }

    /// The values `steps` lead to from `cur` (literals of filters only ever compare, so the
    /// results borrow from the input alone).
    pub(super) fn eval<'v>(steps: &[Step], mut cur: Vec<&'v Value>) -> Result<Vec<&'v Value>, ()> {
        for step in steps {
            cur = eval_step(step, cur)?;
        }
        Ok(cur)
    }

    fn eval_step<'v>(step: &Step, input: Vec<&'v Value>) -> Result<Vec<&'v Value>, ()> {
        let mut out = Vec::new();
        match step {
            Step::Field(name) if name.is_empty() => return Ok(input),
            Step::Field(name) => {
                for value in input {
                    if let Some(found) = value.as_object().and_then(|m| m.get(name)) {
                        out.push(found);
                    }
                }
            }
            Step::Wildcard => {
                for value in input {
                    match value {
                        Value::Object(map) => out.extend(map.values()),
                        Value::Array(items) => out.extend(items.iter()),
                        _ => {}
                    }
                }
            }
            Step::Recursive => {
                for value in input {
                    descend(value, &mut out);
                }
            }
            Step::Slice {
                start,
                end,
                end_derived,
                step,
            } => {
                for value in input {
                    if value.is_null() {
                        continue;
                    }
                    let items = value.as_array().ok_or(())?;
                    let len = i64::try_from(items.len()).map_err(|_| ())?;
                    let mut from = start.unwrap_or(0);
                    if from < 0 {
                        from += len;
                    }
                    let mut to = end.unwrap_or(len);
                    if to < 0 || (to == 0 && *end_derived) {
                        to += len;
                    }
                    if to == from {
                        return Ok(out);
                    }
                    if from < 0 || from >= len || to < 0 || to > len || from > to {
                        return Err(());
                    }
                    let stride = match step {
                        Some(s) if *s <= 0 => return Err(()),
                        Some(s) => usize::try_from(*s).map_err(|_| ())?,
                        None => 1,
                    };
                    let from = usize::try_from(from).map_err(|_| ())?;
                    let to = usize::try_from(to).map_err(|_| ())?;
                    out.extend(items[from..to].iter().step_by(stride));
                }
            }
            Step::Union(paths) => {
                for path in paths {
                    out.extend(eval(path, input.clone())?);
                }
            }
            Step::Filter { left, op, right } => {
                for value in input {
                    let items = value.as_array().ok_or(())?;
                    for item in items {
                        if filter_passes(item, left, op, right.as_ref())? {
                            out.push(item);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every value below `value` that has children, `value` first (Kubernetes leaves out
    /// scalars, which no later field step could match anyway).
    fn descend<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
        let children: Vec<&Value> = match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                entries.into_iter().map(|(_, v)| v).collect()
            }
            Value::Array(items) => items.iter().collect(),
            _ => Vec::new(),
        };
        if children.is_empty() {
            return;
        }
        out.push(value);
        for child in children {
            descend(child, out);
        }
    }

    fn operand_values<'a>(operand: &'a Operand, item: &'a Value) -> Result<Vec<&'a Value>, ()> {
        match operand {
            Operand::Literal(value) => Ok(vec![value]),
            Operand::Path(steps) => eval(steps, vec![item]),
        }
    }

    fn filter_passes(
        item: &Value,
        left: &Operand,
        op: &str,
        right: Option<&Operand>,
    ) -> Result<bool, ()> {
        let lefts = operand_values(left, item);
        if op == "exists" {
            return Ok(lefts.is_ok_and(|l| !l.is_empty()));
        }
        let lefts = lefts?;
        let left = match lefts.as_slice() {
            [] => return Ok(false),
            [one] => *one,
            _ => return Err(()),
        };
        let rights = operand_values(right.ok_or(())?, item)?;
        let right = match rights.as_slice() {
            [] => return Ok(false),
            [one] => *one,
            _ => return Err(()),
        };
        compare(left, op, right)
    }

    /// Go text/template's `eq`/`lt`/...: values of different basic kinds do not compare.
    fn compare(left: &Value, op: &str, right: &Value) -> Result<bool, ()> {
        use std::cmp::Ordering;
        let ordering: Option<Ordering> = match (left, right) {
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => {
                if !matches!(op, "==" | "!=") {
                    return Err(());
                }
                Some(a.cmp(b))
            }
            (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                (None, None) => a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(a, b)| a.partial_cmp(&b)),
                _ => return Err(()),
            },
            (Value::Null, _) | (_, Value::Null) => {
                return match op {
                    "==" => Ok(left == right),
                    "!=" => Ok(left != right),
                    _ => Err(()),
                };
            }
            _ => return Err(()),
        };
        let Some(ordering) = ordering else {
            return Ok(op == "!=");
        };
        match op {
            "==" => Ok(ordering == Ordering::Equal),
            "!=" => Ok(ordering != Ordering::Equal),
            "<" => Ok(ordering == Ordering::Less),
            ">" => Ok(ordering == Ordering::Greater),
            "<=" => Ok(ordering != Ordering::Greater),
            ">=" => Ok(ordering != Ordering::Less),
            _ => Err(()),
        }
    }
}

/// Column descriptions: the API documentation of the fields the columns show (Kubernetes
/// 1.33), as the printers take them from the types' `SwaggerDoc()`.
mod docs {
    pub(super) const OBJECT_META_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
    pub(super) const OBJECT_META_CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
    pub(super) const POD_STATUS_POD_IP: &str = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
    pub(super) const POD_SPEC_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
    pub(super) const POD_STATUS_NOMINATED_NODE_NAME: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
    pub(super) const POD_SPEC_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
    pub(super) const POD_SPEC_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
    pub(super) const RC_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
    pub(super) const RC_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub(super) const RC_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
    pub(super) const RC_STATUS_READY_REPLICAS: &str =
        "The number of ready replicas for this replication controller.";
    pub(super) const RS_SPEC_REPLICAS: &str = "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
    pub(super) const RS_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub(super) const RS_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
    pub(super) const RS_STATUS_READY_REPLICAS: &str =
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.";
    pub(super) const DS_STATUS_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
    pub(super) const DS_STATUS_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
    pub(super) const DS_STATUS_READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
    pub(super) const DS_STATUS_UPDATED: &str =
        "The total number of nodes that are running updated daemon pod";
    pub(super) const DS_STATUS_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
    pub(super) const DS_SPEC_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub(super) const DEPLOY_STATUS_UPDATED: &str = "Total number of non-terminating pods targeted by this deployment that have the desired template spec.";
    pub(super) const DEPLOY_STATUS_AVAILABLE: &str = "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.";
    pub(super) const DEPLOY_SPEC_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";
    pub(super) const CONTROLLER_REVISION_REVISION: &str =
        "Revision indicates the revision of the state represented by Data.";
    pub(super) const JOB_STATUS_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
    pub(super) const JOB_SPEC_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
    pub(super) const CRONJOB_SPEC_SCHEDULE: &str =
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
    pub(super) const CRONJOB_SPEC_TIME_ZONE: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
    pub(super) const CRONJOB_SPEC_SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
    pub(super) const CRONJOB_STATUS_ACTIVE: &str = "A list of pointers to currently running jobs.";
    pub(super) const CRONJOB_STATUS_LAST_SCHEDULE: &str =
        "Information when was the last time the job was successfully scheduled.";
    pub(super) const SERVICE_SPEC_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
    pub(super) const SERVICE_SPEC_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
    pub(super) const SERVICE_SPEC_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
    pub(super) const SERVICE_SPEC_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
    pub(super) const SERVICE_SPEC_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";
    pub(super) const ENDPOINTS_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";
    pub(super) const NODE_INFO_KUBELET_VERSION: &str = "Kubelet Version reported by the node.";
    pub(super) const NODE_STATUS_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
    pub(super) const NODE_INFO_OS_IMAGE: &str =
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
    pub(super) const NODE_INFO_KERNEL_VERSION: &str =
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
    pub(super) const NODE_INFO_CONTAINER_RUNTIME: &str = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
    pub(super) const EVENT_LAST_TIMESTAMP: &str =
        "The time at which the most recent occurrence of this event was recorded.";
    pub(super) const EVENT_TYPE: &str =
        "Type of this event (Normal, Warning), new types could be added in the future";
    pub(super) const EVENT_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
    pub(super) const EVENT_INVOLVED_OBJECT: &str = "The object that this event is about.";
    pub(super) const OBJECT_REFERENCE_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
    pub(super) const EVENT_SOURCE: &str =
        "The component reporting this event. Should be a short machine understandable string.";
    pub(super) const EVENT_MESSAGE: &str =
        "A human-readable description of the status of this operation.";
    pub(super) const EVENT_FIRST_TIMESTAMP: &str =
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
    pub(super) const EVENT_COUNT: &str = "The number of times this event has occurred.";
    pub(super) const SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
    pub(super) const SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
    pub(super) const CONFIG_MAP_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
    pub(super) const SERVICE_ACCOUNT_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret";
    pub(super) const PV_SPEC_CAPACITY: &str = "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity";
    pub(super) const PV_SPEC_ACCESS_MODES: &str = "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes";
    pub(super) const PV_SPEC_RECLAIM_POLICY: &str = "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming";
    pub(super) const PV_STATUS_PHASE: &str = "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase";
    pub(super) const PV_SPEC_CLAIM_REF: &str = "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding";
    pub(super) const PV_STATUS_REASON: &str = "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.";
    pub(super) const PV_SPEC_VOLUME_MODE: &str = "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.";
    pub(super) const PVC_STATUS_PHASE: &str =
        "phase represents the current phase of PersistentVolumeClaim.";
    pub(super) const PVC_SPEC_VOLUME_NAME: &str =
        "volumeName is the binding reference to the PersistentVolume backing this claim.";
    pub(super) const PVC_STATUS_CAPACITY: &str =
        "capacity represents the actual resources of the underlying volume.";
    pub(super) const PVC_STATUS_ACCESS_MODES: &str = "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1";
    pub(super) const PVC_SPEC_VOLUME_MODE: &str = "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.";
    pub(super) const LEASE_SPEC_HOLDER_IDENTITY: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
    pub(super) const ENDPOINT_SLICE_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.";
    pub(super) const ENDPOINT_SLICE_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.";
    pub(super) const ENDPOINT_SLICE_ENDPOINTS: &str = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    /// The RFC 3339 time `secs` seconds before [`now`].
    fn ago(secs: i64) -> String {
        now()
            .checked_sub(SignedDuration::from_secs(secs))
            .unwrap()
            .to_string()
    }

    const MINUTE: i64 = 60;
    const HOUR: i64 = 3600;
    const DAY: i64 = 86400;

    fn cells(group: &str, kind: &str, obj: Value) -> Value {
        let cells = row_cells(group, kind, &obj, now());
        assert_eq!(
            cells.len(),
            column_definitions(group, kind).len(),
            "one cell per column for {group}/{kind}"
        );
        Value::Array(cells)
    }

    fn column_names(group: &str, kind: &str) -> Vec<(String, i64)> {
        column_definitions(group, kind)
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["priority"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    fn names(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    // ---- durations -----------------------------------------------------------------

    #[test]
    fn human_duration_matches_apimachinery() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (599, "9m59s"),
            (600, "10m"),
            (15 * 60 + 59, "15m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60 + 9, "3h5m"),
            (7 * 3600 + 59 * 60, "7h59m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (7 * 86400 + 23 * 3600, "7d23h"),
            (8 * 86400 + 5 * 3600, "8d"),
            (45 * 86400, "45d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (775 * 86400, "2y45d"),
            (8 * 365 * 86400 + 100 * 86400, "8y"),
            (20 * 365 * 86400, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(*secs)), *want, "{secs}s");
        }
        // Sub-second parts are truncated.
        assert_eq!(human_duration(Duration::from_millis(1999)), "1s");
    }

    #[test]
    fn human_duration_tolerates_small_clock_skew_only() {
        assert_eq!(
            human_duration_signed(SignedDuration::from_millis(-1500)),
            "0s"
        );
        assert_eq!(human_duration_signed(SignedDuration::from_secs(-1)), "0s");
        assert_eq!(
            human_duration_signed(SignedDuration::from_secs(-2)),
            "<invalid>"
        );
        assert_eq!(human_duration_signed(SignedDuration::from_secs(90)), "90s");
    }

    #[test]
    fn short_human_duration_matches_apimachinery() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3599, "59m"),
            (3600, "1h"),
            (86399, "23h"),
            (86400, "1d"),
            (364 * 86400, "364d"),
            (365 * 86400, "1y"),
            (800 * 86400, "2y"),
        ];
        for (secs, want) in cases {
            assert_eq!(short_human_duration(Duration::from_secs(*secs)), *want);
        }
    }

    #[test]
    fn age_is_unknown_without_a_usable_timestamp() {
        let obj = |ts: Value| json!({"metadata": {"name": "x", "creationTimestamp": ts}});
        assert_eq!(age(&obj(json!(ago(300))), now()), json!("5m"));
        assert_eq!(age(&obj(json!(null)), now()), json!("<unknown>"));
        assert_eq!(age(&obj(json!("yesterday")), now()), json!("<unknown>"));
        assert_eq!(age(&obj(json!(12345)), now()), json!("<unknown>"));
        assert_eq!(
            age(&obj(json!("0001-01-01T00:00:00Z")), now()),
            json!("<unknown>")
        );
        assert_eq!(age(&json!({}), now()), json!("<unknown>"));
        // An offset is honoured.
        assert_eq!(
            age(&obj(json!("2024-05-01T13:00:00+02:00")), now()),
            json!("60m")
        );
    }

    // ---- Pods ------------------------------------------------------------------------

    fn running_pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "nginx-7c79c4bf97-8x2kq",
                "namespace": "default",
                "uid": "0f0b7a3e-5b1c-4b87-9d0e-2f6f6a1c1a11",
                "resourceVersion": "48211",
                "creationTimestamp": ago(5 * DAY),
                "labels": {"app": "nginx", "pod-template-hash": "7c79c4bf97"},
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "nginx-7c79c4bf97",
                    "uid": "6d8f0c1e-7a55-4e1b-a0f2-8c1f4f3f1b22", "controller": true,
                    "blockOwnerDeletion": true
                }]
            },
            "spec": {
                "nodeName": "worker-1",
                "containers": [{"name": "nginx", "image": "nginx:1.25",
                                "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler"
            },
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "PodReadyToStartContainers", "status": "True"},
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "ContainersReady", "status": "True"},
                    {"type": "PodScheduled", "status": "True"}
                ],
                "hostIP": "192.168.1.21",
                "hostIPs": [{"ip": "192.168.1.21"}],
                "podIP": "10.244.1.5",
                "podIPs": [{"ip": "10.244.1.5"}],
                "startTime": ago(5 * DAY),
                "containerStatuses": [{
                    "name": "nginx", "ready": true, "restartCount": 0, "started": true,
                    "image": "docker.io/library/nginx:1.25",
                    "imageID": "docker.io/library/nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
                    "containerID": "containerd://4b5c1f0e",
                    "state": {"running": {"startedAt": ago(5 * DAY - 4)}},
                    "lastState": {}
                }],
                "qosClass": "BestEffort"
            }
        })
    }

    #[test]
    fn pod_running() {
        assert_eq!(
            cells("", "Pod", running_pod()),
            json!([
                "nginx-7c79c4bf97-8x2kq",
                "1/1",
                "Running",
                "0",
                "5d",
                "10.244.1.5",
                "worker-1",
                "<none>",
                "<none>"
            ])
        );
        assert!(row_conditions("", "Pod", &running_pod()).is_empty());
    }

    #[test]
    fn pod_crash_loop_back_off_with_last_restart() {
        let pod = json!({
            "metadata": {"name": "api-5f9d8b7c6-q2w3e", "creationTimestamp": ago(20 * MINUTE)},
            "spec": {"nodeName": "worker-2", "containers": [
                {"name": "api", "image": "example/api:2.3.1"},
                {"name": "envoy", "image": "envoyproxy/envoy:v1.29.1"}
            ]},
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": "10.244.2.17"}, {"ip": "fd00:10:244:2::11"}],
                "nominatedNodeName": "",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [
                    {"name": "api", "ready": false, "restartCount": 5, "started": false,
                     "state": {"waiting": {"reason": "CrashLoopBackOff",
                                           "message": "back-off 2m40s restarting failed container=api"}},
                     "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                  "startedAt": ago(155), "finishedAt": ago(150)}}},
                    {"name": "envoy", "ready": true, "restartCount": 0, "started": true,
                     "state": {"running": {"startedAt": ago(20 * MINUTE)}}, "lastState": {}}
                ]
            }
        });
        assert_eq!(
            cells("", "Pod", pod),
            json!([
                "api-5f9d8b7c6-q2w3e",
                "1/2",
                "CrashLoopBackOff",
                "5 (2m30s ago)",
                "20m",
                "10.244.2.17",
                "worker-2",
                "<none>",
                "<none>"
            ])
        );
    }

    #[test]
    fn pod_completed_and_failed_carry_row_conditions() {
        let pod = json!({
            "metadata": {"name": "pi-x7k2p", "creationTimestamp": ago(2 * HOUR)},
            "spec": {"nodeName": "worker-1", "restartPolicy": "Never",
                     "containers": [{"name": "pi", "image": "perl:5.34.0"}]},
            "status": {
                "phase": "Succeeded",
                "podIP": "10.244.1.9",
                "podIPs": [{"ip": "10.244.1.9"}],
                "containerStatuses": [{"name": "pi", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                             "startedAt": ago(2 * HOUR), "finishedAt": ago(2 * HOUR - 12)}}}]
            }
        });
        assert_eq!(
            cells("", "Pod", pod.clone()),
            json!([
                "pi-x7k2p",
                "0/1",
                "Completed",
                "0",
                "120m",
                "10.244.1.9",
                "worker-1",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(
            row_conditions("", "Pod", &pod),
            vec![
                json!({"type": "Completed", "status": "True", "reason": "Succeeded",
                        "message": "The pod has completed successfully."})
            ]
        );
        let failed = json!({"status": {"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory."}});
        assert_eq!(cells("", "Pod", failed.clone())[2], json!("Evicted"));
        assert_eq!(
            row_conditions("", "Pod", &failed),
            vec![
                json!({"type": "Completed", "status": "True", "reason": "Failed",
                        "message": "The pod failed."})
            ]
        );
        assert!(row_conditions("apps", "Deployment", &failed).is_empty());
    }

    #[test]
    fn pod_container_creating_and_pending() {
        let creating = json!({
            "metadata": {"name": "redis-0", "creationTimestamp": ago(40)},
            "spec": {"nodeName": "worker-3", "containers": [{"name": "redis", "image": "redis:7.2"}]},
            "status": {"phase": "Pending", "hostIP": "192.168.1.23",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "redis", "ready": false, "restartCount": 0,
                    "image": "redis:7.2", "imageID": "",
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        });
        assert_eq!(
            cells("", "Pod", creating),
            json!([
                "redis-0",
                "0/1",
                "ContainerCreating",
                "0",
                "40s",
                "<none>",
                "worker-3",
                "<none>",
                "<none>"
            ])
        );
        let unschedulable = json!({
            "metadata": {"name": "big-job-abcde", "creationTimestamp": ago(3 * MINUTE)},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": "Pending", "nominatedNodeName": "worker-9",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
        });
        assert_eq!(
            cells("", "Pod", unschedulable),
            json!([
                "big-job-abcde",
                "0/1",
                "Pending",
                "0",
                "3m",
                "<none>",
                "<none>",
                "worker-9",
                "<none>"
            ])
        );
        let gated = json!({
            "metadata": {"name": "gated"},
            "spec": {"schedulingGates": [{"name": "example.com/foo"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
        });
        assert_eq!(cells("", "Pod", gated)[2], json!("SchedulingGated"));
    }

    fn init_pod(init_statuses: Value) -> Value {
        json!({
            "metadata": {"name": "web-0", "creationTimestamp": ago(10 * MINUTE)},
            "spec": {
                "nodeName": "worker-1",
                "initContainers": [{"name": "init-db", "image": "busybox:1.36"},
                                   {"name": "init-cache", "image": "busybox:1.36"}],
                "containers": [{"name": "web", "image": "nginx:1.25"}]
            },
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"}],
                "initContainerStatuses": init_statuses,
                "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "PodInitializing"}}}]
            }
        })
    }

    #[test]
    fn pod_init_container_states() {
        let status_of = |statuses: Value| {
            let cells = cells("", "Pod", init_pod(statuses));
            (cells[1].clone(), cells[2].clone(), cells[3].clone())
        };
        assert_eq!(
            status_of(json!([
                {"name": "init-db", "ready": false, "restartCount": 0, "state": {"running": {"startedAt": ago(60)}}},
                {"name": "init-cache", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
            ])),
            (json!("0/1"), json!("Init:0/2"), json!("0"))
        );
        assert_eq!(
            status_of(json!([
                {"name": "init-db", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(120)}}},
                {"name": "init-cache", "ready": false, "restartCount": 0, "state": {"running": {}}}
            ])),
            (json!("0/1"), json!("Init:1/2"), json!("0"))
        );
        assert_eq!(
            status_of(json!([
                {"name": "init-db", "ready": false, "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(60)}}},
                {"name": "init-cache", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
            ])),
            (
                json!("0/1"),
                json!("Init:CrashLoopBackOff"),
                json!("3 (60s ago)")
            )
        );
        assert_eq!(
            status_of(json!([{"name": "init-db", "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}])),
            (json!("0/1"), json!("Init:Error"), json!("0"))
        );
        assert_eq!(
            status_of(json!([{"name": "init-db", "state": {"terminated": {"exitCode": 2}}}])).1,
            json!("Init:ExitCode:2")
        );
        assert_eq!(
            status_of(json!([{"name": "init-db", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]))
                .1,
            json!("Init:Signal:9")
        );
        // Waiting for the image is reported, PodInitializing is not.
        assert_eq!(
            status_of(
                json!([{"name": "init-db", "state": {"waiting": {"reason": "ErrImagePull"}}}])
            )
            .1,
            json!("Init:ErrImagePull")
        );
    }

    #[test]
    fn pod_with_a_running_sidecar_counts_it() {
        let pod = json!({
            "metadata": {"name": "app-6b9c7d-xyz12", "creationTimestamp": ago(6 * HOUR)},
            "spec": {
                "nodeName": "worker-2",
                "initContainers": [{"name": "istio-proxy", "image": "istio/proxyv2:1.22.0",
                                    "restartPolicy": "Always"}],
                "containers": [{"name": "app", "image": "example/app:1.0"}]
            },
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": "10.244.2.40"}],
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [{"name": "istio-proxy", "ready": true, "started": true,
                    "restartCount": 1, "state": {"running": {"startedAt": ago(3 * HOUR)}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": ago(3 * HOUR)}}}],
                "containerStatuses": [{"name": "app", "ready": true, "started": true, "restartCount": 0,
                    "state": {"running": {"startedAt": ago(6 * HOUR)}}}]
            }
        });
        assert_eq!(
            cells("", "Pod", pod),
            json!([
                "app-6b9c7d-xyz12",
                "2/2",
                "Running",
                "1 (3h ago)",
                "6h",
                "10.244.2.40",
                "worker-2",
                "<none>",
                "<none>"
            ])
        );
    }

    #[test]
    fn pod_terminating_unknown_and_not_ready() {
        let mut pod = running_pod();
        pod["metadata"]["deletionTimestamp"] = json!(ago(5));
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        assert_eq!(cells("", "Pod", pod.clone())[2], json!("Terminating"));
        pod["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells("", "Pod", pod.clone())[2], json!("Unknown"));
        // A terminal pod being deleted keeps its status.
        let mut done = json!({"metadata": {"deletionTimestamp": ago(5)},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        assert_eq!(cells("", "Pod", done.clone())[2], json!("Completed"));
        done["metadata"]["deletionTimestamp"] = Value::Null;
        assert_eq!(cells("", "Pod", done)[2], json!("Completed"));

        // One container completed, another still runs: NotReady unless the pod is Ready.
        let mixed = |ready: &str| {
            json!({
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": ready}],
                    "containerStatuses": [
                        {"name": "a", "ready": true, "state": {"running": {}}},
                        {"name": "b", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                    ]}
            })
        };
        let c = cells("", "Pod", mixed("False"));
        assert_eq!(
            (c[1].clone(), c[2].clone()),
            (json!("1/2"), json!("NotReady"))
        );
        assert_eq!(cells("", "Pod", mixed("True"))[2], json!("Running"));
        // A container that exited without a reason.
        let exited = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 143, "signal": 15}}}]}});
        assert_eq!(cells("", "Pod", exited)[2], json!("Signal:15"));
        let exited = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running",
            "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 3}}}]}});
        assert_eq!(cells("", "Pod", exited)[2], json!("ExitCode:3"));
    }

    #[test]
    fn pod_readiness_gates_and_ip_fallback() {
        let pod = json!({
            "metadata": {"name": "lb-pod"},
            "spec": {"containers": [{"name": "c"}], "readinessGates": [
                {"conditionType": "target-health.elbv2.k8s.aws/k8s-default-web-1a2b3c"},
                {"conditionType": "example.com/feature-1"}
            ]},
            "status": {"phase": "Running", "podIP": "10.0.0.7", "conditions": [
                {"type": "target-health.elbv2.k8s.aws/k8s-default-web-1a2b3c", "status": "True"},
                {"type": "example.com/feature-1", "status": "False"}
            ]}
        });
        let c = cells("", "Pod", pod);
        assert_eq!(c[5], json!("10.0.0.7"));
        assert_eq!(c[8], json!("1/2"));
    }

    #[test]
    fn pod_columns() {
        assert_eq!(
            column_names("", "Pod"),
            names(&[
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ])
        );
        let columns = column_definitions("", "Pod");
        assert_eq!(
            columns[0],
            json!({
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
                "priority": 0
            })
        );
        assert_eq!(columns[3]["type"], json!("string"));
        assert!(
            columns[4]["description"]
                .as_str()
                .unwrap()
                .starts_with("CreationTimestamp is a timestamp representing the server time")
        );
        assert_eq!(columns[5]["format"], json!(""));
        // Keys in Kubernetes' order.
        let keys: Vec<&String> = columns[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "type", "format", "description", "priority"]);
    }

    // ---- Nodes -----------------------------------------------------------------------

    fn node(name: &str, labels: Value, ready: Option<&str>, unschedulable: bool) -> Value {
        let mut conditions = vec![
            json!({"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"}),
            json!({"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"}),
            json!({"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"}),
        ];
        if let Some(ready) = ready {
            conditions.push(json!({"type": "Ready", "status": ready, "reason": "KubeletReady"}));
        }
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "creationTimestamp": "2024-01-01T00:00:00Z", "labels": labels},
            "spec": {"podCIDR": "10.244.0.0/24", "unschedulable": unschedulable},
            "status": {
                "conditions": conditions,
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                              {"type": "Hostname", "address": name}],
                "nodeInfo": {
                    "architecture": "amd64", "bootID": "b1", "machineID": "m1", "systemUUID": "s1",
                    "containerRuntimeVersion": "containerd://1.7.13",
                    "kernelVersion": "5.15.0-105-generic",
                    "kubeProxyVersion": "v1.30.2", "kubeletVersion": "v1.30.2",
                    "operatingSystem": "linux", "osImage": "Ubuntu 22.04.4 LTS"
                }
            }
        })
    }

    #[test]
    fn node_ready_control_plane() {
        let cp = node(
            "cp-1",
            json!({"kubernetes.io/hostname": "cp-1", "kubernetes.io/os": "linux",
                   "node-role.kubernetes.io/control-plane": "",
                   "node.kubernetes.io/exclude-from-external-load-balancers": ""}),
            Some("True"),
            false,
        );
        assert_eq!(
            cells("", "Node", cp),
            json!([
                "cp-1",
                "Ready",
                "control-plane",
                "121d",
                "v1.30.2",
                "192.168.1.10",
                "<none>",
                "Ubuntu 22.04.4 LTS",
                "5.15.0-105-generic",
                "containerd://1.7.13"
            ])
        );
    }

    #[test]
    fn node_status_and_roles() {
        let cordoned = node(
            "worker-1",
            json!({"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "infra",
                   "node-role.kubernetes.io/": "ignored"}),
            Some("True"),
            true,
        );
        let c = cells("", "Node", cordoned);
        assert_eq!(c[1], json!("Ready,SchedulingDisabled"));
        assert_eq!(c[2], json!("infra,worker"));
        let not_ready = node("worker-2", json!({}), Some("Unknown"), false);
        let c = cells("", "Node", not_ready);
        assert_eq!(
            (c[1].clone(), c[2].clone()),
            (json!("NotReady"), json!("<none>"))
        );
        let unknown = node("worker-3", json!(null), None, true);
        assert_eq!(
            cells("", "Node", unknown)[1],
            json!("Unknown,SchedulingDisabled")
        );
        // Wide columns without data.
        let bare = json!({"metadata": {"name": "bare"}, "status": {"addresses": [
            {"type": "ExternalIP", "address": "203.0.113.5"}]}});
        assert_eq!(
            cells("", "Node", bare),
            json!([
                "bare",
                "Unknown",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "203.0.113.5",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ])
        );
        assert_eq!(
            column_names("", "Node"),
            names(&[
                ("Name", 0),
                ("Status", 0),
                ("Roles", 0),
                ("Age", 0),
                ("Version", 0),
                ("Internal-IP", 1),
                ("External-IP", 1),
                ("OS-Image", 1),
                ("Kernel-Version", 1),
                ("Container-Runtime", 1)
            ])
        );
    }

    // ---- Namespaces, Services, Endpoints ---------------------------------------------

    #[test]
    fn namespace() {
        let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(121 * DAY)},
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        assert_eq!(
            cells("", "Namespace", ns),
            json!(["kube-system", "Active", "121d"])
        );
        let gone = json!({"metadata": {"name": "team-a", "creationTimestamp": ago(3 * DAY + 4 * HOUR),
                          "deletionTimestamp": ago(10)}, "status": {"phase": "Terminating"}});
        assert_eq!(
            cells("", "Namespace", gone),
            json!(["team-a", "Terminating", "3d4h"])
        );
        assert_eq!(
            cells("", "Namespace", json!({"metadata": {"name": "new"}}))[1],
            json!("Active")
        );
        assert_eq!(
            column_names("", "Namespace"),
            names(&[("Name", 0), ("Status", 0), ("Age", 0)])
        );
    }

    fn service(spec: Value, status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "svc", "namespace": "default", "creationTimestamp": ago(45 * DAY)},
               "spec": spec, "status": status})
    }

    #[test]
    fn service_cluster_ip_and_node_port() {
        let kubernetes = service(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                   "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                   "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}),
            json!({"loadBalancer": {}}),
        );
        assert_eq!(
            cells("", "Service", kubernetes),
            json!([
                "svc",
                "ClusterIP",
                "10.96.0.1",
                "<none>",
                "443/TCP",
                "45d",
                "<none>"
            ])
        );
        let kube_dns = service(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "selector": {"k8s-app": "kube-dns"},
                   "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                             {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}),
            json!({}),
        );
        assert_eq!(
            cells("", "Service", kube_dns),
            json!([
                "svc",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "53/UDP,53/TCP,9153/TCP",
                "45d",
                "k8s-app=kube-dns"
            ])
        );
        let node_port = service(
            json!({"type": "NodePort", "clusterIP": "10.96.120.7", "clusterIPs": ["10.96.120.7"],
                   "externalIPs": ["198.51.100.7"],
                   "selector": {"tier": "frontend", "app": "web"},
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP", "targetPort": 8080},
                             {"name": "https", "port": 443, "nodePort": 30443, "protocol": "TCP", "targetPort": 8443}]}),
            json!({}),
        );
        assert_eq!(
            cells("", "Service", node_port),
            json!([
                "svc",
                "NodePort",
                "10.96.120.7",
                "198.51.100.7",
                "80:30080/TCP,443:30443/TCP",
                "45d",
                "app=web,tier=frontend"
            ])
        );
        // Headless, and the API defaults for a sparse object.
        let headless = service(
            json!({"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}),
            json!(null),
        );
        assert_eq!(
            cells("", "Service", headless),
            json!([
                "svc",
                "ClusterIP",
                "None",
                "<none>",
                "5432/TCP",
                "45d",
                "app=db"
            ])
        );
    }

    #[test]
    fn service_load_balancer_and_external_name() {
        let pending = service(
            json!({"type": "LoadBalancer", "clusterIP": "10.96.33.4", "clusterIPs": ["10.96.33.4"],
                   "ports": [{"port": 80, "nodePort": 31380, "protocol": "TCP"}]}),
            json!({"loadBalancer": {}}),
        );
        let c = cells("", "Service", pending);
        assert_eq!(c[3], json!("<pending>"));
        assert_eq!(c[4], json!("80:31380/TCP"));
        let ready = service(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.33.4"], "externalIPs": ["198.51.100.9"],
                   "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}),
            json!({"loadBalancer": {"ingress": [
                {"hostname": "a1b2c3-123456789.eu-west-1.elb.amazonaws.com"},
                {"ip": "203.0.113.10", "ipMode": "VIP"},
                {"ip": "203.0.113.10"}
            ]}}),
        );
        assert_eq!(
            cells("", "Service", ready)[3],
            json!("203.0.113.10,a1b2c3-123456789.eu-west-1.elb.amazonaws.com,198.51.100.9")
        );
        let external = service(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
        );
        assert_eq!(
            cells("", "Service", external),
            json!([
                "svc",
                "ExternalName",
                "<none>",
                "db.example.com",
                "<none>",
                "45d",
                "<none>"
            ])
        );
        let odd = service(json!({"type": "Weird"}), json!({}));
        assert_eq!(cells("", "Service", odd)[3], json!("<unknown>"));
        assert_eq!(
            column_names("", "Service"),
            names(&[
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1)
            ])
        );
    }

    #[test]
    fn endpoints() {
        let web = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(2 * DAY)},
            "subsets": [{
                "addresses": [
                    {"ip": "10.244.1.5", "nodeName": "worker-1", "targetRef": {"kind": "Pod", "name": "web-1"}},
                    {"ip": "10.244.1.6"}, {"ip": "10.244.2.3"}, {"ip": "10.244.2.4"}, {"ip": "10.244.3.8"}
                ],
                "notReadyAddresses": [{"ip": "10.244.3.9"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }]
        });
        assert_eq!(
            cells("", "Endpoints", web),
            json!([
                "web",
                "10.244.1.5:8080,10.244.1.6:8080,10.244.2.3:8080 + 2 more...",
                "2d"
            ])
        );
        let kube_dns = json!({
            "metadata": {"name": "kube-dns", "creationTimestamp": ago(121 * DAY)},
            "subsets": [{
                "addresses": [{"ip": "10.244.0.2"}, {"ip": "10.244.0.3"}],
                "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                          {"name": "dns", "port": 53, "protocol": "UDP"},
                          {"name": "metrics", "port": 9153, "protocol": "TCP"}]
            }]
        });
        assert_eq!(
            cells("", "Endpoints", kube_dns),
            json!([
                "kube-dns",
                "10.244.0.2:53,10.244.0.3:53,10.244.0.2:53 + 3 more...",
                "121d"
            ])
        );
        let kubernetes = json!({"metadata": {"name": "kubernetes"}, "subsets": [
            {"addresses": [{"ip": "192.168.1.10"}], "ports": [{"name": "https", "port": 6443}]},
            {"addresses": [{"ip": "fd00::10"}], "ports": [{"name": "https", "port": 6443}]}
        ]});
        assert_eq!(
            cells("", "Endpoints", kubernetes)[1],
            json!("192.168.1.10:6443,[fd00::10]:6443")
        );
        let headless =
            json!({"subsets": [{"addresses": [{"ip": "10.244.1.7"}, {"ip": "10.244.1.8"}]}]});
        assert_eq!(
            cells("", "Endpoints", headless)[1],
            json!("10.244.1.7,10.244.1.8")
        );
        let none = json!({"metadata": {"name": "idle"}});
        assert_eq!(cells("", "Endpoints", none)[1], json!("<none>"));
        let not_ready = json!({"subsets": [{"notReadyAddresses": [{"ip": "10.244.1.7"}],
                                            "ports": [{"port": 80}]}]});
        assert_eq!(cells("", "Endpoints", not_ready)[1], json!(""));
    }

    // ---- ConfigMaps, Secrets, ServiceAccounts, Events --------------------------------

    #[test]
    fn config_maps_secrets_and_service_accounts() {
        let root_ca = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": ago(45 * DAY),
            "annotations": {"kubernetes.io/description": "Contains a CA bundle..."}},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n..."}});
        assert_eq!(
            cells("", "ConfigMap", root_ca),
            json!(["kube-root-ca.crt", 1, "45d"])
        );
        let mixed = json!({"metadata": {"name": "assets"}, "data": {"a": "1", "b": "2"},
                           "binaryData": {"logo.png": "iVBORw0KGgo="}});
        assert_eq!(cells("", "ConfigMap", mixed)[1], json!(3));
        assert_eq!(
            cells("", "ConfigMap", json!({"metadata": {"name": "e"}}))[1],
            json!(0)
        );

        let tls = json!({"metadata": {"name": "example-com-tls", "creationTimestamp": ago(10 * DAY)},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "LS0t", "tls.key": "LS0t", "ca.crt": ""}});
        assert_eq!(
            cells("", "Secret", tls),
            json!(["example-com-tls", "kubernetes.io/tls", 3, "10d"])
        );
        let opaque = json!({"metadata": {"name": "db-password", "creationTimestamp": ago(90)},
                            "data": {"password": "aHVudGVyMg=="}});
        assert_eq!(
            cells("", "Secret", opaque),
            json!(["db-password", "Opaque", 1, "90s"])
        );
        assert_eq!(
            column_names("", "Secret"),
            names(&[("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)])
        );

        let default_sa =
            json!({"metadata": {"name": "default", "creationTimestamp": ago(45 * DAY)}});
        assert_eq!(
            cells("", "ServiceAccount", default_sa),
            json!(["default", 0, "45d"])
        );
        let legacy = json!({"metadata": {"name": "builder"}, "secrets": [{"name": "builder-token-x8q2v"}],
                            "imagePullSecrets": [{"name": "registry"}]});
        assert_eq!(cells("", "ServiceAccount", legacy)[1], json!(1));
    }

    #[test]
    fn events() {
        let pulled = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "nginx-7c79c4bf97-8x2kq.17c8a1b2c3d4e5f6", "namespace": "default",
                         "creationTimestamp": ago(5 * MINUTE)},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "nginx-7c79c4bf97-8x2kq",
                               "uid": "0f0b7a3e", "apiVersion": "v1", "resourceVersion": "48200",
                               "fieldPath": "spec.containers{nginx}"},
            "reason": "Pulled",
            "message": "Container image \"nginx:1.25\" already present on machine\n",
            "source": {"component": "kubelet", "host": "worker-1"},
            "firstTimestamp": ago(5 * MINUTE),
            "lastTimestamp": ago(2 * MINUTE),
            "count": 3,
            "type": "Normal",
            "eventTime": null,
            "reportingComponent": "kubelet",
            "reportingInstance": "worker-1"
        });
        assert_eq!(
            cells("", "Event", pulled),
            json!([
                "2m",
                "Normal",
                "Pulled",
                "pod/nginx-7c79c4bf97-8x2kq",
                "spec.containers{nginx}",
                "kubelet, worker-1",
                "Container image \"nginx:1.25\" already present on machine",
                "5m",
                3,
                "nginx-7c79c4bf97-8x2kq.17c8a1b2c3d4e5f6"
            ])
        );
        // Written through events.k8s.io: no first/last timestamps, no count, no source.
        let scheduled = json!({
            "metadata": {"name": "nginx.17c8a1b2c3000000"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "nginx"},
            "reason": "Scheduled",
            "message": "Successfully assigned default/nginx to worker-1",
            "source": {},
            "firstTimestamp": null,
            "lastTimestamp": null,
            "type": "Normal",
            "eventTime": "2024-05-01T11:59:30.123456Z",
            "action": "Binding",
            "reportingComponent": "default-scheduler",
            "reportingInstance": "default-scheduler-cp-1"
        });
        assert_eq!(
            cells("", "Event", scheduled),
            json!([
                "29s",
                "Normal",
                "Scheduled",
                "pod/nginx",
                "",
                "default-scheduler, default-scheduler-cp-1",
                "Successfully assigned default/nginx to worker-1",
                "29s",
                1,
                "nginx.17c8a1b2c3000000"
            ])
        );
        let series = json!({
            "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Deployment", "name": "web"},
            "reason": "FailedCreate", "type": "Warning", "message": "quota exceeded",
            "eventTime": ago(HOUR),
            "series": {"count": 12, "lastObservedTime": ago(45)},
            "reportingComponent": "deployment-controller"
        });
        let c = cells("", "Event", series);
        assert_eq!(
            (
                c[0].clone(),
                c[3].clone(),
                c[5].clone(),
                c[7].clone(),
                c[8].clone()
            ),
            (
                json!("45s"),
                json!("deployment/web"),
                json!("deployment-controller"),
                json!("60m"),
                json!(12)
            )
        );
        let cluster = json!({"involvedObject": {"kind": "Node"}});
        let c = cells("", "Event", cluster);
        assert_eq!(
            (c[0].clone(), c[3].clone()),
            (json!("<unknown>"), json!("node"))
        );
        assert_eq!(
            column_names("", "Event"),
            names(&[
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1)
            ])
        );
        assert_eq!(column_definitions("", "Event")[9]["format"], json!("name"));
    }

    // ---- Storage ---------------------------------------------------------------------

    #[test]
    fn persistent_volumes() {
        let bound = json!({
            "metadata": {"name": "pvc-3f2a9c1e-8b7d-4e21-9f3a-1c2d3e4f5a6b", "creationTimestamp": ago(30 * DAY),
                         "annotations": {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"},
                         "finalizers": ["kubernetes.io/pv-protection"]},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-path",
                     "volumeMode": "Filesystem", "hostPath": {"path": "/opt/local-path-provisioner/x"},
                     "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default",
                                  "name": "data-postgres-0", "uid": "3f2a9c1e"}},
            "status": {"phase": "Bound", "lastPhaseTransitionTime": ago(30 * DAY)}
        });
        assert_eq!(
            cells("", "PersistentVolume", bound),
            json!([
                "pvc-3f2a9c1e-8b7d-4e21-9f3a-1c2d3e4f5a6b",
                "10Gi",
                "RWO",
                "Delete",
                "Bound",
                "default/data-postgres-0",
                "local-path",
                "<unset>",
                "",
                "30d",
                "Filesystem"
            ])
        );
        let released = json!({
            "metadata": {"name": "nfs-share", "creationTimestamp": ago(400 * DAY),
                         "annotations": {"volume.beta.kubernetes.io/storage-class": "nfs-legacy"}},
            "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"],
                     "storageClassName": "ignored", "volumeAttributesClassName": "gold", "volumeMode": "Block",
                     "nfs": {"server": "nfs.example.com", "path": "/exports"}},
            "status": {"phase": "Failed", "reason": "VolumeFailedRecycle"}
        });
        assert_eq!(
            cells("", "PersistentVolume", released),
            json!([
                "nfs-share",
                "1Ti",
                "RWO,ROX,RWX",
                "Retain",
                "Failed",
                "",
                "nfs-legacy",
                "gold",
                "VolumeFailedRecycle",
                "400d",
                "Block"
            ])
        );
        let deleting = json!({"metadata": {"name": "old", "deletionTimestamp": ago(1)},
                              "status": {"phase": "Released"}});
        let c = cells("", "PersistentVolume", deleting);
        assert_eq!(
            (c[1].clone(), c[4].clone()),
            (json!("0"), json!("Terminating"))
        );
        assert_eq!(
            column_names("", "PersistentVolume"),
            names(&[
                ("Name", 0),
                ("Capacity", 0),
                ("Access Modes", 0),
                ("Reclaim Policy", 0),
                ("Status", 0),
                ("Claim", 0),
                ("StorageClass", 0),
                ("VolumeAttributesClass", 0),
                ("Reason", 0),
                ("Age", 0),
                ("VolumeMode", 1)
            ])
        );
    }

    #[test]
    fn persistent_volume_claims() {
        let bound = json!({
            "metadata": {"name": "data-postgres-0", "namespace": "default", "creationTimestamp": ago(30 * DAY),
                         "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}},
                     "storageClassName": "standard", "volumeMode": "Filesystem",
                     "volumeName": "pvc-3f2a9c1e-8b7d-4e21-9f3a-1c2d3e4f5a6b"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}
        });
        assert_eq!(
            cells("", "PersistentVolumeClaim", bound),
            json!([
                "data-postgres-0",
                "Bound",
                "pvc-3f2a9c1e-8b7d-4e21-9f3a-1c2d3e4f5a6b",
                "10Gi",
                "RWO",
                "standard",
                "<unset>",
                "30d",
                "Filesystem"
            ])
        );
        let pending = json!({
            "metadata": {"name": "scratch", "creationTimestamp": ago(15)},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending"}
        });
        assert_eq!(
            cells("", "PersistentVolumeClaim", pending),
            json!([
                "scratch",
                "Pending",
                "",
                "",
                "",
                "",
                "<unset>",
                "15s",
                "Filesystem"
            ])
        );
        let deleting = json!({"metadata": {"name": "x", "deletionTimestamp": ago(3),
            "annotations": {"volume.beta.kubernetes.io/storage-class": "fast"}},
            "spec": {"volumeName": "pv-1", "storageClassName": "slow"}, "status": {"phase": "Bound"}});
        let c = cells("", "PersistentVolumeClaim", deleting);
        assert_eq!(
            (c[1].clone(), c[3].clone(), c[5].clone()),
            (json!("Terminating"), json!("0"), json!("fast"))
        );
    }

    #[test]
    fn resource_quota() {
        let quota = json!({
            "metadata": {"name": "compute", "creationTimestamp": ago(DAY)},
            "spec": {"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "16Gi"}},
            "status": {
                "hard": {"pods": "10", "requests.cpu": "4", "requests.memory": "8Gi",
                         "limits.cpu": "8", "limits.memory": "16Gi"},
                "used": {"pods": "3", "requests.cpu": "1500m", "requests.memory": "2Gi",
                         "limits.cpu": "3", "limits.memory": "4Gi"}
            }
        });
        assert_eq!(
            cells("", "ResourceQuota", quota),
            json!([
                "compute",
                "24h",
                "pods: 3/10, requests.cpu: 1500m/4, requests.memory: 2Gi/8Gi",
                "limits.cpu: 3/8, limits.memory: 4Gi/16Gi"
            ])
        );
        let fresh = json!({"metadata": {"name": "q"}, "status": {"hard": {"count/secrets": 20}}});
        assert_eq!(
            cells("", "ResourceQuota", fresh)[2],
            json!("count/secrets: 0/20")
        );
    }

    // ---- Workloads -------------------------------------------------------------------

    fn template(containers: Value) -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}})
    }

    #[test]
    fn deployments() {
        let coredns = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "creationTimestamp": ago(121 * DAY),
                         "generation": 1, "labels": {"k8s-app": "kube-dns"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                     "strategy": {"type": "RollingUpdate"},
                     "template": template(json!([{"name": "coredns",
                         "image": "registry.k8s.io/coredns/coredns:v1.11.1"}]))},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                       "readyReplicas": 2, "availableReplicas": 2}
        });
        assert_eq!(
            cells("apps", "Deployment", coredns),
            json!([
                "coredns",
                "2/2",
                2,
                2,
                "121d",
                "coredns",
                "registry.k8s.io/coredns/coredns:v1.11.1",
                "k8s-app=kube-dns"
            ])
        );
        let rolling = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(90)},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"app": "web"},
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
                                                       {"key": "canary", "operator": "DoesNotExist"},
                                                       {"key": "env", "operator": "Exists"}]},
                     "template": template(json!([{"name": "web", "image": "nginx:1.25"},
                                                  {"name": "log", "image": "fluent/fluent-bit:3.0"}]))},
            "status": {"replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1}
        });
        assert_eq!(
            cells("apps", "Deployment", rolling),
            json!([
                "web",
                "0/3",
                1,
                0,
                "90s",
                "web,log",
                "nginx:1.25,fluent/fluent-bit:3.0",
                "app=web,!canary,env,tier in (edge,frontend)"
            ])
        );
        let sparse = json!({"metadata": {"name": "s"}, "spec": {"selector": {}}});
        assert_eq!(
            cells("apps", "Deployment", sparse),
            json!(["s", "0/1", 0, 0, "<unknown>", "", "", ""])
        );
        let invalid =
            json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}});
        assert_eq!(cells("apps", "Deployment", invalid)[7], json!("<invalid>"));
        assert_eq!(
            column_names("apps", "Deployment"),
            names(&[
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ])
        );
    }

    #[test]
    fn replica_sets_and_replication_controllers() {
        let rs = json!({
            "metadata": {"name": "web-5d8f7c9b6d", "creationTimestamp": ago(7 * DAY + 23 * HOUR + 59 * MINUTE),
                         "annotations": {"deployment.kubernetes.io/revision": "4"}},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"pod-template-hash": "5d8f7c9b6d", "app": "web"}},
                     "template": template(json!([{"name": "web", "image": "nginx:1.25"}]))},
            "status": {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}
        });
        assert_eq!(
            cells("apps", "ReplicaSet", rs),
            json!([
                "web-5d8f7c9b6d",
                3,
                3,
                2,
                "7d23h",
                "web",
                "nginx:1.25",
                "app=web,pod-template-hash=5d8f7c9b6d"
            ])
        );
        let old = json!({"metadata": {"name": "web-6f7b8c"}, "spec": {"replicas": 0,
            "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 0}});
        assert_eq!(
            cells("apps", "ReplicaSet", old),
            json!(["web-6f7b8c", 0, 0, 0, "<unknown>", "", "", "app=web"])
        );
        assert_eq!(cells("apps", "ReplicaSet", json!({}))[7], json!("<none>"));
        assert_eq!(
            cells(
                "apps",
                "ReplicaSet",
                json!({"spec": {"selector": {"matchExpressions": [
                {"key": "a", "operator": "Sideways", "values": ["b"]}]}}})
            )[7],
            json!("<error>")
        );

        let rc = json!({"metadata": {"name": "legacy", "creationTimestamp": ago(2 * 365 * DAY)},
            "spec": {"replicas": 2, "selector": {"app": "legacy"},
                     "template": template(json!([{"name": "app", "image": "legacy:1"}]))},
            "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            cells("", "ReplicationController", rc),
            json!(["legacy", 2, 2, 1, "2y", "app", "legacy:1", "app=legacy"])
        );
        let pt = json!({"metadata": {"name": "tpl"},
            "template": {"metadata": {"labels": {"role": "worker", "app": "batch"}},
                         "spec": {"containers": [{"name": "w", "image": "busybox"}]}}});
        assert_eq!(
            cells("", "PodTemplate", pt),
            json!(["tpl", "w", "busybox", "app=batch,role=worker"])
        );
    }

    #[test]
    fn daemon_sets_and_stateful_sets() {
        let kube_proxy = json!({
            "metadata": {"name": "kube-proxy", "namespace": "kube-system", "creationTimestamp": ago(121 * DAY)},
            "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                     "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                                  "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                           "containers": [{"name": "kube-proxy",
                                                           "image": "registry.k8s.io/kube-proxy:v1.30.2"}]}}},
            "status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberAvailable": 3,
                       "numberMisscheduled": 0, "numberReady": 3, "observedGeneration": 1,
                       "updatedNumberScheduled": 3}
        });
        assert_eq!(
            cells("apps", "DaemonSet", kube_proxy),
            json!([
                "kube-proxy",
                3,
                3,
                3,
                3,
                3,
                "kubernetes.io/os=linux",
                "121d",
                "kube-proxy",
                "registry.k8s.io/kube-proxy:v1.30.2",
                "k8s-app=kube-proxy"
            ])
        );
        let rolling = json!({"metadata": {"name": "fluent-bit"},
            "spec": {"selector": {"matchLabels": {"app": "fluent-bit"}}, "template": template(json!([]))},
            "status": {"desiredNumberScheduled": 4, "currentNumberScheduled": 4, "numberReady": 3,
                       "updatedNumberScheduled": 2, "numberAvailable": 3, "numberUnavailable": 1}});
        assert_eq!(
            cells("apps", "DaemonSet", rolling),
            json!([
                "fluent-bit",
                4,
                4,
                3,
                2,
                3,
                "<none>",
                "<unknown>",
                "",
                "",
                "app=fluent-bit"
            ])
        );
        assert_eq!(
            column_names("apps", "DaemonSet"),
            names(&[
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Node Selector", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ])
        );

        let web = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(3 * HOUR + 5 * MINUTE)},
            "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                     "template": template(json!([{"name": "nginx", "image": "registry.k8s.io/nginx-slim:0.24"},
                                                  {"name": "exporter", "image": "nginx/nginx-prometheus-exporter:1.1"}]))},
            "status": {"replicas": 2, "readyReplicas": 1, "currentReplicas": 2, "updatedReplicas": 2,
                       "availableReplicas": 1}
        });
        assert_eq!(
            cells("apps", "StatefulSet", web),
            json!([
                "web",
                "1/3",
                "3h5m",
                "nginx,exporter",
                "registry.k8s.io/nginx-slim:0.24,nginx/nginx-prometheus-exporter:1.1"
            ])
        );
        assert_eq!(
            column_names("apps", "StatefulSet"),
            names(&[
                ("Name", 0),
                ("Ready", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1)
            ])
        );
    }

    #[test]
    fn controller_revisions() {
        let rev = |api_version: &str, kind: &str| {
            json!({"metadata": {"name": "web-7b6d9c5f8", "creationTimestamp": ago(DAY),
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "not-the-controller"},
                    {"apiVersion": api_version, "kind": kind, "name": "web", "controller": true}
                ]}, "revision": 2, "data": {}})
        };
        assert_eq!(
            cells("apps", "ControllerRevision", rev("apps/v1", "StatefulSet")),
            json!(["web-7b6d9c5f8", "statefulset.apps/web", 2, "24h"])
        );
        assert_eq!(
            cells("apps", "ControllerRevision", rev("v1", "Pod"))[1],
            json!("pod/web")
        );
        assert_eq!(
            cells("apps", "ControllerRevision", json!({"revision": 1}))[1],
            json!("<none>")
        );
    }

    #[test]
    fn jobs() {
        let uid = "a8f3c2d1-4b5e-6f70-8192-a3b4c5d6e7f8";
        let pi = json!({
            "metadata": {"name": "pi", "creationTimestamp": ago(10 * MINUTE),
                         "labels": {"batch.kubernetes.io/job-name": "pi"}},
            "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 4, "completionMode": "NonIndexed",
                     "suspend": false,
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
                     "template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "pi", "image": "perl:5.34.0",
                                                           "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]}]}}},
            "status": {"startTime": ago(10 * MINUTE), "completionTime": ago(10 * MINUTE - 12),
                       "succeeded": 1, "ready": 0, "terminating": 0,
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                      {"type": "Complete", "status": "True"}]}
        });
        assert_eq!(
            cells("batch", "Job", pi),
            json!([
                "pi",
                "Complete",
                "1/1",
                "12s",
                "10m",
                "pi",
                "perl:5.34.0",
                format!("batch.kubernetes.io/controller-uid={uid}")
            ])
        );
        let running = json!({
            "metadata": {"name": "render", "creationTimestamp": ago(200)},
            "spec": {"completions": 5, "parallelism": 2},
            "status": {"startTime": ago(200), "active": 2, "succeeded": 2}
        });
        let c = cells("batch", "Job", running);
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[3].clone()),
            (json!("Running"), json!("2/5"), json!("3m20s"))
        );
        let work_queue = json!({"spec": {"parallelism": 3}, "status": {"succeeded": 0}});
        assert_eq!(cells("batch", "Job", work_queue)[2], json!("0/1 of 3"));
        let failed = json!({"spec": {"completions": 1},
            "status": {"startTime": ago(HOUR), "failed": 5,
                       "conditions": [{"type": "FailureTarget", "status": "True"},
                                      {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert_eq!(cells("batch", "Job", failed)[1], json!("Failed"));
        let target =
            json!({"status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
        assert_eq!(cells("batch", "Job", target)[1], json!("FailureTarget"));
        let suspended = json!({"spec": {"suspend": true, "completions": 3},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        let c = cells("batch", "Job", suspended);
        assert_eq!(
            (c[1].clone(), c[3].clone()),
            (json!("Suspended"), json!(""))
        );
        let terminating = json!({"metadata": {"deletionTimestamp": ago(1)},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}, {"type": "Complete", "status": "False"}]}});
        assert_eq!(cells("batch", "Job", terminating)[1], json!("Terminating"));
        assert_eq!(
            column_names("batch", "Job"),
            names(&[
                ("Name", 0),
                ("Status", 0),
                ("Completions", 0),
                ("Duration", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ])
        );
    }

    #[test]
    fn cron_jobs() {
        let backup = json!({
            "metadata": {"name": "backup", "creationTimestamp": ago(45 * DAY)},
            "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid", "suspend": false,
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                     "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                         "containers": [{"name": "backup", "image": "example/backup:3.2"}]}}}}},
            "status": {"active": [{"kind": "Job", "name": "backup-28577040", "namespace": "default"}],
                       "lastScheduleTime": ago(2 * MINUTE), "lastSuccessfulTime": ago(7 * MINUTE)}
        });
        assert_eq!(
            cells("batch", "CronJob", backup),
            json!([
                "backup",
                "*/5 * * * *",
                "<none>",
                "False",
                1,
                "2m",
                "45d",
                "backup",
                "example/backup:3.2",
                "<none>"
            ])
        );
        let paused = json!({
            "metadata": {"name": "report"},
            "spec": {"schedule": "0 6 * * 1", "timeZone": "Europe/Paris", "suspend": true,
                     "jobTemplate": {"spec": {"selector": {"matchLabels": {"job": "report"}},
                                              "template": {"spec": {"containers": []}}}}},
            "status": {}
        });
        assert_eq!(
            cells("batch", "CronJob", paused),
            json!([
                "report",
                "0 6 * * 1",
                "Europe/Paris",
                "True",
                0,
                "<none>",
                "<unknown>",
                "",
                "",
                "job=report"
            ])
        );
        assert_eq!(
            column_names("batch", "CronJob"),
            names(&[
                ("Name", 0),
                ("Schedule", 0),
                ("Timezone", 0),
                ("Suspend", 0),
                ("Active", 0),
                ("Last Schedule", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ])
        );
        assert_eq!(
            column_definitions("batch", "CronJob")[3]["type"],
            json!("boolean")
        );
    }

    #[test]
    fn leases_and_endpoint_slices() {
        let lease = json!({
            "metadata": {"name": "kube-controller-manager", "namespace": "kube-system",
                         "creationTimestamp": ago(121 * DAY)},
            "spec": {"holderIdentity": "cp-1_9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0",
                     "leaseDurationSeconds": 15, "acquireTime": ago(DAY), "renewTime": ago(2),
                     "leaseTransitions": 3}
        });
        assert_eq!(
            cells("coordination.k8s.io", "Lease", lease),
            json!([
                "kube-controller-manager",
                "cp-1_9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0",
                "121d"
            ])
        );
        assert_eq!(
            cells(
                "coordination.k8s.io",
                "Lease",
                json!({"metadata": {"name": "free"}, "spec": {}})
            )[1],
            json!("")
        );

        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default", "creationTimestamp": ago(121 * DAY),
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.168.1.10"], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]
        });
        assert_eq!(
            cells("discovery.k8s.io", "EndpointSlice", slice),
            json!(["kubernetes", "IPv4", "6443", "192.168.1.10", "121d"])
        );
        let busy = json!({
            "metadata": {"name": "web-abcde"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.5"]}, {"addresses": ["10.244.1.6"]},
                          {"addresses": ["10.244.2.3"]}, {"addresses": ["10.244.2.4"]}],
            "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}, {"port": 9090}]
        });
        let c = cells("discovery.k8s.io", "EndpointSlice", busy);
        assert_eq!(
            (c[2].clone(), c[3].clone()),
            (
                json!("80,named,* + 1 more..."),
                json!("10.244.1.5,10.244.1.6,10.244.2.3 + 1 more...")
            )
        );
        let empty = json!({"metadata": {"name": "idle"}, "addressType": "IPv6", "ports": null, "endpoints": []});
        let c = cells("discovery.k8s.io", "EndpointSlice", empty);
        assert_eq!(
            (c[2].clone(), c[3].clone()),
            (json!("<unset>"), json!("<unset>"))
        );
        assert_eq!(
            column_names("discovery.k8s.io", "EndpointSlice"),
            names(&[
                ("Name", 0),
                ("AddressType", 0),
                ("Ports", 0),
                ("Endpoints", 0),
                ("Age", 0)
            ])
        );
    }

    // ---- Default convertor, CRDs -------------------------------------------------------

    #[test]
    fn custom_resource_definitions_and_other_kinds_use_the_default_convertor() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "certificates.cert-manager.io", "creationTimestamp": "2024-03-15T10:30:00+02:00"},
            "spec": {"group": "cert-manager.io", "names": {"kind": "Certificate", "plural": "certificates"}}
        });
        assert_eq!(
            cells("apiextensions.k8s.io", "CustomResourceDefinition", crd),
            json!(["certificates.cert-manager.io", "2024-03-15T08:30:00Z"])
        );
        assert_eq!(
            column_definitions("apiextensions.k8s.io", "CustomResourceDefinition")[1],
            json!({"name": "Created At", "type": "date", "format": "",
                   "description": OBJECT_META_CREATION_TIMESTAMP, "priority": 0})
        );
        assert_eq!(
            cells("", "LimitRange", json!({"metadata": {"name": "limits"}})),
            json!(["limits", "0001-01-01T00:00:00Z"])
        );
        // A known kind in another group is not mistaken for the built-in one.
        assert_eq!(
            column_names("example.com", "Pod"),
            names(&[("Name", 0), ("Created At", 0)])
        );
    }

    fn certificate_columns() -> Vec<Value> {
        serde_json::from_value(json!([
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Secret", "type": "string", "jsonPath": ".spec.secretName"},
            {"name": "Issuer", "type": "string", "jsonPath": ".spec.issuerRef.name", "priority": 1},
            {"name": "Status", "type": "string", "priority": 1,
             "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
             "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}
        ]))
        .unwrap()
    }

    #[test]
    fn custom_resource_with_printer_columns() {
        let certificate = json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "example-com", "namespace": "default", "creationTimestamp": ago(10 * DAY)},
            "spec": {"secretName": "example-com-tls", "dnsNames": ["example.com", "www.example.com"],
                     "issuerRef": {"name": "letsencrypt-prod", "kind": "ClusterIssuer"}},
            "status": {"conditions": [
                {"type": "Issuing", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "Ready",
                 "message": "Certificate is up to date and has not expired",
                 "lastTransitionTime": ago(10 * DAY)}
            ], "notAfter": "2024-07-30T12:00:00Z", "revision": 1}
        });
        let columns = certificate_columns();
        assert_eq!(
            Value::Array(crd_row_cells(&columns, &certificate, now())),
            json!([
                "example-com",
                "True",
                "example-com-tls",
                "letsencrypt-prod",
                "Certificate is up to date and has not expired",
                "10d"
            ])
        );
        let definitions = crd_column_definitions(&columns);
        assert_eq!(definitions.len(), 6);
        assert_eq!(definitions[0], NAME.to_json());
        assert_eq!(
            definitions[2],
            json!({"name": "Secret", "type": "string", "format": "",
                   "description": "Custom resource definition column (in JSONPath format): .spec.secretName",
                   "priority": 0})
        );
        assert_eq!(definitions[3]["priority"], json!(1));
        assert_eq!(
            definitions[5]["description"],
            json!(
                "CreationTimestamp is a timestamp representing the server time when this object was created."
            )
        );
        // Not issued yet: no conditions.
        let fresh = json!({"metadata": {"name": "new"}, "spec": {"secretName": "new-tls"}});
        assert_eq!(
            Value::Array(crd_row_cells(&columns, &fresh, now())),
            json!(["new", null, "new-tls", null, null, null])
        );
    }

    #[test]
    fn custom_resource_without_printer_columns_gets_age() {
        assert_eq!(
            crd_column_definitions(&[]),
            vec![
                NAME.to_json(),
                json!({"name": "Age", "type": "date", "format": "",
                       "description": OBJECT_META_CREATION_TIMESTAMP, "priority": 0})
            ]
        );
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": ago(3 * HOUR)}});
        assert_eq!(
            crd_row_cells(&[], &obj, now()),
            vec![json!("w"), json!("3h")]
        );
    }

    fn crd_cell_of(ty: &str, path: &str, obj: &Value) -> Value {
        let columns = vec![json!({"name": "C", "type": ty, "jsonPath": path})];
        crd_row_cells(&columns, obj, now()).remove(1)
    }

    #[test]
    fn custom_resource_cells_by_type() {
        let obj = json!({
            "metadata": {"name": "db", "creationTimestamp": ago(DAY),
                         "labels": {"app.kubernetes.io/name": "postgres", "app": "db"}},
            "spec": {"replicas": 3, "ratio": 0.5, "big": 1000000.0, "tiny": 0.00001, "whole": 2.0,
                     "paused": false, "storage": "10Gi", "nothing": null, "when": "",
                     "hosts": ["a.example.com", "b.example.com"],
                     "resources": {"limits": {"memory": "1Gi", "cpu": 2}, "note": "<b>&"},
                     "items": [{"name": "first", "weight": 1}, {"name": "second", "weight": 5},
                               {"name": "third", "weight": 10}]},
            "status": {"lastBackup": ago(90 * MINUTE), "broken": "not a time", "phase": "Running",
                       "observedGeneration": 7}
        });
        let cell = |ty: &str, path: &str| crd_cell_of(ty, path, &obj);
        // integer
        assert_eq!(cell("integer", ".spec.replicas"), json!(3));
        assert_eq!(cell("integer", ".spec.ratio"), json!(0));
        assert_eq!(cell("integer", ".spec.storage"), Value::Null);
        // number
        assert_eq!(cell("number", ".spec.replicas"), json!(3.0));
        assert_eq!(cell("number", ".spec.ratio"), json!(0.5));
        // boolean
        assert_eq!(cell("boolean", ".spec.paused"), json!(false));
        assert_eq!(cell("boolean", ".spec.replicas"), Value::Null);
        // date
        assert_eq!(cell("date", ".status.lastBackup"), json!("90m"));
        assert_eq!(cell("date", ".status.broken"), json!("<invalid>"));
        assert_eq!(cell("date", ".spec.when"), json!("<unknown>"));
        assert_eq!(cell("date", ".spec.replicas"), Value::Null);
        // string: as kubectl's JSONPath printer prints values
        assert_eq!(cell("string", ".spec.replicas"), json!("3"));
        assert_eq!(cell("string", ".spec.ratio"), json!("0.5"));
        assert_eq!(cell("string", ".spec.big"), json!("1e+06"));
        assert_eq!(cell("string", ".spec.tiny"), json!("1e-05"));
        assert_eq!(cell("string", ".spec.whole"), json!("2"));
        assert_eq!(cell("string", ".spec.paused"), json!("false"));
        assert_eq!(cell("string", ".spec.nothing"), json!("<no value>"));
        assert_eq!(
            cell("string", ".spec.hosts"),
            json!("[\"a.example.com\",\"b.example.com\"]")
        );
        assert_eq!(
            cell("string", ".spec.resources"),
            json!(
                "{\"limits\":{\"cpu\":2,\"memory\":\"1Gi\"},\"note\":\"\\u003cb\\u003e\\u0026\"}"
            )
        );
        // Other types, missing fields.
        assert_eq!(cell("integer", ".spec.nothing"), Value::Null);
        assert_eq!(cell("object", ".spec.resources"), Value::Null);
        assert_eq!(cell("string", ".spec.absent"), Value::Null);
        assert_eq!(cell("string", ".nope.deeper.still"), Value::Null);
        // Paths
        assert_eq!(cell("string", ".spec.hosts[*]"), json!("a.example.com"));
        assert_eq!(cell("string", ".spec.hosts[1]"), json!("b.example.com"));
        assert_eq!(cell("string", ".spec.hosts[-1]"), json!("b.example.com"));
        assert_eq!(cell("string", ".spec.hosts[5]"), Value::Null);
        assert_eq!(cell("string", ".spec.items[*].name"), json!("first"));
        assert_eq!(cell("string", ".spec.items[1:].name"), json!("second"));
        assert_eq!(
            cell("integer", ".spec.items[?(@.name==\"third\")].weight"),
            json!(10)
        );
        assert_eq!(
            cell("string", ".spec.items[?(@.weight > 1)].name"),
            json!("second")
        );
        assert_eq!(
            cell("string", ".spec.items[?(@.weight>=10)].name"),
            json!("third")
        );
        assert_eq!(
            cell("string", ".spec.items[?(@.name!='first')].name"),
            json!("second")
        );
        assert_eq!(
            cell("string", ".spec.items[?(@.missing)].name"),
            Value::Null
        );
        assert_eq!(
            cell("string", ".spec.items[?(@.weight)].name"),
            json!("first")
        );
        assert_eq!(
            cell("string", ".metadata.labels.app\\.kubernetes\\.io/name"),
            json!("postgres")
        );
        assert_eq!(cell("string", ".metadata.labels['app']"), json!("db"));
        // As in Kubernetes, a bracketed key is re-read as a dotted path.
        assert_eq!(
            cell("string", ".metadata.labels['app.kubernetes.io/name']"),
            Value::Null
        );
        assert_eq!(
            cell("string", ".metadata.labels['app\\.kubernetes\\.io/name']"),
            json!("postgres")
        );
        assert_eq!(cell("string", "..phase"), json!("Running"));
        assert_eq!(cell("integer", ".status.observedGeneration"), json!(7));
        assert_eq!(cell("string", ".spec.hosts[0,1]"), json!("a.example.com"));
        // Invalid paths and comparisons of different kinds give no value.
        assert_eq!(cell("string", ".spec.hosts[x]"), Value::Null);
        assert_eq!(
            cell("string", ".spec.items[?(@.name==1)].name"),
            Value::Null
        );
        assert_eq!(cell("string", "spec"), Value::Null);
        assert_eq!(cell("string", ".spec.items[?(@.weight"), Value::Null);
    }

    #[test]
    fn jsonpath_parses_what_printer_columns_use() {
        use jsonpath::{Operand, Step, parse};
        let field = |s: &str| Step::Field(s.to_string());
        assert_eq!(
            parse(".status.replicas"),
            Ok(vec![field("status"), field("replicas")])
        );
        assert_eq!(
            parse(".status.conditions[?(@.type==\"Ready\")].status"),
            Ok(vec![
                field("status"),
                field("conditions"),
                Step::Filter {
                    left: Operand::Path(vec![field("type")]),
                    op: "==".to_string(),
                    right: Some(Operand::Literal(json!("Ready"))),
                },
                field("status"),
            ])
        );
        assert_eq!(
            parse(".a[0]"),
            Ok(vec![
                field("a"),
                Step::Slice {
                    start: Some(0),
                    end: Some(1),
                    end_derived: true,
                    step: None
                }
            ])
        );
        assert_eq!(
            parse(".a[*]"),
            Ok(vec![
                field("a"),
                Step::Slice {
                    start: None,
                    end: None,
                    end_derived: false,
                    step: None
                }
            ])
        );
        assert_eq!(parse(".a.*"), Ok(vec![field("a"), Step::Wildcard]));
        assert_eq!(parse("$.a"), Ok(vec![field("a")]));
        assert_eq!(
            parse(".a['b.c']"),
            Ok(vec![field("a"), field("b"), field("c")])
        );
        assert_eq!(parse(".a['b/c']"), Ok(vec![field("a"), field("b/c")]));
        assert!(parse(".a[1:x]").is_err());
        assert!(parse(".a[?(@.b==\"x\")").is_err());
        assert!(parse("....a").is_err());
        assert_eq!(
            jsonpath::first(".a[9223372036854775807]", &json!({"a": [1]})),
            None
        );
    }

    #[test]
    fn go_number_formatting() {
        let cases: &[(f64, &str, &str)] = &[
            (0.0, "0", "0"),
            (1.0, "1", "1"),
            (-2.5, "-2.5", "-2.5"),
            (0.1, "0.1", "0.1"),
            (123456.0, "123456", "123456"),
            (1234567.0, "1.234567e+06", "1234567"),
            (0.0001, "0.0001", "0.0001"),
            (0.00001, "1e-05", "0.00001"),
            (1e-7, "1e-07", "1e-7"),
            (1e21, "1e+21", "1e+21"),
            (
                123456789012345680000.0,
                "1.2345678901234568e+20",
                "123456789012345680000",
            ),
        ];
        for (f, fmt_v, json) in cases {
            assert_eq!(go_format_float(*f), *fmt_v, "%v of {f}");
            assert_eq!(go_json_float(*f), *json, "json of {f}");
        }
        assert_eq!(go_format_float(f64::NAN), "NaN");
        assert_eq!(go_json_float(f64::NEG_INFINITY), "-Inf");
        let mut out = String::new();
        go_json(
            &json!({"b": [1, 2.5, null, true], "a": "tab\there \"q\" \u{1} \u{2028}"}),
            &mut out,
        );
        assert_eq!(
            out,
            r#"{"a":"tab\there \"q\" \u0001 \u2028","b":[1,2.5,null,true]}"#
        );
    }

    #[test]
    fn label_selectors() {
        let sel = |v: Value| format_label_selector(Some(&v));
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(sel(json!({})), "<none>");
        assert_eq!(sel(json!({"matchLabels": {}})), "<none>");
        assert_eq!(sel(json!({"matchLabels": {"b": "2", "a": "1"}})), "a=1,b=2");
        assert_eq!(
            sel(
                json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]})
            ),
            "env notin (prod)"
        );
        assert_eq!(sel(json!({"matchLabels": {"a": 1}})), "<error>");
        assert_eq!(sel(json!("app=web")), "<error>");
        assert_eq!(
            sel(json!({"matchExpressions": [{"key": "x", "operator": "Exists", "values": ["y"]}]})),
            "<error>"
        );
        assert_eq!(format_labels(Some(&json!({"z": "1", "a": "2"}))), "a=2,z=1");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    // ---- Tables ----------------------------------------------------------------------

    #[test]
    fn table_and_partial_object_metadata() {
        let pod = running_pod();
        let object = partial_object_metadata(&pod);
        assert_eq!(
            object,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": pod["metadata"].clone()})
        );
        let keys: Vec<&String> = object.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["kind", "apiVersion", "metadata"]);
        assert_eq!(
            partial_object_metadata(&json!({"metadata": 5})),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {}})
        );

        let columns = column_definitions("", "Namespace");
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": ago(DAY)}, "status": {"phase": "Active"}});
        let table = build_table(
            columns.clone(),
            vec![(
                row_cells("", "Namespace", &ns, now()),
                partial_object_metadata(&ns),
            )],
            "48213",
            Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"),
            Some(7),
        );
        assert_eq!(
            table,
            json!({
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": "48213", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ",
                             "remainingItemCount": 7},
                "columnDefinitions": columns,
                "rows": [{"cells": ["default", "Active", "24h"],
                          "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                     "metadata": ns["metadata"].clone()}}]
            })
        );
        let keys: Vec<&String> = table.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "kind",
                "apiVersion",
                "metadata",
                "columnDefinitions",
                "rows"
            ]
        );

        let empty = build_table(Vec::new(), Vec::new(), "", Some(""), None);
        assert_eq!(
            empty,
            json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
                   "columnDefinitions": [], "rows": []})
        );
        let row = table_row(
            vec![json!("x")],
            row_conditions("", "Pod", &json!({"status": {"phase": "Failed"}})),
            Value::Null,
        );
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["cells", "conditions", "object"]);
        assert_eq!(row["object"], Value::Null);
    }

    #[test]
    fn every_printer_survives_malformed_objects() {
        let kinds = [
            ("", "Pod"),
            ("", "PodTemplate"),
            ("", "ReplicationController"),
            ("", "Service"),
            ("", "Endpoints"),
            ("", "Node"),
            ("", "Event"),
            ("", "Namespace"),
            ("", "Secret"),
            ("", "ConfigMap"),
            ("", "ServiceAccount"),
            ("", "PersistentVolume"),
            ("", "PersistentVolumeClaim"),
            ("", "ResourceQuota"),
            ("apps", "Deployment"),
            ("apps", "ReplicaSet"),
            ("apps", "DaemonSet"),
            ("apps", "StatefulSet"),
            ("apps", "ControllerRevision"),
            ("batch", "Job"),
            ("batch", "CronJob"),
            ("coordination.k8s.io", "Lease"),
            ("discovery.k8s.io", "EndpointSlice"),
            ("apiextensions.k8s.io", "CustomResourceDefinition"),
            ("example.com", "Widget"),
        ];
        let garbage = [
            json!(null),
            json!([]),
            json!("pod"),
            json!(42),
            json!({}),
            json!({"metadata": "x", "spec": [], "status": 5, "subsets": {}, "involvedObject": 1}),
            json!({"metadata": {"name": 5, "creationTimestamp": "garbage", "labels": [1],
                                "deletionTimestamp": true, "ownerReferences": {}},
                   "spec": {"containers": {"a": 1}, "initContainers": [null, 1, "x"],
                            "replicas": "three", "selector": [], "ports": [1, null],
                            "template": 7, "jobTemplate": [], "capacity": {"storage": {}}},
                   "status": {"conditions": [null, 3, {"type": 5}], "containerStatuses": [null, {"state": 4}],
                              "initContainerStatuses": [{"state": {"terminated": null, "waiting": 1}}],
                              "podIPs": ["x"], "loadBalancer": {"ingress": [1]}, "hard": {"a": []},
                              "startTime": 1, "completionTime": "x", "active": {}},
                   "subsets": [{"addresses": [1, {"ip": 2}], "ports": [{"port": "x"}]}],
                   "endpoints": [{"addresses": [1]}], "ports": [{"port": 1e300}],
                   "series": {"count": "x"}, "count": -1}),
            running_pod(),
        ];
        for (group, kind) in kinds {
            for obj in &garbage {
                let cells = row_cells(group, kind, obj, now());
                assert_eq!(
                    cells.len(),
                    column_definitions(group, kind).len(),
                    "{group}/{kind}"
                );
                let _ = row_conditions(group, kind, obj);
                let _ = partial_object_metadata(obj);
            }
        }
        let odd_columns = [
            json!(null),
            json!({"name": 1, "type": [], "jsonPath": 3}),
            json!({"name": "x", "type": "string", "jsonPath": "[?("}),
        ];
        for obj in &garbage {
            assert_eq!(crd_row_cells(&odd_columns, obj, now()).len(), 4);
        }
        assert_eq!(crd_column_definitions(&odd_columns).len(), 4);
    }
}
