//! Schedulers: a scheduling policy as a plugin (the `scheduler` world).
//!
//! The cluster state lives *inside* the plugin: after [`SchedulerPolicy::new`] the host sends
//! every node and every placed pod once through [`SchedulerPolicy::update`], and from then on
//! only what changed ([`ClusterChange`]). [`SchedulerPolicy::schedule`] decides a batch of
//! pending pods at once and returns one [`Decision`] per pod, in order. A policy that picks a
//! node counts the pod there at once ("assumes" it) so that the next pod of the batch sees
//! it; the host later confirms it with a `pod-set` of the same uid or takes it back with a
//! `pod-removed`.
//!
//! Amounts are integers in canonical units: CPU in milli-CPU, memory and ephemeral storage
//! in bytes, pods as a count, extended resources in their own integer units.
//!
//! ```
//! use tugboat_plugin_sdk::prelude::*;
//! use tugboat_plugin_sdk::scheduler::*;
//!
//! /// Puts every pod on the node with the most free milli-CPU.
//! #[derive(Default)]
//! struct MostFreeCpu {
//!     nodes: std::collections::HashMap<String, (i64, i64)>, // allocatable, requested
//!     pods: std::collections::HashMap<String, (String, i64)>, // uid -> node, cpu
//! }
//!
//! impl SchedulerPolicy for MostFreeCpu {
//!     fn new(_config: &Value) -> Result<Self, String> {
//!         Ok(MostFreeCpu::default())
//!     }
//!
//!     fn update(&mut self, changes: Vec<ClusterChange>) {
//!         for change in changes {
//!             match change {
//!                 ClusterChange::NodeSet(n) => {
//!                     let used = self.nodes.get(&n.name).map_or(0, |e| e.1);
//!                     self.nodes.insert(n.name, (n.allocatable.milli_cpu, used));
//!                 }
//!                 ClusterChange::NodeRemoved(name) => {
//!                     self.nodes.remove(&name);
//!                 }
//!                 ClusterChange::PodSet(p) => {
//!                     self.remove(&p.uid);
//!                     let node = p.node_name.unwrap_or_default();
//!                     if let Some(n) = self.nodes.get_mut(&node) {
//!                         n.1 += p.requests.milli_cpu;
//!                     }
//!                     self.pods.insert(p.uid, (node, p.requests.milli_cpu));
//!                 }
//!                 ClusterChange::PodRemoved(uid) => self.remove(&uid),
//!             }
//!         }
//!     }
//!
//!     fn schedule(&mut self, pods: Vec<PodInfo>) -> Vec<Decision> {
//!         pods.into_iter()
//!             .map(|p| {
//!                 let best = self
//!                     .nodes
//!                     .iter()
//!                     .filter(|(_, (a, r))| a - r >= p.requests.milli_cpu)
//!                     .max_by_key(|(_, (a, r))| a - r)
//!                     .map(|(name, _)| name.clone());
//!                 match best {
//!                     Some(node) => {
//!                         self.update(vec![ClusterChange::PodSet(PodInfo {
//!                             node_name: Some(node.clone()),
//!                             ..p
//!                         })]);
//!                         Decision::Node(node)
//!                     }
//!                     None => Decision::Unschedulable(vec![ReasonCount {
//!                         reason: "Insufficient cpu".into(),
//!                         nodes: self.nodes.len() as u32,
//!                     }]),
//!                 }
//!             })
//!             .collect()
//!     }
//! }
//!
//! impl MostFreeCpu {
//!     fn remove(&mut self, uid: &str) {
//!         if let Some((node, cpu)) = self.pods.remove(uid) {
//!             if let Some(n) = self.nodes.get_mut(&node) {
//!                 n.1 -= cpu;
//!             }
//!         }
//!     }
//! }
//!
//! export_scheduler!(MostFreeCpu);
//! # fn main() {}
//! ```

use std::cell::RefCell;
use std::fmt;

use serde_json::Value;

pub use crate::bindings::scheduler::exports::tugboat::plugin::scheduler_plugin::{
    ClusterChange, Decision, HostPort, Label, NodeInfo, PodInfo, ReasonCount, Resources, Taint,
    TaintEffect, Toleration,
};

/// The node label holding the node's hostname (`kubernetes.io/hostname`).
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The node label holding the node's zone (`topology.kubernetes.io/zone`).
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// The node label holding the node's region (`topology.kubernetes.io/region`).
pub const LABEL_REGION: &str = "topology.kubernetes.io/region";
/// The taint key of a cordoned node (`node.kubernetes.io/unschedulable`, effect
/// `NoSchedule`): a pod that tolerates it may be placed on an unschedulable node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The milli-CPU Kubernetes counts, for scoring, for a container that requests no CPU.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory Kubernetes counts, for scoring, for a container that requests no memory
/// (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A scheduling policy. Its functions are plain Rust, so a policy can be unit-tested (and
/// benchmarked) natively; [`export_scheduler!`](crate::export_scheduler) turns it into the
/// component's exports.
pub trait SchedulerPolicy: Sized + 'static {
    /// Called once per instance with the manifest's `config` (`Value::Null` when unset). An
    /// error refuses the plugin version.
    fn new(config: &Value) -> Result<Self, String>;

    /// Applies cluster changes, in order. After `new` the host sends the whole cluster
    /// (every node, then every placed pod), then only changes.
    fn update(&mut self, changes: Vec<ClusterChange>);

    /// Decides for each pod, in order: exactly one decision per pod. A pod given a node must
    /// be counted on that node before the next pod is decided (the host confirms it with a
    /// `pod-set` once bound, or takes it back with a `pod-removed`).
    fn schedule(&mut self, pods: Vec<PodInfo>) -> Vec<Decision>;
}

/// The value of `key` among `labels`, if present.
pub fn label<'a>(labels: &'a [Label], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|l| l.key == key)
        .map(|l| l.value.as_str())
}

impl Label {
    /// A label `key=value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Labels from `(key, value)` pairs, e.g. `labels(&[("app", "web")])`.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(k, v)| Label::new(*k, *v)).collect()
}

impl Resources {
    /// No resources at all (every amount 0, no extended resources).
    pub fn zero() -> Self {
        Resources {
            milli_cpu: 0,
            memory: 0,
            ephemeral_storage: 0,
            pods: 0,
            scalar: Vec::new(),
        }
    }

    /// `milli_cpu` milli-CPU and `memory` bytes, nothing else.
    pub fn new(milli_cpu: i64, memory: i64) -> Self {
        Resources {
            milli_cpu,
            memory,
            ..Resources::zero()
        }
    }

    /// What a node offers: CPU, memory and a pod capacity.
    pub fn node(milli_cpu: i64, memory: i64, pods: i64) -> Self {
        Resources {
            milli_cpu,
            memory,
            pods,
            ..Resources::zero()
        }
    }

    /// The same with `pods` set.
    pub fn with_pods(mut self, pods: i64) -> Self {
        self.pods = pods;
        self
    }

    /// The same with `ephemeral_storage` set (bytes).
    pub fn with_ephemeral_storage(mut self, bytes: i64) -> Self {
        self.ephemeral_storage = bytes;
        self
    }

    /// The same with the extended resource `name` set to `amount` (replacing any earlier
    /// amount of it).
    pub fn with_scalar(mut self, name: impl Into<String>, amount: i64) -> Self {
        let name = name.into();
        match self.scalar.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = amount,
            None => self.scalar.push((name, amount)),
        }
        self
    }

    /// The amount of the extended resource `name` (0 when absent).
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .sum()
    }

    /// Whether every amount is 0 (a best-effort pod's requests, apart from `pods`).
    pub fn is_zero_ignoring_pods(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }

    /// The requests Kubernetes' scoring counts for a pod of one container requesting
    /// `self`: a CPU request of 0 counts as [`DEFAULT_MILLI_CPU_REQUEST`] and a memory
    /// request of 0 as [`DEFAULT_MEMORY_REQUEST`]. (For pods of several containers the
    /// host applies the defaults per container; this is a convenience for tests.)
    pub fn with_scoring_defaults(&self) -> Self {
        let mut r = self.clone();
        if r.milli_cpu == 0 {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if r.memory == 0 {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
        r
    }
}

impl TaintEffect {
    /// The Kubernetes spelling: `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }

    /// Parses the Kubernetes spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Taint {
    /// A taint `key=value:effect`.
    pub fn new(key: impl Into<String>, value: impl Into<String>, effect: TaintEffect) -> Self {
        Taint {
            key: key.into(),
            value: value.into(),
            effect,
        }
    }
}

impl Toleration {
    /// `operator: Exists` for `key` (an empty key tolerates every taint), every effect.
    pub fn exists(key: impl Into<String>) -> Self {
        Toleration {
            key: key.into(),
            exists: true,
            value: String::new(),
            effect: None,
        }
    }

    /// `operator: Equal` for `key` and `value`, every effect.
    pub fn equal(key: impl Into<String>, value: impl Into<String>) -> Self {
        Toleration {
            key: key.into(),
            exists: false,
            value: value.into(),
            effect: None,
        }
    }

    /// The same restricted to `effect`.
    pub fn with_effect(mut self, effect: TaintEffect) -> Self {
        self.effect = Some(effect);
        self
    }

    /// Whether this toleration tolerates `taint`, with Kubernetes' semantics
    /// (`Toleration.ToleratesTaint`): the effect must match unless the toleration has none;
    /// the key must match unless the toleration's is empty; `Exists` then matches any value
    /// and `Equal` compares the values.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        self.exists || self.value == taint.value
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

impl HostPort {
    /// A host port `port`/`protocol` on every address of the node.
    pub fn new(port: u16, protocol: impl Into<String>) -> Self {
        HostPort {
            port,
            protocol: protocol.into(),
            host_ip: String::new(),
        }
    }

    /// The same bound to one address of the node.
    pub fn with_host_ip(mut self, host_ip: impl Into<String>) -> Self {
        self.host_ip = host_ip.into();
        self
    }
}

impl NodeInfo {
    /// A schedulable node `name` offering `allocatable`, labelled
    /// `kubernetes.io/hostname=<name>`, without taints.
    pub fn new(name: impl Into<String>, allocatable: Resources) -> Self {
        let name = name.into();
        NodeInfo {
            labels: vec![Label::new(LABEL_HOSTNAME, name.clone())],
            name,
            allocatable,
            taints: Vec::new(),
            unschedulable: false,
        }
    }

    /// The value of the label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        label(&self.labels, key)
    }

    /// The same with the label `key=value` (replacing any earlier value).
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        set_label(&mut self.labels, key.into(), value.into());
        self
    }

    /// The same with `taint` added.
    pub fn with_taint(mut self, taint: Taint) -> Self {
        self.taints.push(taint);
        self
    }

    /// The same, cordoned (`spec.unschedulable`).
    pub fn cordoned(mut self) -> Self {
        self.unschedulable = true;
        self
    }
}

fn set_label(labels: &mut Vec<Label>, key: String, value: String) {
    match labels.iter_mut().find(|l| l.key == key) {
        Some(l) => l.value = value,
        None => labels.push(Label { key, value }),
    }
}

impl PodInfo {
    /// A pod `namespace/name` with uid `uid` that requests nothing (`pods: 1`, scoring
    /// requests at Kubernetes' defaults), not placed, without labels or constraints.
    pub fn new(
        uid: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        let requests = Resources::zero().with_pods(1);
        PodInfo {
            uid: uid.into(),
            namespace: namespace.into(),
            name: name.into(),
            labels: Vec::new(),
            score_requests: requests.with_scoring_defaults(),
            requests,
            host_ports: Vec::new(),
            owner_uid: None,
            node_name: None,
            node_selector: Vec::new(),
            tolerations: Vec::new(),
            affinity: None,
            topology_spread_constraints: None,
            priority: 0,
        }
    }

    /// The value of the label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        label(&self.labels, key)
    }

    /// The same with the label `key=value` (replacing any earlier value).
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        set_label(&mut self.labels, key.into(), value.into());
        self
    }

    /// The same requesting `requests` (`pods` forced to 1), with the scoring requests of a
    /// one-container pod ([`Resources::with_scoring_defaults`]).
    pub fn with_requests(mut self, requests: Resources) -> Self {
        self.requests = requests.with_pods(1);
        self.score_requests = self.requests.with_scoring_defaults();
        self
    }

    /// The same owned by the controller with uid `owner_uid`.
    pub fn with_owner(mut self, owner_uid: impl Into<String>) -> Self {
        self.owner_uid = Some(owner_uid.into());
        self
    }

    /// The same placed on (or, for a pending pod, asking for) the node `node`.
    pub fn on_node(mut self, node: impl Into<String>) -> Self {
        self.node_name = Some(node.into());
        self
    }

    /// The same with the node selector entry `key=value`.
    pub fn with_node_selector(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        set_label(&mut self.node_selector, key.into(), value.into());
        self
    }

    /// The same with `toleration` added.
    pub fn with_toleration(mut self, toleration: Toleration) -> Self {
        self.tolerations.push(toleration);
        self
    }

    /// The same asking for `port`.
    pub fn with_host_port(mut self, port: HostPort) -> Self {
        self.host_ports.push(port);
        self
    }

    /// The same with `spec.affinity` (serialised to the JSON the host sends).
    pub fn with_affinity(mut self, affinity: &Value) -> Self {
        self.affinity = Some(affinity.to_string());
        self
    }

    /// The same with `spec.topologySpreadConstraints` (serialised to the JSON the host
    /// sends).
    pub fn with_topology_spread_constraints(mut self, constraints: &Value) -> Self {
        self.topology_spread_constraints = Some(constraints.to_string());
        self
    }
}

impl Decision {
    /// The node chosen, if any.
    pub fn node_name(&self) -> Option<&str> {
        match self {
            Decision::Node(n) => Some(n),
            _ => None,
        }
    }

    /// The reasons of an unschedulable pod (empty for the other outcomes).
    pub fn reasons(&self) -> &[ReasonCount] {
        match self {
            Decision::Unschedulable(r) => r,
            _ => &[],
        }
    }
}

impl ReasonCount {
    /// `nodes` node(s) gave `reason`.
    pub fn new(reason: impl Into<String>, nodes: u32) -> Self {
        ReasonCount {
            reason: reason.into(),
            nodes,
        }
    }
}

/// The glue between the component's exports and a [`SchedulerPolicy`], used by
/// [`export_scheduler!`](crate::export_scheduler). Not part of the API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    pub use crate::bindings::scheduler::exports::tugboat::plugin::scheduler_plugin::Guest;

    /// The message of the decisions of a `schedule` before `init`.
    pub const NOT_INITIALISED: &str = "not initialised";

    /// `init`: parses the config and creates the policy (replacing any earlier one).
    pub fn init<P: SchedulerPolicy>(
        state: &RefCell<Option<P>>,
        config: String,
    ) -> Result<(), String> {
        let config = if config.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&config).map_err(|e| format!("config is not valid JSON: {e}"))?
        };
        let policy = P::new(&config)?;
        let mut state = state
            .try_borrow_mut()
            .map_err(|_| "the scheduler is busy (re-entrant init)".to_string())?;
        *state = Some(policy);
        Ok(())
    }

    /// `update`: hands the changes to the policy (ignored before `init`: the host sends the
    /// whole cluster after every `init`).
    pub fn update<P: SchedulerPolicy>(state: &RefCell<Option<P>>, changes: Vec<ClusterChange>) {
        if let Ok(mut state) = state.try_borrow_mut()
            && let Some(policy) = state.as_mut()
        {
            policy.update(changes);
        }
    }

    /// `schedule`: one decision per pod, whatever the policy returns (missing decisions
    /// become errors, extra ones are dropped); before `init` every pod gets
    /// `Decision::Error("not initialised")`.
    pub fn schedule<P: SchedulerPolicy>(
        state: &RefCell<Option<P>>,
        pods: Vec<PodInfo>,
    ) -> Vec<Decision> {
        let n = pods.len();
        let (mut decisions, missing) = match state.try_borrow_mut() {
            Ok(mut state) => match state.as_mut() {
                Some(policy) => (
                    policy.schedule(pods),
                    "the policy returned no decision for this pod",
                ),
                None => (Vec::new(), NOT_INITIALISED),
            },
            Err(_) => (Vec::new(), "the scheduler is busy (re-entrant schedule)"),
        };
        decisions.truncate(n);
        while decisions.len() < n {
            decisions.push(Decision::Error(missing.to_string()));
        }
        decisions
    }
}

/// Exports a type implementing [`SchedulerPolicy`] as the component's `scheduler-plugin`
/// interface. The policy lives in a thread-local `RefCell<Option<P>>`: `init` creates it
/// (replacing any earlier one), `update` before `init` is ignored and `schedule` before
/// `init` answers `Decision::Error("not initialised")` for every pod. Use it once per plugin
/// crate (a `cdylib`). On a native target (unit tests, native benchmarks) it expands to
/// nothing.
#[macro_export]
macro_rules! export_scheduler {
    ($policy:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static __TUGBOAT_SCHEDULER_STATE: ::std::cell::RefCell<
                    ::std::option::Option<$policy>,
                > = const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct __TugboatSchedulerExport;

            impl $crate::scheduler::__private::Guest for __TugboatSchedulerExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    __TUGBOAT_SCHEDULER_STATE
                        .with(|state| $crate::scheduler::__private::init::<$policy>(state, config))
                }

                fn update(changes: ::std::vec::Vec<$crate::scheduler::ClusterChange>) {
                    __TUGBOAT_SCHEDULER_STATE.with(|state| {
                        $crate::scheduler::__private::update::<$policy>(state, changes)
                    })
                }

                fn schedule(
                    pods: ::std::vec::Vec<$crate::scheduler::PodInfo>,
                ) -> ::std::vec::Vec<$crate::scheduler::Decision> {
                    __TUGBOAT_SCHEDULER_STATE.with(|state| {
                        $crate::scheduler::__private::schedule::<$policy>(state, pods)
                    })
                }
            }

            $crate::bindings::scheduler::__tugboat_export_scheduler_world!(
                __TugboatSchedulerExport with_types_in $crate::bindings::scheduler
            );
        };
    };
}

#[cfg(test)]
mod tests {
    use super::__private::{NOT_INITIALISED, init, schedule, update};
    use super::*;
    use serde_json::json;

    /// Puts every pod on the first node it was told about; counts its updates.
    struct First {
        nodes: Vec<String>,
        updates: usize,
        answer_nothing: bool,
    }

    impl SchedulerPolicy for First {
        fn new(config: &Value) -> Result<Self, String> {
            if config.get("fail").is_some() {
                return Err("asked to fail".into());
            }
            Ok(First {
                nodes: Vec::new(),
                updates: 0,
                answer_nothing: config.get("silent").is_some(),
            })
        }

        fn update(&mut self, changes: Vec<ClusterChange>) {
            for c in changes {
                self.updates += 1;
                if let ClusterChange::NodeSet(n) = c {
                    self.nodes.push(n.name);
                }
            }
        }

        fn schedule(&mut self, pods: Vec<PodInfo>) -> Vec<Decision> {
            if self.answer_nothing {
                return Vec::new();
            }
            pods.iter()
                .map(|_| match self.nodes.first() {
                    Some(n) => Decision::Node(n.clone()),
                    None => Decision::Unschedulable(Vec::new()),
                })
                .collect()
        }
    }

    #[test]
    fn schedule_before_init_is_an_error_per_pod_and_update_is_ignored() {
        let state = RefCell::new(None::<First>);
        update(
            &state,
            vec![ClusterChange::NodeSet(NodeInfo::new(
                "n1",
                Resources::zero(),
            ))],
        );
        let d = schedule(
            &state,
            vec![PodInfo::new("a", "ns", "a"), PodInfo::new("b", "ns", "b")],
        );
        assert_eq!(
            d,
            vec![
                Decision::Error(NOT_INITIALISED.into()),
                Decision::Error(NOT_INITIALISED.into())
            ]
        );
    }

    #[test]
    fn init_update_schedule_round_trip() {
        let state = RefCell::new(None::<First>);
        assert_eq!(
            init(&state, r#"{"fail": true}"#.into()),
            Err("asked to fail".into())
        );
        assert!(
            init(&state, "{not json".into())
                .unwrap_err()
                .contains("not valid JSON")
        );
        init(&state, String::new()).unwrap();
        update(
            &state,
            vec![ClusterChange::NodeSet(NodeInfo::new(
                "n1",
                Resources::zero(),
            ))],
        );
        let d = schedule(&state, vec![PodInfo::new("a", "ns", "a")]);
        assert_eq!(d, vec![Decision::Node("n1".into())]);
        assert_eq!(state.borrow().as_ref().unwrap().updates, 1);
        // A new init starts afresh.
        init(&state, "null".into()).unwrap();
        assert_eq!(
            schedule(&state, vec![PodInfo::new("a", "ns", "a")]),
            vec![Decision::Unschedulable(Vec::new())]
        );
    }

    #[test]
    fn missing_decisions_are_filled_in() {
        let state = RefCell::new(None::<First>);
        init(&state, json!({"silent": true}).to_string()).unwrap();
        let d = schedule(&state, vec![PodInfo::new("a", "ns", "a")]);
        assert!(matches!(&d[..], [Decision::Error(m)] if m.contains("no decision")));
        assert!(schedule(&state, Vec::new()).is_empty());
    }

    #[test]
    fn helpers() {
        let t = Taint::new("dedicated", "gpu", TaintEffect::NoSchedule);
        assert!(Toleration::exists("").tolerates(&t));
        assert!(Toleration::exists("dedicated").tolerates(&t));
        assert!(Toleration::equal("dedicated", "gpu").tolerates(&t));
        assert!(!Toleration::equal("dedicated", "cpu").tolerates(&t));
        assert!(
            !Toleration::exists("dedicated")
                .with_effect(TaintEffect::NoExecute)
                .tolerates(&t)
        );
        assert!(tolerated(
            &[Toleration::exists("x"), Toleration::exists("")],
            &t
        ));
        assert_eq!(
            TaintEffect::parse("NoExecute"),
            Some(TaintEffect::NoExecute)
        );
        assert_eq!(
            TaintEffect::PreferNoSchedule.to_string(),
            "PreferNoSchedule"
        );

        let n = NodeInfo::new("n1", Resources::node(4000, 8 << 30, 110))
            .with_label(LABEL_ZONE, "a")
            .with_label(LABEL_ZONE, "b");
        assert_eq!(n.label(LABEL_HOSTNAME), Some("n1"));
        assert_eq!(n.label(LABEL_ZONE), Some("b"));
        assert_eq!(n.labels.len(), 2);

        let r = Resources::new(0, 0).with_scalar("nvidia.com/gpu", 1);
        assert_eq!(r.scalar("nvidia.com/gpu"), 1);
        assert_eq!(r.scalar("other"), 0);
        assert!(!r.is_zero_ignoring_pods());
        let p = PodInfo::new("u", "ns", "p").with_requests(Resources::new(0, 1 << 20));
        assert_eq!(p.requests.pods, 1);
        assert_eq!(p.score_requests.milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(p.score_requests.memory, 1 << 20);
        assert_eq!(label(&labels(&[("a", "1")]), "a"), Some("1"));
        assert_eq!(Decision::Node("x".into()).node_name(), Some("x"));
        assert!(Decision::Error("e".into()).reasons().is_empty());
    }
}
