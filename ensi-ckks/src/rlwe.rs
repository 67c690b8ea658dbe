//! The RLWE layer: small polynomials, RLWE samples `(-a s + e, a)` with `a` expanded from a
//! seed, and hybrid key-switching keys built from them (one sample per digit), with the primes
//! each key spans. Below keys, encryption and key switching; it knows secrets only as
//! polynomials handed to it.

use crate::context::{CkksContext, SwitchSpace};
use crate::error::CkksError;
use crate::ids::ParamsId;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use ensi_math::{Ntt, RnsContext, RnsPoly, sample};
use rand_core::{CryptoRng, RngCore};
use sha3::{Digest, Sha3_256};
use zeroize::Zeroizing;

/// A small polynomial from a signed sampler, lifted to `limbs` primes of `ring` in NTT form.
pub(crate) fn small_poly<G: RngCore + CryptoRng>(
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

/// The primes a [`SwitchingKey`] spans. The span is fixed by the key's purpose and recorded in
/// the key; a key can only be applied to a ciphertext in its own span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeySpan {
    /// Every prime of `Q ∪ P`, in `dnum` digits: relinearization, Galois and sparse-to-dense
    /// keys, under the main secret.
    Full,
    /// Only `q_0` and `p_0`, one digit: the dense-to-sparse key of bootstrapping, the one public
    /// object under the ephemeral sparse secret. Applied at level 0 only. Keeping it this small
    /// is what makes a low Hamming weight safe (sparse-secret encapsulation, Bossuat,
    /// Troncoso-Pastoriza and Hubaux, ePrint 2022/024, §4).
    Encapsulation,
}

impl CkksContext {
    /// The basis of keys of `span`.
    pub(crate) fn space(&self, span: KeySpan) -> &SwitchSpace {
        match span {
            KeySpan::Full => self.main_space(),
            KeySpan::Encapsulation => self.encapsulation(),
        }
    }

    /// `log2` of the modulus keys of `span` live at (`log2(QP)` for [`KeySpan::Full`],
    /// `log2(q_0 p_0)` for [`KeySpan::Encapsulation`]).
    pub fn span_log_modulus(&self, span: KeySpan) -> f64 {
        self.space(span)
            .ring
            .basis()
            .moduli()
            .iter()
            .map(|m| libm::log2(m.q() as f64))
            .sum()
    }
}

/// A hybrid key-switching key from some `s'` to a secret `s`: one RLWE sample under `s` per
/// digit, over the primes of its [`KeySpan`], in NTT form. The uniform halves `a_j` are
/// expanded from one 32-byte seed, so the stored form needs only the `b_j` and the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchingKey {
    pub(crate) b: Vec<RnsPoly<Ntt>>,
    pub(crate) a: Vec<RnsPoly<Ntt>>,
    pub(crate) seed: [u8; 32],
    pub(crate) params_id: ParamsId,
    pub(crate) span: KeySpan,
    /// What [`SwitchingKey::truncate`] kept (then `b` and `a` are empty); `None` for a whole
    /// key.
    pub(crate) cut: Option<alloc::boxed::Box<Truncated>>,
    /// Where the uniform halves' limbs start in their keystreams, once
    /// [`SwitchingKey::compact`] dropped them (then `a` and the truncated `a` are empty).
    pub(crate) regen: Option<alloc::boxed::Box<Regenerable>>,
}

/// The random access into the `a_j` expansions of a compacted key: digit `j`'s seed and, for
/// every limb `g` of the span's basis, the keystream position its residues start at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Regenerable {
    digit_seeds: Vec<[u8; 32]>,
    starts: Vec<Vec<u128>>,
}

/// The limbs of a truncated key: per digit, the first `q_limbs` `Q` limbs then the `P` limbs,
/// `n` residues each (NTT form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Truncated {
    q_limbs: usize,
    n: usize,
    /// `log2` of the primes held, as `f64` bits (the derive needs `Eq`).
    log_modulus: u64,
    b: Vec<Vec<u64>>,
    a: Vec<Vec<u64>>,
}

/// The seed of digit `j`'s uniform polynomial: SHA3-256 of a domain tag, the key's seed and `j`.
pub(crate) fn digit_seed(seed: &[u8; 32], digit: usize) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(b"ensi switching key digit");
    h.update(seed);
    h.update((digit as u32).to_le_bytes());
    h.finalize().into()
}

impl SwitchingKey {
    /// Generates the key switching `s_from` to `s_to` over the primes of `span`. `s_to` (the
    /// secret every sample is made under) must be in NTT form over exactly the span's primes
    /// (its ring and limb count are checked): a key cannot be made over more primes than its
    /// span. Only the `Q` limbs of `s_from` are read (NTT form, `q_i` at limb `i`).
    pub(crate) fn generate<G: RngCore + CryptoRng>(
        ctx: &CkksContext,
        span: KeySpan,
        s_to: &RnsPoly<Ntt>,
        s_from: &RnsPoly<Ntt>,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        let space = ctx.space(span);
        if !s_to.context().same_ring(&space.ring) || s_to.limbs() != space.key_limbs() {
            return Err(CkksError::InvalidArgument {
                reason: "a switching key's secret must span exactly the primes of its key span",
            });
        }
        let num_q = space.q_count();
        if s_from.limbs() < num_q
            || s_from.moduli()[..num_q] != space.ring.basis().moduli()[..num_q]
        {
            return Err(CkksError::InvalidArgument {
                reason: "the switched secret must cover the Q primes of the key span",
            });
        }
        let ks = &space.key_switch;
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let digits = ks.dnum();
        let mut b = Vec::with_capacity(digits);
        let mut a = Vec::with_capacity(digits);
        for j in 0..digits {
            let (mut bj, aj) = rlwe_sample_under(&space.ring, s_to, &digit_seed(&seed, j), rng)?;
            for i in ks.digit_range(j, num_q) {
                let m = space.ring.basis().moduli()[i];
                let (p, ps) = space.p_mod_q[i];
                let src = s_from.limb(i);
                for (x, &y) in bj.limb_mut(i).iter_mut().zip(src) {
                    *x = m.add(*x, m.mul_shoup(y, p, ps));
                }
            }
            b.push(bj);
            a.push(aj);
        }
        Ok(Self {
            b,
            a,
            seed,
            params_id: ctx.id(),
            span,
            cut: None,
            regen: None,
        })
    }

    /// Rebuilds a key of `span` from its `b_j` and the seed of the `a_j` (deserialization).
    pub(crate) fn from_seeded(
        ctx: &CkksContext,
        span: KeySpan,
        b: Vec<RnsPoly<Ntt>>,
        seed: [u8; 32],
    ) -> Result<Self, CkksError> {
        let space = ctx.space(span);
        let a = (0..b.len())
            .map(|j| {
                ensi_math::sample::expand_seed::<Ntt>(
                    &space.ring,
                    space.key_limbs(),
                    &digit_seed(&seed, j),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            b,
            a,
            seed,
            params_id: ctx.id(),
            span,
            cut: None,
            regen: None,
        })
    }

    /// The number of digits.
    pub fn digits(&self) -> usize {
        self.cut.as_ref().map_or(self.b.len(), |c| c.b.len())
    }

    /// Drops what a key switch at `max_level` or below never reads: the `Q` limbs above
    /// `max_level` and the digits past those a decomposition at `max_level` has. A server that
    /// uses a rotation only in the layers (at most the bootstrapper's output level, 11 of 26
    /// `Q` primes at N = 2^16) holds about a quarter of the key. A truncated key switches
    /// exactly as the whole key does at those levels (same result, bit for bit), refuses higher
    /// ones, and cannot be serialized. Only keys of [`KeySpan::Full`] can be truncated.
    pub fn truncate(&mut self, ctx: &CkksContext, max_level: usize) -> Result<(), CkksError> {
        ctx.check_id(self.params_id)?;
        if self.span != KeySpan::Full {
            return Err(CkksError::InvalidArgument {
                reason: "only keys over the whole modulus can be truncated",
            });
        }
        let space = ctx.space(self.span);
        let (q_count, k) = (space.q_count(), space.key_switch.p_basis().len());
        let held = self.cut.as_ref().map_or(q_count, |c| c.q_limbs);
        let keep = (max_level + 1).min(held);
        let digits = space.key_switch.digits_at(keep).min(self.digits());
        if keep == held && digits == self.digits() {
            return Ok(());
        }
        let n = ctx.n();
        let cut = |j: usize, a_part: bool| -> Vec<u64> {
            let mut data = Vec::with_capacity((keep + k) * n);
            for g in (0..keep).chain(q_count..q_count + k) {
                data.extend_from_slice(self.limb_at(a_part, j, g, q_count));
            }
            data
        };
        let moduli = space.ring.basis().moduli();
        let log_modulus = (0..keep)
            .chain(q_count..q_count + k)
            .map(|g| libm::log2(moduli[g].q() as f64))
            .sum::<f64>()
            .to_bits();
        let parts = Truncated {
            q_limbs: keep,
            n,
            log_modulus,
            b: (0..digits).map(|j| cut(j, false)).collect(),
            a: if self.regen.is_some() {
                Vec::new()
            } else {
                (0..digits).map(|j| cut(j, true)).collect()
            },
        };
        self.b = Vec::new();
        self.a = Vec::new();
        self.cut = Some(alloc::boxed::Box::new(parts));
        Ok(())
    }

    /// Drops the uniform halves `a_j` (half the key's memory), keeping where each of their limbs
    /// starts in its seed's expansion: a key switch then regenerates the limbs it reads
    /// (one ChaCha20 pass over them), the same residues bit for bit.
    /// Memory for time: at N = 2^16 a key switch at the top level expands about 100 MB of
    /// keystream. Returns the bytes freed; a compacted key still serializes (it keeps its seed).
    pub fn compact(&mut self, ctx: &CkksContext) -> Result<usize, CkksError> {
        ctx.check_id(self.params_id)?;
        if self.regen.is_some() {
            return Ok(0);
        }
        let before = self.heap_bytes();
        let space = ctx.space(self.span);
        let moduli = &space.ring.basis().moduli()[..space.key_limbs()];
        let mut scratch = vec![0u64; ctx.n()];
        let mut digit_seeds = Vec::with_capacity(self.digits());
        let mut starts = Vec::with_capacity(self.digits());
        for j in 0..self.digits() {
            let seed = digit_seed(&self.seed, j);
            // Rejection sampling: where a limb starts is known only by expanding those before.
            let mut expander = sample::SeedExpander::new(&seed);
            let mut at = Vec::with_capacity(moduli.len());
            for m in moduli {
                at.push(expander.position());
                expander.next_limb(m, &mut scratch);
            }
            digit_seeds.push(seed);
            starts.push(at);
        }
        self.a = Vec::new();
        if let Some(c) = &mut self.cut {
            c.a = Vec::new();
        }
        self.regen = Some(alloc::boxed::Box::new(Regenerable {
            digit_seeds,
            starts,
        }));
        Ok(before - self.heap_bytes())
    }

    /// Whether the uniform halves were dropped ([`Self::compact`]).
    pub fn is_compact(&self) -> bool {
        self.regen.is_some()
    }

    /// Limb `g` (of the span's basis, prime `m`) of digit `j`'s `a_j` into `out`: copied, or
    /// regenerated from the seed for a compacted key. A truncated key must hold the limb.
    pub(crate) fn regenerate_a(
        &self,
        j: usize,
        g: usize,
        q_count: usize,
        m: &ensi_math::Modulus,
        out: &mut [u64],
    ) {
        match &self.regen {
            Some(r) => {
                sample::SeedExpander::resume(&r.digit_seeds[j], r.starts[j][g]).next_limb(m, out)
            }
            None => out.copy_from_slice(self.limb_at(true, j, g, q_count)),
        }
    }

    /// Limb `g` of the span's basis (`q_count` its `Q` primes) of digit `j`'s `a_j`
    /// (`a_part`; not for a compacted key) or `b_j`. A truncated key must hold it (callers
    /// check the level first).
    pub(crate) fn limb_at(&self, a_part: bool, j: usize, g: usize, q_count: usize) -> &[u64] {
        match &self.cut {
            None => (if a_part { &self.a } else { &self.b })[j].limb(g),
            Some(c) => {
                let local = if g < c.q_limbs {
                    g
                } else {
                    c.q_limbs + g - q_count
                };
                &(if a_part { &c.a } else { &c.b })[j][local * c.n..(local + 1) * c.n]
            }
        }
    }

    /// The number of `Q` limbs a truncated key holds (`None` for a whole key).
    pub(crate) fn q_limbs(&self) -> Option<usize> {
        self.cut.as_ref().map(|c| c.q_limbs)
    }

    /// The bytes this key's polynomials hold.
    pub fn heap_bytes(&self) -> usize {
        let whole: usize = self
            .b
            .iter()
            .chain(&self.a)
            .map(|p| p.limbs() * p.n() * 8)
            .sum();
        let cut: usize = self
            .cut
            .iter()
            .flat_map(|c| c.b.iter().chain(&c.a))
            .map(|v| v.len() * 8)
            .sum();
        whole + cut
    }

    /// The highest level this key switches at, if it was truncated ([`SwitchingKey::truncate`]).
    pub fn truncated_level(&self) -> Option<usize> {
        self.q_limbs().map(|k| k - 1)
    }

    /// The primes this key spans.
    pub fn span(&self) -> KeySpan {
        self.span
    }

    /// The number of primes this key spans (`|Q| + |P|` of its span).
    pub fn limbs(&self) -> usize {
        match &self.cut {
            Some(c) => c.b.first().map_or(0, |v| v.len() / c.n),
            None => self.b.first().map_or(0, RnsPoly::limbs),
        }
    }

    /// `log2` of the modulus this key lives at: the product of the primes it spans.
    pub fn log_modulus(&self) -> f64 {
        match &self.cut {
            Some(c) => f64::from_bits(c.log_modulus),
            None => self.b.first().map_or(0.0, |b| {
                b.moduli().iter().map(|m| libm::log2(m.q() as f64)).sum()
            }),
        }
    }

    /// The seed the uniform halves are expanded from.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The non-uniform halves `b_j` (empty once the key is truncated).
    pub fn b(&self) -> &[RnsPoly<Ntt>] {
        &self.b
    }

    /// The parameter set this key belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.params_id
    }
}
