//! `tweetclf run INPUT --out OUTPUT`: every raw file through ingest and classify, with the
//! bucket layout mirrored under OUTPUT. Either side may be a local folder or
//! `s3://bucket/prefix` (a backfill from a laptop against real S3).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::backend::Backend;
use pipeline::local::LocalDir;
use pipeline::rebased::Rebased;
use pipeline::s3::{S3Bucket, S3Buckets};
use pipeline::{
    Buckets, Classify, ClassifyConfig, ClassifyManifest, DeleteObject, IngestConfig, ListObjects,
    ObjectBody, Payload, ReadObject, StoreError, WriteObject, classify_object, ingest_object,
    retract_classify_outputs,
};
use tweets::Report;

use crate::summary;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Raw tweet files: a folder, one file, or `s3://bucket/prefix` (default: examples/raw).
    #[command(flatten)]
    pub input: super::InputArg,
    /// Where to write the outputs, in the bucket layout: a folder or `s3://bucket/prefix`.
    #[arg(long, short, default_value = "out")]
    pub out: String,
    /// A model directory to classify with (default: the bundled sentiment model, or
    /// Amazon ML when CLASSIFIER_BACKEND=amazon-ml).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Threads for the model's matrix kernels (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Stop after ingest: clean, filter and split into parts without loading a model (to
    /// check the cleaning and the counts before classifying).
    #[arg(long)]
    pub ingest_only: bool,
}

/// `run FILE --out OUT --ingest-only`, for `tweetclf ingest`.
pub fn ingest_only(file: &Path, out: &Path, ingest: &IngestConfig) -> anyhow::Result<()> {
    let args = RunArgs {
        input: super::InputArg::of(file),
        out: out.to_string_lossy().into_owned(),
        model: None,
        threads: None,
        ingest_only: true,
    };
    run(&args, ingest)
}

/// The raw files `run` reads when none are named: the README's main job.
const DEFAULT_INPUT: &str = "examples/raw";

impl RunArgs {
    fn input(&self) -> Cow<'_, str> {
        self.input
            .given()
            .map_or(Cow::Borrowed(DEFAULT_INPUT), Path::to_string_lossy)
    }
}

/// Where files are read from or written to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(Self::Local(PathBuf::from(text)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("`{text}` names no bucket: expected s3://bucket/prefix");
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
}

/// A local folder or an S3 prefix behind the storage ports.
#[derive(Debug)]
enum Store {
    Local(LocalDir),
    S3(Rebased<S3Bucket>),
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

/// Totals over every file, for the summary table.
#[derive(Debug, Default)]
struct Totals {
    ingest: Report,
    predicted: u64,
    classify_rejected: u64,
    labels: BTreeMap<String, u64>,
    unlabelled: u64,
    classify_time: Duration,
    parts: usize,
}

pub fn run(args: &RunArgs, ingest: &IngestConfig) -> anyhow::Result<()> {
    let classify = ClassifyConfig {
        backend: super::backend_config(args.model.as_deref(), args.threads)?,
        ..ClassifyConfig::from_env()?
    };
    let input = Location::parse(&args.input())?;
    let output = Location::parse(&args.out)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args, &input, &output, ingest, &classify))
}

async fn run_async(
    args: &RunArgs,
    input: &Location,
    output: &Location,
    ingest: &IngestConfig,
    classify: &ClassifyConfig,
) -> anyhow::Result<()> {
    let s3 = match (input, output) {
        (Location::Local(_), Location::Local(_)) => None,
        _ => Some(S3Buckets::from_env().await),
    };
    let (source, keys) = source_and_keys(input, s3.as_ref(), &ingest.prefixes.raw).await?;
    if keys.is_empty() {
        bail!("no files to ingest under {}", args.input());
    }
    let sink = match output {
        Location::Local(path) => {
            let folder = LocalDir::new(path);
            refuse_colliding_keys(&folder, &keys, ingest)?;
            Store::Local(folder)
        }
        Location::S3 { bucket, prefix } => Store::S3(Rebased::new(
            s3_bucket(s3.as_ref(), bucket)?,
            "",
            prefix.clone(),
        )),
    };
    let backend = match args.ingest_only {
        true => None,
        false => Some(
            Backend::load(&classify.backend)
                .await
                .context("loading the classifier")?,
        ),
    };
    let stages = Stages {
        source: &source,
        sink: &sink,
        backend: backend.as_ref(),
        ingest,
        classify,
    };
    let started = Instant::now();
    let (totals, failures) = stages.run_files(&keys).await;
    report(
        args,
        &keys,
        started.elapsed(),
        &totals,
        &classify.prefixes,
        backend.as_ref().map(Classify::model),
    )?;
    if !failures.is_empty() {
        let mut stdout = std::io::stdout().lock();
        for (key, error) in &failures {
            writeln!(stdout, "\n  FAILED {key}: {error:#}")?;
        }
        bail!(
            "{} of {} file(s) could not be processed",
            failures.len(),
            keys.len()
        );
    }
    Ok(())
}

/// The store the raw files are read from, and their keys under the raw prefix: a folder's
/// files mounted there, or the objects of an S3 prefix seen through it.
async fn source_and_keys(
    input: &Location,
    s3: Option<&S3Buckets>,
    raw_prefix: &str,
) -> anyhow::Result<(Store, Vec<String>)> {
    match input {
        Location::Local(path) => {
            let (root, files) = input_files(path)?;
            let source = LocalDir::mounted(&root, raw_prefix);
            let keys = files
                .iter()
                .map(|file| {
                    source.key_of(file).with_context(|| {
                        format!("{} has a name that is not valid UTF-8", file.display())
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((Store::Local(source), keys))
        }
        Location::S3 { bucket, prefix } => {
            let bucket_store = s3_bucket(s3, bucket)?;
            let listed = bucket_store
                .list(prefix)
                .await
                .with_context(|| format!("listing s3://{bucket}/{prefix}"))?;
            let source = Rebased::new(bucket_store, raw_prefix.to_owned(), prefix.clone());
            let keys = listed
                .iter()
                .filter_map(|key| source.outer_key(key))
                .collect();
            Ok((Store::S3(source), keys))
        }
    }
}

/// Failed files, each with why.
type Failures = Vec<(String, anyhow::Error)>;

/// The stores, the model and the settings every file goes through.
struct Stages<'a> {
    source: &'a Store,
    sink: &'a Store,
    /// `None` with `--ingest-only`.
    backend: Option<&'a Backend>,
    ingest: &'a IngestConfig,
    classify: &'a ClassifyConfig,
}

impl Stages<'_> {
    /// Every file in turn, with a progress bar.
    async fn run_files(&self, keys: &[String]) -> (Totals, Failures) {
        let progress = ProgressBar::new(keys.len() as u64).with_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} files {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut totals = Totals::default();
        let mut failures = Vec::new();
        for key in keys {
            self.run_file(key, &progress, &mut totals, &mut failures)
                .await;
            progress.inc(1);
        }
        progress.finish_and_clear();
        (totals, failures)
    }

    /// One raw file through ingest, then each of its clean parts through classify, as the
    /// functions do in a bucket; the outputs of parts an earlier run wrote and this one
    /// superseded are deleted as classify deletes them. Failures are collected, not fatal.
    async fn run_file(
        &self,
        key: &str,
        progress: &ProgressBar,
        totals: &mut Totals,
        failures: &mut Failures,
    ) {
        progress.set_message(format!("ingesting {key}"));
        let ingested = match ingest_object(self.source, self.sink, key, self.ingest).await {
            Ok(ingested) => ingested,
            Err(error) => return failures.push((key.to_owned(), error.into())),
        };
        totals.ingest.absorb(&ingested.manifest.report);
        for stale in &ingested.removed_parts {
            let retracted =
                retract_classify_outputs(self.sink, stale, &self.classify.prefixes).await;
            if let Err(error) = retracted {
                failures.push((stale.clone(), error.into()));
            }
        }
        let parts = &ingested.manifest.outputs.clean_parts;
        totals.parts += parts.len();
        let Some(backend) = self.backend else {
            return;
        };
        for (index, part) in parts.iter().enumerate() {
            progress.set_message(format!("classifying {key} ({}/{})", index + 1, parts.len()));
            match classify_object(self.sink, self.sink, backend, part, self.classify, None).await {
                Ok(classified) => totals.absorb_classified(&classified),
                Err(error) => failures.push((part.clone(), error.into())),
            }
        }
    }
}

impl Totals {
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

/// S3 keys that differ only by `./` or `//` would be one local file, and each would
/// overwrite the last: refused before anything is written.
fn refuse_colliding_keys(
    folder: &LocalDir,
    keys: &[String],
    ingest: &IngestConfig,
) -> anyhow::Result<()> {
    let manifests = keys
        .iter()
        .map(|key| Ok(ingest.prefixes.ingest_keys(key)?.manifest))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some((first, second)) = folder.first_collision(&manifests)? {
        bail!(
            "`{}` and `{}` would be written to the same local files under {}: \
             rename one, or write to an s3:// output",
            keys[first],
            keys[second],
            folder.root().display()
        );
    }
    Ok(())
}

fn s3_bucket(s3: Option<&S3Buckets>, bucket: &str) -> anyhow::Result<S3Bucket> {
    s3.map(|buckets| buckets.bucket(bucket))
        .context("internal error: no S3 client for an s3:// location")
}

fn report(
    args: &RunArgs,
    keys: &[String],
    elapsed: Duration,
    totals: &Totals,
    layout: &pipeline::Prefixes,
    model: Option<&pipeline::ModelInfo>,
) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "tweetclf run: {} file(s) from {} into {} in {:.2} s\n",
        keys.len(),
        args.input(),
        args.out,
        elapsed.as_secs_f64()
    )?;
    summary::write_report(&mut stdout, &totals.ingest)?;
    match model {
        Some(model) => write_classified(&mut stdout, totals, model)?,
        None => writeln!(stdout, "\n  not classified (--ingest-only)")?,
    }
    let place = |prefix: &str| format!("{}/{prefix}", args.out.trim_end_matches('/'));
    if model.is_some() {
        writeln!(
            stdout,
            "\n  predictions   {}   (one JSON line per tweet)\n  parquet       {}   (dt=YYYY-MM-DD partitions, for Athena)",
            place(&layout.predictions),
            place(&layout.predictions_parquet),
        )?;
    }
    writeln!(
        stdout,
        "{}  clean tweets  {}   ({} part(s))\n  rejections    {}   (each with its error and raw record)\n  filtered      {}   (each with its id and reason)\n  manifests     {}",
        if model.is_some() { "" } else { "\n" },
        place(&layout.clean),
        totals.parts,
        place(&layout.rejected),
        place(&layout.filtered),
        place(&layout.manifests),
    )?;
    Ok(())
}

fn write_classified(
    stdout: &mut impl Write,
    totals: &Totals,
    model: &pipeline::ModelInfo,
) -> std::io::Result<()> {
    let rate = if totals.classify_time.is_zero() {
        0.0
    } else {
        totals.predicted as f64 / totals.classify_time.as_secs_f64()
    };
    writeln!(
        stdout,
        "\n  classified    {:>8}  by {} {} ({}), {rate:.0} tweets/s",
        totals.predicted, model.name, model.version, model.backend
    )?;
    for (label, count) in &totals.labels {
        let share = 100.0 * *count as f64 / totals.predicted.max(1) as f64;
        writeln!(stdout, "    {label:<16}{count:>6}  {share:>5.1}%")?;
    }
    if totals.unlabelled > 0 {
        writeln!(stdout, "    {:<16}{:>6}", "(no label)", totals.unlabelled)?;
    }
    writeln!(
        stdout,
        "  not classified{:>8}   (lines of clean/ the model could not read)",
        totals.classify_rejected
    )?;
    Ok(())
}

/// The folder that stands for the raw prefix, and the files under it in a stable order
/// (hidden files skipped).
fn input_files(input: &Path) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    let metadata =
        std::fs::metadata(input).with_context(|| format!("reading {}", input.display()))?;
    if metadata.is_file() {
        let root = input.parent().unwrap_or(Path::new(".")).to_path_buf();
        return Ok((root, vec![input.to_path_buf()]));
    }
    let files = pipeline::local::files_below(input)
        .with_context(|| format!("listing {}", input.display()))?;
    Ok((input.to_path_buf(), files))
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
        assert!(Location::parse("s3:///x").is_err());
    }
}
