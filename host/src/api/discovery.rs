//! Discovery: `/api`, `/apis`, the per-group-version resource lists, and the aggregated
//! discovery documents (apidiscovery.k8s.io/v2) that kubectl asks for first.

use serde_json::{Value, json};

use super::resources::{Catalog, ResourceType};

/// The content type of an aggregated discovery answer.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the Accept header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|alt| {
        let a = alt.replace(' ', "");
        a.contains("g=apidiscovery.k8s.io")
            && a.contains("v=v2;")
            && a.contains("as=APIGroupDiscoveryList")
            || a.ends_with("g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

pub fn api_group_list(c: &Catalog) -> Value {
    let groups: Vec<Value> = c
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(c: &Catalog, group: &str) -> Option<Value> {
    c.groups().iter().find(|(g, _)| g == group).map(|(g, vs)| {
        let mut v = group_json(g, vs);
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        v
    })
}

fn storage_version_hash(rt: &ResourceType) -> String {
    use base64::Engine;
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{}/{}/{}", rt.group, rt.version, rt.kind));
    base64::engine::general_purpose::STANDARD.encode(&d[..8])
}

fn sub_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "binding" => vec!["create"],
        "log" => vec!["get"],
        "finalize" => vec!["update"],
        _ => vec!["get", "patch", "update"],
    }
}

fn sub_kind(rt: &ResourceType, sub: &str) -> (String, String, String) {
    match sub {
        "scale" => ("autoscaling".into(), "v1".into(), "Scale".into()),
        "binding" => (String::new(), "v1".into(), "Binding".into()),
        _ => (rt.group.clone(), rt.version.clone(), rt.kind.clone()),
    }
}

pub fn resource_list(c: &Catalog, group: &str, version: &str) -> Option<Value> {
    let types = c.in_group_version(group, version);
    if types.is_empty() && !(group.is_empty() && version == "v1") {
        return None;
    }
    let mut resources = vec![];
    for rt in &types {
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": rt.verbs(),
            "storageVersionHash": storage_version_hash(rt),
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        resources.push(r);
        for sub in &rt.subresources {
            let (g, v, k) = sub_kind(rt, sub);
            let mut s = json!({
                "name": format!("{}/{sub}", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": k,
                "verbs": sub_verbs(sub),
            });
            if sub == "scale" || sub == "binding" {
                s["group"] = json!(g);
                s["version"] = json!(v);
            }
            resources.push(s);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The aggregated discovery document for the core group (`legacy`) or all named groups.
pub fn aggregated(c: &Catalog, legacy: bool) -> Value {
    let mut items = vec![];
    for (group, versions) in c.groups() {
        if group.is_empty() != legacy {
            continue;
        }
        let vs: Vec<Value> = versions
            .iter()
            .map(|v| {
                let resources: Vec<Value> = c
                    .in_group_version(group, v)
                    .iter()
                    .map(|rt| {
                        let subs: Vec<Value> = rt
                            .subresources
                            .iter()
                            .map(|s| {
                                let (g, v, k) = sub_kind(rt, s);
                                json!({"subresource": s, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": sub_verbs(s)})
                            })
                            .collect();
                        let mut r = json!({
                            "resource": rt.plural,
                            "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                            "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
                            "singularResource": rt.singular,
                            "verbs": rt.verbs(),
                        });
                        if !rt.short_names.is_empty() {
                            r["shortNames"] = json!(rt.short_names);
                        }
                        if !rt.categories.is_empty() {
                            r["categories"] = json!(rt.categories);
                        }
                        if !subs.is_empty() {
                            r["subresources"] = json!(subs);
                        }
                        r
                    })
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": vs}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
