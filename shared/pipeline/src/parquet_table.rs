//! Predictions as Parquet for Athena: one table per Hive partition (`dt=YYYY-MM-DD`), in the
//! column order of the Glue table in `infra/` (`created_at` as a UTC timestamp, `labels` as
//! `array<string>`, `scores` as `map<string,float>`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    Float32Builder, Int64Builder, ListBuilder, MapBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::keys::UNDATED_PARTITION;
use crate::prediction_record::PredictionRecord;

/// The rows of one partition, column by column.
#[derive(Debug)]
struct Columns {
    id: StringBuilder,
    created_at: TimestampMillisecondBuilder,
    author_id: StringBuilder,
    author_handle: StringBuilder,
    lang: StringBuilder,
    text: StringBuilder,
    label: StringBuilder,
    score: Float32Builder,
    labels: ListBuilder<StringBuilder>,
    scores: MapBuilder<StringBuilder, Float32Builder>,
    model_name: StringBuilder,
    model_version: StringBuilder,
    source_key: StringBuilder,
    source_index: Int64Builder,
}

impl Columns {
    fn new() -> Self {
        Self {
            id: StringBuilder::new(),
            created_at: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            author_id: StringBuilder::new(),
            author_handle: StringBuilder::new(),
            lang: StringBuilder::new(),
            text: StringBuilder::new(),
            label: StringBuilder::new(),
            score: Float32Builder::new(),
            labels: ListBuilder::new(StringBuilder::new()),
            scores: MapBuilder::new(None, StringBuilder::new(), Float32Builder::new()),
            model_name: StringBuilder::new(),
            model_version: StringBuilder::new(),
            source_key: StringBuilder::new(),
            source_index: Int64Builder::new(),
        }
    }

    fn push(&mut self, record: &PredictionRecord) -> Result<(), ArrowError> {
        self.id.append_value(&record.id);
        self.created_at
            .append_option(record.created_at.map(|at| at.timestamp_millis()));
        self.author_id.append_option(record.author_id.as_deref());
        self.author_handle
            .append_option(record.author_handle.as_deref());
        self.lang.append_option(record.lang.as_deref());
        self.text.append_value(&record.text);
        self.label.append_option(record.label.as_deref());
        self.score.append_value(record.score);
        for label in &record.labels {
            self.labels.values().append_value(label);
        }
        self.labels.append(true);
        for (label, score) in &record.scores {
            self.scores.keys().append_value(label);
            self.scores.values().append_value(*score);
        }
        self.scores.append(true)?;
        self.model_name.append_value(&record.model_name);
        self.model_version.append_value(&record.model_version);
        self.source_key.append_value(&record.source_key);
        self.source_index
            .append_value(i64::try_from(record.source_index).unwrap_or(i64::MAX));
        Ok(())
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("id", Arc::new(self.id.finish())),
            ("created_at", Arc::new(self.created_at.finish())),
            ("author_id", Arc::new(self.author_id.finish())),
            ("author_handle", Arc::new(self.author_handle.finish())),
            ("lang", Arc::new(self.lang.finish())),
            ("text", Arc::new(self.text.finish())),
            ("label", Arc::new(self.label.finish())),
            ("score", Arc::new(self.score.finish())),
            ("labels", Arc::new(self.labels.finish())),
            ("scores", Arc::new(self.scores.finish())),
            ("model_name", Arc::new(self.model_name.finish())),
            ("model_version", Arc::new(self.model_version.finish())),
            ("source_key", Arc::new(self.source_key.finish())),
            ("source_index", Arc::new(self.source_index.finish())),
        ];
        RecordBatch::try_from_iter(columns)
    }
}

/// Predictions grouped by the day of the tweet, ready to write one Parquet object per day.
#[derive(Debug, Default)]
pub struct PartitionedPredictions {
    days: BTreeMap<String, Columns>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("building the Arrow columns failed")]
    Arrow(#[from] ArrowError),
    #[error("encoding Parquet failed")]
    Encode(#[from] parquet::errors::ParquetError),
}

/// The `dt=` partition of a tweet posted at `created_at`.
pub fn partition_day(created_at: Option<DateTime<Utc>>) -> String {
    created_at.map_or_else(
        || UNDATED_PARTITION.to_owned(),
        |at| at.format("%Y-%m-%d").to_string(),
    )
}

impl PartitionedPredictions {
    pub fn push(&mut self, record: &PredictionRecord) -> Result<(), ParquetError> {
        self.days
            .entry(partition_day(record.created_at))
            .or_insert_with(Columns::new)
            .push(record)?;
        Ok(())
    }

    /// One snappy-compressed Parquet file per day, in day order.
    pub fn into_files(self) -> Result<Vec<(String, Vec<u8>)>, ParquetError> {
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        self.days
            .into_iter()
            .map(|(day, columns)| {
                let batch = columns.finish()?;
                let mut writer =
                    ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties.clone()))?;
                writer.write(&batch)?;
                Ok((day, writer.into_inner()?))
            })
            .collect()
    }
}
