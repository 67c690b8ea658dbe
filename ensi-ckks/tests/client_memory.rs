//! The constrained client's heap, measured by a counting global allocator (so the figure does
//! not depend on the operating system): at the default 128-bit `N = 2^16` set, generating the
//! secret key, the public key and every bootstrapping key, and encrypting a full-slot query at
//! the top level, each peak at most 16 MiB of heap. One test, so that no other test's
//! allocations share the counters.
#![allow(clippy::unwrap_used)]

use ensi_ckks::client::{
    BundleHeader, ByteSink, ClientParams, SmallSecretKey, StreamOptions, StreamedObject,
    stream_bootstrap_keys, stream_encrypt_bundle, stream_public_key,
};
use ensi_ckks::{BootstrapParametersLiteral, CkksError, KeyRequest, Parameters, ParametersLiteral};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the caller's arguments; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Restarts the peak at the current live bytes; returns the live bytes.
fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// Discards what it is given, counting objects and bytes.
#[derive(Default)]
struct Discard {
    objects: usize,
    bytes: usize,
    expected: usize,
}

impl ByteSink for Discard {
    type Error = CkksError;
    fn begin(&mut self, _: StreamedObject, len: usize) -> Result<(), CkksError> {
        self.objects += 1;
        self.expected += len;
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> Result<(), CkksError> {
        self.bytes += bytes.len();
        Ok(())
    }
    fn end(&mut self) -> Result<(), CkksError> {
        Ok(())
    }
}

const LIMIT: usize = 16 << 20;

#[test]
fn the_client_stays_within_16_mib_at_the_default_set() {
    let params = Parameters::new(ParametersLiteral::n16_bootstrappable()).unwrap();
    let base = reset_peak();
    let cp = ClientParams::new(&params).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let sk = SmallSecretKey::generate(&cp, &mut rng).unwrap();
    let mut sink = Discard::default();
    let options = StreamOptions::default();
    stream_public_key(&cp, &sk, options, &mut sink, &mut rng).unwrap();
    // Every bootstrapping key, and the rotations by powers of two an application adds.
    let extra = KeyRequest::new().with_rotations_of(&params, &[1, 2, 4, 8, -1, -2, -4, -8]);
    stream_bootstrap_keys(
        &cp,
        &sk,
        &BootstrapParametersLiteral::default(),
        &extra,
        options,
        &mut sink,
        &mut rng,
    )
    .unwrap();
    let keygen_peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(sink.bytes, sink.expected, "announced and written lengths");
    eprintln!(
        "client keygen at N = 2^16: {} objects, {:.1} MB written, peak heap {:.2} MiB",
        sink.objects,
        sink.bytes as f64 / 1e6,
        keygen_peak as f64 / (1 << 20) as f64
    );
    assert!(sink.objects > 40, "{} objects", sink.objects);
    assert!(keygen_peak <= LIMIT, "keygen peak {keygen_peak} bytes");

    // A query of 8 tokens in full slots at the top level (the most limbs a query can have).
    let base = reset_peak();
    let slots = params.n() / 2;
    let values: Vec<f64> = (0..slots).map(|i| ((i % 97) as f64) / 97.0 - 0.5).collect();
    let header = BundleHeader {
        layout: 0,
        content: 0,
        rows: 8,
        padded_rows: 8,
        cols: (slots / 8) as u32,
        tag: [0; 8],
    };
    let mut sink = Discard::default();
    stream_encrypt_bundle(
        &cp,
        &sk,
        &header,
        &values,
        slots,
        params.max_level(),
        params.default_scale(),
        &mut sink,
        &mut rng,
    )
    .unwrap();
    let encrypt_peak = PEAK.load(Ordering::Relaxed) - base;
    eprintln!(
        "client encryption at N = 2^16: {:.1} MB written, peak heap {:.2} MiB (values: {:.2} MiB)",
        sink.bytes as f64 / 1e6,
        encrypt_peak as f64 / (1 << 20) as f64,
        (slots * 8) as f64 / (1 << 20) as f64
    );
    assert_eq!(sink.bytes, sink.expected);
    assert!(
        encrypt_peak <= LIMIT,
        "encryption peak {encrypt_peak} bytes"
    );
}
