//! What the decoder targets share: a fixed small (insecure) context and the round-trip
//! property: arbitrary bytes either fail to decode, with an error and no panic, or decode to a
//! value that re-encodes to exactly the input (but for the header's test-key flag, which
//! decoders accept and encoders never write).

use ensi_ckks::{CkksContext, Parameters, ParametersLiteral};
use std::sync::{Arc, LazyLock};

/// The context every decoder target decodes against.
pub static CTX: LazyLock<Arc<CkksContext>> = LazyLock::new(|| {
    let params = Parameters::new_insecure(ParametersLiteral::insecure_test(4, 2))
        .expect("the fuzzing parameter set is valid");
    CkksContext::new(params).expect("the fuzzing context builds")
});

/// A fuzz target checking the round-trip property of `<$ty>::from_bytes(&CTX, data)`.
macro_rules! round_trip_target {
    ($ty:ty) => {
        libfuzzer_sys::fuzz_target!(|data: &[u8]| {
            let _ = ensi_ckks::serialize::peek_header(data);
            if let Ok(value) = <$ty>::from_bytes(&common::CTX, data) {
                let mut bytes = value.to_bytes().expect("a decoded value re-encodes");
                assert_eq!(bytes.len(), data.len(), "decode then encode keeps the length");
                bytes[7] |= data[7] & ensi_ckks::serialize::FLAG_TEST_KEY;
                assert_eq!(&bytes[..], data, "decode then encode is the identity");
            }
        });
    };
}
