//! Negacyclic number-theoretic transforms over `Z_q[X]/(X^N + 1)`.
//!
//! The forward transform is the merged Cooley–Tukey transform of Longa–Naehrig ("Speeding up the
//! Number Theoretic Transform for Faster Ideal Lattice-Based Cryptography", CANS 2016): natural
//! order in, bit-reversed order out, with the powers of a primitive `2N`-th root `psi` folded
//! into the twiddles so no pre-multiplication is needed. The inverse is the matching
//! Gentleman–Sande transform, bit-reversed in, natural out, with `N^{-1}` folded into the last
//! stage. Butterflies use Harvey's lazy reduction ("Faster arithmetic for number-theoretic
//! transforms", J. Symb. Comp. 2014), keeping values below `4q`.
//!
//! **Evaluation order.** After [`NttPlan::forward`], index `i` holds `a(psi^(2 * bitrev(i) + 1))`,
//! where `bitrev` reverses `log2 N` bits. Pointwise products are products of the polynomials
//! modulo `X^N + 1`; automorphisms in this representation permute indices accordingly.
//!
//! **Backends.** A plan runs one [`Backend`], chosen once when it is built: [`NttPlan::new`] takes
//! [`Backend::detect`], which picks by run-time CPU detection (with the `std` feature; without
//! it, by the target features enabled at compile time, e.g. `-C target-cpu=native`):
//!
//! 1. [`Backend::Avx512Ifma`] for primes below `2^50` on CPUs with AVX-512 IFMA: Harvey's
//!    butterflies in 52-bit limbs (`vpmadd52huq` gives Shoup's quotient estimate with
//!    `w' = floor(w * 2^52 / q)`, `vpmadd52luq` the products; lazy values below `4q < 2^52`);
//! 2. [`Backend::Avx512`] (AVX-512F + DQ) for any prime: 64-bit Shoup products, the high half
//!    emulated from four `vpmuludq`;
//! 3. [`Backend::Avx2`]: the same 64-bit method on 256-bit vectors;
//! 4. [`Backend::Scalar`] otherwise.
//!
//! Every backend returns bit-identical results (fully reduced, same order); the scalar one is the
//! oracle the others are tested against. The SIMD backends merge pairs of stages (radix 4), run
//! the stages shorter than a vector inside registers, and fold the final reduction (forward) and
//! the `N^{-1}` scaling (inverse) into the last stage. Degrees below two vectors (`N < 16` for
//! AVX-512, `N < 8` for AVX2) run the scalar code.
//!
//! To force a backend, build the plan with [`NttPlan::with_backend`] (for instance
//! `NttPlan::with_backend(n, q, Backend::Scalar)`), which fails with
//! [`MathError::BackendUnavailable`] if this CPU cannot run it. With the `std` feature the
//! environment variable **`ENSI_NTT_BACKEND`** (`scalar`, `avx2`, `avx512` or `avx512ifma`)
//! overrides what [`Backend::detect`] (hence [`NttPlan::new`]) returns; a value this CPU cannot
//! run, or an unknown one, is ignored. [`Backend::Avx512Ifma`] asked for a prime of 50 bits or
//! more runs the 64-bit AVX-512 kernels, and [`NttPlan::backend`] then reports
//! [`Backend::Avx512`].

mod scalar;
#[cfg(target_arch = "x86_64")]
#[macro_use]
mod simd;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;

use crate::error::MathError;
use crate::modulus::Modulus;
use crate::prime::primitive_root_2n;
use alloc::vec::Vec;

/// Smallest supported ring degree.
pub const MIN_LOG_N: u32 = 1;
/// Largest supported ring degree.
pub const MAX_LOG_N: u32 = 17;

/// Which implementation of the butterflies a plan runs (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Portable scalar code: the oracle every other backend is tested against.
    Scalar,
    /// AVX2, 4 lanes of 64-bit Shoup products (x86-64 only).
    Avx2,
    /// AVX-512F + DQ, 8 lanes of 64-bit Shoup products (x86-64 only).
    Avx512,
    /// AVX-512 IFMA, 8 lanes of 52-bit Shoup products, for primes below `2^50` (x86-64 only).
    Avx512Ifma,
}

/// Bit size below which [`Backend::Avx512Ifma`] runs its 52-bit kernels: lazy values below `4q`
/// must fit 52 bits.
pub const IFMA_MAX_MODULUS_BITS: u32 = 50;

impl Backend {
    /// Every backend, scalar first, fastest last.
    const ALL: [Backend; 4] = [
        Backend::Scalar,
        Backend::Avx2,
        Backend::Avx512,
        Backend::Avx512Ifma,
    ];

    /// The name `ENSI_NTT_BACKEND` uses for this backend.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Avx512Ifma => "avx512ifma",
        }
    }

    /// The backend called `name` (as `ENSI_NTT_BACKEND` spells it, ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Backend> {
        Self::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU can run the backend.
    pub fn is_supported(self) -> bool {
        match self {
            Backend::Scalar => true,
            Backend::Avx2 => cpu::avx2(),
            Backend::Avx512 => cpu::avx512(),
            Backend::Avx512Ifma => cpu::avx512ifma(),
        }
    }

    /// Every backend this CPU can run, the scalar one first.
    pub fn available() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_supported()).collect()
    }

    /// The fastest backend this CPU can run for a modulus of `bits` bits, unless the `std`
    /// feature is on and `ENSI_NTT_BACKEND` names one this CPU can run.
    pub fn detect(bits: u32) -> Backend {
        if let Some(forced) = Self::from_env() {
            return forced;
        }
        Self::ALL
            .into_iter()
            .rev()
            .find(|b| b.is_supported() && b.fits(bits))
            .unwrap_or(Backend::Scalar)
    }

    /// Whether the backend's kernels handle a modulus of `bits` bits.
    const fn fits(self, bits: u32) -> bool {
        !matches!(self, Backend::Avx512Ifma) || bits <= IFMA_MAX_MODULUS_BITS
    }

    #[cfg(feature = "std")]
    fn from_env() -> Option<Backend> {
        let value = std::env::var("ENSI_NTT_BACKEND").ok()?;
        Self::from_name(&value).filter(|b| b.is_supported())
    }

    #[cfg(not(feature = "std"))]
    fn from_env() -> Option<Backend> {
        None
    }
}

/// Whether this CPU runs the 64-bit AVX-512 kernels (AVX-512F and DQ), which the RNS base
/// conversions use besides the NTT.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512_available() -> bool {
    cpu::avx512()
}

/// Whether this CPU runs the AVX-512 IFMA kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512ifma_available() -> bool {
    cpu::avx512ifma()
}

/// CPU feature detection: at run time with `std`, from the compile-time target features without.
mod cpu {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    pub(super) fn avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    pub(super) fn avx512() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    pub(super) fn avx512ifma() -> bool {
        avx512() && std::arch::is_x86_feature_detected!("avx512ifma")
    }

    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    pub(super) fn avx2() -> bool {
        cfg!(target_feature = "avx2")
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    pub(super) fn avx512() -> bool {
        cfg!(all(target_feature = "avx512f", target_feature = "avx512dq"))
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    pub(super) fn avx512ifma() -> bool {
        avx512() && cfg!(target_feature = "avx512ifma")
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn avx2() -> bool {
        false
    }
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn avx512() -> bool {
        false
    }
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn avx512ifma() -> bool {
        false
    }
}

/// `x` with its lowest `bits` bits reversed.
#[inline]
pub const fn bit_reverse(x: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        x.reverse_bits() >> (usize::BITS - bits)
    }
}

/// A precomputed negacyclic NTT for one ring degree and one prime.
#[derive(Clone, Debug)]
pub struct NttPlan {
    n: usize,
    log_n: u32,
    modulus: Modulus,
    psi: u64,
    backend: Backend,
    /// `psi^bitrev(k)` for `k < N`.
    fwd: Vec<u64>,
    fwd_shoup: Vec<u64>,
    /// `psi^-bitrev(k)` for `k < N`.
    inv: Vec<u64>,
    inv_shoup: Vec<u64>,
    n_inv: u64,
    n_inv_shoup: u64,
    /// IFMA only: `floor(w * 2^52 / q)` for the twiddles of `fwd` (empty for other backends).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fwd_shoup52: Vec<u64>,
    /// IFMA only: `floor(w * 2^52 / q)` for the twiddles of `inv` (empty for other backends).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    inv_shoup52: Vec<u64>,
    /// SIMD inverse, last stage: `[N^-1, its Shoup constant, N^-1 * inv[1], its Shoup constant]`,
    /// the Shoup constants in the backend's precision (52 bits for IFMA, 64 otherwise).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    inv_last: [u64; 4],
}

impl NttPlan {
    /// A plan for degree `n` (a power of two, 2 to 2^17) and the prime `q = 1 mod 2n`, running the
    /// fastest backend this CPU supports.
    pub fn new(n: usize, q: u64) -> Result<Self, MathError> {
        let modulus = Modulus::new(q)?;
        Self::with_backend(n, q, Backend::detect(modulus.bits()))
    }

    /// A plan that runs the given backend; fails if this CPU cannot run it.
    pub fn with_backend(n: usize, q: u64, backend: Backend) -> Result<Self, MathError> {
        let (min, max) = (1usize << MIN_LOG_N, 1usize << MAX_LOG_N);
        if !n.is_power_of_two() || !(min..=max).contains(&n) {
            return Err(MathError::InvalidRingDegree { n, min, max });
        }
        let modulus = Modulus::new(q)?;
        if !backend.is_supported() {
            return Err(MathError::BackendUnavailable {
                backend: backend.name(),
            });
        }
        let backend = if backend.fits(modulus.bits()) {
            backend
        } else {
            Backend::Avx512
        };
        let psi = primitive_root_2n(q, n)?;
        let log_n = n.trailing_zeros();
        let psi_inv = modulus
            .inv_vartime(psi)
            .ok_or(MathError::NotNttFriendly { q, n })?;
        let powers = |base: u64| {
            let mut p = Vec::with_capacity(n);
            let mut acc = 1u64;
            for _ in 0..n {
                p.push(acc);
                acc = modulus.mul(acc, base);
            }
            let mut rev = alloc::vec![0u64; n];
            for (k, slot) in rev.iter_mut().enumerate() {
                *slot = p[bit_reverse(k, log_n)];
            }
            rev
        };
        let fwd = powers(psi);
        let inv = powers(psi_inv);
        let fwd_shoup = fwd.iter().map(|&w| modulus.shoup(w)).collect();
        let inv_shoup = inv.iter().map(|&w| modulus.shoup(w)).collect();
        let n_inv = modulus
            .inv_vartime(n as u64)
            .ok_or(MathError::NotNttFriendly { q, n })?;
        let ifma = backend == Backend::Avx512Ifma;
        let shoup52 = |w: u64| (((w as u128) << 52) / q as u128) as u64;
        let simd_shoup = |w: u64| {
            if ifma { shoup52(w) } else { modulus.shoup(w) }
        };
        let (fwd_shoup52, inv_shoup52) = if ifma {
            (
                fwd.iter().map(|&w| shoup52(w)).collect(),
                inv.iter().map(|&w| shoup52(w)).collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let n_inv_w = modulus.mul(n_inv, inv[1]);
        let inv_last = [n_inv, simd_shoup(n_inv), n_inv_w, simd_shoup(n_inv_w)];
        Ok(Self {
            n,
            log_n,
            modulus,
            psi,
            backend,
            fwd,
            fwd_shoup,
            inv,
            inv_shoup,
            n_inv,
            n_inv_shoup: modulus.shoup(n_inv),
            fwd_shoup52,
            inv_shoup52,
            inv_last,
        })
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The modulus.
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// The primitive `2N`-th root of unity the plan evaluates at.
    pub fn psi(&self) -> u64 {
        self.psi
    }

    /// The backend this plan runs.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// In-place forward transform: coefficients in `[0, q)`, natural order, to evaluations in
    /// `[0, q)`, bit-reversed order.
    ///
    /// # Panics
    /// If `a.len() != N`.
    pub fn forward(&self, a: &mut [u64]) {
        assert_eq!(
            a.len(),
            self.n,
            "NTT input length must equal the ring degree"
        );
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Ifma if self.n >= avx512::wide::MIN_N => {
                // SAFETY: the plan was built for this backend only after `is_supported` checked
                // that the CPU has AVX-512F, DQ and IFMA.
                unsafe { avx512::ifma::forward(self, a) }
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 if self.n >= avx512::wide::MIN_N => {
                // SAFETY: the plan was built for this backend only after `is_supported` checked
                // that the CPU has AVX-512F and DQ.
                unsafe { avx512::wide::forward(self, a) }
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 if self.n >= avx2::MIN_N => {
                // SAFETY: the plan was built for this backend only after `is_supported` checked
                // that the CPU has AVX2.
                unsafe { avx2::forward(self, a) }
            }
            _ => scalar::forward(self, a),
        }
    }

    /// `out[k] = (x[k] - NTT(a)[k]) w mod q` for residues `x[k] < q` and `w < q` with its Shoup
    /// constant `w_shoup = floor(w 2^64 / q)`: a forward transform whose result is consumed by
    /// the rescale's last step instead of being stored (the AVX-512 backends fold that step
    /// into their last pass; the others transform, then run it). `a` is left holding
    /// unspecified residues; every element of `out` is written.
    ///
    /// # Panics
    /// If a length differs from the ring degree.
    pub fn forward_sub_scale(
        &self,
        a: &mut [u64],
        x: &[u64],
        w: u64,
        w_shoup: u64,
        out: &mut [core::mem::MaybeUninit<u64>],
    ) {
        assert!(
            a.len() == self.n && x.len() == self.n && out.len() == self.n,
            "NTT input length must equal the ring degree"
        );
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Ifma if self.n >= avx512::wide::MIN_N => {
                // SAFETY: as in `forward`; the three slices hold `n` words and `out` is a
                // distinct (exclusively borrowed) slice.
                unsafe {
                    avx512::ifma::forward_sub_scale(self, a, x.as_ptr(), w, out.as_mut_ptr().cast())
                }
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 if self.n >= avx512::wide::MIN_N => {
                // SAFETY: as above.
                unsafe {
                    avx512::wide::forward_sub_scale(self, a, x.as_ptr(), w, out.as_mut_ptr().cast())
                }
            }
            _ => {
                self.forward(a);
                let m = &self.modulus;
                for ((o, &xi), &ti) in out.iter_mut().zip(x).zip(a.iter()) {
                    o.write(m.mul_shoup(m.sub(xi, ti), w, w_shoup));
                }
            }
        }
    }

    /// In-place inverse transform: evaluations in `[0, q)`, bit-reversed order, to coefficients
    /// in `[0, q)`, natural order.
    ///
    /// # Panics
    /// If `a.len() != N`.
    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(
            a.len(),
            self.n,
            "NTT input length must equal the ring degree"
        );
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Ifma if self.n >= avx512::wide::MIN_N => {
                // SAFETY: the plan was built for this backend only after `is_supported` checked
                // that the CPU has AVX-512F, DQ and IFMA.
                unsafe { avx512::ifma::inverse(self, a) }
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 if self.n >= avx512::wide::MIN_N => {
                // SAFETY: the plan was built for this backend only after `is_supported` checked
                // that the CPU has AVX-512F and DQ.
                unsafe { avx512::wide::inverse(self, a) }
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 if self.n >= avx2::MIN_N => {
                // SAFETY: the plan was built for this backend only after `is_supported` checked
                // that the CPU has AVX2.
                unsafe { avx2::inverse(self, a) }
            }
            _ => scalar::inverse(self, a),
        }
    }

    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }
}

#[cfg(test)]
mod tests;
