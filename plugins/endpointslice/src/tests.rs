use endpoints_common::testing::Recorder;
use tugboat_plugin_sdk::testing::{FakeCluster, MockHost, set_mock_host};

use super::*;

fn service(name: &str, ports: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"team": "blue"},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"selector": {"app": "web"}, "ports": ports, "clusterIP": "10.96.0.10",
                 "ipFamilies": ["IPv4"], "type": "ClusterIP"}
    })
}

fn web_service() -> Value {
    service(
        "web",
        json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]),
    )
}

fn pod(name: &str, ip: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x",
                 "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                   "lastTransitionTime": "2026-01-01T00:01:00Z"}]}
    })
}

fn pods(cluster: FakeCluster, range: std::ops::Range<usize>) -> FakeCluster {
    range.fold(cluster, |c, i| {
        c.with_object(pod(
            &format!("p{i:04}"),
            &format!("10.1.{}.{}", i / 250, i % 250 + 1),
            true,
        ))
    })
}

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        api_version: "v1".into(),
        kind: "Service".into(),
        namespace: Some("default".into()),
        name: name.into(),
    }
}

fn sync(name: &str) -> Action {
    EndpointSliceController::init(&Value::Null).unwrap();
    let svc = host::get("v1", "Service", Some("default"), name).unwrap();
    EndpointSliceController::reconcile(&key(name), svc.as_ref()).unwrap()
}

fn slices(service: &str) -> Vec<Value> {
    managed_slices("default", service).unwrap()
}

fn all_slices() -> Vec<Value> {
    host::list(API_VERSION, KIND, Some("default"), None).unwrap()
}

fn endpoint_count(slices: &[Value]) -> Vec<usize> {
    let mut counts: Vec<usize> = slices
        .iter()
        .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
        .collect();
    counts.sort();
    counts
}

fn endpoint_of<'a>(slice: &'a Value, pod: &str) -> &'a Value {
    slice["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["targetRef"]["name"] == pod)
        .unwrap()
}

fn set_ready(cluster: &FakeCluster, name: &str, ready: bool) {
    let mut p = host::get("v1", "Pod", Some("default"), name)
        .unwrap()
        .unwrap();
    p["status"]["conditions"][0]["status"] = json!(if ready { "True" } else { "False" });
    cluster.update(&p).unwrap();
}

#[test]
fn spec_and_config() {
    let spec = EndpointSliceController::init(&Value::Null).unwrap();
    assert_eq!(spec.kinds[0].kind, "Service");
    assert_eq!(
        spec.watches[0].map,
        MapRule::Selector("/spec/selector".into())
    );
    assert_eq!(spec.watches[1].kind, "EndpointSlice");
    assert_eq!(spec.watches[1].map, MapRule::Owner);
    assert!(EndpointSliceController::init(&json!({"maxEndpointsPerSlice": 0})).is_err());
    assert!(EndpointSliceController::init(&json!({"maxEndpointsPerSlice": "x"})).is_err());
    EndpointSliceController::init(&json!({"maxEndpointsPerSlice": 7})).unwrap();
    assert_eq!(MAX_ENDPOINTS_PER_SLICE.with(Cell::get), 7);
    EndpointSliceController::init(&json!({})).unwrap();
    assert_eq!(
        MAX_ENDPOINTS_PER_SLICE.with(Cell::get),
        DEFAULT_MAX_ENDPOINTS_PER_SLICE
    );
}

#[test]
fn one_slice_with_conditions_ports_labels_and_owner() {
    let mut terminating = pod("c", "10.0.0.3", true);
    terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:02:00Z");
    let mut named = pod("d", "10.0.0.4", true);
    named["spec"]["hostname"] = json!("d0");
    named["spec"]["subdomain"] = json!("web");
    let mut failed = pod("e", "10.0.0.5", false);
    failed["status"]["phase"] = json!("Failed");
    let cluster = FakeCluster::new()
        .with_object(web_service())
        .with_object(pod("a", "10.0.0.1", true))
        .with_object(pod("b", "10.0.0.2", false))
        .with_object(terminating)
        .with_object(named)
        .with_object(failed);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    assert_eq!(sync("web"), Action::Done);
    let writes = rec.take();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with("create EndpointSlice web-"));

    let all = slices("web");
    assert_eq!(all.len(), 1);
    let slice = &all[0];
    let name = objects::name(slice);
    assert_eq!(name.len(), "web-".len() + 5);
    assert_eq!(slice["metadata"]["generateName"], "web-");
    assert_eq!(
        slice["metadata"]["labels"],
        json!({"team": "blue", LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME})
    );
    assert_eq!(
        slice["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-web",
                "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(
        slice["metadata"]["annotations"][ANNOTATION_TRIGGER_TIME],
        "2026-01-01T00:01:00Z"
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(slice["endpoints"].as_array().unwrap().len(), 4);
    assert_eq!(
        endpoint_of(slice, "a"),
        &json!({
            "addresses": ["10.0.0.1"],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}
        })
    );
    assert_eq!(
        endpoint_of(slice, "b")["conditions"],
        json!({"ready": false, "serving": false, "terminating": false})
    );
    assert_eq!(
        endpoint_of(slice, "c")["conditions"],
        json!({"ready": false, "serving": true, "terminating": true})
    );
    assert_eq!(endpoint_of(slice, "d")["hostname"], "d0");

    // Nothing changed: nothing is written.
    sync("web");
    assert!(rec.take().is_empty());
}

#[test]
fn readiness_changes_update_the_slice_in_place() {
    let cluster = FakeCluster::new()
        .with_object(web_service())
        .with_object(pod("a", "10.0.0.1", false))
        .with_object(pod("b", "10.0.0.2", true));
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    let name = objects::name(&slices("web")[0]).to_string();
    rec.take();

    set_ready(&cluster, "a", true);
    sync("web");
    assert_eq!(rec.take(), [format!("update EndpointSlice {name}")]);
    let slice = &slices("web")[0];
    assert_eq!(endpoint_of(slice, "a")["conditions"]["ready"], true);

    set_ready(&cluster, "b", false);
    sync("web");
    assert_eq!(rec.take(), [format!("update EndpointSlice {name}")]);
    assert_eq!(
        endpoint_of(&slices("web")[0], "b")["conditions"]["ready"],
        false
    );

    // A pod goes away: its endpoint leaves the same slice.
    cluster.delete("v1", "Pod", Some("default"), "a").unwrap();
    sync("web");
    assert_eq!(rec.take(), [format!("update EndpointSlice {name}")]);
    let slice = &slices("web")[0];
    assert_eq!(slice["endpoints"].as_array().unwrap().len(), 1);
}

#[test]
fn chunks_of_at_most_100_endpoints() {
    let cluster = pods(FakeCluster::new().with_object(web_service()), 0..250);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    assert_eq!(endpoint_count(&slices("web")), [50, 100, 100]);
    assert_eq!(rec.take().len(), 3);
    let names: BTreeSet<String> = slices("web")
        .iter()
        .map(|s| objects::name(s).to_string())
        .collect();
    assert_eq!(names.len(), 3, "distinct generated names");

    // 30 more fit in the slice with room: one update, no new slice.
    let cluster = pods(cluster, 250..280);
    let _g = set_mock_host(rec.clone());
    sync("web");
    let writes = rec.take();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with("update"));
    assert_eq!(endpoint_count(&slices("web")), [80, 100, 100]);

    // 130 more: a full new slice, and the other 30 in a second new one (none has room).
    pods(cluster, 280..410);
    let _g = set_mock_host(rec.clone());
    sync("web");
    assert_eq!(endpoint_count(&slices("web")), [30, 80, 100, 100, 100]);
    assert!(rec.take().iter().all(|w| w.starts_with("create")));
    sync("web");
    assert!(rec.take().is_empty());
}

#[test]
fn removals_and_additions_share_one_update() {
    let cluster = pods(FakeCluster::new().with_object(web_service()), 0..150);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    assert_eq!(endpoint_count(&slices("web")), [50, 100]);
    rec.take();

    // One pod of the full slice goes, a new pod comes: the slice being updated takes it.
    let full = slices("web")
        .into_iter()
        .find(|s| s["endpoints"].as_array().unwrap().len() == 100)
        .unwrap();
    let gone = full["endpoints"][0]["targetRef"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    cluster.delete("v1", "Pod", Some("default"), &gone).unwrap();
    cluster.create(&pod("newcomer", "10.9.9.9", true)).unwrap();
    sync("web");
    assert_eq!(
        rec.take(),
        [format!("update EndpointSlice {}", objects::name(&full))]
    );
    assert_eq!(endpoint_count(&slices("web")), [50, 100]);
    let full = host::get(API_VERSION, KIND, Some("default"), objects::name(&full))
        .unwrap()
        .unwrap();
    endpoint_of(&full, "newcomer");
}

#[test]
fn emptied_slices_are_deleted_and_a_placeholder_remains() {
    let cluster = pods(FakeCluster::new().with_object(web_service()), 0..150);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    rec.take();

    // Drop the pods of the 50-endpoint slice: it is deleted.
    let small = slices("web")
        .into_iter()
        .find(|s| s["endpoints"].as_array().unwrap().len() == 50)
        .unwrap();
    for e in small["endpoints"].as_array().unwrap() {
        let name = e["targetRef"]["name"].as_str().unwrap();
        cluster.delete("v1", "Pod", Some("default"), name).unwrap();
    }
    sync("web");
    assert_eq!(
        rec.take(),
        [format!("delete EndpointSlice {}", objects::name(&small))]
    );
    assert_eq!(endpoint_count(&slices("web")), [100]);

    // Every pod goes: the last slice is reused as the empty placeholder.
    let last = objects::name(&slices("web")[0]).to_string();
    for p in host::list("v1", "Pod", Some("default"), None).unwrap() {
        cluster
            .delete("v1", "Pod", Some("default"), objects::name(&p))
            .unwrap();
    }
    sync("web");
    assert_eq!(rec.take(), [format!("update EndpointSlice {last}")]);
    let all = slices("web");
    assert_eq!(all.len(), 1);
    assert_eq!(objects::name(&all[0]), last);
    assert_eq!(all[0]["endpoints"], json!([]));
    assert_eq!(all[0]["ports"], json!([]));
    sync("web");
    assert!(rec.take().is_empty(), "the placeholder is stable");
}

#[test]
fn a_service_without_pods_gets_a_placeholder() {
    let cluster = FakeCluster::new().with_object(web_service());
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    assert_eq!(rec.take().len(), 1);
    let all = slices("web");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["endpoints"], json!([]));
    assert_eq!(all[0]["ports"], json!([]));
    sync("web");
    assert!(rec.take().is_empty());

    // A first pod arrives: the placeholder becomes its slice.
    let placeholder = objects::name(&all[0]).to_string();
    cluster.create(&pod("a", "10.0.0.1", true)).unwrap();
    sync("web");
    assert_eq!(rec.take(), [format!("update EndpointSlice {placeholder}")]);
    let all = slices("web");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["ports"][0]["port"], 8080);
    endpoint_of(&all[0], "a");
}

#[test]
fn named_ports_split_pods_into_port_sets() {
    let svc = service(
        "web",
        json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]),
    );
    let mut other = pod("b", "10.0.0.2", true);
    other["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9000);
    let mut none = pod("c", "10.0.0.3", true);
    none["spec"]["containers"][0]["ports"] = json!([]);
    let cluster = FakeCluster::new()
        .with_object(svc)
        .with_object(pod("a", "10.0.0.1", true))
        .with_object(other)
        .with_object(none);
    let _g = set_mock_host(cluster.clone());
    sync("web");
    let all = slices("web");
    assert_eq!(all.len(), 3);
    let names_by_ports = |ports: Value| -> Vec<String> {
        let slice = all.iter().find(|s| s["ports"] == ports).unwrap();
        slice["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["targetRef"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names_by_ports(json!([{"name": "http", "port": 8080, "protocol": "TCP"}])),
        ["a"]
    );
    assert_eq!(
        names_by_ports(json!([{"name": "http", "port": 9000, "protocol": "TCP"}])),
        ["b"]
    );
    // A pod without the named port is still an endpoint, of the Service's other ports (none).
    assert_eq!(names_by_ports(json!([])), ["c"]);

    // b's port changes to 8080: it moves to a's slice, its own is deleted.
    let mut b = host::get("v1", "Pod", Some("default"), "b")
        .unwrap()
        .unwrap();
    b["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
    cluster.update(&b).unwrap();
    sync("web");
    let all = slices("web");
    assert_eq!(all.len(), 2);
    assert_eq!(endpoint_count(&all), [1, 2]);
}

#[test]
fn services_without_selector_or_external_name_are_left_alone() {
    let mut manual = web_service();
    manual["spec"].as_object_mut().unwrap().remove("selector");
    let user_slice = json!({
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": "web-manual", "namespace": "default",
                     "labels": {LABEL_SERVICE_NAME: "web"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["192.168.0.1"]}], "ports": []
    });
    let mut external = web_service();
    external["metadata"]["name"] = json!("ext");
    external["spec"]["type"] = json!("ExternalName");
    let cluster = FakeCluster::new()
        .with_object(manual)
        .with_object(external)
        .with_object(user_slice.clone())
        .with_object(pod("a", "10.0.0.1", true));
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    sync("ext");
    assert!(rec.take().is_empty());
    assert_eq!(all_slices(), [user_slice]);
}

#[test]
fn deleted_service_loses_its_managed_slices() {
    let user_slice = json!({
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": "web-manual", "namespace": "default",
                     "labels": {LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: "someone-else"}},
        "addressType": "IPv4", "endpoints": [], "ports": []
    });
    let cluster = pods(
        FakeCluster::new()
            .with_object(web_service())
            .with_object(user_slice.clone()),
        0..120,
    );
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    assert_eq!(slices("web").len(), 2);
    rec.take();
    cluster
        .delete("v1", "Service", Some("default"), "web")
        .unwrap();
    EndpointSliceController::reconcile(&key("web"), None).unwrap();
    assert_eq!(rec.take().len(), 2);
    assert_eq!(all_slices(), [user_slice]);
}

#[test]
fn slices_of_a_previous_service_are_replaced() {
    // A slice left by an earlier Service of the same name (another uid).
    let old = json!({
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": "web-old", "namespace": "default", "resourceVersion": "5",
                     "labels": {LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                          "uid": "uid-old", "controller": true}]},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                       "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    });
    let cluster = FakeCluster::new()
        .with_object(web_service())
        .with_object(old)
        .with_object(pod("a", "10.0.0.1", true));
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    let writes = rec.take();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(writes.contains(&"delete EndpointSlice web-old".to_string()));
    let all = slices("web");
    assert_eq!(all.len(), 1);
    assert!(owned_by(&all[0], &web_service()));
}

#[test]
fn no_new_slices_for_a_service_being_deleted() {
    let mut svc = web_service();
    svc["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:05:00Z");
    let cluster = FakeCluster::new()
        .with_object(svc)
        .with_object(pod("a", "10.0.0.1", true));
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    assert!(rec.take().is_empty());
}

#[test]
fn one_address_type_per_ip_family() {
    let mut svc = web_service();
    svc["spec"]["ipFamilies"] = json!(["IPv4", "IPv6"]);
    let mut dual = pod("a", "10.0.0.1", true);
    dual["status"]["podIPs"] = json!([{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]);
    let cluster = FakeCluster::new().with_object(svc).with_object(dual);
    let _g = set_mock_host(cluster.clone());
    sync("web");
    let all = slices("web");
    let by_type: BTreeMap<&str, &Value> = all
        .iter()
        .map(|s| {
            (
                s["addressType"].as_str().unwrap(),
                &s["endpoints"][0]["addresses"],
            )
        })
        .collect();
    assert_eq!(by_type["IPv4"], &json!(["10.0.0.1"]));
    assert_eq!(by_type["IPv6"], &json!(["fd00::1"]));

    // Back to single stack: the IPv6 slice goes.
    let mut svc = host::get("v1", "Service", Some("default"), "web")
        .unwrap()
        .unwrap();
    svc["spec"]["ipFamilies"] = json!(["IPv4"]);
    cluster.update(&svc).unwrap();
    sync("web");
    let all = slices("web");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["addressType"], "IPv4");
}

#[test]
fn headless_services_and_published_not_ready_addresses() {
    let mut svc = service("db", json!([]));
    svc["spec"]["clusterIP"] = json!("None");
    svc["spec"]["publishNotReadyAddresses"] = json!(true);
    let mut not_ready = pod("a", "10.0.0.1", false);
    not_ready["spec"]["hostname"] = json!("db-0");
    not_ready["spec"]["subdomain"] = json!("db");
    let cluster = FakeCluster::new().with_object(svc).with_object(not_ready);
    let _g = set_mock_host(cluster.clone());
    sync("db");
    let all = slices("db");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["metadata"]["labels"][LABEL_HEADLESS], "");
    assert_eq!(all[0]["ports"], json!([]));
    let e = endpoint_of(&all[0], "a");
    assert_eq!(
        e["conditions"],
        json!({"ready": true, "serving": false, "terminating": false})
    );
    assert_eq!(e["hostname"], "db-0");
}

#[test]
fn service_label_changes_reach_the_slices() {
    let cluster = pods(FakeCluster::new().with_object(web_service()), 0..3);
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    rec.take();
    let mut svc = host::get("v1", "Service", Some("default"), "web")
        .unwrap()
        .unwrap();
    svc["metadata"]["labels"] = json!({"team": "red", LABEL_SERVICE_NAME: "ignored"});
    cluster.update(&svc).unwrap();
    sync("web");
    assert_eq!(rec.take().len(), 1);
    assert_eq!(
        slices("web")[0]["metadata"]["labels"],
        json!({"team": "red", LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME})
    );
}

#[test]
fn smaller_slices_from_config() {
    let cluster = pods(FakeCluster::new().with_object(web_service()), 0..10);
    let _g = set_mock_host(cluster.clone());
    EndpointSliceController::init(&json!({"maxEndpointsPerSlice": 4})).unwrap();
    let svc = host::get("v1", "Service", Some("default"), "web").unwrap();
    EndpointSliceController::reconcile(&key("web"), svc.as_ref()).unwrap();
    assert_eq!(endpoint_count(&slices("web")), [2, 4, 4]);
}

#[test]
fn name_collisions_are_retried() {
    let cluster = FakeCluster::new()
        .with_object(web_service())
        .with_object(pod("a", "10.0.0.1", true));
    cluster.set_time(1_000);
    // Take the first name the controller would pick.
    let first = format!("web-{}", random_suffix("uid-web/1000/0/0"));
    cluster
        .create(&json!({"apiVersion": API_VERSION, "kind": KIND,
                        "metadata": {"name": first, "namespace": "default"}}))
        .unwrap();
    let _g = set_mock_host(cluster.clone());
    sync("web");
    let all = slices("web");
    assert_eq!(all.len(), 1);
    assert_ne!(objects::name(&all[0]), first);
}

#[test]
fn endpoint_keys_ignore_conditions() {
    let a = pod_endpoint(&pod("a", "10.0.0.1", true), &web_service(), "IPv4");
    let b = pod_endpoint(&pod("a", "10.0.0.1", false), &web_service(), "IPv4");
    assert_eq!(a.key(), b.key());
    assert!(!a.equal_beyond_key(&b));
    assert_eq!(Endpoint::from_json(&a.to_json()), a);
    let suffix = random_suffix("x");
    assert_eq!(suffix.len(), 5);
    assert!(
        suffix
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
    );
}
