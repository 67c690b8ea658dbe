//! The keys of sparse-secret encapsulation (Bossuat, Troncoso-Pastoriza and Hubaux, "Bootstrapping
//! for approximate homomorphic encryption with negligible failure-probability by using
//! sparse-secret encapsulation", ePrint 2022/024, §4), and the streamed generation of every key
//! bootstrapping needs.
//!
//! The client samples an ephemeral ternary secret `s'` of exact Hamming weight `h` and makes two
//! keys:
//!
//! - [`DenseToSparseKey`]: switches `s` to `s'` at level 0. It is the only public object under
//!   `s'`, and it spans `q_0` and `p_0` only ([`KeySpan::Encapsulation`]), so the sparse secret
//!   is exposed at a ~120-bit modulus, where a small weight is safe, never at `QP`.
//! - [`SparseToDenseKey`]: switches `s'` back to `s` over all of `Q ∪ P`, a sample under the
//!   main (dense) secret like any other evaluation key.
//!
//! `s'` exists only inside [`generate_encapsulation_keys`], in the two-prime ring, and is wiped
//! before it returns.

use crate::bootstrap::BootstrapParametersLiteral;
use crate::context::CkksContext;
use crate::error::CkksError;
pub use crate::evalkeys::{DenseToSparseKey, SparseToDenseKey};
use crate::evalkeys::{
    EvaluationKey, EvaluationKeySet, KeyRequest, KeySink, generate_evaluation_keys,
};
use crate::keys::SecretKey;
use crate::keyswitch::{KeySpan, SwitchingKey};
use crate::params::Security;
use crate::security;
use alloc::sync::Arc;
use alloc::vec;
use ensi_math::{RnsPoly, sample};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

impl BootstrapParametersLiteral {
    /// Checks that the ephemeral secret's weight is valid and, for a 128-bit parameter set,
    /// within 128-bit security at the modulus its key lives at, `q_0 p_0` (see
    /// [`crate::security`]). Called before any bootstrapping key is made.
    pub fn check_ephemeral_security(&self, ctx: &CkksContext) -> Result<(), CkksError> {
        self.check_ephemeral_security_of(ctx.params())
    }

    /// [`Self::check_ephemeral_security`] from the parameter set alone.
    pub fn check_ephemeral_security_of(&self, params: &crate::Parameters) -> Result<(), CkksError> {
        let (h, n) = (self.ephemeral_hamming_weight, params.n());
        if h == 0 || h > n {
            return Err(CkksError::InvalidHammingWeight { h, n });
        }
        // Only the estimate, not the whole report (its largest-modulus search): this runs on
        // every key generation and every decoded dense-to-sparse key.
        let log_modulus = params.log_encapsulation_modulus();
        if params.security() == Security::Bits128
            && security::sparse_secret_bits(n, h, log_modulus) < security::TARGET_BITS
        {
            return Err(CkksError::InsecureEphemeralSecret {
                hamming_weight: h,
                min_hamming_weight: security::min_sparse_hamming_weight(n, log_modulus)
                    .unwrap_or(n),
                log_modulus,
                n,
            });
        }
        Ok(())
    }

    /// The security of both secrets bootstrapping uses: the main secret (at `QP`) and the
    /// ephemeral sparse secret (at `q_0 p_0`).
    pub fn security_report(&self, params: &crate::Parameters) -> security::SecurityReport {
        let mut report = params.security_report();
        report.secrets.push(security::ephemeral_report(
            params,
            self.ephemeral_hamming_weight,
        ));
        report
    }
}

/// Makes the two encapsulation keys of `sk` for `literal` and hands each to `sink` (the
/// dense-to-sparse key first). Checks the ephemeral weight first
/// ([`BootstrapParametersLiteral::check_ephemeral_security`]).
pub fn generate_encapsulation_keys<G, S>(
    ctx: &Arc<CkksContext>,
    sk: &SecretKey,
    literal: &BootstrapParametersLiteral,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: KeySink,
{
    ctx.check_id(sk.params_id)?;
    literal.check_ephemeral_security(ctx)?;
    let h = literal.ephemeral_hamming_weight;
    let mut coeffs = Zeroizing::new(vec![0i64; ctx.n()]);
    sample::ternary_hamming(rng, h, &mut coeffs).map_err(CkksError::from)?;
    // s' in the two-prime ring only (the dense-to-sparse key is made under it) ...
    let space = ctx.encapsulation();
    let sparse_small = Zeroizing::new(
        RnsPoly::from_i64(&space.ring, space.key_limbs(), &coeffs)
            .map_err(CkksError::from)?
            .into_ntt(),
    );
    // ... and over Q ∪ P as the message of the sparse-to-dense key (never a secret of samples).
    let sparse_full = Zeroizing::new(
        RnsPoly::from_i64(ctx.ring(), ctx.key_limbs(), &coeffs)
            .map_err(CkksError::from)?
            .into_ntt(),
    );
    drop(coeffs);
    let d2s = SwitchingKey::generate(ctx, KeySpan::Encapsulation, &sparse_small, &sk.s, rng)?;
    drop(sparse_small);
    sink.accept(EvaluationKey::DenseToSparse(DenseToSparseKey {
        key: d2s,
        hamming_weight: h,
    }))?;
    let s2d = SwitchingKey::generate(ctx, KeySpan::Full, &sk.s, &sparse_full, rng)?;
    drop(sparse_full);
    sink.accept(EvaluationKey::SparseToDense(SparseToDenseKey { key: s2d }))?;
    Ok(())
}

/// Streams every key bootstrapping needs into `sink`, one at a time: the keys of `extra` and of
/// [`BootstrapParametersLiteral::key_request`] (relinearization, the rotations of
/// CoeffsToSlots, SlotsToCoeffs and the partial trace, conjugation; each made once), then the
/// two encapsulation keys. The ephemeral weight is checked before any key is made. At most one
/// switching key is alive at a time (plus whatever the sink keeps).
pub fn generate_bootstrap_keys<G, S>(
    ctx: &Arc<CkksContext>,
    sk: &SecretKey,
    literal: &BootstrapParametersLiteral,
    extra: &KeyRequest,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: KeySink,
{
    ctx.check_id(sk.params_id)?;
    literal.check_ephemeral_security(ctx)?;
    let request = literal.key_request(ctx)?.merge(extra);
    generate_evaluation_keys(ctx, sk, &request, sink, rng)?;
    generate_encapsulation_keys(ctx, sk, literal, sink, rng)
}

impl KeyRequest {
    /// This request and `other`'s keys (relinearization if either asks, every Galois element,
    /// full and level-0).
    pub fn merge(mut self, other: &KeyRequest) -> Self {
        self.relinearization |= other.relinearization;
        self.galois_elements
            .extend_from_slice(&other.galois_elements);
        self.level0_galois_elements
            .extend_from_slice(&other.level0_galois_elements);
        self
    }
}

/// Everything the server needs to bootstrap: evaluation keys and the two encapsulation keys
/// (dense to sparse at level 0, sparse to dense at the top). Made by the client; no secret.
#[derive(Clone, Debug)]
pub struct BootstrapKeys {
    /// Relinearization, rotation and conjugation keys.
    pub evaluation: EvaluationKeySet,
    /// Switches `s` to the ephemeral sparse `s'` (spans `q_0 p_0` only).
    pub dense_to_sparse: DenseToSparseKey,
    /// Switches `s'` back to `s`.
    pub sparse_to_dense: SparseToDenseKey,
}

impl BootstrapKeys {
    /// Generates the bootstrapping keys of `sk` for `literal` (the client side), all in memory;
    /// with [`BootstrapParametersLiteral::compact_keys`] each Galois key is cut and compacted
    /// as it is made. [`generate_bootstrap_keys`] streams the same keys one at a time instead.
    pub fn generate<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        literal: &BootstrapParametersLiteral,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        let mut set = EvaluationKeySet::new();
        if literal.compact_keys {
            let mut sink = crate::evalkeys::CompactGalois {
                ctx: ctx.as_ref(),
                cut: literal.galois_levels(ctx)?,
                inner: set,
            };
            generate_bootstrap_keys(ctx, sk, literal, &KeyRequest::new(), &mut sink, rng)?;
            set = sink.inner;
        } else {
            generate_bootstrap_keys(ctx, sk, literal, &KeyRequest::new(), &mut set, rng)?;
        }
        Self::from_set(set)
    }

    /// Splits a set that holds every bootstrapping key (for example one loaded from files) into
    /// its evaluation keys and the two encapsulation keys.
    pub fn from_set(mut set: EvaluationKeySet) -> Result<Self, CkksError> {
        let (dense_to_sparse, sparse_to_dense) = set.take_encapsulation_keys()?;
        Ok(Self {
            evaluation: set,
            dense_to_sparse,
            sparse_to_dense,
        })
    }

    /// Adds keys generated separately (for example a streamed set) to the evaluation keys.
    pub fn insert(&mut self, key: EvaluationKey) {
        match key {
            EvaluationKey::DenseToSparse(k) => self.dense_to_sparse = k,
            EvaluationKey::SparseToDense(k) => self.sparse_to_dense = k,
            other => self.evaluation.insert(other),
        }
    }
}
