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
    encoder: Encoder,
    /// The whole `Q ∪ P` basis (`dnum` digits): ciphertexts and every evaluation key.
    main: SwitchSpace,
    /// The two-prime space `{q_0, p_0}` of the dense-to-sparse encapsulation key.
    encapsulation: SwitchSpace,
}

/// A basis that switching keys can span: its ring (the `Q` primes first, then the `P` primes),
/// its hybrid key-switching tables and the gadget factors `[P]_{q_i}`.
#[derive(Debug)]
pub(crate) struct SwitchSpace {
    pub(crate) ring: Arc<RnsContext>,
    pub(crate) key_switch: KeySwitchBasis,
    pub(crate) p_mod_q: Vec<(u64, u64)>,
}

/// `[P]_q`: the product of the special primes `p` modulo `m`, the gadget factor of a
/// switching key's limb over `m`.
pub(crate) fn gadget_factor(m: &ensi_math::Modulus, p: &[u64]) -> u64 {
    p.iter().fold(1u64, |acc, &x| m.mul(acc, m.reduce(x)))
}

impl SwitchSpace {
    fn new(n: usize, q: &[u64], p: &[u64], dnum: usize) -> Result<Self, CkksError> {
        let primes: Vec<u64> = q.iter().chain(p).copied().collect();
        let ring = RnsContext::new(n, &primes)?;
        let key_switch = KeySwitchBasis::new(q, p, dnum)?;
        let p_mod_q = ring.basis().moduli()[..q.len()]
            .iter()
            .map(|m| {
                let pm = gadget_factor(m, p);
                (pm, m.shoup(pm))
            })
            .collect();
        Ok(Self {
            ring,
            key_switch,
            p_mod_q,
        })
    }

    /// The number of `Q` primes of this space.
    pub(crate) fn q_count(&self) -> usize {
        self.key_switch.q_basis().len()
    }

    /// The number of limbs of a key over this space, `|Q| + |P|`.
    pub(crate) fn key_limbs(&self) -> usize {
        self.ring.max_limbs()
    }

    /// The index in the ring's basis of limb `e` of a polynomial over `Q_l ∪ P` with `num_q`
    /// active `Q` primes: `e` itself for the `Q` limbs, `|Q| + (e - num_q)` for the `P` limbs.
    pub(crate) fn extended_index(&self, num_q: usize, e: usize) -> usize {
        if e < num_q {
            e
        } else {
            self.q_count() + e - num_q
        }
    }
}

impl CkksContext {
    /// Builds the context of `params` (NTT tables for every prime, CRT and basis-extension
    /// constants, special FFTs for every slot count).
    pub fn new(params: Parameters) -> Result<Arc<Self>, CkksError> {
        let n = params.n();
        let main = SwitchSpace::new(n, params.q(), params.p(), params.dnum())?;
        let encapsulation = SwitchSpace::new(n, &params.q()[..1], &params.p()[..1], 1)?;
        let encoder = Encoder::new(n)?;
        Ok(Arc::new(Self {
            params,
            encoder,
            main,
            encapsulation,
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
        &self.main.ring
    }

    /// The slot encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The hybrid key-switching tables (ModUp, ModDown, digits).
    pub fn key_switch(&self) -> &KeySwitchBasis {
        &self.main.key_switch
    }

    /// The `Q ∪ P` space of ciphertexts and evaluation keys.
    pub(crate) fn main_space(&self) -> &SwitchSpace {
        &self.main
    }

    /// The two-prime space `{q_0, p_0}` (one digit) of the dense-to-sparse key.
    pub(crate) fn encapsulation(&self) -> &SwitchSpace {
        &self.encapsulation
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
