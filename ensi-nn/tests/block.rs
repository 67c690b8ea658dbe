//! The column-block layout against the plaintext reference forward pass of the embedded model
//! (sigmoid attention, activation quantization off): the folded projections and attention of
//! the first layer and the inline RMSNorm at small insecure parameters, and a whole layer with
//! bootstrapping.
#![allow(clippy::unwrap_used)]

use ensi_bitnet::ops::AttentionKind;
use ensi_bitnet::{ForwardOptions, Matrix, Trace, embedded_model};
use ensi_ckks::{
    CkksContext, EvaluationKeySet, Evaluator, KeyRequest, Parameters, ParametersLiteral, SecretKey,
};
use ensi_nn::block::{BlockMatrix, ChunkedMatrix};
use ensi_nn::block_layer::{
    attention_block, block_rotations, normalize_inline, pad_prompt, rope_in_slots, rope_rotations,
};
use ensi_nn::decoder::calibrate;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn reference(tokens: &[u32]) -> Trace<f64> {
    let model = embedded_model().unwrap();
    model
        .forward::<f64>(tokens, &ForwardOptions::new(AttentionKind::Sigmoid, false))
        .unwrap()
}

/// Max abs error over the first `rows` rows, relative to the largest reference magnitude.
fn rel_err(expect: &Matrix<f64>, got: &[f64], rows: usize) -> f64 {
    let cols = expect.cols();
    let e = &expect.as_slice()[..rows * cols];
    let max = e.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    e.iter()
        .zip(&got[..rows * cols])
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / max
}

/// `x / sqrt(mean(x^2) + eps)` row by row, in f64.
fn unit_rows(x: &Matrix<f64>, eps: f64) -> Vec<f64> {
    let mut out = Vec::new();
    for r in 0..x.rows() {
        let row = x.row(r);
        let rms = (row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64 + eps).sqrt();
        out.extend(row.iter().map(|v| v / rms));
    }
    out
}

/// N = 2^13 (4096 slots: the embedded model's 320-wide FFN times 8 tokens), 10 levels of
/// 40 bits, INSECURE.
fn leveled() -> std::sync::Arc<CkksContext> {
    leveled_at(13)
}

/// N = 2^log_n, 10 levels of 40 bits, INSECURE. At 2^10 (512 slots: 64 columns per chunk at 8
/// tokens) the embedded model's activations are chunked: two chunks for the hidden state and
/// the head layout, five for the FFN.
fn leveled_at(log_n: u32) -> std::sync::Arc<CkksContext> {
    CkksContext::new(Parameters::new_insecure(ParametersLiteral::insecure_test(log_n, 10)).unwrap())
        .unwrap()
}

/// The ring degrees the leveled tests run at: one ciphertext per activation, and chunks.
const RINGS: [u32; 2] = [13, 10];

/// A secret key and an evaluator with relinearization and the rotations of the column-block
/// layers for 8 tokens, plus `extra`.
fn keys(
    ctx: &std::sync::Arc<CkksContext>,
    cfg: &ensi_bitnet::ModelConfig,
    extra: &[isize],
    rng: &mut ChaCha20Rng,
) -> (SecretKey, Evaluator) {
    let sk = SecretKey::generate(ctx, rng).unwrap();
    let mut rotations = block_rotations(cfg, 8, ctx.n() / 2, false).unwrap();
    rotations.extend_from_slice(extra);
    let request = KeyRequest::new()
        .with_relinearization()
        .with_rotations(ctx, &rotations);
    let eval = Evaluator::new(
        ctx,
        EvaluationKeySet::generate(ctx, &sk, &request, rng).unwrap(),
    )
    .unwrap();
    (sk, eval)
}

/// The projections (RoPE, GQA, head layout, gains and scales folded into the diagonals) and
/// causal sigmoid attention, from the reference's own normalized input: against the
/// reference's attention output, for a prompt of 8 tokens and for one of 6 padded to 8.
#[test]
fn folded_projections_and_attention_match_the_reference() {
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    for (log_n, prompt) in RINGS
        .iter()
        .flat_map(|&r| [(r, &b"ENSI run"[..]), (r, &b"Hello "[..])])
    {
        let ctx = leveled_at(log_n);
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        let (sk, eval) = keys(&ctx, &cfg, &[], &mut rng);
        let (h, hd) = (cfg.num_attention_heads, cfg.head_dim);
        let real: Vec<u32> = prompt.iter().map(|&b| u32::from(b)).collect();
        let padded = pad_prompt(&real);
        assert_eq!(padded.len(), 8);
        let bias = AttentionKind::SigmoidBias(-(real.len() as f64).ln());
        let trace = model
            .forward::<f64>(&padded, &ForwardOptions::new(bias, false))
            .unwrap();
        let layer = &trace.layers[0];
        let plan = calibrate(&[layer], &cfg, 0.1, 31, 31);
        let y1 = unit_rows(&layer.input, cfg.rms_norm_eps);
        let x = ChunkedMatrix::encrypt(
            &ctx,
            &sk,
            &y1,
            8,
            ctx.max_level(),
            ctx.params().default_scale(),
            &mut rng,
        )
        .unwrap();
        let mut levels = Vec::new();
        let o = attention_block(
            &eval,
            &x,
            &model.layers()[0],
            &cfg,
            &plan,
            real.len(),
            &mut |s, l| levels.push((s, l)),
        )
        .unwrap();
        let got_head = o.decrypt(&ctx, &sk).unwrap();
        // Head layout (column c * H + h) back to the model's (h * hd + c).
        let q = cfg.q_dim();
        let got: Vec<f64> = (0..8 * q)
            .map(|i| {
                let (t, m) = (i / q, i % q);
                got_head[t * q + (m % hd) * h + m / hd]
            })
            .collect();
        // The reference of the real prompt alone (causality: the padding changes nothing).
        let expect = reference(&real).layers[0].attn_output.clone();
        let err = rel_err(&expect, &got, real.len());
        eprintln!(
            "N = 2^{log_n}, {} tokens, {} chunks: attention output error {err:.2e}, levels \
             {levels:?}",
            real.len(),
            o.parts().len()
        );
        assert!(err < 1e-3, "{err}");
        // The padding rows compute exactly what the last real row computes.
        let last =
            Matrix::from_vec(1, q, got[(real.len() - 1) * q..real.len() * q].to_vec()).unwrap();
        for t in real.len()..8 {
            let e = rel_err(&last, &got[t * q..(t + 1) * q], 1);
            assert!(e < 1e-5, "padding row {t}: {e}");
        }
        assert_eq!(levels[0].1, ctx.max_level() - 1);
        assert_eq!(o.level() + 1, levels[1].1);
    }
}

/// A head dimension that is not a power of two (24, as 96 in bitnet_b1_58-large), padded to
/// 32 in the head layout, with a head count (3) padded to 4 and GQA: the folded projections
/// and attention of a random model's first layer against its reference attention output.
#[test]
fn padded_head_dimension_matches_the_reference() {
    let mut cfg = embedded_model().unwrap().config().clone();
    cfg.hidden_size = 72;
    cfg.intermediate_size = 160;
    cfg.num_attention_heads = 3;
    cfg.num_key_value_heads = 1;
    cfg.head_dim = 24;
    cfg.num_hidden_layers = 1;
    let model = ensi_bitnet::random_model(cfg.clone(), 5, false).unwrap();
    let ctx = leveled();
    let mut rng = ChaCha20Rng::seed_from_u64(32);
    let (sk, eval) = keys(&ctx, &cfg, &[], &mut rng);
    let (h, hd, q) = (cfg.num_attention_heads, cfg.head_dim, cfg.q_dim());
    let (h_pad, hd_pad) = (h.next_power_of_two(), hd.next_power_of_two());
    let tokens: Vec<u32> = b"padded h".iter().map(|&b| u32::from(b)).collect();
    let bias = AttentionKind::SigmoidBias(-(tokens.len() as f64).ln());
    let trace = model
        .forward::<f64>(&tokens, &ForwardOptions::new(bias, false))
        .unwrap();
    let layer = &trace.layers[0];
    let plan = calibrate(&[layer], &cfg, 0.1, 31, 31);
    let y1 = unit_rows(&layer.input, cfg.rms_norm_eps);
    let x = ChunkedMatrix::encrypt(
        &ctx,
        &sk,
        &y1,
        8,
        ctx.max_level(),
        ctx.params().default_scale(),
        &mut rng,
    )
    .unwrap();
    let o = attention_block(
        &eval,
        &x,
        &model.layers()[0],
        &cfg,
        &plan,
        tokens.len(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(o.cols(), h_pad * hd_pad);
    let got_head = o.decrypt(&ctx, &sk).unwrap();
    // Head layout (column c * H' + h over the padded heads and dimensions) back to h * hd + c.
    let got: Vec<f64> = (0..8 * q)
        .map(|i| {
            let (t, m) = (i / q, i % q);
            got_head[t * o.cols() + (m % hd) * h_pad + m / hd]
        })
        .collect();
    let err = rel_err(&layer.attn_output, &got, 8);
    eprintln!("head dim {hd} padded to {hd_pad}: attention output error {err:.2e}");
    assert!(err < 1e-3, "{err}");
    // The padding columns (heads and dimensions) stay zero.
    for t in 0..8 {
        for rho in 0..o.cols() {
            if rho % h_pad >= h || rho / h_pad >= hd {
                assert!(got_head[t * o.cols() + rho].abs() < 1e-6, "{t} {rho}");
            }
        }
    }
}

/// RMSNorm inline (statistic, inverse square root on the calibrated interval, product)
/// against `x / rms(x)` in f64.
#[test]
fn inline_rms_norm_matches_the_reference() {
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let tokens: Vec<u32> = b"Encrypt!".iter().map(|&b| u32::from(b)).collect();
    let trace = reference(&tokens);
    let layer = &trace.layers[1];
    let plan = calibrate(&[layer], &cfg, 0.1, 31, 31);
    // The hidden state (one chunk, then two) and the FFN's hidden product (one, then five
    // chunks of two widths: 4 x 64 and 64 at N = 2^10; 320 wide at 2^13).
    for log_n in RINGS {
        let ctx = leveled_at(log_n);
        let mut rng = ChaCha20Rng::seed_from_u64(32);
        let (sk, eval) = keys(&ctx, &cfg, &[], &mut rng);
        let scale = ctx.params().default_scale();
        for (m, norm, d) in [
            (&layer.input, &plan.norms[0], cfg.hidden_size),
            (&layer.attn_residual, &plan.norms[2], cfg.hidden_size),
            (&layer.ffn_act, &plan.norms[3], cfg.intermediate_size),
        ] {
            let x = ChunkedMatrix::encrypt(
                &ctx,
                &sk,
                m.as_slice(),
                8,
                ctx.max_level(),
                scale,
                &mut rng,
            )
            .unwrap();
            let y = normalize_inline(&eval, &x, d, norm, cfg.rms_norm_eps, scale / 4.0).unwrap();
            assert_eq!(y.scale(), scale / 4.0);
            let got = y.decrypt(&ctx, &sk).unwrap();
            let expect = Matrix::from_vec(8, d, unit_rows(m, cfg.rms_norm_eps)).unwrap();
            let err = rel_err(&expect, &got, 8);
            eprintln!(
                "N = 2^{log_n}, width {d} in {} chunks: inline norm error {err:.2e}, level {}",
                y.parts().len(),
                y.level()
            );
            assert!(err < 1e-3, "{err}");
        }
    }
}

/// A whole layer with bootstrapping (N = 2^13 and 2^10, 10 levels after bootstrapping, INSECURE)
/// against the reference layer; the level plan the code writes down is the one the run goes
/// through, and so is its bootstrap count. Run in release mode:
/// `cargo test --release -p ensi-nn --test block -- --ignored`.
#[test]
#[ignore = "heavy: run in release mode with --ignored"]
fn one_block_layer_with_bootstrapping_matches_the_reference() {
    use ensi_ckks::{BootstrapKeys, BootstrapParametersLiteral, Bootstrapper};
    use ensi_nn::block_layer::{block_layer_logged, block_level_plan};
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    // One ciphertext per activation (2^13), then chunks refreshed in pairs (2^10: the hidden
    // state and the head layout in two chunks, the FFN in five).
    for log_n in RINGS {
        let mut literal = ParametersLiteral::insecure_bootstrap_test(log_n, 10, 9);
        literal.dnum = 8;
        let ctx = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
        let lit = BootstrapParametersLiteral {
            cts_level_budget: 2,
            stc_level_budget: 2,
            ..BootstrapParametersLiteral::default()
        };
        let mut rng = ChaCha20Rng::seed_from_u64(33);
        let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
        let mut keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
        let slots = ctx.n() / 2;
        let extra = EvaluationKeySet::generate(
            &ctx,
            &sk,
            &KeyRequest::new()
                .with_rotations(&ctx, &block_rotations(&cfg, 8, slots, false).unwrap()),
            &mut rng,
        )
        .unwrap();
        for key in extra.into_keys() {
            keys.insert(key);
        }
        let bts = Bootstrapper::new(&ctx, lit, keys).unwrap();
        let real: Vec<u32> = b"Hello ".iter().map(|&b| u32::from(b)).collect();
        let padded = pad_prompt(&real);
        // The padded prompt with the real prompt's sigmoid bias, as the encrypted layer computes
        // it: calibration must see the padding rows the bootstraps will see.
        let bias = -(real.len() as f64).ln();
        let trace = model
            .forward::<f64>(
                &padded,
                &ForwardOptions::new(AttentionKind::SigmoidBias(bias), false),
            )
            .unwrap();
        let plan = calibrate(&[&trace.layers[0]], &cfg, 0.1, 31, 31);
        let x = ChunkedMatrix::encrypt(
            &ctx,
            &sk,
            trace.layers[0].input.as_slice(),
            8,
            bts.output_level(),
            ctx.params().default_scale(),
            &mut rng,
        )
        .unwrap();
        let e = bts.evaluator();
        let before = e.op_count();
        let start = std::time::Instant::now();
        let mut seen = Vec::new();
        let out = block_layer_logged(
            &bts,
            &x,
            &model.layers()[0],
            &cfg,
            &plan,
            real.len(),
            &mut |s, l| seen.push((s, l)),
        )
        .unwrap();
        let ops = e.op_count() - before;
        let (predicted, bootstraps) = block_level_plan(&bts, x.level(), &cfg, &plan, 8).unwrap();
        for (step, level) in &predicted {
            eprintln!("  {step:<40} level {level}");
        }
        assert_eq!(seen, predicted);
        assert_eq!(ops.bootstrap, bootstraps);
        let got = out.decrypt(&ctx, &sk).unwrap();
        let expect = reference(&real).layers[0].output.clone();
        let err = rel_err(&expect, &got, real.len());
        eprintln!(
            "N = 2^{log_n}: block layer 0 in {} chunks: relative error {err:.2e}, {:.1} s, {} \
             bootstraps, {} key switches",
            x.parts().len(),
            start.elapsed().as_secs_f64(),
            ops.bootstrap,
            ops.key_switches()
        );
        assert!(err < 1e-2, "{err}");
    }
}

/// The two layouts against each other: the query projection by signed sums in the column
/// layout and by a streamed BSGS product in the column-block layout, each converted into the
/// other layout homomorphically, agree with each other and with the reference's `q`.
#[test]
fn both_layouts_agree_through_the_conversions() {
    use ensi_nn::block::{
        block_linear, block_to_column, block_to_column_rotations, column_to_block,
    };
    use ensi_nn::column::{ColumnMatrix, ternary_linear};
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let ctx = leveled();
    let mut rng = ChaCha20Rng::seed_from_u64(34);
    let (sk, eval) = keys(
        &ctx,
        &cfg,
        &block_to_column_rotations(cfg.q_dim(), 8),
        &mut rng,
    );
    let tokens: Vec<u32> = b"Layouts!".iter().map(|&b| u32::from(b)).collect();
    let trace = reference(&tokens);
    let layer = &trace.layers[0];
    let w = model.layers()[0].q_proj.as_ternary().unwrap();
    let mult = w.scale().multiplier::<f64>();
    let (top, scale) = (ctx.max_level(), ctx.params().default_scale());
    let xc = ColumnMatrix::encrypt(
        &ctx,
        &sk,
        layer.attn_norm.as_slice(),
        8,
        top,
        scale,
        &mut rng,
    )
    .unwrap();
    let xb = BlockMatrix::encrypt(
        &ctx,
        &sk,
        layer.attn_norm.as_slice(),
        8,
        top,
        scale,
        &mut rng,
    )
    .unwrap();
    let qc = ternary_linear(&eval, &xc, w).unwrap();
    let qb = block_linear(
        &eval,
        &xb,
        cfg.q_dim(),
        |r, c, _| mult * f64::from(w.get(r, c)),
        scale,
    )
    .unwrap();
    let expect = &layer.q;
    // Column -> block, against the block layout's own product.
    let qcb = column_to_block(&eval, &qc)
        .unwrap()
        .decrypt(&ctx, &sk)
        .unwrap();
    let qb_plain = qb.decrypt(&ctx, &sk).unwrap();
    let e1 = rel_err(expect, &qcb, 8);
    let e2 = rel_err(expect, &qb_plain, 8);
    let cross = rel_err(
        &Matrix::from_vec(8, cfg.q_dim(), qb_plain.clone()).unwrap(),
        &qcb,
        8,
    );
    // Block -> column, against the column layout's own product.
    let qbc = block_to_column(&eval, &qb)
        .unwrap()
        .decrypt(&ctx, &sk)
        .unwrap();
    let e3 = rel_err(expect, &qbc, 8);
    eprintln!(
        "column->block {e1:.2e}, block {e2:.2e}, between them {cross:.2e}, block->column {e3:.2e}"
    );
    for e in [e1, e2, cross, e3] {
        assert!(e < 1e-6, "{e}");
    }
}

/// Generation through the encrypted key/value cache, attention only (no bootstrap): the prompt
/// "Hello " (6 tokens, capacity 8) stores its keys and values, then two new tokens at
/// positions 6 and 7 each attend through the cache with one sigmoid. Every row of a new
/// token's output must be the reference's attention output of that token in the whole
/// sequence ("Hello w", "Hello wo"); position 7 uses every wrapped rotation. (The first
/// layer's keys and values depend on the embeddings alone, so the cached ones are exactly
/// those of the whole sequence; later layers' depend on the sigmoid bias `-ln n` of the
/// length they were computed at: the whole-model test below compares those with
/// `generate_greedy_cached`.)
#[test]
fn new_tokens_attend_through_the_cache() {
    use ensi_nn::block_layer::{LayerCache, Rows, attention_rows, step_rotations};
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    for log_n in RINGS {
        let ctx = leveled_at(log_n);
        let mut rng = ChaCha20Rng::seed_from_u64(34);
        let (sk, eval) = keys(&ctx, &cfg, &step_rotations(8), &mut rng);
        let (h, hd, q) = (cfg.num_attention_heads, cfg.head_dim, cfg.q_dim());
        let scale = ctx.params().default_scale();
        let text = b"Hello wo";
        let all: Vec<u32> = text.iter().map(|&b| u32::from(b)).collect();
        // The head layout (column c * H + h) back to the model's (h * hd + c), row by row.
        let model_order = |got: &[f64], rows: usize| -> Vec<f64> {
            (0..rows * q)
                .map(|i| {
                    let (t, m) = (i / q, i % q);
                    got[t * q + (m % hd) * h + m / hd]
                })
                .collect()
        };
        let mut cache: Option<LayerCache> = None;
        for len in 6..=8 {
            let seq = &all[..len];
            let trace = reference(seq);
            let layer = &trace.layers[0];
            let plan = calibrate(&[layer], &cfg, 0.1, 31, 31);
            let y = unit_rows(&layer.input, cfg.rms_norm_eps);
            let (rows, input) = if len == 6 {
                // The prompt, padded to the capacity by repeating its last row.
                let mut p = y.clone();
                for _ in len..8 {
                    p.extend_from_slice(&y[(len - 1) * cfg.hidden_size..]);
                }
                (Rows::Prompt { tokens: len }, p)
            } else {
                // The new token in every row.
                let last = &y[(len - 1) * cfg.hidden_size..];
                (Rows::Step { position: len - 1 }, last.repeat(8))
            };
            let x = ChunkedMatrix::encrypt(&ctx, &sk, &input, 8, ctx.max_level(), scale, &mut rng)
                .unwrap();
            let mut levels = Vec::new();
            let o = attention_rows(
                &eval,
                &x,
                &model.layers()[0],
                &cfg,
                &plan,
                rows,
                Some(&mut cache),
                &mut |s, l| levels.push((s, l)),
            )
            .unwrap();
            let got = model_order(&o.decrypt(&ctx, &sk).unwrap(), 8);
            let expect = &layer.attn_output;
            let err = if len == 6 {
                rel_err(expect, &got, len)
            } else {
                // Every row holds the new token's output.
                let row = Matrix::from_vec(1, q, expect.row(len - 1).to_vec()).unwrap();
                (0..8)
                    .map(|t| rel_err(&row, &got[t * q..(t + 1) * q], 1))
                    .fold(0.0f64, f64::max)
            };
            eprintln!(
                "N = 2^{log_n}, {rows:?}: attention output error {err:.2e}, levels {levels:?}"
            );
            assert!(err < 1e-3, "{rows:?}: {err}");
            // The same levels as the prompt's attention.
            assert_eq!(levels[0].1, ctx.max_level() - 1);
            assert_eq!(o.level() + 1, levels[1].1);
        }
        // A full cache refuses another token.
        let x = ChunkedMatrix::encrypt(
            &ctx,
            &sk,
            &vec![0.1; 8 * cfg.hidden_size],
            8,
            9,
            scale,
            &mut rng,
        )
        .unwrap();
        let plan = calibrate(&[&reference(&all).layers[0]], &cfg, 0.1, 31, 31);
        let r = attention_rows(
            &eval,
            &x,
            &model.layers()[0],
            &cfg,
            &plan,
            Rows::Step { position: 8 },
            Some(&mut cache),
            &mut |_, _| {},
        );
        assert!(r.is_err());
    }
}

/// Greedy generation of 4 new tokens through the encrypted cache, the whole embedded model with
/// bootstrapping (N = 2^13, INSECURE): the prompt "ENSI" is run once at capacity 8, then each
/// new token is one round at its position. Each round's logits must be within 1 % of the
/// plaintext model of the same computation (`generate_greedy_cached`: sigmoid attention,
/// activation quantization off, earlier keys and values as they were computed), and the
/// tokens those of the plaintext greedy decoding that recomputes the whole sequence each step.
/// Run in release mode with `--ignored`.
#[test]
#[ignore = "heavy: run in release mode with --ignored"]
fn greedy_generation_through_the_cache_matches_the_reference() {
    use ensi_bitnet::{generate_greedy, generate_greedy_cached};
    use ensi_ckks::{BootstrapKeys, BootstrapParametersLiteral, Bootstrapper};
    use ensi_nn::block_layer::{
        block_prefill, block_step, generation_capacity, pad_prompt_to, step_rotations,
    };
    use ensi_nn::decoder::{calibrate_model, embed};
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let (d, vocab) = (cfg.hidden_size, cfg.vocab_size);
    let mut literal = ParametersLiteral::insecure_bootstrap_test(13, 10, 9);
    literal.dnum = 8;
    let ctx = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
    let lit = BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        ..BootstrapParametersLiteral::default()
    };
    let prompt: Vec<u32> = b"ENSI".iter().map(|&b| u32::from(b)).collect();
    let new_tokens = 4;
    let cap = generation_capacity(prompt.len(), new_tokens).unwrap();
    assert_eq!(cap, 8);
    let mut rng = ChaCha20Rng::seed_from_u64(35);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let slots = ctx.n() / 2;
    let mut rotations = block_rotations(&cfg, cap, slots, false).unwrap();
    rotations.extend(step_rotations(cap));
    let extra = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new().with_rotations(&ctx, &rotations),
        &mut rng,
    )
    .unwrap();
    for key in extra.into_keys() {
        keys.insert(key);
    }
    let bts = Bootstrapper::new(&ctx, lit, keys).unwrap();
    let exact = ForwardOptions::new(AttentionKind::Sigmoid, false);
    let recomputed = generate_greedy::<f64>(&model, &prompt, new_tokens, &exact).unwrap();
    let (cached, cached_logits) =
        generate_greedy_cached::<f64>(&model, &prompt, new_tokens, &exact).unwrap();
    // The plan of a sequence of n tokens: calibrated on the reference trace of the sequence
    // itself (the padding rows copy the last real row), with the sigmoid bias of n tokens.
    let plan_for = |seq: &[u32]| {
        let trace = model.forward::<f64>(seq, &exact).unwrap();
        calibrate_model(&[&trace], &cfg, 0.25, 31, 63)
    };
    // The client's side: the logits of a final hidden row (normalized, no gain).
    let client_logits = |row: &[f64]| -> Vec<f64> {
        (0..vocab)
            .map(|t| {
                (0..d)
                    .map(|c| {
                        f64::from(model.lm_head()[t * d + c]) * f64::from(model.norm()[c]) * row[c]
                    })
                    .sum()
            })
            .collect()
    };
    let scale = ctx.params().default_scale();
    let mut seq = prompt.clone();
    let x = ChunkedMatrix::encrypt(
        &ctx,
        &sk,
        &embed(&model, &pad_prompt_to(&prompt, cap)).unwrap(),
        cap,
        bts.output_level(),
        scale,
        &mut rng,
    )
    .unwrap();
    let start = std::time::Instant::now();
    let (hidden, mut cache) = block_prefill(
        &bts,
        &model,
        &x,
        &plan_for(&seq),
        prompt.len(),
        &mut |_| {},
        &mut |_, _| {},
    )
    .unwrap();
    let prefill_s = start.elapsed().as_secs_f64();
    assert_eq!((cache.len(), cache.capacity()), (prompt.len(), cap));
    let n = prompt.len();
    let mut row = hidden.decrypt(&ctx, &sk).unwrap()[(n - 1) * d..n * d].to_vec();
    let mut got = Vec::new();
    let mut round_s = Vec::new();
    loop {
        let logits = client_logits(&row);
        let expect = &cached_logits[got.len()];
        let max = expect.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = expect
            .iter()
            .zip(&logits)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        let token = ensi_bitnet::ops::argmax(&logits).unwrap() as u32;
        eprintln!(
            "position {}: next token {token} (cached reference {}, recomputed {}), logit error \
             {:.3}%",
            seq.len() - 1,
            cached[got.len()],
            recomputed[got.len()],
            100.0 * err / max
        );
        assert!(err < 0.01 * max, "{err} of {max}");
        got.push(token);
        seq.push(token);
        if got.len() == new_tokens {
            break;
        }
        // One round: the new token in every row, attending through the cache.
        let emb = embed(&model, &[token]).unwrap().repeat(cap);
        let x = ChunkedMatrix::encrypt(&ctx, &sk, &emb, cap, bts.output_level(), scale, &mut rng)
            .unwrap();
        let start = std::time::Instant::now();
        let hidden = block_step(
            &bts,
            &model,
            &x,
            &plan_for(&seq),
            &mut cache,
            &mut |_| {},
            &mut |_, _| {},
        )
        .unwrap();
        round_s.push(start.elapsed().as_secs_f64());
        assert_eq!(cache.len(), seq.len());
        let all = hidden.decrypt(&ctx, &sk).unwrap();
        // Every row holds the new token's final hidden state.
        for t in 1..cap {
            let spread = (0..d)
                .map(|c| (all[t * d + c] - all[c]).abs())
                .fold(0.0f64, f64::max);
            assert!(spread < 1e-2, "row {t} differs from row 0 by {spread}");
        }
        row = all[..d].to_vec();
    }
    eprintln!("prefill {prefill_s:.1} s, rounds {round_s:.1?} s");
    assert_eq!(got, cached);
    assert_eq!(got, recomputed);
}

/// A product too wide for one ciphertext (1100 inputs, 700 outputs of 8 tokens on 4096 slots:
/// chunks of 512 columns, 3 in and 2 out) against the f64 product, token by token.
#[test]
fn chunked_block_product_matches_the_dense_product() {
    use ensi_nn::block::{
        block_linear_chunked, block_linear_chunked_rotations, chunk_cols, chunks,
    };
    let ctx = leveled();
    let mut rng = ChaCha20Rng::seed_from_u64(34);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let (rows, cols, n) = (700usize, 1100usize, 8usize);
    let slots = ctx.n() / 2;
    let rotations = block_linear_chunked_rotations(slots, rows, cols, n).unwrap();
    let eval = Evaluator::new(
        &ctx,
        EvaluationKeySet::generate(
            &ctx,
            &sk,
            &KeyRequest::new().with_rotations(&ctx, &rotations),
            &mut rng,
        )
        .unwrap(),
    )
    .unwrap();
    let mut draw = || (rand_core::RngCore::next_u64(&mut rng) >> 11) as f64 / (1u64 << 53) as f64;
    let w: Vec<f64> = (0..rows * cols).map(|_| draw() - 0.5).collect();
    let x: Vec<f64> = (0..n * cols).map(|_| 2.0 * draw() - 1.0).collect();
    let chunk = chunk_cols(slots, n);
    assert_eq!(chunk, 512);
    let level = ctx.max_level();
    let delta = ctx.params().default_scale();
    let xs: Vec<BlockMatrix> = chunks(cols, chunk)
        .into_iter()
        .map(|(c0, width)| {
            let part: Vec<f64> = (0..n)
                .flat_map(|t| x[t * cols + c0..t * cols + c0 + width].to_vec())
                .collect();
            BlockMatrix::encrypt(
                &ctx,
                &sk,
                &part,
                n,
                level,
                delta,
                &mut ChaCha20Rng::seed_from_u64(c0 as u64),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(xs.len(), 3);
    let before = eval.op_count();
    let ys = block_linear_chunked(&eval, &xs, rows, |r, c, _| w[r * cols + c], delta).unwrap();
    assert_eq!(ys.len(), 2);
    // The planner's prediction is the count, operation by operation.
    assert_eq!(
        eval.op_count() - before,
        ensi_nn::plan::block_ops(slots, rows, cols, n).unwrap()
    );
    let mut worst = 0.0f64;
    for (y, (r0, height)) in ys.iter().zip(chunks(rows, chunk)) {
        assert_eq!(y.level(), level - 1);
        let got = y.decrypt(&ctx, &sk).unwrap();
        for t in 0..n {
            for r in 0..height {
                let expect: f64 = (0..cols)
                    .map(|c| w[(r0 + r) * cols + c] * x[t * cols + c])
                    .sum();
                worst = worst.max((got[t * height + r] - expect).abs());
            }
        }
    }
    eprintln!("chunked product: max error {worst:.2e}");
    assert!(worst < 1e-3, "{worst}");
}

/// The column layout's two products (ENSI's signed sums, NEXUS's plaintext-ciphertext
/// product) on a few output columns against the f64 product, and the planner's predicted
/// operations against the counted ones; the planner ranks by the costs it is given.
#[test]
fn column_products_match_and_are_counted_as_planned() {
    use ensi_bitnet::ternary::absmean_ternarize;
    use ensi_nn::column::{ColumnMatrix, nexus_column, signed_sum_column};
    use ensi_nn::plan::{
        ConcurrentCosts, Kernel, OpCosts, column_nexus_ops, column_signed_sum_ops, plan_projection,
    };
    let ctx = leveled();
    let mut rng = ChaCha20Rng::seed_from_u64(35);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let eval = Evaluator::new(&ctx, EvaluationKeySet::new()).unwrap();
    let (rows, cols, n) = (12usize, 40usize, 8usize);
    let mut draw = || (rand_core::RngCore::next_u64(&mut rng) >> 11) as f64 / (1u64 << 53) as f64;
    let latent: Vec<f32> = (0..rows * cols).map(|_| (draw() - 0.5) as f32).collect();
    let w = absmean_ternarize(rows, cols, &latent).unwrap();
    let x: Vec<f64> = (0..n * cols).map(|_| 2.0 * draw() - 1.0).collect();
    let xc = ColumnMatrix::encrypt(
        &ctx,
        &sk,
        &x,
        n,
        ctx.max_level(),
        ctx.params().default_scale(),
        &mut ChaCha20Rng::seed_from_u64(36),
    )
    .unwrap();
    let col = |j: usize| &xc.columns()[j];
    let sample = [0usize, 5, 11];
    let mult = w.scale().multiplier::<f64>();
    let before = eval.op_count();
    for &r in &sample {
        let y = signed_sum_column(&eval, &col, &w, r).unwrap();
        assert_eq!(y.level(), ctx.max_level());
        let got = ctx.decode(&sk.decrypt(&ctx, &y).unwrap()).unwrap();
        for t in 0..n {
            let expect: f64 = (0..cols)
                .map(|c| mult * f64::from(w.get(r, c)) * x[t * cols + c])
                .sum();
            assert!((got[t] - expect).abs() < 1e-6, "{r} {t}");
        }
    }
    assert_eq!(eval.op_count() - before, column_signed_sum_ops(&w, &sample));
    let before = eval.op_count();
    for &r in &sample {
        let weights: Vec<f64> = (0..cols).map(|c| f64::from(latent[r * cols + c])).collect();
        let y = nexus_column(&eval, &col, &weights).unwrap();
        assert_eq!(y.level(), ctx.max_level() - 1);
        let got = ctx.decode(&sk.decrypt(&ctx, &y).unwrap()).unwrap();
        for t in 0..n {
            let expect: f64 = (0..cols).map(|c| weights[c] * x[t * cols + c]).sum();
            assert!((got[t] - expect).abs() < 1e-5, "{r} {t}");
        }
    }
    assert_eq!(
        eval.op_count() - before,
        column_nexus_ops(sample.len(), cols)
    );
    // Additions free and products dear: the signed sums win; the other way round, the block
    // product's few products and rotations win.
    let slots = ctx.n() / 2;
    let cheap_adds = OpCosts {
        add: 1e-6,
        plain_mul: 1.0,
        encode: 1.0,
        const_mul: 1.0,
        rescale: 1.0,
        rotate: 1.0,
        hoisted_rotate: 1.0,
        hoist_precompute: 1.0,
        ..OpCosts::default()
    };
    assert_eq!(
        plan_projection(&cheap_adds, slots, &w, n).unwrap()[0].kernel,
        Kernel::ColumnSignedSums
    );
    let dear_adds = OpCosts {
        add: 1.0,
        const_mul: 1.0,
        ..OpCosts::default()
    };
    assert_eq!(
        plan_projection(&dear_adds, slots, &w, n).unwrap()[0].kernel,
        Kernel::BlockBsgs
    );
    // The column kernels run their columns side by side: where side-by-side costs are given
    // they price the additions, constant products and rescales, and the latencies do not.
    let side = OpCosts {
        add: 10.0,
        const_mul: 10.0,
        rescale: 10.0,
        concurrent: ConcurrentCosts {
            add: 1.0,
            const_mul: 2.0,
            rescale: 3.0,
            ..ConcurrentCosts::default()
        },
        ..OpCosts::default()
    };
    let plan = plan_projection(&side, slots, &w, n).unwrap();
    let nexus = plan
        .iter()
        .find(|p| p.kernel == Kernel::ColumnNexus)
        .unwrap();
    let (r, c) = (rows as f64, cols as f64);
    assert_eq!(nexus.seconds, r * (c - 1.0) + 2.0 * r * c + 3.0 * r);
    let sums = plan
        .iter()
        .find(|p| p.kernel == Kernel::ColumnSignedSums)
        .unwrap();
    assert_eq!(
        sums.seconds,
        sums.ops.add as f64 + 2.0 * sums.ops.const_mul as f64
    );
    // With the cost of a constant product added at once, NEXUS's products and additions are
    // priced as such pairs; the one product per row left over and the rescales as before.
    let mut paired = side;
    paired.concurrent.const_mul_then_add = 5.0;
    let plan = plan_projection(&paired, slots, &w, n).unwrap();
    let nexus = plan
        .iter()
        .find(|p| p.kernel == Kernel::ColumnNexus)
        .unwrap();
    assert_eq!(nexus.seconds, 5.0 * r * (c - 1.0) + 2.0 * r + 3.0 * r);
}

/// The planner's degrees. The inverse square root's relative error on the attention sub-norm
/// interval of a 32-token large-shape prompt (`[3.54e-4, 2.86e-2]`, ratio 81), against values
/// from an independent Chebyshev interpolation in Python (4.4e-4 at degree 31, 2.5e-7 at 63);
/// the planner then picks 63 for that norm at a 2^-20 target, the smallest degree elsewhere,
/// and never a degree the level plan (here: at most 63) rejects.
#[test]
fn the_planner_raises_a_degree_only_where_its_interval_needs_it() {
    use ensi_nn::norm::NormPlan;
    use ensi_nn::plan::{inv_sqrt_error, plan_degrees};
    let wide = NormPlan {
        lo: 3.54e-4,
        hi: 2.864e-2,
        degree: 31,
    };
    let e31 = inv_sqrt_error(&wide, 31);
    let e63 = inv_sqrt_error(&wide, 63);
    assert!((e31 / 4.4e-4 - 1.0).abs() < 0.1, "{e31}");
    assert!((e63 / 2.5e-7 - 1.0).abs() < 0.2, "{e63}");
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let tokens: Vec<u32> = b"Encrypt!".iter().map(|&b| u32::from(b)).collect();
    let mut plan = calibrate(&[&reference(&tokens).layers[0]], &cfg, 0.1, 31, 31);
    plan.norms[1] = wide;
    let fits = |p: &ensi_nn::decoder::LayerPlan| {
        p.sigmoid_degree <= 63 && p.act_degree <= 63 && p.norms.iter().all(|n| n.degree <= 63)
    };
    let planned = plan_degrees(&cfg, &plan, 8, 2f64.powi(-20), &[15, 31, 63, 127], &fits).unwrap();
    assert_eq!(planned.norms[1].degree, 63);
    for (i, n) in planned.norms.iter().enumerate() {
        assert!(
            inv_sqrt_error(n, n.degree) <= 2f64.powi(-20) || n.degree == 63,
            "norm {i}"
        );
        if n.degree > 15 {
            let smaller = NormPlan {
                degree: n.degree / 2,
                ..*n
            };
            assert!(
                inv_sqrt_error(&smaller, smaller.degree) > 2f64.powi(-20),
                "norm {i}"
            );
        }
    }
    assert!(fits(&planned));
}

/// The client's side of a chunked bundle: a 5 x 300 matrix on 512 slots (8 padded rows: chunks
/// of 64 columns, the last 44) gives five slot vectors, each `BlockMatrix::slot_values` of its
/// columns; they read back to the matrix, and wrong shapes are refused.
#[test]
fn chunk_slot_values_are_the_chunks_block_vectors_and_read_back() {
    let (tokens, cols, slots) = (5usize, 300usize, 512usize);
    let x: Vec<f64> = (0..tokens * cols)
        .map(|i| (i as f64 * 0.37).sin())
        .collect();
    let parts = ChunkedMatrix::slot_values(&x, tokens, cols, slots).unwrap();
    assert_eq!(parts.len(), 5);
    assert_eq!(ChunkedMatrix::chunk_count(slots, tokens, cols), 5);
    for (k, part) in parts.iter().enumerate() {
        let w = if k < 4 { 64 } else { 44 };
        let sub: Vec<f64> = (0..tokens)
            .flat_map(|t| x[t * cols + 64 * k..t * cols + 64 * k + w].iter().copied())
            .collect();
        assert_eq!(
            part,
            &BlockMatrix::slot_values(&sub, tokens, w, slots).unwrap()
        );
        // Slot c * 8 + t holds column 64 k + c of token t.
        assert_eq!(part[3 * 8 + 2], x[2 * cols + 64 * k + 3]);
    }
    assert_eq!(
        ChunkedMatrix::from_slot_values(&parts, tokens, cols).unwrap(),
        x
    );
    assert!(ChunkedMatrix::from_slot_values(&parts[..4], tokens, cols).is_err());
    assert!(ChunkedMatrix::slot_values(&x[1..], tokens, cols, slots).is_err());
}

/// A norm's input needs two levels (its statistic's square, then the product by the inverse
/// square root). From the bootstrapper's output level 10, the level plan keeps the FFN's
/// sub-norm at level 2 with an activation of degree 63 and refuses degree 127, which would
/// leave it at level 1 and fail in the middle of a layer (seen in `ensi bench layer
/// --act-degree 127`).
#[test]
fn the_level_plan_refuses_a_norm_input_below_level_two() {
    use ensi_nn::block_layer::block_level_plan_at;
    let model = embedded_model().unwrap();
    let cfg = model.config().clone();
    let tokens: Vec<u32> = b"Encrypt!".iter().map(|&b| u32::from(b)).collect();
    let plan = calibrate(&[&reference(&tokens).layers[0]], &cfg, 0.1, 31, 31);
    let with = |sigmoid: usize, act: usize| {
        let mut p = plan.clone();
        p.sigmoid_degree = sigmoid;
        p.act_degree = act;
        block_level_plan_at(10, 4096, 10, &cfg, &p, 8)
    };
    let (levels, _) = with(31, 63).unwrap();
    let level_of = |name: &str| levels.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(level_of("activation * up"), 2);
    assert!(with(31, 127).is_err());
    assert!(with(31, 31).is_ok());
}

/// RoPE in slots on a head-layout matrix (head dimension 24 padded to 32, 3 heads padded to 4,
/// 8 tokens at positions 3..11, the last one without a position) against RoPE in f64 on the
/// same values: every column of every token, the padding zero.
#[test]
fn rope_in_slots_matches_rope_on_the_head_layout() {
    let mut cfg = embedded_model().unwrap().config().clone();
    cfg.num_attention_heads = 3;
    cfg.num_key_value_heads = 1;
    cfg.head_dim = 24;
    let ctx = leveled();
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let (h, hd, n) = (3usize, 24usize, 8usize);
    let (h_pad, hd_pad, half) = (4usize, 32usize, 12usize);
    let cols = h_pad * hd_pad;
    let (sk, eval) = keys(&ctx, &cfg, &rope_rotations(&cfg, n).unwrap(), &mut rng);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let q: Vec<f64> = (0..n * cols)
        .map(|i| {
            let (rho, _) = (i % cols, i / cols);
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if rho % h_pad < h && rho / h_pad < hd {
                (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            } else {
                0.0
            }
        })
        .collect();
    let x = ChunkedMatrix::encrypt(
        &ctx,
        &sk,
        &q,
        n,
        ctx.max_level(),
        ctx.params().default_scale(),
        &mut rng,
    )
    .unwrap();
    let position = |t: usize| (t < n - 1).then_some(t + 3);
    let factor = 0.75;
    let out = rope_in_slots(&eval, &x, &cfg, &position, factor).unwrap();
    assert_eq!(out.level(), x.level() - 1);
    let got = out.decrypt(&ctx, &sk).unwrap();
    let mut err = 0.0f64;
    for t in 0..n {
        for rho in 0..cols {
            let (head, c) = (rho % h_pad, rho / h_pad);
            let want = match position(t) {
                Some(p) if head < h && c < hd => {
                    let (cos, sin) = ensi_bitnet::ops::rope_angles::<f64>(p, hd, cfg.rope_theta);
                    let (partner, sign) = if c < half {
                        (c + half, -1.0)
                    } else {
                        (c - half, 1.0)
                    };
                    factor
                        * (cos[c % half] * q[t * cols + rho]
                            + sign * sin[c % half] * q[t * cols + partner * h_pad + head])
                }
                _ => 0.0,
            };
            err = err.max((got[t * cols + rho] - want).abs());
        }
    }
    eprintln!("RoPE in slots: max error {err:.2e}");
    assert!(err < 1e-6, "{err}");
}
