//! `ensi keygen`: the client's key generation. Writes the parameter set, the secret key (owner-only
//! permissions), the public key and the evaluation keys to a directory, generating the evaluation
//! keys one at a time into a file sink so that at most one of them is in memory, and reports the
//! peak resident memory.
//!
//! Every file is written to a temporary name in the same directory and renamed into place, so an
//! interrupted run never leaves a truncated key under a real name; existing files are refused
//! unless `--force`.

use clap::{Args, ValueEnum};
use ensi_ckks::{
    CkksContext, CkksError, EvaluationKey, EvaluationKeySet, KeyRequest, KeySink, Parameters,
    ParametersLiteral, PublicKey, SecretKey, generate_evaluation_keys,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng, TryRngCore};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

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
    /// Hold every evaluation key in memory and write them at the end, instead of streaming them
    /// one at a time (to measure what streaming saves).
    #[arg(long)]
    no_stream: bool,
    /// Overwrite existing key files.
    #[arg(long)]
    force: bool,
    /// Seed for a reproducible (and therefore insecure) run; default: the operating system.
    #[arg(long)]
    seed: Option<u64>,
}

/// The named parameter sets.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ParamSet {
    /// N = 2^16, 26 + 5 primes, 6 digits (128-bit secure, made for bootstrapping).
    N16Bootstrappable,
    /// N = 2^15, 15 + 4 primes, 4 digits (128-bit secure, leveled).
    N15Leveled,
    /// N = 2^11, a few primes: INSECURE, for tests.
    InsecureTest,
}

/// Which rotation keys to make.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Rotations {
    /// Rotations by +-2^k for every 2^k below the slot count.
    PowersOfTwo,
    /// No rotation key.
    None,
}

impl ParamSet {
    fn parameters(self) -> Result<Parameters, CkksError> {
        match self {
            Self::N16Bootstrappable => Parameters::new(ParametersLiteral::n16_bootstrappable()),
            Self::N15Leveled => Parameters::new(ParametersLiteral::n15_leveled()),
            Self::InsecureTest => Parameters::new_insecure(ParametersLiteral::insecure_test(11, 4)),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename;
/// `secret` files get mode 0600 from creation on (Unix).
fn write_atomic(path: &Path, bytes: &[u8], secret: bool, force: bool) -> Result<(), String> {
    if path.exists() && !force {
        return Err(format!(
            "{} exists; pass --force to replace it",
            path.display()
        ));
    }
    let tmp = path.with_extension("tmp");
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let result = (|| {
        let mut f: File = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("writing {}: {e}", path.display())
    })
}

/// Writes each evaluation key to its own file as it arrives.
struct FileSink<'a> {
    dir: &'a Path,
    force: bool,
    done: usize,
    total: usize,
    bytes: u64,
    started: Instant,
}

/// A sink error: a key-generation error or an I/O message.
#[derive(Debug)]
struct SinkError(String);

impl From<CkksError> for SinkError {
    fn from(e: CkksError) -> Self {
        Self(e.to_string())
    }
}

fn key_file(key: &EvaluationKey) -> String {
    match key {
        EvaluationKey::Relinearization(_) => "relin.key".into(),
        EvaluationKey::Galois(k) => format!("galois-{}.key", k.galois_element()),
        EvaluationKey::DenseToSparse(_) => "dense-to-sparse.key".into(),
        EvaluationKey::SparseToDense(_) => "sparse-to-dense.key".into(),
    }
}

impl KeySink for FileSink<'_> {
    type Error = SinkError;

    fn accept(&mut self, key: EvaluationKey) -> Result<(), SinkError> {
        let bytes = key.to_bytes()?;
        let path = self.dir.join(key_file(&key));
        drop(key);
        write_atomic(&path, &bytes, false, self.force).map_err(SinkError)?;
        self.done += 1;
        self.bytes += bytes.len() as u64;
        eprintln!(
            "  [{}/{}] {} ({:.1} MB, {:.1} s)",
            self.done,
            self.total,
            path.display(),
            bytes.len() as f64 / 1e6,
            self.started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// The peak resident set size of this process so far, in bytes (Linux `VmHWM`).
pub fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs `ensi keygen`.
pub fn run(args: &KeygenArgs) -> ExitCode {
    match run_inner(args) {
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
    fs::create_dir_all(&args.out).map_err(|e| format!("creating {}: {e}", args.out.display()))?;
    let ctx = CkksContext::new(params).map_err(|e| e.to_string())?;
    let mut rng = match args.seed {
        Some(s) => {
            eprintln!("ensi keygen: --seed makes the keys reproducible: for tests only");
            ChaCha20Rng::seed_from_u64(s)
        }
        None => {
            let mut seed = [0u8; 32];
            OsRng
                .try_fill_bytes(&mut seed)
                .map_err(|e| format!("operating-system randomness: {e}"))?;
            ChaCha20Rng::from_seed(seed)
        }
    };
    let err = |e: CkksError| e.to_string();
    let dir = args.out.as_path();
    write_atomic(
        &dir.join("params.bin"),
        &ctx.params().to_bytes().map_err(err)?,
        false,
        args.force,
    )?;
    let sk = SecretKey::generate(&ctx, &mut rng).map_err(err)?;
    write_atomic(
        &dir.join("secret.key"),
        &sk.to_bytes().map_err(err)?,
        true,
        args.force,
    )?;
    let pk = PublicKey::generate(&ctx, &sk, &mut rng).map_err(err)?;
    write_atomic(
        &dir.join("public.key"),
        &pk.to_bytes().map_err(err)?,
        false,
        args.force,
    )?;
    drop(pk);

    let mut request = KeyRequest::new().with_relinearization();
    if let Rotations::PowersOfTwo = args.rotations {
        request = request.with_power_of_two_rotations(&ctx, ctx.n() / 2);
    }
    if args.conjugation {
        request = request.with_conjugation(&ctx);
    }
    let total = request.key_count();
    eprintln!(
        "ensi keygen: N = 2^{}, {} evaluation keys into {} ({})",
        ctx.params().log_n(),
        total,
        dir.display(),
        if args.no_stream {
            "all in memory, then written"
        } else {
            "streamed one at a time"
        }
    );
    let mut sink = FileSink {
        dir,
        force: args.force,
        done: 0,
        total,
        bytes: 0,
        started: Instant::now(),
    };
    if args.no_stream {
        let all = EvaluationKeySet::generate(&ctx, &sk, &request, &mut rng).map_err(err)?;
        if let Some(r) = all.relinearization() {
            sink.accept(EvaluationKey::Relinearization(r.clone()))
                .map_err(|e| e.0)?;
        }
        for g in all.galois_elements() {
            if let Some(k) = all.galois(g) {
                sink.accept(EvaluationKey::Galois(k.clone()))
                    .map_err(|e| e.0)?;
            }
        }
    } else {
        generate_evaluation_keys(&ctx, &sk, &request, &mut sink, &mut rng).map_err(|e| e.0)?;
    }
    let peak = peak_rss().map_or("unknown".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
    eprintln!(
        "ensi keygen: {} evaluation keys, {:.1} MB written, {:.1} s, peak resident memory {peak}",
        sink.done,
        sink.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
