//! A differentiable BERT for fine-tuning, ported from transformers' `modeling_bert.py` like
//! `bert.rs`, and reading the same tensor names, so trained weights load straight back into
//! the inference encoder.
//!
//! Why not train through `bert.rs` or candle-transformers' `BertModel`: their LayerNorm and
//! softmax are fused ops without a backward pass. `loss.backward()` still succeeds, but no
//! encoder variable gets a gradient and only the head learns, silently. Here every op has a
//! backward (`layer_norm_slow`, `softmax`, erf GELU), dropout is real and seeded, and layers
//! below the trainable ones are left out entirely: the trainer feeds their (cached) output.

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::bert::stores_encoder_at_root;
use crate::quantized::{self, WordTable};
use crate::train::SeededRng;

/// Which part of the encoder learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trainable {
    /// The top `n` transformer layers; embeddings and the layers below stay frozen.
    TopLayers(usize),
    /// Every layer and the embeddings; the word-embedding table (most of the parameters of a
    /// small BERT, and of the optimizer's time) only if `word_embeddings`.
    All { word_embeddings: bool },
}

/// Seeded inverted dropout (PyTorch's `nn.Dropout` in training mode). Candle's CPU RNG cannot
/// be seeded, so masks come from the trainer's generator and runs repeat bit for bit.
#[derive(Debug)]
pub struct Dropout<'a> {
    pub rate: f32,
    pub rng: &'a mut SeededRng,
}

impl Dropout<'_> {
    pub(crate) fn apply(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.rate <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - self.rate);
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.next_f32() < self.rate {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
    }
}

fn dropout(x: &Tensor, dropout: &mut Option<Dropout<'_>>) -> candle_core::Result<Tensor> {
    match dropout {
        Some(dropout) => dropout.apply(x),
        None => Ok(x.clone()),
    }
}

/// Loads tensors by name, turning the trainable ones into variables (copies, so the base
/// weights are never written) and recording them under their checkpoint names.
struct Loader<'a> {
    vb: VarBuilder<'a>,
    /// `""` or `"bert."`, as the checkpoint stores the encoder.
    prefix: String,
    vars: Vec<(String, Var)>,
}

impl Loader<'_> {
    fn get(
        &mut self,
        shape: impl Into<candle_core::Shape>,
        name: &str,
        trainable: bool,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.vb.get(shape, &format!("{}{name}", self.prefix))?;
        self.track(name, tensor, trainable)
    }

    /// A `(rows, columns)` matrix, float or 4-bit on disk, in f32.
    fn matrix(
        &mut self,
        rows: usize,
        columns: usize,
        name: &str,
        trainable: bool,
    ) -> candle_core::Result<Tensor> {
        let full_name = format!("{}{name}", self.prefix);
        let tensor = quantized::matrix(&self.vb, rows, columns, &full_name)?;
        self.track(name, tensor, trainable)
    }

    fn track(
        &mut self,
        name: &str,
        tensor: Tensor,
        trainable: bool,
    ) -> candle_core::Result<Tensor> {
        if !trainable {
            return Ok(tensor);
        }
        let var = Var::from_tensor(&tensor.copy()?)?;
        self.vars
            .push((format!("{}{name}", self.prefix), var.clone()));
        Ok(var.as_tensor().clone())
    }

    fn linear(&mut self, name: &str, inputs: usize, outputs: usize) -> candle_core::Result<Linear> {
        Ok(Linear {
            weight: self.matrix(outputs, inputs, &format!("{name}.weight"), true)?,
            bias: self.get(outputs, &format!("{name}.bias"), true)?,
        })
    }

    fn norm(&mut self, name: &str, config: &Config, trainable: bool) -> candle_core::Result<Norm> {
        Ok(Norm {
            gamma: self.get(config.hidden_size, &format!("{name}.weight"), trainable)?,
            beta: self.get(config.hidden_size, &format!("{name}.bias"), trainable)?,
            eps: config.layer_norm_eps as f32,
        })
    }
}

/// The trainable part of the encoder, with the names of its variables.
pub struct TrainableBert {
    embeddings: Option<Embeddings>,
    layers: Vec<TrainableEncoderLayer>,
    vars: Vec<(String, Var)>,
}

impl std::fmt::Debug for TrainableBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainableBert")
            .field("embeddings", &self.embeddings.is_some())
            .field("layers", &self.layers.len())
            .field("vars", &self.vars.len())
            .finish()
    }
}

impl TrainableBert {
    /// Loads what `trainable` names from a checkpoint (root or `bert.` names, as `bert.rs`).
    pub fn load(
        vb: VarBuilder,
        config: &Config,
        trainable: Trainable,
    ) -> candle_core::Result<Self> {
        let total = config.num_hidden_layers;
        let first_trainable = match trainable {
            Trainable::TopLayers(count) if (1..=total).contains(&count) => total - count,
            Trainable::TopLayers(count) => {
                candle_core::bail!("cannot train the top {count} of {total} layers")
            }
            Trainable::All { .. } => 0,
        };
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            candle_core::bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size,
                config.num_attention_heads
            );
        }
        let prefix = if stores_encoder_at_root(&vb) {
            ""
        } else {
            "bert."
        };
        let mut loader = Loader {
            vb,
            prefix: prefix.to_owned(),
            vars: Vec::new(),
        };
        let embeddings = match trainable {
            Trainable::All { word_embeddings } => {
                Some(Embeddings::load(&mut loader, config, word_embeddings)?)
            }
            Trainable::TopLayers(_) => None,
        };
        let layers = (first_trainable..total)
            .map(|index| TrainableEncoderLayer::load(&mut loader, index, config))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            embeddings,
            layers,
            vars: loader.vars,
        })
    }

    /// Checkpoint name and variable of everything that learns.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The index of the first layer this module runs: the frozen layers below feed it.
    pub fn frozen_layers(&self, config: &Config) -> usize {
        if self.embeddings.is_some() {
            0
        } else {
            config.num_hidden_layers - self.layers.len()
        }
    }

    /// `input` is `(batch, seq)` token ids when the embeddings train, else the frozen layers'
    /// `(batch, seq, hidden)` output; `mask` is `(batch, seq)`, 1 on real tokens. Returns
    /// `(batch, seq, hidden)`. `dropout` is `None` for evaluation.
    pub fn forward(
        &self,
        input: &Tensor,
        mask: &Tensor,
        mut dropout: Option<Dropout<'_>>,
    ) -> candle_core::Result<Tensor> {
        let mut hidden = match &self.embeddings {
            Some(embeddings) => embeddings.forward(input, &mut dropout)?,
            None => input.clone(),
        };
        // transformers' extended attention mask: (1 − mask) · large negative, added to the
        // scores. −1e4 rather than f32::MIN, which overflows once anything is added to it.
        let (batch, seq) = mask.dims2()?;
        let mask_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?.reshape((batch, 1, 1, seq))?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden, &mask_bias, &mut dropout)?;
        }
        Ok(hidden)
    }
}

struct Linear {
    /// `(outputs, inputs)`, as stored.
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// `x · Wᵀ + b` for `x` of shape `(batch, seq, inputs)`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, seq, inputs) = x.dims3()?;
        x.reshape((batch * seq, inputs))?
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?
            .reshape((batch, seq, ()))
    }
}

struct Norm {
    gamma: Tensor,
    beta: Tensor,
    eps: f32,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.gamma, &self.beta, self.eps)
    }
}

const WORDS: &str = "embeddings.word_embeddings.weight";

// https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py#L165
struct Embeddings {
    /// A frozen table stays as stored (4-bit stays 4-bit); a trained one is a dense variable.
    word: WordTable,
    position: Tensor,
    token_type: Tensor,
    norm: Norm,
}

impl Embeddings {
    fn load(
        loader: &mut Loader<'_>,
        config: &Config,
        train_words: bool,
    ) -> candle_core::Result<Self> {
        let hidden = config.hidden_size;
        Ok(Self {
            word: if train_words {
                WordTable::Dense(loader.matrix(config.vocab_size, hidden, WORDS, true)?)
            } else {
                let name = format!("{}{WORDS}", loader.prefix);
                WordTable::load(&loader.vb, config.vocab_size, hidden, &name)?
            },
            position: loader.get(
                (config.max_position_embeddings, hidden),
                "embeddings.position_embeddings.weight",
                true,
            )?,
            token_type: loader.get(
                (config.type_vocab_size, hidden),
                "embeddings.token_type_embeddings.weight",
                true,
            )?,
            norm: loader.norm("embeddings.LayerNorm", config, true)?,
        })
    }

    fn forward(
        &self,
        ids: &Tensor,
        dropout_mask: &mut Option<Dropout<'_>>,
    ) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let words = self
            .word
            .rows(&ids.flatten_all()?)?
            .reshape((batch, seq, ()))?;
        // Every text is one segment: token type 0 everywhere.
        let extra = self
            .position
            .narrow(0, 0, seq)?
            .broadcast_add(&self.token_type.narrow(0, 0, 1)?)?;
        let embedded = self.norm.forward(&words.broadcast_add(&extra)?)?;
        dropout(&embedded, dropout_mask)
    }
}

// https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py#L530
struct TrainableEncoderLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    heads: usize,
    attention_output: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    activation: HiddenAct,
    output: Linear,
    output_norm: Norm,
}

impl TrainableEncoderLayer {
    fn load(loader: &mut Loader<'_>, index: usize, config: &Config) -> candle_core::Result<Self> {
        let hidden = config.hidden_size;
        let name = |part: &str| format!("encoder.layer.{index}.{part}");
        Ok(Self {
            query: loader.linear(&name("attention.self.query"), hidden, hidden)?,
            key: loader.linear(&name("attention.self.key"), hidden, hidden)?,
            value: loader.linear(&name("attention.self.value"), hidden, hidden)?,
            heads: config.num_attention_heads,
            attention_output: loader.linear(&name("attention.output.dense"), hidden, hidden)?,
            attention_norm: loader.norm(&name("attention.output.LayerNorm"), config, true)?,
            intermediate: loader.linear(
                &name("intermediate.dense"),
                hidden,
                config.intermediate_size,
            )?,
            activation: config.hidden_act,
            output: loader.linear(&name("output.dense"), config.intermediate_size, hidden)?,
            output_norm: loader.norm(&name("output.LayerNorm"), config, true)?,
        })
    }

    fn forward(
        &self,
        hidden: &Tensor,
        mask_bias: &Tensor,
        dropout_mask: &mut Option<Dropout<'_>>,
    ) -> candle_core::Result<Tensor> {
        let (batch, seq, size) = hidden.dims3()?;
        let head_size = size / self.heads;
        let split_heads = |x: Tensor| {
            x.reshape((batch, seq, self.heads, head_size))?
                .transpose(1, 2)?
                .contiguous()
        };
        let query = split_heads(self.query.forward(hidden)?)?;
        let key = split_heads(self.key.forward(hidden)?)?;
        let value = split_heads(self.value.forward(hidden)?)?;
        let scores = (query.matmul(&key.t()?.contiguous()?)? / (head_size as f64).sqrt())?
            .broadcast_add(mask_bias)?;
        let probabilities = dropout(&candle_nn::ops::softmax(&scores, D::Minus1)?, dropout_mask)?;
        let context = probabilities
            .matmul(&value)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, seq, size))?;
        let attended = self.attention_norm.forward(
            &(dropout(&self.attention_output.forward(&context)?, dropout_mask)? + hidden)?,
        )?;
        let intermediate = self.intermediate.forward(&attended)?;
        let activated = match self.activation {
            HiddenAct::Gelu => intermediate.gelu_erf()?,
            HiddenAct::GeluApproximate => intermediate.gelu()?,
            HiddenAct::Relu => intermediate.relu()?,
        };
        self.output_norm
            .forward(&(dropout(&self.output.forward(&activated)?, dropout_mask)? + attended)?)
    }
}

/// `(batch, seq)` 0/1 mask for texts of `lengths`, padded to the longest.
pub fn padding_mask(lengths: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let seq = lengths.iter().copied().max().unwrap_or(0);
    let values: Vec<f32> = lengths
        .iter()
        .flat_map(|len| (0..seq).map(move |position| f32::from(u8::from(position < *len))))
        .collect();
    Tensor::from_vec(values, (lengths.len(), seq), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bert::{BertEncoder, Precision};
    use crate::test_support::{random_weights, tiny_config};

    /// Token ids for texts of `lengths`, flat and padded.
    fn ids(lengths: &[usize]) -> (Vec<u32>, Vec<u32>) {
        let seq = lengths.iter().copied().max().unwrap_or(0);
        let (mut flat, mut padded) = (Vec::new(), Vec::new());
        for (row, len) in lengths.iter().enumerate() {
            for position in 0..seq {
                let id = (row * 11 + position * 3 + 1) as u32 % 40;
                padded.push(if position < *len { id } else { 0 });
                if position < *len {
                    flat.push(id);
                }
            }
        }
        (flat, padded)
    }

    /// The padded output's real rows, in text order.
    fn real_rows(padded: &Tensor, lengths: &[usize]) -> Tensor {
        let rows: Vec<Tensor> = lengths
            .iter()
            .enumerate()
            .map(|(row, len)| padded.get(row)?.narrow(0, 0, *len))
            .collect::<candle_core::Result<_>>()
            .expect("rows");
        Tensor::cat(&rows, 0).expect("cat")
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|diff| diff.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
            .expect("max")
    }

    #[test]
    fn evaluation_forward_matches_the_inference_encoder() {
        for hidden_act in ["gelu", "relu"] {
            let config = tiny_config(hidden_act);
            let varmap = random_weights(&config);
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            let inference =
                BertEncoder::load(vb.clone(), &config, Precision::F32).expect("inference");
            let lengths = [5usize, 2, 7];
            let (flat, padded) = ids(&lengths);
            let expected = inference
                .forward(
                    &Tensor::new(flat.as_slice(), &Device::Cpu).expect("ids"),
                    &lengths,
                )
                .expect("inference forward");
            let padded = Tensor::from_vec(padded, (3, 7), &Device::Cpu).expect("ids");
            let mask = padding_mask(&lengths, &Device::Cpu).expect("mask");

            let full = TrainableBert::load(
                vb.clone(),
                &config,
                Trainable::All {
                    word_embeddings: true,
                },
            )
            .expect("full");
            let got = full.forward(&padded, &mask, None).expect("forward");
            let worst = max_difference(&real_rows(&got, &lengths), &expected);
            assert!(worst < 2e-5, "{hidden_act}: max |Δ| {worst}");

            // The top layer alone, fed the inference encoder's first layer.
            let top = TrainableBert::load(vb, &config, Trainable::TopLayers(1)).expect("top");
            assert_eq!(top.frozen_layers(&config), 1);
            let below = inference
                .forward_layers(
                    &Tensor::new(flat.as_slice(), &Device::Cpu).expect("ids"),
                    &lengths,
                    1,
                )
                .expect("lower layer");
            let mut start = 0;
            let rows: Vec<Tensor> = lengths
                .iter()
                .map(|len| {
                    let rows = below.narrow(0, start, *len)?;
                    start += len;
                    rows.pad_with_zeros(0, 0, 7 - len)
                })
                .collect::<candle_core::Result<_>>()
                .expect("pad");
            let input = Tensor::stack(&rows, 0).expect("stack");
            let got = top.forward(&input, &mask, None).expect("forward");
            let worst = max_difference(&real_rows(&got, &lengths), &expected);
            assert!(worst < 2e-5, "{hidden_act}, top layer: max |Δ| {worst}");
        }
    }

    #[test]
    fn every_trainable_variable_gets_a_gradient() {
        let config = tiny_config("gelu");
        let varmap = random_weights(&config);
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let lengths = [4usize, 6];
        let (_, padded) = ids(&lengths);
        let padded = Tensor::from_vec(padded, (2, 6), &Device::Cpu).expect("ids");
        let mask = padding_mask(&lengths, &Device::Cpu).expect("mask");
        for (trainable, expected_vars) in [
            // Per layer: six linear layers (weight, bias) and two LayerNorms: 16. Embeddings:
            // word, position, token type and a LayerNorm: 5.
            (
                Trainable::All {
                    word_embeddings: true,
                },
                2 * 16 + 5,
            ),
            (
                Trainable::All {
                    word_embeddings: false,
                },
                2 * 16 + 4,
            ),
        ] {
            let bert = TrainableBert::load(vb.clone(), &config, trainable).expect("load");
            assert_eq!(bert.vars().len(), expected_vars, "{trainable:?}");
            let mut rng = SeededRng::new(5);
            let output = bert
                .forward(
                    &padded,
                    &mask,
                    Some(Dropout {
                        rate: 0.1,
                        rng: &mut rng,
                    }),
                )
                .expect("forward");
            let gradients = output
                .sqr()
                .and_then(|squares| squares.sum_all())
                .and_then(|loss| loss.backward())
                .expect("backward");
            for (name, var) in bert.vars() {
                let gradient = gradients.get(var.as_tensor());
                assert!(gradient.is_some(), "{name} has no gradient");
            }
        }
        let top = TrainableBert::load(vb, &config, Trainable::TopLayers(1)).expect("top");
        assert_eq!(top.vars().len(), 16);
        assert!(
            top.vars()
                .iter()
                .all(|(name, _)| name.starts_with("encoder.layer.1."))
        );
    }

    #[test]
    fn dropout_is_seeded_and_keeps_the_expected_value() {
        let ones = Tensor::ones((100, 100), DType::F32, &Device::Cpu).expect("ones");
        let masked = |seed| {
            let mut rng = SeededRng::new(seed);
            Dropout {
                rate: 0.25,
                rng: &mut rng,
            }
            .apply(&ones)
            .and_then(|tensor| tensor.flatten_all()?.to_vec1::<f32>())
            .expect("dropout")
        };
        assert_eq!(masked(1), masked(1));
        assert_ne!(masked(1), masked(2));
        let values = masked(1);
        let dropped = values.iter().filter(|value| **value == 0.0).count();
        assert!(
            (2_200..2_800).contains(&dropped),
            "{dropped} of 10000 dropped"
        );
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
    }

    #[test]
    fn impossible_layer_counts_are_refused() {
        let config = tiny_config("gelu");
        let varmap = random_weights(&config);
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        for count in [0, 3] {
            assert!(TrainableBert::load(vb.clone(), &config, Trainable::TopLayers(count)).is_err());
        }
    }
}
