//! A BitNet b1.58 decoder layer with **every projection on the coefficient kernel**
//! ([`crate::coeff_kernel`]): the slot plan's "refresh, then product" ([`crate::block_layer`])
//! becomes "product, then refresh" for every projection, and the level plan is rebuilt around
//! it.
//!
//! The kernel's output comes out of a coefficient bootstrap without a SlotsToCoeffs, so it is
//! `stc_level_budget - 1` levels above a refresh's (level 12 at the 128-bit set, where a
//! refresh gives 10), and its input needs only `stc_level_budget` levels (3). Projections that
//! share an input share their coefficient bootstraps as far as their rows fit (q, k and v of
//! bitnet_b1_58-large at 8 tokens one, gate and up one). The plan keeps the residual stream at
//! the kernel's output level, so both residual norms run inline, and bootstraps only the two
//! sub-norms' statistics besides the kernels: six bootstraps per layer for bitnet_b1_58-large
//! at up to 8 tokens, as many as the slot plan, and no BSGS product.
//!
//! | step | how | level (128-bit set: `L = 10`, budget 3, degrees 31) |
//! | --- | --- | --- |
//! | residual stream `x` | every layer adds a kernel output to it | `K = L + budget - 1 = 12` |
//! | `input_layernorm` | inline: `sum x_c^2`, the inverse square root, `y = (x g) p` (the gain a plaintext product on `x`: integer weights cannot carry it) | 5 |
//! | q, k, v | kernel; the head layout, GQA's copies, `1/sqrt(hd)` and the sigmoid's scale in the integer entries and the multiplier; `attn_sub_norm`'s gain and the zero keys of padding rows in v's reassembly factors | `K` |
//! | RoPE on q, k | in slots ([`crate::block_layer::rope_in_slots`]), padding keys zeroed | `K - 1` |
//! | attention weights, output | [`crate::block_layer::block_attention`] (v dropped to one level above the weights first: its rotations then run on fewer limbs) | 5, 4 |
//! | `attn_sub_norm` | the statistic `sum_c o'_c^2 / g_c^2` of the gained output `o' = g o` bootstrapped, `y = o' p` | 3 |
//! | `o_proj` + residual | kernel | `K` |
//! | `post_attention_layernorm` | inline, as the first | 5 |
//! | gate, up | kernel; the activation's affine map in gate's multiplier, `ffn_sub_norm`'s gain in up's reassembly | `K` |
//! | activation, `* up` | degree 31 | 7, 6 |
//! | `ffn_sub_norm` | statistic of `h' = g h` weighted by `1/g^2`, bootstrapped | 5 |
//! | `down_proj` + residual | kernel | `K` |
//!
//! [`coeff_level_plan_at`] writes these down from the bootstrapper's parameters and the
//! polynomials' depths; the layer reports what it reaches and a test compares the two.
//!
//! **Bounds.** Each kernel scales its input so that the largest packed value sits
//! [`crate::coeff_kernel::COEFF_LOG_RATIO`] bits below `q_0`; [`CoeffBounds::calibrate`] takes
//! the largest `|W y|` of each projection over calibration traces, with headroom. A value past
//! its bound does not wrap (EvalMod's range is `2^11` times wider): it loses precision
//! gradually, about two bits at twice the bound.

use crate::block::scale_columns;
use crate::block::{ChunkedMatrix, chunk_cols, chunked_column_dot};
use crate::block_layer::{
    BLOCK_STEPS, LevelPlan, Rows, activation_in_u, block_attention, gated_activation, heads,
    inline_inv_rms, inv_sqrt_of_sum, norm_and_attention_rotations, residual, rope_in_slots,
    rope_rotations, scale_by, ternary,
};
use crate::coeff_kernel::{
    CoeffProjection, coeff_galois_elements, coeff_linear, coeff_linear_counts, coeff_rotations,
};
use crate::decoder::{LayerPlan, sigmoid_in_u};
use crate::norm::NormPlan;
use alloc::vec::Vec;
use ensi_bitnet::LayerTrace;
use ensi_bitnet::config::ModelConfig;
use ensi_bitnet::model::Layer;
use ensi_bitnet::ternary::TernaryMatrix;
use ensi_ckks::{Bootstrapper, CkksError, Evaluator};

fn invalid(reason: &'static str) -> CkksError {
    CkksError::InvalidArgument { reason }
}

/// The steps of a coefficient-kernel layer whose levels [`coeff_level_plan_at`] predicts and
/// [`coeff_layer_logged`] reports, in order.
pub const COEFF_STEPS: [&str; 13] = [
    "input_layernorm (inline, gain applied)",
    "q, k, v (coefficient kernel)",
    "rope on q, k (slots)",
    BLOCK_STEPS[2],
    BLOCK_STEPS[3],
    "attn_sub_norm (statistic bootstrapped)",
    "o_proj (coefficient kernel) + residual",
    "post_attention_layernorm (inline, gain)",
    "gate, up (coefficient kernel)",
    BLOCK_STEPS[8],
    BLOCK_STEPS[9],
    "ffn_sub_norm (statistic bootstrapped)",
    "down_proj (coefficient kernel) + residual",
];

/// The steps of [`COEFF_STEPS`] that end with a kernel (their time is the projections').
pub const COEFF_PROJECTION_STEPS: [&str; 4] = [
    COEFF_STEPS[1],
    COEFF_STEPS[6],
    COEFF_STEPS[8],
    COEFF_STEPS[12],
];

/// Bounds on `|W y|` (integer weights, before the weight scale) of the seven projections of a
/// layer, in the order q, k, v, o, gate, up, down: they set each kernel's input scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoeffBounds {
    /// q, k, v, o, gate, up, down.
    pub projections: [f64; 7],
}

impl CoeffBounds {
    /// The largest `|W y|` of each projection over the plaintext `traces` of layer `w` (the
    /// trace's projection output divided by the weight scale), times `headroom` (2 is one bit
    /// of precision for outputs up to twice the calibrated ones).
    pub fn calibrate(
        traces: &[&LayerTrace<f64>],
        w: &Layer,
        headroom: f64,
    ) -> Result<Self, CkksError> {
        type Pick = fn(&LayerTrace<f64>) -> &ensi_bitnet::Matrix<f64>;
        let picks: [(Pick, &ensi_bitnet::Linear); 7] = [
            (|t| &t.q, &w.q_proj),
            (|t| &t.k, &w.k_proj),
            (|t| &t.v, &w.v_proj),
            (|t| &t.o_proj, &w.o_proj),
            (|t| &t.gate, &w.gate_proj),
            (|t| &t.up, &w.up_proj),
            (|t| &t.down, &w.down_proj),
        ];
        if traces.is_empty() || !(headroom.is_finite() && headroom >= 1.0) {
            return Err(invalid(
                "calibrating the kernel's bounds needs traces and a headroom of at least 1",
            ));
        }
        let mut projections = [0.0; 7];
        for (out, (pick, linear)) in projections.iter_mut().zip(picks) {
            let mult = ternary(linear)?.scale().multiplier::<f64>().abs();
            let largest = traces
                .iter()
                .flat_map(|t| pick(t).as_slice().iter().map(|v| v.abs()))
                .fold(0.0f64, f64::max);
            // An all-zero projection still needs a positive bound.
            *out = (largest / mult).max(1e-6) * headroom;
            if !out.is_finite() {
                return Err(invalid("a projection's calibrated bound is not finite"));
            }
        }
        Ok(Self { projections })
    }
}

/// The real gains `g` of a sub-norm as the weights `1 / g^2` of its statistic (the gained
/// output `g o` then gives `sum_c o_c^2`), checked: every gain non-zero and within `2^10` of
/// the largest in magnitude, since a weight amplifies its column's error by `max |g| / |g_c|`.
fn statistic_weights(gain: &[f32]) -> Result<Vec<f64>, CkksError> {
    let largest = gain.iter().fold(0.0f64, |m, &g| m.max(f64::from(g).abs()));
    if gain
        .iter()
        .any(|&g| !g.is_finite() || f64::from(g).abs() * 1024.0 < largest)
        || largest == 0.0
    {
        return Err(invalid(
            "the coefficient plan carries a sub-norm's gain through the statistic, which needs \
             every gain non-zero and within 2^10 of the largest (use the slot plan)",
        ));
    }
    Ok(gain
        .iter()
        .map(|&g| 1.0 / (f64::from(g) * f64::from(g)))
        .collect())
}

/// An error unless layer `w` can run on the coefficient plan whatever the levels: ternary
/// projections, and sub-norm gains its weighted statistics can carry (see
/// [`coeff_layer`]); the planner leaves such a layer to the slot plan.
pub fn check_coeff_layer(w: &Layer) -> Result<(), CkksError> {
    statistic_weights(&w.attn_sub_norm)?;
    statistic_weights(&w.ffn_sub_norm)?;
    for p in w.projections() {
        ternary(p)?;
    }
    Ok(())
}

/// `y = (x g) / sqrt(mean_c(x_c^2) + eps)` per token over the `d` real columns of `x`, inline:
/// the statistic from `x`, the gain a plaintext product on `x` (one level, beside the
/// statistic's), at scale `target` exactly; `y` is one level below the lower of `x - 1` and
/// the inverse square root's output.
pub fn normalize_gained(
    eval: &Evaluator,
    x: &ChunkedMatrix,
    gain: &[f32],
    d: usize,
    plan: &NormPlan,
    eps: f64,
    target: f64,
) -> Result<ChunkedMatrix, CkksError> {
    if gain.len() != x.cols() {
        return Err(invalid("RMSNorm needs a gain per column"));
    }
    // The statistic from x; the gain (scale_columns keeps x's scale) on the multiplicand.
    let p = inline_inv_rms(eval, x, d, plan, eps, target)?;
    let xg = scale_columns(eval, x, &|c| f64::from(gain[c]))?;
    scale_by(eval, &xg, &p, target)
}

/// `y = x' / sqrt(mean_c(w_c x'_c^2) + eps)` with the statistic bootstrapped: for `x' = g x`
/// (a gain already carried by the projection that made `x'`) and `w_c = 1 / g_c^2` this is
/// `g x / rms(x)`, RMSNorm with its gain. The weighted statistic costs one level more than a
/// plain one (`x'` needs three); the rest is [`crate::block_layer::normalize`]'s bootstrapped
/// branch. At scale `target` exactly.
pub fn normalize_weighted(
    bts: &Bootstrapper,
    x: &ChunkedMatrix,
    weight: &dyn Fn(usize) -> f64,
    d: usize,
    plan: &NormPlan,
    eps: f64,
    target: f64,
) -> Result<ChunkedMatrix, CkksError> {
    let eval = bts.evaluator();
    if !(plan.lo > eps.max(0.0) && plan.hi > plan.lo) {
        return Err(invalid("RMSNorm needs a calibrated interval eps < lo < hi"));
    }
    if x.level() < 3 {
        return Err(CkksError::NoLevelLeft);
    }
    let wx = scale_columns(eval, x, weight)?;
    let sum = chunked_column_dot(eval, &wx, x)?;
    let u = crate::norm::refreshed_statistic(bts, &sum, d, eps, plan)?;
    let poly = plan.inv_sqrt();
    let p_level = u.level() - poly.depth_at(u.level())?;
    let level = p_level.min(x.level());
    let q = eval.context().params().q()[level] as f64;
    let p = eval
        .evaluate_chebyshev(&u, &poly, target * q / x.scale())?
        .0;
    scale_by(eval, x, &eval.drop_to_level(&p, level)?, target)
}

/// The level of every step of [`COEFF_STEPS`] for a residual stream at `x_level`, and the
/// bootstraps of a layer on `n_pad` tokens at ring degree `n`, from the bootstrapper's output
/// level `l` and StC level budget alone (no keys needed). An error where a step lacks its
/// levels or the head layout does not fit one ciphertext (RoPE in slots needs it whole).
#[allow(clippy::too_many_arguments)]
pub fn coeff_level_plan_at(
    l: usize,
    budget: usize,
    n: usize,
    x_level: usize,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    n_pad: usize,
) -> Result<(LevelPlan, usize), CkksError> {
    let hl = heads(cfg)?;
    let (d, qd, f) = (cfg.hidden_size, hl.cols(), cfg.intermediate_size);
    let chunk = chunk_cols(n / 2, n_pad);
    if qd > chunk {
        return Err(invalid(
            "the coefficient plan needs the head layout in one ciphertext (fewer tokens)",
        ));
    }
    let eps = cfg.rms_norm_eps;
    let need = |x: Option<usize>| x.ok_or(CkksError::NoLevelLeft);
    let k_out = l + budget - 1;
    // An inline norm with its gain: the statistic at x - 1, then the polynomial; y one below.
    let inline = |xl: usize, p: &NormPlan| -> Result<usize, CkksError> {
        let sum = need(xl.checked_sub(1))?;
        let poly = inv_sqrt_of_sum(p, d, eps);
        let p_level = need(sum.checked_sub(poly.depth_at(sum)?))?;
        need(p_level.min(sum).checked_sub(1))
    };
    // A bootstrapped weighted statistic: x needs three levels; p at l - depth.
    let weighted = |xl: usize, p: &NormPlan| -> Result<usize, CkksError> {
        if xl < 3 {
            return Err(CkksError::NoLevelLeft);
        }
        let p_level = need(l.checked_sub(p.inv_sqrt().depth_at(l)?))?;
        need(p_level.min(xl).checked_sub(1))
    };
    let sig = sigmoid_in_u(plan.scores, -1.0, plan.sigmoid_degree);
    let act = activation_in_u(cfg, plan).1;
    let y1 = inline(x_level, &plan.norms[0])?;
    let rope = need(k_out.checked_sub(1))?;
    let score = need(rope.checked_sub(1))?;
    let weights = need(score.checked_sub(sig.depth_at(score)?))?;
    let attn = need(weights.checked_sub(1))?;
    let ya = weighted(attn, &plan.norms[1])?;
    let x1 = x_level.min(k_out);
    let y2 = inline(x1, &plan.norms[2])?;
    let activation = need(k_out.checked_sub(act.depth_at(k_out)?))?;
    let up = need(activation.checked_sub(1))?;
    let yf = weighted(up, &plan.norms[3])?;
    if [y1, ya, y2, yf].iter().any(|&y| y < budget) {
        return Err(CkksError::NoLevelLeft);
    }
    let levels = [
        y1, k_out, rope, weights, attn, ya, x1, y2, k_out, activation, up, yf, x1,
    ];
    let mut bootstraps = 2;
    for (cols, rows) in [
        (d, &[qd, qd, qd][..]),
        (qd, &[d][..]),
        (d, &[f, f][..]),
        (f, &[d][..]),
    ] {
        bootstraps += coeff_linear_counts(n, cols, rows, n_pad)?[3];
    }
    Ok((
        COEFF_STEPS.iter().copied().zip(levels).collect(),
        bootstraps,
    ))
}

/// [`coeff_level_plan_at`] for the bootstrapper `bts`.
pub fn coeff_level_plan(
    bts: &Bootstrapper,
    x_level: usize,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    n_pad: usize,
) -> Result<(LevelPlan, usize), CkksError> {
    let n = bts.evaluator().context().n();
    let budget = bts.literal().stc_level_budget;
    coeff_level_plan_at(bts.output_level(), budget, n, x_level, cfg, plan, n_pad)
}

/// The level the residual stream of the coefficient plan lives at (the kernel's output level:
/// the client encrypts the embeddings there), for a bootstrapper of output level `l` and StC
/// level budget `budget`.
pub fn coeff_stream_level(l: usize, budget: usize) -> usize {
    l + budget - 1
}

/// The keys a coefficient-kernel layer needs besides bootstrapping's, for `n_pad` tokens at
/// ring degree `n`: the rotations (the norms' column sums, the head sums, the attention's
/// shifts, RoPE's, every kernel's reassembly; used up to the coefficient bootstrap's output
/// level, `l + budget`) and the level-0 Galois elements of the kernel's packing.
pub fn coeff_layer_keys(
    cfg: &ModelConfig,
    n: usize,
    n_pad: usize,
) -> Result<(Vec<isize>, Vec<usize>), CkksError> {
    let hl = heads(cfg)?;
    let slots = n / 2;
    let (d, qd, f) = (cfg.hidden_size, hl.cols(), cfg.intermediate_size);
    let mut r = norm_and_attention_rotations(cfg, n_pad, slots)?;
    r.extend(rope_rotations(cfg, n_pad)?);
    for rows in [&[qd, qd, qd][..], &[d], &[f, f]] {
        r.extend(coeff_rotations(slots, rows, n_pad)?);
    }
    r.sort_unstable();
    r.dedup();
    Ok((r, coeff_galois_elements(n, n_pad)))
}

/// One decoder layer with every projection on the coefficient kernel (see the module
/// documentation) on the residual stream `x` (column-block layout at
/// [`coeff_stream_level`], a power-of-two number of rows: pad the prompt,
/// [`crate::block_layer::pad_prompt`]); `tokens` is the real prompt length. Needs the keys of
/// [`coeff_layer_keys`] and the bootstrapping keys.
#[allow(clippy::too_many_arguments)]
pub fn coeff_layer(
    bts: &Bootstrapper,
    x: &ChunkedMatrix,
    w: &Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    bounds: &CoeffBounds,
    tokens: usize,
) -> Result<ChunkedMatrix, CkksError> {
    coeff_layer_logged(bts, x, w, cfg, plan, bounds, tokens, &mut |_, _| {})
}

/// [`coeff_layer`], telling `log` the level of every step of [`COEFF_STEPS`].
#[allow(clippy::too_many_arguments)]
pub fn coeff_layer_logged<'a>(
    bts: &Bootstrapper,
    x: &ChunkedMatrix,
    w: &'a Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    bounds: &CoeffBounds,
    tokens: usize,
    log: &mut dyn FnMut(&'static str, usize),
) -> Result<ChunkedMatrix, CkksError> {
    let eval = bts.evaluator();
    let eps = cfg.rms_norm_eps;
    let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
    if !x.tokens().is_power_of_two() || x.cols() != d {
        return Err(invalid(
            "the coefficient layer needs hidden-size columns and a power-of-two token count \
             (pad the prompt)",
        ));
    }
    let rows = Rows::Prompt { tokens };
    rows.check(x.tokens())?;
    // Every step's levels, before any work.
    coeff_level_plan(bts, x.level(), cfg, plan, x.n_pad())?;
    let hl = heads(cfg)?;
    let (hd, group) = (hl.hd, hl.group);
    let delta = eval.context().params().default_scale();
    let (gs, gf) = (&w.attn_sub_norm, &w.ffn_sub_norm);
    let (ws, wf) = (statistic_weights(gs)?, statistic_weights(gf)?);
    let [wq, wk, wv, wo, wg, wu, wd] = w.projections().map(ternary);
    let (wq, wk, wv, wo, wg, wu, wd) = (wq?, wk?, wv?, wo?, wg?, wu?, wd?);
    let mult = |m: &TernaryMatrix| m.scale().multiplier::<f64>();
    let b = &bounds.projections;

    // Attention: the input norm inline, its gain a plaintext product.
    let y1 = normalize_gained(eval, x, &w.input_layernorm, d, &plan.norms[0], eps, delta)?;
    log(COEFF_STEPS[0], y1.level());
    let scores = plan.scores.including(0.0);
    let (alpha, beta) = scores.affine();
    // Head-layout row rho = c H' + h of query head h reads model row h hd + c (its key/value
    // head's for k and v); padding heads and dimensions are zero rows.
    let head_entry = |w: &'a TernaryMatrix, kv: bool| {
        move |rho: usize, col: usize| -> i64 {
            hl.split(rho).map_or(0, |(h, c)| {
                let src = if kv { h / group } else { h };
                i64::from(w.get(src * hd + c, col))
            })
        }
    };
    let (eq, ek, ev) = (
        head_entry(wq, false),
        head_entry(wk, true),
        head_entry(wv, true),
    );
    // v carries attn_sub_norm's gain, and zero rows where the key position is empty.
    let v_factor = |rho: usize, t: usize| match (hl.split(rho), rows.key_position(t)) {
        (Some((h, c)), Some(_)) => f64::from(gs[h * hd + c]),
        _ => 0.0,
    };
    let qkv = coeff_linear(
        bts,
        &y1,
        &[
            CoeffProjection {
                rows: hl.cols(),
                entry: &eq,
                multiplier: mult(wq) * alpha / libm::sqrt(hd as f64),
                factor: None,
                bound: b[0],
            },
            CoeffProjection {
                rows: hl.cols(),
                entry: &ek,
                multiplier: mult(wk),
                factor: None,
                bound: b[1],
            },
            CoeffProjection {
                rows: hl.cols(),
                entry: &ev,
                multiplier: mult(wv),
                factor: Some(&v_factor),
                bound: b[2],
            },
        ],
        delta,
    )?;
    let [q, k, v]: [ChunkedMatrix; 3] = qkv
        .try_into()
        .map_err(|_| invalid("the kernel returns one output per projection"))?;
    log(COEFF_STEPS[1], q.level());
    let q = rope_in_slots(eval, &q, cfg, &|t| Some(rows.query_position(t)), 1.0)?;
    let k = rope_in_slots(eval, &k, cfg, &|t| rows.key_position(t), 1.0)?;
    log(COEFF_STEPS[2], q.level());
    let bias = -libm::log(rows.attended().max(1) as f64);
    let sigmoid = sigmoid_in_u(scores, bias, plan.sigmoid_degree);
    // v is read only by the products with the attention weights, after the sigmoid: its
    // rotations and masks run at the lowest level those products allow (fewer limbs).
    let score_level = q.level().checked_sub(1).ok_or(CkksError::NoLevelLeft)?;
    let v_level = score_level - sigmoid.depth_at(score_level)? + 1;
    let v = v.map(|p| eval.drop_to_level(p.ciphertext(), v_level.min(p.level())))?;
    let o = block_attention(eval, &q, &k, &v, cfg, &sigmoid, beta, log)?;
    log(COEFF_STEPS[4], o.level());
    let head_weight = |rho: usize| hl.split(rho).map_or(0.0, |(h, c)| ws[h * hd + c]);
    let ya = normalize_weighted(
        bts,
        &o,
        &head_weight,
        cfg.q_dim(),
        &plan.norms[1],
        eps,
        delta,
    )?;
    log(COEFF_STEPS[5], ya.level());
    let eo = |r: usize, rho: usize| -> i64 {
        hl.split(rho)
            .map_or(0, |(h, c)| i64::from(wo.get(r, h * hd + c)))
    };
    let o = single(coeff_linear(
        bts,
        &ya,
        &[CoeffProjection {
            rows: d,
            entry: &eo,
            multiplier: mult(wo),
            factor: None,
            bound: b[3],
        }],
        x.scale(),
    )?)?;
    let x1 = residual(eval, x, &o)?;
    log(COEFF_STEPS[6], x1.level());

    // FFN.
    let y2 = normalize_gained(
        eval,
        &x1,
        &w.post_attention_layernorm,
        d,
        &plan.norms[2],
        eps,
        delta,
    )?;
    log(COEFF_STEPS[7], y2.level());
    let ((ga, gb), act) = activation_in_u(cfg, plan);
    let eg = |r: usize, c: usize| i64::from(wg.get(r, c));
    let eu = |r: usize, c: usize| i64::from(wu.get(r, c));
    let up_factor = |r: usize, _t: usize| f64::from(gf[r]);
    let gu = coeff_linear(
        bts,
        &y2,
        &[
            CoeffProjection {
                rows: f,
                entry: &eg,
                multiplier: mult(wg) * ga,
                factor: None,
                bound: b[4],
            },
            CoeffProjection {
                rows: f,
                entry: &eu,
                multiplier: mult(wu),
                factor: Some(&up_factor),
                bound: b[5],
            },
        ],
        delta,
    )?;
    let [gate, up]: [ChunkedMatrix; 2] = gu
        .try_into()
        .map_err(|_| invalid("the kernel returns one output per projection"))?;
    log(COEFF_STEPS[8], gate.level());
    let (h, act_level) = gated_activation(eval, &gate, &up, gb, &act, delta)?;
    log(COEFF_STEPS[9], act_level);
    log(COEFF_STEPS[10], h.level());
    let yf = normalize_weighted(bts, &h, &|c| wf[c], f, &plan.norms[3], eps, delta)?;
    log(COEFF_STEPS[11], yf.level());
    let ed = |r: usize, c: usize| i64::from(wd.get(r, c));
    let down = single(coeff_linear(
        bts,
        &yf,
        &[CoeffProjection {
            rows: d,
            entry: &ed,
            multiplier: mult(wd),
            factor: None,
            bound: b[6],
        }],
        x1.scale(),
    )?)?;
    let out = residual(eval, &x1, &down)?;
    log(COEFF_STEPS[12], out.level());
    Ok(out)
}

fn single(mut v: Vec<ChunkedMatrix>) -> Result<ChunkedMatrix, CkksError> {
    match (v.pop(), v.is_empty()) {
        (Some(m), true) => Ok(m),
        _ => Err(invalid("the kernel returns one output per projection")),
    }
}
