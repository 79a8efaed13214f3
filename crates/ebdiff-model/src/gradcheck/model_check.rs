//! The whole check of one model config, as `cargo xtask gradcheck` runs it: every layer's explicit
//! VJP against autodiff (worst relative error per layer kind), ∂(DSM loss)/∂θ against central
//! finite differences on random parameter entries (energy models), and a verdict that fails when
//! a tolerance is exceeded, a check is vacuous, or a layer with parameters is not reached by the
//! layer visitor ([`crate::vjp::Visitor`]).

use super::{
    CheckResult, Reference, check_dsm_param_grads, check_model_layers, perturb_parameters,
    unreached_layers,
};
use crate::config::{ModelConfig, ParameterizationKind};
use crate::materialize::seeded_init;
use ebdiff_core::rng::stream;
use ebdiff_core::{NamedDevice, Precision};
use std::collections::BTreeMap;
use std::io::Write;

/// VJP vs autodiff is the same math in a different order, so only round-off differs.
pub const AUTODIFF_TOL: f64 = 1e-4;

/// What [`check_model`] checks, and how.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GradcheckOptions {
    /// Batch size of the random test inputs.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = GradcheckOptions::default().batch))]
    pub batch: usize,
    /// Number of random parameter entries checked against finite differences.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = GradcheckOptions::default().fd_samples))]
    pub fd_samples: usize,
    #[cfg_attr(feature = "clap", arg(long, default_value_t = GradcheckOptions::default().seed))]
    pub seed: u64,
    /// Override the parameterization to check (`eps` or `energy`); default: the config's.
    #[cfg_attr(feature = "clap", arg(long))]
    pub parameterization: Option<ParameterizationKind>,
    /// Check at the config's initialization instead of a randomly perturbed point. With
    /// zero-initialized output layers most gradients are then exactly zero (and the run fails
    /// as vacuous).
    #[cfg_attr(feature = "clap", arg(long))]
    pub at_init: bool,
    /// Print every layer check, not only the worst per layer kind.
    #[cfg_attr(feature = "clap", arg(long))]
    pub all: bool,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            batch: 2,
            fd_samples: 6,
            seed: 0,
            parameterization: None,
            at_init: false,
            all: false,
        }
    }
}

/// Every check that passed, for a caller that wants the numbers rather than the printed tables.
#[derive(Debug, Clone)]
pub struct GradcheckReport {
    /// One per layer the visitor met: the explicit VJP against autodiff.
    pub layers: Vec<CheckResult>,
    /// ∂(DSM loss)/∂θ against finite differences (energy models only; empty for score models).
    pub parameter_grads: Vec<CheckResult>,
    /// Finite-difference step and tolerance at the device's precision.
    pub fd_step: f64,
    pub fd_tol: f64,
}

impl GradcheckReport {
    /// The worst relative error of the layer checks.
    pub fn worst_layer_error(&self) -> f64 {
        worst(&self.layers)
    }

    /// The worst relative error of the parameter-gradient checks (0 when there are none).
    pub fn worst_parameter_error(&self) -> f64 {
        worst(&self.parameter_grads)
    }
}

/// Why a model failed its check (the tables are written before), or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum GradcheckError {
    #[error(
        "gradcheck runs in f32 or f64 (--dtype {0} has too little precision for finite \
         differences; check f32 and train in {0})"
    )]
    Precision(Precision),
    #[error(
        "vacuous checks (reference gradient identically zero): {0:?}; drop --at-init to check at a perturbed point"
    )]
    Vacuous(Vec<String>),
    #[error(
        "layers with parameters that no block exposes to the layer visitor (so they were not checked): {0:?}"
    )]
    Unreached(Vec<String>),
    #[error("VJP vs autodiff: worst relative error {worst:.2e} exceeds {AUTODIFF_TOL:.0e}")]
    Vjp { worst: f64 },
    #[error(
        "DSM parameter gradients vs finite differences: worst {worst:.2e} exceeds {tolerance:.0e}"
    )]
    ParameterGrads { worst: f64, tolerance: f64 },
    #[error("cannot write the gradcheck tables: {0}")]
    Output(#[from] std::io::Error),
}

/// Checks the model of `config` (with `timesteps` noise levels) on `on`, writing the tables that
/// `cargo xtask gradcheck` prints to `out`. Finite differences take step 1e-2 with tolerance
/// 5e-2 in f32, step and tolerance 1e-5 in f64; other precisions are refused.
///
/// ```no_run
/// use ebdiff_core::NamedDevice;
/// use ebdiff_model::ModelConfig;
/// use ebdiff_model::gradcheck::{GradcheckOptions, check_model};
///
/// let config: ModelConfig = ebdiff_core::parse_toml(
///     r#"parameterization = "energy"
///        data_shape = [2]
///        backbone = { kind = "mlp2d", hidden = 32, blocks = 2, emb_dim = 16 }"#,
///     "example",
/// )?;
/// let report = check_model(
///     &config,
///     100,
///     &GradcheckOptions::default(),
///     &NamedDevice::cpu(),
///     &mut std::io::stdout(),
/// )?;
/// assert!(report.worst_layer_error() < 1e-4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_model(
    config: &ModelConfig,
    timesteps: usize,
    opts: &GradcheckOptions,
    on: &NamedDevice,
    out: &mut dyn Write,
) -> Result<GradcheckReport, GradcheckError> {
    let mut config = config.clone();
    if let Some(p) = opts.parameterization {
        config.parameterization = p;
    }
    let (fd_step, fd_tol) = match on.precision {
        Precision::F32 => (1e-2, 5e-2),
        Precision::F64 => (1e-5, 1e-5),
        other => return Err(GradcheckError::Precision(other)),
    };
    let device = on.device.clone().autodiff();
    let mut rng = stream(opts.seed, "gradcheck");
    let mut model = seeded_init(&device, opts.seed, || config.init(timesteps, &device));
    if !opts.at_init {
        model = perturb_parameters(model, 0.05, &mut rng);
    }
    writeln!(
        out,
        "gradcheck: backend {}, {}, batch {}, {:?} model, data shape {:?}",
        on.backend, on.precision, opts.batch, model.parameterization, config.data_shape
    )?;
    let layers = check_model_layers(&model, opts.batch, timesteps, Reference::Autodiff, &mut rng);
    let unreached = unreached_layers(&model, &layers);
    let parameter_grads = if model.is_energy() {
        check_dsm_param_grads(
            &model,
            opts.batch,
            timesteps,
            opts.fd_samples,
            fd_step,
            &mut rng,
        )
    } else {
        Vec::new()
    };
    let report = GradcheckReport {
        layers,
        parameter_grads,
        fd_step,
        fd_tol,
    };
    write_tables(&report, opts.all, out)?;
    verdict(&report, unreached)?;
    writeln!(out, "\nall checks passed")?;
    Ok(report)
}

fn worst(rows: &[CheckResult]) -> f64 {
    rows.iter().map(|r| r.rel_err).fold(0.0, f64::max)
}

/// The worst error per layer kind (with the instance where it occurred), and the finite
/// differences; every check with `all`.
fn write_tables(report: &GradcheckReport, all: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let layers = &report.layers;
    if all {
        write_table(layers, out)?;
        writeln!(out)?;
    }
    let mut worst_per_kind: BTreeMap<&str, (usize, &CheckResult)> = BTreeMap::new();
    for r in layers {
        let e = worst_per_kind.entry(r.kind.as_str()).or_insert((0, r));
        e.0 += 1;
        if r.rel_err > e.1.rel_err {
            e.1 = r;
        }
    }
    writeln!(
        out,
        "worst relative error per layer kind (VJP vs autodiff, {} layer checks, tolerance {AUTODIFF_TOL:.0e}):",
        layers.len()
    )?;
    writeln!(
        out,
        "  {:<20} {:>6} {:>10}  worst at",
        "kind", "checks", "rel.err"
    )?;
    for (kind, (n, r)) in &worst_per_kind {
        writeln!(out, "  {kind:<20} {n:>6} {:>10.2e}  {}", r.rel_err, r.name)?;
    }
    let worst_all = report.worst_layer_error();
    writeln!(
        out,
        "  {:<20} {:>6} {worst_all:>10.2e}",
        "ALL",
        layers.len()
    )?;
    if !report.parameter_grads.is_empty() {
        writeln!(
            out,
            "\n∂(DSM loss)/∂θ vs central finite differences (step {:.0e}, tolerance {:.0e}):",
            report.fd_step, report.fd_tol
        )?;
        write_table(&report.parameter_grads, out)?;
    }
    Ok(())
}

fn write_table(rows: &[CheckResult], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<44} {:<12} {:>10} {:>10}",
        "check", "reference", "rel.err", "scale"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<44} {:<12} {:>10.2e} {:>10.2e}",
            r.name, r.reference, r.rel_err, r.scale
        )?;
    }
    Ok(())
}

fn verdict(report: &GradcheckReport, unreached: Vec<String>) -> Result<(), GradcheckError> {
    let vacuous: Vec<String> = report
        .layers
        .iter()
        .filter(|r| r.scale == 0.0)
        .map(|r| r.name.clone())
        .collect();
    if !vacuous.is_empty() {
        return Err(GradcheckError::Vacuous(vacuous));
    }
    if !unreached.is_empty() {
        return Err(GradcheckError::Unreached(unreached));
    }
    let worst = report.worst_layer_error();
    if worst > AUTODIFF_TOL {
        return Err(GradcheckError::Vjp { worst });
    }
    let worst = report.worst_parameter_error();
    if worst > report.fd_tol {
        return Err(GradcheckError::ParameterGrads {
            worst,
            tolerance: report.fd_tol,
        });
    }
    Ok(())
}
