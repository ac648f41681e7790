//! Shared harness for the end-to-end tests: a real S3-compatible server (moto's server
//! mode) on 127.0.0.1, started per test and stopped when the test ends, and the documented
//! event JSON the functions receive (S3 notifications, directly or through SQS, and EventBridge).

pub mod browser;
pub mod faults;
pub mod loopback;
pub mod moto;

use std::path::PathBuf;

use serde_json::Value;

/// The repository root, for fixtures and example data.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Form-encodes a key the way S3 notifications carry it: space → `+`, and `+`, `%` and
/// non-ASCII bytes percent-encoded.
pub fn encode_event_key(key: &str) -> String {
    let mut encoded = String::new();
    for byte in key.bytes() {
        match byte {
            b' ' => encoded.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'~' => {
                encoded.push(byte as char);
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

/// The documented `ObjectCreated:Put` notification (infra/events/ingest-s3-put.json, as
/// shown in the AWS Lambda developer guide) for `key` in `bucket`.
pub fn s3_put_event(bucket: &str, key: &str) -> Value {
    s3_event("ingest-s3-put.json", bucket, key)
}

/// The documented `ObjectRemoved:Delete` notification (infra/events/classify-s3-delete.json)
/// for `key` in `bucket`.
pub fn s3_delete_event(bucket: &str, key: &str) -> Value {
    s3_event("classify-s3-delete.json", bucket, key)
}

fn s3_event(fixture: &str, bucket: &str, key: &str) -> Value {
    let mut event = event_fixture(fixture);
    let record = &mut event["Records"][0]["s3"];
    record["bucket"]["name"] = Value::from(bucket);
    record["bucket"]["arn"] = Value::from(format!("arn:aws:s3:::{bucket}"));
    record["object"]["key"] = Value::from(encode_event_key(key));
    event
}

/// An SQS batch as Lambda's event source mapping delivers it (the message shape of
/// infra/events/ingest-sqs.json), one message per `(message id, body)`.
pub fn sqs_batch(messages: &[(&str, String)]) -> Value {
    let mut event = event_fixture("ingest-sqs.json");
    let template = event["Records"][0].clone();
    let records = messages
        .iter()
        .map(|(id, body)| {
            let mut record = template.clone();
            record["messageId"] = Value::from(*id);
            record["body"] = Value::from(body.as_str());
            record
        })
        .collect();
    event["Records"] = Value::Array(records);
    event
}

/// The EventBridge event S3 sends for `key` in `bucket` (infra/events/ingest-eventbridge.json):
/// "Object Created", the key as stored.
pub fn eventbridge_created_event(bucket: &str, key: &str) -> Value {
    let mut event = event_fixture("ingest-eventbridge.json");
    event["resources"] = Value::from(vec![format!("arn:aws:s3:::{bucket}")]);
    event["detail"]["bucket"]["name"] = Value::from(bucket);
    event["detail"]["object"]["key"] = Value::from(key);
    event
}

fn event_fixture(name: &str) -> Value {
    let path = repo_root().join("infra/events").join(name);
    let text = std::fs::read_to_string(&path).expect("event fixture is readable");
    serde_json::from_str(&text).expect("event fixture is JSON")
}
