//! A training run from labelled texts to a model directory, the recipe `tweetclf train`
//! follows, as one library call: a [`TrainSpec`] and the data in, a [`TrainedModel`] out
//! (written with [`TrainedModel::write`]). Progress comes as [`TrainEvent`]s for the caller
//! to show; a caller may stop fine-tuning at an epoch's end.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor};
use serde_json::json;
use tweets::{CleaningRule, CleaningVersion, EmojiMode};

use crate::evaluate::{
    EvaluationError, Judged, MIN_POSITIVES_TO_TUNE, TunedThreshold, decided_with, evaluate, judge,
    tune_thresholds,
};
use crate::export::{ExportError, write_model_dir};
use crate::finetune::{BaseModel, Checkpoints, FineTuning, Progress, TokenizedExamples};
use crate::labels::{HeadSpec, LABELS_FORMAT_VERSION, Pooling, Preprocessing};
use crate::model_dir::LABELS_FILE;
use crate::train::{EpochReport, Examples, HeadTraining, SeededRng, TrainError, train_head};
use crate::trainable_bert::Trainable;
use crate::{Classifier, InferenceOptions, LabelsFile, LoadError, ProblemType, TextEncoder};

/// Texts embedded or tokenized between two progress events.
const CHUNK: usize = 256;
/// The longest text the model sees, in tokens.
const MAX_TOKENS: usize = 128;

/// One labelled text.
#[derive(Debug, Clone, Copy)]
pub struct Example<'a> {
    pub text: &'a str,
    pub labels: &'a [String],
}

/// What learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learning {
    /// A head over the frozen encoder's text vectors (minutes on two cores).
    Head,
    /// The top `n` encoder layers and a head.
    TopLayers(usize),
    /// The whole encoder and a head; the word embeddings only if asked.
    Encoder { word_embeddings: bool },
}

/// Everything a training run is decided by, but the data.
#[derive(Debug, Clone)]
pub struct TrainSpec {
    /// The base encoder's model directory.
    pub base: PathBuf,
    pub name: String,
    pub version: String,
    pub learning: Learning,
    /// A hidden layer of this size in the head; `None`: a linear head.
    pub hidden_size: Option<usize>,
    /// `None`: the defaults of [`HeadTraining`] or [`FineTuning`].
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub patience: Option<usize>,
    pub learning_rate: f64,
    pub encoder_learning_rate: f64,
    pub dropout: f32,
    pub class_weighting: bool,
    pub seed: u64,
    /// Seeded random samples of the training and validation sets.
    pub limit: Option<usize>,
    pub valid_limit: Option<usize>,
    pub cleaning: CleaningVersion,
    pub leave_out_rule: Option<CleaningRule>,
    pub emoji: EmojiMode,
    /// Where fine-tuning checkpoints each epoch.
    pub checkpoints: Option<Checkpoints>,
    pub threads: Option<usize>,
    /// Recorded in `labels.json` beside what the run itself records (files, command line).
    pub provenance: serde_json::Map<String, serde_json::Value>,
}

/// How far a run is.
#[derive(Debug)]
pub enum TrainEvent<'a> {
    /// Texts of `phase` ("embedding train", "tokenizing valid") done so far.
    Texts {
        phase: &'a str,
        done: usize,
        total: usize,
    },
    /// An epoch of head-only training ended, of at most `epochs`.
    HeadEpoch {
        report: &'a EpochReport,
        epochs: usize,
    },
    FineTune(&'a Progress),
}

/// A trained model, ready to be written as a model directory.
#[derive(Debug)]
pub struct TrainedModel {
    pub labels: LabelsFile,
    pub best: EpochReport,
    /// How the model learned, in words ("fine-tuned: top 2 encoder layers and head").
    pub mode: String,
    pub train_examples: usize,
    pub valid_examples: usize,
    /// Every epoch's figures, across resumptions.
    pub history: Vec<EpochReport>,
    tensors: HashMap<String, Tensor>,
    base: PathBuf,
    /// A multi-label model's validation texts and labels, kept to tune its thresholds on
    /// once written (empty for single-label).
    threshold_examples: Vec<(String, Vec<String>)>,
}

/// Below this many validation examples, the validation figures move by whole points with each
/// example: a head then runs its whole schedule and keeps the last epoch rather than the
/// epoch that happened to score best (on 60 disaster messages, binary `aid_related`, 5 seeds:
/// macro-F1 on 600 held-back messages 0.623 median vs 0.558 choosing by validation).
const TRUSTED_VALIDATION: usize = 100;

impl TrainedModel {
    /// What to say when the validation set is too small for its figures to mean much.
    pub fn validation_caveat(&self) -> Option<String> {
        (self.valid_examples < TRUSTED_VALIDATION).then(|| {
            format!(
                "validation has only {} examples: each one moves accuracy by {:.1} points, so \
                 these figures say little (a head keeps its last epoch rather than choosing by \
                 them); hold out at least {} labelled examples to trust them",
                self.valid_examples,
                100.0 / self.valid_examples.max(1) as f64,
                TRUSTED_VALIDATION
            )
        })
    }

    /// Writes the model directory: the base's encoder with the trained tensors, in f16. A
    /// multi-label model then classifies its validation set through the written directory
    /// (the f16 weights inference runs) and records each label's tuned threshold in
    /// `labels.json` ([`tune_thresholds`]); what was tuned is returned.
    pub fn write(
        &mut self,
        out: &Path,
        mut on_event: impl FnMut(TrainEvent<'_>),
    ) -> Result<Vec<TunedThreshold>, WriteError> {
        write_model_dir(&self.base, out, &self.tensors, &self.labels, DType::F16)?;
        if self.threshold_examples.is_empty() {
            return Ok(Vec::new());
        }
        let judged = self.judge_validation(out, &mut on_event)?;
        let tuned = tune_thresholds(
            &self.labels.labels,
            &judged,
            self.labels.problem_type.default_threshold(),
            MIN_POSITIVES_TO_TUNE,
        )?;
        for choice in &tuned {
            if let Some(threshold) = choice.threshold {
                self.labels
                    .thresholds
                    .insert(choice.label.clone(), threshold);
            }
        }
        let at_default = evaluate(&self.labels.labels, self.labels.problem_type, &judged)?;
        let at_tuned = evaluate(
            &self.labels.labels,
            self.labels.problem_type,
            &decided_with(&self.labels, &judged),
        )?;
        self.labels.metrics["validation_thresholds"] = json!({
            "min_positives": MIN_POSITIVES_TO_TUNE,
            "at_default": {"micro_f1": at_default.micro_f1, "macro_f1": at_default.macro_f1},
            "tuned": {"micro_f1": at_tuned.micro_f1, "macro_f1": at_tuned.macro_f1},
            "labels": tuned,
        });
        self.labels.write(out).map_err(WriteError::Labels)?;
        Ok(tuned)
    }

    /// The written model's decisions (at its default thresholds) on the validation set.
    fn judge_validation(
        &self,
        out: &Path,
        on_event: &mut impl FnMut(TrainEvent<'_>),
    ) -> Result<Vec<Judged>, WriteError> {
        let classifier = Classifier::load(out, InferenceOptions::default())?;
        let total = self.threshold_examples.len();
        let judged = judge(
            &classifier,
            &self.threshold_examples,
            |(text, labels)| (text.as_str(), labels.as_slice()),
            |done| {
                on_event(TrainEvent::Texts {
                    phase: "tuning thresholds on valid",
                    done,
                    total,
                });
            },
        )?;
        Ok(judged)
    }
}

/// Why a trained model could not be written whole.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("loading the written model to tune its thresholds")]
    Load(#[from] LoadError),
    #[error("classifying the validation set to tune thresholds")]
    Predict(#[from] crate::PredictError),
    #[error("tuning thresholds")]
    Evaluation(#[from] EvaluationError),
    #[error("writing the tuned thresholds to labels.json")]
    Labels(#[source] std::io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{0}")]
    Data(String),
    #[error("loading the base encoder from {dir}")]
    Base {
        dir: PathBuf,
        #[source]
        source: LoadError,
    },
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("encoding the texts")]
    Encode(#[from] crate::PredictError),
    #[error("building the training thread pool")]
    Threads(#[from] rayon::ThreadPoolBuildError),
}

/// What a mode hands back for the model directory.
struct Trained {
    tensors: HashMap<String, Tensor>,
    best: EpochReport,
    history: Vec<EpochReport>,
    epochs_run: usize,
    mode: String,
    settings: serde_json::Value,
    details: serde_json::Value,
}

/// The data of a run, once checked and sampled.
struct Data<'a> {
    train: Vec<Example<'a>>,
    valid: Vec<Example<'a>>,
    names: Vec<String>,
    problem_type: ProblemType,
}

/// Trains a model on `train`, stopping early on `valid`. `multi_label` says the data has any
/// number of labels per text (else exactly one).
pub fn train_model(
    spec: &TrainSpec,
    train: Vec<Example<'_>>,
    valid: Vec<Example<'_>>,
    multi_label: bool,
    mut on_event: impl FnMut(TrainEvent<'_>) -> ControlFlow<()> + Send,
) -> Result<TrainedModel, RecipeError> {
    let started = Instant::now();
    let data = checked_data(spec, train, valid, multi_label)?;
    let base_error = |source| RecipeError::Base {
        dir: spec.base.clone(),
        source,
    };
    let recipe = crate::model_dir::read_encoder_recipe(&spec.base).map_err(base_error)?;
    let preprocessing = Preprocessing {
        cleaning_version: spec.cleaning,
        cleaning_left_out: spec.leave_out_rule,
        emoji: spec.emoji,
        max_tokens: MAX_TOKENS,
        text_prefix: recipe.text_prefix,
    };
    preprocessing
        .validate()
        .map_err(|error| RecipeError::Data(format!("cleaning: {error}")))?;
    let options = InferenceOptions {
        threads: spec.threads,
        ..InferenceOptions::default()
    };
    let encoder = TextEncoder::load_base(&spec.base, &preprocessing, recipe.pooling, options)
        .map_err(base_error)?;
    let trained = match spec.learning {
        Learning::Head => head_only(spec, &encoder, &data, &mut on_event)?,
        _ => {
            let mut work = || fine_tuned(spec, &encoder, &data, recipe.pooling, &mut on_event);
            match spec.threads {
                Some(threads) => rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()?
                    .install(work)?,
                None => work()?,
            }
        }
    };
    let provenance = provenance(spec, &data, &trained, started);
    let labels = LabelsFile {
        format_version: LABELS_FORMAT_VERSION,
        name: spec.name.clone(),
        version: spec.version.clone(),
        labels: data.names.clone(),
        problem_type: data.problem_type,
        thresholds: Default::default(),
        pooling: recipe.pooling,
        head: HeadSpec {
            hidden_size: spec.hidden_size,
        },
        preprocessing,
        provenance,
        metrics: json!({
            "validation": {
                data.problem_type.validation_metric(): trained.best.valid_metric,
                "accuracy": trained.best.valid_accuracy,
                "epoch": trained.best.epoch,
            }
        }),
    };
    Ok(TrainedModel {
        labels,
        best: trained.best,
        mode: trained.mode,
        train_examples: data.train.len(),
        valid_examples: data.valid.len(),
        history: trained.history,
        tensors: trained.tensors,
        base: spec.base.clone(),
        threshold_examples: if data.problem_type == ProblemType::MultiLabel {
            data.valid
                .iter()
                .map(|example| (example.text.to_owned(), example.labels.to_vec()))
                .collect()
        } else {
            Vec::new()
        },
    })
}

/// Refuses validation labels training never saw, and samples both sets as asked.
fn checked_data<'a>(
    spec: &TrainSpec,
    mut train: Vec<Example<'a>>,
    mut valid: Vec<Example<'a>>,
    multi_label: bool,
) -> Result<Data<'a>, RecipeError> {
    let names = label_names(&train);
    if let Some(unknown) = label_names(&valid)
        .into_iter()
        .find(|label| !names.contains(label))
    {
        return Err(RecipeError::Data(format!(
            "validation label `{unknown}` never appears in the training data"
        )));
    }
    let mut rng = SeededRng::new(spec.seed);
    sample(&mut train, spec.limit, &mut rng);
    sample(&mut valid, spec.valid_limit, &mut rng);
    Ok(Data {
        train,
        valid,
        names,
        problem_type: if multi_label {
            ProblemType::MultiLabel
        } else {
            ProblemType::SingleLabel
        },
    })
}

/// Every label seen, sorted.
fn label_names(examples: &[Example<'_>]) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> =
        examples.iter().flat_map(|example| example.labels).collect();
    names.into_iter().cloned().collect()
}

fn sample(examples: &mut Vec<Example<'_>>, limit: Option<usize>, rng: &mut SeededRng) {
    if let Some(limit) = limit.filter(|limit| *limit < examples.len()) {
        rng.shuffle(examples);
        examples.truncate(limit);
    }
}

/// What `labels.json` records of the run: the caller's entries (files, command line), then
/// the base, the mode, the settings and the history.
fn provenance(
    spec: &TrainSpec,
    data: &Data<'_>,
    trained: &Trained,
    started: Instant,
) -> serde_json::Value {
    let mut record = spec.provenance.clone();
    record.insert("base_model".to_owned(), base_model_source(&spec.base));
    record.insert("mode".to_owned(), json!(trained.mode));
    for (set, examples) in [("train", &data.train), ("valid", &data.valid)] {
        let entry = record.entry(set).or_insert_with(|| json!({}));
        if let Some(entry) = entry.as_object_mut() {
            entry.insert("examples".to_owned(), json!(examples.len()));
        }
    }
    record.insert("training".to_owned(), trained.settings.clone());
    record.insert("epochs_run".to_owned(), json!(trained.epochs_run));
    record.insert(
        "wall_seconds_this_run".to_owned(),
        json!(started.elapsed().as_secs()),
    );
    record.insert("details".to_owned(), trained.details.clone());
    serde_json::Value::Object(record)
}

/// What the base directory says it is: `SOURCE.json` (written by models/fetch-base*.sh), or
/// for a trained model directory its name, version and own base; else its path.
fn base_model_source(base: &Path) -> serde_json::Value {
    let read = |file: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(base.join(file)).ok()?).ok()
    };
    if let Some(source) = read("SOURCE.json") {
        return source;
    }
    match read(LABELS_FILE) {
        Some(labels) => json!({
            "encoder_of": {"name": labels["name"], "version": labels["version"]},
            "dir": base.display().to_string(),
            "base_model": labels["provenance"]["base_model"],
        }),
        None => json!(base.display().to_string()),
    }
}

/// A head takes at least this many optimizer steps by default: a small set makes one step an
/// epoch, and 60 such epochs leave the head barely moved from its random start.
const HEAD_MIN_STEPS: usize = 1_000;
/// …within this many epochs (a head epoch over cached vectors costs milliseconds).
const HEAD_MAX_EPOCHS: usize = 500;

/// Default epochs and patience of head training for `examples` in batches of `batch_size`:
/// 60 epochs and patience 8 on large sets; on small ones enough epochs for
/// [`HEAD_MIN_STEPS`] steps, with patience an eighth of them (a tiny validation set's metric
/// stays flat for long stretches while the head still improves).
fn head_schedule(examples: usize, batch_size: usize) -> (usize, usize) {
    let defaults = HeadTraining::default();
    let steps_per_epoch = examples.div_ceil(batch_size.max(1)).max(1);
    let epochs = HEAD_MIN_STEPS
        .div_ceil(steps_per_epoch)
        .clamp(defaults.epochs, HEAD_MAX_EPOCHS);
    (epochs, defaults.patience.max(epochs / 8))
}

fn head_only(
    spec: &TrainSpec,
    encoder: &TextEncoder,
    data: &Data<'_>,
    on_event: &mut impl FnMut(TrainEvent<'_>) -> ControlFlow<()>,
) -> Result<Trained, RecipeError> {
    let started = Instant::now();
    let mut embed = |examples: &[Example<'_>], phase: &str| -> Result<Examples, RecipeError> {
        Ok(Examples {
            features: in_chunks(examples, phase, on_event, |texts| {
                Ok(encoder.embed(texts)?.0)
            })?,
            targets: targets(examples, &data.names),
        })
    };
    let train_examples = embed(&data.train, "embedding train")?;
    let valid_examples = embed(&data.valid, "embedding valid")?;
    let embedded = started.elapsed();
    let defaults = HeadTraining::default();
    let batch_size = spec.batch_size.unwrap_or(defaults.batch_size);
    let (epochs, patience) = head_schedule(data.train.len(), batch_size);
    let config = HeadTraining {
        problem_type: data.problem_type,
        hidden_size: spec.hidden_size,
        epochs: spec.epochs.unwrap_or(epochs),
        batch_size,
        learning_rate: spec.learning_rate,
        patience: spec.patience.unwrap_or(patience),
        select_on_validation: data.valid.len() >= TRUSTED_VALIDATION,
        class_weighting: spec.class_weighting,
        seed: spec.seed,
        ..defaults
    };
    let trained = train_head(&train_examples, &valid_examples, &config, |report| {
        let _ = on_event(TrainEvent::HeadEpoch {
            report,
            epochs: config.epochs,
        });
    })?;
    Ok(Trained {
        tensors: trained.tensors,
        best: trained.best,
        epochs_run: trained.history.len(),
        mode: "head-only over the frozen encoder".to_owned(),
        settings: serde_json::to_value(&config).unwrap_or_default(),
        details: json!({
            "embedding_seconds": embedded.as_secs(),
            "training_seconds": started.elapsed().as_secs(),
            "history": trained.history,
        }),
        history: trained.history,
    })
}

fn fine_tuned(
    spec: &TrainSpec,
    encoder: &TextEncoder,
    data: &Data<'_>,
    pooling: Pooling,
    on_event: &mut impl FnMut(TrainEvent<'_>) -> ControlFlow<()>,
) -> Result<Trained, RecipeError> {
    let base = BaseModel::load(&spec.base).map_err(|source| RecipeError::Base {
        dir: spec.base.clone(),
        source,
    })?;
    let trainable = trainable(spec.learning, base.layers())?;
    let mut tokenize = |examples: &[Example<'_>], phase: &str| {
        Ok::<_, RecipeError>(TokenizedExamples {
            ids: in_chunks(examples, phase, on_event, |texts| {
                Ok(encoder.tokenize(texts)?)
            })?,
            targets: targets(examples, &data.names),
        })
    };
    let train_examples = tokenize(&data.train, "tokenizing train")?;
    let valid_examples = tokenize(&data.valid, "tokenizing valid")?;
    let defaults = FineTuning::default();
    let settings = FineTuning {
        trainable,
        problem_type: data.problem_type,
        pooling,
        hidden_size: spec.hidden_size,
        epochs: spec.epochs.unwrap_or(defaults.epochs),
        batch_size: spec.batch_size.unwrap_or(defaults.batch_size),
        encoder_learning_rate: spec.encoder_learning_rate,
        head_learning_rate: spec.learning_rate,
        dropout: spec.dropout,
        patience: spec.patience.unwrap_or(defaults.patience),
        class_weighting: spec.class_weighting,
        seed: spec.seed,
        ..defaults
    };
    let tuned = base.fine_tune(
        &train_examples,
        &valid_examples,
        &settings,
        spec.checkpoints.as_ref(),
        |progress| on_event(TrainEvent::FineTune(progress)),
    )?;
    Ok(Trained {
        tensors: tuned.tensors,
        best: tuned.best,
        epochs_run: tuned.history.len(),
        mode: describe(trainable),
        settings: serde_json::to_value(&settings).unwrap_or_default(),
        details: json!({
            "training_seconds": tuned.training_seconds.round(),
            "resumed_after_epoch": tuned.resumed_after,
            "history": tuned.history,
        }),
        history: tuned.history,
    })
}

fn trainable(learning: Learning, layers: usize) -> Result<Trainable, RecipeError> {
    match learning {
        Learning::TopLayers(count) if (1..=layers).contains(&count) => {
            Ok(Trainable::TopLayers(count))
        }
        Learning::TopLayers(count) => Err(RecipeError::Data(format!(
            "{count} top layers to train: the base encoder has {layers} layers"
        ))),
        Learning::Encoder { word_embeddings } => Ok(Trainable::All { word_embeddings }),
        Learning::Head => Err(RecipeError::Data(
            "head-only training fine-tunes no encoder layer".to_owned(),
        )),
    }
}

fn describe(trainable: Trainable) -> String {
    match trainable {
        Trainable::TopLayers(count) => format!("fine-tuned: top {count} encoder layers and head"),
        Trainable::All {
            word_embeddings: true,
        } => "fine-tuned: whole encoder and head".to_owned(),
        Trainable::All {
            word_embeddings: false,
        } => "fine-tuned: whole encoder (word embeddings frozen) and head".to_owned(),
    }
}

/// One-hot or multi-hot rows, in the order of `names`.
fn targets(examples: &[Example<'_>], names: &[String]) -> Vec<Vec<f32>> {
    examples
        .iter()
        .map(|example| {
            names
                .iter()
                .map(|name| f32::from(u8::from(example.labels.contains(name))))
                .collect()
        })
        .collect()
}

/// Runs `texts → rows` over `examples` in chunks, with a progress event after each.
fn in_chunks<T>(
    examples: &[Example<'_>],
    phase: &str,
    on_event: &mut impl FnMut(TrainEvent<'_>) -> ControlFlow<()>,
    mut work: impl FnMut(&[&str]) -> Result<Vec<T>, RecipeError>,
) -> Result<Vec<T>, RecipeError> {
    let mut rows = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(CHUNK) {
        let texts: Vec<&str> = chunk.iter().map(|example| example.text).collect();
        rows.extend(work(&texts)?);
        let _ = on_event(TrainEvent::Texts {
            phase,
            done: rows.len(),
            total: examples.len(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_train_the_head_longer_and_more_patiently() {
        // 8,000 examples: 125 steps an epoch; the defaults stand.
        assert_eq!(head_schedule(8_000, 64), (60, 8));
        // 2,000: 32 steps an epoch; 1,000 steps would be 32 epochs, under the floor of 60.
        assert_eq!(head_schedule(2_000, 64), (60, 8));
        // 300: 5 steps an epoch, 200 epochs, patience 25.
        assert_eq!(head_schedule(300, 64), (200, 25));
        // 60: one step an epoch; capped at 500 epochs, patience 62.
        assert_eq!(head_schedule(60, 64), (500, 62));
        assert_eq!(head_schedule(0, 0), (500, 62));
    }
}
