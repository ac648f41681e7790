//! Fine-tuning the encoder together with a new head: the top layers or the whole encoder.
//! Seeded end to end, length-bucketed batches (padding costs more than anything else on two
//! cores), parameter groups (encoder / head rates, no weight decay on biases and LayerNorm),
//! warm-up and linear decay, gradient clipping, class weights, early stopping on the
//! validation metric, and a checkpoint after every epoch that a later run resumes from
//! exactly (weights, optimizer moments and the random generator).
//!
//! In top-layer mode the frozen layers below never change, so their output is computed once,
//! by the fast inference encoder, and kept in memory.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use serde::Serialize;

use crate::bert::{BertEncoder, Precision};
use crate::checkpoint::{
    CheckpointState, STATE_FORMAT, fingerprint, read_checkpoint, restore, write_checkpoint,
};
use crate::engine::{l2_normalize, map_weights};
use crate::labels::{Pooling, PoolingKind, ProblemType};
use crate::model_dir::{CONFIG_FILE, LoadError, ModelFiles};
use crate::optimizer::{AdamW, ParamGroup};
use crate::train::{
    EpochReport, SeededRng, TrainError, TrainableHead, check_gradients, label_weights,
    learning_rate_at, loss, score, snapshot,
};
use crate::trainable_bert::{Dropout, Trainable, TrainableBert, padding_mask};

/// Texts as token ids (cleaned and tokenized as at inference), with their targets: one-hot
/// (single-label) or multi-hot (multi-label).
#[derive(Debug, Clone, Default)]
pub struct TokenizedExamples {
    pub ids: Vec<Vec<u32>>,
    pub targets: Vec<Vec<f32>>,
}

impl TokenizedExamples {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FineTuning {
    pub trainable: Trainable,
    pub problem_type: ProblemType,
    pub pooling: Pooling,
    /// A hidden layer (with GELU) in the head, or a linear head.
    pub hidden_size: Option<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub encoder_learning_rate: f64,
    pub head_learning_rate: f64,
    pub weight_decay: f64,
    /// Share of all steps spent warming the learning rates up from zero.
    pub warmup_share: f64,
    pub dropout: f32,
    /// Gradients are scaled down to this global L2 norm.
    pub max_grad_norm: f64,
    pub class_weighting: bool,
    /// Stop after this many epochs without a better validation metric.
    pub patience: usize,
    pub seed: u64,
}

impl Default for FineTuning {
    /// The usual BERT fine-tuning recipe, on the top two layers.
    fn default() -> Self {
        Self {
            trainable: Trainable::TopLayers(2),
            problem_type: ProblemType::SingleLabel,
            pooling: Pooling {
                kind: PoolingKind::Mean,
                normalize: true,
            },
            hidden_size: None,
            epochs: 3,
            batch_size: 32,
            encoder_learning_rate: 1e-4,
            head_learning_rate: 3e-3,
            weight_decay: 0.01,
            warmup_share: 0.06,
            dropout: 0.1,
            max_grad_norm: 1.0,
            class_weighting: true,
            patience: 2,
            seed: 42,
        }
    }
}

/// Where checkpoints go, and whether one found there is resumed (else it is refused, so that
/// a finished or running job's state is never overwritten by accident).
#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub dir: PathBuf,
    pub resume: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Running the frozen lower layers over every text, once.
    Caching {
        done: usize,
        total: usize,
    },
    Resumed {
        epoch: usize,
    },
    Step {
        epoch: usize,
        batch: usize,
        batches: usize,
        loss: f32,
    },
    /// An epoch ended and its checkpoint is written; `Break` stops the run there.
    Epoch(EpochReport),
}

/// The best epoch's weights: the encoder variables that trained and the head, named as in
/// `model.safetensors`.
#[derive(Debug)]
pub struct FineTuned {
    pub tensors: HashMap<String, Tensor>,
    pub best: EpochReport,
    pub history: Vec<EpochReport>,
    /// The epoch a checkpoint resumed after, if one did.
    pub resumed_after: Option<usize>,
    /// Training time over every run that led here (resumed runs included), caching and
    /// validation included.
    pub training_seconds: f64,
}

/// A base encoder to fine-tune: its weights mapped read-only, and its configuration.
pub struct BaseModel {
    vb: VarBuilder<'static>,
    config: Config,
}

impl std::fmt::Debug for BaseModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseModel")
            .field("layers", &self.config.num_hidden_layers)
            .field("hidden_size", &self.config.hidden_size)
            .finish_non_exhaustive()
    }
}

impl BaseModel {
    /// Reads `config.json` and maps `model.safetensors` of a model directory.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let files = ModelFiles::read_encoder_metadata(dir)?;
        let config: Config = serde_json::from_slice(&files.config)
            .map_err(|error| LoadError::invalid(CONFIG_FILE, error.to_string()))?;
        Ok(Self {
            vb: map_weights(dir)?,
            config,
        })
    }

    pub fn layers(&self) -> usize {
        self.config.num_hidden_layers
    }

    /// Fine-tunes this encoder: see [`fine_tune`].
    pub fn fine_tune(
        &self,
        train: &TokenizedExamples,
        valid: &TokenizedExamples,
        settings: &FineTuning,
        checkpoints: Option<&Checkpoints>,
        on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<FineTuned, TrainError> {
        fine_tune(
            self.vb.clone(),
            &self.config,
            train,
            valid,
            settings,
            checkpoints,
            on_progress,
        )
    }
}

/// Texts per batch when running the frozen layers or evaluating.
const INFERENCE_BATCH: usize = 64;

/// Fine-tunes the encoder in `vb` (a base model) with a new head. `on_progress` may stop the
/// run at an epoch's end, after its checkpoint: the result is then `TrainError::Stopped`.
pub fn fine_tune(
    vb: VarBuilder,
    config: &Config,
    train: &TokenizedExamples,
    valid: &TokenizedExamples,
    settings: &FineTuning,
    checkpoints: Option<&Checkpoints>,
    mut on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<FineTuned, TrainError> {
    let started = std::time::Instant::now();
    let labels = check_examples(train, valid, config)?;
    let bert = TrainableBert::load(vb.clone(), config, settings.trainable)?;
    let inputs = training_inputs(vb, config, &bert, train, valid, settings, &mut on_progress)?;
    let mut trainer = Trainer::new(bert, config, labels, train, settings)?;
    let fingerprint = fingerprint(settings, train, valid);
    let mut run = Run::default();
    if let Some(checkpoints) = checkpoints
        && let Some(state) = read_checkpoint(checkpoints, &fingerprint)?
    {
        run = trainer.resume(&checkpoints.dir, state)?;
        let _ = on_progress(&Progress::Resumed {
            epoch: run.resumed_after.unwrap_or_default(),
        });
    }
    let first_epoch = run.resumed_after.map_or(1, |epoch| epoch + 1);
    for epoch in first_epoch..=settings.epochs {
        if patience_exhausted(run.best_report(), epoch - 1, settings) {
            break;
        }
        let check = epoch == first_epoch;
        let train_loss = trainer.train_epoch(&inputs, train, epoch, check, &mut on_progress)?;
        let report = trainer.validate(&inputs, valid, epoch, train_loss)?;
        run.record(report, &trainer.vars)?;
        if let Some(checkpoints) = checkpoints {
            let elapsed = run.earlier_seconds + started.elapsed().as_secs_f64();
            trainer.checkpoint(&checkpoints.dir, &run, &fingerprint, epoch, elapsed)?;
        }
        if on_progress(&Progress::Epoch(report)).is_break() && epoch < settings.epochs {
            return Err(TrainError::Stopped { epoch });
        }
    }
    let (best, tensors) = run
        .best
        .ok_or_else(|| TrainError::Data("no epoch was run (epochs = 0)".to_owned()))?;
    Ok(FineTuned {
        tensors,
        best,
        history: run.history,
        resumed_after: run.resumed_after,
        training_seconds: run.earlier_seconds + started.elapsed().as_secs_f64(),
    })
}

/// What the trainable layers see: token ids, or the frozen lower layers' output computed
/// once for every example (fine-tuning the top layers only).
fn training_inputs(
    vb: VarBuilder,
    config: &Config,
    bert: &TrainableBert,
    train: &TokenizedExamples,
    valid: &TokenizedExamples,
    settings: &FineTuning,
    on_progress: &mut impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Inputs, TrainError> {
    if matches!(settings.trainable, Trainable::All { .. }) {
        return Ok(Inputs::Ids);
    }
    let frozen_layers = bert.frozen_layers(config);
    // The frozen layers compute what inference will compute under them.
    let lower = BertEncoder::load(vb, config, Precision::default())?;
    let total = train.len() + valid.len();
    let mut done = 0;
    let mut cache = |set: &TokenizedExamples| {
        run_lower_layers(&lower, &set.ids, frozen_layers, |count| {
            done += count;
            let _ = on_progress(&Progress::Caching { done, total });
        })
    };
    Ok(Inputs::Hidden {
        hidden_size: config.hidden_size,
        train: cache(train)?,
        valid: cache(valid)?,
    })
}

/// The history of a run, across resumptions, and its best epoch with that epoch's weights.
#[derive(Default)]
struct Run {
    history: Vec<EpochReport>,
    best: Option<(EpochReport, HashMap<String, Tensor>)>,
    resumed_after: Option<usize>,
    earlier_seconds: f64,
}

impl Run {
    fn best_report(&self) -> Option<&EpochReport> {
        self.best.as_ref().map(|(report, _)| report)
    }

    /// Adds an epoch, keeping the weights of `vars` when it is the best so far.
    fn record(&mut self, report: EpochReport, vars: &[(String, Var)]) -> Result<(), TrainError> {
        self.history.push(report);
        if self
            .best_report()
            .is_none_or(|best| report.valid_metric > best.valid_metric)
        {
            self.best = Some((report, snapshot(vars)?));
        }
        Ok(())
    }
}

/// The model being trained, its optimizer and schedule, and the seeded randomness of
/// batching and dropout.
struct Trainer<'a> {
    bert: TrainableBert,
    head: TrainableHead,
    /// Encoder then head variables, by name: what checkpoints and snapshots hold.
    vars: Vec<(String, Var)>,
    optimizer: AdamW,
    /// Per-label loss weights (ones without class weighting).
    weights: Tensor,
    rng: SeededRng,
    lengths: Vec<usize>,
    warmup_steps: usize,
    total_steps: usize,
    settings: &'a FineTuning,
}

impl<'a> Trainer<'a> {
    fn new(
        bert: TrainableBert,
        config: &Config,
        labels: usize,
        train: &TokenizedExamples,
        settings: &'a FineTuning,
    ) -> Result<Self, TrainError> {
        let mut rng = SeededRng::new(settings.seed);
        let head = TrainableHead::new(config.hidden_size, settings.hidden_size, labels, &mut rng)?;
        let encoder_vars = bert.vars().to_vec();
        let head_vars = head.vars();
        let optimizer = AdamW::new(parameter_groups(&encoder_vars, &head_vars, settings))?;
        let vars = encoder_vars.into_iter().chain(head_vars).collect();
        let weights = label_weights(
            &train.targets,
            settings.problem_type,
            settings.class_weighting,
        )?;
        let batches_per_epoch = train.len().div_ceil(settings.batch_size.max(1));
        let total_steps = (batches_per_epoch * settings.epochs).max(1);
        Ok(Self {
            bert,
            head,
            vars,
            optimizer,
            weights,
            rng,
            lengths: train.ids.iter().map(Vec::len).collect(),
            warmup_steps: ((total_steps as f64) * settings.warmup_share).ceil() as usize,
            total_steps,
            settings,
        })
    }

    /// Restores weights, optimizer and randomness from a checkpoint; returns the run so far.
    fn resume(&mut self, dir: &Path, state: CheckpointState) -> Result<Run, TrainError> {
        restore(dir, &state, &self.vars, &mut self.optimizer)?;
        self.rng = SeededRng::from_state(state.rng);
        let best = match state.best {
            Some(report) => {
                let tensors =
                    candle_core::safetensors::load(dir.join(&state.best_file), &Device::Cpu)?;
                Some((report, tensors))
            }
            None => None,
        };
        Ok(Run {
            history: state.history,
            best,
            resumed_after: Some(state.epoch),
            earlier_seconds: state.elapsed_seconds,
        })
    }

    /// One pass over the training set; returns the mean training loss. `check` verifies
    /// that every trainable variable receives a gradient (stock Candle BERT silently does not).
    fn train_epoch(
        &mut self,
        inputs: &Inputs,
        train: &TokenizedExamples,
        epoch: usize,
        check: bool,
        on_progress: &mut impl FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<f32, TrainError> {
        let batches = bucketed_batches(
            &self.lengths,
            self.settings.batch_size.max(1),
            &mut self.rng,
        );
        let mut loss_sum = 0f32;
        for (index, batch) in batches.iter().enumerate() {
            let batch_loss = self.step(inputs, train, batch, check && index == 0)?;
            loss_sum += batch_loss * batch.len() as f32;
            let _ = on_progress(&Progress::Step {
                epoch,
                batch: index + 1,
                batches: batches.len(),
                loss: batch_loss,
            });
        }
        Ok(loss_sum / train.len() as f32)
    }

    /// One optimizer step on one batch; returns its loss.
    fn step(
        &mut self,
        inputs: &Inputs,
        train: &TokenizedExamples,
        batch: &[usize],
        check: bool,
    ) -> Result<f32, TrainError> {
        let settings = self.settings;
        let step = self.optimizer.steps() + 1;
        let (input, mask) = inputs.batch(Set::Train, train, batch)?;
        let rate = settings.dropout;
        let dropout = Some(Dropout {
            rate,
            rng: &mut self.rng,
        });
        let hidden = self.bert.forward(&input, &mask, dropout)?;
        let pooled = pool_masked(&hidden, &mask, settings.pooling)?;
        let pooled = Dropout {
            rate,
            rng: &mut self.rng,
        }
        .apply(&pooled)?;
        let batch_loss = loss(
            &self.head.forward(&pooled)?,
            &rows(&train.targets, batch)?,
            &self.weights,
            settings.problem_type,
        )?;
        let gradients = batch_loss.backward()?;
        if check {
            check_gradients(&self.vars, &gradients)?;
        }
        self.optimizer.step(
            &gradients,
            learning_rate_at(step, self.warmup_steps, self.total_steps),
            Some(settings.max_grad_norm),
        )?;
        Ok(batch_loss.to_scalar::<f32>()?)
    }

    /// Scores the validation set without dropout.
    fn validate(
        &self,
        inputs: &Inputs,
        valid: &TokenizedExamples,
        epoch: usize,
        train_loss: f32,
    ) -> Result<EpochReport, TrainError> {
        let pooling = self.settings.pooling;
        let logits = predict(&self.bert, &self.head, inputs, valid, pooling)?;
        let (valid_metric, valid_accuracy) =
            score(&logits, &valid.targets, self.settings.problem_type)?;
        Ok(EpochReport {
            epoch,
            train_loss,
            valid_metric,
            valid_accuracy,
        })
    }

    fn checkpoint(
        &self,
        dir: &Path,
        run: &Run,
        fingerprint: &serde_json::Value,
        epoch: usize,
        elapsed_seconds: f64,
    ) -> Result<(), TrainError> {
        let state = CheckpointState {
            format: STATE_FORMAT,
            fingerprint: fingerprint.clone(),
            epoch,
            steps: self.optimizer.steps(),
            rng: self.rng.state(),
            elapsed_seconds,
            history: run.history.clone(),
            best: run.best_report().copied(),
            weights_file: format!("epoch-{epoch}.safetensors"),
            best_file: format!("best-{epoch}.safetensors"),
        };
        let best = run.best.as_ref().map(|(_, tensors)| tensors);
        write_checkpoint(dir, &state, &self.vars, &self.optimizer, best)
    }
}

/// Whether the last `patience` epochs brought nothing better than the best so far.
fn patience_exhausted(
    best: Option<&EpochReport>,
    last_epoch: usize,
    settings: &FineTuning,
) -> bool {
    best.is_some_and(|best| last_epoch - best.epoch >= settings.patience.max(1))
}

/// The number of labels, once both sets are checked to be usable.
fn check_examples(
    train: &TokenizedExamples,
    valid: &TokenizedExamples,
    config: &Config,
) -> Result<usize, TrainError> {
    if train.is_empty() || valid.is_empty() {
        return Err(TrainError::Data(format!(
            "fine-tuning needs examples in both sets (train {}, validation {})",
            train.len(),
            valid.len()
        )));
    }
    let labels = train.targets[0].len();
    for (name, set) in [("training", train), ("validation", valid)] {
        if set.ids.len() != set.targets.len() {
            return Err(TrainError::Data(format!(
                "{name} set: {} texts but {} targets",
                set.ids.len(),
                set.targets.len()
            )));
        }
        if let Some(index) = set.targets.iter().position(|row| row.len() != labels) {
            return Err(TrainError::Data(format!(
                "{name} example {index}: {} targets, expected {labels}",
                set.targets[index].len()
            )));
        }
        if let Some(index) = set.ids.iter().position(|ids| {
            ids.is_empty()
                || ids.len() > config.max_position_embeddings
                || ids.iter().any(|id| *id as usize >= config.vocab_size)
        }) {
            return Err(TrainError::Data(format!(
                "{name} example {index}: {} token ids, which must be 1 to {} ids below {}",
                set.ids[index].len(),
                config.max_position_embeddings,
                config.vocab_size
            )));
        }
    }
    Ok(labels)
}

/// Encoder and head groups; biases and LayerNorm parameters get no weight decay (as in the
/// BERT paper's recipe and transformers' `Trainer`).
fn parameter_groups(
    encoder: &[(String, Var)],
    head: &[(String, Var)],
    settings: &FineTuning,
) -> Vec<ParamGroup> {
    let decays = |name: &str| !(name.ends_with(".bias") || name.contains("LayerNorm"));
    let split = |vars: &[(String, Var)], learning_rate: f64| {
        let (decayed, plain): (Vec<_>, Vec<_>) =
            vars.iter().cloned().partition(|(name, _)| decays(name));
        [
            ParamGroup {
                learning_rate,
                weight_decay: settings.weight_decay,
                vars: decayed,
            },
            ParamGroup {
                learning_rate,
                weight_decay: 0.0,
                vars: plain,
            },
        ]
    };
    split(encoder, settings.encoder_learning_rate)
        .into_iter()
        .chain(split(head, settings.head_learning_rate))
        .collect()
}

/// Batches of texts of similar length (shuffled, then sorted by length, so equal lengths mix
/// across epochs), in shuffled order.
fn bucketed_batches(lengths: &[usize], batch_size: usize, rng: &mut SeededRng) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    order.sort_by_key(|index| lengths[*index]);
    let mut batches: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    rng.shuffle(&mut batches);
    batches
}

#[derive(Debug, Clone, Copy)]
enum Set {
    Train,
    Valid,
}

/// What the trainable module reads: token ids, or the frozen layers' cached output per text
/// (`tokens × hidden` values, row-major).
enum Inputs {
    Ids,
    Hidden {
        hidden_size: usize,
        train: Vec<Vec<f32>>,
        valid: Vec<Vec<f32>>,
    },
}

impl Inputs {
    /// The padded input and mask for `indices` of `examples` (which is the `set` named).
    fn batch(
        &self,
        set: Set,
        examples: &TokenizedExamples,
        indices: &[usize],
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let lengths: Vec<usize> = indices
            .iter()
            .map(|index| examples.ids[*index].len())
            .collect();
        let seq = lengths.iter().copied().max().unwrap_or(0);
        let mask = padding_mask(&lengths, &Device::Cpu)?;
        let input = match self {
            Self::Ids => {
                let ids: Vec<u32> = indices
                    .iter()
                    .flat_map(|index| {
                        let ids = &examples.ids[*index];
                        ids.iter()
                            .copied()
                            .chain(std::iter::repeat_n(0, seq - ids.len()))
                    })
                    .collect();
                Tensor::from_vec(ids, (indices.len(), seq), &Device::Cpu)?
            }
            Self::Hidden {
                hidden_size,
                train,
                valid,
            } => {
                let cached = match set {
                    Set::Train => train,
                    Set::Valid => valid,
                };
                let width = seq * hidden_size;
                let mut values = vec![0f32; indices.len() * width];
                for (row, index) in indices.iter().enumerate() {
                    let text = &cached[*index];
                    values[row * width..row * width + text.len()].copy_from_slice(text);
                }
                Tensor::from_vec(values, (indices.len(), seq, *hidden_size), &Device::Cpu)?
            }
        };
        Ok((input, mask))
    }
}

/// The frozen layers' output for every text, `tokens × hidden` values each, in input order.
/// Plain vectors: a narrowed tensor would keep (and `copy` would duplicate) its whole batch.
fn run_lower_layers(
    lower: &BertEncoder,
    ids: &[Vec<u32>],
    layers: usize,
    mut progress: impl FnMut(usize),
) -> candle_core::Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|index| ids[*index].len());
    let mut outputs: Vec<Vec<f32>> = vec![Vec::new(); ids.len()];
    for chunk in order.chunks(INFERENCE_BATCH) {
        let lengths: Vec<usize> = chunk.iter().map(|index| ids[*index].len()).collect();
        let flat: Vec<u32> = chunk
            .iter()
            .flat_map(|index| ids[*index].iter().copied())
            .collect();
        let flat = Tensor::from_vec(flat, lengths.iter().sum::<usize>(), &Device::Cpu)?;
        let hidden = lower.forward_layers(&flat, &lengths, layers)?;
        let width = hidden.dim(1)?;
        let values = hidden.flatten_all()?.to_vec1::<f32>()?;
        let mut start = 0;
        for (index, len) in chunk.iter().zip(&lengths) {
            outputs[*index] = values[start * width..(start + len) * width].to_vec();
            start += len;
        }
        progress(chunk.len());
    }
    Ok(outputs)
}

/// Differentiable pooling of `(batch, seq, hidden)` under `mask`, as the inference engine
/// pools (mean of real tokens or the first token, then optionally L2-normalized).
fn pool_masked(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> candle_core::Result<Tensor> {
    let pooled = match pooling.kind {
        PoolingKind::Mean => hidden
            .broadcast_mul(&mask.unsqueeze(2)?)?
            .sum(1)?
            .broadcast_div(&mask.sum_keepdim(1)?)?,
        PoolingKind::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
    };
    if pooling.normalize {
        l2_normalize(&pooled)
    } else {
        Ok(pooled)
    }
}

/// Logits for every example of the validation set, in order, without dropout.
fn predict(
    bert: &TrainableBert,
    head: &TrainableHead,
    inputs: &Inputs,
    valid: &TokenizedExamples,
    pooling: Pooling,
) -> candle_core::Result<Tensor> {
    let mut order: Vec<usize> = (0..valid.len()).collect();
    order.sort_by_key(|index| valid.ids[*index].len());
    let mut logits: Vec<Option<Tensor>> = vec![None; valid.len()];
    for chunk in order.chunks(INFERENCE_BATCH) {
        let (input, mask) = inputs.batch(Set::Valid, valid, chunk)?;
        let hidden = bert.forward(&input, &mask, None)?;
        let batch_logits = head
            .forward(&pool_masked(&hidden, &mask, pooling)?)?
            .detach();
        for (row, index) in chunk.iter().enumerate() {
            logits[*index] = Some(batch_logits.get(row)?);
        }
    }
    Tensor::stack(&logits.into_iter().flatten().collect::<Vec<_>>(), 0)
}

fn rows(targets: &[Vec<f32>], indices: &[usize]) -> candle_core::Result<Tensor> {
    let width = targets[0].len();
    let values: Vec<f32> = indices
        .iter()
        .flat_map(|index| targets[*index].iter().copied())
        .collect();
    Tensor::from_vec(values, (indices.len(), width), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use candle_core::DType;

    use super::*;
    use crate::engine::{Head as InferenceHead, pool_packed as inference_pool};
    use crate::labels::HeadSpec;
    use crate::test_support::{random_weights, tiny_config};

    const CLS: u32 = 1;
    const SEP: u32 = 2;

    /// Three classes, each marked by one token (5, 6 or 7) somewhere among filler tokens.
    fn marked_texts(count: usize, rng: &mut SeededRng) -> TokenizedExamples {
        let mut examples = TokenizedExamples::default();
        for index in 0..count {
            let label = index % 3;
            let len = 3 + (rng.next_u64() % 7) as usize;
            let mut ids: Vec<u32> = (0..len)
                .map(|_| 10 + (rng.next_u64() % 30) as u32)
                .collect();
            let marker = (rng.next_u64() % len as u64) as usize;
            ids[marker] = 5 + label as u32;
            ids.insert(0, CLS);
            ids.push(SEP);
            examples.ids.push(ids);
            let mut target = vec![0.0; 3];
            target[label] = 1.0;
            examples.targets.push(target);
        }
        examples
    }

    fn settings(trainable: Trainable, epochs: usize) -> FineTuning {
        FineTuning {
            trainable,
            epochs,
            batch_size: 16,
            encoder_learning_rate: 2e-3,
            head_learning_rate: 2e-2,
            warmup_share: 0.1,
            patience: epochs,
            ..FineTuning::default()
        }
    }

    /// `random_weights` scaled to a trainable start, the way BERT initializes: small weights,
    /// LayerNorm at identity.
    fn trainable_start() -> (Config, candle_nn::VarMap) {
        let config = tiny_config("gelu");
        let varmap = random_weights(&config);
        for (name, var) in varmap.data().lock().expect("varmap").iter() {
            let start = if name.ends_with("LayerNorm.weight") {
                var.ones_like()
            } else if name.ends_with("LayerNorm.bias") {
                var.zeros_like()
            } else if name.contains("word_embeddings") {
                // Tokens far apart, as in a pretrained table; frozen modes depend on it.
                continue;
            } else {
                var.as_tensor() * 0.1
            };
            var.set(&start.expect("start")).expect("set");
        }
        (config, varmap)
    }

    fn data() -> (TokenizedExamples, TokenizedExamples) {
        let mut rng = SeededRng::new(11);
        (marked_texts(900, &mut rng), marked_texts(90, &mut rng))
    }

    #[test]
    fn a_separable_set_is_learned_and_the_exported_weights_score_the_same() {
        let (config, varmap) = trainable_start();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let (train, valid) = data();
        for trainable in [
            Trainable::All {
                word_embeddings: true,
            },
            Trainable::All {
                word_embeddings: false,
            },
            // Both layers over the frozen embeddings' cached output.
            Trainable::TopLayers(2),
        ] {
            let tuned = fine_tune(
                vb.clone(),
                &config,
                &train,
                &valid,
                &settings(trainable, 10),
                None,
                |_| ControlFlow::Continue(()),
            )
            .expect("fine-tunes");
            let first = tuned.history.first().expect("history").train_loss;
            let last = tuned.history.last().expect("history").train_loss;
            assert!(last < first * 0.5, "{trainable:?}: loss {first} → {last}");
            assert!(
                tuned.best.valid_accuracy > 0.9,
                "{trainable:?}: {:?}",
                tuned.history
            );

            // The base weights with the trained ones laid over them, through the inference
            // encoder, pooling and head, score exactly what training reported.
            let mut merged: HashMap<String, Tensor> = varmap
                .data()
                .lock()
                .expect("varmap")
                .iter()
                .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
                .collect();
            merged.extend(tuned.tensors.clone());
            let merged = VarBuilder::from_tensors(merged, DType::F32, &Device::Cpu);
            let encoder =
                BertEncoder::load(merged.clone(), &config, Precision::F32).expect("encoder");
            let head = InferenceHead::load(
                merged.pp("classifier"),
                &HeadSpec { hidden_size: None },
                config.hidden_size,
                3,
            )
            .expect("head");
            let lengths: Vec<usize> = valid.ids.iter().map(Vec::len).collect();
            let flat: Vec<u32> = valid.ids.concat();
            let flat =
                Tensor::from_vec(flat, lengths.iter().sum::<usize>(), &Device::Cpu).expect("ids");
            let logits = encoder
                .forward(&flat, &lengths)
                .and_then(|hidden| inference_pool(&hidden, &lengths, PoolingKind::Mean, true))
                .and_then(|pooled| head.forward(&pooled))
                .expect("inference");
            let (metric, accuracy) =
                score(&logits, &valid.targets, ProblemType::SingleLabel).expect("score");
            assert!(
                (accuracy - tuned.best.valid_accuracy).abs() < 1e-6,
                "{trainable:?}"
            );
            assert!(
                (metric - tuned.best.valid_metric).abs() < 1e-6,
                "{trainable:?}"
            );
        }
    }

    #[test]
    fn a_stopped_run_resumes_to_the_same_weights_as_an_uninterrupted_one() {
        let config = tiny_config("gelu");
        let varmap = random_weights(&config);
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let (train, valid) = data();
        let settings = settings(Trainable::TopLayers(1), 3);
        let run = |checkpoints: Option<&Checkpoints>, stop_after: Option<usize>| {
            fine_tune(
                vb.clone(),
                &config,
                &train,
                &valid,
                &settings,
                checkpoints,
                |progress| match (progress, stop_after) {
                    (Progress::Epoch(report), Some(stop)) if report.epoch == stop => {
                        ControlFlow::Break(())
                    }
                    _ => ControlFlow::Continue(()),
                },
            )
        };
        let straight = run(None, None).expect("uninterrupted");

        let dir = tempfile::tempdir().expect("tempdir");
        let fresh = Checkpoints {
            dir: dir.path().to_path_buf(),
            resume: false,
        };
        assert!(matches!(
            run(Some(&fresh), Some(1)),
            Err(TrainError::Stopped { epoch: 1 })
        ));
        // A checkpoint is never overwritten unless resuming was asked for.
        assert!(matches!(
            run(Some(&fresh), None),
            Err(TrainError::Checkpoint(_))
        ));
        let resume = Checkpoints {
            resume: true,
            ..fresh
        };
        let resumed = run(Some(&resume), None).expect("resumed");
        assert_eq!(resumed.resumed_after, Some(1));
        assert_eq!(resumed.history, straight.history);
        for (name, tensor) in &straight.tensors {
            let values = |tensor: &Tensor| {
                tensor
                    .flatten_all()
                    .and_then(|tensor| tensor.to_vec1::<f32>())
                    .expect("values")
            };
            assert_eq!(values(tensor), values(&resumed.tensors[name]), "{name}");
        }
        // Only the last epoch's files are kept.
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        files.sort();
        assert_eq!(files.len(), 3, "{files:?}");

        // Other settings cannot resume this checkpoint.
        let other = FineTuning {
            seed: 7,
            ..settings.clone()
        };
        let refused = fine_tune(
            vb.clone(),
            &config,
            &train,
            &valid,
            &other,
            Some(&resume),
            |_| ControlFlow::Continue(()),
        );
        assert!(matches!(refused, Err(TrainError::Checkpoint(_))));
    }

    #[test]
    fn unusable_examples_are_refused_with_their_index() {
        let config = tiny_config("gelu");
        let varmap = random_weights(&config);
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let (train, valid) = data();
        let mut too_long = train.clone();
        too_long.ids[3] = vec![CLS; config.max_position_embeddings + 1];
        let mut unknown_id = train.clone();
        unknown_id.ids[4][1] = config.vocab_size as u32;
        let mut empty = train.clone();
        empty.ids[5].clear();
        for (broken, index) in [(too_long, 3), (unknown_id, 4), (empty, 5)] {
            let error = fine_tune(
                vb.clone(),
                &config,
                &broken,
                &valid,
                &settings(Trainable::TopLayers(1), 1),
                None,
                |_| ControlFlow::Continue(()),
            )
            .expect_err("refused");
            assert!(
                error.to_string().contains(&format!("example {index}")),
                "{error}"
            );
        }
    }

    #[test]
    fn batches_group_similar_lengths_and_cover_every_text_once() {
        let lengths: Vec<usize> = (0..100).map(|index| 3 + (index * 7) % 40).collect();
        let mut rng = SeededRng::new(4);
        let batches = bucketed_batches(&lengths, 10, &mut rng);
        let mut seen: Vec<usize> = batches.concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        for batch in &batches {
            let longest = batch
                .iter()
                .map(|index| lengths[*index])
                .max()
                .expect("len");
            let shortest = batch
                .iter()
                .map(|index| lengths[*index])
                .min()
                .expect("len");
            assert!(longest - shortest <= 5, "{batch:?}");
        }
    }
}
