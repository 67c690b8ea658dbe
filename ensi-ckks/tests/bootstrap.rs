//! Bootstrapping against the f64 input: precision in bits over all slots, levels left, each
//! stage on its own, sparse slots; small insecure parameters (N = 2^12) for speed.
#![allow(clippy::unwrap_used)]

use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, Ciphertext, CkksContext, CkksError,
    Parameters, ParametersLiteral, PrecisionStats, SecretDistribution, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::Arc;

/// N = 2^12, scale 2^50, INSECURE (for tests). Q, bottom to top: q_0 of 60 bits, four 50-bit
/// primes (two for the caller, two for SlotsToCoeffs), eleven 60-bit primes (EvalMod at scale
/// 2^60, then CoeffsToSlots); P = 4 x 61 bits.
fn context() -> Arc<CkksContext> {
    context_with(2, 9)
}

/// `user` 50-bit levels for the caller, two for SlotsToCoeffs, `eval_mod` 60-bit levels for
/// EvalMod and two for CoeffsToSlots.
fn context_with(user: usize, eval_mod: usize) -> Arc<CkksContext> {
    let literal = ParametersLiteral::insecure_bootstrap_test(12, user, eval_mod);
    CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap()
}

fn literal() -> BootstrapParametersLiteral {
    BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        log_eval_scale: Some(60),
        ..BootstrapParametersLiteral::default()
    }
}

fn uniform(rng: &mut ChaCha20Rng, count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

fn setup(
    literal: &BootstrapParametersLiteral,
    seed: u64,
) -> (Arc<CkksContext>, SecretKey, Bootstrapper) {
    setup_in(context(), literal, seed)
}

fn setup_in(
    ctx: Arc<CkksContext>,
    literal: &BootstrapParametersLiteral,
    seed: u64,
) -> (Arc<CkksContext>, SecretKey, Bootstrapper) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let keys = BootstrapKeys::generate(&ctx, &sk, literal, &mut rng).unwrap();
    let bts = Bootstrapper::new(&ctx, literal.clone(), keys).unwrap();
    (ctx, sk, bts)
}

fn encrypt_at_zero(
    ctx: &Arc<CkksContext>,
    sk: &SecretKey,
    v: &[f64],
    slots: usize,
    rng: &mut ChaCha20Rng,
) -> Ciphertext {
    let pt = ctx
        .encode(v, slots, 0, ctx.params().default_scale())
        .unwrap();
    sk.encrypt(ctx, &pt, rng).unwrap()
}

#[test]
fn full_slot_bootstrapping_precision_and_levels() {
    let lit = literal();
    let (ctx, sk, bts) = setup(&lit, 1);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let slots = ctx.n() / 2;
    let v = uniform(&mut rng, slots);
    let ct = encrypt_at_zero(&ctx, &sk, &v, slots, &mut rng);
    let (out, times) = bts.bootstrap_timed(&ct).unwrap();
    assert_eq!(out.level(), ctx.max_level() - lit.depth());
    assert_eq!(out.level(), bts.output_level());
    let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
    let stats = PrecisionStats::real(&v, &got);
    eprintln!(
        "full slots: {stats:?}, levels left {}, {times:?}",
        out.level()
    );
    assert!(
        stats.min_bits >= 24.0 && stats.median_bits >= 26.5,
        "{stats:?}"
    );
    // The refreshed ciphertext computes on: one product with itself.
    let e = bts.evaluator();
    let sq = e.mul_relin_rescale(&out, &out).unwrap();
    let got = ctx.decode(&sk.decrypt(&ctx, &sq).unwrap()).unwrap();
    let expect: Vec<f64> = v.iter().map(|x| x * x).collect();
    assert!(PrecisionStats::real(&expect, &got).min_bits >= 22.0);
}

#[test]
fn each_stage_matches_its_f64_model() {
    let lit = literal();
    let (ctx, sk, bts) = setup(&lit, 3);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let slots = ctx.n() / 2;
    let v = uniform(&mut rng, slots);
    let ct = encrypt_at_zero(&ctx, &sk, &v, slots, &mut rng);
    let q0 = ctx.params().q()[0] as f64;
    // ModRaise: the plaintext becomes t = Delta m + e + q0 I with a small integer I.
    let raised = bts.mod_raise(&ct).unwrap();
    assert_eq!(raised.level(), ctx.max_level());
    let t = ctx
        .plaintext_coefficients(&sk.decrypt(&ctx, &raised).unwrap())
        .unwrap();
    let m = ctx
        .plaintext_coefficients(&sk.decrypt(&ctx, &ct).unwrap())
        .unwrap();
    let mut max_i = 0f64;
    for (ti, mi) in t.iter().zip(&m) {
        let i = ((ti - mi) / q0).round();
        max_i = max_i.max(i.abs());
        assert!(
            (ti - mi - i * q0).abs() < 2f64.powi(30),
            "t - m is not a multiple of q0"
        );
    }
    assert!(max_i <= lit.k as f64, "|I| = {max_i} exceeds K = {}", lit.k);
    // CoeffsToSlots: the slots hold t / (q0 (K + 1)) in bit-reversed order.
    let (re, im) = bts.coeffs_to_slots(&raised).unwrap();
    assert_eq!(re.level(), ctx.max_level() - lit.cts_level_budget);
    let k1 = (lit.k + 1) as f64;
    let bits = slots.trailing_zeros();
    let rev = |i: usize| i.reverse_bits() >> (usize::BITS - bits);
    let dr = ctx.decode(&sk.decrypt(&ctx, &re).unwrap()).unwrap();
    let di = ctx.decode(&sk.decrypt(&ctx, &im).unwrap()).unwrap();
    let (er, ei): (Vec<f64>, Vec<f64>) = (0..slots)
        .map(|i| (t[rev(i)] / (q0 * k1), t[rev(i) + slots] / (q0 * k1)))
        .unzip();
    eprintln!("cts re {:?}", PrecisionStats::real(&er, &dr));
    assert!(PrecisionStats::real(&er, &dr).min_bits >= 25.0);
    assert!(PrecisionStats::real(&ei, &di).min_bits >= 25.0);
    // EvalMod: sin(2 pi x) with x = (K + 1) y.
    let (s, stats) = bts.eval_mod(&re).unwrap();
    assert_eq!(stats.levels, 5, "{stats:?}");
    let ds = ctx.decode(&sk.decrypt(&ctx, &s).unwrap()).unwrap();
    let es: Vec<f64> = er
        .iter()
        .map(|y| (2.0 * std::f64::consts::PI * k1 * y).sin())
        .collect();
    eprintln!("evalmod {:?}", PrecisionStats::real(&es, &ds));
    assert!(PrecisionStats::real(&es, &ds).min_bits >= 20.0);
}

#[test]
fn the_arcsine_correction_within_its_level_budget() {
    // Degree 3 costs two more levels: 2 + (5 + 4 + 2) + 2 = 15, all of a set with two more
    // 60-bit EvalMod primes and no caller levels.
    let lit = BootstrapParametersLiteral {
        arcsine_degree: 3,
        ..literal()
    };
    assert_eq!(lit.depth(), 15);
    let (ctx, sk, bts) = setup_in(context_with(0, 11), &lit, 7);
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let slots = ctx.n() / 2;
    let v = uniform(&mut rng, slots);
    let ct = encrypt_at_zero(&ctx, &sk, &v, slots, &mut rng);
    let out = bts.bootstrap(&ct).unwrap();
    assert_eq!(out.level(), 0);
    let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
    let stats = PrecisionStats::real(&v, &got);
    eprintln!("full slots with arcsine 3: {stats:?}");
    assert!(
        stats.min_bits >= 24.0 && stats.median_bits >= 26.5,
        "{stats:?}"
    );
    // One more level than the set has: refused with an error.
    let deeper = BootstrapParametersLiteral {
        arcsine_degree: 5,
        ..literal()
    };
    let keys = BootstrapKeys::generate(&ctx, &sk, &deeper, &mut rng).unwrap();
    assert!(Bootstrapper::new(&ctx, deeper, keys).is_err());
}

#[test]
fn sparse_slots() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    // The partial trace sums tau = 4 conjugates of I: a wider EvalMod interval.
    let lit = BootstrapParametersLiteral {
        log_slots: Some(9),
        k: 32,
        double_angle: 5,
        ..literal()
    };
    // Five double angles: ten EvalMod levels at 2^60.
    let (ctx, sk, bts) = setup_in(context_with(1, 10), &lit, 6);
    let slots = 1 << 9;
    let v = uniform(&mut rng, slots);
    let ct = encrypt_at_zero(&ctx, &sk, &v, slots, &mut rng);
    let out = bts.bootstrap(&ct).unwrap();
    let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
    let stats = PrecisionStats::real(&v, &got);
    eprintln!("sparse 2^9 slots: {stats:?}");
    assert!(
        stats.min_bits >= 21.0 && stats.median_bits >= 23.0,
        "{stats:?}"
    );
}

#[test]
fn an_interval_too_small_for_the_trace_is_refused() {
    // 2^9 of 2^11 slots: tau = 4, so I' spreads over about 7 sqrt(32 / 12 * 4) ~ 23 > K = 16.
    let lit = BootstrapParametersLiteral {
        log_slots: Some(9),
        ..literal()
    };
    let ctx = context();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let err = Bootstrapper::new(&ctx, lit, keys).unwrap_err();
    assert!(err.to_string().contains("too small"), "{err}");
}

#[test]
fn mismatched_eval_scale_is_refused() {
    // A uniform 50-bit chain cannot keep a 2^60 EvalMod scale.
    let mut log_q = vec![60];
    log_q.extend(std::iter::repeat_n(50, 15));
    let literal = ParametersLiteral {
        log_n: 12,
        log_q,
        log_p: vec![61; 4],
        dnum: 4,
        secret: SecretDistribution::UniformTernary,
        error_std: 3.2,
        log_default_scale: 50,
    };
    let ctx = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let lit = self::literal();
    let keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let err = Bootstrapper::new(&ctx, lit, keys).unwrap_err();
    assert!(err.to_string().contains("EvalMod scale"), "{err}");
}

/// The default N = 2^16 set and bootstrapping parameters (128-bit secure), full slots.
#[test]
fn n16_full_slot_bootstrapping() {
    let ctx = CkksContext::new(Parameters::new(ParametersLiteral::n16_bootstrappable()).unwrap())
        .unwrap();
    let lit = BootstrapParametersLiteral::default();
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let start = std::time::Instant::now();
    let keys = BootstrapKeys::generate(&ctx, &sk, &lit, &mut rng).unwrap();
    let keygen = start.elapsed();
    let bts = Bootstrapper::new(&ctx, lit.clone(), keys).unwrap();
    let slots = ctx.n() / 2;
    let v = uniform(&mut rng, slots);
    let ct = encrypt_at_zero(&ctx, &sk, &v, slots, &mut rng);
    let (out, times) = bts.bootstrap_timed(&ct).unwrap();
    assert_eq!(out.level(), 10);
    let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
    let stats = PrecisionStats::real(&v, &got);
    eprintln!(
        "N = 2^16: {stats:?}, levels left {}, keygen {keygen:?}, {times:?}",
        out.level()
    );
    // Measured: 18.9 bits for the worst of the 32768 slots, 21.8 median (the noise grows with
    // sqrt(N) next to the N = 2^12 test).
    assert!(
        stats.min_bits >= 17.5 && stats.median_bits >= 20.5,
        "{stats:?}"
    );
    // The same with an RMSNorm-like gain in [0.5, 2] folded into SlotsToCoeffs.
    let gain: Vec<f64> = uniform(&mut rng, slots)
        .iter()
        .map(|g| 1.25 + 0.75 * g)
        .collect();
    let opts = ensi_ckks::BootstrapOptions {
        gain: Some(gain.clone()),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let out = bts.bootstrap_with(&ct, &opts).unwrap();
    let took = start.elapsed();
    assert_eq!(out.level(), 10);
    let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
    let expect: Vec<f64> = v.iter().zip(&gain).map(|(a, g)| a * g).collect();
    let stats = PrecisionStats::real(&expect, &got);
    eprintln!("N = 2^16 with a gain folded in: {stats:?}, {took:?}");
    assert!(
        stats.min_bits >= 17.5 && stats.median_bits >= 20.5,
        "{stats:?}"
    );
}

#[test]
fn streamed_transforms_give_the_same_bootstrap() {
    // Low memory (diagonals encoded during the bootstrap, also on the two-iteration path with
    // its scaled SlotsToCoeffs; EvalMod's halves in sequence; Galois keys compacted and cut to
    // the levels bootstrapping uses them at) against the defaults, on the same input: the same
    // plaintexts and operations (the keys' noise differs), so the same precision; a cut key
    // used above its level would be an error.
    let lit = literal();
    let (ctx, sk, bts) = setup(&lit, 31);
    let streamed_lit = BootstrapParametersLiteral {
        low_memory: true,
        compact_keys: true,
        ..lit.clone()
    };
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let keys = BootstrapKeys::generate(&ctx, &sk, &streamed_lit, &mut rng).unwrap();
    let galois = keys.evaluation.galois_elements();
    assert!(!galois.is_empty());
    for &g in &galois {
        let key = keys.evaluation.galois(g).unwrap().switching_key();
        assert!(key.is_compact());
    }
    let streamed = Bootstrapper::new(&ctx, streamed_lit, keys).unwrap();
    let (key_bytes, transform_bytes) = streamed.heap_bytes();
    let (whole_key_bytes, whole_transform_bytes) = bts.heap_bytes();
    assert_eq!(transform_bytes, 0);
    assert!(whole_transform_bytes > 0 && key_bytes < whole_key_bytes);
    assert_eq!(streamed.output_level(), bts.output_level());
    let slots = ctx.n() / 2;
    let v = uniform(&mut rng, slots);
    let ct = encrypt_at_zero(&ctx, &sk, &v, slots, &mut rng);
    let decode = |c: &ensi_ckks::Ciphertext| ctx.decode(&sk.decrypt(&ctx, c).unwrap()).unwrap();
    let a = decode(&bts.bootstrap(&ct).unwrap());
    let b = decode(&streamed.bootstrap(&ct).unwrap());
    let pa = PrecisionStats::real(&v, &a);
    let pb = PrecisionStats::real(&v, &b);
    eprintln!("pre-encoded {pa:?}\nstreamed {pb:?}");
    assert!(pb.min_bits >= 24.0 && (pa.min_bits - pb.min_bits).abs() < 1.0);
    let twice = streamed
        .bootstrap_twice(&ct, Bootstrapper::SECOND_ITERATION_GAIN)
        .unwrap();
    assert_eq!(twice.level(), bts.output_level());
    assert!(PrecisionStats::real(&v, &decode(&twice)).min_bits >= pb.min_bits + 5.0);
}

#[test]
fn a_second_iteration_adds_precision() {
    let lit = literal();
    let (ctx, sk, bts) = setup(&lit, 11);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let slots = ctx.n() / 2;
    let v = uniform(&mut rng, slots);
    let ct = encrypt_at_zero(&ctx, &sk, &v, slots, &mut rng);
    let once = bts.bootstrap(&ct).unwrap();
    let twice = bts.bootstrap_twice(&ct, 20).unwrap();
    assert_eq!(twice.level(), bts.output_level());
    assert!((twice.scale() / ctx.params().default_scale() - 1.0).abs() < 1e-9);
    let p1 = PrecisionStats::real(&v, &ctx.decode(&sk.decrypt(&ctx, &once).unwrap()).unwrap());
    let p2 = PrecisionStats::real(&v, &ctx.decode(&sk.decrypt(&ctx, &twice).unwrap()).unwrap());
    eprintln!("one iteration {p1:?}\ntwo iterations {p2:?}");
    assert!(p2.min_bits >= p1.min_bits + 5.0, "{p1:?} vs {p2:?}");
    assert!(bts.bootstrap_twice(&ct, 0).is_err());
}

#[test]
fn a_gain_vector_rides_in_slots_to_coeffs_at_no_level() {
    let lit = literal();
    let (ctx, sk, bts) = setup(&lit, 21);
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let slots = ctx.n() / 2;
    let v = uniform(&mut rng, slots);
    let gain: Vec<f64> = uniform(&mut rng, slots)
        .iter()
        .map(|g| 1.25 + 0.75 * g)
        .collect();
    let ct = encrypt_at_zero(&ctx, &sk, &v, slots, &mut rng);
    let e = bts.evaluator();
    let before = e.op_count();
    let opts = ensi_ckks::BootstrapOptions {
        gain: Some(gain.clone()),
        ..Default::default()
    };
    let out = bts.bootstrap_with(&ct, &opts).unwrap();
    let ops = e.op_count() - before;
    assert_eq!(ops.bootstrap, 1);
    assert_eq!(out.level(), bts.output_level());
    let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
    let expect: Vec<f64> = v.iter().zip(&gain).map(|(a, g)| a * g).collect();
    let stats = PrecisionStats::real(&expect, &got);
    eprintln!("gain folded: {stats:?}");
    assert!(stats.min_bits >= 23.0, "{stats:?}");
    // A gain of the wrong length is an error.
    let bad = ensi_ckks::BootstrapOptions {
        gain: Some(vec![1.0; 3]),
        ..Default::default()
    };
    assert!(bts.bootstrap_with(&ct, &bad).is_err());
}

#[test]
fn inputs_at_another_scale_and_their_range() {
    let lit = literal();
    let (ctx, sk, bts) = setup(&lit, 23);
    let mut rng = ChaCha20Rng::seed_from_u64(24);
    let slots = ctx.n() / 2;
    let delta = ctx.params().default_scale();
    // Values up to 3 at a quarter of the default scale: raw coefficients as large as the
    // default input's; the output is the values at the default scale.
    let v: Vec<f64> = uniform(&mut rng, slots).iter().map(|x| 3.0 * x).collect();
    let pt = ctx.encode(&v, slots, 0, delta / 4.0).unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let opts = ensi_ckks::BootstrapOptions {
        input_bound: 3.0,
        gain: None,
    };
    let out = bts.bootstrap_with(&ct, &opts).unwrap();
    let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
    let stats = PrecisionStats::real(&v, &got);
    eprintln!("input at scale delta/4, |x| <= 3: {stats:?}");
    assert!(stats.min_bits >= 20.0, "{stats:?}");
    // The plain entry point still wants the default scale.
    assert!(matches!(
        bts.bootstrap(&ct),
        Err(CkksError::ScaleMismatch { .. })
    ));
    // A bound beyond what EvalMod covers (q_0 / 2^8 over the scale: 4 at the default scale)
    // is refused with the largest one allowed.
    let at_default = encrypt_at_zero(&ctx, &sk, &v[..slots], slots, &mut rng);
    let too_big = ensi_ckks::BootstrapOptions {
        input_bound: 8.0,
        gain: None,
    };
    match bts.bootstrap_with(&at_default, &too_big) {
        Err(CkksError::InputOutOfRange { bound, max_bound }) => {
            assert_eq!(bound, 8.0);
            let q0 = ctx.params().q()[0] as f64;
            assert!((max_bound - q0 / 256.0 / delta).abs() < 1e-9);
        }
        other => panic!("expected a range error, got {other:?}"),
    }
}

#[test]
fn two_real_ciphertexts_share_one_bootstrap() {
    let lit = literal();
    let (ctx, sk, bts) = setup(&lit, 25);
    let mut rng = ChaCha20Rng::seed_from_u64(26);
    let slots = ctx.n() / 2;
    let x = uniform(&mut rng, slots);
    let y = uniform(&mut rng, slots);
    let gain: Vec<f64> = uniform(&mut rng, slots)
        .iter()
        .map(|g| 1.0 + 0.5 * g)
        .collect();
    let cx = encrypt_at_zero(&ctx, &sk, &x, slots, &mut rng);
    let cy = encrypt_at_zero(&ctx, &sk, &y, slots, &mut rng);
    let e = bts.evaluator();
    let before = e.op_count();
    let opts = ensi_ckks::BootstrapOptions {
        input_bound: 1.0,
        gain: Some(gain.clone()),
    };
    let (ox, oy) = bts.bootstrap_pair(&cx, &cy, &opts).unwrap();
    assert_eq!((e.op_count() - before).bootstrap, 1);
    for (out, v) in [(&ox, &x), (&oy, &y)] {
        assert_eq!(out.level(), bts.output_level());
        let got = ctx.decode(&sk.decrypt(&ctx, out).unwrap()).unwrap();
        let expect: Vec<f64> = v.iter().zip(&gain).map(|(a, g)| a * g).collect();
        let stats = PrecisionStats::real(&expect, &got);
        eprintln!("paired: {stats:?}");
        assert!(stats.min_bits >= 21.0, "{stats:?}");
    }
}
