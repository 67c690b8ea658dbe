//! Non-polynomial activations built on the scheme's polynomial evaluation: a composite `sign`
//! and `ReLU`. They live with the layers, not in the scheme: they are choices of the network
//! (intervals, rounds), not CKKS operations.

use ensi_ckks::{ChebyshevPoly, Ciphertext, CkksError, Evaluator};

/// Coefficients of the odd polynomial `(3x - x^3) / 2`, composed `k` times a composite
/// approximation of `sign(x)` on `[-1, 1]` away from 0 (Cheon–Kim–Kim–Lee 2020, "Efficient
/// homomorphic comparison methods with optimal complexity", the `f_1` family): each round
/// costs two levels and brings `|x|` closer to 1.
pub fn sign_step() -> ChebyshevPoly {
    // (3y - y^3)/2 = (3/2) T_1 - (1/2) (T_3 + 3 T_1)/4 = (9/8) T_1 - (1/8) T_3.
    ChebyshevPoly::new(alloc::vec![0.0, 9.0 / 8.0, 0.0, -1.0 / 8.0], -1.0, 1.0)
}

/// `sign(x)` for slots in `[-1, 1]`, by `rounds` compositions of [`sign_step`]; accurate where
/// `|x|` is not too close to 0 (each round roughly squares the distance of `|x|` to 1).
pub fn sign(eval: &Evaluator, ct: &Ciphertext, rounds: usize) -> Result<Ciphertext, CkksError> {
    let step = sign_step();
    let mut x = ct.clone();
    for _ in 0..rounds {
        x = eval.evaluate_chebyshev_same_scale(&x, &step)?.0;
    }
    Ok(x)
}

/// `ReLU(x) = x (1 + sign(x)) / 2` for slots in `[-1, 1]`, with [`sign`]; the halving is
/// folded into the scale (no level).
pub fn relu(eval: &Evaluator, ct: &Ciphertext, rounds: usize) -> Result<Ciphertext, CkksError> {
    let s = sign(eval, ct, rounds)?;
    let one_plus = eval.add_const(&s, 1.0)?;
    let x = eval.drop_to_level(ct, one_plus.level())?;
    let prod = eval.mul_relin(&one_plus, &x)?;
    let halved = eval.fold_into_scale(&prod, 0.5)?;
    eval.rescale(&halved)
}
