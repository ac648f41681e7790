//! The ingest use case: one raw object in, `clean/`, `rejected/`, `filtered/` and a manifest
//! out, over any store that implements the ports.

use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_util::io::SyncIoBridge;
use tweets::{IngestOptions, Report};

use crate::config::IngestConfig;
use crate::keys::{IngestKeys, KeyError};
use crate::ports::{DeleteObject, ListObjects, Payload, ReadObject, StoreError, WriteObject};

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
    /// The kept tweets in order, split into parts of at most `CLEAN_PART_MAX_TWEETS`; each
    /// part is classified by its own invocation. Always at least one (maybe empty) part.
    pub clean_parts: Vec<String>,
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
pub enum IngestObjectError {
    /// The key is not one this function handles; nothing was read or written.
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("processing the object failed")]
    Process(#[from] tweets::IngestStreamError),
    #[error("the processing task stopped unexpectedly")]
    Task(#[from] tokio::task::JoinError),
}

impl IngestObjectError {
    /// Whether the same event may succeed later: Lambda should retry it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Key(_) => false,
            Self::Store(error) => error.is_retryable(),
            Self::Process(tweets::IngestStreamError::Conservation { .. }) => false,
            Self::Process(_) | Self::Task(_) => true,
        }
    }
}

/// What one ingest did: its manifest, and the outputs of earlier ingests of the same object
/// that it deleted because this one superseded them.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub manifest: IngestManifest,
    /// Clean parts of an earlier ingest that split the object differently: their own
    /// downstream outputs are stale too (classify removes them when told of the deletion).
    pub removed_parts: Vec<String>,
}

/// Ingests `raw_key` from `source` into `sink` (the same bucket in Lambda, two folders on a
/// laptop). The raw object's content decides every output byte except the manifest's timing,
/// so a redelivered event rewrites identical objects; outputs of an earlier ingest that this
/// one does not rewrite (parts of another split, an old rejection file) are deleted before
/// the manifest is written.
pub async fn ingest_object(
    source: &impl ReadObject,
    sink: &(impl WriteObject + ListObjects + DeleteObject),
    raw_key: &str,
    config: &IngestConfig,
) -> Result<Ingested, IngestObjectError> {
    let keys = config.prefixes.ingest_keys(raw_key)?;
    let started = Instant::now();
    let body = source.get(raw_key).await?;
    let reader = SyncIoBridge::new(body.reader);
    let key = raw_key.to_owned();
    let options = config.options.clone();
    let part_max_tweets = config.part_max_tweets;
    let (report, outputs) = tokio::task::spawn_blocking(move || {
        let mut outputs = Outputs::new(part_max_tweets);
        let report = tweets::ingest_stream(
            &key,
            reader,
            body.len,
            &options,
            &mut outputs.clean,
            &mut outputs.rejected,
            &mut outputs.filtered,
        )?;
        Ok::<_, tweets::IngestStreamError>((report, outputs))
    })
    .await??;
    let read_parse = elapsed_ms(started);

    let started = Instant::now();
    let part_count = outputs.clean.parts.len();
    let mut manifest = IngestManifest::new(
        raw_key,
        IngestOutputs {
            clean_parts: (0..part_count)
                .map(|index| keys.clean_part(index, part_count))
                .collect(),
            rejected: (report.rejected > 0).then(|| keys.rejected.clone()),
            filtered: (report.filtered_total() > 0).then(|| keys.filtered.clone()),
            manifest: keys.manifest.clone(),
        },
        report,
        &config.options,
    );
    write_outputs(sink, &keys, &manifest, outputs).await?;
    let removed_parts = remove_stale_parts(sink, &keys, &manifest.outputs.clean_parts).await?;
    manifest.timing_ms = IngestTiming {
        read_parse,
        write: elapsed_ms(started),
    };
    sink.put(&keys.manifest, json_payload(&manifest), JSON)
        .await?;
    Ok(Ingested {
        manifest,
        removed_parts,
    })
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
struct Outputs {
    clean: CleanParts,
    rejected: Payload,
    filtered: Payload,
}

impl Outputs {
    fn new(part_max_tweets: NonZeroUsize) -> Self {
        Self {
            clean: CleanParts {
                max_lines: part_max_tweets.get(),
                parts: vec![Payload::new()],
                lines_in_last: 0,
            },
            rejected: Payload::new(),
            filtered: Payload::new(),
        }
    }
}

/// Clean JSON Lines cut into parts of at most `max_lines` lines, at line ends whatever
/// the writes' sizes. Finished parts spill to disk, so memory holds one part at most.
struct CleanParts {
    max_lines: usize,
    /// Never empty: an object with no kept tweet still has its one (empty) part.
    parts: Vec<Payload>,
    lines_in_last: usize,
}

impl Write for CleanParts {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.lines_in_last == self.max_lines {
                if let Some(full) = self.parts.last_mut() {
                    full.spill()?;
                }
                self.parts.push(Payload::new());
                self.lines_in_last = 0;
            }
            // Up to and including the next line end, or all that is left.
            let end = rest
                .iter()
                .position(|byte| *byte == b'\n')
                .map_or(rest.len(), |at| at + 1);
            let (line, after) = rest.split_at(end);
            if let Some(part) = self.parts.last_mut() {
                part.write_all(line)?;
            }
            if line.ends_with(b"\n") {
                self.lines_in_last += 1;
            }
            rest = after;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.parts.iter_mut().try_for_each(Payload::flush)
    }
}

async fn write_outputs(
    sink: &(impl WriteObject + DeleteObject),
    keys: &IngestKeys,
    manifest: &IngestManifest,
    outputs: Outputs,
) -> Result<(), StoreError> {
    for (key, part) in manifest.outputs.clean_parts.iter().zip(outputs.clean.parts) {
        sink.put(key, part, JSON_LINES).await?;
    }
    // An earlier ingest's rejections or filter trail must not outlive it: write or delete.
    for (written, key, payload) in [
        (&manifest.outputs.rejected, &keys.rejected, outputs.rejected),
        (&manifest.outputs.filtered, &keys.filtered, outputs.filtered),
    ] {
        if written.is_some() {
            sink.put(key, payload, JSON_LINES).await?;
        } else {
            sink.delete(key).await?;
        }
    }
    Ok(())
}

/// Deletes this object's clean parts that the current ingest did not write: those of an
/// earlier ingest that split it into a different number of parts.
async fn remove_stale_parts(
    sink: &(impl ListObjects + DeleteObject),
    keys: &IngestKeys,
    current: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut stale = sink.list(&keys.clean_parts).await?;
    stale.retain(|key| keys.is_clean_part(key) && !current.contains(key));
    for key in &stale {
        sink.delete(key).await?;
    }
    Ok(stale)
}

/// Pretty JSON with a final newline, as manifests are stored.
pub(crate) fn json_payload(value: &impl Serialize) -> Payload {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_else(|error| {
        // Manifests are plain data; serializing them cannot fail short of a bug.
        format!("{{\"error\": \"manifest could not be serialized: {error}\"}}").into_bytes()
    });
    bytes.push(b'\n');
    Payload::from(bytes)
}

/// Milliseconds since `since`, for manifests and logs.
pub(crate) fn elapsed_ms(since: Instant) -> u64 {
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
        .expect("ingested")
        .manifest;

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
                .object(BUCKET, "clean/day one/a+b.jsonl/part-00000-of-00001.jsonl")
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
            .expect("ingested")
            .manifest;
        assert_eq!(manifest.outputs.rejected, None);
        assert_eq!(
            buckets.keys(BUCKET),
            vec![
                "clean/ok.json/part-00000-of-00001.jsonl",
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
            buckets.object(BUCKET, "clean/x.jsonl/part-00000-of-00001.jsonl"),
            buckets.object(BUCKET, "rejected/x.jsonl.jsonl"),
        );
        ingest_object(&bucket, &bucket, "raw/x.jsonl", &config)
            .await
            .expect("second");
        let second = (
            buckets.object(BUCKET, "clean/x.jsonl/part-00000-of-00001.jsonl"),
            buckets.object(BUCKET, "rejected/x.jsonl.jsonl"),
        );
        assert!(first.0.is_some() && first.1.is_some());
        assert_eq!(first, second);
    }

    /// `count` one-line tweets with ids `0..count`.
    fn tweets(count: usize) -> String {
        (0..count)
            .map(|id| format!("{{\"id_str\":\"{id}\",\"text\":\"tweet number {id} here\"}}\n"))
            .collect()
    }

    fn ids_in(buckets: &MemoryBuckets, keys: &[String]) -> Vec<Vec<String>> {
        keys.iter()
            .map(|key| {
                lines(&buckets.object(BUCKET, key).expect("part stored"))
                    .iter()
                    .map(|line| line["id"].as_str().expect("id").to_owned())
                    .collect()
            })
            .collect()
    }

    fn parts_of(max_tweets: usize) -> IngestConfig {
        IngestConfig {
            part_max_tweets: NonZeroUsize::new(max_tweets).expect("positive"),
            ..IngestConfig::default()
        }
    }

    #[tokio::test]
    async fn big_objects_are_split_into_parts_in_order() {
        let buckets = MemoryBuckets::new();
        buckets.insert(BUCKET, "raw/big.jsonl", tweets(7));
        let bucket = buckets.bucket(BUCKET);
        let manifest = ingest_object(&bucket, &bucket, "raw/big.jsonl", &parts_of(3))
            .await
            .expect("ingested")
            .manifest;
        assert_eq!(
            manifest.outputs.clean_parts,
            [
                "clean/big.jsonl/part-00000-of-00003.jsonl",
                "clean/big.jsonl/part-00001-of-00003.jsonl",
                "clean/big.jsonl/part-00002-of-00003.jsonl",
            ]
        );
        assert_eq!(
            ids_in(&buckets, &manifest.outputs.clean_parts),
            [vec!["0", "1", "2"], vec!["3", "4", "5"], vec!["6"]]
        );
        assert_eq!(manifest.report.kept, 7);
    }

    #[tokio::test]
    async fn an_exact_multiple_makes_no_empty_part_and_nothing_kept_makes_one() {
        let buckets = MemoryBuckets::new();
        buckets.insert(BUCKET, "raw/six.jsonl", tweets(6));
        buckets.insert(BUCKET, "raw/none.jsonl", "not json\n");
        let bucket = buckets.bucket(BUCKET);
        let six = ingest_object(&bucket, &bucket, "raw/six.jsonl", &parts_of(3))
            .await
            .expect("ingested")
            .manifest;
        assert_eq!(six.outputs.clean_parts.len(), 2);
        let none = ingest_object(&bucket, &bucket, "raw/none.jsonl", &parts_of(3))
            .await
            .expect("ingested")
            .manifest;
        assert_eq!(
            none.outputs.clean_parts,
            ["clean/none.jsonl/part-00000-of-00001.jsonl"]
        );
        assert_eq!(
            ids_in(&buckets, &none.outputs.clean_parts),
            [Vec::<String>::new()]
        );
    }

    #[test]
    fn parts_are_cut_at_line_ends_whatever_the_write_sizes() {
        let text = tweets(10);
        for chunk in [1, 7, 64, text.len()] {
            let mut parts = Outputs::new(NonZeroUsize::new(4).expect("positive")).clean;
            for piece in text.as_bytes().chunks(chunk) {
                parts.write_all(piece).expect("write");
            }
            let sizes: Vec<usize> = parts
                .parts
                .into_iter()
                .map(|part| lines(&part.into_bytes().expect("bytes")).len())
                .collect();
            assert_eq!(sizes, [4, 4, 2], "writes of {chunk} bytes");
        }
    }

    #[tokio::test]
    async fn a_re_ingest_that_splits_differently_deletes_the_old_parts_and_trails() {
        let buckets = MemoryBuckets::new();
        buckets.insert(BUCKET, "raw/x.jsonl", format!("{}not json\n", tweets(5)));
        // Another raw object whose parts share the prefix's start: never touched.
        buckets.insert(BUCKET, "raw/x.jsonl/part-1", tweets(1));
        let bucket = buckets.bucket(BUCKET);
        ingest_object(&bucket, &bucket, "raw/x.jsonl/part-1", &parts_of(2))
            .await
            .expect("neighbour ingested");
        let first = ingest_object(&bucket, &bucket, "raw/x.jsonl", &parts_of(2))
            .await
            .expect("first");
        assert_eq!(first.manifest.outputs.clean_parts.len(), 3);
        assert!(first.removed_parts.is_empty());
        assert!(buckets.object(BUCKET, "rejected/x.jsonl.jsonl").is_some());

        buckets.insert(BUCKET, "raw/x.jsonl", tweets(5));
        let second = ingest_object(&bucket, &bucket, "raw/x.jsonl", &parts_of(4))
            .await
            .expect("second");
        assert_eq!(second.removed_parts, first.manifest.outputs.clean_parts);
        assert_eq!(second.manifest.outputs.rejected, None);
        let clean: Vec<String> = buckets
            .keys(BUCKET)
            .into_iter()
            .filter(|key| key.starts_with("clean/"))
            .collect();
        assert_eq!(
            clean,
            [
                "clean/x.jsonl/part-00000-of-00002.jsonl",
                "clean/x.jsonl/part-00001-of-00002.jsonl",
                "clean/x.jsonl/part-1/part-00000-of-00001.jsonl",
            ]
        );
        assert_eq!(buckets.object(BUCKET, "rejected/x.jsonl.jsonl"), None);
        let again = ingest_object(&bucket, &bucket, "raw/x.jsonl", &parts_of(4))
            .await
            .expect("redelivered");
        assert!(again.removed_parts.is_empty());
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
            IngestObjectError::Key(KeyError::OutsideTrigger { .. })
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
            IngestObjectError::Store(StoreError::NotFound { .. })
        ));
    }
}
