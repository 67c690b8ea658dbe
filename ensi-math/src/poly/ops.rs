//! Ring arithmetic on [`RnsPoly`]: additions in both representations, pointwise products in the
//! NTT representation, scalar products.

use super::{Ntt, Representation, RnsPoly};
use crate::error::MathError;
use crate::rns::par;
use core::ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub, SubAssign};

impl<R: Representation> RnsPoly<R> {
    fn zip_assign<F>(&mut self, other: &Self, f: F) -> Result<(), MathError>
    where
        F: Fn(&crate::Modulus, u64, u64) -> u64 + Send + Sync,
    {
        self.check_compatible(other)?;
        let moduli = self.ctx.basis.moduli();
        par::for_each_limb_zip(&mut self.data, &other.data, self.ctx.n, |i, a, b| {
            let m = &moduli[i];
            for (x, &y) in a.iter_mut().zip(b) {
                *x = f(m, *x, y);
            }
        });
        Ok(())
    }

    /// `self += other`.
    pub fn try_add_assign(&mut self, other: &Self) -> Result<(), MathError> {
        self.zip_assign(other, |m, a, b| m.add(a, b))
    }

    /// `self -= other`.
    pub fn try_sub_assign(&mut self, other: &Self) -> Result<(), MathError> {
        self.zip_assign(other, |m, a, b| m.sub(a, b))
    }

    /// `self + other`.
    pub fn try_add(&self, other: &Self) -> Result<Self, MathError> {
        self.add_new(other, false)
    }

    /// `self - other`.
    pub fn try_sub(&self, other: &Self) -> Result<Self, MathError> {
        self.add_new(other, true)
    }

    /// `self ± other` into a new polynomial, limb by limb with [`crate::pointwise::add_into`].
    fn add_new(&self, other: &Self, subtract: bool) -> Result<Self, MathError> {
        self.check_compatible(other)?;
        let moduli = self.ctx.basis.moduli();
        let n = self.ctx.n;
        let data = par::new_limbs_with(self.data.len(), n, |i, out| {
            let (a, b) = (
                &self.data[i * n..(i + 1) * n],
                &other.data[i * n..(i + 1) * n],
            );
            crate::pointwise::add_into(&moduli[i], a, b, out, subtract);
        });
        Ok(Self::from_vec(&self.ctx, self.limbs, data))
    }

    /// `self = -self`.
    pub fn neg_assign(&mut self) {
        let ctx = self.ctx.clone();
        let moduli = ctx.basis.moduli();
        self.map_limbs(|i, limb| {
            let m = &moduli[i];
            for x in limb.iter_mut() {
                *x = m.neg(*x);
            }
        });
    }

    /// Multiplies limb `i` by `scalars[i] mod q_i` (one constant per limb; `scalars.len()` must
    /// equal the number of limbs). Shoup multiplication with a precomputed quotient per limb.
    pub fn mul_scalar_per_limb_assign(&mut self, scalars: &[u64]) -> Result<(), MathError> {
        if scalars.len() != self.limbs {
            return Err(MathError::LengthMismatch {
                expected: self.limbs,
                found: scalars.len(),
            });
        }
        let ctx = self.ctx.clone();
        let moduli = ctx.basis.moduli();
        self.map_limbs(|i, limb| {
            let m = &moduli[i];
            crate::pointwise::mul_scalar_assign(m, limb, m.reduce(scalars[i]));
        });
        Ok(())
    }

    /// `self * scalars[i] mod q_i` on limb `i`, into a new polynomial: one pass over memory
    /// (no copy first), in the vectorised kernel where the CPU and the prime allow
    /// ([`crate::pointwise::mul_scalar_into`]).
    pub fn try_mul_scalar_per_limb(&self, scalars: &[u64]) -> Result<Self, MathError> {
        if scalars.len() != self.limbs {
            return Err(MathError::LengthMismatch {
                expected: self.limbs,
                found: scalars.len(),
            });
        }
        let moduli = self.ctx.basis.moduli();
        let (n, a) = (self.ctx.n, &self.data);
        let data = par::new_limbs_with(a.len(), n, |i, out| {
            let m = &moduli[i];
            crate::pointwise::mul_scalar_into(m, &a[i * n..(i + 1) * n], m.reduce(scalars[i]), out);
        });
        Ok(Self::from_vec(&self.ctx, self.limbs, data))
    }

    /// Multiplies by the integer constant `c` (the same integer in every limb).
    pub fn mul_scalar_u64_assign(&mut self, c: u64) {
        let ctx = self.ctx.clone();
        let moduli = ctx.basis.moduli();
        self.map_limbs(|i, limb| {
            let m = &moduli[i];
            let w = m.reduce(c);
            let ws = m.shoup(w);
            for x in limb.iter_mut() {
                *x = m.mul_shoup(*x, w, ws);
            }
        });
    }

    /// Multiplies by the signed integer constant `c`.
    pub fn mul_scalar_i64_assign(&mut self, c: i64) {
        let ctx = self.ctx.clone();
        let moduli = ctx.basis.moduli();
        self.map_limbs(|i, limb| {
            let m = &moduli[i];
            let w = m.from_i64(c);
            let ws = m.shoup(w);
            for x in limb.iter_mut() {
                *x = m.mul_shoup(*x, w, ws);
            }
        });
    }
}

impl RnsPoly<Ntt> {
    /// Pointwise product `self *= other` (the negacyclic product of the polynomials).
    pub fn try_mul_assign(&mut self, other: &Self) -> Result<(), MathError> {
        self.check_compatible(other)?;
        let moduli = self.ctx.basis.moduli();
        par::for_each_limb_zip(&mut self.data, &other.data, self.ctx.n, |i, a, b| {
            crate::pointwise::mul_assign(&moduli[i], a, b);
        });
        Ok(())
    }

    /// Pointwise product `self * other`.
    pub fn try_mul(&self, other: &Self) -> Result<Self, MathError> {
        self.check_compatible(other)?;
        let moduli = self.ctx.basis.moduli();
        let n = self.ctx.n;
        let (a, b) = (&self.data, &other.data);
        // The vectorised kernel where the CPU and the prime allow (`crate::pointwise`).
        let data = par::new_limbs_with(a.len(), n, |i, out| {
            let r = i * n..(i + 1) * n;
            crate::pointwise::mul_into(&moduli[i], &a[r.clone()], &b[r], out);
        });
        Ok(Self::from_vec(&self.ctx, self.limbs, data))
    }

    /// Multiply-accumulate `self += a * b`, with one Barrett reduction of `a * b + self` per
    /// residue.
    pub fn try_mul_acc(&mut self, a: &Self, b: &Self) -> Result<(), MathError> {
        self.check_compatible(a)?;
        self.check_compatible(b)?;
        let moduli = self.ctx.basis.moduli();
        let n = self.ctx.n;
        let bd = &b.data;
        par::for_each_limb_zip(&mut self.data, &a.data, n, |i, acc, x| {
            crate::pointwise::mul_add_assign(&moduli[i], acc, x, &bd[i * n..(i + 1) * n]);
        });
        Ok(())
    }
}

macro_rules! binop {
    ($tr:ident, $f:ident, $tra:ident, $fa:ident, $try_assign:ident, $bound:path) => {
        impl<R: $bound> $tra<&RnsPoly<R>> for RnsPoly<R> {
            /// # Panics
            /// On a context or level mismatch (use the `try_*` form to get an error).
            fn $fa(&mut self, rhs: &RnsPoly<R>) {
                if let Err(e) = self.$try_assign(rhs) {
                    panic!("{e}");
                }
            }
        }
        impl<R: $bound> $tr<&RnsPoly<R>> for &RnsPoly<R> {
            type Output = RnsPoly<R>;
            /// # Panics
            /// On a context or level mismatch (use the `try_*` form to get an error).
            fn $f(self, rhs: &RnsPoly<R>) -> RnsPoly<R> {
                let mut r = self.clone();
                r.$fa(rhs);
                r
            }
        }
        impl<R: $bound> $tr<&RnsPoly<R>> for RnsPoly<R> {
            type Output = RnsPoly<R>;
            /// # Panics
            /// On a context or level mismatch (use the `try_*` form to get an error).
            fn $f(mut self, rhs: &RnsPoly<R>) -> RnsPoly<R> {
                self.$fa(rhs);
                self
            }
        }
    };
}

binop!(
    Add,
    add,
    AddAssign,
    add_assign,
    try_add_assign,
    Representation
);
binop!(
    Sub,
    sub,
    SubAssign,
    sub_assign,
    try_sub_assign,
    Representation
);

impl MulAssign<&RnsPoly<Ntt>> for RnsPoly<Ntt> {
    /// # Panics
    /// On a context or level mismatch (use [`RnsPoly::try_mul_assign`] to get an error).
    fn mul_assign(&mut self, rhs: &RnsPoly<Ntt>) {
        if let Err(e) = self.try_mul_assign(rhs) {
            panic!("{e}");
        }
    }
}

impl Mul<&RnsPoly<Ntt>> for &RnsPoly<Ntt> {
    type Output = RnsPoly<Ntt>;
    /// # Panics
    /// On a context or level mismatch (use [`RnsPoly::try_mul`] to get an error).
    fn mul(self, rhs: &RnsPoly<Ntt>) -> RnsPoly<Ntt> {
        let mut r = self.clone();
        r *= rhs;
        r
    }
}

impl<R: Representation> Neg for RnsPoly<R> {
    type Output = RnsPoly<R>;
    fn neg(mut self) -> RnsPoly<R> {
        self.neg_assign();
        self
    }
}

impl<R: Representation> Neg for &RnsPoly<R> {
    type Output = RnsPoly<R>;
    fn neg(self) -> RnsPoly<R> {
        -self.clone()
    }
}
