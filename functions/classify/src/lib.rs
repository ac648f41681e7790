//! The classify function: S3 notifications (or a console `{"bucket", "key"}`) for objects
//! under the clean prefix become predictions — JSON Lines, date-partitioned Parquet — and a
//! manifest. When a clean part is deleted (a re-ingest split its raw object differently),
//! the predictions made from it are deleted too.
//!
//! Failure semantics: a corrupt line is rejected with its reason and the rest classified; a
//! transient failure (storage, a throttled backend, too little time left before the
//! invocation deadline) returns an error so Lambda retries the event and then hands it to
//! the on-failure destination. Outputs are never presented as complete unless they are:
//! the manifest is written last.

use std::time::{Instant, SystemTime};

use lambda_runtime::{Context, LambdaEvent};
use pipeline::lambda::{ObjectHandler, ObjectsResponse, handle_objects};
use pipeline::{Buckets, Classify, ClassifyConfig, ClassifyObjectError, ObjectRef, Retraction};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

/// Holds what `main` built once (store, model, settings), for every invocation.
#[derive(Debug)]
pub struct Handler<B, C> {
    buckets: B,
    classifier: C,
    config: ClassifyConfig,
}

/// What one invocation did, object by object.
pub type ClassifyResponse = ObjectsResponse<Status>;
/// Why an invocation failed; its `Diagnostic` tells retryable failures (a deadline too
/// close among them) from bad requests.
pub type HandlerError = pipeline::lambda::HandlerError<ClassifyObjectError>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Classified {
        manifest: String,
        tweets_in: u64,
        predicted: u64,
        rejected: u64,
    },
    /// The clean object was deleted, and so were the outputs made from it.
    Retracted { deleted: Vec<String> },
    /// Nothing to do: not an object-created event, a key outside the clean prefix, an
    /// object deleted before it could be read, or one re-created after its deletion.
    Skipped { reason: String },
}

impl<B: Buckets + Sync, C: Classify + Sync> Handler<B, C> {
    pub fn new(buckets: B, classifier: C, config: ClassifyConfig) -> Self {
        Self {
            buckets,
            classifier,
            config,
        }
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<Value>,
    ) -> Result<ClassifyResponse, HandlerError> {
        handle_objects(self, event).await
    }
}

impl<B: Buckets + Sync, C: Classify + Sync> ObjectHandler for Handler<B, C> {
    type Status = Status;
    type Failure = ClassifyObjectError;
    const DOING: &'static str = "classifying";

    fn skipped(reason: String) -> Status {
        Status::Skipped { reason }
    }

    async fn created(
        &self,
        object: &ObjectRef,
        context: &Context,
    ) -> Result<Status, ClassifyObjectError> {
        let ObjectRef { bucket, key } = object;
        let finish_by = finish_by(context.deadline, &self.config);
        tracing::debug!(
            deadline_ms = context.deadline,
            classify_budget_ms =
                finish_by.map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64),
            "invocation deadline"
        );
        let store = self.buckets.bucket(bucket);
        let manifest = pipeline::classify_object(
            &store,
            &store,
            &self.classifier,
            key,
            &self.config,
            finish_by,
        )
        .await?;
        let timing = manifest.timing_ms;
        info!(
            bucket,
            key,
            tweets_in = manifest.tweets_in,
            predicted = manifest.predicted,
            rejected = manifest.rejected,
            read_ms = timing.read,
            tokenize_ms = timing.tokenize,
            infer_ms = timing.infer,
            write_ms = timing.write,
            "classified"
        );
        Ok(Status::Classified {
            manifest: manifest.outputs.manifest,
            tweets_in: manifest.tweets_in,
            predicted: manifest.predicted,
            rejected: manifest.rejected,
        })
    }

    /// A deleted clean part takes the predictions made from it along.
    async fn removed(&self, object: &ObjectRef) -> Option<Result<Status, ClassifyObjectError>> {
        Some(self.retract(object).await)
    }
}

impl<B: Buckets + Sync, C: Classify + Sync> Handler<B, C> {
    async fn retract(&self, object: &ObjectRef) -> Result<Status, ClassifyObjectError> {
        let ObjectRef { bucket, key } = object;
        let store = self.buckets.bucket(bucket);
        match pipeline::retract_classify_outputs(&store, key, &self.config.prefixes).await? {
            Retraction::Deleted { keys } => {
                info!(
                    bucket,
                    key,
                    deleted = keys.len(),
                    "retracted the outputs of a deleted object"
                );
                Ok(Status::Retracted { deleted: keys })
            }
            Retraction::NothingToRetract => {
                info!(bucket, key, "a deleted object had no outputs to retract");
                Ok(Status::Skipped {
                    reason: format!("nothing to retract: no outputs of `{key}` exist"),
                })
            }
            Retraction::InputPresent => {
                warn!(
                    bucket,
                    key, "kept the outputs of an object created again after its deletion"
                );
                Ok(Status::Skipped {
                    reason: format!("`{key}` exists again: its outputs are current"),
                })
            }
        }
    }
}

/// Deadlines earlier than this (2001-09-09) are not wall-clock times: a context built outside
/// Lambda has 0, and `cargo lambda watch` sends its timeout (600000) instead of a deadline.
const EARLIEST_REAL_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The instant classification must be done by: the invocation deadline (milliseconds since
/// the epoch, as the runtime API gives it) minus the configured reserve; `None` when the
/// deadline is not a real one.
fn finish_by(deadline_ms: u64, config: &ClassifyConfig) -> Option<Instant> {
    if deadline_ms < EARLIEST_REAL_DEADLINE_MS {
        return None;
    }
    let deadline = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(deadline_ms);
    let remaining = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(config.deadline_reserve);
    Some(Instant::now() + remaining)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lambda_runtime::{Context, Diagnostic};
    use pipeline::DeleteObject;
    use pipeline::memory::{KeywordClassifier, MemoryBuckets};
    use serde_json::json;

    use super::*;

    const TWEET: &str = r#"{"id":"1","created_at":"2024-05-01T10:00:00Z","author_id":null,"author_handle":null,"lang":"en","text":"I love it","clean_text":"i love it","is_retweet":false,"is_quote":false,"is_reply":false,"hashtags":[],"mentions":[],"urls":[],"source":{"key":"raw/a b+c.json","index":0,"offset":0,"line":1}}"#;

    fn handler(buckets: &MemoryBuckets) -> Handler<MemoryBuckets, KeywordClassifier> {
        Handler::new(
            buckets.clone(),
            KeywordClassifier::default(),
            ClassifyConfig::default(),
        )
    }

    fn invoke(payload: Value, deadline_ms: u64) -> LambdaEvent<Value> {
        let mut context = Context::default();
        context.deadline = deadline_ms;
        LambdaEvent::new(payload, context)
    }

    fn in_ms(from_now: Duration) -> u64 {
        let at = SystemTime::now() + from_now;
        u64::try_from(
            at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(u64::MAX)
    }

    fn put_event(bucket: &str, encoded_key: &str) -> Value {
        let template = include_str!("../../../infra/events/classify-s3-put.json");
        let mut event: Value = serde_json::from_str(template).expect("fixture is JSON");
        event["Records"][0]["s3"]["bucket"]["name"] = json!(bucket);
        event["Records"][0]["s3"]["object"]["key"] = json!(encoded_key);
        event
    }

    #[tokio::test]
    async fn s3_put_with_an_encoded_key_is_classified() {
        let buckets = MemoryBuckets::new();
        buckets.insert("b", "clean/a b+c.json.jsonl", TWEET);
        let response = handler(&buckets)
            .handle(invoke(
                put_event("b", "clean/a+b%2Bc.json.jsonl"),
                in_ms(Duration::from_secs(60)),
            ))
            .await
            .expect("classified");
        assert_eq!(
            response.objects[0].status,
            Status::Classified {
                manifest: "manifests/classify/a b+c.json.manifest.json".to_owned(),
                tweets_in: 1,
                predicted: 1,
                rejected: 0,
            }
        );
        assert!(
            buckets
                .object("b", "predictions/a b+c.json.jsonl")
                .is_some()
        );
        assert!(
            buckets
                .object("b", "predictions-parquet/dt=2024-05-01/a b+c.json.parquet")
                .is_some()
        );
    }

    /// The retraction named the three objects classifying the part wrote (predictions,
    /// Parquet, manifest: it had no rejections) and left the bucket empty.
    fn assert_all_three_outputs_retracted(response: &ClassifyResponse, buckets: &MemoryBuckets) {
        assert!(
            matches!(&response.objects[0].status, Status::Retracted { deleted } if deleted.len() == 3),
            "{response:?}"
        );
        assert!(buckets.keys("b").is_empty(), "{:?}", buckets.keys("b"));
    }

    #[tokio::test]
    async fn a_deleted_parts_predictions_are_deleted_with_it() {
        let buckets = MemoryBuckets::new();
        let part = "clean/a b.json/part-00001-of-00002.jsonl";
        buckets.insert("b", part, TWEET);
        handler(&buckets)
            .handle(invoke(json!({"bucket": "b", "key": part}), 0))
            .await
            .expect("classified");
        assert_eq!(buckets.keys("b").len(), 4, "{:?}", buckets.keys("b"));

        buckets.bucket("b").delete(part).await.expect("deleted");
        let template = include_str!("../../../infra/events/classify-s3-delete.json");
        let mut event: Value = serde_json::from_str(template).expect("fixture is JSON");
        event["Records"][0]["s3"]["bucket"]["name"] = json!("b");
        event["Records"][0]["s3"]["object"]["key"] =
            json!("clean/a+b.json/part-00001-of-00002.jsonl");
        let response = handler(&buckets)
            .handle(invoke(event.clone(), 0))
            .await
            .expect("retracted");
        assert_all_three_outputs_retracted(&response, &buckets);

        let again = handler(&buckets)
            .handle(invoke(event, 0))
            .await
            .expect("a redelivered deletion is answered");
        assert!(
            matches!(&again.objects[0].status, Status::Skipped { reason } if reason.starts_with("nothing to retract")),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn queued_and_eventbridge_events_classify_and_retract() {
        let buckets = MemoryBuckets::new();
        let part = "clean/a b.json/part-00000-of-00001.jsonl";
        buckets.insert("b", part, TWEET);
        let template = include_str!("../../../infra/events/classify-sqs.json");
        let mut batch: Value = serde_json::from_str(template).expect("fixture is JSON");
        let mut body: Value =
            serde_json::from_str(batch["Records"][0]["body"].as_str().expect("a body"))
                .expect("the body is a notification");
        body["Records"][0]["s3"]["bucket"]["name"] = json!("b");
        body["Records"][0]["s3"]["object"]["key"] =
            json!("clean/a+b.json/part-00000-of-00001.jsonl");
        batch["Records"][0]["body"] = json!(body.to_string());
        // A second message whose object is missing: skipped, so not a failure.
        let mut missing = batch["Records"][0].clone();
        missing["messageId"] = json!("gone");
        missing["body"] = json!(json!({"bucket": "b", "key": "clean/gone.jsonl"}).to_string());
        batch["Records"]
            .as_array_mut()
            .expect("records")
            .push(missing);
        let response = handler(&buckets)
            .handle(invoke(batch, 0))
            .await
            .expect("a batch answers");
        assert_eq!(response.batch_item_failures, Some(Vec::new()));
        assert!(matches!(
            response.objects[0].status,
            Status::Classified { predicted: 1, .. }
        ));
        assert!(matches!(response.objects[1].status, Status::Skipped { .. }));

        buckets.bucket("b").delete(part).await.expect("deleted");
        let template = include_str!("../../../infra/events/classify-eventbridge-delete.json");
        let mut deleted: Value = serde_json::from_str(template).expect("fixture is JSON");
        deleted["detail"]["bucket"]["name"] = json!("b");
        deleted["detail"]["object"]["key"] = json!(part);
        let response = handler(&buckets)
            .handle(invoke(deleted, 0))
            .await
            .expect("retracted");
        assert_all_three_outputs_retracted(&response, &buckets);
    }

    #[tokio::test]
    async fn the_console_form_works_and_other_prefixes_are_skipped() {
        let buckets = MemoryBuckets::new();
        buckets.insert("b", "clean/x.jsonl", TWEET);
        let response = handler(&buckets)
            .handle(invoke(json!({"bucket": "b", "key": "clean/x.jsonl"}), 0))
            .await
            .expect("classified");
        assert!(matches!(
            response.objects[0].status,
            Status::Classified { predicted: 1, .. }
        ));
        // Its own output: skipped, never classified again.
        let response = handler(&buckets)
            .handle(invoke(
                json!({"bucket": "b", "key": "predictions/x.jsonl"}),
                0,
            ))
            .await
            .expect("skipped");
        assert!(
            matches!(&response.objects[0].status, Status::Skipped { reason } if reason.contains("not under the trigger prefix"))
        );
    }

    #[tokio::test]
    async fn too_little_time_left_is_a_retryable_deadline_error_with_no_output() {
        let buckets = MemoryBuckets::new();
        buckets.insert("b", "clean/x.jsonl", TWEET);
        // 5 s left, but the default reserve keeps 10 s for writing.
        let error = handler(&buckets)
            .handle(invoke(
                json!({"bucket": "b", "key": "clean/x.jsonl"}),
                in_ms(Duration::from_secs(5)),
            ))
            .await
            .expect_err("no time");
        let diagnostic = Diagnostic::from(error);
        assert_eq!(diagnostic.error_type, "Retryable.DeadlineTooClose");
        assert!(
            diagnostic
                .error_message
                .contains("raise the function timeout")
        );
        assert_eq!(buckets.keys("b"), vec!["clean/x.jsonl"]);
    }

    #[test]
    fn deadlines_that_are_not_wall_clock_times_are_ignored() {
        let config = ClassifyConfig::default();
        assert_eq!(finish_by(0, &config), None);
        assert_eq!(finish_by(600_000, &config), None);
        let in_a_minute = finish_by(in_ms(Duration::from_secs(60)), &config).expect("real");
        let budget = in_a_minute.saturating_duration_since(Instant::now());
        assert!(budget > Duration::from_secs(45) && budget <= Duration::from_secs(50));
    }

    #[tokio::test]
    async fn a_transient_read_failure_is_retryable() {
        let buckets = MemoryBuckets::new();
        buckets.insert("b", "clean/x.jsonl", TWEET);
        buckets.fail_next_reads(1);
        let error = handler(&buckets)
            .handle(invoke(json!({"bucket": "b", "key": "clean/x.jsonl"}), 0))
            .await
            .expect_err("fails");
        assert_eq!(
            Diagnostic::from(error).error_type,
            "Retryable.ClassifyFailed"
        );
    }

    #[tokio::test]
    async fn an_unsupported_payload_gets_a_clear_error() {
        let buckets = MemoryBuckets::new();
        let error = handler(&buckets)
            .handle(invoke(json!({"texts": ["hi"]}), 0))
            .await
            .expect_err("refused");
        assert_eq!(Diagnostic::from(error).error_type, "InvalidEvent");
    }
}
