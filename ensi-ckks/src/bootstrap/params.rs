//! The parameters of bootstrapping: level budgets, the EvalMod polynomial, the ephemeral
//! secret's weight, and what follows from them (the transforms' rotations, the keys to request).

use super::dft;
use crate::context::CkksContext;
use crate::error::CkksError;
use crate::evalkeys::KeyRequest;
use crate::lintrans::{LinearTransform, TransformShape};
use crate::params::Parameters;
use crate::polynomial::ChebyshevPoly;
use alloc::vec::Vec;
use core::f64::consts::PI;

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
    /// The least `log2(q_0 / (scale * bound))` an input may have: how far below `q_0` the
    /// message's raw coefficients must stay for EvalMod's sine to approximate `x mod q_0`
    /// (its error grows as `(2 pi scale bound / q_0)^2`). Default 8 (Lattigo's default message
    /// ratio): at the default set (`q_0 ~ 2^60`, scale `2^50`) inputs up to `|x| <= 4`.
    pub log_message_ratio: u32,
    /// Low-memory evaluation: the CoeffsToSlots and SlotsToCoeffs diagonals are encoded during
    /// each bootstrap instead of held encoded (at the default N = 2^16 set 3.1 GB less, the
    /// diagonals at 24-26 and 11-13 primes; each bootstrap then encodes ~380 diagonals, one FFT
    /// and one NTT per prime each), and the two EvalMod halves run one after the other instead
    /// of side by side (half EvalMod's working memory, about 1 s more on 2 threads). With
    /// [`Self::compact_keys`], a bootstrap at the default set peaks below 6 GB. Default `false`.
    pub low_memory: bool,
    /// Compact the Galois keys handed to the bootstrapper
    /// ([`crate::EvaluationKeySet::compact_galois`]): their uniform halves are regenerated from
    /// the seeds at each rotation; and cut each key of bootstrapping's own rotations to the
    /// highest level bootstrapping uses it at ([`crate::SwitchingKey::truncate`]: a circuit
    /// that also rotates by those steps above that level needs its own keys).
    /// [`crate::BootstrapKeys::generate`] compacts each key as it is made. At the default
    /// N = 2^16 set, 4.3 GB less for a ChaCha20 pass over the limbs each rotation reads.
    /// Default `false`.
    pub compact_keys: bool,
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
            log_message_ratio: 8,
            low_memory: false,
            compact_keys: false,
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

    /// The EvalMod scale: `2^log_eval_scale`, or the default scale.
    pub(crate) fn eval_scale(&self, ctx: &CkksContext) -> f64 {
        self.log_eval_scale
            .map_or(ctx.params().default_scale(), |l| libm::ldexp(1.0, l as i32))
    }

    /// Where EvalMod leaves the ciphertexts (the input of SlotsToCoeffs): `(level, scale)`,
    /// as the scales evolve through the cosine, the double angles and the arcsine.
    pub(crate) fn eval_mod_output(&self, ctx: &CkksContext) -> Result<(usize, f64), CkksError> {
        let q = ctx.params().q();
        let mut level = ctx
            .max_level()
            .checked_sub(self.cts_level_budget)
            .ok_or(CkksError::NoLevelLeft)?;
        level = level
            .checked_sub(self.cosine().depth_at(level)?)
            .ok_or(CkksError::NoLevelLeft)?;
        let mut scale = self.eval_scale(ctx);
        for _ in 0..self.double_angle {
            scale = scale * scale / q[level] as f64;
            level = level.checked_sub(1).ok_or(CkksError::NoLevelLeft)?;
        }
        if let Some(a) = &self.arcsine() {
            level = level
                .checked_sub(a.depth_at(level)?)
                .ok_or(CkksError::NoLevelLeft)?;
        }
        if level < self.stc_level_budget {
            return Err(CkksError::NoLevelLeft);
        }
        Ok((level, scale))
    }

    /// The highest level bootstrapping uses each of its Galois elements at: the partial
    /// trace's at the top, CoeffsToSlots transform `i` at `top - i`, the conjugation after
    /// CoeffsToSlots, SlotsToCoeffs transform `i` at EvalMod's output level minus `i`. What
    /// [`Self::compact_keys`] cuts the keys to.
    pub fn galois_levels(
        &self,
        ctx: &CkksContext,
    ) -> Result<alloc::collections::BTreeMap<usize, usize>, CkksError> {
        let top = ctx.max_level();
        let slots = self.slots(ctx.n())?;
        let (cts, stc) = self.transforms(ctx)?;
        let (stc_level, _) = self.eval_mod_output(ctx)?;
        let mut highest = alloc::collections::BTreeMap::new();
        let mut use_at = |g: usize, level: usize| {
            let h = highest.entry(g).or_insert(level);
            *h = (*h).max(level);
        };
        let mut k = slots;
        while k < ctx.n() / 2 {
            use_at(ctx.rotation_galois_element(k as isize), top);
            k *= 2;
        }
        for (i, t) in cts.iter().enumerate() {
            for g in t.galois_elements(ctx) {
                use_at(g, top - i);
            }
        }
        use_at(
            ctx.conjugation_galois_element(),
            top - self.cts_level_budget,
        );
        for (i, t) in stc.iter().enumerate() {
            for g in t.galois_elements(ctx) {
                use_at(g, stc_level - i);
            }
        }
        Ok(highest)
    }

    /// Levels consumed by the whole bootstrapping.
    pub fn depth(&self) -> usize {
        self.cts_level_budget + self.eval_mod_depth() + self.stc_level_budget
    }

    /// The CoeffsToSlots and SlotsToCoeffs transforms (plain), for `ctx`.
    /// The constant the SlotsToCoeffs transforms carry besides the DFT:
    /// `(sin(2 pi x) / 2 pi, or arcsin) * q_0 / Delta`, and `1 / tau` for the partial trace.
    pub(crate) fn stc_factor(&self, ctx: &CkksContext) -> Result<f64, CkksError> {
        let n = self.slots(ctx.n())?;
        let q0 = ctx.params().q()[0] as f64;
        let delta = ctx.params().default_scale();
        let tau = (ctx.n() / 2 / n) as f64;
        let sine = if self.arcsine_degree > 0 {
            1.0
        } else {
            1.0 / (2.0 * PI)
        };
        Ok(sine * q0 / (delta * tau))
    }

    pub(crate) fn transforms(
        &self,
        ctx: &CkksContext,
    ) -> Result<(Vec<LinearTransform>, Vec<LinearTransform>), CkksError> {
        let n = self.slots(ctx.n())?;
        let q0 = ctx.params().q()[0] as f64;
        let delta = ctx.params().default_scale();
        // CtS: slots <- t / (q0 (K + 1)), halved for the real/imaginary split.
        let cts_factor = delta / (q0 * (self.k + 1) as f64 * 2.0);
        let stc_factor = self.stc_factor(ctx)?;
        let mut cts = dft::coeffs_to_slots(n, self.cts_level_budget, cts_factor);
        let mut stc = dft::slots_to_coeffs(n, self.stc_level_budget, stc_factor);
        for t in cts.iter_mut().chain(stc.iter_mut()) {
            t.bsgs_ratio = self.bsgs_ratio;
        }
        Ok((cts, stc))
    }

    /// The rotations bootstrapping needs (linear transforms and the partial trace); conjugation
    /// is needed too. Computed from the parameter set alone: the diagonals of each grouped DFT
    /// stage follow from its butterfly spans (the sums of each stage's `0, ±h`), so no transform is
    /// built and a constrained client can list its keys in a few kilobytes.
    pub fn rotations_of(&self, params: &Parameters) -> Result<Vec<isize>, CkksError> {
        let n = self.slots(params.n())?;
        let mut r: Vec<isize> = [false, true]
            .into_iter()
            .flat_map(|forward| {
                let budget = if forward {
                    self.stc_level_budget
                } else {
                    self.cts_level_budget
                };
                dft::grouped_indices(n, budget, forward)
            })
            .map(|indices| {
                let mut shape = TransformShape::new(n, indices.into_iter().map(|k| k as isize))?;
                shape.bsgs_ratio = self.bsgs_ratio;
                Ok(shape.rotations())
            })
            .collect::<Result<Vec<_>, CkksError>>()?
            .into_iter()
            .flatten()
            .collect();
        let mut k = n;
        while k < params.n() / 2 {
            r.push(k as isize);
            k *= 2;
        }
        r.sort_unstable();
        r.dedup();
        Ok(r)
    }

    /// [`Self::rotations_of`] for the parameter set of `ctx`.
    pub fn rotations(&self, ctx: &CkksContext) -> Result<Vec<isize>, CkksError> {
        self.rotations_of(ctx.params())
    }

    /// The evaluation keys (relinearization, rotations, conjugation) bootstrapping needs, from
    /// the parameter set alone.
    pub fn key_request_of(&self, params: &Parameters) -> Result<KeyRequest, CkksError> {
        let mut request = KeyRequest::new()
            .with_relinearization()
            .with_rotations_of(params, &self.rotations_of(params)?);
        request
            .galois_elements
            .push(params.conjugation_galois_element());
        Ok(request)
    }

    /// [`Self::key_request_of`] for the parameter set of `ctx`.
    pub fn key_request(&self, ctx: &CkksContext) -> Result<KeyRequest, CkksError> {
        self.key_request_of(ctx.params())
    }
}
