//! Operation counts: every [`Evaluator`] counts what it executes, so a cost model's predictions
//! can be checked exactly against a run (take [`Evaluator::op_count`] before and after, and
//! subtract). Counters are relaxed atomics: the evaluator stays `Sync`, and counting costs a few
//! nanoseconds against operations of microseconds or more.

use super::Evaluator;
use core::ops::Sub;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Counts of executed operations (a snapshot; see [`Evaluator::op_count`]).
///
/// Operations nested in others are counted too: a bootstrap counts one `bootstrap` and every
/// rotation, product and rescale inside it; a linear transform counts its products, hoisted
/// baby steps and giant rotations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct OpCount {
    /// Additions, subtractions and negations (ciphertext, plaintext or constant operand).
    pub add: usize,
    /// Ciphertext-plaintext products (fused multiply-accumulates included).
    pub plain_mul: usize,
    /// Products by a constant, an integer or a monomial (`mul_by_i`).
    pub const_mul: usize,
    /// Plaintexts the evaluator encoded itself (streamed linear-transform diagonals).
    pub encode: usize,
    /// Ciphertext-ciphertext tensor products.
    pub tensor: usize,
    /// Relinearizations (key switches of a degree-2 part).
    pub relinearize: usize,
    /// Rescales.
    pub rescale: usize,
    /// Rotations with a decomposition of their own.
    pub rotate: usize,
    /// Rotations sharing a decomposition (hoisted).
    pub hoisted_rotate: usize,
    /// Conjugations.
    pub conjugate: usize,
    /// Bootstraps.
    pub bootstrap: usize,
    /// Wall-clock time spent inside bootstraps, in microseconds (measured with the `std`
    /// feature; always 0 without it, as there is no clock).
    pub bootstrap_micros: usize,
}

impl OpCount {
    /// Every key-switching operation: relinearizations, rotations (plain and hoisted) and
    /// conjugations.
    pub fn key_switches(&self) -> usize {
        self.relinearize + self.rotate + self.hoisted_rotate + self.conjugate
    }
}

impl Sub for OpCount {
    type Output = OpCount;

    /// The operations between two snapshots (`after - before`).
    fn sub(self, o: OpCount) -> OpCount {
        OpCount {
            add: self.add - o.add,
            plain_mul: self.plain_mul - o.plain_mul,
            const_mul: self.const_mul - o.const_mul,
            encode: self.encode - o.encode,
            tensor: self.tensor - o.tensor,
            relinearize: self.relinearize - o.relinearize,
            rescale: self.rescale - o.rescale,
            rotate: self.rotate - o.rotate,
            hoisted_rotate: self.hoisted_rotate - o.hoisted_rotate,
            conjugate: self.conjugate - o.conjugate,
            bootstrap: self.bootstrap - o.bootstrap,
            bootstrap_micros: self.bootstrap_micros - o.bootstrap_micros,
        }
    }
}

/// Which counter an operation increments.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Add,
    PlainMul,
    ConstMul,
    Encode,
    Tensor,
    Relinearize,
    Rescale,
    Rotate,
    HoistedRotate,
    Conjugate,
    Bootstrap,
    BootstrapMicros,
}

/// The live counters of an evaluator.
#[derive(Debug, Default)]
pub(crate) struct Counters([AtomicUsize; 12]);

impl Counters {
    pub(crate) fn bump(&self, op: Op, by: usize) {
        self.0[op as usize].fetch_add(by, Ordering::Relaxed);
    }

    fn get(&self, op: Op) -> usize {
        self.0[op as usize].load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> OpCount {
        OpCount {
            add: self.get(Op::Add),
            plain_mul: self.get(Op::PlainMul),
            const_mul: self.get(Op::ConstMul),
            encode: self.get(Op::Encode),
            tensor: self.get(Op::Tensor),
            relinearize: self.get(Op::Relinearize),
            rescale: self.get(Op::Rescale),
            rotate: self.get(Op::Rotate),
            hoisted_rotate: self.get(Op::HoistedRotate),
            conjugate: self.get(Op::Conjugate),
            bootstrap: self.get(Op::Bootstrap),
            bootstrap_micros: self.get(Op::BootstrapMicros),
        }
    }
}

impl Evaluator {
    /// The operations this evaluator has executed since it was built (or last reset).
    pub fn op_count(&self) -> OpCount {
        self.counters.snapshot()
    }

    /// Sets every counter to zero.
    pub fn reset_op_count(&self) {
        for c in &self.counters.0 {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Counts one bootstrap (called by the bootstrapper that owns this evaluator).
    pub(crate) fn count(&self, op: Op, by: usize) {
        self.counters.bump(op, by);
    }
}
