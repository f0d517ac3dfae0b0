use std::time::Duration;

use tugboat_plugin_sdk::controller::{Action, Controller, MapRule};
use tugboat_plugin_sdk::{Value, json};

use crate::testkit::{Cluster, T0, name_of, reconcile};
use crate::{DaemonSetController, REVISION_HASH_LABEL, TEMPLATE_GENERATION_LABEL};

fn node(name: &str, labels: Value, taints: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints}})
}

fn daemonset(name: &str, extra: Value) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        "revisionHistoryLimit": 10,
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
        },
    });
    if let (Some(base), Some(more)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            base.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "kube-system", "generation": 1}, "spec": spec})
}

fn sync(c: &Cluster, name: &str) -> Result<Action, String> {
    reconcile::<DaemonSetController>(c, "apps/v1", "DaemonSet", Some("kube-system"), name)
}

fn ds(c: &Cluster, name: &str) -> Value {
    c.get("apps/v1", "DaemonSet", Some("kube-system"), name)
        .unwrap()
}

/// (node, pod name) for the live pods, sorted by node.
fn placement(c: &Cluster) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = c
        .live_pods()
        .iter()
        .map(|p| {
            (
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                name_of(p).to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn nodes_with_pods(c: &Cluster) -> Vec<String> {
    placement(c).into_iter().map(|(n, _)| n).collect()
}

fn ready_all(c: &Cluster) {
    for p in c.live_pods() {
        if p["status"]["phase"] != "Running" {
            c.set_pod("kube-system", name_of(&p), "Running", true);
        }
    }
}

fn change_template(c: &Cluster, name: &str, image: &str, generation: i64) {
    c.merge(
        "apps/v1",
        "DaemonSet",
        Some("kube-system"),
        name,
        json!({
        "metadata": {"generation": generation},
        "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": image}]}}}}),
    );
}

fn image_of(p: &Value) -> String {
    p["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn init_watches_pods_and_all_nodes() {
    let spec = DaemonSetController::init(&Value::Null).unwrap();
    assert_eq!(spec.kinds[0].kind, "DaemonSet");
    assert!(
        spec.watches
            .iter()
            .any(|w| w.kind == "Pod" && w.map == MapRule::Owner)
    );
    assert!(
        spec.watches
            .iter()
            .any(|w| w.kind == "Node" && w.map == MapRule::All)
    );
}

#[test]
fn one_pod_per_eligible_node() {
    let (c, _g) = Cluster::new(T0);
    c.add(node("n1", json!({"role": "worker"}), json!([])));
    c.add(node(
        "n2",
        json!({"role": "worker"}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    ));
    c.add(node("n3", json!({"role": "infra"}), json!([])));
    c.add(node(
        "n4",
        json!({"role": "worker"}),
        json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
    ));
    let d = c.add(daemonset("agent", json!({"template": {
        "metadata": {"labels": {"app": "agent"}},
        "spec": {"nodeSelector": {"role": "worker"}, "containers": [{"name": "agent", "image": "agent:1"}]}}})));
    assert_eq!(sync(&c, "agent").unwrap(), Action::Done);
    assert_eq!(nodes_with_pods(&c), ["n1", "n4"]);

    let pod = &c.live_pods()[0];
    assert!(name_of(pod).starts_with("agent-"));
    assert_eq!(pod["metadata"]["generateName"], "agent-");
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["uid"],
        d["metadata"]["uid"]
    );
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
    assert_eq!(pod["metadata"]["labels"]["app"], "agent");
    assert_eq!(pod["metadata"]["labels"][TEMPLATE_GENERATION_LABEL], "1");
    let hash = pod["metadata"]["labels"][REVISION_HASH_LABEL]
        .as_str()
        .unwrap();
    assert!(!hash.is_empty());
    let node = pod["spec"]["nodeName"].as_str().unwrap();
    assert_eq!(
        pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
        json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]})
    );
    let keys: Vec<&str> = pod["spec"]["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/disk-pressure",
            "node.kubernetes.io/memory-pressure",
            "node.kubernetes.io/pid-pressure",
            "node.kubernetes.io/unschedulable",
        ]
    );

    let s = &ds(&c, "agent")["status"];
    assert_eq!(s["desiredNumberScheduled"], 2);
    assert_eq!(s["currentNumberScheduled"], 2);
    assert_eq!(s["numberMisscheduled"], 0);
    assert_eq!(s["numberReady"], 0);
    assert_eq!(s["numberUnavailable"], 2);
    assert_eq!(s["updatedNumberScheduled"], 2);
    assert!(s.get("numberAvailable").is_none());
    assert_eq!(s["observedGeneration"], 1);

    // Idempotent.
    sync(&c, "agent").unwrap();
    assert_eq!(c.live_pods().len(), 2);
    ready_all(&c);
    sync(&c, "agent").unwrap();
    let s = &ds(&c, "agent")["status"];
    assert_eq!(
        (s["numberReady"].as_i64(), s["numberAvailable"].as_i64()),
        (Some(2), Some(2))
    );
    assert!(s.get("numberUnavailable").is_none());
}

#[test]
fn pods_follow_nodes_joining_and_leaving() {
    let (c, _g) = Cluster::new(T0);
    c.add(node("n1", json!({}), json!([])));
    c.add(daemonset("agent", json!({})));
    sync(&c, "agent").unwrap();
    assert_eq!(nodes_with_pods(&c), ["n1"]);

    c.add(node("n2", json!({}), json!([])));
    c.add(node("n3", json!({}), json!([])));
    sync(&c, "agent").unwrap();
    assert_eq!(nodes_with_pods(&c), ["n1", "n2", "n3"]);
    assert_eq!(ds(&c, "agent")["status"]["desiredNumberScheduled"], 3);

    tugboat_plugin_sdk::host::delete("v1", "Node", None, "n2").unwrap();
    sync(&c, "agent").unwrap();
    assert_eq!(nodes_with_pods(&c), ["n1", "n3"]);
    assert_eq!(ds(&c, "agent")["status"]["desiredNumberScheduled"], 2);
}

#[test]
fn node_changes_move_pods() {
    let (c, _g) = Cluster::new(T0);
    c.add(node("n1", json!({"ssd": "true"}), json!([])));
    c.add(node("n2", json!({"ssd": "true"}), json!([])));
    c.add(daemonset("ssd", json!({"template": {"metadata": {"labels": {"app": "ssd"}}, "spec": {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "ssd", "operator": "In", "values": ["true"]}]}]}}},
        "containers": [{"name": "agent", "image": "agent:1"}]}}})));
    sync(&c, "ssd").unwrap();
    assert_eq!(nodes_with_pods(&c), ["n1", "n2"]);

    // The label goes: the pod goes.
    c.merge(
        "v1",
        "Node",
        None,
        "n1",
        json!({"metadata": {"labels": {"ssd": null}}}),
    );
    sync(&c, "ssd").unwrap();
    assert_eq!(nodes_with_pods(&c), ["n2"]);

    // A new NoSchedule taint: the running pod stays, but is misscheduled.
    c.merge(
        "v1",
        "Node",
        None,
        "n2",
        json!({"spec": {"taints": [{"key": "maint", "effect": "NoSchedule"}]}}),
    );
    sync(&c, "ssd").unwrap();
    assert_eq!(nodes_with_pods(&c), ["n2"]);
    let s = &ds(&c, "ssd")["status"];
    assert_eq!(
        (
            s["desiredNumberScheduled"].as_i64(),
            s["numberMisscheduled"].as_i64()
        ),
        (Some(0), Some(1))
    );

    // NoExecute: it is evicted.
    c.merge(
        "v1",
        "Node",
        None,
        "n2",
        json!({"spec": {"taints": [{"key": "maint", "effect": "NoExecute"}]}}),
    );
    sync(&c, "ssd").unwrap();
    assert!(nodes_with_pods(&c).is_empty());
}

#[test]
fn failed_and_duplicate_pods_are_cleaned_up() {
    let (c, _g) = Cluster::new(T0);
    c.add(node("n1", json!({}), json!([])));
    c.add(daemonset("agent", json!({})));
    sync(&c, "agent").unwrap();
    let first = placement(&c)[0].1.clone();
    c.set_pod("kube-system", &first, "Failed", false);
    sync(&c, "agent").unwrap();
    assert!(c.live_pods().is_empty(), "the failed pod is deleted");
    assert!(c.event_reasons().contains(&"FailedDaemonPod".to_string()));
    sync(&c, "agent").unwrap();
    let second = placement(&c);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].1, first);

    // A duplicate on the same node (e.g. created by hand with our owner reference).
    let mut dup = c.live_pods()[0].clone();
    c.advance(1000);
    dup["metadata"] = json!({"name": "agent-dup", "namespace": "kube-system",
        "labels": dup["metadata"]["labels"].clone(), "ownerReferences": dup["metadata"]["ownerReferences"].clone()});
    c.add(dup);
    sync(&c, "agent").unwrap();
    assert_eq!(placement(&c), second, "the oldest pod is kept");
}

#[test]
fn rolling_update_replaces_one_pod_at_a_time() {
    let (c, _g) = Cluster::new(T0);
    for n in ["n1", "n2", "n3"] {
        c.add(node(n, json!({}), json!([])));
    }
    c.add(daemonset("agent", json!({})));
    sync(&c, "agent").unwrap();
    ready_all(&c);
    sync(&c, "agent").unwrap();
    let old_hash = c.live_pods()[0]["metadata"]["labels"][REVISION_HASH_LABEL].clone();

    change_template(&c, "agent", "agent:2", 2);
    let mut max_unavailable_seen = 0;
    for round in 0..20 {
        sync(&c, "agent").unwrap();
        let pods = c.live_pods();
        let available = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        max_unavailable_seen = max_unavailable_seen.max(3 - available);
        if pods.len() == 3
            && pods
                .iter()
                .all(|p| image_of(p) == "agent:2" && p["status"]["phase"] == "Running")
        {
            break;
        }
        assert!(round < 19, "the update did not finish");
        ready_all(&c);
    }
    assert_eq!(max_unavailable_seen, 1, "maxUnavailable 1");
    sync(&c, "agent").unwrap();
    for p in c.live_pods() {
        assert_ne!(p["metadata"]["labels"][REVISION_HASH_LABEL], old_hash);
        assert_eq!(p["metadata"]["labels"][TEMPLATE_GENERATION_LABEL], "2");
    }
    let s = &ds(&c, "agent")["status"];
    assert_eq!(s["updatedNumberScheduled"], 3);
    assert_eq!(s["numberAvailable"], 3);
    assert_eq!(s["observedGeneration"], 2);
}

#[test]
fn rolling_update_with_a_percentage_and_unavailable_old_pods_first() {
    let (c, _g) = Cluster::new(T0);
    for n in ["n1", "n2", "n3", "n4"] {
        c.add(node(n, json!({}), json!([])));
    }
    c.add(daemonset("agent", json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%", "maxSurge": 0}}})));
    sync(&c, "agent").unwrap();
    ready_all(&c);
    // n4's pod is not ready: it is replaced regardless of the budget.
    let on_n4 = placement(&c)
        .into_iter()
        .find(|(n, _)| n == "n4")
        .unwrap()
        .1;
    c.set_pod("kube-system", &on_n4, "Running", false);
    change_template(&c, "agent", "agent:2", 2);
    sync(&c, "agent").unwrap();
    // 50% of 4 = 2 available ones, plus the unavailable one.
    assert_eq!(c.live_pods().len(), 1);
    assert!(c.get("v1", "Pod", Some("kube-system"), &on_n4).is_none());
}

#[test]
fn min_ready_seconds_delays_availability() {
    let (c, _g) = Cluster::new(T0);
    c.add(node("n1", json!({}), json!([])));
    c.add(daemonset("agent", json!({"minReadySeconds": 30})));
    sync(&c, "agent").unwrap();
    ready_all(&c);
    assert_eq!(
        sync(&c, "agent").unwrap(),
        Action::RequeueAfter(Duration::from_secs(30))
    );
    let s = &ds(&c, "agent")["status"];
    assert_eq!(s["numberReady"], 1);
    assert!(s.get("numberAvailable").is_none());
    c.advance(30_000);
    assert_eq!(sync(&c, "agent").unwrap(), Action::Done);
    assert_eq!(ds(&c, "agent")["status"]["numberAvailable"], 1);
}

#[test]
fn on_delete_waits_for_pods_to_be_deleted() {
    let (c, _g) = Cluster::new(T0);
    c.add(node("n1", json!({}), json!([])));
    c.add(node("n2", json!({}), json!([])));
    c.add(daemonset(
        "agent",
        json!({"updateStrategy": {"type": "OnDelete"}}),
    ));
    sync(&c, "agent").unwrap();
    ready_all(&c);
    change_template(&c, "agent", "agent:2", 2);
    sync(&c, "agent").unwrap();
    assert!(c.live_pods().iter().all(|p| image_of(p) == "agent:1"));
    assert!(
        ds(&c, "agent")["status"]
            .get("updatedNumberScheduled")
            .is_none()
    );
    let (_, victim) = placement(&c)[0].clone();
    tugboat_plugin_sdk::host::delete("v1", "Pod", Some("kube-system"), &victim).unwrap();
    sync(&c, "agent").unwrap();
    let images: Vec<String> = c.live_pods().iter().map(image_of).collect();
    assert_eq!(images.iter().filter(|i| *i == "agent:2").count(), 1);
    assert_eq!(ds(&c, "agent")["status"]["updatedNumberScheduled"], 1);
}

#[test]
fn surge_starts_the_new_pod_before_deleting_the_old() {
    let (c, _g) = Cluster::new(T0);
    c.add(node("n1", json!({}), json!([])));
    c.add(daemonset("agent", json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}})));
    sync(&c, "agent").unwrap();
    ready_all(&c);
    change_template(&c, "agent", "agent:2", 2);
    sync(&c, "agent").unwrap();
    let mut images: Vec<String> = c.live_pods().iter().map(image_of).collect();
    images.sort();
    assert_eq!(
        images,
        ["agent:1", "agent:2"],
        "both run while the new one starts"
    );
    sync(&c, "agent").unwrap();
    assert_eq!(
        c.live_pods().len(),
        2,
        "the old one stays until the new one is available"
    );
    ready_all(&c);
    sync(&c, "agent").unwrap();
    let images: Vec<String> = c.live_pods().iter().map(image_of).collect();
    assert_eq!(images, ["agent:2"]);
}

#[test]
fn terminating_pods_block_replacement() {
    let (c, _g) = Cluster::new(T0);
    c.graceful_pods(true);
    c.add(node("n1", json!({}), json!([])));
    c.add(daemonset("agent", json!({})));
    sync(&c, "agent").unwrap();
    ready_all(&c);
    change_template(&c, "agent", "agent:2", 2);
    sync(&c, "agent").unwrap();
    assert!(c.live_pods().is_empty(), "the old pod is terminating");
    assert_eq!(c.pods().len(), 1);
    sync(&c, "agent").unwrap();
    assert_eq!(c.pods().len(), 1, "no new pod while the old one terminates");
    c.finish_terminating();
    sync(&c, "agent").unwrap();
    assert_eq!(
        c.live_pods().iter().map(image_of).collect::<Vec<_>>(),
        ["agent:2"]
    );
}

#[test]
fn a_deleting_daemonset_is_left_alone() {
    let (c, _g) = Cluster::new(T0);
    c.add(node("n1", json!({}), json!([])));
    let mut d = daemonset("agent", json!({}));
    d["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    c.add(d);
    assert_eq!(sync(&c, "agent").unwrap(), Action::Done);
    assert!(c.pods().is_empty());
}
