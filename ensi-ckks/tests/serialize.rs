//! The binary format: round trips of every object, sizes, and rejection of corrupted input.
#![allow(clippy::unwrap_used)]

use ensi_ckks::serialize::{FORMAT_VERSION, HEADER_LEN, ObjectType, peek_header};
use ensi_ckks::{
    Ciphertext, CkksContext, CkksError, DecodeOptions, FormatError, Parameters, ParametersLiteral,
    Plaintext, PublicKey, SecretKey, Security,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::Arc;
use subtle::ConstantTimeEq;

fn params(log_n: u32, levels: usize) -> Parameters {
    Parameters::new_insecure(ParametersLiteral::insecure_test(log_n, levels)).unwrap()
}

fn context(log_n: u32, levels: usize) -> Arc<CkksContext> {
    CkksContext::new(params(log_n, levels)).unwrap()
}

fn values(rng: &mut ChaCha20Rng, count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

struct Fixture {
    ctx: Arc<CkksContext>,
    sk: SecretKey,
    pk: PublicKey,
    pt: Plaintext,
    /// Secret-key encryption: seeded.
    sym: Ciphertext,
    /// Public-key encryption: full.
    asym: Ciphertext,
    values: Vec<f64>,
}

fn fixture(level: usize) -> Fixture {
    let ctx = context(10, 2);
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let pk = PublicKey::generate(&ctx, &sk, &mut rng).unwrap();
    let values = values(&mut rng, 512);
    let pt = ctx.encode(&values, 512, level, 2f64.powi(40)).unwrap();
    let sym = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let asym = pk.encrypt(&ctx, &pt, &mut rng).unwrap();
    Fixture {
        ctx,
        sk,
        pk,
        pt,
        sym,
        asym,
        values,
    }
}

fn format_err(r: Result<impl std::fmt::Debug, CkksError>) -> FormatError {
    match r {
        Err(CkksError::Format(e)) => e,
        other => panic!("expected a format error, got {other:?}"),
    }
}

/// Packed bytes of a polynomial over the given primes at `n` coefficients.
fn poly_len(n: usize, primes: &[u64]) -> usize {
    primes
        .iter()
        .map(|q| (n * (64 - q.leading_zeros()) as usize).div_ceil(8))
        .sum()
}

#[test]
fn parameters_round_trip_and_insecure_sets_are_refused_by_default() {
    let p = params(10, 2);
    let bytes = p.to_bytes().unwrap();
    assert_eq!(bytes.len(), p.serialized_len());
    assert_eq!(bytes.len(), 39);
    assert_eq!(&bytes[..4], b"ENSI");
    assert_eq!(
        format_err(Parameters::from_bytes(&bytes, DecodeOptions::default())),
        FormatError::InsecureParameters
    );
    let back =
        Parameters::from_bytes(&bytes, DecodeOptions::default().allow_insecure(true)).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.security(), Security::Insecure);

    // Marking the insecure set as secure does not help: the security check runs again.
    let mut forged = bytes.clone();
    forged[HEADER_LEN] = 0;
    assert!(matches!(
        Parameters::from_bytes(&forged, DecodeOptions::default().allow_insecure(true)),
        Err(CkksError::Insecure { .. })
    ));

    for lit in [
        ParametersLiteral::n15_leveled(),
        ParametersLiteral::n16_bootstrappable(),
    ] {
        let p = Parameters::new(lit).unwrap();
        let bytes = p.to_bytes().unwrap();
        let back = Parameters::from_bytes(&bytes, DecodeOptions::default()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.security(), Security::Bits128);
    }

    // A sparse secret round trips too (insecure by construction).
    let mut lit = ParametersLiteral::insecure_test(10, 2);
    lit.secret = ensi_ckks::SecretDistribution::SparseTernary { hamming_weight: 64 };
    let p = Parameters::new_insecure(lit).unwrap();
    let bytes = p.to_bytes().unwrap();
    assert_eq!(bytes.len(), p.serialized_len());
    let opts = DecodeOptions::default().allow_insecure(true);
    assert_eq!(Parameters::from_bytes(&bytes, opts).unwrap(), p);
}

#[test]
fn parameters_reject_a_wrong_id_and_malformed_fields() {
    let opts = DecodeOptions::default().allow_insecure(true);
    let bytes = params(10, 2).to_bytes().unwrap();
    // The id in the header must be the rebuilt set's.
    let mut b = bytes.clone();
    b[HEADER_LEN - 1] ^= 1;
    assert!(matches!(
        Parameters::from_bytes(&b, opts),
        Err(CkksError::ParamsMismatch { .. })
    ));
    // A changed literal field gives another set, hence another id.
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] -= 1; // log_default_scale
    assert!(matches!(
        Parameters::from_bytes(&b, opts),
        Err(CkksError::ParamsMismatch { .. })
    ));
    // Security flag, secret tag, prime count.
    let mut b = bytes.clone();
    b[HEADER_LEN] = 2;
    assert_eq!(
        format_err(Parameters::from_bytes(&b, opts)),
        FormatError::InvalidField {
            field: "security",
            value: 2
        }
    );
    let mut b = bytes.clone();
    b[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&1000u16.to_le_bytes());
    assert_eq!(
        format_err(Parameters::from_bytes(&b, opts)),
        FormatError::InvalidField {
            field: "q_count",
            value: 1000
        }
    );
    // A literal the checked constructor refuses.
    let mut b = bytes.clone();
    b[HEADER_LEN + 1] = 40; // log_n
    assert_eq!(
        Parameters::from_bytes(&b, opts),
        Err(CkksError::InvalidLogN { log_n: 40 })
    );
    // Every prefix is rejected as truncated.
    for len in 0..bytes.len() {
        assert!(
            matches!(
                format_err(Parameters::from_bytes(&bytes[..len], opts)),
                FormatError::Truncated { .. }
            ),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn secret_key_round_trips_at_two_bits_per_coefficient() {
    let f = fixture(2);
    let bytes = f.sk.to_bytes().unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + f.ctx.n() / 4);
    assert_eq!(bytes.len(), f.sk.serialized_len());
    let back = SecretKey::from_bytes(&f.ctx, &bytes).unwrap();
    assert!(bool::from(back.ct_eq(&f.sk)));
    // The decoded key decrypts.
    let dec = f
        .ctx
        .decode(&back.decrypt(&f.ctx, &f.sym).unwrap())
        .unwrap();
    assert!(ensi_ckks::PrecisionStats::real(&f.values, &dec).min_bits > 25.0);

    // A non-ternary key cannot even be built (so never encoded).
    let mut coeffs = vec![0i64; f.ctx.n()];
    coeffs[5] = 2;
    assert_eq!(
        SecretKey::from_coefficients(&f.ctx, &coeffs).unwrap_err(),
        CkksError::InvalidSecretKey
    );
    // Explicit coefficients map to the documented codes.
    coeffs[5] = -1;
    coeffs[6] = 1;
    let k = SecretKey::from_coefficients(&f.ctx, &coeffs).unwrap();
    let b = k.to_bytes().unwrap();
    assert_eq!(b[HEADER_LEN + 1], 0b0001_1100); // coefficient 5 -> 0b11, 6 -> 0b01
}

#[test]
fn secret_key_rejects_bad_coefficients_and_every_prefix() {
    let f = fixture(2);
    let bytes = f.sk.to_bytes().unwrap();
    for code in [0b10u8, 0b1000_0000] {
        let mut b = bytes.to_vec();
        b[HEADER_LEN + 3] = code;
        assert_eq!(
            format_err(SecretKey::from_bytes(&f.ctx, &b)),
            FormatError::InvalidSecretCoefficient
        );
    }
    for len in 0..bytes.len() {
        assert!(matches!(
            format_err(SecretKey::from_bytes(&f.ctx, &bytes[..len])),
            FormatError::Truncated { .. }
        ));
    }
}

#[test]
fn public_key_round_trips_seeded() {
    let f = fixture(2);
    let bytes = f.pk.to_bytes().unwrap();
    let q = f.ctx.params().q();
    assert_eq!(bytes.len(), HEADER_LEN + 32 + poly_len(f.ctx.n(), q));
    assert_eq!(bytes.len(), f.pk.serialized_len());
    assert_eq!(bytes.len(), 16_688);
    let back = PublicKey::from_bytes(&f.ctx, &bytes).unwrap();
    assert_eq!(back, f.pk);
    // A corrupted seed gives another `a`: still a well-formed key, but not this one.
    let mut b = bytes.clone();
    b[HEADER_LEN] ^= 1;
    assert_ne!(PublicKey::from_bytes(&f.ctx, &b).unwrap(), f.pk);
}

#[test]
fn plaintexts_round_trip_with_slot_and_coefficient_encoding() {
    let f = fixture(1);
    let bytes = f.pt.to_bytes().unwrap();
    assert_eq!(bytes.len(), f.pt.serialized_len());
    let back = Plaintext::from_bytes(&f.ctx, &bytes).unwrap();
    assert_eq!(back.poly(), f.pt.poly());
    assert_eq!(
        (back.level(), back.slots(), back.scale()),
        (1, 512, 2f64.powi(40))
    );
    let pt = f
        .ctx
        .encode_coefficients(&f.values, 0, 2f64.powi(30))
        .unwrap();
    let back = Plaintext::from_bytes(&f.ctx, &pt.to_bytes().unwrap()).unwrap();
    assert_eq!(back.slots(), f.ctx.n());
    assert_eq!(back.poly(), pt.poly());
}

#[test]
fn ciphertexts_round_trip_and_seeded_ones_are_half_size() {
    let f = fixture(2);
    let full = f.asym.to_bytes().unwrap();
    let seeded = f.sym.to_bytes().unwrap();
    assert_eq!(full.len(), f.asym.serialized_len());
    assert_eq!(seeded.len(), f.sym.serialized_len());
    let poly = poly_len(f.ctx.n(), f.ctx.params().q());
    assert_eq!(full.len(), HEADER_LEN + 17 + 4 + 2 * poly);
    assert_eq!(seeded.len(), HEADER_LEN + 17 + 32 + poly);
    // The sizes FORMAT.md documents for insecure_test(10, 2).
    assert_eq!((seeded.len(), full.len()), (16_705, 33_317));
    let ratio = seeded.len() as f64 / full.len() as f64;
    assert!((0.49..0.51).contains(&ratio), "{ratio}");

    for (ct, bytes) in [(&f.asym, &full), (&f.sym, &seeded)] {
        let back = Ciphertext::from_bytes(&f.ctx, bytes).unwrap();
        assert_eq!(back.parts(), ct.parts());
        assert_eq!(back.seed(), ct.seed());
        assert_eq!(
            (back.level(), back.slots(), back.scale()),
            (ct.level(), ct.slots(), ct.scale())
        );
        // Decrypting the decoded ciphertext gives the same plaintext, hence the same values.
        let a = f.sk.decrypt(&f.ctx, &back).unwrap();
        let b = f.sk.decrypt(&f.ctx, ct).unwrap();
        assert_eq!(a.poly(), b.poly());
        let dec = f.ctx.decode(&a).unwrap();
        assert!(ensi_ckks::PrecisionStats::real(&f.values, &dec).min_bits > 20.0);
        // Re-encoding gives the same bytes.
        assert_eq!(&back.to_bytes().unwrap(), bytes);
    }
}

#[test]
fn ciphertexts_reject_every_prefix_and_trailing_bytes() {
    let f = fixture(0);
    for ct in [&f.sym, &f.asym] {
        let bytes = ct.to_bytes().unwrap();
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    format_err(Ciphertext::from_bytes(&f.ctx, &bytes[..len])),
                    FormatError::Truncated { .. }
                ),
                "prefix of {len} bytes"
            );
        }
        let mut b = bytes.clone();
        b.push(0);
        assert_eq!(
            format_err(Ciphertext::from_bytes(&f.ctx, &b)),
            FormatError::TrailingBytes { count: 1 }
        );
    }
    let mut b = f.pk.to_bytes().unwrap();
    b.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        format_err(PublicKey::from_bytes(&f.ctx, &b)),
        FormatError::TrailingBytes { count: 3 }
    );
    let mut b = f.sk.to_bytes().unwrap().to_vec();
    b.push(0);
    assert_eq!(
        format_err(SecretKey::from_bytes(&f.ctx, &b)),
        FormatError::TrailingBytes { count: 1 }
    );
}

#[test]
fn headers_are_checked_for_every_object() {
    let f = fixture(2);
    let other = context(10, 3);
    let objects: Vec<(ObjectType, Vec<u8>)> = vec![
        (ObjectType::SecretKey, f.sk.to_bytes().unwrap().to_vec()),
        (ObjectType::PublicKey, f.pk.to_bytes().unwrap()),
        (ObjectType::Plaintext, f.pt.to_bytes().unwrap()),
        (ObjectType::Ciphertext, f.sym.to_bytes().unwrap()),
        (ObjectType::Ciphertext, f.asym.to_bytes().unwrap()),
    ];
    let decode = |kind: ObjectType, ctx: &Arc<CkksContext>, b: &[u8]| -> Result<(), CkksError> {
        match kind {
            ObjectType::SecretKey => SecretKey::from_bytes(ctx, b).map(|_| ()),
            ObjectType::PublicKey => PublicKey::from_bytes(ctx, b).map(|_| ()),
            ObjectType::Plaintext => Plaintext::from_bytes(ctx, b).map(|_| ()),
            _ => Ciphertext::from_bytes(ctx, b).map(|_| ()),
        }
    };
    for (kind, bytes) in &objects {
        let header = peek_header(bytes).unwrap();
        assert_eq!(header.object_type, *kind);
        assert_eq!(header.params_id, f.ctx.id());
        assert_eq!(header.version, FORMAT_VERSION);
        decode(*kind, &f.ctx, bytes).unwrap();

        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(
            format_err(decode(*kind, &f.ctx, &b)),
            FormatError::BadMagic { found: *b"XNSI" }
        );
        let mut b = bytes.clone();
        b[4] = 2;
        assert_eq!(
            format_err(decode(*kind, &f.ctx, &b)),
            FormatError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        );
        let mut b = bytes.clone();
        b[6] = if *kind == ObjectType::Plaintext { 5 } else { 4 };
        assert!(matches!(
            format_err(decode(*kind, &f.ctx, &b)),
            FormatError::WrongObjectType { .. }
        ));
        let mut b = bytes.clone();
        b[7] = 2;
        assert_eq!(
            format_err(decode(*kind, &f.ctx, &b)),
            FormatError::InvalidField {
                field: "flags",
                value: 2
            }
        );
        let mut b = bytes.clone();
        b[8] ^= 0x80;
        assert!(matches!(
            decode(*kind, &f.ctx, &b),
            Err(CkksError::ParamsMismatch { .. })
        ));
        // Another context refuses the object by its id.
        assert!(matches!(
            decode(*kind, &other, bytes),
            Err(CkksError::ParamsMismatch { .. })
        ));
    }
    // A parameter-set object is not a ciphertext.
    let pbytes = params(10, 2).to_bytes().unwrap();
    assert_eq!(
        format_err(Ciphertext::from_bytes(&f.ctx, &pbytes)),
        FormatError::WrongObjectType {
            expected: ObjectType::Ciphertext,
            found: 1
        }
    );
}

#[test]
fn residues_at_or_above_their_prime_are_rejected() {
    let f = fixture(2);
    let q = f.ctx.params().q();
    let n = f.ctx.n();
    // Ciphertext, full form: body = level, slots, scale, form, part count, then limbs.
    let bytes = f.asym.to_bytes().unwrap();
    let start = HEADER_LEN + 17 + 4;
    // q_0 has 50 bits: set the first residue of limb 0 to q_0 exactly, then to 2^50 - 1.
    for value in [q[0], (1u64 << 50) - 1] {
        let mut b = bytes.clone();
        let mut word = u64::from_le_bytes(b[start..start + 8].try_into().unwrap());
        word = (word & !((1u64 << 50) - 1)) | value;
        b[start..start + 8].copy_from_slice(&word.to_le_bytes());
        assert_eq!(
            format_err(Ciphertext::from_bytes(&f.ctx, &b)),
            FormatError::ResidueOutOfRange {
                limb: 0,
                value,
                q: q[0]
            }
        );
    }
    // The last residue of limb 1 (40 bits, the top 5 bytes of the limb) set to all ones.
    let limb1_end = start + (n * 50) / 8 + (n * 40) / 8;
    let mut b = bytes.clone();
    b[limb1_end - 5..limb1_end].fill(0xff);
    assert_eq!(
        format_err(Ciphertext::from_bytes(&f.ctx, &b)),
        FormatError::ResidueOutOfRange {
            limb: 1,
            value: (1u64 << 40) - 1,
            q: q[1]
        }
    );
    // Public key: b starts after the seed.
    let mut b = f.pk.to_bytes().unwrap();
    b[HEADER_LEN + 32..HEADER_LEN + 32 + 7].fill(0xff);
    assert!(matches!(
        format_err(PublicKey::from_bytes(&f.ctx, &b)),
        FormatError::ResidueOutOfRange { limb: 0, .. }
    ));
    // Plaintext.
    let mut b = f.pt.to_bytes().unwrap();
    b[HEADER_LEN + 16..HEADER_LEN + 16 + 7].fill(0xff);
    assert!(matches!(
        format_err(Plaintext::from_bytes(&f.ctx, &b)),
        FormatError::ResidueOutOfRange { limb: 0, .. }
    ));
}

#[test]
fn levels_slots_scales_and_forms_are_checked() {
    let f = fixture(2);
    let bytes = f.asym.to_bytes().unwrap();
    let at = HEADER_LEN;
    let set = |offset: usize, v: &[u8]| {
        let mut b = bytes.clone();
        b[at + offset..at + offset + v.len()].copy_from_slice(v);
        Ciphertext::from_bytes(&f.ctx, &b)
    };
    assert_eq!(
        set(0, &3u32.to_le_bytes()).unwrap_err(),
        CkksError::InvalidLevel { level: 3, max: 2 }
    );
    // A lower level is well-formed but then the body is too long.
    assert!(matches!(
        format_err(set(0, &1u32.to_le_bytes())),
        FormatError::TrailingBytes { .. }
    ));
    for slots in [0u32, 3, 1024 / 2 * 3, 2048] {
        assert!(matches!(
            set(4, &slots.to_le_bytes()),
            Err(CkksError::InvalidSlotCount { .. })
        ));
    }
    // N slots (coefficient encoding) and N/2 are accepted.
    set(4, &1024u32.to_le_bytes()).unwrap();
    set(4, &512u32.to_le_bytes()).unwrap();
    for scale in [f64::NAN, f64::INFINITY, 0.0, -1.0] {
        assert!(matches!(
            format_err(set(8, &scale.to_le_bytes())),
            FormatError::InvalidScale { .. }
        ));
    }
    assert_eq!(
        format_err(set(16, &[7])),
        FormatError::InvalidField {
            field: "form",
            value: 7
        }
    );
    for count in [0u32, 1] {
        assert!(matches!(
            format_err(set(17, &count.to_le_bytes())),
            FormatError::InvalidField {
                field: "part_count",
                ..
            }
        ));
    }
    // A huge part count fails on the missing bytes, without allocating for it.
    assert!(matches!(
        format_err(set(17, &u32::MAX.to_le_bytes())),
        FormatError::Truncated { .. }
    ));
}

#[test]
fn padding_bits_are_checked_when_limbs_do_not_fill_whole_bytes() {
    // N = 2: a 50-bit limb takes 100 bits, 13 bytes with 4 padding bits; 2 ternary
    // coefficients take half a byte.
    let ctx = context(1, 1);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let bytes = sk.to_bytes().unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + 1);
    assert!(bool::from(
        SecretKey::from_bytes(&ctx, &bytes).unwrap().ct_eq(&sk)
    ));
    let mut b = bytes.to_vec();
    b[HEADER_LEN] |= 0b0100_0000;
    assert_eq!(
        format_err(SecretKey::from_bytes(&ctx, &b)),
        FormatError::InvalidSecretCoefficient
    );
    let pt = ctx.encode(&[0.5], 1, 1, 2f64.powi(30)).unwrap();
    let bytes = pt.to_bytes().unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + 16 + 13 + 10);
    assert_eq!(
        Plaintext::from_bytes(&ctx, &bytes).unwrap().poly(),
        pt.poly()
    );
    let mut b = bytes.clone();
    b[HEADER_LEN + 16 + 12] |= 0x80;
    assert_eq!(
        format_err(Plaintext::from_bytes(&ctx, &b)),
        FormatError::NonZeroPadding
    );
}

/// A small in-test fuzzer: random byte flips and truncations of valid encodings never panic.
#[test]
fn random_corruptions_never_panic() {
    let f = fixture(1);
    let opts = DecodeOptions::default().allow_insecure(true);
    let objects = [
        f.sk.to_bytes().unwrap().to_vec(),
        f.pk.to_bytes().unwrap(),
        f.pt.to_bytes().unwrap(),
        f.sym.to_bytes().unwrap(),
        f.asym.to_bytes().unwrap(),
        params(10, 2).to_bytes().unwrap(),
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    for _ in 0..300 {
        for bytes in &objects {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.next_u32() % 4 {
                // Mostly in the header and the fixed fields, where the checks are.
                let range = if rng.next_u32() % 2 == 0 { 40 } else { b.len() };
                let i = rng.next_u32() as usize % range.min(b.len());
                b[i] = rng.next_u32() as u8;
            }
            if rng.next_u32() % 4 == 0 {
                b.truncate(rng.next_u32() as usize % b.len());
            }
            let _ = SecretKey::from_bytes(&f.ctx, &b);
            let _ = PublicKey::from_bytes(&f.ctx, &b);
            let _ = Plaintext::from_bytes(&f.ctx, &b);
            let _ = Ciphertext::from_bytes(&f.ctx, &b);
            if b.len() < 64 {
                let _ = Parameters::from_bytes(&b, opts);
            }
            let _ = peek_header(&b);
        }
    }
}

#[test]
fn error_messages_name_the_problem() {
    let cases = [
        (FormatError::BadMagic { found: *b"XNSI" }, "bad magic bytes"),
        (FormatError::InsecureParameters, "allow_insecure"),
        (
            FormatError::ResidueOutOfRange {
                limb: 1,
                value: 9,
                q: 7,
            },
            "residue 9 of limb 1 is not below its prime 7",
        ),
        (FormatError::TrailingBytes { count: 3 }, "3 trailing bytes"),
    ];
    for (e, text) in cases {
        let message = CkksError::Format(e).to_string();
        assert!(message.contains(text), "{message}");
    }
}

/// The N = 2^16 sizes of FORMAT.md, measured on the bootstrappable set.
#[test]
fn sizes_at_n16_match_the_format_document() {
    let params = Parameters::new(ParametersLiteral::n16_bootstrappable()).unwrap();
    assert_eq!(params.to_bytes().unwrap().len(), 65);
    let ctx = CkksContext::new(params).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let pk = PublicKey::generate(&ctx, &sk, &mut rng).unwrap();
    assert_eq!(sk.to_bytes().unwrap().len(), 16_400);
    assert_eq!(pk.to_bytes().unwrap().len(), 11_714_608);
    let top = ctx.max_level();
    let pt = ctx.encode(&[0.5, 0.25], 2, top, 2f64.powi(40)).unwrap();
    assert_eq!(pt.to_bytes().unwrap().len(), 11_714_592);
    let sym = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let asym = pk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let seeded = sym.to_bytes().unwrap();
    assert_eq!(seeded.len(), 11_714_625);
    assert_eq!(asym.to_bytes().unwrap().len(), 23_429_157);
    let back = Ciphertext::from_bytes(&ctx, &seeded).unwrap();
    assert_eq!(back.parts(), sym.parts());
    let pt0 = ctx.encode(&[0.5], 1, 0, 2f64.powi(40)).unwrap();
    let ct0 = pk.encrypt(&ctx, &pt0, &mut rng).unwrap();
    assert_eq!(ct0.to_bytes().unwrap().len(), 983_077);
    // The encapsulation keys of bootstrapping: two primes, and a full key.
    let mut keys = ensi_ckks::EvaluationKeySet::new();
    ensi_ckks::generate_encapsulation_keys(
        &ctx,
        &sk,
        &ensi_ckks::BootstrapParametersLiteral::default(),
        &mut keys,
        &mut rng,
    )
    .unwrap();
    let boot = ensi_ckks::BootstrapKeys::from_set(keys).unwrap();
    assert_eq!(boot.dense_to_sparse.to_bytes().unwrap().len(), 991_285);
    assert_eq!(boot.sparse_to_dense.to_bytes().unwrap().len(), 85_278_769);
    // The pinned figures are FORMAT.md's; derive them from its layout and the primes too.
    let (n, q, p) = (ctx.n(), ctx.params().q(), ctx.params().p());
    let qp: Vec<u64> = q.iter().chain(p).copied().collect();
    assert_eq!(11_714_608, HEADER_LEN + 32 + poly_len(n, q));
    assert_eq!(11_714_592, HEADER_LEN + 16 + poly_len(n, q));
    assert_eq!(11_714_625, HEADER_LEN + 17 + 32 + poly_len(n, q));
    assert_eq!(23_429_157, HEADER_LEN + 17 + 4 + 2 * poly_len(n, q));
    assert_eq!(983_077, HEADER_LEN + 17 + 4 + 2 * poly_len(n, &q[..1]));
    assert_eq!(
        991_285,
        HEADER_LEN + 4 + 32 + 1 + poly_len(n, &[q[0], p[0]])
    );
    assert_eq!(85_278_769, HEADER_LEN + 32 + 1 + 6 * poly_len(n, &qp));
    assert_eq!(16_400, HEADER_LEN + n / 4);
}

/// The N = 2^10 sizes of the encapsulation keys in FORMAT.md.
#[test]
fn encapsulation_key_sizes_at_n10_match_the_format_document() {
    let ctx = context(10, 2);
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let mut keys = ensi_ckks::EvaluationKeySet::new();
    ensi_ckks::generate_encapsulation_keys(
        &ctx,
        &sk,
        &ensi_ckks::BootstrapParametersLiteral::default(),
        &mut keys,
        &mut rng,
    )
    .unwrap();
    let boot = ensi_ckks::BootstrapKeys::from_set(keys).unwrap();
    assert_eq!(boot.dense_to_sparse.to_bytes().unwrap().len(), 12_853);
    assert_eq!(boot.sparse_to_dense.to_bytes().unwrap().len(), 58_929);
}

/// Regression (fuzz target `decode_params`, found by the CI smoke run): a parameter set whose
/// header carries the test-key flag decodes, and re-encodes without the flag (encoders never
/// write it; the flag is set on the bytes by `mark_test_object`).
#[test]
fn a_flagged_parameter_set_decodes_and_re_encodes_without_the_flag() {
    let params = params(4, 2);
    let mut bytes = params.to_bytes().unwrap();
    ensi_ckks::serialize::mark_test_object(&mut bytes).unwrap();
    assert_eq!(bytes[7], ensi_ckks::serialize::FLAG_TEST_KEY);
    let back =
        Parameters::from_bytes(&bytes, DecodeOptions::default().allow_insecure(true)).unwrap();
    assert_eq!(back, params);
    let again = back.to_bytes().unwrap();
    assert_eq!(again[7], 0);
    assert_eq!(again[..7], bytes[..7]);
    assert_eq!(again[8..], bytes[8..]);
}

/// Ciphertext bundles (the query, answer and cache files of ensi's roles): a round trip, then
/// every bad field, prefix and count refused with the field named.
#[test]
fn bundles_check_every_field_and_prefix() {
    use ensi_ckks::serialize::{CiphertextBundle, MAX_BUNDLE_CIPHERTEXTS};
    let f = fixture(2);
    let bundle = CiphertextBundle {
        layout: 0,
        content: 4,
        rows: 5,
        padded_rows: 8,
        cols: 128,
        tag: *b"model-fp",
        cts: vec![f.sym.clone(), f.asym.clone()],
    };
    let bytes = bundle.to_bytes().unwrap();
    let back = CiphertextBundle::from_bytes(&f.ctx, &bytes).unwrap();
    assert_eq!((back.rows, back.padded_rows, back.cols), (5, 8, 128));
    assert_eq!((back.layout, back.content, back.tag), (0, 4, *b"model-fp"));
    assert_eq!(back.cts.len(), 2);
    assert_eq!(back.cts[1].to_bytes().unwrap(), f.asym.to_bytes().unwrap());
    // Fields after the 16-byte header: layout, content, rows, padded rows, cols, tag, count.
    let (rows, cols, count) = (HEADER_LEN + 2, HEADER_LEN + 10, HEADER_LEN + 22);
    let with = |at: usize, v: u32| {
        let mut b = bytes.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        b
    };
    let field = |b: &[u8]| match format_err(CiphertextBundle::from_bytes(&f.ctx, b)) {
        FormatError::InvalidField { field, .. } => field,
        other => panic!("expected an invalid field, got {other:?}"),
    };
    assert_eq!(field(&with(rows, 0)), "rows");
    assert_eq!(field(&with(rows, 9)), "rows"); // more rows than padded rows
    assert_eq!(field(&with(cols, 0)), "cols");
    assert_eq!(field(&with(count, 0)), "ciphertext_count");
    assert_eq!(
        field(&with(count, MAX_BUNDLE_CIPHERTEXTS as u32 + 1)),
        "ciphertext_count"
    );
    // A count larger than the bytes hold is refused without allocating for it.
    assert!(matches!(
        format_err(CiphertextBundle::from_bytes(&f.ctx, &with(count, 1 << 20))),
        FormatError::Truncated { .. }
    ));
    // A ciphertext inside carrying a flag (only keys and parameters may be marked).
    let mut flagged = bytes.clone();
    flagged[count + 4 + 8 + 7] = 1;
    assert_eq!(field(&flagged), "ciphertext_flags");
    // Every strict prefix, and trailing bytes.
    for cut in 0..bytes.len() {
        assert!(
            CiphertextBundle::from_bytes(&f.ctx, &bytes[..cut]).is_err(),
            "prefix {cut}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        format_err(CiphertextBundle::from_bytes(&f.ctx, &long)),
        FormatError::TrailingBytes { .. }
    ));
    // Another context's bundle.
    assert!(matches!(
        CiphertextBundle::from_bytes(&context(10, 3), &bytes),
        Err(CkksError::ParamsMismatch { .. })
    ));
}
