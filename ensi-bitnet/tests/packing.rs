//! Round trips and strict validation of the ternary packings (proptest).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ensi_bitnet::packing::{
    base3_packed_len, decode_compact, encode_compact, pack_2bit, pack_base3, unpack_2bit,
    unpack_base3,
};
use ensi_bitnet::{Error, ScaleConvention, TernaryMatrix, WeightScale};
use proptest::prelude::*;

fn trits(max: usize) -> impl Strategy<Value = Vec<i8>> {
    prop::collection::vec(-1i8..=1, 0..max)
}

/// The 2B-4T layout written out independently: weight (row, col) lives in byte
/// (row % (rows/4), col), field row / (rows/4).
fn naive_unpack_2bit(packed: &[u8], packed_rows: usize, cols: usize) -> Vec<i8> {
    let rows = 4 * packed_rows;
    let mut out = vec![0; rows * cols];
    for row in 0..rows {
        for col in 0..cols {
            let byte = packed[(row % packed_rows) * cols + col];
            let field = (byte >> (2 * (row / packed_rows))) & 3;
            out[row * cols + col] = field as i8 - 1;
        }
    }
    out
}

proptest! {
    #[test]
    fn two_bit_round_trip(packed_rows in 0usize..6, cols in 0usize..9, seed in any::<u64>()) {
        let n = 4 * packed_rows * cols;
        let values: Vec<i8> = (0..n).map(|i| ((seed.rotate_left(i as u32 % 64) ^ i as u64) % 3) as i8 - 1).collect();
        let packed = pack_2bit(&values, 4 * packed_rows, cols).unwrap();
        prop_assert_eq!(packed.len(), packed_rows * cols);
        prop_assert_eq!(naive_unpack_2bit(&packed, packed_rows, cols), values.clone());
        prop_assert_eq!(unpack_2bit(&packed, packed_rows, cols).unwrap(), values);
    }

    #[test]
    fn two_bit_bytes_decode_iff_no_field_is_three(bytes in prop::collection::vec(any::<u8>(), 1..40)) {
        let cols = bytes.len();
        let has_three = bytes.iter().any(|b| (0..4).any(|i| (b >> (2 * i)) & 3 == 3));
        match unpack_2bit(&bytes, 1, cols) {
            Ok(v) => {
                prop_assert!(!has_three);
                prop_assert_eq!(pack_2bit(&v, 4, cols).unwrap(), bytes);
            }
            Err(e) => {
                prop_assert!(has_three);
                let is_field_error = matches!(e, Error::InvalidPackedField { .. });
                prop_assert!(is_field_error);
            }
        }
    }

    #[test]
    fn base3_round_trip(values in trits(200)) {
        let packed = pack_base3(&values).unwrap();
        prop_assert_eq!(packed.len(), base3_packed_len(values.len()));
        prop_assert!(packed.iter().all(|&b| b < 243));
        prop_assert_eq!(unpack_base3(&packed, values.len()).unwrap(), values);
    }

    #[test]
    fn base3_bytes_decode_only_when_canonical(bytes in prop::collection::vec(any::<u8>(), 0..20), cut in 0usize..5) {
        // n trits with the last byte holding 5 - cut of them (or 5).
        let n = (bytes.len() * 5).saturating_sub(if bytes.is_empty() { 0 } else { cut });
        if let Ok(v) = unpack_base3(&bytes, n) {
            prop_assert_eq!(v.len(), n);
            prop_assert_eq!(pack_base3(&v).unwrap(), bytes);
        }
    }

    #[test]
    fn compact_round_trip(rows in 0usize..8, cols in 0usize..8, seed in any::<u64>(), multiply in any::<bool>(), scale in 1e-3f32..1e3) {
        let values: Vec<i8> = (0..rows * cols).map(|i| ((seed >> (i % 60)) % 3) as i8 - 1).collect();
        let convention = if multiply { ScaleConvention::Multiply } else { ScaleConvention::Divide };
        let m = TernaryMatrix::new(rows, cols, values, WeightScale { value: scale, convention }).unwrap();
        let bytes = encode_compact(&m).unwrap();
        prop_assert_eq!(decode_compact(&bytes).unwrap(), m);
    }

    #[test]
    fn compact_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_compact(&bytes);
    }
}

#[test]
fn non_trits_are_rejected_by_every_encoder() {
    assert_eq!(
        pack_2bit(&[0, 0, 0, 2], 4, 1),
        Err(Error::InvalidTrit { index: 3, value: 2 })
    );
    assert_eq!(
        pack_base3(&[0, -2]),
        Err(Error::InvalidTrit {
            index: 1,
            value: -2
        })
    );
    assert!(
        pack_2bit(&[0; 3], 3, 1).is_err(),
        "rows must be a multiple of 4"
    );
    assert!(
        unpack_2bit(&[0; 3], 1, 2).is_err(),
        "length must match the shape"
    );
    let bad = WeightScale {
        value: 1.0,
        convention: ScaleConvention::Divide,
    };
    assert_eq!(
        TernaryMatrix::new(1, 2, vec![1, 5], bad),
        Err(Error::InvalidTrit { index: 1, value: 5 })
    );
    let zero = WeightScale {
        value: 0.0,
        convention: ScaleConvention::Divide,
    };
    assert!(TernaryMatrix::new(1, 1, vec![1], zero).is_err());
}
