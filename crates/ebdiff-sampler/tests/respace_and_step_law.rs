//! Every sampler on a respaced schedule (a model trained on 1000 levels sampled on 100), the
//! fitted step law a·β^b, and chunked evaluation.

use burn::tensor::Device;
use ebdiff_core::{NoiseSchedule, ScheduleConfig};
use ebdiff_sampler::analytic::{DiffusedTarget, IsotropicGmm};
use ebdiff_sampler::config::{FitStepLaw, RejuvenateConfig};
use ebdiff_sampler::{
    AnnealMode, Composition, SampleResult, SamplerConfig, SamplerKind, SamplingConfig, Target,
    sample,
};

fn run(cfg: &SamplingConfig, target: &dyn Target, schedule: &NoiseSchedule) -> SampleResult {
    sample(cfg, target, schedule, &Device::flex(), |_| {}).expect("valid run")
}

fn product(schedule: &NoiseSchedule) -> Composition<'_> {
    let g = |mean: f64, var| {
        Composition::leaf(DiffusedTarget {
            data: IsotropicGmm::gaussian(vec![mean; 4], var),
            schedule,
        })
    };
    Composition::product(vec![(1.0, g(0.5, 0.3)), (1.0, g(-0.4, 0.6))]).unwrap()
}

/// Respacing a fine schedule gives the same run as a target built on the coarse schedule itself:
/// the wrapper feeds the target its source levels, whose ᾱ the respaced schedule keeps.
#[test]
fn respaced_mcmc_and_smc_equal_runs_on_the_coarse_schedule() {
    let fine = ScheduleConfig::linear(400).build();
    let coarse = fine.respaced(&fine.evenly_spaced_levels(40)).unwrap();
    let on_fine = product(&fine);
    let on_coarse = product(&coarse);
    for kind in [SamplerKind::Mala, SamplerKind::Hmc, SamplerKind::Smc] {
        let mut s = SamplerConfig::new(kind);
        s.mode = AnnealMode::ReverseThenSame;
        s.steps_per_level = 2;
        s.window = Some([10, 39]);
        s.step_size = Some(ebdiff_sampler::step_size::LevelSchedule::BetaScaled { c: 0.2 });
        if kind == SamplerKind::Smc {
            s.steps_per_level = 10;
            s.rejuvenate = Some(RejuvenateConfig {
                kind: SamplerKind::Mala,
                steps: 1,
            });
        }
        let mut respaced = s.clone();
        respaced.respace = Some(40);
        let a = run(&SamplingConfig::new(respaced, 64, 3), &on_fine, &fine);
        let b = run(&SamplingConfig::new(s, 64, 3), &on_coarse, &coarse);
        let worst = a
            .samples_vec()
            .iter()
            .zip(b.samples_vec())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        // ᾱ of the respaced schedule is recomputed from its β: equal to ~1e-15, not bit for bit.
        assert!(worst < 1e-4, "{kind:?}: samples differ by {worst}");
        assert_eq!(a.nfe, b.nfe, "{kind:?}");
    }
}

/// The fitted law lands the main run's acceptance in (near) the band it was tuned for, at every
/// level of the window, on an 8-D Gaussian mixture whose scale changes across levels; the same
/// sampler with a step 10× too large misses it (the check can fail).
#[test]
fn a_fitted_step_law_keeps_acceptance_in_its_band() {
    let schedule = ScheduleConfig::linear(1000).build();
    let mix = IsotropicGmm::new(vec![vec![0.6; 8], vec![-0.6; 8]], vec![0.5, 0.5], 0.05);
    let target = DiffusedTarget {
        data: mix,
        schedule: &schedule,
    };
    for (kind, band) in [
        (SamplerKind::Mala, [0.55, 0.65]),
        (SamplerKind::Hmc, [0.65, 0.75]),
    ] {
        let mut s = SamplerConfig::new(kind);
        s.respace = Some(100);
        s.mode = AnnealMode::ReverseThenSame;
        s.steps_per_level = 4;
        s.window = Some([50, 99]);
        s.fit_step_law = Some(FitStepLaw {
            band,
            pilot_chains: 32,
            probe_steps: 2,
            max_probes: 12,
        });
        let result = run(&SamplingConfig::new(s.clone(), 256, 1), &target, &schedule);
        let law = result.step_law.as_ref().expect("fitted law recorded");
        let acc: Vec<f64> = result
            .levels
            .iter()
            .map(|d| d.acceptance.unwrap())
            .collect();
        let mean = acc.iter().sum::<f64>() / acc.len() as f64;
        eprintln!(
            "{kind:?}: a = {:.3}, b = {:.3}, main-run acceptance mean {mean:.3}, range {:.3}–{:.3}",
            law.a,
            law.b,
            acc.iter().cloned().fold(1.0, f64::min),
            acc.iter().cloned().fold(0.0, f64::max)
        );
        assert_eq!(acc.len(), 50);
        assert!(
            mean > band[0] - 0.05 && mean < band[1] + 0.05,
            "{kind:?}: mean {mean}"
        );
        assert!(
            acc.iter().all(|&a| a > band[0] - 0.2 && a < band[1] + 0.2),
            "{acc:?}"
        );
        // Ten times the fitted step: acceptance collapses.
        s.fit_step_law = None;
        s.step_size = Some(ebdiff_sampler::step_size::LevelSchedule::BetaPower {
            a: 10.0 * law.a,
            b: law.b,
        });
        let off = run(&SamplingConfig::new(s, 256, 1), &target, &schedule);
        let off_mean = off.mean_acceptance().unwrap();
        assert!(
            off_mean < band[0] - 0.2,
            "{kind:?}: 10× step still accepts {off_mean}"
        );
    }
}

/// Evaluating in chunks changes nothing but the batch the network sees.
#[test]
fn chunked_evaluation_gives_the_same_samples() {
    let schedule = ScheduleConfig::cosine(30).build();
    let target = product(&schedule);
    for kind in [SamplerKind::Ancestral, SamplerKind::Hmc, SamplerKind::Smc] {
        let s = SamplerConfig::new(kind);
        let mut chunked = s.clone();
        chunked.max_batch = Some(7);
        let a = run(&SamplingConfig::new(s, 50, 2), &target, &schedule);
        let b = run(&SamplingConfig::new(chunked, 50, 2), &target, &schedule);
        assert_eq!(a.samples_vec(), b.samples_vec(), "{kind:?}");
    }
}

#[test]
fn fit_step_law_without_a_metropolis_kernel_is_a_named_error() {
    let schedule = ScheduleConfig::cosine(30).build();
    let target = product(&schedule);
    let mut s = SamplerConfig::new(SamplerKind::Ula);
    s.fit_step_law = Some(FitStepLaw {
        band: [0.5, 0.6],
        pilot_chains: 4,
        probe_steps: 1,
        max_probes: 3,
    });
    let err = sample(
        &SamplingConfig::new(s, 8, 0),
        &target,
        &schedule,
        &Device::flex(),
        |_| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("`sampler.fit_step_law`") && err.contains("mala"),
        "{err}"
    );
}
