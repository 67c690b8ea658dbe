//! A whole BitNet b1.58 decoder layer, and the model, on ciphertexts in the column layout.
//!
//! Per layer (2B-4T structure: input norm, attention with its sub-norm, post-attention norm,
//! gated FFN with its sub-norm), with `L` the bootstrapper's output level:
//!
//! | step | level of the activations |
//! | --- | --- |
//! | `y1 = input_layernorm(x)` (statistic bootstrapped), `y1` refreshed | `L` |
//! | Q, K, V: signed sums, weight scales folded | `L` |
//! | RoPE; `1/sqrt(d)` and the sigmoid's affine map folded into the queries | `L - 1` |
//! | scores `Q K^T` per diagonal | `L - 2` |
//! | `sigmoid` (Chebyshev on `[-1, 1]`, degree 31: 5 levels) | `L - 7` |
//! | `A V`, the causal mask on the value side (`L - 1`) | `L - 8` |
//! | `attn_sub_norm` (statistic: 2 levels, bootstrapped), refreshed | `L` |
//! | `o_proj`; residual (one constant product aligns the scales) | `L - 1` |
//! | `post_attention_layernorm`, refreshed | `L` |
//! | gate, up; `act(gate)` (affine 1 + degree 31: 6 levels); `* up` | `L - 7` |
//! | `ffn_sub_norm`, refreshed | `L` |
//! | `down_proj`; residual | `L - 1` |
//!
//! Bootstraps per layer: four statistics (one ciphertext each) and the four normalized
//! activations (F3 of the cost model: `|y| <= sqrt(d) max|gamma|`, bounded by construction;
//! calibration tightens the bound), two real columns per bootstrap (`x + iy`). With `L = 10` the
//! attention path needs 8 levels and the FFN 7.
//!
//! Every polynomial's interval comes from a [`LayerPlan`], calibrated on plaintext reference
//! traces ([`calibrate`]).

use crate::attention::causal_sigmoid_attention;
use crate::column::{ColumnMatrix, rope, ternary_linear};
use crate::norm::{NormPlan, rms_norm};
use alloc::vec::Vec;
use ensi_bitnet::config::{Activation, ModelConfig};
use ensi_bitnet::forward::LayerTrace;
use ensi_bitnet::model::Layer;
use ensi_bitnet::ternary::TernaryMatrix;
use ensi_ckks::{BootstrapOptions, Bootstrapper, ChebyshevPoly, Ciphertext, CkksError, Evaluator};

/// A closed interval `[lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// The affine map `u = alpha x + beta` of `[lo, hi]` onto `[-1, 1]`.
    pub fn affine(&self) -> (f64, f64) {
        let w = self.hi - self.lo;
        (2.0 / w, -(self.hi + self.lo) / w)
    }

    /// The smallest interval holding this one and `x`.
    pub fn including(self, x: f64) -> Self {
        Self {
            lo: self.lo.min(x),
            hi: self.hi.max(x),
        }
    }

    fn of(values: impl Iterator<Item = f64>) -> Self {
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        Self { lo, hi }
    }

    fn widened(self, margin: f64) -> Self {
        let w = (self.hi - self.lo).max(1e-6) * margin;
        Self {
            lo: self.lo - w,
            hi: self.hi + w,
        }
    }
}

/// Everything the encrypted layer needs to know in advance: polynomial intervals and degrees,
/// and bounds for the bootstraps.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerPlan {
    /// The four norms, in order: input, attention sub-norm, post-attention, FFN sub-norm.
    pub norms: [NormPlan; 4],
    /// Bounds on the four normalized activations (for their bootstraps).
    pub norm_bounds: [f64; 4],
    /// Bounds on the four norms' inputs divided by their RMS, `|x_c| / rms(x)`, before the
    /// gain (at most `sqrt(d)` by construction; the column-block layout bootstraps these).
    pub unit_bounds: [f64; 4],
    /// The interval of the attention scores (`q . k / sqrt(d)`, every pair).
    pub scores: Interval,
    /// Degree of the sigmoid polynomial.
    pub sigmoid_degree: usize,
    /// The interval of the FFN gate.
    pub gate: Interval,
    /// Degree of the activation polynomial.
    pub act_degree: usize,
}

/// The plan of one layer from the plaintext traces of sample prompts: the interval of each
/// polynomial's input over every trace, widened by `margin` (a fraction of its width, or of
/// its ends for the norm statistics).
pub fn calibrate(
    traces: &[&LayerTrace<f64>],
    cfg: &ModelConfig,
    margin: f64,
    sigmoid_degree: usize,
    act_degree: usize,
) -> LayerPlan {
    let eps = cfg.rms_norm_eps;
    let stat = |pick: fn(&LayerTrace<f64>) -> &ensi_bitnet::Matrix<f64>| {
        let iv = Interval::of(traces.iter().flat_map(|t| {
            let m = pick(t);
            (0..m.rows()).map(move |r| {
                let row = m.row(r);
                row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64 + eps
            })
        }));
        NormPlan {
            lo: iv.lo / (1.0 + 2.0 * margin),
            hi: iv.hi * (1.0 + 2.0 * margin),
            degree: 31,
        }
    };
    let bound = |pick: fn(&LayerTrace<f64>) -> &ensi_bitnet::Matrix<f64>| {
        traces
            .iter()
            .flat_map(|t| pick(t).as_slice().iter().map(|v| v.abs()))
            .fold(0.0f64, f64::max)
            * (1.0 + margin)
    };
    let unit = |pick: fn(&LayerTrace<f64>) -> &ensi_bitnet::Matrix<f64>| {
        let mut worst = 0.0f64;
        let mut width = 1usize;
        for t in traces {
            let m = pick(t);
            width = m.cols();
            for r in 0..m.rows() {
                let row = m.row(r);
                let rms =
                    libm::sqrt(row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64 + eps);
                worst = row.iter().fold(worst, |w, v| w.max(v.abs() / rms));
            }
        }
        (worst * (1.0 + margin)).min(libm::sqrt(width as f64))
    };
    let scores = Interval::of(
        traces
            .iter()
            .flat_map(|t| t.scores.iter().flat_map(|s| s.as_slice().iter().copied()))
            .chain(core::iter::once(0.0)),
    )
    .widened(margin);
    let gate = Interval::of(
        traces
            .iter()
            .flat_map(|t| t.gate.as_slice().iter().copied()),
    )
    .widened(margin);
    LayerPlan {
        norms: [
            stat(|t| &t.input),
            stat(|t| &t.attn_output),
            stat(|t| &t.attn_residual),
            stat(|t| &t.ffn_act),
        ],
        norm_bounds: [
            bound(|t| &t.attn_norm),
            bound(|t| &t.attn_sub_norm),
            bound(|t| &t.ffn_norm),
            bound(|t| &t.ffn_sub_norm),
        ],
        unit_bounds: [
            unit(|t| &t.input),
            unit(|t| &t.attn_output),
            unit(|t| &t.attn_residual),
            unit(|t| &t.ffn_act),
        ],
        scores,
        sigmoid_degree,
        gate,
        act_degree,
    }
}

/// `sigmoid(s - ln n)` as a polynomial of `u = alpha s + beta` on `[-1, 1]`.
pub(crate) fn sigmoid_in_u(scores: Interval, bias: f64, degree: usize) -> ChebyshevPoly {
    let (lo, hi) = (scores.lo, scores.hi);
    ChebyshevPoly::interpolate(
        move |u| {
            let s = (u * (hi - lo) + (hi + lo)) / 2.0;
            1.0 / (1.0 + libm::exp(-(s + bias)))
        },
        -1.0,
        1.0,
        degree,
    )
}

/// The FFN activation (ReLU^2 or SiLU) on the calibrated interval.
pub(crate) fn activation_poly(act: Activation, gate: Interval, degree: usize) -> ChebyshevPoly {
    let f = move |x: f64| match act {
        Activation::ReluSquared => {
            let r = x.max(0.0);
            r * r
        }
        Activation::Silu => x / (1.0 + libm::exp(-x)),
    };
    ChebyshevPoly::interpolate(f, gate.lo, gate.hi, degree)
}

/// The largest scale at which values bounded by `bound` can enter a bootstrap of `bts` as one
/// half of a pair (`sqrt 2` bound), capped at the default scale.
fn refresh_scale(bts: &Bootstrapper, bound: f64) -> f64 {
    crate::block_layer::refresh_scale(bts, bound * core::f64::consts::SQRT_2)
}

/// Bootstraps every column of `y` (values bounded by `bound`), two real columns per bootstrap.
pub fn refresh(
    bts: &Bootstrapper,
    y: &ColumnMatrix,
    bound: f64,
) -> Result<ColumnMatrix, CkksError> {
    let options = BootstrapOptions {
        input_bound: bound,
        gain: None,
    };
    let cols = y.columns();
    let mut out: Vec<Ciphertext> = Vec::with_capacity(cols.len());
    for pair in cols.chunks(2) {
        match pair {
            [a, b] => {
                let (x, z) = bts.bootstrap_pair(a, b, &options)?;
                out.push(x);
                out.push(z);
            }
            [a] => out.push(bts.bootstrap_with(a, &options)?),
            _ => {}
        }
    }
    ColumnMatrix::from_columns(out, y.tokens())
}

/// `x + y` where `y` is at another scale: `y` is brought to `x`'s scale by one constant
/// product (one level), then both are added at the lower level.
pub fn residual_add(
    eval: &Evaluator,
    x: &ColumnMatrix,
    y: &ColumnMatrix,
) -> Result<ColumnMatrix, CkksError> {
    let ctx = eval.context();
    let mut out = Vec::with_capacity(x.cols());
    for (a, b) in x.columns().iter().zip(y.columns()) {
        let q_l = ctx.params().q()[b.level()] as f64;
        let mut b =
            eval.rescale(&eval.mul_const_with_scale(b, 1.0, a.scale() * q_l / b.scale())?)?;
        eval.match_scale(&mut b, a.scale())?;
        let level = a.level().min(b.level());
        let mut s = eval.drop_to_level(a, level)?;
        eval.add_assign(&mut s, &eval.drop_to_level(&b, level)?)?;
        out.push(s);
    }
    ColumnMatrix::from_columns(out, x.tokens())
}

fn ternary(w: &ensi_bitnet::Linear) -> Result<&TernaryMatrix, CkksError> {
    w.as_ternary().ok_or(CkksError::InvalidArgument {
        reason: "encrypted layers need ternary (packed or ternarized) projections",
    })
}

/// A normalization followed by the refresh of its output.
fn norm_refreshed(
    bts: &Bootstrapper,
    x: &ColumnMatrix,
    gamma: &[f32],
    eps: f64,
    plan: &NormPlan,
    bound: f64,
) -> Result<ColumnMatrix, CkksError> {
    let y = rms_norm(bts, x, gamma, eps, plan, refresh_scale(bts, bound))?;
    refresh(bts, &y, bound)
}

/// One decoder layer on `x` (the residual stream, column layout, at least two levels).
pub fn decoder_layer(
    bts: &Bootstrapper,
    x: &ColumnMatrix,
    w: &Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
) -> Result<ColumnMatrix, CkksError> {
    decoder_layer_logged(bts, x, w, cfg, plan, &mut |_, _| {})
}

/// The steps of a layer whose levels [`layer_level_plan`] predicts and
/// [`decoder_layer_logged`] reports, in order.
pub const LAYER_STEPS: [&str; 13] = [
    "input_layernorm (refreshed)",
    "q, k, v",
    "rope",
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

/// The level of every step of [`LAYER_STEPS`] for an input at `x_level`, predicted from the
/// bootstrapper's output level and the polynomials' depths (written down by the code, checked
/// against a run by a test).
pub fn layer_level_plan(
    bts: &Bootstrapper,
    x_level: usize,
    cfg: &ModelConfig,
    plan: &LayerPlan,
) -> Result<Vec<(&'static str, usize)>, CkksError> {
    let l = bts.output_level();
    let bias = -1.0; // the bias does not change the depth
    let sig = sigmoid_in_u(plan.scores, bias, plan.sigmoid_degree);
    let act = activation_poly(cfg.hidden_act, plan.gate, plan.act_degree);
    let scores = l.checked_sub(2).ok_or(CkksError::NoLevelLeft)?;
    let weights = scores - sig.depth_at(scores)?;
    let attn = weights.min(l - 1) - 1;
    let residual1 = x_level.min(l - 1);
    let activation = l - act.depth_at(l)?;
    let levels = [
        l,
        l,
        l - 1,
        weights,
        attn,
        l,
        residual1,
        l,
        l,
        activation,
        activation - 1,
        l,
        residual1.min(l - 1),
    ];
    Ok(LAYER_STEPS.iter().copied().zip(levels).collect())
}

/// [`decoder_layer`], telling `log` the level of every step of [`LAYER_STEPS`].
pub fn decoder_layer_logged(
    bts: &Bootstrapper,
    x: &ColumnMatrix,
    w: &Layer,
    cfg: &ModelConfig,
    plan: &LayerPlan,
    log: &mut dyn FnMut(&'static str, usize),
) -> Result<ColumnMatrix, CkksError> {
    let eval = bts.evaluator();
    let delta = eval.context().params().default_scale();
    let eps = cfg.rms_norm_eps;
    let n = x.tokens();
    let d = cfg.head_dim;
    // Attention.
    let y1 = norm_refreshed(
        bts,
        x,
        &w.input_layernorm,
        eps,
        &plan.norms[0],
        plan.norm_bounds[0],
    )?;
    log(LAYER_STEPS[0], y1.level());
    let q = ternary_linear(eval, &y1, ternary(&w.q_proj)?)?;
    let k = ternary_linear(eval, &y1, ternary(&w.k_proj)?)?;
    let v = ternary_linear(eval, &y1, ternary(&w.v_proj)?)?;
    log(LAYER_STEPS[1], q.level().min(k.level()).min(v.level()));
    let (alpha, beta) = plan.scores.affine();
    let q = rope(
        eval,
        &q,
        d,
        cfg.rope_theta,
        alpha / libm::sqrt(d as f64),
        delta,
    )?;
    let k = rope(eval, &k, d, cfg.rope_theta, 1.0, delta)?;
    log(LAYER_STEPS[2], q.level());
    let bias = -libm::log(n.max(1) as f64);
    let sigmoid = sigmoid_in_u(plan.scores, bias, plan.sigmoid_degree);
    let o = causal_sigmoid_attention(eval, &q, &k, &v, d, &sigmoid, beta, delta)?;
    // The weights' level: the output's plus the product's.
    log(LAYER_STEPS[3], o.level() + 1);
    log(LAYER_STEPS[4], o.level());
    let ya = norm_refreshed(
        bts,
        &o,
        &w.attn_sub_norm,
        eps,
        &plan.norms[1],
        plan.norm_bounds[1],
    )?;
    log(LAYER_STEPS[5], ya.level());
    let o = ternary_linear(eval, &ya, ternary(&w.o_proj)?)?;
    let x1 = residual_add(eval, x, &o)?;
    log(LAYER_STEPS[6], x1.level());
    // FFN.
    let y2 = norm_refreshed(
        bts,
        &x1,
        &w.post_attention_layernorm,
        eps,
        &plan.norms[2],
        plan.norm_bounds[2],
    )?;
    log(LAYER_STEPS[7], y2.level());
    let gate = ternary_linear(eval, &y2, ternary(&w.gate_proj)?)?;
    let up = ternary_linear(eval, &y2, ternary(&w.up_proj)?)?;
    log(LAYER_STEPS[8], gate.level().min(up.level()));
    let act = activation_poly(cfg.hidden_act, plan.gate, plan.act_degree);
    let mut h = Vec::with_capacity(gate.cols());
    for (g, u) in gate.columns().iter().zip(up.columns()) {
        let a = eval.evaluate_chebyshev(g, &act, delta)?.0;
        if h.is_empty() {
            log(LAYER_STEPS[9], a.level());
        }
        let u = eval.drop_to_level(u, a.level())?;
        h.push(eval.rescale(&eval.mul_relin(&a, &u)?)?);
    }
    let h = ColumnMatrix::from_columns(h, n)?;
    log(LAYER_STEPS[10], h.level());
    let yf = norm_refreshed(
        bts,
        &h,
        &w.ffn_sub_norm,
        eps,
        &plan.norms[3],
        plan.norm_bounds[3],
    )?;
    log(LAYER_STEPS[11], yf.level());
    let down = ternary_linear(eval, &yf, ternary(&w.down_proj)?)?;
    let out = residual_add(eval, &x1, &down)?;
    log(LAYER_STEPS[12], out.level());
    Ok(out)
}

/// The plans of every layer and of the final norm.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelPlan {
    /// One plan per decoder layer.
    pub layers: Vec<LayerPlan>,
    /// The final norm's statistic interval.
    pub final_norm: NormPlan,
}

/// Calibrates every layer and the final norm on the reference traces of sample prompts.
pub fn calibrate_model(
    traces: &[&ensi_bitnet::Trace<f64>],
    cfg: &ModelConfig,
    margin: f64,
    sigmoid_degree: usize,
    act_degree: usize,
) -> ModelPlan {
    let layers = (0..cfg.num_hidden_layers)
        .map(|l| {
            let per: Vec<&LayerTrace<f64>> = traces.iter().map(|t| &t.layers[l]).collect();
            calibrate(&per, cfg, margin, sigmoid_degree, act_degree)
        })
        .collect();
    let eps = cfg.rms_norm_eps;
    let iv = Interval::of(traces.iter().flat_map(|t| {
        let m = &t.layers[cfg.num_hidden_layers - 1].output;
        (0..m.rows()).map(move |r| {
            let row = m.row(r);
            row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64 + eps
        })
    }));
    ModelPlan {
        layers,
        final_norm: NormPlan {
            lo: iv.lo / (1.0 + 2.0 * margin),
            hi: iv.hi * (1.0 + 2.0 * margin),
            degree: 31,
        },
    }
}

/// Where the encrypted forward pass is, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Decoder layer `index` (0-based) of `count` starts.
    Layer {
        /// The layer.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// A step of the current layer ended, its output at `level` (column-block layout).
    Step {
        /// The step, one of [`crate::block_layer::BLOCK_STEPS`].
        name: &'static str,
        /// The level of its output.
        level: usize,
    },
    /// The final norm starts.
    FinalNorm,
}

/// Every decoder layer and the final norm on the encrypted embeddings `x` (column layout);
/// returns the encrypted final hidden states (`tokens x hidden`). `progress` is told where the
/// pass is.
pub fn encrypted_forward(
    bts: &Bootstrapper,
    model: &ensi_bitnet::model::Model,
    x: &ColumnMatrix,
    plan: &ModelPlan,
    progress: &mut dyn FnMut(Progress),
) -> Result<ColumnMatrix, CkksError> {
    let cfg = model.config();
    if plan.layers.len() != model.layers().len() {
        return Err(CkksError::InvalidArgument {
            reason: "one layer plan per decoder layer",
        });
    }
    let mut x = x.clone();
    let count = model.layers().len();
    for (index, (w, p)) in model.layers().iter().zip(&plan.layers).enumerate() {
        progress(Progress::Layer { index, count });
        x = decoder_layer(bts, &x, w, cfg, p)?;
    }
    progress(Progress::FinalNorm);
    let delta = bts.evaluator().context().params().default_scale();
    rms_norm(
        bts,
        &x,
        model.norm(),
        cfg.rms_norm_eps,
        &plan.final_norm,
        delta,
    )
}

/// The LM head on the server: `logits_t = sum_c W[t][c] h_c` with plaintext weights
/// (`vocab x hidden`, row-major), one constant product per weight and one rescale per token of
/// the vocabulary; the result has one column per vocabulary entry.
pub fn lm_head(
    eval: &Evaluator,
    hidden: &ColumnMatrix,
    weights: &[f32],
    vocab: usize,
) -> Result<ColumnMatrix, CkksError> {
    let d = hidden.cols();
    if weights.len() != vocab * d {
        return Err(CkksError::InvalidArgument {
            reason: "the LM head must be vocab x hidden",
        });
    }
    let ctx = eval.context();
    let level = hidden.level();
    let q_l = ctx.params().q()[level] as f64;
    let mut out = Vec::with_capacity(vocab);
    for t in 0..vocab {
        let mut acc: Option<Ciphertext> = None;
        for (c, h) in hidden.columns().iter().enumerate() {
            let w = f64::from(weights[t * d + c]);
            if w == 0.0 {
                continue;
            }
            let term = eval.mul_const_with_scale(h, w, q_l)?;
            match &mut acc {
                None => acc = Some(term),
                Some(a) => eval.add_assign(a, &term)?,
            }
        }
        let acc = match acc {
            Some(a) => a,
            None => eval.mul_const_with_scale(&hidden.columns()[0], 0.0, q_l)?,
        };
        let mut logit = eval.rescale(&acc)?;
        eval.match_scale(&mut logit, hidden.scale())?;
        out.push(logit);
    }
    ColumnMatrix::from_columns(out, hidden.tokens())
}

/// The client's embedding of `tokens` (`tokens x hidden`, row-major) from the model's table.
pub fn embed(model: &ensi_bitnet::model::Model, tokens: &[u32]) -> Option<Vec<f64>> {
    let mut out = Vec::with_capacity(tokens.len() * model.config().hidden_size);
    for &t in tokens {
        out.extend(model.embedding(t)?.iter().map(|&v| f64::from(v)));
    }
    Some(out)
}
