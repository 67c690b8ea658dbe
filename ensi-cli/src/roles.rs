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
//! Generation through the same commands: `ensi encrypt --max-new-tokens K` pads the prompt to
//! the capacity the generation needs, and `ensi infer --cache-out CACHE` keeps the encrypted
//! keys and values of every layer (a bundle of content 4, two ciphertexts per layer). Each
//! further token is `ensi encrypt --next-token T --position P --capacity C` (the embedding in
//! every row, content 3), `ensi infer --cache CACHE --cache-out CACHE` (one round: the token
//! attends through the cache, which gains its position) and `ensi decrypt`.
//!
//! Every file goes through a temporary file and a rename; a malformed, truncated or mismatched
//! input (other parameters, another model, another layout or content, a cache at another
//! position) is refused with a one-line reason before anything is written.

use crate::calibration;
use crate::ckks_cmd::load_evaluation_keys;
use crate::files::{FileSet, write_atomic};
use crate::keygen::StreamSink;
use crate::run::{HeadSide, head_of_normalized, load_model, prompt_tokens, top_k};
use crate::sets::{ParamSet, load_context, load_params};
use clap::Args;
use ensi_bitnet::Model;
use ensi_ckks::client::{self, BundleHeader, ClientParams, SmallSecretKey};
use ensi_ckks::serialize::{CiphertextBundle, split_bundle};
use ensi_ckks::{BootstrapKeys, BootstrapParametersLiteral, Bootstrapper, CkksContext, Parameters};
use ensi_nn::block::ChunkedMatrix;
use ensi_nn::block_layer::{
    KvCache, LayerCache, block_forward, block_lm_head, block_prefill, block_rotations, block_step,
    generation_capacity, head_layout_cols, pad_prompt_to, step_rotations,
};
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
/// Content codes: a prompt's embeddings, a final hidden state, logits, one new token's
/// embedding in every row (rows = its position + 1), the key/value cache (rows = positions
/// filled).
const CONTENT_INPUT: u8 = 0;
const CONTENT_HIDDEN: u8 = 1;
const CONTENT_LOGITS: u8 = 2;
const CONTENT_TOKEN: u8 = 3;
const CONTENT_CACHE: u8 = 4;

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
fn bootstrap_of(params: &Parameters) -> Result<(BootstrapParametersLiteral, usize), String> {
    let lit = ParamSet::from_id(params.id())
        .and_then(ParamSet::bootstrap_literal)
        .ok_or("the keys' parameter set is not a bootstrappable named set (use n16-bootstrappable, or insecure-run for tests)")?;
    let level = params
        .max_level()
        .checked_sub(lit.depth())
        .ok_or("the parameter set has no level left after bootstrapping")?;
    Ok((lit, level))
}

/// The client's secret key in its small form, from `dir/secret.key`.
fn load_small_secret(cp: &ClientParams, dir: &Path) -> Result<SmallSecretKey, String> {
    let path = dir.join("secret.key");
    let bytes = Zeroizing::new(read(&path)?);
    SmallSecretKey::from_bytes(cp, &bytes).map_err(|e| format!("{}: {e}", path.display()))
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
    check_bundle(&b.header(), b.cts.len(), ctx.n() / 2, path, model, content)?;
    Ok(b)
}

/// Checks a bundle's fields: `content` is one of those asked for, the column-block layout with
/// the ciphertext count the content needs (one per column chunk of `slots` slots, and for a
/// cache a key and a value per layer), `model`'s tag, padded rows a power of two.
fn check_bundle(
    b: &BundleHeader,
    cts: usize,
    slots: usize,
    path: &Path,
    model: &Model,
    content: &[u8],
) -> Result<(), String> {
    if !content.contains(&b.content) {
        return Err(format!(
            "{}: holds {} where {} is expected",
            path.display(),
            content_name(b.content),
            content
                .iter()
                .map(|&c| content_name(c))
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    if b.tag != model_tag(model) {
        return Err(format!("{}: made for another model", path.display()));
    }
    let n_pad = b.padded_rows as usize;
    if !b.padded_rows.is_power_of_two() || n_pad > slots || b.cols == 0 {
        return Err(format!(
            "{}: {} padded rows of {} columns: the padded rows must be a power of two within the \
             {slots} slots, and the columns at least one",
            path.display(),
            b.padded_rows,
            b.cols
        ));
    }
    let chunks = ChunkedMatrix::chunk_count(slots, n_pad, b.cols as usize);
    let count = if b.content == CONTENT_CACHE {
        2 * model.config().num_hidden_layers * chunks
    } else {
        chunks
    };
    if b.layout != LAYOUT_BLOCK || cts != count {
        return Err(format!(
            "{}: not a column-block bundle of {count} ciphertexts",
            path.display()
        ));
    }
    Ok(())
}

/// What a bundle of content `code` holds, in words.
pub(crate) fn content_name(code: u8) -> &'static str {
    match code {
        CONTENT_INPUT => "a prompt (ensi encrypt)",
        CONTENT_HIDDEN => "a final hidden state (ensi infer)",
        CONTENT_LOGITS => "logits (ensi infer --lm-head server)",
        CONTENT_TOKEN => "a new token (ensi encrypt --next-token)",
        CONTENT_CACHE => "a key/value cache (ensi infer --cache-out)",
        _ => "an unknown content",
    }
}

/// An error unless `rows` (padded) tokens fit the slots of ring degree `n` in the column-block
/// layout (a column of every row in one ciphertext); wider activations are split over several
/// ciphertexts (column chunks), which the bundles hold in order.
fn fits(n: usize, rows: usize) -> Result<(), String> {
    let slots = n / 2;
    if rows > slots {
        return Err(format!(
            "{rows} rows do not fit the keys' ring: it has {slots} slots, and the column-block \
             layout needs a slot per row in every ciphertext"
        ));
    }
    Ok(())
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
    /// Pad the prompt for a generation of this many new tokens (the capacity of the server's
    /// cache: the prompt and every new token but the last, rounded up to a power of two).
    #[arg(long, conflicts_with = "next_token")]
    max_new_tokens: Option<usize>,
    /// A generation round's query instead of a prompt: this token's embedding in every row.
    #[arg(long, requires_all = ["position", "capacity"], conflicts_with_all = ["tokens", "prompt"])]
    next_token: Option<u32>,
    /// The new token's position (the number of tokens before it).
    #[arg(long, requires = "next_token")]
    position: Option<usize>,
    /// The cache's capacity (`ensi infer` prints it; the prompt's padded rows).
    #[arg(long, requires = "next_token")]
    capacity: Option<usize>,
    /// The query file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    /// Accept keys of an INSECURE test set.
    #[arg(long)]
    allow_insecure: bool,
    /// Print, as JSON on standard output, the peak heap (counted by the allocator), the time
    /// and the bytes written.
    #[arg(long)]
    report_memory: bool,
}

fn encrypt(args: &EncryptArgs) -> Result<(), String> {
    let started = Instant::now();
    // The constrained client: the parameter set and the small secret only (no context).
    let params = load_params(&args.keys, args.allow_insecure)?;
    let (_, level) = bootstrap_of(&params)?;
    let cp = ClientParams::new(&params).map_err(|e| e.to_string())?;
    let sk = load_small_secret(&cp, &args.keys)?;
    let model = load_model(args.checkpoint.as_deref())?;
    let cfg = model.config();
    let n = params.n();
    // (meaningful rows, padded rows, values, content)
    let (rows, padded, values, content) = match (args.next_token, args.position, args.capacity) {
        (Some(token), Some(position), Some(capacity)) => {
            if !capacity.is_power_of_two() || position == 0 || position >= capacity {
                return Err(format!(
                    "--position {position} must be at least 1 and below --capacity {capacity}, \
                     a power of two"
                ));
            }
            fits(n, capacity)?;
            let e = embed(&model, &[token]).ok_or_else(|| {
                format!(
                    "token {token} is outside the vocabulary of {}",
                    cfg.vocab_size
                )
            })?;
            (position + 1, capacity, e.repeat(capacity), CONTENT_TOKEN)
        }
        _ => {
            let tokens = prompt_tokens(args.tokens.as_deref(), args.prompt.as_deref(), cfg)?;
            let rows = match args.max_new_tokens {
                Some(0) => return Err("--max-new-tokens must be at least 1".into()),
                Some(k) => generation_capacity(tokens.len(), k)
                    .ok_or("--max-new-tokens: the capacity overflows")?,
                None => tokens.len().next_power_of_two(),
            };
            fits(n, rows)?;
            let padded = pad_prompt_to(&tokens, rows);
            let values = embed(&model, &padded).ok_or("token outside the embedding table")?;
            (tokens.len(), rows, values, CONTENT_INPUT)
        }
    };
    let header = BundleHeader {
        layout: LAYOUT_BLOCK,
        content,
        rows: rows as u32,
        padded_rows: padded as u32,
        cols: cfg.hidden_size as u32,
        tag: model_tag(&model),
    };
    let slots = n / 2;
    let chunk_values = ChunkedMatrix::slot_values(&values, padded, cfg.hidden_size, slots)
        .map_err(|e| e.to_string())?;
    drop((values, model));
    let chunk_views: Vec<&[f64]> = chunk_values.iter().map(Vec::as_slice).collect();
    let mut seed = Zeroizing::new([0u8; 32]);
    OsRng
        .try_fill_bytes(&mut seed[..])
        .map_err(|e| format!("operating-system randomness: {e}"))?;
    let mut rng = ChaCha20Rng::from_seed(*seed);
    let delta = params.default_scale();
    let mut files = FileSet::new(std::slice::from_ref(&args.out), args.force)?;
    let mut sink = StreamSink::new(Path::new("."), Some(&args.out), &mut files, 1);
    client::stream_encrypt_bundle_chunks(
        &cp,
        &sk,
        &header,
        &chunk_views,
        slots,
        level,
        delta,
        &mut sink,
        &mut rng,
    )
    .map_err(|e| e.0)?;
    let written = sink.bytes;
    files.commit()?;
    let what = if content == CONTENT_TOKEN {
        format!("the token at position {}", rows - 1)
    } else {
        format!("{rows} tokens")
    };
    let seconds = started.elapsed().as_secs_f64();
    let heap = ensi_cli::heap::peak();
    eprintln!(
        "ensi encrypt: {what} ({padded} rows) at level {level}, {} ({:.1} MB), {seconds:.2} s, \
         peak heap {}",
        args.out.display(),
        written as f64 / 1e6,
        heap.map_or("unknown".into(), |b| format!(
            "{:.2} MiB",
            ensi_cli::heap::mib(b)
        ))
    );
    if args.report_memory {
        println!(
            "{}",
            json!({
                "command": "encrypt",
                "rows": rows,
                "padded_rows": padded,
                "level": level,
                "bytes_written": written,
                "seconds": seconds,
                "peak_heap_bytes": heap,
                "peak_resident_bytes": crate::keygen::peak_rss(),
            })
        );
    }
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
    /// The key/value cache of the earlier positions (`--cache-out` of the previous call):
    /// required for a new token's query.
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
    /// Write the key/value cache (for a prompt: keep it for generation rounds; for a new
    /// token: the cache with its position added; may name the `--cache` file to update it).
    #[arg(long, value_name = "FILE")]
    cache_out: Option<PathBuf>,
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
    /// Let the planner choose every polynomial's degree per layer (sigmoid, activation, each
    /// norm's inverse square root): the smallest of 15/31/63/127 whose error on its calibrated
    /// interval is at most 2^-BITS and with which the level plan holds (overrides
    /// --sigmoid-degree and --act-degree). Long prompts widen the intervals; this keeps the
    /// precision where the fixed degrees lose it.
    #[arg(long, value_name = "BITS")]
    plan_degrees: Option<f64>,
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

/// Reads the cache `path` for a round at `position` with `n_pad` rows: `position` filled
/// positions of the model's head-layout width, one key and one value per layer.
fn read_cache(
    ctx: &Arc<CkksContext>,
    path: &Path,
    model: &Model,
    position: usize,
    n_pad: usize,
    level: usize,
) -> Result<KvCache, String> {
    let b = read_bundle(ctx, path, model, &[CONTENT_CACHE])?;
    let cols = head_layout_cols(model.config()).map_err(|e| e.to_string())?;
    // Every ciphertext as the layers leave it: degree 1, full slots, one level below the
    // bootstrapper's output, at the default scale.
    let delta = ctx.params().default_scale();
    if let Some(i) = b.cts.iter().position(|ct| {
        ct.degree() != 1
            || ct.slots() != ctx.n() / 2
            || ct.level() != level
            || (ct.scale() / delta - 1.0).abs() > 1e-9
    }) {
        return Err(format!(
            "{}: ciphertext {i} is not a cache entry (degree 1, full slots, level {level}, the \
             default scale)",
            path.display()
        ));
    }
    if b.rows as usize != position || b.padded_rows as usize != n_pad || b.cols as usize != cols {
        return Err(format!(
            "{}: a cache of {} positions ({} rows) where the query needs {position} positions \
             ({n_pad} rows): the query and the cache belong to different rounds",
            path.display(),
            b.rows,
            b.padded_rows
        ));
    }
    // Per layer: the key's chunks, then the value's.
    let chunks = ChunkedMatrix::chunk_count(ctx.n() / 2, n_pad, cols);
    let mut layers = Vec::new();
    let mut cts = b.cts.into_iter();
    let mut take = || -> Result<Option<ChunkedMatrix>, String> {
        let part: Vec<_> = cts.by_ref().take(chunks).collect();
        if part.len() < chunks {
            return Ok(None);
        }
        ChunkedMatrix::from_ciphertexts(part, n_pad, cols)
            .map(Some)
            .map_err(|e| e.to_string())
    };
    while let (Some(k), Some(v)) = (take()?, take()?) {
        layers.push(LayerCache { k, v });
    }
    KvCache::new(layers, position).map_err(|e| format!("{}: {e}", path.display()))
}

/// The ciphertexts of an activation's chunks, in order, as this protocol's bundles hold them
/// (taken, not copied: a cache's ciphertexts are most of the server's memory).
fn chunk_cts(x: ChunkedMatrix) -> impl Iterator<Item = ensi_ckks::Ciphertext> {
    x.into_parts().into_iter().map(|p| p.into_ciphertext())
}

fn infer(args: &InferArgs) -> Result<(), String> {
    let started = Instant::now();
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let ctx = load_context(&args.eval_keys, args.allow_insecure)?;
    let model = load_model(args.checkpoint.as_deref())?;
    let cfg = model.config().clone();
    let query = read_bundle(&ctx, &args.input, &model, &[CONTENT_INPUT, CONTENT_TOKEN])?;
    let (n, n_pad) = (query.rows as usize, query.padded_rows as usize);
    let round = query.content == CONTENT_TOKEN;
    if query.cols as usize != cfg.hidden_size {
        return Err(format!(
            "{}: not {} columns wide",
            args.input.display(),
            cfg.hidden_size
        ));
    }
    // Sizes before anything is computed for them.
    if n > cfg.max_position_embeddings {
        return Err(format!(
            "{}: {n} tokens, more than the model's {} positions",
            args.input.display(),
            cfg.max_position_embeddings
        ));
    }
    fits(ctx.n(), n_pad)?;
    // Every output checked before the work: no two paths the same (the cache may be updated
    // in place), none existing without --force.
    let same = |a: &Path, b: &Path| a == b;
    let clash = same(&args.out, &args.input)
        || args.cache.as_deref().is_some_and(|c| same(&args.out, c))
        || args
            .cache_out
            .as_deref()
            .is_some_and(|c| same(&args.out, c) || same(&args.input, c));
    if clash {
        return Err(
            "--out, --in, --cache and --cache-out must name different files (only --cache-out \
             may name the --cache file, to update it)"
                .into(),
        );
    }
    if args.out.exists() && !args.force {
        return Err(format!("{} exists (use --force)", args.out.display()));
    }
    if let Some(out) = &args.cache_out {
        let replaces_input = args.cache.as_deref() == Some(out.as_path());
        if out.exists() && !args.force && !replaces_input {
            return Err(format!("{} exists (use --force)", out.display()));
        }
    }
    let (literal, level) = bootstrap_of(ctx.params())?;
    let cache = match (&args.cache, round) {
        (Some(path), true) => Some(read_cache(&ctx, path, &model, n - 1, n_pad, level - 1)?),
        (None, true) => {
            return Err(format!(
                "{}: a new token's query needs --cache (the previous call's --cache-out)",
                args.input.display()
            ));
        }
        (Some(_), false) => {
            return Err(
                "--cache is for a new token's query; a prompt starts a new cache (--cache-out)"
                    .into(),
            );
        }
        (None, false) => None,
    };
    if round && args.cache_out.is_none() {
        return Err("a round needs --cache-out to keep the cache with its new position".into());
    }
    let (mut plan, calibration_source) = calibration::plan_for(
        &model,
        args.checkpoint.as_deref(),
        n,
        false,
        args.sigmoid_degree,
        args.act_degree,
    )?;
    if let Some(bits) = args.plan_degrees {
        if !(bits.is_finite() && bits > 0.0 && bits <= 52.0) {
            return Err(format!("--plan-degrees {bits}: give bits between 0 and 52"));
        }
        let slots = ctx.n() / 2;
        let fits = |p: &ensi_nn::decoder::LayerPlan| {
            ensi_nn::block_layer::block_level_plan_at(level, slots, level, &cfg, p, n_pad).is_ok()
        };
        for (i, layer) in plan.layers.iter_mut().enumerate() {
            *layer = ensi_nn::plan::plan_degrees(
                &cfg,
                layer,
                n,
                (-bits).exp2(),
                &[15, 31, 63, 127],
                &fits,
            )
            .ok_or(format!(
                "--plan-degrees: no polynomial degrees of layer {i} fit the level plan"
            ))?;
        }
        let l = &plan.layers[0];
        eprintln!(
            "ensi infer: planned degrees (layer 0): sigmoid {}, activation {}, norms {:?}",
            l.sigmoid_degree,
            l.act_degree,
            l.norms.iter().map(|p| p.degree).collect::<Vec<_>>()
        );
    }
    // Degrees the levels cannot hold are an error before any work.
    for (i, layer) in plan.layers.iter().enumerate() {
        ensi_nn::block_layer::block_level_plan_at(level, ctx.n() / 2, level, &cfg, layer, n_pad)
            .map_err(|e| {
                format!("layer {i}: the level plan does not hold for these degrees: {e}")
            })?;
    }
    let server_head = args.lm_head == HeadSide::Server;
    // The keys: every rotation the layers need must be there.
    let trim = crate::keycache::Trim::of(&ctx, &literal)?;
    let (set, count, bytes) = load_evaluation_keys(&ctx, &args.eval_keys, Some(&trim))?;
    let have = set.galois_elements();
    let slots = ctx.n() / 2;
    let mut needed = block_rotations(&cfg, n_pad, slots, server_head).map_err(err)?;
    // A prompt that starts a cache is checked for the rounds' keys too: better now than at the
    // first round.
    let generation = round || args.cache_out.is_some();
    if generation {
        needed.extend(step_rotations(n_pad));
    }
    needed.sort_unstable();
    needed.dedup();
    let missing = needed
        .into_iter()
        .filter(|&r| !have.contains(&ctx.rotation_galois_element(r)))
        .count();
    if missing > 0 {
        return Err(format!(
            "the evaluation keys lack {missing} rotations the layers need for {n_pad} (padded) \
             tokens: make them with `ensi keygen --bootstrap --tokens {n_pad}{}`",
            if generation { " --generation" } else { "" }
        ));
    }
    let keys = BootstrapKeys::from_set(set).map_err(err)?;
    let bts = Bootstrapper::new(&ctx, literal, keys).map_err(err)?;
    let setup_s = started.elapsed().as_secs_f64();
    // One ciphertext per column chunk, in order.
    let x = ChunkedMatrix::from_ciphertexts(query.cts, n_pad, cfg.hidden_size).map_err(err)?;
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
    let none = &mut |_: usize, _: &ChunkedMatrix| {};
    let (hidden, cache) = match (cache, &args.cache_out) {
        (Some(mut cache), _) => {
            let h = block_step(&bts, &model, &x, &plan, &mut cache, &mut progress, none)
                .map_err(err)?;
            (h, Some(cache))
        }
        (None, Some(_)) => {
            let (h, c) =
                block_prefill(&bts, &model, &x, &plan, n, &mut progress, none).map_err(err)?;
            (h, Some(c))
        }
        (None, None) => (
            block_forward(&bts, &model, &x, &plan, n, &mut progress, none).map_err(err)?,
            None,
        ),
    };
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
    let tag = model_tag(&model);
    let answer = CiphertextBundle {
        layout: LAYOUT_BLOCK,
        content,
        rows: n as u32,
        padded_rows: n_pad as u32,
        cols: out.cols() as u32,
        tag,
        cts: chunk_cts(out).collect(),
    };
    // The answer first: if the cache cannot be written, the old one still matches the query
    // and the round can be repeated.
    write_atomic(
        &args.out,
        &answer.to_bytes().map_err(err)?,
        false,
        args.force,
    )?;
    let cache_positions = cache.as_ref().map(KvCache::len);
    if let (Some(path), Some(cache)) = (&args.cache_out, cache) {
        let (len, capacity) = (cache.len(), cache.capacity());
        let layers = cache.into_layers();
        let state = CiphertextBundle {
            layout: LAYOUT_BLOCK,
            content: CONTENT_CACHE,
            rows: len as u32,
            padded_rows: capacity as u32,
            cols: layers[0].k.cols() as u32,
            tag,
            cts: layers
                .into_iter()
                .flat_map(|l| chunk_cts(l.k).chain(chunk_cts(l.v)))
                .collect(),
        };
        write_atomic(path, &state.to_bytes().map_err(err)?, false, true)?;
        eprintln!(
            "ensi infer: cache of {len} positions (capacity {capacity}) in {}",
            path.display()
        );
    }
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
                "query": if round { "new token" } else { "prompt" },
                "cache_positions": cache_positions,
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
    /// Also report the peak heap (counted by the allocator) and the time on standard error.
    #[arg(long)]
    report_memory: bool,
}

fn decrypt(args: &DecryptArgs) -> Result<(), String> {
    let started = Instant::now();
    // The constrained client: the parameter set and the small secret; the answer's ciphertext
    // is decrypted over its own few primes only.
    let params = load_params(&args.keys, args.allow_insecure)?;
    let cp = ClientParams::new(&params).map_err(|e| e.to_string())?;
    let sk = load_small_secret(&cp, &args.keys)?;
    let model = load_model(args.checkpoint.as_deref())?;
    let cfg = model.config();
    let bytes = read(&args.input)?;
    let at = |e: ensi_ckks::CkksError| format!("{}: {e}", args.input.display());
    let (answer, cts) = split_bundle(&bytes, cp.id()).map_err(at)?;
    check_bundle(
        &answer,
        cts.len(),
        cp.n() / 2,
        &args.input,
        &model,
        &[CONTENT_HIDDEN, CONTENT_LOGITS],
    )?;
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
    // One ciphertext per column chunk, each decrypted over its own few primes.
    let chunk_slots = cts
        .iter()
        .map(|ct| {
            let slots = client::decrypt_ciphertext(&cp, &sk, ct).map_err(at)?;
            Ok(slots.iter().map(|z| z.re).collect::<Vec<f64>>())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let values = ChunkedMatrix::from_slot_values(&chunk_slots, n_pad, cols).map_err(|e| {
        format!(
            "{}: {n_pad} x {cols} in {} ciphertexts: {e}",
            args.input.display(),
            cts.len()
        )
    })?;
    let last = &values[(n - 1) * cols..n * cols];
    let logits: Vec<f64> = if answer.content == CONTENT_HIDDEN {
        head_of_normalized(&model, last)
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
    if n < n_pad {
        eprintln!(
            "ensi decrypt: if the server kept a cache (ensi infer --cache-out), the next round \
             is: ensi encrypt --next-token {} --position {n} --capacity {n_pad}",
            top[0].0
        );
    }
    if args.report_memory {
        eprintln!(
            "ensi decrypt: {:.3} s, peak heap {}",
            started.elapsed().as_secs_f64(),
            ensi_cli::heap::peak().map_or("unknown".into(), |b| format!(
                "{:.2} MiB",
                ensi_cli::heap::mib(b)
            ))
        );
    }
    if args.json {
        println!(
            "{}",
            json!({
                "next_token": top[0].0,
                "next_position": n,
                "capacity": n_pad,
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
