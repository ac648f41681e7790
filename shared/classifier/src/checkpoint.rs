//! Fine-tuning checkpoints: each epoch's weights, optimizer moments and run state in a
//! directory, written so that a crash leaves the previous checkpoint whole, and read back
//! only for the same settings and data.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::finetune::{Checkpoints, FineTuning, TokenizedExamples};
use crate::optimizer::AdamW;
use crate::train::{EpochReport, TrainError, snapshot};

const STATE_FILE: &str = "checkpoint.json";
pub(crate) const STATE_FORMAT: u32 = 1;

/// Settings and data a checkpoint must have been made with to be resumed.
pub(crate) fn fingerprint(
    settings: &FineTuning,
    train: &TokenizedExamples,
    valid: &TokenizedExamples,
) -> serde_json::Value {
    let digest = |set: &TokenizedExamples| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        set.ids.hash(&mut hasher);
        for row in &set.targets {
            for value in row {
                value.to_bits().hash(&mut hasher);
            }
        }
        format!("{:016x}", hasher.finish())
    };
    serde_json::json!({
        "settings": settings,
        "train": {"examples": train.len(), "digest": digest(train)},
        "valid": {"examples": valid.len(), "digest": digest(valid)},
    })
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CheckpointState {
    pub(crate) format: u32,
    pub(crate) fingerprint: serde_json::Value,
    /// The last epoch completed.
    pub(crate) epoch: usize,
    pub(crate) steps: usize,
    pub(crate) rng: u64,
    /// Time spent over every run up to this checkpoint.
    pub(crate) elapsed_seconds: f64,
    pub(crate) history: Vec<EpochReport>,
    pub(crate) best: Option<EpochReport>,
    /// Weights and optimizer moments after `epoch`.
    pub(crate) weights_file: String,
    /// The best epoch's weights.
    pub(crate) best_file: String,
}

fn checkpoint_error(dir: &Path, message: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint(format!("{}: {message}", dir.display()))
}

/// The state to resume from, if the directory has one and resuming was asked for.
pub(crate) fn read_checkpoint(
    checkpoints: &Checkpoints,
    fingerprint: &serde_json::Value,
) -> Result<Option<CheckpointState>, TrainError> {
    let path = checkpoints.dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(checkpoint_error(&path, error)),
    };
    if !checkpoints.resume {
        return Err(checkpoint_error(
            &checkpoints.dir,
            "holds a checkpoint already: resume it, or choose another directory",
        ));
    }
    let state: CheckpointState =
        serde_json::from_slice(&bytes).map_err(|error| checkpoint_error(&path, error))?;
    if state.format != STATE_FORMAT {
        return Err(checkpoint_error(
            &path,
            format!("format {} is not {STATE_FORMAT}", state.format),
        ));
    }
    if &state.fingerprint != fingerprint {
        return Err(checkpoint_error(
            &path,
            "was made with other settings or data; resume with the same ones, or choose \
             another directory",
        ));
    }
    Ok(Some(state))
}

pub(crate) fn restore(
    dir: &Path,
    state: &CheckpointState,
    vars: &[(String, Var)],
    optimizer: &mut AdamW,
) -> Result<(), TrainError> {
    let saved = candle_core::safetensors::load(dir.join(&state.weights_file), &Device::Cpu)?;
    for (name, var) in vars {
        let tensor = saved
            .get(name)
            .ok_or_else(|| checkpoint_error(dir, format!("`{name}` is missing")))?;
        var.set(tensor)?;
    }
    optimizer.restore(&saved, state.steps)?;
    Ok(())
}

/// Writes the epoch's files, then the state that names them (through a rename, so a crash
/// leaves the previous checkpoint whole), then removes the files it no longer names.
pub(crate) fn write_checkpoint(
    dir: &Path,
    state: &CheckpointState,
    vars: &[(String, Var)],
    optimizer: &AdamW,
    best: Option<&HashMap<String, Tensor>>,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|error| checkpoint_error(dir, error))?;
    let mut weights = snapshot(vars)?;
    weights.extend(optimizer.state());
    candle_core::safetensors::save(&weights, dir.join(&state.weights_file))?;
    if let Some(best) = best {
        candle_core::safetensors::save(best, dir.join(&state.best_file))?;
    }
    let json = serde_json::to_vec_pretty(state).map_err(|error| checkpoint_error(dir, error))?;
    let temporary = dir.join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&temporary, json).map_err(|error| checkpoint_error(&temporary, error))?;
    std::fs::rename(&temporary, dir.join(STATE_FILE))
        .map_err(|error| checkpoint_error(dir, error))?;
    let entries = std::fs::read_dir(dir).map_err(|error| checkpoint_error(dir, error))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = (name.starts_with("epoch-") || name.starts_with("best-"))
            && name != state.weights_file
            && name != state.best_file;
        if stale {
            std::fs::remove_file(entry.path()).map_err(|error| checkpoint_error(dir, error))?;
        }
    }
    Ok(())
}
