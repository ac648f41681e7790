//! `tweetclf train`: a classification head over the frozen base encoder, written as a
//! complete model directory.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use candle_core::DType;
use classifier::labels::{HeadSpec, LABELS_FORMAT_VERSION, Pooling, PoolingKind, Preprocessing};
use classifier::train::{Examples, HeadTraining, SeededRng, train_head};
use classifier::{InferenceOptions, LabelsFile, ProblemType, TextEncoder};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tweets::EmojiMode;

use crate::labelled::{self, LabelledSet};

/// Texts embedded per progress step.
const EMBED_CHUNK: usize = 256;

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Labelled training data (.jsonl, .csv or .tsv).
    #[arg(long)]
    pub train: PathBuf,
    /// Labelled validation data, for early stopping and the recorded metrics.
    #[arg(long)]
    pub valid: PathBuf,
    /// The base encoder directory (models/fetch-base.sh lays it out).
    #[arg(long, default_value = "models/base")]
    pub base: PathBuf,
    /// Where to write the model directory.
    #[arg(long)]
    pub out: PathBuf,
    /// The model's name, carried into every prediction.
    #[arg(long)]
    pub name: String,
    /// The model's version.
    #[arg(long, default_value = "1")]
    pub version: String,
    /// Use a seeded random sample of this many training examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Use a seeded random sample of this many validation examples.
    #[arg(long)]
    pub valid_limit: Option<usize>,
    /// A hidden layer of this size in the head (default: a linear head).
    #[arg(long)]
    pub hidden: Option<usize>,
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut train_set = labelled::read(&args.train)?;
    let mut valid_set = labelled::read(&args.valid)?;
    let names = train_set.label_names();
    if let Some(unknown) = valid_set
        .label_names()
        .into_iter()
        .find(|label| !names.contains(label))
    {
        bail!(
            "{}: label `{unknown}` never appears in the training data",
            args.valid.display()
        );
    }
    let problem_type = if train_set.multi_label || valid_set.multi_label {
        ProblemType::MultiLabel
    } else {
        ProblemType::SingleLabel
    };
    let mut rng = SeededRng::new(args.seed);
    sample(&mut train_set, args.limit, &mut rng);
    sample(&mut valid_set, args.valid_limit, &mut rng);

    let preprocessing = Preprocessing {
        cleaning_version: tweets::CLEANING_VERSION.to_owned(),
        emoji: EmojiMode::Describe,
        max_tokens: 128,
    };
    let pooling = Pooling {
        kind: PoolingKind::Mean,
        normalize: true,
    };
    let options = InferenceOptions {
        threads: args.threads,
        ..InferenceOptions::default()
    };
    let encoder = TextEncoder::load_base(&args.base, &preprocessing, pooling, options)
        .with_context(|| format!("loading the base encoder from {}", args.base.display()))?;
    let train_examples = embed(&encoder, &train_set, &names, "train")?;
    let valid_examples = embed(&encoder, &valid_set, &names, "valid")?;
    let embedded = started.elapsed();

    let config = HeadTraining {
        problem_type,
        hidden_size: args.hidden,
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        seed: args.seed,
        ..HeadTraining::default()
    };
    let progress = ProgressBar::new(config.epochs as u64).with_style(
        ProgressStyle::with_template("training head [{bar:30}] epoch {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let trained = train_head(&train_examples, &valid_examples, &config, |report| {
        progress.set_position(report.epoch as u64);
        progress.set_message(format!(
            "loss {:.4}  valid {} {:.4}",
            report.train_loss,
            metric_name(problem_type),
            report.valid_metric
        ));
    })?;
    progress.finish_and_clear();

    let labels = LabelsFile {
        format_version: LABELS_FORMAT_VERSION,
        name: args.name.clone(),
        version: args.version.clone(),
        labels: names,
        problem_type,
        thresholds: Default::default(),
        pooling,
        head: HeadSpec {
            hidden_size: args.hidden,
        },
        preprocessing,
        provenance: json!({
            "base_model": base_model_source(&args.base),
            "mode": "head-only over the frozen encoder",
            "train": {"file": args.train.display().to_string(), "examples": train_examples.len()},
            "valid": {"file": args.valid.display().to_string(), "examples": valid_examples.len()},
            "training": config,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "trained_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "wall_seconds": started.elapsed().as_secs(),
            "embedding_seconds": embedded.as_secs(),
        }),
        metrics: json!({
            "validation": {
                metric_name(problem_type): trained.best.valid_metric,
                "accuracy": trained.best.valid_accuracy,
                "epoch": trained.best.epoch,
            }
        }),
    };
    classifier::export::write_model_dir(
        &args.base,
        &args.out,
        &trained.tensors,
        &labels,
        DType::F16,
    )
    .with_context(|| format!("writing the model to {}", args.out.display()))?;

    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "trained {} ({} labels, {:?}) on {} examples in {:.0} s: best epoch {} — validation {} {:.4}, accuracy {:.4}\nmodel written to {}",
        labels.name,
        labels.labels.len(),
        problem_type,
        train_examples.len(),
        started.elapsed().as_secs_f64(),
        trained.best.epoch,
        metric_name(problem_type),
        trained.best.valid_metric,
        trained.best.valid_accuracy,
        args.out.display()
    )?;
    Ok(())
}

/// What the base directory says it is (`SOURCE.json`, written by models/fetch-base.sh), else
/// its path.
fn base_model_source(base: &std::path::Path) -> serde_json::Value {
    std::fs::read(base.join("SOURCE.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| json!(base.display().to_string()))
}

fn metric_name(problem: ProblemType) -> &'static str {
    match problem {
        ProblemType::SingleLabel => "macro_f1",
        ProblemType::MultiLabel => "micro_f1",
    }
}

fn sample(set: &mut LabelledSet, limit: Option<usize>, rng: &mut SeededRng) {
    if let Some(limit) = limit.filter(|limit| *limit < set.examples.len()) {
        rng.shuffle(&mut set.examples);
        set.examples.truncate(limit);
    }
}

fn embed(
    encoder: &TextEncoder,
    set: &LabelledSet,
    names: &[String],
    what: &str,
) -> anyhow::Result<Examples> {
    let progress = ProgressBar::new(set.examples.len() as u64).with_style(
        ProgressStyle::with_template(&format!(
            "embedding {what} [{{bar:30}}] {{pos}}/{{len}} texts, {{per_sec}}, eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut examples = Examples::default();
    for chunk in set.examples.chunks(EMBED_CHUNK) {
        let texts: Vec<&str> = chunk.iter().map(|example| example.text.as_str()).collect();
        let (vectors, _) = encoder.embed(&texts)?;
        examples.features.extend(vectors);
        for example in chunk {
            examples.targets.push(
                names
                    .iter()
                    .map(|name| {
                        if example.labels.contains(name) {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            );
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    Ok(examples)
}
