//! Feeds arbitrary bytes as `model.safetensors` to `load_safetensors` with the configuration of
//! the seed checkpoint (`fuzz/seeds/load_safetensors/config.json`, a tiny 2B-4T layout): header
//! parsing, dtypes, shapes, offsets and ternary checks must give an error or a model, never a
//! panic or an allocation the input does not justify.
#![no_main]

use ensi_bitnet::{LoadOptions, ModelConfig, load_safetensors};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static CONFIG: LazyLock<ModelConfig> = LazyLock::new(|| {
    let text = include_str!("../seeds/load_safetensors_config.json");
    ModelConfig::from_json(text, &LoadOptions::default()).expect("the seed config is valid")
});

fuzz_target!(|data: &[u8]| {
    let _ = load_safetensors(CONFIG.clone(), data, &LoadOptions::default());
});
