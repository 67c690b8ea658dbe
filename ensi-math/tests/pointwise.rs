//! The pointwise product kernel (`ensi_math::pointwise`) against 128-bit integer arithmetic,
//! for primes on both sides of the floating-point kernel's 51-bit limit, on random residues
//! and on the extremes (0, 1, q - 1, q - 2, (q - 1) / 2), at lengths that are not multiples of
//! the vector width.
#![allow(clippy::unwrap_used)]

use core::mem::MaybeUninit;
use ensi_math::pointwise::{
    FMA_MAX_BITS, add_into, dot_pair, dot_pair_scalar, fma_available, mul_add_assign, mul_assign,
    mul_into, mul_into_scalar, mul_scalar_add_assign, mul_scalar_assign, mul_scalar_into,
};
use ensi_math::{Modulus, generate_ntt_primes};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

type Kernel = fn(&Modulus, &[u64], &[u64], &mut [MaybeUninit<u64>]);

fn run(kernel: Kernel, m: &Modulus, a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = vec![MaybeUninit::uninit(); a.len()];
    kernel(m, a, b, &mut out);
    // SAFETY: the kernels write every element (their contract, checked by this test's
    // comparison of every element).
    out.into_iter()
        .map(|x| unsafe { x.assume_init() })
        .collect()
}

fn reference(q: u64, a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ((u128::from(x) * u128::from(y)) % u128::from(q)) as u64)
        .collect()
}

#[test]
fn products_match_128_bit_arithmetic_for_every_prime_size() {
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    for bits in [20u32, 30, 40, 45, 49, 50, 51, 52, 55, 60, 61, 62] {
        for &q in &generate_ntt_primes(bits, 3, 1 << 10, &[]).unwrap() {
            let m = Modulus::new(q).unwrap();
            let edges = [0, 1, q - 1, q - 2, (q - 1) / 2, q / 3];
            let mut a: Vec<u64> = (0..1003).map(|_| rng.next_u64() % q).collect();
            let mut b: Vec<u64> = (0..1003).map(|_| rng.next_u64() % q).collect();
            for (i, &x) in edges.iter().enumerate() {
                for (j, &y) in edges.iter().enumerate() {
                    a[i * edges.len() + j] = x;
                    b[i * edges.len() + j] = y;
                }
            }
            let want = reference(q, &a, &b);
            assert_eq!(run(mul_into, &m, &a, &b), want, "{bits}-bit q = {q}");
            assert_eq!(
                run(mul_into_scalar, &m, &a, &b),
                want,
                "{bits}-bit q = {q} (scalar)"
            );
            let mut in_place = a.clone();
            mul_assign(&m, &mut in_place, &b);
            assert_eq!(in_place, want, "{bits}-bit q = {q} (in place)");
            let c: Vec<u64> = (0..a.len()).map(|_| rng.next_u64() % q).collect();
            let mut acc = c.clone();
            mul_add_assign(&m, &mut acc, &a, &b);
            let want_acc: Vec<u64> = want.iter().zip(&c).map(|(&p, &c)| (p + c) % q).collect();
            assert_eq!(acc, want_acc, "{bits}-bit q = {q} (accumulate)");
            // One constant for every element: each edge value and a random residue.
            for &k in edges.iter().chain(&[rng.next_u64() % q]) {
                let want: Vec<u64> = reference(q, &a, &vec![k; a.len()]);
                let mut out = vec![MaybeUninit::uninit(); a.len()];
                mul_scalar_into(&m, &a, k, &mut out);
                // SAFETY: the kernel writes every element (checked by this comparison).
                let got: Vec<u64> = out
                    .into_iter()
                    .map(|x| unsafe { x.assume_init() })
                    .collect();
                assert_eq!(got, want, "{bits}-bit q = {q}, constant {k}");
                let mut in_place = a.clone();
                mul_scalar_assign(&m, &mut in_place, k);
                assert_eq!(
                    in_place, want,
                    "{bits}-bit q = {q}, constant {k} (in place)"
                );
                let mut acc = c.clone();
                mul_scalar_add_assign(&m, &mut acc, &a, k, m.shoup(k));
                let want_acc: Vec<u64> = want.iter().zip(&c).map(|(&p, &c)| (p + c) % q).collect();
                assert_eq!(
                    acc, want_acc,
                    "{bits}-bit q = {q}, constant {k} (accumulate)"
                );
            }
        }
    }
    // On this project's x86-64 machines the vector kernel is the one tested above for the
    // primes up to 51 bits.
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        fma_available(),
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    );
    assert_eq!(FMA_MAX_BITS, 51);
}

proptest! {
    #[test]
    fn any_residues_of_a_51_bit_prime(seed in any::<u64>(), len in 0usize..40) {
        let q = generate_ntt_primes(51, 1, 1 << 4, &[]).unwrap()[0];
        let m = Modulus::new(q).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let a: Vec<u64> = (0..len).map(|_| rng.next_u64() % q).collect();
        let b: Vec<u64> = (0..len).map(|_| rng.next_u64() % q).collect();
        prop_assert_eq!(run(mul_into, &m, &a, &b), reference(q, &a, &b));
    }

    /// The 64-bit integer kernel (primes of 52 to 62 bits, AVX-512): every form against u128
    /// arithmetic, lengths on and off the vector width.
    #[test]
    fn any_residues_of_a_52_to_62_bit_prime(
        seed in any::<u64>(),
        len in 0usize..40,
        bits in 52u32..=62,
    ) {
        let q = generate_ntt_primes(bits, 1, 1 << 4, &[]).unwrap()[0];
        let m = Modulus::new(q).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut draw = || -> Vec<u64> { (0..len).map(|_| rng.next_u64() % q).collect() };
        let (a, b, c) = (draw(), draw(), draw());
        let want = reference(q, &a, &b);
        prop_assert_eq!(run(mul_into, &m, &a, &b), want.clone());
        let mut in_place = a.clone();
        mul_assign(&m, &mut in_place, &b);
        prop_assert_eq!(&in_place, &want);
        let mut acc = c.clone();
        mul_add_assign(&m, &mut acc, &a, &b);
        let want_acc: Vec<u64> = want.iter().zip(&c).map(|(&p, &c)| ((u128::from(p) + u128::from(c)) % u128::from(q)) as u64).collect();
        prop_assert_eq!(acc, want_acc);
    }
}

fn refs(v: &[Vec<u64>]) -> Vec<&[u64]> {
    v.iter().map(Vec::as_slice).collect()
}

/// The key switch's inner products (`dot_pair`: IFMA below 50 bits, 64-bit vector products
/// up to 62 bits) against u128 arithmetic and the scalar path, with and without a gather, for
/// 1 to 16 terms (16 takes the scalar path), operands at the extremes, and a length that is
/// not a multiple of the vector width.
#[test]
fn key_switch_inner_products_match_128_bit_arithmetic() {
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    for bits in [30u32, 40, 49, 50, 51, 55, 60, 61, 62] {
        let q = generate_ntt_primes(bits, 1, 1 << 10, &[]).unwrap()[0];
        let m = Modulus::new(q).unwrap();
        for n in [64usize, 72, 12] {
            let perm: Vec<u32> = {
                let mut p: Vec<u32> = (0..n as u32).collect();
                for i in (1..n).rev() {
                    p.swap(i, rng.next_u64() as usize % (i + 1));
                }
                p
            };
            for terms in [1usize, 2, 3, 4, 6, 7, 8, 9, 15, 16] {
                let limb = |rng: &mut ChaCha20Rng| -> Vec<u64> {
                    (0..n)
                        .map(|i| {
                            if i % 7 == 0 {
                                q - 1
                            } else {
                                rng.next_u64() % q
                            }
                        })
                        .collect()
                };
                let src: Vec<Vec<u64>> = (0..terms).map(|_| limb(&mut rng)).collect();
                let kb: Vec<Vec<u64>> = (0..terms).map(|_| limb(&mut rng)).collect();
                let ka: Vec<Vec<u64>> = (0..terms).map(|_| limb(&mut rng)).collect();
                let (s, b, a) = (refs(&src), refs(&kb), refs(&ka));
                for p in [None, Some(perm.as_slice())] {
                    let want = |k: &[Vec<u64>]| -> Vec<u64> {
                        (0..n)
                            .map(|i| {
                                let at = p.map_or(i, |p| p[i] as usize);
                                let sum: u128 = (0..terms)
                                    .map(|j| {
                                        u128::from(src[j][at]) * u128::from(k[j][i]) % u128::from(q)
                                    })
                                    .sum();
                                (sum % u128::from(q)) as u64
                            })
                            .collect()
                    };
                    let (wb, wa) = (want(&kb), want(&ka));
                    let (mut ob, mut oa) = (vec![u64::MAX; n], vec![u64::MAX; n]);
                    dot_pair(&m, &s, &b, &a, p, &mut ob, &mut oa);
                    let what = format!(
                        "{bits} bits, n = {n}, {terms} terms, gather {}",
                        p.is_some()
                    );
                    assert_eq!((&ob, &oa), (&wb, &wa), "{what}");
                    dot_pair_scalar(&m, &s, &b, &a, p, &mut ob, &mut oa);
                    assert_eq!((&ob, &oa), (&wb, &wa), "{what} (scalar)");
                }
            }
        }
    }
}

/// Sums and differences (`add_into`) against u128 arithmetic, for long and short outputs,
/// aligned and misaligned, for primes of 30 to 62 bits.
#[test]
fn sums_and_differences_match_128_bit_arithmetic() {
    let mut rng = ChaCha20Rng::seed_from_u64(29);
    for bits in [30u32, 50, 60, 62] {
        let q = generate_ntt_primes(bits, 1, 1 << 10, &[]).unwrap()[0];
        let m = Modulus::new(q).unwrap();
        for len in [13usize, 1 << 17] {
            let a: Vec<u64> = (0..len)
                .map(|i| {
                    if i % 5 == 0 {
                        q - 1
                    } else {
                        rng.next_u64() % q
                    }
                })
                .collect();
            let b: Vec<u64> = (0..len)
                .map(|i| {
                    if i % 3 == 0 {
                        q - 1
                    } else {
                        rng.next_u64() % q
                    }
                })
                .collect();
            for subtract in [false, true] {
                let want: Vec<u64> = a
                    .iter()
                    .zip(&b)
                    .map(|(&x, &y)| {
                        if subtract {
                            (x + q - y) % q
                        } else {
                            (x + y) % q
                        }
                    })
                    .collect();
                // A 64-byte aligned output and one a word off.
                let mut buf = vec![MaybeUninit::<u64>::uninit(); len + 16];
                let start = buf.as_ptr().align_offset(64);
                for off in [start, start + 1] {
                    let out = &mut buf[off..off + len];
                    add_into(&m, &a, &b, out, subtract);
                    // SAFETY: add_into writes every element (checked by this comparison).
                    let got: Vec<u64> = out.iter().map(|x| unsafe { x.assume_init() }).collect();
                    assert_eq!(got, want, "{bits} bits, {len} values, subtract {subtract}");
                }
            }
        }
    }
}
