use std::time::Duration;

use replicaset::testkit::{Ctl, Settled, Sim, key_of, replica_set_ctl, template};
use tugboat_plugin_sdk::controller::{Action, Controller, MapRule};
use tugboat_plugin_sdk::host::HostError;
use tugboat_plugin_sdk::objects;
use tugboat_plugin_sdk::testing::set_mock_host;
use tugboat_plugin_sdk::{Value, json};

use super::*;

const NS: &str = "default";

fn deployment_ctl() -> Ctl {
    Ctl {
        api_version: "apps/v1",
        kind: "Deployment",
        reconcile: |key, object| DeploymentController::reconcile(key, object),
    }
}

fn ctls() -> [Ctl; 2] {
    [deployment_ctl(), replica_set_ctl()]
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

/// A Deployment as the API server stores it after defaulting.
fn deployment(name: &str, replicas: i64, strategy: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(json!({"app": name}), "nginx:1"),
            "strategy": strategy,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
    })
}

fn dep(sim: &Sim, name: &str) -> Value {
    sim.object("Deployment", NS, name)
        .expect("the Deployment exists")
}

fn reconcile(sim: &Sim, name: &str) -> Result<Action, String> {
    let d = dep(sim, name);
    DeploymentController::reconcile(&key_of(&d), Some(&d))
}

/// The ReplicaSets the Deployment controls, by revision.
fn rss(sim: &Sim, name: &str) -> Vec<Value> {
    let d = dep(sim, name);
    let mut out: Vec<Value> = sim
        .all("ReplicaSet")
        .into_iter()
        .filter(|rs| objects::is_controlled_by(rs, objects::uid(&d)))
        .collect();
    out.sort_by(util::by_revision);
    out
}

fn replicas(rs: &Value) -> i64 {
    util::rs_replicas(rs)
}

fn status(o: &Value, field: &str) -> i64 {
    objects::i64_at(o, &format!("/status/{field}")).unwrap_or(0)
}

fn cond<'a>(o: &'a Value, kind: &str) -> &'a Value {
    objects::condition(o, kind).unwrap_or_else(|| panic!("no {kind} condition: {}", o["status"]))
}

/// The active Pods of the Deployment's ReplicaSets: (all, available).
fn pods(sim: &Sim, name: &str) -> (usize, usize) {
    let mut all = 0;
    let mut ready = 0;
    for rs in rss(sim, name) {
        for p in sim.pods_of(objects::uid(&rs)) {
            if objects::pod_is_active(&p) {
                all += 1;
                if objects::pod_is_ready(&p) {
                    ready += 1;
                }
            }
        }
    }
    (all, ready)
}

fn set_image(sim: &Sim, name: &str, image: &str) {
    sim.edit("Deployment", NS, name, |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image)
    });
}

fn scale(sim: &Sim, name: &str, n: i64) {
    sim.edit("Deployment", NS, name, |d| d["spec"]["replicas"] = json!(n));
}

/// `kubectl rollout status`'s verdict (kubectl's `DeploymentStatusViewer`).
fn rollout_status(d: &Value) -> Result<(bool, String), String> {
    let spec_replicas = objects::i64_at(d, "/spec/replicas").unwrap_or(1);
    if objects::generation(d) > status(d, "observedGeneration") {
        return Ok((
            false,
            "Waiting for deployment spec update to be observed...".into(),
        ));
    }
    if objects::condition(d, "Progressing")
        .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
    {
        return Err(format!(
            "deployment {:?} exceeded its progress deadline",
            objects::name(d)
        ));
    }
    let (updated, total, available) = (
        status(d, "updatedReplicas"),
        status(d, "replicas"),
        status(d, "availableReplicas"),
    );
    if updated < spec_replicas {
        return Ok((
            false,
            format!("{updated} out of {spec_replicas} new replicas have been updated"),
        ));
    }
    if total > updated {
        return Ok((
            false,
            format!("{} old replicas are pending termination", total - updated),
        ));
    }
    if available < updated {
        return Ok((
            false,
            format!("{available} of {updated} updated replicas are available"),
        ));
    }
    Ok((true, "successfully rolled out".into()))
}

/// `kubectl rollout undo [--to-revision]` (kubectl's `DeploymentRollbacker`): patches the
/// template and annotations of the ReplicaSet of the wanted revision into the Deployment.
fn kubectl_undo(sim: &Sim, name: &str, to_revision: i64) {
    let d = dep(sim, name);
    let all = rss(sim, name);
    let rs = if to_revision == 0 {
        let mut by_rev = all.clone();
        by_rev.sort_by_key(|rs| util::revision(rs).unwrap_or(0));
        by_rev[by_rev.len() - 2].clone()
    } else {
        all.iter()
            .find(|rs| util::revision(rs) == Ok(to_revision))
            .expect("the revision exists")
            .clone()
    };
    let mut tmpl = rs["spec"]["template"].clone();
    tmpl["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove(util::POD_TEMPLATE_HASH);
    let mut annotations = serde_json::Map::new();
    for (k, v) in util::annotations(&d) {
        if util::ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            annotations.insert(k, json!(v));
        }
    }
    for (k, v) in util::annotations(&rs) {
        if !util::ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            annotations.insert(k, json!(v));
        }
    }
    sim.edit("Deployment", NS, name, |d| {
        d["spec"]["template"] = tmpl;
        d["metadata"]["annotations"] = Value::Object(annotations);
    });
}

/// The messages of the Deployment controller's `ScalingReplicaSet` Events, in order.
fn scaling_events(sim: &Sim) -> Vec<String> {
    let mut all: Vec<Value> = sim
        .all("Event")
        .into_iter()
        .filter(|e| e["source"]["component"] == COMPONENT)
        .collect();
    all.sort_by_key(|e| objects::str_at(e, "/metadata/uid").to_string());
    all.iter()
        .map(|e| {
            assert_eq!(e["involvedObject"]["kind"], "Deployment");
            assert_eq!(e["type"], "Normal");
            assert_eq!(e["reason"], "ScalingReplicaSet");
            objects::str_at(e, "/message").to_string()
        })
        .collect()
}

/// Settles, then starts and readies every pending Pod, until nothing changes.
fn settle_with_kubelet(sim: &Sim) {
    for _ in 0..20 {
        sim.settle_ok(&ctls());
        if sim.start_pods(true) == 0 && sim.finish_terminating() == 0 {
            return;
        }
    }
    panic!("the rollout did not finish");
}

fn create_and_roll_out(sim: &Sim, d: Value) -> Value {
    let name = objects::name(&d).to_string();
    sim.add(d);
    settle_with_kubelet(sim);
    dep(sim, &name)
}

#[test]
fn init_declares_the_kinds_and_watches() {
    let spec = DeploymentController::init(&Value::Null).unwrap();
    assert_eq!(spec.kinds.len(), 1);
    assert_eq!(
        (
            spec.kinds[0].api_version.as_str(),
            spec.kinds[0].kind.as_str()
        ),
        ("apps/v1", "Deployment")
    );
    let watches: Vec<(&str, &str, &MapRule)> = spec
        .watches
        .iter()
        .map(|w| (w.api_version.as_str(), w.kind.as_str(), &w.map))
        .collect();
    assert_eq!(
        watches,
        vec![
            ("apps/v1", "ReplicaSet", &MapRule::Owner),
            ("v1", "Pod", &MapRule::None)
        ]
    );
    let spec =
        DeploymentController::init(&json!({"adoptOrphansOnReplicaSetEvents": true, "workers": 3}))
            .unwrap();
    assert_eq!(spec.workers, 3);
    assert_eq!(
        spec.watches[2].map,
        MapRule::Selector("/spec/selector".into())
    );
    assert!(DeploymentController::init(&json!({"nope": true})).is_err());
}

#[test]
fn int_or_percent_rounds_surge_up_and_unavailable_down() {
    let spec = |replicas: i64, surge: Value, unavailable: Value| {
        Spec::parse(&json!({"spec": {"replicas": replicas,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}))
        .unwrap()
    };
    let s = spec(3, json!("25%"), json!("25%"));
    assert_eq!((s.max_surge(), s.max_unavailable()), (1, 0));
    let s = spec(10, json!("25%"), json!("25%"));
    assert_eq!((s.max_surge(), s.max_unavailable()), (3, 2));
    let s = spec(4, json!(2), json!("50%"));
    assert_eq!((s.max_surge(), s.max_unavailable()), (2, 2));
    // Both resolve to 0: one may be unavailable.
    let s = spec(3, json!("10%"), json!("10%"));
    assert_eq!((s.max_surge(), s.max_unavailable()), (1, 0));
    let s = spec(3, json!(0), json!("10%"));
    assert_eq!((s.max_surge(), s.max_unavailable()), (0, 1));
    // maxUnavailable is at most replicas, and 0 when scaled to 0.
    let s = spec(2, json!(0), json!(5));
    assert_eq!(s.max_unavailable(), 2);
    let s = spec(0, json!(1), json!(1));
    assert_eq!(s.max_unavailable(), 0);
    assert!(
        Spec::parse(&json!({"spec": {"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "5"}}}}))
        .is_err()
    );
    assert!(Spec::parse(&json!({"spec": {"strategy": {"type": "Blue"}}})).is_err());
    let r = Spec::parse(&json!({"spec": {"strategy": {"type": "Recreate"}}})).unwrap();
    assert_eq!((r.replicas, r.max_surge(), r.max_unavailable()), (1, 0, 0));
    assert_eq!(r.new_rs_new_replicas(5, 0), 1);
    let mut p = spec(3, json!(1), json!(0));
    p.progress_deadline_seconds = Some(i64::from(i32::MAX));
    assert!(!p.has_progress_deadline());
    p.progress_deadline_seconds = Some(600);
    assert!(p.has_progress_deadline());
}

#[test]
fn new_replica_set_annotations_and_revision_history() {
    let spec = Spec::parse(
        &json!({"spec": {"replicas": 4, "strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}),
    )
    .unwrap();
    let d = json!({"metadata": {"annotations": {
        "kubernetes.io/change-cause": "v2",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "deployment.kubernetes.io/revision": "7",
    }}});
    let mut rs = json!({"metadata": {}});
    assert!(util::set_new_rs_annotations(&d, &spec, &mut rs, "3", false));
    assert_eq!(
        rs["metadata"]["annotations"],
        json!({"kubernetes.io/change-cause": "v2", "deployment.kubernetes.io/revision": "3",
               "deployment.kubernetes.io/desired-replicas": "4",
               "deployment.kubernetes.io/max-replicas": "5"})
    );
    // Nothing new: unchanged.
    assert!(!util::set_new_rs_annotations(&d, &spec, &mut rs, "3", true));
    // A rollback to it raises the revision and keeps the history.
    assert!(util::set_new_rs_annotations(&d, &spec, &mut rs, "5", true));
    assert_eq!(util::annotation(&rs, util::REVISION), Some("5"));
    assert_eq!(util::annotation(&rs, util::REVISION_HISTORY), Some("3"));
    assert!(util::set_new_rs_annotations(&d, &spec, &mut rs, "8", true));
    assert_eq!(util::annotation(&rs, util::REVISION_HISTORY), Some("3,5"));
    // A lower revision does not lower it.
    assert!(!util::set_new_rs_annotations(&d, &spec, &mut rs, "2", true));
    assert_eq!(util::annotation(&rs, util::REVISION), Some("8"));
    // The history is capped at 2000 characters, dropping the oldest.
    let long: Vec<String> = (1000..1400).map(|n| n.to_string()).collect();
    util::set_annotation(&mut rs, util::REVISION_HISTORY, &long.join(","));
    util::set_annotation(&mut rs, util::REVISION, "1400");
    util::set_new_rs_annotations(&d, &spec, &mut rs, "1401", true);
    let history = util::annotation(&rs, util::REVISION_HISTORY).unwrap();
    assert!(history.len() <= util::MAX_REV_HISTORY_CHARS);
    assert!(history.ends_with(",1399,1400"), "{history}");
    assert!(!history.starts_with("1000,"));
}

#[test]
fn a_new_deployment_becomes_available() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut d = deployment("web", 3, rolling(json!("25%"), json!("25%")));
    d["metadata"]["annotations"] = json!({
        "kubernetes.io/change-cause": "first",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    });
    sim.add(d);
    reconcile(&sim, "web").unwrap();

    let d = dep(&sim, "web");
    let all = rss(&sim, "web");
    assert_eq!(all.len(), 1);
    let rs = &all[0];
    let hash = objects::pod_template_hash(&d["spec"]["template"], None);
    assert_eq!(objects::name(rs), format!("web-{hash}"));
    assert_eq!(
        objects::controller_of(rs).unwrap(),
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": objects::uid(&d), "controller": true, "blockOwnerDeletion": true})
    );
    assert_eq!(
        rs["metadata"]["labels"],
        json!({"app": "web", "pod-template-hash": hash})
    );
    assert_eq!(
        rs["spec"]["selector"],
        json!({"matchLabels": {"app": "web", "pod-template-hash": hash}})
    );
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"],
        json!({"app": "web", "pod-template-hash": hash})
    );
    assert_eq!(
        rs["spec"]["template"]["spec"],
        d["spec"]["template"]["spec"]
    );
    assert_eq!(replicas(rs), 3);
    assert_eq!(
        rs["metadata"]["annotations"],
        json!({"kubernetes.io/change-cause": "first",
               "deployment.kubernetes.io/revision": "1",
               "deployment.kubernetes.io/desired-replicas": "3",
               "deployment.kubernetes.io/max-replicas": "4"})
    );
    assert_eq!(util::annotation(&d, util::REVISION), Some("1"));
    let p = cond(&d, "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("True"), Some("NewReplicaSetCreated"))
    );
    assert_eq!(
        p["message"],
        format!("Created new replica set \"web-{hash}\"")
    );
    assert_eq!(status(&d, "observedGeneration"), 1);
    assert!(!rollout_status(&d).unwrap().0);

    settle_with_kubelet(&sim);
    let d = dep(&sim, "web");
    assert_eq!(
        (
            status(&d, "replicas"),
            status(&d, "updatedReplicas"),
            status(&d, "readyReplicas"),
            status(&d, "availableReplicas"),
            status(&d, "unavailableReplicas")
        ),
        (3, 3, 3, 3, 0)
    );
    assert!(
        d["status"].get("unavailableReplicas").is_none(),
        "zero counts are omitted"
    );
    let a = cond(&d, "Available");
    assert_eq!(
        (a["status"].as_str(), a["reason"].as_str()),
        (Some("True"), Some("MinimumReplicasAvailable"))
    );
    assert_eq!(a["message"], "Deployment has minimum availability.");
    let p = cond(&d, "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("True"), Some("NewReplicaSetAvailable"))
    );
    assert_eq!(
        p["message"],
        format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
    );
    assert_eq!(
        rollout_status(&d),
        Ok((true, "successfully rolled out".into()))
    );
    assert_eq!(pods(&sim, "web"), (3, 3));
}

#[test]
fn a_settled_deployment_costs_two_cached_queries_and_no_writes() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(deployment("web", 10, rolling(json!("25%"), json!("25%"))));
    sim.reset_calls();
    settle_with_kubelet(&sim);
    // Create the ReplicaSet and 10 Pods, plus a few status writes.
    let writes = sim.writes();
    assert!(writes <= 20, "{writes} writes: {:?}", sim.calls());
    assert_eq!(sim.calls().get("list"), None, "nothing lists everything");

    sim.reset_calls();
    assert_eq!(reconcile(&sim, "web"), Ok(Action::Done));
    let calls = sim.calls();
    assert_eq!(sim.writes(), 0, "{calls:?}");
    assert_eq!(calls.get("select"), Some(&2));
    assert_eq!(calls.len(), 1, "{calls:?}");

    sim.reset_calls();
    let rs = rss(&sim, "web").remove(0);
    (replica_set_ctl().reconcile)(&key_of(&rs), Some(&rs)).unwrap();
    assert_eq!(sim.writes(), 0);
    assert_eq!(sim.calls().get("select"), Some(&2));
}

/// Walks a rolling update step by step (every Pod becoming ready in turn), checking the
/// bounds at every step; returns the (old, new) replicas after each step.
fn walk_rollout(sim: &Sim, min_available: usize, max_pods: usize) -> Vec<(i64, i64)> {
    let mut steps = Vec::new();
    for _ in 0..20 {
        sim.settle_ok(&ctls());
        let all = rss(sim, "web");
        let (total, ready) = pods(sim, "web");
        assert!(total <= max_pods, "{total} Pods at once (max {max_pods})");
        assert!(
            ready >= min_available,
            "only {ready} ready (min {min_available})"
        );
        let new = replicas(&all[all.len() - 1]);
        let old: i64 = all[..all.len() - 1].iter().map(replicas).sum();
        steps.push((old, new));
        if sim.start_pods(true) == 0 {
            break;
        }
    }
    steps
}

#[test]
fn rolling_update_with_max_unavailable_0_surges_one_at_a_time() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 3, rolling(json!(1), json!(0))));
    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");

    let steps = walk_rollout(&sim, 3, 4);
    assert_eq!(steps, vec![(3, 1), (2, 2), (1, 3), (0, 3)]);
    let all = rss(&sim, "web");
    let (old, new) = (objects::name(&all[0]), objects::name(&all[1]));
    assert_eq!(
        scaling_events(&sim),
        vec![
            format!("Scaled up replica set {old} to 3"),
            format!("Scaled up replica set {new} to 1"),
            format!("Scaled down replica set {old} to 2 from 3"),
            format!("Scaled up replica set {new} to 2 from 1"),
            format!("Scaled down replica set {old} to 1 from 2"),
            format!("Scaled up replica set {new} to 3 from 2"),
            format!("Scaled down replica set {old} to 0 from 1"),
        ]
    );

    let d = dep(&sim, "web");
    assert_eq!(
        rollout_status(&d),
        Ok((true, "successfully rolled out".into()))
    );
    assert_eq!(util::annotation(&d, util::REVISION), Some("2"));
    let all = rss(&sim, "web");
    assert_eq!(all.len(), 2);
    assert_eq!(util::annotation(&all[0], util::REVISION), Some("1"));
    assert_eq!(util::annotation(&all[1], util::REVISION), Some("2"));
    assert_eq!(
        all[1]["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    assert_eq!(pods(&sim, "web"), (3, 3));
    assert_eq!(
        (
            status(&d, "replicas"),
            status(&d, "updatedReplicas"),
            status(&d, "availableReplicas")
        ),
        (3, 3, 3)
    );
}

#[test]
fn rolling_update_with_max_surge_0_replaces_one_at_a_time() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 3, rolling(json!(0), json!(1))));
    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");
    let steps = walk_rollout(&sim, 2, 3);
    assert_eq!(steps, vec![(2, 1), (1, 2), (0, 3), (0, 3)]);
    assert!(rollout_status(&dep(&sim, "web")).unwrap().0);
}

#[test]
fn rolling_update_mid_rollout_status_is_what_kubectl_waits_on() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(
        &sim,
        deployment("web", 10, rolling(json!("25%"), json!("25%"))),
    );
    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");
    // The new Pods never become ready.
    sim.settle_ok(&ctls());
    let all = rss(&sim, "web");
    // Surge 3 (25% of 10 rounded up), unavailable 2 (rounded down): 13 Pods, 8 old.
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (8, 5));
    let d = dep(&sim, "web");
    assert_eq!(
        (
            status(&d, "replicas"),
            status(&d, "updatedReplicas"),
            status(&d, "readyReplicas"),
            status(&d, "availableReplicas"),
            status(&d, "unavailableReplicas")
        ),
        (13, 5, 8, 8, 5)
    );
    assert_eq!(
        rollout_status(&d),
        Ok((false, "5 out of 10 new replicas have been updated".into()))
    );
    // Available: 8 >= 10 - 2.
    assert_eq!(cond(&d, "Available")["status"], "True");
    assert_eq!(cond(&d, "Progressing")["reason"], "ReplicaSetUpdated");
    assert_eq!(
        cond(&d, "Progressing")["message"],
        format!("ReplicaSet {:?} is progressing.", objects::name(&all[1]))
    );
}

#[test]
fn scaling_during_a_rollout_is_proportional() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(
        &sim,
        deployment("web", 10, rolling(json!("25%"), json!("25%"))),
    );
    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");
    sim.settle_ok(&ctls());
    let all = rss(&sim, "web");
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (8, 5));
    assert_eq!(util::annotation(&all[0], util::MAX_REPLICAS), Some("13"));

    scale(&sim, "web", 20);
    reconcile(&sim, "web").unwrap();
    // 25 allowed (20 + 25%), 12 to add: 8*25/13 ≈ 15 and 5*25/13 ≈ 10.
    let all = rss(&sim, "web");
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (15, 10));
    for rs in &all {
        assert_eq!(util::annotation(rs, util::DESIRED_REPLICAS), Some("20"));
        assert_eq!(util::annotation(rs, util::MAX_REPLICAS), Some("25"));
    }
    // And down again: 6 + 25% (2) = 8 allowed.
    scale(&sim, "web", 6);
    reconcile(&sim, "web").unwrap();
    let all = rss(&sim, "web");
    assert_eq!(replicas(&all[0]) + replicas(&all[1]), 8);
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (5, 3));
    // The rollout then finishes.
    settle_with_kubelet(&sim);
    let all = rss(&sim, "web");
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (0, 6));
    assert!(rollout_status(&dep(&sim, "web")).unwrap().0);
}

#[test]
fn kubectl_scale_up_and_down() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(
        &sim,
        deployment("web", 3, rolling(json!("25%"), json!("25%"))),
    );
    for n in [5, 2, 0, 4] {
        scale(&sim, "web", n);
        settle_with_kubelet(&sim);
        let all = rss(&sim, "web");
        assert_eq!(all.len(), 1);
        assert_eq!(replicas(&all[0]), n);
        assert_eq!(
            util::annotation(&all[0], util::DESIRED_REPLICAS),
            Some(n.to_string().as_str())
        );
        assert_eq!(pods(&sim, "web"), (n as usize, n as usize));
        let d = dep(&sim, "web");
        assert_eq!(status(&d, "replicas"), n);
        assert_eq!(status(&d, "availableReplicas"), n);
        assert_eq!(status(&d, "observedGeneration"), objects::generation(&d));
        assert!(rollout_status(&d).unwrap().0);
        assert_eq!(cond(&d, "Available")["status"], "True");
    }
}

#[test]
fn recreate_scales_old_pods_away_before_creating_new_ones() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.graceful_pod_deletion(true);
    create_and_roll_out(&sim, deployment("web", 3, json!({"type": "Recreate"})));
    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");

    let settled = sim.settle_ok(&ctls());
    let all = rss(&sim, "web");
    assert_eq!(all.len(), 1, "no new ReplicaSet while old Pods remain");
    assert_eq!(replicas(&all[0]), 0);
    // The old Pods are terminating; the Deployment polls for them.
    assert_eq!(sim.pods_of(objects::uid(&all[0])).len(), 3);
    assert_eq!(
        settled.actions.get("Deployment/web"),
        Some(&Action::RequeueAfter(RECREATE_POLL))
    );
    let d = dep(&sim, "web");
    assert_eq!(cond(&d, "Available")["status"], "False");
    assert_eq!(
        cond(&d, "Available")["reason"],
        "MinimumReplicasUnavailable"
    );

    // A finished Pod does not hold the rollout back; a terminating one does.
    let old_pods = sim.pods_of(objects::uid(&all[0]));
    sim.edit("Pod", NS, objects::name(&old_pods[0]), |p| {
        p["status"]["phase"] = json!("Succeeded")
    });
    sim.remove("Pod", NS, objects::name(&old_pods[1]));
    sim.settle_ok(&ctls());
    assert_eq!(rss(&sim, "web").len(), 1);

    sim.finish_terminating();
    sim.remove("Pod", NS, objects::name(&old_pods[0]));
    sim.settle_ok(&ctls());
    let all = rss(&sim, "web");
    assert_eq!(all.len(), 2);
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (0, 3));
    settle_with_kubelet(&sim);
    let d = dep(&sim, "web");
    assert!(rollout_status(&d).unwrap().0);
    assert_eq!(util::annotation(&d, util::REVISION), Some("2"));
    assert_eq!(cond(&d, "Available")["status"], "True");
}

#[test]
fn rollback_reuses_the_old_replica_set_with_a_bumped_revision() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 3, rolling(json!(1), json!(0))));
    sim.advance_secs(10);
    sim.edit("Deployment", NS, "web", |d| {
        d["metadata"]["annotations"] = json!({"kubernetes.io/change-cause": "to v2"});
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    });
    settle_with_kubelet(&sim);
    let before = rss(&sim, "web");
    assert_eq!(before.len(), 2);
    let v1 = objects::name(&before[0]).to_string();
    let v2 = objects::name(&before[1]).to_string();
    assert_eq!(
        util::annotation(&before[1], "kubernetes.io/change-cause"),
        Some("to v2")
    );

    sim.advance_secs(10);
    kubectl_undo(&sim, "web", 0);
    // The change-cause of revision 1 (none) came back with it.
    assert_eq!(
        util::annotation(&dep(&sim, "web"), "kubernetes.io/change-cause"),
        None
    );
    settle_with_kubelet(&sim);

    let after = rss(&sim, "web");
    assert_eq!(after.len(), 2, "no new ReplicaSet");
    assert_eq!(objects::name(&after[1]), v1);
    assert_eq!(util::annotation(&after[1], util::REVISION), Some("3"));
    assert_eq!(
        util::annotation(&after[1], util::REVISION_HISTORY),
        Some("1")
    );
    assert_eq!(replicas(&after[1]), 3);
    assert_eq!(objects::name(&after[0]), v2);
    assert_eq!(replicas(&after[0]), 0);
    let d = dep(&sim, "web");
    assert_eq!(util::annotation(&d, util::REVISION), Some("3"));
    assert!(rollout_status(&d).unwrap().0);
    assert_eq!(cond(&d, "Progressing")["reason"], "NewReplicaSetAvailable");

    // Undo again: back to revision 2's ReplicaSet, now revision 4.
    sim.advance_secs(10);
    kubectl_undo(&sim, "web", 2);
    assert_eq!(
        util::annotation(&dep(&sim, "web"), "kubernetes.io/change-cause"),
        Some("to v2")
    );
    settle_with_kubelet(&sim);
    let again = rss(&sim, "web");
    assert_eq!(again.len(), 2);
    assert_eq!(objects::name(&again[1]), v2);
    assert_eq!(util::annotation(&again[1], util::REVISION), Some("4"));
    assert_eq!(
        util::annotation(&again[1], util::REVISION_HISTORY),
        Some("2")
    );
    assert_eq!(replicas(&again[1]), 3);
}

#[test]
fn old_replica_sets_beyond_the_history_limit_are_deleted() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut d = deployment("web", 2, rolling(json!(1), json!(0)));
    d["spec"]["revisionHistoryLimit"] = json!(2);
    create_and_roll_out(&sim, d);
    for v in 2..=5 {
        sim.advance_secs(10);
        set_image(&sim, "web", &format!("nginx:{v}"));
        settle_with_kubelet(&sim);
    }
    let all = rss(&sim, "web");
    let revisions: Vec<i64> = all.iter().map(|rs| util::revision(rs).unwrap()).collect();
    assert_eq!(revisions, vec![3, 4, 5]);
    assert_eq!(
        util::annotation(&dep(&sim, "web"), util::REVISION),
        Some("5")
    );

    // A limit of 0 keeps no old ReplicaSet.
    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["revisionHistoryLimit"] = json!(0)
    });
    settle_with_kubelet(&sim);
    let revisions: Vec<i64> = rss(&sim, "web")
        .iter()
        .map(|rs| util::revision(rs).unwrap())
        .collect();
    assert_eq!(revisions, vec![5]);
}

#[test]
fn cleanup_while_paused_keeps_replica_sets_that_have_replicas() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 2, rolling(json!(1), json!(0))));
    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");
    settle_with_kubelet(&sim);
    // v3 never becomes ready: v2 keeps serving, v1 has no replicas.
    sim.advance_secs(10);
    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["revisionHistoryLimit"] = json!(0);
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:3");
    });
    sim.settle_ok(&ctls());
    let revisions: Vec<i64> = rss(&sim, "web")
        .iter()
        .map(|rs| util::revision(rs).unwrap())
        .collect();
    assert_eq!(revisions, vec![1, 2, 3], "no cleanup mid-rollout");
    // Paused, old ReplicaSets are cleaned up, but not one that still has replicas.
    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["paused"] = json!(true)
    });
    sim.settle_ok(&ctls());
    let left = rss(&sim, "web");
    let revisions: Vec<i64> = left.iter().map(|rs| util::revision(rs).unwrap()).collect();
    assert_eq!(revisions, vec![2, 3]);
    assert_eq!(replicas(&left[0]), 2);
}

#[test]
fn pause_stops_rollouts_but_not_scaling_and_resume_continues() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 3, rolling(json!(1), json!(0))));
    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["paused"] = json!(true)
    });
    sim.settle_ok(&ctls());
    let d = dep(&sim, "web");
    let p = cond(&d, "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("Unknown"), Some("DeploymentPaused"))
    );
    assert_eq!(p["message"], "Deployment is paused");
    assert_eq!(status(&d, "observedGeneration"), objects::generation(&d));

    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");
    settle_with_kubelet(&sim);
    assert_eq!(rss(&sim, "web").len(), 1, "no rollout while paused");
    let d = dep(&sim, "web");
    assert_eq!(status(&d, "observedGeneration"), objects::generation(&d));
    assert_eq!(
        rollout_status(&d),
        Ok((false, "0 out of 3 new replicas have been updated".into()))
    );

    scale(&sim, "web", 5);
    settle_with_kubelet(&sim);
    let all = rss(&sim, "web");
    assert_eq!(all.len(), 1);
    assert_eq!(replicas(&all[0]), 5, "scaling works while paused");
    assert_eq!(pods(&sim, "web"), (5, 5));

    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["paused"] = json!(false)
    });
    reconcile(&sim, "web").unwrap();
    let d = dep(&sim, "web");
    // Resumed, and the rollout started at once.
    assert_eq!(cond(&d, "Progressing")["reason"], "NewReplicaSetCreated");
    assert_eq!(rss(&sim, "web").len(), 2);
    settle_with_kubelet(&sim);
    let d = dep(&sim, "web");
    assert!(rollout_status(&d).unwrap().0);
    let all = rss(&sim, "web");
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (0, 5));
}

#[test]
fn resuming_records_the_resumed_reason() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 1, rolling(json!(1), json!(0))));
    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["paused"] = json!(true)
    });
    reconcile(&sim, "web").unwrap();
    // Resumed together with a scaling event: the scaling step leaves the condition be.
    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["paused"] = json!(false);
        d["spec"]["replicas"] = json!(2);
    });
    reconcile(&sim, "web").unwrap();
    let d = dep(&sim, "web");
    let p = cond(&d, "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("Unknown"), Some("DeploymentResumed"))
    );
    assert_eq!(p["message"], "Deployment is resumed");
    settle_with_kubelet(&sim);
    let d = dep(&sim, "web");
    assert_eq!(cond(&d, "Progressing")["reason"], "NewReplicaSetAvailable");
    assert!(rollout_status(&d).unwrap().0);
}

#[test]
fn rollout_restart_creates_a_new_replica_set() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(
        &sim,
        deployment("web", 2, rolling(json!("25%"), json!("25%"))),
    );
    sim.advance_secs(10);
    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["template"]["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:10Z"})
    });
    settle_with_kubelet(&sim);
    let all = rss(&sim, "web");
    assert_eq!(all.len(), 2);
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (0, 2));
    assert_eq!(
        all[1]["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-01-01T00:00:10Z"
    );
    let d = dep(&sim, "web");
    assert_eq!(util::annotation(&d, util::REVISION), Some("2"));
    assert!(rollout_status(&d).unwrap().0);
}

#[test]
fn a_rollout_without_progress_exceeds_its_deadline() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut d = deployment("web", 3, rolling(json!("25%"), json!("25%")));
    d["spec"]["progressDeadlineSeconds"] = json!(60);
    create_and_roll_out(&sim, d);
    sim.advance_secs(100);
    set_image(&sim, "web", "nginx:broken");
    let settled = sim.settle_ok(&ctls());
    let Some(Action::RequeueAfter(after)) = settled.actions.get("Deployment/web").copied() else {
        panic!("no requeue for the deadline: {:?}", settled.actions);
    };
    assert!(
        after > Duration::from_secs(60) && after <= Duration::from_secs(61),
        "{after:?}"
    );
    let d = dep(&sim, "web");
    assert_eq!(cond(&d, "Progressing")["status"], "True");
    assert!(!rollout_status(&d).unwrap().0);

    // Not yet at the deadline: still progressing.
    sim.advance_secs(60);
    reconcile(&sim, "web").unwrap();
    assert_eq!(cond(&dep(&sim, "web"), "Progressing")["status"], "True");

    sim.advance_secs(1);
    assert_eq!(reconcile(&sim, "web"), Ok(Action::Done));
    let d = dep(&sim, "web");
    let p = cond(&d, "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("False"), Some("ProgressDeadlineExceeded"))
    );
    let new_rs = rss(&sim, "web").pop().unwrap();
    assert_eq!(
        p["message"],
        format!(
            "ReplicaSet {:?} has timed out progressing.",
            objects::name(&new_rs)
        )
    );
    assert_eq!(
        rollout_status(&d),
        Err("deployment \"web\" exceeded its progress deadline".into())
    );
    // The old Pods still serve.
    assert_eq!(cond(&d, "Available")["status"], "True");

    // Progress after all: the rollout recovers and completes.
    settle_with_kubelet(&sim);
    let d = dep(&sim, "web");
    assert_eq!(cond(&d, "Progressing")["reason"], "NewReplicaSetAvailable");
    assert!(rollout_status(&d).unwrap().0);
}

#[test]
fn progress_resets_the_deadline() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut d = deployment("web", 3, rolling(json!(1), json!(0)));
    d["spec"]["progressDeadlineSeconds"] = json!(60);
    create_and_roll_out(&sim, d);
    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");
    sim.settle_ok(&ctls());
    for _ in 0..3 {
        // Each Pod takes 50 s: slower than nothing, faster than the deadline.
        sim.advance_secs(50);
        sim.start_pods(true);
        sim.settle_ok(&ctls());
        assert_ne!(cond(&dep(&sim, "web"), "Progressing")["status"], "False");
    }
    settle_with_kubelet(&sim);
    assert!(rollout_status(&dep(&sim, "web")).unwrap().0);
}

#[test]
fn min_ready_seconds_delays_availability() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut d = deployment("web", 3, rolling(json!("25%"), json!("25%")));
    d["spec"]["minReadySeconds"] = json!(10);
    sim.add(d);
    sim.settle_ok(&ctls());
    sim.start_pods(true);
    let settled = sim.settle_ok(&ctls());
    let rs = rss(&sim, "web").remove(0);
    assert_eq!(rs["spec"]["minReadySeconds"], 10);
    let rs_key = format!("ReplicaSet/{}", objects::name(&rs));
    assert!(matches!(
        settled.actions.get(&rs_key),
        Some(Action::RequeueAfter(_))
    ));
    let d = dep(&sim, "web");
    assert_eq!(
        (status(&d, "readyReplicas"), status(&d, "availableReplicas")),
        (3, 0)
    );
    assert_eq!(cond(&d, "Available")["status"], "False");
    assert_eq!(
        cond(&d, "Available")["reason"],
        "MinimumReplicasUnavailable"
    );
    assert_eq!(
        rollout_status(&d),
        Ok((false, "0 of 3 updated replicas are available".into()))
    );
    sim.advance_secs(10);
    sim.settle_ok(&ctls());
    let d = dep(&sim, "web");
    assert_eq!(status(&d, "availableReplicas"), 3);
    assert_eq!(cond(&d, "Available")["status"], "True");
    assert!(rollout_status(&d).unwrap().0);

    // A changed minReadySeconds is synced to the new ReplicaSet.
    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["minReadySeconds"] = json!(3)
    });
    sim.settle_ok(&ctls());
    assert_eq!(rss(&sim, "web")[0]["spec"]["minReadySeconds"], 3);
    assert_eq!(rss(&sim, "web").len(), 1);
}

#[test]
fn adopts_a_matching_orphan_replica_set_as_its_new_one() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let d = deployment("web", 2, rolling(json!(1), json!(0)));
    let mut tmpl = d["spec"]["template"].clone();
    tmpl["metadata"]["labels"]["pod-template-hash"] = json!("abc");
    sim.add(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": NS,
                     "labels": {"app": "web", "pod-template-hash": "abc"}},
        "spec": {"replicas": 2,
                 "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
                 "template": tmpl},
    }));
    // And one that selects the same Pods but belongs to someone else.
    sim.add(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "theirs", "namespace": NS, "labels": {"app": "web"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": "other", "uid": "other-uid", "controller": true}]},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "x": "y"}},
                 "template": template(json!({"app": "web", "x": "y"}), "other")},
    }));
    sim.add(d);
    reconcile(&sim, "web").unwrap();
    let d = dep(&sim, "web");
    let all = rss(&sim, "web");
    assert_eq!(all.len(), 1);
    assert_eq!(objects::name(&all[0]), "web-abc");
    assert_eq!(
        objects::controller_of(&all[0]).unwrap()["blockOwnerDeletion"],
        true
    );
    assert_eq!(util::annotation(&all[0], util::REVISION), Some("1"));
    assert_eq!(util::annotation(&d, util::REVISION), Some("1"));
    let p = cond(&d, "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("True"), Some("FoundNewReplicaSet"))
    );
    assert_eq!(p["message"], "Found new replica set \"web-abc\"");
    assert!(objects::is_controlled_by(
        &sim.object("ReplicaSet", NS, "theirs").unwrap(),
        "other-uid"
    ));
    settle_with_kubelet(&sim);
    assert!(rollout_status(&dep(&sim, "web")).unwrap().0);
    assert_eq!(rss(&sim, "web").len(), 1);
}

#[test]
fn releases_replica_sets_that_no_longer_match() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 1, rolling(json!(1), json!(0))));
    let rs = rss(&sim, "web").remove(0);
    sim.edit("ReplicaSet", NS, objects::name(&rs), |r| {
        r["metadata"]["labels"]["app"] = json!("gone")
    });
    // Released; the Deployment then makes itself a new ReplicaSet, whose name (same
    // template, same hash) is taken by the released one: a collision.
    let err = reconcile(&sim, "web").unwrap_err();
    assert!(err.contains("hash collision"), "{err}");
    let released = sim.object("ReplicaSet", NS, objects::name(&rs)).unwrap();
    assert!(objects::owner_refs(&released).is_empty());
    assert_eq!(status(&dep(&sim, "web"), "collisionCount"), 1);
    reconcile(&sim, "web").unwrap();
    let all = rss(&sim, "web");
    assert_eq!(all.len(), 1);
    assert_ne!(objects::name(&all[0]), objects::name(&rs));
}

#[test]
fn hash_collisions_bump_the_collision_count() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let d = deployment("web", 2, rolling(json!(1), json!(0)));
    let hash = objects::pod_template_hash(&d["spec"]["template"], None);
    sim.add(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("web-{hash}"), "namespace": NS, "labels": {"app": "squatter"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "squatter"}},
                 "template": template(json!({"app": "squatter"}), "other")},
    }));
    sim.add(d);
    let err = reconcile(&sim, "web").unwrap_err();
    assert!(err.contains("hash collision"), "{err}");
    let d = dep(&sim, "web");
    assert_eq!(d["status"]["collisionCount"], 1);
    reconcile(&sim, "web").unwrap();
    let all = rss(&sim, "web");
    assert_eq!(all.len(), 1);
    let new_hash = objects::pod_template_hash(&d["spec"]["template"], Some(1));
    assert_eq!(objects::name(&all[0]), format!("web-{new_hash}"));
    assert_eq!(
        all[0]["metadata"]["labels"]["pod-template-hash"],
        new_hash.as_str()
    );
    settle_with_kubelet(&sim);
    let d = dep(&sim, "web");
    assert!(rollout_status(&d).unwrap().0);
    assert_eq!(d["status"]["collisionCount"], 1);
}

#[test]
fn failing_to_create_the_replica_set_is_reported() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(deployment("web", 2, rolling(json!(1), json!(0))));
    sim.fail_creates(
        "ReplicaSet",
        Some(HostError::new(
            403,
            "Forbidden",
            "exceeded quota: replicasets",
        )),
    );
    let err = reconcile(&sim, "web").unwrap_err();
    assert!(err.contains("exceeded quota"), "{err}");
    let d = dep(&sim, "web");
    let p = cond(&d, "Progressing");
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("False"), Some("ReplicaSetCreateError"))
    );
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to create new replica set \"web-")
    );
    sim.fail_creates("ReplicaSet", None);
    settle_with_kubelet(&sim);
    let d = dep(&sim, "web");
    assert_eq!(cond(&d, "Progressing")["reason"], "NewReplicaSetAvailable");
    assert!(rollout_status(&d).unwrap().0);
}

#[test]
fn replica_failures_of_replica_sets_show_on_the_deployment() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(deployment("web", 2, rolling(json!(1), json!(0))));
    sim.fail_creates(
        "Pod",
        Some(HostError::new(403, "Forbidden", "exceeded quota: pods")),
    );
    let settled: Settled = sim.settle(&ctls());
    assert!(!settled.errors.is_empty());
    let d = dep(&sim, "web");
    let f = cond(&d, "ReplicaFailure");
    assert_eq!(
        (f["status"].as_str(), f["reason"].as_str()),
        (Some("True"), Some("FailedCreate"))
    );
    assert!(f["message"].as_str().unwrap().contains("exceeded quota"));
    sim.fail_creates("Pod", None);
    settle_with_kubelet(&sim);
    let d = dep(&sim, "web");
    assert!(objects::condition(&d, "ReplicaFailure").is_none());
    assert!(rollout_status(&d).unwrap().0);
}

#[test]
fn a_deployment_being_deleted_only_updates_its_status() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 2, rolling(json!(1), json!(0))));
    sim.edit("Deployment", NS, "web", |d| {
        d["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        d["spec"]["replicas"] = json!(5);
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    });
    sim.reset_calls();
    reconcile(&sim, "web").unwrap();
    assert_eq!(rss(&sim, "web").len(), 1);
    assert_eq!(replicas(&rss(&sim, "web")[0]), 2);
    assert_eq!(sim.calls().get("update_status"), Some(&1));
    assert_eq!(sim.writes(), 1);
    let d = dep(&sim, "web");
    assert_eq!(status(&d, "observedGeneration"), objects::generation(&d));
    assert_eq!(status(&d, "updatedReplicas"), 0);
    assert_eq!(status(&d, "replicas"), 2);
}

#[test]
fn an_empty_selector_selects_nothing() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut d = deployment("web", 2, rolling(json!(1), json!(0)));
    d["spec"]["selector"] = json!({});
    sim.add(d);
    assert_eq!(reconcile(&sim, "web"), Ok(Action::Done));
    assert!(sim.all("ReplicaSet").is_empty());
    let d = dep(&sim, "web");
    assert_eq!(d["status"], json!({"observedGeneration": 1}));
    assert_eq!(
        DeploymentController::reconcile(&key_of(&d), None),
        Ok(Action::Done)
    );
}

#[test]
fn annotations_are_copied_to_the_new_replica_set_only() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut d = deployment("web", 1, rolling(json!(1), json!(0)));
    d["metadata"]["annotations"] = json!({"kubernetes.io/change-cause": "v1"});
    create_and_roll_out(&sim, d);
    // Annotating without a template change updates the current ReplicaSet.
    sim.edit("Deployment", NS, "web", |d| {
        d["metadata"]["annotations"]["team"] = json!("blue")
    });
    sim.settle_ok(&ctls());
    assert_eq!(util::annotation(&rss(&sim, "web")[0], "team"), Some("blue"));
    sim.advance_secs(10);
    sim.edit("Deployment", NS, "web", |d| {
        d["metadata"]["annotations"]["kubernetes.io/change-cause"] = json!("v2");
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    });
    settle_with_kubelet(&sim);
    let all = rss(&sim, "web");
    assert_eq!(
        util::annotation(&all[0], "kubernetes.io/change-cause"),
        Some("v1")
    );
    assert_eq!(
        util::annotation(&all[1], "kubernetes.io/change-cause"),
        Some("v2")
    );
}

#[test]
fn template_comparison_ignores_the_hash_label_and_empty_fields() {
    let a = json!({"metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                   "spec": {"containers": [{"name": "a", "image": "x", "env": []}]}});
    let b = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "h"}},
                   "spec": {"containers": [{"name": "a", "image": "x"}], "volumes": []}});
    assert!(util::equal_ignore_hash(&a, &b));
    let c = json!({"metadata": {"labels": {"app": "web"}},
                   "spec": {"containers": [{"name": "a", "image": "y"}]}});
    assert!(!util::equal_ignore_hash(&a, &c));
}

#[test]
fn unhealthy_old_replicas_are_scaled_down_first() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 10, rolling(json!(3), json!(2))));
    let old = rss(&sim, "web").remove(0);
    let old_pods = sim.pods_of(objects::uid(&old));
    let sick: Vec<String> = old_pods[..2]
        .iter()
        .map(|p| objects::name(p).to_string())
        .collect();
    for name in &sick {
        sim.set_ready(NS, name, false);
    }
    sim.settle_ok(&ctls());
    assert_eq!(status(&dep(&sim, "web"), "availableReplicas"), 8);

    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");
    sim.settle_ok(&ctls());
    // 13 Pods allowed, 8 must stay available and the 3 new ones are not: only the 2
    // unhealthy old replicas may go, and they are the ones deleted.
    let all = rss(&sim, "web");
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (8, 5));
    let left: Vec<Value> = sim
        .pods_of(objects::uid(&all[0]))
        .into_iter()
        .filter(objects::pod_is_active)
        .collect();
    assert_eq!(left.len(), 8);
    assert!(left.iter().all(objects::pod_is_ready));
    assert!(
        left.iter()
            .all(|p| !sick.contains(&objects::name(p).to_string()))
    );
}

#[test]
fn a_paused_deployment_scales_old_replica_sets_down_once_the_new_one_is_saturated() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    create_and_roll_out(&sim, deployment("web", 3, rolling(json!(1), json!(0))));
    sim.advance_secs(10);
    set_image(&sim, "web", "nginx:2");
    // Walk to (1 old, 3 new) with the last new Pod pending.
    for _ in 0..3 {
        sim.settle_ok(&ctls());
        let all = rss(&sim, "web");
        if (replicas(&all[0]), replicas(&all[1])) == (1, 3) {
            break;
        }
        sim.start_pods(true);
    }
    let all = rss(&sim, "web");
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (1, 3));
    // The last Pod becomes ready and the ReplicaSet says so, but the Deployment is paused
    // before it looks.
    sim.start_pods(true);
    sim.settle_ok(&[replica_set_ctl()]);
    sim.edit("Deployment", NS, "web", |d| {
        d["spec"]["paused"] = json!(true)
    });
    reconcile(&sim, "web").unwrap();
    let all = rss(&sim, "web");
    assert_eq!((replicas(&all[0]), replicas(&all[1])), (0, 3));
}

#[test]
fn many_deployments_converge_with_few_writes_and_no_listing() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let n = 12;
    // Events are counted apart (see `a_new_deployment_becomes_available`).
    events::enable(false);
    replicaset::events::enable(false);
    for i in 0..n {
        sim.add(deployment(
            &format!("app-{i}"),
            10,
            rolling(json!("25%"), json!("25%")),
        ));
    }
    sim.reset_calls();
    settle_with_kubelet(&sim);
    for i in 0..n {
        let d = dep(&sim, &format!("app-{i}"));
        assert!(rollout_status(&d).unwrap().0);
        assert_eq!(status(&d, "availableReplicas"), 10);
    }
    let calls = sim.calls();
    assert_eq!(calls.get("list"), None, "{calls:?}");
    assert_eq!(calls.get("get"), None, "{calls:?}");
    // 1 ReplicaSet and 10 Pods created per Deployment, plus a few status writes each.
    let per_deployment = sim.writes() as f64 / n as f64;
    assert!(
        per_deployment <= 18.0,
        "{per_deployment} writes per Deployment: {calls:?}"
    );
}
