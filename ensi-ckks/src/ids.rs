//! The identifiers every serialized object carries in its header: the parameter set's id and
//! the object's type. A leaf module: everything else may refer to it.

use core::fmt;

/// A short, stable identifier of a parameter set: the first 8 bytes of SHA3-256 over a canonical
/// encoding of the literal and the generated primes. Every key, plaintext and ciphertext carries
/// it, so objects of different sets are never mixed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamsId(pub [u8; 8]);

impl fmt::Debug for ParamsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParamsId({self})")
    }
}

impl fmt::Display for ParamsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The kind of object a serialized buffer holds (the header's type tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum ObjectType {
    /// A [`crate::Parameters`] set.
    Parameters = 1,
    /// A [`crate::SecretKey`].
    SecretKey = 2,
    /// A [`crate::PublicKey`].
    PublicKey = 3,
    /// A [`crate::Plaintext`].
    Plaintext = 4,
    /// A [`crate::Ciphertext`].
    Ciphertext = 5,
    /// A [`crate::RelinearizationKey`].
    RelinearizationKey = 6,
    /// A [`crate::GaloisKey`].
    GaloisKey = 7,
    /// A [`crate::DenseToSparseKey`] (bootstrapping).
    DenseToSparseKey = 8,
    /// A [`crate::SparseToDenseKey`] (bootstrapping).
    SparseToDenseKey = 9,
    /// A [`crate::serialize::CiphertextBundle`].
    CiphertextBundle = 10,
    /// A level-0 [`crate::GaloisKey`] (spans `q_0 p_0`, see
    /// [`crate::GaloisKey::generate_level0`]).
    Level0GaloisKey = 11,
}

impl ObjectType {
    /// The type of a tag byte, if known.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            1 => Self::Parameters,
            2 => Self::SecretKey,
            3 => Self::PublicKey,
            4 => Self::Plaintext,
            5 => Self::Ciphertext,
            6 => Self::RelinearizationKey,
            7 => Self::GaloisKey,
            8 => Self::DenseToSparseKey,
            9 => Self::SparseToDenseKey,
            10 => Self::CiphertextBundle,
            11 => Self::Level0GaloisKey,
            _ => return None,
        })
    }
}
