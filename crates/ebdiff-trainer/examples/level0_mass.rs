//! How a trained 2-D energy model, or a composition of them, splits its mass between modes:
//! integrates p(x) ∝ exp(f(x, t₀)) at the lowest noise level on a grid (f = −E_θ, or the
//! composition's log-density: products, negations, mixtures with their normalizers) and reports
//! the share of each nearest-centre region. Samplers that only follow the score (ancestral, ULA)
//! are blind to the relative offsets of E_θ between separated modes; samplers that weigh by the
//! energy (SMC, MH) sample exactly these shares, so they tell whether a composition's error is
//! the model's.
//!
//!   cargo run --release --example level0_mass -- RUN_DIR|SAMPLING.toml "x,y;x,y;…" \
//!       [half_width] [step] [samples.npy …]
//!
//! Each `samples.npy` (a sampler's output) gets the same nearest-centre shares, for comparison.
use burn::tensor::{Device, Tensor, TensorData};
use ebdiff_sampler::{SamplerConfig, SamplerKind, SamplingConfig, Target};
use std::path::Path;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [run, centers, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: level0_mass RUN_DIR|SAMPLING.toml \"x,y;x,y;…\" [half_width = 1.5] [grid step = 0.004]"
                .into(),
        );
    };
    let centers: Vec<[f64; 2]> = centers
        .split(';')
        .map(|c| {
            let v: Vec<f64> = c
                .split(',')
                .map(|s| s.trim().parse())
                .collect::<std::result::Result<_, _>>()?;
            match v[..] {
                [x, y] => Ok([x, y]),
                _ => Err(format!("centre `{c}` is not `x,y`").into()),
            }
        })
        .collect::<Result<_>>()?;
    let (samples, numbers): (Vec<&String>, Vec<&String>) =
        rest.iter().partition(|a| a.ends_with(".npy"));
    let half: f64 = numbers.first().map_or(Ok(1.5), |s| s.parse())?;
    let step: f64 = numbers.get(1).map_or(Ok(0.004), |s| s.parse())?;
    let nearest = |x: f64, y: f64| {
        (0..centers.len())
            .min_by(|&a, &b| {
                let d = |c: [f64; 2]| (x - c[0]).powi(2) + (y - c[1]).powi(2);
                d(centers[a]).total_cmp(&d(centers[b]))
            })
            .expect("at least one centre")
    };

    let device = Device::flex();
    // A sampling config names models and a composition; a run directory is its single model.
    let path = Path::new(run);
    let (cfg, default_model) = if path.is_file() {
        let text = std::fs::read_to_string(path)?;
        let cfg: SamplingConfig = ebdiff_core::parse_toml(&text, run)?;
        (cfg, None)
    } else {
        let cfg = SamplingConfig::new(SamplerConfig::new(SamplerKind::Ancestral), 1, 0);
        (cfg, Some(path))
    };
    let components = ebdiff_trainer::load_components(&cfg, default_model, None, &device)?;
    let target = components.build(&cfg.composition_spec())?;
    if !target.has_energy() {
        return Err(format!("{run}: a score-only model or composition has no log-density").into());
    }
    let n = (2.0 * half / step).round() as usize;
    let coord = |i: usize| -half + (i as f64 + 0.5) * step;
    // log p̃ on every grid point, row by row, then a stable log-sum-exp per region.
    let mut log_p = Vec::with_capacity(n * n);
    for i in 0..n {
        let xs: Vec<f32> = (0..n)
            .flat_map(|j| [coord(i) as f32, coord(j) as f32])
            .collect();
        let x = Tensor::<2>::from_data(TensorData::new(xs, [n, 2]), &device);
        let l = target.evaluate(x, 0).log_density.expect("energy model");
        log_p.extend(l.into_data().convert::<f64>().try_into_vec::<f64>()?);
    }
    let max = log_p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut mass = vec![0.0; centers.len()];
    for (idx, l) in log_p.iter().enumerate() {
        mass[nearest(coord(idx / n), coord(idx % n))] += (l - max).exp();
    }
    let total: f64 = mass.iter().sum();
    println!(
        "{run}: mass of exp(f(x, level 0)) on [−{half}, {half}]², step {step}, by nearest centre"
    );
    for (c, m) in centers.iter().zip(&mass) {
        println!("  ({:+.2}, {:+.2}): {:.3}", c[0], c[1], m / total);
    }
    for file in samples {
        let a = ebdiff_data::io::npy::read_npy(Path::new(file))?;
        if a.shape.len() != 2 || a.shape[1] != 2 {
            return Err(format!("{file}: expected [N, 2] samples, got shape {:?}", a.shape).into());
        }
        let mut count = vec![0usize; centers.len()];
        for xy in a.data.chunks(2) {
            count[nearest(xy[0], xy[1])] += 1;
        }
        let shares: Vec<String> = count
            .iter()
            .map(|&c| format!("{:.3}", c as f64 / a.shape[0] as f64))
            .collect();
        println!("  samples {file}: {}", shares.join(" "));
    }
    Ok(())
}
