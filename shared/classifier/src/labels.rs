//! `labels.json`: everything about a model directory that is not BERT weights — the labels,
//! how scores become decisions, how text is prepared, and where the model came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tweets::{CleanConfig, CleaningRule, CleaningVersion, EmojiMode};

/// The `labels.json` format version this build reads and writes.
pub const LABELS_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelsFile {
    pub format_version: u32,
    /// A short name for the model, carried into every prediction.
    pub name: String,
    /// Increases whenever the weights change.
    pub version: String,
    /// Label names, in the order of the head's outputs.
    pub labels: Vec<String>,
    pub problem_type: ProblemType,
    /// Per-label decision thresholds on the label's probability (see [`ProblemType`]); a label
    /// missing here uses the problem type's default.
    #[serde(default)]
    pub thresholds: BTreeMap<String, f32>,
    pub pooling: Pooling,
    pub head: HeadSpec,
    pub preprocessing: Preprocessing,
    /// Where the weights came from: base model, data, command, time.
    #[serde(default)]
    pub provenance: serde_json::Value,
    /// Held-out metrics recorded by training or evaluation.
    #[serde(default)]
    pub metrics: serde_json::Value,
}

/// How head outputs become probabilities and decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemType {
    /// Softmax over the labels; the prediction is the most probable label among those whose
    /// probability reaches their threshold (default 0), else the most probable label.
    SingleLabel,
    /// An independent sigmoid per label; every label at or above its threshold (default 0.5)
    /// is predicted.
    MultiLabel,
}

impl std::fmt::Display for ProblemType {
    /// As people say it (and as `labels.json` spells it, with underscores).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SingleLabel => "single-label",
            Self::MultiLabel => "multi-label",
        })
    }
}

impl ProblemType {
    /// The validation metric training selects epochs by.
    pub fn validation_metric(self) -> &'static str {
        match self {
            Self::SingleLabel => "macro_f1",
            Self::MultiLabel => "micro_f1",
        }
    }

    pub fn default_threshold(self) -> f32 {
        match self {
            Self::SingleLabel => 0.0,
            Self::MultiLabel => 0.5,
        }
    }
}

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pooling {
    pub kind: PoolingKind,
    /// L2-normalize the pooled vector (as sentence-transformers' all-MiniLM-L6-v2 does).
    pub normalize: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolingKind {
    /// Mean of the token vectors under the attention mask.
    Mean,
    /// The `[CLS]` token's vector.
    Cls,
}

/// The classification head stored under `classifier.*` in `model.safetensors`:
/// `classifier.hidden` (when `hidden_size` is set, followed by GELU) then `classifier.output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    pub hidden_size: Option<usize>,
}

/// The text preparation the model was trained with; inference repeats it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// The cleaning the model was trained with (`clean-v1`, `clean-v2`).
    pub cleaning_version: CleaningVersion,
    /// A `clean-v2` rule left out, in models trained to measure what that rule buys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaning_left_out: Option<CleaningRule>,
    /// How emoji reached the model: the bundled vocabulary maps raw emoji to `[UNK]`, so
    /// `describe` keeps their sentiment as words.
    pub emoji: EmojiMode,
    /// Token sequences are truncated to this length (including `[CLS]` and `[SEP]`).
    pub max_tokens: usize,
    /// Put before every cleaned text, as the base encoder was trained to expect (E5:
    /// `query: `). Absent for encoders that need none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text_prefix: String,
}

impl Preprocessing {
    /// Checks what serde cannot (training calls it before any work, loading through
    /// [`LabelsFile::validate`]).
    pub fn validate(&self) -> Result<(), LabelsError> {
        if self.cleaning_left_out.is_some() && self.cleaning_version == CleaningVersion::V1 {
            return Err(invalid(
                "preprocessing.cleaning_left_out",
                "clean-v1 has no rules to leave out",
            ));
        }
        Ok(())
    }

    /// How `tweets::clean_text` must run for this model.
    pub fn cleaning(&self) -> CleanConfig {
        CleanConfig {
            version: self.cleaning_version,
            emoji: self.emoji,
            left_out: self.cleaning_left_out,
        }
    }
}

/// `encoder.json` of a base model directory: how its encoder must be run, which every model
/// trained from it repeats in its `labels.json`. A base without the file (all-MiniLM-L6-v2)
/// takes [`EncoderRecipe::default`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderRecipe {
    /// See [`Preprocessing::text_prefix`].
    #[serde(default)]
    pub text_prefix: String,
    pub pooling: Pooling,
}

impl Default for EncoderRecipe {
    /// sentence-transformers' recipe: no prefix, normalized mean of the token vectors.
    fn default() -> Self {
        Self {
            text_prefix: String::new(),
            pooling: Pooling {
                kind: PoolingKind::Mean,
                normalize: true,
            },
        }
    }
}

/// A `labels.json` that cannot be used, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct LabelsError {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> LabelsError {
    LabelsError {
        field: field.into(),
        message: message.into(),
    }
}

impl LabelsFile {
    /// This file with `label`'s decision threshold set to `threshold`, if it stays valid.
    pub fn with_threshold(&self, label: &str, threshold: f32) -> Result<Self, LabelsError> {
        let mut updated = self.clone();
        updated.thresholds.insert(label.to_owned(), threshold);
        updated.validate()?;
        Ok(updated)
    }

    /// Writes this file as the `labels.json` of the model directory `dir`.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(crate::model_dir::LABELS_FILE), json)
    }

    /// Checks what serde cannot: consistent labels, thresholds and preprocessing.
    /// (`preprocessing.max_tokens` is checked against the encoder's config on load.)
    pub fn validate(&self) -> Result<(), LabelsError> {
        if self.format_version != LABELS_FORMAT_VERSION {
            return Err(invalid(
                "format_version",
                format!(
                    "is {}, this build reads version {LABELS_FORMAT_VERSION}",
                    self.format_version
                ),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        let minimum = match self.problem_type {
            ProblemType::SingleLabel => 2,
            ProblemType::MultiLabel => 1,
        };
        if self.labels.len() < minimum {
            return Err(invalid(
                "labels",
                format!(
                    "needs at least {minimum} labels for {:?}",
                    self.problem_type
                ),
            ));
        }
        for (index, label) in self.labels.iter().enumerate() {
            if label.trim().is_empty() {
                return Err(invalid(format!("labels[{index}]"), "must not be empty"));
            }
            if self.labels[..index].contains(label) {
                return Err(invalid(
                    format!("labels[{index}]"),
                    format!("`{label}` appears twice"),
                ));
            }
        }
        for (label, threshold) in &self.thresholds {
            if !self.labels.contains(label) {
                return Err(invalid(
                    format!("thresholds.{label}"),
                    "names a label that is not in `labels`",
                ));
            }
            if !(0.0..=1.0).contains(threshold) {
                return Err(invalid(
                    format!("thresholds.{label}"),
                    format!("{threshold} is not a probability between 0 and 1"),
                ));
            }
        }
        self.preprocessing.validate()?;
        if self.head.hidden_size == Some(0) {
            return Err(invalid("head.hidden_size", "must be positive when set"));
        }
        Ok(())
    }

    /// The threshold in force for label `index`.
    pub fn threshold(&self, index: usize) -> f32 {
        self.labels
            .get(index)
            .and_then(|label| self.thresholds.get(label))
            .copied()
            .unwrap_or_else(|| self.problem_type.default_threshold())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> LabelsFile {
        LabelsFile {
            format_version: LABELS_FORMAT_VERSION,
            name: "sentiment".to_owned(),
            version: "1".to_owned(),
            labels: vec![
                "negative".to_owned(),
                "neutral".to_owned(),
                "positive".to_owned(),
            ],
            problem_type: ProblemType::SingleLabel,
            thresholds: BTreeMap::new(),
            pooling: Pooling {
                kind: PoolingKind::Mean,
                normalize: true,
            },
            head: HeadSpec { hidden_size: None },
            preprocessing: Preprocessing {
                cleaning_version: CleaningVersion::LATEST,
                cleaning_left_out: None,
                emoji: EmojiMode::Describe,
                max_tokens: 128,
                text_prefix: String::new(),
            },
            provenance: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
        }
    }

    fn field_of(labels: &LabelsFile) -> String {
        labels.validate().expect_err("invalid").field
    }

    #[test]
    fn sample_is_valid_and_round_trips() {
        let labels = sample();
        assert_eq!(labels.validate(), Ok(()));
        let json = serde_json::to_string(&labels).expect("serializes");
        assert_eq!(
            serde_json::from_str::<LabelsFile>(&json).expect("parses"),
            labels
        );
    }

    #[test]
    fn each_inconsistency_names_its_field() {
        let mut labels = sample();
        labels.labels[2] = "negative".to_owned();
        assert_eq!(field_of(&labels), "labels[2]");

        let mut labels = sample();
        labels.thresholds.insert("angry".to_owned(), 0.5);
        assert_eq!(field_of(&labels), "thresholds.angry");

        let mut labels = sample();
        labels.thresholds.insert("positive".to_owned(), 1.5);
        assert_eq!(field_of(&labels), "thresholds.positive");

        let mut labels = sample();
        labels.preprocessing.cleaning_version = CleaningVersion::V1;
        labels.preprocessing.cleaning_left_out = Some(CleaningRule::Emoticons);
        assert_eq!(field_of(&labels), "preprocessing.cleaning_left_out");

        let mut labels = sample();
        labels.labels.truncate(1);
        assert_eq!(field_of(&labels), "labels");

        let mut labels = sample();
        labels.format_version = 9;
        assert_eq!(field_of(&labels), "format_version");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut json = serde_json::to_value(sample()).expect("serializes");
        json["problem"] = serde_json::json!("typo");
        let error = serde_json::from_value::<LabelsFile>(json).expect_err("unknown field");
        assert!(
            error.to_string().contains("unknown field `problem`"),
            "{error}"
        );
    }

    #[test]
    fn models_keep_the_cleaning_they_were_trained_with() {
        let mut json = serde_json::to_value(sample()).expect("serializes");
        assert_eq!(json["preprocessing"]["cleaning_version"], "clean-v2");
        assert!(json["preprocessing"].get("cleaning_left_out").is_none());
        json["preprocessing"]["cleaning_version"] = serde_json::json!("clean-v1");
        let labels = serde_json::from_value::<LabelsFile>(json.clone()).expect("parses");
        assert_eq!(labels.preprocessing.cleaning().version, CleaningVersion::V1);
        json["preprocessing"]["cleaning_version"] = serde_json::json!("clean-v0");
        let error = serde_json::from_value::<LabelsFile>(json).expect_err("unknown version");
        assert!(error.to_string().contains("clean-v0"), "{error}");
    }

    #[test]
    fn an_absent_text_prefix_reads_as_none_and_is_not_written() {
        let json = serde_json::to_value(sample()).expect("serializes");
        assert!(json["preprocessing"].get("text_prefix").is_none(), "{json}");
        let mut labels = sample();
        labels.preprocessing.text_prefix = "query: ".to_owned();
        let json = serde_json::to_value(&labels).expect("serializes");
        assert_eq!(json["preprocessing"]["text_prefix"], "query: ");
        assert_eq!(
            serde_json::from_value::<LabelsFile>(json).expect("parses"),
            labels
        );
    }

    #[test]
    fn thresholds_default_by_problem_type() {
        let mut labels = sample();
        labels.thresholds.insert("positive".to_owned(), 0.7);
        assert_eq!(labels.threshold(2), 0.7);
        assert_eq!(labels.threshold(0), 0.0);
        labels.problem_type = ProblemType::MultiLabel;
        assert_eq!(labels.threshold(0), 0.5);
    }
}
