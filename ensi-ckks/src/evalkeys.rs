//! Evaluation keys: relinearization and Galois (rotation, conjugation) keys, and their
//! generation one at a time into a [`KeySink`].
//!
//! A constrained client never needs to hold every evaluation key: [`generate_evaluation_keys`]
//! makes them in order (relinearization first, then each Galois element of a [`KeyRequest`])
//! and hands each to the sink, which writes or sends it and drops it. Peak memory is then the
//! secret key plus one switching key, whatever the number of rotations.

use crate::context::CkksContext;
use crate::error::CkksError;
use crate::keys::SecretKey;
use crate::keyswitch::{KeySpan, SwitchingKey};
use crate::params::ParamsId;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// The relinearization key: switches `s^2` to `s`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelinearizationKey {
    pub(crate) key: SwitchingKey,
}

impl RelinearizationKey {
    /// Generates the relinearization key of `sk`.
    pub fn generate<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        ctx.check_id(sk.params_id)?;
        let s2 = Zeroizing::new(sk.s.try_mul(&sk.s)?);
        Ok(Self {
            key: SwitchingKey::generate(ctx, KeySpan::Full, &sk.s, &s2, rng)?,
        })
    }

    /// Drops the uniform halves, regenerated at each use ([`SwitchingKey::compact`]).
    pub fn compact(&mut self, ctx: &CkksContext) -> Result<usize, CkksError> {
        self.key.compact(ctx)
    }

    /// The switching key.
    pub fn switching_key(&self) -> &SwitchingKey {
        &self.key
    }
}

/// A Galois key for `X -> X^k`: switches `s(X^k)` to `s`. Rotation by `r` slots uses
/// `k = 5^r mod 2N`, conjugation `k = 2N - 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GaloisKey {
    pub(crate) galois_element: usize,
    pub(crate) key: SwitchingKey,
}

impl GaloisKey {
    /// Generates the Galois key of `sk` for the odd element `galois_element` (reduced mod 2N).
    pub fn generate<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        galois_element: usize,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        Self::generate_in(ctx, sk, galois_element, KeySpan::Full, rng)
    }

    /// The Galois key of `galois_element` over the primes of `span`, sampled under `sk`
    /// restricted to them.
    fn generate_in<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        galois_element: usize,
        span: KeySpan,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        ctx.check_id(sk.params_id)?;
        let g = ctx.check_galois_element(galois_element)?;
        let s_g = Zeroizing::new(sk.s.automorphism(g)?);
        let key = match span {
            KeySpan::Full => SwitchingKey::generate(ctx, span, &sk.s, &s_g, rng)?,
            KeySpan::Encapsulation => {
                let s_small = sk.encapsulation_secret(ctx)?;
                SwitchingKey::generate(ctx, span, &s_small, &s_g, rng)?
            }
        };
        Ok(Self {
            galois_element: g,
            key,
        })
    }

    /// Generates the **level-0** Galois key of `sk` for `galois_element`: it spans only
    /// `{q_0, p_0}` ([`KeySpan::Encapsulation`], one digit) and switches ciphertexts at level 0
    /// only, at a fraction of a full key's cost (two primes instead of `q_0` and every `P`
    /// prime) and size (two limbs instead of `dnum (L + 1 + K)`). The packing of the
    /// coefficient-encoded products runs at level 0 ([`crate::coeff`]). The key is an RLWE
    /// sample under the same secret over a ~120-bit modulus, a smaller modulus than every full
    /// key's, so it is no easier to attack than they are.
    pub fn generate_level0<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        galois_element: usize,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        Self::generate_in(ctx, sk, galois_element, KeySpan::Encapsulation, rng)
    }

    /// Whether this is a level-0 key ([`Self::generate_level0`]).
    pub fn is_level0(&self) -> bool {
        self.key.span == KeySpan::Encapsulation
    }

    /// The Galois element `k`.
    pub fn galois_element(&self) -> usize {
        self.galois_element
    }

    /// Keeps only what rotations at `max_level` or below read ([`SwitchingKey::truncate`]).
    pub fn truncate(&mut self, ctx: &CkksContext, max_level: usize) -> Result<(), CkksError> {
        self.key.truncate(ctx, max_level)
    }

    /// Drops the uniform halves, regenerated at each use ([`SwitchingKey::compact`]).
    pub fn compact(&mut self, ctx: &CkksContext) -> Result<usize, CkksError> {
        self.key.compact(ctx)
    }

    /// The switching key.
    pub fn switching_key(&self) -> &SwitchingKey {
        &self.key
    }
}

/// Switches the main secret `s` to the ephemeral sparse secret `s'` at level 0; spans only
/// `{q_0, p_0}` (one digit). Records the Hamming weight of `s'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenseToSparseKey {
    pub(crate) key: SwitchingKey,
    pub(crate) hamming_weight: usize,
}

/// Switches the ephemeral sparse secret `s'` back to `s`, over all of `Q ∪ P`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparseToDenseKey {
    pub(crate) key: SwitchingKey,
}

impl DenseToSparseKey {
    /// The switching key (two primes, one digit).
    pub fn switching_key(&self) -> &SwitchingKey {
        &self.key
    }

    /// The Hamming weight of the sparse secret this key is under.
    pub fn hamming_weight(&self) -> usize {
        self.hamming_weight
    }
}

impl SparseToDenseKey {
    /// Drops the uniform halves, regenerated at each use ([`SwitchingKey::compact`]).
    pub fn compact(&mut self, ctx: &CkksContext) -> Result<usize, CkksError> {
        self.key.compact(ctx)
    }

    /// The switching key.
    pub fn switching_key(&self) -> &SwitchingKey {
        &self.key
    }
}

impl crate::params::Parameters {
    /// The Galois element of a rotation by `steps` slots to the left (negative: to the right):
    /// `5^(steps mod N/2) mod 2N`. The same element rotates every sparse slot count correctly.
    pub fn rotation_galois_element(&self, steps: isize) -> usize {
        let half = self.n() / 2;
        let r = steps.rem_euclid(half as isize) as u64;
        let two_n = 2 * self.n() as u64;
        let mut acc = 1u64;
        let mut base = 5u64;
        let mut e = r;
        while e > 0 {
            if e & 1 == 1 {
                acc = acc * base % two_n;
            }
            base = base * base % two_n;
            e >>= 1;
        }
        acc as usize
    }

    /// The Galois element of complex conjugation, `2N - 1`.
    pub fn conjugation_galois_element(&self) -> usize {
        2 * self.n() - 1
    }
}

impl CkksContext {
    /// The Galois element of a rotation by `steps` slots to the left (negative: to the right):
    /// `5^(steps mod N/2) mod 2N`. The same element rotates every sparse slot count correctly.
    pub fn rotation_galois_element(&self, steps: isize) -> usize {
        self.params().rotation_galois_element(steps)
    }

    /// The Galois element of complex conjugation, `2N - 1`.
    pub fn conjugation_galois_element(&self) -> usize {
        self.params().conjugation_galois_element()
    }

    /// Reduces `k` modulo `2N` and checks it is odd and not the identity.
    pub(crate) fn check_galois_element(&self, k: usize) -> Result<usize, CkksError> {
        self.params().check_galois_element(k)
    }
}

impl crate::params::Parameters {
    /// Reduces `k` modulo `2N` and checks it is odd and not the identity.
    pub(crate) fn check_galois_element(&self, k: usize) -> Result<usize, CkksError> {
        let g = k % (2 * self.n());
        if g.is_multiple_of(2) || g == 1 {
            return Err(CkksError::InvalidArgument {
                reason: "a Galois element must be odd and not 1 modulo 2N",
            });
        }
        Ok(g)
    }
}

/// One evaluation key, as handed to a [`KeySink`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvaluationKey {
    /// The relinearization key.
    Relinearization(RelinearizationKey),
    /// A Galois key.
    Galois(GaloisKey),
    /// Bootstrapping's dense-to-sparse key (over `q_0 p_0`, under the ephemeral secret).
    DenseToSparse(DenseToSparseKey),
    /// Bootstrapping's sparse-to-dense key.
    SparseToDense(SparseToDenseKey),
}

impl EvaluationKey {
    /// The switching key inside.
    pub fn switching_key(&self) -> &SwitchingKey {
        match self {
            Self::Relinearization(k) => &k.key,
            Self::Galois(k) => &k.key,
            Self::DenseToSparse(k) => &k.key,
            Self::SparseToDense(k) => &k.key,
        }
    }

    /// The parameter set this key belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.switching_key().params_id
    }
}

/// Receives evaluation keys one at a time (writes them to a file, sends them, or collects them).
/// Usable without `std`.
pub trait KeySink {
    /// The sink's error; key generation errors convert into it.
    type Error: From<CkksError>;

    /// Takes one key. Called once per key, in the order of the [`KeyRequest`].
    fn accept(&mut self, key: EvaluationKey) -> Result<(), Self::Error>;
}

/// Which evaluation keys to make.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRequest {
    /// Make the relinearization key.
    pub relinearization: bool,
    /// The Galois elements to make keys for (duplicates are made once).
    pub galois_elements: Vec<usize>,
    /// The Galois elements to make level-0 keys for ([`GaloisKey::generate_level0`]).
    pub level0_galois_elements: Vec<usize>,
}

impl KeyRequest {
    /// Nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the relinearization key.
    pub fn with_relinearization(mut self) -> Self {
        self.relinearization = true;
        self
    }

    /// Adds the keys of rotations by each of `steps` (see
    /// [`CkksContext::rotation_galois_element`]); rotations by a multiple of `N/2` need none.
    pub fn with_rotations(self, ctx: &CkksContext, steps: &[isize]) -> Self {
        self.with_rotations_of(ctx.params(), steps)
    }

    /// Adds the Galois elements of rotations by each of `steps` computed from the parameter set
    /// alone ([`crate::Parameters::rotation_galois_element`]), for a client that never builds a
    /// [`CkksContext`]; the same elements as [`Self::with_rotations`].
    pub fn with_rotations_of(mut self, params: &crate::Parameters, steps: &[isize]) -> Self {
        for &s in steps {
            let g = params.rotation_galois_element(s);
            if g != 1 {
                self.galois_elements.push(g);
            }
        }
        self
    }

    /// Adds the rotations by every power of two below `slots`, both directions: what
    /// [`crate::Evaluator::inner_sum`] and any rotation by composition need.
    pub fn with_power_of_two_rotations(self, ctx: &CkksContext, slots: usize) -> Self {
        let mut steps = Vec::new();
        let mut k = 1isize;
        while (k as usize) < slots {
            steps.push(k);
            steps.push(-k);
            k *= 2;
        }
        self.with_rotations(ctx, &steps)
    }

    /// Adds the keys of the automorphisms `X -> X^g` for each Galois element `g` (odd, below
    /// `2N`; 1 needs no key and is skipped): e.g. [`crate::coeff::pack_galois_elements`].
    pub fn with_galois_elements(mut self, elements: &[usize]) -> Self {
        self.galois_elements
            .extend(elements.iter().copied().filter(|&g| g != 1));
        self
    }

    /// Adds level-0 keys ([`GaloisKey::generate_level0`]) of the automorphisms `X -> X^g`
    /// (1 is skipped): e.g. [`crate::coeff::pack_galois_elements`] for a packing at level 0.
    pub fn with_level0_galois_elements(mut self, elements: &[usize]) -> Self {
        self.level0_galois_elements
            .extend(elements.iter().copied().filter(|&g| g != 1));
        self
    }

    /// Adds the conjugation key.
    pub fn with_conjugation(mut self, ctx: &CkksContext) -> Self {
        self.galois_elements.push(ctx.conjugation_galois_element());
        self
    }

    /// The distinct Galois elements, in the order they will be generated.
    pub fn distinct_galois_elements(&self) -> Vec<usize> {
        distinct(&self.galois_elements)
    }

    /// The distinct Galois elements of level-0 keys, in the order they will be generated.
    pub fn distinct_level0_galois_elements(&self) -> Vec<usize> {
        distinct(&self.level0_galois_elements)
    }

    /// How many keys the request makes.
    pub fn key_count(&self) -> usize {
        usize::from(self.relinearization)
            + self.distinct_galois_elements().len()
            + self.distinct_level0_galois_elements().len()
    }
}

/// The distinct values of `elements`, in first-seen order.
fn distinct(elements: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(elements.len());
    for &g in elements {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// Generates the keys of `request` one at a time into `sink`: the relinearization key first,
/// then each distinct Galois element in request order, then the level-0 Galois keys. At most one switching key is alive at a
/// time (plus whatever the sink keeps).
pub fn generate_evaluation_keys<G, S>(
    ctx: &Arc<CkksContext>,
    sk: &SecretKey,
    request: &KeyRequest,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: KeySink,
{
    ctx.check_id(sk.params_id)?;
    let galois = request.distinct_galois_elements();
    let level0 = request.distinct_level0_galois_elements();
    for &g in galois.iter().chain(&level0) {
        ctx.check_galois_element(g)?;
    }
    if request.relinearization {
        let key = RelinearizationKey::generate(ctx, sk, rng)?;
        sink.accept(EvaluationKey::Relinearization(key))?;
    }
    for g in galois {
        let key = GaloisKey::generate(ctx, sk, g, rng)?;
        sink.accept(EvaluationKey::Galois(key))?;
    }
    for g in level0 {
        let key = GaloisKey::generate_level0(ctx, sk, g, rng)?;
        sink.accept(EvaluationKey::Galois(key))?;
    }
    Ok(())
}

/// The evaluation keys an [`crate::Evaluator`] holds: an optional relinearization key and Galois
/// keys by element. Also a [`KeySink`] that collects what it is given.
#[derive(Clone, Debug, Default)]
pub struct EvaluationKeySet {
    relinearization: Option<RelinearizationKey>,
    galois: BTreeMap<usize, GaloisKey>,
    galois_level0: BTreeMap<usize, GaloisKey>,
    dense_to_sparse: Option<DenseToSparseKey>,
    sparse_to_dense: Option<SparseToDenseKey>,
}

impl EvaluationKeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Generates every key of `request` into a new set.
    pub fn generate<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        request: &KeyRequest,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        let mut set = Self::new();
        generate_evaluation_keys(ctx, sk, request, &mut set, rng)?;
        Ok(set)
    }

    /// Adds (or replaces) a key.
    pub fn insert(&mut self, key: EvaluationKey) {
        match key {
            EvaluationKey::Relinearization(k) => self.relinearization = Some(k),
            EvaluationKey::Galois(k) if k.is_level0() => {
                self.galois_level0.insert(k.galois_element, k);
            }
            EvaluationKey::Galois(k) => {
                self.galois.insert(k.galois_element, k);
            }
            EvaluationKey::DenseToSparse(k) => self.dense_to_sparse = Some(k),
            EvaluationKey::SparseToDense(k) => self.sparse_to_dense = Some(k),
        }
    }

    /// Every key of the set: relinearization, Galois keys by ascending element (the full ones,
    /// then the level-0 ones), then the dense-to-sparse and sparse-to-dense keys.
    pub fn into_keys(self) -> impl Iterator<Item = EvaluationKey> {
        self.relinearization
            .into_iter()
            .map(EvaluationKey::Relinearization)
            .chain(self.galois.into_values().map(EvaluationKey::Galois))
            .chain(self.galois_level0.into_values().map(EvaluationKey::Galois))
            .chain(
                self.dense_to_sparse
                    .into_iter()
                    .map(EvaluationKey::DenseToSparse),
            )
            .chain(
                self.sparse_to_dense
                    .into_iter()
                    .map(EvaluationKey::SparseToDense),
            )
    }

    /// Removes and returns the two encapsulation keys of bootstrapping, if both are present.
    pub fn take_encapsulation_keys(
        &mut self,
    ) -> Result<(DenseToSparseKey, SparseToDenseKey), CkksError> {
        let d2s = self
            .dense_to_sparse
            .take()
            .ok_or(CkksError::MissingBootstrapKey {
                which: "dense-to-sparse",
            })?;
        let s2d = self
            .sparse_to_dense
            .take()
            .ok_or(CkksError::MissingBootstrapKey {
                which: "sparse-to-dense",
            })?;
        Ok((d2s, s2d))
    }

    /// The relinearization key, if present.
    pub fn relinearization(&self) -> Option<&RelinearizationKey> {
        self.relinearization.as_ref()
    }

    /// The Galois key of element `k`, if present.
    pub fn galois(&self, k: usize) -> Option<&GaloisKey> {
        self.galois.get(&k)
    }

    /// The Galois elements present, ascending.
    pub fn galois_elements(&self) -> Vec<usize> {
        self.galois.keys().copied().collect()
    }

    /// The level-0 Galois key of element `k` ([`GaloisKey::generate_level0`]), if present.
    pub fn galois_level0(&self, k: usize) -> Option<&GaloisKey> {
        self.galois_level0.get(&k)
    }

    /// The elements of the level-0 Galois keys present, ascending.
    pub fn level0_galois_elements(&self) -> Vec<usize> {
        self.galois_level0.keys().copied().collect()
    }

    /// Compacts every Galois key ([`SwitchingKey::compact`]): their uniform halves are dropped
    /// and regenerated from the seeds at each rotation. Halves the memory of the Galois keys
    /// (at the default N = 2^16 bootstrapping set, 39 keys: 7.5 GB to 3.8 GB) for a ChaCha20
    /// pass over the limbs each rotation reads. Returns the bytes freed.
    pub fn compact_galois(&mut self, ctx: &CkksContext) -> Result<usize, CkksError> {
        let mut freed = 0;
        for key in self.galois.values_mut() {
            freed += key.key.compact(ctx)?;
        }
        Ok(freed)
    }

    /// Truncates the Galois key of element `g` to `max_level` ([`SwitchingKey::truncate`]), if
    /// the set holds it. Returns the bytes freed.
    pub fn truncate_galois(
        &mut self,
        ctx: &CkksContext,
        g: usize,
        max_level: usize,
    ) -> Result<usize, CkksError> {
        let Some(key) = self.galois.get_mut(&g) else {
            return Ok(0);
        };
        let before = key.key.heap_bytes();
        key.truncate(ctx, max_level)?;
        Ok(before - key.key.heap_bytes())
    }

    /// Truncates every Galois key whose element is not in `keep` to `max_level`
    /// ([`SwitchingKey::truncate`]): for a server whose layers rotate only at the bootstrapper's
    /// output level or below, `keep` being the elements bootstrapping itself uses at higher
    /// levels. Returns the bytes freed.
    pub fn truncate_galois_except(
        &mut self,
        ctx: &CkksContext,
        max_level: usize,
        keep: &[usize],
    ) -> Result<usize, CkksError> {
        let mut freed = 0;
        for (g, key) in &mut self.galois {
            if !keep.contains(g) {
                let before = key.key.heap_bytes();
                key.truncate(ctx, max_level)?;
                freed += before - key.key.heap_bytes();
            }
        }
        Ok(freed)
    }

    /// The bytes the keys of this set hold.
    pub fn heap_bytes(&self) -> usize {
        self.relinearization
            .iter()
            .map(|k| &k.key)
            .chain(self.galois.values().map(|k| &k.key))
            .chain(self.galois_level0.values().map(|k| &k.key))
            .chain(self.dense_to_sparse.iter().map(|k| &k.key))
            .chain(self.sparse_to_dense.iter().map(|k| &k.key))
            .map(SwitchingKey::heap_bytes)
            .sum()
    }

    /// Every key's parameter identifier, for checks.
    pub(crate) fn params_ids(&self) -> impl Iterator<Item = ParamsId> + '_ {
        self.relinearization
            .iter()
            .map(|k| k.key.params_id)
            .chain(self.galois.values().map(|k| k.key.params_id))
            .chain(self.galois_level0.values().map(|k| k.key.params_id))
            .chain(self.dense_to_sparse.iter().map(|k| k.key.params_id))
            .chain(self.sparse_to_dense.iter().map(|k| k.key.params_id))
    }
}

/// A [`KeySink`] that compacts every full Galois key ([`SwitchingKey::compact`]), and cuts
/// those listed in `cut` to their level ([`SwitchingKey::truncate`]), before handing it to
/// `inner`: a server collecting keys one at a time (generated, or decoded from files) never
/// holds more than one whole key.
#[derive(Debug)]
pub struct CompactGalois<'a, S> {
    /// The context of the keys.
    pub ctx: &'a CkksContext,
    /// Galois element to the highest level its key is used at (for example
    /// [`crate::BootstrapParametersLiteral::galois_levels`]); elements not listed stay whole.
    pub cut: alloc::collections::BTreeMap<usize, usize>,
    /// Where the keys go.
    pub inner: S,
}

impl<S: KeySink> KeySink for CompactGalois<'_, S> {
    type Error = S::Error;

    fn accept(&mut self, key: EvaluationKey) -> Result<(), S::Error> {
        let key = match key {
            EvaluationKey::Galois(mut g) if !g.is_level0() => {
                if let Some(&level) = self.cut.get(&g.galois_element) {
                    g.key.truncate(self.ctx, level)?;
                }
                g.key.compact(self.ctx)?;
                EvaluationKey::Galois(g)
            }
            other => other,
        };
        self.inner.accept(key)
    }
}

impl KeySink for EvaluationKeySet {
    type Error = CkksError;

    fn accept(&mut self, key: EvaluationKey) -> Result<(), CkksError> {
        self.insert(key);
        Ok(())
    }
}
