//! AVX2 backend, 4 lanes of 64-bit Shoup products; the high and low halves of the products are
//! assembled from 32x32-bit `vpmuludq` products.
//!
//! The stages with half-span `t = 4, 2, 1` run inside registers on blocks of 8 values held as two
//! vectors `(P, Q)`: natural order for `t = 4`, `P = [0, 1, 4, 5]` (`vperm2i128`) for `t = 2`,
//! `P = [0, 2, 4, 6]` (`vpunpck{l,h}qdq`) for `t = 1`, `Q` holding `P + t`.

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

/// A twiddle `w < q` and `ws = floor(w * 2^64 / q)`, and both with their 32-bit halves swapped,
/// per lane.
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

/// Each lane with its 32-bit halves swapped: `vpmuludq` then multiplies the high halves (a shift
/// would do as well, but known-zero high bits invite LLVM to rewrite the products).
#[target_feature(enable = "avx2")]
#[inline]
fn swap_halves(a: V) -> V {
    _mm256_shuffle_epi32::<0b10_11_00_01>(a)
}

impl Ctx {
    #[target_feature(enable = "avx2")]
    #[inline]
    fn new(q: u64) -> Self {
        Self {
            q: _mm256_set1_epi64x(q as i64),
            q_hi: _mm256_set1_epi64x(q.rotate_right(32) as i64),
            two_q: _mm256_set1_epi64x(2 * q as i64),
            mask32: _mm256_set1_epi64x(0xffff_ffff),
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn tw_splat(&self, w: u64, ws: u64) -> Tw {
        Tw {
            w: _mm256_set1_epi64x(w as i64),
            w_hi: _mm256_set1_epi64x(w.rotate_right(32) as i64),
            ws: _mm256_set1_epi64x(ws as i64),
            ws_hi: _mm256_set1_epi64x(ws.rotate_right(32) as i64),
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
        let ll = _mm256_mul_epu32(a, t.ws);
        let lh = _mm256_mul_epu32(a, t.ws_hi);
        let hl = _mm256_mul_epu32(a_hi, t.ws);
        let hh = _mm256_mul_epu32(a_hi, t.ws_hi);
        let mid = _mm256_add_epi64(lh, _mm256_srli_epi64::<32>(ll));
        let mid2 = _mm256_add_epi64(hl, _mm256_and_si256(mid, self.mask32));
        let e = _mm256_add_epi64(
            _mm256_add_epi64(hh, _mm256_srli_epi64::<32>(mid)),
            _mm256_srli_epi64::<32>(mid2),
        );
        let e_hi = swap_halves(e);
        // a * w - e * q = (a0 w0 - e0 q0) + 2^32 (a1 w0 + a0 w1 - e1 q0 - e0 q1)  mod 2^64.
        let low = _mm256_sub_epi64(_mm256_mul_epu32(a, t.w), _mm256_mul_epu32(e, self.q));
        let cross = _mm256_sub_epi64(
            _mm256_add_epi64(_mm256_mul_epu32(a_hi, t.w), _mm256_mul_epu32(a, t.w_hi)),
            _mm256_add_epi64(
                _mm256_mul_epu32(e_hi, self.q),
                _mm256_mul_epu32(e, self.q_hi),
            ),
        );
        _mm256_add_epi64(low, _mm256_slli_epi64::<32>(cross))
    }
}

/// Forward stages with half-span 4, 2, 1 on blocks of 8, fully reducing.
#[target_feature(enable = "avx2")]
fn fwd_tail(c: &Ctx, a: &mut [u64], w: &[u64], ws: &[u64]) {
    let n = a.len();
    assert!(n.is_multiple_of(8) && n >= 8 && w.len() == n && ws.len() == n);
    let (d, wp, sp) = (a.as_mut_ptr(), w.as_ptr(), ws.as_ptr());
    for b in 0..n / 8 {
        // SAFETY: block `b` is `8b..8b + 8 <= n`; the twiddles read are `n/8 + b < n/4`,
        // `n/4 + 2b + 2 <= n/2` and `n/2 + 4b + 4 <= n`, all inside `w` and `ws` (length `n`).
        unsafe {
            let d = d.add(8 * b);
            let (v0, v1) = (load(d), load(d.add(4)));
            let k = n / 8 + b;
            let (v0, v1) = fwd_bf(c, v0, v1, &c.tw_splat(*wp.add(k), *sp.add(k)));

            let x = _mm256_permute2x128_si256::<0x20>(v0, v1);
            let y = _mm256_permute2x128_si256::<0x31>(v0, v1);
            let k = n / 4 + 2 * b;
            let (x, y) = fwd_bf(c, x, y, &c.tw_vec(spread2(wp.add(k)), spread2(sp.add(k))));

            let (x, y) = (_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y));
            let k = n / 2 + 4 * b;
            let (x, y) = fwd_bf_last(c, x, y, &c.tw_vec(load(wp.add(k)), load(sp.add(k))));

            let (x, y) = (_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y));
            store(d, _mm256_permute2x128_si256::<0x20>(x, y));
            store(d.add(4), _mm256_permute2x128_si256::<0x31>(x, y));
        }
    }
}

/// Inverse stages with half-span 1, 2, 4 on blocks of 8.
#[target_feature(enable = "avx2")]
fn inv_head(c: &Ctx, a: &mut [u64], w: &[u64], ws: &[u64]) {
    let n = a.len();
    assert!(n.is_multiple_of(8) && n >= 8 && w.len() == n && ws.len() == n);
    let (d, wp, sp) = (a.as_mut_ptr(), w.as_ptr(), ws.as_ptr());
    for b in 0..n / 8 {
        // SAFETY: as in `fwd_tail`: the block and the twiddles read lie inside `a`, `w`, `ws`.
        unsafe {
            let d = d.add(8 * b);
            let (v0, v1) = (load(d), load(d.add(4)));
            let x = _mm256_permute2x128_si256::<0x20>(v0, v1);
            let y = _mm256_permute2x128_si256::<0x31>(v0, v1);

            let (x, y) = (_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y));
            let k = n / 2 + 4 * b;
            let (x, y) = inv_bf(c, x, y, &c.tw_vec(load(wp.add(k)), load(sp.add(k))));

            let (x, y) = (_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y));
            let k = n / 4 + 2 * b;
            let (x, y) = inv_bf(c, x, y, &c.tw_vec(spread2(wp.add(k)), spread2(sp.add(k))));

            let v0 = _mm256_permute2x128_si256::<0x20>(x, y);
            let v1 = _mm256_permute2x128_si256::<0x31>(x, y);
            let k = n / 8 + b;
            let (v0, v1) = inv_bf(c, v0, v1, &c.tw_splat(*wp.add(k), *sp.add(k)));
            store(d, v0);
            store(d.add(4), v1);
        }
    }
}
