//! CKKS parameters: a plain literal that users write, and the checked, immutable [`Parameters`]
//! built from it by one fallible constructor.
//!
//! The security check follows the Homomorphic Encryption Standard (Albrecht et al.,
//! "Homomorphic Encryption Security Standard", HomomorphicEncryption.org, 2018, Table 1,
//! 128-bit classical security, uniform ternary secret) for `N <= 2^15`; for `N = 2^16` and
//! `2^17` it uses the bounds OpenFHE derives with the same lattice estimator (1747 and 3523
//! bits). The bound applies to `log2(QP)`, the whole modulus key-switching keys live under.

use crate::error::CkksError;
pub use crate::ids::ParamsId;
use alloc::vec::Vec;
use ensi_math::generate_ntt_primes;
use sha3::{Digest, Sha3_256};

/// Largest `log2(QP)` at 128-bit classical security for a uniform ternary secret, by `log2 N`.
const HE_STANDARD_TERNARY_128: [(u32, u32); 8] = [
    (10, 27),
    (11, 54),
    (12, 109),
    (13, 218),
    (14, 438),
    (15, 881),
    (16, 1747),
    (17, 3523),
];

/// The largest `log2(QP)` the Homomorphic Encryption Standard allows at 128-bit classical
/// security for a uniform ternary secret and ring degree `2^log_n`, if tabulated.
pub fn max_log_qp_128(log_n: u32) -> Option<u32> {
    HE_STANDARD_TERNARY_128
        .iter()
        .find(|(l, _)| *l == log_n)
        .map(|(_, b)| *b)
}

/// How secret keys are sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretDistribution {
    /// Coefficients uniform in `{-1, 0, 1}`: the distribution the standard's tables cover.
    UniformTernary,
    /// Ternary with exactly `h` nonzero coefficients. Sparse secrets are not covered by the
    /// standard's tables, so sets using one as the main secret are accepted only by
    /// [`Parameters::new_insecure`]; bootstrapping uses them for ephemeral keys at small moduli.
    SparseTernary {
        /// The exact Hamming weight.
        hamming_weight: usize,
    },
}

/// A parameter set as a user writes it: every field public, nothing checked yet.
#[derive(Clone, Debug, PartialEq)]
pub struct ParametersLiteral {
    /// `log2` of the ring degree `N`.
    pub log_n: u32,
    /// Bit sizes of the primes of the ciphertext modulus `Q`, `q_0` first.
    pub log_q: Vec<u32>,
    /// Bit sizes of the special primes `P` of hybrid key switching.
    pub log_p: Vec<u32>,
    /// Number of key-switching digits the `Q` primes are split into (`dnum`); each digit holds
    /// `ceil(|Q| / dnum)` primes and `P` must be at least as large as every digit.
    pub dnum: usize,
    /// Distribution of the secret key.
    pub secret: SecretDistribution,
    /// Standard deviation of the discrete Gaussian error: must be 3.2 (the standard's value,
    /// and the only one the sampler implements).
    pub error_std: f64,
    /// `log2` of the default encoding scale.
    pub log_default_scale: u32,
}

impl ParametersLiteral {
    /// The default bootstrappable set: `N = 2^16`, scale `2^50`, 26 primes in `Q` and 5 special
    /// primes of 61 bits, 6 digits; `log2(QP) ~ 1735 <= 1747`. `Q`, bottom to top: `q_0` of 60
    /// bits; 13 primes of 50 bits (10 levels for the computation after a bootstrap, 3 for
    /// SlotsToCoeffs); 12 primes of 60 bits (9 for EvalMod at scale `2^60`, 3 for
    /// CoeffsToSlots), as [`crate::BootstrapParametersLiteral::default`] expects.
    pub fn n16_bootstrappable() -> Self {
        let mut log_q = alloc::vec![60];
        log_q.extend(core::iter::repeat_n(50, 13));
        log_q.extend(core::iter::repeat_n(60, 12));
        Self {
            log_n: 16,
            log_q,
            log_p: alloc::vec![61; 5],
            dnum: 6,
            secret: SecretDistribution::UniformTernary,
            error_std: 3.2,
            log_default_scale: 50,
        }
    }

    /// The default leveled set: `N = 2^15`, 15 primes in `Q` (one of 60 bits, 14 of 40), 4
    /// special primes of 60 bits, 4 digits, scale `2^40`; `log2(QP) ~ 860 <= 881`.
    pub fn n15_leveled() -> Self {
        let mut log_q = alloc::vec![60];
        log_q.extend(core::iter::repeat_n(40, 14));
        Self {
            log_n: 15,
            log_q,
            log_p: alloc::vec![60; 4],
            dnum: 4,
            secret: SecretDistribution::UniformTernary,
            error_std: 3.2,
            log_default_scale: 40,
        }
    }

    /// A small, **insecure** set laid out for bootstrapping tests: `N = 2^log_n`, scale `2^50`;
    /// `Q`, bottom to top: a 60-bit `q_0`, `user + 2` primes of 50 bits (the caller's levels
    /// and two for SlotsToCoeffs), `eval_mod + 2` primes of 60 bits (EvalMod at `2^60` and two
    /// for CoeffsToSlots); four 61-bit special primes, 4 digits. Matches a
    /// [`crate::BootstrapParametersLiteral`] with level budgets of 2.
    pub fn insecure_bootstrap_test(log_n: u32, user: usize, eval_mod: usize) -> Self {
        let mut log_q = alloc::vec![60];
        log_q.extend(core::iter::repeat_n(50, user + 2));
        log_q.extend(core::iter::repeat_n(60, eval_mod + 2));
        Self {
            log_n,
            log_q,
            log_p: alloc::vec![61; 4],
            dnum: 4,
            secret: SecretDistribution::UniformTernary,
            error_std: 3.2,
            log_default_scale: 50,
        }
    }

    /// A small, **insecure** set for fast tests: `N = 2^log_n`, `levels + 1` primes in `Q`
    /// (a 50-bit `q_0`, then 40-bit primes), two 50-bit special primes, scale `2^40`.
    pub fn insecure_test(log_n: u32, levels: usize) -> Self {
        let mut log_q = alloc::vec![50];
        log_q.extend(core::iter::repeat_n(40, levels));
        Self {
            log_n,
            dnum: (levels + 1).div_ceil(2),
            log_q,
            log_p: alloc::vec![50, 50],
            secret: SecretDistribution::UniformTernary,
            error_std: 3.2,
            log_default_scale: 40,
        }
    }
}

/// The security a [`Parameters`] value was checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Security {
    /// Within the 128-bit bound of the Homomorphic Encryption Standard.
    Bits128,
    /// Built by [`Parameters::new_insecure`]: for tests only.
    Insecure,
}

/// A checked, immutable CKKS parameter set.
#[derive(Clone, Debug, PartialEq)]
pub struct Parameters {
    literal: ParametersLiteral,
    q: Vec<u64>,
    p: Vec<u64>,
    security: Security,
    id: ParamsId,
}

impl Parameters {
    /// Checks the literal, generates its primes and refuses it unless it meets the 128-bit bound
    /// of the Homomorphic Encryption Standard for a uniform ternary secret.
    pub fn new(literal: ParametersLiteral) -> Result<Self, CkksError> {
        let n = 1usize << literal.log_n.min(31);
        if literal.secret != SecretDistribution::UniformTernary {
            return Err(CkksError::NoSecurityBound { n });
        }
        let params = Self::build(literal, Security::Bits128)?;
        let max = max_log_qp_128(params.literal.log_n).ok_or(CkksError::NoSecurityBound { n })?;
        let log_qp = params.log_qp();
        if log_qp > max as f64 {
            return Err(CkksError::Insecure {
                log_qp,
                max_log_qp: max,
                n,
            });
        }
        Ok(params)
    }

    /// Checks the literal and generates its primes **without** the security check: for tests and
    /// experiments only. The result reports [`Security::Insecure`].
    pub fn new_insecure(literal: ParametersLiteral) -> Result<Self, CkksError> {
        Self::build(literal, Security::Insecure)
    }

    fn build(literal: ParametersLiteral, security: Security) -> Result<Self, CkksError> {
        let log_n = literal.log_n;
        if !(1..=ensi_math::ntt::MAX_LOG_N).contains(&log_n) {
            return Err(CkksError::InvalidLogN { log_n });
        }
        let n = 1usize << log_n;
        if literal.log_q.is_empty() {
            return Err(CkksError::EmptyModulusChain);
        }
        let q_count = literal.log_q.len();
        if literal.dnum == 0 || literal.dnum > q_count {
            return Err(CkksError::InvalidDigitCount {
                dnum: literal.dnum,
                q_count,
            });
        }
        // The Gaussian sampler of ensi-math is a fixed CDT table for sigma = 3.2.
        if literal.error_std != ensi_math::sample::GAUSSIAN_SIGMA {
            return Err(CkksError::InvalidErrorStd);
        }
        if let SecretDistribution::SparseTernary { hamming_weight: h } = literal.secret
            && (h == 0 || h > n)
        {
            return Err(CkksError::InvalidHammingWeight { h, n });
        }
        if literal.log_default_scale >= literal.log_q[0] {
            return Err(CkksError::InvalidScale {
                log_scale: literal.log_default_scale,
                log_q0: literal.log_q[0],
            });
        }
        let all_sizes: Vec<u32> = literal
            .log_q
            .iter()
            .chain(&literal.log_p)
            .copied()
            .collect();
        let primes = generate_distinct_primes(&all_sizes, n)?;
        let (q, p) = primes.split_at(q_count);
        let log_p: f64 = p.iter().map(|&x| log2(x)).sum();
        let alpha = q_count.div_ceil(literal.dnum);
        let log_digit = q
            .chunks(alpha)
            .map(|digit| digit.iter().map(|&x| log2(x)).sum::<f64>())
            .fold(0.0, f64::max);
        if log_p < log_digit {
            return Err(CkksError::SpecialModulusTooSmall { log_p, log_digit });
        }
        let id = params_id(&literal, &primes);
        Ok(Self {
            q: q.to_vec(),
            p: p.to_vec(),
            literal,
            security,
            id,
        })
    }

    /// The literal this set was built from.
    pub fn literal(&self) -> &ParametersLiteral {
        &self.literal
    }

    /// The ring degree `N`.
    pub fn n(&self) -> usize {
        1 << self.literal.log_n
    }

    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.literal.log_n
    }

    /// The maximal number of complex slots, `N / 2`.
    pub fn max_slots(&self) -> usize {
        self.n() / 2
    }

    /// The primes of `Q`, `q_0` first.
    pub fn q(&self) -> &[u64] {
        &self.q
    }

    /// The special primes `P`.
    pub fn p(&self) -> &[u64] {
        &self.p
    }

    /// The highest level: a fresh ciphertext has `max_level() + 1` primes.
    pub fn max_level(&self) -> usize {
        self.q.len() - 1
    }

    /// The number of key-switching digits.
    pub fn dnum(&self) -> usize {
        self.literal.dnum
    }

    /// Primes per key-switching digit, `ceil(|Q| / dnum)`.
    pub fn digit_size(&self) -> usize {
        self.q.len().div_ceil(self.literal.dnum)
    }

    /// The secret distribution.
    pub fn secret(&self) -> SecretDistribution {
        self.literal.secret
    }

    /// The error standard deviation.
    pub fn error_std(&self) -> f64 {
        self.literal.error_std
    }

    /// The default encoding scale, `2^log_default_scale`.
    pub fn default_scale(&self) -> f64 {
        libm::exp2(self.literal.log_default_scale as f64)
    }

    /// `log2(QP)`, from the generated primes.
    pub fn log_qp(&self) -> f64 {
        self.q.iter().chain(&self.p).map(|&x| log2(x)).sum()
    }

    /// The security this set was checked for.
    pub fn security(&self) -> Security {
        self.security
    }

    /// The set's identifier.
    pub fn id(&self) -> ParamsId {
        self.id
    }
}

fn log2(x: u64) -> f64 {
    libm::log2(x as f64)
}

/// One prime per requested size, all distinct, each size class searched downward from `2^bits`.
fn generate_distinct_primes(sizes: &[u32], n: usize) -> Result<Vec<u64>, CkksError> {
    let mut out: Vec<u64> = Vec::with_capacity(sizes.len());
    for &bits in sizes {
        let prime = generate_ntt_primes(bits, 1, n, &out)?;
        out.extend_from_slice(&prime);
    }
    Ok(out)
}

/// SHA3-256 over a canonical little-endian encoding of the literal and the primes, truncated.
fn params_id(literal: &ParametersLiteral, primes: &[u64]) -> ParamsId {
    let mut h = Sha3_256::new();
    h.update(b"ensi-ckks params v1");
    h.update(literal.log_n.to_le_bytes());
    for list in [&literal.log_q, &literal.log_p] {
        h.update((list.len() as u64).to_le_bytes());
        for b in list.iter() {
            h.update(b.to_le_bytes());
        }
    }
    h.update((literal.dnum as u64).to_le_bytes());
    match literal.secret {
        SecretDistribution::UniformTernary => h.update([0u8]),
        SecretDistribution::SparseTernary { hamming_weight } => {
            h.update([1u8]);
            h.update((hamming_weight as u64).to_le_bytes());
        }
    }
    h.update(literal.error_std.to_bits().to_le_bytes());
    h.update(literal.log_default_scale.to_le_bytes());
    for p in primes {
        h.update(p.to_le_bytes());
    }
    let digest = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    ParamsId(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use num_bigint::BigUint;

    #[test]
    fn default_sets_are_secure_and_consistent() {
        for (lit, slots) in [
            (ParametersLiteral::n16_bootstrappable(), 1 << 15),
            (ParametersLiteral::n15_leveled(), 1 << 14),
        ] {
            let params = Parameters::new(lit.clone()).unwrap();
            assert_eq!(params.security(), Security::Bits128);
            assert_eq!(params.max_slots(), slots);
            assert_eq!(params.q().len(), lit.log_q.len());
            // log QP from the generated primes, recomputed with big integers.
            let qp: BigUint = params
                .q()
                .iter()
                .chain(params.p())
                .map(|&x| BigUint::from(x))
                .product();
            let bits = qp.bits() as f64;
            assert!(
                (params.log_qp() - bits).abs() <= 1.0,
                "{} vs {bits}",
                params.log_qp()
            );
            assert!(bits <= max_log_qp_128(lit.log_n).unwrap() as f64);
            for (&q, &b) in params.q().iter().zip(lit.log_q.iter().chain(&lit.log_p)) {
                assert_eq!(64 - q.leading_zeros(), b);
                assert_eq!(q % (2 * params.n() as u64), 1);
            }
            let mut all: Vec<u64> = params.q().iter().chain(params.p()).copied().collect();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), params.q().len() + params.p().len());
        }
    }

    #[test]
    fn refuses_sets_above_the_standard() {
        let mut lit = ParametersLiteral::n15_leveled();
        lit.log_q.push(40);
        match Parameters::new(lit.clone()) {
            Err(CkksError::Insecure {
                max_log_qp: 881,
                n: 32768,
                log_qp,
            }) => {
                assert!(log_qp > 881.0)
            }
            other => panic!("expected an insecure-set error, got {other:?}"),
        }
        let message = Parameters::new(lit.clone()).unwrap_err().to_string();
        assert!(message.contains("881"), "{message}");
        assert_eq!(
            Parameters::new_insecure(lit).unwrap().security(),
            Security::Insecure
        );
        let small = ParametersLiteral::insecure_test(10, 3);
        assert!(matches!(
            Parameters::new(small.clone()),
            Err(CkksError::Insecure { .. })
        ));
        assert!(Parameters::new_insecure(small).is_ok());
        let mut sparse = ParametersLiteral::n15_leveled();
        sparse.secret = SecretDistribution::SparseTernary {
            hamming_weight: 192,
        };
        assert!(matches!(
            Parameters::new(sparse),
            Err(CkksError::NoSecurityBound { .. })
        ));
    }

    #[test]
    fn rejects_malformed_literals() {
        let base = ParametersLiteral::insecure_test(10, 3);
        let mut l = base.clone();
        l.log_n = 18;
        assert_eq!(
            Parameters::new_insecure(l),
            Err(CkksError::InvalidLogN { log_n: 18 })
        );
        let mut l = base.clone();
        l.log_q.clear();
        assert_eq!(
            Parameters::new_insecure(l),
            Err(CkksError::EmptyModulusChain)
        );
        let mut l = base.clone();
        l.dnum = 0;
        assert!(matches!(
            Parameters::new_insecure(l),
            Err(CkksError::InvalidDigitCount { .. })
        ));
        let mut l = base.clone();
        l.error_std = f64::NAN;
        assert_eq!(Parameters::new_insecure(l), Err(CkksError::InvalidErrorStd));
        let mut l = base.clone();
        l.error_std = 3.19;
        assert_eq!(Parameters::new_insecure(l), Err(CkksError::InvalidErrorStd));
        let mut l = base.clone();
        l.log_default_scale = 50;
        assert!(matches!(
            Parameters::new_insecure(l),
            Err(CkksError::InvalidScale { .. })
        ));
        let mut l = base.clone();
        l.dnum = 1;
        assert!(matches!(
            Parameters::new_insecure(l),
            Err(CkksError::SpecialModulusTooSmall { .. })
        ));
        let mut l = base.clone();
        l.secret = SecretDistribution::SparseTernary {
            hamming_weight: 2048,
        };
        assert!(matches!(
            Parameters::new_insecure(l),
            Err(CkksError::InvalidHammingWeight { .. })
        ));
        let mut l = base;
        l.log_q[1] = 70;
        assert!(matches!(
            Parameters::new_insecure(l),
            Err(CkksError::Math(_))
        ));
    }

    #[test]
    fn ids_are_stable_and_distinguish_sets() {
        let a = Parameters::new_insecure(ParametersLiteral::insecure_test(10, 3)).unwrap();
        let b = Parameters::new_insecure(ParametersLiteral::insecure_test(10, 3)).unwrap();
        let c = Parameters::new_insecure(ParametersLiteral::insecure_test(10, 4)).unwrap();
        let mut lit = ParametersLiteral::insecure_test(10, 3);
        lit.log_default_scale = 39;
        let d = Parameters::new_insecure(lit).unwrap();
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
        assert_ne!(a.id(), d.id());
        assert_eq!(format!("{}", a.id()).len(), 16);
    }
}
