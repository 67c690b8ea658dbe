//! The named parameter sets the CLI offers, their bootstrapping parameters, and how a set is
//! recognised again from a `params.bin` file (by its parameter id).

use clap::ValueEnum;
use ensi_ckks::{
    BootstrapParametersLiteral, CkksContext, CkksError, DecodeOptions, Parameters,
    ParametersLiteral, ParamsId,
};
use std::path::Path;
use std::sync::Arc;

/// The named parameter sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ParamSet {
    /// N = 2^16, 26 + 5 primes, 6 digits (128-bit secure, made for bootstrapping).
    N16Bootstrappable,
    /// N = 2^15, 15 + 4 primes, 4 digits (128-bit secure, leveled).
    N15Leveled,
    /// N = 2^11, a few primes: INSECURE, for tests.
    InsecureTest,
    /// N = 2^12, laid out for bootstrapping: INSECURE, for tests.
    InsecureBootstrapTest,
    /// N = 2^13, 10 levels after bootstrapping (the encrypted layers' plan): INSECURE, for
    /// tests and demos of the client and server roles.
    InsecureRun,
}

impl ParamSet {
    const ALL: [Self; 5] = [
        Self::N16Bootstrappable,
        Self::N15Leveled,
        Self::InsecureTest,
        Self::InsecureBootstrapTest,
        Self::InsecureRun,
    ];

    /// The checked parameter set.
    pub fn parameters(self) -> Result<Parameters, CkksError> {
        match self {
            Self::N16Bootstrappable => Parameters::new(ParametersLiteral::n16_bootstrappable()),
            Self::N15Leveled => Parameters::new(ParametersLiteral::n15_leveled()),
            Self::InsecureTest => Parameters::new_insecure(ParametersLiteral::insecure_test(11, 4)),
            Self::InsecureBootstrapTest => {
                Parameters::new_insecure(ParametersLiteral::insecure_bootstrap_test(12, 2, 9))
            }
            Self::InsecureRun => {
                let mut lit = ParametersLiteral::insecure_bootstrap_test(13, 10, 9);
                lit.dnum = 8;
                Parameters::new_insecure(lit)
            }
        }
    }

    /// The bootstrapping parameters laid out for this set, if it is bootstrappable.
    pub fn bootstrap_literal(self) -> Option<BootstrapParametersLiteral> {
        match self {
            Self::N16Bootstrappable => Some(BootstrapParametersLiteral::default()),
            Self::InsecureBootstrapTest | Self::InsecureRun => Some(BootstrapParametersLiteral {
                cts_level_budget: 2,
                stc_level_budget: 2,
                ..BootstrapParametersLiteral::default()
            }),
            Self::N15Leveled | Self::InsecureTest => None,
        }
    }

    /// The named set with this parameter id, if any.
    pub fn from_id(id: ParamsId) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.parameters().is_ok_and(|p| p.id() == id))
    }

    /// The command-line name.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_owned())
    }
}

/// Reads `dir/params.bin` and builds its context. Sets marked insecure are accepted only with
/// `allow_insecure` (the error says so).
pub fn load_context(dir: &Path, allow_insecure: bool) -> Result<Arc<CkksContext>, String> {
    CkksContext::new(load_params(dir, allow_insecure)?).map_err(|e| e.to_string())
}

/// Reads `dir/params.bin` (refusing an INSECURE set unless `allow_insecure`), without building
/// a context: what the constrained client needs.
pub fn load_params(dir: &Path, allow_insecure: bool) -> Result<Parameters, String> {
    let path = dir.join("params.bin");
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Parameters::from_bytes(
        &bytes,
        DecodeOptions::default().allow_insecure(allow_insecure),
    )
    .map_err(|e| {
        let hint = if matches!(
            e,
            CkksError::Format(ensi_ckks::FormatError::InsecureParameters)
        ) {
            " (pass --allow-insecure for test keys)"
        } else {
            ""
        };
        format!("{}: {e}{hint}", path.display())
    })
}
