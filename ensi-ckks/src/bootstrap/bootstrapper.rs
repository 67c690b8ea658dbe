//! The server-side bootstrapper: the encoded transforms, the EvalMod polynomials, and every
//! stage of the pipeline as a public method.

use super::{BootstrapKeys, BootstrapParametersLiteral, DenseToSparseKey, SparseToDenseKey};
use crate::ciphertext::Ciphertext;
use crate::context::CkksContext;
use crate::error::CkksError;
use crate::evaluator::{Evaluator, Op};
use crate::lintrans::{EncodedLinearTransform, LinearTransform};
use crate::polynomial::{ChebyshevPoly, PolyEvalStats};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use ensi_math::{Ntt, RnsPoly};

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

impl StageTimes {
    /// The sum of the stages.
    pub fn total(&self) -> f64 {
        self.mod_raise + self.coeffs_to_slots + self.eval_mod + self.slots_to_coeffs
    }

    /// Adds another run's stage times (the iterations of [`Bootstrapper::bootstrap_twice`]).
    pub fn add(&mut self, other: &StageTimes) {
        self.mod_raise += other.mod_raise;
        self.coeffs_to_slots += other.coeffs_to_slots;
        self.eval_mod += other.eval_mod;
        self.slots_to_coeffs += other.slots_to_coeffs;
    }
}

/// Options of [`Bootstrapper::bootstrap_with`]: the hooks a fused normalisation needs.
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapOptions {
    /// A bound on the input's slot values, `|x| <= input_bound` (default 1). Checked against
    /// what EvalMod covers at the input's scale
    /// ([`BootstrapParametersLiteral::log_message_ratio`]): a larger bound is an error, not a
    /// silently wrong result. To bootstrap larger values, lower the input's scale first
    /// ([`Evaluator::set_scale`]).
    pub input_bound: f64,
    /// A slot-wise real factor for the output (for example an RMSNorm gain), folded into the
    /// last SlotsToCoeffs transform: no extra level and no extra product. One value per slot.
    pub gain: Option<Vec<f64>>,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            input_bound: 1.0,
            gain: None,
        }
    }
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
    /// CoeffsToSlots encoded at its levels (empty with `low_memory`).
    cts: Vec<EncodedLinearTransform>,
    cts_plain: Vec<LinearTransform>,
    eval_scale: f64,
    stc_plain: Vec<LinearTransform>,
    /// SlotsToCoeffs encoded for the level and scale EvalMod leaves, as predicted (empty with
    /// `low_memory`).
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
        let eval_scale = literal.eval_scale(ctx);
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
            if literal.low_memory {
                break;
            }
            let level = top - i;
            cts.push(t.encode(ctx, level, cts_pt_scale(ctx, i, level, eval_scale))?);
        }
        // Predict where EvalMod leaves the ciphertexts, and encode SlotsToCoeffs there.
        let cosine = literal.cosine();
        let arcsine = literal.arcsine();
        let q = ctx.params().q();
        let (level, scale) = literal.eval_mod_output(ctx)?;
        let stc_input = (level, scale);
        let mut stc = Vec::with_capacity(stc_plain.len());
        for (i, t) in stc_plain.iter().enumerate() {
            if literal.low_memory {
                break;
            }
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
        let mut evaluation = keys.evaluation;
        if literal.compact_keys {
            evaluation.compact_galois(ctx)?;
            // Each of bootstrapping's Galois keys cut to the highest level it is used at.
            for (g, level) in literal.galois_levels(ctx)? {
                evaluation.truncate_galois(ctx, g, level)?;
            }
        }
        let eval = Evaluator::new(ctx, evaluation)?;
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
            cts_plain,
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

    /// The bytes held: `(keys, encoded transforms)` (the evaluation keys, the two
    /// encapsulation keys; the pre-encoded CoeffsToSlots and SlotsToCoeffs diagonals, none with
    /// [`BootstrapParametersLiteral::low_memory`]).
    pub fn heap_bytes(&self) -> (usize, usize) {
        let keys = self.eval.keys().heap_bytes()
            + self.dense_to_sparse.key.heap_bytes()
            + self.sparse_to_dense.key.heap_bytes();
        let transforms = self
            .cts
            .iter()
            .chain(&self.stc)
            .map(|t| t.heap_bytes())
            .sum();
        (keys, transforms)
    }

    /// The parameters.
    pub fn literal(&self) -> &BootstrapParametersLiteral {
        &self.literal
    }

    /// The level of the output (the top level minus the levels bootstrapping consumes).
    pub fn output_level(&self) -> usize {
        self.stc_input.0 - self.stc_plain.len()
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
    /// `t_k / (q_0 (K + 1))` in bit-reversed order, at the EvalMod scale.
    ///
    /// The input may be at any scale: the transform acts on the raw polynomial `t`, and the
    /// first stage's plaintext scale is chosen so that its output *is* `t / (q_0 (K + 1))` at
    /// the EvalMod scale whatever the input's scale metadata said (the scale is set, not
    /// derived, after that stage).
    pub fn coeffs_to_slots(&self, ct: &Ciphertext) -> Result<(Ciphertext, Ciphertext), CkksError> {
        let e = &self.eval;
        let mut x = ct.clone();
        for (i, t) in self.cts_plain.iter().enumerate() {
            let out = match self.cts.get(i) {
                Some(encoded) => e.linear_transform(&x, encoded)?,
                None => {
                    let pt_scale = cts_pt_scale(&self.ctx, i, x.level(), self.eval_scale);
                    e.linear_transform_streamed(&x, &t.shape(), pt_scale, |k| {
                        Ok(t.diagonals()[&k].clone())
                    })?
                }
            };
            x = e.rescale(&out)?;
            if i == 0 {
                x.reinterpret_scale(self.eval_scale)?;
            } else {
                x.snap_scale(self.eval_scale)?;
            }
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
        self.slots_to_coeffs_scaled(re, im, None)
    }

    /// SlotsToCoeffs whose output slot `t` is multiplied by `factor[t]`: the factor rides in the
    /// last transform's diagonals (`diag(factor) * L`), streamed, so it costs no level and no
    /// product. `None` is [`Self::slots_to_coeffs`].
    pub fn slots_to_coeffs_scaled(
        &self,
        re: &Ciphertext,
        im: &Ciphertext,
        factor: Option<&[f64]>,
    ) -> Result<Ciphertext, CkksError> {
        let e = &self.eval;
        if factor.is_some_and(|f| f.len() != self.slots) {
            return Err(CkksError::InvalidArgument {
                reason: "a bootstrap gain needs one value per slot",
            });
        }
        let w = e.add(re, &e.mul_by_i(im)?)?;
        self.stc_of(w, factor)
    }

    /// SlotsToCoeffs of one slot-encoded ciphertext (at least `stc_level_budget` levels, any
    /// scale): the output's plaintext polynomial has coefficient `bitrev(i)` equal to
    /// `factor Delta Re z_i` and coefficient `N/2 + bitrev(i)` equal to `factor Delta Im z_i`,
    /// for the input's slots `z` (bit reversal over `log2(N/2)` bits; `Delta` the default
    /// scale). The output's scale metadata is `Delta`, so it decodes to `factor z`. `factor`
    /// rides in the last transform's diagonals: a factor below 1 (the coefficient kernel needs
    /// its values far below `q_0`) shrinks the signal only at the last rescale, whose noise is
    /// then the only one it meets at the small size. This is the entry of the coefficient
    /// kernel ([`crate::coeff::SlotCoeffLayout`]). Full slots only.
    pub fn slots_to_coefficients(
        &self,
        ct: &Ciphertext,
        factor: f64,
    ) -> Result<Ciphertext, CkksError> {
        if self.slots != self.ctx.n() / 2 || ct.slots() != self.slots {
            return Err(CkksError::InvalidArgument {
                reason: "SlotsToCoeffs of one ciphertext needs full slots",
            });
        }
        if !(factor.is_finite() && factor > 0.0) {
            return Err(CkksError::InvalidArgument {
                reason: "the SlotsToCoeffs factor must be positive and finite",
            });
        }
        // The transforms carry EvalMod's constant besides the DFT: declare it in the scale.
        let mut w = ct.clone();
        let constant = self.literal.stc_factor(&self.ctx)?;
        self.eval.set_scale(&mut w, ct.scale * constant)?;
        let factors = vec![factor; self.slots];
        self.stc_of(w, Some(&factors))
    }

    /// The SlotsToCoeffs transforms on `w`, the last one times `factor` where given.
    fn stc_of(&self, mut w: Ciphertext, factor: Option<&[f64]>) -> Result<Ciphertext, CkksError> {
        let e = &self.eval;
        let target = self.ctx.params().default_scale();
        let predicted = !self.stc.is_empty()
            && w.level() == self.stc_input.0
            && libm::fabs(w.scale / self.stc_input.1 - 1.0) < 1e-9;
        let last = self.stc_plain.len() - 1;
        for (i, t) in self.stc_plain.iter().enumerate() {
            let scale_in = w.scale;
            let q_l = self.ctx.params().q()[w.level()] as f64;
            let pt_scale = if i == 0 { q_l * target / scale_in } else { q_l };
            let out = if let (true, Some(f)) = (i == last, factor) {
                e.linear_transform_streamed(&w, &t.shape(), pt_scale, |k| {
                    let d = &t.diagonals()[&k];
                    Ok(d.iter().zip(f).map(|(z, &g)| z * g).collect())
                })?
            } else if predicted {
                e.linear_transform(&w, &self.stc[i])?
            } else {
                // Streamed transforms, or another level or scale than planned (stages used on
                // their own): encode each diagonal as it is used.
                e.linear_transform_streamed(&w, &t.shape(), pt_scale, |k| {
                    Ok(t.diagonals()[&k].clone())
                })?
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

    /// Bootstraps `ct` with the hooks of [`BootstrapOptions`]: an input at any scale `S` whose
    /// slots are bounded by `input_bound` (checked against EvalMod's range), and a slot-wise
    /// gain folded into SlotsToCoeffs. The output is at [`Self::output_level`] and the default
    /// scale, holding `gain[t] * x[t]` (exactly `x` when there is no gain).
    pub fn bootstrap_with(
        &self,
        ct: &Ciphertext,
        options: &BootstrapOptions,
    ) -> Result<Ciphertext, CkksError> {
        self.bootstrap_scaled(ct, options.input_bound, options.gain.as_deref(), 1.0)
    }

    /// The bootstrap of a coefficient-encoded input without its SlotsToCoeffs: ModRaise,
    /// CoeffsToSlots and EvalMod of `ct` (any level, scale and slot count; degree 1 or 2) whose
    /// raw plaintext polynomial `t` must stay well below `q_0` (`|t| <= q_0 / 2^log_message_ratio`
    /// for the sine to be near-linear). Returns the halves `(re, im)` at EvalMod's output: slot
    /// `i` of `re` holds `sin(2 pi t_j / q_0)` for `j = bitrev(i)` over `N/2` slots, and of `im`
    /// the same for `j = N/2 + bitrev(i)`; `t_j ~ q_0 / (2 pi) * slot`. This is the bootstrap
    /// of the fused coefficient kernel ([`crate::coeff`]): the products' packed outputs, in
    /// coefficients, come out in slots. Full slots only.
    pub fn bootstrap_coefficients(
        &self,
        ct: &Ciphertext,
    ) -> Result<(Ciphertext, Ciphertext), CkksError> {
        if self.slots != self.ctx.n() / 2 {
            return Err(CkksError::InvalidArgument {
                reason: "the coefficient bootstrap needs a full-slot bootstrapper",
            });
        }
        let mut input = ct.clone();
        input.slots = self.slots;
        self.eval.count(Op::Bootstrap, 1);
        let clock = Clock::start();
        let raised = self.mod_raise(&input)?;
        let (re, im) = self.coeffs_to_slots(&raised)?;
        let out = self.eval_mod_both(&re, &im);
        self.count_micros(clock.lap());
        out
    }

    /// Refreshes two real ciphertexts with one bootstrap: `z = x + i y` is bootstrapped and split
    /// again (`x = (z + conj z) / 2`, `y = (z - conj z) / 2i`; the halves ride in the
    /// SlotsToCoeffs gain), for the cost of one bootstrap and one conjugation. Both inputs must
    /// hold real values, have the same level and scale, and be bounded by
    /// `options.input_bound`; the gain applies to both.
    pub fn bootstrap_pair(
        &self,
        x: &Ciphertext,
        y: &Ciphertext,
        options: &BootstrapOptions,
    ) -> Result<(Ciphertext, Ciphertext), CkksError> {
        let e = &self.eval;
        let z = e.add(x, &e.mul_by_i(y)?)?;
        // |x + i y| <= sqrt(2) * bound.
        let bound = options.input_bound * core::f64::consts::SQRT_2;
        let w = self.bootstrap_scaled(&z, bound, options.gain.as_deref(), 0.5)?;
        let conj = e.conjugate(&w)?;
        let re = e.add(&w, &conj)?;
        let im = e.mul_by_i(&e.sub(&conj, &w)?)?;
        Ok((re, im))
    }

    /// The range check and the pipeline with an output factor `extra * gain * (Delta / S)`.
    fn bootstrap_scaled(
        &self,
        ct: &Ciphertext,
        bound: f64,
        gain: Option<&[f64]>,
        extra: f64,
    ) -> Result<Ciphertext, CkksError> {
        self.bootstrap_scaled_timed(ct, bound, gain, extra)
            .map(|(c, _)| c)
    }

    /// [`Self::bootstrap_scaled`] with the time of each stage.
    fn bootstrap_scaled_timed(
        &self,
        ct: &Ciphertext,
        bound: f64,
        gain: Option<&[f64]>,
        extra: f64,
    ) -> Result<(Ciphertext, StageTimes), CkksError> {
        let delta = self.ctx.params().default_scale();
        self.check_input_range(ct.scale, bound)?;
        let correction = extra * delta / ct.scale;
        let factor: Option<Vec<f64>> = match gain {
            Some(g) => Some(g.iter().map(|x| x * correction).collect()),
            // Within bootstrap()'s scale tolerance the planned (pre-encoded) transforms serve.
            None if libm::fabs(correction - 1.0) > 1e-9 => Some(vec![correction; self.slots]),
            None => None,
        };
        self.eval.count(Op::Bootstrap, 1);
        let mut times = StageTimes::default();
        let clock = Clock::start();
        let raised = self.mod_raise(ct)?;
        times.mod_raise = clock.lap();
        let (re, im) = self.coeffs_to_slots(&raised)?;
        times.coeffs_to_slots = clock.lap();
        let (re, im) = self.eval_mod_both(&re, &im)?;
        times.eval_mod = clock.lap();
        let out = self.slots_to_coeffs_scaled(&re, &im, factor.as_deref())?;
        times.slots_to_coeffs = clock.lap();
        self.count_micros(times.total());
        Ok((out, times))
    }

    /// Adds `seconds` to the evaluator's bootstrap time.
    fn count_micros(&self, seconds: f64) {
        self.eval
            .count(Op::BootstrapMicros, (seconds * 1e6) as usize);
    }

    /// Refuses an input whose raw coefficients (`scale * bound`) come closer to `q_0` than the
    /// message ratio EvalMod is built for.
    pub fn check_input_range(&self, scale: f64, bound: f64) -> Result<(), CkksError> {
        let q0 = self.ctx.params().q()[0] as f64;
        let max = q0 / libm::ldexp(1.0, self.literal.log_message_ratio as i32);
        if !(bound.is_finite() && bound > 0.0 && scale.is_finite() && scale > 0.0)
            || scale * bound > max
        {
            return Err(CkksError::InputOutOfRange {
                bound,
                max_bound: max / scale,
            });
        }
        Ok(())
    }

    /// EvalMod of both halves, side by side with `parallel`.
    fn eval_mod_both(
        &self,
        re: &Ciphertext,
        im: &Ciphertext,
    ) -> Result<(Ciphertext, Ciphertext), CkksError> {
        #[cfg(feature = "parallel")]
        let (re, im) = if self.literal.low_memory {
            (self.eval_mod(re), self.eval_mod(im))
        } else {
            rayon::join(|| self.eval_mod(re), || self.eval_mod(im))
        };
        #[cfg(not(feature = "parallel"))]
        let (re, im) = (self.eval_mod(re), self.eval_mod(im));
        Ok((re?.0, im?.0))
    }

    /// Two bootstrapping iterations for more precision (the iterated bootstrapping of
    /// Bae, Cheon, Cho, Kim and Kim, "META-BTS", CCS 2022): `out_1 = BTS(ct)`; the error
    /// `ct - out_1` is computed exactly at level 0 (both reduce to the same plaintext modulo
    /// `q_0`), multiplied by the integer `2^log_gain` (free), bootstrapped again with the factor
    /// `2^-log_gain` folded into its SlotsToCoeffs diagonals (no level, no product), and added
    /// to `out_1`. The output is at [`Self::output_level`] and the default scale, like
    /// [`Self::bootstrap`]'s, for twice its time; its error is the second bootstrap's,
    /// `2^log_gain` times smaller, plus the last rescale's.
    ///
    /// `log_gain` must keep the scaled error inside EvalMod's range: a few bits below the
    /// worst-slot precision of one bootstrap ([`Self::SECOND_ITERATION_GAIN`] for the default
    /// parameters, whose one bootstrap gives about 19 bits worst slot).
    pub fn bootstrap_twice(&self, ct: &Ciphertext, log_gain: u32) -> Result<Ciphertext, CkksError> {
        self.bootstrap_twice_timed(ct, log_gain).map(|(c, _)| c)
    }

    /// [`Self::bootstrap_twice`] with the stage times summed over both iterations.
    pub fn bootstrap_twice_timed(
        &self,
        ct: &Ciphertext,
        log_gain: u32,
    ) -> Result<(Ciphertext, StageTimes), CkksError> {
        let e = &self.eval;
        if log_gain == 0 || log_gain > 40 {
            return Err(CkksError::InvalidArgument {
                reason: "the gain of the second iteration must be 1 to 40 bits",
            });
        }
        let (out1, mut times) = self.bootstrap_timed(ct)?;
        let ct0 = e.relinearize(&e.drop_to_level(ct, 0)?)?;
        let mut low1 = e.drop_to_level(&out1, 0)?;
        low1.snap_scale(ct0.scale)?;
        // -e_1 = ct - out_1, then 2^log_gain (-e_1): an integer product, no level.
        let diff = e.sub(&ct0, &low1)?;
        let scaled = e.mul_integer(&diff, 1i64 << log_gain)?;
        let back = libm::ldexp(1.0, -(log_gain as i32));
        let (corr, t2) = self.bootstrap_scaled_timed(&scaled, 1.0, None, back)?;
        times.add(&t2);
        let mut out = out1;
        e.add_assign(&mut out, &corr)?;
        Ok((out, times))
    }

    /// The gain (bits) of [`Self::bootstrap_twice`]'s second iteration that suits the default
    /// parameters: one bootstrap's worst slot is about 2^-19, so the scaled error stays below
    /// 2^-2 of EvalMod's range.
    pub const SECOND_ITERATION_GAIN: u32 = 17;

    /// [`Self::bootstrap`] with the time of each stage.
    pub fn bootstrap_timed(&self, ct: &Ciphertext) -> Result<(Ciphertext, StageTimes), CkksError> {
        let delta = self.ctx.params().default_scale();
        if libm::fabs(ct.scale / delta - 1.0) > 1e-9 {
            // Another input scale needs the output correction of `bootstrap_with`.
            return Err(CkksError::ScaleMismatch {
                left: ct.scale,
                right: delta,
            });
        }
        self.bootstrap_scaled_timed(ct, 1.0, None, 1.0)
    }
}

/// The plaintext scale of CoeffsToSlots transform `i` at `level`: the first one moves the
/// scale from `Delta` to the EvalMod scale, the others keep it.
fn cts_pt_scale(ctx: &CkksContext, i: usize, level: usize, eval_scale: f64) -> f64 {
    let q_l = ctx.params().q()[level] as f64;
    if i == 0 {
        q_l * eval_scale / ctx.params().default_scale()
    } else {
        q_l
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
