//! Evaluation of linear transforms: from diagonals encoded ahead of time
//! ([`Evaluator::linear_transform`]) or produced and encoded on the fly, one at a time
//! ([`Evaluator::linear_transform_streamed`]). Both share one baby-step giant-step driver with
//! hoisted baby rotations, so they execute the same operations and give the same result.

use super::{EncodedLinearTransform, TransformShape, rotate_vec};
use crate::ciphertext::Ciphertext;
use crate::error::CkksError;
use crate::evaluator::{Evaluator, Op};
use crate::keyswitch::ExtendedPair;
use crate::plaintext::Plaintext;
use alloc::borrow::Cow;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use num_complex::Complex64;

impl Evaluator {
    /// `M v` for the encoded transform `lt` (no rescale: the output scale is
    /// `ct.scale() * lt.scale()`). The ciphertext must be at the transform's level and slot count.
    pub fn linear_transform(
        &self,
        ct: &Ciphertext,
        lt: &EncodedLinearTransform,
    ) -> Result<Ciphertext, CkksError> {
        if ct.level() != lt.level {
            return Err(CkksError::LevelMismatch {
                left: ct.level(),
                right: lt.level,
            });
        }
        let groups: BTreeMap<usize, Vec<usize>> = lt
            .groups
            .iter()
            .map(|(&i, g)| (i, g.iter().map(|(j, _)| *j).collect()))
            .collect();
        self.bsgs(ct, lt.slots, lt.n1, &groups, |i, pos| {
            Ok(Cow::Borrowed(&lt.groups[&i][pos].1))
        })
    }

    /// `M v` with the diagonals of `M` produced on the fly: `diagonal(k)` returns diagonal `k`
    /// (`diag_k[t] = M[t][t + k]`, one value per slot) for every index of `shape`, and each is
    /// encoded at the ciphertext's level and `pt_scale` just before its product and dropped right
    /// after, so at most one plaintext diagonal exists at a time per worker thread, whatever the
    /// matrix size. The
    /// output scale is `ct.scale() * pt_scale` (no rescale). Each diagonal counts as one
    /// `encode` in [`Evaluator::op_count`].
    pub fn linear_transform_streamed<F>(
        &self,
        ct: &Ciphertext,
        shape: &TransformShape,
        pt_scale: f64,
        diagonal: F,
    ) -> Result<Ciphertext, CkksError>
    where
        F: Fn(usize) -> Result<Vec<Complex64>, CkksError> + Sync,
    {
        self.check_slots(ct, shape.slots())?;
        let babies = self.baby_steps(ct, &shape.baby_steps())?;
        self.linear_transform_streamed_from(&babies, shape, pt_scale, diagonal)
    }

    /// The baby-step rotations of `ct` by every step of `steps` (hoisted: one shared
    /// decomposition; step 0 is `ct` itself), for [`Self::linear_transform_streamed_from`].
    /// Several transforms of one ciphertext can share them: compute them once for the union
    /// of their [`TransformShape::baby_steps`].
    pub fn baby_steps(
        &self,
        ct: &Ciphertext,
        steps: &BTreeSet<usize>,
    ) -> Result<BabySteps, CkksError> {
        let list: Vec<isize> = steps.iter().map(|&j| j as isize).collect();
        Ok(BabySteps {
            slots: ct.slots(),
            rotated: steps
                .iter()
                .copied()
                .zip(self.rotate_hoisted(ct, &list)?)
                .collect(),
        })
    }

    /// [`Self::linear_transform_streamed`] from baby-step rotations computed beforehand
    /// ([`Self::baby_steps`], a superset of the shape's): the same operations and result, less
    /// the baby rotations.
    pub fn linear_transform_streamed_from<F>(
        &self,
        babies: &BabySteps,
        shape: &TransformShape,
        pt_scale: f64,
        diagonal: F,
    ) -> Result<Ciphertext, CkksError>
    where
        F: Fn(usize) -> Result<Vec<Complex64>, CkksError> + Sync,
    {
        slots_match(babies.slots, shape.slots())?;
        let n1 = shape.baby_step();
        let groups = shape.groups(n1);
        let ctx = self.context().clone();
        let level = babies
            .rotated
            .values()
            .next()
            .map(Ciphertext::level)
            .ok_or(CkksError::InvalidArgument {
                reason: "no baby-step rotation",
            })?;
        self.bsgs_from(&babies.rotated, n1, &groups, |i, pos| {
            let k = n1 * i + groups[&i][pos];
            let values = diagonal(k)?;
            if values.len() != shape.slots() {
                return Err(CkksError::InvalidArgument {
                    reason: "a streamed diagonal must have one value per slot",
                });
            }
            let shifted = rotate_vec(&values, -((n1 * i) as isize));
            let pt = ctx.encode_complex(&shifted, shape.slots(), level, pt_scale)?;
            self.count(Op::Encode, 1);
            Ok(Cow::Owned(pt))
        })
    }

    fn check_slots(&self, ct: &Ciphertext, slots: usize) -> Result<(), CkksError> {
        slots_match(ct.slots(), slots)
    }

    /// The BSGS driver: `sum_i rot_{n1 i}( sum_j pt(i, j) ⊙ rot_j(ct) )`, the baby rotations
    /// hoisted. `plain(i, pos)` gives the plaintext of the `pos`-th baby step of giant step `i`.
    fn bsgs<'p, P>(
        &self,
        ct: &Ciphertext,
        slots: usize,
        n1: usize,
        groups: &BTreeMap<usize, Vec<usize>>,
        plain: P,
    ) -> Result<Ciphertext, CkksError>
    where
        P: Fn(usize, usize) -> Result<Cow<'p, Plaintext>, CkksError> + Sync,
    {
        self.check_slots(ct, slots)?;
        let steps: BTreeSet<usize> = groups.values().flatten().copied().collect();
        let babies = self.baby_steps(ct, &steps)?;
        self.bsgs_from(&babies.rotated, n1, groups, plain)
    }

    /// The BSGS driver on baby rotations computed beforehand. With `parallel` the giant steps
    /// run side by side (each inner sum, its plaintexts and its giant rotation on one worker,
    /// itself parallel over limbs), so a streamed transform holds at most one plaintext
    /// diagonal and one partial sum per worker; the partial sums are added pairwise. Modular
    /// additions are exact, so the result does not depend on the order.
    ///
    /// The giant rotations are summed before their ModDown (`P` times the rotated pairs over
    /// `Q_l ∪ P`) and divided by `P` once at the end: one ModDown for the transform instead of
    /// one per giant step (the giant-step half of double hoisting, Bossuat et al. 2021, §3.2).
    fn bsgs_from<'p, P>(
        &self,
        rotated: &BTreeMap<usize, Ciphertext>,
        n1: usize,
        groups: &BTreeMap<usize, Vec<usize>>,
        plain: P,
    ) -> Result<Ciphertext, CkksError>
    where
        P: Fn(usize, usize) -> Result<Cow<'p, Plaintext>, CkksError> + Sync,
    {
        let giant = |(&i, group): (&usize, &Vec<usize>)| -> Result<Partial, CkksError> {
            let mut inner: Option<Ciphertext> = None;
            for (pos, j) in group.iter().enumerate() {
                let src = rotated.get(j).ok_or(CkksError::InvalidArgument {
                    reason: "missing baby-step rotation",
                })?;
                let pt = plain(i, pos)?;
                match &mut inner {
                    None => inner = Some(self.mul_plain(src, &pt)?),
                    // acc += src * pt, fused: no temporary ciphertext.
                    Some(acc) => self.mul_plain_acc(acc, src, &pt)?,
                }
            }
            let Some(inner) = inner else {
                return Ok(Partial::default());
            };
            let step = (n1 * i) as isize;
            Ok(match self.rotate_lazy(&inner, step)? {
                Some(lazy) => Partial {
                    plain: None,
                    lazy: Some((lazy, inner.scale())),
                },
                None => Partial {
                    plain: Some(self.rotate(&inner, step)?),
                    lazy: None,
                },
            })
        };
        let sum = |a: Partial, b: Partial| -> Result<Partial, CkksError> {
            let plain = match (a.plain, b.plain) {
                (Some(mut x), Some(y)) => {
                    self.add_assign(&mut x, &y)?;
                    Some(x)
                }
                (x, y) => x.or(y),
            };
            let lazy = match (a.lazy, b.lazy) {
                (Some((mut x, scale)), Some((y, other))) => {
                    crate::ciphertext::check_scale(scale, other)?;
                    self.context().add_extended(&mut x, &y)?;
                    self.count(Op::Add, 1);
                    Some((x, scale))
                }
                (x, y) => x.or(y),
            };
            Ok(Partial { plain, lazy })
        };
        #[cfg(feature = "parallel")]
        let out = {
            use rayon::prelude::*;
            groups
                .par_iter()
                .map(giant)
                .try_reduce(Partial::default, sum)?
        };
        #[cfg(not(feature = "parallel"))]
        let out = groups
            .iter()
            .try_fold(Partial::default(), |acc, g| sum(acc, giant(g)?))?;
        let lazy = out
            .lazy
            .map(|(x, scale)| {
                let (c0, c1) = self.context().mod_down_extended(&x)?;
                // Any baby step carries the slots and parameters every product kept.
                let template = rotated.values().next().ok_or(CkksError::InvalidArgument {
                    reason: "no baby-step rotation",
                })?;
                Ok::<_, CkksError>(template.derive(alloc::vec![c0, c1], scale))
            })
            .transpose()?;
        let total = match (out.plain, lazy) {
            (Some(mut x), Some(y)) => {
                self.add_assign(&mut x, &y)?;
                Some(x)
            }
            (x, y) => x.or(y),
        };
        total.ok_or(CkksError::InvalidArgument {
            reason: "a linear transform with no diagonal",
        })
    }
}

/// A partial sum of giant steps: those added as ciphertexts, and the rotated ones summed
/// before their ModDown (with their common scale).
#[derive(Default)]
struct Partial {
    plain: Option<Ciphertext>,
    lazy: Option<(ExtendedPair, f64)>,
}

fn slots_match(left: usize, right: usize) -> Result<(), CkksError> {
    if left != right {
        return Err(CkksError::SlotMismatch { left, right });
    }
    Ok(())
}

/// Hoisted baby-step rotations of one ciphertext ([`Evaluator::baby_steps`]), shareable by
/// the transforms of that ciphertext.
#[derive(Clone, Debug)]
pub struct BabySteps {
    slots: usize,
    rotated: BTreeMap<usize, Ciphertext>,
}

impl BabySteps {
    /// The steps held.
    pub fn steps(&self) -> impl Iterator<Item = usize> + '_ {
        self.rotated.keys().copied()
    }
}
