//! The constrained client: key generation, encryption and decryption in bounded memory, without
//! `std`, and without a [`CkksContext`].
//!
//! A [`CkksContext`] holds NTT tables for every prime of `Q ∪ P` (tens of megabytes at
//! `N = 2^16`), and a [`SecretKey`] holds `s` in NTT form over all of them. A small device cannot
//! afford either. This module works from a [`Parameters`] set alone:
//!
//! - [`ClientParams`] keeps only the primes and the digit structure; the NTT table of a prime is
//!   built when a limb over that prime is computed and dropped right after.
//! - [`SmallSecretKey`] keeps `s` as `N` signed bytes, its small coefficient form.
//! - Every object is **streamed** to a [`ByteSink`] limb by limb, in the binary format of
//!   [`crate::serialize`] (`FORMAT.md` §4): the seeded half of a key is never materialised, the
//!   error polynomial stays in coefficient form, and each limb is computed, packed and written
//!   before the next. Peak heap is a few limbs of `N` words, whatever the number of primes,
//!   digits or keys (about 7 MB at `N = 2^16`; the tests assert at most 16 MiB with a counting
//!   allocator).
//!
//! **The bytes are the same** as those of the in-memory path ([`SecretKey::generate`],
//! [`crate::PublicKey::generate`], [`crate::generate_bootstrap_keys`], [`SecretKey::encrypt`]
//! and the serializers) for the same random generator: every object draws its randomness in the
//! same order, and the arithmetic is exact modular arithmetic with canonical residues. The tests
//! check this byte for byte.
//!
//! The arithmetic follows the RLWE key generation of Cheon–Kim–Kim–Song 2017 (§3.4) with the
//! hybrid gadget of Han–Ki 2020 (`b_j = -a_j s + e_j + [P]_{q_i} s'` on the primes of digit `j`);
//! the encapsulation keys are those of Bossuat, Troncoso-Pastoriza and Hubaux (ePrint 2022/024,
//! §4), see [`crate::bootstrap`].

use crate::bootstrap::BootstrapParametersLiteral;
use crate::context::gadget_factor;
use crate::encryption::decrypt_parts;
use crate::error::CkksError;
use crate::evalkeys::{EvaluationKey, KeyRequest};
use crate::ids::ObjectType;
use crate::keys::{SecretKey, check_secret, sample_secret};
use crate::params::{Parameters, ParamsId};
use crate::plaintext::{centred_coefficients, decode_slots};
use crate::rlwe::digit_seed;
pub use crate::serialize::BundleHeader;
use crate::serialize::{
    FLAG_TEST_KEY, FORM_SEEDED, HEADER_LEN, decode_ciphertext, poly_len, read_secret_coefficients,
    write_header, write_level_slots_scale, write_limb,
};
use crate::{CkksContext, encoding};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use ensi_math::sample::{self, SeedExpander};
use ensi_math::{Modulus, NttPlan, RnsContext, RnsPoly};
use num_complex::Complex64;
use rand_core::{CryptoRng, RngCore};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// What a client needs of a parameter set: its primes, digits and gadget factors. No NTT
/// table: those are built one prime at a time.
#[derive(Clone, Debug)]
pub struct ClientParams {
    params: Parameters,
    /// The `Q` primes, then the `P` primes.
    moduli: Vec<Modulus>,
    /// `Q` primes per digit.
    alpha: usize,
    /// The number of digits of a full key.
    digits: usize,
    /// `[P]_{q_i}` for every `Q` prime.
    p_mod_q: Vec<u64>,
    /// `[p_0]_{q_0}`: the gadget factor of the dense-to-sparse key.
    p0_mod_q0: u64,
}

/// The basis a streamed switching key spans (see [`crate::KeySpan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Space {
    /// Every prime of `Q ∪ P`.
    Full,
    /// `q_0` and `p_0` only.
    Encapsulation,
}

impl ClientParams {
    /// The client's view of `params` (checks every prime).
    pub fn new(params: &Parameters) -> Result<Self, CkksError> {
        let moduli = params
            .q()
            .iter()
            .chain(params.p())
            .map(|&q| Modulus::new(q))
            .collect::<Result<Vec<_>, _>>()?;
        let l = params.q().len();
        let alpha = l.div_ceil(params.dnum().clamp(1, l));
        let digits = l.div_ceil(alpha);
        let p_mod_q = moduli[..l]
            .iter()
            .map(|m| gadget_factor(m, params.p()))
            .collect();
        let q0 = moduli[0];
        let p0_mod_q0 = q0.reduce(params.p()[0]);
        Ok(Self {
            params: params.clone(),
            moduli,
            alpha,
            digits,
            p_mod_q,
            p0_mod_q0,
        })
    }

    /// The parameter set.
    pub fn params(&self) -> &Parameters {
        &self.params
    }

    /// The ring degree `N`.
    pub fn n(&self) -> usize {
        self.params.n()
    }

    /// The parameter identifier.
    pub fn id(&self) -> ParamsId {
        self.params.id()
    }

    fn q_count(&self) -> usize {
        self.params.q().len()
    }

    /// The primes of `space`, in limb order.
    fn space_moduli(&self, space: Space) -> Vec<Modulus> {
        match space {
            Space::Full => self.moduli.clone(),
            Space::Encapsulation => vec![self.moduli[0], self.moduli[self.q_count()]],
        }
    }

    /// `(digits, Q primes per digit, Q primes)` of `space`.
    fn space_digits(&self, space: Space) -> (usize, usize, usize) {
        match space {
            Space::Full => (self.digits, self.alpha, self.q_count()),
            Space::Encapsulation => (1, 1, 1),
        }
    }

    /// The gadget factor `[P]_{q_i}` of `space` at `Q` prime `i`.
    fn gadget(&self, space: Space, i: usize) -> u64 {
        match space {
            Space::Full => self.p_mod_q[i],
            Space::Encapsulation => self.p0_mod_q0,
        }
    }
}

/// The secret key in its small form: `N` coefficients in `{-1, 0, 1}`, one byte each. Zeroized
/// on drop, compared in constant time, and its `Debug` prints nothing secret. The serialized
/// form is that of [`SecretKey`] (2 bits per coefficient), so either type reads the other's
/// files.
pub struct SmallSecretKey {
    coeffs: Zeroizing<Vec<i8>>,
    params_id: ParamsId,
}

impl SmallSecretKey {
    /// Samples a fresh secret for `cp`, drawing exactly what [`SecretKey::generate`] draws.
    pub fn generate<G: RngCore + CryptoRng>(
        cp: &ClientParams,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        let wide = sample_secret(&cp.params, rng)?;
        Self::from_coefficients(cp, &wide)
    }

    /// The key with coefficients `coeffs` (length `N`, each in `{-1, 0, 1}`, and of the declared
    /// Hamming weight for a sparse-secret set); the check is branch-free on the coefficients.
    pub fn from_coefficients(cp: &ClientParams, coeffs: &[i64]) -> Result<Self, CkksError> {
        check_secret(&cp.params, coeffs)?;
        Ok(Self {
            coeffs: Zeroizing::new(coeffs.iter().map(|&c| c as i8).collect()),
            params_id: cp.id(),
        })
    }

    /// The parameter set this key belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.params_id
    }

    /// Serializes the key exactly as [`SecretKey::to_bytes`] does (`FORMAT.md` §4.2, 2 bits per
    /// coefficient), branch-free on the coefficients, into a buffer zeroized on drop. **The
    /// result is the secret key**: owner-only permissions, never sent.
    pub fn to_bytes(&self, test_key: bool) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + self.coeffs.len() / 4 + 1));
        write_header(&mut out, ObjectType::SecretKey, self.params_id);
        if test_key {
            out[7] |= FLAG_TEST_KEY;
        }
        for chunk in self.coeffs.chunks(4) {
            let mut byte = 0u8;
            for (j, &c) in chunk.iter().enumerate() {
                // 0 -> 0b00, 1 -> 0b01, -1 -> 0b11 (two's complement in two bits).
                byte |= ((c as u8) & 3) << (2 * j);
            }
            out.push(byte);
        }
        out
    }

    /// Decodes a secret key file of `cp` (either type's), checking every coefficient
    /// (branch-free; the temporaries are zeroized).
    pub fn from_bytes(cp: &ClientParams, bytes: &[u8]) -> Result<Self, CkksError> {
        let coeffs = read_secret_coefficients(bytes, cp.id(), cp.n())?;
        Self::from_coefficients(cp, &coeffs)
    }

    /// The full [`SecretKey`] (NTT form over every prime of `ctx`), for a client that can
    /// afford it.
    pub fn to_secret_key(&self, ctx: &Arc<CkksContext>) -> Result<SecretKey, CkksError> {
        let wide = Zeroizing::new(
            self.coeffs
                .iter()
                .map(|&c| i64::from(c))
                .collect::<Vec<_>>(),
        );
        SecretKey::from_coefficients(ctx, &wide)
    }
}

impl Zeroize for SmallSecretKey {
    fn zeroize(&mut self) {
        self.coeffs.zeroize();
    }
}

impl ZeroizeOnDrop for SmallSecretKey {}

impl ConstantTimeEq for SmallSecretKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.params_id.0.ct_eq(&other.params_id.0) & self.coeffs[..].ct_eq(&other.coeffs[..])
    }
}

impl fmt::Debug for SmallSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmallSecretKey")
            .field("params_id", &self.params_id)
            .finish_non_exhaustive()
    }
}

/// An object streamed to a [`ByteSink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamedObject {
    /// The public key.
    PublicKey,
    /// The relinearization key.
    Relinearization,
    /// The Galois key of this element.
    Galois(usize),
    /// The level-0 Galois key of this element.
    Level0Galois(usize),
    /// Bootstrapping's dense-to-sparse key.
    DenseToSparse,
    /// Bootstrapping's sparse-to-dense key.
    SparseToDense,
    /// A ciphertext bundle (`FORMAT.md` §4.10) of one ciphertext.
    CiphertextBundle,
}

impl StreamedObject {
    /// The object an in-memory evaluation key is.
    pub fn of(key: &EvaluationKey) -> Self {
        match key {
            EvaluationKey::Relinearization(_) => Self::Relinearization,
            EvaluationKey::Galois(k) if k.is_level0() => Self::Level0Galois(k.galois_element()),
            EvaluationKey::Galois(k) => Self::Galois(k.galois_element()),
            EvaluationKey::DenseToSparse(_) => Self::DenseToSparse,
            EvaluationKey::SparseToDense(_) => Self::SparseToDense,
        }
    }

    /// The conventional file name (`relin.key`, `galois-<k>.key`, `galois0-<k>.key` for a
    /// level-0 key, ...), as `ensi keygen` writes.
    pub fn file_name(&self) -> String {
        match self {
            Self::PublicKey => "public.key".into(),
            Self::Relinearization => "relin.key".into(),
            Self::Galois(g) => alloc::format!("galois-{g}.key"),
            Self::Level0Galois(g) => alloc::format!("galois0-{g}.key"),
            Self::DenseToSparse => "dense-to-sparse.key".into(),
            Self::SparseToDense => "sparse-to-dense.key".into(),
            Self::CiphertextBundle => "query.ct".into(),
        }
    }
}

/// Receives streamed objects: `begin` (with the object's exact length), `write` any number of
/// times, `end`. A file sink writes to a temporary file and renames it at the end; a network
/// sink sends. Usable without `std`.
pub trait ByteSink {
    /// The sink's error; this module's errors convert into it.
    type Error: From<CkksError>;

    /// A new object of `len` bytes starts.
    fn begin(&mut self, object: StreamedObject, len: usize) -> Result<(), Self::Error>;

    /// The next bytes of the current object.
    fn write(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;

    /// The current object is complete.
    fn end(&mut self) -> Result<(), Self::Error>;
}

/// A [`ByteSink`] that keeps every object in memory (tests, and small sets).
#[derive(Debug, Default)]
pub struct MemorySink {
    /// The objects received, in order.
    pub objects: Vec<(StreamedObject, Vec<u8>)>,
}

impl ByteSink for MemorySink {
    type Error = CkksError;

    fn begin(&mut self, object: StreamedObject, len: usize) -> Result<(), CkksError> {
        self.objects.push((object, Vec::with_capacity(len)));
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), CkksError> {
        match self.objects.last_mut() {
            Some((_, buf)) => {
                buf.extend_from_slice(bytes);
                Ok(())
            }
            None => Err(CkksError::InvalidArgument {
                reason: "write before begin",
            }),
        }
    }

    fn end(&mut self) -> Result<(), CkksError> {
        Ok(())
    }
}

/// Options of the streamed writers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Mark keys as test objects (made from a reproducible seed; [`FLAG_TEST_KEY`]). Ciphertexts
    /// are never marked.
    pub test_keys: bool,
}

/// One limb's prime and its NTT table (built here, dropped with it).
struct LimbWork {
    m: Modulus,
    plan: NttPlan,
}

impl LimbWork {
    fn new(n: usize, m: Modulus) -> Result<Self, CkksError> {
        Ok(Self {
            m,
            plan: NttPlan::new(n, m.q())?,
        })
    }

    /// `out = NTT(coeffs mod q)`.
    fn small_ntt<T: Copy + Into<i64>>(&self, coeffs: &[T], out: &mut [u64]) {
        for (o, &c) in out.iter_mut().zip(coeffs) {
            *o = self.m.from_i64(c.into());
        }
        self.plan.forward(out);
    }

    /// One limb of an RLWE sample: the next limb of the seeded `a`, `s = NTT(secret)` and
    /// `b = NTT(e) - a s`.
    fn sample(
        &self,
        expander: &mut SeedExpander,
        secret: &[i8],
        e: &[i64],
        s: &mut [u64],
        a: &mut [u64],
        b: &mut [u64],
    ) {
        let m = self.m;
        expander.next_limb(&m, a);
        self.small_ntt(secret, s);
        self.small_ntt(e, b);
        for ((bi, &ai), &si) in b.iter_mut().zip(a.iter()).zip(s.iter()) {
            *bi = m.sub(*bi, m.mul(ai, si));
        }
    }

    /// Packs `limb` into `packed` (a buffer reused across limbs) and writes it to `sink`.
    fn emit<S: ByteSink>(
        &self,
        limb: &[u64],
        packed: &mut Vec<u8>,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        packed.clear();
        write_limb(packed, &self.m, limb);
        sink.write(packed)
    }
}

/// The message a switching key carries (`s'` in `b_j = -a_j s + e_j + P s'`), in small form.
enum Message<'a> {
    /// `s^2` of the sampling secret (relinearization): squared limb by limb in NTT form.
    SquareOfSecret,
    /// A ternary polynomial given by its coefficients (`s(X^k)`, the sparse secret, or `s`).
    Coeffs(&'a [i8]),
}

/// The header of a key object with an optional `u32` field, flagged when `test_keys`.
fn key_header(cp: &ClientParams, kind: ObjectType, field: Option<u32>, test_keys: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 4);
    write_header(&mut out, kind, cp.id());
    if test_keys {
        out[7] |= FLAG_TEST_KEY;
    }
    if let Some(v) = field {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Streams one seeded switching key (header already prepared): seed, digit count, then every
/// digit's `b_j` limb by limb. Draws the seed, then one Gaussian error per digit, exactly as
/// [`crate::SwitchingKey`]'s generation does.
#[allow(clippy::too_many_arguments)]
fn stream_switching_key<G, S>(
    cp: &ClientParams,
    object: StreamedObject,
    header: Vec<u8>,
    space: Space,
    secret: &[i8],
    message: Message<'_>,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: ByteSink,
{
    let n = cp.n();
    let moduli = cp.space_moduli(space);
    let (digits, alpha, num_q) = cp.space_digits(space);
    let len = header.len() + 32 + 1 + digits * poly_len(n, &moduli);
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    sink.begin(object, len)?;
    sink.write(&header)?;
    sink.write(&seed)?;
    sink.write(&[digits as u8])?;
    let mut e = Zeroizing::new(vec![0i64; n]);
    let mut s = Zeroizing::new(vec![0u64; n]);
    let mut msg = Zeroizing::new(vec![0u64; n]);
    let mut b = vec![0u64; n];
    let mut a = vec![0u64; n];
    let mut packed = Vec::new();
    for j in 0..digits {
        sample::gaussian(rng, &mut e);
        let mut expander = SeedExpander::new(&digit_seed(&seed, j));
        let digit = (j * alpha).min(num_q)..((j + 1) * alpha).min(num_q);
        for (i, &m) in moduli.iter().enumerate() {
            let w = LimbWork::new(n, m)?;
            w.sample(&mut expander, secret, &e, &mut s, &mut a, &mut b);
            if digit.contains(&i) {
                match message {
                    Message::SquareOfSecret => {
                        for (x, &si) in msg.iter_mut().zip(s.iter()) {
                            *x = m.mul(si, si);
                        }
                    }
                    Message::Coeffs(c) => w.small_ntt(c, &mut msg),
                }
                let p = cp.gadget(space, i);
                for (bi, &x) in b.iter_mut().zip(msg.iter()) {
                    *bi = m.add(*bi, m.mul(x, p));
                }
            }
            w.emit(&b, &mut packed, sink)?;
        }
    }
    sink.end()
}

/// `s(X^k)` of a small polynomial: coefficient `i` moves to `i k mod 2N`, negated past `N`.
fn automorphism_small(s: &[i8], k: usize) -> Zeroizing<Vec<i8>> {
    let n = s.len();
    let mut out = Zeroizing::new(vec![0i8; n]);
    for (i, &c) in s.iter().enumerate() {
        let t = (i * k) % (2 * n);
        // The index is public (it depends on i and k only); the value moves with a sign.
        let (pos, sign) = if t < n { (t, 1i8) } else { (t - n, -1i8) };
        out[pos] = c * sign;
    }
    out
}

/// Streams the public key of `sk` (`FORMAT.md` §4.3), drawing what
/// [`crate::PublicKey::generate`] draws.
pub fn stream_public_key<G, S>(
    cp: &ClientParams,
    sk: &SmallSecretKey,
    options: StreamOptions,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: ByteSink,
{
    check_key(cp, sk)?;
    let header = key_header(cp, ObjectType::PublicKey, None, options.test_keys);
    let limbs = cp.params.max_level() + 1;
    stream_rlwe(
        cp,
        sk,
        limbs,
        None,
        header,
        StreamedObject::PublicKey,
        sink,
        rng,
    )
}

fn check_key(cp: &ClientParams, sk: &SmallSecretKey) -> Result<(), CkksError> {
    if sk.params_id != cp.id() {
        return Err(CkksError::ParamsMismatch {
            expected: cp.id(),
            found: sk.params_id,
        });
    }
    Ok(())
}

/// Streams an RLWE sample `(-a s + e + m, seed of a)` over the first `limbs` `Q` primes behind
/// `prefix`: the public key (`m = 0`) or a seeded ciphertext (`m` the plaintext's
/// coefficients). Draws the seed, then the error, as [`SecretKey::encrypt`] and the public key
/// do, and writes `-a s + e + m` limb by limb.
#[allow(clippy::too_many_arguments)]
fn stream_rlwe<G, S>(
    cp: &ClientParams,
    sk: &SmallSecretKey,
    limbs: usize,
    message: Option<&[i128]>,
    prefix: Vec<u8>,
    object: StreamedObject,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: ByteSink,
{
    let len = prefix.len() + 32 + poly_len(cp.n(), &cp.moduli[..limbs]);
    sink.begin(object, len)?;
    sink.write(&prefix)?;
    write_rlwe(cp, sk, limbs, message, sink, rng)?;
    sink.end()
}

/// The seed of `c_1` and the limbs of `c_0 = -a s + e (+ message)` of one sample, into the
/// current object of `sink` (drawing the seed, then the error).
fn write_rlwe<G, S>(
    cp: &ClientParams,
    sk: &SmallSecretKey,
    limbs: usize,
    message: Option<&[i128]>,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: ByteSink,
{
    let n = cp.n();
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let mut e = Zeroizing::new(vec![0i64; n]);
    sample::gaussian(rng, &mut e);
    sink.write(&seed)?;
    let mut expander = SeedExpander::new(&seed);
    let mut s = Zeroizing::new(vec![0u64; n]);
    let mut b = vec![0u64; n];
    let mut a = vec![0u64; n];
    let mut msg = vec![0u64; n];
    let mut packed = Vec::new();
    for &m in &cp.moduli[..limbs] {
        let w = LimbWork::new(n, m)?;
        w.sample(&mut expander, &sk.coeffs, &e, &mut s, &mut a, &mut b);
        if let Some(coeffs) = message {
            for (x, &c) in msg.iter_mut().zip(coeffs) {
                let r = m.reduce_u128(c.unsigned_abs());
                *x = if c < 0 { m.neg(r) } else { r };
            }
            w.plan.forward(&mut msg);
            for (bi, &x) in b.iter_mut().zip(&msg) {
                *bi = m.add(*bi, x);
            }
        }
        w.emit(&b, &mut packed, sink)?;
    }
    Ok(())
}

/// Streams the evaluation keys of `request` (relinearization first, then each distinct Galois
/// element in request order), drawing what [`crate::generate_evaluation_keys`] draws.
pub fn stream_evaluation_keys<G, S>(
    cp: &ClientParams,
    sk: &SmallSecretKey,
    request: &KeyRequest,
    options: StreamOptions,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: ByteSink,
{
    check_key(cp, sk)?;
    let galois = request
        .distinct_galois_elements()
        .into_iter()
        .map(|g| cp.params.check_galois_element(g))
        .collect::<Result<Vec<_>, _>>()?;
    if request.relinearization {
        let header = key_header(cp, ObjectType::RelinearizationKey, None, options.test_keys);
        stream_switching_key(
            cp,
            StreamedObject::Relinearization,
            header,
            Space::Full,
            &sk.coeffs,
            Message::SquareOfSecret,
            sink,
            rng,
        )?;
    }
    for g in galois {
        let header = key_header(cp, ObjectType::GaloisKey, Some(g as u32), options.test_keys);
        let rotated = automorphism_small(&sk.coeffs, g);
        stream_switching_key(
            cp,
            StreamedObject::Galois(g),
            header,
            Space::Full,
            &sk.coeffs,
            Message::Coeffs(&rotated),
            sink,
            rng,
        )?;
    }
    Ok(())
}

/// Streams every key bootstrapping needs, plus those of `extra`, in the order and with the
/// draws of [`crate::generate_bootstrap_keys`]: the evaluation keys of the merged request, then
/// the dense-to-sparse key (under the ephemeral sparse secret, over `q_0 p_0`) and the
/// sparse-to-dense key. The ephemeral weight is checked before any key is made; the sparse
/// secret lives in this function only, as `N` bytes, and is wiped when it returns.
pub fn stream_bootstrap_keys<G, S>(
    cp: &ClientParams,
    sk: &SmallSecretKey,
    literal: &BootstrapParametersLiteral,
    extra: &KeyRequest,
    options: StreamOptions,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: ByteSink,
{
    check_key(cp, sk)?;
    literal.check_ephemeral_security_of(&cp.params)?;
    let request = literal.key_request_of(&cp.params)?.merge(extra);
    stream_evaluation_keys(cp, sk, &request, options, sink, rng)?;
    let h = literal.ephemeral_hamming_weight;
    let mut wide = Zeroizing::new(vec![0i64; cp.n()]);
    sample::ternary_hamming(rng, h, &mut wide).map_err(CkksError::from)?;
    let sparse = Zeroizing::new(wide.iter().map(|&c| c as i8).collect::<Vec<i8>>());
    drop(wide);
    let header = key_header(
        cp,
        ObjectType::DenseToSparseKey,
        Some(h as u32),
        options.test_keys,
    );
    stream_switching_key(
        cp,
        StreamedObject::DenseToSparse,
        header,
        Space::Encapsulation,
        &sparse,
        Message::Coeffs(&sk.coeffs),
        sink,
        rng,
    )?;
    let header = key_header(cp, ObjectType::SparseToDenseKey, None, options.test_keys);
    stream_switching_key(
        cp,
        StreamedObject::SparseToDense,
        header,
        Space::Full,
        &sk.coeffs,
        Message::Coeffs(&sparse),
        sink,
        rng,
    )
}

/// Encodes `values` into `slots` slots at `scale` and streams their secret-key encryption at
/// `level`, seeded (`c_0` and the seed of `c_1`), as a bundle of one ciphertext with `header`:
/// [`stream_encrypt_bundle_chunks`] with one chunk.
#[allow(clippy::too_many_arguments)]
pub fn stream_encrypt_bundle<G, S>(
    cp: &ClientParams,
    sk: &SmallSecretKey,
    header: &BundleHeader,
    values: &[f64],
    slots: usize,
    level: usize,
    scale: f64,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: ByteSink,
{
    stream_encrypt_bundle_chunks(cp, sk, header, &[values], slots, level, scale, sink, rng)
}

/// Encodes each of `chunks` (the slot values of one ciphertext each, for example the column
/// chunks of an activation wider than one ciphertext) into `slots` slots at `scale` and streams
/// their secret-key encryptions at `level`, seeded (`c_0` and the seed of `c_1`), in order, as
/// one bundle with `header`. Draws what [`SecretKey::encrypt`] draws, chunk after chunk; the
/// bytes equal those of [`crate::serialize::CiphertextBundle::to_bytes`] of those ciphertexts.
/// Peak heap: one chunk's encoded coefficients (`16 N` bytes), one special FFT of the slot
/// count, and one limb's scratch, whatever the number of chunks.
#[allow(clippy::too_many_arguments)]
pub fn stream_encrypt_bundle_chunks<G, S>(
    cp: &ClientParams,
    sk: &SmallSecretKey,
    header: &BundleHeader,
    chunks: &[&[f64]],
    slots: usize,
    level: usize,
    scale: f64,
    sink: &mut S,
    rng: &mut G,
) -> Result<(), S::Error>
where
    G: RngCore + CryptoRng,
    S: ByteSink,
{
    check_key(cp, sk)?;
    let n = cp.n();
    if level > cp.params.max_level() {
        return Err(CkksError::InvalidLevel {
            level,
            max: cp.params.max_level(),
        }
        .into());
    }
    if !slots.is_power_of_two() || 2 * slots > n {
        return Err(CkksError::InvalidSlotCount { slots, max: n / 2 }.into());
    }
    if chunks.is_empty() {
        return Err(CkksError::InvalidArgument {
            reason: "a bundle needs at least one ciphertext",
        }
        .into());
    }
    if let Some(c) = chunks.iter().find(|c| c.len() > slots) {
        return Err(CkksError::TooManyValues {
            given: c.len(),
            slots,
        }
        .into());
    }
    let fft = encoding::SpecialFft::new(slots);
    let mut prefix = Vec::new();
    header.write_prefix(&mut prefix, cp.id(), chunks.len())?;
    let ct_len = HEADER_LEN + 16 + 1 + 32 + poly_len(n, &cp.moduli[..level + 1]);
    sink.begin(
        StreamedObject::CiphertextBundle,
        prefix.len() + chunks.len() * (8 + ct_len),
    )?;
    sink.write(&prefix)?;
    for values in chunks {
        let complex: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        let coeffs = encoding::encode_complex_with(&fft, n, &complex, scale)?;
        drop(complex);
        let mut head = Vec::with_capacity(8 + HEADER_LEN + 17);
        head.extend_from_slice(&(ct_len as u64).to_le_bytes());
        write_header(&mut head, ObjectType::Ciphertext, cp.id());
        write_level_slots_scale(&mut head, level, slots, scale).map_err(CkksError::from)?;
        head.push(FORM_SEEDED);
        sink.write(&head)?;
        write_rlwe(cp, sk, level + 1, Some(&coeffs), sink, rng)?;
    }
    sink.end()
}

/// Decrypts an encoded ciphertext (`FORMAT.md` §4.5) of `cp` and decodes its slots, over a ring
/// of only the primes it uses (an answer at a low level: one or two NTT tables). Branch-free
/// arithmetic on the secret; every secret-dependent temporary is zeroized.
pub fn decrypt_ciphertext(
    cp: &ClientParams,
    sk: &SmallSecretKey,
    bytes: &[u8],
) -> Result<Vec<Complex64>, CkksError> {
    check_key(cp, sk)?;
    let n = cp.n();
    let q = cp.params.q();
    let d = decode_ciphertext(bytes, &cp.params, |limbs| {
        Ok(RnsContext::new(n, &q[..limbs])?)
    })?;
    let limbs = d.level + 1;
    let ring = d.parts[0].context().clone();
    let wide = Zeroizing::new(sk.coeffs.iter().map(|&c| i64::from(c)).collect::<Vec<_>>());
    let s = Zeroizing::new(RnsPoly::from_i64(&ring, limbs, &wide)?.into_ntt());
    drop(wide);
    let m = Zeroizing::new(decrypt_parts(&d.parts, &s)?);
    let centred = centred_coefficients(&m);
    decode_slots(&centred, d.slots, d.scale, |slots| {
        encoding::decode_complex_with(&encoding::SpecialFft::new(slots), n, &centred, d.scale)
    })
}

/// Decrypts every ciphertext of an encoded bundle (`FORMAT.md` §4.10) of `cp`, one at a time
/// ([`decrypt_ciphertext`]): the bundle's fields and each ciphertext's slots.
pub fn decrypt_bundle(
    cp: &ClientParams,
    sk: &SmallSecretKey,
    bytes: &[u8],
) -> Result<(BundleHeader, Vec<Vec<Complex64>>), CkksError> {
    let (header, cts) = crate::serialize::split_bundle(bytes, cp.id())?;
    let slots = cts
        .into_iter()
        .map(|ct| decrypt_ciphertext(cp, sk, ct))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((header, slots))
}
