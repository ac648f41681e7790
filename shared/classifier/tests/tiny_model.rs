//! The engine on a tiny random BERT written by the test itself: batching and padding must
//! not change any result, input order is restored, and broken model directories are refused
//! with the file and field named.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use classifier::{Classifier, InferenceOptions, LoadError, ModelFiles};
use serde_json::{Value, json};

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "flight", "crew", "late", "great", "the",
    "was", "very", "!", ",", ".", "http", "@", "user", "##s", "face", "with", "tears", "of", "joy",
];

fn config() -> Value {
    json!({
        "vocab_size": VOCAB.len(), "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "max_position_embeddings": 64, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "model_type": "bert"
    })
}

fn tokenizer() -> Value {
    let vocab: serde_json::Map<String, Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(id, token)| ((*token).to_owned(), json!(id)))
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

fn labels(hidden_size: Option<usize>) -> Value {
    json!({
        "format_version": 1, "name": "tiny", "version": "test",
        "labels": ["negative", "neutral", "positive"], "problem_type": "single_label",
        "thresholds": {}, "pooling": {"kind": "mean", "normalize": true},
        "head": {"hidden_size": hidden_size},
        "preprocessing": {"cleaning_version": tweets::CleaningVersion::LATEST, "emoji": "describe", "max_tokens": 12},
        "provenance": {"note": "random weights, for tests only"}, "metrics": null
    })
}

/// Random weights for the tiny BERT and a head with `labels` outputs, as safetensors bytes.
fn weights(labels: usize, hidden_size: Option<usize>) -> Vec<u8> {
    let config: candle_transformers::models::bert::Config =
        serde_json::from_value(config()).expect("tiny config");
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    candle_transformers::models::bert::BertModel::load(vb.clone(), &config)
        .expect("random encoder");
    let head = vb.pp("classifier");
    let mut input = 16;
    if let Some(size) = hidden_size {
        candle_nn::linear(input, size, head.pp("hidden")).expect("hidden layer");
        input = size;
    }
    candle_nn::linear(input, labels, head.pp("output")).expect("output layer");
    let tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .expect("varmap lock")
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    let file = tempfile::NamedTempFile::new().expect("temp file");
    candle_core::safetensors::save(&tensors, file.path()).expect("save");
    std::fs::read(file.path()).expect("read back")
}

fn write_dir(dir: &Path, labels_json: &Value, weights: &[u8]) {
    std::fs::write(dir.join("config.json"), config().to_string()).expect("write");
    std::fs::write(dir.join("tokenizer.json"), tokenizer().to_string()).expect("write");
    std::fs::write(dir.join("labels.json"), labels_json.to_string()).expect("write");
    std::fs::write(dir.join("model.safetensors"), weights).expect("write");
}

fn tiny(options: InferenceOptions) -> Classifier {
    let dir = tempfile::tempdir().expect("temp dir");
    write_dir(dir.path(), &labels(None), &weights(3, None));
    Classifier::load(dir.path(), options).expect("tiny model loads")
}

const TEXTS: &[&str] = &[
    "the crew was great !",
    "late",
    "the flight was very very very late , bad bad bad crew",
    "good",
    "@someone 😂 http://x.y/z",
    "",
    "great great great great great great great great great great great great great great",
];

#[test]
fn batching_does_not_change_any_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_dir(dir.path(), &labels(None), &weights(3, None));
    let one_at_a_time = InferenceOptions {
        max_batch: 1,
        ..InferenceOptions::default()
    };
    let small_batches = InferenceOptions {
        max_batch: 3,
        token_budget: 24,
        threads: Some(1),
        ..InferenceOptions::default()
    };
    let unbatched = Classifier::load(dir.path(), one_at_a_time).expect("loads");
    let batched = Classifier::load(dir.path(), small_batches).expect("loads");
    let (expected, timing_single) = unbatched.logits(TEXTS).expect("logits");
    let (actual, timing_batched) = batched.logits(TEXTS).expect("logits");
    assert_eq!(timing_single.batches, TEXTS.len());
    assert!(timing_batched.batches > 1 && timing_batched.batches < TEXTS.len());
    // Every text has at least [CLS] and [SEP]; batching adds no padding to that count.
    assert!(timing_single.tokens >= 2 * TEXTS.len(), "{timing_single:?}");
    assert_eq!(
        timing_batched.tokens, timing_single.tokens,
        "no padding is computed"
    );
    assert_eq!(actual.len(), TEXTS.len());
    for (row, (want, got)) in expected.iter().zip(&actual).enumerate() {
        for (a, b) in want.iter().zip(got) {
            assert!((a - b).abs() < 1e-5, "text {row}: {want:?} vs {got:?}");
        }
    }
}

#[test]
fn predictions_come_back_in_input_order_with_probabilities() {
    let classifier = tiny(InferenceOptions::default());
    let (forward, _) = classifier.predict(TEXTS).expect("predict");
    let reversed: Vec<&str> = TEXTS.iter().rev().copied().collect();
    let (backward, _) = classifier.predict(&reversed).expect("predict");
    for (a, b) in forward.iter().zip(backward.iter().rev()) {
        assert_eq!(a.label, b.label);
        for (label, score) in &a.scores {
            assert!((score - b.scores[label]).abs() < 1e-5);
        }
    }
    for prediction in &forward {
        let total: f32 = prediction.scores.values().sum();
        assert!((total - 1.0).abs() < 1e-4, "softmax sums to 1: {total}");
        let label = prediction
            .label
            .as_ref()
            .expect("single-label always decides");
        assert_eq!(prediction.score, prediction.scores[label]);
        assert!(
            prediction
                .scores
                .values()
                .all(|score| *score <= prediction.score)
        );
        assert_eq!(prediction.labels, vec![label.clone()]);
    }
}

#[test]
fn model_with_a_hidden_layer_head_loads_from_bytes() {
    let files = ModelFiles {
        config: config().to_string().into_bytes(),
        tokenizer: tokenizer().to_string().into_bytes(),
        labels: labels(Some(8)).to_string().into_bytes(),
    };
    let classifier =
        Classifier::from_bytes(files, weights(3, Some(8)), InferenceOptions::default())
            .expect("loads from bytes");
    let (predictions, timing) = classifier.predict(&["good crew"]).expect("predict");
    assert_eq!(predictions.len(), 1);
    assert_eq!(timing.batches, 1);
}

#[test]
fn multi_label_decides_each_label_by_its_threshold() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut multi = labels(None);
    multi["problem_type"] = json!("multi_label");
    multi["thresholds"] = json!({"negative": 0.0, "neutral": 1.0});
    write_dir(dir.path(), &multi, &weights(3, None));
    let classifier = Classifier::load(dir.path(), InferenceOptions::default()).expect("loads");
    let (predictions, _) = classifier.predict(&["late flight"]).expect("predict");
    let prediction = &predictions[0];
    assert!(
        prediction.labels.contains(&"negative".to_owned()),
        "threshold 0 always passes"
    );
    assert!(
        !prediction.labels.contains(&"neutral".to_owned()),
        "threshold 1 never passes"
    );
    let passes_default = prediction.scores["positive"] >= 0.5;
    assert_eq!(
        prediction.labels.contains(&"positive".to_owned()),
        passes_default
    );
}

fn load_error(mutate: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    write_dir(dir.path(), &labels(None), &weights(3, None));
    mutate(dir.path());
    Classifier::load(dir.path(), InferenceOptions::default())
        .expect_err("broken model directory")
        .to_string()
}

#[test]
fn broken_model_directories_are_refused_with_the_file_named() {
    let error = load_error(|dir| std::fs::remove_file(dir.join("labels.json")).expect("rm"));
    assert!(error.contains("labels.json is missing"), "{error}");

    let error = load_error(|dir| std::fs::remove_file(dir.join("model.safetensors")).expect("rm"));
    assert!(error.contains("model.safetensors is missing"), "{error}");

    let error = load_error(|dir| {
        std::fs::write(dir.join("config.json"), "{\"hidden_size\": 16}").expect("write")
    });
    assert!(error.starts_with("config.json:"), "{error}");

    let error = load_error(|dir| std::fs::write(dir.join("tokenizer.json"), "{}").expect("write"));
    assert!(error.starts_with("tokenizer.json:"), "{error}");

    let error = load_error(|dir| {
        let mut bad = labels(None);
        bad["thresholds"] = json!({"angry": 0.5});
        std::fs::write(dir.join("labels.json"), bad.to_string()).expect("write");
    });
    assert!(
        error.contains("labels.json: field `thresholds.angry`"),
        "{error}"
    );

    let error = load_error(|dir| {
        std::fs::write(dir.join("model.safetensors"), weights(2, None)).expect("write")
    });
    assert!(
        error.starts_with("model.safetensors:") && error.contains("classifier.output"),
        "{error}"
    );

    let error = load_error(|dir| {
        std::fs::write(dir.join("model.safetensors"), b"not safetensors").expect("write")
    });
    assert!(error.starts_with("model.safetensors:"), "{error}");

    let error = Classifier::load(Path::new("/no/such/model"), InferenceOptions::default())
        .expect_err("missing dir")
        .to_string();
    assert!(error.contains("/no/such/model"), "{error}");
    assert!(matches!(
        Classifier::load(Path::new("/no/such/model"), InferenceOptions::default()),
        Err(LoadError::NoDirectory { .. })
    ));
}

#[test]
fn exported_directories_carry_fine_tuned_encoder_tensors_and_refuse_foreign_ones() {
    let base = tempfile::tempdir().expect("temp dir");
    write_dir(base.path(), &labels(None), &weights(3, None));
    let original = Classifier::load(base.path(), InferenceOptions::default()).expect("base");
    let labels_file: classifier::LabelsFile = serde_json::from_value(labels(None)).expect("labels");
    let head: HashMap<String, Tensor> = [
        ("classifier.output.weight", (3, 16)),
        ("classifier.output.bias", (3, 1)),
    ]
    .into_iter()
    .map(|(name, shape)| {
        let tensor = Tensor::ones(shape, DType::F32, &Device::Cpu)
            .and_then(|ones| {
                if shape.1 == 1 {
                    ones.flatten_all()
                } else {
                    Ok(ones)
                }
            })
            .expect("tensor");
        (name.to_owned(), tensor)
    })
    .collect();
    let tuned_name = "encoder.layer.1.output.dense.bias";
    let mut trained = head.clone();
    trained.insert(
        tuned_name.to_owned(),
        Tensor::full(0.5f32, 16, &Device::Cpu).expect("bias"),
    );

    let out = tempfile::tempdir().expect("temp dir");
    classifier::export::write_model_dir(
        base.path(),
        out.path(),
        &trained,
        &labels_file,
        DType::F32,
    )
    .expect("export");
    let written =
        candle_core::safetensors::load(out.path().join("model.safetensors"), &Device::Cpu)
            .expect("written weights");
    assert_eq!(
        written[tuned_name].to_vec1::<f32>().expect("values"),
        vec![0.5; 16]
    );
    let exported = Classifier::load(out.path(), InferenceOptions::default()).expect("exported");
    let texts = ["the crew was great !", "late"];
    let before = original.logits(&texts).expect("logits").0;
    let after = exported.logits(&texts).expect("logits").0;
    assert_ne!(
        before, after,
        "the head and encoder tensors were not applied"
    );

    let mut foreign = head.clone();
    foreign.insert(
        "encoder.layer.9.output.dense.bias".to_owned(),
        Tensor::zeros(16, DType::F32, &Device::Cpu).expect("bias"),
    );
    let mut misshapen = head;
    misshapen.insert(
        tuned_name.to_owned(),
        Tensor::zeros(8, DType::F32, &Device::Cpu).expect("bias"),
    );
    for (trained, expected) in [(foreign, "is not in"), (misshapen, "has shape")] {
        let error = classifier::export::write_model_dir(
            base.path(),
            out.path(),
            &trained,
            &labels_file,
            DType::F32,
        )
        .expect_err("refused")
        .to_string();
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn a_megabyte_text_is_read_as_its_visible_start() {
    let classifier = tiny(InferenceOptions::default());
    // max_tokens is 12: the encoder is shown at most the first 12 × 64 raw characters.
    let huge = "good flight ".repeat(100_000);
    let (whole, _) = classifier.logits(&[huge.as_str()]).expect("logits");
    let (start, _) = classifier.logits(&[&huge[..12 * 64]]).expect("logits");
    assert_eq!(whole, start);
}
