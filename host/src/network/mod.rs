//! Pod networking and Services (issue 7).
//!
//! - [`pod`] — the pod network: the `network` plugin world's host side (netlink operations
//!   scoped to one pod sandbox and the node's bridge, the IPAM key-value store, CNI binary
//!   execution) and the manager the node agent calls to attach and detach pod sandboxes.
//! - [`service`] — Services on the node: the nftables proxy (ClusterIP, NodePort) and the
//!   cluster DNS server.

pub mod pod;
pub mod service;
