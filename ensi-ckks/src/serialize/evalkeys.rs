//! Evaluation keys in the binary format (`FORMAT.md` §4.6 and §4.7): seeded, so only the
//! `b_j` of each digit are stored, with the one seed every `a_j` is expanded from.

use super::wire::{Reader, poly_len, read_header, read_poly, write_header, write_poly};
use super::{FormatError, HEADER_LEN, ObjectType, field};
use crate::context::CkksContext;
use crate::error::CkksError;
use crate::evalkeys::{EvaluationKey, GaloisKey, RelinearizationKey};
use crate::keyswitch::SwitchingKey;
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
    out.extend_from_slice(&key.seed);
    out.push(field::<u8>("digits", key.b.len())?);
    for b in &key.b {
        write_poly(out, b);
    }
    Ok(())
}

fn read_switching_key(ctx: &CkksContext, r: &mut Reader<'_>) -> Result<SwitchingKey, CkksError> {
    let seed: [u8; 32] = r.array()?;
    let digits = usize::from(r.u8()?);
    if digits != ctx.key_switch().dnum() {
        return Err(FormatError::InvalidField {
            field: "digits",
            value: digits as u64,
        }
        .into());
    }
    let b = (0..digits)
        .map(|_| read_poly(r, ctx.ring(), ctx.key_limbs()))
        .collect::<Result<Vec<_>, _>>()?;
    SwitchingKey::from_seeded(ctx, b, seed)
}

fn begin(kind: ObjectType, id: ParamsId, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    write_header(&mut out, kind, id);
    out
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
        let key = read_switching_key(ctx, &mut r)?;
        r.finish()?;
        Ok(Self { key })
    }
}

impl GaloisKey {
    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + 4 + switching_key_len(&self.key)
    }

    /// Serializes the Galois element and the key in seeded form (`FORMAT.md` §4.7).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        let mut out = begin(
            ObjectType::GaloisKey,
            self.key.params_id,
            self.serialized_len(),
        );
        let g: u32 = field("galois_element", self.galois_element)?;
        out.extend_from_slice(&g.to_le_bytes());
        write_switching_key(&mut out, &self.key)?;
        Ok(out)
    }

    /// Decodes a Galois key of `ctx` (the element must be odd, not 1, below `2N`).
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        let mut r = Reader::new(bytes);
        ctx.check_id(read_header(&mut r, ObjectType::GaloisKey)?)?;
        let g = r.u32()? as usize;
        if g >= 2 * ctx.n() || ctx.check_galois_element(g).is_err() {
            return Err(FormatError::InvalidField {
                field: "galois_element",
                value: g as u64,
            }
            .into());
        }
        let key = read_switching_key(ctx, &mut r)?;
        r.finish()?;
        Ok(Self {
            galois_element: g,
            key,
        })
    }
}

impl EvaluationKey {
    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        match self {
            Self::Relinearization(k) => k.serialized_len(),
            Self::Galois(k) => k.serialized_len(),
        }
    }

    /// Serializes the key with its own type tag.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CkksError> {
        match self {
            Self::Relinearization(k) => k.to_bytes(),
            Self::Galois(k) => k.to_bytes(),
        }
    }

    /// Decodes a relinearization or Galois key, whichever the header announces.
    pub fn from_bytes(ctx: &Arc<CkksContext>, bytes: &[u8]) -> Result<Self, CkksError> {
        match super::peek_header(bytes)?.object_type {
            ObjectType::RelinearizationKey => Ok(Self::Relinearization(
                RelinearizationKey::from_bytes(ctx, bytes)?,
            )),
            ObjectType::GaloisKey => Ok(Self::Galois(GaloisKey::from_bytes(ctx, bytes)?)),
            other => Err(FormatError::WrongObjectType {
                expected: ObjectType::GaloisKey,
                found: other as u8,
            }
            .into()),
        }
    }
}
