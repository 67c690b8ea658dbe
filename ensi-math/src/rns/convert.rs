//! Fast (approximate) base conversion, the kernel of ModUp and ModDown.
//!
//! For a source basis `q_0..q_{k-1}` with product `Q` and `Q_i^* = Q / q_i`, the conversion of
//! `x` (residues `x_i`) to a target prime `t` is (HPS19, equation (2); BEHZ16, section 2.2)
//!
//! ```text
//! v_i = [x_i * (Q_i^*)^{-1}]_{q_i}            in [0, q_i)
//! y   = sum_i v_i * [Q_i^*]_t  mod t
//! ```
//!
//! **Bound.** `sum_i v_i Q_i^*` is congruent to `x` modulo every `q_i`, hence equals
//! `x + u Q` for the representative `x in [0, Q)`, and since `v_i <= q_i - 1` it is at most
//! `k Q - sum_i Q_i^* < k Q`. So `y = x + u Q mod t` with the integer `u` in `[0, k - 1]`.
//!
//! The sum is accumulated lazily in `u128`: every product is below `2^124` (both factors below
//! `2^62`), so up to 15 products can be added to a partial sum already reduced below `2^63`
//! before one Barrett reduction.

use super::{RnsBasis, par, product_mod};
use crate::error::MathError;
use crate::modulus::Modulus;
use alloc::vec::Vec;

/// Products of two words below 2^62 that fit a u128 on top of a value below 2^63.
const LAZY_TERMS: usize = 15;
/// Coefficients processed per block (the u128 accumulators stay in L1).
const BLOCK: usize = 64;

/// For every coefficient `c < out.len()`: `out[c] = finish(out[c], sum_i src[i][c] * w_i mod t)`,
/// where `src` holds `weights.len()` limbs of `n` words below `2^62` (the limb stride is `n`,
/// and `out.len() <= n`).
#[inline]
pub(crate) fn accumulate<F>(
    n: usize,
    src: &[u64],
    weights: &[u64],
    t: &Modulus,
    out: &mut [u64],
    finish: F,
) where
    F: Fn(u64, u64) -> u64,
{
    debug_assert!(src.len() >= weights.len() * n);
    let mut acc = [0u128; BLOCK];
    let mut start = 0;
    while start < out.len() {
        let len = BLOCK.min(out.len() - start);
        let acc = &mut acc[..len];
        acc.fill(0);
        for (g, group) in weights.chunks(LAZY_TERMS).enumerate() {
            if g > 0 {
                for a in acc.iter_mut() {
                    *a = t.reduce_u128_lazy(*a) as u128;
                }
            }
            for (ii, &w) in group.iter().enumerate() {
                let base = (g * LAZY_TERMS + ii) * n + start;
                let s = &src[base..base + len];
                let w = w as u128;
                for (a, &v) in acc.iter_mut().zip(s) {
                    *a += v as u128 * w;
                }
            }
        }
        for (o, &a) in out[start..start + len].iter_mut().zip(acc.iter()) {
            *o = finish(*o, t.reduce_u128(a));
        }
        start += len;
    }
}

/// `dst[c] = [src[c] * w]_q` for a Shoup constant `w`.
#[inline]
pub(crate) fn scale_limb(src: &[u64], dst: &mut [u64], m: &Modulus, w: u64, w_shoup: u64) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = m.mul_shoup(s, w, w_shoup);
    }
}

/// A precomputed fast base conversion from one RNS basis to another.
///
/// [`BasisConverter::convert`] maps `x mod Q_from` to `x + u * Q_from mod Q_to` with
/// `0 <= u <= from.len() - 1` (see the module documentation for the proof), for every
/// coefficient of a polynomial at once.
#[derive(Clone, Debug)]
pub struct BasisConverter {
    from: Vec<Modulus>,
    to: Vec<Modulus>,
    q_hat_inv: Vec<u64>,
    q_hat_inv_shoup: Vec<u64>,
    /// `[Q_from / q_i]_{t_j}` at `j * from.len() + i`.
    weights: Vec<u64>,
}

impl BasisConverter {
    /// Precomputes the conversion from `from` to `to`.
    pub fn new(from: &RnsBasis, to: &RnsBasis) -> Self {
        let k = from.len();
        let primes = from.primes();
        let mut weights = Vec::with_capacity(k * to.len());
        for t in to.moduli() {
            for i in 0..k {
                let rest = primes
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &q)| q);
                weights.push(product_mod(rest, t));
            }
        }
        Self {
            from: from.moduli().to_vec(),
            to: to.moduli().to_vec(),
            q_hat_inv: from.q_hat_inv.clone(),
            q_hat_inv_shoup: from.q_hat_inv_shoup.clone(),
            weights,
        }
    }

    /// The number of source limbs `k` (the bound on `u` is `k - 1`).
    pub fn source_len(&self) -> usize {
        self.from.len()
    }

    /// The number of target limbs.
    pub fn target_len(&self) -> usize {
        self.to.len()
    }

    /// Converts `input` (`from.len()` limbs of `n` residues) to `output` (`to.len()` limbs):
    /// every coefficient becomes `x + u * Q_from` modulo the target primes, `0 <= u < k`.
    ///
    /// Allocates one scratch buffer of `from.len() * n` words per call.
    pub fn convert(&self, n: usize, input: &[u64], output: &mut [u64]) -> Result<(), MathError> {
        check_len(input.len(), self.from.len() * n)?;
        check_len(output.len(), self.to.len() * n)?;
        let mut v = alloc::vec![0u64; input.len()];
        par::for_each_limb_zip(&mut v, input, n, |i, v, x| {
            scale_limb(
                x,
                v,
                &self.from[i],
                self.q_hat_inv[i],
                self.q_hat_inv_shoup[i],
            );
        });
        let k = self.from.len();
        par::for_each_limb(output, n, |j, out| {
            let w = &self.weights[j * k..(j + 1) * k];
            accumulate(n, &v, w, &self.to[j], out, |_, s| s);
        });
        Ok(())
    }
}

pub(crate) fn check_len(found: usize, expected: usize) -> Result<(), MathError> {
    if found == expected {
        Ok(())
    } else {
        Err(MathError::LengthMismatch { expected, found })
    }
}
