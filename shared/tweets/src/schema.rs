//! The normalized, user-facing tweet record: one JSON line per kept tweet in `clean/`.
//! The README's "Schema" section documents these fields for users; keep the two in step.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One tweet, whatever raw shape (API v1.1, v2, JSON Lines, …) it arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tweet {
    /// Tweet id as a string (64-bit ids do not survive JavaScript or Athena doubles).
    pub id: String,
    /// When the tweet was posted, RFC 3339 in UTC; `null` when the raw record had no date.
    pub created_at: Option<DateTime<Utc>>,
    pub author_id: Option<String>,
    /// The author's `@handle` without the `@`.
    pub author_handle: Option<String>,
    /// The tweet's language code (BCP 47 as Twitter gives it), or the detected one when the
    /// tweet had none or said `und`.
    pub lang: Option<String>,
    /// The full original text, HTML entities decoded. A retweet is `RT @handle: ` + the full
    /// text of the retweeted tweet, as Twitter's clients display it.
    pub text: String,
    /// The model-ready text (see `clean::clean_text`).
    pub clean_text: String,
    pub is_retweet: bool,
    pub is_quote: bool,
    pub is_reply: bool,
    /// Hashtags without the `#`.
    pub hashtags: Vec<String>,
    /// Mentioned handles without the `@`.
    pub mentions: Vec<String>,
    /// Expanded URLs when the raw record had them, else the URLs found in the text.
    pub urls: Vec<String>,
    pub source: SourceRef,
}

/// Where a record came from, precise enough to find its raw bytes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// The object key (or file path) the record was read from.
    pub key: String,
    /// 0-based position of the record in that object, counting every input record
    /// (kept, filtered and rejected alike).
    pub index: u64,
    /// Byte offset, in the decompressed stream, of the JSON value that held the record
    /// (for tweets inside an API response, the offset of the response).
    pub offset: u64,
    /// 1-based line of that offset.
    pub line: u64,
}

/// One text's classification, whichever backend produced it (the bundled model, a
/// user-trained one, or Amazon ML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The decided label. Single-label: always set. Multi-label: the most probable of the
    /// predicted labels, `None` when no label reaches its threshold.
    pub label: Option<String>,
    /// Probability of `label` (of the most probable label when `label` is `None`).
    pub score: f32,
    /// Every decided label (single-label: just `label`).
    pub labels: Vec<String>,
    /// Probability of every label.
    pub scores: BTreeMap<String, f32>,
}
