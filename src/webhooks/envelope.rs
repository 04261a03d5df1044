//! The Standard Webhooks envelope every event travels in.

/// `{"data": …, "timestamp": …, "type": …}`, as signed and sent.
pub fn envelope(event_type: &str, timestamp: &str, data: &serde_json::Value) -> String {
    envelope_text(event_type, timestamp, &data.to_string())
}

/// The envelope around event data already serialized (as the outbox stores it): no parse and
/// re-serialize per delivery. The bytes are what `serde_json` writes for the same object —
/// compact, keys in order — since event types and RFC 3339 times need no escaping; they are
/// escaped anyway, should that ever change.
pub fn envelope_text(event_type: &str, timestamp: &str, data_json: &str) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"data\":{data_json},\"timestamp\":{},\"type\":{}}}",
        quote(timestamp),
        quote(event_type)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_envelope_is_byte_for_byte_what_serde_writes() {
        let data = serde_json::json!({"lead_id": "lead_1", "source_tracking": {"source_code": "02",
            "source_label": "Hoja \"ñ\" 🏠"}, "score": 71});
        let expected = serde_json::json!({"type": "lead.enriched",
            "timestamp": "2026-11-30T10:00:00Z", "data": data})
        .to_string();
        assert_eq!(
            envelope("lead.enriched", "2026-11-30T10:00:00Z", &data),
            expected
        );
    }
}
