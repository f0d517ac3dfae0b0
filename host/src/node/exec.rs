//! `kubectl exec` on this node: the API server's [`ExecProvider`] over the native
//! runtime's [`Runtime::exec`] (`runc exec` in the container instance the pod's status
//! names).

use std::sync::Arc;

use crate::api::exec::{ExecProcess, ExecProvider, ExecRequest, ExecStreams};
use crate::runtime::container::{ExecSession, Runtime};

/// Runs exec requests for the pods of Node `node_name` in `runtime`'s containers.
pub struct RuntimeExec {
    runtime: Arc<Runtime>,
    node_name: String,
}

impl RuntimeExec {
    pub fn new(runtime: Arc<Runtime>, node_name: String) -> Arc<RuntimeExec> {
        Arc::new(RuntimeExec { runtime, node_name })
    }
}

/// The runtime id of a container instance (as the node agent names them).
pub fn container_id(pod_uid: &str, container: &str, restart_count: u32) -> String {
    format!("{pod_uid}-{container}-{restart_count}")
}

#[async_trait::async_trait]
impl ExecProvider for RuntimeExec {
    fn serves(&self, node: &str) -> bool {
        node == self.node_name
    }

    async fn exec(&self, req: &ExecRequest) -> Result<ExecStreams, String> {
        let id = container_id(&req.uid, &req.container, req.restart_count);
        let mut session = self
            .runtime
            .exec(&id, &req.command, req.tty, req.stdin)
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(ExecStreams {
            stdin: session.stdin.take(),
            stdout: session.stdout.take(),
            stderr: session.stderr.take(),
            process: Box::new(Process(session)),
        })
    }
}

/// An [`ExecSession`] without its streams (dropping it kills the process).
struct Process(ExecSession);

#[async_trait::async_trait]
impl ExecProcess for Process {
    fn resize(&self, cols: u16, rows: u16) -> Result<(), String> {
        self.0.resize(cols, rows).map_err(|e| format!("{e:#}"))
    }

    async fn wait(self: Box<Self>) -> Result<i32, String> {
        self.0.wait().await.map_err(|e| format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_agents_naming() {
        assert_eq!(container_id("u-1", "main", 2), "u-1-main-2");
    }
}
