//! A component of the `storage` world: loading it as an admission hook must fail with a
//! clear error (it does not export `admission-plugin`).

wit_bindgen::generate!({ world: "storage", path: "../../../wit" });

struct Storage;

impl exports::tugboat::plugin::storage_plugin::Guest for Storage {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn provision(_claim: String) -> Result<String, String> {
        Err("not implemented".to_string())
    }

    fn delete(_volume: String) -> Result<(), String> {
        Ok(())
    }
}

export!(Storage);
