//! The sandbox: one wasmtime [`Engine`] for every plugin, compiling (or loading from the
//! on-disk cache) components and type-checking them against their world.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::controller::{ControllerPre, tugboat::plugin::cluster as wit_cluster};
use super::bindings::network::{NetworkPre, tugboat::plugin as wit_network};
use super::bindings::scheduler::SchedulerPre;
use super::bindings::{Admission, AdmissionPre};
use super::cache::ComponentCache;
use super::error::PluginError;
use super::host_api::HostCtx;
use super::logs::CaptureStream;
use super::manifest::{PluginKind, PluginManifest};

/// Settings of the runtime shared by all plugins.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached (`None`: no cache, compile on every load).
    pub cache_dir: Option<PathBuf>,
    /// How often the epoch ticks; per-call deadlines are enforced with this granularity.
    pub epoch_tick: Duration,
    /// Instances that may exist at once across all plugins (the pooling allocator's slots;
    /// a call beyond them fails). Each reserves address space, not memory.
    pub max_instances: u32,
    /// The largest memory cap a manifest may ask for.
    pub max_memory_bytes: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            epoch_tick: Duration::from_millis(1),
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
        }
    }
}

/// Enforces a plugin's memory cap and remembers whether it was hit (to report a memory
/// failure as such rather than as the trap or allocation error that follows).
pub(crate) struct MemoryLimiter {
    pub cap: usize,
    pub hit: bool,
    /// The largest linear memory seen, in bytes.
    pub peak: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; 100k entries is far beyond any real plugin.
        Ok(desired <= 100_000)
    }
}

/// The data of every plugin [`wasmtime::Store`].
pub(crate) struct StoreState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub host: HostCtx,
    pub stdout: CaptureStream,
    pub stderr: CaptureStream,
    /// The scope of a network plugin's calls (empty for other kinds: every network host
    /// call is refused).
    pub network: crate::network::pod::host::NetworkCtx,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Raised by the epoch callback when a call's deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
pub(crate) struct DeadlineExceeded;

/// The plugin runtime: one engine, its linker (WASI with nothing granted, plus the host
/// API) and the compiled-component cache. Create one per process and share it.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<StoreState>,
    cache: Option<ComponentCache>,
    config: RuntimeConfig,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Compiled from the component's bytes (and stored in the cache, if any).
    Compiled,
    /// Deserialized from the on-disk cache.
    Cache,
}

/// A compiled component, type-checked against its kind's world, ready to instantiate.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub name: Arc<str>,
    /// Hex sha256 of the component's bytes.
    pub digest: String,
    pub manifest: PluginManifest,
    pub source: CompileSource,
    /// Time spent compiling or deserializing.
    pub load_time: Duration,
    pub(crate) engine: Engine,
    pub(crate) pre: WorldPre,
}

/// A component instantiated ahead of time for its world.
#[derive(Clone)]
pub(crate) enum WorldPre {
    Admission(AdmissionPre<StoreState>),
    Controller(ControllerPre<StoreState>),
    Scheduler(SchedulerPre<StoreState>),
    Network(NetworkPre<StoreState>),
}

impl LoadedPlugin {
    fn wrong_world(&self, want: &'static str) -> PluginError {
        PluginError::Internal {
            plugin: self.name.clone(),
            message: format!("the component was loaded for another world than {want}"),
        }
    }

    pub(crate) fn admission_pre(&self) -> Result<&AdmissionPre<StoreState>, PluginError> {
        match &self.pre {
            WorldPre::Admission(p) => Ok(p),
            _ => Err(self.wrong_world("admission")),
        }
    }

    pub(crate) fn controller_pre(&self) -> Result<&ControllerPre<StoreState>, PluginError> {
        match &self.pre {
            WorldPre::Controller(p) => Ok(p),
            _ => Err(self.wrong_world("controller")),
        }
    }

    pub(crate) fn network_pre(&self) -> Result<&NetworkPre<StoreState>, PluginError> {
        match &self.pre {
            WorldPre::Network(p) => Ok(p),
            _ => Err(self.wrong_world("network")),
        }
    }

    pub(crate) fn scheduler_pre(&self) -> Result<&SchedulerPre<StoreState>, PluginError> {
        match &self.pre {
            WorldPre::Scheduler(p) => Ok(p),
            _ => Err(self.wrong_world("scheduler")),
        }
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("source", &self.source)
            .field("load_time", &self.load_time)
            .finish_non_exhaustive()
    }
}

impl PluginRuntime {
    /// Creates the engine (pooling allocator, epoch interruption, no component-model
    /// concurrency), starts its epoch ticker thread (it stops when the engine is dropped)
    /// and opens the cache.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Arc<Self>> {
        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
            // Keep a little of each memory resident between instances: resetting it with
            // memset is cheaper than faulting the pages in again.
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .concurrency_support(false)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(anyhow::Error::from)?;
        spawn_epoch_ticker(&engine, config.epoch_tick)?;

        let mut linker: Linker<StoreState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        Admission::add_to_linker::<StoreState, HasSelf<HostCtx>>(&mut linker, |s| &mut s.host)
            .map_err(anyhow::Error::from)?;
        wit_cluster::add_to_linker::<StoreState, HasSelf<HostCtx>>(&mut linker, |s| &mut s.host)
            .map_err(anyhow::Error::from)?;
        {
            use crate::network::pod::host::NetworkCtx;
            wit_network::netlink::add_to_linker::<StoreState, HasSelf<NetworkCtx>>(
                &mut linker,
                |s| &mut s.network,
            )
            .map_err(anyhow::Error::from)?;
            wit_network::ipam_store::add_to_linker::<StoreState, HasSelf<NetworkCtx>>(
                &mut linker,
                |s| &mut s.network,
            )
            .map_err(anyhow::Error::from)?;
            wit_network::cni::add_to_linker::<StoreState, HasSelf<NetworkCtx>>(&mut linker, |s| {
                &mut s.network
            })
            .map_err(anyhow::Error::from)?;
        }

        let cache = match &config.cache_dir {
            Some(dir) => Some(ComponentCache::open(dir, &engine)?),
            None => None,
        };
        Ok(Arc::new(PluginRuntime {
            engine,
            linker,
            cache,
            config,
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Compiles a component, or loads it from the cache. Returns it with its digest.
    pub fn compile(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<(Component, String, CompileSource), PluginError> {
        let digest = hex::encode(Sha256::digest(bytes));
        if let Some(component) = self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, &digest))
        {
            return Ok((component, digest, CompileSource::Cache));
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| PluginError::Compile {
            plugin: name.into(),
            message: format!("{e:#}"),
        })?;
        if let Some(cache) = &self.cache {
            cache.put(&digest, &component);
        }
        Ok((component, digest, CompileSource::Compiled))
    }

    /// Validates the manifest, compiles (or loads from cache) the component and checks it
    /// against the world of `manifest.kind`: a component that does not fit fails here with
    /// [`PluginError::Incompatible`]. Compiling can take 100+ ms on a cache miss: call from
    /// a blocking context (e.g. `tokio::task::spawn_blocking`).
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        manifest: PluginManifest,
    ) -> Result<LoadedPlugin, PluginError> {
        let plugin: Arc<str> = name.into();
        manifest
            .validate(self.config.max_memory_bytes)
            .map_err(|message| PluginError::Manifest {
                plugin: plugin.clone(),
                message,
            })?;
        let world = match manifest.kind {
            PluginKind::Admission => "tugboat:plugin/admission@0.1.0",
            PluginKind::Controller => "tugboat:plugin/controller@0.1.0",
            PluginKind::Scheduler => "tugboat:plugin/scheduler@0.1.0",
            PluginKind::Network => "tugboat:plugin/network@0.1.0",
            other => {
                return Err(PluginError::Manifest {
                    plugin,
                    message: format!("plugin kind {:?} is not supported yet", other.world()),
                });
            }
        };
        let started = Instant::now();
        let (component, digest, source) = self.compile(name, bytes)?;
        let load_time = started.elapsed();
        let incompatible = |e: wasmtime::Error| PluginError::Incompatible {
            plugin: plugin.clone(),
            world,
            message: format!("{e:#}"),
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(incompatible)?;
        let pre = match manifest.kind {
            PluginKind::Controller => {
                WorldPre::Controller(ControllerPre::new(pre).map_err(incompatible)?)
            }
            PluginKind::Scheduler => {
                WorldPre::Scheduler(SchedulerPre::new(pre).map_err(incompatible)?)
            }
            PluginKind::Network => WorldPre::Network(NetworkPre::new(pre).map_err(incompatible)?),
            _ => WorldPre::Admission(AdmissionPre::new(pre).map_err(incompatible)?),
        };
        tracing::info!(plugin = %plugin, %digest, ?source, ?load_time, "plugin component loaded");
        Ok(LoadedPlugin {
            name: plugin,
            digest,
            manifest,
            source,
            load_time,
            engine: self.engine.clone(),
            pre,
        })
    }
}

impl PluginRuntime {
    /// [`PluginRuntime::load`] on tokio's blocking pool (compiling can take 100+ ms).
    pub async fn load_async(
        self: &Arc<Self>,
        name: &str,
        bytes: Arc<[u8]>,
        manifest: PluginManifest,
    ) -> Result<LoadedPlugin, PluginError> {
        let runtime = self.clone();
        let owned = name.to_string();
        tokio::task::spawn_blocking(move || runtime.load(&owned, &bytes, manifest))
            .await
            .unwrap_or_else(|e| {
                Err(PluginError::Internal {
                    plugin: name.into(),
                    message: format!("loading task failed: {e}"),
                })
            })
    }
}

fn spawn_epoch_ticker(engine: &Engine, tick: Duration) -> anyhow::Result<()> {
    let weak = engine.weak();
    let tick = tick.max(Duration::from_micros(100));
    std::thread::Builder::new()
        .name("tug-plugin-epoch".to_string())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        })
        .map_err(|e| anyhow::anyhow!("starting the plugin epoch ticker: {e}"))?;
    Ok(())
}
