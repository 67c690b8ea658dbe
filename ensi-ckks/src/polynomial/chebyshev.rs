//! Polynomials in the Chebyshev basis on an interval `[a, b]`: interpolation at Chebyshev
//! nodes, minimax refinement (Remez exchange), Clenshaw evaluation, and the division
//! `p = q T_n + r` that the baby-step giant-step evaluator splits on.

use alloc::vec;
use alloc::vec::Vec;
use core::f64::consts::PI;

/// `p(x) = sum_j c_j T_j(y)` with `y = (2x - a - b) / (b - a)`, for `x` in `[a, b]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChebyshevPoly {
    /// Coefficients `c_0, c_1, ...` in the Chebyshev basis of the variable `y`.
    pub coeffs: Vec<f64>,
    /// Left end of the interval.
    pub a: f64,
    /// Right end of the interval.
    pub b: f64,
}

impl ChebyshevPoly {
    /// A polynomial from its Chebyshev coefficients on `[a, b]`.
    pub fn new(coeffs: Vec<f64>, a: f64, b: f64) -> Self {
        Self { coeffs, a, b }
    }

    /// The interpolant of `f` of degree `degree` at the `degree + 1` Chebyshev nodes of
    /// `[a, b]` (the discrete Chebyshev transform): near-minimax for smooth `f`.
    pub fn interpolate(f: impl Fn(f64) -> f64, a: f64, b: f64, degree: usize) -> Self {
        let n = degree + 1;
        let values: Vec<f64> = (0..n)
            .map(|k| {
                let y = libm::cos(PI * (k as f64 + 0.5) / n as f64);
                f(0.5 * (b - a) * y + 0.5 * (a + b))
            })
            .collect();
        let coeffs = (0..n)
            .map(|j| {
                let s: f64 = values
                    .iter()
                    .enumerate()
                    .map(|(k, v)| v * libm::cos(PI * j as f64 * (k as f64 + 0.5) / n as f64))
                    .sum();
                let c = 2.0 * s / n as f64;
                if j == 0 { c / 2.0 } else { c }
            })
            .collect();
        Self { coeffs, a, b }
    }

    /// The minimax polynomial of `f` of degree `degree` on `[a, b]` by the Remez exchange
    /// algorithm (Remez 1934; the form of Trefethen, "Approximation Theory and Approximation
    /// Practice", ch. 10), started from the Chebyshev interpolant, for `iterations` rounds.
    /// The extrema are searched on a grid of `grid` points (at least `20 (degree + 2)`).
    pub fn minimax(
        f: impl Fn(f64) -> f64,
        a: f64,
        b: f64,
        degree: usize,
        iterations: usize,
    ) -> Self {
        let mut p = Self::interpolate(&f, a, b, degree);
        let m = degree + 2;
        let grid_len = 40 * m;
        let grid: Vec<f64> = (0..grid_len)
            .map(|i| {
                let t = PI * i as f64 / (grid_len - 1) as f64;
                0.5 * (a + b) - 0.5 * (b - a) * libm::cos(t)
            })
            .collect();
        // Reference set: the Chebyshev extrema (degree + 2 alternation points).
        let mut refs: Vec<f64> = (0..m)
            .map(|i| 0.5 * (a + b) - 0.5 * (b - a) * libm::cos(PI * i as f64 / (m - 1) as f64))
            .collect();
        for _ in 0..iterations {
            // Solve sum_j c_j T_j(y_i) + (-1)^i E = f(x_i) for c and E.
            let mut mat = vec![0.0f64; m * (m + 1)];
            for (i, &x) in refs.iter().enumerate() {
                let y = p.to_unit(x);
                let mut t_prev = 1.0;
                let mut t = y;
                for j in 0..=degree {
                    let v = match j {
                        0 => 1.0,
                        1 => y,
                        _ => {
                            let next = 2.0 * y * t - t_prev;
                            t_prev = t;
                            t = next;
                            next
                        }
                    };
                    mat[i * (m + 1) + j] = v;
                }
                mat[i * (m + 1) + degree + 1] = if i % 2 == 0 { 1.0 } else { -1.0 };
                mat[i * (m + 1) + m] = f(x);
            }
            let Some(sol) = solve(&mut mat, m) else {
                break;
            };
            p.coeffs = sol[..=degree].to_vec();
            // New reference: the extremum of the error in each sign-constant run of the grid.
            let err: Vec<f64> = grid.iter().map(|&x| f(x) - p.eval(x)).collect();
            let mut new_refs = Vec::with_capacity(m);
            let mut best = 0usize;
            for i in 1..grid_len {
                if (err[i] >= 0.0) == (err[best] >= 0.0) {
                    if libm::fabs(err[i]) > libm::fabs(err[best]) {
                        best = i;
                    }
                } else {
                    new_refs.push(best);
                    best = i;
                }
            }
            new_refs.push(best);
            // Keep the m largest alternating extrema.
            while new_refs.len() > m {
                let first = libm::fabs(err[new_refs[0]]);
                let last = libm::fabs(err[new_refs[new_refs.len() - 1]]);
                if first < last {
                    new_refs.remove(0);
                } else {
                    new_refs.pop();
                }
            }
            if new_refs.len() < m {
                break;
            }
            refs = new_refs.iter().map(|&i| grid[i]).collect();
        }
        p
    }

    /// The degree (index of the last coefficient).
    pub fn degree(&self) -> usize {
        self.coeffs.len().saturating_sub(1)
    }

    /// `y = (2x - a - b) / (b - a)`.
    pub fn to_unit(&self, x: f64) -> f64 {
        (2.0 * x - self.a - self.b) / (self.b - self.a)
    }

    /// `p(x)` by Clenshaw's recurrence.
    pub fn eval(&self, x: f64) -> f64 {
        eval_unit(&self.coeffs, self.to_unit(x))
    }

    /// The largest `|f(x) - p(x)|` on a grid of `points` points of `[a, b]`.
    pub fn max_error(&self, f: impl Fn(f64) -> f64, points: usize) -> f64 {
        (0..points)
            .map(|i| {
                let x = self.a + (self.b - self.a) * i as f64 / (points - 1).max(1) as f64;
                libm::fabs(f(x) - self.eval(x))
            })
            .fold(0.0, f64::max)
    }
}

/// `sum_j c_j T_j(y)` by Clenshaw's recurrence.
pub(crate) fn eval_unit(c: &[f64], y: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &cj in c.iter().skip(1).rev() {
        let b0 = 2.0 * y * b1 - b2 + cj;
        b2 = b1;
        b1 = b0;
    }
    y * b1 - b2 + c.first().copied().unwrap_or(0.0)
}

/// Splits `p` (degree `< 2n`) as `p = q T_n + r` with `deg r < n`, using
/// `T_{n+j} = 2 T_n T_j - T_{n-j}` (`1 <= j < n`) and `T_n = T_n T_0`.
pub(crate) fn divide(p: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    debug_assert!(p.len() <= 2 * n);
    let mut r: Vec<f64> = p[..n.min(p.len())].to_vec();
    let mut q = vec![0.0; p.len().saturating_sub(n)];
    for (j, &c) in p.iter().enumerate().skip(n) {
        let j = j - n;
        if j == 0 {
            q[0] += c;
        } else {
            q[j] += 2.0 * c;
            r[n - j] -= c;
        }
    }
    (q, r)
}

/// Gaussian elimination with partial pivoting on an `m x (m + 1)` augmented matrix.
fn solve(mat: &mut [f64], m: usize) -> Option<Vec<f64>> {
    let w = m + 1;
    for col in 0..m {
        let pivot = (col..m).max_by(|&i, &j| {
            libm::fabs(mat[i * w + col]).total_cmp(&libm::fabs(mat[j * w + col]))
        })?;
        if libm::fabs(mat[pivot * w + col]) < 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..w {
                mat.swap(pivot * w + k, col * w + k);
            }
        }
        for row in 0..m {
            if row != col {
                let factor = mat[row * w + col] / mat[col * w + col];
                if factor != 0.0 {
                    for k in col..w {
                        mat[row * w + k] -= factor * mat[col * w + k];
                    }
                }
            }
        }
    }
    Some((0..m).map(|i| mat[i * w + m] / mat[i * w + i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_and_division_agree_with_direct_evaluation() {
        let f = |x: f64| libm::exp(x) * libm::sin(3.0 * x);
        let p = ChebyshevPoly::interpolate(f, -2.0, 1.0, 31);
        assert!(p.max_error(f, 1000) < 1e-12);
        // p = q T_16 + r, checked pointwise on the unit interval.
        let (q, r) = divide(&p.coeffs, 16);
        for i in 0..100 {
            let y = -1.0 + 2.0 * i as f64 / 99.0;
            let t16 = libm::cos(16.0 * libm::acos(y));
            let lhs = eval_unit(&p.coeffs, y);
            let rhs = eval_unit(&q, y) * t16 + eval_unit(&r, y);
            assert!(libm::fabs(lhs - rhs) < 1e-12, "{lhs} vs {rhs}");
        }
    }

    #[test]
    fn minimax_beats_interpolation_and_equioscillates() {
        let f = |x: f64| 1.0 / (1.0 + libm::exp(-x));
        let (a, b, degree) = (-10.0, 11.0, 16);
        let interp = ChebyshevPoly::interpolate(f, a, b, degree);
        let mm = ChebyshevPoly::minimax(f, a, b, degree, 30);
        let (ei, em) = (interp.max_error(f, 20001), mm.max_error(f, 20001));
        assert!(em < 0.9 * ei, "minimax {em} vs interpolation {ei}");
        // Equioscillation: the extremum of every sign run of the error has (nearly) the same
        // magnitude, and there are at least degree + 2 runs.
        let grid = 20001;
        let err: Vec<f64> = (0..grid)
            .map(|i| {
                let x = a + (b - a) * i as f64 / (grid - 1) as f64;
                f(x) - mm.eval(x)
            })
            .collect();
        let mut peaks = Vec::new();
        let mut best = 0.0f64;
        for i in 0..grid {
            if i > 0 && (err[i] >= 0.0) != (err[i - 1] >= 0.0) {
                peaks.push(best);
                best = 0.0;
            }
            best = best.max(libm::fabs(err[i]));
        }
        peaks.push(best);
        assert!(peaks.len() >= degree + 2, "{} sign runs", peaks.len());
        let lo = peaks.iter().copied().fold(f64::MAX, f64::min);
        let hi = peaks.iter().copied().fold(0.0, f64::max);
        assert!(hi / lo < 1.05, "extrema from {lo} to {hi}");
    }
}
