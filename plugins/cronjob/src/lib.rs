//! The CronJob controller (`batch/v1` CronJob, owning Jobs), as kube-controller-manager's
//! `cronjob` controller (`pkg/controller/cronjob`, `ControllerV2`, Kubernetes v1.33).
//!
//! What it does, as Kubernetes does:
//! - parses `spec.schedule` like robfig/cron's `ParseStandard` ([`cron`]): five fields
//!   with ranges, steps, lists and month/day names, `@hourly`/`@daily`/`@weekly`/
//!   `@monthly`/`@yearly`/`@every <duration>`;
//! - finds the most recent unmet schedule time since `status.lastScheduleTime` (or the
//!   creation time, or `now − startingDeadlineSeconds` when later), and creates the Job
//!   `<cronjob>-<scheduled time in minutes since the epoch>` from `spec.jobTemplate`
//!   (labels and annotations copied, plus `batch.kubernetes.io/cronjob-scheduled-timestamp`)
//!   controlled by the CronJob; records it in `status.active` and
//!   `status.lastScheduleTime`;
//! - a start later than `startingDeadlineSeconds` is skipped (`MissSchedule`); more than
//!   100 missed times is reported (`TooManyMissedTimes`);
//! - `concurrencyPolicy`: `Allow`; `Forbid` (skipped while a Job is active,
//!   `JobAlreadyActive`); `Replace` (active Jobs deleted with `Background` propagation
//!   first);
//! - `suspend`: no new Jobs (finished ones are still tracked and cleaned up);
//! - finished Jobs leave `status.active` (`SawCompletedJob`), Jobs gone missing too
//!   (`MissingJob`); `status.lastSuccessfulTime` follows the latest completed Job;
//! - history: the oldest finished Jobs beyond `successfulJobsHistoryLimit` (default 3) and
//!   `failedJobsHistoryLimit` (default 1) are deleted (`Background`), oldest start first;
//! - requeues itself for the next schedule time (plus 100 ms, as Kubernetes does);
//! - events like Kubernetes' (`SuccessfulCreate`, `SawCompletedJob`, `SuccessfulDelete`,
//!   `MissSchedule`, `JobAlreadyActive`, `UnexpectedJob`, `MissingJob`,
//!   `UnparseableSchedule`, `InvalidSchedule`).
//!
//! What it does not do:
//! - time zones other than UTC: a `spec.timeZone` (or `TZ=`/`CRON_TZ=` prefix) naming
//!   another zone stops scheduling with an `UnknownTimeZone` warning event; without a time
//!   zone, schedules are in UTC (the controller manager's local zone in Kubernetes);
//! - adopting a running Job it did not create into `status.active` (Kubernetes does not
//!   either: it only warns, `UnexpectedJob`).

use std::collections::BTreeSet;
use std::time::Duration;

use tugboat_plugin_sdk::cluster::{self, DeleteOptions, Propagation};
use tugboat_plugin_sdk::controller::{Action, Controller, ControllerSpec, ObjectKey};
use tugboat_plugin_sdk::{Value, export_controller, host, json, objects};

pub mod cron;
use workload_common as util;

#[cfg(test)]
use workload_common::testkit;
#[cfg(test)]
mod tests;

use cron::Schedule;

const API_VERSION: &str = "batch/v1";
const KIND: &str = "CronJob";
const COMPONENT: &str = "cronjob-controller";
/// The annotation with a Job's scheduled time (RFC 3339).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// `nextScheduleDelta`: requeues land this long after the schedule time.
const NEXT_SCHEDULE_DELTA_MS: u64 = 100;

/// The CronJob controller.
pub struct CronJobController;

export_controller!(CronJobController);

impl Controller for CronJobController {
    fn init(config: &Value) -> Result<ControllerSpec, String> {
        util::configure(config)?;
        Ok(ControllerSpec::new(API_VERSION, KIND).owns(API_VERSION, "Job"))
    }

    fn reconcile(_key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
        match object {
            None => Ok(Action::Done),
            Some(cj) => sync(cj),
        }
    }
}

fn event(cj: &Value, type_: &str, reason: &str, message: &str) {
    util::record_event(COMPONENT, API_VERSION, KIND, cj, type_, reason, message);
}

/// Whether a Job has a `Complete` or `Failed` condition that is `True`, and which.
fn finished_status(job: &Value) -> Option<&'static str> {
    if objects::condition_true(job, "Complete") {
        Some("Complete")
    } else if objects::condition_true(job, "Failed") {
        Some("Failed")
    } else {
        None
    }
}

fn sync(cj: &Value) -> Result<Action, String> {
    let now = cluster::now_millis();
    let namespace = objects::namespace(cj).ok_or("the CronJob has no namespace")?;
    let jobs = util::owned(API_VERSION, "Job", Some(namespace), objects::uid(cj))?;
    let mut cj = cj.clone();
    cj["apiVersion"] = json!(API_VERSION);
    cj["kind"] = json!(KIND);
    if !cj["status"].is_object() {
        cj["status"] = json!({});
    }
    let old_status = cj["status"].clone();

    cleanup_finished_jobs(&mut cj, &jobs);
    let (requeue, sync_err) = sync_cron_job(&mut cj, &jobs, now);

    if cj["status"] != old_status {
        cluster::update_status(&cj).map_err(|e| util::fail("updating the CronJob status", e))?;
    }
    match (requeue, sync_err) {
        (Some(ms), _) => Ok(Action::RequeueAfter(Duration::from_millis(ms))),
        (None, Some(e)) => Err(e),
        (None, None) => Ok(Action::Done),
    }
}

/// The uids in `status.active`.
fn active_uids(cj: &Value) -> BTreeSet<String> {
    cj["status"]["active"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect()
}

fn remove_from_active(cj: &mut Value, uid: &str) {
    if let Some(active) = cj["status"]["active"].as_array_mut() {
        active.retain(|r| r["uid"].as_str() != Some(uid));
    }
    if cj["status"]["active"].as_array().is_some_and(Vec::is_empty)
        && let Some(s) = cj["status"].as_object_mut()
    {
        s.remove("active");
    }
}

/// `syncCronJob`: tracks the active Jobs and starts the one due, if any. Returns when to
/// call again (milliseconds) and an error to report when there is no requeue.
fn sync_cron_job(cj: &mut Value, jobs: &[Value], now: u64) -> (Option<u64>, Option<String>) {
    let mut children = BTreeSet::new();
    for j in jobs {
        let uid = objects::uid(j).to_string();
        children.insert(uid.clone());
        let found = active_uids(cj).contains(&uid);
        let finished = finished_status(j);
        if !found && finished.is_none() {
            event(
                cj,
                "Warning",
                "UnexpectedJob",
                &format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    objects::name(j)
                ),
            );
        } else if found && let Some(status) = finished {
            remove_from_active(cj, &uid);
            event(
                cj,
                "Normal",
                "SawCompletedJob",
                &format!("Saw completed job: {}, status: {status}", objects::name(j)),
            );
        } else if finished == Some("Complete")
            && let Some(completed) = j.pointer("/status/completionTime").and_then(Value::as_str)
        {
            let last = cj["status"]["lastSuccessfulTime"]
                .as_str()
                .and_then(cluster::parse_rfc3339);
            if cluster::parse_rfc3339(completed).is_some_and(|c| last.is_none_or(|l| c > l)) {
                cj["status"]["lastSuccessfulTime"] = json!(completed);
            }
        }
    }

    // Active Jobs that are gone.
    let gone: Vec<(String, String)> = cj["status"]["active"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !children.contains(r["uid"].as_str().unwrap_or("")))
        .map(|r| {
            (
                r["uid"].as_str().unwrap_or("").to_string(),
                r["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let namespace = objects::namespace(cj).unwrap_or("").to_string();
    for (uid, name) in gone {
        match host::get(API_VERSION, "Job", Some(&namespace), &name) {
            Ok(Some(j)) if objects::uid(&j) == uid => {}
            Ok(_) => {
                event(
                    cj,
                    "Normal",
                    "MissingJob",
                    &format!("Active job went missing: {name}"),
                );
                remove_from_active(cj, &uid);
            }
            Err(e) => return (None, Some(util::fail("reading an active Job", e))),
        }
    }

    if objects::is_deleting(cj) {
        return (None, None);
    }
    let time_zone = cj
        .pointer("/spec/timeZone")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(zone) = &time_zone
        && !cron::is_utc(zone)
    {
        event(
            cj,
            "Warning",
            "UnknownTimeZone",
            &format!("invalid timeZone: {zone:?}: only UTC is supported"),
        );
        return (None, None);
    }
    if cj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return (None, None);
    }
    let spec_schedule = objects::str_at(cj, "/spec/schedule").to_string();
    let sched = match Schedule::parse(&spec_schedule) {
        Ok(s) => s,
        Err(e) => {
            event(
                cj,
                "Warning",
                "UnparseableSchedule",
                &format!("unparseable schedule: {spec_schedule:?} : {e}"),
            );
            return (None, None);
        }
    };

    let scheduled = match next_schedule_time(cj, now, &sched) {
        Ok(t) => t,
        Err(e) => {
            event(
                cj,
                "Warning",
                "InvalidSchedule",
                &format!("invalid schedule: {spec_schedule} : {e}"),
            );
            return (None, None);
        }
    };
    let Some(scheduled) = scheduled else {
        return (next_schedule_time_duration(cj, now, &sched), None);
    };

    if let Some(deadline) = cj
        .pointer("/spec/startingDeadlineSeconds")
        .and_then(Value::as_i64)
        && (scheduled as i128 + i128::from(deadline) * 1000) < now as i128
    {
        event(
            cj,
            "Warning",
            "MissSchedule",
            &format!(
                "Missed scheduled time to start a job: {}",
                rfc1123z(scheduled)
            ),
        );
        return (next_schedule_time_duration(cj, now, &sched), None);
    }
    let job_name = job_name(cj, scheduled);
    let in_active_by_name = cj["status"]["active"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["name"] == job_name.as_str());
    let last_schedule = cj["status"]["lastScheduleTime"]
        .as_str()
        .and_then(cluster::parse_rfc3339);
    if in_active_by_name || last_schedule == Some(scheduled) {
        return (next_schedule_time_duration(cj, now, &sched), None);
    }
    let policy = objects::str_at(cj, "/spec/concurrencyPolicy").to_string();
    let has_active = cj["status"]["active"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    if policy == "Forbid" && has_active {
        event(
            cj,
            "Normal",
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        );
        return (next_schedule_time_duration(cj, now, &sched), None);
    }
    if policy == "Replace" {
        let active: Vec<Value> = cj["status"]["active"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in active {
            let name = r["name"].as_str().unwrap_or("").to_string();
            let job = match host::get(API_VERSION, "Job", Some(&namespace), &name) {
                Ok(Some(j)) => j,
                Ok(None) => {
                    event(
                        cj,
                        "Warning",
                        "FailedGet",
                        &format!("Get job: jobs.batch {name:?} not found"),
                    );
                    return (None, Some(format!("getting active Job {name}: not found")));
                }
                Err(e) => {
                    event(
                        cj,
                        "Warning",
                        "FailedGet",
                        &format!("Get job: {}", e.message),
                    );
                    return (None, Some(util::fail("getting an active Job", e)));
                }
            };
            if let Err(e) = delete_job(cj, &job) {
                return (
                    None,
                    Some(format!("could not replace job {namespace}/{name}: {e}")),
                );
            }
        }
    }

    let request = job_from_template(cj, scheduled, &job_name);
    let created = match host::create(&request) {
        Ok(j) => {
            event(
                cj,
                "Normal",
                "SuccessfulCreate",
                &format!("Created job {job_name}"),
            );
            j
        }
        Err(e) if util::already_exists(&e) => {
            let existing = match host::get(API_VERSION, "Job", Some(&namespace), &job_name) {
                Ok(Some(j)) => j,
                Ok(None) => {
                    return (
                        None,
                        Some(format!("job {job_name} exists but cannot be read")),
                    );
                }
                Err(e) => return (None, Some(util::fail("reading the existing Job", e))),
            };
            // Created by someone else: assume they track it.
            if !objects::is_controlled_by(&existing, objects::uid(cj)) {
                return (None, None);
            }
            if active_uids(cj).contains(objects::uid(&existing)) {
                return (None, None);
            }
            host::log(
                tugboat_plugin_sdk::LogLevel::Info,
                &format!("Job {namespace}/{job_name} already exists"),
            );
            existing
        }
        Err(e) => {
            event(
                cj,
                "Warning",
                "FailedCreate",
                &format!("Error creating job: {}", e.message),
            );
            return (None, Some(util::fail("creating the Job", e)));
        }
    };

    let reference = json!({
        "kind": "Job",
        "namespace": namespace,
        "name": objects::name(&created),
        "uid": objects::uid(&created),
        "apiVersion": API_VERSION,
        "resourceVersion": objects::str_at(&created, "/metadata/resourceVersion"),
    });
    if !cj["status"]["active"].is_array() {
        cj["status"]["active"] = json!([]);
    }
    if let Some(active) = cj["status"]["active"].as_array_mut() {
        active.push(reference);
    }
    cj["status"]["lastScheduleTime"] = json!(cluster::rfc3339(scheduled));
    (next_schedule_time_duration(cj, now, &sched), None)
}

/// `getJobName`: the CronJob's name and the scheduled time in minutes since the epoch.
pub fn job_name(cj: &Value, scheduled: u64) -> String {
    format!("{}-{}", objects::name(cj), scheduled / 60_000)
}

/// `getJobFromTemplate2`.
fn job_from_template(cj: &Value, scheduled: u64, name: &str) -> Value {
    let template = &cj["spec"]["jobTemplate"];
    let mut metadata = json!({
        "name": name,
        "namespace": objects::namespace(cj),
        "ownerReferences": [util::owner_ref(API_VERSION, KIND, cj)],
    });
    if let Some(labels) = template
        .pointer("/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
    {
        metadata["labels"] = labels.clone();
    }
    let mut annotations = template
        .pointer("/metadata/annotations")
        .filter(|a| a.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = json!(cluster::rfc3339(scheduled));
    metadata["annotations"] = annotations;
    json!({
        "apiVersion": API_VERSION,
        "kind": "Job",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// `deleteJob`: deletes a Job (its pods in the background) and drops it from
/// `status.active`.
fn delete_job(cj: &mut Value, job: &Value) -> Result<(), String> {
    let options = DeleteOptions {
        propagation: Some(Propagation::Background),
        ..Default::default()
    };
    match cluster::delete_with(
        API_VERSION,
        "Job",
        objects::namespace(job),
        objects::name(job),
        &options,
    ) {
        Ok(()) => {}
        Err(e) if util::not_found(&e) => {}
        Err(e) => {
            event(
                cj,
                "Warning",
                "FailedDelete",
                &format!("Deleted job: {}", e.message),
            );
            return Err(util::fail("deleting a Job", e));
        }
    }
    remove_from_active(cj, objects::uid(job));
    event(
        cj,
        "Normal",
        "SuccessfulDelete",
        &format!("Deleted job {}", objects::name(job)),
    );
    Ok(())
}

/// `cleanupFinishedJobs`: deletes the oldest finished Jobs beyond the history limits.
fn cleanup_finished_jobs(cj: &mut Value, jobs: &[Value]) {
    let limits = (
        cj.pointer("/spec/successfulJobsHistoryLimit")
            .and_then(Value::as_i64),
        cj.pointer("/spec/failedJobsHistoryLimit")
            .and_then(Value::as_i64),
    );
    for (status, limit) in [("Complete", limits.0), ("Failed", limits.1)] {
        let Some(limit) = limit else {
            continue;
        };
        let mut finished: Vec<&Value> = jobs
            .iter()
            .filter(|j| finished_status(j) == Some(status))
            .collect();
        let excess = finished.len() as i64 - limit.max(0);
        if excess <= 0 {
            continue;
        }
        // byJobStartTime: started ones first, oldest first, by name on ties.
        finished.sort_by(|a, b| {
            let start = |j: &Value| {
                j.pointer("/status/startTime")
                    .and_then(Value::as_str)
                    .and_then(cluster::parse_rfc3339)
            };
            match (start(a), start(b)) {
                (Some(x), Some(y)) => x.cmp(&y).then(objects::name(a).cmp(objects::name(b))),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => objects::name(a).cmp(objects::name(b)),
            }
        });
        for j in finished.into_iter().take(excess as usize) {
            let _ = delete_job(cj, j);
        }
    }
}

/// What `mostRecentScheduleTime` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missed {
    None,
    Few,
    Many,
}

/// `mostRecentScheduleTime`: the earliest time considered, the most recent schedule time
/// at or before `now` (if any), and how many were missed.
fn most_recent_schedule_time(
    cj: &Value,
    now: u64,
    sched: &Schedule,
    include_starting_deadline: bool,
) -> Result<(u64, Option<u64>, Missed), String> {
    let mut earliest =
        cluster::parse_rfc3339(objects::str_at(cj, "/metadata/creationTimestamp")).unwrap_or(0);
    if let Some(last) = cj["status"]["lastScheduleTime"]
        .as_str()
        .and_then(cluster::parse_rfc3339)
    {
        earliest = last;
    }
    if include_starting_deadline
        && let Some(sds) = cj
            .pointer("/spec/startingDeadlineSeconds")
            .and_then(Value::as_i64)
    {
        let deadline = now as i128 - i128::from(sds) * 1000;
        if deadline > earliest as i128 {
            earliest = deadline as u64;
        }
    }
    let no_gap = || "time difference between two schedules is less than 1 second".to_string();
    let t1 = sched.next(earliest).ok_or_else(no_gap)?;
    if now < t1 {
        return Ok((earliest, None, Missed::None));
    }
    let t2 = sched.next(t1).ok_or_else(no_gap)?;
    if now < t2 {
        return Ok((earliest, Some(t1), Missed::None));
    }
    let between = ((t2 - t1) as i128 + 500) / 1000;
    if between < 1 {
        return Err(no_gap());
    }
    let elapsed = (now - t1) as i128 / 1000;
    let missed = elapsed / between + 1;
    let potential_earliest = t1 as i128 + (missed - 2) * between * 1000;
    let mut most_recent = None;
    let mut t = sched.next(potential_earliest.max(0) as u64);
    while let Some(x) = t.filter(|x| *x <= now) {
        most_recent = Some(x);
        t = sched.next(x);
    }
    let kind = if missed > 100 {
        Missed::Many
    } else if missed > 0 {
        Missed::Few
    } else {
        Missed::None
    };
    Ok((earliest, most_recent, kind))
}

/// `nextScheduleTime`: the schedule time to start now, if any.
fn next_schedule_time(cj: &Value, now: u64, sched: &Schedule) -> Result<Option<u64>, String> {
    let (_, most_recent, missed) = most_recent_schedule_time(cj, now, sched, true)?;
    let Some(t) = most_recent.filter(|t| *t <= now) else {
        return Ok(None);
    };
    if missed == Missed::Many {
        event(
            cj,
            "Warning",
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
        );
    }
    Ok(Some(t))
}

/// `nextScheduleTimeDuration`: how long until the next schedule time (plus 100 ms);
/// `None` when the schedule never fires again.
fn next_schedule_time_duration(cj: &Value, now: u64, sched: &Schedule) -> Option<u64> {
    let most_recent = match most_recent_schedule_time(cj, now, sched, false) {
        Err(_) => now,
        Ok((earliest, None, Missed::None)) => earliest,
        Ok((_, None, _)) => now,
        Ok((_, Some(t), _)) => t,
    };
    let next = sched.next(most_recent)?;
    Some((next + NEXT_SCHEDULE_DELTA_MS).saturating_sub(now))
}

/// Go's `time.RFC1123Z` in UTC: `Mon, 02 Jan 2006 15:04:05 +0000`.
fn rfc1123z(millis: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = millis / 1000;
    let days = (secs / 86_400) as i64;
    let (y, m, d) = cron::civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
