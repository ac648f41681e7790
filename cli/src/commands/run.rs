//! `tweetclf run INPUT --out DIR`: every file of a folder through the pipeline, with the
//! bucket layout mirrored under DIR.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::local::LocalDir;
use pipeline::{IngestConfig, ingest_object};
use tweets::Report;

use crate::summary;

pub fn run(input: &Path, out: &Path, config: &IngestConfig) -> anyhow::Result<()> {
    let (root, files) = input_files(input)?;
    if files.is_empty() {
        bail!("no files to ingest under {}", input.display());
    }
    let source = LocalDir::mounted(&root, &config.prefixes.raw);
    let sink = LocalDir::new(out);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let progress = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template("{spinner} ingesting [{bar:30}] {pos}/{len} files {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut total = Report::default();
    let mut failures = Vec::new();
    for path in &files {
        let key = source
            .key_of(path)
            .with_context(|| format!("{} has a name that is not valid UTF-8", path.display()))?;
        progress.set_message(key.clone());
        match runtime.block_on(ingest_object(&source, &sink, &key, config)) {
            Ok(manifest) => total.absorb(&manifest.report),
            Err(error) => failures.push((key, anyhow::Error::from(error))),
        }
        progress.inc(1);
    }
    progress.finish_and_clear();

    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "tweetclf run: {} file(s) from {} into {} in {:.2} s\n",
        files.len(),
        input.display(),
        out.display(),
        started.elapsed().as_secs_f64()
    )?;
    summary::write_report(&mut stdout, &total)?;
    let layout = &config.prefixes;
    writeln!(
        stdout,
        "\n  clean tweets  {}   (one JSON line per kept tweet)\n  rejections    {}   (each with its error and raw record)\n  manifests     {}",
        out.join(&layout.clean).display(),
        out.join(&layout.rejected).display(),
        out.join(&layout.manifests).join("ingest").display(),
    )?;
    if !failures.is_empty() {
        for (key, error) in &failures {
            writeln!(stdout, "\n  FAILED {key}: {error:#}")?;
        }
        bail!(
            "{} of {} file(s) could not be ingested",
            failures.len(),
            files.len()
        );
    }
    Ok(())
}

/// The folder that stands for the raw prefix, and the files under it in a stable order
/// (hidden files skipped).
fn input_files(input: &Path) -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
    let metadata =
        std::fs::metadata(input).with_context(|| format!("reading {}", input.display()))?;
    if metadata.is_file() {
        let root = input.parent().unwrap_or(Path::new(".")).to_path_buf();
        return Ok((root, vec![input.to_path_buf()]));
    }
    let mut files = Vec::new();
    let mut folders = vec![input.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in
            std::fs::read_dir(&folder).with_context(|| format!("listing {}", folder.display()))?
        {
            let entry = entry.with_context(|| format!("listing {}", folder.display()))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                folders.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok((input.to_path_buf(), files))
}
