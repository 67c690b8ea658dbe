//! The error type of `ensi-ckks`.

use crate::ids::{ObjectType, ParamsId};
use core::fmt;
use ensi_math::MathError;

/// Everything that can go wrong in `ensi-ckks`, with the values that caused it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CkksError {
    /// An error of the arithmetic layer.
    Math(MathError),
    /// The ring degree is outside the supported range.
    InvalidLogN {
        /// The rejected `log2 N`.
        log_n: u32,
    },
    /// The modulus chain `Q` is empty.
    EmptyModulusChain,
    /// The key-switching digit count is zero or exceeds the number of `Q` primes.
    InvalidDigitCount {
        /// The rejected digit count.
        dnum: usize,
        /// The number of `Q` primes.
        q_count: usize,
    },
    /// The special modulus `P` is smaller than the largest key-switching digit of `Q`, so hybrid
    /// key switching would not reduce the noise it adds.
    SpecialModulusTooSmall {
        /// Bits of `P`.
        log_p: f64,
        /// Bits of the largest digit.
        log_digit: f64,
    },
    /// The parameter set exceeds the 128-bit bound of the Homomorphic Encryption Standard.
    Insecure {
        /// `log2(QP)` of the set.
        log_qp: f64,
        /// The largest `log2(QP)` allowed at this ring degree and secret distribution.
        max_log_qp: u32,
        /// The ring degree.
        n: usize,
    },
    /// No 128-bit bound is tabulated for this ring degree and secret distribution.
    NoSecurityBound {
        /// The ring degree.
        n: usize,
    },
    /// The error standard deviation is not 3.2, the only value the Gaussian sampler implements.
    InvalidErrorStd,
    /// The exact Hamming weight of a sparse secret is zero or exceeds the ring degree.
    InvalidHammingWeight {
        /// The requested weight.
        h: usize,
        /// The ring degree.
        n: usize,
    },
    /// The default scale does not fit below the first prime.
    InvalidScale {
        /// `log2` of the scale.
        log_scale: u32,
        /// Bits of the first prime `q_0`.
        log_q0: u32,
    },
    /// A slot count that is not a power of two up to `N/2`.
    InvalidSlotCount {
        /// The rejected slot count.
        slots: usize,
        /// The largest slot count, `N/2`.
        max: usize,
    },
    /// More values than slots (or coefficients) to encode them in.
    TooManyValues {
        /// How many values were given.
        given: usize,
        /// How many fit.
        slots: usize,
    },
    /// An encoding scale that is not a finite number of at least 1.
    InvalidEncodingScale {
        /// The rejected scale.
        scale: f64,
    },
    /// A level above the highest level of the parameter set.
    InvalidLevel {
        /// The requested level.
        level: usize,
        /// The highest level.
        max: usize,
    },
    /// An object of another parameter set.
    ParamsMismatch {
        /// The identifier of this context's parameter set.
        expected: ParamsId,
        /// The identifier the object carries.
        found: ParamsId,
    },
    /// A ciphertext with no polynomials.
    EmptyCiphertext,
    /// A value whose scaled magnitude does not fit the encoding (at most 2^126), or is not finite.
    ValueTooLarge {
        /// The offending value, after scaling.
        value: f64,
    },
    /// A malformed serialized object (see [`crate::serialize`]).
    Format(FormatError),
    /// Two operands at different levels (drop the higher one with
    /// [`crate::Evaluator::drop_to_level`] first).
    LevelMismatch {
        /// Level of the left operand.
        left: usize,
        /// Level of the right operand.
        right: usize,
    },
    /// Two operands whose scales differ (relative difference above `2^-30`).
    ScaleMismatch {
        /// Scale of the left operand.
        left: f64,
        /// Scale of the right operand.
        right: f64,
    },
    /// Two operands with different slot counts.
    SlotMismatch {
        /// Slots of the left operand.
        left: usize,
        /// Slots of the right operand.
        right: usize,
    },
    /// A ciphertext of a degree the operation does not accept.
    InvalidDegree {
        /// The ciphertext's degree.
        degree: usize,
        /// The degree the operation needs.
        expected: usize,
    },
    /// A rescale or level drop with no level left to consume.
    NoLevelLeft,
    /// The evaluator has no relinearization key.
    MissingRelinearizationKey,
    /// The evaluator has no Galois key for this element (rotation or conjugation).
    MissingGaloisKey {
        /// The Galois element `k` of `X -> X^k`.
        galois_element: usize,
    },
    /// The scale of a result would not fit below the modulus at its level.
    ScaleOverflow {
        /// `log2` of the resulting scale.
        log_scale: f64,
        /// `log2` of the modulus at the ciphertext's level.
        log_q: f64,
    },
    /// The ephemeral sparse secret of bootstrapping is too sparse for the modulus its key
    /// lives at: the estimate of [`crate::security`] is below 128 bits.
    InsecureEphemeralSecret {
        /// The requested Hamming weight.
        hamming_weight: usize,
        /// The smallest weight the estimate accepts at this modulus.
        min_hamming_weight: usize,
        /// `log2` of the modulus of the dense-to-sparse key, `q_0 p_0`.
        log_modulus: f64,
        /// The ring degree.
        n: usize,
    },
    /// A secret key's coefficients are not of its declared distribution (not in `{-1, 0, 1}`,
    /// or not of the exact Hamming weight of a sparse set).
    InvalidSecretKey,
    /// A bootstrap input's stated bound exceeds what EvalMod covers at its scale.
    InputOutOfRange {
        /// The caller's bound on the slot values.
        bound: f64,
        /// The largest bound EvalMod covers at this scale.
        max_bound: f64,
    },
    /// A bootstrapping key (dense-to-sparse or sparse-to-dense) is missing.
    MissingBootstrapKey {
        /// Which one.
        which: &'static str,
    },
    /// An invalid argument, described.
    InvalidArgument {
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for CkksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Math(e) => write!(f, "{e}"),
            Self::InvalidLogN { log_n } => {
                write!(f, "log N = {log_n} is outside the supported range 1..=17")
            }
            Self::EmptyModulusChain => write!(f, "the modulus chain Q needs at least one prime"),
            Self::InvalidDigitCount { dnum, q_count } => write!(
                f,
                "invalid key-switching digit count {dnum}: must be between 1 and the {q_count} \
                 primes of Q"
            ),
            Self::SpecialModulusTooSmall { log_p, log_digit } => write!(
                f,
                "special modulus P has {log_p:.1} bits, less than the largest key-switching digit \
                 ({log_digit:.1} bits): add special primes or increase dnum"
            ),
            Self::Insecure {
                log_qp,
                max_log_qp,
                n,
            } => write!(
                f,
                "log2(QP) = {log_qp:.1} exceeds {max_log_qp}, the 128-bit bound of the \
                 Homomorphic Encryption Standard for N = {n} with a uniform ternary secret"
            ),
            Self::NoSecurityBound { n } => write!(
                f,
                "no 128-bit security bound is tabulated for N = {n} and this secret \
                 distribution; use the insecure test constructor if this is a test"
            ),
            Self::InvalidErrorStd => {
                write!(
                    f,
                    "the error standard deviation must be 3.2, the only one the sampler implements"
                )
            }
            Self::InvalidHammingWeight { h, n } => {
                write!(
                    f,
                    "Hamming weight {h} must be between 1 and the ring degree {n}"
                )
            }
            Self::InvalidScale { log_scale, log_q0 } => write!(
                f,
                "default scale 2^{log_scale} does not fit below the first prime ({log_q0} bits)"
            ),
            Self::InvalidSlotCount { slots, max } => {
                write!(
                    f,
                    "invalid slot count {slots}: must be a power of two up to {max}"
                )
            }
            Self::TooManyValues { given, slots } => {
                write!(f, "{given} values do not fit in {slots} slots")
            }
            Self::InvalidEncodingScale { scale } => {
                write!(
                    f,
                    "invalid encoding scale {scale}: must be finite and at least 1"
                )
            }
            Self::InvalidLevel { level, max } => {
                write!(
                    f,
                    "level {level} exceeds the highest level {max} of the parameter set"
                )
            }
            Self::ParamsMismatch { expected, found } => write!(
                f,
                "object belongs to parameter set {found}, not to this context's {expected}"
            ),
            Self::EmptyCiphertext => write!(f, "a ciphertext needs at least one polynomial"),
            Self::ValueTooLarge { value } => {
                write!(f, "scaled value {value:e} is not finite or exceeds 2^126")
            }
            Self::Format(e) => write!(f, "{e}"),
            Self::LevelMismatch { left, right } => write!(
                f,
                "operands at different levels ({left} and {right}): drop the higher one first"
            ),
            Self::ScaleMismatch { left, right } => write!(
                f,
                "operands at different scales (2^{:.4} and 2^{:.4})",
                libm::log2(*left),
                libm::log2(*right)
            ),
            Self::SlotMismatch { left, right } => {
                write!(
                    f,
                    "operands with different slot counts ({left} and {right})"
                )
            }
            Self::InvalidDegree { degree, expected } => write!(
                f,
                "ciphertext of degree {degree} where degree {expected} is needed"
            ),
            Self::NoLevelLeft => write!(f, "no level left: the ciphertext is at level 0"),
            Self::MissingRelinearizationKey => {
                write!(f, "the evaluator has no relinearization key")
            }
            Self::MissingGaloisKey { galois_element } => write!(
                f,
                "the evaluator has no Galois key for element {galois_element} (generate it with \
                 the rotation or conjugation keys)"
            ),
            Self::ScaleOverflow { log_scale, log_q } => write!(
                f,
                "a scale of 2^{log_scale:.2} does not fit below the modulus of 2^{log_q:.2} bits \
                 at this level: rescale first"
            ),
            Self::InsecureEphemeralSecret {
                hamming_weight,
                min_hamming_weight,
                log_modulus,
                n,
            } => write!(
                f,
                "an ephemeral secret of Hamming weight {hamming_weight} is below 128-bit security                  at N = {n} and log2(q_0 p_0) = {log_modulus:.1}: use at least                  {min_hamming_weight}"
            ),
            Self::InvalidSecretKey => write!(
                f,
                "secret key coefficients outside the declared distribution (ternary, and of the                  exact Hamming weight for a sparse set)"
            ),
            Self::InputOutOfRange { bound, max_bound } => write!(
                f,
                "a bootstrap input bounded by {bound} exceeds what EvalMod covers at its scale \
                 (at most {max_bound:.3}): lower the input's scale, or lower \
                 BootstrapParametersLiteral::log_message_ratio (less EvalMod precision)"
            ),
            Self::MissingBootstrapKey { which } => write!(
                f,
                "the {which} key of bootstrapping is missing (generate the keys with --bootstrap)"
            ),
            Self::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
        }
    }
}

impl core::error::Error for CkksError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Math(e) => Some(e),
            Self::Format(e) => Some(e),
            _ => None,
        }
    }
}

impl From<MathError> for CkksError {
    fn from(e: MathError) -> Self {
        Self::Math(e)
    }
}

/// What is wrong with a serialized object (wrapped in [`CkksError::Format`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum FormatError {
    /// The input ends before a field.
    Truncated {
        /// Bytes the next field needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// Bytes remain after the object.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The input does not start with [`crate::serialize::MAGIC`].
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A format version this crate does not read.
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
        /// The version this crate reads.
        supported: u16,
    },
    /// The header announces another kind of object.
    WrongObjectType {
        /// The type the caller asked for.
        expected: ObjectType,
        /// The tag in the header.
        found: u8,
    },
    /// A field holds a value outside its allowed range (a reserved byte, an unknown tag, a
    /// count above its limit, a value too large to encode).
    InvalidField {
        /// The field's name in `FORMAT.md`.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A residue is not below its prime.
    ResidueOutOfRange {
        /// The limb (prime index).
        limb: usize,
        /// The residue.
        value: u64,
        /// The prime.
        q: u64,
    },
    /// The padding bits at the end of a packed limb are not zero.
    NonZeroPadding,
    /// A secret key coefficient is not in `{-1, 0, 1}` (on decoding: the invalid 2-bit code
    /// `0b10`; on encoding: a key that is not ternary).
    InvalidSecretCoefficient,
    /// A scale that is not finite and positive.
    InvalidScale {
        /// The scale found.
        scale: f64,
    },
    /// The parameter set is marked insecure and [`super::DecodeOptions::allow_insecure`] is off.
    InsecureParameters,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, available } => write!(
                f,
                "truncated input: the next field needs {needed} bytes, {available} are left"
            ),
            Self::TrailingBytes { count } => {
                write!(f, "{count} trailing bytes after the object")
            }
            Self::BadMagic { found } => {
                write!(f, "bad magic bytes {found:02x?}: not an ensi object")
            }
            Self::UnsupportedVersion { found, supported } => write!(
                f,
                "format version {found} is not supported (this build reads version {supported})"
            ),
            Self::WrongObjectType { expected, found } => {
                write!(f, "expected a {expected:?} object, found type tag {found}")
            }
            Self::InvalidField { field, value } => {
                write!(f, "field `{field}` has the invalid value {value}")
            }
            Self::ResidueOutOfRange { limb, value, q } => {
                write!(
                    f,
                    "residue {value} of limb {limb} is not below its prime {q}"
                )
            }
            Self::NonZeroPadding => write!(f, "nonzero padding bits in a packed limb"),
            Self::InvalidSecretCoefficient => {
                write!(f, "a secret key coefficient is not in {{-1, 0, 1}}")
            }
            Self::InvalidScale { scale } => {
                write!(f, "scale {scale} is not finite and positive")
            }
            Self::InsecureParameters => write!(
                f,
                "the parameter set is marked insecure; decode it only with \
                 DecodeOptions::allow_insecure, for tests"
            ),
        }
    }
}

impl core::error::Error for FormatError {}

impl From<FormatError> for CkksError {
    fn from(e: FormatError) -> Self {
        Self::Format(e)
    }
}
