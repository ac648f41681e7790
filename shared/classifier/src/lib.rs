//! Text classification on CPU with Candle: a BERT encoder with a pooling + head on top,
//! loaded once per process from a self-describing model directory. No Lambda, no AWS.

pub mod engine;
pub mod export;
pub mod labels;
pub mod model_dir;
pub mod train;

pub use engine::{
    Classifier, InferenceOptions, InferenceTiming, PredictError, TextEncoder, decide,
};
pub use labels::{LabelsFile, ProblemType};
pub use model_dir::{LoadError, ModelFiles};
pub use tweets::Prediction;
