//! SMC against closed forms (smc.md): Gaussian products, negations and mixtures of components with
//! unequal variances, in 1-D and 8-D, over several seeds. Every comparison is a z-score of the
//! seed-averaged estimate against the exact answer, using the spread over seeds as its standard
//! error, so a wrong weight term shows up as a many-sigma miss rather than a loose tolerance.

use burn::tensor::{Device, Tensor};
use ebdiff_core::{NoiseSchedule, ScheduleConfig};
use ebdiff_sampler::analytic::{DiffusedTarget, IsotropicGmm, ScoreOnly};
use ebdiff_sampler::normalizers::estimate_log_normalizers;
use ebdiff_sampler::{
    Composition, Evaluation, SampleResult, SamplerConfig, SamplerKind, SamplingConfig, SmcWeights,
    Target, sample,
};

const SEEDS: u64 = 10;
/// |z| above this fails: with 10 seeds the z-score is t-distributed with 9 degrees of freedom,
/// P(|t₉| > 5) ≈ 7e-4 per statistic.
const Z_MAX: f64 = 5.0;

fn schedule() -> NoiseSchedule {
    ScheduleConfig::cosine(100).build()
}

fn gauss(schedule: &NoiseSchedule, mean: Vec<f64>, var: f64) -> Composition<'_> {
    Composition::leaf(DiffusedTarget {
        data: IsotropicGmm::gaussian(mean, var),
        schedule,
    })
}

/// SMC with the fixed-large (β) proposal variance, which keeps the weights healthy at low noise
/// (the true reverse kernel of a spread-out law has variance ≈ β there), then `edit`.
fn smc_config(count: usize, seed: u64, edit: impl Fn(&mut SamplerConfig)) -> SamplingConfig {
    let mut s = SamplerConfig::new(SamplerKind::Smc);
    s.variance = ebdiff_sampler::Variance::FixedLarge;
    edit(&mut s);
    SamplingConfig::new(s, count, seed)
}

fn run(cfg: &SamplingConfig, target: &dyn Target, schedule: &NoiseSchedule) -> SampleResult {
    sample(cfg, target, schedule, &Device::flex(), |_| {}).expect("valid SMC run")
}

fn rows(result: &SampleResult, dim: usize) -> Vec<Vec<f64>> {
    result
        .samples_vec()
        .chunks(dim)
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

/// Seed-average and its z-score against `truth` (standard error from the spread over seeds).
fn z_score(per_seed: &[f64], truth: f64) -> (f64, f64) {
    let n = per_seed.len() as f64;
    let mean = per_seed.iter().sum::<f64>() / n;
    let var = per_seed.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (mean - truth) / (var / n).sqrt().max(1e-12))
}

/// Per seed: the mean over dimensions of the standardized mean error (x̄_d − m_d)/√v and of the
/// variance ratio var_d / v — one number each, sensitive to any bias common to the dimensions.
fn moments(samples: &[Vec<f64>], mean: &[f64], var: f64) -> (f64, f64) {
    let (n, d) = (samples.len() as f64, mean.len());
    let (mut m_err, mut v_ratio) = (0.0, 0.0);
    for j in 0..d {
        let m = samples.iter().map(|r| r[j]).sum::<f64>() / n;
        let v = samples.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / (n - 1.0);
        m_err += (m - mean[j]) / var.sqrt();
        v_ratio += v / var;
    }
    (m_err / d as f64, v_ratio / d as f64)
}

/// Runs `target` under every seed and checks the data-level mean and variance against N(mean,
/// var I) by z-scores. Returns the per-seed log Ẑ.
fn check_gaussian(
    what: &str,
    target: &dyn Target,
    schedule: &NoiseSchedule,
    mean: &[f64],
    var: f64,
    count: usize,
    edit: impl Fn(&mut SamplerConfig),
) -> Vec<f64> {
    let (mut m_errs, mut v_ratios, mut log_z) = (Vec::new(), Vec::new(), Vec::new());
    for seed in 0..SEEDS {
        let result = run(&smc_config(count, seed, &edit), target, schedule);
        let smc = result.smc.as_ref().expect("SMC diagnostics");
        let (m, v) = moments(&rows(&result, mean.len()), mean, var);
        m_errs.push(m);
        v_ratios.push(v);
        log_z.push(smc.log_z);
    }
    let (m, zm) = z_score(&m_errs, 0.0);
    let (v, zv) = z_score(&v_ratios, 1.0);
    eprintln!("{what}: mean error {m:+.4}σ (z {zm:+.2}), variance ratio {v:.4} (z {zv:+.2})");
    assert!(zm.abs() < Z_MAX, "{what}: mean off by z = {zm:.2}");
    assert!(
        zv.abs() < Z_MAX,
        "{what}: variance off by z = {zv:.2} (ratio {v:.4})"
    );
    log_z
}

/// Ẑ is unbiased for Z, and by the SMC central limit theorem log Ẑ ≈ N(log Z − s²/2, s²), so
/// mean(log Ẑ) + var(log Ẑ)/2 estimates log Z (averaging Ẑ itself over a few seeds would be
/// dominated by its heavy right tail). A wrong weight term shifts it by many standard errors.
fn check_unbiased(what: &str, log_z_hat: &[f64], log_z: f64) {
    let n = log_z_hat.len() as f64;
    let mean = log_z_hat.iter().sum::<f64>() / n;
    let var = log_z_hat.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let estimate = mean + var / 2.0;
    // Standard error of mean + var/2 for normal log Ẑ: √(s²/n + s⁴/(2(n−1))).
    let se = (var / n + var * var / (2.0 * (n - 1.0))).sqrt().max(1e-9);
    let z = (estimate - log_z) / se;
    eprintln!(
        "{what}: log Ẑ {mean:.4} ± {:.4} (sd), lognormal-corrected {estimate:.4} vs log Z {log_z:.4} (z {z:+.2})",
        var.sqrt()
    );
    assert!(z.abs() < Z_MAX, "{what}: log Ẑ biased, z = {z:.2}");
}

/// Exact product N(m1, v1)·N(m2, v2) per dimension: (mean, var, log Z).
fn product_law(m1: &[f64], v1: f64, m2: &[f64], v2: f64) -> (Vec<f64>, f64, f64) {
    let var = 1.0 / (1.0 / v1 + 1.0 / v2);
    let mean = m1
        .iter()
        .zip(m2)
        .map(|(a, b)| var * (a / v1 + b / v2))
        .collect();
    let s = v1 + v2;
    let log_z = m1
        .iter()
        .zip(m2)
        .map(|(a, b)| -0.5 * (2.0 * std::f64::consts::PI * s).ln() - (a - b).powi(2) / (2.0 * s))
        .sum();
    (mean, var, log_z)
}

fn means(dim: usize, scale: f64) -> Vec<f64> {
    (0..dim)
        .map(|j| scale * (1.0 - 2.0 * (j % 2) as f64) * (1.0 + 0.1 * j as f64))
        .collect()
}

/// Ancestral proposal plus two HMC steps per level whose leapfrog step is searched per level
/// for an acceptance in [0.6, 0.8] (a fixed small step would barely move the particles).
fn rejuvenate_hmc(s: &mut SamplerConfig) {
    s.rejuvenate = Some(ebdiff_sampler::config::RejuvenateConfig {
        kind: SamplerKind::Hmc,
        steps: 2,
    });
    s.tune = Some(ebdiff_sampler::config::TuneConfig {
        band: [0.6, 0.8],
        probe_steps: 1,
        max_probes: 12,
    });
}

fn mala_proposal(s: &mut SamplerConfig) {
    s.proposal = Some(SamplerKind::Mala);
    s.steps_per_level = 2;
    s.step_size = Some(ebdiff_sampler::LevelSchedule::BetaScaled { c: 0.5 });
}

#[test]
fn smc_samples_gaussian_products_exactly_and_its_normalizer_is_unbiased() {
    let schedule = schedule();
    for dim in [1, 8] {
        let (m1, m2) = (means(dim, -1.0), means(dim, 0.5));
        let (v1, v2) = (0.25, 0.5);
        let product = Composition::product(vec![
            (1.0, gauss(&schedule, m1.clone(), v1)),
            (1.0, gauss(&schedule, m2.clone(), v2)),
        ])
        .unwrap();
        let (mean, var, log_z) = product_law(&m1, v1, &m2, v2);
        // In 1-D the plain ancestral proposal suffices. In 8-D its weights degenerate at every
        // level (the summed score is not a diffusion's), repeated resampling leaves few distinct
        // lineages and the sample variance comes out ≈ 6 % low at 1000 particles: rejuvenation
        // restores the diversity (the dimension study in the README measures this).
        let base: fn(&mut SamplerConfig) = if dim == 1 { |_| {} } else { rejuvenate_hmc };
        for threshold in [0.5, 1.0] {
            let what = format!("product {dim}-D, ess_threshold {threshold}");
            let log_z_hat = check_gaussian(&what, &product, &schedule, &mean, var, 1000, |s| {
                base(s);
                s.ess_threshold = Some(threshold)
            });
            check_unbiased(&what, &log_z_hat, log_z);
        }
        check_gaussian(
            &format!("product {dim}-D, fixed-small proposal"),
            &product,
            &schedule,
            &mean,
            var,
            1000,
            |s| {
                base(s);
                s.variance = ebdiff_sampler::Variance::FixedSmall
            },
        );
        // MCMC proposals (AIS form), and ancestral with HMC rejuvenation.
        let what = format!("product {dim}-D, mala proposal");
        check_gaussian(&what, &product, &schedule, &mean, var, 600, mala_proposal);
        let what = format!("product {dim}-D, hmc rejuvenation");
        check_gaussian(&what, &product, &schedule, &mean, var, 600, rejuvenate_hmc);
    }
}

#[test]
fn rejuvenation_runs_only_inside_the_window_and_stays_exact() {
    let schedule = schedule();
    let (m1, m2) = (means(1, -1.0), means(1, 0.5));
    let product = Composition::product(vec![
        (1.0, gauss(&schedule, m1.clone(), 0.25)),
        (1.0, gauss(&schedule, m2.clone(), 0.5)),
    ])
    .unwrap();
    let (mean, var, _) = product_law(&m1, 0.25, &m2, 0.5);
    let windowed = |s: &mut SamplerConfig| {
        rejuvenate_hmc(s);
        s.window = Some([0, 29]);
    };
    let smc = run(&smc_config(200, 0, windowed), &product, &schedule)
        .smc
        .unwrap();
    for l in smc.levels.iter().filter(|l| l.level >= 0) {
        assert_eq!(
            l.acceptance.is_some(),
            l.level <= 29,
            "level {}: acceptance {:?}",
            l.level,
            l.acceptance
        );
    }
    let full = run(&smc_config(200, 0, rejuvenate_hmc), &product, &schedule)
        .smc
        .unwrap();
    assert!(smc.levels.last().unwrap().nfe < full.levels.last().unwrap().nfe);
    check_gaussian(
        "product 1-D, hmc rejuvenation in levels 0-29",
        &product,
        &schedule,
        &mean,
        var,
        600,
        windowed,
    );
}

#[test]
fn without_resampling_smc_is_importance_sampling_of_the_whole_path() {
    // ess_threshold = 0: no level resamples, every particle keeps its own lineage, and the
    // weights are the path's importance weights. On one diffused Gaussian the ancestral proposal
    // is close to the true reverse kernel, so plain importance sampling works and Ẑ ≈ Z = 1.
    let schedule = schedule();
    for dim in [1, 8] {
        let m = means(dim, 0.7);
        let target = gauss(&schedule, m.clone(), 0.3);
        let mut log_z = Vec::new();
        for seed in 0..3 {
            let result = run(
                &smc_config(500, seed, |s| s.ess_threshold = Some(0.0)),
                &target,
                &schedule,
            );
            let smc = result.smc.unwrap();
            assert!(
                smc.levels
                    .iter()
                    .all(|l| !l.resampled && l.distinct_ancestors == 500)
            );
            log_z.push(smc.log_z);
        }
        let what = format!("one Gaussian {dim}-D, no resampling");
        let log_z = check_gaussian(&what, &target, &schedule, &m, 0.3, 500, |s| {
            s.ess_threshold = Some(0.0)
        });
        check_unbiased(&what, &log_z, 0.0);
    }
}

#[test]
fn smc_samples_gaussian_negations_exactly() {
    // p_keep^{1+α} / p_remove^α with keep N(m1, 1), remove N(m2, 2), α = 0.5: precision
    // 1.5/1 − 0.5/2 = 1.25 per dimension.
    let schedule = schedule();
    let alpha = 0.5;
    for dim in [1, 8] {
        let (m1, m2) = (means(dim, 0.3), means(dim, -0.8));
        let (v1, v2) = (1.0, 2.0);
        let negation = Composition::negation(
            gauss(&schedule, m1.clone(), v1),
            gauss(&schedule, m2.clone(), v2),
            alpha,
        )
        .unwrap();
        let precision = (1.0 + alpha) / v1 - alpha / v2;
        let var = 1.0 / precision;
        let mean: Vec<f64> = m1
            .iter()
            .zip(&m2)
            .map(|(a, b)| var * ((1.0 + alpha) * a / v1 - alpha * b / v2))
            .collect();
        check_gaussian(
            &format!("negation {dim}-D"),
            &negation,
            &schedule,
            &mean,
            var,
            1000,
            |_| {},
        );
    }
}

/// A component with an unknown normalizer, as a DSM-trained energy has: the exact diffused
/// log-density without its Gaussian normalizing constant, plus an arbitrary offset per level.
struct Unnormalized<'a> {
    inner: DiffusedTarget<'a>,
    offset: f64,
}

impl Target for Unnormalized<'_> {
    fn data_dim(&self) -> usize {
        self.inner.data_dim()
    }
    fn has_energy(&self) -> bool {
        true
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        let e = self.inner.evaluate(x, level);
        let v = self.inner.data.diffused(self.inner.schedule, level).var;
        let d = self.data_dim() as f64;
        let shift = 0.5 * d * (2.0 * std::f64::consts::PI * v).ln()
            + self.offset * (1.0 + level as f64 / 50.0);
        Evaluation {
            log_density: e.log_density.map(|l| l.add_scalar(shift)),
            score: e.score,
        }
    }
}

#[test]
fn mixtures_of_unequal_components_get_their_weights_only_with_estimated_normalizers() {
    // ½ N(−a, 0.04 I) + ½ N(+a, 0.25 I) from components whose energies carry unknown constants:
    // with "equal" normalizers the wide component (and the larger offset) takes the mass; with
    // estimated per-level normalizers each gets one half, for ancestral sampling and SMC alike.
    let schedule = schedule();
    let device = Device::flex();
    for dim in [1, 8] {
        let a = means(dim, 1.5);
        let neg: Vec<f64> = a.iter().map(|v| -v).collect();
        let leaf = |mean: Vec<f64>, var: f64, offset: f64| {
            Composition::leaf(Unnormalized {
                inner: DiffusedTarget {
                    data: IsotropicGmm::gaussian(mean, var),
                    schedule: &schedule,
                },
                offset,
            })
        };
        let components = || {
            vec![
                (0.5, leaf(neg.clone(), 0.04, 2.0)),
                (0.5, leaf(a.clone(), 0.25, -1.0)),
            ]
        };
        let log_z: Vec<Vec<f64>> = components()
            .iter()
            .map(|(_, c)| {
                let n = ebdiff_sampler::normalizers::DEFAULT_PARTICLES;
                estimate_log_normalizers(c, &schedule, n, 0, &device).unwrap()
            })
            .collect();
        let calibrated = Composition::calibrated_mixture(components(), 1.0, log_z).unwrap();
        let equal = Composition::mixture(components(), 1.0).unwrap();
        // Share of samples on the +a side.
        let share = |result: &SampleResult| {
            let r = rows(result, dim);
            let side = r
                .iter()
                .filter(|x| x.iter().zip(&a).map(|(u, v)| u * v).sum::<f64>() > 0.0)
                .count();
            side as f64 / r.len() as f64
        };
        for kind in [SamplerKind::Ancestral, SamplerKind::Smc] {
            let shares = |target: &dyn Target| -> Vec<f64> {
                (0..SEEDS)
                    .map(|seed| {
                        let mut cfg = smc_config(800, seed, |_| {});
                        cfg.sampler.kind = kind;
                        share(&run(&cfg, target, &schedule))
                    })
                    .collect()
            };
            let (m, z) = z_score(&shares(&calibrated), 0.5);
            eprintln!(
                "{dim}-D {}: calibrated share {m:.4} (z {z:+.2})",
                kind.name()
            );
            assert!(
                z.abs() < Z_MAX,
                "{dim}-D {}: share {m:.4}, z = {z:.2}",
                kind.name()
            );
            if kind == SamplerKind::Smc && dim > 1 {
                // SMC's estimate of a badly calibrated 8-D mixture is too noisy to be worth a
                // check (the weights must move most mass between separated modes).
                continue;
            }
            let equal_shares = shares(&equal);
            let (m_eq, z_eq) = z_score(&equal_shares, 0.5);
            eprintln!(
                "{dim}-D {}: equal-normalizer share {m_eq:.4} (z {z_eq:+.2})",
                kind.name()
            );
            assert!(
                z_eq.abs() > 10.0,
                "equal normalizers should be visibly wrong: {m_eq:.4}"
            );
            if kind == SamplerKind::Smc {
                // SMC samples the level-0 mixture it is given: with equal normalizers that is
                // the mixture weighted by πᵢ·Zᵢ(0), Zᵢ(0) = (2π vᵢ)^{d/2} e^{cᵢ(0)}.
                let log_z = |var: f64, offset: f64| {
                    let v = IsotropicGmm::gaussian(vec![0.0], var)
                        .diffused(&schedule, 0)
                        .var;
                    0.5 * dim as f64 * (2.0 * std::f64::consts::PI * v).ln() + offset
                };
                let want = 1.0 / (1.0 + (log_z(0.04, 2.0) - log_z(0.25, -1.0)).exp());
                let (_, z) = z_score(&equal_shares, want);
                eprintln!("{dim}-D smc: equal-normalizer share expected {want:.4} (z {z:+.2})");
                assert!(
                    z.abs() < Z_MAX,
                    "SMC samples the mis-weighted mixture: z = {z:.2}"
                );
            }
        }
    }
}

#[test]
fn fkc_weights_of_score_only_products_agree_with_the_exact_weights() {
    // The same product of energy models with its log-densities hidden: Feynman–Kac corrector
    // weights (scores only) at the start of each move, and averaged over both ends.
    let schedule = schedule();
    let (m1, m2) = (means(2, -1.0), means(2, 0.5));
    let product = Composition::product(vec![
        (
            1.0,
            Composition::leaf(ScoreOnly(DiffusedTarget {
                data: IsotropicGmm::gaussian(m1.clone(), 0.25),
                schedule: &schedule,
            })),
        ),
        (
            1.0,
            Composition::leaf(ScoreOnly(DiffusedTarget {
                data: IsotropicGmm::gaussian(m2.clone(), 0.5),
                schedule: &schedule,
            })),
        ),
    ])
    .unwrap();
    let (mean, var, _) = product_law(&m1, 0.25, &m2, 0.5);
    for weights in [
        SmcWeights::FkcStart,
        SmcWeights::FkcAverage,
        SmcWeights::Auto,
    ] {
        check_gaussian(
            &format!("score-only product, {weights:?}"),
            &product,
            &schedule,
            &mean,
            var,
            1000,
            |s| s.weights = Some(weights),
        );
    }
}

#[test]
fn bad_smc_settings_are_named_errors() {
    let schedule = schedule();
    let target = gauss(&schedule, vec![0.0], 1.0);
    let err = |cfg: SamplingConfig| {
        sample(&cfg, &target, &schedule, &Device::flex(), |_| {})
            .err()
            .expect("refused")
            .to_string()
    };
    let msg = err(smc_config(1, 0, |_| {}));
    assert!(
        msg.contains("count") && msg.contains("at least 2 particles"),
        "{msg}"
    );
    let msg = err(smc_config(10, 0, |s| s.ess_threshold = Some(1.5)));
    assert!(
        msg.contains("ess_threshold") && msg.contains("[0, 1]"),
        "{msg}"
    );
    let msg = err(smc_config(10, 0, |s| s.proposal = Some(SamplerKind::Ddim)));
    assert!(
        msg.contains("proposal") && msg.contains("ancestral, ula"),
        "{msg}"
    );
    let msg = err(smc_config(10, 0, |s| {
        s.rejuvenate = Some(ebdiff_sampler::config::RejuvenateConfig {
            kind: SamplerKind::Ula,
            steps: 1,
        })
    }));
    assert!(
        msg.contains("rejuvenate.kind") && msg.contains("mala or hmc"),
        "{msg}"
    );
    // SMC keys on another sampler are a mistake worth naming.
    let mut hmc = SamplerConfig::new(SamplerKind::Hmc);
    hmc.ess_threshold = Some(0.5);
    let msg = err(SamplingConfig::new(hmc, 10, 0));
    assert!(
        msg.contains("ess_threshold") && msg.contains("kind = \"smc\""),
        "{msg}"
    );
    // An unknown proposal in TOML names the allowed ones.
    let msg = ebdiff_core::parse_toml::<SamplingConfig>(
        "[sampler]\nkind = \"smc\"\nproposal = \"langevin\"\n",
        "s.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("langevin") && msg.contains("ancestral"),
        "{msg}"
    );
    // Exact weights on a score-only target, and mixtures of score-only components.
    let score_only = Composition::leaf(ScoreOnly(DiffusedTarget {
        data: IsotropicGmm::gaussian(vec![0.0], 1.0),
        schedule: &schedule,
    }));
    let mut cfg = smc_config(10, 0, |s| s.weights = Some(SmcWeights::Exact));
    let msg = sample(&cfg, &score_only, &schedule, &Device::flex(), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("energy") && msg.contains("score-only"),
        "{msg}"
    );
    cfg.sampler.weights = None;
    cfg.sampler.proposal = Some(SamplerKind::Hmc);
    let msg = sample(&cfg, &score_only, &schedule, &Device::flex(), |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("proposal = \"ancestral\""), "{msg}");
    let mixture = Composition::mixture(
        vec![
            (
                0.5,
                Composition::leaf(ScoreOnly(DiffusedTarget {
                    data: IsotropicGmm::gaussian(vec![0.0], 1.0),
                    schedule: &schedule,
                })),
            ),
            (0.5, gauss(&schedule, vec![1.0], 1.0)),
        ],
        1.0,
    );
    let msg = mixture.err().expect("refused").to_string();
    assert!(msg.contains("score-only"), "{msg}");
}

#[test]
fn smc_on_oracle_toys_estimates_the_exact_normalizer_of_ring_times_bar_and_box_negation() {
    // The oracle components end SMC at their exact data law, so log Ẑ estimates log ∫ p_ring
    // p_bar (and ∫ p_big^{1.3} p_small^{-0.3}), which `ExactTarget2d` computes by integration
    // on a fine grid.
    use ebdiff_data::{ExactTarget2d, Toy2d};
    use ebdiff_sampler::OracleTarget;
    let schedule = ScheduleConfig::cosine(50).build();
    let oracle = |toy: Toy2d| Composition::leaf(OracleTarget::new(toy, schedule.clone()).unwrap());
    let cases = [
        (
            "ring × bar",
            Composition::product(vec![
                (1.0, oracle(Toy2d::ring(8, 0.5, 0.075))),
                (1.0, oracle(Toy2d::vertical_bar(0.2))),
            ])
            .unwrap(),
            ExactTarget2d::ring_times_bar(),
        ),
        (
            "box negation",
            Composition::negation(oracle(Toy2d::square(0.7)), oracle(Toy2d::square(0.3)), 0.3)
                .unwrap(),
            ExactTarget2d::box_negation(),
        ),
    ];
    for (what, target, exact) in &cases {
        let log_z: Vec<f64> = (0..5)
            .map(|seed| {
                let cfg = smc_config(1000, seed, rejuvenate_hmc);
                let smc = run(&cfg, target, &schedule).smc.unwrap();
                // The random walk at the data law widens from σ₀ until it accepts at most half
                // of its moves; at σ₀ it accepted 96 % and left resampled copies clustered.
                let data = smc.levels.last().unwrap();
                let acceptance = data.acceptance.unwrap();
                assert!(
                    data.level == -1 && acceptance < 0.75,
                    "{what}: data-level walk accepted {acceptance:.2}"
                );
                smc.log_z
            })
            .collect();
        check_unbiased(what, &log_z, exact.log_normalizer());
    }
}

/// log q_c − log q_u of two diffused Gaussians, flagged as a classifier term: what a
/// noise-conditioned classifier log p(y | x, t) = log q_t(x | y) − log q_t(x) + const is when
/// the class-conditional and marginal laws are these.
struct GaussianClassifier<'a> {
    cond: DiffusedTarget<'a>,
    marginal: DiffusedTarget<'a>,
}

impl Target for GaussianClassifier<'_> {
    fn data_dim(&self) -> usize {
        self.cond.data_dim()
    }
    fn has_energy(&self) -> bool {
        true
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        let (c, m) = (
            self.cond.evaluate(x.clone(), level),
            self.marginal.evaluate(x, level),
        );
        Evaluation {
            log_density: Some(c.log_density.unwrap() - m.log_density.unwrap()),
            score: c.score - m.score,
        }
    }
    fn evaluate_terms(
        &self,
        x: Tensor<2>,
        level: usize,
    ) -> Option<(Evaluation, Vec<ebdiff_sampler::ScoreTerm>)> {
        let e = self.evaluate(x, level);
        let term = ebdiff_sampler::ScoreTerm {
            weight: 1.0,
            score: e.score.clone(),
            classifier: true,
        };
        Some((e, vec![term]))
    }
    fn noise_precision(&self) -> f64 {
        0.0
    }
}

#[test]
fn fkc_weights_of_classifier_free_and_classifier_guidance_match_the_guided_law() {
    // CFG with w = 2 on score-only Gaussians: p ∝ q_u^{1−w} q_c^w = N(m, v) with precision
    // (1 − w)/v_u + w/v_c; and classifier guidance with λ = 2 on the same pair (a score-only
    // marginal times an exact classifier), which targets the same law.
    let schedule = schedule();
    let (mu, vu, mc, vc, w) = (0.0, 1.0, 1.0, 0.25, 2.0);
    let gauss_so = |m: f64, v: f64| {
        Composition::leaf(ScoreOnly(DiffusedTarget {
            data: IsotropicGmm::gaussian(vec![m], v),
            schedule: &schedule,
        }))
    };
    let precision = (1.0 - w) / vu + w / vc;
    let var = 1.0 / precision;
    let mean = var * ((1.0 - w) * mu / vu + w * mc / vc);
    let cfg_target = Composition::guided(gauss_so(mu, vu), vec![gauss_so(mc, vc)], w).unwrap();
    check_gaussian(
        "score-only CFG w = 2",
        &cfg_target,
        &schedule,
        &[mean],
        var,
        1000,
        |s| s.weights = Some(SmcWeights::FkcAverage),
    );
    let classifier = Composition::leaf(GaussianClassifier {
        cond: DiffusedTarget {
            data: IsotropicGmm::gaussian(vec![mc], vc),
            schedule: &schedule,
        },
        marginal: DiffusedTarget {
            data: IsotropicGmm::gaussian(vec![mu], vu),
            schedule: &schedule,
        },
    });
    let guided = Composition::classifier_guided(gauss_so(mu, vu), classifier, w).unwrap();
    check_gaussian(
        "score-only model + classifier λ = 2",
        &guided,
        &schedule,
        &[mean],
        var,
        1000,
        |s| s.weights = Some(SmcWeights::FkcAverage),
    );
}
