//! What every S3-triggered function does around its use case, written once: read the event's
//! objects, run the use case on each, skip what is not the function's to handle, and answer
//! object by object. A direct event stops at the first real failure with a Lambda error type
//! that says whether a retry can help; an SQS batch fails only the messages that failed
//! (`batchItemFailures`) and goes on with the rest. And the `main` of the functions that hold
//! a model.

use std::future::Future;

use aws_lambda_events::sqs::BatchItemFailure;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::error_chain;
use crate::event::{EventError, EventItem, Invocation, ObjectRef, QueuedMessage, parse_invocation};

/// What one invocation did, object by object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectsResponse<S> {
    pub objects: Vec<ObjectOutcome<S>>,
    /// For an SQS batch only: the messages that failed, which the queue delivers again (and
    /// then to its dead-letter queue). The event source mapping must report batch item
    /// failures for Lambda to read it.
    #[serde(rename = "batchItemFailures", skip_serializing_if = "Option::is_none")]
    pub batch_item_failures: Option<Vec<BatchItemFailure>>,
}

impl<S> ObjectsResponse<S> {
    /// The ids of the queued messages that failed, in batch order (none for a direct event).
    pub fn failed_message_ids(&self) -> Vec<&str> {
        self.batch_item_failures
            .iter()
            .flatten()
            .map(|failure| failure.item_identifier.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectOutcome<S> {
    pub bucket: String,
    pub key: String,
    #[serde(flatten)]
    pub status: S,
}

/// A use case's failure on one object, as far as the runner judges it.
pub trait ObjectFailure: std::error::Error + Send + Sync + 'static {
    /// Why the object is skipped rather than failed: a key outside the function's prefix,
    /// or an object deleted before it could be read.
    fn skip_reason(&self) -> Option<String>;

    /// The Lambda error type: `Retryable.…` when retrying the event may succeed.
    fn error_type(&self) -> &'static str;
}

/// One S3-triggered function: what it does with a created object and with a removed one.
pub trait ObjectHandler: Sync {
    type Status: Serialize + Send;
    type Failure: ObjectFailure;
    /// Names a failure: "ingesting s3://… failed".
    const DOING: &'static str;

    /// The status of an object skipped for `reason`.
    fn skipped(reason: String) -> Self::Status;

    fn created(
        &self,
        object: &ObjectRef,
        context: &Context,
    ) -> impl Future<Output = Result<Self::Status, Self::Failure>> + Send;

    /// `None` when the function leaves a deleted object's outputs alone.
    fn removed(
        &self,
        object: &ObjectRef,
    ) -> impl Future<Output = Option<Result<Self::Status, Self::Failure>>> + Send;
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError<F> {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    #[error("{doing} s3://{bucket}/{key} failed: {source}")]
    Object {
        doing: &'static str,
        bucket: String,
        key: String,
        #[source]
        source: Box<F>,
    },
}

impl<F: ObjectFailure> From<HandlerError<F>> for Diagnostic {
    fn from(error: HandlerError<F>) -> Self {
        let error_type = match &error {
            HandlerError::InvalidEvent(_) => "InvalidEvent",
            HandlerError::Object { source, .. } => source.error_type(),
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error_chain(&error),
        }
    }
}

/// Runs `handler` on every object of the event, in order.
pub async fn handle_objects<H: ObjectHandler>(
    handler: &H,
    event: LambdaEvent<Value>,
) -> Result<ObjectsResponse<H::Status>, HandlerError<H::Failure>> {
    match parse_invocation(event.payload)? {
        Invocation::Direct(items) => {
            let mut objects = Vec::new();
            for item in items {
                objects.extend(handle_item(handler, item, &event.context).await?);
            }
            Ok(ObjectsResponse {
                objects,
                batch_item_failures: None,
            })
        }
        Invocation::Queued(messages) => Ok(handle_batch(handler, messages, &event.context).await),
    }
}

/// Every message of an SQS batch; a message that fails is named in `batchItemFailures` and
/// the others go on.
async fn handle_batch<H: ObjectHandler>(
    handler: &H,
    messages: Vec<QueuedMessage>,
    context: &Context,
) -> ObjectsResponse<H::Status> {
    let mut objects = Vec::new();
    let mut failures = Vec::new();
    for QueuedMessage { message_id, items } in messages {
        let outcome = match items {
            Ok(items) => handle_message(handler, items, context, &mut objects).await,
            Err(error) => Err(HandlerError::InvalidEvent(error)),
        };
        if let Err(error) = outcome {
            tracing::error!(
                message_id,
                error = %error_chain(&error),
                "message failed: the queue delivers it again"
            );
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            failures.push(failure);
        }
    }
    ObjectsResponse {
        objects,
        batch_item_failures: Some(failures),
    }
}

async fn handle_message<H: ObjectHandler>(
    handler: &H,
    items: Vec<EventItem>,
    context: &Context,
    objects: &mut Vec<ObjectOutcome<H::Status>>,
) -> Result<(), HandlerError<H::Failure>> {
    for item in items {
        objects.extend(handle_item(handler, item, context).await?);
    }
    Ok(())
}

/// One item: its outcome, `None` when there is nothing to answer for it, or the failure
/// that fails its event (or message).
async fn handle_item<H: ObjectHandler>(
    handler: &H,
    item: EventItem,
    context: &Context,
) -> Result<Option<ObjectOutcome<H::Status>>, HandlerError<H::Failure>> {
    let (object, outcome) = match item {
        EventItem::Ignored { event_name } => {
            info!(event_name, "ignored a record that creates no object");
            return Ok(None);
        }
        // Boxed: the use cases' futures are deep, and the compiler's layout of the invocation
        // future would otherwise nest them in every caller (one allocation per object).
        EventItem::Object(object) => {
            let outcome = Box::pin(handler.created(&object, context)).await;
            (object, outcome)
        }
        EventItem::Removed(object) => match Box::pin(handler.removed(&object)).await {
            Some(outcome) => (object, outcome),
            None => {
                info!(
                    key = object.key,
                    "ignored a deleted object: its outputs are kept"
                );
                return Ok(None);
            }
        },
    };
    let ObjectRef { bucket, key } = object;
    let status = match outcome {
        Ok(status) => status,
        Err(failure) => match failure.skip_reason() {
            Some(reason) => {
                warn!(bucket, key, reason, "skipped");
                H::skipped(reason)
            }
            None => {
                tracing::error!(
                    bucket,
                    key,
                    error = %error_chain(&failure),
                    error_type = failure.error_type(),
                    "failed"
                );
                return Err(HandlerError::Object {
                    doing: H::DOING,
                    bucket,
                    key,
                    source: Box::new(failure),
                });
            }
        },
    };
    Ok(Some(ObjectOutcome {
        bucket,
        key,
        status,
    }))
}

/// Answers invocations with `handle` until the runtime stops.
pub async fn serve<F, R, E>(
    handle: impl Fn(LambdaEvent<Value>) -> F,
) -> Result<(), lambda_runtime::Error>
where
    F: Future<Output = Result<R, E>> + Send,
    R: Serialize,
    E: Into<Diagnostic> + std::fmt::Debug,
{
    lambda_runtime::run(lambda_runtime::service_fn(handle)).await
}

/// Why a function could not start, named as Lambda's console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitFailure {
    /// A setting is missing or invalid (the message names the variable).
    Config,
    /// The model could not be loaded (the message names the file).
    Model,
}

impl InitFailure {
    pub fn error_type(self) -> &'static str {
        match self {
            Self::Config => "Config.InvalidSetting",
            Self::Model => "Model.LoadFailed",
        }
    }
}

/// A start-up step's result. A failure is logged, reported to the Runtime API's init-error
/// call (the console then shows its type and message, not a bare `Runtime.ExitError`) and
/// returned, so `main` exits.
pub async fn at_init<T, E: std::error::Error>(
    result: Result<T, E>,
    failure: InitFailure,
) -> Result<T, lambda_runtime::Error> {
    let error = match result {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let diagnostic = Diagnostic {
        error_type: failure.error_type().to_owned(),
        error_message: error_chain(&error),
    };
    tracing::error!(
        error_type = diagnostic.error_type,
        error = diagnostic.error_message,
        "start-up failed"
    );
    if let Ok(api) = std::env::var(RUNTIME_API)
        && let Err(report) = report_init_error(&api, &diagnostic).await
    {
        tracing::error!(error = %report, "the start-up failure could not be reported");
    }
    Err(diagnostic.error_message.into())
}

/// The Runtime API's `host:port`, set by Lambda (and by emulators) for the bootstrap.
const RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";

/// Posts `diagnostic` to `/runtime/init/error` of the Runtime API at `api` (`host:port`).
pub async fn report_init_error(
    api: &str,
    diagnostic: &Diagnostic,
) -> Result<(), lambda_runtime::Error> {
    let client = lambda_runtime_api_client::PooledClient::builder()
        .with_endpoint(format!("http://{api}").parse()?)
        .build();
    let request = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("Lambda-Runtime-Function-Error-Type", &diagnostic.error_type)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(diagnostic)?.into())?;
    let status = client.call(request).await?.status();
    if !status.is_success() {
        return Err(format!("the Runtime API answered {status}").into());
    }
    Ok(())
}

/// The `main` of a function that holds a model: the matrix kernels on every CPU, a
/// multi-threaded runtime, the log subscriber, then `serve` (which loads the model and runs
/// the loop).
///
/// # Safety
/// Call as `main`'s first statement, before any other thread exists: it sets environment
/// variables the kernels read.
#[cfg(feature = "candle")]
#[allow(unsafe_code)]
pub unsafe fn run_model_function<F>(serve: impl FnOnce() -> F) -> Result<(), lambda_runtime::Error>
where
    F: Future<Output = Result<(), lambda_runtime::Error>>,
{
    // SAFETY: the caller guarantees no other thread exists yet.
    unsafe {
        classifier::use_every_cpu_for_matmul();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    lambda_runtime::tracing::init_default_subscriber();
    runtime.block_on(serve())
}

impl ObjectFailure for crate::IngestObjectError {
    fn skip_reason(&self) -> Option<String> {
        match self {
            Self::Key(error) => Some(error.to_string()),
            Self::Store(error @ crate::StoreError::NotFound { .. }) => Some(error.to_string()),
            _ => None,
        }
    }

    fn error_type(&self) -> &'static str {
        if self.is_retryable() {
            "Retryable.IngestFailed"
        } else {
            "IngestFailed"
        }
    }
}

#[cfg(feature = "predictions")]
impl ObjectFailure for crate::ClassifyObjectError {
    fn skip_reason(&self) -> Option<String> {
        match self {
            Self::Key(error) => Some(error.to_string()),
            Self::Store(error @ crate::StoreError::NotFound { .. }) => Some(error.to_string()),
            _ => None,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            Self::Deadline { .. } => "Retryable.DeadlineTooClose",
            _ if self.is_retryable() => "Retryable.ClassifyFailed",
            _ => "ClassifyFailed",
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    // The report as Lambda receives it is checked against the functions' own binaries
    // (functions/predict/tests/start_up.rs).

    #[tokio::test]
    async fn a_refused_report_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let api = listener.local_addr().expect("an address").to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("a connection");
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let diagnostic = Diagnostic {
            error_type: InitFailure::Config.error_type().to_owned(),
            error_message: "setting X".to_owned(),
        };
        let error = report_init_error(&api, &diagnostic)
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("500"), "{error}");
    }
}
