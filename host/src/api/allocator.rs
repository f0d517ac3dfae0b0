//! Allocation of Service cluster IPs and NodePorts, as the Service REST storage of
//! kube-apiserver does it: each allocated value is a key in the store
//! (`/registry/ranges/…/<value>`), taken with an atomic create, so two servers sharing one
//! store never hand out the same value, and released when the Service goes.

use std::net::Ipv4Addr;

use rand::Rng;
use serde_json::{Value, json};

use super::Api;
use super::object::meta_str;
use super::status::{ApiError, ApiResult};
use crate::store::{StoreError, WriteOp};

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";
const POD_CIDR_PREFIX: &str = "/registry/ranges/podcidrs/";

/// What one Service holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub keys: Vec<String>,
}

fn invalid(name: &str, field: &str, value: Value, msg: &str) -> ApiError {
    ApiError::invalid(
        &super::status::Subject {
            group: "",
            resource: "services",
            kind: "Service",
            name,
        },
        vec![
            json!({"reason": "FieldValueInvalid", "message": format!("Invalid value: {value}: {msg}"), "field": field}),
        ],
    )
}

impl Api {
    /// The address of the `kubernetes` Service: the first usable address of the range.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        let (base, _) = self.config.service_cidr;
        Ipv4Addr::from(u32::from(base) + 1)
    }

    /// The cluster DNS address (`kube-dns`): the tenth address of the service range.
    pub fn cluster_dns_ip(&self) -> Ipv4Addr {
        let (base, _) = self.config.service_cidr;
        Ipv4Addr::from(u32::from(base) + 10)
    }

    async fn reserve(&self, key: String, owner: &str) -> Result<bool, ApiError> {
        let op = WriteOp::Create {
            key,
            value: owner.as_bytes().to_vec(),
        };
        match self.store.write(op).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(ApiError::internal(format!("allocating: {e}"))),
        }
    }

    /// Give a new Service its cluster IP and node ports (filling `spec.clusterIP(s)` and
    /// `spec.ports[].nodePort`), reserving them in the store.
    pub async fn allocate_service(&self, svc: &mut Value) -> ApiResult<Allocation> {
        let name = meta_str(svc, "name").to_string();
        let owner = format!("{}/{}", meta_str(svc, "namespace"), name);
        let mut alloc = Allocation::default();
        let result = self.allocate_into(svc, &name, &owner, &mut alloc).await;
        if result.is_err() {
            self.release(&alloc).await;
        }
        result.map(|_| alloc)
    }

    async fn allocate_into(
        &self,
        svc: &mut Value,
        name: &str,
        owner: &str,
        alloc: &mut Allocation,
    ) -> ApiResult<()> {
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if ty == "ExternalName" {
            return Ok(());
        }
        let (base, bits) = self.config.service_cidr;
        let size = 1u32 << (32 - bits as u32);
        let requested = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ip = if requested == "None" {
            None
        } else if !requested.is_empty() {
            let ip: Ipv4Addr = requested.parse().map_err(|_| {
                invalid(
                    name,
                    "spec.clusterIP",
                    json!(requested),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            })?;
            let off = u32::from(ip).wrapping_sub(u32::from(base));
            if off == 0 || off >= size - 1 {
                return Err(invalid(
                    name,
                    "spec.clusterIPs",
                    json!([requested]),
                    &format!(
                        "failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {base}/{bits}"
                    ),
                ));
            }
            let key = format!("{IP_PREFIX}{ip}");
            if !self.reserve(key.clone(), owner).await? {
                return Err(invalid(
                    name,
                    "spec.clusterIPs",
                    json!([requested]),
                    &format!("failed to allocate IP {requested}: provided IP is already allocated"),
                ));
            }
            alloc.keys.push(key);
            Some(ip)
        } else {
            let mut got = None;
            for _ in 0..64 {
                // .0 is the network, .1 the kubernetes Service, the last is broadcast.
                let off = rand::rng().random_range(2..size - 1);
                let ip = Ipv4Addr::from(u32::from(base) + off);
                let key = format!("{IP_PREFIX}{ip}");
                if self.reserve(key.clone(), owner).await? {
                    alloc.keys.push(key);
                    got = Some(ip);
                    break;
                }
            }
            Some(got.ok_or_else(|| {
                ApiError::internal("failed to allocate a service IP: the range is full")
            })?)
        };
        if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
            match ip {
                Some(ip) => {
                    spec.insert("clusterIP".into(), json!(ip.to_string()));
                    spec.insert("clusterIPs".into(), json!([ip.to_string()]));
                }
                None => {
                    spec.insert("clusterIP".into(), json!("None"));
                    spec.insert("clusterIPs".into(), json!(["None"]));
                }
            }
            spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
            spec.entry("ipFamilyPolicy")
                .or_insert_with(|| json!("SingleStack"));
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            let range = self.config.node_ports.clone();
            let ports = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut);
            for (i, port) in ports.into_iter().flatten().enumerate() {
                let wanted = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
                let n = if wanted != 0 {
                    let Some(n) = u16::try_from(wanted).ok().filter(|n| range.contains(n)) else {
                        return Err(invalid(
                            name,
                            &format!("spec.ports[{i}].nodePort"),
                            json!(wanted),
                            &format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                range.start(),
                                range.end()
                            ),
                        ));
                    };
                    let key = format!("{PORT_PREFIX}{n}");
                    if !self.reserve(key.clone(), owner).await? {
                        return Err(invalid(
                            name,
                            &format!("spec.ports[{i}].nodePort"),
                            json!(wanted),
                            "provided port is already allocated",
                        ));
                    }
                    alloc.keys.push(key);
                    n
                } else {
                    let mut got = None;
                    for _ in 0..64 {
                        let n = rand::rng().random_range(range.clone());
                        let key = format!("{PORT_PREFIX}{n}");
                        if self.reserve(key.clone(), owner).await? {
                            alloc.keys.push(key);
                            got = Some(n);
                            break;
                        }
                    }
                    got.ok_or_else(|| {
                        ApiError::internal("failed to allocate a node port: the range is full")
                    })?
                };
                port["nodePort"] = json!(n);
            }
        }
        Ok(())
    }

    /// The allocation a stored Service holds.
    pub fn allocation_of(svc: &Value) -> Allocation {
        let mut keys = vec![];
        if let Some(ip) = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && *s != "None")
        {
            keys.push(format!("{IP_PREFIX}{ip}"));
        }
        for p in svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = p
                .get("nodePort")
                .and_then(Value::as_u64)
                .filter(|n| *n != 0)
            {
                keys.push(format!("{PORT_PREFIX}{n}"));
            }
        }
        Allocation { keys }
    }

    /// Give a new Node its pod range (`spec.podCIDR(s)`): the first free block of
    /// [`ApiConfig::node_cidr_mask`](super::ApiConfig) bits in the cluster CIDR, reserved in
    /// the store as the node-ipam controller of kube-controller-manager does it. A Node that
    /// names its own range keeps it (and reserves it); hollow nodes
    /// (`tugboat.dev/simulated=true`) run no pod network and get none; when the cluster CIDR
    /// is used up the Node is created without one (Kubernetes records `CIDRNotAvailable`).
    pub async fn allocate_node_cidr(&self, node: &mut Value) -> ApiResult<Allocation> {
        let mut alloc = Allocation::default();
        if node
            .pointer("/metadata/labels/tugboat.dev~1simulated")
            .and_then(Value::as_str)
            == Some("true")
        {
            return Ok(alloc);
        }
        let owner = format!("node/{}", meta_str(node, "name"));
        if let Some(own) = node
            .pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let key = format!("{POD_CIDR_PREFIX}{}", own.replace('/', "_"));
            if self.reserve(key.clone(), &owner).await? {
                alloc.keys.push(key);
            }
            return Ok(alloc);
        }
        let (base, prefix) = self.config.cluster_cidr;
        let mask = self.config.node_cidr_mask;
        if mask < prefix || mask > 30 {
            return Ok(alloc);
        }
        let blocks = 1u64 << (mask - prefix);
        let taken: std::collections::HashSet<String> = self
            .store
            .list(POD_CIDR_PREFIX, None, 0)
            .await
            .map_err(|e| ApiError::internal(format!("allocating a pod CIDR: {e}")))?
            .items
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        for i in 0..blocks {
            let start = u32::from(base) + ((i as u32) << (32 - mask));
            let cidr = format!("{}/{mask}", Ipv4Addr::from(start));
            let key = format!("{POD_CIDR_PREFIX}{}", cidr.replace('/', "_"));
            if taken.contains(&key) {
                continue;
            }
            if self.reserve(key.clone(), &owner).await? {
                alloc.keys.push(key);
                if let Some(spec) = node
                    .as_object_mut()
                    .map(|o| o.entry("spec").or_insert_with(|| json!({})))
                    .and_then(Value::as_object_mut)
                {
                    spec.insert("podCIDR".into(), json!(cidr));
                    spec.insert("podCIDRs".into(), json!([cidr]));
                }
                return Ok(alloc);
            }
        }
        tracing::warn!(node = %meta_str(node, "name"), "no pod CIDR left in the cluster CIDR");
        Ok(alloc)
    }

    /// The pod range a stored Node holds.
    pub fn node_allocation_of(node: &Value) -> Allocation {
        let keys = node
            .pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|c| vec![format!("{POD_CIDR_PREFIX}{}", c.replace('/', "_"))])
            .unwrap_or_default();
        Allocation { keys }
    }

    /// Give back what a Service held.
    pub async fn release(&self, alloc: &Allocation) {
        for key in &alloc.keys {
            let op = WriteOp::Delete {
                key: key.clone(),
                expected_revision: None,
            };
            match self.store.write(op).await {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => tracing::warn!(%key, error = %e, "releasing a Service allocation"),
            }
        }
    }
}
