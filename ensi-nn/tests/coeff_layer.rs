//! A decoder layer with every projection on the coefficient kernel (`ensi_nn::coeff_layer`)
//! against the plaintext reference layer of the embedded model (sigmoid attention, activation
//! quantization off), at small INSECURE bootstrappable parameters: a padded prompt (6 tokens in
//! 8 rows), the FFN in two chunks at N = 2^12; the level plan written down is the one the run
//! goes through, and so is its bootstrap count.
#![allow(clippy::unwrap_used)]

use ensi_bitnet::ops::AttentionKind;
use ensi_bitnet::{ForwardOptions, embedded_model};
use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext, EvaluationKeySet,
    KeyRequest, Parameters, ParametersLiteral, SecretKey,
};
use ensi_nn::block::ChunkedMatrix;
use ensi_nn::block_layer::pad_prompt;
use ensi_nn::coeff_layer::{
    COEFF_STEPS, CoeffBounds, coeff_layer_keys, coeff_layer_logged, coeff_level_plan,
    coeff_stream_level,
};
use ensi_nn::decoder::calibrate;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn a_coefficient_kernel_layer_matches_the_reference_layer() {
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let mut literal = ParametersLiteral::insecure_bootstrap_test(12, 10, 9);
    literal.dnum = 8;
    let ctx = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
    let lit = BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        log_eval_scale: Some(60),
        ..BootstrapParametersLiteral::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(35);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let (rotations, level0) = coeff_layer_keys(&cfg, ctx.n(), 8).unwrap();
    let extra = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new()
            .with_rotations(&ctx, &rotations)
            .with_level0_galois_elements(&level0),
        &mut rng,
    )
    .unwrap();
    for key in extra.into_keys() {
        keys.insert(key);
    }
    let budget = lit.stc_level_budget;
    let bts = Bootstrapper::new(&ctx, lit, keys).unwrap();

    let real: Vec<u32> = b"Hello ".iter().map(|&b| u32::from(b)).collect();
    let padded = pad_prompt(&real);
    let bias = -(real.len() as f64).ln();
    let trace = model
        .forward::<f64>(
            &padded,
            &ForwardOptions::new(AttentionKind::SigmoidBias(bias), false),
        )
        .unwrap();
    let layer = &model.layers()[0];
    let plan = calibrate(&[&trace.layers[0]], &cfg, 0.1, 31, 31);
    let bounds = CoeffBounds::calibrate(&[&trace.layers[0]], layer, 2.0).unwrap();
    let level = coeff_stream_level(bts.output_level(), budget);
    let x = ChunkedMatrix::encrypt(
        &ctx,
        &sk,
        trace.layers[0].input.as_slice(),
        8,
        level,
        ctx.params().default_scale(),
        &mut rng,
    )
    .unwrap();
    let e = bts.evaluator();
    let before = e.op_count();
    let mut seen = Vec::new();
    let out = coeff_layer_logged(
        &bts,
        &x,
        layer,
        &cfg,
        &plan,
        &bounds,
        real.len(),
        &mut |s, l| seen.push((s, l)),
    )
    .unwrap();
    let ops = e.op_count() - before;
    let (predicted, bootstraps) = coeff_level_plan(&bts, level, &cfg, &plan, 8).unwrap();
    for (step, level) in &predicted {
        eprintln!("  {step:<45} level {level}");
    }
    assert_eq!(seen, predicted);
    assert_eq!(predicted.len(), COEFF_STEPS.len());
    assert_eq!(ops.bootstrap, bootstraps);
    // The residual stream keeps its level through the layer.
    assert_eq!(out.level(), level);

    let got = out.decrypt(&ctx, &sk).unwrap();
    let reference = model
        .forward::<f64>(&real, &ForwardOptions::new(AttentionKind::Sigmoid, false))
        .unwrap();
    let expect = &reference.layers[0].output;
    let d = expect.cols();
    let e = &expect.as_slice()[..real.len() * d];
    let max = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = e
        .iter()
        .zip(&got)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / max;
    eprintln!(
        "coefficient layer: relative error {err:.2e} ({:.1} bits), {} bootstraps, {} key switches",
        -err.log2(),
        ops.bootstrap,
        ops.key_switches()
    );
    // The polynomials' own error on this prompt is 2.5e-3 (the slot plan's layer measures the
    // same); a wrong gain, mask or bound would be far above it.
    assert!(err < 4e-3, "{err}");
}

/// The coefficient plan's counts for bitnet_b1_58-large's layer at N = 2^16 and 8 tokens,
/// worked by hand (4096 columns per chunk, a packing of up to 8192 rows), its prediction from
/// step costs, and the planner's choice between the two plans.
#[test]
fn the_coefficient_plan_is_counted_priced_and_chosen() {
    use ensi_nn::coeff_kernel::coeff_linear_counts;
    use ensi_nn::plan::{CoeffCosts, LayerKernel, LayerPrediction, predict_coeff_layer};
    let mut cfg = ensi_bitnet::embedded_config();
    cfg.hidden_size = 1536;
    cfg.intermediate_size = 4096;
    cfg.num_attention_heads = 16;
    cfg.num_key_value_heads = 16;
    cfg.head_dim = 96;
    let (n, n_pad) = (1usize << 16, 8);
    // q, k, v: 3 x 2048 head-layout rows (96 dimensions padded to 128) in one packing of 6144
    // rows: L = 4096 leaves, one product each (1536 columns are one input chunk), 4095 merges
    // and no trace step (L = the chunk); rotations: q's doubling (period 2048 * 8 = 16384), k's
    // real part by 2048 * 8 and its doubling, v (from row 4096: the imaginary half's start)
    // its doubling.
    assert_eq!(
        coeff_linear_counts(n, 1536, &[2048, 2048, 2048], n_pad).unwrap(),
        [1, 4096, 4095, 1, 4]
    );
    // With the head layout's padding (dimensions 96..128: rows 1536..2048 of each) as zero
    // rows: the leaves whose rows r (lower, below 4096) and 4096 + r (upper) are both padding
    // or absent are skipped: r in 1536..2048 (q's padding and v's) and r in 3584..4096 (k's
    // padding, no upper row), two whole subtrees of 512 leaves (their leaf indices, r
    // bit-reversed, share their low three bits): 3072 products, 4095 - 2 * 511 merges.
    use ensi_nn::coeff_kernel::coeff_linear_counts_with;
    assert_eq!(
        coeff_linear_counts_with(n, 1536, &[2048, 2048, 2048], n_pad, &|_, rho| rho >= 1536)
            .unwrap(),
        [1, 3072, 3073, 1, 4]
    );
    // o: 1536 rows from the 2048 head-layout columns: L = 1024, 1023 merges + log2(4096 / 1024);
    // the imaginary half's rows moved behind the real ones, one doubling. down: the same from
    // 4096 columns.
    for cols in [2048, 4096] {
        assert_eq!(
            coeff_linear_counts(n, cols, &[1536], n_pad).unwrap(),
            [1, 1024, 1025, 1, 2]
        );
    }
    // gate and up: 8192 rows, the real half gate and the imaginary half up, both filling the
    // slots: no rotation.
    assert_eq!(
        coeff_linear_counts(n, 1536, &[4096, 4096], n_pad).unwrap(),
        [1, 4096, 4095, 1, 0]
    );
    let costs = CoeffCosts {
        slots_to_coeffs: 0.4,
        integer_product: 2e-4,
        pack_step: 1.5e-3,
        coeff_bootstrap: 4.5,
        rotate: 0.03,
    };
    let p = predict_coeff_layer(&costs, 5.0, &cfg, n, n_pad).unwrap();
    assert_eq!(p.bootstraps, 6);
    // Products 3072 + 1024 + 4096 + 1024, key switches 3073 + 1025 + 4095 + 1025.
    let kernels = 4.0 * 0.4 + 9216.0 * 2e-4 + 9218.0 * 1.5e-3 + 4.0 * 4.5 + 8.0 * 0.03;
    assert!(
        (p.projections_s - kernels).abs() < 1e-9,
        "{}",
        p.projections_s
    );
    assert!((p.total_s - kernels - 10.0).abs() < 1e-9);
    let slot = |total_s: f64| LayerPrediction {
        projections: Vec::new(),
        projections_s: 0.0,
        bootstraps: 6,
        bootstrap_s: total_s,
        total_s,
    };
    assert_eq!(
        LayerKernel::choose(&slot(p.total_s + 1.0), Some(&p)),
        LayerKernel::Coeff
    );
    assert_eq!(
        LayerKernel::choose(&slot(p.total_s - 1.0), Some(&p)),
        LayerKernel::Slots
    );
    assert_eq!(LayerKernel::choose(&slot(1e9), None), LayerKernel::Slots);
}
