//! The pipeline's use cases over small storage ports, the bucket key contract, and the
//! adapters: S3 (`s3`), a local folder (`local`) and, for tests, memory (`memory`).

pub mod config;
pub mod event;
pub mod ingest;
pub mod keys;
pub mod local;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod ports;
pub mod s3;

pub use config::{
    AmazonMlConfig, BackendConfig, CandleConfig, ClassifyConfig, ConfigError, IngestConfig,
    PredictConfig,
};
pub use event::{EventItem, ObjectRef, object_refs};
pub use ingest::{IngestError, IngestManifest, IngestOutputs, IngestTiming, ingest_object};
pub use keys::{KeyError, Prefixes};
pub use ports::{Buckets, ObjectBody, Payload, ReadObject, StoreError, WriteObject};
