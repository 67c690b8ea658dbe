//! The client and the server as separate processes with only files between them, on the
//! embedded model at the INSECURE `insecure-run` set: `ensi keygen` (client), `ensi encrypt`
//! (client), `ensi infer` (server, with a key directory that holds no secret key), `ensi
//! decrypt` (client). The decrypted next token and logits must match the plaintext reference;
//! bad inputs are refused and leave nothing behind. About a minute; run in release mode:
//! `cargo test --release -p ensi-cli --test roles -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ensi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ensi"))
        .args(args)
        .output()
        .expect("run ensi")
}

fn ok(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The client's key directory (insecure-run set, bootstrapping keys and the rotations of 8
/// padded tokens, plus `extra` keygen arguments) and the server's: every public file, never
/// the secret key.
fn client_and_server(root: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    client_and_server_for(root, "8", extra)
}

/// [`client_and_server`] with the rotations of `tokens` padded tokens.
fn client_and_server_for(root: &Path, tokens: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let (client, server) = (root.join("client"), root.join("server"));
    let mut args = vec![
        "keygen",
        "--out",
        s(&client),
        "--params",
        "insecure-run",
        "--bootstrap",
        "--rotations",
        "none",
        "--tokens",
        tokens,
    ];
    args.extend_from_slice(extra);
    ok(&ensi(&args));
    std::fs::create_dir_all(&server).unwrap();
    for entry in std::fs::read_dir(&client).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name != "secret.key" {
            std::fs::copy(entry.path(), server.join(&name)).unwrap();
        }
    }
    assert!(!server.join("secret.key").exists());
    (client, server)
}

#[test]
#[ignore = "heavy: run in release mode with --ignored"]
fn client_and_server_run_as_separate_processes_with_files_between_them() {
    let root: PathBuf = std::env::temp_dir().join(format!("ensi-roles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (client, server) = client_and_server(&root, &["--seed", "3"]);
    let (query, answer, logits) = (
        root.join("query.bin"),
        root.join("answer.bin"),
        root.join("logits.bin"),
    );
    ok(&ensi(&[
        "encrypt",
        "--keys",
        s(&client),
        "--prompt",
        "Hello",
        "--out",
        s(&query),
        "--allow-insecure",
    ]));
    // What the query is, without the secret key.
    let seen = ok(&ensi(&[
        "inspect",
        s(&query),
        "--params",
        s(&server.join("params.bin")),
        "--json",
    ]));
    assert_eq!(seen["content"], "a prompt (ensi encrypt)");
    assert_eq!(
        (seen["rows"].as_u64(), seen["padded_rows"].as_u64()),
        (Some(5), Some(8))
    );
    let summary = ok(&ensi(&[
        "infer",
        "--eval-keys",
        s(&server),
        "--in",
        s(&query),
        "--out",
        s(&answer),
        "--json",
        "--allow-insecure",
    ]));
    assert_eq!(summary["ops"]["bootstrap"], 12);
    let got = ok(&ensi(&[
        "decrypt",
        "--keys",
        s(&client),
        "--in",
        s(&answer),
        "--json",
        "--allow-insecure",
    ]));
    // The plaintext reference (sigmoid attention, activation quantization off).
    let reference = ok(&ensi(&[
        "reference",
        "--tokens",
        "72,101,108,108,111",
        "--attention",
        "sigmoid",
        "--act-quant",
        "off",
        "--json",
    ]));
    eprintln!(
        "encrypted {} / reference {}",
        got["next_token"], reference["next_token"]
    );
    assert_eq!(got["next_token"], reference["next_token"]);
    let expect: Vec<f64> = reference["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let have: Vec<f64> = got["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let max = expect.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = expect
        .iter()
        .zip(&have)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("largest logit error {:.3}%", 100.0 * err / max);
    assert!(err <= 0.01 * max);
    // The LM head on the server: logits in the answer.
    ok(&ensi(&[
        "infer",
        "--eval-keys",
        s(&server),
        "--in",
        s(&query),
        "--out",
        s(&logits),
        "--lm-head",
        "server",
        "--allow-insecure",
    ]));
    let got2 = ok(&ensi(&[
        "decrypt",
        "--keys",
        s(&client),
        "--in",
        s(&logits),
        "--json",
        "--allow-insecure",
    ]));
    assert_eq!(got2["next_token"], reference["next_token"]);
    // Bad inputs: a truncated query, a query given as an answer, an answer given as a query;
    // each refused with a reason, and no output file appears.
    let bytes = std::fs::read(&query).unwrap();
    let cut = root.join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let never = root.join("never.bin");
    for (args, what) in [
        (
            vec![
                "infer",
                "--eval-keys",
                s(&server),
                "--in",
                s(&cut),
                "--out",
                s(&never),
                "--allow-insecure",
            ],
            "truncated",
        ),
        (
            vec![
                "infer",
                "--eval-keys",
                s(&server),
                "--in",
                s(&answer),
                "--out",
                s(&never),
                "--allow-insecure",
            ],
            "content",
        ),
        (
            vec![
                "decrypt",
                "--keys",
                s(&client),
                "--in",
                s(&query),
                "--allow-insecure",
            ],
            "content",
        ),
    ] {
        let out = ensi(&args);
        assert!(!out.status.success(), "{what}");
        let msg = String::from_utf8_lossy(&out.stderr);
        assert_eq!(msg.trim().lines().count(), 1, "{what}: {msg}");
        assert!(!never.exists(), "{what}");
    }
    // A query made for another model (its fingerprint changed): refused before any work.
    let mut other = bytes.clone();
    // Header (16 bytes), layout, content, rows, padded rows, cols (14 bytes), then the tag.
    other[16 + 14] ^= 1;
    let other_model = root.join("other-model.bin");
    std::fs::write(&other_model, &other).unwrap();
    let out = ensi(&[
        "infer",
        "--eval-keys",
        s(&server),
        "--in",
        s(&other_model),
        "--out",
        s(&never),
        "--allow-insecure",
    ]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && msg.contains("another model"),
        "{msg}"
    );
    assert!(!never.exists());
    // An existing answer is not replaced without --force, and keeps its content.
    let before = std::fs::read(&answer).unwrap();
    let out = ensi(&[
        "infer",
        "--eval-keys",
        s(&server),
        "--in",
        s(&query),
        "--out",
        s(&answer),
        "--allow-insecure",
    ]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && msg.contains("--force"), "{msg}");
    assert_eq!(std::fs::read(&answer).unwrap(), before);
    let _ = std::fs::remove_dir_all(&root);
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Generation through the roles: the prompt "Hello" with 4 new tokens (cache capacity 8), the
/// server keeping the encrypted key/value cache in a file between rounds and never holding the
/// secret key. Every token must be the plaintext references' (recomputing and cached), every
/// round's logits within 1 % of the cached reference's; a stale cache is refused and left as
/// it was. Run in release mode with `--ignored`.
#[test]
#[ignore = "heavy: run in release mode with --ignored"]
fn generation_rounds_keep_the_encrypted_cache_in_a_file() {
    let root: PathBuf = std::env::temp_dir().join(format!("ensi-gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (client, server) = client_and_server(&root, &["--generation", "--seed", "4"]);
    let reference = ok(&ensi(&[
        "reference",
        "--tokens",
        "72,101,108,108,111",
        "--attention",
        "sigmoid",
        "--act-quant",
        "off",
        "--generate",
        "4",
        "--json",
    ]));
    let (query, answer, cache) = (
        root.join("query.bin"),
        root.join("answer.bin"),
        root.join("cache.bin"),
    );
    let infer = |extra: &[&str]| {
        let mut args = vec![
            "infer",
            "--eval-keys",
            s(&server),
            "--in",
            s(&query),
            "--out",
            s(&answer),
            "--cache-out",
            s(&cache),
            "--force",
            "--allow-insecure",
            "--json",
        ];
        args.extend_from_slice(extra);
        ensi(&args)
    };
    let decrypt = || {
        ok(&ensi(&[
            "decrypt",
            "--keys",
            s(&client),
            "--in",
            s(&answer),
            "--json",
            "--allow-insecure",
        ]))
    };
    ok(&ensi(&[
        "encrypt",
        "--keys",
        s(&client),
        "--prompt",
        "Hello",
        "--max-new-tokens",
        "4",
        "--out",
        s(&query),
        "--allow-insecure",
    ]));
    let summary = ok(&infer(&[]));
    assert_eq!(summary["cache_positions"], 5);
    let mut got = decrypt();
    let mut tokens = Vec::new();
    let mut stale: Option<Vec<u8>> = None;
    for round in 0..4 {
        let expect = floats(&reference["cached_logits"][round]);
        let have = floats(&got["logits"]);
        let max = expect.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = expect
            .iter()
            .zip(&have)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        eprintln!(
            "token {}: {} (references {} / {}), logit error {:.3}%",
            round + 1,
            got["next_token"],
            reference["generated"][round],
            reference["generated_cached"][round],
            100.0 * err / max
        );
        assert!(err <= 0.01 * max, "{err} of {max}");
        tokens.push(got["next_token"].as_u64().unwrap());
        if round == 3 {
            break;
        }
        assert_eq!(got["capacity"], 8);
        let (token, position) = (
            got["next_token"].to_string(),
            got["next_position"].to_string(),
        );
        if round == 1 {
            // The query of the last round again, against the cache that already holds it.
            stale = Some(std::fs::read(&cache).unwrap());
            let out = infer(&["--cache", s(&cache)]);
            assert!(!out.status.success());
            let msg = String::from_utf8_lossy(&out.stderr);
            assert!(msg.contains("different rounds"), "{msg}");
            assert_eq!(msg.trim().lines().count(), 1, "{msg}");
            assert_eq!(std::fs::read(&cache).unwrap(), stale.clone().unwrap());
        }
        ok(&ensi(&[
            "encrypt",
            "--keys",
            s(&client),
            "--next-token",
            &token,
            "--position",
            &position,
            "--capacity",
            "8",
            "--out",
            s(&query),
            "--force",
            "--allow-insecure",
        ]));
        let summary = ok(&infer(&["--cache", s(&cache)]));
        assert_eq!(
            summary["cache_positions"].as_u64().unwrap(),
            position.parse::<u64>().unwrap() + 1
        );
        got = decrypt();
    }
    assert!(stale.is_some());
    // The answer and the cache cannot be the same file.
    let out = ensi(&[
        "infer",
        "--eval-keys",
        s(&server),
        "--in",
        s(&query),
        "--out",
        s(&cache),
        "--cache",
        s(&cache),
        "--cache-out",
        s(&cache),
        "--force",
        "--allow-insecure",
    ]);
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && msg.contains("different files"),
        "{msg}"
    );
    let expect: Vec<u64> = reference["generated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(tokens, expect);
    assert_eq!(reference["generated"], reference["generated_cached"]);
    // A round without the cache is refused before any work.
    let out = ensi(&[
        "infer",
        "--eval-keys",
        s(&server),
        "--in",
        s(&query),
        "--out",
        s(&root.join("never.bin")),
        "--allow-insecure",
    ]);
    assert!(!out.status.success());
    assert!(!root.join("never.bin").exists());
    let _ = std::fs::remove_dir_all(&root);
}

/// A prompt wider than one ciphertext: 50 tokens (64 padded rows) on the insecure-run ring put
/// the hidden state in two column chunks (64 columns each) and the FFN in five, so the query,
/// the answer and the key/value cache hold one ciphertext per chunk, in order. The decrypted
/// next token must be the plaintext reference's and the logits within 2.5 % of it with the
/// planner's degrees (see the bound), and a generation round from the chunked cache must give
/// the reference's next token.
/// Run in release mode with `--ignored`.
#[test]
#[ignore = "heavy: run in release mode with --ignored"]
fn a_prompt_wider_than_one_ciphertext_travels_in_column_chunks() {
    let root: PathBuf = std::env::temp_dir().join(format!("ensi-wide-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (client, server) = client_and_server_for(&root, "64", &["--generation", "--seed", "6"]);
    let prompt: Vec<u32> = b"the quick brown fox jumps over the lazy dog, twice"
        .iter()
        .map(|&b| u32::from(b))
        .collect();
    let ids = |extra: Option<u32>| {
        prompt
            .iter()
            .copied()
            .chain(extra)
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let reference = |tokens: &str| {
        ok(&ensi(&[
            "reference",
            "--tokens",
            tokens,
            "--attention",
            "sigmoid",
            "--act-quant",
            "off",
            "--json",
        ]))
    };
    let (query, answer, cache) = (
        root.join("query.bin"),
        root.join("answer.bin"),
        root.join("cache.bin"),
    );
    let prompt_ids = ids(None);
    ok(&ensi(&[
        "encrypt",
        "--keys",
        s(&client),
        "--tokens",
        &prompt_ids,
        "--out",
        s(&query),
        "--allow-insecure",
    ]));
    let seen = ok(&ensi(&[
        "inspect",
        s(&query),
        "--params",
        s(&server.join("params.bin")),
        "--json",
    ]));
    assert_eq!(
        (seen["padded_rows"].as_u64(), seen["ciphertexts"].as_u64()),
        (Some(64), Some(2))
    );
    let infer = |input: &Path, extra: &[&str]| {
        let mut args = vec![
            "infer",
            "--eval-keys",
            s(&server),
            "--in",
            s(input),
            "--out",
            s(&answer),
            "--force",
            "--allow-insecure",
            "--json",
        ];
        args.extend_from_slice(extra);
        ok(&ensi(&args))
    };
    let decrypt = || {
        ok(&ensi(&[
            "decrypt",
            "--keys",
            s(&client),
            "--in",
            s(&answer),
            "--json",
            "--allow-insecure",
        ]))
    };
    infer(&query, &["--cache-out", s(&cache), "--plan-degrees", "20"]);
    let seen = ok(&ensi(&[
        "inspect",
        s(&cache),
        "--params",
        s(&server.join("params.bin")),
        "--json",
    ]));
    // Two layers, a key and a value each, over two chunks of the head layout's 128 columns.
    assert_eq!(seen["ciphertexts"].as_u64(), Some(8));
    let got = decrypt();
    let want = reference(&prompt_ids);
    assert_eq!(got["next_token"], want["next_token"]);
    let (expect, have) = (floats(&want["logits"]), floats(&got["logits"]));
    let max = expect.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = expect
        .iter()
        .zip(&have)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!(
        "50 tokens in two chunks: largest logit error {:.3}%",
        100.0 * err / max
    );
    // Measured 1.6 % with the planner's degrees, 3.4 % with the fixed defaults (24 tokens, the
    // hidden state in one chunk: 2.0 %; 5 tokens: below 1 %): the calibrated intervals of the
    // norms and the sigmoid widen with the prompt, and fixed-degree polynomials lose precision
    // on them (bench/LAYERS.md, section 3). The bundles only carry the ciphertexts of the
    // layers' chunked activations.
    assert!(err <= 0.025 * max);
    // One generation round from the chunked cache.
    let next = u32::try_from(got["next_token"].as_u64().unwrap()).unwrap();
    let round = root.join("round.bin");
    ok(&ensi(&[
        "encrypt",
        "--keys",
        s(&client),
        "--next-token",
        &next.to_string(),
        "--position",
        "50",
        "--capacity",
        "64",
        "--out",
        s(&round),
        "--allow-insecure",
    ]));
    let cache2 = root.join("cache2.bin");
    infer(
        &round,
        &[
            "--cache",
            s(&cache),
            "--cache-out",
            s(&cache2),
            "--plan-degrees",
            "20",
        ],
    );
    let got = decrypt();
    let want = reference(&ids(Some(next)));
    eprintln!(
        "round: encrypted {} / reference {}",
        got["next_token"], want["next_token"]
    );
    assert_eq!(got["next_token"], want["next_token"]);
    let _ = std::fs::remove_dir_all(&root);
}
