//! The ingest use case: one raw object in, `clean/`, `rejected/`, `filtered/` and a manifest
//! out, over any store that implements the ports.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_util::io::SyncIoBridge;
use tweets::{IngestOptions, Report};

use crate::config::IngestConfig;
use crate::keys::{IngestKeys, KeyError};
use crate::ports::{Payload, ReadObject, StoreError, WriteObject};

pub const JSON_LINES: &str = "application/x-ndjson";
pub const JSON: &str = "application/json";

/// What ingest did with one object; written last, so its presence means the outputs are
/// complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestManifest {
    /// The raw object's key.
    pub input: String,
    pub outputs: IngestOutputs,
    /// `records_in == kept + Σ filtered + rejected`.
    #[serde(flatten)]
    pub report: Report,
    pub cleaning_version: String,
    pub options: IngestOptions,
    /// Wall-clock split; the only part that differs between two runs on the same object.
    pub timing_ms: IngestTiming,
    pub tool_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOutputs {
    pub clean: String,
    /// Written only when something was rejected.
    pub rejected: Option<String>,
    /// Written only when something was filtered: one line per filtered record.
    #[serde(default)]
    pub filtered: Option<String>,
    pub manifest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IngestTiming {
    /// Reading, decompressing, parsing, cleaning and filtering (one streaming pass).
    pub read_parse: u64,
    pub write: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The key is not one this function handles; nothing was read or written.
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("processing the object failed")]
    Process(#[from] tweets::IngestError),
    #[error("the processing task stopped unexpectedly")]
    Task(#[from] tokio::task::JoinError),
}

impl IngestError {
    /// Whether the same event may succeed later: Lambda should retry it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Key(_) => false,
            Self::Store(error) => error.is_retryable(),
            Self::Process(tweets::IngestError::Conservation { .. }) => false,
            Self::Process(_) | Self::Task(_) => true,
        }
    }
}

/// Ingests `raw_key` from `source` into `sink` (the same bucket in Lambda, two folders on a
/// laptop). The raw object's content decides every output byte except the manifest's timing,
/// so a redelivered event rewrites identical objects.
pub async fn ingest_object(
    source: &impl ReadObject,
    sink: &impl WriteObject,
    raw_key: &str,
    config: &IngestConfig,
) -> Result<IngestManifest, IngestError> {
    let keys = config.prefixes.ingest_keys(raw_key)?;
    let started = Instant::now();
    let body = source.get(raw_key).await?;
    let reader = SyncIoBridge::new(body.reader);
    let key = raw_key.to_owned();
    let options = config.options.clone();
    let (report, outputs) = tokio::task::spawn_blocking(move || {
        let mut outputs = Outputs::default();
        let report = tweets::ingest_stream(
            &key,
            reader,
            body.len,
            &options,
            &mut outputs.clean,
            &mut outputs.rejected,
            &mut outputs.filtered,
        )?;
        Ok::<_, tweets::IngestError>((report, outputs))
    })
    .await??;
    let read_parse = elapsed_ms(started);

    let started = Instant::now();
    let mut manifest = IngestManifest::new(
        raw_key,
        IngestOutputs {
            clean: keys.clean.clone(),
            rejected: (report.rejected > 0).then(|| keys.rejected.clone()),
            filtered: (report.filtered_total() > 0).then(|| keys.filtered.clone()),
            manifest: keys.manifest.clone(),
        },
        report,
        &config.options,
    );
    write_outputs(sink, &keys, &manifest, outputs).await?;
    manifest.timing_ms = IngestTiming {
        read_parse,
        write: elapsed_ms(started),
    };
    sink.put(&keys.manifest, json_payload(&manifest), JSON)
        .await?;
    Ok(manifest)
}

impl IngestManifest {
    /// A manifest with no timing yet.
    pub fn new(
        input: &str,
        outputs: IngestOutputs,
        report: Report,
        options: &IngestOptions,
    ) -> Self {
        Self {
            input: input.to_owned(),
            outputs,
            report,
            cleaning_version: options.cleaning.version.as_str().to_owned(),
            options: options.clone(),
            timing_ms: IngestTiming::default(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// What ingest writes besides the manifest, filled while the object streams through.
#[derive(Default)]
struct Outputs {
    clean: Payload,
    rejected: Payload,
    filtered: Payload,
}

async fn write_outputs(
    sink: &impl WriteObject,
    keys: &IngestKeys,
    manifest: &IngestManifest,
    outputs: Outputs,
) -> Result<(), StoreError> {
    sink.put(&keys.clean, outputs.clean, JSON_LINES).await?;
    if manifest.outputs.rejected.is_some() {
        sink.put(&keys.rejected, outputs.rejected, JSON_LINES)
            .await?;
    }
    if manifest.outputs.filtered.is_some() {
        sink.put(&keys.filtered, outputs.filtered, JSON_LINES)
            .await?;
    }
    Ok(())
}

/// Pretty JSON with a final newline, as manifests are stored.
pub fn json_payload(value: &impl Serialize) -> Payload {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_else(|error| {
        // Manifests are plain data; serializing them cannot fail short of a bug.
        format!("{{\"error\": \"manifest could not be serialized: {error}\"}}").into_bytes()
    });
    bytes.push(b'\n');
    Payload::from(bytes)
}

/// Milliseconds since `since`, for manifests and logs.
pub fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBuckets;
    use crate::ports::Buckets;
    use tweets::FilterReason;

    const BUCKET: &str = "tweets";

    fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON line"))
            .collect()
    }

    #[tokio::test]
    async fn writes_clean_rejected_and_manifest_with_conserved_counts() {
        let buckets = MemoryBuckets::new();
        buckets.insert(
            BUCKET,
            "raw/day one/a+b.jsonl",
            "{\"id_str\":\"1\",\"text\":\"Loved the crew on this flight\",\"lang\":\"en\"}\n\
             {\"id_str\":\"2\",\"text\": 5}\n\
             {\"id_str\":\"3\",\"text\":\"RT @x: hi there\",\"retweeted_status\":{\"id_str\":\"9\",\"text\":\"hi there\",\"user\":{\"screen_name\":\"x\"}}}\n\
             {\"delete\":{\"status\":{\"id_str\":\"7\"}}}\n",
        );
        let bucket = buckets.bucket(BUCKET);
        let manifest = ingest_object(
            &bucket,
            &bucket,
            "raw/day one/a+b.jsonl",
            &IngestConfig::default(),
        )
        .await
        .expect("ingested");

        assert_eq!(manifest.report.records_in, 4);
        assert_eq!(manifest.report.kept, 1);
        assert_eq!(manifest.report.rejected, 1);
        assert_eq!(
            manifest.report.filtered.get(&FilterReason::Retweet),
            Some(&1)
        );
        assert_eq!(
            manifest.report.filtered.get(&FilterReason::NotATweet),
            Some(&1)
        );
        assert!(manifest.report.is_conserved());

        let clean = lines(
            &buckets
                .object(BUCKET, "clean/day one/a+b.jsonl.jsonl")
                .expect("clean"),
        );
        assert_eq!(clean.len(), 1);
        assert_eq!(clean[0]["id"], "1");
        assert_eq!(clean[0]["source"]["key"], "raw/day one/a+b.jsonl");
        let rejected = lines(
            &buckets
                .object(BUCKET, "rejected/day one/a+b.jsonl.jsonl")
                .expect("rejected"),
        );
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0]["source"]["line"], 2);
        let filtered = lines(
            &buckets
                .object(BUCKET, "filtered/day one/a+b.jsonl.jsonl")
                .expect("filtered"),
        );
        let reasons: Vec<(&serde_json::Value, &serde_json::Value, &serde_json::Value)> = filtered
            .iter()
            .map(|line| (&line["id"], &line["reason"], &line["source"]["line"]))
            .collect();
        assert_eq!(
            reasons,
            [
                (&"3".into(), &"retweet".into(), &3.into()),
                (&serde_json::Value::Null, &"not_a_tweet".into(), &4.into())
            ]
        );
        assert!(
            rejected[0]["error"]
                .as_str()
                .is_some_and(|error| error.contains("field `text`"))
        );
        let stored: IngestManifest = serde_json::from_slice(
            &buckets
                .object(BUCKET, "manifests/ingest/day one/a+b.jsonl.manifest.json")
                .expect("manifest"),
        )
        .expect("manifest parses");
        assert_eq!(stored, manifest);
    }

    #[tokio::test]
    async fn nothing_rejected_means_no_rejected_object() {
        let buckets = MemoryBuckets::new();
        buckets.insert(
            BUCKET,
            "raw/ok.json",
            "{\"id_str\":\"1\",\"text\":\"a fine tweet\"}",
        );
        let bucket = buckets.bucket(BUCKET);
        let manifest = ingest_object(&bucket, &bucket, "raw/ok.json", &IngestConfig::default())
            .await
            .expect("ingested");
        assert_eq!(manifest.outputs.rejected, None);
        assert_eq!(
            buckets.keys(BUCKET),
            vec![
                "clean/ok.json.jsonl",
                "manifests/ingest/ok.json.manifest.json",
                "raw/ok.json"
            ]
        );
    }

    #[tokio::test]
    async fn redelivery_rewrites_identical_outputs() {
        let buckets = MemoryBuckets::new();
        buckets.insert(
            BUCKET,
            "raw/x.jsonl",
            "{\"id_str\":\"1\",\"text\":\"first tweet here\"}\nnot json\n",
        );
        let bucket = buckets.bucket(BUCKET);
        let config = IngestConfig::default();
        ingest_object(&bucket, &bucket, "raw/x.jsonl", &config)
            .await
            .expect("first");
        let first = (
            buckets.object(BUCKET, "clean/x.jsonl.jsonl"),
            buckets.object(BUCKET, "rejected/x.jsonl.jsonl"),
        );
        ingest_object(&bucket, &bucket, "raw/x.jsonl", &config)
            .await
            .expect("second");
        let second = (
            buckets.object(BUCKET, "clean/x.jsonl.jsonl"),
            buckets.object(BUCKET, "rejected/x.jsonl.jsonl"),
        );
        assert!(first.0.is_some() && first.1.is_some());
        assert_eq!(first, second);
    }

    #[tokio::test]
    async fn transient_read_failure_is_retryable_and_writes_nothing() {
        let buckets = MemoryBuckets::new();
        buckets.insert(
            BUCKET,
            "raw/x.json",
            "{\"id_str\":\"1\",\"text\":\"hello there\"}",
        );
        buckets.fail_next_reads(1);
        let bucket = buckets.bucket(BUCKET);
        let error = ingest_object(&bucket, &bucket, "raw/x.json", &IngestConfig::default())
            .await
            .expect_err("fails");
        assert!(error.is_retryable());
        assert_eq!(buckets.keys(BUCKET), vec!["raw/x.json"]);
    }

    #[tokio::test]
    async fn keys_outside_the_raw_prefix_are_refused_without_reading() {
        let buckets = MemoryBuckets::new();
        let bucket = buckets.bucket(BUCKET);
        let error = ingest_object(&bucket, &bucket, "clean/x.jsonl", &IngestConfig::default())
            .await
            .expect_err("refused");
        assert!(matches!(
            error,
            IngestError::Key(KeyError::OutsideTrigger { .. })
        ));
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn missing_object_is_not_found() {
        let buckets = MemoryBuckets::new();
        let bucket = buckets.bucket(BUCKET);
        let error = ingest_object(&bucket, &bucket, "raw/gone.json", &IngestConfig::default())
            .await
            .expect_err("missing");
        assert!(matches!(
            error,
            IngestError::Store(StoreError::NotFound { .. })
        ));
    }
}
