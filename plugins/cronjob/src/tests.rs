use std::time::Duration;

use tugboat_plugin_sdk::cluster::{self, Propagation};
use tugboat_plugin_sdk::controller::{Action, Controller};
use tugboat_plugin_sdk::{Value, json};

use crate::testkit::{Cluster, T0, reconcile};
use crate::{CronJobController, SCHEDULED_TIMESTAMP_ANNOTATION, rfc1123z};

const MIN: u64 = 60_000;

fn cronjob(name: &str, schedule: &str, extra: Value) -> Value {
    let mut spec = json!({
        "schedule": schedule,
        "concurrencyPolicy": "Allow",
        "suspend": false,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "busybox"}]}}},
        },
    });
    if let (Some(base), Some(more)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            base.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn sync(c: &Cluster, name: &str) -> Result<Action, String> {
    reconcile::<CronJobController>(c, "batch/v1", "CronJob", Some("default"), name)
}

fn cj(c: &Cluster, name: &str) -> Value {
    c.get("batch/v1", "CronJob", Some("default"), name).unwrap()
}

fn jobs(c: &Cluster) -> Vec<String> {
    c.names("batch/v1", "Job")
}

fn active_names(c: &Cluster, name: &str) -> Vec<String> {
    cj(c, name)["status"]["active"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn finish_job(c: &Cluster, name: &str, condition: &str, started: u64) {
    let now = cluster::rfc3339(c.now());
    let mut status = json!({"startTime": cluster::rfc3339(started),
        "conditions": [{"type": condition, "status": "True", "lastTransitionTime": now}]});
    if condition == "Complete" {
        status["completionTime"] = json!(now);
    }
    c.merge(
        "batch/v1",
        "Job",
        Some("default"),
        name,
        json!({"status": status}),
    );
}

fn requeue_ms(a: Action) -> u64 {
    match a {
        Action::RequeueAfter(d) => d.as_millis() as u64,
        Action::Done => panic!("expected a requeue"),
    }
}

#[test]
fn init_declares_cronjobs_owning_jobs() {
    let spec = CronJobController::init(&Value::Null).unwrap();
    assert_eq!(spec.kinds[0].kind, "CronJob");
    assert_eq!(spec.watches[0].kind, "Job");
    assert_eq!(spec.watches[0].api_version, "batch/v1");
}

#[test]
fn a_cronjob_fires_on_schedule() {
    let (c, _g) = Cluster::new(T0);
    let created = c.add(cronjob("hello", "*/5 * * * *", json!({})));
    // Nothing is due at creation: wait for 00:05 (+100 ms).
    assert_eq!(
        sync(&c, "hello").unwrap(),
        Action::RequeueAfter(Duration::from_millis(5 * MIN + 100))
    );
    assert!(jobs(&c).is_empty());
    assert!(
        cj(&c, "hello")
            .get("status")
            .is_none_or(|s| s == &json!({}))
    );

    c.set_time(T0 + 5 * MIN + 100);
    let a = sync(&c, "hello").unwrap();
    assert_eq!(requeue_ms(a), 5 * MIN, "until 00:10 (+100 ms)");
    let scheduled = T0 + 5 * MIN;
    let name = format!("hello-{}", scheduled / MIN);
    assert_eq!(jobs(&c), std::slice::from_ref(&name));
    let job = c.get("batch/v1", "Job", Some("default"), &name).unwrap();
    assert_eq!(job["metadata"]["labels"]["team"], "a");
    assert_eq!(job["metadata"]["annotations"]["note"], "x");
    assert_eq!(
        job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION],
        "2026-01-01T00:05:00Z"
    );
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "CronJob");
    assert_eq!(owner["uid"], created["metadata"]["uid"]);
    assert_eq!(owner["controller"], true);
    assert_eq!(
        job["spec"]["template"]["spec"]["restartPolicy"],
        "OnFailure"
    );

    let s = &cj(&c, "hello")["status"];
    assert_eq!(s["lastScheduleTime"], "2026-01-01T00:05:00Z");
    let r = &s["active"][0];
    assert_eq!(
        (r["kind"].as_str(), r["name"].as_str()),
        (Some("Job"), Some(name.as_str()))
    );
    assert_eq!(r["uid"], job["metadata"]["uid"]);
    assert_eq!(r["apiVersion"], "batch/v1");
    assert!(c.event_reasons().contains(&"SuccessfulCreate".to_string()));

    // The same schedule time is not run twice.
    sync(&c, "hello").unwrap();
    assert_eq!(jobs(&c).len(), 1);

    // It completes: it leaves the active list, then sets lastSuccessfulTime.
    c.advance(30_000);
    finish_job(&c, &name, "Complete", scheduled);
    sync(&c, "hello").unwrap();
    assert!(active_names(&c, "hello").is_empty());
    assert!(c.event_reasons().contains(&"SawCompletedJob".to_string()));
    sync(&c, "hello").unwrap();
    assert_eq!(
        cj(&c, "hello")["status"]["lastSuccessfulTime"],
        cluster::rfc3339(c.now())
    );

    // The next run.
    c.set_time(T0 + 10 * MIN + 100);
    sync(&c, "hello").unwrap();
    assert_eq!(jobs(&c).len(), 2);
    assert_eq!(
        cj(&c, "hello")["status"]["lastScheduleTime"],
        "2026-01-01T00:10:00Z"
    );
}

#[test]
fn only_the_most_recent_missed_time_runs() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob("late", "* * * * *", json!({})));
    // The controller was away for 3 hours: one Job, for the latest minute.
    c.set_time(T0 + 180 * MIN + 5_000);
    let a = sync(&c, "late").unwrap();
    assert_eq!(jobs(&c), [format!("late-{}", (T0 + 180 * MIN) / MIN)]);
    assert_eq!(requeue_ms(a), MIN - 5_000 + 100);
    // More than 100 missed times are reported.
    assert!(
        c.event_reasons()
            .contains(&"TooManyMissedTimes".to_string())
    );
}

#[test]
fn a_missed_starting_deadline_skips_the_run() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob(
        "dl",
        "0 * * * *",
        json!({"startingDeadlineSeconds": 60}),
    ));
    c.set_time(T0 + 62 * MIN);
    // 01:00 was due 2 minutes ago: with a 60 s deadline nothing is considered.
    let a = sync(&c, "dl").unwrap();
    assert!(jobs(&c).is_empty());
    assert_eq!(requeue_ms(a), 58 * MIN + 100);
    // Within the deadline it runs.
    c.set_time(T0 + 120 * MIN + 30_000);
    sync(&c, "dl").unwrap();
    assert_eq!(jobs(&c).len(), 1);
}

#[test]
fn a_start_within_the_deadline_runs_late() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob(
        "ms",
        "0 * * * *",
        json!({"startingDeadlineSeconds": 10}),
    ));
    c.merge(
        "batch/v1",
        "CronJob",
        Some("default"),
        "ms",
        json!({"status": {"lastScheduleTime": cluster::rfc3339(T0)}}),
    );
    c.set_time(T0 + 60 * MIN + 5_000);
    sync(&c, "ms").unwrap();
    assert_eq!(jobs(&c).len(), 1, "5 s late is within 10 s");
    assert_eq!(rfc1123z(T0), "Thu, 01 Jan 2026 00:00:00 +0000");
}

#[test]
fn forbid_skips_while_a_job_is_active() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob(
        "fb",
        "* * * * *",
        json!({"concurrencyPolicy": "Forbid"}),
    ));
    c.set_time(T0 + MIN);
    sync(&c, "fb").unwrap();
    assert_eq!(jobs(&c).len(), 1);
    c.set_time(T0 + 2 * MIN);
    let a = sync(&c, "fb").unwrap();
    assert_eq!(jobs(&c).len(), 1, "the first Job is still running");
    assert_eq!(requeue_ms(a), MIN + 100);
    assert!(c.event_reasons().contains(&"JobAlreadyActive".to_string()));
    // Once it finished, the next schedule time runs.
    let first = jobs(&c)[0].clone();
    finish_job(&c, &first, "Complete", T0 + MIN);
    sync(&c, "fb").unwrap();
    assert_eq!(jobs(&c).len(), 2, "the missed 00:02 runs now");
}

#[test]
fn replace_deletes_the_active_job_first() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob(
        "rp",
        "* * * * *",
        json!({"concurrencyPolicy": "Replace"}),
    ));
    c.set_time(T0 + MIN);
    sync(&c, "rp").unwrap();
    let first = jobs(&c)[0].clone();
    c.set_time(T0 + 2 * MIN);
    sync(&c, "rp").unwrap();
    let names = jobs(&c);
    assert_eq!(names, [format!("rp-{}", (T0 + 2 * MIN) / MIN)]);
    assert_ne!(names[0], first);
    assert_eq!(active_names(&c, "rp"), names);
    let (kind, name, options) = c.deletes().last().cloned().unwrap();
    assert_eq!((kind.as_str(), name.as_str()), ("Job", first.as_str()));
    assert_eq!(options.propagation, Some(Propagation::Background));
}

#[test]
fn allow_runs_concurrently() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob("al", "* * * * *", json!({})));
    for m in 1..=3 {
        c.set_time(T0 + m * MIN);
        sync(&c, "al").unwrap();
    }
    assert_eq!(jobs(&c).len(), 3);
    assert_eq!(active_names(&c, "al").len(), 3);
}

#[test]
fn history_limits_delete_the_oldest_finished_jobs() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob(
        "hist",
        "* * * * *",
        json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1}),
    ));
    for m in 1..=6 {
        c.set_time(T0 + m * MIN);
        sync(&c, "hist").unwrap();
    }
    let all = jobs(&c);
    assert_eq!(all.len(), 6);
    // Four succeed, two fail (in name order = schedule order).
    for (i, name) in all.iter().enumerate() {
        let started = T0 + (i as u64 + 1) * MIN;
        finish_job(&c, name, if i < 4 { "Complete" } else { "Failed" }, started);
    }
    sync(&c, "hist").unwrap();
    let left = jobs(&c);
    assert_eq!(left, [all[2].clone(), all[3].clone(), all[5].clone()]);
    assert!(active_names(&c, "hist").is_empty());
    for (_, _, o) in c.deletes() {
        assert_eq!(o.propagation, Some(Propagation::Background));
    }
    assert!(c.event_reasons().contains(&"SuccessfulDelete".to_string()));
}

#[test]
fn suspended_cronjobs_start_nothing() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob("sus", "* * * * *", json!({"suspend": true})));
    c.set_time(T0 + 5 * MIN);
    assert_eq!(sync(&c, "sus").unwrap(), Action::Done);
    assert!(jobs(&c).is_empty());
}

#[test]
fn only_utc_time_zones_are_scheduled() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob("tz", "* * * * *", json!({"timeZone": "Etc/UTC"})));
    c.add(cronjob(
        "paris",
        "* * * * *",
        json!({"timeZone": "Europe/Paris"}),
    ));
    c.set_time(T0 + MIN);
    sync(&c, "tz").unwrap();
    assert_eq!(sync(&c, "paris").unwrap(), Action::Done);
    assert_eq!(jobs(&c).len(), 1);
    assert!(c.event_reasons().contains(&"UnknownTimeZone".to_string()));
}

#[test]
fn unparseable_schedules_are_reported() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob("bad", "61 * * * *", json!({})));
    assert_eq!(sync(&c, "bad").unwrap(), Action::Done);
    assert_eq!(c.event_reasons(), ["UnparseableSchedule"]);
    c.add(cronjob("never", "0 0 30 2 *", json!({})));
    assert_eq!(sync(&c, "never").unwrap(), Action::Done);
    assert!(c.event_reasons().contains(&"InvalidSchedule".to_string()));
}

#[test]
fn missing_active_jobs_are_dropped() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob("mj", "0 * * * *", json!({})));
    c.set_time(T0 + 60 * MIN);
    sync(&c, "mj").unwrap();
    let name = jobs(&c)[0].clone();
    tugboat_plugin_sdk::host::delete("batch/v1", "Job", Some("default"), &name).unwrap();
    sync(&c, "mj").unwrap();
    assert!(active_names(&c, "mj").is_empty());
    assert!(c.event_reasons().contains(&"MissingJob".to_string()));
}

#[test]
fn an_existing_job_of_ours_is_recorded_not_recreated() {
    let (c, _g) = Cluster::new(T0);
    let owner = c.add(cronjob("ex", "0 * * * *", json!({})));
    let name = format!("ex-{}", (T0 + 60 * MIN) / MIN);
    // Created before a crash, status never written.
    c.add(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default",
        "ownerReferences": [crate::util::owner_ref("batch/v1", "CronJob", &owner)]}, "spec": {}}));
    c.set_time(T0 + 60 * MIN);
    sync(&c, "ex").unwrap();
    assert_eq!(jobs(&c), std::slice::from_ref(&name));
    assert_eq!(active_names(&c, "ex"), [name]);
    assert_eq!(
        cj(&c, "ex")["status"]["lastScheduleTime"],
        cluster::rfc3339(T0 + 60 * MIN)
    );
    assert!(c.event_reasons().contains(&"UnexpectedJob".to_string()));
}

#[test]
fn a_foreign_job_with_the_name_is_left_alone() {
    let (c, _g) = Cluster::new(T0);
    c.add(cronjob("fo", "0 * * * *", json!({})));
    let name = format!("fo-{}", (T0 + 60 * MIN) / MIN);
    c.add(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"}, "spec": {}}));
    c.set_time(T0 + 60 * MIN);
    assert_eq!(sync(&c, "fo").unwrap(), Action::Done);
    assert!(active_names(&c, "fo").is_empty());
}

#[test]
fn every_descriptors_schedule_from_the_creation_time() {
    let (c, _g) = Cluster::new(T0 + 7_000);
    c.add(cronjob("ev", "@every 30s", json!({})));
    assert_eq!(requeue_ms(sync(&c, "ev").unwrap()), 30_100);
    c.set_time(T0 + 37_000);
    sync(&c, "ev").unwrap();
    assert_eq!(jobs(&c), [format!("ev-{}", (T0 + 37_000) / MIN)]);
    assert_eq!(
        cj(&c, "ev")["status"]["lastScheduleTime"],
        cluster::rfc3339(T0 + 37_000)
    );
}
