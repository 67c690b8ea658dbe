//! The coefficient-encoded integer product and its packing (Cheetah's encoding, PackLWEs
//! generalised to strided leaves) against an f64 matrix product, at small INSECURE parameters:
//! exact positions, zero garbage, key switches as predicted; then the fused bootstrap
//! (ModRaise, CoeffsToSlots, EvalMod) of the packed output against the same product.
#![allow(clippy::unwrap_used)]

use ensi_ckks::coeff::{CoeffLayout, pack_galois_elements};
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
    let request = KeyRequest::new().with_galois_elements(&pack_galois_elements(n, 128));
    let eval = Evaluator::new(
        &ctx,
        EvaluationKeySet::generate(&ctx, &sk, &request, &mut rng).unwrap(),
    )
    .unwrap();
    let scale = 2f64.powi(30);
    for (rows, cols, tokens, m) in SHAPES {
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
            "{rows}x{cols}, {tokens} tokens, m = {m}: {} products, {} key switches, {bits:.1} bits \
             (every other coefficient zero)",
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
