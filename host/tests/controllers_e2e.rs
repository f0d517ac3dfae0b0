//! The built-in controllers end to end (issue 4's proof), with the real `kubectl` against a
//! real `tug server --simulated-nodes 3`: Deployments (rollout with `maxUnavailable: 0`,
//! `rollout status`, `rollout undo`, scaling, background, foreground and orphan deletion),
//! namespace deletion, a Service's Endpoints and EndpointSlices following pod readiness,
//! Jobs (suspended, parallel, failing), a CronJob firing on schedule, a DaemonSet following
//! a node joining and leaving, a StatefulSet scaling in order, and a node that stops
//! heartbeating; then the plugin side: the Deployment controller hot-swapped mid-rollout,
//! and a controller that traps on every call (`plugins/testdata/faulty-controller`).
//!
//! Every test starts its own server (they run in parallel). Waits are on conditions, never
//! fixed sleeps, with generous timeouts: the suite runs on small, busy machines.
//!
//! Most checks are soft (`check!`, `check_eq!`): one run lists every mismatch, and the test
//! fails when its `Cluster` is dropped, with the server log.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::wasm::wasm;
use common::{Cluster, check_contains, unique};
use serde_json::{Value, json};

/// How long a controller may take to converge on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);
/// `--timeout` of `kubectl rollout status` and `kubectl wait` (below the harness's 90 s
/// limit for one kubectl run).
const KUBECTL_WAIT: &str = "--timeout=80s";

// ---------------------------------------------------------------- helpers

fn cluster() -> Cluster {
    Cluster::start_with(&["--simulated-nodes", "3"])
}

/// Creates a namespace with a unique name.
fn namespace(c: &Cluster, prefix: &str) -> String {
    let ns = unique(prefix);
    c.kubectl_ok(&["create", "namespace", &ns]);
    ns
}

/// `kubectl get ARGS -o json`, parsed.
fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = c.kubectl_ok(&all);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("kubectl {all:?} printed invalid JSON ({e}):\n{out}"))
}

/// `kubectl get ARGS -o json`, parsed; `None` when kubectl fails (e.g. not found).
fn try_get_json(c: &Cluster, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = c.kubectl(&all);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `kubectl apply -n NS -f -` of a JSON manifest.
fn apply(c: &Cluster, ns: &str, manifest: &Value) -> String {
    c.kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], &manifest.to_string())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn i64_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn items(list: &Value) -> Vec<Value> {
    list.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn is_deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Field `field` (e.g. `/status`) of condition `kind` of an object (`""` when it has none).
fn condition_field<'a>(o: &'a Value, kind: &str, field: &str) -> &'a str {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| str_at(c, "/type") == kind))
        .map(|c| str_at(c, field))
        .unwrap_or("")
}

/// The status of condition `kind` of an object (`""` when it has none).
fn condition<'a>(o: &'a Value, kind: &str) -> &'a str {
    condition_field(o, kind, "/status")
}

/// The reason of condition `kind` of an object (`""` when it has none).
fn condition_reason<'a>(o: &'a Value, kind: &str) -> &'a str {
    condition_field(o, kind, "/reason")
}

/// The revisions `kubectl rollout history` lists for Deployment `name`.
fn revisions(c: &Cluster, ns: &str, name: &str) -> Vec<i64> {
    let out = c.kubectl_ok(&[
        "rollout",
        "history",
        &format!("deployment/{name}"),
        "-n",
        ns,
    ]);
    out.lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    condition(pod, "Ready") == "True"
}

/// The pods of `ns` that `selector` selects (all pods with `""`).
fn pods(c: &Cluster, ns: &str, selector: &str) -> Vec<Value> {
    let mut args = vec!["pods", "-n", ns];
    if !selector.is_empty() {
        args.extend_from_slice(&["-l", selector]);
    }
    items(&get_json(c, &args))
}

/// Those of [`pods`] that are not being deleted.
fn live_pods(c: &Cluster, ns: &str, selector: &str) -> Vec<Value> {
    pods(c, ns, selector)
        .into_iter()
        .filter(|p| !is_deleting(p))
        .collect()
}

fn names(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| str_at(o, "/metadata/name").to_string())
        .collect()
}

fn image_of(pod_or_template: &Value) -> String {
    let spec = pod_or_template
        .pointer("/spec/template/spec")
        .or_else(|| pod_or_template.get("spec"))
        .cloned()
        .unwrap_or(Value::Null);
    str_at(&spec, "/containers/0/image").to_string()
}

/// Waits until the `live_pods` of `selector` are exactly `n`, all Running and Ready (and
/// satisfy `also`); returns them.
fn wait_ready_pods(
    c: &Cluster,
    ns: &str,
    selector: &str,
    n: usize,
    also: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    c.eventually(
        CONVERGE,
        &format!("{n} ready pods {selector} in {ns}"),
        || {
            let ps = live_pods(c, ns, selector);
            (ps.len() == n
                && ps
                    .iter()
                    .all(|p| str_at(p, "/status/phase") == "Running" && is_ready(p) && also(p)))
            .then_some(ps)
        },
    )
}

/// A Deployment of `replicas` pods `app=NAME` running `image`, rolling with
/// `maxSurge: 1, maxUnavailable: 0`; its container serves port 8080 named `http`.
fn deployment(name: &str, replicas: u32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app",
                    "image": image,
                    "ports": [{"name": "http", "containerPort": 8080}],
                }]},
            },
        },
    })
}

/// `kubectl rollout status` of `what` (e.g. `deployment/web`) succeeds; returns its output.
fn rollout_status(c: &Cluster, ns: &str, what: &str) -> String {
    c.kubectl_ok(&["rollout", "status", what, "-n", ns, KUBECTL_WAIT])
}

/// Status counters of a Deployment (absent ones are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct DeployStatus {
    generation: i64,
    observed: i64,
    replicas: i64,
    updated: i64,
    ready: i64,
    available: i64,
}

impl DeployStatus {
    fn of(d: &Value) -> Self {
        DeployStatus {
            generation: i64_at(d, "/metadata/generation"),
            observed: i64_at(d, "/status/observedGeneration"),
            replicas: i64_at(d, "/status/replicas"),
            updated: i64_at(d, "/status/updatedReplicas"),
            ready: i64_at(d, "/status/readyReplicas"),
            available: i64_at(d, "/status/availableReplicas"),
        }
    }

    /// Rolled out to `n` replicas: every replica updated, ready and available.
    fn complete(&self, n: i64) -> bool {
        self.observed >= self.generation
            && self.replicas == n
            && self.updated == n
            && self.ready == n
            && self.available == n
    }
}

/// The jsonpath template of [`DeployWatch`]'s lines.
const DEPLOY_WATCH_TEMPLATE: &str = "jsonpath={.type} {.object.metadata.generation} {.object.status.observedGeneration} {.object.status.replicas} {.object.status.updatedReplicas} {.object.status.readyReplicas} {.object.status.availableReplicas}{\"\\n\"}";

/// `kubectl get deployment -w` printing the status counters of every change.
struct DeployWatch {
    w: common::Spawned,
}

impl DeployWatch {
    /// Starts watching and waits for the first line (the current state), so that every
    /// later change is seen.
    fn start(c: &Cluster, ns: &str, name: &str) -> Self {
        let mut w = c.kubectl_spawn(&[
            "get",
            "deployment",
            name,
            "-n",
            ns,
            "-w",
            "--output-watch-events",
            "-o",
            DEPLOY_WATCH_TEMPLATE,
        ]);
        w.wait_line(CONVERGE, "the deployment's current state", |l| {
            l.starts_with("ADDED")
        });
        DeployWatch { w }
    }

    fn parse(line: &str) -> Option<DeployStatus> {
        let mut f = line.split(' ');
        f.next()?;
        let mut n = || f.next().map(|s| s.trim().parse::<i64>().unwrap_or(0));
        Some(DeployStatus {
            generation: n()?,
            observed: n()?,
            replicas: n()?,
            updated: n()?,
            ready: n()?,
            available: n()?,
        })
    }

    /// Waits for a state satisfying `pred`.
    fn wait(&mut self, what: &str, pred: impl Fn(&DeployStatus) -> bool) {
        self.w
            .wait_line(CONVERGE, what, |l| Self::parse(l).is_some_and(|s| pred(&s)));
    }

    /// Every state printed so far.
    fn states(&mut self) -> Vec<DeployStatus> {
        self.w
            .output()
            .iter()
            .filter_map(|l| Self::parse(l))
            .collect()
    }
}

/// The ReplicaSets of `ns` selected by `selector`.
fn replicasets(c: &Cluster, ns: &str, selector: &str) -> Vec<Value> {
    items(&get_json(c, &["replicasets", "-n", ns, "-l", selector]))
}

/// `kubectl replace --raw /tugboat/v1/blobs -f FILE` of `bytes`; returns the digest.
fn upload_blob(c: &Cluster, file_name: &str, bytes: &[u8]) -> String {
    let path = c.data_dir().join(file_name);
    std::fs::write(&path, bytes).expect("writing the component to upload");
    let out = c.kubectl_ok(&[
        "replace",
        "--raw",
        "/tugboat/v1/blobs",
        "-f",
        path.to_str().expect("utf-8 path"),
    ]);
    let v: Value = serde_json::from_str(&out).expect("the blob upload answers JSON");
    let digest = v["digest"].as_str().expect("digest").to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    digest
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `component` with a top-level custom section appended: the same program, another digest.
fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0);
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// The Plugin `name`, parsed (`None` while it does not exist).
fn plugin(c: &Cluster, name: &str) -> Option<Value> {
    try_get_json(c, &["plugin", name])
}

/// Replaces Plugin `name`'s spec by `spec` (a Plugin of a built-in's name replaces it).
fn replace_plugin(c: &Cluster, name: &str, spec: &Value) {
    let object = json!({
        "apiVersion": "tugboat.dev/v1alpha1",
        "kind": "Plugin",
        "metadata": {"name": name},
        "spec": spec,
    });
    c.kubectl_stdin_ok(&["replace", "-f", "-"], &object.to_string());
}

/// Waits until Plugin `name` runs generation ≥ `generation` and `pred` holds of it.
/// Panics after [`CONVERGE`], showing the Plugin as it last was.
fn wait_plugin(c: &Cluster, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let p = plugin(c, name);
        if let Some(p) = &p
            && i64_at(p, "/status/observedGeneration") >= i64_at(p, "/metadata/generation")
            && pred(p)
        {
            return p.clone();
        }
        if std::time::Instant::now() > deadline {
            let shown = p.map_or("(none)".to_string(), |p| {
                serde_json::to_string_pretty(&json!({"spec": {"source": p["spec"]["source"]}, "generation": p["metadata"]["generation"], "status": p["status"]})).unwrap_or_default()
            });
            panic!(
                "timed out after {CONVERGE:?} waiting for plugin {name}: {what}; it is:\n{shown}"
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One `ScalingReplicaSet` event of the Deployment controller: "Scaled up replica set X to
/// N from M" (`from` is `None` when a ReplicaSet is created: "Scaled up replica set X to N").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scaling {
    up: bool,
    from: Option<i64>,
    to: i64,
}

/// The Deployment controller's scaling events in `ns`, per ReplicaSet.
fn scaling_events(c: &Cluster, ns: &str) -> BTreeMap<String, Vec<Scaling>> {
    let mut out: BTreeMap<String, Vec<Scaling>> = BTreeMap::new();
    for e in items(&get_json(
        c,
        &[
            "events",
            "-n",
            ns,
            "--field-selector",
            "reason=ScalingReplicaSet",
        ],
    )) {
        let msg = str_at(&e, "/message");
        let words: Vec<&str> = msg.split_whitespace().collect();
        let (Some(dir), Some(rs), Some(to)) = (words.get(1), words.get(4), words.get(6)) else {
            continue;
        };
        out.entry(rs.to_string()).or_default().push(Scaling {
            up: *dir == "up",
            from: words.get(8).and_then(|f| f.parse().ok()),
            to: to.parse().unwrap_or(-1),
        });
    }
    out
}

/// Whether the scalings of one ReplicaSet in one direction chain from `start` to `end`,
/// each starting where the one before ended (a lost step breaks the chain).
fn chains(steps: &[Scaling], up: bool, start: i64, end: i64) -> bool {
    let mut steps: Vec<Scaling> = steps.iter().filter(|s| s.up == up).copied().collect();
    steps.sort_by_key(|s| if up { s.to } else { -s.to });
    let mut at = start;
    for s in steps {
        if s.from.unwrap_or(0) != at {
            return false;
        }
        at = s.to;
    }
    at == end
}

// ---------------------------------------------------------------- Deployments

#[test]
fn a_deployment_becomes_available_rolls_out_rolls_back_and_scales() {
    let c = cluster();
    let ns = namespace(&c, "deploy");
    apply(&c, &ns, &deployment("web", 3, "nginx:1.25"));

    // Available with 3 replicas, one pod per... wherever the nodes put them.
    let out = rollout_status(&c, &ns, "deployment/web");
    check_contains(&out, "deployment \"web\" successfully rolled out");
    c.kubectl_ok(&[
        "wait",
        "-n",
        &ns,
        "--for=condition=Available",
        "deployment/web",
        KUBECTL_WAIT,
    ]);
    let d = get_json(&c, &["deployment", "web", "-n", &ns]);
    check!(
        DeployStatus::of(&d).complete(3),
        "{:?}",
        DeployStatus::of(&d)
    );
    check_eq!(condition(&d, "Available"), "True");
    check_eq!(
        condition_reason(&d, "Available"),
        "MinimumReplicasAvailable"
    );
    check_eq!(condition(&d, "Progressing"), "True");
    check_eq!(
        condition_reason(&d, "Progressing"),
        "NewReplicaSetAvailable"
    );
    let first = wait_ready_pods(&c, &ns, "app=web", 3, |_| true);
    check!(
        first
            .iter()
            .all(|p| !str_at(p, "/spec/nodeName").is_empty()),
        "every pod is on a node"
    );

    // A rolling update with maxUnavailable 0: availability never drops below 3, and the
    // ReplicaSets never want more than 3 + maxSurge pods.
    let mut watch = DeployWatch::start(&c, &ns, "web");
    let mut rs_watch = c.kubectl_spawn(&[
        "get",
        "replicasets",
        "-l",
        "app=web",
        "-n",
        &ns,
        "-w",
        "-o",
        "jsonpath={.metadata.name} {.spec.replicas}{\"\\n\"}",
    ]);
    rs_watch.wait_line(CONVERGE, "the first ReplicaSet", |l| l.ends_with(" 3"));
    c.kubectl_ok(&[
        "set",
        "image",
        "deployment/web",
        "app=nginx:1.26",
        "-n",
        &ns,
    ]);
    let out = rollout_status(&c, &ns, "deployment/web");
    check_contains(&out, "deployment \"web\" successfully rolled out");
    let generation = i64_at(
        &get_json(&c, &["deployment", "web", "-n", &ns]),
        "/metadata/generation",
    );
    watch.wait("the rollout complete in the watch", |s| {
        s.generation == generation && s.complete(3)
    });
    let states = watch.states();
    check!(
        states.iter().all(|s| s.available >= 3),
        "available replicas dropped below 3 during a maxUnavailable=0 rollout: {states:?}"
    );
    // (`status.replicas` may briefly exceed replicas + maxSurge, in Kubernetes too: maxSurge
    // bounds the ReplicaSets' `spec.replicas`, while an old ReplicaSet's status may still
    // count a pod it is about to delete when the new one already counts its next pod.)
    check!(
        states.iter().any(|s| s.replicas > 3),
        "the rollout never surged (it should add one new pod before removing an old one): {states:?}"
    );
    drop(watch);
    rs_watch.wait_line(CONVERGE, "the old ReplicaSet scaled to 0", |l| {
        l.ends_with(" 0")
    });
    let mut wanted: BTreeMap<String, i64> = BTreeMap::new();
    let mut most = 0;
    for line in rs_watch.output() {
        if let Some((rs, n)) = line.split_once(' ') {
            wanted.insert(rs.to_string(), n.trim().parse().unwrap_or(0));
            most = most.max(wanted.values().sum::<i64>());
        }
    }
    check_eq!(
        most,
        4,
        "the most pods the ReplicaSets wanted at once (3 + maxSurge 1)"
    );
    drop(rs_watch);
    let pods_v2 = wait_ready_pods(&c, &ns, "app=web", 3, |p| image_of(p) == "nginx:1.26");
    check!(
        names(&pods_v2).is_disjoint(&names(&first)),
        "new pods replaced the old ones"
    );
    let rss = replicasets(&c, &ns, "app=web");
    check_eq!(rss.len(), 2, "the old and the new ReplicaSet");
    for rs in &rss {
        let want = if image_of(rs) == "nginx:1.26" { 3 } else { 0 };
        check_eq!(
            i64_at(rs, "/spec/replicas"),
            want,
            "{}",
            str_at(rs, "/metadata/name")
        );
    }
    check_eq!(
        revisions(&c, &ns, "web"),
        vec![1, 2],
        "`rollout history` lists both revisions"
    );

    // `rollout undo` goes back to the first template (its ReplicaSet is reused).
    let out = c.kubectl_ok(&["rollout", "undo", "deployment/web", "-n", &ns]);
    check_contains(&out, "rolled back");
    rollout_status(&c, &ns, "deployment/web");
    let d = get_json(&c, &["deployment", "web", "-n", &ns]);
    check_eq!(image_of(&d), "nginx:1.25");
    check_eq!(
        str_at(
            &d,
            "/metadata/annotations/deployment.kubernetes.io~1revision"
        ),
        "3"
    );
    wait_ready_pods(&c, &ns, "app=web", 3, |p| image_of(p) == "nginx:1.25");
    check_eq!(
        revisions(&c, &ns, "web"),
        vec![2, 3],
        "revision 1 became revision 3"
    );
    let rss = replicasets(&c, &ns, "app=web");
    check_eq!(rss.len(), 2, "undo reuses the first ReplicaSet");
    for rs in &rss {
        let want = if image_of(rs) == "nginx:1.25" { 3 } else { 0 };
        check_eq!(
            i64_at(rs, "/spec/replicas"),
            want,
            "{}",
            str_at(rs, "/metadata/name")
        );
    }

    // `kubectl scale` up and down.
    c.kubectl_ok(&["scale", "deployment/web", "--replicas=5", "-n", &ns]);
    wait_ready_pods(&c, &ns, "app=web", 5, |_| true);
    c.eventually(CONVERGE, "5 available replicas", || {
        DeployStatus::of(&get_json(&c, &["deployment", "web", "-n", &ns]))
            .complete(5)
            .then_some(())
    });
    c.kubectl_ok(&["scale", "deployment/web", "--replicas=2", "-n", &ns]);
    wait_ready_pods(&c, &ns, "app=web", 2, |_| true);
    c.eventually(CONVERGE, "2 replicas", || {
        DeployStatus::of(&get_json(&c, &["deployment", "web", "-n", &ns]))
            .complete(2)
            .then_some(())
    });
    let out = c.kubectl_ok(&["get", "deployment", "web", "-n", &ns]);
    check_contains(&out, "2/2");
}

#[test]
fn deleting_deployments_and_namespaces_cascades() {
    let c = cluster();
    let ns = namespace(&c, "del");

    // Background deletion (kubectl's default): the ReplicaSets and Pods go too.
    apply(&c, &ns, &deployment("gone", 3, "nginx"));
    apply(&c, &ns, &deployment("kept", 2, "nginx"));
    wait_ready_pods(&c, &ns, "app=gone", 3, |_| true);
    let kept_pods = names(&wait_ready_pods(&c, &ns, "app=kept", 2, |_| true));
    check_eq!(replicasets(&c, &ns, "app=gone").len(), 1);
    c.kubectl_ok(&["delete", "deployment", "gone", "-n", &ns]);
    c.eventually(
        CONVERGE,
        "the ReplicaSets and Pods of a deleted Deployment gone",
        || {
            (replicasets(&c, &ns, "app=gone").is_empty() && pods(&c, &ns, "app=gone").is_empty())
                .then_some(())
        },
    );

    // Foreground: the Deployment is gone only once its ReplicaSets and Pods are.
    apply(&c, &ns, &deployment("fg", 2, "nginx"));
    wait_ready_pods(&c, &ns, "app=fg", 2, |_| true);
    c.kubectl_ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "-n",
        &ns,
        KUBECTL_WAIT,
    ]);
    check_eq!(
        names(&replicasets(&c, &ns, "app=fg")),
        BTreeSet::new(),
        "ReplicaSets left after a foreground deletion returned"
    );
    check_eq!(
        names(&pods(&c, &ns, "app=fg")),
        BTreeSet::new(),
        "Pods left after a foreground deletion returned"
    );

    // `--cascade=orphan`: the ReplicaSet loses its owner, the Pods stay.
    let rs = replicasets(&c, &ns, "app=kept");
    check_eq!(rs.len(), 1);
    let rs_name = str_at(&rs[0], "/metadata/name").to_string();
    c.kubectl_ok(&[
        "delete",
        "deployment",
        "kept",
        "--cascade=orphan",
        "-n",
        &ns,
    ]);
    let err = c.kubectl_err(&["get", "deployment", "kept", "-n", &ns]);
    check_contains(&err, "not found");
    let rs = get_json(&c, &["replicaset", &rs_name, "-n", &ns]);
    check!(
        !is_deleting(&rs),
        "the orphaned ReplicaSet is not being deleted"
    );
    check!(
        rs.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_none_or(|r| r.is_empty()),
        "the orphaned ReplicaSet has no owner: {}",
        rs["metadata"]
    );
    // The garbage collector had its chance (the orphan finalizer ran); the pods are there.
    let after = live_pods(&c, &ns, "app=kept");
    check_eq!(names(&after), kept_pods, "orphaned pods are kept");
    check!(after.iter().all(is_ready));
    // ...and still owned by their ReplicaSet, which keeps them.
    let still = names(&wait_ready_pods(&c, &ns, "app=kept", 2, |_| true));
    check_eq!(still, kept_pods);

    // Deleting the namespace empties it (every kind the controllers made, and more), then
    // removes it.
    let doomed = namespace(&c, "doomed");
    apply(&c, &doomed, &deployment("app", 2, "nginx"));
    c.kubectl_ok(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=b",
        "-n",
        &doomed,
    ]);
    c.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "app",
        "--tcp=80:8080",
        "-n",
        &doomed,
    ]);
    wait_ready_pods(&c, &doomed, "app=app", 2, |_| true);
    c.kubectl_ok(&["delete", "namespace", &doomed, KUBECTL_WAIT]);
    let err = c.kubectl_err(&["get", "namespace", &doomed]);
    check_contains(&err, "not found");
    for kind in [
        "deployments",
        "replicasets",
        "pods",
        "services",
        "configmaps",
        "endpoints",
    ] {
        let out = c.kubectl_ok(&["get", kind, "-n", &doomed, "-o", "name"]);
        check_eq!(out.trim(), "", "{kind} left in the deleted namespace");
    }
}

// ---------------------------------------------------------------- Services

/// The IPs of an Endpoints' `addresses` and `notReadyAddresses`.
fn endpoint_ips(ep: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut ready = BTreeSet::new();
    let mut not_ready = BTreeSet::new();
    for s in ep
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (field, set) in [
            ("addresses", &mut ready),
            ("notReadyAddresses", &mut not_ready),
        ] {
            for a in s.get(field).and_then(Value::as_array).into_iter().flatten() {
                set.insert(str_at(a, "/ip").to_string());
            }
        }
    }
    (ready, not_ready)
}

/// The endpoints of a Service's EndpointSlices: address → ready.
fn slice_endpoints(c: &Cluster, ns: &str, service: &str) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    let selector = format!("kubernetes.io/service-name={service}");
    for s in items(&get_json(c, &["endpointslices", "-n", ns, "-l", &selector])) {
        for e in s
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ready = e.pointer("/conditions/ready").and_then(Value::as_bool) == Some(true);
            for a in e
                .get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.insert(a.as_str().unwrap_or("").to_string(), ready);
            }
        }
    }
    out
}

fn set_pod_ready(c: &Cluster, ns: &str, pod: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": status},
        {"type": "ContainersReady", "status": status},
    ]}});
    c.kubectl_ok(&[
        "patch",
        "pod",
        pod,
        "-n",
        ns,
        "--subresource=status",
        "--type=strategic",
        "-p",
        &patch.to_string(),
    ]);
}

#[test]
fn a_services_endpoints_follow_pods_becoming_ready_and_not_ready() {
    let c = cluster();
    let ns = namespace(&c, "svc");
    apply(&c, &ns, &deployment("echo", 2, "echo:1"));
    apply(
        &c,
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
            "spec": {"selector": {"app": "echo"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
        }),
    );
    let ps = wait_ready_pods(&c, &ns, "app=echo", 2, |_| true);
    let ip = |p: &Value| str_at(p, "/status/podIP").to_string();
    let all: BTreeSet<String> = ps.iter().map(ip).collect();
    check_eq!(all.len(), 2, "two pods, two IPs: {all:?}");

    let wait_endpoints = |ready: &BTreeSet<String>, not_ready: &BTreeSet<String>, what: &str| {
        c.eventually(CONVERGE, what, || {
            let ep = try_get_json(&c, &["endpoints", "echo", "-n", &ns])?;
            let slices = slice_endpoints(&c, &ns, "echo");
            let want_slices: BTreeMap<String, bool> = ready
                .iter()
                .map(|a| (a.clone(), true))
                .chain(not_ready.iter().map(|a| (a.clone(), false)))
                .collect();
            (endpoint_ips(&ep) == (ready.clone(), not_ready.clone()) && slices == want_slices)
                .then_some(ep)
        })
    };
    let ep = wait_endpoints(
        &all,
        &BTreeSet::new(),
        "Endpoints and EndpointSlices with both pods ready",
    );
    // The named target port resolved to the container port.
    check_eq!(i64_at(&ep, "/subsets/0/ports/0/port"), 8080);
    check_eq!(str_at(&ep, "/subsets/0/ports/0/name"), "web");
    // Each address points at its pod and node.
    for p in &ps {
        let address = ep["subsets"][0]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| str_at(a, "/ip") == ip(p));
        let Some(address) = address else {
            common::fail(format!("no address for pod {}: {ep}", ip(p)));
            continue;
        };
        check_eq!(str_at(address, "/targetRef/kind"), "Pod");
        check_eq!(
            str_at(address, "/targetRef/name"),
            str_at(p, "/metadata/name")
        );
        check_eq!(str_at(address, "/nodeName"), str_at(p, "/spec/nodeName"));
    }
    let slices = get_json(
        &c,
        &[
            "endpointslices",
            "-n",
            &ns,
            "-l",
            "kubernetes.io/service-name=echo",
        ],
    );
    check_eq!(str_at(&slices, "/items/0/addressType"), "IPv4");
    check_eq!(i64_at(&slices, "/items/0/ports/0/port"), 8080);

    // One pod stops being ready: its address moves to notReadyAddresses.
    let victim = &ps[0];
    let victim_name = str_at(victim, "/metadata/name").to_string();
    set_pod_ready(&c, &ns, &victim_name, false);
    let not_ready: BTreeSet<String> = [ip(victim)].into();
    let ready: BTreeSet<String> = all.difference(&not_ready).cloned().collect();
    wait_endpoints(&ready, &not_ready, "the not-ready pod in notReadyAddresses");
    // The Service still routes to the ready one: `kubectl describe` shows it.
    let out = c.kubectl_ok(&["describe", "service", "echo", "-n", &ns]);
    check_contains(&out, &format!("{}:8080", ready.iter().next().unwrap()));

    // Ready again: back in addresses.
    set_pod_ready(&c, &ns, &victim_name, true);
    wait_endpoints(&all, &BTreeSet::new(), "the pod back in addresses");

    // A new pod joins the endpoints, a deleted one leaves them.
    c.kubectl_ok(&["scale", "deployment/echo", "--replicas=3", "-n", &ns]);
    let ps = wait_ready_pods(&c, &ns, "app=echo", 3, |_| true);
    let three: BTreeSet<String> = ps.iter().map(ip).collect();
    wait_endpoints(&three, &BTreeSet::new(), "three addresses after scaling up");
    c.kubectl_ok(&["delete", "pod", &victim_name, "-n", &ns]);
    let ps = c.eventually(CONVERGE, "the deleted pod replaced", || {
        let ps = live_pods(&c, &ns, "app=echo");
        (ps.len() == 3 && ps.iter().all(is_ready) && !names(&ps).contains(&victim_name))
            .then_some(ps)
    });
    let now: BTreeSet<String> = ps.iter().map(ip).collect();
    wait_endpoints(
        &now,
        &BTreeSet::new(),
        "the replacement's address instead of the deleted pod's",
    );
}

// ---------------------------------------------------------------- Jobs and CronJobs

fn job(name: &str, completions: u32, parallelism: u32, annotations: Value, backoff: u32) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {
            "completions": completions, "parallelism": parallelism, "backoffLimit": backoff,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox", "command": ["true"]}]},
            },
        },
    })
}

fn timestamp(s: &str) -> jiff::Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("not an RFC 3339 timestamp {s:?}: {e}"))
}

#[test]
fn a_job_runs_to_completion_and_a_cronjob_fires_on_schedule() {
    let c = cluster();
    let ns = namespace(&c, "batch");

    // The CronJob first: its first firing is at the next minute boundary (up to a minute
    // away), so the Jobs below run while it waits.
    apply(
        &c,
        &ns,
        &json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {
                "schedule": "* * * * *",
                "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{"name": "tick", "image": "busybox", "command": ["date"]}],
                }}}},
            },
        }),
    );
    let cj = get_json(&c, &["cronjob", "tick", "-n", &ns]);
    let created = timestamp(str_at(&cj, "/metadata/creationTimestamp"));

    // A Job of 3 completions, 2 at a time, created suspended: no pods yet.
    let mut work = job("work", 3, 2, json!({}), 6);
    work["spec"]["suspend"] = json!(true);
    apply(&c, &ns, &work);
    let j = c.eventually(CONVERGE, "the Job Suspended", || {
        let j = get_json(&c, &["job", "work", "-n", &ns]);
        (condition(&j, "Suspended") == "True").then_some(j)
    });
    check!(j.pointer("/status/startTime").is_none(), "{}", j["status"]);
    check_eq!(
        pods(&c, &ns, "job-name=work").len(),
        0,
        "pods of a suspended Job"
    );
    // Resumed, it runs to completion, never more than 2 pods at once.
    let mut watch = c.kubectl_spawn(&[
        "get",
        "job",
        "work",
        "-n",
        &ns,
        "-w",
        "-o",
        "jsonpath=active={.status.active} succeeded={.status.succeeded}{\"\\n\"}",
    ]);
    watch.wait_line(CONVERGE, "the Job's current state", |l| {
        l.starts_with("active=")
    });
    c.kubectl_ok(&[
        "patch",
        "job",
        "work",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    c.kubectl_ok(&[
        "wait",
        "-n",
        &ns,
        "--for=condition=Complete",
        "job/work",
        KUBECTL_WAIT,
    ]);
    watch.wait_line(CONVERGE, "3 succeeded in the watch", |l| {
        l.ends_with("succeeded=3")
    });
    let actives: Vec<i64> = watch
        .output()
        .iter()
        .filter_map(|l| {
            let a = l.strip_prefix("active=")?.split(' ').next()?;
            Some(a.parse().unwrap_or(0))
        })
        .collect();
    check!(
        actives.iter().all(|a| *a <= 2),
        "more than parallelism=2 pods active: {actives:?}"
    );
    check!(
        actives.contains(&2),
        "never 2 pods at once with parallelism=2: {actives:?}"
    );
    drop(watch);
    let j = get_json(&c, &["job", "work", "-n", &ns]);
    check_eq!(i64_at(&j, "/status/succeeded"), 3);
    check_eq!(condition(&j, "SuccessCriteriaMet"), "True");
    check_eq!(condition(&j, "Complete"), "True");
    check_eq!(condition(&j, "Suspended"), "False");
    check_eq!(i64_at(&j, "/status/failed"), 0);
    check!(
        j.pointer("/status/completionTime").is_some(),
        "{}",
        j["status"]
    );
    let done = pods(&c, &ns, "job-name=work");
    check_eq!(done.len(), 3, "one pod per completion");
    check!(
        done.iter()
            .all(|p| str_at(p, "/status/phase") == "Succeeded"),
        "every pod of the Job Succeeded"
    );
    let out = c.kubectl_ok(&["get", "job", "work", "-n", &ns]);
    check_contains(&out, "3/3");

    // A Job whose pod fails, with no retries allowed, fails.
    apply(
        &c,
        &ns,
        &job(
            "broken",
            1,
            1,
            json!({"tugboat.dev/simulated-exit-code": "1"}),
            0,
        ),
    );
    c.kubectl_ok(&[
        "wait",
        "-n",
        &ns,
        "--for=condition=Failed",
        "job/broken",
        KUBECTL_WAIT,
    ]);
    let j = get_json(&c, &["job", "broken", "-n", &ns]);
    check_eq!(i64_at(&j, "/status/failed"), 1);
    check_contains(
        &j["status"]["conditions"].to_string(),
        "BackoffLimitExceeded",
    );

    // The CronJob fires at the first minute boundary after its creation.
    let fired = c.eventually(Duration::from_secs(150), "the CronJob's first Job", || {
        items(&get_json(&c, &["jobs", "-n", &ns]))
            .into_iter()
            .find(|j| {
                j.pointer("/metadata/ownerReferences/0/kind")
                    .and_then(Value::as_str)
                    == Some("CronJob")
            })
    });
    let scheduled = str_at(
        &fired,
        "/metadata/annotations/batch.kubernetes.io~1cronjob-scheduled-timestamp",
    );
    let scheduled_at = timestamp(scheduled);
    let secs = scheduled_at.as_second();
    check_eq!(secs % 60, 0, "scheduled on a minute boundary: {scheduled}");
    check!(
        scheduled_at > created && scheduled_at.as_second() <= created.as_second() + 60,
        "the first schedule time after the creation ({created}): {scheduled}"
    );
    check_eq!(
        str_at(&fired, "/metadata/name"),
        format!("tick-{}", secs / 60),
        "named after the scheduled minute"
    );
    let job_created = timestamp(str_at(&fired, "/metadata/creationTimestamp"));
    check!(
        job_created.as_second() - secs <= 15,
        "created on time: scheduled {scheduled}, created {job_created}"
    );
    let fired_name = str_at(&fired, "/metadata/name").to_string();
    c.kubectl_ok(&[
        "wait",
        "-n",
        &ns,
        "--for=condition=Complete",
        &format!("job/{fired_name}"),
        KUBECTL_WAIT,
    ]);
    let cj = c.eventually(CONVERGE, "the CronJob to see its Job complete", || {
        let cj = get_json(&c, &["cronjob", "tick", "-n", &ns]);
        (cj.pointer("/status/lastSuccessfulTime").is_some()
            && cj
                .pointer("/status/active")
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty()))
        .then_some(cj)
    });
    check_eq!(str_at(&cj, "/status/lastScheduleTime"), scheduled);
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "involvedObject.name=tick",
    ]);
    check_contains(&events, &format!("Created job {fired_name}"));
}

// ---------------------------------------------------------------- DaemonSets

#[test]
fn a_daemonset_follows_nodes_joining() {
    let c = cluster();
    let ns = namespace(&c, "ds");
    apply(
        &c,
        &ns,
        &json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
                },
            },
        }),
    );
    let nodes_of = |ps: &[Value]| -> BTreeSet<String> {
        ps.iter()
            .map(|p| str_at(p, "/spec/nodeName").to_string())
            .collect()
    };
    let ps = wait_ready_pods(&c, &ns, "app=agent", 3, |_| true);
    check_eq!(
        nodes_of(&ps),
        ["sim-0", "sim-1", "sim-2"].map(String::from).into(),
        "one pod per node"
    );
    rollout_status(&c, &ns, "daemonset/agent");

    // A node joins: the simulated agent adopts it, it becomes Ready, and gets its pod.
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "sim-joined", "labels": {
                "tugboat.dev/simulated": "true", "kubernetes.io/hostname": "sim-joined",
            }},
        })
        .to_string(),
    );
    c.eventually(CONVERGE, "the joined node Ready", || {
        let n = get_json(&c, &["node", "sim-joined"]);
        (condition(&n, "Ready") == "True").then_some(())
    });
    let ps = wait_ready_pods(&c, &ns, "app=agent", 4, |_| true);
    check_eq!(
        nodes_of(&ps),
        ["sim-0", "sim-1", "sim-2", "sim-joined"]
            .map(String::from)
            .into(),
        "the joined node got a pod"
    );
    // A daemon pod is pinned to its node by affinity and tolerates the node's troubles.
    let joined = ps
        .iter()
        .find(|p| str_at(p, "/spec/nodeName") == "sim-joined")
        .expect("the pod on the joined node");
    let affinity = joined["spec"]["affinity"]["nodeAffinity"].to_string();
    check_contains(&affinity, "metadata.name");
    check_contains(&affinity, "sim-joined");
    let tolerations = joined["spec"]["tolerations"].to_string();
    check_contains(&tolerations, "node.kubernetes.io/unreachable");
    check_contains(&tolerations, "node.kubernetes.io/not-ready");
    c.eventually(CONVERGE, "the DaemonSet's status counting 4 nodes", || {
        let ds = get_json(&c, &["daemonset", "agent", "-n", &ns]);
        (i64_at(&ds, "/status/desiredNumberScheduled") == 4
            && i64_at(&ds, "/status/currentNumberScheduled") == 4
            && i64_at(&ds, "/status/numberReady") == 4
            && i64_at(&ds, "/status/numberAvailable") == 4
            && i64_at(&ds, "/status/updatedNumberScheduled") == 4)
            .then_some(())
    });
    rollout_status(&c, &ns, "daemonset/agent");

    // The node leaves: its pod goes, the DaemonSet wants 3 again.
    c.kubectl_ok(&["delete", "node", "sim-joined"]);
    c.eventually(CONVERGE, "the DaemonSet back to 3 nodes", || {
        let ds = get_json(&c, &["daemonset", "agent", "-n", &ns]);
        let live = live_pods(&c, &ns, "app=agent");
        (i64_at(&ds, "/status/desiredNumberScheduled") == 3
            && i64_at(&ds, "/status/numberReady") == 3
            && live.len() == 3
            && !nodes_of(&live).contains("sim-joined"))
        .then_some(())
    });
}

// ---------------------------------------------------------------- StatefulSets

/// One line of the pod watch of the StatefulSet test: event, pod, ready, deleting.
#[derive(Debug, Clone)]
struct PodEvent {
    kind: String,
    name: String,
    ready: bool,
    deleting: bool,
}

fn pod_events(lines: &[String], prefix: &str) -> Vec<PodEvent> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 4 && f[1].starts_with(prefix)).then(|| PodEvent {
                kind: f[0].to_string(),
                name: f[1].to_string(),
                ready: f[2] == "True",
                deleting: !f[3].is_empty(),
            })
        })
        .collect()
}

/// Checks that the pods `names` were created in this order, each only once every pod before
/// it was Ready (the `OrderedReady` guarantee).
fn check_created_in_order(events: &[PodEvent], names: &[&str]) {
    let added: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "ADDED")
        .map(|e| e.name.as_str())
        .filter(|n| names.contains(n))
        .collect();
    check_eq!(added, names.to_vec(), "creation order; events: {events:?}");
    for (i, name) in names.iter().enumerate().skip(1) {
        let Some(at) = events
            .iter()
            .position(|e| e.kind == "ADDED" && e.name == *name)
        else {
            continue;
        };
        let prev = names[i - 1];
        let ready_before = events[..at].iter().any(|e| e.name == prev && e.ready);
        check!(
            ready_before,
            "{name} was created before {prev} was Ready; events: {events:?}"
        );
    }
}

/// Checks that the pods `names` were deleted in this order, each only once the one before
/// it was gone.
fn check_deleted_in_order(events: &[PodEvent], names: &[&str]) {
    let deleted: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "DELETED")
        .map(|e| e.name.as_str())
        .filter(|n| names.contains(n))
        .collect();
    check_eq!(
        deleted,
        names.to_vec(),
        "deletion order; events: {events:?}"
    );
    for (i, name) in names.iter().enumerate().skip(1) {
        let prev = names[i - 1];
        let first_touch = events
            .iter()
            .position(|e| e.name == *name && (e.deleting || e.kind == "DELETED"));
        let prev_gone = events
            .iter()
            .position(|e| e.name == prev && e.kind == "DELETED");
        check!(
            matches!((first_touch, prev_gone), (Some(a), Some(b)) if a > b),
            "{name} was deleted before {prev} was gone; events: {events:?}"
        );
    }
}

#[test]
fn a_statefulset_scales_in_order() {
    let c = cluster();
    let ns = namespace(&c, "sts");
    // The watch must be running before the first pod exists: a sentinel pod shows it is.
    let mut w = c.kubectl_spawn(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-w",
        "--output-watch-events",
        "-o",
        "jsonpath={.type}|{.object.metadata.name}|{.object.status.conditions[?(@.type==\"Ready\")].status}|{.object.metadata.deletionTimestamp}{\"\\n\"}",
    ]);
    c.kubectl_ok(&["run", "sentinel", "--image=pause", "-n", &ns]);
    w.wait_line(CONVERGE, "the sentinel pod", |l| l.contains("|sentinel|"));

    apply(
        &c,
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
        }),
    );
    apply(
        &c,
        &ns,
        &json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db", "replicas": 3,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "postgres:16"}]},
                },
            },
        }),
    );
    rollout_status(&c, &ns, "statefulset/db");
    let ps = wait_ready_pods(&c, &ns, "app=db", 3, |_| true);
    check_eq!(
        names(&ps),
        ["db-0", "db-1", "db-2"].map(String::from).into()
    );
    w.wait_line(CONVERGE, "db-2 ready", |l| {
        l.starts_with("MODIFIED|db-2|True|")
    });
    check_created_in_order(&pod_events(&w.output(), "db-"), &["db-0", "db-1", "db-2"]);
    // Each pod has its stable identity.
    let p = get_json(&c, &["pod", "db-1", "-n", &ns]);
    check_eq!(str_at(&p, "/spec/hostname"), "db-1");
    check_eq!(str_at(&p, "/spec/subdomain"), "db");
    check_eq!(
        str_at(&p, "/metadata/labels/statefulset.kubernetes.io~1pod-name"),
        "db-1"
    );

    // Up to 5: db-3, then db-4.
    c.kubectl_ok(&["scale", "statefulset/db", "--replicas=5", "-n", &ns]);
    wait_ready_pods(&c, &ns, "app=db", 5, |_| true);
    w.wait_line(CONVERGE, "db-4 ready", |l| {
        l.starts_with("MODIFIED|db-4|True|")
    });
    check_created_in_order(
        &pod_events(&w.output(), "db-"),
        &["db-0", "db-1", "db-2", "db-3", "db-4"],
    );

    // Down to 2: db-4, db-3, db-2, each only once the one above is gone.
    c.kubectl_ok(&["scale", "statefulset/db", "--replicas=2", "-n", &ns]);
    let ps = wait_ready_pods(&c, &ns, "app=db", 2, |_| true);
    check_eq!(names(&ps), ["db-0", "db-1"].map(String::from).into());
    c.eventually(CONVERGE, "db-2..4 gone", || {
        (pods(&c, &ns, "app=db").len() == 2).then_some(())
    });
    w.wait_line(CONVERGE, "db-2 deleted", |l| l.starts_with("DELETED|db-2|"));
    check_deleted_in_order(&pod_events(&w.output(), "db-"), &["db-4", "db-3", "db-2"]);
    c.eventually(CONVERGE, "the StatefulSet's status at 2", || {
        let s = get_json(&c, &["statefulset", "db", "-n", &ns]);
        (i64_at(&s, "/status/replicas") == 2
            && i64_at(&s, "/status/readyReplicas") == 2
            && i64_at(&s, "/status/availableReplicas") == 2)
            .then_some(())
    });
}

// ---------------------------------------------------------------- node lifecycle

#[test]
fn a_node_that_stops_heartbeating_is_marked_not_ready_and_its_pods_are_replaced_elsewhere() {
    let c = cluster();
    // A node is unhealthy after 20 s without a heartbeat (the simulated kubelets renew
    // every 10 s) instead of 40: the built-in node-lifecycle plugin replaced by one of the
    // same name with a shorter grace period.
    let builtin = plugin(&c, "node-lifecycle").expect("the built-in node-lifecycle plugin");
    let mut spec = builtin["spec"].clone();
    spec["config"]["nodeMonitorGracePeriodSeconds"] = json!(20);
    spec["config"]["nodeMonitorPeriodSeconds"] = json!(2);
    replace_plugin(&c, "node-lifecycle", &spec);
    let p = wait_plugin(
        &c,
        "node-lifecycle",
        "Ready with the short grace period",
        |p| str_at(p, "/status/phase") == "Ready",
    );
    check_eq!(str_at(&p, "/spec/source/builtin"), "node-lifecycle");
    check!(p.pointer("/status/message").is_none(), "{}", p["status"]);

    let ns = namespace(&c, "nodes");
    let mut d = deployment("svc", 3, "nginx");
    // Evicted 2 s after the node turns unreachable (default-tolerations would give 300 s).
    d["spec"]["template"]["spec"]["tolerations"] = json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
    ]);
    apply(&c, &ns, &d);
    let before = wait_ready_pods(&c, &ns, "app=svc", 3, |_| true);
    let dead = str_at(&before[0], "/spec/nodeName").to_string();
    let on_dead: BTreeSet<String> = before
        .iter()
        .filter(|p| str_at(p, "/spec/nodeName") == dead)
        .map(|p| str_at(p, "/metadata/name").to_string())
        .collect();

    // The node stops heartbeating.
    c.kubectl_ok(&[
        "annotate",
        "node",
        &dead,
        "tugboat.dev/simulated-heartbeat=stop",
    ]);
    let node = c.eventually(Duration::from_secs(120), "the silent node Unknown", || {
        let n = get_json(&c, &["node", &dead]);
        (condition(&n, "Ready") == "Unknown").then_some(n)
    });
    check_contains(
        &node["status"]["conditions"].to_string(),
        "NodeStatusUnknown",
    );
    // After the replacement's grace period (20 s since the last heartbeat), not the
    // built-in's 40 s: the replacement with its config is what runs.
    let silent_for = timestamp(condition_field(&node, "Ready", "/lastTransitionTime")).as_second()
        - timestamp(condition_field(&node, "Ready", "/lastHeartbeatTime")).as_second();
    check!(
        (19..40).contains(&silent_for),
        "marked Unknown {silent_for} s after the last heartbeat (grace period 20 s): {}",
        node["status"]["conditions"]
    );
    let out = c.kubectl_ok(&["get", "node", &dead]);
    check_contains(&out, "NotReady");
    let node = c.eventually(CONVERGE, "the unreachable NoExecute taint", || {
        let n = get_json(&c, &["node", &dead]);
        n["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                str_at(t, "/key") == "node.kubernetes.io/unreachable"
                    && str_at(t, "/effect") == "NoExecute"
            })
            .then_some(n)
    });
    check_contains(&node["spec"]["taints"].to_string(), "NoSchedule");

    // Its pods are marked not ready and evicted; replacements run on the other nodes.
    let evicted = c.eventually(CONVERGE, "the pods of the silent node evicted", || {
        let ps = pods(&c, &ns, "app=svc");
        let old: Vec<Value> = ps
            .into_iter()
            .filter(|p| on_dead.contains(str_at(p, "/metadata/name")))
            .collect();
        old.iter().all(is_deleting).then_some(old)
    });
    for p in &evicted {
        check_eq!(
            condition(p, "Ready"),
            "False",
            "{}",
            str_at(p, "/metadata/name")
        );
        check_eq!(
            condition(p, "DisruptionTarget"),
            "True",
            "{}",
            str_at(p, "/metadata/name")
        );
    }
    let after = wait_ready_pods(&c, &ns, "app=svc", 3, |p| {
        str_at(p, "/spec/nodeName") != dead
    });
    check!(
        names(&after).is_disjoint(&on_dead),
        "the evicted pods were replaced"
    );
    c.eventually(CONVERGE, "the Deployment available again", || {
        DeployStatus::of(&get_json(&c, &["deployment", "svc", "-n", &ns]))
            .complete(3)
            .then_some(())
    });
    // The other nodes stayed Ready.
    for n in items(&get_json(&c, &["nodes"])) {
        let name = str_at(&n, "/metadata/name");
        if name != dead {
            check_eq!(condition(&n, "Ready"), "True", "node {name}");
        }
    }

    // Heartbeats resume: Ready again, the taints go.
    c.kubectl_ok(&[
        "annotate",
        "node",
        &dead,
        "tugboat.dev/simulated-heartbeat-",
    ]);
    c.eventually(CONVERGE, "the node Ready and untainted", || {
        let n = get_json(&c, &["node", &dead]);
        (condition(&n, "Ready") == "True"
            && n["spec"]["taints"].as_array().is_none_or(|t| t.is_empty()))
        .then_some(())
    });
    // The kubelet, back, finishes the evictions: the evicted pods go away (the simulated
    // agent looks at a node's pods again when its heartbeat resumes).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let left = loop {
        let left: BTreeSet<String> = names(&pods(&c, &ns, "app=svc"))
            .intersection(&on_dead)
            .cloned()
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    check!(
        left.is_empty(),
        "evicted pods still there after the node came back: {left:?}"
    );
}

// ---------------------------------------------------------------- hot swap

#[test]
fn the_deployment_controller_is_hot_swapped_during_a_rollout() {
    let c = cluster();
    let builtin = wait_plugin(&c, "deployment", "the built-in Ready", |p| {
        str_at(p, "/status/phase") == "Ready"
    });
    let builtin_digest = str_at(&builtin, "/status/digest").to_string();

    // Another build of the same controller: the component with a custom section appended
    // (the same program, another digest).
    let component = wasm("deployment");
    let v2 = with_custom_section(
        &component,
        "tugboat-test",
        b"deployment controller, build 2",
    );
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&v2)
        .expect("the rebuilt component is valid");
    let digest = upload_blob(&c, "deployment-v2.wasm", &v2);
    check!(digest != builtin_digest, "a new digest");

    // A rollout that takes a while: 6 replicas, one at a time, each new pod available only
    // after 4 s.
    let ns = namespace(&c, "swap");
    let mut d = deployment("roll", 6, "app:1");
    d["spec"]["minReadySeconds"] = json!(4);
    apply(&c, &ns, &d);
    rollout_status(&c, &ns, "deployment/roll");
    let mut watch = DeployWatch::start(&c, &ns, "roll");
    c.kubectl_ok(&["set", "image", "deployment/roll", "app=app:2", "-n", &ns]);
    watch.wait("the rollout started", |s| s.updated >= 1 && s.updated < 6);

    // Swap the controller mid-rollout.
    let mut spec = builtin["spec"].clone();
    spec["source"] = json!({"blob": digest});
    replace_plugin(&c, "deployment", &spec);
    let swapped = wait_plugin(&c, "deployment", "the new version running", |p| {
        str_at(p, "/status/digest") == digest && str_at(p, "/status/phase") == "Ready"
    });
    check!(
        swapped.pointer("/status/message").is_none(),
        "{}",
        swapped["status"]
    );
    let mid = DeployStatus::of(&get_json(&c, &["deployment", "roll", "-n", &ns]));
    eprintln!("the new version took over at {mid:?}");
    // If this fails, the machine was so slow that the rollout finished before the swap
    // took effect: the test then proves less (raise minReadySeconds).
    check!(
        !mid.complete(6) || mid.generation > mid.observed,
        "the rollout was still in progress when the new version took over: {mid:?}"
    );

    // The rollout completes on the new version, with no step lost.
    let out = rollout_status(&c, &ns, "deployment/roll");
    check_contains(&out, "deployment \"roll\" successfully rolled out");
    let generation = i64_at(
        &get_json(&c, &["deployment", "roll", "-n", &ns]),
        "/metadata/generation",
    );
    watch.wait("the rollout complete in the watch", |s| {
        s.generation == generation && s.complete(6)
    });
    let states = watch.states();
    check!(
        states.iter().all(|s| s.available >= 6),
        "available replicas dropped below 6 during the rollout: {states:?}"
    );
    drop(watch);
    wait_ready_pods(&c, &ns, "app=roll", 6, |p| image_of(p) == "app:2");
    let rss = replicasets(&c, &ns, "app=roll");
    check_eq!(rss.len(), 2);
    let mut new_rs = String::new();
    let mut old_rs = String::new();
    for rs in &rss {
        let name = str_at(rs, "/metadata/name").to_string();
        if image_of(rs) == "app:2" {
            check_eq!(i64_at(rs, "/spec/replicas"), 6, "{name}");
            check_eq!(i64_at(rs, "/status/availableReplicas"), 6, "{name}");
            new_rs = name;
        } else {
            check_eq!(i64_at(rs, "/spec/replicas"), 0, "{name}");
            old_rs = name;
        }
    }
    // Every scaling step was made and recorded, across the two versions: the new
    // ReplicaSet went 0 → 6 and the old one 6 → 0 without a gap.
    let steps = scaling_events(&c, &ns);
    eprintln!("scaling events: {steps:?}");
    let new_steps = steps.get(&new_rs).cloned().unwrap_or_default();
    let old_steps = steps.get(&old_rs).cloned().unwrap_or_default();
    check!(
        chains(&new_steps, true, 0, 6) && chains(&new_steps, false, 0, 0),
        "the new ReplicaSet's scalings 0 → 6: {new_steps:?}"
    );
    check!(
        chains(&old_steps, true, 0, 6) && chains(&old_steps, false, 6, 0),
        "the old ReplicaSet's scalings 0 → 6 → 0: {old_steps:?}"
    );

    // The new version did the work after the swap.
    let p = c.eventually(CONVERGE, "calls counted on the new version", || {
        plugin(&c, "deployment")
            .filter(|p| str_at(p, "/status/digest") == digest && i64_at(p, "/status/calls") > 0)
    });
    check_eq!(str_at(&p, "/status/phase"), "Ready", "{}", p["status"]);

    // Deleting the replacement restores the built-in.
    c.kubectl_ok(&["delete", "plugin", "deployment"]);
    let p = c.eventually(CONVERGE, "the built-in deployment plugin restored", || {
        plugin(&c, "deployment").filter(|p| {
            str_at(p, "/spec/source/builtin") == "deployment"
                && str_at(p, "/status/phase") == "Ready"
                && str_at(p, "/status/digest") == builtin_digest
        })
    });
    check_eq!(str_at(&p, "/metadata/labels/tugboat.dev~1builtin"), "true");
    // ...and it runs the Deployments.
    c.kubectl_ok(&["scale", "deployment/roll", "--replicas=3", "-n", &ns]);
    wait_ready_pods(&c, &ns, "app=roll", 3, |_| true);
    c.eventually(CONVERGE, "3 replicas under the restored built-in", || {
        DeployStatus::of(&get_json(&c, &["deployment", "roll", "-n", &ns]))
            .complete(3)
            .then_some(())
    });
}

// ---------------------------------------------------------------- a faulty controller

#[test]
fn a_controller_that_traps_is_degraded_and_the_others_keep_working() {
    let c = cluster();
    let digest = upload_blob(&c, "faulty-controller.wasm", &wasm("faulty_controller"));
    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &json!({
            "apiVersion": "tugboat.dev/v1alpha1", "kind": "Plugin",
            "metadata": {"name": "crashy"},
            "spec": {
                "kind": "controller",
                "source": {"blob": digest},
                "permissions": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            },
        })
        .to_string(),
    );
    // It loads (its `init` works) ...
    wait_plugin(&c, "crashy", "loaded", |p| {
        str_at(p, "/status/digest") == digest
    });

    // ... and traps on every reconcile.
    let ns = namespace(&c, "faulty");
    for i in 0..6 {
        c.kubectl_ok(&[
            "create",
            "configmap",
            &format!("cm-{i}"),
            "--from-literal=k=v",
            "-n",
            &ns,
        ]);
    }
    // Meanwhile the other controllers work.
    apply(&c, &ns, &deployment("fine", 3, "nginx"));
    let out = rollout_status(&c, &ns, "deployment/fine");
    check_contains(&out, "successfully rolled out");
    wait_ready_pods(&c, &ns, "app=fine", 3, |_| true);

    let p = wait_plugin(&c, "crashy", "Degraded", |p| {
        str_at(p, "/status/phase") == "Degraded"
    });
    check!(i64_at(&p, "/status/errors") > 0, "{}", p["status"]);
    let last = str_at(&p, "/status/lastError");
    check_contains(last, "trap");
    check_contains(last, "unreachable");
    let table = c.kubectl_ok(&["get", "plugins"]);
    check_contains(&table, "Degraded");

    // The server keeps serving, the other controllers keep working and are healthy.
    c.kubectl_ok(&["scale", "deployment/fine", "--replicas=4", "-n", &ns]);
    wait_ready_pods(&c, &ns, "app=fine", 4, |_| true);
    c.kubectl_ok(&[
        "create",
        "configmap",
        "after",
        "--from-literal=k=v",
        "-n",
        &ns,
    ]);
    for name in [
        "deployment",
        "replicaset",
        "garbage-collector",
        "endpoints",
        "namespace",
    ] {
        // (The status is published every 2 s: wait for the calls to show.)
        let p = c.eventually(
            Duration::from_secs(30),
            &format!("plugin {name} shows calls"),
            || plugin(&c, name).filter(|p| i64_at(p, "/status/calls") > 0),
        );
        // (Not `errors == 0`: a call past its deadline on a starved machine is an error
        // too, and has nothing to do with the faulty plugin.)
        check_eq!(
            str_at(&p, "/status/phase"),
            "Ready",
            "plugin {name}: {}",
            p["status"]
        );
        check!(
            i64_at(&p, "/status/calls") > 0,
            "plugin {name} works: {}",
            p["status"]
        );
    }
    // Deleting the faulty controller unloads it; deleting a namespace (which the namespace
    // controller and the garbage collector do) still works.
    c.kubectl_ok(&["delete", "plugin", "crashy"]);
    c.kubectl_ok(&["delete", "namespace", &ns, KUBECTL_WAIT]);
    let err = c.kubectl_err(&["get", "namespace", &ns]);
    check_contains(&err, "not found");
}
