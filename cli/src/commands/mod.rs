pub mod bench;
pub mod classify;
pub mod eval;
pub mod import_e5;
pub mod ingest;
pub mod run;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::Context;
use classifier::{Classifier, InferenceOptions};

/// Loads `model`, or the bundled default model without one; returns it with its directory.
pub fn load_model(
    model: Option<&Path>,
    threads: Option<usize>,
) -> anyhow::Result<(Classifier, PathBuf)> {
    let dir = model.map_or_else(pipeline::candle::bundled_model_dir, Path::to_path_buf);
    let options = InferenceOptions {
        threads,
        ..InferenceOptions::default()
    };
    let classifier = Classifier::load(&dir, options)
        .with_context(|| format!("loading the model from {}", dir.display()))?;
    Ok((classifier, dir))
}
