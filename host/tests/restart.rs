//! Durability across a crash: objects the API acknowledged survive a SIGKILL of `tug server`
//! with the same resourceVersion and data, new writes continue above the old revisions, and
//! a watch resumes from the last revision a client saw before the crash. With a short watch
//! history, a watch from a compacted revision gets 410 Expired, before and after a restart.

mod support_kube;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, ResourceExt};
use serde_json::json;
use support_kube::TugServer;

const NS: &str = "default";

/// name → (resourceVersion, data) of every object the server acknowledged.
type Acked = BTreeMap<String, (u64, BTreeMap<String, String>)>;

fn configmap(name: &str, data: &[(&str, String)]) -> ConfigMap {
    let data: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"suite": "restart"}},
        "data": data,
    }))
    .expect("a ConfigMap")
}

fn rv_num(o: &impl ResourceExt) -> u64 {
    o.resource_version()
        .expect("a resourceVersion")
        .parse()
        .expect("a numeric resourceVersion")
}

fn entry(cm: &ConfigMap) -> (u64, BTreeMap<String, String>) {
    (rv_num(cm), cm.data.clone().unwrap_or_default())
}

/// Every ConfigMap this suite made, as name → (resourceVersion, data).
async fn snapshot(cms: &Api<ConfigMap>) -> Acked {
    cms.list(&ListParams::default().labels("suite=restart"))
        .await
        .expect("list ConfigMaps")
        .items
        .iter()
        .map(|cm| (cm.name_any(), entry(cm)))
        .collect()
}

/// One watch event as (type, name, resourceVersion).
fn summary(ev: &WatchEvent<ConfigMap>) -> (String, String, u64) {
    match ev {
        WatchEvent::Added(o) => ("ADDED".into(), o.name_any(), rv_num(o)),
        WatchEvent::Modified(o) => ("MODIFIED".into(), o.name_any(), rv_num(o)),
        WatchEvent::Deleted(o) => ("DELETED".into(), o.name_any(), rv_num(o)),
        WatchEvent::Bookmark(b) => (
            "BOOKMARK".into(),
            String::new(),
            b.metadata.resource_version.parse().unwrap_or(0),
        ),
        WatchEvent::Error(s) => (
            format!("ERROR {} {}", s.code, s.reason),
            s.message.clone(),
            0,
        ),
    }
}

/// The next event that is not a bookmark.
async fn next_change(
    stream: &mut (impl Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin),
) -> WatchEvent<ConfigMap> {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("a watch event within 30 s")
            .expect("the watch stream ended early")
            .expect("the watch stream failed");
        if !matches!(ev, WatchEvent::Bookmark(_)) {
            return ev;
        }
    }
}

/// Every non-bookmark event of a watch that the server ends after `timeout_secs`.
async fn all_changes(
    cms: &Api<ConfigMap>,
    from: &str,
    timeout_secs: u32,
) -> Vec<(String, String, u64)> {
    let mut stream = cms
        .watch(&WatchParams::default().timeout(timeout_secs), from)
        .await
        .unwrap_or_else(|e| panic!("watch from {from}: {e}"))
        .boxed();
    let mut out = vec![];
    let deadline = Duration::from_secs(u64::from(timeout_secs) + 30);
    let collect = async {
        while let Some(ev) = stream.next().await {
            let ev = ev.unwrap_or_else(|e| panic!("watch from {from} failed: {e}"));
            if !matches!(ev, WatchEvent::Bookmark(_)) {
                out.push(summary(&ev));
            }
        }
    };
    tokio::time::timeout(deadline, collect)
        .await
        .expect("the server ends the watch after its timeoutSeconds");
    out
}

async fn create_many(cms: &Api<ConfigMap>, prefix: &str, n: usize, concurrency: usize) -> Acked {
    futures::stream::iter(0..n)
        .map(|i| {
            let cms = cms.clone();
            let name = format!("{prefix}-{i:03}");
            async move {
                let cm = configmap(
                    &name,
                    &[("i", i.to_string()), ("payload", "p".repeat(i % 97))],
                );
                let created = cms
                    .create(&PostParams::default(), &cm)
                    .await
                    .unwrap_or_else(|e| panic!("create {name}: {e}"));
                (name, entry(&created))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

async fn modify(cms: &Api<ConfigMap>, acked: &mut Acked, name: &str, value: &str) -> u64 {
    let cm = cms
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"changed": value}})),
        )
        .await
        .unwrap_or_else(|e| panic!("patch {name}: {e}"));
    assert_eq!(
        cm.data
            .as_ref()
            .and_then(|d| d.get("changed"))
            .map(String::as_str),
        Some(value)
    );
    acked.insert(name.to_string(), entry(&cm));
    rv_num(&cm)
}

/// Deletes `name`. The deletion's revision is not in every delete response (it may be a
/// Status), so the expected watch event carries `None` for it.
async fn delete(cms: &Api<ConfigMap>, acked: &mut Acked, name: &str) {
    cms.delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete {name}: {e}"));
    acked.remove(name);
}

async fn create_one(cms: &Api<ConfigMap>, acked: &mut Acked, name: &str) -> u64 {
    let cm = cms
        .create(
            &PostParams::default(),
            &configmap(name, &[("late", "yes".into())]),
        )
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    acked.insert(name.to_string(), entry(&cm));
    rv_num(&cm)
}

async fn restart(
    server: &mut TugServer,
    dir: &std::path::Path,
    extra: &[&str],
) -> (Client, Api<ConfigMap>) {
    server.kill();
    *server = TugServer::start_in(dir, extra);
    let client = server.client().await;
    let cms = Api::namespaced(client.clone(), NS);
    (client, cms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_and_watches_resume() {
    let dir = tempfile::tempdir().expect("a temporary data directory");
    let mut server = TugServer::start_in(dir.path(), &[]);
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);

    // A client watching the namespace from before the writes.
    let start_rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("list rv");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(300), &start_rv)
        .await
        .expect("watch")
        .boxed();

    // 200 concurrent creates, each acknowledged with its resourceVersion.
    let mut acked = create_many(&cms, "cm", 200, 32).await;
    assert_eq!(acked.len(), 200);
    let mut rvs: Vec<u64> = acked.values().map(|(rv, _)| *rv).collect();
    rvs.sort_unstable();
    rvs.dedup();
    assert_eq!(rvs.len(), 200, "every write has its own resourceVersion");

    // The watcher sees the 200 creates in revision order, with the acknowledged versions.
    let mut last_seen = 0u64;
    for _ in 0..200 {
        let ev = next_change(&mut stream).await;
        let (kind, name, rv) = summary(&ev);
        assert_eq!(kind, "ADDED", "{name}");
        assert!(
            rv > last_seen,
            "events arrive in revision order ({rv} after {last_seen})"
        );
        assert_eq!(
            acked.get(&name).map(|(r, _)| *r),
            Some(rv),
            "the ADDED event of {name} has its acknowledged version"
        );
        last_seen = rv;
    }
    drop(stream);
    let resume_from = last_seen.to_string();

    // Changes the watcher has not seen, all acknowledged before the crash.
    let mut expected_after: Vec<(String, String, Option<u64>)> = vec![];
    for i in 0..5 {
        let name = format!("cm-{i:03}");
        let rv = modify(&cms, &mut acked, &name, "before-kill").await;
        expected_after.push(("MODIFIED".into(), name, Some(rv)));
    }
    delete(&cms, &mut acked, "cm-005").await;
    expected_after.push(("DELETED".into(), "cm-005".into(), None));
    let rv = create_one(&cms, &mut acked, "extra-before").await;
    expected_after.push(("ADDED".into(), "extra-before".into(), Some(rv)));
    let max_before_kill = acked.values().map(|(rv, _)| *rv).max().unwrap_or(0);

    // Crash and come back on the same data directory.
    let pid = server.pid();
    let (_client, cms) = restart(&mut server, dir.path(), &[]).await;
    assert_ne!(server.pid(), pid);

    // Every acknowledged object is there, unchanged, and nothing else is.
    let after = snapshot(&cms).await;
    let missing: Vec<&String> = acked.keys().filter(|k| !after.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged objects lost in the crash: {missing:?}"
    );
    for (name, want) in &acked {
        assert_eq!(
            &after[name], want,
            "{name} has its acknowledged resourceVersion and data after the restart"
        );
    }
    assert_eq!(
        after.len(),
        acked.len(),
        "no extra or resurrected objects: {:?}",
        after
            .keys()
            .filter(|k| !acked.contains_key(*k))
            .collect::<Vec<_>>()
    );
    assert!(
        !after.contains_key("cm-005"),
        "a deletion acknowledged before the crash stays deleted"
    );

    // New writes get higher resourceVersions.
    let list_rv: u64 = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv")
        .parse()
        .expect("numeric");
    assert!(
        list_rv >= max_before_kill,
        "the list revision {list_rv} is not below the pre-crash {max_before_kill}"
    );
    let rv = modify(&cms, &mut acked, "cm-010", "after-restart").await;
    assert!(
        rv > max_before_kill,
        "a write after the restart ({rv}) is above every pre-crash revision ({max_before_kill})"
    );
    expected_after.push(("MODIFIED".into(), "cm-010".into(), Some(rv)));
    delete(&cms, &mut acked, "cm-011").await;
    expected_after.push(("DELETED".into(), "cm-011".into(), None));
    let rv = create_one(&cms, &mut acked, "extra-after").await;
    assert!(rv > max_before_kill);
    expected_after.push(("ADDED".into(), "extra-after".into(), Some(rv)));

    // A watch from the last revision the watcher saw delivers exactly the changes since.
    let got = all_changes(&cms, &resume_from, 3).await;
    let got_shape: Vec<(&str, &str)> = got
        .iter()
        .map(|(k, n, _)| (k.as_str(), n.as_str()))
        .collect();
    let want_shape: Vec<(&str, &str)> = expected_after
        .iter()
        .map(|(k, n, _)| (k.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        got_shape, want_shape,
        "the resumed watch delivers exactly the changes after {resume_from}"
    );
    for (g, want) in got.iter().zip(&expected_after) {
        if let Some(rv) = want.2 {
            assert_eq!(
                g.2, rv,
                "{} {} carries the acknowledged resourceVersion",
                g.0, g.1
            );
        }
    }
    let revs: Vec<u64> = got.iter().map(|e| e.2).collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "resumed events are in revision order: {revs:?}"
    );
    assert!(
        revs.first().is_some_and(|r| *r > last_seen),
        "nothing at or before {last_seen} is delivered again"
    );

    // The final state, once more, after a second crash right after the writes.
    let (_client, cms) = restart(&mut server, dir.path(), &[]).await;
    let after = snapshot(&cms).await;
    assert_eq!(
        after, acked,
        "the state after a second crash is exactly what was acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_flight_at_sigkill() {
    let dir = tempfile::tempdir().expect("a temporary data directory");
    let mut server = TugServer::start_in(dir.path(), &[]);
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);

    // 16 writers creating as fast as they can; the server is killed while they run.
    let acked_count = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) =
        tokio::sync::mpsc::unbounded_channel::<(String, (u64, BTreeMap<String, String>))>();
    let mut writers = vec![];
    for w in 0..16 {
        let cms = cms.clone();
        let tx = tx.clone();
        let count = acked_count.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..1000 {
                let name = format!("w{w:02}-{i:04}");
                let cm = configmap(&name, &[("writer", w.to_string()), ("i", i.to_string())]);
                match cms.create(&PostParams::default(), &cm).await {
                    Ok(created) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = tx.send((name, entry(&created)));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    drop(tx);
    let started = tokio::time::Instant::now();
    while acked_count.load(Ordering::SeqCst) < 100 && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(60), w).await;
    }
    let mut acked = Acked::new();
    while let Some((name, e)) = rx.recv().await {
        acked.insert(name, e);
    }
    assert!(
        acked.len() >= 100,
        "only {} writes were acknowledged before the kill",
        acked.len()
    );

    drop(server);
    let server = TugServer::start_in(dir.path(), &[]);
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, NS);
    let after = snapshot(&cms).await;
    for (name, want) in &acked {
        assert_eq!(
            after.get(name),
            Some(want),
            "{name} was acknowledged before the kill"
        );
    }
    // Writes that were not acknowledged may or may not have landed, but whole and named as sent.
    for (name, (_, data)) in after.iter().filter(|(n, _)| !acked.contains_key(*n)) {
        let (w, i) = name
            .trim_start_matches('w')
            .split_once('-')
            .expect("a writer's name");
        let writer = data.get("writer").and_then(|s| s.parse::<u32>().ok());
        let index = data.get("i").and_then(|s| s.parse::<u32>().ok());
        assert_eq!(
            (writer, index),
            (w.parse().ok(), i.parse().ok()),
            "{name} is whole: {data:?}"
        );
    }
    let unacked = after.keys().filter(|n| !acked.contains_key(*n)).count();
    eprintln!(
        "{} creates acknowledged before the kill; {unacked} more landed without an answer",
        acked.len()
    );
    // Per writer, what landed is a prefix of what it sent: a write is never durable before
    // the writes the same client made (and saw acknowledged) before it.
    for w in 0..16 {
        let mut landed: Vec<u32> = after
            .keys()
            .filter_map(|n| n.strip_prefix(&format!("w{w:02}-")))
            .filter_map(|i| i.parse().ok())
            .collect();
        landed.sort_unstable();
        let expected: Vec<u32> = (0..landed.len() as u32).collect();
        assert_eq!(landed, expected, "writer {w}'s durable creates have a gap");
    }
    let max_acked = acked.values().map(|(rv, _)| *rv).max().unwrap_or(0);
    let created = cms
        .create(&PostParams::default(), &configmap("after", &[]))
        .await
        .expect("create after the restart");
    assert!(rv_num(&created) > max_acked);
    assert!(after.values().all(|(rv, _)| *rv < rv_num(&created)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_revision_is_expired() {
    let dir = tempfile::tempdir().expect("a temporary data directory");
    let args = ["--watch-history", "50"];
    let mut server = TugServer::start_in(dir.path(), &args);
    let client = server.client().await;
    let mut cms: Api<ConfigMap> = Api::namespaced(client, NS);

    // > 200 writes: one create and 250 updates.
    cms.create(
        &PostParams::default(),
        &configmap("busy", &[("n", "0".into())]),
    )
    .await
    .expect("create");
    let mut last = 0;
    for n in 1..=250 {
        let cm = cms
            .patch(
                "busy",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"n": n.to_string()}})),
            )
            .await
            .unwrap_or_else(|e| panic!("update {n}: {e}"));
        last = rv_num(&cm);
    }
    assert!(last > 200);

    for round in ["before a restart", "after a restart"] {
        // From revision 1: long compacted away.
        let status = expired_status(&cms, "1").await;
        assert_eq!(status.code, 410, "{round}: {status:?}");
        assert_eq!(status.reason, "Expired", "{round}: {status:?}");
        assert!(!status.message.is_empty());

        // From 10 revisions back: still in the history, exactly the last 10 updates.
        let from = (last - 10).to_string();
        let got = all_changes(&cms, &from, 2).await;
        let want: Vec<(String, String, u64)> = (last - 9..=last)
            .map(|rv| ("MODIFIED".to_string(), "busy".to_string(), rv))
            .collect();
        assert_eq!(
            got, want,
            "{round}: a watch from {from} replays the last 10 updates"
        );

        if round == "before a restart" {
            let (_client, new_cms) = restart(&mut server, dir.path(), &args).await;
            let busy = new_cms.get("busy").await.expect("get after restart");
            assert_eq!(rv_num(&busy), last);
            assert_eq!(
                busy.data
                    .as_ref()
                    .and_then(|d| d.get("n"))
                    .map(String::as_str),
                Some("250")
            );
            cms = new_cms;
        }
    }
}

/// The Status a watch from `from` fails with: an ERROR event or an HTTP error.
async fn expired_status(cms: &Api<ConfigMap>, from: &str) -> kube::core::Status {
    match cms.watch(&WatchParams::default().timeout(10), from).await {
        Err(kube::Error::Api(s)) => *s,
        Err(other) => panic!("watch from {from}: unexpected error {other:?}"),
        Ok(stream) => {
            let mut stream = stream.boxed();
            let first = tokio::time::timeout(Duration::from_secs(20), stream.next())
                .await
                .expect("the watch answers within 20 s")
                .unwrap_or_else(|| panic!("the watch from {from} ended without an event"));
            match first {
                Ok(WatchEvent::Error(s)) => *s,
                Err(kube::Error::Api(s)) => *s,
                Ok(ev) => panic!(
                    "a watch from compacted revision {from} delivered {:?} instead of 410",
                    summary(&ev)
                ),
                Err(other) => panic!("watch from {from}: unexpected error {other:?}"),
            }
        }
    }
}
