//! The evaluation context: a checked parameter set with its ring, encoder and key-switching
//! tables, shared by keys, encryptors, decryptors and evaluators.

use crate::encoding::Encoder;
use crate::error::CkksError;
use crate::params::{Parameters, ParamsId};
use alloc::sync::Arc;
use alloc::vec::Vec;
use ensi_math::{KeySwitchBasis, RnsContext};

/// Everything derived once from a [`Parameters`]: the ring over `Q ∪ P` (the `Q` primes first,
/// so a ciphertext at level `l` lives on the first `l + 1` limbs), the encoder and the
/// hybrid key-switching tables.
#[derive(Debug)]
pub struct CkksContext {
    params: Parameters,
    ring: Arc<RnsContext>,
    encoder: Encoder,
    key_switch: KeySwitchBasis,
    /// `([P]_{q_i}, shoup)` for every prime of `Q`: the gadget factor of switching keys.
    p_mod_q: Vec<(u64, u64)>,
}

impl CkksContext {
    /// Builds the context of `params` (NTT tables for every prime, CRT and basis-extension
    /// constants, special FFTs for every slot count).
    pub fn new(params: Parameters) -> Result<Arc<Self>, CkksError> {
        let primes: Vec<u64> = params.q().iter().chain(params.p()).copied().collect();
        let ring = RnsContext::new(params.n(), &primes)?;
        let encoder = Encoder::new(params.n())?;
        let key_switch = KeySwitchBasis::new(params.q(), params.p(), params.dnum())?;
        let mut p_mod_q = Vec::with_capacity(params.q().len());
        let mut p_inv_mod_q = Vec::with_capacity(params.q().len());
        for m in &ring.basis().moduli()[..params.q().len()] {
            let p = params
                .p()
                .iter()
                .fold(1u64, |acc, &p| m.mul(acc, m.reduce(p)));
            let inv = m.inv_vartime(p).ok_or(ensi_math::MathError::InvalidBasis)?;
            p_mod_q.push((p, m.shoup(p)));
            p_inv_mod_q.push((inv, m.shoup(inv)));
        }
        Ok(Arc::new(Self {
            params,
            ring,
            encoder,
            key_switch,
            p_mod_q,
        }))
    }

    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }

    /// The parameter identifier every object of this context carries.
    pub fn id(&self) -> ParamsId {
        self.params.id()
    }

    /// The ring over `Q ∪ P`.
    pub fn ring(&self) -> &Arc<RnsContext> {
        &self.ring
    }

    /// The slot encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The hybrid key-switching tables (ModUp, ModDown, digits).
    pub fn key_switch(&self) -> &KeySwitchBasis {
        &self.key_switch
    }

    /// `([P]_{q_i}, shoup)` for every prime of `Q`.
    pub(crate) fn p_mod_q(&self) -> &[(u64, u64)] {
        &self.p_mod_q
    }

    /// The index in the ring's basis of limb `e` of a polynomial over `Q_l ∪ P` with `num_q`
    /// active `Q` primes: `e` itself for the `Q` limbs, `|Q| + (e - num_q)` for the `P` limbs.
    pub(crate) fn extended_index(&self, num_q: usize, e: usize) -> usize {
        if e < num_q {
            e
        } else {
            self.params.q().len() + e - num_q
        }
    }

    /// The ring degree `N`.
    pub fn n(&self) -> usize {
        self.params.n()
    }

    /// The highest ciphertext level, `|Q| - 1`.
    pub fn max_level(&self) -> usize {
        self.params.max_level()
    }

    /// Total number of limbs of key material, `|Q| + |P|`.
    pub fn key_limbs(&self) -> usize {
        self.params.q().len() + self.params.p().len()
    }

    pub(crate) fn check_level(&self, level: usize) -> Result<(), CkksError> {
        if level > self.max_level() {
            return Err(CkksError::InvalidLevel {
                level,
                max: self.max_level(),
            });
        }
        Ok(())
    }

    pub(crate) fn check_id(&self, id: ParamsId) -> Result<(), CkksError> {
        if id != self.id() {
            return Err(CkksError::ParamsMismatch {
                expected: self.id(),
                found: id,
            });
        }
        Ok(())
    }
}
