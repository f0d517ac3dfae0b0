//! Native tests over a [`FakeCluster`] wrapped in [`Api`], which adds what the controller
//! relies on from the API server: resource discovery, deletion with finalizers and
//! graceful pods, the namespace's `finalize` subresource (the namespace goes once no
//! finalizer is left), resourceVersion conflicts, and a call log.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tugboat_plugin_sdk::cluster::{ApiResource, DeleteOptions, PatchType};
use tugboat_plugin_sdk::testing::{FakeCluster, MockHost, MockHostGuard, set_mock_host};

use super::*;

const NOW: u64 = 1_800_000_000_000;

#[derive(Clone)]
struct Api {
    fake: FakeCluster,
    calls: Rc<RefCell<Vec<String>>>,
    next_rv: Rc<Cell<u64>>,
    /// Deletes of objects with this name fail with 500.
    failing: Rc<RefCell<Option<String>>>,
}

fn finalizers(o: &Value) -> Vec<String> {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn rv_of(o: &Value) -> &str {
    objects::str_at(o, "/metadata/resourceVersion")
}

impl Api {
    fn new(objects: Vec<Value>) -> Self {
        let api = Api {
            fake: FakeCluster::new(),
            calls: Rc::default(),
            next_rv: Rc::new(Cell::new(100)),
            failing: Rc::default(),
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

    fn namespace(&self, name: &str) -> Option<Value> {
        self.fake.get("v1", "Namespace", None, name).unwrap()
    }

    fn names_in(&self, ns: &str) -> Vec<String> {
        self.fake
            .objects()
            .iter()
            .filter(|o| objects::namespace(o) == Some(ns))
            .map(|o| format!("{} {}", objects::str_at(o, "/kind"), objects::name(o)))
            .collect()
    }

    /// `kubectl delete namespace NAME`, as the API server does it.
    fn delete_namespace(&self, name: &str) {
        self.delete_with("v1", "Namespace", None, name, &DeleteOptions::default())
            .unwrap();
        self.calls.borrow_mut().clear();
    }

    /// Another controller removes an object's finalizers.
    fn release(&self, kind: &str, ns: &str, name: &str) {
        let mut o = self
            .fake
            .list("v1", kind, Some(ns), None)
            .unwrap()
            .into_iter()
            .find(|o| objects::name(o) == name)
            .unwrap();
        o["metadata"].as_object_mut().unwrap().remove("finalizers");
        if objects::is_deleting(&o) {
            self.fake.delete("v1", kind, Some(ns), name).unwrap();
        } else {
            self.fake.update(&self.stamp(o)).unwrap();
        }
    }
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
        self.record(format!("get {kind} {name}"));
        self.fake.get(api_version, kind, namespace, name)
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        self.record(format!("list {kind} {}", namespace.unwrap_or("*")));
        if kind == "Binding" {
            return Err(HostError::new(
                405,
                "MethodNotAllowed",
                "bindings cannot be listed",
            ));
        }
        self.fake.list(api_version, kind, namespace, selector)
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
            r("v1", "Namespace", "namespaces", false),
            r("v1", "Node", "nodes", false),
            r("v1", "Pod", "pods", true),
            r("v1", "Binding", "bindings", true),
            r("v1", "ConfigMap", "configmaps", true),
            r("v1", "Secret", "secrets", true),
            r("v1", "Endpoints", "endpoints", true),
            r("apps/v1", "Deployment", "deployments", true),
            r("example.com/v1", "Widget", "widgets", true),
        ]
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
            "patch {patch_type:?} {kind} {name} {}",
            subresource.unwrap_or("")
        ));
        assert_eq!(
            (kind, subresource, patch_type),
            ("Namespace", Some("finalize"), PatchType::Merge),
            "only namespaces are finalized, with a merge patch"
        );
        let Some(current) = self.fake.get(api_version, kind, namespace, name)? else {
            return Err(HostError::new(404, "NotFound", "no such namespace"));
        };
        if let Some(rv) = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && rv != rv_of(&current)
        {
            return Err(HostError::new(
                409,
                "Conflict",
                "the object has been modified",
            ));
        }
        // Only spec changes through `finalize`.
        let mut new = current.clone();
        new["spec"] = patch.get("spec").cloned().unwrap_or(json!({}));
        let spec_left = new
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if objects::is_deleting(&new) && !spec_left && finalizers(&new).is_empty() {
            self.fake.delete(api_version, kind, namespace, name)?;
            return Ok(new);
        }
        self.fake.update(&self.stamp(new))
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
            "delete {kind} {}/{name} {:?} grace={:?}",
            namespace.unwrap_or(""),
            options.propagation,
            options.grace_period_seconds
        ));
        if self.failing.borrow().as_deref() == Some(name) {
            return Err(HostError::new(500, "InternalError", "the store is on fire"));
        }
        let Some(current) = self.fake.get(api_version, kind, namespace, name)? else {
            return Err(HostError::new(404, "NotFound", "not found"));
        };
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
        if finalizers(&current).is_empty() && !graceful_pod && !namespace_pending {
            return self.fake.delete(api_version, kind, namespace, name);
        }
        if objects::is_deleting(&current) {
            return Ok(());
        }
        let mut new = current;
        new["metadata"]["deletionTimestamp"] = json!(cluster::rfc3339(NOW));
        if namespace_pending {
            new["status"] = json!({"phase": "Terminating"});
        }
        self.fake.update(&self.stamp(new))?;
        Ok(())
    }
}

fn ns(name: &str, finalizers: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": format!("{name}-uid")},
        "spec": {"finalizers": finalizers},
        "status": {"phase": "Active"}})
}

fn obj(api_version: &str, kind: &str, ns: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}")}})
}

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: name.into(),
    }
}

fn reconcile(api: &Api, name: &str) -> Result<Action, String> {
    let ns = api.namespace(name);
    NamespaceController::reconcile(&key(name), ns.as_ref())
}

fn init(config: Value) -> ControllerSpec {
    NamespaceController::init(&config).expect("config is valid")
}

fn team_with_content() -> Vec<Value> {
    vec![
        ns("team", &["kubernetes"]),
        ns("other", &["kubernetes"]),
        obj("v1", "ConfigMap", "team", "settings"),
        obj("v1", "Secret", "team", "token"),
        obj("v1", "Endpoints", "team", "web"),
        obj("apps/v1", "Deployment", "team", "web"),
        obj("example.com/v1", "Widget", "team", "gizmo"),
        obj("v1", "Pod", "team", "unscheduled"),
        obj("v1", "ConfigMap", "other", "settings"),
        obj("example.com/v1", "Widget", "other", "gizmo"),
    ]
}

#[test]
fn init_is_for_namespaces_and_reads_its_config() {
    let spec = init(Value::Null);
    assert_eq!(spec.kinds.len(), 1);
    assert_eq!(
        (
            spec.kinds[0].api_version.as_str(),
            spec.kinds[0].kind.as_str()
        ),
        ("v1", "Namespace")
    );
    assert!(spec.watches.is_empty());
    init(json!({"gracePeriodSeconds": 0}));
    assert_eq!(config().grace_period_seconds, Some(0));
    for bad in [
        json!({"gracePeriodSeconds": -1}),
        json!({"grace": 0}),
        json!("x"),
    ] {
        assert!(NamespaceController::init(&bad).is_err(), "{bad} is refused");
    }
}

#[test]
fn a_namespace_not_being_deleted_costs_nothing() {
    init(Value::Null);
    let api = Api::new(team_with_content());
    let _g = api.install();
    assert_eq!(reconcile(&api, "team"), Ok(Action::Done));
    assert_eq!(api.calls(), Vec::<String>::new());
    assert_eq!(
        NamespaceController::reconcile(&key("gone"), None),
        Ok(Action::Done)
    );
    assert_eq!(api.names_in("team").len(), 6);
}

#[test]
fn deleting_a_namespace_empties_it_then_removes_it() {
    init(Value::Null);
    let api = Api::new(team_with_content());
    let _g = api.install();
    api.delete_namespace("team");
    let terminating = api.namespace("team").unwrap();
    assert_eq!(terminating["status"]["phase"], "Terminating");

    assert_eq!(reconcile(&api, "team"), Ok(Action::Done));
    assert_eq!(api.names_in("team"), Vec::<String>::new());
    assert!(api.namespace("team").is_none(), "the namespace is gone");
    // Everything was deleted in the background, custom resources included.
    let calls = api.calls();
    for want in [
        "delete ConfigMap team/settings Some(Background) grace=None",
        "delete Deployment team/web Some(Background) grace=None",
        "delete Widget team/gizmo Some(Background) grace=None",
        "delete Endpoints team/web Some(Background) grace=None",
        "patch Merge Namespace team finalize",
    ] {
        assert!(calls.contains(&want.to_string()), "{want}: {calls:?}");
    }
    // Cluster-scoped types are not listed; the other namespace is untouched.
    assert!(!calls.iter().any(|c| c.starts_with("list Node")));
    assert!(!calls.iter().any(|c| c.contains("other")), "{calls:?}");
    assert_eq!(
        api.names_in("other"),
        vec!["ConfigMap settings", "Widget gizmo"]
    );
    assert!(api.namespace("other").is_some());
}

#[test]
fn a_namespace_waits_for_content_with_finalizers_then_goes() {
    init(Value::Null);
    let mut held = obj("v1", "ConfigMap", "team", "held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let mut objs = team_with_content();
    objs.push(held);
    let api = Api::new(objs);
    let _g = api.install();
    api.delete_namespace("team");

    assert_eq!(reconcile(&api, "team"), Ok(Action::RequeueAfter(RECHECK)));
    assert_eq!(api.names_in("team"), vec!["ConfigMap held"]);
    let ns = api.namespace("team").unwrap();
    assert_eq!(
        ns["spec"]["finalizers"],
        json!(["kubernetes"]),
        "not finalized yet"
    );
    let held = &api
        .fake
        .list("v1", "ConfigMap", Some("team"), None)
        .unwrap()[0];
    assert!(
        objects::is_deleting(held),
        "the held object is being deleted"
    );
    assert!(
        api.fake
            .logs()
            .iter()
            .any(|(_, m)| m.contains("1 ConfigMap (v1) held by finalizers example.com/hold")),
        "{:?}",
        api.fake.logs()
    );

    // Still there on the next look; it is not deleted twice.
    api.calls.borrow_mut().clear();
    assert_eq!(reconcile(&api, "team"), Ok(Action::RequeueAfter(RECHECK)));
    assert!(
        !api.calls().iter().any(|c| c.starts_with("delete")),
        "{:?}",
        api.calls()
    );

    // Its finalizer goes: so does the namespace.
    api.release("ConfigMap", "team", "held");
    assert_eq!(reconcile(&api, "team"), Ok(Action::Done));
    assert!(api.namespace("team").is_none());
}

#[test]
fn terminating_pods_are_waited_for_unless_a_grace_period_is_configured() {
    init(Value::Null);
    let mut running = obj("v1", "Pod", "team", "running");
    running["spec"] = json!({"nodeName": "node-1", "terminationGracePeriodSeconds": 30});
    let api = Api::new(vec![ns("team", &["kubernetes"]), running.clone()]);
    let _g = api.install();
    api.delete_namespace("team");
    assert_eq!(reconcile(&api, "team"), Ok(Action::RequeueAfter(RECHECK)));
    let pods = api.fake.list("v1", "Pod", Some("team"), None).unwrap();
    assert!(objects::is_deleting(&pods[0]), "terminating gracefully");

    // With gracePeriodSeconds: 0 the terminating pod is deleted again, at once.
    init(json!({"gracePeriodSeconds": 0}));
    assert_eq!(reconcile(&api, "team"), Ok(Action::Done));
    assert!(
        api.calls()
            .contains(&"delete Pod team/running Some(Background) grace=Some(0)".to_string())
    );
    assert!(api.namespace("team").is_none());
}

#[test]
fn other_spec_finalizers_are_kept() {
    init(Value::Null);
    let api = Api::new(vec![
        ns("team", &["kubernetes", "example.com/audit"]),
        obj("v1", "Secret", "team", "token"),
    ]);
    let _g = api.install();
    api.delete_namespace("team");
    assert_eq!(reconcile(&api, "team"), Ok(Action::Done));
    let ns = api.namespace("team").expect("another finalizer holds it");
    assert_eq!(ns["spec"]["finalizers"], json!(["example.com/audit"]));
    assert!(api.names_in("team").is_empty());
    // Our part is done: nothing more to do.
    api.calls.borrow_mut().clear();
    assert_eq!(reconcile(&api, "team"), Ok(Action::Done));
    assert_eq!(api.calls(), Vec::<String>::new());
}

#[test]
fn finalizing_is_guarded_by_the_resource_version() {
    init(Value::Null);
    let api = Api::new(vec![ns("team", &["kubernetes"])]);
    let _g = api.install();
    api.delete_namespace("team");
    let stale = api.namespace("team").unwrap();
    let mut newer = stale.clone();
    newer["metadata"]["labels"] = json!({"touched": "yes"});
    api.fake.update(&api.stamp(newer)).unwrap();
    let err = NamespaceController::reconcile(&key("team"), Some(&stale)).unwrap_err();
    assert!(err.contains("Conflict"), "{err}");
    assert!(api.namespace("team").is_some());
    assert_eq!(reconcile(&api, "team"), Ok(Action::Done));
    assert!(api.namespace("team").is_none());
}

#[test]
fn a_failed_delete_is_retried_and_the_namespace_kept() {
    init(Value::Null);
    let api = Api::new(team_with_content());
    let _g = api.install();
    api.delete_namespace("team");
    *api.failing.borrow_mut() = Some("token".into());
    let err = reconcile(&api, "team").unwrap_err();
    assert!(err.contains("deleting Secret team/token"), "{err}");
    // Everything else went; the namespace stays until the rest can go.
    assert_eq!(api.names_in("team"), vec!["Secret token"]);
    assert!(api.namespace("team").is_some());
    *api.failing.borrow_mut() = None;
    assert_eq!(reconcile(&api, "team"), Ok(Action::Done));
    assert!(api.namespace("team").is_none());
}

#[test]
fn types_that_cannot_be_listed_are_skipped() {
    init(Value::Null);
    let api = Api::new(vec![ns("team", &["kubernetes"])]);
    let _g = api.install();
    api.delete_namespace("team");
    assert_eq!(reconcile(&api, "team"), Ok(Action::Done));
    assert!(api.calls().contains(&"list Binding team".to_string()));
    assert!(api.namespace("team").is_none());
}

#[test]
fn a_large_namespace_is_emptied_in_slices() {
    init(Value::Null);
    let mut objs = vec![ns("big", &["kubernetes"])];
    for i in 0..30 {
        objs.push(obj("v1", "ConfigMap", "big", &format!("cm-{i}")));
    }
    let api = Api::new(objs);
    let _g = api.install();
    api.delete_namespace("big");
    // A clock that jumps past the budget on every read: one delete per call.
    struct Jumpy(Api, Cell<u64>);
    impl MockHost for Jumpy {
        fn now_millis(&self) -> u64 {
            let t = self.1.get() + WORK_BUDGET_MS / 2 + 1;
            self.1.set(t);
            t
        }
        fn api_resources(&self) -> Vec<ApiResource> {
            self.0.api_resources()
        }
        fn list(
            &self,
            a: &str,
            k: &str,
            n: Option<&str>,
            s: Option<&str>,
        ) -> Result<Vec<Value>, HostError> {
            self.0.list(a, k, n, s)
        }
        fn delete_with(
            &self,
            a: &str,
            k: &str,
            n: Option<&str>,
            m: &str,
            o: &DeleteOptions,
        ) -> Result<(), HostError> {
            self.0.delete_with(a, k, n, m, o)
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
        assert!(calls < 100, "emptying makes progress");
        match reconcile(&api, "big").unwrap() {
            Action::RequeueAfter(d) => assert_eq!(d, Duration::from_millis(1)),
            Action::Done => break,
        }
    }
    assert!(calls > 10, "the work was sliced ({calls} calls)");
    assert!(api.namespace("big").is_none());
    assert!(api.fake.objects().is_empty());
}
