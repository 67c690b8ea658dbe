//! Encryption with the public or the secret key, and decryption.
//!
//! Public-key encryption follows Cheon–Kim–Kim–Song 2017, §3.4: for a ternary `u` and Gaussian
//! `e_0, e_1`, `ct = (b u + e_0 + m, a u + e_1)`. Secret-key encryption is `(-a s + e + m, a)`
//! with `a` expanded from a fresh 32-byte seed, so the ciphertext can be stored or sent at half
//! size. Decryption computes `c_0 + c_1 s (+ c_2 s^2)` with branch-free arithmetic only; every
//! temporary that depends on the secret is zeroized.

use crate::ciphertext::Ciphertext;
use crate::context::CkksContext;
use crate::error::CkksError;
use crate::keys::{PublicKey, SecretKey};
use crate::plaintext::Plaintext;
use crate::rlwe::{rlwe_sample_under, small_poly};
use alloc::borrow::Cow;
use alloc::sync::Arc;
use alloc::vec;
use ensi_math::{Ntt, RnsPoly, sample};
use rand_core::{CryptoRng, RngCore};

impl PublicKey {
    /// Encrypts `pt` (at its level) with this public key.
    pub fn encrypt<G: RngCore + CryptoRng>(
        &self,
        ctx: &Arc<CkksContext>,
        pt: &Plaintext,
        rng: &mut G,
    ) -> Result<Ciphertext, CkksError> {
        ctx.check_id(self.params_id)?;
        ctx.check_id(pt.params_id)?;
        let limbs = pt.level() + 1;
        let drop = self.b.limbs() - limbs;
        // At the key's own level the key is used in place; below it, on a truncated copy.
        let (b, a) = if drop == 0 {
            (Cow::Borrowed(&self.b), Cow::Borrowed(&self.a))
        } else {
            let (mut b, mut a) = (self.b.clone(), self.a.clone());
            b.drop_last_limbs(drop)?;
            a.drop_last_limbs(drop)?;
            (Cow::Owned(b), Cow::Owned(a))
        };
        let ring = ctx.ring();
        let u = small_poly(ring, limbs, rng, sample::ternary::<G>)?;
        let e0 = small_poly(ring, limbs, rng, sample::gaussian::<G>)?;
        let e1 = small_poly(ring, limbs, rng, sample::gaussian::<G>)?;
        let mut c0 = b.try_mul(&u)?;
        c0.try_add_assign(&e0)?;
        c0.try_add_assign(&pt.poly)?;
        let mut c1 = a.try_mul(&u)?;
        c1.try_add_assign(&e1)?;
        Ok(Ciphertext {
            parts: vec![c0, c1],
            scale: pt.scale,
            slots: pt.slots,
            params_id: ctx.id(),
            seed: None,
        })
    }
}

impl SecretKey {
    /// Encrypts `pt` (at its level) with the secret key; the ciphertext remembers the seed of
    /// `c_1`, so its serialized form is half size.
    pub fn encrypt<G: RngCore + CryptoRng>(
        &self,
        ctx: &Arc<CkksContext>,
        pt: &Plaintext,
        rng: &mut G,
    ) -> Result<Ciphertext, CkksError> {
        ctx.check_id(self.params_id)?;
        ctx.check_id(pt.params_id)?;
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let s = self.restricted(pt.level() + 1)?;
        let (mut c0, c1) = rlwe_sample_under(ctx.ring(), &s, &seed, rng)?;
        c0.try_add_assign(&pt.poly)?;
        Ok(Ciphertext {
            parts: vec![c0, c1],
            scale: pt.scale,
            slots: pt.slots,
            params_id: ctx.id(),
            seed: Some(seed),
        })
    }

    /// Decrypts `ct` (of any degree) to `c_0 + c_1 s + c_2 s^2 + ...`, by Horner's rule with
    /// branch-free arithmetic.
    pub fn decrypt(&self, ctx: &Arc<CkksContext>, ct: &Ciphertext) -> Result<Plaintext, CkksError> {
        ctx.check_id(self.params_id)?;
        ctx.check_id(ct.params_id)?;
        let s = self.restricted(ct.level() + 1)?;
        Ok(Plaintext {
            poly: decrypt_parts(&ct.parts, &s)?,
            scale: ct.scale,
            slots: ct.slots,
            params_id: ctx.id(),
        })
    }
}

/// `c_0 + c_1 s + c_2 s^2 + ...` by Horner's rule, with branch-free arithmetic (the parts and
/// `s` over the same primes).
pub(crate) fn decrypt_parts(
    parts: &[RnsPoly<Ntt>],
    s: &RnsPoly<Ntt>,
) -> Result<RnsPoly<Ntt>, CkksError> {
    let mut parts = parts.iter().rev();
    let mut acc = parts.next().cloned().ok_or(CkksError::EmptyCiphertext)?;
    for part in parts {
        acc.try_mul_assign(s)?;
        acc.try_add_assign(part)?;
    }
    Ok(acc)
}

/// Noise flooding for decryptions whose results are shared with another party.
///
/// A CKKS decryption returns the message plus the ciphertext's error, and that error depends
/// on the secret key: a party that sees decrypted results of ciphertexts it chose can recover
/// the key (IND-CPA-D; Li and Micciancio, EUROCRYPT 2021; Li, Micciancio, Schultz and Sorrell,
/// CRYPTO 2022). Before sharing, add to every coefficient a fresh uniform integer in
/// `[-B_f, B_f]` with `B_f = 2^lambda * N * B`, where `B` bounds the error: the shared result is
/// then within statistical distance about `2^-lambda` of one that does not depend on the error
/// (the approach of OpenFHE's `NOISE_FLOODING_DECRYPT` mode). It costs precision: about
/// `lambda + log2 N + log2 B` bits are lost below the scale, so the scale must leave room.
/// Use it only for results that leave the client; private decryptions do not need it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseFlooding {
    /// The statistical security `lambda` in bits (OpenFHE's default is 30).
    pub statistical_security: u32,
    /// `log2` of an upper bound `B` of the ciphertext's error, in the raw coefficients.
    pub log_noise_bound: f64,
}

impl NoiseFlooding {
    /// `log2 B_f` for ring degree `n`.
    pub fn log_flood(&self, n: usize) -> f64 {
        f64::from(self.statistical_security) + libm::log2(n as f64) + self.log_noise_bound
    }
}

impl SecretKey {
    /// [`Self::decrypt`] followed by noise flooding (see [`NoiseFlooding`]): for results that
    /// are shared with another party. Fails if `B_f` would not fit in 62 bits or not stay below
    /// the ciphertext's scale (the result would hold no precision).
    pub fn decrypt_flooded<G: RngCore + CryptoRng>(
        &self,
        ctx: &Arc<CkksContext>,
        ct: &Ciphertext,
        flooding: &NoiseFlooding,
        rng: &mut G,
    ) -> Result<Plaintext, CkksError> {
        let log_flood = flooding.log_flood(ctx.n());
        if !(log_flood.is_finite() && log_flood <= 62.0 && log_flood < libm::log2(ct.scale)) {
            return Err(CkksError::InvalidArgument {
                reason: "the flooding noise must fit in 62 bits and stay below the scale",
            });
        }
        let bound = libm::exp2(log_flood) as u64;
        let span = 2 * bound + 1;
        // Uniform in [-B_f, B_f] by rejection on the top multiple of the span.
        let limit = u64::MAX - u64::MAX % span;
        let flood: alloc::vec::Vec<i64> = (0..ctx.n())
            .map(|_| {
                loop {
                    let r = rng.next_u64();
                    if r < limit {
                        break (r % span) as i64 - bound as i64;
                    }
                }
            })
            .collect();
        let mut pt = self.decrypt(ctx, ct)?;
        let noise = RnsPoly::from_i64(ctx.ring(), pt.level() + 1, &flood)?.into_ntt();
        pt.poly.try_add_assign(&noise)?;
        Ok(pt)
    }
}
