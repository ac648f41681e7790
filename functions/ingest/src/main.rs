//! Wiring only: logs, settings, S3 client, then the runtime loop.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pipeline::config::vars;
use pipeline::s3::{S3Buckets, client};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = pipeline::IngestConfig::from_env()?;
    let endpoint = std::env::var(vars::S3_ENDPOINT_URL).ok();
    let buckets = S3Buckets::new(client(endpoint.as_deref()).await);
    let handler = ingest::Handler::new(buckets, config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handler.handle(event)
    }))
    .await
}
