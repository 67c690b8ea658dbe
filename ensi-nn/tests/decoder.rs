//! A whole encrypted decoder layer of the embedded model (column layout, every norm's statistic
//! and every normalized activation bootstrapped) against the plaintext reference layer
//! (sigmoid attention, activation quantization off), at small insecure parameters.
#![allow(clippy::unwrap_used)]

use ensi_bitnet::ops::AttentionKind;
use ensi_bitnet::{ForwardOptions, embedded_model};
use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext, KeyRequest, Parameters,
    ParametersLiteral, SecretKey,
};
use ensi_nn::attention::attention_rotations;
use ensi_nn::column::ColumnMatrix;
use ensi_nn::decoder::{calibrate, decoder_layer_logged, layer_level_plan};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// About two minutes on two cores (356 bootstraps at N = 2^11): run by CI once, in release mode
/// (`cargo test --release -p ensi-nn --test decoder -- --ignored`).
#[test]
#[ignore = "heavy: run in release mode with --ignored"]
fn one_encrypted_decoder_layer_matches_the_reference() {
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let tokens = [72u32, 101, 108, 108, 111, 32];
    let n = tokens.len();
    let trace = model
        .forward::<f64>(&tokens, &ForwardOptions::new(AttentionKind::Sigmoid, false))
        .unwrap();
    let layer = &trace.layers[0];
    // N = 2^11, 10 levels after bootstrapping (INSECURE, for tests).
    let mut literal = ParametersLiteral::insecure_bootstrap_test(11, 10, 9);
    literal.dnum = 8;
    let ctx = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
    let lit = BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        ..BootstrapParametersLiteral::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    // The attention's rotations besides bootstrapping's.
    let extra = ensi_ckks::EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new().with_rotations(&ctx, &attention_rotations(n)),
        &mut rng,
    )
    .unwrap();
    for key in extra.into_keys() {
        keys.insert(key);
    }
    let bts = Bootstrapper::new(&ctx, lit, keys).unwrap();
    let plan = calibrate(&[layer], &cfg, 0.1, 31, 31);
    let x = ColumnMatrix::encrypt(
        &ctx,
        &sk,
        layer.input.as_slice(),
        n,
        bts.output_level(),
        ctx.params().default_scale(),
        &mut rng,
    )
    .unwrap();
    let e = bts.evaluator();
    let before = e.op_count();
    let start = std::time::Instant::now();
    let mut seen: Vec<(&'static str, usize)> = Vec::new();
    let out = decoder_layer_logged(&bts, &x, &model.layers()[0], &cfg, &plan, &mut |step, l| {
        seen.push((step, l))
    })
    .unwrap();
    // The level plan the code writes down is the one the run went through.
    let predicted = layer_level_plan(&bts, x.level(), &cfg, &plan).unwrap();
    for (step, level) in &predicted {
        eprintln!("  {step:<40} level {level}");
    }
    assert_eq!(seen, predicted);
    let ops = e.op_count() - before;
    let got = out.decrypt(&ctx, &sk).unwrap();
    let expect = layer.output.as_slice();
    let max = expect.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = expect
        .iter()
        .zip(&got)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / max;
    eprintln!(
        "layer 0: relative error {err:.2e}, {:.1} s, {} bootstraps, {} key switches, level out {}",
        start.elapsed().as_secs_f64(),
        ops.bootstrap,
        ops.key_switches(),
        out.level()
    );
    // Four statistics and the refreshed activations, two columns per bootstrap.
    let d = cfg.hidden_size;
    let expected_bootstraps = 4 + d / 2 + cfg.q_dim() / 2 + d / 2 + cfg.intermediate_size / 2;
    assert_eq!(ops.bootstrap, expected_bootstraps);
    assert!(err < 1e-2, "{err}");
}
