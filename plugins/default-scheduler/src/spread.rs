//! PodTopologySpread for a pod's own `topologySpreadConstraints`: the hard ones
//! (`DoNotSchedule`) filter, the soft ones (`ScheduleAnyway`) score.
//!
//! Counting the pods that match a constraint's selector means looking at every placed pod,
//! so the counts are computed once and cached under the pod's *spread signature* (its
//! namespace, constraints, node affinity/selector, tolerations and `matchLabelKeys`
//! values): the pods of one Deployment share it. Pods this plugin assumes are added to
//! every cached entry they match; any `update` drops the cache.

use std::collections::HashMap;

use tugboat_plugin_sdk::scheduler::{LABEL_HOSTNAME, Label, PodInfo};

use crate::selector::{Selector, SpreadConstraintJson, label_selector};
use crate::state::{Cluster, NONE, Node};

/// One parsed constraint.
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    pub max_skew: i64,
    pub key: String,
    pub selector: Selector,
    pub min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes matching the pod's node
    /// affinity/selector count.
    pub honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default `Ignore`): only nodes whose taints the pod
    /// tolerates count.
    pub honor_taints: bool,
}

/// A pod's constraints, split by `whenUnsatisfiable`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Constraints {
    pub hard: Vec<Constraint>,
    pub soft: Vec<Constraint>,
    /// The pod's labels picked by `matchLabelKeys` (part of the cache key).
    pub match_values: Vec<(String, String)>,
}

impl Constraints {
    /// Whether the pod has any constraint of its own (then no system default applies).
    pub fn is_empty(&self) -> bool {
        self.hard.is_empty() && self.soft.is_empty()
    }
}

fn policy(v: Option<&str>, default_honor: bool, path: &str) -> Result<bool, String> {
    match v {
        None => Ok(default_honor),
        Some("Honor") => Ok(true),
        Some("Ignore") => Ok(false),
        Some(other) => Err(format!(
            "{path}: unsupported value {other:?} (supported: Honor, Ignore)"
        )),
    }
}

/// Parses `spec.topologySpreadConstraints`.
pub(crate) fn parse(json: &str, pod_labels: &[Label]) -> Result<Constraints, String> {
    let list: Vec<SpreadConstraintJson> = serde_json::from_str(json)
        .map_err(|e| format!("spec.topologySpreadConstraints is malformed: {e}"))?;
    let mut out = Constraints::default();
    for (i, c) in list.into_iter().enumerate() {
        let path = format!("spec.topologySpreadConstraints[{i}]");
        if !(1..=i64::from(i32::MAX)).contains(&c.max_skew) {
            return Err(format!(
                "{path}.maxSkew must be greater than zero (and a 32-bit integer), not {}",
                c.max_skew
            ));
        }
        if c.topology_key.is_empty() {
            return Err(format!("{path}.topologyKey must not be empty"));
        }
        let min_domains = match c.min_domains {
            None => 1,
            Some(m) if m >= 1 => m,
            Some(m) => {
                return Err(format!(
                    "{path}.minDomains must be greater than zero, not {m}"
                ));
            }
        };
        let keys: Vec<(String, String)> = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| {
                pod_labels
                    .iter()
                    .find(|l| &l.key == k)
                    .map(|l| (l.key.clone(), l.value.clone()))
            })
            .collect();
        out.match_values.extend(keys.iter().cloned());
        let constraint = Constraint {
            max_skew: c.max_skew,
            selector: label_selector(c.label_selector, &keys, &format!("{path}.labelSelector"))?,
            key: c.topology_key,
            min_domains,
            honor_affinity: policy(
                c.node_affinity_policy.as_deref(),
                true,
                &format!("{path}.nodeAffinityPolicy"),
            )?,
            honor_taints: policy(
                c.node_taints_policy.as_deref(),
                false,
                &format!("{path}.nodeTaintsPolicy"),
            )?,
        };
        match c.when_unsatisfiable.as_str() {
            "DoNotSchedule" => out.hard.push(constraint),
            "ScheduleAnyway" => out.soft.push(constraint),
            other => {
                return Err(format!(
                    "{path}.whenUnsatisfiable: unsupported value {other:?} (supported: DoNotSchedule, ScheduleAnyway)"
                ));
            }
        }
    }
    Ok(out)
}

/// The pod counts of one constraint over the nodes.
#[derive(Debug, Clone)]
pub(crate) struct Counts {
    /// The domain of each node (`NONE`: the node lacks the topology key).
    pub node_domain: Vec<u32>,
    /// Whether each node counts (has every key of its set and passes the inclusion
    /// policies).
    pub eligible: Vec<bool>,
    /// Matching pods per domain, over eligible nodes.
    pub counts: Vec<i64>,
    /// Whether some eligible node is in the domain (only such domains exist for the global
    /// minimum and `minDomains`).
    pub present: Vec<bool>,
}

impl Counts {
    /// The global minimum for the skew (`minMatchNum`): the least count over the present
    /// domains, 0 when there are fewer of them than `min_domains`.
    pub fn min_match(&self, min_domains: i64) -> i64 {
        let mut domains = 0i64;
        let mut min = i64::from(i32::MAX);
        for (c, p) in self.counts.iter().zip(&self.present) {
            if *p {
                domains += 1;
                min = min.min(*c);
            }
        }
        if domains < min_domains { 0 } else { min }
    }
}

/// Cached counts for one spread signature.
#[derive(Debug)]
pub(crate) struct Entry {
    namespace: String,
    pub hard: Vec<(Constraint, Counts)>,
    pub soft: Vec<(Constraint, Counts)>,
}

/// What the node inclusion policies need to know of the pod.
pub(crate) trait Inclusion {
    /// Whether the node matches the pod's node selector and required node affinity.
    fn affinity_matches(&self, node: &Node) -> bool;
    /// Whether the pod tolerates the node's `NoSchedule`/`NoExecute` taints.
    fn taints_tolerated(&self, node: &Node) -> bool;
}

fn has_all_keys(node: &Node, set: &[Constraint]) -> bool {
    set.iter().all(|c| node.label(&c.key).is_some())
}

fn count(
    cluster: &Cluster,
    namespace: &str,
    set: &[Constraint],
    pod: &impl Inclusion,
) -> Vec<(Constraint, Counts)> {
    set.iter()
        .map(|c| {
            let n = cluster.nodes.len();
            let mut domains: HashMap<&str, u32> = HashMap::new();
            let mut counts = Counts {
                node_domain: vec![NONE; n],
                eligible: vec![false; n],
                counts: Vec::new(),
                present: Vec::new(),
            };
            for (i, node) in cluster.nodes.iter().enumerate() {
                let Some(value) = node.label(&c.key) else {
                    continue;
                };
                let next = domains.len() as u32;
                let d = *domains.entry(value).or_insert(next);
                if d == next {
                    counts.counts.push(0);
                    counts.present.push(false);
                }
                counts.node_domain[i] = d;
                let eligible = has_all_keys(node, set)
                    && (!c.honor_affinity || pod.affinity_matches(node))
                    && (!c.honor_taints || pod.taints_tolerated(node));
                if !eligible {
                    continue;
                }
                counts.eligible[i] = true;
                counts.present[d as usize] = true;
                let matching = node
                    .pods
                    .iter()
                    .filter_map(|s| cluster.pod(*s))
                    .filter(|p| p.namespace == namespace && c.selector.matches(&p.labels))
                    .count();
                counts.counts[d as usize] += matching as i64;
            }
            (c.clone(), counts)
        })
        .collect()
}

/// The cache of counts by spread signature.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: HashMap<String, Entry>,
}

/// At most this many signatures are cached (then the cache starts afresh).
const MAX_ENTRIES: usize = 32;

impl Cache {
    /// How many signatures are cached.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops every entry (the cluster changed).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The counts for `pod` with `constraints`, computed if not cached.
    pub fn entry(
        &mut self,
        cluster: &Cluster,
        pod: &PodInfo,
        constraints: &Constraints,
        inclusion: &impl Inclusion,
    ) -> &Entry {
        let key = signature(pod, constraints);
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.entry(key).or_insert_with(|| Entry {
            namespace: pod.namespace.clone(),
            hard: count(cluster, &pod.namespace, &constraints.hard, inclusion),
            soft: count(cluster, &pod.namespace, &constraints.soft, inclusion),
        })
    }

    /// Counts a pod just placed on node `node` in every entry whose selectors match it.
    pub fn assumed(&mut self, namespace: &str, labels: &[Label], node: u32) {
        let n = node as usize;
        for e in self.entries.values_mut() {
            if e.namespace != namespace {
                continue;
            }
            for (c, counts) in e.hard.iter_mut().chain(e.soft.iter_mut()) {
                if counts.eligible.get(n).copied().unwrap_or(false)
                    && c.selector.matches(labels)
                    && let Some(&d) = counts.node_domain.get(n)
                    && let Some(v) = counts.counts.get_mut(d as usize)
                {
                    *v += 1;
                }
            }
        }
    }
}

/// Everything the counts of `pod`'s constraints depend on: its namespace, constraints,
/// node selector and affinity (`nodeAffinityPolicy`), tolerations (`nodeTaintsPolicy`) and
/// the label values `matchLabelKeys` picked.
fn signature(pod: &PodInfo, constraints: &Constraints) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(256);
    s.push_str(&pod.namespace);
    s.push('\0');
    s.push_str(pod.topology_spread_constraints.as_deref().unwrap_or(""));
    s.push('\0');
    s.push_str(pod.affinity.as_deref().unwrap_or(""));
    s.push('\0');
    for l in &pod.node_selector {
        let _ = write!(s, "{}={};", l.key, l.value);
    }
    s.push('\0');
    for t in &pod.tolerations {
        let _ = write!(s, "{t:?};");
    }
    s.push('\0');
    for (k, v) in &constraints.match_values {
        let _ = write!(s, "{k}={v};");
    }
    s
}

/// Per pod, per node: a hard constraint's verdict.
pub(crate) enum HardVerdict {
    Fits,
    MissingLabel,
    TooSkewed,
}

/// The hard constraints of one pod, ready for the filter.
pub(crate) struct Hard<'a> {
    /// `(constraint, counts, global minimum, self match)`.
    items: Vec<(&'a Constraint, &'a Counts, i64, i64)>,
}

impl<'a> Hard<'a> {
    /// Precomputes the global minimum and the self match of each hard constraint.
    pub fn new(entry: &'a Entry, pod_labels: &[Label]) -> Self {
        Hard {
            items: entry
                .hard
                .iter()
                .map(|(c, counts)| {
                    (
                        c,
                        counts,
                        counts.min_match(c.min_domains),
                        i64::from(c.selector.matches(pod_labels)),
                    )
                })
                .collect(),
        }
    }

    /// The verdict for node `idx`.
    #[inline]
    pub fn check(&self, idx: usize) -> HardVerdict {
        for (c, counts, min, self_match) in &self.items {
            let d = counts.node_domain.get(idx).copied().unwrap_or(NONE);
            if d == NONE {
                return HardVerdict::MissingLabel;
            }
            let matching = counts.counts.get(d as usize).copied().unwrap_or(0);
            if matching + self_match - min > c.max_skew {
                return HardVerdict::TooSkewed;
            }
        }
        HardVerdict::Fits
    }
}

/// Whether `key` is the hostname label (whose counts are per node).
pub(crate) fn is_hostname(key: &str) -> bool {
    key == LABEL_HOSTNAME
}
