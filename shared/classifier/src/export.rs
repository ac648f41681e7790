//! Writes a complete model directory: the base encoder's config and tokenizer, its weights
//! (without the unused pooler) plus a trained head in one safetensors file (f16 by default: half the size, and within
//! 1e-3 of the f32 logits), and `labels.json`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::labels::LabelsFile;
use crate::model_dir::{CONFIG_FILE, LABELS_FILE, LoadError, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::quantized::{Q4_0_SUFFIX, q4_0_row_bytes};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing weights failed")]
    Weights(#[from] candle_core::Error),
    #[error("labels.json: {0}")]
    Labels(String),
    #[error("{0}")]
    Trained(String),
}

/// Writes `out` from the encoder in `base` with `trained` laid over it: the head (tensors
/// named `classifier.*`) and any fine-tuned encoder tensors, which must replace ones of the
/// same name and shape.
pub fn write_model_dir(
    base: &Path,
    out: &Path,
    trained: &HashMap<String, Tensor>,
    labels: &LabelsFile,
    dtype: DType,
) -> Result<(), ExportError> {
    labels
        .validate()
        .map_err(|error| ExportError::Labels(error.to_string()))?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    for file in [CONFIG_FILE, TOKENIZER_FILE] {
        let from = base.join(file);
        if !from.is_file() {
            return Err(LoadError::Missing {
                dir: base.to_path_buf(),
                file,
            }
            .into());
        }
        std::fs::copy(&from, out.join(file)).map_err(io(&from))?;
    }
    let base_weights = base.join(WEIGHTS_FILE);
    let mut tensors = candle_core::safetensors::load(&base_weights, &Device::Cpu)?;
    // The old head is replaced; BERT's pooler is not used by mean or CLS pooling here.
    tensors.retain(|name, _| !name.starts_with("classifier.") && !name.starts_with("pooler."));
    for (name, tensor) in trained {
        if !name.starts_with("classifier.") {
            check_replaces(&mut tensors, name, tensor).map_err(|message| {
                ExportError::Trained(format!("{message} in {}", base_weights.display()))
            })?;
        }
        tensors.insert(name.clone(), tensor.clone());
    }
    let converted = tensors
        .into_iter()
        .map(|(name, tensor)| {
            let tensor = if tensor.dtype().is_float() {
                tensor.to_dtype(dtype)?
            } else {
                tensor
            };
            Ok((name, tensor))
        })
        .collect::<candle_core::Result<HashMap<_, _>>>()?;
    let weights_path = out.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&converted, &weights_path)?;
    crate::model_dir::make_world_readable(&weights_path).map_err(io(&weights_path))?;
    let json = serde_json::to_vec_pretty(labels)
        .map_err(|error| ExportError::Labels(error.to_string()))?;
    let labels_path = out.join(LABELS_FILE);
    std::fs::write(&labels_path, [json, b"\n".to_vec()].concat()).map_err(io(&labels_path))?;
    Ok(())
}

/// Checks that trained tensor `name` replaces a base tensor of its shape, and takes that base
/// tensor out: a float one of the same name, or a 4-bit one (a fine-tuned layer of a 4-bit
/// base is written in float).
fn check_replaces(
    base: &mut HashMap<String, Tensor>,
    name: &str,
    trained: &Tensor,
) -> Result<(), String> {
    let quantized_name = format!("{name}{Q4_0_SUFFIX}");
    // The shape the base tensor must have for `trained` to take its place.
    let (replaced, expected) = if let Some(replaced) = base.remove(name) {
        (replaced, trained.dims().to_vec())
    } else if let Some(replaced) = base.remove(&quantized_name) {
        let shape = match trained.dims() {
            [rows, columns] => q4_0_row_bytes(*columns)
                .map(|bytes| vec![*rows, bytes])
                .map_err(|error| format!("trained tensor `{name}`: {error}"))?,
            other => other.to_vec(),
        };
        (replaced, shape)
    } else {
        return Err(format!("trained tensor `{name}` is not"));
    };
    if replaced.dims() != expected {
        return Err(format!(
            "trained tensor `{name}` has shape {:?}, which does not match {:?}",
            trained.dims(),
            replaced.dims()
        ));
    }
    Ok(())
}
