//! `tweetclf classify`: JSON Lines in (`{"text": …}` objects or ingest's clean records), one
//! output line per input line, in order: a prediction, an `error` line, or for a blank line a
//! `skipped` marker — so output line N always answers input line N.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use pipeline::backend::Backend;
use pipeline::text_lines::{Parsed, answer_lines, parse_line};

/// Lines classified per model call: big enough for full batches, small enough to stream.
const CHUNK_LINES: usize = 512;

#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    /// JSON Lines with a `text` field per line (`-` for standard input).
    #[command(flatten)]
    pub input: super::InputArg,
    /// A model directory (default: `MODEL_DIR`, else the bundled models/sentiment; or
    /// Amazon ML when `CLASSIFIER_BACKEND=amazon-ml`, as for the functions).
    #[arg(long, env = "MODEL_DIR")]
    pub model: Option<PathBuf>,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn classify(args: &ClassifyArgs) -> anyhow::Result<()> {
    let path = args.input.required("classify")?;
    let config = super::backend_config(args.model.as_deref(), args.threads)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let backend = runtime
        .block_on(Backend::load(&config))
        .context("loading the classifier")?;
    let input: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?)
    };
    let mut reader = BufReader::new(input);
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut lines, mut blank, mut failed) = (0usize, 0usize, 0usize);
    let mut chunk: Vec<Parsed> = Vec::with_capacity(CHUNK_LINES);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let read = reader
            .read_until(b'\n', &mut raw)
            .context("reading the input")?;
        if read > 0 {
            lines += 1;
            let parsed = parse_line(lines, &raw);
            blank += usize::from(parsed.is_blank());
            chunk.push(parsed);
        }
        if chunk.len() == CHUNK_LINES || (read == 0 && !chunk.is_empty()) {
            failed += runtime.block_on(write_chunk(&backend, &chunk, &mut stdout))?;
            chunk.clear();
        }
        if read == 0 {
            break;
        }
    }
    stdout.flush()?;
    if lines == blank {
        bail!("no input: expected JSON Lines with a `text` field");
    }
    if failed > 0 {
        bail!(
            "{failed} of {} line(s) could not be classified; each has an `error` line in the output",
            lines - blank
        );
    }
    Ok(())
}

/// One output line per input line of the chunk; returns how many are errors.
async fn write_chunk(
    backend: &Backend,
    chunk: &[Parsed],
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let (answers, failed) = answer_lines(backend, chunk).await?;
    for answer in answers {
        serde_json::to_writer(&mut *out, &answer)?;
        out.write_all(b"\n")?;
    }
    Ok(failed)
}
