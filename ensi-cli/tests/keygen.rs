//! `ensi keygen` and `ensi bench ckks` end to end: the written keys decode with the library and
//! evaluate correctly against a plaintext reference, the secret key is owner-only, existing
//! files are not overwritten, and the benchmark prints the shared JSON schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ensi_ckks::{
    CkksContext, DecodeOptions, EvaluationKey, EvaluationKeySet, Evaluator, Parameters,
    PrecisionStats, PublicKey, SecretKey,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::path::PathBuf;
use std::process::{Command, Output};

fn ensi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ensi"))
        .args(args)
        .output()
        .expect("run ensi")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ensi-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn keygen_writes_keys_that_decode_and_evaluate() {
    let dir = temp_dir("keygen");
    let d = dir.to_str().unwrap();
    let out = ensi(&[
        "keygen",
        "--out",
        d,
        "--params",
        "insecure-test",
        "--conjugation",
        "--seed",
        "3",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("peak resident memory"), "{stderr}");

    let params = Parameters::from_bytes(
        &std::fs::read(dir.join("params.bin")).unwrap(),
        DecodeOptions::default().allow_insecure(true),
    )
    .unwrap();
    let ctx = CkksContext::new(params).unwrap();
    let sk = SecretKey::from_bytes(&ctx, &std::fs::read(dir.join("secret.key")).unwrap()).unwrap();
    let pk = PublicKey::from_bytes(&ctx, &std::fs::read(dir.join("public.key")).unwrap()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "secret key mode {mode:o}");
    }
    // Relinearization, +-2^k rotations below N/2 and conjugation.
    let mut keys = EvaluationKeySet::new();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "relin.key" || name.starts_with("galois-") {
            keys.insert(EvaluationKey::from_bytes(&ctx, &std::fs::read(&path).unwrap()).unwrap());
            count += 1;
        }
        assert!(
            !name.ends_with(".tmp"),
            "temporary file left behind: {name}"
        );
    }
    let log_slots = ctx.params().log_n() - 1;
    // +-2^k for 2^k < N/2, where +N/4 and -N/4 are the same element, plus relin and conjugation.
    assert_eq!(count, 1 + (2 * log_slots as usize - 1) + 1);
    assert!(keys.galois(ctx.conjugation_galois_element()).is_some());

    let eval = Evaluator::new(&ctx, keys).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let slots = 16;
    let x: Vec<f64> = (0..slots).map(|i| i as f64 / 16.0 - 0.5).collect();
    let pt = ctx
        .encode(&x, slots, ctx.max_level(), ctx.params().default_scale())
        .unwrap();
    let ct = pk.encrypt(&ctx, &pt, &mut rng).unwrap();
    let r = eval
        .rotate(&eval.mul_relin_rescale(&ct, &ct).unwrap(), -4)
        .unwrap();
    let got = ctx.decode(&sk.decrypt(&ctx, &r).unwrap()).unwrap();
    let expect: Vec<f64> = (0..slots)
        .map(|i| x[(i + slots - 4) % slots].powi(2))
        .collect();
    let stats = PrecisionStats::real(&expect, &got);
    assert!(stats.min_bits > 18.0, "{stats:?}");

    // A second run refuses to overwrite, and leaves the keys as they were.
    let before = std::fs::read(dir.join("secret.key")).unwrap();
    let again = ensi(&[
        "keygen",
        "--out",
        d,
        "--params",
        "insecure-test",
        "--seed",
        "5",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read(dir.join("secret.key")).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The streamed keygen (default) and the in-memory one (`--no-stream`) write the same bytes for
/// the same seed, and `--report-memory` reports the counted heap: the streamed run's is far
/// below the in-memory run's, which holds every key.
#[test]
fn streamed_and_in_memory_keygen_write_the_same_files() {
    let a = temp_dir("streamed");
    let b = temp_dir("in-memory");
    let mut reports = Vec::new();
    for (dir, extra) in [(&a, None), (&b, Some("--no-stream"))] {
        let mut args = vec![
            "keygen",
            "--out",
            dir.to_str().unwrap(),
            "--params",
            "insecure-bootstrap-test",
            "--bootstrap",
            "--seed",
            "4",
            "--report-memory",
        ];
        args.extend(extra);
        let out = ensi(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        reports.push(report);
    }
    let mut names: Vec<_> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() > 40, "{names:?}");
    for name in &names {
        let (x, y) = (
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
        );
        assert!(x == y, "{name:?} differs");
    }
    let heap = |r: &serde_json::Value| r["peak_heap_bytes"].as_u64().unwrap();
    assert_eq!(reports[0]["streamed"], true);
    assert_eq!(
        reports[0]["bytes_written"], reports[1]["bytes_written"],
        "{reports:?}"
    );
    // The in-memory run holds every key (about 100 MB here); the streamed one a few limbs.
    assert!(heap(&reports[0]) < 4 << 20, "{reports:?}");
    assert!(heap(&reports[1]) > 20 * heap(&reports[0]), "{reports:?}");
    // The client's encryption reports its heap too.
    let q = a.join("query.ct");
    let out = ensi(&[
        "encrypt",
        "--keys",
        a.to_str().unwrap(),
        "--allow-insecure",
        "--prompt",
        "Hi",
        "--out",
        q.to_str().unwrap(),
        "--report-memory",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(heap(&report) < 4 << 20, "{report}");
    // The streamed query decodes with the library and holds the embedded model's embedding of
    // "Hi" in the column-block layout (the plaintext model as the reference).
    let params = Parameters::from_bytes(
        &std::fs::read(a.join("params.bin")).unwrap(),
        DecodeOptions::default().allow_insecure(true),
    )
    .unwrap();
    let ctx = CkksContext::new(params).unwrap();
    let sk = SecretKey::from_bytes(&ctx, &std::fs::read(a.join("secret.key")).unwrap()).unwrap();
    let bundle =
        ensi_ckks::serialize::CiphertextBundle::from_bytes(&ctx, &std::fs::read(&q).unwrap())
            .unwrap();
    assert_eq!((bundle.rows, bundle.padded_rows), (2, 2));
    let slots = ctx
        .decode(&sk.decrypt(&ctx, &bundle.cts[0]).unwrap())
        .unwrap();
    let model = ensi_bitnet::embedded::embedded_model().unwrap();
    let cols = model.config().hidden_size;
    let got = ensi_nn::block::BlockMatrix::from_slot_values(&slots, 2, cols);
    let want = ensi_nn::decoder::embed(&model, &[u32::from(b'H'), u32::from(b'i')]).unwrap();
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-6, "query off by {worst}");
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn bench_smoke_prints_the_shared_schema() {
    let out = ensi(&["bench", "ckks", "--smoke"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["impl"], "ensi");
    assert_eq!(v["params"]["log_n"], 12);
    for op in [
        "encode",
        "encrypt",
        "decrypt",
        "add",
        "mul_plain",
        "mul_relin",
        "rescale",
        "rotate",
        "hoisted_rotate",
        "keygen",
    ] {
        assert!(v["ops"][op]["median_us"].as_f64().unwrap() > 0.0, "{op}");
    }
    // The results were checked against the inputs inside the run.
    for check in ["fresh", "mul_rescale", "rotate", "hoisted_rotate"] {
        assert!(
            v["meta"]["checks_max_abs_err"][check].as_f64().unwrap() < 1e-6,
            "{check}"
        );
    }
    // Bad arguments: a clear error, no panic.
    let bad = ensi(&["bench", "ckks", "--ops", "nonsense"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown operation"));
    let insecure = ensi(&["bench", "ckks", "--log-n", "12", "--levels", "5"]);
    assert!(!insecure.status.success());
    assert!(String::from_utf8_lossy(&insecure.stderr).contains("--insecure"));
}
