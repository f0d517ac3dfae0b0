//! A plugin's log: what it printed to stdout/stderr and sent with `host.log`, kept in a
//! bounded ring buffer (for `tug plugin logs`) and mirrored to the host's tracing log.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    Stdout,
    Stderr,
    /// `host.log` with its level.
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    /// The runtime itself (failures, capability violations, activation).
    Runtime,
}

/// One line of a plugin's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub at: SystemTime,
    pub source: LogSource,
    pub message: String,
}

/// The longest line kept; longer ones are truncated.
pub const MAX_LINE_BYTES: usize = 4096;

/// A bounded log (the oldest lines are dropped first).
#[derive(Debug)]
pub struct PluginLogs {
    lines: Mutex<VecDeque<LogLine>>,
    capacity: usize,
}

impl PluginLogs {
    pub fn new(capacity: usize) -> Self {
        PluginLogs {
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(64))),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&self, source: LogSource, message: &str) {
        let line = LogLine {
            at: SystemTime::now(),
            source,
            message: truncate(message, MAX_LINE_BYTES).to_string(),
        };
        let mut lines = self.lines.lock();
        while lines.len() >= self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// All lines kept, oldest first.
    pub fn snapshot(&self) -> Vec<LogLine> {
        self.lines.lock().iter().cloned().collect()
    }
}

/// Cuts `s` to at most `max` bytes on a char boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A WASI stdout/stderr that collects what the plugin writes during a call into a bounded
/// buffer (bytes beyond the bound are dropped, never an error for the plugin); the runtime
/// drains it after each call.
#[derive(Clone, Debug)]
pub struct CaptureStream {
    buffer: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl CaptureStream {
    pub fn new(capacity: usize) -> Self {
        CaptureStream {
            buffer: Arc::new(Mutex::new(Vec::new())),
            capacity,
        }
    }

    /// Takes what was written since the last call.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buffer.lock())
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.buffer.lock();
        let room = self.capacity.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Extracts the message of a Rust panic from what a plugin wrote to stderr:
/// `thread '…' panicked at src/lib.rs:1:2:\n<message>\nnote: …` → `<message>`.
pub fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let rest = &stderr[start..];
    let (header, body) = rest.split_once('\n').unwrap_or((rest, ""));
    let mut lines: Vec<&str> = body
        .lines()
        .take_while(|l| !l.starts_with("note: ") && !l.starts_with("stack backtrace"))
        .collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        // Older formats: `panicked at 'message', src/lib.rs:1:2`.
        let location = header
            .trim_start_matches("panicked at ")
            .trim_end_matches(':');
        return Some(location.to_string());
    }
    Some(truncate(&lines.join("\n"), MAX_LINE_BYTES).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_panic_messages() {
        let stderr = "thread '<unnamed>' panicked at src/lib.rs:87:24:\nfaulty plugin panicked on purpose\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("faulty plugin panicked on purpose")
        );
        assert_eq!(panic_message("nothing here"), None);
    }

    #[test]
    fn ring_buffer_and_capture_are_bounded() {
        let logs = PluginLogs::new(2);
        for i in 0..5 {
            logs.push(LogSource::Info, &format!("line {i}"));
        }
        let lines = logs.snapshot();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].message, "line 4");
        let c = CaptureStream::new(4);
        c.append(b"hello");
        assert_eq!(c.take(), b"hell");
        assert!(c.take().is_empty());
        assert_eq!(truncate("héllo", 2), "h");
    }
}
