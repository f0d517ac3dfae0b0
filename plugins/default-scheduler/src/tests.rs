//! Native unit tests of the default scheduler.

use std::collections::HashMap;

use serde_json::json;
use tugboat_plugin_sdk::scheduler::*;

use super::*;

const GI: i64 = 1 << 30;

fn scheduler() -> DefaultScheduler {
    DefaultScheduler::new(&json!({})).unwrap()
}

/// A node with `cpu` milli-CPU, `memory` bytes and room for 110 pods.
fn node(name: &str, cpu: i64, memory: i64) -> NodeInfo {
    NodeInfo::new(name, Resources::node(cpu, memory, 110))
}

/// A big node (1000 CPUs, 4 TiB): resource scores barely move with a few pods.
fn big(name: &str) -> NodeInfo {
    node(name, 1_000_000, 4096 * GI)
}

fn pod(uid: &str) -> PodInfo {
    PodInfo::new(uid, "default", uid)
}

fn cpu_pod(uid: &str, cpu: i64) -> PodInfo {
    pod(uid).with_requests(Resources::new(cpu, 0))
}

fn with_nodes(nodes: Vec<NodeInfo>) -> DefaultScheduler {
    let mut s = scheduler();
    s.update(nodes.into_iter().map(ClusterChange::NodeSet).collect());
    s
}

fn place(s: &mut DefaultScheduler, pods: Vec<PodInfo>) {
    s.update(pods.into_iter().map(ClusterChange::PodSet).collect());
}

fn decide(s: &mut DefaultScheduler, p: PodInfo) -> Decision {
    let mut d = s.schedule(vec![p]);
    assert_eq!(d.len(), 1);
    d.remove(0)
}

fn node_of(d: &Decision) -> &str {
    match d {
        Decision::Node(n) => n,
        other => panic!("expected a node, got {other:?}"),
    }
}

/// The reasons as `(reason, nodes)`, in the order given.
fn reasons(d: &Decision) -> Vec<(String, u32)> {
    match d {
        Decision::Unschedulable(r) => r.iter().map(|r| (r.reason.clone(), r.nodes)).collect(),
        other => panic!("expected unschedulable, got {other:?}"),
    }
}

fn r(reason: &str, nodes: u32) -> (String, u32) {
    (reason.to_string(), nodes)
}

fn error_of(d: &Decision) -> &str {
    match d {
        Decision::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Per-node requested (cpu, memory, pods) as the plugin counts them.
fn requested(s: &DefaultScheduler, name: &str) -> (i64, i64, i64) {
    let idx = s.cluster.by_name[name] as usize;
    let n = &s.cluster.nodes[idx];
    (n.requested.cpu, n.requested.memory, n.pod_count)
}

// --- Filters and their reasons --------------------------------------------------------

#[test]
fn reasons_are_counted_per_node_with_kubernetes_wording() {
    let mut s = with_nodes(vec![
        node("n1", 1000, 4 * GI),
        node("n2", 1000, 4 * GI),
        node("n3", 8000, 4 * GI).with_taint(Taint::new(
            "dedicated",
            "gpu",
            TaintEffect::NoSchedule,
        )),
    ]);
    let d = decide(&mut s, cpu_pod("p", 2000));
    assert_eq!(
        reasons(&d),
        vec![
            r("node(s) had untolerated taint {dedicated: gpu}", 1),
            r("Insufficient cpu", 2),
        ]
    );
}

#[test]
fn unschedulable_nodes_unless_tolerated() {
    let mut s = with_nodes(vec![big("n1").cordoned(), big("n2").cordoned()]);
    assert_eq!(
        reasons(&decide(&mut s, pod("p"))),
        vec![r("node(s) were unschedulable", 2)]
    );
    let tolerant = pod("q").with_toleration(
        Toleration::exists(TAINT_UNSCHEDULABLE).with_effect(TaintEffect::NoSchedule),
    );
    assert!(decide(&mut s, tolerant).node_name().is_some());
    // A toleration of another effect does not do.
    let wrong = pod("w").with_toleration(
        Toleration::exists(TAINT_UNSCHEDULABLE).with_effect(TaintEffect::NoExecute),
    );
    assert!(matches!(decide(&mut s, wrong), Decision::Unschedulable(_)));
    // The unschedulable filter comes first: a cordoned node with a taint counts once.
    let mut s = with_nodes(vec![big("n1").cordoned().with_taint(Taint::new(
        "a",
        "b",
        TaintEffect::NoSchedule,
    ))]);
    assert_eq!(
        reasons(&decide(&mut s, pod("p"))),
        vec![r("node(s) were unschedulable", 1)]
    );
}

#[test]
fn node_name_is_honoured() {
    let mut s = with_nodes(vec![big("n1"), big("n2"), big("n3")]);
    for i in 0..5 {
        let d = decide(&mut s, pod(&format!("p{i}")).on_node("n2"));
        assert_eq!(node_of(&d), "n2");
    }
    let d = decide(&mut s, pod("x").on_node("nowhere"));
    assert_eq!(
        reasons(&d),
        vec![r("node(s) didn't match the requested node name", 3)]
    );
    // An empty node name is no request.
    assert!(decide(&mut s, pod("e").on_node("")).node_name().is_some());
}

#[test]
fn taints_need_tolerations() {
    let taint = Taint::new("dedicated", "gpu", TaintEffect::NoSchedule);
    let mut s = with_nodes(vec![big("n1").with_taint(taint.clone())]);
    let reason = vec![r("node(s) had untolerated taint {dedicated: gpu}", 1)];
    assert_eq!(reasons(&decide(&mut s, pod("a"))), reason);
    // Equal with the wrong value, or the wrong effect: not tolerated.
    let p = pod("b").with_toleration(Toleration::equal("dedicated", "cpu"));
    assert_eq!(reasons(&decide(&mut s, p)), reason);
    let p = pod("c")
        .with_toleration(Toleration::equal("dedicated", "gpu").with_effect(TaintEffect::NoExecute));
    assert_eq!(reasons(&decide(&mut s, p)), reason);
    // Equal with the right value and no effect (every effect), Exists for the key, and
    // Exists with an empty key (everything): tolerated.
    for (uid, t) in [
        ("d", Toleration::equal("dedicated", "gpu")),
        (
            "e",
            Toleration::exists("dedicated").with_effect(TaintEffect::NoSchedule),
        ),
        ("f", Toleration::exists("")),
    ] {
        assert_eq!(
            node_of(&decide(&mut s, pod(uid).with_toleration(t))),
            "n1",
            "{uid}"
        );
    }
}

#[test]
fn no_execute_taints_filter_and_prefer_no_schedule_do_not() {
    let mut s = with_nodes(vec![
        big("n1").with_taint(Taint::new("k", "", TaintEffect::NoExecute)),
        big("n2").with_taint(Taint::new("soft", "x", TaintEffect::PreferNoSchedule)),
    ]);
    for i in 0..5 {
        assert_eq!(node_of(&decide(&mut s, pod(&format!("p{i}")))), "n2");
    }
    // The first untolerated taint is the one reported, with an empty value as `{k: }`.
    let mut s = with_nodes(vec![
        big("n1")
            .with_taint(Taint::new("soft", "x", TaintEffect::PreferNoSchedule))
            .with_taint(Taint::new("k", "", TaintEffect::NoExecute))
            .with_taint(Taint::new("z", "1", TaintEffect::NoSchedule)),
    ]);
    assert_eq!(
        reasons(&decide(&mut s, pod("p"))),
        vec![r("node(s) had untolerated taint {k: }", 1)]
    );
}

#[test]
fn prefer_no_schedule_taints_are_avoided_when_possible() {
    let mut s = with_nodes(vec![
        big("tainted").with_taint(Taint::new("soft", "x", TaintEffect::PreferNoSchedule)),
        big("clean"),
    ]);
    for i in 0..10 {
        assert_eq!(node_of(&decide(&mut s, pod(&format!("p{i}")))), "clean");
    }
    // Tolerating it makes both equal: over many pods both are used.
    let mut used = HashMap::new();
    for i in 0..40 {
        let p = pod(&format!("t{i}")).with_toleration(Toleration::exists("soft"));
        *used
            .entry(node_of(&decide(&mut s, p)).to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(used.len(), 2, "{used:?}");
}

#[test]
fn node_selector_must_match_every_entry() {
    let mut s = with_nodes(vec![
        big("n1").with_label("disk", "ssd").with_label("tier", "db"),
        big("n2").with_label("disk", "ssd"),
        big("n3"),
    ]);
    let p = pod("a")
        .with_node_selector("disk", "ssd")
        .with_node_selector("tier", "db");
    assert_eq!(node_of(&decide(&mut s, p)), "n1");
    let p = pod("b").with_node_selector("disk", "hdd");
    assert_eq!(
        reasons(&decide(&mut s, p)),
        vec![r("node(s) didn't match Pod's node affinity/selector", 3)]
    );
}

fn required(terms: serde_json::Value) -> serde_json::Value {
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}})
}

/// The nodes (of n1..n5 below) a pod with `affinity` may go to.
fn allowed_nodes(affinity: serde_json::Value) -> Vec<String> {
    let nodes = vec![
        big("n1").with_label("zone", "a").with_label("cores", "8"),
        big("n2").with_label("zone", "b").with_label("cores", "16"),
        big("n3").with_label("zone", "c").with_label("cores", "32"),
        big("n4").with_label("cores", "many"),
        big("n5"),
    ];
    let mut out = Vec::new();
    for n in nodes {
        let name = n.name.clone();
        let mut s = with_nodes(vec![n]);
        match decide(&mut s, pod("p").with_affinity(&affinity)) {
            Decision::Node(_) => out.push(name),
            Decision::Unschedulable(r) => assert_eq!(
                r,
                vec![ReasonCount::new(
                    "node(s) didn't match Pod's node affinity/selector",
                    1
                )]
            ),
            Decision::Error(e) => panic!("{e}"),
        }
    }
    out
}

#[test]
fn required_node_affinity_operators() {
    let expr = |e: serde_json::Value| required(json!([{"matchExpressions": [e]}]));
    assert_eq!(
        allowed_nodes(expr(
            json!({"key": "zone", "operator": "In", "values": ["a", "c"]})
        )),
        ["n1", "n3"]
    );
    // NotIn matches nodes without the label.
    assert_eq!(
        allowed_nodes(expr(
            json!({"key": "zone", "operator": "NotIn", "values": ["a"]})
        )),
        ["n2", "n3", "n4", "n5"]
    );
    assert_eq!(
        allowed_nodes(expr(json!({"key": "zone", "operator": "Exists"}))),
        ["n1", "n2", "n3"]
    );
    assert_eq!(
        allowed_nodes(expr(json!({"key": "zone", "operator": "DoesNotExist"}))),
        ["n4", "n5"]
    );
    // Gt/Lt compare integers; a label that is no integer never matches.
    assert_eq!(
        allowed_nodes(expr(
            json!({"key": "cores", "operator": "Gt", "values": ["8"]})
        )),
        ["n2", "n3"]
    );
    assert_eq!(
        allowed_nodes(expr(
            json!({"key": "cores", "operator": "Lt", "values": ["32"]})
        )),
        ["n1", "n2"]
    );
}

#[test]
fn required_node_affinity_terms_are_ored_and_expressions_anded() {
    let a = required(json!([
        {"matchExpressions": [
            {"key": "zone", "operator": "Exists"},
            {"key": "cores", "operator": "Gt", "values": ["10"]}
        ]},
        {"matchExpressions": [{"key": "cores", "operator": "In", "values": ["many"]}]}
    ]));
    assert_eq!(allowed_nodes(a), ["n2", "n3", "n4"]);
    // An empty term matches nothing, nor do no terms at all.
    assert!(allowed_nodes(required(json!([{}]))).is_empty());
    assert!(allowed_nodes(required(json!([]))).is_empty());
    // Pod (anti-)affinity alone does not restrict nodes.
    assert_eq!(
        allowed_nodes(json!({"podAntiAffinity": {}})),
        ["n1", "n2", "n3", "n4", "n5"]
    );
}

#[test]
fn match_fields_on_the_node_name() {
    let a = required(json!([{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n2"]}
    ]}]));
    assert_eq!(allowed_nodes(a), ["n2"]);
    let a = required(json!([{"matchFields": [
        {"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}
    ]}]));
    assert_eq!(allowed_nodes(a), ["n1", "n3", "n4", "n5"]);
    // Fields and labels in one term are ANDed.
    let a = required(json!([{
        "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}],
        "matchExpressions": [{"key": "zone", "operator": "Exists"}]
    }]));
    assert_eq!(allowed_nodes(a), ["n2", "n3"]);
}

#[test]
fn node_selector_and_required_affinity_both_apply() {
    let mut s = with_nodes(vec![
        big("n1").with_label("disk", "ssd").with_label("zone", "a"),
        big("n2").with_label("disk", "ssd").with_label("zone", "b"),
        big("n3").with_label("zone", "a"),
    ]);
    let a = required(
        json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]),
    );
    let p = pod("p").with_node_selector("disk", "ssd").with_affinity(&a);
    assert_eq!(node_of(&decide(&mut s, p)), "n1");
}

#[test]
fn preferred_node_affinity_picks_the_heaviest_match() {
    let mut s = with_nodes(vec![
        big("n1").with_label("zone", "a"),
        big("n2").with_label("zone", "b").with_label("disk", "ssd"),
        big("n3").with_label("disk", "ssd"),
    ]);
    let a = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 50, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}},
        {"weight": 0, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
    ]}});
    for i in 0..5 {
        assert_eq!(
            node_of(&decide(&mut s, pod(&format!("p{i}")).with_affinity(&a))),
            "n2"
        );
    }
}

#[test]
fn malformed_or_invalid_affinity_and_constraints_are_errors() {
    let mut s = with_nodes(vec![big("n1")]);
    let mut p = pod("p");
    p.affinity = Some("{not json".into());
    assert!(error_of(&decide(&mut s, p)).contains("spec.affinity is malformed"));
    let bad_op = required(
        json!([{"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]}]),
    );
    assert!(
        error_of(&decide(&mut s, pod("p").with_affinity(&bad_op)))
            .contains("unsupported operator \"Near\"")
    );
    let bad_gt =
        required(json!([{"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["x"]}]}]));
    assert!(error_of(&decide(&mut s, pod("p").with_affinity(&bad_gt))).contains("integer"));
    let bad_in = required(json!([{"matchExpressions": [{"key": "a", "operator": "In"}]}]));
    assert!(
        error_of(&decide(&mut s, pod("p").with_affinity(&bad_in))).contains("at least one value")
    );
    let bad_field =
        required(json!([{"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}]));
    assert!(error_of(&decide(&mut s, pod("p").with_affinity(&bad_field))).contains("for a field"));

    let mut p = pod("p");
    p.topology_spread_constraints = Some("[{\"maxSkew\": \"x\"}]".into());
    assert!(error_of(&decide(&mut s, p)).contains("spec.topologySpreadConstraints is malformed"));
    let c = json!([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Sometimes", "labelSelector": {}}]);
    assert!(
        error_of(&decide(
            &mut s,
            pod("p").with_topology_spread_constraints(&c)
        ))
        .contains("Sometimes")
    );
    let c = json!([{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]);
    assert!(
        error_of(&decide(
            &mut s,
            pod("p").with_topology_spread_constraints(&c)
        ))
        .contains("maxSkew")
    );
    // The errors assume nothing: the next pod is scheduled normally.
    assert_eq!(node_of(&decide(&mut s, pod("ok"))), "n1");
    assert_eq!(s.pod_count(), 1);
    // `null` is no affinity.
    let mut p = pod("n");
    p.affinity = Some("null".into());
    assert_eq!(node_of(&decide(&mut s, p)), "n1");
}

#[test]
fn host_ports_conflict_by_protocol_port_and_address() {
    let mut s = with_nodes(vec![big("n1")]);
    place(
        &mut s,
        vec![
            pod("web")
                .on_node("n1")
                .with_host_port(HostPort::new(80, "TCP")),
        ],
    );
    let reason = vec![r(
        "node(s) didn't have free ports for the requested pod ports",
        1,
    )];
    // Same port and protocol on every address: conflict ("" protocol is TCP).
    assert_eq!(
        reasons(&decide(
            &mut s,
            pod("a").with_host_port(HostPort::new(80, ""))
        )),
        reason
    );
    // A specific address conflicts with one bound to every address.
    assert_eq!(
        reasons(&decide(
            &mut s,
            pod("b").with_host_port(HostPort::new(80, "TCP").with_host_ip("10.0.0.1"))
        )),
        reason
    );
    // Another protocol or port: no conflict.
    assert_eq!(
        node_of(&decide(
            &mut s,
            pod("c").with_host_port(HostPort::new(80, "UDP"))
        )),
        "n1"
    );
    assert_eq!(
        node_of(&decide(
            &mut s,
            pod("d").with_host_port(HostPort::new(81, "TCP"))
        )),
        "n1"
    );
    // Port 0 is no host port.
    assert_eq!(
        node_of(&decide(
            &mut s,
            pod("z").with_host_port(HostPort::new(0, "TCP"))
        )),
        "n1"
    );
    // Two different specific addresses do not conflict; the same one does.
    let mut s = with_nodes(vec![big("n1")]);
    place(
        &mut s,
        vec![
            pod("x")
                .on_node("n1")
                .with_host_port(HostPort::new(53, "UDP").with_host_ip("10.0.0.1")),
        ],
    );
    let other = pod("y").with_host_port(HostPort::new(53, "UDP").with_host_ip("10.0.0.2"));
    assert_eq!(node_of(&decide(&mut s, other)), "n1");
    let same = pod("w").with_host_port(HostPort::new(53, "UDP").with_host_ip("10.0.0.1"));
    assert!(matches!(decide(&mut s, same), Decision::Unschedulable(_)));
    let all = pod("v").with_host_port(HostPort::new(53, "UDP"));
    assert!(matches!(decide(&mut s, all), Decision::Unschedulable(_)));
    // Removing the pods frees their ports.
    s.update(vec![
        ClusterChange::PodRemoved("x".into()),
        ClusterChange::PodRemoved("y".into()),
    ]);
    let all = pod("u").with_host_port(HostPort::new(53, "UDP"));
    assert_eq!(node_of(&decide(&mut s, all)), "n1");
}

#[test]
fn resource_fit_reports_every_insufficient_resource() {
    let mut s = with_nodes(vec![
        NodeInfo::new(
            "n1",
            Resources::node(1000, GI, 110)
                .with_ephemeral_storage(10 * GI)
                .with_scalar("nvidia.com/gpu", 1),
        ),
        node("n2", 4000, 8 * GI),
    ]);
    // Several reasons for one node: each counts that node.
    let p = pod("a").with_requests(Resources::new(2000, 2 * GI).with_ephemeral_storage(20 * GI));
    assert_eq!(
        reasons(&decide(&mut s, p)),
        vec![
            // Sorted as kube-scheduler sorts "<nodes> <reason>".
            r("Insufficient cpu", 1),
            r("Insufficient memory", 1),
            r("Insufficient ephemeral-storage", 2),
        ]
    );
    // An extended resource only some nodes have.
    let gpu =
        |uid: &str| pod(uid).with_requests(Resources::new(100, 0).with_scalar("nvidia.com/gpu", 1));
    assert_eq!(node_of(&decide(&mut s, gpu("g1"))), "n1");
    assert_eq!(
        reasons(&decide(&mut s, gpu("g2"))),
        vec![r("Insufficient nvidia.com/gpu", 2)]
    );
    let tpu = pod("t").with_requests(Resources::new(0, 0).with_scalar("google.com/tpu", 1));
    assert_eq!(
        reasons(&decide(&mut s, tpu)),
        vec![r("Insufficient google.com/tpu", 2)]
    );
}

#[test]
fn pod_capacity_is_checked_even_for_pods_requesting_nothing() {
    let mut s = with_nodes(vec![NodeInfo::new("n1", Resources::node(1000, GI, 2))]);
    assert_eq!(node_of(&decide(&mut s, pod("a"))), "n1");
    assert_eq!(node_of(&decide(&mut s, pod("b"))), "n1");
    assert_eq!(
        reasons(&decide(&mut s, pod("c"))),
        vec![r("Too many pods", 1)]
    );
    // Too many pods and insufficient CPU together.
    assert_eq!(
        reasons(&decide(&mut s, cpu_pod("d", 5000))),
        vec![r("Insufficient cpu", 1), r("Too many pods", 1)]
    );
}

// --- State: assumed pods, updates ------------------------------------------------------

#[test]
fn assumed_pods_count_within_one_batch() {
    let mut s = with_nodes(vec![node("n1", 1000, GI), node("n2", 1000, GI)]);
    let d = s.schedule(vec![
        cpu_pod("a", 1000),
        cpu_pod("b", 1000),
        cpu_pod("c", 1000),
    ]);
    assert_eq!(d.len(), 3);
    let mut nodes = vec![node_of(&d[0]), node_of(&d[1])];
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2"]);
    assert_eq!(reasons(&d[2]), vec![r("Insufficient cpu", 2)]);
    assert_eq!(s.pod_count(), 2);
    // The host confirms with pod-set (same uid): nothing is counted twice.
    let a = cpu_pod("a", 1000).on_node(node_of(&d[0]));
    place(&mut s, vec![a]);
    assert_eq!(requested(&s, node_of(&d[0])), (1000, 0, 1));
    // The host takes one back: its node is free again.
    let b_node = node_of(&d[1]).to_string();
    s.update(vec![ClusterChange::PodRemoved("b".into())]);
    assert_eq!(requested(&s, &b_node), (0, 0, 0));
    assert_eq!(node_of(&decide(&mut s, cpu_pod("c", 1000))), b_node);
}

#[test]
fn pod_set_is_an_idempotent_upsert() {
    let mut s = with_nodes(vec![node("n1", 4000, 8 * GI), node("n2", 4000, 8 * GI)]);
    let p = pod("a")
        .with_requests(Resources::new(1000, GI))
        .on_node("n1");
    place(&mut s, vec![p.clone(), p.clone()]);
    place(&mut s, vec![p]);
    assert_eq!(requested(&s, "n1"), (1000, GI, 1));
    assert_eq!(s.pod_count(), 1);
    // Changed requests replace the old ones; a new node moves the pod.
    place(
        &mut s,
        vec![
            pod("a")
                .with_requests(Resources::new(3000, 2 * GI))
                .on_node("n1"),
        ],
    );
    assert_eq!(requested(&s, "n1"), (3000, 2 * GI, 1));
    place(
        &mut s,
        vec![
            pod("a")
                .with_requests(Resources::new(3000, 2 * GI))
                .on_node("n2"),
        ],
    );
    assert_eq!(requested(&s, "n1"), (0, 0, 0));
    assert_eq!(requested(&s, "n2"), (3000, 2 * GI, 1));
    // A pod-set without a node only drops the earlier record.
    place(&mut s, vec![pod("a")]);
    assert_eq!(requested(&s, "n2"), (0, 0, 0));
    assert_eq!(s.pod_count(), 0);
}

#[test]
fn pod_removed_frees_resources_and_unknown_uids_are_ignored() {
    let mut s = with_nodes(vec![node("n1", 2000, 8 * GI)]);
    place(
        &mut s,
        vec![
            cpu_pod("a", 1500).on_node("n1"),
            cpu_pod("b", 500).on_node("n1"),
        ],
    );
    assert_eq!(
        reasons(&decide(&mut s, cpu_pod("c", 1000))),
        vec![r("Insufficient cpu", 1)]
    );
    s.update(vec![
        ClusterChange::PodRemoved("a".into()),
        ClusterChange::PodRemoved("a".into()),
        ClusterChange::PodRemoved("nobody".into()),
    ]);
    assert_eq!(requested(&s, "n1"), (500, 0, 1));
    assert_eq!(node_of(&decide(&mut s, cpu_pod("c", 1000))), "n1");
}

#[test]
fn node_removed_drops_the_node_and_its_pods_wait_for_it() {
    let mut s = with_nodes(vec![
        node("n1", 1000, GI),
        node("n2", 1000, GI),
        node("n3", 1000, GI),
    ]);
    place(
        &mut s,
        vec![
            cpu_pod("a", 1000).on_node("n1"),
            cpu_pod("c", 1000).on_node("n3"),
        ],
    );
    s.update(vec![
        ClusterChange::NodeRemoved("n1".into()),
        ClusterChange::NodeRemoved("unknown".into()),
    ]);
    assert_eq!(s.node_count(), 2);
    assert_eq!(s.waiting_pod_count(), 1);
    // n3 moved into n1's slot: its pod still counts there.
    assert_eq!(requested(&s, "n3"), (1000, 0, 1));
    assert_eq!(node_of(&decide(&mut s, cpu_pod("x", 1000))), "n2");
    assert_eq!(
        reasons(&decide(&mut s, cpu_pod("y", 1000))),
        vec![r("Insufficient cpu", 2)]
    );
    // The node comes back: its pod counts again.
    s.update(vec![ClusterChange::NodeSet(node("n1", 1000, GI))]);
    assert_eq!(s.waiting_pod_count(), 0);
    assert_eq!(requested(&s, "n1"), (1000, 0, 1));
    // A pod removed while waiting is gone for good.
    s.update(vec![
        ClusterChange::NodeRemoved("n1".into()),
        ClusterChange::PodRemoved("a".into()),
        ClusterChange::NodeSet(node("n1", 1000, GI)),
    ]);
    assert_eq!(requested(&s, "n1"), (0, 0, 0));
}

#[test]
fn pods_on_unknown_nodes_count_once_the_node_is_set() {
    let mut s = scheduler();
    place(&mut s, vec![cpu_pod("a", 800).on_node("later")]);
    assert_eq!(s.waiting_pod_count(), 1);
    assert_eq!(s.pod_count(), 1);
    s.update(vec![ClusterChange::NodeSet(node("later", 1000, GI))]);
    assert_eq!(s.waiting_pod_count(), 0);
    assert_eq!(requested(&s, "later"), (800, 0, 1));
    assert_eq!(
        reasons(&decide(&mut s, cpu_pod("b", 500))),
        vec![r("Insufficient cpu", 1)]
    );
}

#[test]
fn node_set_for_a_known_node_replaces_it_but_keeps_its_pods() {
    let mut s = with_nodes(vec![node("n1", 1000, GI)]);
    place(&mut s, vec![cpu_pod("a", 600).on_node("n1")]);
    s.update(vec![ClusterChange::NodeSet(
        node("n1", 2000, GI)
            .with_label("disk", "ssd")
            .with_taint(Taint::new("t", "", TaintEffect::NoSchedule)),
    )]);
    assert_eq!(s.node_count(), 1);
    assert_eq!(requested(&s, "n1"), (600, 0, 1));
    assert_eq!(
        reasons(&decide(&mut s, cpu_pod("b", 100))),
        vec![r("node(s) had untolerated taint {t: }", 1)]
    );
    let b = cpu_pod("b", 1400)
        .with_node_selector("disk", "ssd")
        .with_toleration(Toleration::exists("t"));
    assert_eq!(node_of(&decide(&mut s, b)), "n1");
    assert_eq!(requested(&s, "n1"), (2000, 0, 2));
}

#[test]
fn no_nodes_means_unschedulable_without_reasons() {
    let mut s = scheduler();
    assert_eq!(
        decide(&mut s, pod("p")),
        Decision::Unschedulable(Vec::new())
    );
    assert!(s.schedule(Vec::new()).is_empty());
}

// --- Scores ---------------------------------------------------------------------------

#[test]
fn least_allocated_prefers_the_emptier_node() {
    let mut s = with_nodes(vec![node("busy", 4000, 8 * GI), node("idle", 4000, 8 * GI)]);
    place(
        &mut s,
        vec![
            pod("x")
                .with_requests(Resources::new(3000, 6 * GI))
                .on_node("busy"),
        ],
    );
    for i in 0..3 {
        let p = pod(&format!("p{i}")).with_requests(Resources::new(200, GI / 4));
        assert_eq!(node_of(&decide(&mut s, p)), "idle");
    }
    assert_eq!(least_requested(0, 0), 0);
    assert_eq!(least_requested(5, 4), 0);
    assert_eq!(least_requested(1, 4), 75);
    assert_eq!(least_requested(i64::MAX / 2, i64::MAX), 50);
}

#[test]
fn balanced_allocation_breaks_an_equal_least_allocated_score() {
    // The pod takes (25%, 25%) of "even" and (10%, 40%) of "skewed": least allocated is 75
    // on both, balanced allocation 100 against 85.
    let mut s = with_nodes(vec![node("skewed", 10_000, 2500), node("even", 4000, 4000)]);
    for i in 0..3 {
        let mut s2 = with_nodes(vec![node("skewed", 10_000, 2500), node("even", 4000, 4000)]);
        let p = pod(&format!("p{i}")).with_requests(Resources::new(1000, 1000));
        assert_eq!(node_of(&decide(&mut s2, p)), "even");
    }
    let p = pod("p").with_requests(Resources::new(1000, 1000));
    let ctx = PodCtx::new(&p, &s.cluster).unwrap();
    let skewed = &s.cluster.nodes[0];
    let even = &s.cluster.nodes[1];
    assert_eq!(least_allocated(skewed, &ctx), 75);
    assert_eq!(least_allocated(even, &ctx), 75);
    assert_eq!(balanced_allocation(skewed, &ctx), 85);
    assert_eq!(balanced_allocation(even, &ctx), 100);
    drop(ctx);
    assert_eq!(node_of(&decide(&mut s, p)), "even");
}

#[test]
fn pods_of_one_owner_spread_across_nodes() {
    let mut s = with_nodes((1..=5).map(|i| big(&format!("n{i}"))).collect());
    let pods = (0..10)
        .map(|i| {
            pod(&format!("p{i}"))
                .with_owner("rs-1")
                .with_label("app", "web")
        })
        .collect();
    let decisions = s.schedule(pods);
    let mut per_node: HashMap<&str, u32> = HashMap::new();
    for d in &decisions {
        *per_node.entry(node_of(d)).or_default() += 1;
    }
    assert_eq!(per_node.len(), 5, "{per_node:?}");
    assert!(per_node.values().all(|c| *c == 2), "{per_node:?}");
}

#[test]
fn pods_of_one_owner_spread_across_zones() {
    // One node in zone a, three in zone b: hostname spreading alone would put a quarter of
    // the pods in zone a; zone spreading puts more there.
    let mut s = with_nodes(vec![
        big("a1").with_label(LABEL_ZONE, "a"),
        big("b1").with_label(LABEL_ZONE, "b"),
        big("b2").with_label(LABEL_ZONE, "b"),
        big("b3").with_label(LABEL_ZONE, "b"),
    ]);
    let pods = (0..8)
        .map(|i| pod(&format!("p{i}")).with_owner("rs-1"))
        .collect();
    let decisions = s.schedule(pods);
    let in_a = decisions.iter().filter(|d| node_of(d) == "a1").count();
    assert!(in_a >= 3, "zone a got {in_a} of 8");
    // Another owner's pods do not count: its first pod may go anywhere, and its pods
    // spread over all four nodes.
    let pods = (0..4)
        .map(|i| pod(&format!("q{i}")).with_owner("rs-2"))
        .collect();
    let mut nodes: Vec<String> = s
        .schedule(pods)
        .iter()
        .map(|d| node_of(d).to_string())
        .collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 4, "{nodes:?}");
}

#[test]
fn zone_counts_follow_placed_pods_and_node_changes() {
    let mut s = with_nodes(vec![
        big("a1").with_label(LABEL_ZONE, "a"),
        big("a2").with_label(LABEL_ZONE, "a"),
        big("b1").with_label(LABEL_ZONE, "b"),
        big("b2").with_label(LABEL_ZONE, "b"),
    ]);
    place(
        &mut s,
        vec![
            pod("x1").with_owner("o").on_node("a1"),
            pod("x2").with_owner("o").on_node("a2"),
        ],
    );
    let zone_a = s.cluster.zones.get("a").unwrap() as usize;
    let zone_b = s.cluster.zones.get("b").unwrap() as usize;
    let owner = s.cluster.owners.get("o").unwrap();
    assert_eq!(s.cluster.owner_zone_counts(owner)[zone_a], 2);
    // The next pod of the owner goes to zone b.
    let d = decide(&mut s, pod("x3").with_owner("o"));
    assert!(node_of(&d).starts_with('b'), "{d:?}");
    // Relabelling a node moves its pods' zone counts.
    s.update(vec![ClusterChange::NodeSet(
        big("a1").with_label(LABEL_ZONE, "b"),
    )]);
    let counts = s.cluster.owner_zone_counts(owner);
    assert_eq!((counts[zone_a], counts[zone_b]), (1, 2));
    // Removing the last pods of an owner frees its id.
    s.update(vec![
        ClusterChange::PodRemoved("x1".into()),
        ClusterChange::PodRemoved("x2".into()),
        ClusterChange::PodRemoved("x3".into()),
    ]);
    assert_eq!(s.cluster.owners.get("o"), None);
}

#[test]
fn ties_are_broken_at_random() {
    let mut s = with_nodes((1..=5).map(|i| big(&format!("n{i}"))).collect());
    let mut used: HashMap<String, u32> = HashMap::new();
    for i in 0..50 {
        *used
            .entry(node_of(&decide(&mut s, pod(&format!("p{i}")))).to_string())
            .or_default() += 1;
    }
    assert_eq!(used.len(), 5, "{used:?}");
    assert!(used.values().all(|c| *c >= 3), "{used:?}");
    // Another seed gives another sequence.
    let run = |seed: u64| {
        let mut s = DefaultScheduler::new(&json!({"seed": seed})).unwrap();
        s.update(
            (1..=5)
                .map(|i| ClusterChange::NodeSet(big(&format!("n{i}"))))
                .collect(),
        );
        (0..20)
            .map(|i| node_of(&decide(&mut s, pod(&format!("p{i}")))).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

// --- Topology spread constraints ------------------------------------------------------

fn web(uid: &str) -> PodInfo {
    pod(uid).with_label("app", "web")
}

fn hard_hostname(max_skew: i64) -> serde_json::Value {
    json!([{
        "maxSkew": max_skew,
        "topologyKey": LABEL_HOSTNAME,
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}
    }])
}

#[test]
fn do_not_schedule_constraint_filters_skewed_nodes() {
    let mut s = with_nodes(vec![
        node("n1", 8000, 8 * GI),
        node("n2", 8000, 8 * GI),
        node("n3", 1000, GI),
    ]);
    place(
        &mut s,
        vec![
            web("a").on_node("n1"),
            web("b").on_node("n2"),
            // Other namespaces and labels do not count.
            PodInfo::new("o", "other", "o")
                .with_label("app", "web")
                .on_node("n3"),
            pod("c").with_label("app", "db").on_node("n3"),
        ],
    );
    let c = hard_hostname(1);
    assert_eq!(
        node_of(&decide(
            &mut s,
            web("p1").with_topology_spread_constraints(&c)
        )),
        "n3"
    );
    // Now 1/1/1: any node. Fill n3 so it has no CPU left: the others are too skewed?
    // No: 1/1/1 + self = 2 - 1 = 1 <= 1 — both other nodes fit.
    let d = decide(
        &mut s,
        web("p2")
            .with_requests(Resources::new(2000, 0))
            .with_topology_spread_constraints(&c),
    );
    let first = node_of(&d).to_string();
    assert_ne!(first, "n3");
    // 2/1/1 (or 1/2/1): a big pod fits only on the other big node… which is fine; then
    // 2/2/1 and a big pod fits nowhere: n3 lacks CPU, the others are too skewed.
    let d = decide(
        &mut s,
        web("p3")
            .with_requests(Resources::new(2000, 0))
            .with_topology_spread_constraints(&c),
    );
    assert_ne!(node_of(&d), first);
    let d = decide(
        &mut s,
        web("p4")
            .with_requests(Resources::new(2000, 0))
            .with_topology_spread_constraints(&c),
    );
    assert_eq!(
        reasons(&d),
        vec![
            r("Insufficient cpu", 1),
            r("node(s) didn't match pod topology spread constraints", 2),
        ]
    );
    // A pod the selector does not match does not count itself.
    let other = pod("p5")
        .with_label("app", "db")
        .with_requests(Resources::new(2000, 0))
        .with_topology_spread_constraints(&c);
    assert!(decide(&mut s, other).node_name().is_some());
}

#[test]
fn do_not_schedule_constraint_needs_the_topology_label() {
    let mut s = with_nodes(vec![
        big("n1").with_label(LABEL_ZONE, "a"),
        big("n2").with_label(LABEL_ZONE, "b"),
        big("n3"),
    ]);
    let c = json!([{
        "maxSkew": 1, "topologyKey": LABEL_ZONE, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}
    }]);
    let decisions = s.schedule(
        (0..6)
            .map(|i| web(&format!("p{i}")).with_topology_spread_constraints(&c))
            .collect(),
    );
    let in_a = decisions.iter().filter(|d| node_of(d) == "n1").count();
    assert_eq!(in_a, 3);
    assert!(decisions.iter().all(|d| node_of(d) != "n3"));
    let only_n3 = web("x").on_node("n3").with_topology_spread_constraints(&c);
    assert_eq!(
        reasons(&decide(&mut s, only_n3)),
        vec![
            r(
                "node(s) didn't match pod topology spread constraints (missing required label)",
                1
            ),
            r("node(s) didn't match the requested node name", 2),
        ]
    );
}

#[test]
fn min_domains_treats_the_global_minimum_as_zero() {
    // Two zones exist but minDomains is 3: the minimum counts as 0, so a zone holding one
    // matching pod already is full with maxSkew 1.
    let mut s = with_nodes(vec![
        big("n1").with_label(LABEL_ZONE, "a"),
        big("n2").with_label(LABEL_ZONE, "b"),
    ]);
    let c = json!([{
        "maxSkew": 1, "topologyKey": LABEL_ZONE, "whenUnsatisfiable": "DoNotSchedule",
        "minDomains": 3, "labelSelector": {"matchLabels": {"app": "web"}}
    }]);
    let d = s.schedule(
        (0..3)
            .map(|i| web(&format!("p{i}")).with_topology_spread_constraints(&c))
            .collect(),
    );
    let mut placed: Vec<&str> = d[..2].iter().map(node_of).collect();
    placed.sort();
    assert_eq!(placed, ["n1", "n2"]);
    assert_eq!(
        reasons(&d[2]),
        vec![r("node(s) didn't match pod topology spread constraints", 2)]
    );
}

#[test]
fn match_label_keys_narrow_the_selector() {
    let mut s = with_nodes(vec![big("n1"), big("n2")]);
    // An older revision's pods sit on n1; with matchLabelKeys on the revision they do not
    // count for the new one.
    place(
        &mut s,
        (0..3)
            .map(|i| web(&format!("old{i}")).with_label("rev", "1").on_node("n1"))
            .collect(),
    );
    let c = json!([{
        "maxSkew": 1, "topologyKey": LABEL_HOSTNAME, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["rev"]
    }]);
    let d = s.schedule(
        (0..4)
            .map(|i| {
                web(&format!("new{i}"))
                    .with_label("rev", "2")
                    .with_topology_spread_constraints(&c)
            })
            .collect(),
    );
    let on_n1 = d.iter().filter(|d| node_of(d) == "n1").count();
    assert_eq!(on_n1, 2, "{d:?}");
}

#[test]
fn schedule_anyway_constraint_prefers_the_emptier_domain() {
    let mut s = with_nodes(vec![
        big("a1").with_label(LABEL_ZONE, "a"),
        big("a2").with_label(LABEL_ZONE, "a"),
        big("b1").with_label(LABEL_ZONE, "b"),
        big("nozone"),
    ]);
    place(
        &mut s,
        vec![web("x1").on_node("a1"), web("x2").on_node("a2")],
    );
    let c = json!([{
        "maxSkew": 1, "topologyKey": LABEL_ZONE, "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "web"}}
    }]);
    // b1 scores best; the node without a zone is ignored by the plugin (scores 0 there).
    assert_eq!(
        node_of(&decide(
            &mut s,
            web("p").with_topology_spread_constraints(&c)
        )),
        "b1"
    );
    // Cache: the pod just assumed counts for the next one (b has 1, a has 2).
    assert_eq!(
        node_of(&decide(
            &mut s,
            web("q").with_topology_spread_constraints(&c)
        )),
        "b1"
    );
    // 2/2 now: zone a or b, never the zoneless node.
    for i in 0..6 {
        let d = decide(
            &mut s,
            web(&format!("r{i}")).with_topology_spread_constraints(&c),
        );
        assert_ne!(node_of(&d), "nozone");
    }
}

#[test]
fn the_spread_cache_is_dropped_on_updates() {
    let mut s = with_nodes(vec![big("n1"), big("n2")]);
    place(&mut s, vec![web("a").on_node("n1"), web("b").on_node("n1")]);
    let c = hard_hostname(1);
    assert_eq!(
        node_of(&decide(
            &mut s,
            web("p").with_topology_spread_constraints(&c)
        )),
        "n2"
    );
    // 2/1: n1 is too skewed for the next.
    assert_eq!(
        node_of(&decide(
            &mut s,
            web("q").with_topology_spread_constraints(&c)
        )),
        "n2"
    );
    // 2/2 → remove both pods from n1: 0/2, so only n1 fits.
    s.update(vec![
        ClusterChange::PodRemoved("a".into()),
        ClusterChange::PodRemoved("b".into()),
    ]);
    assert_eq!(
        node_of(&decide(
            &mut s,
            web("r").with_topology_spread_constraints(&c)
        )),
        "n1"
    );
}

#[test]
fn pods_with_the_same_constraints_share_cached_counts() {
    let mut s = with_nodes(vec![big("n1"), big("n2"), big("n3")]);
    let c = hard_hostname(1);
    // StatefulSet-like pods: a label of their own, the same constraints.
    let d = s.schedule(
        (0..6)
            .map(|i| {
                web(&format!("p{i}"))
                    .with_label("statefulset.kubernetes.io/pod-name", format!("web-{i}"))
                    .with_topology_spread_constraints(&c)
            })
            .collect(),
    );
    assert_eq!(s.cache.len(), 1);
    let mut per_node: HashMap<&str, u32> = HashMap::new();
    for d in &d {
        *per_node.entry(node_of(d)).or_default() += 1;
    }
    assert!(per_node.values().all(|c| *c == 2), "{per_node:?}");
    // Another namespace is another entry; any update drops them all.
    let other = PodInfo::new("o", "other", "o")
        .with_label("app", "web")
        .with_topology_spread_constraints(&c);
    assert!(decide(&mut s, other).node_name().is_some());
    assert_eq!(s.cache.len(), 2);
    s.update(vec![ClusterChange::PodRemoved("p0".into())]);
    assert_eq!(s.cache.len(), 0);
}

// --- Adaptive search -------------------------------------------------------------------

#[test]
fn nodes_to_find_follows_kube_scheduler() {
    assert_eq!(nodes_to_find(0, 0), 0);
    assert_eq!(nodes_to_find(50, 0), 50);
    assert_eq!(nodes_to_find(99, 0), 99);
    assert_eq!(nodes_to_find(100, 0), 100);
    assert_eq!(nodes_to_find(1000, 0), 420);
    assert_eq!(nodes_to_find(5000, 0), 500);
    assert_eq!(nodes_to_find(6000, 0), 300);
    assert_eq!(nodes_to_find(20_000, 0), 1000);
    assert_eq!(nodes_to_find(5000, 100), 5000);
    assert_eq!(nodes_to_find(5000, 1), 100);
    assert_eq!(nodes_to_find(50, 1), 50);
}

#[test]
fn only_a_sample_of_a_large_cluster_is_scored_and_the_start_rotates() {
    let mut s = with_nodes((0..5000).map(|i| big(&format!("n{i}"))).collect());
    decide(&mut s, pod("a"));
    assert_eq!(
        s.last_search(),
        SearchStats {
            start: 0,
            examined: 500,
            feasible: 500
        }
    );
    let d = decide(&mut s, pod("b"));
    assert_eq!(
        s.last_search(),
        SearchStats {
            start: 500,
            examined: 500,
            feasible: 500
        }
    );
    // The chosen node is among those examined.
    let idx: usize = node_of(&d)[1..].parse().unwrap();
    assert!((500..1000).contains(&idx), "{idx}");
    // Infeasible nodes are examined too, and the search wraps around.
    for i in 2..10 {
        decide(&mut s, pod(&format!("p{i}")));
    }
    assert_eq!(s.last_search().start, 4500);
    decide(&mut s, pod("wrap"));
    assert_eq!(s.last_search().start, 0);
    // When nothing fits, every node is examined.
    let d = decide(&mut s, cpu_pod("huge", 10_000_000));
    assert_eq!(reasons(&d), vec![r("Insufficient cpu", 5000)]);
    assert_eq!(s.last_search().examined, 5000);
    assert_eq!(s.last_search().start, 500);
}

#[test]
fn infeasible_nodes_do_not_stop_the_search_early() {
    // Every other node is tainted: to find 500 feasible nodes (1, 3, …, 999), 1000 are
    // examined.
    let mut s = with_nodes(
        (0..5000)
            .map(|i| {
                let n = big(&format!("n{i}"));
                if i % 2 == 0 {
                    n.with_taint(Taint::new("t", "", TaintEffect::NoSchedule))
                } else {
                    n
                }
            })
            .collect(),
    );
    decide(&mut s, pod("a"));
    assert_eq!(s.last_search().examined, 1000);
    assert_eq!(s.last_search().feasible, 500);
}

#[test]
fn percentage_of_nodes_to_score_is_configurable() {
    let mut s = DefaultScheduler::new(&json!({"percentageOfNodesToScore": 100})).unwrap();
    s.update(
        (0..300)
            .map(|i| ClusterChange::NodeSet(big(&format!("n{i}"))))
            .collect(),
    );
    decide(&mut s, pod("a"));
    assert_eq!(s.last_search().feasible, 300);
    let mut s = DefaultScheduler::new(&json!({"percentageOfNodesToScore": 0})).unwrap();
    s.update(
        (0..1000)
            .map(|i| ClusterChange::NodeSet(big(&format!("n{i}"))))
            .collect(),
    );
    decide(&mut s, pod("a"));
    assert_eq!(s.last_search().feasible, 420);
}

#[test]
fn config_is_checked() {
    assert!(DefaultScheduler::new(&Value::Null).is_ok());
    assert!(DefaultScheduler::new(&json!({"seed": 7, "percentageOfNodesToScore": 30})).is_ok());
    let e = DefaultScheduler::new(&json!({"percentageOfNodesToScore": 101})).unwrap_err();
    assert!(e.contains("0 to 100"), "{e}");
    let e = DefaultScheduler::new(&json!({"seed": -1})).unwrap_err();
    assert!(e.contains("config.seed"), "{e}");
    let e = DefaultScheduler::new(&json!({"weights": {}})).unwrap_err();
    assert!(e.contains("config.weights"), "{e}");
    assert!(DefaultScheduler::new(&json!([1])).is_err());
}

// --- Robustness ----------------------------------------------------------------------

/// Random changes and batches with odd values: nothing panics, one decision per pod, and
/// once every pod is gone every node is empty again.
#[test]
fn random_operations_never_panic_and_keep_the_sums_consistent() {
    let seeds: u64 = std::env::var("RANDOM_OPS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    for seed in 0..seeds {
        random_operations(seed);
    }
}

fn random_operations(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut s = scheduler();
    let amounts = [0, 1, 100, 1000, -5, i64::MAX, i64::MIN, 1 << 40];
    let names = ["n0", "n1", "n2", "n3", "n4", "", "zz"];
    let pick = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
    let mut uids = Vec::new();
    for step in 0..3000 {
        let amount = |rng: &mut Rng| amounts[pick(rng, amounts.len())];
        match pick(&mut rng, 6) {
            0 => {
                let mut n = NodeInfo::new(
                    names[pick(&mut rng, names.len())],
                    Resources::node(amount(&mut rng), amount(&mut rng), amount(&mut rng))
                        .with_scalar("x/y", amount(&mut rng)),
                );
                if pick(&mut rng, 2) == 0 {
                    n = n.with_label(LABEL_ZONE, ["a", "b"][pick(&mut rng, 2)]);
                }
                if pick(&mut rng, 4) == 0 {
                    n = n.with_taint(Taint::new("t", "", TaintEffect::PreferNoSchedule));
                }
                s.update(vec![ClusterChange::NodeSet(n)]);
            }
            1 => s.update(vec![ClusterChange::NodeRemoved(
                names[pick(&mut rng, names.len())].into(),
            )]),
            2 => {
                let uid = format!("u{}", pick(&mut rng, 40));
                let mut p = pod(&uid)
                    .with_requests(
                        Resources::new(amount(&mut rng), amount(&mut rng))
                            .with_scalar("x/y", amount(&mut rng)),
                    )
                    .with_host_port(HostPort::new(80, ""));
                p.node_name = Some(names[pick(&mut rng, names.len())].into());
                if pick(&mut rng, 2) == 0 {
                    p = p.with_owner(["o1", "o2"][pick(&mut rng, 2)]);
                }
                uids.push(uid);
                s.update(vec![ClusterChange::PodSet(p)]);
            }
            3 => s.update(vec![ClusterChange::PodRemoved(format!(
                "u{}",
                pick(&mut rng, 40)
            ))]),
            _ => {
                let batch: Vec<PodInfo> = (0..pick(&mut rng, 4))
                    .map(|i| {
                        let mut p = pod(&format!("s{step}-{i}"))
                            .with_owner("o1")
                            .with_label("app", "web")
                            .with_requests(Resources::new(amount(&mut rng), amount(&mut rng)));
                        if pick(&mut rng, 3) == 0 {
                            let when = ["DoNotSchedule", "ScheduleAnyway"][pick(&mut rng, 2)];
                            p = p.with_topology_spread_constraints(&json!([{
                                "maxSkew": 1, "topologyKey": LABEL_ZONE,
                                "whenUnsatisfiable": when,
                                "labelSelector": {"matchLabels": {"app": "web"}}
                            }]));
                        }
                        p
                    })
                    .collect();
                let n = batch.len();
                let d = s.schedule(batch);
                assert_eq!(d.len(), n);
                for (i, d) in d.iter().enumerate() {
                    if d.node_name().is_some() {
                        uids.push(format!("s{step}-{i}"));
                    }
                }
            }
        }
    }
    s.update(uids.into_iter().map(ClusterChange::PodRemoved).collect());
    assert_eq!(s.pod_count(), 0);
    assert_eq!(s.waiting_pod_count(), 0);
    for n in &s.cluster.nodes {
        assert_eq!(n.requested, state::Amounts::default(), "{}", n.name);
        assert_eq!((n.nonzero_cpu, n.nonzero_memory, n.pod_count), (0, 0, 0));
        assert!(n.ports.is_empty() && n.owners.is_empty() && n.pods.is_empty());
    }
    assert!(
        s.cluster
            .owner_zones
            .iter()
            .all(|z| z.iter().all(|c| *c == 0))
    );
}

// --- Benchmark -------------------------------------------------------------------------

/// 5,000 nodes in 3 zones, 1,000 placed pods, then 10,000 pods of 20 Deployments
/// scheduled in batches of 100. Run with
/// `cargo test --release -p default-scheduler -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_10k_pods_on_5k_nodes() {
    use std::time::Instant;

    let mut s = scheduler();
    let nodes: Vec<ClusterChange> = (0..5000)
        .map(|i| {
            ClusterChange::NodeSet(
                NodeInfo::new(format!("node-{i}"), Resources::node(32_000, 128 * GI, 110))
                    .with_label(LABEL_ZONE, format!("zone-{}", i % 3))
                    .with_label("kubernetes.io/os", "linux"),
            )
        })
        .collect();
    s.update(nodes);
    let placed: Vec<ClusterChange> = (0..1000)
        .map(|i| {
            ClusterChange::PodSet(
                PodInfo::new(format!("placed-{i}"), "default", format!("placed-{i}"))
                    .with_requests(Resources::new(500, GI))
                    .with_owner(format!("rs-placed-{}", i % 10))
                    .with_label("app", format!("placed-{}", i % 10))
                    .on_node(format!("node-{}", (i * 7) % 5000)),
            )
        })
        .collect();
    s.update(placed);
    let pods: Vec<PodInfo> = (0..10_000)
        .map(|i| {
            PodInfo::new(format!("pod-{i}"), "default", format!("pod-{i}"))
                .with_requests(Resources::new(100, 128 << 20))
                .with_owner(format!("rs-{}", i % 20))
                .with_label("app", format!("app-{}", i % 20))
                .with_node_selector("kubernetes.io/os", "linux")
        })
        .collect();
    let started = Instant::now();
    let mut placed = 0;
    for batch in pods.chunks(100) {
        for d in s.schedule(batch.to_vec()) {
            if d.node_name().is_some() {
                placed += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(placed, 10_000);
    println!(
        "default-scheduler (native): {} pods over {} nodes in {:.1} ms: {:.1} µs/pod",
        10_000,
        s.node_count(),
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / 10_000.0
    );
}
