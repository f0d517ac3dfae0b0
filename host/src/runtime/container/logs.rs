//! CRI-format container logs with size-based rotation.
//!
//! One line per chunk of output ending in a newline:
//! `2026-11-27T12:00:00.123456789Z stdout F text` (`F`: the full line; `P`: a partial
//! line, written when a line grows past [`MAX_LINE`] bytes or the stream ends without
//! a newline — the reader joins `P` pieces to the next `F`). The file is rotated when it
//! grows past `max_size`: `<log>` → `<log>.1` → … → `<log>.<max_files>` (the oldest
//! dropped), and a fresh `<log>` opened, as the kubelet's container log manager does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Longest line written as one record; longer ones are split into `P` records.
pub const MAX_LINE: usize = 16 * 1024;

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (also a terminal's output).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// RFC 3339 UTC with nanoseconds (`2026-11-27T12:00:00.123456789Z`).
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let nanos = super::state::to_nanos(t);
    let secs = i64::try_from(nanos / 1_000_000_000).unwrap_or(0);
    let sub = nanos % 1_000_000_000;
    let base = jiff::Timestamp::from_second(secs)
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00".to_string());
    format!("{base}.{sub:09}Z")
}

/// Writes one container's CRI log, buffering partial lines per stream.
pub struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_files: u32,
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (appends to) `path`, creating its directory.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<LogWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file: Some(file),
            size,
            max_size,
            max_files,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Records output of `stream`: complete lines are written at once, a trailing
    /// partial line waits for its end (or for [`LogWriter::flush`]).
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let idx = stream as usize;
        let mut buf = std::mem::take(&mut self.pending[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            self.record(stream, &buf[start..end], true);
            start = end + 1;
        }
        while buf.len() - start >= MAX_LINE {
            self.record(stream, &buf[start..start + MAX_LINE], false);
            start += MAX_LINE;
        }
        buf.drain(..start);
        self.pending[idx] = buf;
    }

    /// Writes the partial lines still buffered (the streams ended).
    pub fn flush(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let buf = std::mem::take(&mut self.pending[stream as usize]);
            if !buf.is_empty() {
                self.record(stream, &buf, true);
            }
        }
    }

    fn record(&mut self, stream: Stream, line: &[u8], full: bool) {
        let ts = rfc3339_nanos(SystemTime::now());
        let tag = if full { "F" } else { "P" };
        let mut rec = Vec::with_capacity(line.len() + 48);
        rec.extend_from_slice(ts.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.as_str().as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(tag.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(line);
        rec.push(b'\n');
        if self.max_size > 0 && self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.write_all(&rec) {
                eprintln!("tug shim: writing {}: {e}", self.path.display());
            } else {
                self.size += rec.len() as u64;
            }
        }
    }

    /// `<log>.N-1` → `<log>.N` … `<log>` → `<log>.1`, then a fresh `<log>`.
    fn rotate(&mut self) {
        self.file = None;
        let name = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.max_files == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(name(self.max_files));
            for n in (1..self.max_files).rev() {
                let _ = std::fs::rename(name(n), name(n + 1));
            }
            let _ = std::fs::rename(&self.path, name(1));
        }
        match OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            Ok(f) => self.file = Some(f),
            Err(e) => eprintln!("tug shim: reopening {}: {e}", self.path.display()),
        }
        self.size = 0;
    }
}

/// One parsed CRI log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The timestamp as written.
    pub timestamp: String,
    /// The stream.
    pub stream: Stream,
    /// Whether the record ends a line (`F`) or continues on the next (`P`).
    pub full: bool,
    /// The text (without the newline).
    pub text: Vec<u8>,
}

/// Parses one CRI log line (without its newline).
pub fn parse_line(line: &[u8]) -> Option<LogRecord> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let text = parts.next().unwrap_or_default().to_vec();
    Some(LogRecord {
        timestamp: ts,
        stream,
        full,
        text,
    })
}
