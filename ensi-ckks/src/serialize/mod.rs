//! A versioned, checked binary format for parameters, keys, plaintexts and ciphertexts.
//!
//! Every object starts with a 16-byte header: the magic bytes `b"ENSI"`, the format version
//! ([`FORMAT_VERSION`], `u16` little-endian), an [`ObjectType`] tag, a flags byte
//! ([`FLAG_TEST_KEY`]) and the 8-byte [`ParamsId`] of its parameter set. The layout of every field is specified in the
//! crate's `FORMAT.md`.
//!
//! Residues are packed tightly: limb `i` stores its `N` residues at `bitlen(q_i)` bits each,
//! least significant bit first, padded to a whole byte. Seeded objects (public keys, fresh
//! secret-key ciphertexts) store the non-uniform polynomial and the 32-byte seed of the uniform
//! one, which decoding re-expands with [`ensi_math::sample::expand_seed`]: half the size.
//!
//! Decoding treats its input as untrusted: it checks magic, version, object type, parameter
//! identity against the [`CkksContext`], every length (the input length is checked before any
//! buffer is allocated, so allocation is bounded by what the context implies), every residue
//! against its prime, levels, slot counts and scales, secret coefficients in `{-1, 0, 1}`, and
//! refuses trailing bytes. It returns [`CkksError::Format`] (or another [`CkksError`] for a
//! semantic check), never panics.
//!
//! **The secret key encoding is secret**: [`SecretKey::to_bytes`] returns a buffer that is
//! zeroized on drop; store it with owner-only permissions and never send it.

mod bundle;
mod evalkeys;
mod wire;

pub(crate) use wire::{poly_len, write_header, write_limb};

pub use bundle::{BundleHeader, CiphertextBundle, MAX_BUNDLE_CIPHERTEXTS, split_bundle};

pub use crate::error::FormatError;
pub use crate::ids::ObjectType;

use crate::ciphertext::Ciphertext;
use crate::context::CkksContext;
use crate::error::CkksError;
use crate::keys::{PublicKey, SecretKey};
use crate::params::{Parameters, ParametersLiteral, ParamsId, SecretDistribution, Security};
use crate::plaintext::Plaintext;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use ensi_math::{Ntt, RnsContext, RnsPoly, sample};
use subtle::ConstantTimeEq;
use wire::{Reader, read_header, read_poly, write_poly};
use zeroize::Zeroizing;

/// The magic bytes every object starts with.
pub const MAGIC: [u8; 4] = *b"ENSI";

/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// Bytes of the common header: magic (4), version (2), object type (1), flags (1),
/// parameter id (8).
pub const HEADER_LEN: usize = 16;

/// Header flag: the object was made from a reproducible seed (for example `ensi keygen
/// --seed`), so whatever secret it depends on is known to anyone with the seed. For tests only;
/// tools show it and must not treat such keys as secure.
pub const FLAG_TEST_KEY: u8 = 1;

/// Every flag this version knows; decoders refuse the others.
pub(crate) const KNOWN_FLAGS: u8 = FLAG_TEST_KEY;

/// Sets [`FLAG_TEST_KEY`] in the header of an encoded object (after checking it is one).
pub fn mark_test_object(bytes: &mut [u8]) -> Result<(), CkksError> {
    peek_header(bytes)?;
    bytes[7] |= FLAG_TEST_KEY;
    Ok(())
}

/// The most primes a parameter set may list in `Q` or in `P` when decoded.
pub const MAX_PRIMES: usize = 256;

/// Options of [`Parameters::from_bytes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// Accept parameter sets marked insecure (built by [`Parameters::new_insecure`]). Off by
    /// default: decoding refuses them with [`FormatError::InsecureParameters`].
    pub allow_insecure: bool,
}

impl DecodeOptions {
    /// Accepts (or not) parameter sets marked insecure: for tests only.
    pub fn allow_insecure(mut self, allow: bool) -> Self {
        self.allow_insecure = allow;
        self
    }
}

/// The header of a serialized object, read without decoding the body (for inspection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// The format version.
    pub version: u16,
    /// The object type.
    pub object_type: ObjectType,
    /// The parameter set the object belongs to.
    pub params_id: ParamsId,
    /// [`FLAG_TEST_KEY`] is set: made from a reproducible seed, for tests only.
    pub test_key: bool,
}

/// Reads the header of any serialized object of this format version.
pub fn peek_header(bytes: &[u8]) -> Result<Header, CkksError> {
    let tag = *bytes.get(6).ok_or(FormatError::Truncated {
        needed: HEADER_LEN,
        available: bytes.len(),
    })?;
    let object_type = ObjectType::from_tag(tag).ok_or(FormatError::InvalidField {
        field: "object_type",
        value: u64::from(tag),
    })?;
    let params_id = read_header(&mut Reader::new(bytes), object_type)?;
    Ok(Header {
        version: FORMAT_VERSION,
        object_type,
        params_id,
        test_key: bytes[7] & FLAG_TEST_KEY != 0,
    })
}

pub(crate) fn field<T: TryFrom<usize>>(name: &'static str, value: usize) -> Result<T, FormatError> {
    T::try_from(value).map_err(|_| FormatError::InvalidField {
        field: name,
        value: value as u64,
    })
}

fn read_scale(r: &mut Reader<'_>) -> Result<f64, FormatError> {
    let scale = r.f64()?;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(FormatError::InvalidScale { scale });
    }
    Ok(scale)
}

/// Reads `level`, `slots` and `scale` and checks them against `params`.
fn read_level_slots_scale(
    r: &mut Reader<'_>,
    params: &Parameters,
) -> Result<(usize, usize, f64), CkksError> {
    let level = r.u32()? as usize;
    if level > params.max_level() {
        return Err(CkksError::InvalidLevel {
            level,
            max: params.max_level(),
        });
    }
    let slots = r.u32()? as usize;
    let n = params.n();
    if !(slots == n || (slots.is_power_of_two() && slots <= n / 2)) {
        return Err(CkksError::InvalidSlotCount { slots, max: n / 2 });
    }
    let scale = read_scale(r)?;
    Ok((level, slots, scale))
}

pub(crate) fn write_level_slots_scale(
    out: &mut Vec<u8>,
    level: usize,
    slots: usize,
    scale: f64,
) -> Result<(), FormatError> {
    out.extend_from_slice(&field::<u32>("level", level)?.to_le_bytes());
    out.extend_from_slice(&field::<u32>("slots", slots)?.to_le_bytes());
    out.extend_from_slice(&scale.to_le_bytes());
    Ok(())
}

fn poly_bytes(poly: &RnsPoly<Ntt>) -> usize {
    poly_len(poly.n(), poly.moduli())
}

impl Parameters {
    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        let lit = self.literal();
        let secret = match lit.secret {
            SecretDistribution::SparseTernary { .. } => 5,
            SecretDistribution::UniformTernary => 1,
        };
        HEADER_LEN + 2 + 2 + lit.log_q.len() + 2 + lit.log_p.len() + 2 + secret + 8 + 1
    }

    /// Serializes the literal this set was built from and its security flag (`FORMAT.md` §4.1).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        let lit = self.literal();
        let mut out = Vec::with_capacity(self.serialized_len());
        write_header(&mut out, ObjectType::Parameters, self.id());
        out.push(match self.security() {
            Security::Bits128 => 0,
            Security::Insecure => 1,
        });
        out.push(field::<u8>("log_n", lit.log_n as usize)?);
        for (name, list) in [("q_count", &lit.log_q), ("p_count", &lit.log_p)] {
            if list.len() > MAX_PRIMES {
                return Err(FormatError::InvalidField {
                    field: name,
                    value: list.len() as u64,
                }
                .into());
            }
            out.extend_from_slice(&field::<u16>(name, list.len())?.to_le_bytes());
            for &bits in list {
                out.push(field::<u8>("prime_bits", bits as usize)?);
            }
        }
        out.extend_from_slice(&field::<u16>("dnum", lit.dnum)?.to_le_bytes());
        match lit.secret {
            SecretDistribution::UniformTernary => out.push(0),
            SecretDistribution::SparseTernary { hamming_weight } => {
                out.push(1);
                out.extend_from_slice(
                    &field::<u32>("hamming_weight", hamming_weight)?.to_le_bytes(),
                );
            }
        }
        out.extend_from_slice(&lit.error_std.to_le_bytes());
        out.push(field::<u8>(
            "log_default_scale",
            lit.log_default_scale as usize,
        )?);
        Ok(out)
    }

    /// Decodes a parameter set and rebuilds it with the checked constructors: a set marked
    /// 128-bit secure goes through [`Parameters::new`] (so it is refused if it is not), a set
    /// marked insecure is refused unless `options` allows it. The rebuilt set's id must equal
    /// the header's.
    pub fn from_bytes(bytes: &[u8], options: DecodeOptions) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        let id = read_header(&mut r, ObjectType::Parameters)?;
        let security = match r.u8()? {
            0 => Security::Bits128,
            1 => Security::Insecure,
            v => {
                return Err(FormatError::InvalidField {
                    field: "security",
                    value: u64::from(v),
                }
                .into());
            }
        };
        let log_n = u32::from(r.u8()?);
        let mut lists: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        for (name, list) in ["q_count", "p_count"].into_iter().zip(&mut lists) {
            let count = usize::from(r.u16()?);
            if count > MAX_PRIMES {
                return Err(FormatError::InvalidField {
                    field: name,
                    value: count as u64,
                }
                .into());
            }
            *list = r.take(count)?.iter().map(|&b| u32::from(b)).collect();
        }
        let [log_q, log_p] = lists;
        let dnum = usize::from(r.u16()?);
        let secret = match r.u8()? {
            0 => SecretDistribution::UniformTernary,
            1 => SecretDistribution::SparseTernary {
                hamming_weight: r.u32()? as usize,
            },
            v => {
                return Err(FormatError::InvalidField {
                    field: "secret",
                    value: u64::from(v),
                }
                .into());
            }
        };
        let error_std = r.f64()?;
        let log_default_scale = u32::from(r.u8()?);
        r.finish()?;
        let literal = ParametersLiteral {
            log_n,
            log_q,
            log_p,
            dnum,
            secret,
            error_std,
            log_default_scale,
        };
        let params = match security {
            Security::Bits128 => Parameters::new(literal)?,
            Security::Insecure if options.allow_insecure => Parameters::new_insecure(literal)?,
            Security::Insecure => return Err(FormatError::InsecureParameters.into()),
        };
        if params.id() != id {
            return Err(CkksError::ParamsMismatch {
                expected: params.id(),
                found: id,
            });
        }
        Ok(params)
    }
}

impl SecretKey {
    /// Bytes of [`Self::to_bytes`]: the header and 2 bits per coefficient.
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + self.s.n().div_ceil(4)
    }

    /// Serializes the key's signed coefficients at 2 bits each (`FORMAT.md` §4.2), not its NTT
    /// residues. Branch-free on the coefficients; every temporary is zeroized and so is the
    /// returned buffer when dropped. **The result is the secret key**: protect it (owner-only
    /// file permissions) and never send it. Fails if the key is not ternary.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, CkksError> {
        let coeff = Zeroizing::new(self.s.clone().into_coeff());
        let q = coeff.moduli()[0].q();
        let mut out = Zeroizing::new(Vec::with_capacity(self.serialized_len()));
        write_header(&mut out, ObjectType::SecretKey, self.params_id);
        let mut valid = subtle::Choice::from(1);
        for chunk in coeff.limb(0).chunks(4) {
            let mut byte = 0u8;
            for (j, &r) in chunk.iter().enumerate() {
                let one = r.ct_eq(&1);
                let minus_one = r.ct_eq(&(q - 1));
                valid &= r.ct_eq(&0) | one | minus_one;
                // 0 -> 0b00, 1 -> 0b01, -1 -> 0b11 (two's complement in two bits).
                let code = one.unwrap_u8() | (minus_one.unwrap_u8() * 3);
                byte |= code << (2 * j);
            }
            out.push(byte);
        }
        if !bool::from(valid) {
            return Err(FormatError::InvalidSecretCoefficient.into());
        }
        Ok(out)
    }

    /// Decodes a secret key of `ctx`, checking every coefficient is in `{-1, 0, 1}` (branch-free
    /// on the coefficients; the temporaries are zeroized). The caller should zeroize `bytes`.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let coeffs = read_secret_coefficients(bytes, ctx.id(), ctx.n())?;
        Self::from_coefficients(ctx, &coeffs)
    }
}

/// The signed coefficients of an encoded secret key (§4.2) of parameter set `id` and degree
/// `n`, checked to be in `{-1, 0, 1}` branch-free, in a buffer zeroized on drop.
pub(crate) fn read_secret_coefficients(
    bytes: &[u8],
    id: ParamsId,
    n: usize,
) -> Result<Zeroizing<Vec<i64>>, CkksError> {
    let mut r = Reader::new(bytes);
    let found = read_header(&mut r, ObjectType::SecretKey)?;
    if found != id {
        return Err(CkksError::ParamsMismatch {
            expected: id,
            found,
        });
    }
    let packed = r.take(n.div_ceil(4))?;
    r.finish()?;
    let mut coeffs = Zeroizing::new(vec![0i64; n]);
    let mut invalid = 0u8;
    for (i, c) in coeffs.iter_mut().enumerate() {
        let code = (packed[i / 4] >> (2 * (i % 4))) & 3;
        let (lo, hi) = (code & 1, code >> 1);
        invalid |= hi & !lo;
        *c = i64::from(lo) - 2 * i64::from(hi);
    }
    // Padding codes past N (only when N < 4) must be zero.
    if !n.is_multiple_of(4) {
        invalid |= packed[n / 4] >> (2 * (n % 4));
    }
    if invalid != 0 {
        return Err(FormatError::InvalidSecretCoefficient.into());
    }
    Ok(coeffs)
}

impl PublicKey {
    /// Bytes of [`Self::to_bytes`]: the header, the seed of `a` and the packed `b`.
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + 32 + poly_bytes(&self.b)
    }

    /// Serializes `b` and the seed of `a` (`FORMAT.md` §4.3).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        let mut out = Vec::with_capacity(self.serialized_len());
        write_header(&mut out, ObjectType::PublicKey, self.params_id);
        out.extend_from_slice(&self.seed);
        write_poly(&mut out, &self.b);
        Ok(out)
    }

    /// Decodes a public key of `ctx`, re-expanding `a` from its seed.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        ctx.check_id(read_header(&mut r, ObjectType::PublicKey)?)?;
        let seed: [u8; 32] = r.array()?;
        let limbs = ctx.max_level() + 1;
        let b = read_poly(&mut r, ctx.ring(), limbs)?;
        r.finish()?;
        let a = sample::expand_seed::<Ntt>(ctx.ring(), limbs, &seed)?;
        Ok(Self {
            b,
            a,
            seed,
            params_id: ctx.id(),
        })
    }
}

impl Plaintext {
    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + 16 + poly_bytes(&self.poly)
    }

    /// Serializes the level, slot count, scale and NTT residues (`FORMAT.md` §4.4).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        let mut out = Vec::with_capacity(self.serialized_len());
        write_header(&mut out, ObjectType::Plaintext, self.params_id);
        write_level_slots_scale(&mut out, self.level(), self.slots, self.scale)?;
        write_poly(&mut out, &self.poly);
        Ok(out)
    }

    /// Decodes a plaintext of `ctx`.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        ctx.check_id(read_header(&mut r, ObjectType::Plaintext)?)?;
        let (level, slots, scale) = read_level_slots_scale(&mut r, ctx.params())?;
        let poly = read_poly(&mut r, ctx.ring(), level + 1)?;
        r.finish()?;
        Ok(Self {
            poly,
            scale,
            slots,
            params_id: ctx.id(),
        })
    }
}

/// Ciphertext forms (`FORMAT.md` §4.5).
const FORM_FULL: u8 = 0;
pub(crate) const FORM_SEEDED: u8 = 1;

impl Ciphertext {
    /// Bytes of [`Self::to_bytes`]: about half for a seeded (fresh secret-key) ciphertext. For a
    /// ciphertext with a seed this costs one seed expansion (see [`Self::to_bytes`]).
    pub fn serialized_len(&self) -> usize {
        self.len_for(self.seeded_c0())
    }

    fn len_for(&self, seeded: Option<(&[u8; 32], &RnsPoly<Ntt>)>) -> usize {
        let head = HEADER_LEN + 16 + 1;
        match seeded {
            Some((_, c0)) => head + 32 + poly_bytes(c0),
            None => head + 4 + self.parts.iter().map(poly_bytes).sum::<usize>(),
        }
    }

    /// The seed and `c_0` if this ciphertext can be stored seeded: it has a seed, two parts, and
    /// `c_1` is still the expansion of the seed (an operation that changed `c_1` without
    /// clearing the seed falls back to the full form instead of writing a wrong ciphertext).
    fn seeded_c0(&self) -> Option<(&[u8; 32], &RnsPoly<Ntt>)> {
        match (&self.seed, self.parts.as_slice()) {
            (Some(seed), [c0, c1]) => {
                let expanded = sample::expand_seed::<Ntt>(c1.context(), c1.limbs(), seed).ok()?;
                (expanded == *c1).then_some((seed, c0))
            }
            _ => None,
        }
    }

    /// Serializes the ciphertext (`FORMAT.md` §4.5): `c_0` and the seed of `c_1` for a fresh
    /// secret-key encryption, every part otherwise. A seed is used only after checking that it
    /// still expands to `c_1`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        if self.parts.len() < 2 {
            return Err(FormatError::InvalidField {
                field: "part_count",
                value: self.parts.len() as u64,
            }
            .into());
        }
        let seeded = self.seeded_c0();
        let mut out = Vec::with_capacity(self.len_for(seeded));
        write_header(&mut out, ObjectType::Ciphertext, self.params_id);
        write_level_slots_scale(&mut out, self.level(), self.slots, self.scale)?;
        match seeded {
            Some((seed, c0)) => {
                out.push(FORM_SEEDED);
                out.extend_from_slice(seed);
                write_poly(&mut out, c0);
            }
            None => {
                out.push(FORM_FULL);
                out.extend_from_slice(&field::<u32>("part_count", self.parts.len())?.to_le_bytes());
                for part in &self.parts {
                    write_poly(&mut out, part);
                }
            }
        }
        Ok(out)
    }

    /// Decodes a ciphertext of `ctx`; a seeded one gets `c_1` re-expanded from its seed.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let d = decode_ciphertext(bytes, ctx.params(), |_| Ok(ctx.ring().clone()))?;
        Ok(Self {
            parts: d.parts,
            scale: d.scale,
            slots: d.slots,
            params_id: ctx.id(),
            seed: d.seed,
        })
    }
}

/// The fields of an encoded ciphertext.
pub(crate) struct DecodedCiphertext {
    pub(crate) level: usize,
    pub(crate) slots: usize,
    pub(crate) scale: f64,
    pub(crate) parts: Vec<RnsPoly<Ntt>>,
    pub(crate) seed: Option<[u8; 32]>,
}

/// Decodes a ciphertext of `params` (§4.5) into polynomials over the ring `ring_for(limbs)`
/// returns once the level is known: the whole `Q ∪ P` ring of a context, or a client's ring of
/// only the primes the ciphertext uses (its first primes must be `q_0 ... q_level`).
pub(crate) fn decode_ciphertext(
    bytes: &[u8],
    params: &Parameters,
    ring_for: impl FnOnce(usize) -> Result<Arc<RnsContext>, CkksError>,
) -> Result<DecodedCiphertext, CkksError> {
    let mut r = Reader::new(bytes);
    let id = read_header(&mut r, ObjectType::Ciphertext)?;
    if id != params.id() {
        return Err(CkksError::ParamsMismatch {
            expected: params.id(),
            found: id,
        });
    }
    let (level, slots, scale) = read_level_slots_scale(&mut r, params)?;
    let limbs = level + 1;
    let ring = ring_for(limbs)?;
    let (parts, seed) = match r.u8()? {
        FORM_SEEDED => {
            let seed: [u8; 32] = r.array()?;
            let c0 = read_poly(&mut r, &ring, limbs)?;
            r.finish()?;
            let c1 = sample::expand_seed::<Ntt>(&ring, limbs, &seed)?;
            (vec![c0, c1], Some(seed))
        }
        FORM_FULL => {
            let count = r.u32()? as usize;
            if count < 2 {
                return Err(FormatError::InvalidField {
                    field: "part_count",
                    value: count as u64,
                }
                .into());
            }
            // Grows part by part: each part's bytes are checked before it is allocated.
            let mut parts = Vec::new();
            for _ in 0..count {
                parts.push(read_poly(&mut r, &ring, limbs)?);
            }
            r.finish()?;
            (parts, None)
        }
        v => {
            return Err(FormatError::InvalidField {
                field: "form",
                value: u64::from(v),
            }
            .into());
        }
    };
    Ok(DecodedCiphertext {
        level,
        slots,
        scale,
        parts,
        seed,
    })
}
