//! `tug agent --server URL --token T`: this machine joins a cluster as a Node (k3s's
//! agent): the node agent (`crate::node::agent`) with the native runtime, talking to the
//! API server over HTTPS ([`HttpClient`]), and the node's endpoint for logs and exec
//! (`crate::node::server`) that the API server relays `kubectl logs`/`exec` to.
//!
//! Joining: the token (`K10<sha256 of the CA>::node:<secret>`, written by the server to
//! `<data-dir>/node-token`) lets the agent verify the server's CA before trusting it, and its
//! secret is the agent's credential. The server issues the endpoint's serving certificate.
//!
//! Like `tug server --node-agent`, the containers keep running when `tug agent` stops; a
//! new `tug agent` on the same data dir adopts them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};

use crate::api::http_client::HttpClient;
use crate::node::agent::{AgentConfig, NodeAgent};
use crate::node::server::{self, NodeServerConfig};

/// Options of `tug agent`.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The API server (`https://HOST:PORT`).
    #[arg(long)]
    pub server: String,
    /// The node join token (`<server data dir>/node-token`).
    #[arg(long, env = "TUG_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Where images, pod volumes, container state and logs live.
    #[arg(long, default_value = "/var/lib/tugboat-agent")]
    pub data_dir: PathBuf,
    /// The Node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The Node's InternalIP, where the API server reaches the node's endpoint (default:
    /// the machine's first non-loopback IPv4 address).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The port of the node's endpoint (logs, exec); 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// The node's pod network: a network Plugin (`bridge`, the default; `cni-adapter`), or
    /// `none` (pods get only `lo`).
    #[arg(long, default_value = "bridge")]
    pub pod_network: String,
    /// The pod network plugin's configuration (JSON), instead of its Plugin's
    /// `spec.config`: e.g. a CNI conflist for `--pod-network cni-adapter`.
    #[arg(long)]
    pub pod_network_config: Option<PathBuf>,
}

/// A joined node: its agent, its endpoint and where it listens.
pub struct Agent {
    pub node_name: String,
    pub endpoint: SocketAddr,
    pub agent: NodeAgent,
    pub server: tokio::task::JoinHandle<Result<()>>,
}

/// Joins the cluster and starts the node agent and its endpoint.
pub async fn start(args: AgentArgs) -> Result<Agent> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let client = HttpClient::join(&args.server, &args.token, "kubelet")
        .await
        .with_context(|| format!("joining {}", args.server))?;
    let token = crate::api::pki::JoinToken::parse(&args.token)?;
    let mut cfg = AgentConfig::new(args.data_dir.clone());
    if let Some(n) = &args.node_name {
        cfg.node_name = n.clone();
    }
    let node_ip: IpAddr = match args.node_ip {
        Some(ip) => ip,
        None => crate::node::agent::host_ip()
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    let bind = match args.node_ip {
        Some(ip) => SocketAddr::new(ip, args.kubelet_port),
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), args.kubelet_port),
    };
    let (listener, endpoint) = crate::api::server::bind(bind).await?;
    let endpoint = SocketAddr::new(node_ip, endpoint.port());
    // The endpoint's certificate, issued by the server's node CA for its name and address.
    let issued = client
        .post_json(
            "/tugboat/v1/node-certificate",
            &json!({"nodeName": cfg.node_name, "addresses": [node_ip.to_string()]}),
        )
        .await
        .map_err(|e| anyhow::anyhow!("getting the node's serving certificate: {e}"))?;
    let cert = issued
        .get("certificate")
        .and_then(Value::as_str)
        .context("the server issued no certificate")?;
    let key = issued
        .get("key")
        .and_then(Value::as_str)
        .context("the server issued no key")?;
    let (images, runtime) = crate::serve::node_runtime(&args.data_dir)?;
    let server = server::spawn(
        listener,
        cert,
        key,
        &NodeServerConfig {
            secret: token.secret.clone(),
            data_dir: args.data_dir.clone(),
            node_name: cfg.node_name.clone(),
            runtime: runtime.clone(),
        },
    )?;
    cfg.node_ip = Some(node_ip.to_string());
    let network_config =
        crate::node::agent::read_network_config(args.pod_network_config.as_deref())?;
    cfg.network = (args.pod_network != "none").then(|| crate::node::agent::PodNetworkSettings {
        plugin: args.pod_network.clone(),
        config: network_config,
        ..Default::default()
    });
    cfg.kubelet_port = Some(endpoint.port());
    let node_name = cfg.node_name.clone();
    let agent = NodeAgent::start(Arc::new(client), images, runtime, cfg)
        .await
        .context("starting the node agent")?;
    Ok(Agent {
        node_name,
        endpoint,
        agent,
        server,
    })
}

/// `tug agent`: runs until interrupted (the containers keep running after it).
pub async fn run(args: AgentArgs) -> Result<()> {
    let server_url = args.server.clone();
    let agent = start(args).await?;
    println!(
        "tug agent: node {} joined {server_url}; endpoint https://{}",
        agent.node_name, agent.endpoint
    );
    let Agent { server, agent, .. } = agent;
    tokio::select! {
        r = server => r??,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; the containers keep running"),
    }
    drop(agent);
    Ok(())
}
