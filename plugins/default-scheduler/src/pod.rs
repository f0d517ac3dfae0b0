//! What is computed once per pod being scheduled (requests with interned extended
//! resources, parsed affinity and spread constraints, normalised host ports, the owner's
//! id), and the filters that use it on one node.

use tugboat_plugin_sdk::scheduler::{
    Label, PodInfo, TAINT_UNSCHEDULABLE, TaintEffect, Toleration, tolerated,
};

use crate::selector::{NodeAffinity, Term, parse_affinity};
use crate::spread::{self, Constraints, Inclusion};
use crate::state::{Cluster, NONE, Node, normal_ip, normal_protocol, str_eq};

/// Why a node did not fit (the first failing filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Unschedulable,
    NodeName,
    /// The index of the first untolerated `NoSchedule`/`NoExecute` taint.
    Taint(usize),
    Affinity,
    Ports,
    /// One or more resources (the reasons are listed by [`PodCtx::insufficient`]).
    Resources,
    SpreadMissingLabel,
    Spread,
}

/// The pod being scheduled, prepared for the filters and scores.
pub(crate) struct PodCtx<'a> {
    pub pod: &'a PodInfo,
    pub cpu: i64,
    pub memory: i64,
    pub ephemeral: i64,
    /// `(scalar id or NONE when no node has it, amount, name)`, non-zero amounts only.
    pub scalars: Vec<(u32, i64, &'a str)>,
    /// Whether the pod requests nothing at all (then only the pod count is checked).
    pub requests_nothing: bool,
    /// The scoring requests (CPU, memory).
    pub nonzero_cpu: i64,
    pub nonzero_memory: i64,
    pub tolerates_unschedulable: bool,
    /// `spec.nodeName` of the pending pod, if set.
    pub node_name: Option<&'a str>,
    pub node_selector: &'a [Label],
    pub affinity: NodeAffinity,
    /// `(port, protocol, address)`, normalised, port > 0.
    pub ports: Vec<(u16, &'a str, &'a str)>,
    /// The owner id (`NONE` when the pod has no owner or no pod of its owner is placed).
    pub owner: u32,
    /// Whether the pod has an owner (system default spreading applies).
    pub has_owner: bool,
    pub spread: Constraints,
}

impl<'a> PodCtx<'a> {
    /// Prepares `pod`; an error for malformed affinity or spread constraints.
    pub fn new(pod: &'a PodInfo, cluster: &Cluster) -> Result<Self, String> {
        let affinity = match pod.affinity.as_deref() {
            Some(a) if !a.trim().is_empty() && a.trim() != "null" => parse_affinity(a)?,
            _ => NodeAffinity::default(),
        };
        let spread = match pod.topology_spread_constraints.as_deref() {
            Some(s) if !s.trim().is_empty() && s.trim() != "null" => spread::parse(s, &pod.labels)?,
            _ => Constraints::default(),
        };
        let r = &pod.requests;
        let scalars: Vec<(u32, i64, &str)> = r
            .scalar
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(name, v)| (cluster.scalars.get(name).unwrap_or(NONE), *v, name.as_str()))
            .collect();
        let owner_uid = pod.owner_uid.as_deref().filter(|o| !o.is_empty());
        Ok(PodCtx {
            pod,
            cpu: r.milli_cpu,
            memory: r.memory,
            ephemeral: r.ephemeral_storage,
            requests_nothing: r.milli_cpu == 0
                && r.memory == 0
                && r.ephemeral_storage == 0
                && scalars.is_empty(),
            scalars,
            nonzero_cpu: pod.score_requests.milli_cpu,
            nonzero_memory: pod.score_requests.memory,
            // Tolerates {key: node.kubernetes.io/unschedulable, effect: NoSchedule}.
            tolerates_unschedulable: pod.tolerations.iter().any(|t| {
                t.effect.is_none_or(|e| e == TaintEffect::NoSchedule)
                    && (t.key.is_empty() || t.key == TAINT_UNSCHEDULABLE)
                    && (t.exists || t.value.is_empty())
            }),
            node_name: pod.node_name.as_deref().filter(|n| !n.is_empty()),
            node_selector: &pod.node_selector,
            affinity,
            ports: pod
                .host_ports
                .iter()
                .filter(|p| p.port != 0)
                .map(|p| (p.port, normal_protocol(&p.protocol), normal_ip(&p.host_ip)))
                .collect(),
            owner: owner_uid
                .and_then(|o| cluster.owners.get(o))
                .unwrap_or(NONE),
            has_owner: owner_uid.is_some(),
            spread,
        })
    }

    fn tolerations(&self) -> &'a [Toleration] {
        &self.pod.tolerations
    }

    /// The index of the first `NoSchedule`/`NoExecute` taint of `node` the pod does not
    /// tolerate.
    #[inline]
    pub fn untolerated_taint(&self, node: &Node) -> Option<usize> {
        node.taints.iter().position(|t| {
            t.effect != TaintEffect::PreferNoSchedule && !tolerated(self.tolerations(), t)
        })
    }

    /// How many `PreferNoSchedule` taints of `node` the pod does not tolerate.
    #[inline]
    pub fn intolerable_prefer_taints(&self, node: &Node) -> i64 {
        node.taints
            .iter()
            .filter(|t| {
                t.effect == TaintEffect::PreferNoSchedule && !tolerated(self.tolerations(), t)
            })
            .count() as i64
    }

    /// Whether `node` matches the node selector and the required node affinity.
    #[inline]
    pub fn node_affinity_matches(&self, node: &Node) -> bool {
        for s in self.node_selector {
            match node.label(&s.key) {
                Some(v) if str_eq(v, &s.value) => {}
                _ => return false,
            }
        }
        match &self.affinity.required {
            None => true,
            Some(terms) => terms.iter().any(|t| t.matches(&node.name, &node.labels)),
        }
    }

    /// The sum of the weights of the preferred terms `node` matches.
    #[inline]
    pub fn preferred_affinity(&self, node: &Node) -> i64 {
        self.affinity
            .preferred
            .iter()
            .filter(|(_, t): &&(i64, Term)| t.matches(&node.name, &node.labels))
            .map(|(w, _)| *w)
            .sum()
    }

    /// Whether one of the pod's host ports conflicts with one in use on `node`.
    #[inline]
    pub fn port_conflict(&self, node: &Node) -> bool {
        self.ports.iter().any(|(port, protocol, ip)| {
            node.ports.iter().any(|u| {
                u.port == *port
                    && u.protocol == *protocol
                    && (*ip == "0.0.0.0" || u.ip == "0.0.0.0" || u.ip == *ip)
            })
        })
    }

    /// Whether the pod's requests fit on `node` (NodeResourcesFit's filter).
    #[inline]
    pub fn fits(&self, node: &Node) -> bool {
        if node.pod_count + 1 > node.max_pods {
            return false;
        }
        if self.requests_nothing {
            return true;
        }
        let free = |alloc: i64, used: i64| i128::from(alloc) - i128::from(used);
        let a = &node.allocatable;
        let u = &node.requested;
        if self.cpu > 0 && i128::from(self.cpu) > free(a.cpu, u.cpu) {
            return false;
        }
        if self.memory > 0 && i128::from(self.memory) > free(a.memory, u.memory) {
            return false;
        }
        if self.ephemeral > 0 && i128::from(self.ephemeral) > free(a.ephemeral, u.ephemeral) {
            return false;
        }
        self.scalars.iter().all(|(id, v, _)| {
            *v <= 0 || (*id != NONE && i128::from(*v) <= free(a.scalar(*id), u.scalar(*id)))
        })
    }

    /// The reasons the pod does not fit on `node` (Kubernetes' order and wording).
    pub fn insufficient(&self, node: &Node, mut reason: impl FnMut(&str)) {
        if node.pod_count + 1 > node.max_pods {
            reason("Too many pods");
        }
        if self.requests_nothing {
            return;
        }
        let free = |alloc: i64, used: i64| i128::from(alloc) - i128::from(used);
        let a = &node.allocatable;
        let u = &node.requested;
        if self.cpu > 0 && i128::from(self.cpu) > free(a.cpu, u.cpu) {
            reason("Insufficient cpu");
        }
        if self.memory > 0 && i128::from(self.memory) > free(a.memory, u.memory) {
            reason("Insufficient memory");
        }
        if self.ephemeral > 0 && i128::from(self.ephemeral) > free(a.ephemeral, u.ephemeral) {
            reason("Insufficient ephemeral-storage");
        }
        for (id, v, name) in &self.scalars {
            if *v > 0 && (*id == NONE || i128::from(*v) > free(a.scalar(*id), u.scalar(*id))) {
                reason(&format!("Insufficient {name}"));
            }
        }
    }

    /// The filters in Kubernetes' order, stopping at the first that fails.
    #[inline]
    pub fn filter(
        &self,
        node: &Node,
        idx: usize,
        hard: Option<&spread::Hard<'_>>,
    ) -> Option<Failure> {
        if node.unschedulable && !self.tolerates_unschedulable {
            return Some(Failure::Unschedulable);
        }
        if let Some(name) = self.node_name
            && name != node.name
        {
            return Some(Failure::NodeName);
        }
        if !node.taints.is_empty()
            && let Some(i) = self.untolerated_taint(node)
        {
            return Some(Failure::Taint(i));
        }
        if !self.node_affinity_matches(node) {
            return Some(Failure::Affinity);
        }
        if !self.ports.is_empty() && self.port_conflict(node) {
            return Some(Failure::Ports);
        }
        if !self.fits(node) {
            return Some(Failure::Resources);
        }
        if let Some(hard) = hard {
            match hard.check(idx) {
                spread::HardVerdict::Fits => {}
                spread::HardVerdict::MissingLabel => return Some(Failure::SpreadMissingLabel),
                spread::HardVerdict::TooSkewed => return Some(Failure::Spread),
            }
        }
        None
    }
}

impl Inclusion for PodCtx<'_> {
    fn affinity_matches(&self, node: &Node) -> bool {
        self.node_affinity_matches(node)
    }

    fn taints_tolerated(&self, node: &Node) -> bool {
        self.untolerated_taint(node).is_none()
    }
}
