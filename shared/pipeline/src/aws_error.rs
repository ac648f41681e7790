//! What a failed AWS call tells its caller: one line with the service's code, message and
//! request id — what a user acts on, or quotes to AWS support. The SDK's whole context, which
//! quotes the raw HTTP response, belongs in the debug log only.

use std::error::Error;
use std::fmt::Debug;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

/// The service's answer (code, message, request id), or the error and its causes when there
/// was no answer (a timeout, a connection failure).
pub(crate) fn summary<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let answer = service.err();
            let mut line = match (answer.code(), answer.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                // A modelled error keeps its message in its own field: its Display has both.
                _ => answer.to_string(),
            };
            if let Some(id) = answer.meta().request_id() {
                line.push_str(&format!("; request id {id}"));
            }
            line
        }
        // Its context would quote the response that could not be read.
        SdkError::ResponseError(_) => "the service sent a response that could not be read".into(),
        other => crate::error_chain(other),
    }
}
