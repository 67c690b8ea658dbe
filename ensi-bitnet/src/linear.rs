//! BitLinear layers: a ternary weight (the model as it runs) or, for latent checkpoints loaded
//! with weight quantization off, the dense latent weight (to measure what ternarization costs).

use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::ternary::{TernaryMatrix, matvec_rows, ternary_matvec};

/// A dense row-major `rows x cols` weight matrix (no quantization).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseMatrix {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

impl DenseMatrix {
    /// Checks the length is `rows * cols` and every value is finite.
    pub fn new(rows: usize, cols: usize, values: Vec<f32>) -> Result<Self> {
        let expected = rows.saturating_mul(cols);
        if values.len() != expected {
            return Err(Error::LengthMismatch {
                what: "dense matrix values".into(),
                expected,
                actual: values.len(),
            });
        }
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidValue {
                name: "dense weight".into(),
                index,
                reason: "not finite",
            });
        }
        Ok(Self { rows, cols, values })
    }

    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (input features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The weights, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Row `r` (panics if `r >= rows`).
    pub fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }
}

/// The weight of one BitLinear projection (no bias: BitNet b1.58 has none).
#[derive(Debug, Clone, PartialEq)]
pub enum Linear {
    /// Ternary values and a per-tensor scale: the BitNet b1.58 model.
    Ternary(TernaryMatrix),
    /// Full-precision latent weights (weight quantization switched off at load time).
    Dense(DenseMatrix),
}

impl Linear {
    /// Number of output features.
    pub fn rows(&self) -> usize {
        match self {
            Linear::Ternary(m) => m.rows(),
            Linear::Dense(m) => m.rows(),
        }
    }

    /// Number of input features.
    pub fn cols(&self) -> usize {
        match self {
            Linear::Ternary(m) => m.cols(),
            Linear::Dense(m) => m.cols(),
        }
    }

    /// The ternary weight, if this layer is ternary.
    pub fn as_ternary(&self) -> Option<&TernaryMatrix> {
        match self {
            Linear::Ternary(m) => Some(m),
            Linear::Dense(_) => None,
        }
    }

    /// The real-valued weight matrix, row-major, in precision `F`.
    pub fn dequantize<F: Float>(&self) -> Vec<F> {
        match self {
            Linear::Ternary(m) => m.dequantize(),
            Linear::Dense(m) => m.values.iter().map(|&v| F::from_f32(v)).collect(),
        }
    }

    /// `y = W x`, with per-token int8 activation quantization when `act_quant` is set (see
    /// [`ternary_matvec`]).
    pub fn forward<F: Float>(&self, x: &[F], act_quant: bool, out: &mut [F]) -> Result<()> {
        match self {
            Linear::Ternary(m) => ternary_matvec(m, x, act_quant, out),
            Linear::Dense(m) => dense_matvec(m, x, act_quant, out),
        }
    }
}

fn dense_matvec<F: Float>(m: &DenseMatrix, x: &[F], act_quant: bool, out: &mut [F]) -> Result<()> {
    matvec_rows(
        "dense matvec",
        m.rows,
        m.cols,
        x,
        act_quant,
        out,
        |r, input, act_scale| {
            let mut acc = F::ZERO;
            for (&w, &v) in m.row(r).iter().zip(input) {
                acc += F::from_f32(w) * v;
            }
            match act_scale {
                Some(s) => acc / s,
                None => acc,
            }
        },
    )
}
