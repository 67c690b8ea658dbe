//! `ensi keygen`: the client's key generation. Writes the parameter set, the secret key (owner-only
//! permissions), the public key and the evaluation keys to a directory. By default it runs the
//! constrained client of `ensi_ckks::client`: the secret stays in its small form (one byte per
//! coefficient), no context with every prime's NTT tables is built, and every key is streamed to
//! its file limb by limb, so the heap stays at a few limbs (about 7 MiB at `N = 2^16`) whatever
//! the number of keys. `--no-stream` takes the in-memory path instead (the same bytes for the
//! same seed). With `--bootstrap` the evaluation keys include everything bootstrapping needs
//! (its rotations, conjugation, relinearization and the two encapsulation keys), so a server
//! holding only the public files can bootstrap (`ensi ckks bootstrap`). `--report-memory`
//! prints the peak heap counted by the allocator, the time and the bytes written as JSON.
//!
//! The master seed and the generator's state are wiped when key generation ends. Keys made with
//! `--seed` are reproducible by anyone who knows the seed: every file written then carries the
//! format's test-key flag, and `ensi inspect` shows it.
//!
//! Every file is written to a temporary name in the same directory and renamed into place, so an
//! interrupted run never leaves a truncated key under a real name; existing files are refused
//! unless `--force`.

use crate::files::{FileSet, OpenFile};
use crate::sets::ParamSet;
use clap::{Args, ValueEnum};
use ensi_ckks::client::{
    self, ByteSink, ClientParams, SmallSecretKey, StreamOptions, StreamedObject,
};
use ensi_ckks::{
    BootstrapParametersLiteral, CkksContext, CkksError, EvaluationKey, EvaluationKeySet,
    KeyRequest, Parameters, PublicKey, SecretKey, generate_bootstrap_keys,
    generate_evaluation_keys,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, OsRng, RngCore, SeedableRng, TryRngCore};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use zeroize::{Zeroize, Zeroizing};

/// Arguments of `ensi keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Directory to write the keys to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Parameter set.
    #[arg(long, value_enum, default_value_t = ParamSet::N16Bootstrappable)]
    params: ParamSet,
    /// Rotation keys: every power of two in both directions (what inner sums and rotations by
    /// composition need), or none.
    #[arg(long, value_enum, default_value_t = Rotations::PowersOfTwo)]
    rotations: Rotations,
    /// Also make the conjugation key.
    #[arg(long)]
    conjugation: bool,
    /// Also make every key bootstrapping needs (its rotations, conjugation and the two
    /// encapsulation keys), for a bootstrappable parameter set.
    #[arg(long)]
    bootstrap: bool,
    /// Hold every evaluation key in memory and write them at the end, through the full
    /// context and secret key, instead of streaming each limb of each key to its file from the
    /// small secret (to measure what streaming saves; the files are the same bytes).
    #[arg(long)]
    no_stream: bool,
    /// Print, as JSON on standard output, the peak heap (counted by the allocator), the time,
    /// the keys and the bytes written.
    #[arg(long)]
    report_memory: bool,
    /// Overwrite existing key files.
    #[arg(long)]
    force: bool,
    /// Seed for a reproducible (and therefore insecure) run; default: the operating system.
    #[arg(long)]
    seed: Option<u64>,
    /// Also make the rotation keys the encrypted layers of a model need (`ensi infer`) for
    /// prompts padded to these token counts (each rounded up to a power of two), e.g. `8`.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    tokens: Option<Vec<usize>>,
    /// The model whose layers the rotation keys of `--tokens` are for (a checkpoint directory;
    /// default: the embedded model).
    #[arg(long, value_name = "DIR", requires = "tokens")]
    checkpoint: Option<std::path::PathBuf>,
    /// Also make the rotation keys of generation rounds through the key/value cache, for caches
    /// of the `--tokens` counts (the capacity `ensi encrypt --max-new-tokens` pads to).
    #[arg(long, requires = "tokens")]
    generation: bool,
}

/// Which rotation keys to make.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Rotations {
    /// Rotations by +-2^k for every 2^k below the slot count.
    PowersOfTwo,
    /// No rotation key.
    None,
}

/// The key generator's randomness: ChaCha20 from a 32-byte master seed. The seed is wiped as
/// soon as the generator is built, and the generator's whole state (key, counter, buffered
/// keystream) is overwritten when it is dropped.
struct KeygenRng(ChaCha20Rng);

impl KeygenRng {
    fn from_seed(mut seed: Zeroizing<[u8; 32]>) -> Self {
        let rng = ChaCha20Rng::from_seed(*seed);
        seed.zeroize();
        Self(rng)
    }
}

impl Drop for KeygenRng {
    fn drop(&mut self) {
        // ChaCha20Rng has no Zeroize: overwrite it in place with a generator of a public
        // all-zero seed, through a volatile write the compiler cannot drop as dead.
        let wiped = ChaCha20Rng::from_seed([0u8; 32]);
        // SAFETY: `self.0` is a valid, aligned, exclusively borrowed ChaCha20Rng; the value
        // written is a valid ChaCha20Rng, and the old one owns no heap memory to leak.
        unsafe { std::ptr::write_volatile(&mut self.0, wiped) };
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl RngCore for KeygenRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst);
    }
}

impl CryptoRng for KeygenRng {}

/// Marks `bytes` as a test object when the keys come from `--seed`.
pub(crate) fn finish_bytes(mut bytes: Vec<u8>, test_keys: bool) -> Result<Vec<u8>, CkksError> {
    if test_keys {
        ensi_ckks::serialize::mark_test_object(&mut bytes)?;
    }
    Ok(bytes)
}

/// A sink error: a key-generation error or an I/O message.
#[derive(Debug)]
pub(crate) struct SinkError(pub(crate) String);

impl From<CkksError> for SinkError {
    fn from(e: CkksError) -> Self {
        Self(e.to_string())
    }
}

pub(crate) fn key_file(key: &EvaluationKey) -> String {
    StreamedObject::of(key).file_name()
}

/// The peak resident set size of this process so far, in bytes (Linux `VmHWM`).
pub fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs `ensi keygen`; the seed argument is wiped afterwards.
pub fn run(mut args: KeygenArgs) -> ExitCode {
    let result = run_inner(&args);
    args.seed.zeroize();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ensi keygen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: &KeygenArgs) -> Result<(), String> {
    let started = Instant::now();
    let params = args.params.parameters().map_err(|e| e.to_string())?;
    let boot_literal = match (args.bootstrap, args.params.bootstrap_literal()) {
        (false, _) => None,
        (true, Some(lit)) => Some(lit),
        (true, None) => {
            return Err(format!(
                "--bootstrap: the parameter set {} is not laid out for bootstrapping; use \
                 n16-bootstrappable (or insecure-bootstrap-test for tests)",
                args.params.name()
            ));
        }
    };
    // Refuse a too-sparse ephemeral secret before anything is written.
    if let Some(lit) = &boot_literal {
        lit.check_ephemeral_security_of(&params)
            .map_err(|e| e.to_string())?;
    }
    fs::create_dir_all(&args.out).map_err(|e| format!("creating {}: {e}", args.out.display()))?;
    let test_keys = args.seed.is_some();
    let err = |e: CkksError| e.to_string();
    let dir = args.out.as_path();
    let request = requested_keys(args, &params)?;
    // Every file this run writes, known before anything is written.
    let all_keys = match &boot_literal {
        Some(lit) => lit.key_request_of(&params).map_err(err)?.merge(&request),
        None => request.clone(),
    };
    let mut names: Vec<String> = vec![
        "params.bin".into(),
        "secret.key".into(),
        "public.key".into(),
    ];
    if all_keys.relinearization {
        names.push("relin.key".into());
    }
    for g in all_keys.distinct_galois_elements() {
        names.push(format!("galois-{g}.key"));
    }
    if boot_literal.is_some() {
        names.push("dense-to-sparse.key".into());
        names.push("sparse-to-dense.key".into());
    }
    let targets: Vec<std::path::PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let mut files = FileSet::new(&targets, args.force)?;
    let mut rng = match args.seed {
        Some(s) => {
            eprintln!(
                "ensi keygen: --seed makes the keys reproducible: for tests only (the files are \
                 marked as test keys)"
            );
            let mut seed = Zeroizing::new([0u8; 32]);
            seed[..8].copy_from_slice(&s.to_le_bytes());
            KeygenRng::from_seed(seed)
        }
        None => {
            let mut seed = Zeroizing::new([0u8; 32]);
            OsRng
                .try_fill_bytes(&mut seed[..])
                .map_err(|e| format!("operating-system randomness: {e}"))?;
            KeygenRng::from_seed(seed)
        }
    };
    let params_bytes = finish_bytes(params.to_bytes().map_err(err)?, test_keys).map_err(err)?;
    let mut written = params_bytes.len() as u64;
    files.write(&dir.join("params.bin"), &params_bytes, false)?;
    let total = all_keys.key_count() + if boot_literal.is_some() { 2 } else { 0 };
    eprintln!(
        "ensi keygen: N = 2^{}, the public key and {} evaluation keys{} into {} ({})",
        params.log_n(),
        total,
        if boot_literal.is_some() {
            " (bootstrapping included)"
        } else {
            ""
        },
        dir.display(),
        if args.no_stream {
            "all in memory, then written"
        } else {
            "streamed limb by limb from the small secret key"
        }
    );
    let (done, key_bytes) = if args.no_stream {
        in_memory(
            args,
            params,
            boot_literal.as_ref(),
            &request,
            &mut files,
            total,
            &mut rng,
        )?
    } else {
        streamed(
            params,
            boot_literal.as_ref(),
            &request,
            &mut files,
            dir,
            test_keys,
            total,
            &mut rng,
        )?
    };
    written += key_bytes;
    // Every file is written: move them all into place together.
    files.commit()?;
    drop(rng);
    let seconds = started.elapsed().as_secs_f64();
    let heap = ensi_cli::heap::peak();
    let heap_text = heap.map_or("unknown".into(), |b| {
        format!("{:.2} MiB", ensi_cli::heap::mib(b))
    });
    let rss = peak_rss().map_or("unknown".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
    eprintln!(
        "ensi keygen: the public key and {} evaluation keys, {:.1} MB written in all files, \
         {seconds:.1} s, peak heap {heap_text}, peak resident memory {rss}",
        done - 1,
        written as f64 / 1e6,
    );
    if args.report_memory {
        println!(
            "{}",
            serde_json::json!({
                "command": "keygen",
                "streamed": !args.no_stream,
                "log_n": args.params.parameters().map_or(0, |p| p.log_n()),
                "evaluation_keys": done - 1,
                "bytes_written": written,
                "seconds": seconds,
                "peak_heap_bytes": heap,
                "peak_resident_bytes": peak_rss(),
            })
        );
    }
    Ok(())
}

/// The keys of the command line (besides bootstrapping's), from the parameter set alone.
fn requested_keys(args: &KeygenArgs, params: &Parameters) -> Result<KeyRequest, String> {
    let mut request = KeyRequest::new().with_relinearization();
    if let Rotations::PowersOfTwo = args.rotations {
        let mut steps = Vec::new();
        let mut k = 1isize;
        while (k as usize) < params.n() / 2 {
            steps.extend([k, -k]);
            k *= 2;
        }
        request = request.with_rotations_of(params, &steps);
    }
    if args.conjugation {
        request
            .galois_elements
            .push(params.conjugation_galois_element());
    }
    if let Some(counts) = &args.tokens {
        let model = crate::run::load_model(args.checkpoint.as_deref())?;
        for &n in counts {
            if n == 0 {
                return Err("--tokens: token counts must be positive".into());
            }
            let rotations = ensi_nn::block_layer::block_rotations(
                model.config(),
                n.next_power_of_two(),
                params.n() / 2,
                true,
            )
            .map_err(|e| e.to_string())?;
            request = request.with_rotations_of(params, &rotations);
            if args.generation {
                let steps = ensi_nn::block_layer::step_rotations(n.next_power_of_two());
                request = request.with_rotations_of(params, &steps);
            }
        }
    }
    Ok(request)
}

/// Streams the secret, public and evaluation keys into their files (`ensi_ckks::client`): the
/// secret stays in its small form, and each key is written limb by limb.
#[allow(clippy::too_many_arguments)]
fn streamed(
    params: Parameters,
    boot_literal: Option<&BootstrapParametersLiteral>,
    request: &KeyRequest,
    files: &mut FileSet,
    dir: &Path,
    test_keys: bool,
    total: usize,
    rng: &mut KeygenRng,
) -> Result<(usize, u64), String> {
    let err = |e: CkksError| e.to_string();
    let cp = ClientParams::new(&params).map_err(err)?;
    let sk = SmallSecretKey::generate(&cp, rng).map_err(err)?;
    let sk_bytes = sk.to_bytes(test_keys);
    let mut written = sk_bytes.len() as u64;
    files.write(&dir.join("secret.key"), &sk_bytes, true)?;
    drop(sk_bytes);
    let mut sink = StreamSink::new(dir, None, files, total + 1);
    let options = StreamOptions { test_keys };
    client::stream_public_key(&cp, &sk, options, &mut sink, rng).map_err(|e| e.0)?;
    match boot_literal {
        Some(lit) => client::stream_bootstrap_keys(&cp, &sk, lit, request, options, &mut sink, rng),
        None => client::stream_evaluation_keys(&cp, &sk, request, options, &mut sink, rng),
    }
    .map_err(|e| e.0)?;
    written += sink.bytes;
    Ok((sink.done, written))
}

/// The in-memory path (`--no-stream`): the full context and secret key, every key generated
/// into one set, then written.
fn in_memory(
    args: &KeygenArgs,
    params: Parameters,
    boot_literal: Option<&BootstrapParametersLiteral>,
    request: &KeyRequest,
    files: &mut FileSet,
    total: usize,
    rng: &mut KeygenRng,
) -> Result<(usize, u64), String> {
    let err = |e: CkksError| e.to_string();
    let test_keys = args.seed.is_some();
    let dir = args.out.as_path();
    let ctx = CkksContext::new(params).map_err(err)?;
    let sk = SecretKey::generate(&ctx, rng).map_err(err)?;
    let mut sk_bytes = sk.to_bytes().map_err(err)?;
    if test_keys {
        ensi_ckks::serialize::mark_test_object(&mut sk_bytes).map_err(err)?;
    }
    let written = sk_bytes.len() as u64;
    files.write(&dir.join("secret.key"), &sk_bytes, true)?;
    drop(sk_bytes);
    let pk = PublicKey::generate(&ctx, &sk, rng).map_err(err)?;
    let pk_bytes = finish_bytes(pk.to_bytes().map_err(err)?, test_keys).map_err(err)?;
    drop(pk);
    let mut all = EvaluationKeySet::new();
    match boot_literal {
        Some(lit) => generate_bootstrap_keys(&ctx, &sk, lit, request, &mut all, rng),
        None => generate_evaluation_keys(&ctx, &sk, request, &mut all, rng),
    }
    .map_err(err)?;
    // Written through the streamed path's sink: the same files, names and progress lines.
    let mut sink = StreamSink::new(dir, None, files, total + 1);
    sink.object(StreamedObject::PublicKey, &pk_bytes)
        .map_err(|e| e.0)?;
    drop(pk_bytes);
    for key in all.into_keys() {
        let bytes = finish_bytes(key.to_bytes().map_err(err)?, test_keys).map_err(err)?;
        sink.object(StreamedObject::of(&key), &bytes)
            .map_err(|e| e.0)?;
    }
    Ok((sink.done, written + sink.bytes))
}

/// Writes each streamed object to its own temporary file of a [`FileSet`] as it arrives
/// (`dir/<conventional name>`, or `single` for a one-object stream), with progress lines.
pub(crate) struct StreamSink<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) single: Option<&'a Path>,
    pub(crate) files: &'a mut FileSet,
    pub(crate) current: Option<OpenFile>,
    pub(crate) done: usize,
    pub(crate) total: usize,
    pub(crate) bytes: u64,
    pub(crate) started: Instant,
}

impl<'a> StreamSink<'a> {
    /// A sink writing into `files`.
    pub(crate) fn new(
        dir: &'a Path,
        single: Option<&'a Path>,
        files: &'a mut FileSet,
        total: usize,
    ) -> Self {
        Self {
            dir,
            single,
            files,
            current: None,
            done: 0,
            total,
            bytes: 0,
            started: Instant::now(),
        }
    }
}

impl StreamSink<'_> {
    /// One whole object, already in memory.
    pub(crate) fn object(&mut self, object: StreamedObject, bytes: &[u8]) -> Result<(), SinkError> {
        self.begin(object, bytes.len())?;
        self.write(bytes)?;
        self.end()
    }
}

impl ByteSink for StreamSink<'_> {
    type Error = SinkError;

    fn begin(&mut self, object: StreamedObject, _len: usize) -> Result<(), SinkError> {
        let path = match self.single {
            Some(p) => p.to_path_buf(),
            None => self.dir.join(object.file_name()),
        };
        self.current = Some(self.files.create(&path, false).map_err(SinkError)?);
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let file = self
            .current
            .as_mut()
            .ok_or_else(|| SinkError("write before begin".into()))?;
        file.write_all(bytes)
            .map_err(|e| SinkError(format!("writing {}: {e}", file.target().display())))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    fn end(&mut self) -> Result<(), SinkError> {
        let file = self
            .current
            .take()
            .ok_or_else(|| SinkError("end before begin".into()))?;
        let path = file.target().to_path_buf();
        self.files.finish(file).map_err(SinkError)?;
        self.done += 1;
        eprintln!(
            "  [{}/{}] {} ({:.1} MB so far, {:.1} s)",
            self.done,
            self.total,
            path.display(),
            self.bytes as f64 / 1e6,
            self.started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
