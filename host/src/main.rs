//! `tug`: the Tugboat command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tug",
    version,
    about = "Tugboat: a Kubernetes-compatible orchestrator whose policies are Wasm plugins"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the control plane: store, API server and background duties.
    Server {
        /// Where the store, credentials and kubeconfig live.
        #[arg(long, default_value = "/var/lib/tugboat")]
        data_dir: PathBuf,
        /// Address of the HTTPS API.
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Revisions of change history kept for watches to resume from.
        #[arg(long, default_value_t = 100_000)]
        watch_history: u64,
        /// Register this many hollow nodes whose pods become Running and Ready without
        /// containers (tests, scale runs, benchmarks).
        #[arg(long, default_value_t = 0)]
        simulated_nodes: usize,
        /// Serve the API without running controllers (like a kube-apiserver without a
        /// controller manager); controller plugins then show Failed.
        #[arg(long)]
        disable_controllers: bool,
        /// Run no scheduler (pods stay unassigned unless something else binds them).
        #[arg(long)]
        disable_scheduler: bool,
        /// Make this machine a Node: run its pods' containers (native runtime, runc).
        #[arg(long)]
        node_agent: bool,
        /// The node's pod network: a network Plugin (`bridge`, the default: bridge `tug0`,
        /// a veth and an IP per pod; `cni-adapter`: the CNI conflist of its Plugin's
        /// config), or `none` (pods get only `lo`; no Service proxy or cluster DNS).
        #[arg(long, default_value = "bridge")]
        pod_network: String,
        /// The pod network plugin's configuration (JSON), instead of its Plugin's
        /// `spec.config`: e.g. a CNI conflist for `--pod-network cni-adapter`.
        #[arg(long)]
        pod_network_config: Option<PathBuf>,
    },
    /// Join a cluster as a Node: run its pods' containers here (native runtime, runc),
    /// talking to the API server at --server with the join token the server wrote to
    /// `<data-dir>/node-token`.
    Agent(tugboat::cli::agent::AgentArgs),
    /// Benchmarks that print their figures.
    Bench {
        #[command(subcommand)]
        which: tugboat::bench::BenchCmd,
    },
    /// Build, inspect, push and pull Wasm plugin components.
    Plugin {
        #[command(subcommand)]
        cmd: tugboat::cli::plugin::PluginCmd,
    },
    /// The node's container images: import, list, remove.
    Image {
        #[command(subcommand)]
        cmd: tugboat::runtime::image::cli::ImageCmd,
    },
    /// The node: `tug node reset` removes every pod of a node agent's data dir.
    Node {
        #[command(subcommand)]
        cmd: NodeCmd,
    },
    /// The per-container supervisor (started by the runtime).
    #[command(hide = true)]
    Shim(tugboat::runtime::container::shim::ShimArgs),
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Stop and remove every pod the node agent of DATA_DIR runs: containers, sandboxes,
    /// mounts, cgroups (run it with the server stopped).
    Reset {
        #[arg(long, default_value = "/var/lib/tugboat")]
        data_dir: PathBuf,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TUG_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The shim forks and execs: it runs before any thread or async runtime exists.
    if let Cmd::Shim(args) = cli.cmd {
        return tugboat::runtime::container::shim::main(args);
    }
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Server {
                data_dir,
                listen,
                watch_history,
                simulated_nodes,
                disable_controllers,
                disable_scheduler,
                node_agent,
                pod_network,
                pod_network_config,
            } => {
                let pod_network_config =
                    tugboat::node::agent::read_network_config(pod_network_config.as_deref())?;
                let running = tugboat::serve::start(tugboat::serve::ServerOptions {
                    data_dir,
                    listen,
                    watch_history,
                    simulated_nodes,
                    controllers: !disable_controllers,
                    scheduler: !disable_scheduler,
                    node_agent,
                    pod_network: (pod_network != "none").then_some(pod_network),
                    pod_network_config,
                })
                .await?;
                println!(
                    "tug server: API at https://{} — kubeconfig: {}",
                    running.addr,
                    running.kubeconfig.display()
                );
                if running.node_token_created {
                    println!("tug server: node join token: {}", running.node_token);
                }
                let mut serve = running.serve;
                tokio::select! {
                    r = &mut serve => r??,
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
                }
                if let Some(agent) = &running.agent {
                    agent.shutdown().await;
                }
                Ok(())
            }
            Cmd::Agent(args) => tugboat::cli::agent::run(args).await,
            Cmd::Bench { which } => tugboat::bench::run(which).await,
            Cmd::Plugin { cmd } => tugboat::cli::plugin::run(cmd).await,
            Cmd::Image { cmd } => tugboat::runtime::image::cli::run(cmd).await,
            Cmd::Node {
                cmd: NodeCmd::Reset { data_dir },
            } => {
                let n = tugboat::node::agent::reset(&data_dir).await?;
                println!("removed {n} pod(s)");
                Ok(())
            }
            // Handled above, before the async runtime started.
            Cmd::Shim(_) => Ok(()),
        }
    })
}
