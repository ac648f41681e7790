//! Typed settings, parsed once at start-up from environment variables so a bad setting
//! fails the cold start loudly instead of one invocation at a time.

use std::str::FromStr;

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestConfig {
    pub prefixes: Prefixes,
    pub options: IngestOptions,
}

/// Names of the settings, documented in the README's configuration table.
pub mod vars {
    pub const RAW_PREFIX: &str = "RAW_PREFIX";
    pub const CLEAN_PREFIX: &str = "CLEAN_PREFIX";
    pub const REJECTED_PREFIX: &str = "REJECTED_PREFIX";
    pub const MANIFEST_PREFIX: &str = "MANIFEST_PREFIX";
    pub const MAX_OBJECT_BYTES: &str = "MAX_OBJECT_BYTES";
    pub const MAX_DECOMPRESSED_BYTES: &str = "MAX_DECOMPRESSED_BYTES";
    pub const MAX_EXPANSION_RATIO: &str = "MAX_EXPANSION_RATIO";
    pub const MAX_RECORD_BYTES: &str = "MAX_RECORD_BYTES";
    pub const EMOJI: &str = "CLEAN_EMOJI";
    pub const FILTER_RETWEETS: &str = "FILTER_RETWEETS";
    pub const FILTER_LANGUAGES: &str = "FILTER_LANGUAGES";
    pub const FILTER_AUTO_GENERATED: &str = "FILTER_AUTO_GENERATED_PHRASES";
    pub const FILTER_MIN_CONTENT_CHARS: &str = "FILTER_MIN_CONTENT_CHARS";
    pub const FILTER_DUPLICATES: &str = "FILTER_DUPLICATES";
    pub const S3_ENDPOINT_URL: &str = "S3_ENDPOINT_URL";
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
        let prefixes = Prefixes {
            raw: settings.text(vars::RAW_PREFIX, defaults.prefixes.raw),
            clean: settings.text(vars::CLEAN_PREFIX, defaults.prefixes.clean),
            rejected: settings.text(vars::REJECTED_PREFIX, defaults.prefixes.rejected),
            manifests: settings.text(vars::MANIFEST_PREFIX, defaults.prefixes.manifests),
        };
        prefixes.validate()?;
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
        Ok(Self { prefixes, options })
    }
}

struct Settings<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Settings<'_> {
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
        ])
        .expect("valid");
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
}
