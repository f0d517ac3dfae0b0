//! "Any Wasm language": the deny-privileged admission policy written in Rust
//! (`examples/plugins/rust/deny-privileged`), JavaScript (`examples/plugins/js/…`,
//! componentize-js) and Python (`examples/plugins/python/…`, componentize-py) is loaded
//! through the same `PluginRuntime` + `AdmissionPlugin` path as any plugin, and the three
//! give the same decision on every request of a common set.
//!
//! The components are built once per test binary: the Rust one by
//! `scripts/build-plugins.sh` (or taken from `TUG_PLUGIN_WASM_DIR`), the JS and Python ones
//! by `scripts/build-polyglot-plugins.sh` (or taken from `TUG_POLYGLOT_WASM_DIR`).
//!
//! Malformed object JSON cannot come through `AdmissionPlugin` (the host hands plugins
//! `serde_json::Value`s it serialises itself), so that case calls the components' `admit`
//! directly with a raw string. Every policy answers it the way the Rust SDK does: denied,
//! 400 `BadRequest`, "the host sent an unreadable object: <the parser's error>" (the
//! parser's words differ per language; the test compares the rest).
//!
//! Timings (compile, load from the cache, first instance + `init`, per call) are printed
//! with `--nocapture`; `bench_polyglot` (ignored) measures them in a release build:
//! `cargo test --release -p tugboat --test plugin_polyglot -- --ignored --nocapture`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::wasm::{polyglot_dir, wasm_path};
use serde_json::{Value, json};
use tugboat::plugin::{
    AdmissionPlugin, AdmissionRequest, CompileSource, Gvk, Gvr, HealthState, LoadedPlugin,
    NoHostApi, Operation, PluginManifest, PluginRuntime, RuntimeConfig, UserInfo,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Rust,
    Js,
    Python,
}

const LANGS: [Lang; 3] = [Lang::Rust, Lang::Js, Lang::Python];

impl Lang {
    fn path(self) -> PathBuf {
        match self {
            Lang::Rust => wasm_path("deny_privileged"),
            Lang::Js => polyglot_dir().join("js-deny-privileged.wasm"),
            Lang::Python => polyglot_dir().join("python-deny-privileged.wasm"),
        }
    }

    fn bytes(self) -> Arc<[u8]> {
        static CACHE: OnceLock<[Arc<[u8]>; 3]> = OnceLock::new();
        let all = CACHE.get_or_init(|| {
            LANGS.map(|l| {
                let path = l.path();
                std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
                    .into()
            })
        });
        all[self as usize].clone()
    }

    /// The manifest each policy runs under. Memory: the default cap (64 MiB) fits all
    /// three: the interpreters' linear memory peaks at about 9 MiB (SpiderMonkey) and
    /// 12.5 MiB (CPython) on these requests, below half the cap (past which an instance is
    /// not reused; `malformed_json_is_a_bad_request_in_every_language` checks it).
    /// Deadlines: an interpreter instance starts in 1-5 ms from the snapshot its build took
    /// and answers in 20-60 µs (release) — the defaults (1 s, 100 ms) fit; the margins here
    /// only keep a debug build on a busy 2-core machine from flaking.
    fn manifest(self) -> PluginManifest {
        let mut m = PluginManifest::default();
        if self != Lang::Rust {
            m.limits.init_timeout_ms = 10_000;
            m.limits.timeout_ms = 2_000;
        }
        m
    }
}

/// One runtime for the whole test binary (as in the server), with a compiled-component
/// cache that outlives the run (in cargo's scratch directory for tests): compiling the JS
/// and Python components takes seconds (about 15 s each in a debug build), loading them
/// from the cache milliseconds. Artifacts of components other than the current ones are
/// pruned, so the directory holds at most one generation.
fn shared() -> &'static (Arc<PluginRuntime>, RuntimeConfig) {
    static RT: OnceLock<(Arc<PluginRuntime>, RuntimeConfig)> = OnceLock::new();
    RT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-polyglot-cache");
        let current: Vec<String> = LANGS
            .iter()
            .map(|l| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&*l.bytes())))
            .collect();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !current.iter().any(|d| name.starts_with(d.as_str())) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let config = RuntimeConfig {
            cache_dir: Some(dir),
            max_instances: 64,
            ..RuntimeConfig::default()
        };
        let rt = PluginRuntime::new(config.clone()).expect("plugin runtime");
        (rt, config)
    })
}

fn runtime() -> Arc<PluginRuntime> {
    shared().0.clone()
}

/// Serialises the first compile of each language (two tests compiling the same component
/// at once would both pay for it; after the first, the cache answers).
fn compile_lock(lang: Lang) -> std::sync::MutexGuard<'static, ()> {
    static LOCKS: [std::sync::Mutex<()>; 3] = [const { std::sync::Mutex::new(()) }; 3];
    LOCKS[lang as usize]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Loads a policy through `PluginRuntime::load`, exactly as the server does.
fn load(lang: Lang) -> LoadedPlugin {
    let _guard = compile_lock(lang);
    let loaded = runtime()
        .load(&format!("{lang:?}"), &lang.bytes(), lang.manifest())
        .unwrap_or_else(|e| panic!("loading the {lang:?} policy: {e}"));
    eprintln!(
        "{lang:?}: {:?} in {:?} ({} bytes)",
        loaded.source,
        loaded.load_time,
        lang.bytes().len()
    );
    loaded
}

/// The compiled component alone (for inspecting it or calling it directly).
fn component(lang: Lang) -> wasmtime::component::Component {
    let _guard = compile_lock(lang);
    runtime()
        .compile(&format!("{lang:?}"), &lang.bytes())
        .unwrap_or_else(|e| panic!("compiling the {lang:?} policy: {e}"))
        .0
}

fn plugin(lang: Lang) -> AdmissionPlugin {
    AdmissionPlugin::new(load(lang), Arc::new(NoHostApi))
}

fn request(
    operation: Operation,
    group: &str,
    kind: &str,
    object: Option<Value>,
) -> AdmissionRequest {
    AdmissionRequest {
        uid: uuid::Uuid::new_v4().to_string(),
        operation,
        kind: Gvk {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
        },
        resource: Gvr {
            group: group.into(),
            version: "v1".into(),
            resource: format!("{}s", kind.to_lowercase()),
        },
        sub_resource: None,
        namespace: Some("default".into()),
        name: "x".into(),
        object,
        old_object: None,
        user: UserInfo {
            username: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
        },
        dry_run: false,
    }
}

fn create_pod(spec: Value) -> AdmissionRequest {
    request(
        Operation::Create,
        "",
        "Pod",
        Some(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
            "spec": spec,
        })),
    )
}

fn container(name: &str, security: Option<Value>) -> Value {
    let mut c = json!({"name": name, "image": "registry.example/app:1.2.3",
        "ports": [{"containerPort": 8080}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}});
    if let Some(s) = security {
        c["securityContext"] = s;
    }
    c
}

const DENIED: &str = "privileged containers are not allowed: container ";

/// The common set: (what, request, the expected decision — `None` allowed, `Some(name)`
/// denied for container `name`).
fn cases() -> Vec<(&'static str, AdmissionRequest, Option<&'static str>)> {
    let privileged = || Some(json!({"privileged": true}));
    let mut delete = create_pod(json!({"containers": [container("app", privileged())]}));
    delete.operation = Operation::Delete;
    delete.old_object = delete.object.take();
    let mut update = create_pod(json!({"containers": [container("app", privileged())]}));
    update.operation = Operation::Update;
    update.old_object = Some(json!({"kind": "Pod", "spec": {"containers": []}}));
    vec![
        (
            "privileged pod",
            create_pod(json!({"containers": [
                container("app", None),
                container("sidecar", privileged()),
            ]})),
            Some("sidecar"),
        ),
        (
            "ordinary pod",
            create_pod(json!({"containers": [container("app", None)], "restartPolicy": "Always"})),
            None,
        ),
        (
            "privileged: false",
            create_pod(json!({"containers": [
                container("app", Some(json!({"privileged": false, "runAsNonRoot": true}))),
            ]})),
            None,
        ),
        (
            "ConfigMap (not a pod)",
            request(
                Operation::Create,
                "",
                "ConfigMap",
                Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c"}, "data": {"privileged": "true"}})),
            ),
            None,
        ),
        (
            "privileged init container (judged before the containers)",
            create_pod(json!({
                "initContainers": [container("init", privileged())],
                "containers": [container("app", privileged())],
            })),
            Some("init"),
        ),
        (
            "privileged ephemeral container",
            create_pod(json!({
                "containers": [container("app", None)],
                "ephemeralContainers": [container("debugger", privileged())],
            })),
            Some("debugger"),
        ),
        ("update to a privileged pod", update, Some("app")),
        ("delete of a privileged pod (no object)", delete, None),
        (
            "a Pod kind of another API group",
            request(
                Operation::Create,
                "example.com",
                "Pod",
                Some(
                    json!({"kind": "Pod", "spec": {"containers": [container("app", privileged())]}}),
                ),
            ),
            None,
        ),
        (
            "privileged as the string \"true\" (only the boolean counts)",
            create_pod(
                json!({"containers": [container("app", Some(json!({"privileged": "true"})))]}),
            ),
            None,
        ),
        (
            "privileged: 1 (only the boolean counts)",
            create_pod(json!({"containers": [container("app", Some(json!({"privileged": 1})))]})),
            None,
        ),
        (
            "privileged container without a name",
            create_pod(
                json!({"containers": [{"image": "x", "securityContext": {"privileged": true}}]}),
            ),
            Some("<unnamed>"),
        ),
        (
            "privileged container with a non-ASCII name",
            create_pod(json!({"containers": [container("конт-é-🚢", privileged())]})),
            Some("конт-é-🚢"),
        ),
        (
            "pod without a spec",
            request(Operation::Create, "", "Pod", Some(json!({"kind": "Pod"}))),
            None,
        ),
        (
            "ill-typed pod: containers is a string, securityContext a list",
            create_pod(json!({
                "initContainers": "oops",
                "containers": [7, null, {"name": "a", "securityContext": [true]}],
            })),
            None,
        ),
        (
            "object is a JSON array, not an object",
            request(Operation::Create, "", "Pod", Some(json!([1, 2, 3]))),
            None,
        ),
        (
            "object is JSON null",
            request(Operation::Create, "", "Pod", Some(Value::Null)),
            None,
        ),
        (
            "a large pod (200 containers, the last one privileged)",
            create_pod(json!({"containers": (0..200)
                .map(|i| container(&format!("c{i}"), (i == 199).then(|| json!({"privileged": true}))))
                .collect::<Vec<_>>()})),
            Some("c199"),
        ),
    ]
}

type Decision = (bool, u16, Option<String>, Option<String>, bool, Vec<String>);

fn decision(r: &tugboat::plugin::AdmissionResponse) -> Decision {
    (
        r.allowed,
        r.status_code(),
        r.reason.clone(),
        r.message.clone(),
        r.patch.is_some(),
        r.warnings.clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_js_and_python_policies_decide_alike() {
    let plugins: Vec<(Lang, AdmissionPlugin)> = LANGS.iter().map(|&l| (l, plugin(l))).collect();
    for (lang, p) in &plugins {
        let started = Instant::now();
        p.probe().await.unwrap_or_else(|e| panic!("{lang:?}: {e}"));
        eprintln!("{lang:?}: first instance + init in {:?}", started.elapsed());
    }
    let cases = cases();
    for (what, request, expected) in &cases {
        let mut decisions = Vec::new();
        for (lang, p) in &plugins {
            let r = p
                .admit(request)
                .await
                .unwrap_or_else(|e| panic!("{lang:?} on {what}: {e}"));
            // The expected decision, spelled out (so that three equally wrong policies fail).
            match expected {
                None => assert!(r.allowed, "{lang:?} on {what}: denied: {r:?}"),
                Some(name) => {
                    assert!(!r.allowed, "{lang:?} on {what}: allowed");
                    assert_eq!(r.status_code(), 403, "{lang:?} on {what}");
                    assert_eq!(
                        r.message.as_deref(),
                        Some(format!("{DENIED}{name}").as_str()),
                        "{lang:?} on {what}"
                    );
                }
            }
            assert!(r.patch.is_none(), "{lang:?} on {what}: a validating policy");
            decisions.push((*lang, decision(&r)));
        }
        let (first_lang, first) = &decisions[0];
        for (lang, d) in &decisions[1..] {
            assert_eq!(d, first, "{lang:?} and {first_lang:?} disagree on {what}");
        }
    }
    for (lang, p) in &plugins {
        let s = p.stats();
        assert_eq!(
            (s.calls, s.errors, s.state),
            (cases.len() as u64, 0, HealthState::Healthy),
            "{lang:?}: {s:?}"
        );
        assert_eq!(
            s.instances_created, 1,
            "{lang:?}: the warm instance is reused"
        );
        let logs = p.logs();
        assert!(logs.is_empty(), "{lang:?} printed: {logs:?}");
    }
}

/// Per-call cost on a typical pod, and the first instance's cost, for each language.
async fn measure(lang: Lang, calls: usize) -> (Duration, Duration, Duration) {
    let p = plugin(lang);
    let started = Instant::now();
    p.probe().await.unwrap();
    let init = started.elapsed();
    let request = cases().swap_remove(1).1;
    for _ in 0..calls.min(100) {
        assert!(p.admit(&request).await.unwrap().allowed);
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = p.admit(&request).await.unwrap();
        samples.push(t.elapsed());
        assert!(r.allowed);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (init, at(0.5), at(0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_call_cost_of_each_language() {
    for lang in LANGS {
        let (init, p50, p99) = measure(lang, 300).await;
        eprintln!("{lang:?}: instance + init {init:?}; admit p50 {p50:?} p99 {p99:?}");
        // Loose bounds (debug build, shared machine): a warm instance answers quickly.
        assert!(p50 < Duration::from_millis(20), "{lang:?}: p50 {p50:?}");
    }
}

/// A restart loads even the interpreter-carrying components from the on-disk cache in
/// milliseconds instead of compiling them again (the compile happened in the shared runtime).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_polyglot_components_are_cached_on_disk() {
    for lang in [Lang::Js, Lang::Python] {
        let bytes = lang.bytes();
        let compiled_at = Instant::now();
        load(lang); // compiles, unless another test already did
        let first = compiled_at.elapsed();
        // A restart: a new engine with the same configuration finds the artifact.
        let restarted = PluginRuntime::new(shared().1.clone()).unwrap();
        let warm = restarted.load("warm", &bytes, lang.manifest()).unwrap();
        assert_eq!(warm.source, CompileSource::Cache, "{lang:?}");
        eprintln!(
            "{lang:?} ({} bytes): first load {first:?}, after a restart {:?}",
            bytes.len(),
            warm.load_time
        );
        // Loading 12-19 MB of native code from disk: milliseconds, not the seconds a compile takes.
        assert!(
            warm.load_time < Duration::from_millis(500),
            "{lang:?}: loading from the cache took {:?}",
            warm.load_time
        );
        let p = AdmissionPlugin::new(warm, Arc::new(NoHostApi));
        let r = p.admit(&cases().swap_remove(0).1).await.unwrap();
        assert_eq!(
            r.message.as_deref(),
            Some("privileged containers are not allowed: container sidecar")
        );
    }
}

/// The components import nothing outside WASI 0.2 and the tugboat host API (the host links
/// strictly), and the JS one, built with `--disable http fetch-event random clocks`,
/// imports no more than stdio.
#[test]
fn polyglot_components_import_only_wasi_p2_and_the_host_api() {
    let engine = runtime().engine().clone();
    for lang in [Lang::Js, Lang::Python] {
        let component = component(lang);
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
        eprintln!("{lang:?} imports: {imports:?}");
        for name in &imports {
            assert!(
                name.starts_with("tugboat:plugin/") && name.ends_with("@0.1.0")
                    || name.starts_with("wasi:") && name.contains("@0.2."),
                "{lang:?} imports {name}"
            );
        }
        if lang == Lang::Js {
            for name in &imports {
                assert!(
                    [
                        "wasi:http/",
                        "wasi:sockets/",
                        "wasi:random/",
                        "wasi:clocks/monotonic"
                    ]
                    .iter()
                    .all(|p| !name.starts_with(p)),
                    "the JS policy imports {name} despite --disable"
                );
            }
        }
        assert!(
            ty.exports(&engine)
                .any(|(n, _)| n == "tugboat:plugin/admission-plugin@0.1.0"),
            "{lang:?} exports the admission interface"
        );
    }
}

/// Calling the components' exports with raw strings (what `AdmissionPlugin` never sends):
/// malformed object JSON and a config that is not JSON.
mod raw {
    use super::*;
    use wasmtime::component::{Linker, ResourceTable};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

    wasmtime::component::bindgen!({
        world: "admission",
        path: "../wit",
        imports: { default: async },
        exports: { default: async },
    });

    use self::tugboat::plugin::types as wit_types;
    use exports::tugboat::plugin::admission_plugin as wit;

    struct State {
        wasi: WasiCtx,
        table: ResourceTable,
        /// The largest linear memory the instance asked for, in bytes.
        peak_memory: usize,
    }

    impl wasmtime::ResourceLimiter for State {
        fn memory_growing(
            &mut self,
            _current: usize,
            desired: usize,
            _maximum: Option<usize>,
        ) -> wasmtime::Result<bool> {
            self.peak_memory = self.peak_memory.max(desired);
            Ok(true)
        }

        fn table_growing(
            &mut self,
            _current: usize,
            _desired: usize,
            _maximum: Option<usize>,
        ) -> wasmtime::Result<bool> {
            Ok(true)
        }
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    /// An instance on the shared engine (nothing granted; the host API traps if called,
    /// which deny-privileged never does).
    async fn instance(lang: Lang) -> (wasmtime::Store<State>, Admission) {
        let rt = runtime();
        let component = component(lang);
        let mut linker: Linker<State> = Linker::new(rt.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        // Not `define_unknown_imports_as_traps`: it would also shadow the WASI functions
        // that the linker matches by semver (`@0.2.6` imports against its newer `0.2.x`).
        linker.instance("tugboat:plugin/types@0.1.0").unwrap();
        let mut host = linker.instance("tugboat:plugin/host@0.1.0").unwrap();
        for f in ["log", "get", "list", "create", "update", "delete"] {
            host.func_new(f, |_, _, _, _| {
                Err(wasmtime::Error::msg("no host API in this test"))
            })
            .unwrap();
        }
        let mut store = wasmtime::Store::new(
            rt.engine(),
            State {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
                peak_memory: 0,
            },
        );
        store.limiter(|s| s);
        // The engine interrupts on epochs (1 ms ticks): allow a minute.
        store.set_epoch_deadline(60_000);
        let bindings = Admission::instantiate_async(&mut store, &component, &linker)
            .await
            .unwrap_or_else(|e| panic!("{lang:?}: {e:#}"));
        (store, bindings)
    }

    fn raw_request(kind: &str, object: &str) -> wit::AdmissionRequest {
        wit::AdmissionRequest {
            uid: "u".into(),
            operation: wit_types::Operation::Create,
            kind: wit_types::Gvk {
                group: String::new(),
                version: "v1".into(),
                kind: kind.into(),
            },
            resource: wit_types::Gvr {
                group: String::new(),
                version: "v1".into(),
                resource: format!("{}s", kind.to_lowercase()),
            },
            sub_resource: None,
            namespace: Some("default".into()),
            name: "x".into(),
            object: Some(object.into()),
            old_object: None,
            user: wit::UserInfo {
                username: "admin".into(),
                uid: String::new(),
                groups: vec![],
            },
            dry_run: false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_json_is_a_bad_request_in_every_language() {
        const UNREADABLE: &str = "the host sent an unreadable object: ";
        for lang in LANGS {
            let (mut store, bindings) = instance(lang).await;
            let api = bindings.tugboat_plugin_admission_plugin();
            api.call_init(&mut store, &"null".to_string())
                .await
                .unwrap()
                .unwrap();
            for (kind, text) in [
                ("Pod", r#"{"kind": "Pod", "spec": {"containers": ["#),
                ("Pod", "not json at all"),
                ("Pod", ""),
                // The object is parsed before the kind is looked at, as in the Rust SDK.
                ("ConfigMap", "{'single': 'quotes'}"),
            ] {
                let r = api
                    .call_admit(&mut store, &raw_request(kind, text))
                    .await
                    .unwrap_or_else(|e| panic!("{lang:?} on {text:?}: {e:#}"));
                eprintln!("{lang:?} on {text:?}: {:?}", r.message);
                assert!(!r.allowed, "{lang:?} allowed {text:?}");
                assert_eq!(r.code, Some(400), "{lang:?} on {text:?}");
                assert_eq!(
                    r.reason.as_deref(),
                    Some("BadRequest"),
                    "{lang:?} on {text:?}"
                );
                let message = r.message.unwrap_or_default();
                assert!(
                    message.starts_with(UNREADABLE) && message.len() > UNREADABLE.len(),
                    "{lang:?} on {text:?}: {message}"
                );
                assert!(r.patch.is_none() && r.warnings.is_empty());
            }
            // The same instance still judges well-formed requests.
            let ok = api
                .call_admit(
                    &mut store,
                    &raw_request(
                        "Pod",
                        r#"{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}"#,
                    ),
                )
                .await
                .unwrap();
            assert_eq!(
                ok.message.as_deref(),
                Some("privileged containers are not allowed: container a")
            );
            // The memory cap of the language's manifest leaves room: an instance whose
            // memory grows past half the cap is not reused.
            let peak = store.data().peak_memory;
            let cap = lang.manifest().limits.memory_bytes as usize;
            eprintln!("{lang:?}: peak linear memory {} KiB", peak >> 10);
            assert!(peak < cap / 2, "{lang:?}: peak {peak} vs cap {cap}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_config_that_is_not_json_is_rejected_by_init_in_every_language() {
        for lang in LANGS {
            let (mut store, bindings) = instance(lang).await;
            let api = bindings.tugboat_plugin_admission_plugin();
            let err = api
                .call_init(&mut store, &"{oops".to_string())
                .await
                .unwrap_or_else(|e| panic!("{lang:?}: {e:#}"))
                .expect_err("init accepted a config that is not JSON");
            assert!(
                err.starts_with("config is not valid JSON: "),
                "{lang:?}: {err}"
            );
            // No config at all (empty text) and JSON null are both fine.
            for ok in ["", "null", r#"{"ignored": true}"#] {
                api.call_init(&mut store, &ok.to_string())
                    .await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{lang:?} rejected {ok:?}: {e}"));
            }
        }
    }
}

/// Release-build numbers for the report: compile, load from the cache, first instance +
/// init, and per-call cost of each language on a typical pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_polyglot() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 8,
        ..RuntimeConfig::default()
    };
    for lang in LANGS {
        let bytes = lang.bytes();
        let first = PluginRuntime::new(config.clone()).unwrap();
        let cold = first.load("cold", &bytes, lang.manifest()).unwrap();
        drop(first);
        let second = PluginRuntime::new(config.clone()).unwrap();
        let warm = second.load("warm", &bytes, lang.manifest()).unwrap();
        let artifact: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        let (init, p50, p99) = measure(lang, 5_000).await;
        eprintln!(
            "{lang:?}: {} bytes; compile {:?}; from cache {:?}; instance + init {init:?}; \
             admit p50 {p50:?} p99 {p99:?} (largest cached artifact so far {artifact} bytes)",
            bytes.len(),
            cold.load_time,
            warm.load_time,
        );
    }
}
