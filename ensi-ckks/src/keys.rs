//! Secret and public keys.
//!
//! The secret key `s` is sampled from the parameter set's secret distribution and kept in NTT
//! form over every prime of `Q ∪ P` (key-switching keys need it modulo `P` too). It is zeroized
//! on drop, compared in constant time, has no `Clone` and a `Debug` that prints nothing secret.

use crate::context::CkksContext;
use crate::error::CkksError;
use crate::params::{Parameters, ParamsId, SecretDistribution};
use alloc::sync::Arc;
use alloc::vec;
use core::fmt;
use ensi_math::{Ntt, RnsPoly, sample};
use rand_core::{CryptoRng, RngCore};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The secret key `s`, in NTT form over `Q ∪ P`.
pub struct SecretKey {
    pub(crate) s: RnsPoly<Ntt>,
    pub(crate) params_id: ParamsId,
}

impl SecretKey {
    /// Samples a fresh secret key for `ctx`.
    pub fn generate<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        let coeffs = sample_secret(ctx.params(), rng)?;
        Self::from_coefficients(ctx, &coeffs)
    }

    /// Builds a secret key from its signed coefficients (length `N`), for tests and for keys
    /// restored from storage. Refuses coefficients outside `{-1, 0, 1}` and, for a parameter set
    /// with a sparse secret, a Hamming weight other than the declared one
    /// ([`CkksError::InvalidSecretKey`]); the check is branch-free on the coefficients. The
    /// caller keeps responsibility for zeroizing `coeffs`.
    pub fn from_coefficients(ctx: &Arc<CkksContext>, coeffs: &[i64]) -> Result<Self, CkksError> {
        check_secret(ctx.params(), coeffs)?;
        let s = RnsPoly::from_i64(ctx.ring(), ctx.key_limbs(), coeffs)?.into_ntt();
        Ok(Self {
            s,
            params_id: ctx.id(),
        })
    }

    /// The parameter set this key belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.params_id
    }

    /// The secret restricted to its first `limbs` primes (a zeroized copy).
    pub(crate) fn restricted(&self, limbs: usize) -> Result<Zeroizing<RnsPoly<Ntt>>, CkksError> {
        let mut s = Zeroizing::new(self.s.clone());
        let extra = s.limbs() - limbs;
        s.drop_last_limbs(extra)?;
        Ok(s)
    }

    /// The secret in NTT form over the two primes `{q_0, p_0}` of [`crate::KeySpan::Encapsulation`]
    /// (a zeroized copy): the secret that level-0 keys are sampled under. The signed coefficients
    /// are read back from the `q_0` limb, centred without a branch on their values.
    pub(crate) fn encapsulation_secret(
        &self,
        ctx: &CkksContext,
    ) -> Result<Zeroizing<RnsPoly<Ntt>>, CkksError> {
        ctx.check_id(self.params_id)?;
        let q0 = Zeroizing::new(RnsPoly::<Ntt>::from_raw(
            ctx.ring(),
            1,
            self.s.limb(0).to_vec(),
        )?);
        let coeff = Zeroizing::new((*q0).clone().into_coeff());
        let m = ctx.ring().basis().moduli()[0];
        // `to_centered` is branch-free on the value.
        let signed = Zeroizing::new(
            coeff
                .limb(0)
                .iter()
                .map(|&x| m.to_centered(x))
                .collect::<alloc::vec::Vec<i64>>(),
        );
        let space = ctx.encapsulation();
        Ok(Zeroizing::new(
            RnsPoly::from_i64(&space.ring, space.key_limbs(), &signed)?.into_ntt(),
        ))
    }
}

/// Samples the coefficients of a secret of `params`' distribution, into a buffer zeroized on
/// drop (what every secret-key constructor draws, in this order).
pub(crate) fn sample_secret<G: RngCore + CryptoRng>(
    params: &Parameters,
    rng: &mut G,
) -> Result<Zeroizing<alloc::vec::Vec<i64>>, CkksError> {
    let mut coeffs = Zeroizing::new(vec![0i64; params.n()]);
    match params.secret() {
        SecretDistribution::UniformTernary => sample::ternary(rng, &mut coeffs),
        SecretDistribution::SparseTernary { hamming_weight } => {
            sample::ternary_hamming(rng, hamming_weight, &mut coeffs)?
        }
    }
    Ok(coeffs)
}

/// Checks, branch-free on the values, that `coeffs` are `N` values in `{-1, 0, 1}` of the
/// declared Hamming weight for a sparse-secret set ([`CkksError::InvalidSecretKey`]).
pub(crate) fn check_secret(params: &Parameters, coeffs: &[i64]) -> Result<(), CkksError> {
    let mut valid = Choice::from(u8::from(coeffs.len() == params.n()));
    let mut weight = 0u64;
    for c in coeffs {
        let zero = c.ct_eq(&0);
        valid &= zero | c.ct_eq(&1) | c.ct_eq(&-1);
        weight += u64::from((!zero).unwrap_u8());
    }
    if let SecretDistribution::SparseTernary { hamming_weight } = params.secret() {
        valid &= weight.ct_eq(&(hamming_weight as u64));
    }
    if bool::from(valid) {
        Ok(())
    } else {
        Err(CkksError::InvalidSecretKey)
    }
}

/// Hazardous access to secret material, for tests and audits only. Whatever is read through
/// this module is the secret key: never log it, copy it into unzeroized memory or send it.
pub mod hazmat {
    use super::SecretKey;
    use ensi_math::{Ntt, RnsPoly};

    /// The secret key polynomial (NTT form over `Q ∪ P`).
    pub fn secret_poly(sk: &SecretKey) -> &RnsPoly<Ntt> {
        &sk.s
    }
}

impl Zeroize for SecretKey {
    fn zeroize(&mut self) {
        self.s.zeroize();
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for SecretKey {}

impl ConstantTimeEq for SecretKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.params_id.0.ct_eq(&other.params_id.0) & self.s.ct_eq(&other.s)
    }
}

impl PartialEq for SecretKey {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("params_id", &self.params_id)
            .finish_non_exhaustive()
    }
}

/// The public key `(b, a) = (-a s + e, a)` over `Q`, in NTT form (Cheon–Kim–Kim–Song 2017,
/// §3.4 `KeyGen`). `a` comes from a 32-byte seed, so a stored key needs only `b` and the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) b: RnsPoly<Ntt>,
    pub(crate) a: RnsPoly<Ntt>,
    pub(crate) seed: [u8; 32],
    pub(crate) params_id: ParamsId,
}

impl PublicKey {
    /// Generates the public key of `sk`.
    pub fn generate<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        ctx.check_id(sk.params_id)?;
        let limbs = ctx.max_level() + 1;
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let s = sk.restricted(limbs)?;
        let (b, a) = crate::rlwe::rlwe_sample_under(ctx.ring(), &s, &seed, rng)?;
        Ok(Self {
            b,
            a,
            seed,
            params_id: ctx.id(),
        })
    }

    /// The parameter set this key belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.params_id
    }

    /// The seed `a` is expanded from.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The polynomials `(b, a)`.
    pub fn polys(&self) -> (&RnsPoly<Ntt>, &RnsPoly<Ntt>) {
        (&self.b, &self.a)
    }
}
