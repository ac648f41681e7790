//! The bucket layout contract: which prefix triggers which function and where each output
//! goes. Output keys are derived from input keys only, so S3's at-least-once delivery
//! rewrites the same objects, and no output prefix may overlap a trigger prefix.

use serde::{Deserialize, Serialize};

/// Prefixes of the bucket layout. Each ends with `/` and none contains another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefixes {
    /// Raw files dropped by users; triggers ingest.
    pub raw: String,
    /// Normalized tweets written by ingest; triggers classify.
    pub clean: String,
    /// Records ingest could not read, with their errors.
    pub rejected: String,
    /// Records ingest's filters dropped, each with its id and reason (the audit trail).
    pub filtered: String,
    /// One JSON manifest per processed object and stage.
    pub manifests: String,
    /// One JSON line per classified tweet, written by classify.
    pub predictions: String,
    /// The same predictions as Parquet, Hive-partitioned by the tweet's date (`dt=…/`).
    pub predictions_parquet: String,
    /// Lines of `clean/` objects that classify could not read, with their errors.
    pub predictions_rejected: String,
}

impl Default for Prefixes {
    fn default() -> Self {
        Self {
            raw: "raw/".to_owned(),
            clean: "clean/".to_owned(),
            rejected: "rejected/".to_owned(),
            filtered: "filtered/".to_owned(),
            manifests: "manifests/".to_owned(),
            predictions: "predictions/".to_owned(),
            predictions_parquet: "predictions-parquet/".to_owned(),
            predictions_rejected: "predictions-rejected/".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("prefix `{prefix}` for {role} must be non-empty, relative and end with `/`")]
    BadPrefix { role: &'static str, prefix: String },
    #[error(
        "prefix `{inner}` ({inner_role}) lies inside `{outer}` ({outer_role}): a function \
         could trigger itself or another on its own output"
    )]
    Overlap {
        outer: String,
        outer_role: &'static str,
        inner: String,
        inner_role: &'static str,
    },
    #[error("key `{key}` is not under the trigger prefix `{prefix}`")]
    OutsideTrigger { key: String, prefix: String },
    #[error("key `{key}` names no object under `{prefix}`")]
    EmptyRelativeKey { key: String, prefix: String },
    #[error("refusing to write `{key}` under the trigger prefix `{prefix}`")]
    WouldRetrigger { key: String, prefix: String },
}

/// Where ingest writes the outputs for one raw object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestKeys {
    /// `clean/<rel>/part-`: the start of every clean part's key; see [`IngestKeys::clean_part`].
    pub clean_parts: String,
    pub rejected: String,
    pub filtered: String,
    pub manifest: String,
}

impl IngestKeys {
    /// Part `index` (from 0) of `count`: `clean/<rel>/part-00002-of-00005.jsonl`. The count is
    /// in the key so that the parts of an earlier ingest that split the object differently
    /// never share a key with the current ones.
    pub fn clean_part(&self, index: usize, count: usize) -> String {
        format!("{}{index:05}-of-{count:05}.jsonl", self.clean_parts)
    }

    /// Whether `key` is a clean part of this raw object, from any ingest of it. Strict, so a
    /// part of another raw object whose name merely starts the same (`<rel>/part-x/…`) is
    /// never taken for one.
    pub fn is_clean_part(&self, key: &str) -> bool {
        let Some(rest) = key
            .strip_prefix(self.clean_parts.as_str())
            .and_then(|rest| rest.strip_suffix(".jsonl"))
        else {
            return false;
        };
        let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        rest.split_once("-of-")
            .is_some_and(|(index, count)| digits(index) && digits(count))
    }
}

/// Where classify writes the outputs for one clean object. Parquet keys depend on the
/// tweets' dates as well; see [`ClassifyKeys::parquet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifyKeys {
    pub predictions: String,
    pub rejected: String,
    pub manifest: String,
    parquet_prefix: String,
    parquet_file: String,
}

/// The Hive partition of tweets with no date (Athena's projection on `dt` skips it; the
/// JSON Lines output still has them).
pub const UNDATED_PARTITION: &str = "undated";

impl ClassifyKeys {
    /// The Parquet object for the tweets of one day (`YYYY-MM-DD`, or
    /// [`UNDATED_PARTITION`]). The input's relative key is flattened into the file name so
    /// that each partition is one folder level, as Athena's partition projection expects.
    pub fn parquet(&self, day: &str) -> String {
        format!("{}dt={day}/{}", self.parquet_prefix, self.parquet_file)
    }
}

/// Characters escaped when a relative key becomes one file name: `/` (which would nest
/// folders inside a partition) and `%` (so the mapping stays one-to-one).
const FLATTEN: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'/').add(b'%');

impl Prefixes {
    fn roles(&self) -> [(&'static str, &str); 8] {
        [
            ("raw", &self.raw),
            ("clean", &self.clean),
            ("rejected", &self.rejected),
            ("filtered", &self.filtered),
            ("manifests", &self.manifests),
            ("predictions", &self.predictions),
            ("predictions_parquet", &self.predictions_parquet),
            ("predictions_rejected", &self.predictions_rejected),
        ]
    }

    /// Checks the contract: well-formed prefixes, none inside another.
    pub fn validate(&self) -> Result<(), KeyError> {
        let roles = self.roles();
        for (role, prefix) in roles {
            if prefix.is_empty() || !prefix.ends_with('/') || prefix.starts_with('/') {
                return Err(KeyError::BadPrefix {
                    role,
                    prefix: prefix.to_owned(),
                });
            }
        }
        for (outer_role, outer) in roles {
            for (inner_role, inner) in roles {
                if outer_role != inner_role && inner.starts_with(outer) {
                    return Err(KeyError::Overlap {
                        outer: outer.to_owned(),
                        outer_role,
                        inner: inner.to_owned(),
                        inner_role,
                    });
                }
            }
        }
        Ok(())
    }

    /// The outputs of ingesting `raw_key`: parts `clean/<rel>/part-…`, `rejected/<rel>.jsonl`,
    /// `filtered/<rel>.jsonl` and `manifests/ingest/<rel>.manifest.json`, where `<rel>` is the
    /// key below the raw prefix.
    pub fn ingest_keys(&self, raw_key: &str) -> Result<IngestKeys, KeyError> {
        let relative = relative_key(raw_key, &self.raw)?;
        let keys = IngestKeys {
            clean_parts: format!("{}{relative}/part-", self.clean),
            rejected: format!("{}{relative}.jsonl", self.rejected),
            filtered: format!("{}{relative}.jsonl", self.filtered),
            manifest: format!("{}ingest/{relative}.manifest.json", self.manifests),
        };
        for key in [
            &keys.clean_part(0, 1),
            &keys.rejected,
            &keys.filtered,
            &keys.manifest,
        ] {
            ensure_outside(key, &self.raw)?;
        }
        Ok(keys)
    }
}

impl Prefixes {
    /// The outputs of classifying `clean_key`, named after its relative key with ingest's
    /// `.jsonl` suffix dropped: `predictions/<stem>.jsonl`, `predictions-rejected/<stem>.jsonl`,
    /// `manifests/classify/<stem>.manifest.json` and `predictions-parquet/dt=<day>/<stem>.parquet`.
    pub fn classify_keys(&self, clean_key: &str) -> Result<ClassifyKeys, KeyError> {
        let relative = relative_key(clean_key, &self.clean)?;
        let stem = relative.strip_suffix(".jsonl").unwrap_or(relative);
        let stem = if stem.is_empty() || stem.ends_with('/') {
            relative
        } else {
            stem
        };
        let keys = ClassifyKeys {
            predictions: format!("{}{stem}.jsonl", self.predictions),
            rejected: format!("{}{stem}.jsonl", self.predictions_rejected),
            manifest: format!("{}classify/{stem}.manifest.json", self.manifests),
            parquet_prefix: self.predictions_parquet.clone(),
            parquet_file: format!(
                "{}.parquet",
                percent_encoding::utf8_percent_encode(stem, FLATTEN)
            ),
        };
        for key in [
            &keys.predictions,
            &keys.rejected,
            &keys.manifest,
            &keys.parquet(UNDATED_PARTITION),
        ] {
            ensure_outside(key, &self.clean)?;
            ensure_outside(key, &self.raw)?;
        }
        Ok(keys)
    }
}

/// The part of `key` below `prefix`.
pub fn relative_key<'k>(key: &'k str, prefix: &str) -> Result<&'k str, KeyError> {
    let relative = key
        .strip_prefix(prefix)
        .ok_or_else(|| KeyError::OutsideTrigger {
            key: key.to_owned(),
            prefix: prefix.to_owned(),
        })?;
    if relative.is_empty() || relative.ends_with('/') {
        return Err(KeyError::EmptyRelativeKey {
            key: key.to_owned(),
            prefix: prefix.to_owned(),
        });
    }
    Ok(relative)
}

/// Refuses an output key under a trigger prefix: the last guard against a function that
/// invokes itself forever.
pub fn ensure_outside(key: &str, trigger_prefix: &str) -> Result<(), KeyError> {
    if key.starts_with(trigger_prefix) {
        return Err(KeyError::WouldRetrigger {
            key: key.to_owned(),
            prefix: trigger_prefix.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_keys_are_derived_from_the_relative_key() {
        let keys = Prefixes::default()
            .ingest_keys("raw/2024/05/my tweets+more.json.gz")
            .expect("under raw/");
        assert_eq!(
            keys.clean_part(2, 13),
            "clean/2024/05/my tweets+more.json.gz/part-00002-of-00013.jsonl"
        );
        assert_eq!(
            keys.rejected,
            "rejected/2024/05/my tweets+more.json.gz.jsonl"
        );
        assert_eq!(
            keys.manifest,
            "manifests/ingest/2024/05/my tweets+more.json.gz.manifest.json"
        );
    }

    #[test]
    fn only_this_objects_parts_are_its_parts() {
        let prefixes = Prefixes::default();
        let keys = prefixes.ingest_keys("raw/a.json").expect("under raw/");
        assert!(keys.is_clean_part("clean/a.json/part-00000-of-00001.jsonl"));
        assert!(keys.is_clean_part("clean/a.json/part-00004-of-00005.jsonl"));
        let nested = prefixes
            .ingest_keys("raw/a.json/part-00000-of-00001.jsonl")
            .expect("under raw/");
        let not_parts = [
            nested.clean_part(0, 1),
            "clean/a.json/part-x/part-00000-of-00001.jsonl".to_owned(),
            "clean/a.json/part-00000-of-00001.jsonl.bak".to_owned(),
            "clean/a.json/part--of-00001.jsonl".to_owned(),
            "clean/a.json.jsonl".to_owned(),
        ];
        for key in &not_parts {
            assert!(!keys.is_clean_part(key), "{key}");
        }
        assert!(nested.is_clean_part(&nested.clean_part(0, 1)));
    }

    #[test]
    fn keys_outside_the_trigger_or_naming_a_folder_are_refused() {
        let prefixes = Prefixes::default();
        assert!(matches!(
            prefixes.ingest_keys("clean/a.json"),
            Err(KeyError::OutsideTrigger { .. })
        ));
        assert!(matches!(
            prefixes.ingest_keys("raw/"),
            Err(KeyError::EmptyRelativeKey { .. })
        ));
        assert!(matches!(
            prefixes.ingest_keys("raw/folder/"),
            Err(KeyError::EmptyRelativeKey { .. })
        ));
    }

    #[test]
    fn classify_keys_drop_the_ingest_suffix_and_flatten_the_parquet_name() {
        let keys = Prefixes::default()
            .classify_keys("clean/2024/05/my tweets+more%.json.gz.jsonl")
            .expect("under clean/");
        assert_eq!(
            keys.predictions,
            "predictions/2024/05/my tweets+more%.json.gz.jsonl"
        );
        assert_eq!(
            keys.rejected,
            "predictions-rejected/2024/05/my tweets+more%.json.gz.jsonl"
        );
        assert_eq!(
            keys.manifest,
            "manifests/classify/2024/05/my tweets+more%.json.gz.manifest.json"
        );
        assert_eq!(
            keys.parquet("2024-05-01"),
            "predictions-parquet/dt=2024-05-01/2024%2F05%2Fmy tweets+more%25.json.gz.parquet"
        );
        // As the README says: every non-ASCII byte and control character is escaped too.
        let keys = Prefixes::default()
            .classify_keys("clean/müll\tdé.jsonl")
            .expect("under clean/");
        assert_eq!(
            keys.parquet("undated"),
            "predictions-parquet/dt=undated/m%C3%BCll%09d%C3%A9.parquet"
        );
    }

    #[test]
    fn classify_keys_of_a_file_named_only_the_suffix_keep_it() {
        let keys = Prefixes::default()
            .classify_keys("clean/a/.jsonl")
            .expect("under clean/");
        assert_eq!(keys.predictions, "predictions/a/.jsonl.jsonl");
    }

    #[test]
    fn classify_refuses_keys_outside_clean() {
        assert!(matches!(
            Prefixes::default().classify_keys("raw/a.jsonl"),
            Err(KeyError::OutsideTrigger { .. })
        ));
    }

    #[test]
    fn predictions_inside_the_clean_prefix_are_refused() {
        let nested = Prefixes {
            predictions: "clean/predictions/".to_owned(),
            ..Prefixes::default()
        };
        assert!(matches!(nested.validate(), Err(KeyError::Overlap { .. })));
    }

    #[test]
    fn default_prefixes_are_valid() {
        assert_eq!(Prefixes::default().validate(), Ok(()));
    }

    #[test]
    fn overlapping_prefixes_are_refused() {
        let nested = Prefixes {
            clean: "raw/clean/".to_owned(),
            ..Prefixes::default()
        };
        let error = nested.validate().expect_err("overlap");
        assert!(
            error.to_string().contains("could trigger itself"),
            "{error}"
        );
        let same = Prefixes {
            rejected: "clean/".to_owned(),
            ..Prefixes::default()
        };
        assert!(matches!(same.validate(), Err(KeyError::Overlap { .. })));
    }

    #[test]
    fn malformed_prefixes_are_refused() {
        for bad in ["", "raw", "/raw/"] {
            let prefixes = Prefixes {
                raw: bad.to_owned(),
                ..Prefixes::default()
            };
            assert!(
                matches!(prefixes.validate(), Err(KeyError::BadPrefix { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn writes_under_a_trigger_prefix_are_refused() {
        assert!(ensure_outside("raw/x.jsonl", "raw/").is_err());
        assert!(ensure_outside("clean/x.jsonl", "raw/").is_ok());
    }
}
