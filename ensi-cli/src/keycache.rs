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
    GaloisKey, KeyRequest, KeySink, SecretKey, generate_bootstrap_keys, generate_evaluation_keys,
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

/// A sink that writes every key into the directory (when there is one) as it is generated
/// (each file through a temporary and a rename) and keeps it for the run, the keys only the
/// layers use truncated on arrival ([`Trim`]), so the whole keys never pile up in memory.
struct TeeSink<'a> {
    dir: Option<&'a Path>,
    ctx: &'a CkksContext,
    trim: &'a Trim,
    set: EvaluationKeySet,
    test_keys: bool,
}

impl KeySink for TeeSink<'_> {
    type Error = SinkError;

    fn accept(&mut self, mut key: EvaluationKey) -> Result<(), SinkError> {
        if let Some(dir) = self.dir {
            let bytes = finish_bytes(key.to_bytes()?, self.test_keys)?;
            write_atomic(&dir.join(key_file(&key)), &bytes, false, true).map_err(SinkError)?;
        }
        self.trim.key_of(self.ctx, &mut key)?;
        self.set.insert(key);
        Ok(())
    }
}

/// Which Galois keys only the layers use, and the highest level they rotate at (the
/// bootstrapper's output level): those keys are truncated to it
/// ([`ensi_ckks::SwitchingKey::truncate`]), about a quarter of each key's memory at N = 2^16.
/// Bootstrapping's own keys (`keep`) stay whole, and so does every key written to a file.
pub struct Trim {
    level: usize,
    keep: Vec<usize>,
    /// With `BootstrapParametersLiteral::compact_keys`: bootstrapping's keys cut to the
    /// highest level it uses each at, and every Galois key compacted.
    compact: Option<std::collections::BTreeMap<usize, usize>>,
}

impl Trim {
    /// The trim of a run that bootstraps with `literal`.
    pub fn of(ctx: &CkksContext, literal: &BootstrapParametersLiteral) -> Result<Self, String> {
        Ok(Self {
            level: ctx
                .max_level()
                .checked_sub(literal.depth())
                .ok_or("the parameter set cannot bootstrap")?,
            keep: literal
                .key_request_of(ctx.params())
                .map_err(|e| e.to_string())?
                .distinct_galois_elements(),
            compact: if literal.compact_keys {
                Some(literal.galois_levels(ctx).map_err(|e| e.to_string())?)
            } else {
                None
            },
        })
    }

    /// Trims one Galois key: a layers-only key truncated to the layers' level; with
    /// compaction, bootstrapping's keys cut to their levels and the key compacted.
    fn key(&self, ctx: &CkksContext, k: &mut GaloisKey) -> Result<(), ensi_ckks::CkksError> {
        if k.is_level0() {
            return Ok(());
        }
        let g = k.galois_element();
        if !self.keep.contains(&g) {
            k.truncate(ctx, self.level)?;
        }
        if let Some(levels) = &self.compact {
            if let Some(&level) = levels.get(&g) {
                k.truncate(ctx, level)?;
            }
            k.compact(ctx)?;
        }
        Ok(())
    }

    /// Trims one key of any kind (only Galois keys change, [`Self::key`]).
    pub(crate) fn key_of(
        &self,
        ctx: &CkksContext,
        key: &mut EvaluationKey,
    ) -> Result<(), ensi_ckks::CkksError> {
        match key {
            EvaluationKey::Galois(k) => self.key(ctx, k),
            _ => Ok(()),
        }
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
/// (when given) and memory, trimmed by `trim`.
#[allow(clippy::too_many_arguments)]
fn generate<G: RngCore + CryptoRng>(
    ctx: &Arc<CkksContext>,
    sk: &SecretKey,
    literal: Option<&BootstrapParametersLiteral>,
    request: &KeyRequest,
    dir: Option<&Path>,
    trim: &Trim,
    test_keys: bool,
    rng: &mut G,
) -> Result<EvaluationKeySet, String> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let mut sink = TeeSink {
        dir,
        ctx,
        trim,
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
    let trim = Trim::of(ctx, literal)?;
    let Some(dir) = dir.filter(|d| d.join("params.bin").exists()) else {
        let sk = SecretKey::generate(ctx, rng).map_err(err)?;
        let all = generate(
            ctx,
            &sk,
            Some(literal),
            &request,
            dir,
            &trim,
            test_keys,
            rng,
        )?;
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
    let (mut set, count, bytes) = load_evaluation_keys(ctx, dir, Some(&trim))?;
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
            &trim,
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
