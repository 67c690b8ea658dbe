//! Feeds arbitrary text to `parse_shard_index` (a sharded checkpoint's
//! `model.safetensors.index.json`): an error or a set of plain file names, never a path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(shards) = ensi_bitnet::parse_shard_index(text) {
        for s in shards {
            assert!(!s.is_empty() && !s.contains('/') && !s.contains('\\') && s != "..");
        }
    }
});
