//! The evaluator: homomorphic operations on ciphertexts, never touching the secret key.
//!
//! Every operation checks parameter identity, levels, scales and slot counts and returns an
//! error on a mismatch ([`CkksError::LevelMismatch`], [`CkksError::ScaleMismatch`], ...): scales
//! never drift silently. Two scales are taken as equal when they agree to a relative `2^-30`,
//! far below the precision of any CKKS result. Products multiply the scales; [`Evaluator::rescale`]
//! divides by the last prime of the level. The evaluator holds only public data and is `Sync`,
//! so one evaluator serves many threads.
//!
//! Formulas are those of Cheon–Kim–Kim–Song 2017 (§3.4: addition, tensor product,
//! relinearization, rescaling) and Cheon–Han–Kim–Kim–Song 2018 (full-RNS rescaling).

mod count;
mod rotation;

pub(crate) use count::Op;
pub use count::OpCount;

use crate::ciphertext::{Ciphertext, check_scale};
use crate::context::CkksContext;
use crate::error::CkksError;
use crate::evalkeys::EvaluationKeySet;
use crate::plaintext::Plaintext;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use ensi_math::{Ntt, NttAutomorphism, RnsPoly};

/// Homomorphic operations over one [`CkksContext`], with the evaluation keys it was given.
#[derive(Debug)]
pub struct Evaluator {
    ctx: Arc<CkksContext>,
    keys: EvaluationKeySet,
    automorphisms: BTreeMap<usize, NttAutomorphism>,
    counters: count::Counters,
}

impl Evaluator {
    /// An evaluator with `keys` (which may be empty: additions and plaintext products need no
    /// key). Fails if a key belongs to another parameter set.
    pub fn new(ctx: &Arc<CkksContext>, keys: EvaluationKeySet) -> Result<Self, CkksError> {
        for id in keys.params_ids() {
            ctx.check_id(id)?;
        }
        let mut automorphisms = BTreeMap::new();
        for g in keys
            .galois_elements()
            .into_iter()
            .chain(keys.level0_galois_elements())
        {
            if let alloc::collections::btree_map::Entry::Vacant(slot) = automorphisms.entry(g) {
                slot.insert(ctx.ring().ntt_automorphism(g)?);
            }
        }
        Ok(Self {
            ctx: ctx.clone(),
            keys,
            automorphisms,
            counters: count::Counters::default(),
        })
    }

    /// The context.
    pub fn context(&self) -> &Arc<CkksContext> {
        &self.ctx
    }

    /// The evaluation keys.
    pub fn keys(&self) -> &EvaluationKeySet {
        &self.keys
    }

    fn check(&self, ct: &Ciphertext) -> Result<(), CkksError> {
        self.ctx.check_id(ct.params_id)?;
        if ct.parts.is_empty() {
            return Err(CkksError::EmptyCiphertext);
        }
        Ok(())
    }

    fn check_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.check(a)?;
        self.check(b)?;
        check_level(a.level(), b.level())?;
        check_slots(a.slots, b.slots)
    }

    /// The first `ct.level() + 1` limbs of a plaintext at a level at least the ciphertext's.
    fn plain_at<'p>(
        &self,
        ct: &Ciphertext,
        pt: &'p Plaintext,
    ) -> Result<alloc::borrow::Cow<'p, RnsPoly<Ntt>>, CkksError> {
        self.check(ct)?;
        self.ctx.check_id(pt.params_id)?;
        check_slots(ct.slots, pt.slots)?;
        if pt.level() < ct.level() {
            return Err(CkksError::LevelMismatch {
                left: ct.level(),
                right: pt.level(),
            });
        }
        if pt.level() == ct.level() {
            return Ok(alloc::borrow::Cow::Borrowed(&pt.poly));
        }
        let mut p = pt.poly.clone();
        p.drop_last_limbs(pt.level() - ct.level())?;
        Ok(alloc::borrow::Cow::Owned(p))
    }

    fn check_scale_fits(&self, scale: f64, level: usize) -> Result<(), CkksError> {
        let log_q: f64 = self.ctx.params().q()[..=level]
            .iter()
            .map(|&q| libm::log2(q as f64))
            .sum();
        let log_scale = libm::log2(scale);
        if !scale.is_finite() || log_scale >= log_q - 1.0 {
            return Err(CkksError::ScaleOverflow { log_scale, log_q });
        }
        Ok(())
    }

    // ---------------------------------------------------------------- additions

    /// `a + b` (any degrees; the result has the larger one).
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.combine(a, b, false)
    }

    /// `a ± b` into new polynomials (no copy of `a` first).
    fn combine(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        subtract: bool,
    ) -> Result<Ciphertext, CkksError> {
        if a.degree() != b.degree() {
            let mut out = a.clone();
            self.combine_assign(&mut out, b, subtract)?;
            return Ok(out);
        }
        self.check_pair(a, b)?;
        check_scale(a.scale, b.scale)?;
        self.count(Op::Add, 1);
        let parts = a
            .parts
            .iter()
            .zip(&b.parts)
            .map(|(x, y)| if subtract { x.try_sub(y) } else { x.try_add(y) })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(a.derive(parts, a.scale))
    }

    /// `a += b`.
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.combine_assign(a, b, false)
    }

    /// `a - b`.
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.combine(a, b, true)
    }

    /// `a -= b`.
    pub fn sub_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), CkksError> {
        self.combine_assign(a, b, true)
    }

    fn combine_assign(
        &self,
        a: &mut Ciphertext,
        b: &Ciphertext,
        subtract: bool,
    ) -> Result<(), CkksError> {
        self.check_pair(a, b)?;
        check_scale(a.scale, b.scale)?;
        self.count(Op::Add, 1);
        for (i, q) in b.parts.iter().enumerate() {
            if i < a.parts.len() {
                if subtract {
                    a.parts[i].try_sub_assign(q)?;
                } else {
                    a.parts[i].try_add_assign(q)?;
                }
            } else {
                let mut q = q.clone();
                if subtract {
                    q.neg_assign();
                }
                a.parts.push(q);
            }
        }
        a.seed = None;
        Ok(())
    }

    /// `-a`.
    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check(a)?;
        self.count(Op::Add, 1);
        let mut out = a.clone();
        out.parts.iter_mut().for_each(RnsPoly::neg_assign);
        out.seed = None;
        Ok(out)
    }

    /// `ct + pt` (the plaintext at the ciphertext's scale, and at its level or above).
    pub fn add_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.plain_combine(ct, pt, false)
    }

    /// `ct - pt`.
    pub fn sub_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        self.plain_combine(ct, pt, true)
    }

    fn plain_combine(
        &self,
        ct: &Ciphertext,
        pt: &Plaintext,
        subtract: bool,
    ) -> Result<Ciphertext, CkksError> {
        let p = self.plain_at(ct, pt)?;
        check_scale(ct.scale, pt.scale)?;
        self.count(Op::Add, 1);
        let mut out = ct.clone();
        if subtract {
            out.parts[0].try_sub_assign(&p)?;
        } else {
            out.parts[0].try_add_assign(&p)?;
        }
        out.seed = None;
        Ok(out)
    }

    /// `ct + c` in every slot, `c` encoded at the ciphertext's scale (a constant polynomial is
    /// the same value at every NTT point).
    pub fn add_const(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        let residues = self.const_residues(c, ct.scale, ct.level())?;
        self.count(Op::Add, 1);
        let mut out = ct.clone();
        let n = self.ctx.n();
        let moduli = out.parts[0].moduli().to_vec();
        for (i, (m, &r)) in moduli.iter().zip(&residues).enumerate() {
            out.parts[0].as_mut_slice()[i * n..(i + 1) * n]
                .iter_mut()
                .for_each(|x| *x = m.add(*x, r));
        }
        out.seed = None;
        Ok(out)
    }

    /// `round(c * scale)` modulo each prime up to `level`.
    fn const_residues(&self, c: f64, scale: f64, level: usize) -> Result<Vec<u64>, CkksError> {
        let v = libm::round(c * scale);
        if !v.is_finite() || libm::fabs(v) >= libm::ldexp(1.0, 126) {
            return Err(CkksError::ValueTooLarge { value: c * scale });
        }
        let v = v as i128;
        Ok(self.ctx.ring().basis().moduli()[..=level]
            .iter()
            .map(|m| {
                let r = m.reduce_u128(v.unsigned_abs());
                if v < 0 { m.neg(r) } else { r }
            })
            .collect())
    }

    // ---------------------------------------------------------------- products

    /// `ct * pt`, slot-wise; the scales multiply.
    pub fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        let p = self.plain_at(ct, pt)?;
        let scale = ct.scale * pt.scale;
        self.check_scale_fits(scale, ct.level())?;
        self.count(Op::PlainMul, 1);
        let parts = ct
            .parts
            .iter()
            .map(|c| c.try_mul(&p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ct.derive(parts, scale))
    }

    /// `acc += ct * pt` (fused, no temporary): `acc` must have the scale of `ct * pt`.
    pub fn mul_plain_acc(
        &self,
        acc: &mut Ciphertext,
        ct: &Ciphertext,
        pt: &Plaintext,
    ) -> Result<(), CkksError> {
        let p = self.plain_at(ct, pt)?;
        self.check_pair(acc, ct)?;
        check_scale(acc.scale, ct.scale * pt.scale)?;
        if acc.parts.len() != ct.parts.len() {
            return Err(CkksError::InvalidDegree {
                degree: ct.degree(),
                expected: acc.degree(),
            });
        }
        self.count(Op::PlainMul, 1);
        for (a, c) in acc.parts.iter_mut().zip(&ct.parts) {
            a.try_mul_acc(c, &p)?;
        }
        acc.seed = None;
        Ok(())
    }

    /// `ct * c` for an integer `c`: no scale change, no level consumed.
    pub fn mul_integer(&self, ct: &Ciphertext, c: i64) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        self.count(Op::ConstMul, 1);
        let mut out = ct.clone();
        out.parts
            .iter_mut()
            .for_each(|p| p.mul_scalar_i64_assign(c));
        out.seed = None;
        Ok(out)
    }

    /// `ct * c` for a real `c` encoded at the last prime of the ciphertext's level, so that
    /// [`Self::rescale`] brings the scale back exactly to `ct.scale()`.
    pub fn mul_const(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        let q_last = self.ctx.params().q()[ct.level()] as f64;
        self.mul_const_with_scale(ct, c, q_last)
    }

    /// `ct * c` with `c` encoded as `round(c * scale)`; the result's scale is
    /// `ct.scale() * scale`.
    pub fn mul_const_with_scale(
        &self,
        ct: &Ciphertext,
        c: f64,
        scale: f64,
    ) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(CkksError::InvalidEncodingScale { scale });
        }
        let out_scale = ct.scale * scale;
        self.check_scale_fits(out_scale, ct.level())?;
        let residues = self.const_residues(c, scale, ct.level())?;
        self.count(Op::ConstMul, 1);
        let parts = ct
            .parts
            .iter()
            .map(|p| p.try_mul_scalar_per_limb(&residues))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ct.derive(parts, out_scale))
    }

    /// The tensor product of two degree-1 ciphertexts: `(a_0 b_0, a_0 b_1 + a_1 b_0, a_1 b_1)`,
    /// a degree-2 ciphertext decrypting under `(1, s, s^2)`. Sum several tensors and
    /// [`Self::relinearize`] once (lazy relinearization).
    pub fn tensor(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check_pair(a, b)?;
        for ct in [a, b] {
            if ct.degree() != 1 {
                return Err(CkksError::InvalidDegree {
                    degree: ct.degree(),
                    expected: 1,
                });
            }
        }
        let scale = a.scale * b.scale;
        self.check_scale_fits(scale, a.level())?;
        self.count(Op::Tensor, 1);
        let (a0, a1) = (&a.parts[0], &a.parts[1]);
        let (b0, b1) = (&b.parts[0], &b.parts[1]);
        let c0 = a0.try_mul(b0)?;
        let c2 = a1.try_mul(b1)?;
        let c1 = if core::ptr::eq(a, b) {
            let mut c1 = a0.try_mul(a1)?;
            let copy = c1.clone();
            c1.try_add_assign(&copy)?;
            c1
        } else {
            let mut c1 = a0.try_mul(b1)?;
            c1.try_mul_acc(a1, b0)?;
            c1
        };
        Ok(a.derive(alloc::vec![c0, c1, c2], scale))
    }

    /// Relinearizes a degree-2 ciphertext to degree 1 with the relinearization key (a degree-1
    /// ciphertext is returned unchanged).
    pub fn relinearize(&self, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        match ct.degree() {
            1 => return Ok(ct.clone()),
            2 => {}
            d => {
                return Err(CkksError::InvalidDegree {
                    degree: d,
                    expected: 2,
                });
            }
        }
        let rlk = self
            .keys
            .relinearization()
            .ok_or(CkksError::MissingRelinearizationKey)?;
        self.count(Op::Relinearize, 1);
        let (p0, p1) = self.ctx.switch_key(&ct.parts[2], &rlk.key)?;
        let mut c0 = ct.parts[0].clone();
        let mut c1 = ct.parts[1].clone();
        c0.try_add_assign(&p0)?;
        c1.try_add_assign(&p1)?;
        Ok(ct.derive(alloc::vec![c0, c1], ct.scale))
    }

    /// `a * b` relinearized (no rescale).
    pub fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let t = self.tensor(a, b)?;
        self.relinearize(&t)
    }

    /// `a * b`, relinearized and rescaled.
    pub fn mul_relin_rescale(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
    ) -> Result<Ciphertext, CkksError> {
        let t = self.mul_relin(a, b)?;
        self.rescale(&t)
    }

    // ---------------------------------------------------------------- scales

    /// Reinterprets the scale of `ct` as `scale`, which multiplies the encrypted values by
    /// `ct.scale() / scale`: no level, no arithmetic on the polynomials. The new scale must be
    /// finite, positive and fit below the modulus of the ciphertext's level.
    pub fn set_scale(&self, ct: &mut Ciphertext, scale: f64) -> Result<(), CkksError> {
        self.check(ct)?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err(CkksError::InvalidEncodingScale { scale });
        }
        self.check_scale_fits(scale, ct.level())?;
        ct.scale = scale;
        Ok(())
    }

    /// Replaces the scale of `ct` by `target` where the two agree to a relative `2^-30` (the
    /// floating-point drift of exact scale bookkeeping, as after a rescale by a prime encoded
    /// as the plaintext's scale); a larger difference is a [`CkksError::ScaleMismatch`], so a
    /// real drift is never hidden. Use [`Self::set_scale`] to reinterpret on purpose.
    pub fn match_scale(&self, ct: &mut Ciphertext, target: f64) -> Result<(), CkksError> {
        self.check(ct)?;
        ct.snap_scale(target)
    }

    /// `c * ct` for a constant `c > 0` folded into the scale metadata (`scale / c`): no level
    /// and no noise. Fails where the new scale would not be a valid one (see [`Self::set_scale`]).
    pub fn fold_into_scale(&self, ct: &Ciphertext, c: f64) -> Result<Ciphertext, CkksError> {
        if !(c.is_finite() && c > 0.0) {
            return Err(CkksError::InvalidArgument {
                reason: "only a finite positive constant folds into the scale (negate separately)",
            });
        }
        let mut out = ct.clone();
        self.set_scale(&mut out, ct.scale / c)?;
        Ok(out)
    }

    /// Multiplies every slot by `i` (the monomial `X^(N/2)`, which is `i` at every root of the
    /// orbit of 5): no level, no scale change.
    pub fn mul_by_i(&self, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        self.count(Op::ConstMul, 1);
        let n = self.ctx.n();
        let mut coeffs = alloc::vec![0i64; n];
        coeffs[n / 2] = 1;
        let mono = RnsPoly::from_i64(self.ctx.ring(), ct.level() + 1, &coeffs)?.into_ntt();
        let parts = ct
            .parts
            .iter()
            .map(|p| p.try_mul(&mono))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ct.derive(parts, ct.scale))
    }

    // ---------------------------------------------------------------- levels

    /// Divides by the last prime `q_l` of the level (exact rounding, in the NTT domain) and drops
    /// it; the scale becomes `scale / q_l`.
    pub fn rescale(&self, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        if ct.level() == 0 {
            return Err(CkksError::NoLevelLeft);
        }
        let q_last = self.ctx.params().q()[ct.level()] as f64;
        self.count(Op::Rescale, 1);
        let parts = ct
            .parts
            .iter()
            .map(|p| p.rescaled())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ct.derive(parts, ct.scale / q_last))
    }

    /// Drops primes down to `level` without dividing (the scale is unchanged).
    pub fn drop_to_level(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        if level > ct.level() {
            return Err(CkksError::InvalidLevel {
                level,
                max: ct.level(),
            });
        }
        let mut out = ct.clone();
        for p in &mut out.parts {
            p.drop_last_limbs(ct.level() - level)?;
        }
        out.seed = None;
        Ok(out)
    }
}

fn check_level(a: usize, b: usize) -> Result<(), CkksError> {
    if a != b {
        return Err(CkksError::LevelMismatch { left: a, right: b });
    }
    Ok(())
}

fn check_slots(a: usize, b: usize) -> Result<(), CkksError> {
    if a != b {
        return Err(CkksError::SlotMismatch { left: a, right: b });
    }
    Ok(())
}
