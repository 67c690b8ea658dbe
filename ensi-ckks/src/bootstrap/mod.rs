//! CKKS bootstrapping: refreshes a ciphertext at level 0 to a higher level without the secret key.
//!
//! The pipeline (Cheon–Han–Kim–Kim–Song, EUROCRYPT 2018; with the improvements of
//! Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux, EUROCRYPT 2021, and the sparse-secret
//! encapsulation of Bossuat–Troncoso-Pastoriza–Hubaux, ACNS 2022), every stage public:
//!
//! 1. [`Bootstrapper::mod_raise`]: switch the level-0 ciphertext to an ephemeral sparse secret
//!    `s'` (Hamming weight `h`), read it modulo the whole chain `Q` (its plaintext becomes
//!    `t = Delta m + e + q_0 I` with `|I| <= (h + 1) / 2`), and switch back to `s`.
//!    For `n < N/2` slots, a partial trace (sum of rotations by multiples of `n`) then projects
//!    onto the subring of the sparse packing.
//! 2. [`Bootstrapper::coeffs_to_slots`]: the inverse special FFT as `cts_level_budget` BSGS
//!    linear transforms; the slots then hold `t / (q_0 (K + 1))` in bit-reversed order, split into
//!    real and imaginary parts (conjugation).
//! 3. [`Bootstrapper::eval_mod`]: `x -> sin(2 pi x) / 2 pi`, approximating `x mod 1`, as a
//!    Chebyshev interpolant of `cos(2 pi ((K + 1) y - 1/4) / 2^r)` on `[-1, 1]` followed by `r`
//!    double-angle steps `c -> 2 c^2 - 1`, with an optional arcsine correction.
//! 4. [`Bootstrapper::slots_to_coeffs`]: the forward special FFT as `stc_level_budget`
//!    transforms, which also rescales the result back to `Delta`.
//!
//! The client makes the keys ([`BootstrapKeys::generate`], or streamed one at a time by
//! [`generate_bootstrap_keys`]); the server holds only them. The dense-to-sparse key spans only
//! `q_0 p_0` (see [`keys`] and [`crate::security`]).

pub(crate) mod dft;
pub mod keys;

pub use keys::{
    DenseToSparseKey, SparseToDenseKey, generate_bootstrap_keys, generate_encapsulation_keys,
};

use crate::ciphertext::Ciphertext;
use crate::context::CkksContext;
use crate::error::CkksError;
use crate::evalkeys::{EvaluationKey, EvaluationKeySet, KeyRequest};
use crate::evaluator::Evaluator;
use crate::keys::SecretKey;
use crate::lintrans::{EncodedLinearTransform, LinearTransform};
use crate::polynomial::{ChebyshevPoly, PolyEvalStats};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::f64::consts::PI;
use ensi_math::{Ntt, RnsPoly};
use rand_core::{CryptoRng, RngCore};

/// The parameters of bootstrapping, with documented defaults ([`Default`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapParametersLiteral {
    /// `log2` of the slot count; `None` for full slots (`N/2`).
    pub log_slots: Option<u32>,
    /// Levels (linear transforms) of CoeffsToSlots. Default 3.
    pub cts_level_budget: usize,
    /// Levels (linear transforms) of SlotsToCoeffs. Default 3.
    pub stc_level_budget: usize,
    /// EvalMod interval: `x = t / q_0` is assumed in `[-(K + 1), K + 1]`. Default 16.
    pub k: usize,
    /// Double-angle steps `r` of EvalMod. Default 4.
    pub double_angle: usize,
    /// Degree of the Chebyshev interpolant of the scaled cosine. Default 30.
    pub cos_degree: usize,
    /// Degree of the odd arcsine correction (0: none). Default 0.
    pub arcsine_degree: usize,
    /// Hamming weight of the ephemeral sparse secret (sparse-secret encapsulation). Default 32.
    pub ephemeral_hamming_weight: usize,
    /// Giant/baby rotation cost ratio of the linear transforms. Default 2.
    pub bsgs_ratio: f64,
    /// `log2` of the scale CoeffsToSlots leaves and EvalMod works at; `None`: the parameter
    /// set's default scale. Default `Some(60)`, matching the 60-bit EvalMod and CoeffsToSlots
    /// primes of [`crate::ParametersLiteral::n16_bootstrappable`]. Set it to the size of the primes of those levels when they are
    /// larger than the default scale: the slots entering CoeffsToSlots are about
    /// `K q_0 / Delta` times larger than its output, so its plaintext scale sets the precision.
    pub log_eval_scale: Option<u32>,
}

impl Default for BootstrapParametersLiteral {
    fn default() -> Self {
        Self {
            log_slots: None,
            cts_level_budget: 3,
            stc_level_budget: 3,
            k: 16,
            double_angle: 4,
            cos_degree: 30,
            arcsine_degree: 0,
            ephemeral_hamming_weight: 32,
            bsgs_ratio: 2.0,
            log_eval_scale: Some(60),
        }
    }
}

impl BootstrapParametersLiteral {
    /// The slot count for ring degree `n`.
    pub fn slots(&self, n: usize) -> Result<usize, CkksError> {
        let max = n / 2;
        match self.log_slots {
            None => Ok(max),
            Some(l) if l < usize::BITS && (1usize << l) <= max => Ok(1 << l),
            Some(l) => Err(CkksError::InvalidSlotCount {
                slots: 1usize.checked_shl(l).unwrap_or(usize::MAX),
                max,
            }),
        }
    }

    /// The polynomial of EvalMod on `[-1, 1]`: `cos(2 pi ((K + 1) y - 1/4) / 2^r)`.
    pub fn cosine(&self) -> ChebyshevPoly {
        let (k1, r) = ((self.k + 1) as f64, self.double_angle as i32);
        ChebyshevPoly::interpolate(
            move |y| libm::cos(2.0 * PI * (k1 * y - 0.25) / libm::ldexp(1.0, r)),
            -1.0,
            1.0,
            self.cos_degree,
        )
    }

    /// The arcsine correction, if enabled: the odd Taylor polynomial of `arcsin(y) / 2 pi` to
    /// degree `arcsine_degree`, in the Chebyshev basis of `[-1, 1]` (no change of variable, so
    /// no extra level). EvalMod's values are tiny (`|y| <~ 2 pi Delta / q_0`), where the series
    /// converges fast.
    pub fn arcsine(&self) -> Option<ChebyshevPoly> {
        (self.arcsine_degree > 0).then(|| {
            let degree = self.arcsine_degree;
            let taylor = move |y: f64| {
                // arcsin y = sum_k (2k)! / (4^k (k!)^2 (2k + 1)) y^(2k + 1)
                let (mut term, mut sum, mut k) = (1.0f64, 0.0f64, 0usize);
                while 2 * k < degree {
                    sum += term / (2 * k + 1) as f64 * libm::pow(y, (2 * k + 1) as f64);
                    term *= ((2 * k + 1) * (2 * k + 2)) as f64 / (4.0 * ((k + 1) * (k + 1)) as f64);
                    k += 1;
                }
                sum / (2.0 * PI)
            };
            ChebyshevPoly::interpolate(taylor, -1.0, 1.0, degree)
        })
    }

    /// Levels consumed by EvalMod: the cosine, the double angles and the arcsine.
    pub fn eval_mod_depth(&self) -> usize {
        let d = |deg: usize| (usize::BITS - deg.leading_zeros()) as usize;
        d(self.cos_degree)
            + self.double_angle
            + if self.arcsine_degree > 0 {
                d(self.arcsine_degree)
            } else {
                0
            }
    }

    /// Levels consumed by the whole bootstrapping.
    pub fn depth(&self) -> usize {
        self.cts_level_budget + self.eval_mod_depth() + self.stc_level_budget
    }

    /// The CoeffsToSlots and SlotsToCoeffs transforms (plain), for `ctx`.
    fn transforms(
        &self,
        ctx: &CkksContext,
    ) -> Result<(Vec<LinearTransform>, Vec<LinearTransform>), CkksError> {
        let n = self.slots(ctx.n())?;
        let q0 = ctx.params().q()[0] as f64;
        let delta = ctx.params().default_scale();
        // CtS: slots <- t / (q0 (K + 1)), halved for the real/imaginary split.
        let cts_factor = delta / (q0 * (self.k + 1) as f64 * 2.0);
        // StC: (sin(2 pi x) / 2 pi or arcsin) * q0 / Delta, and 1/tau for the partial trace.
        let tau = (ctx.n() / 2 / n) as f64;
        let sine = if self.arcsine_degree > 0 {
            1.0
        } else {
            1.0 / (2.0 * PI)
        };
        let stc_factor = sine * q0 / (delta * tau);
        let mut cts = dft::coeffs_to_slots(n, self.cts_level_budget, cts_factor);
        let mut stc = dft::slots_to_coeffs(n, self.stc_level_budget, stc_factor);
        for t in cts.iter_mut().chain(stc.iter_mut()) {
            t.bsgs_ratio = self.bsgs_ratio;
        }
        Ok((cts, stc))
    }

    /// The rotations bootstrapping needs (linear transforms and the partial trace); conjugation
    /// is needed too.
    pub fn rotations(&self, ctx: &CkksContext) -> Result<Vec<isize>, CkksError> {
        let (cts, stc) = self.transforms(ctx)?;
        let mut r: Vec<isize> = cts.iter().chain(&stc).flat_map(|t| t.rotations()).collect();
        let n = self.slots(ctx.n())?;
        let mut k = n;
        while k < ctx.n() / 2 {
            r.push(k as isize);
            k *= 2;
        }
        r.sort_unstable();
        r.dedup();
        Ok(r)
    }

    /// The evaluation keys (relinearization, rotations, conjugation) bootstrapping needs.
    pub fn key_request(&self, ctx: &CkksContext) -> Result<KeyRequest, CkksError> {
        Ok(KeyRequest::new()
            .with_relinearization()
            .with_rotations(ctx, &self.rotations(ctx)?)
            .with_conjugation(ctx))
    }
}

/// Everything the server needs to bootstrap: evaluation keys and the two encapsulation keys
/// (dense to sparse at level 0, sparse to dense at the top). Made by the client; no secret.
#[derive(Clone, Debug)]
pub struct BootstrapKeys {
    /// Relinearization, rotation and conjugation keys.
    pub evaluation: EvaluationKeySet,
    /// Switches `s` to the ephemeral sparse `s'` (spans `q_0 p_0` only).
    pub dense_to_sparse: DenseToSparseKey,
    /// Switches `s'` back to `s`.
    pub sparse_to_dense: SparseToDenseKey,
}

impl BootstrapKeys {
    /// Generates the bootstrapping keys of `sk` for `literal` (the client side), all in memory.
    /// [`generate_bootstrap_keys`] streams the same keys one at a time instead.
    pub fn generate<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        literal: &BootstrapParametersLiteral,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        let mut set = EvaluationKeySet::new();
        generate_bootstrap_keys(ctx, sk, literal, &KeyRequest::new(), &mut set, rng)?;
        Self::from_set(set)
    }

    /// Splits a set that holds every bootstrapping key (for example one loaded from files) into
    /// its evaluation keys and the two encapsulation keys.
    pub fn from_set(mut set: EvaluationKeySet) -> Result<Self, CkksError> {
        let (dense_to_sparse, sparse_to_dense) = set.take_encapsulation_keys()?;
        Ok(Self {
            evaluation: set,
            dense_to_sparse,
            sparse_to_dense,
        })
    }

    /// Adds keys generated separately (for example a streamed set) to the evaluation keys.
    pub fn insert(&mut self, key: EvaluationKey) {
        match key {
            EvaluationKey::DenseToSparse(k) => self.dense_to_sparse = k,
            EvaluationKey::SparseToDense(k) => self.sparse_to_dense = k,
            other => self.evaluation.insert(other),
        }
    }
}

/// Time spent in each stage of one bootstrapping, in seconds (measured when `std` is on).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Encapsulation, ModRaise and the partial trace.
    pub mod_raise: f64,
    /// CoeffsToSlots and the real/imaginary split.
    pub coeffs_to_slots: f64,
    /// EvalMod of both halves.
    pub eval_mod: f64,
    /// SlotsToCoeffs.
    pub slots_to_coeffs: f64,
}

/// A server-side bootstrapper: the encoded transforms, the EvalMod polynomials and an
/// [`Evaluator`] holding the bootstrapping keys (usable for the rest of the circuit too).
#[derive(Debug)]
pub struct Bootstrapper {
    ctx: Arc<CkksContext>,
    literal: BootstrapParametersLiteral,
    slots: usize,
    eval: Evaluator,
    dense_to_sparse: DenseToSparseKey,
    sparse_to_dense: SparseToDenseKey,
    cts: Vec<EncodedLinearTransform>,
    eval_scale: f64,
    stc_plain: Vec<LinearTransform>,
    /// SlotsToCoeffs encoded for the level and scale EvalMod leaves, as predicted.
    stc: Vec<EncodedLinearTransform>,
    stc_input: (usize, f64),
    cosine: ChebyshevPoly,
    arcsine: Option<ChebyshevPoly>,
}

impl Bootstrapper {
    /// Builds the bootstrapper: checks the level budget against the parameter set and encodes
    /// the CoeffsToSlots diagonals (SlotsToCoeffs is encoded per call, at the level EvalMod
    /// leaves and for the exact output scale).
    pub fn new(
        ctx: &Arc<CkksContext>,
        literal: BootstrapParametersLiteral,
        keys: BootstrapKeys,
    ) -> Result<Self, CkksError> {
        let slots = literal.slots(ctx.n())?;
        let top = ctx.max_level();
        if literal.depth() > top {
            return Err(CkksError::InvalidArgument {
                reason: "bootstrapping needs more levels than the parameter set has",
            });
        }
        // EvalMod must cover I: with an ephemeral secret of weight h, |I| has a standard
        // deviation of about sqrt(h / 12), and the partial trace of sparse slots sums
        // tau = N / 2n conjugates of it. Ask for seven standard deviations.
        let tau = (ctx.n() / 2 / slots) as f64;
        let sigma_i = libm::sqrt(literal.ephemeral_hamming_weight as f64 / 12.0 * tau);
        if (literal.k as f64) < 7.0 * sigma_i {
            return Err(CkksError::InvalidArgument {
                reason: "the EvalMod interval K is too small for this slot count and ephemeral \
                         secret weight: the partial trace of sparse slots grows the overflow I \
                         by sqrt(N / 2n); raise BootstrapParametersLiteral::k (and the double \
                         angles and EvalMod levels with it)",
            });
        }
        let (cts_plain, stc_plain) = literal.transforms(ctx)?;
        let delta = ctx.params().default_scale();
        let eval_scale = literal
            .log_eval_scale
            .map_or(delta, |l| libm::ldexp(1.0, l as i32));
        // CoeffsToSlots and EvalMod keep the EvalMod scale: their primes must match it, or the
        // scale would drift by the ratio at every level.
        let log_eval = libm::log2(eval_scale);
        let consumed = literal.cts_level_budget + literal.eval_mod_depth();
        for level in (top + 1 - consumed)..=top {
            let log_q = libm::log2(ctx.params().q()[level] as f64);
            if libm::fabs(log_q - log_eval) > 1.5 {
                return Err(CkksError::InvalidArgument {
                    reason: "the primes of the CoeffsToSlots and EvalMod levels must match the \
                             EvalMod scale (see BootstrapParametersLiteral::log_eval_scale)",
                });
            }
        }
        let mut cts = Vec::with_capacity(cts_plain.len());
        for (i, t) in cts_plain.iter().enumerate() {
            let level = top - i;
            let q_l = ctx.params().q()[level] as f64;
            // The first transform moves the scale from Delta to the EvalMod scale.
            let pt_scale = if i == 0 {
                q_l * eval_scale / delta
            } else {
                q_l
            };
            cts.push(t.encode(ctx, level, pt_scale)?);
        }
        // Predict where EvalMod leaves the ciphertexts, and encode SlotsToCoeffs there.
        let cosine = literal.cosine();
        let arcsine = literal.arcsine();
        let q = ctx.params().q();
        let mut level = top - literal.cts_level_budget;
        level -= cosine.depth_at(level)?;
        let mut scale = eval_scale;
        for _ in 0..literal.double_angle {
            scale = scale * scale / q[level] as f64;
            level = level.checked_sub(1).ok_or(CkksError::NoLevelLeft)?;
        }
        if let Some(a) = &arcsine {
            level -= a.depth_at(level)?;
        }
        if level < literal.stc_level_budget {
            return Err(CkksError::NoLevelLeft);
        }
        let stc_input = (level, scale);
        let mut stc = Vec::with_capacity(stc_plain.len());
        for (i, t) in stc_plain.iter().enumerate() {
            let lvl = level - i;
            let q_l = q[lvl] as f64;
            let pt_scale = if i == 0 { q_l * delta / scale } else { q_l };
            stc.push(t.encode(ctx, lvl, pt_scale)?);
        }
        // Every key the circuit needs must be there: a clear error now, not in the middle.
        let request = literal.key_request(ctx)?;
        if keys.evaluation.relinearization().is_none() {
            return Err(CkksError::MissingRelinearizationKey);
        }
        for g in request.distinct_galois_elements() {
            if keys.evaluation.galois(g).is_none() {
                return Err(CkksError::MissingGaloisKey { galois_element: g });
            }
        }
        ctx.check_id(keys.dense_to_sparse.key.params_id)?;
        ctx.check_id(keys.sparse_to_dense.key.params_id)?;
        if keys.dense_to_sparse.key.span() != crate::keyswitch::KeySpan::Encapsulation
            || keys.sparse_to_dense.key.span() != crate::keyswitch::KeySpan::Full
        {
            return Err(CkksError::InvalidArgument {
                reason: "bootstrapping keys of the wrong span",
            });
        }
        let eval = Evaluator::new(ctx, keys.evaluation)?;
        Ok(Self {
            ctx: ctx.clone(),
            cosine,
            arcsine,
            literal,
            slots,
            eval,
            dense_to_sparse: keys.dense_to_sparse,
            sparse_to_dense: keys.sparse_to_dense,
            cts,
            eval_scale,
            stc_plain,
            stc,
            stc_input,
        })
    }

    /// The evaluator with the bootstrapping keys.
    pub fn evaluator(&self) -> &Evaluator {
        &self.eval
    }

    /// The parameters.
    pub fn literal(&self) -> &BootstrapParametersLiteral {
        &self.literal
    }

    /// The level of the output (the top level minus the levels bootstrapping consumes).
    pub fn output_level(&self) -> usize {
        self.stc_input.0 - self.stc.len()
    }

    /// Stage 1: drops `ct` to level 0, switches it to the ephemeral sparse key, reads it modulo
    /// the whole chain and switches back; then the partial trace for sparse slots.
    pub fn mod_raise(&self, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        let e = &self.eval;
        if ct.slots() != self.slots {
            return Err(CkksError::SlotMismatch {
                left: ct.slots(),
                right: self.slots,
            });
        }
        let low = e.relinearize(&e.drop_to_level(ct, 0)?)?;
        // Dense to sparse at level 0.
        let (p0, p1) = self
            .ctx
            .switch_key_level0(&low.parts[1], &self.dense_to_sparse.key)?;
        let mut c0 = low.parts[0].clone();
        c0.try_add_assign(&p0)?;
        let top = self.ctx.max_level() + 1;
        let raise = |p: RnsPoly<Ntt>| -> Result<RnsPoly<Ntt>, CkksError> {
            let coeff = p.into_coeff();
            let m = coeff.moduli()[0];
            let centered: Vec<i64> = coeff.limb(0).iter().map(|&x| m.to_centered(x)).collect();
            Ok(RnsPoly::from_i64(self.ctx.ring(), top, &centered)?.into_ntt())
        };
        let (r0, r1) = (raise(c0)?, raise(p1)?);
        // Sparse to dense at the top level.
        let (k0, k1) = self.ctx.switch_key(&r1, &self.sparse_to_dense.key)?;
        let mut c0 = r0;
        c0.try_add_assign(&k0)?;
        let mut out = ct.derive(vec![c0, k1], ct.scale);
        if self.slots < self.ctx.n() / 2 {
            let tau = self.ctx.n() / 2 / self.slots;
            out.slots = self.ctx.n() / 2;
            out = e.inner_sum(&out, self.slots, tau)?;
            out.slots = self.slots;
        }
        Ok(out)
    }

    /// Stage 2: CoeffsToSlots; returns the real and imaginary halves, each holding
    /// `t_k / (q_0 (K + 1))` in bit-reversed order.
    pub fn coeffs_to_slots(&self, ct: &Ciphertext) -> Result<(Ciphertext, Ciphertext), CkksError> {
        let e = &self.eval;
        let delta = self.ctx.params().default_scale();
        if libm::fabs(ct.scale / delta - 1.0) > 1e-9 {
            return Err(CkksError::ScaleMismatch {
                left: ct.scale,
                right: delta,
            });
        }
        let mut x = ct.clone();
        for t in &self.cts {
            x = e.rescale(&e.linear_transform(&x, t)?)?;
            x.snap_scale(self.eval_scale)?;
        }
        let conj = e.conjugate(&x)?;
        let re = e.add(&x, &conj)?;
        let im = e.mul_by_i(&e.sub(&conj, &x)?)?;
        Ok((re, im))
    }

    /// Stage 3: EvalMod of one half; returns the result and the polynomial statistics.
    pub fn eval_mod(&self, x: &Ciphertext) -> Result<(Ciphertext, PolyEvalStats), CkksError> {
        let e = &self.eval;
        let (mut y, stats) = e.evaluate_chebyshev_same_scale(x, &self.cosine)?;
        for _ in 0..self.literal.double_angle {
            let sq = e.mul_integer(&e.mul_relin(&y, &y)?, 2)?;
            y = e.rescale(&e.add_const(&sq, -1.0)?)?;
        }
        if let Some(arcsine) = &self.arcsine {
            y = e.evaluate_chebyshev_same_scale(&y, arcsine)?.0;
        }
        Ok((y, stats))
    }

    /// Stage 4: SlotsToCoeffs of `re + i im`; the output has the default scale exactly.
    pub fn slots_to_coeffs(
        &self,
        re: &Ciphertext,
        im: &Ciphertext,
    ) -> Result<Ciphertext, CkksError> {
        let e = &self.eval;
        let mut w = e.add(re, &e.mul_by_i(im)?)?;
        let target = self.ctx.params().default_scale();
        let predicted =
            w.level() == self.stc_input.0 && libm::fabs(w.scale / self.stc_input.1 - 1.0) < 1e-9;
        for (i, t) in self.stc_plain.iter().enumerate() {
            let scale_in = w.scale;
            let out = if predicted {
                e.linear_transform(&w, &self.stc[i])?
            } else {
                // Another level or scale than planned (stages used on their own): encode now.
                let q_l = self.ctx.params().q()[w.level()] as f64;
                let pt_scale = if i == 0 { q_l * target / scale_in } else { q_l };
                e.linear_transform(&w, &t.encode(&self.ctx, w.level(), pt_scale)?)?
            };
            w = e.rescale(&out)?;
            // The first transform brings the scale back to the default; the others keep it.
            w.snap_scale(target)?;
        }
        Ok(w)
    }

    /// Bootstraps `ct` (any level, degree 1 or 2, at the default scale, values in about
    /// `[-1, 1]`) to [`Self::output_level`], at the default scale.
    pub fn bootstrap(&self, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.bootstrap_timed(ct).map(|(c, _)| c)
    }

    /// Two bootstrapping iterations for more precision (the iterated bootstrapping of
    /// Bae–Cheon–Cho–Kim–Kim, "META-BTS", CCS 2022): `out_1 = BTS(ct)`; the error
    /// `ct - out_1` is computed exactly at level 0, multiplied by the integer `2^log_gain`
    /// (choose `log_gain` a few bits below the precision of one bootstrap, so the scaled error
    /// stays within `[-1, 1]`), bootstrapped, divided back by `2^log_gain` (one level) and
    /// subtracted. The output is one level below [`Self::output_level`].
    pub fn bootstrap_twice(&self, ct: &Ciphertext, log_gain: u32) -> Result<Ciphertext, CkksError> {
        let e = &self.eval;
        if log_gain == 0 || log_gain > 40 {
            return Err(CkksError::InvalidArgument {
                reason: "the gain of the second iteration must be 1 to 40 bits",
            });
        }
        let out1 = self.bootstrap(ct)?;
        let ct0 = e.relinearize(&e.drop_to_level(ct, 0)?)?;
        let mut low1 = e.drop_to_level(&out1, 0)?;
        low1.snap_scale(ct0.scale)?;
        let diff = e.sub(&ct0, &low1)?;
        let scaled = e.mul_integer(&diff, 1i64 << log_gain)?;
        let out2 = self.bootstrap(&scaled)?;
        let back = libm::ldexp(1.0, -(log_gain as i32));
        let mut corr = e.rescale(&e.mul_const(&out2, back)?)?;
        corr.snap_scale(out1.scale)?;
        let mut out = e.drop_to_level(&out1, corr.level())?;
        e.add_assign(&mut out, &corr)?;
        Ok(out)
    }

    /// [`Self::bootstrap`] with the time of each stage.
    pub fn bootstrap_timed(&self, ct: &Ciphertext) -> Result<(Ciphertext, StageTimes), CkksError> {
        let mut times = StageTimes::default();
        let clock = Clock::start();
        let raised = self.mod_raise(ct)?;
        times.mod_raise = clock.lap();
        let (re, im) = self.coeffs_to_slots(&raised)?;
        times.coeffs_to_slots = clock.lap();
        // The two halves are independent: side by side with `parallel`.
        #[cfg(feature = "parallel")]
        let (re, im) = rayon::join(|| self.eval_mod(&re), || self.eval_mod(&im));
        #[cfg(not(feature = "parallel"))]
        let (re, im) = (self.eval_mod(&re), self.eval_mod(&im));
        let ((re, _), (im, _)) = (re?, im?);
        times.eval_mod = clock.lap();
        let out = self.slots_to_coeffs(&re, &im)?;
        times.slots_to_coeffs = clock.lap();
        Ok((out, times))
    }
}

/// A stopwatch with `std`, a no-op without.
struct Clock {
    #[cfg(feature = "std")]
    last: core::cell::Cell<std::time::Instant>,
}

impl Clock {
    fn start() -> Self {
        Self {
            #[cfg(feature = "std")]
            last: core::cell::Cell::new(std::time::Instant::now()),
        }
    }

    fn lap(&self) -> f64 {
        #[cfg(feature = "std")]
        {
            let now = std::time::Instant::now();
            let t = now.duration_since(self.last.get()).as_secs_f64();
            self.last.set(now);
            t
        }
        #[cfg(not(feature = "std"))]
        {
            0.0
        }
    }
}
