//! A small dense row-major matrix, the tensor type of the reference forward pass.

use alloc::vec;
use alloc::vec::Vec;

use crate::float::Float;

/// A dense row-major `rows x cols` matrix.
///
/// In the forward pass a row is a token (or a query position) and a column a hidden dimension,
/// like a `[seq, hidden]` tensor of PyTorch with the batch dimension dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<F> {
    rows: usize,
    cols: usize,
    data: Vec<F>,
}

impl<F: Float> Matrix<F> {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![F::ZERO; rows * cols],
        }
    }

    /// Wraps row-major data; `None` if `data.len() != rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<F>) -> Option<Self> {
        (rows.checked_mul(cols) == Some(data.len())).then_some(Self { rows, cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r` (panics if `r >= rows`, like slice indexing).
    pub fn row(&self, r: usize) -> &[F] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Mutable row `r` (panics if `r >= rows`, like slice indexing).
    pub fn row_mut(&mut self, r: usize) -> &mut [F] {
        &mut self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Element `(r, c)` (panics when out of range, like slice indexing).
    pub fn get(&self, r: usize, c: usize) -> F {
        self.data[r * self.cols + c]
    }

    /// All elements, row-major.
    pub fn as_slice(&self) -> &[F] {
        &self.data
    }

    /// Consumes the matrix, returning its row-major data.
    pub fn into_vec(self) -> Vec<F> {
        self.data
    }

    /// Column `c` as a new vector: in the column-wise (ENSI) encoding, this is what one
    /// ciphertext holds (panics if `c >= cols`).
    pub fn column(&self, c: usize) -> Vec<F> {
        (0..self.rows).map(|r| self.get(r, c)).collect()
    }

    /// Largest absolute element-wise difference to `other` (infinite if the shapes differ).
    pub fn max_abs_diff(&self, other: &Self) -> f64 {
        if self.rows != other.rows || self.cols != other.cols {
            return f64::INFINITY;
        }
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a.to_f64() - b.to_f64()).abs())
            .fold(0.0, f64::max)
    }
}
