//! Every raw file under a folder or an S3 prefix through ingest and classify, the outputs in
//! the bucket layout under another folder or prefix: what the functions do in a bucket, run
//! from one process (`tweetclf run`, a backfill from a laptop against real S3).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tweets::Report;

use crate::backend::Backend;
use crate::inventory::read_inventory;
use crate::local::LocalDir;
use crate::rebased::Rebased;
use crate::s3::{S3Bucket, S3Buckets};
use crate::{
    Buckets, ClassifyConfig, ClassifyManifest, ClassifyObjectError, DeleteObject, IngestConfig,
    IngestObjectError, ListObjects, ObjectBody, Payload, ReadObject, StoreError, WriteObject,
    classify_object, ingest_object, retract_classify_outputs,
};

/// Where files are read from or written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

/// Why a backfill cannot start (a single file's failure is collected instead).
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("`{0}` names no bucket: expected s3://bucket/prefix")]
    NoBucket(String),
    #[error("reading {}", .path.display())]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} has a name that is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("listing s3://{bucket}/{prefix}")]
    List {
        bucket: String,
        prefix: String,
        source: StoreError,
    },
    #[error(
        "`{first}` and `{second}` would be written to the same local files under {}: \
         rename one, or write to an s3:// output", .folder.display()
    )]
    Collision {
        first: String,
        second: String,
        folder: PathBuf,
    },
    #[error("`{0}` is not an S3 Inventory manifest: expected s3://bucket/…/manifest.json")]
    NotAManifest(String),
    #[error("an S3 Inventory lists objects in S3: the input must be s3://bucket/prefix")]
    InventoryOfLocalInput,
    #[error("the inventory lists the objects of bucket `{listed}`, not of `{input}`")]
    InventoryOfAnotherBucket { listed: String, input: String },
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Key(#[from] crate::KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Location {
    /// A folder, or `s3://bucket/prefix` (the prefix read as a folder: `/` is added).
    pub fn parse(text: &str) -> Result<Self, BackfillError> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(Self::Local(PathBuf::from(text)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BackfillError::NoBucket(text.to_owned()));
        }
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        Ok(Self::S3 {
            bucket: bucket.to_owned(),
            prefix,
        })
    }

    fn is_s3(&self) -> bool {
        matches!(self, Self::S3 { .. })
    }
}

/// A local folder or an S3 prefix behind the storage ports.
#[derive(Debug)]
pub enum Store {
    Local(LocalDir),
    S3(Rebased<S3Bucket>),
}

impl Store {
    /// A folder, or an S3 prefix seen as a bucket's root: a run's output, or a stack's bucket.
    pub async fn open(location: &Location) -> Self {
        match location {
            Location::Local(path) => Self::Local(LocalDir::new(path)),
            Location::S3 { bucket, prefix } => Self::S3(Rebased::new(
                S3Buckets::from_env().await.bucket(bucket),
                "",
                prefix.clone(),
            )),
        }
    }
}

impl ReadObject for Store {
    async fn get(&self, key: &str) -> Result<ObjectBody, StoreError> {
        match self {
            Self::Local(store) => store.get(key).await,
            Self::S3(store) => store.get(key).await,
        }
    }
}

impl ListObjects for Store {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Local(store) => store.list(prefix).await,
            Self::S3(store) => store.list(prefix).await,
        }
    }
}

impl DeleteObject for Store {
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Local(store) => store.delete(key).await,
            Self::S3(store) => store.delete(key).await,
        }
    }
}

impl WriteObject for Store {
    async fn put(
        &self,
        key: &str,
        payload: Payload,
        content_type: &'static str,
    ) -> Result<(), StoreError> {
        match self {
            Self::Local(store) => store.put(key, payload, content_type).await,
            Self::S3(store) => store.put(key, payload, content_type).await,
        }
    }
}

/// The two sides of a backfill and the raw keys to process, opened and checked.
#[derive(Debug)]
pub struct Stores {
    pub source: Store,
    pub sink: Store,
    /// The raw files, as keys under the raw prefix, in a stable order.
    pub keys: Vec<String>,
}

impl Stores {
    /// Opens `input` as the raw prefix and `output` as the bucket root. The raw files are
    /// the input prefix's objects, listed, or those of them an S3 Inventory report names
    /// (`inventory`: `s3://bucket/…/manifest.json`). Local output is refused when two input
    /// keys would land on the same files.
    pub async fn open(
        input: &Location,
        inventory: Option<&str>,
        output: &Location,
        ingest: &IngestConfig,
    ) -> Result<Self, BackfillError> {
        let s3 = match input.is_s3() || output.is_s3() {
            true => Some(S3Buckets::from_env().await),
            false => None,
        };
        let (source, keys) =
            source_and_keys(input, inventory, s3.as_ref(), &ingest.prefixes.raw).await?;
        let sink = match output {
            Location::Local(path) => {
                let folder = LocalDir::new(path);
                refuse_colliding_keys(&folder, &keys, ingest)?;
                Store::Local(folder)
            }
            Location::S3 { bucket, prefix } => Store::S3(Rebased::new(
                s3_bucket(s3.as_ref(), bucket),
                "",
                prefix.clone(),
            )),
        };
        Ok(Self { source, sink, keys })
    }
}

/// The store the raw files are read from, and their keys under the raw prefix: a folder's
/// files mounted there, or the objects of an S3 prefix (listed, or from an inventory) seen
/// through it.
async fn source_and_keys(
    input: &Location,
    inventory: Option<&str>,
    s3: Option<&S3Buckets>,
    raw_prefix: &str,
) -> Result<(Store, Vec<String>), BackfillError> {
    match input {
        Location::Local(_) if inventory.is_some() => Err(BackfillError::InventoryOfLocalInput),
        Location::Local(path) => {
            let (root, files) = input_files(path)?;
            let source = LocalDir::mounted(&root, raw_prefix);
            let keys = files
                .iter()
                .map(|file| {
                    source
                        .key_of(file)
                        .ok_or_else(|| BackfillError::NotUtf8(file.clone()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((Store::Local(source), keys))
        }
        Location::S3 { bucket, prefix } => {
            let listed = match inventory {
                Some(manifest) => inventory_keys(manifest, bucket, s3).await?,
                None => s3_bucket(s3, bucket).list(prefix).await.map_err(|source| {
                    BackfillError::List {
                        bucket: bucket.clone(),
                        prefix: prefix.clone(),
                        source,
                    }
                })?,
            };
            let source = Rebased::new(s3_bucket(s3, bucket), raw_prefix.to_owned(), prefix.clone());
            let keys = listed
                .iter()
                .filter_map(|key| source.outer_key(key))
                .collect();
            Ok((Store::S3(source), keys))
        }
    }
}

/// The keys an inventory report lists for `bucket` (those outside the input prefix are
/// dropped by the caller, as a listing would never return them).
async fn inventory_keys(
    manifest: &str,
    bucket: &str,
    s3: Option<&S3Buckets>,
) -> Result<Vec<String>, BackfillError> {
    let (inventory_bucket, key) = manifest
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty() && !key.ends_with('/'))
        .ok_or_else(|| BackfillError::NotAManifest(manifest.to_owned()))?;
    let inventory = read_inventory(&s3_bucket(s3, inventory_bucket), key).await?;
    if inventory.source_bucket != bucket {
        return Err(BackfillError::InventoryOfAnotherBucket {
            listed: inventory.source_bucket,
            input: bucket.to_owned(),
        });
    }
    Ok(inventory.keys)
}

/// The folder that stands for the raw prefix, and the files under it in a stable order
/// (hidden files skipped).
fn input_files(input: &Path) -> Result<(PathBuf, Vec<PathBuf>), BackfillError> {
    let unreadable = |source| BackfillError::Input {
        path: input.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(input).map_err(unreadable)?;
    if metadata.is_file() {
        let root = input.parent().unwrap_or(Path::new(".")).to_path_buf();
        return Ok((root, vec![input.to_path_buf()]));
    }
    let files = crate::local::files_below(input).map_err(unreadable)?;
    Ok((input.to_path_buf(), files))
}

/// S3 keys that differ only by `./` or `//` would be one local file, and each would
/// overwrite the last: refused before anything is written.
fn refuse_colliding_keys(
    folder: &LocalDir,
    keys: &[String],
    ingest: &IngestConfig,
) -> Result<(), BackfillError> {
    let manifests = keys
        .iter()
        .map(|key| Ok(ingest.prefixes.ingest_keys(key)?.manifest))
        .collect::<Result<Vec<_>, BackfillError>>()?;
    match folder.first_collision(&manifests)? {
        Some((first, second)) => Err(BackfillError::Collision {
            first: keys[first].clone(),
            second: keys[second].clone(),
            folder: folder.root().to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Both sides are opened from the same client: one is made whenever a side is on S3.
fn s3_bucket(s3: Option<&S3Buckets>, bucket: &str) -> S3Bucket {
    s3.expect("an S3 client is made whenever a location is on S3")
        .bucket(bucket)
}

/// Totals over every file.
#[derive(Debug, Default)]
pub struct BackfillTotals {
    pub ingest: Report,
    pub predicted: u64,
    pub classify_rejected: u64,
    pub labels: BTreeMap<String, u64>,
    pub unlabelled: u64,
    /// Time in the model (tokenizing and inference), for the rate.
    pub classify_time: Duration,
    pub parts: usize,
}

impl BackfillTotals {
    fn absorb_classified(&mut self, classified: &ClassifyManifest) {
        self.predicted += classified.predicted;
        self.classify_rejected += classified.rejected;
        self.unlabelled += classified.unlabelled;
        for (label, count) in &classified.label_counts {
            *self.labels.entry(label.clone()).or_default() += count;
        }
        self.classify_time +=
            Duration::from_millis(classified.timing_ms.tokenize + classified.timing_ms.infer);
    }
}

/// A file or part that could not be processed, with why; the others went on.
#[derive(Debug)]
pub struct BackfillFailure {
    pub key: String,
    pub error: StageError,
}

/// The use case that failed on a file or part.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Ingest(#[from] IngestObjectError),
    #[error(transparent)]
    Classify(#[from] ClassifyObjectError),
}

/// What a backfill is doing, for a progress display.
#[derive(Debug, Clone, Copy)]
pub enum BackfillStep<'a> {
    Ingesting {
        key: &'a str,
    },
    Classifying {
        key: &'a str,
        part: usize,
        parts: usize,
    },
    FileDone,
}

/// The stores, the model and the settings every file goes through.
#[derive(Debug)]
pub struct Backfill<'a> {
    pub stores: &'a Stores,
    /// `None` to stop after ingest.
    pub backend: Option<&'a Backend>,
    pub ingest: &'a IngestConfig,
    pub classify: &'a ClassifyConfig,
}

impl Backfill<'_> {
    /// Every file in turn; failures are collected, not fatal.
    pub async fn run(
        &self,
        mut progress: impl FnMut(BackfillStep<'_>),
    ) -> (BackfillTotals, Vec<BackfillFailure>) {
        let mut totals = BackfillTotals::default();
        let mut failures = Vec::new();
        for key in &self.stores.keys {
            self.run_file(key, &mut progress, &mut totals, &mut failures)
                .await;
            progress(BackfillStep::FileDone);
        }
        (totals, failures)
    }

    /// One raw file through ingest, then each of its clean parts through classify, as the
    /// functions do in a bucket; the outputs of parts an earlier run wrote and this one
    /// superseded are deleted as classify deletes them.
    async fn run_file(
        &self,
        key: &str,
        progress: &mut impl FnMut(BackfillStep<'_>),
        totals: &mut BackfillTotals,
        failures: &mut Vec<BackfillFailure>,
    ) {
        let mut fail = |key: &str, error: StageError| {
            failures.push(BackfillFailure {
                key: key.to_owned(),
                error,
            });
        };
        let (source, sink) = (&self.stores.source, &self.stores.sink);
        progress(BackfillStep::Ingesting { key });
        let ingested = match ingest_object(source, sink, key, self.ingest).await {
            Ok(ingested) => ingested,
            Err(error) => return fail(key, error.into()),
        };
        totals.ingest.absorb(&ingested.manifest.report);
        for stale in &ingested.removed_parts {
            if let Err(error) = retract_classify_outputs(sink, stale, &self.classify.prefixes).await
            {
                fail(stale, error.into());
            }
        }
        let parts = &ingested.manifest.outputs.clean_parts;
        totals.parts += parts.len();
        let Some(backend) = self.backend else {
            return;
        };
        for (index, part) in parts.iter().enumerate() {
            progress(BackfillStep::Classifying {
                key,
                part: index + 1,
                parts: parts.len(),
            });
            match classify_object(sink, sink, backend, part, self.classify, None).await {
                Ok(classified) => totals.absorb_classified(&classified),
                Err(error) => fail(part, error.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_folders_or_s3_prefixes() {
        assert_eq!(
            Location::parse("out").expect("local"),
            Location::Local("out".into())
        );
        assert_eq!(
            Location::parse("s3://tweets/backfill/2024").expect("s3"),
            Location::S3 {
                bucket: "tweets".to_owned(),
                prefix: "backfill/2024/".to_owned()
            }
        );
        assert_eq!(
            Location::parse("s3://tweets").expect("bucket root"),
            Location::S3 {
                bucket: "tweets".to_owned(),
                prefix: String::new()
            }
        );
        assert!(matches!(
            Location::parse("s3:///x"),
            Err(BackfillError::NoBucket(_))
        ));
    }
}
