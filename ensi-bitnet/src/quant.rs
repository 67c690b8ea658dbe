//! BitNet b1.58 quantization: per-tensor weight scales, per-token absmax int8 activations, and
//! the rescaling of ternary sums (absmean ternarization itself is in `ternary`).
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

use crate::float::Float;

/// Lower clamp of `mean|W|` and `max|x|` in both quantizers (the reference code's `1e-5`).
pub const QUANT_EPS: f64 = 1e-5;

/// How a checkpoint's per-tensor `weight_scale` turns ternary values into real weights.
///
/// Public sources disagree: transformers' `BitLinear` (the class for packed uint8 weights)
/// computes `y / (input_scale * weight_scale)`, so the real weight is `t / weight_scale`, while
/// its `AutoBitLinear` (offline mode) computes `y * weight_scale`, so the weight is
/// `t * weight_scale`. The loader picks one explicitly (see `LoadOptions` / `ModelConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleConvention {
    /// Real weight = ternary / scale (transformers `BitLinear`; the scale is `1 / mean|W|`, as
    /// produced by absmean quantization). The default.
    Divide,
    /// Real weight = ternary * scale (transformers `AutoBitLinear`, offline mode).
    Multiply,
}

impl ScaleConvention {
    /// The convention's name, `"divide"` or `"multiply"`.
    pub fn name(self) -> &'static str {
        match self {
            ScaleConvention::Divide => "divide",
            ScaleConvention::Multiply => "multiply",
        }
    }
}

/// The per-tensor scale of a ternary matrix, with how it applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightScale {
    /// The stored scale (finite, > 0).
    pub value: f32,
    /// Whether the ternary values are divided or multiplied by it.
    pub convention: ScaleConvention,
}

impl WeightScale {
    /// The factor `m` such that the real weight is `t * m`, in precision `F`.
    pub fn multiplier<F: Float>(&self) -> F {
        match self.convention {
            ScaleConvention::Divide => F::ONE / F::from_f32(self.value),
            ScaleConvention::Multiply => F::from_f32(self.value),
        }
    }

    /// Applies the scale to a ternary dot product `acc` (divides or multiplies, exactly as the
    /// convention says, so no rounded reciprocal is involved).
    pub fn apply<F: Float>(&self, acc: F) -> F {
        match self.convention {
            ScaleConvention::Divide => acc / F::from_f32(self.value),
            ScaleConvention::Multiply => acc * F::from_f32(self.value),
        }
    }
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
