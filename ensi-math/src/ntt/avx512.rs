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

/// The two passes of a rescale, for a module whose `Ctx` multiplies by a Shoup constant of
/// `$shift` bits (`ifma`: 52, `wide`: 64): the same code over the two multipliers.
///
/// The rescale's two steps around its NTTs. `reduce_sub`: `out[c] = ((src[c] mod q) - h) mod q`,
/// canonical, for `h < q` and source words the module's `Ctx::mul` accepts (below `2^52` for
/// `ifma`, any for `wide`): a residue of a larger prime brought to `q` and shifted (safety: the
/// CPU supports `$feat`, `q` below the module's bound, `src` valid for `len` reads and `out` for
/// `len` writes, `out` equal to `src` or not overlapping it). `forward_sub_scale`: the forward
/// NTT with `(x - NTT) w` folded into its last pass (its own documentation).
macro_rules! rescale_kernels {
    ($feat:literal, $shift:literal) => {
        /// See `rescale_kernels!`.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn reduce_sub(
            src: *const u64,
            h: u64,
            q: u64,
            out: *mut u64,
            len: usize,
        ) {
            debug_assert!(h < q);
            let ctx = Ctx::new(q);
            let t1 = ctx.tw_splat(1, ((1u128 << $shift) / u128::from(q)) as u64);
            let hv = _mm512_set1_epi64(h as i64);
            let body = len - len % LANES;
            let mut c = 0;
            while c < body {
                // SAFETY: c + 8 <= len for both pointers (the caller's bounds).
                let x = reduce(ctx.mul(unsafe { load(src.add(c)) }, &t1), ctx.q);
                let v = reduce(add(sub(x, hv), ctx.q), ctx.q);
                // SAFETY: as above.
                unsafe { store(out.add(c), v) };
                c += LANES;
            }
            for c in body..len {
                // SAFETY: c < len (the caller's bounds); src[c] is read before out[c] is written.
                unsafe { *out.add(c) = (*src.add(c) % q + q - h) % q };
            }
        }

        /// `out[k] = (x[k] - NTT(a)[k]) w mod q`, canonical, for residues below `q` and
        /// `w < q`: the forward transform of `a` (left holding intermediate values) with the
        /// rescale's `(x - t) w` folded into its last pass, so the transform is never stored
        /// and the reads of `x` and the (streamed) writes of `out` overlap its arithmetic.
        ///
        /// # Safety
        /// The CPU must support `$feat`; `plan` built for this backend; `a`, `x` and `out`
        /// of `plan`'s degree (at least `MIN_N`), `out` not overlapping `a` or `x`.
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn forward_sub_scale(
            plan: &crate::ntt::NttPlan,
            a: &mut [u64],
            x: *const u64,
            w: u64,
            out: *mut u64,
        ) {
            let n = a.len();
            let q = plan.modulus().q();
            debug_assert!(w < q && n >= MIN_N);
            let c = Ctx::new(q);
            let (tw, tws) = fwd_tables(plan);
            assert!(tw.len() == n && tws.len() == n);
            fwd_broadcast(&c, a, tw, tws);
            let sub = SubScale {
                x,
                out,
                tw: c.tw_splat(w, ((u128::from(w) << $shift) / u128::from(q)) as u64),
                stream: (out as usize).is_multiple_of(64),
            };
            // SAFETY: `x` and `out` hold `n` words (the caller).
            unsafe { fwd_tail_into::<true>(&c, a, tw, tws, Some(&sub)) };
            if sub.stream {
                _mm_sfence();
            }
        }
    };
}

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
        /// Radix-8 broadcast passes (32 registers hold a pass's vectors and twiddles).
        const RADIX8: bool = true;

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

        /// Coefficients gathered ahead of the arithmetic by the key-switch kernels.
        const GATHER_BLOCK: usize = 64;

        /// `buf[j][k] = src[j][min(perm[start + k], clamp)]` for `k < GATHER_BLOCK` and every
        /// source limb `j`: the gathers of a block issued back to back, so their cache misses
        /// overlap instead of waiting behind the arithmetic.
        ///
        /// # Safety
        /// `perm[start..start + GATHER_BLOCK]` must be readable, every source limb must hold
        /// more than `clamp` words, and `buf` at least `src.len()` rows.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn gather_block(
            src: &[&[u64]],
            perm: &[u32],
            start: usize,
            clamp: __m256i,
            buf: &mut [[u64; GATHER_BLOCK]],
        ) {
            let mut k = 0;
            while k < GATHER_BLOCK {
                // SAFETY: start + k + 8 <= start + GATHER_BLOCK (the caller's range of `perm`);
                // indices are clamped to `clamp`, below every limb's length; `buf[j]` has
                // room for `k + 8 <= GATHER_BLOCK` words.
                unsafe {
                    let idx = _mm256_min_epu32(
                        _mm256_loadu_si256(perm.as_ptr().add(start + k).cast()),
                        clamp,
                    );
                    for (row, limb) in buf.iter_mut().zip(src) {
                        let v = _mm512_i32gather_epi64::<8>(idx, limb.as_ptr().cast());
                        store(row.as_mut_ptr().add(k), v);
                    }
                }
                k += LANES;
            }
        }

        /// The gathers of the block that starts at `c`, where one starts and fits in `len`;
        /// returns whether the words `c..c + 8` of every digit are in `buf` (else
        /// [`digit_words`] gathers or loads them itself).
        ///
        /// # Safety
        /// As for [`gather_block`], with `perm` of length `len`.
        #[target_feature(enable = $feat)]
        #[inline]
        unsafe fn prepare_block(
            src: &[&[u64]],
            perm: Option<&[u32]>,
            c: usize,
            len: usize,
            clamp: __m256i,
            buf: &mut [[u64; GATHER_BLOCK]],
        ) -> bool {
            let start = c - c % GATHER_BLOCK;
            let Some(p) = perm else { return false };
            if start + GATHER_BLOCK > len {
                return false;
            }
            if c == start {
                // SAFETY: the block lies within `perm` (checked); the caller's other bounds.
                unsafe { gather_block(src, p, c, clamp, buf) };
            }
            true
        }

        /// Words `c..c + 8` of digit `j`, permuted by `perm`: from `buf` when `gathered`, else
        /// by a gather (indices clamped to `clamp`) or, without a permutation, a load.
        ///
        /// # Safety
        /// `c + 8` within `perm` and the digit limbs; every limb longer than `clamp`.
        #[target_feature(enable = $feat)]
        #[inline]
        #[allow(clippy::too_many_arguments)]
        unsafe fn digit_words(
            src: &[&[u64]],
            j: usize,
            c: usize,
            perm: Option<&[u32]>,
            clamp: __m256i,
            buf: &[[u64; GATHER_BLOCK]],
            gathered: bool,
        ) -> V {
            // SAFETY: the caller's bounds; gathered indices are clamped.
            unsafe {
                match perm {
                    _ if gathered => load(buf[j].as_ptr().add(c % GATHER_BLOCK)),
                    Some(p) => {
                        let idx =
                            _mm256_min_epu32(_mm256_loadu_si256(p.as_ptr().add(c).cast()), clamp);
                        _mm512_i32gather_epi64::<8>(idx, src[j].as_ptr().cast())
                    }
                    None => load(src[j].as_ptr().add(c)),
                }
            }
        }

        /// Forward stages with half-span 8, 4, 2, 1 on blocks of 16, fully reducing. `TB`
        /// blocks go through each stage side by side (their dependency chains interleaved);
        /// with fewer blocks than that, the last is repeated (same inputs, same outputs).
        #[target_feature(enable = $feat)]
        fn fwd_tail(c: &Ctx, a: &mut [u64], w: &[u64], ws: &[u64]) {
            // SAFETY: no epilogue: the stores go back into `a`.
            unsafe { fwd_tail_into::<false>(c, a, w, ws, None) }
        }

        /// [`fwd_tail`], its results written back into `a`, or with `SUB` handed to `sub`'s
        /// epilogue instead (`a` then holds intermediate values).
        ///
        /// # Safety
        /// With `SUB`, `sub` must be `Some` and valid for `a.len()` words (see [`SubScale`]).
        #[target_feature(enable = $feat)]
        unsafe fn fwd_tail_into<const SUB: bool>(
            c: &Ctx,
            a: &mut [u64],
            w: &[u64],
            ws: &[u64],
            sub: Option<&SubScale>,
        ) {
            let n = a.len();
            assert!(n.is_multiple_of(16) && n >= 16 && w.len() == n && ws.len() == n);
            let [n4p, n4q] = NAT_TO_4.map(|i| constant(&i));
            let [t42p, t42q] = T4_TO_2.map(|i| constant(&i));
            let [t21p, t21q] = T2_TO_1.map(|i| constant(&i));
            let [t1np, t1nq] = T1_TO_NAT.map(|i| constant(&i));
            let (sp4, sp2) = (constant(&SPREAD4), constant(&SPREAD2));
            let (d, wp, sp) = (a.as_mut_ptr(), w.as_ptr(), ws.as_ptr());
            let blocks = n / 16;
            for g in 0..blocks.div_ceil(TB) {
                let bs: [usize; TB] = core::array::from_fn(|k| (TB * g + k).min(blocks - 1));
                // SAFETY: blocks `b` are `16b..16b + 16 <= n`; the twiddles read are
                // `n/16 + b < n/8`, `n/8 + 2b + 2 <= n/4`, `n/4 + 4b + 4 <= n/2` and
                // `n/2 + 8b + 8 <= n`, all inside `w` and `ws` (length `n`).
                unsafe {
                    let mut x = bs.map(|b| load(d.add(16 * b)));
                    let mut y = bs.map(|b| load(d.add(16 * b + 8)));
                    for (k, &b) in bs.iter().enumerate() {
                        let i = n / 16 + b;
                        let tw = c.tw_splat(*wp.add(i), *sp.add(i));
                        (x[k], y[k]) = fwd_bf(c, x[k], y[k], &tw);
                    }
                    for (k, &b) in bs.iter().enumerate() {
                        (x[k], y[k]) = (perm(x[k], n4p, y[k]), perm(x[k], n4q, y[k]));
                        let i = n / 8 + 2 * b;
                        let tw = c.tw_vec(spread::<2>(wp.add(i), sp4), spread::<2>(sp.add(i), sp4));
                        (x[k], y[k]) = fwd_bf(c, x[k], y[k], &tw);
                    }
                    for (k, &b) in bs.iter().enumerate() {
                        (x[k], y[k]) = (perm(x[k], t42p, y[k]), perm(x[k], t42q, y[k]));
                        let i = n / 4 + 4 * b;
                        let tw = c.tw_vec(spread::<4>(wp.add(i), sp2), spread::<4>(sp.add(i), sp2));
                        (x[k], y[k]) = fwd_bf(c, x[k], y[k], &tw);
                    }
                    for (k, &b) in bs.iter().enumerate() {
                        (x[k], y[k]) = (perm(x[k], t21p, y[k]), perm(x[k], t21q, y[k]));
                        let i = n / 2 + 8 * b;
                        let tw = c.tw_vec(load(wp.add(i)), load(sp.add(i)));
                        (x[k], y[k]) = fwd_bf_last(c, x[k], y[k], &tw);
                    }
                    for (k, &b) in bs.iter().enumerate() {
                        let (lo, hi) = (perm(x[k], t1np, y[k]), perm(x[k], t1nq, y[k]));
                        match sub {
                            Some(e) if SUB => {
                                e.put(c, 16 * b, lo);
                                e.put(c, 16 * b + 8, hi);
                            }
                            _ => {
                                store(d.add(16 * b), lo);
                                store(d.add(16 * b + 8), hi);
                            }
                        }
                    }
                }
            }
        }

        /// The epilogue of [`fwd_tail_into`] for a rescale: the transform `y` (canonical) is
        /// not stored; `out[k] = (x[k] - y[k]) w mod q` is, with non-temporal stores where
        /// `out` is 64-byte aligned.
        struct SubScale {
            x: *const u64,
            out: *mut u64,
            tw: Tw,
            stream: bool,
        }

        impl SubScale {
            /// Words `off..off + 8`.
            ///
            /// # Safety
            /// `x` and `out` valid for those words.
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn put(&self, c: &Ctx, off: usize, y: V) {
                // SAFETY: the caller's bounds; a streamed store is 64-byte aligned (`out` is,
                // and `off` is a multiple of 8 words).
                unsafe {
                    let d = reduce(add(sub(load(self.x.add(off)), y), c.q), c.q);
                    let v = reduce(c.mul(d, &self.tw), c.q);
                    if self.stream {
                        _mm512_stream_si512(self.out.add(off).cast(), v);
                    } else {
                        store(self.out.add(off), v);
                    }
                }
            }
        }

        /// Blocks of [`fwd_tail`] in flight together.
        const TB: usize = 8;

        /// Inverse stages with half-span 1, 2, 4, 8 on blocks of 16, `TB` blocks side by side
        /// as in [`fwd_tail`].
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
            let blocks = n / 16;
            for g in 0..blocks.div_ceil(TB) {
                let bs: [usize; TB] = core::array::from_fn(|k| (TB * g + k).min(blocks - 1));
                // SAFETY: as in `fwd_tail`: the blocks and the twiddles read lie inside `a`,
                // `w` and `ws`.
                unsafe {
                    let mut x = bs.map(|b| load(d.add(16 * b)));
                    let mut y = bs.map(|b| load(d.add(16 * b + 8)));
                    for (k, &b) in bs.iter().enumerate() {
                        (x[k], y[k]) = (perm(x[k], n1p, y[k]), perm(x[k], n1q, y[k]));
                        let i = n / 2 + 8 * b;
                        let tw = c.tw_vec(load(wp.add(i)), load(sp.add(i)));
                        (x[k], y[k]) = inv_bf(c, x[k], y[k], &tw);
                    }
                    for (k, &b) in bs.iter().enumerate() {
                        (x[k], y[k]) = (perm(x[k], t12p, y[k]), perm(x[k], t12q, y[k]));
                        let i = n / 4 + 4 * b;
                        let tw = c.tw_vec(spread::<4>(wp.add(i), sp2), spread::<4>(sp.add(i), sp2));
                        (x[k], y[k]) = inv_bf(c, x[k], y[k], &tw);
                    }
                    for (k, &b) in bs.iter().enumerate() {
                        (x[k], y[k]) = (perm(x[k], t24p, y[k]), perm(x[k], t24q, y[k]));
                        let i = n / 8 + 2 * b;
                        let tw = c.tw_vec(spread::<2>(wp.add(i), sp4), spread::<2>(sp.add(i), sp4));
                        (x[k], y[k]) = inv_bf(c, x[k], y[k], &tw);
                    }
                    for (k, &b) in bs.iter().enumerate() {
                        (x[k], y[k]) = (perm(x[k], t4np, y[k]), perm(x[k], t4nq, y[k]));
                        let i = n / 16 + b;
                        let tw = c.tw_splat(*wp.add(i), *sp.add(i));
                        (x[k], y[k]) = inv_bf(c, x[k], y[k], &tw);
                    }
                    // Stores after every load of the group: a repeated last block reads its
                    // input before either copy writes the same output.
                    for (k, &b) in bs.iter().enumerate() {
                        store(d.add(16 * b), x[k]);
                        store(d.add(16 * b + 8), y[k]);
                    }
                }
            }
        }
    };
}

/// AVX-512 IFMA: Shoup products in 52-bit limbs, for primes below `2^50`.
pub(crate) mod ifma {
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

    rescale_kernels!("avx512f,avx512dq,avx512ifma", 52);

    /// [`super::wide::dot_pair`] for primes below `2^50`, in 52-bit limbs: each term is two
    /// `vpmadd52{lo,hi}uq` into a low and a high accumulator (`d k = hi 2^52 + lo` with both
    /// factors below `2^50`), and the sum `hi 2^52 + lo` is reduced by two Shoup products,
    /// `hi * [2^52]_q + lo * 1`.
    ///
    /// # Safety
    /// As for [`super::wide::dot_pair`], and the CPU must support AVX-512 IFMA; `q < 2^50` and
    /// at most 15 terms (the high accumulator stays below `2^52`).
    #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
    pub(crate) unsafe fn dot_pair(
        src: &[&[u64]],
        kb: &[&[u64]],
        ka: &[&[u64]],
        perm: Option<&[u32]>,
        q: u64,
        out_b: &mut [u64],
        out_a: &mut [u64],
    ) {
        let len = out_b.len();
        debug_assert!(q < 1 << 50 && src.len() <= 15 && len.is_multiple_of(LANES));
        let ctx = Ctx::new(q);
        let shoup52 = |w: u64| ((u128::from(w) << 52) / u128::from(q)) as u64;
        let r52 = ((1u128 << 52) % u128::from(q)) as u64;
        let (t52, t1) = (ctx.tw_splat(r52, shoup52(r52)), ctx.tw_splat(1, shoup52(1)));
        let clamp = _mm256_set1_epi32(src.first().map_or(0, |s| s.len() as i32 - 1));
        let finish = |lo: V, hi: V| {
            let hi = add(hi, _mm512_srli_epi64::<52>(lo));
            let lo = _mm512_and_si512(lo, ctx.mask52);
            let r = reduce(add(ctx.mul(hi, &t52), ctx.mul(lo, &t1)), ctx.two_q);
            reduce(r, ctx.q)
        };
        let mut buf = [[0u64; GATHER_BLOCK]; 15];
        let mut c = 0;
        while c < len {
            // SAFETY: c + 8 <= len for `perm`, the key limbs and the outputs (the caller);
            // gathered indices are clamped below the source limbs' length.
            unsafe {
                let gathered = prepare_block(src, perm, c, len, clamp, &mut buf);
                let (mut lb, mut hb, mut la, mut ha) = (ctx.zero, ctx.zero, ctx.zero, ctx.zero);
                for j in 0..src.len() {
                    let d = digit_words(src, j, c, perm, clamp, &buf, gathered);
                    let (b, a) = (load(kb[j].as_ptr().add(c)), load(ka[j].as_ptr().add(c)));
                    lb = _mm512_madd52lo_epu64(lb, d, b);
                    hb = _mm512_madd52hi_epu64(hb, d, b);
                    la = _mm512_madd52lo_epu64(la, d, a);
                    ha = _mm512_madd52hi_epu64(ha, d, a);
                }
                store(out_b.as_mut_ptr().add(c), finish(lb, hb));
                store(out_a.as_mut_ptr().add(c), finish(la, ha));
            }
            c += LANES;
        }
    }
}

/// AVX-512F + DQ: 64-bit Shoup products, for any supported prime.
pub(crate) mod wide {
    avx512_common!("avx512f,avx512dq");
    simd_drivers!("avx512f,avx512dq", fwd_shoup, inv_shoup);
    use crate::rns::convert::Combine;

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
        /// With `a = a1 2^32 + a0` and `ws = s1 2^32 + s0`,
        /// `floor(a * ws / 2^64) = a1 s1 + (a1 s0 >> 32) + (a0 s1 >> 32) + c`, where the carry
        /// `c` of the three low halves (`a1 s0 mod 2^32`, `a0 s1 mod 2^32`, `a0 s0 >> 32`, each
        /// below `2^32`) is 0, 1 or 2. `e` omits it, so `a * w - e * q` lies in `[0, 4q)` (below
        /// `2^64` for `q < 2^62`), and subtracting `2q` where it is at least `2q` brings it to
        /// `[0, 2q)`. The vector units are the bottleneck, so dropping the low product and the
        /// carry's two operations pays for the wider range.
        #[target_feature(enable = "avx512f,avx512dq")]
        #[inline]
        fn mul(&self, a: V, t: &Tw) -> V {
            let a_hi = _mm512_srli_epi64::<32>(a);
            let lh = mul32(a, t.ws_hi);
            let hl = mul32(a_hi, t.ws);
            let hh = mul32(a_hi, t.ws_hi);
            let e = _mm512_add_epi64(
                hh,
                _mm512_add_epi64(_mm512_srli_epi64::<32>(lh), _mm512_srli_epi64::<32>(hl)),
            );
            let r = _mm512_sub_epi64(_mm512_mullo_epi64(a, t.w), _mm512_mullo_epi64(e, self.q));
            reduce(r, self.two_q)
        }
    }

    /// `out[c] = (sum_i src[i * stride + c] * w_i) mod q` for every `c < out.len()`, canonical,
    /// or that sum combined with `out[c]` as `combine` says ([`Combine`]):
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
        combine: Combine,
    ) {
        debug_assert!(q < 1 << 62 && tw.iter().all(|&(w, _)| w < q));
        let ctx = Ctx::new(q);
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
            let y = reduce(acc, ctx.q);
            let v = match combine {
                Combine::Store => y,
                Combine::SubScale { h, w, w_shoup } => {
                    // SAFETY: c + 8 <= out.len().
                    let x = unsafe { load(dst.add(c)) };
                    let s = reduce(add(x, _mm512_set1_epi64(h as i64)), ctx.q);
                    let d = reduce(add(sub(s, y), ctx.q), ctx.q);
                    reduce(ctx.mul(d, &ctx.tw_splat(w, w_shoup)), ctx.q)
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
            *o = match combine {
                Combine::Store => y as u64,
                Combine::SubScale { h, w, .. } => {
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
        let hv = _mm512_set1_epi64(h as i64);
        let tw = ctx.tw_splat(w, ws);
        let body = len - len % LANES;
        let mut c = 0;
        while c < body {
            // SAFETY: c + 8 <= len for both pointers (the caller's bounds).
            let mut a = unsafe { load(src.add(c)) };
            if h != 0 {
                a = reduce(add(a, hv), ctx.q);
            }
            let mut v = reduce(ctx.mul(a, &tw), ctx.q);
            if accumulate {
                // SAFETY: as above.
                v = reduce(add(v, unsafe { load(out.add(c)) }), ctx.q);
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

    /// `out[c] = a[c] * b[c] mod q`, plus `out[c]` modulo `q` when `accumulate`, for `c < len`,
    /// canonical, with residues `a[c], b[c] < q < 2^62`: the pointwise product for primes the
    /// floating-point kernel does not take (51 to 62 bits). The 128-bit product is assembled
    /// from four 32 x 32-bit `vpmuludq` products as `hi 2^64 + lo`, then reduced by two Shoup
    /// products, `hi * [2^64]_q + lo * 1` ([`Ctx::mul`], each in `[0, 2q)`).
    ///
    /// # Safety
    /// The CPU must support AVX-512F and DQ; `a` and `b` must be valid for `len` reads and `out`
    /// for `len` writes (and reads when `accumulate`). `out` may equal `a` or `b` (each word is
    /// read before it is written), but must not overlap them otherwise.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(crate) unsafe fn mul_pointwise(
        a: *const u64,
        b: *const u64,
        q: u64,
        out: *mut u64,
        len: usize,
        accumulate: bool,
    ) {
        debug_assert!(q < 1 << 62);
        let ctx = Ctx::new(q);
        let q128 = u128::from(q);
        let tw = |w: u64| ctx.tw_splat(w, ((u128::from(w) << 64) / q128) as u64);
        let (t1, t64) = (tw(1), tw(((1u128 << 64) % q128) as u64));
        let body = len - len % LANES;
        let mut c = 0;
        while c < body {
            // SAFETY: c + 8 <= len for every pointer (the caller's bounds).
            let (x, y) = unsafe { (load(a.add(c)), load(b.add(c))) };
            let (x1, y1) = (_mm512_srli_epi64::<32>(x), _mm512_srli_epi64::<32>(y));
            let ll = mul32(x, y);
            let lh = mul32(x, y1);
            let hl = mul32(x1, y);
            let hh = mul32(x1, y1);
            // The weight-2^32 column: the high half of `ll` and the low halves of the cross
            // products (each below 2^32, so the sum fits); its carry goes to `hi`.
            let mid = add(
                _mm512_srli_epi64::<32>(ll),
                add(
                    _mm512_and_si512(lh, ctx.mask32),
                    _mm512_and_si512(hl, ctx.mask32),
                ),
            );
            let hi = add(
                hh,
                add(
                    add(_mm512_srli_epi64::<32>(lh), _mm512_srli_epi64::<32>(hl)),
                    _mm512_srli_epi64::<32>(mid),
                ),
            );
            let lo = _mm512_or_si512(
                _mm512_slli_epi64::<32>(mid),
                _mm512_and_si512(ll, ctx.mask32),
            );
            let mut v = reduce(add(ctx.mul(hi, &t64), ctx.mul(lo, &t1)), ctx.two_q);
            if accumulate {
                // SAFETY: as above.
                v = add(v, unsafe { load(out.add(c)) });
                v = reduce(reduce(v, ctx.two_q), ctx.q);
            } else {
                v = reduce(v, ctx.q);
            }
            // SAFETY: as above.
            unsafe { store(out.add(c), v) };
            c += LANES;
        }
        for c in body..len {
            // SAFETY: c < len (the caller's bounds); inputs are read before out[c] is written.
            unsafe {
                let mut v = u128::from(*a.add(c)) * u128::from(*b.add(c)) % q128;
                if accumulate {
                    v = (v + u128::from(*out.add(c))) % q128;
                }
                *out.add(c) = v as u64;
            }
        }
    }

    rescale_kernels!("avx512f,avx512dq", 64);

    /// Partial sums of `d k` for 64-bit `d = d1 2^32 + d0`, `k = k1 2^32 + k0` split into
    /// `vpmuludq` products: `l` and `c` the low and high halves of `d0 k0` (weights `1`, `2^32`),
    /// `m1 = d0 k1` and `m2 = d1 k0` (weight `2^32`), `h = d1 k1` (weight `2^64`).
    #[derive(Clone, Copy)]
    struct Wide {
        l: V,
        c: V,
        m1: V,
        m2: V,
        h: V,
    }

    impl Wide {
        #[target_feature(enable = "avx512f,avx512dq")]
        #[inline]
        fn zero() -> Self {
            let z = _mm512_setzero_si512();
            Self {
                l: z,
                c: z,
                m1: z,
                m2: z,
                h: z,
            }
        }

        /// Adds `d k`, given `d1 = d >> 32`.
        #[target_feature(enable = "avx512f,avx512dq")]
        #[inline]
        fn add_product(&mut self, d: V, d1: V, k: V, mask32: V) {
            let k1 = _mm512_srli_epi64::<32>(k);
            let p = mul32(d, k);
            self.l = add(self.l, _mm512_and_si512(p, mask32));
            self.c = add(self.c, _mm512_srli_epi64::<32>(p));
            self.m1 = add(self.m1, mul32(d, k1));
            self.m2 = add(self.m2, mul32(d1, k));
            self.h = add(self.h, mul32(d1, k1));
        }

        /// Moves the high halves of `m1`, `m2` into `h`, leaving them below `2^32`.
        #[target_feature(enable = "avx512f,avx512dq")]
        #[inline]
        fn fold(&mut self, mask32: V) {
            self.h = add(
                self.h,
                add(
                    _mm512_srli_epi64::<32>(self.m1),
                    _mm512_srli_epi64::<32>(self.m2),
                ),
            );
            self.m1 = _mm512_and_si512(self.m1, mask32);
            self.m2 = _mm512_and_si512(self.m2, mask32);
        }
    }

    /// `out_b[c] = sum_j src_j[perm(c)] kb_j[c] mod q` and `out_a[c]` likewise with `ka`, for
    /// every `c`, canonical: the inner product of a key switch (the digits of a decomposition
    /// against the two halves of a switching key), with the automorphism's gather `perm`
    /// folded into the loads. Each product is split into four 32 x 32-bit `vpmuludq`
    /// products accumulated without reduction ([`Wide`]); the weight-`2^32` sums are folded
    /// into the weight-`2^64` one before they can overflow, and the total
    /// `l + (c + m1 + m2) 2^32 + h 2^64` is reduced by three Shoup products, by `1`,
    /// `[2^32]_q` and `[2^64]_q`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and DQ; `q < 2^62`; `src`, `kb`, `ka` have equal lengths
    /// (at most 15 terms); every key limb and `out_a` are as long as `out_b`, whose length is
    /// a multiple of 8; without `perm` every source limb is that long too, and with it `perm`
    /// is, and every source limb is nonempty and as long as the first (indices are clamped
    /// below that length). Operands are residues below `q` (others give wrong sums, not
    /// undefined behaviour).
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(crate) unsafe fn dot_pair(
        src: &[&[u64]],
        kb: &[&[u64]],
        ka: &[&[u64]],
        perm: Option<&[u32]>,
        q: u64,
        out_b: &mut [u64],
        out_a: &mut [u64],
    ) {
        let len = out_b.len();
        debug_assert!(q < 1 << 62 && src.len() <= 15 && len.is_multiple_of(LANES));
        let ctx = Ctx::new(q);
        let q128 = u128::from(q);
        let shoup = |w: u64| ((u128::from(w) << 64) / q128) as u64;
        let tw = |w: u64| ctx.tw_splat(w, shoup(w));
        let r32 = ((1u128 << 32) % q128) as u64;
        let r64 = ((1u128 << 64) % q128) as u64;
        let (t1, t32, t64) = (tw(1), tw(r32), tw(r64));
        // d0 k1 and d1 k0 are below 2^bits(q): this many fit above a value below 2^32.
        let bits = 64 - q.leading_zeros();
        let fold_every = ((1u64 << (64 - bits).min(8)) - 1) as usize;
        let clamp = _mm256_set1_epi32(src.first().map_or(0, |s| s.len() as i32 - 1));
        let finish = |mut s: Wide| {
            s.fold(ctx.mask32);
            let mid = add(s.c, add(s.m1, s.m2));
            let r = reduce(add(ctx.mul(mid, &t32), ctx.mul(s.h, &t64)), ctx.two_q);
            reduce(reduce(add(r, ctx.mul(s.l, &t1)), ctx.two_q), ctx.q)
        };
        let mut buf = [[0u64; GATHER_BLOCK]; 15];
        let mut c = 0;
        while c < len {
            // SAFETY: c + 8 <= len for `perm`, the key limbs and the outputs (the caller);
            // gathered indices are clamped below the source limbs' length.
            unsafe {
                let gathered = prepare_block(src, perm, c, len, clamp, &mut buf);
                let (mut sb, mut sa) = (Wide::zero(), Wide::zero());
                for j in 0..src.len() {
                    let d = digit_words(src, j, c, perm, clamp, &buf, gathered);
                    let d1 = _mm512_srli_epi64::<32>(d);
                    sb.add_product(d, d1, load(kb[j].as_ptr().add(c)), ctx.mask32);
                    sa.add_product(d, d1, load(ka[j].as_ptr().add(c)), ctx.mask32);
                    if (j + 1) % fold_every == 0 {
                        sb.fold(ctx.mask32);
                        sa.fold(ctx.mask32);
                    }
                }
                store(out_b.as_mut_ptr().add(c), finish(sb));
                store(out_a.as_mut_ptr().add(c), finish(sa));
            }
            c += LANES;
        }
    }

    /// `out[k] = a[k] + b[k] mod q` (or `a[k] - b[k] mod q` when `subtract`) for residues below
    /// `q < 2^63`, canonical.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and DQ; `a` and `b` valid for `out.len()` reads.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(crate) unsafe fn add_into(
        a: *const u64,
        b: *const u64,
        q: u64,
        out: &mut [core::mem::MaybeUninit<u64>],
        subtract: bool,
    ) {
        let ctx = Ctx::new(q);
        let len = out.len();
        let body = len - len % LANES;
        let dst = out.as_mut_ptr().cast::<u64>();
        // A fresh output far larger than the caches is written with non-temporal stores: no
        // read for ownership of lines that are about to be overwritten whole.
        let stream = len >= 1 << 13 && (dst as usize).is_multiple_of(64);
        let mut k = 0;
        while k < body {
            // SAFETY: k + 8 <= len for `a`, `b` and `out` (the caller); a streamed store is
            // 64-byte aligned (checked above, and k is a multiple of 8 words).
            unsafe {
                let (x, y) = (load(a.add(k)), load(b.add(k)));
                let v = if subtract {
                    reduce(add(sub(x, y), ctx.q), ctx.q)
                } else {
                    reduce(add(x, y), ctx.q)
                };
                if stream {
                    _mm512_stream_si512(dst.add(k).cast(), v);
                } else {
                    store(dst.add(k), v);
                }
            }
            k += LANES;
        }
        if stream {
            // Orders the streamed stores before any later store (and the caller's reads).
            _mm_sfence();
        }
        for (k, o) in out.iter_mut().enumerate().skip(body) {
            // SAFETY: k < len (the caller's bounds).
            let (x, y) = unsafe { (*a.add(k), *b.add(k)) };
            let v = if subtract { x + q - y } else { x + y };
            o.write(if v >= q { v - q } else { v });
        }
    }
}
