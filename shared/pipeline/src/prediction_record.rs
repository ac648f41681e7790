//! One classified tweet as classify stores it: a line of `predictions/` and, column for
//! column, a row of `predictions-parquet/`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tweets::{Prediction, Tweet};

use crate::ports::ModelInfo;

/// One classified tweet, as stored in `predictions/` (one JSON line) and, column for
/// column, in `predictions-parquet/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    pub id: String,
    pub created_at: Option<DateTime<Utc>>,
    pub author_id: Option<String>,
    pub author_handle: Option<String>,
    pub lang: Option<String>,
    /// The tweet's original text (the model applies its own recorded cleaning).
    pub text: String,
    pub label: Option<String>,
    pub score: f32,
    pub labels: Vec<String>,
    pub scores: BTreeMap<String, f32>,
    pub model_name: String,
    pub model_version: String,
    /// The raw object the tweet was read from, and its position there.
    pub source_key: String,
    pub source_index: u64,
}

impl PredictionRecord {
    pub(crate) fn new(tweet: Tweet, prediction: Prediction, model: &ModelInfo) -> Self {
        Self {
            id: tweet.id,
            created_at: tweet.created_at,
            author_id: tweet.author_id,
            author_handle: tweet.author_handle,
            lang: tweet.lang,
            text: tweet.text,
            label: prediction.label,
            score: prediction.score,
            labels: prediction.labels,
            scores: prediction.scores,
            model_name: model.name.clone(),
            model_version: model.version.clone(),
            source_key: tweet.source.key,
            source_index: tweet.source.index,
        }
    }
}
