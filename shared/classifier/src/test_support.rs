//! Fixtures shared by the encoder tests: a tiny BERT configuration and deterministic weights.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};

pub(crate) fn tiny_config(hidden_act: &str) -> Config {
    serde_json::from_value(serde_json::json!({
        "vocab_size": 40, "hidden_size": 24, "num_hidden_layers": 2,
        "num_attention_heads": 3, "intermediate_size": 48, "hidden_act": hidden_act,
        "hidden_dropout_prob": 0.1, "max_position_embeddings": 16, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "classifier_dropout": null, "model_type": "bert"
    }))
    .expect("tiny config")
}

/// Every variable of a stock BERT, filled with deterministic pseudo-random values
/// (LayerNorm parameters included, so a swapped gamma/beta cannot pass).
pub(crate) fn random_weights(config: &Config) -> VarMap {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    BertModel::load(vb, config).expect("stock model");
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (index, name) in names.into_iter().enumerate() {
        let var = &data[name];
        let count = var.elem_count();
        let values: Vec<f32> = (0..count)
            .map(|i| ((i * 7919 + index * 104_729) as f32 * 0.618).sin() * 0.5)
            .collect();
        let values = Tensor::from_vec(values, var.shape(), &Device::Cpu).expect("values");
        var.set(&values).expect("set");
    }
    drop(data);
    varmap
}
