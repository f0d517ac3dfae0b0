//! What every kind of plugin shares around its calls: the store with its limits (memory
//! cap, deadline, no WASI grants, captured stdio), a pool of warm instances, health
//! accounting, the plugin's log, and the classification of a failed call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::error::PluginError;
use super::health::Health;
use super::host_api::{HostApi, HostCtx};
use super::logs::{CaptureStream, LogSource, PluginLogs, panic_message, truncate};
use super::manifest::{Capability, PluginManifest};
use super::runtime::{DeadlineExceeded, LoadedPlugin, MemoryLimiter, StoreState};

/// What a plugin may print per call; the rest is dropped.
const STDIO_CAPTURE_BYTES: usize = 16 << 10;
/// Lines kept in a plugin's log.
const LOG_LINES: usize = 1000;
/// Bounds on the texts a plugin may answer (longer text is truncated).
pub(crate) const MAX_MESSAGE_BYTES: usize = 4096;

/// One instance of a plugin with its store and its world's bindings.
pub(crate) struct Instance<B> {
    pub store: Store<StoreState>,
    pub bindings: B,
    pub calls: u32,
}

/// A loaded plugin version with its limits, log, health and warm instances.
pub(crate) struct Sandbox<B> {
    pub name: Arc<str>,
    pub digest: String,
    pub manifest: PluginManifest,
    pub config_json: String,
    pub loaded: LoadedPlugin,
    capabilities: Arc<[Capability]>,
    api: Arc<dyn HostApi>,
    pub logs: Arc<PluginLogs>,
    pub health: Arc<Health>,
    idle: Mutex<Vec<Instance<B>>>,
}

impl<B> Sandbox<B> {
    pub fn new(loaded: LoadedPlugin, api: Arc<dyn HostApi>) -> Self {
        let manifest = loaded.manifest.clone();
        let name = loaded.name.clone();
        Sandbox {
            digest: loaded.digest.clone(),
            config_json: manifest.config.to_string(),
            capabilities: manifest.capabilities.clone().into(),
            health: Arc::new(Health::new(name.clone(), &manifest.limits)),
            logs: Arc::new(PluginLogs::new(LOG_LINES)),
            idle: Mutex::new(Vec::new()),
            api,
            loaded,
            manifest,
            name,
        }
    }

    /// A warm instance, if one is idle.
    pub fn take_idle(&self) -> Option<Instance<B>> {
        self.idle.lock().pop()
    }

    /// A fresh store under the plugin's limits. Nothing is granted: no preopened
    /// directories, no environment or arguments, no sockets or name lookups; stdin is
    /// closed; stdout/stderr go to the plugin's log.
    pub fn new_store(&self) -> Store<StoreState> {
        let stdout = CaptureStream::new(STDIO_CAPTURE_BYTES);
        let stderr = CaptureStream::new(STDIO_CAPTURE_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = StoreState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                cap: usize::try_from(self.manifest.limits.memory_bytes).unwrap_or(usize::MAX),
                hit: false,
                peak: 0,
            },
            host: HostCtx {
                plugin: self.name.clone(),
                capabilities: self.capabilities.clone(),
                api: self.api.clone(),
                logs: self.logs.clone(),
                health: self.health.clone(),
                deadline: Instant::now(),
            },
            stdout,
            stderr,
            network: Default::default(),
        };
        let mut store = Store::new(&self.loaded.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().host.deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                // Let other tasks run on this thread, then keep going.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Returns a healthy instance to the pool (or drops it when the pool is full, it has
    /// served its calls, or its memory grew past half the cap).
    pub fn release(&self, instance: Instance<B>) {
        let limits = &self.manifest.limits;
        let limiter = &instance.store.data().limiter;
        if instance.calls >= limits.max_calls_per_instance || limiter.peak > limiter.cap / 2 {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < limits.max_idle_instances as usize {
            idle.push(instance);
        }
    }

    /// Moves what the plugin printed into its log; returns stderr (for panic messages).
    pub fn drain_stdio(&self, store: &Store<StoreState>) -> String {
        let data = store.data();
        let stdout = data.stdout.take();
        let stderr = String::from_utf8_lossy(&data.stderr.take()).into_owned();
        for line in String::from_utf8_lossy(&stdout).lines() {
            self.logs.push(LogSource::Stdout, line);
        }
        for line in stderr.lines() {
            self.logs.push(LogSource::Stderr, line);
        }
        stderr
    }

    /// Turns a failed call into the plugin's error: a timeout, a memory limit, a panic
    /// (with its message), an exit, a trap, or an invalid response.
    pub fn classify(
        &self,
        e: wasmtime::Error,
        store: &Store<StoreState>,
        stderr: &str,
        deadline: Duration,
    ) -> PluginError {
        let plugin = self.name.clone();
        if e.is::<DeadlineExceeded>() || e.chain().any(|c| c.is::<DeadlineExceeded>()) {
            return PluginError::Timeout { plugin, deadline };
        }
        // Rust's runtime hint is noise in an API error.
        let stderr = stderr
            .lines()
            .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect::<Vec<_>>()
            .join("\n");
        let stderr = stderr.as_str();
        if store.data().limiter.hit {
            let printed = stderr.trim();
            return PluginError::MemoryLimit {
                plugin,
                limit: self.manifest.limits.memory_bytes,
                detail: if printed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", truncate(printed, MAX_MESSAGE_BYTES))
                },
            };
        }
        if let Some(message) = panic_message(stderr) {
            return PluginError::Panic { plugin, message };
        }
        if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return PluginError::Trap {
                plugin,
                message: format!("the plugin exited with status {}", exit.0),
            };
        }
        let trap = e.downcast_ref::<wasmtime::Trap>().copied();
        // A trap's message is the trap; its wasm backtrace goes to the plugin's log.
        let mut message = match trap {
            Some(t) => {
                self.logs.push(LogSource::Runtime, &format!("trap: {e:#}"));
                // wasmtime's message already says "wasm trap: …".
                t.to_string()
            }
            None => format!("{e:#}"),
        };
        let printed = stderr.trim();
        if !printed.is_empty() {
            message = format!(
                "{message}; stderr: {}",
                truncate(printed, MAX_MESSAGE_BYTES)
            );
        }
        if trap.is_some() {
            PluginError::Trap { plugin, message }
        } else {
            // Not a trap: the canonical ABI rejected what the plugin returned, or the call
            // could not run at all.
            PluginError::InvalidResponse { plugin, message }
        }
    }

    /// An instantiation failure as the plugin's error (a trap during start-up is an
    /// internal failure of the plugin, not of one call).
    pub fn instantiation_failed(
        &self,
        e: wasmtime::Error,
        store: &Store<StoreState>,
        timeout: Duration,
    ) -> PluginError {
        let stderr = self.drain_stdio(store);
        match self.classify(e, store, &stderr, timeout) {
            PluginError::Trap { plugin, message }
            | PluginError::InvalidResponse { plugin, message } => PluginError::Internal {
                plugin,
                message: format!("instantiation failed: {message}"),
            },
            other => other,
        }
    }

    /// Records a call's outcome in the plugin's health and, for a failure, its log.
    pub fn record<T>(
        &self,
        permit: super::health::CallPermit<'_>,
        what: &str,
        result: &Result<T, PluginError>,
    ) {
        self.health.record(permit, result.as_ref().map(|_| ()));
        if let Err(e) = result {
            tracing::debug!(plugin = %self.name, call = what, error = %e, "plugin call failed");
            self.logs
                .push(LogSource::Runtime, &format!("{what} failed: {e}"));
        }
    }
}

/// Arms the deadline for the next call on `store`.
pub(crate) fn begin_call(store: &mut Store<StoreState>, timeout: Duration) {
    store.data_mut().host.deadline = Instant::now() + timeout;
    store.set_epoch_deadline(1);
}
