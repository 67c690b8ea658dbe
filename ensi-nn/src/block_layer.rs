//! A BitNet b1.58 decoder layer, and the model, in the column-block layout ([`crate::block`]):
//! every activation of a short prompt is one ciphertext, so a refresh costs one bootstrap.
//! Wider activations (real model sizes, longer prompts) are [`ChunkedMatrix`]es: column chunks
//! of `N/2 / n_pad` columns, one statistic and one polynomial per norm over all chunks, two
//! chunks per refresh bootstrap, one sigmoid per attention diagonal over all chunks.
//!
//! Head layout. The query, key and value projections emit their rows in the order
//! `rho = c * H' + h` (head dimension `c` outer, query head `h` inner, `H'` the head count
//! rounded up to a power of two, the extra heads zero rows) instead of `h * hd + c`. The
//! permutation, GQA (each query head's copy of its key/value head), RoPE (`cos` and the signed
//! `sin` partner row, per token), `1/sqrt(hd)` and the sigmoid's affine map, the weight scales
//! and the RMSNorm gain all fold into the projections' diagonals. Then a rotation by
//! `H' * n_pad * 2^j` moves `c` by `2^j` cyclically inside the period `H' * hd' * n_pad`, so
//! `log2(hd')` rotate-and-adds sum a head's products over `c` and leave the score replicated
//! over `c`, as the value side needs. A head dimension that is not a power of two (96 in
//! bitnet_b1_58-large) is padded to `hd'`, the next one, with zero rows: they add nothing to
//! the sums, and the values' zero rows keep the replicated score out of the output.
//!
//! Attention goes diagonal by diagonal (`r = 0 .. n_pad - 1`, token `t` against `t - r`):
//! `Q * rot(K, -r)` (the key rotations hoisted), the head sum, `+ beta`, the sigmoid polynomial
//! (`sigmoid(s - ln n)` in `u = alpha s + beta`), then `A_r * (m_r * rot(V, -r))` with the
//! causal 0/1 mask `m_r` on the value side, after the sigmoid; the products are summed as
//! tensors and relinearized once.
//!
//! RMSNorm (the F-steps of the cost model): the statistic `sum_c x_c^2` is one product and
//! `log2(P / n_pad)` rotations; `1/sqrt(mean + eps)` is a Chebyshev polynomial on the calibrated
//! interval, evaluated inline when the input has the levels, or on a bootstrapped statistic
//! (F2; the polynomial's affine map rides in the bootstrap's gain, F1) when it does not; the
//! normalized `y = x / rms(x)` (no gain: it folds into the next projection) is bootstrapped
//! with the bound `|y| <= sqrt(d)` that holds by construction, tightened by calibration (F3).
//!
//! Levels, with `L` the bootstrapper's output level and the residual stream at `a`
//! ([`block_level_plan`] writes them down, a test checks them against a run):
//!
//! | step | level |
//! | --- | --- |
//! | `input_layernorm`, refreshed | `L` |
//! | Q, K, V (RoPE, GQA, scales folded) | `L - 1` |
//! | attention weights (score product, sigmoid) | `L - 2 - depth(sigmoid)` |
//! | attention output | one below |
//! | `attn_sub_norm` (statistic bootstrapped), refreshed | `L` |
//! | `o_proj` + residual | `min(a, L - 1)` |
//! | `post_attention_layernorm` (inline), refreshed | `L` |
//! | gate, up (the activation's affine map folded into gate) | `L - 1` |
//! | activation; `* up` | `L - 1 - depth(act)`; one below |
//! | `ffn_sub_norm` (statistic bootstrapped), refreshed | `L` |
//! | `down_proj` + residual | `min(a, L - 1)` |
//!
//! At `L = 10` with degree-31 polynomials that is six bootstraps per layer: four refreshes and
//! two statistics; the residual stream never needs one.

use crate::block::{
    BlockMatrix, ChunkedMatrix, block_linear_chunked_rotations, chunk_cols, chunked_linear,
    chunked_sum_of_squares, chunks, rotate_sum, rotate_sum_steps,
};
use crate::decoder::{LayerPlan, ModelPlan, activation_poly, sigmoid_in_u};
use crate::norm::NormPlan;
use alloc::vec::Vec;
use ensi_bitnet::config::ModelConfig;
use ensi_bitnet::model::{Layer, Model};
use ensi_bitnet::ternary::TernaryMatrix;
use ensi_ckks::{
    BootstrapOptions, Bootstrapper, ChebyshevPoly, Ciphertext, CkksError, Evaluator, Plaintext,
};

fn invalid(reason: &'static str) -> CkksError {
    CkksError::InvalidArgument { reason }
}

pub(crate) fn ternary(w: &ensi_bitnet::Linear) -> Result<&TernaryMatrix, CkksError> {
    w.as_ternary().ok_or(invalid(
        "encrypted layers need ternary (packed or ternarized) projections",
    ))
}

/// The inverse square root of `mean + eps` as a polynomial of the column sum `s = d * mean`,
/// on the calibrated interval.
pub(crate) fn inv_sqrt_of_sum(plan: &NormPlan, d: usize, eps: f64) -> ChebyshevPoly {
    let df = d as f64;
    ChebyshevPoly::interpolate(
        move |s| 1.0 / libm::sqrt(s / df + eps),
        df * (plan.lo - eps),
        df * (plan.hi - eps),
        plan.degree,
    )
}

/// The largest scale at which values bounded by `bound` can enter a bootstrap of `bts`,
/// capped at the default scale.
pub fn refresh_scale(bts: &Bootstrapper, bound: f64) -> f64 {
    let ctx = bts.evaluator().context();
    let q0 = ctx.params().q()[0] as f64;
    let ratio = libm::ldexp(1.0, bts.literal().log_message_ratio as i32);
    let max = q0 / (ratio * bound) * 0.999;
    ctx.params().default_scale().min(max)
}

/// Whether RMSNorm runs inline on an input at `level` (else its statistic is bootstrapped).
fn norm_inline(level: usize, plan: &NormPlan, d: usize, eps: f64) -> bool {
    level >= 2
        && inv_sqrt_of_sum(plan, d, eps)
            .depth_at(level - 1)
            .is_ok_and(|depth| level >= depth + 2)
}

/// `y = x / sqrt(mean_c(x_c^2) + eps)` per token (no gain) over the `d` real columns of `x`
/// (the others are zero: padding heads), at scale `target` exactly. Inline when `x` has the
/// levels, otherwise with the statistic bootstrapped (see the module documentation). A
/// chunked `x` shares one statistic (summed over the chunks) and one polynomial.
pub fn normalize(
    bts: &Bootstrapper,
    x: &ChunkedMatrix,
    d: usize,
    plan: &NormPlan,
    eps: f64,
    target: f64,
) -> Result<ChunkedMatrix, CkksError> {
    let eval = bts.evaluator();
    let ctx = eval.context();
    if !(plan.lo > eps.max(0.0) && plan.hi > plan.lo) {
        return Err(invalid("RMSNorm needs a calibrated interval eps < lo < hi"));
    }
    if norm_inline(x.level(), plan, d, eps) {
        return normalize_inline(eval, x, d, plan, eps, target);
    }
    // The statistic bootstrapped, the polynomial's affine map in the gain (F1, F2).
    let sum = chunked_sum_of_squares(eval, x)?;
    let u = crate::norm::refreshed_statistic(bts, &sum, d, eps, plan)?;
    let poly = plan.inv_sqrt();
    let p_level = u.level() - poly.depth_at(u.level())?;
    let level = p_level.min(x.level());
    let q = ctx.params().q()[level] as f64;
    let p = eval
        .evaluate_chebyshev(&u, &poly, target * q / x.scale())?
        .0;
    scale_by(eval, x, &eval.drop_to_level(&p, level)?, target)
}

/// [`normalize`] without a bootstrap: the statistic and the inverse square root on `x`'s own
/// levels (`2 + depth` of the polynomial, an error if `x` lacks them).
pub fn normalize_inline(
    eval: &Evaluator,
    x: &ChunkedMatrix,
    d: usize,
    plan: &NormPlan,
    eps: f64,
    target: f64,
) -> Result<ChunkedMatrix, CkksError> {
    let p = inline_inv_rms(eval, x, d, plan, eps, target)?;
    scale_by(eval, x, &p, target)
}

/// `p = 1 / sqrt(mean_c(x_c^2) + eps)` per token on `x`'s own levels, at the scale that makes
/// a product with a matrix at `x`'s scale land on `target` after one rescale ([`scale_by`]).
pub(crate) fn inline_inv_rms(
    eval: &Evaluator,
    x: &ChunkedMatrix,
    d: usize,
    plan: &NormPlan,
    eps: f64,
    target: f64,
) -> Result<Ciphertext, CkksError> {
    if !(plan.lo > eps.max(0.0) && plan.hi > plan.lo) {
        return Err(invalid("RMSNorm needs a calibrated interval eps < lo < hi"));
    }
    let sum = chunked_sum_of_squares(eval, x)?;
    let poly = inv_sqrt_of_sum(plan, d, eps);
    let p_level = sum
        .level()
        .checked_sub(poly.depth_at(sum.level())?)
        .ok_or(CkksError::NoLevelLeft)?;
    let q = eval.context().params().q()[p_level] as f64;
    Ok(eval
        .evaluate_chebyshev(&sum, &poly, target * q / x.scale())?
        .0)
}

/// `x * p` (every chunk) at `p`'s level, rescaled and snapped to `target` (which `p`'s scale
/// was chosen for).
pub(crate) fn scale_by(
    eval: &Evaluator,
    x: &ChunkedMatrix,
    p: &Ciphertext,
    target: f64,
) -> Result<ChunkedMatrix, CkksError> {
    x.map(|part| {
        let xs = eval.drop_to_level(part.ciphertext(), p.level())?;
        let mut y = eval.rescale(&eval.mul_relin(&xs, p)?)?;
        eval.match_scale(&mut y, target)?;
        Ok(y)
    })
}

/// [`normalize`], then a bootstrap of the normalized values (bounded by `bound`): the output
/// is at the bootstrapper's output level and the default scale. The chunks of a chunked `x`
/// are refreshed two by two, as the real and imaginary parts of one bootstrap
/// ([`Bootstrapper::bootstrap_pair`]); an odd last chunk alone.
pub fn normalize_refreshed(
    bts: &Bootstrapper,
    x: &ChunkedMatrix,
    d: usize,
    plan: &NormPlan,
    eps: f64,
    bound: f64,
) -> Result<ChunkedMatrix, CkksError> {
    // A pair's bootstrap sees |x + i y| <= sqrt(2) bound.
    let paired = x.parts().len() > 1;
    let entry_bound = if paired {
        bound * core::f64::consts::SQRT_2
    } else {
        bound
    };
    let y = normalize(bts, x, d, plan, eps, refresh_scale(bts, entry_bound))?;
    let options = BootstrapOptions {
        input_bound: bound,
        gain: None,
    };
    let mut parts = Vec::with_capacity(y.parts().len());
    for pair in y.parts().chunks(2) {
        if let [a, b] = pair {
            let (ra, rb) = bts.bootstrap_pair(a.ciphertext(), b.ciphertext(), &options)?;
            parts.push(a.with_ciphertext(ra));
            parts.push(b.with_ciphertext(rb));
        } else {
            for a in pair {
                parts.push(a.with_ciphertext(bts.bootstrap_with(a.ciphertext(), &options)?));
            }
        }
    }
    ChunkedMatrix::from_parts(parts)
}

/// The bootstraps [`normalize_refreshed`] spends on `chunks` chunks (the statistic aside).
pub fn refresh_bootstraps(chunks: usize) -> usize {
    chunks.div_ceil(2)
}

/// The head layout of a model: `heads` query heads of `hd` dimensions, padded to `padded`
/// heads and `hd_pad` dimensions (the next powers of two; the extra heads and dimensions are
/// zero rows), `group` query heads per key/value head.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    pub(crate) heads: usize,
    pub(crate) padded: usize,
    pub(crate) hd: usize,
    pub(crate) hd_pad: usize,
    pub(crate) group: usize,
}

impl Heads {
    /// The columns of a matrix in the head layout.
    pub(crate) fn cols(&self) -> usize {
        self.padded * self.hd_pad
    }

    /// `(query head, dimension)` of head-layout column `rho`, or `None` in a padding head.
    pub(crate) fn split(&self, rho: usize) -> Option<(usize, usize)> {
        let (head, c) = (rho % self.padded, rho / self.padded);
        (head < self.heads && c < self.hd).then_some((head, c))
    }
}

/// The model's attention shape, checked for this layout.
pub(crate) fn heads(cfg: &ModelConfig) -> Result<Heads, CkksError> {
    let (h, hd, kv) = (
        cfg.num_attention_heads,
        cfg.head_dim,
        cfg.num_key_value_heads,
    );
    if h == 0 || kv == 0 || !h.is_multiple_of(kv) || !hd.is_multiple_of(2) {
        return Err(invalid(
            "attention needs kv heads dividing heads and an even head dim",
        ));
    }
    Ok(Heads {
        heads: h,
        padded: h.next_power_of_two(),
        hd,
        hd_pad: hd.next_power_of_two(),
        group: h / kv,
    })
}

/// RoPE's `(cos, sin)` tables, one row per token.
fn rope_tables(n_pad: usize, hd: usize, theta: f64) -> Vec<(Vec<f64>, Vec<f64>)> {
    (0..n_pad)
        .map(|p| ensi_bitnet::ops::rope_angles::<f64>(p, hd, theta))
        .collect()
}

/// RoPE on a query or key matrix already in the head layout (column `rho = c H' + h`), in
/// slots: `out = q C + rot(q, s) S- + rot(q, -s) S+` with `s = (hd / 2) H' n_pad` (a shift by
/// half a head dimension), where per column and token `C = factor cos`, `S- = -factor sin` on
/// the first half of a head's dimensions (partner `c + hd/2`) and `S+ = factor sin` on the
/// second (partner `c - hd/2`), at the angle of `position(t)`; zero in the padding and where
/// `position(t)` is `None`. Two rotations ([`rope_rotations`]) and three plaintext products,
/// one level, the scale kept. For projections that cannot fold RoPE's real factors into their
/// weights (the coefficient kernel's integer weights); the head layout must be one chunk.
pub fn rope_in_slots(
    eval: &Evaluator,
    q: &ChunkedMatrix,
    cfg: &ModelConfig,
    position: &dyn Fn(usize) -> Option<usize>,
    factor: f64,
) -> Result<ChunkedMatrix, CkksError> {
    let hl = heads(cfg)?;
    let [part] = q.parts() else {
        return Err(invalid("RoPE in slots needs the head layout in one chunk"));
    };
    if q.cols() != hl.cols() {
        return Err(invalid("RoPE in slots needs a matrix in the head layout"));
    }
    let (n_pad, half) = (q.n_pad(), hl.hd / 2);
    let ct = part.ciphertext();
    let (slots, level) = (ct.slots(), ct.level());
    let period = crate::block::block_period(q.cols(), n_pad);
    let angles: Vec<Option<(Vec<f64>, Vec<f64>)>> = (0..n_pad)
        .map(|t| {
            position(t).map(|p| ensi_bitnet::ops::rope_angles::<f64>(p, hl.hd, cfg.rope_theta))
        })
        .collect();
    // The three factor vectors [C, S-, S+], slot by slot.
    let at = |slot: usize| -> [f64; 3] {
        let (rho, t) = ((slot % period) / n_pad, slot % n_pad);
        let (Some((_, c)), Some(Some((cos, sin)))) = (hl.split(rho), angles.get(t)) else {
            return [0.0; 3];
        };
        let (cs, sn) = (factor * cos[c % half], factor * sin[c % half]);
        if c < half {
            [cs, -sn, 0.0]
        } else {
            [cs, 0.0, sn]
        }
    };
    let per_slot: Vec<[f64; 3]> = (0..slots).map(at).collect();
    let f: [Vec<f64>; 3] = core::array::from_fn(|k| per_slot.iter().map(|v| v[k]).collect());
    let ctx = eval.context();
    let q_l = ctx.params().q()[level] as f64;
    let shift = (half * hl.padded * n_pad) as isize;
    let sources = [
        ct.clone(),
        eval.rotate(ct, shift)?,
        eval.rotate(ct, -shift)?,
    ];
    let mut acc: Option<Ciphertext> = None;
    for (src, values) in sources.iter().zip(&f) {
        let pt = ctx.encode(values, slots, level, q_l)?;
        let term = eval.mul_plain(src, &pt)?;
        match acc.as_mut() {
            None => acc = Some(term),
            Some(a) => eval.add_assign(a, &term)?,
        }
    }
    let mut out = eval.rescale(&acc.ok_or(invalid("RoPE needs a ciphertext"))?)?;
    eval.match_scale(&mut out, q.scale())?;
    ChunkedMatrix::from_parts(alloc::vec![part.with_ciphertext(out)])
}

/// The rotations of [`rope_in_slots`] for `n_pad` tokens: a shift by half a head dimension,
/// both ways.
pub fn rope_rotations(cfg: &ModelConfig, n_pad: usize) -> Result<Vec<isize>, CkksError> {
    let hl = heads(cfg)?;
    let s = (hl.hd / 2 * hl.padded * n_pad) as isize;
    Ok(alloc::vec![s, -s])
}

/// The query (`kv = false`) or key projection with RoPE, GQA and the head layout folded:
/// row `rho = c * H + h` of token `t` is `factor * (cos W[r] + sign sin W[partner])` at the
/// angle of position `position(t)` (a zero row where that is `None`), scaled by the weight
/// scale and the gain of the input's columns.
#[allow(clippy::too_many_arguments)]
fn roped_projection(
    eval: &Evaluator,
    y: &ChunkedMatrix,
    w: &TernaryMatrix,
    gamma: &[f32],
    cfg: &ModelConfig,
    kv: bool,
    position: &(dyn Fn(usize) -> Option<usize> + Sync),
    factor: f64,
    out_scale: f64,
) -> Result<ChunkedMatrix, CkksError> {
    let hl = heads(cfg)?;
    let (hd, group) = (hl.hd, hl.group);
    let half = hd / 2;
    let tables = rope_tables(y.n_pad(), hd, cfg.rope_theta);
    let mult = w.scale().multiplier::<f64>() * factor;
    chunked_linear(
        eval,
        y,
        hl.cols(),
        |rho, col, t| {
            let (Some((head, c)), Some(p)) = (hl.split(rho), position(t)) else {
                return 0.0;
            };
            let src = if kv { head / group } else { head };
            let (cos, sin) = (tables[p].0[c % half], tables[p].1[c % half]);
            let (partner, sign) = if c < half {
                (c + half, -1.0)
            } else {
                (c - half, 1.0)
            };
            let a = f64::from(w.get(src * hd + c, col));
            let b = f64::from(w.get(src * hd + partner, col));
            mult * f64::from(gamma[col]) * (cos * a + sign * sin * b)
        },
        out_scale,
    )
}

/// A plain projection `mult * W[row][col] * gamma[col]` (rows and columns in model order).
fn projection(
    eval: &Evaluator,
    y: &ChunkedMatrix,
    w: &TernaryMatrix,
    gamma: &[f32],
    factor: f64,
    out_scale: f64,
) -> Result<ChunkedMatrix, CkksError> {
    let mult = w.scale().multiplier::<f64>() * factor;
    chunked_linear(
        eval,
        y,
        w.rows(),
        |r, c, _| mult * f64::from(w.get(r, c)) * f64::from(gamma[c]),
        out_scale,
    )
}

/// The 0/1 mask whose slot `s` is `keep(s mod n)` (`n` the padded token count: the mask picks
/// rows of the column-block layout), encoded at `level` with the scale `q_level`, so that a
/// product with it and a rescale keep a ciphertext's scale.
fn row_mask(
    eval: &Evaluator,
    level: usize,
    slots: usize,
    n: usize,
    keep: &dyn Fn(usize) -> bool,
) -> Result<Plaintext, CkksError> {
    let ctx = eval.context();
    let q_l = ctx.params().q()[level] as f64;
    let mask: Vec<f64> = (0..slots)
        .map(|s| if keep(s % n) { 1.0 } else { 0.0 })
        .collect();
    ctx.encode(&mask, slots, level, q_l)
}

/// `ct * mask` rescaled back to `scale` (one level; the mask from [`row_mask`] at `ct`'s
/// level).
fn apply_mask(
    eval: &Evaluator,
    ct: &Ciphertext,
    mask: &Plaintext,
    scale: f64,
) -> Result<Ciphertext, CkksError> {
    let mut m = eval.rescale(&eval.mul_plain(ct, mask)?)?;
    eval.match_scale(&mut m, scale)?;
    Ok(m)
}

/// The head layout of `cfg`, checked against the widths of `q`, `k` and `v`: the head-layout
/// columns in equal chunks of whole column groups (a multiple of the padded head count).
fn head_layout_of(cfg: &ModelConfig, m: [&ChunkedMatrix; 3]) -> Result<Heads, CkksError> {
    let hl = heads(cfg)?;
    let width = m[0].parts()[0].cols();
    if m.iter().any(|x| {
        x.cols() != hl.cols()
            || x.n_pad() != m[0].n_pad()
            || x.parts().iter().any(|p| p.cols() != width)
    }) || !width.is_multiple_of(hl.padded)
    {
        return Err(invalid(
            "q, k, v must be in the head layout (heads x head_dim columns), for the same tokens, \
             in chunks of whole head-dimension groups",
        ));
    }
    Ok(hl)
}

/// The attention weights of `q` against the keys `k` (one ciphertext per chunk, row by row):
/// the products (summed over the chunks as tensors, relinearized once), the sum over each
/// head's dimensions (which leaves the score replicated over them, in every chunk) and the
/// sigmoid polynomial of `u = s + beta`.
fn weights(
    eval: &Evaluator,
    q: &ChunkedMatrix,
    k: &[&Ciphertext],
    hl: Heads,
    sigmoid: &ChebyshevPoly,
    beta: f64,
) -> Result<Ciphertext, CkksError> {
    let mut acc: Option<Ciphertext> = None;
    for (qp, kc) in q.parts().iter().zip(k) {
        let kc = eval.drop_to_level(kc, qp.level())?;
        add_tensor(eval, &mut acc, qp.ciphertext(), &kc)?;
    }
    let acc = acc.ok_or(invalid("attention needs a chunk"))?;
    let prod = eval.rescale(&eval.relinearize(&acc)?)?;
    let step = hl.padded * q.n_pad();
    let groups = q.parts()[0].cols() / hl.padded;
    let s = rotate_sum(eval, &prod, step, groups.trailing_zeros() as usize)?;
    let u = eval.add_const(&s, beta)?;
    let delta = eval.context().params().default_scale();
    Ok(eval.evaluate_chebyshev(&u, sigmoid, delta)?.0)
}

/// Causal sigmoid attention on `q`, `k`, `v` in the head layout (see the module
/// documentation). `sigmoid` is a polynomial of `u = s + beta` where `s` is what the folded
/// query-key product gives. The output (head layout) is one level below the weights. A chunked
/// head layout shares one sigmoid per diagonal over all its chunks.
#[allow(clippy::too_many_arguments)]
pub fn block_attention(
    eval: &Evaluator,
    q: &ChunkedMatrix,
    k: &ChunkedMatrix,
    v: &ChunkedMatrix,
    cfg: &ModelConfig,
    sigmoid: &ChebyshevPoly,
    beta: f64,
    log: &mut dyn FnMut(&'static str, usize),
) -> Result<ChunkedMatrix, CkksError> {
    let hl = head_layout_of(cfg, [q, k, v])?;
    let n = q.n_pad();
    let shifts: Vec<isize> = (1..n).map(|r| -(r as isize)).collect();
    let ks = hoisted(eval, k, &shifts)?;
    let vs = hoisted(eval, v, &shifts)?;
    let mut acc: Vec<Option<Ciphertext>> = alloc::vec![None; v.parts().len()];
    for r in 0..n {
        let kr: Vec<&Ciphertext> = k
            .parts()
            .iter()
            .zip(&ks)
            .map(|(kp, rot)| if r == 0 { kp.ciphertext() } else { &rot[r - 1] })
            .collect();
        let a = weights(eval, q, &kr, hl, sigmoid, beta)?;
        if r == 0 {
            log(BLOCK_STEPS[2], a.level());
        }
        // The value side: rot(V, -r), masked to the tokens t >= r (which also clears the
        // slots that wrapped around from the previous column).
        let mask = if r == 0 {
            None
        } else {
            let level = vs[0][r - 1].level();
            Some(row_mask(
                eval,
                level,
                v.parts()[0].ciphertext().slots(),
                n,
                &|t| t >= r,
            )?)
        };
        for ((vp, rot), slot) in v.parts().iter().zip(&vs).zip(acc.iter_mut()) {
            let vr = match &mask {
                None => vp.ciphertext().clone(),
                Some(m) => apply_mask(eval, &rot[r - 1], m, v.scale())?,
            };
            add_product(eval, slot, &a, &vr)?;
        }
    }
    relinearized_sum(eval, acc, v)
}

/// Every chunk of `x` rotated by each of `shifts` (hoisted per chunk).
fn hoisted(
    eval: &Evaluator,
    x: &ChunkedMatrix,
    shifts: &[isize],
) -> Result<Vec<Vec<Ciphertext>>, CkksError> {
    x.parts()
        .iter()
        .map(|p| eval.rotate_hoisted(p.ciphertext(), shifts))
        .collect()
}

/// One new token's causal sigmoid attention against the cache: `q` holds the token's query
/// in every row, `k` and `v` the keys and values of positions `0..=position` (zero rows
/// beyond). Every row of the output is the token's attention output, so the rest of the layer
/// runs on it unchanged.
///
/// The weights `A_s = sigmoid(q . k_s + beta)` take one product, one head sum and **one**
/// sigmoid (a prompt of `n` rows takes `n`). The sum `o = sum_{s <= position} A_s v_s`, wanted
/// in every row, is a cyclic rotate-and-add inside each column's block of `n_pad` slots: row
/// `t` gathers position `(t + j) mod n_pad` for `j = 0 .. n_pad - 1`, through a rotation by
/// `j` where `t + j < n_pad` and by `j - n_pad` where it wraps. Both the weights and the values
/// are rotated (hoisted); each (rotation, half) is one tensor product with the values masked to
/// the rows that read their own column at a position `<= position`. The masks sit on the value
/// side, so the output is at the level of the prompt's attention output; the products are
/// summed as tensors and relinearized once.
#[allow(clippy::too_many_arguments)]
pub fn step_attention(
    eval: &Evaluator,
    q: &ChunkedMatrix,
    k: &ChunkedMatrix,
    v: &ChunkedMatrix,
    cfg: &ModelConfig,
    sigmoid: &ChebyshevPoly,
    beta: f64,
    position: usize,
    log: &mut dyn FnMut(&'static str, usize),
) -> Result<ChunkedMatrix, CkksError> {
    let hl = head_layout_of(cfg, [q, k, v])?;
    let n = q.n_pad();
    if k.n_pad() != n || v.n_pad() != n || position >= n {
        return Err(invalid(
            "the cache must have the query's rows, and the position must be below them",
        ));
    }
    let kc: Vec<&Ciphertext> = k.parts().iter().map(BlockMatrix::ciphertext).collect();
    let a = weights(eval, q, &kc, hl, sigmoid, beta)?;
    log(BLOCK_STEPS[2], a.level());
    // (shift, wraps): row t reads position t + shift (mod n) of its own column.
    let terms: Vec<(isize, bool)> = (0..n)
        .flat_map(|j| [(j, false), (j, true)])
        .filter(|&(j, wraps)| !(wraps && j == 0))
        .filter(|&(j, wraps)| step_rows(n, position, j, wraps).any(|keep| keep))
        .map(|(j, wraps)| (j as isize - if wraps { n as isize } else { 0 }, wraps))
        .collect();
    let shifts: Vec<isize> = terms.iter().map(|t| t.0).filter(|&s| s != 0).collect();
    let a_rot = eval.rotate_hoisted(&a, &shifts)?;
    let v_rot = hoisted(eval, v, &shifts)?;
    let mut acc: Vec<Option<Ciphertext>> = alloc::vec![None; v.parts().len()];
    let mut next = 0;
    for &(shift, wraps) in &terms {
        let ar = if shift == 0 {
            &a
        } else {
            next += 1;
            &a_rot[next - 1]
        };
        let j = shift.rem_euclid(n as isize) as usize;
        let rows: Vec<bool> = step_rows(n, position, j, wraps).collect();
        let slots = v.parts()[0].ciphertext().slots();
        let mask = row_mask(eval, v.level(), slots, n, &|t| rows[t])?;
        for ((vp, rot), slot) in v.parts().iter().zip(&v_rot).zip(acc.iter_mut()) {
            let vr = if shift == 0 {
                vp.ciphertext()
            } else {
                &rot[next - 1]
            };
            let vm = apply_mask(eval, vr, &mask, v.scale())?;
            add_product(eval, slot, ar, &vm)?;
        }
    }
    relinearized_sum(eval, acc, v)
}

/// `acc += a * b` as a tensor (degree 2, not relinearized), both at one level.
fn add_tensor(
    eval: &Evaluator,
    acc: &mut Option<Ciphertext>,
    a: &Ciphertext,
    b: &Ciphertext,
) -> Result<(), CkksError> {
    let t = eval.tensor(a, b)?;
    match acc {
        None => *acc = Some(t),
        Some(x) => eval.add_assign(x, &t)?,
    }
    Ok(())
}

/// `acc += a * v` as a tensor (degree 2, not relinearized), `v` dropped to `a`'s level.
fn add_product(
    eval: &Evaluator,
    acc: &mut Option<Ciphertext>,
    a: &Ciphertext,
    v: &Ciphertext,
) -> Result<(), CkksError> {
    add_tensor(eval, acc, a, &eval.drop_to_level(v, a.level())?)
}

/// The attention output: every chunk's summed tensors relinearized once and rescaled, in the
/// layout of the values `v`.
fn relinearized_sum(
    eval: &Evaluator,
    acc: Vec<Option<Ciphertext>>,
    v: &ChunkedMatrix,
) -> Result<ChunkedMatrix, CkksError> {
    let parts = acc
        .into_iter()
        .zip(v.parts())
        .map(|(a, vp)| {
            let a = a.ok_or(invalid("attention needs a position"))?;
            Ok(vp.with_ciphertext(eval.rescale(&eval.relinearize(&a)?)?))
        })
        .collect::<Result<Vec<_>, CkksError>>()?;
    ChunkedMatrix::from_parts(parts)
}

/// The rows `t` of [`step_attention`]'s term `(j, wraps)`: those whose position `t + j`
/// (`t + j - n` when it wraps) lies in their own column's block and at most `position`.
fn step_rows(n: usize, position: usize, j: usize, wraps: bool) -> impl Iterator<Item = bool> {
    (0..n).map(move |t| {
        if wraps {
            t + j >= n && t + j - n <= position
        } else {
            t + j < n && t + j <= position
        }
    })
}

/// Which rows a layer computes and which positions its keys and values hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// A prompt of `tokens` real tokens, padded to the rows of the input (repeating the last
    /// token): row `t` is position `t`. The keys and values of the padding rows are zero, so
    /// they are an empty cache for later positions, and their queries take the last real
    /// position, so each padding row computes exactly what the last real row computes;
    /// causality keeps the real rows exact.
    Prompt {
        /// The real prompt length.
        tokens: usize,
    },
    /// One new token at `position`, the same in every row, attending to the cache of the
    /// positions before it (and itself, added to the cache first).
    Step {
        /// The token's position (the number of tokens before it).
        position: usize,
    },
}

impl Rows {
    /// The position whose RoPE angle row `t`'s query takes. A padding row takes the last real
    /// position: with its key and value zero, it then attends exactly as the last real row
    /// does, and every padding row stays a copy of the last real row through every layer (so
    /// the calibration of the real prompt covers every row the bootstraps see).
    pub(crate) fn query_position(self, t: usize) -> usize {
        match self {
            Rows::Prompt { tokens } => t.min(tokens.saturating_sub(1)),
            Rows::Step { position } => position,
        }
    }

    /// The position of row `t`'s key and value, or `None` where they are zero.
    pub(crate) fn key_position(self, t: usize) -> Option<usize> {
        match self {
            Rows::Prompt { tokens } => (t < tokens).then_some(t),
            Rows::Step { position } => (t == position).then_some(position),
        }
    }

    /// An error unless the prompt or the position fits `n` rows.
    pub(crate) fn check(self, n: usize) -> Result<(), CkksError> {
        let fits = match self {
            Rows::Prompt { tokens } => (1..=n).contains(&tokens),
            Rows::Step { position } => position < n,
        };
        fits.then_some(()).ok_or(invalid(
            "the prompt length or the new token's position must fit the rows of the input \
             (the cache's capacity)",
        ))
    }

    /// How many positions the attention sees (the sigmoid bias is minus its logarithm).
    pub fn attended(self) -> usize {
        match self {
            Rows::Prompt { tokens } => tokens,
            Rows::Step { position } => position + 1,
        }
    }
}

/// One layer's encrypted keys (RoPE applied) and values in the head layout, one row per
/// position of the capacity (the rows of the layer's input), zero where no token has been yet.
#[derive(Clone, Debug)]
pub struct LayerCache {
    /// The keys.
    pub k: ChunkedMatrix,
    /// The values.
    pub v: ChunkedMatrix,
}

/// The attention half of a layer on the normalized input `y1` (no gain: it is folded): the Q,
/// K, V projections with RoPE, GQA and every constant folded, and causal sigmoid attention.
/// The output is in the head layout (column `c * H + h` is model column `h * hd + c`).
pub fn attention_block(
    eval: &Evaluator,
    y1: &ChunkedMatrix,
    w: &Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    tokens: usize,
    log: &mut dyn FnMut(&'static str, usize),
) -> Result<ChunkedMatrix, CkksError> {
    attention_rows(eval, y1, w, cfg, plan, Rows::Prompt { tokens }, None, log)
}

/// [`attention_block`] for `rows`: a prompt (whose keys and values are stored in `cache` when
/// one is given) or a new token (whose key and value are added to `cache` first, and which
/// attends through it: [`step_attention`]).
#[allow(clippy::too_many_arguments)]
pub fn attention_rows(
    eval: &Evaluator,
    y1: &ChunkedMatrix,
    w: &Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    rows: Rows,
    cache: Option<&mut Option<LayerCache>>,
    log: &mut dyn FnMut(&'static str, usize),
) -> Result<ChunkedMatrix, CkksError> {
    rows.check(y1.n_pad())?;
    let delta = eval.context().params().default_scale();
    let hl = heads(cfg)?;
    let hd = hl.hd;
    // Zero keys (padding rows, positions not reached yet) score 0: the sigmoid's interval
    // must hold it, or the polynomial explodes there before the value-side mask clears it.
    let scores = plan.scores.including(0.0);
    let (alpha, beta) = scores.affine();
    let g1 = &w.input_layernorm;
    let q_factor = alpha / libm::sqrt(hd as f64);
    let query = |t| Some(rows.query_position(t));
    let key = |t| rows.key_position(t);
    let q = roped_projection(
        eval,
        y1,
        ternary(&w.q_proj)?,
        g1,
        cfg,
        false,
        &query,
        q_factor,
        delta,
    )?;
    let k = roped_projection(
        eval,
        y1,
        ternary(&w.k_proj)?,
        g1,
        cfg,
        true,
        &key,
        1.0,
        delta,
    )?;
    let wv = ternary(&w.v_proj)?;
    let group = hl.group;
    let mult_v = wv.scale().multiplier::<f64>();
    let v = chunked_linear(
        eval,
        y1,
        hl.cols(),
        |rho, col, t| {
            let (Some((head, c)), Some(_)) = (hl.split(rho), key(t)) else {
                return 0.0;
            };
            mult_v * f64::from(wv.get((head / group) * hd + c, col)) * f64::from(g1[col])
        },
        delta,
    )?;
    log(BLOCK_STEPS[1], q.level().min(k.level()).min(v.level()));
    let bias = -libm::log(rows.attended().max(1) as f64);
    let sigmoid = sigmoid_in_u(scores, bias, plan.sigmoid_degree);
    match rows {
        Rows::Prompt { .. } => {
            let o = block_attention(eval, &q, &k, &v, cfg, &sigmoid, beta, log)?;
            if let Some(slot) = cache {
                *slot = Some(LayerCache { k, v });
            }
            Ok(o)
        }
        Rows::Step { position } => {
            let c = cache.and_then(|c| c.as_mut()).ok_or(invalid(
                "a new token needs the cache of the earlier positions",
            ))?;
            if c.k.n_pad() != k.n_pad()
                || c.k.cols() != k.cols()
                || c.v.cols() != v.cols()
                || c.k.parts().len() != k.parts().len()
            {
                return Err(invalid("the cache does not match the layer's shape"));
            }
            // The cache changes only once the round's attention has succeeded.
            let (k, v) = (residual(eval, &c.k, &k)?, residual(eval, &c.v, &v)?);
            let o = step_attention(eval, &q, &k, &v, cfg, &sigmoid, beta, position, log)?;
            (c.k, c.v) = (k, v);
            Ok(o)
        }
    }
}

/// The gated FFN on the normalized input `y2` (no gain: it is folded): gate and up, the
/// activation polynomial (its affine map folded into the gate), and the product.
pub fn ffn_block(
    eval: &Evaluator,
    y2: &ChunkedMatrix,
    w: &Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    log: &mut dyn FnMut(&'static str, usize),
) -> Result<ChunkedMatrix, CkksError> {
    let delta = eval.context().params().default_scale();
    let ((ga, gb), act) = activation_in_u(cfg, plan);
    let g2 = &w.post_attention_layernorm;
    let gate = projection(eval, y2, ternary(&w.gate_proj)?, g2, ga, delta)?;
    let up = projection(eval, y2, ternary(&w.up_proj)?, g2, 1.0, delta)?;
    log(BLOCK_STEPS[7], gate.level().min(up.level()));
    let (hm, act_level) = gated_activation(eval, &gate, &up, gb, &act, delta)?;
    log(BLOCK_STEPS[8], act_level);
    log(BLOCK_STEPS[9], hm.level());
    Ok(hm)
}

/// `act(gate + gb) * up` chunk by chunk (the activation a polynomial of `u = gate + gb` on
/// `[-1, 1]`, its output at scale `delta`), and the activation's level.
pub(crate) fn gated_activation(
    eval: &Evaluator,
    gate: &ChunkedMatrix,
    up: &ChunkedMatrix,
    gb: f64,
    act: &ChebyshevPoly,
    delta: f64,
) -> Result<(ChunkedMatrix, usize), CkksError> {
    let mut act_level = gate.level();
    let parts = gate
        .parts()
        .iter()
        .zip(up.parts())
        .map(|(g, upp)| {
            let u = eval.add_const(g.ciphertext(), gb)?;
            let a = eval.evaluate_chebyshev(&u, act, delta)?.0;
            act_level = a.level();
            let upc = eval.drop_to_level(upp.ciphertext(), a.level())?;
            Ok(upp.with_ciphertext(eval.rescale(&eval.mul_relin(&a, &upc)?)?))
        })
        .collect::<Result<Vec<_>, CkksError>>()?;
    Ok((ChunkedMatrix::from_parts(parts)?, act_level))
}

/// Steps and the levels of their outputs.
pub type LevelPlan = Vec<(&'static str, usize)>;

/// The steps of a layer whose levels [`block_level_plan`] predicts and [`block_layer_logged`]
/// reports, in order.
pub const BLOCK_STEPS: [&str; 12] = [
    "input_layernorm (refreshed)",
    "q, k, v (rope folded)",
    "attention weights",
    "attention output",
    "attn_sub_norm (refreshed)",
    "o_proj + residual",
    "post_attention_layernorm (refreshed)",
    "gate, up",
    "activation",
    "activation * up",
    "ffn_sub_norm (refreshed)",
    "down_proj + residual",
];

/// The level of every step of [`BLOCK_STEPS`] for a residual stream at `x_level`, and the
/// number of bootstraps of a layer on `n_pad` (padded) tokens, from the bootstrapper's output
/// level, the polynomials' depths and the chunks of each refreshed activation.
pub fn block_level_plan(
    bts: &Bootstrapper,
    x_level: usize,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    n_pad: usize,
) -> Result<(LevelPlan, usize), CkksError> {
    let slots = bts.evaluator().context().n() / 2;
    block_level_plan_at(bts.output_level(), slots, x_level, cfg, plan, n_pad)
}

/// [`block_level_plan`] from the bootstrapper's output level `l` and the slot count alone (no
/// keys needed): what a planner predicts before any key exists.
pub fn block_level_plan_at(
    l: usize,
    slots: usize,
    x_level: usize,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    n_pad: usize,
) -> Result<(LevelPlan, usize), CkksError> {
    if l < 3 {
        return Err(CkksError::NoLevelLeft);
    }
    let eps = cfg.rms_norm_eps;
    let sig = sigmoid_in_u(plan.scores, -1.0, plan.sigmoid_degree);
    let act = activation_in_u(cfg, plan).1;
    let need = |x: Option<usize>| x.ok_or(CkksError::NoLevelLeft);
    let weights = need((l - 2).checked_sub(sig.depth_at(l - 2)?))?;
    let attn = need(weights.checked_sub(1))?;
    let residual = x_level.min(l - 1);
    let activation = need((l - 1).checked_sub(act.depth_at(l - 1)?))?;
    let up = need(activation.checked_sub(1))?;
    // A norm's input needs two levels: its statistic's square and the product by the inverse
    // square root (an input at level 1 fails in the middle of the layer).
    if attn < 2 || up < 2 || x_level.min(l - 1) < 2 {
        return Err(CkksError::NoLevelLeft);
    }
    let levels = [
        l,
        l - 1,
        weights,
        attn,
        l,
        residual,
        l,
        l - 1,
        activation,
        up,
        l,
        residual,
    ];
    // Four refreshes (one bootstrap per pair of chunks), plus one per norm whose input lacks
    // the levels to run inline.
    let chunk = chunk_cols(slots, n_pad);
    let head_cols = heads(cfg)?.cols();
    let inputs = [
        (x_level, &plan.norms[0], cfg.hidden_size, cfg.hidden_size),
        (attn, &plan.norms[1], cfg.q_dim(), head_cols),
        (residual, &plan.norms[2], cfg.hidden_size, cfg.hidden_size),
        (
            up,
            &plan.norms[3],
            cfg.intermediate_size,
            cfg.intermediate_size,
        ),
    ];
    let bootstraps = inputs
        .iter()
        .map(|&(level, p, d, cols)| {
            let statistic = usize::from(!norm_inline(level, p, d, eps));
            refresh_bootstraps(chunks(cols, chunk).len()) + statistic
        })
        .sum();
    Ok((
        BLOCK_STEPS.iter().copied().zip(levels).collect(),
        bootstraps,
    ))
}

/// The gate interval's affine map `u = alpha g + beta`, and the activation as a polynomial of
/// `u` on `[-1, 1]`.
pub(crate) fn activation_in_u(cfg: &ModelConfig, plan: &LayerPlan) -> ((f64, f64), ChebyshevPoly) {
    let f = activation_poly(cfg.hidden_act, plan.gate, plan.act_degree);
    (plan.gate.affine(), ChebyshevPoly::new(f.coeffs, -1.0, 1.0))
}

/// One decoder layer on the residual stream `x` (column-block layout, all tokens real: pad
/// the prompt to a power of two, see [`pad_prompt`]). `tokens` is the prompt's real length
/// (the sigmoid bias is `-ln tokens`).
pub fn block_layer(
    bts: &Bootstrapper,
    x: &ChunkedMatrix,
    w: &Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    tokens: usize,
) -> Result<ChunkedMatrix, CkksError> {
    block_layer_logged(bts, x, w, cfg, plan, tokens, &mut |_, _| {})
}

/// [`block_layer`], telling `log` the level of every step of [`BLOCK_STEPS`].
pub fn block_layer_logged(
    bts: &Bootstrapper,
    x: &ChunkedMatrix,
    w: &Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    tokens: usize,
    log: &mut dyn FnMut(&'static str, usize),
) -> Result<ChunkedMatrix, CkksError> {
    layer_rows(bts, x, w, cfg, plan, Rows::Prompt { tokens }, None, log)
}

/// One decoder layer on `rows` of `x`, with the keys and values stored in or read from
/// `cache` (see [`attention_rows`]).
#[allow(clippy::too_many_arguments)]
fn layer_rows(
    bts: &Bootstrapper,
    x: &ChunkedMatrix,
    w: &Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    rows: Rows,
    cache: Option<&mut Option<LayerCache>>,
    log: &mut dyn FnMut(&'static str, usize),
) -> Result<ChunkedMatrix, CkksError> {
    let eval = bts.evaluator();
    let eps = cfg.rms_norm_eps;
    if !x.tokens().is_power_of_two() || x.cols() != cfg.hidden_size {
        return Err(invalid(
            "the column-block layer needs hidden-size columns and a power-of-two token count \
             (pad the prompt)",
        ));
    }
    rows.check(x.tokens())?;
    let hl = heads(cfg)?;
    // Attention.
    let y1 = normalize_refreshed(
        bts,
        x,
        cfg.hidden_size,
        &plan.norms[0],
        eps,
        plan.unit_bounds[0],
    )?;
    log(BLOCK_STEPS[0], y1.level());
    let o = attention_rows(eval, &y1, w, cfg, plan, rows, cache, log)?;
    log(BLOCK_STEPS[3], o.level());
    let ya = normalize_refreshed(
        bts,
        &o,
        cfg.q_dim(),
        &plan.norms[1],
        eps,
        plan.unit_bounds[1],
    )?;
    log(BLOCK_STEPS[4], ya.level());
    // o_proj reads the head layout: column rho = c * H + h is model column h * hd + c.
    let wo = ternary(&w.o_proj)?;
    let mult_o = wo.scale().multiplier::<f64>();
    let gs = &w.attn_sub_norm;
    let o = chunked_linear(
        eval,
        &ya,
        cfg.hidden_size,
        |r, rho, _| {
            let Some((head, c)) = hl.split(rho) else {
                return 0.0;
            };
            let m = head * hl.hd + c;
            mult_o * f64::from(wo.get(r, m)) * f64::from(gs[m])
        },
        x.scale(),
    )?;
    let x1 = residual(eval, x, &o)?;
    log(BLOCK_STEPS[5], x1.level());
    // FFN.
    let y2 = normalize_refreshed(
        bts,
        &x1,
        cfg.hidden_size,
        &plan.norms[2],
        eps,
        plan.unit_bounds[2],
    )?;
    log(BLOCK_STEPS[6], y2.level());
    let hm = ffn_block(eval, &y2, w, cfg, plan, log)?;
    let yf = normalize_refreshed(
        bts,
        &hm,
        cfg.intermediate_size,
        &plan.norms[3],
        eps,
        plan.unit_bounds[3],
    )?;
    log(BLOCK_STEPS[10], yf.level());
    let down = projection(
        eval,
        &yf,
        ternary(&w.down_proj)?,
        &w.ffn_sub_norm,
        1.0,
        x1.scale(),
    )?;
    let out = residual(eval, &x1, &down)?;
    log(BLOCK_STEPS[11], out.level());
    Ok(out)
}

/// `x + y` (chunk by chunk) for `y` at `x`'s scale, at the lower level.
pub(crate) fn residual(
    eval: &Evaluator,
    x: &ChunkedMatrix,
    y: &ChunkedMatrix,
) -> Result<ChunkedMatrix, CkksError> {
    if x.parts().len() != y.parts().len() {
        return Err(invalid("a residual sum needs matrices of the same chunks"));
    }
    let level = x.level().min(y.level());
    let mut parts = y.parts().iter();
    x.map(|xp| {
        let yp = parts
            .next()
            .ok_or(invalid("a residual sum needs the same chunks"))?;
        let mut s = eval.drop_to_level(xp.ciphertext(), level)?;
        let mut b = eval.drop_to_level(yp.ciphertext(), level)?;
        eval.match_scale(&mut b, s.scale())?;
        eval.add_assign(&mut s, &b)?;
        Ok(s)
    })
}

/// The prompt padded to a power of two by repeating its last token. Causal attention keeps the
/// real tokens' outputs exactly those of the unpadded prompt; the padding rows are computed
/// and ignored.
pub fn pad_prompt(tokens: &[u32]) -> Vec<u32> {
    pad_prompt_to(tokens, tokens.len().next_power_of_two())
}

/// The prompt padded to `rows` tokens (at least its length) by repeating its last token: a
/// generation's prompt is padded to the cache's capacity.
pub fn pad_prompt_to(tokens: &[u32], rows: usize) -> Vec<u32> {
    let mut out = tokens.to_vec();
    if let Some(&last) = tokens.last() {
        out.resize(rows.max(tokens.len()), last);
    }
    out
}

/// The capacity a generation needs: the prompt and every new token but the last (which is
/// only predicted), rounded up to a power of two; `None` if that overflows.
pub fn generation_capacity(prompt: usize, new_tokens: usize) -> Option<usize> {
    prompt
        .checked_add(new_tokens.saturating_sub(1))?
        .max(1)
        .checked_next_power_of_two()
}

/// The rotations [`step_attention`] needs besides [`block_rotations`]'s (which hold the
/// negative shifts `j - n_pad`), for a capacity of `n_pad` positions: `j = 1 .. n_pad - 1`.
pub fn step_rotations(n_pad: usize) -> Vec<isize> {
    (1..n_pad as isize).collect()
}

/// The width of the attention's head layout: the head count rounded up to a power of two,
/// times the head dimension (the columns of the queries, keys, values and the cache).
pub fn head_layout_cols(cfg: &ModelConfig) -> Result<usize, CkksError> {
    Ok(heads(cfg)?.cols())
}

/// Every rotation the column-block forward pass needs besides bootstrapping's, for `n_pad`
/// tokens on `slots` slots (with the server-side LM head when `head` is set). Activations wider
/// than one ciphertext are chunked ([`crate::block::chunk_cols`]), and so are the products'
/// rotations and the column sums'.
pub fn block_rotations(
    cfg: &ModelConfig,
    n_pad: usize,
    slots: usize,
    head: bool,
) -> Result<Vec<isize>, CkksError> {
    let hl = heads(cfg)?;
    let (d, qd, f) = (cfg.hidden_size, hl.cols(), cfg.intermediate_size);
    let mut r: Vec<isize> = Vec::new();
    for (rows, cols) in [(qd, d), (d, qd), (f, d), (d, f)] {
        r.extend(block_linear_chunked_rotations(slots, rows, cols, n_pad)?);
    }
    if head {
        r.extend(block_linear_chunked_rotations(
            slots,
            cfg.vocab_size,
            d,
            n_pad,
        )?);
    }
    r.extend(norm_and_attention_rotations(cfg, n_pad, slots)?);
    r.sort_unstable();
    r.dedup();
    Ok(r)
}

/// The rotations both layer plans share: the norms' column sums over the hidden, head-layout
/// and FFN widths, the attention's head sums and its shifts by `1 .. n_pad - 1` rows.
pub(crate) fn norm_and_attention_rotations(
    cfg: &ModelConfig,
    n_pad: usize,
    slots: usize,
) -> Result<Vec<isize>, CkksError> {
    let hl = heads(cfg)?;
    let (d, qd, f) = (cfg.hidden_size, hl.cols(), cfg.intermediate_size);
    let chunk = chunk_cols(slots, n_pad);
    let mut r: Vec<isize> = Vec::new();
    for cols in [d, qd, f] {
        let widest = cols.min(chunk).next_power_of_two();
        r.extend(rotate_sum_steps(n_pad, widest.trailing_zeros() as usize));
    }
    let groups = qd.min(chunk) / hl.padded;
    r.extend(rotate_sum_steps(
        hl.padded * n_pad,
        groups.trailing_zeros() as usize,
    ));
    r.extend((1..n_pad).map(|s| -(s as isize)));
    Ok(r)
}

/// Every decoder layer and the final norm on the encrypted embeddings `x` (column-block
/// layout, the padded prompt); returns the encrypted final hidden states, normalized without
/// the final gain (the client applies it with the LM head, or [`block_lm_head`] does).
/// `tokens` is the real prompt length; `progress` is told where the pass is, step by step, and
/// `layer_output` sees every layer's output (a diagnostic for runs that hold the secret key).
pub fn block_forward(
    bts: &Bootstrapper,
    model: &Model,
    x: &ChunkedMatrix,
    plan: &ModelPlan,
    tokens: usize,
    progress: &mut dyn FnMut(crate::decoder::Progress),
    layer_output: &mut dyn FnMut(usize, &ChunkedMatrix),
) -> Result<ChunkedMatrix, CkksError> {
    let rows = Rows::Prompt { tokens };
    forward_rows(bts, model, x, plan, rows, None, progress, layer_output)
}

/// The encrypted keys and values of every layer for the positions a generation has seen: the
/// server's state between rounds. Its capacity (the rows of every matrix, a power of two) is
/// fixed when the prompt is run; each round adds one position.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
}

impl KvCache {
    /// A cache of `len` filled positions from its layers' keys and values (as read back from a
    /// file): every matrix must have the same rows (the capacity) and columns, and
    /// `1 <= len <= capacity`.
    pub fn new(layers: Vec<LayerCache>, len: usize) -> Result<Self, CkksError> {
        let first = layers.first().ok_or(invalid("a cache needs a layer"))?;
        let (rows, cols) = (first.k.tokens(), first.k.cols());
        let same = layers.iter().all(|l| {
            [&l.k, &l.v]
                .iter()
                .all(|m| m.tokens() == rows && m.cols() == cols)
        });
        if !same || !rows.is_power_of_two() || len == 0 || len > rows {
            return Err(invalid(
                "a cache's matrices must share a power-of-two row count and the columns, with \
                 1 <= filled positions <= rows",
            ));
        }
        Ok(Self { layers, len })
    }

    /// The positions filled (the tokens seen so far).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a cache holds at least the prompt's first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The positions it can hold.
    pub fn capacity(&self) -> usize {
        self.layers[0].k.tokens()
    }

    /// Every layer's keys and values.
    pub fn layers(&self) -> &[LayerCache] {
        &self.layers
    }

    /// The layers' keys and values, taken.
    pub fn into_layers(self) -> Vec<LayerCache> {
        self.layers
    }
}

/// [`block_forward`] for a generation: `x` holds the prompt padded to the cache's capacity
/// (the most positions the generation will reach, a power of two; see [`pad_prompt_to`]), and
/// the keys and values of every layer are returned as the cache for [`block_step`].
pub fn block_prefill(
    bts: &Bootstrapper,
    model: &Model,
    x: &ChunkedMatrix,
    plan: &ModelPlan,
    tokens: usize,
    progress: &mut dyn FnMut(crate::decoder::Progress),
    layer_output: &mut dyn FnMut(usize, &ChunkedMatrix),
) -> Result<(ChunkedMatrix, KvCache), CkksError> {
    let rows = Rows::Prompt { tokens };
    let mut slots: Vec<Option<LayerCache>> = alloc::vec![None; model.layers().len()];
    let out = forward_rows(
        bts,
        model,
        x,
        plan,
        rows,
        Some(&mut slots),
        progress,
        layer_output,
    )?;
    let layers = slots
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or(invalid("a layer did not store its keys and values"))?;
    Ok((out, KvCache::new(layers, tokens)?))
}

/// One generation round on the server: `x` holds the new token's embedding in every row (as
/// many rows as the cache's capacity), at position `cache.len()`. Its key and value join the
/// cache, it attends to every earlier position through the cache (one sigmoid per layer, see
/// [`step_attention`]), and the final hidden state is returned in every row. `plan` is the
/// calibration of prompts of `cache.len() + 1` tokens. The cache is changed only on success.
pub fn block_step(
    bts: &Bootstrapper,
    model: &Model,
    x: &ChunkedMatrix,
    plan: &ModelPlan,
    cache: &mut KvCache,
    progress: &mut dyn FnMut(crate::decoder::Progress),
    layer_output: &mut dyn FnMut(usize, &ChunkedMatrix),
) -> Result<ChunkedMatrix, CkksError> {
    let position = cache.len();
    if position >= cache.capacity() {
        return Err(invalid(
            "the cache is full: run the prompt again with a larger capacity",
        ));
    }
    if x.tokens() != cache.capacity() || cache.layers.len() != model.layers().len() {
        return Err(invalid(
            "the new token must fill the cache's rows, and the cache must have every layer",
        ));
    }
    let mut slots: Vec<Option<LayerCache>> = cache.layers.iter().cloned().map(Some).collect();
    let out = forward_rows(
        bts,
        model,
        x,
        plan,
        Rows::Step { position },
        Some(&mut slots),
        progress,
        layer_output,
    )?;
    cache.layers = slots
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or(invalid("a layer lost its cache"))?;
    cache.len += 1;
    Ok(out)
}

/// The layers and the final norm on `rows` of `x`, with one cache slot per layer when given.
#[allow(clippy::too_many_arguments)]
fn forward_rows(
    bts: &Bootstrapper,
    model: &Model,
    x: &ChunkedMatrix,
    plan: &ModelPlan,
    rows: Rows,
    mut caches: Option<&mut [Option<LayerCache>]>,
    progress: &mut dyn FnMut(crate::decoder::Progress),
    layer_output: &mut dyn FnMut(usize, &ChunkedMatrix),
) -> Result<ChunkedMatrix, CkksError> {
    let cfg = model.config();
    if plan.layers.len() != model.layers().len() {
        return Err(invalid("one layer plan per decoder layer"));
    }
    let mut x = x.clone();
    let count = model.layers().len();
    for (index, (w, p)) in model.layers().iter().zip(&plan.layers).enumerate() {
        progress(crate::decoder::Progress::Layer { index, count });
        let slot = caches.as_deref_mut().map(|c| &mut c[index]);
        x = layer_rows(bts, &x, w, cfg, p, rows, slot, &mut |name, level| {
            progress(crate::decoder::Progress::Step { name, level })
        })?;
        layer_output(index, &x);
    }
    progress(crate::decoder::Progress::FinalNorm);
    let delta = bts.evaluator().context().params().default_scale();
    normalize(
        bts,
        &x,
        cfg.hidden_size,
        &plan.final_norm,
        cfg.rms_norm_eps,
        delta,
    )
}

/// The LM head on the server: `logits = W diag(gamma) y` with the final norm's gain `gamma`
/// folded, for every token (one streamed product, one level).
pub fn block_lm_head(
    eval: &Evaluator,
    y: &ChunkedMatrix,
    model: &Model,
) -> Result<ChunkedMatrix, CkksError> {
    let cfg = model.config();
    let (d, vocab) = (cfg.hidden_size, cfg.vocab_size);
    let (w, gamma) = (model.lm_head(), model.norm());
    if w.len() != vocab * d || gamma.len() != d || y.cols() != d {
        return Err(invalid("the LM head must be vocab x hidden"));
    }
    let delta = eval.context().params().default_scale();
    chunked_linear(
        eval,
        y,
        vocab,
        |r, c, _| f64::from(w[r * d + c]) * f64::from(gamma[c]),
        delta,
    )
}
