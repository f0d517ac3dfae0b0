//! The HTTPS front: TLS (rustls), bearer-token authentication, and routing of the
//! non-resource paths (version, health, discovery, OpenAPI) and the resource paths.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::pem::PemObject};

use super::request::{self, ApiPath, Query};
use super::status::ApiError;
use super::{Api, KUBE_VERSION, discovery};

/// Who may call the API.
#[derive(Clone)]
pub struct Auth {
    pub tokens: Arc<Vec<String>>,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// Whether the request carries one of the tokens as a bearer token.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(v) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(tok) = v.strip_prefix("Bearer ").map(str::trim) else {
            return false;
        };
        self.tokens
            .iter()
            .any(|t| constant_time_eq(t.as_bytes(), tok.as_bytes()))
    }
}

async fn authenticate(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let public = matches!(
        req.uri().path(),
        "/healthz" | "/livez" | "/readyz" | "/version" | "/cacerts"
    );
    if !public && !auth.allows(req.headers()) {
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}

fn json_reply(v: &Value) -> Response {
    let mut r = (StatusCode::OK, serde_json::to_vec(v).unwrap_or_default()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn bytes_reply(bytes: Vec<u8>, ct: &'static str) -> Response {
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

async fn version() -> Response {
    let v = KUBE_VERSION.trim_start_matches('v');
    let mut parts = v.split('.');
    json_reply(&json!({
        "major": parts.next().unwrap_or("1"),
        "minor": parts.next().unwrap_or("33"),
        "gitVersion": format!("{KUBE_VERSION}+tugboat-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    }))
}

async fn healthz() -> &'static str {
    "ok"
}

/// The gnostic protobuf form of the v2 document is served as just its header (swagger
/// version and info, no definitions): clients that ask for protobuf (kubectl's fallback for
/// kinds the v3 documents do not list) then skip client-side validation, and the full schemas
/// are in the JSON form and in `/openapi/v3`.
fn openapi_v2_protobuf_header() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
        out.push(tag << 3 | 2);
        let mut n = bytes.len();
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(bytes);
    }
    let mut info = vec![];
    field(&mut info, 1, b"Kubernetes");
    field(&mut info, 2, KUBE_VERSION.as_bytes());
    let mut doc = vec![];
    field(&mut doc, 1, b"2.0");
    field(&mut doc, 2, &info);
    doc
}

async fn openapi_v2(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json_first = accept.split(',').next().is_some_and(|a| a.contains("json"));
    if accept.contains("protobuf") && !json_first {
        return bytes_reply(
            openapi_v2_protobuf_header(),
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        );
    }
    let docs = api.openapi.docs(&api.registry.snapshot());
    bytes_reply(docs.v2.clone(), "application/json")
}

async fn openapi_v3_index(State(api): State<Arc<Api>>) -> Response {
    let docs = api.openapi.docs(&api.registry.snapshot());
    bytes_reply(docs.v3_index.clone(), "application/json")
}

async fn openapi_v3_gv(State(api): State<Arc<Api>>, uri: Uri) -> Response {
    let docs = api.openapi.docs(&api.registry.snapshot());
    let key = uri
        .path()
        .trim_start_matches("/openapi/v3/")
        .trim_end_matches('/');
    match docs.v3.get(key) {
        Some((_, bytes)) => bytes_reply(bytes.clone(), "application/json"),
        None => ApiError::no_route(format!("no OpenAPI v3 document for {key}")).into_response(),
    }
}

/// `GET /tugboat/v1/plugins/NAME/logs`: the running plugin's recent log lines (what it
/// printed, what it sent with `host.log`, and the runtime's notes on failed calls), one per
/// line: `TIME SOURCE MESSAGE`. `?tail=N` keeps the last N.
async fn plugin_logs(
    State(api): State<Arc<Api>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let tail = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("tail="))
        .map(|n| n.parse::<usize>());
    let tail = match tail {
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return ApiError::bad_request("tail must be a non-negative integer").into_response();
        }
        None => None,
    };
    let Some(lines) = api.admission.plugin_logs(&name).await else {
        return ApiError::new(
            404,
            "NotFound",
            format!("plugin \"{name}\" is not running (kubectl get plugin {name} says why)"),
        )
        .into_response();
    };
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    let mut text = String::new();
    for l in lines.iter().skip(skip) {
        let at = jiff::Timestamp::try_from(l.at)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        let source = serde_json::to_value(l.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        text.push_str(&format!("{at} {source} {}\n", l.message));
    }
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `PUT /tugboat/v1/blobs`: store a Wasm component in the server's content-addressed blob
/// store (components can be tens of MB, so they never go inside API objects); answers the
/// digest a `Plugin`'s `spec.source.blob` names.
async fn put_blob(State(api): State<Arc<Api>>, body: Body) -> Response {
    let limited = http_body_util::Limited::new(body, super::admission::MAX_BLOB_BYTES);
    let bytes = match http_body_util::BodyExt::collect(limited).await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::too_large(super::admission::MAX_BLOB_BYTES).into_response()
            } else {
                ApiError::bad_request(format!("reading the blob: {e}")).into_response()
            };
        }
    };
    if !bytes.starts_with(b"\0asm") {
        return ApiError::bad_request("the blob is not a WebAssembly binary (no \\0asm header)")
            .into_response();
    }
    match api.admission.put_blob(&bytes) {
        Ok(digest) => {
            let mut r = json_reply(&json!({"digest": digest, "size": bytes.len()}));
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /cacerts` (public): the cluster CA certificate, which a joining node agent checks
/// against the hash in its join token before trusting it (k3s's `/cacerts`).
async fn cacerts(State(api): State<Arc<Api>>) -> Response {
    let Some(dir) = api.config.data_dir.as_ref() else {
        return ApiError::no_route("this server has no CA").into_response();
    };
    match std::fs::read(dir.join("pki").join("ca.crt")) {
        Ok(pem) => bytes_reply(pem, "application/x-pem-file"),
        Err(e) => ApiError::internal(format!("reading the CA certificate: {e}")).into_response(),
    }
}

/// `POST /tugboat/v1/node-certificate` `{"nodeName": N, "addresses": [IP, …]}`: a serving
/// certificate and key for a joining node agent's endpoint (logs, exec), signed by the
/// node CA, so that this server can verify the node when it relays to it.
async fn node_certificate(State(api): State<Arc<Api>>, body: Body) -> Response {
    let bytes =
        match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, 64 * 1024)).await
        {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                return ApiError::bad_request(format!("reading the request: {e}")).into_response();
            }
        };
    let req: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::bad_request(format!("the request is not JSON: {e}")).into_response();
        }
    };
    let name = req.get("nodeName").and_then(Value::as_str).unwrap_or("");
    let errs = super::validation::is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return ApiError::bad_request(format!("nodeName {name:?}: {}", errs.join("; ")))
            .into_response();
    }
    let mut ips = vec![];
    for a in req
        .get("addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match a.as_str().and_then(|s| s.parse::<std::net::IpAddr>().ok()) {
            Some(ip) => ips.push(ip),
            None => {
                return ApiError::bad_request(format!("{a} is not an IP address")).into_response();
            }
        }
    }
    let Some(dir) = api.config.data_dir.as_ref() else {
        return ApiError::no_route("this server has no CA").into_response();
    };
    match super::pki::issue_node_cert(dir, name, &ips) {
        Ok((cert, key)) => json_reply(&json!({"certificate": cert, "key": key})),
        Err(e) => {
            ApiError::internal(format!("issuing the node certificate: {e:#}")).into_response()
        }
    }
}

/// Everything under /api and /apis.
async fn dispatch(
    State(api): State<Arc<Api>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(path) = request::parse_path(uri.path()) else {
        return ApiError::no_route(format!(
            "the server could not find the requested resource: {}",
            uri.path()
        ))
        .into_response();
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let catalog = api.registry.snapshot();
    match path {
        ApiPath::Root { legacy } => {
            if discovery::wants_aggregated(&accept) {
                let mut r = json_reply(&discovery::aggregated(&catalog, legacy));
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(discovery::AGGREGATED_V2));
                return r;
            }
            if legacy {
                json_reply(&discovery::api_versions(&api.config.advertise_address))
            } else {
                json_reply(&discovery::api_group_list(&catalog))
            }
        }
        ApiPath::Group { group } => match discovery::api_group(&catalog, &group) {
            Some(v) => json_reply(&v),
            None => ApiError::no_route(format!("the server could not find the requested resource: API group {group:?} is not served")).into_response(),
        },
        ApiPath::GroupVersion { group, version } => match discovery::resource_list(&catalog, &group, &version) {
            Some(v) => json_reply(&v),
            None => ApiError::no_route(format!("the server could not find the requested resource: {group}/{version} is not served")).into_response(),
        },
        ApiPath::Resource(rp) => {
            let query = match Query::parse(uri.query()) {
                Ok(q) => q,
                Err(e) => return e.into_response(),
            };
            let started = std::time::Instant::now();
            let m = method.clone();
            let resp = match api.handle_resource(method, rp, query, headers, body).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            tracing::debug!(method = %m, path = %uri.path(), code = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
            resp
        }
    }
}

/// The router of the whole API.
pub fn router(api: Arc<Api>, auth: Auth) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(healthz))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3_index))
        .route("/openapi/v3/{*gv}", get(openapi_v3_gv))
        .route("/cacerts", get(cacerts))
        .route(
            "/tugboat/v1/node-certificate",
            axum::routing::post(node_certificate),
        )
        .route("/tugboat/v1/plugins/{name}/logs", get(plugin_logs))
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            axum::routing::any(super::exec::serve),
        )
        .route(
            "/tugboat/v1/blobs",
            axum::routing::put(put_blob).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .fallback(dispatch)
        .with_state(api)
        .layer(middleware::from_fn_with_state(auth, authenticate))
}

/// A TLS acceptor for the serving certificate (HTTP/2 and HTTP/1.1 by ALPN).
pub fn tls_acceptor(cert_pem: &str, key_pem: &str) -> Result<TlsAcceptor> {
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the serving certificate")?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .context("parsing the serving key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS server configuration")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Serve `router` over TLS on `listener` until the process ends.
pub async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, router: Router) -> Result<()> {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let svc = hyper_util::service::TowerToHyperService::new(router);
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(1000);
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Bind, returning the listener and the address it got (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let a = l.local_addr()?;
    Ok((l, a))
}
