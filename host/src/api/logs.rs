//! `GET pods/NAME/log`: a container's output, as `kubectl logs` asks for it (`container`,
//! `follow`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `previous`,
//! `limitBytes`).
//!
//! The node agent's runtime writes each container instance's stdout and stderr in the CRI
//! log format (`<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`, `P` for a partial line)
//! to `<data-dir>/logs/<namespace>_<pod>_<uid>/<container>/<restart count>.log` (older parts
//! of a rotated file as `.log.1`, `.log.2`, …). This server reads those files: the node
//! agent runs in the same process on a single-node cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::Api;
use super::handlers::Target;
use super::request::Query;
use super::status::{ApiError, ApiResult};

/// One line of a CRI log file.
#[derive(Debug, PartialEq, Eq)]
struct Line<'a> {
    time: &'a str,
    partial: bool,
    text: &'a str,
}

fn parse_line(line: &str) -> Option<Line<'_>> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    Some(Line {
        time,
        partial: tag.starts_with('P'),
        text,
    })
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1" | "True"))
}

/// What to print, after the options: full lines (partial ones joined), with timestamps
/// when asked.
fn render(content: &str, timestamps: bool, since: Option<jiff::Timestamp>) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut pending_time = String::new();
    for raw in content.lines() {
        let Some(l) = parse_line(raw) else { continue };
        if pending.is_empty() {
            pending_time = l.time.to_string();
        }
        pending.push_str(l.text);
        if l.partial {
            continue;
        }
        let text = std::mem::take(&mut pending);
        if let Some(since) = since
            && pending_time
                .parse::<jiff::Timestamp>()
                .is_ok_and(|t| t < since)
        {
            continue;
        }
        out.push(if timestamps {
            format!("{pending_time} {text}\n")
        } else {
            format!("{text}\n")
        });
    }
    out
}

/// The files of one container instance, oldest first.
fn files_of(base: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (base.parent(), base.file_name()) {
        let prefix = format!("{}.", name.to_string_lossy());
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(k) = n.strip_prefix(&prefix).and_then(|k| k.parse::<u32>().ok()) {
                    rotated.push((k, e.path()));
                }
            }
        }
    }
    // `.log.2` is older than `.log.1`.
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut v: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    v.push(base.to_path_buf());
    v
}

/// The container instance whose log a request reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogTarget {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    /// The instance (the container's restart count when it ran).
    pub instance: u64,
}

impl LogTarget {
    /// The instance's CRI log file under the node agent's data dir.
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        data_dir
            .join("logs")
            .join(format!("{}_{}_{}", self.namespace, self.pod, self.uid))
            .join(&self.container)
            .join(format!("{}.log", self.instance))
    }
}

/// Which container instance `pods/NAME/log` with `q` reads, from the pod's spec and
/// status (the errors are kubectl's).
pub fn plan(pod: &Value, q: &Query) -> ApiResult<LogTarget> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let names: Vec<String> = ["/spec/initContainers", "/spec/containers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let app: Vec<&String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .filter_map(|n| names.iter().find(|m| *m == n))
                .collect()
        })
        .unwrap_or_default();
    let container = match &q.container {
        Some(c) if names.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if app.len() == 1 => app[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                app.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
            )));
        }
    };
    let status = ["/status/containerStatuses", "/status/initContainerStatuses"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(container.as_str()))
        .cloned();
    let Some(status) = status else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let restarts = status
        .get("restartCount")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let instance = if truthy(&q.previous) {
        if restarts == 0 {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            )));
        }
        restarts - 1
    } else {
        restarts
    };
    if !truthy(&q.previous)
        && let Some(w) = status.pointer("/state/waiting")
        && status.get("containerID").is_none()
    {
        let reason = w.get("reason").and_then(Value::as_str).unwrap_or("");
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    Ok(LogTarget {
        namespace: ns,
        pod: name,
        uid,
        container,
        instance,
    })
}

/// The options of `q` a node's endpoint needs once the instance is chosen (`follow`,
/// `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`), as query pairs.
pub fn forwarded_options(q: &Query) -> Vec<(&'static str, String)> {
    let mut v = vec![];
    if truthy(&q.follow) && !truthy(&q.previous) {
        v.push(("follow", "true".to_string()));
    }
    for (k, o) in [
        ("tailLines", &q.tail_lines),
        ("sinceSeconds", &q.since_seconds),
        ("sinceTime", &q.since_time),
        ("timestamps", &q.timestamps),
        ("limitBytes", &q.limit_bytes),
    ] {
        if let Some(x) = o {
            v.push((k, x.clone()));
        }
    }
    v
}

/// Serves the log of `target` from the files under `data_dir` with `q`'s options
/// (`previous` and `container` are already resolved into `target`); with `follow`, new
/// lines stream until `running` says the instance ended.
pub fn serve_files<F, Fut>(
    data_dir: &Path,
    target: &LogTarget,
    q: &Query,
    running: F,
) -> ApiResult<Response>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let base = target.path(data_dir);
    let timestamps = truthy(&q.timestamps);
    let since = match (&q.since_seconds, &q.since_time) {
        (Some(s), _) => {
            let secs: i64 = s.parse().map_err(|_| {
                ApiError::bad_request(format!("sinceSeconds: {s:?} is not a number"))
            })?;
            jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs(secs))
                .ok()
        }
        (None, Some(t)) => Some(t.parse::<jiff::Timestamp>().map_err(|e| {
            ApiError::bad_request(format!("sinceTime: {t:?} is not an RFC 3339 time: {e}"))
        })?),
        _ => None,
    };
    let tail: Option<usize> = match &q.tail_lines {
        Some(n) => Some(
            n.parse()
                .map_err(|_| ApiError::bad_request(format!("tailLines: {n:?} is not a number")))?,
        ),
        None => None,
    };
    let limit: Option<usize> = match &q.limit_bytes {
        Some(n) => Some(
            n.parse()
                .map_err(|_| ApiError::bad_request(format!("limitBytes: {n:?} is not a number")))?,
        ),
        None => None,
    };
    let mut content = String::new();
    for f in files_of(&base) {
        if let Ok(s) = std::fs::read_to_string(&f) {
            content.push_str(&s);
        }
    }
    let mut lines = render(&content, timestamps, since);
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut first: String = lines.concat();
    if let Some(l) = limit {
        first.truncate(l);
    }
    let follow = truthy(&q.follow) && !truthy(&q.previous);
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain");
    if !follow {
        return response
            .body(Body::from(first))
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    // Follow: send what is there, then what is appended, until the instance ends.
    let offset = std::fs::metadata(&base).map(|m| m.len()).unwrap_or(0);
    let stream = async_stream(first, base, offset, timestamps, running);
    response
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
}

impl Api {
    /// Serves `pods/NAME/log`: from this server's data dir (its node agent's logs), or
    /// relayed to the endpoint of the remote node agent the pod runs on.
    pub async fn pod_log(self: &Arc<Self>, t: &Target, q: &Query) -> ApiResult<Response> {
        let pod = self.get_object(t).await?;
        let target = plan(&pod, q)?;
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !node.is_empty()
            && let Some((proxy, endpoint)) = self.remote_node(node).await
        {
            return proxy.logs(&endpoint, &target, q).await;
        }
        let Some(data_dir) = self.config.data_dir.clone() else {
            return Err(ApiError::bad_request("this server keeps no container logs"));
        };
        let api = self.clone();
        let t = t.clone();
        let (container, instance) = (target.container.clone(), target.instance);
        serve_files(&data_dir, &target, q, move || {
            let api = api.clone();
            let t = t.clone();
            let container = container.clone();
            async move { instance_running(&api, &t, &container, instance).await }
        })
    }
}

/// Whether the container's instance `instance` still runs (or may still write).
async fn instance_running(api: &Arc<Api>, t: &Target, container: &str, instance: u64) -> bool {
    let Ok(pod) = api.get_object(t).await else {
        return false;
    };
    let status = ["/status/containerStatuses", "/status/initContainerStatuses"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(container))
        .cloned();
    status.is_some_and(|s| {
        s.get("restartCount").and_then(Value::as_u64) == Some(instance)
            && s.pointer("/state/terminated").is_none()
    })
}

fn async_stream<F, Fut>(
    first: String,
    path: PathBuf,
    offset: u64,
    timestamps: bool,
    running: F,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    struct St<F> {
        first: Option<String>,
        path: PathBuf,
        offset: u64,
        carry: String,
        timestamps: bool,
        running: F,
        idle: u32,
    }
    let st = St {
        first: Some(first),
        path,
        offset,
        carry: String::new(),
        timestamps,
        running,
        idle: 0,
    };
    futures::stream::unfold(st, |mut st| async move {
        if let Some(f) = st.first.take() {
            return Some((Ok(bytes::Bytes::from(f)), st));
        }
        loop {
            use std::io::{Read, Seek, SeekFrom};
            let mut chunk = String::new();
            if let Ok(mut f) = std::fs::File::open(&st.path) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                if len < st.offset {
                    // Rotated: start over in the new file.
                    st.offset = 0;
                }
                if f.seek(SeekFrom::Start(st.offset)).is_ok() {
                    let _ = f.read_to_string(&mut chunk);
                }
            }
            if !chunk.is_empty() {
                st.offset += chunk.len() as u64;
                let text = std::mem::take(&mut st.carry) + &chunk;
                // Keep an unterminated last line for the next round.
                let (complete, rest) = match text.rfind('\n') {
                    Some(i) => (text[..=i].to_string(), text[i + 1..].to_string()),
                    None => (String::new(), text),
                };
                st.carry = rest;
                let out = render(&complete, st.timestamps, None).concat();
                if !out.is_empty() {
                    st.idle = 0;
                    return Some((Ok(bytes::Bytes::from(out)), st));
                }
            }
            st.idle += 1;
            // Every second or so: has the instance ended?
            if st.idle % 10 == 0 && !(st.running)().await {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_render_with_partials_joined() {
        let content = "2026-11-27T12:00:00.000000001Z stdout P hel\n\
                       2026-11-27T12:00:00.000000002Z stdout F lo\n\
                       2026-11-27T12:00:01.000000000Z stderr F oops\n";
        assert_eq!(render(content, false, None), vec!["hello\n", "oops\n"]);
        assert_eq!(
            render(content, true, None),
            vec![
                "2026-11-27T12:00:00.000000001Z hello\n",
                "2026-11-27T12:00:01.000000000Z oops\n"
            ]
        );
        let since: jiff::Timestamp = "2026-11-27T12:00:00.5Z".parse().unwrap();
        assert_eq!(render(content, false, Some(since)), vec!["oops\n"]);
    }

    #[test]
    fn rotated_files_come_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["0.log", "0.log.1", "0.log.2", "1.log"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let files = files_of(&dir.path().join("0.log"));
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["0.log.2", "0.log.1", "0.log"]);
    }
}
