//! Linear transforms by BSGS against the plaintext matrix-vector product.
#![allow(clippy::unwrap_used)]

use ensi_ckks::{
    CkksContext, CkksError, EvaluationKeySet, Evaluator, KeyRequest, LinearTransform, Parameters,
    ParametersLiteral, PrecisionStats, ReplicatedMatrix, SecretKey,
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

/// Evaluates `lt` homomorphically on a random vector `v` and compares with `reference(v)`, a
/// product computed by the caller independently of the transform's diagonals.
fn run(
    ctx: &Arc<CkksContext>,
    lt: &LinearTransform,
    rng: &mut ChaCha20Rng,
    reference: impl Fn(&[Complex64]) -> Vec<Complex64>,
) -> PrecisionStats {
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
    PrecisionStats::complex(&reference(&v), &got)
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
    let stats = run(&ctx, &lt, &mut rng, |v| {
        rows.iter()
            .map(|r| r.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    });
    assert!(stats.min_bits >= 20.0, "{stats:?}");
}

/// The dense `n x n` matrix of diagonals `(k, d_k)`, by the definition `M[t][t + k] = d_k[t]`.
fn dense_from_diagonals(n: usize, diags: &[(isize, Vec<Complex64>)]) -> Vec<Vec<Complex64>> {
    let mut m = vec![vec![Complex64::new(0.0, 0.0); n]; n];
    for (k, d) in diags {
        for t in 0..n {
            let col = (t as isize + k).rem_euclid(n as isize) as usize;
            m[t][col] += d[t];
        }
    }
    m
}

fn matvec_c(m: &[Vec<Complex64>], v: &[Complex64]) -> Vec<Complex64> {
    m.iter()
        .map(|r| r.iter().zip(v).map(|(a, b)| a * b).sum())
        .collect()
}

#[test]
fn banded_full_slot_transform_and_composition() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let n = ctx.n() / 2;
    let band = |rng: &mut ChaCha20Rng| -> Vec<(isize, Vec<Complex64>)> {
        (-3isize..=3)
            .map(|k| (k, (0..n).map(|_| c(rng) * 0.2).collect()))
            .collect()
    };
    let (da, db) = (band(&mut rng), band(&mut rng));
    let a = LinearTransform::from_diagonals(n, da.clone()).unwrap();
    let b = LinearTransform::from_diagonals(n, db.clone()).unwrap();
    let (ma, mb) = (dense_from_diagonals(n, &da), dense_from_diagonals(n, &db));
    let ab = a.compose(&b).unwrap();
    assert_eq!(ab.diagonals().len(), 13);
    let v: Vec<Complex64> = (0..n).map(|_| c(&mut rng)).collect();
    for (x, y) in ab.apply(&v).iter().zip(&a.apply(&b.apply(&v))) {
        assert!((x - y).norm_sqr() < 1e-24);
    }
    // The composed transform against the dense product A (B v), from the definition.
    let stats = run(&ctx, &ab, &mut rng, |v| matvec_c(&ma, &matvec_c(&mb, v)));
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

/// A dense `rows x cols` real matrix-vector product, the reference for the replicated layouts.
fn matvec(m: &[Vec<f64>], x: &[f64]) -> Vec<f64> {
    m.iter()
        .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect()
}

fn keys_for(
    ctx: &Arc<CkksContext>,
    galois: Vec<usize>,
    rng: &mut ChaCha20Rng,
) -> (SecretKey, Evaluator) {
    let sk = SecretKey::generate(ctx, rng).unwrap();
    let mut request = KeyRequest::new();
    request.galois_elements = galois;
    let keys = EvaluationKeySet::generate(ctx, &sk, &request, rng).unwrap();
    (sk, Evaluator::new(ctx, keys).unwrap())
}

#[test]
fn streamed_diagonals_give_the_cached_result_with_the_same_operations() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let slots = 64;
    let rows: Vec<Vec<Complex64>> = (0..slots)
        .map(|_| (0..slots).map(|_| c(&mut rng) * 0.1).collect())
        .collect();
    let lt = LinearTransform::from_matrix(&rows).unwrap();
    let (sk, eval) = keys_for(&ctx, lt.galois_elements(&ctx), &mut rng);
    let v: Vec<Complex64> = (0..slots).map(|_| c(&mut rng)).collect();
    let level = 3;
    let scale = ctx.params().default_scale();
    let ct = sk
        .encrypt(
            &ctx,
            &ctx.encode_complex(&v, slots, level, scale).unwrap(),
            &mut rng,
        )
        .unwrap();
    let q_l = ctx.params().q()[level] as f64;
    // The reference: the dense product from the rows, not from the transform.
    let expect: Vec<Complex64> = rows
        .iter()
        .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
        .collect();

    let enc = lt.encode(&ctx, level, q_l).unwrap();
    let before = eval.op_count();
    let cached = eval.linear_transform(&ct, &enc).unwrap();
    let cached_ops = eval.op_count() - before;
    let shape = lt.shape();
    let before = eval.op_count();
    let streamed = eval
        .linear_transform_streamed(&ct, &shape, q_l, |k| {
            Ok((0..slots).map(|t| rows[t][(t + k) % slots]).collect())
        })
        .unwrap();
    let streamed_ops = eval.op_count() - before;
    assert_eq!(streamed_ops.encode, slots);
    assert_eq!(cached_ops.encode, 0);
    assert_eq!(streamed_ops.plain_mul, cached_ops.plain_mul);
    assert_eq!(streamed_ops.key_switches(), cached_ops.key_switches());
    // Predicted from the shape alone: every diagonal is one product; the rotations are the
    // non-zero baby and giant steps.
    let n1 = shape.baby_step();
    let (babies, giants) = shape.split_counts(n1);
    assert_eq!(streamed_ops.plain_mul, slots);
    assert_eq!(streamed_ops.hoisted_rotate, babies);
    assert_eq!(streamed_ops.rotate, giants);
    for out in [cached, streamed] {
        let out = eval.rescale(&out).unwrap();
        let got = ctx
            .decode_complex(&sk.decrypt(&ctx, &out).unwrap())
            .unwrap();
        let p = PrecisionStats::complex(&expect, &got);
        assert!(p.min_bits >= 20.0, "{p:?}");
    }
    // A diagonal of the wrong length is an error, not a panic.
    assert!(
        eval.linear_transform_streamed(&ct, &shape, q_l, |_| Ok(vec![Complex64::new(0.0, 0.0); 3]))
            .is_err()
    );
}

#[test]
fn replicated_rectangular_matrices_match_the_dense_product() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let slots = 256;
    // Square (12 x 12 padded to 16), tall (24 x 7: W = 8, Mo = 32), wide (5 x 27: Mo = 8,
    // W = 32: extended diagonals and two rotate-and-add steps).
    for (m, w) in [(12usize, 12usize), (24, 7), (5, 27)] {
        let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        let matrix: Vec<Vec<f64>> = (0..m)
            .map(|_| (0..w).map(|_| u() * 0.3).collect())
            .collect();
        let x: Vec<f64> = (0..w).map(|_| u()).collect();
        let rm = ReplicatedMatrix::new(slots, m, w, |i, j| matrix[i][j]).unwrap();
        let (wp, mo) = (rm.input_period(), rm.output_period());
        assert_eq!((wp, mo), (w.next_power_of_two(), m.next_power_of_two()));
        assert_eq!(rm.shape().unwrap().indices().len(), wp.min(mo));
        let (sk, eval) = keys_for(&ctx, rm.galois_elements(&ctx).unwrap(), &mut rng);
        // The client replicates x with period W (zero-padded).
        let replicated: Vec<f64> = (0..slots)
            .map(|t| x.get(t % wp).copied().unwrap_or(0.0))
            .collect();
        let level = 3;
        let ct = sk
            .encrypt(
                &ctx,
                &ctx.encode(&replicated, slots, level, ctx.params().default_scale())
                    .unwrap(),
                &mut rng,
            )
            .unwrap();
        let q_l = ctx.params().q()[level] as f64;
        let out = eval
            .rescale(&eval.replicated_matvec(&ct, &rm, q_l).unwrap())
            .unwrap();
        let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
        let y = matvec(&matrix, &x);
        // y replicated with period Mo, zero in the padding rows.
        let expect: Vec<f64> = (0..slots)
            .map(|t| y.get(t % mo).copied().unwrap_or(0.0))
            .collect();
        let p = PrecisionStats::real(&expect, &got);
        assert!(p.min_bits >= 20.0, "{m} x {w}: {p:?}");
        assert_eq!(
            rm.sum_steps().len(),
            if mo < wp {
                (wp / mo).ilog2() as usize
            } else {
                0
            }
        );
    }
    assert!(ReplicatedMatrix::new(16, 32, 4, |_, _| 0.0).is_err());
    assert!(ReplicatedMatrix::new(16, 0, 4, |_, _| 0.0).is_err());
}

/// `A ⊗ I_s` with only the diagonals at multiples of `s` (the column-block layout: slot
/// `c s + t` holds column `c` of token `t`), tall, square and wide, against the product
/// computed token by token from `A`.
#[test]
fn strided_kronecker_matrices_match_the_blockwise_product() {
    let ctx = ctx();
    let slots = ctx.n() / 2;
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let s = 4usize;
    for (m, w) in [(20usize, 12usize), (16, 16), (10, 40)] {
        let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        let a: Vec<Vec<f64>> = (0..m)
            .map(|_| (0..w).map(|_| u() * 0.3).collect())
            .collect();
        // x[c][t] for t < s.
        let x: Vec<Vec<f64>> = (0..w).map(|_| (0..s).map(|_| u()).collect()).collect();
        let rm = ReplicatedMatrix::new(slots, m * s, w * s, |i, j| {
            if i % s == j % s { a[i / s][j / s] } else { 0.0 }
        })
        .unwrap()
        .with_stride(s)
        .unwrap();
        let (wp, mo) = (rm.input_period(), rm.output_period());
        assert_eq!(rm.shape().unwrap().indices().len(), wp.min(mo) / s);
        let (sk, eval) = keys_for(&ctx, rm.galois_elements(&ctx).unwrap(), &mut rng);
        let replicated: Vec<f64> = (0..slots)
            .map(|t| {
                let (c, tok) = ((t % wp) / s, t % s);
                x.get(c).map_or(0.0, |col| col[tok])
            })
            .collect();
        let level = 3;
        let scale = ctx.params().default_scale();
        let ct = sk
            .encrypt(
                &ctx,
                &ctx.encode(&replicated, slots, level, scale).unwrap(),
                &mut rng,
            )
            .unwrap();
        let q_l = ctx.params().q()[level] as f64;
        let out = eval
            .rescale(&eval.replicated_matvec(&ct, &rm, q_l).unwrap())
            .unwrap();
        let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
        let expect: Vec<f64> = (0..slots)
            .map(|t| {
                let (r, tok) = ((t % mo) / s, t % s);
                if r < m {
                    (0..w).map(|c| a[r][c] * x[c][tok]).sum()
                } else {
                    0.0
                }
            })
            .collect();
        let p = PrecisionStats::real(&expect, &got);
        assert!(p.min_bits >= 20.0, "{m} x {w}: {p:?}");
    }
    let base = ReplicatedMatrix::new(64, 8, 8, |_, _| 0.0).unwrap();
    assert!(base.clone().with_stride(3).is_err());
    assert!(base.with_stride(16).is_err());
}

/// Two matrices applied to one ciphertext from one shared set of baby-step rotations (the
/// union of theirs, computed once): the same ciphertexts, bit for bit, as two separate
/// products, with the baby rotations paid once.
#[test]
fn shared_baby_steps_give_the_separate_results() {
    use std::collections::BTreeSet;
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let slots = 256;
    let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    let a: Vec<Vec<f64>> = (0..16).map(|_| (0..16).map(|_| u()).collect()).collect();
    let b: Vec<Vec<f64>> = (0..8).map(|_| (0..16).map(|_| u()).collect()).collect();
    let x: Vec<f64> = (0..slots).map(|_| u()).collect();
    let ma = ReplicatedMatrix::new(slots, 16, 16, |i, j| a[i][j]).unwrap();
    let mb = ReplicatedMatrix::new(slots, 8, 16, |i, j| b[i][j]).unwrap();
    let mut galois = ma.galois_elements(&ctx).unwrap();
    galois.extend(mb.galois_elements(&ctx).unwrap());
    galois.sort_unstable();
    galois.dedup();
    let (sk, eval) = keys_for(&ctx, galois, &mut rng);
    let level = 3;
    let ct = sk
        .encrypt(
            &ctx,
            &ctx.encode(&x, slots, level, ctx.params().default_scale())
                .unwrap(),
            &mut rng,
        )
        .unwrap();
    let q_l = ctx.params().q()[level] as f64;
    let before = eval.op_count();
    let sep = [
        eval.replicated_matvec(&ct, &ma, q_l).unwrap(),
        eval.replicated_matvec(&ct, &mb, q_l).unwrap(),
    ];
    let separate_ops = eval.op_count() - before;
    let steps: BTreeSet<usize> = ma
        .baby_steps()
        .unwrap()
        .union(&mb.baby_steps().unwrap())
        .copied()
        .collect();
    let before = eval.op_count();
    let babies = eval.baby_steps(&ct, &steps).unwrap();
    let shared = [
        eval.replicated_matvec_from(&babies, &ma, q_l).unwrap(),
        eval.replicated_matvec_from(&babies, &mb, q_l).unwrap(),
    ];
    let shared_ops = eval.op_count() - before;
    for (s, t) in sep.iter().zip(&shared) {
        assert_eq!(s.to_bytes().unwrap(), t.to_bytes().unwrap());
    }
    let nonzero = |s: BTreeSet<usize>| s.iter().filter(|&&j| j != 0).count();
    let own = nonzero(ma.baby_steps().unwrap()) + nonzero(mb.baby_steps().unwrap());
    assert_eq!(separate_ops.hoisted_rotate, own);
    assert_eq!(
        shared_ops.hoisted_rotate,
        steps.iter().filter(|&&j| j != 0).count()
    );
    assert_eq!(shared_ops.plain_mul, separate_ops.plain_mul);
    assert!(shared_ops.hoisted_rotate < separate_ops.hoisted_rotate);
}
