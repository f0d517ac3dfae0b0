//! Nodes and pods as the compact records scheduler plugins see (`wit/scheduler.wit`):
//! quantities parsed once on the host, requests summed as Kubernetes sums them.

use serde_json::Value;

use crate::api::defaults::Quantity;
use crate::plugin::scheduler::{
    HostPort, Label, NodeInfo, PodInfo, Resources, Taint, TaintEffect, Toleration,
};

/// Kubernetes' scoring defaults for a container that requests no CPU or memory
/// (`DefaultMilliCPURequest`, `DefaultMemoryRequest`).
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 << 20;

/// An empty amount.
pub fn zero() -> Resources {
    Resources {
        milli_cpu: 0,
        memory: 0,
        ephemeral_storage: 0,
        pods: 0,
        scalar: vec![],
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

fn labels_at(v: &Value, ptr: &str) -> Vec<Label> {
    v.pointer(ptr)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    v.as_str().map(|v| Label {
                        key: k.clone(),
                        value: v.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A quantity in whole units, rounded up (`Value()`), or in milli-units (`MilliValue()`).
fn amount(v: &Value, milli: bool) -> i64 {
    let Some(q) = Quantity::from_value(v) else {
        return 0;
    };
    let units = if milli {
        q.milli_value()
    } else {
        q.value_rounded_up()
    };
    let Some(units) = units else {
        return i64::MAX;
    };
    i64::try_from(units).unwrap_or(if units < 0 { 0 } else { i64::MAX })
}

/// Whether a resource name is an extended (scalar) resource the scheduler counts:
/// `example.com/foo`, `hugepages-…`, `attachable-volumes-…` (not the native ones).
fn is_scalar(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

/// Adds a resource list (`{"cpu": "500m", …}`) to `r`.
fn add_list(r: &mut Resources, list: Option<&Value>) {
    let Some(m) = list.and_then(Value::as_object) else {
        return;
    };
    for (name, q) in m {
        match name.as_str() {
            "cpu" => r.milli_cpu = r.milli_cpu.saturating_add(amount(q, true)),
            "memory" => r.memory = r.memory.saturating_add(amount(q, false)),
            "ephemeral-storage" => {
                r.ephemeral_storage = r.ephemeral_storage.saturating_add(amount(q, false))
            }
            "pods" => r.pods = r.pods.saturating_add(amount(q, false)),
            other if is_scalar(other) => {
                let n = amount(q, false);
                match r.scalar.iter_mut().find(|(k, _)| k == other) {
                    Some((_, v)) => *v = v.saturating_add(n),
                    None => r.scalar.push((other.to_string(), n)),
                }
            }
            _ => {}
        }
    }
}

/// `r = max(r, o)` per resource.
fn max_into(r: &mut Resources, o: &Resources) {
    r.milli_cpu = r.milli_cpu.max(o.milli_cpu);
    r.memory = r.memory.max(o.memory);
    r.ephemeral_storage = r.ephemeral_storage.max(o.ephemeral_storage);
    for (k, v) in &o.scalar {
        match r.scalar.iter_mut().find(|(rk, _)| rk == k) {
            Some((_, rv)) => *rv = (*rv).max(*v),
            None => r.scalar.push((k.clone(), *v)),
        }
    }
}

/// A pod's requests as Kubernetes computes them for fitting (`PodRequests`): the sum of
/// the containers (and restartable init containers, "sidecars"), raised to any single
/// init container's requests plus the sidecars started before it, plus the pod
/// overhead; `pods` is 1. The second value is the same with the scoring defaults for
/// containers that request no CPU or memory (`NonZeroRequests`).
pub fn pod_requests(pod: &Value) -> (Resources, Resources) {
    let mut sum = zero();
    let mut sum_nonzero = zero();
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let add_container = |c: &Value, sum: &mut Resources, nz: &mut Resources| {
        let mut r = zero();
        add_list(&mut r, c.pointer("/resources/requests"));
        let mut n = r.clone();
        if c.pointer("/resources/requests/cpu").is_none() {
            n.milli_cpu = DEFAULT_MILLI_CPU;
        }
        if c.pointer("/resources/requests/memory").is_none() {
            n.memory = DEFAULT_MEMORY;
        }
        add_into(sum, &r);
        add_into(nz, &n);
    };
    for c in containers {
        add_container(c, &mut sum, &mut sum_nonzero);
    }
    let inits = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut sidecars = zero();
    let mut sidecars_nz = zero();
    let mut init_max = zero();
    let mut init_max_nz = zero();
    for c in inits {
        let sidecar = c.get("restartPolicy").and_then(Value::as_str) == Some("Always");
        if sidecar {
            add_container(c, &mut sidecars, &mut sidecars_nz);
            continue;
        }
        let mut r = sidecars.clone();
        let mut n = sidecars_nz.clone();
        add_container(c, &mut r, &mut n);
        max_into(&mut init_max, &r);
        max_into(&mut init_max_nz, &n);
    }
    add_into(&mut sum, &sidecars);
    add_into(&mut sum_nonzero, &sidecars_nz);
    max_into(&mut sum, &init_max);
    max_into(&mut sum_nonzero, &init_max_nz);
    let mut overhead = zero();
    add_list(&mut overhead, pod.pointer("/spec/overhead"));
    add_into(&mut sum, &overhead);
    add_into(&mut sum_nonzero, &overhead);
    sum.pods = 1;
    sum_nonzero.pods = 1;
    (sum, sum_nonzero)
}

fn add_into(r: &mut Resources, o: &Resources) {
    r.milli_cpu = r.milli_cpu.saturating_add(o.milli_cpu);
    r.memory = r.memory.saturating_add(o.memory);
    r.ephemeral_storage = r.ephemeral_storage.saturating_add(o.ephemeral_storage);
    r.pods = r.pods.saturating_add(o.pods);
    for (k, v) in &o.scalar {
        match r.scalar.iter_mut().find(|(rk, _)| rk == k) {
            Some((_, rv)) => *rv = rv.saturating_add(*v),
            None => r.scalar.push((k.clone(), *v)),
        }
    }
}

fn effect(s: &str) -> Option<TaintEffect> {
    match s {
        "NoSchedule" => Some(TaintEffect::NoSchedule),
        "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
        "NoExecute" => Some(TaintEffect::NoExecute),
        _ => None,
    }
}

/// A Node as the scheduler sees it.
pub fn node_info(node: &Value) -> NodeInfo {
    let mut allocatable = zero();
    add_list(
        &mut allocatable,
        node.pointer("/status/allocatable")
            .or_else(|| node.pointer("/status/capacity")),
    );
    let taints = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(Taint {
                        key: t.get("key")?.as_str()?.to_string(),
                        value: t
                            .get("value")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        effect: effect(t.get("effect")?.as_str()?)?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    NodeInfo {
        name: str_at(node, "/metadata/name").unwrap_or("").to_string(),
        labels: labels_at(node, "/metadata/labels"),
        allocatable,
        taints,
        unschedulable: node
            .pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// The uid of a pod's controller owner.
fn controller_uid(pod: &Value) -> Option<String> {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid").and_then(Value::as_str))
        .map(str::to_string)
}

fn host_ports(pod: &Value) -> Vec<HostPort> {
    let mut out = vec![];
    let lists = ["/spec/containers", "/spec/initContainers"];
    for list in lists {
        let Some(cs) = pod.pointer(list).and_then(Value::as_array) else {
            continue;
        };
        for c in cs {
            let Some(ports) = c.get("ports").and_then(Value::as_array) else {
                continue;
            };
            for p in ports {
                let port = p.get("hostPort").and_then(Value::as_u64).unwrap_or(0);
                let Ok(port) = u16::try_from(port) else {
                    continue;
                };
                if port == 0 {
                    continue;
                }
                out.push(HostPort {
                    port,
                    protocol: p
                        .get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP")
                        .to_string(),
                    host_ip: p
                        .get("hostIP")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                });
            }
        }
    }
    out
}

fn tolerations(pod: &Value) -> Vec<Toleration> {
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|t| Toleration {
                    key: t
                        .get("key")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    exists: t.get("operator").and_then(Value::as_str) == Some("Exists"),
                    value: t
                        .get("value")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    effect: t.get("effect").and_then(Value::as_str).and_then(effect),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A pod as the scheduler sees it. `pending` pods carry their affinity and spread
/// constraints (what deciding needs); placed pods carry what counting them needs.
pub fn pod_info(pod: &Value, pending: bool) -> PodInfo {
    let (requests, score_requests) = pod_requests(pod);
    let json_at = |ptr: &str| -> Option<String> {
        if !pending {
            return None;
        }
        pod.pointer(ptr)
            .filter(|v| !v.is_null())
            .map(Value::to_string)
    };
    PodInfo {
        uid: str_at(pod, "/metadata/uid").unwrap_or("").to_string(),
        namespace: str_at(pod, "/metadata/namespace").unwrap_or("").to_string(),
        name: str_at(pod, "/metadata/name").unwrap_or("").to_string(),
        labels: labels_at(pod, "/metadata/labels"),
        requests,
        score_requests,
        host_ports: host_ports(pod),
        owner_uid: controller_uid(pod),
        node_name: str_at(pod, "/spec/nodeName")
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        node_selector: if pending {
            labels_at(pod, "/spec/nodeSelector")
        } else {
            vec![]
        },
        tolerations: if pending { tolerations(pod) } else { vec![] },
        affinity: json_at("/spec/affinity"),
        topology_spread_constraints: json_at("/spec/topologySpreadConstraints")
            .filter(|s| s != "[]"),
        priority: pod
            .pointer("/spec/priority")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or(0),
    }
}

/// Whether two node records differ in anything a policy sees.
pub fn node_differs(a: &NodeInfo, b: &NodeInfo) -> bool {
    a.name != b.name
        || a.unschedulable != b.unschedulable
        || !resources_eq(&a.allocatable, &b.allocatable)
        || a.labels.len() != b.labels.len()
        || a.labels
            .iter()
            .zip(&b.labels)
            .any(|(x, y)| x.key != y.key || x.value != y.value)
        || a.taints.len() != b.taints.len()
        || a.taints
            .iter()
            .zip(&b.taints)
            .any(|(x, y)| x.key != y.key || x.value != y.value || x.effect != y.effect)
}

/// Whether two placed-pod records differ in anything a policy counts.
pub fn placed_differs(a: &PodInfo, b: &PodInfo) -> bool {
    a.node_name != b.node_name
        || !resources_eq(&a.requests, &b.requests)
        || !resources_eq(&a.score_requests, &b.score_requests)
        || a.owner_uid != b.owner_uid
        || a.host_ports.len() != b.host_ports.len()
        || a.host_ports
            .iter()
            .zip(&b.host_ports)
            .any(|(x, y)| x.port != y.port || x.protocol != y.protocol || x.host_ip != y.host_ip)
        || a.labels.len() != b.labels.len()
        || a.labels
            .iter()
            .zip(&b.labels)
            .any(|(x, y)| x.key != y.key || x.value != y.value)
}

fn resources_eq(a: &Resources, b: &Resources) -> bool {
    a.milli_cpu == b.milli_cpu
        && a.memory == b.memory
        && a.ephemeral_storage == b.ephemeral_storage
        && a.pods == b.pods
        && a.scalar == b.scalar
}

/// Kubernetes' message for a pod no node fits: `0/3 nodes are available: 1 node(s) had
/// untolerated taint {dedicated: gpu}, 2 Insufficient cpu.` (reasons sorted as strings,
/// as `FitError.Error` sorts them), or `ErrNoNodesAvailable`'s when there is no node.
pub fn fit_error(nodes: usize, reasons: &[(String, u32)]) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut parts: Vec<String> = reasons
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    parts.sort();
    if parts.is_empty() {
        format!("0/{nodes} nodes are available.")
    } else {
        format!("0/{nodes} nodes are available: {}.", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_sum_containers_max_init_and_add_overhead() {
        let pod = json!({"spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"resources": {"requests": {"cpu": "0.5", "example.com/gpu": "1"}}},
            ],
            "initContainers": [
                {"resources": {"requests": {"cpu": "2", "memory": "10Mi"}}},
            ],
            "overhead": {"cpu": "10m"},
        }});
        let (r, nz) = pod_requests(&pod);
        assert_eq!(r.milli_cpu, 2010);
        assert_eq!(r.memory, 64 << 20);
        assert_eq!(r.pods, 1);
        assert_eq!(r.scalar, vec![("example.com/gpu".to_string(), 1)]);
        // The second container requests no memory: 200 MiB for scoring.
        assert_eq!(nz.memory, (64 << 20) + (200 << 20));
        assert_eq!(nz.milli_cpu, 2010);
    }

    #[test]
    fn sidecars_add_to_containers_and_to_later_init_containers() {
        let pod = json!({"spec": {
            "containers": [{"resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                {"resources": {"requests": {"cpu": "1"}}},
            ],
        }});
        let (r, _) = pod_requests(&pod);
        // max(100m + 200m, 200m + 1000m)
        assert_eq!(r.milli_cpu, 1200);
    }

    #[test]
    fn an_empty_pod_requests_one_pod_and_scores_with_the_defaults() {
        let (r, nz) = pod_requests(&json!({"spec": {"containers": [{"name": "c"}]}}));
        assert_eq!((r.milli_cpu, r.memory, r.pods), (0, 0, 1));
        assert_eq!((nz.milli_cpu, nz.memory), (100, 200 << 20));
    }

    #[test]
    fn node_records_parse_allocatable_taints_and_labels() {
        let node = json!({"metadata": {"name": "n1", "labels": {"zone": "a"}},
            "spec": {"unschedulable": true, "taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                {"key": "bad", "effect": "Sideways"}]},
            "status": {"allocatable": {"cpu": "3900m", "memory": "16Gi", "pods": "110",
                "ephemeral-storage": "100Gi"}}});
        let n = node_info(&node);
        assert_eq!(n.allocatable.milli_cpu, 3900);
        assert_eq!(n.allocatable.memory, 16 << 30);
        assert_eq!(n.allocatable.pods, 110);
        assert_eq!(
            n.taints.len(),
            1,
            "a taint with an unknown effect is ignored"
        );
        assert!(n.unschedulable);
        assert_eq!(n.labels[0].key, "zone");
        assert!(!node_differs(&n, &node_info(&node)));
        let mut other = node.clone();
        other["metadata"]["labels"]["zone"] = json!("b");
        assert!(node_differs(&n, &node_info(&other)));
    }

    #[test]
    fn pod_records_carry_ports_owner_tolerations_and_affinity_when_pending() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d", "uid": "u",
                "ownerReferences": [{"uid": "o1"}, {"uid": "rs", "controller": true}]},
            "spec": {"containers": [{"ports": [{"containerPort": 80, "hostPort": 8080}]}],
                "tolerations": [{"operator": "Exists"}],
                "affinity": {"nodeAffinity": {}},
                "priority": 7}});
        let p = pod_info(&pod, true);
        assert_eq!(p.owner_uid.as_deref(), Some("rs"));
        assert_eq!(p.host_ports[0].port, 8080);
        assert_eq!(p.host_ports[0].protocol, "TCP");
        assert!(p.tolerations[0].exists && p.tolerations[0].key.is_empty());
        assert!(p.affinity.is_some());
        assert_eq!(p.priority, 7);
        let placed = pod_info(&pod, false);
        assert!(placed.affinity.is_none() && placed.tolerations.is_empty());
    }

    #[test]
    fn fit_errors_read_like_kubernetes() {
        let m = fit_error(
            3,
            &[
                ("Insufficient cpu".into(), 2),
                ("node(s) had untolerated taint {dedicated: gpu}".into(), 1),
            ],
        );
        assert_eq!(
            m,
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
        );
        assert_eq!(fit_error(0, &[]), "no nodes available to schedule pods");
        assert_eq!(fit_error(2, &[]), "0/2 nodes are available.");
    }
}
