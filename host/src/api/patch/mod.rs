//! Patches: strategic merge patch (what `kubectl apply` and `kubectl patch` send for
//! built-in kinds), server-side apply with managed fields, and the table of the
//! Kubernetes list and map strategies of the built-in types. JSON patch and JSON merge
//! patch come from the `json-patch` crate.

pub mod merge_keys;
pub mod smp;
pub mod ssa;
