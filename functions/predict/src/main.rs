//! Wiring only: logs, settings, the model (loaded once), then the runtime loop.

use lambda_runtime::Error;
use pipeline::backend::Backend;
use pipeline::lambda::{InitFailure, at_init};

fn main() -> Result<(), Error> {
    // SAFETY: first statement of `main`, before the async runtime or anything else starts a
    // thread.
    #[allow(unsafe_code)]
    unsafe {
        pipeline::lambda::run_model_function(serve)
    }
}

async fn serve() -> Result<(), Error> {
    let config = at_init(pipeline::PredictConfig::from_env(), InitFailure::Config).await?;
    let backend = at_init(Backend::load(&config.backend).await, InitFailure::Model).await?;
    let handler = predict::Handler::new(backend, config);
    pipeline::lambda::serve(|event| handler.handle(event)).await
}
