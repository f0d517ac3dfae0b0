//! `tug server`: open the store, create credentials, start the API and its background duties.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::api::{self, Api, ApiConfig, server};
use crate::store::Store;
use crate::store::redb::{RedbStore, RedbStoreConfig};

/// Options of `tug server`.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// How many revisions of change history watches can resume from.
    pub watch_history: u64,
    /// Hollow nodes to register (`crate::node::simulated`); 0 for none.
    pub simulated_nodes: usize,
    /// Run the reconcile engine and its controllers (off: an API server alone, like a
    /// kube-apiserver without a controller manager).
    pub controllers: bool,
    /// Run the scheduler (`crate::scheduler`) with its scheduler Plugins.
    pub scheduler: bool,
    /// Run the node agent: this machine becomes a Node whose pods run in real containers
    /// (`crate::node::agent`, `crate::runtime`).
    pub node_agent: bool,
    /// The node agent's pod network Plugin (`bridge`, `cni-adapter`, …); `None`: pods get
    /// only `lo`.
    pub pod_network: Option<String>,
    /// The pod network plugin's configuration, instead of its Plugin's `spec.config`.
    pub pod_network_config: Option<serde_json::Value>,
}

impl ServerOptions {
    /// Options for `data_dir` on `listen`, with the defaults of `tug server`.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServerOptions {
            data_dir,
            listen,
            watch_history: 100_000,
            simulated_nodes: 0,
            controllers: true,
            scheduler: true,
            node_agent: false,
            pod_network: None,
            pod_network_config: None,
        }
    }
}

/// A started server.
pub struct Running {
    pub api: Arc<Api>,
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub serve: tokio::task::JoinHandle<Result<()>>,
    /// The reconcile engine (controllers, informers, leader election).
    pub engine: Arc<crate::engine::Engine>,
    /// The scheduler, if it runs.
    pub scheduler: Option<Arc<crate::scheduler::Scheduler>>,
    /// The node agent, if it runs (its containers keep running when it stops).
    pub agent: Option<crate::node::agent::NodeAgent>,
    /// The hollow nodes, if any (they stop when dropped).
    pub simulated: Option<crate::node::simulated::SimulatedNodes>,
    /// The node join token (`<data-dir>/node-token`) for `tug agent --token`.
    pub node_token: String,
    /// Whether this start created the node join token (the first start).
    pub node_token_created: bool,
}

/// Start everything and return once the API is listening.
pub async fn start(opts: ServerOptions) -> Result<Running> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating data dir {}", opts.data_dir.display()))?;
    let store_cfg = RedbStoreConfig {
        retain_revisions: opts.watch_history,
        ..Default::default()
    };
    let store: Arc<dyn Store> = RedbStore::open(&opts.data_dir.join("store.redb"), store_cfg)
        .with_context(|| format!("opening the store in {}", opts.data_dir.display()))?;
    let (listener, addr) = server::bind(opts.listen).await?;
    let creds = api::pki::ensure(&opts.data_dir, &addr)?;
    let (node_token, node_token_created) =
        api::pki::ensure_node_token(&opts.data_dir, &creds.ca_pem)?;
    let config = ApiConfig {
        advertise_address: addr.to_string(),
        data_dir: Some(opts.data_dir.clone()),
        ..Default::default()
    };
    let api = Api::new(store, config);
    api.ensure_default_namespaces()
        .await
        .context("creating the default namespaces")?;
    api.reload_crds().await.context("loading CRDs")?;
    api.ensure_kubernetes_service()
        .await
        .context("creating the kubernetes Service")?;
    api.ensure_dns_service()
        .await
        .context("creating the kube-dns Service")?;
    api.ensure_plugin_crd()
        .await
        .context("installing the Plugin CRD")?;
    api.ensure_builtin_plugins()
        .await
        .context("installing the built-in plugins")?;
    api.spawn_lifecycle();
    // The reconcile engine runs the controller plugins (built-in and applied ones).
    let engine = Arc::new(crate::engine::Engine::new(
        Arc::new(crate::api::client::LocalClient::new(
            api.clone(),
            "tugboat-controller-manager",
        )),
        crate::engine::EngineConfig::default(),
    ));
    if opts.controllers {
        let controllers =
            crate::engine::plugins::PluginControllers::new(engine.clone(), api.clone());
        api.admission.set_controller_runner(controllers);
    }
    let scheduler = if opts.scheduler {
        let s = crate::scheduler::Scheduler::start(
            engine.clone(),
            Arc::new(crate::api::client::LocalClient::new(
                api.clone(),
                crate::scheduler::DEFAULT_SCHEDULER,
            )),
            crate::scheduler::SchedulerConfig::default(),
        );
        api.admission
            .set_scheduler_runner(crate::scheduler::PluginSchedulers::new(s.clone()));
        Some(s)
    } else {
        None
    };
    api.spawn_plugin_loop();
    let auth = server::Auth {
        // Node agents (`tug agent`) authenticate with the join token's secret.
        tokens: Arc::new(vec![creds.admin_token.clone(), node_token.secret.clone()]),
    };
    // `kubectl logs`/`exec` of pods on remote node agents are relayed to their endpoints.
    api.set_node_proxy(
        api::proxy::NodeProxy::new(
            &api::pki::ensure_node_ca(&opts.data_dir)?.0,
            &node_token.secret,
        )
        .context("configuring the node proxy")?,
    );
    let router = server::router(api.clone(), auth);
    let acceptor = server::tls_acceptor(&creds.cert_pem, &creds.key_pem)?;
    let serve = tokio::spawn(server::serve_tls(listener, acceptor, router));
    tracing::info!(%addr, kubeconfig = %creds.kubeconfig_path.display(), "API server listening");
    let simulated = if opts.simulated_nodes > 0 {
        let client = Arc::new(crate::api::client::LocalClient::new(
            api.clone(),
            "tugboat-simulated-node",
        ));
        let cfg = crate::node::simulated::SimulatedConfig {
            count: opts.simulated_nodes,
            ..Default::default()
        };
        Some(
            crate::node::simulated::SimulatedNodes::start(client, cfg)
                .await
                .context("registering the simulated nodes")?,
        )
    } else {
        None
    };
    let agent = if opts.node_agent {
        let (images, runtime) = node_runtime(&opts.data_dir)?;
        let client = Arc::new(crate::api::client::LocalClient::new(api.clone(), "kubelet"));
        let mut agent_cfg = crate::node::agent::AgentConfig::new(opts.data_dir.clone());
        agent_cfg.network =
            opts.pod_network
                .clone()
                .map(|plugin| crate::node::agent::PodNetworkSettings {
                    plugin,
                    config: opts.pod_network_config.clone(),
                    ..Default::default()
                });
        // `kubectl exec` into this node's containers.
        api.set_exec_provider(crate::node::exec::RuntimeExec::new(
            runtime.clone(),
            agent_cfg.node_name.clone(),
        ));
        Some(
            crate::node::agent::NodeAgent::start(client, images, runtime, agent_cfg)
                .await
                .context("starting the node agent")?,
        )
    } else {
        None
    };
    Ok(Running {
        api,
        addr,
        kubeconfig: creds.kubeconfig_path,
        serve,
        engine,
        scheduler,
        agent,
        simulated,
        node_token: node_token.render(),
        node_token_created,
    })
}

/// The image store and the container runtime of the node agent whose data dir is
/// `data_dir` (`tug server --node-agent`, `tug agent`).
pub fn node_runtime(
    data_dir: &std::path::Path,
) -> Result<(
    Arc<crate::runtime::image::ImageStore>,
    Arc<crate::runtime::container::Runtime>,
)> {
    let images = crate::runtime::image::ImageStore::open(
        &data_dir.join("images"),
        crate::runtime::image::RegistriesConfig::load(&data_dir.join("registries.yaml"))
            .context("reading registries.yaml")?,
    )
    .context("opening the image store")?;
    let runtime = crate::runtime::container::Runtime::new(
        crate::node::agent::runtime_config(data_dir)
            .context("configuring the container runtime")?,
    )
    .context("starting the container runtime")?;
    Ok((images, runtime))
}
