//! A mutating hook: sets the label of its config (`{"key": "...", "value": "..."}`) on every
//! object it is called for.
use std::sync::RwLock;

use tugboat_plugin_sdk::prelude::*;

static LABEL: RwLock<Option<(String, String)>> = RwLock::new(None);

pub struct AddLabel;

impl AdmissionPolicy for AddLabel {
    fn init(config: &Value) -> Result<(), String> {
        let field = |f: &str| config[f].as_str().map(str::to_string);
        let (Some(key), Some(value)) = (field("key"), field("value")) else {
            return Err("config needs string fields `key` and `value`".to_string());
        };
        *LABEL.write().map_err(|e| e.to_string())? = Some((key, value));
        Ok(())
    }

    fn admit(req: &AdmissionRequest) -> AdmissionResponse {
        let (Some(object), Ok(guard)) = (&req.object, LABEL.read()) else {
            return AdmissionResponse::allow();
        };
        let Some((key, value)) = guard.as_ref() else {
            return AdmissionResponse::deny("add-label was not configured");
        };
        if object["metadata"]["labels"][key.as_str()] == value.as_str() {
            return AdmissionResponse::allow();
        }
        AdmissionResponse::patch(JsonPatch::new().add_label(object, key, value))
    }
}

export_admission!(AddLabel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_configured_label() {
        AddLabel::init(&json!({"key": "team", "value": "infra"})).unwrap();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let r = AddLabel::admit(&AdmissionRequest::create(cm));
        assert!(r.allowed);
        assert_eq!(
            r.patch,
            Some(json!([{"op": "add", "path": "/metadata/labels", "value": {"team": "infra"}}]))
        );
        assert!(AddLabel::init(&json!({})).is_err());
    }
}
