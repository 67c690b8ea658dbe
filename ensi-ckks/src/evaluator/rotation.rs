//! Rotations, conjugation, hoisted rotations and inner sums.
//!
//! Applying `X -> X^k` to both parts of a ciphertext gives an encryption of the permuted
//! message under `s(X^k)`; a Galois key switches it back to `s`. Rotation left by `r` slots is
//! `k = 5^r mod 2N`, conjugation `k = 2N - 1` (Cheon–Kim–Kim–Song 2017, §4.2). Hoisting
//! (Halevi–Shoup 2018, "Faster homomorphic linear transformations in HElib", §5) shares one
//! ModUp of `c_1` between all rotations of one ciphertext.

use super::{Evaluator, Op};
use crate::ciphertext::Ciphertext;
use crate::error::CkksError;
use crate::keyswitch::{Decomposition, ExtendedPair};
use alloc::vec::Vec;

impl Evaluator {
    /// Rotates the slots left by `steps` (right for negative `steps`), modulo the slot count.
    pub fn rotate(&self, ct: &Ciphertext, steps: isize) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        if steps.rem_euclid(ct.slots as isize) == 0 {
            return Ok(ct.clone());
        }
        self.apply_galois(ct, self.ctx.rotation_galois_element(steps))
    }

    /// Conjugates every slot.
    pub fn conjugate(&self, ct: &Ciphertext) -> Result<Ciphertext, CkksError> {
        self.apply_galois(ct, self.ctx.conjugation_galois_element())
    }

    /// Applies `X -> X^k` and switches back to the secret key (needs the Galois key of `k`).
    ///
    /// At level 0, a level-0 key of `k` ([`crate::GaloisKey::generate_level0`]) is used when
    /// the evaluator holds one: the switch then runs over `{q_0, p_0}` only.
    pub fn apply_galois(&self, ct: &Ciphertext, k: usize) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        if ct.level() == 0 && ct.degree() == 1 {
            let g = self.ctx.check_galois_element(k)?;
            if let Some(key) = self.keys.galois_level0(g) {
                let table = self
                    .automorphisms
                    .get(&g)
                    .ok_or(CkksError::MissingGaloisKey { galois_element: g })?;
                let c1 = ct.parts[1].automorphism_with(table)?;
                let (p0, p1) = self.ctx.switch_key_level0(&c1, &key.key)?;
                let mut c0 = ct.parts[0].automorphism_with(table)?;
                c0.try_add_assign(&p0)?;
                self.count_galois(k, false);
                return Ok(ct.derive(alloc::vec![c0, p1], ct.scale));
            }
        }
        let dec = self.decompose_for_rotation(ct)?;
        let out = self.galois_decomposed(ct, &dec, k)?;
        self.count_galois(k, false);
        Ok(out)
    }

    /// [`Self::rotate`] before its ModDown (`P` times the rotated pair over `Q_l ∪ P`), for sums
    /// of rotations divided by `P` once ([`crate::keyswitch`]'s `ExtendedPair`). Counted as a
    /// rotation. `None` where the lazy form does not apply: a step of zero, a ciphertext of
    /// degree 2, or a level-0 key in use.
    pub(crate) fn rotate_lazy(
        &self,
        ct: &Ciphertext,
        steps: isize,
    ) -> Result<Option<ExtendedPair>, CkksError> {
        self.check(ct)?;
        if steps.rem_euclid(ct.slots as isize) == 0 || ct.degree() != 1 {
            return Ok(None);
        }
        let k = self.ctx.rotation_galois_element(steps);
        let g = self.ctx.check_galois_element(k)?;
        if ct.level() == 0 && self.keys.galois_level0(g).is_some() {
            return Ok(None);
        }
        let (key, table) = self.galois_key_and_table(g)?;
        let out =
            self.ctx
                .galois_extended(&ct.parts[0], &ct.parts[1], &key.key, table.permutation())?;
        self.count_galois(k, false);
        Ok(Some(out))
    }

    /// The full Galois key of the checked element `g` and its NTT-slot permutation.
    fn galois_key_and_table(
        &self,
        g: usize,
    ) -> Result<(&crate::GaloisKey, &ensi_math::NttAutomorphism), CkksError> {
        let missing = CkksError::MissingGaloisKey { galois_element: g };
        let key = self.keys.galois(g).ok_or(missing.clone())?;
        let table = self.automorphisms.get(&g).ok_or(missing)?;
        Ok((key, table))
    }

    /// Counts one application of `X -> X^k`: a conjugation, or a (hoisted) rotation.
    fn count_galois(&self, k: usize, hoisted: bool) {
        let op = if k % (2 * self.ctx.n()) == self.ctx.conjugation_galois_element() {
            Op::Conjugate
        } else if hoisted {
            Op::HoistedRotate
        } else {
            Op::Rotate
        };
        self.count(op, 1);
    }

    /// Rotations of one ciphertext by each of `steps`, sharing one decomposition of `c_1`
    /// (hoisting): each extra rotation costs one inner product and one ModDown.
    pub fn rotate_hoisted(
        &self,
        ct: &Ciphertext,
        steps: &[isize],
    ) -> Result<Vec<Ciphertext>, CkksError> {
        self.check(ct)?;
        let dec = self.decompose_for_rotation(ct)?;
        let one = |s: &isize| {
            if s.rem_euclid(ct.slots as isize) == 0 {
                Ok(ct.clone())
            } else {
                let k = self.ctx.rotation_galois_element(*s);
                let out = self.galois_decomposed(ct, &dec, k)?;
                self.count_galois(k, true);
                Ok(out)
            }
        };
        // Independent rotations run side by side with `parallel` (each is also parallel over
        // limbs; rayon balances the two levels).
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            steps.par_iter().map(one).collect()
        }
        #[cfg(not(feature = "parallel"))]
        {
            steps.iter().map(one).collect()
        }
    }

    /// The decomposition of `c_1` that hoisted rotations of `ct` share.
    pub fn decompose_for_rotation(&self, ct: &Ciphertext) -> Result<Decomposition, CkksError> {
        self.check(ct)?;
        if ct.degree() != 1 {
            return Err(CkksError::InvalidDegree {
                degree: ct.degree(),
                expected: 1,
            });
        }
        self.ctx.decompose(&ct.parts[1])
    }

    /// `X -> X^k` of `ct`, given the decomposition of its `c_1`
    /// ([`Self::decompose_for_rotation`]); counted as a hoisted rotation (or a conjugation).
    pub fn apply_galois_hoisted(
        &self,
        ct: &Ciphertext,
        dec: &Decomposition,
        k: usize,
    ) -> Result<Ciphertext, CkksError> {
        let out = self.galois_decomposed(ct, dec, k)?;
        self.count_galois(k, true);
        Ok(out)
    }

    fn galois_decomposed(
        &self,
        ct: &Ciphertext,
        dec: &Decomposition,
        k: usize,
    ) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        if dec.num_q() != ct.level() + 1 {
            return Err(CkksError::LevelMismatch {
                left: ct.level(),
                right: dec.num_q().saturating_sub(1),
            });
        }
        let g = self.ctx.check_galois_element(k)?;
        let (key, table) = self.galois_key_and_table(g)?;
        let (p0, p1) = self
            .ctx
            .switch_decomposed(dec, &key.key, Some(table.permutation()))?;
        let mut c0 = ct.parts[0].automorphism_with(table)?;
        c0.try_add_assign(&p0)?;
        Ok(ct.derive(alloc::vec![c0, p1], ct.scale))
    }

    /// Slot `i` of the result is `sum_{j < n} ct[i + j * batch]` (indices modulo the slot
    /// count), by `O(log n)` rotations: a doubling sum over the binary digits of `n`. Needs the
    /// rotation keys of `batch * 2^t` for `2^t < n` and of the partial offsets (all of them come
    /// with [`crate::KeyRequest::with_power_of_two_rotations`] when `batch` is a power of two).
    pub fn inner_sum(
        &self,
        ct: &Ciphertext,
        batch: usize,
        n: usize,
    ) -> Result<Ciphertext, CkksError> {
        self.check(ct)?;
        if batch == 0 || n == 0 {
            return Err(CkksError::InvalidArgument {
                reason: "inner sum needs a batch size and a count of at least 1",
            });
        }
        // `block` holds sum_{j < 2^t} ct[i + j batch]; `acc` the terms already taken.
        let mut block = ct.clone();
        let mut acc: Option<Ciphertext> = None;
        let mut offset = 0usize;
        let bits = usize::BITS - n.leading_zeros();
        for t in 0..bits {
            let width = 1usize << t;
            if n & width != 0 {
                let shifted = self.rotate(&block, (offset * batch) as isize)?;
                acc = Some(match acc {
                    None => shifted,
                    Some(a) => self.add(&a, &shifted)?,
                });
                offset += width;
            }
            if t + 1 < bits {
                let r = self.rotate(&block, (width * batch) as isize)?;
                self.add_assign(&mut block, &r)?;
            }
        }
        acc.ok_or(CkksError::InvalidArgument {
            reason: "inner sum of zero terms",
        })
    }
}
