//! Cross-checks `ensi_math::Modulus` against u128 arithmetic on fuzzer-chosen operands.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|words: [u64; 4]| {
    let [q, a, b, c] = words;
    let Ok(m) = ensi_math::Modulus::new(((q >> 2) | 1).max(3)) else {
        return;
    };
    let q = m.q();
    let wide = |x: u128| (x % q as u128) as u64;
    assert_eq!(m.reduce(a), a % q);
    assert_eq!(m.mul(a, b), wide(a as u128 * b as u128));
    let (ra, rb, rc) = (a % q, b % q, c % q);
    assert_eq!(m.add(ra, rb), wide(ra as u128 + rb as u128));
    assert_eq!(m.sub(ra, rb), wide(ra as u128 + q as u128 - rb as u128));
    assert_eq!(
        m.mul_add(ra, rb, rc),
        wide(ra as u128 * rb as u128 + rc as u128)
    );
    assert_eq!(
        m.mul_shoup(a, rb, m.shoup(rb)),
        wide(a as u128 * rb as u128)
    );
    assert_eq!(
        m.reduce_u128(((a as u128) << 64) | b as u128),
        wide(((a as u128) << 64) | b as u128)
    );
});
