//! `cargo xtask gradcheck`: explicit VJPs vs autodiff, per layer, and ∂(DSM loss)/∂θ vs finite
//! differences, for any model config. Exits non-zero when a tolerance is exceeded, or when a layer
//! with parameters is not reached by the layer visitor (`ebdiff_model::vjp::Visitor`).

use anyhow::{Result, bail};
use clap::Args;
use ebdiff_core::rng::stream;
use ebdiff_core::{BackendKind, Precision};
use ebdiff_model::gradcheck::{
    CheckResult, Reference, check_dsm_param_grads, check_model_layers, perturb_parameters,
    unreached_layers,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct GradcheckArgs {
    /// Any config with a [model] table (default: the small UNet of configs/unet-small.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Batch size of the random test inputs.
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Number of random parameter entries checked against finite differences.
    #[arg(long, default_value_t = 6)]
    fd_samples: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Override the parameterization to check (`eps` or `energy`); default: the config's.
    #[arg(long)]
    parameterization: Option<String>,
    /// Check at the config's initialization instead of a randomly perturbed point. With
    /// zero-initialized output layers most gradients are then exactly zero (and the run fails
    /// as vacuous).
    #[arg(long)]
    at_init: bool,
    /// Print every layer check, not only the worst per layer kind.
    #[arg(long)]
    all: bool,
}

/// Tolerances: VJP vs autodiff is the same math in a different order, so only round-off differs.
const AUTODIFF_TOL: f64 = 1e-4;

/// `dtype` is the global `--dtype`: f32, or f64 for tight finite differences.
pub fn run(args: GradcheckArgs, backend: BackendKind, dtype: Precision) -> Result<()> {
    let (mut model_cfg, schedule_cfg) =
        ebdiff_trainer::config::ModelSection::load(args.config.as_deref())
            .map(|s| (s.model, s.diffusion))?;
    if let Some(p) = &args.parameterization {
        model_cfg.parameterization =
            ebdiff_core::parse_toml::<Wrap>(&format!("p = \"{p}\""), "--parameterization")?.p;
    }
    let (fd_step, fd_tol) = match dtype {
        Precision::F32 => (1e-2, 5e-2),
        Precision::F64 => (1e-5, 1e-5),
        other => bail!(
            "gradcheck runs in f32 or f64 (--dtype {other} has too little precision for finite \
             differences; check f32 and train in {other})"
        ),
    };
    let device = crate::device(backend)?.autodiff();
    let timesteps = schedule_cfg.timesteps();
    let mut rng = stream(args.seed, "gradcheck");
    let mut model =
        ebdiff_model::seeded_init(&device, args.seed, || model_cfg.init(timesteps, &device));
    if !args.at_init {
        model = perturb_parameters(model, 0.05, &mut rng);
    }
    println!(
        "gradcheck: backend {backend}, {}, batch {}, {:?} model, data shape {:?}",
        dtype, args.batch, model.parameterization, model_cfg.data_shape
    );
    let layers = check_model_layers(&model, args.batch, timesteps, Reference::Autodiff, &mut rng);
    let unreached = unreached_layers(&model, &layers);
    let fd = if model.is_energy() {
        check_dsm_param_grads(
            &model,
            args.batch,
            timesteps,
            args.fd_samples,
            fd_step,
            &mut rng,
        )
    } else {
        Vec::new()
    };
    if args.all {
        print_table(&layers);
        println!();
    }
    // Worst error per layer kind, with the instance where it occurred.
    let mut worst: BTreeMap<&str, (usize, &CheckResult)> = BTreeMap::new();
    for r in &layers {
        let e = worst.entry(r.kind.as_str()).or_insert((0, r));
        e.0 += 1;
        if r.rel_err > e.1.rel_err {
            e.1 = r;
        }
    }
    println!(
        "worst relative error per layer kind (VJP vs autodiff, {} layer checks, tolerance {AUTODIFF_TOL:.0e}):",
        layers.len()
    );
    println!(
        "  {:<20} {:>6} {:>10}  worst at",
        "kind", "checks", "rel.err"
    );
    for (kind, (n, r)) in &worst {
        println!("  {kind:<20} {n:>6} {:>10.2e}  {}", r.rel_err, r.name);
    }
    let worst_all = layers.iter().map(|r| r.rel_err).fold(0.0, f64::max);
    println!("  {:<20} {:>6} {worst_all:>10.2e}", "ALL", layers.len());
    if !fd.is_empty() {
        println!(
            "\n∂(DSM loss)/∂θ vs central finite differences (step {fd_step:.0e}, tolerance {fd_tol:.0e}):"
        );
        print_table(&fd);
    }
    let fd_worst = fd.iter().map(|r| r.rel_err).fold(0.0, f64::max);
    let vacuous: Vec<&str> = layers
        .iter()
        .filter(|r| r.scale == 0.0)
        .map(|r| r.name.as_str())
        .collect();
    if !vacuous.is_empty() {
        bail!(
            "vacuous checks (reference gradient identically zero): {vacuous:?}; drop --at-init to check at a perturbed point"
        );
    }
    if !unreached.is_empty() {
        bail!(
            "layers with parameters that no block exposes to the layer visitor (so they were not checked): {unreached:?}"
        );
    }
    if worst_all > AUTODIFF_TOL {
        bail!("VJP vs autodiff: worst relative error {worst_all:.2e} exceeds {AUTODIFF_TOL:.0e}");
    }
    if fd_worst > fd_tol {
        bail!(
            "DSM parameter gradients vs finite differences: worst {fd_worst:.2e} exceeds {fd_tol:.0e}"
        );
    }
    println!("\nall checks passed");
    Ok(())
}

#[derive(serde::Deserialize)]
struct Wrap {
    p: ebdiff_model::ParameterizationKind,
}

fn print_table(rows: &[CheckResult]) {
    println!(
        "{:<44} {:<12} {:>10} {:>10}",
        "check", "reference", "rel.err", "scale"
    );
    for r in rows {
        println!(
            "{:<44} {:<12} {:>10.2e} {:>10.2e}",
            r.name, r.reference, r.rel_err, r.scale
        );
    }
}
