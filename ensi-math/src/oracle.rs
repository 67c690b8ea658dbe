//! Slow, obviously correct reference computations that fast code is tested against: the
//! schoolbook negacyclic product modulo `X^N + 1`, on single-word residues and on big integers.
//! One copy for every test, the self-check and the fuzz targets. Quadratic time: for checks
//! only.

use alloc::vec;
use alloc::vec::Vec;
use num_bigint::{BigInt, BigUint, Sign};

/// `a * b mod (X^N + 1, q)` by the schoolbook formula, in u128 arithmetic (`N = a.len()`,
/// `b.len() == N`, residues below `q`). Zero coefficients of `b` are skipped.
pub fn negacyclic_mul(a: &[u64], b: &[u64], q: u64) -> Vec<u64> {
    let n = a.len();
    let q128 = u128::from(q);
    let mut acc = vec![0u128; n];
    for (j, &bj) in b.iter().enumerate().filter(|(_, bj)| **bj != 0) {
        for (i, &ai) in a.iter().enumerate() {
            let p = u128::from(ai) * u128::from(bj) % q128;
            let k = i + j;
            if k < n {
                acc[k] = (acc[k] + p) % q128;
            } else {
                acc[k - n] = (acc[k - n] + q128 - p) % q128;
            }
        }
    }
    acc.into_iter().map(|x| x as u64).collect()
}

/// `a * b mod (X^N + 1, q)` over the integers, reduced into `[0, q)`.
pub fn negacyclic_mul_big(a: &[BigUint], b: &[BigUint], q: &BigUint) -> Vec<BigUint> {
    let n = a.len();
    let mut acc = vec![BigInt::from(0); n];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            let p = BigInt::from_biguint(Sign::Plus, x * y);
            if i + j < n {
                acc[i + j] += p;
            } else {
                acc[i + j - n] -= p;
            }
        }
    }
    let qi = BigInt::from_biguint(Sign::Plus, q.clone());
    acc.into_iter()
        .map(|x| {
            let r = ((x % &qi) + &qi) % &qi;
            r.magnitude().clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_wraps_negacyclically_and_its_two_forms_agree() {
        let (n, q) = (8usize, 97u64);
        // X^(N-1) * X = X^N = -1.
        let mut a = vec![0u64; n];
        let mut b = vec![0u64; n];
        a[n - 1] = 1;
        b[1] = 1;
        let mut minus_one = vec![0u64; n];
        minus_one[0] = q - 1;
        assert_eq!(negacyclic_mul(&a, &b, q), minus_one);
        // (1 + X) * (1 - X) = 1 - X^2.
        let mut c = vec![0u64; n];
        let mut d = vec![0u64; n];
        c[0] = 1;
        c[1] = 1;
        d[0] = 1;
        d[1] = q - 1;
        let mut expect = vec![0u64; n];
        expect[0] = 1;
        expect[2] = q - 1;
        assert_eq!(negacyclic_mul(&c, &d, q), expect);
        // The word and big-integer forms agree.
        let x: Vec<u64> = (0..n as u64).map(|i| (i * 37 + 5) % q).collect();
        let y: Vec<u64> = (0..n as u64).map(|i| (i * 11 + 90) % q).collect();
        let big = |v: &[u64]| v.iter().map(|&t| BigUint::from(t)).collect::<Vec<_>>();
        let got: Vec<BigUint> = negacyclic_mul_big(&big(&x), &big(&y), &BigUint::from(q));
        assert_eq!(got, big(&negacyclic_mul(&x, &y, q)));
    }
}
