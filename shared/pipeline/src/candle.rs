//! The bundled Candle model (or a user-trained one) as a [`Classify`] backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use classifier::{Classifier, InferenceOptions, LoadError, PredictError};

use crate::config::CandleConfig;
use crate::ports::{Classified, Classify, ClassifyError, ClassifyFailure, ModelInfo};

/// Where the bundled model sits relative to a deployed binary (`bootstrap` in Lambda, with
/// the model directory packaged beside it) and to a checkout of this repository.
pub const BUNDLED_MODEL: &str = "models/sentiment";

/// The model loaded once per process; calls run on the blocking pool so inference never
/// stalls the async runtime.
#[derive(Debug, Clone)]
pub struct CandleClassifier {
    classifier: Arc<Classifier>,
    model: ModelInfo,
}

impl CandleClassifier {
    pub fn new(classifier: Classifier) -> Self {
        let labels = classifier.labels();
        let model = ModelInfo {
            name: labels.name.clone(),
            version: labels.version.clone(),
            backend: "candle".to_owned(),
            labels: labels.labels.clone(),
        };
        Self {
            classifier: Arc::new(classifier),
            model,
        }
    }

    /// Loads the configured model directory, or the bundled one.
    pub fn load(config: &CandleConfig) -> Result<Self, LoadError> {
        let dir = config.model_dir.clone().unwrap_or_else(bundled_model_dir);
        let options = InferenceOptions {
            threads: config.threads,
            ..InferenceOptions::default()
        };
        Ok(Self::new(Classifier::load(&dir, options)?))
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }
}

/// The bundled model: beside the running binary when deployed, else in the current
/// directory, else in the checkout this binary was built from.
pub fn bundled_model_dir() -> PathBuf {
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(BUNDLED_MODEL)));
    let candidates = beside_binary.into_iter().chain([
        PathBuf::from(BUNDLED_MODEL),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(BUNDLED_MODEL),
    ]);
    let mut last = PathBuf::from(BUNDLED_MODEL);
    for candidate in candidates {
        if candidate.is_dir() {
            return candidate;
        }
        last = candidate;
    }
    last
}

impl Classify for CandleClassifier {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    async fn classify(&self, texts: Vec<String>) -> Result<Classified, ClassifyError> {
        let classifier = Arc::clone(&self.classifier);
        let outcome = tokio::task::spawn_blocking(move || {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            classifier.predict(&texts)
        })
        .await
        .map_err(|error| ClassifyError::new(ClassifyFailure::Backend, error))?;
        // Both kinds of `PredictError` depend on the texts (a tokenizer refusal, a shape the
        // batch produced): one by one, the other texts still get their predictions.
        let (predictions, timing) = outcome
            .map_err(|error: PredictError| ClassifyError::new(ClassifyFailure::Input, error))?;
        Ok(Classified {
            predictions,
            tokenize: timing.tokenize,
            infer: timing.infer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_bundled_model_classifies_in_input_order() {
        let backend = CandleClassifier::load(&CandleConfig::default()).expect("bundled model");
        assert_eq!(backend.model().backend, "candle");
        assert_eq!(
            backend.model().labels,
            vec!["negative", "neutral", "positive"]
        );
        let classified = backend
            .classify(vec![
                "I absolutely love this, best flight ever!".to_owned(),
                "Worst service ever, lost my bag and nobody cares".to_owned(),
            ])
            .await
            .expect("classified");
        let labels: Vec<_> = classified
            .predictions
            .iter()
            .map(|prediction| prediction.label.as_deref())
            .collect();
        assert_eq!(labels, vec![Some("positive"), Some("negative")]);
    }

    #[test]
    fn a_missing_model_directory_is_a_clear_start_up_error() {
        let error = CandleClassifier::load(&CandleConfig {
            model_dir: Some("/nonexistent/model".into()),
            threads: None,
        })
        .expect_err("missing");
        assert!(error.to_string().contains("/nonexistent/model"), "{error}");
    }
}
