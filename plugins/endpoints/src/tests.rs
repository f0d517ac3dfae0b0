use endpoints_common::testing::Recorder;
use tugboat_plugin_sdk::testing::{FakeCluster, MockHost, set_mock_host};

use super::*;

fn service(name: &str, selector: Value, ports: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"team": "blue"},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"selector": selector, "ports": ports, "clusterIP": "10.96.0.10",
                 "ipFamilies": ["IPv4"], "type": "ClusterIP"}
    })
}

fn web_service() -> Value {
    service(
        "web",
        json!({"app": "web"}),
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

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        api_version: "v1".into(),
        kind: "Service".into(),
        namespace: Some("default".into()),
        name: name.into(),
    }
}

/// Reconciles the Service as the host would: with its cached state (or None).
fn sync(name: &str) -> Action {
    let svc = host::get("v1", "Service", Some("default"), name).unwrap();
    EndpointsController::reconcile(&key(name), svc.as_ref()).unwrap()
}

fn endpoints(name: &str) -> Option<Value> {
    host::get("v1", "Endpoints", Some("default"), name).unwrap()
}

fn ips(addresses: &Value) -> Vec<&str> {
    addresses
        .as_array()
        .map(|a| a.iter().map(|x| objects::str_at(x, "/ip")).collect())
        .unwrap_or_default()
}

fn set_ready(cluster: &FakeCluster, name: &str, ready: bool) {
    let mut p = host::get("v1", "Pod", Some("default"), name)
        .unwrap()
        .unwrap();
    p["status"]["conditions"][0]["status"] = json!(if ready { "True" } else { "False" });
    cluster.update(&p).unwrap();
}

#[test]
fn spec_watches_pods_by_selector_and_endpoints_by_name() {
    let spec = EndpointsController::init(&Value::Null).unwrap();
    assert_eq!(spec.kinds[0].kind, "Service");
    assert_eq!(spec.watches[0].kind, "Pod");
    assert_eq!(
        spec.watches[0].map,
        MapRule::Selector("/spec/selector".into())
    );
    assert_eq!(spec.watches[1].kind, "Endpoints");
    assert_eq!(spec.watches[1].map, MapRule::SameName);
}

#[test]
fn ready_and_not_ready_pods() {
    let cluster = FakeCluster::new()
        .with_object(web_service())
        .with_object(pod("a", "10.0.0.2", true))
        .with_object(pod("b", "10.0.0.1", true))
        .with_object(pod("c", "10.0.0.3", false));
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    assert_eq!(sync("web"), Action::Done);
    assert_eq!(rec.take(), ["create Endpoints web"]);

    let ep = endpoints("web").unwrap();
    let subsets = ep["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0]["addresses"]), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(ips(&subsets[0]["notReadyAddresses"]), ["10.0.0.3"]);
    assert_eq!(
        subsets[0]["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        subsets[0]["addresses"][0]["targetRef"],
        json!({"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"})
    );
    assert_eq!(subsets[0]["addresses"][0]["nodeName"], "node-1");
    assert_eq!(
        ep["metadata"]["labels"],
        json!({"team": "blue", LABEL_MANAGED_BY: CONTROLLER_NAME})
    );
    assert_eq!(
        ep["metadata"]["annotations"][ANNOTATION_TRIGGER_TIME],
        "2026-01-01T00:01:00Z"
    );

    // Nothing changed: nothing is written.
    sync("web");
    assert!(rec.take().is_empty());
}

#[test]
fn endpoints_follow_readiness() {
    let cluster = FakeCluster::new()
        .with_object(web_service())
        .with_object(pod("a", "10.0.0.1", false));
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    let ep = endpoints("web").unwrap();
    assert!(ep["subsets"][0].get("addresses").is_none());
    assert_eq!(ips(&ep["subsets"][0]["notReadyAddresses"]), ["10.0.0.1"]);

    set_ready(&cluster, "a", true);
    rec.take();
    sync("web");
    assert_eq!(rec.take(), ["update Endpoints web"]);
    let ep = endpoints("web").unwrap();
    assert_eq!(ips(&ep["subsets"][0]["addresses"]), ["10.0.0.1"]);
    assert!(ep["subsets"][0].get("notReadyAddresses").is_none());

    set_ready(&cluster, "a", false);
    sync("web");
    let ep = endpoints("web").unwrap();
    assert_eq!(ips(&ep["subsets"][0]["notReadyAddresses"]), ["10.0.0.1"]);

    // The pod goes away: the Endpoints stay, empty.
    cluster.delete("v1", "Pod", Some("default"), "a").unwrap();
    sync("web");
    let ep = endpoints("web").unwrap();
    assert!(ep.get("subsets").is_none());
}

#[test]
fn terminal_deleting_and_ipless_pods_are_left_out() {
    let mut done = pod("done", "10.0.0.1", false);
    done["status"]["phase"] = json!("Succeeded");
    let mut deleting = pod("deleting", "10.0.0.2", true);
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:02:00Z");
    let mut pending = pod("pending", "", false);
    pending["status"]["podIPs"] = json!([]);
    let mut other = pod("other", "10.0.0.4", true);
    other["metadata"]["labels"] = json!({"app": "db"});
    let cluster = FakeCluster::new()
        .with_object(web_service())
        .with_object(done)
        .with_object(deleting)
        .with_object(pending)
        .with_object(other)
        .with_object(pod("ok", "10.0.0.5", true));
    let _g = set_mock_host(cluster.clone());
    sync("web");
    let ep = endpoints("web").unwrap();
    assert_eq!(ep["subsets"].as_array().unwrap().len(), 1);
    assert_eq!(ips(&ep["subsets"][0]["addresses"]), ["10.0.0.5"]);
    assert!(ep["subsets"][0].get("notReadyAddresses").is_none());
}

#[test]
fn publish_not_ready_addresses_lists_every_pod_as_ready() {
    let mut svc = web_service();
    svc["spec"]["publishNotReadyAddresses"] = json!(true);
    let mut deleting = pod("deleting", "10.0.0.2", true);
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:02:00Z");
    let cluster = FakeCluster::new()
        .with_object(svc)
        .with_object(pod("a", "10.0.0.1", false))
        .with_object(deleting);
    let _g = set_mock_host(cluster.clone());
    sync("web");
    let ep = endpoints("web").unwrap();
    assert_eq!(
        ips(&ep["subsets"][0]["addresses"]),
        ["10.0.0.1", "10.0.0.2"]
    );
    assert!(ep["subsets"][0].get("notReadyAddresses").is_none());
}

#[test]
fn named_ports_resolve_per_pod() {
    let svc = service(
        "web",
        json!({"app": "web"}),
        json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]),
    );
    let mut other_port = pod("b", "10.0.0.2", true);
    other_port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9000);
    let mut no_port = pod("c", "10.0.0.3", true);
    no_port["spec"]["containers"][0]["ports"] = json!([]);
    let cluster = FakeCluster::new()
        .with_object(svc)
        .with_object(pod("a", "10.0.0.1", true))
        .with_object(other_port)
        .with_object(no_port);
    let _g = set_mock_host(cluster.clone());
    sync("web");
    let ep = endpoints("web").unwrap();
    let subsets = ep["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 2, "{subsets:?}");
    let by_port: BTreeMap<i64, Vec<&str>> = subsets
        .iter()
        .map(|s| {
            (
                s["ports"][0]["port"].as_i64().unwrap(),
                ips(&s["addresses"]),
            )
        })
        .collect();
    assert_eq!(by_port[&8080], ["10.0.0.1"]);
    assert_eq!(by_port[&9000], ["10.0.0.2"]);
    assert!(subsets.iter().all(|s| s["ports"][0]["name"] == "http"));
}

#[test]
fn pods_offering_different_port_sets_get_separate_subsets() {
    let svc = service(
        "web",
        json!({"app": "web"}),
        json!([{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
               {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}]),
    );
    let mut no_http = pod("b", "10.0.0.2", false);
    no_http["spec"]["containers"][0]["ports"] = json!([]);
    let cluster = FakeCluster::new()
        .with_object(svc)
        .with_object(pod("a", "10.0.0.1", true))
        .with_object(no_http);
    let _g = set_mock_host(cluster.clone());
    sync("web");
    let ep = endpoints("web").unwrap();
    let subsets = ep["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 2, "{subsets:?}");
    let both = subsets
        .iter()
        .find(|s| s["ports"][0]["name"] == "metrics")
        .unwrap();
    assert_eq!(ips(&both["addresses"]), ["10.0.0.1"]);
    assert_eq!(ips(&both["notReadyAddresses"]), ["10.0.0.2"]);
    assert_eq!(both["ports"].as_array().unwrap().len(), 1);
    let http_only = subsets
        .iter()
        .find(|s| s["ports"][0]["name"] == "http")
        .unwrap();
    assert_eq!(ips(&http_only["addresses"]), ["10.0.0.1"]);
    assert!(http_only.get("notReadyAddresses").is_none());
}

#[test]
fn same_port_set_shares_one_subset() {
    let svc = service(
        "web",
        json!({"app": "web"}),
        json!([{"name": "http", "port": 80, "targetPort": 8080},
               {"name": "admin", "port": 81, "targetPort": 8081, "appProtocol": "http"}]),
    );
    let cluster = FakeCluster::new()
        .with_object(svc)
        .with_object(pod("a", "10.0.0.1", true))
        .with_object(pod("b", "10.0.0.2", true));
    let _g = set_mock_host(cluster.clone());
    sync("web");
    let ep = endpoints("web").unwrap();
    assert_eq!(
        ep["subsets"],
        json!([{
            "addresses": [
                {"ip": "10.0.0.1", "nodeName": "node-1",
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}},
                {"ip": "10.0.0.2", "nodeName": "node-1",
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}
            ],
            "ports": [
                {"name": "admin", "port": 8081, "protocol": "TCP", "appProtocol": "http"},
                {"name": "http", "port": 8080, "protocol": "TCP"}
            ]
        }])
    );
}

#[test]
fn headless_service_without_ports_and_hostnames() {
    let mut svc = service("db", json!({"app": "web"}), json!([]));
    svc["spec"]["clusterIP"] = json!("None");
    let mut named = pod("a", "10.0.0.1", true);
    named["spec"]["hostname"] = json!("db-0");
    named["spec"]["subdomain"] = json!("db");
    let cluster = FakeCluster::new().with_object(svc).with_object(named);
    let _g = set_mock_host(cluster.clone());
    sync("db");
    let ep = endpoints("db").unwrap();
    assert_eq!(ep["subsets"][0]["addresses"][0]["hostname"], "db-0");
    assert!(ep["subsets"][0].get("ports").is_none());
    assert_eq!(ep["metadata"]["labels"][LABEL_HEADLESS], "");

    // A Service with a cluster IP but no ports gets no addresses.
    let cluster = FakeCluster::new()
        .with_object(service("np", json!({"app": "web"}), json!([])))
        .with_object(pod("a", "10.0.0.1", true));
    let _g = set_mock_host(cluster.clone());
    sync("np");
    assert!(endpoints("np").unwrap().get("subsets").is_none());
}

#[test]
fn services_without_selector_or_external_name_are_left_alone() {
    let mut manual = service("manual", Value::Null, json!([{"port": 80}]));
    manual["spec"].as_object_mut().unwrap().remove("selector");
    let user_endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "manual", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "192.168.1.1"}], "ports": [{"port": 80}]}]
    });
    let mut external = web_service();
    external["metadata"]["name"] = json!("ext");
    external["spec"]["type"] = json!("ExternalName");
    external["spec"]["externalName"] = json!("example.com");
    let cluster = FakeCluster::new()
        .with_object(manual)
        .with_object(user_endpoints.clone())
        .with_object(external)
        .with_object(pod("a", "10.0.0.1", true));
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    assert_eq!(sync("manual"), Action::Done);
    assert_eq!(sync("ext"), Action::Done);
    assert!(rec.take().is_empty());
    assert_eq!(endpoints("manual").unwrap(), user_endpoints);
    assert!(endpoints("ext").is_none());
}

#[test]
fn deleted_service_loses_managed_endpoints_only() {
    let cluster = FakeCluster::new()
        .with_object(web_service())
        .with_object(pod("a", "10.0.0.1", true))
        .with_object(json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "user", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "192.168.1.1"}]}]
        }));
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    assert!(endpoints("web").is_some());
    cluster
        .delete("v1", "Service", Some("default"), "web")
        .unwrap();
    rec.take();
    assert_eq!(
        EndpointsController::reconcile(&key("web"), None).unwrap(),
        Action::Done
    );
    assert_eq!(rec.take(), ["delete Endpoints web"]);
    assert!(endpoints("web").is_none());

    // Endpoints a user wrote before (or without) a Service are not ours to delete.
    EndpointsController::reconcile(&key("user"), None).unwrap();
    assert!(rec.take().is_empty());
    assert!(endpoints("user").is_some());
    // Nothing there at all: nothing to do.
    EndpointsController::reconcile(&key("nothing"), None).unwrap();
    assert!(rec.take().is_empty());
}

#[test]
fn existing_endpoints_are_taken_over_and_repaired() {
    let stale = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7",
                     "annotations": {"keep": "me"}},
        "subsets": [{"addresses": [{"ip": "192.168.1.1"}], "ports": [{"port": 80}]}]
    });
    let cluster = FakeCluster::new()
        .with_object(web_service())
        .with_object(stale)
        .with_object(pod("a", "10.0.0.1", true));
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    assert_eq!(rec.take(), ["update Endpoints web"]);
    let ep = endpoints("web").unwrap();
    assert_eq!(ep["metadata"]["resourceVersion"], "7");
    assert_eq!(ep["metadata"]["annotations"]["keep"], "me");
    assert_eq!(ep["metadata"]["labels"][LABEL_MANAGED_BY], CONTROLLER_NAME);
    assert_eq!(ips(&ep["subsets"][0]["addresses"]), ["10.0.0.1"]);

    // Someone edits the addresses: the next sync puts them back.
    let mut edited = ep.clone();
    edited["subsets"][0]["addresses"][0]["ip"] = json!("1.2.3.4");
    cluster.update(&edited).unwrap();
    rec.take();
    sync("web");
    assert_eq!(rec.take(), ["update Endpoints web"]);
    assert_eq!(
        ips(&endpoints("web").unwrap()["subsets"][0]["addresses"]),
        ["10.0.0.1"]
    );

    // The Service's labels change: so do the Endpoints'.
    let mut svc = host::get("v1", "Service", Some("default"), "web")
        .unwrap()
        .unwrap();
    svc["metadata"]["labels"] = json!({"team": "red"});
    cluster.update(&svc).unwrap();
    sync("web");
    assert_eq!(rec.take(), ["update Endpoints web"]);
    assert_eq!(
        endpoints("web").unwrap()["metadata"]["labels"]["team"],
        "red"
    );
}

#[test]
fn ip_family_follows_the_service() {
    let mut svc = web_service();
    svc["spec"]["ipFamilies"] = json!(["IPv6"]);
    svc["spec"]["clusterIP"] = json!("fd00::10");
    let mut dual = pod("a", "10.0.0.1", true);
    dual["status"]["podIPs"] = json!([{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]);
    let cluster = FakeCluster::new()
        .with_object(svc)
        .with_object(dual)
        .with_object(pod("b", "10.0.0.2", true));
    let _g = set_mock_host(cluster.clone());
    sync("web");
    let ep = endpoints("web").unwrap();
    // b has no IPv6 address and is left out.
    assert_eq!(ips(&ep["subsets"][0]["addresses"]), ["fd00::1"]);
}

#[test]
fn over_capacity_is_truncated_and_annotated() {
    let mut cluster = FakeCluster::new().with_object(web_service());
    for i in 0..1005 {
        let ready = i % 5 != 0; // 804 ready, 201 not ready
        cluster = cluster.with_object(pod(
            &format!("p{i:04}"),
            &format!("10.1.{}.{}", i / 250, i % 250),
            ready,
        ));
    }
    let rec = Recorder::new(&cluster);
    let _g = set_mock_host(rec.clone());
    sync("web");
    let ep = endpoints("web").unwrap();
    assert_eq!(
        ep["metadata"]["annotations"][ANNOTATION_OVER_CAPACITY],
        "truncated"
    );
    let subset = &ep["subsets"][0];
    assert_eq!(subset["addresses"].as_array().unwrap().len(), 804);
    assert_eq!(subset["notReadyAddresses"].as_array().unwrap().len(), 196);
    rec.take();
    sync("web");
    assert!(rec.take().is_empty(), "a truncated Endpoints is stable");

    // Back under capacity: the annotation goes.
    for i in 0..10 {
        cluster
            .delete("v1", "Pod", Some("default"), &format!("p{i:04}"))
            .unwrap();
    }
    sync("web");
    let ep = endpoints("web").unwrap();
    assert!(
        ep["metadata"]["annotations"]
            .get(ANNOTATION_OVER_CAPACITY)
            .is_none()
    );
}

#[test]
fn truncation_prefers_ready_addresses_proportionally() {
    let address = |i: usize| Address {
        ip: format!("10.0.{}.{}", i / 250, i % 250),
        hostname: String::new(),
        node_name: None,
        target: None,
    };
    let mut subsets = vec![
        Subset {
            addresses: (0..900).map(address).collect(),
            not_ready: (900..950).map(address).collect(),
            ports: vec![],
        },
        Subset {
            addresses: (1000..1300).map(address).collect(),
            not_ready: vec![],
            ports: vec![],
        },
    ];
    assert!(truncate(&mut subsets));
    // 1200 ready: 900/1200 and 300/1200 of 1000, and no not-ready ones.
    assert_eq!(subsets[0].addresses.len(), 750);
    assert_eq!(subsets[1].addresses.len(), 250);
    assert!(subsets[0].not_ready.is_empty());
    assert_eq!(
        subsets
            .iter()
            .map(|s| s.addresses.len() + s.not_ready.len())
            .sum::<usize>(),
        MAX_CAPACITY
    );
}
