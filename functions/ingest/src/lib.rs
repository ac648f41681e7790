//! The ingest function: S3 notifications (or a console `{"bucket", "key"}`) for objects under
//! the raw prefix become clean tweets, rejections and a manifest beside them.
//!
//! Failure semantics: a bad file never fails the function (its records are rejected and
//! counted); a transient storage failure returns an error so Lambda retries the event, and
//! then hands it to the on-failure destination.

use lambda_runtime::{Diagnostic, LambdaEvent};
use pipeline::event::EventError;
use pipeline::{
    Buckets, EventItem, IngestConfig, IngestObjectError, ObjectRef, StoreError, error_chain,
    object_refs,
};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

/// Holds what `main` built once, for every invocation.
#[derive(Debug)]
pub struct Handler<B> {
    buckets: B,
    config: IngestConfig,
}

/// What one invocation did, object by object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestResponse {
    pub objects: Vec<ObjectOutcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectOutcome {
    pub bucket: String,
    pub key: String,
    #[serde(flatten)]
    pub status: Status,
}

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

/// Why an invocation failed; `error_type` tells retryable failures from bad requests.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    #[error("ingesting s3://{bucket}/{key} failed: {source}")]
    Ingest {
        bucket: String,
        key: String,
        #[source]
        source: IngestObjectError,
    },
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::InvalidEvent(_) => "InvalidEvent",
            HandlerError::Ingest { source, .. } if source.is_retryable() => {
                "Retryable.IngestFailed"
            }
            HandlerError::Ingest { .. } => "IngestFailed",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error_chain(&error),
        }
    }
}

impl<B: Buckets> Handler<B> {
    pub fn new(buckets: B, config: IngestConfig) -> Self {
        Self { buckets, config }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<IngestResponse, HandlerError> {
        let mut objects = Vec::new();
        for item in object_refs(event.payload)? {
            let outcome = match item {
                EventItem::Ignored { event_name } => {
                    info!(event_name, "ignored a record that creates no object");
                    continue;
                }
                EventItem::Removed(ObjectRef { key, .. }) => {
                    info!(key, "ignored a deleted raw object: its outputs are kept");
                    continue;
                }
                EventItem::Object(object) => self.ingest(object).await?,
            };
            objects.push(outcome);
        }
        Ok(IngestResponse { objects })
    }

    async fn ingest(&self, object: ObjectRef) -> Result<ObjectOutcome, HandlerError> {
        let ObjectRef { bucket, key } = object;
        let store = self.buckets.bucket(&bucket);
        let status = match pipeline::ingest_object(&store, &store, &key, &self.config).await {
            Ok(pipeline::Ingested {
                manifest,
                removed_parts,
            }) => {
                let report = &manifest.report;
                info!(
                    bucket,
                    key,
                    parts = manifest.outputs.clean_parts.len(),
                    stale_parts_removed = removed_parts.len(),
                    records_in = report.records_in,
                    kept = report.kept,
                    filtered = report.filtered_total(),
                    rejected = report.rejected,
                    read_parse_ms = manifest.timing_ms.read_parse,
                    write_ms = manifest.timing_ms.write,
                    "ingested"
                );
                Status::Ingested {
                    manifest: manifest.outputs.manifest.clone(),
                    records_in: report.records_in,
                    kept: report.kept,
                    filtered: report.filtered_total(),
                    rejected: report.rejected,
                    parts: manifest.outputs.clean_parts.len(),
                }
            }
            Err(IngestObjectError::Key(error)) => {
                warn!(bucket, key, %error, "skipped a key this function does not handle");
                Status::Skipped {
                    reason: error.to_string(),
                }
            }
            Err(IngestObjectError::Store(error @ StoreError::NotFound { .. })) => {
                warn!(bucket, key, %error, "skipped an object deleted before it was read");
                Status::Skipped {
                    reason: error.to_string(),
                }
            }
            Err(source) => {
                tracing::error!(bucket, key, error = %error_chain(&source), retryable = source.is_retryable(), "ingest failed");
                return Err(HandlerError::Ingest {
                    bucket,
                    key,
                    source,
                });
            }
        };
        Ok(ObjectOutcome {
            bucket,
            key,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use lambda_runtime::Context;
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
