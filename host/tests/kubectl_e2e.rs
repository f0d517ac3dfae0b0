//! End-to-end tests: the real `kubectl` against a freshly started `tug server`.
//!
//! Each test starts its own server (see `common::Cluster`) and asserts what
//! kubectl printed. Where the expected text is that of a real Kubernetes API
//! server, the comment says so; such assertions are deliberately not weakened
//! to fit Tugboat. Checks that Tugboat did not pass when they were written are
//! marked `SERVER-GAP` (grep for it).
//!
//! Most checks are soft (`check!`, `check_eq!`, `check_contains`, and
//! `kubectl_err` when the command unexpectedly succeeds): they are recorded
//! and the test goes on, so that one run lists every mismatch; the test then
//! fails when its `Cluster` is dropped, with all of them and the server log.

#[macro_use]
mod common;

use std::time::Duration;

use common::{
    Cluster, check_contains, check_not_contains, header_columns, lines, row, table, unique,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- helpers

/// Create a namespace from a manifest (JSON request body, not a generator).
fn namespace(c: &Cluster, prefix: &str) -> String {
    let ns = unique(prefix);
    let out = c.kubectl_stdin_ok(
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
    );
    check_eq!(out, format!("namespace/{ns} created\n"));
    ns
}

/// `kubectl get ARGS -o json`, parsed.
fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all: Vec<&str> = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = c.kubectl_ok(&all);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("kubectl {all:?} printed invalid JSON ({e}):\n{out}"))
}

/// `kubectl get RESOURCE -n NS -o jsonpath=PATH`.
fn jsonpath(c: &Cluster, ns: &str, resource: &str, path: &str) -> String {
    c.kubectl_ok(&["get", resource, "-n", ns, "-o", &format!("jsonpath={path}")])
}

/// `kubectl get --raw PATH`, parsed as JSON.
fn raw_json(c: &Cluster, path: &str) -> Value {
    let out = c.kubectl_ok(&["get", "--raw", path]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}):\n{out}"))
}

/// Split on whitespace.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Check fields of `obj` (JSON pointers) against what a real API server
/// sets; one soft failure lists every mismatch, then the object.
#[track_caller]
fn check_fields(obj: &Value, what: &str, expected: &[(&str, Value)]) {
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|(ptr, want)| {
            let got = obj.pointer(ptr).cloned().unwrap_or(Value::Null);
            (got != *want).then(|| format!("  {ptr}: got {got}, want {want}"))
        })
        .collect();
    if !wrong.is_empty() {
        common::fail(format!(
            "{what}: {} field(s) differ from Kubernetes:\n{}\nobject:\n{obj:#}",
            wrong.len(),
            wrong.join("\n")
        ));
    }
}

fn fill(template: &str, ns: &str) -> String {
    template.replace("$NS", ns)
}

// ---------------------------------------------------------------- manifests

const CONFIGMAP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: $NS
  labels:
    app: web
data:
  a: \"1\"
  b: two
";

const POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: p1
  namespace: $NS
  labels:
    app: web
spec:
  containers:
  - name: main
    image: nginx:1.27
";

const TWO_CONTAINER_DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  namespace: $NS
spec:
  replicas: 1
  selector:
    matchLabels:
      app: d
  template:
    metadata:
      labels:
        app: d
    spec:
      containers:
      - name: a
        image: nginx:1.27
        env:
        - name: X
          value: \"1\"
      - name: b
        image: busybox:1.36
        command: [\"sleep\", \"3600\"]
";

const APPLY_V1: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: $NS
  labels:
    app: web
    extra: \"yes\"
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        env:
        - name: A
          value: \"1\"
        - name: B
          value: \"2\"
        ports:
        - containerPort: 80
        - containerPort: 443
";

const APPLY_V2: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: $NS
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.28
        env:
        - name: A
          value: \"1\"
        ports:
        - containerPort: 80
";

const SSA_DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  namespace: $NS
spec:
  replicas: 2
  selector:
    matchLabels:
      app: ssa
  template:
    metadata:
      labels:
        app: ssa
    spec:
      containers:
      - name: c
        image: nginx:1.27
";

const WEB_DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: $NS
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
";

const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.tugboat.dev
spec:
  group: e2e.tugboat.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    listKind: WidgetList
    shortNames:
    - wd
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Color
      type: string
      jsonPath: .spec.color
    - name: Phase
      type: string
      jsonPath: .status.phase
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required:
            - size
            properties:
              size:
                type: integer
                minimum: 1
              color:
                type: string
                enum:
                - red
                - green
                - blue
          status:
            type: object
            properties:
              phase:
                type: string
";

fn widget(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: e2e.tugboat.dev/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}

// ---------------------------------------------------------------- tests

#[test]
fn get_ns_lists_the_four_default_namespaces() {
    let c = Cluster::start();
    let out = c.kubectl_ok(&["get", "ns"]);
    let t = table(&out);
    check_eq!(t[0], ["NAME", "STATUS", "AGE"], "{out}");
    check_eq!(t.len(), 5, "expected exactly 4 namespaces:\n{out}");
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        check_eq!(row(&t, ns)[1], "Active", "{out}");
    }
    check_eq!(
        c.kubectl_ok(&["get", "ns", "-o", "name"]),
        "namespace/default\nnamespace/kube-node-lease\nnamespace/kube-public\nnamespace/kube-system\n"
    );
    // Real apiservers label every namespace with its own name (since 1.21).
    check_eq!(
        c.kubectl_ok(&[
            "get",
            "ns",
            "default",
            "-o",
            r"jsonpath={.metadata.labels.kubernetes\.io/metadata\.name}"
        ]),
        "default"
    );
    let ns = namespace(&c, "labelled");
    // SERVER-GAP: user namespaces lack the kubernetes.io/metadata.name label (see the e2e report).
    check_eq!(
        c.kubectl_ok(&[
            "get",
            "ns",
            &ns,
            "-o",
            r"jsonpath={.metadata.labels.kubernetes\.io/metadata\.name}"
        ]),
        ns
    );
    check_eq!(
        c.kubectl_ok(&["get", "ns", &ns, "-o", "jsonpath={.status.phase}"]),
        "Active"
    );
}

#[test]
fn create_get_list_describe() {
    let c = Cluster::start();
    let ns = namespace(&c, "crud");

    // ConfigMap.
    check_eq!(
        c.kubectl_stdin_ok(&["create", "-f", "-"], &fill(CONFIGMAP, &ns)),
        "configmap/cfg created\n"
    );
    let out = c.kubectl_ok(&["get", "cm", "cfg", "-n", &ns]);
    let t = table(&out);
    check_eq!(t[0], ["NAME", "DATA", "AGE"], "{out}");
    check_eq!(t.len(), 2, "{out}");
    check_eq!(row(&t, "cfg")[1], "2", "{out}");
    let out = c.kubectl_ok(&["get", "configmaps", "-n", &ns]);
    check_eq!(row(&table(&out), "cfg")[1], "2", "{out}");
    check_eq!(jsonpath(&c, &ns, "cm/cfg", "{.data.b}"), "two");

    let out = c.kubectl_ok(&["describe", "cm", "cfg", "-n", &ns]);
    let described: Vec<Vec<&str>> = out.lines().map(words).collect();
    for expected in [
        vec!["Name:", "cfg"],
        vec!["Namespace:", ns.as_str()],
        vec!["Labels:", "app=web"],
        vec!["Annotations:", "<none>"],
        vec!["Data"],
        vec!["a:"],
        vec!["b:"],
        vec!["two"],
    ] {
        check!(
            described.contains(&expected),
            "describe lacks line {expected:?}:\n{out}"
        );
    }

    // Pod: stays Pending (no scheduler), but the API server defaults it.
    check_eq!(
        c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(POD, &ns)),
        "pod/p1 created\n"
    );
    let out = c.kubectl_ok(&["get", "pod", "p1", "-n", &ns]);
    let t = table(&out);
    check_eq!(
        t[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    check_eq!(&row(&t, "p1")[1..4], ["0/1", "Pending", "0"], "{out}");
    let pod = get_json(&c, &["pod", "p1", "-n", &ns]);
    check_eq!(pod["kind"], "Pod");
    check_eq!(pod["apiVersion"], "v1");
    // SERVER-GAP: no Pod defaulting (see the e2e report).
    check_fields(
        &pod,
        "pod defaulting",
        &[
            ("/status/phase", json!("Pending")),
            ("/spec/restartPolicy", json!("Always")),
            ("/spec/dnsPolicy", json!("ClusterFirst")),
            ("/spec/schedulerName", json!("default-scheduler")),
            ("/spec/terminationGracePeriodSeconds", json!(30)),
            ("/spec/containers/0/imagePullPolicy", json!("IfNotPresent")),
            (
                "/spec/containers/0/terminationMessagePath",
                json!("/dev/termination-log"),
            ),
        ],
    );
    check!(
        pod["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36),
        "{pod:#}"
    );
    check!(
        pod["metadata"]["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{pod:#}"
    );
    check!(
        pod["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{pod:#}"
    );

    let out = c.kubectl_ok(&["describe", "pod", "p1", "-n", &ns]);
    let described: Vec<Vec<&str>> = out.lines().map(words).collect();
    for expected in [
        vec!["Name:", "p1"],
        vec!["Namespace:", ns.as_str()],
        vec!["Labels:", "app=web"],
        vec!["Status:", "Pending"],
        vec!["Containers:"],
        vec!["main:"],
        vec!["Image:", "nginx:1.27"],
    ] {
        check!(
            described.contains(&expected),
            "describe pod lacks line {expected:?}:\n{out}"
        );
    }
    // The cluster has no node: the scheduler says so, as Kubernetes' does.
    let out = c.eventually(Duration::from_secs(30), "the scheduler's event", || {
        let out = c.kubectl_ok(&["describe", "pod", "p1", "-n", &ns]);
        out.contains("FailedScheduling").then_some(out)
    });
    check_contains(&out, "no nodes available to schedule pods");

    // Listing across namespaces.
    let out = c.kubectl_ok(&["get", "pods", "-A"]);
    let t = table(&out);
    check_eq!(
        t[0],
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    check!(t.iter().any(|r| r[0] == ns && r[1] == "p1"), "{out}");
}

#[test]
fn label_and_annotate() {
    let c = Cluster::start();
    let ns = namespace(&c, "label");
    c.kubectl_stdin_ok(&["create", "-f", "-"], &fill(CONFIGMAP, &ns));

    check_eq!(
        c.kubectl_ok(&["label", "cm", "cfg", "-n", &ns, "tier=frontend"]),
        "configmap/cfg labeled\n"
    );
    check_eq!(
        jsonpath(&c, &ns, "cm/cfg", "{.metadata.labels.tier}"),
        "frontend"
    );
    // Changing a label needs --overwrite (message from kubectl itself).
    let err = c.kubectl_err(&["label", "cm", "cfg", "-n", &ns, "tier=backend"]);
    check_contains(
        &err,
        "'tier' already has a value (frontend), and --overwrite is false",
    );
    check_eq!(
        jsonpath(&c, &ns, "cm/cfg", "{.metadata.labels.tier}"),
        "frontend"
    );
    check_eq!(
        c.kubectl_ok(&[
            "label",
            "cm",
            "cfg",
            "-n",
            &ns,
            "tier=backend",
            "--overwrite"
        ]),
        "configmap/cfg labeled\n"
    );
    check_eq!(
        jsonpath(&c, &ns, "cm/cfg", "{.metadata.labels.tier}"),
        "backend"
    );
    // Selectors see the new label.
    check_eq!(
        c.kubectl_ok(&["get", "cm", "-n", &ns, "-l", "tier=backend", "-o", "name"]),
        "configmap/cfg\n"
    );
    // Removal with `key-`.
    check_eq!(
        c.kubectl_ok(&["label", "cm", "cfg", "-n", &ns, "tier-"]),
        "configmap/cfg unlabeled\n"
    );
    let labels = get_json(&c, &["cm", "cfg", "-n", &ns])["metadata"]["labels"].clone();
    check_eq!(labels, json!({"app": "web"}));

    check_eq!(
        c.kubectl_ok(&["annotate", "cm", "cfg", "-n", &ns, "note=hello"]),
        "configmap/cfg annotated\n"
    );
    check_eq!(
        jsonpath(&c, &ns, "cm/cfg", "{.metadata.annotations.note}"),
        "hello"
    );
    let err = c.kubectl_err(&["annotate", "cm", "cfg", "-n", &ns, "note=bye"]);
    check_contains(
        &err,
        "--overwrite is false but found the following declared annotation(s): 'note' already has a value (hello)",
    );
    check_eq!(
        c.kubectl_ok(&[
            "annotate",
            "cm",
            "cfg",
            "-n",
            &ns,
            "note=bye",
            "--overwrite"
        ]),
        "configmap/cfg annotated\n"
    );
    check_eq!(
        jsonpath(&c, &ns, "cm/cfg", "{.metadata.annotations.note}"),
        "bye"
    );
    check_eq!(
        c.kubectl_ok(&["annotate", "cm", "cfg", "-n", &ns, "note-"]),
        "configmap/cfg annotated\n"
    );
    let cm = get_json(&c, &["cm", "cfg", "-n", &ns]);
    check!(
        cm["metadata"]["annotations"].get("note").is_none(),
        "{cm:#}"
    );

    // Labels on a cluster-scoped object, several at once.
    check_eq!(
        c.kubectl_ok(&["label", "ns", &ns, "team=a", "env=test"]),
        format!("namespace/{ns} labeled\n")
    );
    check_eq!(
        c.kubectl_ok(&["get", "ns", "-l", "team=a,env=test", "-o", "name"]),
        format!("namespace/{ns}\n")
    );
}

#[test]
fn patch_strategic_merge_and_json() {
    let c = Cluster::start();
    let ns = namespace(&c, "patch");
    check_eq!(
        c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(TWO_CONTAINER_DEPLOYMENT, &ns)),
        "deployment.apps/d created\n"
    );

    // Strategic merge (the default): containers merge by name.
    let p =
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"busybox:1.37"}]}}}}"#;
    check_eq!(
        c.kubectl_ok(&["patch", "deployment", "d", "-n", &ns, "-p", p]),
        "deployment.apps/d patched\n"
    );
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            "{.spec.template.spec.containers[*].name}"
        ),
        "a b"
    );
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            "{.spec.template.spec.containers[*].image}"
        ),
        "nginx:1.27 busybox:1.37"
    );
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            "{.spec.template.spec.containers[0].env[0].name}"
        ),
        "X"
    );
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            "{.spec.template.spec.containers[1].command[*]}"
        ),
        "sleep 3600"
    );
    // The same patch again changes nothing.
    check_eq!(
        c.kubectl_ok(&["patch", "deployment", "d", "-n", &ns, "-p", p]),
        "deployment.apps/d patched (no change)\n"
    );
    // A new container: without `$setElementOrder`, the apiserver's strategic
    // merge puts patch items not in the live list first (mergeSortedSlice).
    // `$patch: delete` removes one by name.
    let add = r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"redis:7"}]}}}}"#;
    c.kubectl_ok(&["patch", "deployment", "d", "-n", &ns, "-p", add]);
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            "{.spec.template.spec.containers[*].name}"
        ),
        "c a b"
    );
    let del = r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","$patch":"delete"}]}}}}"#;
    c.kubectl_ok(&["patch", "deployment", "d", "-n", &ns, "-p", del]);
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            "{.spec.template.spec.containers[*].name}"
        ),
        "c a"
    );
    // `kubectl set image` is a strategic merge patch too.
    check_eq!(
        c.kubectl_ok(&["set", "image", "deployment/d", "-n", &ns, "a=nginx:1.28"]),
        "deployment.apps/d image updated\n"
    );
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            "{.spec.template.spec.containers[*].image}"
        ),
        "redis:7 nginx:1.28"
    );
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            r#"{.spec.template.spec.containers[?(@.name=="a")].env[0].value}"#
        ),
        "1"
    );

    // Merge patch: lists are replaced whole, null deletes.
    let mp = r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"nginx:1.29"}]}}}}"#;
    check_eq!(
        c.kubectl_ok(&[
            "patch",
            "deployment",
            "d",
            "-n",
            &ns,
            "--type",
            "merge",
            "-p",
            mp
        ]),
        "deployment.apps/d patched\n"
    );
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            "{.spec.template.spec.containers[*].name}"
        ),
        "a"
    );
    check_eq!(
        jsonpath(
            &c,
            &ns,
            "deploy/d",
            "{.spec.template.spec.containers[0].env}"
        ),
        ""
    );

    c.kubectl_stdin_ok(&["create", "-f", "-"], &fill(CONFIGMAP, &ns));
    check_eq!(
        c.kubectl_ok(&[
            "patch",
            "cm",
            "cfg",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"data":{"a":null,"c":"3"}}"#
        ]),
        "configmap/cfg patched\n"
    );
    let data = get_json(&c, &["cm", "cfg", "-n", &ns])["data"].clone();
    check_eq!(data, json!({"b": "two", "c": "3"}));

    // JSON patch.
    let jp = r#"[{"op":"replace","path":"/data/b","value":"deux"},{"op":"add","path":"/metadata/labels/x","value":"y"},{"op":"remove","path":"/data/c"}]"#;
    check_eq!(
        c.kubectl_ok(&["patch", "cm", "cfg", "-n", &ns, "--type", "json", "-p", jp]),
        "configmap/cfg patched\n"
    );
    let cm = get_json(&c, &["cm", "cfg", "-n", &ns]);
    check_eq!(cm["data"], json!({"b": "deux"}));
    check_eq!(cm["metadata"]["labels"]["x"], "y");
    let rv = cm["metadata"]["resourceVersion"].clone();

    // An unknown op fails (real apiservers: 422 Invalid, which kubectl prints
    // as "The request is invalid...") and leaves the object as it was.
    let bad = r#"[{"op":"frobnicate","path":"/data/b","value":"zzz"}]"#;
    let err = c.kubectl_err(&["patch", "cm", "cfg", "-n", &ns, "--type", "json", "-p", bad]);
    // SERVER-GAP: unknown JSON patch op gives 400 BadRequest, not 422 Invalid (see the e2e report).
    check_contains(&err, "The request is invalid");
    // A failing `test` op is also rejected without effect.
    let test = r#"[{"op":"test","path":"/data/b","value":"nope"},{"op":"replace","path":"/data/b","value":"zzz"}]"#;
    c.kubectl_err(&[
        "patch", "cm", "cfg", "-n", &ns, "--type", "json", "-p", test,
    ]);
    // Removing a missing path fails too.
    let missing = r#"[{"op":"remove","path":"/data/nothere"}]"#;
    c.kubectl_err(&[
        "patch", "cm", "cfg", "-n", &ns, "--type", "json", "-p", missing,
    ]);
    let after = get_json(&c, &["cm", "cfg", "-n", &ns]);
    check_eq!(after["data"], json!({"b": "deux"}));
    check_eq!(
        after["metadata"]["resourceVersion"],
        rv,
        "a failed patch must not write"
    );

    // Patching something that does not exist.
    let err = c.kubectl_err(&[
        "patch",
        "cm",
        "ghost",
        "-n",
        &ns,
        "-p",
        r#"{"data":{"a":"b"}}"#,
    ]);
    check_contains(&err, r#"configmaps "ghost" not found"#);
}

#[test]
fn edit_via_get_yaml_and_replace() {
    let c = Cluster::start();
    let ns = namespace(&c, "replace");
    c.kubectl_stdin_ok(
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ed\n  namespace: {ns}\ndata:\n  k: original\n"),
    );
    let original = c.kubectl_ok(&["get", "cm", "ed", "-n", &ns, "-o", "yaml"]);
    check_contains(&original, "  k: original\n");
    check_contains(&original, "  resourceVersion: ");

    let edited = original.replace("  k: original\n", "  k: edited\n");
    check_eq!(
        c.kubectl_stdin_ok(&["replace", "-f", "-"], &edited),
        "configmap/ed replaced\n"
    );
    check_eq!(jsonpath(&c, &ns, "cm/ed", "{.data.k}"), "edited");

    // Replacing with the stale resourceVersion is a conflict (real message).
    let stale = original.replace("  k: original\n", "  k: stale\n");
    let err = c.kubectl_stdin_err(&["replace", "-f", "-"], &stale);
    check_contains(&err, "Error from server (Conflict)");
    check_contains(
        &err,
        r#"Operation cannot be fulfilled on configmaps "ed": the object has been modified; please apply your changes to the latest version and try again"#,
    );
    check_eq!(jsonpath(&c, &ns, "cm/ed", "{.data.k}"), "edited");

    // Without a resourceVersion the update is unconditional (allowed for ConfigMaps).
    let unconditional: String = original
        .lines()
        .filter(|l| !l.trim_start().starts_with("resourceVersion:"))
        .map(|l| format!("{}\n", l.replace("k: original", "k: forced")))
        .collect();
    check_eq!(
        c.kubectl_stdin_ok(&["replace", "-f", "-"], &unconditional),
        "configmap/ed replaced\n"
    );
    check_eq!(jsonpath(&c, &ns, "cm/ed", "{.data.k}"), "forced");

    // Replacing something that does not exist is NotFound.
    let ghost = unconditional.replace("name: ed", "name: ghost");
    let err = c.kubectl_stdin_err(&["replace", "-f", "-"], &ghost);
    check_contains(&err, r#"configmaps "ghost" not found"#);
}

#[test]
fn delete_with_wait_and_wait_for_delete() {
    let c = Cluster::start();
    let ns = namespace(&c, "delete");
    for name in ["d1", "d2", "d3"] {
        c.kubectl_ok(&["create", "cm", name, "-n", &ns, "--from-literal=k=v"]);
    }
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(POD, &ns));

    check_eq!(
        lines(&c.kubectl_ok(&["delete", "cm", "d1", "-n", &ns, "--wait"]))
            .first()
            .map(String::as_str),
        Some(r#"configmap "d1" deleted"#)
    );
    let err = c.kubectl_err(&["get", "cm", "d1", "-n", &ns]);
    check_contains(
        &err,
        r#"Error from server (NotFound): configmaps "d1" not found"#,
    );

    // `kubectl wait --for=delete` returns once another client deletes the object.
    let mut waiter =
        c.kubectl_spawn(&["wait", "--for=delete", "cm/d2", "-n", &ns, "--timeout=60s"]);
    std::thread::sleep(Duration::from_secs(2));
    c.kubectl_ok(&["delete", "cm", "d2", "-n", &ns, "--wait=false"]);
    waiter.wait_line(WAIT, "condition met", |l| l == "configmap/d2 condition met");
    let status = waiter.wait_exit(WAIT).expect("kubectl wait did not exit");
    check!(status.success(), "kubectl wait failed: {}", waiter.finish());

    // An unscheduled pod is deleted at once (no kubelet needs to confirm).
    let out = c.kubectl_ok(&["delete", "pod", "p1", "-n", &ns, "--wait", "--timeout=60s"]);
    check!(out.starts_with(r#"pod "p1" deleted"#), "{out}");
    c.kubectl_err(&["get", "pod", "p1", "-n", &ns]);

    // Errors and --ignore-not-found.
    let err = c.kubectl_err(&["delete", "cm", "nope", "-n", &ns]);
    check_contains(&err, r#"configmaps "nope" not found"#);
    check_eq!(
        c.kubectl_ok(&["delete", "cm", "nope", "-n", &ns, "--ignore-not-found"]),
        ""
    );

    // Delete by selector.
    c.kubectl_ok(&["label", "cm", "d3", "-n", &ns, "gone=yes"]);
    let out = c.kubectl_ok(&["delete", "cm", "-n", &ns, "-l", "gone=yes"]);
    check!(out.starts_with(r#"configmap "d3" deleted"#), "{out}");
    check_eq!(
        c.kubectl_ok(&["get", "cm", "-n", &ns, "-l", "gone=yes", "-o", "name"]),
        ""
    );
}

#[test]
fn apply_twice_three_way_merge() {
    let c = Cluster::start();
    let ns = namespace(&c, "apply");
    check_eq!(
        c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(APPLY_V1, &ns)),
        "deployment.apps/web created\n"
    );
    let d = get_json(&c, &["deploy", "web", "-n", &ns]);
    let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap_or_else(|| panic!("no last-applied-configuration annotation: {d:#}"));
    let last: Value = serde_json::from_str(last).expect("last-applied is JSON");
    check_eq!(last["metadata"]["labels"]["extra"], "yes");
    check_eq!(
        last["spec"]["template"]["spec"]["containers"][0]["env"][1]["name"],
        "B"
    );

    // Someone else adds a label: not part of the applied configuration, so it must survive.
    c.kubectl_ok(&["label", "deploy", "web", "-n", &ns, "manual=keep"]);

    check_eq!(
        c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(APPLY_V2, &ns)),
        "deployment.apps/web configured\n"
    );
    let d = get_json(&c, &["deploy", "web", "-n", &ns]);
    check_eq!(
        d["metadata"]["labels"],
        json!({"app": "web", "manual": "keep"}),
        "{d:#}"
    );
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    check_eq!(container["image"], "nginx:1.28");
    check_eq!(
        container["env"],
        json!([{"name": "A", "value": "1"}]),
        "{d:#}"
    );
    let ports: Vec<i64> = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    check_eq!(ports, [80], "{d:#}");
    // SERVER-GAP: container port protocol is not defaulted to TCP (see the e2e report).
    check_eq!(
        container["ports"][0]["protocol"],
        "TCP",
        "port protocol is defaulted"
    );
    let last: Value = serde_json::from_str(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    check!(
        last["metadata"]["labels"].get("extra").is_none(),
        "{last:#}"
    );

    // Applying the same manifest again changes nothing.
    check_eq!(
        c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(APPLY_V2, &ns)),
        "deployment.apps/web unchanged\n"
    );
    // `kubectl apply view-last-applied` reads the annotation back.
    let view = c.kubectl_ok(&["apply", "view-last-applied", "deploy/web", "-n", &ns]);
    check_contains(&view, "image: nginx:1.28");
    check_not_contains(&view, "extra");
}

#[test]
fn server_side_apply_conflicts_and_force() {
    let c = Cluster::start();
    let ns = namespace(&c, "ssa");
    check_eq!(
        c.kubectl_stdin_ok(
            &["apply", "--server-side", "-f", "-"],
            &fill(SSA_DEPLOYMENT, &ns)
        ),
        "deployment.apps/ssa serverside-applied\n"
    );
    check_eq!(jsonpath(&c, &ns, "deploy/ssa", "{.spec.replicas}"), "2");

    let other = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa\n  namespace: {ns}\nspec:\n  replicas: 3\n"
    );
    let err = c.kubectl_stdin_err(
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "-f",
            "-",
        ],
        &other,
    );
    check_contains(&err, "Apply failed with 1 conflict");
    check_contains(&err, r#"conflict with "kubectl""#);
    check_contains(&err, ".spec.replicas");
    check_eq!(jsonpath(&c, &ns, "deploy/ssa", "{.spec.replicas}"), "2");

    check_eq!(
        c.kubectl_stdin_ok(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "other",
                "--force-conflicts",
                "-f",
                "-"
            ],
            &other
        ),
        "deployment.apps/ssa serverside-applied\n"
    );
    check_eq!(jsonpath(&c, &ns, "deploy/ssa", "{.spec.replicas}"), "3");

    let yaml = c.kubectl_ok(&[
        "get",
        "deploy",
        "ssa",
        "-n",
        &ns,
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    check_contains(&yaml, "managedFields:");
    check_contains(&yaml, "manager: kubectl\n");
    check_contains(&yaml, "manager: other\n");
    check_contains(&yaml, "operation: Apply");
    let plain = c.kubectl_ok(&["get", "deploy", "ssa", "-n", &ns, "-o", "yaml"]);
    check_not_contains(&plain, "managedFields");

    let d = get_json(&c, &["deploy", "ssa", "-n", &ns, "--show-managed-fields"]);
    let entries = d["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .clone();
    let entry = |m: &str| {
        entries
            .iter()
            .find(|e| e["manager"] == m && e["operation"] == "Apply")
            .unwrap_or_else(|| panic!("no Apply entry for {m}: {entries:#?}"))
            .clone()
    };
    let kubectl = entry("kubectl");
    let other_entry = entry("other");
    check_eq!(other_entry["fieldsType"], "FieldsV1");
    check!(
        other_entry["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_some(),
        "{other_entry:#}"
    );
    check!(
        kubectl["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "replicas moved to other: {kubectl:#}"
    );
    check!(
        kubectl["fieldsV1"]["f:spec"].get("f:template").is_some(),
        "{kubectl:#}"
    );

    // Now the original manager conflicts with "other" over replicas.
    let err = c.kubectl_stdin_err(
        &["apply", "--server-side", "-f", "-"],
        &fill(SSA_DEPLOYMENT, &ns),
    );
    check_contains(&err, r#"conflict with "other""#);
    check_contains(&err, ".spec.replicas");

    // A client-side `kubectl scale` (Update operation) takes the field over without a conflict.
    c.kubectl_ok(&["scale", "deploy", "ssa", "-n", &ns, "--replicas=4"]);
    check_eq!(jsonpath(&c, &ns, "deploy/ssa", "{.spec.replicas}"), "4");
}

#[test]
fn get_watch_reports_added_modified_deleted() {
    let c = Cluster::start();
    let ns = namespace(&c, "watch");
    c.kubectl_ok(&["create", "cm", "w1", "-n", &ns, "--from-literal=k=1"]);

    let mut tw = c.kubectl_spawn(&["get", "cm", "-n", &ns, "-w", "--output-watch-events"]);
    let mut jw = c.kubectl_spawn(&[
        "get",
        "cm",
        "-n",
        &ns,
        "-w",
        "--output-watch-events",
        "-o",
        "json",
    ]);
    let mut lw = c.kubectl_spawn(&[
        "get",
        "cm",
        "-n",
        &ns,
        "-w",
        "-l",
        "watched=yes",
        "-o",
        "name",
    ]);

    let ev =
        |kind: &'static str, name: &'static str| move |l: &str| words(l).starts_with(&[kind, name]);
    tw.wait_line(WAIT, "ADDED w1", ev("ADDED", "w1"));
    wait_json_event(&c, &mut jw, "ADDED", "w1");

    c.kubectl_ok(&[
        "patch",
        "cm",
        "w1",
        "-n",
        &ns,
        "-p",
        r#"{"data":{"k":"2"}}"#,
    ]);
    tw.wait_line(WAIT, "MODIFIED w1", ev("MODIFIED", "w1"));
    wait_json_event(&c, &mut jw, "MODIFIED", "w1");

    c.kubectl_stdin_ok(
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w2\n  namespace: {ns}\n  labels:\n    watched: \"yes\"\n"),
    );
    tw.wait_line(WAIT, "ADDED w2", ev("ADDED", "w2"));
    wait_json_event(&c, &mut jw, "ADDED", "w2");
    lw.wait_line(WAIT, "configmap/w2", |l| l == "configmap/w2");

    c.kubectl_ok(&["delete", "cm", "w1", "-n", &ns]);
    tw.wait_line(WAIT, "DELETED w1", ev("DELETED", "w1"));
    wait_json_event(&c, &mut jw, "DELETED", "w1");

    let table_out = tw.output();
    check_eq!(
        words(&table_out[0]),
        ["EVENT", "NAME", "DATA", "AGE"],
        "{table_out:#?}"
    );
    check_eq!(
        words(&table_out[1])[..3],
        ["ADDED", "w1", "1"],
        "{table_out:#?}"
    );
    // The label-selected watch never saw w1.
    let selected = lw.output();
    check!(
        selected.iter().all(|l| l == "configmap/w2"),
        "{selected:#?}"
    );
    tw.finish();
    jw.finish();
    lw.finish();

    // Watching one object by name.
    let mut one = c.kubectl_spawn(&[
        "get",
        "cm",
        "w2",
        "-n",
        &ns,
        "-w",
        "-o",
        "jsonpath={.data.k}{\"\\n\"}",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    c.kubectl_ok(&[
        "patch",
        "cm",
        "w2",
        "-n",
        &ns,
        "-p",
        r#"{"data":{"k":"seen"}}"#,
    ]);
    one.wait_line(WAIT, "the new value", |l| l == "seen");
}

/// Wait until the `-o json --output-watch-events` stream has an event of
/// `kind` for object `name`.
fn wait_json_event(c: &Cluster, w: &mut common::Spawned, kind: &str, name: &str) {
    let mut last = Vec::new();
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.eventually(WAIT, &format!("{kind} {name} in the JSON watch"), || {
            let text = w.output().join("\n");
            let events: Vec<(String, String)> = serde_json::Deserializer::from_str(&text)
                .into_iter::<Value>()
                .map_while(Result::ok)
                .map(|v| {
                    (
                        v["type"].as_str().unwrap_or_default().to_string(),
                        v["object"]["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect();
            last = events.clone();
            events
                .iter()
                .any(|(t, n)| t == kind && n == name)
                .then_some(())
        })
    }));
    if found.is_err() {
        panic!(
            "no {kind} event for {name} in the JSON watch; events: {last:?}; stderr: {}",
            w.finish()
        );
    }
}

#[test]
fn output_formats_selectors_and_pagination() {
    // The API alone: these columns and lists are of the objects as created, before any
    // controller acts on them (controllers_e2e covers what controllers make of them).
    let c = Cluster::start_with(&["--disable-controllers"]);
    let ns = namespace(&c, "formats");
    let mut manifest = String::new();
    for (name, tier) in [
        ("a", Some("a")),
        ("b", Some("b")),
        ("c", Some("c")),
        ("d", None),
    ] {
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
        ));
        if let Some(t) = tier {
            manifest.push_str(&format!("  labels:\n    tier: {t}\n"));
        }
        manifest.push_str(&format!("data:\n  me: {name}\n"));
    }
    let out = c.kubectl_stdin_ok(&["create", "-f", "-"], &manifest);
    check_eq!(
        out,
        "configmap/a created\nconfigmap/b created\nconfigmap/c created\nconfigmap/d created\n"
    );

    let names = |args: &[&str]| {
        let mut all = vec!["get", "cm", "-n", ns.as_str(), "-o", "name"];
        all.extend_from_slice(args);
        c.kubectl_ok(&all)
    };
    check_eq!(
        names(&[]),
        "configmap/a\nconfigmap/b\nconfigmap/c\nconfigmap/d\n"
    );
    check_eq!(names(&["-l", "tier=a"]), "configmap/a\n");
    check_eq!(names(&["-l", "tier==b"]), "configmap/b\n");
    check_eq!(
        names(&["-l", "tier in (a,b)"]),
        "configmap/a\nconfigmap/b\n"
    );
    // `!=` and `notin` also match objects without the label.
    check_eq!(
        names(&["-l", "tier!=a"]),
        "configmap/b\nconfigmap/c\nconfigmap/d\n"
    );
    check_eq!(
        names(&["-l", "tier notin (a,b)"]),
        "configmap/c\nconfigmap/d\n"
    );
    check_eq!(
        names(&["-l", "tier"]),
        "configmap/a\nconfigmap/b\nconfigmap/c\n"
    );
    check_eq!(names(&["-l", "!tier"]), "configmap/d\n");
    check_eq!(names(&["-l", "tier in (a,b),tier!=a"]), "configmap/b\n");
    check_eq!(
        names(&["--field-selector", "metadata.name=c"]),
        "configmap/c\n"
    );
    check_eq!(
        names(&["--field-selector", "metadata.name!=c"]),
        "configmap/a\nconfigmap/b\nconfigmap/d\n"
    );
    check_eq!(
        names(&[
            "--field-selector",
            &format!("metadata.namespace={ns}"),
            "-l",
            "tier=c"
        ]),
        "configmap/c\n"
    );
    check_eq!(names(&["-l", "tier=zzz"]), "");
    // An unsupported field label is rejected (real messages: ConfigMaps only
    // know the metadata fields; Pods have their own conversion).
    let err = c.kubectl_err(&["get", "cm", "-n", &ns, "--field-selector", "spec.foo=bar"]);
    check_contains(
        &err,
        r#""spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace""#,
    );
    let err = c.kubectl_err(&["get", "pods", "-n", &ns, "--field-selector", "spec.foo=bar"]);
    check_contains(&err, "field label not supported: spec.foo");
    // A malformed label selector is rejected.
    c.kubectl_err(&["get", "cm", "-n", &ns, "-l", "tier in (a"]);

    // -o yaml / json / jsonpath / custom-columns / wide.
    let y: serde_yaml::Value =
        serde_yaml::from_str(&c.kubectl_ok(&["get", "cm", "a", "-n", &ns, "-o", "yaml"])).unwrap();
    check_eq!(y["kind"].as_str(), Some("ConfigMap"));
    check_eq!(y["metadata"]["name"].as_str(), Some("a"));
    check_eq!(y["data"]["me"].as_str(), Some("a"));
    let list = get_json(&c, &["cm", "-n", &ns]);
    check_eq!(list["kind"], "List");
    check_eq!(list["items"].as_array().map(Vec::len), Some(4));
    check_eq!(
        list["items"][0]["kind"],
        "ConfigMap",
        "items carry kind: {list:#}"
    );
    let ylist = c.kubectl_ok(&["get", "cm", "-n", &ns, "-l", "tier", "-o", "yaml"]);
    let ylist: serde_yaml::Value = serde_yaml::from_str(&ylist).unwrap();
    check_eq!(ylist["items"].as_sequence().map(Vec::len), Some(3));
    check_eq!(
        c.kubectl_ok(&[
            "get",
            "cm",
            "-n",
            &ns,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.data.me};{end}"
        ]),
        "a=a;b=b;c=c;d=d;"
    );
    let out = c.kubectl_ok(&[
        "get",
        "cm",
        "-n",
        &ns,
        "-o",
        "custom-columns=N:.metadata.name,T:.metadata.labels.tier",
    ]);
    check_eq!(
        table(&out),
        [
            ["N", "T"],
            ["a", "a"],
            ["b", "b"],
            ["c", "c"],
            ["d", "<none>"]
        ]
    );
    let out = c.kubectl_ok(&["get", "cm", "-n", &ns, "-o", "wide"]);
    check_eq!(table(&out)[0], ["NAME", "DATA", "AGE"], "{out}");
    let out = c.kubectl_ok(&["get", "cm", "-n", &ns, "--show-labels"]);
    let t = table(&out);
    check_eq!(t[0], ["NAME", "DATA", "AGE", "LABELS"], "{out}");
    check_eq!(row(&t, "a")[3], "tier=a", "{out}");
    check_eq!(row(&t, "d")[3], "<none>", "{out}");
    let out = c.kubectl_ok(&["get", "cm", "-n", &ns, "-L", "tier", "--no-headers"]);
    check_eq!(row(&table(&out), "b")[3], "b", "{out}");

    // Deployment table (wide) and pod table (wide).
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(WEB_DEPLOYMENT, &ns));
    let out = c.kubectl_ok(&["get", "deploy", "-n", &ns, "-o", "wide"]);
    check_eq!(
        header_columns(&out),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{out}"
    );
    let t = table(&out);
    let r = row(&t, "web");
    check_eq!(&r[1..4], ["0/2", "0", "0"], "{out}");
    check_eq!(&r[5..], ["nginx", "nginx:1.27", "app=web"], "{out}");
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(POD, &ns));
    let out = c.kubectl_ok(&["get", "pods", "-n", &ns, "-o", "wide"]);
    check_eq!(
        header_columns(&out),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ],
        "{out}"
    );
    let t = table(&out);
    check_eq!(&row(&t, "p1")[1..4], ["0/1", "Pending", "0"], "{out}");
    check_eq!(
        &row(&t, "p1")[5..],
        ["<none>", "<none>", "<none>", "<none>"],
        "{out}"
    );
    check_eq!(
        c.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            &ns,
            "--field-selector",
            "status.phase=Pending",
            "-o",
            "name"
        ]),
        "pod/p1\n"
    );
    check_eq!(
        c.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            &ns,
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name"
        ]),
        ""
    );
    check_eq!(
        c.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            &ns,
            "--field-selector",
            "spec.nodeName=",
            "-o",
            "name"
        ]),
        "pod/p1\n"
    );

    // Pagination: kubectl in chunks, and the raw API's continue tokens.
    check_eq!(
        names(&["--chunk-size=1"]),
        "configmap/a\nconfigmap/b\nconfigmap/c\nconfigmap/d\n"
    );
    let base = format!("/api/v1/namespaces/{ns}/configmaps");
    let page1 = raw_json(&c, &format!("{base}?limit=3"));
    let got: Vec<&str> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    check_eq!(got, ["a", "b", "c"]);
    let token = page1["metadata"]["continue"]
        .as_str()
        .expect("continue token on a partial page");
    check!(!token.is_empty());
    check_eq!(
        page1["metadata"]["remainingItemCount"],
        1,
        "{:#}",
        page1["metadata"]
    );
    let page2 = raw_json(&c, &format!("{base}?limit=3&continue={token}"));
    let got: Vec<&str> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    check_eq!(got, ["d"]);
    check!(
        page2["metadata"].get("continue").is_none_or(|t| t == ""),
        "{:#}",
        page2["metadata"]
    );
    let err = c.kubectl_err(&[
        "get",
        "--raw",
        &format!("{base}?limit=3&continue=not-a-token"),
    ]);
    check_contains(&err, "continue");
}

#[test]
fn api_resources_and_api_versions() {
    let c = Cluster::start();
    let out = c.kubectl_ok(&["api-resources"]);
    let t = table(&out);
    check_eq!(
        t[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        "{out}"
    );
    for expected in [
        &["deployments", "deploy", "apps/v1", "true", "Deployment"][..],
        &["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
        &["daemonsets", "ds", "apps/v1", "true", "DaemonSet"],
        &["statefulsets", "sts", "apps/v1", "true", "StatefulSet"],
        &["pods", "po", "v1", "true", "Pod"],
        &["namespaces", "ns", "v1", "false", "Namespace"],
        &["nodes", "no", "v1", "false", "Node"],
        &["services", "svc", "v1", "true", "Service"],
        &["endpoints", "ep", "v1", "true", "Endpoints"],
        &["configmaps", "cm", "v1", "true", "ConfigMap"],
        &["secrets", "v1", "true", "Secret"],
        &["events", "ev", "v1", "true", "Event"],
        &["serviceaccounts", "sa", "v1", "true", "ServiceAccount"],
        &["persistentvolumes", "pv", "v1", "false", "PersistentVolume"],
        &[
            "persistentvolumeclaims",
            "pvc",
            "v1",
            "true",
            "PersistentVolumeClaim",
        ],
        &["jobs", "batch/v1", "true", "Job"],
        &["cronjobs", "cj", "batch/v1", "true", "CronJob"],
        &["leases", "coordination.k8s.io/v1", "true", "Lease"],
        &[
            "endpointslices",
            "discovery.k8s.io/v1",
            "true",
            "EndpointSlice",
        ],
        &[
            "customresourcedefinitions",
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "false",
            "CustomResourceDefinition",
        ],
    ] {
        check!(
            t.iter().any(|r| r == expected),
            "api-resources lacks {expected:?}:\n{out}"
        );
    }

    let wide = c.kubectl_ok(&["api-resources", "-o", "wide"]);
    let line = wide
        .lines()
        .find(|l| l.starts_with("deployments "))
        .unwrap_or_else(|| panic!("no deployments in:\n{wide}"));
    // kubectl prints the verbs either as `[a b c]` or as `a,b,c`, depending on its version.
    let tokens: Vec<&str> = line
        .split(|ch: char| ch.is_whitespace() || ch == ',' || ch == '[' || ch == ']')
        .filter(|t| !t.is_empty())
        .collect();
    for verb in [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ] {
        check!(
            tokens.contains(&verb),
            "deployments lack verb {verb}: {line}"
        );
    }
    check!(
        line.trim_end().ends_with("all"),
        "deployments are in category all: {line}"
    );

    let apps = c.kubectl_ok(&["api-resources", "--api-group=apps", "-o", "name"]);
    for r in [
        "daemonsets.apps",
        "deployments.apps",
        "replicasets.apps",
        "statefulsets.apps",
    ] {
        check!(lines(&apps).iter().any(|l| l == r), "{r} missing:\n{apps}");
    }
    let cluster_scoped = c.kubectl_ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    let cs = lines(&cluster_scoped);
    for r in [
        "namespaces",
        "nodes",
        "persistentvolumes",
        "customresourcedefinitions.apiextensions.k8s.io",
    ] {
        check!(cs.iter().any(|l| l == r), "{r} missing:\n{cluster_scoped}");
    }
    check!(
        !cs.iter().any(|l| l == "pods" || l == "configmaps"),
        "{cluster_scoped}"
    );

    let versions = c.kubectl_ok(&["api-versions"]);
    let v = lines(&versions);
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "apiextensions.k8s.io/v1",
    ] {
        check!(
            v.iter().any(|l| l == gv),
            "api-versions lacks {gv}:\n{versions}"
        );
    }

    // Raw discovery documents.
    let core = raw_json(&c, "/api");
    check_eq!(core["kind"], "APIVersions");
    check_eq!(core["versions"], json!(["v1"]));
    let apps = raw_json(&c, "/apis/apps/v1");
    check_eq!(apps["kind"], "APIResourceList");
    check_eq!(apps["groupVersion"], "apps/v1");
    let scale = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .unwrap_or_else(|| panic!("no deployments/scale in {apps:#}"));
    check_eq!(scale["kind"], "Scale");
    check_eq!(scale["group"], "autoscaling");
}

#[test]
fn get_all_in_a_namespace() {
    let c = Cluster::start();
    let ns = namespace(&c, "all");
    let out = c.kubectl(&["get", "all", "-n", &ns]);
    check!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_eq!(String::from_utf8_lossy(&out.stdout), "");
    check_contains(
        &String::from_utf8_lossy(&out.stderr),
        &format!("No resources found in {ns} namespace."),
    );

    c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(WEB_DEPLOYMENT, &ns));
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(POD, &ns));
    c.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "svc",
        "-n",
        &ns,
        "--tcp=80:8080",
    ]);
    c.kubectl_ok(&[
        "create",
        "cm",
        "not-in-all",
        "-n",
        &ns,
        "--from-literal=a=b",
    ]);

    let names = c.kubectl_ok(&["get", "all", "-n", &ns, "-o", "name"]);
    let l = lines(&names);
    for n in ["pod/p1", "service/svc", "deployment.apps/web"] {
        check!(l.iter().any(|x| x == n), "get all lacks {n}:\n{names}");
    }
    check!(!l.iter().any(|x| x.starts_with("configmap/")), "{names}");

    let out = c.kubectl_ok(&["get", "all", "-n", &ns]);
    let t = table(&out);
    check!(t.iter().any(|r| r[0] == "pod/p1"), "{out}");
    check!(
        t.iter()
            .any(|r| r[0] == "service/svc" && r[1] == "ClusterIP"),
        "{out}"
    );
    check!(
        t.iter()
            .any(|r| r[0] == "deployment.apps/web" && r[1] == "0/2"),
        "{out}"
    );
    // Each kind gets its own header.
    check!(t.iter().filter(|r| r[0] == "NAME").count() >= 3, "{out}");
}

#[test]
fn every_served_kind_can_be_created_listed_and_deleted() {
    // The API alone: these columns and lists are of the objects as created, before any
    // controller acts on them (controllers_e2e covers what controllers make of them).
    let c = Cluster::start_with(&["--disable-controllers"]);
    let ns = namespace(&c, "kinds");
    let manifest = fill(
        r#"apiVersion: v1
kind: Service
metadata: {name: svc, namespace: $NS}
spec:
  selector: {app: web}
  ports:
  - port: 80
---
apiVersion: v1
kind: Endpoints
metadata: {name: ep, namespace: $NS}
subsets:
- addresses: [{ip: 10.1.2.3}]
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Secret
metadata: {name: sec, namespace: $NS}
stringData: {password: hunter2}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa1, namespace: $NS}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-$NS}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/pv}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pvc, namespace: $NS}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Node
metadata: {name: node-$NS}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: lease, namespace: $NS}
spec: {holderIdentity: holder-1, leaseDurationSeconds: 15}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: es, namespace: $NS, labels: {kubernetes.io/service-name: svc}}
addressType: IPv4
endpoints:
- addresses: [10.1.2.3]
ports:
- {name: http, port: 8080, protocol: TCP}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs, namespace: $NS}
spec:
  replicas: 2
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds, namespace: $NS}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: sts, namespace: $NS}
spec:
  serviceName: svc
  replicas: 1
  selector: {matchLabels: {app: sts}}
  template:
    metadata: {labels: {app: sts}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: job, namespace: $NS}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj, namespace: $NS}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Event
metadata: {name: ev1, namespace: $NS}
involvedObject: {kind: Pod, name: p1, namespace: $NS}
reason: Testing
message: hello from the test
type: Normal
"#,
        &ns,
    );
    let applied = c.kubectl_stdin_ok(&["apply", "-f", "-"], &manifest);
    check_eq!(
        lines(&applied),
        [
            "service/svc created".to_string(),
            "endpoints/ep created".into(),
            "secret/sec created".into(),
            "serviceaccount/sa1 created".into(),
            format!("persistentvolume/pv-{ns} created"),
            "persistentvolumeclaim/pvc created".into(),
            format!("node/node-{ns} created"),
            "lease.coordination.k8s.io/lease created".into(),
            "endpointslice.discovery.k8s.io/es created".into(),
            "replicaset.apps/rs created".into(),
            "daemonset.apps/ds created".into(),
            "statefulset.apps/sts created".into(),
            "job.batch/job created".into(),
            "cronjob.batch/cj created".into(),
            "event/ev1 created".into(),
        ]
    );

    // Tables with the real printers' columns.
    let check = |resource: &str, header: &[&str], name: &str, cells: &[&str]| {
        let out = c.kubectl_ok(&["get", resource, "-n", &ns]);
        check_eq!(
            header_columns(&out),
            header,
            "header of `get {resource}`:\n{out}"
        );
        let t = table(&out);
        let r = row(&t, name);
        // SERVER-GAP: no ClusterIP allocation (see the e2e report).
        check_eq!(
            &r[1..=cells.len()],
            cells,
            "row {name} of `get {resource}`:\n{out}"
        );
    };
    let svc = get_json(&c, &["svc", "svc", "-n", &ns]);
    let cluster_ip = svc["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // SERVER-GAP: no ClusterIP allocation, no Service defaulting (see the e2e report).
    check!(
        cluster_ip.parse::<std::net::IpAddr>().is_ok(),
        "a ClusterIP is allocated: spec.clusterIP = {:?}",
        svc["spec"]["clusterIP"]
    );
    check_fields(
        &svc,
        "service defaulting",
        &[
            ("/spec/type", json!("ClusterIP")),
            ("/spec/sessionAffinity", json!("None")),
            ("/spec/ports/0/protocol", json!("TCP")),
            ("/spec/ports/0/targetPort", json!(80)),
        ],
    );
    check(
        "services",
        &[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        "svc",
        &["ClusterIP", &cluster_ip, "<none>", "80/TCP"],
    );
    check(
        "endpoints",
        &["NAME", "ENDPOINTS", "AGE"],
        "ep",
        &["10.1.2.3:8080"],
    );
    check(
        "secrets",
        &["NAME", "TYPE", "DATA", "AGE"],
        "sec",
        &["Opaque", "1"],
    );
    check_eq!(
        jsonpath(&c, &ns, "secret/sec", "{.data.password}"),
        "aHVudGVyMg=="
    );
    check(
        "serviceaccounts",
        &["NAME", "SECRETS", "AGE"],
        "sa1",
        &["0"],
    );
    check("leases", &["NAME", "HOLDER", "AGE"], "lease", &["holder-1"]);
    check(
        "endpointslices",
        &["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        "es",
        &["IPv4", "8080", "10.1.2.3"],
    );
    check(
        "replicasets",
        &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "rs",
        &["2", "0", "0"],
    );
    check(
        "daemonsets",
        &[
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ],
        "ds",
        &["0", "0", "0", "0", "0", "<none>"],
    );
    check("statefulsets", &["NAME", "READY", "AGE"], "sts", &["0/1"]);
    let out = c.kubectl_ok(&["get", "nodes"]);
    check_eq!(
        header_columns(&out),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{out}"
    );
    check_eq!(
        &row(&table(&out), &format!("node-{ns}"))[1..3],
        ["Unknown", "<none>"],
        "{out}"
    );
    for r in ["pvc", "jobs", "cronjobs", "events"] {
        let out = c.kubectl_ok(&["get", r, "-n", &ns, "-o", "name"]);
        check_eq!(lines(&out).len(), 1, "`get {r}`:\n{out}");
    }
    c.kubectl_ok(&["get", "pv", &format!("pv-{ns}")]);

    // Defaults the API server fills in.
    let job = get_json(&c, &["job", "job", "-n", &ns]);
    // SERVER-GAP: no Job defaulting, selector and labels not generated (see the e2e report).
    check_fields(
        &job,
        "job defaulting",
        &[
            ("/spec/backoffLimit", json!(6)),
            ("/spec/completions", json!(1)),
            ("/spec/parallelism", json!(1)),
            ("/spec/completionMode", json!("NonIndexed")),
            ("/spec/suspend", json!(false)),
            ("/spec/template/metadata/labels/job-name", json!("job")),
            (
                "/spec/template/metadata/labels/batch.kubernetes.io~1job-name",
                json!("job"),
            ),
        ],
    );
    check!(
        job.pointer("/spec/selector/matchLabels/batch.kubernetes.io~1controller-uid")
            .is_some(),
        "the job selector is generated: {:#}",
        job["spec"]
    );
    let cj = get_json(&c, &["cronjob", "cj", "-n", &ns]);
    // SERVER-GAP: no CronJob/DaemonSet/StatefulSet/Secret defaulting (see the e2e report).
    check_fields(
        &cj,
        "cronjob defaulting",
        &[
            ("/spec/concurrencyPolicy", json!("Allow")),
            ("/spec/suspend", json!(false)),
            ("/spec/successfulJobsHistoryLimit", json!(3)),
            ("/spec/failedJobsHistoryLimit", json!(1)),
        ],
    );
    let ds = get_json(&c, &["ds", "ds", "-n", &ns]);
    check_fields(
        &ds,
        "daemonset defaulting",
        &[
            ("/spec/updateStrategy/type", json!("RollingUpdate")),
            ("/spec/revisionHistoryLimit", json!(10)),
        ],
    );
    let sts = get_json(&c, &["sts", "sts", "-n", &ns]);
    check_fields(
        &sts,
        "statefulset defaulting",
        &[
            ("/spec/podManagementPolicy", json!("OrderedReady")),
            ("/spec/updateStrategy/type", json!("RollingUpdate")),
            ("/spec/revisionHistoryLimit", json!(10)),
        ],
    );
    let sec = get_json(&c, &["secret", "sec", "-n", &ns]);
    check_fields(&sec, "secret defaulting", &[("/type", json!("Opaque"))]);
    check!(
        sec.get("stringData").is_none(),
        "stringData is folded into data: {sec:#}"
    );

    // Everything goes away with delete -f.
    let out = c.kubectl_stdin_ok(&["delete", "-f", "-"], &manifest);
    check_eq!(lines(&out).len(), 15, "{out}");
    let created: Vec<String> = lines(&applied)
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let left = c.kubectl_ok(&[
        "get",
        "svc,ep,secrets,sa,pvc,leases,endpointslices,rs,ds,sts,jobs,cj,events",
        "-n",
        &ns,
        "-o",
        "name",
    ]);
    for l in lines(&left) {
        check!(!created.contains(&l), "{l} survived delete -f:\n{left}");
    }
    c.kubectl_err(&["get", "node", &format!("node-{ns}")]);
}

#[test]
fn custom_resource_definitions() {
    let c = Cluster::start();
    let ns = namespace(&c, "crd");
    check_eq!(
        c.kubectl_stdin_ok(&["apply", "-f", "-"], CRD),
        "customresourcedefinition.apiextensions.k8s.io/widgets.e2e.tugboat.dev created\n"
    );
    check_eq!(
        c.kubectl_ok(&[
            "wait",
            "--for",
            "condition=established",
            "--timeout=60s",
            "crd/widgets.e2e.tugboat.dev"
        ]),
        "customresourcedefinition.apiextensions.k8s.io/widgets.e2e.tugboat.dev condition met\n"
    );
    let out = c.kubectl_ok(&["get", "crd"]);
    check_eq!(header_columns(&out), ["NAME", "CREATED AT"], "{out}");
    row(&table(&out), "widgets.e2e.tugboat.dev");

    let out = c.kubectl_ok(&["api-resources", "--api-group=e2e.tugboat.dev"]);
    check!(
        table(&out)
            .iter()
            .any(|r| r == &["widgets", "wd", "e2e.tugboat.dev/v1", "true", "Widget"]),
        "{out}"
    );

    check_eq!(
        c.kubectl_stdin_ok(
            &["create", "-f", "-"],
            &widget(&ns, "w1", "  size: 3\n  color: blue\n")
        ),
        "widget.e2e.tugboat.dev/w1 created\n"
    );
    check_eq!(
        c.kubectl_ok(&["get", "wd", "-n", &ns, "-o", "name"]),
        "widget.e2e.tugboat.dev/w1\n"
    );

    // The status subresource.
    check_eq!(
        c.kubectl_ok(&[
            "patch",
            "widget",
            "w1",
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Ready"}}"#
        ]),
        "widget.e2e.tugboat.dev/w1 patched\n"
    );
    let out = c.kubectl_ok(&["get", "widgets", "-n", &ns]);
    check_eq!(
        header_columns(&out),
        ["NAME", "SIZE", "COLOR", "PHASE", "AGE"],
        "{out}"
    );
    check_eq!(
        &row(&table(&out), "w1")[1..4],
        ["3", "blue", "Ready"],
        "{out}"
    );
    // Status written through the main resource is ignored; spec changes are kept.
    c.kubectl_ok(&[
        "patch",
        "widget",
        "w1",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"size":4},"status":{"phase":"Hacked"}}"#,
    ]);
    check_eq!(
        jsonpath(&c, &ns, "widget/w1", "{.spec.size} {.status.phase}"),
        "4 Ready"
    );
    // Spec written through the status subresource is ignored.
    c.kubectl_ok(&[
        "patch",
        "widget",
        "w1",
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":9},"status":{"phase":"Done"}}"#,
    ]);
    check_eq!(
        jsonpath(&c, &ns, "widget/w1", "{.spec.size} {.status.phase}"),
        "4 Done"
    );
    let w = get_json(&c, &["widget", "w1", "-n", &ns]);
    check_eq!(
        w["metadata"]["generation"],
        2,
        "only spec changes bump generation: {w:#}"
    );

    // Schema violations (real apiserver messages).
    let err = c.kubectl_stdin_err(&["create", "-f", "-"], &widget(&ns, "bad", "  size: big\n"));
    check_contains(&err, r#"The Widget "bad" is invalid"#);
    check_contains(&err, "spec.size: Invalid value");
    check_contains(&err, "must be of type integer");
    let err = c.kubectl_stdin_err(&["create", "-f", "-"], &widget(&ns, "bad", "  size: 0\n"));
    check_contains(&err, "spec.size: Invalid value: 0");
    check_contains(&err, "should be greater than or equal to 1");
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        &widget(&ns, "bad", "  size: 1\n  color: purple\n"),
    );
    check_contains(&err, r#"spec.color: Unsupported value: "purple""#);
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        &widget(&ns, "bad", "  color: red\n"),
    );
    check_contains(&err, "spec.size: Required value");
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        &widget(&ns, "bad", "  size: 1\n  foo: bar\n"),
    );
    check_contains(&err, r#"unknown field "spec.foo""#);
    c.kubectl_err(&["get", "widget", "bad", "-n", &ns]);

    // SSA works on custom resources too.
    check_eq!(
        c.kubectl_stdin_ok(
            &["apply", "--server-side", "-f", "-"],
            &widget(&ns, "w2", "  size: 2\n")
        ),
        "widget.e2e.tugboat.dev/w2 serverside-applied\n"
    );

    // Deleting the CRD deletes its instances: a re-created CRD starts empty.
    let out = c.kubectl_ok(&["delete", "crd", "widgets.e2e.tugboat.dev"]);
    check!(
        out.starts_with(
            r#"customresourcedefinition.apiextensions.k8s.io "widgets.e2e.tugboat.dev" deleted"#
        ),
        "{out}"
    );
    c.kubectl_err(&[
        "get",
        "--raw",
        &format!("/apis/e2e.tugboat.dev/v1/namespaces/{ns}/widgets"),
    ]);
    c.kubectl_stdin_ok(&["apply", "-f", "-"], CRD);
    c.kubectl_ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/widgets.e2e.tugboat.dev",
    ]);
    let list = raw_json(
        &c,
        &format!("/apis/e2e.tugboat.dev/v1/namespaces/{ns}/widgets"),
    );
    // SERVER-GAP: deleting a CRD leaves its instances behind (see the e2e report).
    check_eq!(list["items"], json!([]), "{list:#}");
}

#[test]
fn generators_send_protobuf() {
    let c = Cluster::start();
    let ns = unique("gen");
    let out = c.kubectl(&["create", "namespace", &ns, "-v=8"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    check!(out.status.success(), "{stderr}");
    check_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("namespace/{ns} created\n")
    );
    check_contains(&stderr, "Content-Type: application/vnd.kubernetes.protobuf");
    check_eq!(
        c.kubectl_ok(&["get", "ns", &ns, "-o", "jsonpath={.status.phase}"]),
        "Active"
    );

    check_eq!(
        c.kubectl_ok(&[
            "create",
            "configmap",
            "c1",
            "-n",
            &ns,
            "--from-literal=a=1",
            "--from-literal=b=two words"
        ]),
        "configmap/c1 created\n"
    );
    let cm = get_json(&c, &["cm", "c1", "-n", &ns]);
    check_eq!(cm["data"], json!({"a": "1", "b": "two words"}));

    check_eq!(
        c.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "s1",
            "-n",
            &ns,
            "--from-literal=password=s3cr3t!"
        ]),
        "secret/s1 created\n"
    );
    let encoded = jsonpath(&c, &ns, "secret/s1", "{.data.password}");
    check_eq!(encoded, "czNjcjN0IQ==");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .unwrap();
    check_eq!(decoded, b"s3cr3t!");
    // SERVER-GAP: Secret type is not defaulted to Opaque (see the e2e report).
    check_eq!(jsonpath(&c, &ns, "secret/s1", "{.type}"), "Opaque");
    let out = c.kubectl_ok(&["get", "secret", "s1", "-n", &ns]);
    check_eq!(&row(&table(&out), "s1")[1..3], ["Opaque", "1"], "{out}");

    check_eq!(
        c.kubectl_ok(&[
            "create",
            "deployment",
            "web",
            "-n",
            &ns,
            "--image=nginx",
            "--replicas=2"
        ]),
        "deployment.apps/web created\n"
    );
    let d = get_json(&c, &["deploy", "web", "-n", &ns]);
    check_eq!(d["spec"]["replicas"], 2);
    check_eq!(d["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
    check_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["name"],
        "nginx"
    );
    check_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx"
    );
    // Defaults: an image without a tag pulls Always; rolling update 25%/25%.
    // SERVER-GAP: no Deployment defaulting (see the e2e report).
    check_fields(
        &d,
        "deployment defaulting",
        &[
            (
                "/spec/template/spec/containers/0/imagePullPolicy",
                json!("Always"),
            ),
            ("/spec/strategy/type", json!("RollingUpdate")),
            ("/spec/strategy/rollingUpdate/maxSurge", json!("25%")),
            ("/spec/strategy/rollingUpdate/maxUnavailable", json!("25%")),
            ("/spec/revisionHistoryLimit", json!(10)),
            ("/spec/progressDeadlineSeconds", json!(600)),
        ],
    );
    check_eq!(d["metadata"]["generation"], 1);

    check_eq!(
        c.kubectl_ok(&["create", "job", "j1", "-n", &ns, "--image=busybox"]),
        "job.batch/j1 created\n"
    );
    let j = get_json(&c, &["job", "j1", "-n", &ns]);
    check_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    check_eq!(j["spec"]["template"]["spec"]["containers"][0]["name"], "j1");
    check_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );

    // Other generators.
    check_eq!(
        c.kubectl_ok(&["create", "serviceaccount", "robot", "-n", &ns]),
        "serviceaccount/robot created\n"
    );
    check_eq!(
        c.kubectl_ok(&[
            "create",
            "service",
            "clusterip",
            "svc",
            "-n",
            &ns,
            "--tcp=80:8080"
        ]),
        "service/svc created\n"
    );
    check_eq!(
        jsonpath(&c, &ns, "svc/svc", "{.spec.ports[0].targetPort}"),
        "8080"
    );
    check_eq!(
        c.kubectl_ok(&[
            "create",
            "cronjob",
            "cj",
            "-n",
            &ns,
            "--image=busybox",
            "--schedule=*/1 * * * *"
        ]),
        "cronjob.batch/cj created\n"
    );
    check_eq!(
        c.kubectl_ok(&[
            "create",
            "secret",
            "tls",
            "tls1",
            "-n",
            &ns,
            &format!("--cert={}", c.data_dir().join("pki/ca.crt").display()),
            &format!("--key={}", c.data_dir().join("pki/ca.key").display())
        ])
        .trim_end(),
        "secret/tls1 created"
    );
    check_eq!(
        jsonpath(&c, &ns, "secret/tls1", "{.type}"),
        "kubernetes.io/tls"
    );

    // Protobuf on the way back: -o name with protobuf accepted still lists them all.
    let names = c.kubectl_ok(&["get", "cm,secret,deploy,job", "-n", &ns, "-o", "name"]);
    for n in [
        "configmap/c1",
        "secret/s1",
        "deployment.apps/web",
        "job.batch/j1",
    ] {
        check!(
            lines(&names).iter().any(|l| l == n),
            "{n} missing:\n{names}"
        );
    }
}

#[test]
fn bad_input_is_rejected_with_real_messages() {
    let c = Cluster::start();
    let ns = namespace(&c, "bad");
    let unknown_field = fill(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: uf\n  namespace: $NS\nspec:\n  foo: bar\n  selector:\n    matchLabels:\n      app: uf\n  template:\n    metadata:\n      labels:\n        app: uf\n    spec:\n      containers:\n      - name: c\n        image: nginx\n",
        &ns,
    );
    // Default validation is strict: the server rejects the unknown field and names it.
    let err = c.kubectl_stdin_err(&["create", "-f", "-"], &unknown_field);
    check_contains(&err, r#"strict decoding error: unknown field "spec.foo""#);
    let err = c.kubectl_stdin_err(&["apply", "-f", "-"], &unknown_field);
    check_contains(&err, r#"unknown field "spec.foo""#);
    c.kubectl_err(&["get", "deploy", "uf", "-n", &ns]);
    // --validate=warn creates it with a warning; --validate=false silently drops the field.
    let out = c.kubectl_stdin(&["create", "--validate=warn", "-f", "-"], &unknown_field);
    check!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_contains(
        &String::from_utf8_lossy(&out.stderr),
        r#"unknown field "spec.foo""#,
    );
    c.kubectl_ok(&["delete", "deploy", "uf", "-n", &ns]);
    check_eq!(
        c.kubectl_stdin_ok(&["create", "--validate=false", "-f", "-"], &unknown_field),
        "deployment.apps/uf created\n"
    );
    let d = c.kubectl_ok(&["get", "deploy", "uf", "-n", &ns, "-o", "json"]);
    check_not_contains(&d, "\"foo\"");
    // Unknown nested field in a container.
    let err = c.kubectl_stdin_err(
        &["apply", "-f", "-"],
        &unknown_field
            .replace("name: uf\n", "name: uf2\n")
            .replace("  foo: bar\n", "")
            .replace(
                "image: nginx\n",
                "image: nginx\n        imagePullPolice: Always\n",
            ),
    );
    check_contains(
        &err,
        r#"unknown field "spec.template.spec.containers[0].imagePullPolice""#,
    );

    // Invalid names.
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Foo_Bar\n  namespace: {ns}\n"
        ),
    );
    check_contains(&err, r#"The ConfigMap "Foo_Bar" is invalid"#);
    check_contains(&err, r#"metadata.name: Invalid value: "Foo_Bar""#);
    check_contains(&err, "RFC 1123");
    let err = c.kubectl_err(&["create", "namespace", "Bad.Name"]);
    check_contains(&err, "RFC 1123");
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: {ns}\ndata:\n  a: b\n"),
    );
    check_contains(&err, "name or generateName is required");
    // generateName.
    let out = c.kubectl_stdin_ok(
        &["create", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: gen-\n  namespace: {ns}\n"
        ),
    );
    let name = out
        .trim_end()
        .strip_prefix("configmap/gen-")
        .and_then(|s| s.strip_suffix(" created"));
    check!(name.is_some_and(|s| s.len() == 5), "{out}");

    // Type errors in built-in kinds.
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        &fill(WEB_DEPLOYMENT, &ns).replace("replicas: 2", "replicas: two"),
    );
    check_contains(&err, "replicas");
    // Semantic validation of built-in kinds.
    // SERVER-GAP: Deployment validation (selector vs template labels) is missing (see the e2e report).
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        &fill(WEB_DEPLOYMENT, &ns).replace(
            "      labels:\n        app: web\n    spec:",
            "      labels:\n        app: other\n    spec:",
        ),
    );
    check_contains(&err, r#"The Deployment "web" is invalid"#);
    check_contains(&err, "`selector` does not match template `labels`");

    // Wrong apiVersion for the kind (kubectl's discovery error).
    let err = c.kubectl_stdin_err(
        &["apply", "-f", "-"],
        &fill(WEB_DEPLOYMENT, &ns).replace("apiVersion: apps/v1", "apiVersion: v1"),
    );
    // SERVER-GAP: /openapi/v2 ignores Accept: protobuf (kubectl's validation falls back to v2 for unknown GVKs) (see the e2e report).
    check_contains(&err, r#"no matches for kind "Deployment" in version "v1""#);
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        &format!("apiVersion: apps/v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: {ns}\n"),
    );
    check_contains(
        &err,
        r#"no matches for kind "ConfigMap" in version "apps/v1""#,
    );
    let err = c.kubectl_err(&["get", "frobnicators"]);
    check_contains(
        &err,
        r#"the server doesn't have a resource type "frobnicators""#,
    );

    // Nonexistent namespace: writes fail, lists are empty.
    let err = c.kubectl_err(&[
        "create",
        "configmap",
        "x",
        "-n",
        "nope-ns",
        "--from-literal=a=b",
    ]);
    check_contains(&err, r#"namespaces "nope-ns" not found"#);
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: nope-ns\n",
    );
    check_contains(&err, r#"namespaces "nope-ns" not found"#);
    let out = c.kubectl(&["get", "cm", "-n", "nope-ns"]);
    check!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_contains(
        &String::from_utf8_lossy(&out.stderr),
        "No resources found in nope-ns namespace.",
    );
    // kubectl 1.32 itself checks the namespace when a GET answers 404 and reports the
    // namespace (the server answered `configmaps "x" not found`; `-v=8` shows both requests).
    let err = c.kubectl_err(&["get", "cm", "x", "-n", "nope-ns"]);
    check_contains(&err, r#"namespaces "nope-ns" not found"#);

    // Create twice.
    let dup =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n  namespace: {ns}\n");
    c.kubectl_stdin_ok(&["create", "-f", "-"], &dup);
    let err = c.kubectl_stdin_err(&["create", "-f", "-"], &dup);
    check_contains(&err, "Error from server (AlreadyExists)");
    check_contains(&err, r#"configmaps "dup" already exists"#);
    let err = c.kubectl_err(&["create", "configmap", "dup", "-n", &ns]);
    check_contains(&err, r#"configmaps "dup" already exists"#);

    // Namespace mismatch between the manifest and -n.
    let err = c.kubectl_stdin_err(&["create", "-n", "default", "-f", "-"], &dup);
    check_contains(&err, "the namespace from the provided object");

    // Malformed input.
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n",
    );
    check!(!err.is_empty());
    // A Secret with data that is not base64.
    let err = c.kubectl_stdin_err(
        &["create", "-f", "-"],
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: {ns}\ndata:\n  k: \"!!!not base64\"\n"),
    );
    // SERVER-GAP: bad base64 message differs (see the e2e report).
    check_contains(&err, "illegal base64");
}

#[test]
fn scale_deployment_and_replicaset() {
    let c = Cluster::start();
    let ns = namespace(&c, "scale");
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(WEB_DEPLOYMENT, &ns));
    check_eq!(
        c.kubectl_ok(&["scale", "deployment", "web", "-n", &ns, "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    check_eq!(jsonpath(&c, &ns, "deploy/web", "{.spec.replicas}"), "5");
    let scale = raw_json(
        &c,
        &format!("/apis/apps/v1/namespaces/{ns}/deployments/web/scale"),
    );
    check_eq!(scale["kind"], "Scale");
    check_eq!(scale["apiVersion"], "autoscaling/v1");
    check_eq!(scale["spec"]["replicas"], 5);
    check_eq!(scale["status"]["selector"], "app=web");
    // A precondition on the current size (checked by kubectl against the scale subresource).
    let err = c.kubectl_err(&[
        "scale",
        "deployment",
        "web",
        "-n",
        &ns,
        "--current-replicas=4",
        "--replicas=6",
    ]);
    check_contains(&err, "Expected replicas to be 4, was 5");
    check_eq!(jsonpath(&c, &ns, "deploy/web", "{.spec.replicas}"), "5");
    check_eq!(
        c.kubectl_ok(&[
            "scale",
            "deploy/web",
            "-n",
            &ns,
            "--current-replicas=5",
            "--replicas=0"
        ]),
        "deployment.apps/web scaled\n"
    );
    check_eq!(jsonpath(&c, &ns, "deploy/web", "{.spec.replicas}"), "0");

    c.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &fill(WEB_DEPLOYMENT, &ns)
            .replace("kind: Deployment", "kind: ReplicaSet")
            .replace("name: web", "name: rs"),
    );
    check_eq!(
        c.kubectl_ok(&["scale", "rs", "rs", "-n", &ns, "--replicas=3"]),
        "replicaset.apps/rs scaled\n"
    );
    check_eq!(jsonpath(&c, &ns, "rs/rs", "{.spec.replicas}"), "3");
    let err = c.kubectl_err(&["scale", "deploy", "ghost", "-n", &ns, "--replicas=1"]);
    check_contains(&err, r#"deployments.apps "ghost" not found"#);
}

#[test]
fn delete_namespace_removes_its_contents() {
    let c = Cluster::start();
    let ns = namespace(&c, "doomed");
    for i in 0..3 {
        c.kubectl_ok(&[
            "create",
            "cm",
            &format!("cm{i}"),
            "-n",
            &ns,
            "--from-literal=a=b",
        ]);
    }
    c.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        &ns,
        "--from-literal=a=b",
    ]);
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(WEB_DEPLOYMENT, &ns));
    let keep = namespace(&c, "kept");
    c.kubectl_ok(&["create", "cm", "cm0", "-n", &keep, "--from-literal=a=b"]);

    let out = c.kubectl_ok(&["delete", "ns", &ns]);
    check!(
        out.starts_with(&format!("namespace \"{ns}\" deleted")),
        "{out}"
    );
    let err = c.kubectl_err(&["get", "ns", &ns]);
    check_contains(&err, &format!("namespaces \"{ns}\" not found"));
    let out = c.kubectl(&["get", "cm", "-n", &ns]);
    check!(out.status.success());
    check_eq!(String::from_utf8_lossy(&out.stdout), "");
    // Re-creating the namespace does not bring anything back.
    c.kubectl_ok(&["create", "ns", &ns]);
    check_eq!(
        c.kubectl_ok(&["get", "cm,secret,deploy", "-n", &ns, "-o", "name"]),
        ""
    );
    // The other namespace is untouched.
    check_eq!(
        c.kubectl_ok(&["get", "cm", "-n", &keep, "-o", "name"]),
        "configmap/cm0\n"
    );
    // The system namespaces may not be deleted (real message).
    // SERVER-GAP: the default namespaces can be deleted (see the e2e report).
    let err = c.kubectl_err(&["delete", "ns", "default"]);
    check_contains(
        &err,
        r#"namespaces "default" is forbidden: this namespace may not be deleted"#,
    );
    let err = c.kubectl_err(&["delete", "ns", "kube-system"]);
    check_contains(&err, "this namespace may not be deleted");
}

#[test]
fn raw_endpoints_openapi_and_authentication() {
    let c = Cluster::start();
    let v = raw_json(&c, "/version");
    check!(v["major"].as_str().is_some_and(|s| !s.is_empty()), "{v:#}");
    check!(v["minor"].as_str().is_some_and(|s| !s.is_empty()), "{v:#}");
    check!(
        v["gitVersion"].as_str().is_some_and(|s| s.starts_with('v')),
        "{v:#}"
    );
    check!(v["platform"].as_str().is_some(), "{v:#}");
    let version = c.kubectl_ok(&["version", "-o", "json"]);
    let version: Value = serde_json::from_str(&version).unwrap();
    check_eq!(version["serverVersion"]["gitVersion"], v["gitVersion"]);
    for path in ["/healthz", "/livez", "/readyz"] {
        check_eq!(c.kubectl_ok(&["get", "--raw", path]), "ok", "{path}");
    }

    let v3 = raw_json(&c, "/openapi/v3");
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/apiextensions.k8s.io/v1",
    ] {
        let url = v3["paths"][gv]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("/openapi/v3 lacks {gv}: {v3:#}"));
        if gv == "apis/apps/v1" {
            let doc = raw_json(&c, url);
            check!(
                doc["openapi"].as_str().is_some_and(|s| s.starts_with("3.")),
                "{}",
                doc["openapi"]
            );
            check!(
                doc["components"]["schemas"]
                    .get("io.k8s.api.apps.v1.Deployment")
                    .is_some()
            );
        }
    }
    let v2 = raw_json(&c, "/openapi/v2");
    check_eq!(v2["swagger"], "2.0");
    check!(v2["definitions"].get("io.k8s.api.core.v1.Pod").is_some());

    // A 404 for an unknown path.
    let err = c.kubectl_err(&["get", "--raw", "/apis/nonexistent.example.com/v1"]);
    check_contains(&err, "NotFound");

    // Wrong token: 401, which kubectl reports as "You must be logged in".
    let good = std::fs::read_to_string(c.kubeconfig()).unwrap();
    let token = c.token();
    check_contains(&good, &token);
    let bad_path = c.data_dir().join("bad-kubeconfig");
    std::fs::write(&bad_path, good.replace(&token, "not-the-token")).unwrap();
    let out = c.kubectl_with_kubeconfig(&bad_path, &["get", "ns", "-v=8"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    check!(
        !out.status.success(),
        "a wrong token must be refused:\n{stderr}"
    );
    check_contains(&stderr, "You must be logged in to the server");
    check_contains(&stderr, "401");
    // kubectl -v=8 logs the 401 body: a Status (klog escapes its quotes).
    check_contains(&stderr, r#"\"kind\":\"Status\""#);
    check_contains(&stderr, r#"\"code\":401"#);

    // No credentials at all (kubectl would prompt for a username here, so
    // this one needs curl): 401 with a Status body.
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let out = std::process::Command::new("curl")
            .args(["-sk", "--max-time", "20", "-w", "\n%{http_code}"])
            .arg(format!("{}/api/v1/namespaces", c.url()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, code) = text.rsplit_once('\n').unwrap();
        check_eq!(code, "401", "{text}");
        let status: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("401 body is not JSON ({e}): {body}"));
        check_eq!(status["kind"], "Status", "{status:#}");
        check_eq!(status["apiVersion"], "v1", "{status:#}");
        check_eq!(status["status"], "Failure", "{status:#}");
        check_eq!(status["reason"], "Unauthorized", "{status:#}");
        check_eq!(status["code"], 401, "{status:#}");
        // With the token (and the CA) it works.
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "20", "--cacert"])
            .arg(c.data_dir().join("pki/ca.crt"))
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("{}/api/v1/namespaces/default", c.url()))
            .output()
            .unwrap();
        let ns: Value = serde_json::from_slice(&out.stdout).unwrap();
        check_eq!(ns["metadata"]["name"], "default", "{ns:#}");
    }
}

#[test]
fn dry_run_server_does_not_persist() {
    let c = Cluster::start();
    let ns = namespace(&c, "dry");
    check_eq!(
        c.kubectl_ok(&[
            "create",
            "cm",
            "dr",
            "-n",
            &ns,
            "--from-literal=a=b",
            "--dry-run=server"
        ]),
        "configmap/dr created (server dry run)\n"
    );
    c.kubectl_err(&["get", "cm", "dr", "-n", &ns]);
    check_eq!(
        c.kubectl_stdin_ok(
            &["apply", "--dry-run=server", "-f", "-"],
            &fill(WEB_DEPLOYMENT, &ns)
        ),
        "deployment.apps/web created (server dry run)\n"
    );
    c.kubectl_err(&["get", "deploy", "web", "-n", &ns]);
    // Server dry run still validates.
    let err = c.kubectl_stdin_err(
        &["create", "--dry-run=server", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Foo_Bar\n  namespace: {ns}\n"
        ),
    );
    check_contains(&err, "RFC 1123");
    // kubectl diff uses server-side dry run.
    c.kubectl_stdin_ok(&["apply", "-f", "-"], &fill(WEB_DEPLOYMENT, &ns));
    let out = c.kubectl_stdin(
        &["diff", "-f", "-"],
        &fill(WEB_DEPLOYMENT, &ns).replace("replicas: 2", "replicas: 7"),
    );
    check_eq!(
        out.status.code(),
        Some(1),
        "kubectl diff exits 1 when there are differences: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8_lossy(&out.stdout);
    check_contains(&diff, "-  replicas: 2");
    check_contains(&diff, "+  replicas: 7");
    check_eq!(jsonpath(&c, &ns, "deploy/web", "{.spec.replicas}"), "2");
}

#[test]
fn restart_keeps_everything() {
    let mut c = Cluster::start();
    let ns = namespace(&c, "durable");
    c.kubectl_ok(&["create", "cm", "r1", "-n", &ns, "--from-literal=k=v"]);
    c.kubectl_stdin_ok(&["apply", "-f", "-"], CRD);
    c.kubectl_ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/widgets.e2e.tugboat.dev",
    ]);
    c.kubectl_stdin_ok(&["create", "-f", "-"], &widget(&ns, "w1", "  size: 3\n"));
    let before = get_json(&c, &["cm", "r1", "-n", &ns]);
    let token = c.token();

    c.restart();
    check!(c.is_running());
    check_eq!(c.token(), token, "the admin token survives a restart");
    let after = get_json(&c, &["cm", "r1", "-n", &ns]);
    check_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    check_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    check_eq!(after["data"], before["data"]);
    // CRDs and their objects are served again at once.
    check_eq!(
        c.kubectl_ok(&["get", "widgets", "-n", &ns, "-o", "name"]),
        "widget.e2e.tugboat.dev/w1\n"
    );
    // Writes still work, and the namespace list is intact (no duplicates of the defaults).
    c.kubectl_ok(&["create", "cm", "r2", "-n", &ns, "--from-literal=k=v"]);
    check_eq!(
        c.kubectl_ok(&["get", "cm", "-n", &ns, "-o", "name"]),
        "configmap/r1\nconfigmap/r2\n"
    );
    let nss = lines(&c.kubectl_ok(&["get", "ns", "-o", "name"]));
    check_eq!(nss.len(), 5, "{nss:?}");
    // An update with the pre-restart resourceVersion still works (it is current).
    let yaml = c
        .kubectl_ok(&["get", "cm", "r1", "-n", &ns, "-o", "yaml"])
        .replace("  k: v\n", "  k: w\n");
    c.restart();
    check_eq!(
        c.kubectl_stdin_ok(&["replace", "-f", "-"], &yaml),
        "configmap/r1 replaced\n"
    );
}

#[test]
fn explain_uses_openapi() {
    // Nice to have: kubectl explain reads /openapi/v3.
    let c = Cluster::start();
    let out = c.kubectl_ok(&["explain", "deployment.spec.replicas"]);
    let l: Vec<Vec<&str>> = out.lines().map(words).collect();
    check!(l.contains(&vec!["KIND:", "Deployment"]), "{out}");
    check!(
        l.contains(&vec!["FIELD:", "replicas", "<integer>"]),
        "{out}"
    );
    let out = c.kubectl_ok(&["explain", "configmap"]);
    let l: Vec<Vec<&str>> = out.lines().map(words).collect();
    check!(l.contains(&vec!["FIELDS:"]), "{out}");
    check!(l.contains(&vec!["data", "<map[string]string>"]), "{out}");
}
