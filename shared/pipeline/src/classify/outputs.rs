//! Everything classify produces for one object, buffered until it is stored: the JSON Lines
//! predictions, the Parquet partitions and the rejections.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use tweets::Rejection;

use super::{ClassifyManifest, ClassifyObjectError, ClassifyOutputs, ClassifyTiming, PARQUET};
use crate::ingest::JSON_LINES;
use crate::keys::ClassifyKeys;
use crate::parquet_table::PartitionedPredictions;
use crate::ports::{ModelInfo, Payload, StoreError, WriteObject};
use crate::prediction_record::PredictionRecord;

/// Everything produced so far, before it is stored.
#[derive(Debug, Default)]
pub(super) struct Outputs {
    predictions: Payload,
    parquet: PartitionedPredictions,
    rejections: Payload,
    pub(super) predicted: u64,
    pub(super) rejected: u64,
    label_counts: BTreeMap<String, u64>,
    unlabelled: u64,
}

impl Outputs {
    pub(super) fn predict(&mut self, record: PredictionRecord) -> Result<(), ClassifyObjectError> {
        buffer_json_line(&mut self.predictions, &record, "predictions")?;
        self.parquet.push(&record)?;
        match &record.label {
            Some(label) => *self.label_counts.entry(label.clone()).or_default() += 1,
            None => self.unlabelled += 1,
        }
        self.predicted += 1;
        Ok(())
    }

    pub(super) fn reject(&mut self, rejection: &Rejection) -> Result<(), ClassifyObjectError> {
        buffer_json_line(&mut self.rejections, rejection, "rejections")?;
        self.rejected += 1;
        Ok(())
    }

    /// Stores predictions, Parquet partitions and rejections; returns the manifest without
    /// timing, to be stored last by the caller.
    pub(super) async fn write(
        self,
        sink: &impl WriteObject,
        keys: &ClassifyKeys,
        input: &str,
        model: ModelInfo,
    ) -> Result<ClassifyManifest, ClassifyObjectError> {
        let parquet_files = tokio::task::spawn_blocking(move || self.parquet.into_files());
        sink.put(&keys.predictions, self.predictions, JSON_LINES)
            .await?;
        let mut parquet_keys = Vec::new();
        for (day, bytes) in parquet_files.await?? {
            let key = keys.parquet(&day);
            sink.put(&key, Payload::from(bytes), PARQUET).await?;
            parquet_keys.push(key);
        }
        let rejected = if self.rejected > 0 {
            sink.put(&keys.rejected, self.rejections, JSON_LINES)
                .await?;
            Some(keys.rejected.clone())
        } else {
            None
        };
        Ok(ClassifyManifest {
            input: input.to_owned(),
            outputs: ClassifyOutputs {
                predictions: keys.predictions.clone(),
                parquet: parquet_keys,
                rejected,
                manifest: keys.manifest.clone(),
            },
            tweets_in: 0,
            predicted: self.predicted,
            rejected: self.rejected,
            label_counts: self.label_counts,
            unlabelled: self.unlabelled,
            model,
            timing_ms: ClassifyTiming::default(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }
}

/// Appends one JSON line to the payload of the output named `output`.
fn buffer_json_line(
    out: &mut Payload,
    value: &impl Serialize,
    output: &'static str,
) -> Result<(), ClassifyObjectError> {
    serde_json::to_writer(&mut *out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|error| {
            ClassifyObjectError::Store(StoreError::Failed {
                operation: "buffering output for",
                key: output.to_owned(),
                retryable: true,
                source: Box::new(error),
            })
        })
}
