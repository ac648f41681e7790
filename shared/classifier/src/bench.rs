//! What `tweetclf bench` measures in one process: throughput and per-call latency at several
//! batch sizes, the whole input in one call, and peak memory. The Python references in
//! `bench/` print the same [`BenchReport`] shape, so one report script reads them all.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Classifier, PredictError};

/// Passes over the whole input; the median is reported.
const WHOLE_INPUT_PASSES: usize = 3;

/// One engine's results.
#[derive(Debug, Serialize, Deserialize)]
pub struct BenchReport {
    pub engine: String,
    pub threads: usize,
    pub texts: usize,
    pub mean_chars: f64,
    pub cold_start: ColdStart,
    pub batches: Vec<BatchResult>,
    /// Every text in one call, batched as the engine does on its own (Candle: sorted by
    /// length, ≤ 64 texts and ≤ 4,096 tokens a batch; the references: sorted by length, ≤ 64
    /// texts a batch, padded to the longest): median of three passes.
    pub whole_input_tweets_per_s: f64,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ColdStart {
    /// Median wall time from spawning a process to its first prediction's exit.
    pub median_ms: f64,
    pub runs_ms: Vec<f64>,
    /// Inside the process: loading the model, then the first prediction.
    pub load_ms: f64,
    pub first_prediction_ms: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BatchResult {
    pub batch_size: usize,
    pub tweets_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// `texts` in calls of `batch_size` each (after one warm-up call): the rate and the
/// latency percentiles of a call.
pub fn time_batches(
    classifier: &Classifier,
    texts: &[&str],
    batch_size: usize,
) -> Result<BatchResult, PredictError> {
    let batch_size = batch_size.max(1);
    classifier.predict(&texts[..batch_size.min(texts.len())])?;
    let mut latencies = Vec::new();
    let started = Instant::now();
    for chunk in texts.chunks(batch_size) {
        let call = Instant::now();
        classifier.predict(chunk)?;
        latencies.push(call.elapsed());
    }
    let total = started.elapsed();
    latencies.sort();
    Ok(BatchResult {
        batch_size,
        tweets_per_s: texts.len() as f64 / total.as_secs_f64(),
        p50_ms: percentile_ms(&latencies, 0.50),
        p95_ms: percentile_ms(&latencies, 0.95),
    })
}

/// Texts a second with every text in one call (after one warm-up pass): the median pass.
pub fn time_whole_input(classifier: &Classifier, texts: &[&str]) -> Result<f64, PredictError> {
    classifier.predict(texts)?;
    let mut rates = (0..WHOLE_INPUT_PASSES)
        .map(|_| {
            let started = Instant::now();
            classifier.predict(texts)?;
            Ok(texts.len() as f64 / started.elapsed().as_secs_f64())
        })
        .collect::<Result<Vec<f64>, PredictError>>()?;
    Ok(median(&mut rates))
}

/// The middle value (the upper one of an even count); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The nearest-rank percentile of sorted latencies, in milliseconds.
fn percentile_ms(sorted: &[Duration], quantile: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted.get(index).map_or(0.0, |latency| millis(*latency))
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The process's peak resident set (Linux `VmHWM`), when the system reports it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&sorted, 0.50), 11.0);
        assert_eq!(percentile_ms(&sorted, 0.95), 19.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0]), 4.0);
        assert_eq!(median(&mut []), 0.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_memory_is_read_on_linux() {
        let mib = peak_rss_mib().expect("VmHWM on Linux");
        assert!(mib > 0.0, "{mib}");
    }
}
