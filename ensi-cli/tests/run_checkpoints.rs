//! `ensi run` on checkpoints in the two real layouts (bitnet-b1.58-2B-4T packed ternary with
//! GQA and ReLU^2; 1bitLLM latent weights with SiLU and its own LM head), written by
//! `ensi synth` with random weights at hidden 256, 2 layers: the decrypted logits must agree
//! with the plaintext reference (same top-1, within 1% of the largest logit), in the
//! column-block layout at the INSECURE demo set, with the calibration `ensi calibrate` saved
//! beside the checkpoint. About two minutes; run in release mode:
//! `cargo test --release -p ensi-cli --test run_checkpoints -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn ensi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ensi"))
        .args(args)
        .output()
        .expect("run ensi")
}

fn check(family: &str, lm_head: &str) {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("ensi-run-ck-{family}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let out = ensi(&["synth", "--out", d, "--family", family, "--hidden", "256"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The calibration saved beside the model, which the run then loads.
    let out = ensi(&["calibrate", "--checkpoint", d, "--max-tokens", "8"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ensi(&[
        "run",
        "--insecure-small",
        "--checkpoint",
        d,
        "--prompt",
        "Hello",
        "--lm-head",
        lm_head,
        "--json",
        "--seed",
        "7",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "{family}: max rel error {}, top-1 {}, layers {:?}",
        v["max_rel_logit_error"], v["top1_agrees"], v["layers"]
    );
    assert_eq!(v["layout"], "block");
    let calibration = v["calibration"].as_str().unwrap_or_default();
    assert!(calibration.ends_with("calibration.json"), "{calibration}");
    assert_eq!(v["top1_agrees"], true);
    assert!(v["max_rel_logit_error"].as_f64().unwrap() <= 0.01);
    assert_eq!(v["ops"]["bootstrap"], 12);
}

#[test]
#[ignore = "heavy: run in release mode with --ignored"]
fn ensi_run_on_a_2b4t_layout_checkpoint_matches_the_reference() {
    check("bitnet", "server");
}

#[test]
#[ignore = "heavy: run in release mode with --ignored"]
fn ensi_run_on_a_1bitllm_layout_checkpoint_matches_the_reference() {
    check("llama1bit", "client");
}

/// `ensi run --keys DIR`: the first run generates and saves the keys (the secret key
/// owner-only), the second loads them and gives the same logits, and so does a third in low
/// memory; a directory of keys for another parameter set is refused with a reason.
#[test]
#[ignore = "heavy: run in release mode with --ignored"]
fn ensi_run_caches_its_keys_in_a_directory() {
    let dir: PathBuf = std::env::temp_dir().join(format!("ensi-run-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--insecure-small", "--keys", d, "--json"];
        args.extend_from_slice(extra);
        let out = ensi(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run(&[]);
    assert!(
        first["keys"]
            .as_str()
            .unwrap()
            .starts_with("generated and saved")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "secret.key must be owner-only: {mode:o}");
    }
    let second = run(&[]);
    assert!(second["keys"].as_str().unwrap().starts_with("loaded from"));
    assert_eq!(first["next_token"], second["next_token"]);
    let (a, b) = (
        first["max_abs_logit_error"].as_f64().unwrap(),
        second["max_abs_logit_error"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-3, "{a} {b}");
    // Low memory, loading the same keys (compacted and cut as they are decoded): the same
    // token and logits within the same tolerance.
    let low = run(&["--low-memory"]);
    assert!(low["keys"].as_str().unwrap().starts_with("loaded from"));
    assert_eq!(first["next_token"], low["next_token"]);
    let c = low["max_abs_logit_error"].as_f64().unwrap();
    assert!((a - c).abs() < 1e-3, "{a} {c}");
    let _ = std::fs::remove_dir_all(&dir);
    // Keys of another set.
    let other = ensi(&[
        "keygen",
        "--out",
        d,
        "--params",
        "insecure-test",
        "--seed",
        "1",
    ]);
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    let out = ensi(&["run", "--insecure-small", "--keys", d]);
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("another parameter set"), "{msg}");
    let _ = std::fs::remove_dir_all(&dir);
}
