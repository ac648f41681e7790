//! An existing Amazon Machine Learning model as a [`Classify`] backend: each text is one
//! real-time `Predict` call, a bounded number in flight, answers mapped into the same
//! prediction shape as the Candle model's. The only import of `aws-sdk-machinelearning`.
//!
//! Amazon ML accepts no new users; this exists for teams that already have a model.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_machinelearning::Client;
use aws_sdk_machinelearning::config::retry::RetryConfig;
use aws_sdk_machinelearning::error::{DisplayErrorContext, SdkError};
use aws_sdk_machinelearning::operation::predict::PredictError;
use aws_sdk_machinelearning::types::{DetailsAttributes, Prediction as AmlPrediction};
use futures_util::{StreamExt, TryStreamExt, stream};
use tweets::Prediction;

use crate::config::AmazonMlConfig;
use crate::ports::{Classified, Classify, ClassifyError, ClassifyFailure, ModelInfo};

/// How throttled or failed calls are retried: this many attempts in all, waiting `base`,
/// then twice as long each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub attempts: u32,
    pub base: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(200),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AmazonMlClassifier {
    client: Client,
    config: AmazonMlConfig,
    backoff: Backoff,
    model: ModelInfo,
}

impl AmazonMlClassifier {
    /// A client from the Lambda (or laptop) credentials chain. The SDK's own retries are
    /// off: this adapter retries with its own, tested policy.
    pub async fn from_env(config: AmazonMlConfig) -> Self {
        let shared = aws_config::from_env()
            .retry_config(RetryConfig::disabled())
            .load()
            .await;
        Self::new(Client::new(&shared), config, Backoff::default())
    }

    pub fn new(client: Client, config: AmazonMlConfig, backoff: Backoff) -> Self {
        let labels = match &config.binary_labels {
            Some((zero, one)) => vec![zero.clone(), one.clone()],
            None => Vec::new(),
        };
        let model = ModelInfo {
            name: config.model_id.clone(),
            version: "amazon-ml".to_owned(),
            backend: "amazon-ml".to_owned(),
            labels,
        };
        Self {
            client,
            config,
            backoff,
            model,
        }
    }

    async fn predict_one(&self, text: String) -> Result<Prediction, ClassifyError> {
        let mut attempt = 1;
        loop {
            let call = self
                .client
                .predict()
                .ml_model_id(&self.config.model_id)
                .predict_endpoint(&self.config.endpoint)
                .record(&self.config.record_field, &text)
                .send()
                .await;
            let error = match call {
                Ok(output) => {
                    let prediction = output.prediction.ok_or_else(|| {
                        ClassifyError::new(
                            ClassifyFailure::Backend,
                            "Amazon ML answered without a prediction",
                        )
                    })?;
                    return self.map_prediction(&prediction);
                }
                Err(error) => error,
            };
            let failure = failure_of(&error);
            if failure != ClassifyFailure::Transient || attempt >= self.backoff.attempts {
                tracing::debug!(error = %DisplayErrorContext(&error), "Amazon ML Predict failed");
                let message = format!(
                    "Amazon ML Predict on model {} failed after {attempt} attempt(s): {}",
                    self.config.model_id,
                    crate::aws_error::summary(&error)
                );
                return Err(ClassifyError::new(failure, message));
            }
            let wait = self.backoff.base * 2u32.saturating_pow(attempt - 1);
            tracing::warn!(
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %DisplayErrorContext(&error),
                "Amazon ML Predict failed; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Binary models give one raw score (the probability of `1`), keyed by the predicted
    /// label; multiclass models give a score per label.
    fn map_prediction(&self, prediction: &AmlPrediction) -> Result<Prediction, ClassifyError> {
        let model_type = prediction
            .details()
            .and_then(|details| details.get(&DetailsAttributes::PredictiveModelType))
            .map(String::as_str);
        let scores = prediction.predicted_scores();
        let label = prediction.predicted_label();
        match (model_type, label, scores) {
            (Some("REGRESSION"), _, _) | (_, None, _) => Err(ClassifyError::new(
                ClassifyFailure::Backend,
                format!(
                    "Amazon ML model {} is not a classification model (no predicted label)",
                    self.config.model_id
                ),
            )),
            (_, Some(label), Some(scores))
                if model_type == Some("BINARY") || (scores.len() == 1 && is_binary(label)) =>
            {
                let score_of_one = scores.values().next().copied().unwrap_or(0.0);
                let is_one = match self.config.threshold {
                    Some(threshold) => score_of_one >= threshold,
                    None => label == "1",
                };
                let (zero, one) = self
                    .config
                    .binary_labels
                    .clone()
                    .unwrap_or_else(|| ("0".to_owned(), "1".to_owned()));
                let decided = if is_one { one.clone() } else { zero.clone() };
                Ok(Prediction {
                    label: Some(decided.clone()),
                    score: if is_one {
                        score_of_one
                    } else {
                        1.0 - score_of_one
                    },
                    labels: vec![decided],
                    scores: BTreeMap::from([(zero, 1.0 - score_of_one), (one, score_of_one)]),
                })
            }
            (_, Some(label), scores) => {
                let scores: BTreeMap<String, f32> = scores
                    .map(|scores| {
                        scores
                            .iter()
                            .map(|(name, score)| (name.clone(), *score))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Prediction {
                    label: Some(label.to_owned()),
                    score: scores.get(label).copied().unwrap_or(0.0),
                    labels: vec![label.to_owned()],
                    scores,
                })
            }
        }
    }
}

fn is_binary(label: &str) -> bool {
    label == "0" || label == "1"
}

/// Throttling, server errors and network trouble are worth retrying; a refused record is the
/// text's fault; anything else (unknown model, unmounted endpoint, credentials) is the
/// deployment's.
fn failure_of(error: &SdkError<PredictError>) -> ClassifyFailure {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ClassifyFailure::Transient
        }
        SdkError::ServiceError(service) => match service.err() {
            PredictError::LimitExceededException(_) | PredictError::InternalServerException(_) => {
                ClassifyFailure::Transient
            }
            PredictError::InvalidInputException(_) => ClassifyFailure::Input,
            _ if service.raw().status().is_server_error() => ClassifyFailure::Transient,
            _ if service.raw().status().as_u16() == 429 => ClassifyFailure::Transient,
            _ => ClassifyFailure::Backend,
        },
        _ => ClassifyFailure::Backend,
    }
}

impl Classify for AmazonMlClassifier {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    async fn classify(&self, texts: Vec<String>) -> Result<Classified, ClassifyError> {
        let started = Instant::now();
        let predictions = stream::iter(texts)
            .map(|text| self.predict_one(text))
            .buffered(self.config.concurrency)
            .try_collect()
            .await?;
        Ok(Classified {
            predictions,
            tokenize: Duration::ZERO,
            infer: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_machinelearning::operation::predict::PredictOutput;
    use aws_sdk_machinelearning::types::error::{InvalidInputException, LimitExceededException};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn config(binary_labels: Option<(&str, &str)>, threshold: Option<f32>) -> AmazonMlConfig {
        AmazonMlConfig {
            model_id: "ml-tweets".to_owned(),
            endpoint: "https://realtime.machinelearning.us-east-1.amazonaws.com".to_owned(),
            record_field: "tweet".to_owned(),
            binary_labels: binary_labels.map(|(zero, one)| (zero.to_owned(), one.to_owned())),
            threshold,
            concurrency: 1,
        }
    }

    fn fast() -> Backoff {
        Backoff {
            attempts: 3,
            base: Duration::from_millis(1),
        }
    }

    fn answer(model_type: &str, label: &str, scores: &[(&str, f32)]) -> PredictOutput {
        PredictOutput::builder()
            .prediction(
                AmlPrediction::builder()
                    .predicted_label(label)
                    .set_predicted_scores(Some(
                        scores
                            .iter()
                            .map(|(name, score)| ((*name).to_owned(), *score))
                            .collect::<HashMap<_, _>>(),
                    ))
                    .details(DetailsAttributes::PredictiveModelType, model_type)
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn binary_scores_map_to_named_labels_and_the_configured_threshold() {
        let request_seen = mock!(Client::predict)
            .match_requests(|request| {
                request.ml_model_id() == Some("ml-tweets")
                    && request.record().and_then(|record| record.get("tweet"))
                        == Some(&"great crew".to_owned())
            })
            .then_output(|| answer("BINARY", "0", &[("0", 0.6)]));
        let client = mock_client!(aws_sdk_machinelearning, [&request_seen]);
        let backend = AmazonMlClassifier::new(
            client,
            config(Some(("negative", "positive")), Some(0.5)),
            fast(),
        );
        let classified = backend
            .classify(vec!["great crew".to_owned()])
            .await
            .expect("classified");
        let prediction = &classified.predictions[0];
        // The service's own cut-off said 0, but 0.6 passes the configured 0.5.
        assert_eq!(prediction.label.as_deref(), Some("positive"));
        assert!((prediction.score - 0.6).abs() < 1e-6);
        assert!((prediction.scores["negative"] - 0.4).abs() < 1e-6);
        assert_eq!(request_seen.num_calls(), 1);
    }

    #[tokio::test]
    async fn multiclass_scores_are_kept_per_label() {
        let rule = mock!(Client::predict).then_output(|| {
            answer(
                "MULTICLASS",
                "neutral",
                &[("negative", 0.2), ("neutral", 0.5), ("positive", 0.3)],
            )
        });
        let client = mock_client!(aws_sdk_machinelearning, [&rule]);
        let backend = AmazonMlClassifier::new(client, config(None, None), fast());
        let classified = backend
            .classify(vec!["ok".to_owned()])
            .await
            .expect("classified");
        let prediction = &classified.predictions[0];
        assert_eq!(prediction.label.as_deref(), Some("neutral"));
        assert!((prediction.score - 0.5).abs() < 1e-6);
        assert_eq!(prediction.scores.len(), 3);
    }

    #[tokio::test]
    async fn throttling_is_retried_with_backoff_then_succeeds() {
        let rule = mock!(Client::predict)
            .sequence()
            .error(throttled)
            .times(2)
            .output(|| answer("BINARY", "1", &[("1", 0.9)]))
            .build();
        let client = mock_client!(aws_sdk_machinelearning, RuleMode::Sequential, [&rule]);
        let backend = AmazonMlClassifier::new(client, config(None, None), fast());
        let classified = backend
            .classify(vec!["x".to_owned()])
            .await
            .expect("third attempt succeeds");
        assert_eq!(classified.predictions[0].label.as_deref(), Some("1"));
        assert_eq!(rule.num_calls(), 3);
    }

    fn throttled() -> PredictError {
        PredictError::LimitExceededException(
            LimitExceededException::builder()
                .message("Rate exceeded")
                .build(),
        )
    }

    #[tokio::test]
    async fn persistent_throttling_surfaces_as_a_retryable_error_naming_the_model() {
        let rule = mock!(Client::predict)
            .sequence()
            .error(throttled)
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_machinelearning, [&rule]);
        let backend = AmazonMlClassifier::new(client, config(None, None), fast());
        let error = backend
            .classify(vec!["x".to_owned()])
            .await
            .expect_err("gives up");
        assert!(error.is_retryable());
        let message = crate::error_chain(&error);
        assert!(
            message.ends_with(
                "on model ml-tweets failed after 3 attempt(s): LimitExceededException: Rate exceeded"
            ),
            "{message}"
        );
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn a_refused_record_is_an_input_failure_and_not_retried() {
        let refused = mock!(Client::predict).then_error(|| {
            PredictError::InvalidInputException(
                InvalidInputException::builder()
                    .message("record too long")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_machinelearning, [&refused]);
        let backend = AmazonMlClassifier::new(client, config(None, None), fast());
        let error = backend
            .classify(vec!["x".to_owned()])
            .await
            .expect_err("refused");
        assert_eq!(error.failure, ClassifyFailure::Input);
        assert_eq!(refused.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_regression_model_is_refused_clearly() {
        let rule = mock!(Client::predict).then_output(|| {
            PredictOutput::builder()
                .prediction(
                    AmlPrediction::builder()
                        .predicted_value(3.5)
                        .details(DetailsAttributes::PredictiveModelType, "REGRESSION")
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_machinelearning, [&rule]);
        let backend = AmazonMlClassifier::new(client, config(None, None), fast());
        let error = backend
            .classify(vec!["x".to_owned()])
            .await
            .expect_err("regression");
        assert_eq!(error.failure, ClassifyFailure::Backend);
        assert!(
            crate::error_chain(&error).contains("not a classification model"),
            "{}",
            crate::error_chain(&error)
        );
    }
}
