//! The error type of `ensi-math`.

use core::fmt;

/// Everything that can go wrong in `ensi-math`, with the values that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MathError {
    /// A modulus outside the supported range (odd, at least 3, below 2^62).
    InvalidModulus {
        /// The rejected modulus.
        q: u64,
    },
    /// A ring degree that is not a power of two in the supported range.
    InvalidRingDegree {
        /// The rejected degree.
        n: usize,
        /// Smallest supported degree.
        min: usize,
        /// Largest supported degree.
        max: usize,
    },
    /// The modulus has no primitive 2N-th root of unity (it is not prime, or q != 1 mod 2N).
    NotNttFriendly {
        /// The modulus.
        q: u64,
        /// The ring degree N.
        n: usize,
    },
    /// Not enough primes of the requested size are congruent to 1 mod 2N.
    NotEnoughPrimes {
        /// Requested bit size.
        bits: u32,
        /// Ring degree N.
        n: usize,
        /// How many were asked for.
        wanted: usize,
    },
    /// A requested prime bit size outside the supported range.
    InvalidPrimeSize {
        /// The rejected bit size.
        bits: u32,
    },
    /// Two lengths that must agree do not.
    LengthMismatch {
        /// The length that was expected.
        expected: usize,
        /// The length that was found.
        found: usize,
    },
    /// An RNS basis with no primes, or a prime listed twice.
    InvalidBasis,
    /// A value is not below the modulus it is meant to be reduced by.
    ValueOutOfRange {
        /// The value.
        value: u64,
        /// The modulus.
        q: u64,
    },
    /// Two operands live over different contexts (ring degree or moduli differ).
    ContextMismatch,
    /// A Galois element that is not an odd residue modulo 2N.
    InvalidGaloisElement {
        /// The rejected element.
        k: usize,
    },
    /// A Hamming weight larger than the ring degree.
    InvalidHammingWeight {
        /// The requested weight.
        h: usize,
        /// The ring degree.
        n: usize,
    },
    /// This CPU cannot run the requested NTT backend.
    BackendUnavailable {
        /// The requested backend's name (as `ENSI_NTT_BACKEND` spells it).
        backend: &'static str,
    },
}

impl fmt::Display for MathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidModulus { q } => {
                write!(
                    f,
                    "invalid modulus {q}: must be odd, at least 3 and below 2^62"
                )
            }
            Self::InvalidRingDegree { n, min, max } => {
                write!(
                    f,
                    "invalid ring degree {n}: must be a power of two in [{min}, {max}]"
                )
            }
            Self::NotNttFriendly { q, n } => write!(
                f,
                "modulus {q} has no primitive {}-th root of unity (needs a prime q = 1 mod 2N)",
                2 * n
            ),
            Self::NotEnoughPrimes { bits, n, wanted } => write!(
                f,
                "fewer than {wanted} primes of {bits} bits are congruent to 1 mod {}",
                2 * n
            ),
            Self::InvalidPrimeSize { bits } => {
                write!(
                    f,
                    "invalid prime size {bits} bits: supported sizes are 20 to 62 bits"
                )
            }
            Self::LengthMismatch { expected, found } => {
                write!(f, "length mismatch: expected {expected}, found {found}")
            }
            Self::InvalidBasis => write!(f, "an RNS basis needs at least one prime and no repeats"),
            Self::ValueOutOfRange { value, q } => {
                write!(f, "value {value} is not below its modulus {q}")
            }
            Self::ContextMismatch => write!(f, "operands belong to different ring contexts"),
            Self::InvalidGaloisElement { k } => {
                write!(f, "Galois element {k} is not an odd residue modulo 2N")
            }
            Self::InvalidHammingWeight { h, n } => {
                write!(f, "Hamming weight {h} exceeds the ring degree {n}")
            }
            Self::BackendUnavailable { backend } => {
                write!(f, "this CPU cannot run the {backend} NTT backend")
            }
        }
    }
}

impl core::error::Error for MathError {}
