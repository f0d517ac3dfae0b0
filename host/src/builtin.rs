//! The built-in plugins, embedded in the binary: the crates of `plugins/` that carry a
//! `plugin.json` (their default Plugin spec), compiled to `wasm32-wasip2` by `build.rs`.
//!
//! At start-up the server creates a `Plugin` object for each (`spec.source.builtin: NAME`)
//! unless one of that name exists; applying a Plugin of the same name replaces a built-in,
//! deleting it restores the built-in.

use serde_json::{Value, json};

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// The component of a built-in plugin.
pub fn component(name: &str) -> Option<&'static [u8]> {
    BUILTINS.iter().find(|b| b.0 == name).map(|b| b.1)
}

/// The names of the built-in plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.0)
}

/// The default `Plugin` object of a built-in (its `plugin.json` with
/// `source: {builtin: NAME}`), or an error naming what is wrong with the embedded spec.
pub fn plugin_object(name: &str) -> Result<Value, String> {
    let (_, _, spec) = BUILTINS
        .iter()
        .find(|b| b.0 == name)
        .ok_or_else(|| format!("there is no built-in plugin called {name:?}"))?;
    let mut spec: Value =
        serde_json::from_str(spec).map_err(|e| format!("plugin.json of {name}: {e}"))?;
    let Some(fields) = spec.as_object_mut() else {
        return Err(format!("plugin.json of {name} is not a JSON object"));
    };
    // `capabilities` (the manifest's word) is `permissions` in the Plugin resource.
    if let Some(caps) = fields.remove("capabilities") {
        fields.insert("permissions".into(), caps);
    }
    fields.insert("source".into(), json!({"builtin": name}));
    Ok(json!({
        "apiVersion": "tugboat.dev/v1alpha1",
        "kind": "Plugin",
        "metadata": {"name": name, "labels": {"tugboat.dev/builtin": "true"}},
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_a_component_and_a_valid_spec() {
        assert!(names().any(|n| n == "namespace-lifecycle"));
        for name in names() {
            let bytes = component(name).unwrap();
            // A component, not a core module: `\0asm` + layer 1.
            assert_eq!(&bytes[..4], b"\0asm", "{name}");
            let obj = plugin_object(name).unwrap();
            assert_eq!(obj["spec"]["source"]["builtin"], name);
            assert!(obj["spec"]["kind"].is_string(), "{name} has no kind");
        }
        assert!(plugin_object("nope").is_err());
    }
}
