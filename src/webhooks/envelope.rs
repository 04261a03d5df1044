//! The Standard Webhooks envelope every event travels in.

/// `{"type": …, "timestamp": …, "data": …}`, as signed and sent.
pub fn envelope(event_type: &str, timestamp: &str, data: &serde_json::Value) -> String {
    serde_json::json!({"type": event_type, "timestamp": timestamp, "data": data}).to_string()
}
