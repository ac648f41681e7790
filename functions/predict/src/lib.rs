//! The predict function: texts in, labels and scores out, for people testing from the AWS
//! console and for code. Two ways in:
//! - direct invocation with `{"text": "..."}` or `{"texts": ["...", ...]}`: the response
//!   is the JSON result, and a bad request is an `InvalidRequest` error;
//! - a Lambda Function URL (HTTP `POST` with the same JSON body): the response is HTTP, with
//!   400 and a clear message for a bad request.

use aws_lambda_events::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;
use http::{HeaderMap, HeaderValue, header};
use lambda_runtime::{Diagnostic, LambdaEvent};
use pipeline::text_lines::{EMPTY_TEXT, is_empty_text};
use pipeline::{Classify, ClassifyError, ClassifyFailure, ModelInfo, PredictConfig, error_chain};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tweets::Prediction;

/// Holds what `main` built once (model, limits), for every invocation.
#[derive(Debug)]
pub struct Handler<C> {
    classifier: C,
    config: PredictConfig,
}

/// The request body, in either invocation style.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictRequest {
    text: Option<String>,
    texts: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictResponse {
    /// One per input text, in order.
    pub predictions: Vec<Prediction>,
    pub model: ModelInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The caller's mistake: HTTP 400, or `InvalidRequest` for a direct call.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Classify(#[from] ClassifyError),
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::BadRequest(_) => "InvalidRequest",
            HandlerError::Classify(error) if error.is_retryable() => "Retryable.PredictFailed",
            HandlerError::Classify(_) => "PredictFailed",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error_chain(&error),
        }
    }
}

impl<C: Classify> Handler<C> {
    pub fn new(classifier: C, config: PredictConfig) -> Self {
        Self { classifier, config }
    }

    /// Answers a direct invocation with the result, a Function URL request with HTTP.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
        let payload = event.payload;
        if is_function_url_request(&payload) {
            let response = self.handle_http(payload).await;
            return Ok(serde_json::to_value(response).unwrap_or_default());
        }
        let request = serde_json::from_value(payload).map_err(|error| {
            HandlerError::BadRequest(format!(
                "expected {{\"text\": \"...\"}} or {{\"texts\": [\"...\", ...]}}: {error}"
            ))
        })?;
        let response = self.predict(request).await?;
        Ok(serde_json::to_value(response).unwrap_or_default())
    }

    async fn handle_http(&self, payload: Value) -> LambdaFunctionUrlResponse {
        let request: LambdaFunctionUrlRequest = match serde_json::from_value(payload) {
            Ok(request) => request,
            Err(error) => {
                return http_error(400, &format!("malformed Function URL event: {error}"));
            }
        };
        let method = request.request_context.http.method.as_deref().unwrap_or("");
        if !method.eq_ignore_ascii_case("POST") {
            return http_error(
                405,
                "use POST with a JSON body: {\"text\": \"...\"} or {\"texts\": [...]}",
            );
        }
        let body = match request_body(&request) {
            Ok(body) => body,
            Err(message) => return http_error(400, &message),
        };
        let parsed: PredictRequest = match serde_json::from_slice(&body) {
            Ok(parsed) => parsed,
            Err(error) => {
                return http_error(
                    400,
                    &format!(
                        "the body must be JSON: {{\"text\": \"...\"}} or {{\"texts\": [\"...\", ...]}}: {error}"
                    ),
                );
            }
        };
        match self.predict(parsed).await {
            Ok(response) => http_json(200, &response),
            Err(error @ HandlerError::BadRequest(_)) => http_error(400, &error.to_string()),
            Err(HandlerError::Classify(error)) => {
                let status = match error.failure {
                    ClassifyFailure::Transient => 503,
                    ClassifyFailure::Input => 400,
                    ClassifyFailure::Backend => 500,
                };
                http_error(status, &error_chain(&error))
            }
        }
    }

    async fn predict(&self, request: PredictRequest) -> Result<PredictResponse, HandlerError> {
        let texts = self.validate(request)?;
        let classified = self.classifier.classify(texts).await?;
        Ok(PredictResponse {
            predictions: classified.predictions,
            model: self.classifier.model().clone(),
        })
    }

    fn validate(&self, request: PredictRequest) -> Result<Vec<String>, HandlerError> {
        let texts = match (request.text, request.texts) {
            (Some(text), None) => vec![text],
            (None, Some(texts)) => texts,
            (Some(_), Some(_)) => {
                return Err(HandlerError::BadRequest(
                    "give either \"text\" or \"texts\", not both".to_owned(),
                ));
            }
            (None, None) => {
                return Err(HandlerError::BadRequest(
                    "nothing to classify: expected {\"text\": \"...\"} or {\"texts\": [\"...\", ...]}"
                        .to_owned(),
                ));
            }
        };
        let limits = &self.config;
        if texts.is_empty() {
            return Err(HandlerError::BadRequest(
                "\"texts\" is empty: give at least one text".to_owned(),
            ));
        }
        if texts.len() > limits.max_texts {
            return Err(HandlerError::BadRequest(format!(
                "{} texts in one request; at most {} are accepted (PREDICT_MAX_TEXTS): split the request",
                texts.len(),
                limits.max_texts
            )));
        }
        if let Some(index) = texts.iter().position(|text| is_empty_text(text)) {
            return Err(HandlerError::BadRequest(format!(
                "text {index}: {EMPTY_TEXT} (or only whitespace): there is nothing to classify"
            )));
        }
        if let Some((index, text)) = texts
            .iter()
            .enumerate()
            .find(|(_, text)| text.chars().count() > limits.max_text_chars)
        {
            return Err(HandlerError::BadRequest(format!(
                "text {index} has {} characters; at most {} are accepted (PREDICT_MAX_TEXT_CHARS)",
                text.chars().count(),
                limits.max_text_chars
            )));
        }
        Ok(texts)
    }
}

/// Function URL events carry `requestContext.http`; direct invocations never do.
fn is_function_url_request(payload: &Value) -> bool {
    payload
        .get("requestContext")
        .and_then(|context| context.get("http"))
        .is_some()
}

fn request_body(request: &LambdaFunctionUrlRequest) -> Result<Vec<u8>, String> {
    let body = request.body.as_deref().unwrap_or_default();
    if body.is_empty() {
        return Err(
            "the request has no body: POST {\"text\": \"...\"} or {\"texts\": [...]}".to_owned(),
        );
    }
    if request.is_base64_encoded {
        return base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|error| format!("the body is marked base64 but does not decode: {error}"));
    }
    Ok(body.as_bytes().to_vec())
}

fn http_json(status: i64, body: &impl Serialize) -> LambdaFunctionUrlResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(serde_json::to_string(body).unwrap_or_default());
    response
}

fn http_error(status: i64, message: &str) -> LambdaFunctionUrlResponse {
    tracing::warn!(status, message, "request refused");
    http_json(status, &serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use lambda_runtime::Context;
    use pipeline::memory::KeywordClassifier;
    use serde_json::json;

    use super::*;

    fn handler() -> Handler<KeywordClassifier> {
        Handler::new(
            KeywordClassifier::default(),
            PredictConfig {
                max_texts: 3,
                max_text_chars: 100,
                ..PredictConfig::default()
            },
        )
    }

    fn invoke(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(payload, Context::default())
    }

    fn url_event(body: &str, base64: bool) -> Value {
        let mut event: Value = serde_json::from_str(include_str!(
            "../../../infra/events/predict-function-url.json"
        ))
        .expect("fixture is JSON");
        event["body"] = json!(if base64 {
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            body.to_owned()
        });
        event["isBase64Encoded"] = json!(base64);
        event
    }

    fn http_body(response: &Value) -> Value {
        serde_json::from_str(response["body"].as_str().expect("a body")).expect("JSON body")
    }

    #[tokio::test]
    async fn the_console_events_are_answered() {
        for (fixture, count) in [
            (include_str!("../../../infra/events/predict-text.json"), 1),
            (include_str!("../../../infra/events/predict-texts.json"), 3),
        ] {
            let payload: Value = serde_json::from_str(fixture).expect("fixture is JSON");
            let response = handler().handle(invoke(payload)).await.expect("answered");
            let predictions = response["predictions"].as_array().expect("predictions");
            assert_eq!(predictions.len(), count);
            assert!(predictions[0]["label"].is_string());
            assert!(predictions[0]["scores"].is_object());
            assert_eq!(response["model"]["name"], "keywords");
        }
    }

    #[tokio::test]
    async fn direct_texts_come_back_in_order() {
        let response = handler()
            .handle(invoke(
                json!({"texts": ["I hate delays", "I love it", "ok"]}),
            ))
            .await
            .expect("answered");
        let labels: Vec<&str> = response["predictions"]
            .as_array()
            .expect("predictions")
            .iter()
            .filter_map(|prediction| prediction["label"].as_str())
            .collect();
        assert_eq!(labels, vec!["negative", "positive", "neutral"]);
    }

    #[tokio::test]
    async fn bad_direct_requests_are_invalid_request_errors() {
        for (payload, expected) in [
            (json!({"texts": []}), "is empty"),
            (json!({"text": ""}), "text 0: `text` is empty"),
            (
                json!({"texts": ["fine", " \n\t "]}),
                "text 1: `text` is empty",
            ),
            (json!({"texts": ["a", "b", "c", "d"]}), "at most 3"),
            (json!({"text": "x".repeat(101)}), "PREDICT_MAX_TEXT_CHARS"),
            (json!({"text": "a", "texts": ["b"]}), "not both"),
            (json!({"message": "hi"}), "expected {\"text\""),
            (json!({}), "nothing to classify"),
        ] {
            let error = handler()
                .handle(invoke(payload.clone()))
                .await
                .expect_err("refused");
            let diagnostic = Diagnostic::from(error);
            assert_eq!(diagnostic.error_type, "InvalidRequest", "{payload}");
            assert!(
                diagnostic.error_message.contains(expected),
                "{payload}: {}",
                diagnostic.error_message
            );
        }
    }

    #[tokio::test]
    async fn a_function_url_post_gets_json_over_http() {
        for base64 in [false, true] {
            let response = handler()
                .handle(invoke(url_event(r#"{"text": "love this"}"#, base64)))
                .await
                .expect("HTTP response");
            assert_eq!(response["statusCode"], 200);
            assert_eq!(response["headers"]["content-type"], "application/json");
            assert_eq!(http_body(&response)["predictions"][0]["label"], "positive");
        }
    }

    #[tokio::test]
    async fn bad_http_requests_get_4xx_with_a_message() {
        let too_many = url_event(r#"{"texts": ["a", "b", "c", "d"]}"#, false);
        let not_json = url_event("text=hello", false);
        let empty = url_event("", false);
        let mut get = url_event(r#"{"text": "hi"}"#, false);
        get["requestContext"]["http"]["method"] = json!("GET");
        for (event, status, expected) in [
            (too_many, 400, "at most 3"),
            (not_json, 400, "must be JSON"),
            (empty, 400, "no body"),
            (get, 405, "use POST"),
        ] {
            let response = handler()
                .handle(invoke(event))
                .await
                .expect("HTTP response");
            assert_eq!(response["statusCode"], status);
            let message = http_body(&response)["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[tokio::test]
    async fn a_throttled_backend_is_503_over_http_and_retryable_directly() {
        let handler = handler();
        handler.classifier.fail_next_calls(2);
        let response = handler
            .handle(invoke(url_event(r#"{"text": "hi"}"#, false)))
            .await
            .expect("HTTP response");
        assert_eq!(response["statusCode"], 503);
        let error = handler
            .handle(invoke(json!({"text": "hi"})))
            .await
            .expect_err("throttled");
        assert_eq!(
            Diagnostic::from(error).error_type,
            "Retryable.PredictFailed"
        );
    }
}
