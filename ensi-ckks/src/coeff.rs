//! Coefficient-encoded products with integer polynomials, and the packing of their sparse
//! outputs into one ciphertext: the building blocks of a ternary matrix product whose weights
//! are exact integer polynomials (no scale, no rescale, no level).
//!
//! **The product** is Cheetah's matrix-vector encoding (Huang, Lu, Hong, Zhang, Wang, Hong,
//! "Cheetah", USENIX Security 2022), with Iron's tokens side by side (Hao et al., NeurIPS 2022).
//! An input block of `m` columns of `k` tokens is the polynomial
//! `x(X) = sum_{t, c} x[t][c] X^(t m p + c)` (`p = N / (m k)` output rows per product), a weight
//! block of `p` rows the integer polynomial `w(X) = sum_{r, c} W[r][c] X^(m r - c)` (negacyclic:
//! `X^(-c) = -X^(N - c)`). Coefficient `t m p + m r` of `x w` is then `sum_c W[r][c] x[t][c]`:
//! the useful values sit at multiples of `m`, the other coefficients are partial sums
//! ("garbage"). A ciphertext times `w` is exact: the scale is unchanged, no level is used, and
//! the noise grows by `|w|_1` at most.
//!
//! **The packing** is PackLWEs (Chen, Dai, Kim, Song, "Efficient homomorphic conversion between
//! (ring) LWE ciphertexts", ACNS 2021), generalised to leaves whose values sit at a stride `m`
//! instead of at coefficient 0. Two packed halves `e`, `o` (values at multiples of `2h`) merge
//! into `(e + X^h o) + sigma(e - X^h o)` with `sigma: X -> X^(1 + N/h)`, which fixes the
//! multiples of `2h` and negates the odd multiples of `h`: the values of both land at multiples
//! of `h`, each doubled, and the garbage at those positions cancels. After `L` leaves (a power
//! of two; missing leaves are zero) the values sit at stride `s = m / L`; the trace steps
//! `c + sigma(c)` with `sigma: X -> X^(1 + 2N/u)` for `u = 2, 4, .., s` clear every coefficient
//! that is not a multiple of `s`. Every value ends up multiplied by `m` (`L` from the merges,
//! `s` from the trace); leaf `j`'s value of row `r`, token `t` lands at coefficient
//! `m (t p + r) + s j`. Key switches: `L - 1` merges (fewer where whole subtrees are missing)
//! plus `log2(s)` trace steps, at the ciphertexts' level (the bottom level in the fused kernel).

use crate::ciphertext::Ciphertext;
use crate::error::CkksError;
use crate::evaluator::{Evaluator, Op};
use alloc::borrow::Cow;
use alloc::vec::Vec;
use ensi_math::RnsPoly;

fn invalid(reason: &'static str) -> CkksError {
    CkksError::InvalidArgument { reason }
}

/// The Galois element of `X -> X^(1 + 2N/u)`, which fixes the coefficients at multiples of `u`
/// and negates those at odd multiples of `u/2` (`u` a power of two, `2 <= u <= 2N`).
pub fn stride_galois_element(n: usize, u: usize) -> usize {
    (1 + 2 * n / u) % (2 * n)
}

/// The Galois elements [`Evaluator::pack_strided`] uses for leaves at stride `m` (any number
/// of them): `X -> X^(1 + 2N/u)` for every power of two `u` from 2 to `m` (the merges take
/// `u = m .. 2m/L`, the trace `u = 2 .. m/L`).
pub fn pack_galois_elements(n: usize, m: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut u = 2;
    while u <= m.min(2 * n) {
        out.push(stride_galois_element(n, u));
        u *= 2;
    }
    out
}

/// The key switches [`Evaluator::pack_strided`] performs on `present` (which leaves exist, in
/// order; the list is padded to a power of two with absent ones) at stride `m`.
pub fn pack_key_switches(m: usize, present: &[bool]) -> usize {
    let l = present.len().max(1).next_power_of_two();
    let mut padded = present.to_vec();
    padded.resize(l, false);
    merges(&padded) + (m / l).trailing_zeros() as usize
}

/// Merges of the packing tree of `present` (a power-of-two length): one per node with a
/// present leaf below it.
fn merges(present: &[bool]) -> usize {
    if present.len() <= 1 {
        return 0;
    }
    let even: Vec<bool> = present.iter().step_by(2).copied().collect();
    let odd: Vec<bool> = present.iter().skip(1).step_by(2).copied().collect();
    usize::from(present.iter().any(|&p| p)) + merges(&even) + merges(&odd)
}

/// A packing's leaf on demand: `leaf(j)` is leaf `j`, `None` where it is absent (zero).
pub type LeafFn<'a> = dyn Fn(usize) -> Result<Option<Cow<'a, Ciphertext>>, CkksError> + Sync + 'a;

/// `ct * p` part by part (an exact product: the scale unchanged).
fn times_poly(ct: &Ciphertext, p: &RnsPoly<ensi_math::Ntt>) -> Result<Ciphertext, CkksError> {
    let parts = ct
        .parts
        .iter()
        .map(|c| c.try_mul(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ct.derive(parts, ct.scale))
}

impl Evaluator {
    /// `ct * w` for the integer polynomial `w` (`N` coefficients, or fewer: the rest zero):
    /// exact, the scale unchanged, no level used.
    pub fn mul_integer_poly(&self, ct: &Ciphertext, w: &[i64]) -> Result<Ciphertext, CkksError> {
        let p = self.integer_poly_at(ct, w)?;
        self.count(Op::PlainMul, 1);
        times_poly(ct, &p)
    }

    /// `acc += ct * w` for the integer polynomial `w` (see [`Self::mul_integer_poly`]).
    pub fn mul_integer_poly_acc(
        &self,
        acc: &mut Ciphertext,
        ct: &Ciphertext,
        w: &[i64],
    ) -> Result<(), CkksError> {
        let p = self.integer_poly_at(ct, w)?;
        if acc.parts.len() != ct.parts.len() || acc.level() != ct.level() {
            return Err(invalid(
                "an accumulated integer product needs ciphertexts of one degree and level",
            ));
        }
        crate::ciphertext::check_scale(acc.scale, ct.scale)?;
        self.count(Op::PlainMul, 1);
        for (a, c) in acc.parts.iter_mut().zip(&ct.parts) {
            a.try_mul_acc(c, &p)?;
        }
        Ok(())
    }

    /// `w` in NTT form at `ct`'s level.
    fn integer_poly_at(
        &self,
        ct: &Ciphertext,
        w: &[i64],
    ) -> Result<RnsPoly<ensi_math::Ntt>, CkksError> {
        let ctx = self.context();
        if ct.parts.is_empty() {
            return Err(CkksError::EmptyCiphertext);
        }
        ctx.check_id(ct.params_id)?;
        let n = ctx.n();
        if w.len() > n {
            return Err(invalid("an integer polynomial has at most N coefficients"));
        }
        if w.len() == n {
            return Ok(RnsPoly::from_i64(ctx.ring(), ct.level() + 1, w)?.into_ntt());
        }
        let mut full = w.to_vec();
        full.resize(n, 0);
        Ok(RnsPoly::from_i64(ctx.ring(), ct.level() + 1, &full)?.into_ntt())
    }

    /// `ct * X^k` (`0 <= k < 2N`; `X^N = -1`): exact.
    pub fn mul_monomial(&self, ct: &Ciphertext, k: usize) -> Result<Ciphertext, CkksError> {
        times_poly(ct, &self.monomial_at(ct, k)?)
    }

    /// `X^k` (`0 <= k < 2N`; `X^N = -1`) in NTT form at `ct`'s level.
    fn monomial_at(&self, ct: &Ciphertext, k: usize) -> Result<RnsPoly<ensi_math::Ntt>, CkksError> {
        let n = self.context().n();
        let k = k % (2 * n);
        let mut w = alloc::vec![0i64; n];
        if k < n {
            w[k] = 1;
        } else {
            w[k - n] = -1;
        }
        self.integer_poly_at(ct, &w)
    }

    /// Packs `leaves` (absent ones are zero), each holding its values at the coefficients that
    /// are multiples of `m` and garbage elsewhere, into one ciphertext with every other
    /// coefficient zero (see the module documentation: leaf `j`'s value at coefficient `m i`
    /// lands at `m i + (m / L) j`, times `m`). Needs the keys of [`pack_galois_elements`].
    pub fn pack_strided(
        &self,
        leaves: &[Option<Ciphertext>],
        m: usize,
    ) -> Result<Ciphertext, CkksError> {
        let Some(first) = leaves.iter().flatten().next() else {
            return Err(invalid("packing needs at least one leaf"));
        };
        let leaf = |j: usize| Ok(leaves.get(j).and_then(Option::as_ref).map(Cow::Borrowed));
        self.pack_strided_with(leaves.len(), m, first, &leaf)
    }

    /// [`Self::pack_strided`] of `count` leaves made on demand by `leaf(j)` (`None`: an absent
    /// leaf), each at the level of `like`: the merge tree asks for its leaves depth first, so
    /// only those of the subtrees in progress are alive (a few per worker) instead of all of
    /// them (4096 leaves of a 6144-row packing at N = 2^16 are 4 GiB).
    pub fn pack_strided_with<'a>(
        &self,
        count: usize,
        m: usize,
        like: &Ciphertext,
        leaf: &LeafFn<'a>,
    ) -> Result<Ciphertext, CkksError> {
        let n = self.context().n();
        let l = count.max(1).next_power_of_two();
        if !m.is_power_of_two() || m > n || l > m {
            return Err(invalid(
                "packing needs a power-of-two stride m <= N and at most m leaves",
            ));
        }
        // The monomials `X^h` of the tree's depths in NTT form, made once (one NTT each, not
        // one per merge).
        let mut monomials = Vec::new();
        let mut width = l;
        while width > 1 {
            let h = m / width;
            monomials.push((h, self.monomial_at(like, h)?));
            width /= 2;
        }
        let indices: Vec<usize> = (0..l).collect();
        let at = |j: usize| if j < count { leaf(j) } else { Ok(None) };
        match self.pack_tree(&indices, &at, m, &monomials)? {
            Some(packed) => self.trace_to_stride(&packed, m / l),
            // Every leaf absent: the packing of zeros.
            None => self.mul_integer_poly(like, &[0]),
        }
    }

    /// The merge tree over the leaves `indices`: values at multiples of `m / len(indices)`;
    /// `monomials` holds `X^h` in NTT form for every depth's `h`.
    fn pack_tree<'a>(
        &self,
        indices: &[usize],
        leaf: &LeafFn<'a>,
        m: usize,
        monomials: &[(usize, RnsPoly<ensi_math::Ntt>)],
    ) -> Result<Option<Cow<'a, Ciphertext>>, CkksError> {
        if let [j] = indices {
            return leaf(*j);
        }
        let even: Vec<usize> = indices.iter().step_by(2).copied().collect();
        let odd: Vec<usize> = indices.iter().skip(1).step_by(2).copied().collect();
        let n = self.context().n();
        let h = m / indices.len();
        let sigma = stride_galois_element(n, 2 * h);
        let shift = |o: &Ciphertext| -> Result<Ciphertext, CkksError> {
            let (_, x_h) = monomials
                .iter()
                .find(|(k, _)| *k == h)
                .ok_or(invalid("packing: a depth without its monomial"))?;
            times_poly(o, x_h)
        };
        // The two subtrees side by side with `parallel` (a level-0 key switch alone barely
        // spreads over limbs: one Q limb).
        #[cfg(feature = "parallel")]
        let (e, o) = {
            let (e, o) = rayon::join(
                || self.pack_tree(&even, leaf, m, monomials),
                || self.pack_tree(&odd, leaf, m, monomials),
            );
            (e?, o?)
        };
        #[cfg(not(feature = "parallel"))]
        let (e, o) = (
            self.pack_tree(&even, leaf, m, monomials)?,
            self.pack_tree(&odd, leaf, m, monomials)?,
        );
        let (plus, minus) = match (e, o) {
            (None, None) => return Ok(None),
            (Some(e), None) => {
                let e = e.into_owned();
                (e.clone(), e)
            }
            (None, Some(o)) => {
                let shifted = shift(&o)?;
                let neg = self.neg(&shifted)?;
                (shifted, neg)
            }
            (Some(e), Some(o)) => {
                let shifted = shift(&o)?;
                (self.add(&e, &shifted)?, self.sub(&e, &shifted)?)
            }
        };
        let mut out = plus;
        self.add_assign(&mut out, &self.apply_galois(&minus, sigma)?)?;
        Ok(Some(Cow::Owned(out)))
    }

    /// `Tr(ct)` onto the polynomials in `X^s`: `log2(s)` steps `c + sigma(c)`, which clear
    /// every coefficient that is not a multiple of `s` and multiply the others by `s`.
    pub fn trace_to_stride(&self, ct: &Ciphertext, s: usize) -> Result<Ciphertext, CkksError> {
        let n = self.context().n();
        if !s.is_power_of_two() || s > 2 * n {
            return Err(invalid(
                "the trace's stride must be a power of two up to 2N",
            ));
        }
        let mut c = ct.clone();
        let mut u = 2;
        while u <= s {
            let t = self.apply_galois(&c, stride_galois_element(n, u))?;
            self.add_assign(&mut c, &t)?;
            u *= 2;
        }
        Ok(c)
    }
}

/// The layout of a coefficient-encoded product `Y = X W^T` of a `rows x cols` integer matrix
/// `W` with `tokens` rows of activations `X` (see the module documentation): input blocks of
/// `m` columns (one ciphertext each), `p = N / (m tokens)` output rows per product, one leaf
/// per group of `p` rows, the leaves packed into one ciphertext at stride `s = m / L`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoeffLayout {
    n: usize,
    rows: usize,
    cols: usize,
    tokens: usize,
    m: usize,
    p: usize,
}

impl CoeffLayout {
    /// The layout for ring degree `n` and block width `m` (a power of two); an error if a block
    /// of `tokens` does not fit, or the leaves exceed `m`.
    pub fn new(
        n: usize,
        rows: usize,
        cols: usize,
        tokens: usize,
        m: usize,
    ) -> Result<Self, CkksError> {
        if rows == 0 || cols == 0 || tokens == 0 || !m.is_power_of_two() || m > n {
            return Err(invalid(
                "a coefficient product needs rows, columns, tokens and a power-of-two block \
                 width m <= N",
            ));
        }
        let p = n / (m * tokens);
        let layout = Self {
            n,
            rows,
            cols,
            tokens,
            m,
            p,
        };
        if p == 0 || layout.leaves().next_power_of_two() > m {
            return Err(invalid(
                "the tokens do not fit one block (m * tokens > N), or the output needs more \
                 leaves than the block width m",
            ));
        }
        Ok(layout)
    }

    /// The layout with the fewest predicted operations among the block widths `m` from 256 to
    /// `N / tokens`, a key switch counted as `ks_cost` products.
    pub fn best(
        n: usize,
        rows: usize,
        cols: usize,
        tokens: usize,
        ks_cost: f64,
    ) -> Result<Self, CkksError> {
        let mut best: Option<(f64, Self)> = None;
        let mut m = 256.min(n);
        while m <= n {
            if let Ok(l) = Self::new(n, rows, cols, tokens, m) {
                let cost = l.products() as f64 + ks_cost * l.key_switches() as f64;
                if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                    best = Some((cost, l));
                }
            }
            m *= 2;
        }
        best.map(|(_, l)| l)
            .ok_or(invalid("no block width fits this product"))
    }

    /// The block width `m`.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Output rows per product `p`.
    pub fn rows_per_product(&self) -> usize {
        self.p
    }

    /// Input ciphertexts (blocks of `m` columns).
    pub fn input_blocks(&self) -> usize {
        self.cols.div_ceil(self.m)
    }

    /// Leaves (groups of `p` output rows).
    pub fn leaves(&self) -> usize {
        self.rows.div_ceil(self.p)
    }

    /// Integer polynomial products.
    pub fn products(&self) -> usize {
        self.leaves() * self.input_blocks()
    }

    /// The packed output's stride `s = m / L`.
    pub fn stride(&self) -> usize {
        self.m / self.leaves().next_power_of_two()
    }

    /// Key switches of the packing ([`pack_key_switches`]).
    pub fn key_switches(&self) -> usize {
        pack_key_switches(self.m, &alloc::vec![true; self.leaves()])
    }

    /// The coefficients of input block `b` for `x` (`tokens x cols`, row-major): token `t`'s
    /// column `b m + c` at coefficient `t m p + c`.
    pub fn input_coefficients(&self, x: &[f64], b: usize) -> Result<Vec<f64>, CkksError> {
        if x.len() != self.tokens * self.cols || b >= self.input_blocks() {
            return Err(invalid(
                "the input must be tokens x cols, and the block must exist",
            ));
        }
        let mut out = alloc::vec![0.0; self.n];
        for t in 0..self.tokens {
            for c in 0..self.m.min(self.cols - b * self.m) {
                out[t * self.m * self.p + c] = x[t * self.cols + b * self.m + c];
            }
        }
        Ok(out)
    }

    /// The weight polynomial of leaf `j` and input block `b`: `W[j p + r][b m + c]` at
    /// `X^(m r - c)` (negacyclic), for the integer entries `entry(row, col)`.
    pub fn weight_poly(&self, j: usize, b: usize, entry: &dyn Fn(usize, usize) -> i64) -> Vec<i64> {
        let mut w = alloc::vec![0i64; self.n];
        for r in 0..self.p {
            let row = j * self.p + r;
            if row >= self.rows {
                break;
            }
            for c in 0..self.m.min(self.cols.saturating_sub(b * self.m)) {
                let v = entry(row, b * self.m + c);
                if v == 0 {
                    continue;
                }
                let e = self.m * r;
                if e >= c {
                    w[e - c] += v;
                } else {
                    w[self.n + e - c] -= v;
                }
            }
        }
        w
    }

    /// The coefficient of the packed output that holds row `row` of token `t`.
    pub fn output_position(&self, t: usize, row: usize) -> usize {
        let (j, r) = (row / self.p, row % self.p);
        self.m * (t * self.p + r) + self.stride() * j
    }

    /// The factor every packed value carries: `m`.
    pub fn gain(&self) -> usize {
        self.m
    }
}

impl Evaluator {
    /// The coefficient-encoded product of [`CoeffLayout`]: `xs` are the input blocks' ciphertexts
    /// (coefficient-encoded at one level), `entry(row, col)` the integer matrix. Each leaf is
    /// `sum_b x_b * w_{j,b}` (the weight polynomials built on the fly), then the leaves are packed
    /// ([`Self::pack_strided`]). The output holds `m * Y[t][row]` at
    /// [`CoeffLayout::output_position`], every other coefficient zero, at the inputs' scale and
    /// level.
    pub fn coeff_matmul(
        &self,
        layout: &CoeffLayout,
        xs: &[Ciphertext],
        entry: &(dyn Fn(usize, usize) -> i64 + Sync),
    ) -> Result<Ciphertext, CkksError> {
        let leaves = self.coeff_leaves(layout, xs, entry)?;
        self.pack_strided(&leaves, layout.m)
    }

    /// The leaves of [`Self::coeff_matmul`] before packing: leaf `j` holds
    /// `Y[t][j p + r]` at coefficient `m (t p + r)` (garbage elsewhere). In parallel over the
    /// leaves with the `parallel` feature.
    pub fn coeff_leaves(
        &self,
        layout: &CoeffLayout,
        xs: &[Ciphertext],
        entry: &(dyn Fn(usize, usize) -> i64 + Sync),
    ) -> Result<Vec<Option<Ciphertext>>, CkksError> {
        if xs.len() != layout.input_blocks() {
            return Err(invalid("one input ciphertext per block of m columns"));
        }
        self.integer_leaves(layout.leaves(), xs, &|j, b| layout.weight_poly(j, b, entry))
    }

    /// `count` leaves, leaf `j` the sum over the inputs `x_k` of `x_k * weight(j, k)` (the
    /// integer polynomials built on the fly), in parallel over the leaves with `parallel`.
    fn integer_leaves(
        &self,
        count: usize,
        xs: &[Ciphertext],
        weight: &(dyn Fn(usize, usize) -> Vec<i64> + Sync),
    ) -> Result<Vec<Option<Ciphertext>>, CkksError> {
        let leaf = |j: usize| self.integer_leaf(xs, j, weight);
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            (0..count).into_par_iter().map(leaf).collect()
        }
        #[cfg(not(feature = "parallel"))]
        {
            (0..count).map(leaf).collect()
        }
    }

    /// Leaf `j`: the sum over the inputs `x_k` of `x_k * weight(j, k)`; `None` where every
    /// weight polynomial is zero.
    fn integer_leaf(
        &self,
        xs: &[Ciphertext],
        j: usize,
        weight: &(dyn Fn(usize, usize) -> Vec<i64> + Sync),
    ) -> Result<Option<Ciphertext>, CkksError> {
        let mut acc: Option<Ciphertext> = None;
        for (k, x) in xs.iter().enumerate() {
            let w = weight(j, k);
            // A zero weight polynomial adds nothing (padding rows): no product, and a leaf
            // without any is absent, so the packing skips it and its merges.
            if w.iter().all(|&v| v == 0) {
                continue;
            }
            match &mut acc {
                None => acc = Some(self.mul_integer_poly(x, &w)?),
                Some(a) => self.mul_integer_poly_acc(a, x, &w)?,
            }
        }
        Ok(acc)
    }
}

/// `i` with its low `bits` bits reversed.
fn bitrev(i: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        i.reverse_bits() >> (usize::BITS - bits)
    }
}

/// The coefficient product fed directly by SlotsToCoeffs from the column-block slot layout
/// (slot `c * n_pad + t` holds column `c` of token `t`), and whose bootstrapped output lands
/// back in that layout: no permutation of its own on either side.
///
/// * **In.** SlotsToCoeffs puts slot `i` at coefficient `bitrev(i)` (the special FFT without
///   its bit reversal, see [`crate::bootstrap`]), so token `t`'s column `c` of an input chunk
///   (`C = N/2 / n_pad` columns) lands at `T C + rho(c)` with `T = bitrev(t)` over
///   `log2 n_pad` bits and `rho(c) = bitrev(c n_pad)` over `log2(N/2)` bits: each token a
///   contiguous block of `C` coefficients, its columns bit-reversed inside it. A weight row
///   `sum_c W[r][c] X^(-rho(c))` gathers the row's dot product at coefficient `T C` of every
///   token block, exactly (the other terms of the block fall strictly between multiples of
///   `C`), and the same row shifted by `X^(N/2)` gathers another row at `N/2 + T C` (the input
///   is real, so the upper half is free). One leaf = one product per input chunk = two rows,
///   its values at multiples of `C`, the stride [`Evaluator::pack_strided`] packs.
/// * **Out.** Packing `L` leaves at stride `C` puts leaf `j`'s values at `C i + (C/L) j`, and
///   CoeffsToSlots reads coefficient `k` in slot `bitrev(k)`: leaf `j`'s lower row for token
///   `t` comes out at slot `bitrev_L(j) n_pad + t` of the real half, its upper row at the same
///   slot of the imaginary half. So leaf `j` computes rows `bitrev_L(j)` and
///   `L + bitrev_L(j)`: the real half is then the block layout of rows `0..L`, the imaginary
///   half of rows `L..2L`.
///
/// The price of a dense input: two rows per leaf, so `rows / 2` (rounded to a power of two)
/// leaves and as many key switches to pack them, where Cheetah's sparse input blocks
/// ([`CoeffLayout`]) put `N / (m tokens)` rows in a leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotCoeffLayout {
    n: usize,
    rows: usize,
    cols: usize,
    n_pad: usize,
    leaves: usize,
}

impl SlotCoeffLayout {
    /// The layout of a `rows x cols` product on `n_pad` (a power of two) tokens per ciphertext
    /// at ring degree `n`: `cols` may span several input chunks of `C = N/2 / n_pad` columns;
    /// `rows` at most `2 C`.
    pub fn new(n: usize, rows: usize, cols: usize, n_pad: usize) -> Result<Self, CkksError> {
        let slots = n / 2;
        if rows == 0 || cols == 0 || !n_pad.is_power_of_two() || n_pad > slots {
            return Err(invalid(
                "a slot-fed coefficient product needs rows, columns and a power-of-two token \
                 count up to N/2",
            ));
        }
        let chunk = slots / n_pad;
        let leaves = rows.div_ceil(2).next_power_of_two();
        if leaves > chunk {
            return Err(invalid(
                "a slot-fed coefficient product has at most 2 N/2 / n_pad rows",
            ));
        }
        Ok(Self {
            n,
            rows,
            cols,
            n_pad,
            leaves,
        })
    }

    /// Columns per input chunk `C = N/2 / n_pad`: the packing stride.
    pub fn chunk(&self) -> usize {
        self.n / 2 / self.n_pad
    }

    /// Input chunks (ciphertexts).
    pub fn input_chunks(&self) -> usize {
        self.cols.div_ceil(self.chunk())
    }

    /// Leaves `L` (a power of two): the real half of the output holds rows `0..L`, the
    /// imaginary half rows `L..2L`.
    pub fn leaves(&self) -> usize {
        self.leaves
    }

    /// Integer polynomial products: one per leaf and input chunk.
    pub fn products(&self) -> usize {
        self.leaves * self.input_chunks()
    }

    /// Key switches of the packing ([`pack_key_switches`] at stride `C`).
    pub fn key_switches(&self) -> usize {
        pack_key_switches(self.chunk(), &alloc::vec![true; self.leaves])
    }

    /// The rows leaf `j` computes: `(lower, upper)`, each `None` past the last row.
    pub fn leaf_rows(&self, j: usize) -> (Option<usize>, Option<usize>) {
        let r = bitrev(j, self.leaves.trailing_zeros());
        let ok = |row: usize| (row < self.rows).then_some(row);
        (ok(r), ok(self.leaves + r))
    }

    /// The coefficient SlotsToCoeffs gives column `c` (within its chunk) of token `t`.
    pub fn input_position(&self, t: usize, c: usize) -> usize {
        bitrev(c * self.n_pad + t, (self.n / 2).trailing_zeros())
    }

    /// The weight polynomial of leaf `j` on input chunk `k`, for the integer entries
    /// `entry(row, col)`.
    pub fn weight_poly(&self, j: usize, k: usize, entry: &dyn Fn(usize, usize) -> i64) -> Vec<i64> {
        let (n, chunk) = (self.n, self.chunk());
        let mut w = alloc::vec![0i64; n];
        let (lower, upper) = self.leaf_rows(j);
        let c0 = k * chunk;
        for (row, base) in [(lower, 0), (upper, n / 2)] {
            let Some(row) = row else { continue };
            for c in 0..chunk.min(self.cols.saturating_sub(c0)) {
                let v = entry(row, c0 + c);
                if v == 0 {
                    continue;
                }
                // X^(base - rho(c)), negacyclic.
                let rho = self.input_position(0, c);
                if base >= rho {
                    w[base - rho] += v;
                } else {
                    w[n + base - rho] -= v;
                }
            }
        }
        w
    }

    /// The factor every packed value carries: the stride `C`.
    pub fn gain(&self) -> usize {
        self.chunk()
    }

    /// Where row `row` of token `t` is after the bootstrap: `(imaginary half?, slot)`.
    pub fn output_slot(&self, t: usize, row: usize) -> (bool, usize) {
        let upper = row >= self.leaves;
        let r = if upper { row - self.leaves } else { row };
        (upper, r * self.n_pad + t)
    }
}

impl Evaluator {
    /// The product of [`SlotCoeffLayout`]: `xs` are the input chunks after SlotsToCoeffs
    /// (coefficient form, one level and scale), `entry(row, col)` the integer matrix. Leaf `j`
    /// is `sum_k x_k * w_{j,k}` (built on the fly, in parallel over leaves with `parallel`);
    /// the leaves are packed at stride `C`. The output holds `C * Y[t][row]` at coefficient
    /// `C i + (C/L) j` (see the layout), every other coefficient zero.
    pub fn slot_coeff_matmul(
        &self,
        layout: &SlotCoeffLayout,
        xs: &[Ciphertext],
        entry: &(dyn Fn(usize, usize) -> i64 + Sync),
    ) -> Result<Ciphertext, CkksError> {
        if xs.len() != layout.input_chunks() {
            return Err(invalid(
                "one input ciphertext per chunk of N/2 / n_pad columns",
            ));
        }
        // The leaves made as the packing tree asks for them (none stored beyond the subtrees
        // in progress).
        let weight = |j: usize, k: usize| layout.weight_poly(j, k, entry);
        let leaf = |j: usize| Ok(self.integer_leaf(xs, j, &weight)?.map(Cow::Owned));
        let like = xs.first().ok_or(invalid("packing needs an input"))?;
        self.pack_strided_with(layout.leaves(), layout.chunk(), like, &leaf)
    }
}
