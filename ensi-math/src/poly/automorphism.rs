//! Automorphisms `X -> X^k` of `Z_Q[X] / (X^N + 1)` for odd `k` (the Galois group, `Z_2N^*`).
//!
//! * Coefficient representation: `X^i -> X^{ik mod 2N}`, and `X^{j} = -X^{j - N}` for `j >= N`.
//! * NTT representation: index `i` holds `a(psi^(2 bitrev(i) + 1))` (see [`crate::ntt`]), and
//!   `sigma_k(a)(psi^e) = a(psi^(e k))`, so output index `i` takes input index `j` with
//!   `2 bitrev(j) + 1 = (2 bitrev(i) + 1) k mod 2N`: a permutation, the same for every limb.

use super::{Coeff, Ntt, RnsContext, RnsPoly};
use crate::error::MathError;
use crate::ntt::bit_reverse;
use alloc::vec::Vec;

/// Reduces an odd Galois element modulo `2N`.
fn check_galois(k: usize, n: usize) -> Result<usize, MathError> {
    if k.is_multiple_of(2) {
        return Err(MathError::InvalidGaloisElement { k });
    }
    Ok(k % (2 * n))
}

/// The precomputed index permutation of `X -> X^k` in the NTT representation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NttAutomorphism {
    k: usize,
    /// `out[i] = in[perm[i]]`.
    perm: Vec<u32>,
}

impl NttAutomorphism {
    /// The permutation for degree `n` (a power of two) and odd `k`.
    pub fn new(n: usize, k: usize) -> Result<Self, MathError> {
        if !n.is_power_of_two() || n > 1 << 31 {
            return Err(MathError::InvalidRingDegree {
                n,
                min: 2,
                max: 1 << 31,
            });
        }
        let k = check_galois(k, n)?;
        let log_n = n.trailing_zeros();
        let two_n = 2 * n;
        let perm = (0..n)
            .map(|i| {
                let e = ((2 * bit_reverse(i, log_n) + 1) * k) % two_n;
                bit_reverse((e - 1) / 2, log_n) as u32
            })
            .collect();
        Ok(Self { k, perm })
    }

    /// The Galois element `k mod 2N`.
    pub fn galois_element(&self) -> usize {
        self.k
    }

    /// The ring degree.
    pub fn n(&self) -> usize {
        self.perm.len()
    }

    /// `out[i] = in[perm[i]]`.
    pub fn permutation(&self) -> &[u32] {
        &self.perm
    }
}

impl RnsContext {
    /// The NTT-domain permutation of `X -> X^k` for this ring.
    pub fn ntt_automorphism(&self, k: usize) -> Result<NttAutomorphism, MathError> {
        NttAutomorphism::new(self.n, k)
    }
}

impl RnsPoly<Coeff> {
    /// `a(X^k)` for odd `k`, by the signed index map.
    pub fn automorphism(&self, k: usize) -> Result<Self, MathError> {
        let n = self.ctx.n;
        let k = check_galois(k, n)?;
        let moduli = self.ctx.basis.moduli();
        let src = &self.data;
        let mut out = Self::from_vec(&self.ctx, self.limbs, alloc::vec![0u64; src.len()]);
        let mask = 2 * n - 1;
        out.map_limbs(|l, limb| {
            let m = &moduli[l];
            let s = &src[l * n..(l + 1) * n];
            // The index map is public (k is public); only the sign mask touches data.
            for (i, &x) in s.iter().enumerate() {
                let j = (i * k) & mask;
                let neg = (j >= n) as u64;
                let v = m.neg(x);
                let sel = 0u64.wrapping_sub(neg);
                limb[j & (n - 1)] = (x & !sel) | (v & sel);
            }
        });
        Ok(out)
    }
}

impl RnsPoly<Ntt> {
    /// `a(X^k)` by a precomputed permutation (built with [`RnsContext::ntt_automorphism`]).
    pub fn automorphism_with(&self, table: &NttAutomorphism) -> Result<Self, MathError> {
        let n = self.ctx.n;
        if table.n() != n {
            return Err(MathError::LengthMismatch {
                expected: n,
                found: table.n(),
            });
        }
        let src = &self.data;
        let perm = &table.perm;
        let mut out = Self::from_vec(&self.ctx, self.limbs, alloc::vec![0u64; src.len()]);
        out.map_limbs(|l, limb| {
            let s = &src[l * n..(l + 1) * n];
            for (o, &p) in limb.iter_mut().zip(perm) {
                *o = s[p as usize];
            }
        });
        Ok(out)
    }

    /// `a(X^k)` for odd `k` (builds the permutation; cache an [`NttAutomorphism`] when applying
    /// the same `k` often).
    pub fn automorphism(&self, k: usize) -> Result<Self, MathError> {
        let table = NttAutomorphism::new(self.ctx.n, k)?;
        self.automorphism_with(&table)
    }
}
