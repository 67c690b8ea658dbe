//! Evaluation keys: streaming generation into a sink, seeded serialization, rejection of
//! corrupted key bytes, and decoded keys that still rotate and relinearize correctly.
#![allow(clippy::unwrap_used)]

use ensi_ckks::serialize::{HEADER_LEN, ObjectType, peek_header};
use ensi_ckks::{
    CkksContext, CkksError, EvaluationKey, EvaluationKeySet, Evaluator, FormatError, GaloisKey,
    KeyRequest, KeySink, Parameters, ParametersLiteral, PrecisionStats, RelinearizationKey,
    SecretKey, generate_evaluation_keys,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::Arc;

fn context(log_n: u32, levels: usize) -> Arc<CkksContext> {
    CkksContext::new(
        Parameters::new_insecure(ParametersLiteral::insecure_test(log_n, levels)).unwrap(),
    )
    .unwrap()
}

fn values(rng: &mut ChaCha20Rng, count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

fn format_err<T: std::fmt::Debug>(r: Result<T, CkksError>) -> FormatError {
    match r {
        Err(CkksError::Format(e)) => e,
        other => panic!("expected a format error, got {other:?}"),
    }
}

/// A sink that serializes every key it gets and keeps only the bytes, counting the largest.
#[derive(Default)]
struct ByteSink {
    blobs: Vec<Vec<u8>>,
    order: Vec<ObjectType>,
}

impl KeySink for ByteSink {
    type Error = CkksError;
    fn accept(&mut self, key: EvaluationKey) -> Result<(), CkksError> {
        let bytes = key.to_bytes()?;
        assert_eq!(bytes.len(), key.serialized_len());
        self.order.push(peek_header(&bytes)?.object_type);
        self.blobs.push(bytes);
        Ok(())
    }
}

#[test]
fn streamed_keys_decode_and_evaluate_correctly() {
    let ctx = context(10, 3);
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let request = KeyRequest::new()
        .with_relinearization()
        .with_rotations(&ctx, &[1, -1, 1, 4])
        .with_conjugation(&ctx);
    assert_eq!(
        request.key_count(),
        5,
        "the duplicate rotation is made once"
    );
    let mut sink = ByteSink::default();
    generate_evaluation_keys(&ctx, &sk, &request, &mut sink, &mut rng).unwrap();
    assert_eq!(
        sink.order,
        [
            ObjectType::RelinearizationKey,
            ObjectType::GaloisKey,
            ObjectType::GaloisKey,
            ObjectType::GaloisKey,
            ObjectType::GaloisKey
        ]
    );
    // Seeded: one polynomial per digit, not two.
    let poly: usize = ctx
        .params()
        .q()
        .iter()
        .chain(ctx.params().p())
        .map(|q| (ctx.n() * (64 - q.leading_zeros()) as usize).div_ceil(8))
        .sum();
    let dnum = ctx.key_switch().dnum();
    assert_eq!(sink.blobs[0].len(), HEADER_LEN + 33 + dnum * poly);
    assert_eq!(sink.blobs[1].len(), HEADER_LEN + 37 + dnum * poly);

    let mut keys = EvaluationKeySet::new();
    for b in &sink.blobs {
        let key = EvaluationKey::from_bytes(&ctx, b).unwrap();
        assert_eq!(key.to_bytes().unwrap(), *b, "re-encoding is the identity");
        keys.insert(key);
    }
    let eval = Evaluator::new(&ctx, keys).unwrap();
    let v = values(&mut rng, 512);
    let w = values(&mut rng, 512);
    let scale = ctx.params().default_scale();
    let enc = |x: &[f64], rng: &mut ChaCha20Rng| {
        let pt = ctx.encode(x, 512, ctx.max_level(), scale).unwrap();
        sk.encrypt(&ctx, &pt, rng).unwrap()
    };
    let (cv, cw) = (enc(&v, &mut rng), enc(&w, &mut rng));
    let prod = eval
        .rotate(&eval.mul_relin_rescale(&cv, &cw).unwrap(), -1)
        .unwrap();
    let got = ctx.decode(&sk.decrypt(&ctx, &prod).unwrap()).unwrap();
    let expect: Vec<f64> = (0..512)
        .map(|i| v[(i + 511) % 512] * w[(i + 511) % 512])
        .collect();
    let stats = PrecisionStats::real(&expect, &got);
    assert!(stats.min_bits >= 22.0, "{stats:?}");
}

#[test]
fn corrupted_key_bytes_are_rejected_with_errors() {
    let ctx = context(10, 2);
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let rlk = RelinearizationKey::generate(&ctx, &sk, &mut rng).unwrap();
    let gk = GaloisKey::generate(&ctx, &sk, ctx.rotation_galois_element(1), &mut rng).unwrap();
    let rb = rlk.to_bytes().unwrap();
    let gb = gk.to_bytes().unwrap();
    assert_eq!(RelinearizationKey::from_bytes(&ctx, &rb).unwrap(), rlk);
    assert_eq!(GaloisKey::from_bytes(&ctx, &gb).unwrap(), gk);

    // Every strict prefix (sampled) fails cleanly; trailing bytes too.
    for cut in (0..rb.len()).step_by(97).chain([rb.len() - 1]) {
        assert!(
            RelinearizationKey::from_bytes(&ctx, &rb[..cut]).is_err(),
            "prefix {cut}"
        );
    }
    for cut in (0..gb.len()).step_by(89).chain([gb.len() - 1]) {
        assert!(
            GaloisKey::from_bytes(&ctx, &gb[..cut]).is_err(),
            "prefix {cut}"
        );
    }
    let mut long = rb.clone();
    long.extend_from_slice(&[0, 0]);
    assert_eq!(
        format_err(RelinearizationKey::from_bytes(&ctx, &long)),
        FormatError::TrailingBytes { count: 2 }
    );
    // The wrong object type, either way round.
    assert!(matches!(
        format_err(GaloisKey::from_bytes(&ctx, &rb)),
        FormatError::WrongObjectType { found: 6, .. }
    ));
    assert!(matches!(
        format_err(RelinearizationKey::from_bytes(&ctx, &gb)),
        FormatError::WrongObjectType { found: 7, .. }
    ));
    // Galois elements that are even, one, or not below 2N.
    for bad in [2u32, 1, 2 * ctx.n() as u32 + 5] {
        let mut b = gb.clone();
        b[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(
            format_err(GaloisKey::from_bytes(&ctx, &b)),
            FormatError::InvalidField {
                field: "galois_element",
                value: u64::from(bad)
            }
        );
    }
    // A digit count other than the parameter set's.
    let mut b = rb.clone();
    b[HEADER_LEN + 32] = 9;
    assert_eq!(
        format_err(RelinearizationKey::from_bytes(&ctx, &b)),
        FormatError::InvalidField {
            field: "digits",
            value: 9
        }
    );
    // A residue at or above its prime (q_0 has 50 bits: seven bytes of ones exceed it).
    let mut b = rb.clone();
    b[HEADER_LEN + 33..HEADER_LEN + 40].fill(0xff);
    assert!(matches!(
        format_err(RelinearizationKey::from_bytes(&ctx, &b)),
        FormatError::ResidueOutOfRange { limb: 0, .. }
    ));
    // Another parameter set.
    let other = context(10, 3);
    assert!(matches!(
        RelinearizationKey::from_bytes(&other, &rb).unwrap_err(),
        CkksError::ParamsMismatch { .. }
    ));
    // Random single-byte corruptions never panic.
    for i in 0..200 {
        let mut b = gb.clone();
        let pos = (rng.next_u64() as usize) % b.len();
        b[pos] ^= 1 << (i % 8);
        let _ = EvaluationKey::from_bytes(&ctx, &b);
    }
}

#[test]
fn key_requests_reject_invalid_galois_elements() {
    let ctx = context(10, 2);
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut request = KeyRequest::new();
    request.galois_elements.push(4);
    let mut set = EvaluationKeySet::new();
    assert!(matches!(
        generate_evaluation_keys(&ctx, &sk, &request, &mut set, &mut rng).unwrap_err(),
        CkksError::InvalidArgument { .. }
    ));
    // Rotations by a multiple of N/2 need no key.
    let request = KeyRequest::new().with_rotations(&ctx, &[0, ctx.n() as isize / 2]);
    assert_eq!(request.key_count(), 0);
}

/// The seeded sizes at N = 2^16 (bootstrappable set: 26 + 5 primes, 6 digits).
#[test]
fn evaluation_key_sizes_at_n16() {
    let ctx = CkksContext::new(Parameters::new(ParametersLiteral::n16_bootstrappable()).unwrap())
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(24);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let gk = GaloisKey::generate(&ctx, &sk, ctx.rotation_galois_element(1), &mut rng).unwrap();
    // 60-bit q_0, 13 x 50-bit, 12 x 60-bit, 5 x 61-bit P: poly = 2^16 / 8 * 1735 bytes.
    let poly = (1usize << 16) / 8 * (60 + 13 * 50 + 12 * 60 + 5 * 61);
    assert_eq!(poly, 14_213_120);
    assert_eq!(gk.serialized_len(), HEADER_LEN + 37 + 6 * poly);
    assert_eq!(gk.to_bytes().unwrap().len(), 85_278_773);
}

/// `v` encoded over all slots at `level` and the default scale, encrypted under `sk`.
fn encrypt_at(
    ctx: &Arc<CkksContext>,
    sk: &SecretKey,
    v: &[f64],
    level: usize,
    rng: &mut ChaCha20Rng,
) -> ensi_ckks::Ciphertext {
    let pt = ctx
        .encode(v, ctx.n() / 2, level, ctx.params().default_scale())
        .unwrap();
    sk.encrypt(ctx, &pt, rng).unwrap()
}

/// A small context (8 Q primes, 4 digits of 2, 2 P primes), its secret key and the keys of
/// rotations by 1, -3 and 5 and of conjugation.
fn rotation_keys(
    seed: u64,
) -> (
    Arc<CkksContext>,
    ChaCha20Rng,
    SecretKey,
    [isize; 3],
    EvaluationKeySet,
) {
    let ctx = context(10, 7);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let steps = [1isize, -3, 5];
    let request = KeyRequest::new()
        .with_rotations(&ctx, &steps)
        .with_conjugation(&ctx);
    let whole = EvaluationKeySet::generate(&ctx, &sk, &request, &mut rng).unwrap();
    (ctx, rng, sk, steps, whole)
}

/// Truncated Galois keys (the limbs and digits above a level dropped): rotations, hoisted
/// rotations and conjugations at that level or below give the same ciphertexts as the whole
/// keys, bit for bit (and decrypt to the rotated message); higher levels and serialization are
/// refused; the key shrinks by the dropped limbs and digits.
#[test]
fn truncated_galois_keys_switch_exactly_as_whole_keys() {
    let (ctx, mut rng, sk, steps, whole) = rotation_keys(23);
    let mut cut = whole.clone();
    let keep = [ctx.rotation_galois_element(5)];
    let before = cut.heap_bytes();
    let max_level = 2;
    let freed = cut.truncate_galois_except(&ctx, max_level, &keep).unwrap();
    // Per truncated key: 2 of 4 digits kept, 3 + 2 of 10 limbs: a quarter of its bytes.
    let per_key = before / 4;
    assert_eq!(freed, 3 * (per_key - per_key / 4));
    assert_eq!(cut.heap_bytes(), before - freed);
    let g1 = ctx.rotation_galois_element(1);
    assert_eq!(
        cut.galois(g1).unwrap().switching_key().truncated_level(),
        Some(max_level)
    );
    assert_eq!(
        cut.galois(keep[0])
            .unwrap()
            .switching_key()
            .truncated_level(),
        None
    );
    assert!(
        EvaluationKey::Galois(cut.galois(g1).unwrap().clone())
            .to_bytes()
            .is_err()
    );
    let e_whole = Evaluator::new(&ctx, whole).unwrap();
    let e_cut = Evaluator::new(&ctx, cut).unwrap();
    let slots = ctx.n() / 2;
    let v = values(&mut rng, slots);
    for level in 0..=ctx.max_level() {
        let ct = encrypt_at(&ctx, &sk, &v, level, &mut rng);
        for &s in &steps {
            let a = e_whole.rotate(&ct, s);
            let b = e_cut.rotate(&ct, s);
            if level <= max_level || s == 5 {
                let (a, b) = (a.unwrap(), b.unwrap());
                assert_eq!(
                    a.to_bytes().unwrap(),
                    b.to_bytes().unwrap(),
                    "rotation {s} at level {level}"
                );
                let got = ctx.decode(&sk.decrypt(&ctx, &b).unwrap()).unwrap();
                let expect: Vec<f64> = (0..slots)
                    .map(|i| v[(i as isize + s).rem_euclid(slots as isize) as usize])
                    .collect();
                let err = got
                    .iter()
                    .zip(&expect)
                    .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
                assert!(err < 1e-6, "rotation {s} at level {level}: {err}");
            } else {
                assert!(a.is_ok());
                assert!(matches!(b, Err(CkksError::InvalidArgument { .. })));
            }
        }
        let hoisted = e_cut.rotate_hoisted(&ct, &steps);
        let conj = e_cut.conjugate(&ct);
        if level <= max_level {
            let bytes = |v: Vec<ensi_ckks::Ciphertext>| -> Vec<Vec<u8>> {
                v.iter().map(|c| c.to_bytes().unwrap()).collect()
            };
            assert_eq!(
                bytes(hoisted.unwrap()),
                bytes(e_whole.rotate_hoisted(&ct, &steps).unwrap())
            );
            assert_eq!(
                conj.unwrap().to_bytes().unwrap(),
                e_whole.conjugate(&ct).unwrap().to_bytes().unwrap()
            );
        } else {
            assert!(hoisted.is_err() && conj.is_err());
        }
    }
}

/// Compacted Galois keys (uniform halves dropped, regenerated from the seed at each switch):
/// half the bytes; rotations, hoisted rotations and conjugations at every level give the same
/// ciphertexts as the whole keys, bit for bit; a compacted key serializes to the same bytes as
/// the whole key; a compacted truncated key switches like the truncated one.
#[test]
fn compacted_galois_keys_switch_exactly_as_whole_keys() {
    let (ctx, mut rng, sk, steps, whole) = rotation_keys(29);
    let mut compact = whole.clone();
    let before = compact.heap_bytes();
    let galois_bytes: usize = whole
        .galois_elements()
        .iter()
        .map(|&g| whole.galois(g).unwrap().switching_key().heap_bytes())
        .sum();
    let freed = compact.compact_galois(&ctx).unwrap();
    assert_eq!(freed, galois_bytes / 2);
    assert_eq!(compact.heap_bytes(), before - freed);
    assert_eq!(compact.compact_galois(&ctx).unwrap(), 0);
    for g in whole.galois_elements() {
        let (w, c) = (whole.galois(g).unwrap(), compact.galois(g).unwrap());
        assert!(c.switching_key().is_compact() && !w.switching_key().is_compact());
        assert_eq!(
            EvaluationKey::Galois(w.clone()).to_bytes().unwrap(),
            EvaluationKey::Galois(c.clone()).to_bytes().unwrap()
        );
    }
    // Truncated after compaction: both cuts switch alike at their levels.
    let max_level = 3;
    let mut cut_whole = whole.clone();
    cut_whole
        .truncate_galois_except(&ctx, max_level, &[])
        .unwrap();
    let mut cut_compact = compact.clone();
    cut_compact
        .truncate_galois_except(&ctx, max_level, &[])
        .unwrap();
    let e_whole = Evaluator::new(&ctx, whole).unwrap();
    let e_compact = Evaluator::new(&ctx, compact).unwrap();
    let e_cut_whole = Evaluator::new(&ctx, cut_whole).unwrap();
    let e_cut_compact = Evaluator::new(&ctx, cut_compact).unwrap();
    let slots = ctx.n() / 2;
    let v = values(&mut rng, slots);
    let bytes = |v: Vec<ensi_ckks::Ciphertext>| -> Vec<Vec<u8>> {
        v.iter().map(|c| c.to_bytes().unwrap()).collect()
    };
    for level in 0..=ctx.max_level() {
        let ct = encrypt_at(&ctx, &sk, &v, level, &mut rng);
        for &s in &steps {
            let a = e_whole.rotate(&ct, s).unwrap();
            let b = e_compact.rotate(&ct, s).unwrap();
            assert_eq!(
                a.to_bytes().unwrap(),
                b.to_bytes().unwrap(),
                "{s} at {level}"
            );
            let got = ctx.decode(&sk.decrypt(&ctx, &b).unwrap()).unwrap();
            let err = (0..slots)
                .map(|i| (got[i] - v[(i as isize + s).rem_euclid(slots as isize) as usize]).abs())
                .fold(0.0f64, f64::max);
            assert!(err < 1e-6, "rotation {s} at level {level}: {err}");
        }
        assert_eq!(
            bytes(e_whole.rotate_hoisted(&ct, &steps).unwrap()),
            bytes(e_compact.rotate_hoisted(&ct, &steps).unwrap())
        );
        assert_eq!(
            e_whole.conjugate(&ct).unwrap().to_bytes().unwrap(),
            e_compact.conjugate(&ct).unwrap().to_bytes().unwrap()
        );
        if level <= max_level {
            assert_eq!(
                bytes(e_cut_whole.rotate_hoisted(&ct, &steps).unwrap()),
                bytes(e_cut_compact.rotate_hoisted(&ct, &steps).unwrap())
            );
        } else {
            assert!(e_cut_compact.rotate(&ct, 1).is_err());
        }
    }
}

/// Level-0 Galois keys (over `q_0 p_0`): serialized under their own tag and decoded back into a
/// level-0 key (a full key's tag never yields one), two limbs in one digit at N = 2^16; at
/// level 0 a rotation with one decrypts to the rotated message, as a full key's does; above
/// level 0 the evaluator uses the full key, and without one refuses.
#[test]
fn level0_galois_keys_rotate_at_level0_only() {
    let ctx = context(10, 2);
    let mut rng = ChaCha20Rng::seed_from_u64(25);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let g = ctx.rotation_galois_element(3);
    let k0 = GaloisKey::generate_level0(&ctx, &sk, g, &mut rng).unwrap();
    assert!(k0.is_level0());
    assert_eq!(k0.switching_key().limbs(), 2);
    let bytes = k0.to_bytes().unwrap();
    assert_eq!(
        peek_header(&bytes).unwrap().object_type,
        ObjectType::Level0GaloisKey
    );
    assert_eq!(GaloisKey::from_bytes(&ctx, &bytes).unwrap(), k0);
    match EvaluationKey::from_bytes(&ctx, &bytes).unwrap() {
        EvaluationKey::Galois(k) => assert!(k.is_level0()),
        other => panic!("decoded as {other:?}"),
    }
    for cut in (0..bytes.len()).step_by(101) {
        assert!(GaloisKey::from_bytes(&ctx, &bytes[..cut]).is_err(), "{cut}");
    }
    // A full key's bytes with the level-0 tag are refused, not read as a level-0 key.
    let mut full = GaloisKey::generate(&ctx, &sk, g, &mut rng)
        .unwrap()
        .to_bytes()
        .unwrap();
    full[6] = ObjectType::Level0GaloisKey as u8;
    assert!(GaloisKey::from_bytes(&ctx, &full).is_err());

    let only0 = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new().with_level0_galois_elements(&[g]),
        &mut rng,
    )
    .unwrap();
    let both = EvaluationKeySet::generate(
        &ctx,
        &sk,
        &KeyRequest::new()
            .with_rotations(&ctx, &[3])
            .with_level0_galois_elements(&[g]),
        &mut rng,
    )
    .unwrap();
    let (e0, e_both) = (
        Evaluator::new(&ctx, only0).unwrap(),
        Evaluator::new(&ctx, both).unwrap(),
    );
    let v = values(&mut rng, 512);
    let scale = ctx.params().default_scale();
    let expect: Vec<f64> = (0..512).map(|i| v[(i + 3) % 512]).collect();
    for level in [0, ctx.max_level()] {
        let pt = ctx.encode(&v, 512, level, scale).unwrap();
        let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
        let evals: &[&Evaluator] = if level == 0 {
            &[&e0, &e_both]
        } else {
            assert!(matches!(
                e0.rotate(&ct, 3).unwrap_err(),
                CkksError::MissingGaloisKey { .. }
            ));
            &[&e_both]
        };
        for e in evals {
            let got = ctx
                .decode(&sk.decrypt(&ctx, &e.rotate(&ct, 3).unwrap()).unwrap())
                .unwrap();
            let stats = PrecisionStats::real(&expect, &got);
            assert!(stats.min_bits >= 20.0, "level {level}: {stats:?}");
        }
    }
}

/// A level-0 Galois key at N = 2^16 is two 2^16-residue limbs, one digit: 2 MB in memory
/// against a full key's 6 x 31.
#[test]
fn level0_galois_key_size_at_n16() {
    let ctx = CkksContext::new(Parameters::new(ParametersLiteral::n16_bootstrappable()).unwrap())
        .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(26);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let k0 = GaloisKey::generate_level0(&ctx, &sk, 5, &mut rng).unwrap();
    assert_eq!(k0.switching_key().heap_bytes(), 2 * 2 * 8 * (1 << 16));
    // 60-bit q_0 and 61-bit p_0, packed: header, element, seed, digit count, one polynomial.
    let poly = (1usize << 16) / 8 * (60 + 61);
    assert_eq!(k0.serialized_len(), HEADER_LEN + 37 + poly);
}
