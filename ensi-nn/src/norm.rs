//! RMSNorm in the column layout with the statistic bootstrapped (the F2 fusion of the cost
//! model): the deep inverse square root runs on one refreshed ciphertext, off the activations'
//! path, which pays one level.
//!
//! For `x` (`n x d`, columns `x_c`), gain `gamma` and `eps`:
//!
//! 1. `v = sum_c x_c^2` (tensors summed, one relinearization), then `v / (d hi) + eps / hi` by a
//!    constant product, so the bootstrap input is in `[0, 1]` whatever the scale (two levels);
//! 2. one bootstrap of `v / hi`, whose SlotsToCoeffs gain multiplies by `alpha hi` (F1: the
//!    affine map of the next polynomial rides in the bootstrap at no level), then `+ beta`:
//!    `u = alpha v + beta` in `[-1, 1]` on the calibrated interval `[lo, hi]` of `v`;
//! 3. `p = 1 / sqrt(v)` as a Chebyshev polynomial in `u` (degree configurable);
//! 4. `y_c = x_c * (gamma_c p)`: `gamma_c` is encoded with the product's scale, so the constant
//!    product and the ciphertext product share one rescale (one level on the activations).

use crate::column::ColumnMatrix;
use alloc::vec;
use alloc::vec::Vec;
use ensi_ckks::{BootstrapOptions, Bootstrapper, ChebyshevPoly, Ciphertext, CkksError};

/// `2^20`: the room left for the gains' encoding in the last product.
const GAIN_BITS_SCALE: f64 = (1u64 << 20) as f64;

/// The calibrated interval of `mean(x^2) + eps` and the degree of the inverse square root.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormPlan {
    /// Lower end of `mean(x^2) + eps` (with margin), `> 0`.
    pub lo: f64,
    /// Upper end (with margin).
    pub hi: f64,
    /// Degree of the Chebyshev interpolant of `1 / sqrt`.
    pub degree: usize,
}

impl NormPlan {
    /// `1 / sqrt(v)` as a polynomial of `u = alpha v + beta` on `[-1, 1]`.
    pub fn inv_sqrt(&self) -> ChebyshevPoly {
        let (lo, hi) = (self.lo, self.hi);
        ChebyshevPoly::interpolate(
            move |u| 1.0 / libm::sqrt((u * (hi - lo) + (hi + lo)) / 2.0),
            -1.0,
            1.0,
            self.degree,
        )
    }

    /// `(alpha, beta)` of `u = alpha v + beta`.
    pub fn affine(&self) -> (f64, f64) {
        let w = self.hi - self.lo;
        (2.0 / w, -(self.hi + self.lo) / w)
    }
}

/// The variable `u = alpha v + beta` of [`NormPlan::inv_sqrt`] for `v = sum / d + eps`, at the
/// bootstrapper's output level: `v / hi` (in `(0, 1]` on the calibrated interval) is formed by
/// one constant product that also lands on the default scale (so the bootstrap input's raw size
/// does not depend on the scale `sum` arrived with), then bootstrapped with the gain
/// `alpha hi` (F1: the affine map rides in SlotsToCoeffs at no level), then `+ beta`.
pub(crate) fn refreshed_statistic(
    bts: &Bootstrapper,
    sum: &Ciphertext,
    d: usize,
    eps: f64,
    plan: &NormPlan,
) -> Result<Ciphertext, CkksError> {
    let eval = bts.evaluator();
    let ctx = eval.context();
    let delta = ctx.params().default_scale();
    let q_s = ctx.params().q()[sum.level()] as f64;
    let mut scaled = eval.rescale(&eval.mul_const_with_scale(
        sum,
        1.0 / (d as f64 * plan.hi),
        delta * q_s / sum.scale(),
    )?)?;
    eval.match_scale(&mut scaled, delta)?;
    let v_over_hi = eval.add_const(&scaled, eps / plan.hi)?;
    let (alpha, beta) = plan.affine();
    let options = BootstrapOptions {
        input_bound: 1.0,
        gain: Some(vec![alpha * plan.hi; v_over_hi.slots()]),
    };
    eval.add_const(&bts.bootstrap_with(&v_over_hi, &options)?, beta)
}

/// `y = x * gamma / sqrt(mean(x^2) + eps)` per token (see the module documentation); the
/// statistic is refreshed by `bts` (whose evaluator is used throughout). `x` needs two levels;
/// `y` has scale `target_scale` exactly, one level below the smaller of `x`'s level and the
/// polynomial's output level.
pub fn rms_norm(
    bts: &Bootstrapper,
    x: &ColumnMatrix,
    gamma: &[f32],
    eps: f64,
    plan: &NormPlan,
    target_scale: f64,
) -> Result<ColumnMatrix, CkksError> {
    let eval = bts.evaluator();
    let ctx = eval.context();
    let d = x.cols();
    if gamma.len() != d || !(plan.lo > 0.0 && plan.hi > plan.lo) {
        return Err(CkksError::InvalidArgument {
            reason: "RMSNorm needs one gain per column and an interval 0 < lo < hi",
        });
    }
    // 1. The statistic, scaled into [0, 1].
    let mut acc: Option<Ciphertext> = None;
    for c in x.columns() {
        let t = eval.tensor(c, c)?;
        match &mut acc {
            None => acc = Some(t),
            Some(a) => eval.add_assign(a, &t)?,
        }
    }
    let sum = acc.ok_or(CkksError::NoLevelLeft)?;
    let sum = eval.rescale(&eval.relinearize(&sum)?)?;
    // 2. One bootstrap; the gain alpha * hi turns v / hi into alpha v.
    let u = refreshed_statistic(bts, &sum, d, eps, plan)?;
    // 3. p = 1 / sqrt(v), at a scale 2^20 below the default: the gains then get 20 bits of
    // encoding precision in step 4 without a rescale of their own.
    let p_scale = ctx.params().default_scale() / GAIN_BITS_SCALE;
    let p = eval.evaluate_chebyshev(&u, &plan.inv_sqrt(), p_scale)?.0;
    // 4. y_c = x_c * gamma_c * p, one rescale.
    let level = x.level().min(p.level());
    let p = eval.drop_to_level(&p, level)?;
    let q_l = ctx.params().q()[level] as f64;
    let mut out = Vec::with_capacity(d);
    for (c, &g) in x.columns().iter().zip(gamma) {
        let xc = eval.drop_to_level(c, level)?;
        let sigma = target_scale * q_l / (xc.scale() * p.scale());
        let pc = eval.mul_const_with_scale(&p, f64::from(g), sigma)?;
        let mut y = eval.rescale(&eval.mul_relin(&xc, &pc)?)?;
        eval.match_scale(&mut y, target_scale)?;
        out.push(y);
    }
    ColumnMatrix::from_columns(out, x.tokens())
}
