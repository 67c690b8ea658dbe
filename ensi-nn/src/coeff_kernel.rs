//! Ternary projections in **coefficient encoding**, fused with bootstrapping: the layer kernel
//! of the coefficient-encoded product (`ensi_ckks::coeff`), between two column-block
//! activations ([`crate::block`]).
//!
//! The slot plan refreshes an activation, then multiplies it by the weights: a bootstrap and a
//! BSGS product of `rows / n_pad`-ish diagonals, every ternary diagonal a full plaintext
//! product. This kernel does it the other way round, as Bae, Cheon, Hanrot, Park and Stehlé
//! place a linear map inside the bootstrap (ePrint 2024/1284), with the weights as exact
//! integer polynomials (Cheetah's encoding, Huang et al., USENIX Security 2022):
//!
//! 1. **SlotsToCoeffs** of each input chunk (from level `stc_level_budget`): the column-block
//!    layout lands where an integer product gathers a row's dot product
//!    ([`ensi_ckks::coeff::SlotCoeffLayout`]), at level 0.
//! 2. **Products and packing** at level 0: each leaf is one integer-polynomial product per input
//!    chunk (two output rows, one per half of the ring), the leaves packed into one ciphertext
//!    (PackLWEs with level-0 Galois keys, [`ensi_ckks::GaloisKey::generate_level0`]). The
//!    projections that share the input share packings: one takes the output chunks of several
//!    projections, up to `2 N/2 / n_pad` rows. A leaf whose rows are all zero (a head layout's
//!    padding) is absent: no product, no merge of its own.
//! 3. **ModRaise, CoeffsToSlots, EvalMod** of each packing
//!    ([`Bootstrapper::bootstrap_coefficients`]): the real half holds the packing's rows `0..L`
//!    in the column-block layout, the imaginary half rows `L..2L`.
//! 4. **Reassembly** of each output chunk: its part of each half rotated to the front, one
//!    plaintext product that applies the projection's real multiplier, a factor per row and
//!    token, the exact output scale and zero on every other row (two where the chunk straddles
//!    the halves, one rescale), then the replication over the slots the layout wants.
//!
//! No SlotsToCoeffs runs after EvalMod, so the output is `stc_level_budget - 1` levels above a
//! refresh's output (one level goes to the reassembly product). The weights must be integers:
//! a real factor per output row and token folds into step 4, but a real factor per input
//! column (an RMSNorm gain) or RoPE's mixing of rows cannot fold into them, so the input must
//! arrive with its gain applied, and RoPE runs in slots after the kernel.
//!
//! **Precision.** The packed values must stay `2^COEFF_LOG_RATIO` below `q_0` for the sine of
//! EvalMod to be near-linear, so the input is scaled (in the SlotsToCoeffs) for a caller's bound
//! on `|W y|`; EvalMod's error is then about `2^-19` of that bound. A loose bound costs its
//! ratio to the true largest output in bits.

use crate::block::{BlockMatrix, ChunkedMatrix, chunk_cols, chunks};
use alloc::vec::Vec;
use ensi_ckks::coeff::{SlotCoeffLayout, pack_galois_elements, pack_key_switches};
use ensi_ckks::{Bootstrapper, Ciphertext, CkksError};

/// `log2(q_0 / max |packed value|)` of the kernel: how far below `q_0` the packed products enter
/// EvalMod (at `2^12` EvalMod's own error dominates the sine's curvature; measured 19.0 bits at
/// N = 2^16).
pub const COEFF_LOG_RATIO: u32 = 12;

fn invalid(reason: &'static str) -> CkksError {
    CkksError::InvalidArgument { reason }
}

/// One ternary (integer) projection of [`coeff_linear`]: `out[t][r] = multiplier *
/// sum_c entry(r, c) y[t][c]` for `r < rows`.
pub struct CoeffProjection<'a> {
    /// Output rows.
    pub rows: usize,
    /// The integer weight `W[row][col]` (any integer; ternary in BitNet).
    pub entry: &'a (dyn Fn(usize, usize) -> i64 + Sync),
    /// The real factor of the whole matrix (the BitNet weight scale, folded constants).
    pub multiplier: f64,
    /// A real factor per output row and token `(row, token)`, times `multiplier` (an RMSNorm
    /// gain of the next step, a per-row scale, a mask of tokens): applied in the reassembly's
    /// product, so it costs no level; `None` for 1.
    pub factor: Option<&'a (dyn Fn(usize, usize) -> f64 + Sync)>,
    /// A bound on `|sum_c W[r][c] y[t][c]|` over every row and token (before the multiplier):
    /// it sets the input's scale for EvalMod's range. See [`cauchy_schwarz_bound`].
    pub bound: f64,
}

/// A bound on `|W y|` that holds by construction when every token's `y` has Euclidean norm at
/// most `y_norm` (an RMS-normalized `d`-vector times a gain bounded by `g`: `g sqrt(d)`): the
/// largest row norm of `W` times `y_norm` (Cauchy-Schwarz).
pub fn cauchy_schwarz_bound(
    rows: usize,
    cols: usize,
    entry: &dyn Fn(usize, usize) -> i64,
    y_norm: f64,
) -> f64 {
    let widest = (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| {
                    let w = entry(r, c) as f64;
                    w * w
                })
                .sum::<f64>()
        })
        .fold(0.0f64, f64::max);
    libm::sqrt(widest) * y_norm
}

/// The largest Euclidean norm of a row of `values` (`cols` per row): the `y_norm` of
/// [`cauchy_schwarz_bound`] for an input known in the clear (calibration, tests).
pub fn largest_row_norm(values: &[f64], cols: usize) -> f64 {
    values
        .chunks(cols.max(1))
        .map(|row| libm::sqrt(row.iter().map(|v| v * v).sum::<f64>()))
        .fold(0.0f64, f64::max)
}

/// The level-0 Galois elements the kernel's packing needs for `n_pad` tokens at ring degree `n`
/// (make them with [`ensi_ckks::KeyRequest::with_level0_galois_elements`]).
pub fn coeff_galois_elements(n: usize, n_pad: usize) -> Vec<usize> {
    pack_galois_elements(n, chunk_cols(n / 2, n_pad))
}

/// One output chunk of a projection in a packing: rows `r0 .. r0 + width` of projection
/// `proj`, at row `at` of the packing (whose leaves compute every unit's rows side by side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Unit {
    proj: usize,
    r0: usize,
    width: usize,
    at: usize,
}

/// The packings of projections of `rows` (each) that share an input, for output chunks of
/// `chunk` columns: every projection's output chunks in order, as many per packing as fit its
/// `2 chunk` rows (a packing of `R` rows has `L = 2^ceil(log2(R / 2))` leaves, two rows each:
/// rows `0..L` come out of the bootstrap's real half, `L..2L` out of its imaginary half). One
/// coefficient bootstrap per packing: three 2048-row projections (q, k, v of
/// bitnet_b1_58-large's head layout at 8 tokens) share one, where unfused they took three.
fn packings(rows: &[usize], chunk: usize) -> Vec<Vec<Unit>> {
    let mut out: Vec<Vec<Unit>> = Vec::new();
    let mut used = 0usize;
    for (proj, &r) in rows.iter().enumerate() {
        for (r0, width) in chunks(r, chunk) {
            if out.is_empty() || used + width > 2 * chunk {
                out.push(Vec::new());
                used = 0;
            }
            if let Some(group) = out.last_mut() {
                group.push(Unit {
                    proj,
                    r0,
                    width,
                    at: used,
                });
            }
            used += width;
        }
    }
    out
}

/// The rows of a packing.
fn packing_rows(units: &[Unit]) -> usize {
    units.iter().map(|u| u.at + u.width).max().unwrap_or(0)
}

/// The reassembly of one unit ([`reassemble`]) from a packing of `leaves` leaves: the
/// rotation of the real half (`Some(step)` where the unit has rows below `L`; step 0 is no
/// rotation), of the imaginary half (where it has rows from `L` on), and the doubling
/// replication's (right rotations by `P`, `2 P`, .. below `slots`, `P` the unit's period).
fn unit_steps(
    u: &Unit,
    leaves: usize,
    n_pad: usize,
    slots: usize,
) -> (Option<isize>, Option<isize>, Vec<isize>) {
    let re = (u.at < leaves).then_some((u.at * n_pad) as isize);
    let im =
        (u.at + u.width > leaves).then_some((u.at as isize - leaves as isize) * n_pad as isize);
    let mut doubling = Vec::new();
    let mut period = crate::block::block_period(u.width, n_pad);
    while period < slots {
        doubling.push(-(period as isize));
        period *= 2;
    }
    (re, im, doubling)
}

/// The rotations a unit's reassembly performs (the zero steps are none).
fn unit_rotations(u: &Unit, leaves: usize, n_pad: usize, slots: usize) -> Vec<isize> {
    let (re, im, doubling) = unit_steps(u, leaves, n_pad, slots);
    re.into_iter()
        .chain(im)
        .filter(|&s| s != 0)
        .chain(doubling)
        .collect()
}

/// The rotations (slot steps) the kernel's reassembly needs for projections of `rows` (each)
/// that share an input, on `n_pad` tokens and `slots` slots: every output chunk brought to the
/// front of its half of the bootstrap's output, and the doubling replication (right rotations
/// by powers of two), once each.
pub fn coeff_rotations(
    slots: usize,
    rows: &[usize],
    n_pad: usize,
) -> Result<Vec<isize>, CkksError> {
    let mut steps = Vec::new();
    for units in packings(rows, chunk_cols(slots, n_pad)) {
        let layout = SlotCoeffLayout::new(2 * slots, packing_rows(&units), 1, n_pad)?;
        for u in &units {
            for step in unit_rotations(u, layout.leaves(), n_pad, slots) {
                if !steps.contains(&step) {
                    steps.push(step);
                }
            }
        }
    }
    Ok(steps)
}

/// The key switches, integer products and coefficient bootstraps of [`coeff_linear`] for
/// projections of `rows` (each) from `cols` columns on `n_pad` tokens at ring degree `n`:
/// `(slots_to_coeffs, products, key_switches, bootstraps, rotations)`, exact for weights
/// without all-zero rows ([`coeff_linear_counts_with`] takes those into account).
pub fn coeff_linear_counts(
    n: usize,
    cols: usize,
    rows: &[usize],
    n_pad: usize,
) -> Result<[usize; 5], CkksError> {
    coeff_linear_counts_with(n, cols, rows, n_pad, &|_, _| false)
}

/// [`coeff_linear_counts`] where `zero(projection, row)` tells the rows whose weights are all
/// zero (a head layout's padding dimensions): a leaf whose rows are all zero is absent, with
/// no product and no merge of its own (exact, as [`coeff_linear`] runs it).
pub fn coeff_linear_counts_with(
    n: usize,
    cols: usize,
    rows: &[usize],
    n_pad: usize,
    zero: &dyn Fn(usize, usize) -> bool,
) -> Result<[usize; 5], CkksError> {
    let chunk = chunk_cols(n / 2, n_pad);
    let inputs = chunks(cols, chunk).len();
    let mut out = [inputs, 0, 0, 0, 0];
    for units in packings(rows, chunk) {
        let layout = SlotCoeffLayout::new(n, packing_rows(&units), cols, n_pad)?;
        // A packing row is real where some unit holds it and its weights are not all zero.
        let real = |r: usize| {
            units
                .iter()
                .find(|u| (u.at..u.at + u.width).contains(&r))
                .is_some_and(|u| !zero(u.proj, u.r0 + r - u.at))
        };
        let present: Vec<bool> = (0..layout.leaves())
            .map(|j| {
                let (lower, upper) = layout.leaf_rows(j);
                lower.is_some_and(real) || upper.is_some_and(real)
            })
            .collect();
        out[1] += present.iter().filter(|&&p| p).count() * inputs;
        out[2] += pack_key_switches(layout.chunk(), &present);
        out[3] += 1;
        for u in &units {
            out[4] += unit_rotations(u, layout.leaves(), n_pad, n / 2).len();
        }
    }
    Ok(out)
}

/// The projections `multiplier * W y` of one input `y` (column-block layout, every chunk at
/// level `stc_level_budget` or above, gain already applied), each through the fused event of
/// the module documentation. The input chunks' SlotsToCoeffs are shared by every projection and
/// every output chunk. Each output is a [`ChunkedMatrix`] of `rows` columns at scale
/// `out_scale` exactly, `stc_level_budget - 1` levels above the bootstrapper's output level.
///
/// Needs the bootstrapping keys, the level-0 packing keys ([`coeff_galois_elements`]) and the
/// reassembly's rotations ([`coeff_rotations`]) at the coefficient bootstrap's output level.
pub fn coeff_linear(
    bts: &Bootstrapper,
    y: &ChunkedMatrix,
    projections: &[CoeffProjection<'_>],
    out_scale: f64,
) -> Result<Vec<ChunkedMatrix>, CkksError> {
    let eval = bts.evaluator();
    let ctx = eval.context();
    let (n, slots) = (ctx.n(), ctx.n() / 2);
    let (n_pad, tokens, cols) = (y.n_pad(), y.tokens(), y.cols());
    let chunk = chunk_cols(slots, n_pad);
    let budget = bts.literal().stc_level_budget;
    if y.level() < budget {
        return Err(CkksError::NoLevelLeft);
    }
    if y.parts()
        .first()
        .is_none_or(|p| p.ciphertext().slots() != slots)
    {
        return Err(invalid(
            "the coefficient kernel needs full-slot ciphertexts",
        ));
    }
    if projections.is_empty()
        || projections
            .iter()
            .any(|p| p.rows == 0 || !(p.bound.is_finite() && p.bound > 0.0))
    {
        return Err(invalid(
            "every coefficient projection needs rows and a positive finite output bound",
        ));
    }
    // The input's factor: the largest packed value (gain C times f times the input's scale
    // times the bound) sits 2^COEFF_LOG_RATIO below q_0. One factor for every projection: they
    // share the SlotsToCoeffs.
    let q0 = ctx.params().q()[0] as f64;
    let bound = projections.iter().map(|p| p.bound).fold(0.0f64, f64::max);
    let f = q0 / f64::from(1u32 << COEFF_LOG_RATIO) / (chunk as f64 * bound * y.scale());
    let inputs = y
        .parts()
        .iter()
        .map(|part| {
            let x = eval.drop_to_level(part.ciphertext(), budget)?;
            eval.drop_to_level(&bts.slots_to_coefficients(&x, f)?, 0)
        })
        .collect::<Result<Vec<_>, CkksError>>()?;
    // Every packing: one product per leaf and input chunk, the packing, one bootstrap; then
    // each of its units reassembled into its projection's output chunk.
    let mut parts: Vec<Vec<BlockMatrix>> = projections.iter().map(|_| Vec::new()).collect();
    let rows: Vec<usize> = projections.iter().map(|p| p.rows).collect();
    for units in packings(&rows, chunk) {
        let layout = SlotCoeffLayout::new(n, packing_rows(&units), cols, n_pad)?;
        let entry = |r: usize, c: usize| {
            units
                .iter()
                .find(|u| (u.at..u.at + u.width).contains(&r))
                .map_or(0, |u| (projections[u.proj].entry)(u.r0 + r - u.at, c))
        };
        let packed = eval.slot_coeff_matmul(&layout, &inputs, &entry)?;
        let (re, im) = bts.bootstrap_coefficients(&packed)?;
        for u in &units {
            let p = &projections[u.proj];
            // Slot value * q_0 / (2 pi C f s_y) is the integer product.
            let k = p.multiplier * q0
                / (2.0 * core::f64::consts::PI * layout.gain() as f64 * f * y.scale());
            let factor = |c: usize, t: usize| k * p.factor.map_or(1.0, |f| f(u.r0 + c, t));
            let ct = reassemble(bts, &layout, [&re, &im], u, n_pad, &factor, out_scale)?;
            parts[u.proj].push(BlockMatrix::from_ciphertext(ct, tokens, u.width)?);
        }
    }
    parts.into_iter().map(ChunkedMatrix::from_parts).collect()
}

/// One unit of a packing out of the bootstrap's two halves (`re`: rows `0..L`, `im`: rows
/// `L..2L`, each in the column-block layout from slot 0, zero past `L n_pad`) into one
/// column-block ciphertext of `width` columns, replicated over the slots, row `c` of token `t`
/// times `factor(c, t)`, at scale `out_scale`. The part in each half is rotated to its place
/// and multiplied by the factors on its own columns and zero elsewhere (which clears the other
/// units' rows and whatever the rotation wrapped around); both products share one rescale,
/// then the doubling replication runs one level down.
fn reassemble(
    bts: &Bootstrapper,
    layout: &SlotCoeffLayout,
    halves: [&Ciphertext; 2],
    u: &Unit,
    n_pad: usize,
    factor: &dyn Fn(usize, usize) -> f64,
    out_scale: f64,
) -> Result<Ciphertext, CkksError> {
    let eval = bts.evaluator();
    let ctx = eval.context();
    let slots = ctx.n() / 2;
    let leaves = layout.leaves();
    let (re_step, im_step, doubling) = unit_steps(u, leaves, n_pad, slots);
    // The unit's columns from the real half: c < L - at; from the imaginary half the rest.
    let split = leaves.saturating_sub(u.at).min(u.width);
    let period = crate::block::block_period(u.width, n_pad);
    let mut acc: Option<Ciphertext> = None;
    for (half, step, cols) in [
        (halves[0], re_step, 0..split),
        (halves[1], im_step, split..u.width),
    ] {
        let Some(step) = step else { continue };
        let src = if step == 0 {
            half.clone()
        } else {
            eval.rotate(half, step)?
        };
        let q_last = ctx.params().q()[src.level()] as f64;
        let sigma = out_scale * q_last / src.scale();
        let values: Vec<f64> = (0..slots)
            .map(|s| {
                let (c, t) = (s / n_pad, s % n_pad);
                if s < period && cols.contains(&c) {
                    factor(c, t)
                } else {
                    0.0
                }
            })
            .collect();
        let pt = ctx.encode(&values, slots, src.level(), sigma)?;
        let term = eval.mul_plain(&src, &pt)?;
        match acc.as_mut() {
            None => acc = Some(term),
            Some(a) => eval.add_assign(a, &term)?,
        }
    }
    let mut ct = eval.rescale(&acc.ok_or(invalid("an output chunk needs rows"))?)?;
    eval.match_scale(&mut ct, out_scale)?;
    for step in doubling {
        let copy = eval.rotate(&ct, step)?;
        eval.add_assign(&mut ct, &copy)?;
    }
    Ok(ct)
}
