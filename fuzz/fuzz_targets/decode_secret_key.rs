//! Feeds arbitrary bytes to `SecretKey::from_bytes` for a fixed small context: it must return an
//! error or a value that re-encodes to exactly the input, and never panic.
#![no_main]

use ensi_ckks::{CkksContext, Parameters, ParametersLiteral, SecretKey};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock};

static CTX: LazyLock<Arc<CkksContext>> = LazyLock::new(|| {
    let params = Parameters::new_insecure(ParametersLiteral::insecure_test(4, 2))
        .expect("the fuzzing parameter set is valid");
    CkksContext::new(params).expect("the fuzzing context builds")
});

fuzz_target!(|data: &[u8]| {
    let _ = ensi_ckks::serialize::peek_header(data);
    if let Ok(value) = SecretKey::from_bytes(&CTX, data) {
        let bytes = value.to_bytes().expect("a decoded secret key re-encodes");
        assert_eq!(
            &bytes.to_vec()[..],
            data,
            "decode then encode is the identity"
        );
    }
});
