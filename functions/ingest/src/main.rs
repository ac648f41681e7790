//! Wiring only: logs, settings, S3 client, then the runtime loop.

use lambda_runtime::Error;
use pipeline::lambda::{InitFailure, at_init};
use pipeline::s3::S3Buckets;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = at_init(pipeline::IngestConfig::from_env(), InitFailure::Config).await?;
    let handler = ingest::Handler::new(S3Buckets::from_env().await, config);
    pipeline::lambda::serve(|event| handler.handle(event)).await
}
