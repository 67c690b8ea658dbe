//! Loops over RNS limbs, spread over rayon's thread pool with the `parallel` feature (used by
//! the crates above for their own limb-wise loops, so the feature switches them all at once).

#[cfg(feature = "parallel")]
use rayon::prelude::*;

/// Calls `f(i, limb_i)` for every limb of `n` residues of `data`.
#[inline]
pub fn for_each_limb<F>(data: &mut [u64], n: usize, f: F)
where
    F: Fn(usize, &mut [u64]) + Send + Sync,
{
    #[cfg(feature = "parallel")]
    data.par_chunks_mut(n)
        .enumerate()
        .for_each(|(i, limb)| f(i, limb));
    #[cfg(not(feature = "parallel"))]
    data.chunks_mut(n)
        .enumerate()
        .for_each(|(i, limb)| f(i, limb));
}

/// Calls `f(i, a_i, b_i)` for every pair of limbs of `n` residues of `a` and `b`.
#[inline]
pub fn for_each_limb_zip<F>(a: &mut [u64], b: &[u64], n: usize, f: F)
where
    F: Fn(usize, &mut [u64], &[u64]) + Send + Sync,
{
    #[cfg(feature = "parallel")]
    a.par_chunks_mut(n)
        .zip(b.par_chunks(n))
        .enumerate()
        .for_each(|(i, (x, y))| f(i, x, y));
    #[cfg(not(feature = "parallel"))]
    a.chunks_mut(n)
        .zip(b.chunks(n))
        .enumerate()
        .for_each(|(i, (x, y))| f(i, x, y));
}

/// Calls `f(tag, slice)` for every `(tag, slice)` job.
#[inline]
pub fn for_each_job<T, F>(jobs: alloc::vec::Vec<(T, &mut [u64])>, f: F)
where
    T: Send,
    F: Fn(T, &mut [u64]) + Send + Sync,
{
    #[cfg(feature = "parallel")]
    jobs.into_par_iter().for_each(|(t, s)| f(t, s));
    #[cfg(not(feature = "parallel"))]
    jobs.into_iter().for_each(|(t, s)| f(t, s));
}

/// Whether limb loops run on more than one thread: the `parallel` feature is on and the current
/// rayon pool has more than one worker.
#[inline]
pub fn is_parallel() -> bool {
    #[cfg(feature = "parallel")]
    {
        rayon::current_num_threads() > 1
    }
    #[cfg(not(feature = "parallel"))]
    {
        false
    }
}

/// A new vector of `a.len()` residues, limb `i` (of `n` residues) written by
/// `f(i, a_i, b_i, out_i)` with `out_i` uninitialised: no zero-fill first, limbs in parallel
/// with `parallel`. `f` must write every element of `out_i`.
pub fn zip_into_new<F>(a: &[u64], b: &[u64], n: usize, f: F) -> alloc::vec::Vec<u64>
where
    F: Fn(usize, &[u64], &[u64], &mut [core::mem::MaybeUninit<u64>]) + Send + Sync,
{
    assert!(n > 0 && a.len() == b.len() && a.len().is_multiple_of(n));
    let len = a.len();
    let mut out: alloc::vec::Vec<u64> = alloc::vec::Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    #[cfg(feature = "parallel")]
    spare
        .par_chunks_mut(n)
        .zip(a.par_chunks(n).zip(b.par_chunks(n)))
        .enumerate()
        .for_each(|(i, (o, (x, y)))| f(i, x, y, o));
    #[cfg(not(feature = "parallel"))]
    spare
        .chunks_mut(n)
        .zip(a.chunks(n).zip(b.chunks(n)))
        .enumerate()
        .for_each(|(i, (o, (x, y)))| f(i, x, y, o));
    // SAFETY: the first `len` elements are initialised: every limb chunk of `spare` was passed
    // to `f`, whose contract is to write all of it, and the chunks cover `0..len`.
    unsafe { out.set_len(len) };
    out
}
