//! Test support of the workload controllers: a [`FakeCluster`] that
//! behaves a little more like the API server — it names objects from `generateName`,
//! gives them a uid, a creation timestamp and a resource version, can delete pods
//! gracefully, and records deletes with their options.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tugboat_plugin_sdk::cluster::{self, ApiResource, DeleteOptions, PatchType, Query};
use tugboat_plugin_sdk::controller::{Action, Controller, ObjectKey};
use tugboat_plugin_sdk::host::{HostError, LogLevel};
use tugboat_plugin_sdk::testing::{FakeCluster, MockHost, MockHostGuard, set_mock_host};
use tugboat_plugin_sdk::{Value, json};

/// 2026-01-01T00:00:00Z.
pub const T0: u64 = 1_767_225_600_000;

#[derive(Default)]
struct State {
    counter: u64,
    deletes: Vec<(String, String, DeleteOptions)>,
    graceful_pods: bool,
    fail_creates: Option<String>,
}

/// The test cluster; clones share state.
#[derive(Clone, Default)]
pub struct Cluster {
    pub fake: FakeCluster,
    state: Arc<Mutex<State>>,
}

impl Cluster {
    /// A cluster whose clock reads `now`, installed as the mock host of this thread.
    pub fn new(now: u64) -> (Self, MockHostGuard) {
        let c = Cluster::default();
        c.fake.set_time(now);
        let guard = set_mock_host(c.clone());
        (c, guard)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deleting a pod bound to a node sets its deletionTimestamp (like the API server);
    /// [`Cluster::finish_terminating`] then removes such pods (like a kubelet).
    pub fn graceful_pods(&self, on: bool) {
        self.lock().graceful_pods = on;
    }

    /// Creates of objects of this kind fail with 500 until reset with `None`.
    pub fn fail_creates(&self, kind: Option<&str>) {
        self.lock().fail_creates = kind.map(str::to_string);
    }

    pub fn set_time(&self, millis: u64) {
        self.fake.set_time(millis);
    }

    pub fn now(&self) -> u64 {
        MockHost::now_millis(self)
    }

    pub fn advance(&self, millis: u64) {
        self.set_time(self.now() + millis);
    }

    /// Creates an object as the API server would (name, uid, timestamps).
    pub fn add(&self, object: Value) -> Value {
        self.create(&object).expect("create")
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.fake.get(api_version, kind, ns, name).expect("get")
    }

    /// The objects of a kind, sorted by name.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let mut items = self.fake.list(api_version, kind, None, None).expect("list");
        items.sort_by(|a, b| name_of(a).cmp(name_of(b)));
        items
    }

    pub fn names(&self, api_version: &str, kind: &str) -> Vec<String> {
        self.list(api_version, kind)
            .iter()
            .map(|o| name_of(o).to_string())
            .collect()
    }

    /// Pods, sorted by name.
    pub fn pods(&self) -> Vec<Value> {
        self.list("v1", "Pod")
    }

    /// Pods not being deleted, sorted by name.
    pub fn live_pods(&self) -> Vec<Value> {
        self.pods()
            .into_iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .collect()
    }

    /// Merges `patch` into an object (as a kubelet or a user would), bumping its
    /// resourceVersion.
    pub fn merge(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str, patch: Value) {
        self.fake
            .patch(api_version, kind, ns, name, PatchType::Merge, &patch, None)
            .expect("merge");
        self.bump(api_version, kind, ns, name);
    }

    fn bump(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) {
        let rv = self.next();
        if let Ok(Some(mut o)) = self.fake.get(api_version, kind, ns, name) {
            o["metadata"]["resourceVersion"] = json!(rv.to_string());
            let _ = self.fake.update(&o);
        }
    }

    /// Sets a pod's phase and Ready condition (now as the transition time).
    pub fn set_pod(&self, ns: &str, name: &str, phase: &str, ready: bool) {
        let now = cluster::rfc3339(self.now());
        let status = if ready { "True" } else { "False" };
        self.merge(
            "v1",
            "Pod",
            Some(ns),
            name,
            json!({"status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": status, "lastTransitionTime": now}]}}),
        );
    }

    /// Removes the pods that are being deleted.
    pub fn finish_terminating(&self) {
        for p in self.pods() {
            if p.pointer("/metadata/deletionTimestamp").is_some() {
                let ns = p["metadata"]["namespace"].as_str().map(str::to_string);
                self.fake
                    .delete("v1", "Pod", ns.as_deref(), name_of(&p))
                    .expect("delete");
            }
        }
    }

    /// The deletes made through `delete_with`/`delete`: (kind, name, options).
    pub fn deletes(&self) -> Vec<(String, String, DeleteOptions)> {
        self.lock().deletes.clone()
    }

    /// The reasons of the recorded events, in order.
    pub fn event_reasons(&self) -> Vec<String> {
        let mut events = self.list("v1", "Event");
        events.sort_by_key(|e| {
            e["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
        });
        events
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    fn next(&self) -> u64 {
        let mut s = self.lock();
        s.counter += 1;
        s.counter
    }
}

pub fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Runs `reconcile` of `C` for an object as the engine would (with its cached state).
pub fn reconcile<C: Controller>(
    c: &Cluster,
    api_version: &str,
    kind: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Action, String> {
    let key = ObjectKey {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: ns.map(str::to_string),
        name: name.into(),
    };
    let object = c.get(api_version, kind, ns, name);
    C::reconcile(&key, object.as_ref())
}

const SUFFIX: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl MockHost for Cluster {
    fn log(&self, level: LogLevel, message: &str) {
        self.fake.log(level, message)
    }

    fn get(&self, a: &str, k: &str, ns: Option<&str>, n: &str) -> Result<Option<Value>, HostError> {
        self.fake.get(a, k, ns, n)
    }

    fn list(
        &self,
        a: &str,
        k: &str,
        ns: Option<&str>,
        l: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        self.fake.list(a, k, ns, l)
    }

    fn create(&self, object: &Value) -> Result<Value, HostError> {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        if self.lock().fail_creates.as_deref() == Some(kind.as_str()) {
            return Err(HostError::new(500, "InternalError", "injected failure"));
        }
        let n = self.next();
        let mut o = object.clone();
        if o["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            let Some(prefix) = o["metadata"]["generateName"].as_str() else {
                return Err(HostError::new(
                    422,
                    "Invalid",
                    "name or generateName is required",
                ));
            };
            let mut x = n * 7919 + 104_729;
            let suffix: String = (0..5)
                .map(|_| {
                    let c = SUFFIX[(x % SUFFIX.len() as u64) as usize] as char;
                    x /= SUFFIX.len() as u64;
                    c
                })
                .collect();
            o["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
        }
        o["metadata"]["uid"] = json!(format!("uid-{n}"));
        o["metadata"]["resourceVersion"] = json!(n.to_string());
        o["metadata"]["creationTimestamp"] = json!(cluster::rfc3339(self.now()));
        if o["metadata"]["generation"].is_null() && !o["spec"].is_null() {
            o["metadata"]["generation"] = json!(1);
        }
        if kind == "Pod" && o.pointer("/status/phase").is_none() {
            o["status"] = json!({"phase": "Pending"});
        }
        self.fake.create(&o)
    }

    fn update(&self, object: &Value) -> Result<Value, HostError> {
        let mut o = object.clone();
        o["metadata"]["resourceVersion"] = json!(self.next().to_string());
        self.fake.update(&o)
    }

    fn delete(&self, a: &str, k: &str, ns: Option<&str>, n: &str) -> Result<(), HostError> {
        self.delete_with(a, k, ns, n, &DeleteOptions::default())
    }

    fn now_millis(&self) -> u64 {
        self.fake.now_millis()
    }

    fn api_resources(&self) -> Vec<ApiResource> {
        self.fake.api_resources()
    }

    fn select(&self, q: &Query) -> Result<Vec<Value>, HostError> {
        self.fake.select(q)
    }

    fn patch(
        &self,
        a: &str,
        k: &str,
        ns: Option<&str>,
        n: &str,
        t: PatchType,
        p: &Value,
        s: Option<&str>,
    ) -> Result<Value, HostError> {
        let out = self.fake.patch(a, k, ns, n, t, p, s)?;
        self.bump(a, k, ns, n);
        Ok(out)
    }

    fn update_status(&self, object: &Value) -> Result<Value, HostError> {
        let out = self.fake.update_status(object)?;
        let ns = out["metadata"]["namespace"].as_str().map(str::to_string);
        let (a, k, n) = (
            out["apiVersion"].as_str().unwrap_or_default().to_string(),
            out["kind"].as_str().unwrap_or_default().to_string(),
            name_of(&out).to_string(),
        );
        self.bump(&a, &k, ns.as_deref(), &n);
        Ok(self.get(&a, &k, ns.as_deref(), &n).unwrap_or(out))
    }

    fn delete_with(
        &self,
        a: &str,
        k: &str,
        ns: Option<&str>,
        n: &str,
        options: &DeleteOptions,
    ) -> Result<(), HostError> {
        let Some(current) = self.fake.get(a, k, ns, n)? else {
            return Err(HostError::new(404, "NotFound", "the object does not exist"));
        };
        if let Some(uid) = &options.uid
            && current["metadata"]["uid"].as_str() != Some(uid.as_str())
        {
            return Err(HostError::new(409, "Conflict", "Precondition failed: UID"));
        }
        self.lock()
            .deletes
            .push((k.to_string(), n.to_string(), options.clone()));
        let graceful = self.lock().graceful_pods
            && (k == "Pod" || k == "pods")
            && current
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            && !matches!(
                current.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
        if graceful {
            if current.pointer("/metadata/deletionTimestamp").is_none() {
                let mut o = current.clone();
                o["metadata"]["deletionTimestamp"] = json!(cluster::rfc3339(self.now() + 30_000));
                o["metadata"]["resourceVersion"] = json!(self.next().to_string());
                self.fake.update(&o)?;
            }
            return Ok(());
        }
        self.fake.delete(a, k, ns, n)
    }
}
