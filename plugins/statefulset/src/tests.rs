use std::time::Duration;

use tugboat_plugin_sdk::controller::{Action, Controller};
use tugboat_plugin_sdk::{Value, json};

use crate::testkit::{Cluster, T0, name_of, reconcile};
use crate::{
    POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL, StatefulSetController, parent_and_ordinal,
};

const NS: &str = "default";

fn statefulset(name: &str, replicas: i64, extra: Value) -> Value {
    let mut spec = json!({
        "replicas": replicas,
        "serviceName": name,
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "img:1"}]},
        },
    });
    if let (Some(base), Some(more)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            base.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS, "generation": 1}, "spec": spec})
}

fn sync(c: &Cluster, name: &str) -> Result<Action, String> {
    reconcile::<StatefulSetController>(c, "apps/v1", "StatefulSet", Some(NS), name)
}

fn sts(c: &Cluster, name: &str) -> Value {
    c.get("apps/v1", "StatefulSet", Some(NS), name).unwrap()
}

fn pod_names(c: &Cluster) -> Vec<String> {
    c.live_pods()
        .iter()
        .map(|p| name_of(p).to_string())
        .collect()
}

fn pod(c: &Cluster, name: &str) -> Value {
    c.get("v1", "Pod", Some(NS), name).unwrap()
}

fn ready(c: &Cluster, name: &str) {
    c.merge(
        "v1",
        "Pod",
        Some(NS),
        name,
        json!({"spec": {"nodeName": "n1"}}),
    );
    c.set_pod(NS, name, "Running", true);
}

fn ready_all(c: &Cluster) {
    for p in c.live_pods() {
        if p["status"]["phase"] != "Running" {
            ready(c, name_of(&p));
        }
    }
}

fn change_image(c: &Cluster, name: &str, image: &str) {
    c.merge(
        "apps/v1",
        "StatefulSet",
        Some(NS),
        name,
        json!({"metadata": {"generation": 2},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
    );
}

fn image(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"].as_str().unwrap()
}

#[test]
fn ordinals_parse() {
    assert_eq!(parent_and_ordinal("web-3"), Some(("web", 3)));
    assert_eq!(parent_and_ordinal("my-web-12"), Some(("my-web", 12)));
    assert_eq!(parent_and_ordinal("web"), None);
    assert_eq!(parent_and_ordinal("web-x"), None);
    assert_eq!(parent_and_ordinal("web-"), None);
    assert_eq!(parent_and_ordinal("web--1"), Some(("web-", 1)));
}

#[test]
fn init_declares_statefulsets_owning_pods() {
    let spec = StatefulSetController::init(&Value::Null).unwrap();
    assert_eq!(spec.kinds[0].kind, "StatefulSet");
    assert_eq!(spec.watches[0].kind, "Pod");
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time() {
    let (c, _g) = Cluster::new(T0);
    let set = c.add(statefulset("web", 3, json!({})));
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0"]);
    let p = pod(&c, "web-0");
    assert_eq!(p["metadata"]["labels"][POD_NAME_LABEL], "web-0");
    assert_eq!(p["metadata"]["labels"][POD_INDEX_LABEL], "0");
    assert_eq!(p["metadata"]["labels"]["app"], "web");
    let revision = p["metadata"]["labels"][REVISION_LABEL]
        .as_str()
        .unwrap()
        .to_string();
    assert!(revision.starts_with("web-"));
    assert_eq!(p["spec"]["hostname"], "web-0");
    assert_eq!(p["spec"]["subdomain"], "web");
    assert_eq!(
        p["metadata"]["ownerReferences"][0]["uid"],
        set["metadata"]["uid"]
    );
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");

    // web-1 waits for web-0 to be Running and Ready.
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0"]);
    c.set_pod(NS, "web-0", "Running", false);
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0"]);
    ready(&c, "web-0");
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0", "web-1"]);
    ready(&c, "web-1");
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0", "web-1", "web-2"]);
    ready(&c, "web-2");
    sync(&c, "web").unwrap();

    let s = &sts(&c, "web")["status"];
    assert_eq!(s["replicas"], 3);
    assert_eq!(s["readyReplicas"], 3);
    assert_eq!(s["availableReplicas"], 3);
    assert_eq!(s["currentReplicas"], 3);
    assert_eq!(s["updatedReplicas"], 3);
    assert_eq!(s["currentRevision"], revision.as_str());
    assert_eq!(s["updateRevision"], revision.as_str());
    assert_eq!(s["observedGeneration"], 1);
    assert_eq!(s["collisionCount"], 0);
    let creates = c
        .event_reasons()
        .iter()
        .filter(|r| *r == "SuccessfulCreate")
        .count();
    assert_eq!(creates, 3);
}

#[test]
fn parallel_creates_all_at_once() {
    let (c, _g) = Cluster::new(T0);
    c.add(statefulset(
        "par",
        3,
        json!({"podManagementPolicy": "Parallel"}),
    ));
    sync(&c, "par").unwrap();
    assert_eq!(pod_names(&c), ["par-0", "par-1", "par-2"]);
    // And scales down all at once.
    c.merge(
        "apps/v1",
        "StatefulSet",
        Some(NS),
        "par",
        json!({"spec": {"replicas": 0}}),
    );
    sync(&c, "par").unwrap();
    assert!(pod_names(&c).is_empty());
}

#[test]
fn claims_are_created_before_pods() {
    let (c, _g) = Cluster::new(T0);
    c.add(statefulset("db", 2, json!({
        "podManagementPolicy": "Parallel",
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
            "containers": [{"name": "c", "image": "img:1"}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "config", "configMap": {"name": "cfg"}}]}},
        "volumeClaimTemplates": [
            {"metadata": {"name": "data", "labels": {"tier": "storage"}}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}],
    })));
    sync(&c, "db").unwrap();
    assert_eq!(
        c.names("v1", "PersistentVolumeClaim"),
        ["data-db-0", "data-db-1"]
    );
    let claim = c
        .get("v1", "PersistentVolumeClaim", Some(NS), "data-db-1")
        .unwrap();
    assert_eq!(
        claim["metadata"]["labels"],
        json!({"tier": "storage", "app": "db"})
    );
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(
        claim["metadata"]["ownerReferences"][0]["kind"],
        "StatefulSet"
    );
    let volumes = &pod(&c, "db-1")["spec"]["volumes"];
    assert_eq!(
        volumes,
        &json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}},
                {"name": "config", "configMap": {"name": "cfg"}}])
    );
    // Claims survive their pods and are reused.
    tugboat_plugin_sdk::host::delete("v1", "Pod", Some(NS), "db-1").unwrap();
    sync(&c, "db").unwrap();
    assert_eq!(pod_names(&c), ["db-0", "db-1"]);
    assert_eq!(c.names("v1", "PersistentVolumeClaim").len(), 2);
}

#[test]
fn ordered_scale_down_from_the_highest_ordinal_waiting_for_termination() {
    let (c, _g) = Cluster::new(T0);
    c.graceful_pods(true);
    c.add(statefulset("web", 3, json!({})));
    for _ in 0..3 {
        sync(&c, "web").unwrap();
        ready_all(&c);
    }
    assert_eq!(pod_names(&c), ["web-0", "web-1", "web-2"]);

    c.merge(
        "apps/v1",
        "StatefulSet",
        Some(NS),
        "web",
        json!({"spec": {"replicas": 1}}),
    );
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0", "web-1"], "web-2 goes first");
    sync(&c, "web").unwrap();
    assert_eq!(
        pod_names(&c),
        ["web-0", "web-1"],
        "web-1 waits for web-2 to terminate"
    );
    assert_eq!(
        sts(&c, "web")["status"]["replicas"],
        3,
        "terminating pods still count"
    );
    c.finish_terminating();
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0"]);
    c.finish_terminating();
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0"]);
    assert_eq!(sts(&c, "web")["status"]["replicas"], 1);
    let deletes: Vec<String> = c.deletes().into_iter().map(|(_, n, _)| n).collect();
    assert_eq!(deletes, ["web-2", "web-1"]);
}

#[test]
fn scale_down_waits_for_unhealthy_lower_ordinals() {
    let (c, _g) = Cluster::new(T0);
    c.add(statefulset("web", 3, json!({})));
    for _ in 0..3 {
        sync(&c, "web").unwrap();
        ready_all(&c);
    }
    c.set_pod(NS, "web-0", "Running", false);
    c.merge(
        "apps/v1",
        "StatefulSet",
        Some(NS),
        "web",
        json!({"spec": {"replicas": 2}}),
    );
    sync(&c, "web").unwrap();
    assert_eq!(
        pod_names(&c).len(),
        3,
        "web-0 is not ready: nothing is removed"
    );
    ready(&c, "web-0");
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0", "web-1"]);
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal_down() {
    let (c, _g) = Cluster::new(T0);
    c.graceful_pods(true);
    c.add(statefulset("web", 3, json!({})));
    for _ in 0..3 {
        sync(&c, "web").unwrap();
        ready_all(&c);
    }
    sync(&c, "web").unwrap();
    let old_revision = sts(&c, "web")["status"]["currentRevision"]
        .as_str()
        .unwrap()
        .to_string();

    change_image(&c, "web", "img:2");
    let mut order = Vec::new();
    for round in 0..30 {
        sync(&c, "web").unwrap();
        // At most one pod is unavailable at any time.
        let unavailable = c
            .pods()
            .iter()
            .filter(|p| {
                p["status"]["phase"] != "Running" || p["metadata"]["deletionTimestamp"].is_string()
            })
            .count()
            + (3 - c.pods().len());
        assert!(unavailable <= 1, "round {round}: {unavailable} unavailable");
        for p in c.pods() {
            if p["metadata"]["deletionTimestamp"].is_string()
                && !order.contains(&name_of(&p).to_string())
            {
                order.push(name_of(&p).to_string());
            }
        }
        c.finish_terminating();
        ready_all(&c);
        if c.live_pods().iter().all(|p| image(p) == "img:2") && c.live_pods().len() == 3 {
            break;
        }
    }
    assert_eq!(order, ["web-2", "web-1", "web-0"]);
    sync(&c, "web").unwrap();
    let s = &sts(&c, "web")["status"];
    let update_revision = s["updateRevision"].as_str().unwrap();
    assert_ne!(update_revision, old_revision);
    assert_eq!(
        s["currentRevision"], update_revision,
        "the update is complete"
    );
    assert_eq!(s["updatedReplicas"], 3);
    assert_eq!(s["currentReplicas"], 3);
    assert_eq!(s["observedGeneration"], 2);
    for p in c.live_pods() {
        assert_eq!(p["metadata"]["labels"][REVISION_LABEL], update_revision);
    }
}

#[test]
fn a_partition_keeps_lower_ordinals_at_the_current_revision() {
    let (c, _g) = Cluster::new(T0);
    c.add(statefulset(
        "web",
        3,
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
    ));
    for _ in 0..3 {
        sync(&c, "web").unwrap();
        ready_all(&c);
    }
    change_image(&c, "web", "img:2");
    for _ in 0..4 {
        sync(&c, "web").unwrap();
        ready_all(&c);
    }
    let images: Vec<String> = c.live_pods().iter().map(|p| image(p).to_string()).collect();
    assert_eq!(images, ["img:1", "img:1", "img:2"]);
    let s = &sts(&c, "web")["status"];
    assert_eq!(s["updatedReplicas"], 1);
    assert_eq!(s["currentReplicas"], 2);
    assert_ne!(s["currentRevision"], s["updateRevision"]);

    // A pod below the partition that is deleted comes back at the current revision.
    tugboat_plugin_sdk::host::delete("v1", "Pod", Some(NS), "web-0").unwrap();
    sync(&c, "web").unwrap();
    let web0 = pod(&c, "web-0");
    assert_eq!(image(&web0), "img:1");
    assert_eq!(
        web0["metadata"]["labels"][REVISION_LABEL],
        s["currentRevision"]
    );
    assert_eq!(web0["spec"]["hostname"], "web-0");
    assert!(web0["spec"].get("nodeName").is_none());
}

#[test]
fn on_delete_replaces_only_deleted_pods() {
    let (c, _g) = Cluster::new(T0);
    c.add(statefulset(
        "web",
        2,
        json!({"updateStrategy": {"type": "OnDelete"}}),
    ));
    for _ in 0..2 {
        sync(&c, "web").unwrap();
        ready_all(&c);
    }
    change_image(&c, "web", "img:2");
    sync(&c, "web").unwrap();
    assert!(c.live_pods().iter().all(|p| image(p) == "img:1"));
    tugboat_plugin_sdk::host::delete("v1", "Pod", Some(NS), "web-1").unwrap();
    sync(&c, "web").unwrap();
    assert_eq!(image(&pod(&c, "web-1")), "img:2");
    assert_eq!(image(&pod(&c, "web-0")), "img:1");
}

#[test]
fn failed_pods_are_recreated_with_the_same_name() {
    let (c, _g) = Cluster::new(T0);
    c.add(statefulset("web", 2, json!({})));
    for _ in 0..2 {
        sync(&c, "web").unwrap();
        ready_all(&c);
    }
    let uid = pod(&c, "web-0")["metadata"]["uid"].clone();
    c.set_pod(NS, "web-0", "Failed", false);
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-1"]);
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-0", "web-1"]);
    assert_ne!(pod(&c, "web-0")["metadata"]["uid"], uid);
}

#[test]
fn start_ordinal_and_status_counts() {
    let (c, _g) = Cluster::new(T0);
    c.add(statefulset(
        "web",
        2,
        json!({"ordinals": {"start": 5}, "podManagementPolicy": "Parallel", "minReadySeconds": 10}),
    ));
    sync(&c, "web").unwrap();
    assert_eq!(pod_names(&c), ["web-5", "web-6"]);
    assert_eq!(pod(&c, "web-6")["metadata"]["labels"][POD_INDEX_LABEL], "6");
    ready_all(&c);
    assert_eq!(
        sync(&c, "web").unwrap(),
        Action::RequeueAfter(Duration::from_secs(10))
    );
    let s = &sts(&c, "web")["status"];
    assert_eq!(
        (s["readyReplicas"].as_i64(), s["availableReplicas"].as_i64()),
        (Some(2), Some(0))
    );
    c.advance(10_000);
    assert_eq!(sync(&c, "web").unwrap(), Action::Done);
    assert_eq!(sts(&c, "web")["status"]["availableReplicas"], 2);
}

#[test]
fn wrong_identity_labels_are_fixed() {
    let (c, _g) = Cluster::new(T0);
    c.add(statefulset("web", 1, json!({})));
    sync(&c, "web").unwrap();
    ready(&c, "web-0");
    c.merge(
        "v1",
        "Pod",
        Some(NS),
        "web-0",
        json!({"metadata": {"labels": {POD_NAME_LABEL: "other"}}}),
    );
    sync(&c, "web").unwrap();
    assert_eq!(
        pod(&c, "web-0")["metadata"]["labels"][POD_NAME_LABEL],
        "web-0"
    );
}

#[test]
fn foreign_pods_are_ignored() {
    let (c, _g) = Cluster::new(T0);
    c.add(statefulset("web", 1, json!({})));
    c.add(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": NS,
        "labels": {"app": "web"}}, "spec": {}}),
    );
    // Its name is taken: an error (retried), and the stranger is left alone.
    let err = sync(&c, "web").unwrap_err();
    assert!(err.contains("AlreadyExists"), "{err}");
    assert!(
        pod(&c, "web-0")["metadata"]
            .get("ownerReferences")
            .is_none()
    );
    assert_eq!(sts(&c, "web")["status"]["replicas"], 0);
}
