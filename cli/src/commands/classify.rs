//! `tweetclf classify`: JSON Lines in (`{"text": …}` objects or ingest's clean records), one
//! output line per input line, in order: a prediction, an `error` line, or for a blank line a
//! `skipped` marker — so output line N always answers input line N.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use pipeline::Classify;
use pipeline::backend::Backend;
use pipeline::batch::classify_batch;
use serde_json::{Value, json};

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
            blank += usize::from(matches!(parsed.outcome, Outcome::Blank));
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

/// One input line (numbered from 1, blank lines included): its id and what to do with it.
struct Parsed {
    line: usize,
    id: Option<Value>,
    outcome: Outcome,
}

enum Outcome {
    Text(String),
    /// Nothing but whitespace: answered with a `skipped` marker, not counted as a failure.
    Blank,
    Failed(String),
}

fn parse_line(line: usize, raw: &[u8]) -> Parsed {
    let failed = |message: String| Parsed {
        line,
        id: None,
        outcome: Outcome::Failed(message),
    };
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Parsed {
            line,
            id: None,
            outcome: Outcome::Blank,
        };
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return failed("the line is not valid UTF-8".to_owned());
    };
    let value: Value = match serde_json::from_str(text.trim_end_matches(['\n', '\r'])) {
        Ok(value) => value,
        Err(error) => return failed(json_error(&error)),
    };
    let id = value.get("id").cloned();
    let outcome = match value.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => Outcome::Text(text.clone()),
        Some(Value::String(_)) => Outcome::Failed("`text` is empty".to_owned()),
        Some(_) => Outcome::Failed("`text` is not a string".to_owned()),
        None => Outcome::Failed("no `text` field".to_owned()),
    };
    Parsed { line, id, outcome }
}

/// What is wrong with a line's JSON, located by column (the line is already named).
fn json_error(error: &serde_json::Error) -> String {
    let column = error.column();
    if error.is_eof() {
        return format!("truncated JSON: the line ends inside a value (column {column})");
    }
    let message = error.to_string();
    let message = message
        .strip_suffix(&format!(" at line {} column {column}", error.line()))
        .unwrap_or(&message);
    format!("invalid JSON at column {column}: {message}")
}

/// Classifies the good lines of a chunk and writes one output line per input line; returns
/// how many failed. A text the model cannot read fails alone, as in the classify function.
async fn write_chunk(
    classifier: &impl Classify,
    chunk: &[Parsed],
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let texts: Vec<String> = chunk
        .iter()
        .filter_map(|parsed| match &parsed.outcome {
            Outcome::Text(text) => Some(text.clone()),
            Outcome::Blank | Outcome::Failed(_) => None,
        })
        .collect();
    let predictions = match texts.is_empty() {
        true => Vec::new(),
        false => classify_batch(classifier, texts).await?.results,
    };
    let mut predictions = predictions.into_iter();
    let mut failed = 0;
    for parsed in chunk {
        let mut line = match &parsed.outcome {
            Outcome::Text(_) => match predictions.next().context("one prediction per text")? {
                Ok(prediction) => serde_json::to_value(&prediction)?,
                Err(error) => {
                    failed += 1;
                    json!({"line": parsed.line, "error": error})
                }
            },
            Outcome::Blank => json!({"line": parsed.line, "skipped": "blank line"}),
            Outcome::Failed(error) => {
                failed += 1;
                json!({"line": parsed.line, "error": error})
            }
        };
        if let Some(id) = &parsed.id {
            line["id"] = id.clone();
        }
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(failed)
}
