//! [`HttpClient`]: the [`ApiClient`] of a node agent on another machine (`tug agent`), over
//! HTTPS to the API server, with the semantics of [`super::client::LocalClient`]:
//!
//! - errors are the server's `Status` (code, reason, message); 410 is
//!   [`ClientError::Gone`]; a server that cannot be reached is a 503 `ServiceUnavailable`;
//! - a watch is the server's stream of JSON lines (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR).
//!   Like an in-process watch it does not end by itself: when the connection ends or breaks
//!   (the server's watch timeout, a restart) it is opened again from the last
//!   resourceVersion seen, so the caller sees one uninterrupted stream; only a 410 (that
//!   version was compacted: relist) or another error the server sends ends it. A watch
//!   with [`WatchParams::timeout`] ends after it, as asked.
//!
//! [`HttpClient::join`] connects with a node join token (`K10<sha256 of the CA>::node:
//! <secret>`, see [`super::pki::JoinToken`]): it fetches the CA from the server's public
//! `/cacerts`, checks its hash against the token, then trusts only that CA.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_rustls::rustls;

use super::client::{
    ApiClient, ApiResource, ClientError, ClientResult, DeleteParams, ListParams, ObjectList, Patch,
    PatchParams, ResourceInfo, WatchEvent, WatchParams, WatchStream,
};
use super::pki::{JoinToken, ca_hash};

/// How long a request other than a watch may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a single watch request stays open before it is renewed (the server ends it
/// after its own timeout anyway).
const WATCH_RENEW: Duration = Duration::from_secs(600);
/// Back-off between attempts to reopen a broken watch.
const REWATCH_MIN: Duration = Duration::from_millis(100);
const REWATCH_MAX: Duration = Duration::from_secs(5);

/// [`ApiClient`] over HTTPS.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
    field_manager: String,
    /// How long one watch request stays open before it is renewed.
    watch_renew: Duration,
}

struct Inner {
    base: String,
    token: String,
    http: reqwest::Client,
    /// Discovery per group-version (`v1`, `apps/v1`): the resources served.
    discovery: Mutex<HashMap<String, Arc<Vec<ResourceInfo>>>>,
    ca_pem: String,
}

fn unavailable(e: impl std::fmt::Display) -> ClientError {
    ClientError::Api {
        code: 503,
        reason: "ServiceUnavailable".into(),
        message: e.to_string(),
    }
}

/// The message of a reqwest error with its causes (its Display shows only the first).
fn chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// The error of a non-2xx answer: the `Status` it carries, else its text.
fn status_error(code: u16, body: &[u8]) -> ClientError {
    let status: Option<Value> = serde_json::from_slice(body).ok();
    from_status(code, status.as_ref(), body)
}

fn from_status(code: u16, status: Option<&Value>, body: &[u8]) -> ClientError {
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(code);
    let message = status
        .and_then(|s| s.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    if code == 410 {
        return ClientError::Gone(message);
    }
    let reason = status
        .and_then(|s| s.get("reason"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            StatusCode::from_u16(code)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or("Unknown")
                .replace(' ', "")
        });
    ClientError::Api {
        code,
        reason,
        message,
    }
}

/// A TLS configuration that accepts any server certificate: only for fetching the CA,
/// which is then checked against the join token's hash.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Fetches `<server>/cacerts` without verifying the server, and checks it against the
/// token's hash: the CA to trust.
pub async fn fetch_ca(server: &str, token: &JoinToken) -> anyhow::Result<String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(cfg)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .http1_only()
        .no_proxy()
        .build()
        .context("building an HTTP client")?;
    let url = format!("{}/cacerts", server.trim_end_matches('/'));
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("fetching {url}: {}", chain(&e)))?;
    if !resp.status().is_success() {
        anyhow::bail!("fetching {url}: {}", resp.status());
    }
    let ca = resp
        .text()
        .await
        .with_context(|| format!("reading {url}"))?;
    let got = ca_hash(&ca);
    if got != token.ca_hash {
        anyhow::bail!(
            "the CA served at {url} (sha256 {got}) is not the one the join token names \
             ({}): wrong server or a tampered connection",
            token.ca_hash
        );
    }
    Ok(ca)
}

impl HttpClient {
    /// A client of the API at `server` (`https://host:port`) that trusts only the CAs in
    /// `ca_pem` and sends `token` as a bearer token; writes are recorded as
    /// `field_manager`'s.
    pub fn new(
        server: &str,
        ca_pem: &str,
        token: &str,
        field_manager: impl Into<String>,
    ) -> anyhow::Result<HttpClient> {
        let tls = super::proxy::client_tls(ca_pem)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .http1_only()
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(HttpClient {
            inner: Arc::new(Inner {
                base: server.trim_end_matches('/').to_string(),
                token: token.to_string(),
                http,
                discovery: Mutex::new(HashMap::new()),
                ca_pem: ca_pem.to_string(),
            }),
            field_manager: field_manager.into(),
            watch_renew: WATCH_RENEW,
        })
    }

    /// The same client, renewing each watch request after `every` (default 10 minutes).
    pub fn with_watch_renew(mut self, every: Duration) -> HttpClient {
        self.watch_renew = every.max(Duration::from_secs(1));
        self
    }

    /// Joins with a node join token: fetches and verifies the server's CA (see
    /// [`fetch_ca`]), then authenticates with the token's secret, and checks that the server
    /// accepts it.
    pub async fn join(
        server: &str,
        token: &str,
        field_manager: impl Into<String>,
    ) -> anyhow::Result<HttpClient> {
        let token = JoinToken::parse(token)?;
        let ca = fetch_ca(server, &token).await?;
        let c = HttpClient::new(server, &ca, &token.secret, field_manager)?;
        c.resolve(&ApiResource::new("v1", "Node"))
            .await
            .map_err(|e| anyhow::anyhow!("the server refused the join token: {e}"))?;
        Ok(c)
    }

    /// The cluster CA this client trusts (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.inner.base
    }

    /// The same client, writing as another field manager.
    pub fn with_field_manager(&self, field_manager: impl Into<String>) -> HttpClient {
        HttpClient {
            inner: self.inner.clone(),
            field_manager: field_manager.into(),
            watch_renew: self.watch_renew,
        }
    }

    /// POSTs `body` to `path` (a non-resource path, e.g. `/tugboat/v1/node-certificate`)
    /// and returns the JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> ClientResult<Value> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// A request to `path` (from the server's root) with the credentials.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.inner
            .http
            .request(method, format!("{}{path}", self.inner.base))
            .bearer_auth(&self.inner.token)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Sends and decodes a JSON answer (a non-2xx answer is its Status).
    async fn send(&self, req: reqwest::RequestBuilder) -> ClientResult<Value> {
        let resp = req
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| unavailable(chain(&e)))?;
        let code = resp.status();
        let body = resp.bytes().await.map_err(|e| unavailable(chain(&e)))?;
        if !code.is_success() {
            return Err(status_error(code.as_u16(), &body));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Api {
            code: 500,
            reason: "InternalError".into(),
            message: format!("the server's answer is not JSON: {e}"),
        })
    }

    /// The resources of a group-version, from discovery (cached).
    async fn discover(
        &self,
        api_version: &str,
        refresh: bool,
    ) -> ClientResult<Arc<Vec<ResourceInfo>>> {
        if !refresh && let Some(r) = self.inner.discovery.lock().get(api_version) {
            return Ok(r.clone());
        }
        let path = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        let list = self.send(self.request(Method::GET, &path)).await?;
        let infos: Vec<ResourceInfo> = list
            .get("resources")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        let plural = r.get("name").and_then(Value::as_str)?;
                        if plural.contains('/') {
                            return None;
                        }
                        Some(ResourceInfo {
                            api_version: api_version.to_string(),
                            kind: r.get("kind").and_then(Value::as_str)?.to_string(),
                            plural: plural.to_string(),
                            namespaced: r
                                .get("namespaced")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                            custom: false,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let infos = Arc::new(infos);
        self.inner
            .discovery
            .lock()
            .insert(api_version.to_string(), infos.clone());
        Ok(infos)
    }

    async fn info(&self, resource: &ApiResource) -> ClientResult<ResourceInfo> {
        let find = |list: &[ResourceInfo]| {
            list.iter()
                .find(|r| r.kind == resource.kind || r.plural == resource.kind)
                .cloned()
        };
        let known = match self.discover(&resource.api_version, false).await {
            Ok(l) => find(&l),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if let Some(i) = known {
            return Ok(i);
        }
        // Maybe a CRD that appeared since: ask again once.
        let fresh = match self.discover(&resource.api_version, true).await {
            Ok(l) => find(&l),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        fresh.ok_or_else(|| ClientError::Api {
            code: 404,
            reason: "NotFound".into(),
            message: format!("the server does not serve {resource}"),
        })
    }

    /// The path of a resource: its collection in `namespace` (or all), or the named
    /// object and its subresource.
    async fn path(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: Option<&str>,
        subresource: Option<&str>,
        listing: bool,
    ) -> ClientResult<(String, ResourceInfo)> {
        let info = self.info(resource).await?;
        let namespace = namespace.filter(|n| info.namespaced && !n.is_empty());
        if info.namespaced && namespace.is_none() && !listing {
            return Err(ClientError::bad_request(format!(
                "{} is namespaced: a namespace is required",
                info.plural
            )));
        }
        let mut p = if resource.api_version.contains('/') {
            format!("/apis/{}", resource.api_version)
        } else {
            format!("/api/{}", resource.api_version)
        };
        if let Some(ns) = namespace {
            p.push_str(&format!("/namespaces/{}", enc(ns)));
        }
        p.push('/');
        p.push_str(&info.plural);
        if let Some(n) = name {
            p.push('/');
            p.push_str(&enc(n));
        }
        if let Some(s) = subresource {
            p.push('/');
            p.push_str(s);
        }
        Ok((p, info))
    }

    fn write_namespace<'a>(namespace: Option<&'a str>, object: &'a Value) -> Option<&'a str> {
        namespace.or_else(|| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
    }

    async fn replace(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: Value,
        subresource: Option<&str>,
    ) -> ClientResult<Value> {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            return Err(ClientError::bad_request(
                "an update needs metadata.name in the object",
            ));
        }
        let ns = Self::write_namespace(namespace, &object).map(str::to_string);
        let (path, _) = self
            .path(resource, ns.as_deref(), Some(&name), subresource, false)
            .await?;
        self.send(
            self.request(Method::PUT, &path)
                .query(&[("fieldManager", &self.field_manager)])
                .json(&object),
        )
        .await
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// List items carry no apiVersion/kind on the wire; the in-process client's do.
fn with_kind(mut o: Value, info: &ResourceInfo) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.entry("apiVersion")
            .or_insert_with(|| json!(info.api_version));
        m.entry("kind").or_insert_with(|| json!(info.kind));
    }
    o
}

/// One line of a watch stream, decoded.
fn decode_event(line: &[u8], info: &ResourceInfo) -> Result<WatchEvent, ClientError> {
    let v: Value = serde_json::from_slice(line).map_err(|e| ClientError::Api {
        code: 500,
        reason: "InternalError".into(),
        message: format!("an invalid watch event: {e}"),
    })?;
    let object = v.get("object").cloned().unwrap_or(Value::Null);
    match v.get("type").and_then(Value::as_str).unwrap_or("") {
        "ADDED" => Ok(WatchEvent::Added(with_kind(object, info))),
        "MODIFIED" => Ok(WatchEvent::Modified(with_kind(object, info))),
        "DELETED" => Ok(WatchEvent::Deleted(with_kind(object, info))),
        "BOOKMARK" => Ok(WatchEvent::Bookmark {
            resource_version: object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }),
        "ERROR" => Err(from_status(500, Some(&object), b"")),
        other => Err(ClientError::Api {
            code: 500,
            reason: "InternalError".into(),
            message: format!("an unknown watch event type {other:?}"),
        }),
    }
}

/// What ended one watch request.
enum Ended {
    /// The connection ended or broke: open it again.
    Reconnect,
    /// The consumer went away, or an error was delivered: stop.
    Stop,
}

impl HttpClient {
    /// Opens one watch request from `rv`.
    async fn open_watch(
        &self,
        path: &str,
        params: &WatchParams,
        rv: &str,
        timeout: Option<Duration>,
    ) -> ClientResult<reqwest::Response> {
        let mut q: Vec<(&str, String)> = vec![("watch", "true".into())];
        if !rv.is_empty() {
            q.push(("resourceVersion", rv.to_string()));
        }
        if params.bookmarks {
            q.push(("allowWatchBookmarks", "true".into()));
        }
        if let Some(l) = &params.label_selector {
            q.push(("labelSelector", l.clone()));
        }
        if let Some(f) = &params.field_selector {
            q.push(("fieldSelector", f.clone()));
        }
        let secs = timeout
            .unwrap_or(self.watch_renew)
            .min(self.watch_renew)
            .as_secs()
            .max(1);
        q.push(("timeoutSeconds", secs.to_string()));
        let resp = self
            .request(Method::GET, path)
            .query(&q)
            .send()
            .await
            .map_err(|e| unavailable(chain(&e)))?;
        let code = resp.status();
        if !code.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(status_error(code.as_u16(), &body));
        }
        Ok(resp)
    }
}

/// Reads one watch response into `tx`, tracking the last resourceVersion in `rv`.
async fn pump_watch(
    resp: reqwest::Response,
    info: &ResourceInfo,
    tx: &mpsc::Sender<ClientResult<WatchEvent>>,
    rv: &mut String,
    delivered: &mut bool,
) -> Ended {
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            _ = tx.closed() => return Ended::Stop,
            c = body.next() => c,
        };
        match chunk {
            None | Some(Err(_)) => return Ended::Reconnect,
            Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
        }
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let ev = decode_event(line, info);
            let next_rv = match &ev {
                Ok(WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o)) => o
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                Ok(WatchEvent::Bookmark { resource_version }) => Some(resource_version.clone()),
                Err(_) => None,
            };
            // The newest version seen (initial ADDED events come in key order, not in
            // version order): a reconnect resumes after it.
            if let Some(r) = next_rv.filter(|r| !r.is_empty()) {
                match (r.parse::<u64>(), rv.parse::<u64>()) {
                    (Ok(new), Ok(old)) if new <= old => {}
                    _ => *rv = r,
                }
            }
            let is_err = ev.is_err();
            if tx.send(ev).await.is_err() || is_err {
                return Ended::Stop;
            }
            *delivered = true;
        }
    }
}

#[async_trait::async_trait]
impl ApiClient for HttpClient {
    async fn resolve(&self, resource: &ApiResource) -> ClientResult<ResourceInfo> {
        self.info(resource).await
    }

    async fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> ClientResult<Option<Value>> {
        let (path, info) = self
            .path(resource, namespace, Some(name), None, false)
            .await?;
        match self.send(self.request(Method::GET, &path)).await {
            Ok(v) => Ok(Some(with_kind(v, &info))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> ClientResult<ObjectList> {
        let (path, info) = self.path(resource, namespace, None, None, true).await?;
        let mut q: Vec<(&str, &str)> = vec![];
        if let Some(l) = &params.label_selector {
            q.push(("labelSelector", l));
        }
        if let Some(f) = &params.field_selector {
            q.push(("fieldSelector", f));
        }
        let list = self
            .send(self.request(Method::GET, &path).query(&q))
            .await?;
        let resource_version = list
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let items = match list.get("items") {
            Some(Value::Array(a)) => a.iter().map(|o| with_kind(o.clone(), &info)).collect(),
            _ => vec![],
        };
        Ok(ObjectList {
            items,
            resource_version,
        })
    }

    async fn watch(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        params: &WatchParams,
    ) -> ClientResult<WatchStream> {
        let (path, info) = self.path(resource, namespace, None, None, true).await?;
        let deadline = params.timeout.map(|t| tokio::time::Instant::now() + t);
        // The first request is made here, so that its errors (410 included) are this
        // call's, as with the in-process client.
        let first = self
            .open_watch(&path, params, &params.resource_version, params.timeout)
            .await?;
        let (tx, rx) = mpsc::channel::<ClientResult<WatchEvent>>(256);
        let client = self.clone();
        let params = params.clone();
        tokio::spawn(async move {
            let mut rv = params.resource_version.clone();
            let mut resp = Some(first);
            let mut delay = REWATCH_MIN;
            loop {
                let r = match resp.take() {
                    Some(r) => r,
                    None => {
                        let left = match deadline {
                            Some(d) => {
                                match d.checked_duration_since(tokio::time::Instant::now()) {
                                    Some(l) if !l.is_zero() => Some(l),
                                    _ => return,
                                }
                            }
                            None => None,
                        };
                        match client.open_watch(&path, &params, &rv, left).await {
                            Ok(r) => r,
                            Err(e) if e.code() == 503 => {
                                // The server cannot be reached: try again.
                                tracing::debug!(error = %e, retry_in = ?delay, "watch: reconnecting");
                                tokio::select! {
                                    _ = tx.closed() => return,
                                    _ = tokio::time::sleep(delay) => {}
                                }
                                delay = (delay * 2).min(REWATCH_MAX);
                                continue;
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        }
                    }
                };
                let mut delivered = false;
                match pump_watch(r, &info, &tx, &mut rv, &mut delivered).await {
                    Ended::Stop => return,
                    Ended::Reconnect => {
                        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                            return;
                        }
                        if delivered {
                            delay = REWATCH_MIN;
                        } else {
                            tokio::select! {
                                _ = tx.closed() => return,
                                _ = tokio::time::sleep(delay) => {}
                            }
                            delay = (delay * 2).min(REWATCH_MAX);
                        }
                    }
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }

    async fn create(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        object: Value,
    ) -> ClientResult<Value> {
        let ns = Self::write_namespace(namespace, &object).map(str::to_string);
        let (path, info) = self
            .path(resource, ns.as_deref(), None, None, false)
            .await?;
        let object = with_kind(object, &info);
        self.send(
            self.request(Method::POST, &path)
                .query(&[("fieldManager", &self.field_manager)])
                .json(&object),
        )
        .await
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
        let (path, _) = self
            .path(
                resource,
                namespace,
                Some(name),
                params.subresource.as_deref(),
                false,
            )
            .await?;
        let manager = params
            .field_manager
            .clone()
            .unwrap_or_else(|| self.field_manager.clone());
        let mut q = vec![("fieldManager", manager)];
        if params.force {
            q.push(("force", "true".into()));
        }
        let body = serde_json::to_vec(patch.body())
            .map_err(|e| ClientError::bad_request(format!("encoding the patch: {e}")))?;
        self.send(
            self.request(Method::PATCH, &path)
                .query(&q)
                .header(reqwest::header::CONTENT_TYPE, patch.content_type())
                .body(body),
        )
        .await
    }

    async fn create_subresource(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        subresource: &str,
        object: Value,
    ) -> ClientResult<Value> {
        let (path, _) = self
            .path(resource, namespace, Some(name), Some(subresource), false)
            .await?;
        self.send(
            self.request(Method::POST, &path)
                .query(&[("fieldManager", &self.field_manager)])
                .json(&object),
        )
        .await
    }

    async fn delete(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        params: &DeleteParams,
    ) -> ClientResult<Value> {
        let (path, _) = self
            .path(resource, namespace, Some(name), None, false)
            .await?;
        self.send(
            self.request(Method::DELETE, &path)
                .json(&params.to_delete_options()),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client::{Preconditions, PropagationPolicy};
    use crate::api::server;
    use crate::store::redb::{RedbStore, RedbStoreConfig};

    /// A real API server over TLS on loopback (its store keeps `retain` revisions): its URL
    /// and node join token; the temp dirs keep it alive.
    async fn serve(
        retain: u64,
    ) -> (
        String,
        String,
        Vec<tempfile::TempDir>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RedbStore::open(
            &dir.path().join("store.redb"),
            RedbStoreConfig {
                retain_revisions: retain,
                compact_per_batch: 1_000,
                ..Default::default()
            },
        )
        .expect("open store");
        let (listener, addr) = server::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let creds = crate::api::pki::ensure(dir.path(), &addr).expect("credentials");
        let (token, _) =
            crate::api::pki::ensure_node_token(dir.path(), &creds.ca_pem).expect("token");
        // `/cacerts` reads the CA from the API's data dir.
        let api = crate::api::Api::new(
            store,
            crate::api::ApiConfig {
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
        );
        api.ensure_default_namespaces()
            .await
            .expect("default namespaces");
        let auth = server::Auth {
            tokens: Arc::new(vec![creds.admin_token.clone(), token.secret.clone()]),
        };
        let acceptor = server::tls_acceptor(&creds.cert_pem, &creds.key_pem).expect("tls");
        let task = tokio::spawn(server::serve_tls(
            listener,
            acceptor,
            server::router(api, auth),
        ));
        (format!("https://{addr}"), token.render(), vec![dir], task)
    }

    fn cm(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": labels}, "data": {"k": "v"}})
    }

    #[tokio::test]
    async fn http_client_joins_and_does_what_the_local_client_does() {
        let (url, token, _dirs, task) = serve(100_000).await;
        // A wrong secret is refused (401); a token naming another CA is not trusted.
        let parsed = JoinToken::parse(&token).unwrap();
        let wrong = JoinToken {
            secret: "wrong".into(),
            ..parsed.clone()
        };
        let err = HttpClient::join(&url, &wrong.render(), "t")
            .await
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("401"), "{err:#}");
        let other_ca = JoinToken {
            ca_hash: "0".repeat(64),
            ..parsed
        };
        let err = HttpClient::join(&url, &other_ca.render(), "t")
            .await
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("is not the one"), "{err:#}");

        let c = HttpClient::join(&url, &token, "test-manager")
            .await
            .unwrap();
        let cms = ApiResource::new("v1", "ConfigMap");
        let info = c
            .resolve(&ApiResource::new("v1", "configmaps"))
            .await
            .unwrap();
        assert_eq!((info.kind.as_str(), info.namespaced), ("ConfigMap", true));
        assert!(
            c.resolve(&ApiResource::new("v1", "Nope"))
                .await
                .unwrap_err()
                .is_not_found()
        );
        let created = c.create(&cms, None, cm("a", json!({}))).await.unwrap();
        assert_eq!(
            created["metadata"]["managedFields"][0]["manager"],
            "test-manager"
        );
        assert!(
            c.create(&cms, None, cm("a", json!({})))
                .await
                .unwrap_err()
                .is_already_exists()
        );
        let err = c
            .create(&cms, None, cm("Not_Valid", json!({})))
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.reason()), (422, "Invalid"));
        let mut stale = created.clone();
        stale["data"]["k"] = json!("v2");
        c.update(&cms, None, stale.clone()).await.unwrap();
        assert!(c.update(&cms, None, stale).await.unwrap_err().is_conflict());
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
                &Patch::Apply(cm("b", json!({"app": "x"}))),
                &PatchParams::default(),
            )
            .await
            .unwrap();
        assert_eq!(applied["metadata"]["labels"]["app"], "x");
        let got = c.get(&cms, Some("default"), "b").await.unwrap().unwrap();
        assert_eq!(got["kind"], "ConfigMap");
        assert!(c.get(&cms, Some("default"), "zz").await.unwrap().is_none());
        let list = c
            .list(
                &cms,
                None,
                &ListParams {
                    label_selector: Some("app=x".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1);
        assert_eq!(list.items[0]["kind"], "ConfigMap");
        assert!(list.resource_version.parse::<u64>().unwrap() > 0);
        // Subresources: a pod's status and its binding.
        let pods = ApiResource::new("v1", "Pod");
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        c.create(&pods, None, pod).await.unwrap();
        let bound = c
            .create_subresource(
                &pods,
                Some("default"),
                "p",
                "binding",
                json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                    "target": {"kind": "Node", "name": "n1"}}),
            )
            .await;
        assert!(bound.is_ok(), "{bound:?}");
        let after = c
            .patch(
                &pods,
                Some("default"),
                "p",
                &Patch::Merge(json!({"status": {"phase": "Running"}})),
                &PatchParams {
                    subresource: Some("status".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(after["status"]["phase"], "Running");
        assert_eq!(after["spec"]["nodeName"], "n1");
        // Deletes with preconditions.
        let err = c
            .delete(
                &cms,
                Some("default"),
                "a",
                &DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some("x".into()),
                        resource_version: None,
                    }),
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(err.is_conflict(), "{err}");
        c.delete(&cms, Some("default"), "a", &DeleteParams::default())
            .await
            .unwrap();
        assert!(c.get(&cms, Some("default"), "a").await.unwrap().is_none());
        task.abort();
    }

    #[tokio::test]
    async fn http_client_watches_like_the_local_client() {
        let (url, token, _dirs, task) = serve(3).await;
        let c = HttpClient::join(&url, &token, "t").await.unwrap();
        let cms = ApiResource::new("v1", "ConfigMap");
        c.create(&cms, None, cm("a", json!({}))).await.unwrap();
        let list = c.list(&cms, None, &ListParams::default()).await.unwrap();
        let mut w = c
            .watch(
                &cms,
                None,
                &WatchParams {
                    resource_version: list.resource_version.clone(),
                    label_selector: Some("app=x".into()),
                    bookmarks: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        c.create(&cms, None, cm("b", json!({"app": "x"})))
            .await
            .unwrap();
        c.patch(
            &cms,
            Some("default"),
            "b",
            &Patch::Merge(json!({"data": {"k": "w"}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
        c.patch(
            &cms,
            Some("default"),
            "b",
            &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
        let mut kinds = vec![];
        while kinds.len() < 3 {
            let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
                .await
                .expect("an event")
                .expect("the stream goes on")
                .expect("no error");
            match ev {
                WatchEvent::Added(o) => kinds.push(("A", o)),
                WatchEvent::Modified(o) => kinds.push(("M", o)),
                WatchEvent::Deleted(o) => kinds.push(("D", o)),
                WatchEvent::Bookmark { .. } => {}
            }
        }
        assert_eq!(
            kinds.iter().map(|k| k.0).collect::<Vec<_>>(),
            ["A", "M", "D"]
        );
        assert_eq!(kinds[0].1["kind"], "ConfigMap");
        // From "0": the current objects first, as ADDED.
        let mut w0 = c
            .watch(
                &cms,
                Some("default"),
                &WatchParams {
                    resource_version: "0".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut names = vec![];
        for _ in 0..2 {
            match w0.next().await {
                Some(Ok(WatchEvent::Added(o))) => {
                    names.push(o["metadata"]["name"].as_str().unwrap_or("").to_string())
                }
                other => panic!("{other:?}"),
            }
        }
        names.sort();
        assert_eq!(names, ["a", "b"]);
        // Renewed watch requests (the server ends each after 1 s) make one stream: every
        // change once, in order.
        let renewing = c.clone().with_watch_renew(Duration::from_secs(1));
        let from = c.list(&cms, None, &ListParams::default()).await.unwrap();
        let mut long = renewing
            .watch(
                &cms,
                Some("default"),
                &WatchParams {
                    resource_version: from.resource_version,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for i in 0..4 {
            c.create(&cms, None, cm(&format!("r{i}"), json!({})))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        let mut seen = vec![];
        while seen.len() < 4 {
            match tokio::time::timeout(Duration::from_secs(10), long.next()).await {
                Ok(Some(Ok(WatchEvent::Added(o)))) => {
                    seen.push(o["metadata"]["name"].as_str().unwrap_or("").to_string())
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, ["r0", "r1", "r2", "r3"]);
        // Nothing more (no replays after a renewal).
        let more = tokio::time::timeout(Duration::from_millis(2500), long.next()).await;
        assert!(more.is_err(), "{more:?}");
        drop(long);
        // A watch with a timeout ends.
        let mut short = c
            .watch(
                &cms,
                None,
                &WatchParams {
                    resource_version: c
                        .list(&cms, None, &ListParams::default())
                        .await
                        .unwrap()
                        .resource_version,
                    timeout: Some(Duration::from_secs(1)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let end = tokio::time::timeout(Duration::from_secs(10), short.next()).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
        // Past the retained history: 410 Gone.
        for i in 0..10 {
            c.create(&cms, None, cm(&format!("n{i}"), json!({})))
                .await
                .unwrap();
        }
        let err = match c
            .watch(
                &cms,
                None,
                &WatchParams {
                    resource_version: list.resource_version,
                    ..Default::default()
                },
            )
            .await
        {
            Err(e) => e,
            Ok(mut s) => match s.next().await {
                Some(Err(e)) => e,
                other => panic!("a watch from a compacted revision goes on: {other:?}"),
            },
        };
        assert!(err.is_gone(), "{err}");
        task.abort();
    }

    #[test]
    fn statuses_become_the_client_errors_local_callers_know() {
        let e = status_error(
            409,
            br#"{"kind":"Status","status":"Failure","reason":"AlreadyExists","message":"x exists","code":409}"#,
        );
        assert!(e.is_already_exists(), "{e}");
        let e = status_error(
            409,
            br#"{"reason":"Conflict","message":"stale","code":409}"#,
        );
        assert!(e.is_conflict());
        let e = status_error(
            410,
            br#"{"reason":"Expired","message":"too old","code":410}"#,
        );
        assert!(e.is_gone());
        let e = status_error(404, b"404 page not found");
        assert!(e.is_not_found());
        assert_eq!(e.reason(), "NotFound");
        let e = status_error(401, b"");
        assert_eq!((e.code(), e.reason()), (401, "Unauthorized"));
    }

    #[test]
    fn watch_lines_decode_like_in_process_events() {
        let info = ResourceInfo {
            api_version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
            namespaced: true,
            custom: false,
        };
        let ev = decode_event(
            br#"{"type":"ADDED","object":{"metadata":{"name":"p","resourceVersion":"5"}}}"#,
            &info,
        )
        .unwrap();
        match ev {
            WatchEvent::Added(o) => {
                assert_eq!(o["kind"], "Pod");
                assert_eq!(o["apiVersion"], "v1");
            }
            other => panic!("{other:?}"),
        }
        let ev = decode_event(
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9"}}}"#,
            &info,
        )
        .unwrap();
        assert_eq!(
            ev,
            WatchEvent::Bookmark {
                resource_version: "9".into()
            }
        );
        let err = decode_event(
            br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 1 (7)"}}"#,
            &info,
        )
        .unwrap_err();
        assert!(err.is_gone());
    }
}
