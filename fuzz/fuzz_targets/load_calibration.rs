//! Feeds arbitrary bytes to the calibration-file reader of the `ensi` tool (the file
//! `calibration.json` beside a checkpoint, read by `ensi run`, `generate` and `infer`): a plan
//! for every length or a reason, never a panic; every plan read has the model's layer count
//! and checked intervals.
#![no_main]

use ensi_bitnet::Model;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| ensi_bitnet::embedded_model().expect("the embedded model"))
}

fuzz_target!(|data: &[u8]| {
    let m = model();
    if let Ok(plans) = ensi_cli::calibration::from_slice(m, data, 31, 63) {
        for plan in plans.values() {
            assert_eq!(plan.layers.len(), m.config().num_hidden_layers);
            for layer in &plan.layers {
                assert!(layer.scores.lo < layer.scores.hi);
                assert!(layer.norms.iter().all(|n| 0.0 < n.lo && n.lo < n.hi));
            }
        }
    }
});
