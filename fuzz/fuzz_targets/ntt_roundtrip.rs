//! Cross-checks the modular arithmetic of `ensi-math` against u128 arithmetic on fuzzer input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 24 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
    let q = (word(0) >> 2) | 3;
    let Ok(m) = ensi_math::Modulus::new(q) else { return };
    let (a, b) = (word(1) % q, word(2) % q);
    assert_eq!(m.mul(a, b) as u128, (a as u128 * b as u128) % q as u128);
});
