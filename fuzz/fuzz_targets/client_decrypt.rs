//! Feeds arbitrary bytes to the constrained client's decryption (`ensi_ckks::client`), which
//! `ensi decrypt` runs on the server's answer: `decrypt_bundle` and `decrypt_ciphertext` must
//! return an error or values and never panic, and must accept what the full decoders accept
//! (the framing and the ciphertext encoding are shared), but for a scale below 1, which
//! decodes and cannot be read.
#![no_main]

#[macro_use]
mod common;

use ensi_ckks::client::{ClientParams, SmallSecretKey, decrypt_bundle, decrypt_ciphertext};
use ensi_ckks::serialize::CiphertextBundle;
use ensi_ckks::{Ciphertext, CkksError};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::LazyLock;

static CLIENT: LazyLock<(ClientParams, SmallSecretKey)> = LazyLock::new(|| {
    let cp = ClientParams::new(common::CTX.params()).expect("the fuzzing set is valid");
    let sk = SmallSecretKey::generate(&cp, &mut ChaCha20Rng::seed_from_u64(1))
        .expect("a secret key samples");
    (cp, sk)
});

/// The client decodes, decrypts and decodes slots; the library's decoder only decodes. So the
/// client accepts a subset: everything the library decodes except a ciphertext whose scale is
/// below 1 (it decodes, but no slot can be read at that scale).
fn consistent<T>(client: Result<T, CkksError>, library: bool, what: &str) {
    match client {
        Ok(_) => assert!(library, "the client accepted a {what} the library refuses"),
        Err(CkksError::InvalidEncodingScale { .. }) => {}
        Err(_) => assert!(!library, "the client refused a {what} the library decodes"),
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (cp, sk) = &*CLIENT;
    consistent(
        decrypt_bundle(cp, sk, data),
        CiphertextBundle::from_bytes(&common::CTX, data).is_ok(),
        "bundle",
    );
    consistent(
        decrypt_ciphertext(cp, sk, data),
        Ciphertext::from_bytes(&common::CTX, data).is_ok(),
        "ciphertext",
    );
});
