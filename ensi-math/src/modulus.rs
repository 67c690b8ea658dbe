//! Word-size modular arithmetic for odd moduli below 2^62.
//!
//! Reductions follow Barrett ("Implementing the Rivest Shamir and Adleman public key encryption
//! algorithm on a standard digital signal processor", CRYPTO 1986) with a precomputed
//! `floor(2^128 / q)`, and products by fixed constants follow Shoup's precomputed-quotient
//! method (as used by Harvey, "Faster arithmetic for number-theoretic transforms", 2014).
//!
//! Every method is branch-free on its operand values (conditional subtractions are done with
//! masks), so they may be used on secret data. Methods whose running time depends on their
//! inputs carry the `_vartime` suffix and must only see public values.

use crate::error::MathError;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, CtOption};

/// The largest supported modulus bit size: lazy NTT butterflies keep values below `4q`, which
/// must fit a 64-bit word.
pub const MAX_MODULUS_BITS: u32 = 62;

/// High 64 bits of the 128-bit product `a * b`.
#[inline(always)]
pub(crate) const fn mul_hi(a: u64, b: u64) -> u64 {
    ((a as u128 * b as u128) >> 64) as u64
}

/// An all-ones mask when `x` has its top bit set, zero otherwise.
#[inline(always)]
const fn top_bit_mask(x: u64) -> u64 {
    0u64.wrapping_sub(x >> 63)
}

/// An odd modulus `3 <= q < 2^62` with its Barrett constants.
///
/// ```
/// use ensi_math::Modulus;
/// let m = Modulus::new(0x3fff_ffff_ffe8_0001)?;
/// assert_eq!(m.mul(m.q() - 1, m.q() - 1), 1);
/// # Ok::<(), ensi_math::MathError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Modulus {
    q: u64,
    /// `floor(2^64 / q)`.
    ratio64: u64,
    /// Low word of `floor(2^128 / q)`.
    ratio_lo: u64,
    /// High word of `floor(2^128 / q)`.
    ratio_hi: u64,
    /// `floor(2^(2b) / q)` for `b = bits(q)`: the constant of [`Self::mul_reduced`].
    mu_2b: u64,
}

impl Modulus {
    /// Checks `q` (odd, `3 <= q < 2^62`) and precomputes its Barrett constants.
    pub fn new(q: u64) -> Result<Self, MathError> {
        if q < 3 || q.is_multiple_of(2) || q >> MAX_MODULUS_BITS != 0 {
            return Err(MathError::InvalidModulus { q });
        }
        let ratio = u128::MAX / q as u128; // = floor((2^128 - 1) / q) = floor(2^128 / q) for odd q
        let b = 64 - q.leading_zeros();
        Ok(Self {
            q,
            ratio64: u64::MAX / q,
            ratio_lo: ratio as u64,
            ratio_hi: (ratio >> 64) as u64,
            // q >= 2^(b-1), so the quotient is below 2^(b+1) <= 2^63.
            mu_2b: ((1u128 << (2 * b)) / q as u128) as u64,
        })
    }

    /// The modulus value.
    #[inline(always)]
    pub const fn q(&self) -> u64 {
        self.q
    }

    /// Bit length of `q`.
    pub const fn bits(&self) -> u32 {
        64 - self.q.leading_zeros()
    }

    /// Maps `x` in `[0, 2q)` to `[0, q)`.
    #[inline(always)]
    pub const fn reduce_once(&self, x: u64) -> u64 {
        let t = x.wrapping_sub(self.q);
        t.wrapping_add(self.q & top_bit_mask(t))
    }

    /// Maps `x` in `[0, 4q)` to `[0, 2q)`.
    #[inline(always)]
    pub const fn reduce_twice_lazy(&self, x: u64) -> u64 {
        let two_q = self.q << 1;
        let t = x.wrapping_sub(two_q);
        t.wrapping_add(two_q & top_bit_mask(t))
    }

    /// Reduces any 64-bit word modulo `q` (Barrett with `floor(2^64/q)`).
    #[inline(always)]
    pub const fn reduce(&self, x: u64) -> u64 {
        let est = mul_hi(x, self.ratio64);
        self.reduce_once(x.wrapping_sub(est.wrapping_mul(self.q)))
    }

    /// Reduces a 128-bit value modulo `q` to `[0, 2q)` (Barrett with `floor(2^128/q)`).
    ///
    /// The quotient estimate is exactly `floor(x * floor(2^128/q) / 2^128)`, which is at most one
    /// below `floor(x / q)`, so the remainder lies in `[0, 2q)`.
    #[inline(always)]
    pub const fn reduce_u128_lazy(&self, x: u128) -> u64 {
        let lo = x as u64;
        let hi = (x >> 64) as u64;
        let carry = mul_hi(lo, self.ratio_lo);
        let t = lo as u128 * self.ratio_hi as u128 + carry as u128;
        let t2 = hi as u128 * self.ratio_lo as u128 + (t as u64) as u128;
        let est = hi
            .wrapping_mul(self.ratio_hi)
            .wrapping_add((t >> 64) as u64)
            .wrapping_add((t2 >> 64) as u64);
        lo.wrapping_sub(est.wrapping_mul(self.q))
    }

    /// Reduces a 128-bit value modulo `q`.
    #[inline(always)]
    pub const fn reduce_u128(&self, x: u128) -> u64 {
        self.reduce_once(self.reduce_u128_lazy(x))
    }

    /// `a + b mod q` for `a, b < q`.
    #[inline(always)]
    pub const fn add(&self, a: u64, b: u64) -> u64 {
        self.reduce_once(a + b)
    }

    /// `a - b mod q` for `a, b < q`.
    #[inline(always)]
    pub const fn sub(&self, a: u64, b: u64) -> u64 {
        self.reduce_once(a + self.q - b)
    }

    /// `-a mod q` for `a < q`.
    #[inline(always)]
    pub const fn neg(&self, a: u64) -> u64 {
        self.reduce_once(self.q - a)
    }

    /// `a * b mod q` for `a, b < 2^64` with `a * b < 2^128`.
    #[inline(always)]
    pub const fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// `a * b + c mod q` for `a, b, c < q`, by classical Barrett reduction with
    /// `mu = floor(2^(2b) / q)`, `b = bits(q)` (Menezes–van Oorschot–Vanstone, Handbook of Applied
    /// Cryptography, Algorithm 14.42): for `x = a b + c < 2^(2b)`, the estimate
    /// `floor(floor(x / 2^(b-1)) mu / 2^(b+1))` is at most two below `floor(x / q)`, so the
    /// remainder is below `3q < 2^64` and two branch-free subtractions finish. Three
    /// multiplications instead of the five of the general 128-bit reduction.
    #[inline(always)]
    pub const fn mul_add_reduced(&self, a: u64, b: u64, c: u64) -> u64 {
        let bits = self.bits();
        let x = a as u128 * b as u128 + c as u128;
        let t = (x >> (bits - 1)) as u64;
        let est = ((t as u128 * self.mu_2b as u128) >> (bits + 1)) as u64;
        let r = (x as u64).wrapping_sub(est.wrapping_mul(self.q));
        self.reduce_once(self.reduce_twice_lazy_from_3q(r))
    }

    /// `a * b mod q` for `a, b < q` (see [`Self::mul_add_reduced`]).
    #[inline(always)]
    pub const fn mul_reduced(&self, a: u64, b: u64) -> u64 {
        self.mul_add_reduced(a, b, 0)
    }

    /// Maps `x` in `[0, 3q)` to `[0, 2q)`.
    #[inline(always)]
    const fn reduce_twice_lazy_from_3q(&self, x: u64) -> u64 {
        // Subtract q when x >= q (then x - q < 2q); below q, x stays.
        let t = x.wrapping_sub(self.q);
        t.wrapping_add(self.q & top_bit_mask(t))
    }

    /// `a * b mod q`, result in `[0, 2q)`.
    #[inline(always)]
    pub const fn mul_lazy(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128_lazy(a as u128 * b as u128)
    }

    /// `a * b + c mod q`.
    #[inline(always)]
    pub const fn mul_add(&self, a: u64, b: u64, c: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128 + c as u128)
    }

    /// Shoup's precomputed quotient `floor(w * 2^64 / q)` for a constant `w < q`.
    ///
    /// The constant is public (a twiddle factor, a CRT constant): this divides.
    #[inline]
    pub const fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.q as u128) as u64
    }

    /// `a * w mod q` in `[0, 2q)` for any 64-bit `a`, with `w < q` and `w_shoup = shoup(w)`.
    #[inline(always)]
    pub const fn mul_shoup_lazy(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let est = mul_hi(a, w_shoup);
        a.wrapping_mul(w).wrapping_sub(est.wrapping_mul(self.q))
    }

    /// `a * w mod q` in `[0, q)`, with `w < q` and `w_shoup = shoup(w)`.
    #[inline(always)]
    pub const fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        self.reduce_once(self.mul_shoup_lazy(a, w, w_shoup))
    }

    /// `a^e mod q` with a fixed sequence of 64 squarings and selections: constant time in both
    /// `a` and `e`.
    pub fn pow(&self, a: u64, e: u64) -> u64 {
        let mut result = 1u64;
        let mut base = self.reduce(a);
        for i in 0..64 {
            let product = self.mul(result, base);
            let bit = Choice::from(((e >> i) & 1) as u8);
            result = u64::conditional_select(&result, &product, bit);
            base = self.mul(base, base);
        }
        result
    }

    /// `a^e mod q` by square-and-multiply that skips zero bits of `e`: only for public `e`.
    pub fn pow_vartime(&self, a: u64, e: u64) -> u64 {
        let mut result = 1u64;
        let mut base = self.reduce(a);
        let mut e = e;
        while e != 0 {
            if e & 1 == 1 {
                result = self.mul(result, base);
            }
            base = self.mul(base, base);
            e >>= 1;
        }
        result
    }

    /// The inverse of `a` modulo a *prime* `q` by Fermat's little theorem, in constant time;
    /// none when `a = 0 mod q`.
    pub fn inv(&self, a: u64) -> CtOption<u64> {
        let a = self.reduce(a);
        let r = self.pow(a, self.q - 2);
        CtOption::new(r, !a.ct_eq(&0))
    }

    /// The inverse of `a` modulo `q` (prime or not) by the extended Euclidean algorithm; none when
    /// `gcd(a, q) != 1`. Variable time: only for public values.
    pub fn inv_vartime(&self, a: u64) -> Option<u64> {
        let (mut r0, mut r1) = (self.q as i128, self.reduce(a) as i128);
        let (mut t0, mut t1) = (0i128, 1i128);
        while r1 != 0 {
            let quot = r0 / r1;
            (r0, r1) = (r1, r0 - quot * r1);
            (t0, t1) = (t1, t0 - quot * t1);
        }
        if r0 != 1 {
            return None;
        }
        Some(t0.rem_euclid(self.q as i128) as u64)
    }

    /// Maps a signed value to its residue in `[0, q)`, branch-free.
    #[inline(always)]
    pub const fn from_i64(&self, x: i64) -> u64 {
        let mag = self.reduce(x.unsigned_abs());
        let neg = self.reduce_once(self.q - mag);
        let mask = top_bit_mask(x as u64);
        (mag & !mask) | (neg & mask)
    }

    /// The centred representative of `x < q` in `(-q/2, q/2]`, branch-free.
    #[inline(always)]
    pub const fn to_centered(&self, x: u64) -> i64 {
        // x > q/2  <=>  (q/2 - x) borrows.
        let mask = top_bit_mask((self.q >> 1).wrapping_sub(x));
        (x as i64).wrapping_sub((self.q & mask) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn modulus_strategy() -> impl Strategy<Value = Modulus> {
        (1u64..(1u64 << 61)).prop_map(|x| Modulus::new(2 * x + 1).unwrap())
    }

    #[test]
    fn barrett_products_exhaustive_on_small_moduli() {
        for q in (3u64..200).step_by(2) {
            let m = Modulus::new(q).unwrap();
            for a in 0..q {
                for b in 0..q {
                    assert_eq!(m.mul_reduced(a, b), a * b % q, "q = {q}");
                    assert_eq!(
                        m.mul_add_reduced(a, b, q - 1),
                        (a * b + q - 1) % q,
                        "q = {q}"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_bad_moduli() {
        for q in [0u64, 1, 2, 4, 1 << 62, u64::MAX] {
            assert_eq!(Modulus::new(q), Err(MathError::InvalidModulus { q }));
        }
        assert!(Modulus::new((1 << 62) - 1).is_ok());
    }

    proptest! {
        #[test]
        fn arithmetic_matches_u128(m in modulus_strategy(), a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
            let q = m.q() as u128;
            let (ra, rb, rc) = (a % m.q(), b % m.q(), c % m.q());
            prop_assert_eq!(m.reduce(a) as u128, a as u128 % q);
            prop_assert_eq!(m.add(ra, rb) as u128, (ra as u128 + rb as u128) % q);
            prop_assert_eq!(m.sub(ra, rb) as u128, (ra as u128 + q - rb as u128) % q);
            prop_assert_eq!(m.neg(ra) as u128, (q - ra as u128) % q);
            prop_assert_eq!(m.mul(a, b) as u128, (a as u128 * b as u128) % q);
            prop_assert_eq!(m.mul_add(ra, rb, rc) as u128, (ra as u128 * rb as u128 + rc as u128) % q);
            let lazy = m.mul_lazy(a, b);
            prop_assert!((lazy as u128) < 2 * q);
            prop_assert_eq!(lazy as u128 % q, (a as u128 * b as u128) % q);
            let x = ((a as u128) << 64) | b as u128;
            prop_assert_eq!(m.reduce_u128(x) as u128, x % q);
            prop_assert_eq!(m.mul_reduced(ra, rb) as u128, (ra as u128 * rb as u128) % q);
            prop_assert_eq!(
                m.mul_add_reduced(ra, rb, rc) as u128,
                (ra as u128 * rb as u128 + rc as u128) % q
            );
            // The extremes: (q-1)^2 + (q-1), the largest input.
            let top = m.q() - 1;
            prop_assert_eq!(m.mul_add_reduced(top, top, top) as u128, ((q - 1) * (q - 1) + q - 1) % q);
        }

        #[test]
        fn shoup_matches_u128(m in modulus_strategy(), a in any::<u64>(), w in any::<u64>()) {
            let q = m.q() as u128;
            let w = w % m.q();
            let ws = m.shoup(w);
            let lazy = m.mul_shoup_lazy(a, w, ws);
            prop_assert!((lazy as u128) < 2 * q);
            prop_assert_eq!(lazy as u128 % q, (a as u128 * w as u128) % q);
            prop_assert_eq!(m.mul_shoup(a, w, ws) as u128, (a as u128 * w as u128) % q);
        }

        #[test]
        fn lazy_reductions(m in modulus_strategy(), x in any::<u64>()) {
            let q = m.q();
            let x2 = x % (2 * q);
            let x4 = x % (4 * q);
            prop_assert_eq!(m.reduce_once(x2), x2 % q);
            let r = m.reduce_twice_lazy(x4);
            prop_assert!(r < 2 * q);
            prop_assert_eq!(r % q, x4 % q);
        }

        #[test]
        fn pow_and_inverse(m in modulus_strategy(), a in any::<u64>(), e in any::<u64>()) {
            let expected = {
                let q = m.q() as u128;
                let (mut r, mut b, mut e) = (1u128, a as u128 % q, e);
                while e > 0 {
                    if e & 1 == 1 { r = r * b % q; }
                    b = b * b % q;
                    e >>= 1;
                }
                r as u64
            };
            prop_assert_eq!(m.pow(a, e), expected);
            prop_assert_eq!(m.pow_vartime(a, e), expected);
            if let Some(inv) = m.inv_vartime(a) {
                prop_assert_eq!(m.mul(inv, a % m.q()), 1);
            }
        }

        #[test]
        fn signed_conversions(m in modulus_strategy(), x in any::<i64>()) {
            let q = m.q() as i128;
            let r = m.from_i64(x);
            prop_assert_eq!(r as i128, (x as i128).rem_euclid(q));
            let c = m.to_centered(r) as i128;
            prop_assert!(c > -(q / 2) - 1 && c <= q / 2);
            prop_assert_eq!(c.rem_euclid(q), r as i128);
        }
    }

    #[test]
    fn constant_time_inverse_on_prime() {
        let m = Modulus::new(0x3fff_ffff_ffe8_0001).unwrap(); // a prime, 1 mod 2^18
        for a in [1u64, 2, 3, 12345, m.q() - 1] {
            let inv = m.inv(a).unwrap();
            assert_eq!(m.mul(inv, a), 1);
        }
        assert!(bool::from(m.inv(0).is_none()));
        assert!(bool::from(m.inv(m.q()).is_none()));
    }
}
