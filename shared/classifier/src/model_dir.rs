//! The model directory: the unit bundled into a Lambda zip, loaded by the CLI and written by
//! training. Four files, each checked on load with errors that name the file and field.
//!
//! - `config.json` — Hugging Face BERT config;
//! - `model.safetensors` — encoder weights (no `bert.` prefix) and the head under
//!   `classifier.*`, f16 or f32 on disk, computed in f32;
//! - `tokenizer.json` — Hugging Face tokenizer;
//! - `labels.json` — see [`crate::labels::LabelsFile`].
//!
//! A matrix may be stored 4-bit instead of float (see [`crate::quantized`]). A base model
//! directory (what training starts from) has no `labels.json`; it may have `encoder.json`.

use std::path::{Path, PathBuf};

use crate::labels::EncoderRecipe;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const LABELS_FILE: &str = "labels.json";
/// In a base model directory only: see [`crate::labels::EncoderRecipe`].
pub const ENCODER_RECIPE_FILE: &str = "encoder.json";

/// A start-up failure: the model cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model directory {dir}: {file} is missing")]
    Missing { dir: PathBuf, file: &'static str },
    #[error(
        "{dir} does not exist: a model directory holds config.json, tokenizer.json and model.safetensors"
    )]
    NoDirectory { dir: PathBuf },
    #[error(
        "{dir} is a file, not a model directory (config.json, tokenizer.json, model.safetensors)"
    )]
    NotADirectory { dir: PathBuf },
    #[error("{path}: cannot be read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: &'static str, message: String },
    #[error("building the inference thread pool: {0}")]
    Threads(String),
}

impl LoadError {
    pub(crate) fn missing(dir: &Path, file: &'static str) -> Self {
        Self::Missing {
            dir: dir.to_path_buf(),
            file,
        }
    }

    pub(crate) fn invalid(file: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            file,
            message: message.into(),
        }
    }

    /// Weight problems (a missing head tensor, a wrong shape) as Candle reports them.
    pub(crate) fn weights(error: &candle_core::Error) -> Self {
        Self::invalid(WEIGHTS_FILE, error.to_string())
    }
}

/// The small files of a model directory, read into memory.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub config: Vec<u8>,
    pub tokenizer: Vec<u8>,
    pub labels: Vec<u8>,
}

impl ModelFiles {
    /// Reads `config.json`, `tokenizer.json` and `labels.json` from `dir`.
    pub fn read_metadata(dir: &Path) -> Result<Self, LoadError> {
        let encoder = Self::read_encoder_metadata(dir)?;
        Ok(Self {
            labels: read_file(dir, LABELS_FILE)?,
            ..encoder
        })
    }

    /// Reads `config.json` and `tokenizer.json` (a base model has no `labels.json`); `labels`
    /// is left empty.
    pub fn read_encoder_metadata(dir: &Path) -> Result<Self, LoadError> {
        if !dir.exists() {
            return Err(LoadError::NoDirectory {
                dir: dir.to_path_buf(),
            });
        }
        if !dir.is_dir() {
            return Err(LoadError::NotADirectory {
                dir: dir.to_path_buf(),
            });
        }
        Ok(Self {
            config: read_file(dir, CONFIG_FILE)?,
            tokenizer: read_file(dir, TOKENIZER_FILE)?,
            labels: Vec::new(),
        })
    }
}

/// How the base encoder in `dir` must be run: its `encoder.json`, or the default recipe when
/// it has none.
pub fn read_encoder_recipe(dir: &Path) -> Result<EncoderRecipe, LoadError> {
    if !dir.join(ENCODER_RECIPE_FILE).is_file() {
        return Ok(EncoderRecipe::default());
    }
    let bytes = read_file(dir, ENCODER_RECIPE_FILE)?;
    serde_json::from_slice(&bytes)
        .map_err(|error| LoadError::invalid(ENCODER_RECIPE_FILE, error.to_string()))
}

fn read_file(dir: &Path, file: &'static str) -> Result<Vec<u8>, LoadError> {
    let path = dir.join(file);
    if !path.is_file() {
        return Err(LoadError::missing(dir, file));
    }
    std::fs::read(&path).map_err(|source| LoadError::Read { path, source })
}

/// Weights are written through a temporary file (mode 0600); a model directory is packaged
/// into Lambda zips, where the code runs as a user that owns none of the files.
#[cfg(unix)]
pub(crate) fn make_world_readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
pub(crate) fn make_world_readable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
