//! Portable scalar butterflies with Harvey's lazy reduction: the reference backend.

use super::NttPlan;

/// Forward negacyclic NTT (Cooley–Tukey, lazy values in `[0, 4q)` between stages).
pub(super) fn forward(plan: &NttPlan, a: &mut [u64]) {
    let m = plan.modulus;
    let q = m.q();
    let two_q = 2 * q;
    let n = plan.n;
    let mut t = n;
    let mut groups = 1;
    while groups < n {
        t >>= 1;
        for i in 0..groups {
            let w = plan.fwd[groups + i];
            let ws = plan.fwd_shoup[groups + i];
            let (lo, hi) = a[2 * i * t..2 * i * t + 2 * t].split_at_mut(t);
            for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                let u = m.reduce_twice_lazy(*x);
                let v = m.mul_shoup_lazy(*y, w, ws);
                *x = u + v;
                *y = u + two_q - v;
            }
        }
        groups <<= 1;
    }
    for x in a.iter_mut() {
        *x = m.reduce_once(m.reduce_twice_lazy(*x));
    }
}

/// Inverse negacyclic NTT (Gentleman–Sande, lazy values in `[0, 2q)` between stages, `N^{-1}`
/// applied at the end).
pub(super) fn inverse(plan: &NttPlan, a: &mut [u64]) {
    let m = plan.modulus;
    let two_q = 2 * m.q();
    let n = plan.n;
    let mut t = 1;
    let mut groups = n >> 1;
    while groups >= 1 {
        for i in 0..groups {
            let w = plan.inv[groups + i];
            let ws = plan.inv_shoup[groups + i];
            let (lo, hi) = a[2 * i * t..2 * i * t + 2 * t].split_at_mut(t);
            for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                let (u, v) = (*x, *y);
                *x = m.reduce_twice_lazy(u + v);
                *y = m.mul_shoup_lazy(u + two_q - v, w, ws);
            }
        }
        t <<= 1;
        groups >>= 1;
    }
    for x in a.iter_mut() {
        *x = m.mul_shoup(*x, plan.n_inv, plan.n_inv_shoup);
    }
}
