//! Wiring only: logs, settings, S3 client, the model (loaded once), then the runtime loop.

use lambda_runtime::Error;
use pipeline::backend::Backend;
use pipeline::lambda::{InitFailure, at_init};
use pipeline::s3::S3Buckets;

fn main() -> Result<(), Error> {
    // SAFETY: first statement of `main`, before the async runtime or anything else starts a
    // thread.
    #[allow(unsafe_code)]
    unsafe {
        pipeline::lambda::run_model_function(serve)
    }
}

async fn serve() -> Result<(), Error> {
    let config = at_init(pipeline::ClassifyConfig::from_env(), InitFailure::Config).await?;
    let backend = at_init(Backend::load(&config.backend).await, InitFailure::Model).await?;
    let handler = classify::Handler::new(S3Buckets::from_env().await, backend, config);
    pipeline::lambda::serve(|event| handler.handle(event)).await
}
