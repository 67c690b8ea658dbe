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

use crate::context::CkksContext;
use crate::error::CkksError;
use crate::keys::SecretKey;
use crate::params::ParamsId;
use alloc::vec;
use alloc::vec::Vec;
use ensi_math::{Ntt, RnsPoly, Rounding, par};
use rand_core::{CryptoRng, RngCore};
use sha3::{Digest, Sha3_256};

/// A hybrid key-switching key from some `s'` to the secret key `s`: one RLWE sample over
/// `Q ∪ P` per digit, in NTT form. The uniform halves `a_j` are expanded from one 32-byte seed,
/// so the stored form needs only the `b_j` and the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchingKey {
    pub(crate) b: Vec<RnsPoly<Ntt>>,
    pub(crate) a: Vec<RnsPoly<Ntt>>,
    pub(crate) seed: [u8; 32],
    pub(crate) params_id: ParamsId,
}

/// The seed of digit `j`'s uniform polynomial: SHA3-256 of a domain tag, the key's seed and `j`.
pub(crate) fn digit_seed(seed: &[u8; 32], digit: usize) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(b"ensi switching key digit");
    h.update(seed);
    h.update((digit as u32).to_le_bytes());
    h.finalize().into()
}

impl SwitchingKey {
    /// Generates the key switching `s_from` (NTT form over all of `Q ∪ P`) to `sk`.
    pub(crate) fn generate<G: RngCore + CryptoRng>(
        ctx: &CkksContext,
        sk: &SecretKey,
        s_from: &RnsPoly<Ntt>,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        ctx.check_id(sk.params_id)?;
        let limbs = ctx.key_limbs();
        let num_q = ctx.max_level() + 1;
        let ks = ctx.key_switch();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let digits = ks.dnum();
        let mut b = Vec::with_capacity(digits);
        let mut a = Vec::with_capacity(digits);
        for j in 0..digits {
            let (mut bj, aj) =
                crate::encryption::rlwe_sample(ctx, sk, limbs, &digit_seed(&seed, j), rng)?;
            for i in ks.digit_range(j, num_q) {
                let m = ctx.ring().basis().moduli()[i];
                let (p, ps) = ctx.p_mod_q()[i];
                let src = s_from.limb(i);
                for (x, &y) in bj.limb_mut(i).iter_mut().zip(src) {
                    *x = m.add(*x, m.mul_shoup(y, p, ps));
                }
            }
            b.push(bj);
            a.push(aj);
        }
        Ok(Self {
            b,
            a,
            seed,
            params_id: ctx.id(),
        })
    }

    /// Rebuilds a key from its `b_j` and the seed of the `a_j` (deserialization).
    pub(crate) fn from_seeded(
        ctx: &CkksContext,
        b: Vec<RnsPoly<Ntt>>,
        seed: [u8; 32],
    ) -> Result<Self, CkksError> {
        let a = (0..b.len())
            .map(|j| {
                ensi_math::sample::expand_seed::<Ntt>(
                    ctx.ring(),
                    ctx.key_limbs(),
                    &digit_seed(&seed, j),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            b,
            a,
            seed,
            params_id: ctx.id(),
        })
    }

    /// The number of digits.
    pub fn digits(&self) -> usize {
        self.b.len()
    }

    /// The seed the uniform halves are expanded from.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The non-uniform halves `b_j`.
    pub fn b(&self) -> &[RnsPoly<Ntt>] {
        &self.b
    }

    /// The parameter set this key belongs to.
    pub fn params_id(&self) -> ParamsId {
        self.params_id
    }
}

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
        let n = self.n();
        let num_q = c.limbs();
        let ks = self.key_switch();
        let ext = num_q + ks.p_basis().len();
        let digits = ks.digits_at(num_q);
        let coeff = c.clone().into_coeff();
        let mut data = vec![0u64; digits * ext * n];
        let plans = self.ring().plans();
        for (j, block) in data.chunks_mut(ext * n).enumerate() {
            ks.mod_up_digit(n, num_q, j, coeff.as_slice(), block)?;
            let own = ks.digit_range(j, num_q);
            par::for_each_limb(block, n, |e, limb| {
                if own.contains(&e) {
                    limb.copy_from_slice(c.limb(e));
                } else {
                    plans[self.extended_index(num_q, e)].forward(limb);
                }
            });
        }
        Ok(Decomposition {
            data,
            num_q,
            digits,
        })
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
        self.check_id(key.params_id)?;
        if key.digits() < dec.digits {
            return Err(CkksError::InvalidArgument {
                reason: "switching key has fewer digits than the decomposition",
            });
        }
        let n = self.n();
        if perm.is_some_and(|p| p.len() != n) {
            return Err(CkksError::InvalidArgument {
                reason: "automorphism permutation of the wrong length",
            });
        }
        let num_q = dec.num_q;
        let ext = num_q + self.key_switch().p_basis().len();
        let moduli = self.ring().basis().moduli();
        let digits = dec.digits;
        let data = &dec.data;
        // Limb t of the output: part t / ext (b, then a), extended limb e = t % ext. Every
        // residue is sum_j dec_j[perm(i)] * key_j[i], accumulated in 128 bits and reduced every
        // eight terms (products are below 2^124).
        let acc = par::new_limbs(2 * ext * n, n, |t| {
            let (part, e) = (t / ext, t % ext);
            let g = self.extended_index(num_q, e);
            let m = moduli[g];
            let keys = if part == 0 { &key.b } else { &key.a };
            move |i| {
                let src = perm.map_or(i, |p| p[i] as usize);
                let mut sum: u128 = 0;
                for (j, k) in keys[..digits].iter().enumerate() {
                    if j > 0 && j % 8 == 0 {
                        sum = u128::from(m.reduce_u128(sum));
                    }
                    let d = data[(j * ext + e) * n + src];
                    sum += u128::from(d) * u128::from(k.limb(g)[i]);
                }
                m.reduce_u128(sum)
            }
        });
        let (acc0, acc1) = acc.split_at(ext * n);
        Ok((
            self.mod_down_ntt(acc0, num_q)?,
            self.mod_down_ntt(acc1, num_q)?,
        ))
    }

    /// Switches the key of `c` (NTT form over `Q_l`): decomposition, inner product, ModDown.
    pub fn switch_key(
        &self,
        c: &RnsPoly<Ntt>,
        key: &SwitchingKey,
    ) -> Result<(RnsPoly<Ntt>, RnsPoly<Ntt>), CkksError> {
        let dec = self.decompose(c)?;
        self.switch_decomposed(&dec, key, None)
    }

    /// ModDown of `x` (NTT form over `Q_l ∪ P`, `num_q + K` limbs) to `round(x / P) - u` over
    /// `Q_l` (`0 <= u < K`), in the NTT domain: `x_Q P^{-1} + NTT((h - y) P^{-1})`, where `y`
    /// is the fast conversion of `[x + h]_P` (only the `P` limbs go through an inverse NTT).
    fn mod_down_ntt(&self, x: &[u64], num_q: usize) -> Result<RnsPoly<Ntt>, CkksError> {
        let n = self.n();
        let plans = self.ring().plans();
        let mut tmp = vec![0u64; x.len()];
        let (_, p_part) = tmp.split_at_mut(num_q * n);
        par::for_each_limb_zip(p_part, &x[num_q * n..], n, |j, t, src| {
            t.copy_from_slice(src);
            plans[self.extended_index(num_q, num_q + j)].inverse(t);
        });
        self.key_switch()
            .mod_down(n, num_q, &mut tmp, Rounding::Round)?;
        tmp.truncate(num_q * n);
        let moduli = self.ring().basis().moduli();
        let ks = self.key_switch();
        par::for_each_limb_zip(&mut tmp, &x[..num_q * n], n, |i, t, src| {
            plans[i].forward(t);
            let m = &moduli[i];
            let (w, ws) = ks.p_inv_mod_q(i);
            for (t, &s) in t.iter_mut().zip(src) {
                *t = m.add(*t, m.mul_shoup(s, w, ws));
            }
        });
        Ok(RnsPoly::from_raw(self.ring(), num_q, tmp)?)
    }
}
