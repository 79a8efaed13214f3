//! One cell: load what its composition uses, sample, score, write its directory.

use crate::output::{SampleOutput, sample_to_dir, write_samples_png};
use crate::spec::{Cell, EvalConfig, Metric, ScoreMh, exact_target};
use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use ebdiff_core::rng::stream;
use ebdiff_data::image::{ImageDataConfig, ShapesConfig};
use ebdiff_eval::fid::{
    DEFAULT_BATCH, FeatureExtractor, FidConvention, FidRecord, SetComparison, SetFeatures,
    compare_sets, fid_image_shape,
};
use ebdiff_eval::inception::{DEFAULT_WEIGHTS_DIR, FEATURE_DIM};
use ebdiff_eval::pipeline::write_record;
use ebdiff_eval::{
    KidConfig, LOG_DENSITY_FLOOR, MMD_BANDWIDTHS, MODEL_PIXEL_QUANTIZATION, composition_accuracy,
    mean_log_density, mmd2_rbf, model_pixel_to_u8, object_counts, w2_exact,
};
use ebdiff_sampler::{Component, CompositionSpec, SamplingConfig, Target};
use ebdiff_trainer::ExperimentConfig;
use ebdiff_trainer::data::DataConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What a finished cell's `result.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellResult {
    pub cell: String,
    pub id: String,
    /// "ok" or "not-applicable".
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub group: String,
    /// The resolved cell config (`{ sampling, eval }`): a re-run skips the cell only when it
    /// equals the cell's current one.
    pub config: serde_json::Value,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// (level, mean acceptance) of the MH samplers.
    #[serde(default)]
    pub acceptance_by_level: Vec<(usize, f64)>,
}

pub const STATUS_OK: &str = "ok";
pub const STATUS_NA: &str = "not-applicable";

/// Why the cell cannot run by construction (a mixture over score-only models, or MALA/HMC
/// without an energy), or None.
fn not_applicable(
    cell: &Cell,
    spec: &CompositionSpec,
    models: &BTreeMap<String, Component>,
    has_energy: impl FnOnce() -> bool,
) -> Option<String> {
    fn score_only_under_mixture(
        s: &CompositionSpec,
        models: &BTreeMap<String, Component>,
        in_mixture: bool,
    ) -> Option<String> {
        match s {
            CompositionSpec::Model { model, .. } => {
                let name = model.clone().unwrap_or_else(|| "default".into());
                let energy = models.get(&name).map(|m| m.has_energy()).unwrap_or(true);
                (in_mixture && !energy).then_some(name)
            }
            CompositionSpec::Classifier { .. } => None,
            CompositionSpec::Product { terms, .. } => terms
                .iter()
                .find_map(|t| score_only_under_mixture(t, models, in_mixture)),
            CompositionSpec::Negation { keep, remove, .. } => {
                score_only_under_mixture(keep, models, in_mixture)
                    .or_else(|| score_only_under_mixture(remove, models, in_mixture))
            }
            CompositionSpec::Guided { uncond, conds, .. } => {
                score_only_under_mixture(uncond, models, in_mixture).or_else(|| {
                    conds
                        .iter()
                        .find_map(|t| score_only_under_mixture(t, models, in_mixture))
                })
            }
            CompositionSpec::Mixture { components, .. } => components
                .iter()
                .find_map(|t| score_only_under_mixture(t, models, true)),
        }
    }
    if let Some(m) = score_only_under_mixture(spec, models, false) {
        return Some(format!(
            "a mixture needs its components' log-densities for the responsibilities; model `{m}` is score-only (eps)"
        ));
    }
    if cell.sampling.sampler.kind.is_metropolis()
        && cell.eval.score_mh == ScoreMh::NotApplicable
        && !has_energy()
    {
        return Some(format!(
            "{} needs an energy for its Metropolis correction and the composition is score-only (set eval.score_mh = \"line-integral\" for Sjöberg's estimate)",
            cell.sampling.sampler.kind.name()
        ));
    }
    None
}

/// The cells a shapes composition asks for: the labels of its conditional models and
/// classifiers, in order of first appearance.
pub fn requested_cells(spec: &CompositionSpec) -> Vec<usize> {
    let mut cells = Vec::new();
    spec.visit(&mut |node| {
        let label = match node {
            CompositionSpec::Model { label, .. } => *label,
            CompositionSpec::Classifier { label, .. } => Some(*label),
            _ => None,
        };
        if let Some(l) = label.filter(|l| !cells.contains(l)) {
            cells.push(l);
        }
    });
    cells
}

/// The shapes layout the composition's models were trained on (the `[data.shapes]` of their
/// run configs; they must agree).
fn shapes_config_of(cfg: &SamplingConfig, spec: &CompositionSpec) -> Result<ShapesConfig> {
    let mut found: Option<(ShapesConfig, String)> = None;
    for name in spec.model_names() {
        let Some(ebdiff_sampler::ModelSource::Run(dir)) = cfg.models.get(&name) else {
            bail!(
                "composition-accuracy needs trained shapes models; model `{name}` has no run directory in [models]"
            );
        };
        let run = ExperimentConfig::load(&Path::new(dir).join("config.toml"))?;
        let DataConfig::Image(ImageDataConfig::Shapes { shapes, .. }) = run.data else {
            bail!(
                "composition-accuracy scores shapes images, but model `{name}` ({dir}) was not trained on `kind = \"shapes\"` data"
            );
        };
        match &found {
            Some((s, first)) if s != &shapes => bail!(
                "models `{first}` and `{name}` were trained on different shapes layouts; composition accuracy needs one"
            ),
            Some(_) => {}
            None => found = Some((shapes, name)),
        }
    }
    found
        .map(|(s, _)| s)
        .context("the composition uses no model")
}

/// FID, KID (and precision/recall) of image samples in [−1, 1] against `eval.reference`, with
/// the FID Inception network; writes the [`FidRecord`] to `fid.json`.
fn fid_against_reference(
    eval: &EvalConfig,
    samples: &[f32],
    count: usize,
    data_shape: &[usize],
    device: &Device,
    dir: &Path,
) -> Result<SetComparison> {
    let shape = fid_image_shape(data_shape).map_err(anyhow::Error::msg)?;
    let reference_path = eval.reference.as_deref().expect("checked when parsed");
    let reference = SetFeatures::load(Path::new(reference_path)).map_err(|e| {
        anyhow::anyhow!("FID reference: {e} (make one with `cargo xtask fid-stats`)")
    })?;
    let weights = eval.inception.as_deref().unwrap_or(DEFAULT_WEIGHTS_DIR);
    let fx = FeatureExtractor::load(Path::new(weights), device.clone(), DEFAULT_BATCH)?;
    let pixels: Vec<u8> = samples.iter().map(|&v| model_pixel_to_u8(v)).collect();
    let features = fx.features_u8(&pixels, shape, &mut |_| {});
    debug_assert_eq!(features.len(), count * FEATURE_DIM);
    let kid = KidConfig::default();
    let record = FidRecord {
        reference: reference_path.into(),
        metrics: compare_sets(&reference, &SetFeatures::from_features(features), &kid)?,
        convention: FidConvention::new(fx.provenance(), &kid),
        quantization: Some(MODEL_PIXEL_QUANTIZATION.into()),
        files: None,
        generated: None,
    };
    write_record(&dir.join("fid.json"), &record)?;
    Ok(record.metrics)
}

/// Runs `cell` into `dir` (which exists and is empty). Writes config.toml first, then samples,
/// diagnostics and a plot; returns the result (the caller writes result.json).
pub fn run_cell(
    cell: &Cell,
    dir: &Path,
    metrics: &[Metric],
    device: &Device,
    mut on_level: impl FnMut(usize, usize),
) -> Result<CellResult> {
    let cfg = &cell.sampling;
    let mut doc = toml::Table::try_from(cfg)?;
    doc.insert("eval".into(), toml::Value::try_from(&cell.eval)?);
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "# Resolved config of sweep cell `{}` (id {}).\n{}",
            cell.name,
            cell.id,
            toml::to_string_pretty(&doc)?
        ),
    )?;
    let mut result = CellResult {
        cell: cell.name.clone(),
        id: cell.id.clone(),
        status: STATUS_OK.into(),
        reason: None,
        labels: cell.labels.iter().cloned().collect(),
        group: cell.group(),
        config: cell.resolved.clone(),
        metrics: BTreeMap::new(),
        acceptance_by_level: Vec::new(),
    };
    let loaded = ebdiff_trainer::load_components(cfg, None, None, device)?;
    let spec = cfg.composition_spec();
    let built = loaded.build(&spec).map_err(anyhow::Error::msg);
    if let Some(reason) = not_applicable(cell, &spec, &loaded.models, || {
        // A tree that cannot be built is a failure (below), not "not applicable".
        built.as_ref().map(|t| t.has_energy()).unwrap_or(true)
    }) {
        result.status = STATUS_NA.into();
        result.reason = Some(reason);
        return Ok(result);
    }
    let target = built?;
    let SampleOutput {
        samples,
        count: n,
        dim,
        seconds,
        result: run,
    } = sample_to_dir(cfg, &loaded, &target, device, dir, cell.eval.samples, |p| {
        on_level(p.levels_done, p.levels_total)
    })?;
    let (nfe, levels, smc) = (run.nfe, run.levels, run.smc);
    let exact = match &cell.eval.target {
        Some(name) => {
            if dim != 2 {
                anyhow::bail!(
                    "eval.target `{name}` is a 2-D target but the samples have dimension {dim}"
                );
            }
            let t = exact_target(name)?;
            let reference = t.sample(n, &mut stream(cfg.seed, "exact-reference"));
            Some((t, reference))
        }
        None => None,
    };
    write_samples_png(
        &dir.join("samples.png"),
        &samples,
        n,
        &loaded.data_shape,
        exact.as_ref().map(|(_, r)| r.as_slice()),
        192,
        64,
    )?;
    let m = &mut result.metrics;
    let mut fid: Option<SetComparison> = None;
    for metric in metrics {
        match metric {
            Metric::LogDensity => {
                let (t, _) = exact.as_ref().expect("checked when parsed");
                let ld = mean_log_density(|p| t.log_density(p), &samples, Some(LOG_DENSITY_FLOOR));
                m.insert("log_density".into(), ld.mean);
                m.insert("floored_fraction".into(), ld.floored_fraction);
            }
            Metric::Mmd => {
                let (_, r) = exact.as_ref().expect("checked when parsed");
                m.insert("mmd2".into(), mmd2_rbf(&samples, r, &MMD_BANDWIDTHS));
            }
            Metric::W2 => {
                let (_, r) = exact.as_ref().expect("checked when parsed");
                m.insert("w2".into(), w2_exact(&samples, r));
            }
            Metric::Acceptance => {
                let acc: Vec<(usize, f64)> = levels
                    .iter()
                    .filter_map(|d| d.acceptance.map(|a| (d.level, a)))
                    .collect();
                if !acc.is_empty() {
                    let mean = acc.iter().map(|(_, a)| a).sum::<f64>() / acc.len() as f64;
                    m.insert("acceptance".into(), mean);
                }
                result.acceptance_by_level = acc;
            }
            Metric::Nfe => {
                m.insert("nfe".into(), nfe as f64);
            }
            Metric::Ess => {
                if let Some(d) = &smc {
                    let min = d.levels.iter().map(|l| l.ess).fold(d.final_ess, f64::min);
                    let resamplings = d.levels.iter().filter(|l| l.resampled).count();
                    m.insert("ess_min".into(), min);
                    m.insert("ess_final".into(), d.final_ess);
                    m.insert("resamplings".into(), resamplings as f64);
                    if d.group_size.is_some() {
                        let group_min = d
                            .levels
                            .iter()
                            .map(|l| l.group_ess_min)
                            .fold(f64::INFINITY, f64::min);
                        m.insert("group_ess_min".into(), group_min);
                        if let Some(last) = d.levels.last() {
                            m.insert("group_ancestors_final".into(), last.group_ancestors_median);
                        }
                    }
                }
            }
            Metric::ObjectCounts => {
                let shapes = shapes_config_of(cfg, &spec)?;
                let c = object_counts(&samples, &shapes).map_err(anyhow::Error::msg)?;
                m.insert("count_tv".into(), c.total_variation);
                for (n, share) in c.shares.iter().enumerate() {
                    m.insert(format!("objects_{n}"), *share);
                }
            }
            Metric::WallTime => {
                m.insert("seconds".into(), seconds);
            }
            Metric::CompositionAccuracy => {
                let shapes = shapes_config_of(cfg, &spec)?;
                let score = composition_accuracy(&samples, &shapes, &requested_cells(&spec))
                    .map_err(anyhow::Error::msg)?;
                m.insert("accuracy".into(), score.accuracy);
                m.insert("cell_recall".into(), score.cell_recall);
                m.insert("objects".into(), score.mean_objects);
            }
            Metric::Fid | Metric::Kid => {
                if fid.is_none() {
                    fid = Some(fid_against_reference(
                        &cell.eval,
                        &samples,
                        n,
                        &loaded.data_shape,
                        device,
                        dir,
                    )?);
                }
                let c = fid.as_ref().expect("just computed");
                if *metric == Metric::Fid {
                    m.insert("fid".into(), c.fid);
                } else if let (Some(k), Some(s)) = (c.kid_mean, c.kid_std) {
                    m.insert("kid".into(), k);
                    m.insert("kid_std".into(), s);
                } else {
                    bail!(
                        "KID needs the reference's features and at least 2 samples; {} has no `features` array (write it with `cargo xtask fid-stats`)",
                        cell.eval.reference.as_deref().unwrap_or("?")
                    );
                }
            }
        }
    }
    if !levels.is_empty() {
        // The step size actually used (mean over levels; the tuner may change it per level).
        let s = levels.iter().map(|d| d.step_size).sum::<f64>() / levels.len() as f64;
        m.insert("step_size".into(), s);
    }
    Ok(result)
}
