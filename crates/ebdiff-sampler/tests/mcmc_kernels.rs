//! MCMC kernels on analytic targets: invariance of the exact target under MALA and HMC (energy
//! and score-only line-integral versions), acceptance → 1 as the step → 0, and ULA's known bias.

use burn::tensor::{Device, Tensor};
use ebdiff_core::rng::stream;
use ebdiff_sampler::analytic::{IsotropicGmm, ScoreOnly, StaticTarget, points};
use ebdiff_sampler::mcmc::{HmcParams, hmc_step, mala_step, ula_step};
use ebdiff_sampler::{Evaluation, Target};

fn gmm2d() -> IsotropicGmm {
    IsotropicGmm::new(
        vec![vec![-1.0, 0.0], vec![1.0, 0.5], vec![0.0, -1.0]],
        vec![0.5, 0.3, 0.2],
        0.09,
    )
}

fn moments(x: Tensor<2>) -> Vec<f64> {
    // mean (D) and second moments (D) per coordinate
    let v: Vec<f64> = x.into_data().convert::<f64>().try_to_vec().unwrap();
    let n = v.len() / 2;
    let mut out = vec![0.0; 4];
    for p in v.chunks_exact(2) {
        out[0] += p[0] / n as f64;
        out[1] += p[1] / n as f64;
        out[2] += p[0] * p[0] / n as f64;
        out[3] += p[1] * p[1] / n as f64;
    }
    out
}

fn exact_moments(g: &IsotropicGmm) -> Vec<f64> {
    let mut out = vec![0.0; 4];
    for (m, w) in g.means.iter().zip(&g.weights) {
        out[0] += w * m[0];
        out[1] += w * m[1];
        out[2] += w * (m[0] * m[0] + g.var);
        out[3] += w * (m[1] * m[1] + g.var);
    }
    out
}

enum Kernel {
    Mala { eta: f64, points: usize },
    Hmc(HmcParams),
}

/// Runs `steps` kernel steps from exact samples; returns final samples and mean acceptance.
fn run(
    target: &dyn Target,
    kernel: &Kernel,
    n: usize,
    steps: usize,
    seed: u64,
) -> (Tensor<2>, f64) {
    let device = Device::flex();
    let g = gmm2d();
    let mut rng = stream(seed, "kernel-test");
    let mut x = points(g.sample(n, &mut rng), 2, &device);
    let mut eval: Evaluation = target.evaluate(x.clone(), 0);
    let mut v = points(ebdiff_core::rng::normal_vec(&mut rng, 2 * n), 2, &device);
    let mut acc = 0.0;
    for _ in 0..steps {
        let out = match kernel {
            Kernel::Mala { eta, points } => {
                mala_step(target, x.clone(), eval, 0, *eta, *points, &mut rng)
            }
            Kernel::Hmc(p) => hmc_step(target, x.clone(), v.clone(), eval, 0, p, &mut rng),
        };
        acc += out.accepted.expect("MH kernel").mean().into_scalar::<f64>();
        x = out.x;
        eval = out.eval;
        if let Some(m) = out.momentum {
            v = m;
        }
    }
    (x, acc / steps as f64)
}

fn hmc(step: f64) -> HmcParams {
    HmcParams {
        step,
        leapfrog: 3,
        damping: 0.5,
        mass: 1.0,
        metropolis: true,
        flip_on_reject: false,
        extra_points: 0,
    }
}

/// Tolerance: n = 20000 chains; the second moments here are ≤ 1.1, so their Monte-Carlo standard
/// error is ≈ 0.01; 0.035 is 3.5 standard errors.
const TOL: f64 = 0.035;

fn assert_keeps_target(name: &str, x: Tensor<2>) {
    let (m, e) = (moments(x), exact_moments(&gmm2d()));
    for (a, b) in m.iter().zip(&e) {
        assert!((a - b).abs() < TOL, "{name}: moments {m:?} vs exact {e:?}");
    }
}

#[test]
fn mala_and_hmc_keep_the_exact_target() {
    let target = StaticTarget(gmm2d());
    // Large steps (acceptance well below 1) so that a wrong MH ratio would show.
    let (x, acc) = run(
        &target,
        &Kernel::Mala {
            eta: 0.05,
            points: 2,
        },
        20_000,
        30,
        1,
    );
    assert!(
        acc < 0.9,
        "MALA acceptance {acc}: the step is too small to test the correction"
    );
    assert_keeps_target("MALA", x);
    let (x, acc) = run(&target, &Kernel::Hmc(hmc(0.5)), 20_000, 20, 2);
    assert!(
        acc < 0.9,
        "HMC acceptance {acc}: the step is too small to test the correction"
    );
    assert_keeps_target("HMC", x);
}

#[test]
fn score_only_line_integral_mh_keeps_a_conservative_target() {
    // The GMM score is a gradient field, so path integrals converge to the true Δf.
    let target = ScoreOnly(StaticTarget(gmm2d()));
    let (x, _) = run(
        &target,
        &Kernel::Mala {
            eta: 0.05,
            points: 10,
        },
        20_000,
        30,
        3,
    );
    assert_keeps_target("score MALA (10 trapezoid points)", x);
    let mut p = hmc(0.3);
    p.extra_points = 2;
    let (x, _) = run(&target, &Kernel::Hmc(p), 20_000, 20, 4);
    assert_keeps_target("score HMC (leapfrog path + 2 points)", x);
}

#[test]
fn acceptance_tends_to_one_as_the_step_shrinks() {
    let target = StaticTarget(gmm2d());
    let mala: Vec<f64> = [0.1, 0.01, 0.0001]
        .iter()
        .map(|&eta| run(&target, &Kernel::Mala { eta, points: 2 }, 2000, 3, 5).1)
        .collect();
    let hmc_acc: Vec<f64> = [0.5, 0.1, 0.005]
        .iter()
        .map(|&s| run(&target, &Kernel::Hmc(hmc(s)), 2000, 3, 6).1)
        .collect();
    for acc in [&mala, &hmc_acc] {
        assert!(
            acc[0] < acc[1] && acc[1] < acc[2],
            "acceptance not increasing as the step shrinks: {acc:?}"
        );
        assert!(acc[2] > 0.995, "acceptance at the smallest step: {acc:?}");
    }
}

#[test]
fn ula_settles_at_the_predicted_biased_variance_and_mala_corrects_it() {
    // Target N(0, s²) per coordinate; ULA x' = (1 − η/s²)x + √(2η)ξ has stationary variance
    // s² / (1 − η/(2s²)).
    let (s2, eta) = (1.0, 0.5);
    let target = StaticTarget(IsotropicGmm::gaussian(vec![0.0, 0.0], s2));
    let device = Device::flex();
    let mut rng = stream(7, "ula");
    let n = 20_000;
    let start = points(
        IsotropicGmm::gaussian(vec![0.0, 0.0], s2).sample(n, &mut rng),
        2,
        &device,
    );
    let variance = |x: Tensor<2>| {
        let m = moments(x);
        0.5 * (m[2] - m[0] * m[0] + m[3] - m[1] * m[1])
    };
    let (mut x, mut eval) = (start.clone(), target.evaluate(start.clone(), 0));
    for _ in 0..60 {
        let out = ula_step(&target, x, eval, 0, eta, &mut rng);
        (x, eval) = (out.x, out.eval);
    }
    let predicted = s2 / (1.0 - eta / (2.0 * s2));
    let ula_var = variance(x);
    assert!(
        (ula_var - predicted).abs() < 0.04,
        "ULA variance {ula_var}, theory {predicted}"
    );
    let (mut x, mut eval) = (start.clone(), target.evaluate(start, 0));
    for _ in 0..60 {
        let out = mala_step(&target, x, eval, 0, eta, 2, &mut rng);
        (x, eval) = (out.x, out.eval);
    }
    let mala_var = variance(x);
    assert!(
        (mala_var - s2).abs() < 0.04,
        "MALA variance {mala_var}, target {s2}"
    );
}

#[test]
fn step_size_search_hits_the_acceptance_band() {
    use ebdiff_sampler::{
        AnnealedOptions, LevelSchedule, SamplerKind, TuneOptions, sample_annealed,
    };
    let target = StaticTarget(gmm2d());
    let schedule = ebdiff_core::NoiseSchedule::from_betas(vec![0.1; 4]);
    for kernel in [SamplerKind::Mala, SamplerKind::Hmc] {
        let mut opts = AnnealedOptions::paper_2d(kernel, schedule.len());
        // Start far too small: the search must grow it by decades, then bisect.
        opts.step_size = LevelSchedule::constant(1e-6);
        opts.steps_per_level = 5;
        opts.tune = Some(TuneOptions {
            band: (0.6, 0.75),
            probe_steps: 3,
            max_probes: 20,
        });
        let run =
            sample_annealed(&target, &schedule, 4000, &opts, &Device::flex(), |_| {}).unwrap();
        for d in &run.levels {
            let acc = d.acceptance.unwrap();
            assert!(
                (0.5..=0.85).contains(&acc),
                "{kernel:?} level {}: acceptance {acc} with step {}",
                d.level,
                d.step_size
            );
            assert!(d.step_size > 1e-3, "step was not searched: {}", d.step_size);
            assert!(d.tune_nfe > 0);
        }
    }
}

/// Counts the evaluations a sampler asks for; its diagnostics (`term_score_norms`) do not count.
struct Counting<T> {
    inner: T,
    calls: std::cell::Cell<usize>,
}

impl<T: Target> Target for Counting<T> {
    fn data_dim(&self) -> usize {
        self.inner.data_dim()
    }
    fn has_energy(&self) -> bool {
        self.inner.has_energy()
    }
    fn evaluate(&self, x: Tensor<2>, level: usize) -> Evaluation {
        self.calls.set(self.calls.get() + 1);
        self.inner.evaluate(x, level)
    }
    fn term_score_norms(&self, _: Tensor<2>, _: usize) -> Vec<f64> {
        Vec::new()
    }
}

#[test]
fn nfe_counts_every_evaluation_including_reverse_steps_outside_the_mcmc_window() {
    use ebdiff_sampler::{AnnealMode, AnnealedOptions, SamplerKind, sample_annealed};
    let schedule = ebdiff_core::NoiseSchedule::from_betas(vec![0.05; 10]);
    for mode in [
        AnnealMode::Pure,
        AnnealMode::ReverseThenSame,
        AnnealMode::ReverseThenNext,
    ] {
        for kernel in [SamplerKind::Ula, SamplerKind::Mala, SamplerKind::Hmc] {
            for k in [0, 2] {
                let target = Counting {
                    inner: StaticTarget(gmm2d()),
                    calls: std::cell::Cell::new(0),
                };
                let mut opts = AnnealedOptions::paper_2d(kernel, schedule.len());
                opts.mode = mode;
                opts.steps_per_level = k;
                opts.window = (5, 8);
                let run =
                    sample_annealed(&target, &schedule, 3, &opts, &Device::flex(), |_| {}).unwrap();
                assert_eq!(
                    run.nfe,
                    target.calls.get(),
                    "{mode:?} {kernel:?} K = {k}: reported vs counted"
                );
                // Levels 9…0 all take a reverse step in the reverse modes, the window's below too.
                let reverse = if mode == AnnealMode::Pure { 0 } else { 10 };
                if k == 0 {
                    assert_eq!(run.nfe, reverse, "{mode:?} {kernel:?}");
                } else {
                    assert!(run.nfe > reverse + 4 * k, "{mode:?} {kernel:?} {}", run.nfe);
                }
            }
        }
    }
}
