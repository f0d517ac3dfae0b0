//! The API server's side of remote node agents (`tug agent`): `pods/log` and `pods/exec`
//! of a pod bound to a node whose agent runs on another machine are relayed to that node's
//! endpoint (`crate::node::server`, Tugboat's kubelet port), as kube-apiserver relays them to
//! the kubelet.
//!
//! The node's endpoint is found in its Node object: `status.daemonEndpoints.kubeletEndpoint
//! .Port` and the first `InternalIP` (else `ExternalIP`, else `Hostname`) of
//! `status.addresses`. The connection is TLS, verified against the node CA (the agent's
//! serving certificate is issued by this server when it joins, `super::pki::issue_node_cert`),
//! and authenticated with the node join secret as a bearer token. Logs stream through (`follow`); exec is a WebSocket
//! (`v5.channel.k8s.io` or v4) relayed message by message in both directions.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::ws::{self, WebSocket};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use parking_lot::RwLock;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use super::Api;
use super::exec::ExecRequest;
use super::logs::{LogTarget, forwarded_options};
use super::request::{Query, ResourcePath};
use super::status::{ApiError, ApiResult};

/// How long connecting to a node's endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the end of a relayed session waits for the other side's close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Where a node's endpoint is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEndpoint {
    pub node: String,
    /// An IP address or a host name.
    pub host: String,
    pub port: u16,
}

impl NodeEndpoint {
    /// `host:port` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The endpoint of Node `node` as its status announces it, if it has one.
    pub fn of_node(node: &Value) -> Option<NodeEndpoint> {
        let name = node.pointer("/metadata/name").and_then(Value::as_str)?;
        let port = node
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)?;
        let addresses = node
            .pointer("/status/addresses")
            .and_then(Value::as_array)?;
        let host = ["InternalIP", "ExternalIP", "Hostname"]
            .iter()
            .find_map(|t| {
                addresses
                    .iter()
                    .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
                    .and_then(|a| a.get("address").and_then(Value::as_str))
            })
            .filter(|h| !h.is_empty())?;
        Some(NodeEndpoint {
            node: name.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

/// How this server reaches node endpoints: TLS trusting the node CA only, and the
/// credential nodes accept.
pub struct NodeProxy {
    secret: String,
    tls: Arc<rustls::ClientConfig>,
    http: reqwest::Client,
}

/// A TLS client configuration that trusts only the CA certificates in `ca_pem`
/// (HTTP/1.1 only: WebSocket upgrades and log streams).
pub fn client_tls(ca_pem: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.context("parsing the CA certificate")?)
            .context("adding the CA certificate")?;
    }
    if roots.is_empty() {
        anyhow::bail!("no CA certificate found");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

impl NodeProxy {
    /// A proxy that verifies nodes against `ca_pem` (the node CA) and presents `secret`
    /// (the node join secret).
    pub fn new(ca_pem: &str, secret: &str) -> anyhow::Result<Arc<NodeProxy>> {
        let tls = client_tls(ca_pem)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .http1_only()
            .no_proxy()
            .build()
            .context("building the node proxy's HTTP client")?;
        Ok(Arc::new(NodeProxy {
            secret: secret.to_string(),
            tls: Arc::new(tls),
            http,
        }))
    }

    /// Relays `pods/log` of `target` to the node.
    pub async fn logs(
        &self,
        endpoint: &NodeEndpoint,
        target: &LogTarget,
        q: &Query,
    ) -> ApiResult<Response> {
        let url = format!(
            "https://{}/containerLogs/{}/{}/{}/{}/{}",
            endpoint.authority(),
            target.namespace,
            target.pod,
            target.uid,
            target.container,
            target.instance
        );
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.secret)
            .query(&forwarded_options(q))
            .send()
            .await
            .map_err(|e| unreachable(endpoint, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(node_error(endpoint, status.as_u16(), &body));
        }
        let stream = resp
            .bytes_stream()
            .map(|r| r.map_err(std::io::Error::other));
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from_stream(stream))
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// Opens the node's side of an exec session with subprotocol `protocol`; `query` is the
    /// client's (command, stdin, stdout, stderr, tty).
    pub async fn exec(
        &self,
        endpoint: &NodeEndpoint,
        req: &ExecRequest,
        query: &str,
        protocol: &str,
    ) -> ApiResult<NodeSocket> {
        let url = format!(
            "wss://{}/exec/{}/{}/{}/{}/{}?{}",
            endpoint.authority(),
            req.namespace,
            req.pod,
            req.uid,
            req.container,
            req.restart_count,
            query
        );
        let fail = |e: &dyn std::fmt::Display| {
            ApiError::internal(format!(
                "error dialing the node {} at {}: {e}",
                endpoint.node,
                endpoint.authority()
            ))
        };
        let mut request = url.as_str().into_client_request().map_err(|e| fail(&e))?;
        let headers = request.headers_mut();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {}", self.secret)
                .parse()
                .map_err(|e| fail(&e))?,
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            protocol.parse().map_err(|e| fail(&e))?,
        );
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint.authority()))
            .await
            .map_err(|_| fail(&"connection timed out"))?
            .map_err(|e| fail(&e))?;
        let _ = tcp.set_nodelay(true);
        let name =
            rustls::pki_types::ServerName::try_from(endpoint.host.clone()).map_err(|e| fail(&e))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| fail(&e))?;
        let (socket, resp) = match tokio_tungstenite::client_async(request, tls).await {
            Ok(s) => s,
            Err(tungstenite::Error::Http(resp)) => {
                let body = resp.body().clone().unwrap_or_default();
                return Err(node_error(endpoint, resp.status().as_u16(), &body));
            }
            Err(e) => return Err(fail(&e)),
        };
        let chosen = resp
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok());
        if chosen != Some(protocol) {
            return Err(fail(&format!(
                "the node chose subprotocol {chosen:?}, not {protocol}"
            )));
        }
        Ok(socket)
    }
}

/// The node's side of a relayed exec session.
pub type NodeSocket = WebSocketStream<TlsStream<TcpStream>>;

fn unreachable(endpoint: &NodeEndpoint, e: &reqwest::Error) -> ApiError {
    // reqwest's Display hides the cause chain.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    ApiError::internal(format!(
        "error dialing the node {} at {}: {msg}",
        endpoint.node,
        endpoint.authority()
    ))
}

/// The error a node answered (a `Status`, else its text), as this server answers it.
fn node_error(endpoint: &NodeEndpoint, code: u16, body: &[u8]) -> ApiError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    match code {
        400 => ApiError::bad_request(message),
        404 => ApiError::new(404, "NotFound", message),
        _ => ApiError::internal(format!(
            "the node {} answered {code}: {message}",
            endpoint.node
        )),
    }
}

/// Where the node proxy is registered (a field of [`Api`]).
#[derive(Default)]
pub struct NodeProxySlot(RwLock<Option<Arc<NodeProxy>>>);

impl Api {
    /// Lets this server relay logs and exec to remote node agents.
    pub fn set_node_proxy(&self, proxy: Arc<NodeProxy>) {
        *self.node_proxy.0.write() = Some(proxy);
    }

    /// The proxy and endpoint for pods of Node `node` when a remote agent serves them: a
    /// node this server's own agent does not run and whose status names an endpoint.
    pub async fn remote_node(
        self: &Arc<Self>,
        node: &str,
    ) -> Option<(Arc<NodeProxy>, NodeEndpoint)> {
        if self.exec.serves(node) {
            return None;
        }
        let proxy = self.node_proxy.0.read().clone()?;
        let t = self
            .resolve(&ResourcePath {
                group: String::new(),
                version: "v1".into(),
                namespace: None,
                plural: "nodes".into(),
                name: Some(node.to_string()),
                subresource: None,
                watch_prefix: false,
            })
            .ok()?;
        let obj = self.get_object(&t).await.ok()?;
        Some((proxy, NodeEndpoint::of_node(&obj)?))
    }
}

/// The client's message as the node's WebSocket library frames it.
fn to_node(m: ws::Message) -> Option<tungstenite::Message> {
    Some(match m {
        ws::Message::Binary(b) => tungstenite::Message::Binary(b),
        ws::Message::Text(t) => tungstenite::Message::text(t.as_str()),
        ws::Message::Close(c) => {
            tungstenite::Message::Close(c.map(|c| tungstenite::protocol::CloseFrame {
                code: c.code.into(),
                reason: c.reason.as_str().into(),
            }))
        }
        ws::Message::Ping(_) | ws::Message::Pong(_) => return None,
    })
}

/// The node's message as the client's WebSocket is framed.
fn to_client(m: tungstenite::Message) -> Option<ws::Message> {
    Some(match m {
        tungstenite::Message::Binary(b) => ws::Message::Binary(b),
        tungstenite::Message::Text(t) => ws::Message::Text(t.as_str().into()),
        tungstenite::Message::Close(c) => ws::Message::Close(c.map(|c| ws::CloseFrame {
            code: c.code.into(),
            reason: c.reason.as_str().into(),
        })),
        _ => return None,
    })
}

/// How one direction of a relay ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// A close was passed on.
    Closed,
    /// The source went away without a close.
    Vanished,
}

/// Relays a client's exec WebSocket and the node's, message by message, both ways. When the
/// node ends the session (Status, then close) the client gets it all and a moment to
/// answer the close; when the client goes away, the node's socket is dropped (which ends
/// the process there).
pub async fn relay(client: WebSocket, node: NodeSocket) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut node_tx, mut node_rx) = node.split();
    let mut up = tokio::spawn(async move {
        while let Some(Ok(m)) = client_rx.next().await {
            let close = matches!(m, ws::Message::Close(_));
            if let Some(m) = to_node(m)
                && node_tx.send(m).await.is_err()
            {
                return End::Vanished;
            }
            if close {
                let _ = node_tx.flush().await;
                return End::Closed;
            }
        }
        End::Vanished
    });
    let mut down = tokio::spawn(async move {
        while let Some(Ok(m)) = node_rx.next().await {
            let close = matches!(m, tungstenite::Message::Close(_));
            if let Some(m) = to_client(m)
                && client_tx.send(m).await.is_err()
            {
                return End::Vanished;
            }
            if close {
                let _ = client_tx.flush().await;
                return End::Closed;
            }
        }
        // The node went away without a close: end the client's session too.
        let _ = client_tx.close().await;
        End::Vanished
    });
    tokio::select! {
        _ = &mut down => {
            if tokio::time::timeout(CLOSE_GRACE, &mut up).await.is_err() {
                up.abort();
            }
        }
        r = &mut up => {
            if matches!(r, Ok(End::Closed)) {
                if tokio::time::timeout(CLOSE_GRACE, &mut down).await.is_err() {
                    down.abort();
                }
            } else {
                down.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_come_from_the_node_status() {
        let node = json!({"metadata": {"name": "n1"}, "status": {
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}]}});
        let ep = NodeEndpoint::of_node(&node).unwrap();
        assert_eq!(ep.authority(), "10.0.0.5:10250");
        let mut v6 = node.clone();
        v6["status"]["addresses"][1]["address"] = json!("fd00::5");
        assert_eq!(
            NodeEndpoint::of_node(&v6).unwrap().authority(),
            "[fd00::5]:10250"
        );
        let mut no_port = node.clone();
        no_port["status"]["daemonEndpoints"] = json!({});
        assert_eq!(NodeEndpoint::of_node(&no_port), None);
        let mut hostname_only = node;
        hostname_only["status"]["addresses"] = json!([{"type": "Hostname", "address": "n1"}]);
        assert_eq!(NodeEndpoint::of_node(&hostname_only).unwrap().host, "n1");
    }

    #[test]
    fn node_errors_keep_the_status_message() {
        let ep = NodeEndpoint {
            node: "n1".into(),
            host: "h".into(),
            port: 1,
        };
        let e = node_error(
            &ep,
            400,
            br#"{"kind":"Status","message":"bad thing","code":400}"#,
        );
        assert_eq!((e.code, e.message.as_str()), (400, "bad thing"));
        let e = node_error(&ep, 401, b"no");
        assert_eq!(e.code, 500);
        assert!(e.message.contains("answered 401: no"), "{}", e.message);
    }
}
