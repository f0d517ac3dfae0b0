//! Label selectors, node selector terms and their parsing from the pod's JSON
//! (`spec.affinity`, `spec.topologySpreadConstraints`), with Kubernetes' semantics
//! (`k8s.io/apimachinery/pkg/labels` and `component-helpers/scheduling/corev1/nodeaffinity`).

use std::collections::BTreeMap;

use serde::Deserialize;
use tugboat_plugin_sdk::scheduler::Label;

use crate::state::{find_label, str_eq};

/// An operator with its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// One requirement on labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirement {
    pub key: String,
    pub op: Op,
}

impl Requirement {
    /// Whether `labels` satisfy the requirement (`labels.Requirement.Matches`).
    #[inline]
    pub fn matches(&self, labels: &[Label]) -> bool {
        let value = find_label(labels, &self.key);
        match &self.op {
            Op::In(values) => value.is_some_and(|v| values.iter().any(|x| str_eq(x, v))),
            Op::NotIn(values) => value.is_none_or(|v| values.iter().all(|x| !str_eq(x, v))),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Gt(n) => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Op::Lt(n) => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        }
    }
}

/// A parsed `metav1.LabelSelector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// A missing selector: matches nothing.
    Nothing,
    /// Requirements, ANDed (none: matches everything).
    All(Vec<Requirement>),
}

impl Selector {
    /// Whether `labels` match.
    #[inline]
    pub fn matches(&self, labels: &[Label]) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::All(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }
}

/// A node field requirement (`matchFields`; only `metadata.name` has a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldRequirement {
    /// Whether the key is `metadata.name` (every other field is empty).
    pub is_name: bool,
    pub value: String,
    /// `NotIn` rather than `In`.
    pub negated: bool,
}

/// A parsed `NodeSelectorTerm`: label requirements and field requirements, ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    pub labels: Vec<Requirement>,
    pub fields: Vec<FieldRequirement>,
}

impl Term {
    /// Whether node `name` with `labels` matches.
    #[inline]
    pub fn matches(&self, name: &str, labels: &[Label]) -> bool {
        self.labels.iter().all(|r| r.matches(labels))
            && self.fields.iter().all(|f| {
                let v = if f.is_name { name } else { "" };
                str_eq(v, &f.value) != f.negated
            })
    }
}

/// The parts of `spec.affinity` the default profile uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NodeAffinity {
    /// `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms` without the empty
    /// terms (which match nothing); `None` when not set.
    pub required: Option<Vec<Term>>,
    /// `preferredDuringSchedulingIgnoredDuringExecution`, weight > 0 and non-empty only.
    pub preferred: Vec<(i64, Term)>,
}

// --- The JSON forms -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AffinityJson {
    node_affinity: Option<NodeAffinityJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeAffinityJson {
    required_during_scheduling_ignored_during_execution: Option<NodeSelectorJson>,
    #[serde(default)]
    preferred_during_scheduling_ignored_during_execution: Option<Vec<PreferredJson>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeSelectorJson {
    #[serde(default)]
    node_selector_terms: Option<Vec<TermJson>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TermJson {
    #[serde(default)]
    match_expressions: Option<Vec<RequirementJson>>,
    #[serde(default)]
    match_fields: Option<Vec<RequirementJson>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreferredJson {
    #[serde(default)]
    weight: i64,
    #[serde(default)]
    preference: Option<TermJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequirementJson {
    #[serde(default)]
    key: String,
    #[serde(default)]
    operator: String,
    #[serde(default)]
    values: Option<Vec<String>>,
}

/// A `metav1.LabelSelector` as JSON.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LabelSelectorJson {
    #[serde(default)]
    match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    match_expressions: Option<Vec<RequirementJson>>,
}

/// A `TopologySpreadConstraint` as JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SpreadConstraintJson {
    pub max_skew: i64,
    pub topology_key: String,
    pub when_unsatisfiable: String,
    #[serde(default)]
    pub label_selector: Option<LabelSelectorJson>,
    #[serde(default)]
    pub min_domains: Option<i64>,
    #[serde(default)]
    pub node_affinity_policy: Option<String>,
    #[serde(default)]
    pub node_taints_policy: Option<String>,
    #[serde(default)]
    pub match_label_keys: Option<Vec<String>>,
}

fn requirement(r: RequirementJson, path: &str, gt_lt: bool) -> Result<Requirement, String> {
    let values = r.values.unwrap_or_default();
    let need_values = |values: Vec<String>| {
        if values.is_empty() {
            Err(format!(
                "{path}: operator {} needs at least one value",
                r.operator
            ))
        } else {
            Ok(values)
        }
    };
    let no_values = |values: &[String]| {
        if values.is_empty() {
            Ok(())
        } else {
            Err(format!("{path}: operator {} takes no values", r.operator))
        }
    };
    let one_int = |values: &[String]| match values {
        [v] => v.parse::<i64>().map_err(|_| {
            format!(
                "{path}: operator {} needs an integer value, not {v:?}",
                r.operator
            )
        }),
        _ => Err(format!(
            "{path}: operator {} needs exactly one value",
            r.operator
        )),
    };
    let op = match r.operator.as_str() {
        "In" => Op::In(need_values(values)?),
        "NotIn" => Op::NotIn(need_values(values)?),
        "Exists" => {
            no_values(&values)?;
            Op::Exists
        }
        "DoesNotExist" => {
            no_values(&values)?;
            Op::DoesNotExist
        }
        "Gt" if gt_lt => Op::Gt(one_int(&values)?),
        "Lt" if gt_lt => Op::Lt(one_int(&values)?),
        other => {
            let known = if gt_lt {
                "In, NotIn, Exists, DoesNotExist, Gt, Lt"
            } else {
                "In, NotIn, Exists, DoesNotExist"
            };
            return Err(format!(
                "{path}: unsupported operator {other:?} (supported: {known})"
            ));
        }
    };
    Ok(Requirement { key: r.key, op })
}

fn field_requirement(r: RequirementJson, path: &str) -> Result<FieldRequirement, String> {
    let negated = match r.operator.as_str() {
        "In" => false,
        "NotIn" => true,
        other => {
            return Err(format!(
                "{path}: unsupported operator {other:?} for a field (supported: In, NotIn)"
            ));
        }
    };
    match r.values.unwrap_or_default().as_slice() {
        [v] => Ok(FieldRequirement {
            is_name: r.key == "metadata.name",
            value: v.clone(),
            negated,
        }),
        _ => Err(format!("{path}: values must have one element")),
    }
}

/// Parses a non-empty term (the caller skips empty ones).
fn term(t: TermJson, path: &str) -> Result<Term, String> {
    let labels = t
        .match_expressions
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| requirement(r, &format!("{path}.matchExpressions[{i}]"), true))
        .collect::<Result<_, _>>()?;
    let fields = t
        .match_fields
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| field_requirement(r, &format!("{path}.matchFields[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Term { labels, fields })
}

fn is_empty(t: &TermJson) -> bool {
    t.match_expressions.as_ref().is_none_or(Vec::is_empty)
        && t.match_fields.as_ref().is_none_or(Vec::is_empty)
}

/// Parses `spec.affinity` (its node affinity; pod (anti-)affinity is not evaluated).
pub(crate) fn parse_affinity(json: &str) -> Result<NodeAffinity, String> {
    let a: AffinityJson =
        serde_json::from_str(json).map_err(|e| format!("spec.affinity is malformed: {e}"))?;
    let Some(na) = a.node_affinity else {
        return Ok(NodeAffinity::default());
    };
    let required = match na.required_during_scheduling_ignored_during_execution {
        None => None,
        Some(sel) => {
            let mut terms = Vec::new();
            for (i, t) in sel
                .node_selector_terms
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                // A nil or empty term selects no objects.
                if is_empty(&t) {
                    continue;
                }
                terms.push(term(
                    t,
                    &format!(
                        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]"
                    ),
                )?);
            }
            Some(terms)
        }
    };
    let mut preferred = Vec::new();
    for (i, p) in na
        .preferred_during_scheduling_ignored_during_execution
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let t = p.preference.unwrap_or_default();
        if p.weight == 0 || is_empty(&t) {
            continue;
        }
        if !(1..=100).contains(&p.weight) {
            return Err(format!(
                "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}].weight must be in the range 1-100, not {}",
                p.weight
            ));
        }
        preferred.push((
            p.weight,
            term(
                t,
                &format!(
                    "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference"
                ),
            )?,
        ));
    }
    Ok(NodeAffinity {
        required,
        preferred,
    })
}

/// Parses a `metav1.LabelSelector` (`None`: matches nothing; empty: everything), with the
/// pod's values of `match_label_keys` added as `key=value` requirements.
pub(crate) fn label_selector(
    s: Option<LabelSelectorJson>,
    match_label_keys: &[(String, String)],
    path: &str,
) -> Result<Selector, String> {
    let Some(s) = s else {
        return Ok(if match_label_keys.is_empty() {
            Selector::Nothing
        } else {
            Selector::All(
                match_label_keys
                    .iter()
                    .map(|(k, v)| Requirement {
                        key: k.clone(),
                        op: Op::In(vec![v.clone()]),
                    })
                    .collect(),
            )
        });
    };
    let mut reqs: Vec<Requirement> = s
        .match_labels
        .unwrap_or_default()
        .into_iter()
        .map(|(key, v)| Requirement {
            key,
            op: Op::In(vec![v]),
        })
        .collect();
    for (i, r) in s
        .match_expressions
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        reqs.push(requirement(
            r,
            &format!("{path}.matchExpressions[{i}]"),
            false,
        )?);
    }
    reqs.extend(match_label_keys.iter().map(|(k, v)| Requirement {
        key: k.clone(),
        op: Op::In(vec![v.clone()]),
    }));
    Ok(Selector::All(reqs))
}
