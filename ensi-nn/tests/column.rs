//! The column layout against the plaintext reference forward pass of the embedded model
//! (sigmoid attention, activation quantization off): the ternary projections and RoPE of the
//! first layer, from the reference's own normalized input.
#![allow(clippy::unwrap_used)]

use ensi_bitnet::ops::AttentionKind;
use ensi_bitnet::{ForwardOptions, Trace, embedded_model};
use ensi_ckks::{
    CkksContext, EvaluationKeySet, Evaluator, Parameters, ParametersLiteral, SecretKey,
};
use ensi_nn::column::{ColumnMatrix, rope, ternary_linear};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn reference(tokens: &[u32]) -> Trace<f64> {
    let model = embedded_model().unwrap();
    model
        .forward::<f64>(tokens, &ForwardOptions::new(AttentionKind::Sigmoid, false))
        .unwrap()
}

/// Max abs error relative to the largest magnitude of the reference.
fn rel_err(expect: &[f64], got: &[f64]) -> f64 {
    let max = expect.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    expect
        .iter()
        .zip(got)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / max
}

#[test]
fn ternary_projections_and_rope_match_the_reference() {
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let tokens = [72u32, 101, 108, 108, 111, 32, 119, 111];
    let trace = reference(&tokens);
    let layer = &trace.layers[0];
    let ctx = CkksContext::new(
        Parameters::new_insecure(ParametersLiteral::insecure_test(11, 3)).unwrap(),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let eval = Evaluator::new(&ctx, EvaluationKeySet::new()).unwrap();
    let scale = ctx.params().default_scale();
    let x = ColumnMatrix::encrypt(
        &ctx,
        &sk,
        layer.attn_norm.as_slice(),
        tokens.len(),
        3,
        scale,
        &mut rng,
    )
    .unwrap();
    let w = &model.layers()[0];
    for (proj, expect) in [
        (&w.q_proj, &layer.q),
        (&w.k_proj, &layer.k),
        (&w.v_proj, &layer.v),
    ] {
        let before = eval.op_count();
        let y = ternary_linear(&eval, &x, proj.as_ternary().unwrap()).unwrap();
        let ops = eval.op_count() - before;
        // Additions only: no product, no rotation, no level.
        assert_eq!(
            ops.plain_mul + ops.tensor + ops.rescale + ops.key_switches(),
            0
        );
        assert_eq!(y.level(), 3);
        let got = y.decrypt(&ctx, &sk).unwrap();
        let e = rel_err(expect.as_slice(), &got);
        assert!(e < 1e-6, "projection error {e}");
    }
    // RoPE on the queries: one level (its output scale is matched by a checked snap).
    let q = ternary_linear(&eval, &x, w.q_proj.as_ternary().unwrap()).unwrap();
    let r = rope(&eval, &q, cfg.head_dim, cfg.rope_theta, 1.0, scale).unwrap();
    assert_eq!(r.level(), 2);
    let got = r.decrypt(&ctx, &sk).unwrap();
    let e = rel_err(layer.q_rope.as_slice(), &got);
    assert!(e < 1e-6, "RoPE error {e}");
}

#[test]
fn causal_sigmoid_attention_matches_the_reference() {
    use ensi_ckks::KeyRequest;
    use ensi_nn::attention::{attention_rotations, causal_sigmoid_attention, sigmoid_poly};
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    // Six tokens: the period is 8, so two padding slots per period exercise the mask.
    let tokens = [72u32, 101, 108, 108, 111, 32];
    let n = tokens.len();
    let trace = reference(&tokens);
    let layer = &trace.layers[0];
    let ctx = CkksContext::new(
        Parameters::new_insecure(ParametersLiteral::insecure_test(11, 12)).unwrap(),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let request = KeyRequest::new()
        .with_relinearization()
        .with_rotations(&ctx, &attention_rotations(n));
    let eval = Evaluator::new(
        &ctx,
        EvaluationKeySet::generate(&ctx, &sk, &request, &mut rng).unwrap(),
    )
    .unwrap();
    let scale = ctx.params().default_scale();
    let top = ctx.max_level();
    let d = cfg.head_dim;
    // The client-side reference tensors, 1/sqrt(d) folded into the queries.
    let inv_sqrt = 1.0 / (d as f64).sqrt();
    let q_scaled: Vec<f64> = layer
        .q_rope
        .as_slice()
        .iter()
        .map(|x| x * inv_sqrt)
        .collect();
    let enc = |m: &[f64], rng: &mut ChaCha20Rng| {
        ColumnMatrix::encrypt(&ctx, &sk, m, n, top, scale, rng).unwrap()
    };
    let q = enc(&q_scaled, &mut rng);
    let k = enc(layer.k_rope.as_slice(), &mut rng);
    let v = enc(layer.v.as_slice(), &mut rng);
    // The interval: every score the diagonals see (all pairs, wrapped ones included), plus a
    // margin; the bias -ln n inside the polynomial.
    let (lo, hi) = layer
        .scores
        .iter()
        .flat_map(|s| s.as_slice().iter())
        .fold((0.0f64, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    let margin = 0.1 * (hi - lo);
    let bias = -(n as f64).ln();
    let reference_out = layer.attn_output.as_slice();
    let mut errors = Vec::new();
    for degree in [16usize, 31] {
        let poly = sigmoid_poly(bias, lo - margin, hi + margin, degree);
        let out = causal_sigmoid_attention(&eval, &q, &k, &v, d, &poly, 0.0, scale).unwrap();
        assert_eq!(out.cols(), cfg.num_attention_heads * d);
        let got = out.decrypt(&ctx, &sk).unwrap();
        errors.push(rel_err(reference_out, &got));
    }
    eprintln!(
        "attention relative error: degree 16 {:.2e}, degree 31 {:.2e}",
        errors[0], errors[1]
    );
    // On this model's narrow score interval both degrees are far below the noise of the
    // inputs; the reference's exact sigmoid is the target.
    assert!(errors.iter().all(|&e| e < 1e-6), "{errors:?}");
}

#[test]
fn rms_norm_with_a_bootstrapped_statistic_matches_the_reference() {
    use ensi_ckks::{BootstrapKeys, BootstrapParametersLiteral, Bootstrapper};
    use ensi_nn::norm::{NormPlan, rms_norm};
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let tokens = [72u32, 101, 108, 108, 111, 32];
    let trace = reference(&tokens);
    let layer = &trace.layers[0];
    // N = 2^12, 10 levels after bootstrapping (INSECURE, for tests).
    let mut literal = ParametersLiteral::insecure_bootstrap_test(12, 10, 9);
    literal.dnum = 8;
    let ctx = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
    let lit = BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        ..BootstrapParametersLiteral::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let bts = Bootstrapper::new(&ctx, lit, keys).unwrap();
    let scale = ctx.params().default_scale();
    let x = ColumnMatrix::encrypt(
        &ctx,
        &sk,
        layer.input.as_slice(),
        tokens.len(),
        4,
        scale,
        &mut rng,
    )
    .unwrap();
    // The calibrated interval of mean(x^2) + eps over the tokens, with a margin.
    let d = cfg.hidden_size;
    let stats: Vec<f64> = (0..tokens.len())
        .map(|t| {
            let row = layer.input.row(t);
            row.iter().map(|v| v * v).sum::<f64>() / d as f64 + cfg.rms_norm_eps
        })
        .collect();
    let (lo, hi) = stats
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let plan = NormPlan {
        lo: lo * 0.8,
        hi: hi * 1.25,
        degree: 31,
    };
    let gamma = &model.layers()[0].input_layernorm;
    let e = bts.evaluator();
    let before = e.op_count();
    let y = rms_norm(&bts, &x, gamma, cfg.rms_norm_eps, &plan, scale).unwrap();
    assert_eq!((e.op_count() - before).bootstrap, 1);
    let got = y.decrypt(&ctx, &sk).unwrap();
    let err = rel_err(layer.attn_norm.as_slice(), &got);
    eprintln!(
        "RMSNorm relative error {err:.2e}, output level {}",
        y.level()
    );
    assert!(err < 1e-4, "{err}");
}

#[test]
fn the_server_side_lm_head_matches_the_plaintext_product() {
    use ensi_nn::decoder::lm_head;
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let tokens = [72u32, 101, 108];
    let trace = reference(&tokens);
    let ctx = CkksContext::new(
        Parameters::new_insecure(ParametersLiteral::insecure_test(11, 2)).unwrap(),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let eval = Evaluator::new(&ctx, EvaluationKeySet::new()).unwrap();
    let scale = ctx.params().default_scale();
    let h = ColumnMatrix::encrypt(
        &ctx,
        &sk,
        trace.final_hidden.as_slice(),
        tokens.len(),
        2,
        scale,
        &mut rng,
    )
    .unwrap();
    let logits = lm_head(&eval, &h, model.lm_head(), cfg.vocab_size).unwrap();
    assert_eq!(logits.cols(), cfg.vocab_size);
    assert_eq!(logits.level(), 1);
    let got = logits.decrypt(&ctx, &sk).unwrap();
    let e = rel_err(trace.logits.as_slice(), &got);
    assert!(e < 1e-6, "{e}");
}
