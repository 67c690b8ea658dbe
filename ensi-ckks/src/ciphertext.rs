//! Ciphertexts.

use crate::error::CkksError;
use crate::params::ParamsId;
use alloc::vec::Vec;
use ensi_math::{Ntt, RnsPoly};

/// A CKKS ciphertext `(c_0, c_1, ...)` in NTT form over the first `level + 1` primes of `Q`,
/// decrypting to `c_0 + c_1 s + c_2 s^2 + ...`, with its scale and slot count.
#[derive(Clone, Debug)]
pub struct Ciphertext {
    pub(crate) parts: Vec<RnsPoly<Ntt>>,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
    pub(crate) params_id: ParamsId,
    /// The seed `c_1` was expanded from, for fresh symmetric encryptions (half-size storage).
    pub(crate) seed: Option<[u8; 32]>,
}

impl Ciphertext {
    /// The level: the number of primes minus one.
    pub fn level(&self) -> usize {
        self.parts[0].limbs() - 1
    }

    /// The scale of the encrypted values.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The degree: 1 for a normal ciphertext, 2 after a product before relinearization.
    pub fn degree(&self) -> usize {
        self.parts.len() - 1
    }

    /// The parameter set this ciphertext belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.params_id
    }

    /// The polynomials `c_0, c_1, ...`.
    pub fn parts(&self) -> &[RnsPoly<Ntt>] {
        &self.parts
    }

    /// A ciphertext of the same slot count and parameter set with other polynomials and scale
    /// (the result of an operation on `self`; never seeded).
    pub(crate) fn derive(&self, parts: Vec<RnsPoly<Ntt>>, scale: f64) -> Self {
        Self {
            parts,
            scale,
            slots: self.slots,
            params_id: self.params_id,
            seed: None,
        }
    }

    /// Replaces the scale by `target` where the two agree to the evaluator's tolerance (a
    /// relative `2^-30`): removes the floating-point drift of exact scale bookkeeping, and
    /// refuses anything larger, so the scale never drifts silently.
    pub(crate) fn snap_scale(&mut self, target: f64) -> Result<(), CkksError> {
        check_scale(self.scale, target)?;
        self.scale = target;
        Ok(())
    }

    /// Sets the scale where the raw polynomial is known to encode the intended values at
    /// `scale` by construction (CoeffsToSlots' first stage); refuses a scale that is not
    /// finite and positive. Public code uses [`crate::Evaluator::set_scale`].
    pub(crate) fn reinterpret_scale(&mut self, scale: f64) -> Result<(), CkksError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(CkksError::InvalidEncodingScale { scale });
        }
        self.scale = scale;
        Ok(())
    }

    /// The seed of `c_1`, if this is a fresh symmetric encryption.
    pub fn seed(&self) -> Option<&[u8; 32]> {
        self.seed.as_ref()
    }
}

/// Scales closer than this relative difference are equal.
const SCALE_TOLERANCE: f64 = 1.0 / (1u64 << 30) as f64;

/// Two scales agree to [`SCALE_TOLERANCE`], or a [`CkksError::ScaleMismatch`].
pub(crate) fn check_scale(a: f64, b: f64) -> Result<(), CkksError> {
    if libm::fabs(a - b) > SCALE_TOLERANCE * libm::fmax(libm::fabs(a), libm::fabs(b)) {
        return Err(CkksError::ScaleMismatch { left: a, right: b });
    }
    Ok(())
}
