//! The plugin's copy of the cluster: nodes in a `Vec` (indexed by node index, with a name
//! index), placed pods in a slab keyed by uid, and the per-node sums the filters and scores
//! read (requests, scoring requests, pod count, host ports, pods per owner, zone), so that
//! nothing scans the pods while a pod is being scheduled.
//!
//! A pod placed on a node the plugin does not know (a `pod-set` before its `node-set`, or
//! the pods of a removed node) is kept, *waiting* for that node: it counts nowhere until a
//! `node-set` of that name arrives, and then counts there. This mirrors kube-scheduler's
//! cache, which keeps the pods of a deleted node until they are deleted themselves.

use std::collections::HashMap;

use tugboat_plugin_sdk::scheduler::{
    LABEL_HOSTNAME, LABEL_ZONE, Label, NodeInfo, PodInfo, Resources, Taint, label,
};

/// String equality without a call to `memcmp` (a byte loop in Wasm's libc): label keys
/// and values are short and compared for every node examined.
#[inline]
pub(crate) fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        if x != y {
            return false;
        }
    }
    ca.remainder()
        .iter()
        .zip(cb.remainder())
        .all(|(x, y)| x == y)
}

/// The value of the label `key` among `labels`.
#[inline]
pub(crate) fn find_label<'a>(labels: &'a [Label], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|l| str_eq(&l.key, key))
        .map(|l| l.value.as_str())
}

/// "None" for the `u32` indices below (no owner, no zone, not on a node).
pub(crate) const NONE: u32 = u32::MAX;

/// Resource amounts with extended resources by interned id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Amounts {
    pub cpu: i64,
    pub memory: i64,
    pub ephemeral: i64,
    /// `(scalar id, amount)`, each id at most once.
    pub scalars: Vec<(u32, i64)>,
}

impl Amounts {
    /// The amount of the extended resource `id` (0 when absent).
    #[inline]
    pub fn scalar(&self, id: u32) -> i64 {
        self.scalars
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(0, |(_, v)| *v)
    }

    /// Adds (`sign` 1) or subtracts (`sign` -1) `other`. Wrapping arithmetic, so that
    /// absurd amounts never panic and a later subtraction undoes an addition exactly.
    fn apply(&mut self, other: &Amounts, sign: i64) {
        self.cpu = self.cpu.wrapping_add(other.cpu.wrapping_mul(sign));
        self.memory = self.memory.wrapping_add(other.memory.wrapping_mul(sign));
        self.ephemeral = self
            .ephemeral
            .wrapping_add(other.ephemeral.wrapping_mul(sign));
        for (id, v) in &other.scalars {
            let delta = v.wrapping_mul(sign);
            match self.scalars.iter_mut().find(|(i, _)| i == id) {
                Some(e) => e.1 = e.1.wrapping_add(delta),
                None => self.scalars.push((*id, delta)),
            }
        }
        self.scalars.retain(|(_, v)| *v != 0);
    }
}

/// A host port in use on a node (normalised as Kubernetes' `HostPortInfo` does: an empty
/// protocol is TCP, an empty address is `0.0.0.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsedPort {
    pub port: u16,
    pub protocol: String,
    pub ip: String,
}

impl UsedPort {
    /// The normalised form of a container's host port; `None` for port 0 (no host port).
    pub fn new(port: u16, protocol: &str, ip: &str) -> Option<UsedPort> {
        (port != 0).then(|| UsedPort {
            port,
            protocol: normal_protocol(protocol).to_string(),
            ip: normal_ip(ip).to_string(),
        })
    }
}

/// `""` is TCP.
pub(crate) fn normal_protocol(p: &str) -> &str {
    if p.is_empty() { "TCP" } else { p }
}

/// `""` is every address.
pub(crate) fn normal_ip(ip: &str) -> &str {
    if ip.is_empty() { "0.0.0.0" } else { ip }
}

/// A node and what is placed on it.
#[derive(Debug)]
pub(crate) struct Node {
    pub name: String,
    pub labels: Vec<Label>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// `status.allocatable` (without `pods`).
    pub allocatable: Amounts,
    /// `status.allocatable.pods`.
    pub max_pods: i64,
    /// The sum of the placed pods' requests.
    pub requested: Amounts,
    /// The sum of the placed pods' scoring requests (CPU, memory).
    pub nonzero_cpu: i64,
    pub nonzero_memory: i64,
    /// How many pods are placed here.
    pub pod_count: i64,
    pub ports: Vec<UsedPort>,
    /// `(owner id, pods of that owner here)`.
    pub owners: Vec<(u32, u32)>,
    /// The zone id (`NONE` without a zone label).
    pub zone: u32,
    /// Whether the node has the `kubernetes.io/hostname` label.
    pub has_hostname: bool,
    /// The slots of the pods placed here.
    pub pods: Vec<u32>,
}

impl Node {
    /// The value of the label `key`.
    #[inline]
    pub fn label(&self, key: &str) -> Option<&str> {
        find_label(&self.labels, key)
    }

    /// How many pods of `owner` are placed here.
    #[inline]
    pub fn owner_count(&self, owner: u32) -> u32 {
        self.owners
            .iter()
            .find(|(o, _)| *o == owner)
            .map_or(0, |(_, c)| *c)
    }
}

/// A placed pod, as much of it as the plugin needs.
#[derive(Debug)]
pub(crate) struct Placed {
    pub uid: String,
    pub namespace: String,
    pub labels: Vec<Label>,
    pub requests: Amounts,
    pub nonzero_cpu: i64,
    pub nonzero_memory: i64,
    pub ports: Vec<UsedPort>,
    /// The owner id (`NONE` without an owner).
    pub owner: u32,
    /// The node it is placed on.
    pub node_name: String,
    /// That node's index, `NONE` while waiting for the node.
    pub node: u32,
}

/// Strings interned to dense ids, with reference counts so that ids are reused once
/// nothing refers to them any more.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    refs: Vec<u32>,
    free: Vec<u32>,
}

impl Interner {
    /// The id of `name`, if interned.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The id of `name`, interning it and taking a reference.
    fn acquire(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            self.refs[id as usize] += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.names[id as usize] = name.to_string();
                self.refs[id as usize] = 1;
                id
            }
            None => {
                self.names.push(name.to_string());
                self.refs.push(1);
                (self.names.len() - 1) as u32
            }
        };
        self.ids.insert(name.to_string(), id);
        id
    }

    /// Drops a reference; returns whether the id is now free.
    fn release(&mut self, id: u32) -> bool {
        let Some(r) = self.refs.get_mut(id as usize) else {
            return false;
        };
        *r = r.saturating_sub(1);
        if *r == 0 {
            let name = std::mem::take(&mut self.names[id as usize]);
            self.ids.remove(&name);
            self.free.push(id);
            return true;
        }
        false
    }
}

/// Never-freed string ids (zones and extended resource names: few, long-lived).
#[derive(Debug, Default)]
pub(crate) struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// The cluster as the plugin knows it.
#[derive(Debug, Default)]
pub(crate) struct Cluster {
    pub nodes: Vec<Node>,
    pub by_name: HashMap<String, u32>,
    /// Placed pods by slot (`None`: a free slot).
    pub slots: Vec<Option<Placed>>,
    free_slots: Vec<u32>,
    by_uid: HashMap<String, u32>,
    /// Pods placed on a node the plugin does not know, by node name.
    waiting: HashMap<String, Vec<u32>>,
    pub owners: Interner,
    /// Pods per owner id and zone id (`owner_zones[owner][zone]`).
    pub owner_zones: Vec<Vec<u32>>,
    pub zones: Names,
    pub scalars: Names,
}

impl Cluster {
    /// Adds a node, or replaces the labels, taints, allocatable and cordon of a known one
    /// (keeping its placed pods). Pods waiting for a node of this name are placed on it. A
    /// node without a name is ignored (no pod could be placed on it).
    pub fn set_node(&mut self, info: NodeInfo) {
        if info.name.is_empty() {
            return;
        }
        let zone = match label(&info.labels, LABEL_ZONE) {
            Some(z) => self.zones.intern(z),
            None => NONE,
        };
        let has_hostname = label(&info.labels, LABEL_HOSTNAME).is_some();
        let (allocatable, max_pods) = self.amounts(&info.allocatable);
        if let Some(&idx) = self.by_name.get(&info.name) {
            let node = &mut self.nodes[idx as usize];
            if node.zone != zone {
                for &(owner, count) in &node.owners {
                    if let Some(zones) = self.owner_zones.get_mut(owner as usize) {
                        zone_add(zones, node.zone, -i64::from(count));
                        zone_add(zones, zone, i64::from(count));
                    }
                }
            }
            node.labels = info.labels;
            node.taints = info.taints;
            node.unschedulable = info.unschedulable;
            node.allocatable = allocatable;
            node.max_pods = max_pods;
            node.zone = zone;
            node.has_hostname = has_hostname;
            return;
        }
        let idx = self.nodes.len() as u32;
        self.by_name.insert(info.name.clone(), idx);
        self.nodes.push(Node {
            name: info.name,
            labels: info.labels,
            taints: info.taints,
            unschedulable: info.unschedulable,
            allocatable,
            max_pods,
            requested: Amounts::default(),
            nonzero_cpu: 0,
            nonzero_memory: 0,
            pod_count: 0,
            ports: Vec::new(),
            owners: Vec::new(),
            zone,
            has_hostname,
            pods: Vec::new(),
        });
        let name = &self.nodes[idx as usize].name;
        if let Some(waiting) = self.waiting.remove(name) {
            for slot in waiting {
                self.attach(slot, idx);
            }
        }
    }

    /// Removes a node; its pods stop counting and wait for a node of the same name.
    pub fn remove_node(&mut self, name: &str) {
        let Some(idx) = self.by_name.remove(name) else {
            return;
        };
        let node = self.nodes.swap_remove(idx as usize);
        for &(owner, count) in &node.owners {
            if let Some(zones) = self.owner_zones.get_mut(owner as usize) {
                zone_add(zones, node.zone, -i64::from(count));
            }
        }
        if !node.pods.is_empty() {
            for &slot in &node.pods {
                if let Some(Some(p)) = self.slots.get_mut(slot as usize) {
                    p.node = NONE;
                }
            }
            self.waiting
                .entry(node.name)
                .or_default()
                .extend(node.pods.iter().copied());
        }
        // The last node moved into `idx`.
        if let Some(moved) = self.nodes.get(idx as usize) {
            self.by_name.insert(moved.name.clone(), idx);
            for &slot in &moved.pods {
                if let Some(Some(p)) = self.slots.get_mut(slot as usize) {
                    p.node = idx;
                }
            }
        }
    }

    /// Records a placed pod, replacing any earlier record of its uid. A pod without a node
    /// name is not placed: only its earlier record (if any) is dropped.
    pub fn set_pod(&mut self, pod: PodInfo) -> Option<u32> {
        self.remove_pod(&pod.uid);
        let node_name = pod.node_name.filter(|n| !n.is_empty())?;
        let (requests, _) = self.amounts(&pod.requests);
        let owner = match pod.owner_uid.as_deref() {
            Some(o) if !o.is_empty() => {
                let id = self.owners.acquire(o);
                if self.owner_zones.len() <= id as usize {
                    self.owner_zones.resize_with(id as usize + 1, Vec::new);
                }
                id
            }
            _ => NONE,
        };
        let placed = Placed {
            uid: pod.uid,
            namespace: pod.namespace,
            labels: pod.labels,
            requests,
            nonzero_cpu: pod.score_requests.milli_cpu,
            nonzero_memory: pod.score_requests.memory,
            ports: pod
                .host_ports
                .iter()
                .filter_map(|p| UsedPort::new(p.port, &p.protocol, &p.host_ip))
                .collect(),
            owner,
            node_name,
            node: NONE,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_uid.insert(placed.uid.clone(), slot);
        let node = self.by_name.get(&placed.node_name).copied();
        match node {
            Some(idx) => {
                self.slots[slot as usize] = Some(placed);
                self.attach(slot, idx);
            }
            None => {
                self.waiting
                    .entry(placed.node_name.clone())
                    .or_default()
                    .push(slot);
                self.slots[slot as usize] = Some(placed);
            }
        }
        Some(slot)
    }

    /// Forgets a placed pod (no-op for an unknown uid).
    pub fn remove_pod(&mut self, uid: &str) {
        let Some(slot) = self.by_uid.remove(uid) else {
            return;
        };
        let node = match self.slots.get(slot as usize) {
            Some(Some(p)) => p.node,
            _ => return,
        };
        if node != NONE {
            self.detach(slot);
        } else if let Some(Some(p)) = self.slots.get(slot as usize)
            && let Some(list) = self.waiting.get_mut(&p.node_name)
        {
            list.retain(|s| *s != slot);
            if list.is_empty() {
                self.waiting.remove(&p.node_name);
            }
        }
        if let Some(p) = self.slots[slot as usize].take()
            && p.owner != NONE
            && self.owners.release(p.owner)
            && let Some(z) = self.owner_zones.get_mut(p.owner as usize)
        {
            *z = Vec::new();
        }
        self.free_slots.push(slot);
    }

    /// The slot of a placed pod.
    pub fn pod(&self, slot: u32) -> Option<&Placed> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Whether a pod of this uid is recorded.
    pub fn contains_pod(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    /// How many pods are recorded (placed or waiting for their node).
    pub fn pod_count(&self) -> usize {
        self.by_uid.len()
    }

    /// How many recorded pods wait for an unknown node.
    pub fn waiting_count(&self) -> usize {
        self.waiting.values().map(Vec::len).sum()
    }

    /// Pods of `owner` per zone id (empty for an unknown owner).
    pub fn owner_zone_counts(&self, owner: u32) -> &[u32] {
        self.owner_zones
            .get(owner as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// Converts WIT resources to `Amounts` (interning extended resource names) and the pod
    /// capacity.
    fn amounts(&mut self, r: &Resources) -> (Amounts, i64) {
        let mut a = Amounts {
            cpu: r.milli_cpu,
            memory: r.memory,
            ephemeral: r.ephemeral_storage,
            scalars: Vec::with_capacity(r.scalar.len()),
        };
        for (name, v) in &r.scalar {
            let id = self.scalars.intern(name);
            match a.scalars.iter_mut().find(|(i, _)| *i == id) {
                Some(e) => e.1 = e.1.wrapping_add(*v),
                None => a.scalars.push((id, *v)),
            }
        }
        (a, r.pods)
    }

    /// Adds the pod in `slot` to node `idx`.
    fn attach(&mut self, slot: u32, idx: u32) {
        let Some(Some(p)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(node) = self.nodes.get_mut(idx as usize) else {
            return;
        };
        p.node = idx;
        node.requested.apply(&p.requests, 1);
        node.nonzero_cpu = node.nonzero_cpu.wrapping_add(p.nonzero_cpu);
        node.nonzero_memory = node.nonzero_memory.wrapping_add(p.nonzero_memory);
        node.pod_count += 1;
        node.ports.extend(p.ports.iter().cloned());
        if p.owner != NONE {
            match node.owners.iter_mut().find(|(o, _)| *o == p.owner) {
                Some(e) => e.1 += 1,
                None => node.owners.push((p.owner, 1)),
            }
            if let Some(zones) = self.owner_zones.get_mut(p.owner as usize) {
                zone_add(zones, node.zone, 1);
            }
        }
        node.pods.push(slot);
    }

    /// Takes the pod in `slot` off its node.
    fn detach(&mut self, slot: u32) {
        let Some(Some(p)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(node) = self.nodes.get_mut(p.node as usize) else {
            p.node = NONE;
            return;
        };
        p.node = NONE;
        node.requested.apply(&p.requests, -1);
        node.nonzero_cpu = node.nonzero_cpu.wrapping_sub(p.nonzero_cpu);
        node.nonzero_memory = node.nonzero_memory.wrapping_sub(p.nonzero_memory);
        node.pod_count -= 1;
        for port in &p.ports {
            if let Some(i) = node.ports.iter().position(|u| u == port) {
                node.ports.swap_remove(i);
            }
        }
        if p.owner != NONE {
            if let Some(i) = node.owners.iter().position(|(o, _)| *o == p.owner) {
                node.owners[i].1 -= 1;
                if node.owners[i].1 == 0 {
                    node.owners.swap_remove(i);
                }
            }
            if let Some(zones) = self.owner_zones.get_mut(p.owner as usize) {
                zone_add(zones, node.zone, -1);
            }
        }
        if let Some(i) = node.pods.iter().position(|s| *s == slot) {
            node.pods.swap_remove(i);
        }
    }
}

/// Adds `delta` to the count of `zone` (nothing for `NONE`), never below 0.
fn zone_add(zones: &mut Vec<u32>, zone: u32, delta: i64) {
    if zone == NONE || delta == 0 {
        return;
    }
    let z = zone as usize;
    if zones.len() <= z {
        zones.resize(z + 1, 0);
    }
    let v = i64::from(zones[z]) + delta;
    zones[z] = u32::try_from(v.max(0)).unwrap_or(u32::MAX);
}
