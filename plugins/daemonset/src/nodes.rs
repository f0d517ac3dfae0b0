//! Which nodes a DaemonSet's pod should run on (`NodeShouldRunDaemonPod`): the template's
//! `nodeName`, `nodeSelector`, required node affinity, and the node's taints against the
//! pod's tolerations (with the tolerations every daemon pod gets).

use tugboat_plugin_sdk::{Value, json, objects};

/// `util.AddOrUpdateDaemonPodTolerations`: the tolerations every daemon pod gets, so that
/// it keeps running on nodes that are not ready, unreachable, under pressure or cordoned
/// (and, with host networking, whose network is unavailable).
pub fn daemon_tolerations(host_network: bool) -> Vec<Value> {
    let mut t = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        t.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

/// Adds the daemon tolerations to a pod spec (`AddOrUpdateTolerationInPodSpec`: one with
/// the same key, operator, value and effect is replaced, others are kept).
pub fn add_daemon_tolerations(spec: &mut Value) {
    let host_network = spec["hostNetwork"].as_bool() == Some(true);
    if !spec["tolerations"].is_array() {
        spec["tolerations"] = json!([]);
    }
    let Some(list) = spec["tolerations"].as_array_mut() else {
        return;
    };
    for t in daemon_tolerations(host_network) {
        let same = |o: &Value| {
            let s = |v: &Value, f: &str| v[f].as_str().unwrap_or("").to_string();
            s(o, "key") == s(&t, "key")
                && s(o, "operator") == s(&t, "operator")
                && s(o, "value") == s(&t, "value")
                && s(o, "effect") == s(&t, "effect")
        };
        match list.iter_mut().find(|o| same(o)) {
            Some(existing) => *existing = t,
            None => list.push(t),
        }
    }
}

/// `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let s = |v: &Value, f: &str| v[f].as_str().unwrap_or("").to_string();
    let effect = s(toleration, "effect");
    if !effect.is_empty() && effect != s(taint, "effect") {
        return false;
    }
    let key = s(toleration, "key");
    if !key.is_empty() && key != s(taint, "key") {
        return false;
    }
    match s(toleration, "operator").as_str() {
        "" | "Equal" => s(toleration, "value") == s(taint, "value"),
        "Exists" => true,
        _ => false,
    }
}

/// Whether some taint with an effect `effects` accepts is tolerated by none of the
/// tolerations (`FindMatchingUntoleratedTaint`).
fn has_untolerated_taint(node: &Value, tolerations: &[Value], effects: &[&str]) -> bool {
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| effects.contains(&t["effect"].as_str().unwrap_or("")))
        .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// A `NodeSelectorRequirement` against a value (`None`: the key is absent).
fn requirement_matches(req: &Value, have: Option<&str>) -> bool {
    let values: Vec<&str> = req["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match req["operator"].as_str().unwrap_or("") {
        "In" => have.is_some_and(|h| values.contains(&h)),
        "NotIn" => have.is_none_or(|h| !values.contains(&h)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(h), [v]) = (have, values.as_slice()) else {
                return false;
            };
            let (Ok(h), Ok(v)) = (h.parse::<i64>(), v.parse::<i64>()) else {
                return false;
            };
            if op == "Gt" { h > v } else { h < v }
        }
        _ => false,
    }
}

/// A `NodeSelectorTerm`: all its label expressions and field requirements (only
/// `metadata.name`) hold; a term without requirements matches nothing.
fn term_matches(term: &Value, node: &Value) -> bool {
    let labels = objects::labels(node);
    let exprs = term["matchExpressions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let fields = term["matchFields"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| {
        requirement_matches(
            r,
            labels
                .get(r["key"].as_str().unwrap_or(""))
                .map(String::as_str),
        )
    }) && fields
        .iter()
        .all(|r| r["key"] == "metadata.name" && requirement_matches(r, Some(objects::name(node))))
}

/// `GetRequiredNodeAffinity(pod).Match(node)`: the `nodeSelector` and the required node
/// affinity (any of its terms).
pub fn fits_node_affinity(pod_spec: &Value, node: &Value) -> bool {
    if let Some(selector) = pod_spec["nodeSelector"].as_object() {
        let labels = objects::labels(node);
        if !selector
            .iter()
            .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        {
            return false;
        }
    }
    let required =
        pod_spec.pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution");
    match required.filter(|r| !r.is_null()) {
        None => true,
        Some(r) => r["nodeSelectorTerms"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| term_matches(t, node)),
    }
}

/// `NodeShouldRunDaemonPod`: (should run a daemon pod, should keep one already there).
/// `pod_spec` is the template's spec with the daemon tolerations added.
pub fn should_run(pod_spec: &Value, node: &Value) -> (bool, bool) {
    let node_name = objects::name(node);
    let wanted = pod_spec["nodeName"].as_str().unwrap_or("");
    if !(wanted.is_empty() || wanted == node_name) {
        return (false, false);
    }
    if !fits_node_affinity(pod_spec, node) {
        return (false, false);
    }
    let tolerations = pod_spec["tolerations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if has_untolerated_taint(node, tolerations, &["NoSchedule", "NoExecute"]) {
        return (
            false,
            !has_untolerated_taint(node, tolerations, &["NoExecute"]),
        );
    }
    (true, true)
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity of a daemon pod
/// becomes the single term `metadata.name In [node]` (other affinity is kept).
pub fn pin_to_node(pod_spec: &mut Value, node: &str) {
    let selector = json!({"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}]}]});
    if !pod_spec["affinity"].is_object() {
        pod_spec["affinity"] = json!({});
    }
    if !pod_spec["affinity"]["nodeAffinity"].is_object() {
        pod_spec["affinity"]["nodeAffinity"] = json!({});
    }
    pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
        selector;
}

/// `GetTargetNodeName`: the pod's `nodeName`, else the node its affinity pins it to.
pub fn target_node(pod: &Value) -> Option<String> {
    let name = objects::str_at(pod, "/spec/nodeName");
    if !name.is_empty() {
        return Some(name.to_string());
    }
    let terms = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?;
    terms.iter().find_map(|t| {
        t["matchFields"].as_array()?.iter().find_map(|r| {
            let values = r["values"].as_array()?;
            (r["key"] == "metadata.name" && r["operator"] == "In" && values.len() == 1)
                .then(|| values[0].as_str().map(str::to_string))
                .flatten()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    fn spec_with_tolerations(mut spec: Value) -> Value {
        add_daemon_tolerations(&mut spec);
        spec
    }

    #[test]
    fn node_selector_and_affinity() {
        let n = node(
            "n1",
            json!({"disk": "ssd", "zone": "a", "cpus": "8"}),
            json!([]),
        );
        assert!(fits_node_affinity(&json!({}), &n));
        assert!(fits_node_affinity(
            &json!({"nodeSelector": {"disk": "ssd"}}),
            &n
        ));
        assert!(!fits_node_affinity(
            &json!({"nodeSelector": {"disk": "hdd"}}),
            &n
        ));
        let aff = |terms: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        assert!(fits_node_affinity(
            &aff(
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}])
            ),
            &n
        ));
        assert!(!fits_node_affinity(
            &aff(
                json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}])
            ),
            &n
        ));
        // Terms are ORed, requirements within a term ANDed.
        assert!(fits_node_affinity(
            &aff(json!([
            {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
            {"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}, {"key": "gpu", "operator": "DoesNotExist"}]}])),
            &n
        ));
        assert!(!fits_node_affinity(
            &aff(
                json!([{"matchExpressions": [{"key": "cpus", "operator": "Lt", "values": ["4"]}]}])
            ),
            &n
        ));
        assert!(fits_node_affinity(
            &aff(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}])
            ),
            &n
        ));
        assert!(!fits_node_affinity(
            &aff(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}])
            ),
            &n
        ));
        assert!(
            !fits_node_affinity(&aff(json!([{}])), &n),
            "an empty term matches nothing"
        );
        assert!(!fits_node_affinity(&aff(json!([])), &n));
    }

    #[test]
    fn taints_and_tolerations() {
        let base = spec_with_tolerations(json!({}));
        let tainted = |key: &str, effect: &str| {
            node(
                "n",
                json!({}),
                json!([{"key": key, "value": "v", "effect": effect}]),
            )
        };
        assert_eq!(
            should_run(&base, &node("n", json!({}), json!([]))),
            (true, true)
        );
        // Daemon tolerations: cordoned, not-ready and pressured nodes still run daemons.
        assert_eq!(
            should_run(
                &base,
                &tainted("node.kubernetes.io/unschedulable", "NoSchedule")
            ),
            (true, true)
        );
        assert_eq!(
            should_run(&base, &tainted("node.kubernetes.io/not-ready", "NoExecute")),
            (true, true)
        );
        assert_eq!(
            should_run(
                &base,
                &tainted("node.kubernetes.io/memory-pressure", "NoSchedule")
            ),
            (true, true)
        );
        // Other taints: NoSchedule keeps running pods, NoExecute evicts them.
        assert_eq!(
            should_run(&base, &tainted("dedicated", "NoSchedule")),
            (false, true)
        );
        assert_eq!(
            should_run(&base, &tainted("dedicated", "NoExecute")),
            (false, false)
        );
        assert_eq!(
            should_run(&base, &tainted("dedicated", "PreferNoSchedule")),
            (true, true)
        );
        let tolerant = spec_with_tolerations(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "v"}]}),
        );
        assert_eq!(
            should_run(&tolerant, &tainted("dedicated", "NoExecute")),
            (true, true)
        );
        let wrong_value = spec_with_tolerations(
            json!({"tolerations": [{"key": "dedicated", "value": "w", "effect": "NoSchedule"}]}),
        );
        assert_eq!(
            should_run(&wrong_value, &tainted("dedicated", "NoSchedule")),
            (false, true)
        );
        let everything = json!({"tolerations": [{"operator": "Exists"}]});
        assert_eq!(
            should_run(&everything, &tainted("x", "NoExecute")),
            (true, true)
        );
        // network-unavailable only with host networking.
        assert!(
            !should_run(
                &base,
                &tainted("node.kubernetes.io/network-unavailable", "NoSchedule")
            )
            .0
        );
        let host = spec_with_tolerations(json!({"hostNetwork": true}));
        assert!(
            should_run(
                &host,
                &tainted("node.kubernetes.io/network-unavailable", "NoSchedule")
            )
            .0
        );
        // The template's own nodeName.
        assert_eq!(
            should_run(
                &json!({"nodeName": "other"}),
                &node("n", json!({}), json!([]))
            ),
            (false, false)
        );
    }

    #[test]
    fn tolerations_are_added_once_and_replace_equal_ones() {
        let mut spec = json!({"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "mine", "operator": "Exists"}]});
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        let list = spec["tolerations"].as_array().unwrap();
        assert_eq!(list.len(), 7);
        assert!(list[0].get("tolerationSeconds").is_none());
        assert_eq!(list[1]["key"], "mine");
    }

    #[test]
    fn pinning_and_target_nodes() {
        let mut spec = json!({"affinity": {"podAntiAffinity": {"x": 1}, "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [],
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": []}]}}}});
        pin_to_node(&mut spec, "n7");
        assert_eq!(spec["affinity"]["podAntiAffinity"]["x"], 1);
        assert!(
            spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                .is_array()
        );
        assert_eq!(
            spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]})
        );
        assert_eq!(target_node(&json!({"spec": spec})), Some("n7".into()));
        assert_eq!(
            target_node(&json!({"spec": {"nodeName": "n8"}})),
            Some("n8".into())
        );
        assert_eq!(target_node(&json!({"spec": {}})), None);
    }
}
