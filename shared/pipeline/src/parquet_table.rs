//! Predictions as Parquet for Athena: one table per Hive partition (`dt=YYYY-MM-DD`), in the
//! column order of the Glue table in `infra/` (`created_at` as a UTC timestamp, `labels` as
//! `array<string>`, `scores` as `map<string,float>`); and read back, for readers of a bucket
//! that keeps only the Parquet.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    Float32Builder, Int64Builder, ListBuilder, MapBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{
    Array, ArrayRef, Float32Array, Int64Array, ListArray, MapArray, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::ArrowError;
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
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
    #[error("column `{0}` is missing or not of the predictions table's type")]
    Column(&'static str),
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

/// The records of one Parquet file classify wrote, in order.
pub fn read_records(bytes: Vec<u8>) -> Result<Vec<PredictionRecord>, ParquetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?.build()?;
    let mut records = Vec::new();
    for batch in reader {
        let batch = batch?;
        records.extend(batch_records(&batch)?);
    }
    Ok(records)
}

fn column<'b, A: Array + 'static>(
    batch: &'b RecordBatch,
    name: &'static str,
) -> Result<&'b A, ParquetError> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<A>())
        .ok_or(ParquetError::Column(name))
}

fn batch_records(batch: &RecordBatch) -> Result<Vec<PredictionRecord>, ParquetError> {
    let text = |name| column::<StringArray>(batch, name);
    let (id, author_id, author_handle, lang) = (
        text("id")?,
        text("author_id")?,
        text("author_handle")?,
        text("lang")?,
    );
    let (body, label, model_name, model_version, source_key) = (
        text("text")?,
        text("label")?,
        text("model_name")?,
        text("model_version")?,
        text("source_key")?,
    );
    let created_at = column::<TimestampMillisecondArray>(batch, "created_at")?;
    let score = column::<Float32Array>(batch, "score")?;
    let labels = column::<ListArray>(batch, "labels")?;
    let scores = column::<MapArray>(batch, "scores")?;
    let source_index = column::<Int64Array>(batch, "source_index")?;
    let optional =
        |array: &StringArray, row| array.is_valid(row).then(|| array.value(row).to_owned());
    (0..batch.num_rows())
        .map(|row| {
            Ok(PredictionRecord {
                id: id.value(row).to_owned(),
                created_at: created_at
                    .is_valid(row)
                    .then(|| DateTime::from_timestamp_millis(created_at.value(row)))
                    .flatten(),
                author_id: optional(author_id, row),
                author_handle: optional(author_handle, row),
                lang: optional(lang, row),
                text: body.value(row).to_owned(),
                label: optional(label, row),
                score: score.value(row),
                labels: string_list(&labels.value(row))?,
                scores: score_map(scores, row)?,
                model_name: model_name.value(row).to_owned(),
                model_version: model_version.value(row).to_owned(),
                source_key: source_key.value(row).to_owned(),
                source_index: u64::try_from(source_index.value(row)).unwrap_or_default(),
            })
        })
        .collect()
}

fn string_list(values: &ArrayRef) -> Result<Vec<String>, ParquetError> {
    let strings = values
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or(ParquetError::Column("labels"))?;
    Ok(strings.iter().flatten().map(str::to_owned).collect())
}

fn score_map(scores: &MapArray, row: usize) -> Result<BTreeMap<String, f32>, ParquetError> {
    let entries = scores.value(row);
    let keys = entries
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or(ParquetError::Column("scores"))?;
    let values = entries
        .column(1)
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or(ParquetError::Column("scores"))?;
    Ok(keys
        .iter()
        .zip(values.iter())
        .filter_map(|(key, value)| Some((key?.to_owned(), value?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created_at: Option<&str>) -> PredictionRecord {
        PredictionRecord {
            id: id.to_owned(),
            created_at: created_at.map(|at| at.parse().expect("a date")),
            author_id: Some("7".to_owned()),
            author_handle: None,
            lang: Some("es".to_owned()),
            text: "¡Gracias @Iberia!".to_owned(),
            label: Some("positive".to_owned()),
            score: 0.875,
            labels: vec!["positive".to_owned()],
            scores: BTreeMap::from([
                ("negative".to_owned(), 0.125),
                ("positive".to_owned(), 0.875),
            ]),
            model_name: "sentiment".to_owned(),
            model_version: "1.0.0".to_owned(),
            source_key: "raw/a b.json".to_owned(),
            source_index: 3,
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let written = [
            record("1", Some("2024-05-01T10:00:00Z")),
            record("2", Some("2024-05-01T23:59:59.123Z")),
            record("3", None),
        ];
        let mut table = PartitionedPredictions::default();
        for record in &written {
            table.push(record).expect("pushed");
        }
        let files = table.into_files().expect("encoded");
        let days: Vec<&str> = files.iter().map(|(day, _)| day.as_str()).collect();
        assert_eq!(days, ["2024-05-01", UNDATED_PARTITION]);
        let read: Vec<PredictionRecord> = files
            .into_iter()
            .flat_map(|(_, bytes)| read_records(bytes).expect("readable"))
            .collect();
        assert_eq!(read, written);
    }

    #[test]
    fn a_file_that_is_not_the_table_is_refused() {
        assert!(read_records(b"not parquet".to_vec()).is_err());
    }
}
