//! BitNet b1.58 quantizers: absmean weight ternarization and per-token absmax int8 activations.
//!
//! Formulas of Ma et al., "The Era of 1-bit LLMs" (2024), eq. 1-3, and of the official
//! "Training Tips, Code and FAQ" reference code, as used for bitnet-b1.58-2B-4T ("BitNet b1.58
//! 2B4T Technical Report", 2025, section 2):
//!
//! * weights, per tensor: `s = 1 / max(mean|W|, 1e-5)`, `T = clip(round(W * s), -1, 1)`, real
//!   weight `T / s`;
//! * activations, per token: `s = 127 / max(max|x|, 1e-5)`, `q = clip(round(x * s), -128, 127)`,
//!   real activation `q / s`.
//!
//! `round` is round-half-to-even, as `torch.round`.

use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::ternary::{ScaleConvention, TernaryMatrix, WeightScale};

/// Lower clamp of `mean|W|` and `max|x|` in both quantizers (the reference code's `1e-5`).
pub const QUANT_EPS: f64 = 1e-5;

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

/// One token's activations quantized to int8 by absmax.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedActivations<F> {
    /// The integers in [-128, 127], held in `F` (exactly representable).
    pub values: Vec<F>,
    /// `127 / max(max|x|, 1e-5)`: the real activation is `value / scale`.
    pub scale: F,
}

/// Per-token absmax int8 quantization of one activation vector (one token).
pub fn absmax_quantize<F: Float>(x: &[F]) -> QuantizedActivations<F> {
    let max = x.iter().fold(F::ZERO, |m, v| m.max(v.abs()));
    let scale = F::from_i32(127) / max.max(F::from_f64(QUANT_EPS));
    let lo = F::from_i32(-128);
    let hi = F::from_i32(127);
    let values = x
        .iter()
        .map(|&v| (v * scale).round_ties_even().max(lo).min(hi))
        .collect();
    QuantizedActivations { values, scale }
}

/// Quantize-dequantize ("fake quantization") of one token: `clip(round(x * s)) / s`, the value a
/// BitLinear effectively sees when activation quantization is on.
pub fn fake_quantize_activations<F: Float>(x: &[F]) -> Vec<F> {
    let q = absmax_quantize(x);
    q.values.into_iter().map(|v| v / q.scale).collect()
}

/// Rescales a ternary dot product to the real output of a BitLinear layer.
///
/// With an activation scale `sa` this is `acc / (sa * sw)` (Divide) or `acc / sa * sw`
/// (Multiply), the operation order of transformers' `BitLinear.post_quant_process`; without,
/// `acc / sw` or `acc * sw`.
pub fn dequantize_ternary_sum<F: Float>(acc: F, act_scale: Option<F>, w: WeightScale) -> F {
    let sw = F::from_f32(w.value);
    match (act_scale, w.convention) {
        (Some(sa), ScaleConvention::Divide) => acc / (sa * sw),
        (Some(sa), ScaleConvention::Multiply) => acc / sa * sw,
        (None, ScaleConvention::Divide) => acc / sw,
        (None, ScaleConvention::Multiply) => acc * sw,
    }
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

    #[test]
    fn absmax_quantizes_to_int8() {
        let q = absmax_quantize(&[0.5f64, -1.0, 0.25, 0.0]);
        assert_eq!(q.scale, 127.0);
        assert_eq!(q.values, [64.0, -127.0, 32.0, 0.0]); // 63.5 -> 64 (even), 31.75 -> 32
        let zero = absmax_quantize(&[0.0f32; 3]);
        assert_eq!(zero.values, [0.0; 3]);
        assert!(zero.scale.is_finite());
        let fq = fake_quantize_activations(&[1.0f64, -1.0]);
        assert_eq!(fq, [1.0, -1.0]);
    }
}
