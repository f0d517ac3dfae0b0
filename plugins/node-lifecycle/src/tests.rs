use endpoints_common::testing::Recorder;
use tugboat_plugin_sdk::testing::{FakeCluster, MockHost, set_mock_host};

use super::*;

/// 2026-01-01T00:00:00Z: the tests' "now" is `T0 + seconds`.
const T0: u64 = 1_767_225_600_000;

fn at(seconds: i64) -> String {
    cluster::rfc3339(T0.saturating_add_signed(seconds * 1000))
}

fn condition(kind: &str, status: &str, heartbeat: i64) -> Value {
    json!({"type": kind, "status": status, "reason": "Kubelet", "message": "kubelet says so",
           "lastHeartbeatTime": at(heartbeat), "lastTransitionTime": at(-3600)})
}

/// A node whose kubelet last posted `ready` at `heartbeat` seconds.
fn node(name: &str, ready: &str, heartbeat: i64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": at(-7200),
                     "labels": {"kubernetes.io/os": "linux", "beta.kubernetes.io/os": "linux"}},
        "spec": {},
        "status": {"conditions": [
            condition("Ready", ready, heartbeat),
            condition("MemoryPressure", "False", heartbeat),
            condition("DiskPressure", "False", heartbeat),
            condition("PIDPressure", "False", heartbeat),
        ]}
    })
}

/// A node whose kubelet posted Ready long ago and renews its Lease.
fn node_with_lease(cluster: FakeCluster, name: &str, renewed: i64) -> FakeCluster {
    cluster
        .with_object(node(name, "True", -600))
        .with_object(lease(name, renewed))
}

fn lease(name: &str, renewed: i64) -> Value {
    let t = at(renewed).replace('Z', ".000000Z");
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": t}
    })
}

fn pod(name: &str, node: &str, tolerations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"nodeName": node, "tolerations": tolerations,
                 "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at(-600)}
        ]}
    })
}

fn tolerate(key: &str, seconds: Option<i64>) -> Value {
    let mut t = json!({"key": key, "operator": "Exists", "effect": "NoExecute"});
    if let Some(s) = seconds {
        t["tolerationSeconds"] = json!(s);
    }
    t
}

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        api_version: "v1".into(),
        kind: "Node".into(),
        namespace: None,
        name: name.into(),
    }
}

fn sync_with(name: &str, config: Value) -> Action {
    NodeLifecycleController::init(&config).unwrap();
    let node = host::get("v1", "Node", None, name).unwrap();
    NodeLifecycleController::reconcile(&key(name), node.as_ref()).unwrap()
}

fn sync(name: &str) -> Action {
    sync_with(name, Value::Null)
}

fn get_node(name: &str) -> Value {
    host::get("v1", "Node", None, name).unwrap().unwrap()
}

fn get_pod(name: &str) -> Option<Value> {
    host::get("v1", "Pod", Some("default"), name).unwrap()
}

/// The node's taints as `key:effect@timeAdded`.
fn taints(node: &Value) -> Vec<String> {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}:{}@{}",
                objects::str_at(t, "/key"),
                objects::str_at(t, "/effect"),
                objects::str_at(t, "/timeAdded")
            )
        })
        .collect()
}

fn requeue_secs(action: Action) -> f64 {
    match action {
        Action::RequeueAfter(d) => d.as_secs_f64(),
        Action::Done => panic!("expected a requeue"),
    }
}

fn renew(cluster: &FakeCluster, name: &str, renewed: i64) {
    cluster.update(&lease(name, renewed)).unwrap();
}

#[test]
fn spec_and_config() {
    let spec = NodeLifecycleController::init(&Value::Null).unwrap();
    assert_eq!(spec.kinds[0].kind, "Node");
    assert_eq!(spec.watches[0].kind, "Lease");
    assert_eq!(spec.watches[0].map, MapRule::SameName);
    assert_eq!(spec.watches[1].kind, "Pod");
    assert_eq!(spec.watches[1].map, MapRule::Field("/spec/nodeName".into()));
    assert_eq!(Config::parse(&json!({})).unwrap(), Config::default());
    assert_eq!(Config::default().grace_ms, 40_000);
    let c = Config::parse(&json!({"nodeMonitorGracePeriodSeconds": 10,
                                  "nodeStartupGracePeriodSeconds": 20,
                                  "nodeMonitorPeriodSeconds": 2}))
    .unwrap();
    assert_eq!(
        (c.grace_ms, c.startup_grace_ms, c.monitor_period_ms),
        (10_000, 20_000, 2_000)
    );
    assert!(NodeLifecycleController::init(&json!({"nodeMonitorGracePeriodSeconds": 0})).is_err());
    assert!(
        NodeLifecycleController::init(&json!({"nodeMonitorGracePeriodSeconds": "40s"})).is_err()
    );
    assert_eq!(
        NodeLifecycleController::reconcile(&key("gone"), None).unwrap(),
        Action::Done
    );
}

#[test]
fn a_fresh_lease_keeps_a_node_healthy() {
    let cluster = node_with_lease(FakeCluster::new(), "node-1", -5);
    cluster.set_time(T0);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    let action = sync("node-1");
    assert!(rec.take().is_empty());
    // Looked at again just after the lease would turn stale: renewed at -5, grace 40.
    assert_eq!(requeue_secs(action), 36.0);
    assert_eq!(ready_status(&get_node("node-1")), Some("True"));

    // Without a lease, the status heartbeat alone counts.
    let cluster = FakeCluster::new().with_object(node("node-1", "True", -10));
    cluster.set_time(T0);
    let _g = set_mock_host(cluster.clone());
    assert_eq!(requeue_secs(sync("node-1")), 31.0);
    cluster.set_time(T0 + 41_000);
    sync("node-1");
    assert_eq!(ready_status(&get_node("node-1")), Some("Unknown"));
}

#[test]
fn a_node_whose_lease_stops_becomes_unknown_and_tainted() {
    let cluster = node_with_lease(FakeCluster::new(), "node-1", -41);
    let cluster = node_with_lease(cluster, "node-2", 0)
        .with_object(pod(
            "web-1",
            "node-1",
            json!([tolerate(TAINT_UNREACHABLE, Some(300))]),
        ))
        .with_object(pod("web-2", "node-2", json!([])));
    cluster.set_time(T0);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    let action = sync("node-1");
    assert_eq!(
        rec.take(),
        [
            "update-status Node node-1",
            "update Node node-1",
            "update-status Pod web-1"
        ]
    );
    assert_eq!(requeue_secs(action), 5.0);

    let n = get_node("node-1");
    let ready = objects::condition(&n, "Ready").unwrap();
    assert_eq!(ready["status"], "Unknown");
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    assert_eq!(ready["lastTransitionTime"], at(0));
    assert_eq!(
        ready["lastHeartbeatTime"],
        at(-600),
        "the heartbeat is not touched"
    );
    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(objects::condition(&n, kind).unwrap()["status"], "Unknown");
    }
    assert_eq!(
        taints(&n),
        [
            format!("{TAINT_UNREACHABLE}:NoSchedule@{}", at(0)),
            format!("{TAINT_UNREACHABLE}:NoExecute@{}", at(0)),
        ]
    );
    // Its pod is not ready any more, but tolerates the taint for 300 s.
    let p = get_pod("web-1").unwrap();
    assert_eq!(objects::condition(&p, "Ready").unwrap()["status"], "False");
    // The other node's pod is untouched.
    assert!(objects::pod_is_ready(&get_pod("web-2").unwrap()));

    // Nothing more to do a moment later.
    cluster.set_time(T0 + 5_000);
    sync("node-1");
    assert!(rec.take().is_empty());

    // After the toleration, the pod is evicted (node-2 is still alive, see below).
    renew(&cluster, "node-2", 300);
    cluster.set_time(T0 + 300_000);
    sync("node-1");
    assert_eq!(rec.take(), ["update-status Pod web-1", "delete Pod web-1"]);
    assert!(get_pod("web-1").is_none());
}

#[test]
fn eviction_at_once_after_toleration_seconds_or_never() {
    let mut dead = node("node-1", "Unknown", -600);
    dead["spec"]["taints"] = json!([
        {"key": TAINT_UNREACHABLE, "effect": "NoSchedule", "timeAdded": at(0)},
        {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": at(0)},
    ]);
    let mut deleting = pod("deleting", "node-1", json!([]));
    deleting["metadata"]["deletionTimestamp"] = json!(at(0));
    let cluster = node_with_lease(FakeCluster::new(), "node-2", 0)
        .with_object(dead)
        .with_object(pod("plain", "node-1", json!([])))
        .with_object(pod(
            "other",
            "node-1",
            json!([tolerate("something-else", None)]),
        ))
        .with_object(pod(
            "zero",
            "node-1",
            json!([tolerate(TAINT_UNREACHABLE, Some(0))]),
        ))
        .with_object(pod(
            "brief",
            "node-1",
            json!([tolerate(TAINT_UNREACHABLE, Some(30))]),
        ))
        .with_object(pod(
            "longer",
            "node-1",
            json!([tolerate(TAINT_UNREACHABLE, Some(90))]),
        ))
        .with_object(pod(
            "forever",
            "node-1",
            json!([tolerate(TAINT_UNREACHABLE, None)]),
        ))
        .with_object(pod("everything", "node-1", json!([{"operator": "Exists"}])))
        .with_object(deleting);
    cluster.set_time(T0 + 10_000);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    let slow = json!({"nodeMonitorPeriodSeconds": 3600});
    let action = sync_with("node-1", slow.clone());

    let writes = rec.take();
    for gone in ["plain", "other", "zero"] {
        // The DisruptionTarget condition first, then the delete.
        let status = writes
            .iter()
            .position(|w| *w == format!("update-status Pod {gone}"))
            .unwrap();
        let delete = writes
            .iter()
            .position(|w| *w == format!("delete Pod {gone}"))
            .unwrap();
        assert!(status < delete, "{writes:?}");
        assert!(get_pod(gone).is_none(), "{gone} is evicted at once");
    }
    // And the node's other conditions became Unknown.
    assert_eq!(writes[0], "update-status Node node-1");
    assert_eq!(writes.len(), 7, "{writes:?}");
    for kept in ["brief", "longer", "forever", "everything", "deleting"] {
        assert!(get_pod(kept).is_some(), "{kept} stays for now");
    }
    // Called again when `brief`'s 30 s (from the taint's timeAdded) run out.
    assert_eq!(requeue_secs(action), 20.0);

    cluster.set_time(T0 + 30_000);
    let action = sync_with("node-1", slow.clone());
    assert!(get_pod("brief").is_none());
    assert!(get_pod("longer").is_some());
    assert_eq!(requeue_secs(action), 60.0);

    renew(&cluster, "node-2", 90);
    cluster.set_time(T0 + 90_000);
    let action = sync_with("node-1", slow);
    assert!(get_pod("longer").is_none());
    assert!(get_pod("forever").is_some());
    assert!(get_pod("everything").is_some());
    assert_eq!(requeue_secs(action), 3600.0);
}

#[test]
fn disruption_target_condition_is_set_before_deletion() {
    let mut p = pod("p", "node-1", json!([]));
    assert!(set_pod_condition(
        &mut p,
        "DisruptionTarget",
        "True",
        "DeletionByTaintManager",
        "Taint manager: deleting due to NoExecute taint",
        T0
    ));
    let c = objects::condition(&p, "DisruptionTarget").unwrap();
    assert_eq!(c["reason"], "DeletionByTaintManager");
    assert_eq!(c["lastTransitionTime"], at(0));
    assert!(
        c.get("lastUpdateTime").is_none(),
        "pod conditions have no lastUpdateTime"
    );
    // Setting it again changes nothing.
    assert!(!set_pod_condition(
        &mut p,
        "DisruptionTarget",
        "True",
        "DeletionByTaintManager",
        "Taint manager: deleting due to NoExecute taint",
        T0 + 1000
    ));
}

#[test]
fn a_recovered_node_loses_its_taints() {
    let mut dead = node("node-1", "Unknown", -600);
    dead["spec"]["taints"] = json!([
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
        {"key": TAINT_UNREACHABLE, "effect": "NoSchedule", "timeAdded": at(-100)},
        {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": at(-100)},
    ]);
    let cluster = node_with_lease(FakeCluster::new(), "node-2", 0)
        .with_object(dead)
        .with_object(lease("node-1", -100))
        .with_object(pod(
            "web-1",
            "node-1",
            json!([tolerate(TAINT_UNREACHABLE, Some(300))]),
        ));
    cluster.set_time(T0);
    let _g = set_mock_host(cluster.clone());

    // The kubelet comes back: renews its lease and posts Ready.
    renew(&cluster, "node-1", 0);
    let mut n = get_node("node-1");
    n["status"]["conditions"][0] = condition("Ready", "True", 0);
    cluster.update(&n).unwrap();
    let action = sync("node-1");
    let n = get_node("node-1");
    assert_eq!(taints(&n), ["dedicated:NoSchedule@"]);
    assert_eq!(requeue_secs(action), 41.0);
    assert!(get_pod("web-1").is_some());
}

#[test]
fn a_not_ready_node_gets_not_ready_taints_then_unreachable_ones() {
    let cluster = node_with_lease(FakeCluster::new(), "node-2", 0)
        .with_object(node("node-1", "False", -5))
        .with_object(lease("node-1", -5))
        .with_object(pod("plain", "node-1", json!([])))
        .with_object(pod(
            "kept",
            "node-1",
            json!([
                tolerate(TAINT_NOT_READY, None),
                tolerate(TAINT_UNREACHABLE, None)
            ]),
        ));
    cluster.set_time(T0);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    let action = sync("node-1");
    let n = get_node("node-1");
    assert_eq!(
        taints(&n),
        [
            format!("{TAINT_NOT_READY}:NoSchedule@{}", at(0)),
            format!("{TAINT_NOT_READY}:NoExecute@{}", at(0)),
        ]
    );
    // The kubelet is alive and owns pod status: pods are not marked, but evicted.
    assert!(get_pod("plain").is_none());
    assert!(objects::pod_is_ready(&get_pod("kept").unwrap()));
    assert_eq!(requeue_secs(action), 5.0);

    // Then it goes silent: unreachable replaces not-ready.
    renew(&cluster, "node-2", 60);
    cluster.set_time(T0 + 60_000);
    sync("node-1");
    let n = get_node("node-1");
    assert_eq!(ready_status(&n), Some("Unknown"));
    assert_eq!(
        taints(&n),
        [
            format!("{TAINT_UNREACHABLE}:NoSchedule@{}", at(60)),
            format!("{TAINT_UNREACHABLE}:NoExecute@{}", at(60)),
        ]
    );
    assert!(!objects::pod_is_ready(&get_pod("kept").unwrap()));
}

#[test]
fn nothing_is_evicted_when_every_node_is_down() {
    let cluster = node_with_lease(FakeCluster::new(), "node-1", -100);
    let cluster =
        node_with_lease(cluster, "node-2", -100).with_object(pod("web-1", "node-1", json!([])));
    let mut excluded = node("node-3", "True", 0);
    excluded["metadata"]["labels"][LABEL_EXCLUDE_DISRUPTION] = json!("");
    let cluster = cluster
        .with_object(excluded)
        .with_object(lease("node-3", 0));
    cluster.set_time(T0);
    let _g = set_mock_host(cluster.clone());
    sync("node-1");
    let n = get_node("node-1");
    assert_eq!(ready_status(&n), Some("Unknown"));
    assert_eq!(
        taints(&n),
        [format!("{TAINT_UNREACHABLE}:NoSchedule@{}", at(0))]
    );
    let p = get_pod("web-1").unwrap();
    assert!(
        !objects::pod_is_ready(&p),
        "pods are still marked not ready"
    );

    // node-2 comes back: node-1's pods can go now.
    renew(&cluster, "node-2", 1);
    let mut n2 = get_node("node-2");
    n2["status"]["conditions"][0] = condition("Ready", "True", 1);
    cluster.update(&n2).unwrap();
    cluster.set_time(T0 + 5_000);
    sync("node-1");
    assert_eq!(
        taints(&get_node("node-1")),
        [
            format!("{TAINT_UNREACHABLE}:NoSchedule@{}", at(0)),
            format!("{TAINT_UNREACHABLE}:NoExecute@{}", at(5)),
        ]
    );
    assert!(get_pod("web-1").is_none());
}

#[test]
fn full_disruption_removes_readiness_no_execute_taints() {
    let mut dead = node("node-1", "Unknown", -600);
    dead["spec"]["taints"] = json!([
        {"key": TAINT_UNREACHABLE, "effect": "NoSchedule", "timeAdded": at(-100)},
        {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": at(-100)},
        {"key": "maintenance", "effect": "NoExecute", "timeAdded": at(-100)},
    ]);
    let cluster = FakeCluster::new()
        .with_object(dead)
        .with_object(lease("node-1", -600));
    cluster.set_time(T0);
    let _g = set_mock_host(cluster.clone());
    sync("node-1");
    assert_eq!(
        taints(&get_node("node-1")),
        [
            format!("{TAINT_UNREACHABLE}:NoSchedule@{}", at(-100)),
            format!("maintenance:NoExecute@{}", at(-100)),
        ]
    );
}

#[test]
fn a_node_that_never_posted_status() {
    let fresh = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "creationTimestamp": at(-30)},
        "spec": {}
    });
    let cluster = node_with_lease(FakeCluster::new(), "node-2", 0).with_object(fresh);
    cluster.set_time(T0);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    // Within the startup grace period (60 s from creation): nothing yet.
    assert_eq!(requeue_secs(sync("node-1")), 31.0);
    assert!(rec.take().is_empty());

    cluster.set_time(T0 + 31_000);
    sync("node-1");
    let n = get_node("node-1");
    for kind in KUBELET_CONDITIONS {
        let c = objects::condition(&n, kind).unwrap();
        assert_eq!(c["status"], "Unknown");
        assert_eq!(c["reason"], "NodeStatusNeverUpdated");
        assert_eq!(c["message"], "Kubelet never posted node status.");
        assert_eq!(c["lastHeartbeatTime"], at(-30));
        assert_eq!(c["lastTransitionTime"], at(31));
    }
    assert!(objects::condition(&n, "NetworkUnavailable").is_none());
    assert_eq!(taints(&n).len(), 2);
}

#[test]
fn condition_and_cordon_taints_follow_the_node() {
    let mut n = node("node-1", "True", 0);
    n["status"]["conditions"][1]["status"] = json!("True"); // MemoryPressure
    n["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(condition("NetworkUnavailable", "True", 0));
    n["spec"]["unschedulable"] = json!(true);
    n["spec"]["taints"] = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
    let cluster = FakeCluster::new()
        .with_object(n)
        .with_object(lease("node-1", 0));
    cluster.set_time(T0);
    let _g = set_mock_host(cluster.clone());
    sync("node-1");
    assert_eq!(
        taints(&get_node("node-1")),
        [
            "dedicated:NoSchedule@".to_string(),
            format!("{TAINT_MEMORY_PRESSURE}:NoSchedule@{}", at(0)),
            format!("{TAINT_NETWORK_UNAVAILABLE}:NoSchedule@{}", at(0)),
            format!("{TAINT_UNSCHEDULABLE}:NoSchedule@{}", at(0)),
        ]
    );

    let mut n = get_node("node-1");
    n["status"]["conditions"][1]["status"] = json!("False");
    n["status"]["conditions"][4]["status"] = json!("False");
    n["spec"]["unschedulable"] = json!(false);
    cluster.update(&n).unwrap();
    sync("node-1");
    assert_eq!(taints(&get_node("node-1")), ["dedicated:NoSchedule@"]);
}

#[test]
fn user_no_execute_taints_get_a_time_and_evict() {
    let mut n = node("node-1", "True", 0);
    n["spec"]["taints"] = json!([{"key": "maintenance", "value": "now", "effect": "NoExecute"}]);
    let cluster = FakeCluster::new()
        .with_object(n)
        .with_object(lease("node-1", 0))
        .with_object(pod(
            "tolerant",
            "node-1",
            json!([{"key": "maintenance", "operator": "Equal", "value": "now",
                    "effect": "NoExecute", "tolerationSeconds": 10}]),
        ))
        .with_object(pod(
            "wrong-value",
            "node-1",
            json!([{"key": "maintenance", "operator": "Equal", "value": "later",
                    "effect": "NoExecute"}]),
        ));
    cluster.set_time(T0);
    let _g = set_mock_host(cluster.clone());
    let action = sync("node-1");
    assert_eq!(
        taints(&get_node("node-1")),
        [format!("maintenance:NoExecute@{}", at(0))]
    );
    assert!(get_pod("wrong-value").is_none());
    assert!(get_pod("tolerant").is_some());
    assert_eq!(requeue_secs(action), 10.0);
    cluster.set_time(T0 + 10_000);
    sync("node-1");
    assert!(get_pod("tolerant").is_none());
}

#[test]
fn beta_labels_follow_stable_ones() {
    let mut n = node("node-1", "True", 0);
    n["metadata"]["labels"] = json!({"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64",
                                     "beta.kubernetes.io/arch": "amd64"});
    let cluster = FakeCluster::new()
        .with_object(n)
        .with_object(lease("node-1", 0));
    cluster.set_time(T0);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("node-1");
    assert_eq!(rec.take(), ["update Node node-1"]);
    let labels = objects::labels(&get_node("node-1"));
    assert_eq!(labels["beta.kubernetes.io/os"], "linux");
    assert_eq!(labels["beta.kubernetes.io/arch"], "arm64");
    sync("node-1");
    assert!(rec.take().is_empty());
}

#[test]
fn only_pods_ready_before_the_node_went_away_are_marked() {
    let mut dead = node("node-1", "Unknown", -600);
    dead["status"]["conditions"][0]["lastTransitionTime"] = json!(at(-60));
    let mut readied_later = pod(
        "later",
        "node-1",
        json!([tolerate(TAINT_UNREACHABLE, None)]),
    );
    readied_later["status"]["conditions"][0]["lastTransitionTime"] = json!(at(-30));
    let cluster = node_with_lease(FakeCluster::new(), "node-2", 0)
        .with_object(dead)
        .with_object(pod(
            "before",
            "node-1",
            json!([tolerate(TAINT_UNREACHABLE, None)]),
        ))
        .with_object(readied_later);
    cluster.set_time(T0);
    let _g = set_mock_host(cluster.clone());
    sync("node-1");
    let before = get_pod("before").unwrap();
    assert_eq!(
        objects::condition(&before, "Ready").unwrap()["lastTransitionTime"],
        at(0)
    );
    assert!(!objects::pod_is_ready(&before));
    assert!(objects::pod_is_ready(&get_pod("later").unwrap()));
}

#[test]
fn toleration_matching() {
    let taint = Taint {
        key: "k".into(),
        value: "v".into(),
        effect: "NoExecute".into(),
        added_ms: Some(T0),
    };
    let t = |v: Value| tolerates(&v, &taint);
    assert!(t(
        json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute"})
    ));
    assert!(
        t(json!({"key": "k", "value": "v"})),
        "empty operator means Equal, any effect"
    );
    assert!(!t(json!({"key": "k", "value": "w"})));
    assert!(t(json!({"key": "k", "operator": "Exists"})));
    assert!(
        t(json!({"operator": "Exists"})),
        "an empty key with Exists matches every taint"
    );
    assert!(!t(
        json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})
    ));
    assert!(!t(json!({"key": "other", "operator": "Exists"})));
    assert!(!t(json!({"key": "k", "operator": "Lt", "value": "v"})));

    // The first matching toleration decides; negative seconds mean at once.
    let tolerations = [
        json!({"key": "k", "operator": "Exists", "tolerationSeconds": -5}),
        json!({"key": "k", "operator": "Exists"}),
    ];
    assert_eq!(
        eviction_time(std::slice::from_ref(&taint), &tolerations, T0 + 1),
        Some(T0)
    );
    assert_eq!(
        eviction_time(std::slice::from_ref(&taint), &tolerations[1..], T0),
        None
    );
    assert_eq!(eviction_time(&[taint], &[], T0 + 7), Some(T0 + 7));
    assert_eq!(eviction_time(&[], &[], T0), None);
}

#[test]
fn writes_carry_api_version_and_kind() {
    // The cached object handed to reconcile may come without its type; the writes must name
    // it (the FakeCluster, like the host, finds the object to update by type).
    let mut untyped = node("node-1", "True", -600);
    untyped.as_object_mut().unwrap().remove("apiVersion");
    untyped.as_object_mut().unwrap().remove("kind");
    let cluster = node_with_lease(FakeCluster::new(), "node-2", 0)
        .with_object(node("node-1", "True", -600))
        .with_object(lease("node-1", -100));
    cluster.set_time(T0);
    let _g = set_mock_host(cluster.clone());
    NodeLifecycleController::init(&Value::Null).unwrap();
    NodeLifecycleController::reconcile(&key("node-1"), Some(&untyped)).unwrap();
    let stored = get_node("node-1");
    assert_eq!(ready_status(&stored), Some("Unknown"));
    assert_eq!(taints(&stored).len(), 2);
}
