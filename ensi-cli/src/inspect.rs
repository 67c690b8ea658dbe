//! `ensi inspect FILE`: what a file of the ensi format is, without secrets. The header gives the
//! object type, format version, parameter id and test-key flag; with the parameter set (the
//! `params.bin` beside the file, or `--params`) the body is decoded and checked, and the report
//! adds levels and limbs, digits, the secret a key is under, the modulus it spans and the
//! security verdict for that secret. A secret key's contents are never printed.

use crate::sets::ParamSet;
use clap::Args;
use ensi_ckks::serialize::{CiphertextBundle, ObjectType, peek_header};
use ensi_ckks::{
    BootstrapParametersLiteral, Ciphertext, CkksContext, DecodeOptions, EvaluationKey, Parameters,
    Plaintext, PublicKey, SecretKey, SecretReport, SecurityReport, SwitchingKey,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Arguments of `ensi inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The file to inspect.
    file: PathBuf,
    /// The parameter set file (default: params.bin in the same directory).
    #[arg(long, value_name = "FILE")]
    params: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `ensi inspect`.
pub fn run(args: &InspectArgs) -> ExitCode {
    match inspect(args) {
        Ok(v) => {
            if args.json {
                println!("{v}");
            } else {
                print_text(&v, 0);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ensi inspect: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_text(v: &Value, indent: usize) {
    if let Value::Object(map) = v {
        for (k, x) in map {
            match x {
                Value::Object(_) => {
                    println!("{:indent$}{k}:", "");
                    print_text(x, indent + 2);
                }
                Value::Array(items) if items.iter().all(Value::is_object) => {
                    println!("{:indent$}{k}:", "");
                    for item in items {
                        print_text(item, indent + 2);
                        println!();
                    }
                }
                Value::String(s) => println!("{:indent$}{k}: {s}", ""),
                other => println!("{:indent$}{k}: {other}", ""),
            }
        }
    }
}

fn type_name(t: ObjectType) -> &'static str {
    match t {
        ObjectType::Parameters => "parameter set",
        ObjectType::SecretKey => "secret key",
        ObjectType::PublicKey => "public key",
        ObjectType::Plaintext => "plaintext",
        ObjectType::Ciphertext => "ciphertext",
        ObjectType::RelinearizationKey => "relinearization key",
        ObjectType::GaloisKey => "Galois key",
        ObjectType::Level0GaloisKey => "level-0 Galois key",
        ObjectType::DenseToSparseKey => "dense-to-sparse key (bootstrapping)",
        ObjectType::SparseToDenseKey => "sparse-to-dense key (bootstrapping)",
        ObjectType::CiphertextBundle => "ciphertext bundle (encrypted activations or results)",
        _ => "unknown object",
    }
}

fn secret_json(s: &SecretReport) -> Value {
    json!({
        "secret": s.role.name(),
        "hamming_weight": s.hamming_weight,
        "log_n": s.log_n,
        "log_modulus": round1(s.log_modulus),
        "spanned_by": s.spanned_by,
        "max_log_modulus_128": s.max_log_modulus.map(round1),
        "estimated_bits": s.estimated_bits.map(round1),
        "secure_128": s.secure_128,
        "basis": s.basis,
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The security report of `params`, with bootstrapping's ephemeral secret when the set is a
/// named bootstrappable one.
fn report_for(params: &Parameters) -> SecurityReport {
    match ParamSet::from_id(params.id()).and_then(ParamSet::bootstrap_literal) {
        Some(lit) => lit.security_report(params),
        None => params.security_report(),
    }
}

fn key_json(key: &SwitchingKey) -> Value {
    json!({
        "span": format!("{:?}", key.span()),
        "limbs": key.limbs(),
        "digits": key.digits(),
        "log_modulus": round1(key.log_modulus()),
    })
}

fn load_params(path: &Path) -> Result<Parameters, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Parameters::from_bytes(&bytes, DecodeOptions::default().allow_insecure(true))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn inspect(args: &InspectArgs) -> Result<Value, String> {
    let path = &args.file;
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
    );
    let header = peek_header(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = json!({
        "file": path.display().to_string(),
        "bytes": bytes.len(),
        "object": type_name(header.object_type),
        "format_version": header.version,
        "params_id": header.params_id.to_string(),
        "test_key": header.test_key,
    });
    if header.test_key {
        out["warning"] =
            json!("made from a reproducible seed (--seed): for tests only, not secure");
    }
    if header.object_type == ObjectType::Parameters {
        let params = Parameters::from_bytes(&bytes, DecodeOptions::default().allow_insecure(true))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let lit = params.literal();
        out["parameters"] = json!({
            "named_set": ParamSet::from_id(params.id()).map(ParamSet::name),
            "log_n": lit.log_n,
            "q_primes": params.q().len(),
            "p_primes": params.p().len(),
            "dnum": params.dnum(),
            "log_qp": round1(params.log_qp()),
            "log_default_scale": lit.log_default_scale,
            "built_as": format!("{:?}", params.security()),
        });
        let report = report_for(&params);
        out["security"] = json!({
            "all_128_bit": report.is_128_bit(),
            "secrets": report.secrets.iter().map(secret_json).collect::<Vec<_>>(),
        });
        return Ok(out);
    }
    let params_path = args.params.clone().unwrap_or_else(|| {
        path.parent()
            .unwrap_or_else(|| Path::new("."))
            .join("params.bin")
    });
    let params = match load_params(&params_path) {
        Ok(p) if p.id() == header.params_id => p,
        Ok(p) => {
            out["note"] = json!(format!(
                "{} is parameter set {}, not this file's: body not decoded",
                params_path.display(),
                p.id()
            ));
            return Ok(out);
        }
        Err(e) => {
            out["note"] = json!(format!("no parameter set ({e}): body not decoded"));
            return Ok(out);
        }
    };
    let report = report_for(&params);
    let main = report.secrets.first().map(secret_json);
    let ctx: Arc<CkksContext> = CkksContext::new(params).map_err(|e| e.to_string())?;
    let err = |e: ensi_ckks::CkksError| format!("{}: {e}", path.display());
    match header.object_type {
        ObjectType::SecretKey => {
            // Decoded only to check it; nothing of it is printed.
            SecretKey::from_bytes(&ctx, &bytes).map_err(err)?;
            out["contents"] = json!("secret: not shown");
            out["ring_degree"] = json!(ctx.n());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path) {
                    let mode = meta.permissions().mode() & 0o777;
                    out["mode"] = json!(format!("{mode:o}"));
                    if mode & 0o077 != 0 {
                        out["warning"] = json!("the secret key is readable by others: chmod 600");
                    }
                }
            }
            out["security"] = json!(main);
        }
        ObjectType::PublicKey => {
            let pk = PublicKey::from_bytes(&ctx, &bytes).map_err(err)?;
            let (b, _) = pk.polys();
            out["limbs"] = json!(b.limbs());
            out["under"] = json!("main secret");
            out["security"] = json!(main);
        }
        ObjectType::Plaintext => {
            let pt = Plaintext::from_bytes(&ctx, &bytes).map_err(err)?;
            out["level"] = json!(pt.level());
            out["limbs"] = json!(pt.level() + 1);
            out["slots"] = json!(pt.slots());
            out["log_scale"] = json!(pt.scale().log2());
        }
        ObjectType::CiphertextBundle => {
            let b = CiphertextBundle::from_bytes(&ctx, &bytes).map_err(err)?;
            out["layout"] = json!(if b.layout == 0 {
                "column-block"
            } else {
                "other"
            });
            out["content"] = json!(crate::roles::content_name(b.content));
            out["rows"] = json!(b.rows);
            out["padded_rows"] = json!(b.padded_rows);
            out["cols"] = json!(b.cols);
            out["ciphertexts"] = json!(b.cts.len());
            out["level"] = json!(b.cts.first().map(Ciphertext::level));
            out["under"] = json!("main secret");
        }
        ObjectType::Ciphertext => {
            let ct = Ciphertext::from_bytes(&ctx, &bytes).map_err(err)?;
            out["level"] = json!(ct.level());
            out["limbs"] = json!(ct.level() + 1);
            out["degree"] = json!(ct.parts().len() - 1);
            out["slots"] = json!(ct.slots());
            out["log_scale"] = json!(ct.scale().log2());
            out["under"] = json!("main secret");
        }
        _ => {
            let key = EvaluationKey::from_bytes(&ctx, &bytes).map_err(err)?;
            out["key"] = key_json(key.switching_key());
            match &key {
                EvaluationKey::Galois(g) => {
                    out["galois_element"] = json!(g.galois_element());
                }
                EvaluationKey::DenseToSparse(d) => {
                    out["hamming_weight"] = json!(d.hamming_weight());
                }
                _ => {}
            }
            if let EvaluationKey::DenseToSparse(d) = &key {
                out["under"] = json!("ephemeral sparse secret");
                let lit = BootstrapParametersLiteral {
                    ephemeral_hamming_weight: d.hamming_weight(),
                    ..BootstrapParametersLiteral::default()
                };
                let r = lit.security_report(ctx.params());
                out["security"] = r.secrets.get(1).map(secret_json).into();
            } else {
                out["under"] = json!("main secret");
                out["security"] = json!(main);
            }
        }
    }
    Ok(out)
}
