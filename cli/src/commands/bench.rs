//! `tweetclf bench`: cold start (a fresh process: start → model loaded → first prediction),
//! throughput and per-call latency at several batch sizes over real tweet texts, and peak
//! memory. `bench/run-all.sh` runs it beside the Python references and writes BENCHMARKS.md.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use classifier::bench::{
    BenchReport, ColdStart, median, millis, peak_rss_mib, time_batches, time_whole_input,
};
use classifier::{Classifier, InferenceOptions, Precision};
use serde::{Deserialize, Serialize};

use pipeline::candle::bundled_model_dir;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A model directory (default: `MODEL_DIR`, else the bundled models/sentiment).
    #[arg(long, env = "MODEL_DIR")]
    pub model: Option<PathBuf>,
    /// JSON Lines with a `text` field (default: the held-out airline tweets from
    /// data/prepare-sentiment.py when present, else the parity fixture texts).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Worker threads, as for the reference implementations (0: Candle's global pool).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Texts timed at each batch size (the first ones of the input).
    #[arg(long, default_value_t = 512)]
    pub texts: usize,
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    pub batch_sizes: Vec<usize>,
    /// Fresh processes timed for the cold start.
    #[arg(long, default_value_t = 3)]
    pub cold_starts: usize,
    /// Every matrix product in f32, as on CPUs without AVX2 (Graviton): by default a 4-bit
    /// layer multiplies 8-bit activations where the CPU allows.
    #[arg(long)]
    pub f32: bool,
    /// Print the results as JSON (for bench/report.py) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Internal: load the model, predict once, print the timings and exit.
    #[arg(long, hide = true)]
    pub cold_start_probe: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProbeTimings {
    load_ms: f64,
    first_prediction_ms: f64,
}

const PROBE_TEXT: &str = "@united two hours on hold and the call dropped, again. Not impressed 😡";

pub fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let model_dir = args.model.clone().unwrap_or_else(bundled_model_dir);
    let options = InferenceOptions {
        threads: (args.threads > 0).then_some(args.threads),
        precision: if args.f32 {
            Precision::F32
        } else {
            Precision::Fast
        },
        ..InferenceOptions::default()
    };
    if args.cold_start_probe {
        return probe(&model_dir, options);
    }
    let cold_start = cold_start(args, &model_dir)?;
    let classifier = Classifier::load(&model_dir, options)
        .with_context(|| format!("loading the model from {}", model_dir.display()))?;
    let (texts, source) = bench_texts(args)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut batches = Vec::new();
    for &batch_size in &args.batch_sizes {
        if batch_size == 0 {
            bail!("batch sizes must be positive");
        }
        batches.push(time_batches(&classifier, &refs, batch_size)?);
    }
    let whole_input_tweets_per_s = time_whole_input(&classifier, &refs)?;
    let report = BenchReport {
        engine: format!(
            "candle (tweetclf {}, {:?} products)",
            env!("CARGO_PKG_VERSION"),
            options.precision
        ),
        threads: args.threads,
        texts: refs.len(),
        mean_chars: refs.iter().map(|text| text.chars().count()).sum::<usize>() as f64
            / refs.len() as f64,
        cold_start,
        batches,
        whole_input_tweets_per_s,
        peak_rss_mib: peak_rss_mib().context("no peak memory figure (VmHWM) on this system")?,
    };
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
        return Ok(());
    }
    print_table(&mut stdout, &report, &source)
}

fn print_table(stdout: &mut impl Write, report: &BenchReport, source: &str) -> anyhow::Result<()> {
    writeln!(
        stdout,
        "{} — {} threads, {} texts from {} (mean {:.0} chars)\n",
        report.engine, report.threads, report.texts, source, report.mean_chars
    )?;
    writeln!(
        stdout,
        "  cold start   {:>7.0} ms median of {} fresh processes (load {:.0} ms, first prediction {:.0} ms)",
        report.cold_start.median_ms,
        report.cold_start.runs_ms.len(),
        report.cold_start.load_ms,
        report.cold_start.first_prediction_ms
    )?;
    writeln!(stdout, "  peak RSS     {:>7.0} MiB", report.peak_rss_mib)?;
    writeln!(
        stdout,
        "  whole input  {:>7.1} tweets/s (one call, the engine's own batching)\n",
        report.whole_input_tweets_per_s
    )?;
    writeln!(stdout, "  batch   tweets/s   p50 ms   p95 ms")?;
    for batch in &report.batches {
        writeln!(
            stdout,
            "  {:>5}   {:>8.1}   {:>6.1}   {:>6.1}",
            batch.batch_size, batch.tweets_per_s, batch.p50_ms, batch.p95_ms
        )?;
    }
    Ok(())
}

fn probe(model_dir: &Path, options: InferenceOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let classifier = Classifier::load(model_dir, options)?;
    let loaded = started.elapsed();
    classifier.predict(&[PROBE_TEXT])?;
    let timings = ProbeTimings {
        load_ms: millis(loaded),
        first_prediction_ms: millis(started.elapsed() - loaded),
    };
    serde_json::to_writer(std::io::stdout().lock(), &timings)?;
    Ok(())
}

/// Spawns this binary as a probe `cold_starts` times; wall time includes process start.
fn cold_start(args: &BenchArgs, model_dir: &Path) -> anyhow::Result<ColdStart> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut runs = Vec::new();
    let mut last = None;
    for _ in 0..args.cold_starts.max(1) {
        let started = Instant::now();
        let mut probe = Command::new(&exe);
        probe.args([
            "bench",
            "--cold-start-probe",
            "--threads",
            &args.threads.to_string(),
        ]);
        if args.f32 {
            probe.arg("--f32");
        }
        let output = probe
            .arg("--model")
            .arg(model_dir)
            .output()
            .context("starting the cold-start probe")?;
        runs.push(millis(started.elapsed()));
        if !output.status.success() {
            bail!(
                "cold-start probe failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        last = Some(
            serde_json::from_slice::<ProbeTimings>(&output.stdout)
                .context("reading the probe's timings")?,
        );
    }
    let timings = last.context("at least one probe ran")?;
    Ok(ColdStart {
        median_ms: median(&mut runs.clone()),
        runs_ms: runs,
        load_ms: timings.load_ms,
        first_prediction_ms: timings.first_prediction_ms,
    })
}

fn bench_texts(args: &BenchArgs) -> anyhow::Result<(Vec<String>, String)> {
    let path = args.input.clone().unwrap_or_else(|| {
        let airline = PathBuf::from("data/sentiment/airline-test.jsonl");
        if airline.is_file() {
            airline
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/parity/texts.jsonl")
        }
    });
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut texts = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}: invalid JSON", path.display()))?;
        if let Some(text) = value["text"]
            .as_str()
            .filter(|text| !text.trim().is_empty())
        {
            texts.push(text.to_owned());
        }
    }
    if texts.is_empty() {
        bail!("{}: no texts", path.display());
    }
    // The first texts in file order (bench/run-all.sh writes a seeded sample), repeated when
    // the file is short rather than timing too few calls.
    let wanted = args.texts.max(1);
    let sample: Vec<String> = texts.iter().cycle().take(wanted).cloned().collect();
    Ok((sample, path.display().to_string()))
}
