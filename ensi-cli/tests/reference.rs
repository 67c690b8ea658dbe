//! `ensi reference` end to end: the binary's JSON output against the library's result, and
//! clean errors (non-zero exit, a message, no panic) on bad arguments and files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use ensi_bitnet::{AttentionKind, ForwardOptions, Model, embedded_model, save_checkpoint};

fn ensi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ensi"))
        .args(args)
        .output()
        .expect("run ensi")
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn check_against_library(
    v: &serde_json::Value,
    model: &Model,
    tokens: &[u32],
    options: ForwardOptions,
    f64_precision: bool,
) {
    let logits: Vec<f64> = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    if f64_precision {
        let t = model.forward::<f64>(tokens, &options).unwrap();
        assert_eq!(logits, t.last_logits());
        assert_eq!(v["next_token"], t.next_token());
    } else {
        let t = model.forward::<f32>(tokens, &options).unwrap();
        // f32 -> JSON f64 -> f32 is exact.
        let back: Vec<f32> = logits.iter().map(|&x| x as f32).collect();
        assert_eq!(back, t.last_logits());
        assert_eq!(v["next_token"], t.next_token());
    }
    assert_eq!(v["position"], tokens.len() - 1);
    assert_eq!(v["tokens"], serde_json::json!(tokens));
    assert_eq!(v["act_quant"], options.act_quant);
    assert_eq!(v["attention"], options.attention.name());
}

#[test]
fn embedded_model_json_matches_the_library() {
    let m = embedded_model().unwrap();
    let tokens = [72, 101, 108, 108, 111];
    let cases = [
        (&["--json"][..], ForwardOptions::default(), false),
        (
            &["--json", "--attention", "sigmoid", "--act-quant", "off"][..],
            ForwardOptions::new(AttentionKind::Sigmoid, false),
            false,
        ),
        (
            &["--json", "--attention", "sigmoid", "--precision", "f64"][..],
            ForwardOptions::new(AttentionKind::Sigmoid, true),
            true,
        ),
    ];
    for (extra, options, f64p) in cases {
        let mut args = vec!["reference", "--tokens", "72,101,108,108,111"];
        args.extend_from_slice(extra);
        let v = json_of(&ensi(&args));
        assert_eq!(v["model"], "embedded");
        assert_eq!(v["precision"], if f64p { "f64" } else { "f32" });
        assert_eq!(v["logits"].as_array().unwrap().len(), 256);
        check_against_library(&v, &m, &tokens, options, f64p);
    }
}

#[test]
fn checkpoint_directory_and_text_output() {
    let m = embedded_model().unwrap();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("ensi-cli-reference-{}", std::process::id()));
    save_checkpoint(&m, &dir).unwrap();
    let d = dir.to_str().unwrap();
    let v = json_of(&ensi(&[
        "reference",
        "--checkpoint",
        d,
        "--tokens",
        "3,1,4,1,5",
        "--json",
    ]));
    check_against_library(&v, &m, &[3, 1, 4, 1, 5], ForwardOptions::default(), false);
    let out = ensi(&["reference", "--checkpoint", d, "--tokens", "3,1,4"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let next = m
        .forward::<f32>(&[3, 1, 4], &ForwardOptions::default())
        .unwrap()
        .next_token();
    assert!(
        text.contains(&format!("greedy next token: {next}")),
        "{text}"
    );
    assert!(text.contains("logits at position 2 (256 values)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_a_clean_error() {
    let missing = std::env::temp_dir().join("ensi-cli-no-such-checkpoint");
    for (args, needle) in [
        (vec!["reference", "--tokens", "1,x"], "invalid"),
        (
            vec!["reference", "--tokens", "1,999"],
            "outside the vocabulary",
        ),
        (
            vec!["reference", "--tokens", "1", "--attention", "linear"],
            "invalid value",
        ),
        (vec!["reference"], "--tokens"),
        (
            vec![
                "reference",
                "--tokens",
                "1",
                "--checkpoint",
                missing.to_str().unwrap(),
            ],
            "config.json",
        ),
    ] {
        let out = ensi(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn latent_checkpoint_with_weight_quantization_off() {
    use ensi_bitnet::{DenseMatrix, Linear, LoadOptions, load_checkpoint};
    // The embedded model with its projections stored as dense f32 latents (no weight_scale).
    let m = embedded_model().unwrap();
    let dense = |l: &Linear| {
        let w: Vec<f32> = l.dequantize::<f32>().iter().map(|v| v * 1.25).collect();
        Linear::Dense(DenseMatrix::new(l.rows(), l.cols(), w).unwrap())
    };
    let layers = m
        .layers()
        .iter()
        .map(|l| ensi_bitnet::Layer {
            q_proj: dense(&l.q_proj),
            k_proj: dense(&l.k_proj),
            v_proj: dense(&l.v_proj),
            o_proj: dense(&l.o_proj),
            gate_proj: dense(&l.gate_proj),
            up_proj: dense(&l.up_proj),
            down_proj: dense(&l.down_proj),
            ..l.clone()
        })
        .collect();
    let latent = Model::new(
        m.config().clone(),
        m.embed_tokens().to_vec(),
        layers,
        m.norm().to_vec(),
        None,
    )
    .unwrap();
    let dir: PathBuf = std::env::temp_dir().join(format!("ensi-cli-latent-{}", std::process::id()));
    save_checkpoint(&latent, &dir).unwrap();
    let d = dir.to_str().unwrap();
    let tokens = [5, 6, 7];
    for (switch, weight_quant) in [("on", true), ("off", false)] {
        let v = json_of(&ensi(&[
            "reference",
            "--checkpoint",
            d,
            "--tokens",
            "5,6,7",
            "--json",
            "--weight-quant",
            switch,
        ]));
        let loaded = load_checkpoint(
            &dir,
            &LoadOptions {
                weight_quant,
                ..LoadOptions::default()
            },
        )
        .unwrap();
        let options = ForwardOptions {
            weight_quant,
            ..ForwardOptions::default()
        };
        check_against_library(&v, &loaded, &tokens, options, false);
        assert_eq!(v["weight_quant"], weight_quant);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
