//! One cell: load what its composition uses, sample, score, write its directory.

use super::metrics::{MMD_BANDWIDTHS, scored_log_density};
use super::spec::{Cell, Metric, ScoreMh, exact_target};
use crate::sample::{Drawn, composition_spec, draw, load_for, write_npy, write_samples_png};
use anyhow::Result;
use burn::tensor::Device;
use ebdiff_core::rng::stream;
use ebdiff_eval::{mmd2_rbf, w2_exact};
use ebdiff_model::DiffusionModel;
use ebdiff_sampler::{CompositionSpec, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

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
    models: &BTreeMap<String, DiffusionModel>,
    has_energy: impl FnOnce() -> bool,
) -> Option<String> {
    fn score_only_under_mixture(
        s: &CompositionSpec,
        models: &BTreeMap<String, DiffusionModel>,
        in_mixture: bool,
    ) -> Option<String> {
        match s {
            CompositionSpec::Model { model, .. } => {
                let name = model.clone().unwrap_or_else(|| "default".into());
                let energy = models.get(&name).map(|m| m.is_energy()).unwrap_or(true);
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
    let kernel = cell.sampling.sampler.kind.kernel();
    if kernel.is_some_and(|k| k.is_metropolis())
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
    let loaded = load_for(cfg, None, None, device)?;
    let spec = composition_spec(cfg);
    let built = loaded.build(&spec);
    if let Some(reason) = not_applicable(cell, &spec, &loaded.models, || {
        built.as_ref().map(|t| t.has_energy()).unwrap_or(false)
    }) {
        result.status = STATUS_NA.into();
        result.reason = Some(reason);
        return Ok(result);
    }
    let target = built?;
    let start = Instant::now();
    let Drawn {
        samples,
        nfe,
        levels,
    } = draw(cfg, &target, &loaded.schedule, device, |done, total, _| {
        on_level(done, total)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    if samples.iter().any(|v| !v.is_finite()) {
        anyhow::bail!("the sampler produced non-finite samples (step size too large?)");
    }
    let n = cfg.count;
    let dim = samples.len() / n.max(1);
    write_npy(&dir.join("samples.npy"), &samples, &[n, dim])?;
    std::fs::write(
        dir.join("diagnostics.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "nfe": nfe,
            "seconds": seconds,
            "levels": levels,
        }))?,
    )?;
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
    for metric in metrics {
        match metric {
            Metric::LogDensity => {
                let (t, _) = exact.as_ref().expect("checked when parsed");
                let (ld, floored) = scored_log_density(t, &samples);
                m.insert("log_density".into(), ld);
                m.insert("floored_fraction".into(), floored);
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
            Metric::WallTime => {
                m.insert("seconds".into(), seconds);
            }
            Metric::Fid | Metric::Kid => unreachable!("refused when the sweep is parsed"),
        }
    }
    if !levels.is_empty() {
        // The step size actually used (mean over levels; the tuner may change it per level).
        let s = levels.iter().map(|d| d.step_size).sum::<f64>() / levels.len() as f64;
        m.insert("step_size".into(), s);
    }
    Ok(result)
}
