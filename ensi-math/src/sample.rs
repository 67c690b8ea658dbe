//! Constant-time samplers for RLWE secrets, errors and uniform polynomials.
//!
//! Every sampler takes any `R: RngCore + CryptoRng`. Small distributions (ternary, Hamming
//! weight, Gaussian) write signed coefficients into a caller slice, so the caller decides where
//! the secret lives (allocate at the final size, wrap in [`zeroize::Zeroizing`]); lift them into
//! any basis with [`RnsPoly::from_i64`]. Internal secret buffers are zeroized before they are
//! freed.
//!
//! Timing: no branch or memory index depends on a sampled secret value. The only data-dependent
//! loops are the rejection loops of [`uniform_mod`], whose number of iterations depends only on
//! the *rejected* draws, which are independent of the accepted value (and uniform samples are
//! public in RLWE anyway).

use crate::error::MathError;
use crate::modulus::Modulus;
use crate::poly::{Representation, RnsContext, RnsPoly};
use alloc::sync::Arc;
use alloc::vec::Vec;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use subtle::{ConditionallySelectable, ConstantTimeGreater, ConstantTimeLess};
use zeroize::Zeroize;

/// The standard deviation of [`gaussian`] (the Homomorphic Encryption Standard's 3.2).
pub const GAUSSIAN_SIGMA: f64 = 3.2;

/// The tail cut of [`gaussian`]: samples lie in `[-19, 19]`, i.e. `|x| <= floor(6 sigma)`.
pub const GAUSSIAN_BOUND: i64 = 19;

/// Cumulative distribution table of `|X|` for the discrete Gaussian `rho(x) = exp(-x^2 / (2
/// sigma^2))`, `sigma = 3.2`, restricted to `[-19, 19]`: entry `k` is
/// `round(2^64 * P(|X| <= k))` for `k = 0..=18` (`P(|X| <= 19) = 1`). Computed with 60-digit
/// decimal arithmetic.
const GAUSSIAN_CDT: [u64; 19] = [
    0x1fea_5681_4b22_fe3a,
    0x5cb4_4ba9_7e1c_801d,
    0x9135_c4d2_ab60_97ac,
    0xba57_841e_c437_e30b,
    0xd790_d298_7990_1fea,
    0xea65_b135_8d74_fb9e,
    0xf567_2d96_e886_cf32,
    0xfb3c_9d22_cc87_d610,
    0xfe0a_92b0_33d6_40a3,
    0xff43_9d38_0073_52ae,
    0xffbf_67e4_25d1_89d1,
    0xffeb_cdf3_a462_9f99,
    0xfffa_3f2f_7888_0d45,
    0xfffe_81f4_0111_a23b,
    0xffff_a5d0_6bc3_8afb,
    0xffff_eca4_870d_fe3c,
    0xffff_fc3b_68ed_3b4a,
    0xffff_ff58_143b_9612,
    0xffff_ffe8_50ce_70a6,
];

/// A uniform residue modulo `q` by rejection sampling: draw a 64-bit word, keep its low
/// `bits(q)` bits, accept if below `q` (expected fewer than two draws).
///
/// The loop count depends only on the rejected draws, which are independent of the returned
/// value, so this leaks nothing about it.
pub fn uniform_mod<G: RngCore + CryptoRng + ?Sized>(rng: &mut G, q: &Modulus) -> u64 {
    let mask = u64::MAX >> (64 - q.bits());
    loop {
        let v = rng.next_u64() & mask;
        if v < q.q() {
            return v;
        }
    }
}

/// Fills `out` with independent uniform residues modulo `q` ([`uniform_mod`]).
pub fn fill_uniform<G: RngCore + CryptoRng + ?Sized>(rng: &mut G, q: &Modulus, out: &mut [u64]) {
    for o in out.iter_mut() {
        *o = uniform_mod(rng, q);
    }
}

/// A uniform polynomial over the first `limbs` primes of `ctx`, in either representation
/// (uniform residues in every limb are uniform modulo `Q_l` by the CRT, and the NTT is a
/// bijection). Limb by limb, coefficient by coefficient, with [`uniform_mod`].
pub fn uniform_poly<Rep: Representation, G: RngCore + CryptoRng + ?Sized>(
    ctx: &Arc<RnsContext>,
    limbs: usize,
    rng: &mut G,
) -> Result<RnsPoly<Rep>, MathError> {
    let mut p = RnsPoly::<Rep>::zero(ctx, limbs)?;
    let n = ctx.n();
    let moduli: Vec<Modulus> = p.moduli().to_vec();
    for (limb, m) in p.as_mut_slice().chunks_mut(n).zip(&moduli) {
        fill_uniform(rng, m, limb);
    }
    Ok(p)
}

/// Expands a 32-byte seed into a uniform polynomial (the public `a` of a seeded ciphertext or
/// key), reproducibly.
///
/// **Exact expansion**, so other implementations can reproduce it: the XOF is the ChaCha20
/// keystream (20 rounds, RFC 8439 block function) with key = `seed`, a 64-bit block counter
/// starting at 0 and a 64-bit stream id / nonce of 0 (`rand_chacha` 0.9 `ChaCha20Rng::from_seed`).
/// The keystream is read as consecutive little-endian 64-bit words `w_0, w_1, ...`. For limb
/// `i = 0..limbs` (prime `q_i` of bit length `b_i`), then coefficient `c = 0..N`, take the next
/// word, keep `w & (2^{b_i} - 1)`, and accept it as the residue if it is below `q_i`; otherwise
/// take the next word. The residues are the polynomial's data in the representation `Rep`
/// (usually [`crate::poly::Ntt`]); the representation is part of what the seed means.
pub fn expand_seed<Rep: Representation>(
    ctx: &Arc<RnsContext>,
    limbs: usize,
    seed: &[u8; 32],
) -> Result<RnsPoly<Rep>, MathError> {
    let mut p = RnsPoly::<Rep>::zero(ctx, limbs)?;
    let n = ctx.n();
    let moduli: Vec<Modulus> = p.moduli().to_vec();
    let mut expander = SeedExpander::new(seed);
    for (limb, m) in p.as_mut_slice().chunks_mut(n).zip(&moduli) {
        expander.next_limb(m, limb);
    }
    Ok(p)
}

/// [`expand_seed`] one limb at a time, for callers that never hold the whole polynomial (a
/// constrained client streaming a key to a writer). Call [`Self::next_limb`] for limb `0, 1,
/// ...` in order with each limb's prime: the residues are exactly those of the same limb of
/// [`expand_seed`] over the same primes.
pub struct SeedExpander {
    rng: ChaCha20Rng,
}

impl SeedExpander {
    /// Starts the expansion of `seed`.
    pub fn new(seed: &[u8; 32]) -> Self {
        Self {
            rng: ChaCha20Rng::from_seed(*seed),
        }
    }

    /// Resumes the expansion of `seed` at keystream position `position` (as
    /// [`Self::position`] reported it before some limb): the next limb is that limb again.
    /// Random access into an expansion, for a holder that drops the uniform halves of a key
    /// and regenerates only the limbs it reads.
    pub fn resume(seed: &[u8; 32], position: u128) -> Self {
        let mut rng = ChaCha20Rng::from_seed(*seed);
        rng.set_word_pos(position);
        Self { rng }
    }

    /// The keystream position (in 32-bit words) the next limb starts at.
    pub fn position(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Fills `out` (the next limb, `N` residues) with the next uniform residues modulo `q`.
    pub fn next_limb(&mut self, q: &Modulus, out: &mut [u64]) {
        fill_uniform(&mut self.rng, q, out);
    }
}

/// Uniform ternary coefficients in `{-1, 0, 1}`, branch-free: each coefficient is
/// `floor(3 w / 2^64) - 1` for a fresh 64-bit word `w`, so every value has probability within
/// `2^-64` of `1/3`.
pub fn ternary<G: RngCore + CryptoRng + ?Sized>(rng: &mut G, out: &mut [i64]) {
    for o in out.iter_mut() {
        let w = rng.next_u64();
        *o = ((w as u128 * 3) >> 64) as i64 - 1;
    }
}

/// Ternary coefficients with exactly `h` non-zero entries, each `+1` or `-1` with probability
/// one half, at uniformly random positions.
///
/// **Method (oblivious shuffle by sorting).** Build the vector `(s_0, ..., s_{h-1}, 0, ..., 0)`
/// of random signs followed by zeros, give every entry an independent random 63-bit key, and sort
/// the (key, value) pairs by key with a bitonic sorting network (Batcher 1968) whose
/// compare-exchange is a constant-time conditional swap. The network's sequence of positions is
/// fixed by the length alone, so neither branches nor memory indices depend on secrets. (The
/// length is padded to a power of two with keys `2^64 - 1`, which sort last.) The permutation is
/// uniform unless two keys collide, which has probability below `N^2 / 2^64`; a collision only
/// keeps the pre-sort order of the two entries.
///
/// Cost `O(N log^2 N)` conditional swaps (about 4.5 million at N = 2^16). Fails if
/// `h > out.len()`.
pub fn ternary_hamming<G: RngCore + CryptoRng + ?Sized>(
    rng: &mut G,
    h: usize,
    out: &mut [i64],
) -> Result<(), MathError> {
    let n = out.len();
    if h > n {
        return Err(MathError::InvalidHammingWeight { h, n });
    }
    let size = n.next_power_of_two();
    // Allocated at their final size; wiped before being freed.
    let mut keys = alloc::vec![u64::MAX; size];
    let mut vals = alloc::vec![0i64; size];
    let mut signs = 0u64;
    for (c, (k, v)) in keys.iter_mut().zip(vals.iter_mut()).take(n).enumerate() {
        *k = rng.next_u64() >> 1;
        if c % 64 == 0 {
            signs = rng.next_u64();
        }
        // c < h is a public comparison: the first h entries are the non-zero ones.
        if c < h {
            *v = 1 - 2 * ((signs >> (c % 64)) & 1) as i64;
        }
    }
    signs.zeroize();
    bitonic_sort(&mut keys, &mut vals);
    out.copy_from_slice(&vals[..n]);
    keys.zeroize();
    vals.zeroize();
    Ok(())
}

/// Sorts `(keys, vals)` by key, ascending, with a bitonic network (length a power of two).
fn bitonic_sort(keys: &mut [u64], vals: &mut [i64]) {
    let size = keys.len();
    debug_assert!(size.is_power_of_two());
    let mut block = 2;
    while block <= size {
        let mut stride = block / 2;
        while stride > 0 {
            for i in 0..size {
                let l = i ^ stride;
                if l > i {
                    // Public: the direction depends only on the position.
                    let ascending = i & block == 0;
                    let (ki, kl) = (keys[i], keys[l]);
                    let out_of_order = if ascending {
                        ki.ct_gt(&kl)
                    } else {
                        ki.ct_lt(&kl)
                    };
                    let (mut a, mut b) = (ki, kl);
                    u64::conditional_swap(&mut a, &mut b, out_of_order);
                    keys[i] = a;
                    keys[l] = b;
                    let (mut va, mut vb) = (vals[i], vals[l]);
                    i64::conditional_swap(&mut va, &mut vb, out_of_order);
                    vals[i] = va;
                    vals[l] = vb;
                }
            }
            stride /= 2;
        }
        block *= 2;
    }
}

/// Centred discrete Gaussian coefficients, `sigma = 3.2`, tail cut at `|x| <= 19` (6 sigma).
///
/// **Method (full-table CDT).** For each coefficient draw a 64-bit word `r` and set
/// `|x| = #{k : GAUSSIAN_CDT[k] <= r}`, comparing against *every* table entry with
/// constant-time comparisons; then negate with a random sign bit, branch-free. The table holds
/// `P(|X| <= k)` in units of `2^-64`, so each magnitude has its exact probability up to
/// `2^-64` rounding, and `P(x = 0)` is not doubled because the sign of zero is irrelevant.
/// The mass beyond 19 (about `10^-9` per coefficient) is cut off.
pub fn gaussian<G: RngCore + CryptoRng + ?Sized>(rng: &mut G, out: &mut [i64]) {
    let mut signs = 0u64;
    let mut r = 0u64;
    for (c, o) in out.iter_mut().enumerate() {
        if c % 64 == 0 {
            signs = rng.next_u64();
        }
        r = rng.next_u64();
        // `r >= t` is the absence of a borrow in `r - t`: a carry flag, no branch (the
        // comparison is arithmetic on every entry of the table, whatever `r` is).
        let mag: i64 = GAUSSIAN_CDT
            .iter()
            .map(|&t| i64::from(!r.overflowing_sub(t).1))
            .sum();
        let s = ((signs >> (c % 64)) & 1) as i64;
        // (mag ^ -s) + s = s ? -mag : mag
        *o = (mag ^ s.wrapping_neg()) + s;
    }
    r.zeroize();
    signs.zeroize();
}
