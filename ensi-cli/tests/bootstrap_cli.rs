//! `ensi keygen --bootstrap`, then a server process that holds only the public files bootstraps a
//! ciphertext read from a file; the client decrypts it and the values match what it encrypted
//! (checked here against the JSON values file, independently of the CLI's own report). Also:
//! `ensi inspect` on every kind of file, test-key marking, and clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ensi_ckks::serialize::peek_header;
use ensi_ckks::{Ciphertext, CkksContext, DecodeOptions, Parameters, PrecisionStats, SecretKey};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ensi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ensi"))
        .args(args)
        .output()
        .expect("run ensi")
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ensi-cli-boot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_server_without_the_secret_key_bootstraps_a_ciphertext_from_a_file() {
    let client = temp_dir("client");
    let server = temp_dir("server");
    ok(&ensi(&[
        "keygen",
        "--out",
        s(&client),
        "--params",
        "insecure-bootstrap-test",
        "--bootstrap",
        "--rotations",
        "none",
        "--seed",
        "7",
    ]));
    // The server gets every file but the secret key.
    std::fs::create_dir_all(&server).unwrap();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&client).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(!name.ends_with(".tmp"), "temporary file left: {name}");
        if name != "secret.key" {
            std::fs::copy(&path, server.join(&name)).unwrap();
        }
        names.push(name);
    }
    for needed in ["dense-to-sparse.key", "sparse-to-dense.key", "relin.key"] {
        assert!(names.iter().any(|n| n == needed), "{needed} missing");
    }
    // Every file is marked as a test key (made with --seed).
    for name in &names {
        let bytes = std::fs::read(client.join(name)).unwrap();
        assert!(peek_header(&bytes).unwrap().test_key, "{name}");
    }

    let ct = client.join("query.ct");
    let values = client.join("values.json");
    ok(&ensi(&[
        "ckks",
        "encrypt",
        "--keys",
        s(&client),
        "--allow-insecure",
        "--out",
        s(&ct),
        "--values-out",
        s(&values),
    ]));
    let answer = server.join("answer.ct");
    let out = ensi(&[
        "ckks",
        "bootstrap",
        "--keys",
        s(&server),
        "--allow-insecure",
        "--in",
        s(&ct),
        "--out",
        s(&answer),
        "--json",
    ]);
    ok(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["level_in"], 0);
    assert_eq!(summary["level_out"], 2);
    assert!(summary["bootstrap_s"].as_f64().unwrap() > 0.0);
    assert!(!server.join("secret.key").exists());

    // The client decrypts with the library and compares with the values it encrypted.
    let params = Parameters::from_bytes(
        &std::fs::read(client.join("params.bin")).unwrap(),
        DecodeOptions::default().allow_insecure(true),
    )
    .unwrap();
    let ctx = CkksContext::new(params).unwrap();
    let sk =
        SecretKey::from_bytes(&ctx, &std::fs::read(client.join("secret.key")).unwrap()).unwrap();
    let out_ct = Ciphertext::from_bytes(&ctx, &std::fs::read(&answer).unwrap()).unwrap();
    let got = ctx.decode(&sk.decrypt(&ctx, &out_ct).unwrap()).unwrap();
    let expect: Vec<f64> = serde_json::from_slice(&std::fs::read(&values).unwrap()).unwrap();
    assert_eq!(expect.len(), ctx.n() / 2);
    let stats = PrecisionStats::real(&expect, &got);
    // The bound of the in-memory N = 2^12 bootstrapping test.
    assert!(stats.min_bits >= 24.0, "{stats:?}");
    // The CLI's own decrypt agrees.
    let out = ensi(&[
        "ckks",
        "decrypt",
        "--keys",
        s(&client),
        "--allow-insecure",
        "--in",
        s(&answer),
        "--expect",
        s(&values),
        "--json",
    ]);
    ok(&out);
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((d["min_bits"].as_f64().unwrap() - stats.min_bits).abs() < 1e-9);

    // A server missing a key names it, and writes nothing.
    std::fs::remove_file(server.join("dense-to-sparse.key")).unwrap();
    let again = server.join("again.ct");
    let out = ensi(&[
        "ckks",
        "bootstrap",
        "--keys",
        s(&server),
        "--allow-insecure",
        "--in",
        s(&ct),
        "--out",
        s(&again),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dense-to-sparse"));
    assert!(!again.exists());
    // Insecure parameters need the explicit flag.
    let out = ensi(&[
        "ckks",
        "bootstrap",
        "--keys",
        s(&server),
        "--in",
        s(&ct),
        "--out",
        s(&again),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-insecure"));

    inspect_every_kind(&client, &answer);
    std::fs::remove_dir_all(&client).unwrap();
    std::fs::remove_dir_all(&server).unwrap();
}

fn inspect_json(path: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["inspect", s(path), "--json"];
    args.extend_from_slice(extra);
    let out = ensi(&args);
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn inspect_every_kind(dir: &Path, answer: &Path) {
    let p = inspect_json(&dir.join("params.bin"), &[]);
    assert_eq!(p["object"], "parameter set");
    assert_eq!(p["parameters"]["named_set"], "insecure-bootstrap-test");
    assert_eq!(p["test_key"], true);
    let secrets = p["security"]["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[1]["secret"], "ephemeral sparse");
    assert_eq!(secrets[1]["hamming_weight"], 32);

    let d = inspect_json(&dir.join("dense-to-sparse.key"), &[]);
    assert_eq!(d["key"]["limbs"], 2);
    assert_eq!(d["key"]["digits"], 1);
    assert_eq!(d["key"]["span"], "Encapsulation");
    assert_eq!(d["under"], "ephemeral sparse secret");
    assert_eq!(d["hamming_weight"], 32);
    assert!(d["key"]["log_modulus"].as_f64().unwrap() < 122.0);

    let r = inspect_json(&dir.join("sparse-to-dense.key"), &[]);
    assert_eq!(r["under"], "main secret");
    assert_eq!(r["key"]["span"], "Full");

    let c = inspect_json(answer, &["--params", s(&dir.join("params.bin"))]);
    assert_eq!(c["object"], "ciphertext");
    assert_eq!(c["level"], 2);

    // The secret key: type and checks only, never its contents.
    let out = ensi(&["inspect", s(&dir.join("secret.key"))]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(&out);
    assert!(text.contains("secret: not shown"), "{text}");
    let sk_bytes = std::fs::read(dir.join("secret.key")).unwrap();
    let body_hex: String = sk_bytes[16..24]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!text.contains(&body_hex));
    assert!(text.lines().count() < 30, "{text}");

    // Not an ensi file: a clear error.
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"hello").unwrap();
    let out = ensi(&["inspect", s(&junk)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.bin"));
}

#[test]
fn bootstrap_keys_need_a_bootstrappable_set_and_plain_keygen_is_not_a_test_key() {
    let dir = temp_dir("leveled");
    let out = ensi(&[
        "keygen",
        "--out",
        s(&dir),
        "--params",
        "insecure-test",
        "--bootstrap",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not laid out for bootstrapping"));
    assert!(
        !dir.join("secret.key").exists(),
        "nothing written on refusal"
    );
    ok(&ensi(&[
        "keygen",
        "--out",
        s(&dir),
        "--params",
        "insecure-test",
        "--rotations",
        "none",
    ]));
    for name in ["params.bin", "secret.key", "public.key", "relin.key"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert!(!peek_header(&bytes).unwrap().test_key, "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
