//! `pods/NAME/exec`: a command in a running container, as `kubectl exec` runs it.
//!
//! kubectl (1.30 and later) connects with a WebSocket upgrade offering the subprotocol
//! `v5.channel.k8s.io` (we also accept `v4.channel.k8s.io`). Every binary message starts
//! with a channel byte: 0 stdin (client to server), 1 stdout, 2 stderr, 3 error (one JSON
//! `Status`, sent once the process ended: `Success`, or `Failure` with reason
//! `NonZeroExitCode` and the code as an `ExitCode` cause, or an `InternalError`), 4 resize
//! (JSON `{"Width":…,"Height":…}`, client to server), and with v5 255 close (`[255, 0]`: the
//! client has no more stdin). The server sends all output, then the Status, then a normal
//! WebSocket close; kubectl exits with the remote exit code.
//!
//! Errors found before the upgrade (missing command, unknown pod or container, pod not
//! scheduled, container not running) are answered as Kubernetes `Status` objects, so that
//! kubectl prints them whether it tried WebSocket or its SPDY fallback. Running the command
//! is delegated to an [`ExecProvider`] (the node agent's runtime, registered at start-up
//! with [`Api::set_exec_provider`]) so that the API layer does not depend on the node
//! module.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade, close_code, rejection};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use parking_lot::RwLock;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Api;
use super::request::ResourcePath;
use super::status::{ApiError, ApiResult};

/// The subprotocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = [V5, V4];
const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[255, channel]` closes that channel.
const CLOSE: u8 = 255;

/// What to run, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    /// The container's running instance (its status' `restartCount`).
    pub restart_count: u32,
    pub command: Vec<String>,
    pub tty: bool,
    /// Whether the process gets a stdin (else it reads end of file).
    pub stdin: bool,
}

/// A started command: its streams and its process.
pub struct ExecStreams {
    /// The process's stdin (or terminal input) when stdin was requested.
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The process's stdout (with a terminal: all it prints).
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The process's stderr (none with a terminal).
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub process: Box<dyn ExecProcess>,
}

/// The process of an exec. Dropping it before [`ExecProcess::wait`] returned must kill the
/// process (the client went away).
#[async_trait::async_trait]
pub trait ExecProcess: Send {
    /// Sets the terminal's size (a no-op without a terminal).
    fn resize(&self, cols: u16, rows: u16) -> Result<(), String>;

    /// Waits for the process to end: its exit code (128 + signal when killed), or why
    /// it could not run (e.g. the executable does not exist).
    async fn wait(self: Box<Self>) -> Result<i32, String>;
}

/// Runs commands in containers: implemented over the node agent's runtime
/// (`crate::node::exec`) and registered with [`Api::set_exec_provider`].
#[async_trait::async_trait]
pub trait ExecProvider: Send + Sync + 'static {
    /// Whether pods bound to Node `node` run here.
    fn serves(&self, node: &str) -> bool;

    /// Starts `req.command` in the container instance.
    async fn exec(&self, req: &ExecRequest) -> Result<ExecStreams, String>;
}

/// Where the exec provider is registered (a field of [`Api`]).
#[derive(Default)]
pub struct ExecSlot(RwLock<Option<Arc<dyn ExecProvider>>>);

impl ExecSlot {
    /// Whether the registered provider runs the pods of Node `node`.
    pub fn serves(&self, node: &str) -> bool {
        self.0.read().as_ref().is_some_and(|p| p.serves(node))
    }
}

impl Api {
    /// Registers what runs `pods/exec` commands (the node agent's runtime).
    pub fn set_exec_provider(&self, provider: Arc<dyn ExecProvider>) {
        *self.exec.0.write() = Some(provider);
    }

    fn exec_provider(&self) -> Option<Arc<dyn ExecProvider>> {
        self.exec.0.read().clone()
    }
}

/// The query of an exec request.
#[derive(Debug, Default, PartialEq, Eq)]
struct ExecOptions {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

fn truthy(v: &str) -> bool {
    matches!(v, "true" | "True" | "TRUE" | "1")
}

impl ExecOptions {
    /// Parses `command=…&command=…&container=…&stdin=true&…` (repeated `command`s).
    fn parse(raw: Option<&str>) -> ApiResult<ExecOptions> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))?;
        let mut o = ExecOptions::default();
        for (k, v) in pairs {
            match k.as_str() {
                "command" => o.command.push(v),
                "container" if !v.is_empty() => o.container = Some(v),
                "stdin" => o.stdin = truthy(&v),
                "stdout" => o.stdout = truthy(&v),
                "stderr" => o.stderr = truthy(&v),
                "tty" => o.tty = truthy(&v),
                _ => {}
            }
        }
        if o.command.is_empty() {
            return Err(ApiError::bad_request(
                "you must specify at least 1 command (the command query parameter)",
            ));
        }
        // A terminal merges stderr into its output (the kubelet drops stderr likewise).
        if o.tty {
            o.stderr = false;
        }
        if !o.stdin && !o.stdout && !o.stderr {
            return Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        Ok(o)
    }
}

/// The names of a pod's containers of every kind, app containers first.
fn container_names(pod: &Value) -> (Vec<String>, Vec<String>) {
    let names = |p: &str| -> Vec<String> {
        pod.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let app = names("/spec/containers");
    let mut others = names("/spec/initContainers");
    others.extend(names("/spec/ephemeralContainers"));
    (app, others)
}

/// Checks `opts` against the pod: the request to run, or the error to answer.
fn plan(pod: &Value, opts: ExecOptions) -> ApiResult<ExecRequest> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (app, others) = container_names(pod);
    let container = match opts.container {
        Some(c) if app.contains(&c) || others.contains(&c) => c,
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if app.len() == 1 => app[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                app.join(" ")
            )));
        }
    };
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let status = [
        "/status/containerStatuses",
        "/status/initContainerStatuses",
        "/status/ephemeralContainerStatuses",
    ]
    .iter()
    .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
    .flatten()
    .find(|s| s.get("name").and_then(Value::as_str) == Some(container.as_str()));
    let Some(status) = status else {
        return Err(ApiError::bad_request(format!(
            "container not found ({container:?})"
        )));
    };
    if status.pointer("/state/running").is_none() {
        let why = ["waiting", "terminated"]
            .iter()
            .find_map(|s| {
                let st = status.pointer(&format!("/state/{s}"))?;
                let reason = st.get("reason").and_then(Value::as_str).unwrap_or("");
                Some(format!(" ({s}: {reason})"))
            })
            .unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "container {container:?} in pod {name:?} is not running{why}"
        )));
    }
    let restart_count = status
        .get("restartCount")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    Ok(ExecRequest {
        namespace: pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        pod: name.to_string(),
        uid: pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        container,
        restart_count,
        command: opts.command,
        tty: opts.tty,
        stdin: opts.stdin,
    })
}

/// `GET|POST /api/v1/namespaces/NS/pods/NAME/exec` (routed in `server::router`).
pub async fn serve(
    State(api): State<Arc<Api>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    ws: Result<WebSocketUpgrade, rejection::WebSocketUpgradeRejection>,
) -> Response {
    match api.exec_upgrade(namespace, name, raw, ws).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

impl Api {
    async fn exec_upgrade(
        self: &Arc<Self>,
        namespace: String,
        name: String,
        raw: Option<String>,
        ws: Result<WebSocketUpgrade, rejection::WebSocketUpgradeRejection>,
    ) -> ApiResult<Response> {
        let opts = ExecOptions::parse(raw.as_deref())?;
        let t = self.resolve(&ResourcePath {
            group: String::new(),
            version: "v1".into(),
            namespace: Some(namespace),
            plural: "pods".into(),
            name: Some(name),
            subresource: None,
            watch_prefix: false,
        })?;
        let pod = self.get_object(&t).await?;
        let stdout = opts.stdout;
        let stderr = opts.stderr;
        let req = plan(&pod, opts)?;
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let provider = self.exec_provider().filter(|p| p.serves(node));
        let Some(provider) = provider else {
            // A pod of another machine's node agent: relay the session to its endpoint.
            if let Some((proxy, endpoint)) = self.remote_node(node).await {
                let (ws, v5) = negotiate(ws)?;
                let protocol = if v5 { V5 } else { V4 };
                let upstream = proxy
                    .exec(&endpoint, &req, raw.as_deref().unwrap_or(""), protocol)
                    .await?;
                tracing::debug!(pod = %req.pod, container = %req.container, node, "exec relayed to the node");
                return Ok(ws.on_upgrade(move |socket| super::proxy::relay(socket, upstream)));
            }
            return Err(ApiError::bad_request(format!(
                "pod {} is on node {node:?}, which has no node agent in this server: \
                 commands cannot run in its containers",
                req.pod
            )));
        };
        start_session(ws, provider, req, stdout, stderr)
    }
}

/// Accepts the WebSocket upgrade with one of [`PROTOCOLS`]: the upgrade and whether it is
/// v5.
fn negotiate(
    ws: Result<WebSocketUpgrade, rejection::WebSocketUpgradeRejection>,
) -> ApiResult<(WebSocketUpgrade, bool)> {
    let ws = ws.map_err(|e| {
        ApiError::bad_request(format!(
            "exec needs a WebSocket upgrade with subprotocol {V5} or {V4} \
             (SPDY is not supported): {}",
            e.body_text()
        ))
    })?;
    let ws = ws.protocols(PROTOCOLS);
    let v5 = match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(V5) => true,
        Some(_) => false,
        None => {
            let offered: Vec<String> = ws
                .requested_protocols()
                .filter_map(|p| p.to_str().ok().map(str::to_string))
                .collect();
            return Err(ApiError::bad_request(format!(
                "none of the offered subprotocols {offered:?} is supported: {}",
                PROTOCOLS.join(", ")
            )));
        }
    };
    Ok((ws, v5))
}

/// Upgrades and runs `req` with `provider` over the WebSocket.
fn start_session(
    ws: Result<WebSocketUpgrade, rejection::WebSocketUpgradeRejection>,
    provider: Arc<dyn ExecProvider>,
    req: ExecRequest,
    stdout: bool,
    stderr: bool,
) -> ApiResult<Response> {
    let (ws, v5) = negotiate(ws)?;
    tracing::debug!(pod = %req.pod, container = %req.container, command = ?req.command, tty = req.tty, "exec");
    Ok(ws.on_upgrade(move |socket| async move {
        let (sink, stream) = socket.split();
        run_session(sink, stream, provider, req, Channels { stdout, stderr, v5 }).await;
    }))
}

/// A node's side of a relayed exec (`crate::node::server`): the API server already checked
/// the pod and chose the container instance (`namespace`, `pod`, `uid`, `container`,
/// `restart_count`); `raw` is the client's query (`command`, `stdin`, `stdout`, `stderr`,
/// `tty`).
pub fn serve_on_node(
    provider: Arc<dyn ExecProvider>,
    instance: (String, String, String, String, u32),
    raw: Option<&str>,
    ws: Result<WebSocketUpgrade, rejection::WebSocketUpgradeRejection>,
) -> Response {
    let (namespace, pod, uid, container, restart_count) = instance;
    let opts = match ExecOptions::parse(raw) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let (stdout, stderr) = (opts.stdout, opts.stderr);
    let req = ExecRequest {
        namespace,
        pod,
        uid,
        container,
        restart_count,
        command: opts.command,
        tty: opts.tty,
        stdin: opts.stdin,
    };
    match start_session(ws, provider, req, stdout, stderr) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Which output channels the client asked for, and the protocol version.
#[derive(Clone, Copy, Debug)]
struct Channels {
    stdout: bool,
    stderr: bool,
    v5: bool,
}

/// The Status sent on the error channel when the process ended with `code`.
fn exit_status(code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The Status sent on the error channel when the command could not run.
fn internal_status(err: &str) -> Value {
    let msg = format!("error executing command in container: {err}");
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {msg}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": msg}]},
        "code": 500,
    })
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// The resize message's payload (Go's `TerminalSize`, encoded without JSON tags).
#[derive(serde::Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

/// How long the end of a session waits for the client's side of the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Runs one exec session over a WebSocket's halves: starts the command, relays its
/// streams, sends the Status and closes. The process is killed when the client goes away.
async fn run_session<Si, St, E>(
    sink: Si,
    stream: St,
    provider: Arc<dyn ExecProvider>,
    req: ExecRequest,
    ch: Channels,
) where
    Si: Sink<Message> + Unpin + Send + 'static,
    St: Stream<Item = Result<Message, E>> + Unpin + Send + 'static,
    E: Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel::<Message>(16);
    let mut writer = tokio::spawn(write_loop(sink, out_rx));
    match provider.exec(&req).await {
        Err(e) => {
            tracing::debug!(pod = %req.pod, container = %req.container, error = %e, "exec failed");
            // Still read the client's messages, to see its side of the close.
            let (resize_tx, _) = mpsc::unbounded_channel();
            let reader = tokio::spawn(read_loop(stream, None, resize_tx, ch.v5));
            finish(out_tx, &mut writer, internal_status(&e), Some(reader)).await;
        }
        Ok(streams) => {
            let (resize_tx, resize_rx) = mpsc::unbounded_channel();
            let reader = tokio::spawn(read_loop(stream, streams.stdin, resize_tx, ch.v5));
            let pumps = futures::future::join(
                pump(streams.stdout, STDOUT, ch.stdout, out_tx.clone()),
                pump(streams.stderr, STDERR, ch.stderr, out_tx.clone()),
            );
            match relay(streams.process, pumps, resize_rx, reader).await {
                Some((Ok(code), reader)) => {
                    finish(out_tx, &mut writer, exit_status(code), Some(reader)).await;
                }
                Some((Err(e), reader)) => {
                    finish(out_tx, &mut writer, internal_status(&e), Some(reader)).await;
                }
                None => {
                    // The client went away: the process was killed (dropped).
                    writer.abort();
                }
            }
        }
    }
}

/// Relays until the process's output ends, then waits for its exit. `None` when the
/// client went away first (the process is then dropped, which kills it).
async fn relay(
    process: Box<dyn ExecProcess>,
    pumps: impl std::future::Future<Output = ((), ())>,
    mut resize_rx: mpsc::UnboundedReceiver<(u16, u16)>,
    mut reader: tokio::task::JoinHandle<()>,
) -> Option<(Result<i32, String>, tokio::task::JoinHandle<()>)> {
    tokio::pin!(pumps);
    let mut resizes_open = true;
    loop {
        tokio::select! {
            _ = &mut pumps => break,
            r = resize_rx.recv(), if resizes_open => match r {
                Some((cols, rows)) => {
                    if let Err(e) = process.resize(cols, rows) {
                        tracing::debug!(error = %e, "exec resize");
                    }
                }
                None => resizes_open = false,
            },
            _ = &mut reader => return None,
        }
    }
    tokio::select! {
        r = process.wait() => Some((r, reader)),
        _ = &mut reader => None,
    }
}

/// Sends the Status and a normal close, then lets the client answer the close.
async fn finish(
    out_tx: mpsc::Sender<Message>,
    writer: &mut tokio::task::JoinHandle<()>,
    status: Value,
    reader: Option<tokio::task::JoinHandle<()>>,
) {
    let body = serde_json::to_vec(&status).unwrap_or_default();
    let _ = out_tx.send(framed(ERROR, &body)).await;
    let _ = out_tx
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
    drop(out_tx);
    if tokio::time::timeout(CLOSE_GRACE, &mut *writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    if let Some(mut reader) = reader
        && tokio::time::timeout(CLOSE_GRACE, &mut reader)
            .await
            .is_err()
    {
        reader.abort();
    }
}

/// Sends what the session queues, in order; ends after a close message.
async fn write_loop<Si: Sink<Message> + Unpin>(mut sink: Si, mut rx: mpsc::Receiver<Message>) {
    while let Some(m) = rx.recv().await {
        let close = matches!(m, Message::Close(_));
        if sink.send(m).await.is_err() || close {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Copies one output of the process to its channel (or drains it when the client did
/// not ask for it) until end of file.
async fn pump(
    r: Option<Box<dyn AsyncRead + Send + Unpin>>,
    channel: u8,
    wanted: bool,
    tx: mpsc::Sender<Message>,
) {
    let Some(mut r) = r else { return };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if wanted && tx.send(framed(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads the client's messages: stdin data, resizes, stdin close. Ends when the client
/// closes the connection or it fails.
async fn read_loop<St, E>(
    mut stream: St,
    mut stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    resize_tx: mpsc::UnboundedSender<(u16, u16)>,
    v5: bool,
) where
    St: Stream<Item = Result<Message, E>> + Unpin,
{
    while let Some(Ok(msg)) = stream.next().await {
        let data = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => return,
            _ => continue,
        };
        match data.first().copied() {
            Some(STDIN) => {
                if let Some(w) = stdin.as_mut()
                    && data.len() > 1
                    && (w.write_all(&data[1..]).await.is_err() || w.flush().await.is_err())
                {
                    // The process closed its stdin: what follows is dropped.
                    stdin = None;
                }
            }
            Some(RESIZE) => match serde_json::from_slice::<TerminalSize>(&data[1..]) {
                Ok(s) => {
                    let _ = resize_tx.send((s.width, s.height));
                }
                Err(e) => tracing::debug!(error = %e, "exec: invalid resize message"),
            },
            Some(CLOSE) if v5 => {
                if data.get(1) == Some(&STDIN)
                    && let Some(mut w) = stdin.take()
                {
                    let _ = w.shutdown().await;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "main"}, {"name": "side"}],
                "initContainers": [{"name": "init"}]},
            "status": status})
    }

    fn running(name: &str, restarts: u32) -> Value {
        json!({"name": name, "restartCount": restarts, "state": {"running": {}}})
    }

    #[test]
    fn options_take_repeated_commands_and_flags() {
        let o = ExecOptions::parse(Some(
            "command=sh&command=-c&command=echo+a%26b&container=main&stdin=true&stdout=true&stderr=true&tty=false",
        ))
        .unwrap();
        assert_eq!(o.command, vec!["sh", "-c", "echo a&b"]);
        assert_eq!(o.container.as_deref(), Some("main"));
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        // A terminal has no separate stderr.
        let o = ExecOptions::parse(Some("command=sh&stdout=1&stderr=1&tty=1")).unwrap();
        assert!(o.tty && o.stdout && !o.stderr);
    }

    #[test]
    fn options_need_a_command_and_a_stream() {
        let e = ExecOptions::parse(Some("stdout=true")).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("at least 1 command"), "{}", e.message);
        let e = ExecOptions::parse(Some("command=ls")).unwrap_err();
        assert!(e.message.contains("stdin, stdout, stderr"), "{}", e.message);
    }

    fn opts(container: Option<&str>) -> ExecOptions {
        ExecOptions {
            command: vec!["ls".into()],
            container: container.map(str::to_string),
            stdout: true,
            ..Default::default()
        }
    }

    #[test]
    fn plan_picks_the_running_instance() {
        let p = pod(json!({"containerStatuses": [running("main", 0), running("side", 3)]}));
        let r = plan(&p, opts(Some("side"))).unwrap();
        assert_eq!(
            r,
            ExecRequest {
                namespace: "ns".into(),
                pod: "p".into(),
                uid: "u1".into(),
                container: "side".into(),
                restart_count: 3,
                command: vec!["ls".into()],
                tty: false,
                stdin: false,
            }
        );
    }

    #[test]
    fn plan_explains_what_is_wrong() {
        let p = pod(json!({"containerStatuses": [running("main", 0)]}));
        let e = plan(&p, opts(Some("nope"))).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "container nope is not valid for pod p")
        );
        let e = plan(&p, opts(None)).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [main side]"
        );
        let e = plan(&p, opts(Some("side"))).unwrap_err();
        assert_eq!(e.message, "container not found (\"side\")");
        let p2 = pod(json!({"initContainerStatuses": [
            {"name": "init", "restartCount": 0, "state": {"terminated": {"reason": "Completed"}}}]}));
        let e = plan(&p2, opts(Some("init"))).unwrap_err();
        assert_eq!(
            e.message,
            "container \"init\" in pod \"p\" is not running (terminated: Completed)"
        );
        let mut unscheduled = pod(json!({}));
        unscheduled["spec"]
            .as_object_mut()
            .unwrap()
            .remove("nodeName");
        let e = plan(&unscheduled, opts(Some("main"))).unwrap_err();
        assert_eq!(e.message, "pod p does not have a host assigned");
    }

    #[test]
    fn statuses_are_what_client_go_decodes() {
        assert_eq!(exit_status(0), json!({"metadata": {}, "status": "Success"}));
        let s = exit_status(3);
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["details"]["causes"],
            json!([{"reason": "ExitCode", "message": "3"}])
        );
        let s = internal_status("no such file");
        assert_eq!(s["reason"], "InternalError");
        assert_eq!(s["code"], 500);
    }

    /// The sizes a fake process was given.
    type Resizes = Arc<parking_lot::Mutex<Vec<(u16, u16)>>>;

    /// A fake process: its output is given, its stdin is collected, resizes recorded.
    struct Fake {
        code: i32,
        resized: Resizes,
        waited: Arc<AtomicBool>,
        stdin_done: tokio::sync::oneshot::Receiver<()>,
    }

    #[async_trait::async_trait]
    impl ExecProcess for Fake {
        fn resize(&self, cols: u16, rows: u16) -> Result<(), String> {
            self.resized.lock().push((cols, rows));
            Ok(())
        }
        async fn wait(self: Box<Self>) -> Result<i32, String> {
            let _ = self.stdin_done.await;
            self.waited.store(true, Ordering::SeqCst);
            Ok(self.code)
        }
    }

    /// A provider whose process echoes stdin to stdout (like `cat`), prints "err" on
    /// stderr, and exits with `code` once its stdin is closed.
    struct Echo {
        code: i32,
        resized: Resizes,
        waited: Arc<AtomicBool>,
        fail: bool,
    }

    #[async_trait::async_trait]
    impl ExecProvider for Echo {
        fn serves(&self, _node: &str) -> bool {
            true
        }
        async fn exec(&self, _req: &ExecRequest) -> Result<ExecStreams, String> {
            if self.fail {
                return Err("exec: \"nope\": executable file not found in $PATH".into());
            }
            let (stdin_w, mut stdin_r) = tokio::io::duplex(64);
            let (mut out_w, out_r) = tokio::io::duplex(64);
            let (mut err_w, err_r) = tokio::io::duplex(64);
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let _ = err_w.write_all(b"err").await;
                drop(err_w);
                let _ = tokio::io::copy(&mut stdin_r, &mut out_w).await;
                drop(out_w);
                let _ = done_tx.send(());
            });
            Ok(ExecStreams {
                stdin: Some(Box::new(stdin_w)),
                stdout: Some(Box::new(out_r)),
                stderr: Some(Box::new(err_r)),
                process: Box::new(Fake {
                    code: self.code,
                    resized: self.resized.clone(),
                    waited: self.waited.clone(),
                    stdin_done: done_rx,
                }),
            })
        }
    }

    fn req() -> ExecRequest {
        plan(
            &pod(json!({"containerStatuses": [running("main", 0)]})),
            opts(Some("main")),
        )
        .unwrap()
    }

    /// Runs a session against `provider`, sending `input` as the client; returns what
    /// the client received (until the close).
    async fn session(provider: Echo, input: Vec<Message>) -> Vec<Message> {
        let (client_tx, server_rx) = futures::channel::mpsc::unbounded::<Result<Message, ()>>();
        let (server_tx, mut client_rx) = futures::channel::mpsc::unbounded::<Message>();
        for m in input {
            client_tx.unbounded_send(Ok(m)).unwrap();
        }
        let ch = Channels {
            stdout: true,
            stderr: true,
            v5: true,
        };
        let task = tokio::spawn(run_session(
            server_tx,
            server_rx,
            Arc::new(provider),
            req(),
            ch,
        ));
        let mut got = vec![];
        while let Some(m) = client_rx.next().await {
            let close = matches!(m, Message::Close(_));
            got.push(m);
            if close {
                client_tx.unbounded_send(Ok(Message::Close(None))).unwrap();
                break;
            }
        }
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the session ends")
            .unwrap();
        got
    }

    fn by_channel(got: &[Message]) -> (Vec<u8>, Vec<u8>, Vec<Value>) {
        let (mut out, mut err, mut status) = (vec![], vec![], vec![]);
        for m in got {
            if let Message::Binary(b) = m {
                match b[0] {
                    STDOUT => out.extend_from_slice(&b[1..]),
                    STDERR => err.extend_from_slice(&b[1..]),
                    ERROR => status.push(serde_json::from_slice(&b[1..]).unwrap()),
                    c => panic!("unexpected channel {c}"),
                }
            }
        }
        (out, err, status)
    }

    fn echo(code: i32, fail: bool) -> (Echo, Resizes) {
        let resized: Resizes = Arc::default();
        (
            Echo {
                code,
                resized: resized.clone(),
                waited: Arc::new(AtomicBool::new(false)),
                fail,
            },
            resized,
        )
    }

    #[tokio::test]
    async fn a_session_relays_stdin_output_resizes_and_the_exit_code() {
        let (p, resized) = echo(3, false);
        let got = session(
            p,
            vec![
                framed(RESIZE, br#"{"Width":100,"Height":40}"#),
                framed(STDIN, b"hello "),
                framed(STDIN, b"world"),
                Message::Binary(Bytes::from_static(&[CLOSE, STDIN])),
            ],
        )
        .await;
        let (out, err, status) = by_channel(&got);
        assert_eq!(String::from_utf8_lossy(&out), "hello world");
        assert_eq!(String::from_utf8_lossy(&err), "err");
        assert_eq!(status, vec![exit_status(3)]);
        // The Status comes after all output, and a normal close ends the session.
        assert!(matches!(got[got.len() - 2], Message::Binary(ref b) if b[0] == ERROR));
        assert!(matches!(
            got.last(),
            Some(Message::Close(Some(CloseFrame { code: 1000, .. })))
        ));
        assert_eq!(*resized.lock(), vec![(100, 40)]);
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_gets_an_internal_error_status() {
        let (p, _) = echo(0, true);
        let got = session(p, vec![]).await;
        let (out, _, status) = by_channel(&got);
        assert!(out.is_empty());
        assert_eq!(status.len(), 1);
        assert_eq!(status[0]["reason"], "InternalError");
        let msg = status[0]["message"].as_str().unwrap();
        assert!(msg.contains("executable file not found"), "{msg}");
    }

    #[tokio::test]
    async fn the_process_is_dropped_when_the_client_goes_away() {
        let (p, _) = echo(0, false);
        let waited = p.waited.clone();
        let (client_tx, server_rx) = futures::channel::mpsc::unbounded::<Result<Message, ()>>();
        let (server_tx, _client_rx) = futures::channel::mpsc::unbounded::<Message>();
        let ch = Channels {
            stdout: true,
            stderr: true,
            v5: true,
        };
        let task = tokio::spawn(run_session(server_tx, server_rx, Arc::new(p), req(), ch));
        // The client disappears without closing stdin: the session ends at once.
        drop(client_tx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the session ends when the client goes away")
            .unwrap();
        assert!(!waited.load(Ordering::SeqCst));
    }
}
