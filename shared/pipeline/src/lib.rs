//! The pipeline's use cases over small storage ports, the bucket key contract, and the
//! adapters: S3 (`s3`), a local folder (`local`) and, for tests, memory (`memory`).

#[cfg(feature = "amazon-ml")]
pub mod amazon_ml;
#[cfg(feature = "aws-errors")]
mod aws_error;
#[cfg(feature = "backends")]
pub mod backend;
#[cfg(feature = "backfill")]
pub mod backfill;
pub mod batch;
#[cfg(feature = "candle")]
pub mod candle;
#[cfg(feature = "predictions")]
pub mod classify;
pub mod config;
pub mod event;
pub mod ingest;
#[cfg(feature = "backfill")]
pub mod inventory;
pub mod keys;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod local;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
#[cfg(feature = "predictions")]
pub mod parquet_table;
pub mod ports;
#[cfg(feature = "predictions")]
pub mod prediction_record;
pub mod rebased;
#[cfg(feature = "predictions")]
pub mod retract;
#[cfg(feature = "s3")]
pub mod s3;
pub mod text_lines;

#[cfg(feature = "predictions")]
pub use classify::{ClassifyManifest, ClassifyObjectError, classify_object};
pub use config::{
    AmazonMlConfig, BackendConfig, CandleConfig, ClassifyConfig, ConfigError, IngestConfig,
    PredictConfig,
};
pub use event::{EventItem, Invocation, ObjectRef, QueuedMessage, object_refs, parse_invocation};
pub use ingest::{
    IngestManifest, IngestObjectError, IngestOutputs, IngestTiming, Ingested, ingest_object,
};
pub use keys::{KeyError, Prefixes};
pub use ports::{
    Buckets, Classified, Classify, ClassifyError, ClassifyFailure, DeleteObject, ListObjects,
    ModelInfo, ObjectBody, Payload, ReadObject, StoreError, WriteObject,
};
#[cfg(feature = "predictions")]
pub use prediction_record::PredictionRecord;
#[cfg(feature = "predictions")]
pub use retract::{Retraction, retract_classify_outputs};

/// An error and its causes on one line, for callers and logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    message
}
