//! The plugin sandbox on real components (built from `plugins/` by
//! `scripts/build-plugins.sh`, once per test binary; set `TUG_PLUGIN_WASM_DIR` to use
//! prebuilt ones): the example policies allow, deny and patch; every fault (infinite loop,
//! trap, panic, memory blow-up, capability violation, garbage output) fails only its call,
//! within its deadline, with the plugin's message; repeated failures degrade a plugin and a
//! successful probe recovers it; compiled components are cached; hot swap loses no call and
//! rejects a broken version while the old one keeps serving.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::wasm::{wasm, wasm_dir};
use serde_json::{Value, json};
use tugboat::plugin::{
    AdmissionPlugin, AdmissionRequest, Capability, CompileSource, Gvk, Gvr, HealthState, HostApi,
    HostError, LogSource, NoHostApi, Operation, PluginError, PluginManifest, PluginRuntime,
    PluginSlot, ResourceRef, RuntimeConfig, UserInfo,
};

/// One engine for the whole test binary (as in the server).
fn runtime() -> Arc<PluginRuntime> {
    static RT: OnceLock<Arc<PluginRuntime>> = OnceLock::new();
    RT.get_or_init(|| PluginRuntime::new(RuntimeConfig::default()).expect("plugin runtime"))
        .clone()
}

fn manifest(config: Value) -> PluginManifest {
    PluginManifest {
        config,
        ..PluginManifest::default()
    }
}

fn plugin(file: &str, manifest: PluginManifest, api: Arc<dyn HostApi>) -> AdmissionPlugin {
    let loaded = runtime()
        .load(file, &wasm(file), manifest)
        .expect("loading the plugin");
    AdmissionPlugin::new(loaded, api)
}

async fn faulty(mode: &str, tweak: impl FnOnce(&mut PluginManifest)) -> AdmissionPlugin {
    let mut m = manifest(json!({ "mode": mode }));
    tweak(&mut m);
    let p = plugin("faulty", m, Arc::new(NoHostApi));
    p.probe().await.expect("probe");
    p
}

fn pod(name: &str, privileged: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "app", "image": "registry.example/app:1.2.3",
                 "ports": [{"containerPort": 8080}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
                {"name": "sidecar", "image": "registry.example/proxy:2.0",
                 "securityContext": {"privileged": privileged}}
            ],
            "restartPolicy": "Always"
        }
    })
}

fn create(object: Value) -> AdmissionRequest {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    AdmissionRequest {
        uid: uuid::Uuid::new_v4().to_string(),
        operation: Operation::Create,
        resource: Gvr {
            group: String::new(),
            version: "v1".into(),
            resource: format!("{}s", kind.to_lowercase()),
        },
        kind: Gvk {
            group: String::new(),
            version: "v1".into(),
            kind,
        },
        sub_resource: None,
        namespace: Some("default".into()),
        name,
        object: Some(object),
        old_object: None,
        user: UserInfo {
            username: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
        },
        dry_run: false,
    }
}

/// A host API over a few fixed objects that records what reached it.
#[derive(Default)]
struct TestApi {
    objects: Mutex<Vec<Value>>,
    calls: Mutex<Vec<String>>,
}

impl TestApi {
    fn with(objects: Vec<Value>) -> Arc<Self> {
        Arc::new(TestApi {
            objects: Mutex::new(objects),
            calls: Mutex::default(),
        })
    }

    fn set(&self, objects: Vec<Value>) {
        *self.objects.lock().unwrap() = objects;
    }
}

#[async_trait]
impl HostApi for TestApi {
    async fn get(
        &self,
        plugin: &str,
        r: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, HostError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{plugin} get {} {namespace:?} {name}", r.resource));
        Ok(self
            .objects
            .lock()
            .unwrap()
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .cloned())
    }

    async fn list(
        &self,
        _: &str,
        _: &ResourceRef,
        _: Option<&str>,
        _: Option<&str>,
    ) -> Result<Vec<Value>, HostError> {
        Ok(self.objects.lock().unwrap().clone())
    }

    async fn create(
        &self,
        _: &str,
        _: &ResourceRef,
        _: Option<&str>,
        o: Value,
    ) -> Result<Value, HostError> {
        Ok(o)
    }

    async fn update(
        &self,
        _: &str,
        _: &ResourceRef,
        _: Option<&str>,
        o: Value,
    ) -> Result<Value, HostError> {
        Ok(o)
    }

    async fn delete(
        &self,
        _: &str,
        _: &ResourceRef,
        _: Option<&str>,
        _: &str,
    ) -> Result<(), HostError> {
        Ok(())
    }
}

fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_privileged_example_denies_and_allows() {
    let p = plugin(
        "deny_privileged",
        PluginManifest::default(),
        Arc::new(NoHostApi),
    );
    let denied = p.admit(&create(pod("bad", true))).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.status_code(), 403);
    assert_eq!(
        denied.message.as_deref(),
        Some("privileged containers are not allowed: container sidecar")
    );
    let allowed = p.admit(&create(pod("good", false))).await.unwrap();
    assert!(allowed.allowed && allowed.patch.is_none());
    let cm = p.admit(&create(configmap("c", json!({})))).await.unwrap();
    assert!(cm.allowed);
    let s = p.stats();
    assert_eq!((s.calls, s.errors, s.state), (3, 0, HealthState::Healthy));
    assert_eq!(s.instances_created, 1, "the warm instance is reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_label_example_patches_the_object() {
    let p = plugin(
        "add_label",
        manifest(json!({"key": "team", "value": "infra"})),
        Arc::new(NoHostApi),
    );
    let mut object = pod("p", false);
    let r = p.admit(&create(object.clone())).await.unwrap();
    assert!(r.allowed);
    let patch = r.patch.expect("a patch");
    json_patch::patch(&mut object, &patch).unwrap();
    assert_eq!(
        object["metadata"]["labels"],
        json!({"app": "web", "team": "infra"})
    );
    // Already labelled: nothing to do.
    let again = p.admit(&create(object)).await.unwrap();
    assert!(again.allowed && again.patch.is_none());
    // A configuration it rejects fails the probe.
    let bad = plugin("add_label", manifest(json!({})), Arc::new(NoHostApi));
    let err = bad.probe().await.unwrap_err();
    assert!(matches!(err, PluginError::Init { .. }), "{err}");
    assert!(err.to_string().contains("`key` and `value`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_fails_within_its_deadline_and_the_host_keeps_serving() {
    let p = faulty("loop", |m| m.limits.timeout_ms = 50).await;
    let started = Instant::now();
    let err = p.admit(&create(pod("p", false))).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, PluginError::Timeout { .. }), "{err}");
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(250), "took {elapsed:?}");
    assert!(err.to_string().contains("deadline of 50ms"), "{err}");
    // The same runtime keeps serving other plugins.
    let ok = plugin(
        "deny_privileged",
        PluginManifest::default(),
        Arc::new(NoHostApi),
    );
    assert!(ok.admit(&create(pod("p", false))).await.unwrap().allowed);
}

#[test]
fn a_looping_plugin_does_not_starve_the_executor() {
    // On a single-threaded runtime a spinning plugin must still let other tasks run: the
    // guest yields at every epoch tick.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let p = faulty("loop", |m| m.limits.timeout_ms = 200).await;
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        let err = p.admit(&create(pod("p", false))).await.unwrap_err();
        ticker.abort();
        assert!(matches!(err, PluginError::Timeout { .. }), "{err}");
        assert!(
            ticks.load(Ordering::Relaxed) >= 10,
            "other tasks ran {} times",
            ticks.load(Ordering::Relaxed)
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_fails_the_call() {
    let p = faulty("trap", |_| {}).await;
    let err = p.admit(&create(pod("p", false))).await.unwrap_err();
    assert!(matches!(err, PluginError::Trap { .. }), "{err}");
    assert!(err.to_string().contains("unreachable"), "{err}");
    // The broken instance was discarded; the next call gets a fresh one (and traps again).
    let err = p.admit(&create(pod("p", false))).await.unwrap_err();
    assert!(matches!(err, PluginError::Trap { .. }), "{err}");
    assert_eq!(p.stats().instances_created, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_fails_the_call_with_the_panic_message() {
    let p = faulty("panic", |_| {}).await;
    let err = p.admit(&create(pod("p", false))).await.unwrap_err();
    match &err {
        PluginError::Panic { message, .. } => {
            assert_eq!(message, "faulty plugin panicked on purpose")
        }
        other => panic!("expected a panic, got {other}"),
    }
    assert!(
        p.logs()
            .iter()
            .any(|l| l.source == LogSource::Stderr && l.message.contains("panicked at")),
        "stderr is in the plugin's log: {:?}",
        p.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_growth_past_the_cap_fails_the_call() {
    let p = faulty("memory", |m| m.limits.memory_bytes = 16 << 20).await;
    let started = Instant::now();
    let err = p.admit(&create(pod("p", false))).await.unwrap_err();
    assert!(
        matches!(err, PluginError::MemoryLimit { limit, .. } if limit == 16 << 20),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(
        err.to_string().contains("memory allocation"),
        "the plugin's own message is kept: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_violations_fail_inside_the_plugin_and_never_reach_the_api() {
    let api = TestApi::with(vec![configmap(
        "plugin-config",
        json!({"message": "read through the host"}),
    )]);
    let caps = vec![Capability {
        api_groups: vec!["".into()],
        resources: vec!["configmaps".into()],
        verbs: vec!["get".into()],
    }];
    let mut m = manifest(json!({"mode": "forbidden"}));
    m.capabilities = caps.clone();
    let p = plugin("faulty", m, api.clone());
    let r = p.admit(&create(pod("p", false))).await.unwrap();
    assert!(!r.allowed);
    let message = r.message.unwrap();
    assert!(
        message.starts_with("host error 403 Forbidden:"),
        "the plugin saw: {message}"
    );
    assert!(message.contains("may not get \"secrets\""), "{message}");
    assert!(
        api.calls.lock().unwrap().is_empty(),
        "the call never reached the API"
    );
    assert_eq!(p.stats().capability_violations, 1);
    assert_eq!(
        p.stats().errors,
        0,
        "a refused host call is not a plugin failure"
    );
    let logs = p.logs();
    assert!(
        logs.iter()
            .any(|l| l.source == LogSource::Runtime && l.message.contains("capability violation"))
    );
    assert!(
        logs.iter()
            .any(|l| l.source == LogSource::Warn && l.message.contains("host refused"))
    );

    // Within its capabilities, the call goes through to the API.
    let mut m = manifest(json!({"mode": "host-get"}));
    m.capabilities = caps;
    let p = plugin("faulty", m, api.clone());
    let r = p.admit(&create(pod("p", false))).await.unwrap();
    assert_eq!(r.message.as_deref(), Some("read through the host"));
    assert_eq!(
        api.calls.lock().unwrap().as_slice(),
        ["faulty get configmaps Some(\"default\") plugin-config"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_output_is_an_invalid_response() {
    for (mode, needle) in [
        ("garbage", "not an RFC 6902 JSON Patch"),
        ("not-a-patch", "not an RFC 6902 JSON Patch"),
        ("bad-code", "status code 99"),
    ] {
        let p = faulty(mode, |_| {}).await;
        let err = p.admit(&create(pod("p", false))).await.unwrap_err();
        assert!(
            matches!(err, PluginError::InvalidResponse { .. }),
            "{mode}: {err}"
        );
        assert!(err.to_string().contains(needle), "{mode}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_stderr_and_host_log_go_to_the_plugin_log() {
    let p = faulty("log", |_| {}).await;
    assert!(
        p.admit(&create(pod("logged", false)))
            .await
            .unwrap()
            .allowed
    );
    let logs = p.logs();
    let has = |source: LogSource, text: &str| {
        logs.iter().any(|l| l.source == source && l.message == text)
    };
    assert!(has(LogSource::Stdout, "hello from stdout"), "{logs:?}");
    assert!(has(LogSource::Stderr, "hello from stderr"), "{logs:?}");
    assert!(has(LogSource::Info, "judging logged"), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_do_not_fit_are_rejected_at_load() {
    let err = runtime()
        .load(
            "wrong-world",
            &wasm("wrong_world"),
            PluginManifest::default(),
        )
        .unwrap_err();
    assert!(matches!(err, PluginError::Incompatible { .. }), "{err}");
    assert!(err.to_string().contains("admission-plugin"), "{err}");
    let err = runtime()
        .load(
            "garbage",
            b"\0asm but not really",
            PluginManifest::default(),
        )
        .unwrap_err();
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");
    let mut m = PluginManifest::default();
    m.limits.memory_bytes = 1;
    let err = runtime()
        .load("tiny", &wasm("deny_privileged"), m)
        .unwrap_err();
    assert!(matches!(err, PluginError::Manifest { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_degrade_and_a_successful_probe_recovers() {
    let api = TestApi::with(vec![configmap("faulty-mode", json!({"mode": "trap"}))]);
    let mut m = manifest(json!({"mode": "dynamic"}));
    m.capabilities = vec![Capability {
        api_groups: vec!["".into()],
        resources: vec!["configmaps".into()],
        verbs: vec!["get".into()],
    }];
    m.limits.degrade_after_failures = 3;
    m.limits.backoff_initial_ms = 100;
    m.limits.backoff_max_ms = 400;
    let p = plugin("faulty", m, api.clone());
    for _ in 0..3 {
        assert!(matches!(
            p.admit(&create(pod("p", false))).await,
            Err(PluginError::Trap { .. })
        ));
    }
    assert_eq!(p.stats().state, HealthState::Degraded);
    let started = Instant::now();
    let err = p.admit(&create(pod("p", false))).await.unwrap_err();
    assert!(
        matches!(err, PluginError::Degraded { failures: 3, .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_millis(20), "fails fast");
    assert!(
        err.to_string().contains("unreachable"),
        "names the last error: {err}"
    );

    // The cause goes away; after the back-off one probe call succeeds and the plugin is
    // healthy again.
    api.set(vec![configmap("faulty-mode", json!({"mode": "allow"}))]);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(p.admit(&create(pod("p", false))).await.unwrap().allowed);
    let s = p.stats();
    assert_eq!(s.state, HealthState::Healthy);
    assert_eq!(
        (s.errors, s.fast_failures, s.consecutive_failures),
        (3, 1, 0)
    );
    assert!(s.last_error.unwrap().contains("unreachable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 50,
        ..RuntimeConfig::default()
    };
    let bytes = wasm("deny_privileged");
    let first = PluginRuntime::new(config.clone()).unwrap();
    let cold = first
        .load("deny", &bytes, PluginManifest::default())
        .unwrap();
    assert_eq!(cold.source, CompileSource::Compiled);
    drop(first);
    // A restart: a new engine with the same configuration finds the artifact.
    let second = PluginRuntime::new(config).unwrap();
    let warm = second
        .load("deny", &bytes, PluginManifest::default())
        .unwrap();
    assert_eq!(warm.source, CompileSource::Cache);
    assert_eq!(warm.digest, cold.digest);
    eprintln!(
        "compile: {:?}, from cache: {:?}",
        cold.load_time, warm.load_time
    );
    assert!(
        warm.load_time < cold.load_time,
        "cache {:?} vs compile {:?}",
        warm.load_time,
        cold.load_time
    );
    assert!(
        warm.load_time < Duration::from_millis(10),
        "deserialize took {:?}",
        warm.load_time
    );
    let p = AdmissionPlugin::new(warm, Arc::new(NoHostApi));
    assert!(!p.admit(&create(pod("p", true))).await.unwrap().allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_concurrent_calls_loses_no_call_and_rejects_broken_versions() {
    // Generous deadlines: this test is about the swap, and a loaded 2-core CI machine can
    // starve a debug build's first call on a new version past the default 100 ms.
    let version = |v: &str| {
        let mut m = manifest(json!({"key": "version", "value": v}));
        m.limits.timeout_ms = 5_000;
        m.limits.init_timeout_ms = 10_000;
        plugin("add_label", m, Arc::new(NoHostApi))
    };
    let slot = Arc::new(PluginSlot::new("add-label"));
    slot.swap(version("v1")).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, usize>::new(),
    ));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (slot, stop, failures, seen) =
            (slot.clone(), stop.clone(), failures.clone(), seen.clone());
        clients.push(tokio::spawn(async move {
            let mut calls = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let mut object = pod("p", false);
                match slot.admit(&create(object.clone())).await {
                    Ok(r) if r.allowed && r.patch.is_some() => {
                        json_patch::patch(&mut object, &r.patch.unwrap()).unwrap();
                        let v = object["metadata"]["labels"]["version"]
                            .as_str()
                            .unwrap()
                            .to_string();
                        *seen.lock().unwrap().entry(v).or_default() += 1;
                    }
                    other => {
                        eprintln!("unexpected: {other:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                calls += 1;
                tokio::task::yield_now().await;
            }
            calls
        }));
    }

    let broken = || {
        plugin(
            "faulty",
            manifest(json!({"mode": "init-fail"})),
            Arc::new(NoHostApi),
        )
    };
    for v in ["v2", "v3", "v4"] {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let before = slot.current().unwrap().digest().to_string();
        // A broken version is rejected; the current one keeps serving.
        let err = slot.swap(broken()).await.unwrap_err();
        assert!(matches!(err, PluginError::Init { .. }), "{err}");
        assert_eq!(slot.current().unwrap().digest(), before);
        let old = slot.swap(version(v)).await.unwrap();
        assert!(old.is_some());
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        total += c.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    eprintln!("{total} calls across the swaps: {seen:?}");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no call failed across the swaps"
    );
    assert!(total > 100, "only {total} calls");
    assert!(
        seen.contains_key("v1") && seen.contains_key("v4"),
        "{seen:?}"
    );

    // After the swaps, new calls see the last version.
    let mut object = pod("p", false);
    let r = slot.admit(&create(object.clone())).await.unwrap();
    json_patch::patch(&mut object, &r.patch.unwrap()).unwrap();
    assert_eq!(object["metadata"]["labels"]["version"], "v4");
    assert!(slot.unload().is_some());
    assert!(matches!(
        slot.admit(&create(pod("p", false))).await,
        Err(PluginError::NotLoaded { .. })
    ));
}

/// The host's tracing log names capability violations. Runs in a child process of its own:
/// tracing's callsite cache is process-global, and a subscriber installed by one test races
/// with the other tests' threads.
#[test]
fn capability_violations_are_logged_with_tracing() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tracing_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TUG_TRACING_CHILD", "1")
        .env("TUG_PLUGIN_WASM_DIR", wasm_dir())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("capability violation: host call refused"),
        "{log}"
    );
    assert!(
        log.contains("plugin=faulty")
            && log.contains("verb=\"get\"")
            && log.contains("resource=secrets"),
        "{log}"
    );
}

/// The child of `capability_violations_are_logged_with_tracing` (does nothing otherwise).
#[test]
fn tracing_child() {
    if std::env::var_os("TUG_TRACING_CHILD").is_none() {
        return;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(async {
        let p = plugin(
            "faulty",
            manifest(json!({"mode": "forbidden"})),
            TestApi::with(vec![]),
        );
        p.admit(&create(pod("p", false))).await.unwrap()
    });
    assert!(!r.allowed);
}

/// Semver: a plugin imports only the host functions it uses, and links against a newer
/// 0.1.x host that has more (wasmtime matches `@0.1.0` imports to `@0.1.1` definitions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_import_only_what_they_use_and_link_against_a_newer_0_1_x_host() {
    use wasmtime::component::types::ComponentItem;
    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

    struct State {
        wasi: WasiCtx,
        table: ResourceTable,
    }
    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    let engine = wasmtime::Engine::default();
    let deny = Component::new(&engine, wasm("deny_privileged")).unwrap();
    let deny_type = deny.component_type();
    let imports: Vec<&str> = deny_type.imports(&engine).map(|(n, _)| n).collect();
    assert!(
        !imports.iter().any(|n| n.starts_with("tugboat:plugin/host")),
        "deny-privileged calls no host function: {imports:?}"
    );

    let faulty = Component::new(&engine, wasm("faulty")).unwrap();
    let faulty_type = faulty.component_type();
    let host = faulty_type
        .get_import(&engine, "tugboat:plugin/host@0.1.0")
        .expect("faulty imports the host interface");
    let ComponentItem::ComponentInstance(host) = host.ty else {
        panic!("the host import is not an instance");
    };
    let mut funcs: Vec<&str> = host
        .exports(&engine)
        .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
        .map(|(n, _)| n)
        .collect();
    funcs.sort();
    assert_eq!(
        funcs,
        ["create", "delete", "get", "log", "update"],
        "only the functions it calls"
    );

    // A future host: interface version 0.1.1 with one more function.
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    linker.instance("tugboat:plugin/types@0.1.1").unwrap();
    let mut host = linker.instance("tugboat:plugin/host@0.1.1").unwrap();
    for f in ["log", "get", "list", "create", "update", "delete", "watch"] {
        host.func_new(f, |_, _, _, _| Ok(())).unwrap();
    }
    let pre = linker
        .instantiate_pre(&faulty)
        .expect("a 0.1.0 plugin links against a 0.1.1 host");
    let mut store = wasmtime::Store::new(
        &engine,
        State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    pre.instantiate_async(&mut store)
        .await
        .expect("and instantiates");
}

/// A host API call that hangs is cut off at the plugin call's deadline (504 to the plugin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_host_call_is_cut_off_at_the_deadline() {
    struct HangingApi;
    #[async_trait]
    impl HostApi for HangingApi {
        async fn get(
            &self,
            _: &str,
            _: &ResourceRef,
            _: Option<&str>,
            _: &str,
        ) -> Result<Option<Value>, HostError> {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(None)
        }
        async fn list(
            &self,
            _: &str,
            _: &ResourceRef,
            _: Option<&str>,
            _: Option<&str>,
        ) -> Result<Vec<Value>, HostError> {
            Ok(vec![])
        }
        async fn create(
            &self,
            _: &str,
            _: &ResourceRef,
            _: Option<&str>,
            o: Value,
        ) -> Result<Value, HostError> {
            Ok(o)
        }
        async fn update(
            &self,
            _: &str,
            _: &ResourceRef,
            _: Option<&str>,
            o: Value,
        ) -> Result<Value, HostError> {
            Ok(o)
        }
        async fn delete(
            &self,
            _: &str,
            _: &ResourceRef,
            _: Option<&str>,
            _: &str,
        ) -> Result<(), HostError> {
            Ok(())
        }
    }
    let mut m = manifest(json!({"mode": "host-get"}));
    m.capabilities = vec![Capability {
        api_groups: vec!["".into()],
        resources: vec!["configmaps".into()],
        verbs: vec!["get".into()],
    }];
    m.limits.timeout_ms = 50;
    let p = plugin("faulty", m, Arc::new(HangingApi));
    let started = Instant::now();
    let r = p.admit(&create(pod("p", false))).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(250), "took {elapsed:?}");
    // The plugin saw the 504 and answered before the epoch check stopped it — or the
    // deadline stopped it first; either way the call ended at its deadline.
    match r {
        Ok(r) => assert!(
            r.message.unwrap().starts_with("host error 504"),
            "answered after a 504"
        ),
        Err(e) => assert!(matches!(e, PluginError::Timeout { .. }), "{e}"),
    }
}
