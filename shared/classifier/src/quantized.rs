//! 4-bit weights in a model directory. A `(rows, columns)` matrix may be stored as ggml's
//! `Q4_0` — per block of 32 weights an f16 scale then 16 bytes of nibbles — under the float
//! tensor's name plus [`Q4_0_SUFFIX`], as U8 `(rows, columns / 32 · 18)`. multilingual-e5-small
//! comes this way (its word table alone is 96 M of its 118 M parameters); kept 4-bit, its model
//! directory stays under 100 MB.
//!
//! Layers run 4-bit with 8-bit activations where the CPU allows (`q4_matmul`), else are
//! dequantized once at load and run in f32, as every other model's; the word table stays
//! 4-bit in memory and only the rows a batch looks up are dequantized. Decoding is candle's
//! own (`qtensor_from_ggml`, `QTensor::dequantize`).

use candle_core::quantized::GgmlDType;
use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

/// Appended to a float tensor's name for its 4-bit form.
pub const Q4_0_SUFFIX: &str = ".q4_0";
/// Weights per `Q4_0` block.
pub const Q4_0_BLOCK_WEIGHTS: usize = 32;
/// Bytes per `Q4_0` block: an f16 scale and 32 nibbles.
pub const Q4_0_BLOCK_BYTES: usize = 18;

/// Bytes of one 4-bit row of `columns` weights.
pub fn q4_0_row_bytes(columns: usize) -> candle_core::Result<usize> {
    if columns == 0 || !columns.is_multiple_of(Q4_0_BLOCK_WEIGHTS) {
        candle_core::bail!("a 4-bit row needs a positive multiple of 32 weights, not {columns}");
    }
    Ok(columns / Q4_0_BLOCK_WEIGHTS * Q4_0_BLOCK_BYTES)
}

/// Whether `name` (a float tensor's name) is stored 4-bit in `vb`.
pub(crate) fn is_q4_0(vb: &VarBuilder, name: &str) -> bool {
    vb.contains_tensor(&format!("{name}{Q4_0_SUFFIX}"))
}

/// The `(rows, columns)` f32 matrix `name`, from its float or its 4-bit form.
pub(crate) fn matrix(
    vb: &VarBuilder,
    rows: usize,
    columns: usize,
    name: &str,
) -> candle_core::Result<Tensor> {
    if is_q4_0(vb, name) {
        dequantize(&q4_0_blocks(vb, rows, columns, name)?, columns)
    } else {
        vb.get((rows, columns), name)
    }
}

/// The raw blocks of 4-bit matrix `name`, shape-checked.
pub(crate) fn q4_0_bytes(
    vb: &VarBuilder,
    rows: usize,
    columns: usize,
    name: &str,
) -> candle_core::Result<Vec<u8>> {
    q4_0_blocks(vb, rows, columns, name)?
        .flatten_all()?
        .to_vec1()
}

/// As [`q4_0_bytes`], as a `(rows, blocks · 18)` U8 tensor.
fn q4_0_blocks(
    vb: &VarBuilder,
    rows: usize,
    columns: usize,
    name: &str,
) -> candle_core::Result<Tensor> {
    vb.get_with_hints_dtype(
        (rows, q4_0_row_bytes(columns)?),
        &format!("{name}{Q4_0_SUFFIX}"),
        candle_nn::Init::Const(0.0),
        DType::U8,
    )
}

/// `(rows, blocks · 18)` U8 blocks → `(rows, columns)` f32.
fn dequantize(blocks: &Tensor, columns: usize) -> candle_core::Result<Tensor> {
    let (rows, _) = blocks.dims2()?;
    let bytes = blocks.flatten_all()?.to_vec1::<u8>()?;
    qtensor_from_ggml(
        GgmlDType::Q4_0,
        &bytes,
        vec![rows, columns],
        blocks.device(),
    )?
    .dequantize(blocks.device())
}

/// A token-embedding table, looked up row by row.
pub(crate) enum WordTable {
    Dense(Tensor),
    /// Kept 4-bit: `(vocabulary, blocks · 18)` U8.
    Q4_0 {
        blocks: Tensor,
        columns: usize,
    },
}

impl WordTable {
    /// Loads `name` as stored: a 4-bit table stays 4-bit.
    pub(crate) fn load(
        vb: &VarBuilder,
        rows: usize,
        columns: usize,
        name: &str,
    ) -> candle_core::Result<Self> {
        if is_q4_0(vb, name) {
            Ok(Self::Q4_0 {
                blocks: q4_0_blocks(vb, rows, columns, name)?,
                columns,
            })
        } else {
            Ok(Self::Dense(vb.get((rows, columns), name)?))
        }
    }

    /// `(ids, columns)` f32 rows for the token ids in `ids` (1-D, u32).
    pub(crate) fn rows(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Dense(table) => table.index_select(ids, 0),
            Self::Q4_0 { blocks, columns } => dequantize(&blocks.index_select(ids, 0)?, *columns),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::Device;

    use super::*;

    /// One block in ggml's layout, by the formula `e5.c`'s `deq_row` states:
    /// `w[j] = ((qs[j] & 15) − 8)·d`, `w[j+16] = ((qs[j] >> 4) − 8)·d`.
    fn block(scale: f32, nibbles: impl Fn(usize) -> (u8, u8)) -> (Vec<u8>, Vec<f32>) {
        let d = half::f16::from_f32(scale);
        let mut bytes = d.to_le_bytes().to_vec();
        let mut weights = vec![0.0; 32];
        for j in 0..16 {
            let (low, high) = nibbles(j);
            bytes.push(low | (high << 4));
            weights[j] = (f32::from(low) - 8.0) * d.to_f32();
            weights[j + 16] = (f32::from(high) - 8.0) * d.to_f32();
        }
        (bytes, weights)
    }

    /// A `(3, 64)` matrix of known 4-bit blocks, as bytes and as the floats they stand for.
    fn sample() -> (Tensor, Vec<Vec<f32>>) {
        let (mut bytes, mut rows) = (Vec::new(), Vec::new());
        for row in 0..3u8 {
            let mut values = Vec::new();
            for half_row in 0..2u8 {
                let (b, w) = block(0.25 + f32::from(row + half_row), |j| {
                    ((j as u8 + row) % 16, (15 - j as u8 + half_row) % 16)
                });
                bytes.extend(b);
                values.extend(w);
            }
            rows.push(values);
        }
        let blocks = Tensor::from_vec(bytes, (3, 36), &Device::Cpu).expect("blocks");
        (blocks, rows)
    }

    fn builder(name: &str, tensor: Tensor) -> VarBuilder<'static> {
        VarBuilder::from_tensors(
            HashMap::from([(name.to_owned(), tensor)]),
            DType::F32,
            &Device::Cpu,
        )
    }

    #[test]
    fn a_4_bit_matrix_dequantizes_to_the_formula() {
        let (blocks, expected) = sample();
        let vb = builder("w.weight.q4_0", blocks);
        let got = matrix(&vb, 3, 64, "w.weight").expect("dequantizes");
        assert_eq!(got.to_vec2::<f32>().expect("values"), expected);
    }

    #[test]
    fn a_4_bit_table_gives_exactly_the_rows_looked_up() {
        let (blocks, expected) = sample();
        let table =
            WordTable::load(&builder("t.weight.q4_0", blocks), 3, 64, "t.weight").expect("loads");
        let ids = Tensor::new(&[2u32, 0, 2], &Device::Cpu).expect("ids");
        let rows = table
            .rows(&ids)
            .expect("rows")
            .to_vec2::<f32>()
            .expect("values");
        assert_eq!(
            rows,
            vec![
                expected[2].clone(),
                expected[0].clone(),
                expected[2].clone()
            ]
        );
    }

    #[test]
    fn float_weights_load_as_before_and_bad_shapes_are_refused() {
        let dense = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu).expect("dense");
        let vb = builder("w.weight", dense);
        assert!(!is_q4_0(&vb, "w.weight"));
        assert_eq!(
            matrix(&vb, 2, 2, "w.weight")
                .and_then(|m| m.to_vec2::<f32>())
                .expect("float"),
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );
        let (blocks, _) = sample();
        let vb = builder("w.weight.q4_0", blocks);
        assert!(
            matrix(&vb, 3, 32, "w.weight").is_err(),
            "wrong column count"
        );
        assert!(matrix(&vb, 4, 64, "w.weight").is_err(), "wrong row count");
        assert!(q4_0_row_bytes(48).is_err());
    }
}
