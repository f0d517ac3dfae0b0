//! The endpointslice controller: the `EndpointSlice`s of every Service with a selector, as
//! kube-controller-manager's `pkg/controller/endpointslice` (the reconciler in
//! `k8s.io/endpointslice`) writes them.
//!
//! For each Service (the primary kind; Pods map to it through its `spec.selector`, and the
//! slices it controls through their owner reference):
//!
//! - `ExternalName` Services and Services without a selector are left alone (their slices
//!   are written by users or the mirroring controller).
//! - The slices managed here are found by the labels `kubernetes.io/service-name=<service>`
//!   and `endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io`.
//! - One address type per IP family of the Service (`spec.ipFamilies`; without them the
//!   cluster IP's family, or both for headless Services); slices of other types are deleted.
//! - Every selected pod with an IP that is not Succeeded/Failed (terminating pods included)
//!   becomes an endpoint: its addresses of the family, conditions `ready` (ready and not
//!   terminating, or always with `publishNotReadyAddresses`), `serving` (ready) and
//!   `terminating` (being deleted), `nodeName`, `targetRef`, and `hostname` when the pod sits
//!   in the Service's subdomain.
//! - Endpoints are grouped by the ports they offer (service ports resolved per pod, named
//!   ports looked up among the pod's container ports); each group fills slices of at most
//!   `maxEndpointsPerSlice` (100) endpoints, following Kubernetes' reconciler: endpoints are
//!   updated in place in the slice that holds them, emptied slices are deleted, new endpoints
//!   first fill the slices already being updated, then a slice that fits them best, then new
//!   slices; slices to delete are reused for slices to create.
//! - A Service with no endpoints keeps one empty placeholder slice.
//! - Slices carry the Service's labels (plus `service.kubernetes.io/headless` for headless
//!   Services), a controller owner reference to it, `generateName: <service>-`, and the
//!   `endpoints.kubernetes.io/last-change-trigger-time` annotation.
//! - When the Service is being deleted no slices are created; when it is gone its managed
//!   slices are deleted (the garbage collector would too, through the owner reference).
//!
//! Not implemented: topology (`zone`, which needs Nodes, and hints/trafficDistribution), the
//! update batching period, events and metrics. Names are generated here (`<service>-` and
//! five characters of Kubernetes' alphabet, retried on a collision) rather than by the API
//! server, so that a slice's name is known when it is created.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use endpoints_common::{
    ANNOTATION_TRIGGER_TIME, LABEL_HEADLESS, ServicePort, find_port, is_headless, is_ipv6,
    is_service_ip_set, last_change_trigger_time, managed_selector, pod_ips, publish_not_ready,
    selected_pods, service_ports, should_pod_be_in_endpoints, should_set_hostname, string_map_json,
};
use tugboat_plugin_sdk::cluster::{self, DeleteOptions, Query};
use tugboat_plugin_sdk::prelude::*;

/// The label naming a slice's Service (`discovery.LabelServiceName`).
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager (`discovery.LabelManagedBy`).
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name, the value of [`LABEL_MANAGED_BY`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Kubernetes' default `--max-endpoints-per-slice`.
pub const DEFAULT_MAX_ENDPOINTS_PER_SLICE: usize = 100;

const API_VERSION: &str = "discovery.k8s.io/v1";
const KIND: &str = "EndpointSlice";

thread_local! {
    /// `maxEndpointsPerSlice` from the config, set by `init` (each instance is initialised
    /// before it reconciles).
    static MAX_ENDPOINTS_PER_SLICE: Cell<usize> = const { Cell::new(DEFAULT_MAX_ENDPOINTS_PER_SLICE) };
}

/// The controller. Config: `{"maxEndpointsPerSlice": 1..=1000}` (default 100).
pub struct EndpointSliceController;

impl Controller for EndpointSliceController {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        let max = match config.get("maxEndpointsPerSlice") {
            None | Some(Value::Null) => DEFAULT_MAX_ENDPOINTS_PER_SLICE,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    format!("maxEndpointsPerSlice must be an integer from 1 to 1000, not {v}")
                })? as usize,
        };
        MAX_ENDPOINTS_PER_SLICE.with(|m| m.set(max));
        Ok(ControllerSpec::new("v1", "Service")
            .watch("v1", "Pod", MapRule::Selector("/spec/selector".into()))
            .owns(API_VERSION, KIND))
    }

    fn reconcile(key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        match object {
            Some(svc) => sync_service(svc),
            None => delete_service_slices(key),
        }
    }
}

export_controller!(EndpointSliceController);

/// One `EndpointPort` (ports are compared as sorted lists: a slice's port set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EndpointPort {
    name: String,
    port: Option<i64>,
    protocol: String,
    app_protocol: Option<String>,
}

impl EndpointPort {
    fn new(service_port: &ServicePort, port: i64) -> Self {
        EndpointPort {
            name: service_port.name.clone(),
            port: Some(port),
            protocol: service_port.protocol.clone(),
            app_protocol: service_port.app_protocol.clone(),
        }
    }

    fn to_json(&self) -> Value {
        let mut p = json!({"name": self.name, "protocol": self.protocol});
        if let Some(port) = self.port {
            p["port"] = json!(port);
        }
        if let Some(a) = &self.app_protocol {
            p["appProtocol"] = json!(a);
        }
        p
    }

    fn from_json(p: &Value) -> Self {
        EndpointPort {
            name: objects::str_at(p, "/name").to_string(),
            port: objects::i64_at(p, "/port"),
            protocol: match objects::str_at(p, "/protocol") {
                "" => "TCP".to_string(),
                proto => proto.to_string(),
            },
            app_protocol: opt_str(p, "appProtocol"),
        }
    }
}

fn opt_str(o: &Value, field: &str) -> Option<String> {
    o.get(field).and_then(Value::as_str).map(str::to_string)
}

fn opt_bool(o: &Value, pointer: &str) -> Option<bool> {
    o.pointer(pointer).and_then(Value::as_bool)
}

/// What identifies an endpoint across syncs (`hashEndpoint`): its addresses, hostname and
/// pod, so that condition or node changes update it in place.
type EndpointKey = (Vec<String>, String, String, String);

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    addresses: Vec<String>,
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
    hostname: Option<String>,
    node_name: Option<String>,
    zone: Option<String>,
    /// `(kind, namespace, name, uid)`; its resourceVersion is ignored.
    target: Option<(String, String, String, String)>,
}

impl Endpoint {
    fn key(&self) -> EndpointKey {
        let mut addresses = self.addresses.clone();
        addresses.sort();
        let (namespace, name) = self
            .target
            .as_ref()
            .map(|t| (t.1.clone(), t.2.clone()))
            .unwrap_or_default();
        (
            addresses,
            self.hostname.clone().unwrap_or_default(),
            namespace,
            name,
        )
    }

    /// `EndpointsEqualBeyondHash`.
    fn equal_beyond_key(&self, other: &Endpoint) -> bool {
        self.node_name == other.node_name
            && self.zone == other.zone
            && self.ready == other.ready
            && self.serving == other.serving
            && self.terminating == other.terminating
            && self.target == other.target
    }

    fn to_json(&self) -> Value {
        let mut conditions = json!({});
        for (name, value) in [
            ("ready", self.ready),
            ("serving", self.serving),
            ("terminating", self.terminating),
        ] {
            if let Some(v) = value {
                conditions[name] = json!(v);
            }
        }
        let mut e = json!({"addresses": self.addresses, "conditions": conditions});
        for (name, value) in [
            ("hostname", &self.hostname),
            ("nodeName", &self.node_name),
            ("zone", &self.zone),
        ] {
            if let Some(v) = value {
                e[name] = json!(v);
            }
        }
        if let Some((kind, namespace, name, uid)) = &self.target {
            e["targetRef"] =
                json!({"kind": kind, "namespace": namespace, "name": name, "uid": uid});
        }
        e
    }

    fn from_json(e: &Value) -> Self {
        let s = |p: &str| objects::str_at(e, p).to_string();
        Endpoint {
            addresses: e
                .get("addresses")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            ready: opt_bool(e, "/conditions/ready"),
            serving: opt_bool(e, "/conditions/serving"),
            terminating: opt_bool(e, "/conditions/terminating"),
            hostname: opt_str(e, "hostname"),
            node_name: opt_str(e, "nodeName"),
            zone: opt_str(e, "zone"),
            target: e.get("targetRef").filter(|t| t.is_object()).map(|_| {
                (
                    s("/targetRef/kind"),
                    s("/targetRef/namespace"),
                    s("/targetRef/name"),
                    s("/targetRef/uid"),
                )
            }),
        }
    }
}

/// An EndpointSlice being reconciled: the stored (or new) object and its fields as desired.
#[derive(Debug, Clone)]
struct Slice {
    object: Value,
    address_type: String,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
    labels: BTreeMap<String, String>,
}

impl Slice {
    fn from_stored(object: Value) -> Self {
        let mut ports: Vec<EndpointPort> = object
            .get("ports")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(EndpointPort::from_json).collect())
            .unwrap_or_default();
        ports.sort();
        Slice {
            address_type: objects::str_at(&object, "/addressType").to_string(),
            endpoints: object
                .get("endpoints")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Endpoint::from_json).collect())
                .unwrap_or_default(),
            labels: objects::labels(&object),
            ports,
            object,
        }
    }

    fn name(&self) -> &str {
        objects::name(&self.object)
    }

    /// The object to write.
    fn to_object(&self, trigger_time: Option<&str>) -> Value {
        let mut o = self.object.clone();
        o["apiVersion"] = json!(API_VERSION);
        o["kind"] = json!(KIND);
        o["metadata"]["labels"] = string_map_json(&self.labels);
        let mut annotations = objects::string_map(o.pointer("/metadata/annotations"));
        match trigger_time {
            Some(t) => annotations.insert(ANNOTATION_TRIGGER_TIME.into(), t.into()),
            None => annotations.remove(ANNOTATION_TRIGGER_TIME),
        };
        if let Some(meta) = o["metadata"].as_object_mut() {
            if annotations.is_empty() {
                meta.remove("annotations");
            } else {
                meta.insert("annotations".into(), string_map_json(&annotations));
            }
        }
        o["addressType"] = json!(self.address_type);
        o["endpoints"] = Value::Array(self.endpoints.iter().map(Endpoint::to_json).collect());
        o["ports"] = Value::Array(self.ports.iter().map(EndpointPort::to_json).collect());
        o
    }
}

/// `ownedBy`: the slice has an owner reference to this Service (by uid).
fn owned_by(slice: &Value, svc: &Value) -> bool {
    objects::owner_refs(slice).iter().any(|r| {
        objects::str_at(r, "/uid") == objects::uid(svc)
            && objects::str_at(r, "/kind") == "Service"
            && objects::str_at(r, "/apiVersion") == "v1"
    })
}

/// The owner reference of the Service's slices.
fn service_ref(svc: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "name": objects::name(svc),
        "uid": objects::uid(svc),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `setEndpointSliceLabels`: the Service's labels without the reserved ones, then the
/// headless label, the Service's name and the manager; and whether the non-reserved labels
/// differ from the slice's.
fn slice_labels(
    current: &BTreeMap<String, String>,
    svc: &Value,
) -> (BTreeMap<String, String>, bool) {
    let reserved =
        |k: &String| k == LABEL_SERVICE_NAME || k == LABEL_MANAGED_BY || k == LABEL_HEADLESS;
    let strip = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.into_iter().filter(|(k, _)| !reserved(k)).collect()
    };
    let mut labels = strip(objects::labels(svc));
    let changed = strip(current.clone()) != labels;
    if !is_service_ip_set(svc) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(LABEL_SERVICE_NAME.into(), objects::name(svc).into());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    (labels, changed)
}

/// `newEndpointSlice`: an empty slice of the Service for this port set and address type.
fn new_slice(svc: &Value, ports: Vec<EndpointPort>, address_type: &str) -> Slice {
    let (labels, _) = slice_labels(&BTreeMap::new(), svc);
    Slice {
        object: json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "generateName": format!("{}-", objects::name(svc)),
                "namespace": objects::namespace(svc).unwrap_or_default(),
                "ownerReferences": [service_ref(svc)],
            },
        }),
        address_type: address_type.to_string(),
        ports,
        endpoints: Vec::new(),
        labels,
    }
}

/// `getAddressTypesForService`.
fn address_types(svc: &Value) -> BTreeSet<&'static str> {
    let mut types = BTreeSet::new();
    for family in svc
        .pointer("/spec/ipFamilies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match family.as_str() {
            Some("IPv4") => types.insert("IPv4"),
            Some("IPv6") => types.insert("IPv6"),
            _ => false,
        };
    }
    if !types.is_empty() {
        return types;
    }
    if is_service_ip_set(svc) {
        types.insert(if is_ipv6(objects::str_at(svc, "/spec/clusterIP")) {
            "IPv6"
        } else {
            "IPv4"
        });
    } else {
        types.extend(["IPv4", "IPv6"]);
    }
    types
}

/// `getEndpointPorts`: the ports this pod offers for the Service, sorted.
fn endpoint_ports(svc: &Value, service_ports: &[ServicePort], pod: &Value) -> Vec<EndpointPort> {
    if service_ports.is_empty() && is_headless(svc) {
        return Vec::new();
    }
    let mut ports: Vec<EndpointPort> = service_ports
        .iter()
        .filter_map(|sp| Some(EndpointPort::new(sp, find_port(pod, sp)?)))
        .collect();
    ports.sort();
    ports
}

/// `podToEndpoint`.
fn pod_endpoint(pod: &Value, svc: &Value, address_type: &str) -> Endpoint {
    let serving = objects::pod_is_ready(pod);
    let terminating = objects::is_deleting(pod);
    let ready = publish_not_ready(svc) || (serving && !terminating);
    let want_v6 = address_type == "IPv6";
    let node = objects::str_at(pod, "/spec/nodeName");
    Endpoint {
        addresses: pod_ips(pod)
            .into_iter()
            .filter(|ip| is_ipv6(ip) == want_v6)
            .collect(),
        ready: Some(ready),
        serving: Some(serving),
        terminating: Some(terminating),
        hostname: should_set_hostname(pod, svc)
            .then(|| objects::str_at(pod, "/spec/hostname").to_string()),
        node_name: (!node.is_empty()).then(|| node.to_string()),
        zone: None,
        target: Some((
            "Pod".into(),
            objects::namespace(pod).unwrap_or_default().into(),
            objects::name(pod).into(),
            objects::uid(pod).into(),
        )),
    }
}

/// The writes one sync decides on.
#[derive(Debug, Default)]
struct Plan {
    create: Vec<Slice>,
    update: Vec<Slice>,
    delete: Vec<Slice>,
}

impl Plan {
    fn merge(&mut self, other: Plan) {
        self.create.extend(other.create);
        self.update.extend(other.update);
        self.delete.extend(other.delete);
    }
}

fn sync_service(svc: &Value) -> Result<Action, String> {
    let Some(selector) = managed_selector(svc) else {
        return Ok(Action::Done);
    };
    let namespace = objects::namespace(svc).ok_or("the Service has no namespace")?;
    let name = objects::name(svc);
    let pods = selected_pods(svc, selector)?;
    let existing = managed_slices(namespace, name)?;
    let max = MAX_ENDPOINTS_PER_SLICE.with(Cell::get);
    let trigger_time = last_change_trigger_time(svc, &pods);

    let types = address_types(svc);
    let mut unsupported = Vec::new();
    let mut by_type: BTreeMap<String, Vec<Slice>> = BTreeMap::new();
    for slice in existing.into_iter().map(Slice::from_stored) {
        if types.contains(slice.address_type.as_str()) {
            by_type
                .entry(slice.address_type.clone())
                .or_default()
                .push(slice);
        } else {
            unsupported.push(slice);
        }
    }
    for address_type in types {
        let existing = by_type.remove(address_type).unwrap_or_default();
        let plan = reconcile_address_type(svc, &pods, existing, address_type, max)?;
        finalize(svc, plan, trigger_time.as_deref())?;
    }
    for slice in unsupported {
        delete_slice(namespace, &slice.object)?;
    }
    Ok(Action::Done)
}

/// The slices this controller manages for the Service of this name.
fn managed_slices(namespace: &str, service: &str) -> Result<Vec<Value>, String> {
    let query = Query::new(API_VERSION, KIND)
        .namespace(Some(namespace))
        .labels(&format!(
            "{LABEL_SERVICE_NAME}={service},{LABEL_MANAGED_BY}={CONTROLLER_NAME}"
        ));
    let mut slices = cluster::select(&query)
        .map_err(|e| format!("listing the EndpointSlices of {namespace}/{service}: {e}"))?;
    slices.sort_by(|a, b| objects::name(a).cmp(objects::name(b)));
    Ok(slices)
}

/// `reconcileByAddressType`.
fn reconcile_address_type(
    svc: &Value,
    pods: &[Value],
    existing: Vec<Slice>,
    address_type: &str,
    max: usize,
) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let existing_count = existing.len();
    let mut existing_by_ports: BTreeMap<Vec<EndpointPort>, Vec<Slice>> = BTreeMap::new();
    for slice in existing {
        if owned_by(&slice.object, svc) {
            existing_by_ports
                .entry(slice.ports.clone())
                .or_default()
                .push(slice);
        } else {
            plan.delete.push(slice);
        }
    }

    let service_ports = service_ports(svc)?;
    let mut desired: BTreeMap<Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>> = BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let endpoints = desired
            .entry(endpoint_ports(svc, &service_ports, pod))
            .or_default();
        let endpoint = pod_endpoint(pod, svc, address_type);
        if !endpoint.addresses.is_empty() {
            endpoints.insert(endpoint.key(), endpoint);
        }
    }

    for (ports, endpoints) in desired {
        let slices = existing_by_ports.remove(&ports).unwrap_or_default();
        plan.merge(reconcile_port_set(
            svc,
            slices,
            endpoints,
            ports,
            address_type,
            max,
        ));
    }
    // Port sets no longer offered.
    for slices in existing_by_ports.into_values() {
        plan.delete.extend(slices);
    }

    // A Service without endpoints keeps one empty placeholder slice.
    if existing_count == plan.delete.len() && plan.create.is_empty() {
        let placeholder = new_slice(svc, Vec::new(), address_type);
        if plan.delete.len() == 1 && same_placeholder(&plan.delete[0], &placeholder) {
            plan.delete.clear();
        } else {
            plan.create.push(placeholder);
        }
    }
    Ok(plan)
}

/// `placeholderSliceCompare`: equal but for names and other metadata.
fn same_placeholder(a: &Slice, b: &Slice) -> bool {
    a.endpoints.is_empty()
        && b.endpoints.is_empty()
        && a.ports == b.ports
        && a.address_type == b.address_type
        && a.labels == b.labels
        && objects::namespace(&a.object) == objects::namespace(&b.object)
        && objects::owner_refs(&a.object) == objects::owner_refs(&b.object)
}

/// `reconcileByPortMapping`: the slices of one port set against the endpoints desired for it.
fn reconcile_port_set(
    svc: &Value,
    existing: Vec<Slice>,
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: Vec<EndpointPort>,
    address_type: &str,
    max: usize,
) -> Plan {
    let mut plan = Plan::default();
    let mut unchanged = Vec::new();

    // 1. Keep the endpoints still desired (updated in place), drop the others.
    for mut slice in existing {
        let mut kept = Vec::new();
        let mut changed = false;
        for endpoint in &slice.endpoints {
            if let Some(want) = desired.remove(&endpoint.key()) {
                changed |= !want.equal_beyond_key(endpoint);
                kept.push(want);
            }
        }
        let (labels, labels_changed) = slice_labels(&slice.labels, svc);
        if changed || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                plan.delete.push(slice);
            } else {
                slice.endpoints = kept;
                slice.labels = labels;
                plan.update.push(slice);
            }
        } else if labels_changed {
            slice.labels = labels;
            plan.update.push(slice);
        } else {
            unchanged.push(slice);
        }
    }

    // 2. Fill the slices being updated anyway, fullest first.
    if !desired.is_empty() && !plan.update.is_empty() {
        plan.update
            .sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
        for slice in &mut plan.update {
            fill(slice, &mut desired, max);
        }
    }

    // 3. Put the rest in the unchanged slice they fit best, or in new slices.
    while !desired.is_empty() {
        let best = if desired.len() < max {
            slice_to_fill(&unchanged, desired.len(), max)
        } else {
            None
        };
        match best {
            Some(i) => {
                let mut slice = unchanged.remove(i);
                fill(&mut slice, &mut desired, max);
                plan.update.push(slice);
            }
            None => {
                let mut slice = new_slice(svc, ports.clone(), address_type);
                fill(&mut slice, &mut desired, max);
                plan.create.push(slice);
            }
        }
    }
    plan
}

fn fill(slice: &mut Slice, desired: &mut BTreeMap<EndpointKey, Endpoint>, max: usize) {
    while slice.endpoints.len() < max {
        let Some((_, endpoint)) = desired.pop_first() else {
            return;
        };
        slice.endpoints.push(endpoint);
    }
}

/// `getSliceToFill`: the slice that comes closest to full when `count` endpoints are added.
fn slice_to_fill(slices: &[Slice], count: usize, max: usize) -> Option<usize> {
    let mut closest = max;
    let mut best = None;
    for (i, slice) in slices.iter().enumerate() {
        let Some(room) = max.checked_sub(count + slice.endpoints.len()) else {
            continue;
        };
        if room < closest {
            closest = room;
            best = Some(i);
            if room == 0 {
                break;
            }
        }
    }
    best
}

/// `finalize`: reuses slices to delete for slices to create, then writes.
fn finalize(svc: &Value, mut plan: Plan, trigger_time: Option<&str>) -> Result<(), String> {
    let namespace = objects::namespace(svc).unwrap_or_default();
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        let reusable = plan
            .create
            .last()
            .is_some_and(|c| c.address_type == plan.delete[i].address_type)
            && owned_by(&plan.delete[i].object, svc);
        if !reusable {
            i += 1;
            continue;
        }
        if let Some(mut slice) = plan.create.pop() {
            slice.object = plan.delete.remove(i).object;
            plan.update.push(slice);
        }
    }

    // No new slices for a Service being deleted: the garbage collector is removing them.
    if !objects::is_deleting(svc) {
        for (n, slice) in plan.create.iter().enumerate() {
            create_slice(svc, slice.to_object(trigger_time), n)?;
        }
    }
    for slice in &plan.update {
        host::update(&slice.to_object(trigger_time))
            .map_err(|e| format!("updating EndpointSlice {namespace}/{}: {e}", slice.name()))?;
    }
    for slice in &plan.delete {
        delete_slice(namespace, &slice.object)?;
    }
    Ok(())
}

/// Creates a slice under a generated name `<service>-xxxxx`, trying another on a collision.
fn create_slice(svc: &Value, mut object: Value, n: usize) -> Result<(), String> {
    let prefix = format!("{}-", objects::name(svc));
    let now = cluster::now_millis();
    let mut last_error = None;
    for attempt in 0..5 {
        let seed = format!("{}/{now}/{n}/{attempt}", objects::uid(svc));
        object["metadata"]["name"] = json!(format!("{prefix}{}", random_suffix(&seed)));
        match host::create(&object) {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => last_error = Some(e),
            // Creates in a terminating namespace keep failing: drop them, as Kubernetes does.
            Err(e) if e.code == 403 && e.message.contains("terminat") => return Ok(()),
            Err(e) => {
                return Err(format!(
                    "creating an EndpointSlice for Service {}: {e}",
                    objects::name(svc)
                ));
            }
        }
    }
    Err(format!(
        "creating an EndpointSlice for Service {}: no free name ({})",
        objects::name(svc),
        last_error.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Five characters of the alphabet Kubernetes' generated names use, from a seed.
fn random_suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = objects::fnv32a(seed.as_bytes()) as usize;
    (0..5)
        .map(|_| {
            let c = ALPHABET[h % ALPHABET.len()] as char;
            h /= ALPHABET.len();
            c
        })
        .collect()
}

fn delete_slice(namespace: &str, slice: &Value) -> Result<(), String> {
    let name = objects::name(slice);
    let uid = objects::uid(slice);
    let options = DeleteOptions {
        uid: (!uid.is_empty()).then(|| uid.to_string()),
        ..Default::default()
    };
    match cluster::delete_with(API_VERSION, KIND, Some(namespace), name, &options) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(format!("deleting EndpointSlice {namespace}/{name}: {e}")),
    }
}

/// The Service is gone: delete the slices managed for it.
fn delete_service_slices(key: &ObjectKey) -> Result<Action, String> {
    let namespace = key
        .namespace
        .as_deref()
        .ok_or("a Service key without a namespace")?;
    for slice in managed_slices(namespace, &key.name)? {
        delete_slice(namespace, &slice)?;
    }
    Ok(Action::Done)
}

#[cfg(test)]
mod tests;
