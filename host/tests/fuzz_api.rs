//! Property tests over request decoding and the patch paths, in process: arbitrary bytes,
//! paths, queries and patch documents never panic and fail with a message; strategic merge
//! patch agrees with JSON merge patch where the two are defined alike and is idempotent; a
//! failed JSON patch leaves the document as it was. Then a barrage of malformed requests
//! against an in-process server: every answer is a 4xx `Status`, the server keeps
//! answering, and an object created before is byte-for-byte unchanged afterwards.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRng, TestRunner};
use serde_json::{Map, Value, json};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::pem::PemObject};
use tugboat::api::patch::smp::strategic_merge_patch;
use tugboat::api::patch::ssa;
use tugboat::api::protobuf;
use tugboat::api::request::{
    self, ApiPath, Query, decode_json, decode_object, decode_yaml, parse_path,
};
use tugboat::api::schema::SchemaNode;
use tugboat::serve::{ServerOptions, start};

// ---- shared generators -------------------------------------------------------------------

/// Cases per property of the pure functions; `TUG_FUZZ_CASES=N` runs more (or fewer).
fn pure_cases() -> u32 {
    std::env::var("TUG_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

fn pure_config() -> ProptestConfig {
    ProptestConfig {
        cases: pure_cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Keys that reach the interesting parts of the patch code: directives, schema fields of
/// Pods and Deployments, and short random keys.
fn patch_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-d]{1,2}",
        1 => Just("$patch".to_string()),
        1 => Just("$retainKeys".to_string()),
        1 => "\\$setElementOrder/[a-z]{1,10}",
        1 => "\\$deleteFromPrimitiveList/[a-z]{1,10}",
        1 => "\\$[a-z]{1,5}",
        4 => prop::sample::select(vec![
            "spec", "template", "metadata", "labels", "annotations", "finalizers", "containers",
            "initContainers", "name", "image", "env", "value", "ports", "containerPort", "protocol",
            "volumes", "volumeMounts", "mountPath", "replicas", "selector", "matchLabels", "data",
            "tolerations", "key", "args", "ownerReferences", "uid", "status", "conditions", "type",
        ])
        .prop_map(str::to_string),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "replace",
            "delete",
            "merge",
            "retainKeys",
            "",
            "a",
            "b",
            "TCP",
            "80"
        ])
        .prop_map(|s| json!(s)),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

/// Arbitrary JSON, biased toward the shapes Kubernetes objects and patches have.
fn arb_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(patch_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(patch_key(), arb_json(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

static DEFS: LazyLock<Arc<Map<String, Value>>> =
    LazyLock::new(|| tugboat::api::openapi::OpenApi::new(tugboat::api::KUBE_VERSION).definitions());

fn schema_name<T: schemars::JsonSchema>() -> String {
    T::schema_name().into_owned()
}

static SCHEMAS: LazyLock<Vec<String>> = LazyLock::new(|| {
    vec![
        schema_name::<Deployment>(),
        schema_name::<Pod>(),
        schema_name::<ConfigMap>(),
    ]
});

/// `None` or the root schema of one of a few built-in kinds.
fn with_schema<R>(which: usize, f: impl FnOnce(Option<SchemaNode<'_>>) -> R) -> R {
    match which.checked_sub(1).and_then(|i| SCHEMAS.get(i)) {
        Some(name) => {
            let node = SchemaNode::definition(&DEFS, name);
            assert!(node.is_some(), "the OpenAPI definitions have {name}");
            f(node)
        }
        None => f(None),
    }
}

// ---- request decoding ------------------------------------------------------------------

const CONTENT_TYPES: &[&str] = &[
    "",
    "application/json",
    "*/*",
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "application/json-patch+json",
    "application/xml",
];

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        arb_json().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        // JSON with a byte flipped or cut short.
        (arb_object(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
            if !bytes.is_empty() {
                let at = i.index(bytes.len());
                if b % 2 == 0 {
                    bytes[at] = b;
                } else {
                    bytes.truncate(at);
                }
            }
            bytes
        }),
        // YAML-looking text.
        "([a-z]{1,4}: ([a-z0-9]{0,4}|\\[[a-z, ]{0,8}\\]|\\{[a-z:, ]{0,8}\\}|&a|\\*a|!!binary x|---)\n){0,6}"
            .prop_map(String::into_bytes),
        // The protobuf magic followed by anything.
        prop::collection::vec(any::<u8>(), 0..128).prop_map(|rest| [b"k8s\0".as_slice(), &rest].concat()),
    ]
}

proptest! {
    #![proptest_config(pure_config())]

    #[test]
    fn decode_object_never_panics(ct in prop::sample::select(CONTENT_TYPES), body in body_bytes()) {
        match decode_object(ct, &body) {
            Ok(v) => prop_assert!(v.is_object(), "decode_object returned a non-object {v}"),
            Err(e) => {
                prop_assert!(!e.message.is_empty(), "an error without a message");
                prop_assert!(matches!(e.code, 400 | 413 | 415), "decode error code {} ({})", e.code, e.message);
                let st = e.to_status();
                prop_assert_eq!(&st["kind"], "Status");
                prop_assert_eq!(st["code"].as_u64(), Some(u64::from(e.code)));
            }
        }
    }

    #[test]
    fn decode_json_and_yaml_never_panic(body in body_bytes()) {
        for r in [decode_json(&body), decode_yaml(&body)] {
            if let Err(e) = r {
                prop_assert!(!e.message.is_empty());
                prop_assert_eq!(e.code, 400);
            }
        }
    }

    #[test]
    fn json_bodies_round_trip(v in arb_json()) {
        // Floats: see `json_floats_round_trip_exactly`.
        let v = integral(v);
        let bytes = serde_json::to_vec(&v).expect("serialize");
        prop_assert_eq!(decode_json(&bytes).expect("valid JSON decodes"), v.clone());
        if v.is_object() {
            prop_assert_eq!(decode_object("application/json", &bytes).expect("a JSON object decodes"), v);
        }
    }

    #[test]
    fn protobuf_decode_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_protobuf(&body)?;
        let with_magic = [b"k8s\0".as_slice(), &body].concat();
        check_protobuf(&with_magic)?;
    }

    #[test]
    fn protobuf_decode_of_mutated_fixtures_never_panics(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let fixtures = protobuf_fixtures();
        let (name, bytes) = &fixtures[which.index(fixtures.len())];
        let mut body = bytes.clone();
        for (at, byte, how) in edits {
            if body.is_empty() {
                break;
            }
            let i = at.index(body.len());
            match how {
                0 => body[i] = byte,
                1 => body[i] ^= 1 << (byte % 8),
                2 => body.insert(i, byte),
                _ => {
                    body.remove(i);
                }
            }
        }
        check_protobuf(&body).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
    }

    #[test]
    fn parse_path_never_panics(path in "(/|[a-z0-9%.~-]{0,6}|api|apis|v1|namespaces|watch|status|finalize|%[0-9A-Fa-f]{2}|%|\\PC{0,3}){0,10}") {
        let _ = parse_path(&path);
    }

    #[test]
    fn parse_path_recovers_what_was_encoded(
        group in prop_oneof![Just(String::new()), Just("apps".to_string()), "[a-z]{1,8}\\.example\\.com"],
        version in "v[1-9](alpha[1-9]|beta[1-9])?",
        namespace in proptest::option::of(segment()),
        plural in prop::sample::select(vec!["pods", "configmaps", "deployments", "widgets", "leases", "events"]),
        name in proptest::option::of(segment()),
        sub in prop::sample::select(vec![None, Some("status"), Some("scale"), Some("log"), Some("binding")]),
        watch in any::<bool>(),
    ) {
        let sub = if name.is_some() { sub } else { None };
        let mut path = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
        if watch {
            path.push_str("/watch");
        }
        if let Some(ns) = &namespace {
            path.push_str(&format!("/namespaces/{}", encode(ns)));
        }
        path.push('/');
        path.push_str(plural);
        if let Some(n) = &name {
            path.push_str(&format!("/{}", encode(n)));
            if let Some(s) = sub {
                path.push_str(&format!("/{s}"));
            }
        }
        match parse_path(&path) {
            Some(ApiPath::Resource(r)) => {
                prop_assert_eq!(&r.group, &group);
                prop_assert_eq!(&r.version, &version);
                prop_assert_eq!(&r.namespace, &namespace, "{}", path);
                prop_assert_eq!(r.plural.as_str(), plural);
                prop_assert_eq!(&r.name, &name, "{}", path);
                prop_assert_eq!(r.subresource.as_deref(), sub);
                prop_assert_eq!(r.watch_prefix, watch);
            }
            other => prop_assert!(false, "{path} parsed as {other:?}"),
        }
    }

    #[test]
    fn query_parsing_never_panics(raw in "([a-zA-Z]{0,20}=?[a-zA-Z0-9%&=+!,()._~ -]{0,20}&?){0,6}", value in "\\PC{0,16}") {
        check_query(&raw)?;
        for key in ["limit", "timeoutSeconds", "resourceVersion", "dryRun", "fieldValidation", "watch", "continue", "labelSelector"] {
            let q = format!("{key}={}", encode(&value));
            check_query(&q)?;
        }
    }

    #[test]
    fn header_negotiation_never_panics(value in "[ -~]{0,80}") {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::ACCEPT, v.clone());
            h.insert(header::CONTENT_TYPE, v);
        }
        let _ = request::accept(&h);
        let ct = request::content_type(&h);
        prop_assert_eq!(ct.clone(), ct.to_ascii_lowercase());
    }
}

/// `v` with every non-integer number replaced by an integer.
fn integral(v: Value) -> Value {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => json!(n.as_f64().unwrap_or(0.0) as i64),
        Value::Array(a) => Value::Array(a.into_iter().map(integral).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

/// Numbers in a body keep their exact value, as Go's decoder (and so Kubernetes) keeps them:
/// a float written with 17 significant digits decodes to the same float.
#[test]
fn json_floats_round_trip_exactly() {
    for f in [
        964491.9737296895f64,
        0.1,
        1.0e-7,
        123456.78901234567,
        2.2250738585072014e-308,
    ] {
        let v = json!({"spec": {"ratio": f}});
        let bytes = serde_json::to_vec(&v).expect("serialize");
        let back = decode_json(&bytes).expect("decodes");
        assert_eq!(
            back["spec"]["ratio"].as_f64().map(f64::to_bits),
            Some(f.to_bits()),
            "{f:?} was sent as {} and decoded as {}",
            String::from_utf8_lossy(&bytes),
            back["spec"]["ratio"]
        );
    }
}

fn segment() -> impl Strategy<Value = String> {
    // Any non-empty text that is not one of the path keywords.
    "\\PC{1,12}".prop_filter("not a keyword", |s| {
        !matches!(s.as_str(), "namespaces" | "watch" | "status" | "finalize")
    })
}

/// Percent-encode everything but unreserved characters.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn check_protobuf(body: &[u8]) -> Result<(), TestCaseError> {
    match protobuf::decode(body) {
        Ok(v) => {
            prop_assert!(v.is_object(), "protobuf decoded to a non-object");
            prop_assert!(
                v.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| !k.is_empty()),
                "no kind in {v}"
            );
            prop_assert!(
                v.get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|a| !a.is_empty()),
                "no apiVersion in {v}"
            );
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    // The same through the content-type switch the server uses.
    if let Err(e) = decode_object(protobuf::CONTENT_TYPE, body) {
        prop_assert!(!e.message.is_empty());
        prop_assert_eq!(e.code, 400);
    }
    Ok(())
}

fn check_query(raw: &str) -> Result<(), TestCaseError> {
    match Query::parse(Some(raw)) {
        Ok(q) => {
            let _ = q.is_watch();
            let _ = q.bookmarks();
            let _ = q.send_initial_events();
            let _ = q.force();
            for r in [
                q.dry_run().err(),
                q.limit().err(),
                q.timeout_seconds().err(),
                q.resource_version().err(),
                q.field_validation().err(),
            ]
            .into_iter()
            .flatten()
            {
                prop_assert_eq!(r.code, 400);
                prop_assert!(!r.message.is_empty());
            }
        }
        Err(e) => {
            prop_assert_eq!(e.code, 400);
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protobuf")
}

fn protobuf_fixtures() -> &'static [(String, Vec<u8>)] {
    static FIXTURES: LazyLock<Vec<(String, Vec<u8>)>> = LazyLock::new(|| {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir())
            .expect("the protobuf fixtures")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pb"))
            .map(|p| {
                (
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    std::fs::read(&p).expect("a fixture"),
                )
            })
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no protobuf fixtures");
        out
    });
    &FIXTURES
}

/// Every prefix of every fixture: a cut-short body never panics and never decodes to
/// something without kind and apiVersion.
#[test]
fn protobuf_truncated_fixtures_never_panic() {
    for (name, bytes) in protobuf_fixtures() {
        for end in 0..bytes.len() {
            if let Err(e) = check_protobuf(&bytes[..end]) {
                panic!("{name} cut at {end}: {e}");
            }
        }
    }
}

// ---- patches ---------------------------------------------------------------------------

/// JSON without nulls whose arrays hold strings only: where strategic merge patch without
/// a schema and JSON merge patch are specified alike.
fn plain_json(nulls: bool) -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z]{0,3}".prop_map(Value::String),
    ];
    let non_null = prop_oneof![
        4 => scalar,
        1 => prop::collection::vec("[a-z]{0,2}", 0..4).prop_map(|v| json!(v)),
    ];
    let leaf = if nulls {
        prop_oneof![5 => non_null, 1 => Just(Value::Null)].boxed()
    } else {
        non_null.boxed()
    };
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop::collection::btree_map("[a-d]", inner, 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    })
}

fn plain_object(nulls: bool) -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-d]", plain_json(nulls), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A Deployment-shaped object or patch with unique merge keys.
fn deployment_like(patch: bool) -> impl Strategy<Value = Value> {
    let env = prop::collection::btree_map(
        prop::sample::select(vec!["X", "Y", "Z"]),
        "[a-z]{0,3}",
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect::<Vec<_>>()
    });
    let ports = prop::collection::btree_set(prop::sample::select(vec![80, 443, 8080]), 0..3)
        .prop_map(|s| {
            s.into_iter()
                .map(|p| json!({"containerPort": p, "protocol": "TCP"}))
                .collect::<Vec<_>>()
        });
    let directive = if patch {
        prop::sample::select(vec![None, None, None, Some("delete"), Some("replace")]).boxed()
    } else {
        Just(None).boxed()
    };
    let container = (
        proptest::option::of("img-[a-z]"),
        env,
        ports,
        proptest::option::of(prop::collection::vec("[a-z]{1,3}", 0..3)),
        directive,
    );
    let containers =
        prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c"]), container, 0..3)
            .prop_map(|m| {
                m.into_iter()
                    .map(|(name, (image, env, ports, args, directive))| {
                        let mut c = json!({"name": name});
                        if directive == Some("delete") {
                            c["$patch"] = json!("delete");
                            return c;
                        }
                        if let Some(i) = image {
                            c["image"] = json!(i);
                        }
                        if !env.is_empty() {
                            c["env"] = json!(env);
                        }
                        if !ports.is_empty() {
                            c["ports"] = json!(ports);
                        }
                        if let Some(a) = args {
                            c["args"] = json!(a);
                        }
                        c
                    })
                    .collect::<Vec<_>>()
            });
    let label_value = if patch {
        proptest::option::of("[a-z]{1,3}").boxed()
    } else {
        "[a-z]{1,3}".prop_map(Some).boxed()
    };
    let labels = prop::collection::btree_map(
        prop::sample::select(vec!["app", "tier", "env"]),
        label_value,
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_string(), v.map_or(Value::Null, Value::String)))
            .collect::<Map<_, _>>()
    });
    let finalizers = prop::collection::btree_set(
        prop::sample::select(vec!["x.io/a", "x.io/b", "x.io/c"]),
        0..3,
    );
    (
        labels,
        finalizers,
        proptest::option::of(0i32..5),
        containers,
        any::<bool>(),
    )
        .prop_map(move |(labels, fins, replicas, containers, replace_list)| {
            let mut spec = json!({"template": {"spec": {"containers": containers}}});
            if let Some(r) = replicas {
                spec["replicas"] = json!(r);
            }
            if patch
                && replace_list
                && let Some(list) = spec
                    .pointer_mut("/template/spec/containers")
                    .and_then(Value::as_array_mut)
            {
                list.push(json!({"$patch": "replace"}));
            }
            let mut meta = json!({"labels": labels});
            if !fins.is_empty() {
                meta["finalizers"] = json!(fins.into_iter().collect::<Vec<_>>());
            }
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})
        })
}

proptest! {
    #![proptest_config(pure_config())]

    #[test]
    fn strategic_merge_patch_never_panics(original in arb_json(), patch in arb_json(), which in 0usize..4) {
        let r = with_schema(which, |s| strategic_merge_patch(&original, &patch, s));
        match r {
            Ok(v) => prop_assert!(v.is_object(), "a strategic merge patch produced {v}"),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn strategic_merge_patch_of_objects_never_panics(original in arb_object(), patch in arb_object(), which in 0usize..4) {
        if let Err(e) = with_schema(which, |s| strategic_merge_patch(&original, &patch, s)) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn strategic_merge_patch_without_schema_is_a_json_merge_patch(original in plain_object(false), patch in plain_object(true)) {
        let smp = strategic_merge_patch(&original, &patch, None);
        let mut merged = original.clone();
        json_patch::merge(&mut merged, &patch);
        prop_assert_eq!(smp.map_err(|e| e.to_string()), Ok(merged));
    }

    #[test]
    fn strategic_merge_patch_is_idempotent(original in deployment_like(false), patch in deployment_like(true)) {
        with_schema(1, |s| -> Result<(), TestCaseError> {
            if let Ok(once) = strategic_merge_patch(&original, &patch, s) {
                let twice = strategic_merge_patch(&once, &patch, s);
                prop_assert_eq!(twice.map_err(|e| e.to_string()), Ok(once.clone()), "patch {}", patch);
                // Merged containers keep unique names.
                if let Some(cs) = once.pointer("/spec/template/spec/containers").and_then(Value::as_array) {
                    let names: Vec<&str> = cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).collect();
                    let mut unique = names.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    prop_assert_eq!(unique.len(), names.len(), "duplicate containers in {}", once);
                }
                prop_assert!(!once.to_string().contains("$patch"), "a directive survived: {}", once);
            }
            Ok(())
        })?;
    }

    #[test]
    fn json_patch_documents_never_panic(doc in arb_json(), ops in prop::collection::vec(json_patch_op(), 0..6)) {
        let raw = serde_json::to_vec(&Value::Array(ops)).expect("serialize");
        // As the server does: bytes → JSON → json_patch::Patch → apply.
        let Ok(v) = decode_json(&raw) else { return Err(TestCaseError::fail("a serialized JSON array did not decode")) };
        if let Ok(p) = serde_json::from_value::<json_patch::Patch>(v) {
            let mut patched = doc.clone();
            if json_patch::patch(&mut patched, &p).is_err() {
                prop_assert_eq!(patched, doc, "a failed JSON patch left the document changed");
            }
        }
    }

    #[test]
    fn arbitrary_json_as_json_patch_never_panics(v in arb_json(), doc in arb_json()) {
        if let Ok(p) = serde_json::from_value::<json_patch::Patch>(v) {
            let mut d = doc.clone();
            if json_patch::patch(&mut d, &p).is_err() {
                prop_assert_eq!(&d, &doc);
            }
        }
        let mut d = doc;
        json_patch::merge(&mut d, &json!({"a": null}));
    }
}

// ---- server-side apply -------------------------------------------------------------------

const NOW: &str = "2025-01-01T00:00:00Z";

/// Arbitrary `managedFields` entries, some well-formed, with random `fieldsV1` tries.
fn managed_fields() -> impl Strategy<Value = Value> {
    let fields = prop::collection::btree_map(
        prop_oneof![
            "f:[a-d]{1,2}".boxed(),
            Just(".".to_string()).boxed(),
            "k:\\{\"name\":\"[a-c]\"\\}".boxed(),
            "v:\"[a-c]\"".boxed(),
            "[a-z:]{0,4}".boxed(),
        ],
        prop_oneof![Just(json!({})), arb_json()],
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()));
    let entry = (
        proptest::option::of(prop::sample::select(vec!["mgr", "other", "kubectl", ""])),
        proptest::option::of(prop::sample::select(vec!["Apply", "Update", "Bogus"])),
        proptest::option::of(fields),
        any::<bool>(),
    )
        .prop_map(|(m, op, f, typed)| {
            let mut e = json!({});
            if let Some(m) = m {
                e["manager"] = json!(m);
            }
            if let Some(op) = op {
                e["operation"] = json!(op);
            }
            if typed {
                e["apiVersion"] = json!("v1");
                e["fieldsType"] = json!("FieldsV1");
                e["time"] = json!(NOW);
            }
            if let Some(f) = f {
                e["fieldsV1"] = f;
            }
            e
        });
    prop_oneof![
        3 => prop::collection::vec(entry, 0..4).prop_map(Value::Array),
        1 => arb_json(),
    ]
}

fn live_object() -> impl Strategy<Value = Value> {
    (arb_object(), proptest::option::of(managed_fields())).prop_map(|(mut o, mf)| {
        if let Some(mf) = mf {
            if !o.get("metadata").is_some_and(Value::is_object) {
                o["metadata"] = json!({});
            }
            o["metadata"]["managedFields"] = mf;
        }
        o
    })
}

fn data_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-e]", "[xyz]", 0..4)
}

fn configmap_config(data: &BTreeMap<String, String>) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}, "data": data})
}

fn ssa_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    which: usize,
) -> Result<Value, ssa::ApplyError> {
    let av = if which == 1 { "apps/v1" } else { "v1" };
    with_schema(which, |s| {
        ssa::apply(live, config, manager, force, s, av, NOW)
    })
}

proptest! {
    #![proptest_config(pure_config())]

    #[test]
    fn ssa_apply_never_panics(
        live in proptest::option::of(live_object()),
        config in prop_oneof![arb_object(), arb_json(), deployment_like(false)],
        manager in prop::sample::select(vec!["mgr", "other", ""]),
        force in any::<bool>(),
        which in 0usize..4,
    ) {
        match ssa_apply(live.as_ref(), &config, manager, force, which) {
            Ok(v) => prop_assert!(v.is_object(), "apply produced {v}"),
            Err(e) => prop_assert!(!e.to_string().is_empty(), "an apply error without a message"),
        }
    }

    #[test]
    fn ssa_apply_of_deployments_never_panics(
        live in deployment_like(false),
        config in deployment_like(false),
        mf in managed_fields(),
        force in any::<bool>(),
    ) {
        let mut live = live;
        live["metadata"]["managedFields"] = mf;
        if let Err(e) = ssa_apply(Some(&live), &config, "mgr", force, 1) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn update_managed_fields_never_panics(
        old in proptest::option::of(live_object()),
        new in live_object(),
        sub in prop::sample::select(vec![None, Some("status"), Some("scale")]),
        which in 0usize..4,
    ) {
        let mut new = new;
        with_schema(which, |s| ssa::update_managed_fields(old.as_ref(), &mut new, "writer", "Update", sub, s, "v1", NOW));
        if let Some(mf) = new.pointer("/metadata/managedFields") {
            prop_assert!(mf.is_array(), "managedFields is not a list: {mf}");
        }
    }

    #[test]
    fn ssa_apply_is_idempotent_and_detects_conflicts(a in data_map(), b in data_map()) {
        let created = ssa_apply(None, &configmap_config(&a), "mgr", false, 3).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(created.get("data").cloned().unwrap_or(json!({})), json!(a));
        let again = ssa_apply(Some(&created), &configmap_config(&a), "mgr", false, 3).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &created, "applying the same configuration twice changes nothing");

        let clashing: BTreeSet<String> = b.iter().filter(|(k, v)| a.get(*k).is_some_and(|av| av != *v)).map(|(k, _)| format!(".data.{k}")).collect();
        match ssa_apply(Some(&created), &configmap_config(&b), "other", false, 3) {
            Err(ssa::ApplyError::Conflicts(cs)) => {
                let fields: BTreeSet<String> = cs.iter().map(|c| c.field.clone()).collect();
                prop_assert_eq!(&fields, &clashing);
                prop_assert!(cs.iter().all(|c| c.manager == "mgr"), "{:?}", cs);
            }
            Err(e) => prop_assert!(false, "unexpected apply error {e}"),
            Ok(v) => {
                prop_assert!(clashing.is_empty(), "no conflict reported for {:?}: {}", clashing, v);
                // Both managers' fields are there.
                let mut want = a.clone();
                want.extend(b.clone());
                prop_assert_eq!(v.get("data").cloned().unwrap_or(json!({})), json!(want));
            }
        }
        let forced = ssa_apply(Some(&created), &configmap_config(&b), "other", true, 3).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut want = a.clone();
        want.extend(b.clone());
        prop_assert_eq!(forced.get("data").cloned().unwrap_or(json!({})), json!(want), "a forced apply takes the fields");
    }
}

fn json_pointer() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "/",
            "/a",
            "/a/0",
            "/a/1",
            "/a/-",
            "/a/01",
            "/a/b",
            "/b",
            "/b/c",
            "/~0",
            "/~1",
            "/~2",
            "a",
            "/a/99999999999999999999",
            "/metadata/name",
            "/data",
            "/data/x",
            "/spec/containers/0/image",
        ])
        .prop_map(str::to_string),
        "(/[a-c0-9~-]{0,3}){0,4}",
    ]
}

fn json_patch_op() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "add", "remove", "replace", "move", "copy", "test", "frob",
        ]),
        proptest::option::of(json_pointer()),
        proptest::option::of(json_pointer()),
        proptest::option::of(arb_json()),
    )
        .prop_map(|(op, path, from, value)| {
            let mut o = json!({"op": op});
            if let Some(p) = path {
                o["path"] = json!(p);
            }
            if let Some(f) = from {
                o["from"] = json!(f);
            }
            if let Some(v) = value {
                o["value"] = v;
            }
            o
        })
}

// ---- the server under a barrage of malformed requests ----------------------------------

/// One HTTP/1.1 connection to the in-process server.
struct RawClient {
    addr: String,
    token: String,
    tls: Arc<rustls::ClientConfig>,
    send: Option<http1::SendRequest<Full<Bytes>>>,
}

impl RawClient {
    fn new(addr: &str, ca_pem: &str, token: &str) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(c.expect("a CA certificate"))
                .expect("adding the CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        RawClient {
            addr: addr.to_string(),
            token: token.to_string(),
            tls: Arc::new(tls),
            send: None,
        }
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        let (send, conn) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.send = Some(send);
        Ok(())
    }

    async fn request(&mut self, r: &RawRequest) -> anyhow::Result<(u16, Bytes)> {
        let mut last_err = None;
        for _ in 0..2 {
            if self.send.as_ref().is_none_or(|s| s.is_closed()) {
                self.connect().await?;
            }
            let send = self.send.as_mut().expect("connected");
            let mut b = hyper::Request::builder()
                .method(hyper::Method::from_bytes(r.method.as_bytes())?)
                .uri(r.path.as_str())
                .header("host", &self.addr)
                .header("accept", "application/json");
            match &r.auth {
                Auth::Admin => b = b.header("authorization", format!("Bearer {}", self.token)),
                Auth::Wrong(t) if *t != self.token => {
                    b = b.header("authorization", format!("Bearer {t}"))
                }
                Auth::Wrong(_) | Auth::Missing => {}
            }
            if let Some(ct) = &r.content_type {
                b = b.header("content-type", ct.as_str());
            }
            let req = b.body(Full::new(Bytes::from(r.body.clone())))?;
            if send.ready().await.is_err() {
                self.send = None;
                continue;
            }
            match send.send_request(req).await {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    let bytes = resp.into_body().collect().await?.to_bytes();
                    return Ok((code, bytes));
                }
                Err(e) => {
                    self.send = None;
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.map_or_else(|| anyhow::anyhow!("could not send"), anyhow::Error::from))
    }
}

#[derive(Clone, Debug)]
struct RawRequest {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
    auth: Auth,
}

#[derive(Clone, Debug)]
enum Auth {
    /// The admin token.
    Admin,
    /// No Authorization header.
    Missing,
    /// Some other bearer token.
    Wrong(String),
}

const CM_PATH: &str = "/api/v1/namespaces/default/configmaps";
const SENTINEL_PATH: &str = "/api/v1/namespaces/default/configmaps/sentinel";
const SENTINEL_PATCH_PATH: &str =
    "/api/v1/namespaces/default/configmaps/sentinel?fieldManager=fuzzer";

/// Bytes no decoder accepts: a control byte or an invalid UTF-8 byte first.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![0u8, 1, 0xff, 0xfe, 0x1b]),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(first, rest)| [vec![first], rest].concat())
}

fn object_content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(vec![
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
            "application/json; charset=utf-8"
        ])
        .prop_map(|s| Some(s.to_string())),
    ]
}

fn unsupported_content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "text/plain",
            "application/xml",
            "application/json-patch+json",
            "application/merge-patch+json",
            "image/png",
            "multipart/form-data"
        ])
        .prop_map(str::to_string),
        "x-[a-z]{1,8}/[a-z]{1,8}",
    ]
}

fn patch_content_type() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ])
    .prop_map(str::to_string)
}

/// ConfigMap bodies Kubernetes rejects: wrong types, names, kinds, labels.
fn invalid_configmaps(name: &str) -> Vec<Value> {
    let mutations: [fn(&mut Value); 20] = [
        |o| o["data"] = json!({"k": 1}),
        |o| o["data"] = json!({"k": {"nested": "x"}}),
        |o| o["data"] = json!({"k": ["x"]}),
        |o| o["data"] = json!({"k": true}),
        |o| o["data"] = json!("not a map"),
        |o| o["binaryData"] = json!({"b": "%%% not base64 %%%"}),
        |o| o["immutable"] = json!("yes"),
        |o| o["metadata"] = json!("not a map"),
        |o| o["metadata"]["labels"] = json!({"a": 1}),
        |o| o["metadata"]["labels"] = json!({"bad key!": "x"}),
        |o| o["metadata"]["labels"] = json!({"k": "bad value!"}),
        |o| o["metadata"]["annotations"] = json!({"a": ["x"]}),
        |o| o["metadata"]["name"] = json!("Bad_Name!"),
        |o| o["metadata"]["name"] = json!(5),
        |o| o["metadata"]["namespace"] = json!("other-namespace"),
        |o| o["kind"] = json!("Secret"),
        |o| o["apiVersion"] = json!("v2"),
        |o| o["apiVersion"] = json!("apps/v1"),
        |o| o["metadata"]["finalizers"] = json!("x"),
        |o| o["metadata"]["ownerReferences"] = json!([{"bad": true}]),
    ];
    mutations
        .iter()
        .map(|m| {
            let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}});
            m(&mut o);
            o
        })
        .collect()
}

/// Patch documents for the sentinel that Kubernetes rejects, with their content types.
fn invalid_patches() -> Vec<(&'static str, Vec<u8>)> {
    let merge = [
        json!(5),
        json!("text"),
        json!([1, 2]),
        json!(true),
        json!(null),
        json!({"data": 5}),
        json!({"data": {"k": 1}}),
        json!({"data": ["x"]}),
        json!({"metadata": {"name": "other"}}),
        json!({"metadata": {"namespace": "elsewhere"}}),
        json!({"metadata": {"resourceVersion": "1"}}),
        json!({"metadata": {"labels": {"bad key!": "x"}}}),
        json!({"metadata": {"labels": {"k": 7}}}),
        json!({"kind": "Secret"}),
        json!({"apiVersion": "v9"}),
        json!({"metadata": "x"}),
        json!({"metadata": ["x"]}),
        json!({"immutable": "no"}),
    ];
    let json_patch = [
        json!({}),
        json!(5),
        json!("add"),
        json!([{"op": "frob", "path": "/data/k"}]),
        json!([{"op": "add"}]),
        json!([{"path": "/data/k", "value": "x"}]),
        json!([{"op": "remove", "path": "/data/missing"}]),
        json!([{"op": "replace", "path": "/data/missing", "value": "x"}]),
        json!([{"op": "test", "path": "/data/k", "value": "not v"}]),
        json!([{"op": "copy", "from": "/data/missing", "path": "/data/x"}]),
        json!([{"op": "move", "from": "/data", "path": "/data/x"}]),
        json!([{"op": "replace", "path": "", "value": 5}]),
        json!([{"op": "replace", "path": "", "value": null}]),
        json!([{"op": "add", "path": "/data/k2", "value": "ok"}, {"op": "test", "path": "/data/k", "value": "nope"}]),
        json!([{"op": "add", "path": "/metadata/name", "value": "other"}]),
        json!([{"op": "replace", "path": "/data", "value": 5}]),
        json!([{"op": "replace", "path": "/metadata", "value": "x"}]),
        json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}]),
        json!([{"op": "add", "path": "/data/a/b/c", "value": "x"}]),
    ];
    let smp = [
        json!(5),
        json!([1]),
        json!({"$patch": "merge"}),
        json!({"$patch": "bogus"}),
        json!({"data": {"$patch": "bogus"}}),
        json!({"metadata": {"finalizers": [1, "a"]}}),
        json!({"metadata": {"finalizers": [["x"]]}}),
        json!({"$retainKeys": 5}),
        json!({"$retainKeys": ["data"], "other": 1}),
        json!({"$deleteFromPrimitiveList/finalizers": 5}),
        json!({"data": 5}),
        json!({"data": {"k": [1]}}),
        json!({"metadata": "x"}),
        json!({"metadata": {"name": "other"}}),
        json!({"metadata": {"labels": {"bad key!": "x"}}}),
        json!({"kind": "Pod"}),
    ];
    let apply = [
        "- a\n- b\n",
        "just a string\n",
        "42\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sentinel\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n",
        "apiVersion: v2\nkind: ConfigMap\nmetadata:\n  name: sentinel\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sentinel\ndata:\n  k: [1, 2]\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sentinel\ndata: 5\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sentinel\n  labels:\n    'bad key!': x\n",
        // data.k belongs to the manager that created the sentinel: a conflict.
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sentinel\ndata:\n  k: a value another manager owns\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [1]\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: x\n",
        "{unclosed: [\n",
        "key: &anchor\n  - *anchor\n  - *undefined\n",
    ];
    let json_bytes = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
    merge
        .iter()
        .map(|v| ("application/merge-patch+json", json_bytes(v)))
        .chain(
            json_patch
                .iter()
                .map(|v| ("application/json-patch+json", json_bytes(v))),
        )
        .chain(
            smp.iter()
                .map(|v| ("application/strategic-merge-patch+json", json_bytes(v))),
        )
        .chain(
            apply
                .iter()
                .map(|s| ("application/apply-patch+yaml", s.as_bytes().to_vec())),
        )
        .collect()
}

/// List query strings Kubernetes rejects.
fn bad_list_queries() -> Vec<String> {
    let mut out: Vec<String> = [
        "limit=abc",
        "limit=1.5",
        "timeoutSeconds=soon",
        "resourceVersion=abc",
        "watch=true&resourceVersion=abc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in [
        "a b",
        "=x",
        "a in",
        "a in (",
        "!",
        "a!=b!=c",
        "@",
        "a=(b)",
        "a notin b",
        ",",
        "a,,b",
    ] {
        out.push(format!("labelSelector={}", encode(s)));
    }
    for s in [
        "garbage",
        "spec.unknown=x",
        "metadata.labels=x",
        "=x",
        "a==b==c",
        "metadata.name",
    ] {
        out.push(format!("fieldSelector={}", encode(s)));
    }
    out.push("continue=not-a-token".into());
    out.push("continue=%25%25%25".into());
    out
}

/// Deletes of the sentinel that must be refused: bad parameters, bad or mistyped
/// DeleteOptions, failing preconditions.
fn bad_deletes() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = [
        "propagationPolicy=Sideways",
        "propagationPolicy=foreground",
        "gracePeriodSeconds=soon",
        "dryRun=Maybe",
    ]
    .iter()
    .map(|q| (format!("{SENTINEL_PATH}?{q}"), vec![]))
    .collect();
    for body in [
        json!({"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}),
        json!({"preconditions": {"resourceVersion": "1"}}),
        json!({"propagationPolicy": "Sideways"}),
        json!({"propagationPolicy": 5}),
        json!({"dryRun": "All"}),
        json!({"dryRun": ["Sometimes"]}),
        json!({"gracePeriodSeconds": "soon"}),
        json!({"preconditions": "x"}),
        json!([1]),
        json!("text"),
    ] {
        out.push((
            SENTINEL_PATH.to_string(),
            serde_json::to_vec(&body).unwrap_or_default(),
        ));
    }
    out.push((
        SENTINEL_PATH.to_string(),
        b"{\"propagationPolicy\":".to_vec(),
    ));
    out
}

fn req(method: &str, path: impl Into<String>, ct: Option<&str>, body: Vec<u8>) -> RawRequest {
    RawRequest {
        method: method.to_string(),
        path: path.into(),
        content_type: ct.map(str::to_string),
        body,
        auth: Auth::Admin,
    }
}

/// Every handcrafted malformed request, once.
fn fixed_bad_requests() -> Vec<RawRequest> {
    let mut out = vec![];
    for o in invalid_configmaps("fz-x") {
        out.push(req(
            "POST",
            CM_PATH,
            Some("application/json"),
            serde_json::to_vec(&o).unwrap_or_default(),
        ));
    }
    for o in invalid_configmaps("sentinel") {
        out.push(req(
            "PUT",
            SENTINEL_PATH,
            Some("application/json"),
            serde_json::to_vec(&o).unwrap_or_default(),
        ));
    }
    // A valid replacement with a stale resourceVersion.
    let stale = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sentinel", "resourceVersion": "1"}, "data": {"k": "stale"}});
    out.push(req(
        "PUT",
        SENTINEL_PATH,
        Some("application/json"),
        serde_json::to_vec(&stale).unwrap_or_default(),
    ));
    for (ct, body) in invalid_patches() {
        out.push(req("PATCH", SENTINEL_PATCH_PATH, Some(ct), body));
    }
    // Apply without a field manager.
    out.push(req(
        "PATCH",
        SENTINEL_PATH,
        Some("application/apply-patch+yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sentinel\n".to_vec(),
    ));
    for q in bad_list_queries() {
        out.push(req("GET", format!("{CM_PATH}?{q}"), None, vec![]));
    }
    for (path, body) in bad_deletes() {
        out.push(req("DELETE", path, Some("application/json"), body));
    }
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#.to_vec();
    for (m, path) in [
        ("PUT", CM_PATH.to_string()),
        ("PATCH", CM_PATH.to_string()),
        ("POST", SENTINEL_PATH.to_string()),
        ("FROB", SENTINEL_PATH.to_string()),
        ("GET", format!("{SENTINEL_PATH}/status")),
        ("GET", format!("{SENTINEL_PATH}/scale")),
        ("GET", "/api/v1/namespaces/default/nothings".to_string()),
        ("GET", "/apis/no.such.group/v1/things".to_string()),
        ("GET", "/apis/apps/v9/deployments".to_string()),
        ("GET", "/api/v1/nodes/a/b/c/d".to_string()),
        ("POST", "/api/v1/configmaps".to_string()),
        (
            "GET",
            "/api/v1/namespaces/no-such-namespace/configmaps/x".to_string(),
        ),
        (
            "POST",
            "/api/v1/namespaces/no-such-namespace/configmaps".to_string(),
        ),
        ("PUT", format!("{CM_PATH}/nx-missing")),
        ("DELETE", format!("{CM_PATH}/nx-missing")),
    ] {
        out.push(req(m, path, Some("application/json"), body.clone()));
    }
    for ct in [
        "text/plain",
        "application/xml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "image/png",
    ] {
        out.push(req("POST", CM_PATH, Some(ct), body.clone()));
    }
    for ct in [
        "text/plain",
        "application/json",
        "application/yaml",
        "x-unknown/patch",
    ] {
        out.push(req(
            "PATCH",
            SENTINEL_PATCH_PATH,
            Some(ct),
            br#"{"data":{"k":"changed"}}"#.to_vec(),
        ));
    }
    for auth in [
        Auth::Missing,
        Auth::Wrong("not-the-token".into()),
        Auth::Wrong(String::new()),
    ] {
        for m in ["GET", "POST", "DELETE", "PATCH"] {
            let r = req(
                m,
                SENTINEL_PATH,
                Some("application/merge-patch+json"),
                br#"{"data":{"k":"hijacked"}}"#.to_vec(),
            );
            out.push(RawRequest {
                auth: auth.clone(),
                ..r
            });
        }
    }
    out
}

/// Random malformed requests: undecodable bodies, random content types, random paths, and
/// random picks from the handcrafted ones.
fn random_bad_request() -> impl Strategy<Value = RawRequest> {
    prop_oneof![
        // Undecodable bodies for create, replace and patch.
        (object_content_type(), garbage()).prop_map(|(ct, b)| req(
            "POST",
            CM_PATH,
            ct.as_deref(),
            b
        )),
        (object_content_type(), garbage()).prop_map(|(ct, b)| req(
            "PUT",
            SENTINEL_PATH,
            ct.as_deref(),
            b
        )),
        (patch_content_type(), garbage()).prop_map(|(ct, b)| req(
            "PATCH",
            SENTINEL_PATCH_PATH,
            Some(&ct),
            b
        )),
        // Protobuf magic and noise.
        prop::collection::vec(any::<u8>(), 0..100).prop_map(|b| req(
            "POST",
            CM_PATH,
            Some("application/vnd.kubernetes.protobuf"),
            [b"k8s\0".as_slice(), &[0x0a, 0xff], &b].concat()
        )),
        // Content types no endpoint takes.
        (unsupported_content_type(), arb_object()).prop_map(|(ct, o)| req(
            "POST",
            CM_PATH,
            Some(&ct),
            serde_json::to_vec(&o).unwrap_or_default()
        )),
        // Objects that do not exist.
        (
            "nx-[a-z0-9]{1,8}",
            prop::sample::select(vec!["GET", "PUT", "PATCH", "DELETE"])
        )
            .prop_map(|(name, m)| req(
                m,
                format!("{CM_PATH}/{name}"),
                Some("application/merge-patch+json"),
                b"{}".to_vec()
            )),
        // Paths outside the API.
        "/[a-z]{1,8}(/[a-z0-9]{1,8}){0,3}"
            .prop_filter("not a served path", |p| {
                !p.starts_with("/api")
                    && !p.starts_with("/openapi")
                    && !matches!(p.as_str(), "/version" | "/healthz" | "/livez" | "/readyz")
            })
            .prop_map(|path| req("GET", path, None, vec![])),
        // Random tokens.
        "[a-zA-Z0-9._-]{0,40}".prop_map(|t| RawRequest {
            auth: Auth::Wrong(t),
            ..req("GET", SENTINEL_PATH, None, vec![])
        }),
        // The handcrafted ones again, in random order and interleaving.
        prop::sample::select(fixed_bad_requests()),
    ]
}

/// One line naming a request: method, path, content type and (a prefix of) the body.
fn describe(r: &RawRequest) -> String {
    let body = String::from_utf8_lossy(&r.body);
    let body: String = body.chars().take(160).collect();
    format!(
        "{} {} [{}] {:?} {body:?}",
        r.method,
        r.path,
        r.content_type.as_deref().unwrap_or("-"),
        r.auth
    )
}

/// The answer is a 4xx with a `Status` body whose code matches.
fn check_status_answer(req: &RawRequest, code: u16, body: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(body);
    prop_assert!(
        (400..500).contains(&code),
        "{} {} ({:?}) answered {code}: {text}",
        req.method,
        req.path,
        req.content_type
    );
    let st: Value = serde_json::from_slice(body).map_err(|e| {
        TestCaseError::fail(format!(
            "{} {} answered {code} with a body that is not JSON ({e}): {text}",
            req.method, req.path
        ))
    })?;
    prop_assert_eq!(
        &st["kind"],
        "Status",
        "{} {}: {}",
        req.method,
        req.path,
        text
    );
    prop_assert_eq!(
        &st["status"],
        "Failure",
        "{} {}: {}",
        req.method,
        req.path,
        text
    );
    prop_assert_eq!(
        st["code"].as_u64(),
        Some(u64::from(code)),
        "{} {}: {}",
        req.method,
        req.path,
        text
    );
    prop_assert!(
        st["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{} {}: a Status without a message: {}",
        req.method,
        req.path,
        text
    );
    prop_assert!(
        st["reason"].as_str().is_some_and(|m| !m.is_empty()),
        "{} {}: a Status without a reason: {}",
        req.method,
        req.path,
        text
    );
    Ok(())
}

#[test]
fn server_answers_malformed_requests_with_a_4xx_status() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let tmp = tempfile::tempdir().expect("a data directory");
    let running = rt
        .block_on(start(ServerOptions {
            watch_history: 1000,
            ..ServerOptions::new(
                tmp.path().to_path_buf(),
                "127.0.0.1:0".parse().expect("an address"),
            )
        }))
        .expect("the server starts in process");
    let ca = std::fs::read_to_string(tmp.path().join("pki/ca.crt")).expect("the CA");
    let token = std::fs::read_to_string(tmp.path().join("admin.token"))
        .expect("the token")
        .trim()
        .to_string();
    let client = RefCell::new(RawClient::new(&running.addr.to_string(), &ca, &token));
    let call = |r: &RawRequest| rt.block_on(client.borrow_mut().request(r));
    let authed = |method: &str, path: &str, ct: Option<&str>, body: &[u8]| {
        req(method, path, ct, body.to_vec())
    };

    // The sentinel, written with a field manager so that a conflicting apply is a conflict.
    let sentinel = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "sentinel", "labels": {"keep": "me"}, "annotations": {"a": "b"}},
        "data": {"k": "v", "multi": "line\nline"},
    });
    let create_sentinel = authed(
        "POST",
        &format!("{CM_PATH}?fieldManager=setup"),
        Some("application/json"),
        &serde_json::to_vec(&sentinel).expect("json"),
    );
    let (code, body) = call(&create_sentinel).expect("creating the sentinel");
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let (code, before) =
        call(&authed("GET", SENTINEL_PATH, None, b"")).expect("reading the sentinel");
    assert_eq!(code, 200);

    // One deterministic oversized body: 413, not a crash.
    let huge = [
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"huge"},"data":{"k":""#
            .as_slice(),
        &vec![b'x'; 3 * 1024 * 1024 + 10],
        b"\"}}",
    ]
    .concat();
    let big = authed("POST", CM_PATH, Some("application/json"), &huge);
    match call(&big) {
        Ok((code, body)) => {
            assert_eq!(code, 413, "{}", String::from_utf8_lossy(&body));
            check_status_answer(&big, code, &body).unwrap_or_else(|e| panic!("{e}"));
        }
        // The server may close the connection after refusing the body.
        Err(e) => eprintln!("oversized body: connection closed ({e})"),
    }

    // Every handcrafted malformed request once, then 200 random ones (a fixed seed, so a
    // run is reproducible). Every answer is checked and every violation collected, so that
    // one report lists them all with the request that caused each.
    let failures: RefCell<BTreeMap<String, String>> = RefCell::new(BTreeMap::new());
    let current = RefCell::new(before.clone());
    let check = |r: RawRequest| -> Result<(), TestCaseError> {
        let what = describe(&r);
        match call(&r) {
            Err(e) => {
                failures
                    .borrow_mut()
                    .insert(what.clone(), format!("no answer: {e}"));
            }
            Ok((code, body)) => {
                if let Err(e) = check_status_answer(&r, code, &body) {
                    failures.borrow_mut().insert(what.clone(), e.to_string());
                }
            }
        }
        let (code, mut now) = call(&authed("GET", SENTINEL_PATH, None, b"")).map_err(|e| {
            TestCaseError::fail(format!("the server stopped answering after {what}: {e}"))
        })?;
        if code == 404 {
            failures
                .borrow_mut()
                .insert(format!("{what} [sentinel]"), "deleted the sentinel".into());
            // Put it back so that the rest of the barrage still has a target.
            call(&create_sentinel)
                .map_err(|e| TestCaseError::fail(format!("re-creating the sentinel: {e}")))?;
            now = call(&authed("GET", SENTINEL_PATH, None, b""))
                .map_err(|e| TestCaseError::fail(format!("reading the sentinel: {e}")))?
                .1;
            *current.borrow_mut() = now.clone();
        }
        if now != *current.borrow() {
            failures.borrow_mut().insert(
                format!("{what} [sentinel]"),
                format!("changed the sentinel to {}", String::from_utf8_lossy(&now)),
            );
            *current.borrow_mut() = now;
        }
        Ok(())
    };
    let fixed = fixed_bad_requests();
    assert!(fixed.len() > 150, "{} handcrafted requests", fixed.len());
    for r in fixed {
        check(r).unwrap_or_else(|e| panic!("{e}"));
    }
    let config = RunnerConfig {
        cases: 200,
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&random_bad_request(), check);
    if let Err(e) = result {
        panic!("{e}");
    }
    let failures = failures.into_inner();
    assert!(
        failures.is_empty(),
        "{} malformed requests were not answered with a 4xx Status (or changed the sentinel):\n{}",
        failures.len(),
        failures
            .iter()
            .map(|(req, why)| format!("- {req}\n    {why}"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Still answering, nothing created, the sentinel untouched to the byte.
    let (code, after) =
        call(&authed("GET", SENTINEL_PATH, None, b"")).expect("the server still answers");
    assert_eq!(code, 200);
    assert_eq!(
        String::from_utf8_lossy(&after),
        String::from_utf8_lossy(&before),
        "the sentinel changed"
    );
    let (code, list) = call(&authed("GET", CM_PATH, None, b"")).expect("list");
    assert_eq!(code, 200);
    let list: Value = serde_json::from_slice(&list).expect("a list");
    let names: Vec<&str> = list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
                .filter(|n| *n != "kube-root-ca.crt")
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, ["sentinel"], "malformed requests created objects");
    let (code, _) = call(&authed("GET", "/version", None, b"")).expect("/version");
    assert_eq!(code, 200);
    let data: BTreeMap<String, String> = serde_json::from_slice::<ConfigMap>(&after)
        .expect("a ConfigMap")
        .data
        .unwrap_or_default();
    assert_eq!(data.get("k").map(String::as_str), Some("v"));

    running.serve.abort();
    drop(rt);
}
