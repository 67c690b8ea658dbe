//! Feeds arbitrary bytes to `EvaluationKey::from_bytes` (relinearization and Galois keys) for a
//! fixed small context: it must return an error or a key that re-encodes to exactly the input,
//! and never panic.
#![no_main]

use ensi_ckks::{CkksContext, EvaluationKey, Parameters, ParametersLiteral};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock};

static CTX: LazyLock<Arc<CkksContext>> = LazyLock::new(|| {
    let params = Parameters::new_insecure(ParametersLiteral::insecure_test(4, 2))
        .expect("the fuzzing parameter set is valid");
    CkksContext::new(params).expect("the fuzzing context builds")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = EvaluationKey::from_bytes(&CTX, data) {
        let bytes = key.to_bytes().expect("a decoded key re-encodes");
        assert_eq!(&bytes[..], data, "decode then encode is the identity");
    }
});
