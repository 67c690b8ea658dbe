//! Encode-encrypt-decrypt against the f64 inputs, key relations against big-integer arithmetic.
#![allow(clippy::unwrap_used)]

use ensi_ckks::{
    CkksContext, CkksError, Parameters, ParametersLiteral, PrecisionStats, PublicKey, SecretKey,
};
use num_bigint::BigInt;
use num_complex::Complex64;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::Arc;
use subtle::ConstantTimeEq;

fn context(log_n: u32, levels: usize) -> Arc<CkksContext> {
    CkksContext::new(
        Parameters::new_insecure(ParametersLiteral::insecure_test(log_n, levels)).unwrap(),
    )
    .unwrap()
}

fn random_values(rng: &mut ChaCha20Rng, count: usize) -> Vec<f64> {
    (0..count)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

#[test]
fn encryption_precision_at_scale_2_40_matches_the_noise_estimate() {
    let ctx = context(12, 3);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let pk = PublicKey::generate(&ctx, &sk, &mut rng).unwrap();
    let scale = 2f64.powi(40);
    for level in [0, 1, ctx.max_level()] {
        for slots in [1usize, 64, ctx.n() / 2] {
            let values = random_values(&mut rng, slots);
            let pt = ctx.encode(&values, slots, level, scale).unwrap();
            // Fresh noise in a slot is a sum of N coefficient errors: about sigma * sqrt(N) = 2^7.7
            // for a secret-key encryption (e alone), and about sigma * sqrt(4N^2/3) = 2^13.9 for a
            // public-key one (e u + e0 + e1 s). At scale 2^40 that leaves ~32 and ~26 bits on
            // average; the minimum over 2048 slots sits about two bits lower.
            let sym = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
            let asym = pk.encrypt(&ctx, &pt, &mut rng).unwrap();
            for (ct, min, median) in [(sym, 28.0, 30.0), (asym, 22.0, 25.0)] {
                assert_eq!(ct.level(), level);
                assert_eq!(ct.scale(), scale);
                let decoded = ctx.decode(&sk.decrypt(&ctx, &ct).unwrap()).unwrap();
                let stats = PrecisionStats::real(&values, &decoded);
                assert!(
                    stats.min_bits >= min && stats.median_bits >= median,
                    "level {level}, {slots} slots: {stats:?}"
                );
            }
        }
    }
}

#[test]
fn complex_values_and_coefficient_encoding_round_trip() {
    let ctx = context(11, 2);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let scale = 2f64.powi(40);
    let re = random_values(&mut rng, 256);
    let im = random_values(&mut rng, 256);
    let values: Vec<Complex64> = re
        .iter()
        .zip(&im)
        .map(|(&a, &b)| Complex64::new(a, b))
        .collect();
    let pt = ctx.encode_complex(&values, 256, 2, scale).unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let decoded = ctx.decode_complex(&sk.decrypt(&ctx, &ct).unwrap()).unwrap();
    assert!(PrecisionStats::complex(&values, &decoded).min_bits >= 25.0);

    let coeffs = random_values(&mut rng, ctx.n());
    let pt = ctx.encode_coefficients(&coeffs, 1, scale).unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let decoded = ctx.decode(&sk.decrypt(&ctx, &ct).unwrap()).unwrap();
    assert!(PrecisionStats::real(&coeffs, &decoded).min_bits >= 25.0);
}

#[test]
fn public_key_is_an_rlwe_sample_of_the_secret() {
    // b + a s must be the small error e (|e| <= 19, the Gaussian sampler's bound), checked with
    // big-integer CRT on the coefficients.
    let ctx = context(10, 2);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let pk = PublicKey::generate(&ctx, &sk, &mut rng).unwrap();
    let (b, a) = pk.polys();
    let mut s = ensi_ckks::keys::hazmat::secret_poly(&sk).clone();
    s.drop_last_limbs(s.limbs() - b.limbs()).unwrap();
    let e = b
        .try_add(&a.try_mul(&s).unwrap())
        .unwrap()
        .into_coeff()
        .to_bigint();
    assert!(
        e.iter()
            .all(|x| x.magnitude() <= &BigInt::from(19).magnitude().clone())
    );
    assert!(e.iter().any(|x| *x != BigInt::from(0)));
    // The secret is ternary: every coefficient in {-1, 0, 1}.
    let s_coeffs = ensi_ckks::keys::hazmat::secret_poly(&sk)
        .clone()
        .into_coeff()
        .to_bigint();
    assert!(
        s_coeffs
            .iter()
            .all(|x| x.magnitude() <= &BigInt::from(1).magnitude().clone())
    );
}

#[test]
fn secret_keys_compare_in_constant_time_and_never_print() {
    let ctx = context(10, 1);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let coeffs: Vec<i64> = ensi_ckks::keys::hazmat::secret_poly(&sk)
        .clone()
        .into_coeff()
        .to_bigint()
        .iter()
        .map(|x| i64::try_from(x).unwrap())
        .collect();
    let same = SecretKey::from_coefficients(&ctx, &coeffs).unwrap();
    let other = SecretKey::generate(&ctx, &mut rng).unwrap();
    assert!(bool::from(sk.ct_eq(&same)));
    assert!(!bool::from(sk.ct_eq(&other)));
    let printed = format!("{sk:?}");
    assert!(
        printed.starts_with("SecretKey") && printed.len() < 80,
        "{printed}"
    );
}

#[test]
fn objects_of_another_parameter_set_are_refused() {
    let ctx = context(10, 2);
    let other = context(10, 3);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let pt = other.encode(&[1.0], 4, 0, 2f64.powi(30)).unwrap();
    assert!(matches!(
        sk.encrypt(&ctx, &pt, &mut rng),
        Err(CkksError::ParamsMismatch { .. })
    ));
    assert!(matches!(
        ctx.encode(&[1.0], 4, 9, 2f64.powi(30)),
        Err(CkksError::InvalidLevel { level: 9, max: 2 })
    ));
}

#[test]
fn flooded_decryption_hides_the_error_at_a_stated_cost() {
    use ensi_ckks::NoiseFlooding;
    // q_0 of 60 bits and scale 2^50 leave room for the flood.
    let ctx = CkksContext::new(
        Parameters::new_insecure(ParametersLiteral::insecure_bootstrap_test(11, 1, 1)).unwrap(),
    )
    .unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let sk = SecretKey::generate(&ctx, &mut rng).unwrap();
    let slots = ctx.n() / 2;
    let values = random_values(&mut rng, slots);
    let scale = ctx.params().default_scale();
    let pt = ctx.encode(&values, slots, 0, scale).unwrap();
    let ct = sk.encrypt(&ctx, &pt, &mut rng).unwrap();
    // A fresh secret-key error is below 19 = 2^4.25 per coefficient: B = 2^5.
    let flooding = NoiseFlooding {
        statistical_security: 20,
        log_noise_bound: 5.0,
    };
    let log_flood = flooding.log_flood(ctx.n());
    assert_eq!(log_flood, 36.0);
    let plain = PrecisionStats::real(
        &values,
        &ctx.decode(&sk.decrypt(&ctx, &ct).unwrap()).unwrap(),
    );
    let a = sk.decrypt_flooded(&ctx, &ct, &flooding, &mut rng).unwrap();
    let b = sk.decrypt_flooded(&ctx, &ct, &flooding, &mut rng).unwrap();
    let (da, db) = (ctx.decode(&a).unwrap(), ctx.decode(&b).unwrap());
    let fa = PrecisionStats::real(&values, &da);
    // The flood dominates the error (many bits above the plain decryption's) ...
    assert!(
        fa.max_error > 1000.0 * plain.max_error,
        "{plain:?} vs {fa:?}"
    );
    // ... but stays within its worst case, sum of N coefficients of size B_f over the scale.
    let worst = 2f64.powf(log_flood + 11.0 - 50.0);
    assert!(fa.max_error < worst, "{fa:?} vs {worst}");
    assert!(fa.min_bits > 6.0, "{fa:?}");
    // Fresh randomness every time: two flooded decryptions of one ciphertext differ.
    assert!(da.iter().zip(&db).any(|(x, y)| (x - y).abs() > 1e-9));
    // A flood that would not stay below the scale is refused.
    let too_much = NoiseFlooding {
        statistical_security: 40,
        log_noise_bound: 5.0,
    };
    assert!(sk.decrypt_flooded(&ctx, &ct, &too_much, &mut rng).is_err());
}
