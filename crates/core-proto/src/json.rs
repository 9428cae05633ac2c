//! Workflow histories as JSON, in both forms in use:
//!
//! - **proto3 JSON**, what `temporal workflow show --output json` prints and the other SDKs'
//!   `to_json` write: camelCase fields, enum values like `EVENT_TYPE_WORKFLOW_EXECUTION_STARTED`,
//!   64-bit integers as strings, bytes as base64;
//! - **the Web UI's download form**: the same, except enum values are written without their
//!   prefix in PascalCase (`WorkflowExecutionStarted`, `Normal`).
//!
//! [`history_from_json`] reads either; [`history_to_json`] writes proto3 JSON, which the CLI,
//! the UI and every SDK read back.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use crate::History;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/temporal_descriptors.bin"));
const HISTORY_MESSAGE: &str = "temporal.api.history.v1.History";

/// A history could not be read from, or written to, JSON.
#[derive(Debug, thiserror::Error)]
pub enum HistoryJsonError {
    /// The text is not JSON at all.
    #[error("not JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// The JSON does not describe a Temporal history.
    #[error("not a Temporal history: {0}")]
    Shape(String),
}

fn history_descriptor() -> Result<MessageDescriptor, HistoryJsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    let pool = POOL
        .get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| HistoryJsonError::Shape(format!("descriptor set unreadable: {e}")))?;
    pool.get_message_by_name(HISTORY_MESSAGE)
        .ok_or_else(|| HistoryJsonError::Shape(format!("{HISTORY_MESSAGE} is not described")))
}

/// Reads a history from JSON in either form (see the module docs).
pub fn history_from_json(json: &[u8]) -> Result<History, HistoryJsonError> {
    let mut value: serde_json::Value = serde_json::from_slice(json)?;
    if !value.get("events").is_some_and(|e| e.is_array()) {
        return Err(HistoryJsonError::Shape(
            "there is no \"events\" array at the top level".into(),
        ));
    }
    normalize_enums(&mut value, None);
    let descriptor = history_descriptor()?;
    let dynamic = DynamicMessage::deserialize(descriptor, value)
        .map_err(|e| HistoryJsonError::Shape(e.to_string()))?;
    History::decode(dynamic.encode_to_vec().as_slice())
        .map_err(|e| HistoryJsonError::Shape(e.to_string()))
}

/// Writes a history as proto3 JSON (pretty-printed), the form the CLI and SDKs read.
pub fn history_to_json(history: &History) -> Result<String, HistoryJsonError> {
    let descriptor = history_descriptor()?;
    let dynamic = DynamicMessage::decode(descriptor, history.encode_to_vec().as_slice())
        .map_err(|e| HistoryJsonError::Shape(e.to_string()))?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::pretty(&mut out);
    dynamic
        .serialize_with_options(
            &mut ser,
            &prost_reflect::SerializeOptions::new().stringify_64_bit_integers(true),
        )
        .map_err(HistoryJsonError::Syntax)?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// The enum type prefix of a field, for UI-form values (`Normal` → `TASK_QUEUE_KIND_NORMAL`).
fn enum_prefix(key: &str, parent: Option<&str>) -> Option<&'static str> {
    Some(match key {
        "eventType" => "EVENT_TYPE",
        "kind" => "TASK_QUEUE_KIND",
        "parentClosePolicy" => "PARENT_CLOSE_POLICY",
        "workflowIdReusePolicy" => "WORKFLOW_ID_REUSE_POLICY",
        "workflowIdConflictPolicy" => "WORKFLOW_ID_CONFLICT_POLICY",
        "initiator" => "CONTINUE_AS_NEW_INITIATOR",
        "retryState" => "RETRY_STATE",
        "timeoutType" => "TIMEOUT_TYPE",
        "category" => "APPLICATION_ERROR_CATEGORY",
        "cause" => match parent? {
            "workflowTaskFailedEventAttributes" => "WORKFLOW_TASK_FAILED_CAUSE",
            "startChildWorkflowExecutionFailedEventAttributes" => {
                "START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE"
            }
            "signalExternalWorkflowExecutionFailedEventAttributes" => {
                "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE"
            }
            "requestCancelExternalWorkflowExecutionFailedEventAttributes" => {
                "CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE"
            }
            _ => return None,
        },
        _ => return None,
    })
}

fn screaming(pascal: &str) -> String {
    let mut out = String::with_capacity(pascal.len() + 8);
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn normalize_enums(value: &mut serde_json::Value, parent: Option<&str>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if let serde_json::Value::String(s) = v
                    && let Some(prefix) = enum_prefix(key, parent)
                    && !s.contains('_')
                    && s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                {
                    *s = format!("{prefix}_{}", screaming(s));
                } else {
                    normalize_enums(v, Some(key));
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                normalize_enums(item, parent);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLI_FORM: &str = r#"{"events":[{"eventId":"1","eventTime":"2026-11-30T17:09:42.182063930Z",
      "eventType":"EVENT_TYPE_WORKFLOW_EXECUTION_STARTED","taskId":"1048587",
      "workflowExecutionStartedEventAttributes":{"workflowType":{"name":"Greet"},
      "taskQueue":{"name":"tq","kind":"TASK_QUEUE_KIND_NORMAL"},
      "input":{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"IndvcmxkIg=="}]},
      "workflowTaskTimeout":"10s","attempt":1}}]}"#;

    #[test]
    fn reads_cli_and_ui_forms_alike() {
        let a = history_from_json(CLI_FORM.as_bytes()).unwrap();
        let ui = CLI_FORM
            .replace(
                "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
                "WorkflowExecutionStarted",
            )
            .replace("TASK_QUEUE_KIND_NORMAL", "Normal");
        let b = history_from_json(ui.as_bytes()).unwrap();
        assert_eq!(a, b);
        let e = &a.events[0];
        assert_eq!(e.event_id, 1);
        assert_eq!(
            e.event_type(),
            crate::api::enums::v1::EventType::WorkflowExecutionStarted
        );
    }

    #[test]
    fn round_trips_through_proto_json() {
        let a = history_from_json(CLI_FORM.as_bytes()).unwrap();
        let json = history_to_json(&a).unwrap();
        assert!(
            json.contains("\"eventType\": \"EVENT_TYPE_WORKFLOW_EXECUTION_STARTED\""),
            "{json}"
        );
        assert!(json.contains("\"eventId\": \"1\""), "{json}");
        assert_eq!(history_from_json(json.as_bytes()).unwrap(), a);
    }

    #[test]
    fn garbage_gives_a_clear_error() {
        let e = history_from_json(b"{\"events\": [ {\"eventId\": ").unwrap_err();
        assert!(e.to_string().starts_with("not JSON"), "{e}");
        let e = history_from_json(b"{\"foo\": 1}").unwrap_err();
        assert!(e.to_string().contains("no \"events\" array"), "{e}");
        let e = history_from_json(b"{\"events\": [{\"eventId\": \"x\"}]}").unwrap_err();
        assert!(e.to_string().starts_with("not a Temporal history"), "{e}");
    }
}
