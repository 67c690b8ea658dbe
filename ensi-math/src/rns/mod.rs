//! Residue number system (RNS) bases: exact CRT, fast basis extension, rescaling and the digit
//! decomposition of hybrid key switching.
//!
//! A value `x mod Q`, `Q = q_0 * ... * q_{k-1}` (distinct odd primes below 2^62), is held as its
//! residues `x_i = x mod q_i`. Polynomials are stored **limb-major**: limb `i` is the slice
//! `data[i * N..(i + 1) * N]` of the residues of all `N` coefficients modulo `q_i`.
//!
//! * [`RnsBasis`]: the primes with their CRT constants, exact reconstruction to
//!   [`num_bigint::BigUint`] / [`num_bigint::BigInt`] and back, and exact rounding division by
//!   the last prime ([`RnsBasis::rescale`]).
//! * [`BasisConverter`]: the approximate fast base conversion of Bajard–Eynard–Hasan–Zucca
//!   ("A full RNS variant of FV like somewhat homomorphic encryption schemes", SAC 2016) and
//!   Halevi–Polyakov–Shoup ("An improved RNS variant of the BFV homomorphic encryption scheme",
//!   CT-RSA 2019), equation (2): the output is `x + u * Q` with `0 <= u < k`.
//! * [`KeySwitchBasis`]: the ModUp / ModDown pair and the digit decomposition of hybrid key
//!   switching (Han–Ki, "Better bootstrapping for approximate homomorphic encryption", CT-RSA
//!   2020, section 3), precomputed once for `Q`, `P` and `dnum` and usable at every level.

pub(crate) mod convert;
mod keyswitch;
pub mod par;

pub use convert::BasisConverter;
pub use keyswitch::{KeySwitchBasis, Rounding};

use crate::error::MathError;
use crate::modulus::Modulus;
use alloc::vec::Vec;
use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Zero};

/// A list of distinct odd primes below 2^62 with precomputed CRT constants.
///
/// For `Q = prod q_i` and `Q_i^* = Q / q_i` it holds `Q`, every `Q_i^*` (as big integers, for
/// exact reconstruction), `(Q_i^*)^{-1} mod q_i` with its Shoup quotient, and for rescaling
/// `q_l^{-1} mod q_i` for every `i < l`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RnsBasis {
    moduli: Vec<Modulus>,
    product: BigUint,
    q_hat: Vec<BigUint>,
    q_hat_inv: Vec<u64>,
    q_hat_inv_shoup: Vec<u64>,
    /// `q_l^{-1} mod q_i` at index `l * (l - 1) / 2 + i` for `0 <= i < l`.
    last_inv: Vec<u64>,
    last_inv_shoup: Vec<u64>,
}

/// `prod_{j in others} q_j mod t`.
pub(crate) fn product_mod(others: impl Iterator<Item = u64>, t: &Modulus) -> u64 {
    others.fold(1u64, |acc, q| t.mul(acc, t.reduce(q)))
}

impl RnsBasis {
    /// A basis of the given primes, in this order. Fails on an empty list, a repeated or
    /// non-coprime modulus, or a modulus [`Modulus::new`] rejects. Primality is not checked, but
    /// the moduli must be pairwise coprime.
    pub fn new(primes: &[u64]) -> Result<Self, MathError> {
        if primes.is_empty() {
            return Err(MathError::InvalidBasis);
        }
        let moduli = primes
            .iter()
            .map(|&q| Modulus::new(q))
            .collect::<Result<Vec<_>, _>>()?;
        let mut product = BigUint::one();
        for &q in primes {
            product *= q;
        }
        let mut q_hat = Vec::with_capacity(primes.len());
        let mut q_hat_inv = Vec::with_capacity(primes.len());
        let mut q_hat_inv_shoup = Vec::with_capacity(primes.len());
        for (i, m) in moduli.iter().enumerate() {
            q_hat.push(&product / m.q());
            let rest = primes
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, &q)| q);
            let inv = m
                .inv_vartime(product_mod(rest, m))
                .ok_or(MathError::InvalidBasis)?;
            q_hat_inv.push(inv);
            q_hat_inv_shoup.push(m.shoup(inv));
        }
        let k = moduli.len();
        let mut last_inv = Vec::with_capacity(k * (k - 1) / 2);
        let mut last_inv_shoup = Vec::with_capacity(k * (k - 1) / 2);
        for l in 1..k {
            for m in &moduli[..l] {
                let inv = m
                    .inv_vartime(moduli[l].q())
                    .ok_or(MathError::InvalidBasis)?;
                last_inv.push(inv);
                last_inv_shoup.push(m.shoup(inv));
            }
        }
        Ok(Self {
            moduli,
            product,
            q_hat,
            q_hat_inv,
            q_hat_inv_shoup,
            last_inv,
            last_inv_shoup,
        })
    }

    /// The number of primes (limbs).
    pub fn len(&self) -> usize {
        self.moduli.len()
    }

    /// Always false: a basis has at least one prime.
    pub fn is_empty(&self) -> bool {
        self.moduli.is_empty()
    }

    /// The primes as [`Modulus`] values.
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// The prime values.
    pub fn primes(&self) -> Vec<u64> {
        self.moduli.iter().map(Modulus::q).collect()
    }

    /// `Q`, the product of the primes.
    pub fn product(&self) -> &BigUint {
        &self.product
    }

    /// `Q / q_i`.
    pub fn q_hat(&self, i: usize) -> &BigUint {
        &self.q_hat[i]
    }

    /// `(Q / q_i)^{-1} mod q_i` and its Shoup quotient.
    pub fn q_hat_inv(&self, i: usize) -> (u64, u64) {
        (self.q_hat_inv[i], self.q_hat_inv_shoup[i])
    }

    /// The basis of the first `limbs` primes (a lower level).
    pub fn prefix(&self, limbs: usize) -> Result<Self, MathError> {
        if limbs == 0 || limbs > self.len() {
            return Err(MathError::LengthMismatch {
                expected: self.len(),
                found: limbs,
            });
        }
        Self::new(&self.primes()[..limbs])
    }

    /// Writes the residues of `x` modulo every prime into `out` (length `len()`).
    ///
    /// # Panics
    /// If `out.len() != self.len()`.
    pub fn reduce_biguint(&self, x: &BigUint, out: &mut [u64]) {
        assert_eq!(out.len(), self.len(), "one residue per prime");
        let digits = x.to_u64_digits();
        for (o, m) in out.iter_mut().zip(&self.moduli) {
            // Horner from the most significant word; r < q < 2^62 keeps (r << 64) | d < 2^126.
            *o = digits
                .iter()
                .rev()
                .fold(0u64, |r, &d| m.reduce_u128(((r as u128) << 64) | d as u128));
        }
    }

    /// Writes the residues of a signed `x` modulo every prime into `out`.
    ///
    /// # Panics
    /// If `out.len() != self.len()`.
    pub fn reduce_bigint(&self, x: &BigInt, out: &mut [u64]) {
        self.reduce_biguint(x.magnitude(), out);
        if x.sign() == Sign::Minus {
            for (o, m) in out.iter_mut().zip(&self.moduli) {
                *o = m.neg(*o);
            }
        }
    }

    /// The residues of `x` (a fresh vector).
    pub fn to_residues(&self, x: &BigUint) -> Vec<u64> {
        let mut out = alloc::vec![0u64; self.len()];
        self.reduce_biguint(x, &mut out);
        out
    }

    /// Exact CRT reconstruction: the unique `x in [0, Q)` with `x = residues[i] mod q_i`.
    ///
    /// `x = sum_i [x_i * (Q_i^*)^{-1}]_{q_i} * Q_i^* mod Q`.
    ///
    /// # Panics
    /// If `residues.len() != self.len()`.
    pub fn reconstruct(&self, residues: &[u64]) -> BigUint {
        assert_eq!(residues.len(), self.len(), "one residue per prime");
        let mut acc = BigUint::zero();
        for (i, (&x, m)) in residues.iter().zip(&self.moduli).enumerate() {
            let v = m.mul_shoup(m.reduce(x), self.q_hat_inv[i], self.q_hat_inv_shoup[i]);
            acc += &self.q_hat[i] * v;
        }
        acc % &self.product
    }

    /// Exact centred reconstruction: the unique `x` in `[-(Q-1)/2, (Q-1)/2]` (Q is odd) with
    /// `x = residues[i] mod q_i`.
    ///
    /// # Panics
    /// If `residues.len() != self.len()`.
    pub fn reconstruct_centered(&self, residues: &[u64]) -> BigInt {
        let x = self.reconstruct(residues);
        if (&x << 1u32) > self.product {
            BigInt::from(x) - BigInt::from(self.product.clone())
        } else {
            BigInt::from(x)
        }
    }

    /// `q_l^{-1} mod q_i` with its Shoup quotient, for `i < l`.
    pub(crate) fn last_inv(&self, l: usize, i: usize) -> (u64, u64) {
        let idx = l * (l - 1) / 2 + i;
        (self.last_inv[idx], self.last_inv_shoup[idx])
    }

    /// Exact rounding division by the last active prime, in the coefficient representation.
    ///
    /// `data` holds `limbs` limbs of `n` residues (over the first `limbs` primes, `Q_l`). On
    /// return its first `limbs - 1` limbs hold `round(x / q_{limbs-1})` for every coefficient,
    /// where `x` is *any* integer representative of the input modulo `Q_l` (the result modulo
    /// `Q_{l-1}` does not depend on the choice; centred inputs give centred rounding). The
    /// rounding is exact, not approximate: with `h = (q_l - 1) / 2` (no ties, `q_l` odd) the
    /// result is `(x + h - [x + h]_{q_l}) / q_l`, and the single residue `[x + h]_{q_l}` is
    /// reduced modulo each `q_i` exactly. The last limb is left as scratch; callers drop it.
    ///
    /// # Panics
    /// If `limbs < 2`, `limbs > len()`, or `data.len() != limbs * n`.
    pub fn rescale(&self, n: usize, limbs: usize, data: &mut [u64]) {
        assert!(
            limbs >= 2 && limbs <= self.len(),
            "rescale needs 2..=len limbs"
        );
        assert_eq!(data.len(), limbs * n, "data must hold limbs * n residues");
        let l = limbs - 1;
        let ql = self.moduli[l];
        let h = ql.q() >> 1;
        let (head, last) = data.split_at_mut(l * n);
        for r in last.iter_mut() {
            *r = ql.add(*r, h);
        }
        let last: &[u64] = last;
        par::for_each_limb(head, n, |i, limb| {
            let m = &self.moduli[i];
            let (inv, inv_shoup) = self.last_inv(l, i);
            let h_i = m.reduce(h);
            for (x, &r) in limb.iter_mut().zip(last) {
                // (x + h - [x + h]_{q_l}) * q_l^{-1} mod q_i
                let t = m.sub(m.add(*x, h_i), m.reduce(r));
                *x = m.mul_shoup(t, inv, inv_shoup);
            }
        });
    }
}
