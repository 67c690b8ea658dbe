//! The cost model of a projection and the planner that picks its kernel.
//!
//! For each kernel the operations a product performs are predicted **exactly** (the same
//! counts the evaluator's [`OpCount`] records), from the shape alone, the ternary weights'
//! non-zeros, and for the column-block kernel the baby-step giant-step split the library itself
//! chooses ([`ensi_ckks::ReplicatedMatrix::shape`]). Times come from per-operation costs
//! measured on this machine ([`OpCosts`], read from `ensi bench ckks` at the layers' level),
//! so the planner knows the machine it runs on.
//!
//! The kernels, for `y = W x` with `W` of `rows x cols` and `n` tokens (`n_pad` rounded up):
//!
//! * [`Kernel::BlockBsgs`]: the column-block layout ([`crate::block::block_linear_chunked`]):
//!   per input chunk, its baby rotations (hoisted, shared by every output chunk); per pair of
//!   chunks, one encoded diagonal and one plaintext product per diagonal, giant-step
//!   rotations, a rotate-and-add per halving for a block wider than tall; each output chunk
//!   summed over the input chunks and rescaled once. Ternary or dense weights cost the same here.
//! * [`Kernel::ColumnSignedSums`]: ENSI's column layout (one ciphertext per column, tokens in
//!   its slots): an output column is a signed sum of input columns, one addition per non-zero
//!   weight after the first.
//! * [`Kernel::ColumnNexus`]: the same layout with NEXUS's plaintext-ciphertext product
//!   (`zju-abclab/NEXUS`, `matrix_mul.cpp`): one constant product and one addition per weight,
//!   one rescale per output column.
//!
//! The coefficient-encoded kernel ([`crate::coeff_kernel`]) is not a product alone: it replaces
//! "refresh, then product" by "product, then refresh", so it is priced against the slot plan
//! **per group of projections that share an input** ([`plan_group`]): the slot plan's refresh
//! bootstraps and block products against the kernel's SlotsToCoeffs, integer products,
//! level-0 key switches, coefficient bootstraps and reassembly rotations
//! ([`crate::coeff_kernel::coeff_linear_counts`], exact), at [`CoeffCosts`].

use crate::block::{block_matrix, chunk_cols, chunks};
use alloc::vec::Vec;
use ensi_bitnet::config::ModelConfig;
use ensi_bitnet::ternary::TernaryMatrix;
use ensi_ckks::{CkksError, OpCount};

/// Seconds per operation at the level the projections run at, on this machine.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpCosts {
    /// Ciphertext addition or subtraction.
    pub add: f64,
    /// Ciphertext-plaintext product (no rescale).
    pub plain_mul: f64,
    /// Encoding one full-slot plaintext.
    pub encode: f64,
    /// Product by a real constant (no rescale).
    pub const_mul: f64,
    /// Rescale.
    pub rescale: f64,
    /// A rotation with its own decomposition.
    pub rotate: f64,
    /// One rotation of a hoisted batch, without the shared decomposition.
    pub hoisted_rotate: f64,
    /// The decomposition a hoisted batch shares (once per batch).
    pub hoist_precompute: f64,
    /// The same operations run side by side, one per worker thread (the column kernels'
    /// regime: their output columns run in parallel). Zero where not measured.
    pub concurrent: ConcurrentCosts,
}

/// Seconds per operation when every worker thread runs its own operation at the same time:
/// a round's wall time divided by the number of operations (`concurrent_us` in the JSON of
/// `ensi bench ckks`). Small operations (an addition, a constant product) are bound by
/// memory and scale poorly over limbs, so for many independent ones this is below the
/// single-operation latency of [`OpCosts`]. Zero means not measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConcurrentCosts {
    /// Ciphertext addition in place.
    pub add: f64,
    /// Ciphertext-plaintext product (no rescale).
    pub plain_mul: f64,
    /// Encoding one full-slot plaintext.
    pub encode: f64,
    /// Product by a real constant (no rescale).
    pub const_mul: f64,
    /// Rescale.
    pub rescale: f64,
    /// A rotation with its own decomposition.
    pub rotate: f64,
    /// One rotation of a hoisted batch, without the shared decomposition.
    pub hoisted_rotate: f64,
    /// A constant product added at once into an accumulator, both operations (the NEXUS
    /// kernel's step: the product is still in cache when it is added).
    pub const_mul_then_add: f64,
}

impl OpCosts {
    /// The predicted time of `ops` with `batches` hoisted batches.
    pub fn time(&self, ops: &OpCount, batches: usize) -> f64 {
        batches as f64 * self.hoist_precompute + self.time_of_ops(ops)
    }

    /// The costs of a kernel that runs independent operations side by side on every worker
    /// (the column kernels): the [`ConcurrentCosts`] where measured, the latency otherwise.
    pub fn side_by_side(&self) -> OpCosts {
        let pick = |c: f64, latency: f64| if c > 0.0 { c } else { latency };
        let c = &self.concurrent;
        OpCosts {
            add: pick(c.add, self.add),
            plain_mul: pick(c.plain_mul, self.plain_mul),
            encode: pick(c.encode, self.encode),
            const_mul: pick(c.const_mul, self.const_mul),
            rescale: pick(c.rescale, self.rescale),
            rotate: pick(c.rotate, self.rotate),
            hoisted_rotate: pick(c.hoisted_rotate, self.hoisted_rotate),
            ..*self
        }
    }

    fn time_of_ops(&self, ops: &OpCount) -> f64 {
        ops.add as f64 * self.add
            + ops.plain_mul as f64 * self.plain_mul
            + ops.encode as f64 * self.encode
            + ops.const_mul as f64 * self.const_mul
            + ops.rescale as f64 * self.rescale
            + ops.rotate as f64 * self.rotate
            + ops.hoisted_rotate as f64 * self.hoisted_rotate
    }
}

/// A kernel of a projection (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Column-block layout, streamed BSGS over the diagonals.
    BlockBsgs,
    /// Column layout, signed sums (ternary weights only).
    ColumnSignedSums,
    /// Column layout, NEXUS plaintext-ciphertext product.
    ColumnNexus,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 3] = [
        Kernel::BlockBsgs,
        Kernel::ColumnSignedSums,
        Kernel::ColumnNexus,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::BlockBsgs => "block-bsgs",
            Kernel::ColumnSignedSums => "column-signed-sums",
            Kernel::ColumnNexus => "column-nexus",
        }
    }
}

/// The operations of [`crate::block::block_linear_chunked`] for a `rows x cols` matrix and
/// `n_pad` tokens on `slots` slots.
pub fn block_ops(
    slots: usize,
    rows: usize,
    cols: usize,
    n_pad: usize,
) -> Result<OpCount, CkksError> {
    let chunk = chunk_cols(slots, n_pad);
    let in_chunks = chunks(cols, chunk);
    let out_chunks = chunks(rows, chunk);
    let mut ops = OpCount::default();
    for (_, w) in &in_chunks {
        // One hoisted batch per input chunk: the union of its products' baby steps.
        let mut steps: Vec<usize> = Vec::new();
        for (_, h) in &out_chunks {
            let m = block_matrix(slots, *h, *w, n_pad, |_, _, _| 0.0)?;
            // A wide block folds its partial sums: one rotate-and-add per halving.
            let folds = m.sum_steps().len();
            ops.rotate += folds;
            ops.add += folds;
            let shape = m.shape()?;
            let n1 = shape.baby_step();
            let indices = shape.indices();
            steps.extend(indices.iter().map(|k| k % n1));
            let mut giants: Vec<usize> = indices.iter().map(|k| k / n1).collect();
            giants.sort_unstable();
            giants.dedup();
            ops.plain_mul += indices.len();
            ops.encode += indices.len();
            ops.rotate += giants.iter().filter(|&&i| i != 0).count();
            // The giant steps summed.
            ops.add += giants.len() - 1;
        }
        steps.sort_unstable();
        steps.dedup();
        ops.hoisted_rotate += steps.iter().filter(|&&j| j != 0).count();
    }
    // Each output chunk summed over the input chunks, then rescaled once.
    ops.add += out_chunks.len() * (in_chunks.len() - 1);
    ops.rescale += out_chunks.len();
    Ok(ops)
}

/// The operations of the column layout's signed sums for the given output rows of `w`.
pub fn column_signed_sum_ops(w: &TernaryMatrix, rows: &[usize]) -> OpCount {
    let mut ops = OpCount::default();
    for &r in rows {
        let (plus, minus) = w.signed_columns(r);
        match (plus.len(), minus.len()) {
            (0, 0) => ops.const_mul += 1, // an encryption of zero
            // The first term is copied; a negative first term is a negation.
            (0, m) => ops.add += m,
            (p, m) => ops.add += p - 1 + m,
        }
    }
    ops
}

/// The operations of the NEXUS product for `rows` output columns of a `cols`-wide matrix.
pub fn column_nexus_ops(rows: usize, cols: usize) -> OpCount {
    let mut ops = OpCount::default();
    ops.const_mul = rows * cols;
    ops.add = rows * cols.saturating_sub(1);
    ops.rescale = rows;
    ops
}

/// Seconds per step of the coefficient-encoded kernel ([`crate::coeff_kernel`]) on this
/// machine, each as its wall time when the kernel runs it (the products and the packing steps
/// run side by side over the leaves, so theirs are a round's wall time per operation; `ensi
/// bench coeff` measures them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CoeffCosts {
    /// One SlotsToCoeffs of a full-slot input chunk, from the StC level budget.
    pub slots_to_coeffs: f64,
    /// One integer-polynomial product at level 0, its weight polynomial built on the fly.
    pub integer_product: f64,
    /// One packing step at level 0: a monomial product, an addition and a subtraction, an
    /// automorphism with its level-0 key switch, an addition.
    pub pack_step: f64,
    /// ModRaise, CoeffsToSlots and EvalMod of one packed product.
    pub coeff_bootstrap: f64,
    /// A rotation at the coefficient bootstrap's output level (the reassembly).
    pub rotate: f64,
}

impl CoeffCosts {
    /// The predicted time of [`crate::coeff_kernel::coeff_linear`] from its counts
    /// `[slots_to_coeffs, products, key_switches, bootstraps, rotations]`.
    pub fn time(&self, counts: &[usize; 5]) -> f64 {
        counts[0] as f64 * self.slots_to_coeffs
            + counts[1] as f64 * self.integer_product
            + counts[2] as f64 * self.pack_step
            + counts[3] as f64 * self.coeff_bootstrap
            + counts[4] as f64 * self.rotate
    }
}

/// A group of projections that share one input (`cols` columns): the slot plan's time (the
/// refresh of the input, one bootstrap per pair of chunks, then every block product) and the
/// coefficient kernel's (see the module documentation), and the kernel's exact counts.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupPrediction {
    /// The slot plan: refresh bootstraps and block products.
    pub slot_s: f64,
    /// The coefficient kernel.
    pub coeff_s: f64,
    /// The kernel's `[slots_to_coeffs, products, key_switches, bootstraps, rotations]`.
    pub coeff_counts: [usize; 5],
}

/// Prices a group of projections of `rows` (each) that read one `cols`-wide input of `n_pad`
/// tokens at ring degree `n`, both ways (see [`GroupPrediction`]). The norm before the group
/// is not included: both plans normalise the input (the kernel needs its statistic at a level
/// that leaves the SlotsToCoeffs its budget, which [`crate::block_layer`]'s level plan does
/// not always give; see `bench/LAYERS.md`).
pub fn plan_group(
    costs: &OpCosts,
    coeff: &CoeffCosts,
    bootstrap_s: f64,
    n: usize,
    cols: usize,
    rows: &[usize],
    n_pad: usize,
) -> Result<GroupPrediction, CkksError> {
    let slots = n / 2;
    let batches = chunks(cols, chunk_cols(slots, n_pad)).len();
    let refresh = crate::block_layer::refresh_bootstraps(batches) as f64 * bootstrap_s;
    let mut slot_s = refresh;
    for &r in rows {
        slot_s += costs.time(&block_ops(slots, r, cols, n_pad)?, batches);
    }
    let coeff_counts = crate::coeff_kernel::coeff_linear_counts(n, cols, rows, n_pad)?;
    Ok(GroupPrediction {
        slot_s,
        coeff_s: coeff.time(&coeff_counts),
        coeff_counts,
    })
}

/// A kernel's predicted operations and time for one projection.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The kernel.
    pub kernel: Kernel,
    /// Its operations.
    pub ops: OpCount,
    /// Its time under the costs given.
    pub seconds: f64,
    /// Levels it consumes.
    pub levels: usize,
}

/// Every kernel's prediction for `y = W x` with `n` tokens, fastest first: the planner's
/// choice is the first.
pub fn plan_projection(
    costs: &OpCosts,
    slots: usize,
    w: &TernaryMatrix,
    tokens: usize,
) -> Result<Vec<Prediction>, CkksError> {
    let (rows, cols) = (w.rows(), w.cols());
    let all: Vec<usize> = (0..rows).collect();
    let mut out = Vec::with_capacity(3);
    for kernel in Kernel::ALL {
        let (ops, levels) = match kernel {
            Kernel::BlockBsgs => (block_ops(slots, rows, cols, tokens.next_power_of_two())?, 1),
            Kernel::ColumnSignedSums => (column_signed_sum_ops(w, &all), 0),
            Kernel::ColumnNexus => (column_nexus_ops(rows, cols), 1),
        };
        let side = costs.side_by_side();
        // NEXUS adds each constant product at once: priced as pairs where that was measured.
        if kernel == Kernel::ColumnNexus && costs.concurrent.const_mul_then_add > 0.0 {
            let pairs = ops.const_mul.min(ops.add);
            let mut rest = ops;
            rest.const_mul -= pairs;
            rest.add -= pairs;
            out.push(Prediction {
                kernel,
                seconds: pairs as f64 * costs.concurrent.const_mul_then_add + side.time(&rest, 0),
                ops,
                levels,
            });
            continue;
        }
        // One hoisted batch per input chunk (its baby steps, shared by every output chunk).
        // The column kernels run their output columns side by side on every worker.
        let (batches, costs) = if kernel == Kernel::BlockBsgs {
            let c = chunks(cols, chunk_cols(slots, tokens.next_power_of_two())).len();
            (c, *costs)
        } else {
            (0, side)
        };
        out.push(Prediction {
            kernel,
            seconds: costs.time(&ops, batches),
            ops,
            levels,
        });
    }
    out.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    Ok(out)
}

/// The projections of a decoder layer in the column-block layout: `(name, rows, cols)`, in
/// the order the layer runs them (the query, key and value projections in the head layout).
pub fn layer_projections(
    cfg: &ModelConfig,
) -> Result<Vec<(&'static str, usize, usize)>, CkksError> {
    let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
    let qd = crate::block_layer::head_layout_cols(cfg)?;
    Ok(alloc::vec![
        ("q_proj", qd, d),
        ("k_proj", qd, d),
        ("v_proj", qd, d),
        ("o_proj", d, qd),
        ("gate_proj", f, d),
        ("up_proj", f, d),
        ("down_proj", d, f),
    ])
}

/// A decoder layer's predicted time (see [`predict_layer`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerPrediction {
    /// Each projection's name, operations (exact) and predicted seconds.
    pub projections: Vec<(&'static str, OpCount, f64)>,
    /// The projections' seconds.
    pub projections_s: f64,
    /// Bootstraps of the layer.
    pub bootstraps: usize,
    /// Their seconds.
    pub bootstrap_s: f64,
    /// The prediction: projections and bootstraps.
    pub total_s: f64,
}

/// The time of one column-block layer on `n_pad` tokens: every projection's exact operations
/// ([`block_ops`], chunked as the layer chunks them) at the per-operation `costs`, plus
/// `bootstraps` (from [`crate::block_layer::block_level_plan_at`]: one per pair of chunks per
/// refresh, one per bootstrapped statistic) at `bootstrap_s` each. Attention, the norms'
/// arithmetic and the activations are not modelled: they are 3-12% of the measured layers
/// (`bench/LAYERS.md`), so the prediction runs low by about that much.
pub fn predict_layer(
    costs: &OpCosts,
    bootstrap_s: f64,
    cfg: &ModelConfig,
    n_pad: usize,
    slots: usize,
    bootstraps: usize,
) -> Result<LayerPrediction, CkksError> {
    let mut projections = Vec::new();
    let mut projections_s = 0.0;
    for (name, rows, cols) in layer_projections(cfg)? {
        let ops = block_ops(slots, rows, cols, n_pad)?;
        // One hoisted batch per input chunk.
        let batches = chunks(cols, chunk_cols(slots, n_pad)).len();
        let t = costs.time(&ops, batches);
        projections_s += t;
        projections.push((name, ops, t));
    }
    let boot = bootstraps as f64 * bootstrap_s;
    Ok(LayerPrediction {
        projections,
        projections_s,
        bootstraps,
        bootstrap_s: boot,
        total_s: projections_s + boot,
    })
}

/// A coefficient-kernel layer's predicted time ([`predict_coeff_layer`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CoeffLayerPrediction {
    /// Each group of projections that share an input (`q, k, v`; `o`; `gate, up`; `down`):
    /// its name, the kernel's exact counts `[slots_to_coeffs, products, key_switches,
    /// bootstraps, rotations]` and predicted seconds.
    pub groups: Vec<(&'static str, [usize; 5], f64)>,
    /// The groups' seconds.
    pub projections_s: f64,
    /// Every bootstrap of the layer: the kernels' and the two sub-norm statistics'.
    pub bootstraps: usize,
    /// The statistics' bootstraps' seconds (the kernels' are in the groups).
    pub statistic_s: f64,
    /// The prediction: groups and statistics.
    pub total_s: f64,
}

/// The time of one layer on the coefficient kernel ([`crate::coeff_layer`]) on `n_pad` tokens
/// at ring degree `n`: every group's exact kernel counts at `coeff`'s step costs, plus the two
/// sub-norm statistics' bootstraps at `bootstrap_s` each. As in [`predict_layer`], the
/// attention, the norms' arithmetic and the activations are not modelled.
pub fn predict_coeff_layer(
    coeff: &CoeffCosts,
    bootstrap_s: f64,
    cfg: &ModelConfig,
    n: usize,
    n_pad: usize,
) -> Result<CoeffLayerPrediction, CkksError> {
    let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
    let hl = crate::block_layer::heads(cfg)?;
    let qd = hl.cols();
    // The head layout's padding heads and dimensions are zero rows of q, k and v.
    let padding = |_: usize, rho: usize| hl.split(rho).is_none();
    let none = |_: usize, _: usize| false;
    let mut groups = Vec::new();
    let (mut projections_s, mut bootstraps) = (0.0, 2);
    type ZeroRows<'a> = &'a dyn Fn(usize, usize) -> bool;
    let list: [(&str, usize, &[usize], ZeroRows<'_>); 4] = [
        ("q, k, v", d, &[qd, qd, qd], &padding),
        ("o", qd, &[d], &none),
        ("gate, up", d, &[f, f], &none),
        ("down", f, &[d], &none),
    ];
    for (name, cols, rows, zero) in list {
        let counts = crate::coeff_kernel::coeff_linear_counts_with(n, cols, rows, n_pad, zero)?;
        let t = coeff.time(&counts);
        projections_s += t;
        bootstraps += counts[3];
        groups.push((name, counts, t));
    }
    let statistic_s = 2.0 * bootstrap_s;
    Ok(CoeffLayerPrediction {
        groups,
        projections_s,
        bootstraps,
        statistic_s,
        total_s: projections_s + statistic_s,
    })
}

/// The two plans of a decoder layer: the slot plan ([`crate::block_layer`]) and the
/// coefficient-kernel plan ([`crate::coeff_layer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKernel {
    /// Refresh, then a BSGS product in slots.
    Slots,
    /// Every projection on the coefficient kernel, fused with its bootstrap.
    Coeff,
}

impl LayerKernel {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            LayerKernel::Slots => "slots",
            LayerKernel::Coeff => "coeff",
        }
    }

    /// The planner's choice: the faster prediction, where the coefficient plan's level plan
    /// holds (`coeff` is `None` where it does not); the slot plan on a tie.
    pub fn choose(slots: &LayerPrediction, coeff: Option<&CoeffLayerPrediction>) -> Self {
        match coeff {
            Some(c) if c.total_s < slots.total_s => LayerKernel::Coeff,
            _ => LayerKernel::Slots,
        }
    }
}

/// The largest error of a layer's sigmoid polynomial of `degree` on the calibrated score
/// interval (with the bias `-ln tokens`), over 4096 points: the sigmoid is in `[0, 1]`, so this
/// is its absolute error.
pub fn sigmoid_error(plan: &crate::decoder::LayerPlan, tokens: usize, degree: usize) -> f64 {
    let bias = -libm::log(tokens.max(1) as f64);
    let scores = plan.scores.including(0.0);
    let (lo, hi) = (scores.lo, scores.hi);
    crate::decoder::sigmoid_in_u(scores, bias, degree).max_error(
        |u| {
            let s = (u * (hi - lo) + (hi + lo)) / 2.0;
            1.0 / (1.0 + libm::exp(-(s + bias)))
        },
        4096,
    )
}

/// The largest error of a layer's activation polynomial of `degree` on the calibrated gate
/// interval over 4096 points, relative to the activation's largest magnitude there.
pub fn activation_error(cfg: &ModelConfig, plan: &crate::decoder::LayerPlan, degree: usize) -> f64 {
    let act = cfg.hidden_act;
    let f = move |x: f64| match act {
        ensi_bitnet::config::Activation::ReluSquared => {
            let r = x.max(0.0);
            r * r
        }
        ensi_bitnet::config::Activation::Silu => x / (1.0 + libm::exp(-x)),
    };
    let (lo, hi) = (plan.gate.lo, plan.gate.hi);
    let scale = f(lo).abs().max(f(hi).abs()).max(f64::MIN_POSITIVE);
    crate::decoder::activation_poly(act, plan.gate, degree).max_error(f, 4096) / scale
}

/// The largest relative error of a norm's inverse square root of `degree` on its calibrated
/// interval of `mean(x^2) + eps`, over 4096 points. It grows with `hi / lo`: 7e-7 at degree 31
/// for a ratio of 24, 4e-4 for 81 (what attention outputs of 8 and 32 tokens give).
pub fn inv_sqrt_error(norm: &crate::norm::NormPlan, degree: usize) -> f64 {
    let p = crate::norm::NormPlan { degree, ..*norm };
    let poly = p.inv_sqrt();
    let (lo, hi) = (norm.lo, norm.hi);
    (0..=4096)
        .map(|i| {
            let u = -1.0 + 2.0 * i as f64 / 4096.0;
            let f = 1.0 / libm::sqrt((u * (hi - lo) + (hi + lo)) / 2.0);
            libm::fabs(poly.eval(u) - f) / f
        })
        .fold(0.0, f64::max)
}

/// The planner's polynomial degrees for a layer: for the sigmoid, the activation and each of
/// the four norms' inverse square roots, the smallest of `candidates` (ascending) whose error
/// ([`sigmoid_error`], [`activation_error`], [`inv_sqrt_error`]) is at most `target`, among
/// those with which the layer's level plan still holds (`fits`, e.g.
/// [`crate::block_layer::block_level_plan_at`] succeeding); failing the target, the most
/// accurate that fits. Returns the plan with those degrees, or `None` if nothing fits.
pub fn plan_degrees(
    cfg: &ModelConfig,
    plan: &crate::decoder::LayerPlan,
    tokens: usize,
    target: f64,
    candidates: &[usize],
    fits: &dyn Fn(&crate::decoder::LayerPlan) -> bool,
) -> Option<crate::decoder::LayerPlan> {
    let mut out = plan.clone();
    let smallest = *candidates.first()?;
    out.sigmoid_degree = smallest;
    out.act_degree = smallest;
    for norm in &mut out.norms {
        norm.degree = smallest;
    }
    // One polynomial at a time, the others at their choice so far.
    let pick = |current: &crate::decoder::LayerPlan,
                set: &dyn Fn(&mut crate::decoder::LayerPlan, usize),
                error: &dyn Fn(usize) -> f64|
     -> Option<usize> {
        let usable: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&d| {
                let mut p = current.clone();
                set(&mut p, d);
                fits(&p)
            })
            .collect();
        usable
            .iter()
            .copied()
            .find(|&d| error(d) <= target)
            .or_else(|| {
                usable
                    .iter()
                    .copied()
                    .min_by(|&a, &b| error(a).total_cmp(&error(b)))
            })
    };
    let d = pick(&out, &|p, d| p.sigmoid_degree = d, &|d| {
        sigmoid_error(plan, tokens, d)
    })?;
    out.sigmoid_degree = d;
    let d = pick(&out, &|p, d| p.act_degree = d, &|d| {
        activation_error(cfg, plan, d)
    })?;
    out.act_degree = d;
    for i in 0..4 {
        let norm = plan.norms[i];
        let d = pick(&out, &|p, d| p.norms[i].degree = d, &|d| {
            inv_sqrt_error(&norm, d)
        })?;
        out.norms[i].degree = d;
    }
    Some(out)
}
