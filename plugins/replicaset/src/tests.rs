use std::time::Duration;

use tugboat_plugin_sdk::cluster::rfc3339;
use tugboat_plugin_sdk::controller::{Action, Controller, MapRule};
use tugboat_plugin_sdk::host::HostError;
use tugboat_plugin_sdk::objects;
use tugboat_plugin_sdk::testing::set_mock_host;
use tugboat_plugin_sdk::{Value, json};

use super::*;
use crate::testkit::{Sim, T0, key_of, replica_set_ctl, template};

const NS: &str = "default";

fn rs_object(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(json!({"app": name, "tier": "web"}), "nginx:1"),
        },
    })
}

fn reconcile(sim: &Sim, name: &str) -> Result<Action, String> {
    let rs = sim
        .object("ReplicaSet", NS, name)
        .expect("the ReplicaSet exists");
    ReplicaSetController::reconcile(&key_of(&rs), Some(&rs))
}

fn rs(sim: &Sim, name: &str) -> Value {
    sim.object("ReplicaSet", NS, name)
        .expect("the ReplicaSet exists")
}

fn active_pods(sim: &Sim, rs: &Value) -> Vec<Value> {
    sim.pods_of(objects::uid(rs))
        .into_iter()
        .filter(objects::pod_is_active)
        .collect()
}

fn status(rs: &Value, field: &str) -> i64 {
    objects::i64_at(rs, &format!("/status/{field}")).unwrap_or(-1)
}

/// The Events recorded: (type, reason, message), oldest first.
fn events(sim: &Sim) -> Vec<(String, String, String)> {
    let mut all = sim.all("Event");
    all.sort_by_key(|e| objects::str_at(e, "/metadata/uid").to_string());
    all.iter()
        .map(|e| {
            assert_eq!(e["involvedObject"]["kind"], "ReplicaSet");
            assert_eq!(e["source"]["component"], "replicaset-controller");
            (
                objects::str_at(e, "/type").to_string(),
                objects::str_at(e, "/reason").to_string(),
                objects::str_at(e, "/message").to_string(),
            )
        })
        .collect()
}

fn pod(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1"}]},
    })
}

#[test]
fn init_declares_the_kinds_and_watches() {
    let spec = ReplicaSetController::init(&Value::Null).unwrap();
    assert_eq!(spec.kinds[0].api_version, "apps/v1");
    assert_eq!(spec.kinds[0].kind, "ReplicaSet");
    assert_eq!(spec.watches.len(), 1);
    assert_eq!(spec.watches[0].kind, "Pod");
    assert_eq!(spec.watches[0].map, MapRule::Owner);

    let spec = ReplicaSetController::init(&json!({"adoptOrphansOnPodEvents": true, "workers": 4}))
        .unwrap();
    assert_eq!(spec.workers, 4);
    assert_eq!(
        spec.watches[1].map,
        MapRule::Selector("/spec/selector".into())
    );
    assert!(ReplicaSetController::init(&json!({"bogus": 1})).is_err());
    assert!(ReplicaSetController::init(&json!({"workers": -1})).is_err());
    assert!(ReplicaSetController::init(&json!([])).is_err());
}

#[test]
fn creates_pods_from_the_template_with_a_controller_reference() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut obj = rs_object("web", 3);
    obj["spec"]["template"]["metadata"]["annotations"] = json!({"note": "x"});
    obj["spec"]["template"]["metadata"]["finalizers"] = json!(["example.com/keep"]);
    sim.add(obj);
    assert_eq!(reconcile(&sim, "web"), Ok(Action::Done));

    let web = rs(&sim, "web");
    let pods = active_pods(&sim, &web);
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(objects::name(p).starts_with("web-"), "{}", objects::name(p));
        assert_eq!(p["metadata"]["generateName"], "web-");
        assert_eq!(
            p["metadata"]["labels"],
            json!({"app": "web", "tier": "web"})
        );
        assert_eq!(p["metadata"]["annotations"], json!({"note": "x"}));
        assert_eq!(p["metadata"]["finalizers"], json!(["example.com/keep"]));
        assert_eq!(p["spec"]["containers"][0]["image"], "nginx:1");
        let owner = objects::controller_of(p).unwrap();
        assert_eq!(
            owner,
            &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": objects::uid(&web), "controller": true, "blockOwnerDeletion": true})
        );
    }
    // The status counts the Pods created by this reconcile.
    assert_eq!(status(&web, "replicas"), 3);
    assert_eq!(status(&web, "fullyLabeledReplicas"), 3);
    assert_eq!(status(&web, "readyReplicas"), 0);
    assert_eq!(status(&web, "availableReplicas"), 0);
    assert_eq!(status(&web, "observedGeneration"), 1);

    // Converged: another reconcile writes nothing.
    let writes = sim.writes();
    assert_eq!(reconcile(&sim, "web"), Ok(Action::Done));
    assert_eq!(sim.writes(), writes);
}

#[test]
fn status_tracks_ready_and_available_pods_and_requeues_for_min_ready_seconds() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut obj = rs_object("web", 2);
    obj["spec"]["minReadySeconds"] = json!(10);
    sim.add(obj);
    reconcile(&sim, "web").unwrap();
    sim.start_pods(true);
    sim.advance_secs(4);
    // Ready 4 s ago, available in 6 s: requeued for then.
    let action = reconcile(&sim, "web").unwrap();
    let web = rs(&sim, "web");
    assert_eq!(status(&web, "readyReplicas"), 2);
    assert_eq!(status(&web, "availableReplicas"), 0);
    let Action::RequeueAfter(after) = action else {
        panic!("expected a requeue, got {action:?}");
    };
    assert!(
        after >= Duration::from_secs(6) && after < Duration::from_millis(6100),
        "{after:?}"
    );
    sim.advance_secs(6);
    assert_eq!(reconcile(&sim, "web"), Ok(Action::Done));
    let web = rs(&sim, "web");
    assert_eq!(status(&web, "availableReplicas"), 2);
}

#[test]
fn writes_observed_generation_when_only_the_spec_changed() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(rs_object("web", 1));
    reconcile(&sim, "web").unwrap();
    sim.edit("ReplicaSet", NS, "web", |r| {
        r["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2")
    });
    assert_eq!(objects::generation(&rs(&sim, "web")), 2);
    reconcile(&sim, "web").unwrap();
    assert_eq!(status(&rs(&sim, "web"), "observedGeneration"), 2);
}

#[test]
fn creates_in_slow_start_batches_and_reports_replica_failure() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(rs_object("web", 5));
    sim.fail_creates(
        "Pod",
        Some(HostError::new(403, "Forbidden", "exceeded quota: pods")),
    );
    let err = reconcile(&sim, "web").unwrap_err();
    assert!(err.contains("exceeded quota"), "{err}");
    // The first batch (1 Pod) failed: nothing more was tried.
    assert!(sim.all("Pod").is_empty());
    assert_eq!(
        events(&sim),
        vec![(
            "Warning".into(),
            "FailedCreate".into(),
            "Error creating: exceeded quota: pods".into()
        )]
    );
    let web = rs(&sim, "web");
    let cond = objects::condition(&web, "ReplicaFailure").expect("a ReplicaFailure condition");
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "FailedCreate");
    assert_eq!(cond["message"], "exceeded quota: pods");
    assert!(cond.get("lastUpdateTime").is_none());
    let since = cond["lastTransitionTime"].clone();

    // Still failing: the condition is kept as it was.
    sim.advance_secs(30);
    reconcile(&sim, "web").unwrap_err();
    let cond = objects::condition(&rs(&sim, "web"), "ReplicaFailure")
        .unwrap()
        .clone();
    assert_eq!(cond["lastTransitionTime"], since);

    // Fixed: Pods are created and the condition goes away.
    sim.fail_creates("Pod", None);
    sim.reset_calls();
    assert_eq!(reconcile(&sim, "web"), Ok(Action::Done));
    assert_eq!(sim.all("Pod").len(), 5);
    let created = events(&sim)
        .into_iter()
        .filter(|(t, r, m)| {
            t == "Normal" && r == "SuccessfulCreate" && m.starts_with("Created pod: web-")
        })
        .count();
    assert_eq!(created, 5);
    let web = rs(&sim, "web");
    assert!(objects::condition(&web, "ReplicaFailure").is_none());
    assert_eq!(status(&web, "replicas"), 5);
}

#[test]
fn slow_start_stops_after_the_first_failing_batch() {
    // A host where creates fail after `ok` successes.
    struct Flaky {
        sim: Sim,
        ok: std::cell::Cell<usize>,
        tried: std::rc::Rc<std::cell::Cell<usize>>,
    }
    impl tugboat_plugin_sdk::testing::MockHost for Flaky {
        fn get(
            &self,
            a: &str,
            k: &str,
            n: Option<&str>,
            name: &str,
        ) -> Result<Option<Value>, HostError> {
            tugboat_plugin_sdk::testing::MockHost::get(&self.sim, a, k, n, name)
        }
        fn create(&self, o: &Value) -> Result<Value, HostError> {
            if objects::str_at(o, "/kind") != "Pod" {
                return self.sim.create(o);
            }
            self.tried.set(self.tried.get() + 1);
            if self.ok.get() == 0 {
                return Err(HostError::new(500, "InternalError", "etcd is sad"));
            }
            self.ok.set(self.ok.get() - 1);
            self.sim.create(o)
        }
        fn select(&self, q: &tugboat_plugin_sdk::cluster::Query) -> Result<Vec<Value>, HostError> {
            self.sim.select(q)
        }
        fn patch(
            &self,
            a: &str,
            k: &str,
            n: Option<&str>,
            name: &str,
            t: tugboat_plugin_sdk::cluster::PatchType,
            p: &Value,
            s: Option<&str>,
        ) -> Result<Value, HostError> {
            self.sim.patch(a, k, n, name, t, p, s)
        }
        fn now_millis(&self) -> u64 {
            self.sim.now()
        }
    }
    let sim = Sim::new();
    sim.add(rs_object("web", 20));
    let tried = std::rc::Rc::new(std::cell::Cell::new(0));
    let _g = set_mock_host(Flaky {
        sim: sim.clone(),
        ok: std::cell::Cell::new(4),
        tried: tried.clone(),
    });
    // Batches of 1 and 2 succeed (3 Pods), the batch of 4 has one success and 3 failures:
    // the remaining 13 are not tried.
    let web = rs(&sim, "web");
    let err = ReplicaSetController::reconcile(&key_of(&web), Some(&web)).unwrap_err();
    assert!(err.contains("13 more skipped"), "{err}");
    assert_eq!(tried.get(), 7);
    let web = rs(&sim, "web");
    assert_eq!(status(&web, "replicas"), 4);
    assert_eq!(
        objects::condition(&web, "ReplicaFailure").unwrap()["reason"],
        "FailedCreate"
    );
}

#[test]
fn creates_at_most_a_burst_per_reconcile() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    events::enable(false);
    sim.add(rs_object("big", 600));
    reconcile(&sim, "big").unwrap();
    assert_eq!(sim.all("Pod").len(), BURST_REPLICAS);
    reconcile(&sim, "big").unwrap();
    assert_eq!(sim.all("Pod").len(), 600);
    assert_eq!(status(&rs(&sim, "big"), "replicas"), 600);
}

#[test]
fn scales_down_deleting_the_least_valuable_pods_first() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(rs_object("web", 6));
    reconcile(&sim, "web").unwrap();
    let web = rs(&sim, "web");
    let names: Vec<String> = active_pods(&sim, &web)
        .iter()
        .map(|p| objects::name(p).to_string())
        .collect();
    // [0]: unassigned; [1]: assigned, Pending; [2]: Running, not ready; [3]: ready for
    // 1000 s; [4]: ready for 10 s; [5]: ready for 1000 s with restarts.
    let t = |secs_ago: u64| rfc3339(T0 + 2_000_000 - secs_ago * 1000);
    let ready = |p: &mut Value, since: String, restarts: i64| {
        p["spec"]["nodeName"] = json!("node-1");
        p["status"] = json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}],
            "containerStatuses": [{"name": "app", "restartCount": restarts}]});
    };
    sim.edit("Pod", NS, &names[1], |p| {
        p["spec"]["nodeName"] = json!("node-1");
        p["status"] = json!({"phase": "Pending"});
    });
    sim.edit("Pod", NS, &names[2], |p| {
        p["spec"]["nodeName"] = json!("node-1");
        p["status"] = json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": t(5)}]});
    });
    sim.edit("Pod", NS, &names[3], |p| ready(p, t(1000), 0));
    sim.edit("Pod", NS, &names[4], |p| ready(p, t(10), 0));
    sim.edit("Pod", NS, &names[5], |p| ready(p, t(1000), 3));
    sim.set_time(T0 + 2_000_000);

    let expect_deleted = |n: i64, expected: &[&str]| {
        sim.edit("ReplicaSet", NS, "web", |r| {
            r["spec"]["replicas"] = json!(n)
        });
        reconcile(&sim, "web").unwrap();
        let left: Vec<String> = active_pods(&sim, &rs(&sim, "web"))
            .iter()
            .map(|p| objects::name(p).to_string())
            .collect();
        for e in expected {
            assert!(
                !left.contains(&e.to_string()),
                "{e} should be deleted: {left:?}"
            );
        }
        assert_eq!(left.len() as i64, n);
    };
    expect_deleted(5, &[&names[0]]);
    expect_deleted(4, &[&names[1]]);
    expect_deleted(3, &[&names[2]]);
    // Ready for less time goes first.
    expect_deleted(2, &[&names[4]]);
    // Same ready time bucket: more restarts goes first.
    expect_deleted(1, &[&names[5]]);
    let web = rs(&sim, "web");
    let left = active_pods(&sim, &web);
    assert_eq!(objects::name(&left[0]), names[3]);
    assert_eq!(status(&web, "replicas"), 1);
    assert_eq!(status(&web, "readyReplicas"), 1);
}

fn ranked(a: &Value, b: &Value) -> bool {
    delete_before(a, 0, b, 0, T0) && !delete_before(b, 0, a, 0, T0)
}

#[test]
fn deletion_ranking_follows_kubernetes() {
    let base = |name: &str| {
        json!({"metadata": {"name": name, "uid": name, "creationTimestamp": rfc3339(T0 - 3_600_000)},
               "spec": {"nodeName": "n1"},
               "status": {"phase": "Running",
                          "conditions": [{"type": "Ready", "status": "True",
                                          "lastTransitionTime": rfc3339(T0 - 3_600_000)}]}})
    };
    let with = |name: &str, f: &dyn Fn(&mut Value)| {
        let mut p = base(name);
        f(&mut p);
        p
    };
    let normal = base("normal");
    let unassigned = with("unassigned", &|p| p["spec"]["nodeName"] = json!(""));
    let pending = with("pending", &|p| {
        p["status"] = json!({"phase": "Pending"});
    });
    let unknown = with("unknown", &|p| p["status"]["phase"] = json!("Unknown"));
    let not_ready = with("notready", &|p| {
        p["status"]["conditions"][0]["status"] = json!("False")
    });
    let cheap = with("cheap", &|p| {
        p["metadata"]["annotations"] = json!({POD_DELETION_COST: "-5"})
    });
    let costly = with("costly", &|p| {
        p["metadata"]["annotations"] = json!({POD_DELETION_COST: "100"})
    });
    let bad_cost = with("badcost", &|p| {
        p["metadata"]["annotations"] = json!({POD_DELETION_COST: "lots"})
    });
    let recently_ready = with("recent", &|p| {
        p["status"]["conditions"][0]["lastTransitionTime"] = json!(rfc3339(T0 - 2_000))
    });
    let restarted = with("restarted", &|p| {
        p["status"]["containerStatuses"] = json!([{"name": "app", "restartCount": 2}])
    });
    let sidecar_restarted = with("sidecar", &|p| {
        p["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
        p["status"]["initContainerStatuses"] = json!([{"name": "proxy", "restartCount": 9}]);
    });
    let newer = with("newer", &|p| {
        p["metadata"]["creationTimestamp"] = json!(rfc3339(T0 - 4_000))
    });
    let no_time = with("notime", &|p| {
        p["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("creationTimestamp");
    });

    assert!(ranked(&unassigned, &normal));
    assert!(ranked(&unassigned, &pending));
    assert!(ranked(&pending, &unknown));
    assert!(ranked(&unknown, &normal));
    assert!(ranked(&not_ready, &normal));
    assert!(ranked(&cheap, &normal));
    assert!(ranked(&normal, &costly));
    assert!(!ranked(&bad_cost, &normal) && !ranked(&normal, &bad_cost));
    assert!(ranked(&recently_ready, &normal));
    assert!(ranked(&restarted, &normal));
    assert!(ranked(&sidecar_restarted, &normal));
    assert!(ranked(&restarted, &sidecar_restarted));
    assert!(ranked(&newer, &normal));
    assert!(ranked(&no_time, &normal));
    // Doubled up (more related Pods on the node) goes first.
    assert!(delete_before(&normal, 3, &base("other"), 1, T0));
    assert!(!delete_before(&base("other"), 1, &normal, 3, T0));
    // Ages in the same power-of-two bucket are ordered by uid, not by exact age.
    let a = with("a", &|p| {
        p["metadata"]["creationTimestamp"] = json!(rfc3339(T0 - 3_000_000))
    });
    let b = with("b", &|p| {
        p["metadata"]["creationTimestamp"] = json!(rfc3339(T0 - 3_100_000))
    });
    assert!(ranked(&a, &b));
    let c = with("c", &|p| {
        p["metadata"]["creationTimestamp"] = json!(rfc3339(T0 - 3_000_000))
    });
    assert!(ranked(&b, &c), "same bucket, lower uid first");

    let pods = vec![
        normal.clone(),
        restarted.clone(),
        unassigned.clone(),
        costly.clone(),
    ];
    assert_eq!(pods_to_delete(&pods, &[], 2, T0), vec![2, 1]);
    assert_eq!(pods_to_delete(&pods, &[], 4, T0).len(), 4);
}

#[test]
fn scale_down_prefers_pods_doubled_up_with_sibling_replica_sets() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let owner = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "d",
                       "uid": "deploy-uid", "controller": true, "blockOwnerDeletion": true});
    let mut a = rs_object("a", 2);
    a["metadata"]["ownerReferences"] = json!([owner]);
    let mut b = rs_object("b", 2);
    b["metadata"]["ownerReferences"] = json!([owner]);
    sim.add(a);
    sim.add(b);
    reconcile(&sim, "a").unwrap();
    reconcile(&sim, "b").unwrap();
    sim.start_pods(true);
    let a_pods = active_pods(&sim, &rs(&sim, "a"));
    let b_pods = active_pods(&sim, &rs(&sim, "b"));
    // a's first Pod shares node-x with both of b's Pods; a's second is alone on node-y.
    sim.edit("Pod", NS, objects::name(&a_pods[0]), |p| {
        p["spec"]["nodeName"] = json!("node-x")
    });
    sim.edit("Pod", NS, objects::name(&a_pods[1]), |p| {
        p["spec"]["nodeName"] = json!("node-y")
    });
    for p in &b_pods {
        sim.edit("Pod", NS, objects::name(p), |p| {
            p["spec"]["nodeName"] = json!("node-x")
        });
    }
    sim.edit("ReplicaSet", NS, "a", |r| r["spec"]["replicas"] = json!(1));
    reconcile(&sim, "a").unwrap();
    let left = active_pods(&sim, &rs(&sim, "a"));
    assert_eq!(left.len(), 1);
    assert_eq!(objects::name(&left[0]), objects::name(&a_pods[1]));
}

#[test]
fn adopts_matching_orphans_and_leaves_other_pods_alone() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    // A matching orphan (with a non-controller owner reference to keep).
    let mut orphan = pod("orphan", json!({"app": "web"}));
    orphan["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "cm-uid"}]);
    sim.add(orphan);
    // Matching, but controlled by someone else.
    let mut taken = pod("taken", json!({"app": "web"}));
    taken["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "other", "uid": "other-uid", "controller": true}]);
    sim.add(taken);
    // Not matching.
    sim.add(pod("stranger", json!({"app": "db"})));
    // Matching but finished or being deleted: not adopted.
    let mut done = pod("done", json!({"app": "web"}));
    done["status"] = json!({"phase": "Succeeded"});
    sim.add(done);
    let mut leaving = pod("leaving", json!({"app": "web"}));
    leaving["metadata"]["deletionTimestamp"] = json!(rfc3339(T0));
    let leaving = sim.add(leaving);
    sim.edit("Pod", NS, objects::name(&leaving), |p| {
        p["metadata"]["deletionTimestamp"] = json!(rfc3339(T0))
    });

    sim.add(rs_object("web", 2));
    reconcile(&sim, "web").unwrap();
    let web = rs(&sim, "web");
    let orphan = sim.object("Pod", NS, "orphan").unwrap();
    assert!(objects::is_controlled_by(&orphan, objects::uid(&web)));
    assert_eq!(
        objects::owner_refs(&orphan).len(),
        2,
        "the other reference is kept"
    );
    assert_eq!(
        objects::controller_of(&orphan).unwrap()["blockOwnerDeletion"],
        true
    );
    assert!(objects::is_controlled_by(
        &sim.object("Pod", NS, "taken").unwrap(),
        "other-uid"
    ));
    assert!(objects::owner_refs(&sim.object("Pod", NS, "stranger").unwrap()).is_empty());
    assert!(objects::owner_refs(&sim.object("Pod", NS, "done").unwrap()).is_empty());
    assert!(objects::owner_refs(&sim.object("Pod", NS, "leaving").unwrap()).is_empty());
    // The adopted Pod counts: one more was created to reach 2.
    let pods = active_pods(&sim, &web);
    assert_eq!(pods.len(), 2);
    assert_eq!(status(&web, "replicas"), 2);
    // Only the adopted Pod lacks the template's `tier` label.
    assert_eq!(status(&web, "fullyLabeledReplicas"), 1);
}

#[test]
fn releases_owned_pods_that_no_longer_match() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(rs_object("web", 2));
    reconcile(&sim, "web").unwrap();
    let web = rs(&sim, "web");
    let pods = active_pods(&sim, &web);
    let moved = objects::name(&pods[0]).to_string();
    sim.edit("Pod", NS, &moved, |p| {
        p["metadata"]["labels"]["app"] = json!("debug")
    });
    reconcile(&sim, "web").unwrap();
    let released = sim.object("Pod", NS, &moved).unwrap();
    assert!(objects::controller_of(&released).is_none());
    assert!(objects::owner_refs(&released).is_empty());
    // A replacement was created.
    assert_eq!(active_pods(&sim, &web).len(), 2);
    assert_eq!(status(&rs(&sim, "web"), "replicas"), 2);
}

#[test]
fn a_replica_set_being_deleted_manages_nothing() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(rs_object("web", 2));
    reconcile(&sim, "web").unwrap();
    let web = rs(&sim, "web");
    let pods = active_pods(&sim, &web);
    sim.add(pod("orphan", json!({"app": "web"})));
    sim.edit("Pod", NS, objects::name(&pods[0]), |p| {
        p["metadata"]["labels"]["app"] = json!("x")
    });
    sim.edit("ReplicaSet", NS, "web", |r| {
        r["metadata"]["deletionTimestamp"] = json!(rfc3339(T0));
        r["spec"]["replicas"] = json!(5);
    });
    sim.reset_calls();
    reconcile(&sim, "web").unwrap();
    let calls = sim.calls();
    assert_eq!(calls.get("create"), None);
    assert_eq!(calls.get("delete"), None);
    // Only the status patch: no adoption or release.
    assert_eq!(calls.get("patch"), Some(&1));
    let web = rs(&sim, "web");
    assert_eq!(status(&web, "replicas"), 1);
    assert_eq!(status(&web, "observedGeneration"), 2);
    assert!(objects::owner_refs(&sim.object("Pod", NS, "orphan").unwrap()).is_empty());
}

#[test]
fn inactive_pods_do_not_count_and_are_replaced() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.graceful_pod_deletion(true);
    sim.add(rs_object("web", 3));
    reconcile(&sim, "web").unwrap();
    let web = rs(&sim, "web");
    let pods = active_pods(&sim, &web);
    sim.edit("Pod", NS, objects::name(&pods[0]), |p| {
        p["status"] = json!({"phase": "Failed"})
    });
    sim.edit("Pod", NS, objects::name(&pods[1]), |p| {
        p["metadata"]["deletionTimestamp"] = json!(rfc3339(T0))
    });
    reconcile(&sim, "web").unwrap();
    let web = rs(&sim, "web");
    assert_eq!(active_pods(&sim, &web).len(), 3);
    assert_eq!(sim.pods_of(objects::uid(&web)).len(), 5);
    assert_eq!(status(&web, "replicas"), 3);
}

#[test]
fn scale_down_with_graceful_deletion_counts_terminating_pods_out() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.graceful_pod_deletion(true);
    sim.add(rs_object("web", 4));
    reconcile(&sim, "web").unwrap();
    sim.start_pods(true);
    reconcile(&sim, "web").unwrap();
    sim.edit("ReplicaSet", NS, "web", |r| {
        r["spec"]["replicas"] = json!(1)
    });
    reconcile(&sim, "web").unwrap();
    let web = rs(&sim, "web");
    assert_eq!(status(&web, "replicas"), 1);
    assert_eq!(status(&web, "readyReplicas"), 1);
    let deleted = events(&sim)
        .into_iter()
        .filter(|(_, r, m)| r == "SuccessfulDelete" && m.starts_with("Deleted pod: "))
        .count();
    assert_eq!(deleted, 3);
    // Terminating Pods are not deleted twice.
    sim.reset_calls();
    reconcile(&sim, "web").unwrap();
    assert_eq!(sim.calls().get("delete"), None);
    assert_eq!(sim.finish_terminating(), 3);
}

#[test]
fn pods_without_labels_cannot_be_created() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    let mut obj = rs_object("web", 1);
    obj["spec"]["template"]["metadata"]["labels"] = json!({});
    sim.add(obj);
    let err = reconcile(&sim, "web").unwrap_err();
    assert!(err.contains("no labels"), "{err}");
    assert_eq!(
        objects::condition(&rs(&sim, "web"), "ReplicaFailure").unwrap()["reason"],
        "FailedCreate"
    );
}

#[test]
fn empty_selectors_and_missing_objects_are_ignored() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(pod("p", json!({"app": "web"})));
    let mut obj = rs_object("web", 1);
    obj["spec"]["selector"] = json!({});
    sim.add(obj);
    assert_eq!(reconcile(&sim, "web"), Ok(Action::Done));
    assert_eq!(sim.all("Pod").len(), 1);
    assert!(objects::owner_refs(&sim.object("Pod", NS, "p").unwrap()).is_empty());
    let key = key_of(&rs(&sim, "web"));
    assert_eq!(
        ReplicaSetController::reconcile(&key, None),
        Ok(Action::Done)
    );
}

#[test]
fn events_can_be_turned_off() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    ReplicaSetController::init(&json!({"events": false})).unwrap();
    sim.add(rs_object("web", 2));
    reconcile(&sim, "web").unwrap();
    assert_eq!(sim.all("Pod").len(), 2);
    assert!(sim.all("Event").is_empty());
    ReplicaSetController::init(&Value::Null).unwrap();
    sim.edit("ReplicaSet", NS, "web", |r| {
        r["spec"]["replicas"] = json!(3)
    });
    reconcile(&sim, "web").unwrap();
    assert_eq!(sim.all("Event").len(), 1);
}

#[test]
fn settles_with_a_kubelet() {
    let sim = Sim::new();
    let _g = set_mock_host(sim.clone());
    sim.add(rs_object("web", 3));
    sim.settle_ok(&[replica_set_ctl()]);
    sim.start_pods(true);
    sim.settle_ok(&[replica_set_ctl()]);
    let web = rs(&sim, "web");
    assert_eq!(
        web["status"],
        json!({"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3,
               "availableReplicas": 3, "observedGeneration": 1})
    );
}

#[test]
fn a_burst_stops_when_its_time_is_up() {
    // A host whose clock moves 300 ms per Pod created.
    struct Slow(Sim);
    impl tugboat_plugin_sdk::testing::MockHost for Slow {
        fn create(&self, o: &Value) -> Result<Value, HostError> {
            if objects::str_at(o, "/kind") == "Pod" {
                self.0.set_time(self.0.now() + 300);
            }
            self.0.create(o)
        }
        fn select(&self, q: &tugboat_plugin_sdk::cluster::Query) -> Result<Vec<Value>, HostError> {
            self.0.select(q)
        }
        #[allow(clippy::too_many_arguments)]
        fn patch(
            &self,
            a: &str,
            k: &str,
            n: Option<&str>,
            name: &str,
            t: tugboat_plugin_sdk::cluster::PatchType,
            p: &Value,
            s: Option<&str>,
        ) -> Result<Value, HostError> {
            self.0.patch(a, k, n, name, t, p, s)
        }
        fn now_millis(&self) -> u64 {
            self.0.now()
        }
    }
    let sim = Sim::new();
    sim.add(rs_object("web", 20));
    let _g = set_mock_host(Slow(sim.clone()));
    let web = rs(&sim, "web");
    ReplicaSetController::reconcile(&key_of(&web), Some(&web)).unwrap();
    // The budget is checked before each slow-start batch: batches of 1 and 2 take 900 ms,
    // the batch of 4 starts within the second, and then the time is up: the rest comes
    // later.
    assert_eq!(sim.all("Pod").len(), 7);
    assert_eq!(status(&rs(&sim, "web"), "replicas"), 7);
}
