//! The ingest function: S3 notifications (or a console `{"bucket", "key"}`) for objects under
//! the raw prefix become clean tweets, rejections and a manifest beside them.
//!
//! Failure semantics: a bad file never fails the function (its records are rejected and
//! counted); a transient storage failure returns an error so Lambda retries the event, and
//! then hands it to the on-failure destination.

use lambda_runtime::{Context, LambdaEvent};
use pipeline::lambda::{ObjectHandler, ObjectsResponse, handle_objects};
use pipeline::{Buckets, IngestConfig, IngestObjectError, ObjectRef};
use serde::Serialize;
use serde_json::Value;
use tracing::info;

/// Holds what `main` built once, for every invocation.
#[derive(Debug)]
pub struct Handler<B> {
    buckets: B,
    config: IngestConfig,
}

/// What one invocation did, object by object.
pub type IngestResponse = ObjectsResponse<Status>;
/// Why an invocation failed; its `Diagnostic` tells retryable failures from bad requests.
pub type HandlerError = pipeline::lambda::HandlerError<IngestObjectError>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Ingested {
        manifest: String,
        records_in: u64,
        kept: u64,
        filtered: u64,
        rejected: u64,
        /// Clean parts written, each classified by its own invocation.
        parts: usize,
    },
    /// Nothing to do: not an object-created event, a key outside the raw prefix, or an
    /// object deleted before it could be read.
    Skipped { reason: String },
}

impl<B: Buckets + Sync> Handler<B> {
    pub fn new(buckets: B, config: IngestConfig) -> Self {
        Self { buckets, config }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<IngestResponse, HandlerError> {
        handle_objects(self, event).await
    }
}

impl<B: Buckets + Sync> ObjectHandler for Handler<B> {
    type Status = Status;
    type Failure = IngestObjectError;
    const DOING: &'static str = "ingesting";

    fn skipped(reason: String) -> Status {
        Status::Skipped { reason }
    }

    async fn created(
        &self,
        object: &ObjectRef,
        _context: &Context,
    ) -> Result<Status, IngestObjectError> {
        let ObjectRef { bucket, key } = object;
        let store = self.buckets.bucket(bucket);
        let ingested = pipeline::ingest_object(&store, &store, key, &self.config).await?;
        let (manifest, report) = (&ingested.manifest, &ingested.manifest.report);
        info!(
            bucket,
            key,
            parts = manifest.outputs.clean_parts.len(),
            stale_parts_removed = ingested.removed_parts.len(),
            records_in = report.records_in,
            kept = report.kept,
            filtered = report.filtered_total(),
            rejected = report.rejected,
            read_parse_ms = manifest.timing_ms.read_parse,
            write_ms = manifest.timing_ms.write,
            "ingested"
        );
        Ok(Status::Ingested {
            manifest: manifest.outputs.manifest.clone(),
            records_in: report.records_in,
            kept: report.kept,
            filtered: report.filtered_total(),
            rejected: report.rejected,
            parts: manifest.outputs.clean_parts.len(),
        })
    }

    /// A deleted raw object's outputs are kept: they are what was read from it.
    async fn removed(&self, _object: &ObjectRef) -> Option<Result<Status, IngestObjectError>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use lambda_runtime::{Context, Diagnostic};
    use pipeline::memory::MemoryBuckets;
    use serde_json::json;

    use super::*;

    fn handler(buckets: &MemoryBuckets) -> Handler<MemoryBuckets> {
        Handler::new(buckets.clone(), IngestConfig::default())
    }

    fn invoke(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(payload, Context::default())
    }

    fn put_event(bucket: &str, encoded_key: &str) -> Value {
        let template = include_str!("../../../infra/events/ingest-s3-put.json");
        let mut event: Value = serde_json::from_str(template).expect("fixture is JSON");
        event["Records"][0]["s3"]["bucket"]["name"] = json!(bucket);
        event["Records"][0]["s3"]["object"]["key"] = json!(encoded_key);
        event
    }

    #[tokio::test]
    async fn s3_put_with_encoded_key_is_ingested() {
        let buckets = MemoryBuckets::new();
        buckets.insert(
            "b",
            "raw/my tweets+more.jsonl",
            "{\"id_str\":\"1\",\"text\":\"what a lovely day\"}\n",
        );
        let response = handler(&buckets)
            .handle(invoke(put_event("b", "raw/my+tweets%2Bmore.jsonl")))
            .await
            .expect("ingested");
        assert_eq!(response.objects.len(), 1);
        assert!(matches!(
            response.objects[0].status,
            Status::Ingested {
                kept: 1,
                parts: 1,
                ..
            }
        ));
        assert!(
            buckets
                .object("b", "clean/my tweets+more.jsonl/part-00000-of-00001.jsonl")
                .is_some()
        );
    }

    #[tokio::test]
    async fn direct_invocation_works_and_keys_outside_raw_are_skipped() {
        let buckets = MemoryBuckets::new();
        buckets.insert(
            "b",
            "raw/x.json",
            "{\"id_str\":\"1\",\"text\":\"what a lovely day\"}",
        );
        let response = handler(&buckets)
            .handle(invoke(json!({"bucket": "b", "key": "raw/x.json"})))
            .await
            .expect("ingested");
        assert!(matches!(
            response.objects[0].status,
            Status::Ingested { .. }
        ));

        let response = handler(&buckets)
            .handle(invoke(json!({"bucket": "b", "key": "clean/x.json.jsonl"})))
            .await
            .expect("skipped, not failed");
        assert!(
            matches!(&response.objects[0].status, Status::Skipped { reason } if reason.contains("not under the trigger prefix"))
        );
    }

    #[tokio::test]
    async fn transient_failure_is_a_retryable_error() {
        let buckets = MemoryBuckets::new();
        buckets.insert("b", "raw/x.json", "{}");
        buckets.fail_next_reads(1);
        let error = handler(&buckets)
            .handle(invoke(json!({"bucket": "b", "key": "raw/x.json"})))
            .await
            .expect_err("fails");
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "Retryable.IngestFailed");
        assert!(
            diagnostic.error_message.contains("service unavailable"),
            "{}",
            diagnostic.error_message
        );
    }

    /// The documented SQS batch (infra/events/ingest-sqs.json: S3's test message, then a
    /// notification) with one more notification per key in `keys`.
    fn sqs_batch(bucket: &str, keys: &[&str]) -> Value {
        let template = include_str!("../../../infra/events/ingest-sqs.json");
        let mut event: Value = serde_json::from_str(template).expect("fixture is JSON");
        let message = event["Records"][1].clone();
        let records: Vec<Value> = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let mut notification = put_event(bucket, key);
                notification["Records"][0]["s3"]["bucket"]["name"] = json!(bucket);
                let mut record = message.clone();
                record["messageId"] = json!(format!("message-{index}"));
                record["body"] = json!(notification.to_string());
                record
            })
            .collect();
        event["Records"] = json!([event["Records"][0].clone()]);
        event["Records"]
            .as_array_mut()
            .expect("records")
            .extend(records);
        event
    }

    #[tokio::test]
    async fn an_sqs_batch_fails_only_the_messages_that_failed() {
        let buckets = MemoryBuckets::new();
        for name in ["a", "b"] {
            buckets.insert(
                "b",
                &format!("raw/{name}.jsonl"),
                "{\"id_str\":\"1\",\"text\":\"what a lovely day\"}\n",
            );
        }
        // The first read fails as S3 sometimes does: message-0 is delivered again later.
        buckets.fail_next_reads(1);
        let response = handler(&buckets)
            .handle(invoke(sqs_batch("b", &["raw/a.jsonl", "raw/b.jsonl"])))
            .await
            .expect("a batch answers with its failures");
        let failed = response.failed_message_ids();
        assert_eq!(failed, ["message-0"]);
        assert_eq!(response.objects.len(), 1);
        assert_eq!(response.objects[0].key, "raw/b.jsonl");
        assert!(
            buckets
                .object("b", "clean/b.jsonl/part-00000-of-00001.jsonl")
                .is_some()
        );
        assert!(
            buckets
                .object("b", "clean/a.jsonl/part-00000-of-00001.jsonl")
                .is_none()
        );
        let answer = serde_json::to_value(&response).expect("serializes");
        assert_eq!(
            answer["batchItemFailures"],
            json!([{"itemIdentifier": "message-0"}])
        );

        // Redelivered, it succeeds: an empty failure list tells Lambda the batch is done.
        let response = handler(&buckets)
            .handle(invoke(sqs_batch("b", &["raw/a.jsonl"])))
            .await
            .expect("redelivered");
        let answer = serde_json::to_value(&response).expect("serializes");
        assert_eq!(answer["batchItemFailures"], json!([]));
        assert!(
            buckets
                .object("b", "clean/a.jsonl/part-00000-of-00001.jsonl")
                .is_some()
        );
    }

    #[tokio::test]
    async fn an_eventbridge_object_created_event_is_ingested() {
        let buckets = MemoryBuckets::new();
        buckets.insert(
            "b",
            "raw/my tweets+more.jsonl",
            "{\"id_str\":\"1\",\"text\":\"what a lovely day\"}\n",
        );
        let template = include_str!("../../../infra/events/ingest-eventbridge.json");
        let mut event: Value = serde_json::from_str(template).expect("fixture is JSON");
        event["detail"]["bucket"]["name"] = json!("b");
        event["detail"]["object"]["key"] = json!("raw/my tweets+more.jsonl");
        let response = handler(&buckets)
            .handle(invoke(event))
            .await
            .expect("ingested");
        assert!(matches!(
            response.objects[0].status,
            Status::Ingested { kept: 1, .. }
        ));
        let answer = serde_json::to_value(&response).expect("serializes");
        assert!(answer.get("batchItemFailures").is_none(), "{answer}");
    }

    #[tokio::test]
    async fn unsupported_payload_gets_a_clear_error() {
        let buckets = MemoryBuckets::new();
        let error = handler(&buckets)
            .handle(invoke(json!({"text": "hello"})))
            .await
            .expect_err("refused");
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "InvalidEvent");
        assert!(
            diagnostic
                .error_message
                .contains("expected an S3 notification")
        );
    }

    #[tokio::test]
    async fn deleted_object_is_skipped() {
        let buckets = MemoryBuckets::new();
        let response = handler(&buckets)
            .handle(invoke(json!({"bucket": "b", "key": "raw/gone.json"})))
            .await
            .expect("skipped");
        assert!(matches!(response.objects[0].status, Status::Skipped { .. }));
    }
}
