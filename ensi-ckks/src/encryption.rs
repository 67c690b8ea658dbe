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
use alloc::borrow::Cow;
use alloc::sync::Arc;
use alloc::vec;
use ensi_math::{Ntt, RnsContext, RnsPoly, sample};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// A small polynomial from a signed sampler, lifted to `limbs` primes of `ring` in NTT form.
fn small_poly<G: RngCore + CryptoRng>(
    ring: &Arc<RnsContext>,
    limbs: usize,
    rng: &mut G,
    sampler: fn(&mut G, &mut [i64]),
) -> Result<Zeroizing<RnsPoly<Ntt>>, CkksError> {
    let mut coeffs = Zeroizing::new(vec![0i64; ring.n()]);
    sampler(rng, &mut coeffs);
    Ok(Zeroizing::new(
        RnsPoly::from_i64(ring, limbs, &coeffs)?.into_ntt(),
    ))
}

/// The secret key restricted to its first `limbs` primes (a zeroized copy).
pub(crate) fn secret_at(
    sk: &SecretKey,
    limbs: usize,
) -> Result<Zeroizing<RnsPoly<Ntt>>, CkksError> {
    let mut s = Zeroizing::new(sk.s.clone());
    let extra = s.limbs() - limbs;
    s.drop_last_limbs(extra)?;
    Ok(s)
}

/// An RLWE sample `(-a s + e, a)` over the first `limbs` primes, `a` expanded from `seed`.
pub(crate) fn rlwe_sample<G: RngCore + CryptoRng>(
    ctx: &CkksContext,
    sk: &SecretKey,
    limbs: usize,
    seed: &[u8; 32],
    rng: &mut G,
) -> Result<(RnsPoly<Ntt>, RnsPoly<Ntt>), CkksError> {
    let s = secret_at(sk, limbs)?;
    rlwe_sample_under(ctx.ring(), &s, seed, rng)
}

/// An RLWE sample `(-a s + e, a)` over the ring and limbs of `s` (NTT form), `a` expanded
/// from `seed`.
pub(crate) fn rlwe_sample_under<G: RngCore + CryptoRng>(
    ring: &Arc<RnsContext>,
    s: &RnsPoly<Ntt>,
    seed: &[u8; 32],
    rng: &mut G,
) -> Result<(RnsPoly<Ntt>, RnsPoly<Ntt>), CkksError> {
    let limbs = s.limbs();
    let a = sample::expand_seed::<Ntt>(ring, limbs, seed)?;
    let e = small_poly(ring, limbs, rng, sample::gaussian::<G>)?;
    let mut b = a.try_mul(s)?;
    b.neg_assign();
    b.try_add_assign(&e)?;
    Ok((b, a))
}

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
        let (mut c0, c1) = rlwe_sample(ctx, self, pt.level() + 1, &seed, rng)?;
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
        let s = secret_at(self, ct.level() + 1)?;
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
