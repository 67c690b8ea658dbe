use super::*;
use crate::prime::generate_ntt_primes;
use proptest::prelude::*;

pub(crate) use crate::oracle::negacyclic_mul as negacyclic_naive;

fn random_poly(n: usize, q: u64, seed: u64) -> Vec<u64> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % q
        })
        .collect()
}

fn check_product(plan: &NttPlan, seed: u64) {
    let (n, q) = (plan.n(), plan.modulus().q());
    let a = random_poly(n, q, seed);
    let b = random_poly(n, q, seed.wrapping_add(1));
    let (mut fa, mut fb) = (a.clone(), b.clone());
    plan.forward(&mut fa);
    plan.forward(&mut fb);
    assert!(fa.iter().all(|&x| x < q));
    let mut prod: Vec<u64> = fa
        .iter()
        .zip(&fb)
        .map(|(&x, &y)| plan.modulus().mul(x, y))
        .collect();
    plan.inverse(&mut prod);
    assert_eq!(
        prod,
        negacyclic_naive(&a, &b, q),
        "n = {n}, q = {q}, {:?}",
        plan.backend()
    );
}

#[test]
fn products_match_naive_convolution_on_every_backend() {
    for log_n in 1..=11 {
        let n = 1usize << log_n;
        for bits in [30u32, 50, 60, 62] {
            let Ok(primes) = generate_ntt_primes(bits, 1, n, &[]) else {
                continue;
            };
            for backend in Backend::available() {
                let plan = NttPlan::with_backend(n, primes[0], backend).unwrap();
                check_product(&plan, log_n as u64 * 1000 + bits as u64);
            }
        }
    }
}

/// Products at the large degrees the schemes use, against the oracle: one factor dense, the
/// other with a few non-zero coefficients (the oracle skips zeros, so this stays fast).
#[test]
fn large_degree_products_match_the_oracle() {
    for log_n in [13u32, 16, 17] {
        let n = 1usize << log_n;
        let q = generate_ntt_primes(60, 1, n, &[]).unwrap()[0];
        let a = random_poly(n, q, u64::from(log_n));
        let mut b = alloc::vec![0u64; n];
        for (i, k) in [0usize, 1, n / 3, n / 2 + 7, n - 1].into_iter().enumerate() {
            b[k] = random_poly(1, q, 100 + i as u64)[0];
        }
        for backend in Backend::available() {
            let plan = NttPlan::with_backend(n, q, backend).unwrap();
            let (mut fa, mut fb) = (a.clone(), b.clone());
            plan.forward(&mut fa);
            plan.forward(&mut fb);
            let mut prod: Vec<u64> = fa
                .iter()
                .zip(&fb)
                .map(|(&x, &y)| plan.modulus().mul(x, y))
                .collect();
            plan.inverse(&mut prod);
            assert_eq!(prod, negacyclic_naive(&a, &b, q), "n = {n}, {backend:?}");
        }
    }
}

#[test]
fn evaluation_order_is_documented_one() {
    let n = 16;
    let q = generate_ntt_primes(30, 1, n, &[]).unwrap()[0];
    let plan = NttPlan::with_backend(n, q, Backend::Scalar).unwrap();
    let m = *plan.modulus();
    let a = random_poly(n, q, 7);
    let mut fa = a.clone();
    plan.forward(&mut fa);
    for (i, &v) in fa.iter().enumerate() {
        let x = m.pow_vartime(plan.psi(), 2 * bit_reverse(i, plan.log_n()) as u64 + 1);
        let eval = a.iter().rev().fold(0u64, |acc, &c| m.add(m.mul(acc, x), c));
        assert_eq!(v, eval, "index {i}");
    }
}

#[test]
fn round_trips_for_every_supported_degree() {
    for log_n in MIN_LOG_N..=MAX_LOG_N {
        let n = 1usize << log_n;
        for bits in [50u32, 60] {
            let q = generate_ntt_primes(bits, 1, n, &[]).unwrap()[0];
            let a = random_poly(n, q, log_n as u64);
            for backend in Backend::available() {
                let plan = NttPlan::with_backend(n, q, backend).unwrap();
                let mut b = a.clone();
                plan.forward(&mut b);
                plan.inverse(&mut b);
                assert_eq!(a, b, "n = {n}, bits = {bits}, {backend:?}");
            }
        }
    }
}

#[test]
fn rejects_bad_plans() {
    assert!(matches!(
        NttPlan::new(3, 97),
        Err(MathError::InvalidRingDegree { .. })
    ));
    assert!(matches!(
        NttPlan::new(1 << 18, 97),
        Err(MathError::InvalidRingDegree { .. })
    ));
    assert!(matches!(
        NttPlan::new(1024, 97),
        Err(MathError::NotNttFriendly { .. })
    ));
}

/// Primes below `2^50` (the IFMA class) and from 50 to 62 bits (64-bit kernels) for degree `n`.
fn prime_classes(n: usize) -> Vec<u64> {
    [30u32, 49, 50, 51, 55, 60, 62]
        .into_iter()
        .filter_map(|bits| generate_ntt_primes(bits, 1, n, &[]).ok())
        .map(|p| p[0])
        .collect()
}

/// Inputs that stress the lazy bounds: random, all `q - 1`, all zero, alternating extremes.
fn inputs(n: usize, q: u64, seed: u64) -> Vec<Vec<u64>> {
    alloc::vec![
        random_poly(n, q, seed),
        alloc::vec![q - 1; n],
        alloc::vec![0; n],
        (0..n)
            .map(|i| if i % 3 == 0 { q - 1 } else { i as u64 % q })
            .collect(),
    ]
}

#[test]
fn simd_backends_match_scalar_bit_for_bit() {
    for log_n in MIN_LOG_N..=MAX_LOG_N {
        let n = 1usize << log_n;
        for q in prime_classes(n) {
            let scalar = NttPlan::with_backend(n, q, Backend::Scalar).unwrap();
            let plans: Vec<NttPlan> = Backend::available()
                .into_iter()
                .filter(|&b| b != Backend::Scalar)
                .map(|b| NttPlan::with_backend(n, q, b).unwrap())
                .collect();
            for (k, a) in inputs(n, q, 31 * log_n as u64 + q % 1000)
                .into_iter()
                .enumerate()
            {
                // Forward from coefficients, inverse from arbitrary evaluations in [0, q).
                let mut want_f = a.clone();
                scalar.forward(&mut want_f);
                let mut want_i = a.clone();
                scalar.inverse(&mut want_i);
                for plan in &plans {
                    let mut f = a.clone();
                    plan.forward(&mut f);
                    assert_eq!(
                        f,
                        want_f,
                        "forward n = {n}, q = {q}, input {k}, {:?}",
                        plan.backend()
                    );
                    let mut i = a.clone();
                    plan.inverse(&mut i);
                    assert_eq!(
                        i,
                        want_i,
                        "inverse n = {n}, q = {q}, input {k}, {:?}",
                        plan.backend()
                    );
                }
            }
        }
    }
}

#[test]
fn backend_selection() {
    for b in Backend::ALL {
        assert_eq!(Backend::from_name(b.name()), Some(b));
        assert_eq!(Backend::from_name(&b.name().to_uppercase()), Some(b));
        let plan = NttPlan::with_backend(16, 97, b);
        if b.is_supported() {
            assert!(plan.is_ok(), "{b:?}");
            assert!(Backend::available().contains(&b));
        } else {
            assert_eq!(
                plan.err(),
                Some(MathError::BackendUnavailable { backend: b.name() })
            );
        }
    }
    assert_eq!(Backend::from_name("neon"), None);
    assert_eq!(Backend::available()[0], Backend::Scalar);
    // IFMA keeps 4q below 2^52: larger primes run the 64-bit AVX-512 kernels.
    if Backend::Avx512Ifma.is_supported() {
        let q50 = generate_ntt_primes(50, 1, 1024, &[]).unwrap()[0];
        let q51 = generate_ntt_primes(51, 1, 1024, &[]).unwrap()[0];
        let small = NttPlan::with_backend(1024, q50, Backend::Avx512Ifma).unwrap();
        let large = NttPlan::with_backend(1024, q51, Backend::Avx512Ifma).unwrap();
        assert_eq!(small.backend(), Backend::Avx512Ifma);
        assert_eq!(large.backend(), Backend::Avx512);
    }
    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("ENSI_NTT_BACKEND").is_none() {
        let best = *Backend::available().last().unwrap();
        let expected_large = if best == Backend::Avx512Ifma {
            Backend::Avx512
        } else {
            best
        };
        assert_eq!(Backend::detect(50), best);
        assert_eq!(Backend::detect(60), expected_large);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn random_products_n256(seed in any::<u64>(), bits in 20u32..=62) {
        let q = generate_ntt_primes(bits, 1, 256, &[]).unwrap()[0];
        for backend in Backend::available() {
            check_product(&NttPlan::with_backend(256, q, backend).unwrap(), seed);
        }
    }
}

/// `forward_sub_scale` (the rescale's fused last pass) against the transform and `u128`
/// arithmetic, on every backend this CPU has, every degree up to 2^12 and each prime class,
/// into a 64-byte aligned output (streamed stores) and one 8 bytes off it (plain stores).
#[test]
fn forward_sub_scale_matches_transform_then_scale() {
    #[repr(align(64))]
    struct Aligned([u64; (1 << 12) + 8]);
    for log_n in 1..=12u32 {
        let n = 1usize << log_n;
        for q in prime_classes(n) {
            for backend in [
                Backend::Scalar,
                Backend::Avx2,
                Backend::Avx512,
                Backend::Avx512Ifma,
            ] {
                let Ok(plan) = NttPlan::with_backend(n, q, backend) else {
                    continue;
                };
                let a = random_poly(n, q, u64::from(log_n) * 7 + q % 97);
                let x = random_poly(n, q, u64::from(log_n) * 11 + 3);
                let w = q - 1 - (q >> 3);
                let w_shoup = ((u128::from(w) << 64) / u128::from(q)) as u64;
                let mut t = a.clone();
                plan.forward(&mut t);
                let want: Vec<u64> = x
                    .iter()
                    .zip(&t)
                    .map(|(&xi, &ti)| {
                        ((u128::from((xi + q - ti) % q) * u128::from(w)) % u128::from(q)) as u64
                    })
                    .collect();
                for offset in [0usize, 1] {
                    let mut buf = alloc::boxed::Box::new(Aligned([0; (1 << 12) + 8]));
                    let out = &mut buf.0[offset..offset + n];
                    // SAFETY: `[u64]` and `[MaybeUninit<u64>]` have one layout.
                    let out_u =
                        unsafe { &mut *(out as *mut [u64] as *mut [core::mem::MaybeUninit<u64>]) };
                    let mut scratch = a.clone();
                    plan.forward_sub_scale(&mut scratch, &x, w, w_shoup, out_u);
                    assert_eq!(
                        &buf.0[offset..offset + n],
                        &want[..],
                        "n {n}, q {q}, {backend:?}, offset {offset}"
                    );
                }
            }
        }
    }
}
