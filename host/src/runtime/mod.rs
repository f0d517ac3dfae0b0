//! The container runtime, a native host capability (no Docker, no containerd):
//!
//! - [`image`] — OCI images: pull (streamed to disk, verified by digest), a
//!   content-addressed store shared by all pods, layers unpacked once, overlayfs root
//!   filesystems, import of OCI/docker-archive tarballs, garbage collection;
//! - [`container`] — pod sandboxes (pinned network, IPC and UTS namespaces), containers as
//!   OCI runtime bundles run by `runc` under a small per-container supervisor process
//!   (`tug shim`) that outlives `tug` itself, hardened defaults, cgroups, logs, exec.
//!
//! The node agent (`crate::node`) turns Pods into calls of these two.

pub mod container;
pub mod image;
