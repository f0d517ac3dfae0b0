//! The node agent (Tugboat's kubelet).
//!
//! [`simulated`]: hollow nodes for tests, scale runs and benchmarks
//! (`tug server --simulated-nodes N`): each registers a `Node`, renews its `Lease`, and plays
//! kubelet for the pods bound to it (they become Running and Ready at once, Job pods run to
//! completion, deleted pods are confirmed gone) without running any container.

//!
//! [`agent`]: the real node agent (`tug server --node-agent`): this machine as a Node, its
//! pods' containers run by the native runtime (`crate::runtime`); [`pod`] reads a Pod's
//! containers in Kubernetes' terms.

pub mod agent;
pub mod exec;
pub mod pod;
pub mod probe;
pub mod server;
pub mod simulated;
