//! Typed settings, parsed once at start-up from environment variables so a bad setting
//! fails the cold start loudly instead of one invocation at a time.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tweets::{CleanConfig, EmojiMode, FilterConfig, IngestOptions, Limits};

use crate::keys::{KeyError, Prefixes};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("bucket layout is invalid")]
    Layout(#[from] KeyError),
}

/// Everything ingest needs to know, from the lambda environment or the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    pub prefixes: Prefixes,
    pub options: IngestOptions,
    /// Most tweets in one clean part, so that classifying any part fits one classify
    /// invocation, however big the raw object; see [`IngestConfig::DEFAULT_PART_MAX_TWEETS`].
    pub part_max_tweets: NonZeroUsize,
}

impl IngestConfig {
    /// What classify finishes in about a quarter of its default 900 s timeout at the
    /// benchmarked 2-vCPU pace of the bundled model as arm64 runs it (BENCHMARKS.md: 82.2
    /// tweets/s over the whole input, every product in f32): about 245 s a part, leaving room
    /// for a slower CPU, longer texts and a cold start. (tests/tests/figures.rs keeps this,
    /// the README and the template on the benchmark's figure.)
    pub const DEFAULT_PART_MAX_TWEETS: NonZeroUsize = NonZeroUsize::new(20_000).unwrap();
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            prefixes: Prefixes::default(),
            options: IngestOptions::default(),
            part_max_tweets: Self::DEFAULT_PART_MAX_TWEETS,
        }
    }
}

/// Names of the settings, documented in the README's configuration table.
pub mod vars {
    pub const RAW_PREFIX: &str = "RAW_PREFIX";
    pub const CLEAN_PREFIX: &str = "CLEAN_PREFIX";
    pub const REJECTED_PREFIX: &str = "REJECTED_PREFIX";
    pub const FILTERED_PREFIX: &str = "FILTERED_PREFIX";
    pub const MANIFEST_PREFIX: &str = "MANIFEST_PREFIX";
    pub const MAX_OBJECT_BYTES: &str = "MAX_OBJECT_BYTES";
    pub const MAX_DECOMPRESSED_BYTES: &str = "MAX_DECOMPRESSED_BYTES";
    pub const MAX_EXPANSION_RATIO: &str = "MAX_EXPANSION_RATIO";
    pub const MAX_RECORD_BYTES: &str = "MAX_RECORD_BYTES";
    pub const CLEAN_PART_MAX_TWEETS: &str = "CLEAN_PART_MAX_TWEETS";
    pub const EMOJI: &str = "CLEAN_EMOJI";
    pub const FILTER_RETWEETS: &str = "FILTER_RETWEETS";
    pub const FILTER_LANGUAGES: &str = "FILTER_LANGUAGES";
    pub const FILTER_AUTO_GENERATED: &str = "FILTER_AUTO_GENERATED_PHRASES";
    pub const FILTER_MIN_CONTENT_CHARS: &str = "FILTER_MIN_CONTENT_CHARS";
    pub const FILTER_DUPLICATES: &str = "FILTER_DUPLICATES";
    pub const PREDICTIONS_PREFIX: &str = "PREDICTIONS_PREFIX";
    pub const PREDICTIONS_PARQUET_PREFIX: &str = "PREDICTIONS_PARQUET_PREFIX";
    pub const PREDICTIONS_REJECTED_PREFIX: &str = "PREDICTIONS_REJECTED_PREFIX";
    pub const S3_ENDPOINT_URL: &str = "S3_ENDPOINT_URL";
    pub const CLASSIFY_BATCH_SIZE: &str = "CLASSIFY_BATCH_SIZE";
    pub const DEADLINE_RESERVE_MS: &str = "DEADLINE_RESERVE_MS";
    pub const CLASSIFIER_BACKEND: &str = "CLASSIFIER_BACKEND";
    pub const MODEL_DIR: &str = "MODEL_DIR";
    pub const INFERENCE_THREADS: &str = "INFERENCE_THREADS";
    pub const AMAZON_ML_MODEL_ID: &str = "AMAZON_ML_MODEL_ID";
    pub const AMAZON_ML_ENDPOINT: &str = "AMAZON_ML_ENDPOINT";
    pub const AMAZON_ML_RECORD_FIELD: &str = "AMAZON_ML_RECORD_FIELD";
    pub const AMAZON_ML_BINARY_LABELS: &str = "AMAZON_ML_BINARY_LABELS";
    pub const AMAZON_ML_THRESHOLD: &str = "AMAZON_ML_THRESHOLD";
    pub const AMAZON_ML_CONCURRENCY: &str = "AMAZON_ML_CONCURRENCY";
    pub const PREDICT_MAX_TEXTS: &str = "PREDICT_MAX_TEXTS";
    pub const PREDICT_MAX_TEXT_CHARS: &str = "PREDICT_MAX_TEXT_CHARS";
}

/// Everything classify needs: the layout, batching, the deadline margin and the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyConfig {
    pub prefixes: Prefixes,
    /// Tweets handed to the classifier per call; bounds memory and sets how often the
    /// invocation deadline is checked.
    pub batch_size: usize,
    /// Time kept free before the invocation deadline to write the outputs: when the rest of
    /// the object cannot be classified before `deadline - reserve`, classify gives up with a
    /// retryable error instead of being killed half-way.
    pub deadline_reserve: Duration,
    pub backend: BackendConfig,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            prefixes: Prefixes::default(),
            batch_size: 256,
            deadline_reserve: Duration::from_secs(10),
            backend: BackendConfig::default(),
        }
    }
}

/// What classifies the texts.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendConfig {
    /// A Candle model directory: the default.
    Candle(CandleConfig),
    /// An existing Amazon Machine Learning model's real-time endpoint.
    AmazonMl(AmazonMlConfig),
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self::Candle(CandleConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CandleConfig {
    /// The model directory; `None` means the bundled model (next to the function's binary
    /// in Lambda, `models/sentiment` for the CLI).
    pub model_dir: Option<PathBuf>,
    /// Threads for the matrix kernels; `None` uses every core the function gets.
    pub threads: Option<usize>,
}

/// An Amazon ML real-time endpoint and how to read its answers.
#[derive(Debug, Clone, PartialEq)]
pub struct AmazonMlConfig {
    pub model_id: String,
    /// The real-time endpoint URL shown by `GetMLModel` (`EndpointInfo.EndpointUrl`).
    pub endpoint: String,
    /// The datasource field the model was trained on, which receives the tweet's text.
    pub record_field: String,
    /// Names for a binary model's `0` and `1` labels (`None` keeps `0` and `1`).
    pub binary_labels: Option<(String, String)>,
    /// Decision threshold for a binary model's score (`None` keeps the model's own cut-off,
    /// as given by `predictedLabel`).
    pub threshold: Option<f32>,
    /// Most `Predict` calls in flight at once (the endpoint allows 200 requests/s).
    pub concurrency: usize,
}

/// What predict accepts per request.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictConfig {
    pub backend: BackendConfig,
    /// Most texts in one request; more is a 400 with a clear message.
    pub max_texts: usize,
    /// Longest text accepted, in characters (the model reads its first 128 tokens anyway).
    pub max_text_chars: usize,
}

impl Default for PredictConfig {
    fn default() -> Self {
        Self {
            backend: BackendConfig::default(),
            max_texts: 64,
            max_text_chars: 10_000,
        }
    }
}

impl IngestConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests); unset
    /// settings keep their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings { lookup: &lookup };
        let defaults = Self::default();
        let prefixes = settings.prefixes()?;
        let limits = defaults.options.limits;
        let filters = defaults.options.filters;
        let options = IngestOptions {
            limits: Limits {
                max_object_bytes: settings
                    .parse(vars::MAX_OBJECT_BYTES, limits.max_object_bytes)?,
                max_decompressed_bytes: settings
                    .parse(vars::MAX_DECOMPRESSED_BYTES, limits.max_decompressed_bytes)?,
                max_expansion_ratio: settings
                    .parse(vars::MAX_EXPANSION_RATIO, limits.max_expansion_ratio)?,
                max_record_bytes: settings
                    .parse(vars::MAX_RECORD_BYTES, limits.max_record_bytes)?,
            },
            cleaning: CleanConfig {
                emoji: settings.parse::<EmojiMode>(vars::EMOJI, defaults.options.cleaning.emoji)?,
                ..defaults.options.cleaning
            },
            filters: FilterConfig {
                drop_retweets: settings.flag(vars::FILTER_RETWEETS, filters.drop_retweets)?,
                languages: settings.list(vars::FILTER_LANGUAGES, ',', filters.languages),
                auto_generated_phrases: settings.list(
                    vars::FILTER_AUTO_GENERATED,
                    '|',
                    filters.auto_generated_phrases,
                ),
                min_content_chars: settings
                    .parse(vars::FILTER_MIN_CONTENT_CHARS, filters.min_content_chars)?,
                drop_duplicates: settings.flag(vars::FILTER_DUPLICATES, filters.drop_duplicates)?,
            },
        };
        Ok(Self {
            prefixes,
            options,
            part_max_tweets: settings
                .parse(vars::CLEAN_PART_MAX_TWEETS, defaults.part_max_tweets)?,
        })
    }
}

impl ClassifyConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings { lookup: &lookup };
        let defaults = Self::default();
        let batch_size = settings.parse(vars::CLASSIFY_BATCH_SIZE, defaults.batch_size)?;
        if batch_size == 0 {
            return Err(settings.invalid(vars::CLASSIFY_BATCH_SIZE, "must be at least 1"));
        }
        let reserve_ms = settings.parse(
            vars::DEADLINE_RESERVE_MS,
            u64::try_from(defaults.deadline_reserve.as_millis()).unwrap_or(u64::MAX),
        )?;
        Ok(Self {
            prefixes: settings.prefixes()?,
            batch_size,
            deadline_reserve: Duration::from_millis(reserve_ms),
            backend: settings.backend()?,
        })
    }
}

impl PredictConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings { lookup: &lookup };
        let defaults = Self::default();
        let max_texts = settings.parse(vars::PREDICT_MAX_TEXTS, defaults.max_texts)?;
        let max_text_chars =
            settings.parse(vars::PREDICT_MAX_TEXT_CHARS, defaults.max_text_chars)?;
        if max_texts == 0 || max_text_chars == 0 {
            return Err(settings.invalid(
                if max_texts == 0 {
                    vars::PREDICT_MAX_TEXTS
                } else {
                    vars::PREDICT_MAX_TEXT_CHARS
                },
                "must be at least 1",
            ));
        }
        Ok(Self {
            backend: settings.backend()?,
            max_texts,
            max_text_chars,
        })
    }
}

struct Settings<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Settings<'_> {
    fn invalid(&self, name: &'static str, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            name,
            value: (self.lookup)(name).unwrap_or_default(),
            reason: reason.to_owned(),
        }
    }

    fn prefixes(&self) -> Result<Prefixes, ConfigError> {
        let defaults = Prefixes::default();
        let prefixes = Prefixes {
            raw: self.text(vars::RAW_PREFIX, defaults.raw),
            clean: self.text(vars::CLEAN_PREFIX, defaults.clean),
            rejected: self.text(vars::REJECTED_PREFIX, defaults.rejected),
            filtered: self.text(vars::FILTERED_PREFIX, defaults.filtered),
            manifests: self.text(vars::MANIFEST_PREFIX, defaults.manifests),
            predictions: self.text(vars::PREDICTIONS_PREFIX, defaults.predictions),
            predictions_parquet: self.text(
                vars::PREDICTIONS_PARQUET_PREFIX,
                defaults.predictions_parquet,
            ),
            predictions_rejected: self.text(
                vars::PREDICTIONS_REJECTED_PREFIX,
                defaults.predictions_rejected,
            ),
        };
        prefixes.validate()?;
        Ok(prefixes)
    }

    fn backend(&self) -> Result<BackendConfig, ConfigError> {
        let backend = (self.lookup)(vars::CLASSIFIER_BACKEND).unwrap_or_default();
        match backend.trim() {
            "" | "candle" => {
                let threads: usize = self.parse(vars::INFERENCE_THREADS, 0)?;
                Ok(BackendConfig::Candle(CandleConfig {
                    model_dir: (self.lookup)(vars::MODEL_DIR)
                        .filter(|dir| !dir.trim().is_empty())
                        .map(PathBuf::from),
                    threads: (threads > 0).then_some(threads),
                }))
            }
            "amazon-ml" => Ok(BackendConfig::AmazonMl(self.amazon_ml()?)),
            _ => Err(self.invalid(
                vars::CLASSIFIER_BACKEND,
                "expected `candle` (the default) or `amazon-ml`",
            )),
        }
    }

    fn amazon_ml(&self) -> Result<AmazonMlConfig, ConfigError> {
        let required = |name: &'static str| {
            (self.lookup)(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .ok_or_else(|| self.invalid(name, "required when CLASSIFIER_BACKEND=amazon-ml"))
        };
        let binary_labels = match (self.lookup)(vars::AMAZON_ML_BINARY_LABELS) {
            None => None,
            Some(value) => {
                let names: Vec<&str> = value.split(',').map(str::trim).collect();
                match names.as_slice() {
                    [zero, one] if !zero.is_empty() && !one.is_empty() && zero != one => {
                        Some(((*zero).to_owned(), (*one).to_owned()))
                    }
                    _ => {
                        return Err(self.invalid(
                            vars::AMAZON_ML_BINARY_LABELS,
                            "expected two different names, for 0 and 1: `negative,positive`",
                        ));
                    }
                }
            }
        };
        let threshold = match (self.lookup)(vars::AMAZON_ML_THRESHOLD) {
            None => None,
            Some(_) => {
                let threshold: f32 = self.parse(vars::AMAZON_ML_THRESHOLD, 0.5)?;
                if !(0.0..=1.0).contains(&threshold) {
                    return Err(self.invalid(vars::AMAZON_ML_THRESHOLD, "expected 0 to 1"));
                }
                Some(threshold)
            }
        };
        let concurrency = self.parse(vars::AMAZON_ML_CONCURRENCY, 8)?;
        if concurrency == 0 {
            return Err(self.invalid(vars::AMAZON_ML_CONCURRENCY, "must be at least 1"));
        }
        Ok(AmazonMlConfig {
            model_id: required(vars::AMAZON_ML_MODEL_ID)?,
            endpoint: required(vars::AMAZON_ML_ENDPOINT)?,
            record_field: self.text(vars::AMAZON_ML_RECORD_FIELD, "text".to_owned()),
            binary_labels,
            threshold,
            concurrency,
        })
    }

    fn text(&self, name: &'static str, default: String) -> String {
        (self.lookup)(name).unwrap_or(default)
    }

    fn parse<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match (self.lookup)(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|error: T::Err| ConfigError::Invalid {
                    name,
                    reason: error.to_string(),
                    value,
                }),
        }
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match (self.lookup)(name) {
            None => Ok(default),
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    name,
                    value,
                    reason: "expected true or false".to_owned(),
                }),
            },
        }
    }

    /// A `separator`-separated list; an empty value (or `*` for languages) is the empty list,
    /// which switches the filter off.
    fn list(&self, name: &'static str, separator: char, default: Vec<String>) -> Vec<String> {
        match (self.lookup)(name) {
            None => default,
            Some(value) if value.trim() == "*" => Vec::new(),
            Some(value) => value
                .split(separator)
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<IngestConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        IngestConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn unset_settings_keep_defaults() {
        assert_eq!(config(&[]).expect("defaults"), IngestConfig::default());
    }

    #[test]
    fn settings_are_parsed() {
        let parsed = config(&[
            ("RAW_PREFIX", "incoming/"),
            ("MAX_RECORD_BYTES", "1024"),
            ("CLEAN_EMOJI", "keep"),
            ("FILTER_RETWEETS", "false"),
            ("FILTER_LANGUAGES", "en, es"),
            ("FILTER_AUTO_GENERATED_PHRASES", "via bot|auto post"),
            ("FILTER_DUPLICATES", "off"),
            ("CLEAN_PART_MAX_TWEETS", "500"),
        ])
        .expect("valid");
        assert_eq!(parsed.part_max_tweets.get(), 500);
        assert_eq!(parsed.prefixes.raw, "incoming/");
        assert_eq!(parsed.options.limits.max_record_bytes, 1024);
        assert_eq!(parsed.options.cleaning.emoji, EmojiMode::Keep);
        assert!(!parsed.options.filters.drop_retweets);
        assert_eq!(parsed.options.filters.languages, vec!["en", "es"]);
        assert_eq!(
            parsed.options.filters.auto_generated_phrases,
            vec!["via bot", "auto post"]
        );
        assert!(!parsed.options.filters.drop_duplicates);
        let all_languages = config(&[("FILTER_LANGUAGES", "*")]).expect("valid");
        assert!(all_languages.options.filters.languages.is_empty());
    }

    #[test]
    fn parts_hold_at_least_one_tweet() {
        let error = config(&[("CLEAN_PART_MAX_TWEETS", "0")]).expect_err("zero");
        assert!(
            error.to_string().contains("CLEAN_PART_MAX_TWEETS=\"0\""),
            "{error}"
        );
        assert_eq!(
            config(&[]).expect("defaults").part_max_tweets,
            IngestConfig::DEFAULT_PART_MAX_TWEETS
        );
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let error = config(&[("MAX_RECORD_BYTES", "lots")]).expect_err("invalid");
        assert!(
            error.to_string().contains("MAX_RECORD_BYTES=\"lots\""),
            "{error}"
        );
        let error = config(&[("FILTER_RETWEETS", "maybe")]).expect_err("invalid");
        assert!(
            error.to_string().contains("expected true or false"),
            "{error}"
        );
        let error = config(&[("CLEAN_PREFIX", "raw/clean/")]).expect_err("overlap");
        assert!(matches!(
            error,
            ConfigError::Layout(KeyError::Overlap { .. })
        ));
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn classify_defaults_use_the_bundled_model() {
        let parsed = ClassifyConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(parsed, ClassifyConfig::default());
        assert_eq!(
            parsed.backend,
            BackendConfig::Candle(CandleConfig::default())
        );
    }

    #[test]
    fn classify_settings_are_parsed() {
        let settings = map(&[
            ("CLASSIFY_BATCH_SIZE", "32"),
            ("DEADLINE_RESERVE_MS", "2500"),
            ("MODEL_DIR", "/opt/model"),
            ("INFERENCE_THREADS", "2"),
            ("PREDICTIONS_PREFIX", "out/"),
        ]);
        let parsed =
            ClassifyConfig::from_lookup(|name| settings.get(name).cloned()).expect("valid");
        assert_eq!(parsed.batch_size, 32);
        assert_eq!(parsed.deadline_reserve, Duration::from_millis(2500));
        assert_eq!(
            parsed.backend,
            BackendConfig::Candle(CandleConfig {
                model_dir: Some("/opt/model".into()),
                threads: Some(2),
            })
        );
        assert_eq!(parsed.prefixes.predictions, "out/");
    }

    #[test]
    fn amazon_ml_needs_its_model_and_endpoint() {
        let settings = map(&[("CLASSIFIER_BACKEND", "amazon-ml")]);
        let error = ClassifyConfig::from_lookup(|name| settings.get(name).cloned())
            .expect_err("incomplete");
        assert!(error.to_string().contains("AMAZON_ML_MODEL_ID"), "{error}");

        let settings = map(&[
            ("CLASSIFIER_BACKEND", "amazon-ml"),
            ("AMAZON_ML_MODEL_ID", "ml-abc"),
            (
                "AMAZON_ML_ENDPOINT",
                "https://realtime.machinelearning.us-east-1.amazonaws.com",
            ),
            ("AMAZON_ML_BINARY_LABELS", "negative, positive"),
            ("AMAZON_ML_THRESHOLD", "0.7"),
        ]);
        let parsed =
            PredictConfig::from_lookup(|name| settings.get(name).cloned()).expect("complete");
        let BackendConfig::AmazonMl(amazon) = parsed.backend else {
            panic!("expected the Amazon ML backend, got {:?}", parsed.backend);
        };
        assert_eq!(amazon.model_id, "ml-abc");
        assert_eq!(amazon.record_field, "text");
        assert_eq!(
            amazon.binary_labels,
            Some(("negative".to_owned(), "positive".to_owned()))
        );
        assert_eq!(amazon.threshold, Some(0.7));
    }

    #[test]
    fn unknown_backends_and_bad_limits_are_refused() {
        let settings = map(&[("CLASSIFIER_BACKEND", "comprehend")]);
        let error =
            PredictConfig::from_lookup(|name| settings.get(name).cloned()).expect_err("unknown");
        assert!(error.to_string().contains("amazon-ml"), "{error}");
        let settings = map(&[("PREDICT_MAX_TEXTS", "0")]);
        let error =
            PredictConfig::from_lookup(|name| settings.get(name).cloned()).expect_err("zero");
        assert!(error.to_string().contains("PREDICT_MAX_TEXTS"), "{error}");
        let settings = map(&[("AMAZON_ML_BINARY_LABELS", "yes")]);
        let error = Settings {
            lookup: &|name: &str| settings.get(name).cloned(),
        }
        .amazon_ml()
        .expect_err("one name");
        assert!(error.to_string().contains("AMAZON_ML"), "{error}");
    }
}
