//! Fused CPU kernels for the encoder's element-wise work, on plain slices.
//!
//! Candle runs element-wise ops (GELU, bias adds, the softmax of the stock BERT) one op at a
//! time on a single thread; with all-MiniLM-L6-v2 on two cores that took about half of every
//! forward pass. Each function here does one fused pass over a row, written so the compiler
//! can vectorize it; `bert.rs` splits rows across the thread pool. The entry points are also
//! compiled for AVX2 (`multiversion`, chosen once at run time): on x86-64 the baseline is SSE2,
//! half the vector width. Both versions are the same source with the same operation order
//! (Rust never contracts `a * b + c` into a fused multiply-add), so only the vector width
//! differs; the parity tests run whichever version the CPU picks.

use multiversion::multiversion;

/// The error function, as the rational approximation Eigen and XLA use for `f32`
/// (`generic_fast_erf_float`): odd degree-13 numerator over even degree-8 denominator on
/// `[-4, 4]`, where `erf` is ±1 to `f32` precision outside. Branch-free, so it vectorizes;
/// within 5e-7 of the exact value (tested below against `libm::erf`). Plain `*` and `+`, not
/// `mul_add`: without the `fma` target feature (the x86-64 baseline) `mul_add` is a libm call.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let numerator = -2.726_142_3e-10_f32;
    let numerator = numerator * x2 + 2.770_681_4e-8;
    let numerator = numerator * x2 - 2.101_024e-6;
    let numerator = numerator * x2 - 5.692_506_4e-5;
    let numerator = numerator * x2 - 7.349_906_3e-4;
    let numerator = numerator * x2 - 2.954_6e-3;
    let numerator = numerator * x2 - 1.609_603_3e-2;
    let denominator = -1.456_607_2e-5_f32;
    let denominator = denominator * x2 - 2.133_740_6e-4;
    let denominator = denominator * x2 - 1.682_827e-3;
    let denominator = denominator * x2 - 7.373_329e-3;
    let denominator = denominator * x2 - 1.426_474e-2;
    x * numerator / denominator
}

/// The activations BERT configs name (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `gelu`: x·Φ(x) with the exact normal CDF (transformers' `GELUActivation`).
    GeluErf,
    /// `gelu_new` / `gelu_approximate`: the tanh approximation.
    GeluTanh,
    Relu,
}

impl Activation {
    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        match self {
            Self::GeluErf => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Self::GeluTanh => {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
            }
            Self::Relu => x.max(0.0),
        }
    }
}

/// `out = activation(x + bias)` for one row.
#[multiversion(targets("x86_64+avx2+fma"))]
pub(crate) fn bias_activation(x: &[f32], bias: &[f32], activation: Activation, out: &mut [f32]) {
    debug_assert!(x.len() == bias.len() && out.len() == bias.len());
    match activation {
        // One monomorphized loop per activation, so each one vectorizes on its own.
        Activation::GeluErf => bias_then(x, bias, out, |x| Activation::GeluErf.apply(x)),
        Activation::GeluTanh => bias_then(x, bias, out, |x| Activation::GeluTanh.apply(x)),
        Activation::Relu => bias_then(x, bias, out, |x| Activation::Relu.apply(x)),
    }
}

#[inline(always)]
fn bias_then(x: &[f32], bias: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
    for ((out, x), bias) in out.iter_mut().zip(x).zip(bias) {
        *out = f(x + bias);
    }
}

/// Parameters of one LayerNorm, with the bias of the dense layer before it.
pub(crate) struct NormParams<'a> {
    pub dense_bias: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

/// `out = LayerNorm(x + dense_bias + residual)`: BERT's `BertSelfOutput` / `BertOutput` tail
/// (and the embeddings' sum) in one pass. Statistics are accumulated in `f64`, as precise as
/// candle's own layer norm.
#[multiversion(targets("x86_64+avx2+fma"))]
pub(crate) fn add_layer_norm(x: &[f32], residual: &[f32], params: &NormParams, out: &mut [f32]) {
    let width = out.len();
    debug_assert!(x.len() == width && residual.len() == width);
    for ((out, x), (residual, bias)) in out
        .iter_mut()
        .zip(x)
        .zip(residual.iter().zip(params.dense_bias))
    {
        *out = x + bias + residual;
    }
    let mean = out.iter().map(|v| f64::from(*v)).sum::<f64>() / width as f64;
    let variance = out
        .iter()
        .map(|v| {
            let centred = f64::from(*v) - mean;
            centred * centred
        })
        .sum::<f64>()
        / width as f64;
    let inverse_std = (1.0 / (variance + f64::from(params.eps)).sqrt()) as f32;
    let mean = mean as f32;
    for ((out, gamma), beta) in out.iter_mut().zip(params.gamma).zip(params.beta) {
        *out = (*out - mean) * inverse_std * gamma + beta;
    }
}

/// Shapes of one multi-head self-attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttentionShape {
    pub heads: usize,
    pub head_size: usize,
}

impl AttentionShape {
    pub fn hidden(&self) -> usize {
        self.heads * self.head_size
    }
}

/// Scratch space for one sequence's attention, reused across heads.
#[derive(Default)]
pub(crate) struct AttentionScratch {
    query: Vec<f32>,
    /// `(head_size, tokens rounded up to KEY_BLOCK)`: the keys transposed, zero-padded.
    key_t: Vec<f32>,
    value: Vec<f32>,
    scores: Vec<f32>,
}

/// Self-attention of one sequence, all heads (transformers' `BertSelfAttention` without
/// dropout): `qkv` holds one row of `[query | key | value]` projections per token (biases not
/// yet added), `out` receives one row of context vectors per token. Sequences are never
/// padded, so there is no mask: every key is a real token.
#[multiversion(targets("x86_64+avx2+fma"))]
pub(crate) fn sequence_attention(
    qkv: &[f32],
    qkv_bias: &[f32],
    shape: AttentionShape,
    scratch: &mut AttentionScratch,
    out: &mut [f32],
) {
    let hidden = shape.hidden();
    let size = shape.head_size;
    let scale = 1.0 / (size as f32).sqrt();
    let tokens = qkv.len() / (3 * hidden);
    out.fill(0.0);
    for head in 0..shape.heads {
        gather_head(qkv, qkv_bias, shape, head, scale, scratch);
        scratch.scores.resize(scratch.key_t.len() / size, 0.0);
        for (query, out_row) in scratch
            .query
            .chunks_exact(size)
            .zip(out.chunks_exact_mut(hidden))
        {
            score_keys(query, &scratch.key_t, &mut scratch.scores);
            let weights = &mut scratch.scores[..tokens];
            softmax_in_place(weights);
            weigh_values(
                weights,
                &scratch.value,
                &mut out_row[head * size..(head + 1) * size],
            );
        }
    }
}

/// Keys scored together: their running sums stay in registers (four AVX2 vectors) while the
/// query's components go by.
const KEY_BLOCK: usize = 32;
/// Context components summed together (one AVX2 vector).
const DIM_BLOCK: usize = 8;
/// Values summed into separate partial sums, so consecutive multiply-adds do not wait on each
/// other.
const VALUE_STREAMS: usize = 4;

/// `scores = keys · query`, from `key_t` (`(head_size, padded)`, zeros past the last token),
/// a block of keys at a time.
#[inline(always)]
fn score_keys(query: &[f32], key_t: &[f32], scores: &mut [f32]) {
    let padded = scores.len();
    for (block, out) in scores.as_chunks_mut::<KEY_BLOCK>().0.iter_mut().enumerate() {
        let mut sums = [0.0f32; KEY_BLOCK];
        for (&component, key_row) in query.iter().zip(key_t.chunks_exact(padded)) {
            let keys = &key_row.as_chunks::<KEY_BLOCK>().0[block];
            for (sum, key) in sums.iter_mut().zip(keys) {
                *sum += component * key;
            }
        }
        *out = sums;
    }
}

/// `context += Σ weight_j · value_j` over the tokens' values (`(tokens, head_size)`).
#[inline(always)]
fn weigh_values(weights: &[f32], values: &[f32], context: &mut [f32]) {
    let size = context.len();
    let (blocks, rest) = context.as_chunks_mut::<DIM_BLOCK>();
    let first_rest = blocks.len() * DIM_BLOCK;
    for (block, out) in blocks.iter_mut().enumerate() {
        let component = |value: &[f32]| value.as_chunks::<DIM_BLOCK>().0[block];
        let mut sums = [[0.0f32; DIM_BLOCK]; VALUE_STREAMS];
        let weight_groups = weights.chunks_exact(VALUE_STREAMS);
        let value_groups = values.chunks_exact(VALUE_STREAMS * size);
        let (last_weights, last_values) = (weight_groups.remainder(), value_groups.remainder());
        for (group_weights, group_values) in weight_groups.zip(value_groups) {
            for (stream, sum) in sums.iter_mut().enumerate() {
                let weight = group_weights[stream];
                let value = component(&group_values[stream * size..(stream + 1) * size]);
                for lane in 0..DIM_BLOCK {
                    sum[lane] += weight * value[lane];
                }
            }
        }
        for (weight, value) in last_weights.iter().zip(last_values.chunks_exact(size)) {
            for (sum, value) in sums[0].iter_mut().zip(component(value)) {
                *sum += weight * value;
            }
        }
        for (lane, out) in out.iter_mut().enumerate() {
            *out += sums.iter().map(|sum| sum[lane]).sum::<f32>();
        }
    }
    for (offset, out) in rest.iter_mut().enumerate() {
        let column = first_rest + offset;
        *out += weights
            .iter()
            .zip(values.chunks_exact(size))
            .map(|(weight, value)| weight * value[column])
            .sum::<f32>();
    }
}

/// One head's projections, biases added: queries pre-scaled and values one row per token,
/// keys transposed (one row per component, zero-padded to whole blocks of keys) so that
/// scoring runs across tokens.
#[inline(always)]
fn gather_head(
    qkv: &[f32],
    qkv_bias: &[f32],
    shape: AttentionShape,
    head: usize,
    scale: f32,
    scratch: &mut AttentionScratch,
) {
    let hidden = shape.hidden();
    let size = shape.head_size;
    let columns = |part: usize| part * hidden + head * size..part * hidden + (head + 1) * size;
    for (buffer, part, factor) in [(&mut scratch.query, 0, scale), (&mut scratch.value, 2, 1.0)] {
        let bias = &qkv_bias[columns(part)];
        buffer.clear();
        for row in qkv.chunks_exact(3 * hidden) {
            buffer.extend(
                row[columns(part)]
                    .iter()
                    .zip(bias)
                    .map(|(value, bias)| (value + bias) * factor),
            );
        }
    }
    let key_bias = &qkv_bias[columns(1)];
    let padded = (qkv.len() / (3 * hidden)).next_multiple_of(KEY_BLOCK);
    scratch.key_t.clear();
    scratch.key_t.resize(size * padded, 0.0);
    let first = columns(1).start;
    for ((offset, bias), key_row) in key_bias
        .iter()
        .enumerate()
        .zip(scratch.key_t.chunks_exact_mut(padded))
    {
        for (key, row) in key_row.iter_mut().zip(qkv.chunks_exact(3 * hidden)) {
            *key = row[first + offset] + bias;
        }
    }
}

/// `e^x` for `f32`, as Cephes' `expf` computes it: `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, a
/// degree-7 polynomial for `e^r`, and `2^n` put straight into the exponent bits. Branch-free,
/// so the softmax loop can vectorize (`f32::exp` is a libm call per element); within 2 ulp of
/// the exact value on [−87, 88] (tested below). Inputs are clamped to that range, where `expf`
/// would go subnormal or overflow: a score 87 below the row's maximum weighs e^−87 instead of
/// less, which is nothing beside the maximum's 1.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, so `n · LN2_HIGH` is exact for every `n` in range.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding 1.5·2²³ rounds to the nearest integer without `round` (a libm call on baseline
    // x86-64, where SSE4.1's `roundps` is not available).
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2_E + ROUNDER) - ROUNDER;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.987_569_2e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    e_r * two_n
}

fn softmax_in_place(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for score in scores.iter_mut() {
        *score = exp(*score - max);
    }
    let sum: f32 = scores.iter().sum();
    let inverse = 1.0 / sum;
    for score in scores.iter_mut() {
        *score *= inverse;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_within_5e_7_of_the_exact_function() {
        let worst = (-600_000..=600_000)
            .map(|step| step as f64 * 1e-5)
            .map(|x| (f64::from(erf(x as f32)) - libm::erf(x)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 5e-7, "worst |erf error| {worst}");
    }

    #[test]
    fn exp_is_within_2_ulp_of_the_exact_function() {
        let mut worst = 0.0f64;
        for step in -870_000..=880_000 {
            let x = step as f32 * 1e-4;
            let exact = f64::from(x).exp();
            let ulp = f64::from(f32::EPSILON) * exact;
            worst = worst.max((f64::from(exp(x)) - exact).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(-87.0) > 0.0 && exp(-87.0) < 1e-37);
    }

    #[test]
    fn activations_match_their_definitions() {
        for x in [-3.0f32, -0.5, 0.0, 0.7, 2.5] {
            let exact_gelu = 0.5 * f64::from(x) * (1.0 + libm::erf(f64::from(x) / 2f64.sqrt()));
            assert!((f64::from(Activation::GeluErf.apply(x)) - exact_gelu).abs() < 1e-6);
            assert_eq!(Activation::Relu.apply(x), x.max(0.0));
        }
        // The tanh form departs from the exact GELU by at most ~1e-3 around |x| ≈ 2.
        let gap = (Activation::GeluTanh.apply(2.0) - Activation::GeluErf.apply(2.0)).abs();
        assert!(gap > 1e-5 && gap < 2e-3, "{gap}");
        let mut out = [f32::NAN; 3];
        bias_activation(
            &[1.0, -2.0, 0.5],
            &[0.5, 1.0, -1.0],
            Activation::Relu,
            &mut out,
        );
        assert_eq!(out, [1.5, 0.0, 0.0]);
    }

    #[test]
    fn add_layer_norm_normalizes_the_sum() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let residual = [0.5, 0.5, 0.5, 0.5];
        let params = NormParams {
            dense_bias: &[-0.5, -0.5, -0.5, -0.5],
            gamma: &[1.0, 1.0, 2.0, 2.0],
            beta: &[0.0, 0.0, 0.0, 1.0],
            eps: 0.0,
        };
        let mut out = [0.0; 4];
        add_layer_norm(&x, &residual, &params, &mut out);
        // (x - 2.5) / sqrt(1.25), then scaled and shifted per column.
        let expected = [-1.341_641, -0.447_214, 0.894_427, 3.683_282];
        for (got, want) in out.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{out:?}");
        }
    }

    /// Straightforward attention: scores, softmax, weighted values.
    fn naive_attention(qkv: &[f32], bias: &[f32], shape: AttentionShape) -> Vec<f32> {
        let hidden = shape.hidden();
        let size = shape.head_size;
        let len = qkv.len() / (3 * hidden);
        let mut out = vec![0.0; len * hidden];
        let at = |row: usize, column: usize| qkv[row * 3 * hidden + column] + bias[column];
        for head in 0..shape.heads {
            for i in 0..len {
                let scores: Vec<f32> = (0..len)
                    .map(|j| {
                        let dot: f32 = (0..size)
                            .map(|t| at(i, head * size + t) * at(j, hidden + head * size + t))
                            .sum();
                        dot / (size as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f32::MIN, f32::max);
                let weights: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f32 = weights.iter().sum();
                for t in 0..size {
                    out[i * hidden + head * size + t] = (0..len)
                        .map(|j| weights[j] / total * at(j, 2 * hidden + head * size + t))
                        .sum();
                }
            }
        }
        out
    }

    #[test]
    fn attention_matches_the_naive_computation() {
        // Head sizes below, at and off the context's eight-lane blocks; sequences shorter
        // than a block of keys, over one with a partial group of values, and exactly two. One
        // scratch serves every case, as it serves every sequence of a batch.
        let mut scratch = AttentionScratch::default();
        for (head_size, len) in [(10, 5), (32, 37), (16, 64), (32, 3)] {
            let shape = AttentionShape {
                heads: 3,
                head_size,
            };
            assert_attention_matches_the_naive_computation(shape, len, &mut scratch);
        }
    }

    fn assert_attention_matches_the_naive_computation(
        shape: AttentionShape,
        len: usize,
        scratch: &mut AttentionScratch,
    ) {
        let hidden = shape.hidden();
        let qkv: Vec<f32> = (0..len * 3 * hidden)
            .map(|i| (i * 37 % 101) as f32 / 50.0 - 1.0)
            .collect();
        let bias: Vec<f32> = (0..3 * hidden)
            .map(|i| (i % 7) as f32 * 0.1 - 0.3)
            .collect();
        let mut out = vec![f32::NAN; len * hidden];
        sequence_attention(&qkv, &bias, shape, scratch, &mut out);
        let expected = naive_attention(&qkv, &bias, shape);
        for (index, (got, want)) in out.iter().zip(&expected).enumerate() {
            assert!(
                (got - want).abs() < 1e-5,
                "{shape:?}, {len} tokens, element {index}: {got} vs {want}"
            );
        }
    }
}
