//! Hybrid key switching (Han–Ki, "Better bootstrapping for approximate homomorphic encryption",
//! CT-RSA 2020, §3; the digit gadget as in Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux, Eurocrypt
//! 2021, §2.3).
//!
//! A [`SwitchingKey`] from `s'` to `s` holds, for every digit `j` of `Q` (see
//! [`ensi_math::KeySwitchBasis`]), an RLWE sample over `Q ∪ P`:
//!
//! ```text
//! b_j = -a_j s + e_j + P g_j s'     a_j uniform (expanded from a seed)
//! ```
//!
//! where `g_j = 1 mod q_i` for the primes of digit `j` and `0` for the others, so `P g_j s'` is
//! `[P]_{q_i} s'` on the digit's own limbs and zero elsewhere (also modulo every `p`).
//!
//! Switching `c` (at level `l`, NTT form over `Q_l`) computes the ModUp of every digit,
//! `d_j = [c]_{D_j} + u_j D_j` over `Q_l ∪ P`, the inner products `(sum_j d_j b_j, sum_j d_j a_j)`
//! and a rounding ModDown by `P`. Since `sum_j d_j P g_j = P c (mod Q_l P)`, the result decrypts
//! under `s` to `c s' + (sum_j d_j e_j) / P + r_0 + r_1 s` with `|r_0|, |r_1| <= K`.
//!
//! **Hoisting.** The ModUp'd digits ([`Decomposition`]) depend only on `c`; the automorphism
//! `X -> X^k` is a fixed permutation of NTT slots that commutes with ModUp, so many rotations of
//! one ciphertext share one decomposition and each costs only its inner product and ModDown.
//! ModDown runs in the NTT domain: only the `P` limbs are brought back to coefficients.
//!
//! **Spans.** Most keys span all of `Q ∪ P` ([`KeySpan::Full`]). The dense-to-sparse key of
//! bootstrapping spans only `{q_0, p_0}` ([`KeySpan::Encapsulation`]), one digit, and is applied
//! by [`CkksContext::switch_key_level0`]: the same ModUp, inner product and ModDown in that
//! two-prime basis.

use crate::context::{CkksContext, SwitchSpace};
use crate::error::CkksError;
pub use crate::rlwe::{KeySpan, SwitchingKey};
use alloc::vec;
use alloc::vec::Vec;
use ensi_math::{Ntt, RnsPoly, Rounding, par};

/// The ModUp'd digits of one polynomial at level `l`: `digits` blocks of `l + 1 + K` limbs over
/// `Q_l ∪ P`, in NTT form. Computed once and shared by hoisted rotations.
#[derive(Clone, Debug)]
pub struct Decomposition {
    data: Vec<u64>,
    num_q: usize,
    digits: usize,
}

impl Decomposition {
    /// The number of active `Q` primes (level + 1).
    pub fn num_q(&self) -> usize {
        self.num_q
    }

    /// The number of digits.
    pub fn digits(&self) -> usize {
        self.digits
    }
}

impl CkksContext {
    /// ModUp of every digit of `c` (NTT form over `Q_l`), in NTT form over `Q_l ∪ P`. The limbs
    /// of a digit's own primes are copied from `c` (the ModUp is exact there).
    pub fn decompose(&self, c: &RnsPoly<Ntt>) -> Result<Decomposition, CkksError> {
        decompose_in(self.main_space(), c)
    }

    /// Switches the key of a decomposed polynomial: returns `(p_0, p_1)` over `Q_l` with
    /// `p_0 + p_1 s ~ c s'`, where `key` switches `s'` to `s`. With `perm`, the decomposition is
    /// first mapped by that NTT-slot permutation (the automorphism of a hoisted rotation).
    pub fn switch_decomposed(
        &self,
        dec: &Decomposition,
        key: &SwitchingKey,
        perm: Option<&[u32]>,
    ) -> Result<(RnsPoly<Ntt>, RnsPoly<Ntt>), CkksError> {
        self.check_span(key, KeySpan::Full)?;
        let (d0, d1) = switch_decomposed_in(self.main_space(), dec, key, perm)?;
        Ok((
            RnsPoly::from_raw(self.ring(), dec.num_q, d0)?,
            RnsPoly::from_raw(self.ring(), dec.num_q, d1)?,
        ))
    }

    /// Switches the key of `c` (NTT form over `Q_l`): decomposition, inner product, ModDown.
    pub fn switch_key(
        &self,
        c: &RnsPoly<Ntt>,
        key: &SwitchingKey,
    ) -> Result<(RnsPoly<Ntt>, RnsPoly<Ntt>), CkksError> {
        self.check_span(key, KeySpan::Full)?;
        let dec = self.decompose(c)?;
        self.switch_decomposed(&dec, key, None)
    }

    /// Switches the key of `c` at level 0 (one limb, NTT form modulo `q_0`) with a key of
    /// [`KeySpan::Encapsulation`]: ModUp to `{q_0, p_0}`, inner product, ModDown by `p_0`.
    /// The result is over `q_0` in this context's ring.
    pub fn switch_key_level0(
        &self,
        c: &RnsPoly<Ntt>,
        key: &SwitchingKey,
    ) -> Result<(RnsPoly<Ntt>, RnsPoly<Ntt>), CkksError> {
        self.check_span(key, KeySpan::Encapsulation)?;
        if c.limbs() != 1 {
            return Err(CkksError::InvalidArgument {
                reason: "the dense-to-sparse key applies at level 0 only",
            });
        }
        let space = self.encapsulation();
        let dec = decompose_in(space, c)?;
        let (d0, d1) = switch_decomposed_in(space, &dec, key, None)?;
        Ok((
            RnsPoly::from_raw(self.ring(), 1, d0)?,
            RnsPoly::from_raw(self.ring(), 1, d1)?,
        ))
    }

    fn check_span(&self, key: &SwitchingKey, span: KeySpan) -> Result<(), CkksError> {
        self.check_id(key.params_id)?;
        if key.span != span {
            return Err(CkksError::InvalidArgument {
                reason: "switching key of the wrong span for this operation",
            });
        }
        Ok(())
    }
}

/// A ciphertext pair over `Q_l ∪ P` (NTT form) that holds `P` times its value: key-switched
/// terms before their ModDown. Rotations of the giant steps of a linear transform are summed
/// in this form and divided by `P` once ([`CkksContext::mod_down_extended`]), the second half
/// of double hoisting (Bossuat–Mouchet–Troncoso-Pastoriza–Hubaux, Eurocrypt 2021, §3.2;
/// Halevi–Shoup 2018 for the first half, the shared decomposition of the baby steps).
#[derive(Debug)]
pub(crate) struct ExtendedPair {
    parts: [Vec<u64>; 2],
    num_q: usize,
}

impl CkksContext {
    /// `X -> X^k` of `(c_0, c_1)` (NTT form over `Q_l`, `perm` the automorphism's NTT-slot
    /// permutation, `key` its Galois key) switched back to the secret, before the ModDown:
    /// `(P c_0(X^k) + sum_j d_j b_j, sum_j d_j a_j)` with `d_j` the digits of `c_1(X^k)`.
    pub(crate) fn galois_extended(
        &self,
        c0: &RnsPoly<Ntt>,
        c1: &RnsPoly<Ntt>,
        key: &SwitchingKey,
        perm: &[u32],
    ) -> Result<ExtendedPair, CkksError> {
        self.check_span(key, KeySpan::Full)?;
        if c0.limbs() != c1.limbs() {
            return Err(CkksError::InvalidArgument {
                reason: "ciphertext parts at different levels",
            });
        }
        let space = self.main_space();
        let dec = decompose_in(space, c1)?;
        let (mut b, a) = inner_products_in(space, &dec, key, Some(perm))?;
        let n = space.ring.n();
        let num_q = dec.num_q;
        let moduli = space.ring.basis().moduli();
        par::for_each_limb(&mut b[..num_q * n], n, |i, limb| {
            let m = &moduli[i];
            let (w, ws) = space.p_mod_q[i];
            let src = c0.limb(i);
            for (x, &p) in limb.iter_mut().zip(perm) {
                *x = m.add(*x, m.mul_shoup(src[p as usize], w, ws));
            }
        });
        Ok(ExtendedPair {
            parts: [b, a],
            num_q,
        })
    }

    /// `acc += other`, limb by limb over `Q_l ∪ P`.
    pub(crate) fn add_extended(
        &self,
        acc: &mut ExtendedPair,
        other: &ExtendedPair,
    ) -> Result<(), CkksError> {
        if acc.num_q != other.num_q {
            return Err(CkksError::LevelMismatch {
                left: acc.num_q - 1,
                right: other.num_q - 1,
            });
        }
        let space = self.main_space();
        let n = space.ring.n();
        let moduli = space.ring.basis().moduli();
        let num_q = acc.num_q;
        for (x, y) in acc.parts.iter_mut().zip(&other.parts) {
            par::for_each_limb_zip(x, y, n, |e, xl, yl| {
                let m = &moduli[space.extended_index(num_q, e)];
                for (a, &b) in xl.iter_mut().zip(yl) {
                    *a = m.add(*a, b);
                }
            });
        }
        Ok(())
    }

    /// The ModDown of both parts: `(round(x_0 / P), round(x_1 / P))` over `Q_l`, NTT form.
    pub(crate) fn mod_down_extended(
        &self,
        x: &ExtendedPair,
    ) -> Result<(RnsPoly<Ntt>, RnsPoly<Ntt>), CkksError> {
        let space = self.main_space();
        let num_q = x.num_q;
        Ok((
            RnsPoly::from_raw(self.ring(), num_q, mod_down_ntt(space, &x.parts[0], num_q)?)?,
            RnsPoly::from_raw(self.ring(), num_q, mod_down_ntt(space, &x.parts[1], num_q)?)?,
        ))
    }
}

/// ModUp of every digit of `c` into `space` (see [`CkksContext::decompose`]).
fn decompose_in(space: &SwitchSpace, c: &RnsPoly<Ntt>) -> Result<Decomposition, CkksError> {
    let n = c.n();
    let num_q = c.limbs();
    let ks = &space.key_switch;
    if num_q > space.q_count() {
        return Err(CkksError::InvalidArgument {
            reason: "polynomial has more limbs than the key span's Q primes",
        });
    }
    let ext = num_q + ks.p_basis().len();
    let digits = ks.digits_at(num_q);
    let coeff = c.clone().into_coeff();
    let mut data = par::zeroed(digits * ext * n, n);
    let plans = space.ring.plans();
    for (j, block) in data.chunks_mut(ext * n).enumerate() {
        ks.mod_up_digit(n, num_q, j, coeff.as_slice(), block)?;
        let own = ks.digit_range(j, num_q);
        par::for_each_limb(block, n, |e, limb| {
            if own.contains(&e) {
                limb.copy_from_slice(c.limb(e));
            } else {
                plans[space.extended_index(num_q, e)].forward(limb);
            }
        });
    }
    Ok(Decomposition {
        data,
        num_q,
        digits,
    })
}

/// The inner products of a decomposition with `key` and the ModDown by `P`, in `space`; returns
/// the raw residues of `(p_0, p_1)` over `Q_l`, NTT form.
fn switch_decomposed_in(
    space: &SwitchSpace,
    dec: &Decomposition,
    key: &SwitchingKey,
    perm: Option<&[u32]>,
) -> Result<(Vec<u64>, Vec<u64>), CkksError> {
    let (acc0, acc1) = inner_products_in(space, dec, key, perm)?;
    let num_q = dec.num_q;
    Ok((
        mod_down_ntt(space, &acc0, num_q)?,
        mod_down_ntt(space, &acc1, num_q)?,
    ))
}

/// The inner products `(sum_j d_j b_j, sum_j d_j a_j)` of a decomposition with `key` (the
/// decomposition first permuted by `perm`), over `Q_l ∪ P` in NTT form: a key switch before its
/// ModDown, `P` times the switched pair up to the key's noise.
fn inner_products_in(
    space: &SwitchSpace,
    dec: &Decomposition,
    key: &SwitchingKey,
    perm: Option<&[u32]>,
) -> Result<(Vec<u64>, Vec<u64>), CkksError> {
    if key.digits() < dec.digits {
        return Err(CkksError::InvalidArgument {
            reason: "switching key has fewer digits than the decomposition",
        });
    }
    if key.q_limbs().is_some_and(|k| k < dec.num_q) {
        return Err(CkksError::InvalidArgument {
            reason: "switching key truncated below the ciphertext's level",
        });
    }
    let n = space.ring.n();
    if perm.is_some_and(|p| p.len() != n) {
        return Err(CkksError::InvalidArgument {
            reason: "automorphism permutation of the wrong length",
        });
    }
    let num_q = dec.num_q;
    let ext = num_q + space.key_switch.p_basis().len();
    let moduli = space.ring.basis().moduli();
    let digits = dec.digits;
    let data = &dec.data;
    // Extended limb e of both outputs (b part, a part) at once: every residue is
    // sum_j dec_j[perm(i)] * key_j[i] (`ensi_math::pointwise::dot_pair`, vectorised, with the
    // automorphism's gather folded into its loads).
    let limb = |e: usize, out0: &mut [u64], out1: &mut [u64]| {
        let g = space.extended_index(num_q, e);
        // Checked above: a truncated key holds every limb this level reads.
        let q_count = space.q_count();
        let kb: Vec<&[u64]> = (0..digits)
            .map(|j| key.limb_at(false, j, g, q_count))
            .collect();
        // A compacted key's uniform halves are regenerated here, limb by limb.
        let mut fresh = vec![0u64; if key.is_compact() { digits * n } else { 0 }];
        for (j, out) in fresh.chunks_mut(n).enumerate() {
            key.regenerate_a(j, g, q_count, &moduli[g], out);
        }
        let ka: Vec<&[u64]> = if key.is_compact() {
            fresh.chunks(n).collect()
        } else {
            (0..digits)
                .map(|j| key.limb_at(true, j, g, q_count))
                .collect()
        };
        let src: Vec<&[u64]> = (0..digits)
            .map(|j| &data[(j * ext + e) * n..(j * ext + e + 1) * n])
            .collect();
        ensi_math::pointwise::dot_pair(&moduli[g], &src, &kb, &ka, perm, out0, out1);
    };
    Ok(par::new_limb_pairs_with(ext * n, n, limb))
}

/// ModDown of `x` (NTT form over `Q_l ∪ P`, `num_q + K` limbs) to `round(x / P) - u` over
/// `Q_l` (`0 <= u < K`), in the NTT domain: `x_Q P^{-1} + NTT((h - y) P^{-1})`, where `y`
/// is the fast conversion of `[x + h]_P` (only the `P` limbs go through an inverse NTT).
fn mod_down_ntt(space: &SwitchSpace, x: &[u64], num_q: usize) -> Result<Vec<u64>, CkksError> {
    let n = space.ring.n();
    let plans = space.ring.plans();
    let ks = &space.key_switch;
    let mut tmp = par::zeroed(x.len(), n);
    let (_, p_part) = tmp.split_at_mut(num_q * n);
    par::for_each_limb_zip(p_part, &x[num_q * n..], n, |j, t, src| {
        t.copy_from_slice(src);
        plans[space.extended_index(num_q, num_q + j)].inverse(t);
    });
    ks.mod_down(n, num_q, &mut tmp, Rounding::Round)?;
    tmp.truncate(num_q * n);
    let moduli = space.ring.basis().moduli();
    par::for_each_limb_zip(&mut tmp, &x[..num_q * n], n, |i, t, src| {
        plans[i].forward(t);
        let m = &moduli[i];
        let (w, ws) = ks.p_inv_mod_q(i);
        ensi_math::pointwise::mul_scalar_add_assign(m, t, src, w, ws);
    });
    Ok(tmp)
}
