//! Building blocks of the reference forward pass, public so the encrypted pipeline can check
//! each of its stages against them: RMSNorm, RoPE, activations, softmax and sigmoid attention,
//! greedy decoding.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::matrix::Matrix;

/// RMSNorm (Zhang & Sennrich, 2019) as transformers' `LlamaRMSNorm`:
/// `out_i = w_i * (x_i / sqrt(mean(x^2) + eps))`.
///
/// Returns the factor `1 / sqrt(mean(x^2) + eps)` (the quantity ENSI refreshes by
/// bootstrapping inside the norm). Errors if the lengths differ.
pub fn rms_norm<F: Float>(x: &[F], weight: &[f32], eps: f64, out: &mut [F]) -> Result<F> {
    if weight.len() != x.len() || out.len() != x.len() {
        return Err(Error::LengthMismatch {
            what: "rms_norm".into(),
            expected: x.len(),
            actual: weight.len().min(out.len()),
        });
    }
    let mut sum = F::ZERO;
    for &v in x {
        sum += v * v;
    }
    let mean = sum / F::from_f64(x.len().max(1) as f64);
    let inv = F::ONE / (mean + F::from_f64(eps)).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = F::from_f32(w) * (v * inv);
    }
    Ok(inv)
}

/// RoPE angles of one position: `cos` and `sin` of `pos * theta^(-2i / head_dim)` for
/// `i = 0..head_dim / 2` (Su et al., RoFormer, 2021), computed in `F` like transformers'
/// `inv_freq` (exponent `2i / d`, then `1 / theta^exponent`, then times the position).
pub fn rope_angles<F: Float>(pos: usize, head_dim: usize, theta: f64) -> (Vec<F>, Vec<F>) {
    let half = head_dim / 2;
    let base = F::from_f64(theta);
    let p = F::from_f64(pos as f64);
    let mut cos = Vec::with_capacity(half);
    let mut sin = Vec::with_capacity(half);
    for i in 0..half {
        let exponent = F::from_f64((2 * i) as f64) / F::from_f64(head_dim as f64);
        let inv_freq = F::ONE / base.powf(exponent);
        let angle = p * inv_freq;
        cos.push(angle.cos());
        sin.push(angle.sin());
    }
    (cos, sin)
}

/// Applies RoPE in place to one head vector in the **rotate-half** (HF Llama / GPT-NeoX)
/// convention, not the interleaved one: dimension `i` is paired with `i + d/2`:
///
/// ```text
/// out[i]       = x[i] * cos_i - x[i + d/2] * sin_i
/// out[i + d/2] = x[i + d/2] * cos_i + x[i] * sin_i        (i < d/2)
/// ```
///
/// In the column-wise encrypted layout this is a re-indexing of column pairs plus plaintext
/// products, no slot rotation. Errors if `x.len() != 2 * cos.len()` or `sin.len() != cos.len()`.
pub fn apply_rope<F: Float>(x: &mut [F], cos: &[F], sin: &[F]) -> Result<()> {
    let half = cos.len();
    if x.len() != 2 * half || sin.len() != half {
        return Err(Error::LengthMismatch {
            what: "apply_rope".into(),
            expected: 2 * half,
            actual: x.len(),
        });
    }
    let (lo, hi) = x.split_at_mut(half);
    for i in 0..half {
        let (a, b) = (lo[i], hi[i]);
        lo[i] = a * cos[i] - b * sin[i];
        hi[i] = b * cos[i] + a * sin[i];
    }
    Ok(())
}

/// The logistic function `1 / (1 + e^-x)`, evaluated without overflow for large `|x|`.
pub fn sigmoid<F: Float>(x: F) -> F {
    if x >= F::ZERO {
        F::ONE / (F::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::ONE + e)
    }
}

/// SiLU (swish): `x * sigmoid(x)`, the FFN gate of 1bitLLM models.
pub fn silu<F: Float>(x: F) -> F {
    x * sigmoid(x)
}

/// Squared ReLU: `max(x, 0)^2`, the FFN gate of bitnet-b1.58-2B-4T.
pub fn relu_squared<F: Float>(x: F) -> F {
    let r = x.max(F::ZERO);
    r * r
}

/// The weights of one attention row computed by a caller's function of the row's visible
/// scores (`scores[j]` for `j <= i`) and the sequence length: the f64 model of an approximate
/// circuit (a polynomial sigmoid, a homomorphic softmax), to see its effect on the logits.
pub type RowWeights = dyn Fn(&[f64], usize, &mut [f64]) + Sync;

/// How attention weights are computed from the scores.
#[derive(Clone, Copy, Default)]
pub enum AttentionKind {
    /// Causal softmax, the model as trained.
    #[default]
    Softmax,
    /// Sigmoid attention with bias `b = -ln n` (n = sequence length), as ENSI (He et al.,
    /// arXiv 2509.09424) following Ramapuram et al. (arXiv 2409.04431):
    /// `A_ij = sigmoid(s_ij + b)` for `j <= i`, 0 for `j > i` (mask applied after the sigmoid).
    Sigmoid,
    /// Sigmoid attention with an explicit bias `b`.
    SigmoidBias(f64),
    /// Weights from a function of the visible scores (see [`RowWeights`]); the causal mask
    /// still applies (keys after the query get 0).
    Custom(&'static RowWeights),
}

impl core::fmt::Debug for AttentionKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Softmax => f.write_str("Softmax"),
            Self::Sigmoid => f.write_str("Sigmoid"),
            Self::SigmoidBias(b) => f.debug_tuple("SigmoidBias").field(b).finish(),
            Self::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl PartialEq for AttentionKind {
    /// Custom kinds are equal when they are the same function object.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Softmax, Self::Softmax) | (Self::Sigmoid, Self::Sigmoid) => true,
            (Self::SigmoidBias(a), Self::SigmoidBias(b)) => a == b,
            (Self::Custom(a), Self::Custom(b)) => core::ptr::addr_eq(*a, *b),
            _ => false,
        }
    }
}

impl AttentionKind {
    /// `"softmax"`, `"sigmoid"` or `"custom"`.
    pub fn name(&self) -> &'static str {
        match self {
            AttentionKind::Softmax => "softmax",
            AttentionKind::Sigmoid | AttentionKind::SigmoidBias(_) => "sigmoid",
            AttentionKind::Custom(_) => "custom",
        }
    }
}

/// The sigmoid-attention bias of ENSI for a sequence of `n` tokens: `-ln n`.
pub fn sigmoid_attention_bias<F: Float>(n: usize) -> F {
    -F::from_f64(n.max(1) as f64).ln()
}

/// Scores, weights and output of one causal attention head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadAttention<F> {
    /// `Q K^T / sqrt(d)`, `[seq, seq]`, for every pair including the masked ones.
    pub scores: Matrix<F>,
    /// Attention weights after softmax or sigmoid and the causal mask (0 above the diagonal).
    pub probs: Matrix<F>,
    /// `probs V`, `[seq, d]`.
    pub output: Matrix<F>,
}

/// One causal attention head: `q` `[seq, d]`, `k` and `v` `[seq, d]` (after RoPE for q and k).
///
/// Scores are `(q_i . k_j) * (1 / sqrt(d))` with the scale rounded from `f64` (as transformers'
/// `head_dim ** -0.5`). Softmax subtracts the row maximum over the visible keys `j <= i`.
/// Sigmoid attention (see [`AttentionKind::Sigmoid`]) needs no max, no sum and no division.
pub fn attention_head<F: Float>(
    q: &Matrix<F>,
    k: &Matrix<F>,
    v: &Matrix<F>,
    kind: AttentionKind,
) -> Result<HeadAttention<F>> {
    let (n, d) = (q.rows(), q.cols());
    if k.rows() != n || v.rows() != n || k.cols() != d || v.cols() != d {
        return Err(Error::LengthMismatch {
            what: "attention_head q/k/v shapes".into(),
            expected: n * d,
            actual: k.rows() * k.cols(),
        });
    }
    let scale = F::from_f64(1.0 / libm::sqrt(d as f64));
    let mut scores = Matrix::zeros(n, n);
    for i in 0..n {
        let qi = q.row(i);
        let row = scores.row_mut(i);
        for (j, s) in row.iter_mut().enumerate() {
            let mut dot = F::ZERO;
            for (&a, &b) in qi.iter().zip(k.row(j)) {
                dot += a * b;
            }
            *s = dot * scale;
        }
    }
    let mut probs = Matrix::zeros(n, n);
    for i in 0..n {
        let s = &scores.row(i)[..=i];
        let p = &mut probs.row_mut(i)[..=i];
        match kind {
            AttentionKind::Softmax => {
                let max = s.iter().fold(s[0], |m, &x| m.max(x));
                let mut sum = F::ZERO;
                for (pj, &sj) in p.iter_mut().zip(s) {
                    *pj = (sj - max).exp();
                    sum += *pj;
                }
                for pj in p.iter_mut() {
                    *pj = *pj / sum;
                }
            }
            AttentionKind::Sigmoid | AttentionKind::SigmoidBias(_) => {
                let b = match kind {
                    AttentionKind::SigmoidBias(b) => F::from_f64(b),
                    _ => sigmoid_attention_bias(n),
                };
                for (pj, &sj) in p.iter_mut().zip(s) {
                    *pj = sigmoid(sj + b);
                }
            }
            AttentionKind::Custom(f) => {
                let s64: Vec<f64> = s.iter().map(|x| x.to_f64()).collect();
                let mut w = vec![0.0f64; s64.len()];
                f(&s64, n, &mut w);
                for (pj, wj) in p.iter_mut().zip(w) {
                    *pj = F::from_f64(wj);
                }
            }
        }
    }
    let mut output = Matrix::zeros(n, d);
    for i in 0..n {
        let mut acc = vec![F::ZERO; d];
        for j in 0..=i {
            let pij = probs.get(i, j);
            for (a, &vj) in acc.iter_mut().zip(v.row(j)) {
                *a += pij * vj;
            }
        }
        output.row_mut(i).copy_from_slice(&acc);
    }
    Ok(HeadAttention {
        scores,
        probs,
        output,
    })
}

/// Index of the largest value (the first one on ties, as `torch.argmax`); NaNs are skipped.
/// `None` for an empty or all-NaN slice.
pub fn argmax<F: Float>(values: &[F]) -> Option<usize> {
    let mut best: Option<(usize, F)> = None;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_pairs_i_and_i_plus_half() {
        let (cos, sin) = rope_angles::<f64>(1, 4, 10_000.0);
        // angles: 1 and 1/100
        assert!(
            (cos[0] - libm::cos(1.0)).abs() < 1e-15 && (sin[1] - libm::sin(0.01)).abs() < 1e-15
        );
        let mut x = [1.0, 0.0, 0.0, 0.0];
        apply_rope(&mut x, &cos, &sin).unwrap();
        assert!(
            (x[0] - cos[0]).abs() < 1e-15
                && (x[2] - sin[0]).abs() < 1e-15
                && x[1] == 0.0
                && x[3] == 0.0
        );
        let (c0, s0) = rope_angles::<f32>(0, 4, 10_000.0);
        assert_eq!((c0, s0), (vec![1.0; 2], vec![0.0; 2]));
    }

    #[test]
    fn sigmoid_is_stable_and_symmetric() {
        assert_eq!(sigmoid(0.0f64), 0.5);
        assert!((sigmoid(-800.0f64)).abs() < 1e-300 && sigmoid(800.0f64) == 1.0);
        assert!((sigmoid(3.0f64) + sigmoid(-3.0) - 1.0).abs() < 1e-15);
        assert_eq!(relu_squared(-2.0f32), 0.0);
        assert_eq!(relu_squared(3.0f32), 9.0);
        assert!((silu(1.0f64) - 1.0 / (1.0 + libm::exp(-1.0))).abs() < 1e-15);
    }

    #[test]
    fn attention_masks_and_normalizes() {
        let q = Matrix::from_vec(3, 2, vec![1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0]).unwrap();
        let v = Matrix::from_vec(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let soft = attention_head(&q, &q, &v, AttentionKind::Softmax).unwrap();
        for i in 0..3 {
            let row = soft.probs.row(i);
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);
            assert!(row[i + 1..].iter().all(|&p| p == 0.0));
        }
        assert_eq!(soft.output.row(0), &[1.0, 2.0]);
        let sig = attention_head(&q, &q, &v, AttentionKind::Sigmoid).unwrap();
        let b = -libm::log(3.0);
        assert!(
            (sig.probs.get(2, 1) - 1.0 / (1.0 + libm::exp(-(sig.scores.get(2, 1) + b)))).abs()
                < 1e-15
        );
        assert_eq!(sig.probs.get(0, 2), 0.0);
        assert!(sig.scores.get(0, 2) != 0.0, "scores are kept unmasked");
    }

    /// A custom kind sees each row's visible scores and the length, and its weights go through
    /// the same causal mask: one that computes the sigmoid reproduces the sigmoid kind.
    #[test]
    fn custom_weights_reproduce_the_sigmoid() {
        static SIG: fn(&[f64], usize, &mut [f64]) = |s, n, out| {
            let b = -libm::log(n as f64);
            for (o, &x) in out.iter_mut().zip(s) {
                *o = sigmoid(x + b);
            }
        };
        let q = Matrix::from_vec(3, 2, vec![1.0f64, 0.5, -0.3, 1.0, 1.0, 1.0]).unwrap();
        let v = Matrix::from_vec(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let sig = attention_head(&q, &q, &v, AttentionKind::Sigmoid).unwrap();
        let custom = attention_head(&q, &q, &v, AttentionKind::Custom(&SIG)).unwrap();
        assert_eq!(sig.probs.as_slice(), custom.probs.as_slice());
        assert_eq!(sig.output.as_slice(), custom.output.as_slice());
        assert_eq!(AttentionKind::Custom(&SIG), AttentionKind::Custom(&SIG));
        assert_ne!(AttentionKind::Custom(&SIG), AttentionKind::Sigmoid);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0f32, 3.0, 3.0, f32::NAN]), Some(1));
        assert_eq!(argmax::<f64>(&[]), None);
        assert_eq!(argmax(&[f64::NAN]), None);
    }
}
