//! `tweetclf run INPUT --out OUTPUT`: every raw file through ingest and classify, with the
//! bucket layout mirrored under OUTPUT. Either side may be a local folder or
//! `s3://bucket/prefix` (a backfill from a laptop against real S3).

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::backend::Backend;
use pipeline::backfill::{Backfill, BackfillStep, BackfillTotals, Location, Stores};
use pipeline::{Classify, ClassifyConfig, IngestConfig, error_chain};

use crate::summary;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Raw tweet files: a folder, one file, or `s3://bucket/prefix` (default: examples/raw).
    #[command(flatten)]
    pub input: super::InputArg,
    /// Take the raw objects from this S3 Inventory report (`s3://bucket/…/manifest.json`, CSV
    /// format) instead of listing an s3:// input: for buckets with millions of objects. Only
    /// the objects under the input prefix are read.
    #[arg(long, value_name = "MANIFEST")]
    pub inventory: Option<String>,
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
        inventory: None,
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
    let stores = Stores::open(input, args.inventory.as_deref(), output, ingest).await?;
    if stores.keys.is_empty() {
        bail!("no files to ingest under {}", args.input());
    }
    let backend = match args.ingest_only {
        true => None,
        false => Some(
            Backend::load(&classify.backend)
                .await
                .context("loading the classifier")?,
        ),
    };
    let backfill = Backfill {
        stores: &stores,
        backend: backend.as_ref(),
        ingest,
        classify,
    };
    let started = Instant::now();
    let progress = ProgressBar::new(stores.keys.len() as u64).with_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} files {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (totals, failures) = backfill
        .run(|step| match step {
            BackfillStep::Ingesting { key } => progress.set_message(format!("ingesting {key}")),
            BackfillStep::Classifying { key, part, parts } => {
                progress.set_message(format!("classifying {key} ({part}/{parts})"));
            }
            BackfillStep::FileDone => progress.inc(1),
        })
        .await;
    progress.finish_and_clear();
    report(
        args,
        &stores.keys,
        started.elapsed(),
        &totals,
        &classify.prefixes,
        backend.as_ref().map(Classify::model),
    )?;
    if !failures.is_empty() {
        let mut stdout = std::io::stdout().lock();
        for failure in &failures {
            writeln!(
                stdout,
                "\n  FAILED {}: {}",
                failure.key,
                error_chain(&failure.error)
            )?;
        }
        bail!(
            "{} of {} file(s) could not be processed",
            failures.len(),
            stores.keys.len()
        );
    }
    Ok(())
}

fn report(
    args: &RunArgs,
    keys: &[String],
    elapsed: Duration,
    totals: &BackfillTotals,
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
    totals: &BackfillTotals,
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
