//! Services on the node (see the parent module).
//!
//! - [`proxy`] — the Service proxy (kube-proxy's job): ClusterIP and NodePort traffic
//!   load-balanced to ready endpoints by one nftables table of its own.
//! - [`dns`] — the cluster DNS server: `svc.ns.svc.cluster.local` A and SRV records, pod
//!   A records, NXDOMAIN for the rest of the cluster domain, everything else forwarded.
//! - [`bench`] — `tug bench services`: programming latency and connection rate through a
//!   ClusterIP, in network namespaces of its own.

pub mod bench;
pub mod dns;
pub mod proxy;
pub(crate) mod testbed;

#[cfg(test)]
mod tests;

pub use dns::{ClusterDns, DnsConfig};
pub use proxy::{Ipv4Cidr, ProxyConfig, ProxyStatus, ServiceProxy};
