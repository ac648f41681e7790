//! `tweetclf report RUN_OUTPUT --out report.html`: what a run's outputs (or a bucket
//! prefix) say, as one self-contained HTML page.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::backfill::{Location, Store};
use pipeline::{IngestConfig, Payload, WriteObject};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run's output folder (what `tweetclf run --out` wrote) or `s3://bucket/prefix` of a
    /// bucket in the same layout.
    #[arg(value_name = "RUN_OUTPUT", default_value = "out")]
    pub input: String,
    /// The page to write: a file, or `s3://bucket/key`.
    #[arg(long, short, default_value = "report.html")]
    pub out: String,
    /// Hashtags, accounts and authors seen in fewer tweets are left off the rankings.
    #[arg(long, default_value_t = insights::Options::default().min_tweets)]
    pub min_tweets: u64,
    /// Tweets shown in each "most …" list.
    #[arg(long, default_value_t = insights::Options::default().top_tweets)]
    pub top: usize,
}

pub fn report(args: &ReportArgs, config: &IngestConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(report_async(args, config))
}

async fn report_async(args: &ReportArgs, config: &IngestConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let store = Store::open(&Location::parse(&args.input)?).await;
    let options = insights::Options {
        min_tweets: args.min_tweets,
        top_tweets: args.top,
    };
    let progress = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} objects read")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut insights = insights::collect(&store, &config.prefixes, &options, |step| {
        progress.set_length(step.objects as u64);
        progress.set_position(step.objects_read as u64);
    })
    .await
    .with_context(|| format!("reading {}", args.input))?;
    progress.finish_and_clear();
    insights.source.clone_from(&args.input);
    let page = insights::render(&insights);
    write_page(&args.out, page.into_bytes()).await?;
    let total = insights.funnel.total();
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "tweetclf report: {} records in, {} kept, {} classified ({} predictions read) from {} \
         into {} in {:.2} s",
        total.records_in,
        total.kept,
        total.classified,
        insights.predictions,
        args.input,
        args.out,
        started.elapsed().as_secs_f64()
    )?;
    if insights.unreadable_total > 0 {
        writeln!(
            stdout,
            "  {} object(s) or line(s) could not be read: the first {} are listed at the end \
             of the page",
            insights.unreadable_total,
            insights.unreadable.len()
        )?;
    }
    Ok(())
}

async fn write_page(out: &str, page: Vec<u8>) -> anyhow::Result<()> {
    let Some(rest) = out.strip_prefix("s3://") else {
        return std::fs::write(out, page).with_context(|| format!("writing {out}"));
    };
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
        .with_context(|| format!("`{out}` names no object: expected s3://bucket/key"))?;
    let store = Store::open(&Location::S3 {
        bucket: bucket.to_owned(),
        prefix: String::new(),
    })
    .await;
    let mut payload = Payload::new();
    payload.write_all(&page).context("buffering the page")?;
    store
        .put(key, payload, "text/html; charset=utf-8")
        .await
        .with_context(|| format!("writing {out}"))
}
