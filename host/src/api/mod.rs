//! The API server: a Kubernetes-compatible HTTP API over the [store](crate::store).
//!
//! Layering: [`server`] (TLS, authentication, routing) → [`handlers`]/[`watch`] (the verbs)
//! → [`crate::store::Store`]. Everything about the shape of objects (types, schemas,
//! patches, selectors, tables) lives in the modules beside them and is pure.

pub mod admission;
pub mod allocator;
pub mod client;
pub mod defaults;
pub mod discovery;
pub mod exec;
pub mod handlers;
pub mod http_client;
pub mod kinds;
pub mod lifecycle;
pub mod logs;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod protobuf_schema;
pub mod proxy;
pub mod request;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod status;
pub mod table;
pub mod validation;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

/// The Kubernetes version this server reports (and whose API it serves).
pub const KUBE_VERSION: &str = "v1.33.0";

/// Marks a Service answered on every node by the node's own server (today: `kube-dns`, by
/// the node's DNS server): the Service proxy programs no rules for it.
pub const NODE_LOCAL_DNS_ANNOTATION: &str = "tugboat.dev/node-local-dns";

/// Tunables of the API server.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// The address clients are told to use (`/api`'s serverAddressByClientCIDRs).
    pub advertise_address: String,
    /// The range Service cluster IPs come from (IPv4).
    pub service_cidr: (std::net::Ipv4Addr, u8),
    /// The range of NodePorts.
    pub node_ports: std::ops::RangeInclusive<u16>,
    /// The range pod IPs come from (IPv4), split into one block per Node.
    pub cluster_cidr: (std::net::Ipv4Addr, u8),
    /// The prefix length of each Node's block (`spec.podCIDR`).
    pub node_cidr_mask: u8,
    /// The data directory (plugin blobs and compiled-plugin cache live under it).
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bookmark_interval: Duration::from_secs(30),
            advertise_address: "127.0.0.1:6443".into(),
            service_cidr: (std::net::Ipv4Addr::new(10, 43, 0, 0), 16),
            node_ports: 30000..=32767,
            cluster_cidr: (std::net::Ipv4Addr::new(10, 42, 0, 0), 16),
            node_cidr_mask: 24,
            data_dir: None,
        }
    }
}

/// The API server's shared state.
pub struct Api {
    pub store: Arc<dyn Store>,
    pub registry: resources::Registry,
    pub openapi: openapi::OpenApi,
    pub config: ApiConfig,
    /// Poked after a CRD write so the catalog is rebuilt.
    pub crds_changed: tokio::sync::Notify,
    /// The admission plugins and the blob store of components.
    pub admission: admission::Admission,
    /// What runs `pods/exec` commands (the node agent, when this server has one).
    pub exec: exec::ExecSlot,
    /// How `pods/log` and `pods/exec` reach remote node agents (`tug agent`).
    pub node_proxy: proxy::NodeProxySlot,
}

impl Api {
    pub fn new(store: Arc<dyn Store>, config: ApiConfig) -> Arc<Self> {
        let admission = admission::Admission::new(config.data_dir.as_deref());
        Arc::new(Api {
            store,
            registry: resources::Registry::new(),
            openapi: openapi::OpenApi::new(KUBE_VERSION),
            config,
            crds_changed: tokio::sync::Notify::new(),
            admission,
            exec: exec::ExecSlot::default(),
            node_proxy: proxy::NodeProxySlot::default(),
        })
    }
}
