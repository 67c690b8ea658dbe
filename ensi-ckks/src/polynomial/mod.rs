//! Homomorphic polynomial evaluation in the Chebyshev basis.
//!
//! **Algorithm.** Baby-step giant-step Paterson–Stockmeyer in the Chebyshev basis (Han–Ki 2020,
//! §4; Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux 2021, Alg. 2): the baby steps
//! `T_1 .. T_{b-1}` and the giant steps `T_b, T_2b, T_4b, ...` are computed with
//! `T_{2k} = 2 T_k^2 - 1` and `T_{2k+1} = 2 T_{k+1} T_k - T_1`; the polynomial is split
//! recursively as `p = q T_g + r` on the largest giant step `g <= deg p`; the leaves
//! `sum_j c_j T_j` need only plaintext-constant products. The baby-step size `b` (a power of
//! two) is chosen to reach the smallest depth, then the fewest ciphertext products; for a
//! degree `d` that leaves room (for instance `d <= 2^k - 2^(m-1) - 1`, which covers the usual
//! degrees), the depth is `ceil(log2(d + 1))`, plus one level for the change of variable
//! `y = (2x - a - b) / (b - a)` when `[a, b]` is not `[-1, 1]`.
//!
//! **Exact scale.** Every leaf constant is encoded at the scale that makes its product land on
//! the scale its parent needs after rescaling (`target * q_l / scale(T_j)`), and every quotient
//! `q` is evaluated for the scale `target * q_l / scale(T_g)`, so the result has exactly the
//! requested scale whatever the primes, and repeated evaluations do not drift
//! (the scale-invariant evaluation of Bossuat et al. 2021, §3.2). Coefficients that are zero
//! (odd or even functions) cost nothing: their baby steps are never computed.

mod chebyshev;

pub use chebyshev::ChebyshevPoly;

use crate::ciphertext::Ciphertext;
use crate::error::CkksError;
use crate::evaluator::Evaluator;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use chebyshev::divide;

/// What a polynomial evaluation used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolyEvalStats {
    /// Levels consumed (input level minus output level).
    pub levels: usize,
    /// Ciphertext-ciphertext products (each with a relinearization).
    pub ct_products: usize,
    /// Products by plaintext constants.
    pub const_products: usize,
    /// The baby-step size chosen.
    pub baby_steps: usize,
}

/// Coefficients below this magnitude relative to the largest are set to zero before planning
/// (interpolating an odd function leaves rounding noise on the even coefficients).
const ZERO: f64 = 1e-14;

/// The evaluation plan: baby-step size and the level of every `T_j` relative to the input.
struct Plan {
    baby: usize,
    /// Level of `y = T_1`.
    top: usize,
}

impl Plan {
    /// The level of `T_j`: `top - ceil(log2 j)` (each product of the recurrences costs one).
    fn level_of(&self, j: usize) -> Option<usize> {
        let depth = if j <= 1 {
            0
        } else {
            (usize::BITS - (j - 1).leading_zeros()) as usize
        };
        self.top.checked_sub(depth)
    }

    fn giant_for(&self, degree: usize) -> usize {
        let mut g = self.baby;
        while 2 * g <= degree {
            g *= 2;
        }
        g
    }

    /// The output level of `p` evaluated by the plan (`None` for a constant), or `None` inside
    /// `Err` when levels run out.
    fn predict(&self, p: &[f64]) -> Result<Option<usize>, CkksError> {
        let deg = degree(p);
        if deg == 0 {
            return Ok(None);
        }
        if deg < self.baby {
            let mut level = usize::MAX;
            for (j, &c) in p.iter().enumerate().skip(1) {
                if c != 0.0 {
                    level = level.min(self.level_of(j).ok_or(CkksError::NoLevelLeft)?);
                }
            }
            return level.checked_sub(1).map(Some).ok_or(CkksError::NoLevelLeft);
        }
        let g = self.giant_for(deg);
        let (q, r) = divide(&p[..=deg], g);
        let lg = self.level_of(g).ok_or(CkksError::NoLevelLeft)?;
        let lp = match self.predict(&q)? {
            Some(lq) => lq.min(lg),
            None => lg,
        };
        let mut out = lp.checked_sub(1).ok_or(CkksError::NoLevelLeft)?;
        if let Some(lr) = self.predict(&r)? {
            out = out.min(lr);
        }
        Ok(Some(out))
    }

    /// Ciphertext products of the plan: one per `T_j` (`j >= 2`) the leaves, the giant steps
    /// and their recurrences need, plus one per non-constant quotient.
    fn products(&self, p: &[f64]) -> usize {
        let mut basis = BTreeSet::new();
        let nodes = self.collect(p, &mut basis);
        basis.iter().filter(|&&j| j >= 2).count() + nodes
    }

    /// Marks the `T_j` that evaluating `p` needs; returns its quotient products.
    fn collect(&self, p: &[f64], basis: &mut BTreeSet<usize>) -> usize {
        let deg = degree(p);
        if deg == 0 {
            return 0;
        }
        if deg < self.baby {
            for (j, &c) in p.iter().enumerate().skip(1) {
                if c != 0.0 {
                    mark(j, basis);
                }
            }
            return 0;
        }
        let g = self.giant_for(deg);
        mark(g, basis);
        let (q, r) = divide(&p[..=deg], g);
        let q_const = degree(&q) == 0;
        self.collect(&q, basis) + self.collect(&r, basis) + usize::from(!q_const)
    }
}

/// Marks `T_j` and every `T_k` its recurrence (`T_j` from `T_ceil(j/2)` and `T_floor(j/2)`)
/// needs.
fn mark(j: usize, basis: &mut BTreeSet<usize>) {
    if !basis.insert(j) || j <= 1 {
        return;
    }
    mark(j / 2, basis);
    mark(j.div_ceil(2), basis);
}

/// The index of the last non-zero coefficient.
fn degree(p: &[f64]) -> usize {
    p.iter().rposition(|&c| c != 0.0).unwrap_or(0)
}

/// A leaf or node result: a ciphertext or a constant.
enum Value {
    Ct(Ciphertext),
    Const(f64),
}

struct Run<'e> {
    eval: &'e Evaluator,
    plan: Plan,
    basis: BTreeMap<usize, Ciphertext>,
    stats: PolyEvalStats,
}

impl Run<'_> {
    /// `T_j`, computing (and caching) the recurrence.
    fn t(&mut self, j: usize) -> Result<Ciphertext, CkksError> {
        if let Some(c) = self.basis.get(&j) {
            return Ok(c.clone());
        }
        let e = self.eval;
        let (a, b) = (j.div_ceil(2), j / 2);
        let ta = self.t(a)?;
        let tb = self.t(b)?;
        let level = ta.level().min(tb.level());
        let ta = e.drop_to_level(&ta, level)?;
        let tb = e.drop_to_level(&tb, level)?;
        let mut prod = e.mul_integer(&e.mul_relin(&ta, &tb)?, 2)?;
        self.stats.ct_products += 1;
        if a == b {
            // T_2k = 2 T_k^2 - 1.
            prod = e.add_const(&prod, -1.0)?;
        } else {
            // T_2k+1 = 2 T_k+1 T_k - T_1, with T_1 lifted to the product's scale.
            let t1 = e.drop_to_level(&self.t(1)?, level)?;
            let mut lifted = e.mul_const_with_scale(&t1, 1.0, prod.scale / t1.scale)?;
            lifted.snap_scale(prod.scale)?;
            prod = e.sub(&prod, &lifted)?;
        }
        let out = e.rescale(&prod)?;
        self.basis.insert(j, out.clone());
        Ok(out)
    }

    /// Evaluates `p` to a ciphertext of scale exactly `target` (or a constant).
    fn eval(&mut self, p: &[f64], target: f64) -> Result<Value, CkksError> {
        let deg = degree(p);
        if deg == 0 {
            return Ok(Value::Const(p.first().copied().unwrap_or(0.0)));
        }
        let e = self.eval;
        if deg < self.plan.baby {
            let level = self.plan.predict(p)?.ok_or(CkksError::NoLevelLeft)? + 1;
            let q_l = e.context().params().q()[level] as f64;
            let mut acc: Option<Ciphertext> = None;
            for (j, &c) in p.iter().enumerate().skip(1).take(deg) {
                if c == 0.0 {
                    continue;
                }
                let tj = e.drop_to_level(&self.t(j)?, level)?;
                let mut term = e.mul_const_with_scale(&tj, c, target * q_l / tj.scale)?;
                term.snap_scale(target * q_l)?;
                self.stats.const_products += 1;
                acc = Some(match acc {
                    None => term,
                    Some(a) => e.add(&a, &term)?,
                });
            }
            let acc = acc.ok_or(CkksError::NoLevelLeft)?;
            let acc = e.add_const(&acc, p[0])?;
            let mut out = e.rescale(&acc)?;
            out.snap_scale(target)?;
            return Ok(Value::Ct(out));
        }
        let g = self.plan.giant_for(deg);
        let (q, r) = divide(&p[..=deg], g);
        let tg = self.t(g)?;
        let product = match self.plan.predict(&q)? {
            None => {
                // A constant quotient: one constant product of T_g.
                let c = q.first().copied().unwrap_or(0.0);
                let q_l = e.context().params().q()[tg.level()] as f64;
                let mut term = e.mul_const_with_scale(&tg, c, target * q_l / tg.scale)?;
                term.snap_scale(target * q_l)?;
                self.stats.const_products += 1;
                term
            }
            Some(lq) => {
                let lp = lq.min(tg.level());
                let q_l = e.context().params().q()[lp] as f64;
                let q_target = target * q_l / tg.scale;
                let Value::Ct(qc) = self.eval(&q, q_target)? else {
                    return Err(CkksError::InvalidArgument {
                        reason: "polynomial quotient evaluated to a constant",
                    });
                };
                let qc = e.drop_to_level(&qc, lp)?;
                let tg = e.drop_to_level(&tg, lp)?;
                let mut prod = e.mul_relin(&qc, &tg)?;
                self.stats.ct_products += 1;
                prod.snap_scale(target * q_l)?;
                prod
            }
        };
        let mut out = e.rescale(&product)?;
        out.snap_scale(target)?;
        match self.eval(&r, target)? {
            Value::Const(c) => out = e.add_const(&out, c)?,
            Value::Ct(rc) => {
                let level = out.level().min(rc.level());
                let mut rc = e.drop_to_level(&rc, level)?;
                rc.snap_scale(target)?;
                out = e.drop_to_level(&out, level)?;
                e.add_assign(&mut out, &rc)?;
            }
        }
        Ok(Value::Ct(out))
    }
}

impl Evaluator {
    /// Evaluates `poly` on every slot of `ct` (values in `[poly.a, poly.b]`); the result has
    /// exactly the scale `target_scale`. Returns what the evaluation used.
    ///
    /// When the interval is not `[-1, 1]`, the change of variable also brings the input to the
    /// default scale, so any input scale works. On `[-1, 1]` (no change of variable, no level)
    /// the Chebyshev basis is built at the input's own scale, which should then be close to the
    /// size of the primes (each squaring multiplies a mismatch).
    pub fn evaluate_chebyshev(
        &self,
        ct: &Ciphertext,
        poly: &ChebyshevPoly,
        target_scale: f64,
    ) -> Result<(Ciphertext, PolyEvalStats), CkksError> {
        let ordered = poly.a.is_finite() && poly.b.is_finite() && poly.a < poly.b;
        if !ordered || poly.coeffs.is_empty() {
            return Err(CkksError::InvalidArgument {
                reason: "a Chebyshev polynomial needs coefficients and an interval a < b",
            });
        }
        if !(target_scale.is_finite() && target_scale >= 1.0) {
            return Err(CkksError::InvalidEncodingScale {
                scale: target_scale,
            });
        }
        let start_level = ct.level();
        // The change of variable y = alpha x + beta (one level unless it is the identity).
        let alpha = 2.0 / (poly.b - poly.a);
        let beta = -(poly.a + poly.b) / (poly.b - poly.a);
        let mut stats = PolyEvalStats::default();
        let y = if alpha == 1.0 && beta == 0.0 {
            ct.clone()
        } else {
            stats.const_products += 1;
            // The constant is encoded so that the rescale lands on the default scale, whatever
            // the input's: the products of the basis then keep scales near the primes instead
            // of drifting by the input's excess at every squaring.
            let delta = self.context().params().default_scale();
            let q_last = self.context().params().q()[ct.level()] as f64;
            let mut scaled =
                self.rescale(&self.mul_const_with_scale(ct, alpha, delta * q_last / ct.scale)?)?;
            scaled.snap_scale(delta)?;
            self.add_const(&scaled, beta)?
        };
        let cleaned = clean(&poly.coeffs);
        let p = &cleaned[..];
        let deg = degree(p);
        if deg == 0 {
            let out = self.add_const(&self.mul_integer(&y, 0)?, p[0])?;
            return Ok((out, stats));
        }
        let best = choose_plan(p, y.level());
        let (_, _, baby) = best.ok_or(CkksError::NoLevelLeft)?;
        let mut run = Run {
            eval: self,
            plan: Plan {
                baby,
                top: y.level(),
            },
            basis: BTreeMap::new(),
            stats,
        };
        run.basis.insert(1, y);
        let out = match run.eval(p, target_scale)? {
            Value::Ct(c) => c,
            Value::Const(_) => {
                return Err(CkksError::InvalidArgument {
                    reason: "polynomial evaluated to a constant",
                });
            }
        };
        let mut stats = run.stats;
        stats.levels = start_level - out.level();
        stats.baby_steps = baby;
        Ok((out, stats))
    }

    /// Evaluates `poly` on every slot and keeps the input's scale.
    pub fn evaluate_chebyshev_same_scale(
        &self,
        ct: &Ciphertext,
        poly: &ChebyshevPoly,
    ) -> Result<(Ciphertext, PolyEvalStats), CkksError> {
        self.evaluate_chebyshev(ct, poly, ct.scale())
    }
}

/// Sets coefficients below [`ZERO`] times the largest to exactly zero.
fn clean(coeffs: &[f64]) -> Vec<f64> {
    let max = coeffs.iter().fold(0.0f64, |m, c| m.max(libm::fabs(*c)));
    coeffs
        .iter()
        .map(|&c| if libm::fabs(c) <= ZERO * max { 0.0 } else { c })
        .collect()
}

/// The baby-step size with the least depth, then the fewest ciphertext products:
/// `(levels, products, baby)` for an input at level `top`.
fn choose_plan(p: &[f64], top: usize) -> Option<(usize, usize, usize)> {
    let deg = degree(p);
    let mut best: Option<(usize, usize, usize)> = None;
    let mut baby = 2usize;
    while baby <= (deg + 1).next_power_of_two().max(2) {
        let plan = Plan { baby, top };
        if let Ok(Some(level)) = plan.predict(p) {
            let candidate = (top - level, plan.products(p), baby);
            if best.is_none_or(|b| (candidate.0, candidate.1) < (b.0, b.1)) {
                best = Some(candidate);
            }
        }
        baby *= 2;
    }
    best
}

impl ChebyshevPoly {
    /// The levels [`Evaluator::evaluate_chebyshev`] consumes on an input at `level` (including
    /// the change of variable), or an error if the levels do not suffice.
    pub fn depth_at(&self, level: usize) -> Result<usize, CkksError> {
        let affine = usize::from(!(self.a == -1.0 && self.b == 1.0));
        let top = level.checked_sub(affine).ok_or(CkksError::NoLevelLeft)?;
        let p = clean(&self.coeffs);
        if degree(&p) == 0 {
            return Ok(affine);
        }
        let (levels, _, _) = choose_plan(&p, top).ok_or(CkksError::NoLevelLeft)?;
        Ok(affine + levels)
    }
}
