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

/// A new vector of `len` residues (limbs of `n`), written without a zero-fill first: for limb
/// `i`, `make(i)` returns a generator that is called for every index `k < n` of the limb, in
/// order, and its value is stored at `i * n + k`. Limbs run in parallel with `parallel`. The
/// helper itself writes every element, so the result is always fully initialised.
pub fn new_limbs<M, G>(len: usize, n: usize, make: M) -> alloc::vec::Vec<u64>
where
    M: Fn(usize) -> G + Send + Sync,
    G: FnMut(usize) -> u64,
{
    new_limbs_with(len, n, |i, limb| {
        let mut g = make(i);
        for (k, o) in limb.iter_mut().enumerate() {
            o.write(g(k));
        }
    })
}

/// A new vector of `len` residues (`len / n` limbs) whose limb `i` is written whole by
/// `fill(i, limb)`, which must write every element; limbs in parallel with `parallel`. No
/// zero-fill.
pub fn new_limbs_with<F>(len: usize, n: usize, fill: F) -> alloc::vec::Vec<u64>
where
    F: Fn(usize, &mut [core::mem::MaybeUninit<u64>]) + Send + Sync,
{
    assert!(n > 0 && len.is_multiple_of(n));
    let mut out: alloc::vec::Vec<u64> = alloc::vec::Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    #[cfg(feature = "parallel")]
    spare
        .par_chunks_mut(n)
        .enumerate()
        .for_each(|(i, limb)| fill(i, limb));
    #[cfg(not(feature = "parallel"))]
    spare
        .chunks_mut(n)
        .enumerate()
        .for_each(|(i, limb)| fill(i, limb));
    // SAFETY: `spare` is the first `len` slots of the capacity, its chunks of `n` cover all of
    // it, and `fill` writes every element of every chunk (its contract), so `0..len` is
    // initialised.
    unsafe { out.set_len(len) };
    out
}

/// A zero vector of `len` residues (limbs of `n`), each limb zeroed by a worker of the pool:
/// the allocator's single-threaded zero-fill of a reused block, spread over the threads.
pub fn zeroed(len: usize, n: usize) -> alloc::vec::Vec<u64> {
    new_limbs_with(len, n, |_, limb| limb.fill(core::mem::MaybeUninit::new(0)))
}

/// Two new vectors of `len` residues (limbs of `n`) whose limbs `i` are written by
/// `fill(i, a_i, b_i)`; each pair of limbs is zeroed by its worker just before, while it is
/// about to be written anyway (cache-resident), instead of both vectors in one serial pass at
/// allocation.
pub fn new_limb_pairs_with<F>(
    len: usize,
    n: usize,
    fill: F,
) -> (alloc::vec::Vec<u64>, alloc::vec::Vec<u64>)
where
    F: Fn(usize, &mut [u64], &mut [u64]) + Send + Sync,
{
    use core::mem::MaybeUninit;
    assert!(n > 0 && len.is_multiple_of(n));
    let mut a: alloc::vec::Vec<u64> = alloc::vec::Vec::with_capacity(len);
    let mut b: alloc::vec::Vec<u64> = alloc::vec::Vec::with_capacity(len);
    let (sa, sb) = (
        &mut a.spare_capacity_mut()[..len],
        &mut b.spare_capacity_mut()[..len],
    );
    let one = |i: usize, x: &mut [MaybeUninit<u64>], y: &mut [MaybeUninit<u64>]| {
        x.fill(MaybeUninit::new(0));
        y.fill(MaybeUninit::new(0));
        // SAFETY: both limbs were just initialised (zeros); `[MaybeUninit<u64>]` and `[u64]`
        // have one layout.
        let (x, y) = unsafe {
            (
                &mut *(x as *mut [MaybeUninit<u64>] as *mut [u64]),
                &mut *(y as *mut [MaybeUninit<u64>] as *mut [u64]),
            )
        };
        fill(i, x, y);
    };
    #[cfg(feature = "parallel")]
    sa.par_chunks_mut(n)
        .zip(sb.par_chunks_mut(n))
        .enumerate()
        .for_each(|(i, (x, y))| one(i, x, y));
    #[cfg(not(feature = "parallel"))]
    sa.chunks_mut(n)
        .zip(sb.chunks_mut(n))
        .enumerate()
        .for_each(|(i, (x, y))| one(i, x, y));
    // SAFETY: the chunks cover `0..len` of both and every limb was zeroed before `fill`.
    unsafe {
        a.set_len(len);
        b.set_len(len);
    }
    (a, b)
}

/// [`new_limbs_with`] where `fill` also gets an uninitialised scratch limb of `n` words (one
/// per worker, reused across the limbs it fills; not zero-filled).
pub fn new_limbs_with_scratch<F>(len: usize, n: usize, fill: F) -> alloc::vec::Vec<u64>
where
    F: Fn(usize, &mut [core::mem::MaybeUninit<u64>], &mut [core::mem::MaybeUninit<u64>])
        + Send
        + Sync,
{
    assert!(n > 0 && len.is_multiple_of(n));
    let mut out: alloc::vec::Vec<u64> = alloc::vec::Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let scratch = || {
        let mut v = alloc::vec::Vec::<core::mem::MaybeUninit<u64>>::with_capacity(n);
        v.resize_with(n, core::mem::MaybeUninit::uninit);
        v
    };
    #[cfg(feature = "parallel")]
    spare
        .par_chunks_mut(n)
        .enumerate()
        .for_each_init(scratch, |s, (i, limb)| fill(i, limb, s));
    #[cfg(not(feature = "parallel"))]
    {
        let mut s = scratch();
        spare
            .chunks_mut(n)
            .enumerate()
            .for_each(|(i, limb)| fill(i, limb, &mut s));
    }
    // SAFETY: as in `new_limbs_with`: the chunks cover `0..len` and `fill` writes every element.
    unsafe { out.set_len(len) };
    out
}

/// `f(i)(a[k], b[k])` for every residue `k` of limb `i`, into a new vector ([`new_limbs`]).
pub fn zip_into_new<M, G>(a: &[u64], b: &[u64], n: usize, f: M) -> alloc::vec::Vec<u64>
where
    M: Fn(usize) -> G + Send + Sync,
    G: Fn(u64, u64) -> u64,
{
    assert_eq!(a.len(), b.len());
    new_limbs(a.len(), n, |i| {
        let g = f(i);
        let (x, y) = (&a[i * n..(i + 1) * n], &b[i * n..(i + 1) * n]);
        move |k| g(x[k], y[k])
    })
}
