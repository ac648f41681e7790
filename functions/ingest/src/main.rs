//! Wiring only: logs, settings, S3 client, then the runtime loop.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pipeline::s3::S3Buckets;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = pipeline::IngestConfig::from_env()?;
    let handler = ingest::Handler::new(S3Buckets::from_env().await, config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handler.handle(event)
    }))
    .await
}
