//! Precision statistics: how many bits of a result are correct, slot by slot.

use alloc::vec::Vec;
use num_complex::Complex64;

/// Bits of precision of a computed vector against a reference: for each slot,
/// `-log2 |computed - expected|` (capped at 64 bits for exact slots), summarised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrecisionStats {
    /// The worst slot's bits.
    pub min_bits: f64,
    /// The mean over slots of the bits.
    pub avg_bits: f64,
    /// The median over slots of the bits.
    pub median_bits: f64,
    /// The largest absolute error.
    pub max_error: f64,
}

impl PrecisionStats {
    /// Compares complex vectors slot by slot (over the shorter length).
    pub fn complex(expected: &[Complex64], computed: &[Complex64]) -> Self {
        let errors: Vec<f64> = expected
            .iter()
            .zip(computed)
            .map(|(a, b)| libm::sqrt((a - b).norm_sqr()))
            .collect();
        Self::from_errors(&errors)
    }

    /// Compares real vectors slot by slot (over the shorter length).
    pub fn real(expected: &[f64], computed: &[f64]) -> Self {
        let errors: Vec<f64> = expected
            .iter()
            .zip(computed)
            .map(|(a, b)| (a - b).abs())
            .collect();
        Self::from_errors(&errors)
    }

    fn from_errors(errors: &[f64]) -> Self {
        if errors.is_empty() {
            return Self {
                min_bits: 64.0,
                avg_bits: 64.0,
                median_bits: 64.0,
                max_error: 0.0,
            };
        }
        let bits = |e: f64| {
            if e.is_nan() {
                0.0
            } else {
                (-libm::log2(e)).clamp(0.0, 64.0)
            }
        };
        let mut all: Vec<f64> = errors.iter().map(|&e| bits(e)).collect();
        all.sort_by(f64::total_cmp);
        let max_error = errors.iter().copied().fold(0.0, f64::max);
        Self {
            min_bits: all[0],
            avg_bits: all.iter().sum::<f64>() / all.len() as f64,
            median_bits: all[all.len() / 2],
            max_error,
        }
    }
}
