//! `cargo xtask experiment compose2d`: the paper's 2-D composition study (method.md §5.1).
//!
//! Trains one energy model per component distribution (ring, bar, blob columns, boxes), composes
//! them (ring × bar product, blob-column mixture, box negation), samples each composition with
//! every sampler over several seeds, and scores the samples against the exact composed target:
//! mean log-density, MMD² and exact W2 to as many exact samples. Writes a CSV, a Markdown table
//! (mean ± std over seeds) and scatter plots under the output directory.

use crate::sample::write_npy;
use crate::sweep::metrics::{LOG_DENSITY_FLOOR, MMD_BANDWIDTHS, mean_std, scored_log_density};
use crate::train::train_to_dir;
use anyhow::{Context, Result};
use clap::Args;
use ebdiff_core::BackendKind;
use ebdiff_core::rng::stream;
use ebdiff_data::{ExactTarget2d, Toy2dConfig};
use ebdiff_eval::{ScatterSeries, mmd2_rbf, w2_exact, write_scatter_png};
use ebdiff_model::DiffusionModel;
use ebdiff_sampler::{
    AncestralOptions, Composition, ModelTarget, SamplerConfig, SamplerKind, TargetAsEps,
    sample_ancestral, sample_annealed,
};
use ebdiff_trainer::ExperimentConfig;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct Compose2dArgs {
    /// Training hyper-parameters for every component model (its [data] is replaced).
    #[arg(long, default_value = "configs/toy2d.toml")]
    base_config: PathBuf,
    /// Output directory for results.
    #[arg(long, default_value = "experiments/compose2d")]
    out: PathBuf,
    /// Where the component models live (trained there when missing; default: <out>/models).
    #[arg(long)]
    models: Option<PathBuf>,
    /// Sampling seeds (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Samples per run (and exact reference samples).
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Samplers (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ancestral,ula,uhmc,mala,hmc"
    )]
    samplers: Vec<SamplerKind>,
    /// MCMC steps per level (K).
    #[arg(long, default_value_t = 10)]
    steps_per_level: usize,
    /// Override training steps (e.g. for a quick smoke run).
    #[arg(long)]
    train_steps: Option<usize>,
    /// Only these compositions (comma-separated: ring-x-bar, blob-mixture, box-negation).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn component_name(c: &Toy2dConfig) -> String {
    match c {
        Toy2dConfig::Ring { .. } => "ring".into(),
        Toy2dConfig::Blobs { centers, .. } => {
            if centers.iter().all(|c| c[0] < 0.0) {
                "blobs-left".into()
            } else {
                "blobs-right".into()
            }
        }
        Toy2dConfig::Rect { x, y, .. } => format!("rect-{:.1}x{:.1}", x[1] - x[0], y[1] - y[0]),
    }
}

struct Row {
    composition: String,
    sampler: String,
    seed: u64,
    log_density: f64,
    /// Fraction of samples whose log-density was floored.
    outside: f64,
    mmd2: f64,
    w2: f64,
    nfe: usize,
    acceptance: Option<f64>,
    seconds: f64,
}

pub fn compose2d(args: Compose2dArgs, backend: BackendKind) -> Result<()> {
    let device = backend.device().map_err(anyhow::Error::msg)?;
    let base = ExperimentConfig::load(&args.base_config)?;
    let targets = [
        ExactTarget2d::ring_times_bar(),
        ExactTarget2d::blob_mixture(),
        ExactTarget2d::box_negation(),
    ];
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    // 1. One energy model per component (reused when its run directory already holds weights).
    let mut models: BTreeMap<String, (DiffusionModel, ebdiff_core::NoiseSchedule)> =
        BTreeMap::new();
    for target in &targets {
        for comp in target.components() {
            let name = component_name(&comp);
            if models.contains_key(&name) {
                continue;
            }
            let dir = args
                .models
                .clone()
                .unwrap_or_else(|| args.out.join("models"))
                .join(&name);
            let mut cfg = base.clone();
            cfg.run.name = name.clone();
            cfg.data = ebdiff_trainer::config::DataConfig::Toy2d(comp.clone());
            if let Some(s) = args.train_steps {
                cfg.train.steps = s;
            }
            if !dir.join("ema.bpk").exists() {
                println!("training component model `{name}` → {}", dir.display());
                let r = train_to_dir(&cfg, &dir, backend, false)?
                    .context("component training was interrupted")?;
                println!("  `{name}`: mean log-density gap {:.4} nats", r.gap());
            }
            let (model, schedule, _) = crate::sample::load_run(&dir, &device)?;
            models.insert(name, (model, schedule));
        }
    }
    let schedule = models
        .values()
        .next()
        .expect("at least one model")
        .1
        .clone();
    let leaf = |name: &str| -> Composition<'_> {
        let (m, s) = &models[name];
        Composition::leaf(ModelTarget {
            model: m,
            schedule: s,
            label: None,
        })
    };

    // 2. Sample every composition with every sampler and seed.
    let mut rows = Vec::new();
    for target in &targets {
        let names: Vec<String> = target.components().iter().map(component_name).collect();
        let composition = match target.name() {
            n if n.contains("mixture") => {
                Composition::mixture(vec![(0.5, leaf(&names[0])), (0.5, leaf(&names[1]))], 1.0)
            }
            n if n.contains("negation") => {
                Composition::negation(leaf(&names[0]), leaf(&names[1]), 0.3)
            }
            _ => Composition::product(names.iter().map(|n| (1.0, leaf(n))).collect()),
        }
        .map_err(|e| anyhow::anyhow!("{}: {e}", target.name()))?;
        for &kind in &args.samplers {
            for &seed in &args.seeds {
                let start = Instant::now();
                let (x, nfe, acceptance) = match kind {
                    SamplerKind::Ancestral => {
                        let eps = TargetAsEps {
                            target: &composition,
                            schedule: &schedule,
                        };
                        let opts = AncestralOptions {
                            variance: Default::default(),
                            clip_x0: None,
                            seed,
                        };
                        (
                            sample_ancestral(
                                &eps,
                                &schedule,
                                args.count,
                                None,
                                &opts,
                                &device,
                                |_| {},
                            ),
                            schedule.len(),
                            None,
                        )
                    }
                    _ => {
                        let mut sc = SamplerConfig::new(kind);
                        sc.steps_per_level = args.steps_per_level;
                        let opts = sc
                            .annealed_options(schedule.len(), seed)
                            .context("MCMC sampler")?;
                        let run = sample_annealed(
                            &composition,
                            &schedule,
                            args.count,
                            &opts,
                            &device,
                            |_| {},
                        );
                        let acc: Vec<f64> =
                            run.levels.iter().filter_map(|d| d.acceptance).collect();
                        let acc =
                            (!acc.is_empty()).then(|| acc.iter().sum::<f64>() / acc.len() as f64);
                        (run.samples, run.nfe, acc)
                    }
                };
                let seconds = start.elapsed().as_secs_f64();
                let samples: Vec<f32> = x
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec()
                    .expect("f32 samples");
                let exact = target.sample(args.count, &mut stream(seed, "exact-reference"));
                let (log_density, outside) = scored_log_density(target, &samples);
                let row = Row {
                    composition: target.name().to_string(),
                    sampler: kind.name().to_string(),
                    seed,
                    log_density,
                    outside,
                    mmd2: mmd2_rbf(&samples, &exact, &MMD_BANDWIDTHS),
                    w2: w2_exact(&samples, &exact),
                    nfe,
                    acceptance,
                    seconds,
                };
                println!(
                    "{:<16} {:<9} seed {seed}: log-density {:.3}  MMD² {:.4}  W2 {:.4}  NFE {}  {:.0} s",
                    row.composition,
                    row.sampler,
                    row.log_density,
                    row.mmd2,
                    row.w2,
                    row.nfe,
                    row.seconds
                );
                if seed == args.seeds[0] {
                    let stem = format!("{}-{}", row.composition, row.sampler);
                    write_scatter_png(
                        &args.out.join("plots").join(format!("{stem}.png")),
                        &[
                            ScatterSeries {
                                points: &exact,
                                color: [190, 190, 190],
                            },
                            ScatterSeries {
                                points: &samples,
                                color: [200, 40, 40],
                            },
                        ],
                        1.2,
                        384,
                    )
                    .map_err(anyhow::Error::msg)?;
                    write_npy(
                        &args.out.join("plots").join(format!("{stem}.npy")),
                        &samples,
                        &[args.count, 2],
                    )?;
                }
                rows.push(row);
            }
        }
        let (exact_self, outside) = scored_log_density(
            target,
            &target.sample(args.count, &mut stream(99, "exact-self")),
        );
        rows.push(Row {
            composition: target.name().to_string(),
            sampler: "exact".into(),
            seed: 99,
            log_density: exact_self,
            outside,
            mmd2: f64::NAN,
            w2: f64::NAN,
            nfe: 0,
            acceptance: None,
            seconds: 0.0,
        });
    }
    write_reports(&args, &rows)
}

fn write_reports(args: &Compose2dArgs, rows: &[Row]) -> Result<()> {
    let mut csv = String::from(
        "composition,sampler,seed,mean_log_density,floored_fraction,mmd2,w2,nfe,acceptance,seconds\n",
    );
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{:.6},{:.4},{:.6},{:.6},{},{},{:.2}",
            r.composition,
            r.sampler,
            r.seed,
            r.log_density,
            r.outside,
            r.mmd2,
            r.w2,
            r.nfe,
            r.acceptance.map(|a| format!("{a:.4}")).unwrap_or_default(),
            r.seconds
        );
    }
    let suffix = if args.only.is_empty() {
        String::new()
    } else {
        format!("-{}", args.only.join("-"))
    };
    std::fs::write(args.out.join(format!("results{suffix}.csv")), csv)?;
    let mut md = format!(
        "# 2-D compositions: samplers vs the exact target\n\nRegenerate: `cargo xtask experiment compose2d --seeds {} --count {} --steps-per-level {}`.\n\
         Mean ± std over seeds {:?}; {} samples per run. Log-density: mean log p(x) under the exact \
         composed target, per-sample values floored at {LOG_DENSITY_FLOOR} (higher is better; the `exact` row is exact samples; `floored` is the share of samples at the floor). MMD²: unbiased, RBF \
         bandwidths {:?}. W2: exact optimal assignment to as many exact samples. NFE: target \
         evaluations per chain (each evaluates every component model).\n\n",
        args.seeds
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(","),
        args.count,
        args.steps_per_level,
        args.seeds,
        args.count,
        MMD_BANDWIDTHS
    );
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        let k = (r.composition.clone(), r.sampler.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut current = String::new();
    for (comp, sampler) in keys {
        if comp != current {
            let _ = writeln!(
                md,
                "\n## {comp}\n\n| sampler | mean log-density | floored | MMD² | W2 | acceptance | NFE | seconds |\n|---|---|---|---|---|---|---|---|"
            );
            current = comp.clone();
        }
        let sel: Vec<&Row> = rows
            .iter()
            .filter(|r| r.composition == comp && r.sampler == sampler)
            .collect();
        let stat =
            |f: &dyn Fn(&Row) -> f64| mean_std(&sel.iter().map(|r| f(r)).collect::<Vec<_>>());
        let (ld, lds) = stat(&|r| r.log_density);
        let (mm, mms) = stat(&|r| r.mmd2);
        let (w2, w2s) = stat(&|r| r.w2);
        let acc: Vec<f64> = sel.iter().filter_map(|r| r.acceptance).collect();
        let acc = if acc.is_empty() {
            "–".to_string()
        } else {
            format!("{:.3}", mean_std(&acc).0)
        };
        let fmt = |m: f64, s: f64, p: usize| {
            if m.is_nan() {
                "–".to_string()
            } else {
                format!("{m:.p$} ± {s:.p$}")
            }
        };
        let _ = writeln!(
            md,
            "| {sampler} | {} | {:.3} | {} | {} | {acc} | {} | {:.0} |",
            fmt(ld, lds, 3),
            mean_std(&sel.iter().map(|r| r.outside).collect::<Vec<_>>()).0,
            fmt(mm, mms, 4),
            fmt(w2, w2s, 4),
            sel[0].nfe,
            mean_std(&sel.iter().map(|r| r.seconds).collect::<Vec<_>>()).0
        );
    }
    std::fs::write(args.out.join(format!("results{suffix}.md")), &md)?;
    println!(
        "\n{md}\nwritten: {}",
        args.out.join(format!("results{suffix}.md")).display()
    );
    Ok(())
}
