//! Wiring only: logs, settings, the model (loaded once), then the runtime loop.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pipeline::backend::Backend;
use serde_json::Value;

fn main() -> Result<(), Error> {
    // SAFETY: first statement of `main`, before the async runtime or anything else starts a
    // thread.
    #[allow(unsafe_code)]
    unsafe {
        pipeline::lambda::run_model_function(serve)
    }
}

async fn serve() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = pipeline::PredictConfig::from_env()?;
    let backend = Backend::load(&config.backend).await?;
    let handler = predict::Handler::new(backend, config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handler.handle(event)
    }))
    .await
}
