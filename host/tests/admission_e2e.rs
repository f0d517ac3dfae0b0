//! Admission plugins end to end, with the real kubectl against a real `tug server`: upload a
//! component to the blob store, apply a `Plugin`, and see it judge writes; a mutating hook;
//! an upgrade under continuous load; a broken version rejected while the old one serves;
//! deleting the Plugin unloads it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::wasm::wasm_path;
use common::{Cluster, unique};

/// Upload a component with `kubectl replace --raw` (a PUT of the file); returns its digest.
fn upload(c: &Cluster, name: &str) -> String {
    let path = wasm_path(name);
    let out = c.kubectl_ok(&[
        "replace",
        "--raw",
        "/tugboat/v1/blobs",
        "-f",
        path.to_str().expect("utf-8 path"),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("upload answers JSON");
    let digest = v["digest"].as_str().expect("digest").to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    digest
}

fn plugin_yaml(name: &str, digest: &str, mutating: bool, config: &str, extra: &str) -> String {
    format!(
        "apiVersion: tugboat.dev/v1alpha1\nkind: Plugin\nmetadata:\n  name: {name}\nspec:\n  kind: admission\n  source:\n    blob: \"{digest}\"\n  config: {config}\n  admission:\n    mutating: {mutating}\n    failurePolicy: Fail\n    rules:\n    - operations: [CREATE, UPDATE]\n      apiGroups: [\"\"]\n      resources: [pods]\n{extra}"
    )
}

fn wait_phase(c: &Cluster, name: &str, phase: &str, digest: &str) {
    c.eventually(
        Duration::from_secs(60),
        &format!("plugin {name} {phase} at {digest}"),
        || {
            let out = c.kubectl(&[
                "get",
                "plugin",
                name,
                "-o",
                "jsonpath={.status.phase} {.status.digest}",
            ]);
            let s = String::from_utf8_lossy(&out.stdout).to_string();
            (s.trim() == format!("{phase} {digest}")).then_some(())
        },
    );
}

fn pod(name: &str, privileged: bool) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    securityContext:\n      privileged: {privileged}\n"
    )
}

#[test]
fn a_policy_plugin_judges_writes_and_is_unloaded_when_deleted() {
    let c = Cluster::start();
    let digest = upload(&c, "deny_privileged");
    // The Plugin resource is served, with its own table.
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &plugin_yaml("no-privileged", &digest, false, "{}", ""),
    );
    wait_phase(&c, "no-privileged", "Ready", &digest);
    let table = c.kubectl_ok(&["get", "plugins"]);
    assert!(
        table.contains("KIND") && table.contains("PHASE") && table.contains("no-privileged"),
        "{table}"
    );

    let ns = unique("adm");
    c.kubectl_ok(&["create", "ns", &ns]);
    let err = c.kubectl_stdin_err(&["apply", "-n", &ns, "-f", "-"], &pod("bad", true));
    assert!(
        err.contains("admission plugin \"no-privileged\" denied the request")
            && err.contains("privileged containers are not allowed: container app"),
        "{err}"
    );
    let out = c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &pod("good", false));
    assert!(out.contains("pod/good created"), "{out}");
    // Nothing was stored for the denied pod.
    let err = c.kubectl_err(&["get", "pod", "bad", "-n", &ns]);
    assert!(err.contains("not found"), "{err}");
    // Calls are counted in the status.
    c.eventually(Duration::from_secs(30), "calls counted", || {
        let out = c.kubectl(&[
            "get",
            "plugin",
            "no-privileged",
            "-o",
            "jsonpath={.status.calls}",
        ]);
        let n: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (n >= 2).then_some(())
    });
    // Deleting the Plugin unloads it: the same pod is now admitted.
    c.kubectl_ok(&["delete", "plugin", "no-privileged"]);
    c.eventually(Duration::from_secs(30), "plugin unloaded", || {
        let out = c.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pod("bad", true));
        out.status.success().then_some(())
    });
}

#[test]
fn a_mutating_plugin_adds_a_label() {
    let c = Cluster::start();
    let digest = upload(&c, "add_label");
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &plugin_yaml(
            "add-team",
            &digest,
            true,
            "{key: team, value: platform}",
            "",
        ),
    );
    wait_phase(&c, "add-team", "Ready", &digest);
    let ns = unique("mut");
    c.kubectl_ok(&["create", "ns", &ns]);
    c.kubectl_stdin_ok(&["apply", "-n", &ns, "-f", "-"], &pod("p", false));
    let out = c.kubectl_ok(&["get", "pod", "p", "-n", &ns, "--show-labels"]);
    assert!(out.contains("team=platform"), "{out}");
    // Other kinds do not match the rules.
    c.kubectl_ok(&["create", "configmap", "cm", "-n", &ns, "--from-literal=a=b"]);
    let out = c.kubectl_ok(&["get", "cm", "cm", "-n", &ns, "--show-labels"]);
    assert!(!out.contains("team=platform"), "{out}");
}

#[test]
fn upgrades_swap_without_failed_requests_and_broken_versions_are_rejected() {
    let c = Cluster::start();
    let deny = upload(&c, "deny_privileged");
    let faulty = upload(&c, "faulty");
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &plugin_yaml("gate", &deny, false, "{}", ""),
    );
    wait_phase(&c, "gate", "Ready", &deny);
    let ns = unique("swap");
    c.kubectl_ok(&["create", "ns", &ns]);

    // A client creating ConfigMaps... and pods, continuously, while the plugin is upgraded.
    let stop = AtomicBool::new(false);
    let ok = AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(vec![]);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let out = c.kubectl_stdin(
                    &["create", "-n", &ns, "-f", "-"],
                    &pod(&format!("p{i}"), false),
                );
                if out.status.success() {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed
                        .lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&out.stderr).to_string());
                }
            }
        });
        // Upgrade: the same policy with a new configuration (a new manifest, a new load).
        std::thread::sleep(Duration::from_millis(500));
        c.kubectl_stdin_ok(
            &["apply", "-f", "-"],
            &plugin_yaml("gate", &deny, false, "{generation: 2}", ""),
        );
        std::thread::sleep(Duration::from_millis(500));
        // A broken version: its init fails, so it is not activated.
        c.kubectl_stdin_ok(
            &["apply", "-f", "-"],
            &plugin_yaml("gate", &faulty, false, "{mode: init-fail}", ""),
        );
        c.eventually(
            Duration::from_secs(30),
            "the broken version is reported",
            || {
                let out = c.kubectl(&[
                    "get",
                    "plugin",
                    "gate",
                    "-o",
                    "jsonpath={.status.phase}|{.status.digest}|{.status.message}",
                ]);
                let s = String::from_utf8_lossy(&out.stdout).to_string();
                (s.starts_with(&format!("Ready|{deny}|"))
                    && s.contains("was not activated")
                    && s.contains(&faulty))
                .then_some(())
            },
        );
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
    });
    let failed = failed.into_inner().expect("lock");
    assert!(
        failed.is_empty(),
        "requests failed across the swaps: {failed:?}"
    );
    assert!(ok.load(Ordering::SeqCst) > 3, "the client made progress");
    // The old version still judges.
    let err = c.kubectl_stdin_err(&["create", "-n", &ns, "-f", "-"], &pod("bad", true));
    assert!(
        err.contains("privileged containers are not allowed"),
        "{err}"
    );
}

#[test]
fn faults_are_contained_and_failure_policy_applies() {
    let c = Cluster::start();
    let faulty = upload(&c, "faulty");
    let ns = unique("fault");
    c.kubectl_ok(&["create", "ns", &ns]);
    // An infinite loop under failurePolicy Fail: the write fails within the deadline with
    // the plugin's error; the server keeps serving.
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &plugin_yaml(
            "looper",
            &faulty,
            false,
            "{mode: loop}",
            "  limits:\n    timeoutMs: 50\n",
        ),
    );
    wait_phase(&c, "looper", "Ready", &faulty);
    let started = std::time::Instant::now();
    let err = c.kubectl_stdin_err(&["create", "-n", &ns, "-f", "-"], &pod("pod-x", false));
    assert!(
        err.contains("failed calling admission plugin \"looper\""),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the deadline bounds the call"
    );
    c.kubectl_ok(&["get", "ns", &ns]);
    // With failurePolicy Ignore the same fault lets writes through.
    let ignore = plugin_yaml(
        "looper",
        &faulty,
        false,
        "{mode: loop}",
        "  limits:\n    timeoutMs: 50\n",
    )
    .replace("failurePolicy: Fail", "failurePolicy: Ignore");
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &ignore);
    let mut last = String::new();
    let admitted = (0..120).any(|_| {
        let out = c.kubectl_stdin(&["create", "-n", &ns, "-f", "-"], &pod("pod-y", false));
        last = String::from_utf8_lossy(&out.stderr).to_string();
        out.status.success() || {
            std::thread::sleep(Duration::from_millis(250));
            false
        }
    });
    assert!(
        admitted,
        "failurePolicy Ignore did not let the write through: {last}"
    );
    // The errors are visible in the status.
    c.eventually(Duration::from_secs(30), "errors in the status", || {
        let out = c.kubectl(&["get", "plugin", "looper", "-o", "jsonpath={.status.errors}"]);
        let n: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (n >= 1).then_some(())
    });
    // `tug plugin upload` puts a component in the blob store through the kubeconfig.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tug"))
        .args(["plugin", "upload"])
        .arg(wasm_path("faulty"))
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .output()
        .expect("running tug plugin upload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), faulty);
    // A component that is not Wasm is refused by the blob store.
    let junk = c.data_dir().join("junk.bin");
    std::fs::write(&junk, b"not wasm").expect("write junk");
    let err = c.kubectl_err(&[
        "replace",
        "--raw",
        "/tugboat/v1/blobs",
        "-f",
        junk.to_str().expect("path"),
    ]);
    assert!(err.contains("not a WebAssembly binary"), "{err}");
}
