//! A scheduler for fault tests: every pod goes to the first node (by name) it knows, except
//! pods whose name starts with `trap`, on which it panics (a trap: plugins are built with
//! `panic = "abort"`). The host must drop the instance, start a fresh one with the whole
//! cluster, keep the other pods of the batch going, and stay up.

use std::collections::BTreeSet;

use tugboat_plugin_sdk::prelude::*;
use tugboat_plugin_sdk::scheduler::{ClusterChange, Decision, PodInfo, SchedulerPolicy};

#[derive(Default)]
struct FirstNode {
    nodes: BTreeSet<String>,
}

impl SchedulerPolicy for FirstNode {
    fn new(_config: &Value) -> Result<Self, String> {
        Ok(FirstNode::default())
    }

    fn update(&mut self, changes: Vec<ClusterChange>) {
        for c in changes {
            match c {
                ClusterChange::NodeSet(n) => {
                    self.nodes.insert(n.name);
                }
                ClusterChange::NodeRemoved(n) => {
                    self.nodes.remove(&n);
                }
                ClusterChange::PodSet(_) | ClusterChange::PodRemoved(_) => {}
            }
        }
    }

    fn schedule(&mut self, pods: Vec<PodInfo>) -> Vec<Decision> {
        pods.iter()
            .map(|p| {
                if p.name.starts_with("trap") {
                    panic!("refusing to schedule {}", p.name);
                }
                match self.nodes.iter().next() {
                    Some(n) => Decision::Node(n.clone()),
                    None => Decision::Unschedulable(vec![]),
                }
            })
            .collect()
    }
}

tugboat_plugin_sdk::export_scheduler!(FirstNode);
