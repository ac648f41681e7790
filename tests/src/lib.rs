//! Shared harness for the end-to-end tests: a real S3-compatible server (moto's server
//! mode) on 127.0.0.1, started per test and stopped when the test ends, and the documented
//! S3 event JSON the functions receive.

pub mod faults;
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
    let path = repo_root().join("infra/events").join(fixture);
    let text = std::fs::read_to_string(&path).expect("event fixture is readable");
    let mut event: Value = serde_json::from_str(&text).expect("event fixture is JSON");
    let record = &mut event["Records"][0]["s3"];
    record["bucket"]["name"] = Value::from(bucket);
    record["bucket"]["arn"] = Value::from(format!("arn:aws:s3:::{bucket}"));
    record["object"]["key"] = Value::from(encode_event_key(key));
    event
}
