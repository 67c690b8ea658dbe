//! Linear transforms by BSGS against the plaintext matrix-vector product.
#![allow(clippy::unwrap_used)]

use ensi_ckks::{
    CkksContext, CkksError, EvaluationKeySet, Evaluator, KeyRequest, LinearTransform, Parameters,
    ParametersLiteral, PrecisionStats, SecretKey,
};
use num_complex::Complex64;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::Arc;

fn ctx() -> Arc<CkksContext> {
    CkksContext::new(Parameters::new_insecure(ParametersLiteral::insecure_test(11, 4)).unwrap())
        .unwrap()
}

fn c(rng: &mut ChaCha20Rng) -> Complex64 {
    let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    Complex64::new(u(), u())
}

fn run(ctx: &Arc<CkksContext>, lt: &LinearTransform, rng: &mut ChaCha20Rng) -> PrecisionStats {
    let sk = SecretKey::generate(ctx, rng).unwrap();
    let mut request = KeyRequest::new();
    request.galois_elements = lt.galois_elements(ctx);
    let eval = Evaluator::new(
        ctx,
        EvaluationKeySet::generate(ctx, &sk, &request, rng).unwrap(),
    )
    .unwrap();
    let slots = lt.slots();
    let v: Vec<Complex64> = (0..slots).map(|_| c(rng)).collect();
    let level = 3;
    let scale = ctx.params().default_scale();
    let ct = sk
        .encrypt(
            ctx,
            &ctx.encode_complex(&v, slots, level, scale).unwrap(),
            rng,
        )
        .unwrap();
    let q_l = ctx.params().q()[level] as f64;
    let enc = lt.encode(ctx, level, q_l).unwrap();
    let out = eval
        .rescale(&eval.linear_transform(&ct, &enc).unwrap())
        .unwrap();
    assert_eq!(out.level(), level - 1);
    assert!((out.scale() / scale - 1.0).abs() < 1e-12);
    let got = ctx.decode_complex(&sk.decrypt(ctx, &out).unwrap()).unwrap();
    PrecisionStats::complex(&lt.apply(&v), &got)
}

#[test]
fn dense_matrix_matches_the_plaintext_product() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let n = 16;
    let rows: Vec<Vec<Complex64>> = (0..n)
        .map(|_| (0..n).map(|_| c(&mut rng) * 0.25).collect())
        .collect();
    let lt = LinearTransform::from_matrix(&rows).unwrap();
    assert_eq!(lt.diagonals().len(), n);
    // The diagonal form reproduces the matrix product in the clear.
    let v: Vec<Complex64> = (0..n).map(|_| c(&mut rng)).collect();
    let direct: Vec<Complex64> = rows
        .iter()
        .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
        .collect();
    for (a, b) in lt.apply(&v).iter().zip(&direct) {
        assert!((a - b).norm_sqr() < 1e-24);
    }
    let stats = run(&ctx, &lt, &mut rng);
    assert!(stats.min_bits >= 20.0, "{stats:?}");
}

#[test]
fn banded_full_slot_transform_and_composition() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let n = ctx.n() / 2;
    let band = |rng: &mut ChaCha20Rng| {
        LinearTransform::from_diagonals(
            n,
            (-3isize..=3).map(|k| (k, (0..n).map(|_| c(rng) * 0.2).collect())),
        )
        .unwrap()
    };
    let (a, b) = (band(&mut rng), band(&mut rng));
    let ab = a.compose(&b).unwrap();
    assert_eq!(ab.diagonals().len(), 13);
    let v: Vec<Complex64> = (0..n).map(|_| c(&mut rng)).collect();
    for (x, y) in ab.apply(&v).iter().zip(&a.apply(&b.apply(&v))) {
        assert!((x - y).norm_sqr() < 1e-24);
    }
    let stats = run(&ctx, &ab, &mut rng);
    assert!(stats.min_bits >= 20.0, "{stats:?}");
    // Baby steps are hoisted, giant steps are rotations by multiples of n1.
    let n1 = ab.baby_step();
    for r in ab.rotations() {
        assert!(
            r.unsigned_abs() < n1 || (r as usize).is_multiple_of(n1),
            "rotation {r}, n1 {n1}"
        );
    }
}

#[test]
fn missing_rotation_keys_are_named() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let eval = Evaluator::new(&ctx, EvaluationKeySet::new()).unwrap();
    let lt = LinearTransform::from_diagonals(8, [(1, vec![Complex64::new(1.0, 0.0); 8])]).unwrap();
    let ct = sk
        .encrypt(
            &ctx,
            &ctx.encode(&[1.0; 8], 8, 2, 2f64.powi(40)).unwrap(),
            &mut rng,
        )
        .unwrap();
    let enc = lt.encode(&ctx, 2, 2f64.powi(40)).unwrap();
    let g = ctx.rotation_galois_element(1);
    assert_eq!(
        eval.linear_transform(&ct, &enc).unwrap_err(),
        CkksError::MissingGaloisKey { galois_element: g }
    );
    let wrong_level = lt.encode(&ctx, 1, 2f64.powi(40)).unwrap();
    assert!(matches!(
        eval.linear_transform(&ct, &wrong_level).unwrap_err(),
        CkksError::LevelMismatch { .. }
    ));
    assert!(LinearTransform::from_diagonals(6, []).is_err());
}
