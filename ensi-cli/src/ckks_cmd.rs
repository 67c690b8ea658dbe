//! `ensi ckks`: raw CKKS vectors between a client and a server, through files.
//!
//! - `encrypt` (client): encodes a vector of reals (a JSON array, or uniform random values in
//!   `[-1, 1]`) and encrypts it with the secret key into a ciphertext file.
//! - `bootstrap` (server): loads the parameter set and the public evaluation keys of a key
//!   directory (never the secret key: it does not open `secret.key`, and works with it absent),
//!   bootstraps a ciphertext read from a file and writes the result.
//! - `decrypt` (client): decrypts a ciphertext file, prints its level and values and, given the
//!   expected values, the precision in bits.
//!
//! Every file is written through a temporary file and a rename.

use crate::files::write_atomic;
use crate::keygen::peak_rss;
use crate::sets::{ParamSet, load_context};
use clap::{Args, Subcommand};
use ensi_ckks::{
    BootstrapKeys, Bootstrapper, Ciphertext, CkksContext, EvaluationKey, EvaluationKeySet,
    PrecisionStats, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng, TryRngCore};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

/// The `ensi ckks` subcommands.
#[derive(Subcommand, Debug)]
pub enum CkksCommand {
    /// Client: encrypt a vector of reals with the secret key of a key directory.
    Encrypt(EncryptArgs),
    /// Server: bootstrap a ciphertext with the public keys of a key directory (no secret key).
    Bootstrap(BootstrapArgs),
    /// Client: decrypt a ciphertext and compare it with the expected values.
    Decrypt(DecryptArgs),
}

/// Arguments of `ensi ckks encrypt`.
#[derive(Args, Debug)]
pub struct EncryptArgs {
    /// Key directory written by `ensi keygen` (reads params.bin and secret.key).
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
    /// The values: a JSON array of numbers (at most N/2; the slot count is the next power of
    /// two). Default: uniform random values in [-1, 1] in every slot.
    #[arg(long, value_name = "FILE")]
    values: Option<PathBuf>,
    /// Also write the encrypted values (as a JSON array) here, for `decrypt --expect`.
    #[arg(long, value_name = "FILE")]
    values_out: Option<PathBuf>,
    /// The level to encrypt at (default 0, the smallest file; bootstrapping starts there).
    #[arg(long, default_value_t = 0)]
    level: usize,
    /// Seed of the random values (the encryption randomness always comes from the OS).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Accept a parameter set marked insecure (test keys).
    #[arg(long)]
    allow_insecure: bool,
    /// The ciphertext file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace existing output files.
    #[arg(long)]
    force: bool,
}

/// Arguments of `ensi ckks bootstrap`.
#[derive(Args, Debug)]
pub struct BootstrapArgs {
    /// Key directory with params.bin and the public evaluation keys (relin.key, galois-*.key,
    /// dense-to-sparse.key, sparse-to-dense.key). secret.key is never opened.
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
    /// The ciphertext to bootstrap.
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// Where to write the bootstrapped ciphertext.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Accept a parameter set marked insecure (test keys).
    #[arg(long)]
    allow_insecure: bool,
    /// Print a JSON summary on standard output.
    #[arg(long)]
    json: bool,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

/// Arguments of `ensi ckks decrypt`.
#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// Key directory (reads params.bin and secret.key).
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
    /// The ciphertext to decrypt.
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// The expected values (JSON array): report the precision in bits.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Accept a parameter set marked insecure (test keys).
    #[arg(long)]
    allow_insecure: bool,
    /// Print a JSON summary on standard output.
    #[arg(long)]
    json: bool,
}

/// Runs an `ensi ckks` subcommand.
pub fn run(cmd: &CkksCommand) -> ExitCode {
    let (name, result) = match cmd {
        CkksCommand::Encrypt(a) => ("encrypt", encrypt(a)),
        CkksCommand::Bootstrap(a) => ("bootstrap", bootstrap(a)),
        CkksCommand::Decrypt(a) => ("decrypt", decrypt(a)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ensi ckks {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn read_values(path: &Path) -> Result<Vec<f64>, String> {
    let v: serde_json::Value = serde_json::from_slice(&read(path)?)
        .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    v.as_array()
        .ok_or_else(|| format!("{}: expected a JSON array of numbers", path.display()))?
        .iter()
        .map(|x| {
            x.as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("{}: {x} is not a finite number", path.display()))
        })
        .collect()
}

/// The client's secret key from `dir/secret.key` (the buffer is wiped after decoding).
pub(crate) fn load_secret(ctx: &Arc<CkksContext>, dir: &Path) -> Result<SecretKey, String> {
    let path = dir.join("secret.key");
    let bytes = Zeroizing::new(read(&path)?);
    SecretKey::from_bytes(ctx, &bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn encrypt(args: &EncryptArgs) -> Result<(), String> {
    let ctx = load_context(&args.keys, args.allow_insecure)?;
    let sk = load_secret(&ctx, &args.keys)?;
    let values = match &args.values {
        Some(path) => read_values(path)?,
        None => {
            let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
            (0..ctx.n() / 2)
                .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
                .collect()
        }
    };
    if values.is_empty() || values.len() > ctx.n() / 2 {
        return Err(format!(
            "{} values: give between 1 and N/2 = {}",
            values.len(),
            ctx.n() / 2
        ));
    }
    if args.level > ctx.max_level() {
        return Err(format!(
            "--level {} is above the top level {}",
            args.level,
            ctx.max_level()
        ));
    }
    let slots = values.len().next_power_of_two();
    let pt = ctx
        .encode(&values, slots, args.level, ctx.params().default_scale())
        .map_err(|e| e.to_string())?;
    let mut seed = Zeroizing::new([0u8; 32]);
    OsRng
        .try_fill_bytes(&mut seed[..])
        .map_err(|e| format!("operating-system randomness: {e}"))?;
    let mut rng = ChaCha20Rng::from_seed(*seed);
    let ct = sk.encrypt(&ctx, &pt, &mut rng).map_err(|e| e.to_string())?;
    let bytes = ct.to_bytes().map_err(|e| e.to_string())?;
    write_atomic(&args.out, &bytes, false, args.force)?;
    if let Some(path) = &args.values_out {
        let text = serde_json::to_vec(&values).map_err(|e| e.to_string())?;
        write_atomic(path, &text, false, args.force)?;
    }
    eprintln!(
        "ensi ckks encrypt: {} values in {slots} slots at level {}, {} ({:.1} MB)",
        values.len(),
        args.level,
        args.out.display(),
        bytes.len() as f64 / 1e6
    );
    Ok(())
}

/// The file names of the public evaluation keys in a key directory.
fn is_public_key_file(name: &str) -> bool {
    name == "relin.key"
        || name == "dense-to-sparse.key"
        || name == "sparse-to-dense.key"
        || ((name.starts_with("galois-") || name.starts_with("galois0-")) && name.ends_with(".key"))
}

/// Loads every public evaluation key of `dir` (never `secret.key`), with progress.
pub(crate) fn load_evaluation_keys(
    ctx: &Arc<CkksContext>,
    dir: &Path,
    trim: Option<&crate::keycache::Trim>,
) -> Result<(EvaluationKeySet, usize, u64), String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| is_public_key_file(name))
        .collect();
    names.sort();
    // Keys are read and decoded side by side (each decode is one file's unpacking and the
    // re-expansion of its seeded halves, single-threaded), in the order of the sorted names.
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let started = Instant::now();
    let (done, bytes) = (AtomicUsize::new(0), AtomicU64::new(0));
    let keys = names
        .par_iter()
        .map(|name| {
            let path = dir.join(name);
            let data = read(&path)?;
            let mut key = EvaluationKey::from_bytes(ctx, &data)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            // Trimmed as it is decoded: the whole keys never pile up.
            if let Some(trim) = trim {
                trim.key_of(ctx, &mut key)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            let total = bytes.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            let i = done.fetch_add(1, Ordering::Relaxed) + 1;
            if i % 8 == 0 || i == names.len() {
                eprintln!(
                    "  loaded {i}/{} keys ({:.0} MB, {:.1} s)",
                    names.len(),
                    total as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(key)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut set = EvaluationKeySet::new();
    for key in keys {
        set.insert(key);
    }
    let bytes = bytes.into_inner();
    Ok((set, names.len(), bytes))
}

fn bootstrap(args: &BootstrapArgs) -> Result<(), String> {
    let started = Instant::now();
    let ctx = load_context(&args.keys, args.allow_insecure)?;
    let set = ParamSet::from_id(ctx.id()).ok_or_else(|| {
        format!(
            "the parameter set {} of {} is not one of the named sets",
            ctx.id(),
            args.keys.display()
        )
    })?;
    let literal = set.bootstrap_literal().ok_or_else(|| {
        format!(
            "the parameter set {} is not laid out for bootstrapping",
            set.name()
        )
    })?;
    let ct = Ciphertext::from_bytes(&ctx, &read(&args.input)?)
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    eprintln!(
        "ensi ckks bootstrap: {} (N = 2^{}), loading the public keys of {}",
        set.name(),
        ctx.params().log_n(),
        args.keys.display()
    );
    let (keys, count, key_bytes) = load_evaluation_keys(&ctx, &args.keys, None)?;
    let load_s = started.elapsed().as_secs_f64();
    let keys = BootstrapKeys::from_set(keys).map_err(|e| e.to_string())?;
    let clock = Instant::now();
    let bts = Bootstrapper::new(&ctx, literal, keys).map_err(|e| e.to_string())?;
    let setup_s = clock.elapsed().as_secs_f64();
    eprintln!(
        "ensi ckks bootstrap: bootstrapping (level {} in)",
        ct.level()
    );
    let clock = Instant::now();
    let (out, times) = bts.bootstrap_timed(&ct).map_err(|e| e.to_string())?;
    let bootstrap_s = clock.elapsed().as_secs_f64();
    let bytes = out.to_bytes().map_err(|e| e.to_string())?;
    write_atomic(&args.out, &bytes, false, args.force)?;
    let peak = peak_rss();
    eprintln!(
        "ensi ckks bootstrap: level {} -> {}, {:.1} s (mod raise {:.1}, CoeffsToSlots {:.1}, \
         EvalMod {:.1}, SlotsToCoeffs {:.1}); keys {:.1} s, setup {:.1} s; peak resident \
         memory {}",
        ct.level(),
        out.level(),
        bootstrap_s,
        times.mod_raise,
        times.coeffs_to_slots,
        times.eval_mod,
        times.slots_to_coeffs,
        load_s,
        setup_s,
        peak.map_or("unknown".into(), |b| format!("{:.1} GB", b as f64 / 1e9))
    );
    if args.json {
        let summary = json!({
            "params": set.name(),
            "log_n": ctx.params().log_n(),
            "keys": count,
            "key_bytes": key_bytes,
            "level_in": ct.level(),
            "level_out": out.level(),
            "load_s": load_s,
            "setup_s": setup_s,
            "bootstrap_s": bootstrap_s,
            "stages_s": {
                "mod_raise": times.mod_raise,
                "coeffs_to_slots": times.coeffs_to_slots,
                "eval_mod": times.eval_mod,
                "slots_to_coeffs": times.slots_to_coeffs,
            },
            "peak_rss_bytes": peak,
        });
        println!("{summary}");
    }
    Ok(())
}

fn decrypt(args: &DecryptArgs) -> Result<(), String> {
    let ctx = load_context(&args.keys, args.allow_insecure)?;
    let sk = load_secret(&ctx, &args.keys)?;
    let ct = Ciphertext::from_bytes(&ctx, &read(&args.input)?)
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    let got = ctx
        .decode(&sk.decrypt(&ctx, &ct).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let head: Vec<String> = got.iter().take(4).map(|x| format!("{x:.6}")).collect();
    eprintln!(
        "ensi ckks decrypt: level {}, {} slots, scale 2^{:.1}: [{}{}]",
        ct.level(),
        got.len(),
        ct.scale().log2(),
        head.join(", "),
        if got.len() > 4 { ", ..." } else { "" }
    );
    let mut summary = json!({
        "level": ct.level(),
        "slots": got.len(),
        "log_scale": ct.scale().log2(),
    });
    if let Some(path) = &args.expect {
        let expect = read_values(path)?;
        if expect.len() > got.len() {
            return Err(format!(
                "{} expected values for {} slots",
                expect.len(),
                got.len()
            ));
        }
        let stats = PrecisionStats::real(&expect, &got[..expect.len()]);
        eprintln!(
            "ensi ckks decrypt: precision {:.2} bits worst slot, {:.2} median, max error {:.3e}",
            stats.min_bits, stats.median_bits, stats.max_error
        );
        summary["min_bits"] = json!(stats.min_bits);
        summary["median_bits"] = json!(stats.median_bits);
        summary["max_error"] = json!(stats.max_error);
    }
    if args.json {
        println!("{summary}");
    }
    Ok(())
}
