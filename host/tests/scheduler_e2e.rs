//! The scheduler end to end (issue 5's proof), with the real `kubectl` against a real
//! `tug server` whose nodes are simulated: pods land only on nodes that fit (resources,
//! node selectors, affinity, taints, host ports); a pod no node fits stays Pending with
//! Kubernetes' explanation in an Event and is placed once a fitting node joins; the pods of
//! a Deployment spread over nodes; a second scheduler written in Python (bin-packing) runs
//! beside the built-in one and packs the pods that ask for it; swapping the default policy
//! Plugin at run time changes decisions without a restart.
//!
//! Every test starts its own server. Waits are on conditions, never fixed sleeps.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::wasm::{polyglot_dir, wasm};
use common::{Cluster, check_contains, unique};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(60);

fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = c.kubectl_ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("invalid JSON from {all:?}: {e}\n{out}"))
}

fn apply(c: &Cluster, ns: &str, manifest: &Value) -> String {
    c.kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], &manifest.to_string())
}

fn namespace(c: &Cluster, prefix: &str) -> String {
    let ns = unique(prefix);
    c.kubectl_ok(&["create", "namespace", &ns]);
    ns
}

/// A simulated node: the agent adopts it (heartbeat, Ready) and gives it `allocatable`.
fn node(c: &Cluster, name: &str, allocatable: Value, labels: Value, taints: Value) {
    let mut labels = labels;
    labels["tugboat.dev/simulated"] = json!("true");
    labels["kubernetes.io/hostname"] = json!(name);
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels,
            "annotations": {"tugboat.dev/simulated-allocatable": allocatable.to_string()}},
        "spec": {"taints": taints}});
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &node.to_string());
    // Wait until the node reports what it offers (the agent's first heartbeat).
    c.eventually(SETTLE, &format!("node {name} to be Ready"), || {
        let n = get_json(c, &["node", name]);
        let ready = n["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        let cpu_ok = n["status"]["allocatable"]["cpu"] == allocatable["cpu"];
        (ready && cpu_ok).then_some(())
    });
}

fn pod(name: &str, cpu: &str, extra_spec: Value) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu}}}]}});
    if let Some(m) = extra_spec.as_object() {
        for (k, v) in m {
            if k == "ports" {
                p["spec"]["containers"][0]["ports"] = v.clone();
            } else {
                p["spec"][k] = v.clone();
            }
        }
    }
    p
}

fn node_of(c: &Cluster, ns: &str, pod: &str) -> Option<String> {
    let p = get_json(c, &["pod", "-n", ns, pod]);
    p["spec"]["nodeName"].as_str().map(str::to_string)
}

fn wait_node(c: &Cluster, ns: &str, pod: &str) -> String {
    c.eventually(SETTLE, &format!("pod {pod} to be scheduled"), || {
        node_of(c, ns, pod)
    })
}

/// The messages of the `reason` Events of a pod.
fn events(c: &Cluster, ns: &str, pod: &str, reason: &str) -> Vec<String> {
    let selector = format!("involvedObject.name={pod},reason={reason}");
    let list = get_json(c, &["events", "-n", ns, "--field-selector", &selector]);
    list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["message"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_event(c: &Cluster, ns: &str, pod: &str, reason: &str, contains: &str) -> String {
    c.eventually(
        SETTLE,
        &format!("a {reason} event of {pod} saying {contains:?}"),
        || {
            events(c, ns, pod, reason)
                .into_iter()
                .find(|m| m.contains(contains))
        },
    )
}

fn pods_by_node(c: &Cluster, ns: &str, selector: &str) -> BTreeMap<String, usize> {
    let list = get_json(c, &["pods", "-n", ns, "-l", selector]);
    let mut m = BTreeMap::new();
    for p in list["items"].as_array().cloned().unwrap_or_default() {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            *m.entry(n.to_string()).or_default() += 1;
        }
    }
    m
}

fn upload_blob(c: &Cluster, file_name: &str, bytes: &[u8]) -> String {
    let path = c.data_dir().join(file_name);
    std::fs::write(&path, bytes).expect("writing the component to upload");
    let out = c.kubectl_ok(&[
        "replace",
        "--raw",
        "/tugboat/v1/blobs",
        "-f",
        path.to_str().expect("utf-8 path"),
    ]);
    let v: Value = serde_json::from_str(&out).expect("the blob upload answers JSON");
    v["digest"].as_str().expect("digest").to_string()
}

/// The Python bin-packing scheduler, uploaded and applied as Plugin `name`.
fn apply_bin_packing(c: &Cluster, name: &str) -> String {
    let bytes = std::fs::read(polyglot_dir().join("python-bin-packing.wasm"))
        .expect("python-bin-packing.wasm is built");
    let digest = upload_blob(c, "bin-packing.wasm", &bytes);
    let plugin = json!({"apiVersion": "tugboat.dev/v1alpha1", "kind": "Plugin",
        "metadata": {"name": name},
        "spec": {"kind": "scheduler", "source": {"blob": digest},
            "limits": {"timeoutMs": 5000, "initTimeoutMs": 10000, "memoryBytes": 268435456}}});
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &plugin.to_string());
    c.eventually(SETTLE, &format!("Plugin {name} to run {digest}"), || {
        let p = get_json(c, &["plugin", name]);
        (p["status"]["phase"] == "Ready" && p["status"]["digest"] == json!(digest)).then_some(())
    });
    digest
}

fn deployment(name: &str, replicas: u32, scheduler: Option<&str>) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}});
    if let Some(s) = scheduler {
        d["spec"]["template"]["spec"]["schedulerName"] = json!(s);
    }
    d
}

// ---------------------------------------------------------------- tests

#[test]
fn pods_land_only_on_nodes_that_fit_and_wait_with_the_reason_until_one_does() {
    // The simulated agent adopts the nodes below; its own node goes.
    let c = Cluster::start_with(&["--simulated-nodes", "1"]);
    c.kubectl_ok(&["delete", "node", "sim-0"]);
    node(
        &c,
        "small",
        json!({"cpu": "1", "memory": "4Gi"}),
        json!({"disk": "hdd"}),
        json!([]),
    );
    node(
        &c,
        "ssd",
        json!({"cpu": "4", "memory": "16Gi"}),
        json!({"disk": "ssd"}),
        json!([]),
    );
    node(
        &c,
        "gpu",
        json!({"cpu": "8", "memory": "32Gi"}),
        json!({"accel": "gpu"}),
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    );
    let ns = namespace(&c, "fit");
    let by_gpu_hostname = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu"]}]}]}}});
    let manifests = [
        // 2 CPUs: "small" is too small and "gpu" is tainted.
        pod("big", "2", json!({})),
        pod("hdd", "100m", json!({"nodeSelector": {"disk": "hdd"}})),
        pod(
            "ssd-affinity",
            "100m",
            json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}}),
        ),
        pod(
            "tolerant",
            "100m",
            json!({"affinity": by_gpu_hostname,
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        ),
        pod("intolerant", "100m", json!({"affinity": by_gpu_hostname})),
        pod(
            "port-1",
            "100m",
            json!({"nodeSelector": {"disk": "hdd"},
            "ports": [{"containerPort": 80, "hostPort": 8080}]}),
        ),
    ];
    for m in &manifests {
        apply(&c, &ns, m);
    }
    check_eq!(wait_node(&c, &ns, "big"), "ssd");
    check_eq!(wait_node(&c, &ns, "hdd"), "small");
    check_eq!(wait_node(&c, &ns, "ssd-affinity"), "ssd");
    check_eq!(wait_node(&c, &ns, "tolerant"), "gpu");
    check_eq!(wait_node(&c, &ns, "port-1"), "small");
    // The second pod asking for host port 8080 on an hdd node has nowhere to go.
    apply(
        &c,
        &ns,
        &pod(
            "port-2",
            "100m",
            json!({"nodeSelector": {"disk": "hdd"},
            "ports": [{"containerPort": 80, "hostPort": 8080}]}),
        ),
    );
    let m = wait_event(
        &c,
        &ns,
        "port-2",
        "FailedScheduling",
        "0/3 nodes are available",
    );
    check_eq!(
        m,
        "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}."
    );
    let m = wait_event(
        &c,
        &ns,
        "intolerant",
        "FailedScheduling",
        "0/3 nodes are available",
    );
    check_eq!(
        m,
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector."
    );
    // 16 CPUs fit nowhere: Pending, explained in `kubectl describe`, and in the condition.
    apply(&c, &ns, &pod("huge", "16", json!({})));
    let expected = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu.";
    wait_event(&c, &ns, "huge", "FailedScheduling", expected);
    let describe = c.kubectl_ok(&["describe", "pod", "-n", &ns, "huge"]);
    check_contains(&describe, "FailedScheduling");
    check_contains(&describe, "2 Insufficient cpu");
    check_contains(&describe, "Pending");
    let p = get_json(&c, &["pod", "-n", &ns, "huge"]);
    let cond = p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled").cloned())
        .unwrap_or(Value::Null);
    check_eq!(cond["status"], "False");
    check_eq!(cond["reason"], "Unschedulable");
    check_eq!(node_of(&c, &ns, "huge"), None);
    // A node that fits joins: the pod is placed there.
    node(
        &c,
        "large",
        json!({"cpu": "32", "memory": "128Gi"}),
        json!({}),
        json!([]),
    );
    check_eq!(wait_node(&c, &ns, "huge"), "large");
    let m = wait_event(&c, &ns, "huge", "Scheduled", "Successfully assigned");
    check_eq!(m, format!("Successfully assigned {ns}/huge to large"));
    // Cordoning a node keeps new pods off it.
    c.kubectl_ok(&["cordon", "large"]);
    c.eventually(SETTLE, "the cordon to reach the scheduler", || {
        let n = get_json(&c, &["node", "large"]);
        (n["spec"]["unschedulable"] == true).then_some(())
    });
    apply(&c, &ns, &pod("after-cordon", "16", json!({})));
    wait_event(
        &c,
        &ns,
        "after-cordon",
        "FailedScheduling",
        "1 node(s) were unschedulable",
    );
    check_eq!(node_of(&c, &ns, "after-cordon"), None);
}

#[test]
fn the_pods_of_a_deployment_spread_across_nodes() {
    let c = Cluster::start_with(&["--simulated-nodes", "3"]);
    let ns = namespace(&c, "spread");
    apply(&c, &ns, &deployment("web", 6, None));
    let by_node = c.eventually(SETTLE, "6 pods placed", || {
        let m = pods_by_node(&c, &ns, "app=web");
        (m.values().sum::<usize>() == 6).then_some(m)
    });
    check_eq!(
        by_node.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "pods per node: {by_node:?}"
    );
    c.kubectl_ok(&[
        "rollout",
        "status",
        "-n",
        &ns,
        "deployment/web",
        "--timeout=60s",
    ]);
}

#[test]
fn a_bin_packing_scheduler_in_python_runs_beside_the_default_one() {
    let c = Cluster::start_with(&["--simulated-nodes", "3"]);
    let ns = namespace(&c, "pack");
    // Before it exists, a pod asking for it waits, and says why.
    apply(
        &c,
        &ns,
        &pod("early", "100m", json!({"schedulerName": "bin-packing"})),
    );
    wait_event(
        &c,
        &ns,
        "early",
        "FailedScheduling",
        "no scheduler named \"bin-packing\"",
    );
    check_eq!(node_of(&c, &ns, "early"), None);
    apply_bin_packing(&c, "bin-packing");
    let early = wait_node(&c, &ns, "early");
    // Packed: five pods of the bin-packing scheduler share one node (the one "early" is
    // on: the fullest); then six of the default scheduler spread over all three.
    apply(&c, &ns, &deployment("packed", 5, Some("bin-packing")));
    let packed = c.eventually(SETTLE, "5 packed pods placed", || {
        let m = pods_by_node(&c, &ns, "app=packed");
        (m.values().sum::<usize>() == 5).then_some(m)
    });
    check_eq!(
        packed.keys().cloned().collect::<Vec<_>>(),
        vec![early.clone()],
        "packed pods per node: {packed:?}"
    );
    apply(&c, &ns, &deployment("spread", 6, None));
    let spread = c.eventually(SETTLE, "6 spread pods placed", || {
        let m = pods_by_node(&c, &ns, "app=spread");
        (m.values().sum::<usize>() == 6).then_some(m)
    });
    check_eq!(spread.len(), 3, "spread pods per node: {spread:?}");
    let p = get_json(&c, &["plugin", "bin-packing"]);
    check!(
        p["status"]["scheduler"]["scheduled"].as_u64().unwrap_or(0) >= 1
            || p["status"]["calls"].as_u64().unwrap_or(0) >= 1,
        "the Plugin's status counts its work: {}",
        p["status"]
    );
    // Its log is served (the policy prints nothing by default).
    c.kubectl_ok(&["get", "--raw", "/tugboat/v1/plugins/bin-packing/logs"]);
}

#[test]
fn swapping_the_default_policy_changes_decisions_without_a_restart() {
    let c = Cluster::start_with(&["--simulated-nodes", "3"]);
    let ns = namespace(&c, "swap");
    apply(&c, &ns, &deployment("before", 3, None));
    let before = c.eventually(SETTLE, "3 pods placed", || {
        let m = pods_by_node(&c, &ns, "app=before");
        (m.values().sum::<usize>() == 3).then_some(m)
    });
    check_eq!(before.len(), 3, "the default policy spreads: {before:?}");
    let original = get_json(&c, &["plugin", "default-scheduler"]);
    check_eq!(original["spec"]["source"]["builtin"], "default-scheduler");
    // The default scheduler's Plugin now runs the bin-packing policy.
    let digest = apply_bin_packing(&c, "default-scheduler");
    check!(
        original["status"]["digest"] != json!(digest),
        "a different component"
    );
    apply(&c, &ns, &deployment("after", 4, None));
    let after = c.eventually(SETTLE, "4 pods placed", || {
        let m = pods_by_node(&c, &ns, "app=after");
        (m.values().sum::<usize>() == 4).then_some(m)
    });
    check_eq!(after.len(), 1, "the swapped policy packs: {after:?}");
    // Deleting the Plugin restores the built-in: spreading again.
    c.kubectl_ok(&["delete", "plugin", "default-scheduler"]);
    c.eventually(SETTLE, "the built-in default-scheduler back", || {
        let p = get_json(&c, &["plugin", "default-scheduler"]);
        (p["spec"]["source"]["builtin"] == "default-scheduler" && p["status"]["phase"] == "Ready")
            .then_some(())
    });
    apply(&c, &ns, &deployment("restored", 3, None));
    let restored = c.eventually(SETTLE, "3 pods placed", || {
        let m = pods_by_node(&c, &ns, "app=restored");
        (m.values().sum::<usize>() == 3).then_some(m)
    });
    let nodes: BTreeSet<&String> = restored.keys().collect();
    check!(nodes.len() >= 2, "the built-in spreads again: {restored:?}");
}

#[test]
fn a_scheduler_plugin_that_traps_is_restarted_and_scheduling_goes_on() {
    let c = Cluster::start_with(&["--simulated-nodes", "2"]);
    let ns = namespace(&c, "faulty");
    let digest = upload_blob(&c, "faulty-scheduler.wasm", &wasm("faulty_scheduler"));
    let plugin = json!({"apiVersion": "tugboat.dev/v1alpha1", "kind": "Plugin",
        "metadata": {"name": "faulty"},
        "spec": {"kind": "scheduler", "source": {"blob": digest}}});
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &plugin.to_string());
    c.eventually(SETTLE, "Plugin faulty Ready", || {
        let p = get_json(&c, &["plugin", "faulty"]);
        (p["status"]["phase"] == "Ready").then_some(())
    });
    // One pod makes the plugin trap; the others of its batch, and later ones, are placed.
    for name in ["ok-1", "trap-1", "ok-2"] {
        apply(
            &c,
            &ns,
            &pod(name, "100m", json!({"schedulerName": "faulty"})),
        );
    }
    check_eq!(wait_node(&c, &ns, "ok-1"), "sim-0");
    check_eq!(wait_node(&c, &ns, "ok-2"), "sim-0");
    let m = wait_event(&c, &ns, "trap-1", "FailedScheduling", "failed on this pod");
    check_contains(&m, "refusing to schedule trap-1");
    check_eq!(node_of(&c, &ns, "trap-1"), None);
    apply(
        &c,
        &ns,
        &pod("ok-3", "100m", json!({"schedulerName": "faulty"})),
    );
    check_eq!(wait_node(&c, &ns, "ok-3"), "sim-0");
    // The default scheduler is not affected.
    apply(&c, &ns, &pod("default-1", "100m", json!({})));
    wait_node(&c, &ns, "default-1");
    let status = c.eventually(SETTLE, "the trap counted in the Plugin's status", || {
        let p = get_json(&c, &["plugin", "faulty"]);
        (p["status"]["errors"].as_u64().unwrap_or(0) >= 1).then_some(p["status"].clone())
    });
    check_contains(
        status["lastError"].as_str().unwrap_or(""),
        "refusing to schedule trap-1",
    );
    let logs = c.kubectl_ok(&["get", "--raw", "/tugboat/v1/plugins/faulty/logs"]);
    check_contains(&logs, "refusing to schedule trap-1");
}
