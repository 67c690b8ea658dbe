//! The two parties as separate commands, with only files between them:
//!
//! - `ensi encrypt` (client): embeds the prompt with the model's table, pads it to a power of
//!   two, encrypts it in the column-block layout under the secret key, and writes a ciphertext
//!   bundle (`FORMAT.md` §4.10) tagged with the model's fingerprint;
//! - `ensi infer` (server): reads the public evaluation keys (it never opens a secret key: only
//!   `params.bin` and the public key files of the directory are read), the model and the
//!   bundle, runs every layer, and writes the encrypted final hidden state (or, with
//!   `--lm-head server`, the encrypted logits) as another bundle;
//! - `ensi decrypt` (client): decrypts the answer, applies the final gain and the LM head when
//!   the answer is the hidden state, and prints the next token and the top logits.
//!
//! Every file goes through a temporary file and a rename; a malformed, truncated or mismatched
//! input (other parameters, another model, another layout or content) is refused with a
//! one-line reason before anything is written.

use crate::calibration;
use crate::ckks_cmd::{load_evaluation_keys, load_secret};
use crate::files::write_atomic;
use crate::run::{HeadSide, client_head, load_model, prompt_tokens, top_k};
use crate::sets::{ParamSet, load_context};
use clap::Args;
use ensi_bitnet::Model;
use ensi_ckks::serialize::CiphertextBundle;
use ensi_ckks::{BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext};
use ensi_nn::block::BlockMatrix;
use ensi_nn::block_layer::{block_forward, block_lm_head, block_rotations, pad_prompt};
use ensi_nn::decoder::{Progress, embed};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng, TryRngCore};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroizing;

/// Layout code of the column-block layout in a bundle.
const LAYOUT_BLOCK: u8 = 0;
/// Content codes.
const CONTENT_INPUT: u8 = 0;
const CONTENT_HIDDEN: u8 = 1;
const CONTENT_LOGITS: u8 = 2;

/// A fingerprint of the model (FNV-1a over its configuration, embedding, final norm and LM
/// head): a bundle made for one model is refused by another. Not a security measure.
pub fn model_tag(model: &Model) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(format!("{:?}", model.config()).as_bytes());
    for part in [model.embed_tokens(), model.norm(), model.lm_head()] {
        for v in part {
            eat(&v.to_le_bytes());
        }
    }
    h.to_le_bytes()
}

/// The bootstrapping layout of a named set, and the level fresh ciphertexts start at.
fn bootstrap_of(ctx: &CkksContext) -> Result<(BootstrapParametersLiteral, usize), String> {
    let lit = ParamSet::from_id(ctx.id())
        .and_then(ParamSet::bootstrap_literal)
        .ok_or("the keys' parameter set is not a bootstrappable named set (use n16-bootstrappable, or insecure-run for tests)")?;
    let level = ctx
        .max_level()
        .checked_sub(lit.depth())
        .ok_or("the parameter set has no level left after bootstrapping")?;
    Ok((lit, level))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Reads a bundle and checks it is what `content` asks for, in the column-block layout, for
/// `model`.
fn read_bundle(
    ctx: &Arc<CkksContext>,
    path: &Path,
    model: &Model,
    content: &[u8],
) -> Result<CiphertextBundle, String> {
    let b = CiphertextBundle::from_bytes(ctx, &read(path)?)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if b.layout != LAYOUT_BLOCK || b.cts.len() != 1 {
        return Err(format!("{}: not a column-block bundle", path.display()));
    }
    if !content.contains(&b.content) {
        return Err(format!(
            "{}: holds content {} where {content:?} is expected (a query for infer, an answer for decrypt)",
            path.display(),
            b.content
        ));
    }
    if b.tag != model_tag(model) {
        return Err(format!("{}: made for another model", path.display()));
    }
    if (b.padded_rows as usize) != (b.rows as usize).next_power_of_two() {
        return Err(format!(
            "{}: the padding does not match the rows",
            path.display()
        ));
    }
    Ok(b)
}

/// Arguments of `ensi encrypt`.
#[derive(Args, Debug)]
pub struct EncryptArgs {
    /// The client's key directory (`params.bin`, `secret.key`).
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
    /// Checkpoint directory; default: the embedded model.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Input token ids, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "prompt")]
    tokens: Option<Vec<u32>>,
    /// Input text, one token per byte. Default "ENSI run".
    #[arg(long)]
    prompt: Option<String>,
    /// The query file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    /// Accept keys of an INSECURE test set.
    #[arg(long)]
    allow_insecure: bool,
}

fn encrypt(args: &EncryptArgs) -> Result<(), String> {
    let ctx = load_context(&args.keys, args.allow_insecure)?;
    let (_, level) = bootstrap_of(&ctx)?;
    let sk = load_secret(&ctx, &args.keys)?;
    let model = load_model(args.checkpoint.as_deref())?;
    let cfg = model.config();
    let tokens = prompt_tokens(args.tokens.as_deref(), args.prompt.as_deref(), cfg)?;
    let padded = pad_prompt(&tokens);
    let values = embed(&model, &padded).ok_or("token outside the embedding table")?;
    let mut seed = Zeroizing::new([0u8; 32]);
    OsRng
        .try_fill_bytes(&mut seed[..])
        .map_err(|e| format!("operating-system randomness: {e}"))?;
    let mut rng = ChaCha20Rng::from_seed(*seed);
    let delta = ctx.params().default_scale();
    let x = BlockMatrix::encrypt(&ctx, &sk, &values, padded.len(), level, delta, &mut rng)
        .map_err(|e| e.to_string())?;
    let bundle = CiphertextBundle {
        layout: LAYOUT_BLOCK,
        content: CONTENT_INPUT,
        rows: tokens.len() as u32,
        padded_rows: padded.len() as u32,
        cols: cfg.hidden_size as u32,
        tag: model_tag(&model),
        cts: vec![x.ciphertext().clone()],
    };
    let bytes = bundle.to_bytes().map_err(|e| e.to_string())?;
    write_atomic(&args.out, &bytes, false, args.force)?;
    eprintln!(
        "ensi encrypt: {} tokens (padded to {}) at level {level}, {} ({:.1} MB)",
        tokens.len(),
        padded.len(),
        args.out.display(),
        bytes.len() as f64 / 1e6
    );
    Ok(())
}

/// Arguments of `ensi infer`.
#[derive(Args, Debug)]
pub struct InferArgs {
    /// The server's key directory: `params.bin` and the public evaluation keys (a secret key
    /// there is never opened).
    #[arg(long, value_name = "DIR")]
    eval_keys: PathBuf,
    /// Checkpoint directory; default: the embedded model.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// The client's query (`ensi encrypt`).
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// The answer file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Return the encrypted final hidden state (client: the client applies the LM head) or the
    /// encrypted logits (server).
    #[arg(long, value_enum, default_value_t = HeadSide::Client)]
    lm_head: HeadSide,
    /// Degree of the sigmoid polynomial.
    #[arg(long, default_value_t = 31)]
    sigmoid_degree: usize,
    /// Degree of the FFN activation polynomial.
    #[arg(long, default_value_t = 63)]
    act_degree: usize,
    /// Print a JSON summary on standard output.
    #[arg(long)]
    json: bool,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    /// Accept keys of an INSECURE test set.
    #[arg(long)]
    allow_insecure: bool,
}

fn infer(args: &InferArgs) -> Result<(), String> {
    let started = Instant::now();
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let ctx = load_context(&args.eval_keys, args.allow_insecure)?;
    let (literal, _) = bootstrap_of(&ctx)?;
    let model = load_model(args.checkpoint.as_deref())?;
    let cfg = model.config().clone();
    let query = read_bundle(&ctx, &args.input, &model, &[CONTENT_INPUT])?;
    let (n, n_pad) = (query.rows as usize, query.padded_rows as usize);
    if query.cols as usize != cfg.hidden_size {
        return Err(format!(
            "{}: not {} columns wide",
            args.input.display(),
            cfg.hidden_size
        ));
    }
    if args.out.exists() && !args.force {
        return Err(format!("{} exists (use --force)", args.out.display()));
    }
    let (plan, calibration_source) = calibration::plan_for(
        &model,
        args.checkpoint.as_deref(),
        n,
        false,
        args.sigmoid_degree,
        args.act_degree,
    )?;
    let server_head = args.lm_head == HeadSide::Server;
    // The keys: every rotation the layers need must be there.
    let (set, count, bytes) = load_evaluation_keys(&ctx, &args.eval_keys)?;
    let have = set.galois_elements();
    let slots = ctx.n() / 2;
    let missing = block_rotations(&cfg, n_pad, slots, server_head)
        .map_err(err)?
        .into_iter()
        .filter(|&r| !have.contains(&ctx.rotation_galois_element(r)))
        .count();
    if missing > 0 {
        return Err(format!(
            "the evaluation keys lack {missing} rotations the layers need for {n_pad} (padded) \
             tokens: make them with `ensi keygen --bootstrap --tokens {n_pad}`"
        ));
    }
    let keys = BootstrapKeys::from_set(set).map_err(err)?;
    let bts = Bootstrapper::new(&ctx, literal, keys).map_err(err)?;
    let setup_s = started.elapsed().as_secs_f64();
    let ct = query.cts.into_iter().next().ok_or("empty query")?;
    let x = BlockMatrix::from_ciphertext(ct, n_pad, cfg.hidden_size).map_err(err)?;
    if x.level() != bts.output_level() {
        return Err(format!(
            "{}: encrypted at level {}, the layers start at {}",
            args.input.display(),
            x.level(),
            bts.output_level()
        ));
    }
    let eval = bts.evaluator();
    let before = eval.op_count();
    let clock = Instant::now();
    let mut progress = |p: Progress| match p {
        Progress::Layer { index, count } => eprintln!(
            "ensi infer: layer {}/{count} ({:.0} s so far)",
            index + 1,
            clock.elapsed().as_secs_f64()
        ),
        Progress::Step { name, level } => {
            eprintln!("ensi infer:   {name:<38} level {level:>2}")
        }
        Progress::FinalNorm => eprintln!(
            "ensi infer: final norm ({:.0} s so far)",
            clock.elapsed().as_secs_f64()
        ),
    };
    let hidden =
        block_forward(&bts, &model, &x, &plan, n, &mut progress, &mut |_, _| {}).map_err(err)?;
    let (out, content) = if server_head {
        (
            block_lm_head(eval, &hidden, &model).map_err(err)?,
            CONTENT_LOGITS,
        )
    } else {
        (hidden, CONTENT_HIDDEN)
    };
    let layers_s = clock.elapsed().as_secs_f64();
    let ops = eval.op_count() - before;
    let answer = CiphertextBundle {
        layout: LAYOUT_BLOCK,
        content,
        rows: n as u32,
        padded_rows: n_pad as u32,
        cols: out.cols() as u32,
        tag: model_tag(&model),
        cts: vec![out.ciphertext().clone()],
    };
    let data = answer.to_bytes().map_err(err)?;
    write_atomic(&args.out, &data, false, args.force)?;
    let total_s = started.elapsed().as_secs_f64();
    eprintln!(
        "ensi infer: {} written; keys {count} ({:.0} MB) and setup {setup_s:.1} s, layers \
         {layers_s:.1} s ({} bootstraps, {:.1} s of them), total {total_s:.1} s",
        args.out.display(),
        bytes as f64 / 1e6,
        ops.bootstrap,
        ops.bootstrap_micros as f64 * 1e-6
    );
    if args.json {
        println!(
            "{}",
            json!({
                "tokens": n, "padded_tokens": n_pad,
                "content": if server_head { "logits" } else { "hidden" },
                "calibration": calibration_source,
                "times_s": {"setup": setup_s, "layers": layers_s, "total": total_s,
                            "bootstrapping": ops.bootstrap_micros as f64 * 1e-6},
                "ops": {"bootstrap": ops.bootstrap, "key_switches": ops.key_switches()},
            })
        );
    }
    Ok(())
}

/// Arguments of `ensi decrypt`.
#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// The client's key directory (`params.bin`, `secret.key`).
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
    /// Checkpoint directory; default: the embedded model.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// The server's answer (`ensi infer`).
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// How many of the top logits to print.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON on standard output.
    #[arg(long)]
    json: bool,
    /// Accept keys of an INSECURE test set.
    #[arg(long)]
    allow_insecure: bool,
}

fn decrypt(args: &DecryptArgs) -> Result<(), String> {
    let ctx = load_context(&args.keys, args.allow_insecure)?;
    let sk = load_secret(&ctx, &args.keys)?;
    let model = load_model(args.checkpoint.as_deref())?;
    let cfg = model.config();
    let answer = read_bundle(&ctx, &args.input, &model, &[CONTENT_HIDDEN, CONTENT_LOGITS])?;
    let (n, n_pad, cols) = (
        answer.rows as usize,
        answer.padded_rows as usize,
        answer.cols as usize,
    );
    let want = if answer.content == CONTENT_HIDDEN {
        cfg.hidden_size
    } else {
        cfg.vocab_size
    };
    if cols != want {
        return Err(format!(
            "{}: {cols} columns where {want} are expected",
            args.input.display()
        ));
    }
    let ct = answer.cts.into_iter().next().ok_or("empty answer")?;
    let m = BlockMatrix::from_ciphertext(ct, n_pad, cols).map_err(|e| e.to_string())?;
    let values = m.decrypt(&ctx, &sk).map_err(|e| e.to_string())?;
    let last = &values[(n - 1) * cols..n * cols];
    let logits: Vec<f64> = if answer.content == CONTENT_HIDDEN {
        let row: Vec<f64> = last
            .iter()
            .zip(model.norm())
            .map(|(v, &g)| v * f64::from(g))
            .collect();
        client_head(model.lm_head(), &row, cfg.vocab_size)
    } else {
        last.to_vec()
    };
    let top = top_k(&logits, args.top.max(1));
    let shown = |t: usize| {
        char::from_u32(t as u32)
            .filter(|c| !c.is_control())
            .unwrap_or('?')
    };
    eprintln!(
        "ensi decrypt: next token {} ({:?})",
        top[0].0,
        shown(top[0].0)
    );
    for (t, v) in &top {
        eprintln!("  {t:>6} {v:>12.5}");
    }
    if args.json {
        println!(
            "{}",
            json!({
                "next_token": top[0].0,
                "top": top.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
                "logits": logits,
            })
        );
    }
    Ok(())
}

fn report(name: &str, r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ensi {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `ensi encrypt`.
pub fn run_encrypt(args: &EncryptArgs) -> ExitCode {
    report("encrypt", encrypt(args))
}

/// Runs `ensi infer`.
pub fn run_infer(args: &InferArgs) -> ExitCode {
    report("infer", infer(args))
}

/// Runs `ensi decrypt`.
pub fn run_decrypt(args: &DecryptArgs) -> ExitCode {
    report("decrypt", decrypt(args))
}
