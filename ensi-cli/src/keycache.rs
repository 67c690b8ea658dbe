//! The key directory of `ensi run --keys DIR`: keys made by one run are written there (the
//! secret key owner-only, every file through a temporary and a rename, all or nothing) and
//! loaded by the next run on the same parameter set instead of being generated again. Keys a
//! later run needs and the directory lacks (rotations for another prompt length) are generated
//! and added.

use crate::ckks_cmd::{load_evaluation_keys, load_secret};
use crate::files::write_atomic;
use crate::keygen::{finish_bytes, key_file};
use crate::sets::load_context;
use ensi_ckks::{
    BootstrapKeys, BootstrapParametersLiteral, CkksContext, EvaluationKey, EvaluationKeySet,
    KeyRequest, KeySink, SecretKey, generate_bootstrap_keys, generate_evaluation_keys,
};
use rand_core::{CryptoRng, RngCore};
use std::path::Path;
use std::sync::Arc;

/// Where the keys of a run came from.
pub struct Obtained {
    /// The client's secret key.
    pub sk: SecretKey,
    /// Every evaluation key of the run (bootstrapping's and the layers' rotations).
    pub keys: BootstrapKeys,
    /// What happened, for the report.
    pub source: String,
}

/// A sink that writes every key into the directory as it is generated (each file through a
/// temporary and a rename) and keeps it for the run.
struct TeeSink<'a> {
    dir: &'a Path,
    set: EvaluationKeySet,
    test_keys: bool,
}

impl KeySink for TeeSink<'_> {
    type Error = SinkError;

    fn accept(&mut self, key: EvaluationKey) -> Result<(), SinkError> {
        let bytes = finish_bytes(key.to_bytes()?, self.test_keys)?;
        write_atomic(&self.dir.join(key_file(&key)), &bytes, false, true).map_err(SinkError)?;
        self.set.insert(key);
        Ok(())
    }
}

impl From<ensi_ckks::CkksError> for SinkError {
    fn from(e: ensi_ckks::CkksError) -> Self {
        Self(e.to_string())
    }
}

/// A key-generation or file error.
struct SinkError(String);

/// Generates the keys of `request` (with bootstrapping's when `literal` is given) into `dir`
/// (when given) and memory.
fn generate<G: RngCore + CryptoRng>(
    ctx: &Arc<CkksContext>,
    sk: &SecretKey,
    literal: Option<&BootstrapParametersLiteral>,
    request: &KeyRequest,
    dir: Option<&Path>,
    test_keys: bool,
    rng: &mut G,
) -> Result<EvaluationKeySet, String> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let mut sink = TeeSink {
                dir,
                set: EvaluationKeySet::new(),
                test_keys,
            };
            match literal {
                Some(lit) => generate_bootstrap_keys(ctx, sk, lit, request, &mut sink, rng),
                None => generate_evaluation_keys(ctx, sk, request, &mut sink, rng),
            }
            .map_err(|e| e.0)?;
            Ok(sink.set)
        }
        None => {
            let mut set = EvaluationKeySet::new();
            match literal {
                Some(lit) => generate_bootstrap_keys(ctx, sk, lit, request, &mut set, rng),
                None => generate_evaluation_keys(ctx, sk, request, &mut set, rng),
            }
            .map_err(|e| e.to_string())?;
            Ok(set)
        }
    }
}

/// The run's keys: loaded from `dir` when it holds keys for this parameter set (missing
/// rotations generated and added), generated and written there otherwise; generated in memory
/// only when there is no directory.
#[allow(clippy::too_many_arguments)]
pub fn obtain<G: RngCore + CryptoRng>(
    ctx: &Arc<CkksContext>,
    literal: &BootstrapParametersLiteral,
    rotations: &[isize],
    dir: Option<&Path>,
    allow_insecure: bool,
    test_keys: bool,
    rng: &mut G,
) -> Result<Obtained, String> {
    let err = |e: ensi_ckks::CkksError| e.to_string();
    let request = KeyRequest::new().with_rotations(ctx, rotations);
    let Some(dir) = dir.filter(|d| d.join("params.bin").exists()) else {
        let sk = SecretKey::generate(ctx, rng).map_err(err)?;
        let all = generate(ctx, &sk, Some(literal), &request, dir, test_keys, rng)?;
        let source = match dir {
            Some(d) => {
                // The secret key, then the parameters last: a directory without params.bin is
                // an unfinished one, which the next run regenerates.
                let mut bytes = sk.to_bytes().map_err(err)?;
                if test_keys {
                    ensi_ckks::serialize::mark_test_object(&mut bytes).map_err(err)?;
                }
                let wrote = write_atomic(&d.join("secret.key"), &bytes, true, true);
                zeroize::Zeroize::zeroize(&mut bytes);
                wrote?;
                let params =
                    finish_bytes(ctx.params().to_bytes().map_err(err)?, test_keys).map_err(err)?;
                write_atomic(&d.join("params.bin"), &params, false, true)?;
                format!("generated and saved in {}", d.display())
            }
            None => "generated in memory".to_string(),
        };
        let keys = BootstrapKeys::from_set(all).map_err(err)?;
        return Ok(Obtained { sk, keys, source });
    };
    let stored = load_context(dir, allow_insecure)?;
    if stored.id() != ctx.id() {
        return Err(format!(
            "{} holds keys for another parameter set ({}, this run needs {}): choose another \
             --keys directory",
            dir.display(),
            stored.id(),
            ctx.id()
        ));
    }
    let sk = load_secret(ctx, dir)?;
    let (mut set, count, bytes) = load_evaluation_keys(ctx, dir)?;
    let have = set.galois_elements();
    let missing: Vec<isize> = rotations
        .iter()
        .copied()
        .filter(|&r| !have.contains(&ctx.rotation_galois_element(r)))
        .collect();
    let mut source = format!(
        "loaded from {} ({count} keys, {:.0} MB)",
        dir.display(),
        bytes as f64 / 1e6
    );
    if !missing.is_empty() {
        let extra = generate(
            ctx,
            &sk,
            None,
            &KeyRequest::new().with_rotations(ctx, &missing),
            Some(dir),
            test_keys,
            rng,
        )?;
        source.push_str(&format!(
            ", {} rotation keys added",
            extra.galois_elements().len()
        ));
        for key in extra.into_keys() {
            set.insert(key);
        }
    }
    let keys = BootstrapKeys::from_set(set).map_err(err)?;
    Ok(Obtained { sk, keys, source })
}
