//! Any bytes as an invocation payload: an S3 notification, an EventBridge event or the console
//! form becomes one item per record (object, removed object, or ignored), an SQS batch one
//! message per record, or one clear error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline::{EventItem, Invocation};

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let records = payload
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .map(Vec::len);
    match pipeline::parse_invocation(payload) {
        Ok(Invocation::Direct(items)) => {
            // One item per record: none dropped, none invented.
            assert_eq!(items.len(), records.unwrap_or(1));
            check(&items);
        }
        Ok(Invocation::Queued(messages)) => {
            assert_eq!(Some(messages.len()), records);
            for message in messages {
                assert!(!message.message_id.is_empty());
                if let Ok(items) = message.items {
                    check(&items);
                }
            }
        }
        Err(_) => {}
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(decoded) = pipeline::event::decode_event_key(text) {
            assert!(decoded.len() <= text.len());
        }
    }
});

fn check(items: &[EventItem]) {
    for item in items {
        if let EventItem::Object(object) | EventItem::Removed(object) = item {
            assert!(!object.bucket.is_empty() && !object.key.is_empty());
        }
    }
}
