//! The Rust client library `kube` against a freshly started `tug server` process: typed
//! CRUD, selectors and pagination, conflicts, watches, every patch type, server-side apply,
//! the scale and status subresources, generation, finalizers, custom resources through
//! `DynamicObject`, and discovery.
//!
//! Every test starts its own server (a child process killed on drop) and builds its
//! `kube::Client` from the server's `DATA/kubeconfig`, as a user's program would.

mod support_kube;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use support_kube::{TugServer, api_status};

const NS: &str = "default";
/// How long to wait for one watch event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn configmap(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let data: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data,
    }))
    .expect("a ConfigMap")
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "app", "image": "registry.example/app:1", "ports": [{"containerPort": 8080}]}
                ]}
            }
        }
    }))
    .expect("a Deployment")
}

fn data_of(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

fn rv(o: &impl ResourceExt) -> String {
    o.resource_version().expect("a resourceVersion")
}

fn rv_num(o: &impl ResourceExt) -> u64 {
    rv(o).parse().expect("a numeric resourceVersion")
}

fn generation(d: &Deployment) -> i64 {
    d.metadata.generation.expect("metadata.generation")
}

fn container_images(d: &Deployment) -> Vec<(String, String)> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// The next non-bookmark watch event, failing the test after [`EVENT_TIMEOUT`].
async fn next_event<K>(
    stream: &mut (impl Stream<Item = Result<WatchEvent<K>, kube::Error>> + Unpin),
) -> WatchEvent<K> {
    loop {
        let ev = tokio::time::timeout(EVENT_TIMEOUT, stream.next())
            .await
            .expect("no watch event within the timeout")
            .expect("the watch stream ended")
            .expect("the watch stream failed");
        if !matches!(ev, WatchEvent::Bookmark(_)) {
            return ev;
        }
    }
}

fn event_summary<K: ResourceExt>(ev: &WatchEvent<K>) -> (String, String) {
    match ev {
        WatchEvent::Added(o) => ("ADDED".into(), o.name_any()),
        WatchEvent::Modified(o) => ("MODIFIED".into(), o.name_any()),
        WatchEvent::Deleted(o) => ("DELETED".into(), o.name_any()),
        WatchEvent::Bookmark(_) => ("BOOKMARK".into(), String::new()),
        WatchEvent::Error(s) => (
            "ERROR".into(),
            format!("{} {} {}", s.code, s.reason, s.message),
        ),
    }
}

async fn start() -> (TugServer, Client) {
    let server = TugServer::start();
    let client = server.client().await;
    (server, client)
}

#[tokio::test]
async fn typed_create_get_list_with_selectors_and_pagination() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);

    let mut expected = vec![];
    for i in 0..25 {
        let name = format!("cm-{i:02}");
        let tier = if i % 2 == 0 { "a" } else { "b" };
        let extra: &[(&str, &str)] = if i % 5 == 0 {
            &[("tier", tier), ("five", "yes")]
        } else {
            &[("tier", tier)]
        };
        let created = cms
            .create(
                &PostParams::default(),
                &configmap(&name, extra, &[("i", &i.to_string())]),
            )
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
        assert_eq!(created.name_any(), name);
        assert_eq!(created.namespace().as_deref(), Some(NS));
        assert!(
            created.uid().is_some_and(|u| !u.is_empty()),
            "created object has a uid"
        );
        assert!(
            created.creation_timestamp().is_some(),
            "created object has a creationTimestamp"
        );
        assert_eq!(
            data_of(&created).get("i").map(String::as_str),
            Some(i.to_string().as_str())
        );
        expected.push(name);
    }

    // get
    let got = cms.get("cm-07").await.expect("get cm-07");
    assert_eq!(data_of(&got).get("i").map(String::as_str), Some("7"));
    assert_eq!(got.labels().get("tier").map(String::as_str), Some("b"));

    // list everything, in name order (a real cluster also has kube-root-ca.crt)
    let all = cms.list(&ListParams::default()).await.expect("list");
    let names: Vec<String> = all
        .items
        .iter()
        .map(ResourceExt::name_any)
        .filter(|n| n.starts_with("cm-"))
        .collect();
    assert_eq!(names, expected);
    let list_rv: u64 = all
        .metadata
        .resource_version
        .as_deref()
        .expect("list resourceVersion")
        .parse()
        .expect("numeric");
    assert!(
        all.items.iter().all(|o| rv_num(o) <= list_rv),
        "the list's resourceVersion is at least every item's"
    );

    // label selectors: equality, inequality, set-based, existence
    let select = |sel: &str| {
        let cms = cms.clone();
        let sel = sel.to_string();
        async move {
            let l = cms
                .list(&ListParams::default().labels(&sel))
                .await
                .unwrap_or_else(|e| panic!("list -l {sel}: {e}"));
            l.items
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>()
        }
    };
    let evens: Vec<String> = (0..25).step_by(2).map(|i| format!("cm-{i:02}")).collect();
    let odds: Vec<String> = (1..25).step_by(2).map(|i| format!("cm-{i:02}")).collect();
    let fives: Vec<String> = (0..25).step_by(5).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(select("tier=a").await, evens);
    assert_eq!(select("tier==a").await, evens);
    assert_eq!(select("tier!=a").await, odds);
    assert_eq!(select("tier in (b)").await, odds);
    assert_eq!(select("tier notin (a)").await, odds);
    assert_eq!(select("five").await, fives);
    assert_eq!(select("!five").await.len(), 25 - fives.len());
    assert_eq!(select("tier=a,five=yes").await, ["cm-00", "cm-10", "cm-20"]);
    assert!(select("tier=c").await.is_empty());

    // field selector on metadata.name
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=cm-03"))
        .await
        .expect("list by field");
    assert_eq!(
        by_name
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>(),
        ["cm-03"]
    );

    // pagination with continue tokens (over the 25 objects this test made)
    let mut lp = ListParams::default().labels("tier").limit(7);
    let mut paged = vec![];
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.expect("a page");
        pages += 1;
        assert!(
            page.items.len() <= 7,
            "page {pages} has {} items",
            page.items.len()
        );
        paged.extend(page.items.iter().map(ResourceExt::name_any));
        let cont = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        match cont {
            Some(c) => {
                assert_eq!(page.items.len(), 7, "a page that is not the last is full");
                lp = lp.continue_token(&c);
            }
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 4);
    assert_eq!(paged, expected);

    // pagination with a selector still yields exactly the selected objects
    let mut lp = ListParams::default().labels("tier=b").limit(5);
    let mut paged = vec![];
    loop {
        let page = cms.list(&lp).await.expect("a selected page");
        assert!(page.items.len() <= 5);
        paged.extend(page.items.iter().map(ResourceExt::name_any));
        match page.metadata.continue_.clone().filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(paged, odds);

    // the default namespaces exist and are listed cluster-wide
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns_names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .expect("namespaces")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            ns_names.iter().any(|n| n == want),
            "namespace {want} in {ns_names:?}"
        );
    }
    // an all-namespaces list of ConfigMaps sees the same 25
    let everywhere: Api<ConfigMap> = Api::all(client);
    assert_eq!(
        everywhere
            .list(&ListParams::default().labels("tier"))
            .await
            .expect("list all")
            .items
            .len(),
        25
    );
}

#[tokio::test]
async fn unfiltered_pages_report_the_remaining_item_count() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    for i in 0..20 {
        cms.create(
            &PostParams::default(),
            &configmap(&format!("page-{i:02}"), &[], &[]),
        )
        .await
        .expect("create");
    }
    let all = cms.list(&ListParams::default()).await.expect("list");
    let total = all.items.len() as i64;
    assert!(total >= 20);

    let mut lp = ListParams::default().limit(6);
    let mut seen: Vec<String> = vec![];
    let mut list_rv = None;
    loop {
        let page = cms.list(&lp).await.expect("a page");
        seen.extend(page.items.iter().map(ResourceExt::name_any));
        let rv = page.metadata.resource_version.clone();
        assert!(
            list_rv.is_none() || list_rv == rv,
            "the pages of one list share its resourceVersion"
        );
        list_rv = rv;
        match page.metadata.continue_.clone().filter(|c| !c.is_empty()) {
            Some(c) => {
                assert_eq!(
                    page.metadata.remaining_item_count,
                    Some(total - seen.len() as i64),
                    "remainingItemCount after {} of {total} items counts what follows this page",
                    seen.len()
                );
                lp = lp.continue_token(&c);
            }
            None => {
                assert_eq!(page.metadata.remaining_item_count, None, "the last page");
                break;
            }
        }
    }
    let all_names: Vec<String> = all.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(seen, all_names);
}

#[tokio::test]
async fn replace_with_stale_resource_version_conflicts() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let created = cms
        .create(
            &PostParams::default(),
            &configmap("stale", &[], &[("v", "1")]),
        )
        .await
        .expect("create");
    let first_rv = rv(&created);

    let mut next = created.clone();
    next.data = Some(BTreeMap::from([("v".to_string(), "2".to_string())]));
    let replaced = cms
        .replace("stale", &PostParams::default(), &next)
        .await
        .expect("replace with the current resourceVersion");
    assert_eq!(data_of(&replaced)["v"], "2");
    assert!(
        rv_num(&replaced) > first_rv.parse::<u64>().unwrap(),
        "a write bumps the resourceVersion"
    );

    // The same object again: its resourceVersion is now stale.
    let mut stale = created.clone();
    stale.data = Some(BTreeMap::from([("v".to_string(), "3".to_string())]));
    let st = api_status(
        cms.replace("stale", &PostParams::default(), &stale).await,
        "replace with a stale resourceVersion",
    );
    assert_eq!(st.code, 409, "{st:?}");
    assert_eq!(st.reason, "Conflict", "{st:?}");
    assert!(!st.message.is_empty());
    // Nothing changed.
    let now = cms.get("stale").await.expect("get");
    assert_eq!(data_of(&now)["v"], "2");
    assert_eq!(rv(&now), rv(&replaced));

    // A replace without a resourceVersion is an unconditional update.
    let mut blind = now.clone();
    blind.metadata.resource_version = None;
    blind.data = Some(BTreeMap::from([("v".to_string(), "4".to_string())]));
    let blind = cms
        .replace("stale", &PostParams::default(), &blind)
        .await
        .expect("replace without resourceVersion");
    assert_eq!(data_of(&blind)["v"], "4");
}

#[tokio::test]
async fn create_twice_is_already_exists_and_missing_is_not_found() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    cms.create(&PostParams::default(), &configmap("twice", &[], &[]))
        .await
        .expect("first create");
    let st = api_status(
        cms.create(&PostParams::default(), &configmap("twice", &[], &[]))
            .await,
        "second create",
    );
    assert_eq!(st.code, 409, "{st:?}");
    assert_eq!(st.reason, "AlreadyExists", "{st:?}");
    assert_eq!(
        st.details.as_ref().map(|d| d.name.as_str()),
        Some("twice"),
        "{st:?}"
    );

    let st = api_status(cms.get("missing").await, "get of a missing object");
    assert_eq!(st.code, 404, "{st:?}");
    assert_eq!(st.reason, "NotFound", "{st:?}");
    assert!(cms.get_opt("missing").await.expect("get_opt").is_none());

    let st = api_status(
        cms.delete("missing", &DeleteParams::default()).await,
        "delete of a missing object",
    );
    assert_eq!(st.code, 404, "{st:?}");
}

#[tokio::test]
async fn watch_sees_added_modified_deleted() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    cms.create(
        &PostParams::default(),
        &configmap("before", &[("w", "1")], &[]),
    )
    .await
    .expect("create before");
    let list = cms.list(&ListParams::default()).await.expect("list");
    let from = list.metadata.resource_version.clone().expect("list rv");

    let mut stream = cms
        .watch(&WatchParams::default().timeout(60), &from)
        .await
        .expect("watch")
        .boxed();

    let created = cms
        .create(
            &PostParams::default(),
            &configmap("w1", &[("w", "1")], &[("k", "1")]),
        )
        .await
        .expect("create");
    let patched = cms
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "2"}})),
        )
        .await
        .expect("patch");
    cms.delete("w1", &DeleteParams::default())
        .await
        .expect("delete");

    match next_event(&mut stream).await {
        WatchEvent::Added(o) => {
            assert_eq!(o.name_any(), "w1");
            assert_eq!(rv(&o), rv(&created));
        }
        other => panic!("expected ADDED w1, got {:?}", event_summary(&other)),
    }
    match next_event(&mut stream).await {
        WatchEvent::Modified(o) => {
            assert_eq!(o.name_any(), "w1");
            assert_eq!(data_of(&o)["k"], "2");
            assert_eq!(rv(&o), rv(&patched));
        }
        other => panic!("expected MODIFIED w1, got {:?}", event_summary(&other)),
    }
    match next_event(&mut stream).await {
        WatchEvent::Deleted(o) => {
            assert_eq!(o.name_any(), "w1");
            assert!(
                rv_num(&o) > rv_num(&patched),
                "a DELETED event carries the deletion's revision"
            );
        }
        other => panic!("expected DELETED w1, got {:?}", event_summary(&other)),
    }

    // A label-selected watch from "0" first replays the current state as ADDED.
    let mut sel = cms
        .watch(&WatchParams::default().labels("w=1").timeout(60), "0")
        .await
        .expect("watch from 0")
        .boxed();
    match next_event(&mut sel).await {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "before"),
        other => panic!("expected ADDED before, got {:?}", event_summary(&other)),
    }
    // Objects that do not match the selector are not delivered.
    cms.create(
        &PostParams::default(),
        &configmap("other", &[("w", "2")], &[]),
    )
    .await
    .expect("create other");
    cms.create(&PostParams::default(), &configmap("w2", &[("w", "1")], &[]))
        .await
        .expect("create w2");
    match next_event(&mut sel).await {
        WatchEvent::Added(o) => assert_eq!(o.name_any(), "w2"),
        other => panic!("expected ADDED w2, got {:?}", event_summary(&other)),
    }
    // Relabelling out of the selection is a DELETED for this watch.
    cms.patch(
        "w2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"w": "3"}}})),
    )
    .await
    .expect("relabel");
    match next_event(&mut sel).await {
        WatchEvent::Deleted(o) => assert_eq!(o.name_any(), "w2"),
        other => panic!(
            "expected DELETED w2 (relabelled), got {:?}",
            event_summary(&other)
        ),
    }
}

#[tokio::test]
async fn runtime_watcher_follows_configmaps() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    cms.create(
        &PostParams::default(),
        &configmap("pre", &[("rw", "1")], &[]),
    )
    .await
    .expect("create pre");

    let mut stream = watcher(cms.clone(), watcher::Config::default().labels("rw=1")).boxed();
    let mut initial = vec![];
    loop {
        let ev = tokio::time::timeout(EVENT_TIMEOUT, stream.try_next())
            .await
            .expect("watcher event in time")
            .expect("watcher error")
            .expect("watcher stream ended");
        match ev {
            watcher::Event::Init => {}
            watcher::Event::InitApply(o) => initial.push(o.name_any()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected event during the initial list: {other:?}"),
        }
    }
    assert_eq!(initial, ["pre"]);

    cms.create(
        &PostParams::default(),
        &configmap("post", &[("rw", "1")], &[("x", "1")]),
    )
    .await
    .expect("create post");
    let ev = tokio::time::timeout(EVENT_TIMEOUT, stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    match ev {
        watcher::Event::Apply(o) => assert_eq!(o.name_any(), "post"),
        other => panic!("expected Apply(post), got {other:?}"),
    }
    cms.delete("pre", &DeleteParams::default())
        .await
        .expect("delete pre");
    let ev = tokio::time::timeout(EVENT_TIMEOUT, stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    match ev {
        watcher::Event::Delete(o) => assert_eq!(o.name_any(), "pre"),
        other => panic!("expected Delete(pre), got {other:?}"),
    }
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let pp = PatchParams::default();
    cms.create(
        &PostParams::default(),
        &configmap("p", &[("keep", "me")], &[("a", "1"), ("b", "2")]),
    )
    .await
    .expect("create");

    // JSON merge patch: set, add and remove (null) keys.
    let merged = cms
        .patch("p", &pp, &Patch::Merge(json!({"data": {"a": "10", "b": null, "c": "3"}, "metadata": {"labels": {"new": "l"}}})))
        .await
        .expect("merge patch");
    assert_eq!(
        data_of(&merged),
        BTreeMap::from([("a".into(), "10".into()), ("c".into(), "3".into())])
    );
    assert_eq!(merged.labels().get("keep").map(String::as_str), Some("me"));
    assert_eq!(merged.labels().get("new").map(String::as_str), Some("l"));

    // JSON patch: test, replace, add, remove, copy, move.
    let ops: Patch<()> = Patch::Json(
        serde_json::from_value(json!([
            {"op": "test", "path": "/data/a", "value": "10"},
            {"op": "replace", "path": "/data/a", "value": "11"},
            {"op": "add", "path": "/data/d", "value": "4"},
            {"op": "remove", "path": "/data/c"},
            {"op": "copy", "from": "/data/d", "path": "/data/e"},
            {"op": "move", "from": "/data/e", "path": "/data/f"},
        ]))
        .expect("a JSON patch"),
    );
    let jp = cms.patch("p", &pp, &ops).await.expect("json patch");
    assert_eq!(
        data_of(&jp),
        BTreeMap::from([
            ("a".into(), "11".into()),
            ("d".into(), "4".into()),
            ("f".into(), "4".into())
        ])
    );
    // A failing `test` operation rejects the whole patch and changes nothing.
    let failing: Patch<()> = Patch::Json(
        serde_json::from_value(json!([
            {"op": "replace", "path": "/data/a", "value": "12"},
            {"op": "test", "path": "/data/a", "value": "nope"},
        ]))
        .expect("a JSON patch"),
    );
    let st = api_status(
        cms.patch("p", &pp, &failing).await,
        "a JSON patch whose test fails",
    );
    assert_eq!(st.code, 422, "{st:?}");
    assert_eq!(data_of(&cms.get("p").await.expect("get"))["a"], "11");
    assert_eq!(rv(&cms.get("p").await.expect("get")), rv(&jp));
    // A JSON patch with a resourceVersion test on a stale version fails too.
    let stale_rv: Patch<()> = Patch::Json(
        serde_json::from_value(
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}]),
        )
        .expect("a JSON patch"),
    );
    assert_eq!(
        api_status(cms.patch("p", &pp, &stale_rv).await, "stale rv test").code,
        422
    );

    // Strategic merge patch on a Deployment: containers merge by name.
    let deps: Api<Deployment> = Api::namespaced(client, NS);
    deps.create(&PostParams::default(), &deployment("web", 1))
        .await
        .expect("create deployment");
    let added = deps
        .patch(
            "web",
            &pp,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "registry.example/sidecar:1"}
            ]}}}})),
        )
        .await
        .expect("strategic patch adding a container");
    let mut images = container_images(&added);
    images.sort();
    assert_eq!(
        images,
        [
            ("app".to_string(), "registry.example/app:1".to_string()),
            (
                "sidecar".to_string(),
                "registry.example/sidecar:1".to_string()
            )
        ],
        "a strategic merge patch merges containers by name instead of replacing the list"
    );
    let bumped = deps
        .patch(
            "web",
            &pp,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "registry.example/app:2"}
            ]}}}})),
        )
        .await
        .expect("strategic patch changing one image");
    let images: BTreeMap<String, String> = container_images(&bumped).into_iter().collect();
    assert_eq!(images["app"], "registry.example/app:2");
    assert_eq!(images["sidecar"], "registry.example/sidecar:1");
    // The untouched fields of the merged container survive.
    let ports = bumped
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .find(|c| c.name == "app")
                .and_then(|c| c.ports.clone())
                .unwrap_or_default()
        });
    assert_eq!(
        ports.map(|p| p.iter().map(|p| p.container_port).collect::<Vec<_>>()),
        Some(vec![8080])
    );
    // `$patch: delete` removes one element of a merged list.
    let deleted = deps
        .patch(
            "web",
            &pp,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "$patch": "delete"}
            ]}}}})),
        )
        .await
        .expect("strategic patch deleting a container");
    assert_eq!(
        container_images(&deleted),
        [("app".to_string(), "registry.example/app:2".to_string())]
    );
    // A JSON merge patch of the same list replaces it (no merge keys).
    let replaced = deps
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "only", "image": "registry.example/only:1"}
            ]}}}})),
        )
        .await
        .expect("merge patch replacing the list");
    assert_eq!(
        container_images(&replaced),
        [("only".to_string(), "registry.example/only:1".to_string())]
    );
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let cfg = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data});

    // Apply creates the object.
    let created = cms
        .patch(
            "ssa",
            &PatchParams::apply("mgr"),
            &Patch::Apply(cfg(json!({"a": "1", "b": "x"}))),
        )
        .await
        .expect("apply creating the object");
    assert_eq!(
        data_of(&created),
        BTreeMap::from([("a".into(), "1".into()), ("b".into(), "x".into())])
    );
    let mf = created.metadata.managed_fields.clone().unwrap_or_default();
    let entry = mf
        .iter()
        .find(|e| e.manager.as_deref() == Some("mgr"))
        .unwrap_or_else(|| panic!("a managedFields entry for mgr: {mf:?}"));
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    let fields = entry
        .fields_v1
        .as_ref()
        .map(|f| f.0.clone())
        .unwrap_or(Value::Null);
    assert!(
        fields.pointer("/f:data/f:a").is_some() && fields.pointer("/f:data/f:b").is_some(),
        "mgr owns data.a and data.b: {fields}"
    );

    // Another manager setting a field mgr owns to a different value conflicts.
    let st = api_status(
        cms.patch(
            "ssa",
            &PatchParams::apply("other"),
            &Patch::Apply(cfg(json!({"a": "2"}))),
        )
        .await,
        "a conflicting apply",
    );
    assert_eq!(st.code, 409, "{st:?}");
    assert_eq!(st.reason, "Conflict", "{st:?}");
    assert!(
        st.message.contains("mgr"),
        "the conflict names the owning manager: {}",
        st.message
    );
    assert_eq!(
        data_of(&cms.get("ssa").await.expect("get"))["a"],
        "1",
        "a conflicting apply changes nothing"
    );

    // Applying the same value is no conflict: the field becomes shared.
    cms.patch(
        "ssa",
        &PatchParams::apply("sharer"),
        &Patch::Apply(cfg(json!({"b": "x"}))),
    )
    .await
    .expect("applying an equal value shares ownership");

    // Forced, the other manager takes the field.
    let forced = cms
        .patch(
            "ssa",
            &PatchParams::apply("other").force(),
            &Patch::Apply(cfg(json!({"a": "2"}))),
        )
        .await
        .expect("forced apply");
    assert_eq!(data_of(&forced)["a"], "2");
    let mf = forced.metadata.managed_fields.clone().unwrap_or_default();
    let owner_of_a: Vec<&str> = mf
        .iter()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:data/f:a").is_some())
        })
        .filter_map(|e| e.manager.as_deref())
        .collect();
    assert_eq!(
        owner_of_a,
        ["other"],
        "after a forced apply only `other` owns data.a: {mf:?}"
    );

    // mgr no longer owns data.a: dropping it from its config keeps other's value.
    let after = cms
        .patch(
            "ssa",
            &PatchParams::apply("mgr"),
            &Patch::Apply(cfg(json!({"b": "x"}))),
        )
        .await
        .expect("re-apply by mgr without a");
    assert_eq!(
        data_of(&after),
        BTreeMap::from([("a".into(), "2".into()), ("b".into(), "x".into())])
    );
    // Once neither mgr nor sharer applies b, it is removed.
    cms.patch(
        "ssa",
        &PatchParams::apply("sharer"),
        &Patch::Apply(cfg(json!({}))),
    )
    .await
    .expect("sharer drops b");
    let after = cms
        .patch(
            "ssa",
            &PatchParams::apply("mgr"),
            &Patch::Apply(cfg(json!({}))),
        )
        .await
        .expect("mgr drops b");
    assert_eq!(
        data_of(&after),
        BTreeMap::from([("a".into(), "2".into())]),
        "a field no applier owns any more is removed"
    );

    // An apply without a field manager is rejected.
    let st = api_status(
        cms.patch(
            "ssa",
            &PatchParams::default(),
            &Patch::Apply(cfg(json!({"z": "1"}))),
        )
        .await,
        "apply without fieldManager",
    );
    assert_eq!(st.code, 400, "{st:?}");
}

#[tokio::test]
async fn noop_writes_keep_the_resource_version() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "noop"}, "data": {"a": "1"}});
    let first = cms
        .patch(
            "noop",
            &PatchParams::apply("mgr"),
            &Patch::Apply(cfg.clone()),
        )
        .await
        .expect("apply");
    let again = cms
        .patch("noop", &PatchParams::apply("mgr"), &Patch::Apply(cfg))
        .await
        .expect("same apply again");
    assert_eq!(
        rv(&again),
        rv(&first),
        "an apply that changes nothing does not write"
    );
    let merged = cms
        .patch(
            "noop",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "1"}})),
        )
        .await
        .expect("no-op merge");
    assert_eq!(
        rv(&merged),
        rv(&first),
        "a merge patch that changes nothing does not write"
    );
}

#[tokio::test]
async fn deployment_scale_subresource() {
    let (_server, client) = start().await;
    let deps: Api<Deployment> = Api::namespaced(client, NS);
    let created = deps
        .create(&PostParams::default(), &deployment("scaled", 1))
        .await
        .expect("create");
    assert_eq!(generation(&created), 1);

    let scale = deps.get_scale("scaled").await.expect("get_scale");
    assert_eq!(scale.metadata.name.as_deref(), Some("scaled"));
    assert_eq!(scale.metadata.namespace.as_deref(), Some(NS));
    assert_eq!(
        scale.metadata.uid, created.metadata.uid,
        "the Scale shares the Deployment's uid"
    );
    assert_eq!(
        scale.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(1));
    let selector = scale
        .status
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    assert_eq!(
        selector, "app=scaled",
        "Scale.status.selector is the label selector as a string"
    );

    let patched = deps
        .patch_scale(
            "scaled",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("patch_scale");
    assert_eq!(patched.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let d = deps.get("scaled").await.expect("get");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(
        generation(&d),
        2,
        "scaling changes the spec, so the generation moves"
    );
    assert_eq!(
        patched.metadata.resource_version,
        d.metadata.resource_version
    );

    // replace_scale with a stale resourceVersion conflicts.
    let mut stale = scale.clone();
    stale.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec { replicas: Some(5) });
    let st = api_status(
        deps.replace_scale("scaled", &PostParams::default(), &stale)
            .await,
        "replace_scale with a stale rv",
    );
    assert_eq!(st.code, 409, "{st:?}");
    // and with the current one it works.
    let mut cur = deps.get_scale("scaled").await.expect("get_scale");
    cur.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec { replicas: Some(0) });
    let zero = deps
        .replace_scale("scaled", &PostParams::default(), &cur)
        .await
        .expect("replace_scale");
    assert_eq!(zero.spec.as_ref().and_then(|s| s.replicas), Some(0));
    assert_eq!(
        deps.get("scaled")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(0)
    );
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let (_server, client) = start().await;
    let deps: Api<Deployment> = Api::namespaced(client, NS);
    let created = deps
        .create(&PostParams::default(), &deployment("st", 2))
        .await
        .expect("create");
    assert_eq!(generation(&created), 1);

    // patch_status changes the status only.
    let status = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2});
    let patched = deps
        .patch_status(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}, "status": status})),
        )
        .await
        .expect("patch_status");
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.ready_replicas),
        Some(2)
    );
    assert_eq!(
        patched.spec.as_ref().and_then(|s| s.replicas),
        Some(2),
        "a status write ignores spec changes"
    );
    assert_eq!(
        generation(&patched),
        1,
        "a status write does not move the generation"
    );
    assert!(rv_num(&patched) > rv_num(&created));
    let got = deps.get("st").await.expect("get");
    assert_eq!(
        got.status.as_ref().and_then(|s| s.available_replicas),
        Some(2)
    );
    assert_eq!(got.spec.as_ref().and_then(|s| s.replicas), Some(2));

    // A main-resource update ignores status changes.
    let mut upd = got.clone();
    if let Some(s) = upd.status.as_mut() {
        s.ready_replicas = Some(0);
        s.replicas = Some(7);
    }
    upd.labels_mut().insert("touched".into(), "yes".into());
    let updated = deps
        .replace("st", &PostParams::default(), &upd)
        .await
        .expect("replace");
    assert_eq!(
        updated.status.as_ref().and_then(|s| s.ready_replicas),
        Some(2),
        "an update of the main resource ignores status"
    );
    assert_eq!(updated.status.as_ref().and_then(|s| s.replicas), Some(2));
    assert_eq!(
        updated.labels().get("touched").map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        generation(&updated),
        1,
        "a metadata-only change does not move the generation"
    );

    // A merge patch of the main resource that touches status only does not change it either.
    let p = deps
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 0}})),
        )
        .await
        .expect("patch status through the main resource");
    assert_eq!(p.status.as_ref().and_then(|s| s.ready_replicas), Some(2));
    assert_eq!(generation(&p), 1);

    // Annotations: metadata only, no generation change.
    let p = deps
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"note": "x"}}})),
        )
        .await
        .expect("annotate");
    assert_eq!(generation(&p), 1);

    // A spec change moves the generation; the status stays.
    let p = deps
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .expect("spec change");
    assert_eq!(generation(&p), 2);
    assert_eq!(p.status.as_ref().and_then(|s| s.ready_replicas), Some(2));
    let p = deps
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:3"}]}}}})),
        )
        .await
        .expect("template change");
    assert_eq!(generation(&p), 3);

    // replace_status: status from the body, spec from storage.
    let mut rs = deps.get_status("st").await.expect("get_status");
    if let Some(s) = rs.status.as_mut() {
        s.observed_generation = Some(3);
    }
    if let Some(s) = rs.spec.as_mut() {
        s.replicas = Some(100);
    }
    let rs = deps
        .replace_status("st", &PostParams::default(), &rs)
        .await
        .expect("replace_status");
    assert_eq!(
        rs.status.as_ref().and_then(|s| s.observed_generation),
        Some(3)
    );
    assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(4));
    assert_eq!(generation(&rs), 3);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let mut cm = configmap("held", &[], &[("k", "v")]);
    cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let mut stream = cms
        .watch(
            &WatchParams::default()
                .fields("metadata.name=held")
                .timeout(60),
            &rv(&created),
        )
        .await
        .expect("watch")
        .boxed();

    let deleted = cms
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let obj = deleted
        .left()
        .expect("deleting an object with finalizers returns the object, not a Status");
    assert!(
        obj.metadata.deletion_timestamp.is_some(),
        "the object is marked for deletion"
    );

    let got = cms.get("held").await.expect("the object is still there");
    assert!(got.metadata.deletion_timestamp.is_some());
    assert_eq!(got.finalizers(), ["example.com/hold"]);
    match next_event(&mut stream).await {
        WatchEvent::Modified(o) => assert!(o.metadata.deletion_timestamp.is_some()),
        other => panic!(
            "expected MODIFIED with deletionTimestamp, got {:?}",
            event_summary(&other)
        ),
    }

    // Deleting again does not remove it either.
    let again = cms
        .delete("held", &DeleteParams::default())
        .await
        .expect("second delete");
    assert!(again.is_left(), "the object is still held");
    assert!(cms.get_opt("held").await.expect("get_opt").is_some());

    // Removing the finalizer lets it go.
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove the finalizer");
    let gone = async {
        loop {
            if cms.get_opt("held").await.expect("get_opt").is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("the object disappears once its finalizers are gone");
    let mut saw_deleted = false;
    for _ in 0..3 {
        match next_event(&mut stream).await {
            WatchEvent::Deleted(o) => {
                assert_eq!(o.name_any(), "held");
                saw_deleted = true;
                break;
            }
            WatchEvent::Modified(_) => {}
            other => panic!("unexpected event {:?}", event_summary(&other)),
        }
    }
    assert!(saw_deleted, "the watch saw the object deleted");
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "integer"},
                            "color": {"type": "string"}
                        }},
                        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
                    }
                }}
            }]
        }
    }))
    .expect("a CRD")
}

#[tokio::test]
async fn custom_resources_through_dynamic_object() {
    let (_server, client) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &widget_crd())
        .await
        .expect("create the CRD");

    // Wait until the CRD is established and its resource is served.
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);
    let served = async {
        loop {
            let established = crds
                .get("widgets.example.com")
                .await
                .ok()
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established && widgets.list(&ListParams::default()).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("the CRD is established and served within 30 s");

    // create / get / list
    let mut w = DynamicObject::new("w1", &ar).within(NS);
    w.data = json!({"spec": {"size": 3, "color": "red", "unknownField": "pruned"}});
    let created = widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("create a widget");
    assert_eq!(created.data["spec"]["size"], 3);
    assert_eq!(
        created.data["spec"].get("unknownField"),
        None,
        "fields outside the structural schema are pruned"
    );
    assert_eq!(
        created.types.as_ref().map(|t| t.kind.as_str()),
        Some("Widget")
    );
    assert_eq!(created.metadata.generation, Some(1));
    let got = widgets.get("w1").await.expect("get a widget");
    assert_eq!(got.data["spec"]["color"], "red");
    let list = widgets
        .list(&ListParams::default())
        .await
        .expect("list widgets");
    assert_eq!(
        list.items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>(),
        ["w1"]
    );

    // schema validation
    let mut bad = DynamicObject::new("bad", &ar).within(NS);
    bad.data = json!({"spec": {"size": "three"}});
    let st = api_status(
        widgets.create(&PostParams::default(), &bad).await,
        "a widget with a string size",
    );
    assert_eq!(st.code, 422, "{st:?}");
    assert_eq!(st.reason, "Invalid", "{st:?}");

    // patches: merge works, strategic is refused for custom resources (415)
    let p = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await
        .expect("merge patch a widget");
    assert_eq!(p.data["spec"]["size"], 4);
    assert_eq!(p.data["spec"]["color"], "red");
    assert_eq!(p.metadata.generation, Some(2));
    let st = api_status(
        widgets
            .patch(
                "w1",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 5}})),
            )
            .await,
        "strategic merge patch of a custom resource",
    );
    assert_eq!(st.code, 415, "{st:?}");
    let applied = widgets
        .patch(
            "w1",
            &PatchParams::apply("crd-mgr").force(),
            &Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"color": "blue"}})),
        )
        .await
        .expect("apply a widget");
    assert_eq!(applied.data["spec"]["color"], "blue");
    assert_eq!(applied.metadata.generation, Some(3));

    // status subresource
    let st = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}, "spec": {"size": 99}})),
        )
        .await
        .expect("patch widget status");
    assert_eq!(st.data["status"]["ready"], true);
    assert_eq!(st.data["spec"]["size"], 4);
    assert_eq!(
        st.metadata.generation,
        Some(3),
        "a status write does not move the generation"
    );

    // cluster-wide listing and deletion
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .expect("list all widgets")
            .items
            .len(),
        1
    );
    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .expect("delete a widget");
    let gone = async {
        while widgets.get_opt("w1").await.expect("get_opt").is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("the widget is deleted");

    // discovery finds the new kind
    let discovery = Discovery::new(client)
        .filter(&["example.com"])
        .run()
        .await
        .expect("discovery");
    let (found, caps) = discovery
        .resolve_gvk(&gvk)
        .expect("discovery resolves Widget");
    assert_eq!(found.plural, "widgets");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.supports_operation(verbs::PATCH));
}

#[tokio::test]
async fn discovery_runs() {
    let (_server, client) = start().await;
    let version = client.apiserver_version().await.expect("/version");
    assert_eq!(version.major, "1");
    assert_eq!(version.minor, "33");

    for aggregated in [false, true] {
        let d = Discovery::new(client.clone());
        let d = if aggregated {
            d.run_aggregated().await
        } else {
            d.run().await
        };
        let d = d.unwrap_or_else(|e| panic!("discovery (aggregated: {aggregated}): {e}"));
        for group in [
            "",
            "apps",
            "batch",
            "coordination.k8s.io",
            "discovery.k8s.io",
            "apiextensions.k8s.io",
        ] {
            assert!(
                d.has_group(group),
                "group {group:?} is discovered (aggregated: {aggregated})"
            );
        }
        let (ar, caps) = d
            .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
            .expect("Deployment");
        assert_eq!(ar.plural, "deployments");
        assert_eq!(caps.scope, Scope::Namespaced);
        for verb in [
            verbs::CREATE,
            verbs::GET,
            verbs::LIST,
            verbs::WATCH,
            verbs::PATCH,
            verbs::UPDATE,
            verbs::DELETE,
        ] {
            assert!(
                caps.supports_operation(verb),
                "Deployment supports {verb} (aggregated: {aggregated})"
            );
        }
        let subs: Vec<String> = caps
            .subresources
            .iter()
            .map(|(r, _)| r.plural.clone())
            .collect();
        assert!(
            subs.iter().any(|s| s == "scale") && subs.iter().any(|s| s == "status"),
            "Deployment subresources {subs:?}"
        );
        let (ar, caps) = d
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
            .expect("Namespace");
        assert_eq!(ar.plural, "namespaces");
        assert_eq!(caps.scope, Scope::Cluster);
        let (ar, _) = d
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
            .expect("ConfigMap");
        // The discovered resource works with a dynamic Api.
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);
        api.list(&ListParams::default())
            .await
            .expect("list ConfigMaps dynamically");
    }
}
