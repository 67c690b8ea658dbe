//! CKKS bootstrapping: refreshes a ciphertext at level 0 to a higher level without the secret key.
//!
//! The pipeline (Cheon–Han–Kim–Kim–Song, EUROCRYPT 2018; with the improvements of
//! Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux, EUROCRYPT 2021, and the sparse-secret
//! encapsulation of Bossuat–Troncoso-Pastoriza–Hubaux, ACNS 2022), every stage public:
//!
//! 1. [`Bootstrapper::mod_raise`]: switch the level-0 ciphertext to an ephemeral sparse secret
//!    `s'` (Hamming weight `h`), read it modulo the whole chain `Q` (its plaintext becomes
//!    `t = Delta m + e + q_0 I` with `|I| <= (h + 1) / 2`), and switch back to `s`.
//!    For `n < N/2` slots, a partial trace (sum of rotations by multiples of `n`) then projects
//!    onto the subring of the sparse packing.
//! 2. [`Bootstrapper::coeffs_to_slots`]: the inverse special FFT as `cts_level_budget` BSGS
//!    linear transforms; the slots then hold `t / (q_0 (K + 1))` in bit-reversed order, split into
//!    real and imaginary parts (conjugation).
//! 3. [`Bootstrapper::eval_mod`]: `x -> sin(2 pi x) / 2 pi`, approximating `x mod 1`, as a
//!    Chebyshev interpolant of `cos(2 pi ((K + 1) y - 1/4) / 2^r)` on `[-1, 1]` followed by `r`
//!    double-angle steps `c -> 2 c^2 - 1`, with an optional arcsine correction.
//! 4. [`Bootstrapper::slots_to_coeffs`]: the forward special FFT as `stc_level_budget`
//!    transforms, which also rescales the result back to `Delta`.
//!
//! The client makes the keys ([`BootstrapKeys::generate`], or streamed one at a time by
//! [`generate_bootstrap_keys`]); the server holds only them. The dense-to-sparse key spans only
//! `q_0 p_0` (see [`keys`] and [`crate::security`]).

mod bootstrapper;
pub(crate) mod dft;
pub mod keys;
mod params;

pub use bootstrapper::{BootstrapOptions, Bootstrapper, StageTimes};
pub use keys::{
    BootstrapKeys, DenseToSparseKey, SparseToDenseKey, generate_bootstrap_keys,
    generate_encapsulation_keys,
};
pub use params::BootstrapParametersLiteral;
