//! Evaluation of linear transforms: from diagonals encoded ahead of time
//! ([`Evaluator::linear_transform`]) or produced and encoded on the fly, one at a time
//! ([`Evaluator::linear_transform_streamed`]). Both share one baby-step giant-step driver with
//! hoisted baby rotations, so they execute the same operations and give the same result.

use super::{EncodedLinearTransform, TransformShape, rotate_vec};
use crate::ciphertext::Ciphertext;
use crate::error::CkksError;
use crate::evaluator::{Evaluator, Op};
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
    /// after, so at most one plaintext diagonal exists at a time, whatever the matrix size. The
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
        F: Fn(usize) -> Result<Vec<Complex64>, CkksError>,
    {
        let n1 = shape.baby_step();
        let groups = shape.groups(n1);
        let ctx = self.context().clone();
        let level = ct.level();
        self.bsgs(ct, shape.slots(), n1, &groups, |i, pos| {
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
        P: Fn(usize, usize) -> Result<Cow<'p, Plaintext>, CkksError>,
    {
        if ct.slots() != slots {
            return Err(CkksError::SlotMismatch {
                left: ct.slots(),
                right: slots,
            });
        }
        let babies: BTreeSet<usize> = groups.values().flatten().copied().collect();
        let steps: Vec<isize> = babies.iter().map(|&j| j as isize).collect();
        let rotated: BTreeMap<usize, Ciphertext> = babies
            .iter()
            .copied()
            .zip(self.rotate_hoisted(ct, &steps)?)
            .collect();
        let mut out: Option<Ciphertext> = None;
        for (&i, group) in groups {
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
            let Some(inner) = inner else { continue };
            let moved = self.rotate(&inner, (n1 * i) as isize)?;
            out = Some(match out {
                None => moved,
                Some(mut acc) => {
                    self.add_assign(&mut acc, &moved)?;
                    acc
                }
            });
        }
        out.ok_or(CkksError::InvalidArgument {
            reason: "a linear transform with no diagonal",
        })
    }
}
