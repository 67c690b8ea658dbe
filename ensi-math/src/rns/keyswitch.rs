//! ModUp, ModDown and the digit decomposition of hybrid key switching.
//!
//! The ciphertext modulus is `Q = q_0 ... q_{L-1}` and the special modulus `P = p_0 ... p_{K-1}`.
//! At level `l` (the first `l` primes of `Q` active, `Q_l`), polynomials over the extended basis
//! are stored as `l` limbs of `Q_l` followed by the `K` limbs of `P`.
//!
//! **Digits.** With `alpha = ceil(L / dnum)`, digit `j` holds the primes
//! `q_{j alpha} .. q_{min((j+1) alpha, L) - 1}`; at level `l` it is cut to the primes below `l`
//! (the last active digit may be partial, later ones are empty). Write `D_j` for the product of
//! the active primes of digit `j` and `g_j = (Q / D_j^full) * [(Q / D_j^full)^{-1}]_{D_j^full}`
//! for the full-level gadget (`g_j = 1 mod q_i` for `q_i` in digit `j`, `0` for the others).
//!
//! **ModUp** of digit `j` ([`KeySwitchBasis::mod_up_digit`]) maps `x mod Q_l` to
//! `d_j = [x]_{D_j} + u_j D_j` over `Q_l ∪ P` with `0 <= u_j < |digit j|` (fast base conversion,
//! exact on the digit's own limbs). Hence, modulo every `q_i` of `Q_l` and every `p_j`,
//!
//! ```text
//! sum_j d_j * P * g_j = P * x   (mod Q_l P)
//! ```
//!
//! because `u_j D_j g_j = 0 mod Q_l` and `P = 0 mod P`: the `u_j` error vanishes under the key
//! switching gadget.
//!
//! **ModDown** ([`KeySwitchBasis::mod_down`]) maps `x mod Q_l P` to, modulo `Q_l`,
//!
//! ```text
//! Rounding::Floor:  floor(x / P) - u
//! Rounding::Round:  round(x / P) - u       0 <= u <= K - 1
//! ```
//!
//! for *any* integer representative `x` of the input (changing `x` by a multiple of `Q_l P`
//! changes the quotient by a multiple of `Q_l`). Proof: it computes
//! `(x + h - y) * P^{-1} mod q_i` with `h = 0` or `(P - 1) / 2` (P is odd, so there are no ties)
//! and `y` the fast conversion of `[x + h]_P`, `y = [x + h]_P + u P` with `0 <= u < K`; and
//! `x + h - [x + h]_P = P floor((x + h) / P)`.

use super::convert::{Combine, accumulate, check_len, scale_limb, scale_limb_assign};
use super::{RnsBasis, par, product_mod};
use crate::error::MathError;
use alloc::vec::Vec;
use core::ops::Range;
use num_bigint::BigUint;

/// How [`KeySwitchBasis::mod_down`] divides by `P`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// `floor(x / P) - u`, `0 <= u < K`.
    Floor,
    /// `round(x / P) - u`, `0 <= u < K`.
    Round,
}

/// Constants of the fast conversion of one (possibly partial) digit.
#[derive(Clone, Debug)]
struct DigitTable {
    q_hat_inv: Vec<u64>,
    q_hat_inv_shoup: Vec<u64>,
    /// `[D / q_i]_{t_g}` at `g * len + i` for every global target index `g` (`Q` then `P`).
    weights: Vec<u64>,
}

/// Everything hybrid key switching needs for the primes `Q`, `P` and a digit count.
#[derive(Clone, Debug)]
pub struct KeySwitchBasis {
    q: RnsBasis,
    p: RnsBasis,
    alpha: usize,
    digits: usize,
    /// Digit `j` cut to `m` limbs (`1 <= m <= alpha`) at index `j * alpha + m - 1`.
    tables: Vec<Option<DigitTable>>,
    /// `[P / p_j]_{q_i}` at `i * K + j`.
    p_weights: Vec<u64>,
    p_inv_mod_q: Vec<u64>,
    p_inv_mod_q_shoup: Vec<u64>,
    half_p_mod_q: Vec<u64>,
    half_p_mod_p: Vec<u64>,
}

impl KeySwitchBasis {
    /// Precomputes ModUp / ModDown for the ciphertext primes `q_primes`, the special primes
    /// `p_primes` and `dnum` digits of `alpha = ceil(L / dnum)` limbs. The effective number of
    /// digits, [`Self::dnum`], is `ceil(L / alpha)` (at most `dnum`).
    pub fn new(q_primes: &[u64], p_primes: &[u64], dnum: usize) -> Result<Self, MathError> {
        let all: Vec<u64> = q_primes.iter().chain(p_primes).copied().collect();
        // Checks that Q ∪ P is a valid basis (distinct, coprime).
        let full = RnsBasis::new(&all)?;
        let q = RnsBasis::new(q_primes)?;
        let p = RnsBasis::new(p_primes)?;
        let l = q.len();
        if dnum == 0 || dnum > l {
            return Err(MathError::LengthMismatch {
                expected: l,
                found: dnum,
            });
        }
        let alpha = l.div_ceil(dnum);
        let digits = l.div_ceil(alpha);
        let mut tables = Vec::with_capacity(digits * alpha);
        for j in 0..digits {
            let start = j * alpha;
            for m in 1..=alpha {
                if start + m > l {
                    tables.push(None);
                    continue;
                }
                let sub = RnsBasis::new(&q_primes[start..start + m])?;
                let mut weights = Vec::with_capacity(all.len() * m);
                for t in full.moduli() {
                    for i in 0..m {
                        let rest = (0..m).filter(|&r| r != i).map(|r| q_primes[start + r]);
                        weights.push(product_mod(rest, t));
                    }
                }
                tables.push(Some(DigitTable {
                    q_hat_inv: sub.q_hat_inv.clone(),
                    q_hat_inv_shoup: sub.q_hat_inv_shoup.clone(),
                    weights,
                }));
            }
        }
        let k = p.len();
        let mut p_weights = Vec::with_capacity(l * k);
        let mut p_inv_mod_q = Vec::with_capacity(l);
        let mut p_inv_mod_q_shoup = Vec::with_capacity(l);
        let half_p: BigUint = p.product() >> 1u32;
        let mut half_p_mod_q = alloc::vec![0u64; l];
        q.reduce_biguint(&half_p, &mut half_p_mod_q);
        let mut half_p_mod_p = alloc::vec![0u64; k];
        p.reduce_biguint(&half_p, &mut half_p_mod_p);
        for t in q.moduli() {
            for j in 0..k {
                let rest = (0..k).filter(|&r| r != j).map(|r| p_primes[r]);
                p_weights.push(product_mod(rest, t));
            }
            let inv = t
                .inv_vartime(product_mod(p_primes.iter().copied(), t))
                .ok_or(MathError::InvalidBasis)?;
            p_inv_mod_q.push(inv);
            p_inv_mod_q_shoup.push(t.shoup(inv));
        }
        Ok(Self {
            q,
            p,
            alpha,
            digits,
            tables,
            p_weights,
            p_inv_mod_q,
            p_inv_mod_q_shoup,
            half_p_mod_q,
            half_p_mod_p,
        })
    }

    /// The ciphertext basis `Q` (all levels).
    pub fn q_basis(&self) -> &RnsBasis {
        &self.q
    }

    /// The special basis `P`.
    pub fn p_basis(&self) -> &RnsBasis {
        &self.p
    }

    /// `([P^{-1}]_{q_i}, shoup)`: the constant ModDown multiplies by on limb `i` of `Q`.
    pub fn p_inv_mod_q(&self, i: usize) -> (u64, u64) {
        (self.p_inv_mod_q[i], self.p_inv_mod_q_shoup[i])
    }

    /// Limbs per digit, `alpha = ceil(L / dnum)`.
    pub fn alpha(&self) -> usize {
        self.alpha
    }

    /// The number of digits at the top level, `ceil(L / alpha)`.
    pub fn dnum(&self) -> usize {
        self.digits
    }

    /// The number of non-empty digits at level `num_q` (`num_q` active `Q` limbs).
    pub fn digits_at(&self, num_q: usize) -> usize {
        num_q.div_ceil(self.alpha)
    }

    /// The `Q` limbs of digit `digit` at level `num_q`.
    pub fn digit_range(&self, digit: usize, num_q: usize) -> Range<usize> {
        let start = (digit * self.alpha).min(num_q);
        start..((digit + 1) * self.alpha).min(num_q)
    }

    fn check_level(&self, num_q: usize) -> Result<(), MathError> {
        if num_q == 0 || num_q > self.q.len() {
            return Err(MathError::LengthMismatch {
                expected: self.q.len(),
                found: num_q,
            });
        }
        Ok(())
    }

    /// ModUp of one digit: `input` holds `num_q` limbs of `n` coefficients (coefficient
    /// representation, modulo `Q_l`); `output` receives `num_q + K` limbs over `Q_l ∪ P`, equal
    /// to `[x]_{D_j} + u D_j` with `0 <= u < |digit j|` (module documentation). No allocation
    /// beyond one small job list.
    pub fn mod_up_digit(
        &self,
        n: usize,
        num_q: usize,
        digit: usize,
        input: &[u64],
        output: &mut [u64],
    ) -> Result<(), MathError> {
        self.check_level(num_q)?;
        check_len(input.len(), num_q * n)?;
        let k = self.p.len();
        check_len(output.len(), (num_q + k) * n)?;
        let range = self.digit_range(digit, num_q);
        if range.is_empty() {
            return Err(MathError::LengthMismatch {
                expected: self.digits_at(num_q),
                found: digit,
            });
        }
        let m = range.len();
        let table = self.tables[digit * self.alpha + m - 1]
            .as_ref()
            .ok_or(MathError::InvalidBasis)?;
        let (left, rest) = output.split_at_mut(range.start * n);
        let (mid, right) = rest.split_at_mut(m * n);
        // v_i = [x_i * (D / q_i)^{-1}]_{q_i}, written into the digit's own output limbs.
        let qm = self.q.moduli();
        par::for_each_limb_zip(mid, &input[range.start * n..range.end * n], n, |i, v, x| {
            let idx = range.start + i;
            scale_limb(x, v, &qm[idx], table.q_hat_inv[i], table.q_hat_inv_shoup[i]);
        });
        let mid: &[u64] = mid;
        let big_l = self.q.len();
        let mut jobs: Vec<(usize, &mut [u64])> = Vec::with_capacity(num_q + k - m);
        jobs.extend(left.chunks_mut(n).enumerate());
        for (r, limb) in right.chunks_mut(n).enumerate() {
            let idx = range.end + r;
            // Q limbs above the digit, then the P limbs (global index L + j).
            let g = if idx < num_q {
                idx
            } else {
                big_l + idx - num_q
            };
            jobs.push((g, limb));
        }
        let pm = self.p.moduli();
        par::for_each_job(jobs, |g, out| {
            let t = if g < big_l { &qm[g] } else { &pm[g - big_l] };
            accumulate(
                n,
                mid,
                &table.weights[g * m..(g + 1) * m],
                t,
                out,
                Combine::Store,
            );
        });
        // Restore the exact residues on the digit's own limbs.
        output[range.start * n..range.end * n]
            .copy_from_slice(&input[range.start * n..range.end * n]);
        Ok(())
    }

    /// The full decomposition: `output` receives `digits_at(num_q)` consecutive blocks of
    /// `(num_q + K) * n` words, block `j` being [`Self::mod_up_digit`] of digit `j`.
    pub fn decompose(
        &self,
        n: usize,
        num_q: usize,
        input: &[u64],
        output: &mut [u64],
    ) -> Result<(), MathError> {
        self.check_level(num_q)?;
        let block = (num_q + self.p.len()) * n;
        check_len(output.len(), self.digits_at(num_q) * block)?;
        for (j, out) in output.chunks_mut(block).enumerate() {
            self.mod_up_digit(n, num_q, j, input, out)?;
        }
        Ok(())
    }

    /// ModDown: `data` holds `num_q + K` limbs over `Q_l ∪ P` (coefficient representation). On
    /// return its first `num_q` limbs hold `floor(x / P) - u` or `round(x / P) - u` modulo `Q_l`,
    /// `0 <= u < K` (module documentation); the `P` limbs are left as scratch. No allocation.
    pub fn mod_down(
        &self,
        n: usize,
        num_q: usize,
        data: &mut [u64],
        rounding: Rounding,
    ) -> Result<(), MathError> {
        self.check_level(num_q)?;
        let k = self.p.len();
        check_len(data.len(), (num_q + k) * n)?;
        let round = rounding == Rounding::Round;
        let (qpart, ppart) = data.split_at_mut(num_q * n);
        let pm = self.p.moduli();
        par::for_each_limb(ppart, n, |j, limb| {
            let m = &pm[j];
            let (w, ws) = self.p.q_hat_inv(j);
            let h = if round { self.half_p_mod_p[j] } else { 0 };
            scale_limb_assign(limb, m, (h, w, ws));
        });
        let ppart: &[u64] = ppart;
        let qm = self.q.moduli();
        par::for_each_limb(qpart, n, |i, limb| {
            let t = &qm[i];
            let h = if round { self.half_p_mod_q[i] } else { 0 };
            let (inv, inv_shoup) = (self.p_inv_mod_q[i], self.p_inv_mod_q_shoup[i]);
            let w = &self.p_weights[i * k..(i + 1) * k];
            let combine = Combine::SubScale {
                h,
                w: inv,
                w_shoup: inv_shoup,
            };
            accumulate(n, ppart, w, t, limb, combine);
        });
        Ok(())
    }
}
