//! `tweetclf train`: a model directory from labelled data — a head over the frozen base
//! encoder (minutes), or the top encoder layers or the whole encoder fine-tuned with a head
//! (hours on two cores, checkpointed every epoch and resumable).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use candle_core::{DType, Tensor};
use classifier::finetune::{BaseModel, Checkpoints, FineTuning, Progress, TokenizedExamples};
use classifier::labels::{HeadSpec, LABELS_FORMAT_VERSION, Pooling, Preprocessing};
use classifier::train::{EpochReport, Examples, HeadTraining, SeededRng, TrainError, train_head};
use classifier::trainable_bert::Trainable;
use classifier::{InferenceOptions, LabelsFile, ProblemType, TextEncoder};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tweets::{CleaningRule, CleaningVersion, EmojiMode};

use crate::labelled::{self, LabelledSet};

/// Texts embedded or tokenized per progress step.
const CHUNK: usize = 256;
/// Without a terminal (a job's log), a line every this many batches stands in for the bar.
const LOG_EVERY_BATCHES: usize = 100;

/// What learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A head over the frozen encoder's text vectors (minutes on two cores).
    Head,
    /// The top `--layers` encoder layers and a head.
    Top,
    /// The whole encoder and a head (word embeddings only with `--train-word-embeddings`).
    Full,
}

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
    /// Where to write the model directory; an existing one is refused unless `--force`.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the model directory at `--out` (everything in it) once the new model is
    /// trained.
    #[arg(long)]
    pub force: bool,
    /// The model's name, carried into every prediction.
    #[arg(long)]
    pub name: String,
    /// The model's version.
    #[arg(long, default_value = "1")]
    pub version: String,
    #[command(flatten)]
    pub columns: labelled::ColumnArgs,
    #[arg(long, value_enum, default_value = "head")]
    pub mode: Mode,
    /// Encoder layers that learn in `--mode top`.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// In `--mode full`, train the word-embedding table too (half the encoder's parameters).
    #[arg(long)]
    pub train_word_embeddings: bool,
    /// Use a seeded random sample of this many training examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Use a seeded random sample of this many validation examples.
    #[arg(long)]
    pub valid_limit: Option<usize>,
    /// A hidden layer of this size in the head (default: a linear head).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Epochs (default: 60 for a head, 3 when fine-tuning).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Examples per step (default: 64 for a head, 32 when fine-tuning).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The head's peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub learning_rate: f64,
    /// The encoder's peak learning rate when fine-tuning.
    #[arg(long, default_value_t = 1e-4)]
    pub encoder_learning_rate: f64,
    /// Dropout while fine-tuning.
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f32,
    /// Epochs without a better validation metric before stopping (default: 8 for a head, 2
    /// when fine-tuning).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Weigh every example alike. By default rare classes (single-label) and each label's
    /// positives (multi-label) weigh more, which favours recall and macro-F1 over accuracy.
    #[arg(long)]
    pub no_class_weights: bool,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where fine-tuning checkpoints each epoch (default: `<out>.checkpoints`). Removed once
    /// the model is written.
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
    /// Continue from the checkpoint in the checkpoint directory (same data and settings).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs in this run; `--resume` continues later.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The text cleaning the model is trained with, and served with ever after.
    #[arg(long, default_value_t = CleaningVersion::LATEST)]
    pub cleaning: CleaningVersion,
    /// Leave one clean-v2 rule out (emoticons, elongation, hashtags), to measure
    /// what it buys; the model records it.
    #[arg(long)]
    pub leave_out_rule: Option<CleaningRule>,
    /// How emoji reach the model: describe (in words), keep, remove.
    #[arg(long, default_value = "describe")]
    pub emoji: EmojiMode,
}

/// What any mode hands back for the model directory.
struct Trained {
    tensors: std::collections::HashMap<String, Tensor>,
    best: EpochReport,
    epochs_run: usize,
    mode: String,
    settings: serde_json::Value,
    extra: serde_json::Value,
}

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists: pass --force to replace it once the new model is trained, or \
             choose another --out",
            args.out.display()
        );
    }
    let columns = args.columns.columns();
    let mut train_set = labelled::read(&args.train, &columns)?;
    let mut valid_set = labelled::read(&args.valid, &columns)?;
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

    let recipe = classifier::model_dir::read_encoder_recipe(&args.base).with_context(|| {
        format!(
            "reading how to run the base encoder in {}",
            args.base.display()
        )
    })?;
    let preprocessing = Preprocessing {
        cleaning_version: args.cleaning,
        cleaning_left_out: args.leave_out_rule,
        emoji: args.emoji,
        max_tokens: 128,
        text_prefix: recipe.text_prefix,
    };
    preprocessing
        .validate()
        .context("--cleaning and --leave-out-rule")?;
    let pooling = recipe.pooling;
    let options = InferenceOptions {
        threads: args.threads,
        ..InferenceOptions::default()
    };
    let encoder = TextEncoder::load_base(&args.base, &preprocessing, pooling, options)
        .with_context(|| format!("loading the base encoder from {}", args.base.display()))?;
    let sets = Sets {
        train: &train_set,
        valid: &valid_set,
        names: &names,
        problem_type,
    };
    let trained = match args.mode {
        Mode::Head => head_only(args, &encoder, &sets)?,
        Mode::Top | Mode::Full => {
            let work = || fine_tuned(args, &encoder, &sets, pooling);
            let outcome = match args.threads {
                Some(threads) => rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()?
                    .install(work),
                None => work(),
            };
            match outcome {
                Err(Stop::Stopped { epoch, checkpoints }) => {
                    writeln!(
                        std::io::stdout().lock(),
                        "stopped after epoch {epoch} as asked; its checkpoint is in {}: run the \
                         same command with --resume to continue",
                        checkpoints.display()
                    )?;
                    return Ok(());
                }
                Err(Stop::Failed(error)) => return Err(error),
                Ok(trained) => trained,
            }
        }
    };

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
            "mode": trained.mode,
            "train": {"file": args.train.display().to_string(), "examples": train_set.examples.len()},
            "valid": {"file": args.valid.display().to_string(), "examples": valid_set.examples.len()},
            "training": trained.settings,
            "epochs_run": trained.epochs_run,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "trained_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "wall_seconds_this_run": started.elapsed().as_secs(),
            "details": trained.extra,
        }),
        metrics: json!({
            "validation": {
                metric_name(problem_type): trained.best.valid_metric,
                "accuracy": trained.best.valid_accuracy,
                "epoch": trained.best.epoch,
            }
        }),
    };
    if args.out.exists() {
        // --force: nothing of the old model (its card, a threshold) may outlive it.
        std::fs::remove_dir_all(&args.out)
            .with_context(|| format!("removing the old model at {}", args.out.display()))?;
    }
    classifier::export::write_model_dir(
        &args.base,
        &args.out,
        &trained.tensors,
        &labels,
        DType::F16,
    )
    .with_context(|| format!("writing the model to {}", args.out.display()))?;
    if args.mode != Mode::Head {
        let checkpoints = checkpoint_dir(args);
        std::fs::remove_dir_all(&checkpoints)
            .with_context(|| format!("removing {}", checkpoints.display()))?;
    }

    writeln!(
        std::io::stdout().lock(),
        "trained {} ({} labels, {}, {}) on {} examples in {:.0} s: best epoch {} — validation {} {:.4}, accuracy {:.4}\nmodel written to {}",
        labels.name,
        labels.labels.len(),
        problem_type,
        trained.mode,
        train_set.examples.len(),
        started.elapsed().as_secs_f64(),
        trained.best.epoch,
        metric_name(problem_type),
        trained.best.valid_metric,
        trained.best.valid_accuracy,
        args.out.display()
    )?;
    Ok(())
}

struct Sets<'a> {
    train: &'a LabelledSet,
    valid: &'a LabelledSet,
    names: &'a [String],
    problem_type: ProblemType,
}

fn head_only(args: &TrainArgs, encoder: &TextEncoder, sets: &Sets<'_>) -> anyhow::Result<Trained> {
    let started = Instant::now();
    let train_examples = embed(encoder, sets.train, sets.names, "train")?;
    let valid_examples = embed(encoder, sets.valid, sets.names, "valid")?;
    let embedded = started.elapsed();
    let defaults = HeadTraining::default();
    let config = HeadTraining {
        problem_type: sets.problem_type,
        hidden_size: args.hidden,
        epochs: args.epochs.unwrap_or(defaults.epochs),
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        learning_rate: args.learning_rate,
        patience: args.patience.unwrap_or(defaults.patience),
        class_weighting: !args.no_class_weights,
        seed: args.seed,
        ..defaults
    };
    let progress = ProgressBar::new(config.epochs as u64)
        .with_style(style("training head [{bar:30}] epoch {pos}/{len} {msg}"));
    let trained = train_head(&train_examples, &valid_examples, &config, |report| {
        progress.set_position(report.epoch as u64);
        progress.set_message(format!(
            "loss {:.4}  valid {} {:.4}",
            report.train_loss,
            metric_name(sets.problem_type),
            report.valid_metric
        ));
    })?;
    progress.finish_and_clear();
    Ok(Trained {
        tensors: trained.tensors,
        best: trained.best,
        epochs_run: trained.history.len(),
        mode: "head-only over the frozen encoder".to_owned(),
        settings: serde_json::to_value(&config)?,
        extra: json!({
            "embedding_seconds": embedded.as_secs(),
            "training_seconds": started.elapsed().as_secs(),
            "history": trained.history,
        }),
    })
}

/// Why fine-tuning ended without a model: asked to stop, or an error.
enum Stop {
    Stopped { epoch: usize, checkpoints: PathBuf },
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Stop {
    fn from(error: E) -> Self {
        Self::Failed(error.into())
    }
}

fn checkpoint_dir(args: &TrainArgs) -> PathBuf {
    args.checkpoints.clone().unwrap_or_else(|| {
        let mut name = args.out.as_os_str().to_owned();
        name.push(".checkpoints");
        PathBuf::from(name)
    })
}

fn fine_tuned(
    args: &TrainArgs,
    encoder: &TextEncoder,
    sets: &Sets<'_>,
    pooling: Pooling,
) -> Result<Trained, Stop> {
    let base = BaseModel::load(&args.base)
        .with_context(|| format!("loading the base encoder from {}", args.base.display()))?;
    let trainable = match args.mode {
        Mode::Top if (1..=base.layers()).contains(&args.layers) => {
            Trainable::TopLayers(args.layers)
        }
        Mode::Top => {
            return Err(Stop::Failed(anyhow::anyhow!(
                "--layers {} : the base encoder has {} layers",
                args.layers,
                base.layers()
            )));
        }
        _ => Trainable::All {
            word_embeddings: args.train_word_embeddings,
        },
    };
    let train_examples = tokenize(encoder, sets.train, sets.names, "train")?;
    let valid_examples = tokenize(encoder, sets.valid, sets.names, "valid")?;
    let defaults = FineTuning::default();
    let settings = FineTuning {
        trainable,
        problem_type: sets.problem_type,
        pooling,
        hidden_size: args.hidden,
        epochs: args.epochs.unwrap_or(defaults.epochs),
        batch_size: args.batch_size.unwrap_or(defaults.batch_size),
        encoder_learning_rate: args.encoder_learning_rate,
        head_learning_rate: args.learning_rate,
        dropout: args.dropout,
        patience: args.patience.unwrap_or(defaults.patience),
        class_weighting: !args.no_class_weights,
        seed: args.seed,
        ..defaults
    };
    let checkpoints = Checkpoints {
        dir: checkpoint_dir(args),
        resume: args.resume,
    };
    let mode = match trainable {
        Trainable::TopLayers(count) => format!("fine-tuned: top {count} encoder layers and head"),
        Trainable::All {
            word_embeddings: true,
        } => "fine-tuned: whole encoder and head".to_owned(),
        Trainable::All {
            word_embeddings: false,
        } => "fine-tuned: whole encoder (word embeddings frozen) and head".to_owned(),
    };

    let progress = ProgressBar::new(0).with_style(style(
        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} / eta {eta})",
    ));
    let started = Instant::now();
    let mut epochs_this_run = 0;
    let mut average_loss = None::<f32>;
    let result = base.fine_tune(
        &train_examples,
        &valid_examples,
        &settings,
        Some(&checkpoints),
        |event| {
            match event {
                Progress::Caching { done, total } => {
                    progress.set_prefix("running the frozen layers");
                    progress.set_length(*total as u64);
                    progress.set_position(*done as u64);
                }
                Progress::Resumed { epoch } => {
                    say(
                        &progress,
                        format!(
                            "resuming after epoch {epoch} from {}",
                            checkpoints.dir.display()
                        ),
                    );
                }
                Progress::Step {
                    epoch,
                    batch,
                    batches,
                    loss,
                } => {
                    if *batch == 1 {
                        progress.reset();
                        progress.set_prefix(format!("epoch {epoch}/{}", settings.epochs));
                        progress.set_length(*batches as u64);
                        average_loss = None;
                    }
                    // A running mean over the last ~50 steps reads better than one batch's.
                    let smoothed = average_loss.map_or(*loss, |mean| 0.98 * mean + 0.02 * loss);
                    average_loss = Some(smoothed);
                    progress.set_position(*batch as u64);
                    progress.set_message(format!("loss {smoothed:.4}"));
                    if progress.is_hidden() && batch % LOG_EVERY_BATCHES == 0 {
                        eprintln!(
                            "epoch {epoch}: batch {batch}/{batches}, loss {smoothed:.4}, {:.0} s",
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                Progress::Epoch(report) => {
                    epochs_this_run += 1;
                    say(
                        &progress,
                        format!(
                            "epoch {}: train loss {:.4}, validation {} {:.4}, accuracy {:.4}",
                            report.epoch,
                            report.train_loss,
                            metric_name(sets.problem_type),
                            report.valid_metric,
                            report.valid_accuracy
                        ),
                    );
                    if args.stop_after == Some(epochs_this_run) {
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        },
    );
    progress.finish_and_clear();
    let tuned = match result {
        Err(TrainError::Stopped { epoch }) => {
            return Err(Stop::Stopped {
                epoch,
                checkpoints: checkpoints.dir,
            });
        }
        other => other?,
    };
    Ok(Trained {
        tensors: tuned.tensors,
        best: tuned.best,
        epochs_run: tuned.history.len(),
        mode,
        settings: serde_json::to_value(&settings)?,
        extra: json!({
            "training_seconds": tuned.training_seconds.round(),
            "resumed_after_epoch": tuned.resumed_after,
            "history": tuned.history,
        }),
    })
}

/// A line above the bar on a terminal; on stderr when the bar is hidden (a log file).
fn say(progress: &ProgressBar, line: String) {
    if progress.is_hidden() {
        eprintln!("{line}");
    } else {
        progress.println(line);
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// What the base directory says it is (`SOURCE.json`, written by models/fetch-base.sh), else
/// its path.
fn base_model_source(base: &Path) -> serde_json::Value {
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

/// One-hot or multi-hot rows for `set`, in the order of `names`.
fn targets(set: &LabelledSet, names: &[String]) -> Vec<Vec<f32>> {
    set.examples
        .iter()
        .map(|example| {
            names
                .iter()
                .map(|name| f32::from(u8::from(example.labels.contains(name))))
                .collect()
        })
        .collect()
}

/// Runs `texts → rows` over `set` in chunks, with a progress bar.
fn in_chunks<T>(
    set: &LabelledSet,
    what: &str,
    mut work: impl FnMut(&[&str]) -> anyhow::Result<Vec<T>>,
) -> anyhow::Result<Vec<T>> {
    let progress = ProgressBar::new(set.examples.len() as u64).with_style(style(&format!(
        "{what} [{{bar:30}}] {{pos}}/{{len}} texts, {{per_sec}}, eta {{eta}}"
    )));
    let mut rows = Vec::with_capacity(set.examples.len());
    for chunk in set.examples.chunks(CHUNK) {
        let texts: Vec<&str> = chunk.iter().map(|example| example.text.as_str()).collect();
        rows.extend(work(&texts)?);
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    Ok(rows)
}

fn embed(
    encoder: &TextEncoder,
    set: &LabelledSet,
    names: &[String],
    what: &str,
) -> anyhow::Result<Examples> {
    Ok(Examples {
        features: in_chunks(set, &format!("embedding {what}"), |texts| {
            Ok(encoder.embed(texts)?.0)
        })?,
        targets: targets(set, names),
    })
}

fn tokenize(
    encoder: &TextEncoder,
    set: &LabelledSet,
    names: &[String],
    what: &str,
) -> anyhow::Result<TokenizedExamples> {
    Ok(TokenizedExamples {
        ids: in_chunks(set, &format!("tokenizing {what}"), |texts| {
            Ok(encoder.tokenize(texts)?)
        })?,
        targets: targets(set, names),
    })
}
