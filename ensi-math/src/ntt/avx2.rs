//! AVX2 backend, 4 lanes of 64-bit Shoup products; the high and low halves of the products are
//! assembled from 32x32-bit `vpmuludq` products.
//!
//! The stages with half-span `t = 4, 2, 1` run inside registers on blocks of 8 values held as two
//! vectors `(P, Q)`: natural order for `t = 4`, `P = [0, 1, 4, 5]` (`vperm2i128`) for `t = 2`,
//! `P = [0, 2, 4, 6]` (`vpunpck{l,h}qdq`) for `t = 1`, `Q` holding `P + t`.

/// Radix 4 only: with 16 registers the radix-8 pass spills (measured 2-4% slower).
const RADIX8: bool = false;
simd_drivers!("avx2", fwd_shoup, inv_shoup);

use core::arch::x86_64::*;

type V = __m256i;
const LANES: usize = 4;

/// # Safety
/// `p..p + 4` must be readable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load(p: *const u64) -> V {
    // SAFETY: the caller guarantees 32 readable bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// # Safety
/// `p..p + 4` must be writable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store(p: *mut u64, v: V) {
    // SAFETY: the caller guarantees 32 writable bytes; the store is unaligned.
    unsafe { _mm256_storeu_si256(p.cast(), v) }
}

/// `[p[0], p[0], p[1], p[1]]`.
///
/// # Safety
/// `p..p + 2` must be readable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn spread2(p: *const u64) -> V {
    // SAFETY: the caller guarantees 16 readable bytes; the load is unaligned.
    let v = unsafe { _mm_loadu_si128(p.cast()) };
    _mm256_permute4x64_epi64::<0b01_01_00_00>(_mm256_castsi128_si256(v))
}

#[target_feature(enable = "avx2")]
#[inline]
fn add(a: V, b: V) -> V {
    _mm256_add_epi64(a, b)
}

#[target_feature(enable = "avx2")]
#[inline]
fn sub(a: V, b: V) -> V {
    _mm256_sub_epi64(a, b)
}

/// `x - c` where `x >= c`, else `x`, for `c <= 2^63` and `x < 2c`: `x - c` has its top bit set
/// exactly when it wraps, and `blendv` selects on that bit.
#[target_feature(enable = "avx2")]
#[inline]
fn reduce(x: V, c: V) -> V {
    let t = _mm256_sub_epi64(x, c);
    _mm256_castpd_si256(_mm256_blendv_pd(
        _mm256_castsi256_pd(t),
        _mm256_castsi256_pd(x),
        _mm256_castsi256_pd(t),
    ))
}

/// A twiddle `w < q` and `ws = floor(w * 2^64 / q)`, and, in the low 32 bits of each lane, their
/// high halves (the operands `vpmuludq` reads), per lane.
#[derive(Clone, Copy)]
struct Tw {
    w: V,
    w_hi: V,
    ws: V,
    ws_hi: V,
}

struct Ctx {
    q: V,
    q_hi: V,
    two_q: V,
    mask32: V,
}

/// Each lane with its 32-bit halves swapped: `vpmuludq` then multiplies the high halves.
#[target_feature(enable = "avx2")]
#[inline]
fn swap_halves(a: V) -> V {
    _mm256_shuffle_epi32::<0b10_11_00_01>(a)
}

/// `vpmuludq`: the products of the low 32-bit halves of the lanes, as 64-bit lanes.
///
/// Issued through `asm!`: LLVM rewrites `_mm256_mul_epu32` into generic 64-bit multiplications
/// of masked operands and, on the sums of products in [`Ctx::mul`], re-lowers them with more
/// `vpmuludq` than written (11 or 13 instead of 10 per product, measured).
#[target_feature(enable = "avx2")]
#[inline]
fn mul32(a: V, b: V) -> V {
    let r: V;
    // SAFETY: `vpmuludq` on registers only (AVX2, enabled on this function): it reads and writes
    // no memory, touches no flags and writes only `r`.
    unsafe {
        core::arch::asm!(
            "vpmuludq {r}, {a}, {b}",
            r = lateout(ymm_reg) r,
            a = in(ymm_reg) a,
            b = in(ymm_reg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    r
}

impl Ctx {
    #[target_feature(enable = "avx2")]
    #[inline]
    fn new(q: u64) -> Self {
        Self {
            q: _mm256_set1_epi64x(q as i64),
            q_hi: _mm256_set1_epi32((q >> 32) as i32),
            two_q: _mm256_set1_epi64x(2 * q as i64),
            mask32: _mm256_set1_epi64x(0xffff_ffff),
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn tw_splat(&self, w: u64, ws: u64) -> Tw {
        Tw {
            w: _mm256_set1_epi64x(w as i64),
            w_hi: _mm256_set1_epi32((w >> 32) as i32),
            ws: _mm256_set1_epi64x(ws as i64),
            ws_hi: _mm256_set1_epi32((ws >> 32) as i32),
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn tw_vec(&self, w: V, ws: V) -> Tw {
        Tw {
            w,
            w_hi: swap_halves(w),
            ws,
            ws_hi: swap_halves(ws),
        }
    }

    /// `a * w mod q` in `[0, 2q)`: Shoup's estimate `e = floor(a * ws / 2^64)` from four
    /// 32x32-bit products, then `a * w - e * q` modulo `2^64` from three each.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn mul(&self, a: V, t: &Tw) -> V {
        let a_hi = swap_halves(a);
        let ll = mul32(a, t.ws);
        let lh = mul32(a, t.ws_hi);
        let hl = mul32(a_hi, t.ws);
        let hh = mul32(a_hi, t.ws_hi);
        let mid = _mm256_add_epi64(lh, _mm256_srli_epi64::<32>(ll));
        let mid2 = _mm256_add_epi64(hl, _mm256_and_si256(mid, self.mask32));
        let e = _mm256_add_epi64(
            _mm256_add_epi64(hh, _mm256_srli_epi64::<32>(mid)),
            _mm256_srli_epi64::<32>(mid2),
        );
        let e_hi = swap_halves(e);
        // a * w - e * q = (a0 w0 - e0 q0) + 2^32 (a1 w0 + a0 w1 - e1 q0 - e0 q1)  mod 2^64.
        let low = _mm256_sub_epi64(mul32(a, t.w), mul32(e, self.q));
        let cross = _mm256_sub_epi64(
            _mm256_add_epi64(mul32(a_hi, t.w), mul32(a, t.w_hi)),
            _mm256_add_epi64(mul32(e_hi, self.q), mul32(e, self.q_hi)),
        );
        _mm256_add_epi64(low, _mm256_slli_epi64::<32>(cross))
    }
}

/// Blocks of 8 the in-register stages work on at once. Their dependency chains are long (three
/// butterflies and the shuffles between them) and the blocks independent: issuing each step for
/// several blocks before the next step lets the out-of-order core overlap them (one block at a
/// time left these stages latency-bound, at about twice the cost per stage of the radix-4 passes).
const TAIL_BLOCKS: usize = 4;

/// Runs `$body` for `$i = 0, 1, .., $k - 1` (`$k <= 4`, a constant), unrolled: LLVM keeps a loop
/// over the blocks of [`fwd_tail_blocks`] and goes through the stack for the arrays.
macro_rules! unroll {
    ($k:expr, |$i:ident| $body:block) => {{
        const { assert!($k <= 4) };
        {
            let $i = 0;
            if $i < $k $body
        }
        {
            let $i = 1;
            if $i < $k $body
        }
        {
            let $i = 2;
            if $i < $k $body
        }
        {
            let $i = 3;
            if $i < $k $body
        }
    }};
}

/// Forward stages with half-span 4, 2, 1 on the `K` blocks of 8 from block `b`, fully reducing.
///
/// # Safety
/// `d..d + n` must be writable, `wp..wp + n` and `sp..sp + n` readable, `n` a multiple of 8
/// and `b + K <= n / 8`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn fwd_tail_blocks<const K: usize>(
    c: &Ctx,
    d: *mut u64,
    n: usize,
    b: usize,
    wp: *const u64,
    sp: *const u64,
) {
    let mut x = [c.q; K];
    let mut y = [c.q; K];
    unroll!(K, |i| {
        let k = n / 8 + b + i;
        // SAFETY: (here and in the blocks below) block `b + i < n/8` is `8(b + i)..8(b + i) + 8`,
        // inside the `n` values behind `d`; the twiddles read for it are `n/8 + b + i < n/4`,
        // `n/4 + 2(b + i) + 2 <= n/2` and `n/2 + 4(b + i) + 4 <= n`, all inside the `n`
        // readable values of `wp` and `sp`.
        unsafe {
            let p = d.add(8 * (b + i));
            let tw = c.tw_splat(*wp.add(k), *sp.add(k));
            (x[i], y[i]) = fwd_bf(c, load(p), load(p.add(4)), &tw);
        }
    });
    unroll!(K, |i| {
        let (v0, v1) = (x[i], y[i]);
        let k = n / 4 + 2 * (b + i);
        // SAFETY: see above.
        let tw = unsafe { c.tw_vec(spread2(wp.add(k)), spread2(sp.add(k))) };
        (x[i], y[i]) = fwd_bf(
            c,
            _mm256_permute2x128_si256::<0x20>(v0, v1),
            _mm256_permute2x128_si256::<0x31>(v0, v1),
            &tw,
        );
    });
    unroll!(K, |i| {
        let (v0, v1) = (x[i], y[i]);
        let k = n / 2 + 4 * (b + i);
        // SAFETY: see above.
        let tw = unsafe { c.tw_vec(load(wp.add(k)), load(sp.add(k))) };
        (x[i], y[i]) = fwd_bf_last(
            c,
            _mm256_unpacklo_epi64(v0, v1),
            _mm256_unpackhi_epi64(v0, v1),
            &tw,
        );
    });
    unroll!(K, |i| {
        let (v0, v1) = (
            _mm256_unpacklo_epi64(x[i], y[i]),
            _mm256_unpackhi_epi64(x[i], y[i]),
        );
        // SAFETY: see above.
        unsafe {
            let p = d.add(8 * (b + i));
            store(p, _mm256_permute2x128_si256::<0x20>(v0, v1));
            store(p.add(4), _mm256_permute2x128_si256::<0x31>(v0, v1));
        }
    });
}

/// Forward stages with half-span 4, 2, 1 on blocks of 8, fully reducing.
#[target_feature(enable = "avx2")]
fn fwd_tail(c: &Ctx, a: &mut [u64], w: &[u64], ws: &[u64]) {
    let n = a.len();
    assert!(n.is_multiple_of(8) && n >= 8 && w.len() == n && ws.len() == n);
    let (d, wp, sp) = (a.as_mut_ptr(), w.as_ptr(), ws.as_ptr());
    let mut b = 0;
    while b + TAIL_BLOCKS <= n / 8 {
        // SAFETY: `a`, `w`, `ws` have length `n`, a multiple of 8, and `b + TAIL_BLOCKS <= n/8`.
        unsafe { fwd_tail_blocks::<TAIL_BLOCKS>(c, d, n, b, wp, sp) };
        b += TAIL_BLOCKS;
    }
    while b < n / 8 {
        // SAFETY: as above, with `b + 1 <= n/8`.
        unsafe { fwd_tail_blocks::<1>(c, d, n, b, wp, sp) };
        b += 1;
    }
}

/// Inverse stages with half-span 1, 2, 4 on the `K` blocks of 8 from block `b`.
///
/// # Safety
/// As for [`fwd_tail_blocks`].
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn inv_head_blocks<const K: usize>(
    c: &Ctx,
    d: *mut u64,
    n: usize,
    b: usize,
    wp: *const u64,
    sp: *const u64,
) {
    let mut x = [c.q; K];
    let mut y = [c.q; K];
    unroll!(K, |i| {
        let k = n / 2 + 4 * (b + i);
        // SAFETY: (here and in the blocks below) as in `fwd_tail_blocks`, the blocks and the
        // twiddles read lie inside the `n` values behind `d`, `wp` and `sp`.
        unsafe {
            let p = d.add(8 * (b + i));
            let (v0, v1) = (load(p), load(p.add(4)));
            let (v0, v1) = (
                _mm256_permute2x128_si256::<0x20>(v0, v1),
                _mm256_permute2x128_si256::<0x31>(v0, v1),
            );
            let tw = c.tw_vec(load(wp.add(k)), load(sp.add(k)));
            (x[i], y[i]) = inv_bf(
                c,
                _mm256_unpacklo_epi64(v0, v1),
                _mm256_unpackhi_epi64(v0, v1),
                &tw,
            );
        }
    });
    unroll!(K, |i| {
        let k = n / 4 + 2 * (b + i);
        // SAFETY: see above.
        let tw = unsafe { c.tw_vec(spread2(wp.add(k)), spread2(sp.add(k))) };
        (x[i], y[i]) = inv_bf(
            c,
            _mm256_unpacklo_epi64(x[i], y[i]),
            _mm256_unpackhi_epi64(x[i], y[i]),
            &tw,
        );
    });
    unroll!(K, |i| {
        let k = n / 8 + b + i;
        // SAFETY: see above.
        unsafe {
            let p = d.add(8 * (b + i));
            let (v0, v1) = inv_bf(
                c,
                _mm256_permute2x128_si256::<0x20>(x[i], y[i]),
                _mm256_permute2x128_si256::<0x31>(x[i], y[i]),
                &c.tw_splat(*wp.add(k), *sp.add(k)),
            );
            store(p, v0);
            store(p.add(4), v1);
        }
    });
}

/// Inverse stages with half-span 1, 2, 4 on blocks of 8.
#[target_feature(enable = "avx2")]
fn inv_head(c: &Ctx, a: &mut [u64], w: &[u64], ws: &[u64]) {
    let n = a.len();
    assert!(n.is_multiple_of(8) && n >= 8 && w.len() == n && ws.len() == n);
    let (d, wp, sp) = (a.as_mut_ptr(), w.as_ptr(), ws.as_ptr());
    let mut b = 0;
    while b + TAIL_BLOCKS <= n / 8 {
        // SAFETY: `a`, `w`, `ws` have length `n`, a multiple of 8, and `b + TAIL_BLOCKS <= n/8`.
        unsafe { inv_head_blocks::<TAIL_BLOCKS>(c, d, n, b, wp, sp) };
        b += TAIL_BLOCKS;
    }
    while b < n / 8 {
        // SAFETY: as above, with `b + 1 <= n/8`.
        unsafe { inv_head_blocks::<1>(c, d, n, b, wp, sp) };
        b += 1;
    }
}
