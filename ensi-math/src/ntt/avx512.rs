//! AVX-512 backends, 8 lanes: [`ifma`] (52-bit Shoup products with `vpmadd52{lo,hi}uq`, primes
//! below `2^50`) and [`wide`] (64-bit Shoup products, the high half from four `vpmuludq`).
//!
//! The three stages with half-span `t = 4, 2, 1` run inside registers on blocks of 16 values,
//! together with the `t = 8` stage (which pairs the block's two vectors). A block is held as two
//! vectors `(P, Q)` whose lanes hold the block positions listed in `S4`, `S2`, `S1` (for `P`; `Q`
//! holds those plus `t`), so every butterfly pairs lane `k` of `P` with lane `k` of `Q`; one
//! two-source permutation per vector moves between states. The twiddles of a stage are the
//! contiguous `2, 4, 8` entries `w[N/(2t) + 8b/t ..]` of block `b`, spread over the lanes by a
//! one-source permutation.

/// Block positions held by `P` in the natural state (`Q` holds `8..16`): the `t = 8` stage.
const S8: [u64; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
/// Block positions held by `P` in the `t = 4` state.
const S4: [u64; 8] = [0, 1, 2, 3, 8, 9, 10, 11];
/// Block positions held by `P` in the `t = 2` state.
const S2: [u64; 8] = [0, 1, 4, 5, 8, 9, 12, 13];
/// Block positions held by `P` in the `t = 1` state.
const S1: [u64; 8] = [0, 2, 4, 6, 8, 10, 12, 14];

/// `s + t` lane by lane: the positions `Q` holds in the state of `P = s`, half-span `t`.
const fn plus(s: [u64; 8], t: u64) -> [u64; 8] {
    let mut out = [0; 8];
    let mut k = 0;
    while k < 8 {
        out[k] = s[k] + t;
        k += 1;
    }
    out
}

/// The index vector of `_mm512_permutex2var_epi64(P, idx, Q)` that collects the positions `dst`
/// from a state whose `P` holds `sp` and `Q` holds `sq`.
const fn gather(sp: [u64; 8], sq: [u64; 8], dst: [u64; 8]) -> [u64; 8] {
    let mut out = [0; 8];
    let mut k = 0;
    while k < 8 {
        let mut j = 0;
        while j < 8 {
            if sp[j] == dst[k] {
                out[k] = j as u64;
            }
            if sq[j] == dst[k] {
                out[k] = 8 + j as u64;
            }
            j += 1;
        }
        k += 1;
    }
    out
}

/// Which of the block's groups of stage `t` each lane of `P` (positions `s`) belongs to.
const fn groups(s: [u64; 8], t: u64) -> [u64; 8] {
    let mut out = [0; 8];
    let mut k = 0;
    while k < 8 {
        out[k] = s[k] / (2 * t);
        k += 1;
    }
    out
}

/// State transitions, as `[P index, Q index]`.
const fn transition(from: [u64; 8], t_from: u64, to: [u64; 8], t_to: u64) -> [[u64; 8]; 2] {
    let (fq, tq) = (plus(from, t_from), plus(to, t_to));
    [gather(from, fq, to), gather(from, fq, tq)]
}

const NAT_TO_4: [[u64; 8]; 2] = transition(S8, 8, S4, 4);
const T4_TO_2: [[u64; 8]; 2] = transition(S4, 4, S2, 2);
const T2_TO_1: [[u64; 8]; 2] = transition(S2, 2, S1, 1);
const T1_TO_NAT: [[u64; 8]; 2] = transition(S1, 1, S8, 8);
const NAT_TO_1: [[u64; 8]; 2] = transition(S8, 8, S1, 1);
const T1_TO_2: [[u64; 8]; 2] = transition(S1, 1, S2, 2);
const T2_TO_4: [[u64; 8]; 2] = transition(S2, 2, S4, 4);
const T4_TO_NAT: [[u64; 8]; 2] = transition(S4, 4, S8, 8);
const SPREAD4: [u64; 8] = groups(S4, 4);
const SPREAD2: [u64; 8] = groups(S2, 2);
const _: () = {
    // The `t = 1` state needs no spreading: its lanes take the groups in order.
    let g = groups(S1, 1);
    let mut k = 0;
    while k < 8 {
        assert!(g[k] == k as u64);
        k += 1;
    }
};

/// Primitives and in-register stages shared by the two AVX-512 backends.
macro_rules! avx512_common {
    ($feat:literal) => {
        use super::{
            NAT_TO_1, NAT_TO_4, SPREAD2, SPREAD4, T1_TO_2, T1_TO_NAT, T2_TO_1, T2_TO_4, T4_TO_2,
            T4_TO_NAT,
        };
        use core::arch::x86_64::*;

        type V = __m512i;
        const LANES: usize = 8;

        /// # Safety
        /// `p..p + 8` must be readable.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn load(p: *const u64) -> V {
            // SAFETY: the caller guarantees 64 readable bytes; the load is unaligned.
            unsafe { _mm512_loadu_si512(p.cast()) }
        }

        /// # Safety
        /// `p..p + 8` must be writable.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn store(p: *mut u64, v: V) {
            // SAFETY: the caller guarantees 64 writable bytes; the store is unaligned.
            unsafe { _mm512_storeu_si512(p.cast(), v) }
        }

        /// The constant `v` as a vector.
        #[target_feature(enable = $feat)]
        #[inline]
        fn constant(v: &[u64; 8]) -> V {
            // SAFETY: `v` is 8 readable words.
            unsafe { load(v.as_ptr()) }
        }

        /// Lanes `idx` of the first `K` words at `p` (`K = 2` or `4`).
        ///
        /// # Safety
        /// `p..p + K` must be readable.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn spread<const K: u8>(p: *const u64, idx: V) -> V {
            let mask: __mmask8 = (1u8 << K) - 1;
            // SAFETY: the caller guarantees the `K` unmasked words are readable; masked lanes do
            // not touch memory.
            let v = unsafe { _mm512_maskz_loadu_epi64(mask, p.cast()) };
            _mm512_permutexvar_epi64(idx, v)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn add(a: V, b: V) -> V {
            _mm512_add_epi64(a, b)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn sub(a: V, b: V) -> V {
            _mm512_sub_epi64(a, b)
        }

        /// `x - c` where `x >= c`, else `x` (unsigned).
        #[target_feature(enable = $feat)]
        #[inline]
        fn reduce(x: V, c: V) -> V {
            _mm512_min_epu64(x, _mm512_sub_epi64(x, c))
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn perm(p: V, idx: V, q: V) -> V {
            _mm512_permutex2var_epi64(p, idx, q)
        }

        /// Forward stages with half-span 8, 4, 2, 1 on blocks of 16, fully reducing.
        #[target_feature(enable = $feat)]
        fn fwd_tail(c: &Ctx, a: &mut [u64], w: &[u64], ws: &[u64]) {
            let n = a.len();
            assert!(n.is_multiple_of(16) && n >= 16 && w.len() == n && ws.len() == n);
            let [n4p, n4q] = NAT_TO_4.map(|i| constant(&i));
            let [t42p, t42q] = T4_TO_2.map(|i| constant(&i));
            let [t21p, t21q] = T2_TO_1.map(|i| constant(&i));
            let [t1np, t1nq] = T1_TO_NAT.map(|i| constant(&i));
            let (sp4, sp2) = (constant(&SPREAD4), constant(&SPREAD2));
            let (d, wp, sp) = (a.as_mut_ptr(), w.as_ptr(), ws.as_ptr());
            for b in 0..n / 16 {
                // SAFETY: block `b` is `16b..16b + 16 <= n`; the twiddles read are
                // `n/16 + b < n/8`, `n/8 + 2b + 2 <= n/4`, `n/4 + 4b + 4 <= n/2` and
                // `n/2 + 8b + 8 <= n`, all inside `w` and `ws` (length `n`).
                unsafe {
                    let d = d.add(16 * b);
                    let (v0, v1) = (load(d), load(d.add(8)));
                    let k = n / 16 + b;
                    let tw = c.tw_splat(*wp.add(k), *sp.add(k));
                    let (v0, v1) = fwd_bf(c, v0, v1, &tw);

                    let (x, y) = (perm(v0, n4p, v1), perm(v0, n4q, v1));
                    let k = n / 8 + 2 * b;
                    let tw = c.tw_vec(spread::<2>(wp.add(k), sp4), spread::<2>(sp.add(k), sp4));
                    let (x, y) = fwd_bf(c, x, y, &tw);

                    let (x, y) = (perm(x, t42p, y), perm(x, t42q, y));
                    let k = n / 4 + 4 * b;
                    let tw = c.tw_vec(spread::<4>(wp.add(k), sp2), spread::<4>(sp.add(k), sp2));
                    let (x, y) = fwd_bf(c, x, y, &tw);

                    let (x, y) = (perm(x, t21p, y), perm(x, t21q, y));
                    let k = n / 2 + 8 * b;
                    let tw = c.tw_vec(load(wp.add(k)), load(sp.add(k)));
                    let (x, y) = fwd_bf_last(c, x, y, &tw);

                    store(d, perm(x, t1np, y));
                    store(d.add(8), perm(x, t1nq, y));
                }
            }
        }

        /// Inverse stages with half-span 1, 2, 4, 8 on blocks of 16.
        #[target_feature(enable = $feat)]
        fn inv_head(c: &Ctx, a: &mut [u64], w: &[u64], ws: &[u64]) {
            let n = a.len();
            assert!(n.is_multiple_of(16) && n >= 16 && w.len() == n && ws.len() == n);
            let [n1p, n1q] = NAT_TO_1.map(|i| constant(&i));
            let [t12p, t12q] = T1_TO_2.map(|i| constant(&i));
            let [t24p, t24q] = T2_TO_4.map(|i| constant(&i));
            let [t4np, t4nq] = T4_TO_NAT.map(|i| constant(&i));
            let (sp4, sp2) = (constant(&SPREAD4), constant(&SPREAD2));
            let (d, wp, sp) = (a.as_mut_ptr(), w.as_ptr(), ws.as_ptr());
            for b in 0..n / 16 {
                // SAFETY: as in `fwd_tail`: the block and the twiddles read lie inside `a`, `w`
                // and `ws`.
                unsafe {
                    let d = d.add(16 * b);
                    let (v0, v1) = (load(d), load(d.add(8)));

                    let (x, y) = (perm(v0, n1p, v1), perm(v0, n1q, v1));
                    let k = n / 2 + 8 * b;
                    let tw = c.tw_vec(load(wp.add(k)), load(sp.add(k)));
                    let (x, y) = inv_bf(c, x, y, &tw);

                    let (x, y) = (perm(x, t12p, y), perm(x, t12q, y));
                    let k = n / 4 + 4 * b;
                    let tw = c.tw_vec(spread::<4>(wp.add(k), sp2), spread::<4>(sp.add(k), sp2));
                    let (x, y) = inv_bf(c, x, y, &tw);

                    let (x, y) = (perm(x, t24p, y), perm(x, t24q, y));
                    let k = n / 8 + 2 * b;
                    let tw = c.tw_vec(spread::<2>(wp.add(k), sp4), spread::<2>(sp.add(k), sp4));
                    let (x, y) = inv_bf(c, x, y, &tw);

                    let (v0, v1) = (perm(x, t4np, y), perm(x, t4nq, y));
                    let k = n / 16 + b;
                    let tw = c.tw_splat(*wp.add(k), *sp.add(k));
                    let (v0, v1) = inv_bf(c, v0, v1, &tw);
                    store(d, v0);
                    store(d.add(8), v1);
                }
            }
        }
    };
}

/// AVX-512 IFMA: Shoup products in 52-bit limbs, for primes below `2^50`.
pub(super) mod ifma {
    avx512_common!("avx512f,avx512dq,avx512ifma");
    simd_drivers!("avx512f,avx512dq,avx512ifma", fwd_shoup52, inv_shoup52);

    /// A twiddle `w < q` and `floor(w * 2^52 / q)`, per lane.
    #[derive(Clone, Copy)]
    struct Tw {
        w: V,
        ws: V,
    }

    struct Ctx {
        q: V,
        two_q: V,
        /// `2^52 - q`.
        neg_q: V,
        mask52: V,
        zero: V,
    }

    impl Ctx {
        #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
        #[inline]
        fn new(q: u64) -> Self {
            debug_assert!(q < 1 << 50);
            Self {
                q: _mm512_set1_epi64(q as i64),
                two_q: _mm512_set1_epi64(2 * q as i64),
                neg_q: _mm512_set1_epi64(((1u64 << 52) - q) as i64),
                mask52: _mm512_set1_epi64(((1u64 << 52) - 1) as i64),
                zero: _mm512_setzero_si512(),
            }
        }

        #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
        #[inline]
        fn tw_splat(&self, w: u64, ws: u64) -> Tw {
            Tw {
                w: _mm512_set1_epi64(w as i64),
                ws: _mm512_set1_epi64(ws as i64),
            }
        }

        #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
        #[inline]
        fn tw_vec(&self, w: V, ws: V) -> Tw {
            Tw { w, ws }
        }

        /// `a * w mod q` in `[0, 2q)` for `a < 2^52`: with `e = floor(a * ws / 2^52)`,
        /// `a * w - e * q` lies in `[0, 2q)`, so it equals its value modulo `2^52`.
        #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
        #[inline]
        fn mul(&self, a: V, t: &Tw) -> V {
            let e = _mm512_madd52hi_epu64(self.zero, a, t.ws);
            let lo = _mm512_madd52lo_epu64(self.zero, a, t.w);
            _mm512_and_si512(_mm512_madd52lo_epu64(lo, e, self.neg_q), self.mask52)
        }
    }
}

/// AVX-512F + DQ: 64-bit Shoup products, for any supported prime.
pub(crate) mod wide {
    avx512_common!("avx512f,avx512dq");
    simd_drivers!("avx512f,avx512dq", fwd_shoup, inv_shoup);

    /// A twiddle `w < q`, `ws = floor(w * 2^64 / q)` and `ws >> 32`, per lane.
    #[derive(Clone, Copy)]
    struct Tw {
        w: V,
        ws: V,
        ws_hi: V,
    }

    struct Ctx {
        q: V,
        two_q: V,
        mask32: V,
    }

    /// `vpmuludq`: the products of the low 32-bit halves of each lane.
    ///
    /// Inline assembly rather than `_mm512_mul_epu32`: that intrinsic is plain IR (mask, then
    /// multiply), which LLVM turns into `vpandq` + `vpmullq` when it knows one operand's high
    /// half is zero, and `vpmullq` is the slower multiplier on current cores.
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    fn mul32(a: V, b: V) -> V {
        let r: V;
        // SAFETY: `vpmuludq` reads two vector registers and writes a third; it touches no
        // memory, stack or flags, and the enclosing function requires AVX-512F.
        unsafe {
            core::arch::asm!(
                "vpmuludq {r}, {a}, {b}",
                r = lateout(zmm_reg) r,
                a = in(zmm_reg) a,
                b = in(zmm_reg) b,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        r
    }

    impl Ctx {
        #[target_feature(enable = "avx512f,avx512dq")]
        #[inline]
        fn new(q: u64) -> Self {
            Self {
                q: _mm512_set1_epi64(q as i64),
                two_q: _mm512_set1_epi64(2 * q as i64),
                mask32: _mm512_set1_epi64(0xffff_ffff),
            }
        }

        #[target_feature(enable = "avx512f,avx512dq")]
        #[inline]
        fn tw_splat(&self, w: u64, ws: u64) -> Tw {
            Tw {
                w: _mm512_set1_epi64(w as i64),
                ws: _mm512_set1_epi64(ws as i64),
                ws_hi: _mm512_set1_epi64((ws >> 32) as i64),
            }
        }

        #[target_feature(enable = "avx512f,avx512dq")]
        #[inline]
        fn tw_vec(&self, w: V, ws: V) -> Tw {
            Tw {
                w,
                ws,
                ws_hi: _mm512_srli_epi64::<32>(ws),
            }
        }

        /// `a * w mod q` in `[0, 2q)`: Shoup's product with the estimate `e` taken from three
        /// 32x32-bit products, then `a * w - e * q` modulo `2^64`, then one conditional
        /// subtraction of `2q`.
        ///
        /// With `a = a1 2^32 + a0` and `ws = s1 2^32 + s0`, `e = floor((a * ws - a0 s0) / 2^64)`
        /// omits the low product `a0 s0 < 2^64`, so `e` is `floor(a * ws / 2^64)` or one less:
        /// `a * w - e * q` lies in `[0, 3q)` (below `2^64` for `q < 2^62`), and subtracting `2q`
        /// where it is at least `2q` brings it to `[0, 2q)`. The vector multiplier is the
        /// bottleneck, so trading a multiplication for a `vpminuq` pays.
        #[target_feature(enable = "avx512f,avx512dq")]
        #[inline]
        fn mul(&self, a: V, t: &Tw) -> V {
            let a_hi = _mm512_srli_epi64::<32>(a);
            let lh = mul32(a, t.ws_hi);
            let hl = mul32(a_hi, t.ws);
            let hh = mul32(a_hi, t.ws_hi);
            // (lh mod 2^32) + hl < 2^64: no carry is lost.
            let mid = _mm512_add_epi64(hl, _mm512_and_si512(lh, self.mask32));
            let e = _mm512_add_epi64(
                _mm512_add_epi64(hh, _mm512_srli_epi64::<32>(lh)),
                _mm512_srli_epi64::<32>(mid),
            );
            let r = _mm512_sub_epi64(_mm512_mullo_epi64(a, t.w), _mm512_mullo_epi64(e, self.q));
            reduce(r, self.two_q)
        }
    }

    /// What [`dot_constants`] writes from the sum `y` and what `out` held, `x`.
    #[derive(Clone, Copy)]
    pub(crate) enum Finish {
        /// `y`.
        Store,
        /// `((x + h) - y) * w mod q`, with `ws = floor(w 2^64 / q)`: the last step of ModDown.
        /// `x`, `h`, `w` below `q`.
        SubScale { h: u64, w: u64, ws: u64 },
    }

    /// `out[c] = (sum_i src[i * stride + c] * w_i) mod q` for every `c < out.len()`, canonical,
    /// or that sum combined with `out[c]` as `finish` says:
    /// the inner loop of a fast base conversion (HPS19, equation (2)) with `tw[i] = (w_i,
    /// floor(w_i 2^64 / q))`, `w_i < q < 2^62`, and source words of any 64-bit value. Each
    /// product is a Shoup product in `[0, 2q)` ([`Ctx::mul`]); the running sum stays in
    /// `[0, 2q)` by one conditional subtraction per term, and a last one makes it canonical.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and DQ, and `src` must be valid for reads of every
    /// `src[i * stride + c]`, `i < tw.len()`, `c < out.len()`.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(crate) unsafe fn dot_constants(
        src: *const u64,
        stride: usize,
        tw: &[(u64, u64)],
        q: u64,
        out: &mut [u64],
        finish: Finish,
    ) {
        debug_assert!(q < 1 << 62 && tw.iter().all(|&(w, _)| w < q));
        let ctx = Ctx::new(q);
        let qv = _mm512_set1_epi64(q as i64);
        let len = out.len();
        let body = len - len % LANES;
        let dst = out.as_mut_ptr();
        let mut c = 0;
        while c < body {
            let mut acc = _mm512_setzero_si512();
            for (i, &(w, ws)) in tw.iter().enumerate() {
                // SAFETY: c + 8 <= out.len(), so the eight words are within the caller's range.
                let a = unsafe { load(src.add(i * stride + c)) };
                acc = reduce(add(acc, ctx.mul(a, &ctx.tw_splat(w, ws))), ctx.two_q);
            }
            let y = reduce(acc, qv);
            let v = match finish {
                Finish::Store => y,
                Finish::SubScale { h, w, ws } => {
                    // SAFETY: c + 8 <= out.len().
                    let x = unsafe { load(dst.add(c)) };
                    let s = reduce(add(x, _mm512_set1_epi64(h as i64)), qv);
                    let d = reduce(add(sub(s, y), qv), qv);
                    reduce(ctx.mul(d, &ctx.tw_splat(w, ws)), qv)
                }
            };
            // SAFETY: c + 8 <= out.len().
            unsafe { store(dst.add(c), v) };
            c += LANES;
        }
        let q128 = u128::from(q);
        for (c, o) in out.iter_mut().enumerate().skip(body) {
            let mut y = 0u128;
            for (i, &(w, _)) in tw.iter().enumerate() {
                // SAFETY: c < out.len(), within the caller's range.
                let a = unsafe { *src.add(i * stride + c) };
                y = (y + u128::from(a) * u128::from(w)) % q128;
            }
            *o = match finish {
                Finish::Store => y as u64,
                Finish::SubScale { h, w, .. } => {
                    let d = (u128::from(*o) + u128::from(h) + q128 - y) % q128;
                    (d * u128::from(w) % q128) as u64
                }
            };
        }
    }

    /// `out[c] = ((src[c] + h) mod q) * w mod q`, plus `out[c]` modulo `q` when `accumulate`,
    /// for `c < len`, canonical; `ws = floor(w 2^64 / q)`, `w, h < q < 2^62`, and `src[c] < q`
    /// where `h > 0` (any 64-bit word otherwise). A constant's Shoup product, eight at a time.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and DQ; `src` must be valid for `len` reads and `out` for
    /// `len` reads and writes. `out` may equal `src` (each word is read before it is written).
    #[target_feature(enable = "avx512f,avx512dq")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn mul_constant(
        src: *const u64,
        h: u64,
        w: u64,
        ws: u64,
        q: u64,
        out: *mut u64,
        len: usize,
        accumulate: bool,
    ) {
        debug_assert!(q < 1 << 62 && w < q && h < q);
        let ctx = Ctx::new(q);
        let qv = _mm512_set1_epi64(q as i64);
        let hv = _mm512_set1_epi64(h as i64);
        let tw = ctx.tw_splat(w, ws);
        let body = len - len % LANES;
        let mut c = 0;
        while c < body {
            // SAFETY: c + 8 <= len for both pointers (the caller's bounds).
            let mut a = unsafe { load(src.add(c)) };
            if h != 0 {
                a = reduce(add(a, hv), qv);
            }
            let mut v = reduce(ctx.mul(a, &tw), qv);
            if accumulate {
                // SAFETY: as above.
                v = reduce(add(v, unsafe { load(out.add(c)) }), qv);
            }
            // SAFETY: as above.
            unsafe { store(out.add(c), v) };
            c += LANES;
        }
        let q128 = u128::from(q);
        for c in body..len {
            // SAFETY: c < len (the caller's bounds); src[c] is read before out[c] is written.
            unsafe {
                let a = (u128::from(*src.add(c)) + u128::from(h)) % q128;
                let mut v = a * u128::from(w) % q128;
                if accumulate {
                    v = (v + u128::from(*out.add(c))) % q128;
                }
                *out.add(c) = v as u64;
            }
        }
    }
}
