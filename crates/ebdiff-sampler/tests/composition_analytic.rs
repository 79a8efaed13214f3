//! The composition algebra on analytic targets (method.md §3).

use burn::tensor::{Device, Tensor};
use ebdiff_core::rng::stream;
use ebdiff_core::{NoiseSchedule, ScheduleConfig};
use ebdiff_sampler::analytic::{DiffusedTarget, IsotropicGmm, ScoreOnly, points};
use ebdiff_sampler::{
    AncestralOptions, AnnealedOptions, Composition, CompositionError, SamplerKind, Target,
    TargetAsEps, Variance, sample_ancestral, sample_annealed,
};

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec().unwrap()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn gauss(schedule: &NoiseSchedule, mean: f64, var: f64) -> Composition<'_> {
    Composition::leaf(DiffusedTarget {
        data: IsotropicGmm::gaussian(vec![mean], var),
        schedule,
    })
}

fn variance(x: Tensor<2>) -> (f64, f64) {
    let v = to_vec(x);
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / n)
}

#[test]
fn product_of_two_gaussians_needs_mcmc_not_summed_score_reverse_diffusion() {
    // q¹ = N(−1, ¼), q² = N(1, ¼) ⇒ q¹q² ∝ N(0, ⅛). Summing the diffused scores targets the
    // product of diffused marginals at every level, which is not the diffused product (method.md
    // §3.1), so plain reverse diffusion lands on the wrong variance; annealed HMC on the same
    // composed energy equilibrates at each level and ends at N(0, ⅛).
    let schedule = ScheduleConfig::cosine(100).build();
    let product = Composition::product(vec![
        (1.0, gauss(&schedule, -1.0, 0.25)),
        (1.0, gauss(&schedule, 1.0, 0.25)),
    ])
    .unwrap();
    let device = Device::flex();
    let n = 20_000;
    let reverse = sample_ancestral(
        &TargetAsEps {
            target: &product,
            schedule: &schedule,
        },
        &schedule,
        n,
        None,
        &AncestralOptions {
            variance: Variance::FixedSmall,
            clip_x0: None,
            seed: 1,
        },
        &device,
        |_| {},
    );
    let (m_rev, v_rev) = variance(reverse);
    let mut opts = AnnealedOptions::paper_2d(SamplerKind::Hmc, schedule.len());
    opts.step_size = ebdiff_sampler::LevelSchedule::constant(0.1);
    opts.seed = 2;
    let run = sample_annealed(&product, &schedule, n, &opts, &device, |_| {}).unwrap();
    let (hmc, diag) = (run.samples, run.levels);
    let (m_hmc, v_hmc) = variance(hmc);
    eprintln!(
        "reverse: mean {m_rev:.4} var {v_rev:.4}; annealed HMC: mean {m_hmc:.4} var {v_hmc:.4}"
    );
    assert!(m_rev.abs() < 0.01 && m_hmc.abs() < 0.01);
    // Standard error of a variance estimate at n = 20000: 0.125·√(2/n) ≈ 0.00125.
    assert!(
        (v_hmc - 0.125).abs() < 0.006,
        "annealed HMC variance {v_hmc}"
    );
    assert!(
        (v_rev - 0.125).abs() > 0.03,
        "reverse diffusion variance {v_rev} should be visibly wrong"
    );
    let acc = diag.iter().filter_map(|d| d.acceptance).sum::<f64>() / diag.len() as f64;
    assert!(acc > 0.5 && acc < 1.0, "mean acceptance {acc}");
}

#[test]
fn mixture_of_diffused_components_is_the_diffused_mixture() {
    // Mixtures commute with diffusion, so with normalized components the composed log-density and
    // score equal those of the diffused mixture itself.
    let schedule = ScheduleConfig::cosine(100).build();
    let (a, b) = (
        IsotropicGmm::gaussian(vec![-0.5, 0.2], 0.04),
        IsotropicGmm::gaussian(vec![0.6, -0.1], 0.09),
    );
    let mix = Composition::mixture(
        vec![
            (
                0.3,
                Composition::leaf(DiffusedTarget {
                    data: a.clone(),
                    schedule: &schedule,
                }),
            ),
            (
                0.7,
                Composition::leaf(DiffusedTarget {
                    data: b.clone(),
                    schedule: &schedule,
                }),
            ),
        ],
        1.0,
    )
    .unwrap();
    let device = Device::flex();
    let x = points(
        ebdiff_core::rng::normal_vec(&mut stream(3, "x"), 64),
        2,
        &device,
    );
    for k in [0, 40, 99] {
        // Reference: a two-component GMM with different variances, evaluated by hand.
        let (da, db) = (a.diffused(&schedule, k), b.diffused(&schedule, k));
        let ea = da.evaluate_at(x.clone());
        let eb = db.evaluate_at(x.clone());
        let (fa, fb) = (
            to_vec(ea.log_density.unwrap()),
            to_vec(eb.log_density.unwrap()),
        );
        let (sa, sb) = (to_vec(ea.score), to_vec(eb.score));
        let mut f_ref = Vec::new();
        let mut s_ref = Vec::new();
        for i in 0..fa.len() {
            let (la, lb) = (0.3f64.ln() + fa[i], 0.7f64.ln() + fb[i]);
            let m = la.max(lb);
            let lse = m + ((la - m).exp() + (lb - m).exp()).ln();
            let (ra, rb) = ((la - lse).exp(), (lb - lse).exp());
            f_ref.push(lse);
            s_ref.push(ra * sa[2 * i] + rb * sb[2 * i]);
            s_ref.push(ra * sa[2 * i + 1] + rb * sb[2 * i + 1]);
        }
        let e = mix.evaluate(x.clone(), k);
        assert!(
            max_diff(&to_vec(e.log_density.unwrap()), &f_ref) < 1e-4,
            "level {k}"
        );
        assert!(max_diff(&to_vec(e.score), &s_ref) < 1e-3, "level {k}");
    }
}

#[test]
fn guidance_negation_and_product_weights() {
    let schedule = ScheduleConfig::cosine(100).build();
    let device = Device::flex();
    let x = points(
        ebdiff_core::rng::normal_vec(&mut stream(4, "x"), 20),
        1,
        &device,
    );
    let k = 30;
    let eval = |c: &Composition| {
        let e = c.evaluate(x.clone(), k);
        (to_vec(e.log_density.unwrap()), to_vec(e.score))
    };
    let (f0, s0) = eval(&gauss(&schedule, 0.0, 1.0));
    let (f1, s1) = eval(&gauss(&schedule, 1.0, 0.5));
    let (f2, s2) = eval(&gauss(&schedule, -1.0, 0.3));
    // f_∅ + w Σ (f_y − f_∅) with w = 3 and two conditions.
    let guided = Composition::guided(
        gauss(&schedule, 0.0, 1.0),
        vec![gauss(&schedule, 1.0, 0.5), gauss(&schedule, -1.0, 0.3)],
        3.0,
    )
    .unwrap();
    let (fg, sg) = eval(&guided);
    for i in 0..f0.len() {
        assert!((fg[i] - (f0[i] + 3.0 * (f1[i] - f0[i] + f2[i] - f0[i]))).abs() < 1e-3);
        assert!((sg[i] - (s0[i] + 3.0 * (s1[i] - s0[i] + s2[i] - s0[i]))).abs() < 1e-3);
    }
    // (1+α) f₁ − α f₂ with α = 0.3.
    let neg = Composition::negation(gauss(&schedule, 1.0, 0.5), gauss(&schedule, -1.0, 0.3), 0.3)
        .unwrap();
    let (fnn, snn) = eval(&neg);
    for i in 0..f1.len() {
        assert!((fnn[i] - (1.3 * f1[i] - 0.3 * f2[i])).abs() < 1e-4);
        assert!((snn[i] - (1.3 * s1[i] - 0.3 * s2[i])).abs() < 1e-4);
    }
    // Nesting: a product containing a mixture keeps its energy.
    let nested = Composition::product(vec![
        (1.0, gauss(&schedule, 0.0, 1.0)),
        (
            1.0,
            Composition::mixture(
                vec![
                    (0.5, gauss(&schedule, 1.0, 0.5)),
                    (0.5, gauss(&schedule, -1.0, 0.3)),
                ],
                1.0,
            )
            .unwrap(),
        ),
    ])
    .unwrap();
    assert!(nested.has_energy() && nested.evaluate(x.clone(), k).log_density.is_some());
}

#[test]
fn mixture_refuses_score_only_components_at_construction() {
    let schedule = ScheduleConfig::cosine(100).build();
    let score_only = Composition::leaf(ScoreOnly(DiffusedTarget {
        data: IsotropicGmm::gaussian(vec![0.0], 1.0),
        schedule: &schedule,
    }));
    let err = Composition::mixture(
        vec![(0.5, gauss(&schedule, 1.0, 0.5)), (0.5, score_only)],
        1.0,
    )
    .err()
    .unwrap();
    assert_eq!(err, CompositionError::ScoreOnlyMixtureChild { index: 1 });
    assert!(err.to_string().contains("energy"));
    // A product may contain score-only terms; it then has no log-density.
    let score_only = Composition::leaf(ScoreOnly(DiffusedTarget {
        data: IsotropicGmm::gaussian(vec![0.0], 1.0),
        schedule: &schedule,
    }));
    let p =
        Composition::product(vec![(1.0, gauss(&schedule, 1.0, 0.5)), (1.0, score_only)]).unwrap();
    assert!(!p.has_energy());
    let mismatched = Composition::product(vec![
        (1.0, gauss(&schedule, 1.0, 0.5)),
        (
            1.0,
            Composition::leaf(DiffusedTarget {
                data: IsotropicGmm::gaussian(vec![0.0, 0.0], 1.0),
                schedule: &schedule,
            }),
        ),
    ]);
    assert!(matches!(
        mismatched.err(),
        Some(CompositionError::DimensionMismatch { .. })
    ));
}

#[test]
fn term_score_norms_report_each_weighted_term() {
    let schedule = ScheduleConfig::cosine(100).build();
    let device = Device::flex();
    let x = points(
        ebdiff_core::rng::normal_vec(&mut stream(5, "x"), 50),
        1,
        &device,
    );
    let neg = Composition::negation(gauss(&schedule, 1.0, 0.5), gauss(&schedule, -1.0, 0.3), 0.3)
        .unwrap();
    let norms = neg.term_score_norms(x.clone(), 10);
    let mean_abs = |c: Composition| {
        to_vec(c.evaluate(x.clone(), 10).score)
            .iter()
            .map(|v| v.abs())
            .sum::<f64>()
            / 50.0
    };
    assert_eq!(norms.len(), 2);
    assert!((norms[0] - 1.3 * mean_abs(gauss(&schedule, 1.0, 0.5))).abs() < 1e-4);
    assert!((norms[1] - 0.3 * mean_abs(gauss(&schedule, -1.0, 0.3))).abs() < 1e-4);
}
