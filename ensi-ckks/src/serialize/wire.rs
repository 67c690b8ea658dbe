//! Low-level pieces of the binary format: a bounds-checked reader over a byte slice, the common
//! header, and bit-packed residue polynomials (`FORMAT.md`, sections 2 and 3).

use super::{FORMAT_VERSION, FormatError, HEADER_LEN, MAGIC, ObjectType};
use crate::error::CkksError;
use crate::params::ParamsId;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ensi_math::{Modulus, Ntt, RnsContext, RnsPoly};

/// A cursor over untrusted bytes: every read checks the remaining length first.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The next `len` bytes, or [`FormatError::Truncated`].
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], FormatError> {
        let available = self.buf.len() - self.pos;
        if len > available {
            return Err(FormatError::Truncated {
                needed: len,
                available,
            });
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    pub(crate) fn array<const K: usize>(&mut self) -> Result<[u8; K], FormatError> {
        let mut out = [0u8; K];
        out.copy_from_slice(self.take(K)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, FormatError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// Succeeds only if every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), FormatError> {
        let count = self.buf.len() - self.pos;
        if count != 0 {
            return Err(FormatError::TrailingBytes { count });
        }
        Ok(())
    }
}

/// The 16-byte header: magic, version, object type, flags (written as zero; see
/// [`super::mark_test_object`]), parameter id.
pub(crate) fn write_header(out: &mut Vec<u8>, kind: ObjectType, id: ParamsId) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&id.0);
}

/// Reads and checks the header of an object of type `expected`; returns its parameter id.
pub(crate) fn read_header(
    r: &mut Reader<'_>,
    expected: ObjectType,
) -> Result<ParamsId, FormatError> {
    let magic: [u8; 4] = r.array()?;
    if magic != MAGIC {
        return Err(FormatError::BadMagic { found: magic });
    }
    let version = r.u16()?;
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let tag = r.u8()?;
    if tag != expected as u8 {
        return Err(FormatError::WrongObjectType {
            expected,
            found: tag,
        });
    }
    let flags = r.u8()?;
    if flags & !super::KNOWN_FLAGS != 0 {
        return Err(FormatError::InvalidField {
            field: "flags",
            value: u64::from(flags),
        });
    }
    Ok(ParamsId(r.array()?))
}

// The header fields add up to `HEADER_LEN`.
const _: () = assert!(HEADER_LEN == 4 + 2 + 1 + 1 + 8);

/// Bits per residue of limb `m`: the bit length of its prime.
fn width(m: &Modulus) -> u32 {
    64 - m.q().leading_zeros()
}

/// Bytes of one packed limb of `n` residues modulo `m`.
fn limb_len(n: usize, m: &Modulus) -> usize {
    (n * width(m) as usize).div_ceil(8)
}

/// Bytes of a packed polynomial of `n` coefficients over `moduli`.
pub(crate) fn poly_len(n: usize, moduli: &[Modulus]) -> usize {
    moduli.iter().map(|m| limb_len(n, m)).sum()
}

/// Appends `poly`, each limb packed LSB-first at the bit length of its prime and padded with
/// zero bits to a whole byte.
pub(crate) fn write_poly(out: &mut Vec<u8>, poly: &RnsPoly<Ntt>) {
    for (i, m) in poly.moduli().iter().enumerate() {
        write_limb(out, m, poly.limb(i));
    }
}

/// Appends one limb of residues modulo `m`, packed as in [`write_poly`]: a streaming writer
/// emits a polynomial limb by limb with the same bytes.
pub(crate) fn write_limb(out: &mut Vec<u8>, m: &Modulus, limb: &[u64]) {
    let w = width(m);
    let mut acc: u128 = 0;
    let mut bits: u32 = 0;
    for &v in limb {
        acc |= u128::from(v) << bits;
        bits += w;
        if bits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            bits -= 64;
        }
    }
    let tail = bits.div_ceil(8) as usize;
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..tail]);
}

/// Unpacks one limb (`bytes` is exactly `limb_len` long) into `out`, checking every residue
/// against `q` and the padding bits against zero.
fn unpack_limb(
    bytes: &[u8],
    n: usize,
    m: &Modulus,
    limb: usize,
    out: &mut Vec<u64>,
) -> Result<(), FormatError> {
    let (w, q) = (width(m), m.q());
    let mask = u64::MAX >> (64 - w);
    let mut acc: u128 = 0;
    let mut bits: u32 = 0;
    let mut pos = 0;
    for _ in 0..n {
        if bits < w {
            if let Some(word) = bytes.get(pos..pos + 8) {
                let mut le = [0u8; 8];
                le.copy_from_slice(word);
                acc |= u128::from(u64::from_le_bytes(le)) << bits;
                bits += 64;
                pos += 8;
            } else {
                while bits < w && pos < bytes.len() {
                    acc |= u128::from(bytes[pos]) << bits;
                    bits += 8;
                    pos += 1;
                }
                if bits < w {
                    return Err(FormatError::Truncated {
                        needed: 1,
                        available: 0,
                    });
                }
            }
        }
        let value = (acc as u64) & mask;
        acc >>= w;
        bits -= w;
        if value >= q {
            return Err(FormatError::ResidueOutOfRange { limb, value, q });
        }
        out.push(value);
    }
    if acc != 0 || pos != bytes.len() {
        return Err(FormatError::NonZeroPadding);
    }
    Ok(())
}

/// Reads a packed polynomial over the first `limbs` primes of `ring` (`limbs` already checked
/// against the context). The input length is checked before anything is allocated.
pub(crate) fn read_poly(
    r: &mut Reader<'_>,
    ring: &Arc<RnsContext>,
    limbs: usize,
) -> Result<RnsPoly<Ntt>, CkksError> {
    let n = ring.n();
    let moduli = ring
        .basis()
        .moduli()
        .get(..limbs)
        .ok_or(FormatError::InvalidField {
            field: "limbs",
            value: limbs as u64,
        })?;
    let bytes = r.take(poly_len(n, moduli))?;
    let mut data = Vec::with_capacity(limbs * n);
    let mut offset = 0;
    for (i, m) in moduli.iter().enumerate() {
        let len = limb_len(n, m);
        unpack_limb(&bytes[offset..offset + len], n, m, i, &mut data)?;
        offset += len;
    }
    Ok(RnsPoly::from_raw(ring, limbs, data)?)
}
