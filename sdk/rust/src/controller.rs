//! Controllers: a reconcile loop as a plugin (the `controller` world).
//!
//! The host owns the machinery (informer caches, a de-duplicating work queue, workers,
//! retries with backoff, leader election); a [`Controller`] owns the logic. [`Controller::init`]
//! says which kind the controller is for and which other kinds it reads, and how their
//! changes map to keys of the primary kind; [`Controller::reconcile`] is then called with one
//! key and the object's cached state and drives the cluster toward it through [`host`] and
//! [`cluster`] (reads come from the cache, writes go through the API server).
//!
//! ```
//! use tugboat_plugin_sdk::prelude::*;
//! use tugboat_plugin_sdk::controller::*;
//!
//! /// Copies each ConfigMap's `data.greeting` into an annotation.
//! struct Greeter;
//!
//! impl Controller for Greeter {
//!     fn init(_config: &Value) -> Result<ControllerSpec, String> {
//!         Ok(ControllerSpec::new("v1", "ConfigMap"))
//!     }
//!
//!     fn reconcile(_key: &ObjectKey, object: Option<&Value>) -> Result<Action, String> {
//!         let Some(cm) = object else { return Ok(Action::Done) };
//!         let greeting = cm.pointer("/data/greeting").cloned().unwrap_or(Value::Null);
//!         if cm.pointer("/metadata/annotations/greeting") != Some(&greeting) {
//!             let mut cm = cm.clone();
//!             cm["metadata"]["annotations"]["greeting"] = greeting;
//!             host::update(&cm).map_err(|e| e.to_string())?;
//!         }
//!         Ok(Action::Done)
//!     }
//! }
//!
//! export_controller!(Greeter);
//! # fn main() {}
//! ```
//!
//! [`host`]: crate::host
//! [`cluster`]: crate::cluster

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a change to a watched kind turns into keys of the primary kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapRule {
    /// Cached and readable, but changes enqueue nothing.
    None,
    /// Enqueue the object's controller owner, if it is of the primary kind.
    Owner,
    /// Enqueue the primary object with the same namespace and name.
    SameName,
    /// Enqueue every primary object in the namespace whose field at this JSON pointer (a
    /// `LabelSelector` or a plain label map) selects the object's labels.
    Selector(String),
    /// The object's field at this JSON pointer names a primary object.
    Field(String),
    /// Enqueue every primary object.
    All,
    /// Enqueue the primary objects that name the changed object as an owner.
    Dependents,
}

/// A kind, e.g. `("apps/v1", "Deployment")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KindRef {
    pub api_version: String,
    pub kind: String,
}

/// Which changes of an object count (filtered by the host). Creations and deletions always
/// count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Changes {
    /// Every change.
    #[default]
    All,
    /// Changes outside `status`.
    SpecAndMetadata,
    /// Changes of `metadata` only.
    Metadata,
}

/// One kind the controller reads, and how its changes map to keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    pub api_version: String,
    pub kind: String,
    pub map: MapRule,
    /// Which of its changes count.
    pub changes: Changes,
}

/// What a controller is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerSpec {
    /// The primary kinds (usually one): `reconcile` is called with their keys.
    pub kinds: Vec<KindRef>,
    /// Which changes of primary objects enqueue them.
    pub primary_changes: Changes,
    pub watches: Vec<Watch>,
    /// Keys reconciled at once; 0 lets the host choose.
    pub workers: u32,
}

impl ControllerSpec {
    /// A controller for `kind` (in `api_version`) that reads nothing else.
    pub fn new(api_version: &str, kind: &str) -> Self {
        ControllerSpec {
            kinds: vec![KindRef {
                api_version: api_version.into(),
                kind: kind.into(),
            }],
            primary_changes: Changes::All,
            watches: Vec::new(),
            workers: 0,
        }
    }

    /// Only these changes of primary objects enqueue them.
    pub fn primary_changes(mut self, changes: Changes) -> Self {
        self.primary_changes = changes;
        self
    }

    /// Only these changes of the last added watch count.
    pub fn changes(mut self, changes: Changes) -> Self {
        if let Some(w) = self.watches.last_mut() {
            w.changes = changes;
        }
        self
    }

    /// Also reconciles objects of `kind` (a further primary kind).
    pub fn and_for(mut self, api_version: &str, kind: &str) -> Self {
        self.kinds.push(KindRef {
            api_version: api_version.into(),
            kind: kind.into(),
        });
        self
    }

    /// Also reads `kind`; its changes map to keys by `map`.
    pub fn watch(mut self, api_version: &str, kind: &str, map: MapRule) -> Self {
        self.watches.push(Watch {
            api_version: api_version.into(),
            kind: kind.into(),
            map,
            changes: Changes::All,
        });
        self
    }

    /// Objects of `kind` whose controller owner is of the primary kind enqueue it.
    pub fn owns(self, api_version: &str, kind: &str) -> Self {
        self.watch(api_version, kind, MapRule::Owner)
    }

    pub fn workers(mut self, workers: u32) -> Self {
        self.workers = workers;
        self
    }
}

/// The object to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What to do after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Converged: call again on the next change.
    Done,
    /// Call again after this long, even without a change.
    RequeueAfter(Duration),
}

/// A reconcile loop. Both functions are plain Rust, so a controller can be unit-tested
/// natively with a [`MockHost`](crate::testing::MockHost) such as
/// [`FakeCluster`](crate::testing::FakeCluster).
pub trait Controller {
    /// Called once per instance with the manifest's `config` (`Value::Null` when unset).
    fn init(config: &Value) -> Result<ControllerSpec, String>;

    /// Reconciles one object; `object` is its cached state, `None` when it is gone. An
    /// `Err` makes the host retry with exponential backoff.
    fn reconcile(key: &ObjectKey, object: Option<&Value>) -> Result<Action, String>;
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use crate::bindings::controller::exports::tugboat::plugin::controller_plugin::{
        ChangeFilter as WitChanges, ControllerSpec as WitSpec, Guest, KindRef as WitKindRef,
        MapRule as WitMapRule, ObjectKey as WitKey, ReconcileResult as WitResult,
        Watch as WitWatch,
    };

    fn changes(c: Changes) -> WitChanges {
        match c {
            Changes::All => WitChanges::All,
            Changes::SpecAndMetadata => WitChanges::SpecAndMetadata,
            Changes::Metadata => WitChanges::Metadata,
        }
    }

    pub fn init<C: Controller>(config: String) -> Result<WitSpec, String> {
        let config = if config.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&config).map_err(|e| format!("config is not valid JSON: {e}"))?
        };
        let spec = C::init(&config)?;
        Ok(WitSpec {
            kinds: spec
                .kinds
                .into_iter()
                .map(|k| WitKindRef {
                    api_version: k.api_version,
                    kind: k.kind,
                })
                .collect(),
            primary_changes: changes(spec.primary_changes),
            watches: spec
                .watches
                .into_iter()
                .map(|w| WitWatch {
                    api_version: w.api_version,
                    kind: w.kind,
                    map: match w.map {
                        MapRule::None => WitMapRule::None,
                        MapRule::Owner => WitMapRule::Owner,
                        MapRule::SameName => WitMapRule::SameName,
                        MapRule::Selector(p) => WitMapRule::Selector(p),
                        MapRule::Field(p) => WitMapRule::Field(p),
                        MapRule::All => WitMapRule::All,
                        MapRule::Dependents => WitMapRule::Dependents,
                    },
                    changes: changes(w.changes),
                })
                .collect(),
            workers: spec.workers,
        })
    }

    pub fn reconcile<C: Controller>(key: WitKey, object: Option<String>) -> WitResult {
        let key = ObjectKey {
            api_version: key.api_version,
            kind: key.kind,
            namespace: key.namespace,
            name: key.name,
        };
        let object = match object
            .map(|t| serde_json::from_str::<Value>(&t))
            .transpose()
        {
            Ok(o) => o,
            Err(e) => return WitResult::Failed(format!("the host sent unreadable JSON: {e}")),
        };
        match C::reconcile(&key, object.as_ref()) {
            Ok(Action::Done) => WitResult::Done,
            Ok(Action::RequeueAfter(d)) => {
                WitResult::RequeueAfter(u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
            }
            Err(message) => WitResult::Failed(message),
        }
    }
}

/// Exports a type implementing [`Controller`] as the component's `controller-plugin`
/// interface. Use it once per plugin crate (a `cdylib`). On a native target (unit tests) it
/// expands to nothing.
#[macro_export]
macro_rules! export_controller {
    ($controller:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __TugboatControllerExport;

            impl $crate::controller::__private::Guest for __TugboatControllerExport {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<
                    $crate::controller::__private::WitSpec,
                    ::std::string::String,
                > {
                    $crate::controller::__private::init::<$controller>(config)
                }

                fn reconcile(
                    key: $crate::controller::__private::WitKey,
                    object: ::std::option::Option<::std::string::String>,
                ) -> $crate::controller::__private::WitResult {
                    $crate::controller::__private::reconcile::<$controller>(key, object)
                }
            }

            $crate::bindings::controller::__tugboat_export_controller_world!(
                __TugboatControllerExport with_types_in $crate::bindings::controller
            );
        };
    };
}
