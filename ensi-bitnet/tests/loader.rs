//! Loader tests on checkpoints written here in exactly the layouts of the real models
//! (tensor names, dtypes, shapes, config keys), including corrupted ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{tiny_config, tiny_model};
use ensi_bitnet::{
    Activation, AttentionKind, Error, Family, ForwardOptions, LoadOptions, Model, ModelConfig,
    ScaleConvention, embedded_model, load_checkpoint, save_checkpoint,
};
use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ensi-bitnet-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_safetensors(path: &Path, tensors: &Tensors) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| bf16::from_f32(*x).to_le_bytes())
        .collect()
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| f16::from_f32(*x).to_le_bytes())
        .collect()
}

fn round_bf16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| bf16::from_f32(*x).to_f32()).collect()
}

/// The 2-bit packing written independently of the crate: byte (r, c) field i holds weight
/// (i * rows/4 + r, c) + 1.
fn pack_2b4t(values: &[i8], rows: usize, cols: usize) -> Vec<u8> {
    let pr = rows / 4;
    let mut out = vec![0u8; pr * cols];
    for row in 0..rows {
        for col in 0..cols {
            out[(row % pr) * cols + col] |=
                ((values[row * cols + col] + 1) as u8) << (2 * (row / pr));
        }
    }
    out
}

fn config_2b4t(c: &ModelConfig) -> serde_json::Value {
    json!({
        "architectures": ["BitNetForCausalLM"],
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "hidden_act": "relu2",
        "hidden_size": c.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": c.intermediate_size,
        "max_position_embeddings": c.max_position_embeddings,
        "model_type": "bitnet",
        "rms_norm_eps": 1e-05,
        "num_attention_heads": c.num_attention_heads,
        "num_hidden_layers": c.num_hidden_layers,
        "num_key_value_heads": c.num_key_value_heads,
        "rope_theta": 500000.0,
        "tie_word_embeddings": true,
        "torch_dtype": "bfloat16",
        "use_cache": true,
        "vocab_size": c.vocab_size,
        "quantization_config": {"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"}
    })
}

const PROJS: [&str; 7] = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

fn projs(l: &ensi_bitnet::Layer) -> [&ensi_bitnet::Linear; 7] {
    [
        &l.q_proj,
        &l.k_proj,
        &l.v_proj,
        &l.o_proj,
        &l.gate_proj,
        &l.up_proj,
        &l.down_proj,
    ]
}

/// Tensors of a bitnet-b1.58-2B-4T checkpoint for `m`: packed U8 projections with a bf16
/// `weight_scale` of shape [1], bf16 norms and embeddings, no lm_head (tied).
fn tensors_2b4t(m: &Model) -> Tensors {
    let c = m.config();
    let mut t: Tensors = vec![(
        "model.embed_tokens.weight".into(),
        Dtype::BF16,
        vec![c.vocab_size, c.hidden_size],
        bf16_bytes(m.embed_tokens()),
    )];
    for (i, l) in m.layers().iter().enumerate() {
        let p = format!("model.layers.{i}");
        for (name, w) in [
            ("input_layernorm", &l.input_layernorm),
            ("post_attention_layernorm", &l.post_attention_layernorm),
            ("self_attn.attn_sub_norm", &l.attn_sub_norm),
            ("mlp.ffn_sub_norm", &l.ffn_sub_norm),
        ] {
            t.push((
                format!("{p}.{name}.weight"),
                Dtype::BF16,
                vec![w.len()],
                bf16_bytes(w),
            ));
        }
        for (name, lin) in PROJS.iter().zip(projs(l)) {
            let tm = lin.as_ternary().unwrap();
            t.push((
                format!("{p}.{name}.weight"),
                Dtype::U8,
                vec![tm.rows() / 4, tm.cols()],
                pack_2b4t(tm.values(), tm.rows(), tm.cols()),
            ));
            t.push((
                format!("{p}.{name}.weight_scale"),
                Dtype::BF16,
                vec![1],
                bf16_bytes(&[tm.scale().value]),
            ));
        }
    }
    t.push((
        "model.norm.weight".into(),
        Dtype::BF16,
        vec![c.hidden_size],
        bf16_bytes(m.norm()),
    ));
    t
}

fn write_dir(tag: &str, config: &serde_json::Value, tensors: &Tensors) -> PathBuf {
    let d = temp_dir(tag);
    std::fs::write(
        d.join("config.json"),
        serde_json::to_string_pretty(config).unwrap(),
    )
    .unwrap();
    write_safetensors(&d.join("model.safetensors"), tensors);
    d
}

fn model_2b4t() -> Model {
    tiny_model(
        tiny_config(
            Family::Bitnet,
            Activation::ReluSquared,
            true,
            ScaleConvention::Divide,
        ),
        11,
    )
}

#[test]
fn packed_2b4t_layout_loads_exactly() {
    let m = model_2b4t();
    let dir = write_dir("2b4t", &config_2b4t(m.config()), &tensors_2b4t(&m));
    let loaded = load_checkpoint(&dir, &LoadOptions::default()).unwrap();
    let c = loaded.config();
    assert_eq!(c.family, Family::Bitnet);
    assert_eq!(c.hidden_act, Activation::ReluSquared);
    assert_eq!(c.weight_scale, ScaleConvention::Divide);
    assert!(c.tie_word_embeddings && !loaded.has_separate_lm_head());
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (4, 2, 4)
    );
    assert_eq!(c.rope_theta, 500000.0);
    assert_eq!(loaded.embed_tokens(), round_bf16(m.embed_tokens()));
    assert_eq!(loaded.norm(), round_bf16(m.norm()));
    for (a, b) in loaded.layers().iter().zip(m.layers()) {
        assert_eq!(a.attn_sub_norm, round_bf16(&b.attn_sub_norm));
        assert_eq!(a.ffn_sub_norm, round_bf16(&b.ffn_sub_norm));
        for (x, y) in projs(a).iter().zip(projs(b)) {
            let (x, y) = (x.as_ternary().unwrap(), y.as_ternary().unwrap());
            assert_eq!(x.values(), y.values());
            assert_eq!(x.scale().value, bf16::from_f32(y.scale().value).to_f32());
            assert_eq!(x.scale().convention, ScaleConvention::Divide);
        }
    }
    let t = loaded
        .forward::<f32>(&[1, 2, 3], &ForwardOptions::default())
        .unwrap();
    assert!(t.last_logits().iter().all(|v| v.is_finite()));
}

#[test]
fn scale_convention_follows_linear_class_and_options() {
    let m = model_2b4t();
    let mut cfg = config_2b4t(m.config());
    cfg["quantization_config"]["linear_class"] = json!("autobitlinear");
    let dir = write_dir("auto", &cfg, &tensors_2b4t(&m));
    let loaded = load_checkpoint(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.config().weight_scale, ScaleConvention::Multiply);
    let q = loaded.layers()[0].q_proj.as_ternary().unwrap();
    assert_eq!(q.scale().convention, ScaleConvention::Multiply);
    let forced = LoadOptions {
        weight_scale: Some(ScaleConvention::Divide),
        ..LoadOptions::default()
    };
    let loaded = load_checkpoint(&dir, &forced).unwrap();
    let q = loaded.layers()[0].q_proj.as_ternary().unwrap();
    assert_eq!(q.scale().convention, ScaleConvention::Divide);
    // The dequantized weight divides: t / s, on a non-zero trit, and not t * s (the scale is
    // not 1, so the two conventions differ there).
    let w = loaded.layers()[0].q_proj.dequantize::<f64>();
    let s = f64::from(q.scale().value);
    assert_ne!(s, 1.0);
    let i = q.values().iter().position(|&t| t != 0).unwrap();
    let t = f64::from(q.values()[i]);
    assert_eq!(w[i], t / s);
    assert_ne!(w[i], t * s);
    // Without quantization_config, the default is Divide.
    cfg.as_object_mut().unwrap().remove("quantization_config");
    let dir = write_dir("noq", &cfg, &tensors_2b4t(&m));
    assert_eq!(
        load_checkpoint(&dir, &LoadOptions::default())
            .unwrap()
            .config()
            .weight_scale,
        ScaleConvention::Divide
    );
}

/// A 1bitLLM/bitnet_b1_58-large style checkpoint: latent F16 weights, `inner_attn_ln` and
/// `ffn_layernorm`, a separate `lm_head.weight`, SiLU.
fn onebit_fixture() -> (serde_json::Value, Tensors, Vec<Vec<f32>>) {
    let c = tiny_config(
        Family::Llama1Bit,
        Activation::Silu,
        false,
        ScaleConvention::Divide,
    );
    let mut rng = common::Rng(1234);
    let mut latent = vec![];
    let mut t: Tensors = vec![];
    let mut floats =
        |n: usize, base: f32| -> Vec<f32> { (0..n).map(|_| base + 0.05 * rng.uniform()).collect() };
    let emb = floats(c.vocab_size * c.hidden_size, 0.0);
    t.push((
        "model.embed_tokens.weight".into(),
        Dtype::F16,
        vec![c.vocab_size, c.hidden_size],
        f16_bytes(&emb),
    ));
    let (h, i, q, kv) = (c.hidden_size, c.intermediate_size, c.q_dim(), c.kv_dim());
    for l in 0..c.num_hidden_layers {
        let p = format!("model.layers.{l}");
        for (name, n) in [
            ("input_layernorm", h),
            ("post_attention_layernorm", h),
            ("self_attn.inner_attn_ln", q),
            ("mlp.ffn_layernorm", i),
        ] {
            t.push((
                format!("{p}.{name}.weight"),
                Dtype::F16,
                vec![n],
                f16_bytes(&floats(n, 1.0)),
            ));
        }
        for (name, rows, cols) in [
            ("self_attn.q_proj", q, h),
            ("self_attn.k_proj", kv, h),
            ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, q),
            ("mlp.gate_proj", i, h),
            ("mlp.up_proj", i, h),
            ("mlp.down_proj", h, i),
        ] {
            let w = floats(rows * cols, 0.0);
            let w16: Vec<f32> = w.iter().map(|x| f16::from_f32(*x).to_f32()).collect();
            t.push((
                format!("{p}.{name}.weight"),
                Dtype::F16,
                vec![rows, cols],
                f16_bytes(&w),
            ));
            latent.push(w16);
        }
    }
    t.push((
        "model.norm.weight".into(),
        Dtype::F16,
        vec![h],
        f16_bytes(&floats(h, 1.0)),
    ));
    t.push((
        "lm_head.weight".into(),
        Dtype::F16,
        vec![c.vocab_size, h],
        f16_bytes(&floats(c.vocab_size * h, 0.0)),
    ));
    let cfg = json!({
        "architectures": ["BitnetForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": h,
        "intermediate_size": i,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "num_hidden_layers": c.num_hidden_layers,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "rope_scaling": null,
        "tie_word_embeddings": false,
        "torch_dtype": "float16",
        "vocab_size": c.vocab_size,
        "input_bits": 8,
        "weight_bits": 1,
        "attention_bias": false
    });
    (cfg, t, latent)
}

/// Absmean written out independently: scale = 1 / mean|W|, round half to even, clip.
fn naive_absmean(w: &[f32]) -> (Vec<i8>, f32) {
    let mean = (w.iter().map(|x| x.abs() as f64).sum::<f64>() / w.len() as f64) as f32;
    let s = 1.0 / mean.max(1e-5);
    (
        w.iter()
            .map(|x| (x * s).round_ties_even().clamp(-1.0, 1.0) as i8)
            .collect(),
        s,
    )
}

#[test]
fn latent_1bitllm_layout_is_ternarized_on_load() {
    let (cfg, t, latent) = onebit_fixture();
    let dir = write_dir("1bit", &cfg, &t);
    let m = load_checkpoint(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(m.config().family, Family::Llama1Bit);
    assert_eq!(m.config().hidden_act, Activation::Silu);
    assert!(m.has_separate_lm_head());
    let mut k = 0;
    for l in m.layers() {
        for p in projs(l) {
            let tm = p.as_ternary().unwrap();
            let (values, scale) = naive_absmean(&latent[k]);
            assert_eq!(tm.values(), values.as_slice());
            assert_eq!(tm.scale().value, scale);
            assert_eq!(tm.scale().convention, ScaleConvention::Divide);
            k += 1;
        }
    }
    // Weight quantization off: the latent weights stay dense and differ from the ternary model.
    let dense = load_checkpoint(
        &dir,
        &LoadOptions {
            weight_quant: false,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert!(dense.layers()[0].q_proj.as_ternary().is_none());
    assert_eq!(dense.layers()[0].q_proj.dequantize::<f32>(), latent[0]);
    // Weight quantization at inference: on, the dense model ternarizes on the fly and matches
    // the model ternarized at load time exactly; off, it runs the latent weights.
    for act_quant in [true, false] {
        let on = ForwardOptions::new(AttentionKind::Softmax, act_quant);
        let off = ForwardOptions {
            weight_quant: false,
            ..on
        };
        let a = m.forward::<f64>(&[1, 2, 3], &on).unwrap();
        let b = dense.forward::<f64>(&[1, 2, 3], &on).unwrap();
        assert_eq!(a.logits, b.logits);
        let c = dense.forward::<f64>(&[1, 2, 3], &off).unwrap();
        assert!(a.logits.max_abs_diff(&c.logits) > 0.0);
        assert!(c.last_logits().iter().all(|v| v.is_finite()));
        // The ternary model ignores the switch.
        assert_eq!(m.forward::<f64>(&[1, 2, 3], &off).unwrap().logits, a.logits);
    }
}

#[test]
fn float_weights_with_scale_must_be_ternary() {
    let (cfg, mut t, _) = onebit_fixture();
    let name = "model.layers.0.self_attn.q_proj";
    let idx = t
        .iter()
        .position(|x| x.0 == format!("{name}.weight"))
        .unwrap();
    let shape = t[idx].2.clone();
    let n = shape[0] * shape[1];
    let ternary: Vec<f32> = (0..n).map(|i| (i % 3) as f32 - 1.0).collect();
    t[idx] = (
        format!("{name}.weight"),
        Dtype::BF16,
        shape.clone(),
        bf16_bytes(&ternary),
    );
    t.push((
        format!("{name}.weight_scale"),
        Dtype::BF16,
        vec![1],
        bf16_bytes(&[2.0]),
    ));
    let dir = write_dir("ternf", &cfg, &t);
    let m = load_checkpoint(&dir, &LoadOptions::default()).unwrap();
    let q = m.layers()[0].q_proj.as_ternary().unwrap();
    assert_eq!(q.get(0, 0), -1);
    assert_eq!(q.scale().value, 2.0);
    let mut bad = ternary.clone();
    bad[5] = 0.5;
    t[idx] = (
        format!("{name}.weight"),
        Dtype::BF16,
        shape,
        bf16_bytes(&bad),
    );
    let dir = write_dir("ternf-bad", &cfg, &t);
    match load_checkpoint(&dir, &LoadOptions::default()) {
        Err(Error::InvalidValue {
            name: n, index: 5, ..
        }) => assert_eq!(n, format!("{name}.weight")),
        other => panic!("{other:?}"),
    }
}

fn expect_err(tag: &str, cfg: &serde_json::Value, t: &Tensors, options: &LoadOptions) -> Error {
    let dir = write_dir(tag, cfg, t);
    let e = load_checkpoint(&dir, options).expect_err("corrupted checkpoint must not load");
    assert!(!e.to_string().is_empty());
    e
}

fn find(t: &Tensors, name: &str) -> usize {
    t.iter()
        .position(|x| x.0 == name)
        .unwrap_or_else(|| panic!("{name}"))
}

#[test]
fn corrupted_checkpoints_are_clear_errors() {
    let m = model_2b4t();
    let cfg = config_2b4t(m.config());
    let good = tensors_2b4t(&m);
    let opts = LoadOptions::default();

    // Missing tensor.
    let mut t = good.clone();
    t.remove(find(&t, "model.layers.1.mlp.down_proj.weight"));
    assert_eq!(
        expect_err("missing", &cfg, &t, &opts),
        Error::MissingTensor {
            name: "model.layers.1.mlp.down_proj.weight".into()
        }
    );

    // Missing weight_scale of a packed projection.
    let mut t = good.clone();
    t.remove(find(&t, "model.layers.0.self_attn.k_proj.weight_scale"));
    assert_eq!(
        expect_err("noscale", &cfg, &t, &opts),
        Error::MissingTensor {
            name: "model.layers.0.self_attn.k_proj.weight_scale".into()
        }
    );

    // Misnamed tensor: strict mode names the stray tensor, lenient mode the missing one.
    let mut t = good.clone();
    let i = find(&t, "model.layers.0.self_attn.attn_sub_norm.weight");
    t[i].0 = "model.layers.0.self_attn.attn_subnorm.weight".into();
    assert_eq!(
        expect_err("misnamed", &cfg, &t, &opts),
        Error::UnexpectedTensor {
            name: "model.layers.0.self_attn.attn_subnorm.weight".into()
        }
    );
    let lenient = LoadOptions {
        strict: false,
        ..opts
    };
    assert_eq!(
        expect_err("misnamed2", &cfg, &t, &lenient),
        Error::MissingTensor {
            name: "model.layers.0.self_attn.attn_sub_norm.weight".into()
        }
    );

    // Misshapen packed projection (unpacked shape instead of [out/4, in]).
    let mut t = good.clone();
    let i = find(&t, "model.layers.0.self_attn.q_proj.weight");
    t[i].2 = vec![16, 16];
    t[i].3 = vec![0x55; 256];
    assert_eq!(
        expect_err("shape", &cfg, &t, &opts),
        Error::ShapeMismatch {
            name: "model.layers.0.self_attn.q_proj.weight".into(),
            expected: vec![4, 16],
            actual: vec![16, 16]
        }
    );

    // Misshapen norm.
    let mut t = good.clone();
    let i = find(&t, "model.norm.weight");
    t[i].2 = vec![15];
    t[i].3.truncate(30);
    assert!(
        matches!(expect_err("normshape", &cfg, &t, &opts), Error::ShapeMismatch { name, .. } if name == "model.norm.weight")
    );

    // Wrong dtype.
    let mut t = good.clone();
    let i = find(&t, "model.layers.1.input_layernorm.weight");
    t[i].1 = Dtype::I16;
    assert!(
        matches!(expect_err("dtype", &cfg, &t, &opts), Error::UnsupportedDtype { name, .. } if name == "model.layers.1.input_layernorm.weight")
    );
    let mut t = good.clone();
    let i = find(&t, "model.layers.1.mlp.up_proj.weight");
    t[i].1 = Dtype::I8;
    assert!(
        matches!(expect_err("dtype2", &cfg, &t, &opts), Error::UnsupportedDtype { name, .. } if name == "model.layers.1.mlp.up_proj.weight")
    );

    // A 2-bit field holding 3.
    let mut t = good.clone();
    let i = find(&t, "model.layers.1.mlp.gate_proj.weight");
    t[i].3[7] = 0b1100_0101;
    assert_eq!(
        expect_err("field3", &cfg, &t, &opts),
        Error::InvalidValue {
            name: "model.layers.1.mlp.gate_proj.weight".into(),
            index: 7,
            reason: "a 2-bit field holds 3, which encodes no ternary value"
        }
    );

    // NaN norm, zero and negative scales, scale of the wrong shape.
    let mut t = good.clone();
    let i = find(&t, "model.layers.0.post_attention_layernorm.weight");
    t[i].3[2..4].copy_from_slice(&bf16::NAN.to_le_bytes());
    assert!(
        matches!(expect_err("nan", &cfg, &t, &opts), Error::InvalidValue { name, index: 1, .. } if name == "model.layers.0.post_attention_layernorm.weight")
    );
    for (tag, v) in [("zero", 0.0f32), ("neg", -1.0)] {
        let mut t = good.clone();
        let i = find(&t, "model.layers.0.self_attn.v_proj.weight_scale");
        t[i].3 = bf16_bytes(&[v]);
        assert!(
            matches!(expect_err(tag, &cfg, &t, &opts), Error::InvalidValue { name, .. } if name == "model.layers.0.self_attn.v_proj.weight_scale")
        );
    }
    let mut t = good.clone();
    let i = find(&t, "model.layers.0.self_attn.v_proj.weight_scale");
    t[i].2 = vec![2];
    t[i].3 = bf16_bytes(&[1.0, 1.0]);
    assert!(
        matches!(expect_err("scaleshape", &cfg, &t, &opts), Error::ShapeMismatch { name, .. } if name == "model.layers.0.self_attn.v_proj.weight_scale")
    );

    // Truncated and garbage files.
    let dir = write_dir("trunc", &cfg, &good);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() - 10]).unwrap();
    assert!(matches!(
        load_checkpoint(&dir, &opts),
        Err(Error::Safetensors { .. })
    ));
    std::fs::write(
        dir.join("model.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\xffgarbage",
    )
    .unwrap();
    assert!(matches!(
        load_checkpoint(&dir, &opts),
        Err(Error::Safetensors { .. })
    ));
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(matches!(
        load_checkpoint(&dir, &opts),
        Err(Error::Io { .. })
    ));
}

#[test]
fn bad_configs_are_clear_errors() {
    let m = model_2b4t();
    let good = config_2b4t(m.config());
    let parse =
        |v: &serde_json::Value| ModelConfig::from_json(&v.to_string(), &LoadOptions::default());
    assert!(parse(&good).is_ok());
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("hidden_size");
    assert_eq!(
        parse(&c),
        Err(Error::MissingConfigKey { key: "hidden_size" })
    );
    let mut c = good.clone();
    c["hidden_act"] = json!("gelu");
    assert!(matches!(
        parse(&c),
        Err(Error::InvalidConfig {
            key: "hidden_act",
            ..
        })
    ));
    let mut c = good.clone();
    c["num_key_value_heads"] = json!(3);
    assert!(matches!(
        parse(&c),
        Err(Error::InvalidConfig {
            key: "num_key_value_heads",
            ..
        })
    ));
    let mut c = good.clone();
    c["hidden_size"] = json!(-4);
    assert!(matches!(
        parse(&c),
        Err(Error::InvalidConfig {
            key: "hidden_size",
            ..
        })
    ));
    let mut c = good.clone();
    c["model_type"] = json!("gpt2");
    assert!(matches!(
        parse(&c),
        Err(Error::InvalidConfig {
            key: "model_type",
            ..
        })
    ));
    let mut c = good.clone();
    c["rms_norm_eps"] = json!(0.0);
    assert!(matches!(
        parse(&c),
        Err(Error::InvalidConfig {
            key: "rms_norm_eps",
            ..
        })
    ));
    let mut c = good.clone();
    c["attention_bias"] = json!(true);
    assert!(matches!(
        parse(&c),
        Err(Error::InvalidConfig {
            key: "attention_bias",
            ..
        })
    ));
    let mut c = good.clone();
    c["quantization_config"]["linear_class"] = json!("mystery");
    assert!(matches!(
        parse(&c),
        Err(Error::InvalidConfig {
            key: "quantization_config",
            ..
        })
    ));
    let mut c = good.clone();
    c["vocab_size"] = json!(0);
    assert!(matches!(
        parse(&c),
        Err(Error::InvalidConfig {
            key: "vocab_size",
            ..
        })
    ));
    assert!(matches!(
        ModelConfig::from_json("{not json", &LoadOptions::default()),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        ModelConfig::from_json("[1, 2]", &LoadOptions::default()),
        Err(Error::InvalidConfig { .. })
    ));
    // The real 2B-4T keys parse to the documented architecture.
    let mut real = good.clone();
    for (k, v) in [
        ("hidden_size", 2560),
        ("intermediate_size", 6912),
        ("num_hidden_layers", 30),
        ("num_attention_heads", 20),
        ("num_key_value_heads", 5),
        ("vocab_size", 128256),
        ("max_position_embeddings", 4096),
    ] {
        real[k] = json!(v);
    }
    let rc = parse(&real).unwrap();
    assert_eq!((rc.head_dim, rc.q_dim(), rc.kv_dim()), (128, 2560, 640));
    // A config that disagrees with the tensors: the error names the tensor.
    let mut c = good.clone();
    c["intermediate_size"] = json!(28);
    let dir = write_dir("cfgmismatch", &c, &tensors_2b4t(&m));
    assert!(
        matches!(load_checkpoint(&dir, &LoadOptions::default()), Err(Error::ShapeMismatch { name, .. }) if name == "model.layers.0.mlp.gate_proj.weight")
    );
}

#[test]
fn save_then_load_round_trips_the_embedded_model() {
    let m = embedded_model().unwrap();
    let dir = temp_dir("save");
    save_checkpoint(&m, &dir).unwrap();
    let back = load_checkpoint(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(back, m);
    // Sharded: split the tensors over two files with an index.
    let m2 = tiny_model(
        tiny_config(
            Family::Llama1Bit,
            Activation::Silu,
            false,
            ScaleConvention::Multiply,
        ),
        5,
    );
    let d2 = temp_dir("shard");
    save_checkpoint(&m2, &d2).unwrap();
    let bytes = std::fs::read(d2.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let views: Vec<(String, TensorView<'_>)> = part
            .iter()
            .map(|n| (n.to_string(), st.tensor(n).unwrap()))
            .collect();
        std::fs::write(d2.join(file), safetensors::serialize(views, None).unwrap()).unwrap();
        for n in part {
            map.insert(n.to_string(), json!(file));
        }
    }
    std::fs::remove_file(d2.join("model.safetensors")).unwrap();
    std::fs::write(
        d2.join("model.safetensors.index.json"),
        json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    assert_eq!(load_checkpoint(&d2, &LoadOptions::default()).unwrap(), m2);
    // A shard name that escapes the directory is refused.
    map.insert("x".into(), json!("../evil.safetensors"));
    std::fs::write(
        d2.join("model.safetensors.index.json"),
        json!({"weight_map": map}).to_string(),
    )
    .unwrap();
    assert!(matches!(
        load_checkpoint(&d2, &LoadOptions::default()),
        Err(Error::InvalidConfig {
            key: "weight_map",
            ..
        })
    ));
}

#[test]
fn a_config_claiming_more_layers_than_the_files_hold_is_refused_quickly() {
    let m = model_2b4t();
    let mut cfg = config_2b4t(m.config());
    cfg["num_hidden_layers"] = serde_json::json!(2_000_000_000u64);
    let start = std::time::Instant::now();
    let e = expect_err(
        "huge-layers",
        &cfg,
        &tensors_2b4t(&m),
        &LoadOptions::default(),
    );
    // Refused before any per-layer work: well under a second.
    assert!(start.elapsed().as_secs_f64() < 1.0, "{:?}", start.elapsed());
    let text = e.to_string();
    assert!(text.contains("num_hidden_layers"), "{text}");
    let layers = m.config().num_hidden_layers;
    // The real layer count still loads.
    cfg["num_hidden_layers"] = serde_json::json!(layers);
    let dir = write_dir("right-layers", &cfg, &tensors_2b4t(&m));
    assert_eq!(
        load_checkpoint(&dir, &LoadOptions::default())
            .unwrap()
            .layers()
            .len(),
        layers
    );
}

/// The committed seed corpora of the loader fuzz targets (`fuzz/seeds/`): a tiny 2B-4T
/// checkpoint (its `model.safetensors` and the `config.json` the target loads it with), the
/// configs of both families, and a sharded index. The files must equal what this code writes
/// today; `ENSI_WRITE_FUZZ_SEEDS=1` rewrites them.
#[test]
fn fuzz_seed_corpora_are_current() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let write = std::env::var_os("ENSI_WRITE_FUZZ_SEEDS").is_some();
    let check = |rel: &str, bytes: &[u8]| {
        let path = seeds.join(rel);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    };
    let m = model_2b4t();
    let cfg = config_2b4t(m.config());
    let cfg_text = serde_json::to_string_pretty(&cfg).unwrap();
    let dir = write_dir("seeds", &cfg, &tensors_2b4t(&m));
    let st = std::fs::read(dir.join("model.safetensors")).unwrap();
    // The seed loads with its config (the target's starting point is a valid checkpoint).
    let config = ModelConfig::from_json(&cfg_text, &LoadOptions::default()).unwrap();
    assert!(ensi_bitnet::load_safetensors(config, &st, &LoadOptions::default()).is_ok());
    check("load_safetensors/tiny-2b4t.safetensors", &st);
    check("load_safetensors_config.json", cfg_text.as_bytes());
    check("load_config/2b4t.json", cfg_text.as_bytes());
    let (onebit, _, _) = onebit_fixture();
    check(
        "load_config/1bitllm.json",
        serde_json::to_string_pretty(&onebit).unwrap().as_bytes(),
    );
    let index = json!({
        "metadata": {"total_size": 1234},
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "model.norm.weight": "model-00002-of-00002.safetensors"
        }
    });
    let index_text = serde_json::to_string_pretty(&index).unwrap();
    let shards = ensi_bitnet::parse_shard_index(&index_text).unwrap();
    assert_eq!(shards.len(), 2);
    check("parse_shard_index/index.json", index_text.as_bytes());
}
