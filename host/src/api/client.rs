//! A client of the API for the host's own background loops (the reconcile engine, its
//! informers and leader election): [`ApiClient`], and [`LocalClient`], which serves it from
//! the in-process [`Api`].
//!
//! Objects are `serde_json::Value`s and resources are named by apiVersion and kind (or
//! plural resource name), as in the Kubernetes dynamic client. Writes through
//! [`LocalClient`] take exactly the path an HTTP request takes ([`Api::create`],
//! [`Api::update`], [`Api::patch`], [`Api::delete`]): admission, validation, defaulting,
//! optimistic concurrency and managed fields (with the client's field manager) apply to the
//! engine as they apply to kubectl. Reads skip only the HTTP encoding.
//!
//! ```no_run
//! # async fn demo(api: std::sync::Arc<tugboat::api::Api>) -> Result<(), tugboat::api::client::ClientError> {
//! use tugboat::api::client::{ApiClient, ApiResource, ListParams, LocalClient};
//! let client = LocalClient::new(api, "tugboat-controller-manager");
//! let cms = ApiResource::new("v1", "ConfigMap");
//! let list = client.list(&cms, Some("default"), &ListParams::default()).await?;
//! println!("{} config maps at resourceVersion {}", list.items.len(), list.resource_version);
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Api;
use super::handlers::Target;
use super::object::meta_str;
use super::request::{Query, ResourcePath, parse_rv};
use super::status::ApiError;
use crate::store::StoreError;

/// An error of an API call: the `Status` the server answered with. A 410 (the requested
/// resourceVersion is too old: relist) is [`ClientError::Gone`], so that watchers can tell
/// it from every other failure.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    /// 410 Gone/Expired: the resourceVersion a watch or list asked for has been compacted.
    #[error("410 Expired: {0}")]
    Gone(String),
    /// Any other failure, as the `Status` code, reason and message.
    #[error("{code} {reason}: {message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
}

impl ClientError {
    /// A client-side error (bad arguments), reported as a 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ClientError::Api {
            code: 400,
            reason: "BadRequest".into(),
            message: message.into(),
        }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ClientError::Gone(_) => 410,
            ClientError::Api { code, .. } => *code,
        }
    }

    /// The `Status` reason (`NotFound`, `Conflict`, `AlreadyExists`, `Invalid`, …).
    pub fn reason(&self) -> &str {
        match self {
            ClientError::Gone(_) => "Expired",
            ClientError::Api { reason, .. } => reason,
        }
    }

    /// 404.
    pub fn is_not_found(&self) -> bool {
        self.code() == 404
    }

    /// 409 `Conflict`: a stale resourceVersion or a failed precondition.
    pub fn is_conflict(&self) -> bool {
        self.code() == 409 && self.reason() == "Conflict"
    }

    /// 409 `AlreadyExists`.
    pub fn is_already_exists(&self) -> bool {
        self.code() == 409 && self.reason() == "AlreadyExists"
    }

    /// 410: relist.
    pub fn is_gone(&self) -> bool {
        matches!(self, ClientError::Gone(_))
    }
}

impl From<ApiError> for ClientError {
    fn from(e: ApiError) -> Self {
        if e.code == 410 {
            ClientError::Gone(e.message)
        } else {
            ClientError::Api {
                code: e.code,
                reason: e.reason.to_string(),
                message: e.message,
            }
        }
    }
}

/// The result of an API call.
pub type ClientResult<T> = Result<T, ClientError>;

/// A resource type named as a client names it: `apiVersion` (`v1`, `apps/v1`) and the kind
/// (`Deployment`) or the plural resource name (`deployments`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiResource {
    pub api_version: String,
    /// The kind, or the plural resource name.
    pub kind: String,
}

impl ApiResource {
    /// `ApiResource::new("apps/v1", "Deployment")`.
    pub fn new(api_version: impl Into<String>, kind: impl Into<String>) -> Self {
        ApiResource {
            api_version: api_version.into(),
            kind: kind.into(),
        }
    }

    /// The group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// The version.
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(_, v)| v)
            .unwrap_or(&self.api_version)
    }
}

impl std::fmt::Display for ApiResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.api_version, self.kind)
    }
}

/// What the server says about a resource type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    pub api_version: String,
    pub kind: String,
    /// The plural resource name (`deployments`).
    pub plural: String,
    pub namespaced: bool,
    /// Served from a CustomResourceDefinition.
    pub custom: bool,
}

/// Options of a list.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    /// A label selector (`app=web,tier in (a,b)`).
    pub label_selector: Option<String>,
    /// A field selector (`spec.nodeName=n1`).
    pub field_selector: Option<String>,
}

/// The result of a list: the items and the resourceVersion to watch from.
#[derive(Clone, Debug, Default)]
pub struct ObjectList {
    pub items: Vec<Value>,
    pub resource_version: String,
}

/// Options of a watch.
#[derive(Clone, Debug, Default)]
pub struct WatchParams {
    /// Watch changes after this resourceVersion; `""` or `"0"` first delivers the current
    /// objects as `Added`.
    pub resource_version: String,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Send periodic [`WatchEvent::Bookmark`]s (at the server's bookmark interval).
    pub bookmarks: bool,
    /// End the stream after this long (`None`: never, for an in-process watch).
    pub timeout: Option<Duration>,
}

/// One watch event. Objects carry their resourceVersion; a `Deleted` object is its last
/// state.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    Added(Value),
    Modified(Value),
    Deleted(Value),
    /// Nothing changed for this watcher up to `resource_version`: resume from there.
    Bookmark {
        resource_version: String,
    },
}

/// A watch: events in resourceVersion order. `Err(ClientError::Gone)` (the watcher fell
/// behind the compacted history) ends it; the watcher must relist.
pub type WatchStream = BoxStream<'static, ClientResult<WatchEvent>>;

/// A patch and its type.
#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// RFC 7386 JSON merge patch (`application/merge-patch+json`).
    Merge(Value),
    /// RFC 6902 JSON patch, a list of operations (`application/json-patch+json`).
    Json(Value),
    /// Kubernetes strategic merge patch (built-in kinds only).
    Strategic(Value),
    /// Server-side apply of this configuration (`application/apply-patch+yaml`).
    Apply(Value),
}

impl Patch {
    /// The Content-Type of the patch.
    pub fn content_type(&self) -> &'static str {
        match self {
            Patch::Merge(_) => "application/merge-patch+json",
            Patch::Json(_) => "application/json-patch+json",
            Patch::Strategic(_) => "application/strategic-merge-patch+json",
            Patch::Apply(_) => "application/apply-patch+yaml",
        }
    }

    /// The patch document.
    pub fn body(&self) -> &Value {
        match self {
            Patch::Merge(v) | Patch::Json(v) | Patch::Strategic(v) | Patch::Apply(v) => v,
        }
    }
}

/// Options of a patch.
#[derive(Clone, Debug, Default)]
pub struct PatchParams {
    /// `status`, `scale`, … (`None`: the object itself).
    pub subresource: Option<String>,
    /// Server-side apply: take over fields other managers own.
    pub force: bool,
    /// Overrides the client's field manager for this call.
    pub field_manager: Option<String>,
}

/// `DeleteOptions.propagationPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    Foreground,
    Background,
    Orphan,
}

impl PropagationPolicy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PropagationPolicy::Foreground => "Foreground",
            PropagationPolicy::Background => "Background",
            PropagationPolicy::Orphan => "Orphan",
        }
    }
}

/// `DeleteOptions.preconditions`: delete only this incarnation / this version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteParams {
    pub propagation_policy: Option<PropagationPolicy>,
    pub preconditions: Option<Preconditions>,
    pub grace_period_seconds: Option<i64>,
}

impl DeleteParams {
    /// The `DeleteOptions` body.
    pub fn to_delete_options(&self) -> Value {
        let mut o = json!({});
        if let Some(p) = self.propagation_policy {
            o["propagationPolicy"] = json!(p.as_str());
        }
        if let Some(pre) = &self.preconditions {
            let mut p = json!({});
            if let Some(uid) = &pre.uid {
                p["uid"] = json!(uid);
            }
            if let Some(rv) = &pre.resource_version {
                p["resourceVersion"] = json!(rv);
            }
            o["preconditions"] = p;
        }
        if let Some(g) = self.grace_period_seconds {
            o["gracePeriodSeconds"] = json!(g);
        }
        o
    }
}

/// The API as the host's background loops use it. Object-safe: hold it as
/// `Arc<dyn ApiClient>`.
///
/// `namespace` is ignored for cluster-scoped kinds; for namespaced kinds `None` means all
/// namespaces in `list`/`watch`, and the object's `metadata.namespace` in `create`/`update`.
#[async_trait::async_trait]
pub trait ApiClient: Send + Sync + 'static {
    /// What the server serves under this name (404 if nothing).
    async fn resolve(&self, resource: &ApiResource) -> ClientResult<ResourceInfo>;

    /// One object, `None` if it does not exist.
    async fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> ClientResult<Option<Value>>;

    /// The objects that match the selectors, from one consistent snapshot, and its
    /// resourceVersion.
    async fn list(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> ClientResult<ObjectList>;

    /// Changes after `params.resource_version`. A resourceVersion older than the retained
    /// history fails with [`ClientError::Gone`] (here or as the stream's last item).
    async fn watch(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        params: &WatchParams,
    ) -> ClientResult<WatchStream>;

    /// Create `object`; returns it as stored.
    async fn create(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: Value,
    ) -> ClientResult<Value>;

    /// Replace the object named by `object.metadata.name` (with optimistic concurrency if
    /// `object.metadata.resourceVersion` is set); status is kept.
    async fn update(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: Value,
    ) -> ClientResult<Value>;

    /// Replace the status of the object named by `object.metadata.name` (the `status`
    /// subresource).
    async fn update_status(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: Value,
    ) -> ClientResult<Value>;

    /// Patch an object (or its subresource).
    async fn patch(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        params: &PatchParams,
    ) -> ClientResult<Value>;

    /// POST to a subresource that creates something (`pods/NAME/binding`); returns what
    /// the server answered. The default serves nothing.
    async fn create_subresource(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        subresource: &str,
        object: Value,
    ) -> ClientResult<Value> {
        let _ = (namespace, name, object);
        Err(ClientError::Api {
            code: 405,
            reason: "MethodNotAllowed".into(),
            message: format!("this client cannot POST to {resource} {subresource}"),
        })
    }

    /// Delete an object. Returns the object if it still exists (finalizers, graceful pod
    /// deletion: it now has a deletionTimestamp), or otherwise what the server answered
    /// (the last state of the object or a `Status` of success).
    async fn delete(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> ClientResult<Value>;
}

/// [`ApiClient`] over the in-process [`Api`]: every write goes through the handlers, as an
/// HTTP request would, recorded in managedFields under the client's field manager.
#[derive(Clone)]
pub struct LocalClient {
    api: Arc<Api>,
    field_manager: String,
}

impl LocalClient {
    /// A client whose writes are recorded as `field_manager`'s (e.g.
    /// `tugboat-controller-manager`, or `controller:<name>` for one controller).
    pub fn new(api: Arc<Api>, field_manager: impl Into<String>) -> Self {
        LocalClient {
            api,
            field_manager: field_manager.into(),
        }
    }

    /// The same client, writing as another field manager.
    pub fn with_field_manager(&self, field_manager: impl Into<String>) -> Self {
        LocalClient {
            api: self.api.clone(),
            field_manager: field_manager.into(),
        }
    }

    /// The field manager writes are recorded under.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// The API this client calls.
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    fn write_query(&self, manager: Option<&str>) -> Query {
        Query {
            field_manager: Some(manager.unwrap_or(&self.field_manager).to_string()),
            ..Default::default()
        }
    }

    /// Resolve to a handler target. Namespaced kinds need a namespace unless `listing`.
    fn target(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: Option<&str>,
        subresource: Option<&str>,
        listing: bool,
    ) -> ClientResult<Target> {
        let catalog = self.api.registry.snapshot();
        let (group, version) = (resource.group(), resource.version());
        let rt = catalog
            .lookup(group, version, &resource.kind)
            .or_else(|| catalog.by_kind(group, version, &resource.kind))
            .ok_or_else(|| ClientError::Api {
                code: 404,
                reason: "NotFound".into(),
                message: format!("the server does not serve {resource}"),
            })?;
        let namespace = namespace.filter(|_| rt.namespaced);
        if rt.namespaced && namespace.is_none() && !listing {
            return Err(ClientError::bad_request(format!(
                "{} is namespaced: a namespace is required",
                rt.plural
            )));
        }
        let path = ResourcePath {
            group: rt.group.clone(),
            version: rt.version.clone(),
            namespace: namespace.map(str::to_string),
            plural: rt.plural.clone(),
            name: name.map(str::to_string),
            subresource: subresource.map(str::to_string),
            watch_prefix: false,
        };
        Ok(self.api.resolve(&path)?)
    }

    /// The namespace of a write: the one given, else the object's.
    fn write_namespace<'a>(namespace: Option<&'a str>, object: &'a Value) -> Option<&'a str> {
        namespace.or_else(|| Some(meta_str(object, "namespace")).filter(|s| !s.is_empty()))
    }

    async fn replace(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: Value,
        subresource: Option<&str>,
    ) -> ClientResult<Value> {
        let name = meta_str(&object, "name").to_string();
        if name.is_empty() {
            return Err(ClientError::bad_request(
                "an update needs metadata.name in the object",
            ));
        }
        let ns = Self::write_namespace(namespace, &object).map(str::to_string);
        let t = self.target(resource, ns.as_deref(), Some(&name), subresource, false)?;
        let reply = self
            .api
            .update(
                &t,
                object,
                &self.write_query(None),
                &axum::http::HeaderMap::new(),
            )
            .await?;
        Ok(reply.body)
    }
}

fn expired(requested: u64, oldest: u64) -> ClientError {
    ClientError::Gone(format!("too old resource version: {requested} ({oldest})"))
}

#[async_trait::async_trait]
impl ApiClient for LocalClient {
    async fn resolve(&self, resource: &ApiResource) -> ClientResult<ResourceInfo> {
        let t = self.target(resource, None, None, None, true)?;
        Ok(ResourceInfo {
            api_version: t.rt.api_version(),
            kind: t.rt.kind.clone(),
            plural: t.rt.plural.clone(),
            namespaced: t.rt.namespaced,
            custom: t.rt.is_custom(),
        })
    }

    async fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> ClientResult<Option<Value>> {
        let t = self.target(resource, namespace, Some(name), None, false)?;
        match self.api.get_object(&t).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> ClientResult<ObjectList> {
        let t = self.target(resource, namespace, None, None, true)?;
        let q = Query {
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            ..Default::default()
        };
        let (items, rv, _, _) = self.api.list_objects(&t, &q).await?;
        Ok(ObjectList {
            items,
            resource_version: rv.to_string(),
        })
    }

    async fn watch(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        params: &WatchParams,
    ) -> ClientResult<WatchStream> {
        let t = self.target(resource, namespace, None, None, true)?;
        let q = Query {
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            ..Default::default()
        };
        let (ls, fs) = self.api.parse_selectors(&t, &q)?;
        let rv = parse_rv(Some(&params.resource_version))?.unwrap_or(0);
        // From "now" (0): the current objects first, as synthetic ADDED events.
        let (initial, start_rev) = if rv == 0 {
            let (items, rev, _, _) = self.api.list_objects(&t, &q).await?;
            (items, rev)
        } else {
            (vec![], rv)
        };
        let prefix = t.rt.key_prefix(t.namespace.as_deref());
        let mut stream = match self.api.store.watch(&prefix, start_rev) {
            Ok(s) => s,
            Err(StoreError::Compacted { requested, oldest }) => {
                return Err(expired(requested, oldest));
            }
            Err(e) => return Err(ApiError::internal(e.to_string()).into()),
        };
        let rt = t.rt.clone();
        let bookmark_every = self.api.config.bookmark_interval;
        let bookmarks = params.bookmarks;
        let timeout = params.timeout;
        let (tx, rx) = mpsc::channel::<ClientResult<WatchEvent>>(256);
        tokio::spawn(async move {
            for o in initial {
                if tx.send(Ok(WatchEvent::Added(o))).await.is_err() {
                    return;
                }
            }
            let deadline = async {
                match timeout {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(deadline);
            let mut ticker = tokio::time::interval(bookmark_every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            let mut last_rev = start_rev;
            loop {
                let next = tokio::select! {
                    _ = &mut deadline => return,
                    _ = tx.closed() => return,
                    _ = ticker.tick(), if bookmarks => {
                        let bm = WatchEvent::Bookmark { resource_version: last_rev.to_string() };
                        if tx.send(Ok(bm)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    ev = stream.next() => ev,
                };
                let ev = match next {
                    None => return,
                    Some(Err(StoreError::Compacted { requested, oldest })) => {
                        let _ = tx.send(Err(expired(requested, oldest))).await;
                        return;
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(Err(ApiError::internal(e.to_string()).into())).await;
                        return;
                    }
                    Some(Ok(ev)) => ev,
                };
                last_rev = ev.revision;
                let Some((kind, obj)) = super::watch::watch_event(&rt, &ls, &fs, None, &ev) else {
                    continue;
                };
                let event = match kind {
                    "ADDED" => WatchEvent::Added(obj),
                    "MODIFIED" => WatchEvent::Modified(obj),
                    _ => WatchEvent::Deleted(obj),
                };
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }

    async fn create_subresource(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        subresource: &str,
        object: Value,
    ) -> ClientResult<Value> {
        let t = self.target(resource, namespace, Some(name), Some(subresource), false)?;
        let reply = match subresource {
            "binding" => self.api.bind(&t, object, &self.write_query(None)).await?,
            other => {
                return Err(ClientError::Api {
                    code: 405,
                    reason: "MethodNotAllowed".into(),
                    message: format!("POST to the {other} subresource is not supported"),
                });
            }
        };
        Ok(reply.body)
    }

    async fn create(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: Value,
    ) -> ClientResult<Value> {
        let ns = Self::write_namespace(namespace, &object).map(str::to_string);
        let t = self.target(resource, ns.as_deref(), None, None, false)?;
        let reply = self
            .api
            .create(
                &t,
                object,
                &self.write_query(None),
                &axum::http::HeaderMap::new(),
            )
            .await?;
        Ok(reply.body)
    }

    async fn update(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: Value,
    ) -> ClientResult<Value> {
        self.replace(resource, namespace, object, None).await
    }

    async fn update_status(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: Value,
    ) -> ClientResult<Value> {
        self.replace(resource, namespace, object, Some("status"))
            .await
    }

    async fn patch(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        params: &PatchParams,
    ) -> ClientResult<Value> {
        let t = self.target(
            resource,
            namespace,
            Some(name),
            params.subresource.as_deref(),
            false,
        )?;
        let mut q = self.write_query(params.field_manager.as_deref());
        if params.force {
            q.force = Some("true".into());
        }
        let body = serde_json::to_vec(patch.body())
            .map_err(|e| ClientError::bad_request(format!("encoding the patch: {e}")))?;
        let reply = self
            .api
            .patch(
                &t,
                patch.content_type(),
                &body,
                &q,
                &axum::http::HeaderMap::new(),
            )
            .await?;
        Ok(reply.body)
    }

    async fn delete(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> ClientResult<Value> {
        let t = self.target(resource, namespace, Some(name), None, false)?;
        let body = serde_json::to_vec(&params.to_delete_options())
            .map_err(|e| ClientError::bad_request(format!("encoding DeleteOptions: {e}")))?;
        let reply = self.api.delete(&t, &body, &Query::default()).await?;
        Ok(reply.body)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::api::ApiConfig;
    use crate::store::redb::{RedbStore, RedbStoreConfig};

    /// A real in-process API over a temporary store (with the default namespaces), kept
    /// alive by the returned directory.
    pub(crate) async fn test_api(config: RedbStoreConfig) -> (Arc<Api>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(&dir.path().join("store.redb"), config).expect("open store");
        let api = Api::new(store, ApiConfig::default());
        api.ensure_default_namespaces()
            .await
            .expect("default namespaces");
        (api, dir)
    }

    /// A client for tests of the engine: its watches can be cut and held back, and all its
    /// calls can be made to fail.
    pub(crate) struct GatedClient {
        inner: LocalClient,
        /// Watches are opened only while true.
        open: tokio::sync::watch::Sender<bool>,
        /// Bumping it ends every open watch stream.
        generation: tokio::sync::watch::Sender<u64>,
        /// How many watches were opened.
        pub(crate) watches: AtomicUsize,
        /// While true every call fails with a 500.
        pub(crate) failing: AtomicBool,
    }

    impl GatedClient {
        pub(crate) fn new(inner: LocalClient) -> Arc<Self> {
            Arc::new(GatedClient {
                inner,
                open: tokio::sync::watch::Sender::new(true),
                generation: tokio::sync::watch::Sender::new(0),
                watches: AtomicUsize::new(0),
                failing: AtomicBool::new(false),
            })
        }

        /// End the open watches and hold back new ones.
        pub(crate) fn cut(&self) {
            self.open.send_replace(false);
            self.generation.send_modify(|g| *g += 1);
        }

        /// Let watches open again.
        pub(crate) fn reopen(&self) {
            self.open.send_replace(true);
        }

        fn check(&self) -> ClientResult<()> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(ApiError::internal("injected failure").into());
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl ApiClient for GatedClient {
        async fn resolve(&self, r: &ApiResource) -> ClientResult<ResourceInfo> {
            self.check()?;
            self.inner.resolve(r).await
        }
        async fn get(
            &self,
            r: &ApiResource,
            ns: Option<&str>,
            name: &str,
        ) -> ClientResult<Option<Value>> {
            self.check()?;
            self.inner.get(r, ns, name).await
        }
        async fn list(
            &self,
            r: &ApiResource,
            ns: Option<&str>,
            p: &ListParams,
        ) -> ClientResult<ObjectList> {
            self.check()?;
            self.inner.list(r, ns, p).await
        }
        async fn watch(
            &self,
            r: &ApiResource,
            ns: Option<&str>,
            p: &WatchParams,
        ) -> ClientResult<WatchStream> {
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|o| *o).await;
            self.check()?;
            self.watches.fetch_add(1, Ordering::SeqCst);
            let mut generation = self.generation.subscribe();
            generation.mark_unchanged();
            let inner = self.inner.watch(r, ns, p).await?;
            let cut = async move {
                let _ = generation.changed().await;
            };
            Ok(inner.take_until(Box::pin(cut)).boxed())
        }
        async fn create(&self, r: &ApiResource, ns: Option<&str>, o: Value) -> ClientResult<Value> {
            self.check()?;
            self.inner.create(r, ns, o).await
        }
        async fn update(&self, r: &ApiResource, ns: Option<&str>, o: Value) -> ClientResult<Value> {
            self.check()?;
            self.inner.update(r, ns, o).await
        }
        async fn update_status(
            &self,
            r: &ApiResource,
            ns: Option<&str>,
            o: Value,
        ) -> ClientResult<Value> {
            self.check()?;
            self.inner.update_status(r, ns, o).await
        }
        async fn patch(
            &self,
            r: &ApiResource,
            ns: Option<&str>,
            name: &str,
            p: &Patch,
            pp: &PatchParams,
        ) -> ClientResult<Value> {
            self.check()?;
            self.inner.patch(r, ns, name, p, pp).await
        }
        async fn delete(
            &self,
            r: &ApiResource,
            ns: Option<&str>,
            name: &str,
            d: &DeleteParams,
        ) -> ClientResult<Value> {
            self.check()?;
            self.inner.delete(r, ns, name, d).await
        }
    }

    fn cm(name: &str, data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    }

    #[tokio::test]
    async fn local_client_crud_goes_through_the_handlers() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let c = LocalClient::new(api, "test-manager");
        let cms = ApiResource::new("v1", "ConfigMap");
        let info = c
            .resolve(&ApiResource::new("v1", "configmaps"))
            .await
            .unwrap();
        assert_eq!((info.kind.as_str(), info.namespaced), ("ConfigMap", true));

        let created = c
            .create(&cms, Some("default"), cm("a", json!({"k": "v"})))
            .await
            .unwrap();
        assert_eq!(meta_str(&created, "namespace"), "default");
        assert_eq!(
            created["metadata"]["managedFields"][0]["manager"],
            "test-manager"
        );
        // Validation applies (a bad name is refused, 422).
        let err = c
            .create(&cms, Some("default"), cm("Not_Valid", json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.code(), 422);
        let dup = c
            .create(&cms, Some("default"), cm("a", json!({})))
            .await
            .unwrap_err();
        assert!(dup.is_already_exists());

        // Optimistic concurrency: an update from a stale version conflicts.
        let mut stale = created.clone();
        stale["data"]["k"] = json!("v2");
        let updated = c.update(&cms, None, stale.clone()).await.unwrap();
        assert_eq!(updated["data"]["k"], "v2");
        let err = c.update(&cms, None, stale).await.unwrap_err();
        assert!(err.is_conflict(), "{err}");

        let patched = c
            .patch(
                &cms,
                Some("default"),
                "a",
                &Patch::Merge(json!({"data": {"m": "1"}})),
                &PatchParams::default(),
            )
            .await
            .unwrap();
        assert_eq!(patched["data"], json!({"k": "v2", "m": "1"}));
        let applied = c
            .patch(
                &cms,
                Some("default"),
                "b",
                &Patch::Apply(cm("b", json!({"x": "y"}))),
                &PatchParams {
                    field_manager: Some("applier".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(applied["data"]["x"], "y");

        let list = c.list(&cms, None, &ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 2);
        assert!(list.resource_version.parse::<u64>().unwrap() > 0);
        let one = c
            .list(
                &cms,
                Some("default"),
                &ListParams {
                    field_selector: Some("metadata.name=b".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(one.items.len(), 1);

        // Preconditions on delete.
        let err = c
            .delete(
                &cms,
                Some("default"),
                "a",
                &DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some("not-the-uid".into()),
                        resource_version: None,
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(err.is_conflict());
        c.delete(&cms, Some("default"), "a", &DeleteParams::default())
            .await
            .unwrap();
        assert!(c.get(&cms, Some("default"), "a").await.unwrap().is_none());
        assert!(c.get(&cms, None, "a").await.is_err());
    }

    #[tokio::test]
    async fn local_client_update_status_and_subresource_patch() {
        let (api, _dir) = test_api(RedbStoreConfig::default()).await;
        let c = LocalClient::new(api, "test");
        let leases = ApiResource::new("coordination.k8s.io/v1", "Lease");
        let l = c
            .create(
                &leases,
                Some("kube-system"),
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}}),
            )
            .await
            .unwrap();
        assert_eq!(l["spec"]["holderIdentity"], "me");
        let pods = ApiResource::new("v1", "Pod");
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let mut pod = c.create(&pods, None, pod).await.unwrap();
        pod["status"] = json!({"phase": "Running"});
        pod["spec"]["containers"][0]["image"] = json!("ignored");
        let after = c.update_status(&pods, None, pod).await.unwrap();
        assert_eq!(after["status"]["phase"], "Running");
        assert_eq!(after["spec"]["containers"][0]["image"], "busybox");
        let after = c
            .patch(
                &pods,
                Some("default"),
                "p",
                &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
                &PatchParams {
                    subresource: Some("status".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(after["status"]["phase"], "Succeeded");
    }

    #[tokio::test]
    async fn local_client_watch_events_and_gone() {
        let (api, _dir) = test_api(RedbStoreConfig {
            retain_revisions: 3,
            compact_per_batch: 1_000,
            ..Default::default()
        })
        .await;
        let c = LocalClient::new(api, "test");
        let cms = ApiResource::new("v1", "ConfigMap");
        c.create(&cms, Some("default"), cm("a", json!({})))
            .await
            .unwrap();
        let list = c.list(&cms, None, &ListParams::default()).await.unwrap();
        let mut w = c
            .watch(
                &cms,
                None,
                &WatchParams {
                    resource_version: list.resource_version.clone(),
                    label_selector: Some("app=x".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        c.create(
            &cms,
            Some("default"),
            json!({"metadata": {"name": "b", "labels": {"app": "x"}}}),
        )
        .await
        .unwrap();
        c.patch(
            &cms,
            Some("default"),
            "b",
            &Patch::Merge(json!({"data": {"k": "v"}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
        // Leaving the selector is a deletion for this watcher.
        c.patch(
            &cms,
            Some("default"),
            "b",
            &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
        let kinds: Vec<&str> = {
            let mut v = vec![];
            for _ in 0..3 {
                match w.next().await.unwrap().unwrap() {
                    WatchEvent::Added(o) => v.push(("A", o)),
                    WatchEvent::Modified(o) => v.push(("M", o)),
                    WatchEvent::Deleted(o) => v.push(("D", o)),
                    WatchEvent::Bookmark { .. } => {}
                }
            }
            v.iter().map(|(k, _)| *k).collect()
        };
        assert_eq!(kinds, ["A", "M", "D"]);
        // Past the retained history: 410.
        for i in 0..10 {
            c.create(&cms, Some("default"), cm(&format!("n{i}"), json!({})))
                .await
                .unwrap();
        }
        let err = c
            .watch(
                &cms,
                None,
                &WatchParams {
                    resource_version: list.resource_version,
                    ..Default::default()
                },
            )
            .await
            .err()
            .expect("a watch from a compacted revision fails");
        assert!(err.is_gone(), "{err}");
    }
}
