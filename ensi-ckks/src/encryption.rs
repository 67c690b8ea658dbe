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
use ensi_math::sample;
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
        let mut parts = ct.parts.iter().rev();
        let mut acc = parts.next().cloned().ok_or(CkksError::EmptyCiphertext)?;
        for part in parts {
            acc.try_mul_assign(&s)?;
            acc.try_add_assign(part)?;
        }
        Ok(Plaintext {
            poly: acc,
            scale: ct.scale,
            slots: ct.slots,
            params_id: ctx.id(),
        })
    }
}
