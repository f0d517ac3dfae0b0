//! Built-in scheduler plugin `default-scheduler`: Kubernetes' default scheduling profile
//! (kube-scheduler's semantics) as a Tugboat scheduler plugin.
//!
//! For each pod, nodes are filtered, in this order, stopping at the first filter that fails:
//! NodeUnschedulable, NodeName, TaintToleration, NodeAffinity (node selector and required
//! node affinity), NodePorts, NodeResourcesFit and PodTopologySpread (the pod's
//! `DoNotSchedule` constraints). Like kube-scheduler, the search is adaptive
//! (`percentageOfNodesToScore`): it starts where the previous pod's search stopped and ends
//! once enough feasible nodes are found. Those are scored, each plugin from 0 to 100 and
//! weighted as in the default profile: NodeResourcesFit (least allocated, weight 1),
//! NodeResourcesBalancedAllocation (1), NodeAffinity (preferred terms, 2), TaintToleration
//! (intolerable `PreferNoSchedule` taints, 3) and PodTopologySpread (2; the pod's
//! `ScheduleAnyway` constraints, or, for a pod without constraints of its own, the system
//! defaults — hostname with maxSkew 3 and zone with maxSkew 5 — over the pods of the same
//! owner). The highest total wins; ties are broken at random (reservoir sampling, as
//! kube-scheduler's `selectHost`). The pod is then counted on its node at once, so the next
//! pod of the batch sees it.
//!
//! When no node fits, the decision lists every reason with the number of nodes that gave
//! it, in Kubernetes' wording (`Insufficient cpu`, `node(s) had untolerated taint {k: v}`, …),
//! sorted as kube-scheduler sorts them.
//!
//! Config (all optional): `seed` (the tie-breaking generator's seed) and
//! `percentageOfNodesToScore` (1 to 100; 0 or unset: Kubernetes' adaptive default).
//!
//! Not evaluated: inter-pod affinity and anti-affinity, volumes (VolumeBinding,
//! VolumeRestrictions, VolumeZone, NodeVolumeLimits), ImageLocality, preemption, and
//! priorities beyond taking the pods in the order given.

mod pod;
mod selector;
mod spread;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use tugboat_plugin_sdk::prelude::*;
use tugboat_plugin_sdk::scheduler::{ClusterChange, Decision, PodInfo, ReasonCount};

use pod::{Failure, PodCtx};
use spread::{Cache, Entry, Hard};
use state::{Cluster, NONE};

/// Below this many nodes every node is examined (`minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The least adaptive percentage (`minFeasibleNodesPercentageToFind`).
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

/// How many feasible nodes to look for among `nodes` (kube-scheduler's
/// `numFeasibleNodesToFind`): every node below 100; otherwise `percentage` percent of them
/// (0: the adaptive default, 50% minus 1% per 125 nodes, at least 5%), and at least 100.
pub fn nodes_to_find(nodes: usize, percentage: u32) -> usize {
    if nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return nodes;
    }
    let percentage = if percentage == 0 {
        (50 - (nodes / 125) as i64).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND) as usize
    } else {
        percentage.min(100) as usize
    };
    (nodes.saturating_mul(percentage) / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// How the last pod's search went (for tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// The node index the search started at.
    pub start: usize,
    /// How many nodes were filtered.
    pub examined: usize,
    /// How many of them were feasible (and scored, when more than one).
    pub feasible: usize,
}

/// A small, fast xorshift64* generator for tie-breaking.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // xorshift needs a non-zero state; mix the seed so that small seeds differ a lot.
        let s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        Rng(if s == 0 { 0x2545_F491_4F6C_DD1D } else { s })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next() >> 32) * u128::from(n)) >> 32) as u64
    }
}

/// The raw scores of one feasible node.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    node: u32,
    least: i64,
    balanced: i64,
    affinity: i64,
    taints: i64,
    spread: i64,
    /// Ignored by PodTopologySpread (lacks a topology key of the pod's constraints).
    spread_ignored: bool,
}

/// Buffers reused from pod to pod.
#[derive(Debug, Default)]
struct Scratch {
    feasible: Vec<u32>,
    rows: Vec<Row>,
    marks: Vec<u32>,
    epoch: u32,
}

impl Scratch {
    /// Starts a new round of marks over `n` ids.
    fn new_marks(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
    }

    /// Marks `id`; returns whether it was not marked yet this round.
    fn mark(&mut self, id: usize) -> bool {
        match self.marks.get_mut(id) {
            Some(m) if *m != self.epoch => {
                *m = self.epoch;
                true
            }
            _ => false,
        }
    }
}

/// Kubernetes' default scheduling profile. Implements [`SchedulerPolicy`]; usable natively
/// (tests, benchmarks) as well as exported from the component.
#[derive(Debug)]
pub struct DefaultScheduler {
    cluster: Cluster,
    cache: Cache,
    percentage: u32,
    next_start: usize,
    rng: Rng,
    scratch: Scratch,
    last: SearchStats,
}

/// The system default spreading constraints (kube-scheduler's `systemDefaultConstraints`).
const DEFAULT_HOSTNAME_MAX_SKEW: f64 = 3.0;
const DEFAULT_ZONE_MAX_SKEW: f64 = 5.0;

/// The default profile's score weights.
const WEIGHT_FIT: i64 = 1;
const WEIGHT_BALANCED: i64 = 1;
const WEIGHT_AFFINITY: i64 = 2;
const WEIGHT_TAINTS: i64 = 3;
const WEIGHT_SPREAD: i64 = 2;
const MAX_NODE_SCORE: i64 = 100;

impl DefaultScheduler {
    /// How the last pod's search went.
    pub fn last_search(&self) -> SearchStats {
        self.last
    }

    /// How many nodes the plugin knows.
    pub fn node_count(&self) -> usize {
        self.cluster.nodes.len()
    }

    /// How many placed pods the plugin knows (including those assumed by `schedule` and
    /// those waiting for an unknown node).
    pub fn pod_count(&self) -> usize {
        self.cluster.pod_count()
    }

    /// How many placed pods wait for a node the plugin does not know (placed on it before
    /// its `node-set`, or left by its `node-removed`); they count once the node is set.
    pub fn waiting_pod_count(&self) -> usize {
        self.cluster.waiting_count()
    }

    /// Decides one pod; returns the decision and the chosen node's index.
    fn decide(&mut self, pod: &PodInfo) -> (Decision, u32) {
        let ctx = match PodCtx::new(pod, &self.cluster) {
            Ok(c) => c,
            Err(e) => return (Decision::Error(e), NONE),
        };
        let cluster = &self.cluster;
        let n = cluster.nodes.len();
        self.last = SearchStats::default();
        if n == 0 {
            return (Decision::Unschedulable(Vec::new()), NONE);
        }
        let entry: Option<&Entry> = if ctx.spread.is_empty() {
            None
        } else {
            Some(self.cache.entry(cluster, pod, &ctx.spread, &ctx))
        };
        let hard = entry
            .filter(|e| !e.hard.is_empty())
            .map(|e| Hard::new(e, &pod.labels));

        // Filter from the rotating start until enough feasible nodes are found.
        let to_find = nodes_to_find(n, self.percentage);
        let start = self.next_start % n;
        let scratch = &mut self.scratch;
        scratch.feasible.clear();
        let mut examined = 0;
        let mut i = start;
        for _ in 0..n {
            examined += 1;
            if ctx.filter(&cluster.nodes[i], i, hard.as_ref()).is_none() {
                scratch.feasible.push(i as u32);
                if scratch.feasible.len() >= to_find {
                    break;
                }
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        self.next_start = (start + examined) % n;
        self.last = SearchStats {
            start,
            examined,
            feasible: scratch.feasible.len(),
        };

        let chosen = match scratch.feasible.len() {
            0 => {
                return (
                    Decision::Unschedulable(reasons(cluster, &ctx, hard.as_ref())),
                    NONE,
                );
            }
            1 => scratch.feasible[0],
            _ => score(cluster, &ctx, entry, scratch, &mut self.rng),
        };
        match cluster.nodes.get(chosen as usize) {
            Some(node) => (Decision::Node(node.name.clone()), chosen),
            None => (
                Decision::Error("internal error: chose a node that does not exist".into()),
                NONE,
            ),
        }
    }

    /// Counts `pod` on node `idx` (as a `pod-set` would).
    fn assume(&mut self, mut pod: PodInfo, idx: u32) {
        let Some(node) = self.cluster.nodes.get(idx as usize) else {
            return;
        };
        pod.node_name = Some(node.name.clone());
        if self.cluster.contains_pod(&pod.uid) {
            // Re-placing a known pod: the cached spread counts would count it twice.
            self.cache.clear();
        } else {
            self.cache.assumed(&pod.namespace, &pod.labels, idx);
        }
        self.cluster.set_pod(pod);
    }
}

/// Builds the reasons of an unschedulable pod over every node.
fn reasons(cluster: &Cluster, ctx: &PodCtx<'_>, hard: Option<&Hard<'_>>) -> Vec<ReasonCount> {
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut add = |reason: &str| match counts.get_mut(reason) {
        Some(c) => *c += 1,
        None => {
            counts.insert(reason.to_string(), 1);
        }
    };
    for (i, node) in cluster.nodes.iter().enumerate() {
        let Some(failure) = ctx.filter(node, i, hard) else {
            continue;
        };
        match failure {
            Failure::Unschedulable => add("node(s) were unschedulable"),
            Failure::NodeName => add("node(s) didn't match the requested node name"),
            Failure::Taint(t) => {
                if let Some(t) = node.taints.get(t) {
                    add(&format!(
                        "node(s) had untolerated taint {{{}: {}}}",
                        t.key, t.value
                    ));
                }
            }
            Failure::Affinity => add("node(s) didn't match Pod's node affinity/selector"),
            Failure::Ports => add("node(s) didn't have free ports for the requested pod ports"),
            Failure::Resources => ctx.insufficient(node, &mut add),
            Failure::SpreadMissingLabel => {
                add("node(s) didn't match pod topology spread constraints (missing required label)")
            }
            Failure::Spread => add("node(s) didn't match pod topology spread constraints"),
        }
    }
    // kube-scheduler sorts the "<count> <reason>" strings.
    let mut list: Vec<(String, ReasonCount)> = counts
        .into_iter()
        .map(|(reason, nodes)| (format!("{nodes} {reason}"), ReasonCount { reason, nodes }))
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list.into_iter().map(|(_, r)| r).collect()
}

/// `(capacity - requested) * 100 / capacity`, 0 when over capacity.
#[inline]
fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    // The common case (0 <= requested <= capacity) in i64; absurd amounts in i128.
    if requested >= 0
        && let Some(v) = (capacity - requested).checked_mul(MAX_NODE_SCORE)
    {
        return v / capacity;
    }
    let v = (i128::from(capacity) - i128::from(requested)) * i128::from(MAX_NODE_SCORE)
        / i128::from(capacity);
    v.clamp(0, i128::from(MAX_NODE_SCORE)) as i64
}

/// NodeResourcesFit's LeastAllocated score (CPU and memory, weight 1 each, scoring
/// requests).
#[inline]
fn least_allocated(node: &state::Node, ctx: &PodCtx<'_>) -> i64 {
    let mut sum = 0;
    let mut weights = 0;
    let a = &node.allocatable;
    if a.cpu != 0 {
        sum += least_requested(node.nonzero_cpu.wrapping_add(ctx.nonzero_cpu), a.cpu);
        weights += 1;
    }
    if a.memory != 0 {
        sum += least_requested(
            node.nonzero_memory.wrapping_add(ctx.nonzero_memory),
            a.memory,
        );
        weights += 1;
    }
    match weights {
        2 => sum / 2,
        1 => sum,
        _ => 0,
    }
}

/// NodeResourcesBalancedAllocation: `(1 - std) * 100` of the CPU and memory fractions
/// (actual requests).
#[inline]
fn balanced_allocation(node: &state::Node, ctx: &PodCtx<'_>) -> i64 {
    let a = &node.allocatable;
    let fraction = |req: i64, alloc: i64| (req as f64 / alloc as f64).clamp(0.0, 1.0);
    let mut fractions = [0.0f64; 2];
    let mut k = 0;
    if a.cpu != 0 {
        fractions[k] = fraction(node.requested.cpu.wrapping_add(ctx.cpu), a.cpu);
        k += 1;
    }
    if a.memory != 0 {
        fractions[k] = fraction(node.requested.memory.wrapping_add(ctx.memory), a.memory);
        k += 1;
    }
    let std = if k == 2 {
        ((fractions[0] - fractions[1]) / 2.0).abs()
    } else {
        0.0
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// Scores the feasible nodes and picks one (highest total, ties at random).
fn score(
    cluster: &Cluster,
    ctx: &PodCtx<'_>,
    entry: Option<&Entry>,
    scratch: &mut Scratch,
    rng: &mut Rng,
) -> u32 {
    let Scratch {
        feasible,
        rows,
        marks: _,
        epoch: _,
    } = scratch;
    rows.clear();
    // BalancedAllocation skips best-effort pods (no CPU nor memory requested).
    let balanced = ctx.cpu != 0 || ctx.memory != 0;
    let has_preferred = !ctx.affinity.preferred.is_empty();
    for &i in feasible.iter() {
        let node = &cluster.nodes[i as usize];
        rows.push(Row {
            node: i,
            least: least_allocated(node, ctx),
            balanced: if balanced {
                balanced_allocation(node, ctx)
            } else {
                0
            },
            affinity: if has_preferred {
                ctx.preferred_affinity(node)
            } else {
                0
            },
            taints: if node.taints.is_empty() {
                0
            } else {
                ctx.intolerable_prefer_taints(node)
            },
            spread: 0,
            spread_ignored: false,
        });
    }
    let spreading = spread_scores(cluster, ctx, entry, scratch);

    let rows = &scratch.rows;
    let mut max_affinity = 0;
    let mut max_taints = 0;
    let mut min_spread = i64::MAX;
    let mut max_spread = 0;
    for r in rows {
        max_affinity = max_affinity.max(r.affinity);
        max_taints = max_taints.max(r.taints);
        if !r.spread_ignored {
            min_spread = min_spread.min(r.spread);
            max_spread = max_spread.max(r.spread);
        }
    }
    let mut best = i64::MIN;
    let mut chosen = NONE;
    let mut ties = 0u64;
    for r in rows {
        let affinity = if max_affinity > 0 {
            MAX_NODE_SCORE * r.affinity / max_affinity
        } else {
            0
        };
        let taints = if max_taints > 0 {
            MAX_NODE_SCORE - MAX_NODE_SCORE * r.taints / max_taints
        } else {
            MAX_NODE_SCORE
        };
        let spread = if !spreading || r.spread_ignored {
            0
        } else if max_spread == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max_spread + min_spread - r.spread) / max_spread
        };
        let total = WEIGHT_FIT * r.least
            + WEIGHT_BALANCED * r.balanced
            + WEIGHT_AFFINITY * affinity
            + WEIGHT_TAINTS * taints
            + WEIGHT_SPREAD * spread;
        if total > best {
            best = total;
            chosen = r.node;
            ties = 1;
        } else if total == best {
            ties += 1;
            if rng.below(ties) == 0 {
                chosen = r.node;
            }
        }
    }
    chosen
}

/// Fills the raw PodTopologySpread scores of `scratch.rows`; returns whether the plugin
/// scores this pod at all.
fn spread_scores(
    cluster: &Cluster,
    ctx: &PodCtx<'_>,
    entry: Option<&Entry>,
    scratch: &mut Scratch,
) -> bool {
    if let Some(entry) = entry {
        if entry.soft.is_empty() {
            return false;
        }
        explicit_spread_scores(entry, scratch);
        return true;
    }
    if !ctx.spread.is_empty() || !ctx.has_owner {
        return false;
    }
    // System defaults: hostname (maxSkew 3) and zone (maxSkew 5) over the owner's pods.
    // Nodes without a zone still count one (empty) zone value, as in Kubernetes.
    let zones = cluster.zones.len();
    scratch.new_marks(zones + 1);
    let mut zone_domains = 0usize;
    for i in 0..scratch.rows.len() {
        let z = cluster.nodes[scratch.rows[i].node as usize].zone;
        let id = if z == NONE { zones } else { z as usize };
        if scratch.mark(id) {
            zone_domains += 1;
        }
    }
    let host_weight = ((scratch.rows.len() + 2) as f64).ln();
    let zone_weight = ((zone_domains + 2) as f64).ln();
    let zone_counts = if ctx.owner == NONE {
        &[][..]
    } else {
        cluster.owner_zone_counts(ctx.owner)
    };
    for r in scratch.rows.iter_mut() {
        let node = &cluster.nodes[r.node as usize];
        let mut s = 0.0;
        if node.has_hostname {
            let cnt = if ctx.owner == NONE {
                0
            } else {
                node.owner_count(ctx.owner)
            };
            s += f64::from(cnt) * host_weight + (DEFAULT_HOSTNAME_MAX_SKEW - 1.0);
        }
        if node.zone != NONE {
            let cnt = zone_counts.get(node.zone as usize).copied().unwrap_or(0);
            s += f64::from(cnt) * zone_weight + (DEFAULT_ZONE_MAX_SKEW - 1.0);
        }
        r.spread = round(s);
    }
    true
}

/// The raw scores of the pod's own `ScheduleAnyway` constraints.
fn explicit_spread_scores(entry: &Entry, scratch: &mut Scratch) {
    // Nodes lacking a topology key of the constraints are ignored.
    let mut ignored = 0usize;
    for r in scratch.rows.iter_mut() {
        let n = r.node as usize;
        r.spread_ignored = entry
            .soft
            .iter()
            .any(|(_, c)| c.node_domain.get(n).is_none_or(|d| *d == NONE));
        ignored += usize::from(r.spread_ignored);
    }
    let scored = scratch.rows.len() - ignored;
    let weights: Vec<f64> = entry
        .soft
        .iter()
        .map(|(c, counts)| {
            let size = if spread::is_hostname(&c.key) {
                scored
            } else {
                scratch.new_marks(counts.counts.len());
                let mut domains = 0;
                for i in 0..scratch.rows.len() {
                    let r = scratch.rows[i];
                    if r.spread_ignored {
                        continue;
                    }
                    let d = counts.node_domain[r.node as usize] as usize;
                    if scratch.mark(d) {
                        domains += 1;
                    }
                }
                domains
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    for r in scratch.rows.iter_mut() {
        if r.spread_ignored {
            continue;
        }
        let n = r.node as usize;
        let mut s = 0.0;
        for ((c, counts), w) in entry.soft.iter().zip(&weights) {
            let d = counts.node_domain[n] as usize;
            let cnt = counts.counts.get(d).copied().unwrap_or(0);
            s += cnt as f64 * w + (c.max_skew - 1) as f64;
        }
        r.spread = round(s);
    }
}

/// Go's `math.Round` (half away from zero) of a non-negative score, without a libm call.
#[inline]
fn round(x: f64) -> i64 {
    if x >= 0.0 {
        (x + 0.5) as i64
    } else {
        x.round() as i64
    }
}

fn parse_config(config: &Value) -> Result<(u32, u64), String> {
    let mut percentage = 0;
    let mut seed = 0x5EED;
    match config {
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                match k.as_str() {
                    "seed" => {
                        seed = v.as_u64().ok_or_else(|| {
                            format!("config.seed must be a non-negative integer, not {v}")
                        })?;
                    }
                    "percentageOfNodesToScore" => {
                        percentage = v
                            .as_u64()
                            .filter(|p| *p <= 100)
                            .ok_or_else(|| {
                                format!(
                                    "config.percentageOfNodesToScore must be an integer from 0 to 100 (0: adaptive), not {v}"
                                )
                            })? as u32;
                    }
                    other => {
                        return Err(format!(
                            "config.{other} is not a setting of the default scheduler (known: seed, percentageOfNodesToScore)"
                        ));
                    }
                }
            }
        }
        other => return Err(format!("config must be an object, not {other}")),
    }
    Ok((percentage, seed))
}

impl SchedulerPolicy for DefaultScheduler {
    fn new(config: &Value) -> Result<Self, String> {
        let (percentage, seed) = parse_config(config)?;
        Ok(DefaultScheduler {
            cluster: Cluster::default(),
            cache: Cache::default(),
            percentage,
            next_start: 0,
            rng: Rng::new(seed),
            scratch: Scratch::default(),
            last: SearchStats::default(),
        })
    }

    fn update(&mut self, changes: Vec<ClusterChange>) {
        if changes.is_empty() {
            return;
        }
        self.cache.clear();
        for change in changes {
            match change {
                ClusterChange::NodeSet(node) => self.cluster.set_node(node),
                ClusterChange::NodeRemoved(name) => self.cluster.remove_node(&name),
                ClusterChange::PodSet(pod) => {
                    self.cluster.set_pod(pod);
                }
                ClusterChange::PodRemoved(uid) => self.cluster.remove_pod(&uid),
            }
        }
    }

    fn schedule(&mut self, pods: Vec<PodInfo>) -> Vec<Decision> {
        let mut decisions = Vec::with_capacity(pods.len());
        for pod in pods {
            let (decision, idx) = self.decide(&pod);
            if idx != NONE {
                self.assume(pod, idx);
            }
            decisions.push(decision);
        }
        decisions
    }
}

export_scheduler!(DefaultScheduler);
