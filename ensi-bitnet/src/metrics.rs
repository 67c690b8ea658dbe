//! Comparing two runs' logits: max absolute difference and top-1 agreement, the figures by
//! which the encrypted pipeline (and the sigmoid-for-softmax swap) is judged.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::matrix::Matrix;
use crate::ops::argmax;

/// How close two sets of logits are, accumulated over positions (and prompts).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogitComparison {
    /// Number of positions compared.
    pub positions: usize,
    /// Positions whose argmax (greedy next token) is the same in both.
    pub top1_agreements: usize,
    /// Largest absolute difference of any logit.
    pub max_abs_diff: f64,
}

impl LogitComparison {
    /// Fraction of positions with the same greedy token (1 when nothing was compared).
    pub fn top1_agreement(&self) -> f64 {
        if self.positions == 0 {
            1.0
        } else {
            self.top1_agreements as f64 / self.positions as f64
        }
    }

    /// Adds another comparison's positions to this one.
    pub fn merge(&mut self, other: &LogitComparison) {
        self.positions += other.positions;
        self.top1_agreements += other.top1_agreements;
        self.max_abs_diff = self.max_abs_diff.max(other.max_abs_diff);
    }
}

/// Compares two `[positions, vocab]` logit matrices row by row.
pub fn compare_logits<F: Float, G: Float>(a: &Matrix<F>, b: &Matrix<G>) -> Result<LogitComparison> {
    if a.rows() != b.rows() || a.cols() != b.cols() {
        return Err(Error::LengthMismatch {
            what: "compare_logits shapes".into(),
            expected: a.rows() * a.cols(),
            actual: b.rows() * b.cols(),
        });
    }
    let mut out = LogitComparison {
        positions: a.rows(),
        ..LogitComparison::default()
    };
    for r in 0..a.rows() {
        let (ra, rb) = (a.row(r), b.row(r));
        if argmax(ra) == argmax(rb) {
            out.top1_agreements += 1;
        }
        for (&x, &y) in ra.iter().zip(rb) {
            let d = x.to_f64() - y.to_f64();
            let d = if d < 0.0 { -d } else { d };
            // NaN compares false: make it visible as an infinite difference.
            out.max_abs_diff = if d.is_nan() {
                f64::INFINITY
            } else {
                out.max_abs_diff.max(d)
            };
        }
    }
    Ok(out)
}
