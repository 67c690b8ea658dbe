//! The special FFT: the canonical embedding of CKKS restricted to the orbit of 5.
//!
//! For `M = 2N` and a slot count `n` (a power of two, `n <= N/2`), a real polynomial
//! `m(Y)` of degree below `2n` in `Y = X^(N/2n)` is identified with the vector
//! `z_j = m(zeta^(5^j))`, `j < n`, where `zeta = exp(i*pi/(2n))` is a primitive `4n`-th root of
//! unity (Cheon–Kim–Kim–Song, "Homomorphic Encryption for Arithmetic of Approximate Numbers",
//! ASIACRYPT 2017, §3.1; sparse packing as in Cheon–Han–Kim–Kim–Song, "Bootstrapping for
//! Approximate Homomorphic Encryption", EUROCRYPT 2018, §4). The conjugate roots `zeta^(-5^j)`
//! carry `conj(z_j)`, so `n` complex slots fill `2n` real coefficients.
//!
//! [`SpecialFft::forward`] maps the `n` complex values `u_k = a_k + i*a_{k+n}` (the coefficient
//! halves) to the slots, and [`SpecialFft::inverse`] undoes it. Both run in `O(n log n)` with a
//! radix-2 butterfly network whose twiddles are the powers of `zeta` indexed by the rotation
//! group `5^j mod 4n`.

use alloc::vec::Vec;
use num_complex::Complex64;

/// Precomputed tables of the special FFT for one slot count.
#[derive(Clone, Debug)]
pub struct SpecialFft {
    slots: usize,
    /// `5^j mod 4n` for `j < n`.
    rot_group: Vec<usize>,
    /// `exp(2*pi*i*k / 4n)` for `k <= 4n`.
    roots: Vec<Complex64>,
}

impl SpecialFft {
    /// Tables for `slots` complex slots; `slots` must be a power of two (checked by callers, which
    /// validate slot counts against the ring degree).
    pub fn new(slots: usize) -> Self {
        let m = 4 * slots;
        let mut rot_group = Vec::with_capacity(slots);
        let mut g = 1usize;
        for _ in 0..slots {
            rot_group.push(g);
            g = g * 5 % m;
        }
        let roots = (0..=m)
            .map(|k| {
                let angle = 2.0 * core::f64::consts::PI * (k as f64) / (m as f64);
                Complex64::new(libm::cos(angle), libm::sin(angle))
            })
            .collect();
        Self {
            slots,
            rot_group,
            roots,
        }
    }

    /// The slot count `n`.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The rotation group `5^j mod 4n`: slot `j` is the evaluation at `zeta^(5^j)`.
    pub fn rotation_group(&self) -> &[usize] {
        &self.rot_group
    }

    /// Coefficient halves to slots (the decoding direction), in place.
    ///
    /// # Panics
    /// If `values.len()` differs from the slot count.
    pub fn forward(&self, values: &mut [Complex64]) {
        let n = self.slots;
        assert_eq!(
            values.len(),
            n,
            "special FFT length must equal the slot count"
        );
        bit_reverse_permute(values);
        let m = 4 * n;
        let mut len = 2;
        while len <= n {
            let half = len >> 1;
            let quarter_period = len << 2;
            let stride = m / quarter_period;
            for block in values.chunks_exact_mut(len) {
                let (lo, hi) = block.split_at_mut(half);
                for (j, (u, v)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                    let w = self.roots[(self.rot_group[j] % quarter_period) * stride];
                    let t = *v * w;
                    let a = *u;
                    *u = a + t;
                    *v = a - t;
                }
            }
            len <<= 1;
        }
    }

    /// Slots to coefficient halves (the encoding direction), in place; exact inverse of
    /// [`forward`](Self::forward) up to rounding.
    ///
    /// # Panics
    /// If `values.len()` differs from the slot count.
    pub fn inverse(&self, values: &mut [Complex64]) {
        let n = self.slots;
        assert_eq!(
            values.len(),
            n,
            "special FFT length must equal the slot count"
        );
        let m = 4 * n;
        let mut len = n;
        while len >= 2 {
            let half = len >> 1;
            let quarter_period = len << 2;
            let stride = m / quarter_period;
            for block in values.chunks_exact_mut(len) {
                let (lo, hi) = block.split_at_mut(half);
                for (j, (u, v)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                    let k = quarter_period - self.rot_group[j] % quarter_period;
                    let w = self.roots[k * stride];
                    let (a, b) = (*u, *v);
                    *u = a + b;
                    *v = (a - b) * w;
                }
            }
            len >>= 1;
        }
        bit_reverse_permute(values);
        let inv_n = 1.0 / n as f64;
        for v in values.iter_mut() {
            *v *= inv_n;
        }
    }
}

/// Reorders `values` (length a power of two) by bit-reversed index.
fn bit_reverse_permute<T>(values: &mut [T]) {
    let n = values.len();
    if n <= 2 {
        return;
    }
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if i < j {
            values.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Direct evaluation of the definition: slot j = sum_k c_k zeta^(k * 5^j) over the 2n real
    /// coefficients c, with zeta = exp(i pi / 2n).
    fn slots_by_definition(coeffs: &[f64]) -> Vec<Complex64> {
        let two_n = coeffs.len();
        let n = two_n / 2;
        let m = 2 * two_n;
        (0..n)
            .map(|j| {
                let mut g = 1usize;
                for _ in 0..j {
                    g = g * 5 % m;
                }
                coeffs
                    .iter()
                    .enumerate()
                    .fold(Complex64::new(0.0, 0.0), |acc, (k, &c)| {
                        let angle = core::f64::consts::PI * ((k * g) % m) as f64 / two_n as f64;
                        acc + Complex64::new(angle.cos(), angle.sin()) * c
                    })
            })
            .collect()
    }

    proptest! {
        #[test]
        fn forward_matches_definition(log_n in 0u32..8, seed in any::<u64>()) {
            let n = 1usize << log_n;
            let mut s = seed | 1;
            let coeffs: Vec<f64> = (0..2 * n).map(|_| {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                (s % 2001) as f64 / 1000.0 - 1.0
            }).collect();
            let fft = SpecialFft::new(n);
            let mut v: Vec<Complex64> =
                (0..n).map(|k| Complex64::new(coeffs[k], coeffs[k + n])).collect();
            fft.forward(&mut v);
            let expected = slots_by_definition(&coeffs);
            for (a, b) in v.iter().zip(&expected) {
                prop_assert!((a - b).norm_sqr().sqrt() < 1e-9 * n as f64, "{a} vs {b}");
            }
            fft.inverse(&mut v);
            for k in 0..n {
                prop_assert!((v[k].re - coeffs[k]).abs() < 1e-12 * n as f64);
                prop_assert!((v[k].im - coeffs[k + n]).abs() < 1e-12 * n as f64);
            }
        }
    }
}
