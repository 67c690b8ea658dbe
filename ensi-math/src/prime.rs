//! NTT-friendly prime generation and roots of unity.
//!
//! Primality is decided by the Miller–Rabin test with the first twelve primes as bases, which is
//! deterministic for every 64-bit integer (Jaeschke 1993; Sorenson–Webster 2015 show these bases
//! suffice below 3.3 * 10^24).

use crate::error::MathError;
use crate::modulus::Modulus;
use alloc::vec::Vec;

const MR_BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];

fn mul_mod_u128(a: u64, b: u64, n: u64) -> u64 {
    ((a as u128 * b as u128) % n as u128) as u64
}

fn pow_mod_u128(mut b: u64, mut e: u64, n: u64) -> u64 {
    let mut r = 1 % n;
    b %= n;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod_u128(r, b, n);
        }
        b = mul_mod_u128(b, b, n);
        e >>= 1;
    }
    r
}

/// Deterministic primality test for any 64-bit integer (public data only).
pub fn is_prime_vartime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in MR_BASES {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'bases: for a in MR_BASES {
        let mut x = pow_mod_u128(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod_u128(x, x, n);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// Generates `count` distinct primes of exactly `bits` bits with `q = 1 mod 2n`, searching
/// downward from `2^bits`, skipping every prime listed in `exclude`.
///
/// Deterministic: the same arguments always give the same primes, largest first.
pub fn generate_ntt_primes(
    bits: u32,
    count: usize,
    n: usize,
    exclude: &[u64],
) -> Result<Vec<u64>, MathError> {
    if !(20..=crate::modulus::MAX_MODULUS_BITS).contains(&bits) {
        return Err(MathError::InvalidPrimeSize { bits });
    }
    if !n.is_power_of_two() {
        return Err(MathError::InvalidRingDegree {
            n,
            min: 1,
            max: 1 << 30,
        });
    }
    let step = 2 * n as u64;
    let low = 1u64 << (bits - 1);
    let mut out = Vec::with_capacity(count);
    // Largest candidate below 2^bits that is 1 mod 2n.
    let mut candidate = (1u64 << bits) - step + 1;
    while out.len() < count {
        if candidate <= low {
            return Err(MathError::NotEnoughPrimes {
                bits,
                n,
                wanted: count,
            });
        }
        if is_prime_vartime(candidate) && !exclude.contains(&candidate) {
            out.push(candidate);
        }
        candidate -= step;
    }
    Ok(out)
}

/// Generates a chain of distinct NTT-friendly primes, one per entry of `bit_sizes`, in that
/// order: the building block of CKKS modulus chains (`Q` then `P`).
pub fn generate_prime_chain(bit_sizes: &[u32], n: usize) -> Result<Vec<u64>, MathError> {
    let mut chain: Vec<u64> = Vec::with_capacity(bit_sizes.len());
    for &bits in bit_sizes {
        let p = generate_ntt_primes(bits, 1, n, &chain)?;
        chain.extend_from_slice(&p);
    }
    Ok(chain)
}

/// The smallest-base primitive `2n`-th root of unity modulo the prime `q`: `psi = x^((q-1)/2n)`
/// for the least `x >= 2` with `psi^n = -1`. Fails when `q` is not a prime `= 1 mod 2n`.
pub fn primitive_root_2n(q: u64, n: usize) -> Result<u64, MathError> {
    let m = Modulus::new(q)?;
    let two_n = 2 * n as u64;
    if !n.is_power_of_two() || !(q - 1).is_multiple_of(two_n) || !is_prime_vartime(q) {
        return Err(MathError::NotNttFriendly { q, n });
    }
    let exp = (q - 1) / two_n;
    for x in 2..q {
        let psi = m.pow_vartime(x, exp);
        // 2n is a power of two, so psi has order exactly 2n iff psi^n = -1.
        if m.pow_vartime(psi, n as u64) == q - 1 {
            return Ok(psi);
        }
    }
    Err(MathError::NotNttFriendly { q, n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use proptest::prelude::*;

    fn trial_division(n: u64) -> bool {
        if n < 2 {
            return false;
        }
        let mut d = 2u64;
        while d * d <= n {
            if n.is_multiple_of(d) {
                return false;
            }
            d += 1;
        }
        true
    }

    #[test]
    fn primality_matches_trial_division() {
        for n in 0..20_000u64 {
            assert_eq!(is_prime_vartime(n), trial_division(n), "n = {n}");
        }
        // Strong pseudoprimes to several bases.
        for n in [
            3_215_031_751u64,
            2_152_302_898_747,
            3_474_749_660_383,
            341_550_071_728_321,
        ] {
            assert!(!is_prime_vartime(n));
        }
        assert!(is_prime_vartime((1u64 << 61) - 1));
        assert!(!is_prime_vartime((1u64 << 62) - 1));
    }

    proptest! {
        #[test]
        fn primality_agrees_on_random_32_bit(n in 0u64..(1 << 32)) {
            prop_assert_eq!(is_prime_vartime(n), trial_division(n));
        }
    }

    #[test]
    fn chains_are_distinct_friendly_and_sized() {
        for (bits, n) in [
            (30u32, 1usize << 10),
            (50, 1 << 16),
            (60, 1 << 17),
            (62, 1 << 12),
        ] {
            let primes = generate_ntt_primes(bits, 5, n, &[]).unwrap();
            for (i, &q) in primes.iter().enumerate() {
                assert_eq!(64 - q.leading_zeros(), bits);
                assert_eq!(q % (2 * n as u64), 1);
                assert!(trial_division_big(q));
                assert!(!primes[..i].contains(&q));
            }
        }
        let chain = generate_prime_chain(&[60, 40, 40, 60], 1 << 14).unwrap();
        assert_eq!(chain.len(), 4);
        assert_ne!(chain[0], chain[3]);
        assert_ne!(chain[1], chain[2]);
        assert_eq!(
            generate_ntt_primes(10, 1, 1 << 10, &[]),
            Err(MathError::InvalidPrimeSize { bits: 10 })
        );
        assert!(matches!(
            generate_ntt_primes(20, 100, 1 << 17, &[]),
            Err(MathError::NotEnoughPrimes { .. })
        ));
    }

    /// Primality by the Fermat test to many bases on big integers: independent of the u128 code.
    fn trial_division_big(q: u64) -> bool {
        let qb = BigUint::from(q);
        (2u64..40).all(|a| BigUint::from(a).modpow(&(&qb - 1u32), &qb) == BigUint::from(1u32))
    }

    #[test]
    fn roots_have_exact_order() {
        for log_n in 10..=17 {
            let n = 1usize << log_n;
            let q = generate_ntt_primes(50, 1, n, &[]).unwrap()[0];
            let psi = primitive_root_2n(q, n).unwrap();
            let m = Modulus::new(q).unwrap();
            assert_eq!(m.pow_vartime(psi, 2 * n as u64), 1);
            assert_eq!(m.pow_vartime(psi, n as u64), q - 1);
        }
        assert!(primitive_root_2n(97, 1 << 10).is_err());
    }
}
