//! Tugboat's core host: the store, the Kubernetes-compatible API server and (in later
//! layers) the reconcile engine, plugin runtime, scheduler framework and node agent.
//!
//! Dependencies point one way: `api` → `store`; `engine` → `api::client`. See
//! ARCHITECTURE.md for the map.

#![recursion_limit = "256"]

pub mod api;
pub mod bench;
pub mod builtin;
pub mod cli;
pub mod engine;
pub mod network;
pub mod node;
pub mod plugin;
pub mod runtime;
pub mod scheduler;
pub mod serve;
pub mod store;
