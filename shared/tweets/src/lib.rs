//! Tweets without ML or cloud: the normalized schema, streaming parsers for every raw shape
//! users drop in a bucket (API v1.1, v2, JSON Lines, arrays, Firehose-concatenated, gzip),
//! model-ready cleaning, filters, and the per-object ingest that ties them together with
//! conserved counts.

pub mod clean;
mod expressive;
pub mod filter;
pub mod formats;
pub mod frame;
mod held;
pub mod ingest;
pub mod input;
pub mod schema;
mod tar;

pub use clean::{CleanConfig, CleaningVersion, EmojiMode, clean_text};
pub use expressive::CleaningRule;
pub use filter::{FilterConfig, FilterReason, FilteredCounts};
pub use formats::TweetWarning;
pub use ingest::{
    FilteredRecord, IngestOptions, IngestStreamError, RawRecord, Rejection, Report, ingest_stream,
};
pub use input::{Compression, Limits, StreamError};
pub use schema::{Prediction, SourceRef, Tweet};
