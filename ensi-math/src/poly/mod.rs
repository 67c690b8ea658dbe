//! Typed RNS polynomials over `Z_Q[X] / (X^N + 1)`.
//!
//! An [`RnsContext`] holds the ring degree, an [`RnsBasis`] and one [`NttPlan`] per prime, and is
//! shared through [`Arc`]. An [`RnsPoly<R>`] lives over the first `limbs` primes of its context
//! (its level) and stores `limbs * N` residues limb-major. The representation is part of the
//! type: [`Coeff`] (coefficients) or [`Ntt`] (evaluations in the NTT's bit-reversed order);
//! conversions consume the value, so a polynomial in the wrong domain does not compile.
//!
//! Fallible operations (`try_*`) return [`MathError::ContextMismatch`] when the operands live
//! over different contexts or levels; the operator traits (`+`, `-`, `*`, `+=`, ...) are thin
//! wrappers that panic in that case.

mod automorphism;
mod ops;

pub use automorphism::NttAutomorphism;

use crate::error::MathError;
use crate::ntt::NttPlan;
use crate::rns::{RnsBasis, par};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use num_bigint::{BigInt, BigUint};
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroize;

/// The ring `Z_Q[X] / (X^N + 1)` in RNS form: degree, basis and one NTT plan per prime.
#[derive(Clone, Debug)]
pub struct RnsContext {
    n: usize,
    basis: RnsBasis,
    plans: Vec<NttPlan>,
}

impl RnsContext {
    /// A context for degree `n` and the given NTT-friendly primes (`q = 1 mod 2n`).
    pub fn new(n: usize, primes: &[u64]) -> Result<Arc<Self>, MathError> {
        let basis = RnsBasis::new(primes)?;
        let plans = primes
            .iter()
            .map(|&q| NttPlan::new(n, q))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Self { n, basis, plans }))
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The RNS basis (all primes; polynomials use a prefix of it).
    pub fn basis(&self) -> &RnsBasis {
        &self.basis
    }

    /// The NTT plans, one per prime.
    pub fn plans(&self) -> &[NttPlan] {
        &self.plans
    }

    /// The largest number of limbs a polynomial can have.
    pub fn max_limbs(&self) -> usize {
        self.basis.len()
    }

    /// Whether two contexts describe the same ring (same degree and primes).
    pub fn same_ring(self: &Arc<Self>, other: &Arc<Self>) -> bool {
        Arc::ptr_eq(self, other)
            || (self.n == other.n && self.basis.moduli() == other.basis.moduli())
    }

    fn check_limbs(&self, limbs: usize) -> Result<(), MathError> {
        if limbs == 0 || limbs > self.basis.len() {
            return Err(MathError::LengthMismatch {
                expected: self.basis.len(),
                found: limbs,
            });
        }
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The representation of an [`RnsPoly`]: [`Coeff`] or [`Ntt`]. Sealed.
pub trait Representation: sealed::Sealed + Copy + fmt::Debug + Send + Sync + 'static {
    /// A short name for messages.
    const NAME: &'static str;
}

/// Coefficient representation: limb `i` holds the coefficients modulo `q_i`, natural order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Coeff;
/// Evaluation representation: limb `i` holds [`NttPlan::forward`] of the coefficients modulo
/// `q_i` (bit-reversed evaluation order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ntt;

impl sealed::Sealed for Coeff {}
impl sealed::Sealed for Ntt {}
impl Representation for Coeff {
    const NAME: &'static str = "coefficient";
}
impl Representation for Ntt {
    const NAME: &'static str = "NTT";
}

/// A polynomial over the first `limbs` primes of its context, in representation `R`.
///
/// Residues are always fully reduced (`< q_i`). `Debug` prints only the shape, never residues;
/// equality is constant time. Secret polynomials are wiped with [`Zeroize`] (wrap them in
/// `zeroize::Zeroizing` or a type that zeroizes on drop).
pub struct RnsPoly<R: Representation> {
    ctx: Arc<RnsContext>,
    limbs: usize,
    data: Vec<u64>,
    _rep: PhantomData<R>,
}

impl<R: Representation> Clone for RnsPoly<R> {
    fn clone(&self) -> Self {
        Self {
            ctx: self.ctx.clone(),
            limbs: self.limbs,
            data: self.data.clone(),
            _rep: PhantomData,
        }
    }
}

impl<R: Representation> fmt::Debug for RnsPoly<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RnsPoly")
            .field("representation", &R::NAME)
            .field("n", &self.ctx.n)
            .field("limbs", &self.limbs)
            .finish_non_exhaustive()
    }
}

impl<R: Representation> ConstantTimeEq for RnsPoly<R> {
    fn ct_eq(&self, other: &Self) -> Choice {
        let same = self.ctx.same_ring(&other.ctx) && self.limbs == other.limbs;
        if !same {
            return Choice::from(0);
        }
        self.data.as_slice().ct_eq(other.data.as_slice())
    }
}

impl<R: Representation> PartialEq for RnsPoly<R> {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl<R: Representation> Eq for RnsPoly<R> {}

/// Wipes every residue in place: the polynomial stays a valid zero polynomial with the same
/// limb count (so a wiped value can still be used or dropped without surprises), and the spare
/// capacity of the buffer is wiped too.
impl<R: Representation> Zeroize for RnsPoly<R> {
    fn zeroize(&mut self) {
        self.data.as_mut_slice().zeroize();
        // `Vec::zeroize` would also shrink the length to 0 and leave `limbs` inconsistent; wipe
        // only what lies past the length (there is none unless a limb was dropped).
        let len = self.data.len();
        self.data.spare_capacity_mut().zeroize();
        debug_assert_eq!(self.data.len(), len);
    }
}

impl<R: Representation> RnsPoly<R> {
    /// The zero polynomial with `limbs` limbs.
    pub fn zero(ctx: &Arc<RnsContext>, limbs: usize) -> Result<Self, MathError> {
        ctx.check_limbs(limbs)?;
        Ok(Self::from_vec(ctx, limbs, alloc::vec![0u64; limbs * ctx.n]))
    }

    pub(crate) fn from_vec(ctx: &Arc<RnsContext>, limbs: usize, data: Vec<u64>) -> Self {
        debug_assert_eq!(data.len(), limbs * ctx.n);
        Self {
            ctx: ctx.clone(),
            limbs,
            data,
            _rep: PhantomData,
        }
    }

    /// Wraps raw limb-major residues (`limbs * N` words, each below its prime).
    pub fn from_raw(
        ctx: &Arc<RnsContext>,
        limbs: usize,
        data: Vec<u64>,
    ) -> Result<Self, MathError> {
        ctx.check_limbs(limbs)?;
        if data.len() != limbs * ctx.n {
            return Err(MathError::LengthMismatch {
                expected: limbs * ctx.n,
                found: data.len(),
            });
        }
        for (limb, m) in data.chunks(ctx.n).zip(ctx.basis.moduli()) {
            if let Some(&value) = limb.iter().find(|&&x| x >= m.q()) {
                return Err(MathError::ValueOutOfRange { value, q: m.q() });
            }
        }
        Ok(Self::from_vec(ctx, limbs, data))
    }

    /// The context.
    pub fn context(&self) -> &Arc<RnsContext> {
        &self.ctx
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        self.ctx.n
    }

    /// The number of limbs (active primes).
    pub fn limbs(&self) -> usize {
        self.limbs
    }

    /// The active basis prefix, as [`crate::Modulus`] values.
    pub fn moduli(&self) -> &[crate::Modulus] {
        &self.ctx.basis.moduli()[..self.limbs]
    }

    /// All residues, limb-major.
    pub fn as_slice(&self) -> &[u64] {
        &self.data
    }

    /// All residues, limb-major, mutable. Callers must keep every residue below its prime.
    pub fn as_mut_slice(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Limb `i`.
    pub fn limb(&self, i: usize) -> &[u64] {
        &self.data[i * self.ctx.n..(i + 1) * self.ctx.n]
    }

    /// Limb `i`, mutable. Callers must keep every residue below `q_i`.
    pub fn limb_mut(&mut self, i: usize) -> &mut [u64] {
        let n = self.ctx.n;
        &mut self.data[i * n..(i + 1) * n]
    }

    /// The residues, consuming the polynomial.
    pub fn into_raw(mut self) -> Vec<u64> {
        core::mem::take(&mut self.data)
    }

    /// Drops the last `count` limbs (lowers the level; no rescaling). Fails if fewer than one
    /// limb would remain.
    pub fn drop_last_limbs(&mut self, count: usize) -> Result<(), MathError> {
        if count >= self.limbs {
            return Err(MathError::LengthMismatch {
                expected: self.limbs - 1,
                found: count,
            });
        }
        self.limbs -= count;
        let len = self.limbs * self.ctx.n;
        // Wipe the dropped residues: they may be secret.
        self.data[len..].zeroize();
        self.data.truncate(len);
        Ok(())
    }

    pub(crate) fn check_compatible(&self, other: &Self) -> Result<(), MathError> {
        if self.limbs != other.limbs || !self.ctx.same_ring(&other.ctx) {
            return Err(MathError::ContextMismatch);
        }
        Ok(())
    }

    /// Applies `f(limb_index, limb)` to every limb (in parallel with `parallel`).
    pub(crate) fn map_limbs<F>(&mut self, f: F)
    where
        F: Fn(usize, &mut [u64]) + Send + Sync,
    {
        par::for_each_limb(&mut self.data, self.ctx.n, f);
    }
}

impl RnsPoly<Coeff> {
    /// The centred coefficients (in `[-(Q_l-1)/2, (Q_l-1)/2]`) as `f64`, without big integers:
    /// Garner's mixed-radix conversion `x = d_0 + d_1 q_0 + d_2 q_0 q_1 + ...` (Garner, "The
    /// residue number system", 1959), each digit `d_i = (x_i - sum_{j<i} d_j [P_j]_{q_i})
    /// [P_i^{-1}]_{q_i}` (`P_j = q_0 ... q_{j-1}`) one vectorised multiply-accumulate over the
    /// digits before it, then the sign from a branch-free comparison of the digits with those of
    /// `(Q_l - 1) / 2` (from the top), and the value by Horner's rule in `f64` (the digits of
    /// `Q_l - 1 - x` for a negative value). Within a few units in the last place of the exact
    /// value's `f64` ([`Self::to_bigint`]); no branch or memory access depends on the
    /// coefficients.
    pub fn to_centered_f64(&self) -> Vec<f64> {
        let n = self.ctx.n;
        let limbs = self.limbs;
        let moduli = &self.ctx.basis.moduli()[..limbs];
        if limbs == 1 {
            let m = &moduli[0];
            return self.data[..n]
                .iter()
                .map(|&x| m.to_centered(x) as f64)
                .collect();
        }
        // weights[i][j] = [P_j]_{q_i} (j < i); inv[i] = [P_i^{-1}]_{q_i}, with its Shoup constant.
        let weights: Vec<Vec<u64>> = moduli
            .iter()
            .map(|mi| {
                let mut p = 1u64;
                let mut w = Vec::with_capacity(limbs);
                for mj in moduli {
                    w.push(p);
                    p = mi.mul(p, mi.reduce(mj.q()));
                }
                w
            })
            .collect();
        let inv: Vec<(u64, u64)> = moduli
            .iter()
            .enumerate()
            .map(|(i, m)| {
                // P_i is a product of primes other than q_i: invertible.
                let v = m.inv_vartime(weights[i][i]).unwrap_or(0);
                (v, m.shoup(v))
            })
            .collect();
        // Digits of (Q - 1) / 2, whose residues are (q_i - 1) / 2.
        let half: Vec<u64> = {
            let mut d = Vec::with_capacity(limbs);
            for (i, m) in moduli.iter().enumerate() {
                let mut t = (m.q() - 1) / 2;
                for (j, &dj) in d.iter().enumerate() {
                    t = m.sub(t, m.mul(m.reduce(dj), weights[i][j]));
                }
                d.push(m.mul_shoup(t, inv[i].0, inv[i].1));
            }
            d
        };
        let qf: Vec<f64> = moduli.iter().map(|m| m.q() as f64).collect();
        const CHUNK: usize = 2048;
        let chunk = CHUNK.min(n);
        let mut out = alloc::vec![0.0f64; n];
        let run = |start: usize, o: &mut [f64]| {
            let len = o.len();
            let mut d = alloc::vec![0u64; limbs * len];
            for i in 0..limbs {
                let (done, rest) = d.split_at_mut(i * len);
                let di = &mut rest[..len];
                di.copy_from_slice(&self.data[i * n + start..i * n + start + len]);
                if i > 0 {
                    crate::rns::convert::accumulate(
                        len,
                        done,
                        &weights[i][..i],
                        &moduli[i],
                        di,
                        crate::rns::convert::Combine::SubScale {
                            h: 0,
                            w: inv[i].0,
                            w_shoup: inv[i].1,
                        },
                    );
                }
            }
            for (c, o) in o.iter_mut().enumerate() {
                // negative = digits > half's, compared from the most significant, branch-free.
                let (mut gt, mut eq) = (0u64, 1u64);
                for i in (0..limbs).rev() {
                    let (x, h) = (d[i * len + c], half[i]);
                    gt |= eq & u64::from(x > h);
                    eq &= u64::from(x == h);
                }
                let neg = gt;
                let mask = neg.wrapping_neg();
                let mut v = 0.0f64;
                for i in (0..limbs).rev() {
                    let x = d[i * len + c];
                    // q_i - 1 - x for a negative value (the digits of Q - 1 - x), else x.
                    let e = x ^ (mask & (x ^ (moduli[i].q() - 1 - x)));
                    v = v * qf[i] + e as f64;
                }
                // x - Q = -((Q - 1 - x) + 1).
                let sign = 1.0 - 2.0 * neg as f64;
                *o = sign * (v + neg as f64);
            }
        };
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(k, o)| run(k * chunk, o));
        }
        #[cfg(not(feature = "parallel"))]
        for (k, o) in out.chunks_mut(chunk).enumerate() {
            run(k * chunk, o);
        }
        out
    }

    /// Lifts signed coefficients (length N) to `limbs` limbs, branch-free per coefficient.
    pub fn from_i64(
        ctx: &Arc<RnsContext>,
        limbs: usize,
        coeffs: &[i64],
    ) -> Result<Self, MathError> {
        let mut p = Self::zero(ctx, limbs)?;
        if coeffs.len() != ctx.n {
            return Err(MathError::LengthMismatch {
                expected: ctx.n,
                found: coeffs.len(),
            });
        }
        let moduli = ctx.basis.moduli();
        p.map_limbs(|i, limb| {
            let m = &moduli[i];
            for (r, &c) in limb.iter_mut().zip(coeffs) {
                *r = m.from_i64(c);
            }
        });
        Ok(p)
    }

    /// Reduces big signed coefficients (length N) modulo the first `limbs` primes.
    pub fn from_bigint(
        ctx: &Arc<RnsContext>,
        limbs: usize,
        coeffs: &[BigInt],
    ) -> Result<Self, MathError> {
        if coeffs.len() != ctx.n {
            return Err(MathError::LengthMismatch {
                expected: ctx.n,
                found: coeffs.len(),
            });
        }
        let basis = ctx.basis.prefix(limbs)?;
        let n = ctx.n;
        let mut data = alloc::vec![0u64; limbs * n];
        let mut res = alloc::vec![0u64; limbs];
        for (c, x) in coeffs.iter().enumerate() {
            basis.reduce_bigint(x, &mut res);
            for (i, &r) in res.iter().enumerate() {
                data[i * n + c] = r;
            }
        }
        Ok(Self::from_vec(ctx, limbs, data))
    }

    /// Exact CRT: the coefficients in `[0, Q_l)`.
    pub fn to_biguint(&self) -> Vec<BigUint> {
        self.collect_residues(|b, r| b.reconstruct(r))
    }

    /// Exact CRT: the centred coefficients in `[-(Q_l-1)/2, (Q_l-1)/2]`.
    pub fn to_bigint(&self) -> Vec<BigInt> {
        self.collect_residues(|b, r| b.reconstruct_centered(r))
    }

    fn collect_residues<T: Send>(
        &self,
        f: impl Fn(&RnsBasis, &[u64]) -> T + Send + Sync,
    ) -> Vec<T> {
        let n = self.ctx.n;
        // The prefix of a valid basis is valid; fall back to the full basis never happens.
        let basis = match self.ctx.basis.prefix(self.limbs) {
            Ok(b) => b,
            Err(_) => self.ctx.basis.clone(),
        };
        let limbs = self.limbs;
        let one = |res: &mut Vec<u64>, c: usize| {
            for (i, r) in res.iter_mut().enumerate() {
                *r = self.data[i * n + c];
            }
            f(&basis, res)
        };
        // Coefficients are independent: with `parallel`, blocks of them side by side.
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            (0..n)
                .into_par_iter()
                .with_min_len(1024)
                .map_init(|| alloc::vec![0u64; limbs], one)
                .collect()
        }
        #[cfg(not(feature = "parallel"))]
        {
            let mut res = alloc::vec![0u64; limbs];
            (0..n).map(|c| one(&mut res, c)).collect()
        }
    }

    /// Forward NTT of every limb.
    pub fn into_ntt(mut self) -> RnsPoly<Ntt> {
        let plans = &self.ctx.plans;
        par::for_each_limb(&mut self.data, self.ctx.n, |i, limb| plans[i].forward(limb));
        self.retag()
    }

    /// Exact rounding division by the last active prime `q_{l-1}`, dropping that limb:
    /// every coefficient becomes `round(x / q_{l-1})` (see [`RnsBasis::rescale`]).
    pub fn rescale(mut self) -> Result<Self, MathError> {
        if self.limbs < 2 {
            return Err(MathError::LengthMismatch {
                expected: 2,
                found: self.limbs,
            });
        }
        self.ctx
            .clone()
            .basis
            .rescale(self.ctx.n, self.limbs, &mut self.data);
        self.drop_last_limbs(1)?;
        Ok(self)
    }
}

impl RnsPoly<Ntt> {
    /// Inverse NTT of every limb.
    pub fn into_coeff(mut self) -> RnsPoly<Coeff> {
        let plans = &self.ctx.plans;
        par::for_each_limb(&mut self.data, self.ctx.n, |i, limb| plans[i].inverse(limb));
        self.retag()
    }

    /// Exact rounding division by the last active prime, dropping that limb, computed in the
    /// NTT representation: one inverse NTT of the last limb and one forward NTT per remaining
    /// limb. Equal to `into_coeff().rescale()?.into_ntt()`.
    pub fn rescale(self) -> Result<Self, MathError> {
        self.rescaled()
    }

    /// [`Self::rescale`] into a new polynomial, `self` untouched: each output limb is written
    /// once (the last limb reduced and shifted, its NTT, then `(x - t) q_l^{-1}`), in vector
    /// kernels where the CPU has them; no copy of the input, no zero-filled scratch.
    pub fn rescaled(&self) -> Result<Self, MathError> {
        if self.limbs < 2 {
            return Err(MathError::LengthMismatch {
                expected: 2,
                found: self.limbs,
            });
        }
        let ctx = &self.ctx;
        let n = ctx.n;
        let l = self.limbs - 1;
        let ql = ctx.basis.moduli()[l];
        let h = ql.q() >> 1;
        let mut last = self.data[l * n..(l + 1) * n].to_vec();
        ctx.plans[l].inverse(&mut last);
        for r in last.iter_mut() {
            *r = ql.add(*r, h);
        }
        let moduli = ctx.basis.moduli();
        let plans = &ctx.plans;
        let basis = &ctx.basis;
        let src = &self.data;
        // Per limb: the last limb brought to `q_i` in a scratch limb that stays in cache, its
        // NTT with `(x - t) q_l^-1` folded into the last pass and streamed to the output
        // (written once, its lines not read in first).
        let data = par::new_limbs_with_scratch(l * n, n, |i, limb, t| {
            let m = &moduli[i];
            crate::pointwise::reduce_sub_into(m, &last, ql.bits(), m.reduce(h), t);
            // SAFETY: `reduce_sub_into` wrote every element of the scratch limb.
            let t = unsafe { &mut *(t as *mut [core::mem::MaybeUninit<u64>] as *mut [u64]) };
            let (inv, inv_shoup) = basis.last_inv(l, i);
            plans[i].forward_sub_scale(t, &src[i * n..(i + 1) * n], inv, inv_shoup, limb);
        });
        Ok(Self::from_vec(ctx, l, data))
    }
}

impl<R: Representation> RnsPoly<R> {
    fn retag<S: Representation>(mut self) -> RnsPoly<S> {
        RnsPoly {
            ctx: self.ctx.clone(),
            limbs: self.limbs,
            data: core::mem::take(&mut self.data),
            _rep: PhantomData,
        }
    }
}
