//! Translates what invokes a function into object references, in this one place: an S3
//! notification, the same notifications delivered through an SQS queue, an EventBridge
//! "Object Created" / "Object Deleted" event, or a console test `{"bucket", "key"}`.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::{S3Event, S3EventRecord};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
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

/// What one invocation carries, which decides how its failures are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// An S3 notification, an EventBridge event or the console form: one unit of work that
    /// fails (and is retried) as a whole.
    Direct(Vec<EventItem>),
    /// An SQS batch: each message succeeds or fails on its own (`batchItemFailures`).
    Queued(Vec<QueuedMessage>),
}

/// One message of an SQS batch and what its body names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub message_id: String,
    /// An unreadable body fails this message alone: after the queue's retries it lands in
    /// the dead-letter queue, and the rest of the batch goes on.
    pub items: Result<Vec<EventItem>, EventError>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(
        "unsupported event: expected an S3 notification ({{\"Records\": [...]}}), an SQS \
         batch of them, an EventBridge S3 event or {{\"bucket\": \"...\", \"key\": \"...\"}}; \
         {detail}"
    )]
    Unsupported { detail: String },
    #[error("S3 event record {index} has no {field}")]
    MissingField { index: usize, field: &'static str },
    #[error("S3 event key `{key}` is not valid percent-encoded UTF-8")]
    BadKeyEncoding { key: String },
    #[error("SQS message {index} has no messageId")]
    NoMessageId { index: usize },
}

/// The direct form, for the console's Test tab, scripts and the backfill state machine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectRequest {
    bucket: String,
    key: String,
    #[serde(default)]
    key_encoding: KeyEncoding,
}

/// How the direct form's key is written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KeyEncoding {
    /// As stored.
    #[default]
    Stored,
    /// URL-encoded, as S3 Inventory reports write keys (the backfill's inventory items).
    Url,
}

/// The `detail` of an EventBridge event from S3: only what names the object.
#[derive(Debug, Deserialize)]
struct S3Detail {
    bucket: NamedBucket,
    object: KeyedObject,
}

#[derive(Debug, Deserialize)]
struct NamedBucket {
    name: String,
}

#[derive(Debug, Deserialize)]
struct KeyedObject {
    key: String,
}

/// The message S3 sends to a queue when its notification is configured: not an object.
const S3_TEST_EVENT: &str = "s3:TestEvent";

/// Reads an invocation payload. Records other than objects created or removed are
/// reported as ignored, not errors.
pub fn parse_invocation(payload: Value) -> Result<Invocation, EventError> {
    if is_sqs_batch(&payload) {
        let batch: SqsEvent = serde_json::from_value(payload)
            .map_err(|error| unsupported(format!("the SQS batch is malformed: {error}")))?;
        return batch
            .records
            .into_iter()
            .enumerate()
            .map(|(index, message)| queued(index, message))
            .collect::<Result<_, _>>()
            .map(Invocation::Queued);
    }
    object_refs(payload).map(Invocation::Direct)
}

/// Reads one notification (S3, EventBridge, the console form, or S3's test message) into
/// the objects it names.
pub fn object_refs(payload: Value) -> Result<Vec<EventItem>, EventError> {
    if payload.get("Records").is_some() {
        return s3_items(payload);
    }
    if payload.get("detail-type").is_some() {
        return eventbridge_item(payload).map(|item| vec![item]);
    }
    if payload.get("Event").and_then(Value::as_str) == Some(S3_TEST_EVENT) {
        return Ok(vec![EventItem::Ignored {
            event_name: S3_TEST_EVENT.to_owned(),
        }]);
    }
    let direct: DirectRequest =
        serde_json::from_value(payload).map_err(|error| unsupported(error.to_string()))?;
    if direct.bucket.is_empty() || direct.key.is_empty() {
        return Err(unsupported(
            "`bucket` and `key` must not be empty".to_owned(),
        ));
    }
    let key = match direct.key_encoding {
        KeyEncoding::Stored => direct.key,
        KeyEncoding::Url => decode_event_key(&direct.key)?,
    };
    Ok(vec![EventItem::Object(ObjectRef {
        bucket: direct.bucket,
        key,
    })])
}

fn unsupported(detail: String) -> EventError {
    EventError::Unsupported { detail }
}

fn is_sqs_batch(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

fn queued(index: usize, message: SqsMessage) -> Result<QueuedMessage, EventError> {
    let message_id = message
        .message_id
        .filter(|id| !id.is_empty())
        .ok_or(EventError::NoMessageId { index })?;
    let items = serde_json::from_str::<Value>(message.body.as_deref().unwrap_or_default())
        .map_err(|error| unsupported(format!("the message body is not JSON: {error}")))
        .and_then(object_refs);
    Ok(QueuedMessage { message_id, items })
}

fn s3_items(payload: Value) -> Result<Vec<EventItem>, EventError> {
    let event: S3Event = serde_json::from_value(payload)
        .map_err(|error| unsupported(format!("the S3 notification is malformed: {error}")))?;
    event
        .records
        .iter()
        .enumerate()
        .map(|(index, record)| item_of(index, record))
        .collect()
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

/// EventBridge carries the key as stored, not form-encoded as notifications do.
fn eventbridge_item(payload: Value) -> Result<EventItem, EventError> {
    let event: EventBridgeEvent<Value> = serde_json::from_value(payload)
        .map_err(|error| unsupported(format!("the EventBridge event is malformed: {error}")))?;
    let item: fn(ObjectRef) -> EventItem = match (event.source.as_str(), event.detail_type.as_str())
    {
        ("aws.s3", "Object Created") => EventItem::Object,
        ("aws.s3", "Object Deleted") => EventItem::Removed,
        (source, detail_type) => {
            return Ok(EventItem::Ignored {
                event_name: format!("{source}: {detail_type}"),
            });
        }
    };
    let detail: S3Detail = serde_json::from_value(event.detail).map_err(|error| {
        unsupported(format!(
            "the EventBridge S3 event has no detail.bucket.name and detail.object.key: {error}"
        ))
    })?;
    if detail.bucket.name.is_empty() || detail.object.key.is_empty() {
        return Err(unsupported(
            "the EventBridge S3 event names an empty bucket or key".to_owned(),
        ));
    }
    Ok(item(ObjectRef {
        bucket: detail.bucket.name,
        key: detail.object.key,
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

    fn sqs_batch(bodies: &[(&str, String)]) -> Value {
        let records: Vec<Value> = bodies
            .iter()
            .map(|(id, body)| {
                json!({"messageId": id, "receiptHandle": "r", "body": body,
                "attributes": {}, "messageAttributes": {}, "md5OfBody": "m",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                "awsRegion": "us-east-1"})
            })
            .collect();
        json!({ "Records": records })
    }

    #[test]
    fn each_sqs_message_is_read_on_its_own() {
        let notification = s3_event("ObjectCreated:Put", "raw/a+b.json").to_string();
        let test_event =
            json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "tweets"});
        let batch = sqs_batch(&[
            ("m1", notification),
            ("m2", test_event.to_string()),
            ("m3", "not json".to_owned()),
            ("m4", json!({"hello": "world"}).to_string()),
        ]);
        let Invocation::Queued(messages) = parse_invocation(batch).expect("a batch") else {
            panic!("an SQS batch is queued");
        };
        let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["m1", "m2", "m3", "m4"]);
        assert_eq!(
            messages[0].items,
            Ok(vec![EventItem::Object(ObjectRef {
                bucket: "tweets".to_owned(),
                key: "raw/a b.json".to_owned()
            })])
        );
        assert_eq!(
            messages[1].items,
            Ok(vec![EventItem::Ignored {
                event_name: "s3:TestEvent".to_owned()
            }])
        );
        let bad_body = messages[2].items.clone().expect_err("not JSON");
        assert!(bad_body.to_string().contains("not JSON"), "{bad_body}");
        assert!(messages[3].items.is_err());
    }

    #[test]
    fn an_sqs_message_without_an_id_fails_the_batch() {
        let mut batch = sqs_batch(&[("m1", "{}".to_owned())]);
        batch["Records"][0]["messageId"] = json!("");
        assert_eq!(
            parse_invocation(batch),
            Err(EventError::NoMessageId { index: 0 })
        );
    }

    #[test]
    fn the_documented_fixtures_parse_as_their_shape() {
        let fixture = |text: &str| serde_json::from_str::<Value>(text).expect("JSON");
        let sqs = parse_invocation(fixture(include_str!(
            "../../../infra/events/ingest-sqs.json"
        )));
        let Ok(Invocation::Queued(messages)) = sqs else {
            panic!("{sqs:?}");
        };
        assert_eq!(messages.len(), 2);
        assert!(matches!(
            &messages[1].items,
            Ok(items) if items == &[EventItem::Object(ObjectRef {
                bucket: "my-tweets-bucket".to_owned(),
                key: "raw/2024-05-01/customer support+sales.jsonl".to_owned(),
            })]
        ));
        let created = fixture(include_str!(
            "../../../infra/events/ingest-eventbridge.json"
        ));
        assert_eq!(
            parse_invocation(created),
            Ok(Invocation::Direct(vec![EventItem::Object(ObjectRef {
                bucket: "my-tweets-bucket".to_owned(),
                key: "raw/2024-05-01/customer support+sales.jsonl".to_owned(),
            })]))
        );
    }

    #[test]
    fn eventbridge_keys_are_taken_as_stored_and_deletions_are_removals() {
        let mut deleted = serde_json::from_str::<Value>(include_str!(
            "../../../infra/events/classify-eventbridge-delete.json"
        ))
        .expect("JSON");
        deleted["detail"]["object"]["key"] = json!("clean/a+b%2B.jsonl");
        assert_eq!(
            object_refs(deleted.clone()),
            Ok(vec![EventItem::Removed(ObjectRef {
                bucket: "my-tweets-bucket".to_owned(),
                key: "clean/a+b%2B.jsonl".to_owned(),
            })])
        );
        deleted["detail-type"] = json!("Object Restore Completed");
        assert_eq!(
            object_refs(deleted.clone()),
            Ok(vec![EventItem::Ignored {
                event_name: "aws.s3: Object Restore Completed".to_owned()
            }])
        );
        deleted["detail-type"] = json!("Object Created");
        deleted["detail"] = json!({"bucket": {"name": "b"}});
        let error = object_refs(deleted).expect_err("no key");
        assert!(error.to_string().contains("detail.object.key"), "{error}");
    }

    #[test]
    fn the_direct_form_takes_inventory_keys_url_encoded() {
        let items = object_refs(json!({"bucket": "b", "key": "raw/x+y%2B.json",
            "key_encoding": "url"}))
        .expect("valid");
        assert_eq!(
            items,
            vec![EventItem::Object(ObjectRef {
                bucket: "b".to_owned(),
                key: "raw/x y+.json".to_owned()
            })]
        );
        let stored = object_refs(json!({"bucket": "b", "key": "raw/x+y.json",
            "key_encoding": "stored"}))
        .expect("valid");
        assert_eq!(
            stored,
            vec![EventItem::Object(ObjectRef {
                bucket: "b".to_owned(),
                key: "raw/x+y.json".to_owned()
            })]
        );
        assert!(object_refs(json!({"bucket": "b", "key": "k", "key_encoding": "base64"})).is_err());
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
