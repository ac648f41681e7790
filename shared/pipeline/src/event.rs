//! Translates what invokes a function — an S3 notification or a console test
//! `{"bucket", "key"}` — into object references, in this one place.

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An object to process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    /// The decoded key, as stored.
    pub key: String,
}

/// One entry of an event: an object to process, an object deleted (whose outputs may have
/// to follow it), or a record that asks for nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventItem {
    Object(ObjectRef),
    Removed(ObjectRef),
    Ignored { event_name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(
        "unsupported event: expected an S3 notification ({{\"Records\": [...]}}) or \
         {{\"bucket\": \"...\", \"key\": \"...\"}}; {detail}"
    )]
    Unsupported { detail: String },
    #[error("S3 event record {index} has no {field}")]
    MissingField { index: usize, field: &'static str },
    #[error("S3 event key `{key}` is not valid percent-encoded UTF-8")]
    BadKeyEncoding { key: String },
}

/// The direct form, for the console's Test tab and for scripts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectRequest {
    bucket: String,
    key: String,
}

/// Reads an invocation payload into the objects it names. S3 records other than
/// `ObjectCreated:*` and `ObjectRemoved:*` are reported as ignored, not errors.
pub fn object_refs(payload: Value) -> Result<Vec<EventItem>, EventError> {
    if payload.get("Records").is_some() {
        let event: S3Event =
            serde_json::from_value(payload).map_err(|error| EventError::Unsupported {
                detail: format!("the S3 notification is malformed: {error}"),
            })?;
        return event
            .records
            .iter()
            .enumerate()
            .map(|(index, record)| item_of(index, record))
            .collect();
    }
    let direct: DirectRequest =
        serde_json::from_value(payload).map_err(|error| EventError::Unsupported {
            detail: error.to_string(),
        })?;
    if direct.bucket.is_empty() || direct.key.is_empty() {
        return Err(EventError::Unsupported {
            detail: "`bucket` and `key` must not be empty".to_owned(),
        });
    }
    Ok(vec![EventItem::Object(ObjectRef {
        bucket: direct.bucket,
        key: direct.key,
    })])
}

fn item_of(index: usize, record: &S3EventRecord) -> Result<EventItem, EventError> {
    let event_name = record.event_name.clone().unwrap_or_default();
    let item: fn(ObjectRef) -> EventItem = if event_name.starts_with("ObjectCreated:") {
        EventItem::Object
    } else if event_name.starts_with("ObjectRemoved:") {
        EventItem::Removed
    } else {
        return Ok(EventItem::Ignored { event_name });
    };
    let bucket = record
        .s3
        .bucket
        .name
        .clone()
        .filter(|name| !name.is_empty())
        .ok_or(EventError::MissingField {
            index,
            field: "s3.bucket.name",
        })?;
    let raw_key = record
        .s3
        .object
        .key
        .as_deref()
        .filter(|key| !key.is_empty())
        .ok_or(EventError::MissingField {
            index,
            field: "s3.object.key",
        })?;
    Ok(item(ObjectRef {
        bucket,
        key: decode_event_key(raw_key)?,
    }))
}

/// S3 notifications carry keys form-encoded: `+` for a space, `%XX` for other bytes
/// (a literal `+` arrives as `%2B`).
pub fn decode_event_key(raw: &str) -> Result<String, EventError> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| EventError::BadKeyEncoding {
            key: raw.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(event_name: &str, key: &str) -> Value {
        json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-05-01T12:00:00.000Z", "eventName": event_name,
            "userIdentity": {"principalId": "AWS:EXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "ingest",
                   "bucket": {"name": "tweets", "ownerIdentity": {"principalId": "A"},
                              "arn": "arn:aws:s3:::tweets"},
                   "object": {"key": key, "size": 10, "eTag": "e", "sequencer": "0A"}}
        }]})
    }

    #[test]
    fn keys_are_decoded_plus_as_space_then_percent() {
        assert_eq!(
            decode_event_key("raw/my+tweets%2B2024%2Fmay.json").expect("valid"),
            "raw/my tweets+2024/may.json"
        );
        assert_eq!(
            decode_event_key("raw/caf%C3%A9.json").expect("valid"),
            "raw/café.json"
        );
        assert!(decode_event_key("raw/%FF.json").is_err());
    }

    #[test]
    fn object_created_records_become_object_refs() {
        let items = object_refs(s3_event("ObjectCreated:Put", "raw/a+b%2Bc.json")).expect("valid");
        assert_eq!(
            items,
            vec![EventItem::Object(ObjectRef {
                bucket: "tweets".to_owned(),
                key: "raw/a b+c.json".to_owned()
            })]
        );
    }

    #[test]
    fn object_removed_records_name_the_deleted_object() {
        let items = object_refs(s3_event("ObjectRemoved:Delete", "clean/a+b.json")).expect("valid");
        assert_eq!(
            items,
            vec![EventItem::Removed(ObjectRef {
                bucket: "tweets".to_owned(),
                key: "clean/a b.json".to_owned()
            })]
        );
    }

    #[test]
    fn other_s3_events_are_ignored() {
        let items = object_refs(s3_event("ObjectRestore:Completed", "raw/a.json")).expect("valid");
        assert_eq!(
            items,
            vec![EventItem::Ignored {
                event_name: "ObjectRestore:Completed".to_owned()
            }]
        );
    }

    #[test]
    fn direct_invocation_is_accepted() {
        let items = object_refs(json!({"bucket": "b", "key": "raw/x y.json"})).expect("valid");
        assert_eq!(
            items,
            vec![EventItem::Object(ObjectRef {
                bucket: "b".to_owned(),
                key: "raw/x y.json".to_owned()
            })]
        );
    }

    #[test]
    fn anything_else_gets_a_clear_error() {
        for payload in [
            json!({"hello": "world"}),
            json!([1]),
            json!({"bucket": "b"}),
            json!({"bucket": "", "key": "k"}),
        ] {
            let error = object_refs(payload).expect_err("unsupported");
            assert!(
                error.to_string().contains("expected an S3 notification"),
                "{error}"
            );
        }
        let error = object_refs(json!({"Records": [{"eventName": "ObjectCreated:Put"}]}))
            .expect_err("malformed");
        assert!(error.to_string().contains("malformed"), "{error}");
    }
}
