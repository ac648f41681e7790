//! A BERT encoder for CPU inference, ported from Hugging Face transformers' `modeling_bert.py`
//! (`BertEmbeddings`, `BertSelfAttention`, `BertSelfOutput`, `BertIntermediate`,
//! `BertOutput`). It reads the same tensor names as candle-transformers' `BertModel`, so every
//! model directory loads into both, and `tests/tiny_model.rs` checks that they agree.
//!
//! The difference is speed on a few cores. The matrix products are candle's (gemm, threaded),
//! or integer ones for 4-bit layers ([`Precision::Fast`]); everything between them runs as
//! fused, row-parallel kernels (`kernels.rs`): bias + GELU, bias + residual + LayerNorm, and attention per sequence straight from the packed
//! query/key/value projection. And nothing is padded: a batch is its texts' tokens end to end,
//! with their lengths, so no product is spent on padding (a third or more of a batch of
//! tweets padded to its longest).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use crate::kernels::{
    Activation, AttentionScratch, AttentionShape, NormParams, add_layer_norm, bias_activation,
    sequence_attention,
};
use crate::q4_matmul::{self, Q4Weights};
use crate::quantized::{self, WordTable};

/// Rows handed to one thread-pool task: enough work to outweigh the scheduling.
const ROWS_PER_TASK: usize = 8;

/// The encoder: token ids in, one hidden vector per token out.
pub struct BertEncoder {
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
}

impl BertEncoder {
    /// Loads from the root of a checkpoint, or from under `bert.` as task models store it.
    pub fn load(
        vb: VarBuilder,
        config: &Config,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let vb = if stores_encoder_at_root(&vb) {
            vb
        } else {
            vb.pp("bert")
        };
        let embeddings = Embeddings::load(vb.pp("embeddings"), config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|index| {
                EncoderLayer::load(vb.pp(format!("encoder.layer.{index}")), config, precision)
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { embeddings, layers })
    }

    /// `input_ids` holds the texts' token ids one after another, `lengths` how many each
    /// text has. Returns `(tokens, hidden)`, one row per token in the same order.
    pub fn forward(&self, input_ids: &Tensor, lengths: &[usize]) -> candle_core::Result<Tensor> {
        self.forward_layers(input_ids, lengths, self.layers.len())
    }

    /// As `forward`, through the embeddings and the first `count` layers only: the frozen
    /// part under layers that are being fine-tuned.
    pub fn forward_layers(
        &self,
        input_ids: &Tensor,
        lengths: &[usize],
        count: usize,
    ) -> candle_core::Result<Tensor> {
        let tokens = input_ids.dims1()?;
        if lengths.iter().sum::<usize>() != tokens || lengths.contains(&0) {
            candle_core::bail!("lengths {lengths:?} do not cover {tokens} tokens");
        }
        let mut hidden = self.embeddings.forward(input_ids, lengths)?;
        for layer in self.layers.iter().take(count) {
            hidden = layer.forward(&hidden, lengths)?;
        }
        Ok(hidden)
    }
}

/// Whether a checkpoint stores the encoder at its root (a base model, or a model directory)
/// rather than under `bert.` (a task model from transformers).
pub(crate) fn stores_encoder_at_root(vb: &VarBuilder) -> bool {
    const WORDS: &str = "embeddings.word_embeddings.weight";
    vb.contains_tensor(WORDS) || quantized::is_q4_0(vb, WORDS)
}

/// How the layers' matrix products run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 4-bit layers (multilingual-e5's lower eight) multiply 8-bit activations with their
    /// 4-bit weights where the CPU has AVX2 (`q4_matmul`): those products 1.1–1.6× as fast,
    /// the whole e5 encoder ~1.2×, at a relative error of a few 1e-3 per output. Other
    /// layers, and CPUs without AVX2, run in f32.
    #[default]
    Fast,
    /// Every product in f32: the reference numerics the parity tests hold to 1e-4.
    F32,
}

/// Linear layer weights; the bias is applied by the fused kernel that follows the product.
struct Dense {
    weights: DenseWeights,
    bias: Vec<f32>,
}

enum DenseWeights {
    /// `Wᵀ`, `(inputs, outputs)` row-major: stored as `(outputs, inputs)`, it made gemm
    /// repack every weight on every call, which cost more than the multiply at batch 1.
    F32(Tensor),
    Q4(Q4Weights),
}

impl Dense {
    fn load(
        vb: VarBuilder,
        inputs: usize,
        outputs: usize,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let bias = vb.get(outputs, "bias")?.to_vec1()?;
        Self::stacked(&[vb], inputs, outputs, bias, precision)
    }

    /// The `(outputs, inputs)` weights of `parts`, stacked into one `(parts · outputs,
    /// inputs)` product (as query, key and value run).
    fn stacked(
        parts: &[VarBuilder],
        inputs: usize,
        outputs: usize,
        bias: Vec<f32>,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let all_4_bit = parts.iter().all(|vb| quantized::is_q4_0(vb, "weight"));
        let weights = if precision == Precision::Fast && all_4_bit && q4_matmul::available() {
            let mut bytes = Vec::new();
            for vb in parts {
                bytes.extend(quantized::q4_0_bytes(vb, outputs, inputs, "weight")?);
            }
            DenseWeights::Q4(Q4Weights::from_blocks(
                &bytes,
                parts.len() * outputs,
                inputs,
            ))
        } else {
            let matrices = parts
                .iter()
                .map(|vb| quantized::matrix(vb, outputs, inputs, "weight"))
                .collect::<candle_core::Result<Vec<_>>>()?;
            DenseWeights::F32(Tensor::cat(&matrices, 0)?.t()?.contiguous()?)
        };
        Ok(Self { weights, bias })
    }

    /// `x · Wᵀ` for `x` of shape `(rows, inputs)`, without the bias.
    fn product(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.weights {
            DenseWeights::F32(weight_t) => x.matmul(weight_t),
            DenseWeights::Q4(weights) => x.apply_op1_no_bwd(&Q4Product(weights)),
        }
    }
}

/// A LayerNorm's parameters (`LayerNorm.weight` / `.bias`).
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        Ok(Self {
            gamma: vb.get(config.hidden_size, "weight")?.to_vec1()?,
            beta: vb.get(config.hidden_size, "bias")?.to_vec1()?,
            eps: config.layer_norm_eps as f32,
        })
    }

    /// `LayerNorm(x + bias + residual)`, row by row.
    fn add_normalize(
        &self,
        x: &Tensor,
        bias: &[f32],
        residual: &Tensor,
    ) -> candle_core::Result<Tensor> {
        x.apply_op2_no_bwd(
            residual,
            &AddLayerNorm(NormParams {
                dense_bias: bias,
                gamma: &self.gamma,
                beta: &self.beta,
                eps: self.eps,
            }),
        )
    }
}

// https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py#L165
struct Embeddings {
    word: WordTable,
    position: Tensor,
    /// Every text is a single segment, so only token type 0's vector is ever added.
    token_type_zero: Vec<f32>,
    norm: Norm,
}

impl Embeddings {
    fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        let hidden = config.hidden_size;
        let token_types = vb.get(
            (config.type_vocab_size, hidden),
            "token_type_embeddings.weight",
        )?;
        Ok(Self {
            word: WordTable::load(&vb, config.vocab_size, hidden, "word_embeddings.weight")?,
            position: vb.get(
                (config.max_position_embeddings, hidden),
                "position_embeddings.weight",
            )?,
            token_type_zero: token_types.get(0)?.to_vec1()?,
            norm: Norm::load(vb.pp("LayerNorm"), config)?,
        })
    }

    /// Ids of concatenated texts → `(tokens, hidden)` normalized embeddings; each text's
    /// positions count from 0.
    fn forward(&self, input_ids: &Tensor, lengths: &[usize]) -> candle_core::Result<Tensor> {
        let words = self.word.rows(input_ids)?;
        let positions: Vec<u32> = lengths.iter().flat_map(|len| 0..*len as u32).collect();
        let positions = Tensor::from_vec(positions, input_ids.dims1()?, input_ids.device())?;
        let positions = self.position.index_select(&positions, 0)?;
        self.norm
            .add_normalize(&words, &self.token_type_zero, &positions)
    }
}

// https://github.com/huggingface/transformers/blob/v4.46.0/src/transformers/models/bert/modeling_bert.py#L530
struct EncoderLayer {
    /// `attention.self.{query,key,value}`, packed into one product.
    query_key_value: Dense,
    heads: usize,
    /// `attention.output`
    attention_output: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    activation: Activation,
    output: Dense,
    output_norm: Norm,
}

impl EncoderLayer {
    fn load(vb: VarBuilder, config: &Config, precision: Precision) -> candle_core::Result<Self> {
        let hidden = config.hidden_size;
        if config.num_attention_heads == 0 || !hidden.is_multiple_of(config.num_attention_heads) {
            candle_core::bail!(
                "hidden_size {hidden} is not a multiple of num_attention_heads {}",
                config.num_attention_heads
            );
        }
        let attention = vb.pp("attention.self");
        let parts = ["query", "key", "value"].map(|name| attention.pp(name));
        let mut biases = Vec::with_capacity(3 * hidden);
        for vb in &parts {
            biases.extend(vb.get(hidden, "bias")?.to_vec1::<f32>()?);
        }
        let query_key_value = Dense::stacked(&parts, hidden, hidden, biases, precision)?;
        Ok(Self {
            query_key_value,
            heads: config.num_attention_heads,
            attention_output: Dense::load(
                vb.pp("attention.output.dense"),
                hidden,
                hidden,
                precision,
            )?,
            attention_norm: Norm::load(vb.pp("attention.output.LayerNorm"), config)?,
            intermediate: Dense::load(
                vb.pp("intermediate.dense"),
                hidden,
                config.intermediate_size,
                precision,
            )?,
            activation: match config.hidden_act {
                HiddenAct::Gelu => Activation::GeluErf,
                HiddenAct::GeluApproximate => Activation::GeluTanh,
                HiddenAct::Relu => Activation::Relu,
            },
            output: Dense::load(
                vb.pp("output.dense"),
                config.intermediate_size,
                hidden,
                precision,
            )?,
            output_norm: Norm::load(vb.pp("output.LayerNorm"), config)?,
        })
    }

    /// `hidden` is `(tokens, hidden_size)`.
    fn forward(&self, hidden: &Tensor, lengths: &[usize]) -> candle_core::Result<Tensor> {
        let hidden_size = hidden.dim(1)?;
        let context = self
            .query_key_value
            .product(hidden)?
            .apply_op1_no_bwd(&SelfAttention {
                bias: &self.query_key_value.bias,
                lengths,
                shape: AttentionShape {
                    heads: self.heads,
                    head_size: hidden_size / self.heads,
                },
            })?;
        let attended = self.attention_norm.add_normalize(
            &self.attention_output.product(&context)?,
            &self.attention_output.bias,
            hidden,
        )?;
        let intermediate =
            self.intermediate
                .product(&attended)?
                .apply_op1_no_bwd(&BiasActivation {
                    bias: &self.intermediate.bias,
                    activation: self.activation,
                })?;
        self.output_norm.add_normalize(
            &self.output.product(&intermediate)?,
            &self.output.bias,
            &attended,
        )
    }
}

/// The `f32` values of a contiguous CPU tensor.
fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: input must be contiguous");
    };
    match storage {
        CpuStorage::F32(values) => Ok(&values[start..end]),
        other => candle_core::bail!("{op}: expected f32, got {:?}", other.dtype()),
    }
}

fn rows_of(layout: &Layout, width: usize, op: &str) -> candle_core::Result<usize> {
    match layout.dims() {
        [rows, columns] if *columns == width => Ok(*rows),
        dims => candle_core::bail!("{op}: expected (rows, {width}), got {dims:?}"),
    }
}

/// `x · Wᵀ` with 4-bit `W` over `(rows, inputs)`.
struct Q4Product<'a>(&'a Q4Weights);

impl CustomOp1 for Q4Product<'_> {
    fn name(&self) -> &'static str {
        "q4-product"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let rows = rows_of(layout, self.0.inputs(), self.name())?;
        let x = contiguous_f32(storage, layout, self.name())?;
        let mut out = vec![0.0f32; rows * self.0.outputs()];
        self.0.product(x, &mut out);
        Ok((CpuStorage::F32(out), Shape::from((rows, self.0.outputs()))))
    }
}

/// `activation(x + bias)` over `(rows, width)`.
struct BiasActivation<'a> {
    bias: &'a [f32],
    activation: Activation,
}

impl CustomOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let width = self.bias.len();
        let rows = rows_of(layout, width, self.name())?;
        let x = contiguous_f32(storage, layout, self.name())?;
        let mut out = vec![0.0f32; rows * width];
        out.par_chunks_mut(width)
            .zip(x.par_chunks(width))
            .with_min_len(ROWS_PER_TASK)
            .for_each(|(out, x)| bias_activation(x, self.bias, self.activation, out));
        Ok((CpuStorage::F32(out), Shape::from((rows, width))))
    }
}

/// `LayerNorm(x + bias + residual)` over `(rows, width)`.
struct AddLayerNorm<'a>(NormParams<'a>);

impl CustomOp2 for AddLayerNorm<'_> {
    fn name(&self) -> &'static str {
        "add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        x_storage: &CpuStorage,
        x_layout: &Layout,
        residual_storage: &CpuStorage,
        residual_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let width = self.0.gamma.len();
        let rows = rows_of(x_layout, width, self.name())?;
        if rows_of(residual_layout, width, self.name())? != rows {
            candle_core::bail!("{}: residual has a different row count", self.name());
        }
        let x = contiguous_f32(x_storage, x_layout, self.name())?;
        let residual = contiguous_f32(residual_storage, residual_layout, self.name())?;
        let mut out = vec![0.0f32; rows * width];
        out.par_chunks_mut(width)
            .zip(x.par_chunks(width).zip(residual.par_chunks(width)))
            .with_min_len(ROWS_PER_TASK)
            .for_each(|(out, (x, residual))| add_layer_norm(x, residual, &self.0, out));
        Ok((CpuStorage::F32(out), Shape::from((rows, width))))
    }
}

/// Multi-head self-attention from `(tokens, 3 · hidden)` packed projections to
/// `(tokens, hidden)` context vectors, one sequence per task.
struct SelfAttention<'a> {
    bias: &'a [f32],
    lengths: &'a [usize],
    shape: AttentionShape,
}

impl CustomOp1 for SelfAttention<'_> {
    fn name(&self) -> &'static str {
        "self-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let hidden = self.shape.hidden();
        let rows = rows_of(layout, 3 * hidden, self.name())?;
        if rows != self.lengths.iter().sum::<usize>() {
            candle_core::bail!(
                "{}: {rows} rows for lengths {:?}",
                self.name(),
                self.lengths
            );
        }
        let qkv = contiguous_f32(storage, layout, self.name())?;
        let mut out = vec![0.0f32; rows * hidden];
        // One (qkv, out) pair of slices per sequence.
        let mut sequences = Vec::with_capacity(self.lengths.len());
        let (mut qkv_rest, mut out_rest) = (qkv, out.as_mut_slice());
        for len in self.lengths {
            let (qkv_rows, qkv_tail) = qkv_rest.split_at(len * 3 * hidden);
            let (out_rows, out_tail) = out_rest.split_at_mut(len * hidden);
            sequences.push((qkv_rows, out_rows));
            (qkv_rest, out_rest) = (qkv_tail, out_tail);
        }
        sequences.into_par_iter().for_each_init(
            AttentionScratch::default,
            |scratch, (qkv, out)| {
                sequence_attention(qkv, self.bias, self.shape, scratch, out);
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((rows, hidden))))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_transformers::models::bert::BertModel;

    use super::*;
    use crate::test_support::{random_weights, tiny_config};

    #[test]
    fn hidden_states_match_candle_transformers_bert_on_real_tokens() {
        for hidden_act in ["gelu", "relu", "geluapproximate"] {
            let config = tiny_config(hidden_act);
            let varmap = random_weights(&config);
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            let stock = BertModel::load(vb.clone(), &config).expect("stock");
            let ours = BertEncoder::load(vb, &config, Precision::F32).expect("ours");

            // The stock model sees a padded, masked batch; ours the same texts end to end.
            let lengths = [5usize, 2, 7];
            let padded_len = 7;
            let (mut padded_ids, mut mask, mut flat_ids, mut real_rows) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (row, len) in lengths.iter().enumerate() {
                for position in 0..padded_len {
                    let real = position < *len;
                    let id = (row * 11 + position * 3 + 1) as u32 % 40;
                    padded_ids.push(if real { id } else { 0 });
                    mask.push(u32::from(real));
                    if real {
                        flat_ids.push(id);
                        real_rows.push((row * padded_len + position) as u32);
                    }
                }
            }
            let padded_ids =
                Tensor::from_vec(padded_ids, (3, padded_len), &Device::Cpu).expect("ids");
            let mask = Tensor::from_vec(mask, (3, padded_len), &Device::Cpu).expect("mask");
            let expected = stock
                .forward(
                    &padded_ids,
                    &padded_ids.zeros_like().expect("types"),
                    Some(&mask),
                )
                .and_then(|hidden| hidden.flatten_to(1))
                .and_then(|hidden| {
                    hidden.index_select(&Tensor::new(real_rows.as_slice(), &Device::Cpu)?, 0)
                })
                .expect("stock forward");
            let flat_ids = Tensor::new(flat_ids.as_slice(), &Device::Cpu).expect("ids");
            let got = ours.forward(&flat_ids, &lengths).expect("our forward");
            assert_eq!(got.dims(), expected.dims());
            let worst = (got - expected)
                .and_then(|diff| diff.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
                .expect("max");
            assert!(worst < 2e-5, "{hidden_act}: max |Δ| {worst}");
        }
    }

    #[test]
    fn forward_refuses_lengths_that_do_not_cover_the_tokens() {
        let config = tiny_config("gelu");
        let varmap = random_weights(&config);
        let ours = BertEncoder::load(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            &config,
            Precision::F32,
        )
        .expect("ours");
        let ids = Tensor::zeros(6, DType::U32, &Device::Cpu).expect("ids");
        assert!(ours.forward(&ids, &[4]).is_err());
        assert!(ours.forward(&ids, &[4, 3]).is_err());
        assert!(ours.forward(&ids, &[6, 0]).is_err());
        assert_eq!(
            ours.forward(&ids, &[4, 2]).expect("forward").dims(),
            [6, 24]
        );
    }

    #[test]
    fn fused_ops_refuse_wrong_shapes_and_dtypes() {
        let op = BiasActivation {
            bias: &[0.0; 3],
            activation: Activation::Relu,
        };
        let wrong_width = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).expect("tensor");
        assert!(wrong_width.apply_op1_no_bwd(&op).is_err());
        let wrong_dtype = Tensor::zeros((2, 3), DType::F64, &Device::Cpu).expect("tensor");
        assert!(wrong_dtype.apply_op1_no_bwd(&op).is_err());
        let right = Tensor::new(&[[-1.0f32, 2.0, 0.5]], &Device::Cpu).expect("tensor");
        assert_eq!(
            right
                .apply_op1_no_bwd(&op)
                .and_then(|out| out.to_vec2::<f32>())
                .expect("applies"),
            vec![vec![0.0, 2.0, 0.5]]
        );
    }
}
