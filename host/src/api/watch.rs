//! Watches: the newline-delimited JSON event stream (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR),
//! resumable from a resourceVersion, with bookmarks, initial events and Table rows.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Api;
use super::handlers::Target;
use super::object::{decode_at, decode_stored};
use super::request::{Accept, Query};
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use crate::store::{Event, EventKind, StoreError};

/// The longest a watch stays open when the client names no timeout (Kubernetes uses
/// 30 to 60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

struct Encoder {
    api: Arc<Api>,
    target: Target,
    query: Query,
    accept: Accept,
    columns_sent: bool,
}

impl Encoder {
    fn line(&mut self, kind: &str, obj: Value) -> bytes::Bytes {
        let object = match (self.accept, kind) {
            (Accept::Table, "ADDED" | "MODIFIED" | "DELETED") => {
                let with_cols = !self.columns_sent;
                self.columns_sent = true;
                let rv = super::object::meta_str(&obj, "resourceVersion").to_string();
                let (cols, rows) =
                    self.api
                        .table_rows(&self.target.rt, vec![obj], &self.query, with_cols);
                super::table::build_table(cols, rows, &rv, None, None)
            }
            (Accept::PartialMetadata, "ADDED" | "MODIFIED" | "DELETED") => {
                super::table::partial_object_metadata(&obj)
            }
            _ => obj,
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        line.into()
    }

    fn bookmark(&mut self, rv: u64, initial_end: bool) -> bytes::Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.target.rt.kind, "apiVersion": self.target.rt.api_version(), "metadata": meta});
        self.line("BOOKMARK", obj)
    }

    fn error(&mut self, e: &ApiError) -> bytes::Bytes {
        self.line("ERROR", e.to_status())
    }
}

/// What a watcher with these selectors (and, if given, name) sees of one store event: the
/// event type (`ADDED`, `MODIFIED`, `DELETED`) and the object at the event's revision, or
/// `None` when the event does not concern it. An object that starts (stops) matching the
/// selectors is `ADDED` (`DELETED`), as Kubernetes does.
pub fn watch_event(
    rt: &ResourceType,
    ls: &LabelSelector,
    fs: &FieldSelector,
    name: Option<&str>,
    ev: &Event,
) -> Option<(&'static str, Value)> {
    let new = decode_at(&ev.value, ev.revision).ok()?;
    if name.is_some_and(|n| n != super::object::meta_str(&new, "name")) {
        return None;
    }
    let now_matches = Api::selected(rt, ls, fs, &new);
    let before_matches = ev
        .prev_value
        .as_ref()
        .and_then(|p| decode_at(p, ev.revision).ok())
        .is_some_and(|p| Api::selected(rt, ls, fs, &p));
    let kind = match (ev.kind, before_matches, now_matches) {
        (EventKind::Create, _, true) => "ADDED",
        (EventKind::Update, true, true) => "MODIFIED",
        (EventKind::Update, false, true) => "ADDED",
        (EventKind::Update, true, false) => "DELETED",
        (EventKind::Delete, _, true) => "DELETED",
        _ => return None,
    };
    Some((kind, new))
}

impl Api {
    pub(super) async fn watch(
        self: &Arc<Self>,
        t: Target,
        query: Query,
        accept: Accept,
    ) -> ApiResult<Response> {
        let (ls, fs) = self.parse_selectors(&t, &query)?;
        let rv = query.resource_version()?;
        let timeout = query
            .timeout_seconds()?
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_WATCH_TIMEOUT);
        let bookmarks = query.bookmarks();
        let send_initial = query.send_initial_events();
        let prefix = t.rt.key_prefix(t.namespace.as_deref());
        let name_filter = t.name.clone();

        // Initial state: for rv unset/0 (or sendInitialEvents), synthetic ADDED events.
        let replay_state = rv.is_none() || rv == Some(0) || send_initial;
        let (initial, start_rev) = if replay_state {
            let list_t = Target {
                rt: t.rt.clone(),
                namespace: t.namespace.clone(),
                name: None,
                subresource: None,
            };
            let page = self
                .store
                .list(&prefix, None, 0)
                .await
                .map_err(|e| ApiError::from_store(e, &list_t.subject("")))?;
            let mut objs = vec![];
            for kv in &page.items {
                let o = decode_stored(kv)?;
                if name_filter
                    .as_deref()
                    .is_some_and(|n| n != super::object::meta_str(&o, "name"))
                {
                    continue;
                }
                if Api::selected(&t.rt, &ls, &fs, &o) {
                    objs.push(o);
                }
            }
            (objs, page.revision)
        } else {
            (vec![], rv.unwrap_or(0))
        };

        let (tx, rx) = mpsc::channel::<bytes::Bytes>(256);
        let mut enc = Encoder {
            api: self.clone(),
            target: t,
            query,
            accept,
            columns_sent: false,
        };
        let stream = self.store.watch(&prefix, start_rev);
        let rt = enc.target.rt.clone();
        let bookmark_every = self.config.bookmark_interval;
        tokio::spawn(async move {
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    let err = match e {
                        StoreError::Compacted { requested, oldest } => ApiError::expired(format!(
                            "too old resource version: {requested} ({oldest})"
                        )),
                        other => ApiError::internal(other.to_string()),
                    };
                    let _ = tx.send(enc.error(&err)).await;
                    return;
                }
            };
            for o in initial {
                if tx.send(enc.line("ADDED", o)).await.is_err() {
                    return;
                }
            }
            let mut last_rev = start_rev;
            if send_initial && bookmarks && tx.send(enc.bookmark(last_rev, true)).await.is_err() {
                return;
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut ticker = tokio::time::interval(bookmark_every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                let next = tokio::select! {
                    _ = &mut deadline => return,
                    _ = tx.closed() => return,
                    _ = ticker.tick(), if bookmarks => {
                        if tx.send(enc.bookmark(last_rev, false)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    ev = stream.next() => ev,
                };
                let ev = match next {
                    None => return,
                    Some(Err(StoreError::Compacted { requested, oldest })) => {
                        let _ = tx
                            .send(enc.error(&ApiError::expired(format!(
                                "too old resource version: {requested} ({oldest})"
                            ))))
                            .await;
                        return;
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(enc.error(&ApiError::internal(e.to_string()))).await;
                        return;
                    }
                    Some(Ok(ev)) => ev,
                };
                last_rev = ev.revision;
                let Some((kind, new)) = watch_event(&rt, &ls, &fs, name_filter.as_deref(), &ev)
                else {
                    continue;
                };
                if tx.send(enc.line(kind, new)).await.is_err() {
                    return;
                }
            }
        });
        let body = Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>),
        );
        let mut resp = Response::new(body);
        *resp.status_mut() = StatusCode::OK;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, private"),
        );
        Ok(resp)
    }
}
