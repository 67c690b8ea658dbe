//! Checkpoint loaders and writer (feature `std`), for safetensors files in the layouts of the
//! real models:
//!
//! * **packed ternary** (microsoft/bitnet-b1.58-2B-4T): every projection is a `U8` tensor
//!   `[out / 4, in]` in the 2-bit layout of [`unpack_2bit`], with a
//!   `weight_scale` beside it (`BF16`, shape `[1]`); norms and embeddings in `BF16`;
//! * **latent** (1bitLLM/bitnet_b1_58-*, bitnet-b1.58-2B-4T-bf16): projections are float
//!   (`BF16`, `F16` or `F32`) `[out, in]` and are ternarized by absmean on load (or kept dense
//!   with [`LoadOptions::weight_quant`] off). A float projection *with* a `weight_scale` is
//!   taken as already ternary (offline `AutoBitLinear` export): every value must be -1, 0 or 1.
//!
//! Tensor names follow transformers' Llama naming (`model.embed_tokens.weight`,
//! `model.layers.{i}.self_attn.{q,k,v,o}_proj.weight`, `model.layers.{i}.mlp.{gate,up,down}_proj.weight`,
//! the family's sub-norms, `model.norm.weight`, `lm_head.weight` unless tied). Every error names
//! the tensor or key concerned. Sharded checkpoints (`model.safetensors.index.json` with
//! several files) are read too.

use std::collections::{BTreeSet, HashMap};
use std::format;
use std::path::Path;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::config::{LoadOptions, ModelConfig};
use crate::error::{Error, Result};
use crate::linear::{DenseMatrix, Linear};
use crate::model::{Layer, Model};
use crate::packing::{pack_2bit, unpack_2bit};
use crate::ternary::absmean_ternarize;
use crate::ternary::{TernaryMatrix, WeightScale};

/// The tensors of one checkpoint, possibly spread over several safetensors files.
struct Store<'a> {
    files: Vec<SafeTensors<'a>>,
    index: HashMap<String, usize>,
}

impl<'a> Store<'a> {
    fn new(buffers: &'a [Vec<u8>]) -> Result<Self> {
        let mut files = Vec::with_capacity(buffers.len());
        let mut index = HashMap::new();
        for (i, b) in buffers.iter().enumerate() {
            let st = SafeTensors::deserialize(b).map_err(|e| Error::Safetensors {
                reason: e.to_string(),
            })?;
            for name in st.names() {
                if index.insert(name.to_string(), i).is_some() {
                    return Err(Error::Safetensors {
                        reason: format!("tensor `{name}` appears in two shards"),
                    });
                }
            }
            files.push(st);
        }
        Ok(Self { files, index })
    }

    fn get(&self, name: &str) -> Option<TensorView<'a>> {
        let &i = self.index.get(name)?;
        self.files.get(i)?.tensor(name).ok()
    }

    fn require(&self, name: &str) -> Result<TensorView<'a>> {
        self.get(name)
            .ok_or_else(|| Error::MissingTensor { name: name.into() })
    }
}

fn dtype_name(d: Dtype) -> String {
    format!("{d:?}")
}

fn to_f32(name: &str, t: &TensorView<'_>) -> Result<Vec<f32>> {
    let data = t.data();
    let out: Vec<f32> = match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        other => {
            return Err(Error::UnsupportedDtype {
                name: name.into(),
                dtype: dtype_name(other),
                expected: "BF16, F16 or F32",
            });
        }
    };
    if let Some(index) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidValue {
            name: name.into(),
            index,
            reason: "not finite",
        });
    }
    Ok(out)
}

fn check_shape(name: &str, t: &TensorView<'_>, expected: &[usize]) -> Result<()> {
    if t.shape() != expected {
        return Err(Error::ShapeMismatch {
            name: name.into(),
            expected: expected.to_vec(),
            actual: t.shape().to_vec(),
        });
    }
    Ok(())
}

fn read_floats(store: &Store<'_>, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let t = store.require(name)?;
    check_shape(name, &t, shape)?;
    to_f32(name, &t)
}

fn read_scale(store: &Store<'_>, name: &str) -> Result<f32> {
    let t = store.require(name)?;
    if !(t.shape().is_empty() || t.shape() == [1]) {
        return Err(Error::ShapeMismatch {
            name: name.into(),
            expected: vec![1],
            actual: t.shape().to_vec(),
        });
    }
    let v = to_f32(name, &t)?;
    match v.first() {
        Some(&s) if s > 0.0 => Ok(s),
        _ => Err(Error::InvalidValue {
            name: name.into(),
            index: 0,
            reason: "a weight scale must be positive",
        }),
    }
}

fn read_linear(
    store: &Store<'_>,
    prefix: &str,
    rows: usize,
    cols: usize,
    config: &ModelConfig,
    options: &LoadOptions,
) -> Result<Linear> {
    let name = format!("{prefix}.weight");
    let scale_name = format!("{prefix}.weight_scale");
    let t = store.require(&name)?;
    match t.dtype() {
        Dtype::U8 => {
            if !rows.is_multiple_of(4) {
                return Err(Error::InvalidConfig {
                    key: "hidden/intermediate size",
                    reason: format!(
                        "`{name}`: {rows} output rows cannot use the 4-per-byte packing"
                    ),
                });
            }
            check_shape(&name, &t, &[rows / 4, cols])?;
            let values = unpack_2bit(t.data(), rows / 4, cols).map_err(|e| match e {
                Error::InvalidPackedField { byte_index, .. } => Error::InvalidValue {
                    name: name.clone(),
                    index: byte_index,
                    reason: "a 2-bit field holds 3, which encodes no ternary value",
                },
                other => other,
            })?;
            let value = read_scale(store, &scale_name)?;
            Ok(Linear::Ternary(TernaryMatrix::new(
                rows,
                cols,
                values,
                WeightScale {
                    value,
                    convention: config.weight_scale,
                },
            )?))
        }
        Dtype::BF16 | Dtype::F16 | Dtype::F32 => {
            check_shape(&name, &t, &[rows, cols])?;
            let w = to_f32(&name, &t)?;
            if store.get(&scale_name).is_some() {
                let value = read_scale(store, &scale_name)?;
                let mut values = Vec::with_capacity(w.len());
                for (index, &x) in w.iter().enumerate() {
                    if !(x == -1.0 || x == 0.0 || x == 1.0) {
                        return Err(Error::InvalidValue {
                            name,
                            index,
                            reason: "a float weight with a weight_scale must be -1, 0 or 1",
                        });
                    }
                    values.push(x as i8);
                }
                Ok(Linear::Ternary(TernaryMatrix::new(
                    rows,
                    cols,
                    values,
                    WeightScale {
                        value,
                        convention: config.weight_scale,
                    },
                )?))
            } else if options.weight_quant {
                absmean_ternarize(rows, cols, &w)
                    .map(Linear::Ternary)
                    .map_err(|e| match e {
                        Error::InvalidValue { index, reason, .. } => Error::InvalidValue {
                            name,
                            index,
                            reason,
                        },
                        other => other,
                    })
            } else {
                Ok(Linear::Dense(DenseMatrix::new(rows, cols, w)?))
            }
        }
        other => Err(Error::UnsupportedDtype {
            name,
            dtype: dtype_name(other),
            expected: "U8 (packed ternary) or BF16, F16, F32 (latent)",
        }),
    }
}

/// The names of every tensor a checkpoint of `config` may hold.
fn expected_names(config: &ModelConfig) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    names.insert("model.embed_tokens.weight".to_string());
    names.insert("model.norm.weight".to_string());
    names.insert("lm_head.weight".to_string());
    for i in 0..config.num_hidden_layers {
        let p = format!("model.layers.{i}");
        for norm in [
            "input_layernorm",
            "post_attention_layernorm",
            config.family.attn_sub_norm(),
            config.family.ffn_sub_norm(),
        ] {
            names.insert(format!("{p}.{norm}.weight"));
        }
        for proj in [
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        ] {
            names.insert(format!("{p}.{proj}.weight"));
            names.insert(format!("{p}.{proj}.weight_scale"));
        }
    }
    names
}

/// The tensors every decoder layer holds at the least: four norms and seven projections.
const TENSORS_PER_LAYER: usize = 11;

fn load_store(config: ModelConfig, store: &Store<'_>, options: &LoadOptions) -> Result<Model> {
    config.validate()?;
    // Bound the layer count by what the files can hold before anything is sized by it: a
    // config.json claiming 2^31 layers must not make the loader build billions of names.
    let capacity = store.index.len() / TENSORS_PER_LAYER;
    if config.num_hidden_layers > capacity {
        return Err(Error::InvalidConfig {
            key: "num_hidden_layers",
            reason: format!(
                "{} layers, but the checkpoint's {} tensors hold at most {capacity}",
                config.num_hidden_layers,
                store.index.len()
            ),
        });
    }
    if options.strict {
        let expected = expected_names(&config);
        let mut names: Vec<&String> = store.index.keys().collect();
        names.sort();
        if let Some(name) = names
            .into_iter()
            .find(|n| !expected.contains(*n) && !n.ends_with("rotary_emb.inv_freq"))
        {
            return Err(Error::UnexpectedTensor { name: name.clone() });
        }
    }
    let c = &config;
    let (h, i, q, kv) = (c.hidden_size, c.intermediate_size, c.q_dim(), c.kv_dim());
    let embed = read_floats(store, "model.embed_tokens.weight", &[c.vocab_size, h])?;
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for n in 0..c.num_hidden_layers {
        let p = format!("model.layers.{n}");
        let lin =
            |s: &str, rows, cols| read_linear(store, &format!("{p}.{s}"), rows, cols, c, options);
        layers.push(Layer {
            input_layernorm: read_floats(store, &format!("{p}.input_layernorm.weight"), &[h])?,
            q_proj: lin("self_attn.q_proj", q, h)?,
            k_proj: lin("self_attn.k_proj", kv, h)?,
            v_proj: lin("self_attn.v_proj", kv, h)?,
            attn_sub_norm: read_floats(
                store,
                &format!("{p}.{}.weight", c.family.attn_sub_norm()),
                &[q],
            )?,
            o_proj: lin("self_attn.o_proj", h, q)?,
            post_attention_layernorm: read_floats(
                store,
                &format!("{p}.post_attention_layernorm.weight"),
                &[h],
            )?,
            gate_proj: lin("mlp.gate_proj", i, h)?,
            up_proj: lin("mlp.up_proj", i, h)?,
            ffn_sub_norm: read_floats(
                store,
                &format!("{p}.{}.weight", c.family.ffn_sub_norm()),
                &[i],
            )?,
            down_proj: lin("mlp.down_proj", h, i)?,
        });
    }
    let norm = read_floats(store, "model.norm.weight", &[h])?;
    // Tied embeddings: like transformers, the embedding is the head; a stored lm_head.weight
    // is ignored.
    let lm_head = if c.tie_word_embeddings {
        None
    } else {
        Some(read_floats(store, "lm_head.weight", &[c.vocab_size, h])?)
    };
    Model::new(config, embed, layers, norm, lm_head)
}

/// Loads a model from the bytes of one safetensors file and a checked configuration.
pub fn load_safetensors(config: ModelConfig, bytes: &[u8], options: &LoadOptions) -> Result<Model> {
    let buffers = [bytes.to_vec()];
    let store = Store::new(&buffers)?;
    load_store(config, &store, options)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Loads a checkpoint directory: `config.json` plus `model.safetensors`, or the shards listed
/// in `model.safetensors.index.json`.
pub fn load_checkpoint(dir: &Path, options: &LoadOptions) -> Result<Model> {
    let config_text = std::fs::read_to_string(dir.join("config.json")).map_err(|e| Error::Io {
        path: dir.join("config.json").display().to_string(),
        reason: e.to_string(),
    })?;
    let config = ModelConfig::from_json(&config_text, options)?;
    let single = dir.join("model.safetensors");
    let index_path = dir.join("model.safetensors.index.json");
    let buffers = if single.exists() || !index_path.exists() {
        vec![read_file(&single)?]
    } else {
        let text = std::fs::read_to_string(&index_path).map_err(|e| Error::Io {
            path: index_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let shards = parse_shard_index(&text)?;
        shards
            .iter()
            .map(|f| read_file(&dir.join(f)))
            .collect::<Result<Vec<_>>>()?
    };
    let store = Store::new(&buffers)?;
    load_store(config, &store, options)
}

/// The shard file names of a sharded checkpoint's `model.safetensors.index.json` (its
/// `weight_map` values), each a plain file name (no path separator, not `..`).
pub fn parse_shard_index(text: &str) -> Result<BTreeSet<String>> {
    let index: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::InvalidConfig {
            key: "model.safetensors.index.json",
            reason: e.to_string(),
        })?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or(Error::MissingConfigKey { key: "weight_map" })?;
    let mut shards = BTreeSet::new();
    for v in map.values() {
        let f = v.as_str().ok_or_else(|| Error::InvalidConfig {
            key: "weight_map",
            reason: "a shard name is not a string".into(),
        })?;
        if f.is_empty() || f.contains('/') || f.contains('\\') || f == ".." || f == "." {
            return Err(Error::InvalidConfig {
                key: "weight_map",
                reason: format!("shard name `{f}` is not a plain file name"),
            });
        }
        shards.insert(f.to_string());
    }
    Ok(shards)
}

/// Writes `model` as a checkpoint directory (`config.json` + `model.safetensors`) that
/// [`load_checkpoint`] reads back exactly: ternary projections packed 2-bit (`U8`
/// `[out / 4, in]`, output widths must be multiples of 4) with an `F32` `weight_scale`, dense
/// projections, norms and embeddings as `F32` (not bf16, so nothing is rounded). The scale
/// convention is recorded as `quantization_config.linear_class`, which requires every ternary
/// projection to use the model's configured convention.
pub fn save_checkpoint(model: &Model, dir: &Path) -> Result<()> {
    let c = model.config();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let floats = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    tensors.push((
        "model.embed_tokens.weight".into(),
        Dtype::F32,
        vec![c.vocab_size, c.hidden_size],
        floats(model.embed_tokens()),
    ));
    for (n, l) in model.layers().iter().enumerate() {
        let p = format!("model.layers.{n}");
        let norms: [(&str, &[f32]); 4] = [
            ("input_layernorm", &l.input_layernorm),
            ("post_attention_layernorm", &l.post_attention_layernorm),
            (c.family.attn_sub_norm(), &l.attn_sub_norm),
            (c.family.ffn_sub_norm(), &l.ffn_sub_norm),
        ];
        for (s, w) in norms {
            tensors.push((
                format!("{p}.{s}.weight"),
                Dtype::F32,
                vec![w.len()],
                floats(w),
            ));
        }
        let projs = [
            ("self_attn.q_proj", &l.q_proj),
            ("self_attn.k_proj", &l.k_proj),
            ("self_attn.v_proj", &l.v_proj),
            ("self_attn.o_proj", &l.o_proj),
            ("mlp.gate_proj", &l.gate_proj),
            ("mlp.up_proj", &l.up_proj),
            ("mlp.down_proj", &l.down_proj),
        ];
        for (s, lin) in projs {
            let name = format!("{p}.{s}.weight");
            match lin {
                Linear::Ternary(t) => {
                    if t.scale().convention != c.weight_scale {
                        return Err(Error::InvalidConfig {
                            key: "weight_scale",
                            reason: format!(
                                "`{name}` uses the {} convention, the model {}",
                                t.scale().convention.name(),
                                c.weight_scale.name()
                            ),
                        });
                    }
                    let packed = pack_2bit(t.values(), t.rows(), t.cols())?;
                    tensors.push((name, Dtype::U8, vec![t.rows() / 4, t.cols()], packed));
                    tensors.push((
                        format!("{p}.{s}.weight_scale"),
                        Dtype::F32,
                        vec![1],
                        t.scale().value.to_le_bytes().to_vec(),
                    ));
                }
                Linear::Dense(d) => tensors.push((
                    name,
                    Dtype::F32,
                    vec![d.rows(), d.cols()],
                    floats(d.values()),
                )),
            }
        }
    }
    tensors.push((
        "model.norm.weight".into(),
        Dtype::F32,
        vec![c.hidden_size],
        floats(model.norm()),
    ));
    if model.has_separate_lm_head() {
        tensors.push((
            "lm_head.weight".into(),
            Dtype::F32,
            vec![c.vocab_size, c.hidden_size],
            floats(model.lm_head()),
        ));
    }
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Safetensors {
            reason: e.to_string(),
        })?;
    let bytes = safetensors::serialize(views, None).map_err(|e| Error::Safetensors {
        reason: e.to_string(),
    })?;
    let io = |p: &Path, e: std::io::Error| Error::Io {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, c.to_json()).map_err(|e| io(&cfg, e))?;
    let st = dir.join("model.safetensors");
    std::fs::write(&st, bytes).map_err(|e| io(&st, e))?;
    Ok(())
}
