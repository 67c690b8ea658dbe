//! RNS basis, CRT, fast base conversion, ModUp / ModDown / rescale and digit decomposition,
//! checked against exact big-integer arithmetic.
#![allow(clippy::unwrap_used)]

use ensi_math::{BasisConverter, KeySwitchBasis, RnsBasis, Rounding, generate_ntt_primes};
use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Zero};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn primes(bits: u32, count: usize, exclude: &[u64]) -> Vec<u64> {
    generate_ntt_primes(bits, count, 1 << 4, exclude).unwrap()
}

/// floor(a / b) for a signed a and positive b.
fn floor_div(a: &BigInt, b: &BigUint) -> BigInt {
    let b = BigInt::from(b.clone());
    let q = a / &b;
    if a.sign() == Sign::Minus && &q * &b != *a {
        q - 1
    } else {
        q
    }
}

/// round(a / b) for odd b (no ties).
fn round_div(a: &BigInt, b: &BigUint) -> BigInt {
    floor_div(&(a * 2 + BigInt::from(b.clone())), &(b * 2u32))
}

fn modq(a: &BigInt, q: &BigUint) -> BigUint {
    let q = BigInt::from(q.clone());
    let r = ((a % &q) + &q) % &q;
    r.to_biguint().unwrap()
}

/// Random residues for `n` coefficients over `basis`, limb-major.
fn random_limbs(rng: &mut ChaCha20Rng, basis: &RnsBasis, n: usize) -> Vec<u64> {
    let mut v = Vec::with_capacity(basis.len() * n);
    for m in basis.moduli() {
        for _ in 0..n {
            v.push(rng.next_u64() % m.q());
        }
    }
    v
}

/// Coefficient `c` of limb-major `data` over `basis`, reconstructed exactly in [0, Q).
fn coeff(basis: &RnsBasis, data: &[u64], n: usize, c: usize) -> BigUint {
    let res: Vec<u64> = (0..basis.len()).map(|i| data[i * n + c]).collect();
    basis.reconstruct(&res)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn crt_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64), neg in any::<bool>()) {
        let basis = RnsBasis::new(&primes(50, 5, &[])).unwrap();
        let q = basis.product().clone();
        let x = BigUint::from_bytes_le(&bytes) % &q;
        let res = basis.to_residues(&x);
        for (r, m) in res.iter().zip(basis.moduli()) {
            prop_assert_eq!(BigUint::from(*r), &x % m.q());
        }
        prop_assert_eq!(basis.reconstruct(&res), x.clone());
        // Centred: any x with |x| <= (Q-1)/2.
        let half = (&q - 1u32) >> 1u32;
        let xc = BigInt::from(&x % (&half + 1u32));
        let xc = if neg { -xc } else { xc };
        let mut r2 = vec![0u64; basis.len()];
        basis.reduce_bigint(&xc, &mut r2);
        prop_assert_eq!(basis.reconstruct_centered(&r2), xc);
    }

    #[test]
    fn fast_conversion_is_x_plus_uq(seed in any::<u64>(), k in 1usize..8) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let from = RnsBasis::new(&primes(55, k, &[])).unwrap();
        let to_primes = primes(60, 4, &[]);
        let to = RnsBasis::new(&to_primes).unwrap();
        let n = 16;
        let x = random_limbs(&mut rng, &from, n);
        let conv = BasisConverter::new(&from, &to);
        let mut out = vec![0u64; to.len() * n];
        conv.convert(n, &x, &mut out).unwrap();
        for c in 0..n {
            let xv = coeff(&from, &x, n, c);
            // The exact u: the unique one in [0, k) that matches every target residue.
            let matches: Vec<usize> = (0..k).filter(|&u| {
                let y = &xv + from.product() * u;
                to.moduli().iter().enumerate().all(|(j, m)| BigUint::from(out[j * n + c]) == &y % m.q())
            }).collect();
            prop_assert_eq!(matches.len(), 1, "output is x + uQ with 0 <= u < k");
        }
    }

    #[test]
    fn rescale_is_exact_rounding(seed in any::<u64>(), limbs in 2usize..7) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let basis = RnsBasis::new(&primes(45, 6, &[])).unwrap();
        let bl = basis.prefix(limbs).unwrap();
        let bl1 = basis.prefix(limbs - 1).unwrap();
        let n = 16;
        let mut x = random_limbs(&mut rng, &bl, n);
        let before = x.clone();
        basis.rescale(n, limbs, &mut x);
        let ql = BigUint::from(basis.moduli()[limbs - 1].q());
        for c in 0..n {
            let res: Vec<u64> = (0..limbs).map(|i| before[i * n + c]).collect();
            let xc = bl.reconstruct_centered(&res);
            let got: Vec<u64> = (0..limbs - 1).map(|i| x[i * n + c]).collect();
            prop_assert_eq!(bl1.reconstruct_centered(&got), round_div(&xc, &ql));
            // Also for the representative in [0, Q).
            let xu = BigInt::from(bl.reconstruct(&res));
            prop_assert_eq!(bl1.reconstruct(&got), modq(&round_div(&xu, &ql), bl1.product()));
        }
    }
}

fn ks_setup(dnum: usize) -> (KeySwitchBasis, Vec<u64>, Vec<u64>) {
    let q = primes(40, 7, &[]);
    let p = primes(45, 3, &[]);
    (KeySwitchBasis::new(&q, &p, dnum).unwrap(), q, p)
}

#[test]
fn digit_layout() {
    let (ks, _, _) = ks_setup(3);
    assert_eq!((ks.alpha(), ks.dnum()), (3, 3));
    assert_eq!(ks.digit_range(2, 7), 6..7);
    assert_eq!(ks.digits_at(4), 2);
    assert_eq!(ks.digit_range(1, 4), 3..4);
    let (ks5, _, _) = ks_setup(5);
    // alpha = ceil(7 / 5) = 2: only four digits are needed.
    assert_eq!((ks5.alpha(), ks5.dnum()), (2, 4));
    assert!(KeySwitchBasis::new(&primes(40, 3, &[]), &primes(40, 2, &[]), 1).is_err()); // shared primes
}

#[test]
fn mod_up_digits_and_recombination() {
    let n = 16;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for dnum in [1, 2, 3, 5, 7] {
        let (ks, q, p) = ks_setup(dnum);
        let pb = RnsBasis::new(&p).unwrap();
        let big_p = pb.product().clone();
        let full_q = RnsBasis::new(&q).unwrap();
        for num_q in [7, 5, 4, 1] {
            let ql = RnsBasis::new(&q[..num_q]).unwrap();
            let qp: Vec<u64> = q[..num_q].iter().chain(&p).copied().collect();
            let qpb = RnsBasis::new(&qp).unwrap();
            let x = random_limbs(&mut rng, &ql, n);
            let digits = ks.digits_at(num_q);
            let block = (num_q + p.len()) * n;
            let mut out = vec![0u64; digits * block];
            ks.decompose(n, num_q, &x, &mut out).unwrap();
            for c in 0..n {
                let xv = coeff(&ql, &x, n, c);
                let mut sum = BigUint::zero();
                for j in 0..digits {
                    let r = ks.digit_range(j, num_q);
                    let dj: BigUint = q[r.clone()].iter().map(|&v| BigUint::from(v)).product();
                    let d = coeff(&qpb, &out[j * block..(j + 1) * block], n, c);
                    // d = [x]_{D_j} + u D_j, 0 <= u < |digit|
                    let base = &xv % &dj;
                    assert!(d >= base);
                    let diff = &d - &base;
                    assert!((&diff % &dj).is_zero());
                    let u = &diff / &dj;
                    assert!(
                        u < BigUint::from(r.len()),
                        "u = {u} for a digit of {} limbs",
                        r.len()
                    );
                    // Full-level gadget g_j.
                    let fr = j * ks.alpha()..((j + 1) * ks.alpha()).min(q.len());
                    let dfull: BigUint = q[fr].iter().map(|&v| BigUint::from(v)).product();
                    let qhat = full_q.product() / &dfull;
                    let qhat_inv = (&qhat % &dfull).modinv(&dfull).unwrap();
                    sum += d * &big_p * qhat * qhat_inv;
                }
                assert_eq!(sum % qpb.product(), (&xv * &big_p) % qpb.product());
            }
        }
    }
}

#[test]
fn mod_up_bound_is_tight() {
    // v_i = q_i - 1 for every source limb gives u = k - 1 exactly.
    let n = 2;
    let (ks, q, p) = ks_setup(1); // one digit of 7 limbs
    let qb = RnsBasis::new(&q).unwrap();
    let mut x = vec![0u64; q.len() * n];
    for (i, m) in qb.moduli().iter().enumerate() {
        let qhat = m.reduce((qb.q_hat(i) % m.q()).try_into().unwrap());
        x[i * n] = m.mul(m.q() - 1, qhat);
    }
    let mut out = vec![0u64; (q.len() + p.len()) * n];
    ks.mod_up_digit(n, q.len(), 0, &x, &mut out).unwrap();
    let qp: Vec<u64> = q.iter().chain(&p).copied().collect();
    let d = coeff(&RnsBasis::new(&qp).unwrap(), &out, n, 0);
    let xv = coeff(&qb, &x, n, 0);
    assert_eq!((d - &xv) / qb.product(), BigUint::from(q.len() - 1));
}

#[test]
fn mod_down_error_within_bound() {
    let n = 32;
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (ks, q, p) = ks_setup(3);
    let big_p = RnsBasis::new(&p).unwrap().product().clone();
    let mut seen_nonzero = false;
    for num_q in [7, 3, 1] {
        let ql = RnsBasis::new(&q[..num_q]).unwrap();
        let qp: Vec<u64> = q[..num_q].iter().chain(&p).copied().collect();
        let qpb = RnsBasis::new(&qp).unwrap();
        for rounding in [Rounding::Floor, Rounding::Round] {
            for _ in 0..4 {
                let x = random_limbs(&mut rng, &qpb, n);
                let mut y = x.clone();
                ks.mod_down(n, num_q, &mut y, rounding).unwrap();
                for c in 0..n {
                    let xu = coeff(&qpb, &x, n, c);
                    let res: Vec<u64> = (0..qp.len()).map(|i| x[i * n + c]).collect();
                    let xc = qpb.reconstruct_centered(&res);
                    let got = coeff(&ql, &y[..num_q * n], n, c);
                    for xv in [BigInt::from(xu.clone()), xc] {
                        let exact = match rounding {
                            Rounding::Floor => floor_div(&xv, &big_p),
                            Rounding::Round => round_div(&xv, &big_p),
                        };
                        // exact - got = u (mod Q_l) with 0 <= u < K.
                        let u = modq(&(exact - BigInt::from(got.clone())), ql.product());
                        assert!(u < BigUint::from(p.len()), "u = {u}");
                        seen_nonzero |= !u.is_zero();
                    }
                }
            }
        }
    }
    assert!(
        seen_nonzero,
        "the approximate conversion error should show up"
    );
}

#[test]
fn large_mod_up_and_mod_down() {
    // N = 2^16, 20 Q limbs of 50 bits, 4 P limbs of 60 bits, dnum = 4 (alpha = 5).
    let n = 1 << 16;
    let q = generate_ntt_primes(50, 20, n, &[]).unwrap();
    let p = generate_ntt_primes(60, 4, n, &[]).unwrap();
    let ks = KeySwitchBasis::new(&q, &p, 4).unwrap();
    let qb = RnsBasis::new(&q).unwrap();
    let qp: Vec<u64> = q.iter().chain(&p).copied().collect();
    let qpb = RnsBasis::new(&qp).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let x = random_limbs(&mut rng, &qb, n);
    let mut out = vec![0u64; qp.len() * n];
    ks.mod_up_digit(n, q.len(), 1, &x, &mut out).unwrap();
    let dj: BigUint = q[5..10].iter().map(|&v| BigUint::from(v)).product();
    for c in [0, 1, 12345, n - 1] {
        let xv = coeff(&qb, &x, n, c);
        let d = coeff(&qpb, &out, n, c);
        let diff = d - (&xv % &dj);
        assert!((&diff % &dj).is_zero() && &diff / &dj < BigUint::from(5u32));
    }
    let big_p = RnsBasis::new(&p).unwrap().product().clone();
    let mut y = random_limbs(&mut rng, &qpb, n);
    let before = y.clone();
    ks.mod_down(n, q.len(), &mut y, Rounding::Round).unwrap();
    for c in [0, 777, n - 1] {
        let xv = BigInt::from(coeff(&qpb, &before, n, c));
        let got = BigInt::from(coeff(&qb, &y[..q.len() * n], n, c));
        let u = modq(&(round_div(&xv, &big_p) - got), qb.product());
        assert!(u < BigUint::from(4u32));
    }
}

#[test]
fn errors_on_bad_lengths() {
    let (ks, q, p) = ks_setup(3);
    let n = 4;
    let x = vec![0u64; q.len() * n];
    let mut out = vec![0u64; (q.len() + p.len()) * n];
    assert!(ks.mod_up_digit(n, q.len(), 3, &x, &mut out).is_err());
    assert!(ks.mod_up_digit(n, q.len(), 0, &x[1..], &mut out).is_err());
    assert!(ks.mod_up_digit(n, 0, 0, &x, &mut out).is_err());
    assert!(
        ks.mod_down(n, q.len(), &mut out[1..], Rounding::Floor)
            .is_err()
    );
    assert!(RnsBasis::new(&[]).is_err());
    assert!(RnsBasis::new(&[97, 97]).is_err());
    assert!(RnsBasis::new(&[15, 21]).is_err());
    assert_eq!(
        BigUint::one(),
        RnsBasis::new(&[97]).unwrap().reconstruct(&[1])
    );
}
