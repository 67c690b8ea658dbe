//! The SIMD driver shared by the vector backends, as a macro expanded inside each backend module
//! so that every function carries that backend's `#[target_feature]` and inlines its primitives.
//!
//! The expanding module provides: the vector type `V`, `LANES`, `RADIX8` (whether the
//! broadcast stages go three at a time: with 32 vector registers, not with 16, where the eight
//! data vectors and seven twiddle pairs spill and radix 4 is faster), a twiddle type `Tw: Copy`
//! (a broadcast or per-lane twiddle with whatever the product needs precomputed), a `Ctx` built
//! by `Ctx::new(q)` with fields `q`, `two_q` and methods `tw_splat(w, w_shoup) -> Tw` and
//! `mul(a, &Tw) -> V` (Shoup's lazy product in `[0, 2q)`), the element-wise `add`, `sub`,
//! `reduce(x, c)` (`x - c` when `x >= c`), the unaligned `load`/`store`, and the in-register
//! stages `fwd_tail` (the forward stages with half-span `t <= LANES`, on blocks of `2 * LANES`,
//! ending fully reduced) and `inv_head` (the inverse stages with `t <= LANES`).
//!
//! Stages with `t >= 2 * LANES` use one broadcast twiddle per group and run two at a time
//! (radix 4): four vectors are loaded, go through two butterfly levels and are stored once.
//! Lazy bounds: forward values stay below `4q`, inverse values below `2q`.

macro_rules! simd_drivers {
    ($feat:literal, $fwd_shoup:ident, $inv_shoup:ident) => {
        use crate::ntt::NttPlan;

        /// Smallest degree the vector code handles (two vectors); below it the scalar code runs.
        pub(in crate::ntt) const MIN_N: usize = 2 * LANES;

        /// Forward (Cooley–Tukey) butterfly: `x, y < 4q` to `x + wy, x - wy` below `4q`.
        #[target_feature(enable = $feat)]
        #[inline]
        fn fwd_bf(c: &Ctx, x: V, y: V, t: &Tw) -> (V, V) {
            let u = reduce(x, c.two_q);
            let v = c.mul(y, t);
            (add(u, v), sub(add(u, c.two_q), v))
        }

        /// Last forward butterfly: outputs fully reduced to `[0, q)`.
        #[target_feature(enable = $feat)]
        #[inline]
        fn fwd_bf_last(c: &Ctx, x: V, y: V, t: &Tw) -> (V, V) {
            let u = reduce(reduce(x, c.two_q), c.q);
            let v = reduce(c.mul(y, t), c.q);
            (reduce(add(u, v), c.q), reduce(sub(add(u, c.q), v), c.q))
        }

        /// Inverse (Gentleman–Sande) butterfly: `x, y < 2q` to `x + y, w(x - y)` below `2q`.
        #[target_feature(enable = $feat)]
        #[inline]
        fn inv_bf(c: &Ctx, x: V, y: V, t: &Tw) -> (V, V) {
            (
                reduce(add(x, y), c.two_q),
                c.mul(sub(add(x, c.two_q), y), t),
            )
        }

        /// Last inverse butterfly with `N^{-1}` folded in: `N^-1 (x + y), N^-1 w (x - y)` in
        /// `[0, q)`.
        #[target_feature(enable = $feat)]
        #[inline]
        fn inv_bf_last(c: &Ctx, x: V, y: V, last: &[Tw; 2]) -> (V, V) {
            (
                reduce(c.mul(add(x, y), &last[0]), c.q),
                reduce(c.mul(sub(add(x, c.two_q), y), &last[1]), c.q),
            )
        }

        /// One forward stage with `m` groups, each with a broadcast twiddle.
        #[target_feature(enable = $feat)]
        fn fwd_r2(c: &Ctx, a: &mut [u64], m: usize, w: &[u64], ws: &[u64]) {
            let n = a.len();
            let t = n / (2 * m);
            debug_assert!(t.is_multiple_of(LANES));
            let p = a.as_mut_ptr();
            for i in 0..m {
                let tw = c.tw_splat(w[m + i], ws[m + i]);
                let base = 2 * i * t;
                let mut j = 0;
                while j < t {
                    // SAFETY: `j + LANES <= t` and `base + 2t <= n`, so both vectors lie in `a`.
                    unsafe {
                        let x = load(p.add(base + j));
                        let y = load(p.add(base + t + j));
                        let (x, y) = fwd_bf(c, x, y, &tw);
                        store(p.add(base + j), x);
                        store(p.add(base + t + j), y);
                    }
                    j += LANES;
                }
            }
        }

        /// Two forward stages at once (`m` then `2m` groups, broadcast twiddles).
        #[target_feature(enable = $feat)]
        fn fwd_r4(c: &Ctx, a: &mut [u64], m: usize, w: &[u64], ws: &[u64]) {
            let n = a.len();
            let t = n / (2 * m);
            let h = t / 2;
            debug_assert!(h.is_multiple_of(LANES));
            let p = a.as_mut_ptr();
            for i in 0..m {
                let t1 = c.tw_splat(w[m + i], ws[m + i]);
                let t2a = c.tw_splat(w[2 * m + 2 * i], ws[2 * m + 2 * i]);
                let t2b = c.tw_splat(w[2 * m + 2 * i + 1], ws[2 * m + 2 * i + 1]);
                let base = 2 * i * t;
                let mut j = 0;
                while j < h {
                    // SAFETY: `j + LANES <= h` and `base + 4h = base + 2t <= n`: the four
                    // vectors lie in `a`.
                    unsafe {
                        let p0 = p.add(base + j);
                        let x0 = load(p0);
                        let x1 = load(p0.add(h));
                        let x2 = load(p0.add(2 * h));
                        let x3 = load(p0.add(3 * h));
                        let (x0, x2) = fwd_bf(c, x0, x2, &t1);
                        let (x1, x3) = fwd_bf(c, x1, x3, &t1);
                        let (x0, x1) = fwd_bf(c, x0, x1, &t2a);
                        let (x2, x3) = fwd_bf(c, x2, x3, &t2b);
                        store(p0, x0);
                        store(p0.add(h), x1);
                        store(p0.add(2 * h), x2);
                        store(p0.add(3 * h), x3);
                    }
                    j += LANES;
                }
            }
        }

        /// Three forward stages at once (`m`, `2m` then `4m` groups, broadcast twiddles): eight
        /// vectors loaded, three butterfly levels in registers, eight stored, so a transform
        /// makes two passes over memory fewer than with radix 4 alone.
        #[target_feature(enable = $feat)]
        fn fwd_r8(c: &Ctx, a: &mut [u64], m: usize, w: &[u64], ws: &[u64]) {
            let n = a.len();
            let t = n / (2 * m);
            let e = t / 4;
            debug_assert!(e.is_multiple_of(LANES));
            let p = a.as_mut_ptr();
            for i in 0..m {
                let tw = |k: usize| c.tw_splat(w[k], ws[k]);
                let t1 = tw(m + i);
                let (t2a, t2b) = (tw(2 * m + 2 * i), tw(2 * m + 2 * i + 1));
                let t3 = [0, 1, 2, 3].map(|k| tw(4 * m + 4 * i + k));
                let base = 2 * i * t;
                let mut j = 0;
                while j < e {
                    // SAFETY: `j + LANES <= e` and `base + 8e = base + 2t <= n`: the eight
                    // vectors lie in `a`.
                    unsafe {
                        let p0 = p.add(base + j);
                        let mut x = [0, 1, 2, 3, 4, 5, 6, 7].map(|k| load(p0.add(k * e)));
                        for k in 0..4 {
                            (x[k], x[k + 4]) = fwd_bf(c, x[k], x[k + 4], &t1);
                        }
                        for k in [0, 1] {
                            (x[k], x[k + 2]) = fwd_bf(c, x[k], x[k + 2], &t2a);
                            (x[k + 4], x[k + 6]) = fwd_bf(c, x[k + 4], x[k + 6], &t2b);
                        }
                        for (k, t) in t3.iter().enumerate() {
                            (x[2 * k], x[2 * k + 1]) = fwd_bf(c, x[2 * k], x[2 * k + 1], t);
                        }
                        for (k, v) in x.into_iter().enumerate() {
                            store(p0.add(k * e), v);
                        }
                    }
                    j += LANES;
                }
            }
        }

        /// One inverse stage with `m` groups; `LAST` (then `m = 1`) folds in `N^{-1}`.
        #[target_feature(enable = $feat)]
        fn inv_r2<const LAST: bool>(
            c: &Ctx,
            a: &mut [u64],
            m: usize,
            w: &[u64],
            ws: &[u64],
            last: &[Tw; 2],
        ) {
            let n = a.len();
            let t = n / (2 * m);
            debug_assert!(t.is_multiple_of(LANES));
            let p = a.as_mut_ptr();
            for i in 0..m {
                let tw = c.tw_splat(w[m + i], ws[m + i]);
                let base = 2 * i * t;
                let mut j = 0;
                while j < t {
                    // SAFETY: `j + LANES <= t` and `base + 2t <= n`, so both vectors lie in `a`.
                    unsafe {
                        let x = load(p.add(base + j));
                        let y = load(p.add(base + t + j));
                        let (x, y) = if LAST {
                            inv_bf_last(c, x, y, last)
                        } else {
                            inv_bf(c, x, y, &tw)
                        };
                        store(p.add(base + j), x);
                        store(p.add(base + t + j), y);
                    }
                    j += LANES;
                }
            }
        }

        /// Two inverse stages at once (`m` then `m / 2` groups); `LAST` (then `m = 2`) folds in
        /// `N^{-1}`.
        #[target_feature(enable = $feat)]
        fn inv_r4<const LAST: bool>(
            c: &Ctx,
            a: &mut [u64],
            m: usize,
            w: &[u64],
            ws: &[u64],
            last: &[Tw; 2],
        ) {
            let n = a.len();
            let t = n / (2 * m);
            debug_assert!(t.is_multiple_of(LANES) && m >= 2);
            let p = a.as_mut_ptr();
            for i in 0..m / 2 {
                let ta = c.tw_splat(w[m + 2 * i], ws[m + 2 * i]);
                let tb = c.tw_splat(w[m + 2 * i + 1], ws[m + 2 * i + 1]);
                let t2 = c.tw_splat(w[m / 2 + i], ws[m / 2 + i]);
                let base = 4 * i * t;
                let mut j = 0;
                while j < t {
                    // SAFETY: `j + LANES <= t` and `base + 4t <= n`: the four vectors lie in `a`.
                    unsafe {
                        let p0 = p.add(base + j);
                        let x0 = load(p0);
                        let x1 = load(p0.add(t));
                        let x2 = load(p0.add(2 * t));
                        let x3 = load(p0.add(3 * t));
                        let (x0, x1) = inv_bf(c, x0, x1, &ta);
                        let (x2, x3) = inv_bf(c, x2, x3, &tb);
                        let ((x0, x2), (x1, x3)) = if LAST {
                            (inv_bf_last(c, x0, x2, last), inv_bf_last(c, x1, x3, last))
                        } else {
                            (inv_bf(c, x0, x2, &t2), inv_bf(c, x1, x3, &t2))
                        };
                        store(p0, x0);
                        store(p0.add(t), x1);
                        store(p0.add(2 * t), x2);
                        store(p0.add(3 * t), x3);
                    }
                    j += LANES;
                }
            }
        }

        /// Three inverse stages at once (`m`, `m / 2` then `m / 4` groups); `LAST` (then
        /// `m = 4`) folds in `N^{-1}`.
        #[target_feature(enable = $feat)]
        fn inv_r8<const LAST: bool>(
            c: &Ctx,
            a: &mut [u64],
            m: usize,
            w: &[u64],
            ws: &[u64],
            last: &[Tw; 2],
        ) {
            let n = a.len();
            let t = n / (2 * m);
            debug_assert!(t.is_multiple_of(LANES) && m >= 4);
            let p = a.as_mut_ptr();
            for i in 0..m / 4 {
                let tw = |k: usize| c.tw_splat(w[k], ws[k]);
                let t1 = [0, 1, 2, 3].map(|k| tw(m + 4 * i + k));
                let t2 = [tw(m / 2 + 2 * i), tw(m / 2 + 2 * i + 1)];
                let t3 = tw(m / 4 + i);
                let base = 8 * i * t;
                let mut j = 0;
                while j < t {
                    // SAFETY: `j + LANES <= t` and `base + 8t <= n`: the eight vectors lie in
                    // `a`.
                    unsafe {
                        let p0 = p.add(base + j);
                        let mut x = [0, 1, 2, 3, 4, 5, 6, 7].map(|k| load(p0.add(k * t)));
                        for (k, tk) in t1.iter().enumerate() {
                            (x[2 * k], x[2 * k + 1]) = inv_bf(c, x[2 * k], x[2 * k + 1], tk);
                        }
                        for k in [0, 1] {
                            (x[k], x[k + 2]) = inv_bf(c, x[k], x[k + 2], &t2[0]);
                            (x[k + 4], x[k + 6]) = inv_bf(c, x[k + 4], x[k + 6], &t2[1]);
                        }
                        for k in 0..4 {
                            (x[k], x[k + 4]) = if LAST {
                                inv_bf_last(c, x[k], x[k + 4], last)
                            } else {
                                inv_bf(c, x[k], x[k + 4], &t3)
                            };
                        }
                        for (k, v) in x.into_iter().enumerate() {
                            store(p0.add(k * t), v);
                        }
                    }
                    j += LANES;
                }
            }
        }

        /// Multiplies every value (below `2q`) by `N^{-1}`, fully reduced.
        #[target_feature(enable = $feat)]
        fn scale(c: &Ctx, a: &mut [u64], n_inv: &Tw) {
            let p = a.as_mut_ptr();
            let mut j = 0;
            while j < a.len() {
                // SAFETY: `a.len()` is a multiple of `LANES`, so `j + LANES <= a.len()`.
                unsafe {
                    let x = load(p.add(j));
                    store(p.add(j), reduce(c.mul(x, n_inv), c.q));
                }
                j += LANES;
            }
        }

        /// The forward twiddles and their Shoup constants in this backend's precision.
        #[allow(dead_code)]
        fn fwd_tables(plan: &NttPlan) -> (&[u64], &[u64]) {
            (&plan.fwd[..], &plan.$fwd_shoup[..])
        }

        /// Forward transform of `a` (length `N = plan.n >= MIN_N`).
        ///
        /// # Safety
        /// The CPU must support the target features this backend is compiled for.
        #[target_feature(enable = $feat)]
        pub(in crate::ntt) unsafe fn forward(plan: &NttPlan, a: &mut [u64]) {
            let n = a.len();
            assert!(n >= MIN_N && plan.fwd.len() == n && plan.$fwd_shoup.len() == n);
            let c = Ctx::new(plan.modulus.q());
            let (w, ws) = (&plan.fwd[..], &plan.$fwd_shoup[..]);
            fwd_broadcast(&c, a, w, ws);
            fwd_tail(&c, a, w, ws);
        }

        /// The forward stages with broadcast twiddles (half-spans `n/2` down to `2 LANES`):
        /// radix 8 where it fits, one or two radix-4 passes (or one radix-2 pass for a single
        /// stage) taking the remainder first.
        #[target_feature(enable = $feat)]
        fn fwd_broadcast(c: &Ctx, a: &mut [u64], w: &[u64], ws: &[u64]) {
            let n = a.len();
            let stages = (n / MIN_N).trailing_zeros();
            let mut m = 1;
            if !RADIX8 {
                if stages % 2 == 1 {
                    fwd_r2(c, a, m, w, ws);
                    m *= 2;
                }
                while n / (2 * m) >= 4 * LANES {
                    fwd_r4(c, a, m, w, ws);
                    m *= 4;
                }
                return;
            }
            match stages % 3 {
                1 if stages == 1 => {
                    fwd_r2(c, a, m, w, ws);
                    m *= 2;
                }
                1 => {
                    fwd_r4(c, a, m, w, ws);
                    fwd_r4(c, a, 4 * m, w, ws);
                    m *= 16;
                }
                2 => {
                    fwd_r4(c, a, m, w, ws);
                    m *= 4;
                }
                _ => {}
            }
            while n / (2 * m) >= 8 * LANES {
                fwd_r8(c, a, m, w, ws);
                m *= 8;
            }
        }

        /// Inverse transform of `a` (length `N = plan.n >= MIN_N`), `N^{-1}` included.
        ///
        /// # Safety
        /// The CPU must support the target features this backend is compiled for.
        #[target_feature(enable = $feat)]
        pub(in crate::ntt) unsafe fn inverse(plan: &NttPlan, a: &mut [u64]) {
            let n = a.len();
            assert!(n >= MIN_N && plan.inv.len() == n && plan.$inv_shoup.len() == n);
            let c = Ctx::new(plan.modulus.q());
            let (w, ws) = (&plan.inv[..], &plan.$inv_shoup[..]);
            let l = plan.inv_last;
            let last = [c.tw_splat(l[0], l[1]), c.tw_splat(l[2], l[3])];
            inv_head(&c, a, w, ws);
            let stages = (n / MIN_N).trailing_zeros();
            if stages == 0 {
                scale(&c, a, &last[0]);
                return;
            }
            // Groups at half-span 2 * LANES; a pass is the last when its last stage has one
            // group. One radix-2 or radix-4 pass takes the remainder, radix 8 the rest.
            let mut m = n / (4 * LANES);
            if !RADIX8 {
                if stages % 2 == 1 {
                    if m == 1 {
                        inv_r2::<true>(&c, a, m, w, ws, &last);
                    } else {
                        inv_r2::<false>(&c, a, m, w, ws, &last);
                    }
                    m /= 2;
                }
                while m >= 2 {
                    if m == 2 {
                        inv_r4::<true>(&c, a, m, w, ws, &last);
                    } else {
                        inv_r4::<false>(&c, a, m, w, ws, &last);
                    }
                    m /= 4;
                }
                return;
            }
            match stages % 3 {
                1 => {
                    if m == 1 {
                        inv_r2::<true>(&c, a, m, w, ws, &last);
                    } else {
                        inv_r2::<false>(&c, a, m, w, ws, &last);
                    }
                    m /= 2;
                }
                2 => {
                    if m == 2 {
                        inv_r4::<true>(&c, a, m, w, ws, &last);
                    } else {
                        inv_r4::<false>(&c, a, m, w, ws, &last);
                    }
                    m /= 4;
                }
                _ => {}
            }
            while m >= 4 {
                if m == 4 {
                    inv_r8::<true>(&c, a, m, w, ws, &last);
                } else {
                    inv_r8::<false>(&c, a, m, w, ws, &last);
                }
                m /= 8;
            }
        }
    };
}
