//! The bootstrapping keys: the dense-to-sparse key spans exactly `q_0 p_0`, nothing public under
//! the ephemeral sparse secret exceeds the security bound, too-sparse secrets are refused before
//! any key is made, the security report of the default set is pinned (checked against exact
//! big-integer binomials), and the keys travel: streamed, serialized, decoded and used by a
//! bootstrapper that never saw a secret, at the precision of in-memory keys.
#![allow(clippy::unwrap_used)]

use ensi_ckks::serialize::{FORMAT_VERSION, ObjectType, mark_test_object, peek_header};
use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext, CkksError,
    DenseToSparseKey, EvaluationKey, EvaluationKeySet, KeyRequest, KeySink, KeySpan, Parameters,
    ParametersLiteral, PrecisionStats, SecretDistribution, SecretKey, SecretRole, Security,
    SparseToDenseKey, generate_bootstrap_keys, generate_encapsulation_keys,
};
use num_bigint::BigUint;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::Arc;

fn small_context() -> Arc<CkksContext> {
    let literal = ParametersLiteral::insecure_bootstrap_test(12, 2, 9);
    CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap()
}

fn small_literal() -> BootstrapParametersLiteral {
    BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        ..BootstrapParametersLiteral::default()
    }
}

fn default_context() -> Arc<CkksContext> {
    CkksContext::new(Parameters::new(ParametersLiteral::n16_bootstrappable()).unwrap()).unwrap()
}

/// Collects every key it is handed, in order.
#[derive(Default)]
struct Collect(Vec<EvaluationKey>);

impl KeySink for Collect {
    type Error = CkksError;
    fn accept(&mut self, key: EvaluationKey) -> Result<(), CkksError> {
        self.0.push(key);
        Ok(())
    }
}

/// `log2 C(n, k)` from exact big integers (an independent check of the report's estimate).
fn log2_binomial_exact(n: u64, k: u64) -> f64 {
    let mut num = BigUint::from(1u32);
    let mut den = BigUint::from(1u32);
    for i in 0..k {
        num *= n - i;
        den *= i + 1;
    }
    let c = num / den;
    let bits = c.bits();
    // The top 53 bits give the mantissa.
    let shift = bits.saturating_sub(53);
    let top: BigUint = &c >> shift;
    let top = top.to_u64_digits().first().copied().unwrap_or(0) as f64;
    top.log2() + shift as f64
}

#[test]
fn dense_to_sparse_key_spans_exactly_two_primes() {
    let ctx = small_context();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut sink = Collect::default();
    generate_encapsulation_keys(&ctx, &sk, &small_literal(), &mut sink, &mut rng).unwrap();
    assert_eq!(sink.0.len(), 2);
    let EvaluationKey::DenseToSparse(d2s) = &sink.0[0] else {
        panic!("the dense-to-sparse key comes first");
    };
    let key = d2s.switching_key();
    assert_eq!(key.span(), KeySpan::Encapsulation);
    assert_eq!(key.limbs(), 2);
    assert_eq!(key.digits(), 1);
    let primes: Vec<u64> = key.b()[0].moduli().iter().map(|m| m.q()).collect();
    assert_eq!(primes, vec![ctx.params().q()[0], ctx.params().p()[0]]);
    let expect = (ctx.params().q()[0] as f64).log2() + (ctx.params().p()[0] as f64).log2();
    assert!((key.log_modulus() - expect).abs() < 1e-9);
    assert_eq!(d2s.hamming_weight(), 32);
    // The sparse-to-dense key is an ordinary full key under the main secret.
    let EvaluationKey::SparseToDense(s2d) = &sink.0[1] else {
        panic!("the sparse-to-dense key comes second");
    };
    assert_eq!(s2d.switching_key().span(), KeySpan::Full);
    assert_eq!(s2d.switching_key().limbs(), ctx.key_limbs());
    assert_eq!(s2d.switching_key().digits(), ctx.params().dnum());
}

#[test]
fn default_set_security_report_is_pinned() {
    let ctx = default_context();
    let lit = BootstrapParametersLiteral::default();
    let report = lit.security_report(ctx.params());
    assert_eq!(report.security, Security::Bits128);
    assert_eq!(report.secrets.len(), 2);
    assert!(report.is_128_bit(), "{report}");

    let main = &report.secrets[0];
    assert_eq!(main.role, SecretRole::Main);
    assert_eq!(main.distribution, SecretDistribution::UniformTernary);
    assert_eq!(main.hamming_weight, None);
    assert_eq!(main.log_n, 16);
    // log2(QP) from the primes, against the HE standard's 1747.
    let qp: BigUint = ctx
        .params()
        .q()
        .iter()
        .chain(ctx.params().p())
        .map(|&x| BigUint::from(x))
        .product();
    assert!((main.log_modulus - qp.bits() as f64).abs() <= 1.0);
    assert!(main.log_modulus > 1730.0 && main.log_modulus <= 1747.0);
    assert_eq!(main.max_log_modulus, Some(1747.0));
    assert!(main.secure_128);

    let eph = &report.secrets[1];
    assert_eq!(eph.role, SecretRole::EphemeralSparse);
    assert_eq!(eph.hamming_weight, Some(32));
    let q0p0 = BigUint::from(ctx.params().q()[0]) * BigUint::from(ctx.params().p()[0]);
    assert!((eph.log_modulus - q0p0.bits() as f64).abs() <= 1.0);
    assert!(eph.log_modulus < 122.0);
    // The cheapest attack of the model at this point is meet in the middle on the support
    // and signs: (log2 C(2^16, 32) + 32) / 2, here from exact integers.
    let mitm = (log2_binomial_exact(1 << 16, 32) + 32.0) / 2.0;
    let bits = eph.estimated_bits.unwrap();
    assert!(bits <= mitm + 1e-6 && bits > mitm - 0.5, "{bits} vs {mitm}");
    assert!(bits > 200.0);
    assert!(eph.max_log_modulus.unwrap() >= eph.log_modulus);
    assert!(eph.secure_128);
    let text = report.to_string();
    assert!(text.contains("ephemeral sparse secret") && text.contains("h = 32"));
    assert!(!text.contains("NOT"), "{text}");
}

#[test]
fn nothing_public_under_the_sparse_secret_exceeds_the_bound() {
    // Every key the default set's bootstrapping streams that is under the ephemeral secret
    // (only the dense-to-sparse key) spans at most the modulus the report allows.
    let ctx = default_context();
    let lit = BootstrapParametersLiteral::default();
    let report = lit.security_report(ctx.params());
    let bound = report.secrets[1].max_log_modulus.unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut sink = Collect::default();
    generate_encapsulation_keys(&ctx, &sk, &lit, &mut sink, &mut rng).unwrap();
    let mut under_sparse = 0;
    for key in &sink.0 {
        if let EvaluationKey::DenseToSparse(k) = key {
            under_sparse += 1;
            let span = k.switching_key().log_modulus();
            assert!(span <= bound, "{span} > {bound}");
            assert!(span <= report.secrets[1].log_modulus + 1e-9);
        }
    }
    assert_eq!(under_sparse, 1);
}

#[test]
fn too_sparse_ephemeral_secrets_are_refused_before_any_key() {
    let ctx = default_context();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let lit = BootstrapParametersLiteral {
        ephemeral_hamming_weight: 16,
        ..BootstrapParametersLiteral::default()
    };
    let mut sink = Collect::default();
    let err = generate_bootstrap_keys(&ctx, &sk, &lit, &KeyRequest::new(), &mut sink, &mut rng)
        .unwrap_err();
    match err {
        CkksError::InsecureEphemeralSecret {
            hamming_weight: 16,
            min_hamming_weight,
            n: 65536,
            ..
        } => {
            // 19 is where meet in the middle on the support and signs, the cheapest attack of
            // the model at this modulus, crosses 128 bits: from exact binomials.
            let mitm = |h: u64| (log2_binomial_exact(1 << 16, h) + h as f64) / 2.0;
            assert!(mitm(18) < 128.0 && mitm(19) >= 128.0);
            assert_eq!(min_hamming_weight, 19);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(sink.0.is_empty(), "no key may be made before the check");
    assert!(!lit.security_report(ctx.params()).is_128_bit());
    // The threshold itself is accepted.
    let ok = BootstrapParametersLiteral {
        ephemeral_hamming_weight: 19,
        ..lit.clone()
    };
    ok.check_ephemeral_security(&ctx).unwrap();
    // Weights outside 1..=N are invalid everywhere, even on insecure sets.
    let zero = BootstrapParametersLiteral {
        ephemeral_hamming_weight: 0,
        ..small_literal()
    };
    assert!(matches!(
        zero.check_ephemeral_security(&small_context()),
        Err(CkksError::InvalidHammingWeight { .. })
    ));
}

#[test]
fn bootstrapping_keys_travel_and_bootstrap_without_the_secret() {
    let ctx = small_context();
    let lit = small_literal();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    // Streamed: every key once, the encapsulation keys last; each serialized on arrival.
    let mut sink = Collect::default();
    generate_bootstrap_keys(&ctx, &sk, &lit, &KeyRequest::new(), &mut sink, &mut rng).unwrap();
    let expected = lit.key_request(&ctx).unwrap().key_count() + 2;
    assert_eq!(sink.0.len(), expected);
    let files: Vec<Vec<u8>> = sink.0.iter().map(|k| k.to_bytes().unwrap()).collect();
    for (key, bytes) in sink.0.iter().zip(&files) {
        assert_eq!(bytes.len(), key.serialized_len());
    }
    drop(sink);

    // The server side: decode from bytes only.
    let mut set = EvaluationKeySet::new();
    for bytes in &files {
        set.insert(EvaluationKey::from_bytes(&ctx, bytes).unwrap());
    }
    let keys = BootstrapKeys::from_set(set).unwrap();
    let bts = Bootstrapper::new(&ctx, lit.clone(), keys).unwrap();

    let slots = ctx.n() / 2;
    let v: Vec<f64> = (0..slots)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect();
    let pt = ctx
        .encode(&v, slots, 0, ctx.params().default_scale())
        .unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let out = bts.bootstrap(&ct).unwrap();
    assert_eq!(out.level(), ctx.max_level() - lit.depth());
    let got = ctx.decode(&sk.decrypt(&ctx, &out).unwrap()).unwrap();
    let stats = PrecisionStats::real(&v, &got);
    eprintln!("decoded keys: {stats:?}");
    // The same bound as the in-memory full-slot test of tests/bootstrap.rs.
    assert!(
        stats.min_bits >= 24.0 && stats.median_bits >= 26.5,
        "{stats:?}"
    );
}

#[test]
fn a_set_without_a_needed_key_is_refused_by_name() {
    let ctx = small_context();
    let lit = small_literal();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut sink = Collect::default();
    generate_bootstrap_keys(&ctx, &sk, &lit, &KeyRequest::new(), &mut sink, &mut rng).unwrap();
    let conj = ctx.conjugation_galois_element();
    let mut without_conj = EvaluationKeySet::new();
    let mut without_d2s = EvaluationKeySet::new();
    for key in sink.0 {
        if !matches!(&key, EvaluationKey::Galois(g) if g.galois_element() == conj) {
            without_conj.insert(key.clone());
        }
        if !matches!(key, EvaluationKey::DenseToSparse(_)) {
            without_d2s.insert(key);
        }
    }
    let keys = BootstrapKeys::from_set(without_conj).unwrap();
    assert_eq!(
        Bootstrapper::new(&ctx, lit, keys).unwrap_err(),
        CkksError::MissingGaloisKey {
            galois_element: conj
        }
    );
    assert_eq!(
        BootstrapKeys::from_set(without_d2s).unwrap_err(),
        CkksError::MissingBootstrapKey {
            which: "dense-to-sparse"
        }
    );
}

#[test]
fn encapsulation_key_decoders_check_their_input() {
    let ctx = small_context();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut sink = Collect::default();
    generate_encapsulation_keys(&ctx, &sk, &small_literal(), &mut sink, &mut rng).unwrap();
    let d2s = sink.0[0].to_bytes().unwrap();
    let s2d = sink.0[1].to_bytes().unwrap();
    let header = peek_header(&d2s).unwrap();
    assert_eq!(header.object_type, ObjectType::DenseToSparseKey);
    assert_eq!(header.version, FORMAT_VERSION);
    assert!(!header.test_key);
    assert_eq!(
        peek_header(&s2d).unwrap().object_type,
        ObjectType::SparseToDenseKey
    );
    // Round trips, through the typed decoders and the dispatching one.
    let k = DenseToSparseKey::from_bytes(&ctx, &d2s).unwrap();
    assert_eq!(EvaluationKey::DenseToSparse(k.clone()), sink.0[0]);
    assert_eq!(k.to_bytes().unwrap(), d2s);
    let k = SparseToDenseKey::from_bytes(&ctx, &s2d).unwrap();
    assert_eq!(k.to_bytes().unwrap(), s2d);
    // Size: header, weight, seed, digit count and one key polynomial over two primes.
    let bits = |q: u64| (64 - q.leading_zeros()) as usize;
    let n = ctx.n();
    let poly =
        (n * bits(ctx.params().q()[0])).div_ceil(8) + (n * bits(ctx.params().p()[0])).div_ceil(8);
    assert_eq!(d2s.len(), 16 + 4 + 32 + 1 + poly);

    // Every strict prefix and any trailing byte is refused.
    for cut in [0, 10, 16, 20, 52, 53, d2s.len() - 1] {
        assert!(DenseToSparseKey::from_bytes(&ctx, &d2s[..cut]).is_err());
    }
    let mut long = d2s.clone();
    long.push(0);
    assert!(DenseToSparseKey::from_bytes(&ctx, &long).is_err());
    // A weight of zero or above N, a digit count other than one, the other tag.
    for h in [0u32, (n + 1) as u32] {
        let mut bad = d2s.clone();
        bad[16..20].copy_from_slice(&h.to_le_bytes());
        assert!(DenseToSparseKey::from_bytes(&ctx, &bad).is_err());
    }
    let mut bad = d2s.clone();
    bad[52] = 2;
    assert!(DenseToSparseKey::from_bytes(&ctx, &bad).is_err());
    assert!(DenseToSparseKey::from_bytes(&ctx, &s2d).is_err());
    assert!(SparseToDenseKey::from_bytes(&ctx, &d2s).is_err());
    // A residue at or above its prime.
    let mut bad = d2s.clone();
    for b in &mut bad[53..61] {
        *b = 0xff;
    }
    assert!(DenseToSparseKey::from_bytes(&ctx, &bad).is_err());
    // Unknown header flags are refused; the test-key flag is kept and shown.
    let mut flagged = d2s.clone();
    mark_test_object(&mut flagged).unwrap();
    assert!(peek_header(&flagged).unwrap().test_key);
    assert!(DenseToSparseKey::from_bytes(&ctx, &flagged).is_ok());
    let mut bad = d2s.clone();
    bad[7] = 0x80;
    assert!(DenseToSparseKey::from_bytes(&ctx, &bad).is_err());
}

#[test]
fn a_too_sparse_weight_in_a_file_is_refused_at_128_bits() {
    // A dense-to-sparse key of the default 128-bit set whose recorded weight is below the
    // bound does not decode (the header, seed and polynomial are valid otherwise).
    let ctx = default_context();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut sink = Collect::default();
    let lit = BootstrapParametersLiteral::default();
    generate_encapsulation_keys(&ctx, &sk, &lit, &mut sink, &mut rng).unwrap();
    let mut bytes = sink.0[0].to_bytes().unwrap();
    assert!(DenseToSparseKey::from_bytes(&ctx, &bytes).is_ok());
    bytes[16..20].copy_from_slice(&16u32.to_le_bytes());
    assert!(matches!(
        DenseToSparseKey::from_bytes(&ctx, &bytes),
        Err(CkksError::InsecureEphemeralSecret { .. })
    ));
}

#[test]
fn secret_keys_must_match_their_declared_distribution() {
    let ctx = small_context();
    let n = ctx.n();
    let mut coeffs = vec![0i64; n];
    coeffs[1] = 1;
    coeffs[2] = -1;
    assert!(SecretKey::from_coefficients(&ctx, &coeffs).is_ok());
    coeffs[3] = 2;
    assert_eq!(
        SecretKey::from_coefficients(&ctx, &coeffs).unwrap_err(),
        CkksError::InvalidSecretKey
    );
    assert_eq!(
        SecretKey::from_coefficients(&ctx, &coeffs[..n - 1]).unwrap_err(),
        CkksError::InvalidSecretKey
    );
    // A sparse set accepts exactly its declared weight.
    let mut literal = ParametersLiteral::insecure_test(10, 2);
    literal.secret = SecretDistribution::SparseTernary { hamming_weight: 3 };
    let sparse = CkksContext::new(Parameters::new_insecure(literal).unwrap()).unwrap();
    let mut c = vec![0i64; 1024];
    c[0] = 1;
    c[9] = -1;
    assert_eq!(
        SecretKey::from_coefficients(&sparse, &c).unwrap_err(),
        CkksError::InvalidSecretKey
    );
    c[100] = 1;
    assert!(SecretKey::from_coefficients(&sparse, &c).is_ok());
    // A generated sparse key has exactly the declared weight, counted on its coefficients.
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let k = SecretKey::generate(&sparse, &mut rng).unwrap();
    let coeffs = ensi_ckks::keys::hazmat::secret_poly(&k)
        .clone()
        .into_coeff()
        .to_bigint();
    let nonzero = coeffs
        .iter()
        .filter(|c| **c != num_bigint::BigInt::from(0))
        .count();
    assert_eq!(nonzero, 3);
    assert!(
        coeffs
            .iter()
            .all(|c| c.magnitude() <= &num_bigint::BigUint::from(1u32))
    );
}

/// The committed seed corpus of the `decode_bootstrap_key` fuzz target: one dense-to-sparse and
/// one sparse-to-dense key of the fuzzing context (`insecure_test(4, 2)`), made from a fixed
/// seed. The files must equal what the encoder writes today (a change of the format shows up
/// here); `ENSI_WRITE_FUZZ_SEEDS=1` rewrites them.
#[test]
fn fuzz_seed_corpus_is_current() {
    let ctx =
        CkksContext::new(Parameters::new_insecure(ParametersLiteral::insecure_test(4, 2)).unwrap())
            .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut sink = Collect::default();
    let lit = BootstrapParametersLiteral {
        ephemeral_hamming_weight: 4,
        ..BootstrapParametersLiteral::default()
    };
    generate_encapsulation_keys(&ctx, &sk, &lit, &mut sink, &mut rng).unwrap();
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/decode_bootstrap_key");
    let write = std::env::var_os("ENSI_WRITE_FUZZ_SEEDS").is_some();
    // The other decoder targets' seeds: one valid object each, same context.
    let others: Vec<(&str, Vec<u8>)> = {
        let pk = ensi_ckks::PublicKey::generate(&ctx, &sk, &mut rng).unwrap();
        let pt = ctx.encode(&[0.5, -0.25], 2, 2, 2f64.powi(30)).unwrap();
        let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
        let ct_full = pk.encrypt(&ctx, &pt, &mut rng).unwrap();
        let mut keys = EvaluationKeySet::new();
        ensi_ckks::generate_evaluation_keys(
            &ctx,
            &sk,
            &KeyRequest::new()
                .with_relinearization()
                .with_rotations(&ctx, &[1]),
            &mut keys,
            &mut rng,
        )
        .unwrap();
        let mut v = vec![
            (
                "decode_params/insecure_test_4_2.bin",
                ctx.params().to_bytes().unwrap(),
            ),
            ("decode_secret_key/key.bin", sk.to_bytes().unwrap().to_vec()),
            ("decode_public_key/key.bin", pk.to_bytes().unwrap()),
            ("decode_plaintext/pt.bin", pt.to_bytes().unwrap()),
            ("decode_ciphertext/seeded.bin", ct.to_bytes().unwrap()),
            ("decode_ciphertext/full.bin", ct_full.to_bytes().unwrap()),
            (
                "decode_bundle/bundle.bin",
                ensi_ckks::serialize::CiphertextBundle {
                    layout: 0,
                    content: 0,
                    rows: 3,
                    padded_rows: 4,
                    cols: 2,
                    tag: *b"fuzzseed",
                    cts: vec![ct.clone(), ct_full.clone()],
                }
                .to_bytes()
                .unwrap(),
            ),
        ];
        for (i, k) in keys.into_keys().enumerate() {
            let name = if i == 0 {
                "decode_evaluation_key/relin.bin"
            } else {
                "decode_evaluation_key/galois.bin"
            };
            v.push((name, k.to_bytes().unwrap()));
        }
        v
    };
    let root = dir.parent().unwrap().to_path_buf();
    for (rel, bytes) in &others {
        let path = root.join(rel);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    }
    for (name, key) in ["dense-to-sparse.bin", "sparse-to-dense.bin"]
        .into_iter()
        .zip(&sink.0)
    {
        let bytes = key.to_bytes().unwrap();
        assert_eq!(EvaluationKey::from_bytes(&ctx, &bytes).unwrap(), *key);
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    }
}
