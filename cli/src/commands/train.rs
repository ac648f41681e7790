//! `tweetclf train`: a model directory from labelled data — a head over the frozen base
//! encoder (minutes), or the top encoder layers or the whole encoder fine-tuned with a head
//! (hours on two cores, checkpointed every epoch and resumable).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use classifier::ProblemType;
use classifier::evaluate::{MIN_POSITIVES_TO_TUNE, TunedThreshold};
use classifier::finetune::{Checkpoints, Progress};
use classifier::recipe::{
    Example, Learning, RecipeError, TrainEvent, TrainSpec, TrainedModel, train_model,
};
use classifier::runs::{RunContext, RunRecord};
use classifier::train::TrainError;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tweets::{CleaningRule, CleaningVersion, EmojiMode};

use super::runs::RunsStoreArg;
use crate::labelled::{self, LabelledSet};
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
    /// The base encoder: a base directory (models/fetch-base-e5.sh, models/fetch-base.sh lay
    /// them out) or any model directory, whose head is left behind (default: the bundled
    /// model's encoder, so training needs no set-up).
    #[arg(long)]
    pub base: Option<PathBuf>,
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
    #[command(flatten)]
    pub runs: RunsStoreArg,
}

pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists: pass --force to replace it once the new model is trained, or \
             choose another --out",
            args.out.display()
        );
    }
    let base = base_dir(args.base.as_deref())?;
    let (run, started) = super::runs::context(&[("train", &args.train), ("valid", &args.valid)])?;
    let columns = args.columns.columns();
    let train_set = labelled::read(&args.train, &columns)?;
    let valid_set = labelled::read(&args.valid, &columns)?;
    let spec = spec(args, base);
    let multi_label = train_set.multi_label || valid_set.multi_label;
    let problem_type = if multi_label {
        ProblemType::MultiLabel
    } else {
        ProblemType::SingleLabel
    };
    let mut shown = Shown::new(args.stop_after, problem_type.validation_metric());
    let outcome = train_model(
        &spec,
        examples(&train_set),
        examples(&valid_set),
        multi_label,
        |event| shown.event(event),
    );
    let mut trained = match outcome {
        Err(RecipeError::Train(TrainError::Stopped { epoch })) => {
            shown.finish();
            writeln!(
                std::io::stdout().lock(),
                "stopped after epoch {epoch} as asked; its checkpoint is in {}: run the same \
                 command with --resume to continue",
                checkpoint_dir(args).display()
            )?;
            return Ok(());
        }
        Err(RecipeError::Data(message)) => {
            shown.finish();
            bail!("{message}")
        }
        other => other.with_context(|| format!("training on {}", args.train.display()))?,
    };
    let tuned = write(args, &mut trained, &mut shown);
    shown.finish();
    let tuned = tuned?;
    print_summary(args, &trained, started)?;
    print_thresholds(&trained, &tuned)?;
    let run = RunContext {
        wall_seconds: started.elapsed().as_secs_f64(),
        ..run
    };
    args.runs
        .record(&args.out, &RunRecord::of_training(&trained, &args.out, run));
    Ok(())
}

/// `--base`, which must exist, or the bundled model's encoder, said on the terminal.
fn base_dir(base: Option<&Path>) -> anyhow::Result<PathBuf> {
    match base {
        Some(base) if base.is_dir() => Ok(base.to_path_buf()),
        Some(base) => bail!(
            "the base encoder {} does not exist: lay one out with `bash models/fetch-base-e5.sh` \
             (multilingual-e5-small, into models/base-e5) or `bash models/fetch-base.sh` \
             (all-MiniLM-L6-v2, into models/base), or leave out --base to start from the \
             bundled model's encoder",
            base.display()
        ),
        None => {
            let bundled = pipeline::candle::bundled_model_dir();
            eprintln!(
                "no --base: training over the encoder of the bundled model in {} (its head is \
                 left behind)",
                bundled.display()
            );
            Ok(bundled)
        }
    }
}

/// The training recipe from the flags.
fn spec(args: &TrainArgs, base: PathBuf) -> TrainSpec {
    let learning = match args.mode {
        Mode::Head => Learning::Head,
        Mode::Top => Learning::TopLayers(args.layers),
        Mode::Full => Learning::Encoder {
            word_embeddings: args.train_word_embeddings,
        },
    };
    let provenance = json!({
        "train": {"file": args.train.display().to_string()},
        "valid": {"file": args.valid.display().to_string()},
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "trained_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    TrainSpec {
        base,
        name: args.name.clone(),
        version: args.version.clone(),
        learning,
        hidden_size: args.hidden,
        epochs: args.epochs,
        batch_size: args.batch_size,
        patience: args.patience,
        learning_rate: args.learning_rate,
        encoder_learning_rate: args.encoder_learning_rate,
        dropout: args.dropout,
        class_weighting: !args.no_class_weights,
        seed: args.seed,
        limit: args.limit,
        valid_limit: args.valid_limit,
        cleaning: args.cleaning,
        leave_out_rule: args.leave_out_rule,
        emoji: args.emoji,
        checkpoints: (args.mode != Mode::Head).then(|| Checkpoints {
            dir: checkpoint_dir(args),
            resume: args.resume,
        }),
        threads: args.threads,
        provenance: provenance.as_object().cloned().unwrap_or_default(),
    }
}

fn examples(set: &LabelledSet) -> Vec<Example<'_>> {
    set.examples
        .iter()
        .map(|example| Example {
            text: &example.text,
            labels: &example.labels,
        })
        .collect()
}

/// Writes the model directory, replacing an old one (`--force`) whole, and removes the
/// checkpoints it no longer needs.
fn write(
    args: &TrainArgs,
    trained: &mut TrainedModel,
    shown: &mut Shown,
) -> anyhow::Result<Vec<TunedThreshold>> {
    if args.out.exists() {
        // --force: nothing of the old model (its card, a threshold) may outlive it.
        std::fs::remove_dir_all(&args.out)
            .with_context(|| format!("removing the old model at {}", args.out.display()))?;
    }
    let tuned = trained
        .write(&args.out, |event| {
            let _ = shown.event(event);
        })
        .with_context(|| format!("writing the model to {}", args.out.display()))?;
    let checkpoints = checkpoint_dir(args);
    if args.mode != Mode::Head && checkpoints.exists() {
        std::fs::remove_dir_all(&checkpoints)
            .with_context(|| format!("removing {}", checkpoints.display()))?;
    }
    Ok(tuned)
}

fn print_summary(args: &TrainArgs, trained: &TrainedModel, started: Instant) -> anyhow::Result<()> {
    let labels = &trained.labels;
    writeln!(
        std::io::stdout().lock(),
        "trained {} ({} labels, {}, {}) on {} examples in {:.0} s: best epoch {} — validation {} {:.4}, accuracy {:.4}\nmodel written to {}",
        labels.name,
        labels.labels.len(),
        labels.problem_type,
        trained.mode,
        trained.train_examples,
        started.elapsed().as_secs_f64(),
        trained.best.epoch,
        labels.problem_type.validation_metric(),
        trained.best.valid_metric,
        trained.best.valid_accuracy,
        args.out.display()
    )?;
    if let Some(caveat) = trained.validation_caveat() {
        writeln!(std::io::stdout().lock(), "note: {caveat}")?;
    }
    Ok(())
}

/// What tuning the thresholds bought on validation, in one line.
fn print_thresholds(trained: &TrainedModel, tuned: &[TunedThreshold]) -> anyhow::Result<()> {
    let record = &trained.labels.metrics["validation_thresholds"];
    if tuned.is_empty() || record.is_null() {
        return Ok(());
    }
    let chosen = tuned
        .iter()
        .filter(|label| label.threshold.is_some())
        .count();
    let untuned = if chosen < tuned.len() {
        format!(
            " (the others have under {MIN_POSITIVES_TO_TUNE} positives and keep {})",
            trained.labels.problem_type.default_threshold()
        )
    } else {
        String::new()
    };
    let figure = |at: &str, metric: &str| record[at][metric].as_f64().unwrap_or(f64::NAN);
    writeln!(
        std::io::stdout().lock(),
        "thresholds tuned on validation for {chosen} of {} labels{untuned}: micro-F1 {:.4} → \
         {:.4}, macro-F1 {:.4} → {:.4} (in labels.json)",
        tuned.len(),
        figure("at_default", "micro_f1"),
        figure("tuned", "micro_f1"),
        figure("at_default", "macro_f1"),
        figure("tuned", "macro_f1"),
    )?;
    Ok(())
}

fn checkpoint_dir(args: &TrainArgs) -> PathBuf {
    args.checkpoints.clone().unwrap_or_else(|| {
        let mut name = args.out.as_os_str().to_owned();
        name.push(".checkpoints");
        PathBuf::from(name)
    })
}

/// Shows a run's events: a bar per phase on a terminal, lines in a log; stops fine-tuning
/// after `--stop-after` epochs of this run.
struct Shown {
    bar: ProgressBar,
    /// The validation metric's name.
    metric: &'static str,
    started: Instant,
    stop_after: Option<usize>,
    epochs_this_run: usize,
    average_loss: Option<f32>,
}

impl Shown {
    fn new(stop_after: Option<usize>, metric: &'static str) -> Self {
        Self {
            metric,
            bar: ProgressBar::new(0).with_style(style(
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} / eta {eta})",
            )),
            started: Instant::now(),
            stop_after,
            epochs_this_run: 0,
            average_loss: None,
        }
    }

    fn event(&mut self, event: TrainEvent<'_>) -> ControlFlow<()> {
        match event {
            TrainEvent::Texts { phase, done, total } => {
                self.bar.set_prefix(phase.to_owned());
                self.bar.set_length(total as u64);
                self.bar.set_position(done as u64);
                self.bar.set_message("texts");
            }
            TrainEvent::HeadEpoch { report, epochs } => {
                self.bar.set_prefix("training head, epoch");
                self.bar.set_length(epochs as u64);
                self.bar.set_position(report.epoch as u64);
                self.bar.set_message(format!(
                    "loss {:.4}  valid {} {:.4}",
                    report.train_loss, self.metric, report.valid_metric
                ));
            }
            TrainEvent::FineTune(progress) => return self.fine_tune(progress),
        }
        ControlFlow::Continue(())
    }

    fn fine_tune(&mut self, progress: &Progress) -> ControlFlow<()> {
        match progress {
            Progress::Caching { done, total } => {
                self.bar.set_prefix("running the frozen layers");
                self.bar.set_length(*total as u64);
                self.bar.set_position(*done as u64);
            }
            Progress::Resumed { epoch } => {
                self.say(format!("resuming after epoch {epoch} from its checkpoint"));
            }
            Progress::Step {
                epoch,
                batch,
                batches,
                loss,
            } => self.step(*epoch, *batch, *batches, *loss),
            Progress::Epoch(report) => {
                self.epochs_this_run += 1;
                self.say(format!(
                    "epoch {}: train loss {:.4}, validation {} {:.4}, accuracy {:.4}",
                    report.epoch,
                    report.train_loss,
                    self.metric,
                    report.valid_metric,
                    report.valid_accuracy
                ));
                if self.stop_after == Some(self.epochs_this_run) {
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn step(&mut self, epoch: usize, batch: usize, batches: usize, loss: f32) {
        if batch == 1 {
            self.bar.reset();
            self.bar.set_prefix(format!("epoch {epoch}"));
            self.bar.set_length(batches as u64);
            self.average_loss = None;
        }
        // A running mean over the last ~50 steps reads better than one batch's.
        let smoothed = self
            .average_loss
            .map_or(loss, |mean| 0.98 * mean + 0.02 * loss);
        self.average_loss = Some(smoothed);
        self.bar.set_position(batch as u64);
        self.bar.set_message(format!("loss {smoothed:.4}"));
        if self.bar.is_hidden() && batch.is_multiple_of(LOG_EVERY_BATCHES) {
            eprintln!(
                "epoch {epoch}: batch {batch}/{batches}, loss {smoothed:.4}, {:.0} s",
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    /// A line above the bar on a terminal; on stderr when the bar is hidden (a log file).
    fn say(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}
