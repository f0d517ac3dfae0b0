//! The node agent's own HTTPS endpoint (the kubelet's port 10250 in Kubernetes), served by
//! `tug agent` so that the API server can relay `kubectl logs` and `kubectl exec` of this
//! node's pods (`crate::api::proxy`):
//!
//! - `GET /containerLogs/NS/POD/UID/CONTAINER/INSTANCE?follow&tailLines&sinceSeconds&
//!   sinceTime&timestamps&limitBytes`: the CRI log of one container instance (the API server
//!   already chose the instance from the pod's status);
//! - `GET /exec/NS/POD/UID/CONTAINER/RESTART?command=…&stdin&stdout&stderr&tty`: a
//!   WebSocket exec session (`v5.channel.k8s.io`/v4) in that container instance;
//! - `GET /healthz`.
//!
//! TLS with a serving certificate the API server issued at join (signed by its node CA,
//! which only the API server trusts); every request but `/healthz` must carry the node join secret as a bearer token
//! (401 otherwise).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use axum::Router;
use axum::extract::ws::{WebSocketUpgrade, rejection};
use axum::extract::{Path, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::api::exec::ExecProvider;
use crate::api::logs::{self, LogTarget};
use crate::api::request::Query;
use crate::api::server::{self, Auth};
use crate::api::status::ApiError;
use crate::node::exec::{RuntimeExec, container_id};
use crate::runtime::container::{ContainerState, Runtime};

/// What the endpoint serves from.
#[derive(Clone)]
pub struct NodeServerConfig {
    /// The credential the API server presents (the node join secret).
    pub secret: String,
    /// The node agent's data dir (container logs are under `logs/`).
    pub data_dir: PathBuf,
    pub node_name: String,
    pub runtime: Arc<Runtime>,
}

#[derive(Clone)]
struct NodeState {
    data_dir: PathBuf,
    runtime: Arc<Runtime>,
    exec: Arc<dyn ExecProvider>,
}

/// Whether a path segment is a plain name (no `/`, `.` or `..`; what the runtime's own
/// names allow).
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check(parts: &[&str]) -> Result<(), ApiError> {
    match parts.iter().find(|p| !plain(p)) {
        Some(p) => Err(ApiError::bad_request(format!("invalid path segment {p:?}"))),
        None => Ok(()),
    }
}

async fn container_logs(
    State(st): State<NodeState>,
    Path((namespace, pod, uid, container, instance)): Path<(String, String, String, String, u64)>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(e) = check(&[&namespace, &pod, &uid, &container]) {
        return e.into_response();
    }
    let q = match Query::parse(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let Ok(restart) = u32::try_from(instance) else {
        return ApiError::bad_request("the instance is out of range").into_response();
    };
    let target = LogTarget {
        namespace,
        pod,
        uid,
        container,
        instance,
    };
    let id = container_id(&target.uid, &target.container, restart);
    let runtime = st.runtime.clone();
    let running = move || {
        let alive = runtime
            .status(&id)
            .is_some_and(|s| s.state != ContainerState::Exited);
        async move { alive }
    };
    match logs::serve_files(&st.data_dir, &target, &q, running) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn exec(
    State(st): State<NodeState>,
    Path((namespace, pod, uid, container, restart)): Path<(String, String, String, String, u32)>,
    RawQuery(raw): RawQuery,
    ws: Result<WebSocketUpgrade, rejection::WebSocketUpgradeRejection>,
) -> Response {
    if let Err(e) = check(&[&namespace, &pod, &uid, &container]) {
        return e.into_response();
    }
    crate::api::exec::serve_on_node(
        st.exec.clone(),
        (namespace, pod, uid, container, restart),
        raw.as_deref(),
        ws,
    )
}

async fn authenticate(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    if req.uri().path() != "/healthz" && !auth.allows(req.headers()) {
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}

/// The endpoint's routes.
pub fn router(cfg: &NodeServerConfig) -> Router {
    let st = NodeState {
        data_dir: cfg.data_dir.clone(),
        runtime: cfg.runtime.clone(),
        exec: RuntimeExec::new(cfg.runtime.clone(), cfg.node_name.clone()),
    };
    let auth = Auth {
        tokens: Arc::new(vec![cfg.secret.clone()]),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{uid}/{container}/{instance}",
            get(container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{uid}/{container}/{restart}",
            axum::routing::any(exec),
        )
        .with_state(st)
        .layer(middleware::from_fn_with_state(auth, authenticate))
}

/// Serves the endpoint on `listener` with the certificate and key (PEM) until the task is
/// dropped or aborted.
pub fn spawn(
    listener: TcpListener,
    cert_pem: &str,
    key_pem: &str,
    cfg: &NodeServerConfig,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let acceptor = server::tls_acceptor(cert_pem, key_pem)?;
    Ok(tokio::spawn(server::serve_tls(
        listener,
        acceptor,
        router(cfg),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_reach_the_file_system() {
        assert!(plain("default") && plain("web-7d9f_x.1"));
        for bad in ["", ".", "..", "a/b", "a b", "%2e%2e"] {
            assert!(!plain(bad), "{bad:?}");
        }
    }
}
