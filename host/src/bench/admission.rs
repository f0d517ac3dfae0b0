//! `tug bench admission`: what a Wasm admission hook costs (issue 3, Proof 4; the target is
//! at most 50 µs p99 added per hook).
//!
//! 1. In process, the Rust example policy (`examples/plugins/rust/deny-privileged`) on a
//!    typical Pod (as the server hands it to hooks, defaulted): compile time, cache-load
//!    (deserialize) time, instantiate+decide on a fresh instance, decide on a warm instance
//!    (back to back, and after 1 ms idle as between requests), against the same check as a
//!    native Rust function (on a decoded `Value`, and including the JSON parse the guest has
//!    to do).
//! 2. Through the API: a real `tug server`, the component uploaded to its blob store, `Plugin`
//!    objects (validating, pods CREATE) and sequential pod creates over HTTPS with no hook,
//!    one hook and several hooks. The hook configurations are told apart by namespace (each
//!    Plugin's rules name the namespaces it judges), so batches of the configurations
//!    alternate within one run and the machine's noise falls on all of them alike.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::{Client, ServerProcess, create_ns, percentile};
use crate::plugin::{
    AdmissionPlugin, AdmissionRequest, CompileSource, Gvk, Gvr, NoHostApi, Operation,
    PluginManifest, PluginRuntime, RuntimeConfig, UserInfo,
};

/// The Rust example policy's file in the directory `scripts/build-plugins.sh` prints.
const WASM_FILE: &str = "deny_privileged.wasm";
/// What the policy answers for the privileged variant of the bench pod.
const DENIAL: &str = "privileged containers are not allowed: container proxy";
/// The target for the p99 latency one hook adds.
const TARGET_P99_PER_HOOK: Duration = Duration::from_micros(50);
/// The idle time before each call of the "paused" measurements.
const PAUSE: Duration = Duration::from_millis(1);
/// Cache loads timed (each takes well under a millisecond).
const CACHE_LOADS: usize = 20;

#[derive(clap::Args, Debug, Clone)]
pub struct AdmissionArgs {
    /// The Rust example policy's component (default: deny_privileged.wasm in the directory
    /// `bash scripts/build-plugins.sh` prints, i.e.
    /// ${CARGO_TARGET_DIR:-/var/tmp/tugboat-target}-plugins/wasm32-wasip2/release/).
    #[arg(long)]
    pub wasm: Option<PathBuf>,
    /// Timed calls per in-process measurement.
    #[arg(long, default_value_t = 10_000)]
    pub calls: usize,
    /// Compilations of the component to time.
    #[arg(long, default_value_t = 3)]
    pub compiles: usize,
    /// Timed pod creates per hook configuration through the API.
    #[arg(long, default_value_t = 3000)]
    pub creates: usize,
    /// Rounds the timed calls and creates are split into (figures per round show the noise).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Pod creates per batch; batches of the hook configurations alternate (1: they take
    /// turns create by create, so bursts of noise fall on all of them alike).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Untimed pod creates per configuration before timing.
    #[arg(long, default_value_t = 200)]
    pub warmup: usize,
    /// Hooks in the largest configuration (copies of the policy under different names).
    #[arg(long, default_value_t = 4)]
    pub hooks: usize,
    /// Only the in-process figures (no server).
    #[arg(long)]
    pub in_process_only: bool,
    /// Put the server's temporary data directory on disk ($TMPDIR) instead of tmpfs
    /// (/dev/shm): creates then wait for a real fsync, whose jitter on a shared disk is
    /// milliseconds and hides the microseconds a hook adds (`tug bench api` measures the
    /// durable write path).
    #[arg(long)]
    pub disk: bool,
    /// Keep the server's data directory here instead of a temporary one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

pub(crate) async fn bench_admission(args: AdmissionArgs) -> Result<()> {
    if args.rounds == 0 || args.batch == 0 || args.calls == 0 || args.creates == 0 {
        bail!("--calls, --creates, --rounds and --batch must be at least 1");
    }
    if args.hooks == 0 {
        bail!("--hooks must be at least 1");
    }
    let path = match &args.wasm {
        Some(p) => p.clone(),
        None => default_wasm_dir().join(WASM_FILE),
    };
    let bytes: Arc<[u8]> = match std::fs::read(&path) {
        Ok(b) => b.into(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} does not exist: build the example policies with `bash scripts/build-plugins.sh` \
             (it prints the directory of the .wasm files on its last line), or pass --wasm PATH",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let pod = typical_pod("web-7d4b9c8f6-x2x9k", "default", false);
    println!(
        "admission bench: the Rust example policy {} ({:.0} KiB) on a typical Pod \
         (2 containers + 1 init container, labels, annotations, resources, probes, env, \
         volumes; {} bytes of JSON as sent, {} as hooks see it after the server's defaulting)",
        path.display(),
        bytes.len() as f64 / 1024.0,
        pod.to_string().len(),
        as_admitted(pod.clone()).to_string().len()
    );
    let local = in_process(bytes.clone(), &args)
        .await
        .context("in-process benchmark")?;
    let api = if args.in_process_only {
        None
    } else {
        Some(
            through_api(&bytes, &args)
                .await
                .context("benchmark through the API")?,
        )
    };
    summary(&local, api.as_ref());
    Ok(())
}

/// Where `scripts/build-plugins.sh` puts the .wasm files (honouring the variables it and
/// the tests honour).
fn default_wasm_dir() -> PathBuf {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("TUG_PLUGIN_WASM_DIR") {
        return PathBuf::from(dir);
    }
    let target = match set("TUG_PLUGINS_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        None => {
            let mut t = set("CARGO_TARGET_DIR").unwrap_or_else(|| "/var/tmp/tugboat-target".into());
            t.push("-plugins");
            PathBuf::from(t)
        }
    };
    target.join("wasm32-wasip2").join("release")
}

/// A Pod as a Deployment would create it: two containers (the app and a mesh sidecar) and
/// an init container, with labels, annotations, resources, probes, env and volumes.
fn typical_pod(name: &str, namespace: &str, privileged: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "web",
                "app.kubernetes.io/instance": "web-prod",
                "app.kubernetes.io/version": "1.24.3",
                "app.kubernetes.io/part-of": "shop",
                "pod-template-hash": "7d4b9c8f6",
                "tier": "frontend"
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
                "kubectl.kubernetes.io/default-container": "web"
            }
        },
        "spec": {
            "initContainers": [{
                "name": "migrate",
                "image": "registry.example.com/shop/web:1.24.3",
                "command": ["/app/migrate", "--wait-for-db=60s"],
                "env": [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "web-db", "key": "url"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
            }],
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example.com/shop/web:1.24.3",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["--listen=:8080", "--metrics=:9090", "--log-format=json"],
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                    ],
                    "env": [
                        {"name": "RUST_LOG", "value": "info"},
                        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "web-db", "key": "url"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                    ],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"cpu": "1", "memory": "512Mi"}
                    },
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                    "livenessProbe": {"httpGet": {"path": "/livez", "port": "http"}, "initialDelaySeconds": 10, "periodSeconds": 10},
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/web", "readOnly": true},
                        {"name": "cache", "mountPath": "/var/cache/web"}
                    ],
                    "securityContext": {
                        "runAsNonRoot": true,
                        "allowPrivilegeEscalation": false,
                        "readOnlyRootFilesystem": true,
                        "capabilities": {"drop": ["ALL"]}
                    }
                },
                {
                    "name": "proxy",
                    "image": "registry.example.com/mesh/proxy:2.8.1",
                    "args": ["proxy", "sidecar", "--concurrency=2"],
                    "ports": [{"name": "proxy", "containerPort": 15001, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                    "securityContext": {"privileged": privileged, "runAsUser": 1337}
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config"}},
                {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]
        }
    })
}

/// `pod` as the API server hands it to the admission chain on create: defaulted and
/// stamped (uid, creation time, generation).
fn as_admitted(mut pod: Value) -> Value {
    crate::api::defaults::apply_defaults("", "Pod", &mut pod);
    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("uid".into(), json!("6f1c2b9e-2d4a-4c59-9a57-3f0e8b1d7c42"));
        meta.insert("creationTimestamp".into(), json!("2026-01-01T00:00:00Z"));
        meta.insert("generation".into(), json!(1));
    }
    pod
}

/// The request the API server hands a hook for creating `pod`.
fn create_request(pod: Value) -> AdmissionRequest {
    AdmissionRequest {
        uid: uuid::Uuid::new_v4().to_string(),
        operation: Operation::Create,
        kind: Gvk {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
        },
        resource: Gvr {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
        },
        sub_resource: None,
        namespace: pod["metadata"]["namespace"].as_str().map(str::to_string),
        name: pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        object: Some(pod),
        old_object: None,
        user: UserInfo {
            username: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        },
        dry_run: false,
    }
}

/// The deny-privileged example's check as a native Rust function.
fn native_deny_privileged(request: &AdmissionRequest, object: &Value) -> Option<String> {
    if !(request.kind.group.is_empty() && request.kind.kind == "Pod") {
        return None;
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in object["spec"][list].as_array().into_iter().flatten() {
            if c["securityContext"]["privileged"] == true {
                return Some(format!(
                    "privileged containers are not allowed: container {}",
                    c["name"].as_str().unwrap_or("<unnamed>")
                ));
            }
        }
    }
    None
}

/// p50 and p99 of some samples.
#[derive(Debug, Clone, Copy, Default)]
struct Pcts {
    p50: Duration,
    p99: Duration,
}

impl Pcts {
    fn of(samples: &[Duration]) -> Pcts {
        let mut s = samples.to_vec();
        s.sort();
        Pcts {
            p50: percentile(&s, 0.50),
            p99: percentile(&s, 0.99),
        }
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Signed difference in µs.
fn diff_us(a: Duration, b: Duration) -> f64 {
    us(a) - us(b)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:+.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The in-process figures the summary needs.
struct InProcess {
    warm: Pcts,
    fresh: Pcts,
    native_parse: Pcts,
    native_value: Pcts,
    /// Calls after a pause.
    warm_paused: Pcts,
    native_parse_paused: Pcts,
}

async fn in_process(bytes: Arc<[u8]>, args: &AdmissionArgs) -> Result<InProcess> {
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(tmp.path().join("plugin-cache")),
        ..RuntimeConfig::default()
    })
    .context("starting the plugin runtime")?;

    // Compile (what a server does on a cache miss) and deserialize from the on-disk cache
    // (what it does on a restart), on the blocking pool: compiling takes a while.
    let compiles = args.compiles.max(1);
    let (compile, cache_load) = {
        let rt = runtime.clone();
        let bytes = bytes.clone();
        tokio::task::spawn_blocking(move || -> Result<(Vec<Duration>, Vec<Duration>)> {
            let mut compile = Vec::with_capacity(compiles);
            for _ in 0..compiles {
                let t = Instant::now();
                let c = wasmtime::component::Component::new(rt.engine(), &bytes)
                    .map_err(|e| anyhow!("compiling the component: {e:#}"))?;
                compile.push(t.elapsed());
                drop(c);
            }
            // Fill the cache, then time loads from it.
            rt.compile("deny-privileged", &bytes)?;
            let mut cache_load = Vec::with_capacity(CACHE_LOADS);
            for _ in 0..CACHE_LOADS {
                let t = Instant::now();
                let (_, _, source) = rt.compile("deny-privileged", &bytes)?;
                cache_load.push(t.elapsed());
                if source != CompileSource::Cache {
                    bail!("the compiled component was not loaded from the cache");
                }
            }
            Ok((compile, cache_load))
        })
        .await
        .context("the compile task failed")??
    };
    let compile = Pcts::of(&compile);
    let cache_load = Pcts::of(&cache_load);

    let load = |max_calls: u32| -> Result<AdmissionPlugin> {
        let mut m = PluginManifest::default();
        m.limits.max_calls_per_instance = max_calls;
        let loaded = runtime.load("deny-privileged", &bytes, m)?;
        Ok(AdmissionPlugin::new(loaded, Arc::new(NoHostApi)))
    };
    let default_max_calls = PluginManifest::default().limits.max_calls_per_instance;
    let warm = load(default_max_calls)?;
    let fresh = load(1)?;

    let request = create_request(as_admitted(typical_pod(
        "web-7d4b9c8f6-x2x9k",
        "default",
        false,
    )));
    let object = request.object.clone().unwrap_or_default();
    let text = object.to_string();

    // The component must be the deny-privileged policy and agree with the native check.
    let denied = create_request(as_admitted(typical_pod(
        "web-7d4b9c8f6-x2x9k",
        "default",
        true,
    )));
    let denied_object = denied.object.clone().unwrap_or_default();
    for (label, plugin) in [("warm", &warm), ("fresh", &fresh)] {
        let allow = plugin.admit(&request).await?;
        let deny = plugin.admit(&denied).await?;
        let native = native_deny_privileged(&denied, &denied_object);
        if !allow.allowed || deny.allowed || deny.message != native || native.is_none() {
            bail!(
                "the component does not behave like the deny-privileged example ({label} instance): \
                 allowed an ordinary pod: {}, answered {:?} for a privileged one (native: {native:?})",
                allow.allowed,
                deny.message
            );
        }
    }
    if native_deny_privileged(&request, &object).is_some() {
        bail!("the native check denied the ordinary pod");
    }

    // Warm up, then time in rounds that alternate the four measurements.
    for _ in 0..500 {
        warm.admit(&request).await?;
    }
    for _ in 0..100 {
        fresh.admit(&request).await?;
    }
    let per_round = args.calls.div_ceil(args.rounds);
    let mut s_warm = Vec::with_capacity(per_round * args.rounds);
    let mut s_fresh = Vec::with_capacity(per_round * args.rounds);
    let mut s_value = Vec::with_capacity(per_round * args.rounds);
    let mut s_parse = Vec::with_capacity(per_round * args.rounds);
    // The same after a pause, as between requests in a server that is not saturated: the
    // CPU's caches and predictors have moved on (fewer calls: each waits for the pause).
    let paused_per_round = (per_round / 5).max(1);
    let mut s_warm_paused = Vec::with_capacity(paused_per_round * args.rounds);
    let mut s_parse_paused = Vec::with_capacity(paused_per_round * args.rounds);
    for _ in 0..args.rounds {
        for _ in 0..per_round {
            let t = Instant::now();
            let r = warm.admit(&request).await?;
            s_warm.push(t.elapsed());
            if !r.allowed {
                bail!("the warm instance denied the ordinary pod");
            }
        }
        for _ in 0..per_round {
            let t = Instant::now();
            let r = fresh.admit(&request).await?;
            s_fresh.push(t.elapsed());
            if !r.allowed {
                bail!("a fresh instance denied the ordinary pod");
            }
        }
        for _ in 0..per_round {
            let t = Instant::now();
            let r = native_deny_privileged(
                std::hint::black_box(&request),
                std::hint::black_box(&object),
            );
            s_value.push(t.elapsed());
            if std::hint::black_box(r).is_some() {
                bail!("the native check denied the ordinary pod");
            }
        }
        for _ in 0..per_round {
            let t = Instant::now();
            let parsed: Value =
                serde_json::from_str(std::hint::black_box(&text)).context("parsing the pod")?;
            let r = native_deny_privileged(std::hint::black_box(&request), &parsed);
            s_parse.push(t.elapsed());
            if std::hint::black_box(r).is_some() {
                bail!("the native check denied the ordinary pod");
            }
        }
        for _ in 0..paused_per_round {
            tokio::time::sleep(PAUSE).await;
            let t = Instant::now();
            let r = warm.admit(&request).await?;
            s_warm_paused.push(t.elapsed());
            if !r.allowed {
                bail!("the warm instance denied the ordinary pod");
            }
            tokio::time::sleep(PAUSE).await;
            let t = Instant::now();
            let parsed: Value =
                serde_json::from_str(std::hint::black_box(&text)).context("parsing the pod")?;
            let r = native_deny_privileged(std::hint::black_box(&request), &parsed);
            s_parse_paused.push(t.elapsed());
            if std::hint::black_box(r).is_some() {
                bail!("the native check denied the ordinary pod");
            }
        }
    }
    let stats = warm.stats();
    let fig = InProcess {
        warm: Pcts::of(&s_warm),
        fresh: Pcts::of(&s_fresh),
        native_parse: Pcts::of(&s_parse),
        native_value: Pcts::of(&s_value),
        warm_paused: Pcts::of(&s_warm_paused),
        native_parse_paused: Pcts::of(&s_parse_paused),
    };
    drop((warm, fresh));
    drop(runtime);
    tmp.close().context("removing the temporary plugin cache")?;

    println!();
    println!(
        "in process ({} timed calls each, back to back, in {} rounds alternating the \
         measurements; wasmtime pooling allocator, the server's runtime settings):",
        per_round * args.rounds,
        args.rounds
    );
    println!(
        "  compile (cache miss):               median {:8.1} ms  ({} compilations)",
        compile.p50.as_secs_f64() * 1e3,
        compiles
    );
    println!(
        "  load from the compiled cache:       p50 {:8.1} µs  p99 {:8.1} µs  ({CACHE_LOADS} loads)",
        us(cache_load.p50),
        us(cache_load.p99)
    );
    let row = |label: &str, p: Pcts| {
        println!(
            "  {label:<35} p50 {:8.2} µs  p99 {:8.2} µs",
            us(p.p50),
            us(p.p99)
        );
    };
    row("fresh instance: instantiate+decide", fig.fresh);
    row("warm instance: decide", fig.warm);
    row("native Rust incl. JSON parse", fig.native_parse);
    row("native Rust on a decoded Value", fig.native_value);
    let pause = format!("after {} ms idle", PAUSE.as_millis());
    println!(
        "  each call {pause} (as between requests; {} calls each):",
        paused_per_round * args.rounds
    );
    row("  warm instance: decide", fig.warm_paused);
    row("  native Rust incl. JSON parse", fig.native_parse_paused);
    println!(
        "  (a wasm call includes serializing the object to JSON in the host, the guest's parse \
         and the check; the plugin served {} calls with {} errors)",
        stats.calls, stats.errors
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "  ratio wasm/native (vs native incl. JSON parse): warm decide {:.1}x p50, {:.1}x p99; \
         instantiate+decide {:.1}x p50, {:.1}x p99",
        ratio(fig.warm.p50, fig.native_parse.p50),
        ratio(fig.warm.p99, fig.native_parse.p99),
        ratio(fig.fresh.p50, fig.native_parse.p50),
        ratio(fig.fresh.p99, fig.native_parse.p99),
    );
    println!(
        "  ratio wasm/native (vs native on a decoded Value): warm decide {:.0}x p50; \
         instantiate+decide {:.0}x p50",
        ratio(fig.warm.p50, fig.native_value.p50),
        ratio(fig.fresh.p50, fig.native_value.p50),
    );
    println!(
        "  ratio wasm/native {pause} (vs native incl. JSON parse): warm decide {:.1}x p50, \
         {:.1}x p99",
        ratio(fig.warm_paused.p50, fig.native_parse_paused.p50),
        ratio(fig.warm_paused.p99, fig.native_parse_paused.p99),
    );
    Ok(fig)
}

/// The figures through the API the summary needs.
struct ThroughApi {
    hooks: usize,
    /// Added per hook with 1 hook and with `hooks` hooks.
    one: Added,
    most: Added,
}

/// Latency added per hook against 0 hooks (µs; pooled samples), and the spread of the
/// per-round p99 figures.
#[derive(Debug, Clone, Copy, Default)]
struct Added {
    p50: f64,
    p99: f64,
    spread99: f64,
}

const PLUGINS: &str = "/apis/tugboat.dev/v1alpha1/plugins";

fn hook_ns(hooks: usize) -> String {
    format!("bench-hooks-{hooks}")
}

/// A validating Plugin for pods CREATE in `namespaces`.
fn plugin_object(name: &str, digest: &str, namespaces: &[String]) -> Value {
    json!({
        "apiVersion": "tugboat.dev/v1alpha1",
        "kind": "Plugin",
        "metadata": {"name": name},
        "spec": {
            "kind": "admission",
            "source": {"blob": digest},
            "admission": {
                "mutating": false,
                "failurePolicy": "Fail",
                "rules": [{
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "namespaces": namespaces
                }]
            }
        }
    })
}

/// Creates `n` pods in `ns` (names from `next`), pushing each create's latency to `lat`.
async fn create_pods(
    c: &mut Client,
    ns: &str,
    next: &mut usize,
    n: usize,
    mut lat: Option<&mut Vec<Duration>>,
) -> Result<()> {
    let path = format!("/api/v1/namespaces/{ns}/pods");
    for _ in 0..n {
        *next += 1;
        let body = serde_json::to_vec(&typical_pod(&format!("web-{:06}", *next), ns, false))?;
        let t = Instant::now();
        let (code, b) = c.request("POST", &path, Some(body)).await?;
        let elapsed = t.elapsed();
        if code != 201 {
            bail!(
                "creating a pod in {ns} answered {code}: {}",
                String::from_utf8_lossy(&b)
            );
        }
        if let Some(l) = lat.as_deref_mut() {
            l.push(elapsed);
        }
    }
    Ok(())
}

/// Creates a privileged pod in `ns`: `Ok(true)` if it was stored, `Ok(false)` if a hook
/// denied it.
async fn privileged_admitted(c: &mut Client, ns: &str, next: &mut usize) -> Result<bool> {
    *next += 1;
    let body = serde_json::to_vec(&typical_pod(&format!("priv-{:06}", *next), ns, true))?;
    let (code, b) = c
        .request("POST", &format!("/api/v1/namespaces/{ns}/pods"), Some(body))
        .await?;
    let text = String::from_utf8_lossy(&b);
    match code {
        201 => Ok(true),
        403 if text.contains(DENIAL) => Ok(false),
        _ => bail!("creating a privileged pod in {ns} answered {code}: {text}"),
    }
}

async fn get_json(c: &mut Client, path: &str) -> Result<Value> {
    let (code, b) = c.request("GET", path, None).await?;
    if code != 200 {
        bail!(
            "GET {path} answered {code}: {}",
            String::from_utf8_lossy(&b)
        );
    }
    serde_json::from_slice(&b).with_context(|| format!("decoding GET {path}"))
}

async fn wait_ready(c: &mut Client, name: &str) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let p = get_json(c, &format!("{PLUGINS}/{name}")).await?;
        match p.pointer("/status/phase").and_then(Value::as_str) {
            Some("Ready") => return Ok(()),
            Some("Failed") => bail!(
                "plugin {name} failed to load: {}",
                p.pointer("/status/message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
            ),
            _ => {}
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("plugin {name} was not Ready within 60 s: {}", p["status"]);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server's data directory: `--data-dir`, or a temporary one on tmpfs (unless `--disk`
/// or there is no /dev/shm) or on disk. Returns the temporary directory to keep, its path and
/// a description.
fn server_data_dir(args: &AdmissionArgs) -> Result<(Option<tempfile::TempDir>, PathBuf, String)> {
    if let Some(d) = &args.data_dir {
        return Ok((None, d.clone(), format!("data directory {}", d.display())));
    }
    let shm = std::path::Path::new("/dev/shm");
    let (tmp, what) = if !args.disk && shm.is_dir() {
        let t = tempfile::Builder::new()
            .prefix("tug-bench-")
            .tempdir_in(shm)
            .context("creating a temporary directory in /dev/shm")?;
        (
            t,
            "a temporary data directory on tmpfs (/dev/shm), so fsync costs nothing",
        )
    } else {
        let t = tempfile::Builder::new()
            .prefix("tug-bench-")
            .tempdir()
            .context("creating a temporary directory")?;
        (
            t,
            "a temporary data directory on disk (every create waits for fsync)",
        )
    };
    let path = tmp.path().to_path_buf();
    Ok((Some(tmp), path, what.to_string()))
}

async fn through_api(bytes: &[u8], args: &AdmissionArgs) -> Result<ThroughApi> {
    let (tmp, dir, where_) = server_data_dir(args)?;
    let server = ServerProcess::start(Some(dir)).await?;
    let result = measure_api(&server, bytes, args, &where_).await;
    let stopped = server.stop().await;
    if let Some(t) = tmp {
        t.close()
            .context("removing the server's temporary data directory")?;
    }
    let figures = result?;
    stopped?;
    Ok(figures)
}

async fn measure_api(
    server: &ServerProcess,
    bytes: &[u8],
    args: &AdmissionArgs,
    data_dir: &str,
) -> Result<ThroughApi> {
    let mut c = server.client().await?;
    // The hook configurations: 0, 1 and `hooks` matching hooks, one namespace each.
    let mut configs = vec![0, 1, args.hooks];
    configs.dedup();
    let max_hooks = args.hooks;
    for &k in &configs {
        create_ns(&mut c, &hook_ns(k)).await?;
    }
    let base_ns = hook_ns(0);
    let full_ns = hook_ns(max_hooks);
    let mut next = 0usize;

    // Plugins the server has of its own (built-ins) judge every configuration alike.
    let list = get_json(&mut c, PLUGINS).await?;
    let others: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{} ({})",
                p.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                p.pointer("/spec/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            )
        })
        .collect();
    let others = if others.is_empty() {
        "none".to_string()
    } else {
        others.join(", ")
    };

    // Warm-up without bench plugins, then the reference.
    for &k in &configs {
        create_pods(&mut c, &hook_ns(k), &mut next, args.warmup, None).await?;
    }
    let half = args.creates.div_ceil(2);
    let mut no_plugin_before = Vec::with_capacity(half);
    create_pods(
        &mut c,
        &base_ns,
        &mut next,
        half,
        Some(&mut no_plugin_before),
    )
    .await?;

    // Upload the component and create the Plugins: hook i judges the namespaces of the
    // configurations with at least i hooks.
    let (code, b) = c
        .request("PUT", "/tugboat/v1/blobs", Some(bytes.to_vec()))
        .await?;
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    if code != 201 {
        bail!(
            "uploading the component answered {code}: {}",
            String::from_utf8_lossy(&b)
        );
    }
    let digest = v["digest"]
        .as_str()
        .context("the blob upload answered no digest")?
        .to_string();
    let names: Vec<String> = (1..=max_hooks)
        .map(|i| format!("bench-deny-privileged-{i}"))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let namespaces: Vec<String> = configs
            .iter()
            .filter(|&&k| k > i)
            .map(|&k| hook_ns(k))
            .collect();
        let body = serde_json::to_vec(&plugin_object(name, &digest, &namespaces))?;
        let (code, b) = c.request("POST", PLUGINS, Some(body)).await?;
        if code != 201 {
            bail!(
                "creating plugin {name} answered {code}: {}",
                String::from_utf8_lossy(&b)
            );
        }
    }
    for name in &names {
        wait_ready(&mut c, name).await?;
    }
    // The hooks judge what their rules say, and only that.
    for &k in &configs {
        let admitted = privileged_admitted(&mut c, &hook_ns(k), &mut next).await?;
        if admitted != (k == 0) {
            bail!(
                "a privileged pod in {} was {} with {k} matching hooks",
                hook_ns(k),
                if admitted { "admitted" } else { "denied" }
            );
        }
    }
    for &k in &configs {
        create_pods(&mut c, &hook_ns(k), &mut next, args.warmup, None).await?;
    }

    // The measurement: in every round, batches of the configurations alternate (the first
    // configuration of a cycle rotates), so the machine's noise falls on all of them alike.
    let per_round = args.creates.div_ceil(args.rounds);
    // samples[round][configuration]
    let mut samples: Vec<Vec<Vec<Duration>>> =
        vec![vec![Vec::with_capacity(per_round); configs.len()]; args.rounds];
    let t_measure = Instant::now();
    for round in samples.iter_mut() {
        let mut done = vec![0usize; configs.len()];
        let mut cycle = 0;
        while done.iter().any(|&d| d < per_round) {
            for j in 0..configs.len() {
                let ci = (j + cycle) % configs.len();
                let n = args.batch.min(per_round - done[ci]);
                if n == 0 {
                    continue;
                }
                create_pods(
                    &mut c,
                    &hook_ns(configs[ci]),
                    &mut next,
                    n,
                    Some(&mut round[ci]),
                )
                .await?;
                done[ci] += n;
            }
            cycle += 1;
        }
    }
    let measured_in = t_measure.elapsed();

    // Every hook was called as often as its rules say (statuses are written every 2 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (i, name) in names.iter().enumerate() {
        let matching = configs.iter().filter(|&&k| k > i).count();
        let expected = matching * (per_round * args.rounds + args.warmup);
        let p = get_json(&mut c, &format!("{PLUGINS}/{name}")).await?;
        let calls = p
            .pointer("/status/calls")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let errors = p
            .pointer("/status/errors")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if calls < expected as u64 || errors > 0 {
            bail!(
                "plugin {name} counted {calls} calls and {errors} errors; expected at least {expected} calls and no error"
            );
        }
    }

    // Delete the Plugins, wait until no hook judges any more, and take the reference again.
    for name in &names {
        let (code, b) = c
            .request("DELETE", &format!("{PLUGINS}/{name}"), None)
            .await?;
        if code != 200 && code != 202 {
            bail!(
                "deleting plugin {name} answered {code}: {}",
                String::from_utf8_lossy(&b)
            );
        }
    }
    let t0 = Instant::now();
    while !privileged_admitted(&mut c, &full_ns, &mut next).await? {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("the hooks still judged pods 30 s after their Plugins were deleted");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    create_pods(&mut c, &base_ns, &mut next, args.warmup, None).await?;
    let mut no_plugin_after = Vec::with_capacity(half);
    create_pods(
        &mut c,
        &base_ns,
        &mut next,
        half,
        Some(&mut no_plugin_after),
    )
    .await?;

    // Report.
    let pooled: Vec<Pcts> = (0..configs.len())
        .map(|ci| {
            let all: Vec<Duration> = samples.iter().flat_map(|r| r[ci].iter().copied()).collect();
            Pcts::of(&all)
        })
        .collect();
    // per_round_pcts[configuration][round]
    let per_round_pcts: Vec<Vec<Pcts>> = (0..configs.len())
        .map(|ci| samples.iter().map(|r| Pcts::of(&r[ci])).collect())
        .collect();
    let before = Pcts::of(&no_plugin_before);
    let after = Pcts::of(&no_plugin_after);
    let no_plugin = Pcts::of(&[no_plugin_before, no_plugin_after].concat());
    let total = per_round * args.rounds;
    println!();
    println!(
        "through the API (a `tug server` process with {data_dir}; 1 client over HTTPS/1.1, \
         sequential creates of the same Pod; validating Plugins for pods CREATE, failurePolicy \
         Fail):"
    );
    println!(
        "  method: {} hook configurations told apart by namespace (each Plugin's rules name \
         the namespaces it judges), measured together: {total} timed creates each, in {} \
         rounds within which the configurations take turns {} (rotating which goes first), so \
         the noise of this shared machine falls on all of them alike; {:.1} s in all, after {} \
         untimed creates each. p50/p99 are over all of a configuration's creates; the \
         per-round figures show the noise; \"added\" is against 0 hooks",
        configs.len(),
        args.rounds,
        if args.batch == 1 {
            "create by create".to_string()
        } else {
            format!("in batches of {} creates", args.batch)
        },
        measured_in.as_secs_f64(),
        args.warmup
    );
    println!("  other Plugins, present in every configuration: {others}");
    println!(
        "  no bench Plugin (before and after, {half} creates each): p50 {:7.1} µs  p99 {:7.1} µs  \
         (before: p50 {:.1} p99 {:.1}; after: p50 {:.1} p99 {:.1})",
        us(no_plugin.p50),
        us(no_plugin.p99),
        us(before.p50),
        us(before.p99),
        us(after.p50),
        us(after.p99)
    );
    let base = pooled[0];
    let mut per_hook = Vec::with_capacity(configs.len());
    for (ci, &k) in configs.iter().enumerate() {
        let p = pooled[ci];
        if k == 0 {
            println!(
                "  0 hooks ({max_hooks} bench Plugins loaded, none matching): p50 {:7.1} µs  p99 {:7.1} µs",
                us(p.p50),
                us(p.p99)
            );
            per_hook.push(Added::default());
            continue;
        }
        let kf = k as f64;
        let d50 = diff_us(p.p50, base.p50);
        let d99 = diff_us(p.p99, base.p99);
        let rounds50: Vec<f64> = (0..args.rounds)
            .map(|r| diff_us(per_round_pcts[ci][r].p50, per_round_pcts[0][r].p50) / kf)
            .collect();
        let rounds99: Vec<f64> = (0..args.rounds)
            .map(|r| diff_us(per_round_pcts[ci][r].p99, per_round_pcts[0][r].p99) / kf)
            .collect();
        let spread99 = rounds99.iter().copied().fold(f64::MIN, f64::max)
            - rounds99.iter().copied().fold(f64::MAX, f64::min);
        println!(
            "  {k} hook{}: {:<37} p50 {:7.1} µs  p99 {:7.1} µs  added: p50 {d50:+.1} µs, p99 \
             {d99:+.1} µs = per hook p50 {:+.1} µs, p99 {:+.1} µs",
            if k == 1 { "" } else { "s" },
            "",
            us(p.p50),
            us(p.p99),
            d50 / kf,
            d99 / kf,
        );
        println!(
            "    per round, added per hook: p50 [{}] (median {:+.1}); p99 [{}] (median {:+.1}) µs",
            fmt_list(&rounds50),
            median(rounds50.clone()),
            fmt_list(&rounds99),
            median(rounds99.clone()),
        );
        per_hook.push(Added {
            p50: d50 / kf,
            p99: d99 / kf,
            spread99,
        });
    }
    let last = configs.len() - 1;
    Ok(ThroughApi {
        hooks: max_hooks,
        one: per_hook[1],
        most: per_hook[last],
    })
}

fn summary(local: &InProcess, api: Option<&ThroughApi>) {
    let target = us(TARGET_P99_PER_HOOK);
    println!();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    if let Some(a) = api {
        // A hook's own time shifts every percentile; the p99 difference alone is within the
        // noise of a shared machine, so judge on the larger of the two (with the most hooks:
        // the most signal against the same noise).
        let estimate = a.most.p50.max(a.most.p99);
        let verdict = if estimate <= target { "MET" } else { "NOT MET" };
        println!(
            "summary: added per hook through the API: p99 {:+.1} µs with 1 hook, {:+.1} µs per hook \
             with {}; p50 {:+.1} / {:+.1} µs. Target <= {target:.0} µs p99 per hook: {verdict} \
             (judged on max(p50, p99) added per hook with {} hooks = {estimate:.1} µs, because a \
             hook's time shifts every percentile and the p99 difference alone is within this \
             machine's noise: per-round spread {:.0} µs)",
            a.one.p99, a.most.p99, a.hooks, a.one.p50, a.most.p50, a.hooks, a.most.spread99,
        );
    } else {
        let verdict = if local.warm.p99 <= TARGET_P99_PER_HOOK {
            "within"
        } else {
            "above"
        };
        println!(
            "summary (in process only): warm decide p99 {:.1} µs is {verdict} the {target:.0} µs \
             per-hook target; instantiate+decide p99 {:.1} µs",
            us(local.warm.p99),
            us(local.fresh.p99)
        );
    }
    println!(
        "summary: wasm/native ratio (p50, against the native check incl. JSON parse): warm \
         decide {:.1}x ({:.1} vs {:.1} µs), instantiate+decide {:.1}x ({:.1} µs), warm decide \
         after {} ms idle {:.1}x ({:.1} vs {:.1} µs); against the native check on an already \
         decoded Value: {:.0}x and {:.0}x",
        ratio(local.warm.p50, local.native_parse.p50),
        us(local.warm.p50),
        us(local.native_parse.p50),
        ratio(local.fresh.p50, local.native_parse.p50),
        us(local.fresh.p50),
        PAUSE.as_millis(),
        ratio(local.warm_paused.p50, local.native_parse_paused.p50),
        us(local.warm_paused.p50),
        us(local.native_parse_paused.p50),
        ratio(local.warm.p50, local.native_value.p50),
        ratio(local.fresh.p50, local.native_value.p50),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_check_matches_the_policy() {
        let ok = create_request(typical_pod("p", "default", false));
        assert_eq!(
            native_deny_privileged(&ok, ok.object.as_ref().unwrap()),
            None
        );
        let bad = create_request(typical_pod("p", "default", true));
        assert_eq!(
            native_deny_privileged(&bad, bad.object.as_ref().unwrap()).as_deref(),
            Some(DENIAL)
        );
    }

    #[test]
    fn the_default_wasm_dir_is_where_build_plugins_puts_it() {
        if std::env::var_os("TUG_PLUGIN_WASM_DIR").is_some()
            || std::env::var_os("TUG_PLUGINS_TARGET_DIR").is_some()
        {
            return;
        }
        let dir = default_wasm_dir();
        assert!(dir.ends_with("wasm32-wasip2/release"), "{}", dir.display());
        let target = dir
            .parent()
            .and_then(std::path::Path::parent)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        assert!(target.ends_with("-plugins"), "{target}");
    }

    #[test]
    fn median_of_even_and_odd_lists() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
