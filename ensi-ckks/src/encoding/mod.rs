//! Encoding of complex and real vectors into CKKS plaintext polynomials and back.
//!
//! Slot encoding is the inverse canonical embedding restricted to the orbit of 5 (see
//! [`SpecialFft`]), scaled by `Delta` and rounded to integers (Cheon–Kim–Kim–Song 2017, §3.2).
//! With `n < N/2` slots (sparse packing) the polynomial lives in `Z[Y]`, `Y = X^(N/2n)`: only
//! every `(N/2n)`-th coefficient is nonzero and every slot value is repeated `N/2n` times in the
//! full embedding. Coefficient encoding places scaled values directly on the coefficients.

mod fft;

pub use fft::SpecialFft;

use crate::error::CkksError;
use alloc::vec;
use alloc::vec::Vec;
use num_complex::Complex64;

/// Largest magnitude of a scaled coefficient: `2^126`, so that every value fits an `i128`.
const MAX_COEFF: f64 = 8.507_059_173_023_462e37;

/// Maps vectors to integer coefficient vectors of a ring of degree `N` and back.
///
/// Holds one [`SpecialFft`] per power-of-two slot count up to `N/2`.
#[derive(Clone, Debug)]
pub struct Encoder {
    n: usize,
    /// `ffts[k]` serves `2^k` slots.
    ffts: Vec<SpecialFft>,
}

impl Encoder {
    /// An encoder for ring degree `n` (a power of two, at least 2).
    pub fn new(n: usize) -> Result<Self, CkksError> {
        if !n.is_power_of_two() || n < 2 {
            return Err(CkksError::InvalidLogN {
                log_n: n.trailing_zeros(),
            });
        }
        let log_slots_max = (n / 2).trailing_zeros() as usize;
        let ffts = (0..=log_slots_max)
            .map(|k| SpecialFft::new(1 << k))
            .collect();
        Ok(Self { n, ffts })
    }

    /// The ring degree.
    pub fn n(&self) -> usize {
        self.n
    }

    fn fft(&self, slots: usize) -> Result<&SpecialFft, CkksError> {
        if !slots.is_power_of_two() || slots > self.n / 2 {
            return Err(CkksError::InvalidSlotCount {
                slots,
                max: self.n / 2,
            });
        }
        self.ffts
            .get(slots.trailing_zeros() as usize)
            .ok_or(CkksError::InvalidSlotCount {
                slots,
                max: self.n / 2,
            })
    }

    /// Encodes up to `slots` complex values (zero-padded) at `scale` into `N` integer
    /// coefficients, rounding to the nearest integer.
    pub fn encode_complex(
        &self,
        values: &[Complex64],
        slots: usize,
        scale: f64,
    ) -> Result<Vec<i128>, CkksError> {
        encode_complex_with(self.fft(slots)?, self.n, values, scale)
    }

    /// Encodes up to `slots` real values: [`encode_complex`](Self::encode_complex) with zero
    /// imaginary parts.
    pub fn encode_real(
        &self,
        values: &[f64],
        slots: usize,
        scale: f64,
    ) -> Result<Vec<i128>, CkksError> {
        let complex: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        self.encode_complex(&complex, slots, scale)
    }

    /// Decodes `N` coefficients (centred representatives, as `f64`) at `scale` into `slots`
    /// complex values.
    pub fn decode_complex(
        &self,
        coeffs: &[f64],
        slots: usize,
        scale: f64,
    ) -> Result<Vec<Complex64>, CkksError> {
        decode_complex_with(self.fft(slots)?, self.n, coeffs, scale)
    }

    /// Places up to `N` real values, times `scale`, on the coefficients (coefficient encoding).
    pub fn encode_coefficients(&self, values: &[f64], scale: f64) -> Result<Vec<i128>, CkksError> {
        if values.len() > self.n {
            return Err(CkksError::TooManyValues {
                given: values.len(),
                slots: self.n,
            });
        }
        check_scale(scale)?;
        let mut coeffs = vec![0i128; self.n];
        for (c, &v) in coeffs.iter_mut().zip(values) {
            *c = round_scaled(v * scale)?;
        }
        Ok(coeffs)
    }
}

/// [`Encoder::encode_complex`] with one special FFT (of the slot count) for ring degree `n`:
/// what a client that holds a single FFT calls.
pub fn encode_complex_with(
    fft: &SpecialFft,
    n: usize,
    values: &[Complex64],
    scale: f64,
) -> Result<Vec<i128>, CkksError> {
    let slots = fft.slots();
    if values.len() > slots {
        return Err(CkksError::TooManyValues {
            given: values.len(),
            slots,
        });
    }
    if 2 * slots > n {
        return Err(CkksError::InvalidSlotCount { slots, max: n / 2 });
    }
    check_scale(scale)?;
    let mut work = vec![Complex64::new(0.0, 0.0); slots];
    work[..values.len()].copy_from_slice(values);
    fft.inverse(&mut work);
    let gap = n / (2 * slots);
    let mut coeffs = vec![0i128; n];
    for (k, v) in work.iter().enumerate() {
        coeffs[k * gap] = round_scaled(v.re * scale)?;
        coeffs[n / 2 + k * gap] = round_scaled(v.im * scale)?;
    }
    Ok(coeffs)
}

/// [`Encoder::decode_complex`] with one special FFT (of the slot count) for ring degree `n`.
pub fn decode_complex_with(
    fft: &SpecialFft,
    n: usize,
    coeffs: &[f64],
    scale: f64,
) -> Result<Vec<Complex64>, CkksError> {
    let slots = fft.slots();
    if coeffs.len() != n || 2 * slots > n {
        return Err(CkksError::Math(ensi_math::MathError::LengthMismatch {
            expected: n,
            found: coeffs.len(),
        }));
    }
    check_scale(scale)?;
    let gap = n / (2 * slots);
    let inv = 1.0 / scale;
    let mut work: Vec<Complex64> = (0..slots)
        .map(|k| Complex64::new(coeffs[k * gap] * inv, coeffs[n / 2 + k * gap] * inv))
        .collect();
    fft.forward(&mut work);
    Ok(work)
}

/// Rounds every value to a multiple of `2^-bits`, the decoding to share a result with: it hides
/// the low-order noise bits that would otherwise leak information about the secret key
/// (Li–Micciancio, "On the Security of Homomorphic Encryption on Approximate Numbers",
/// EUROCRYPT 2021).
pub fn round_to_precision(values: &mut [Complex64], bits: u32) {
    let step = libm::exp2(bits as f64);
    for v in values.iter_mut() {
        v.re = libm::round(v.re * step) / step;
        v.im = libm::round(v.im * step) / step;
    }
}

fn check_scale(scale: f64) -> Result<(), CkksError> {
    if scale.is_finite() && scale >= 1.0 {
        Ok(())
    } else {
        Err(CkksError::InvalidEncodingScale { scale })
    }
}

fn round_scaled(x: f64) -> Result<i128, CkksError> {
    let r = libm::round(x);
    if r.is_finite() && r.abs() < MAX_COEFF {
        Ok(r as i128)
    } else {
        Err(CkksError::ValueTooLarge { value: x })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn max_error(a: &[Complex64], b: &[Complex64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm_sqr().sqrt())
            .fold(0.0, f64::max)
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(log_slots in 0u32..10, seed in any::<u64>()) {
            let n = 1 << 11;
            let enc = Encoder::new(n).unwrap();
            let slots = 1usize << log_slots;
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s % 20001) as f64 / 10000.0 - 1.0 };
            let values: Vec<Complex64> = (0..slots).map(|_| Complex64::new(next(), next())).collect();
            let scale = (1u64 << 40) as f64;
            let coeffs = enc.encode_complex(&values, slots, scale).unwrap();
            // Sparse packing: only multiples of the gap are used.
            let gap = n / (2 * slots);
            prop_assert!(coeffs.iter().enumerate().all(|(i, &c)| c == 0 || i % gap == 0));
            let as_f64: Vec<f64> = coeffs.iter().map(|&c| c as f64).collect();
            let decoded = enc.decode_complex(&as_f64, slots, scale).unwrap();
            // Rounding to integers costs at most sqrt(N)/Delta per slot; require 30 bits.
            prop_assert!(max_error(&values, &decoded) < libm::exp2(-30.0));
        }
    }

    #[test]
    fn slots_are_evaluations_of_the_polynomial() {
        // Independent reference: evaluate the encoded polynomial at zeta^(5^j), zeta = e^(i pi/N).
        let n = 64;
        let enc = Encoder::new(n).unwrap();
        let values: Vec<f64> = (0..n / 2).map(|i| (i as f64 * 0.37).sin()).collect();
        let scale = (1u64 << 30) as f64;
        let coeffs = enc.encode_real(&values, n / 2, scale).unwrap();
        let mut g = 1usize;
        for (j, &v) in values.iter().enumerate() {
            let mut acc = Complex64::new(0.0, 0.0);
            for (k, &c) in coeffs.iter().enumerate() {
                let angle = core::f64::consts::PI * ((k * g) % (2 * n)) as f64 / n as f64;
                acc += Complex64::new(angle.cos(), angle.sin()) * (c as f64 / scale);
            }
            assert!(
                (acc.re - v).abs() < 1e-7 && acc.im.abs() < 1e-7,
                "slot {j}: {acc} vs {v}"
            );
            g = g * 5 % (2 * n);
        }
    }

    #[test]
    fn coefficient_encoding_and_errors() {
        let enc = Encoder::new(16).unwrap();
        let c = enc.encode_coefficients(&[1.5, -2.25], 4.0).unwrap();
        assert_eq!(&c[..3], &[6, -9, 0]);
        assert!(matches!(
            enc.encode_real(&[1.0; 9], 8, 2.0),
            Err(CkksError::TooManyValues { .. })
        ));
        assert!(matches!(
            enc.encode_real(&[1.0], 16, 2.0),
            Err(CkksError::InvalidSlotCount { .. })
        ));
        assert!(matches!(
            enc.encode_real(&[1.0], 3, 2.0),
            Err(CkksError::InvalidSlotCount { .. })
        ));
        assert!(matches!(
            enc.encode_real(&[1e300], 8, 1e10),
            Err(CkksError::ValueTooLarge { .. })
        ));
        assert!(matches!(
            enc.encode_real(&[1.0], 8, f64::NAN),
            Err(CkksError::InvalidEncodingScale { .. })
        ));
        let mut v = [Complex64::new(0.123_456_7, -1.987_654_3)];
        round_to_precision(&mut v, 10);
        assert_eq!(v[0].re * 1024.0, (0.123_456_7f64 * 1024.0).round());
        assert_eq!(v[0].im * 1024.0, (-1.987_654_3f64 * 1024.0).round());
    }
}
