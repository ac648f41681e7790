pub mod bench;
pub mod classify;
pub mod eval;
pub mod import_e5;
pub mod ingest;
pub mod report;
pub mod run;
pub mod runs;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::Context;
use classifier::{Classifier, InferenceOptions};

/// A command's input, given the same way everywhere: `tweetclf <command> FILE` or
/// `--input FILE`.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArg {
    /// The input (`-` for standard input where the command reads a stream).
    #[arg(value_name = "INPUT", conflicts_with = "input_flag")]
    input: Option<PathBuf>,
    /// The input, as a flag.
    #[arg(long = "input", value_name = "INPUT")]
    input_flag: Option<PathBuf>,
}

impl InputArg {
    pub fn of(path: &Path) -> Self {
        Self {
            input: Some(path.to_path_buf()),
            input_flag: None,
        }
    }

    /// The input given, or an error naming both ways to give it.
    pub fn required(&self, command: &str) -> anyhow::Result<&Path> {
        self.given().with_context(|| {
            format!("no input: give it as `tweetclf {command} INPUT` or `--input INPUT`")
        })
    }

    /// The input given, if any.
    pub fn given(&self) -> Option<&Path> {
        self.input.as_deref().or(self.input_flag.as_deref())
    }
}

/// The classifier the functions would use (`CLASSIFIER_BACKEND`, `MODEL_DIR`, the Amazon ML
/// settings), unless `--model` or `--threads` name a Candle model.
pub fn backend_config(
    model: Option<&Path>,
    threads: Option<usize>,
) -> anyhow::Result<pipeline::BackendConfig> {
    if model.is_some() || threads.is_some() {
        return Ok(pipeline::BackendConfig::Candle(pipeline::CandleConfig {
            model_dir: model.map(Path::to_path_buf),
            threads,
        }));
    }
    Ok(pipeline::PredictConfig::from_env()?.backend)
}

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
