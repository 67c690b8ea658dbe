//! Calibration files: the intervals of every polynomial and the bounds of every bootstrap of a
//! model, computed from plaintext reference traces of fixed sample prompts and saved beside the
//! model (`calibration.json` in a checkpoint directory; the embedded model ships its own).
//!
//! The intervals depend on the prompt's length (the sigmoid bias `-ln n`), which the server
//! knows, so the file holds one plan per length `1..=max_tokens`. The column-block layout's
//! padding rows compute copies of the last real row, so the real rows are all there is to
//! calibrate. The format (JSON, version 1):
//!
//! ```text
//! { "format": "ensi-calibration", "version": 1, "margin": 0.25,
//!   "model": { "hidden_size": .., "intermediate_size": .., "num_hidden_layers": .., "vocab_size": .. },
//!   "plans": [ { "tokens": n,
//!                "layers": [ { "norms": [[lo, hi] x 4], "norm_bounds": [4], "unit_bounds": [4],
//!                              "scores": [lo, hi], "gate": [lo, hi] }, .. ],
//!                "final_norm": [lo, hi] }, .. ] }
//! ```
//!
//! Norm intervals are those of `mean(x^2) + eps` (input, attention sub-norm, post-attention,
//! FFN sub-norm); polynomial degrees are chosen at run time. A file is untrusted input: every
//! number is checked (finite, `0 < lo < hi` for norms, `lo < hi`, positive bounds) and the
//! model's shape must match.

use ensi_bitnet::{AttentionKind, ForwardOptions, Model};
use ensi_nn::decoder::{Interval, LayerPlan, ModelPlan, calibrate_model};
use ensi_nn::norm::NormPlan;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// The calibration prompts: fixed sample texts (bytes as tokens), never the user's prompt.
/// Each is cut or repeated to the length calibrated. Runs of one token are there on purpose:
/// under sigmoid attention (no normalization) a repeated token attends to all its copies, so
/// the attention output grows with the run, the extreme case of the attention sub-norm's
/// statistic; greedy generation produces such runs.
pub const CALIBRATION_PROMPTS: [&str; 6] = [
    "The quick brown fox",
    "Hello, world! 123",
    "ENSI: secure BitNet",
    "abcdefghijklmnop",
    "Hellooooooooooooooooooooooooooooooooooooooo",
    "eeeeeeee",
];

/// The default margin: a quarter of each interval's width (or of its ends for the norms).
pub const MARGIN: f64 = 0.25;

/// The file name beside a checkpoint.
pub const FILE_NAME: &str = "calibration.json";

/// The embedded model's calibration, shipped with the binary (regenerate with
/// `ensi calibrate --out ensi-cli/data/embedded_calibration.json`).
pub const EMBEDDED: &str = include_str!("../data/embedded_calibration.json");

/// Plans per prompt length.
pub type Plans = BTreeMap<usize, ModelPlan>;

/// The plan for prompts of `n` tokens, from the reference traces of the sample prompts cut
/// (or repeated) to `n` tokens, with the sigmoid bias of `n` tokens.
pub fn calibrate_length(
    model: &Model,
    n: usize,
    margin: f64,
    sigmoid_degree: usize,
    act_degree: usize,
) -> Result<ModelPlan, String> {
    let cfg = model.config();
    if n == 0 || n > cfg.max_position_embeddings {
        return Err(format!(
            "calibration: {n} tokens is outside the model's 1 to {} positions",
            cfg.max_position_embeddings
        ));
    }
    let options = ForwardOptions::new(AttentionKind::SigmoidBias(-(n as f64).ln()), false);
    let traces = CALIBRATION_PROMPTS
        .iter()
        .map(|p| {
            let t: Vec<u32> = p
                .bytes()
                .map(u32::from)
                .filter(|&t| (t as usize) < cfg.vocab_size)
                .cycle()
                .take(n)
                .collect();
            model.forward::<f64>(&t, &options)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(calibrate_model(
        &traces.iter().collect::<Vec<_>>(),
        cfg,
        margin,
        sigmoid_degree,
        act_degree,
    ))
}

fn pair(lo: f64, hi: f64) -> Value {
    json!([lo, hi])
}

/// The JSON document of `plans` for `model`.
pub fn to_json(model: &Model, plans: &Plans, margin: f64) -> Value {
    let c = model.config();
    json!({
        "format": "ensi-calibration",
        "version": 1,
        "margin": margin,
        "model": {
            "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_hidden_layers, "vocab_size": c.vocab_size,
        },
        "plans": plans.iter().map(|(n, p)| json!({
            "tokens": n,
            "layers": p.layers.iter().map(|l| json!({
                "norms": l.norms.iter().map(|x| pair(x.lo, x.hi)).collect::<Vec<_>>(),
                "norm_bounds": l.norm_bounds,
                "unit_bounds": l.unit_bounds,
                "scores": pair(l.scores.lo, l.scores.hi),
                "gate": pair(l.gate.lo, l.gate.hi),
            })).collect::<Vec<_>>(),
            "final_norm": pair(p.final_norm.lo, p.final_norm.hi),
        })).collect::<Vec<_>>(),
    })
}

fn num(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("calibration: {what} is not a finite number"))
}

fn interval(v: &Value, what: &str) -> Result<Interval, String> {
    match v.as_array().map(Vec::as_slice) {
        Some([lo, hi]) => {
            let (lo, hi) = (num(lo, what)?, num(hi, what)?);
            if lo < hi {
                Ok(Interval { lo, hi })
            } else {
                Err(format!("calibration: {what} is not an interval lo < hi"))
            }
        }
        _ => Err(format!("calibration: {what} must be [lo, hi]")),
    }
}

fn norm(v: &Value, what: &str) -> Result<NormPlan, String> {
    let i = interval(v, what)?;
    if i.lo <= 0.0 {
        return Err(format!("calibration: {what} must be positive"));
    }
    Ok(NormPlan {
        lo: i.lo,
        hi: i.hi,
        degree: 31,
    })
}

fn four<T>(
    v: &Value,
    what: &str,
    f: impl Fn(&Value) -> Result<T, String>,
) -> Result<[T; 4], String> {
    let a = v
        .as_array()
        .filter(|a| a.len() == 4)
        .ok_or_else(|| format!("calibration: {what} must have four entries"))?;
    Ok([f(&a[0])?, f(&a[1])?, f(&a[2])?, f(&a[3])?])
}

fn bound(v: &Value) -> Result<f64, String> {
    let b = num(v, "a bound")?;
    if b > 0.0 {
        Ok(b)
    } else {
        Err("calibration: bounds must be positive".into())
    }
}

/// Parses and checks a calibration document for `model`, with the polynomial degrees of this
/// run.
pub fn from_json(
    model: &Model,
    v: &Value,
    sigmoid_degree: usize,
    act_degree: usize,
) -> Result<Plans, String> {
    if v["format"] != "ensi-calibration" || v["version"] != 1 {
        return Err("calibration: not an ensi calibration file of version 1".into());
    }
    let c = model.config();
    let m = &v["model"];
    let shape = [
        ("hidden_size", c.hidden_size),
        ("intermediate_size", c.intermediate_size),
        ("num_hidden_layers", c.num_hidden_layers),
        ("vocab_size", c.vocab_size),
    ];
    for (key, want) in shape {
        if m[key].as_u64() != Some(want as u64) {
            return Err(format!(
                "calibration: made for another model ({key} differs from the model's {want})"
            ));
        }
    }
    let mut plans = Plans::new();
    for p in v["plans"].as_array().ok_or("calibration: no plans")? {
        let n = p["tokens"]
            .as_u64()
            .filter(|n| (1..=1 << 20).contains(n))
            .ok_or("calibration: a plan needs a token count")? as usize;
        let layers = p["layers"]
            .as_array()
            .filter(|l| l.len() == c.num_hidden_layers)
            .ok_or("calibration: one entry per decoder layer")?
            .iter()
            .map(|l| {
                Ok(LayerPlan {
                    norms: four(&l["norms"], "norms", |x| norm(x, "a norm interval"))?,
                    norm_bounds: four(&l["norm_bounds"], "norm_bounds", bound)?,
                    unit_bounds: four(&l["unit_bounds"], "unit_bounds", bound)?,
                    scores: interval(&l["scores"], "scores")?,
                    sigmoid_degree,
                    gate: interval(&l["gate"], "gate")?,
                    act_degree,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let final_norm = norm(&p["final_norm"], "final_norm")?;
        if plans.insert(n, ModelPlan { layers, final_norm }).is_some() {
            return Err(format!("calibration: two plans for {n} tokens"));
        }
    }
    Ok(plans)
}

/// Reads and checks `path`.
pub fn load(
    model: &Model,
    path: &Path,
    sigmoid_degree: usize,
    act_degree: usize,
) -> Result<Plans, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("calibration: cannot read {}: {e}", path.display()))?;
    from_slice(model, &bytes, sigmoid_degree, act_degree)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses and checks the bytes of a calibration file (untrusted: any bytes give a plan or a
/// reason, never a panic).
pub fn from_slice(
    model: &Model,
    bytes: &[u8],
    sigmoid_degree: usize,
    act_degree: usize,
) -> Result<Plans, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("calibration: not JSON: {e}"))?;
    from_json(model, &v, sigmoid_degree, act_degree)
}

/// Writes `value` to `path` through a temporary file and a rename, so an existing file is
/// never left half-written.
pub fn save(path: &Path, value: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    crate::files::write_atomic(path, (text + "\n").as_bytes(), false, true)
}

/// The plan for prompts of `n` tokens: from the calibration saved beside the checkpoint (the
/// embedded model's shipped one without a checkpoint), or computed now on the sample prompts
/// when the file lacks that length, there is none, or `recalibrate` is set. Returns the plan
/// and where it came from.
pub fn plan_for(
    model: &Model,
    checkpoint: Option<&Path>,
    n: usize,
    recalibrate: bool,
    sigmoid_degree: usize,
    act_degree: usize,
) -> Result<(ModelPlan, String), String> {
    let stored = if recalibrate {
        None
    } else {
        match checkpoint {
            Some(dir) if dir.join(FILE_NAME).exists() => {
                let path = dir.join(FILE_NAME);
                let plans = load(model, &path, sigmoid_degree, act_degree)?;
                Some((plans, path.display().to_string()))
            }
            Some(_) => None,
            None => {
                let v: Value = serde_json::from_str(EMBEDDED)
                    .map_err(|e| format!("the shipped calibration: {e}"))?;
                let plans = from_json(model, &v, sigmoid_degree, act_degree)?;
                Some((plans, "shipped with the embedded model".to_string()))
            }
        }
    };
    match stored.and_then(|(mut plans, source)| plans.remove(&n).map(|p| (p, source))) {
        Some(found) => Ok(found),
        None => Ok((
            calibrate_length(model, n, MARGIN, sigmoid_degree, act_degree)?,
            "computed now on the sample prompts".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ensi_bitnet::embedded_model;

    #[test]
    fn plans_survive_the_file_format() {
        let model = embedded_model().unwrap();
        let mut plans = Plans::new();
        for n in [1, 5, 8] {
            plans.insert(n, calibrate_length(&model, n, MARGIN, 31, 31).unwrap());
        }
        let back = from_json(&model, &to_json(&model, &plans, MARGIN), 31, 31).unwrap();
        assert_eq!(back, plans);
    }

    /// The shipped calibration is what `ensi calibrate` computes today (regenerate it when the
    /// calibration changes).
    #[test]
    fn the_shipped_calibration_is_current() {
        let model = embedded_model().unwrap();
        let shipped: Value = serde_json::from_str(EMBEDDED).unwrap();
        let plans = from_json(&model, &shipped, 31, 31).unwrap();
        assert_eq!(plans.len(), 32);
        for (n, p) in &plans {
            assert_eq!(
                p,
                &calibrate_length(&model, *n, MARGIN, 31, 31).unwrap(),
                "{n}"
            );
        }
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let model = embedded_model().unwrap();
        // Bytes that are not a calibration document at all.
        for bytes in [
            &b""[..],
            b"{not json",
            b"[1, 2]",
            b"null",
            &[0xff, 0xfe, 0x00],
        ] {
            let e = from_slice(&model, bytes, 31, 63).unwrap_err();
            assert!(e.starts_with("calibration:"), "{e}");
        }
        let mut plans = Plans::new();
        plans.insert(4, calibrate_length(&model, 4, MARGIN, 31, 31).unwrap());
        let good = to_json(&model, &plans, MARGIN);
        type Edit = Box<dyn Fn(&mut Value)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("format", Box::new(|v| v["format"] = json!("other"))),
            ("version", Box::new(|v| v["version"] = json!(2))),
            ("model", Box::new(|v| v["model"]["hidden_size"] = json!(64))),
            ("plans", Box::new(|v| v["plans"] = json!({}))),
            ("tokens", Box::new(|v| v["plans"][0]["tokens"] = json!(0))),
            ("layers", Box::new(|v| v["plans"][0]["layers"] = json!([]))),
            (
                "norm order",
                Box::new(|v| v["plans"][0]["layers"][0]["norms"][0] = json!([2.0, 1.0])),
            ),
            (
                "norm sign",
                Box::new(|v| v["plans"][0]["layers"][0]["norms"][1] = json!([-1.0, 1.0])),
            ),
            (
                "norm count",
                Box::new(|v| v["plans"][0]["layers"][0]["norms"] = json!([[1.0, 2.0]])),
            ),
            (
                "bound",
                Box::new(|v| v["plans"][0]["layers"][0]["unit_bounds"][2] = json!(0.0)),
            ),
            (
                "string",
                Box::new(|v| v["plans"][0]["layers"][0]["scores"] = json!(["a", 1.0])),
            ),
            (
                "gate",
                Box::new(|v| v["plans"][0]["layers"][1]["gate"] = json!(3.0)),
            ),
            (
                "final",
                Box::new(|v| v["plans"][0]["final_norm"] = json!(null)),
            ),
            (
                "duplicate",
                Box::new(|v| {
                    let p = v["plans"][0].clone();
                    v["plans"].as_array_mut().unwrap().push(p);
                }),
            ),
        ];
        for (what, edit) in edits {
            let mut v = good.clone();
            edit(&mut v);
            let e = from_json(&model, &v, 31, 31).unwrap_err();
            assert!(e.starts_with("calibration:"), "{what}: {e}");
        }
        assert!(from_json(&model, &good, 31, 31).is_ok());
    }
}
