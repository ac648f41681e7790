//! The classifier: a BERT encoder (`bert.rs`), pooling, a small head, and the batching that
//! makes CPU inference cheap — texts are sorted by token length, cut into batches under a
//! token budget, run unpadded, and their predictions are returned in input order.

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder, linear};
use candle_transformers::models::bert::Config as BertConfig;
use rayon::prelude::*;
use serde::Serialize;
use tokenizers::{Encoding, Tokenizer, TokenizerImpl, TruncationParams};
use tweets::{CleanConfig, Prediction};

use crate::bert::{BertEncoder, Precision};
use crate::labels::{HeadSpec, LabelsFile, Pooling, PoolingKind, Preprocessing, ProblemType};
use crate::model_dir::{
    CONFIG_FILE, LABELS_FILE, LoadError, ModelFiles, TOKENIZER_FILE, WEIGHTS_FILE,
};
use crate::unigram::{self, UnigramTokenizer};

/// Tuning: only `precision` changes results, and only in the last few digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InferenceOptions {
    /// Most texts in one forward pass.
    pub max_batch: usize,
    /// Most tokens in one forward pass: bounds memory and keeps matrix sizes cache-friendly.
    pub token_budget: usize,
    /// Worker threads for the matrix kernels; `None` uses every core.
    pub threads: Option<usize>,
    /// How 4-bit layers multiply: [`Precision::F32`] for the reference numerics.
    pub precision: Precision,
}

impl Default for InferenceOptions {
    fn default() -> Self {
        Self {
            max_batch: 64,
            token_budget: 4096,
            threads: None,
            precision: Precision::default(),
        }
    }
}

/// Where the time of a `predict` call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct InferenceTiming {
    pub tokenize: Duration,
    pub infer: Duration,
    pub batches: usize,
    /// Tokens computed. Nothing is padded, so this is the texts' token count, however they
    /// were batched.
    pub tokens: usize,
}

/// A per-request failure; start-up failures are [`LoadError`]s.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("tokenizing failed: {0}")]
    Tokenize(String),
    #[error("model computation failed")]
    Compute(#[from] candle_core::Error),
}

/// Characters of raw text kept per token the model sees. A token is rarely more than a few
/// characters, so `max_tokens` × this keeps everything the model reads (bar runs of
/// whitespace or URLs longer than that, which cleaning would shrink), and cutting raw text
/// there first makes a 10 MB text cost what a tweet costs to clean and tokenize.
const RAW_CHARS_PER_TOKEN: usize = 64;

/// A BERT encoder with its tokenizer, cleaning and pooling: texts in, one vector per text out.
/// A bare base model (no head, no `labels.json`) loads as this, for training.
pub struct TextEncoder {
    bert: BertEncoder,
    tokenizer: TextTokenizer,
    cleaning: CleanConfig,
    text_prefix: String,
    /// Raw characters of a text that are cleaned and tokenized; the rest cannot be seen.
    max_raw_chars: usize,
    pooling: Pooling,
    hidden_size: usize,
    device: Device,
    options: InferenceOptions,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("pooling", &self.pooling)
            .field("hidden_size", &self.hidden_size)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Maps `dir/model.safetensors` read-only.
pub(crate) fn map_weights(dir: &Path) -> Result<VarBuilder<'static>, LoadError> {
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        return Err(LoadError::missing(dir, WEIGHTS_FILE));
    }
    // SAFETY: the weights file is mapped read-only for the life of the process; model
    // directories (a Lambda bundle, a checkout) are not modified while a model is loaded.
    #[allow(unsafe_code)]
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) };
    vb.map_err(|error| LoadError::weights(&error))
}

impl TextEncoder {
    /// Loads the encoder of a model directory — `labels.json` is not needed — with the text
    /// preparation and pooling given here.
    pub fn load_base(
        dir: &Path,
        preprocessing: &Preprocessing,
        pooling: Pooling,
        options: InferenceOptions,
    ) -> Result<Self, LoadError> {
        let files = ModelFiles::read_encoder_metadata(dir)?;
        let vb = map_weights(dir)?;
        Self::build(
            &files.config,
            &files.tokenizer,
            preprocessing,
            pooling,
            vb,
            options,
        )
    }

    fn build(
        config: &[u8],
        tokenizer: &[u8],
        preprocessing: &Preprocessing,
        pooling: Pooling,
        vb: VarBuilder<'_>,
        options: InferenceOptions,
    ) -> Result<Self, LoadError> {
        let config: BertConfig = serde_json::from_slice(config)
            .map_err(|error| LoadError::invalid(CONFIG_FILE, error.to_string()))?;
        if !(3..=config.max_position_embeddings).contains(&preprocessing.max_tokens) {
            return Err(LoadError::invalid(
                LABELS_FILE,
                format!(
                    "field `preprocessing.max_tokens`: {} must be between 3 and {} \
                     (config.json max_position_embeddings)",
                    preprocessing.max_tokens, config.max_position_embeddings
                ),
            ));
        }
        // A 250,000-piece tokenizer takes as long to build as the weights take to load (most
        // of a multilingual model's cold start): the two are built side by side.
        let (tokenizer, bert) = std::thread::scope(|scope| {
            let tokenizer = scope.spawn(|| timed(|| TextTokenizer::load(tokenizer, preprocessing)));
            let bert = timed(|| {
                BertEncoder::load(vb, &config, options.precision)
                    .map_err(|e| LoadError::weights(&e))
            });
            let tokenizer = tokenizer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (tokenizer, bert)
        });
        let ((tokenizer, tokenizer_time), (bert, weights_time)) = (tokenizer?, bert?);
        tracing::debug!(
            tokenizer_ms = tokenizer_time.as_millis() as u64,
            weights_ms = weights_time.as_millis() as u64,
            "encoder built"
        );
        let pool = options
            .threads
            .map(|threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build())
            .transpose()
            .map_err(|error| LoadError::Threads(error.to_string()))?;
        Ok(Self {
            bert,
            tokenizer,
            cleaning: preprocessing.cleaning(),
            text_prefix: preprocessing.text_prefix.clone(),
            max_raw_chars: preprocessing.max_tokens * RAW_CHARS_PER_TOKEN,
            pooling,
            hidden_size: config.hidden_size,
            device: Device::Cpu,
            options,
            pool,
        })
    }

    /// Size of the vectors `embed` returns.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Pooled text vectors, in input order (what a head sees).
    pub fn embed(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, InferenceTiming), PredictError> {
        self.run_batches(texts, |pooled| Ok(pooled.clone()))
    }

    /// Token ids of `texts`, cleaned and tokenized exactly as for inference (what a model
    /// being fine-tuned must see).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, PredictError> {
        Ok(self
            .encodings(texts)?
            .iter()
            .map(|encoding| encoding.get_ids().to_vec())
            .collect())
    }

    fn encodings(&self, texts: &[&str]) -> Result<Vec<Encoding>, PredictError> {
        let cleaned: Vec<String> = texts
            .iter()
            .map(|text| {
                let visible = leading_chars(text, self.max_raw_chars);
                let mut cleaned = tweets::clean_text(visible, &self.cleaning);
                cleaned.insert_str(0, &self.text_prefix);
                cleaned
            })
            .collect();
        self.tokenizer
            .encode_batch(cleaned)
            .map_err(|error| PredictError::Tokenize(error.to_string()))
    }

    /// Cleans and tokenizes `texts`, runs them in length-sorted batches, and applies `output`
    /// to each batch's pooled vectors; rows come back in input order.
    ///
    /// Batches run side by side, one per worker thread: a product of a few hundred rows split
    /// across threads spends much of its time handing out and joining the parts, while each
    /// thread working through its own batch keeps busy. A lone batch (a single text) still
    /// spreads its products over every thread (idle workers steal the parts).
    fn run_batches(
        &self,
        texts: &[&str],
        output: impl Fn(&Tensor) -> candle_core::Result<Tensor> + Sync,
    ) -> Result<(Vec<Vec<f32>>, InferenceTiming), PredictError> {
        let work = || {
            let started = Instant::now();
            let encodings = self.encodings(texts)?;
            let tokenize = started.elapsed();

            let started = Instant::now();
            // Enough batches for every thread: a call of 32 texts on two threads runs as two
            // batches of 16.
            let max_batch = self
                .options
                .max_batch
                .min(texts.len().div_ceil(rayon::current_num_threads()));
            let batches = plan_batches(&encodings, max_batch, self.options.token_budget);
            let outputs = batches
                .par_iter()
                .map(|batch| Ok(output(&self.encode(batch, &encodings)?)?.to_vec2::<f32>()?))
                .collect::<Result<Vec<_>, PredictError>>()?;
            let mut rows: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
            for (batch, values) in batches.iter().zip(outputs) {
                for (index, row) in batch.iter().zip(values) {
                    rows[*index] = row;
                }
            }
            let timing = InferenceTiming {
                tokenize,
                infer: started.elapsed(),
                batches: batches.len(),
                tokens: encodings.iter().map(Encoding::len).sum(),
            };
            Ok((rows, timing))
        };
        match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }

    /// Encoder forward pass and pooling for one batch, its texts' tokens end to end.
    fn encode(&self, batch: &[usize], encodings: &[Encoding]) -> candle_core::Result<Tensor> {
        let lengths: Vec<usize> = batch.iter().map(|index| encodings[*index].len()).collect();
        let ids: Vec<u32> = batch
            .iter()
            .flat_map(|index| encodings[*index].get_ids().iter().copied())
            .collect();
        let input_ids = Tensor::from_vec(ids, lengths.iter().sum::<usize>(), &self.device)?;
        let hidden = self.bert.forward(&input_ids, &lengths)?;
        pool_packed(&hidden, &lengths, self.pooling.kind, self.pooling.normalize)
    }
}

/// `work`'s result, if it succeeded, with the time it took.
/// The first `count` characters of `text` (all of it when shorter).
fn leading_chars(text: &str, count: usize) -> &str {
    text.char_indices()
        .nth(count)
        .map_or(text, |(end, _)| &text[..end])
}

fn timed<T, E>(work: impl FnOnce() -> Result<T, E>) -> Result<(T, Duration), E> {
    let started = Instant::now();
    work().map(|value| (value, started.elapsed()))
}

/// A model directory's tokenizer: a Unigram vocabulary (XLM-R's 250,000 pieces) runs with
/// [`FastUnigram`](crate::unigram::FastUnigram), ready in tens of milliseconds instead of half
/// a second; every other model is the library's own.
enum TextTokenizer {
    Library(Box<Tokenizer>),
    Unigram(Box<UnigramTokenizer>),
}

impl TextTokenizer {
    /// Parses `tokenizer.json` and sets it up for unpadded texts truncated at `max_tokens`.
    fn load(bytes: &[u8], preprocessing: &Preprocessing) -> Result<Self, LoadError> {
        let invalid = |message: String| LoadError::invalid(TOKENIZER_FILE, message);
        let max_tokens = preprocessing.max_tokens;
        if unigram::is_unigram(bytes) {
            let mut tokenizer = unigram::load(bytes).map_err(invalid)?;
            unpadded(&mut tokenizer, max_tokens).map_err(|e| invalid(e.to_string()))?;
            return Ok(Self::Unigram(Box::new(tokenizer)));
        }
        let mut tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| invalid(e.to_string()))?;
        unpadded(&mut tokenizer, max_tokens).map_err(|e| invalid(e.to_string()))?;
        Ok(Self::Library(Box::new(tokenizer)))
    }

    fn encode_batch(&self, texts: Vec<String>) -> tokenizers::Result<Vec<Encoding>> {
        match self {
            Self::Library(tokenizer) => tokenizer.encode_batch(texts, true),
            Self::Unigram(tokenizer) => tokenizer.encode_batch(texts, true),
        }
    }
}

/// No padding, truncation at `max_tokens`. The shipped tokenizers may pad every text to a
/// fixed length; padding to the longest text in each batch is done here instead, which costs
/// several times less on tweets.
fn unpadded<M, N, PT, PP, D>(
    tokenizer: &mut TokenizerImpl<M, N, PT, PP, D>,
    max_tokens: usize,
) -> tokenizers::Result<()>
where
    M: tokenizers::Model,
    N: tokenizers::Normalizer,
    PT: tokenizers::PreTokenizer,
    PP: tokenizers::PostProcessor,
    D: tokenizers::Decoder,
{
    tokenizer.with_padding(None);
    tokenizer.with_truncation(Some(TruncationParams {
        max_length: max_tokens,
        ..TruncationParams::default()
    }))?;
    Ok(())
}

/// A loaded model, ready to classify. Build once per process; `predict` takes `&self`.
pub struct Classifier {
    encoder: TextEncoder,
    head: Head,
    labels: LabelsFile,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("name", &self.labels.name)
            .field("version", &self.labels.version)
            .field("labels", &self.labels.labels)
            .field("encoder", &self.encoder)
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// Loads a model directory, memory-mapping its weights.
    pub fn load(dir: &Path, options: InferenceOptions) -> Result<Self, LoadError> {
        let started = Instant::now();
        let files = ModelFiles::read_metadata(dir)?;
        let classifier = Self::build(files, map_weights(dir)?, options)?;
        tracing::info!(
            model = %classifier.labels.name,
            version = %classifier.labels.version,
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(classifier)
    }

    /// Loads a model from bytes already in memory (tests, or weights fetched by the caller).
    pub fn from_bytes(
        files: ModelFiles,
        weights: Vec<u8>,
        options: InferenceOptions,
    ) -> Result<Self, LoadError> {
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|error| LoadError::weights(&error))?;
        Self::build(files, vb, options)
    }

    fn build(
        files: ModelFiles,
        vb: VarBuilder<'_>,
        options: InferenceOptions,
    ) -> Result<Self, LoadError> {
        let labels: LabelsFile = serde_json::from_slice(&files.labels)
            .map_err(|error| LoadError::invalid(LABELS_FILE, error.to_string()))?;
        let encoder = TextEncoder::build(
            &files.config,
            &files.tokenizer,
            &labels.preprocessing,
            labels.pooling,
            vb.clone(),
            options,
        )?;
        labels
            .validate()
            .map_err(|error| LoadError::invalid(LABELS_FILE, error.to_string()))?;
        let head = Head::load(
            vb.pp("classifier"),
            &labels.head,
            encoder.hidden_size,
            labels.labels.len(),
        )
        .map_err(|error| LoadError::weights(&error))?;
        Ok(Self {
            encoder,
            head,
            labels,
        })
    }

    pub fn labels(&self) -> &LabelsFile {
        &self.labels
    }

    /// Classifies texts as written by people (the model's own cleaning is applied here, exactly
    /// as in training). Results come back in input order.
    pub fn predict(
        &self,
        texts: &[&str],
    ) -> Result<(Vec<Prediction>, InferenceTiming), PredictError> {
        let (logits, timing) = self.logits(texts)?;
        let predictions = logits.iter().map(|row| decide(&self.labels, row)).collect();
        Ok((predictions, timing))
    }

    /// Raw head outputs per text, in input order (for evaluation and parity checks).
    pub fn logits(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, InferenceTiming), PredictError> {
        self.encoder
            .run_batches(texts, |pooled| self.head.forward(pooled))
    }

    /// The encoder under the head.
    pub fn encoder(&self) -> &TextEncoder {
        &self.encoder
    }
}

/// Turns one text's logits into a decision, by the model's problem type and thresholds.
pub fn decide(labels: &LabelsFile, logits: &[f32]) -> Prediction {
    let probabilities = match labels.problem_type {
        ProblemType::SingleLabel => softmax(logits),
        ProblemType::MultiLabel => logits.iter().map(|logit| sigmoid(*logit)).collect(),
    };
    decide_probabilities(labels, probabilities)
}

/// [`decide`] from the labels' probabilities (in `labels.labels` order): how a prediction's
/// scores are decided again under other thresholds.
pub fn decide_probabilities(labels: &LabelsFile, probabilities: Vec<f32>) -> Prediction {
    let most_probable = argmax(&probabilities);
    let passing: Vec<usize> = (0..probabilities.len())
        .filter(|index| probabilities[*index] >= labels.threshold(*index))
        .collect();
    let decided: Vec<usize> = match labels.problem_type {
        ProblemType::SingleLabel => {
            let best_passing = passing
                .iter()
                .copied()
                .max_by(|a, b| probabilities[*a].total_cmp(&probabilities[*b]));
            vec![best_passing.unwrap_or(most_probable)]
        }
        ProblemType::MultiLabel => {
            let mut decided = passing;
            decided.sort_by(|a, b| probabilities[*b].total_cmp(&probabilities[*a]));
            decided
        }
    };
    let top = decided.first().copied();
    Prediction {
        label: top.map(|index| labels.labels[index].clone()),
        score: probabilities[top.unwrap_or(most_probable)],
        labels: decided
            .iter()
            .map(|index| labels.labels[*index].clone())
            .collect(),
        scores: labels.labels.iter().cloned().zip(probabilities).collect(),
    }
}

/// Groups text indexes into batches: shortest first (texts of similar length keep the
/// per-text attention tasks even across threads), each batch's tokens under the budget, and
/// never more than `max_batch` texts.
pub(crate) fn plan_batches(
    encodings: &[Encoding],
    max_batch: usize,
    token_budget: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    order.sort_by_key(|index| encodings[*index].len());
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_tokens = 0;
    for index in order {
        let tokens = encodings[index].len();
        if !current.is_empty()
            && (current.len() == max_batch.max(1) || current_tokens + tokens > token_budget)
        {
            batches.push(std::mem::take(&mut current));
            current_tokens = 0;
        }
        current.push(index);
        current_tokens += tokens;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Pools the `(tokens, hidden)` rows of texts of `lengths` tokens into `(texts, hidden)`.
pub(crate) fn pool_packed(
    hidden: &Tensor,
    lengths: &[usize],
    kind: PoolingKind,
    normalize: bool,
) -> candle_core::Result<Tensor> {
    let mut pooled = Vec::with_capacity(lengths.len());
    let mut start = 0;
    for len in lengths {
        let rows = hidden.narrow(0, start, *len)?;
        pooled.push(match kind {
            // sentence-transformers `Pooling(pooling_mode_mean_tokens=True)`.
            PoolingKind::Mean => rows.mean(0)?,
            PoolingKind::Cls => rows.get(0)?,
        });
        start += len;
    }
    let pooled = Tensor::stack(&pooled, 0)?;
    if normalize {
        l2_normalize(&pooled)
    } else {
        Ok(pooled)
    }
}

/// sentence-transformers `Normalize`: each row x / max(‖x‖₂, 1e-12).
pub(crate) fn l2_normalize(rows: &Tensor) -> candle_core::Result<Tensor> {
    let norms = rows
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    rows.broadcast_div(&norms)
}

/// `classifier.hidden` (optional, then GELU) and `classifier.output`.
pub(crate) struct Head {
    hidden: Option<Linear>,
    output: Linear,
}

impl Head {
    pub(crate) fn load(
        vb: VarBuilder<'_>,
        spec: &HeadSpec,
        input: usize,
        labels: usize,
    ) -> candle_core::Result<Self> {
        let hidden = spec
            .hidden_size
            .map(|size| linear(input, size, vb.pp("hidden")))
            .transpose()?;
        let output = linear(spec.hidden_size.unwrap_or(input), labels, vb.pp("output"))?;
        Ok(Self { hidden, output })
    }

    pub(crate) fn forward(&self, pooled: &Tensor) -> candle_core::Result<Tensor> {
        match &self.hidden {
            Some(hidden) => self.output.forward(&hidden.forward(pooled)?.gelu_erf()?),
            None => self.output.forward(pooled),
        }
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|logit| (logit - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|value| value / sum).collect()
}

fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

fn argmax(values: &[f32]) -> usize {
    (0..values.len())
        .max_by(|a, b| values[*a].total_cmp(&values[*b]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::leading_chars;

    #[test]
    fn leading_chars_counts_characters_not_bytes() {
        assert_eq!(leading_chars("héllo 😡 world", 7), "héllo 😡");
        assert_eq!(leading_chars("short", 64), "short");
        assert_eq!(leading_chars("", 3), "");
    }
}
