//! Linear transforms on the slots, given by their non-zero diagonals and evaluated by
//! baby-step giant-step with hoisted baby rotations (Halevi–Shoup 2014/2018, "Algorithms in
//! HElib" / "Faster homomorphic linear transformations in HElib"; the BSGS form of
//! Cheon–Han–Kim–Kim–Song 2018, §4.1):
//!
//! ```text
//! M v = sum_k diag_k ⊙ rot_k(v) = sum_i rot_{n1 i}( sum_j rot_{-n1 i}(diag_{n1 i + j}) ⊙ rot_j(v) )
//! ```
//!
//! with `rot_k(v)[t] = v[t + k mod n]` (the evaluator's left rotation) and `diag_k[t] =
//! M[t][t + k mod n]`. The baby rotations `rot_j(v)` share one decomposition (hoisting); each
//! giant step costs one rotation. The split `n1` is chosen to minimise
//! `babies + ratio * giants` (rotations at a giant step cost about `ratio` times a hoisted one).

use crate::context::CkksContext;
use crate::error::CkksError;
use crate::plaintext::Plaintext;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use num_complex::Complex64;

mod eval;
pub use eval::BabySteps;
mod rect;

pub use rect::ReplicatedMatrix;

/// The shape of a linear transform: its slot count and the indices of its non-zero diagonals.
/// It alone decides the baby-step/giant-step split and the rotations, so a transform whose
/// diagonals are produced on the fly ([`crate::Evaluator::linear_transform_streamed`]) is planned, and
/// its keys requested, without materialising a diagonal.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformShape {
    slots: usize,
    indices: BTreeSet<usize>,
    /// Cost of a giant-step rotation relative to a hoisted baby-step one.
    pub bsgs_ratio: f64,
}

impl TransformShape {
    /// The shape with non-zero diagonals at `indices` (taken modulo `slots`, a power of two).
    pub fn new(slots: usize, indices: impl IntoIterator<Item = isize>) -> Result<Self, CkksError> {
        if !slots.is_power_of_two() {
            return Err(CkksError::InvalidSlotCount { slots, max: slots });
        }
        let indices: BTreeSet<usize> = indices
            .into_iter()
            .map(|k| k.rem_euclid(slots as isize) as usize)
            .collect();
        if indices.is_empty() {
            return Err(CkksError::InvalidArgument {
                reason: "a linear transform with no diagonal",
            });
        }
        Ok(Self {
            slots,
            indices,
            bsgs_ratio: 2.0,
        })
    }

    /// The slot count.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The indices of the non-zero diagonals, ascending.
    pub fn indices(&self) -> &BTreeSet<usize> {
        &self.indices
    }

    /// The baby-step size `n1` (a power of two) minimising `babies + ratio * giants`.
    pub fn baby_step(&self) -> usize {
        let mut best = (f64::MAX, 1usize);
        let mut n1 = 1usize;
        while n1 <= self.slots {
            let (babies, giants) = self.split_counts(n1);
            let cost = babies as f64 + self.bsgs_ratio * giants as f64;
            if cost < best.0 {
                best = (cost, n1);
            }
            n1 *= 2;
        }
        best.1
    }

    /// The number of non-zero baby steps and giant steps for a split `n1`.
    pub fn split_counts(&self, n1: usize) -> (usize, usize) {
        let babies: BTreeSet<usize> = self.indices.iter().map(|k| k % n1).collect();
        let giants: BTreeSet<usize> = self.indices.iter().map(|k| k / n1).collect();
        (
            babies.iter().filter(|&&j| j != 0).count(),
            giants.iter().filter(|&&i| i != 0).count(),
        )
    }

    /// The rotations (in slots) the evaluation needs: non-zero baby steps `j` and giant steps
    /// `n1 i`.
    pub fn rotations(&self) -> Vec<isize> {
        let n1 = self.baby_step();
        let mut r: BTreeSet<isize> = BTreeSet::new();
        for &k in &self.indices {
            if k % n1 != 0 {
                r.insert((k % n1) as isize);
            }
            if k / n1 != 0 {
                r.insert((n1 * (k / n1)) as isize);
            }
        }
        r.into_iter().collect()
    }

    /// The Galois elements the evaluation needs, for key generation.
    pub fn galois_elements(&self, ctx: &CkksContext) -> Vec<usize> {
        let mut g: Vec<usize> = self
            .rotations()
            .into_iter()
            .map(|r| ctx.rotation_galois_element(r))
            .collect();
        g.sort_unstable();
        g.dedup();
        g
    }

    /// The diagonal indices grouped by giant step `i` (`k = n1 i + j`), as `(i, [j])`.
    /// The baby steps `k mod n1` of the evaluation (the split of [`Self::baby_step`]),
    /// zero included: what [`crate::Evaluator::baby_steps`] must hold for this shape.
    pub fn baby_steps(&self) -> BTreeSet<usize> {
        let n1 = self.baby_step();
        self.indices.iter().map(|k| k % n1).collect()
    }

    pub(crate) fn groups(&self, n1: usize) -> BTreeMap<usize, Vec<usize>> {
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &k in &self.indices {
            groups.entry(k / n1).or_default().push(k % n1);
        }
        groups
    }
}

/// A linear map on `slots` complex slots by its non-zero diagonals (index `k` in `0..slots`).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearTransform {
    slots: usize,
    diagonals: BTreeMap<usize, Vec<Complex64>>,
    /// Cost of a giant-step rotation relative to a hoisted baby-step one.
    pub bsgs_ratio: f64,
}

/// Left rotation of a plaintext vector: `out[t] = v[t + k mod n]`.
pub(crate) fn rotate_vec(v: &[Complex64], k: isize) -> Vec<Complex64> {
    let n = v.len() as isize;
    (0..n).map(|t| v[(t + k).rem_euclid(n) as usize]).collect()
}

impl LinearTransform {
    /// The transform with the given diagonals (`diag_k[t] = M[t][t + k]`), each of length
    /// `slots` (a power of two). Diagonal indices are taken modulo `slots`; repeated indices add.
    pub fn from_diagonals(
        slots: usize,
        diagonals: impl IntoIterator<Item = (isize, Vec<Complex64>)>,
    ) -> Result<Self, CkksError> {
        if !slots.is_power_of_two() {
            return Err(CkksError::InvalidSlotCount { slots, max: slots });
        }
        let mut map: BTreeMap<usize, Vec<Complex64>> = BTreeMap::new();
        for (k, d) in diagonals {
            if d.len() != slots {
                return Err(CkksError::InvalidArgument {
                    reason: "a diagonal must have one value per slot",
                });
            }
            let k = k.rem_euclid(slots as isize) as usize;
            match map.get_mut(&k) {
                Some(acc) => acc.iter_mut().zip(&d).for_each(|(a, b)| *a += b),
                None => {
                    map.insert(k, d);
                }
            }
        }
        Ok(Self {
            slots,
            diagonals: map,
            bsgs_ratio: 2.0,
        })
    }

    /// The transform of a dense `slots x slots` matrix (rows of equal length); diagonals that
    /// are entirely zero are dropped.
    pub fn from_matrix(rows: &[Vec<Complex64>]) -> Result<Self, CkksError> {
        let n = rows.len();
        if rows.iter().any(|r| r.len() != n) {
            return Err(CkksError::InvalidArgument {
                reason: "the matrix must be square",
            });
        }
        let diags = (0..n).filter_map(|k| {
            let d: Vec<Complex64> = (0..n).map(|t| rows[t][(t + k) % n]).collect();
            d.iter()
                .any(|z| z.norm_sqr() > 0.0)
                .then_some((k as isize, d))
        });
        Self::from_diagonals(n, diags)
    }

    /// The identity on `slots` slots.
    pub fn identity(slots: usize) -> Result<Self, CkksError> {
        Self::from_diagonals(slots, [(0, vec![Complex64::new(1.0, 0.0); slots])])
    }

    /// The slot count.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The non-zero diagonals by index.
    pub fn diagonals(&self) -> &BTreeMap<usize, Vec<Complex64>> {
        &self.diagonals
    }

    /// Applies the transform to a plaintext vector (the reference the homomorphic evaluation is
    /// tested against).
    pub fn apply(&self, v: &[Complex64]) -> Vec<Complex64> {
        let mut out = vec![Complex64::new(0.0, 0.0); self.slots];
        for (&k, d) in &self.diagonals {
            let r = rotate_vec(v, k as isize);
            for ((o, a), b) in out.iter_mut().zip(d).zip(&r) {
                *o += a * b;
            }
        }
        out
    }

    /// `self * other` (apply `other` first), in diagonal form:
    /// `(A B)_{k + l} += a_k ⊙ rot_k(b_l)`.
    pub fn compose(&self, other: &Self) -> Result<Self, CkksError> {
        if self.slots != other.slots {
            return Err(CkksError::SlotMismatch {
                left: self.slots,
                right: other.slots,
            });
        }
        let n = self.slots;
        let mut out: BTreeMap<usize, Vec<Complex64>> = BTreeMap::new();
        for (&k, a) in &self.diagonals {
            for (&l, b) in &other.diagonals {
                let rb = rotate_vec(b, k as isize);
                let entry = out
                    .entry((k + l) % n)
                    .or_insert_with(|| vec![Complex64::new(0.0, 0.0); n]);
                for ((e, x), y) in entry.iter_mut().zip(a).zip(&rb) {
                    *e += x * y;
                }
            }
        }
        out.retain(|_, d| d.iter().any(|z| z.norm_sqr() > 1e-30));
        Ok(Self {
            slots: n,
            diagonals: out,
            bsgs_ratio: self.bsgs_ratio,
        })
    }

    /// Multiplies every entry by `c`.
    pub fn scaled(mut self, c: Complex64) -> Self {
        for d in self.diagonals.values_mut() {
            d.iter_mut().for_each(|z| *z *= c);
        }
        self
    }

    /// The shape (slot count and diagonal indices) with this transform's BSGS ratio.
    pub fn shape(&self) -> TransformShape {
        TransformShape {
            slots: self.slots,
            indices: self.diagonals.keys().copied().collect(),
            bsgs_ratio: self.bsgs_ratio,
        }
    }

    /// The baby-step size `n1` (a power of two) minimising `babies + ratio * giants`.
    pub fn baby_step(&self) -> usize {
        self.shape().baby_step()
    }

    /// The rotations (in slots) the evaluation needs: non-zero baby steps `j` and giant steps
    /// `n1 i`.
    pub fn rotations(&self) -> Vec<isize> {
        self.shape().rotations()
    }

    /// The Galois elements the evaluation needs, for key generation.
    pub fn galois_elements(&self, ctx: &CkksContext) -> Vec<usize> {
        self.shape().galois_elements(ctx)
    }

    /// Encodes the (pre-rotated) diagonals at `level` and `scale`, ready for evaluation.
    pub fn encode(
        &self,
        ctx: &Arc<CkksContext>,
        level: usize,
        scale: f64,
    ) -> Result<EncodedLinearTransform, CkksError> {
        let n1 = self.baby_step();
        let mut groups: BTreeMap<usize, Vec<(usize, Plaintext)>> = BTreeMap::new();
        for (&k, d) in &self.diagonals {
            let (i, j) = (k / n1, k % n1);
            let shifted = rotate_vec(d, -((n1 * i) as isize));
            let pt = ctx.encode_complex(&shifted, self.slots, level, scale)?;
            groups.entry(i).or_default().push((j, pt));
        }
        Ok(EncodedLinearTransform {
            slots: self.slots,
            n1,
            level,
            scale,
            groups,
        })
    }
}

/// A [`LinearTransform`] encoded for one level and scale: plaintext diagonals grouped by giant
/// step.
#[derive(Clone, Debug)]
pub struct EncodedLinearTransform {
    slots: usize,
    n1: usize,
    level: usize,
    scale: f64,
    groups: BTreeMap<usize, Vec<(usize, Plaintext)>>,
}

impl EncodedLinearTransform {
    /// The bytes the encoded diagonals hold.
    pub fn heap_bytes(&self) -> usize {
        self.groups
            .values()
            .flatten()
            .map(|(_, pt)| pt.poly.limbs() * pt.poly.n() * 8)
            .sum()
    }

    /// The level the diagonals are encoded at (the input ciphertext's level).
    pub fn level(&self) -> usize {
        self.level
    }

    /// The scale of the diagonals (the output scale is the input's times this, before rescaling).
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The baby-step size.
    pub fn baby_step(&self) -> usize {
        self.n1
    }
}
