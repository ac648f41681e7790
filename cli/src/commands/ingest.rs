//! `tweetclf ingest FILE|- --out DIR`: one raw file through the ingest use case, exactly as
//! `tweetclf run FILE --out DIR --ingest-only` (the bucket layout under DIR: clean parts,
//! rejections, filtered records, the manifest). `-` reads standard input, ingested as a file
//! named `stdin`.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use pipeline::IngestConfig;

pub fn ingest(input: &Path, out: &Path, config: &IngestConfig) -> anyhow::Result<()> {
    let spool = tempfile::tempdir().context("creating a temporary folder")?;
    let file = if input == Path::new("-") {
        let path = spool.path().join("stdin");
        let mut copy = File::create(&path).context("spooling standard input")?;
        std::io::copy(&mut std::io::stdin().lock(), &mut copy).context("reading standard input")?;
        path
    } else {
        File::open(input).with_context(|| format!("opening {}", input.display()))?;
        input.to_path_buf()
    };
    super::run::ingest_only(&file, out, config)
}
