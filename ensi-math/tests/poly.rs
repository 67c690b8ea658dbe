//! Typed RNS polynomials against naive references (negacyclic convolution, big integers).
#![allow(clippy::unwrap_used)]

use ensi_math::{Coeff, MathError, Ntt, RnsContext, RnsPoly, generate_ntt_primes};
use num_bigint::{BigInt, BigUint};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::Arc;
use zeroize::Zeroize;

fn ctx(n: usize, limbs: usize) -> Arc<RnsContext> {
    RnsContext::new(n, &generate_ntt_primes(50, limbs, n, &[]).unwrap()).unwrap()
}

fn random_poly(ctx: &Arc<RnsContext>, limbs: usize, seed: u64) -> RnsPoly<Coeff> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n = ctx.n();
    let mut data = Vec::with_capacity(limbs * n);
    for m in &ctx.basis().moduli()[..limbs] {
        for _ in 0..n {
            data.push(rng.next_u64() % m.q());
        }
    }
    RnsPoly::from_raw(ctx, limbs, data).unwrap()
}

fn modq(a: &BigInt, q: &BigUint) -> BigUint {
    let q = BigInt::from(q.clone());
    (((a % &q) + &q) % &q).to_biguint().unwrap()
}

use ensi_math::oracle::negacyclic_mul_big as naive_mul;

fn q_of(ctx: &Arc<RnsContext>, limbs: usize) -> BigUint {
    ctx.basis().prefix(limbs).unwrap().product().clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn ring_ops_match_bigint(log_n in 1u32..7, limbs in 1usize..4, seed in any::<u64>()) {
        let n = 1 << log_n;
        let c = ctx(n, 3);
        let q = q_of(&c, limbs);
        let a = random_poly(&c, limbs, seed);
        let b = random_poly(&c, limbs, seed ^ 1);
        let (av, bv) = (a.to_biguint(), b.to_biguint());
        let sum = (&a + &b).to_biguint();
        let diff = a.try_sub(&b).unwrap().to_biguint();
        let neg = (-&a).to_biguint();
        for i in 0..n {
            prop_assert_eq!(&sum[i], &((&av[i] + &bv[i]) % &q));
            prop_assert_eq!(&diff[i], &((&av[i] + &q - &bv[i]) % &q));
            prop_assert_eq!(&neg[i], &((&q - &av[i]) % &q));
        }
        // NTT-domain product = negacyclic convolution.
        let prod = (&a.clone().into_ntt() * &b.clone().into_ntt()).into_coeff().to_biguint();
        prop_assert_eq!(prod, naive_mul(&av, &bv, &q));
        // Multiply-accumulate.
        let mut acc = a.clone().into_ntt();
        acc.try_mul_acc(&a.clone().into_ntt(), &b.clone().into_ntt()).unwrap();
        let expect: Vec<BigUint> = naive_mul(&av, &bv, &q).iter().zip(&av).map(|(p, x)| (p + x) % &q).collect();
        prop_assert_eq!(acc.into_coeff().to_biguint(), expect);
        // Additions in the NTT domain agree with the coefficient domain.
        let s2 = (a.clone().into_ntt() + &b.clone().into_ntt()).into_coeff();
        prop_assert_eq!(s2, &a + &b);
    }

    #[test]
    fn scalar_products(seed in any::<u64>(), c64 in any::<u64>(), ci in any::<i64>()) {
        let c = ctx(16, 3);
        let q = q_of(&c, 3);
        let a = random_poly(&c, 3, seed);
        let av = a.to_biguint();
        let mut b = a.clone();
        b.mul_scalar_u64_assign(c64);
        let mut d = a.clone().into_ntt();
        d.mul_scalar_i64_assign(ci);
        let d = d.into_coeff().to_biguint();
        for i in 0..16 {
            prop_assert_eq!(&b.to_biguint()[i], &((&av[i] * c64) % &q));
            prop_assert_eq!(&d[i], &modq(&(BigInt::from(av[i].clone()) * ci), &q));
        }
        // Per-limb constants: limb i multiplied by s_i.
        let s = [3u64, 5, 7];
        let mut e = a.clone();
        e.mul_scalar_per_limb_assign(&s).unwrap();
        for (i, m) in c.basis().moduli().iter().enumerate() {
            for j in 0..16 {
                prop_assert_eq!(e.limb(i)[j], m.mul(a.limb(i)[j], s[i]));
            }
        }
        prop_assert!(e.mul_scalar_per_limb_assign(&s[..2]).is_err());
    }

    #[test]
    fn signed_constructors_round_trip(coeffs in proptest::collection::vec(any::<i64>(), 32)) {
        let c = ctx(32, 3);
        let p = RnsPoly::from_i64(&c, 3, &coeffs).unwrap();
        let back = p.to_bigint();
        for (x, y) in coeffs.iter().zip(&back) {
            prop_assert_eq!(&BigInt::from(*x), y);
        }
        let big: Vec<BigInt> = coeffs.iter().map(|&x| BigInt::from(x) * BigInt::from(x) * -3).collect();
        let q = q_of(&c, 3);
        let p2 = RnsPoly::from_bigint(&c, 3, &big).unwrap();
        for (x, y) in big.iter().zip(p2.to_biguint()) {
            prop_assert_eq!(modq(x, &q), y);
        }
    }

    #[test]
    fn automorphisms_agree(log_n in 1u32..9, k in 0usize..2048, seed in any::<u64>()) {
        let n = 1 << log_n;
        let k = 2 * k + 1;
        let c = ctx(n, 2);
        let q = q_of(&c, 2);
        let a = random_poly(&c, 2, seed);
        let av = a.to_biguint();
        // Definition: a(X^k) = sum a_i X^{ik}, X^N = -1.
        let mut expect = vec![BigInt::from(0); n];
        for (i, x) in av.iter().enumerate() {
            let e = (i * k) % (2 * n);
            if e < n { expect[e] += BigInt::from(x.clone()); } else { expect[e - n] -= BigInt::from(x.clone()); }
        }
        let expect: Vec<BigUint> = expect.iter().map(|x| modq(x, &q)).collect();
        let coeff = a.automorphism(k).unwrap();
        prop_assert_eq!(coeff.to_biguint(), expect);
        let ntt = a.clone().into_ntt().automorphism(k).unwrap().into_coeff();
        prop_assert_eq!(ntt, coeff);
    }

    #[test]
    fn rescale_ntt_matches_coeff(seed in any::<u64>(), limbs in 2usize..5) {
        let c = ctx(64, 4);
        let a = random_poly(&c, limbs, seed);
        let r1 = a.clone().rescale().unwrap();
        let r2 = a.clone().into_ntt().rescale().unwrap().into_coeff();
        prop_assert_eq!(r1.limbs(), limbs - 1);
        prop_assert_eq!(&r1, &r2);
        // Exact rounding on the centred values.
        let ql = BigInt::from(c.basis().moduli()[limbs - 1].q());
        for (x, y) in a.to_bigint().iter().zip(r1.to_bigint()) {
            let num = x * 2 + &ql;
            let den = &ql * 2;
            let mut f = &num / &den;
            if num < BigInt::from(0) && &f * &den != num { f -= 1; }
            prop_assert_eq!(f, y);
        }
    }
}

/// The NTT-domain rescale (vector kernels where the CPU has them) against the coefficient one
/// and exact rounding, on a chain that mixes prime sizes: the last prime larger than the
/// others (its residues reduced modulo smaller primes), 62-bit and 30-bit limbs.
#[test]
fn rescale_in_ntt_form_across_prime_sizes() {
    let n = 256;
    let mut primes = Vec::new();
    for bits in [40u32, 62, 30, 50, 61] {
        primes.extend(generate_ntt_primes(bits, 1, n, &primes).unwrap());
    }
    let c = RnsContext::new(n, &primes).unwrap();
    for limbs in 2..=primes.len() {
        for seed in 0..4 {
            let a = random_poly(&c, limbs, seed * 31 + limbs as u64);
            let ntt = a.clone().into_ntt();
            let r2 = ntt.rescaled().unwrap();
            assert_eq!(r2.limbs(), limbs - 1);
            assert_eq!(ntt.limbs(), limbs, "the input is untouched");
            let r1 = a.clone().rescale().unwrap();
            assert_eq!(r1, r2.into_coeff(), "{limbs} limbs, seed {seed}");
            let ql = BigInt::from(c.basis().moduli()[limbs - 1].q());
            for (x, y) in a.to_bigint().iter().zip(r1.to_bigint()) {
                let num = x * 2 + &ql;
                let den = &ql * 2;
                let mut f = &num / &den;
                if num < BigInt::from(0) && &f * &den != num {
                    f -= 1;
                }
                assert_eq!(f, y);
            }
        }
    }
}

#[test]
fn mismatches_are_errors() {
    let c = ctx(16, 3);
    let other = ctx(32, 3);
    let a = random_poly(&c, 3, 1);
    let b = random_poly(&c, 2, 2);
    let d = random_poly(&other, 3, 3);
    assert_eq!(a.try_add(&b), Err(MathError::ContextMismatch));
    assert_eq!(a.try_sub(&d), Err(MathError::ContextMismatch));
    assert_eq!(
        a.clone().into_ntt().try_mul(&b.clone().into_ntt()),
        Err(MathError::ContextMismatch)
    );
    // A context rebuilt from the same primes is the same ring.
    let c2 = RnsContext::new(16, &c.basis().primes()).unwrap();
    let a2 = RnsPoly::<Coeff>::from_raw(&c2, 3, a.as_slice().to_vec()).unwrap();
    assert!(a.try_add(&a2).is_ok());
    assert!(a.automorphism(4).is_err());
    assert!(RnsPoly::<Coeff>::from_raw(&c, 1, vec![u64::MAX; 16]).is_err());
    assert!(RnsPoly::<Coeff>::zero(&c, 4).is_err());
    assert!(RnsPoly::<Coeff>::from_i64(&c, 1, &[0; 15]).is_err());
}

#[test]
fn dropping_limbs_and_zeroize() {
    let c = ctx(16, 3);
    let a = random_poly(&c, 3, 5);
    let mut b = a.clone();
    b.drop_last_limbs(2).unwrap();
    assert_eq!(b.limbs(), 1);
    assert_eq!(b.as_slice(), a.limb(0));
    assert!(b.drop_last_limbs(1).is_err());
    let mut z = a.clone().into_ntt();
    z.zeroize();
    assert!(z.as_slice().iter().all(|&x| x == 0));
    assert_eq!(z.limbs(), 3);
    // A wiped polynomial is the zero polynomial of the same shape, still usable.
    assert_eq!(z.as_slice().len(), 3 * 16);
    assert_eq!(z, RnsPoly::<Ntt>::zero(&c, 3).unwrap());
    let sum = z.try_add(&a.clone().into_ntt()).unwrap();
    assert_eq!(sum, a.clone().into_ntt());
    assert_eq!(z.limb(2).len(), 16);
    let dbg = format!("{a:?}");
    assert!(dbg.contains("limbs: 3") && !dbg.contains(&a.as_slice()[0].to_string()));
}

#[test]
fn ntt_automorphism_table_composes() {
    let c = ctx(64, 1);
    let a = random_poly(&c, 1, 9).into_ntt();
    let t5 = c.ntt_automorphism(5).unwrap();
    let t25 = c.ntt_automorphism(25).unwrap();
    let twice = a
        .automorphism_with(&t5)
        .unwrap()
        .automorphism_with(&t5)
        .unwrap();
    assert_eq!(twice, a.automorphism_with(&t25).unwrap());
    // k = 2N - 1 is conjugation; applying it twice is the identity.
    let conj = c.ntt_automorphism(127).unwrap();
    assert_eq!(
        a.automorphism_with(&conj)
            .unwrap()
            .automorphism_with(&conj)
            .unwrap(),
        a
    );
    let _ = RnsPoly::<Ntt>::zero(&c, 1).unwrap();
}

/// `to_centered_f64` (Garner's mixed radix, no big integers) against the exact CRT's `f64`,
/// for values spread over the whole centred range and for small ones of both signs (where
/// every high digit is zero or `q_i - 1`), at one to many limbs of mixed prime sizes.
#[test]
fn centred_f64_matches_the_exact_crt() {
    use num_traits::ToPrimitive;
    let n = 64;
    let mut primes = Vec::new();
    for bits in [60u32, 50, 50, 61, 40, 50, 55, 50, 62, 30, 50, 50] {
        primes.extend(generate_ntt_primes(bits, 1, n, &primes).unwrap());
    }
    let c = RnsContext::new(n, &primes).unwrap();
    for limbs in 1..=primes.len() {
        let big = random_poly(&c, limbs, limbs as u64);
        let small: Vec<i64> = (0..n as i64)
            .map(|k| (k - 32) * 0x1234_5678_9abc + (k % 3) - 1)
            .collect();
        let small = RnsPoly::from_i64(&c, limbs, &small).unwrap();
        for p in [big, small] {
            let want: Vec<f64> = p.to_bigint().iter().map(|x| x.to_f64().unwrap()).collect();
            let got = p.to_centered_f64();
            for (k, (w, g)) in want.iter().zip(&got).enumerate() {
                let tol = w.abs() * 1e-14;
                assert!(
                    (w - g).abs() <= tol,
                    "{limbs} limbs, coefficient {k}: {g} vs {w}"
                );
            }
        }
    }
}
