//! Grouped SMC (`particles_per_sample`): one group holding every particle is today's SMC bit for
//! bit; groups of one particle are the proposal alone; groups of P match exact laws within
//! Monte-Carlo error over several seeds.

use burn::tensor::{Device, Tensor};
use ebdiff_core::{NoiseSchedule, ScheduleConfig};
use ebdiff_data::Toy2d;
use ebdiff_sampler::analytic::{DiffusedTarget, IsotropicGmm, ScoreOnly};
use ebdiff_sampler::{
    Composition, OracleTarget, SampleResult, SamplerConfig, SamplerKind, SamplingConfig, Target,
    sample,
};

fn gauss(schedule: &NoiseSchedule, mean: Vec<f64>, var: f64) -> Composition<'_> {
    Composition::leaf(DiffusedTarget {
        data: IsotropicGmm::gaussian(mean, var),
        schedule,
    })
}

fn run(cfg: &SamplingConfig, target: &dyn Target, schedule: &NoiseSchedule) -> SampleResult {
    sample(cfg, target, schedule, &Device::flex(), |_| {}).expect("valid SMC run")
}

/// FNV-1a over bytes: a fixed, toolchain-independent digest.
fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Digest of everything an SMC run returns: sample bits, log Ẑ, final weights, ancestry and the
/// per-level ESS, resampling and ancestor counts.
fn fingerprint(result: &SampleResult) -> u64 {
    let smc = result.smc.as_ref().expect("SMC diagnostics");
    let mut bytes: Vec<u8> = result
        .samples_vec()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    bytes.extend(smc.log_z.to_le_bytes());
    bytes.extend(smc.final_ess.to_le_bytes());
    bytes.extend(smc.final_log_weights.iter().flat_map(|v| v.to_le_bytes()));
    bytes.extend(smc.ancestors.iter().flat_map(|&a| (a as u64).to_le_bytes()));
    for l in &smc.levels {
        bytes.extend(l.ess.to_le_bytes());
        bytes.push(l.resampled as u8);
        bytes.extend((l.distinct_ancestors as u64).to_le_bytes());
        bytes.extend(l.log_z.to_le_bytes());
    }
    bytes.extend((result.nfe as u64).to_le_bytes());
    fnv(bytes)
}

fn smc(count: usize, seed: u64, edit: impl Fn(&mut SamplerConfig)) -> SamplingConfig {
    let mut s = SamplerConfig::new(SamplerKind::Smc);
    s.variance = ebdiff_sampler::Variance::FixedLarge;
    edit(&mut s);
    SamplingConfig::new(s, count, seed)
}

/// The SMC runs whose outputs were recorded before grouping existed (commit fddc153).
fn recorded_cases() -> Vec<(&'static str, u64)> {
    let schedule = ScheduleConfig::cosine(40).build();
    let product = || {
        Composition::product(vec![
            (1.0, gauss(&schedule, vec![0.5, -0.2], 0.3)),
            (1.0, gauss(&schedule, vec![-0.4, 0.1], 0.6)),
        ])
        .unwrap()
    };
    let ring = OracleTarget::new(Toy2d::ring(8, 0.5, 0.075), schedule.clone()).unwrap();
    let fkc_target = ScoreOnly(product());
    let mut out = Vec::new();
    let mut push = |name, cfg: SamplingConfig, target: &dyn Target| {
        out.push((name, fingerprint(&run(&cfg, target, &schedule))));
    };
    push("ancestral-exact", smc(64, 3, |_| {}), &product());
    push(
        "mala-proposal-hmc-rejuvenation",
        smc(48, 5, |s| {
            s.proposal = Some(SamplerKind::Mala);
            s.steps_per_level = 2;
            s.step_size = Some(ebdiff_sampler::step_size::LevelSchedule::constant(0.01));
            s.rejuvenate = Some(ebdiff_sampler::config::RejuvenateConfig {
                kind: SamplerKind::Hmc,
                steps: 1,
            });
            s.window = Some([0, 20]);
            s.ess_threshold = Some(0.7);
        }),
        &product(),
    );
    push(
        "fkc-average-clamped",
        smc(64, 7, |s| {
            s.weights = Some(ebdiff_sampler::SmcWeights::FkcAverage);
            s.clamp_log_weight_increment = Some(0.5);
        }),
        &fkc_target,
    );
    push(
        "oracle-ring-data-level-rejuvenation",
        smc(64, 11, |s| {
            s.rejuvenate = Some(ebdiff_sampler::config::RejuvenateConfig {
                kind: SamplerKind::Mala,
                steps: 1,
            });
            s.step_size = Some(ebdiff_sampler::step_size::LevelSchedule::constant(1e-3));
        }),
        &ring,
    );
    out
}

/// Recorded with the code before groups existed: a change in how SMC draws, weights or resamples
/// shows up here (flex is deterministic and these 2-D runs use no reductions long enough for SIMD
/// width to matter).
const RECORDED: [(&str, u64); 4] = [
    ("ancestral-exact", 0xdd5abf7fc5f59a81),
    ("mala-proposal-hmc-rejuvenation", 0xdf4e3d74e4abfefc),
    ("fkc-average-clamped", 0x77256949040bcbe8),
    ("oracle-ring-data-level-rejuvenation", 0x19193536972e11ea),
];

#[test]
fn one_population_is_the_smc_of_before_groups_bit_for_bit() {
    // Without `particles_per_sample` the sampler is one group holding all `count` particles.
    for ((name, got), (want_name, want)) in recorded_cases().into_iter().zip(RECORDED) {
        assert_eq!(name, want_name);
        assert_eq!(got, want, "{name}: {got:#018x}, recorded {want:#018x}");
    }
}

/// With one particle per group every weight normalizes to 1: nothing is ever resampled and the
/// final draw is the particle itself, so the samples are the ancestral proposal's trajectories,
/// computed here from the same random streams without any weights.
#[test]
fn groups_of_one_particle_are_the_proposal_alone() {
    use ebdiff_core::rng::{randn, stream};
    use ebdiff_sampler::ancestral::{reverse_mean, reverse_variance};
    let schedule = ScheduleConfig::cosine(40).build();
    let target = Composition::product(vec![
        (1.0, gauss(&schedule, vec![0.5, -0.2], 0.3)),
        (1.0, gauss(&schedule, vec![-0.4, 0.1], 0.6)),
    ])
    .unwrap();
    let (count, seed) = (64, 9);
    let cfg = smc(count, seed, |s| {
        s.particles_per_sample = Some(1);
        s.ess_threshold = Some(1.0);
    });
    let result = run(&cfg, &target, &schedule);
    let device = Device::flex();
    let variance = ebdiff_sampler::Variance::FixedLarge;
    let mut init = stream(seed, "init");
    let mut moves = stream(seed, "smc-proposal");
    let top = ebdiff_sampler::smc::start_level(&schedule);
    let precision = target.noise_precision();
    let mut x: Tensor<2> = randn(&mut init, [count, 2], &device).div_scalar(precision.sqrt());
    for k in (0..top).rev() {
        let eps = target
            .score(x.clone(), k + 1)
            .mul_scalar(-schedule.sigma(k + 1));
        let mean = reverse_mean(x, eps, k + 1, &schedule, None);
        let var = reverse_variance(k + 1, &schedule, variance);
        x = mean + randn(&mut moves, [count, 2], &device).mul_scalar(var.sqrt());
    }
    let eps = target.score(x.clone(), 0).mul_scalar(-schedule.sigma(0));
    let mut x = reverse_mean(x, eps, 0, &schedule, None);
    // The Gaussians know their data law: SMC ends with one more move, to the data level.
    assert!(target.data_log_density(x.clone()).is_some());
    x = x + randn(&mut moves, [count, 2], &device).mul_scalar(schedule.beta(0).sqrt());
    let want: Vec<f32> = x.into_data().convert::<f32>().try_into_vec().unwrap();
    assert_eq!(result.samples_vec(), want);
    let d = result.smc.unwrap();
    assert!(
        d.levels
            .iter()
            .all(|l| !l.resampled && l.group_ess_min == 1.0)
    );
    assert_eq!(d.ancestors, (0..count).collect::<Vec<_>>());
}

/// Seed-mean of per-seed statistics and its z-score against `truth`.
fn z_score(per_seed: &[f64], truth: f64) -> (f64, f64) {
    let n = per_seed.len() as f64;
    let mean = per_seed.iter().sum::<f64>() / n;
    let var = per_seed.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (mean - truth) / (var / n).sqrt().max(1e-12))
}

/// Per seed, the mean over the two axes of the standardized mean error and the variance ratio
/// against N(mean, var I).
fn gaussian_stats(result: &SampleResult, mean: [f64; 2], var: f64) -> (f64, f64) {
    let v = result.samples_vec();
    let n = (v.len() / 2) as f64;
    let (mut m_err, mut v_ratio) = (0.0, 0.0);
    for (d, &mu) in mean.iter().enumerate() {
        let xs: Vec<f64> = v.iter().skip(d).step_by(2).map(|&a| a as f64).collect();
        let m = xs.iter().sum::<f64>() / n;
        let s2 = xs.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (n - 1.0);
        m_err += (m - mu) / var.sqrt() / 2.0;
        v_ratio += s2 / var / 2.0;
    }
    (m_err, v_ratio)
}

/// Groups of 8 particles with MALA rejuvenation sample the product of two Gaussians
/// N(0.5, 0.3)·N(−0.4, 0.6) per axis — exactly N(0.2, 0.2) — within Monte-Carlo error over 10
/// seeds, while the same proposal without weights (groups of one) misses its variance by many
/// standard errors (the test can see a weighting error). Without rejuvenation a group's
/// self-normalized draw keeps the bias of a population of P (measured: variance ratio 0.85 at
/// P = 8, 0.92 at P = 32 — as one population of 32 particles gives, 0.90); rejuvenation removes it.
#[test]
fn groups_of_eight_sample_a_gaussian_product_exactly() {
    let schedule = ScheduleConfig::cosine(40).build();
    let target = Composition::product(vec![
        (1.0, gauss(&schedule, vec![0.5, 0.5], 0.3)),
        (1.0, gauss(&schedule, vec![-0.4, -0.4], 0.6)),
    ])
    .unwrap();
    let (mean, var) = ([0.2, 0.2], 0.2);
    let stats = |p: usize, rejuvenate: bool| {
        let (mut m, mut v, mut anc) = (Vec::new(), Vec::new(), Vec::new());
        for seed in 0..10 {
            let cfg = smc(400, seed, |s| {
                s.particles_per_sample = Some(p);
                if rejuvenate {
                    s.rejuvenate = Some(ebdiff_sampler::config::RejuvenateConfig {
                        kind: SamplerKind::Mala,
                        steps: 2,
                    });
                    s.step_size =
                        Some(ebdiff_sampler::step_size::LevelSchedule::BetaScaled { c: 0.5 });
                }
            });
            let result = run(&cfg, &target, &schedule);
            let (a, b) = gaussian_stats(&result, mean, var);
            m.push(a);
            v.push(b);
            let d = result.smc.unwrap();
            assert_eq!((d.particles, d.group_size), (400 * p, Some(p)));
            anc.push(d.levels.last().unwrap().group_ancestors_median);
        }
        (z_score(&m, 0.0), z_score(&v, 1.0), anc)
    };
    let ((m8, zm8), (v8, zv8), anc8) = stats(8, true);
    eprintln!(
        "P = 8 + MALA rejuvenation: mean error {m8:+.4}σ (z {zm8:+.2}), variance ratio {v8:.4} (z {zv8:+.2}), median ancestors per group at the end {anc8:?}"
    );
    assert!(zm8.abs() < 5.0 && zv8.abs() < 5.0);
    let (_, (v1, zv1), _) = stats(1, false);
    eprintln!("P = 1 (proposal alone): variance ratio {v1:.4} (z {zv1:+.2})");
    assert!(zv1.abs() > 10.0, "the proposal alone should be visibly off");
}

/// The exact ring (8 modes of 1/8) under grouped SMC: each mode's share within Monte-Carlo error.
#[test]
fn groups_give_every_ring_mode_its_eighth() {
    let schedule = ScheduleConfig::cosine(40).build();
    let ring = OracleTarget::new(Toy2d::ring(8, 0.5, 0.075), schedule.clone()).unwrap();
    let mut shares = vec![Vec::new(); 8];
    for seed in 0..6 {
        let cfg = smc(400, seed, |s| s.particles_per_sample = Some(8));
        let v = run(&cfg, &ring, &schedule).samples_vec();
        let mut counts = [0.0f64; 8];
        for p in v.chunks(2) {
            let angle = (p[1] as f64)
                .atan2(p[0] as f64)
                .rem_euclid(std::f64::consts::TAU);
            counts[((angle / (std::f64::consts::TAU / 8.0)).round() as usize) % 8] += 1.0;
        }
        for (m, c) in counts.iter().enumerate() {
            shares[m].push(c / 400.0);
        }
    }
    for (m, s) in shares.iter().enumerate() {
        let (mean, z) = z_score(s, 0.125);
        eprintln!("mode {m}: {mean:.4} (z {z:+.2})");
        assert!(z.abs() < 5.0, "mode {m}: {mean:.4}, z {z:.2}");
    }
}

/// Bad settings are named errors.
#[test]
fn bad_group_and_temper_settings_name_the_key() {
    let schedule = ScheduleConfig::cosine(20).build();
    let target = gauss(&schedule, vec![0.0, 0.0], 0.1);
    for (edit, key) in [
        (
            Box::new(|s: &mut SamplerConfig| s.particles_per_sample = Some(0))
                as Box<dyn Fn(&mut SamplerConfig)>,
            "sampler.particles_per_sample",
        ),
        (
            Box::new(|s: &mut SamplerConfig| s.temper = Some(0.0)),
            "sampler.temper",
        ),
        (
            Box::new(|s: &mut SamplerConfig| s.temper = Some(1.5)),
            "sampler.temper",
        ),
    ] {
        let cfg = smc(10, 0, edit);
        let msg = sample(&cfg, &target, &schedule, &Device::flex(), |_| {})
            .err()
            .expect("refused")
            .to_string();
        assert!(msg.contains(&format!("`{key}`")), "{msg}");
    }
    let mut s = SamplerConfig::new(SamplerKind::Ancestral);
    s.particles_per_sample = Some(4);
    let cfg = SamplingConfig::new(s, 10, 0);
    let msg = sample(&cfg, &target, &schedule, &Device::flex(), |_| {})
        .err()
        .expect("refused")
        .to_string();
    assert!(
        msg.contains("particles_per_sample") && msg.contains("smc"),
        "{msg}"
    );
}
