//! Classify's outputs follow their input out: when a clean part is deleted (a re-ingest
//! split its raw object differently), the predictions made from it are deleted too, so no
//! query counts a tweet twice.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::classify::{ClassifyManifest, ClassifyObjectError};
use crate::keys::{ClassifyKeys, Prefixes};
use crate::parquet_table::partition_day;
use crate::ports::{DeleteObject, ListObjects, ReadObject, ReadWholeError, StoreError, read_whole};

/// What retracting one deleted clean object did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retraction {
    /// The clean object exists again (re-created after the deletion was reported): its
    /// outputs are current and were kept.
    InputPresent,
    /// None of its outputs exists (never classified, or already retracted): nothing deleted.
    NothingToRetract,
    /// The outputs that existed, deleted, the manifest last.
    Deleted { keys: Vec<String> },
}

/// Deletes what classify wrote for `clean_key` once that object is gone: every Parquet
/// partition its manifest lists (or, once manifests have expired, the days of the tweets in
/// its predictions), predictions, rejections, then the manifest — so an interrupted
/// retraction is retried with what says where the Parquet files are still there.
///
/// Presence is asked by listing, never by reading: without `s3:ListBucket` S3 answers a read
/// of a missing key with 403, not 404, and only a listing tells what exists.
pub async fn retract_classify_outputs(
    store: &(impl ReadObject + ListObjects + DeleteObject),
    clean_key: &str,
    prefixes: &Prefixes,
) -> Result<Retraction, ClassifyObjectError> {
    let keys = prefixes.classify_keys(clean_key)?;
    if exists(store, clean_key).await? {
        return Ok(Retraction::InputPresent);
    }
    let mut candidates = match read_manifest(store, &keys.manifest).await? {
        Some(manifest) => manifest.outputs.parquet,
        None => parquet_keys_of_predictions(store, &keys).await?,
    };
    candidates.extend([
        keys.predictions.clone(),
        keys.rejected.clone(),
        keys.manifest,
    ]);
    let mut deleted = Vec::new();
    for key in candidates {
        if exists(store, &key).await? {
            store.delete(&key).await?;
            deleted.push(key);
        }
    }
    Ok(if deleted.is_empty() {
        Retraction::NothingToRetract
    } else {
        Retraction::Deleted { keys: deleted }
    })
}

async fn exists(store: &impl ListObjects, key: &str) -> Result<bool, StoreError> {
    Ok(store.list(key).await?.iter().any(|listed| listed == key))
}

async fn read_manifest(
    store: &(impl ReadObject + ListObjects),
    key: &str,
) -> Result<Option<ClassifyManifest>, ClassifyObjectError> {
    let Some(bytes) = read_if_present(store, key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| ClassifyObjectError::Read(error.into()))
}

/// The Parquet files of the days the predictions' tweets were posted on.
async fn parquet_keys_of_predictions(
    store: &(impl ReadObject + ListObjects),
    keys: &ClassifyKeys,
) -> Result<Vec<String>, ClassifyObjectError> {
    #[derive(serde::Deserialize)]
    struct Posted {
        created_at: Option<DateTime<Utc>>,
    }
    let Some(bytes) = read_if_present(store, &keys.predictions).await? else {
        return Ok(Vec::new());
    };
    let mut days = BTreeSet::new();
    for line in bytes
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
    {
        let posted: Posted = serde_json::from_slice(line)
            .map_err(|error| ClassifyObjectError::Read(error.into()))?;
        days.insert(partition_day(posted.created_at));
    }
    Ok(days.iter().map(|day| keys.parquet(day)).collect())
}

/// The object's bytes, or `None` when no such key is listed.
async fn read_if_present(
    store: &(impl ReadObject + ListObjects),
    key: &str,
) -> Result<Option<Vec<u8>>, ClassifyObjectError> {
    if !exists(store, key).await? {
        return Ok(None);
    }
    match read_whole(store, key).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(ReadWholeError::Store(error)) => Err(error.into()),
        Err(ReadWholeError::Body { source, .. }) => Err(ClassifyObjectError::Read(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroUsize;

    use crate::config::{ClassifyConfig, IngestConfig};
    use crate::memory::{KeywordClassifier, MemoryBuckets};
    use crate::ports::Buckets;

    const BUCKET: &str = "tweets";
    const PART: &str = "clean/x.json/part-00001-of-00002.jsonl";
    const OTHER: &str = "clean/x.json/part-00000-of-00002.jsonl";

    /// A raw object of two tweets from two days, ingested as two parts, both classified.
    async fn classified_parts() -> MemoryBuckets {
        let buckets = MemoryBuckets::new();
        let bucket = buckets.bucket(BUCKET);
        buckets.insert(
            BUCKET,
            "raw/x.json",
            "{\"id_str\":\"1\",\"text\":\"love this airline\",\"created_at\":\"2024-05-02T10:00:00Z\"}\n\
             {\"id_str\":\"2\",\"text\":\"hate the delays\",\"created_at\":\"2024-05-01T10:00:00Z\"}\n",
        );
        let ingest = IngestConfig {
            part_max_tweets: NonZeroUsize::MIN,
            ..IngestConfig::default()
        };
        let ingested = crate::ingest_object(&bucket, &bucket, "raw/x.json", &ingest)
            .await
            .expect("ingested");
        assert_eq!(ingested.manifest.outputs.clean_parts, [OTHER, PART]);
        for key in [OTHER, PART] {
            crate::classify_object(
                &bucket,
                &bucket,
                &KeywordClassifier::default(),
                key,
                &ClassifyConfig::default(),
                None,
            )
            .await
            .expect("classified");
        }
        for key in ["raw/x.json", "manifests/ingest/x.json.manifest.json"] {
            bucket
                .delete(key)
                .await
                .expect("only classify's outputs remain");
        }
        buckets
    }

    #[tokio::test]
    async fn a_deleted_parts_outputs_go_and_its_siblings_stay() {
        let buckets = classified_parts().await;
        let bucket = buckets.bucket(BUCKET);
        bucket.delete(PART).await.expect("deleted");
        let retraction = retract_classify_outputs(&bucket, PART, &Prefixes::default())
            .await
            .expect("retracted");
        assert_eq!(
            retraction,
            Retraction::Deleted {
                keys: vec![
                    "predictions-parquet/dt=2024-05-01/x.json%2Fpart-00001-of-00002.parquet".into(),
                    "predictions/x.json/part-00001-of-00002.jsonl".into(),
                    "manifests/classify/x.json/part-00001-of-00002.manifest.json".into(),
                ]
            },
            "no rejections were written, so none is reported deleted"
        );
        assert_eq!(
            buckets.keys(BUCKET),
            [
                OTHER,
                "manifests/classify/x.json/part-00000-of-00002.manifest.json",
                "predictions-parquet/dt=2024-05-02/x.json%2Fpart-00000-of-00002.parquet",
                "predictions/x.json/part-00000-of-00002.jsonl",
            ]
        );
        let again = retract_classify_outputs(&bucket, PART, &Prefixes::default())
            .await
            .expect("a redelivered event is harmless");
        assert_eq!(again, Retraction::NothingToRetract);
    }

    #[tokio::test]
    async fn with_its_manifest_expired_the_parquet_days_come_from_the_predictions() {
        let buckets = classified_parts().await;
        let bucket = buckets.bucket(BUCKET);
        bucket.delete(PART).await.expect("deleted");
        bucket
            .delete("manifests/classify/x.json/part-00001-of-00002.manifest.json")
            .await
            .expect("expired");
        retract_classify_outputs(&bucket, PART, &Prefixes::default())
            .await
            .expect("retracted");
        assert_eq!(buckets.keys(BUCKET).len(), 4, "{:?}", buckets.keys(BUCKET));
        assert!(
            buckets
                .keys(BUCKET)
                .iter()
                .all(|key| key.contains("part-00000-of-00002"))
        );
    }

    #[tokio::test]
    async fn a_part_created_again_keeps_its_outputs() {
        let buckets = classified_parts().await;
        let before = buckets.keys(BUCKET);
        let retraction =
            retract_classify_outputs(&buckets.bucket(BUCKET), PART, &Prefixes::default())
                .await
                .expect("checked");
        assert_eq!(retraction, Retraction::InputPresent);
        assert_eq!(buckets.keys(BUCKET), before);
    }

    #[tokio::test]
    async fn a_part_never_classified_has_nothing_to_retract() {
        let buckets = MemoryBuckets::new();
        buckets.insert(BUCKET, OTHER, "{}");
        let retraction =
            retract_classify_outputs(&buckets.bucket(BUCKET), PART, &Prefixes::default())
                .await
                .expect("checked");
        assert_eq!(retraction, Retraction::NothingToRetract);
        assert_eq!(buckets.keys(BUCKET), [OTHER]);
    }

    #[tokio::test]
    async fn keys_outside_clean_are_refused() {
        let buckets = MemoryBuckets::new();
        let error =
            retract_classify_outputs(&buckets.bucket(BUCKET), "raw/x.json", &Prefixes::default())
                .await
                .expect_err("refused");
        assert!(matches!(error, ClassifyObjectError::Key(_)));
    }

    #[tokio::test]
    async fn an_unreadable_manifest_is_an_error_and_deletes_nothing() {
        let buckets = MemoryBuckets::new();
        let manifest = "manifests/classify/x.json/part-00001-of-00002.manifest.json";
        buckets.insert(BUCKET, manifest, "not json");
        let error = retract_classify_outputs(&buckets.bucket(BUCKET), PART, &Prefixes::default())
            .await
            .expect_err("unreadable");
        assert!(matches!(error, ClassifyObjectError::Read(_)));
        assert_eq!(buckets.keys(BUCKET), [manifest]);
    }
}
