//! The column-block layout: an `n x d` activation matrix in **one** ciphertext, slot
//! `c * n_pad + t` holding column `c` of token `t` (`n_pad = n` rounded up to a power of two),
//! replicated with period `P = d.next_power_of_two() * n_pad` over all slots.
//!
//! This is the packed layout of the cost model: where the column layout spends one ciphertext
//! (and one bootstrap) per hidden dimension, a short prompt of a small model fits in one
//! ciphertext here, so a refresh is one bootstrap whatever the width. A linear layer is the
//! Kronecker product `W ⊗ I_{n_pad}`, whose only non-zero diagonals are the multiples of
//! `n_pad`: a baby-step giant-step product over `min(P_in, P_out) / n_pad` diagonals
//! ([`ReplicatedMatrix::with_stride`]), streamed (each plaintext diagonal encoded just before
//! its product), one level. Every constant (weight scale, RMSNorm gain, RoPE's cos/sin,
//! `1/sqrt(head dim)`, a polynomial's affine map) is folded into the diagonals: an entry
//! function `(row, col, token) -> f64` gives the folded matrix token by token.
//!
//! Rotating the whole slot vector by a multiple of `n_pad` moves whole columns, cyclically
//! inside each period, which is what the column sums of RMSNorm and the head-dimension sums of
//! attention use.

use alloc::sync::Arc;
use alloc::vec::Vec;
use ensi_ckks::{Ciphertext, CkksContext, CkksError, Evaluator, ReplicatedMatrix, SecretKey};
use rand_core::{CryptoRng, RngCore};

/// The replication period of a `cols`-wide matrix of `n_pad` (padded) tokens.
pub fn block_period(cols: usize, n_pad: usize) -> usize {
    cols.max(1).next_power_of_two() * n_pad
}

/// An encrypted `tokens x cols` matrix in the column-block layout (see the module
/// documentation).
#[derive(Clone, Debug)]
pub struct BlockMatrix {
    ct: Ciphertext,
    tokens: usize,
    cols: usize,
}

fn invalid(reason: &'static str) -> CkksError {
    CkksError::InvalidArgument { reason }
}

impl BlockMatrix {
    /// The slot vector of `values` (`tokens x cols`, row-major) on `slots` slots: slot `s`
    /// holds column `(s mod P) / n_pad` of token `s mod n_pad` (zero in the padding).
    pub fn slot_values(
        values: &[f64],
        tokens: usize,
        cols: usize,
        slots: usize,
    ) -> Result<Vec<f64>, CkksError> {
        if tokens == 0 || cols == 0 || values.len() != tokens * cols {
            return Err(invalid("the matrix must have tokens x cols values"));
        }
        let n_pad = tokens.next_power_of_two();
        let period = block_period(cols, n_pad);
        if period > slots {
            return Err(invalid(
                "the matrix does not fit one ciphertext in the column-block layout \
                 (cols rounded up to a power of two, times tokens rounded up, exceeds the slots)",
            ));
        }
        Ok((0..slots)
            .map(|s| {
                let (c, t) = ((s % period) / n_pad, s % n_pad);
                if c < cols && t < tokens {
                    values[t * cols + c]
                } else {
                    0.0
                }
            })
            .collect())
    }

    /// The client's encryption of `values` (`tokens x cols`, row-major) at `level` and `scale`.
    pub fn encrypt<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        values: &[f64],
        tokens: usize,
        level: usize,
        scale: f64,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        let slots = ctx.n() / 2;
        let cols = values.len().checked_div(tokens).unwrap_or(0);
        let v = Self::slot_values(values, tokens, cols, slots)?;
        let pt = ctx.encode(&v, slots, level, scale)?;
        Ok(Self {
            ct: sk.encrypt(ctx, &pt, rng)?,
            tokens,
            cols,
        })
    }

    /// Wraps a ciphertext that holds a `tokens x cols` matrix in this layout.
    pub fn from_ciphertext(ct: Ciphertext, tokens: usize, cols: usize) -> Result<Self, CkksError> {
        if tokens == 0 || cols == 0 || block_period(cols, tokens.next_power_of_two()) > ct.slots() {
            return Err(invalid(
                "a column-block matrix needs a token, a column and a period within the slots",
            ));
        }
        Ok(Self { ct, tokens, cols })
    }

    /// The `tokens x cols` values (row-major) of a decoded slot vector.
    pub fn from_slot_values(slots: &[f64], tokens: usize, cols: usize) -> Vec<f64> {
        let n_pad = tokens.next_power_of_two();
        let mut out = alloc::vec![0.0; tokens * cols];
        for t in 0..tokens {
            for c in 0..cols {
                out[t * cols + c] = slots.get(c * n_pad + t).copied().unwrap_or(0.0);
            }
        }
        out
    }

    /// The client's decryption: the `tokens x cols` values, row-major.
    pub fn decrypt(&self, ctx: &Arc<CkksContext>, sk: &SecretKey) -> Result<Vec<f64>, CkksError> {
        let v = ctx.decode(&sk.decrypt(ctx, &self.ct)?)?;
        Ok(Self::from_slot_values(&v, self.tokens, self.cols))
    }

    /// The ciphertext.
    pub fn ciphertext(&self) -> &Ciphertext {
        &self.ct
    }

    /// The ciphertext, taken.
    pub fn into_ciphertext(self) -> Ciphertext {
        self.ct
    }

    /// The number of tokens (rows).
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// The padded token count, a power of two.
    pub fn n_pad(&self) -> usize {
        self.tokens.next_power_of_two()
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The replication period.
    pub fn period(&self) -> usize {
        block_period(self.cols, self.n_pad())
    }

    /// The ciphertext's level.
    pub fn level(&self) -> usize {
        self.ct.level()
    }

    /// The ciphertext's scale.
    pub fn scale(&self) -> f64 {
        self.ct.scale()
    }

    /// The same matrix in another ciphertext (same layout).
    pub fn with_ciphertext(&self, ct: Ciphertext) -> Self {
        Self {
            ct,
            tokens: self.tokens,
            cols: self.cols,
        }
    }
}

/// A `tokens x cols` matrix too wide for one ciphertext: its columns in chunks of
/// [`chunk_cols`]` = slots / n_pad` (the last may be narrower, see [`chunks`]), each chunk a
/// [`BlockMatrix`] of its own, all at one level and scale. A matrix that fits one ciphertext
/// is one chunk, exactly the [`BlockMatrix`].
#[derive(Clone, Debug)]
pub struct ChunkedMatrix {
    parts: Vec<BlockMatrix>,
}

impl From<BlockMatrix> for ChunkedMatrix {
    fn from(x: BlockMatrix) -> Self {
        Self {
            parts: alloc::vec![x],
        }
    }
}

impl ChunkedMatrix {
    /// The chunks, checked: at least one, the widths of [`chunks`] for the slots and tokens,
    /// one token count, one level, one scale.
    pub fn from_parts(parts: Vec<BlockMatrix>) -> Result<Self, CkksError> {
        let first = parts
            .first()
            .ok_or(invalid("a chunked matrix needs a chunk"))?;
        let (slots, tokens) = (first.ct.slots(), first.tokens);
        let cols: usize = parts.iter().map(BlockMatrix::cols).sum();
        let widths = chunks(cols, chunk_cols(slots, first.n_pad()));
        let fits = parts.len() == widths.len()
            && parts.iter().zip(&widths).all(|(x, &(_, w))| {
                x.cols == w
                    && x.tokens == tokens
                    && x.ct.slots() == slots
                    && x.level() == first.level()
                    && x.scale() == first.scale()
            });
        if !fits {
            return Err(invalid(
                "the chunks must hold slots / n_pad columns each (the last may be narrower), \
                 for one token count, at one level and scale",
            ));
        }
        Ok(Self { parts })
    }

    /// How many chunks a `tokens x cols` matrix takes on `slots` slots.
    pub fn chunk_count(slots: usize, tokens: usize, cols: usize) -> usize {
        chunks(cols, chunk_cols(slots, tokens.next_power_of_two())).len()
    }

    /// The slot vector of each chunk of `values` (`tokens x cols`, row-major) on `slots` slots
    /// ([`BlockMatrix::slot_values`] of each column chunk): what a client encrypts, one
    /// ciphertext per chunk.
    pub fn slot_values(
        values: &[f64],
        tokens: usize,
        cols: usize,
        slots: usize,
    ) -> Result<Vec<Vec<f64>>, CkksError> {
        if tokens == 0 || cols == 0 || values.len() != tokens * cols || !slots.is_power_of_two() {
            return Err(invalid("the matrix must have tokens x cols values"));
        }
        chunks(cols, chunk_cols(slots, tokens.next_power_of_two()))
            .into_iter()
            .map(|(c0, w)| {
                let sub: Vec<f64> = (0..tokens)
                    .flat_map(|t| values[t * cols + c0..t * cols + c0 + w].iter().copied())
                    .collect();
                BlockMatrix::slot_values(&sub, tokens, w, slots)
            })
            .collect()
    }

    /// Wraps the ciphertexts of a `tokens x cols` matrix's chunks, in order (as a bundle holds
    /// them): exactly [`Self::chunk_count`] of them, at one level and scale.
    pub fn from_ciphertexts(
        cts: Vec<Ciphertext>,
        tokens: usize,
        cols: usize,
    ) -> Result<Self, CkksError> {
        let slots = cts
            .first()
            .ok_or(invalid("a chunked matrix needs a chunk"))?
            .slots();
        if tokens == 0 || cols == 0 || tokens.next_power_of_two() > slots {
            return Err(invalid(
                "a chunked matrix needs tokens and columns that fit the slots",
            ));
        }
        let widths = chunks(cols, chunk_cols(slots, tokens.next_power_of_two()));
        if cts.len() != widths.len() {
            return Err(invalid(
                "a chunked matrix needs one ciphertext per chunk of slots / n_pad columns",
            ));
        }
        let parts = cts
            .into_iter()
            .zip(widths)
            .map(|(ct, (_, w))| BlockMatrix::from_ciphertext(ct, tokens, w))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_parts(parts)
    }

    /// The `tokens x cols` values (row-major) from each chunk's decoded slot vector, in order.
    pub fn from_slot_values(
        chunk_slots: &[Vec<f64>],
        tokens: usize,
        cols: usize,
    ) -> Result<Vec<f64>, CkksError> {
        let slots = chunk_slots.first().map_or(0, Vec::len);
        if tokens == 0
            || cols == 0
            || !slots.is_power_of_two()
            || tokens.next_power_of_two() > slots
            || chunk_slots.iter().any(|v| v.len() != slots)
        {
            return Err(invalid(
                "chunk slot vectors must be of one power-of-two length holding the tokens",
            ));
        }
        let widths = chunks(cols, chunk_cols(slots, tokens.next_power_of_two()));
        if widths.len() != chunk_slots.len() {
            return Err(invalid(
                "one slot vector per chunk of slots / n_pad columns",
            ));
        }
        let mut out = alloc::vec![0.0; tokens * cols];
        for (v, (c0, w)) in chunk_slots.iter().zip(widths) {
            let part = BlockMatrix::from_slot_values(v, tokens, w);
            for t in 0..tokens {
                out[t * cols + c0..t * cols + c0 + w].copy_from_slice(&part[t * w..(t + 1) * w]);
            }
        }
        Ok(out)
    }

    /// The client's encryption of `values` (`tokens x cols`, row-major) at `level` and `scale`:
    /// one ciphertext per chunk.
    pub fn encrypt<G: RngCore + CryptoRng>(
        ctx: &Arc<CkksContext>,
        sk: &SecretKey,
        values: &[f64],
        tokens: usize,
        level: usize,
        scale: f64,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        let cols = values.len().checked_div(tokens).unwrap_or(0);
        if tokens == 0 || cols == 0 || values.len() != tokens * cols {
            return Err(invalid("the matrix must have tokens x cols values"));
        }
        let slots = ctx.n() / 2;
        let widths = chunks(cols, chunk_cols(slots, tokens.next_power_of_two()));
        let parts = Self::slot_values(values, tokens, cols, slots)?
            .into_iter()
            .zip(widths)
            .map(|(v, (_, w))| {
                let pt = ctx.encode(&v, slots, level, scale)?;
                Ok(BlockMatrix {
                    ct: sk.encrypt(ctx, &pt, rng)?,
                    tokens,
                    cols: w,
                })
            })
            .collect::<Result<Vec<_>, CkksError>>()?;
        Self::from_parts(parts)
    }

    /// The client's decryption: the `tokens x cols` values, row-major.
    pub fn decrypt(&self, ctx: &Arc<CkksContext>, sk: &SecretKey) -> Result<Vec<f64>, CkksError> {
        let slots = self
            .parts
            .iter()
            .map(|p| ctx.decode(&sk.decrypt(ctx, &p.ct)?))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_slot_values(&slots, self.tokens(), self.cols())
    }

    /// The chunks, in column order.
    pub fn parts(&self) -> &[BlockMatrix] {
        &self.parts
    }

    /// The chunks, taken.
    pub fn into_parts(self) -> Vec<BlockMatrix> {
        self.parts
    }

    /// The matrix as one ciphertext, or `None` if it has several chunks.
    pub fn single(&self) -> Option<&BlockMatrix> {
        match self.parts.as_slice() {
            [x] => Some(x),
            _ => None,
        }
    }

    /// The number of tokens (rows).
    pub fn tokens(&self) -> usize {
        self.parts[0].tokens
    }

    /// The padded token count, a power of two.
    pub fn n_pad(&self) -> usize {
        self.parts[0].n_pad()
    }

    /// The number of columns, over all chunks.
    pub fn cols(&self) -> usize {
        self.parts.iter().map(BlockMatrix::cols).sum()
    }

    /// The chunks' level.
    pub fn level(&self) -> usize {
        self.parts[0].level()
    }

    /// The chunks' scale.
    pub fn scale(&self) -> f64 {
        self.parts[0].scale()
    }

    /// The same layout with every chunk's ciphertext replaced by `f` of it.
    pub fn map<F>(&self, mut f: F) -> Result<Self, CkksError>
    where
        F: FnMut(&BlockMatrix) -> Result<Ciphertext, CkksError>,
    {
        let parts = self
            .parts
            .iter()
            .map(|p| Ok(p.with_ciphertext(f(p)?)))
            .collect::<Result<Vec<_>, CkksError>>()?;
        Self::from_parts(parts)
    }
}

/// The `rows x cols` matrix `entry(row, col, token)`, token by token, as the slot matrix of the
/// layout (`(W_t)` on the diagonal blocks of `I_{n_pad}`), with only its non-zero diagonals.
pub fn block_matrix<F: Fn(usize, usize, usize) -> f64 + Sync>(
    slots: usize,
    rows: usize,
    cols: usize,
    n_pad: usize,
    entry: F,
) -> Result<ReplicatedMatrix<impl Fn(usize, usize) -> f64 + Sync>, CkksError> {
    if !n_pad.is_power_of_two() {
        return Err(invalid("the padded token count must be a power of two"));
    }
    ReplicatedMatrix::new(slots, rows * n_pad, cols * n_pad, move |i, j| {
        if i % n_pad == j % n_pad {
            entry(i / n_pad, j / n_pad, i % n_pad)
        } else {
            0.0
        }
    })?
    .with_stride(n_pad)
}

/// `y_t = W_t x_t` for every token, with `W_t[row][col] = entry(row, col, t)` (`rows` outputs):
/// one streamed BSGS product and one rescale. The output has scale `out_scale` exactly (the
/// diagonals are encoded so), one level below `x`.
pub fn block_linear<F: Fn(usize, usize, usize) -> f64 + Sync>(
    eval: &Evaluator,
    x: &BlockMatrix,
    rows: usize,
    entry: F,
    out_scale: f64,
) -> Result<BlockMatrix, CkksError> {
    let slots = x.ct.slots();
    let m = block_matrix(slots, rows, x.cols, x.n_pad(), entry)?;
    if m.input_period() != x.period() {
        return Err(invalid("the matrix's width does not match the input's"));
    }
    let q_l = eval.context().params().q()[x.level()] as f64;
    let pt_scale = out_scale * q_l / x.scale();
    let mut y = eval.rescale(&eval.replicated_matvec(&x.ct, &m, pt_scale)?)?;
    eval.match_scale(&mut y, out_scale)?;
    Ok(BlockMatrix {
        ct: y,
        tokens: x.tokens,
        cols: rows,
    })
}

/// The columns each ciphertext of a chunked activation holds: `slots / n_pad` (a power of two).
pub fn chunk_cols(slots: usize, n_pad: usize) -> usize {
    (slots / n_pad.max(1)).max(1)
}

/// The `(offset, width)` of each chunk of `cols` columns, [`chunk_cols`] wide but the last.
pub fn chunks(cols: usize, chunk: usize) -> Vec<(usize, usize)> {
    (0..cols.div_ceil(chunk))
        .map(|i| (i * chunk, chunk.min(cols - i * chunk)))
        .collect()
}

/// [`block_linear`] for activations too wide for one ciphertext: `xs` holds the columns in
/// chunks of [`chunk_cols`] (the last may be narrower), and so does the output. Output chunk
/// `o` is `sum_i W[o, i] x_i` over the input chunks: `c_out * c_in` streamed BSGS products of
/// at most `chunk` diagonals each (the column-block BSGS of the cost model), one level. Each
/// input chunk's baby-step rotations are computed once (hoisted) and shared by every output
/// chunk, and each output chunk is rescaled once, after its sum. Every output chunk has scale
/// `out_scale` exactly.
pub fn block_linear_chunked<F: Fn(usize, usize, usize) -> f64 + Sync>(
    eval: &Evaluator,
    xs: &[BlockMatrix],
    rows: usize,
    entry: F,
    out_scale: f64,
) -> Result<Vec<BlockMatrix>, CkksError> {
    let first = xs
        .first()
        .ok_or(invalid("a chunked activation needs a chunk"))?;
    let (slots, n_pad, tokens) = (first.ct.slots(), first.n_pad(), first.tokens);
    let chunk = chunk_cols(slots, n_pad);
    let cols: usize = xs.iter().map(BlockMatrix::cols).sum();
    let in_chunks = chunks(cols, chunk);
    let out_chunks = chunks(rows, chunk);
    let same = |x: &BlockMatrix| {
        x.tokens == tokens && x.level() == first.level() && x.scale() == first.scale()
    };
    if xs.len() != in_chunks.len()
        || xs
            .iter()
            .zip(&in_chunks)
            .any(|(x, &(_, w))| x.cols != w || !same(x))
    {
        return Err(invalid(
            "the chunks must hold slots / n_pad columns each (the last may be narrower), at \
             one level and scale",
        ));
    }
    let q_l = eval.context().params().q()[first.level()] as f64;
    let pt_scale = out_scale * q_l / first.scale();
    let mut acc: Vec<Option<Ciphertext>> = alloc::vec![None; out_chunks.len()];
    let entry = &entry;
    for (x, &(c0, width)) in xs.iter().zip(&in_chunks) {
        let matrices = out_chunks
            .iter()
            .map(|&(r0, height)| {
                block_matrix(slots, height, width, n_pad, move |r, c, t| {
                    entry(r0 + r, c0 + c, t)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut steps = alloc::collections::BTreeSet::new();
        for m in &matrices {
            if m.input_period() != x.period() {
                return Err(invalid("the matrix's width does not match the input's"));
            }
            steps.extend(m.baby_steps()?);
        }
        let babies = eval.baby_steps(&x.ct, &steps)?;
        for (m, slot) in matrices.iter().zip(acc.iter_mut()) {
            let y = eval.replicated_matvec_from(&babies, m, pt_scale)?;
            match slot {
                None => *slot = Some(y),
                Some(a) => eval.add_assign(a, &y)?,
            }
        }
    }
    acc.into_iter()
        .zip(&out_chunks)
        .map(|(y, &(_, height))| {
            let y = y.ok_or(invalid("a chunked activation needs a chunk"))?;
            let mut y = eval.rescale(&y)?;
            eval.match_scale(&mut y, out_scale)?;
            Ok(BlockMatrix {
                ct: y,
                tokens,
                cols: height,
            })
        })
        .collect()
}

/// [`block_linear_chunked`] on a [`ChunkedMatrix`].
pub fn chunked_linear<F: Fn(usize, usize, usize) -> f64 + Sync>(
    eval: &Evaluator,
    x: &ChunkedMatrix,
    rows: usize,
    entry: F,
    out_scale: f64,
) -> Result<ChunkedMatrix, CkksError> {
    ChunkedMatrix::from_parts(block_linear_chunked(
        eval,
        x.parts(),
        rows,
        entry,
        out_scale,
    )?)
}

/// The rotations of [`block_linear_chunked`] for a `rows x cols` matrix.
pub fn block_linear_chunked_rotations(
    slots: usize,
    rows: usize,
    cols: usize,
    n_pad: usize,
) -> Result<Vec<isize>, CkksError> {
    let chunk = chunk_cols(slots, n_pad);
    let mut r = Vec::new();
    for (_, h) in chunks(rows, chunk) {
        for (_, w) in chunks(cols, chunk) {
            r.extend(block_linear_rotations(slots, h, w, n_pad)?);
        }
    }
    r.sort_unstable();
    r.dedup();
    Ok(r)
}

/// The rotations of [`block_linear`] for a `rows x cols` matrix (for key generation).
pub fn block_linear_rotations(
    slots: usize,
    rows: usize,
    cols: usize,
    n_pad: usize,
) -> Result<Vec<isize>, CkksError> {
    block_matrix(slots, rows, cols, n_pad, |_, _, _| 0.0)?.rotations()
}

/// `sum_{j < count} rot(ct, step 2^j)` by doubling: `log2` rotations, each slot then holds the
/// sum of the `2^count` slots `s, s + step, s + 2 step, ...` (cyclically).
pub fn rotate_sum(
    eval: &Evaluator,
    ct: &Ciphertext,
    step: usize,
    count: usize,
) -> Result<Ciphertext, CkksError> {
    let mut acc = ct.clone();
    for j in 0..count {
        let r = eval.rotate(&acc, (step << j) as isize)?;
        eval.add_assign(&mut acc, &r)?;
    }
    Ok(acc)
}

/// The rotations of [`rotate_sum`].
pub fn rotate_sum_steps(step: usize, count: usize) -> Vec<isize> {
    (0..count).map(|j| (step << j) as isize).collect()
}

/// `sum_c x_c^2` per token, replicated in every column block of the period: one product, one
/// rescale, `log2(P / n_pad)` rotations.
pub fn sum_of_squares(eval: &Evaluator, x: &BlockMatrix) -> Result<Ciphertext, CkksError> {
    let sq = eval.rescale(&eval.mul_relin(&x.ct, &x.ct)?)?;
    let count = (x.period() / x.n_pad()).trailing_zeros() as usize;
    rotate_sum(eval, &sq, x.n_pad(), count)
}

/// [`sum_of_squares`] over every chunk of `x`: `sum_c x_c^2` over all the columns, per token,
/// replicated with period `n_pad` ([`chunked_column_dot`] of `x` with itself).
pub fn chunked_sum_of_squares(
    eval: &Evaluator,
    x: &ChunkedMatrix,
) -> Result<Ciphertext, CkksError> {
    chunked_column_dot(eval, x, x)
}

/// `sum_c a_c b_c` over all the columns of two matrices of the same chunks, per token,
/// replicated with period `n_pad`, at one level below the lower of the two. The products of
/// the chunks of one width are summed as tensors, then relinearized, rescaled and
/// rotate-summed once (a narrower last chunk, which is replicated inside the slots, is summed
/// over its own period).
pub fn chunked_column_dot(
    eval: &Evaluator,
    a: &ChunkedMatrix,
    b: &ChunkedMatrix,
) -> Result<Ciphertext, CkksError> {
    let n_pad = a.n_pad();
    if a.parts().len() != b.parts().len()
        || a.parts()
            .iter()
            .zip(b.parts())
            .any(|(x, y)| x.cols() != y.cols() || x.n_pad() != y.n_pad())
    {
        return Err(invalid(
            "a column dot product needs matrices of the same chunks",
        ));
    }
    let level = a.level().min(b.level());
    // (period, summed tensors), in the order the periods appear.
    let mut groups: Vec<(usize, Ciphertext)> = Vec::new();
    for (p, q) in a.parts().iter().zip(b.parts()) {
        // Only an operand above the common level is dropped (no copy of the other).
        let at = |c: &'_ Ciphertext| -> Result<Option<Ciphertext>, CkksError> {
            (c.level() > level)
                .then(|| eval.drop_to_level(c, level))
                .transpose()
        };
        let (pa, qa) = (at(&p.ct)?, at(&q.ct)?);
        let t = eval.tensor(pa.as_ref().unwrap_or(&p.ct), qa.as_ref().unwrap_or(&q.ct))?;
        match groups.iter_mut().find(|(period, _)| *period == p.period()) {
            Some((_, acc)) => eval.add_assign(acc, &t)?,
            None => groups.push((p.period(), t)),
        }
    }
    let mut total: Option<Ciphertext> = None;
    for (period, t) in groups {
        let sq = eval.rescale(&eval.relinearize(&t)?)?;
        let count = (period / n_pad).trailing_zeros() as usize;
        let s = rotate_sum(eval, &sq, n_pad, count)?;
        match &mut total {
            None => total = Some(s),
            Some(acc) => eval.add_assign(acc, &s)?,
        }
    }
    total.ok_or(invalid("a chunked matrix needs a chunk"))
}

/// `x` with column `c` (over all the chunks) times `factor(c)`: one plaintext product per chunk
/// encoded at the chunk's level with the scale `q_level`, so one rescale keeps `x`'s scale (one
/// level). The padding slots stay zero.
pub fn scale_columns(
    eval: &Evaluator,
    x: &ChunkedMatrix,
    factor: &dyn Fn(usize) -> f64,
) -> Result<ChunkedMatrix, CkksError> {
    let ctx = eval.context();
    let mut c0 = 0usize;
    let parts = x
        .parts()
        .iter()
        .map(|p| {
            let (slots, level, period) = (p.ct.slots(), p.level(), p.period());
            let values: Vec<f64> = (0..slots)
                .map(|s| {
                    let c = (s % period) / p.n_pad();
                    if c < p.cols() { factor(c0 + c) } else { 0.0 }
                })
                .collect();
            c0 += p.cols();
            let q_l = ctx.params().q()[level] as f64;
            let pt = ctx.encode(&values, slots, level, q_l)?;
            let mut y = eval.rescale(&eval.mul_plain(&p.ct, &pt)?)?;
            eval.match_scale(&mut y, p.scale())?;
            Ok(p.with_ciphertext(y))
        })
        .collect::<Result<Vec<_>, CkksError>>()?;
    ChunkedMatrix::from_parts(parts)
}

/// The column layout to the column-block layout: `sum_c col_c * mask_c`, where `mask_c` keeps
/// the slots of column `c`. A column replicated with period `n_pad` already holds its values
/// wherever the block layout wants them, so this needs no rotation: `d` plaintext products and
/// one rescale (one level). The output keeps the input's scale.
pub fn column_to_block(
    eval: &Evaluator,
    x: &crate::column::ColumnMatrix,
) -> Result<BlockMatrix, CkksError> {
    let ctx = eval.context();
    let cols = x.cols();
    let tokens = x.tokens();
    let n_pad = tokens.next_power_of_two();
    let first = &x.columns()[0];
    let (slots, level) = (first.slots(), x.level());
    let period = block_period(cols, n_pad);
    if period > slots || x.period() != n_pad {
        return Err(invalid(
            "the matrix does not fit one ciphertext in the column-block layout",
        ));
    }
    let q_l = ctx.params().q()[level] as f64;
    let mut acc: Option<Ciphertext> = None;
    for (c, ct) in x.columns().iter().enumerate() {
        let mask: Vec<f64> = (0..slots)
            .map(|s| if (s % period) / n_pad == c { 1.0 } else { 0.0 })
            .collect();
        let pt = ctx.encode(&mask, slots, level, q_l)?;
        match &mut acc {
            None => acc = Some(eval.mul_plain(ct, &pt)?),
            Some(a) => eval.mul_plain_acc(a, ct, &pt)?,
        }
    }
    let acc = acc.ok_or(invalid("a matrix needs a column"))?;
    let mut out = eval.rescale(&acc)?;
    eval.match_scale(&mut out, x.scale())?;
    BlockMatrix::from_ciphertext(out, tokens, cols)
}

/// The column-block layout to the column layout: column `c` is `rot(x, c n_pad)` masked to the
/// first `n_pad` slots of each period, then replicated with period `n_pad` by `log2(P / n_pad)`
/// rotate-and-adds. One level; `d` masked rotations.
pub fn block_to_column(
    eval: &Evaluator,
    x: &BlockMatrix,
) -> Result<crate::column::ColumnMatrix, CkksError> {
    let ctx = eval.context();
    let (n_pad, period) = (x.n_pad(), x.period());
    let (slots, level) = (x.ct.slots(), x.level());
    let q_l = ctx.params().q()[level] as f64;
    let mask: Vec<f64> = (0..slots)
        .map(|s| if s % period < n_pad { 1.0 } else { 0.0 })
        .collect();
    let pt = ctx.encode(&mask, slots, level, q_l)?;
    let count = (period / n_pad).trailing_zeros() as usize;
    let mut cols = Vec::with_capacity(x.cols);
    for c in 0..x.cols {
        let moved = eval.rotate(&x.ct, (c * n_pad) as isize)?;
        let mut m = eval.rescale(&eval.mul_plain(&moved, &pt)?)?;
        eval.match_scale(&mut m, x.scale())?;
        // Slots s with s mod P < n_pad hold the column; fill the rest of each period.
        let mut acc = m;
        for j in 0..count {
            let r = eval.rotate(&acc, -((n_pad << j) as isize))?;
            eval.add_assign(&mut acc, &r)?;
        }
        cols.push(acc);
    }
    crate::column::ColumnMatrix::from_columns(cols, x.tokens)
}

/// The rotations of [`block_to_column`] for `cols` columns of `n_pad` tokens.
pub fn block_to_column_rotations(cols: usize, n_pad: usize) -> Vec<isize> {
    let count = (block_period(cols, n_pad) / n_pad).trailing_zeros() as usize;
    let mut r: Vec<isize> = (1..cols).map(|c| (c * n_pad) as isize).collect();
    r.extend((0..count).map(|j| -((n_pad << j) as isize)));
    r
}
