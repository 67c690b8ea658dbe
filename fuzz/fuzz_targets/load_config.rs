//! Feeds arbitrary text to `ModelConfig::from_json` (both families' keys) and, when it parses,
//! to `validate`: an error or a config, never a panic; a config that validates survives a JSON
//! round trip.
#![no_main]

use ensi_bitnet::{LoadOptions, ModelConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = ModelConfig::from_json(text, &LoadOptions::default()) {
        if config.validate().is_ok() {
            let again = ModelConfig::from_json(&config.to_json(), &LoadOptions::default())
                .expect("a written config reads back");
            assert_eq!(again, config);
        }
    }
});
