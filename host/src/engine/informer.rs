//! Shared informers: one list+watch per resource type, an in-memory cache of the objects
//! with indexes, and change notifications (client-go's shared informer, kube-rs's
//! watcher → reflector).
//!
//! An [`Informer`] lists its kind (all namespaces), then watches from the list's
//! resourceVersion, keeping the cache and its indexes (namespace, label, owner uid,
//! `spec.nodeName`) current. When the watch fails it resumes from the last resourceVersion
//! it saw; when that is too old (410: the history was compacted while it was away) it
//! relists and diffs the list against the cache, so subscribers get exactly the changes
//! they missed — `Added` for new objects, `Modified` for changed ones, `Deleted` for gone
//! ones (and a delete + add for an object recreated under the same name) — and nothing for
//! what did not change.
//!
//! Subscribers get every change as a [`Change`] (old and new state) after the cache holds
//! it. Reads ([`Informer::get`], [`Informer::list`], [`Informer::by_owner`]) never reach the
//! store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::api::client::{
    ApiClient, ApiResource, ClientError, ListParams, ResourceInfo, WatchEvent, WatchParams,
};
use crate::api::selectors::{FieldSelector, LabelSelector};

/// `(namespace or "", name)`.
type Key = (String, String);

/// One change of one object, as subscribers see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The state before (`None`: the object was added).
    pub old: Option<Arc<Value>>,
    /// The state after (`None`: the object was deleted; `old` is its last state).
    pub new: Option<Arc<Value>>,
}

/// The type of a [`Change`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl Change {
    /// Added, modified or deleted.
    pub fn kind(&self) -> ChangeKind {
        match (&self.old, &self.new) {
            (None, _) => ChangeKind::Added,
            (Some(_), Some(_)) => ChangeKind::Modified,
            (Some(_), None) => ChangeKind::Deleted,
        }
    }

    /// The newest state there is (the last state of a deleted object).
    pub fn object(&self) -> Option<&Arc<Value>> {
        self.new.as_ref().or(self.old.as_ref())
    }
}

/// A subscription to an informer's changes (unbounded: the informer never waits for a
/// subscriber). Dropping it unsubscribes.
pub type Subscription = mpsc::UnboundedReceiver<Change>;

/// A selector the informer cannot evaluate.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("unable to parse labelSelector: {0}")]
    Label(String),
    #[error("unable to parse fieldSelector: {0}")]
    Field(String),
}

/// How an informer retries a failed list or watch.
#[derive(Clone, Copy, Debug)]
pub struct InformerConfig {
    /// The first retry delay (doubling on each further failure).
    pub retry_min: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
}

impl Default for InformerConfig {
    fn default() -> Self {
        InformerConfig {
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
        }
    }
}

#[derive(Default)]
struct Cache {
    objects: BTreeMap<Key, Arc<Value>>,
    by_namespace: HashMap<String, BTreeSet<String>>,
    /// label key → value → objects.
    by_label: HashMap<String, HashMap<String, BTreeSet<Key>>>,
    /// ownerReferences[].uid → objects.
    by_owner: HashMap<String, BTreeSet<Key>>,
    /// spec.nodeName → objects.
    by_node: HashMap<String, BTreeSet<Key>>,
    resource_version: String,
}

/// What the indexes record of one object.
struct IndexEntries<'a> {
    labels: Vec<(&'a str, &'a str)>,
    owners: Vec<&'a str>,
    node: Option<&'a str>,
}

fn index_entries(obj: &Value) -> IndexEntries<'_> {
    let labels = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let owners = owner_uids(obj);
    let node = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    IndexEntries {
        labels,
        owners,
        node,
    }
}

/// The uids of `metadata.ownerReferences`.
pub fn owner_uids(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn key_of(obj: &Value) -> Key {
    (
        str_at(obj, "/metadata/namespace").to_string(),
        str_at(obj, "/metadata/name").to_string(),
    )
}

fn remove_from<K: std::hash::Hash + Eq>(index: &mut HashMap<K, BTreeSet<Key>>, at: &K, key: &Key) {
    if let Some(set) = index.get_mut(at) {
        set.remove(key);
        if set.is_empty() {
            index.remove(at);
        }
    }
}

impl Cache {
    fn unindex(&mut self, key: &Key, obj: &Value) {
        if let Some(names) = self.by_namespace.get_mut(&key.0) {
            names.remove(&key.1);
            if names.is_empty() {
                self.by_namespace.remove(&key.0);
            }
        }
        let e = index_entries(obj);
        for (k, v) in e.labels {
            if let Some(values) = self.by_label.get_mut(k) {
                remove_from(values, &v.to_string(), key);
                if values.is_empty() {
                    self.by_label.remove(k);
                }
            }
        }
        for uid in e.owners {
            remove_from(&mut self.by_owner, &uid.to_string(), key);
        }
        if let Some(node) = e.node {
            remove_from(&mut self.by_node, &node.to_string(), key);
        }
    }

    fn index(&mut self, key: &Key, obj: &Value) {
        self.by_namespace
            .entry(key.0.clone())
            .or_default()
            .insert(key.1.clone());
        let e = index_entries(obj);
        for (k, v) in e.labels {
            self.by_label
                .entry(k.to_string())
                .or_default()
                .entry(v.to_string())
                .or_default()
                .insert(key.clone());
        }
        for uid in e.owners {
            self.by_owner
                .entry(uid.to_string())
                .or_default()
                .insert(key.clone());
        }
        if let Some(node) = e.node {
            self.by_node
                .entry(node.to_string())
                .or_default()
                .insert(key.clone());
        }
    }

    fn upsert(&mut self, key: Key, obj: Arc<Value>) -> Option<Arc<Value>> {
        let old = self.objects.remove(&key);
        if let Some(o) = &old {
            self.unindex(&key, o);
        }
        self.index(&key, &obj);
        self.objects.insert(key, obj);
        old
    }

    fn remove(&mut self, key: &Key) -> Option<Arc<Value>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }

    /// The smallest index set that must contain every match, if an index applies.
    fn candidates(
        &self,
        namespace: Option<&str>,
        ls: &LabelSelector,
        fs: &FieldSelector,
    ) -> Option<Vec<Key>> {
        let empty = BTreeSet::new();
        let mut sets: Vec<&BTreeSet<Key>> = vec![];
        for r in ls.requirements() {
            if let Some(v) = ls.requires_exact_match(r.key()) {
                sets.push(
                    self.by_label
                        .get(r.key())
                        .and_then(|m| m.get(v))
                        .unwrap_or(&empty),
                );
            }
        }
        if let Some(node) = fs.requires_exact_match("spec.nodeName") {
            sets.push(self.by_node.get(node).unwrap_or(&empty));
        }
        let best = sets.into_iter().min_by_key(|s| s.len());
        if let Some(best) = best {
            return Some(
                best.iter()
                    .filter(|k| namespace.is_none_or(|ns| k.0 == ns))
                    .cloned()
                    .collect(),
            );
        }
        let ns = namespace?;
        Some(
            self.by_namespace
                .get(ns)
                .map(|names| names.iter().map(|n| (ns.to_string(), n.clone())).collect())
                .unwrap_or_default(),
        )
    }
}

/// The informer of one resource type (see the [module](self) docs). Get it from
/// [`crate::engine::Engine::informer`], which shares one per type.
pub struct Informer {
    resource: ApiResource,
    client: Arc<dyn ApiClient>,
    config: InformerConfig,
    info: OnceLock<ResourceInfo>,
    cache: RwLock<Cache>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Change>>>,
    synced: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    lists: AtomicU64,
}

/// How one watch ended.
enum WatchEnd {
    /// 410: relist.
    Gone(String),
    /// Failed (or ended) after `delivered` events; resume from the cache's version.
    Failed {
        error: Option<ClientError>,
        delivered: usize,
    },
}

impl Informer {
    /// An informer of `resource` (not started: see [`Informer::start`]).
    pub fn new(
        client: Arc<dyn ApiClient>,
        resource: ApiResource,
        config: InformerConfig,
    ) -> Arc<Self> {
        Arc::new(Informer {
            resource,
            client,
            config,
            info: OnceLock::new(),
            cache: RwLock::new(Cache::default()),
            subscribers: Mutex::new(Vec::new()),
            synced: watch::Sender::new(false),
            task: Mutex::new(None),
            lists: AtomicU64::new(0),
        })
    }

    /// Start listing and watching (once; later calls do nothing). Needs a tokio runtime.
    pub fn start(self: &Arc<Self>) {
        let mut task = self.task.lock();
        if task.is_none() {
            let me = self.clone();
            *task = Some(tokio::spawn(async move { me.run().await }));
        }
    }

    /// Stop the list/watch loop (the cache keeps what it has).
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }

    /// The resource type this informer watches.
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    /// What the server said about the type (once resolved, before the first list).
    pub fn info(&self) -> Option<&ResourceInfo> {
        self.info.get()
    }

    /// Whether the first list has been loaded into the cache.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Wait for the first list to be loaded.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The resourceVersion the cache is at.
    pub fn resource_version(&self) -> String {
        self.cache.read().resource_version.clone()
    }

    /// How many full lists the informer has loaded (1 + one per resync after a 410).
    pub fn list_count(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }

    /// Get every change from now on.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.lock().push(tx);
        rx
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.cache.read().objects.len()
    }

    /// Whether the cache holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn namespace_key<'a>(&self, namespace: Option<&'a str>) -> &'a str {
        if self.info().is_some_and(|i| !i.namespaced) {
            ""
        } else {
            namespace.unwrap_or("")
        }
    }

    /// One object from the cache.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        let key = (self.namespace_key(namespace).to_string(), name.to_string());
        self.cache.read().objects.get(&key).cloned()
    }

    /// The objects (in `namespace`, or all) that match the selectors, in namespace/name
    /// order. Label selectors with an exact requirement and `spec.nodeName=` use the
    /// indexes; field selectors are the API's (per kind: `metadata.name`,
    /// `metadata.namespace`, `spec.nodeName`, `status.phase`, …).
    pub fn list(
        &self,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Vec<Arc<Value>>, SelectorError> {
        let ls = LabelSelector::parse(label_selector.unwrap_or(""))
            .map_err(|e| SelectorError::Label(e.to_string()))?;
        let fs = FieldSelector::parse(field_selector.unwrap_or(""))
            .map_err(|e| SelectorError::Field(e.to_string()))?;
        self.list_selected(namespace, &ls, &fs)
    }

    /// [`Informer::list`] with parsed selectors.
    pub fn list_selected(
        &self,
        namespace: Option<&str>,
        ls: &LabelSelector,
        fs: &FieldSelector,
    ) -> Result<Vec<Arc<Value>>, SelectorError> {
        let field_matches = self.field_matcher(fs)?;
        let namespace = namespace.map(|ns| self.namespace_key(Some(ns)));
        let cache = self.cache.read();
        let selected = |o: &Arc<Value>| ls.matches_object(o) && field_matches(o);
        Ok(match cache.candidates(namespace, ls, fs) {
            Some(keys) => keys
                .iter()
                .filter_map(|k| cache.objects.get(k))
                .filter(|o| selected(o))
                .cloned()
                .collect(),
            None => cache
                .objects
                .values()
                .filter(|o| selected(o))
                .cloned()
                .collect(),
        })
    }

    /// The objects that name `uid` in their ownerReferences.
    pub fn by_owner(&self, uid: &str) -> Vec<Arc<Value>> {
        let cache = self.cache.read();
        cache
            .by_owner
            .get(uid)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| cache.objects.get(k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every object in the cache.
    pub fn all(&self) -> Vec<Arc<Value>> {
        self.cache.read().objects.values().cloned().collect()
    }

    /// The field selector as a predicate, validated for this kind as the API does.
    #[allow(clippy::type_complexity)]
    fn field_matcher<'a>(
        &'a self,
        fs: &'a FieldSelector,
    ) -> Result<Box<dyn Fn(&Value) -> bool + 'a>, SelectorError> {
        if fs.is_empty() {
            return Ok(Box::new(|_| true));
        }
        let (api_version, kind, namespaced, custom) = match self.info() {
            Some(i) => (
                i.api_version.as_str(),
                i.kind.as_str(),
                i.namespaced,
                i.custom,
            ),
            None => (
                self.resource.api_version.as_str(),
                self.resource.kind.as_str(),
                true,
                false,
            ),
        };
        if custom {
            fs.matches_custom(&Value::Null, namespaced, &[])
                .map_err(|e| SelectorError::Field(e.to_string()))?;
            Ok(Box::new(move |o| {
                fs.matches_custom(o, namespaced, &[]).unwrap_or(false)
            }))
        } else {
            fs.validate(api_version, kind)
                .map_err(|e| SelectorError::Field(e.to_string()))?;
            Ok(Box::new(move |o| {
                fs.matches_gvk(o, api_version, kind).unwrap_or(false)
            }))
        }
    }

    // ---- the list/watch loop ----

    fn notify(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut subs = self.subscribers.lock();
        subs.retain(|tx| changes.iter().all(|c| tx.send(c.clone()).is_ok()));
    }

    /// Load a full list: diff it with the cache and tell subscribers what changed.
    pub(crate) fn replace(&self, items: Vec<Value>, resource_version: String) {
        let mut changes = vec![];
        {
            let mut cache = self.cache.write();
            let mut seen = HashSet::with_capacity(items.len());
            for item in items {
                let key = key_of(&item);
                seen.insert(key.clone());
                let new = Arc::new(item);
                match cache.objects.get(&key) {
                    Some(old)
                        if str_at(old, "/metadata/resourceVersion")
                            == str_at(&new, "/metadata/resourceVersion") =>
                    {
                        continue;
                    }
                    Some(old) if str_at(old, "/metadata/uid") != str_at(&new, "/metadata/uid") => {
                        // Deleted and recreated while we were away.
                        changes.push(Change {
                            old: Some(old.clone()),
                            new: None,
                        });
                        changes.push(Change {
                            old: None,
                            new: Some(new.clone()),
                        });
                    }
                    old => changes.push(Change {
                        old: old.cloned(),
                        new: Some(new.clone()),
                    }),
                }
                cache.upsert(key, new);
            }
            let gone: Vec<Key> = cache
                .objects
                .keys()
                .filter(|k| !seen.contains(*k))
                .cloned()
                .collect();
            for key in gone {
                if let Some(old) = cache.remove(&key) {
                    changes.push(Change {
                        old: Some(old),
                        new: None,
                    });
                }
            }
            cache.resource_version = resource_version;
        }
        self.notify(changes);
        self.synced.send_replace(true);
    }

    /// Apply one watch event.
    fn apply(&self, event: WatchEvent) {
        let change = {
            let mut cache = self.cache.write();
            match event {
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    let rv = str_at(&obj, "/metadata/resourceVersion").to_string();
                    let key = key_of(&obj);
                    let new = Arc::new(obj);
                    let old = cache.upsert(key, new.clone());
                    cache.resource_version = rv;
                    Some(Change {
                        old,
                        new: Some(new),
                    })
                }
                WatchEvent::Deleted(obj) => {
                    let rv = str_at(&obj, "/metadata/resourceVersion").to_string();
                    let removed = cache.remove(&key_of(&obj));
                    cache.resource_version = rv;
                    removed.map(|_| Change {
                        old: Some(Arc::new(obj)),
                        new: None,
                    })
                }
                WatchEvent::Bookmark { resource_version } => {
                    cache.resource_version = resource_version;
                    None
                }
            }
        };
        if let Some(c) = change {
            self.notify(vec![c]);
        }
    }

    async fn relist(&self) -> Result<(), ClientError> {
        let list = self
            .client
            .list(&self.resource, None, &ListParams::default())
            .await?;
        tracing::debug!(resource = %self.resource, items = list.items.len(), rv = %list.resource_version, "informer listed");
        self.replace(list.items, list.resource_version);
        self.lists.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn watch_once(&self) -> WatchEnd {
        let params = WatchParams {
            resource_version: self.resource_version(),
            bookmarks: true,
            ..Default::default()
        };
        let mut stream = match self.client.watch(&self.resource, None, &params).await {
            Ok(s) => s,
            Err(ClientError::Gone(m)) => return WatchEnd::Gone(m),
            Err(e) => {
                return WatchEnd::Failed {
                    error: Some(e),
                    delivered: 0,
                };
            }
        };
        let mut delivered = 0;
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    delivered += 1;
                    self.apply(ev);
                }
                Err(ClientError::Gone(m)) => return WatchEnd::Gone(m),
                Err(e) => {
                    return WatchEnd::Failed {
                        error: Some(e),
                        delivered,
                    };
                }
            }
        }
        WatchEnd::Failed {
            error: None,
            delivered,
        }
    }

    async fn run(self: Arc<Self>) {
        let mut delay = self.config.retry_min;
        let mut backoff = |failed: bool| {
            if !failed {
                delay = self.config.retry_min;
                return Duration::ZERO;
            }
            let d = delay;
            delay = (delay * 2).min(self.config.retry_max);
            d
        };
        while self.info.get().is_none() {
            match self.client.resolve(&self.resource).await {
                Ok(info) => {
                    let _ = self.info.set(info);
                }
                Err(e) => {
                    let d = backoff(true);
                    // A type the server does not serve (yet: a CRD may come) has no
                    // objects: the cache counts as synced and empty meanwhile, so that the
                    // controllers watching it are not held up.
                    if e.is_not_found() && !self.has_synced() {
                        self.synced.send_replace(true);
                        tracing::info!(resource = %self.resource, "informer: the type is not served; an empty cache until it is");
                    } else {
                        tracing::debug!(resource = %self.resource, error = %e, retry_in = ?d, "informer: resolving the resource type failed");
                    }
                    tokio::time::sleep(d).await;
                }
            }
        }
        backoff(false);
        let mut listed = false;
        loop {
            if !listed {
                if let Err(e) = self.relist().await {
                    let d = backoff(true);
                    tracing::warn!(resource = %self.resource, error = %e, retry_in = ?d, "informer: list failed");
                    tokio::time::sleep(d).await;
                    continue;
                }
                listed = true;
            }
            match self.watch_once().await {
                WatchEnd::Gone(m) => {
                    tracing::info!(resource = %self.resource, reason = %m, "informer: watch expired; relisting");
                    listed = false;
                    backoff(false);
                }
                WatchEnd::Failed { error, delivered } => {
                    let d = backoff(delivered == 0);
                    if let Some(e) = error {
                        tracing::warn!(resource = %self.resource, error = %e, retry_in = ?d, "informer: watch failed; resuming");
                    }
                    tokio::time::sleep(d).await;
                }
            }
        }
    }
}

impl Drop for Informer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::client::tests::{GatedClient, test_api};
    use crate::api::client::{DeleteParams, LocalClient, Patch, PatchParams};
    use crate::store::redb::RedbStoreConfig;

    fn cms() -> ApiResource {
        ApiResource::new("v1", "ConfigMap")
    }

    fn pods() -> ApiResource {
        ApiResource::new("v1", "Pod")
    }

    fn pod(name: &str, node: &str, labels: Value, owner: Option<&str>) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if !node.is_empty() {
            p["spec"]["nodeName"] = json!(node);
        }
        if let Some(uid) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "rs", "uid": uid, "controller": true}]);
        }
        p
    }

    fn names(objs: &[Arc<Value>]) -> Vec<String> {
        objs.iter()
            .map(|o| str_at(o, "/metadata/name").to_string())
            .collect()
    }

    /// Receive changes until none arrives for a while.
    async fn drain(sub: &mut Subscription) -> Vec<(ChangeKind, String)> {
        let mut out = vec![];
        while let Ok(Some(c)) = tokio::time::timeout(Duration::from_millis(300), sub.recv()).await {
            let name = c
                .object()
                .map(|o| str_at(o, "/metadata/name").to_string())
                .unwrap_or_default();
            out.push((c.kind(), name));
        }
        out
    }

    async fn eventually(what: &str, f: impl Fn() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn informer_lists_then_follows_changes_and_indexes_answer() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let c = LocalClient::new(api, "test");
        c.create(
            &pods(),
            None,
            pod("a", "n1", json!({"app": "web"}), Some("u1")),
        )
        .await
        .unwrap();
        c.create(&pods(), None, pod("b", "n2", json!({"app": "web"}), None))
            .await
            .unwrap();
        let inf = Informer::new(Arc::new(c.clone()), pods(), InformerConfig::default());
        let mut sub = inf.subscribe();
        inf.start();
        inf.wait_synced().await;
        assert!(inf.has_synced());
        assert_eq!(inf.len(), 2);
        assert_eq!(
            drain(&mut sub).await,
            [
                (ChangeKind::Added, "a".to_string()),
                (ChangeKind::Added, "b".to_string())
            ]
        );

        c.create(
            &pods(),
            None,
            pod("c", "n1", json!({"app": "db"}), Some("u1")),
        )
        .await
        .unwrap();
        c.patch(
            &pods(),
            Some("default"),
            "b",
            &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
        c.delete(&pods(), Some("default"), "a", &DeleteParams::default())
            .await
            .unwrap();
        let seen = drain(&mut sub).await;
        // The pod with a node is deleted gracefully: a modification (deletionTimestamp).
        assert_eq!(
            seen[..2],
            [
                (ChangeKind::Added, "c".to_string()),
                (ChangeKind::Modified, "b".to_string()),
            ]
        );
        assert_eq!(seen[2], (ChangeKind::Modified, "a".to_string()));
        let a = inf.get(Some("default"), "a").unwrap();
        assert!(a.pointer("/metadata/deletionTimestamp").is_some());
        assert_eq!(
            inf.resource_version(),
            str_at(&a, "/metadata/resourceVersion")
        );

        // Indexes: labels, node, owner, namespace, name.
        let db = inf.list(None, Some("app=db"), None).unwrap();
        assert_eq!(names(&db), ["b", "c"]);
        let web = inf
            .list(Some("default"), Some("app in (web)"), None)
            .unwrap();
        assert_eq!(names(&web), ["a"]);
        assert!(
            inf.list(Some("other"), Some("app=db"), None)
                .unwrap()
                .is_empty()
        );
        let on_n1 = inf.list(None, None, Some("spec.nodeName=n1")).unwrap();
        assert_eq!(names(&on_n1), ["a", "c"]);
        let mixed = inf
            .list(None, Some("app=db"), Some("spec.nodeName=n1"))
            .unwrap();
        assert_eq!(names(&mixed), ["c"]);
        let by_name = inf
            .list(Some("default"), None, Some("metadata.name=b"))
            .unwrap();
        assert_eq!(names(&by_name), ["b"]);
        let not_n1 = inf.list(None, None, Some("spec.nodeName!=n1")).unwrap();
        assert_eq!(names(&not_n1), ["b"]);
        assert_eq!(names(&inf.by_owner("u1")), ["a", "c"]);
        assert!(inf.by_owner("u2").is_empty());
        assert_eq!(
            names(&inf.list(Some("default"), None, None).unwrap()),
            ["a", "b", "c"]
        );
        assert!(inf.list(None, Some("=bad"), None).is_err());
        assert!(inf.list(None, None, Some("spec.unknown=x")).is_err());

        // Finishing the graceful deletion removes it from the cache and the indexes.
        c.delete(
            &pods(),
            Some("default"),
            "a",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        eventually("a deleted", || inf.get(Some("default"), "a").is_none()).await;
        assert_eq!(names(&inf.by_owner("u1")), ["c"]);
        assert_eq!(
            names(&inf.list(None, None, Some("spec.nodeName=n1")).unwrap()),
            ["c"]
        );
        assert!(
            drain(&mut sub)
                .await
                .contains(&(ChangeKind::Deleted, "a".to_string()))
        );
        inf.stop();
    }

    #[tokio::test]
    async fn informer_resyncs_after_410_without_lost_or_phantom_events() {
        // Tiny history: anything missed while the watch is away is compacted.
        let (api, _dir) = test_api(RedbStoreConfig {
            retain_revisions: 4,
            ..Default::default()
        })
        .await;
        let local = LocalClient::new(api, "test");
        let gated = GatedClient::new(local.clone());
        let c = &local;
        let cm = |name: &str, v: &str| json!({"metadata": {"name": name}, "data": {"v": v}});
        for n in ["keep", "change", "remove", "recreate"] {
            c.create(&cms(), Some("default"), cm(n, "1")).await.unwrap();
        }
        let inf = Informer::new(
            gated.clone(),
            cms(),
            InformerConfig {
                retry_min: Duration::from_millis(10),
                retry_max: Duration::from_millis(50),
            },
        );
        let mut sub = inf.subscribe();
        inf.start();
        inf.wait_synced().await;
        assert_eq!(drain(&mut sub).await.len(), 4);
        let old_recreate_uid = str_at(
            &inf.get(Some("default"), "recreate").unwrap(),
            "/metadata/uid",
        )
        .to_string();

        // The watch goes away; meanwhile things change and the history is compacted.
        gated.cut();
        eventually("watch cut", || gated.watches.load(Ordering::SeqCst) == 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.patch(
            &cms(),
            Some("default"),
            "change",
            &Patch::Merge(json!({"data": {"v": "2"}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
        c.delete(&cms(), Some("default"), "remove", &DeleteParams::default())
            .await
            .unwrap();
        c.delete(
            &cms(),
            Some("default"),
            "recreate",
            &DeleteParams::default(),
        )
        .await
        .unwrap();
        c.create(&cms(), Some("default"), cm("recreate", "1"))
            .await
            .unwrap();
        c.create(&cms(), Some("default"), cm("new", "1"))
            .await
            .unwrap();
        c.create(&cms(), Some("default"), cm("transient", "1"))
            .await
            .unwrap();
        c.delete(
            &cms(),
            Some("default"),
            "transient",
            &DeleteParams::default(),
        )
        .await
        .unwrap();
        let secrets = ApiResource::new("v1", "Secret");
        for i in 0..10 {
            c.create(
                &secrets,
                Some("default"),
                json!({"metadata": {"name": format!("s{i}")}}),
            )
            .await
            .unwrap();
        }
        assert!(drain(&mut sub).await.is_empty(), "nothing while away");
        assert_eq!(inf.list_count(), 1);
        gated.reopen();

        let mut seen = drain(&mut sub).await;
        seen.sort_by(|a, b| {
            a.1.cmp(&b.1)
                .then(format!("{:?}", a.0).cmp(&format!("{:?}", b.0)))
        });
        assert_eq!(
            seen,
            [
                (ChangeKind::Modified, "change".to_string()),
                (ChangeKind::Added, "new".to_string()),
                (ChangeKind::Added, "recreate".to_string()),
                (ChangeKind::Deleted, "recreate".to_string()),
                (ChangeKind::Deleted, "remove".to_string()),
            ]
        );
        assert_ne!(
            str_at(
                &inf.get(Some("default"), "recreate").unwrap(),
                "/metadata/uid"
            ),
            old_recreate_uid
        );
        // It took a 410 and a relist (not a resumed watch).
        assert_eq!(inf.list_count(), 2);
        assert!(gated.watches.load(Ordering::SeqCst) >= 3);
        // The cache is the store's state, and the watch goes on after the relist.
        let listed = c.list(&cms(), None, &ListParams::default()).await.unwrap();
        let mut want: Vec<String> = listed
            .items
            .iter()
            .map(|o| str_at(o, "/metadata/name").to_string())
            .collect();
        want.sort();
        assert_eq!(names(&inf.all()), want);
        c.create(&cms(), Some("default"), cm("after", "1"))
            .await
            .unwrap();
        assert_eq!(
            drain(&mut sub).await,
            [(ChangeKind::Added, "after".to_string())]
        );
        inf.stop();
    }
}
