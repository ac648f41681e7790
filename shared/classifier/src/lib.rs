//! Text classification on CPU with Candle: a BERT encoder with a pooling + head on top,
//! loaded once per process from a self-describing model directory. No Lambda, no AWS.

#[cfg(feature = "bench")]
pub mod bench;
mod bert;
// Linked for its `x86-v4` feature (AVX-512 kernels), which candle-core does not expose.
use gemm as _;
mod checkpoint;
pub mod engine;
#[cfg(feature = "report")]
pub mod eval_report;
pub mod evaluate;
pub mod export;
pub mod finetune;
pub mod import_e5;
mod kernels;
pub mod labelled;
pub mod labels;
pub mod model_dir;
pub mod optimizer;
mod q4_matmul;
pub mod quantized;
pub mod recipe;
#[cfg(feature = "report")]
pub mod runs;
#[cfg(test)]
mod test_support;
pub mod train;
pub mod trainable_bert;
pub mod unigram;

pub use bert::Precision;
pub use engine::{
    Classifier, InferenceOptions, InferenceTiming, PredictError, TextEncoder, decide,
};
pub use labels::{EncoderRecipe, LabelsFile, ProblemType};
pub use model_dir::{LoadError, ModelFiles};
pub use tweets::Prediction;

/// Candle sizes its matrix-multiply parallelism from `RAYON_NUM_THREADS`, else from the
/// *physical* core count, which is 1 on many 2-vCPU machines and Lambda sizes: every
/// multiply would then run on one thread. This defaults the variable to the logical CPU
/// count (an explicit setting wins); `InferenceOptions::threads` still bounds the pool that
/// runs the work.
///
/// # Safety
/// Sets an environment variable: call it before any other thread of the process exists
/// (first thing in `main`, before an async runtime starts).
#[allow(unsafe_code)]
pub unsafe fn use_every_cpu_for_matmul() {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let logical = std::thread::available_parallelism().map_or(1, usize::from);
    // SAFETY: the caller guarantees no other thread is running (see `# Safety`).
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", logical.to_string());
    }
}
