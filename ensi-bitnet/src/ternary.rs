//! Ternary weight matrices: values in {-1, 0, +1} with one per-tensor scale.
//!
//! BitNet b1.58 (Ma et al., "The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits",
//! 2024, eq. 1-3) replaces every linear layer by a `BitLinear` whose weight is a ternary matrix
//! times one scalar per tensor. This module holds that matrix and its product with an activation
//! vector (optionally int8-quantized per token, as at BitNet inference time).

use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::quant::{QUANT_EPS, absmax_quantize, dequantize_ternary_sum};
pub use crate::quant::{ScaleConvention, WeightScale};

/// Absmean ternarization of a row-major `rows x cols` latent weight tensor.
///
/// `mean|W|` is summed in `f64` and rounded to `f32`; the scale is `1 / max(mean, 1e-5)` in
/// `f32` and the result uses [`ScaleConvention::Divide`] (real weight = `T / scale`), like
/// transformers' `WeightQuant`. A NaN or infinite latent weight is an error naming its index.
pub fn absmean_ternarize(rows: usize, cols: usize, latent: &[f32]) -> Result<TernaryMatrix> {
    if let Some(index) = latent.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidValue {
            name: "latent weight".into(),
            index,
            reason: "not finite",
        });
    }
    let n = latent.len().max(1) as f64;
    let mean = (latent.iter().map(|v| f64::from(v.abs())).sum::<f64>() / n) as f32;
    let scale = 1.0f32 / mean.max(QUANT_EPS as f32);
    let values = latent
        .iter()
        .map(|&w| Float::round_ties_even(w * scale).clamp(-1.0, 1.0) as i8)
        .collect();
    TernaryMatrix::new(
        rows,
        cols,
        values,
        WeightScale {
            value: scale,
            convention: ScaleConvention::Divide,
        },
    )
}

/// A `rows x cols` (`out_features x in_features`) matrix of values in {-1, 0, +1}, row-major,
/// with one per-tensor scale. This is the weight of one BitLinear layer.
#[derive(Debug, Clone, PartialEq)]
pub struct TernaryMatrix {
    rows: usize,
    cols: usize,
    values: Vec<i8>,
    scale: WeightScale,
}

impl TernaryMatrix {
    /// Checks every value is in {-1, 0, +1}, the length is `rows * cols` and the scale is finite
    /// and positive.
    pub fn new(rows: usize, cols: usize, values: Vec<i8>, scale: WeightScale) -> Result<Self> {
        let expected = rows.checked_mul(cols).ok_or(Error::LengthMismatch {
            what: "ternary matrix (rows * cols overflows)".into(),
            expected: usize::MAX,
            actual: values.len(),
        })?;
        if values.len() != expected {
            return Err(Error::LengthMismatch {
                what: "ternary matrix values".into(),
                expected,
                actual: values.len(),
            });
        }
        if let Some((index, &value)) = values
            .iter()
            .enumerate()
            .find(|(_, v)| !(-1..=1).contains(*v))
        {
            return Err(Error::InvalidTrit { index, value });
        }
        if !(scale.value.is_finite() && scale.value > 0.0) {
            return Err(Error::InvalidValue {
                name: "weight_scale".into(),
                index: 0,
                reason: "a weight scale must be finite and positive",
            });
        }
        Ok(Self {
            rows,
            cols,
            values,
            scale,
        })
    }

    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (input features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The ternary values, row-major.
    pub fn values(&self) -> &[i8] {
        &self.values
    }

    /// Row `r`: the ternary weights of output feature `r` (panics if `r >= rows`).
    pub fn row(&self, r: usize) -> &[i8] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }

    /// Element `(r, c)` (panics when out of range).
    pub fn get(&self, r: usize, c: usize) -> i8 {
        self.values[r * self.cols + c]
    }

    /// The per-tensor scale.
    pub fn scale(&self) -> WeightScale {
        self.scale
    }

    /// Number of non-zero weights (the number of ciphertext additions of a column-encoded
    /// encrypted product).
    pub fn nnz(&self) -> usize {
        self.values.iter().filter(|v| **v != 0).count()
    }

    /// For output feature `r`, the input indices with weight +1 and with weight -1: the signed
    /// column lists of ENSI's multiplication-free product (`out_r = sum X_plus - sum X_minus`).
    pub fn signed_columns(&self, r: usize) -> (Vec<usize>, Vec<usize>) {
        let mut plus = Vec::new();
        let mut minus = Vec::new();
        for (c, &t) in self.row(r).iter().enumerate() {
            match t {
                1 => plus.push(c),
                -1 => minus.push(c),
                _ => {}
            }
        }
        (plus, minus)
    }

    /// The real-valued weights `t * multiplier`, row-major, in precision `F`.
    pub fn dequantize<F: Float>(&self) -> Vec<F> {
        let m: F = self.scale.multiplier();
        self.values
            .iter()
            .map(|&t| F::from_i32(i32::from(t)) * m)
            .collect()
    }
}

/// `y = W x` for a ternary `W` (a BitLinear layer without bias).
///
/// With `act_quant` the input is first quantized per token to int8 by absmax (BitNet b1.58,
/// W1.58A8); the ternary sum of the integers is then exact and rescaled by
/// `1 / (input_scale * weight_scale)` (or its `Multiply` counterpart). Without it, the sum runs
/// over the real activations (what an encrypted evaluation does, since rounding is not
/// polynomial). The sum is accumulated in input order with additions and subtractions only.
///
/// Returns an error if `x.len() != w.cols()` or `out.len() != w.rows()`.
pub fn ternary_matvec<F: Float>(
    w: &TernaryMatrix,
    x: &[F],
    act_quant: bool,
    out: &mut [F],
) -> Result<()> {
    matvec_rows(
        "ternary_matvec",
        w.rows,
        w.cols,
        x,
        act_quant,
        out,
        |r, input, act_scale| {
            let mut acc = F::ZERO;
            for (&t, &v) in w.row(r).iter().zip(input) {
                match t {
                    1 => acc += v,
                    -1 => acc -= v,
                    _ => {}
                }
            }
            dequantize_ternary_sum(acc, act_scale, w.scale)
        },
    )
}

/// The shared frame of a matrix-vector product: checks `x.len() == cols` and
/// `out.len() == rows` (errors name `what`), applies the optional per-token absmax activation
/// quantization, and sets `out[r] = row(r, input, input_scale)`.
pub(crate) fn matvec_rows<F: Float>(
    what: &str,
    rows: usize,
    cols: usize,
    x: &[F],
    act_quant: bool,
    out: &mut [F],
    mut row: impl FnMut(usize, &[F], Option<F>) -> F,
) -> Result<()> {
    if x.len() != cols {
        return Err(Error::LengthMismatch {
            what: alloc::format!("{what} input"),
            expected: cols,
            actual: x.len(),
        });
    }
    if out.len() != rows {
        return Err(Error::LengthMismatch {
            what: alloc::format!("{what} output"),
            expected: rows,
            actual: out.len(),
        });
    }
    let quantized;
    let (input, act_scale) = if act_quant {
        quantized = absmax_quantize(x);
        (quantized.values.as_slice(), Some(quantized.scale))
    } else {
        (x, None)
    };
    for (r, y) in out.iter_mut().enumerate() {
        *y = row(r, input, act_scale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absmean_matches_hand_computation() {
        // mean|W| = (0.2 + 1.0 + 0.6 + 0.2) / 4 = 0.5, scale 2: 0.4 -> 0, 2 -> 1, -1.2 -> -1, 0.4 -> 0.
        let t = absmean_ternarize(2, 2, &[0.2, 1.0, -0.6, -0.2]).unwrap();
        assert_eq!(t.values(), &[0, 1, -1, 0]);
        assert_eq!(t.scale().value, 2.0);
        assert_eq!(t.scale().convention, ScaleConvention::Divide);
    }

    #[test]
    fn absmean_ties_round_to_even() {
        // mean = 1, scale 1: 0.5 -> 0, -0.5 -> -0, 1.5 -> 2 -> clipped 1, 1.5.
        let t = absmean_ternarize(1, 4, &[0.5, -0.5, 1.5, 1.5]).unwrap();
        assert_eq!(t.values(), &[0, 0, 1, 1]);
    }

    #[test]
    fn absmean_rejects_nan() {
        assert!(matches!(
            absmean_ternarize(1, 2, &[0.0, f32::NAN]),
            Err(Error::InvalidValue { index: 1, .. })
        ));
    }
}
