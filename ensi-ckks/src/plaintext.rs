//! Plaintexts: encoded polynomials in NTT form with their scale, level and slot count.

use crate::context::CkksContext;
use crate::error::CkksError;
use crate::params::ParamsId;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ensi_math::{Ntt, RnsPoly};
use num_complex::Complex64;

/// An encoded message: `m(X)` over the first `level + 1` primes of `Q`, in NTT form.
#[derive(Clone, Debug)]
pub struct Plaintext {
    pub(crate) poly: RnsPoly<Ntt>,
    pub(crate) scale: f64,
    pub(crate) slots: usize,
    pub(crate) params_id: ParamsId,
}

impl Plaintext {
    /// The level: the number of primes minus one.
    pub fn level(&self) -> usize {
        self.poly.limbs() - 1
    }

    /// The scale `Delta` the values were multiplied by.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The number of slots encoded.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The parameter set this plaintext belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.params_id
    }

    /// The polynomial.
    pub fn poly(&self) -> &RnsPoly<Ntt> {
        &self.poly
    }
}

impl CkksContext {
    /// Encodes up to `slots` complex values at `level` and `scale` (slot encoding).
    pub fn encode_complex(
        self: &Arc<Self>,
        values: &[Complex64],
        slots: usize,
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, CkksError> {
        self.check_level(level)?;
        let coeffs = self.encoder().encode_complex(values, slots, scale)?;
        self.plaintext_from_coeffs(&coeffs, slots, level, scale)
    }

    /// Encodes up to `slots` real values at `level` and `scale` (slot encoding).
    pub fn encode(
        self: &Arc<Self>,
        values: &[f64],
        slots: usize,
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, CkksError> {
        self.check_level(level)?;
        let coeffs = self.encoder().encode_real(values, slots, scale)?;
        self.plaintext_from_coeffs(&coeffs, slots, level, scale)
    }

    /// Encodes up to `N` real values directly on the coefficients (coefficient encoding); the
    /// plaintext reports `N` slots.
    pub fn encode_coefficients(
        self: &Arc<Self>,
        values: &[f64],
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, CkksError> {
        self.check_level(level)?;
        let coeffs = self.encoder().encode_coefficients(values, scale)?;
        self.plaintext_from_coeffs(&coeffs, self.n(), level, scale)
    }

    fn plaintext_from_coeffs(
        &self,
        coeffs: &[i128],
        slots: usize,
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, CkksError> {
        let n = self.n();
        let limbs = level + 1;
        let moduli = &self.ring().basis().moduli()[..limbs];
        // Coefficients below 2^64 in magnitude (the usual case: scale times slot values)
        // reduce with a 64-bit Barrett step instead of a 128-bit one; limbs in parallel.
        let small = coeffs
            .iter()
            .all(|c| c.unsigned_abs() <= u128::from(u64::MAX));
        let mut data = alloc::vec![0u64; limbs * n];
        ensi_math::par::for_each_limb(&mut data, n, |i, limb| {
            let m = &moduli[i];
            for (x, &c) in limb.iter_mut().zip(coeffs) {
                let r = if small {
                    m.reduce(c.unsigned_abs() as u64)
                } else {
                    m.reduce_u128(c.unsigned_abs())
                };
                *x = if c < 0 { m.neg(r) } else { r };
            }
        });
        let poly = RnsPoly::from_raw(self.ring(), limbs, data)?.into_ntt();
        Ok(Plaintext {
            poly,
            scale,
            slots,
            params_id: self.id(),
        })
    }

    /// The centred coefficients of a plaintext as `f64` (exact CRT through big integers when the
    /// plaintext has more than one prime).
    pub fn plaintext_coefficients(&self, pt: &Plaintext) -> Result<Vec<f64>, CkksError> {
        self.check_id(pt.params_id)?;
        Ok(centred_coefficients(&pt.poly))
    }

    /// Decodes a plaintext into its complex slots.
    pub fn decode_complex(&self, pt: &Plaintext) -> Result<Vec<Complex64>, CkksError> {
        let coeffs = self.plaintext_coefficients(pt)?;
        decode_slots(&coeffs, pt.slots, pt.scale, |slots| {
            self.encoder().decode_complex(&coeffs, slots, pt.scale)
        })
    }

    /// Decodes a plaintext into the real parts of its slots.
    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<f64>, CkksError> {
        Ok(self.decode_complex(pt)?.iter().map(|z| z.re).collect())
    }
}

/// The centred coefficients of `poly` as `f64`: Garner's mixed-radix conversion when it has
/// more than one prime (`RnsPoly::to_centered_f64`: no big integers, branch-free per
/// coefficient, within a few units in the last place of the exact CRT).
pub(crate) fn centred_coefficients(poly: &RnsPoly<Ntt>) -> Vec<f64> {
    poly.clone().into_coeff().to_centered_f64()
}

/// The slots of centred coefficients at `scale`: the coefficients themselves for coefficient
/// encoding (`slots == N`), otherwise what `fft_decode(slots)` gives.
pub(crate) fn decode_slots(
    coeffs: &[f64],
    slots: usize,
    scale: f64,
    fft_decode: impl FnOnce(usize) -> Result<Vec<Complex64>, CkksError>,
) -> Result<Vec<Complex64>, CkksError> {
    if slots == coeffs.len() {
        return Ok(coeffs
            .iter()
            .map(|&c| Complex64::new(c / scale, 0.0))
            .collect());
    }
    fft_decode(slots)
}
