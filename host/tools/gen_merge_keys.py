#!/usr/bin/env python3
"""Generate host/src/api/patch/merge_keys.rs: the Kubernetes patch and list extensions
(`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`,
`x-kubernetes-list-map-keys`, `x-kubernetes-map-type`) of the built-in types of
k8s-openapi's `v1_33` module.

Where the data comes from:

* List and map types are read from the `DeepMerge` impls that k8s-openapi generates
  (`merge_strategies::list::{atomic,set,map}`, `merge_strategies::map::{atomic,granular}`);
  the Rust field names are turned back into JSON property names with the field table of
  each type's `Deserialize` impl. k8s-openapi emits a strategy for every list and map, so
  lists Kubernetes leaves untyped come out `atomic` and maps `granular`; both are the
  defaults Kubernetes applies to untyped lists and maps, so nothing changes in meaning.
* k8s-openapi builds `list::map` from `x-kubernetes-patch-merge-key` where a field has one,
  so for those fields the key it shows is the patch merge key, not the list map keys (and
  the list may even be `atomic` upstream, e.g. PodStatus.hostIPs). The patch strategies and
  merge keys are not in k8s-openapi at all: they come from the Go struct tags
  (`patchStrategy:"merge" patchMergeKey:"name"`) of k8s.io/api, and are listed by hand in
  PATCH below together with the list type and list map keys the same Go fields declare.
* STRUCT_TYPES lists `+structType=atomic` types (emitted on the definition itself, as
  property "") and property-level `+structType=granular` overrides, also from k8s.io/api.

Usage: python3 host/tools/gen_merge_keys.py [--src PATH-TO/k8s-openapi-0.29.0/src/v1_33] [--out FILE]
The output is written already rustfmt-formatted (edition 2024).
"""

import argparse
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "src", "api", "patch", "merge_keys.rs")

CORE = "io.k8s.api.core.v1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."

# (definition, property): (patch strategy, patch merge key, list type, list map keys)
# from the Go struct tags and +listType/+listMapKey markers of k8s.io/api (release 1.33).
PATCH = {}


def patch(definition, prop, strategy, key=None, list_type=None, map_keys=()):
    PATCH[(definition, prop)] = (strategy, key, list_type, tuple(map_keys))


def merge_map(definition, prop, key, map_keys=None):
    patch(definition, prop, "merge", key, "map", map_keys or (key,))


# core/v1
merge_map(CORE + "PodSpec", "initContainers", "name")
merge_map(CORE + "PodSpec", "containers", "name")
merge_map(CORE + "PodSpec", "ephemeralContainers", "name")
merge_map(CORE + "PodSpec", "imagePullSecrets", "name")
merge_map(CORE + "PodSpec", "hostAliases", "ip")
merge_map(CORE + "PodSpec", "topologySpreadConstraints", "topologyKey", ("topologyKey", "whenUnsatisfiable"))
merge_map(CORE + "PodSpec", "schedulingGates", "name")
patch(CORE + "PodSpec", "volumes", "merge,retainKeys", "name", "map", ("name",))
patch(CORE + "PodSpec", "resourceClaims", "merge,retainKeys", "name", "map", ("name",))
for container in ("Container", "EphemeralContainer"):
    merge_map(CORE + container, "ports", "containerPort", ("containerPort", "protocol"))
    merge_map(CORE + container, "env", "name")
    merge_map(CORE + container, "volumeMounts", "mountPath")
    merge_map(CORE + container, "volumeDevices", "devicePath")
merge_map(CORE + "PodStatus", "conditions", "type")
patch(CORE + "PodStatus", "hostIPs", "merge", "ip", "atomic")
merge_map(CORE + "PodStatus", "podIPs", "ip")
patch(CORE + "PodStatus", "resourceClaimStatuses", "merge,retainKeys", "name", "map", ("name",))
merge_map(CORE + "ContainerStatus", "volumeMounts", "mountPath")
merge_map(CORE + "ContainerStatus", "allocatedResourcesStatus", "name")
merge_map(CORE + "PersistentVolumeClaimStatus", "conditions", "type")
merge_map(CORE + "ReplicationControllerStatus", "conditions", "type")
merge_map(CORE + "ServiceSpec", "ports", "port", ("port", "protocol"))
merge_map(CORE + "ServiceStatus", "conditions", "type")
merge_map(CORE + "ServiceAccount", "secrets", "name")
patch(CORE + "NodeSpec", "podCIDRs", "merge", None, "set")
merge_map(CORE + "NodeStatus", "conditions", "type")
merge_map(CORE + "NodeStatus", "addresses", "type")
merge_map(CORE + "NamespaceStatus", "conditions", "type")
merge_map(CORE + "ComponentStatus", "conditions", "type")
# meta/v1
patch(META + "ObjectMeta", "finalizers", "merge", None, "set")
merge_map(META + "ObjectMeta", "ownerReferences", "uid")
# apps/v1
patch("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys")
for status in ("DeploymentStatus", "ReplicaSetStatus", "StatefulSetStatus", "DaemonSetStatus"):
    merge_map("io.k8s.api.apps.v1." + status, "conditions", "type")
# batch/v1: merged by type under SMP, but an atomic list for server-side apply.
patch("io.k8s.api.batch.v1.JobStatus", "conditions", "merge", "type", "atomic")
# autoscaling/v2
merge_map("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", "type")
# policy/v1
patch("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "selector", "replace")
merge_map("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "conditions", "type")
# networking
for version in ("v1", "v1beta1"):
    merge_map("io.k8s.api.networking.%s.ServiceCIDRStatus" % version, "conditions", "type")
# storage/v1: no list type declared upstream.
patch("io.k8s.api.storage.v1.CSINodeSpec", "drivers", "merge", "name")
# storagemigration/v1alpha1
merge_map("io.k8s.api.storagemigration.v1alpha1.StorageVersionMigrationStatus", "conditions", "type")
# resource.k8s.io
for version in ("v1alpha3", "v1beta1", "v1beta2"):
    merge_map("io.k8s.api.resource.%s.ResourceClaimStatus" % version, "reservedFor", "uid")
# admissionregistration
ADM = "io.k8s.api.admissionregistration."
merge_map(ADM + "v1.ValidatingWebhookConfiguration", "webhooks", "name")
merge_map(ADM + "v1.MutatingWebhookConfiguration", "webhooks", "name")
merge_map(ADM + "v1.ValidatingWebhook", "matchConditions", "name")
merge_map(ADM + "v1.MutatingWebhook", "matchConditions", "name")
for version in ("v1", "v1beta1"):
    merge_map(ADM + version + ".ValidatingAdmissionPolicySpec", "matchConditions", "name")
    merge_map(ADM + version + ".ValidatingAdmissionPolicySpec", "variables", "name")
merge_map(ADM + "v1alpha1.MutatingAdmissionPolicySpec", "matchConditions", "name")
# apiextensions/v1
merge_map(
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
    "x-kubernetes-validations",
    "rule",
)
# apiregistration/v1: no list type declared upstream.
patch("io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus", "conditions", "merge", "type")

# `+structType=atomic` types: x-kubernetes-map-type on the definition itself (property "").
ATOMIC_STRUCTS = [
    CORE + "SecretReference",
    CORE + "ObjectFieldSelector",
    CORE + "ResourceFieldSelector",
    CORE + "ConfigMapKeySelector",
    CORE + "SecretKeySelector",
    CORE + "NodeSelector",
    CORE + "NodeSelectorTerm",
    CORE + "TopologySelectorTerm",
    CORE + "EndpointAddress",
    CORE + "EndpointPort",
    CORE + "ObjectReference",
    CORE + "LocalObjectReference",
    CORE + "TypedLocalObjectReference",
    CORE + "ScopeSelector",
    META + "LabelSelector",
    ADM + "v1.ParamKind",
    ADM + "v1.Variable",
]
# Property-level `+structType=granular` overrides of an atomic struct.
GRANULAR_STRUCT_PROPERTIES = [
    (CORE + "PersistentVolumeSpec", "claimRef"),
]


def find_src():
    pattern = os.path.expanduser("~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_33")
    found = sorted(glob.glob(pattern))
    if not found:
        sys.exit("k8s-openapi-0.29.0 not found under ~/.cargo/registry/src; pass --src")
    return found[0]


def parse(src_root):
    """Return (types, entries): rust type path -> (definition, {rust field: json name}),
    and [(definition, json property, kind, strategy, [rust key fields], item type)]."""
    types = {}
    raw = []
    for path in sorted(glob.glob(os.path.join(src_root, "**", "*.rs"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        m = re.search(r"^// Generated from definition (\S+)", text, re.M)
        s = re.search(r"^pub struct (\w+)", text, re.M)
        if not m or not s or not m.group(1).startswith("io.k8s.") or m.group(1) == "io.k8s.List":
            continue
        definition = m.group(1)
        module = os.path.relpath(os.path.dirname(path), src_root).replace(os.sep, "::")
        fields = dict((rust, js) for js, rust in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text))
        types["crate::%s::%s" % (module, s.group(1))] = (definition, fields)
        decls = dict(re.findall(r"^    pub (\w+): (.*),$", text, re.M))
        for mm in re.finditer(
            r"merge_strategies::(list|map)::(\w+)\(\s*&mut self\.(\w+),(.*?)\);\n", text, re.S
        ):
            kind, strategy, field, rest = mm.groups()
            keys = re.findall(r"lhs\.([\w.()]+) == rhs", rest)
            item = re.search(r"std::vec::Vec<(crate::[\w:]+)>", decls.get(field, ""))
            raw.append((definition, field, kind, strategy, keys, item.group(1) if item else None))
    entries = []
    for definition, field, kind, strategy, keys, item in raw:
        fields = next(f for d, f in types.values() if d == definition)
        if field not in fields:
            sys.exit("no JSON name for %s.%s" % (definition, field))
        entries.append((definition, fields[field], kind, strategy, keys, item))
    return types, entries


def build(src_root):
    types, entries = parse(src_root)
    table = {}
    notes = []
    for definition, prop, kind, strategy, keys, item in entries:
        ext = {"patch_strategy": None, "patch_merge_key": None, "list_type": None,
               "list_map_keys": (), "map_type": None}
        if kind == "map":
            ext["map_type"] = strategy
        elif strategy == "map":
            item_fields = types.get(item, (None, {}))[1]
            if keys and all(k in item_fields for k in keys):
                ext["list_type"] = "map"
                ext["list_map_keys"] = tuple(item_fields[k] for k in keys)
            else:
                # A key k8s-openapi made up from a nested field (metadata.name): Kubernetes
                # cannot express that as list map keys; the list is atomic upstream.
                ext["list_type"] = "atomic"
                notes.append("%s.%s: nested key %s -> atomic" % (definition, prop, keys))
        else:
            ext["list_type"] = strategy
        table[(definition, prop)] = ext
    for (definition, prop), (strategy, key, list_type, map_keys) in PATCH.items():
        ext = table.get((definition, prop))
        if ext is None:
            if not any(d == definition and prop in f.values() for d, f in types.values()):
                sys.exit("PATCH names an unknown field %s.%s" % (definition, prop))
            ext = {"patch_strategy": None, "patch_merge_key": None, "list_type": None,
                   "list_map_keys": (), "map_type": None}
            table[(definition, prop)] = ext
        elif key and ext["list_type"] == "map" and ext["list_map_keys"][:1] != (key,):
            sys.exit("%s.%s: k8s-openapi keys %s disagree with merge key %s"
                     % (definition, prop, ext["list_map_keys"], key))
        ext.update(patch_strategy=strategy, patch_merge_key=key, list_type=list_type,
                   list_map_keys=map_keys)
    for definition in ATOMIC_STRUCTS:
        if not any(d == definition for d, _ in types.values()):
            sys.exit("unknown definition %s" % definition)
        table[(definition, "")] = {"patch_strategy": None, "patch_merge_key": None,
                                   "list_type": None, "list_map_keys": (), "map_type": "atomic"}
    for definition, prop in GRANULAR_STRUCT_PROPERTIES:
        table[(definition, prop)] = {"patch_strategy": None, "patch_merge_key": None,
                                     "list_type": None, "list_map_keys": (), "map_type": "granular"}
    # list::map entries that carry no patch tag: genuine list map keys, listed for review.
    for (definition, prop), ext in sorted(table.items()):
        if ext["list_type"] == "map" and not ext["patch_strategy"]:
            notes.append("%s.%s: list map %s without patch strategy" % (definition, prop, ext["list_map_keys"]))
    return table, notes


def rust_str(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def rust_opt(s):
    return "None" if s is None else "Some(%s)" % rust_str(s)


def render(table, src_root):
    counts = {
        "entries": len(table),
        "patch": sum(1 for e in table.values() if e["patch_strategy"]),
    }
    out = [HEADER.format(src=os.path.basename(os.path.dirname(os.path.dirname(os.path.normpath(src_root)))), **counts)]
    out.append("pub static EXTENSIONS: &[Ext] = &[\n")
    for (definition, prop), e in sorted(table.items()):
        keys = ", ".join(rust_str(k) for k in e["list_map_keys"])
        out.append(
            "    Ext {{\n"
            "        definition: {d},\n"
            "        property: {p},\n"
            "        patch_strategy: {ps},\n"
            "        patch_merge_key: {pk},\n"
            "        list_type: {lt},\n"
            "        list_map_keys: &[{keys}],\n"
            "        map_type: {mt},\n"
            "    }},\n".format(
                d=rust_str(definition), p=rust_str(prop), ps=rust_opt(e["patch_strategy"]),
                pk=rust_opt(e["patch_merge_key"]), lt=rust_opt(e["list_type"]), keys=keys,
                mt=rust_opt(e["map_type"]),
            )
        )
    out.append("];\n")
    out.append(FOOTER)
    return "".join(out)


HEADER = """\
//! The Kubernetes patch and list extensions of the built-in API types.
//!
//! GENERATED by `host/tools/gen_merge_keys.py` from {src} (module `v1_33`)
//! and the k8s.io/api struct tags listed in that script. Do not edit by hand: change the
//! script and run `python3 host/tools/gen_merge_keys.py`.
//!
//! {entries} entries, {patch} of them with an `x-kubernetes-patch-strategy`. An entry whose
//! `property` is empty describes the definition itself (`+structType=atomic`).
//!
//! List types and map types come from k8s-openapi's `DeepMerge` impls, which give every
//! list and map a strategy: lists Kubernetes leaves untyped appear as `atomic` and maps as
//! `granular`, the defaults Kubernetes applies to them anyway. Patch strategies and merge
//! keys come from the Go struct tags of k8s.io/api.

use serde_json::{{Map, Value}};

/// The extensions of one property (or, with an empty `property`, of the definition itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ext {{
    /// The definition name, as in `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// The JSON property name; empty for the definition itself.
    pub property: &'static str,
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys`, `merge,retainKeys` or `replace`.
    pub patch_strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`.
    pub patch_merge_key: Option<&'static str>,
    /// `x-kubernetes-list-type`: `atomic`, `set` or `map`.
    pub list_type: Option<&'static str>,
    /// `x-kubernetes-list-map-keys` (empty unless `list_type` is `map`).
    pub list_map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type`: `atomic` or `granular`.
    pub map_type: Option<&'static str>,
}}

"""

FOOTER = r"""
/// The extensions of `definition`.`property`, if the table has them.
pub fn lookup(definition: &str, property: &str) -> Option<&'static Ext> {
    EXTENSIONS
        .binary_search_by(|e| (e.definition, e.property).cmp(&(definition, property)))
        .ok()
        .and_then(|i| EXTENSIONS.get(i))
}

/// Write the extensions of [`EXTENSIONS`] into the definitions `defs` (the
/// `components.schemas` of an OpenAPI v3 document): each lands in the property's own schema,
/// beside any `$ref` or `allOf` there, or on the definition for an empty `property`.
/// Definitions and properties that `defs` does not have are skipped.
pub fn inject(defs: &mut Map<String, Value>) {
    for ext in EXTENSIONS {
        let Some(def) = defs.get_mut(ext.definition) else {
            continue;
        };
        let target = if ext.property.is_empty() {
            Some(def)
        } else {
            def.get_mut("properties")
                .and_then(|p| p.get_mut(ext.property))
        };
        let Some(Value::Object(target)) = target else {
            continue;
        };
        let mut set = |name: &str, value: Option<&str>| {
            if let Some(value) = value {
                target.insert(name.to_string(), Value::String(value.to_string()));
            }
        };
        set("x-kubernetes-patch-strategy", ext.patch_strategy);
        set("x-kubernetes-patch-merge-key", ext.patch_merge_key);
        set("x-kubernetes-list-type", ext.list_type);
        set("x-kubernetes-map-type", ext.map_type);
        if !ext.list_map_keys.is_empty() {
            let keys = ext
                .list_map_keys
                .iter()
                .map(|k| Value::String((*k).to_string()))
                .collect();
            target.insert("x-kubernetes-list-map-keys".to_string(), Value::Array(keys));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::schema::SchemaNode;
    use serde_json::json;

    #[test]
    fn table_is_sorted_unique_and_consistent() {
        for pair in EXTENSIONS.windows(2) {
            assert!(
                (pair[0].definition, pair[0].property) < (pair[1].definition, pair[1].property),
                "{:?} / {:?}",
                pair[0],
                pair[1]
            );
        }
        for e in EXTENSIONS {
            assert_eq!(
                e.list_type == Some("map"),
                !e.list_map_keys.is_empty(),
                "{e:?}"
            );
            if let Some(key) = e.patch_merge_key {
                assert!(e.patch_strategy.unwrap().contains("merge"), "{e:?}");
                if e.list_type == Some("map") {
                    assert_eq!(e.list_map_keys[0], key, "{e:?}");
                }
            }
            if let Some(s) = e.patch_strategy {
                assert!(
                    ["merge", "retainKeys", "merge,retainKeys", "replace"].contains(&s),
                    "{e:?}"
                );
            }
        }
    }

    #[test]
    fn well_known_entries() {
        let c = lookup("io.k8s.api.core.v1.PodSpec", "containers").unwrap();
        assert_eq!(c.patch_strategy, Some("merge"));
        assert_eq!(c.patch_merge_key, Some("name"));
        assert_eq!(c.list_map_keys, &["name"]);
        let v = lookup("io.k8s.api.core.v1.PodSpec", "volumes").unwrap();
        assert_eq!(v.patch_strategy, Some("merge,retainKeys"));
        let p = lookup("io.k8s.api.core.v1.Container", "ports").unwrap();
        assert_eq!(p.patch_merge_key, Some("containerPort"));
        assert_eq!(p.list_map_keys, &["containerPort", "protocol"]);
        let f = lookup(
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers",
        )
        .unwrap();
        assert_eq!(
            (f.patch_strategy, f.list_type),
            (Some("merge"), Some("set"))
        );
        let s = lookup("io.k8s.api.apps.v1.DeploymentSpec", "strategy").unwrap();
        assert_eq!(s.patch_strategy, Some("retainKeys"));
        let t = lookup("io.k8s.api.core.v1.PodSpec", "tolerations").unwrap();
        assert_eq!((t.patch_strategy, t.list_type), (None, Some("atomic")));
        let n = lookup("io.k8s.api.core.v1.PodSpec", "nodeSelector").unwrap();
        assert_eq!(n.map_type, Some("atomic"));
        let h = lookup("io.k8s.api.core.v1.PodStatus", "hostIPs").unwrap();
        assert_eq!(
            (h.patch_merge_key, h.list_type),
            (Some("ip"), Some("atomic"))
        );
        assert!(lookup("io.k8s.api.core.v1.PodSpec", "nodeName").is_none());
    }

    #[test]
    fn inject_writes_beside_refs() {
        let mut defs = json!({
            "io.k8s.api.core.v1.PodSpec": {"type": "object", "properties": {
                "containers": {"type": "array", "items": {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}},
                "nodeName": {"type": "string"}
            }},
            "io.k8s.api.apps.v1.DeploymentSpec": {"type": "object", "properties": {
                "strategy": {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy", "description": "d"}
            }},
            "io.k8s.api.apps.v1.DeploymentStrategy": {"type": "object", "properties": {"type": {"type": "string"}}},
            "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector": {"type": "object"}
        });
        let defs = defs.as_object_mut().unwrap();
        inject(defs);
        let spec = SchemaNode::definition(defs, "io.k8s.api.core.v1.PodSpec").unwrap();
        assert_eq!(spec.patch_merge_key("containers"), Some("name"));
        assert_eq!(spec.patch_strategies("containers"), vec!["merge"]);
        assert_eq!(spec.list_type("containers"), Some("map"));
        assert_eq!(spec.list_map_keys("containers"), vec!["name"]);
        assert_eq!(spec.patch_merge_key("nodeName"), None);
        let dep = SchemaNode::definition(defs, "io.k8s.api.apps.v1.DeploymentSpec").unwrap();
        assert_eq!(dep.patch_strategies("strategy"), vec!["retainKeys"]);
        assert_eq!(
            defs["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
        );
        assert_eq!(
            defs["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
            "atomic"
        );
    }
}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", help="k8s-openapi-0.29.0/src/v1_33 directory")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--verbose", action="store_true", help="list entries worth a second look")
    args = ap.parse_args()
    src = args.src or find_src()
    table, notes = build(src)
    text = render(table, src)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    if args.verbose:
        for n in notes:
            print(n, file=sys.stderr)
    print("wrote %s: %d entries, %d with a patch strategy"
          % (os.path.normpath(args.out), len(table), sum(1 for e in table.values() if e["patch_strategy"])))


if __name__ == "__main__":
    main()
