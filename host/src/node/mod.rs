//! The node agent (Tugboat's kubelet).
//!
//! [`simulated`]: hollow nodes for tests, scale runs and benchmarks
//! (`tug server --simulated-nodes N`): each registers a `Node`, renews its `Lease`, and plays
//! kubelet for the pods bound to it (they become Running and Ready at once, Job pods run to
//! completion, deleted pods are confirmed gone) without running any container.

pub mod simulated;
