//! Negacyclic number-theoretic transforms over `Z_q[X]/(X^N + 1)`.
//!
//! The forward transform is the merged Cooley–Tukey transform of Longa–Naehrig ("Speeding up the
//! Number Theoretic Transform for Faster Ideal Lattice-Based Cryptography", CANS 2016): natural
//! order in, bit-reversed order out, with the powers of a primitive `2N`-th root `psi` folded
//! into the twiddles so no pre-multiplication is needed. The inverse is the matching
//! Gentleman–Sande transform, bit-reversed in, natural out, with `N^{-1}` folded into the last
//! stage. Butterflies use Harvey's lazy reduction ("Faster arithmetic for number-theoretic
//! transforms", J. Symb. Comp. 2014), keeping values below `4q`.
//!
//! **Evaluation order.** After [`NttPlan::forward`], index `i` holds `a(psi^(2 * bitrev(i) + 1))`,
//! where `bitrev` reverses `log2 N` bits. Pointwise products are products of the polynomials
//! modulo `X^N + 1`; automorphisms in this representation permute indices accordingly.

mod scalar;

use crate::error::MathError;
use crate::modulus::Modulus;
use crate::prime::primitive_root_2n;
use alloc::vec::Vec;

/// Smallest supported ring degree.
pub const MIN_LOG_N: u32 = 1;
/// Largest supported ring degree.
pub const MAX_LOG_N: u32 = 17;

/// Which implementation of the butterflies a plan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Portable scalar code: the oracle every other backend is tested against.
    Scalar,
}

impl Backend {
    /// Every backend this CPU can run, the scalar one first.
    pub fn available() -> Vec<Backend> {
        alloc::vec![Backend::Scalar]
    }

    /// The fastest backend this CPU can run for a modulus of `bits` bits.
    pub fn detect(_bits: u32) -> Backend {
        Backend::Scalar
    }
}

/// `x` with its lowest `bits` bits reversed.
#[inline]
pub const fn bit_reverse(x: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        x.reverse_bits() >> (usize::BITS - bits)
    }
}

/// A precomputed negacyclic NTT for one ring degree and one prime.
#[derive(Clone, Debug)]
pub struct NttPlan {
    n: usize,
    log_n: u32,
    modulus: Modulus,
    psi: u64,
    backend: Backend,
    /// `psi^bitrev(k)` for `k < N`.
    fwd: Vec<u64>,
    fwd_shoup: Vec<u64>,
    /// `psi^-bitrev(k)` for `k < N`.
    inv: Vec<u64>,
    inv_shoup: Vec<u64>,
    n_inv: u64,
    n_inv_shoup: u64,
}

impl NttPlan {
    /// A plan for degree `n` (a power of two, 2 to 2^17) and the prime `q = 1 mod 2n`, running the
    /// fastest backend this CPU supports.
    pub fn new(n: usize, q: u64) -> Result<Self, MathError> {
        let modulus = Modulus::new(q)?;
        Self::with_backend(n, q, Backend::detect(modulus.bits()))
    }

    /// A plan that runs the given backend; fails if this CPU cannot run it.
    pub fn with_backend(n: usize, q: u64, backend: Backend) -> Result<Self, MathError> {
        let (min, max) = (1usize << MIN_LOG_N, 1usize << MAX_LOG_N);
        if !n.is_power_of_two() || !(min..=max).contains(&n) {
            return Err(MathError::InvalidRingDegree { n, min, max });
        }
        let modulus = Modulus::new(q)?;
        let psi = primitive_root_2n(q, n)?;
        let log_n = n.trailing_zeros();
        let psi_inv = modulus
            .inv_vartime(psi)
            .ok_or(MathError::NotNttFriendly { q, n })?;
        let powers = |base: u64| {
            let mut p = Vec::with_capacity(n);
            let mut acc = 1u64;
            for _ in 0..n {
                p.push(acc);
                acc = modulus.mul(acc, base);
            }
            let mut rev = alloc::vec![0u64; n];
            for (k, slot) in rev.iter_mut().enumerate() {
                *slot = p[bit_reverse(k, log_n)];
            }
            rev
        };
        let fwd = powers(psi);
        let inv = powers(psi_inv);
        let fwd_shoup = fwd.iter().map(|&w| modulus.shoup(w)).collect();
        let inv_shoup = inv.iter().map(|&w| modulus.shoup(w)).collect();
        let n_inv = modulus
            .inv_vartime(n as u64)
            .ok_or(MathError::NotNttFriendly { q, n })?;
        Ok(Self {
            n,
            log_n,
            modulus,
            psi,
            backend,
            fwd,
            fwd_shoup,
            inv,
            inv_shoup,
            n_inv,
            n_inv_shoup: modulus.shoup(n_inv),
        })
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The modulus.
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// The primitive `2N`-th root of unity the plan evaluates at.
    pub fn psi(&self) -> u64 {
        self.psi
    }

    /// The backend this plan runs.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// In-place forward transform: coefficients in `[0, q)`, natural order, to evaluations in
    /// `[0, q)`, bit-reversed order.
    ///
    /// # Panics
    /// If `a.len() != N`.
    pub fn forward(&self, a: &mut [u64]) {
        assert_eq!(
            a.len(),
            self.n,
            "NTT input length must equal the ring degree"
        );
        match self.backend {
            Backend::Scalar => scalar::forward(self, a),
        }
    }

    /// In-place inverse transform: evaluations in `[0, q)`, bit-reversed order, to coefficients
    /// in `[0, q)`, natural order.
    ///
    /// # Panics
    /// If `a.len() != N`.
    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(
            a.len(),
            self.n,
            "NTT input length must equal the ring degree"
        );
        match self.backend {
            Backend::Scalar => scalar::inverse(self, a),
        }
    }

    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }
}

#[cfg(test)]
mod tests;
