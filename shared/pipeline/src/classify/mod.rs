//! The classify use case: one clean object in; predictions as JSON Lines and as
//! date-partitioned Parquet, rejections and a manifest out, over any store and any
//! [`Classify`] backend.
//!
//! Every non-blank line of the input ends as exactly one prediction or one rejection, and
//! the manifest — written last, so its presence means the outputs are complete — says so.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;
use tweets::{RawRecord, Rejection};

use crate::config::ClassifyConfig;
use crate::ingest::{JSON, elapsed_ms, json_payload};
use crate::keys::KeyError;
use crate::parquet_table::ParquetError;
use crate::ports::{Classify, ClassifyError, ModelInfo, ReadObject, StoreError, WriteObject};
use crate::prediction_record::PredictionRecord;

mod outputs;
mod reader;

use crate::batch::classify_batch;
use outputs::Outputs;
use reader::read_chunks;

pub const PARQUET: &str = "application/vnd.apache.parquet";

/// What classify did with one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifyManifest {
    /// The clean object's key.
    pub input: String,
    pub outputs: ClassifyOutputs,
    /// `tweets_in == predicted + rejected`.
    pub tweets_in: u64,
    pub predicted: u64,
    pub rejected: u64,
    /// Predictions per decided label.
    pub label_counts: BTreeMap<String, u64>,
    /// Multi-label predictions where no label reached its threshold.
    pub unlabelled: u64,
    pub model: ModelInfo,
    /// Wall-clock split; the only part that differs between two runs on the same object.
    pub timing_ms: ClassifyTiming,
    pub tool_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifyOutputs {
    pub predictions: String,
    /// One Parquet object per day the tweets were posted on.
    pub parquet: Vec<String>,
    /// Written only when something was rejected.
    pub rejected: Option<String>,
    pub manifest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassifyTiming {
    /// Reading and parsing the clean records.
    pub read: u64,
    pub tokenize: u64,
    pub infer: u64,
    /// Encoding and storing the outputs.
    pub write: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifyObjectError {
    /// The key is not one this function handles; nothing was read or written.
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the object failed")]
    Read(#[source] std::io::Error),
    #[error(transparent)]
    Classifier(#[from] ClassifyError),
    #[error(
        "not enough time left to finish: {classified} tweets classified in {elapsed_ms} ms, \
         about {estimated_ms} ms more needed but {available_ms} ms left before the deadline \
         reserve (DEADLINE_RESERVE_MS); raise the function timeout or memory, or split the \
         input file"
    )]
    Deadline {
        classified: u64,
        elapsed_ms: u64,
        estimated_ms: u64,
        available_ms: u64,
    },
    #[error(transparent)]
    Parquet(#[from] ParquetError),
    #[error("the reading task stopped unexpectedly")]
    Task(#[from] tokio::task::JoinError),
    #[error(
        "internal error: counts do not add up ({tweets_in} in, {predicted} predicted, \
         {rejected} rejected)"
    )]
    Conservation {
        tweets_in: u64,
        predicted: u64,
        rejected: u64,
    },
}

impl ClassifyObjectError {
    /// Whether the same event may succeed later: Lambda should retry it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Key(_) | Self::Parquet(_) | Self::Conservation { .. } => false,
            Self::Store(error) => error.is_retryable(),
            Self::Classifier(error) => error.is_retryable(),
            Self::Read(_) | Self::Deadline { .. } | Self::Task(_) => true,
        }
    }
}

/// Classifies the tweets of `clean_key` into `sink`. `finish_by` is the instant by which
/// classification must be done to leave time for writing (the invocation deadline minus
/// [`ClassifyConfig::deadline_reserve`]); `None` means no deadline.
pub async fn classify_object(
    source: &impl ReadObject,
    sink: &impl WriteObject,
    classifier: &impl Classify,
    clean_key: &str,
    config: &ClassifyConfig,
    finish_by: Option<Instant>,
) -> Result<ClassifyManifest, ClassifyObjectError> {
    let keys = config.prefixes.classify_keys(clean_key)?;
    let started = Instant::now();
    let body = source.get(clean_key).await?;
    let total_bytes = body.len;
    let (sender, mut chunks) = mpsc::channel(2);
    let reader = SyncIoBridge::new(body.reader);
    let key = clean_key.to_owned();
    let batch_size = config.batch_size;
    let producer =
        tokio::task::spawn_blocking(move || read_chunks(reader, &key, batch_size, &sender));

    let model = classifier.model().clone();
    let mut outputs = Outputs::default();
    let (mut read, mut tokenize, mut infer) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut classified_bytes = 0;
    while let Some(chunk) = chunks.recv().await {
        read += chunk.read;
        for rejection in chunk.rejections {
            outputs.reject(&rejection)?;
        }
        if chunk.tweets.is_empty() {
            continue;
        }
        check_deadline(
            finish_by,
            started,
            outputs.predicted,
            classified_bytes,
            total_bytes,
        )?;
        let texts = chunk
            .tweets
            .iter()
            .map(|(tweet, _)| tweet.text.clone())
            .collect();
        let batch = classify_batch(classifier, texts).await?;
        tokenize += batch.tokenize;
        infer += batch.infer;
        for ((tweet, position), result) in chunk.tweets.into_iter().zip(batch.results) {
            match result {
                Ok(prediction) => {
                    outputs.predict(PredictionRecord::new(tweet, prediction, &model))?;
                }
                Err(error) => {
                    let raw = serde_json::to_vec(&tweet).unwrap_or_default();
                    let raw = Some(RawRecord::whole(&raw));
                    outputs.reject(&Rejection::new(position, 0, error, raw))?;
                }
            }
        }
        classified_bytes = chunk.consumed;
    }
    let tweets_in = producer.await?.map_err(ClassifyObjectError::Read)?;
    if tweets_in != outputs.predicted + outputs.rejected {
        return Err(ClassifyObjectError::Conservation {
            tweets_in,
            predicted: outputs.predicted,
            rejected: outputs.rejected,
        });
    }

    let writing = Instant::now();
    let mut manifest = outputs.write(sink, &keys, clean_key, model).await?;
    manifest.tweets_in = tweets_in;
    manifest.timing_ms = ClassifyTiming {
        read: duration_ms(read),
        tokenize: duration_ms(tokenize),
        infer: duration_ms(infer),
        write: elapsed_ms(writing),
    };
    sink.put(&keys.manifest, json_payload(&manifest), JSON)
        .await?;
    Ok(manifest)
}

/// Fails before a batch that cannot finish in time: when the deadline has passed, or when
/// the pace so far says the rest of the object needs longer than the time left.
fn check_deadline(
    finish_by: Option<Instant>,
    started: Instant,
    classified: u64,
    classified_bytes: u64,
    total_bytes: Option<u64>,
) -> Result<(), ClassifyObjectError> {
    let Some(finish_by) = finish_by else {
        return Ok(());
    };
    let now = Instant::now();
    let available = finish_by.saturating_duration_since(now);
    let elapsed = now.duration_since(started);
    let estimated = match total_bytes {
        Some(total) if classified_bytes > 0 => {
            elapsed.mul_f64(total.saturating_sub(classified_bytes) as f64 / classified_bytes as f64)
        }
        _ => Duration::ZERO,
    };
    if available.is_zero() || estimated > available {
        return Err(ClassifyObjectError::Deadline {
            classified,
            elapsed_ms: duration_ms(elapsed),
            estimated_ms: duration_ms(estimated),
            available_ms: duration_ms(available),
        });
    }
    Ok(())
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use tweets::{SourceRef, Tweet};

    use super::*;
    use crate::memory::{KeywordClassifier, MemoryBuckets};
    use crate::ports::Buckets;
    use crate::text_lines::EMPTY_TEXT;

    const BUCKET: &str = "tweets";

    fn tweet(id: &str, text: &str, created_at: Option<&str>) -> String {
        let tweet = Tweet {
            id: id.to_owned(),
            created_at: created_at.map(|at| at.parse().expect("RFC 3339")),
            author_id: Some("42".to_owned()),
            author_handle: Some("someone".to_owned()),
            lang: Some("en".to_owned()),
            text: text.to_owned(),
            clean_text: text.to_lowercase(),
            is_retweet: false,
            is_quote: false,
            is_reply: false,
            hashtags: Vec::new(),
            mentions: Vec::new(),
            urls: Vec::new(),
            source: SourceRef {
                key: "raw/day one.json".to_owned(),
                index: id.parse().expect("numeric id"),
                offset: 0,
                line: 1,
            },
        };
        serde_json::to_string(&tweet).expect("serializable")
    }

    fn clean_object() -> String {
        [
            tweet("1", "I love this airline", Some("2024-05-01T10:00:00Z")),
            tweet("2", "I hate waiting", Some("2024-05-02T23:59:59Z")),
            "{\"id\": \"3\", \"text\": \"no other fields\"}".to_owned(),
            String::new(),
            tweet("4", "boarding now", None),
            tweet("5", "love the crew", Some("2024-05-01T08:00:00Z")),
        ]
        .join("\n")
    }

    fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON line"))
            .collect()
    }

    async fn classify(
        buckets: &MemoryBuckets,
        classifier: &KeywordClassifier,
        key: &str,
        finish_by: Option<Instant>,
    ) -> Result<ClassifyManifest, ClassifyObjectError> {
        let bucket = buckets.bucket(BUCKET);
        let config = ClassifyConfig {
            batch_size: 2,
            ..ClassifyConfig::default()
        };
        classify_object(&bucket, &bucket, classifier, key, &config, finish_by).await
    }

    #[tokio::test]
    async fn every_tweet_ends_as_one_prediction_or_one_rejection() {
        let buckets = MemoryBuckets::new();
        buckets.insert(BUCKET, "clean/day one.json.jsonl", clean_object());
        let classifier = KeywordClassifier::default();
        let manifest = classify(&buckets, &classifier, "clean/day one.json.jsonl", None)
            .await
            .expect("classified");

        assert_eq!(
            (manifest.tweets_in, manifest.predicted, manifest.rejected),
            (5, 4, 1)
        );
        assert_eq!(
            manifest.label_counts,
            BTreeMap::from([
                ("negative".to_owned(), 1),
                ("neutral".to_owned(), 1),
                ("positive".to_owned(), 2)
            ])
        );
        assert_eq!(classifier.calls(), vec![2, 2]);

        let predictions = lines(
            &buckets
                .object(BUCKET, "predictions/day one.json.jsonl")
                .expect("predictions"),
        );
        let ids: Vec<&str> = predictions
            .iter()
            .filter_map(|record| record["id"].as_str())
            .collect();
        assert_eq!(ids, vec!["1", "2", "4", "5"]);
        assert_eq!(predictions[0]["label"], "positive");
        assert_eq!(predictions[0]["text"], "I love this airline");
        assert_eq!(predictions[0]["model_name"], "keywords");
        assert_eq!(predictions[0]["source_key"], "raw/day one.json");
        assert_eq!(predictions[1]["scores"]["negative"], 0.8);

        let rejected = lines(
            &buckets
                .object(BUCKET, "predictions-rejected/day one.json.jsonl")
                .expect("rejections"),
        );
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0]["source"]["line"], 3);
        assert!(
            rejected[0]["error"]
                .as_str()
                .is_some_and(|error| error.contains("not a normalized tweet record")),
            "{}",
            rejected[0]
        );

        assert_eq!(
            manifest.outputs.parquet,
            vec![
                "predictions-parquet/dt=2024-05-01/day one.json.parquet",
                "predictions-parquet/dt=2024-05-02/day one.json.parquet",
                "predictions-parquet/dt=undated/day one.json.parquet",
            ]
        );
        let first_day = read_parquet(
            &buckets
                .object(BUCKET, &manifest.outputs.parquet[0])
                .expect("parquet"),
        );
        assert_eq!(first_day.num_rows(), 2);
        let ids = first_day
            .column_by_name("id")
            .and_then(|column| column.as_any().downcast_ref::<arrow_array::StringArray>())
            .expect("string ids");
        assert_eq!(ids.value(0), "1");
        assert_eq!(ids.value(1), "5");
        let labels = first_day
            .column_by_name("label")
            .and_then(|column| column.as_any().downcast_ref::<arrow_array::StringArray>())
            .expect("string labels");
        assert_eq!(labels.value(0), "positive");
        let created = first_day
            .column_by_name("created_at")
            .and_then(|column| {
                column
                    .as_any()
                    .downcast_ref::<arrow_array::TimestampMillisecondArray>()
            })
            .expect("timestamps");
        assert_eq!(created.value(0), 1_714_557_600_000);
        let scores = first_day
            .column_by_name("scores")
            .and_then(|column| column.as_any().downcast_ref::<arrow_array::MapArray>())
            .expect("score map");
        assert_eq!(arrow_array::Array::len(&scores.value(0)), 3);

        let stored: ClassifyManifest = serde_json::from_slice(
            &buckets
                .object(BUCKET, "manifests/classify/day one.json.manifest.json")
                .expect("manifest"),
        )
        .expect("manifest parses");
        assert_eq!(stored, manifest);
    }

    fn read_parquet(bytes: &[u8]) -> arrow_array::RecordBatch {
        let mut reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes.to_vec()))
            .expect("valid Parquet")
            .build()
            .expect("reader");
        let batch = reader.next().expect("one batch").expect("readable");
        assert!(reader.next().is_none());
        batch
    }

    /// Classifies a clean object of three undated tweets with these texts; what it left.
    async fn classify_three(
        key: &str,
        texts: [&str; 3],
    ) -> (MemoryBuckets, KeywordClassifier, ClassifyManifest) {
        let buckets = MemoryBuckets::new();
        let lines: Vec<String> = (1..)
            .zip(texts)
            .map(|(id, text)| tweet(&id.to_string(), text, None))
            .collect();
        buckets.insert(BUCKET, key, lines.join("\n"));
        let classifier = KeywordClassifier::default();
        let manifest = classify(&buckets, &classifier, key, None)
            .await
            .expect("classified");
        (buckets, classifier, manifest)
    }

    #[tokio::test]
    async fn a_text_the_classifier_refuses_is_rejected_alone() {
        let (buckets, classifier, manifest) =
            classify_three("clean/p.jsonl", ["love it", "POISON text", "hate it"]).await;
        assert_eq!((manifest.predicted, manifest.rejected), (2, 1));
        // The failing batch of two, then its texts one by one, then the last batch.
        assert_eq!(classifier.calls(), vec![2, 1, 1, 1]);
        let rejected = lines(
            &buckets
                .object(BUCKET, "predictions-rejected/p.jsonl")
                .expect("rejections"),
        );
        assert_eq!(rejected[0]["source"]["index"], 1);
        assert!(
            rejected[0]["raw"]
                .as_str()
                .is_some_and(|raw| raw.contains("POISON"))
        );
    }

    #[tokio::test]
    async fn a_record_with_nothing_to_classify_is_rejected_not_labelled() {
        let (buckets, classifier, manifest) =
            classify_three("clean/e.jsonl", ["love it", " \t ", ""]).await;
        assert_eq!(
            (manifest.tweets_in, manifest.predicted, manifest.rejected),
            (3, 1, 2)
        );
        assert_eq!(
            classifier.calls(),
            vec![1],
            "only the real text reached the model"
        );
        let rejected = lines(
            &buckets
                .object(BUCKET, "predictions-rejected/e.jsonl")
                .expect("rejections"),
        );
        let errors: Vec<(&serde_json::Value, &str)> = rejected
            .iter()
            .map(|line| {
                (
                    &line["source"]["line"],
                    line["error"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            errors,
            vec![
                (&serde_json::json!(2), EMPTY_TEXT),
                (&serde_json::json!(3), EMPTY_TEXT)
            ]
        );
    }

    #[tokio::test]
    async fn a_throttled_classifier_is_retryable_and_nothing_is_written() {
        let buckets = MemoryBuckets::new();
        buckets.insert(BUCKET, "clean/t.jsonl", tweet("1", "love", None));
        let classifier = KeywordClassifier::default();
        classifier.fail_next_calls(1);
        let error = classify(&buckets, &classifier, "clean/t.jsonl", None)
            .await
            .expect_err("throttled");
        assert!(error.is_retryable());
        assert_eq!(buckets.keys(BUCKET), vec!["clean/t.jsonl"]);
    }

    #[tokio::test]
    async fn a_passed_deadline_fails_retryably_before_any_output() {
        let buckets = MemoryBuckets::new();
        buckets.insert(BUCKET, "clean/d.jsonl", clean_object());
        let classifier = KeywordClassifier::default();
        let error = classify(&buckets, &classifier, "clean/d.jsonl", Some(Instant::now()))
            .await
            .expect_err("out of time");
        assert!(matches!(error, ClassifyObjectError::Deadline { .. }));
        assert!(error.is_retryable());
        assert!(error.to_string().contains("raise the function timeout"));
        assert!(classifier.calls().is_empty());
        assert_eq!(buckets.keys(BUCKET), vec!["clean/d.jsonl"]);
    }

    #[test]
    fn the_pace_so_far_predicts_a_missed_deadline() {
        let started = Instant::now() - Duration::from_secs(10);
        // A tenth of the object took 10 s; 90 s more cannot fit in 30 s.
        let finish_by = Some(Instant::now() + Duration::from_secs(30));
        let error =
            check_deadline(finish_by, started, 100, 1_000, Some(10_000)).expect_err("too slow");
        let ClassifyObjectError::Deadline { estimated_ms, .. } = error else {
            panic!("expected a deadline error, got {error:?}");
        };
        assert!((89_000..=91_000).contains(&estimated_ms), "{estimated_ms}");
        // Nine tenths done: 1.1 s more fits.
        assert!(check_deadline(finish_by, started, 900, 9_000, Some(10_000)).is_ok());
        assert!(check_deadline(None, started, 0, 0, None).is_ok());
    }

    #[tokio::test]
    async fn redelivery_rewrites_identical_outputs() {
        let buckets = MemoryBuckets::new();
        buckets.insert(BUCKET, "clean/r.jsonl", clean_object());
        let classifier = KeywordClassifier::default();
        let snapshot = |buckets: &MemoryBuckets| {
            buckets
                .keys(BUCKET)
                .into_iter()
                .filter(|key| !key.starts_with("manifests/"))
                .map(|key| (buckets.object(BUCKET, &key), key))
                .collect::<Vec<_>>()
        };
        classify(&buckets, &classifier, "clean/r.jsonl", None)
            .await
            .expect("first");
        let first = snapshot(&buckets);
        classify(&buckets, &classifier, "clean/r.jsonl", None)
            .await
            .expect("second");
        assert_eq!(first.len(), 6);
        assert_eq!(first, snapshot(&buckets));
    }

    #[tokio::test]
    async fn keys_outside_the_clean_prefix_are_refused_without_reading() {
        let buckets = MemoryBuckets::new();
        buckets.insert(BUCKET, "predictions/x.jsonl", tweet("1", "love", None));
        let classifier = KeywordClassifier::default();
        let error = classify(&buckets, &classifier, "predictions/x.jsonl", None)
            .await
            .expect_err("refused");
        assert!(matches!(
            error,
            ClassifyObjectError::Key(KeyError::OutsideTrigger { .. })
        ));
        assert!(!error.is_retryable());
        assert!(classifier.calls().is_empty());
    }
}
