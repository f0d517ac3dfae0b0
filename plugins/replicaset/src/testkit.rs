//! An in-memory API server for native tests of workload controllers: a [`FakeCluster`]
//! plus what the real API server does on writes and what a kubelet does to Pods.
//!
//! [`Sim`] stores objects in a `FakeCluster` and adds: `metadata.uid`,
//! `creationTimestamp` (from the fake clock), `resourceVersion` with optimistic
//! concurrency (a stale `resourceVersion` on update is a 409 `Conflict`), `generation`
//! (bumped when `spec` changes), names from `generateName`, status kept apart from the main
//! resource (updates and patches of the main resource keep the stored status, `status`
//! subresource writes change only status, labels and annotations), strategic-merge patches
//! of `ownerReferences` (merged by uid, `$patch: delete`, `metadata.uid` as precondition),
//! delete preconditions, optional graceful deletion of Pods, injected create failures and a
//! count of calls per verb. Kubelet helpers start Pods, make them ready and finish
//! terminations; [`Sim::settle`] runs controllers until a round writes nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tugboat_plugin_sdk::cluster::{self, ApiResource, DeleteOptions, PatchType, Query};
use tugboat_plugin_sdk::controller::{Action, ObjectKey};
use tugboat_plugin_sdk::host::{HostError, LogLevel};
use tugboat_plugin_sdk::objects;
use tugboat_plugin_sdk::testing::{FakeCluster, MockHost};
use tugboat_plugin_sdk::{Value, json};

/// 2026-01-01T00:00:00Z, where the clock of a new [`Sim`] starts.
pub const T0: u64 = 1_767_225_600_000;

/// A reconcile function (`Controller::reconcile`).
pub type ReconcileFn = fn(&ObjectKey, Option<&Value>) -> Result<Action, String>;

/// A controller for [`Sim::settle`]: the primary kind and its reconcile function.
#[derive(Clone, Copy)]
pub struct Ctl {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub reconcile: ReconcileFn,
}

/// What [`Sim::settle`] saw.
#[derive(Debug, Default)]
pub struct Settled {
    /// Rounds run, the last one writing nothing.
    pub rounds: usize,
    /// The errors returned by reconciles, in order.
    pub errors: Vec<(ObjectKey, String)>,
    /// The last action returned for each key.
    pub actions: BTreeMap<String, Action>,
}

#[derive(Default)]
struct SimState {
    next_uid: u64,
    next_rv: u64,
    next_name: u64,
    graceful_pods: bool,
    calls: BTreeMap<&'static str, u64>,
    writes: u64,
    create_failures: BTreeMap<String, HostError>,
}

/// The simulated API server (clones share state). Install it with
/// `testing::set_mock_host(sim.clone())`.
#[derive(Clone)]
pub struct Sim {
    fake: FakeCluster,
    state: Arc<Mutex<SimState>>,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

fn str_at<'a>(o: &'a Value, p: &str) -> &'a str {
    objects::str_at(o, p)
}

fn conflict(message: impl Into<String>) -> HostError {
    HostError::new(409, "Conflict", message)
}

fn not_found(kind: &str, name: &str) -> HostError {
    HostError::new(404, "NotFound", format!("{kind} {name:?} not found"))
}

/// RFC 7386 merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(t) = target.as_object_mut() {
        for (k, v) in fields {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// A strategic-merge patch, enough for controllers: maps merge, `ownerReferences` merge by
/// uid (with `$patch: delete` items), other lists are replaced.
fn strategic_patch(target: &mut Value, patch: &Value, key: &str) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let Some(t) = target.as_object_mut() else {
                return;
            };
            for (k, v) in fields {
                if k == "$patch" {
                    continue;
                }
                if v.is_null() {
                    t.remove(k);
                } else {
                    strategic_patch(t.entry(k.clone()).or_insert(Value::Null), v, k);
                }
            }
        }
        Value::Array(items) if key == "ownerReferences" => {
            let mut list = target.as_array().cloned().unwrap_or_default();
            for item in items {
                let uid = str_at(item, "/uid");
                let pos = list.iter().position(|r| str_at(r, "/uid") == uid);
                if str_at(item, "/$patch") == "delete" {
                    if let Some(i) = pos {
                        list.remove(i);
                    }
                } else if let Some(i) = pos {
                    strategic_patch(&mut list[i], item, "");
                } else {
                    list.push(item.clone());
                }
            }
            *target = Value::Array(list);
        }
        other => *target = other.clone(),
    }
}

fn has_status_subresource(kind: &str) -> bool {
    !matches!(kind, "ConfigMap" | "Secret" | "Event" | "Lease")
}

/// Encodes `n` with the alphabet of generated names, 5 characters.
fn suffix(mut n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = Vec::new();
    for _ in 0..5 {
        out.push(ALPHABET[(n % 27) as usize]);
        n /= 27;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl Sim {
    /// An empty cluster whose clock reads [`T0`].
    pub fn new() -> Sim {
        let sim = Sim {
            fake: FakeCluster::new(),
            state: Arc::new(Mutex::new(SimState::default())),
        };
        sim.fake.set_time(T0);
        sim
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, verb: &'static str) {
        *self.lock().calls.entry(verb).or_default() += 1;
    }

    fn next_rv(&self) -> String {
        let mut s = self.lock();
        s.next_rv += 1;
        s.next_rv.to_string()
    }

    /// The fake clock, in milliseconds.
    pub fn now(&self) -> u64 {
        self.fake.now_millis()
    }

    /// Moves the clock forward.
    pub fn advance_secs(&self, secs: u64) {
        self.fake.set_time(self.now() + secs * 1000);
    }

    /// Sets the clock.
    pub fn set_time(&self, millis: u64) {
        self.fake.set_time(millis);
    }

    /// Pods are deleted gracefully: a delete sets `deletionTimestamp` and
    /// [`Sim::finish_terminating`] removes them.
    pub fn graceful_pod_deletion(&self, on: bool) {
        self.lock().graceful_pods = on;
    }

    /// Makes every create of `kind` fail with `error` (until cleared with `None`).
    pub fn fail_creates(&self, kind: &str, error: Option<HostError>) {
        let mut s = self.lock();
        match error {
            Some(e) => s.create_failures.insert(kind.to_string(), e),
            None => s.create_failures.remove(kind),
        };
    }

    /// The calls made per verb (`get`, `list`, `select`, `create`, `update`,
    /// `update_status`, `patch`, `delete`).
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.lock().calls.clone()
    }

    /// The successful writes made through the host API so far (creates, updates,
    /// patches, deletes; not Events, nor the edits of tests).
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    fn wrote<T>(&self, result: Result<T, HostError>) -> Result<T, HostError> {
        if result.is_ok() {
            self.lock().writes += 1;
        }
        result
    }

    /// Forgets the call counts (and the write count).
    pub fn reset_calls(&self) {
        let mut s = self.lock();
        s.calls.clear();
        s.writes = 0;
    }

    /// Every stored object of `kind`, sorted by namespace and name.
    pub fn all(&self, kind: &str) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .fake
            .objects()
            .into_iter()
            .filter(|o| str_at(o, "/kind") == kind)
            .collect();
        out.sort_by(|a, b| {
            (str_at(a, "/metadata/namespace"), objects::name(a))
                .cmp(&(str_at(b, "/metadata/namespace"), objects::name(b)))
        });
        out
    }

    /// One stored object.
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.all(kind)
            .into_iter()
            .find(|o| str_at(o, "/metadata/namespace") == namespace && objects::name(o) == name)
    }

    /// Creates an object as a client would (uid, timestamps and defaults of the kind are
    /// the caller's business; the server's fields are set here). Panics on failure.
    pub fn add(&self, object: Value) -> Value {
        self.create_object(object, false)
            .unwrap_or_else(|e| panic!("creating a test object: {e}"))
    }

    /// Changes a stored object as a client or the kubelet would (no concurrency check;
    /// `generation` is bumped when `spec` changes). Panics when it does not exist.
    pub fn edit(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Value {
        let Some(mut obj) = self.object(kind, namespace, name) else {
            panic!("no {kind} {namespace}/{name} to edit");
        };
        let before = obj.clone();
        f(&mut obj);
        let stored = self.stamp_update(&before, obj);
        self.fake
            .update(&stored)
            .unwrap_or_else(|e| panic!("editing {kind} {namespace}/{name}: {e}"))
    }

    /// Removes an object at once (no graceful deletion, no garbage collection).
    pub fn remove(&self, kind: &str, namespace: &str, name: &str) {
        let Some(obj) = self.object(kind, namespace, name) else {
            return;
        };
        let _ = self
            .fake
            .delete(str_at(&obj, "/apiVersion"), kind, Some(namespace), name);
    }

    /// The Pods controlled by the object with `owner_uid`, active or not.
    pub fn pods_of(&self, owner_uid: &str) -> Vec<Value> {
        self.all("Pod")
            .into_iter()
            .filter(|p| objects::is_controlled_by(p, owner_uid))
            .collect()
    }

    /// The kubelet: every Pod without a phase (or `Pending`) and not being deleted is
    /// bound to `node-1` (unless bound), becomes `Running` and gets a `Ready` condition of
    /// `ready`. Returns how many Pods were started.
    pub fn start_pods(&self, ready: bool) -> usize {
        let now = cluster::rfc3339(self.now());
        let mut n = 0;
        for pod in self.all("Pod") {
            let phase = str_at(&pod, "/status/phase");
            if objects::is_deleting(&pod) || !(phase.is_empty() || phase == "Pending") {
                continue;
            }
            n += 1;
            let ns = str_at(&pod, "/metadata/namespace").to_string();
            self.edit("Pod", &ns, objects::name(&pod), |p| {
                if str_at(p, "/spec/nodeName").is_empty() {
                    p["spec"]["nodeName"] = json!("node-1");
                }
                p["status"] = json!({
                    "phase": "Running",
                    "conditions": [{
                        "type": "Ready",
                        "status": if ready { "True" } else { "False" },
                        "lastTransitionTime": now,
                    }],
                });
            });
        }
        n
    }

    /// Sets a Pod's `Ready` condition (with `lastTransitionTime` now when it changes).
    pub fn set_ready(&self, namespace: &str, name: &str, ready: bool) {
        let now = cluster::rfc3339(self.now());
        self.edit("Pod", namespace, name, |p| {
            if str_at(p, "/status/phase").is_empty() {
                p["status"]["phase"] = json!("Running");
            }
            let status = if ready { "True" } else { "False" };
            if objects::condition(p, "Ready").is_some_and(|c| str_at(c, "/status") == status) {
                return;
            }
            objects::set_condition(p, "Ready", status, "", "", &now);
            if let Some(conds) = p
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
            {
                for c in conds {
                    if let Some(m) = c.as_object_mut() {
                        m.remove("lastUpdateTime");
                        m.remove("reason");
                        m.remove("message");
                    }
                }
            }
        });
    }

    /// Makes the Pods `ready` that `which` picks (by name), among those not being deleted.
    pub fn set_ready_where(&self, ready: bool, which: impl Fn(&Value) -> bool) -> usize {
        let mut n = 0;
        for pod in self.all("Pod") {
            if !objects::is_deleting(&pod) && which(&pod) {
                self.set_ready(
                    str_at(&pod, "/metadata/namespace"),
                    objects::name(&pod),
                    ready,
                );
                n += 1;
            }
        }
        n
    }

    /// Removes the Pods being deleted (their containers stopped). Returns how many.
    pub fn finish_terminating(&self) -> usize {
        let mut n = 0;
        for pod in self.all("Pod") {
            if objects::is_deleting(&pod) {
                self.remove(
                    "Pod",
                    str_at(&pod, "/metadata/namespace"),
                    objects::name(&pod),
                );
                n += 1;
            }
        }
        n
    }

    /// Reconciles every object of `ctl`'s kind once, with its stored state.
    pub fn reconcile_all(&self, ctl: &Ctl, settled: &mut Settled) {
        for obj in self.all(ctl.kind) {
            if str_at(&obj, "/apiVersion") != ctl.api_version {
                continue;
            }
            let key = ObjectKey {
                api_version: ctl.api_version.into(),
                kind: ctl.kind.into(),
                namespace: objects::namespace(&obj).map(str::to_string),
                name: objects::name(&obj).to_string(),
            };
            // Read again: an earlier reconcile of this round may have changed it.
            let Some(fresh) = self.object(ctl.kind, str_at(&obj, "/metadata/namespace"), &key.name)
            else {
                continue;
            };
            let result = (ctl.reconcile)(&key, Some(&fresh));
            let id = format!("{}/{}", ctl.kind, key.name);
            match result {
                Ok(action) => {
                    settled.actions.insert(id, action);
                }
                Err(e) => {
                    settled.actions.remove(&id);
                    settled.errors.push((key, e));
                }
            }
        }
    }

    /// Runs the controllers round after round until a round writes nothing; panics after
    /// 50 rounds (a controller that never settles writes forever).
    pub fn settle(&self, ctls: &[Ctl]) -> Settled {
        let mut settled = Settled::default();
        for round in 1..=50 {
            let before = self.writes();
            for ctl in ctls {
                self.reconcile_all(ctl, &mut settled);
            }
            if self.writes() == before {
                settled.rounds = round;
                return settled;
            }
        }
        panic!(
            "the controllers did not settle in 50 rounds: {:?}",
            settled.errors
        );
    }

    /// [`Sim::settle`], panicking if any reconcile failed.
    pub fn settle_ok(&self, ctls: &[Ctl]) -> Settled {
        let s = self.settle(ctls);
        assert!(s.errors.is_empty(), "reconcile errors: {:?}", s.errors);
        s
    }

    fn stamp_update(&self, existing: &Value, mut obj: Value) -> Value {
        let spec_changed = existing.get("spec") != obj.get("spec");
        let meta = &mut obj["metadata"];
        for f in ["uid", "creationTimestamp", "generation"] {
            match existing.pointer(&format!("/metadata/{f}")) {
                Some(v) => meta[f] = v.clone(),
                None => {
                    if let Some(m) = meta.as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        if spec_changed && str_at(existing, "/kind") != "Pod" {
            meta["generation"] = json!(objects::generation(existing) + 1);
        }
        meta["resourceVersion"] = json!(self.next_rv());
        obj
    }

    fn check_rv(existing: &Value, obj: &Value) -> Result<(), HostError> {
        let rv = str_at(obj, "/metadata/resourceVersion");
        if !rv.is_empty() && rv != str_at(existing, "/metadata/resourceVersion") {
            return Err(conflict(format!(
                "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
                str_at(existing, "/kind"),
                objects::name(existing)
            )));
        }
        Ok(())
    }

    fn create_object(&self, mut obj: Value, count: bool) -> Result<Value, HostError> {
        if count {
            self.count("create");
        }
        let kind = str_at(&obj, "/kind").to_string();
        if let Some(e) = self.lock().create_failures.get(&kind).cloned() {
            return Err(e);
        }
        if objects::name(&obj).is_empty() {
            let prefix = str_at(&obj, "/metadata/generateName").to_string();
            if prefix.is_empty() {
                return Err(HostError::new(
                    422,
                    "Invalid",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            let n = {
                let mut s = self.lock();
                s.next_name += 1;
                s.next_name
            };
            obj["metadata"]["name"] = json!(format!("{prefix}{}", suffix(n * 7919)));
        }
        let uid = {
            let mut s = self.lock();
            s.next_uid += 1;
            format!("uid-{:04}", s.next_uid)
        };
        let meta = &mut obj["metadata"];
        meta["uid"] = json!(uid);
        meta["creationTimestamp"] = json!(cluster::rfc3339(self.fake.now_millis()));
        meta["generation"] = json!(1);
        meta["resourceVersion"] = json!(self.next_rv());
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
        }
        self.fake.create(&obj)
    }
}

impl MockHost for Sim {
    fn log(&self, level: LogLevel, message: &str) {
        self.fake.log(level, message);
    }

    fn get(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError> {
        self.count("get");
        self.fake
            .get(api_version, kind_or_resource, namespace, name)
    }

    fn list(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        self.count("list");
        self.fake
            .list(api_version, kind_or_resource, namespace, label_selector)
    }

    fn create(&self, object: &Value) -> Result<Value, HostError> {
        let r = self.create_object(object.clone(), true);
        // Events are a side effect: they never bring a controller further, so they do not
        // count as progress for `settle`.
        if str_at(object, "/kind") == "Event" {
            return r;
        }
        self.wrote(r)
    }

    fn update(&self, object: &Value) -> Result<Value, HostError> {
        self.count("update");
        let kind = str_at(object, "/kind");
        let ns = str_at(object, "/metadata/namespace");
        let name = objects::name(object);
        let existing = self
            .object(kind, ns, name)
            .ok_or_else(|| not_found(kind, name))?;
        Self::check_rv(&existing, object)?;
        let mut obj = object.clone();
        if has_status_subresource(kind) {
            match existing.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        let stored = self.stamp_update(&existing, obj);
        let r = self.fake.update(&stored);
        self.wrote(r)
    }

    fn delete(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError> {
        self.delete_with(
            api_version,
            kind_or_resource,
            namespace,
            name,
            &DeleteOptions::default(),
        )
    }

    fn now_millis(&self) -> u64 {
        self.fake.now_millis()
    }

    fn api_resources(&self) -> Vec<ApiResource> {
        self.fake.api_resources()
    }

    fn select(&self, query: &Query) -> Result<Vec<Value>, HostError> {
        self.count("select");
        self.fake.select(query)
    }

    fn patch(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        subresource: Option<&str>,
    ) -> Result<Value, HostError> {
        self.count("patch");
        let Some(existing) = self
            .fake
            .get(api_version, kind_or_resource, namespace, name)?
        else {
            return Err(not_found(kind_or_resource, name));
        };
        let mut patch = patch.clone();
        let want_uid = str_at(&patch, "/metadata/uid").to_string();
        if !want_uid.is_empty() && want_uid != objects::uid(&existing) {
            return Err(conflict(format!(
                "Precondition failed: UID in precondition: {want_uid}, UID in object meta: {}",
                objects::uid(&existing)
            )));
        }
        if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("uid");
        }
        let mut patched = existing.clone();
        match patch_type {
            PatchType::Merge => merge_patch(&mut patched, &patch),
            PatchType::Strategic => strategic_patch(&mut patched, &patch, ""),
            other => {
                return Err(HostError::new(
                    501,
                    "NotImplemented",
                    format!("the sim does not apply {other:?} patches"),
                ));
            }
        }
        Self::check_rv(&existing, &patched)?;
        let kind = str_at(&existing, "/kind");
        match subresource {
            Some("status") => {
                // Only status, labels and annotations change through `status`.
                let mut merged = existing.clone();
                for f in ["status"] {
                    match patched.get(f) {
                        Some(v) => merged[f] = v.clone(),
                        None => {
                            if let Some(m) = merged.as_object_mut() {
                                m.remove(f);
                            }
                        }
                    }
                }
                for f in ["labels", "annotations"] {
                    match patched.pointer(&format!("/metadata/{f}")) {
                        Some(v) => merged["metadata"][f] = v.clone(),
                        None => {
                            if let Some(m) = merged["metadata"].as_object_mut() {
                                m.remove(f);
                            }
                        }
                    }
                }
                patched = merged;
            }
            Some(other) => {
                return Err(HostError::new(
                    404,
                    "NotFound",
                    format!("the sim has no {other} subresource"),
                ));
            }
            None => {
                if has_status_subresource(kind) {
                    match existing.get("status") {
                        Some(s) => patched["status"] = s.clone(),
                        None => {
                            if let Some(m) = patched.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
            }
        }
        let stored = self.stamp_update(&existing, patched);
        let r = self.fake.update(&stored);
        self.wrote(r)
    }

    fn update_status(&self, object: &Value) -> Result<Value, HostError> {
        self.count("update_status");
        let kind = str_at(object, "/kind");
        let ns = str_at(object, "/metadata/namespace");
        let name = objects::name(object);
        let existing = self
            .object(kind, ns, name)
            .ok_or_else(|| not_found(kind, name))?;
        Self::check_rv(&existing, object)?;
        let mut merged = existing.clone();
        match object.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        for f in ["labels", "annotations"] {
            match object.pointer(&format!("/metadata/{f}")) {
                Some(v) => merged["metadata"][f] = v.clone(),
                None => {
                    if let Some(m) = merged["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        let stored = self.stamp_update(&existing, merged);
        let r = self.fake.update(&stored);
        self.wrote(r)
    }

    fn delete_with(
        &self,
        api_version: &str,
        kind_or_resource: &str,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<(), HostError> {
        self.count("delete");
        let Some(existing) = self
            .fake
            .get(api_version, kind_or_resource, namespace, name)?
        else {
            return Err(not_found(kind_or_resource, name));
        };
        if let Some(uid) = &options.uid
            && uid != objects::uid(&existing)
        {
            return Err(conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                objects::uid(&existing)
            )));
        }
        if let Some(rv) = &options.resource_version
            && rv != str_at(&existing, "/metadata/resourceVersion")
        {
            return Err(conflict("Precondition failed: resourceVersion"));
        }
        let graceful = self.lock().graceful_pods;
        if graceful
            && str_at(&existing, "/kind") == "Pod"
            && options.grace_period_seconds != Some(0)
        {
            if objects::is_deleting(&existing) {
                return Ok(());
            }
            let mut obj = existing.clone();
            obj["metadata"]["deletionTimestamp"] = json!(cluster::rfc3339(self.now()));
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(30);
            let stored = self.stamp_update(&existing, obj);
            let r = self.fake.update(&stored).map(|_| ());
            return self.wrote(r);
        }
        let r = self
            .fake
            .delete(api_version, kind_or_resource, namespace, name);
        self.wrote(r)
    }
}

/// A key for `obj` (apiVersion, kind, namespace, name).
pub fn key_of(obj: &Value) -> ObjectKey {
    ObjectKey {
        api_version: str_at(obj, "/apiVersion").into(),
        kind: str_at(obj, "/kind").into(),
        namespace: objects::namespace(obj).map(str::to_string),
        name: objects::name(obj).into(),
    }
}

/// A Pod template with `labels` and one container running `image`.
pub fn template(labels: Value, image: &str) -> Value {
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "containers": [{"name": "app", "image": image}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    })
}

/// The controller of the ReplicaSet controller, for [`Sim::settle`].
pub fn replica_set_ctl() -> Ctl {
    Ctl {
        api_version: "apps/v1",
        kind: "ReplicaSet",
        reconcile: |key, object| {
            <crate::ReplicaSetController as tugboat_plugin_sdk::controller::Controller>::reconcile(
                key, object,
            )
        },
    }
}
