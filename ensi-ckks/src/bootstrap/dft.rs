//! The homomorphic DFTs of bootstrapping: CoeffsToSlots and SlotsToCoeffs as products of the
//! sparse butterfly stages of the special FFT (Cheon–Han–Kim–Kim–Song 2018, §4.1; the
//! level-budget grouping of Han–Ki 2020 and Bossuat et al. 2021, §4.1).
//!
//! The encoder's special FFT ([`crate::encoding::SpecialFft`]) maps coefficient halves to slots as
//! `z = F_n ... F_4 F_2 R u`, with `R` the bit-reversal permutation and `F_L` the butterfly
//! stage of half-span `L/2`; its inverse is `u = R I_2 ... I_n z / n`. Each stage has three
//! diagonals (`0`, `+L/2`, `-L/2`). Bootstrapping never needs `R`: CoeffsToSlots applies
//! `I_2 ... I_n / n` and leaves the coefficients in bit-reversed slot order, which the slot-wise
//! EvalMod does not mind, and SlotsToCoeffs applies `F_n ... F_2`, which expects exactly that
//! order. The `log2 n` stages are grouped into as many transforms as the level budget allows;
//! each group is one BSGS linear transform consuming one level.

use crate::lintrans::LinearTransform;
use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;
use core::f64::consts::PI;
use num_complex::Complex64;

/// `exp(2 pi i (5^j mod 4L) / 4L)` for `j < L/2`: the twiddles of the stage of length `L`.
fn twiddles(len: usize, conjugate: bool) -> Vec<Complex64> {
    let m = 4 * len;
    let mut g = 1usize;
    (0..len / 2)
        .map(|_| {
            let angle = 2.0 * PI * (g % m) as f64 / m as f64;
            g = g * 5 % m;
            let z = Complex64::new(libm::cos(angle), libm::sin(angle));
            if conjugate { z.conj() } else { z }
        })
        .collect()
}

/// The forward (decoding-direction) stage of length `len` on `n` slots:
/// `out[p] = in[p] + w in[p + L/2]`, `out[p + L/2] = in[p] - w in[p + L/2]`.
fn forward_stage(n: usize, len: usize) -> LinearTransform {
    let one = Complex64::new(1.0, 0.0);
    // (d0[p], d+[p], d0[p + L/2], d-[p + L/2]) for twiddle w.
    stage(n, len, false, |w| (one, w, -w, one))
}

/// The inverse (encoding-direction) stage of length `len` on `n` slots, without `1/2`:
/// `out[p] = in[p] + in[p + L/2]`, `out[p + L/2] = (in[p] - in[p + L/2]) conj(w)`.
fn inverse_stage(n: usize, len: usize) -> LinearTransform {
    let one = Complex64::new(1.0, 0.0);
    stage(n, len, true, |w| (one, one, -w, w))
}

/// A butterfly stage from its four diagonal entries per pair `(p, p + L/2)`, given the twiddle.
fn stage(
    n: usize,
    len: usize,
    conjugate: bool,
    entries: impl Fn(Complex64) -> (Complex64, Complex64, Complex64, Complex64),
) -> LinearTransform {
    let half = len / 2;
    let zero = Complex64::new(0.0, 0.0);
    let (mut d0, mut dp, mut dm) = (vec![zero; n], vec![zero; n], vec![zero; n]);
    let w = twiddles(len, conjugate);
    for block in (0..n).step_by(len) {
        for (j, &wj) in w.iter().enumerate() {
            let (p, q) = (block + j, block + j + half);
            (d0[p], dp[p], d0[q], dm[q]) = entries(wj);
        }
    }
    build(n, half, d0, dp, dm)
}

fn build(
    n: usize,
    half: usize,
    d0: Vec<Complex64>,
    dp: Vec<Complex64>,
    dm: Vec<Complex64>,
) -> LinearTransform {
    let half = half as isize;
    // For the last stage (half = n/2) the two off-diagonals coincide and add.
    LinearTransform::from_diagonals(n, [(0, d0), (half, dp), (-half, dm)])
        .unwrap_or_else(|_| unreachable!("stage diagonals have n entries and n is a power of two"))
}

/// Splits `stages` stages into `budget` groups as evenly as possible, larger groups first.
fn group_sizes(stages: usize, budget: usize) -> Vec<usize> {
    let budget = budget.clamp(1, stages.max(1));
    let (q, r) = (stages / budget, stages % budget);
    (0..budget)
        .map(|i| q + usize::from(i < r))
        .filter(|&s| s > 0)
        .collect()
}

/// CoeffsToSlots on `n` slots as `budget` transforms, in the order they are applied, their
/// product multiplied by the positive `factor` (the `1/n` of the inverse FFT is included). The
/// factor is spread evenly over the transforms (each takes `factor^(1/budget)`), so that no
/// transform has tiny entries that its plaintext scale would round away.
pub(crate) fn coeffs_to_slots(n: usize, budget: usize, factor: f64) -> Vec<LinearTransform> {
    // Applied order: I_n first, then I_{n/2}, ..., I_2; all halvings folded into `factor`.
    let lens: Vec<usize> = (1..=n.trailing_zeros())
        .rev()
        .map(|k| 1usize << k)
        .collect();
    grouped(n, &lens, budget, factor / n as f64, inverse_stage)
}

/// SlotsToCoeffs on `n` slots as `budget` transforms, in the order they are applied, their
/// product multiplied by the positive `factor` (spread as for CoeffsToSlots).
pub(crate) fn slots_to_coeffs(n: usize, budget: usize, factor: f64) -> Vec<LinearTransform> {
    let lens: Vec<usize> = (1..=n.trailing_zeros()).map(|k| 1usize << k).collect();
    grouped(n, &lens, budget, factor, forward_stage)
}

fn grouped(
    n: usize,
    lens: &[usize],
    budget: usize,
    factor: f64,
    stage: fn(usize, usize) -> LinearTransform,
) -> Vec<LinearTransform> {
    if lens.is_empty() {
        // One slot: the transform is the scalar `factor`.
        let id = LinearTransform::from_diagonals(n, [(0, vec![Complex64::new(factor, 0.0); n])])
            .unwrap_or_else(|_| unreachable!("n is a power of two"));
        return vec![id];
    }
    let sizes = group_sizes(lens.len(), budget);
    let each = Complex64::new(libm::pow(factor, 1.0 / sizes.len() as f64), 0.0);
    let mut out = Vec::new();
    let mut next = 0;
    for size in sizes {
        let mut acc = stage(n, lens[next]);
        for &len in &lens[next + 1..next + size] {
            // Later stages apply after: acc <- stage * acc.
            acc = stage(n, len)
                .compose(&acc)
                .unwrap_or_else(|_| unreachable!("stages share the slot count"));
        }
        next += size;
        out.push(acc.scaled(each));
    }
    out
}

/// The diagonal indices of each transform of [`slots_to_coeffs`] (`forward`) or
/// [`coeffs_to_slots`] on `n` slots with `budget` groups, from the butterfly spans alone: a
/// stage of half-span `h` has diagonals `0` and `±h`, and a group's diagonals are the sums of
/// its stages' (mod `n`). No diagonal is built; the tests check the result against the
/// transforms' own non-zero diagonals.
pub(crate) fn grouped_indices(n: usize, budget: usize, forward: bool) -> Vec<BTreeSet<usize>> {
    let mut lens: Vec<usize> = (1..=n.trailing_zeros()).map(|k| 1usize << k).collect();
    if !forward {
        lens.reverse();
    }
    if lens.is_empty() {
        return vec![BTreeSet::from([0])];
    }
    let mut out = Vec::new();
    let mut next = 0;
    for size in group_sizes(lens.len(), budget) {
        let mut set = BTreeSet::from([0usize]);
        for &len in &lens[next..next + size] {
            let half = len / 2;
            set = set
                .iter()
                .flat_map(|&k| [k, (k + half) % n, (k + n - half) % n])
                .collect();
        }
        next += size;
        out.push(set);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::SpecialFft;

    fn bit_reverse(v: &[Complex64]) -> Vec<Complex64> {
        let n = v.len();
        let bits = n.trailing_zeros();
        (0..n)
            .map(|i| {
                if n == 1 {
                    v[0]
                } else {
                    v[i.reverse_bits() >> (usize::BITS - bits)]
                }
            })
            .collect()
    }

    fn apply_all(ts: &[LinearTransform], v: &[Complex64]) -> Vec<Complex64> {
        ts.iter().fold(v.to_vec(), |acc, t| t.apply(&acc))
    }

    #[test]
    fn grouped_stages_match_the_encoder_fft_for_every_budget() {
        for log_n in [1u32, 3, 6] {
            let n = 1usize << log_n;
            let fft = SpecialFft::new(n);
            let u: Vec<Complex64> = (0..n)
                .map(|k| Complex64::new((k as f64 * 0.37).sin(), (k as f64 * 0.11).cos()))
                .collect();
            let mut z = u.clone();
            fft.forward(&mut z);
            for budget in 1..=log_n as usize {
                // SlotsToCoeffs on bit-reversed u gives the slots.
                let stc = slots_to_coeffs(n, budget, 1.0);
                assert_eq!(stc.len(), budget);
                let got = apply_all(&stc, &bit_reverse(&u));
                for (a, b) in got.iter().zip(&z) {
                    assert!(
                        (a - b).norm_sqr() < 1e-20,
                        "n {n} budget {budget}: {a} vs {b}"
                    );
                }
                // CoeffsToSlots on the slots gives bit-reversed u.
                let cts = coeffs_to_slots(n, budget, 1.0);
                let got = apply_all(&cts, &z);
                for (a, b) in got.iter().zip(&bit_reverse(&u)) {
                    assert!(
                        (a - b).norm_sqr() < 1e-20,
                        "n {n} budget {budget}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn structural_indices_are_the_non_zero_diagonals() {
        // Every budget on small slot counts; the default budgets at full slots of N = 2^16.
        let cases = (0u32..=10)
            .flat_map(|log_n| (1..=(log_n as usize).max(1) + 1).map(move |b| (log_n, b)))
            .chain([(15, 3), (15, 4)]);
        for (log_n, budget) in cases {
            let n = 1usize << log_n;
            {
                for forward in [false, true] {
                    let built = if forward {
                        slots_to_coeffs(n, budget, 0.7)
                    } else {
                        coeffs_to_slots(n, budget, 0.7)
                    };
                    let built: Vec<BTreeSet<usize>> =
                        built.iter().map(|t| t.shape().indices().clone()).collect();
                    assert_eq!(
                        grouped_indices(n, budget, forward),
                        built,
                        "n {n} budget {budget} forward {forward}"
                    );
                }
            }
        }
    }

    #[test]
    fn groups_are_balanced() {
        assert_eq!(group_sizes(15, 3), [5, 5, 5]);
        assert_eq!(group_sizes(15, 4), [4, 4, 4, 3]);
        assert_eq!(group_sizes(2, 4), [1, 1]);
    }
}
