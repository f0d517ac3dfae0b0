//! A plugin that misbehaves on purpose, for the host's fault tests. `init`'s config
//! `{"mode": "..."}` selects what every `admit` does:
//!
//! | mode | behaviour |
//! |---|---|
//! | `allow` (default) | allows |
//! | `loop` | spins forever (the deadline must stop it) |
//! | `trap` | executes `unreachable` |
//! | `panic` | panics with "faulty plugin panicked on purpose" |
//! | `memory` | allocates 1 MiB blocks until allocation fails (the memory cap) |
//! | `forbidden` | reads a Secret, which its manifest does not allow, and denies with the error it got |
//! | `host-get` | reads ConfigMap `plugin-config` in the request's namespace and denies with its `data.message` |
//! | `forbidden-write` | in the request's namespace, reads ConfigMap `victim`, then tries to update it, create ConfigMap `stolen`, delete `victim` and delete the namespace itself; denies with what the host answered to each |
//! | `forbidden-write-panic` | the same writes, then panics with what the host answered (a plugin that `unwrap`s a refused host call) |
//! | `log` | logs through the host and to stdout/stderr, then allows |
//! | `garbage` | returns a patch that is not JSON |
//! | `not-a-patch` | returns a patch that is JSON but not an RFC 6902 array |
//! | `bad-code` | denies with HTTP status 99 |
//! | `init-fail` | fails `init` |
//! | `dynamic` | reads ConfigMap `faulty-mode` in the request's namespace and behaves as its `data.mode` says |
//!
//! It uses the raw generated bindings (not `export_admission!`) so it can return what the
//! SDK's types would not let it.

use std::sync::Mutex;

use serde_json::{Value, json};
use tugboat_plugin_sdk::bindings::admission::exports::tugboat::plugin::admission_plugin::{
    AdmissionRequest, AdmissionResponse, Guest,
};
use tugboat_plugin_sdk::host::{self, HostError, LogLevel};

static MODE: Mutex<String> = Mutex::new(String::new());

fn mode() -> String {
    MODE.lock().map(|m| m.clone()).unwrap_or_default()
}

fn allow() -> AdmissionResponse {
    AdmissionResponse {
        allowed: true,
        code: None,
        reason: None,
        message: None,
        patch: None,
        warnings: Vec::new(),
    }
}

fn deny(message: String) -> AdmissionResponse {
    AdmissionResponse {
        allowed: false,
        message: Some(message),
        ..allow()
    }
}

struct Faulty;

impl Guest for Faulty {
    fn init(config: String) -> Result<(), String> {
        let config: Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let mode = config
            .get("mode")
            .and_then(Value::as_str)
            .unwrap_or("allow")
            .to_string();
        if mode == "init-fail" {
            return Err("init-fail mode: this configuration is rejected".to_string());
        }
        if let Ok(mut m) = MODE.lock() {
            *m = mode;
        }
        Ok(())
    }

    fn admit(request: AdmissionRequest) -> AdmissionResponse {
        behave(&mode(), request)
    }
}

fn behave(mode: &str, request: AdmissionRequest) -> AdmissionResponse {
    match mode {
        "dynamic" => {
            match host::get(
                "v1",
                "ConfigMap",
                request.namespace.as_deref(),
                "faulty-mode",
            ) {
                Ok(Some(cm)) => {
                    let mode = cm
                        .pointer("/data/mode")
                        .and_then(Value::as_str)
                        .unwrap_or("allow")
                        .to_string();
                    behave(&mode, request)
                }
                Ok(None) => allow(),
                Err(e) => deny(format!("host error {}: {}", e.code, e.message)),
            }
        }
        "loop" => {
            let mut i: u64 = 0;
            loop {
                i = std::hint::black_box(i.wrapping_add(1));
            }
        }
        "trap" => {
            #[cfg(target_arch = "wasm32")]
            core::arch::wasm32::unreachable();
            #[cfg(not(target_arch = "wasm32"))]
            std::process::abort();
        }
        "panic" => panic!("faulty plugin panicked on purpose"),
        "memory" => {
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = vec![0u8; 1 << 20];
                block[4096] = 1;
                blocks.push(std::hint::black_box(block));
            }
        }
        "forbidden" => {
            match host::get("v1", "Secret", request.namespace.as_deref(), "db-password") {
                Ok(_) => deny("the host let me read a Secret".to_string()),
                Err(e) => {
                    host::log(LogLevel::Warn, &format!("host refused: {e}"));
                    deny(format!("host error {} {}: {}", e.code, e.reason, e.message))
                }
            }
        }
        "forbidden-write" => deny(forbidden_writes(&request)),
        "forbidden-write-panic" => panic!("the host refused: {}", forbidden_writes(&request)),
        "host-get" => {
            match host::get(
                "v1",
                "ConfigMap",
                request.namespace.as_deref(),
                "plugin-config",
            ) {
                Ok(Some(cm)) => deny(
                    cm.pointer("/data/message")
                        .and_then(Value::as_str)
                        .unwrap_or("no message")
                        .to_string(),
                ),
                Ok(None) => deny("no ConfigMap plugin-config".to_string()),
                Err(e) => deny(format!("host error {}: {}", e.code, e.message)),
            }
        }
        "log" => {
            host::log(LogLevel::Info, &format!("judging {}", request.name));
            println!("hello from stdout");
            eprintln!("hello from stderr");
            allow()
        }
        "garbage" => AdmissionResponse {
            patch: Some("this is {not json".to_string()),
            ..allow()
        },
        "not-a-patch" => AdmissionResponse {
            patch: Some(r#"{"op": "add"}"#.to_string()),
            ..allow()
        },
        "bad-code" => AdmissionResponse {
            code: Some(99),
            ..deny("bad code".to_string())
        },
        _ => allow(),
    }
}

/// Tries writes a plugin without the matching capabilities must never get through (see the
/// `forbidden-write` mode); returns what the host answered to each, `; `-separated.
fn forbidden_writes(request: &AdmissionRequest) -> String {
    let ns = request.namespace.as_deref();
    let mut answers = Vec::new();
    let mut answer = |what: &str, result: Result<(), HostError>| {
        answers.push(match result {
            Ok(()) => format!("{what}: the host let me do it"),
            Err(e) => format!("{what}: {e}"),
        });
    };
    // Reading is what such a plugin may be granted; writing is not.
    let mut victim = match host::get("v1", "ConfigMap", ns, "victim") {
        Ok(Some(cm)) => cm,
        other => {
            answer(
                "get configmap victim",
                other
                    .map(|_| ())
                    .and(Err(HostError::new(404, "NotFound", "no victim"))),
            );
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "victim", "namespace": ns}})
        }
    };
    victim["data"] = json!({"owner": "faulty"});
    answer("update configmap victim", host::update(&victim).map(|_| ()));
    let stolen = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "stolen", "namespace": ns},
        "data": {"owner": "faulty"},
    });
    answer("create configmap stolen", host::create(&stolen).map(|_| ()));
    answer(
        "delete configmap victim",
        host::delete("v1", "ConfigMap", ns, "victim"),
    );
    if let Some(ns) = ns {
        answer(
            "delete namespace",
            host::delete("v1", "Namespace", None, ns),
        );
    }
    answers.join("; ")
}

tugboat_plugin_sdk::bindings::admission::__tugboat_export_admission_world!(
    Faulty with_types_in tugboat_plugin_sdk::bindings::admission
);
