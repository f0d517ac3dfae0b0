//! Plugin faults end to end, through a real `tug server` and the real `kubectl`: a `Plugin`
//! runs `plugins/testdata/faulty` (its config's `mode` picks the fault) as an admission hook
//! on pod creation, and pods are created with `kubectl create`. For every fault — an
//! infinite loop, a trap, a panic, memory growth past a small cap, garbage output, a write
//! the plugin has no capability for —
//!
//! - with `failurePolicy: Ignore` the create succeeds, with a warning naming the plugin and
//!   the cause;
//! - with `failurePolicy: Fail` it is refused: HTTP 500 `InternalError`, `failed calling
//!   admission plugin "NAME": plugin NAME <the cause>` (Kubernetes answers a failed webhook
//!   call alike: 500 `InternalError`, `Internal error occurred: failed calling webhook
//!   "NAME": <the cause>`), within the plugin's deadline (plus generous slack for a loaded
//!   machine), and nothing is stored;
//! - after repeated failures the `Plugin`'s status says `Degraded`, with the error count and
//!   the cause in `lastError`, and calls fail fast;
//! - the server keeps serving throughout.
//!
//! A refused host call is not itself a failure: a plugin that gets the 403 and denies is
//! obeyed (also under `Ignore`); either way the refused writes never reach the store.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::wasm::wasm_path;
use common::{Cluster, check_contains, check_not_contains, unique};
use serde_json::Value;

/// How long the server may take to load a plugin or to show a status change.
const WAIT: Duration = Duration::from_secs(60);
/// The longest a refused `kubectl create` may take end to end, kubectl's own start-up
/// included: generous for a loaded 2-core machine, and far from what a call no deadline
/// stopped would take (forever: the harness kills kubectl after 90 s).
const WALL_BOUND: Duration = Duration::from_secs(15);
/// How much longer than the plugin's deadline the server may take to answer (as kubectl
/// measured the request): instantiation, the write path, a busy machine.
const SERVER_SLACK_MS: u64 = 3000;
/// Consecutive failures after which a plugin is `Degraded` (the default of
/// `limits.degradeAfterFailures`, which the `Plugin` resource does not expose).
const DEGRADE_AFTER: u64 = 5;

/// One fault and what the server must say about it.
struct Fault {
    /// The `Plugin`'s name.
    name: &'static str,
    /// The faulty plugin's `mode`.
    mode: &'static str,
    /// `limits.timeoutMs`.
    timeout_ms: u64,
    /// `limits.memoryBytes`, if not the default.
    memory_bytes: Option<u64>,
    /// Grant `get` on ConfigMaps (and nothing else).
    may_get_configmaps: bool,
    /// What every failure's message must contain (the cause, in the runtime's words).
    cause: &'static [&'static str],
}

// ------------------------------------------------------------------ helpers

/// Upload the faulty component with `kubectl replace --raw` (a PUT); returns its digest.
fn upload_faulty(c: &Cluster) -> String {
    let path = wasm_path("faulty");
    let out = c.kubectl_ok(&[
        "replace",
        "--raw",
        "/tugboat/v1/blobs",
        "-f",
        path.to_str().expect("utf-8 path"),
    ]);
    let v: Value = serde_json::from_str(&out).expect("upload answers JSON");
    let digest = v["digest"].as_str().expect("digest").to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    digest
}

fn plugin_yaml(f: &Fault, digest: &str, failure_policy: &str) -> String {
    let memory = f
        .memory_bytes
        .map(|m| format!("    memoryBytes: {m}\n"))
        .unwrap_or_default();
    let permissions = if f.may_get_configmaps {
        "  permissions:\n  - apiGroups: [\"\"]\n    resources: [configmaps]\n    verbs: [get]\n"
    } else {
        ""
    };
    format!(
        "apiVersion: tugboat.dev/v1alpha1
kind: Plugin
metadata:
  name: {name}
spec:
  kind: admission
  source:
    blob: \"{digest}\"
  config:
    mode: {mode}
  limits:
    timeoutMs: {timeout}
{memory}{permissions}  admission:
    failurePolicy: {failure_policy}
    rules:
    - operations: [CREATE]
      apiGroups: [\"\"]
      resources: [pods]
",
        name = f.name,
        mode = f.mode,
        timeout = f.timeout_ms,
    )
}

/// The `Plugin` as JSON.
fn plugin_json(c: &Cluster, name: &str) -> Value {
    let out = c.kubectl_ok(&["get", "plugin", name, "-o", "json"]);
    serde_json::from_str(&out).expect("kubectl -o json prints JSON")
}

/// Apply the `Plugin` and wait until the server has acted on this generation of it, running
/// `digest`.
fn apply_plugin(c: &Cluster, f: &Fault, digest: &str, failure_policy: &str, generation: i64) {
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &plugin_yaml(f, digest, failure_policy),
    );
    let mut last = Value::Null;
    c.eventually(
        WAIT,
        &format!("plugin {} at generation {generation}", f.name),
        || {
            let p = plugin_json(c, f.name);
            let done = p["metadata"]["generation"] == generation
                && p["status"]["observedGeneration"] == generation
                && p["status"]["digest"] == digest;
            last = p;
            done.then_some(())
        },
    );
    // A fresh load or a rules-only change: either way the version runs and is not degraded.
    check_eq!(last["status"]["phase"], "Ready", "{last:#}");
}

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: app\n    image: busybox\n"
    )
}

/// What `kubectl create` of a pod did.
struct Create {
    ok: bool,
    stderr: String,
    /// The HTTP status and the request's duration, as kubectl logged them (`-v=6`).
    code: Option<u16>,
    server_ms: Option<u64>,
    /// From starting kubectl to its exit.
    wall: Duration,
}

fn create_pod(c: &Cluster, ns: &str, name: &str) -> Create {
    let started = Instant::now();
    let out = c.kubectl_stdin(&["create", "-v=6", "-n", ns, "-f", "-"], &pod(name));
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (code, server_ms) = match logged_post(&stderr) {
        Some((code, ms)) => (Some(code), Some(ms)),
        None => (None, None),
    };
    Create {
        ok: out.status.success(),
        stderr,
        code,
        server_ms,
        wall,
    }
}

/// kubectl `-v=6` logs each request, as `"Response" verb="POST" url="https://…/pods?…"
/// status="500 Internal Server Error" milliseconds=104` (kubectl 1.32) or as `POST
/// https://…/pods?… 500 Internal Server Error in 104 milliseconds` (older ones): returns
/// the status and the milliseconds of the pod POST.
fn logged_post(stderr: &str) -> Option<(u16, u64)> {
    let number = |s: &str| -> Option<u64> {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    for line in stderr.lines().filter(|l| l.contains("/pods")) {
        if line.contains("verb=\"POST\"") {
            let code = number(line.split("status=\"").nth(1)?)?;
            let ms = number(line.split("milliseconds=").nth(1)?)?;
            return Some((u16::try_from(code).ok()?, ms));
        }
        if let Some(after) = line.split("POST https://").nth(1) {
            let mut words = after.split_whitespace().skip(1);
            let code = words.next()?.parse().ok()?;
            let rest: Vec<&str> = words.collect();
            let at = rest.iter().rposition(|w| *w == "milliseconds")?;
            return Some((code, rest.get(at.checked_sub(1)?)?.parse().ok()?));
        }
    }
    None
}

/// What kubectl printed for its user: its stderr without the `-v=6` log (klog lines,
/// `I0102 15:04:05…`, and the response objects they dump, `[{` … `}]`).
fn messages(stderr: &str) -> String {
    let klog = |l: &str| {
        let b = l.as_bytes();
        b.len() > 5 && b"IWEF".contains(&b[0]) && b[1..5].iter().all(u8::is_ascii_digit)
    };
    let mut out = vec![];
    let mut in_dump = false;
    for l in stderr.lines() {
        if in_dump {
            in_dump = l != "}]";
        } else if klog(l) {
            in_dump = l.ends_with("[{");
        } else {
            out.push(l);
        }
    }
    out.join("\n")
}

/// Check that a create was refused because the plugin failed, and within its deadline.
#[track_caller]
fn check_refused_by_failure(f: &Fault, r: &Create) {
    check!(!r.ok, "the create was not refused: {}", r.stderr);
    let msg = messages(&r.stderr);
    // Kubernetes: `Error from server (InternalError): error when creating "STDIN": Internal
    // error occurred: failed calling webhook "NAME": …` (500).
    check_eq!(r.code, Some(500), "{}", r.stderr);
    check_contains(&msg, "Error from server (InternalError)");
    check_contains(
        &msg,
        &format!(
            "failed calling admission plugin \"{}\": plugin {} ",
            f.name, f.name
        ),
    );
    for cause in f.cause {
        check_contains(&msg, cause);
    }
    check_within_deadline(f, r);
}

#[track_caller]
fn check_within_deadline(f: &Fault, r: &Create) {
    check!(r.wall < WALL_BOUND, "took {:?}: {}", r.wall, r.stderr);
    match r.server_ms {
        Some(ms) => check!(
            ms < f.timeout_ms + SERVER_SLACK_MS,
            "the server took {ms} ms with a deadline of {} ms",
            f.timeout_ms
        ),
        None => common::fail(format!(
            "kubectl -v=6 logged no POST of the pod:\n{}",
            r.stderr
        )),
    }
}

/// The names of the pods in `ns`.
fn pods(c: &Cluster, ns: &str) -> Vec<String> {
    c.kubectl_ok(&["get", "pods", "-n", ns, "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn status_u64(p: &Value, field: &str) -> u64 {
    p["status"][field].as_u64().unwrap_or(0)
}

/// Create ConfigMap `victim` (what the plugin will try to change); returns it.
fn create_victim(c: &Cluster, ns: &str) -> Value {
    c.kubectl_ok(&[
        "create",
        "configmap",
        "victim",
        "-n",
        ns,
        "--from-literal=owner=me",
    ]);
    serde_json::from_str(&c.kubectl_ok(&["get", "configmap", "victim", "-n", ns, "-o", "json"]))
        .expect("JSON")
}

/// Check that none of the plugin's writes reached the store: `victim` is as it was, there
/// is no `stolen`, the namespace is not being deleted.
#[track_caller]
fn check_store_untouched(c: &Cluster, ns: &str, victim: &Value) {
    let out = c.kubectl(&["get", "configmap", "victim", "-n", ns, "-o", "json"]);
    check!(
        out.status.success(),
        "victim is gone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        let now: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        check_eq!(
            now["metadata"]["resourceVersion"],
            victim["metadata"]["resourceVersion"]
        );
        check_eq!(now["data"], victim["data"]);
        check!(now["metadata"]["deletionTimestamp"].is_null(), "{now:#}");
    }
    let err = c.kubectl_err(&["get", "configmap", "stolen", "-n", ns]);
    check_contains(&err, "not found");
    let phase = c.kubectl_ok(&["get", "ns", ns, "-o", "jsonpath={.status.phase}"]);
    check_eq!(phase, "Active");
}

// --------------------------------------------------------------- the scenario

/// The whole story for one fault (see the module doc).
fn fault_is_contained(f: &Fault) {
    let c = Cluster::start();
    let digest = upload_faulty(&c);
    let ns = unique(f.name);
    c.kubectl_ok(&["create", "ns", &ns]);
    let victim = create_victim(&c, &ns);

    // failurePolicy Ignore: the fault lets the write through, with a warning saying why.
    apply_plugin(&c, f, &digest, "Ignore", 1);
    let r = create_pod(&c, &ns, "ignored");
    check!(
        r.ok,
        "failurePolicy Ignore refused the create: {}",
        r.stderr
    );
    check_eq!(r.code, Some(201), "{}", r.stderr);
    let msg = messages(&r.stderr);
    eprintln!("{}: under Ignore: {msg}", f.name);
    check_contains(
        &msg,
        &format!(
            "Warning: admission plugin \"{}\" failed and was ignored: plugin {} ",
            f.name, f.name
        ),
    );
    for cause in f.cause {
        check_contains(&msg, cause);
    }
    check_within_deadline(f, &r);

    // failurePolicy Fail: refused, with the plugin and the cause, within the deadline.
    apply_plugin(&c, f, &digest, "Fail", 2);
    let first = create_pod(&c, &ns, "refused-0");
    eprintln!(
        "{}: HTTP {:?} in {:?} ms: {}",
        f.name,
        first.code,
        first.server_ms,
        messages(&first.stderr)
    );
    check_refused_by_failure(f, &first);
    // The first refusal is the fault itself, not a fast failure.
    check_not_contains(&first.stderr, "is degraded");

    // Repeated failures: the plugin is degraded, and calls fail fast (or, once its back-off
    // has passed, run as a probe and fail again) — still refused, still naming the cause.
    for i in 1..=DEGRADE_AFTER {
        let r = create_pod(&c, &ns, &format!("refused-{i}"));
        check_refused_by_failure(f, &r);
    }
    let mut last = Value::Null;
    c.eventually(WAIT, &format!("plugin {} Degraded", f.name), || {
        last = plugin_json(&c, f.name);
        (last["status"]["phase"] == "Degraded").then_some(())
    });
    let errors = status_u64(&last, "errors");
    check!(
        errors >= DEGRADE_AFTER,
        "errors {errors} in the status: {last:#}"
    );
    check!(status_u64(&last, "calls") >= errors, "{last:#}");
    let last_error = last["status"]["lastError"].as_str().unwrap_or_default();
    check_contains(last_error, &format!("plugin {} ", f.name));
    for cause in f.cause {
        check_contains(last_error, cause);
    }
    // The table shows it too.
    let table = c.kubectl_ok(&["get", "plugins"]);
    check!(
        table
            .lines()
            .any(|l| l.starts_with(f.name) && l.contains("Degraded")),
        "{table}"
    );
    // A degraded plugin fails fast. Its back-off (1 s, doubling after every failed probe)
    // may have passed, making a call a probe; two in a row cannot both be probes unless the
    // second starts more than 2 s after the first returned, so one of three must be fast.
    let fast = (0..3).any(|i| {
        let r = create_pod(&c, &ns, &format!("degraded-{i}"));
        check_refused_by_failure(f, &r);
        r.stderr
            .contains(&format!("plugin {} is degraded after", f.name))
    });
    check!(fast, "no call failed fast while the plugin was degraded");

    // The server kept serving: reads, and writes the plugin's rules do not match.
    c.kubectl_ok(&["get", "ns", &ns]);
    c.kubectl_ok(&["create", "configmap", "after", "-n", &ns]);
    // Only the pod admitted under Ignore was stored.
    check_eq!(pods(&c, &ns), vec!["pod/ignored".to_string()]);
    // Whatever the plugin tried through the host, nothing of it reached the store.
    check_store_untouched(&c, &ns, &victim);
    if f.may_get_configmaps {
        let p = plugin_json(&c, f.name);
        let violations = status_u64(&p, "capabilityViolations");
        // Four refused writes per call that ran (the first two at least).
        check!(violations >= 8, "capabilityViolations {violations}: {p:#}");
    }
}

// ------------------------------------------------------------------ the faults

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline() {
    fault_is_contained(&Fault {
        name: "fault-loop",
        mode: "loop",
        timeout_ms: 100,
        memory_bytes: None,
        may_get_configmaps: false,
        cause: &["did not answer within its deadline of 100ms"],
    });
}

#[test]
fn a_trap_fails_only_its_call() {
    fault_is_contained(&Fault {
        name: "fault-trap",
        mode: "trap",
        timeout_ms: 2000,
        memory_bytes: None,
        may_get_configmaps: false,
        cause: &["crashed", "unreachable"],
    });
}

#[test]
fn a_panic_fails_only_its_call() {
    fault_is_contained(&Fault {
        name: "fault-panic",
        mode: "panic",
        timeout_ms: 2000,
        memory_bytes: None,
        may_get_configmaps: false,
        cause: &["panicked: faulty plugin panicked on purpose"],
    });
}

#[test]
fn memory_growth_past_the_cap_fails_only_its_call() {
    fault_is_contained(&Fault {
        name: "fault-memory",
        mode: "memory",
        timeout_ms: 2000,
        memory_bytes: Some(4 << 20),
        may_get_configmaps: false,
        cause: &[
            "exceeded its memory limit of 4194304 bytes",
            "memory allocation of 1048576 bytes failed",
        ],
    });
}

#[test]
fn garbage_output_fails_only_its_call() {
    fault_is_contained(&Fault {
        name: "fault-garbage",
        mode: "garbage",
        timeout_ms: 2000,
        memory_bytes: None,
        may_get_configmaps: false,
        cause: &["returned an invalid response", "not an RFC 6902 JSON Patch"],
    });
}

/// A plugin that may only read ConfigMaps tries to update, create and delete them and to
/// delete its namespace, and panics on the host's refusal (as one that `unwrap`s would).
#[test]
fn a_plugin_crashing_on_refused_writes_changes_nothing() {
    fault_is_contained(&Fault {
        name: "fault-caps",
        mode: "forbidden-write-panic",
        timeout_ms: 2000,
        memory_bytes: None,
        may_get_configmaps: true,
        cause: &[
            "panicked: the host refused: ",
            "update configmap victim: Forbidden (403): plugin \"fault-caps\" may not update \"configmaps\"",
        ],
    });
}

/// The same refused writes, but the plugin handles the 403 and denies: a verdict, not a
/// failure, so it stands under `failurePolicy: Ignore` too, and the plugin stays healthy.
#[test]
fn refused_writes_never_reach_the_store_and_the_plugin_decides() {
    let f = Fault {
        name: "deny-caps",
        mode: "forbidden-write",
        timeout_ms: 2000,
        memory_bytes: None,
        may_get_configmaps: true,
        cause: &[],
    };
    let c = Cluster::start();
    let digest = upload_faulty(&c);
    let ns = unique(f.name);
    c.kubectl_ok(&["create", "ns", &ns]);
    let victim = create_victim(&c, &ns);
    apply_plugin(&c, &f, &digest, "Ignore", 1);

    for i in 0..2 {
        let r = create_pod(&c, &ns, &format!("p{i}"));
        check!(!r.ok, "the plugin's denial was not obeyed: {}", r.stderr);
        // Kubernetes: `Error from server (Forbidden): … admission webhook "NAME" denied the
        // request: …` when the webhook denies with 403.
        check_eq!(r.code, Some(403), "{}", r.stderr);
        let msg = messages(&r.stderr);
        if i == 0 {
            eprintln!("{}: HTTP {:?}: {msg}", f.name, r.code);
        }
        check_contains(&msg, "Error from server (Forbidden)");
        check_contains(
            &msg,
            "admission plugin \"deny-caps\" denied the request: update configmap victim: ",
        );
        for (verb, resource) in [
            ("update", "configmaps"),
            ("create", "configmaps"),
            ("delete", "configmaps"),
            ("delete", "namespaces"),
        ] {
            check_contains(
                &msg,
                &format!(
                    "Forbidden (403): plugin \"deny-caps\" may not {verb} \"{resource}\" in API group \"core\""
                ),
            );
        }
        // The granted read worked (it found the victim); nothing was let through.
        check_not_contains(&msg, "get configmap victim");
        check_not_contains(&msg, "the host let me");
        check_within_deadline(&f, &r);
    }
    check_store_untouched(&c, &ns, &victim);
    check_eq!(pods(&c, &ns), Vec::<String>::new());

    // The status counts the refused host calls; the calls themselves did not fail.
    let mut last = Value::Null;
    c.eventually(WAIT, "capability violations in the status", || {
        last = plugin_json(&c, f.name);
        (status_u64(&last, "capabilityViolations") >= 8).then_some(())
    });
    check_eq!(last["status"]["phase"], "Ready", "{last:#}");
    check_eq!(status_u64(&last, "errors"), 0, "{last:#}");
    check!(status_u64(&last, "calls") >= 2, "{last:#}");
    check!(last["status"]["lastError"].is_null(), "{last:#}");
    c.kubectl_ok(&["get", "ns", &ns]);
}
