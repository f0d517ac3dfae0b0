//! What the `endpoints` and `endpointslice` controllers share: which Services they manage,
//! which pods back a Service and how, and the port each service port reaches on a pod.
//!
//! These are Kubernetes' helpers from `k8s.io/endpointslice/util` (`ShouldPodBeInEndpoints`,
//! `ShouldSetHostname`), `k8s.io/endpointslice` (`FindPort`) and `pkg/api/v1/pod`
//! (`IsPodReady`), written over JSON objects.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tugboat_plugin_sdk::cluster;
use tugboat_plugin_sdk::host;
use tugboat_plugin_sdk::objects;

/// The label Kubernetes puts on the Endpoints and EndpointSlices of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

/// The annotation recording when the last change behind an Endpoints/EndpointSlice write
/// happened (`v1.EndpointsLastChangeTriggerTime`).
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// The Service's selector when its endpoints are the controllers' to manage: `None` for
/// `ExternalName` Services and Services without a selector (their endpoints are written by
/// someone else). An empty selector counts as none, as it does once Kubernetes has stored
/// the Service.
pub fn managed_selector(svc: &Value) -> Option<&Map<String, Value>> {
    if objects::str_at(svc, "/spec/type") == "ExternalName" {
        return None;
    }
    svc.pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
}

/// A plain label map as a selector string (`a=b,c=d`).
pub fn selector_string(selector: &Map<String, Value>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pods of the Service's namespace its selector selects, sorted by name.
pub fn selected_pods(svc: &Value, selector: &Map<String, Value>) -> Result<Vec<Value>, String> {
    let namespace = objects::namespace(svc).ok_or("the Service has no namespace")?;
    let pods = host::list(
        "v1",
        "Pod",
        Some(namespace),
        Some(&selector_string(selector)),
    )
    .map_err(|e| format!("listing the pods of namespace {namespace}: {e}"))?;
    let selector = Value::Object(selector.clone());
    let mut pods: Vec<Value> = pods
        .into_iter()
        .filter(|p| objects::map_selects(&selector, &objects::labels(p)))
        .collect();
    pods.sort_by(|a, b| objects::name(a).cmp(objects::name(b)));
    Ok(pods)
}

/// The pod's IPs: `status.podIPs`, or `status.podIP` when that list is missing.
pub fn pod_ips(pod: &Value) -> Vec<String> {
    let ips: Vec<String> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("ip").and_then(Value::as_str))
                .filter(|ip| !ip.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !ips.is_empty() {
        return ips;
    }
    match objects::str_at(pod, "/status/podIP") {
        "" => Vec::new(),
        ip => vec![ip.to_string()],
    }
}

/// Whether an IP address is IPv6 (by its text; addresses here come from the API, which
/// validates them).
pub fn is_ipv6(ip: &str) -> bool {
    ip.contains(':')
}

/// `ShouldPodBeInEndpoints`: not terminal (Succeeded/Failed), has an IP, and, unless
/// `include_terminating`, is not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Value, include_terminating: bool) -> bool {
    if objects::pod_is_terminal(pod) || pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || !objects::is_deleting(pod)
}

/// `ShouldSetHostname`: the pod names a hostname and sits in the Service's subdomain.
pub fn should_set_hostname(pod: &Value, svc: &Value) -> bool {
    !objects::str_at(pod, "/spec/hostname").is_empty()
        && objects::str_at(pod, "/spec/subdomain") == objects::name(svc)
        && objects::namespace(pod) == objects::namespace(svc)
}

/// Whether the Service has a cluster IP (is not headless).
pub fn is_service_ip_set(svc: &Value) -> bool {
    !matches!(objects::str_at(svc, "/spec/clusterIP"), "" | "None")
}

/// Whether the Service is headless (`clusterIP: None`).
pub fn is_headless(svc: &Value) -> bool {
    objects::str_at(svc, "/spec/clusterIP") == "None"
}

/// `spec.publishNotReadyAddresses`.
pub fn publish_not_ready(svc: &Value) -> bool {
    svc.pointer("/spec/publishNotReadyAddresses")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Where a service port sends traffic on a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(i64),
    /// A named container port, looked up in each pod.
    Name(String),
}

/// One entry of `spec.ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub port: i64,
    /// `TCP` when unset.
    pub protocol: String,
    pub app_protocol: Option<String>,
    /// `port` when unset (as Kubernetes defaults it).
    pub target: TargetPort,
}

/// The Service's ports.
pub fn service_ports(svc: &Value) -> Result<Vec<ServicePort>, String> {
    let Some(ports) = svc.pointer("/spec/ports").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let port = p
                .get("port")
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("spec.ports[{i}].port is not a number"))?;
            let target = match p.get("targetPort") {
                None | Some(Value::Null) => TargetPort::Number(port),
                Some(Value::Number(n)) => TargetPort::Number(
                    n.as_i64()
                        .ok_or_else(|| format!("spec.ports[{i}].targetPort is not an integer"))?,
                ),
                Some(Value::String(s)) => TargetPort::Name(s.clone()),
                Some(other) => {
                    return Err(format!(
                        "spec.ports[{i}].targetPort is neither a number nor a name: {other}"
                    ));
                }
            };
            Ok(ServicePort {
                name: objects::str_at(p, "/name").to_string(),
                port,
                protocol: protocol_of(p),
                app_protocol: p
                    .get("appProtocol")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                target,
            })
        })
        .collect()
}

fn protocol_of(port: &Value) -> String {
    match objects::str_at(port, "/protocol") {
        "" => "TCP".to_string(),
        p => p.to_string(),
    }
}

/// `FindPort`: the port a service port reaches on this pod — the target port's number, or
/// the pod's container port of that name and protocol (in its containers, then in its
/// sidecars: init containers with `restartPolicy: Always`). `None` when the pod has no such
/// port (the pod is then left out for that service port).
pub fn find_port(pod: &Value, port: &ServicePort) -> Option<i64> {
    let name = match &port.target {
        TargetPort::Number(n) => return Some(*n),
        TargetPort::Name(name) => name,
    };
    let in_containers = |containers: Option<&Value>, sidecars_only: bool| {
        containers
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| !sidecars_only || objects::str_at(c, "/restartPolicy") == "Always")
            .flat_map(|c| {
                c.get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .find(|p| objects::str_at(p, "/name") == name && protocol_of(p) == port.protocol)
            .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
    };
    in_containers(pod.pointer("/spec/containers"), false)
        .or_else(|| in_containers(pod.pointer("/spec/initContainers"), true))
}

/// The `targetRef` of a pod's endpoint.
pub fn pod_reference(pod: &Value) -> Value {
    serde_json::json!({
        "kind": "Pod",
        "namespace": objects::namespace(pod).unwrap_or_default(),
        "name": objects::name(pod),
        "uid": objects::uid(pod),
    })
}

/// The time of the last change behind this state of the Service's endpoints, for the
/// `endpoints.kubernetes.io/last-change-trigger-time` annotation: the latest of the
/// Service's creation and its pods' last readiness transitions. (Kubernetes remembers
/// which changes it has not yet written and takes the earliest of those; a controller
/// without memory takes the latest change, which is the same for a single change.)
pub fn last_change_trigger_time(svc: &Value, pods: &[Value]) -> Option<String> {
    let service = std::iter::once(objects::str_at(svc, "/metadata/creationTimestamp"));
    let ready = pods.iter().map(|p| {
        objects::condition(p, "Ready")
            .map(|c| objects::str_at(c, "/lastTransitionTime"))
            .unwrap_or_default()
    });
    service
        .chain(ready)
        .filter_map(|t| Some((cluster::parse_rfc3339(t)?, t)))
        .max_by_key(|(millis, _)| *millis)
        .map(|(_, t)| t.to_string())
}

/// A string map as a JSON object.
pub fn string_map_json(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Test support for the controllers' native unit tests.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {
                "hostname": "h", "subdomain": "svc",
                "containers": [
                    {"name": "a", "ports": [{"name": "http", "containerPort": 8080},
                                            {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}
                ],
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always",
                     "ports": [{"name": "metrics", "containerPort": 9090}]},
                    {"name": "init", "ports": [{"name": "setup", "containerPort": 7070}]}
                ]
            },
            "status": {"podIP": "10.0.0.1", "phase": "Running"}
        })
    }

    fn port(target: Value, protocol: &str) -> ServicePort {
        let svc =
            json!({"spec": {"ports": [{"port": 80, "targetPort": target, "protocol": protocol}]}});
        service_ports(&svc).unwrap().remove(0)
    }

    #[test]
    fn finds_numbered_and_named_ports() {
        let p = pod();
        assert_eq!(find_port(&p, &port(json!(9376), "TCP")), Some(9376));
        assert_eq!(find_port(&p, &port(json!("http"), "TCP")), Some(8080));
        // The protocol must match too.
        assert_eq!(find_port(&p, &port(json!("http"), "UDP")), None);
        assert_eq!(find_port(&p, &port(json!("dns"), "UDP")), Some(53));
        // Sidecars count, plain init containers do not.
        assert_eq!(find_port(&p, &port(json!("metrics"), "TCP")), Some(9090));
        assert_eq!(find_port(&p, &port(json!("setup"), "TCP")), None);
        assert_eq!(find_port(&p, &port(json!("nope"), "TCP")), None);
    }

    #[test]
    fn service_ports_default_protocol_and_target() {
        let svc = json!({"spec": {"ports": [{"name": "web", "port": 80}]}});
        let ports = service_ports(&svc).unwrap();
        assert_eq!(ports[0].protocol, "TCP");
        assert_eq!(ports[0].target, TargetPort::Number(80));
        assert!(service_ports(&json!({"spec": {"ports": [{"port": "x"}]}})).is_err());
        assert!(service_ports(&json!({"spec": {}})).unwrap().is_empty());
    }

    #[test]
    fn which_pods_are_endpoints() {
        let mut p = pod();
        assert!(should_pod_be_in_endpoints(&p, false));
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!should_pod_be_in_endpoints(&p, false));
        assert!(should_pod_be_in_endpoints(&p, true));
        let mut p = pod();
        p["status"]["phase"] = json!("Succeeded");
        assert!(!should_pod_be_in_endpoints(&p, true));
        let mut p = pod();
        p["status"]["podIP"] = json!("");
        assert!(!should_pod_be_in_endpoints(&p, true));
        let mut p = pod();
        p["status"]["podIPs"] = json!([{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]);
        assert_eq!(pod_ips(&p), ["10.0.0.1", "fd00::1"]);
    }

    #[test]
    fn selectors_and_hostnames() {
        let svc = json!({"metadata": {"name": "svc", "namespace": "ns"},
                         "spec": {"selector": {"app": "web", "tier": "fe"}, "clusterIP": "None"}});
        assert_eq!(
            selector_string(managed_selector(&svc).unwrap()),
            "app=web,tier=fe"
        );
        assert!(should_set_hostname(&pod(), &svc));
        assert!(is_headless(&svc) && !is_service_ip_set(&svc));
        assert!(managed_selector(&json!({"spec": {"selector": {}}})).is_none());
        assert!(managed_selector(&json!({"spec": {}})).is_none());
        assert!(
            managed_selector(&json!({"spec": {"type": "ExternalName", "selector": {"a": "b"}}}))
                .is_none()
        );
    }

    #[test]
    fn trigger_time_is_the_latest_change() {
        let svc = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}});
        let ready = |t: &str| json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": t}]}});
        assert_eq!(
            last_change_trigger_time(
                &svc,
                &[ready("2026-01-01T00:00:05Z"), ready("2026-01-01T00:00:03Z")]
            )
            .as_deref(),
            Some("2026-01-01T00:00:05Z")
        );
        assert_eq!(
            last_change_trigger_time(&svc, &[]).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
    }
}
