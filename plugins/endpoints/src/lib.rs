//! The endpoints controller: the `Endpoints` object of every Service with a selector, as
//! kube-controller-manager's `pkg/controller/endpoint` writes it.
//!
//! For each Service (the primary kind; Pods map to it through its `spec.selector`, and its
//! same-named Endpoints to it so that an edited or deleted Endpoints is repaired):
//!
//! - `ExternalName` Services and Services without a selector are left alone: their
//!   Endpoints, if any, belong to whoever wrote them.
//! - The selected pods that should be endpoints (`ShouldPodBeInEndpoints`: an IP, not
//!   Succeeded/Failed, not being deleted unless `publishNotReadyAddresses`) become
//!   addresses: `ip` (of the Service's first IP family), `nodeName`, `targetRef`, and
//!   `hostname` when the pod sits in the Service's subdomain. Ready pods (or every pod with
//!   `publishNotReadyAddresses`) go to `addresses`, the others to `notReadyAddresses`.
//! - Each service port resolves on each pod (`FindPort`): a number is used as is; a name is
//!   looked up among the pod's container ports (and sidecars') with the same protocol, and a
//!   pod without it is left out for that port. A headless Service without ports lists its
//!   addresses without ports.
//! - The subsets are repacked as `endpoints.RepackSubsets` does: addresses offering the same
//!   set of ports share one subset. Order is deterministic (addresses by IP, subsets and
//!   ports sorted), not Kubernetes' hash order.
//! - More than 1000 addresses are truncated (ready ones first, in proportion per subset) and
//!   annotated `endpoints.kubernetes.io/over-capacity: truncated`.
//! - The Endpoints carry the Service's labels, `service.kubernetes.io/headless` for headless
//!   Services, `endpoints.kubernetes.io/managed-by: endpoint-controller`, and the
//!   `endpoints.kubernetes.io/last-change-trigger-time` annotation. They are written only
//!   when subsets, labels or the capacity annotation differ.
//! - When the Service is gone, its Endpoints are deleted if this controller manages them
//!   (the managed-by label); Endpoints written by users for Services that do not exist yet
//!   are kept.
//!
//! Not implemented: the batching period of pod updates (`--endpoint-updates-batch-period`),
//! events, metrics, and the exact "earliest unprocessed change" semantics of the trigger-time
//! annotation (the latest change is recorded instead; see `last_change_trigger_time`).

use std::collections::BTreeMap;
use std::time::Duration;

use endpoints_common::{
    ANNOTATION_TRIGGER_TIME, LABEL_HEADLESS, ServicePort, find_port, is_headless, is_ipv6,
    is_service_ip_set, last_change_trigger_time, managed_selector, pod_ips, publish_not_ready,
    selected_pods, service_ports, should_pod_be_in_endpoints, should_set_hostname, string_map_json,
};
use tugboat_plugin_sdk::cluster::{self, DeleteOptions};
use tugboat_plugin_sdk::prelude::*;

/// The label marking Endpoints this controller manages (`endpoints.LabelManagedBy`).
pub const LABEL_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
/// Its value (`endpoints.ControllerName`).
pub const CONTROLLER_NAME: &str = "endpoint-controller";
/// The annotation set when addresses were truncated.
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The most addresses one Endpoints object holds.
pub const MAX_CAPACITY: usize = 1000;

/// The controller.
pub struct EndpointsController;

impl Controller for EndpointsController {
    fn init(_config: &Value) -> Result<ControllerSpec, String> {
        Ok(ControllerSpec::new("v1", "Service")
            .watch("v1", "Pod", MapRule::Selector("/spec/selector".into()))
            .watch("v1", "Endpoints", MapRule::SameName))
    }

    fn reconcile(key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        match object {
            Some(svc) => sync_service(svc),
            None => delete_managed_endpoints(key),
        }
    }
}

export_controller!(EndpointsController);

/// A pod reference (`targetRef`), compared without its resourceVersion.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TargetRef {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
}

/// One `EndpointAddress`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Address {
    ip: String,
    hostname: String,
    node_name: Option<String>,
    target: Option<TargetRef>,
}

impl Address {
    /// What tells two addresses apart (`addressKey`): the IP and the pod's uid.
    fn key(&self) -> (String, String) {
        (
            self.ip.clone(),
            self.target
                .as_ref()
                .map(|t| t.uid.clone())
                .unwrap_or_default(),
        )
    }

    fn to_json(&self) -> Value {
        let mut a = json!({"ip": self.ip});
        if !self.hostname.is_empty() {
            a["hostname"] = json!(self.hostname);
        }
        if let Some(node) = &self.node_name {
            a["nodeName"] = json!(node);
        }
        if let Some(t) = &self.target {
            a["targetRef"] =
                json!({"kind": t.kind, "namespace": t.namespace, "name": t.name, "uid": t.uid});
        }
        a
    }

    fn from_json(a: &Value) -> Address {
        let s = |p: &str| objects::str_at(a, p).to_string();
        Address {
            ip: s("/ip"),
            hostname: s("/hostname"),
            node_name: a
                .get("nodeName")
                .and_then(Value::as_str)
                .map(str::to_string),
            target: a
                .get("targetRef")
                .filter(|t| t.is_object())
                .map(|_| TargetRef {
                    kind: s("/targetRef/kind"),
                    namespace: s("/targetRef/namespace"),
                    name: s("/targetRef/name"),
                    uid: s("/targetRef/uid"),
                }),
        }
    }
}

/// One `EndpointPort`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Port {
    name: String,
    port: i64,
    protocol: String,
    app_protocol: Option<String>,
}

impl Port {
    fn new(service_port: &ServicePort, port: i64) -> Port {
        Port {
            name: service_port.name.clone(),
            port,
            protocol: service_port.protocol.clone(),
            app_protocol: service_port.app_protocol.clone(),
        }
    }

    fn to_json(&self) -> Value {
        let mut p = json!({"port": self.port, "protocol": self.protocol});
        if !self.name.is_empty() {
            p["name"] = json!(self.name);
        }
        if let Some(a) = &self.app_protocol {
            p["appProtocol"] = json!(a);
        }
        p
    }

    fn from_json(p: &Value) -> Port {
        Port {
            name: objects::str_at(p, "/name").to_string(),
            port: objects::i64_at(p, "/port").unwrap_or_default(),
            protocol: match objects::str_at(p, "/protocol") {
                "" => "TCP".to_string(),
                proto => proto.to_string(),
            },
            app_protocol: p
                .get("appProtocol")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

/// One `EndpointSubset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Subset {
    addresses: Vec<Address>,
    not_ready: Vec<Address>,
    ports: Vec<Port>,
}

impl Subset {
    fn to_json(&self) -> Value {
        let list = |items: Vec<Value>| Value::Array(items);
        let mut s = json!({});
        if !self.addresses.is_empty() {
            s["addresses"] = list(self.addresses.iter().map(Address::to_json).collect());
        }
        if !self.not_ready.is_empty() {
            s["notReadyAddresses"] = list(self.not_ready.iter().map(Address::to_json).collect());
        }
        if !self.ports.is_empty() {
            s["ports"] = list(self.ports.iter().map(Port::to_json).collect());
        }
        s
    }

    fn from_json(s: &Value) -> Subset {
        let addresses = |field: &str| -> Vec<Address> {
            s.get(field)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Address::from_json).collect())
                .unwrap_or_default()
        };
        Subset {
            addresses: addresses("addresses"),
            not_ready: addresses("notReadyAddresses"),
            ports: s
                .get("ports")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Port::from_json).collect())
                .unwrap_or_default(),
        }
    }
}

/// The subsets stored in an Endpoints object.
fn stored_subsets(endpoints: &Value) -> Vec<Subset> {
    endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Subset::from_json).collect())
        .unwrap_or_default()
}

/// The IP family of the Service's endpoints (true: IPv6): its first `ipFamilies` entry, else
/// the family of its cluster IP, else that of the pod's IP (`podToEndpointAddressForService`).
fn wants_ipv6(svc: &Value, pod: &Value) -> bool {
    if let Some(first) = svc.pointer("/spec/ipFamilies/0").and_then(Value::as_str) {
        return first == "IPv6";
    }
    if is_service_ip_set(svc) {
        return is_ipv6(objects::str_at(svc, "/spec/clusterIP"));
    }
    is_ipv6(objects::str_at(pod, "/status/podIP"))
}

/// The pod's address for the Service, `None` when it has no IP of the Service's family.
fn pod_address(svc: &Value, pod: &Value) -> Option<Address> {
    let v6 = wants_ipv6(svc, pod);
    let ip = pod_ips(pod).into_iter().find(|ip| is_ipv6(ip) == v6)?;
    let node = objects::str_at(pod, "/spec/nodeName");
    Some(Address {
        ip,
        hostname: if should_set_hostname(pod, svc) {
            objects::str_at(pod, "/spec/hostname").to_string()
        } else {
            String::new()
        },
        node_name: (!node.is_empty()).then(|| node.to_string()),
        target: Some(TargetRef {
            kind: "Pod".into(),
            namespace: objects::namespace(pod).unwrap_or_default().to_string(),
            name: objects::name(pod).to_string(),
            uid: objects::uid(pod).to_string(),
        }),
    })
}

/// The Service's subsets, from its pods.
fn desired_subsets(svc: &Value, pods: &[Value]) -> Result<Vec<Subset>, String> {
    let publish = publish_not_ready(svc);
    let ports = service_ports(svc)?;
    let mut entries = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(address) = pod_address(svc, pod) else {
            continue;
        };
        let ready = publish || objects::pod_is_ready(pod);
        if ports.is_empty() {
            // Only headless Services may have no ports.
            if is_headless(svc) {
                entries.push((address, ready, None));
            }
            continue;
        }
        for service_port in &ports {
            if let Some(number) = find_port(pod, service_port) {
                entries.push((
                    address.clone(),
                    ready,
                    Some(Port::new(service_port, number)),
                ));
            }
        }
    }
    Ok(repack(entries))
}

/// `endpoints.RepackSubsets`: each address with each port it offers (`None`: no port),
/// grouped into subsets of the addresses that offer the same ports. An address ready for
/// one port is ready.
fn repack(entries: Vec<(Address, bool, Option<Port>)>) -> Vec<Subset> {
    type Key = (String, String);
    let mut all: BTreeMap<Key, Address> = BTreeMap::new();
    let mut by_port: BTreeMap<Option<Port>, BTreeMap<Key, bool>> = BTreeMap::new();
    for (address, ready, port) in entries {
        let key = address.key();
        all.entry(key.clone()).or_insert(address);
        let seen = by_port.entry(port).or_default().entry(key).or_insert(ready);
        *seen = *seen || ready;
    }
    let mut groups: BTreeMap<Vec<(Key, bool)>, Vec<Port>> = BTreeMap::new();
    for (port, addresses) in by_port {
        let ports = groups.entry(addresses.into_iter().collect()).or_default();
        ports.extend(port);
    }
    let mut subsets: Vec<Subset> = groups
        .into_iter()
        .map(|(addresses, mut ports)| {
            let mut subset = Subset::default();
            for (key, ready) in addresses {
                if let Some(address) = all.get(&key) {
                    if ready {
                        subset.addresses.push(address.clone());
                    } else {
                        subset.not_ready.push(address.clone());
                    }
                }
            }
            subset.addresses.sort();
            subset.not_ready.sort();
            ports.sort();
            subset.ports = ports;
            subset
        })
        .collect();
    subsets.sort();
    subsets
}

/// `truncateEndpoints`: keeps at most [`MAX_CAPACITY`] addresses, ready ones first, each
/// subset keeping its proportional share (rounded up). Whether it truncated.
fn truncate(subsets: &mut [Subset]) -> bool {
    let total_ready: usize = subsets.iter().map(|s| s.addresses.len()).sum();
    let total_not_ready: usize = subsets.iter().map(|s| s.not_ready.len()).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut can_be_added = max;
    for subset in subsets.iter_mut() {
        let in_subset = if truncate_ready {
            subset.addresses.len()
        } else {
            subset.not_ready.len()
        };
        let share = (in_subset * max).div_ceil(total).min(can_be_added);
        if truncate_ready {
            subset.addresses.truncate(share);
            subset.not_ready.clear();
            can_be_added -= subset.addresses.len();
        } else {
            subset.not_ready.truncate(share);
            can_be_added -= subset.not_ready.len();
        }
    }
    true
}

/// The labels the Service's Endpoints carry.
fn endpoints_labels(svc: &Value) -> BTreeMap<String, String> {
    let mut labels = objects::labels(svc);
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    if is_service_ip_set(svc) {
        labels.remove(LABEL_HEADLESS);
    } else {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels
}

fn has_annotation(o: &Value, key: &str) -> bool {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .is_some()
}

fn sync_service(svc: &Value) -> Result<Action, String> {
    let Some(selector) = managed_selector(svc) else {
        return Ok(Action::Done);
    };
    let namespace = objects::namespace(svc).ok_or("the Service has no namespace")?;
    let name = objects::name(svc);
    let pods = selected_pods(svc, selector)?;
    let mut subsets = desired_subsets(svc, &pods)?;
    let truncated = truncate(&mut subsets);
    let labels = endpoints_labels(svc);

    let current = host::get("v1", "Endpoints", Some(namespace), name)
        .map_err(|e| format!("reading Endpoints {namespace}/{name}: {e}"))?;
    if let Some(current) = &current
        && stored_subsets(current) == subsets
        && objects::labels(current) == labels
        && has_annotation(current, ANNOTATION_OVER_CAPACITY) == truncated
    {
        return Ok(Action::Done);
    }

    let mut endpoints = current
        .clone()
        .unwrap_or_else(|| json!({"metadata": {"name": name, "namespace": namespace}}));
    endpoints["apiVersion"] = json!("v1");
    endpoints["kind"] = json!("Endpoints");
    endpoints["metadata"]["labels"] = string_map_json(&labels);
    let mut annotations = objects::string_map(endpoints.pointer("/metadata/annotations"));
    match last_change_trigger_time(svc, &pods) {
        Some(t) => annotations.insert(ANNOTATION_TRIGGER_TIME.into(), t),
        None => annotations.remove(ANNOTATION_TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(ANNOTATION_OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(ANNOTATION_OVER_CAPACITY);
    }
    if let Some(meta) = endpoints["metadata"].as_object_mut() {
        if annotations.is_empty() {
            meta.remove("annotations");
        } else {
            meta.insert("annotations".into(), string_map_json(&annotations));
        }
    }
    if let Some(o) = endpoints.as_object_mut() {
        if subsets.is_empty() {
            o.remove("subsets");
        } else {
            o.insert(
                "subsets".into(),
                Value::Array(subsets.iter().map(Subset::to_json).collect()),
            );
        }
    }

    let written = match current {
        None => host::create(&endpoints),
        Some(_) => host::update(&endpoints),
    };
    match written {
        Ok(_) => Ok(Action::Done),
        // Creates in a terminating namespace keep failing: drop the key, as Kubernetes does.
        Err(e) if current.is_none() && e.code == 403 && e.message.contains("terminat") => {
            Ok(Action::Done)
        }
        Err(e) => Err(format!("writing Endpoints {namespace}/{name}: {e}")),
    }
}

/// The Service is gone: delete its Endpoints if this controller wrote them.
fn delete_managed_endpoints(key: &ObjectKey) -> Result<Action, String> {
    let namespace = key
        .namespace
        .as_deref()
        .ok_or("a Service key without a namespace")?;
    let Some(endpoints) = host::get("v1", "Endpoints", Some(namespace), &key.name)
        .map_err(|e| format!("reading Endpoints {namespace}/{}: {e}", key.name))?
    else {
        return Ok(Action::Done);
    };
    if objects::labels(&endpoints)
        .get(LABEL_MANAGED_BY)
        .map(String::as_str)
        != Some(CONTROLLER_NAME)
    {
        return Ok(Action::Done);
    }
    let uid = objects::uid(&endpoints);
    let options = DeleteOptions {
        uid: (!uid.is_empty()).then(|| uid.to_string()),
        ..Default::default()
    };
    match cluster::delete_with("v1", "Endpoints", Some(namespace), &key.name, &options) {
        Ok(()) => Ok(Action::Done),
        Err(e) if e.is_not_found() => Ok(Action::Done),
        // The uid precondition failed: a new Endpoints replaced ours; look again later.
        Err(e) if e.code == 409 => Ok(Action::RequeueAfter(Duration::from_secs(1))),
        Err(e) => Err(format!("deleting Endpoints {namespace}/{}: {e}", key.name)),
    }
}

#[cfg(test)]
mod tests;
