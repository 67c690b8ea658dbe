//! `ensi calibrate`: computes a model's calibration on the sample prompts and saves it beside
//! the model (the file format and its checks are `ensi_cli::calibration`).

use crate::calibration::{FILE_NAME, MARGIN, Plans, calibrate_length, save, to_json};

/// Arguments of `ensi calibrate`.
#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    /// Checkpoint directory; default: the embedded model.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<std::path::PathBuf>,
    /// Where to write; default: `calibration.json` in the checkpoint directory (required for
    /// the embedded model).
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
    /// Calibrate prompt lengths 1 to this.
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
}

/// Runs `ensi calibrate`.
pub fn run(args: &CalibrateArgs) -> std::process::ExitCode {
    let go = || -> Result<(), String> {
        let model = crate::run::load_model(args.checkpoint.as_deref())?;
        let out = match (&args.out, &args.checkpoint) {
            (Some(o), _) => o.clone(),
            (None, Some(dir)) => dir.join(FILE_NAME),
            (None, None) => return Err("the embedded model's calibration needs --out".into()),
        };
        if args.max_tokens == 0 || args.max_tokens > 4096 {
            return Err("--max-tokens must be 1 to 4096".into());
        }
        let mut plans = Plans::new();
        for n in 1..=args.max_tokens {
            plans.insert(n, calibrate_length(&model, n, MARGIN, 31, 31)?);
        }
        save(&out, &to_json(&model, &plans, MARGIN))?;
        eprintln!(
            "ensi calibrate: {} plans (1 to {} tokens) written to {}",
            plans.len(),
            args.max_tokens,
            out.display()
        );
        Ok(())
    };
    match go() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ensi calibrate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
