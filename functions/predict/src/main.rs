//! Wiring only: logs, settings, the model (loaded once), then the runtime loop.

use lambda_runtime::Error;
use pipeline::backend::Backend;

fn main() -> Result<(), Error> {
    // SAFETY: first statement of `main`, before the async runtime or anything else starts a
    // thread.
    #[allow(unsafe_code)]
    unsafe {
        pipeline::lambda::run_model_function(serve)
    }
}

async fn serve() -> Result<(), Error> {
    let config = pipeline::PredictConfig::from_env()?;
    let backend = Backend::load(&config.backend).await?;
    let handler = predict::Handler::new(backend, config);
    pipeline::lambda::serve(|event| handler.handle(event)).await
}
