//! The constrained client's key generation (`ensi_ckks::client`) as a `no_std` WebAssembly
//! module, for a small INSECURE parameter set: the same seed gives the same bytes as
//! `ensi keygen --params insecure-bootstrap-test --bootstrap --rotations none --seed S` on the
//! native build (`run.mjs` checks this file by file).
//!
//! Exports (C ABI): `ensi_keygen(seed: u64, keep: u32) -> usize` makes every file (kept in
//! memory when `keep` is non-zero) and returns the bytes made (0 on error);
//! `ensi_file_count()` and `ensi_file_part(i, part)` locate each kept file's name and data in
//! linear memory; `ensi_peak_heap()` is the peak of live heap bytes, counted by the allocator
//! (run without keeping first: the peak is then the client's own working heap).
// no_std on wasm32 (the module brings its allocator and panic handler); a native build (for
// `cargo test` of this crate) links std.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use ensi_ckks::client::{
    ByteSink, ClientParams, SmallSecretKey, StreamOptions, StreamedObject, stream_bootstrap_keys,
    stream_public_key,
};
use ensi_ckks::{BootstrapParametersLiteral, CkksError, KeyRequest, Parameters, ParametersLiteral};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Files by name, in the order they were made.
pub type Files = Vec<(String, Vec<u8>)>;

/// Keeps every file (name, exact-size data), or with `keep` false only counts the bytes.
struct Records {
    keep: bool,
    files: Files,
    bytes: usize,
}

impl Records {
    fn record(&mut self, name: &str, data: &[u8]) {
        self.bytes += data.len();
        if self.keep {
            self.files.push((name.into(), data.to_vec()));
        }
    }
}

impl ByteSink for Records {
    type Error = CkksError;
    fn begin(&mut self, object: StreamedObject, len: usize) -> Result<(), CkksError> {
        if self.keep {
            self.files
                .push((object.file_name(), Vec::with_capacity(len)));
        }
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> Result<(), CkksError> {
        self.bytes += bytes.len();
        if let Some((_, data)) = self.files.last_mut().filter(|_| self.keep) {
            data.extend_from_slice(bytes);
        }
        Ok(())
    }
    fn end(&mut self) -> Result<(), CkksError> {
        Ok(())
    }
}

/// Every file of `ensi keygen --params insecure-bootstrap-test --bootstrap --rotations none
/// --seed <seed>` (kept when `keep`), and the bytes made.
fn keygen_files(seed: u64, keep: bool) -> Result<(Files, usize), CkksError> {
    let params = Parameters::new_insecure(ParametersLiteral::insecure_bootstrap_test(12, 2, 9))?;
    let literal = BootstrapParametersLiteral {
        cts_level_budget: 2,
        stc_level_budget: 2,
        ..BootstrapParametersLiteral::default()
    };
    // The command line's seeded generator: the seed's 8 bytes, then zeros, as a ChaCha20 key.
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut rng = ChaCha20Rng::from_seed(key);
    let mut records = Records {
        keep,
        files: Vec::new(),
        bytes: 0,
    };
    let mut params_bytes = params.to_bytes()?;
    ensi_ckks::serialize::mark_test_object(&mut params_bytes)?;
    records.record("params.bin", &params_bytes);
    let cp = ClientParams::new(&params)?;
    let sk = SmallSecretKey::generate(&cp, &mut rng)?;
    records.record("secret.key", &sk.to_bytes(true));
    let options = StreamOptions { test_keys: true };
    stream_public_key(&cp, &sk, options, &mut records, &mut rng)?;
    let request = KeyRequest::new().with_relinearization();
    stream_bootstrap_keys(
        &cp,
        &sk,
        &literal,
        &request,
        options,
        &mut records,
        &mut rng,
    )?;
    Ok((records.files, records.bytes))
}

/// The native side of the comparison: the same files, for tests.
pub fn keygen_records(seed: u64) -> Result<Files, CkksError> {
    keygen_files(seed, true).map(|(files, _)| files)
}

static OUTPUT: one_thread::Cell = one_thread::Cell::new();

/// A holder for the output (wasm32 modules without threads run on one thread).
mod one_thread {
    use alloc::vec::Vec;
    use core::cell::UnsafeCell;

    use super::Files;

    pub struct Cell(UnsafeCell<Files>);

    // SAFETY: the module is single-threaded (wasm32 without threads); nothing shares it.
    unsafe impl Sync for Cell {}

    impl Cell {
        pub const fn new() -> Self {
            Self(UnsafeCell::new(Vec::new()))
        }

        pub fn set(&self, v: Files) {
            // SAFETY: single-threaded, and no reference from `with` outlives an export call.
            unsafe { *self.0.get() = v }
        }

        pub fn with<T>(&self, f: impl FnOnce(&Files) -> T) -> T {
            // SAFETY: as for `set`.
            f(unsafe { &*self.0.get() })
        }
    }
}

/// Makes every key file for `seed` (see the crate documentation), keeping them when `keep` is
/// non-zero (otherwise only their bytes are counted: the peak heap is then the client's own).
/// Returns the bytes made, or 0 on error.
#[unsafe(no_mangle)]
pub extern "C" fn ensi_keygen(seed: u64, keep: u32) -> usize {
    match keygen_files(seed, keep != 0) {
        Ok((files, bytes)) => {
            OUTPUT.set(files);
            bytes
        }
        Err(_) => 0,
    }
}

/// The number of files kept.
#[unsafe(no_mangle)]
pub extern "C" fn ensi_file_count() -> usize {
    OUTPUT.with(Vec::len)
}

/// File `i`'s name (address, length in bytes) and data (address, length), through
/// `ensi_file_part(i, part)` with part 0 = name address, 1 = name length, 2 = data address,
/// 3 = data length; 0 when out of range.
#[unsafe(no_mangle)]
pub extern "C" fn ensi_file_part(i: usize, part: u32) -> usize {
    OUTPUT.with(|files| {
        files.get(i).map_or(0, |(name, data)| match part {
            0 => name.as_ptr() as usize,
            1 => name.len(),
            2 => data.as_ptr() as usize,
            3 => data.len(),
            _ => 0,
        })
    })
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The peak of live heap bytes so far (0 off wasm32, where this crate's allocator is not used).
#[unsafe(no_mangle)]
pub extern "C" fn ensi_peak_heap() -> usize {
    PEAK.load(Ordering::Relaxed)
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::{LIVE, PEAK};
    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::Ordering;

    /// dlmalloc, counting live bytes.
    struct Counting;

    static INNER: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

    // SAFETY: every call is forwarded unchanged to dlmalloc; the counters never affect it.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's layout.
            let p = unsafe { INNER.alloc(layout) };
            if !p.is_null() {
                let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
                PEAK.fetch_max(live, Ordering::Relaxed);
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded with the caller's pointer and layout.
            unsafe { INNER.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        core::arch::wasm32::unreachable()
    }
}
