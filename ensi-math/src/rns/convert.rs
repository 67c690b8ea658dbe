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

/// How [`accumulate`] combines the sum `y = sum_i src[i][c] * w_i mod t` with what `out[c]`
/// held, `x`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Combine {
    /// `out[c] = y`.
    Store,
    /// `out[c] = ((x + h) - y) * w mod t`, with `w_shoup = floor(w 2^64 / t)`: ModDown's last
    /// step. `x`, `h` and `w` below `t`.
    SubScale { h: u64, w: u64, w_shoup: u64 },
}

impl Combine {
    #[inline(always)]
    fn apply(self, t: &Modulus, x: u64, y: u64) -> u64 {
        match self {
            Combine::Store => y,
            Combine::SubScale { h, w, w_shoup } => t.mul_shoup(t.sub(t.add(x, h), y), w, w_shoup),
        }
    }
}

/// For every coefficient `c < out.len()`: `out[c] = combine(out[c], sum_i src[i][c] * w_i mod
/// t)`, where `src` holds `weights.len()` limbs of `n` words below `2^62` (the limb stride is
/// `n`, and `out.len() <= n`) and the weights are below `t`.
///
/// With AVX-512F/DQ and `t < 2^62`, eight coefficients at a time, one 64-bit Shoup product per
/// term ([`accumulate_avx512`]); otherwise in `u128` with one Barrett reduction per
/// [`LAZY_TERMS`] terms. Both give the canonical residue.
#[inline]
pub(crate) fn accumulate(
    n: usize,
    src: &[u64],
    weights: &[u64],
    t: &Modulus,
    out: &mut [u64],
    combine: Combine,
) {
    assert!(src.len() >= weights.len() * n && out.len() <= n);
    #[cfg(target_arch = "x86_64")]
    if accumulate_avx512(n, src, weights, t, out, combine) {
        return;
    }
    accumulate_u128(n, src, weights, t, out, combine);
}

/// The portable path of [`accumulate`].
fn accumulate_u128(
    n: usize,
    src: &[u64],
    weights: &[u64],
    t: &Modulus,
    out: &mut [u64],
    combine: Combine,
) {
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
            *o = combine.apply(t, *o, t.reduce_u128(a));
        }
        start += len;
    }
}

/// Most source limbs the vector path of [`accumulate`] takes (its Shoup constants live on the
/// stack); more fall back to the `u128` path.
#[cfg(target_arch = "x86_64")]
const VECTOR_TERMS: usize = 32;

/// The AVX-512 path of [`accumulate`] ([`crate::ntt::avx512::wide::dot_constants`]). Returns
/// `false`, having done nothing, where it does not apply (no AVX-512F/DQ, `t >= 2^62`, more
/// than [`VECTOR_TERMS`] terms).
#[cfg(target_arch = "x86_64")]
#[inline]
fn accumulate_avx512(
    n: usize,
    src: &[u64],
    weights: &[u64],
    t: &Modulus,
    out: &mut [u64],
    combine: Combine,
) -> bool {
    use crate::ntt::avx512::wide::dot_constants;
    if weights.len() > VECTOR_TERMS
        || t.bits() > 62
        || out.len() > n
        || src.len() < weights.len() * n
        || !crate::ntt::avx512_available()
    {
        return false;
    }
    let mut tw = [(0u64, 0u64); VECTOR_TERMS];
    for (slot, &w) in tw.iter_mut().zip(weights) {
        *slot = (w, t.shoup(w));
    }
    // SAFETY: AVX-512F/DQ checked above; every read `src[i * n + c]` with `i < weights.len()`
    // and `c < out.len() <= n` lies below `weights.len() * n <= src.len()`.
    unsafe {
        dot_constants(src.as_ptr(), n, &tw[..weights.len()], t.q(), out, combine);
    }
    true
}

/// `dst[c] = [(src[c] + h) * w]_q` for a Shoup constant `w` and `h < q` (where `h > 0`,
/// `src[c] < q`), plus `dst[c]` modulo `q` when `accumulate`. Eight at a time with
/// AVX-512F/DQ and `q < 2^62`.
///
/// # Safety
/// `src` valid for `len` reads, `dst` for `len` reads and writes; they may be equal (each word
/// is read before it is written), but must not overlap otherwise.
#[inline]
pub(crate) unsafe fn scale_raw(
    src: *const u64,
    dst: *mut u64,
    len: usize,
    m: &Modulus,
    (h, w, w_shoup): (u64, u64, u64),
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if m.bits() <= 62 && crate::ntt::avx512_available() {
        // SAFETY: AVX-512F/DQ checked; the pointers' ranges are the caller's.
        unsafe {
            crate::ntt::avx512::wide::mul_constant(src, h, w, w_shoup, m.q(), dst, len, accumulate);
        }
        return;
    }
    for c in 0..len {
        // SAFETY: c < len (the caller's ranges); src[c] is read before dst[c] is written.
        unsafe {
            let s = *src.add(c);
            let v = m.mul_shoup(if h == 0 { s } else { m.add(s, h) }, w, w_shoup);
            *dst.add(c) = if accumulate { m.add(*dst.add(c), v) } else { v };
        }
    }
}

/// `dst[c] = [(src[c] + h) * w]_q`, plus `dst[c]` when `accumulate` ([`scale_raw`]).
///
/// # Panics
/// If the slices differ in length.
#[inline]
pub(crate) fn scale_limb_with(
    src: &[u64],
    dst: &mut [u64],
    m: &Modulus,
    hw: (u64, u64, u64),
    accumulate: bool,
) {
    assert_eq!(src.len(), dst.len());
    // SAFETY: two distinct slices of equal length.
    unsafe { scale_raw(src.as_ptr(), dst.as_mut_ptr(), src.len(), m, hw, accumulate) };
}

/// `data[c] = [(data[c] + h) * w]_q` in place ([`scale_raw`]).
#[inline]
pub(crate) fn scale_limb_assign(data: &mut [u64], m: &Modulus, hw: (u64, u64, u64)) {
    let p = data.as_mut_ptr();
    // SAFETY: one slice, read and written in place, which `scale_raw` allows.
    unsafe { scale_raw(p, p, data.len(), m, hw, false) };
}

/// `dst[c] = [src[c] * w]_q` for a Shoup constant `w`.
#[inline]
pub(crate) fn scale_limb(src: &[u64], dst: &mut [u64], m: &Modulus, w: u64, w_shoup: u64) {
    scale_limb_with(src, dst, m, (0, w, w_shoup), false);
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
            accumulate(n, &v, w, &self.to[j], out, Combine::Store);
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

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::prime::generate_ntt_primes;

    /// The `u128` path alone: `sum_i src[i][c] * w_i mod t`, reduced with `%`.
    fn reference(n: usize, src: &[u64], weights: &[u64], t: u64, len: usize) -> Vec<u64> {
        (0..len)
            .map(|c| {
                let s: u128 = weights
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| u128::from(src[i * n + c]) * u128::from(w) % u128::from(t))
                    .sum();
                (s % u128::from(t)) as u64
            })
            .collect()
    }

    /// The AVX-512 path against the reference for target primes of 30 to 62 bits, source words
    /// up to `2^62 - 1` (the largest the callers pass), weights at the edges (`0`, `1`,
    /// `t - 1`), term counts 1 to 32 and lengths that leave tails.
    #[test]
    fn vector_conversion_matches_u128() {
        if !crate::ntt::avx512_available() {
            return;
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for bits in [30u32, 45, 50, 51, 55, 60, 61, 62] {
            let t = Modulus::new(generate_ntt_primes(bits, 1, 16, &[]).unwrap()[0]).unwrap();
            for terms in [1usize, 2, 5, 6, 15, 32] {
                let n = 67;
                let src: Vec<u64> = (0..terms * n)
                    .map(|k| match k % 5 {
                        0 => (1u64 << 62) - 1,
                        1 => 0,
                        _ => next() >> 2,
                    })
                    .collect();
                let weights: Vec<u64> = (0..terms)
                    .map(|i| match i % 4 {
                        0 => t.q() - 1,
                        1 => 1,
                        2 => 0,
                        _ => next() % t.q(),
                    })
                    .collect();
                for len in [1usize, 7, 8, 9, 64, 67] {
                    let mut out = alloc::vec![u64::MAX; len];
                    assert!(accumulate_avx512(
                        n,
                        &src,
                        &weights,
                        &t,
                        &mut out,
                        Combine::Store
                    ));
                    let y = reference(n, &src, &weights, t.q(), len);
                    assert_eq!(out, y, "{bits} bits, {terms} terms, {len} coefficients");
                    // ModDown's form, against the portable path and u128 arithmetic.
                    let x: Vec<u64> = (0..len).map(|_| next() % t.q()).collect();
                    let (h, w) = (next() % t.q(), t.q() - 1 - next() % 3);
                    let combine = Combine::SubScale {
                        h,
                        w,
                        w_shoup: t.shoup(w),
                    };
                    let mut vec_out = x.clone();
                    assert!(accumulate_avx512(
                        n,
                        &src,
                        &weights,
                        &t,
                        &mut vec_out,
                        combine
                    ));
                    let mut portable = x.clone();
                    accumulate_u128(n, &src, &weights, &t, &mut portable, combine);
                    let q = u128::from(t.q());
                    let want: Vec<u64> = x
                        .iter()
                        .zip(&y)
                        .map(|(&x, &y)| {
                            let d = (u128::from(x) + u128::from(h) + q - u128::from(y)) % q;
                            (d * u128::from(w) % q) as u64
                        })
                        .collect();
                    assert_eq!(vec_out, want, "{bits} bits, {terms} terms (ModDown form)");
                    assert_eq!(portable, want, "{bits} bits, {terms} terms (portable)");
                }
            }
        }
    }

    /// The constant product ([`scale_raw`]) with an offset `h`, in place and accumulating,
    /// against u128 arithmetic, for lengths that leave tails.
    #[test]
    fn constant_products_match_u128() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for bits in [40u32, 50, 55, 60, 61, 62] {
            let m = Modulus::new(generate_ntt_primes(bits, 1, 16, &[]).unwrap()[0]).unwrap();
            let q = m.q();
            for len in [0usize, 3, 8, 13, 64] {
                let src: Vec<u64> = (0..len)
                    .map(|k| if k == 0 { q - 1 } else { next() % q })
                    .collect();
                let acc: Vec<u64> = (0..len).map(|_| next() % q).collect();
                for (h, w) in [(0, q - 1), (q - 1, q - 1), (next() % q, next() % q), (1, 0)] {
                    let hw = (h, w, m.shoup(w));
                    let want = |c: usize, add: u64| {
                        let a = (u128::from(src[c]) + u128::from(h)) % u128::from(q);
                        ((a * u128::from(w) + u128::from(add)) % u128::from(q)) as u64
                    };
                    let mut in_place = src.clone();
                    scale_limb_assign(&mut in_place, &m, hw);
                    let mut summed = acc.clone();
                    scale_limb_with(&src, &mut summed, &m, hw, true);
                    for c in 0..len {
                        assert_eq!(in_place[c], want(c, 0), "{bits} bits, h = {h}, w = {w}");
                        assert_eq!(summed[c], want(c, acc[c]), "{bits} bits (accumulate)");
                    }
                }
            }
        }
    }
}
