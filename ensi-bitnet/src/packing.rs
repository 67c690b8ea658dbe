//! Ternary packings: the 2-bit layout of the bitnet-b1.58-2B-4T checkpoints and a compact
//! 5-trits-per-byte layout for our own files.
//!
//! Both decoders validate every byte: a packed field that encodes no ternary value, a wrong
//! length or non-zero padding is an error, never a silently wrong weight.

use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::ternary::{ScaleConvention, TernaryMatrix, WeightScale};

fn check_trits(values: &[i8]) -> Result<()> {
    match values.iter().position(|v| !(-1..=1).contains(v)) {
        Some(index) => Err(Error::InvalidTrit {
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Packs a row-major `rows x cols` ternary matrix in the layout of microsoft/bitnet-b1.58-2B-4T.
///
/// The result is a row-major `[rows / 4, cols]` byte tensor; bits `2i..2i+1` (i = 0..3) of byte
/// `(r, c)` hold weight `(i * rows / 4 + r, c)` stored as `value + 1` (so 0, 1, 2). This is the
/// layout of transformers' `pack_weights` / `unpack_weights` for `VALUES_PER_ITEM = 4`.
///
/// `rows` must be a multiple of 4.
pub fn pack_2bit(values: &[i8], rows: usize, cols: usize) -> Result<Vec<u8>> {
    if !rows.is_multiple_of(4) {
        return Err(Error::LengthMismatch {
            what: "2-bit packing: rows must be a multiple of 4".into(),
            expected: rows.next_multiple_of(4),
            actual: rows,
        });
    }
    let n = rows.saturating_mul(cols);
    if values.len() != n {
        return Err(Error::LengthMismatch {
            what: "2-bit packing input".into(),
            expected: n,
            actual: values.len(),
        });
    }
    check_trits(values)?;
    let packed_rows = rows / 4;
    let mut out = vec![0u8; packed_rows * cols];
    for i in 0..4 {
        for r in 0..packed_rows {
            let src = &values[(i * packed_rows + r) * cols..(i * packed_rows + r + 1) * cols];
            let dst = &mut out[r * cols..(r + 1) * cols];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d |= ((v + 1) as u8) << (2 * i);
            }
        }
    }
    Ok(out)
}

/// Unpacks a row-major `[packed_rows, cols]` byte tensor of the 2B-4T layout (see
/// [`pack_2bit`]) into a row-major `(4 * packed_rows) x cols` ternary matrix.
///
/// A 2-bit field holding 3 is an error naming the byte and field.
pub fn unpack_2bit(packed: &[u8], packed_rows: usize, cols: usize) -> Result<Vec<i8>> {
    let n = packed_rows.saturating_mul(cols);
    if packed.len() != n {
        return Err(Error::LengthMismatch {
            what: "2-bit packed tensor".into(),
            expected: n,
            actual: packed.len(),
        });
    }
    let mut out = vec![0i8; 4 * n];
    for (byte_index, &b) in packed.iter().enumerate() {
        let (r, c) = (byte_index / cols.max(1), byte_index % cols.max(1));
        for i in 0..4 {
            let field = (b >> (2 * i)) & 3;
            if field == 3 {
                return Err(Error::InvalidPackedField {
                    byte_index,
                    field: i,
                });
            }
            out[(i * packed_rows + r) * cols + c] = field as i8 - 1;
        }
    }
    Ok(out)
}

/// Number of bytes of `n` trits in the 5-trits-per-byte packing: `ceil(n / 5)`.
pub fn base3_packed_len(n: usize) -> usize {
    n.div_ceil(5)
}

/// Packs ternary values five to a byte: byte `j` is `sum_k (t[5j + k] + 1) * 3^k` (k = 0..4,
/// least significant trit first). A last partial byte leaves its unused trits at 0, so it is
/// below `3^(n mod 5)`. 1.6 bits per weight, the information limit being log2(3) = 1.585.
pub fn pack_base3(values: &[i8]) -> Result<Vec<u8>> {
    check_trits(values)?;
    Ok(values
        .chunks(5)
        .map(|chunk| {
            chunk
                .iter()
                .rev()
                .fold(0u8, |acc, &t| acc * 3 + (t + 1) as u8)
        })
        .collect())
}

/// Unpacks `n` ternary values from the 5-trits-per-byte packing (see [`pack_base3`]).
///
/// The length must be exactly `ceil(n / 5)`, every full byte below 243 = 3^5 and a last partial
/// byte below `3^(n mod 5)` (zero padding).
pub fn unpack_base3(bytes: &[u8], n: usize) -> Result<Vec<i8>> {
    let expected = base3_packed_len(n);
    if bytes.len() != expected {
        return Err(Error::LengthMismatch {
            what: "base-3 packed trits".into(),
            expected,
            actual: bytes.len(),
        });
    }
    let mut out = Vec::with_capacity(n);
    for (byte_index, &byte) in bytes.iter().enumerate() {
        let count = (n - 5 * byte_index).min(5);
        let limit = 3u16.pow(count as u32);
        if u16::from(byte) >= limit {
            return Err(Error::InvalidPackedByte { byte_index, byte });
        }
        let mut b = byte;
        for _ in 0..count {
            out.push((b % 3) as i8 - 1);
            b /= 3;
        }
    }
    Ok(out)
}

/// Magic bytes of the compact ternary matrix format.
pub const COMPACT_MAGIC: [u8; 6] = *b"ENSIT3";
/// Version of the compact ternary matrix format.
pub const COMPACT_VERSION: u8 = 1;
const COMPACT_HEADER_LEN: usize = 6 + 1 + 1 + 4 + 4 + 4;

/// Serializes a ternary matrix in our compact format:
/// `"ENSIT3"`, version (1 byte), convention (0 divide, 1 multiply), rows (u32 LE), cols
/// (u32 LE), scale (f32 LE), then the values, row-major, in the 5-trits-per-byte packing.
///
/// Errors if a dimension does not fit in a `u32`.
pub fn encode_compact(m: &TernaryMatrix) -> Result<Vec<u8>> {
    let dim = |v: usize| {
        u32::try_from(v).map_err(|_| Error::InvalidCompactFile {
            reason: "dimension does not fit in u32",
        })
    };
    let (rows, cols) = (dim(m.rows())?, dim(m.cols())?);
    let mut out = Vec::with_capacity(COMPACT_HEADER_LEN + base3_packed_len(m.values().len()));
    out.extend_from_slice(&COMPACT_MAGIC);
    out.push(COMPACT_VERSION);
    out.push(match m.scale().convention {
        ScaleConvention::Divide => 0,
        ScaleConvention::Multiply => 1,
    });
    out.extend_from_slice(&rows.to_le_bytes());
    out.extend_from_slice(&cols.to_le_bytes());
    out.extend_from_slice(&m.scale().value.to_le_bytes());
    out.extend_from_slice(&pack_base3(m.values())?);
    Ok(out)
}

/// Parses the compact format of [`encode_compact`], checking magic, version, convention, that
/// the length is exactly what the header implies, the scale and every packed byte.
pub fn decode_compact(bytes: &[u8]) -> Result<TernaryMatrix> {
    if bytes.len() < COMPACT_HEADER_LEN {
        return Err(Error::InvalidCompactFile {
            reason: "shorter than the header",
        });
    }
    let (header, payload) = bytes.split_at(COMPACT_HEADER_LEN);
    if header[..6] != COMPACT_MAGIC {
        return Err(Error::InvalidCompactFile {
            reason: "bad magic",
        });
    }
    if header[6] != COMPACT_VERSION {
        return Err(Error::InvalidCompactFile {
            reason: "unsupported version",
        });
    }
    let convention = match header[7] {
        0 => ScaleConvention::Divide,
        1 => ScaleConvention::Multiply,
        _ => {
            return Err(Error::InvalidCompactFile {
                reason: "unknown scale convention",
            });
        }
    };
    let word = |at: usize| [header[at], header[at + 1], header[at + 2], header[at + 3]];
    let rows = u32::from_le_bytes(word(8)) as usize;
    let cols = u32::from_le_bytes(word(12)) as usize;
    let scale = f32::from_le_bytes(word(16));
    let n = rows.checked_mul(cols).ok_or(Error::InvalidCompactFile {
        reason: "rows * cols overflows",
    })?;
    if payload.len() != base3_packed_len(n) {
        return Err(Error::LengthMismatch {
            what: "compact ternary payload".into(),
            expected: base3_packed_len(n),
            actual: payload.len(),
        });
    }
    let values = unpack_base3(payload, n)?;
    TernaryMatrix::new(
        rows,
        cols,
        values,
        WeightScale {
            value: scale,
            convention,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_2bit_matches_the_documented_example() {
        // transformers' unpack_weights docstring example: [[0b10100001, 0b00011000],
        // [0b10010000, 0b00001010]] unpacks to 8 rows x 2 columns.
        let packed = [0b1010_0001u8, 0b0001_1000, 0b1001_0000, 0b0000_1010];
        let v = unpack_2bit(&packed, 2, 2).unwrap();
        assert_eq!(v, [0, -1, -1, 1, -1, 1, -1, 1, 1, 0, 0, -1, 1, -1, 1, -1]);
        assert_eq!(pack_2bit(&v, 8, 2).unwrap(), packed);
    }

    #[test]
    fn field_three_is_rejected() {
        assert_eq!(
            unpack_2bit(&[0b0011_0101, 0], 1, 2),
            Err(Error::InvalidPackedField {
                byte_index: 0,
                field: 2
            })
        );
    }

    #[test]
    fn base3_rejects_bad_bytes_and_padding() {
        assert_eq!(
            unpack_base3(&[243], 5),
            Err(Error::InvalidPackedByte {
                byte_index: 0,
                byte: 243
            })
        );
        assert_eq!(
            unpack_base3(&[9], 2),
            Err(Error::InvalidPackedByte {
                byte_index: 0,
                byte: 9
            })
        );
        assert_eq!(unpack_base3(&[8], 2).unwrap(), [1, 1]);
        assert!(unpack_base3(&[0, 0], 5).is_err());
        assert_eq!(
            pack_base3(&[2]),
            Err(Error::InvalidTrit { index: 0, value: 2 })
        );
    }

    #[test]
    fn compact_rejects_corruption() {
        let m = TernaryMatrix::new(
            2,
            3,
            vec![1, 0, -1, -1, 1, 0],
            WeightScale {
                value: 0.5,
                convention: ScaleConvention::Multiply,
            },
        )
        .unwrap();
        let bytes = encode_compact(&m).unwrap();
        assert_eq!(decode_compact(&bytes).unwrap(), m);
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(decode_compact(&bad).is_err());
        let mut bad = bytes.clone();
        bad[7] = 2;
        assert!(decode_compact(&bad).is_err());
        assert!(decode_compact(&bytes[..bytes.len() - 1]).is_err());
        let mut bad = bytes.clone();
        bad.push(0);
        assert!(decode_compact(&bad).is_err());
        let mut bad = bytes.clone();
        bad[16..20].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(decode_compact(&bad).is_err());
        let mut bad = bytes;
        let last = bad.len() - 1;
        bad[last] = 255;
        assert!(decode_compact(&bad).is_err());
    }
}
