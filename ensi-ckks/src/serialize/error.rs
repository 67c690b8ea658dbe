//! The errors of the binary format.

use super::ObjectType;
use crate::error::CkksError;
use core::fmt;

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
    /// The input does not start with [`super::MAGIC`].
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
