//! Rectangular matrices on periodically replicated vectors.
//!
//! A vector `x` of length `w` is *replicated with period `W`* (`W = w` rounded up to a power of
//! two, zero-padded) when slot `t` holds `x[t mod W]`. On such a vector a rotation of the whole
//! slot vector by `k` is a cyclic rotation by `k` inside every period, so an `m x w` matrix needs
//! no more diagonals than its smaller padded side:
//!
//! - **square and tall** (`Mo >= W`, `Mo = m` rounded up to a power of two): `W` diagonals
//!   `D_k[t] = M[t mod Mo][(t mod Mo + k) mod W]` (the diagonals `k` and `k + W` of the
//!   `Mo x Mo` matrix see the same rotated input and are merged); the output is `y = M x`
//!   replicated with period `Mo`.
//! - **wide** (`Mo < W`): the hybrid method of Juvekar, Vaikuntanathan and Chandrakasan
//!   (GAZELLE, USENIX Security 2018, §5.2): `Mo` extended diagonals
//!   `d_k[t] = M[(t mod W) mod Mo][(t mod W + k) mod W]`, then `log2(W / Mo)` rotate-and-add
//!   steps by `Mo, 2 Mo, ...` fold the `W / Mo` partial sums of every period; the output is `y`
//!   replicated with period `Mo`.
//!
//! A matrix whose entries vanish unless `i = j (mod s)` for a power of two `s` (a Kronecker
//! product `A ⊗ I_s`, as in the column-block layout of ensi-nn where slot `c s + t` holds
//! column `c` of token `t`) has non-zero diagonals only at multiples of `s`:
//! [`ReplicatedMatrix::with_stride`] keeps those alone, `s` times fewer products.
//!
//! The diagonals are computed from the matrix entries on demand and streamed through
//! [`Evaluator::linear_transform_streamed`], so nothing of size `slots x diagonals` is stored.

use super::{BabySteps, TransformShape};
use crate::ciphertext::Ciphertext;
use crate::context::CkksContext;
use crate::error::CkksError;
use crate::evaluator::Evaluator;
use alloc::vec::Vec;
use num_complex::Complex64;

/// An `m x w` real matrix, given by its entries, applied to vectors replicated with period
/// `W = w.next_power_of_two()` (see the module documentation).
#[derive(Clone, Debug)]
pub struct ReplicatedMatrix<F> {
    slots: usize,
    rows: usize,
    cols: usize,
    in_period: usize,
    out_period: usize,
    stride: usize,
    entry: F,
    /// Cost of a giant-step rotation relative to a hoisted one (see [`TransformShape`]).
    pub bsgs_ratio: f64,
}

impl<F: Fn(usize, usize) -> f64> ReplicatedMatrix<F> {
    /// The `rows x cols` matrix with entries `entry(i, j)`, on `slots` slots. Both padded sides
    /// must fit in the slots.
    pub fn new(slots: usize, rows: usize, cols: usize, entry: F) -> Result<Self, CkksError> {
        if rows == 0 || cols == 0 {
            return Err(CkksError::InvalidArgument {
                reason: "a matrix needs at least one row and one column",
            });
        }
        let (in_period, out_period) = (cols.next_power_of_two(), rows.next_power_of_two());
        if !slots.is_power_of_two() || in_period > slots || out_period > slots {
            return Err(CkksError::InvalidArgument {
                reason: "the matrix's padded sides must fit in the slot count",
            });
        }
        Ok(Self {
            slots,
            rows,
            cols,
            in_period,
            out_period,
            stride: 1,
            entry,
            bsgs_ratio: 2.0,
        })
    }

    /// Keeps only the diagonals at multiples of `stride` (a power of two dividing both padded
    /// sides). The caller asserts that `M[i][j] = 0` whenever `i != j (mod stride)`; the other
    /// diagonals are then zero and skipped.
    pub fn with_stride(mut self, stride: usize) -> Result<Self, CkksError> {
        if !stride.is_power_of_two() || stride > self.in_period.min(self.out_period) {
            return Err(CkksError::InvalidArgument {
                reason: "the stride must be a power of two no larger than the padded sides",
            });
        }
        self.stride = stride;
        Ok(self)
    }

    /// The period of the input replication, `W`.
    pub fn input_period(&self) -> usize {
        self.in_period
    }

    /// The period of the output replication, `Mo`.
    pub fn output_period(&self) -> usize {
        self.out_period
    }

    /// `M[i][j]`, zero in the padding.
    fn at(&self, i: usize, j: usize) -> f64 {
        if i < self.rows && j < self.cols {
            (self.entry)(i, j)
        } else {
            0.0
        }
    }

    fn wide(&self) -> bool {
        self.out_period < self.in_period
    }

    /// The diagonal indices and the BSGS plan.
    pub fn shape(&self) -> Result<TransformShape, CkksError> {
        let count = self.in_period.min(self.out_period);
        let mut shape = TransformShape::new(
            self.slots,
            (0..count).step_by(self.stride).map(|k| k as isize),
        )?;
        shape.bsgs_ratio = self.bsgs_ratio;
        Ok(shape)
    }

    /// Diagonal `k` (`0 <= k < min(W, Mo)`, a multiple of the stride), one value per slot.
    pub fn diagonal(&self, k: usize) -> Vec<Complex64> {
        let (w, mo) = (self.in_period, self.out_period);
        (0..self.slots)
            .map(|t| {
                let v = if self.wide() {
                    let r = t % w;
                    self.at(r % mo, (r + k) % w)
                } else {
                    let i = t % mo;
                    self.at(i, (i + k) % w)
                };
                Complex64::new(v, 0.0)
            })
            .collect()
    }

    /// The baby steps its product rotates the input by (zero included).
    pub fn baby_steps(&self) -> Result<alloc::collections::BTreeSet<usize>, CkksError> {
        Ok(self.shape()?.baby_steps())
    }

    /// The rotate-and-add steps after the product (wide matrices only).
    pub fn sum_steps(&self) -> Vec<isize> {
        let mut steps = Vec::new();
        let mut s = self.out_period;
        while self.wide() && s < self.in_period {
            steps.push(s as isize);
            s *= 2;
        }
        steps
    }

    /// Every rotation the evaluation needs (for key generation).
    pub fn rotations(&self) -> Result<Vec<isize>, CkksError> {
        let mut r = self.shape()?.rotations();
        r.extend(self.sum_steps());
        r.sort_unstable();
        r.dedup();
        Ok(r)
    }

    /// The Galois elements of [`Self::rotations`].
    pub fn galois_elements(&self, ctx: &CkksContext) -> Result<Vec<usize>, CkksError> {
        let mut g: Vec<usize> = self
            .rotations()?
            .into_iter()
            .map(|r| ctx.rotation_galois_element(r))
            .collect();
        g.sort_unstable();
        g.dedup();
        Ok(g)
    }
}

impl Evaluator {
    /// `y = M x` for `x` replicated with period [`ReplicatedMatrix::input_period`] in `ct`; the
    /// result holds `y` replicated with period [`ReplicatedMatrix::output_period`], at scale
    /// `ct.scale() * pt_scale` (no rescale). Diagonals are streamed (one plaintext at a time).
    pub fn replicated_matvec<F: Fn(usize, usize) -> f64 + Sync>(
        &self,
        ct: &Ciphertext,
        matrix: &ReplicatedMatrix<F>,
        pt_scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        let shape = matrix.shape()?;
        let out =
            self.linear_transform_streamed(ct, &shape, pt_scale, |k| Ok(matrix.diagonal(k)))?;
        self.fold_sums(out, matrix)
    }

    /// [`Self::replicated_matvec`] from baby-step rotations of the input computed beforehand
    /// ([`Self::baby_steps`] for a superset of [`ReplicatedMatrix::baby_steps`]): several
    /// matrices applied to one ciphertext share one hoisted set of rotations.
    pub fn replicated_matvec_from<F: Fn(usize, usize) -> f64 + Sync>(
        &self,
        babies: &BabySteps,
        matrix: &ReplicatedMatrix<F>,
        pt_scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        let shape = matrix.shape()?;
        let out = self
            .linear_transform_streamed_from(babies, &shape, pt_scale, |k| Ok(matrix.diagonal(k)))?;
        self.fold_sums(out, matrix)
    }

    /// The rotate-and-adds of a wide matrix ([`ReplicatedMatrix::sum_steps`]).
    fn fold_sums<F: Fn(usize, usize) -> f64>(
        &self,
        mut out: Ciphertext,
        matrix: &ReplicatedMatrix<F>,
    ) -> Result<Ciphertext, CkksError> {
        for step in matrix.sum_steps() {
            let r = self.rotate(&out, step)?;
            self.add_assign(&mut out, &r)?;
        }
        Ok(out)
    }
}
