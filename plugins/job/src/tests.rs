use std::time::Duration;

use tugboat_plugin_sdk::cluster::{self, Propagation};
use tugboat_plugin_sdk::controller::{Action, Controller};
use tugboat_plugin_sdk::{Value, json};

use crate::testkit::{Cluster, T0, name_of, reconcile};
use crate::{COMPLETION_INDEX_KEY, JobController};

fn job(name: &str, spec: Value) -> Value {
    let mut spec_obj = json!({
        "parallelism": 1,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "suspend": false,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "x"}},
        "template": {
            "metadata": {"labels": {"job-name": name}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
        },
    });
    if let (Some(base), Some(extra)) = (spec_obj.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec_obj,
    })
}

fn sync(c: &Cluster, name: &str) -> Result<Action, String> {
    reconcile::<JobController>(c, "batch/v1", "Job", Some("default"), name)
}

fn get_job(c: &Cluster, name: &str) -> Value {
    c.get("batch/v1", "Job", Some("default"), name)
        .expect("job exists")
}

fn status(c: &Cluster, name: &str) -> Value {
    get_job(c, name)["status"].clone()
}

fn cond<'a>(job: &'a Value, kind: &str) -> Option<&'a Value> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn job_pods(c: &Cluster) -> Vec<Value> {
    c.live_pods()
}

fn finish_pod(c: &Cluster, name: &str, phase: &str) {
    let now = cluster::rfc3339(c.now());
    c.merge(
        "v1",
        "Pod",
        Some("default"),
        name,
        json!({"status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": now}]}}),
    );
}

#[test]
fn init_declares_jobs_owning_pods() {
    let spec = JobController::init(&Value::Null).unwrap();
    assert_eq!(spec.kinds[0].kind, "Job");
    assert_eq!(spec.kinds[0].api_version, "batch/v1");
    assert_eq!(spec.watches.len(), 1);
    assert_eq!(spec.watches[0].kind, "Pod");
    assert_eq!(
        spec.watches[0].map,
        tugboat_plugin_sdk::controller::MapRule::Owner
    );
}

#[test]
fn config_turns_events_off_and_rejects_unknown_fields() {
    let (c, _g) = Cluster::new(T0);
    assert!(JobController::init(&json!({"events": "no"})).is_err());
    assert!(JobController::init(&json!({"eventz": true})).is_err());
    assert!(JobController::init(&json!([])).is_err());
    JobController::init(&json!({"events": false})).unwrap();
    c.add(job("quiet", json!({})));
    sync(&c, "quiet").unwrap();
    assert_eq!(job_pods(&c).len(), 1);
    assert!(c.event_reasons().is_empty());
    JobController::init(&Value::Null).unwrap();
    c.add(job("loud", json!({})));
    sync(&c, "loud").unwrap();
    assert_eq!(c.event_reasons(), ["SuccessfulCreate"]);
}

#[test]
fn a_job_runs_to_completion_with_parallelism() {
    let (c, _g) = Cluster::new(T0);
    let j = c.add(job("pi", json!({"completions": 5, "parallelism": 2})));
    assert_eq!(sync(&c, "pi"), Ok(Action::Done));

    let pods = job_pods(&c);
    assert_eq!(pods.len(), 2, "parallelism bounds the active pods");
    for p in &pods {
        assert!(name_of(p).starts_with("pi-"));
        assert_eq!(p["metadata"]["generateName"], "pi-");
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["uid"],
            j["metadata"]["uid"]
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(p["metadata"]["labels"]["job-name"], "pi");
        assert_eq!(p["spec"]["restartPolicy"], "Never");
    }
    let s = status(&c, "pi");
    assert_eq!(s["active"], 2);
    assert_eq!(s["ready"], 0);
    assert_eq!(s["startTime"], cluster::rfc3339(T0));
    assert!(s.get("succeeded").is_none(), "zero counters are omitted");

    // Idempotent: nothing more is created while two are active.
    sync(&c, "pi").unwrap();
    assert_eq!(job_pods(&c).len(), 2);

    // Pods run, become ready, then succeed one by one.
    for p in job_pods(&c) {
        c.set_pod("default", name_of(&p), "Running", true);
    }
    sync(&c, "pi").unwrap();
    assert_eq!(status(&c, "pi")["ready"], 2);

    let mut rounds = 0;
    while cond(&get_job(&c, "pi"), "Complete").is_none() {
        rounds += 1;
        assert!(rounds < 10, "the job never completed");
        c.advance(1000);
        let running: Vec<Value> = job_pods(&c)
            .into_iter()
            .filter(|p| p["status"]["phase"] != "Succeeded")
            .collect();
        assert!(running.len() <= 2);
        if let Some(p) = running.first() {
            finish_pod(&c, name_of(p), "Succeeded");
        }
        sync(&c, "pi").unwrap();
        let s = status(&c, "pi");
        let active = s["active"].as_i64().unwrap_or(0);
        let succeeded = s["succeeded"].as_i64().unwrap_or(0);
        assert!(active <= 5 - succeeded, "active ≤ remaining completions");
    }
    let done = get_job(&c, "pi");
    assert_eq!(done["status"]["succeeded"], 5);
    assert!(done["status"].get("active").is_none());
    assert_eq!(
        job_pods(&c).len(),
        5,
        "exactly the completions were created"
    );
    let complete = cond(&done, "Complete").unwrap();
    assert_eq!(complete["status"], "True");
    assert_eq!(complete["reason"], "CompletionsReached");
    assert_eq!(cond(&done, "SuccessCriteriaMet").unwrap()["status"], "True");
    assert_eq!(done["status"]["completionTime"], cluster::rfc3339(c.now()));
    assert!(c.event_reasons().contains(&"Completed".to_string()));
    assert_eq!(
        c.event_reasons()
            .iter()
            .filter(|r| *r == "SuccessfulCreate")
            .count(),
        5
    );

    // A finished Job is left alone.
    sync(&c, "pi").unwrap();
    assert_eq!(job_pods(&c).len(), 5);
}

#[test]
fn without_completions_the_first_success_completes_when_the_others_end() {
    let (c, _g) = Cluster::new(T0);
    c.add(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"parallelism": 3, "backoffLimit": 6,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
    }));
    sync(&c, "w").unwrap();
    let pods = job_pods(&c);
    assert_eq!(pods.len(), 3);
    finish_pod(&c, name_of(&pods[0]), "Succeeded");
    sync(&c, "w").unwrap();
    // The others keep running; no new pods; not complete yet.
    assert_eq!(job_pods(&c).len(), 3);
    assert!(cond(&get_job(&c, "w"), "Complete").is_none());
    assert_eq!(status(&c, "w")["active"], 2);
    finish_pod(&c, name_of(&pods[1]), "Succeeded");
    finish_pod(&c, name_of(&pods[2]), "Failed");
    sync(&c, "w").unwrap();
    let j = get_job(&c, "w");
    assert_eq!(cond(&j, "Complete").unwrap()["status"], "True");
    assert_eq!(j["status"]["succeeded"], 2);
    assert_eq!(j["status"]["failed"], 1);
}

#[test]
fn failed_pods_are_replaced_after_a_backoff_until_the_limit() {
    let (c, _g) = Cluster::new(T0);
    c.add(job("f", json!({"completions": 1, "backoffLimit": 2})));
    sync(&c, "f").unwrap();
    assert_eq!(job_pods(&c).len(), 1);

    // First failure: the replacement waits 10 s.
    let first = name_of(&job_pods(&c)[0]).to_string();
    finish_pod(&c, &first, "Failed");
    let action = sync(&c, "f").unwrap();
    assert_eq!(action, Action::RequeueAfter(Duration::from_secs(10)));
    assert_eq!(job_pods(&c).len(), 1, "no replacement during the backoff");
    assert_eq!(status(&c, "f")["failed"], 1);
    c.advance(10_000);
    sync(&c, "f").unwrap();
    assert_eq!(job_pods(&c).len(), 2);

    // Second failure: 20 s.
    let second = job_pods(&c)
        .into_iter()
        .find(|p| name_of(p) != first)
        .unwrap();
    finish_pod(&c, name_of(&second), "Failed");
    assert_eq!(
        sync(&c, "f").unwrap(),
        Action::RequeueAfter(Duration::from_secs(20))
    );
    c.advance(20_000);
    sync(&c, "f").unwrap();
    assert_eq!(job_pods(&c).len(), 3);
    assert_eq!(status(&c, "f")["failed"], 2);
    assert!(
        cond(&get_job(&c, "f"), "Failed").is_none(),
        "2 failures ≤ backoffLimit 2"
    );

    // Third failure exceeds the limit: the job fails.
    let third = job_pods(&c)
        .into_iter()
        .find(|p| p["status"]["phase"] == "Pending")
        .unwrap();
    finish_pod(&c, name_of(&third), "Failed");
    sync(&c, "f").unwrap();
    let j = get_job(&c, "f");
    assert_eq!(j["status"]["failed"], 3);
    let failed = cond(&j, "Failed").expect("Failed condition");
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    assert_eq!(
        cond(&j, "FailureTarget").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert!(j["status"].get("completionTime").is_none());
    assert!(
        c.event_reasons()
            .contains(&"BackoffLimitExceeded".to_string())
    );
    // No more pods once failed.
    c.advance(600_000);
    sync(&c, "f").unwrap();
    assert_eq!(job_pods(&c).len(), 3);
}

#[test]
fn a_zero_backoff_limit_fails_on_the_first_failure() {
    let (c, _g) = Cluster::new(T0);
    c.add(job(
        "z",
        json!({"completions": 3, "parallelism": 3, "backoffLimit": 0}),
    ));
    sync(&c, "z").unwrap();
    let pods = job_pods(&c);
    for p in &pods[1..] {
        c.set_pod("default", name_of(p), "Running", true);
    }
    finish_pod(&c, name_of(&pods[0]), "Failed");
    sync(&c, "z").unwrap();
    let j = get_job(&c, "z");
    assert_eq!(
        cond(&j, "FailureTarget").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert!(cond(&j, "Failed").is_none(), "two pods were terminating");
    // The deletions bring the Job back: now nothing terminates any more.
    sync(&c, "z").unwrap();
    let j = get_job(&c, "z");
    // The two running pods were deleted and count as failed.
    assert_eq!(j["status"]["failed"], 3);
    assert_eq!(
        cond(&j, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert_eq!(job_pods(&c).len(), 1);
}

#[test]
fn on_failure_restarts_count_toward_the_backoff_limit() {
    let (c, _g) = Cluster::new(T0);
    let mut j = job("r", json!({"backoffLimit": 3}));
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    c.add(j);
    sync(&c, "r").unwrap();
    let pod = name_of(&job_pods(&c)[0]).to_string();
    c.merge(
        "v1",
        "Pod",
        Some("default"),
        &pod,
        json!({"status": {"phase": "Running",
        "containerStatuses": [{"name": "c", "restartCount": 2}]}}),
    );
    sync(&c, "r").unwrap();
    assert!(cond(&get_job(&c, "r"), "FailureTarget").is_none());
    c.merge(
        "v1",
        "Pod",
        Some("default"),
        &pod,
        json!({"status": {
        "containerStatuses": [{"name": "c", "restartCount": 3}]}}),
    );
    sync(&c, "r").unwrap();
    sync(&c, "r").unwrap();
    let j = get_job(&c, "r");
    assert_eq!(
        cond(&j, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert_eq!(j["status"]["failed"], 1, "the deleted pod counts as failed");
    assert!(job_pods(&c).is_empty(), "the running pod was deleted");
}

#[test]
fn the_active_deadline_kills_active_pods_and_fails_the_job() {
    let (c, _g) = Cluster::new(T0);
    c.graceful_pods(true);
    c.add(job(
        "d",
        json!({"completions": 4, "parallelism": 2, "activeDeadlineSeconds": 30}),
    ));
    assert_eq!(
        sync(&c, "d").unwrap(),
        Action::RequeueAfter(Duration::from_secs(30)),
        "requeued for the deadline"
    );
    for p in job_pods(&c) {
        c.merge(
            "v1",
            "Pod",
            Some("default"),
            name_of(&p),
            json!({"spec": {"nodeName": "n1"}}),
        );
        c.set_pod("default", name_of(&p), "Running", true);
    }
    c.advance(10_000);
    assert_eq!(
        sync(&c, "d").unwrap(),
        Action::RequeueAfter(Duration::from_secs(20))
    );
    c.advance(20_000);
    sync(&c, "d").unwrap();
    let j = get_job(&c, "d");
    assert_eq!(
        cond(&j, "FailureTarget").unwrap()["reason"],
        "DeadlineExceeded"
    );
    assert!(
        cond(&j, "Failed").is_none(),
        "Failed waits for the terminating pods"
    );
    assert_eq!(j["status"]["terminating"], 2);
    assert!(j["status"].get("active").is_none());
    assert_eq!(j["status"]["failed"], 2);
    assert!(c.live_pods().is_empty());

    c.finish_terminating();
    sync(&c, "d").unwrap();
    let j = get_job(&c, "d");
    let failed = cond(&j, "Failed").expect("Failed once the pods are gone");
    assert_eq!(failed["reason"], "DeadlineExceeded");
    assert_eq!(
        failed["message"],
        "Job was active longer than specified deadline"
    );
    assert_eq!(j["status"]["terminating"], 0);
    assert_eq!(j["status"]["failed"], 2);
    assert!(c.event_reasons().contains(&"DeadlineExceeded".to_string()));
}

#[test]
fn ttl_after_finished_deletes_the_job_in_the_background() {
    let (c, _g) = Cluster::new(T0);
    c.add(job("t", json!({"ttlSecondsAfterFinished": 100})));
    sync(&c, "t").unwrap();
    let pod = name_of(&job_pods(&c)[0]).to_string();
    c.advance(5_000);
    finish_pod(&c, &pod, "Succeeded");
    // Completes now, then waits the TTL.
    assert_eq!(
        sync(&c, "t").unwrap(),
        Action::RequeueAfter(Duration::from_secs(100))
    );
    assert!(cond(&get_job(&c, "t"), "Complete").is_some());
    c.advance(60_000);
    assert_eq!(
        sync(&c, "t").unwrap(),
        Action::RequeueAfter(Duration::from_secs(40))
    );
    assert!(c.get("batch/v1", "Job", Some("default"), "t").is_some());
    c.advance(40_000);
    assert_eq!(sync(&c, "t").unwrap(), Action::Done);
    assert!(c.get("batch/v1", "Job", Some("default"), "t").is_none());
    let deletes = c.deletes();
    let (kind, name, options) = deletes.last().unwrap();
    assert_eq!((kind.as_str(), name.as_str()), ("Job", "t"));
    assert_eq!(options.propagation, Some(Propagation::Background));
    assert_eq!(options.uid.as_deref(), Some("uid-1"));
}

#[test]
fn ttl_also_applies_to_failed_jobs_and_zero_deletes_at_once() {
    let (c, _g) = Cluster::new(T0);
    c.add(job(
        "t0",
        json!({"ttlSecondsAfterFinished": 0, "backoffLimit": 0}),
    ));
    sync(&c, "t0").unwrap();
    let pod = name_of(&job_pods(&c)[0]).to_string();
    finish_pod(&c, &pod, "Failed");
    assert_eq!(sync(&c, "t0").unwrap(), Action::Done);
    assert!(c.get("batch/v1", "Job", Some("default"), "t0").is_none());
}

#[test]
fn jobs_without_ttl_stay() {
    let (c, _g) = Cluster::new(T0);
    c.add(job("keep", json!({})));
    sync(&c, "keep").unwrap();
    let pod = name_of(&job_pods(&c)[0]).to_string();
    finish_pod(&c, &pod, "Succeeded");
    assert_eq!(sync(&c, "keep").unwrap(), Action::Done);
    c.advance(10_000_000);
    assert_eq!(sync(&c, "keep").unwrap(), Action::Done);
    assert!(c.get("batch/v1", "Job", Some("default"), "keep").is_some());
}

#[test]
fn suspend_deletes_active_pods_and_resume_restarts_the_clock() {
    let (c, _g) = Cluster::new(T0);
    c.add(job("s", json!({"completions": 2, "parallelism": 2})));
    sync(&c, "s").unwrap();
    assert_eq!(job_pods(&c).len(), 2);

    c.merge(
        "batch/v1",
        "Job",
        Some("default"),
        "s",
        json!({"spec": {"suspend": true}}),
    );
    sync(&c, "s").unwrap();
    let j = get_job(&c, "s");
    assert!(job_pods(&c).is_empty());
    let s = cond(&j, "Suspended").unwrap();
    assert_eq!(
        (s["status"].as_str(), s["reason"].as_str()),
        (Some("True"), Some("JobSuspended"))
    );
    assert!(j["status"].get("active").is_none());
    assert!(
        j["status"].get("failed").is_none(),
        "suspension is not failure"
    );

    c.advance(50_000);
    c.merge(
        "batch/v1",
        "Job",
        Some("default"),
        "s",
        json!({"spec": {"suspend": false}}),
    );
    sync(&c, "s").unwrap();
    let j = get_job(&c, "s");
    let s = cond(&j, "Suspended").unwrap();
    assert_eq!(
        (s["status"].as_str(), s["reason"].as_str()),
        (Some("False"), Some("JobResumed"))
    );
    assert_eq!(j["status"]["startTime"], cluster::rfc3339(c.now()));
    assert_eq!(job_pods(&c).len(), 2);
    let reasons = c.event_reasons();
    assert!(reasons.contains(&"Suspended".into()) && reasons.contains(&"Resumed".into()));
}

#[test]
fn a_job_created_suspended_has_no_start_time() {
    let (c, _g) = Cluster::new(T0);
    c.add(job("cs", json!({"suspend": true})));
    sync(&c, "cs").unwrap();
    let j = get_job(&c, "cs");
    assert!(j["status"].get("startTime").is_none());
    assert!(job_pods(&c).is_empty());
    assert_eq!(cond(&j, "Suspended").unwrap()["status"], "True");
}

#[test]
fn lowering_parallelism_deletes_the_least_advanced_pods() {
    let (c, _g) = Cluster::new(T0);
    c.add(job("p", json!({"completions": 10, "parallelism": 3})));
    sync(&c, "p").unwrap();
    let pods = job_pods(&c);
    c.set_pod("default", name_of(&pods[0]), "Running", true);
    c.set_pod("default", name_of(&pods[1]), "Running", false);
    c.merge(
        "batch/v1",
        "Job",
        Some("default"),
        "p",
        json!({"spec": {"parallelism": 1}}),
    );
    sync(&c, "p").unwrap();
    let left = job_pods(&c);
    assert_eq!(left.len(), 1);
    assert_eq!(
        name_of(&left[0]),
        name_of(&pods[0]),
        "the ready running pod stays"
    );
    assert_eq!(status(&c, "p")["active"], 1);
}

#[test]
fn terminating_pods_are_replaced_unless_the_policy_is_failed() {
    for (policy, expect_new) in [("TerminatingOrFailed", true), ("Failed", false)] {
        let (c, _g) = Cluster::new(T0);
        c.graceful_pods(true);
        c.add(job("rp", json!({"podReplacementPolicy": policy})));
        sync(&c, "rp").unwrap();
        let pod = name_of(&job_pods(&c)[0]).to_string();
        c.merge(
            "v1",
            "Pod",
            Some("default"),
            &pod,
            json!({"spec": {"nodeName": "n1"}}),
        );
        c.set_pod("default", &pod, "Running", true);
        tugboat_plugin_sdk::host::delete("v1", "Pod", Some("default"), &pod).unwrap();
        sync(&c, "rp").unwrap();
        assert_eq!(status(&c, "rp")["terminating"], 1);
        assert_eq!(job_pods(&c).len() == 1, expect_new, "policy {policy}");
    }
}

#[test]
fn creation_errors_are_returned_after_the_status_update() {
    let (c, _g) = Cluster::new(T0);
    c.add(job("e", json!({"parallelism": 2, "completions": 2})));
    c.fail_creates(Some("Pod"));
    let err = sync(&c, "e").unwrap_err();
    assert!(err.contains("creating a pod"), "{err}");
    assert_eq!(status(&c, "e")["startTime"], cluster::rfc3339(T0));
    c.fail_creates(None);
    sync(&c, "e").unwrap();
    assert_eq!(job_pods(&c).len(), 2);
}

#[test]
fn indexed_jobs_run_each_index_once() {
    let (c, _g) = Cluster::new(T0);
    c.add(job(
        "ix",
        json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}),
    ));
    sync(&c, "ix").unwrap();
    let pods = job_pods(&c);
    assert_eq!(pods.len(), 2);
    let mut seen = Vec::new();
    for p in &pods {
        let ix = p["metadata"]["annotations"][COMPLETION_INDEX_KEY]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(p["metadata"]["labels"][COMPLETION_INDEX_KEY], ix.as_str());
        assert_eq!(p["metadata"]["generateName"], format!("ix-{ix}-"));
        assert!(name_of(p).starts_with(&format!("ix-{ix}-")));
        assert_eq!(p["spec"]["hostname"], format!("ix-{ix}"));
        let env = &p["spec"]["containers"][0]["env"][0];
        assert_eq!(env["name"], "JOB_COMPLETION_INDEX");
        assert_eq!(
            env["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        seen.push(ix);
    }
    seen.sort();
    assert_eq!(seen, ["0", "1"]);

    // Index 1 succeeds; index 0 fails and is retried after the backoff.
    let by_ix = |ix: &str| {
        job_pods(&c)
            .into_iter()
            .find(|p| {
                p["metadata"]["annotations"][COMPLETION_INDEX_KEY] == ix
                    && p["status"]["phase"] == "Pending"
            })
            .map(|p| name_of(&p).to_string())
    };
    finish_pod(&c, &by_ix("1").unwrap(), "Succeeded");
    sync(&c, "ix").unwrap();
    assert_eq!(status(&c, "ix")["completedIndexes"], "1");
    assert!(by_ix("2").is_some(), "the next pending index is started");
    finish_pod(&c, &by_ix("0").unwrap(), "Failed");
    c.advance(10_000);
    sync(&c, "ix").unwrap();
    assert!(by_ix("0").is_some(), "index 0 is retried");
    finish_pod(&c, &by_ix("0").unwrap(), "Succeeded");
    finish_pod(&c, &by_ix("2").unwrap(), "Succeeded");
    sync(&c, "ix").unwrap();
    let j = get_job(&c, "ix");
    assert_eq!(j["status"]["completedIndexes"], "0-2");
    assert_eq!(j["status"]["succeeded"], 3);
    assert_eq!(j["status"]["failed"], 1);
    assert_eq!(cond(&j, "Complete").unwrap()["status"], "True");
}

#[test]
fn indexed_duplicates_are_removed() {
    let (c, _g) = Cluster::new(T0);
    let j = c.add(job(
        "dup",
        json!({"completions": 2, "parallelism": 2, "completionMode": "Indexed"}),
    ));
    let owner = crate::util::owner_ref("batch/v1", "Job", &j);
    for (name, ix) in [("dup-0-a", "0"), ("dup-0-b", "0"), ("dup-7-a", "7")] {
        c.add(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": name, "namespace": "default", "ownerReferences": [owner],
            "annotations": {COMPLETION_INDEX_KEY: ix}}, "spec": {}}));
    }
    c.set_pod("default", "dup-0-a", "Running", true);
    sync(&c, "dup").unwrap();
    let names = c.names("v1", "Pod");
    assert_eq!(
        names,
        ["dup-0-a"],
        "the duplicate and out-of-range pods go first"
    );
    sync(&c, "dup").unwrap();
    assert_eq!(job_pods(&c).len(), 2, "index 1 is created next");
}

#[test]
fn jobs_managed_elsewhere_are_left_alone() {
    let (c, _g) = Cluster::new(T0);
    c.add(job("ext", json!({"managedBy": "example.com/other"})));
    sync(&c, "ext").unwrap();
    assert!(job_pods(&c).is_empty());
    assert!(get_job(&c, "ext").get("status").is_none());
}

#[test]
fn only_controlled_pods_count() {
    let (c, _g) = Cluster::new(T0);
    c.add(job("own", json!({})));
    c.add(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stranger", "namespace": "default",
        "labels": {"job-name": "own"}}, "spec": {}, "status": {"phase": "Succeeded"}}));
    sync(&c, "own").unwrap();
    assert_eq!(job_pods(&c).len(), 2);
    assert!(cond(&get_job(&c, "own"), "Complete").is_none());
}

#[test]
fn a_deleted_job_needs_nothing() {
    let (_c, _g) = Cluster::new(T0);
    let key = tugboat_plugin_sdk::controller::ObjectKey {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        namespace: Some("default".into()),
        name: "gone".into(),
    };
    assert_eq!(JobController::reconcile(&key, None), Ok(Action::Done));
}
