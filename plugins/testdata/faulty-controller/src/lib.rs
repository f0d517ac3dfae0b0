//! A controller that crashes on purpose, for the end-to-end fault tests
//! (`host/tests/controllers_e2e.rs`): `init` declares a controller of `v1` ConfigMaps, and
//! every `reconcile` executes the Wasm `unreachable` instruction — a trap, which the host
//! must contain (the plugin becomes `Degraded`, the other controllers keep working).
//!
//! It has no `plugin.json`: it is not a built-in plugin; tests upload it and apply a
//! `Plugin` for it.

use tugboat_plugin_sdk::prelude::*;

/// The controller.
pub struct FaultyController;

impl Controller for FaultyController {
    fn init(_config: &Value) -> Result<ControllerSpec, String> {
        Ok(ControllerSpec::new("v1", "ConfigMap"))
    }

    fn reconcile(_key: &ObjectKey, _object: Option<&Value>) -> Result<Action, String> {
        trap()
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}

export_controller!(FaultyController);
