//! Causal sigmoid attention in the column layout, diagonal by diagonal (ENSI, He et al., arXiv
//! 2509.09424, §4.2, with the mask moved after the sigmoid).
//!
//! For a head with query columns `q_c`, key columns `k_c` and value columns `v_c` (slot `i` =
//! token `i`), diagonal `delta` of the score matrix is one ciphertext:
//!
//! ```text
//! S_delta[i] = sum_c q_c[i] k_c[i - delta] = sum_c q_c ⊙ rot_{-delta}(k_c)
//! A_delta    = sigmoid(S_delta - ln n)                 (a Chebyshev polynomial, the bias inside)
//! out_c      = sum_delta A_delta ⊙ (mask_delta ⊙ rot_{-delta}(v_c))
//! ```
//!
//! `mask_delta[i] = 1` for `delta <= i mod p < n` (`p` the columns' period), else 0: the causal mask is a 0/1 plaintext product
//! on the value side, applied after the sigmoid, never a large negative number added before a
//! polynomial that is accurate only on a bounded interval. `1 / sqrt(d)` is expected folded into
//! the queries (for example through [`crate::column::rope`]'s factor). The key and value
//! rotations of a column share one decomposition (hoisting); the tensor products of a diagonal
//! are summed before one relinearization.

use crate::column::ColumnMatrix;
use alloc::vec::Vec;
use ensi_ckks::{ChebyshevPoly, Ciphertext, CkksError, Evaluator};

/// The polynomial of the attention weights: `sigmoid(s + bias)` on the calibrated interval
/// `[a, b]` of the scores `s`, by Chebyshev interpolation of the given degree (ENSI uses 16;
/// 31 is about 100x more accurate on the same interval).
pub fn sigmoid_poly(bias: f64, a: f64, b: f64, degree: usize) -> ChebyshevPoly {
    ChebyshevPoly::interpolate(move |s| 1.0 / (1.0 + libm::exp(-(s + bias))), a, b, degree)
}

/// The rotations attention needs for `tokens` tokens: right by `1 .. tokens - 1`.
pub fn attention_rotations(tokens: usize) -> Vec<isize> {
    (1..tokens).map(|d| -(d as isize)).collect()
}

/// Rotations `rot_{-delta}(x)` for `delta = 0 .. n - 1`, hoisted.
fn shifted(eval: &Evaluator, x: &Ciphertext, n: usize) -> Result<Vec<Ciphertext>, CkksError> {
    let mut steps = Vec::with_capacity(n);
    steps.push(0);
    steps.extend(attention_rotations(n));
    eval.rotate_hoisted(x, &steps)
}

/// Causal sigmoid attention of every query head (`q`: `heads x head_dim` columns, RoPE and
/// `1/sqrt(d)` applied; `k`, `v`: `kv_heads x head_dim` columns, RoPE applied to `k`). Query
/// head `h` reads KV head `h / (heads / kv_heads)` (GQA). `sigmoid` is the attention-weight
/// polynomial ([`sigmoid_poly`]), evaluated to `weight_scale` after `shift` is added to the
/// scores (with the polynomial on `[-1, 1]` and the scores' scaling folded into the queries,
/// the shift completes the affine map at no level). Returns the concatenated head outputs
/// (`heads x head_dim` columns).
#[allow(clippy::too_many_arguments)]
pub fn causal_sigmoid_attention(
    eval: &Evaluator,
    q: &ColumnMatrix,
    k: &ColumnMatrix,
    v: &ColumnMatrix,
    head_dim: usize,
    sigmoid: &ChebyshevPoly,
    shift: f64,
    weight_scale: f64,
) -> Result<ColumnMatrix, CkksError> {
    let n = q.tokens();
    let d = head_dim;
    if d == 0 || !q.cols().is_multiple_of(d) || k.cols() != v.cols() || !k.cols().is_multiple_of(d)
    {
        return Err(CkksError::InvalidArgument {
            reason: "attention needs q, k, v widths that are multiples of the head dimension",
        });
    }
    let (heads, kv_heads) = (q.cols() / d, k.cols() / d);
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(CkksError::InvalidArgument {
            reason: "the query heads must be a multiple of the KV heads",
        });
    }
    let group = heads / kv_heads;
    let ctx = eval.context();
    let slots = q.columns()[0].slots();
    // The masks of the value side, one per diagonal: 1 on delta <= i < n.
    let level_v = v.level();
    let q_l = ctx.params().q()[level_v] as f64;
    let period = q.period();
    let masks = (0..n)
        .map(|delta| {
            let m: Vec<f64> = (0..slots)
                .map(|i| {
                    let t = i % period;
                    if t >= delta && t < n { 1.0 } else { 0.0 }
                })
                .collect();
            ctx.encode(&m, slots, level_v, q_l)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out: Vec<Ciphertext> = Vec::with_capacity(q.cols());
    for kv in 0..kv_heads {
        // Shifted keys and masked, shifted values of this KV head, computed once.
        let k_shift = (0..d)
            .map(|c| shifted(eval, &k.columns()[kv * d + c], n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut v_masked: Vec<Vec<Ciphertext>> = Vec::with_capacity(d);
        for c in 0..d {
            let rots = shifted(eval, &v.columns()[kv * d + c], n)?;
            let masked = rots
                .iter()
                .zip(&masks)
                .map(|(r, m)| eval.rescale(&eval.mul_plain(r, m)?))
                .collect::<Result<Vec<_>, _>>()?;
            v_masked.push(masked);
        }
        for h in kv * group..(kv + 1) * group {
            // The attention weights of every diagonal.
            let mut weights = Vec::with_capacity(n);
            for delta in 0..n {
                let mut acc: Option<Ciphertext> = None;
                for (c, shifts) in k_shift.iter().enumerate() {
                    let qc = &q.columns()[h * d + c];
                    let kc = eval.drop_to_level(&shifts[delta], qc.level())?;
                    let t = eval.tensor(qc, &kc)?;
                    match &mut acc {
                        None => acc = Some(t),
                        Some(a) => eval.add_assign(a, &t)?,
                    }
                }
                let s = acc.ok_or(CkksError::NoLevelLeft)?;
                let mut s = eval.rescale(&eval.relinearize(&s)?)?;
                if shift != 0.0 {
                    s = eval.add_const(&s, shift)?;
                }
                weights.push(eval.evaluate_chebyshev(&s, sigmoid, weight_scale)?.0);
            }
            // out_c = sum_delta A_delta * masked v.
            for vm in &v_masked {
                let mut acc: Option<Ciphertext> = None;
                for (a, mv) in weights.iter().zip(vm) {
                    let level = a.level().min(mv.level());
                    let a = eval.drop_to_level(a, level)?;
                    let mv = eval.drop_to_level(mv, level)?;
                    let t = eval.tensor(&a, &mv)?;
                    match &mut acc {
                        None => acc = Some(t),
                        Some(x) => eval.add_assign(x, &t)?,
                    }
                }
                let o = acc.ok_or(CkksError::NoLevelLeft)?;
                out.push(eval.rescale(&eval.relinearize(&o)?)?);
            }
        }
    }
    // Heads were produced in KV-head order, which is query-head order.
    ColumnMatrix::from_columns(out, n)
}
