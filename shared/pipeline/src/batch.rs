//! One model call over a batch of texts, falling back to one call per text when the batch
//! fails because of its texts, so only the texts that fail on their own are rejected: the
//! rule the classify function and `tweetclf classify` share, whatever the backend.

use std::time::Duration;

use tweets::Prediction;

use crate::error_chain;
use crate::ports::{Classify, ClassifyError, ClassifyFailure};

/// One batch's outcome per text, in order, and where its time went.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub results: Vec<Result<Prediction, String>>,
    pub tokenize: Duration,
    pub infer: Duration,
}

/// Classifies a batch; when the batch fails because of its texts, classifies them one by one
/// so that only the texts that fail on their own are rejected.
pub async fn classify_batch(
    classifier: &impl Classify,
    texts: Vec<String>,
) -> Result<BatchOutcome, ClassifyError> {
    let count = texts.len();
    let error = match classifier.classify(texts.clone()).await {
        Ok(classified) if classified.predictions.len() == count => {
            return Ok(BatchOutcome {
                results: classified.predictions.into_iter().map(Ok).collect(),
                tokenize: classified.tokenize,
                infer: classified.infer,
            });
        }
        Ok(classified) => {
            return Err(ClassifyError::new(
                ClassifyFailure::Backend,
                format!(
                    "the classifier returned {} predictions for {count} texts",
                    classified.predictions.len()
                ),
            ));
        }
        Err(error) if error.failure == ClassifyFailure::Input => error,
        Err(error) => return Err(error),
    };
    tracing::warn!(
        error = %error_chain(&error),
        texts = count,
        "batch failed; classifying its texts one by one"
    );
    let mut outcome = BatchOutcome::default();
    for text in texts {
        match classifier.classify(vec![text]).await {
            Ok(classified) => {
                outcome.tokenize += classified.tokenize;
                outcome.infer += classified.infer;
                let mut predictions = classified.predictions.into_iter();
                outcome
                    .results
                    .push(match (predictions.next(), predictions.next()) {
                        (Some(prediction), None) => Ok(prediction),
                        _ => {
                            Err("the classifier did not return one prediction for this text"
                                .to_owned())
                        }
                    });
            }
            Err(error) if error.failure == ClassifyFailure::Input => {
                outcome.results.push(Err(error_chain(&error)));
            }
            Err(error) => return Err(error),
        }
    }
    Ok(outcome)
}
