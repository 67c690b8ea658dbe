//! Feeds arbitrary bytes to `Parameters::from_bytes`, with and without insecure sets allowed:
//! it must return an error or a set that re-encodes to exactly the input (but for the header's
//! test-key flag, which decoders accept and encoders never write), and never panic.
#![no_main]

use ensi_ckks::{DecodeOptions, Parameters, Security};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = Parameters::from_bytes(data, DecodeOptions::default());
    if let Ok(params) = &strict {
        assert_eq!(params.security(), Security::Bits128);
    }
    if let Ok(params) = Parameters::from_bytes(data, DecodeOptions::default().allow_insecure(true))
    {
        let mut bytes = params
            .to_bytes()
            .expect("a decoded parameter set re-encodes");
        assert_eq!(bytes.len(), data.len(), "decode then encode keeps the length");
        bytes[7] |= data[7] & ensi_ckks::serialize::FLAG_TEST_KEY;
        assert_eq!(bytes, data, "decode then encode is the identity");
    }
});
