//! The bundled default model (models/sentiment): Candle's logits match Hugging Face
//! transformers' on the same weights, and the model says what people would.

use std::path::{Path, PathBuf};

use classifier::{Classifier, InferenceOptions, Precision};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Largest |Δlogit| allowed between Candle and the transformers reference.
const TOLERANCE: f32 = 1e-4;
/// The same with 8-bit activations in the 4-bit layers (`Precision::Fast`): twice the worst
/// measured over the fixture's 26 texts (sentiment 1.1.1: 0.150, on logits between −2.9 and
/// 3.5; 1.1.0: 0.075). The held-out figures in docs/model-report.md are measured this way.
const FAST_TOLERANCE: f32 = 0.3;
/// A reference whose two best logits are closer than this is a tie: the fast products may
/// break it either way (sentiment 1.1.1 scores "meh" neutral 0.144 vs positive 0.151). Labels
/// must agree on every other text, and at most one text may be a tie.
const NEAR_TIE: f32 = 0.02;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bundled(precision: Precision) -> Classifier {
    Classifier::load(
        &repo().join("models/sentiment"),
        InferenceOptions {
            precision,
            // Two batches side by side, however many cores run the test.
            threads: Some(2),
            ..InferenceOptions::default()
        },
    )
    .expect("bundled model loads")
}

#[derive(Deserialize)]
struct ParityText {
    text: String,
    clean_text: String,
}

#[derive(Deserialize)]
struct Expected {
    model_sha256: String,
    labels: Vec<String>,
    logits: Vec<Vec<f32>>,
}

/// The largest |Δlogit| between `precision`'s logits and transformers' over the parity
/// texts, each within `tolerance`, the predicted labels the same.
fn assert_logits_match_transformers(precision: Precision, tolerance: f32) -> f32 {
    let fixture = repo().join("tests/fixtures/parity");
    let expected: Expected = serde_json::from_slice(
        &std::fs::read(fixture.join("expected.json")).expect("expected.json"),
    )
    .expect("expected.json parses");
    let weights =
        std::fs::read(repo().join("models/sentiment/model.safetensors")).expect("weights");
    let sha = format!("{:x}", Sha256::digest(&weights));
    assert_eq!(
        sha, expected.model_sha256,
        "models/sentiment changed: regenerate the reference with bench/reference_logits.py (see its docstring)"
    );
    let texts: Vec<ParityText> = std::fs::read_to_string(fixture.join("texts.jsonl"))
        .expect("texts.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).expect("text line"))
        .collect();
    let classifier = bundled(precision);
    assert_eq!(classifier.labels().labels, expected.labels);
    let cleaning = classifier.labels().preprocessing.cleaning();
    for text in &texts {
        assert_eq!(
            tweets::clean_text(&text.text, &cleaning),
            text.clean_text,
            "cleaning drifted from the fixture"
        );
    }
    let raw: Vec<&str> = texts.iter().map(|text| text.text.as_str()).collect();
    let (logits, timing) = classifier.logits(&raw).expect("logits");
    assert!(
        timing.batches < raw.len(),
        "the check runs batched and padded"
    );
    assert_eq!(logits.len(), expected.logits.len());
    let mut worst = 0f32;
    let mut ties = 0;
    for (row, (got, want)) in logits.iter().zip(&expected.logits).enumerate() {
        for (a, b) in got.iter().zip(want) {
            let delta = (a - b).abs();
            assert!(
                delta <= tolerance,
                "text {row}: candle {got:?} vs transformers {want:?}"
            );
            worst = worst.max(delta);
        }
        if precision == Precision::Fast && margin(want) < NEAR_TIE {
            ties += 1;
            continue;
        }
        assert_eq!(argmax(got), argmax(want), "text {row}: another label");
    }
    assert!(
        ties <= 1,
        "{ties} reference ties: the fixture no longer tests labels"
    );
    eprintln!(
        "{precision:?}: max |Δlogit| = {worst:e} over {} texts",
        logits.len()
    );
    worst
}

/// The gap between the two best logits.
fn margin(values: &[f32]) -> f32 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    sorted[0] - sorted.get(1).copied().unwrap_or(f32::NEG_INFINITY)
}

fn argmax(values: &[f32]) -> usize {
    (0..values.len())
        .max_by(|a, b| values[*a].total_cmp(&values[*b]))
        .unwrap_or(0)
}

#[test]
fn logits_match_transformers_within_tolerance() {
    assert_logits_match_transformers(Precision::F32, TOLERANCE);
}

#[test]
fn fast_products_keep_the_labels_and_stay_close_to_transformers() {
    let worst = assert_logits_match_transformers(Precision::Fast, FAST_TOLERANCE);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        assert!(worst > TOLERANCE, "the 4-bit layers ran in f32");
    }
}

#[test]
fn bundled_model_reads_obvious_sentiment_right() {
    let classifier = bundled(Precision::default());
    let cases = [
        (
            "Thank you so much, the crew was wonderful and the flight was perfect! 😍",
            "positive",
        ),
        (
            "Worst customer service ever. Lost my bag and nobody cares. Never again 😡",
            "negative",
        ),
        (
            "I absolutely love this, best purchase I have made all year",
            "positive",
        ),
        (
            "This is terrible, I hate it, total waste of money",
            "negative",
        ),
    ];
    let texts: Vec<&str> = cases.iter().map(|(text, _)| *text).collect();
    let (predictions, _) = classifier.predict(&texts).expect("predict");
    for ((text, want), prediction) in cases.iter().zip(&predictions) {
        assert_eq!(
            prediction.label.as_deref(),
            Some(*want),
            "{text}: {prediction:?}"
        );
    }
}
