//! Pointwise modular products of residue vectors, the kernel of a plaintext-ciphertext product.
//!
//! For primes below `2^51` on x86-64 with AVX2 and FMA, four products at a time in double
//! precision. This is the floating-point modular multiplication used by FFT-based and GPU
//! lattice libraries; see for example Boemer et al., "Intel HEXL", §3, for the 52-bit integer
//! form, and Dekker's exact product.
//!
//! 1. With `a, b < q < 2^51`, both are exact as doubles. `h = fl(a b)` and `l = fma(a, b, -h)`
//!    give `a b = h + l` exactly (an error-free transformation).
//! 2. The quotient estimate `k = floor(h · fl(1/q))` is within one of `floor(a b / q)`, since
//!    its relative error is at most about `3 · 2^-53` of a value below `2^51`.
//! 3. `r = fma(-k, q, h) + l = a b - k q` is computed exactly, because every intermediate is an
//!    integer below `2^53` in magnitude. It lies in `[-q, 2q)`, and two branch-free corrections
//!    bring it to `[0, q)`.
//!
//! The result is the canonical residue, the same as the scalar Barrett product's. Primes of 52
//! to 62 bits take a 64-bit integer kernel where AVX-512F/DQ is available (the 128-bit product
//! from four 32 x 32-bit products, reduced by two Shoup products by constants), as do products
//! by a constant (64-bit Shoup products, eight at a time). Other primes, CPUs and targets take
//! the scalar path ([`Modulus::mul_reduced`]).

use crate::modulus::Modulus;
use core::mem::MaybeUninit;

/// The largest prime the floating-point kernel accepts: below `2^51`.
pub const FMA_MAX_BITS: u32 = 51;

/// `out[i] = a[i] * b[i] mod q` for residues `a[i], b[i] < q`. Every element of `out` is
/// written.
///
/// # Panics
/// If the three slices differ in length.
pub fn mul_into(m: &Modulus, a: &[u64], b: &[u64], out: &mut [MaybeUninit<u64>]) {
    assert!(a.len() == b.len() && a.len() == out.len());
    // SAFETY: equal lengths (checked above); `out` is written, not read, without `accumulate`.
    if unsafe {
        vector_product(
            m,
            a.as_ptr(),
            b.as_ptr(),
            out.as_mut_ptr().cast(),
            a.len(),
            false,
        )
    } {
        return;
    }
    mul_into_scalar(m, a, b, out);
}

/// `a[i] = a[i] * b[i] mod q` for residues below `q`.
///
/// # Panics
/// If the slices differ in length.
pub fn mul_assign(m: &Modulus, a: &mut [u64], b: &[u64]) {
    assert_eq!(a.len(), b.len());
    let out = a.as_mut_ptr();
    // SAFETY: equal lengths; `out` is both an input and the output, which the kernels allow.
    if unsafe { vector_product(m, out, b.as_ptr(), out, a.len(), false) } {
        return;
    }
    for (x, &y) in a.iter_mut().zip(b) {
        *x = m.mul_reduced(*x, y);
    }
}

/// `acc[i] = acc[i] + a[i] * b[i] mod q` for residues below `q`.
///
/// # Panics
/// If the three slices differ in length.
pub fn mul_add_assign(m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
    assert!(a.len() == b.len() && a.len() == acc.len());
    // SAFETY: equal lengths (checked above); `acc` is read, then written.
    if unsafe { vector_product(m, a.as_ptr(), b.as_ptr(), acc.as_mut_ptr(), a.len(), true) } {
        return;
    }
    for ((s, &x), &y) in acc.iter_mut().zip(a).zip(b) {
        *s = m.mul_add_reduced(x, y, *s);
    }
}

/// `out[k] = ((src[k] mod q) - h) mod q` for words `src[k] < 2^src_bits` and `h < q` (AVX-512
/// IFMA for primes below 2^50 and words below 2^52, AVX-512F/DQ for primes up to 62 bits, else
/// scalar); every element of `out` is written.
///
/// # Panics
/// If the slices differ in length.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub(crate) fn reduce_sub_into(
    m: &Modulus,
    src: &[u64],
    src_bits: u32,
    h: u64,
    out: &mut [MaybeUninit<u64>],
) {
    assert_eq!(src.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    if src_bits <= 52
        && m.bits() <= crate::ntt::IFMA_MAX_MODULUS_BITS
        && crate::ntt::avx512ifma_available()
    {
        // SAFETY: IFMA checked, q < 2^50, words below 2^src_bits <= 2^52 (the caller's), h < q;
        // equal lengths.
        unsafe {
            crate::ntt::avx512::ifma::reduce_sub(
                src.as_ptr(),
                h,
                m.q(),
                out.as_mut_ptr().cast(),
                src.len(),
            )
        };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if m.bits() <= 62 && crate::ntt::avx512_available() {
        // SAFETY: AVX-512F/DQ checked, q < 2^62, h < q (the caller's); equal lengths.
        unsafe {
            crate::ntt::avx512::wide::reduce_sub(
                src.as_ptr(),
                h,
                m.q(),
                out.as_mut_ptr().cast(),
                src.len(),
            )
        };
        return;
    }
    for (o, &x) in out.iter_mut().zip(src) {
        o.write(m.sub(m.reduce(x), h));
    }
}

/// `out[k] = a[k] * b[k] mod q` (plus `out[k]` with `accumulate`) in a vector kernel where one
/// takes this prime on this CPU: the floating-point one below `2^51` (AVX2 + FMA), the 64-bit
/// integer one up to `2^62` (AVX-512F/DQ). Returns whether it ran; nothing is written if not.
///
/// # Safety
/// `a` and `b` valid for `len` reads of residues below `q`, `out` for `len` writes (and reads
/// with `accumulate`); `out` may equal `a` or `b` but must not overlap them otherwise.
#[allow(unused_variables)]
unsafe fn vector_product(
    m: &Modulus,
    a: *const u64,
    b: *const u64,
    out: *mut u64,
    len: usize,
    accumulate: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if vector_kernel(m) {
            let form = if accumulate {
                x86::Form::Accumulate
            } else {
                x86::Form::Into
            };
            // SAFETY: AVX2 and FMA checked, q < 2^51; the ranges are the caller's.
            unsafe { x86::run(m, a, x86::Operand::Vector(b), out, len, form) };
            return true;
        }
        if m.bits() <= 62 && crate::ntt::avx512_available() {
            // SAFETY: AVX-512F/DQ checked, q < 2^62; the ranges are the caller's.
            unsafe { crate::ntt::avx512::wide::mul_pointwise(a, b, m.q(), out, len, accumulate) };
            return true;
        }
    }
    false
}

/// `out[i] = a[i] * c mod q` for residues `a[i], c < q`: [`mul_into`] with one constant, in
/// the same floating-point kernel (a constant product costs what a plaintext product costs).
/// Every element of `out` is written.
///
/// # Panics
/// If the slices differ in length.
pub fn mul_scalar_into(m: &Modulus, a: &[u64], c: u64, out: &mut [MaybeUninit<u64>]) {
    assert_eq!(a.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    if vector_kernel(m) {
        // SAFETY: the CPU has AVX2 and FMA (checked above), and the slices have equal lengths.
        unsafe {
            x86::run(
                m,
                a.as_ptr(),
                x86::Operand::Broadcast(c),
                out.as_mut_ptr().cast(),
                a.len(),
                x86::Form::Into,
            )
        };
        return;
    }
    // SAFETY: `a` and `out` are distinct slices of equal length; `out` is only written
    // (`accumulate` is false).
    unsafe {
        crate::rns::convert::scale_raw(
            a.as_ptr(),
            out.as_mut_ptr().cast(),
            a.len(),
            m,
            (0, c, m.shoup(c)),
            false,
        )
    };
}

/// `a[i] = a[i] * c mod q` for residues below `q` (see [`mul_scalar_into`]).
pub fn mul_scalar_assign(m: &Modulus, a: &mut [u64], c: u64) {
    #[cfg(target_arch = "x86_64")]
    if vector_kernel(m) {
        let out = a.as_mut_ptr();
        // SAFETY: as for `mul_scalar_into`; `out` is both the input and the output, and the
        // kernel reads each `out[k..k + 4]` before writing it.
        unsafe {
            x86::run(
                m,
                out,
                x86::Operand::Broadcast(c),
                out,
                a.len(),
                x86::Form::Into,
            )
        };
        return;
    }
    crate::rns::convert::scale_limb_assign(a, m, (0, c, m.shoup(c)));
}

/// `acc[i] = acc[i] + a[i] * w mod q` for residues below `q`, a constant `w < q` and its
/// Shoup constant `w_shoup = floor(w 2^64 / q)` ([`Modulus::shoup`]). Eight at a time with
/// AVX-512F/DQ for primes below `2^62` (64-bit Shoup products), else scalar.
///
/// # Panics
/// If the slices differ in length.
pub fn mul_scalar_add_assign(m: &Modulus, acc: &mut [u64], a: &[u64], w: u64, w_shoup: u64) {
    crate::rns::convert::scale_limb_with(a, acc, m, (0, w, w_shoup), true);
}

/// `out[i] = a[i] + b[i] mod q`, or `a[i] - b[i] mod q` with `subtract`, for residues below `q`.
/// Every element of `out` is written. Eight at a time with AVX-512F/DQ.
///
/// # Panics
/// If the three slices differ in length.
pub fn add_into(m: &Modulus, a: &[u64], b: &[u64], out: &mut [MaybeUninit<u64>], subtract: bool) {
    assert!(a.len() == b.len() && a.len() == out.len());
    #[cfg(target_arch = "x86_64")]
    if crate::ntt::avx512_available() {
        // SAFETY: AVX-512F/DQ checked; equal lengths checked.
        unsafe { crate::ntt::avx512::wide::add_into(a.as_ptr(), b.as_ptr(), m.q(), out, subtract) };
        return;
    }
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        o.write(if subtract { m.sub(x, y) } else { m.add(x, y) });
    }
}

/// The inner products of a key switch: for every `i < n`,
/// `out_b[i] = sum_j src[j][perm(i)] * kb[j][i] mod q` and `out_a[i]` the same with `ka`, where
/// `perm(i) = perm[i]`, or `i` without a permutation. `src` holds the digits of a
/// decomposition (one limb each), `kb` and `ka` the two halves of a switching key (the same
/// limb of each digit's key), and `perm` the gather of an automorphism applied on the fly. All
/// operands are residues below `q`.
///
/// Three paths, one result (the canonical residue):
/// - AVX-512 IFMA for primes below `2^50`: two 52-bit multiply-adds per term.
/// - AVX-512F/DQ for primes below `2^62`: four 32 x 32-bit products per term, accumulated
///   without reduction, then three Shoup products.
/// - Otherwise `u128` sums with one Barrett reduction every eight terms.
///
/// The vector paths take up to 15 terms and `n` a multiple of 8; others take the last path.
///
/// # Panics
/// If `src`, `kb` and `ka` differ in length, or any limb, `perm` or `out_a` is not as long as
/// `out_b`, or (on the `u128` path) a `perm` entry is not below `n`. The vector paths clamp
/// such entries to `n - 1` instead.
pub fn dot_pair(
    m: &Modulus,
    src: &[&[u64]],
    kb: &[&[u64]],
    ka: &[&[u64]],
    perm: Option<&[u32]>,
    out_b: &mut [u64],
    out_a: &mut [u64],
) {
    let n = out_b.len();
    assert!(src.len() == kb.len() && src.len() == ka.len() && out_a.len() == n);
    assert!(
        src.iter().chain(kb).chain(ka).all(|l| l.len() == n) && perm.is_none_or(|p| p.len() == n)
    );
    #[cfg(target_arch = "x86_64")]
    if !src.is_empty() && src.len() <= 15 && n.is_multiple_of(8) {
        use crate::ntt::avx512::{ifma, wide};
        if m.bits() <= crate::ntt::IFMA_MAX_MODULUS_BITS && crate::ntt::avx512ifma_available() {
            // SAFETY: IFMA checked, q < 2^50, 1 to 15 terms, every length checked above (for
            // n = 0 the kernel reads nothing).
            unsafe { ifma::dot_pair(src, kb, ka, perm, m.q(), out_b, out_a) };
            return;
        }
        if m.bits() <= 62 && crate::ntt::avx512_available() {
            // SAFETY: AVX-512F/DQ checked, q < 2^62, 1 to 15 terms, lengths checked above.
            unsafe { wide::dot_pair(src, kb, ka, perm, m.q(), out_b, out_a) };
            return;
        }
    }
    dot_pair_scalar(m, src, kb, ka, perm, out_b, out_a);
}

/// The `u128` path of [`dot_pair`] (the same contract).
pub fn dot_pair_scalar(
    m: &Modulus,
    src: &[&[u64]],
    kb: &[&[u64]],
    ka: &[&[u64]],
    perm: Option<&[u32]>,
    out_b: &mut [u64],
    out_a: &mut [u64],
) {
    let n = out_b.len();
    assert!(src.len() == kb.len() && src.len() == ka.len() && out_a.len() == n);
    for i in 0..n {
        let at = perm.map_or(i, |p| p[i] as usize);
        let (mut s0, mut s1): (u128, u128) = (0, 0);
        for j in 0..src.len() {
            // Products are below 2^124: eight of them fit above a value below 2^64.
            if j > 0 && j % 8 == 0 {
                s0 = u128::from(m.reduce_u128(s0));
                s1 = u128::from(m.reduce_u128(s1));
            }
            let d = u128::from(src[j][at]);
            s0 += d * u128::from(kb[j][i]);
            s1 += d * u128::from(ka[j][i]);
        }
        out_b[i] = m.reduce_u128(s0);
        out_a[i] = m.reduce_u128(s1);
    }
}

/// The scalar path of [`mul_into`] (Barrett, [`Modulus::mul_reduced`]).
pub fn mul_into_scalar(m: &Modulus, a: &[u64], b: &[u64], out: &mut [MaybeUninit<u64>]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        o.write(m.mul_reduced(x, y));
    }
}

/// Whether products modulo `m` take the floating-point kernel on this CPU.
#[cfg(target_arch = "x86_64")]
fn vector_kernel(m: &Modulus) -> bool {
    m.bits() <= FMA_MAX_BITS && fma_available()
}

/// Whether this CPU runs the floating-point kernel (AVX2 and FMA).
pub fn fma_available() -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Modulus;
    use core::arch::x86_64::*;
    /// `2^52` as a double, and its bit pattern: `x | bits(2^52)` read as a double is `2^52 + x`
    /// for `x < 2^52`.
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    const TWO_52_BITS: i64 = 0x4330_0000_0000_0000;

    /// What the kernel writes: the product, or the product added to what `out` holds.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Form {
        Into,
        Accumulate,
    }

    /// The second operand: a vector, or one residue for every element.
    #[derive(Clone, Copy)]
    pub(super) enum Operand {
        Vector(*const u64),
        Broadcast(u64),
    }

    /// `out[k] = a[k] b[k] mod q` (or `out[k] + a[k] b[k] mod q`) for `k < len`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `a` and a vector `b` must be valid for `len` reads
    /// and `out` for `len` writes (and reads, for [`Form::Accumulate`]). `out` may equal `a`:
    /// each element is read before it is written.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn run(
        m: &Modulus,
        a: *const u64,
        b: Operand,
        out: *mut u64,
        len: usize,
        form: Form,
    ) {
        let q = m.q();
        let body = len - len % 4;
        let magic = _mm256_set1_pd(TWO_52);
        let magic_bits = _mm256_set1_epi64x(TWO_52_BITS);
        let qd = _mm256_set1_pd(q as f64);
        let qinv = _mm256_set1_pd(1.0 / q as f64);
        let zero = _mm256_setzero_pd();
        let to_f64 =
            |x: __m256i| _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(x, magic_bits)), magic);
        let mut k = 0;
        while k < body {
            // SAFETY: k + 4 <= body <= len for `a`, `b` and `out` (the caller); unaligned.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_si256(a.add(k).cast()),
                    match b {
                        Operand::Vector(b) => _mm256_loadu_si256(b.add(k).cast()),
                        Operand::Broadcast(c) => _mm256_set1_epi64x(c as i64),
                    },
                )
            };
            let (xf, yf) = (to_f64(x), to_f64(y));
            let h = _mm256_mul_pd(xf, yf);
            let l = _mm256_fmsub_pd(xf, yf, h);
            let quot = _mm256_floor_pd(_mm256_mul_pd(h, qinv));
            let mut r = _mm256_add_pd(_mm256_fnmadd_pd(quot, qd, h), l);
            // [-q, 2q) -> [0, 2q) -> [0, q).
            let neg = _mm256_cmp_pd::<_CMP_LT_OQ>(r, zero);
            r = _mm256_add_pd(r, _mm256_and_pd(neg, qd));
            let over = _mm256_cmp_pd::<_CMP_GE_OQ>(r, qd);
            r = _mm256_sub_pd(r, _mm256_and_pd(over, qd));
            if form == Form::Accumulate {
                // SAFETY: as for the loads above.
                let c = to_f64(unsafe { _mm256_loadu_si256(out.add(k).cast()) });
                r = _mm256_add_pd(r, c);
                let over = _mm256_cmp_pd::<_CMP_GE_OQ>(r, qd);
                r = _mm256_sub_pd(r, _mm256_and_pd(over, qd));
            }
            let bits = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(r, magic)), magic_bits);
            // SAFETY: as for the loads.
            unsafe { _mm256_storeu_si256(out.add(k).cast(), bits) };
            k += 4;
        }
        for i in body..len {
            // SAFETY: i < len (the caller's bounds); `a[i]` is read before `out[i]` is written.
            unsafe {
                let y = match b {
                    Operand::Vector(b) => *b.add(i),
                    Operand::Broadcast(c) => c,
                };
                let (x, p) = (*a.add(i), out.add(i));
                *p = match form {
                    Form::Into => m.mul_reduced(x, y),
                    Form::Accumulate => m.mul_add_reduced(x, y, *p),
                };
            }
        }
    }
}
