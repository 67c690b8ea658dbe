//! The [`Float`] trait: one forward pass for `f32` and `f64`.
//!
//! Transcendental functions come from the `libm` crate in every build (std or not), so a
//! `no_std` client and a `std` server compute bit-identical reference results.

use core::fmt::{Debug, Display};
use core::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point type the reference forward pass can run in (`f32` or `f64`).
pub trait Float:
    Copy
    + Debug
    + Display
    + Default
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Send
    + Sync
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// The type's name, `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Conversion from `f64` (rounding to nearest for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Exact conversion from `f32`.
    fn from_f32(v: f32) -> Self;
    /// Conversion from a small integer (exact for |v| < 2^24).
    fn from_i32(v: i32) -> Self;
    /// Widening conversion to `f64`.
    fn to_f64(self) -> f64;
    /// e^self.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root (correctly rounded).
    fn sqrt(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// self^e.
    fn powf(self, e: Self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Round to the nearest integer, ties to even (as `torch.round`).
    fn round_ties_even(self) -> Self;
    /// Whether the value is neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// The larger of two values (NaN-ignoring, as IEEE maxNum).
    fn max(self, other: Self) -> Self;
    /// The smaller of two values (NaN-ignoring, as IEEE minNum).
    fn min(self, other: Self) -> Self;
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $exp:path, $ln:path, $sqrt:path, $sin:path, $cos:path, $pow:path,
     $abs:path, $rint:path, $fmax:path, $fmin:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAME: &'static str = $name;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
            #[inline]
            fn from_i32(v: i32) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                $ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                $sqrt(self)
            }
            #[inline]
            fn sin(self) -> Self {
                $sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                $cos(self)
            }
            #[inline]
            fn powf(self, e: Self) -> Self {
                $pow(self, e)
            }
            #[inline]
            fn abs(self) -> Self {
                $abs(self)
            }
            #[inline]
            fn round_ties_even(self) -> Self {
                $rint(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                $fmax(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                $fmin(self, other)
            }
        }
    };
}

impl_float!(
    f32,
    "f32",
    libm::expf,
    libm::logf,
    libm::sqrtf,
    libm::sinf,
    libm::cosf,
    libm::powf,
    libm::fabsf,
    libm::rintf,
    libm::fmaxf,
    libm::fminf
);
impl_float!(
    f64,
    "f64",
    libm::exp,
    libm::log,
    libm::sqrt,
    libm::sin,
    libm::cos,
    libm::pow,
    libm::fabs,
    libm::rint,
    libm::fmax,
    libm::fmin
);

#[cfg(test)]
mod tests {
    use super::Float;

    #[test]
    fn rounding_is_ties_to_even_like_torch_round() {
        for (x, r) in [
            (0.5f64, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-0.5, -0.0),
            (-1.5, -2.0),
            (0.49, 0.0),
        ] {
            assert_eq!(Float::round_ties_even(x), r);
            assert_eq!(Float::round_ties_even(x as f32), r as f32);
        }
    }
}
