//! Sweep files: a base sampling config, axes over any dotted key of it, and the metrics to
//! compute; expanded into cells with stable ids.

use crate::output::SampleFormat;
use anyhow::{Result, bail};
use ebdiff_data::ExactTarget2d;
use ebdiff_sampler::SamplingConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a sweep can measure per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Mean log-density under the exact 2-D target (`eval.target`), per-sample floored.
    LogDensity,
    /// Unbiased RBF MMD² to as many exact samples.
    Mmd,
    /// Exact W2 to as many exact samples.
    W2,
    /// Mean MH acceptance (MALA/HMC), overall and per level.
    Acceptance,
    /// Target evaluations per chain.
    Nfe,
    /// Seconds of sampling per cell.
    WallTime,
    /// Shapes images: share with an object in every cell the composition's conditional models
    /// ask for (their `label`s), by the dataset's exact pixel detector; also the per-cell
    /// recall and the mean number of objects.
    CompositionAccuracy,
    /// FID of image samples against `eval.reference` (FID Inception network).
    Fid,
    /// KID (mean and std over subsets) against `eval.reference`, which must hold features.
    Kid,
    /// SMC: the smallest ESS/N over levels, the final ESS/N and the number of resamplings
    /// (nothing for other samplers); with particle groups also the smallest group ESS and the
    /// median distinct ancestors per group at the end.
    Ess,
    /// Shapes images: the share of images with n detected objects and its total variation from
    /// the training data's law (unconditional samples should match it).
    ObjectCounts,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::LogDensity => "log-density",
            Metric::Mmd => "mmd",
            Metric::W2 => "w2",
            Metric::Acceptance => "acceptance",
            Metric::Nfe => "nfe",
            Metric::WallTime => "wall-time",
            Metric::CompositionAccuracy => "composition-accuracy",
            Metric::Fid => "fid",
            Metric::Kid => "kid",
            Metric::Ess => "ess",
            Metric::ObjectCounts => "object-counts",
        }
    }

    /// Needs `eval.target` (an exact 2-D target).
    pub fn needs_exact_target(self) -> bool {
        matches!(self, Metric::LogDensity | Metric::Mmd | Metric::W2)
    }
}

/// MALA/HMC on a composition without an energy (score models): Metropolis needs f(x') − f(x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreMh {
    /// Record such cells as not applicable (the paper's comparison).
    #[default]
    NotApplicable,
    /// Estimate Δf by the score line integral (Sjöberg et al.; `sampler.line_points`).
    LineIntegral,
}

/// The `[eval]` table: how a cell is scored. Axes may patch it as `eval.KEY`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Exact 2-D target the samples are scored against: ring-x-bar, blob-mixture, box-negation.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub score_mh: ScoreMh,
    /// FID/KID reference statistics: an `.npz` of `cargo xtask fid-stats` (mu, sigma, and the
    /// features KID needs). Skipped when absent so that adding it left older cell ids alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Folder of the converted FID weights (default `datasets/inception`, from
    /// `cargo xtask fetch inception`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inception: Option<String>,
    /// How each cell's samples.npy stores the samples: `f32` (default) or `uint8` (image pixels,
    /// quantized as the metrics see them; a quarter of the size, for results kept in the
    /// repository).
    #[serde(default, skip_serializing_if = "SampleFormat::is_default")]
    pub samples: SampleFormat,
}

pub const EXACT_TARGETS: [&str; 3] = ["ring-x-bar", "blob-mixture", "box-negation"];

pub fn exact_target(name: &str) -> Result<ExactTarget2d> {
    Ok(match name {
        "ring-x-bar" => ExactTarget2d::ring_times_bar(),
        "blob-mixture" => ExactTarget2d::blob_mixture(),
        "box-negation" => ExactTarget2d::box_negation(),
        other => bail!(
            "unknown exact target `{other}`; allowed: {}",
            EXACT_TARGETS.join(", ")
        ),
    })
}

/// Grouping of the report's plots: one panel per label of `panels`, one series per label of
/// `series` (axis names as in the sweep file: a `[grid]` key or an `[axes]` name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    #[serde(default)]
    pub panels: Option<String>,
    #[serde(default)]
    pub series: Option<String>,
    /// A numeric key of the cell config (e.g. `sampler.steps_per_level`): quality metrics are
    /// also plotted against its value, one line per series.
    #[serde(default)]
    pub x: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    name: String,
    #[serde(default)]
    description: String,
    metrics: Vec<Metric>,
    base: toml::Table,
    #[serde(default)]
    eval: toml::Table,
    #[serde(default)]
    train: BTreeMap<String, String>,
    #[serde(default)]
    grid: toml::Table,
    #[serde(default)]
    axes: BTreeMap<String, BTreeMap<String, toml::Table>>,
    #[serde(default)]
    list: Vec<toml::Table>,
    /// Combinations left out of the cross product: `{ axis = "label", … }`, all must match.
    #[serde(default)]
    exclude: Vec<BTreeMap<String, String>>,
    #[serde(default)]
    report: ReportConfig,
}

/// A parsed, checked sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub name: String,
    pub description: String,
    pub metrics: Vec<Metric>,
    /// Model run directory → training config, trained before the cells when its EMA weights are missing.
    pub train: BTreeMap<PathBuf, PathBuf>,
    pub report: ReportConfig,
    /// Axis names in expansion order (the `seed` key last).
    pub axes: Vec<String>,
    pub cells: Vec<Cell>,
}

/// One fully resolved point of the sweep.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Readable name from the axis labels, e.g. `product-energy-mala-seed0`.
    pub name: String,
    /// First 10 hex digits of the SHA-256 of the resolved config.
    pub id: String,
    /// (axis, label) in axis order.
    pub labels: Vec<(String, String)>,
    pub sampling: SamplingConfig,
    pub eval: EvalConfig,
    /// `{ "sampling": …, "eval": … }` with every default filled in: what the id hashes and
    /// what a finished cell's result.json records.
    pub resolved: serde_json::Value,
}

impl Cell {
    /// Directory name under `<out>/cells/`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.id)
    }

    /// Labels of every axis except the seed: cells that differ only in seed share a group.
    pub fn group(&self) -> String {
        let g: Vec<&str> = self
            .labels
            .iter()
            .filter(|(a, _)| a != SEED_AXIS)
            .map(|(_, l)| l.as_str())
            .collect();
        if g.is_empty() {
            "all".into()
        } else {
            g.join("-")
        }
    }

    /// The number at dotted `key` of the resolved config (`sampler.steps_per_level`,
    /// `eval.KEY`, `count`), if it is one.
    pub fn number(&self, key: &str) -> Option<f64> {
        let (root, rest) = match key.strip_prefix("eval.") {
            Some(rest) => (&self.resolved["eval"], rest),
            None => (&self.resolved["sampling"], key),
        };
        rest.split('.')
            .try_fold(root, |v, k| v.get(k))
            .and_then(|v| v.as_f64())
    }

    pub fn label(&self, axis: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(a, _)| a == axis)
            .map(|(_, l)| l.as_str())
    }
}

/// The grid key that varies the sampling seed (grouped over in the report).
pub const SEED_AXIS: &str = "seed";

const TOP_KEYS: [&str; 7] = [
    "count",
    "seed",
    "sampler",
    "models",
    "classifiers",
    "composition",
    "eval",
];

/// Sets `key` (dotted) in `doc`, creating intermediate tables.
fn set_dotted(doc: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{key}` is not a dotted key"));
    }
    if !TOP_KEYS.contains(&parts[0]) {
        return Err(format!(
            "`{}` is not a key of the sampling config; allowed: {} (and their sub-keys, e.g. sampler.step_size, eval.target)",
            parts[0],
            TOP_KEYS.join(", ")
        ));
    }
    let mut table = doc;
    for (i, p) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(format!(
                    "`{}` is not a table, so `{key}` cannot be set",
                    parts[..=i].join(".")
                ));
            }
        };
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn label_of(key: &str, v: &toml::Value) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
            format!("{last}{v}")
        }
        toml::Value::Array(items)
            if items.iter().all(|v| {
                matches!(
                    v,
                    toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::String(_)
                )
            }) =>
        {
            let parts: Vec<String> = items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
                .collect();
            format!("{last}{}", parts.join("_"))
        }
        other => {
            let h = Sha256::digest(other.to_string().as_bytes());
            format!("{last}-{:02x}{:02x}", h[0], h[1])
        }
    }
}

/// Resolves a document (base with patches) into a typed cell config.
fn resolve(doc: &toml::Table, origin: &str) -> Result<(SamplingConfig, EvalConfig)> {
    let mut doc = doc.clone();
    let eval = match doc.remove("eval") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => bail!("{origin}: `eval` must be a table"),
        None => toml::Table::new(),
    };
    let sampling: SamplingConfig = ebdiff_core::parse_toml(&toml::to_string(&doc)?, origin)?;
    let eval: EvalConfig =
        ebdiff_core::parse_toml(&toml::to_string(&eval)?, &format!("{origin} [eval]"))?;
    if let Some(t) = &eval.target {
        // By name: building the target integrates its normalizer (about a second).
        if !EXACT_TARGETS.contains(&t.as_str()) {
            bail!(
                "{origin}: at `eval.target`: unknown exact target `{t}`; allowed: {}",
                EXACT_TARGETS.join(", ")
            );
        }
    }
    Ok((sampling, eval))
}

fn short_hash(v: &serde_json::Value) -> String {
    let digest = Sha256::digest(v.to_string().as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// One axis: (name, [(label, patch)]).
type Axis = (String, Vec<(String, Vec<(String, toml::Value)>)>);

pub fn load(path: &Path) -> Result<Sweep> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    parse(&text, &path.display().to_string())
}

pub fn parse(text: &str, origin: &str) -> Result<Sweep> {
    let file: SweepFile = ebdiff_core::parse_toml(text, origin)?;
    if file.metrics.is_empty() {
        bail!("{origin}: `metrics` is empty");
    }
    let mut base = file.base.clone();
    if !file.eval.is_empty() {
        base.insert("eval".into(), toml::Value::Table(file.eval.clone()));
    }
    resolve(&base, &format!("{origin} [base]"))?;

    // Axes: [[list]] entries, then [axes.*], then [grid] keys (seed last).
    let mut axes: Vec<Axis> = Vec::new();
    let check = |what: &str, patch: &[(String, toml::Value)]| -> Result<()> {
        let mut doc = base.clone();
        for (k, v) in patch {
            set_dotted(&mut doc, k, v.clone())
                .map_err(|m| anyhow::anyhow!("{origin}: {what}: key `{k}`: {m}"))?;
        }
        resolve(&doc, &format!("{origin} {what}"))?;
        Ok(())
    };
    if !file.list.is_empty() {
        let mut labels = Vec::new();
        for (i, entry) in file.list.iter().enumerate() {
            let mut entry = entry.clone();
            let name = match entry.remove("name") {
                Some(toml::Value::String(s)) => s,
                Some(_) => bail!("{origin}: [[list]] entry {i}: `name` must be a string"),
                None => format!("list{i}"),
            };
            let patch: Vec<(String, toml::Value)> = entry.into_iter().collect();
            check(&format!("[[list]] entry {i} (`{name}`)"), &patch)?;
            labels.push((name, patch));
        }
        axes.push(("list".into(), labels));
    }
    for (axis, labels) in &file.axes {
        if labels.is_empty() {
            bail!("{origin}: [axes.{axis}] has no labels");
        }
        let mut out = Vec::new();
        for (label, patch) in labels {
            let patch: Vec<(String, toml::Value)> =
                patch.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            check(&format!("[axes.{axis}.{label}]"), &patch)?;
            out.push((label.clone(), patch));
        }
        axes.push((axis.clone(), out));
    }
    let mut grid: Vec<(&String, &toml::Value)> = file.grid.iter().collect();
    grid.sort_by_key(|(k, _)| (k.as_str() == SEED_AXIS, k.to_string()));
    for (key, values) in grid {
        let toml::Value::Array(values) = values else {
            bail!("{origin}: [grid] `{key}` must be an array of values");
        };
        if values.is_empty() {
            bail!("{origin}: [grid] `{key}` has no values");
        }
        let mut out = Vec::new();
        for v in values {
            let patch = vec![(key.clone(), v.clone())];
            check(&format!("[grid] `{key}` = {v}"), &patch)?;
            out.push((label_of(key, v), patch));
        }
        axes.push((key.clone(), out));
    }

    // Each [[exclude]] entry: axis → label index, checked before anything is expanded.
    let mut excluded: Vec<Vec<(usize, usize)>> = Vec::new();
    for (i, entry) in file.exclude.iter().enumerate() {
        if entry.is_empty() {
            bail!("{origin}: [[exclude]] entry {i} is empty; give `axis = \"label\"` pairs");
        }
        let mut matcher = Vec::new();
        for (axis, label) in entry {
            let Some(a) = axes.iter().position(|(name, _)| name == axis) else {
                bail!(
                    "{origin}: [[exclude]] entry {i}: `{axis}` is not an axis; axes: {}",
                    axes.iter()
                        .map(|(a, _)| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let Some(l) = axes[a].1.iter().position(|(name, _)| name == label) else {
                bail!(
                    "{origin}: [[exclude]] entry {i}: axis `{axis}` has no label `{label}`; labels: {}",
                    axes[a]
                        .1
                        .iter()
                        .map(|(l, _)| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            matcher.push((a, l));
        }
        excluded.push(matcher);
    }

    // Cartesian product, first axis outermost.
    let mut combos: Vec<Vec<usize>> = vec![vec![]];
    for (_, labels) in &axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                (0..labels.len()).map(move |i| {
                    let mut c = c.clone();
                    c.push(i);
                    c
                })
            })
            .collect();
    }
    combos.retain(|c| {
        !excluded
            .iter()
            .any(|m| m.iter().all(|&(axis, label)| c[axis] == label))
    });
    let mut cells = Vec::new();
    let mut seen = BTreeMap::new();
    for combo in combos {
        let mut doc = base.clone();
        let mut labels = Vec::new();
        for ((axis, entries), &i) in axes.iter().zip(&combo) {
            let (label, patch) = &entries[i];
            for (k, v) in patch {
                set_dotted(&mut doc, k, v.clone()).map_err(anyhow::Error::msg)?;
            }
            labels.push((axis.clone(), label.clone()));
        }
        let name = labels
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("-");
        let name = if name.is_empty() {
            "base".into()
        } else {
            sanitize(&name)
        };
        let (sampling, eval) = resolve(&doc, &format!("{origin} cell `{name}`"))?;
        let resolved = serde_json::json!({ "sampling": sampling, "eval": eval });
        let id = short_hash(&resolved);
        if let Some(other) = seen.insert(id.clone(), name.clone()) {
            bail!(
                "{origin}: cells `{other}` and `{name}` resolve to the same config (an axis changes nothing)"
            );
        }
        cells.push(Cell {
            name,
            id,
            labels,
            sampling,
            eval,
            resolved,
        });
    }
    for c in &cells {
        for m in &file.metrics {
            if m.needs_exact_target() && c.eval.target.is_none() {
                bail!(
                    "{origin}: metric `{}` needs `eval.target` (an exact 2-D target: {}), which cell `{}` lacks",
                    m.name(),
                    EXACT_TARGETS.join(", "),
                    c.name
                );
            }
            if matches!(m, Metric::Fid | Metric::Kid) && c.eval.reference.is_none() {
                bail!(
                    "{origin}: metric `{}` needs `eval.reference`, reference statistics with features (`cargo xtask fid-stats --data … --out ref.npz`), which cell `{}` lacks",
                    m.name(),
                    c.name
                );
            }
        }
    }
    let axis_names: Vec<String> = axes.iter().map(|(a, _)| a.clone()).collect();
    for (what, key) in [
        ("report.panels", &file.report.panels),
        ("report.series", &file.report.series),
    ] {
        if let Some(k) = key.as_ref().filter(|k| !axis_names.contains(k)) {
            bail!(
                "{origin}: `{what}` = `{k}` is not an axis; axes: {}",
                axis_names.join(", ")
            );
        }
    }
    if let Some(x) = &file.report.x
        && let Some(c) = cells.iter().find(|c| c.number(x).is_none())
    {
        bail!(
            "{origin}: `report.x` = `{x}` is not a number in the config of cell `{}` (use a numeric key such as `sampler.steps_per_level`)",
            c.name
        );
    }
    Ok(Sweep {
        name: file.name,
        description: file.description,
        metrics: file.metrics,
        train: file
            .train
            .into_iter()
            .map(|(k, v)| (PathBuf::from(k), PathBuf::from(v)))
            .collect(),
        report: file.report,
        axes: axis_names,
        cells,
    })
}

/// File-name-safe: [A-Za-z0-9._-], others replaced by '_'.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
