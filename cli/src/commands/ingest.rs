//! `tweetclf ingest FILE --out DIR`: one file, flat outputs (one clean file, never split
//! into parts), no bucket layout.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use pipeline::ingest::{elapsed_ms, json_payload};
use pipeline::{IngestConfig, IngestManifest, IngestOutputs, IngestTiming};

use crate::summary;

pub fn ingest(input: &Path, out: &Path, config: &IngestConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (reader, stored_len, key): (Box<dyn Read>, Option<u64>, String) = if input == Path::new("-")
    {
        (Box::new(std::io::stdin().lock()), None, "-".to_owned())
    } else {
        let file = File::open(input).with_context(|| format!("opening {}", input.display()))?;
        let len = file.metadata().map(|metadata| metadata.len()).ok();
        (Box::new(file), len, input.display().to_string())
    };
    let clean_path = out.join("clean.jsonl");
    let rejected_path = out.join("rejected.jsonl");
    let filtered_path = out.join("filtered.jsonl");
    let manifest_path = out.join("manifest.json");
    let create = |path: &Path| {
        File::create(path)
            .map(BufWriter::new)
            .with_context(|| format!("creating {}", path.display()))
    };
    let mut clean = create(&clean_path)?;
    let mut rejected = create(&rejected_path)?;
    let mut filtered = create(&filtered_path)?;

    let started = Instant::now();
    let report = tweets::ingest_stream(
        &key,
        reader,
        stored_len,
        &config.options,
        &mut clean,
        &mut rejected,
        &mut filtered,
    )
    .with_context(|| format!("ingesting {key}"))?;
    clean.flush().context("writing clean.jsonl")?;
    rejected.flush().context("writing rejected.jsonl")?;
    filtered.flush().context("writing filtered.jsonl")?;
    let read_parse = elapsed_ms(started);

    let mut manifest = IngestManifest::new(
        &key,
        IngestOutputs {
            clean_parts: vec![clean_path.display().to_string()],
            rejected: Some(rejected_path.display().to_string()),
            filtered: Some(filtered_path.display().to_string()),
            manifest: manifest_path.display().to_string(),
        },
        report,
        &config.options,
    );
    manifest.timing_ms = IngestTiming {
        read_parse,
        write: 0,
    };
    let bytes = json_payload(&manifest)
        .into_bytes()
        .context("serializing the manifest")?;
    std::fs::write(&manifest_path, bytes)
        .with_context(|| format!("writing {}", manifest_path.display()))?;

    let mut stdout = std::io::stdout().lock();
    summary::write_report(&mut stdout, &manifest.report)?;
    writeln!(
        stdout,
        "\n  clean tweets  {}\n  rejections    {}\n  filtered      {}\n  manifest      {}",
        clean_path.display(),
        rejected_path.display(),
        filtered_path.display(),
        manifest_path.display()
    )?;
    Ok(())
}
