//! Evaluation keys in the binary format (`FORMAT.md` §4.6 to §4.9): seeded, so only the
//! `b_j` of each digit are stored, with the one seed every `a_j` is expanded from. The
//! bootstrapping keys (dense-to-sparse over `q_0 p_0`, sparse-to-dense over `Q ∪ P`) have
//! their own tags; the span of each is fixed by its tag, so a decoder never builds a
//! dense-to-sparse key over more than two primes.

use super::wire::{Reader, poly_len, read_header, read_poly, write_header, write_poly};
use super::{FormatError, HEADER_LEN, ObjectType, field};
use crate::bootstrap::{BootstrapParametersLiteral, DenseToSparseKey, SparseToDenseKey};
use crate::context::CkksContext;
use crate::error::CkksError;
use crate::evalkeys::{EvaluationKey, GaloisKey, RelinearizationKey};
use crate::keyswitch::{KeySpan, SwitchingKey};
use crate::params::ParamsId;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Bytes of a seeded switching key body: seed, digit count, the packed `b_j`.
fn switching_key_len(key: &SwitchingKey) -> usize {
    32 + 1
        + key
            .b
            .iter()
            .map(|b| poly_len(b.n(), b.moduli()))
            .sum::<usize>()
}

fn write_switching_key(out: &mut Vec<u8>, key: &SwitchingKey) -> Result<(), CkksError> {
    if key.cut.is_some() {
        return Err(CkksError::InvalidArgument {
            reason: "a key truncated for evaluation cannot be serialized (write the whole key)",
        });
    }
    out.extend_from_slice(&key.seed);
    out.push(field::<u8>("digits", key.b.len())?);
    for b in &key.b {
        write_poly(out, b);
    }
    Ok(())
}

fn read_switching_key(
    ctx: &CkksContext,
    span: KeySpan,
    r: &mut Reader<'_>,
) -> Result<SwitchingKey, CkksError> {
    let space = ctx.space(span);
    let seed: [u8; 32] = r.array()?;
    let digits = usize::from(r.u8()?);
    if digits != space.key_switch.dnum() {
        return Err(FormatError::InvalidField {
            field: "digits",
            value: digits as u64,
        }
        .into());
    }
    let b = (0..digits)
        .map(|_| read_poly(r, &space.ring, space.key_limbs()))
        .collect::<Result<Vec<_>, _>>()?;
    SwitchingKey::from_seeded(ctx, span, b, seed)
}

fn begin(kind: ObjectType, id: ParamsId, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    write_header(&mut out, kind, id);
    out
}

/// Encodes a key whose body starts with one `u32` field (a Galois element, a Hamming weight).
fn encode_with_field(
    kind: ObjectType,
    key: &SwitchingKey,
    name: &'static str,
    value: usize,
) -> Result<Vec<u8>, CkksError> {
    let mut out = begin(kind, key.params_id, HEADER_LEN + 4 + switching_key_len(key));
    let v: u32 = field(name, value)?;
    out.extend_from_slice(&v.to_le_bytes());
    write_switching_key(&mut out, key)?;
    Ok(out)
}

/// Decodes a key whose body starts with one `u32` field, which `valid` must accept.
fn decode_with_field(
    ctx: &CkksContext,
    bytes: &[u8],
    kind: ObjectType,
    span: KeySpan,
    name: &'static str,
    valid: impl Fn(usize) -> bool,
) -> Result<(usize, SwitchingKey), CkksError> {
    let mut r = Reader::new(bytes);
    ctx.check_id(read_header(&mut r, kind)?)?;
    let value = r.u32()? as usize;
    if !valid(value) {
        return Err(FormatError::InvalidField {
            field: name,
            value: value as u64,
        }
        .into());
    }
    let key = read_switching_key(ctx, span, &mut r)?;
    r.finish()?;
    Ok((value, key))
}

impl RelinearizationKey {
    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + switching_key_len(&self.key)
    }

    /// Serializes the key in seeded form (`FORMAT.md` §4.6).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        let mut out = begin(
            ObjectType::RelinearizationKey,
            self.key.params_id,
            self.serialized_len(),
        );
        write_switching_key(&mut out, &self.key)?;
        Ok(out)
    }

    /// Decodes a relinearization key of `ctx`, re-expanding the uniform halves.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        ctx.check_id(read_header(&mut r, ObjectType::RelinearizationKey)?)?;
        let key = read_switching_key(ctx, KeySpan::Full, &mut r)?;
        r.finish()?;
        Ok(Self { key })
    }
}

impl GaloisKey {
    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + 4 + switching_key_len(&self.key)
    }

    /// Serializes the Galois element and the key in seeded form (`FORMAT.md` §4.7; a level-0
    /// key under its own tag, §4.7.1).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        encode_with_field(
            self.object_type(),
            &self.key,
            "galois_element",
            self.galois_element,
        )
    }

    /// The object type this key serializes as: a Galois key, or a level-0 Galois key.
    pub fn object_type(&self) -> ObjectType {
        if self.is_level0() {
            ObjectType::Level0GaloisKey
        } else {
            ObjectType::GaloisKey
        }
    }

    /// Decodes a Galois key of `ctx`, full or level-0 as the header's tag says (the element
    /// must be odd, not 1, below `2N`). The span is fixed by the tag.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let level0 =
            super::peek_header(bytes).is_ok_and(|h| h.object_type == ObjectType::Level0GaloisKey);
        let (kind, span) = if level0 {
            (ObjectType::Level0GaloisKey, KeySpan::Encapsulation)
        } else {
            (ObjectType::GaloisKey, KeySpan::Full)
        };
        let (galois_element, key) =
            decode_with_field(ctx, bytes, kind, span, "galois_element", |g| {
                g < 2 * ctx.n() && ctx.check_galois_element(g).is_ok()
            })?;
        Ok(Self {
            galois_element,
            key,
        })
    }
}

impl DenseToSparseKey {
    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + 4 + switching_key_len(&self.key)
    }

    /// Serializes the Hamming weight of the sparse secret and the key (two primes, one digit)
    /// in seeded form (`FORMAT.md` §4.8).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        encode_with_field(
            ObjectType::DenseToSparseKey,
            &self.key,
            "hamming_weight",
            self.hamming_weight,
        )
    }

    /// Decodes a dense-to-sparse key of `ctx`. The key spans `q_0 p_0` by construction; the
    /// recorded weight must be valid and, for a 128-bit parameter set, pass the security check
    /// of [`BootstrapParametersLiteral::check_ephemeral_security`].
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let (hamming_weight, key) = decode_with_field(
            ctx,
            bytes,
            ObjectType::DenseToSparseKey,
            KeySpan::Encapsulation,
            "hamming_weight",
            |h| h != 0 && h <= ctx.n(),
        )?;
        BootstrapParametersLiteral {
            ephemeral_hamming_weight: hamming_weight,
            ..BootstrapParametersLiteral::default()
        }
        .check_ephemeral_security(ctx)?;
        Ok(Self {
            key,
            hamming_weight,
        })
    }
}

impl SparseToDenseKey {
    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + switching_key_len(&self.key)
    }

    /// Serializes the key in seeded form (`FORMAT.md` §4.9).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        let mut out = begin(
            ObjectType::SparseToDenseKey,
            self.key.params_id,
            self.serialized_len(),
        );
        write_switching_key(&mut out, &self.key)?;
        Ok(out)
    }

    /// Decodes a sparse-to-dense key of `ctx`.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        ctx.check_id(read_header(&mut r, ObjectType::SparseToDenseKey)?)?;
        let key = read_switching_key(ctx, KeySpan::Full, &mut r)?;
        r.finish()?;
        Ok(Self { key })
    }
}

impl EvaluationKey {
    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        match self {
            Self::Relinearization(k) => k.serialized_len(),
            Self::Galois(k) => k.serialized_len(),
            Self::DenseToSparse(k) => k.serialized_len(),
            Self::SparseToDense(k) => k.serialized_len(),
        }
    }

    /// Serializes the key with its own type tag.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        match self {
            Self::Relinearization(k) => k.to_bytes(),
            Self::Galois(k) => k.to_bytes(),
            Self::DenseToSparse(k) => k.to_bytes(),
            Self::SparseToDense(k) => k.to_bytes(),
        }
    }

    /// Decodes any evaluation key (relinearization, Galois, dense-to-sparse, sparse-to-dense),
    /// whichever the header announces.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        match super::peek_header(bytes)?.object_type {
            ObjectType::RelinearizationKey => Ok(Self::Relinearization(
                RelinearizationKey::from_bytes(ctx, bytes)?,
            )),
            ObjectType::GaloisKey | ObjectType::Level0GaloisKey => {
                Ok(Self::Galois(GaloisKey::from_bytes(ctx, bytes)?))
            }
            ObjectType::DenseToSparseKey => Ok(Self::DenseToSparse(DenseToSparseKey::from_bytes(
                ctx, bytes,
            )?)),
            ObjectType::SparseToDenseKey => Ok(Self::SparseToDense(SparseToDenseKey::from_bytes(
                ctx, bytes,
            )?)),
            other => Err(FormatError::WrongObjectType {
                expected: ObjectType::GaloisKey,
                found: other as u8,
            }
            .into()),
        }
    }
}
