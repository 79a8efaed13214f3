//! Oracle components (src/oracle.rs) against independent computations: 2-D Gauss–Legendre
//! quadrature of p₀ ⋆ N(0, σ²) (with p₀ = `Toy2d::log_density`), normalization on grids, central
//! finite differences of the log-density, the k → 0 limit, far-tail asymptotics, exact samples
//! (Stein identities) and the `[models]` TOML entry.

use burn::tensor::Device;
use ebdiff_core::{NoiseSchedule, ScheduleConfig};
use ebdiff_data::{Toy2d, Toy2dConfig};
use ebdiff_sampler::Target;
use ebdiff_sampler::analytic::points;
use ebdiff_sampler::oracle::{ExactModel, OracleTarget};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::f64::consts::PI;

const LEVELS: [usize; 4] = [0, 10, 50, 99];

fn cosine100() -> NoiseSchedule {
    ScheduleConfig::cosine(100).build()
}

/// A toy with what the quadrature needs to know about p₀: a box outside which it is 0 (or
/// < e⁻⁵⁰ of its peak), the coordinates where it jumps, and the scale on which it varies.
struct Case {
    name: &'static str,
    toy: Toy2d,
    support: [[f64; 2]; 2],
    edges: [Vec<f64>; 2],
    feature: f64,
    points: Vec<[f64; 2]>,
}

fn ring_case() -> Case {
    let a = PI / 8.0;
    Case {
        name: "ring",
        toy: Toy2d::ring(8, 0.5, 0.075),
        support: [[-1.25, 1.25], [-1.25, 1.25]],
        edges: [vec![], vec![]],
        feature: 0.075,
        // on a mode, between two modes, the centre, outside
        points: vec![
            [0.5, 0.0],
            [0.5 * a.cos(), 0.5 * a.sin()],
            [0.0, 0.0],
            [0.9, -0.3],
        ],
    }
}

fn blobs_case() -> Case {
    Case {
        name: "blobs",
        toy: Toy2d::blobs(vec![[-0.5, 0.5], [0.5, 0.0], [0.3, -0.6]], 0.1),
        support: [[-1.5, 1.5], [-1.6, 1.5]],
        edges: [vec![], vec![]],
        feature: 0.1,
        points: vec![[-0.5, 0.5], [0.0, 0.25], [0.4, -0.3], [-0.9, -0.9]],
    }
}

/// The paper's bar, background 0.01.
fn bar_case() -> Case {
    Case {
        name: "bar (background 0.01)",
        toy: Toy2d::vertical_bar(0.2),
        support: [[-1.1, 1.1], [-1.1, 1.1]],
        edges: [vec![-0.2, 0.2], vec![-1.0, 1.0]],
        feature: f64::INFINITY,
        // inside, on an edge, on a corner, just outside (4σ₀), far outside the bar but on the
        // background, on the background's edge, outside everything
        points: vec![
            [0.05, 0.3],
            [0.2, 0.5],
            [0.2, 1.0],
            [0.3, 0.0],
            [0.7, -0.4],
            [1.1, 0.0],
            [1.25, 1.2],
        ],
    }
}

/// A plain rectangle (no background).
fn plain_case() -> Case {
    Case {
        name: "plain rect",
        toy: Toy2d::rect([-0.3, 0.4], [-0.1, 0.5], 0.0),
        support: [[-0.3, 0.4], [-0.1, 0.5]],
        edges: [vec![], vec![]],
        feature: f64::INFINITY,
        // inside, edge, corner, 6σ₀ outside one edge, 8σ₀ outside two
        points: vec![
            [0.0, 0.2],
            [0.4, 0.2],
            [-0.3, -0.1],
            [0.55, 0.2],
            [0.6, 0.7],
        ],
    }
}

fn cases() -> Vec<Case> {
    vec![ring_case(), blobs_case(), bar_case(), plain_case()]
}

/// Gauss–Legendre nodes and weights on [−1, 1], by Newton's method on P_n (own code, so the
/// check does not share constants with the oracle).
fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let mut x = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
            loop {
                let (mut p0, mut p1) = (1.0, x);
                for k in 2..=n {
                    let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                    p0 = p1;
                    p1 = p2;
                }
                let dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
                let dx = p1 / dp;
                x -= dx;
                if dx.abs() < 1e-16 {
                    let (mut p0, mut p1) = (1.0, x);
                    for k in 2..=n {
                        let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                        p0 = p1;
                        p1 = p2;
                    }
                    let dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
                    return (x, 2.0 / ((1.0 - x * x) * dp * dp));
                }
            }
        })
        .collect()
}

/// Quadrature nodes along one axis of x₀ for a kernel centred at `centre` with std `s`: the
/// window centre ± 14 s cut to the support, split at the jumps, panels ≤ min(s, feature)/2.
fn axis_nodes(case: &Case, axis: usize, centre: f64, s: f64, gl: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let [lo, hi] = case.support[axis];
    let (lo, hi) = (lo.max(centre - 14.0 * s), hi.min(centre + 14.0 * s));
    if lo >= hi {
        return vec![];
    }
    let mut breaks = vec![lo];
    breaks.extend(
        case.edges[axis]
            .iter()
            .copied()
            .filter(|e| *e > lo && *e < hi),
    );
    breaks.push(hi);
    breaks.sort_by(f64::total_cmp);
    let h = s.min(case.feature) / 2.0;
    let mut out = vec![];
    for w in breaks.windows(2) {
        let panels = ((w[1] - w[0]) / h).ceil().max(1.0) as usize;
        let width = (w[1] - w[0]) / panels as f64;
        for p in 0..panels {
            let mid = w[0] + (p as f64 + 0.5) * width;
            out.extend(
                gl.iter()
                    .map(|(x, wt)| (mid + 0.5 * width * x, 0.5 * width * wt)),
            );
        }
    }
    out
}

/// log ∫ p₀(u) N(x; √ᾱ u, σ² I) du by 2-D quadrature (kernel factors in log space).
fn quadrature_log_density(case: &Case, alpha_bar: f64, sigma: f64, x: [f64; 2]) -> f64 {
    let gl = gauss_legendre(8);
    let sa = alpha_bar.sqrt();
    let s = sigma / sa;
    let nodes: Vec<Vec<(f64, f64, f64)>> = (0..2)
        .map(|d| {
            axis_nodes(case, d, x[d] / sa, s, &gl)
                .into_iter()
                .map(|(u, w)| (u, w, -(x[d] - sa * u).powi(2) / (2.0 * sigma * sigma)))
                .collect()
        })
        .collect();
    let max = |v: &Vec<(f64, f64, f64)>| v.iter().map(|n| n.2).fold(f64::NEG_INFINITY, f64::max);
    let m = max(&nodes[0]) + max(&nodes[1]);
    let mut sum = 0.0;
    for &(u, wu, ku) in &nodes[0] {
        for &(v, wv, kv) in &nodes[1] {
            let p0 = case.toy.log_density([u, v]).exp();
            sum += wu * wv * p0 * (ku + kv - m).exp();
        }
    }
    m + sum.ln() - (2.0 * PI * sigma * sigma).ln()
}

#[test]
fn log_density_matches_quadrature_of_the_convolution() {
    let schedule = cosine100();
    let mut worst = 0.0f64;
    for case in cases() {
        let oracle = OracleTarget::new(case.toy.clone(), schedule.clone()).unwrap();
        for k in LEVELS {
            for &p in &case.points {
                let want =
                    quadrature_log_density(&case, schedule.alpha_bar(k), schedule.sigma(k), p);
                let got = oracle.log_density_and_score(p, k).0;
                assert!(
                    want.is_finite(),
                    "{} k={k} {p:?}: quadrature {want}",
                    case.name
                );
                let err = (got - want).abs();
                worst = worst.max(err);
                assert!(
                    err < 1e-10,
                    "{} k={k} at {p:?}: oracle {got}, quadrature {want}",
                    case.name
                );
            }
        }
    }
    eprintln!("max |log q − quadrature| = {worst:e}");
}

#[test]
fn diffused_densities_integrate_to_one() {
    let schedule = cosine100();
    for case in cases() {
        let oracle = OracleTarget::new(case.toy.clone(), schedule.clone()).unwrap();
        let r = case
            .support
            .iter()
            .flatten()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        for k in LEVELS {
            let (sa, sigma) = (schedule.alpha_bar(k).sqrt(), schedule.sigma(k));
            let half = sa * r + 10.0 * sigma;
            let n = (2.0 * half / (sigma / 4.0)).ceil() as usize;
            let h = 2.0 * half / n as f64;
            let mut total = 0.0;
            for i in 0..n {
                for j in 0..n {
                    let p = [-half + (i as f64 + 0.5) * h, -half + (j as f64 + 0.5) * h];
                    total += oracle.log_density_and_score(p, k).0.exp();
                }
            }
            total *= h * h;
            assert!(
                (total - 1.0).abs() < 1e-9,
                "{} k={k}: ∫ q_k = {total} ({n}² cells)",
                case.name
            );
        }
    }
}

#[test]
fn score_matches_central_differences_of_the_log_density() {
    let schedule = cosine100();
    let mut worst = 0.0f64;
    for case in cases() {
        let oracle = OracleTarget::new(case.toy.clone(), schedule.clone()).unwrap();
        let mut pts = case.points.clone();
        pts.extend([[0.13, -0.71], [-1.4, 0.35], [2.0, 2.5]]);
        for k in LEVELS {
            let sigma = schedule.sigma(k);
            let h = 1e-4 * sigma;
            let f = |p: [f64; 2]| oracle.log_density_and_score(p, k).0;
            for &p in &pts {
                let s = oracle.log_density_and_score(p, k).1;
                for d in 0..2 {
                    let (mut up, mut down) = (p, p);
                    up[d] += h;
                    down[d] -= h;
                    let fd = (f(up) - f(down)) / (2.0 * h);
                    let err = (fd - s[d]).abs() / (1.0 / sigma + s[d].abs());
                    worst = worst.max(err);
                    assert!(
                        err < 1e-7,
                        "{} k={k} at {p:?}, axis {d}: score {}, finite difference {fd}",
                        case.name,
                        s[d]
                    );
                }
            }
        }
    }
    eprintln!("max score error relative to 1/σ + |s| = {worst:e}");
}

#[test]
fn small_noise_limit_is_the_toy_log_density() {
    // σ₀ = 1e-5: q₀ is p₀ up to O(σ₀²/std²) for Gaussians and exactly (up to e^{−huge}) at points
    // ≥ 0.01 = 1000 σ₀ from every rectangle edge.
    let tiny = NoiseSchedule::from_betas(vec![1e-10, 0.02, 0.5]);
    let checks: Vec<(Toy2d, Vec<[f64; 2]>, f64)> = vec![
        (
            Toy2d::ring(8, 0.5, 0.075),
            vec![[0.5, 0.0], [0.45, 0.2], [0.0, 0.0], [0.9, -0.3]],
            1e-6,
        ),
        (
            Toy2d::blobs(vec![[-0.5, 0.5], [0.5, 0.0]], 0.1),
            vec![[-0.5, 0.5], [0.0, 0.25]],
            1e-6,
        ),
        // inside the bar, on the background only
        (
            Toy2d::vertical_bar(0.2),
            vec![[0.05, 0.3], [0.6, 0.0], [-1.0, 1.05]],
            1e-8,
        ),
        (
            Toy2d::rect([-0.3, 0.4], [-0.1, 0.5], 0.0),
            vec![[0.0, 0.2], [0.38, 0.48]],
            1e-8,
        ),
    ];
    for (toy, pts, tol) in checks {
        let oracle = OracleTarget::new(toy.clone(), tiny.clone()).unwrap();
        for p in pts {
            let (got, want) = (oracle.log_density_and_score(p, 0).0, toy.log_density(p));
            assert!(
                (got - want).abs() < tol,
                "{:?} at {p:?}: q₀ {got}, p₀ {want}",
                toy.config()
            );
        }
    }
    // Cosine T = 100, level 0 (σ₀ ≈ 0.025): at interior points ≥ 10 σ₀ from every edge
    // q₀(x) = p₀(x/√ᾱ₀) − log ᾱ₀ (2-D Jacobian), which differs from p₀(x) by ≈ 6.3e-4.
    let schedule = cosine100();
    let ab = schedule.alpha_bar(0);
    for (toy, p) in [
        (Toy2d::vertical_bar(0.2), [0.0, 0.5]),
        (Toy2d::vertical_bar(0.2), [0.6, -0.5]),
        (Toy2d::rect([-0.3, 0.4], [-0.1, 0.5], 0.0), [0.05, 0.2]),
    ] {
        let oracle = OracleTarget::new(toy.clone(), schedule.clone()).unwrap();
        let got = oracle.log_density_and_score(p, 0).0;
        let scaled = [p[0] / ab.sqrt(), p[1] / ab.sqrt()];
        let want = toy.log_density(scaled) - ab.ln();
        assert!((got - want).abs() < 1e-10, "{p:?}: {got} vs {want}");
        assert!((got - toy.log_density(p) + ab.ln()).abs() < 1e-10);
        assert!(-ab.ln() > 6e-4);
    }
}

/// log Q(z) and the inverse Mills ratio φ(z)/Q(z) for large z from the continued fraction
/// Q(z) = φ(z) / (z + 1/(z + 2/(z + 3/(z + …)))).
fn tail_by_continued_fraction(z: f64) -> (f64, f64) {
    // Bottom-up: t_60 = z, t_{n−1} = z + n/t_n; t_0 = φ(z)/Q(z).
    let mut t = z;
    for n in (1..=60).rev() {
        t = z + n as f64 / t;
    }
    let log_phi = -0.5 * z * z - 0.5 * (2.0 * PI).ln();
    (log_phi - t.ln(), t)
}

#[test]
fn far_tails_are_finite_and_match_the_asymptotics() {
    // Plain rect [−0.3, 0.4] × [−0.1, 0.5] at k = 0 (σ₀ ≈ 0.025): at (3, 3) both axes are
    // ≈ 100 σ beyond the box, where Φ(a) − Φ(b) = 0 − 0 in plain arithmetic.
    let schedule = cosine100();
    let (x, y) = ([-0.3, 0.4], [-0.1, 0.5]);
    let oracle = OracleTarget::new(Toy2d::rect(x, y, 0.0), schedule.clone()).unwrap();
    let (sa, sigma) = (schedule.alpha_bar(0).sqrt(), schedule.sigma(0));
    let (l, s) = oracle.log_density_and_score([3.0, 3.0], 0);
    assert!(
        l.is_finite() && s[0].is_finite() && s[1].is_finite(),
        "{l} {s:?}"
    );
    let mut want_l = 0.0;
    for (d, [lo, hi]) in [x, y].into_iter().enumerate() {
        let z = (3.0 - sa * hi) / sigma;
        assert!(z > 99.0);
        let (log_q, mills) = tail_by_continued_fraction(z);
        want_l += log_q - (sa * (hi - lo)).ln();
        let want_s = -mills / sigma;
        assert!(
            (s[d] - want_s).abs() < 1e-12 * want_s.abs(),
            "axis {d}: score {} vs {want_s}",
            s[d]
        );
    }
    assert!((l - want_l).abs() < 1e-12 * want_l.abs(), "{l} vs {want_l}");
    // Left of the box on x, inside on y: the x-score pulls right, the y-score is ≈ 0.
    let (l, s) = oracle.log_density_and_score([-3.0, 0.2], 0);
    assert!(
        l.is_finite() && s[0] > 0.0 && s[1].abs() < 1e-6,
        "{l} {s:?}"
    );
    // Absurdly far, and through the f32 Target interface with and without background.
    for toy in [Toy2d::rect(x, y, 0.0), Toy2d::vertical_bar(0.2)] {
        let oracle = OracleTarget::new(toy, schedule.clone()).unwrap();
        for p in [[50.0, -50.0], [3.0, 3.0], [-1e3, 0.0]] {
            let (l, s) = oracle.log_density_and_score(p, 0);
            assert!(
                l.is_finite() && s.iter().all(|v| v.is_finite()),
                "{p:?}: {l} {s:?}"
            );
            assert!(s[0] * p[0] < 0.0, "{p:?}: score {s:?} should point back");
        }
        let device = Device::flex();
        let e = oracle.evaluate(points(vec![3.0, 3.0, 50.0, -50.0], 2, &device), 0);
        let ld: Vec<f32> = e.log_density.unwrap().into_data().try_to_vec().unwrap();
        let sc: Vec<f32> = e.score.into_data().try_to_vec().unwrap();
        assert!(ld.iter().chain(&sc).all(|v| v.is_finite()), "{ld:?} {sc:?}");
    }
}

#[test]
fn target_interface_returns_the_host_values_as_f32() {
    let schedule = cosine100();
    let device = Device::flex();
    for case in cases() {
        let oracle = OracleTarget::new(case.toy.clone(), schedule.clone()).unwrap();
        assert_eq!(oracle.data_dim(), 2);
        assert!(oracle.has_energy());
        let flat: Vec<f32> = case
            .points
            .iter()
            .flat_map(|p| [p[0] as f32, p[1] as f32])
            .collect();
        for k in [0, 37, 99] {
            let e = oracle.evaluate(points(flat.clone(), 2, &device), k);
            let ld: Vec<f32> = e.log_density.unwrap().into_data().try_to_vec().unwrap();
            let sc: Vec<f32> = e.score.into_data().try_to_vec().unwrap();
            let via_score: Vec<f32> = oracle
                .score(points(flat.clone(), 2, &device), k)
                .into_data()
                .try_to_vec()
                .unwrap();
            assert_eq!(sc, via_score);
            for (i, p) in flat.chunks_exact(2).enumerate() {
                let (l, s) = oracle.log_density_and_score([p[0] as f64, p[1] as f64], k);
                assert_eq!(ld[i], l as f32, "{} k={k}", case.name);
                assert_eq!([sc[2 * i], sc[2 * i + 1]], [s[0] as f32, s[1] as f32]);
            }
        }
    }
}

#[test]
fn exact_samples_satisfy_the_stein_identities_of_the_scores() {
    // For x ~ q_k: E[∇ log q_k(x)] = 0 and E[x_d ∂_d log q_k(x)] = −1 (integration by parts).
    let schedule = cosine100();
    let n = 20_000;
    for case in [bar_case(), ring_case(), plain_case()] {
        let oracle = OracleTarget::new(case.toy.clone(), schedule.clone()).unwrap();
        for k in [5, 30] {
            let xs = oracle.sample_level(k, n, &mut StdRng::seed_from_u64(k as u64));
            for d in 0..2 {
                let (mut s1, mut s2, mut t1, mut t2) = (0.0, 0.0, 0.0, 0.0);
                for p in xs.chunks_exact(2) {
                    let p = [p[0] as f64, p[1] as f64];
                    let s = oracle.log_density_and_score(p, k).1[d];
                    s1 += s;
                    s2 += s * s;
                    let t = p[d] * s;
                    t1 += t;
                    t2 += t * t;
                }
                let nf = n as f64;
                let (ms, mt) = (s1 / nf, t1 / nf);
                let (se_s, se_t) = (
                    ((s2 / nf - ms * ms) / nf).sqrt(),
                    ((t2 / nf - mt * mt) / nf).sqrt(),
                );
                assert!(
                    ms.abs() < 5.0 * se_s,
                    "{} k={k} d={d}: E[s] = {ms} ± {se_s}",
                    case.name
                );
                assert!(
                    (mt + 1.0).abs() < 5.0 * se_t,
                    "{} k={k} d={d}: E[x s] = {mt} ± {se_t}",
                    case.name
                );
            }
        }
    }
    // Level-0 data samples are the toy's smoothed law (same draws as Toy2d::sample_smoothed).
    let bar = OracleTarget::new(Toy2d::vertical_bar(0.2), schedule).unwrap();
    let a = bar.sample_data(1000, &mut StdRng::seed_from_u64(9));
    let b = Toy2d::vertical_bar(0.2).sample_smoothed(1000, &mut StdRng::seed_from_u64(9));
    assert_eq!(a, b);
}

#[derive(Debug, Deserialize)]
struct Models {
    models: BTreeMap<String, ExactModel>,
}

fn parse(text: &str) -> Result<Models, String> {
    toml::from_str::<Models>(text).map_err(|e| e.to_string())
}

#[test]
fn exact_models_parse_from_sampling_toml() {
    let text = r#"[models]
ring = { exact = { kind = "ring", modes = 8, radius = 0.5, std = 0.075 }, diffusion = { kind = "cosine", timesteps = 100 } }
"#;
    let models = parse(text).unwrap().models;
    let ring = &models["ring"];
    assert_eq!(
        ring.exact,
        Toy2dConfig::Ring {
            modes: 8,
            radius: 0.5,
            std: 0.075
        }
    );
    assert_eq!(ring.diffusion, ScheduleConfig::cosine(100));
    assert_eq!(ring.validate(), Ok(()));
    let target = ring.build().unwrap();
    assert_eq!(target.schedule(), &cosine100());
    let direct = OracleTarget::new(Toy2d::ring(8, 0.5, 0.075), cosine100()).unwrap();
    assert_eq!(target, direct);

    // `diffusion` defaults to the schedule of configs/toy2d.toml.
    let models =
        parse("[models]\nbar = { exact = { kind = \"rect\", x = [-0.2, 0.2], y = [-1, 1] } }\n")
            .unwrap()
            .models;
    let toy2d: toml::Value = toml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/toy2d.toml"
        ))
        .unwrap(),
    )
    .unwrap();
    let schedule: ScheduleConfig = toy2d["diffusion"].clone().try_into().unwrap();
    assert_eq!(models["bar"].diffusion, schedule);
    assert_eq!(
        models["bar"].build().unwrap().toy(),
        &Toy2d::vertical_bar(0.2)
    );
}

#[test]
fn bad_exact_models_are_named_errors() {
    let err = parse("[models]\nm = { exact = { kind = \"mnist\" } }\n").unwrap_err();
    for word in ["mnist", "ring", "blobs", "rect"] {
        assert!(err.contains(word), "missing {word:?} in: {err}");
    }
    let err = parse(
        "[models]\nm = { exact = { kind = \"ring\" }, difusion = { kind = \"cosine\", timesteps = 100 } }\n",
    )
    .unwrap_err();
    assert!(err.contains("difusion"), "{err}");
    let err = parse("[models]\nm = { exact = { kind = \"ring\", sdt = 0.1 } }\n").unwrap_err();
    assert!(err.contains("sdt"), "{err}");

    for (text, key, hint) in [
        ("{ kind = \"ring\", std = 0.0 }", "exact.std", "> 0"),
        ("{ kind = \"ring\", modes = 0 }", "exact.modes", "≥ 1"),
        (
            "{ kind = \"blobs\", centers = [] }",
            "exact.centers",
            "at least one",
        ),
        (
            "{ kind = \"rect\", x = [0.5, -0.5], y = [0, 1] }",
            "exact.x",
            "x0 < x1",
        ),
        (
            "{ kind = \"rect\", x = [0, 1], y = [0, 1], background = 1.0 }",
            "exact.background",
            "[0, 1)",
        ),
    ] {
        let m = &parse(&format!("[models]\nm = {{ exact = {text} }}\n"))
            .unwrap()
            .models["m"];
        let e = m.validate().unwrap_err();
        assert_eq!(e.key, key, "{text}: {e}");
        assert!(e.message.contains(hint), "{text}: {e}");
        assert_eq!(m.build().unwrap_err(), e);
        assert!(e.to_string().starts_with(key));
    }
    for t in [0, 1] {
        let text = format!(
            "[models]\nm = {{ exact = {{ kind = \"ring\" }}, diffusion = {{ kind = \"cosine\", timesteps = {t} }} }}\n"
        );
        let m = &parse(&text).unwrap().models["m"];
        let e = m.build().unwrap_err();
        assert_eq!(e.key, "diffusion.timesteps", "{e}");
        assert!(e.message.contains("2..=100000"), "{e}");
    }

    // Schedules without noise or without signal at some level.
    for betas in [vec![0.0, 0.1], vec![0.1, 1.0]] {
        let e =
            OracleTarget::new(Toy2d::square(0.3), NoiseSchedule::from_betas(betas)).unwrap_err();
        assert_eq!(e.key, "diffusion");
        assert!(e.message.contains("0 < alpha_bar < 1"), "{e}");
    }
}
