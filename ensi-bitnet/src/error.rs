//! The error type of this crate.
//!
//! Every file, byte string and option that reaches this crate is untrusted: decoders and loaders
//! return an [`Error`] naming the offending tensor, key or index, never panic.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Everything that can go wrong in `ensi-bitnet`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A ternary value outside {-1, 0, +1}.
    InvalidTrit {
        /// Position of the value in its tensor (row-major).
        index: usize,
        /// The value found.
        value: i8,
    },
    /// A 2-bit field holding 3 in the 2-bit (bitnet-b1.58-2B-4T) packing.
    InvalidPackedField {
        /// Index of the byte in the packed tensor (row-major).
        byte_index: usize,
        /// Which of the four 2-bit fields (0..4) of that byte.
        field: usize,
    },
    /// A byte of the 5-trits-per-byte packing that is not a valid base-3 number for its trits.
    InvalidPackedByte {
        /// Index of the byte.
        byte_index: usize,
        /// The byte found.
        byte: u8,
    },
    /// A buffer whose length does not fit the shape it is meant to hold.
    LengthMismatch {
        /// What was being read.
        what: String,
        /// The expected length.
        expected: usize,
        /// The actual length.
        actual: usize,
    },
    /// A tensor the model needs is not in the checkpoint.
    MissingTensor {
        /// The tensor's name.
        name: String,
    },
    /// The checkpoint holds a tensor this loader does not know (strict mode).
    UnexpectedTensor {
        /// The tensor's name.
        name: String,
    },
    /// A tensor has the wrong shape.
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape found.
        actual: Vec<usize>,
    },
    /// A tensor has a dtype this loader cannot use there.
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// The dtype found, as safetensors names it.
        dtype: String,
        /// What was accepted.
        expected: &'static str,
    },
    /// A tensor holds a NaN or an infinity (or a non-positive scale).
    InvalidValue {
        /// The tensor's name.
        name: String,
        /// Position of the first bad value.
        index: usize,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A config.json key is missing.
    MissingConfigKey {
        /// The key.
        key: &'static str,
    },
    /// A config.json key (or a model configuration field) has a bad value.
    InvalidConfig {
        /// The key or field.
        key: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// The safetensors container itself is malformed.
    Safetensors {
        /// The container's complaint.
        reason: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The path involved.
        path: String,
        /// The operating system's complaint.
        reason: String,
    },
    /// A token id outside the vocabulary.
    TokenOutOfRange {
        /// Position of the token in the input.
        position: usize,
        /// The token id.
        token: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// The forward pass needs at least one token.
    EmptyInput,
    /// More tokens than the model's `max_position_embeddings`.
    SequenceTooLong {
        /// Number of tokens given.
        len: usize,
        /// The model's limit.
        max: usize,
    },
    /// A malformed compact ternary file (magic, version, header).
    InvalidCompactFile {
        /// Why it is rejected.
        reason: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidTrit { index, value } => {
                write!(
                    f,
                    "value {value} at index {index} is not ternary (-1, 0 or +1)"
                )
            }
            Error::InvalidPackedField { byte_index, field } => write!(
                f,
                "2-bit field {field} of packed byte {byte_index} holds 3, which encodes no ternary value"
            ),
            Error::InvalidPackedByte { byte_index, byte } => write!(
                f,
                "packed byte {byte_index} = {byte} is not a valid base-3 encoding of its trits"
            ),
            Error::LengthMismatch {
                what,
                expected,
                actual,
            } => {
                write!(f, "{what}: expected length {expected}, found {actual}")
            }
            Error::MissingTensor { name } => {
                write!(f, "tensor `{name}` is missing from the checkpoint")
            }
            Error::UnexpectedTensor { name } => {
                write!(f, "tensor `{name}` is not part of this model (misnamed?)")
            }
            Error::ShapeMismatch {
                name,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "tensor `{name}` has shape {actual:?}, expected {expected:?}"
                )
            }
            Error::UnsupportedDtype {
                name,
                dtype,
                expected,
            } => {
                write!(f, "tensor `{name}` has dtype {dtype}, expected {expected}")
            }
            Error::InvalidValue {
                name,
                index,
                reason,
            } => {
                write!(f, "tensor `{name}` element {index}: {reason}")
            }
            Error::MissingConfigKey { key } => write!(f, "config.json: missing key `{key}`"),
            Error::InvalidConfig { key, reason } => write!(f, "config: `{key}`: {reason}"),
            Error::Safetensors { reason } => write!(f, "malformed safetensors file: {reason}"),
            Error::Io { path, reason } => write!(f, "{path}: {reason}"),
            Error::TokenOutOfRange {
                position,
                token,
                vocab_size,
            } => write!(
                f,
                "token {token} at position {position} is outside the vocabulary (size {vocab_size})"
            ),
            Error::EmptyInput => write!(f, "the forward pass needs at least one token"),
            Error::SequenceTooLong { len, max } => {
                write!(
                    f,
                    "{len} tokens exceed the model's max_position_embeddings = {max}"
                )
            }
            Error::InvalidCompactFile { reason } => write!(f, "compact ternary file: {reason}"),
        }
    }
}

impl core::error::Error for Error {}

/// Shorthand for `Result<T, ensi_bitnet::Error>`.
pub type Result<T> = core::result::Result<T, Error>;
