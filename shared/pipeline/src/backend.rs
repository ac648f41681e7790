//! The backend chosen at start-up by `CLASSIFIER_BACKEND`: the bundled Candle model by
//! default, or an existing Amazon ML model.

use crate::amazon_ml::AmazonMlClassifier;
use crate::candle::CandleClassifier;
use crate::config::BackendConfig;
use crate::ports::{Classified, Classify, ClassifyError, ModelInfo};

#[derive(Debug, Clone)]
pub enum Backend {
    Candle(CandleClassifier),
    AmazonMl(AmazonMlClassifier),
}

/// A start-up failure: the function cannot serve any request.
#[derive(Debug, thiserror::Error)]
#[error("the classifier could not be loaded")]
pub struct BackendError(#[from] classifier::LoadError);

impl Backend {
    /// Loads the model (once per process) or builds the Amazon ML client.
    pub async fn load(config: &BackendConfig) -> Result<Self, BackendError> {
        Ok(match config {
            BackendConfig::Candle(candle) => Self::Candle(CandleClassifier::load(candle)?),
            BackendConfig::AmazonMl(amazon) => {
                Self::AmazonMl(AmazonMlClassifier::from_env(amazon.clone()).await)
            }
        })
    }
}

impl Classify for Backend {
    fn model(&self) -> &ModelInfo {
        match self {
            Self::Candle(candle) => candle.model(),
            Self::AmazonMl(amazon) => amazon.model(),
        }
    }

    async fn classify(&self, texts: Vec<String>) -> Result<Classified, ClassifyError> {
        match self {
            Self::Candle(candle) => candle.classify(texts).await,
            Self::AmazonMl(amazon) => amazon.classify(texts).await,
        }
    }
}
