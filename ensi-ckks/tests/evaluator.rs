//! The evaluator against f64/complex references, key-switching noise against its proven bound
//! (exact big-integer differences), and the evaluator's errors.
#![allow(clippy::unwrap_used)]

use ensi_ckks::ensi_math::{Ntt, RnsPoly};
use ensi_ckks::{
    Ciphertext, CkksContext, CkksError, EvaluationKeySet, Evaluator, KeyRequest, Parameters,
    ParametersLiteral, PrecisionStats, SecretKey,
};
use num_bigint::{BigInt, BigUint};
use num_complex::Complex64;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::{Arc, OnceLock};

struct Setup {
    ctx: Arc<CkksContext>,
    sk: SecretKey,
    eval: Evaluator,
}

fn build(log_n: u32, levels: usize, seed: u64) -> Setup {
    let ctx = CkksContext::new(
        Parameters::new_insecure(ParametersLiteral::insecure_test(log_n, levels)).unwrap(),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let request = KeyRequest::new()
        .with_relinearization()
        .with_power_of_two_rotations(&ctx, ctx.n() / 2)
        .with_rotations(&ctx, &[3, -5])
        .with_conjugation(&ctx);
    let keys = EvaluationKeySet::generate(&ctx, &sk, &request, &mut rng).unwrap();
    let eval = Evaluator::new(&ctx, keys).unwrap();
    Setup { ctx, sk, eval }
}

/// N = 2^11, 5 primes in Q (50 + 4 x 40 bits), 2 special primes, 3 digits.
fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| build(11, 4, 7))
}

fn random_values(rng: &mut ChaCha20Rng, count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

fn random_complex(rng: &mut ChaCha20Rng, count: usize) -> Vec<Complex64> {
    let re = random_values(rng, count);
    let im = random_values(rng, count);
    re.into_iter()
        .zip(im)
        .map(|(a, b)| Complex64::new(a, b))
        .collect()
}

fn encrypt(
    s: &Setup,
    values: &[f64],
    slots: usize,
    level: usize,
    rng: &mut ChaCha20Rng,
) -> Ciphertext {
    let pt = s
        .ctx
        .encode(values, slots, level, s.ctx.params().default_scale())
        .unwrap();
    s.sk.encrypt(&s.ctx, &pt, rng).unwrap()
}

fn decrypt(s: &Setup, ct: &Ciphertext) -> Vec<f64> {
    s.ctx.decode(&s.sk.decrypt(&s.ctx, ct).unwrap()).unwrap()
}

fn assert_bits(expected: &[f64], ct: &Ciphertext, s: &Setup, min_bits: f64, what: &str) {
    let got = decrypt(s, ct);
    let stats = PrecisionStats::real(expected, &got);
    assert!(
        stats.min_bits >= min_bits,
        "{what}: {stats:?} (need {min_bits} bits)"
    );
}

fn zip_with(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

#[test]
fn evaluator_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Evaluator>();
}

#[test]
fn additions_match_the_f64_reference() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let slots = s.ctx.n() / 2;
    let level = s.ctx.max_level();
    let (a, b) = (
        random_values(&mut rng, slots),
        random_values(&mut rng, slots),
    );
    let (ca, cb) = (
        encrypt(s, &a, slots, level, &mut rng),
        encrypt(s, &b, slots, level, &mut rng),
    );
    let pb = s.ctx.encode(&b, slots, level, ca.scale()).unwrap();
    let e = &s.eval;
    assert_bits(
        &zip_with(&a, &b, |x, y| x + y),
        &e.add(&ca, &cb).unwrap(),
        s,
        26.0,
        "add",
    );
    assert_bits(
        &zip_with(&a, &b, |x, y| x - y),
        &e.sub(&ca, &cb).unwrap(),
        s,
        26.0,
        "sub",
    );
    let neg: Vec<f64> = a.iter().map(|x| -x).collect();
    assert_bits(&neg, &e.neg(&ca).unwrap(), s, 26.0, "neg");
    assert_bits(
        &zip_with(&a, &b, |x, y| x + y),
        &e.add_plain(&ca, &pb).unwrap(),
        s,
        26.0,
        "add_plain",
    );
    assert_bits(
        &zip_with(&a, &b, |x, y| x - y),
        &e.sub_plain(&ca, &pb).unwrap(),
        s,
        26.0,
        "sub_plain",
    );
    let plus: Vec<f64> = a.iter().map(|x| x + 0.3125).collect();
    assert_bits(
        &plus,
        &e.add_const(&ca, 0.3125).unwrap(),
        s,
        26.0,
        "add_const",
    );
    // A plaintext above the ciphertext's level is cut down to it.
    let low = e.drop_to_level(&ca, 1).unwrap();
    assert_eq!(low.level(), 1);
    assert_bits(
        &zip_with(&a, &b, |x, y| x + y),
        &e.add_plain(&low, &pb).unwrap(),
        s,
        26.0,
        "add_plain above",
    );
}

#[test]
fn products_match_the_f64_reference() {
    let s = setup();
    let e = &s.eval;
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let slots = s.ctx.n() / 2;
    let level = s.ctx.max_level();
    let vals: Vec<Vec<f64>> = (0..4).map(|_| random_values(&mut rng, slots)).collect();
    let cts: Vec<Ciphertext> = vals
        .iter()
        .map(|v| encrypt(s, v, slots, level, &mut rng))
        .collect();
    let scale = cts[0].scale();
    let q_top = s.ctx.params().q()[level] as f64;

    // Plaintext product, then rescale: scale Delta^2 / q_l.
    let pt = s.ctx.encode(&vals[1], slots, level, scale).unwrap();
    let prod = e.rescale(&e.mul_plain(&cts[0], &pt).unwrap()).unwrap();
    assert_eq!(prod.level(), level - 1);
    assert_eq!(prod.scale(), scale * scale / q_top);
    assert_bits(
        &zip_with(&vals[0], &vals[1], |x, y| x * y),
        &prod,
        s,
        24.0,
        "mul_plain",
    );

    // Real constant at the last prime: the scale comes back exactly.
    let c = e.rescale(&e.mul_const(&cts[0], -0.6180).unwrap()).unwrap();
    assert_eq!(c.scale(), scale);
    let expect: Vec<f64> = vals[0].iter().map(|x| x * -0.6180).collect();
    assert_bits(&expect, &c, s, 24.0, "mul_const");

    // Integer constant: no scale change, no level.
    let k = e.mul_integer(&cts[0], -3).unwrap();
    assert_eq!((k.level(), k.scale()), (level, scale));
    let expect: Vec<f64> = vals[0].iter().map(|x| x * -3.0).collect();
    assert_bits(&expect, &k, s, 24.0, "mul_integer");

    // Ciphertext product with relinearization and rescale.
    let m = e.mul_relin_rescale(&cts[0], &cts[1]).unwrap();
    assert_eq!(m.degree(), 1);
    assert_bits(
        &zip_with(&vals[0], &vals[1], |x, y| x * y),
        &m,
        s,
        22.0,
        "mul_relin",
    );
    // Squaring through the same operand twice.
    let sq = e.mul_relin_rescale(&cts[2], &cts[2]).unwrap();
    let expect: Vec<f64> = vals[2].iter().map(|x| x * x).collect();
    assert_bits(&expect, &sq, s, 22.0, "square");

    // Lazy relinearization: a0 a1 + a2 a3 with one key switch.
    let mut t = e.tensor(&cts[0], &cts[1]).unwrap();
    e.add_assign(&mut t, &e.tensor(&cts[2], &cts[3]).unwrap())
        .unwrap();
    assert_eq!(t.degree(), 2);
    let lazy = e.rescale(&e.relinearize(&t).unwrap()).unwrap();
    let expect: Vec<f64> = (0..slots)
        .map(|i| vals[0][i] * vals[1][i] + vals[2][i] * vals[3][i])
        .collect();
    assert_bits(&expect, &lazy, s, 21.0, "lazy relinearization");

    // A depth-4 chain down to level 0: x^16.
    let mut x = cts[0].clone();
    for step in 1..=4 {
        x = e.mul_relin_rescale(&x, &x).unwrap();
        let expect: Vec<f64> = vals[0].iter().map(|v| v.powi(1 << step)).collect();
        assert_bits(&expect, &x, s, 16.0, &format!("x^{}", 1 << step));
    }
    assert_eq!(x.level(), 0);
    let expect: Vec<f64> = vals[0].iter().map(|v| v.powi(16)).collect();
    assert_bits(&expect, &x, s, 16.0, "x^16");
}

fn rotated<T: Copy>(v: &[T], steps: isize) -> Vec<T> {
    let n = v.len() as isize;
    (0..n)
        .map(|i| v[(i + steps).rem_euclid(n) as usize])
        .collect()
}

#[test]
fn rotations_by_every_power_of_two_both_ways() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for (slots, level) in [(s.ctx.n() / 2, s.ctx.max_level()), (64, 2), (8, 0)] {
        let v = random_values(&mut rng, slots);
        let ct = encrypt(s, &v, slots, level, &mut rng);
        let mut k = 1isize;
        while (k as usize) < s.ctx.n() / 2 {
            for steps in [k, -k] {
                let r = s.eval.rotate(&ct, steps).unwrap();
                assert_eq!(r.level(), level);
                assert_bits(
                    &rotated(&v, steps),
                    &r,
                    s,
                    24.0,
                    &format!("rotate {steps} of {slots}"),
                );
            }
            k *= 2;
        }
        // Rotation by the slot count is the identity and needs no key.
        let same = s.eval.rotate(&ct, slots as isize).unwrap();
        assert_bits(&v, &same, s, 26.0, "identity rotation");
    }
}

#[test]
fn hoisted_rotations_match_the_reference() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let slots = s.ctx.n() / 2;
    let v = random_values(&mut rng, slots);
    let ct = encrypt(s, &v, slots, 3, &mut rng);
    let steps = [1isize, 2, 3, -5, 0, 16, -1];
    let out = s.eval.rotate_hoisted(&ct, &steps).unwrap();
    assert_eq!(out.len(), steps.len());
    for (r, &k) in out.iter().zip(&steps) {
        assert_bits(&rotated(&v, k), r, s, 24.0, &format!("hoisted rotate {k}"));
    }
}

#[test]
fn conjugation_of_complex_slots() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let slots = s.ctx.n() / 2;
    let v = random_complex(&mut rng, slots);
    let pt = s.ctx.encode_complex(&v, slots, 2, 2f64.powi(40)).unwrap();
    let ct = s.sk.encrypt(&s.ctx, &pt, &mut rng).unwrap();
    let conj = s.eval.conjugate(&ct).unwrap();
    let got = s
        .ctx
        .decode_complex(&s.sk.decrypt(&s.ctx, &conj).unwrap())
        .unwrap();
    let expect: Vec<Complex64> = v.iter().map(|z| z.conj()).collect();
    let stats = PrecisionStats::complex(&expect, &got);
    assert!(stats.min_bits >= 24.0, "{stats:?}");
    // Rotations act on complex slots too.
    let r = s.eval.rotate(&ct, 3).unwrap();
    let got = s
        .ctx
        .decode_complex(&s.sk.decrypt(&s.ctx, &r).unwrap())
        .unwrap();
    let stats = PrecisionStats::complex(&rotated(&v, 3), &got);
    assert!(stats.min_bits >= 24.0, "{stats:?}");
}

#[test]
fn inner_sums_match_the_reference() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let slots = s.ctx.n() / 2;
    let v = random_values(&mut rng, slots);
    let ct = encrypt(s, &v, slots, 2, &mut rng);
    for (batch, n) in [(1usize, 4usize), (1, 3), (2, 5), (16, 64), (1, slots)] {
        let sum = s.eval.inner_sum(&ct, batch, n).unwrap();
        let expect: Vec<f64> = (0..slots)
            .map(|i| (0..n).map(|j| v[(i + j * batch) % slots]).sum())
            .collect();
        assert_bits(
            &expect,
            &sum,
            s,
            16.0,
            &format!("inner sum batch {batch} n {n}"),
        );
    }
}

/// The proven bound on the key-switching error (module `keyswitch`): the error polynomial is
/// `(sum_j d_j e_j) / P + r_0 + r_1 s`, with `0 <= d_j < (m_j + 1) D_j` (ModUp), `|e_j| <= 19`
/// (the Gaussian sampler's tail cut), `|r_0|, |r_1| <= K` (rounding ModDown) and `|s|_1 <= N`.
fn key_switch_bound(ctx: &CkksContext, level: usize) -> f64 {
    let n = ctx.n() as f64;
    let q = ctx.params().q();
    let p: BigUint = ctx.params().p().iter().map(|&x| BigUint::from(x)).product();
    let alpha = ctx.params().digit_size();
    let k = ctx.params().p().len() as f64;
    let mut sum = 0f64;
    for digit in q[..=level].chunks(alpha) {
        let d: BigUint = digit.iter().map(|&x| BigUint::from(x)).product();
        let ratio = f64_ratio(&d, &p);
        sum += n * (digit.len() as f64 + 1.0) * ratio * 19.0;
    }
    sum + k * (n + 1.0)
}

fn f64_ratio(a: &BigUint, b: &BigUint) -> f64 {
    let shift = b.bits().saturating_sub(60);
    let a = (a >> shift).to_string().parse::<f64>().unwrap();
    let b = (b >> shift).to_string().parse::<f64>().unwrap();
    a / b
}

/// Largest centred coefficient of `x - y`, exactly.
fn max_diff(x: &RnsPoly<Ntt>, y: &RnsPoly<Ntt>) -> f64 {
    let diff = x.try_sub(y).unwrap().into_coeff();
    diff.to_bigint()
        .iter()
        .map(|c: &BigInt| c.to_string().parse::<f64>().unwrap().abs())
        .fold(0.0, f64::max)
}

#[test]
fn key_switching_noise_is_within_its_bound() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let slots = s.ctx.n() / 2;
    for level in [s.ctx.max_level(), 2, 1] {
        let bound = key_switch_bound(&s.ctx, level);
        let a = encrypt(s, &random_values(&mut rng, slots), slots, level, &mut rng);
        let b = encrypt(s, &random_values(&mut rng, slots), slots, level, &mut rng);
        // Relinearization: dec(relin(t)) - dec_{1,s,s^2}(t) is the key-switching error.
        let t = s.eval.tensor(&a, &b).unwrap();
        let exact = s.sk.decrypt(&s.ctx, &t).unwrap();
        let relin =
            s.sk.decrypt(&s.ctx, &s.eval.relinearize(&t).unwrap())
                .unwrap();
        let err = max_diff(relin.poly(), exact.poly());
        assert!(
            err <= bound,
            "relinearization at level {level}: {err} > bound {bound}"
        );
        // The error is far below the scale (here 2^40): it costs no precision.
        assert!(
            err < 2f64.powi(20),
            "relinearization error {err} at level {level}"
        );
        // Rotation: dec(rot(a)) - sigma(dec(a)).
        let g = s.ctx.rotation_galois_element(1);
        let rot =
            s.sk.decrypt(&s.ctx, &s.eval.rotate(&a, 1).unwrap())
                .unwrap();
        let plain = s.sk.decrypt(&s.ctx, &a).unwrap();
        let moved = plain.poly().automorphism(g).unwrap();
        let err = max_diff(rot.poly(), &moved);
        assert!(
            err <= bound,
            "rotation at level {level}: {err} > bound {bound}"
        );
    }
}

#[test]
fn evaluator_errors_name_the_mismatch() {
    let s = setup();
    let e = &s.eval;
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let v = random_values(&mut rng, 16);
    let a = encrypt(s, &v, 16, 3, &mut rng);
    let b = encrypt(s, &v, 16, 2, &mut rng);
    assert_eq!(
        e.add(&a, &b).unwrap_err(),
        CkksError::LevelMismatch { left: 3, right: 2 }
    );
    let c = encrypt(s, &v, 32, 3, &mut rng);
    assert_eq!(
        e.add(&a, &c).unwrap_err(),
        CkksError::SlotMismatch {
            left: 16,
            right: 32
        }
    );
    let sq = e.rescale(&e.mul_relin(&a, &a).unwrap()).unwrap();
    let a2 = e.drop_to_level(&a, 2).unwrap();
    assert!(matches!(
        e.add(&sq, &a2).unwrap_err(),
        CkksError::ScaleMismatch { .. }
    ));
    let low = e.drop_to_level(&a, 0).unwrap();
    assert_eq!(e.rescale(&low).unwrap_err(), CkksError::NoLevelLeft);
    assert!(matches!(
        e.drop_to_level(&a2, 3).unwrap_err(),
        CkksError::InvalidLevel { .. }
    ));
    let t = e.tensor(&a, &a).unwrap();
    assert!(matches!(
        e.tensor(&t, &a).unwrap_err(),
        CkksError::InvalidDegree { degree: 2, .. }
    ));
    assert!(matches!(
        e.rotate(&t, 1).unwrap_err(),
        CkksError::InvalidDegree { degree: 2, .. }
    ));
    // A product whose scale would exceed the modulus at level 0.
    let big = e.mul_const_with_scale(&low, 1.0, 2f64.powi(20));
    assert!(matches!(big.unwrap_err(), CkksError::ScaleOverflow { .. }));
    // Keys that are not there.
    let bare = Evaluator::new(&s.ctx, EvaluationKeySet::new()).unwrap();
    assert_eq!(
        bare.mul_relin(&a, &a).unwrap_err(),
        CkksError::MissingRelinearizationKey
    );
    let g = s.ctx.rotation_galois_element(7);
    assert_eq!(
        e.rotate(&a, 7).unwrap_err(),
        CkksError::MissingGaloisKey { galois_element: g }
    );
    // Keys of another parameter set.
    let other = build(10, 2, 1);
    assert!(matches!(
        Evaluator::new(&s.ctx, other.eval.keys().clone()).unwrap_err(),
        CkksError::ParamsMismatch { .. }
    ));
    assert!(matches!(
        other.eval.add(&a, &a).unwrap_err(),
        CkksError::ParamsMismatch { .. }
    ));
    // Messages say what to do.
    let msg = CkksError::MissingGaloisKey { galois_element: 5 }.to_string();
    assert!(msg.contains("element 5"), "{msg}");
    let msg = CkksError::LevelMismatch { left: 3, right: 2 }.to_string();
    assert!(msg.contains("3 and 2"), "{msg}");
}

#[test]
fn galois_elements_follow_the_slot_order() {
    let s = setup();
    let two_n = 2 * s.ctx.n();
    let mut g = 1usize;
    for r in 0..10isize {
        assert_eq!(s.ctx.rotation_galois_element(r), g);
        g = g * 5 % two_n;
    }
    // Rotating right by 1 is rotating left by N/2 - 1: 5^(N/2 - 1) = 5^{-1} mod 2N.
    let inv = s.ctx.rotation_galois_element(-1);
    assert_eq!(inv * 5 % two_n, 1);
    assert_eq!(s.ctx.conjugation_galois_element(), two_n - 1);
}

fn small() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| build(9, 3, 11))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// (a + b) * c - d, rotated by r: ring homomorphism and rotation, against f64.
    #[test]
    fn homomorphic_circuit_matches_f64(
        a in proptest::collection::vec(-1.0f64..1.0, 8),
        b in proptest::collection::vec(-1.0f64..1.0, 8),
        c in proptest::collection::vec(-1.0f64..1.0, 8),
        d in proptest::collection::vec(-1.0f64..1.0, 8),
        r in -7isize..8,
        seed in any::<u64>(),
    ) {
        let s = small();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let slots = 8;
        let level = s.ctx.max_level();
        let [ca, cb, cc] = [&a, &b, &c].map(|v| encrypt(s, v, slots, level, &mut rng));
        let e = &s.eval;
        let sum = e.add(&ca, &cb).unwrap();
        let prod = e.mul_relin_rescale(&sum, &cc).unwrap();
        // d encrypted at the product's level and scale, so they add without a mismatch.
        let pd = s.ctx.encode(&d, slots, prod.level(), prod.scale()).unwrap();
        let dd = s.sk.encrypt(&s.ctx, &pd, &mut rng).unwrap();
        let out = e.rotate(&e.sub(&prod, &dd).unwrap(), r);
        // The power-of-two keys cover every r in -7..8 only through composition; use 1, 2, 4.
        let out = match out {
            Ok(o) => o,
            Err(CkksError::MissingGaloisKey { .. }) => {
                let mut x = e.sub(&prod, &dd).unwrap();
                let mut left = r.rem_euclid(8);
                for k in [4isize, 2, 1] {
                    if left >= k {
                        x = e.rotate(&x, k).unwrap();
                        left -= k;
                    }
                }
                x
            }
            Err(other) => panic!("{other}"),
        };
        let expect: Vec<f64> = (0..slots).map(|i| (a[i] + b[i]) * c[i] - d[i]).collect();
        let got = decrypt(s, &out);
        let stats = PrecisionStats::real(&rotated(&expect, r), &got);
        prop_assert!(stats.min_bits >= 18.0, "{:?}", stats);
    }
}

#[test]
fn op_counts_match_the_executed_operations() {
    // A fresh evaluator (its own counters) over the shared keys.
    let s = setup();
    let eval = Evaluator::new(&s.ctx, s.eval.keys().clone()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(71);
    let v = random_values(&mut rng, 16);
    let a = encrypt(s, &v, 16, 4, &mut rng);
    let pt = s
        .ctx
        .encode(&v, 16, 4, s.ctx.params().default_scale())
        .unwrap();
    assert_eq!(eval.op_count(), ensi_ckks::OpCount::default());
    let before = eval.op_count();
    let b = eval.add(&a, &a).unwrap(); // add 1
    let c = eval.sub_plain(&b, &pt).unwrap(); // add 2
    let d = eval.add_const(&c, 0.5).unwrap(); // add 3
    let p = eval.mul_plain(&d, &pt).unwrap(); // plain_mul 1
    let m = eval.mul_relin(&a, &a).unwrap(); // tensor 1, relinearize 1
    let r = eval.rescale(&m).unwrap(); // rescale 1
    let _ = eval.rescale(&p).unwrap(); // rescale 2
    let _ = eval.mul_const(&r, 0.25).unwrap(); // const_mul 1
    let _ = eval.mul_integer(&r, 3).unwrap(); // const_mul 2
    let _ = eval.mul_by_i(&r).unwrap(); // const_mul 3
    let _ = eval.rotate(&a, 1).unwrap(); // rotate 1
    let _ = eval.rotate(&a, 16).unwrap(); // a whole turn: nothing
    let _ = eval.conjugate(&a).unwrap(); // conjugate 1
    let _ = eval.rotate_hoisted(&a, &[1, 2, 0, 4]).unwrap(); // hoisted 3
    let _ = eval.relinearize(&r).unwrap(); // degree 1: nothing
    let got = eval.op_count() - before;
    let mut expect = ensi_ckks::OpCount::default();
    expect.add = 3;
    expect.plain_mul = 1;
    expect.tensor = 1;
    expect.relinearize = 1;
    expect.rescale = 2;
    expect.const_mul = 3;
    expect.rotate = 1;
    expect.conjugate = 1;
    expect.hoisted_rotate = 3;
    assert_eq!(got, expect);
    assert_eq!(got.key_switches(), 6);
    eval.reset_op_count();
    assert_eq!(eval.op_count(), ensi_ckks::OpCount::default());
}

#[test]
fn scale_metadata_folds_constants_without_a_level() {
    let s = setup();
    let mut rng = ChaCha20Rng::seed_from_u64(72);
    let v = random_values(&mut rng, 32);
    let a = encrypt(s, &v, 32, 3, &mut rng);
    // 3.5 * x with no level and no noise: the decryption equals the reference 3.5 v.
    let folded = s.eval.fold_into_scale(&a, 3.5).unwrap();
    assert_eq!(folded.level(), a.level());
    let expect: Vec<f64> = v.iter().map(|x| 3.5 * x).collect();
    assert_bits(&expect, &folded, s, 23.0, "fold 3.5");
    // set_scale reinterprets: halving the scale doubles the values.
    let mut b = a.clone();
    s.eval.set_scale(&mut b, a.scale() / 2.0).unwrap();
    let expect: Vec<f64> = v.iter().map(|x| 2.0 * x).collect();
    assert_bits(&expect, &b, s, 23.0, "set_scale");
    // Invalid scales and constants are refused, and the ciphertext is left as it was.
    let mut c = a.clone();
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 2f64.powi(300)] {
        assert!(s.eval.set_scale(&mut c, bad).is_err(), "{bad}");
        assert_eq!(c.scale(), a.scale());
    }
    for bad in [0.0, -2.0, f64::NAN] {
        assert!(s.eval.fold_into_scale(&a, bad).is_err(), "{bad}");
    }
    // match_scale absorbs only floating-point drift: 2^-35 relative is snapped to the target
    // exactly, 2^-20 is refused and the ciphertext keeps its scale.
    let mut d = a.clone();
    let near = a.scale() * (1.0 + 2f64.powi(-35));
    s.eval.match_scale(&mut d, near).unwrap();
    assert_eq!(d.scale(), near);
    let far = a.scale() * (1.0 + 2f64.powi(-20));
    assert!(matches!(
        s.eval.match_scale(&mut d, far),
        Err(CkksError::ScaleMismatch { .. })
    ));
    assert_eq!(d.scale(), near);
    // A folded constant must still match in additions: the evaluator refuses a scale mismatch.
    assert!(matches!(
        s.eval.add(&a, &folded),
        Err(CkksError::ScaleMismatch { .. })
    ));
}
