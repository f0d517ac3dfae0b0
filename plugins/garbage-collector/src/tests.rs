//! Native tests over a [`FakeCluster`] wrapped in [`Api`], which adds what the collector
//! relies on from the API server: deletion with finalizers (`foregroundDeletion`,
//! `orphan`, graceful pods), delete preconditions, resourceVersions and their conflicts,
//! strategic merge patches of `ownerReferences` (415 for custom resources), and a call
//! log to check what a reconcile costs.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tugboat_plugin_sdk::cluster::{ApiResource, DeleteOptions, PatchType, Propagation, Query};
use tugboat_plugin_sdk::testing::{FakeCluster, MockHost, MockHostGuard, set_mock_host};

use super::*;

const NOW: u64 = 1_800_000_000_000;
const NS: &str = "default";
const CUSTOM_GROUP: &str = "example.com";

#[derive(Clone)]
struct Api {
    fake: FakeCluster,
    calls: Rc<RefCell<Vec<String>>>,
    next_rv: Rc<Cell<u64>>,
}

fn meta_str<'a>(o: &'a Value, field: &str) -> &'a str {
    objects::str_at(o, &format!("/metadata/{field}"))
}

fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in fields {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

impl Api {
    fn new(objects: Vec<Value>) -> Self {
        let api = Api {
            fake: FakeCluster::new(),
            calls: Rc::default(),
            next_rv: Rc::new(Cell::new(100)),
        };
        api.fake.set_time(NOW);
        for o in objects {
            let o = api.stamp(o);
            api.fake.create(&o).unwrap();
        }
        api
    }

    fn install(&self) -> MockHostGuard {
        set_mock_host(self.clone())
    }

    fn stamp(&self, mut o: Value) -> Value {
        let rv = self.next_rv.get() + 1;
        self.next_rv.set(rv);
        o["metadata"]["resourceVersion"] = json!(rv.to_string());
        o
    }

    fn record(&self, call: String) {
        self.calls.borrow_mut().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn clear_calls(&self) {
        self.calls.borrow_mut().clear();
    }

    fn find(&self, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        self.fake.objects().into_iter().find(|o| {
            objects::str_at(o, "/kind") == kind
                && objects::namespace(o) == ns
                && objects::name(o) == name
        })
    }

    fn exists(&self, kind: &str, name: &str) -> bool {
        self.find(kind, Some(NS), name).is_some()
    }

    fn get_ns(&self, kind: &str, name: &str) -> Value {
        self.find(kind, Some(NS), name)
            .unwrap_or_else(|| panic!("{kind} {name} is gone"))
    }

    /// Stores `new` as the API server's update does: an object being deleted whose last
    /// finalizer went is deleted.
    fn store(&self, new: Value) -> Result<Value, HostError> {
        let fins_left = !finalizers(&new).is_empty()
            || (objects::str_at(&new, "/kind") == "Namespace"
                && new
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty()));
        if objects::is_deleting(&new) && !fins_left {
            self.fake.delete(
                objects::str_at(&new, "/apiVersion"),
                objects::str_at(&new, "/kind"),
                objects::namespace(&new),
                objects::name(&new),
            )?;
            return Ok(new);
        }
        let new = self.stamp(new);
        self.fake.update(&new)
    }

    fn current(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, HostError> {
        self.fake
            .get(api_version, kind, namespace, name)?
            .ok_or_else(|| HostError::new(404, "NotFound", format!("{kind} {name} not found")))
    }
}

fn conflict(message: &str) -> HostError {
    HostError::new(409, "Conflict", message)
}

impl MockHost for Api {
    fn log(&self, level: LogLevel, message: &str) {
        self.fake.log(level, message);
    }

    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError> {
        self.record(format!(
            "get {kind} {}/{name}",
            namespace.unwrap_or_default()
        ));
        self.fake.get(api_version, kind, namespace, name)
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        self.record(format!("list {kind}"));
        self.fake.list(api_version, kind, namespace, selector)
    }

    fn select(&self, q: &Query) -> Result<Vec<Value>, HostError> {
        self.record(format!("select {}", q.kind_or_resource));
        self.fake.select(q)
    }

    fn now_millis(&self) -> u64 {
        self.fake.now_millis()
    }

    fn api_resources(&self) -> Vec<ApiResource> {
        self.record("api-resources".into());
        let r = |av: &str, kind: &str, resource: &str, namespaced| ApiResource {
            api_version: av.into(),
            kind: kind.into(),
            resource: resource.into(),
            namespaced,
        };
        vec![
            r("v1", "Pod", "pods", true),
            r("v1", "ConfigMap", "configmaps", true),
            r("v1", "Node", "nodes", false),
            r("apps/v1", "ReplicaSet", "replicasets", true),
            r("apps/v1", "Deployment", "deployments", true),
            r("example.com/v1", "Widget", "widgets", true),
            r("example.com/v1", "Cluster", "clusters", false),
        ]
    }

    fn update(&self, object: &Value) -> Result<Value, HostError> {
        self.record(format!("update {}", objects::name(object)));
        let current = self.current(
            objects::str_at(object, "/apiVersion"),
            objects::str_at(object, "/kind"),
            objects::namespace(object),
            objects::name(object),
        )?;
        let rv = meta_str(object, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&current, "resourceVersion") {
            return Err(conflict("the object has been modified"));
        }
        self.store(object.clone())
    }

    fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        subresource: Option<&str>,
    ) -> Result<Value, HostError> {
        self.record(format!(
            "patch {patch_type:?}{} {kind} {}/{name}",
            subresource.map(|s| format!("/{s}")).unwrap_or_default(),
            namespace.unwrap_or_default()
        ));
        let current = self.current(api_version, kind, namespace, name)?;
        let rv = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str);
        if rv.is_some_and(|rv| rv != meta_str(&current, "resourceVersion")) {
            return Err(conflict("the object has been modified"));
        }
        let mut new = current.clone();
        match patch_type {
            PatchType::Merge => merge(&mut new, patch),
            PatchType::Strategic => {
                if group_of(api_version) == CUSTOM_GROUP {
                    return Err(HostError::new(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources",
                    ));
                }
                let mut rest = patch.clone();
                if let Some(items) = rest
                    .pointer_mut("/metadata")
                    .and_then(Value::as_object_mut)
                    .and_then(|m| m.remove("ownerReferences"))
                {
                    let mut refs = objects::owner_refs(&new).to_vec();
                    for item in items.as_array().cloned().unwrap_or_default() {
                        let uid = ref_uid(&item).to_string();
                        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                            refs.retain(|r| ref_uid(r) != uid);
                        } else if let Some(r) = refs.iter_mut().find(|r| ref_uid(r) == uid) {
                            merge(r, &item);
                        } else {
                            refs.push(item);
                        }
                    }
                    if refs.is_empty() {
                        new["metadata"]
                            .as_object_mut()
                            .unwrap()
                            .remove("ownerReferences");
                    } else {
                        new["metadata"]["ownerReferences"] = json!(refs);
                    }
                }
                merge(&mut new, &rest);
            }
            other => panic!("the collector sent a {other:?} patch"),
        }
        // Identity comes from the stored object.
        for f in ["uid", "creationTimestamp", "deletionTimestamp"] {
            match current.pointer(&format!("/metadata/{f}")) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    new["metadata"].as_object_mut().unwrap().remove(f);
                }
            }
        }
        if subresource == Some("finalize") {
            let spec = new.get("spec").cloned().unwrap_or(json!({}));
            new = current.clone();
            new["spec"] = spec;
        } else if let Some(s) = subresource {
            panic!("unexpected subresource {s}");
        }
        if is_deleting(&current) {
            let before = finalizers(&current);
            if let Some(added) = finalizers(&new).iter().find(|f| !before.contains(f)) {
                return Err(HostError::new(
                    403,
                    "Forbidden",
                    format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers [{added:?}]"
                    ),
                ));
            }
        }
        self.store(new)
    }

    fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), HostError> {
        self.delete_with(
            api_version,
            kind,
            namespace,
            name,
            &DeleteOptions::default(),
        )
    }

    fn delete_with(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<(), HostError> {
        self.record(format!(
            "delete {kind} {}/{name} {:?}",
            namespace.unwrap_or_default(),
            options.propagation
        ));
        let current = self.current(api_version, kind, namespace, name)?;
        if let Some(uid) = &options.uid
            && uid != objects::uid(&current)
        {
            return Err(conflict("Precondition failed: UID"));
        }
        if let Some(rv) = &options.resource_version
            && rv != meta_str(&current, "resourceVersion")
        {
            return Err(conflict("Precondition failed: ResourceVersion"));
        }
        let mut fins: Vec<String> = finalizers(&current)
            .into_iter()
            .map(str::to_string)
            .collect();
        let policy_finalizer = match options.propagation {
            Some(Propagation::Foreground) => Some(FOREGROUND_FINALIZER),
            Some(Propagation::Orphan) => Some(ORPHAN_FINALIZER),
            _ => None,
        };
        if let Some(f) = policy_finalizer
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_string());
        }
        let grace = options.grace_period_seconds.unwrap_or_else(|| {
            objects::i64_at(&current, "/spec/terminationGracePeriodSeconds").unwrap_or(30)
        });
        let graceful_pod =
            kind == "Pod" && !objects::str_at(&current, "/spec/nodeName").is_empty() && grace > 0;
        let namespace_pending = kind == "Namespace"
            && current
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        if fins.is_empty() && !graceful_pod && !namespace_pending {
            return self.fake.delete(api_version, kind, namespace, name);
        }
        let mut new = current.clone();
        if !is_deleting(&new) {
            new["metadata"]["deletionTimestamp"] = json!(cluster::rfc3339(NOW));
        }
        if namespace_pending {
            new["status"] = json!({"phase": "Terminating"});
        }
        if fins.is_empty() {
            new["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("finalizers");
        } else {
            new["metadata"]["finalizers"] = json!(fins);
        }
        if new != current {
            let new = self.stamp(new);
            self.fake.update(&new)?;
        }
        Ok(())
    }
}

use objects::is_deleting;

// ---- objects ----

fn owner_ref(api_version: &str, kind: &str, name: &str, uid: &str, block: bool) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": block})
}

fn obj(api_version: &str, kind: &str, name: &str, uid: &str, owners: Vec<Value>) -> Value {
    let mut o = json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": NS, "uid": uid,
            "creationTimestamp": "2020-01-01T00:00:00Z"},
    });
    if !owners.is_empty() {
        o["metadata"]["ownerReferences"] = json!(owners);
    }
    o
}

fn deployment(name: &str, uid: &str) -> Value {
    obj("apps/v1", "Deployment", name, uid, vec![])
}

fn replicaset(name: &str, uid: &str, owner: Option<(&str, &str)>) -> Value {
    let owners = owner
        .map(|(n, u)| vec![owner_ref("apps/v1", "Deployment", n, u, true)])
        .unwrap_or_default();
    obj("apps/v1", "ReplicaSet", name, uid, owners)
}

fn pod(name: &str, uid: &str, owners: Vec<Value>) -> Value {
    obj("v1", "Pod", name, uid, owners)
}

fn rs_ref(name: &str, uid: &str) -> Value {
    owner_ref("apps/v1", "ReplicaSet", name, uid, true)
}

fn key_of(o: &Value) -> ObjectKey {
    ObjectKey {
        api_version: objects::str_at(o, "/apiVersion").into(),
        kind: objects::str_at(o, "/kind").into(),
        namespace: objects::namespace(o).map(str::to_string),
        name: objects::name(o).into(),
    }
}

/// Reconciles the object as the engine would, with its current state.
fn reconcile(api: &Api, kind: &str, name: &str) -> Result<Action, String> {
    let o = api.get_ns(kind, name);
    GarbageCollector::reconcile(&key_of(&o), Some(&o))
}

fn init(config: Value) -> ControllerSpec {
    GarbageCollector::init(&config).expect("config is valid")
}

/// A level-triggered stand-in for the engine: reconcile every collected object until a
/// pass changes nothing. Returns the number of passes.
fn settle(api: &Api) -> usize {
    let kinds = config().kinds;
    for pass in 1..=20 {
        let before = api.fake.objects();
        for o in &before {
            let collected = kinds.iter().any(|k| {
                k.api_version == objects::str_at(o, "/apiVersion")
                    && k.kind == objects::str_at(o, "/kind")
            });
            // Take the latest state: an earlier reconcile of this pass may have changed it.
            let Some(current) = api.find(
                objects::str_at(o, "/kind"),
                objects::namespace(o),
                objects::name(o),
            ) else {
                continue;
            };
            if collected {
                let _ = GarbageCollector::reconcile(&key_of(&current), Some(&current));
            }
        }
        if api.fake.objects() == before {
            return pass;
        }
    }
    panic!("the cluster did not settle");
}

// ---- init ----

#[test]
fn init_declares_every_default_kind_as_primary_and_watched_for_dependents() {
    let spec = init(Value::Null);
    assert_eq!(spec.kinds.len(), DEFAULT_KINDS.len());
    assert_eq!(
        (
            spec.kinds[0].api_version.as_str(),
            spec.kinds[0].kind.as_str()
        ),
        ("v1", "Pod")
    );
    for (api_version, kind) in DEFAULT_KINDS {
        assert!(
            spec.kinds
                .iter()
                .any(|k| k.api_version == *api_version && k.kind == *kind),
            "{kind} is primary"
        );
        assert!(
            spec.watches.iter().any(|w| w.api_version == *api_version
                && w.kind == *kind
                && w.map == MapRule::Dependents),
            "{kind} is watched with the dependents rule"
        );
    }
    assert_eq!(spec.watches.len(), DEFAULT_KINDS.len());
}

#[test]
fn config_names_kinds_as_objects_or_strings() {
    let spec = init(json!({
        "kinds": [{"apiVersion": "v1", "kind": "ConfigMap"}, "example.com/v1/Widget", "v1/Pod"],
        "workers": 4,
        "gracePeriodSeconds": 0,
    }));
    let kinds: Vec<(String, String)> = spec
        .kinds
        .iter()
        .map(|k| (k.api_version.clone(), k.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("v1".to_string(), "ConfigMap".to_string()),
            ("example.com/v1".to_string(), "Widget".to_string()),
            ("v1".to_string(), "Pod".to_string()),
        ]
    );
    assert_eq!(spec.workers, 4);
    assert_eq!(config().grace_period_seconds, Some(0));
    for bad in [
        json!({"kinds": []}),
        json!({"kinds": ["Pod"]}),
        json!({"kinds": [{"kind": "Pod"}]}),
        json!({"kinds": "v1/Pod"}),
        json!({"workers": -1}),
        json!({"gracePeriodSeconds": -5}),
        json!({"kind": ["v1/Pod"]}),
        json!(["v1/Pod"]),
    ] {
        assert!(GarbageCollector::init(&bad).is_err(), "{bad} is refused");
    }
}

// ---- background ----

#[test]
fn background_deletion_cascades_down_a_deployment_replicaset_pod_chain() {
    init(Value::Null);
    let api = Api::new(vec![
        deployment("web", "d1"),
        replicaset("web-1", "rs1", Some(("web", "d1"))),
        replicaset("web-2", "rs2", Some(("web", "d1"))),
        pod("web-1-a", "p1", vec![rs_ref("web-1", "rs1")]),
        pod("web-1-b", "p2", vec![rs_ref("web-1", "rs1")]),
        pod("web-2-a", "p3", vec![rs_ref("web-2", "rs2")]),
        pod("other", "p4", vec![rs_ref("other", "rs9")]),
        replicaset("other", "rs9", None),
        pod("bare", "p5", vec![]),
    ]);
    let _g = api.install();
    // Nothing is collected while the owners exist.
    settle(&api);
    assert_eq!(api.fake.objects().len(), 9);

    // `kubectl delete deployment web` (Background): the API deletes it at once.
    cluster::delete_with(
        "apps/v1",
        "Deployment",
        Some(NS),
        "web",
        &Default::default(),
    )
    .unwrap();
    api.clear_calls();
    // The dependents rule enqueues the ReplicaSets: they find their owner gone.
    assert_eq!(reconcile(&api, "ReplicaSet", "web-1"), Ok(Action::Done));
    assert!(!api.exists("ReplicaSet", "web-1"));
    assert!(
        api.calls()
            .contains(&"delete ReplicaSet default/web-1 Some(Background)".to_string()),
        "{:?}",
        api.calls()
    );
    // Pods still exist until they are reconciled (the RS's deletion enqueues them).
    assert!(api.exists("Pod", "web-1-a"));
    settle(&api);
    let left: Vec<String> = api
        .fake
        .objects()
        .iter()
        .map(|o| objects::name(o).to_string())
        .collect();
    assert_eq!(left, vec!["other", "other", "bare"]);
}

#[test]
fn deletes_carry_uid_and_resource_version_preconditions() {
    init(Value::Null);
    let api = Api::new(vec![pod("orphan", "p1", vec![rs_ref("gone", "rs1")])]);
    let _g = api.install();
    // The cached copy the engine hands over is older than the stored object.
    let stale = api.get_ns("Pod", "orphan");
    let mut newer = stale.clone();
    newer["metadata"]["labels"] = json!({"adopted": "maybe"});
    api.fake.update(&api.stamp(newer)).unwrap();
    let err = GarbageCollector::reconcile(&key_of(&stale), Some(&stale)).unwrap_err();
    assert!(err.contains("Conflict"), "{err}");
    assert!(
        api.exists("Pod", "orphan"),
        "a changed object is not deleted on stale data"
    );
    // With the fresh state it goes.
    assert_eq!(reconcile(&api, "Pod", "orphan"), Ok(Action::Done));
    assert!(!api.exists("Pod", "orphan"));

    // A recreated object (same name, new uid) is not deleted on the old one's behalf.
    let api = Api::new(vec![pod("x", "p-new", vec![rs_ref("gone", "rs1")])]);
    let _g = api.install();
    let mut old = api.get_ns("Pod", "x");
    old["metadata"]["uid"] = json!("p-old");
    let err = GarbageCollector::reconcile(&key_of(&old), Some(&old)).unwrap_err();
    assert!(err.contains("UID"), "{err}");
    assert!(api.exists("Pod", "x"));
}

#[test]
fn an_owner_with_the_same_name_but_another_uid_counts_as_gone() {
    init(Value::Null);
    let api = Api::new(vec![
        replicaset("web", "rs-new", None),
        pod("old-pod", "p1", vec![rs_ref("web", "rs-old")]),
        pod("new-pod", "p2", vec![rs_ref("web", "rs-new")]),
    ]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "Pod", "old-pod"), Ok(Action::Done));
    assert_eq!(reconcile(&api, "Pod", "new-pod"), Ok(Action::Done));
    assert!(!api.exists("Pod", "old-pod"));
    assert!(api.exists("Pod", "new-pod"));
    assert!(api.exists("ReplicaSet", "web"));
}

#[test]
fn a_dependent_with_a_remaining_owner_only_loses_the_dangling_reference() {
    init(Value::Null);
    let cm_ref = owner_ref("v1", "ConfigMap", "settings", "cm1", false);
    let api = Api::new(vec![
        obj("v1", "ConfigMap", "settings", "cm1", vec![]),
        pod(
            "shared",
            "p1",
            vec![rs_ref("gone", "rs-gone"), cm_ref.clone()],
        ),
    ]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "Pod", "shared"), Ok(Action::Done));
    let p = api.get_ns("Pod", "shared");
    assert_eq!(p["metadata"]["ownerReferences"], json!([cm_ref]));
    assert!(
        api.calls()
            .contains(&"patch Strategic Pod default/shared".to_string()),
        "{:?}",
        api.calls()
    );
    // Converged: nothing more to do, and no write.
    api.clear_calls();
    assert_eq!(reconcile(&api, "Pod", "shared"), Ok(Action::Done));
    assert_eq!(api.calls(), vec!["get ConfigMap default/settings"]);
}

#[test]
fn custom_resources_are_patched_with_a_guarded_merge_patch() {
    init(json!({"kinds": ["example.com/v1/Widget", "v1/ConfigMap"]}));
    let keep = owner_ref("example.com/v1", "Widget", "parent", "w1", true);
    let api = Api::new(vec![
        obj("example.com/v1", "Widget", "parent", "w1", vec![]),
        obj(
            "example.com/v1",
            "Widget",
            "child",
            "w2",
            vec![
                keep.clone(),
                owner_ref("example.com/v1", "Widget", "gone", "w0", true),
            ],
        ),
    ]);
    let _g = api.install();
    let before = api.get_ns("Widget", "child");
    assert_eq!(reconcile(&api, "Widget", "child"), Ok(Action::Done));
    let calls = api.calls();
    assert!(calls.contains(&"api-resources".to_string()), "{calls:?}");
    assert!(calls.contains(&"patch Strategic Widget default/child".to_string()));
    assert!(calls.contains(&"patch Merge Widget default/child".to_string()));
    let after = api.get_ns("Widget", "child");
    assert_eq!(after["metadata"]["ownerReferences"], json!([keep]));
    assert_ne!(
        meta_str(&after, "resourceVersion"),
        meta_str(&before, "resourceVersion")
    );

    // The merge patch is guarded: on a stale copy it conflicts instead of clobbering.
    let api = Api::new(vec![
        obj("example.com/v1", "Widget", "parent", "w1", vec![]),
        obj(
            "example.com/v1",
            "Widget",
            "child",
            "w2",
            vec![
                keep.clone(),
                owner_ref("v1", "ConfigMap", "gone", "c0", false),
            ],
        ),
    ]);
    let _g = api.install();
    let stale = api.get_ns("Widget", "child");
    let mut newer = stale.clone();
    newer["metadata"]["ownerReferences"]
        .as_array_mut()
        .unwrap()
        .push(owner_ref("v1", "ConfigMap", "new-owner", "c1", false));
    api.fake.update(&api.stamp(newer)).unwrap();
    let err = GarbageCollector::reconcile(&key_of(&stale), Some(&stale)).unwrap_err();
    assert!(err.contains("Conflict"), "{err}");
    assert_eq!(
        api.get_ns("Widget", "child")["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_custom_resource_is_collected_when_its_custom_owner_is_gone() {
    init(json!({"kinds": ["example.com/v1/Widget"]}));
    let api = Api::new(vec![obj(
        "example.com/v1",
        "Widget",
        "child",
        "w2",
        vec![owner_ref("example.com/v1", "Widget", "parent", "w1", true)],
    )]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "Widget", "child"), Ok(Action::Done));
    assert!(!api.exists("Widget", "child"));
}

// ---- cost ----

#[test]
fn an_object_whose_owner_exists_costs_one_read() {
    init(Value::Null);
    let api = Api::new(vec![
        replicaset("web", "rs1", None),
        pod("web-a", "p1", vec![rs_ref("web", "rs1")]),
        pod("bare", "p2", vec![]),
    ]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "Pod", "web-a"), Ok(Action::Done));
    assert_eq!(api.calls(), vec!["get ReplicaSet default/web"]);
    api.clear_calls();
    assert_eq!(reconcile(&api, "Pod", "bare"), Ok(Action::Done));
    assert_eq!(api.calls(), Vec::<String>::new());
    // A deleted object costs nothing either.
    let key = key_of(&api.get_ns("Pod", "bare"));
    assert_eq!(GarbageCollector::reconcile(&key, None), Ok(Action::Done));
    assert_eq!(api.calls(), Vec::<String>::new());
}

#[test]
fn objects_being_deleted_without_gc_finalizers_are_left_to_finish() {
    init(Value::Null);
    let mut p = pod("terminating", "p1", vec![rs_ref("gone", "rs1")]);
    p["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    p["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    let api = Api::new(vec![p]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "Pod", "terminating"), Ok(Action::Done));
    assert_eq!(api.calls(), Vec::<String>::new());
    assert!(api.exists("Pod", "terminating"));
}

// ---- the cache may lag ----

#[test]
fn a_young_dependent_waits_before_trusting_an_absent_owner() {
    init(Value::Null);
    let mut p = pod("new", "p1", vec![rs_ref("web", "rs1")]);
    // Created one second ago: the owner's informer may not have caught up.
    p["metadata"]["creationTimestamp"] = json!(cluster::rfc3339(NOW - 1_000));
    let api = Api::new(vec![p]);
    let _g = api.install();
    assert_eq!(
        reconcile(&api, "Pod", "new"),
        Ok(Action::RequeueAfter(Duration::from_millis(
            ABSENT_OWNER_GRACE_MS - 1_000
        )))
    );
    assert!(api.exists("Pod", "new"));
    api.fake.set_time(NOW + ABSENT_OWNER_GRACE_MS);
    assert_eq!(reconcile(&api, "Pod", "new"), Ok(Action::Done));
    assert!(!api.exists("Pod", "new"));
}

// ---- invalid references ----

#[test]
fn a_cluster_scoped_object_naming_a_namespaced_owner_is_left_alone() {
    init(json!({"kinds": ["v1/Node"]}));
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "uid": "n1",
            "ownerReferences": [rs_ref("web", "rs1")]}});
    let api = Api::new(vec![node]);
    let _g = api.install();
    let n = api.find("Node", None, "n1").unwrap();
    assert_eq!(
        GarbageCollector::reconcile(&key_of(&n), Some(&n)),
        Ok(Action::Done)
    );
    assert!(api.find("Node", None, "n1").is_some());
    assert!(
        api.fake
            .logs()
            .iter()
            .any(|(l, m)| *l == LogLevel::Warn && m.contains("cluster-scoped")),
        "{:?}",
        api.fake.logs()
    );
}

#[test]
fn an_owner_of_an_unserved_kind_is_retried_not_collected() {
    init(Value::Null);
    let api = Api::new(vec![pod(
        "p",
        "p1",
        vec![owner_ref("example.com/v9", "Gadget", "g", "g1", true)],
    )]);
    let _g = api.install();
    let err = reconcile(&api, "Pod", "p").unwrap_err();
    assert!(err.contains("not served"), "{err}");
    assert!(api.exists("Pod", "p"));
}

#[test]
fn a_cluster_scoped_owner_is_looked_up_without_a_namespace() {
    init(Value::Null);
    let node_ref = owner_ref("v1", "Node", "n1", "node-uid", false);
    let api = Api::new(vec![
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "node-uid"}}),
        pod("mirror", "p1", vec![node_ref.clone()]),
        pod(
            "stale-mirror",
            "p2",
            vec![owner_ref("v1", "Node", "n2", "n2", false)],
        ),
    ]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "Pod", "mirror"), Ok(Action::Done));
    assert_eq!(api.calls(), vec!["get Node /n1"]);
    assert_eq!(reconcile(&api, "Pod", "stale-mirror"), Ok(Action::Done));
    assert!(api.exists("Pod", "mirror"));
    assert!(!api.exists("Pod", "stale-mirror"));
}

// ---- foreground ----

#[test]
fn foreground_deletion_deletes_dependents_first_and_waits_for_blocking_ones() {
    init(Value::Null);
    let api = Api::new(vec![
        deployment("web", "d1"),
        replicaset("web-1", "rs1", Some(("web", "d1"))),
        pod("web-1-a", "p1", vec![rs_ref("web-1", "rs1")]),
        pod("web-1-b", "p2", vec![rs_ref("web-1", "rs1")]),
    ]);
    let _g = api.install();
    // `kubectl delete deployment web --cascade=foreground`.
    let fg = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        ..Default::default()
    };
    cluster::delete_with("apps/v1", "Deployment", Some(NS), "web", &fg).unwrap();
    let d = api.get_ns("Deployment", "web");
    assert!(is_deleting(&d) && has_finalizer(&d, FOREGROUND_FINALIZER));

    // The Deployment waits: its ReplicaSet blocks it.
    assert_eq!(
        reconcile(&api, "Deployment", "web"),
        Ok(Action::RequeueAfter(FOREGROUND_RECHECK))
    );
    assert!(has_finalizer(
        &api.get_ns("Deployment", "web"),
        FOREGROUND_FINALIZER
    ));

    // The ReplicaSet (enqueued by the dependents rule) has dependents of its own: it is
    // deleted in the foreground too.
    assert_eq!(reconcile(&api, "ReplicaSet", "web-1"), Ok(Action::Done));
    assert!(
        api.calls()
            .contains(&"delete ReplicaSet default/web-1 Some(Foreground)".to_string())
    );
    let rs = api.get_ns("ReplicaSet", "web-1");
    assert!(is_deleting(&rs) && has_finalizer(&rs, FOREGROUND_FINALIZER));
    assert_eq!(
        reconcile(&api, "ReplicaSet", "web-1"),
        Ok(Action::RequeueAfter(FOREGROUND_RECHECK))
    );

    // The pods have no dependents: plain (background) deletes.
    api.clear_calls();
    assert_eq!(reconcile(&api, "Pod", "web-1-a"), Ok(Action::Done));
    assert!(
        api.calls()
            .contains(&"delete Pod default/web-1-a Some(Background)".to_string()),
        "{:?}",
        api.calls()
    );
    // One pod left: everyone still waits.
    assert_eq!(
        reconcile(&api, "ReplicaSet", "web-1"),
        Ok(Action::RequeueAfter(FOREGROUND_RECHECK))
    );
    assert_eq!(reconcile(&api, "Pod", "web-1-b"), Ok(Action::Done));
    assert!(api.exists("Deployment", "web"));

    // Bottom-up: the ReplicaSet's finalizer goes (and with it the ReplicaSet), then the
    // Deployment's.
    assert_eq!(reconcile(&api, "ReplicaSet", "web-1"), Ok(Action::Done));
    assert!(!api.exists("ReplicaSet", "web-1"));
    assert!(api.exists("Deployment", "web"));
    assert_eq!(reconcile(&api, "Deployment", "web"), Ok(Action::Done));
    assert!(api.fake.objects().is_empty());
}

#[test]
fn foreground_deletion_settles_to_an_empty_cluster() {
    init(Value::Null);
    let api = Api::new(vec![
        deployment("web", "d1"),
        replicaset("web-1", "rs1", Some(("web", "d1"))),
        pod("web-1-a", "p1", vec![rs_ref("web-1", "rs1")]),
        pod("unrelated", "p9", vec![]),
    ]);
    let _g = api.install();
    let fg = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        ..Default::default()
    };
    cluster::delete_with("apps/v1", "Deployment", Some(NS), "web", &fg).unwrap();
    settle(&api);
    let left: Vec<String> = api
        .fake
        .objects()
        .iter()
        .map(|o| objects::name(o).to_string())
        .collect();
    assert_eq!(left, vec!["unrelated"]);
}

#[test]
fn terminating_blocking_dependents_still_block_and_non_blocking_ones_do_not() {
    init(Value::Null);
    let mut owner = replicaset("web", "rs1", None);
    owner["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    owner["metadata"]["finalizers"] = json!([FOREGROUND_FINALIZER]);
    let mut graceful = pod("graceful", "p1", vec![rs_ref("web", "rs1")]);
    graceful["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:30Z");
    let api = Api::new(vec![owner.clone(), graceful]);
    let _g = api.install();
    // A pod still terminating (graceful deletion) keeps its owner waiting.
    assert_eq!(
        reconcile(&api, "ReplicaSet", "web"),
        Ok(Action::RequeueAfter(FOREGROUND_RECHECK))
    );
    assert!(api.exists("ReplicaSet", "web"));

    // A dependent whose reference does not block does not hold its owner back.
    let api = Api::new(vec![
        owner,
        pod(
            "loose",
            "p2",
            vec![owner_ref("apps/v1", "ReplicaSet", "web", "rs1", false)],
        ),
    ]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "ReplicaSet", "web"), Ok(Action::Done));
    assert!(!api.exists("ReplicaSet", "web"));
    // The dependent is collected on its own (its owner is gone now).
    assert_eq!(reconcile(&api, "Pod", "loose"), Ok(Action::Done));
    assert!(!api.exists("Pod", "loose"));
}

#[test]
fn a_dependent_with_another_solid_owner_drops_the_waiting_reference_instead() {
    init(Value::Null);
    let mut owner = replicaset("web", "rs1", None);
    owner["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    owner["metadata"]["finalizers"] = json!([FOREGROUND_FINALIZER]);
    let cm_ref = owner_ref("v1", "ConfigMap", "keeper", "cm1", false);
    let api = Api::new(vec![
        owner,
        obj("v1", "ConfigMap", "keeper", "cm1", vec![]),
        pod("shared", "p1", vec![rs_ref("web", "rs1"), cm_ref.clone()]),
    ]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "Pod", "shared"), Ok(Action::Done));
    assert_eq!(
        api.get_ns("Pod", "shared")["metadata"]["ownerReferences"],
        json!([cm_ref])
    );
    // No longer blocked: the owner goes.
    assert_eq!(reconcile(&api, "ReplicaSet", "web"), Ok(Action::Done));
    assert!(!api.exists("ReplicaSet", "web"));
    assert!(api.exists("Pod", "shared"));
}

#[test]
fn a_dependent_deleting_in_the_foreground_breaks_a_potential_cycle() {
    init(Value::Null);
    // a (deleting, foreground) <- b <- c (deleting, foreground, and owned by b)
    let mut a = obj("v1", "ConfigMap", "a", "a1", vec![]);
    a["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    a["metadata"]["finalizers"] = json!([FOREGROUND_FINALIZER]);
    let b = obj(
        "v1",
        "ConfigMap",
        "b",
        "b1",
        vec![owner_ref("v1", "ConfigMap", "a", "a1", true)],
    );
    let mut c = obj(
        "v1",
        "ConfigMap",
        "c",
        "c1",
        vec![owner_ref("v1", "ConfigMap", "b", "b1", true)],
    );
    c["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    c["metadata"]["finalizers"] = json!([FOREGROUND_FINALIZER]);
    let api = Api::new(vec![a, b, c]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "ConfigMap", "b"), Ok(Action::Done));
    let b = api.get_ns("ConfigMap", "b");
    assert_eq!(
        b["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
        json!(false)
    );
    assert!(is_deleting(&b) && has_finalizer(&b, FOREGROUND_FINALIZER));
    // Its reference no longer blocks: `a` can go while `b` waits for `c`.
    assert_eq!(reconcile(&api, "ConfigMap", "a"), Ok(Action::Done));
    assert!(!api.exists("ConfigMap", "a"));
}

#[test]
fn removing_a_finalizer_retries_once_after_a_conflict() {
    init(Value::Null);
    let mut owner = replicaset("web", "rs1", None);
    owner["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    owner["metadata"]["finalizers"] = json!([FOREGROUND_FINALIZER, "example.com/keep"]);
    let api = Api::new(vec![owner]);
    let _g = api.install();
    let stale = api.get_ns("ReplicaSet", "web");
    let mut newer = stale.clone();
    newer["metadata"]["labels"] = json!({"touched": "yes"});
    api.fake.update(&api.stamp(newer)).unwrap();
    assert_eq!(
        GarbageCollector::reconcile(&key_of(&stale), Some(&stale)),
        Ok(Action::Done)
    );
    let rs = api.get_ns("ReplicaSet", "web");
    assert_eq!(rs["metadata"]["finalizers"], json!(["example.com/keep"]));
    assert_eq!(rs["metadata"]["labels"], json!({"touched": "yes"}));
}

// ---- orphan ----

#[test]
fn orphan_deletion_removes_the_owner_reference_from_dependents_then_the_finalizer() {
    init(Value::Null);
    let cm_ref = owner_ref("v1", "ConfigMap", "other-owner", "cm1", false);
    let api = Api::new(vec![
        deployment("web", "d1"),
        replicaset("web-1", "rs1", Some(("web", "d1"))),
        pod("web-1-a", "p1", vec![rs_ref("web-1", "rs1")]),
        pod(
            "web-1-b",
            "p2",
            vec![rs_ref("web-1", "rs1"), cm_ref.clone()],
        ),
        obj("v1", "ConfigMap", "other-owner", "cm1", vec![]),
    ]);
    let _g = api.install();
    // `kubectl delete rs web-1 --cascade=orphan`.
    let orphan = DeleteOptions {
        propagation: Some(Propagation::Orphan),
        ..Default::default()
    };
    cluster::delete_with("apps/v1", "ReplicaSet", Some(NS), "web-1", &orphan).unwrap();
    assert!(has_finalizer(
        &api.get_ns("ReplicaSet", "web-1"),
        ORPHAN_FINALIZER
    ));
    assert_eq!(reconcile(&api, "ReplicaSet", "web-1"), Ok(Action::Done));
    assert!(!api.exists("ReplicaSet", "web-1"), "the ReplicaSet is gone");
    let a = api.get_ns("Pod", "web-1-a");
    assert!(a["metadata"].get("ownerReferences").is_none());
    let b = api.get_ns("Pod", "web-1-b");
    assert_eq!(b["metadata"]["ownerReferences"], json!([cm_ref]));
    // The orphans stay; the Deployment is untouched.
    settle(&api);
    assert!(api.exists("Pod", "web-1-a"));
    assert!(api.exists("Pod", "web-1-b"));
    assert!(api.exists("Deployment", "web"));
}

#[test]
fn orphaning_a_deployment_keeps_its_replicasets_and_pods() {
    init(Value::Null);
    let api = Api::new(vec![
        deployment("web", "d1"),
        replicaset("web-1", "rs1", Some(("web", "d1"))),
        pod("web-1-a", "p1", vec![rs_ref("web-1", "rs1")]),
    ]);
    let _g = api.install();
    let orphan = DeleteOptions {
        propagation: Some(Propagation::Orphan),
        ..Default::default()
    };
    cluster::delete_with("apps/v1", "Deployment", Some(NS), "web", &orphan).unwrap();
    settle(&api);
    assert!(!api.exists("Deployment", "web"));
    let rs = api.get_ns("ReplicaSet", "web-1");
    assert!(rs["metadata"].get("ownerReferences").is_none());
    // The pod keeps its (living) ReplicaSet.
    assert_eq!(
        api.get_ns("Pod", "web-1-a")["metadata"]["ownerReferences"][0]["uid"],
        "rs1"
    );
}

#[test]
fn an_object_with_its_own_gc_finalizer_is_deleted_with_that_policy() {
    init(Value::Null);
    let mut rs = replicaset("web-1", "rs1", Some(("gone", "d0")));
    rs["metadata"]["finalizers"] = json!([ORPHAN_FINALIZER]);
    let api = Api::new(vec![rs]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "ReplicaSet", "web-1"), Ok(Action::Done));
    assert!(
        api.calls()
            .contains(&"delete ReplicaSet default/web-1 Some(Orphan)".to_string()),
        "{:?}",
        api.calls()
    );
}

#[test]
fn configured_grace_period_is_passed_on() {
    init(json!({"gracePeriodSeconds": 0}));
    let mut p = pod("running", "p1", vec![rs_ref("gone", "rs0")]);
    p["spec"] = json!({"nodeName": "n1", "terminationGracePeriodSeconds": 30});
    let api = Api::new(vec![p.clone()]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "Pod", "running"), Ok(Action::Done));
    assert!(!api.exists("Pod", "running"), "deleted at once");

    // Without it, a running pod terminates gracefully (as in Kubernetes).
    init(Value::Null);
    let api = Api::new(vec![p]);
    let _g = api.install();
    assert_eq!(reconcile(&api, "Pod", "running"), Ok(Action::Done));
    assert!(is_deleting(&api.get_ns("Pod", "running")));
}

#[test]
fn orphaning_many_dependents_is_done_in_slices() {
    init(Value::Null);
    let mut objs = vec![replicaset("big", "rs1", None)];
    for i in 0..50 {
        objs.push(pod(
            &format!("p{i}"),
            &format!("p{i}"),
            vec![rs_ref("big", "rs1")],
        ));
    }
    let api = Api::new(objs);
    let _g = api.install();
    let orphan = DeleteOptions {
        propagation: Some(Propagation::Orphan),
        ..Default::default()
    };
    cluster::delete_with("apps/v1", "ReplicaSet", Some(NS), "big", &orphan).unwrap();
    // A clock that jumps past the budget on every read: one dependent per call.
    struct Jumpy(Api, Cell<u64>);
    impl MockHost for Jumpy {
        fn now_millis(&self) -> u64 {
            let t = self.1.get() + WORK_BUDGET_MS + 1;
            self.1.set(t);
            t
        }
        fn get(
            &self,
            a: &str,
            k: &str,
            n: Option<&str>,
            m: &str,
        ) -> Result<Option<Value>, HostError> {
            self.0.get(a, k, n, m)
        }
        fn select(&self, q: &Query) -> Result<Vec<Value>, HostError> {
            self.0.select(q)
        }
        #[allow(clippy::too_many_arguments)]
        fn patch(
            &self,
            a: &str,
            k: &str,
            n: Option<&str>,
            m: &str,
            t: PatchType,
            p: &Value,
            s: Option<&str>,
        ) -> Result<Value, HostError> {
            self.0.patch(a, k, n, m, t, p, s)
        }
    }
    let _j = set_mock_host(Jumpy(api.clone(), Cell::new(NOW)));
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 100, "orphaning makes progress");
        let rs = api.get_ns("ReplicaSet", "big");
        match GarbageCollector::reconcile(&key_of(&rs), Some(&rs)).unwrap() {
            Action::RequeueAfter(_) => continue,
            Action::Done => break,
        }
    }
    assert!(calls > 1, "the work was sliced");
    assert!(!api.exists("ReplicaSet", "big"));
    assert!(
        api.fake
            .objects()
            .iter()
            .all(|o| o["metadata"].get("ownerReferences").is_none())
    );
    assert_eq!(api.fake.objects().len(), 50);
}
