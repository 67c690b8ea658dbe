//! The coefficient-encoded integer product and its packing (Cheetah's encoding, PackLWEs
//! generalised to strided leaves) against an f64 matrix product, at small INSECURE parameters:
//! exact positions, zero garbage, key switches as predicted; then the fused bootstrap
//! (ModRaise, CoeffsToSlots, EvalMod) of the packed output against the same product; and the
//! whole event from a slot-encoded activation (SlotsToCoeffs into the product's layout, the
//! product, the packing with level-0 keys, the bootstrap back into the slot layout).
#![allow(clippy::unwrap_used)]

use ensi_ckks::coeff::{CoeffLayout, SlotCoeffLayout, pack_galois_elements};
use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext, EvaluationKeySet,
    Evaluator, KeyRequest, Parameters, ParametersLiteral, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn uniform(rng: &mut ChaCha20Rng, count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

/// A ternary matrix with about one third zeros.
fn ternary(rng: &mut ChaCha20Rng, rows: usize, cols: usize) -> Vec<i64> {
    (0..rows * cols)
        .map(|_| (rng.next_u64() % 3) as i64 - 1)
        .collect()
}

/// `Y[t][r] = sum_c W[r][c] X[t][c]` in f64.
fn reference(w: &[i64], x: &[f64], rows: usize, cols: usize, tokens: usize) -> Vec<f64> {
    let mut y = vec![0.0; tokens * rows];
    for t in 0..tokens {
        for r in 0..rows {
            y[t * rows + r] = (0..cols)
                .map(|c| w[r * cols + c] as f64 * x[t * cols + c])
                .sum();
        }
    }
    y
}

/// Shapes `(rows, cols, tokens, m)`: one block and full leaves, leaves not a power of two,
/// several input blocks, several tokens, a single leaf.
const SHAPES: [(usize, usize, usize, usize); 5] = [
    (96, 64, 1, 64),
    (150, 100, 1, 128),
    (70, 200, 1, 64),
    (40, 48, 3, 64),
    (8, 30, 2, 32),
];

#[test]
fn packed_products_match_the_matrix_product() {
    let ctx = CkksContext::new(
        Parameters::new_insecure(ParametersLiteral::insecure_test(12, 2)).unwrap(),
    )
    .unwrap();
    let n = ctx.n();
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    // The packing with full Galois keys, then with level-0 keys (over q_0 p_0 only).
    let elements = pack_galois_elements(n, 128);
    let full = KeyRequest::new().with_galois_elements(&elements);
    let level0 = KeyRequest::new().with_level0_galois_elements(&elements);
    let evals: Vec<(&str, Evaluator)> = [("full keys", full), ("level-0 keys", level0)]
        .into_iter()
        .map(|(name, request)| {
            let keys = EvaluationKeySet::generate(&ctx, &sk, &request, &mut rng).unwrap();
            (name, Evaluator::new(&ctx, keys).unwrap())
        })
        .collect();
    assert!(evals[1].1.keys().galois_elements().is_empty());
    assert_eq!(
        evals[1].1.keys().level0_galois_elements().len(),
        elements.len()
    );
    let scale = 2f64.powi(30);
    for ((rows, cols, tokens, m), (keys, eval)) in SHAPES
        .into_iter()
        .flat_map(|shape| evals.iter().map(move |e| (shape, e)))
    {
        let layout = CoeffLayout::new(n, rows, cols, tokens, m).unwrap();
        let w = ternary(&mut rng, rows, cols);
        let x = uniform(&mut rng, tokens * cols);
        let xs: Vec<_> = (0..layout.input_blocks())
            .map(|b| {
                let v = layout.input_coefficients(&x, b).unwrap();
                let pt = ctx.encode_coefficients(&v, 0, scale).unwrap();
                sk.encrypt(&ctx, &pt, &mut rng).unwrap()
            })
            .collect();
        let before = eval.op_count();
        let out = eval
            .coeff_matmul(&layout, &xs, &|r, c| w[r * cols + c])
            .unwrap();
        let ops = eval.op_count() - before;
        assert_eq!(ops.key_switches(), layout.key_switches(), "{rows}x{cols}");
        assert_eq!(ops.plain_mul, layout.products());
        assert_eq!(out.level(), 0);
        let coeffs = ctx
            .plaintext_coefficients(&sk.decrypt(&ctx, &out).unwrap())
            .unwrap();
        let y = reference(&w, &x, rows, cols, tokens);
        let gain = layout.gain() as f64 * scale;
        let mut expect = vec![0.0; n];
        for t in 0..tokens {
            for r in 0..rows {
                let pos = layout.output_position(t, r);
                assert_eq!(expect[pos], 0.0, "two outputs at {pos}");
                expect[pos] = y[t * rows + r] * gain;
            }
        }
        let max = expect.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let err = expect
            .iter()
            .zip(&coeffs)
            .fold(0.0f64, |a, (e, g)| a.max((e - g).abs()));
        let bits = -(err / max).log2();
        eprintln!(
            "{rows}x{cols}, {tokens} tokens, m = {m}, {keys}: {} products, {} key switches, \
             {bits:.1} bits (every other coefficient zero)",
            layout.products(),
            layout.key_switches()
        );
        assert!(bits > 16.0, "{rows}x{cols}: {bits}");
    }
}

/// The fused event without SlotsToCoeffs: the packed product bootstrapped from coefficients
/// into slots (N = 2^12, INSECURE), read back as `q_0 / (2 pi) * slot / (m scale)`.
#[test]
fn the_packed_product_bootstraps_into_slots() {
    let literal = ParametersLiteral::insecure_bootstrap_test(12, 2, 9);
    let ctx = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
    let n = ctx.n();
    let lit = BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        log_eval_scale: Some(60),
        ..BootstrapParametersLiteral::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let (rows, cols, tokens, m) = (150, 100, 1, 128);
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let extra = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new().with_galois_elements(&pack_galois_elements(n, m)),
        &mut rng,
    )
    .unwrap();
    for key in extra.into_keys() {
        keys.insert(key);
    }
    let bts = Bootstrapper::new(&ctx, lit.clone(), keys).unwrap();
    let layout = CoeffLayout::new(n, rows, cols, tokens, m).unwrap();
    let w = ternary(&mut rng, rows, cols);
    let x = uniform(&mut rng, tokens * cols);
    let y = reference(&w, &x, rows, cols, tokens);
    let y_max = y.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    // The packed values m * scale * y must stay near q_0 / 2^10 for the sine to be linear.
    let q0 = ctx.params().q()[0] as f64;
    let scale = q0 / 1024.0 / (layout.gain() as f64 * y_max);
    let v = layout.input_coefficients(&x, 0).unwrap();
    let ct = sk
        .encrypt(
            &ctx,
            &ctx.encode_coefficients(&v, 0, scale).unwrap(),
            &mut rng,
        )
        .unwrap();
    let e = bts.evaluator();
    let packed = e
        .coeff_matmul(&layout, &[ct], &|r, c| w[r * cols + c])
        .unwrap();
    let (re, im) = bts.bootstrap_coefficients(&packed).unwrap();
    let slots = n / 2;
    let dr = ctx.decode(&sk.decrypt(&ctx, &re).unwrap()).unwrap();
    let di = ctx.decode(&sk.decrypt(&ctx, &im).unwrap()).unwrap();
    let bits = slots.trailing_zeros();
    let rev = |i: usize| i.reverse_bits() >> (usize::BITS - bits);
    let read = |pos: usize| {
        let s = if pos < slots {
            dr[rev(pos)]
        } else {
            di[rev(pos - slots)]
        };
        s * q0 / (2.0 * std::f64::consts::PI) / (layout.gain() as f64 * scale)
    };
    let err = (0..rows)
        .map(|r| (read(layout.output_position(0, r)) - y[r]).abs())
        .fold(0.0f64, f64::max);
    let bits = -(err / y_max).log2();
    eprintln!(
        "{rows}x{cols} packed and bootstrapped into slots: {bits:.1} bits, level {}",
        re.level()
    );
    assert!(bits > 12.0, "{bits}");
}

/// The coefficient product fed by SlotsToCoeffs: an activation in the column-block slot layout
/// (slot `c * n_pad + t`, two input chunks), SlotsToCoeffs puts every value at the coefficient
/// `SlotCoeffLayout::input_position` predicts (checked against the f64 input before any
/// product), the leaves are packed with the predicted key switches, and the bootstrap brings
/// `W x` back into the same slot layout (rows `0..L` in the real half, `L..` in the imaginary
/// half), against the f64 product; the empty slots stay near zero.
#[test]
fn a_slot_activation_goes_through_the_coefficient_product_and_back_to_its_layout() {
    let literal = ParametersLiteral::insecure_bootstrap_test(12, 2, 9);
    let ctx = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
    let (n, slots) = (ctx.n(), ctx.n() / 2);
    let lit = BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        log_eval_scale: Some(60),
        ..BootstrapParametersLiteral::default()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(43);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let (rows, cols, tokens, n_pad) = (150, 700, 3, 4);
    let layout = SlotCoeffLayout::new(n, rows, cols, n_pad).unwrap();
    let chunk = layout.chunk();
    assert_eq!(
        (chunk, layout.input_chunks(), layout.leaves()),
        (512, 2, 128)
    );
    let mut keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let extra = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new().with_level0_galois_elements(&pack_galois_elements(n, chunk)),
        &mut rng,
    )
    .unwrap();
    for key in extra.into_keys() {
        keys.insert(key);
    }
    let bts = Bootstrapper::new(&ctx, lit, keys).unwrap();
    let e = bts.evaluator();
    let w = ternary(&mut rng, rows, cols);
    let x = uniform(&mut rng, tokens * cols);
    let y = reference(&w, &x, rows, cols, tokens);
    let y_max = y.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let q0 = ctx.params().q()[0] as f64;
    let delta = ctx.params().default_scale();
    // The packed values gain * f * delta * y must stay near q_0 / 2^10 for the sine.
    let f = q0 / 1024.0 / (layout.gain() as f64 * y_max * delta);
    let level = 4;
    let mut inputs = Vec::new();
    for k in 0..layout.input_chunks() {
        let mut v = vec![0.0; slots];
        for t in 0..tokens {
            for c in 0..chunk.min(cols - k * chunk) {
                v[c * n_pad + t] = x[t * cols + k * chunk + c];
            }
        }
        let ct = sk
            .encrypt(
                &ctx,
                &ctx.encode(&v, slots, level, delta).unwrap(),
                &mut rng,
            )
            .unwrap();
        let coeffs = e
            .drop_to_level(&bts.slots_to_coefficients(&ct, f).unwrap(), 0)
            .unwrap();
        // Every value where the layout says, before any product.
        let got = ctx
            .plaintext_coefficients(&sk.decrypt(&ctx, &coeffs).unwrap())
            .unwrap();
        let mut err = 0.0f64;
        for t in 0..tokens {
            for c in 0..chunk.min(cols - k * chunk) {
                let want = f * delta * x[t * cols + k * chunk + c];
                err = err.max((got[layout.input_position(t, c)] - want).abs() / (f * delta));
            }
        }
        assert!(
            err < 1e-4,
            "chunk {k}: SlotsToCoeffs placement error {err:e}"
        );
        inputs.push(coeffs);
    }
    let before = e.op_count();
    let packed = e
        .slot_coeff_matmul(&layout, &inputs, &|r, c| w[r * cols + c])
        .unwrap();
    let ops = e.op_count() - before;
    assert_eq!(ops.key_switches(), layout.key_switches());
    assert_eq!(ops.plain_mul, layout.products());
    let (re, im) = bts.bootstrap_coefficients(&packed).unwrap();
    let dr = ctx.decode(&sk.decrypt(&ctx, &re).unwrap()).unwrap();
    let di = ctx.decode(&sk.decrypt(&ctx, &im).unwrap()).unwrap();
    let unit = q0 / (2.0 * std::f64::consts::PI) / (layout.gain() as f64 * f * delta);
    let mut used = vec![false; 2 * slots];
    let mut err = 0.0f64;
    for t in 0..tokens {
        for r in 0..rows {
            let (upper, slot) = layout.output_slot(t, r);
            let got = (if upper { di[slot] } else { dr[slot] }) * unit;
            used[usize::from(upper) * slots + slot] = true;
            err = err.max((got - y[t * rows + r]).abs());
        }
    }
    let bits = -(err / y_max).log2();
    let stray = (0..2 * slots)
        .filter(|&i| !used[i])
        .map(|i| if i < slots { dr[i] } else { di[i - slots] }.abs() * unit)
        .fold(0.0f64, f64::max);
    eprintln!(
        "{rows}x{cols}, {tokens} tokens from slots: {bits:.1} bits, {} key switches, \
         largest empty slot {:.1e} of the largest value",
        ops.key_switches(),
        stray / y_max
    );
    assert!(bits > 12.0, "{bits}");
    assert!(stray / y_max < 1e-3, "{stray}");
}
