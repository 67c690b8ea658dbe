//! Homomorphic Chebyshev evaluation against the same polynomial (and the function) in f64:
//! precision in bits, depth, exact output scale.
#![allow(clippy::unwrap_used)]

use ensi_ckks::{
    ChebyshevPoly, Ciphertext, CkksContext, EvaluationKeySet, Evaluator, KeyRequest, Parameters,
    ParametersLiteral, PrecisionStats, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::{Arc, OnceLock};

struct Setup {
    ctx: Arc<CkksContext>,
    sk: SecretKey,
    eval: Evaluator,
}

/// N = 2^11, 13 primes (50 + 12 x 40 bits): insecure, for tests.
fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let ctx = CkksContext::new(
            Parameters::new_insecure(ParametersLiteral::insecure_test(11, 12)).unwrap(),
        )
        .unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(41);
        let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
        let keys = EvaluationKeySet::generate(
            &ctx,
            &sk,
            &KeyRequest::new().with_relinearization(),
            &mut rng,
        )
        .unwrap();
        let eval = Evaluator::new(&ctx, keys).unwrap();
        Setup { ctx, sk, eval }
    })
}

fn uniform(rng: &mut ChaCha20Rng, count: usize, a: f64, b: f64) -> Vec<f64> {
    (0..count)
        .map(|_| a + (b - a) * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64))
        .collect()
}

fn encrypt(s: &Setup, v: &[f64], rng: &mut ChaCha20Rng) -> Ciphertext {
    let pt = s
        .ctx
        .encode(
            v,
            v.len(),
            s.ctx.max_level(),
            s.ctx.params().default_scale(),
        )
        .unwrap();
    s.sk.encrypt(&s.ctx, &pt, rng).unwrap()
}

fn decrypt(s: &Setup, ct: &Ciphertext) -> Vec<f64> {
    s.ctx.decode(&s.sk.decrypt(&s.ctx, ct).unwrap()).unwrap()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn sigmoid_degree_16_on_the_ensi_interval() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let x = uniform(&mut rng, 512, -10.0, 11.0);
    let ct = encrypt(s, &x, &mut rng);
    let poly = ChebyshevPoly::interpolate(sigmoid, -10.0, 11.0, 16);
    let (out, stats) = s.eval.evaluate_chebyshev_same_scale(&ct, &poly).unwrap();
    // One level for the change of variable, ceil(log2 17) = 5 for the polynomial.
    assert_eq!(stats.levels, 6, "{stats:?}");
    // The output scale is matched to the requested one by a checked snap: a drift beyond a
    // relative 2^-30 would have been an error (tests/evaluator.rs checks the refusal).
    let got = decrypt(s, &out);
    // Against the same polynomial in f64: only the scheme's noise.
    let expect: Vec<f64> = x.iter().map(|&v| poly.eval(v)).collect();
    let stats_poly = PrecisionStats::real(&expect, &got);
    assert!(stats_poly.min_bits >= 20.0, "{stats_poly:?}");
    // Against the sigmoid itself: the approximation error of degree 16 dominates.
    let truth: Vec<f64> = x.iter().map(|&v| sigmoid(v)).collect();
    let approx = poly.max_error(sigmoid, 2001);
    let stats_f = PrecisionStats::real(&truth, &got);
    assert!(
        stats_f.max_error <= approx + 1e-5,
        "{stats_f:?} vs approximation {approx}"
    );
}

#[test]
fn depth_is_ceil_log2_degree_plus_one_on_the_unit_interval() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let x = uniform(&mut rng, 256, -1.0, 1.0);
    let ct = encrypt(s, &x, &mut rng);
    for degree in [1usize, 3, 5, 7, 13, 27, 59] {
        // Coefficients that do not vanish, so the degree is the real one.
        let coeffs: Vec<f64> = (0..=degree)
            .map(|_| (rng.next_u64() % 2001) as f64 / 1000.0 - 1.0)
            .map(|c| c / (degree + 1) as f64)
            .collect();
        let poly = ChebyshevPoly::new(coeffs, -1.0, 1.0);
        let (out, stats) = s.eval.evaluate_chebyshev_same_scale(&ct, &poly).unwrap();
        let optimal = (usize::BITS - degree.leading_zeros()) as usize; // ceil(log2(d + 1))
        assert_eq!(stats.levels, optimal, "degree {degree}: {stats:?}");
        let expect: Vec<f64> = x.iter().map(|&v| poly.eval(v)).collect();
        let p = PrecisionStats::real(&expect, &decrypt(s, &out));
        assert!(p.min_bits >= 18.0, "degree {degree}: {p:?}");
    }
}

#[test]
fn odd_functions_cost_no_more_and_scales_do_not_drift() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let x = uniform(&mut rng, 256, -1.0, 1.0);
    let ct = encrypt(s, &x, &mut rng);
    let odd = ChebyshevPoly::interpolate(|v| (3.0 * v).sin() / 3.0, -1.0, 1.0, 15);
    let general = ChebyshevPoly::interpolate(
        |v| (3.0 * v).cos() / 3.0 + (3.0 * v).sin() / 3.0,
        -1.0,
        1.0,
        15,
    );
    let (o1, so) = s.eval.evaluate_chebyshev_same_scale(&ct, &odd).unwrap();
    let (_, sg) = s.eval.evaluate_chebyshev_same_scale(&ct, &general).unwrap();
    // Zero coefficients never cost more (at degree 15 the plan happens to use the same number of
    // constant products for both: the saving is in skipped zero terms, not counted separately).
    assert!(so.const_products <= sg.const_products, "{so:?} vs {sg:?}");
    assert!(so.ct_products <= sg.ct_products, "{so:?} vs {sg:?}");
    // Composing twice: the second evaluation starts from the first one's exact scale.
    let (o2, _) = s.eval.evaluate_chebyshev_same_scale(&o1, &odd).unwrap();
    let expect: Vec<f64> = x.iter().map(|&v| odd.eval(odd.eval(v))).collect();
    let p = PrecisionStats::real(&expect, &decrypt(s, &o2));
    assert!(p.min_bits >= 18.0, "{p:?}");
    // A requested scale other than the input's: the values are right when read at it.
    let target = 2f64.powi(38) * 1.2345;
    let (o3, _) = s.eval.evaluate_chebyshev(&ct, &odd, target).unwrap();
    let expect: Vec<f64> = x.iter().map(|&v| odd.eval(v)).collect();
    let p = PrecisionStats::real(&expect, &decrypt(s, &o3));
    assert!(p.min_bits >= 18.0, "{p:?}");
}

#[test]
fn invalid_polynomials_are_refused() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let ct = encrypt(s, &[0.5; 8], &mut rng);
    let empty = ChebyshevPoly::new(vec![], -1.0, 1.0);
    assert!(s.eval.evaluate_chebyshev_same_scale(&ct, &empty).is_err());
    let reversed = ChebyshevPoly::new(vec![1.0, 2.0], 1.0, -1.0);
    assert!(
        s.eval
            .evaluate_chebyshev_same_scale(&ct, &reversed)
            .is_err()
    );
    // Too deep for the levels left: a clear error, not a panic.
    let low = s.eval.drop_to_level(&ct, 2).unwrap();
    let deep = ChebyshevPoly::interpolate(|v| v.exp(), -1.0, 1.0, 63);
    assert!(s.eval.evaluate_chebyshev_same_scale(&low, &deep).is_err());
}
