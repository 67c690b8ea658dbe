//! ENSI's *column* layout: an `n x d` activation matrix (tokens by hidden dimensions) as `d`
//! ciphertexts, ciphertext `c` holding column `c` in its slots: slot `t` holds token
//! `t mod p`, where the period `p` is `n` rounded up to a power of two (tokens `n .. p` are
//! zero). The column is replicated over all `N/2` slots, so rotations act cyclically inside
//! every period and every ciphertext is a full-slot one that bootstrapping refreshes without
//! the partial trace of sparse packings. A ternary linear layer is then a signed sum of input
//! ciphertexts per output column: additions only, no rotation, no level (He et al., ENSI,
//! arXiv 2509.09424, §4.1); RoPE re-indexes column pairs and multiplies by per-position
//! plaintexts.

use alloc::vec::Vec;
use ensi_bitnet::ternary::TernaryMatrix;
use ensi_ckks::{Ciphertext, CkksContext, CkksError, Evaluator, SecretKey};
use rand_core::{CryptoRng, RngCore};

/// An encrypted `tokens x cols` matrix in the column layout.
#[derive(Clone, Debug)]
pub struct ColumnMatrix {
    cts: Vec<Ciphertext>,
    tokens: usize,
}

/// The period of a column of `tokens` tokens: `tokens` rounded up to a power of two.
pub fn column_period(tokens: usize) -> usize {
    tokens.max(1).next_power_of_two()
}

/// `values` (one per token, `tokens = values.len()`) zero-padded to the period and replicated
/// over `slots` slots.
pub fn replicate(values: &[f64], slots: usize) -> Vec<f64> {
    let period = column_period(values.len());
    (0..slots)
        .map(|t| values.get(t % period).copied().unwrap_or(0.0))
        .collect()
}

impl ColumnMatrix {
    /// Encrypts a row-major `tokens x cols` matrix (the client side), one ciphertext per column
    /// at `level` and `scale`, with the secret key.
    pub fn encrypt<G: RngCore + CryptoRng>(
        ctx: &alloc::sync::Arc<CkksContext>,
        sk: &SecretKey,
        values: &[f64],
        tokens: usize,
        level: usize,
        scale: f64,
        rng: &mut G,
    ) -> Result<Self, CkksError> {
        if tokens == 0 || !values.len().is_multiple_of(tokens) {
            return Err(CkksError::InvalidArgument {
                reason: "the matrix must have tokens x cols values",
            });
        }
        let cols = values.len() / tokens;
        let slots = ctx.n() / 2;
        if column_period(tokens) > slots {
            return Err(CkksError::InvalidArgument {
                reason: "more tokens than slots",
            });
        }
        let mut cts = Vec::with_capacity(cols);
        let mut column = alloc::vec![0.0; tokens];
        for c in 0..cols {
            for (t, v) in column.iter_mut().enumerate() {
                *v = values[t * cols + c];
            }
            let pt = ctx.encode(&replicate(&column, slots), slots, level, scale)?;
            cts.push(sk.encrypt(ctx, &pt, rng)?);
        }
        Ok(Self { cts, tokens })
    }

    /// The matrix of the given columns (all of one level, scale and slot count).
    pub fn from_columns(cts: Vec<Ciphertext>, tokens: usize) -> Result<Self, CkksError> {
        let first = cts.first().ok_or(CkksError::InvalidArgument {
            reason: "a matrix needs at least one column",
        })?;
        if cts
            .iter()
            .any(|c| c.level() != first.level() || c.slots() != first.slots())
            || first.slots() < tokens
        {
            return Err(CkksError::InvalidArgument {
                reason: "columns must share level and slot count, with a slot per token",
            });
        }
        Ok(Self { cts, tokens })
    }

    /// Decrypts to a row-major `tokens x cols` matrix (the client side).
    pub fn decrypt(
        &self,
        ctx: &alloc::sync::Arc<CkksContext>,
        sk: &SecretKey,
    ) -> Result<Vec<f64>, CkksError> {
        let cols = self.cts.len();
        let mut out = alloc::vec![0.0; self.tokens * cols];
        for (c, ct) in self.cts.iter().enumerate() {
            let v = ctx.decode(&sk.decrypt(ctx, ct)?)?;
            for t in 0..self.tokens {
                out[t * cols + c] = v[t];
            }
        }
        Ok(out)
    }

    /// The columns.
    pub fn columns(&self) -> &[Ciphertext] {
        &self.cts
    }

    /// The columns, owned.
    pub fn into_columns(self) -> Vec<Ciphertext> {
        self.cts
    }

    /// The replication period of the columns.
    pub fn period(&self) -> usize {
        column_period(self.tokens)
    }

    /// The number of tokens (rows).
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cts.len()
    }

    /// The level of the columns.
    pub fn level(&self) -> usize {
        self.cts[0].level()
    }

    /// The scale of the first column (a linear layer gives every column the same one).
    pub fn scale(&self) -> f64 {
        self.cts[0].scale()
    }
}

/// `y = x W^T` for a ternary `W` (`out x in`) in the column layout: output column `o` is
/// `sum_{W[o][j] = 1} x_j - sum_{W[o][j] = -1} x_j` (additions only), and the per-tensor
/// weight scale is folded into the scale metadata (no level, no product). Every output column
/// has the scale `x.scale() / m`, where `m` is the weight's multiplier.
pub fn ternary_linear(
    eval: &Evaluator,
    x: &ColumnMatrix,
    w: &TernaryMatrix,
) -> Result<ColumnMatrix, CkksError> {
    if w.cols() != x.cols() {
        return Err(CkksError::InvalidArgument {
            reason: "weight columns must match the input width",
        });
    }
    let col = |j: usize| &x.cts[j];
    let out = (0..w.rows())
        .map(|o| signed_sum_column(eval, &col, w, o))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ColumnMatrix {
        cts: out,
        tokens: x.tokens,
    })
}

/// Output column `r` of `x W^T` in the column layout, from the input columns `col(j)`:
/// the signed sum of the columns where `W[r][j] = ±1` (ENSI's additions-only product), the
/// weight scale in the scale metadata; an all-zero row gives an encryption of zero (one
/// integer product). No level. [`crate::plan::column_signed_sum_ops`] counts its operations.
pub fn signed_sum_column<'a>(
    eval: &Evaluator,
    col: &dyn Fn(usize) -> &'a Ciphertext,
    w: &TernaryMatrix,
    r: usize,
) -> Result<Ciphertext, CkksError> {
    let (plus, minus) = w.signed_columns(r);
    let mut acc: Option<Ciphertext> = None;
    for &j in &plus {
        match &mut acc {
            None => acc = Some(col(j).clone()),
            Some(a) => eval.add_assign(a, col(j))?,
        }
    }
    for &j in &minus {
        match &mut acc {
            None => acc = Some(eval.neg(col(j))?),
            Some(a) => eval.sub_assign(a, col(j))?,
        }
    }
    let acc = match acc {
        Some(a) => a,
        None => eval.mul_integer(col(0), 0)?,
    };
    eval.fold_into_scale(&acc, w.scale().multiplier::<f64>())
}

/// Output column `sum_j weights[j] col(j)` by NEXUS's plaintext-ciphertext product in the
/// column layout (`zju-abclab/NEXUS`, `src/matrix_mul.cpp`): each weight a constant product
/// encoded at the last prime, the products summed, one rescale (one level); the output keeps
/// the input's scale. [`crate::plan::column_nexus_ops`] counts its operations.
pub fn nexus_column<'a>(
    eval: &Evaluator,
    col: &dyn Fn(usize) -> &'a Ciphertext,
    weights: &[f64],
) -> Result<Ciphertext, CkksError> {
    let first = weights.first().ok_or(CkksError::InvalidArgument {
        reason: "a product needs at least one weight",
    })?;
    let x0 = col(0);
    let q_l = eval.context().params().q()[x0.level()] as f64;
    let mut acc = eval.mul_const_with_scale(x0, *first, q_l)?;
    for (j, &w) in weights.iter().enumerate().skip(1) {
        let p = eval.mul_const_with_scale(col(j), w, q_l)?;
        eval.add_assign(&mut acc, &p)?;
    }
    eval.rescale(&acc)
}

/// RoPE in the rotate-half convention on the heads of `x` (`heads x head_dim` columns), in the
/// column layout: for every pair `(i, i + d/2)` of a head, `out_i = x_i cos_i - x_{i+d/2} sin_i`
/// and `out_{i+d/2} = x_{i+d/2} cos_i + x_i sin_i`, where `cos_i`, `sin_i` are vectors over the
/// positions (slots), encoded as plaintexts. One level; `factor` (a constant every output is
/// multiplied by, for example a folded weight scale or `1/sqrt(d)`) rides in the plaintexts.
/// The output has scale `target_scale` exactly.
pub fn rope(
    eval: &Evaluator,
    x: &ColumnMatrix,
    head_dim: usize,
    theta: f64,
    factor: f64,
    target_scale: f64,
) -> Result<ColumnMatrix, CkksError> {
    if !head_dim.is_multiple_of(2) || head_dim == 0 || !x.cols().is_multiple_of(head_dim) {
        return Err(CkksError::InvalidArgument {
            reason: "RoPE needs an even head dimension dividing the width",
        });
    }
    let ctx = eval.context();
    let (half, tokens) = (head_dim / 2, x.tokens);
    let slots = x.cts[0].slots();
    let level = x.level();
    let q_l = ctx.params().q()[level] as f64;
    let angles: Vec<(Vec<f64>, Vec<f64>)> = (0..tokens)
        .map(|p| ensi_bitnet::ops::rope_angles::<f64>(p, head_dim, theta))
        .collect();
    let mut out: Vec<Option<Ciphertext>> = alloc::vec![None; x.cols()];
    for head in 0..x.cols() / head_dim {
        for i in 0..half {
            let (lo, hi) = (head * head_dim + i, head * head_dim + i + half);
            let cos: Vec<f64> = angles.iter().map(|(c, _)| c[i] * factor).collect();
            let sin: Vec<f64> = angles.iter().map(|(_, s)| s[i] * factor).collect();
            let (cos, sin) = (replicate(&cos, slots), replicate(&sin, slots));
            // Every product lands at target * q_l, so the rescale gives the target exactly.
            let pt_scale = target_scale * q_l / x.cts[lo].scale();
            let pc = ctx.encode(&cos, slots, level, pt_scale)?;
            let ps = ctx.encode(&sin, slots, level, pt_scale)?;
            let mut a = eval.mul_plain(&x.cts[lo], &pc)?;
            eval.sub_assign(&mut a, &eval.mul_plain(&x.cts[hi], &ps)?)?;
            let mut b = eval.mul_plain(&x.cts[hi], &pc)?;
            eval.add_assign(&mut b, &eval.mul_plain(&x.cts[lo], &ps)?)?;
            let (mut a, mut b) = (eval.rescale(&a)?, eval.rescale(&b)?);
            eval.match_scale(&mut a, target_scale)?;
            eval.match_scale(&mut b, target_scale)?;
            out[lo] = Some(a);
            out[hi] = Some(b);
        }
    }
    let cts = out
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or(CkksError::InvalidArgument {
            reason: "RoPE left a column unset",
        })?;
    Ok(ColumnMatrix { cts, tokens })
}
